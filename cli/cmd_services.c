/* nubo services list|get|create|rm: service groups (POST/GET/DELETE /v1/services). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define SERVICES_USAGE                                                                             \
    "usage: nubo services list|get NAME|rm NAME [-o json|table]\n"                                 \
    "       nubo services create [-n NAME] [-d DOMAIN]... [--soft-limit N] [--hard-limit N]\n"     \
    "                            EXT:INT[/h1+h2]...   (e.g. 443:8080/http+tls)\n"

/* Decode items (all groups) and render the table; -1 with err on an answer off the contract. */
static int show_groups(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_svc_group *v;
    size_t n;
    if (nubo_svc_group_list_decode(items, CLI_MAX_GROUPS, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's service groups");
    cli_render_services(ctx->o, v, n, nubo_now_us());
    nubo_svc_group_list_free(v, n);
    return 0;
}

static int show_group(struct cli_ctx *ctx, json_t *item, struct nubo_err *err)
{
    struct nubo_svc_group g;
    if (nubo_svc_group_decode(item, &g, err) < 0)
        return nubo_error_wrap(err, "the API's service group");
    json_t *j = nubo_svc_group_encode(&g);
    cli_render_object(ctx->o, j);
    json_decref(j);
    nubo_svc_group_free(&g);
    return 0;
}

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
    struct nubo_svc_create_req req;
    nubo_svc_create_req_init(&req);
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hn:d:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(SERVICES_USAGE, ctx->o);
            rc = -1;
            break;
        case 'n':
            if (strlen(optarg) >= sizeof(req.name))
                rc = cli_usage(ctx, "services create", "--name '%s' is too long", optarg);
            else
                snprintf(req.name, sizeof(req.name), "%s", optarg);
            break;
        case 'd':
            if (req.n_domains >= NUBO_SVC_MAX_DOMAINS || strlen(optarg) > NUBO_FQDN_MAX) {
                rc = cli_usage(ctx, "services create",
                               "--domain %s: at most %d domains of %d bytes each", optarg,
                               NUBO_SVC_MAX_DOMAINS, NUBO_FQDN_MAX);
                break;
            }
            snprintf(req.domains[req.n_domains].name, sizeof(req.domains[0].name), "%s", optarg);
            req.domains[req.n_domains++].is_fqdn = strchr(optarg, '.') != NULL;
            break;
        case 'S':
        case 'H':
            if (nubo_parse_int(optarg, 1, 65535, c == 'S' ? &req.soft_limit : &req.hard_limit,
                               NULL) < 0)
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
    struct cli_port ports[NUBO_SVC_MAX_PORTS];
    int n_ports = 0;
    /* argv[optind] is "create"; the ports follow */
    for (int i = optind + 1; rc == 0 && i < argc; i++)
        if (cli_parse_port(argv[i], ports, &n_ports, NUBO_SVC_MAX_PORTS, &err) < 0)
            rc = cli_usage(ctx, "services create", "%s", err.msg);
    if (rc == 0 && n_ports == 0)
        rc = cli_usage(ctx, "services create",
                       "publish at least one port, e.g. nubo services create 443:8080/http+tls");
    if (rc != 0)
        return rc < 0 ? 0 : rc;
    cli_ports_proto(ports, n_ports, req.ports);
    req.n_ports = (size_t)n_ports;
    snprintf(req.metro, sizeof(req.metro), "%s", ctx->metro);
    json_t *body = nubo_svc_create_req_encode(&req, false);
    json_t *resp, *items;
    rc = cli_api_list(ctx, "POST", "/v1/services", body, "service_groups", &resp, &items, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, "services create", &err);
    struct nubo_item_status st;
    json_t *it = json_array_get(items, 0);
    if (it == NULL)
        rc = nubo_error(&err, 0, "the API created no service group");
    else if (nubo_item_status_decode(it, &st, &err) < 0)
        rc = nubo_error_wrap(&err, "the API's answer");
    else if (!st.ok)
        rc = nubo_error(&err, 0, "%s", st.message);
    else if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (ctx->quiet)
        fprintf(ctx->o, "%s\n", st.name);
    else
        rc = show_groups(ctx, items, &err);
    json_decref(resp);
    return rc < 0 ? cli_fail(ctx, "services create", &err) : 0;
}

int cmd_services(struct cli_ctx *ctx, int argc, char **argv)
{
    int w = cli_first_word(argc, argv, 1);
    if (w < argc && (!strcmp(argv[w], "create") || !strcmp(argv[w], "add")))
        return services_create(ctx, argc, argv);
    bool help;
    int rc = cli_simple_opts(ctx, "services", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs(SERVICES_USAGE, ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cli_list(ctx, "services list", "/v1/services", "service_groups", show_groups);
    bool get = !strcmp(sub, "get");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete");
    if (!get && !rm)
        return cli_usage(ctx, "services", "unknown subcommand '%s' (use list, get, create, rm)",
                         sub);
    if (optind + 1 >= argc)
        return cli_usage(ctx, "services", "%s needs a service name or uuid", sub);
    const char *who = argv[optind + 1];
    return cli_get_or_remove(ctx, "services", "/v1/services", "service_groups", get, who,
                             show_group);
}
