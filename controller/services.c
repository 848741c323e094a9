/* /v1/services: service groups (public ports, domains, limits) created, listed, patched and
 * deleted; the rules and the commits live in model_groups.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_autoscale.h"
#include "util.h"

#define CTL_SVC_MAX_CREATES 64

static json_t *svc_json(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    cleanup_free struct nubo_svc_group *api = xmalloc(sizeof(*api));
    ctl_svc_to_api(ctx, g, true, api);
    json_t *j = nubo_svc_group_encode(api);
    nubo_svc_group_free(api);
    return j;
}

static int svc_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri, "create: send a JSON object with at least \"services\"", "create",
                       "service group objects", CTL_SVC_MAX_CREATES, &body, &batch, &n, err) < 0)
        return -1;
    cleanup_free struct nubo_svc_create_req *req = xmalloc(sizeof(*req));
    cleanup_json json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        struct nubo_err ierr = {0};
        if (nubo_svc_create_req_decode(e, false, req, &ierr) < 0) {
            if (!batch) {
                *err = ierr;
                err->http_status = 400;
                return -1;
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, ierr.msg));
            continue;
        }
        struct ctl_svc *g = ctl_svc_create(ctx, &ri->user, req, &ierr);
        if (g == NULL)
            json_array_append_new(
                out, nubo_item_error(NULL, req->name, ierr.http_status ?: 400, ierr.msg));
        else
            json_array_append_new(out, svc_json(ctx, g));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "service_groups", steal_pointer(&out));
    return 0;
}

static json_t *svc_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "service group %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

static const char *svc_owner(const void *obj)
{
    return ((const struct ctl_svc *)obj)->row.owner;
}

static json_t *svc_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return svc_json(ctx, obj);
}

static void *svc_find_any(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                          const char *name)
{
    return ctl_svc_find(ctx, u, uuid, name);
}

static json_t *svc_delete_one(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_svc *g = obj;
    struct nubo_err err = {0};
    char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
    memcpy(uuid, g->row.uuid, sizeof(uuid));
    memcpy(name, g->row.name, sizeof(name));
    if (ctl_svc_delete(ctx, g, &err) < 0) /* a conflict here: instances still attached */
        return err.http_status == 409 ? nubo_item_error_code(uuid, name, NUBO_APIERR_ATTACHED, err.msg)
                                      : nubo_item_error(uuid, name, err.http_status, err.msg);
    return ctl_item_ok(uuid, name);
}

static const struct ctl_named_ops svc_ops = {
    .collection = "service_groups",
    .plural = "service groups",
    .owner = svc_owner,
    .cmp = ctl_svc_cmp,
    .to_json = svc_json_any,
    .find = svc_find_any,
    .not_found = svc_not_found,
    .del = svc_delete_one,
};

static int svc_patch(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref,
                     struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri,
                       "patch: send {\"uuid\"|\"name\", \"prop\", \"op\", \"value\"} (or an array "
                       "of them)",
                       "patch", "operations", CTL_SVC_MAX_CREATES, &body, &batch, &n, err) < 0)
        return -1;
    cleanup_free struct nubo_svc_patch *p = xmalloc(sizeof(*p));
    cleanup_json json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        char c[24] = "";
        if (batch)
            snprintf(c, sizeof(c), "[%zu]", i);
        struct nubo_err ierr = {0};
        if (nubo_svc_patch_decode(e, c, pref == NULL, p, &ierr) < 0) {
            if (!batch) {
                *err = ierr;
                err->http_status = 400;
                return -1;
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, ierr.msg));
            continue;
        }
        if (pref && nubo_uuid_valid(pref))
            snprintf(p->uuid, sizeof(p->uuid), "%.36s", pref);
        else if (pref) /* ctl_path_ref() admitted only uuids and names of <= 63 bytes */
            snprintf(p->name, sizeof(p->name), "%.63s", pref);
        struct ctl_svc *g = ctl_svc_find(ctx, &ri->user, p->uuid, p->name);
        if (g == NULL)
            json_array_append_new(out, svc_not_found(p->uuid, p->name));
        else if (ctl_svc_patch(ctx, g, p, &ierr) < 0)
            json_array_append_new(
                out, nubo_item_error(g->row.uuid, g->row.name, ierr.http_status, ierr.msg));
        else
            json_array_append_new(out, svc_json(ctx, g));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "service_groups", steal_pointer(&out));
    return 0;
}

int ctl_handle_services(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                        struct nubo_err *err)
{
    ri->route = CTL_R_SERVICES;
    if (ctl_autoscale_path(rest))
        return ctl_handle_autoscale(ctx, ri, rest, err);
    char buf[128];
    const char *pref;
    if (ctl_path_ref(ri, rest, buf, &pref, err) < 0)
        return -1;
    if (pref && nubo_svc_name_reserved(pref)) /* a path word, never a group's name */
        return nubo_error_http(err, 404, "no endpoint %.200s", ri->path);
    switch (ri->method) {
    case EVHTTP_REQ_POST:
        if (pref == NULL)
            return svc_create(ctx, ri, err);
        break;
    case EVHTTP_REQ_GET:
        return ctl_named_get_delete(ctx, ri, pref, false, &ctx->svcs, &svc_ops, err);
    case EVHTTP_REQ_DELETE:
        return ctl_named_get_delete(ctx, ri, pref, true, &ctx->svcs, &svc_ops, err);
    case EVHTTP_REQ_PATCH:
        return svc_patch(ctx, ri, pref, err);
    default:
        break;
    }
    return nubo_error_http(err, 405, "%s: use %s", ri->path,
                           pref ? "GET, PATCH or DELETE" : "POST, GET, PATCH or DELETE");
}
