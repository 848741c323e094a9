/* Renderers: JSON objects from the API in, aligned tables and the deploy tree out. Pure
 * functions of their input (and "now"), so golden tests can pin their output. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "util.h"

void cli_print_json(FILE *f, json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    if (s) {
        fputs(s, f);
        fputc('\n', f);
        free(s);
    }
}

void cli_time_ago(int64_t then_us, int64_t now_us, char *out, size_t size)
{
    if (then_us <= 0) {
        snprintf(out, size, "-");
        return;
    }
    int64_t s = (now_us - then_us) / 1000000;
    if (s < 0)
        s = 0;
    static const struct {
        int64_t secs;
        const char *unit;
    } units[] = {{365LL * 86400, "year"}, {30LL * 86400, "month"}, {7LL * 86400, "week"},
                 {86400, "day"},         {3600, "hour"},          {60, "minute"},
                 {1, "second"}};
    if (s == 0) {
        snprintf(out, size, "now");
        return;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (s >= units[i].secs) {
            int64_t n = s / units[i].secs;
            snprintf(out, size, "%" PRId64 " %s%s ago", n, units[i].unit, n == 1 ? "" : "s");
            return;
        }
    }
}

void cli_human_bytes(uint64_t b, char *out, size_t size)
{
    static const char *const u[] = {"B", "kB", "MB", "GB", "TB", "PB"};
    if (b < 10) {
        snprintf(out, size, "%" PRIu64 " B", b);
        return;
    }
    double v = (double)b;
    size_t i = 0;
    while (v >= 1000 && i + 1 < sizeof(u) / sizeof(u[0])) {
        v /= 1000;
        i++;
    }
    /* go-humanize: one decimal below 10, none above. */
    double r = v < 10 ? (double)(int64_t)(v * 10 + 0.5) / 10 : (double)(int64_t)(v + 0.5);
    if (r < 10 && i > 0)
        snprintf(out, size, "%.1f %s", r, u[i]);
    else
        snprintf(out, size, "%.0f %s", r, u[i]);
}

void cli_stop_reason(int64_t reason, json_t *inst, char *out, size_t size)
{
    char flags[6] = "-----";
    const char letters[] = "FUPAK";
    for (int i = 0; i < 5; i++)
        if (reason & (1 << (4 - i)))
            flags[i] = letters[i];
    const char *what;
    if (reason & 16)
        what = "forced stop";
    else if (reason & 8)
        what = "stopped by the user";
    else if (reason & 4)
        what = "stopped by the platform";
    else if (reason & 2)
        what = "the app exited";
    else if (reason & 1)
        what = "the kernel stopped (crash)";
    else
        what = "unknown";
    int n = snprintf(out, size, "%s %s", flags, what);
    json_t *ec = json_object_get(inst, "exit_code");
    if (json_is_integer(ec) && n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " (exit code %" JSON_INTEGER_FORMAT ")",
                      json_integer_value(ec));
    const char *msg = json_string_value(json_object_get(inst, "message"));
    if (msg && *msg && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, ": %s", msg);
}

/* ---------------------------------------------------------------- tables */

struct cli_table {
    size_t cols, rows, cap;
    char **cells; /* rows * cols, row 0 = headers */
};

struct cli_table *cli_table_new(const char *const *headers)
{
    struct cli_table *t = calloc(1, sizeof(*t));
    while (headers[t->cols])
        t->cols++;
    cli_table_add(t, headers);
    return t;
}

void cli_table_add(struct cli_table *t, const char *const *cells)
{
    if (t->rows == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->cells = realloc(t->cells, t->cap * t->cols * sizeof(char *));
        if (!t->cells)
            abort();
    }
    for (size_t c = 0; c < t->cols; c++)
        t->cells[t->rows * t->cols + c] = strdup(cells[c] ? cells[c] : "");
    t->rows++;
}

/* Display width: UTF-8 continuation bytes do not count. */
static size_t dwidth(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80)
            w++;
    return w;
}

void cli_table_print(struct cli_table *t, FILE *f)
{
    size_t *w = calloc(t->cols, sizeof(size_t));
    for (size_t r = 0; r < t->rows; r++)
        for (size_t c = 0; c < t->cols; c++) {
            size_t l = dwidth(t->cells[r * t->cols + c]);
            if (l > w[c])
                w[c] = l;
        }
    for (size_t r = 0; r < t->rows; r++) {
        for (size_t c = 0; c < t->cols; c++) {
            const char *s = t->cells[r * t->cols + c];
            fputs(s, f);
            if (c + 1 < t->cols)
                fprintf(f, "%*s", (int)(w[c] - dwidth(s) + 2), "");
        }
        fputc('\n', f);
    }
    free(w);
}

void cli_table_free(struct cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->rows * t->cols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t);
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void join_strs(json_t *arr, char *out, size_t size)
{
    out[0] = '\0';
    size_t i, n = 0;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if (!s)
            continue;
        int k = snprintf(out + n, size - n, "%s%s", n ? " " : "", s);
        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

static int64_t created_us(json_t *o)
{
    int64_t us = 0;
    const char *c = json_string_value(json_object_get(o, "created_at"));
    if (c && nubo_time_parse_iso8601(c, &us) == 0)
        return us;
    return 0;
}

static const char *first_domain(json_t *inst)
{
    json_t *sg = json_object_get(inst, "service_group");
    json_t *d0 = json_array_get(json_object_get(sg, "domains"), 0);
    const char *f = json_string_value(json_object_get(d0, "fqdn"));
    if (!f)
        f = json_string_value(json_object_get(d0, "name"));
    return f ? f : "";
}

void cli_render_instances(FILE *f, json_t *items, int64_t now_us)
{
    static const char *const h[] = {"NAME",   "FQDN", "STATE", "CREATED AT", "IMAGE",
                                    "MEMORY", "ARGS", "BOOT TIME", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char created[64], image[600], mem[32], args[1024], boot[32];
        cli_time_ago(created_us(it), now_us, created, sizeof(created));
        /* The digest is long; the list shows where it starts, the get shows it whole. */
        snprintf(image, sizeof(image), "%s", jstr(it, "image"));
        char *at = strstr(image, "@sha256:");
        if (at)
            strcpy(at, "@sha256...");
        json_int_t m = json_integer_value(json_object_get(it, "memory_mb"));
        if (m > 0)
            snprintf(mem, sizeof(mem), "%" JSON_INTEGER_FORMAT " MiB", m);
        else
            mem[0] = '\0';
        join_strs(json_object_get(it, "args"), args, sizeof(args));
        json_int_t bt = json_integer_value(json_object_get(it, "boot_time_us"));
        if (bt > 0)
            snprintf(boot, sizeof(boot), "%" JSON_INTEGER_FORMAT "us", bt);
        else
            snprintf(boot, sizeof(boot), "-");
        const char *row[] = {jstr(it, "name"), first_domain(it), jstr(it, "state"), created,
                             image, mem, args, boot, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_images(FILE *f, json_t *items)
{
    static const char *const h[] = {"IMAGE", "TAG", "SIZE", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char size[32];
        cli_human_bytes((uint64_t)json_integer_value(json_object_get(it, "size_in_bytes")), size,
                        sizeof(size));
        json_t *tags = json_object_get(it, "tags");
        if (json_array_size(tags) == 0) {
            char repo[512];
            snprintf(repo, sizeof(repo), "%s", jstr(it, "url"));
            char *at = strchr(repo, '@');
            if (at)
                *at = '\0';
            if (!repo[0])
                snprintf(repo, sizeof(repo), "%s", jstr(it, "digest"));
            const char *row[] = {repo, "<none>", size, NULL};
            cli_table_add(t, row);
            continue;
        }
        size_t k;
        json_t *tag;
        json_array_foreach(tags, k, tag)
        {
            char repo[512];
            snprintf(repo, sizeof(repo), "%s", json_string_value(tag) ? json_string_value(tag) : "");
            char *slash = strrchr(repo, '/');
            char *colon = strrchr(slash ? slash : repo, ':');
            const char *tg = "latest";
            if (colon) {
                *colon = '\0';
                tg = colon + 1;
            }
            const char *row[] = {repo, tg, size, NULL};
            cli_table_add(t, row);
        }
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

static void count_or_len(json_t *v, char *out, size_t size)
{
    if (json_is_array(v))
        snprintf(out, size, "%zu", json_array_size(v));
    else if (json_is_integer(v))
        snprintf(out, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        snprintf(out, size, "-");
}

void cli_render_nodes(FILE *f, json_t *items, int64_t now_us)
{
    static const char *const h[] = {"NAME", "METRO", "STATE", "ACCEL", "MEMORY", "VCPUS",
                                    "INSTANCES", "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char mem[32], vcpus[32], inst[32], created[64];
        json_int_t m = json_integer_value(json_object_get(it, "memory_mb"));
        snprintf(mem, sizeof(mem), m ? "%" JSON_INTEGER_FORMAT " MiB" : "-", m);
        count_or_len(json_object_get(it, "vcpus"), vcpus, sizeof(vcpus));
        json_t *in = json_object_get(it, "instances");
        if (!in)
            in = json_object_get(it, "instance_count");
        count_or_len(in, inst, sizeof(inst));
        cli_time_ago(created_us(it), now_us, created, sizeof(created));
        const char *row[] = {jstr(it, "name"), jstr(it, "metro"), jstr(it, "state"),
                             jstr(it, "accel"), mem, vcpus, inst, created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_metros(FILE *f, json_t *items)
{
    static const char *const h[] = {"NAME", "NODES", "ENDPOINT", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char nodes[32];
        count_or_len(json_object_get(it, "nodes"), nodes, sizeof(nodes));
        const char *name = jstr(it, "name");
        if (!*name)
            name = jstr(it, "iata_code");
        const char *row[] = {name, nodes, jstr(it, "endpoint"), NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

static void services_text(json_t *svcs, char *out, size_t size)
{
    out[0] = '\0';
    size_t n = 0, i;
    json_t *s;
    json_array_foreach(svcs, i, s)
    {
        char hs[64] = "";
        size_t k, hn = 0;
        json_t *h;
        json_array_foreach(json_object_get(s, "handlers"), k, h)
        {
            int w = snprintf(hs + hn, sizeof(hs) - hn, "%s%s", hn ? "+" : "",
                             json_string_value(h) ? json_string_value(h) : "");
            if (w > 0 && (size_t)w < sizeof(hs) - hn)
                hn += (size_t)w;
        }
        int w = snprintf(out + n, size - n, "%s%" JSON_INTEGER_FORMAT ":%" JSON_INTEGER_FORMAT "%s%s",
                         n ? " " : "", json_integer_value(json_object_get(s, "port")),
                         json_integer_value(json_object_get(s, "destination_port")),
                         hn ? "/" : "", hs);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
}

void cli_render_services(FILE *f, json_t *items, int64_t now_us)
{
    static const char *const h[] = {"NAME", "FQDN", "SERVICES", "INSTANCES", "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char svcs[512], inst[32], created[64];
        services_text(json_object_get(it, "services"), svcs, sizeof(svcs));
        count_or_len(json_object_get(it, "instances"), inst, sizeof(inst));
        cli_time_ago(created_us(it), now_us, created, sizeof(created));
        json_t *d0 = json_array_get(json_object_get(it, "domains"), 0);
        const char *fq = jstr(d0, "fqdn");
        const char *row[] = {jstr(it, "name"), fq, svcs, inst, created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

/* ---------------------------------------------------------------- deploy tree */

struct row {
    const char *key;
    char val[1024];
};

/* The URL scheme of an instance's domains: https:// when 443 is published, http:// when only
 * 80 is, nothing for raw TCP ports. */
static const char *url_scheme(json_t *inst)
{
    json_t *sg = json_object_get(inst, "service_group");
    json_t *svcs = json_object_get(sg, "services");
    /* Without the services list, a domain on a platform-managed group is served over TLS. */
    if (svcs == NULL)
        return "https://";
    bool has80 = false;
    size_t i;
    json_t *s;
    json_array_foreach(svcs, i, s)
    {
        json_int_t port = json_integer_value(json_object_get(s, "port"));
        if (port == 443)
            return "https://";
        has80 = has80 || port == 80;
    }
    return has80 ? "http://" : "";
}

void cli_render_deploy_tree(FILE *f, json_t *inst, bool color, const char *prog)
{
    const char *state = jstr(inst, "state");
    const char *title, *col;
    bool online = false;
    if (!strcmp(state, "running") || !strcmp(state, "starting")) {
        title = "Deployed successfully!";
        col = "\033[32m";
        online = true;
    } else if (!strcmp(state, "standby")) {
        title = "Deployed but instance is on standby!";
        col = "\033[94m";
        online = true;
    } else if (!strcmp(state, "stopped") &&
               json_integer_value(json_object_get(inst, "start_count")) == 0 &&
               json_integer_value(json_object_get(inst, "stop_reason")) == 0) {
        title = "Created but not started (--no-start)";
        col = "\033[94m";
        online = true;
    } else if (!strcmp(state, "stopped") || !strcmp(state, "stopping") ||
               !strcmp(state, "draining")) {
        title = "Deployed but instance is not online!";
        col = "\033[31m";
    } else {
        title = "Deployed but unknown status";
        col = "\033[33m";
    }
    struct row rows[24];
    size_t n = 0;
#define ROW(k, ...)                                                                               \
    do {                                                                                          \
        rows[n].key = (k);                                                                        \
        snprintf(rows[n].val, sizeof(rows[n].val), __VA_ARGS__);                                  \
        n++;                                                                                      \
    } while (0)
    ROW("name", "%s", jstr(inst, "name"));
    ROW("uuid", "%s", jstr(inst, "uuid"));
    if (*jstr(inst, "metro"))
        ROW("metro", "%s", jstr(inst, "metro"));
    ROW("state", "%s", state);
    if (!online && json_object_get(inst, "stop_reason")) {
        char sr[512];
        cli_stop_reason(json_integer_value(json_object_get(inst, "stop_reason")), inst, sr,
                        sizeof(sr));
        ROW("stop reason", "%s", sr);
    }
    json_t *sg = json_object_get(inst, "service_group");
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(sg, "domains"), i, d)
    {
        if (n >= 18)
            break;
        const char *fq = jstr(d, "fqdn");
        if (*fq)
            ROW("url", "%s%s", url_scheme(inst), fq);
    }
    ROW("image", "%s", jstr(inst, "image"));
    json_int_t bt = json_integer_value(json_object_get(inst, "boot_time_us"));
    if (bt > 0 && strcmp(state, "starting") != 0)
        ROW("boot time", "%.2f ms", (double)bt / 1000.0);
    json_int_t mem = json_integer_value(json_object_get(inst, "memory_mb"));
    if (mem > 0)
        ROW("memory", "%" JSON_INTEGER_FORMAT " MiB", mem);
    if (*jstr(sg, "name"))
        ROW("service", "%s", jstr(sg, "name"));
    ROW("private fqdn", "%s", jstr(inst, "private_fqdn"));
    ROW("private ip", "%s", jstr(inst, "private_ip"));
    char args[1024];
    join_strs(json_object_get(inst, "args"), args, sizeof(args));
    ROW("args", "%s", args);
#undef ROW
    size_t maxk = 0;
    for (size_t r = 0; r < n; r++)
        if (strlen(rows[r].key) > maxk)
            maxk = strlen(rows[r].key);
    if (color)
        fprintf(f, "%s[●]\033[0m %s\n", col, title);
    else
        fprintf(f, "[●] %s\n", title);
    fputs(" │\n", f);
    for (size_t r = 0; r < n; r++) {
        fputs(r + 1 == n ? " └" : " ├", f);
        for (size_t k = 0; k < maxk - strlen(rows[r].key) + 2; k++)
            fputs("─", f);
        fprintf(f, " %s: %s\n", rows[r].key, rows[r].val);
    }
    if (!online)
        fprintf(f, "\nSee why with: %s instances logs %s\n", prog ? prog : "nubo",
                jstr(inst, "name"));
}

void cli_render_object(FILE *f, json_t *obj)
{
    const char *keys[128];
    size_t n = 0, w = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (n < 128)
            keys[n++] = k;
    }
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++)
        if (strlen(keys[i]) > w)
            w = strlen(keys[i]);
    for (size_t i = 0; i < n; i++) {
        v = json_object_get(obj, keys[i]);
        fprintf(f, "%*s: ", (int)w, keys[i]);
        if (json_is_string(v))
            fputs(json_string_value(v), f);
        else {
            char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            fputs(s ? s : "", f);
            free(s);
        }
        fputc('\n', f);
    }
}
