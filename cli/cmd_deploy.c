/* nubo deploy [DIR]: build + push + wait until the controller lists the image + run. The
 * wait closes the push->create propagation race kraftkit users hit. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"


static void usage(FILE *f)
{
    fputs("usage: nubo deploy [DIR] [-p EXT:INT[/h1+h2]]... [-M SIZE] [-R N] [-e K=V]...\n"
          "                   [--name N] [--image|--output ORG/NAME:TAG] [-K KRAFTFILE]\n"
          "                   [--runtime REF] [--rootfs PATH] [--build-arg K=V]...\n"
          "                   [--metro M] [--timeout DUR] [-- ARGS...]\n",
          f);
}

int cmd_deploy(struct cli_ctx *ctx, int argc, char **argv)
{
    enum { OPT_RUNTIME = 0x3000, OPT_ROOTFS, OPT_BUILD_ARG, OPT_OCI_DIR, OPT_NO_PUSH };
    static const struct option own[] = {{"help", no_argument, NULL, 'h'},
                                        {"image", required_argument, NULL, 'i'},
                                        {"kraftfile", required_argument, NULL, 'K'},
                                        {"runtime", required_argument, NULL, OPT_RUNTIME},
                                        {"rootfs", required_argument, NULL, OPT_ROOTFS},
                                        {"build-arg", required_argument, NULL, OPT_BUILD_ARG},
                                        {"oci-dir", required_argument, NULL, OPT_OCI_DIR},
                                        CLI_RUN_LONGOPTS,
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct cli_build_opts b = {.dir = ".", .push = true};
    struct cli_run_opts r;
    cli_run_opts_init(&r);
    struct nubo_err err = {0};
    int c, rc;
    /* Everything after "--" is the app's; flags and DIR may come in any order before it. */
    int dd = 1;
    while (dd < argc && strcmp(argv[dd], "--") != 0)
        dd++;
    int full_argc = argc;
    argc = dd;
    optind = 0;
    while ((c = getopt_long(argc, argv, "hi:K:" CLI_RUN_SHORT CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            usage(ctx->o);
            rc = 0;
            goto out;
        }
        if (c == 'i') {
            b.output = optarg;
            continue;
        }
        int k = cli_build_opt(ctx, &b, c, optarg, &err);
        if (k == 0)
            k = cli_run_opt(&r, c, optarg, &err);
        if (k == 0)
            k = cli_global_opt(ctx, c, optarg, &err);
        if (k <= 0) {
            rc = cli_usage(ctx, "deploy", "%s", k < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
            goto out;
        }
    }
    if (optind < argc)
        b.dir = argv[optind++];
    if (optind < argc) {
        rc = cli_usage(ctx, "deploy", "unexpected argument '%s' (app arguments go after --)",
                       argv[optind]);
        goto out;
    }
    if (dd < full_argc) {
        r.has_args = true;
        for (int i = dd + 1; i < full_argc; i++)
            cli_strv_push(&r.args, argv[i]);
    }
    enum cli_output fmt = ctx->out;
    ctx->out = CLI_OUT_TABLE;
    struct cli_build_result res;
    if (cli_build(ctx, &b, &res, &err) < 0) {
        ctx->out = fmt;
        rc = cli_fail(ctx, "deploy", &err);
        goto out;
    }
    ctx->out = fmt;
    if (fmt != CLI_OUT_JSON && !ctx->quiet)
        cli_print_build(ctx, &res, true);
    if (cli_wait_image_listed(ctx, res.ref, res.digest, r.timeout_ms, &err) < 0) {
        rc = cli_fail(ctx, "deploy", &err);
        goto out;
    }
    /* the Kraftfile's scale-to-zero labels, under the flags */
    cli_s2z_merge(&r, &res.s2z, res.s2z_given);
    /* Create from the exact digest just pushed: no tag can move under us. */
    snprintf(r.image, sizeof(r.image), "%s@%s", res.repo, res.digest);
    rc = cli_run_create(ctx, &r, &err) < 0 ? cli_fail(ctx, "deploy", &err) : 0;
out:
    free(opts);
    cli_strv_free(b.build_args);
    cli_run_opts_free(&r);
    return rc;
}
