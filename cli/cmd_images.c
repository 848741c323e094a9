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

static int show_images(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_image *v;
    size_t n;
    if (nubo_image_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's images");
    cli_render_images(ctx->o, v, n);
    nubo_image_list_free(v, n);
    return 0;
}

int cmd_images(struct cli_ctx *ctx, int argc, char **argv)
{
    struct nubo_err err = {0};
    bool help;
    int rc = cli_simple_opts(ctx, "images", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        usage(ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind++] : "list";
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cli_list(ctx, "images list", "/v1/images", "images", show_images);
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
    char plain[NUBO_IMAGE_REF_MAX];
    nubo_image_ref_format(&ref, plain, sizeof(plain));

    if (get) {
        struct nubo_image_query q = {0};
        snprintf(ref.digest[0] ? q.digest : q.tag, sizeof(q.tag), "%s", plain);
        json_t *body = nubo_image_query_encode(&q);
        json_t *resp, *items;
        rc = cli_api_list(ctx, "GET", "/v1/images", body, "images", &resp, &items, &err);
        json_decref(body);
        if (rc < 0)
            return cli_fail(ctx, "images get", &err);
        json_t *it = json_array_get(items, 0);
        struct nubo_item_status st = {.ok = false};
        struct nubo_image im;
        if (it && nubo_item_status_decode(it, &st, &err) < 0)
            rc = nubo_error_wrap(&err, "image %s: the API's answer", plain);
        else if (!it || !st.ok)
            rc = nubo_error(&err, 0, "image %s: %s", plain,
                            it ? st.message
                               : "not known to the controller (push it with 'nubo build' or "
                                 "'nubo push')");
        else if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, it);
        else if (nubo_image_decode(it, &im, &err) < 0)
            rc = nubo_error_wrap(&err, "image %s: the API's answer", plain);
        else {
            json_t *j = nubo_image_encode(&im);
            cli_render_object(ctx->o, j);
            json_decref(j);
            nubo_image_free(&im);
        }
        json_decref(resp);
        return rc < 0 ? cli_fail(ctx, "images get", &err) : 0;
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
