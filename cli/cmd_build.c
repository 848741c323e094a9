/* nubo build [DIR] --output ORG/NAME:TAG: Kraftfile + rootfs -> OCI image, pushed. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f)
{
    fputs("usage: nubo build [DIR] [--output ORG/NAME:TAG] [-K KRAFTFILE] [--runtime REF]\n"
          "                  [--rootfs PATH] [--build-arg K=V]... [--oci-dir DIR] [--no-push]\n"
          "Reads DIR/Kraftfile (spec v0.5-v0.7), builds the rootfs (cpio, directory or\n"
          "Dockerfile), overlays it on the runtime's initrd and pushes the image.\n",
          f);
}

enum { OPT_RUNTIME = 0x3000, OPT_ROOTFS, OPT_BUILD_ARG, OPT_OCI_DIR, OPT_NO_PUSH };

/* -o/--output is the image name here; "-o json" / "-o table" still pick the format. */
int cli_build_opt(struct cli_ctx *ctx, struct cli_build_opts *o, int c, const char *arg,
                  struct nubo_err *err)
{
    switch (c) {
    case 'o':
        if (!strcmp(arg, "json") || !strcmp(arg, "table"))
            return cli_global_opt(ctx, c, arg, err);
        o->output = arg;
        return 1;
    case 'K':
        o->kraftfile = arg;
        return 1;
    case OPT_RUNTIME:
        o->runtime = arg;
        return 1;
    case OPT_ROOTFS:
        o->rootfs = arg;
        return 1;
    case OPT_BUILD_ARG:
        if (!strchr(arg, '='))
            return nubo_error(err, 0, "--build-arg '%s': expected KEY=VALUE", arg);
        cli_strv_push(&o->build_args, arg);
        return 1;
    case OPT_OCI_DIR:
        o->oci_dir = arg;
        return 1;
    case OPT_NO_PUSH:
        o->push = false;
        return 1;
    default:
        return 0;
    }
}

#define BUILD_LONGOPTS                                                                            \
    {"kraftfile", required_argument, NULL, 'K'}, {"runtime", required_argument, NULL, OPT_RUNTIME}, \
        {"rootfs", required_argument, NULL, OPT_ROOTFS},                                          \
        {"build-arg", required_argument, NULL, OPT_BUILD_ARG},                                    \
        {"oci-dir", required_argument, NULL, OPT_OCI_DIR},                                        \
        {"no-push", no_argument, NULL, OPT_NO_PUSH}

void cli_print_build(struct cli_ctx *ctx, const struct cli_build_result *res, bool pushed)
{
    if (ctx->out == CLI_OUT_JSON) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:b}", "image", res->ref, "digest",
                              res->digest, "url", "", "size_in_bytes",
                              (json_int_t)res->size_in_bytes, "pushed", pushed);
        char url[700];
        snprintf(url, sizeof(url), "%s@%s", res->repo, res->digest);
        json_object_set_new(j, "url", json_string(url));
        cli_print_json(ctx->o, j);
        json_decref(j);
        return;
    }
    if (ctx->quiet)
        return;
    char size[32];
    cli_human_bytes(res->size_in_bytes, size, sizeof(size));
    fprintf(ctx->o, "%s %s (%s@%s, %s)\n", pushed ? "pushed" : "packed", res->ref, res->repo,
            res->digest, size);
}

int cmd_build(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'}, BUILD_LONGOPTS,
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct cli_build_opts o = {.dir = ".", .push = true};
    struct nubo_err err = {0};
    int c, rc;
    optind = 0;
    while ((c = getopt_long(argc, argv, "hK:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            usage(ctx->o);
            rc = 0;
            goto out;
        }
        int r = cli_build_opt(ctx, &o, c, optarg, &err);
        if (r == 0)
            r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            rc = cli_usage(ctx, "build", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
            goto out;
        }
    }
    if (optind < argc)
        o.dir = argv[optind++];
    if (optind < argc) {
        rc = cli_usage(ctx, "build", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    struct cli_build_result res;
    if (cli_build(ctx, &o, &res, &err) < 0) {
        rc = cli_fail(ctx, "build", &err);
        goto out;
    }
    cli_print_build(ctx, &res, o.push);
    rc = 0;
out:
    free(opts);
    cli_strv_free(o.build_args);
    return rc;
}
