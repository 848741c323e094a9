/* /v1/volumes: create (one object or an array), list, get and delete by uuid or name. The
 * rules live in model_volumes.c; this file only decodes, asks and replies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl_volumes.h"
#include "util.h"

#define CTL_MAX_VOLUME_CREATES 64

static json_t *vol_json(struct ctl_ctx *ctx, const struct ctl_volume *v)
{
    struct nubo_volume api;
    ctl_volume_to_api(ctx, v, &api);
    return nubo_volume_encode(&api, true);
}

static int cmp_vol(const void *a, const void *b)
{
    const struct ctl_volume *x = *(struct ctl_volume *const *)a;
    const struct ctl_volume *y = *(struct ctl_volume *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

static const char *vol_owner(const void *obj)
{
    return ((const struct ctl_volume *)obj)->row.owner;
}

static json_t *vol_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return vol_json(ctx, obj);
}

static void *vol_find_any(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                          const char *name)
{
    return ctl_volume_find(ctx, u->name, uuid, name);
}

static json_t *vol_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "volume %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

static json_t *vol_delete_one(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_volume *v = obj;
    struct nubo_err err = {0};
    char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
    memcpy(uuid, v->row.uuid, sizeof(uuid));
    memcpy(name, v->row.name, sizeof(name));
    if (ctl_volume_delete(ctx, v, &err) < 0)
        return nubo_item_error(uuid, name, err.http_status, err.msg);
    return ctl_item_ok(uuid, name);
}

static const struct ctl_named_ops vol_ops = {
    .collection = "volumes",
    .plural = "volumes",
    .owner = vol_owner,
    .cmp = cmp_vol,
    .to_json = vol_json_any,
    .find = vol_find_any,
    .not_found = vol_not_found,
    .del = vol_delete_one,
};

/* One object fails the request with its error; an array answers per item. */
static int vol_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri, "create: send {\"name\"?, \"size_mb\"} or an array of them",
                       "create", "volumes", CTL_MAX_VOLUME_CREATES, &body, &batch, &n, err) < 0)
        return -1;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        struct nubo_volume_create_req req;
        struct nubo_err e = {0};
        struct ctl_volume *v = NULL;
        if (nubo_volume_create_req_decode(batch ? json_array_get(body, i) : body, &req, &e) == 0)
            v = ctl_volume_create(ctx, &ri->user, &req, &e);
        if (v) {
            json_array_append_new(out, vol_json(ctx, v));
            continue;
        }
        if (!batch) {
            json_decref(out);
            *err = e;
            return ctl_err_status(err, 400);
        }
        json_array_append_new(out, nubo_item_error(NULL, NULL, e.http_status ?: 400, e.msg));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "volumes", out);
    return 0;
}

int ctl_handle_volumes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                       struct nubo_err *err)
{
    ri->route = CTL_R_VOLUMES;
    char buf[128];
    const char *pref;
    if (ctl_path_ref(ri, rest, buf, &pref, err) < 0)
        return -1;
    if (ri->method == EVHTTP_REQ_POST && pref == NULL)
        return vol_create(ctx, ri, err);
    if (ri->method == EVHTTP_REQ_GET || ri->method == EVHTTP_REQ_DELETE) {
        struct ctl_map empty = {0};
        return ctl_named_get_delete(ctx, ri, pref, ri->method == EVHTTP_REQ_DELETE,
                                    ctx->vols ? &ctx->vols->by_uuid : &empty, &vol_ops, err);
    }
    return nubo_error_http(err, 405, "%s: use %s", ri->path,
                           pref ? "GET or DELETE" : "POST, GET or DELETE");
}
