/* /v1/certificates: user TLS certificates uploaded (checked by model_certs.c), listed and
 * deleted. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "util.h"

static json_t *cert_json(struct ctl_ctx *ctx, const struct ctl_cert *c)
{
    struct nubo_certificate api = {.created_at_us = c->row.created_at_us,
                                   .not_before_us = c->not_before_us,
                                   .not_after_us = c->not_after_us};
    memcpy(api.uuid, c->row.uuid, sizeof(api.uuid));
    memcpy(api.name, c->row.name, sizeof(api.name));
    memcpy(api.common_name, c->row.cn, sizeof(api.common_name));
    snprintf(api.state, sizeof(api.state), "valid");
    snprintf(api.subject, sizeof(api.subject), "%s", c->subject);
    snprintf(api.issuer, sizeof(api.issuer), "%s", c->issuer);
    snprintf(api.serial_number, sizeof(api.serial_number), "%s", c->serial);
    /* the groups whose domains it serves */
    api.service_groups = xcalloc(ctx->svcs.n + 1, sizeof(*api.service_groups));
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        for (size_t i = 0; i < g->row.n_domains; i++)
            if (strcmp(g->row.domains[i].cert, c->row.uuid) == 0) {
                struct nubo_api_ref *r = &api.service_groups[api.n_service_groups++];
                memcpy(r->uuid, g->row.uuid, sizeof(r->uuid));
                memcpy(r->name, g->row.name, sizeof(r->name));
                break;
            }
    }
    json_t *j = nubo_certificate_encode(&api);
    nubo_certificate_free(&api);
    return j;
}

static int cmp_cert(const void *a, const void *b)
{
    const struct ctl_cert *x = *(struct ctl_cert *const *)a, *y = *(struct ctl_cert *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

static const char *cert_owner(const void *obj)
{
    return ((const struct ctl_cert *)obj)->row.owner;
}

static json_t *cert_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return cert_json(ctx, obj);
}

static void *cert_find_any(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                           const char *name)
{
    return ctl_cert_find(ctx, u->name, uuid, name);
}

static json_t *cert_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "certificate %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

static json_t *cert_delete_one(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_cert *c = obj;
    struct nubo_err err = {0};
    char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
    memcpy(uuid, c->row.uuid, sizeof(uuid));
    memcpy(name, c->row.name, sizeof(name));
    if (ctl_cert_delete(ctx, c, &err) < 0) /* a conflict here: a service group still uses it */
        return err.http_status == 409 ? nubo_item_error_code(uuid, name, NUBO_APIERR_ATTACHED, err.msg)
                                      : nubo_item_error(uuid, name, err.http_status, err.msg);
    return ctl_item_ok(uuid, name);
}

static const struct ctl_named_ops cert_ops = {
    .collection = "certificates",
    .plural = "certificates",
    .owner = cert_owner,
    .cmp = cmp_cert,
    .to_json = cert_json_any,
    .find = cert_find_any,
    .not_found = cert_not_found,
    .del = cert_delete_one,
};

static int cert_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "create: send {\"name\"?, \"cn\", \"chain\", \"pkey\"}");
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, err) < 0)
        return ctl_err_status(err, 400);
    struct nubo_cert_req req;
    if (nubo_cert_req_decode(body, &req, err) < 0) {
        err->http_status = 400;
        return -1;
    }
    struct ctl_cert *c = ctl_cert_create(ctx, &ri->user, &req, err);
    nubo_cert_req_free(&req);
    if (c == NULL)
        return -1;
    json_t *out = json_array();
    json_array_append_new(out, cert_json(ctx, c));
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "certificates", out);
    return 0;
}

int ctl_handle_certificates(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                            struct nubo_err *err)
{
    ri->route = CTL_R_CERTS;
    char buf[128];
    const char *pref;
    if (ctl_path_ref(ri, rest, buf, &pref, err) < 0)
        return -1;
    if (ri->method == EVHTTP_REQ_POST && pref == NULL)
        return cert_create(ctx, ri, err);
    if (ri->method == EVHTTP_REQ_GET || ri->method == EVHTTP_REQ_DELETE)
        return ctl_named_get_delete(ctx, ri, pref, ri->method == EVHTTP_REQ_DELETE, &ctx->certs,
                                    &cert_ops, err);
    return nubo_error_http(err, 405, "%s: use %s", ri->path,
                           pref ? "GET or DELETE" : "POST, GET or DELETE");
}
