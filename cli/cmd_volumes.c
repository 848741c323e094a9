/* nubo volumes list|get|create|rm: persistent block volumes (POST/GET/DELETE /v1/volumes);
 * `nubo run -v NAME:/path` mounts one. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define VOLUMES_USAGE                                                                              \
    "usage: nubo volumes list|get NAME|rm NAME [-o json|table]\n"                                  \
    "       nubo volumes create [NAME] --size SIZE (e.g. 512MiB, 1GiB)\n"

static int show_volumes(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_volume *v;
    size_t n;
    if (nubo_volume_list_decode(items, CLI_MAX_GROUPS, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's volumes");
    cli_render_volumes(ctx->o, v, n, nubo_now_us());
    nubo_volume_list_free(v, n);
    return 0;
}

static int show_volume(struct cli_ctx *ctx, json_t *item, struct nubo_err *err)
{
    struct nubo_volume v;
    if (nubo_volume_decode(item, &v, err) < 0)
        return nubo_error_wrap(err, "the API's volume");
    json_t *j = nubo_volume_encode(&v, false);
    cli_render_object(ctx->o, j);
    json_decref(j);
    return 0;
}

/* One option loop for every subcommand (global flags may come first, so the subcommand is
 * known only after it); --size belongs to create. */
int cmd_volumes(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"size", required_argument, NULL, 's'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    struct nubo_volume_create_req req = {0};
    bool help = false;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hs:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            help = true;
        } else if (c == 's') {
            if (nubo_parse_size_mb(optarg, &req.size_mb, &err) < 0)
                rc = cli_usage(ctx, "volumes create", "--size: %s", err.msg);
        } else {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, "volumes", "%s",
                               r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    if (rc)
        return rc;
    const char *sub = optind < argc ? argv[optind] : "list";
    if (help) {
        fputs(VOLUMES_USAGE, ctx->o);
        return 0;
    }
    if (strcmp(sub, "create") && strcmp(sub, "add")) {
        if (req.size_mb)
            return cli_usage(ctx, "volumes", "--size belongs to 'volumes create'");
        static const struct cli_named named = {"volumes", VOLUMES_USAGE, "/v1/volumes",
                                               "volumes", "volume",       show_volumes,
                                               show_volume};
        return cli_named_dispatch(ctx, &named, argc, argv);
    }
    if (optind + 2 < argc)
        return cli_usage(ctx, "volumes create", "give at most one name");
    if (optind + 1 < argc) {
        if (!nubo_name_valid(argv[optind + 1]))
            return cli_usage(ctx, "volumes create",
                             "'%s': a name is 1..63 characters of [a-z0-9-]", argv[optind + 1]);
        snprintf(req.name, sizeof(req.name), "%s", argv[optind + 1]);
    }
    if (req.size_mb <= 0)
        return cli_usage(ctx, "volumes create", "give --size (e.g. --size 1GiB)");
    snprintf(req.metro, sizeof(req.metro), "%s", ctx->metro);
    return cli_create_reply(ctx, "volumes create", "/v1/volumes", "volumes",
                            nubo_volume_create_req_encode(&req), show_volumes);
}
