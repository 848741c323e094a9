/* nubo login: write the profile (~/.config/nubo/config) the other commands read. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cmd_login(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    bool api_set = false, token_set = false;
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            free(opts);
            fputs("usage: nubo login --api URL --token TOKEN [--ca FILE] [--registry URL] [--metro M]\n"
                  "Writes the profile $XDG_CONFIG_HOME/nubo/config (or ~/.config/nubo/config).\n",
                  ctx->o);
            return 0;
        }
        int r = cli_global_opt(ctx, c, optarg, &err);
        if (r < 0) {
            free(opts);
            return cli_usage(ctx, "login", "%s", err.msg);
        }
        if (r == 0) {
            free(opts);
            return cli_usage(ctx, "login", "%s", cli_unknown_flag(ctx, argc, argv));
        }
        if (c == CLI_GLOBAL_OPTS_BASE)
            api_set = true;
        if (c == CLI_GLOBAL_OPTS_BASE + 1)
            token_set = true;
    }
    free(opts);
    if (optind < argc)
        return cli_usage(ctx, "login", "unexpected argument '%s'", argv[optind]);
    if (!token_set && !ctx->token[0])
        return cli_usage(ctx, "login", "--token is required");
    (void)api_set;
    /* Check the token before saving it, so a typo is caught now rather than later. */
    json_t *resp = NULL;
    if (cli_api(ctx, "GET", "/v1/instances?details=false", NULL, &resp, &err) < 0)
        return cli_fail(ctx, "login", &err);
    json_decref(resp);
    if (cli_config_write(ctx->config_path, ctx->api_url, ctx->token, ctx->reg.url, ctx->metro,
                         ctx->ca_file, &err) < 0)
        return cli_fail(ctx, "login", &err);
    if (!ctx->quiet)
        fprintf(ctx->o, "Logged in to %s; profile written to %s\n", ctx->api_url,
                ctx->config_path);
    return 0;
}
