/* POST /v1/instances: decode the create objects (one or an array), pin each image to its
 * digest (asking the registry, on the resolver thread, for tags the index does not know; the
 * request is parked meanwhile and resumes with what it decoded), then place and commit each
 * object (model_place.c) and reply, or wait until they run (wait_timeout_ms). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

#define CTL_MAX_CREATES 64 /* create objects in one request */

/* A decoded create request; lives in the parked request while the registry answers. */
struct create {
    struct ctl_resolve_batch batch; /* first: batch.done finds the create again */
    struct ctl_parked *parked;      /* while the registry is asked */
    struct ctl_user_row user;
    size_t n;
    struct nubo_create_req *crs;
    struct ctl_image_row *ims;
    bool *have_im; /* ims[i] is the pinned image */
    json_t **errs; /* item errors, NULL = fine so far */
    json_t **sgs;  /* each object's service_group, taken out */
};

static void create_free(void *data)
{
    struct create *c = data;
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n; i++) {
        nubo_create_req_free(&c->crs[i]);
        if (c->have_im[i])
            ctl_image_row_free(&c->ims[i]);
        json_decref(c->errs[i]);
        json_decref(c->sgs[i]);
    }
    free(c->crs);
    free(c->ims);
    free(c->have_im);
    free(c->errs);
    free(c->sgs);
    ctl_resolve_batch_clear(&c->batch);
    free(c);
}

/* Decode the body into c: a single object's error fails the request, an array's becomes that
 * item's error. */
static int create_decode(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, struct create *c,
                         struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri, "create: send a JSON object with at least \"image\"", "create",
                       "create objects", CTL_MAX_CREATES, &body, &batch, &n, err) < 0)
        return -1;
    c->n = n;
    c->crs = xcalloc(n, sizeof(*c->crs));
    c->ims = xcalloc(n, sizeof(*c->ims));
    c->have_im = xcalloc(n, sizeof(*c->have_im));
    c->errs = xcalloc(n, sizeof(*c->errs));
    c->sgs = xcalloc(n, sizeof(*c->sgs));
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        json_t *sg = json_is_object(e) ? json_object_get(e, "service_group") : NULL;
        if (sg && !json_is_null(sg)) {
            c->sgs[i] = json_incref(sg);
            json_object_del(e, "service_group");
            if (!json_is_object(sg)) {
                nubo_error_http(err, 400,
                                "service_group: must be {\"uuid\"}, {\"name\"} or {\"services\": "
                                "[…], \"domains\": […]}");
                if (!batch)
                    return -1;
                c->errs[i] = nubo_item_error(NULL, NULL, 400, err->msg);
                continue;
            }
        } else if (sg) {
            json_object_del(e, "service_group");
        }
        if (nubo_create_req_decode(e, &c->crs[i], err) < 0) {
            if (!batch) {
                err->http_status = 400;
                return -1;
            }
            c->errs[i] = nubo_item_error(NULL, NULL, 400, err->msg);
        }
    }
    return 0;
}

/* Pin the images: from the index, or from what the registry answered. Returns how many
 * images need the registry first (*want: what to ask). */
static size_t create_images(struct ctl_ctx *ctx, struct create *c, struct ctl_resolved **want)
{
    size_t n_want = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->errs[i] || c->have_im[i])
            continue;
        struct nubo_err err = {0};
        char repo[256], ref[160];
        const char *image = c->crs[i].image;
        int rc = ctl_image_lookup(ctx, &c->user, image, &c->ims[i], repo, ref, &err);
        if (rc < 0) {
            c->errs[i] = nubo_item_error(NULL, c->crs[i].name, err.http_status ?: 400, err.msg);
        } else if (rc == 1) {
            c->have_im[i] = true;
        } else if (ctl_resolved_find(&c->batch, repo, ref)) {
            /* asked already: the registry's answer did not give the index this image */
            const struct ctl_resolved *r = ctl_resolved_find(&c->batch, repo, ref);
            if (r->http_status == 404 || r->http_status == 0)
                nubo_error_http(&err, 404,
                                "image %.200s not found; push it first (nubo push) or check the "
                                "name",
                                image);
            else
                nubo_error_http(&err, 502, "cannot resolve image %.200s from the registry: %.250s",
                                image, r->msg);
            c->errs[i] = nubo_item_error(NULL, c->crs[i].name, err.http_status, err.msg);
        } else {
            ctl_resolve_want(want, repo, ref);
            n_want++;
        }
    }
    return n_want;
}

/* Ask the registry about want (taken). 0 = asked (c->batch.pending > 0), -1 with err. */
static int create_ask(struct ctl_ctx *ctx, struct create *c, struct ctl_resolved *want,
                      struct nubo_err *err)
{
    if (ctl_resolve_ask(ctx, &c->batch, want, err) < 0)
        return ctl_err_wrap(err, 503, "cannot ask the registry to resolve the image");
    return 0;
}

/* Place and commit every object that decoded and has its image, then reply (or wait). */
static void create_commit(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, struct create *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->n; i++)
        if (!c->errs[i])
            total += (size_t)c->crs[i].replicas + 1;
    cleanup_free struct ctl_instance **made = xcalloc(total + 1, sizeof(*made));
    size_t n_made = 0;
    json_t *out = json_array();
    int64_t wait_ms = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (c->errs[i]) {
            json_array_append(out, c->errs[i]);
            continue;
        }
        struct nubo_err err = {0};
        size_t first = n_made;
        if (ctl_place(ctx, &c->user, &c->crs[i], &c->ims[i], c->sgs[i], made, &n_made, &err) < 0) {
            json_array_append_new(
                out, nubo_item_error(NULL, c->crs[i].name, err.http_status ?: 400, err.msg));
            continue;
        }
        for (size_t k = first; k < n_made; k++)
            json_array_append_new(out, ctl_instance_json(ctx, made[k], true));
        if (c->crs[i].wait_timeout_ms < 0 || wait_ms < 0)
            wait_ms = c->crs[i].wait_timeout_ms ? -1 : wait_ms;
        else if (c->crs[i].wait_timeout_ms > wait_ms)
            wait_ms = c->crs[i].wait_timeout_ms;
    }
    if (wait_ms == 0 || n_made == 0) {
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
        return;
    }
    /* reply when every created instance runs (or the time is up) */
    size_t m = json_array_size(out);
    struct ctl_wait_item *w = xcalloc(m + 1, sizeof(*w));
    for (size_t j = 0, k = 0; j < m; j++) {
        json_t *it = json_array_get(out, j);
        const char *uuid = json_string_value(json_object_get(it, "uuid"));
        const char *st = json_string_value(json_object_get(it, "status"));
        w[j].want = NUBO_STATE_RUNNING;
        if (st && !strcmp(st, "error")) {
            w[j].done = true;
            w[j].result = json_incref(it);
            continue;
        }
        snprintf(w[j].uuid, sizeof(w[j].uuid), "%s", uuid ? uuid : "");
        if (ctl_instance_state(made[k++]) == NUBO_STATE_RUNNING) {
            w[j].done = true;
            w[j].result = json_incref(it);
        }
    }
    json_decref(out);
    ctl_wait_park(ctx, ri, w, m, wait_ms, true);
}

/* The registry answered everything c asked: pin again, maybe ask again, else commit. */
static void create_resumed(struct ctl_ctx *ctx, struct ctl_resolve_batch *b)
{
    struct create *c = (struct create *)b;
    struct ctl_parked *p = c->parked;
    struct ctl_reqinfo ri;
    ctl_reqinfo_of_parked(&ri, p);
    ri.user = c->user;
    struct ctl_resolved *want = NULL;
    struct nubo_err err = {0};
    if (create_images(ctx, c, &want) > 0) {
        if (create_ask(ctx, c, want, &err) == 0)
            return; /* still parked */
        ctl_reply_err(ctx, &ri, &err);
    } else {
        create_commit(ctx, &ri, c);
    }
    ctl_parked_free(p);
}

int ctl_handle_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    ri->route = CTL_R_INST_CREATE;
    struct create *c = xcalloc(1, sizeof(*c));
    c->user = ri->user;
    c->batch.done = create_resumed;
    struct ctl_resolved *want = NULL;
    if (create_decode(ctx, ri, c, err) < 0 ||
        (create_images(ctx, c, &want) > 0 && create_ask(ctx, c, want, err) < 0)) {
        create_free(c);
        return -1;
    }
    if (c->batch.pending > 0) { /* parked until the registry answers */
        c->parked = ctl_park(ctx, ri, &ctx->resolving, -1, NULL, c, create_free);
        return 0;
    }
    create_commit(ctx, ri, c);
    create_free(c);
    return 0;
}
