/* Deleting a user (issue 11, observation 8): what it owns, and with force that goes first —
 * instances (their inline groups and volumes with them), then its service groups, volumes,
 * certificates and its images in the index — then its tokens, quotas and the user itself, so
 * nothing is left pointing at a missing owner. Each step commits on its own: a force that
 * fails half-way has deleted what it says, and running it again finishes the rest. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

struct image_refs {
    char (*refs)[NUBO_IMAGE_REF_MAX];
    size_t n, cap;
};

static int image_cb(void *arg, const struct ctl_image_row *im)
{
    struct image_refs *r = arg;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->refs = xrealloc(r->refs, r->cap * sizeof(*r->refs));
    }
    snprintf(r->refs[r->n++], NUBO_IMAGE_REF_MAX, "%s", im->digest_ref);
    return 0;
}

int ctl_user_owned(struct ctl_ctx *ctx, const char *owner, struct ctl_user_owned *out,
                   struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    ctl_map_foreach(&ctx->instances, e)
        out->instances += strcmp(((struct ctl_instance *)e->val)->row.owner, owner) == 0;
    ctl_map_foreach(&ctx->svcs, e)
        out->services += strcmp(((struct ctl_svc *)e->val)->row.owner, owner) == 0;
    ctl_map_foreach(&ctx->certs, e)
        out->certificates += strcmp(((struct ctl_cert *)e->val)->row.owner, owner) == 0;
    ctl_map_foreach(&ctx->vols->by_uuid, e)
        out->volumes += strcmp(((struct ctl_volume *)e->val)->row.owner, owner) == 0;
    struct image_refs r = {0};
    int rc = ctl_store_images_list(&ctx->store, owner, NULL, image_cb, &r, err);
    free(r.refs);
    out->images = r.n;
    return rc;
}

/* Every object of owner in map, collected first: deleting changes the map. */
static void **owned(const struct ctl_map *m, const char *owner, size_t owner_off, size_t *n)
{
    void **v = xcalloc(m->n + 1, sizeof(*v));
    *n = 0;
    ctl_map_foreach(m, e)
        if (strcmp((const char *)e->val + owner_off, owner) == 0)
            v[(*n)++] = e->val;
    return v;
}

static int delete_owned(struct ctl_ctx *ctx, const char *owner, struct nubo_err *err)
{
    size_t n;
    cleanup_free void **insts =
        owned(&ctx->instances, owner, offsetof(struct ctl_instance, row.owner), &n);
    if (n && ctl_instances_delete(ctx, (struct ctl_instance **)insts, n, err) < 0)
        return nubo_error_wrap(err, "deleting its instances");
    cleanup_free void **svcs = owned(&ctx->svcs, owner, offsetof(struct ctl_svc, row.owner), &n);
    for (size_t i = 0; i < n; i++)
        if (ctl_svc_delete(ctx, svcs[i], err) < 0)
            return nubo_error_wrap(err, "deleting its service groups");
    cleanup_free void **vols =
        owned(&ctx->vols->by_uuid, owner, offsetof(struct ctl_volume, row.owner), &n);
    for (size_t i = 0; i < n; i++)
        if (ctl_volume_delete(ctx, vols[i], err) < 0)
            return nubo_error_wrap(err, "deleting its volumes");
    cleanup_free void **certs = owned(&ctx->certs, owner, offsetof(struct ctl_cert, row.owner), &n);
    for (size_t i = 0; i < n; i++)
        if (ctl_cert_delete(ctx, certs[i], err) < 0)
            return nubo_error_wrap(err, "deleting its certificates");
    struct image_refs r = {0};
    int rc = ctl_store_images_list(&ctx->store, owner, NULL, image_cb, &r, err);
    for (size_t i = 0; rc == 0 && i < r.n; i++)
        rc = ctl_image_forget(ctx, r.refs[i], err);
    free(r.refs);
    return rc < 0 ? nubo_error_wrap(err, "deleting its images") : 0;
}

int ctl_user_delete(struct ctl_ctx *ctx, struct ctl_user_row *u, bool force, struct nubo_err *err)
{
    struct ctl_user_owned o;
    if (ctl_user_owned(ctx, u->name, &o, err) < 0)
        return -1;
    size_t total = o.instances + o.services + o.volumes + o.certificates + o.images;
    if (total && !force)
        return nubo_error_http(err, 409,
                               "user %s owns %zu instance(s), %zu service group(s), %zu "
                               "volume(s), %zu certificate(s), %zu image(s): delete them first, "
                               "or DELETE /v1/users/%s?force=true to delete them with the user",
                               u->name, o.instances, o.services, o.volumes, o.certificates,
                               o.images, u->name);
    if (total && delete_owned(ctx, u->name, err) < 0)
        return ctl_err_status(err, 500), nubo_error_wrap(err, "user %s", u->name);
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_user_delete(&ctx->store, u->uuid, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    log_info("user %s deleted%s", u->name, total ? " with everything it owned" : "");
    ctl_auth_forget_user(ctx, u);
    return 0;
}
