/* Renderers: the API's objects as proto/ types in, aligned tables and the deploy tree out.
 * Pure functions of their input (and "now"), so golden tests can pin their output. */
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

void cli_stop_reason(int64_t reason, const struct nubo_instance *inst, char *out, size_t size)
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
    if (inst && inst->has_exit_code && n > 0 && (size_t)n < size)
        n += snprintf(out + n, size - (size_t)n, " (exit code %" PRId64 ")", inst->exit_code);
    if (inst && inst->message && *inst->message && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, ": %s", inst->message);
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

static void join_strs(char *const *v, size_t n_v, char *out, size_t size)
{
    out[0] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < n_v; i++) {
        int k = snprintf(out + n, size - n, "%s%s", n ? " " : "", v[i]);
        if (k < 0 || (size_t)k >= size - n)
            break;
        n += (size_t)k;
    }
}

static const char *first_domain(const struct nubo_instance *in)
{
    const struct nubo_svc_group *sg = in->service_group;
    return sg && sg->n_domains ? sg->domains[0].fqdn : "";
}

void cli_render_instances(FILE *f, const struct nubo_instance *v, size_t n, int64_t now_us)
{
    static const char *const h[] = {"NAME",   "FQDN", "STATE", "CREATED AT", "IMAGE",
                                    "MEMORY", "ARGS", "BOOT TIME", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        const struct nubo_instance *it = &v[i];
        char created[64], image[600], mem[32], args[1024], boot[32];
        cli_time_ago(it->created_at_us, now_us, created, sizeof(created));
        /* The digest is long; the list shows where it starts, the get shows it whole. */
        snprintf(image, sizeof(image), "%s", it->image);
        char *at = strstr(image, "@sha256:");
        if (at)
            strcpy(at, "@sha256...");
        if (it->memory_mb > 0)
            snprintf(mem, sizeof(mem), "%" PRId64 " MiB", it->memory_mb);
        else
            mem[0] = '\0';
        join_strs(it->args, it->n_args, args, sizeof(args));
        /* µs here, ms in the deploy tree: the seed prints both that way */
        if (it->boot_time_us > 0)
            snprintf(boot, sizeof(boot), "%" PRId64 "us", it->boot_time_us);
        else
            snprintf(boot, sizeof(boot), "-");
        const char *row[] = {it->name, first_domain(it), nubo_state_name(it->state), created,
                             image, mem, args, boot, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_images(FILE *f, const struct nubo_image *v, size_t n)
{
    static const char *const h[] = {"IMAGE", "TAG", "SIZE", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        const struct nubo_image *it = &v[i];
        char size[32];
        cli_human_bytes((uint64_t)it->size_in_bytes, size, sizeof(size));
        if (it->n_tags == 0) {
            char repo[512];
            snprintf(repo, sizeof(repo), "%s", it->url);
            char *at = strchr(repo, '@');
            if (at)
                *at = '\0';
            const char *row[] = {repo, "<none>", size, NULL};
            cli_table_add(t, row);
            continue;
        }
        for (size_t k = 0; k < it->n_tags; k++) {
            char repo[512];
            snprintf(repo, sizeof(repo), "%s", it->tags[k]);
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

void cli_render_nodes(FILE *f, const struct nubo_node *v, size_t n, int64_t now_us)
{
    static const char *const h[] = {"NAME", "METRO", "STATE", "ACCEL", "MEMORY", "VCPUS",
                                    "INSTANCES", "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        const struct nubo_node *it = &v[i];
        char mem[32], vcpus[32], inst[32], created[64];
        if (it->memory_mb)
            snprintf(mem, sizeof(mem), "%" PRId64 " MiB", it->memory_mb);
        else
            snprintf(mem, sizeof(mem), "-");
        snprintf(vcpus, sizeof(vcpus), "%" PRId64, it->vcpus);
        snprintf(inst, sizeof(inst), "%" PRId64, it->instances);
        cli_time_ago(it->created_at_us, now_us, created, sizeof(created));
        const char *row[] = {it->name, it->metro, it->state, it->accel, mem, vcpus, inst,
                             created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_metros(FILE *f, const struct nubo_metro *v, size_t n)
{
    static const char *const h[] = {"NAME", "NODES", "ENDPOINT", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        char nodes[32];
        snprintf(nodes, sizeof(nodes), "%" PRId64, v[i].nodes);
        const char *row[] = {v[i].name, nodes, v[i].endpoint, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

static void services_text(const struct nubo_svc_group *g, char *out, size_t size)
{
    out[0] = '\0';
    size_t n = 0;
    for (size_t i = 0; i < g->n_ports; i++) {
        static const struct {
            unsigned bit;
            const char *name;
        } hn[] = {{NUBO_HANDLER_HTTP, "http"}, {NUBO_HANDLER_TLS, "tls"},
                  {NUBO_HANDLER_REDIRECT, "redirect"}};
        char hs[64] = "";
        size_t hl = 0;
        for (size_t k = 0; k < sizeof(hn) / sizeof(hn[0]); k++)
            if (g->ports[i].handlers & hn[k].bit) {
                int w = snprintf(hs + hl, sizeof(hs) - hl, "%s%s", hl ? "+" : "", hn[k].name);
                if (w > 0 && (size_t)w < sizeof(hs) - hl)
                    hl += (size_t)w;
            }
        int w = snprintf(out + n, size - n, "%s%" PRId64 ":%" PRId64 "%s%s", n ? " " : "",
                         g->ports[i].port, g->ports[i].destination_port, hl ? "/" : "", hs);
        if (w < 0 || (size_t)w >= size - n)
            break;
        n += (size_t)w;
    }
}

void cli_render_services(FILE *f, const struct nubo_svc_group *v, size_t n, int64_t now_us)
{
    static const char *const h[] = {"NAME", "FQDN", "SERVICES", "INSTANCES", "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        const struct nubo_svc_group *g = &v[i];
        char svcs[512], inst[32], created[64];
        services_text(g, svcs, sizeof(svcs));
        snprintf(inst, sizeof(inst), "%zu", g->n_instances);
        cli_time_ago(g->created_at_us, now_us, created, sizeof(created));
        const char *row[] = {g->name, g->n_domains ? g->domains[0].fqdn : "", svcs, inst,
                             created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_certificates(FILE *f, const struct nubo_certificate *v, size_t n,
                             int64_t now_us)
{
    static const char *const h[] = {"NAME", "COMMON NAME", "NOT AFTER", "SERVICE GROUPS",
                                    "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        const struct nubo_certificate *c = &v[i];
        char groups[256] = "", created[64], not_after[40] = "";
        size_t gl = 0;
        for (size_t k = 0; k < c->n_service_groups; k++) {
            int w = snprintf(groups + gl, sizeof(groups) - gl, "%s%s", gl ? " " : "",
                             c->service_groups[k].name[0] ? c->service_groups[k].name : "?");
            if (w < 0 || (size_t)w >= sizeof(groups) - gl)
                break;
            gl += (size_t)w;
        }
        if (c->not_after_us)
            nubo_time_iso8601(c->not_after_us, not_after);
        cli_time_ago(c->created_at_us, now_us, created, sizeof(created));
        const char *row[] = {c->name, c->common_name, not_after, groups, created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_volumes(FILE *f, const struct nubo_volume *v, size_t n, int64_t now_us)
{
    static const char *const h[] = {"NAME", "SIZE", "STATE", "ATTACHED TO", "NODE",
                                    "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        char size[32], created[64];
        snprintf(size, sizeof(size), "%lld MiB", (long long)v[i].size_mb);
        cli_time_ago(v[i].created_at_us, now_us, created, sizeof(created));
        const char *row[] = {v[i].name,
                             size,
                             nubo_volume_state_name(v[i].state),
                             v[i].n_attached ? v[i].attached_to[0].name : "",
                             v[i].node,
                             created,
                             NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

void cli_render_metrics(FILE *f, const struct nubo_instance_metrics *v, size_t n)
{
    static const char *const h[] = {"NAME",  "RSS",    "CPU TIME", "BOOT TIME", "NET TIME",
                                    "CONNS", "REQS",   "QUEUED",   "TOTAL",     NULL};
    struct cli_table *t = cli_table_new(h);
    for (size_t i = 0; i < n; i++) {
        char rss[32], cpu[32], boot[32], net[32], nc[24], nr[24], nq[24], nt[24];
        snprintf(rss, sizeof(rss), "%.1f MiB", (double)v[i].rss_bytes / (1 << 20));
        snprintf(cpu, sizeof(cpu), "%lld ms", (long long)v[i].cpu_time_ms);
        snprintf(boot, sizeof(boot), "%.2f ms", (double)v[i].boot_time_us / 1000);
        snprintf(net, sizeof(net), "%.2f ms", (double)v[i].net_time_us / 1000);
        snprintf(nc, sizeof(nc), "%lld", (long long)v[i].nconns);
        snprintf(nr, sizeof(nr), "%lld", (long long)v[i].nreqs);
        snprintf(nq, sizeof(nq), "%lld", (long long)v[i].nqueued);
        snprintf(nt, sizeof(nt), "%lld", (long long)v[i].ntotal);
        const char *row[] = {v[i].name, rss, cpu, boot, net, nc, nr, nq, nt, NULL};
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
static const char *url_scheme(const struct nubo_svc_group *sg)
{
    /* Without the services list, a domain on a platform-managed group is served over TLS. */
    if (!sg->has_services)
        return "https://";
    bool has80 = false;
    for (size_t i = 0; i < sg->n_ports; i++) {
        if (sg->ports[i].port == 443)
            return "https://";
        has80 = has80 || sg->ports[i].port == 80;
    }
    return has80 ? "http://" : "";
}

void cli_render_deploy_tree(FILE *f, const struct nubo_instance *in, bool color,
                            const char *prog)
{
    const char *title, *col;
    bool online = false;
    enum nubo_state st = in->state;
    if (st == NUBO_STATE_RUNNING || st == NUBO_STATE_STARTING) {
        title = "Deployed successfully!";
        col = "\033[32m";
        online = true;
    } else if (st == NUBO_STATE_STANDBY) {
        title = "Deployed but instance is on standby!";
        col = "\033[94m";
        online = true;
    } else if (st == NUBO_STATE_STOPPED && in->start_count == 0 && in->stop_reason == 0) {
        title = "Created but not started (--no-start)";
        col = "\033[94m";
        online = true;
    } else if (st == NUBO_STATE_STOPPED || st == NUBO_STATE_STOPPING ||
               st == NUBO_STATE_DRAINING) {
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
    ROW("name", "%s", in->name);
    ROW("uuid", "%s", in->uuid);
    if (in->metro[0])
        ROW("metro", "%s", in->metro);
    ROW("state", "%s", nubo_state_name(st));
    if (!online) {
        char sr[512];
        cli_stop_reason(in->stop_reason, in, sr, sizeof(sr));
        ROW("stop reason", "%s", sr);
    }
    const struct nubo_svc_group *sg = in->service_group;
    for (size_t i = 0; sg && i < sg->n_domains && n < 18; i++)
        if (sg->domains[i].fqdn[0])
            ROW("url", "%s%s", url_scheme(sg), sg->domains[i].fqdn);
    ROW("image", "%s", in->image);
    /* ms here, µs in the instances list: the seed prints both that way */
    if (in->boot_time_us > 0 && st != NUBO_STATE_STARTING)
        ROW("boot time", "%.2f ms", (double)in->boot_time_us / 1000.0);
    if (in->memory_mb > 0)
        ROW("memory", "%" PRId64 " MiB", in->memory_mb);
    if (sg && sg->name[0])
        ROW("service", "%s", sg->name);
    ROW("private fqdn", "%s", in->private_fqdn);
    ROW("private ip", "%s", in->private_ip);
    char args[1024];
    join_strs(in->args, in->n_args, args, sizeof(args));
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
        fprintf(f, "\nSee why with: %s instances logs %s\n", prog ? prog : "nubo", in->name);
}

struct kv_ref {
    const char *key;
    json_t *val;
};

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct kv_ref *)a)->key, ((const struct kv_ref *)b)->key);
}

void cli_render_object(FILE *f, json_t *obj)
{
    struct kv_ref kv[128];
    size_t n = 0, w = 0;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v)
    {
        if (n < 128)
            kv[n++] = (struct kv_ref){k, v};
    }
    qsort(kv, n, sizeof(kv[0]), kv_cmp);
    for (size_t i = 0; i < n; i++)
        if (strlen(kv[i].key) > w)
            w = strlen(kv[i].key);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%*s: ", (int)w, kv[i].key);
        if (json_is_string(kv[i].val))
            fputs(json_string_value(kv[i].val), f);
        else {
            char *s = json_dumps(kv[i].val, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
            fputs(s ? s : "", f);
            free(s);
        }
        fputc('\n', f);
    }
}
