/* nubo pkg (kernel + initrd -> OCI layout, optionally pushed), nubo push, nubo pull. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "oci_image.h"
#include "util.h"


static void pkg_usage(FILE *f)
{
    fputs("usage: nubo pkg --kernel FILE [--initrd FILE] [--arg A]... [--env K=V]...\n"
          "                [--label K=V]... --output ORG/NAME:TAG [--oci-dir DIR] [--push]\n"
          "                [--user NAME[:GROUP]] [--registry URL]\n",
          f);
}

int cmd_pkg(struct cli_ctx *ctx, int argc, char **argv)
{
    enum {
        OPT_KERNEL = 0x4000,
        OPT_INITRD,
        OPT_ARG,
        OPT_ENV,
        OPT_LABEL,
        OPT_OCI,
        OPT_PUSH,
        OPT_USER
    };
    static const struct option own[] = {{"help", no_argument, NULL, 'h'},
                                        {"kernel", required_argument, NULL, OPT_KERNEL},
                                        {"initrd", required_argument, NULL, OPT_INITRD},
                                        {"arg", required_argument, NULL, OPT_ARG},
                                        {"env", required_argument, NULL, OPT_ENV},
                                        {"label", required_argument, NULL, OPT_LABEL},
                                        {"oci-dir", required_argument, NULL, OPT_OCI},
                                        {"push", no_argument, NULL, OPT_PUSH},
                                        {"name", required_argument, NULL, 'o'},
                                        {"user", required_argument, NULL, OPT_USER},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    const char *kernel = NULL, *initrd = NULL, *output = NULL, *oci = NULL, *user = NULL;
    char **args = calloc(1, sizeof(char *)), **env = calloc(1, sizeof(char *)),
         **labels = calloc(1, sizeof(char *));
    bool push = false, has_args = false;
    struct nubo_err err = {0};
    int c, rc = 0;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            pkg_usage(ctx->o);
            goto out;
        case OPT_KERNEL:
            kernel = optarg;
            break;
        case OPT_INITRD:
            initrd = optarg;
            break;
        case OPT_ARG:
            cli_strv_push(&args, optarg);
            has_args = true;
            break;
        case OPT_ENV:
        case OPT_LABEL:
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                rc = cli_usage(ctx, "pkg", "--%s '%s': expected KEY=VALUE",
                               c == OPT_ENV ? "env" : "label", optarg);
                goto out;
            }
            cli_strv_push(c == OPT_ENV ? &env : &labels, optarg);
            break;
        case OPT_OCI:
            oci = optarg;
            break;
        case OPT_PUSH:
            push = true;
            break;
        case OPT_USER:
            user = optarg;
            break;
        case 'o':
            if (strcmp(optarg, "json") && strcmp(optarg, "table")) {
                output = optarg;
                break;
            }
            /* fall through */
        default: {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0) {
                rc = cli_usage(ctx, "pkg", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
                goto out;
            }
        }
        }
    }
    if (optind < argc) {
        rc = cli_usage(ctx, "pkg", "unexpected argument '%s'", argv[optind]);
        goto out;
    }
    if (!kernel || !output) {
        rc = cli_usage(ctx, "pkg", "--kernel FILE and --output ORG/NAME:TAG are required");
        goto out;
    }
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(output, &ref, &err) < 0 || ref.digest[0]) {
        rc = cli_usage(ctx, "pkg", "--output: %s", ref.digest[0] ? "give a tag, not a digest" : err.msg);
        goto out;
    }
    char layout[PATH_MAX];
    if (oci)
        snprintf(layout, sizeof(layout), "%s", oci);
    else if (cli_default_layout(ref.repo, ref.tag, layout, sizeof(layout), &err) < 0) {
        rc = cli_fail(ctx, "pkg", &err);
        goto out;
    }
    struct cli_build_result res;
    memset(&res, 0, sizeof(res));
    snprintf(res.repo, sizeof(res.repo), "%s", ref.repo);
    snprintf(res.tag, sizeof(res.tag), "%s", ref.tag);
    snprintf(res.ref, sizeof(res.ref), "%s:%s", ref.repo, ref.tag);
    struct nubo_image_spec spec = {.kernel_path = kernel,
                                   .initrd_path = initrd,
                                   .cmd = has_args ? (const char *const *)args : NULL,
                                   .env = (const char *const *)env,
                                   .labels = (const char *const *)labels,
                                   .ref_name = res.ref,
                                   .user = user};
    struct nubo_image_info info = {0};
    if (nubo_oci_pack(&spec, layout, &info, &err) < 0) {
        rc = cli_fail(ctx, "pkg", &err);
        goto out;
    }
    snprintf(res.digest, sizeof(res.digest), "%s", info.index_digest);
    res.size_in_bytes = info.size_in_bytes;
    nubo_image_info_free(&info);
    char qrepo[600];
    snprintf(qrepo, sizeof(qrepo), "%s%s%s", ref.host, ref.host[0] ? "/" : "", ref.repo);
    if (push && cli_push_layout(ctx, layout, qrepo, ref.tag, NULL, &err) < 0) {
        rc = cli_fail(ctx, "pkg", &err);
        goto out;
    }
    cli_print_build(ctx, &res, push);
out:
    free(opts);
    cli_strv_free(args);
    cli_strv_free(env);
    cli_strv_free(labels);
    return rc;
}

int cmd_push(struct cli_ctx *ctx, int argc, char **argv)
{
    enum { OPT_OCI = 0x4100 };
    static const struct option own[] = {{"help", no_argument, NULL, 'h'},
                                        {"oci-dir", required_argument, NULL, OPT_OCI},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    const char *oci = NULL;
    struct nubo_err err = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            free(opts);
            fputs("usage: nubo push ORG/NAME:TAG [--oci-dir DIR] [--registry URL]\n", ctx->o);
            return 0;
        }
        if (c == OPT_OCI) {
            oci = optarg;
            continue;
        }
        int r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            free(opts);
            return cli_usage(ctx, "push", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    if (optind + 1 != argc)
        return cli_usage(ctx, "push", "give exactly one ORG/NAME:TAG");
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(argv[optind], &ref, &err) < 0 || ref.digest[0])
        return cli_usage(ctx, "push", "%s", ref.digest[0] ? "give a tag, not a digest" : err.msg);
    char layout[PATH_MAX];
    if (oci)
        snprintf(layout, sizeof(layout), "%s", oci);
    else if (cli_default_layout(ref.repo, ref.tag, layout, sizeof(layout), &err) < 0)
        return cli_fail(ctx, "push", &err);
    char idx[PATH_MAX + 16];
    snprintf(idx, sizeof(idx), "%s/index.json", layout);
    if (access(idx, R_OK) < 0) {
        nubo_error(&err, 0, "no packed image for %s:%s in %s: run 'nubo pkg --output %s:%s' or "
                   "'nubo build' first", ref.repo, ref.tag, layout, ref.repo, ref.tag);
        return cli_fail(ctx, "push", &err);
    }
    /* The push may name a different repo/tag than the pack: push under what was asked. */
    char digest[80];
    char qrepo[600];
    snprintf(qrepo, sizeof(qrepo), "%s%s%s", ref.host, ref.host[0] ? "/" : "", ref.repo);
    if (cli_push_layout(ctx, layout, qrepo, ref.tag, digest, &err) < 0)
        return cli_fail(ctx, "push", &err);
    struct cli_build_result res;
    memset(&res, 0, sizeof(res));
    snprintf(res.repo, sizeof(res.repo), "%s", ref.repo);
    snprintf(res.ref, sizeof(res.ref), "%s:%s", ref.repo, ref.tag);
    snprintf(res.digest, sizeof(res.digest), "%s", digest);
    cli_print_build(ctx, &res, true);
    return 0;
}

int cmd_pull(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'},
                                        {"dir", required_argument, NULL, 'd'},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    const char *dir = NULL;
    struct nubo_err err = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "hd:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            free(opts);
            fputs("usage: nubo pull REF [--dir DIR]   (writes DIR/kernel and DIR/initrd)\n",
                  ctx->o);
            return 0;
        }
        if (c == 'd') {
            dir = optarg;
            continue;
        }
        int r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            free(opts);
            return cli_usage(ctx, "pull", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    if (optind + 1 != argc)
        return cli_usage(ctx, "pull", "give exactly one image reference");
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(argv[optind], &ref, &err) < 0)
        return cli_usage(ctx, "pull", "%s", err.msg);
    struct nubo_registry reg;
    cli_registry_for(ctx, &ref, &reg);
    const char *want = ref.digest[0] ? ref.digest : ref.tag;
    struct nubo_image_info info = {0};
    if (nubo_oci_inspect(&reg, ref.repo, want, &info, &err) < 0)
        return cli_fail(ctx, "pull", &err);
    int rc = 0;
    if (dir) {
        if (nubo_mkdir_p(dir, 0755, &err) < 0) {
            nubo_image_info_free(&info);
            return cli_fail(ctx, "pull", &err);
        }
        const char *digs[2] = {info.kernel_digest, info.initrd_digest};
        const char *paths[2] = {NUBO_PATH_KERNEL, NUBO_PATH_INITRD};
        const char *names[2] = {"kernel", "initrd"};
        for (int i = 0; i < 2 && rc == 0; i++) {
            if (!digs[i][0])
                continue;
            char tar[PATH_MAX], outp[PATH_MAX];
            snprintf(tar, sizeof(tar), "%s/.%s.tar", dir, names[i]);
            snprintf(outp, sizeof(outp), "%s/%s", dir, names[i]);
            int fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
            if (fd < 0) {
                rc = nubo_error(&err, errno, "cannot create %s", tar);
                break;
            }
            rc = nubo_registry_get_blob_fd(&reg, ref.repo, digs[i], fd, 0, NULL, &err);
            close(fd);
            if (rc == 0)
                rc = nubo_oci_extract_layer_file(tar, paths[i], outp, 0, &err);
            unlink(tar);
        }
    }
    if (rc < 0) {
        nubo_image_info_free(&info);
        return cli_fail(ctx, "pull", &err);
    }
    if (ctx->out == CLI_OUT_JSON || !ctx->quiet) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:I}", "digest", info.index_digest,
                              "manifest", info.manifest_digest, "config", info.config_digest,
                              "kernel", info.kernel_digest, "initrd", info.initrd_digest,
                              "size_in_bytes", (json_int_t)info.size_in_bytes);
        json_t *a = json_array();
        for (size_t i = 0; info.cmd && info.cmd[i]; i++)
            json_array_append_new(a, json_string(info.cmd[i]));
        json_object_set_new(j, "args", a);
        json_t *l = json_array();
        for (size_t i = 0; info.labels && info.labels[i]; i++)
            json_array_append_new(l, json_string(info.labels[i]));
        json_object_set_new(j, "labels", l);
        if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, j);
        else
            cli_render_object(ctx->o, j);
        json_decref(j);
    }
    nubo_image_info_free(&info);
    return 0;
}
