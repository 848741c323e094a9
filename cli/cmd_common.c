/* What the object subcommands (cmd_nodes.c, cmd_services.c, cmd_certificates.c ...) share:
 * the global-flags-only option loop, `list` of a collection, and `get|rm WHO` of one named
 * object. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

int cli_api_list(struct cli_ctx *ctx, const char *method, const char *path, json_t *body,
                 const char *collection, json_t **resp, json_t **items, struct nubo_err *err)
{
    *resp = NULL;
    if (cli_api(ctx, method, path, body, resp, err) < 0)
        return -1;
    if (nubo_envelope_items(*resp, collection, items, err) < 0) {
        json_decref(*resp);
        *resp = NULL;
        return nubo_error_wrap(err, "%s %s", method, path);
    }
    return 0;
}

int cli_list(struct cli_ctx *ctx, const char *cmd, const char *path, const char *collection,
             cli_show_fn render)
{
    struct nubo_err err = {0};
    json_t *resp, *items;
    if (cli_api_list(ctx, "GET", path, NULL, collection, &resp, &items, &err) < 0)
        return cli_fail(ctx, cmd, &err);
    int rc = 0;
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else
        rc = render(ctx, items, &err);
    json_decref(resp);
    return rc < 0 ? cli_fail(ctx, cmd, &err) : 0;
}

int cli_simple_opts(struct cli_ctx *ctx, const char *cmd, int argc, char **argv, bool *help)
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

int cli_create_reply(struct cli_ctx *ctx, const char *cmd, const char *path,
                     const char *collection, json_t *body, cli_show_fn render)
{
    struct nubo_err err = {0};
    json_t *resp, *items;
    int rc = cli_api_list(ctx, "POST", path, body, collection, &resp, &items, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, cmd, &err);
    struct nubo_item_status st = {0};
    json_t *it = json_array_get(items, 0);
    if (it && nubo_item_status_decode(it, &st, &err) < 0)
        rc = nubo_error_wrap(&err, "the API's answer");
    else if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (ctx->quiet)
        fprintf(ctx->o, "%s\n", st.name);
    else
        rc = render(ctx, items, &err);
    json_decref(resp);
    return rc < 0 ? cli_fail(ctx, cmd, &err) : 0;
}

int cli_named_main(struct cli_ctx *ctx, const struct cli_named *n, int argc, char **argv)
{
    bool help;
    int rc = cli_simple_opts(ctx, n->cmd, argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs(n->usage, ctx->o);
        return 0;
    }
    return cli_named_dispatch(ctx, n, argc, argv);
}

int cli_named_dispatch(struct cli_ctx *ctx, const struct cli_named *n, int argc, char **argv)
{
    char what[64];
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) {
        snprintf(what, sizeof(what), "%s list", n->cmd);
        return cli_list(ctx, what, n->path, n->collection, n->show_list);
    }
    bool get = !strcmp(sub, "get");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete");
    if (!get && !rm)
        return cli_usage(ctx, n->cmd, "unknown subcommand '%s' (use list, get, create, rm)", sub);
    if (optind + 1 >= argc)
        return cli_usage(ctx, n->cmd, "%s needs a %s name or uuid", sub, n->noun);
    return cli_get_or_remove(ctx, n->cmd, n->path, n->collection, get, argv[optind + 1],
                             n->show_one);
}

int cli_get_or_remove(struct cli_ctx *ctx, const char *cmd, const char *path,
                      const char *collection, bool get, const char *who, cli_show_fn show)
{
    char what[64];
    snprintf(what, sizeof(what), "%s %s", cmd, get ? "get" : "rm");
    struct nubo_item ref;
    nubo_item_ref(&ref, who);
    json_t *body = json_pack("[o]", nubo_item_encode(&ref, NUBO_ITEM_REF));
    struct nubo_err err = {0};
    json_t *resp, *items;
    int rc = cli_api_list(ctx, get ? "GET" : "DELETE", path, body, collection, &resp, &items, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, what, &err);
    struct nubo_item_status st;
    json_t *it = json_array_get(items, 0);
    if (it == NULL)
        rc = nubo_error(&err, 0, "%s: the API answered no %s", who, collection);
    else if (nubo_item_status_decode(it, &st, &err) < 0)
        rc = nubo_error_wrap(&err, "%s: the API's answer", who);
    else if (!st.ok)
        rc = nubo_error(&err, 0, "%s: %s", who, st.message);
    else if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (get)
        rc = show(ctx, it, &err);
    else if (!ctx->quiet)
        fprintf(ctx->o, "removed %s\n", who);
    json_decref(resp);
    return rc < 0 ? cli_fail(ctx, what, &err) : 0;
}
