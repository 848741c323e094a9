/* nubo nodes list, nubo metros list, nubo services list|get|create|rm. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* Parse only global flags; positional args stay in argv[optind..]. */
static int simple_opts(struct cli_ctx *ctx, const char *cmd, int argc, char **argv, bool *help)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    int c;
    optind = 0;
    *help = false;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            *help = true;
            continue;
        }
        int r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            free(opts);
            return cli_usage(ctx, cmd, "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    return 0;
}

static int list_generic(struct cli_ctx *ctx, const char *cmd, const char *path,
                        const char *collection,
                        void (*render)(FILE *, json_t *, int64_t))
{
    struct nubo_err err = {0};
    json_t *resp = NULL;
    if (cli_api(ctx, "GET", path, NULL, &resp, &err) < 0)
        return cli_fail(ctx, cmd, &err);
    json_t *items = cli_api_items(resp, collection);
    json_t *empty = json_array();
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items ? items : empty);
    else
        render(ctx->o, items ? items : empty, nubo_now_us());
    json_decref(empty);
    json_decref(resp);
    return 0;
}

/* `<cmd> get|rm WHO` for services and certificates: one reference, one item back. */
static int get_or_remove(struct cli_ctx *ctx, const char *cmd, const char *path,
                         const char *collection, bool get, const char *who)
{
    char what[64];
    snprintf(what, sizeof(what), "%s %s", cmd, get ? "get" : "rm");
    json_t *body = json_pack("[{s:s}]", nubo_uuid_valid(who) ? "uuid" : "name", who);
    struct nubo_err err = {0};
    json_t *resp = NULL;
    int rc = cli_api(ctx, get ? "GET" : "DELETE", path, body, &resp, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, what, &err);
    json_t *items = cli_api_items(resp, collection);
    json_t *it = json_array_get(items, 0);
    const char *ie = cli_item_error(it);
    if (ie) {
        nubo_error(&err, 0, "%s: %s", who, ie);
        json_decref(resp);
        return cli_fail(ctx, what, &err);
    }
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (get)
        cli_render_object(ctx->o, it);
    else if (!ctx->quiet)
        fprintf(ctx->o, "removed %s\n", who);
    json_decref(resp);
    return 0;
}

static void render_metros_adapter(FILE *f, json_t *items, int64_t now)
{
    (void)now;
    cli_render_metros(f, items);
}

int cmd_nodes(struct cli_ctx *ctx, int argc, char **argv)
{
    bool help;
    int rc = simple_opts(ctx, "nodes", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs("usage: nubo nodes list [-o json|table]\n"
              "       nubo nodes drain NAME    (admin: maintenance, its instances move away)\n"
              "       nubo nodes ready NAME    (admin: back in service)\n",
              ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "drain") || !strcmp(sub, "ready")) {
        if (optind + 1 >= argc)
            return cli_usage(ctx, "nodes", "%s needs a node name", sub);
        const char *name = argv[optind + 1];
        if (!nubo_name_valid(name) && !nubo_uuid_valid(name))
            return cli_usage(ctx, "nodes", "'%s' is not a node name", name);
        char path[160], cmd[32];
        snprintf(path, sizeof(path), "/v1/nodes/%s/%s", name, sub);
        snprintf(cmd, sizeof(cmd), "nodes %s", sub);
        struct nubo_err err = {0};
        json_t *resp = NULL;
        if (cli_api(ctx, "PUT", path, NULL, &resp, &err) < 0)
            return cli_fail(ctx, cmd, &err);
        json_t *items = cli_api_items(resp, "nodes");
        json_t *it = json_array_get(items, 0);
        if (ctx->out == CLI_OUT_JSON) {
            cli_print_json(ctx->o, it);
        } else if (!ctx->quiet) {
            json_t *mv = json_object_get(it, "moved_instances");
            fprintf(ctx->o, "node %s is %s", name,
                    json_string_value(json_object_get(it, "state")) ?: "?");
            if (json_array_size(mv))
                fprintf(ctx->o, "; moved %zu instance(s)", json_array_size(mv));
            fputc('\n', ctx->o);
            size_t i;
            json_t *m;
            json_array_foreach(mv, i, m)
                fprintf(ctx->o, "  %s -> %s (%s)\n",
                        json_string_value(json_object_get(m, "name")) ?: "?",
                        json_string_value(json_object_get(m, "node")) ?: "?",
                        json_string_value(json_object_get(m, "private_ip")) ?: "?");
        }
        json_decref(resp);
        return 0;
    }
    if (strcmp(sub, "list") && strcmp(sub, "ls"))
        return cli_usage(ctx, "nodes", "unknown subcommand '%s' (use list, drain, ready)", sub);
    return list_generic(ctx, "nodes list", "/v1/nodes", "nodes", cli_render_nodes);
}

int cmd_metros(struct cli_ctx *ctx, int argc, char **argv)
{
    bool help;
    int rc = simple_opts(ctx, "metros", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs("usage: nubo metros list [-o json|table]\n", ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (strcmp(sub, "list") && strcmp(sub, "ls"))
        return cli_usage(ctx, "metros", "unknown subcommand '%s' (use list)", sub);
    return list_generic(ctx, "metros list", "/v1/metros", "metros", render_metros_adapter);
}

#define SERVICES_USAGE                                                                             \
    "usage: nubo services list|get NAME|rm NAME [-o json|table]\n"                                 \
    "       nubo services create [-n NAME] [-d DOMAIN]... [--soft-limit N] [--hard-limit N]\n"     \
    "                            EXT:INT[/h1+h2]...   (e.g. 443:8080/http+tls)\n"

/* nubo services create [-n NAME] [-d DOMAIN]... [--soft-limit N] [--hard-limit N] PORT... */
static int services_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"name", required_argument, NULL, 'n'},
                                        {"domain", required_argument, NULL, 'd'},
                                        {"soft-limit", required_argument, NULL, 'S'},
                                        {"hard-limit", required_argument, NULL, 'H'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    json_t *req = json_object(), *domains = json_array();
    int64_t soft = 0, hard = 0;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hn:d:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(SERVICES_USAGE, ctx->o);
            rc = -1;
            break;
        case 'n':
            json_object_set_new(req, "name", json_string(optarg));
            break;
        case 'd':
            json_array_append_new(domains, json_pack("{s:s}", strchr(optarg, '.') ? "fqdn" : "name",
                                                     optarg));
            break;
        case 'S':
        case 'H':
            if (nubo_parse_int(optarg, 1, 65535, c == 'S' ? &soft : &hard, NULL) < 0)
                rc = cli_usage(ctx, "services create", "--%s-limit %s: must be 1..65535",
                               c == 'S' ? "soft" : "hard", optarg);
            break;
        default: {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, "services create", "%s",
                               r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
        }
    }
    free(opts);
    struct cli_port ports[32];
    int n_ports = 0;
    /* argv[optind] is "create"; the ports follow */
    for (int i = optind + 1; rc == 0 && i < argc; i++)
        if (cli_parse_port(argv[i], ports, &n_ports, 32, &err) < 0)
            rc = cli_usage(ctx, "services create", "%s", err.msg);
    if (rc == 0 && n_ports == 0)
        rc = cli_usage(ctx, "services create",
                       "publish at least one port, e.g. nubo services create 443:8080/http+tls");
    if (rc != 0) {
        json_decref(req);
        json_decref(domains);
        return rc < 0 ? 0 : rc;
    }
    json_object_set_new(req, "services", cli_ports_json(ports, n_ports));
    if (json_array_size(domains))
        json_object_set(req, "domains", domains);
    json_decref(domains);
    if (soft)
        json_object_set_new(req, "soft_limit", json_integer(soft));
    if (hard)
        json_object_set_new(req, "hard_limit", json_integer(hard));
    if (ctx->metro[0])
        json_object_set_new(req, "metro", json_string(ctx->metro));
    json_t *resp = NULL;
    rc = cli_api(ctx, "POST", "/v1/services", req, &resp, &err);
    json_decref(req);
    if (rc < 0)
        return cli_fail(ctx, "services create", &err);
    json_t *items = cli_api_items(resp, "service_groups");
    json_t *it = json_array_get(items, 0);
    const char *ie = cli_item_error(it);
    if (ie) {
        nubo_error(&err, 0, "%s", ie);
        json_decref(resp);
        return cli_fail(ctx, "services create", &err);
    }
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (ctx->quiet)
        fprintf(ctx->o, "%s\n", json_string_value(json_object_get(it, "name")));
    else
        cli_render_services(ctx->o, items, nubo_now_us());
    json_decref(resp);
    return 0;
}

int cmd_services(struct cli_ctx *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "create") || !strcmp(argv[i], "add"))
            return services_create(ctx, argc, argv);
        else if (argv[i][0] != '-')
            break;
    bool help;
    int rc = simple_opts(ctx, "services", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs(SERVICES_USAGE, ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return list_generic(ctx, "services list", "/v1/services", "service_groups",
                            cli_render_services);
    bool get = !strcmp(sub, "get");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete");
    if (!get && !rm)
        return cli_usage(ctx, "services", "unknown subcommand '%s' (use list, get, create, rm)",
                         sub);
    if (optind + 1 >= argc)
        return cli_usage(ctx, "services", "%s needs a service name or uuid", sub);
    const char *who = argv[optind + 1];
    return get_or_remove(ctx, "services", "/v1/services", "service_groups", get, who);
}

/* ---- nubo certificates list|get|create|rm ---- */

static void render_certs(FILE *f, json_t *items, int64_t now_us)
{
    static const char *const h[] = {"NAME", "COMMON NAME", "NOT AFTER", "SERVICE GROUPS",
                                    "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        char groups[256] = "", created[64];
        size_t k, n = 0;
        json_t *g;
        json_array_foreach(json_object_get(it, "service_groups"), k, g)
        {
            int w = snprintf(groups + n, sizeof(groups) - n, "%s%s", n ? " " : "",
                             json_string_value(json_object_get(g, "name")) ?: "?");
            if (w < 0 || (size_t)w >= sizeof(groups) - n)
                break;
            n += (size_t)w;
        }
        int64_t us = 0;
        const char *c = json_string_value(json_object_get(it, "created_at"));
        if (c)
            nubo_time_parse_iso8601(c, &us);
        cli_time_ago(us, now_us, created, sizeof(created));
        const char *na = json_string_value(json_object_get(it, "not_after"));
        const char *row[] = {json_string_value(json_object_get(it, "name")) ?: "",
                             json_string_value(json_object_get(it, "common_name")) ?: "",
                             na ? na : "", groups, created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, f);
    cli_table_free(t);
}

#define CERTS_USAGE                                                                                \
    "usage: nubo certificates list|get NAME|rm NAME [-o json|table]\n"                            \
    "       nubo certificates create --cn CN --chain FILE.pem --key FILE.pem [-n NAME]\n"

static int certs_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"name", required_argument, NULL, 'n'},
                                        {"cn", required_argument, NULL, 'C'},
                                        {"chain", required_argument, NULL, 'c'},
                                        {"key", required_argument, NULL, 'k'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    const char *name = NULL, *cn = NULL, *chain_f = NULL, *key_f = NULL;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hn:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(CERTS_USAGE, ctx->o);
            free(opts);
            return 0;
        } else if (c == 'n') {
            name = optarg;
        } else if (c == 'C') {
            cn = optarg;
        } else if (c == 'c') {
            chain_f = optarg;
        } else if (c == 'k') {
            key_f = optarg;
        } else {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, "certificates create", "%s",
                               r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    if (rc)
        return rc;
    if (!cn || !chain_f || !key_f)
        return cli_usage(ctx, "certificates create", "give --cn, --chain FILE and --key FILE");
    char *chain = NULL, *key = NULL;
    size_t len;
    if (nubo_read_file(chain_f, 256 << 10, &chain, &len, &err) < 0 ||
        nubo_read_file(key_f, 256 << 10, &key, &len, &err) < 0) {
        free(chain);
        return cli_fail(ctx, "certificates create", &err);
    }
    json_t *req = json_pack("{s:s, s:s, s:s}", "cn", cn, "chain", chain, "pkey", key);
    free(chain);
    free(key);
    if (name)
        json_object_set_new(req, "name", json_string(name));
    json_t *resp = NULL;
    rc = cli_api(ctx, "POST", "/v1/certificates", req, &resp, &err);
    json_decref(req);
    if (rc < 0)
        return cli_fail(ctx, "certificates create", &err);
    json_t *items = cli_api_items(resp, "certificates");
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (ctx->quiet)
        fprintf(ctx->o, "%s\n",
                json_string_value(json_object_get(json_array_get(items, 0), "name")) ?: "");
    else
        render_certs(ctx->o, items, nubo_now_us());
    json_decref(resp);
    return 0;
}

int cmd_certificates(struct cli_ctx *ctx, int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "create") || !strcmp(argv[i], "add"))
            return certs_create(ctx, argc, argv);
        else if (argv[i][0] != '-')
            break;
    bool help;
    int rc = simple_opts(ctx, "certificates", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs(CERTS_USAGE, ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return list_generic(ctx, "certificates list", "/v1/certificates", "certificates",
                            render_certs);
    bool get = !strcmp(sub, "get");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete");
    if (!get && !rm)
        return cli_usage(ctx, "certificates",
                         "unknown subcommand '%s' (use list, get, create, rm)", sub);
    if (optind + 1 >= argc)
        return cli_usage(ctx, "certificates", "%s needs a certificate name or uuid", sub);
    const char *who = argv[optind + 1];
    return get_or_remove(ctx, "certificates", "/v1/certificates", "certificates", get, who);
}
