/* nubo metros list: the metros the cluster's nodes form (GET /v1/metros). */
#include <getopt.h>
#include <string.h>

#include "cli.h"
#include "util.h"

static int show_metros(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_metro *v;
    size_t n;
    if (nubo_metro_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's metros");
    cli_render_metros(ctx->o, v, n);
    nubo_metro_list_free(v, n);
    return 0;
}

int cmd_metros(struct cli_ctx *ctx, int argc, char **argv)
{
    bool help;
    int rc = cli_simple_opts(ctx, "metros", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs("usage: nubo metros list [-o json|table]\n", ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (strcmp(sub, "list") && strcmp(sub, "ls"))
        return cli_usage(ctx, "metros", "unknown subcommand '%s' (use list)", sub);
    return cli_list(ctx, "metros list", "/v1/metros", "metros", show_metros);
}
