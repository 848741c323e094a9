/* nubo images list|get|rm: the controller's image index, and deletion in the registry
 * (as on the platform, removing an image is a registry operation). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "cli.h"
#include "util.h"

static void usage(FILE *f)
{
    fputs("usage: nubo images list [-o json|table]\n"
          "       nubo images get ORG/NAME[:TAG|@sha256:…]\n"
          "       nubo images rm ORG/NAME[:TAG|@sha256:…]\n",
          f);
}

/* "name" alone means the profile's org; keeps tags as typed otherwise. */
static void qualify(struct cli_ctx *ctx, const char *in, char *out, size_t size)
{
    if (strchr(in, '/'))
        snprintf(out, size, "%s", in);
    else
        snprintf(out, size, "%s/%s", ctx->org, in);
}

int cmd_images(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            free(opts);
            usage(ctx->o);
            return 0;
        }
        int r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            free(opts);
            return cli_usage(ctx, "images", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    const char *sub = optind < argc ? argv[optind++] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) {
        json_t *resp = NULL;
        if (cli_api(ctx, "GET", "/v1/images", NULL, &resp, &err) < 0)
            return cli_fail(ctx, "images list", &err);
        json_t *items = cli_api_items(resp, "images");
        json_t *empty = json_array();
        if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, items ? items : empty);
        else
            cli_render_images(ctx->o, items ? items : empty);
        json_decref(empty);
        json_decref(resp);
        return 0;
    }
    bool get = !strcmp(sub, "get");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete") ||
              !strcmp(sub, "del");
    if (!get && !rm)
        return cli_usage(ctx, "images", "unknown subcommand '%s' (use list, get, rm)", sub);
    if (optind >= argc)
        return cli_usage(ctx, "images", "%s needs an image reference", sub);
    char full[600];
    cli_org_from_token(ctx);
    qualify(ctx, argv[optind], full, sizeof(full));
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(full, &ref, &err) < 0)
        return cli_usage(ctx, "images", "%s", err.msg);
    char plain[600];
    nubo_image_ref_format(&ref, plain, sizeof(plain));

    if (get) {
        json_t *body = json_pack("{s:s}", ref.digest[0] ? "digest" : "tag", plain);
        json_t *resp = NULL;
        int rc = cli_api(ctx, "GET", "/v1/images", body, &resp, &err);
        json_decref(body);
        if (rc < 0)
            return cli_fail(ctx, "images get", &err);
        json_t *items = cli_api_items(resp, "images");
        json_t *it = json_array_get(items, 0);
        const char *ie = cli_item_error(it);
        if (!it || ie) {
            nubo_error(&err, 0, "image %s: %s", plain, ie ? ie : "not known to the controller "
                       "(push it with 'nubo build' or 'nubo push')");
            json_decref(resp);
            return cli_fail(ctx, "images get", &err);
        }
        if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, it);
        else
            cli_render_object(ctx->o, it);
        json_decref(resp);
        return 0;
    }

    /* rm: resolve the tag to its digest and delete the manifest in the registry. */
    struct nubo_registry reg;
    cli_registry_for(ctx, &ref, &reg);
    char digest[80];
    if (ref.digest[0])
        snprintf(digest, sizeof(digest), "%s", ref.digest);
    else {
        cleanup_free char *body = NULL;
        cleanup_free char *mt = NULL;
        size_t len;
        if (nubo_registry_get_manifest(&reg, ref.repo, ref.tag, &body, &len, &mt, digest, &err) < 0)
            return cli_fail(ctx, "images rm", &err);
    }
    if (nubo_registry_delete_manifest(&reg, ref.repo, digest, &err) < 0)
        return cli_fail(ctx, "images rm", &err);
    if (ctx->out == CLI_OUT_JSON) {
        json_t *j = json_pack("{s:s, s:s}", "removed", plain, "digest", digest);
        cli_print_json(ctx->o, j);
        json_decref(j);
    } else if (!ctx->quiet)
        fprintf(ctx->o, "removed %s (%s@%s)\n", plain, ref.repo, digest);
    return 0;
}
