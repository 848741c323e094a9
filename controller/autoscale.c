/* /v1/services/autoscale and /v1/services/{uuid|name}/autoscale[/policies[/{name}]]: a service
 * group's autoscale configuration and its step policies; the rules, the commits and the loop
 * live in model_autoscale.c. Replies use service_groups (configurations) and policies. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl_autoscale.h"
#include "util.h"

#define CTL_AS_MAX_CREATES 64

/* rest split at '/': up to 4 segments ("", "autoscale") or (ref, "autoscale", "policies", name). */
struct as_path {
    char ref[128]; /* the group, "" = batch */
    bool policies;
    char policy[128]; /* "" = all / the body's */
};

static int as_path_parse(const char *rest, struct as_path *p)
{
    memset(p, 0, sizeof(*p));
    char seg[4][128];
    size_t n = 0;
    const char *s = rest;
    while (*s == '/' && n < 4) {
        s++;
        size_t len = strcspn(s, "/");
        if (len == 0 || len >= sizeof(seg[0]))
            return -1;
        memcpy(seg[n], s, len);
        seg[n++][len] = '\0';
        s += len;
    }
    if (*s)
        return -1;
    if (n == 1 && strcmp(seg[0], "autoscale") == 0)
        return 0;
    if (n < 2 || strcmp(seg[1], "autoscale") != 0 ||
        (!nubo_uuid_valid(seg[0]) && !nubo_name_valid(seg[0])))
        return -1;
    snprintf(p->ref, sizeof(p->ref), "%s", seg[0]);
    if (n == 2)
        return 0;
    if (strcmp(seg[2], "policies") != 0)
        return -1;
    p->policies = true;
    if (n == 4) {
        if (!nubo_name_valid(seg[3]))
            return -1;
        snprintf(p->policy, sizeof(p->policy), "%s", seg[3]);
    }
    return 0;
}

bool ctl_autoscale_path(const char *rest)
{
    /* /autoscale itself, or anything under /{ref}/autoscale (a bad tail is our 404) */
    const char *second = rest[0] == '/' ? strchr(rest + 1, '/') : NULL;
    return strcmp(rest, "/autoscale") == 0 || (second && strncmp(second, "/autoscale", 10) == 0 &&
                                               (second[10] == '\0' || second[10] == '/'));
}

static json_t *group_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "service group %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

/* An item error for a model failure on group g (404 = not configured: code 27). */
static json_t *group_error(const struct ctl_svc *g, const struct nubo_err *e)
{
    int st = e->http_status ? e->http_status : 500;
    if (st == 404)
        return nubo_item_error_code(g->row.uuid, g->row.name, NUBO_APIERR_AUTOSCALE_NOT_CONFIGURED,
                                    e->msg);
    if (st == 409)
        return nubo_item_error_code(g->row.uuid, g->row.name, NUBO_APIERR_AUTOSCALE_CONFIGURED,
                                    e->msg);
    if (st == 403)
        return nubo_item_error_code(g->row.uuid, g->row.name, NUBO_APIERR_AUTOSCALE_SIZE_OOR,
                                    e->msg);
    return nubo_item_error(g->row.uuid, g->row.name, st, e->msg);
}

static json_t *config_json(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    struct nubo_as_config c;
    ctl_autoscale_view(ctx, g, &c);
    json_t *j = nubo_as_config_encode(&c);
    nubo_as_config_free(&c);
    return j;
}

/* POST /v1/services/autoscale: one configuration or an array of them. */
static int as_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri,
                       "autoscale: send {\"uuid\"|\"name\", \"min_size\", \"max_size\", "
                       "\"master\", \"policies\"}",
                       "autoscale", "configurations", CTL_AS_MAX_CREATES, &body, &batch, &n,
                       err) < 0)
        return -1;
    cleanup_json json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        struct nubo_err ierr = {0};
        struct nubo_as_config req;
        if (nubo_as_config_req_decode(e, &req, &ierr) < 0) {
            if (!batch) {
                *err = ierr;
                return ctl_err_status(err, 400);
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, ierr.msg));
            continue;
        }
        struct ctl_svc *g = ctl_svc_find(ctx, &ri->user, req.uuid, req.name);
        if (g == NULL)
            json_array_append_new(out, group_not_found(req.uuid, req.name));
        else if (ctl_autoscale_create(ctx, &ri->user, g, &req, &ierr) < 0)
            json_array_append_new(out, group_error(g, &ierr));
        else
            json_array_append_new(out, ctl_item_ok(g->row.uuid, g->row.name));
        nubo_as_config_free(&req);
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "service_groups", steal_pointer(&out));
    return 0;
}

static const char *group_owner(const void *obj)
{
    return ((const struct ctl_svc *)obj)->row.owner;
}

static json_t *config_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return config_json(ctx, obj);
}

static void *find_group_any(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                            const char *name)
{
    return ctl_svc_find(ctx, u, uuid, name);
}

static json_t *config_delete(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_svc *g = obj;
    struct nubo_err err = {0};
    if (ctl_autoscale_delete(ctx, g, &err) < 0)
        return group_error(g, &err);
    return ctl_item_ok(g->row.uuid, g->row.name);
}

static bool configured(struct ctl_ctx *ctx, const void *obj)
{
    return ctl_autoscale_of(ctx, ((const struct ctl_svc *)obj)->row.uuid) != NULL;
}

/* GET/DELETE of configurations: the path's group, look-ups, or (GET) every configured group. */
static const struct ctl_named_ops config_ops = {
    .collection = "service_groups",
    .plural = "service groups",
    .owner = group_owner,
    .cmp = ctl_svc_cmp,
    .to_json = config_json_any,
    .find = find_group_any,
    .not_found = group_not_found,
    .del = config_delete,
    .listed = configured,
};

static json_t *policy_item_error(const char *name, const struct nubo_err *e)
{
    return nubo_item_error(NULL, name, e->http_status ? e->http_status : 500, e->msg);
}

/* The group of a policies path, configured; NULL with err (404) otherwise. */
static struct ctl_svc *policy_group(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *ref,
                                    struct nubo_err *err)
{
    struct ctl_svc *g = nubo_uuid_valid(ref) ? ctl_svc_find(ctx, &ri->user, ref, NULL)
                                             : ctl_svc_find(ctx, &ri->user, NULL, ref);
    if (g == NULL) {
        nubo_error_http(err, 404, "service group %s not found", ref);
        return NULL;
    }
    if (ctl_autoscale_of(ctx, g->row.uuid) == NULL) {
        nubo_error_http(err, 404,
                        "service group %s has no autoscale configuration; create it first (nubo "
                        "services autoscale init)",
                        g->row.name);
        return NULL;
    }
    return g;
}

/* POST /v1/services/{ref}/autoscale/policies: one policy or an array of them. */
static int policy_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const struct as_path *p,
                         struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    bool batch;
    size_t n;
    if (ctl_body_items(ctx, ri,
                       "policies: send {\"name\", \"type\":\"step\", \"metric\", "
                       "\"adjustment_type\", \"steps\"}",
                       "policies", "policies", NUBO_AS_MAX_POLICIES, &body, &batch, &n, err) < 0)
        return -1;
    struct ctl_svc *g = policy_group(ctx, ri, p->ref, err);
    if (g == NULL)
        return -1;
    cleanup_free struct nubo_as_policy *pol = xmalloc(sizeof(*pol));
    cleanup_json json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        struct nubo_err ierr = {0};
        char c[24] = "";
        if (batch)
            snprintf(c, sizeof(c), "[%zu]", i);
        if (nubo_as_policy_decode(e, c, pol, &ierr) < 0) {
            if (!batch) {
                *err = ierr;
                return ctl_err_status(err, 400);
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, ierr.msg));
            continue;
        }
        if (ctl_autoscale_policy_add(ctx, g, pol, &ierr) < 0)
            json_array_append_new(out, policy_item_error(pol->name, &ierr));
        else
            json_array_append_new(out,
                                  json_pack("{s:s, s:s}", "status", "success", "name", pol->name));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "policies", steal_pointer(&out));
    return 0;
}

/* GET/DELETE of policies: the path's one, the body's [{name}], or (GET) all of them. */
static int policy_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const struct as_path *p,
                             bool del, struct nubo_err *err)
{
    bool all;
    cleanup_json json_t *refs =
        ctl_collect_refs(ctx, ri, p->policy[0] ? p->policy : NULL, &all, err);
    if (refs == NULL)
        return ctl_err_status(err, 400);
    if (all && del)
        return nubo_error_http(err, 400, "delete: name the policies (nothing deleted)");
    struct ctl_svc *g = policy_group(ctx, ri, p->ref, err);
    if (g == NULL)
        return -1;
    struct nubo_as_config c;
    ctl_autoscale_view(ctx, g, &c);
    json_t *out = json_array();
    if (all) {
        for (size_t i = 0; i < c.n_policies; i++) {
            json_t *j = nubo_as_policy_encode(&c.policies[i]);
            json_object_set_new(j, "status", json_string("success"));
            json_array_append_new(out, j);
        }
    }
    size_t i;
    json_t *e;
    json_array_foreach(refs, i, e) {
        char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
        struct nubo_err ierr = {0};
        if (ctl_ref_of(e, i, uuid, name, &ierr) < 0 || (uuid[0] && !name[0])) {
            if (ierr.msg[0] == '\0') /* policies have names only */
                nubo_error_http(&ierr, 404, "policy %s not found", uuid);
            json_array_append_new(out, policy_item_error(NULL, &ierr));
            continue;
        }
        if (del) {
            if (ctl_autoscale_policy_delete(ctx, g, name, &ierr) < 0)
                json_array_append_new(out, policy_item_error(name, &ierr));
            else
                json_array_append_new(out,
                                      json_pack("{s:s, s:s}", "status", "success", "name", name));
            continue;
        }
        size_t k = 0;
        while (k < c.n_policies && strcmp(c.policies[k].name, name) != 0)
            k++;
        if (k == c.n_policies) {
            nubo_error_http(&ierr, 404, "service group %s has no policy named %s", g->row.name,
                            name);
            json_array_append_new(out, policy_item_error(name, &ierr));
            continue;
        }
        json_t *j = nubo_as_policy_encode(&c.policies[k]);
        json_object_set_new(j, "status", json_string("success"));
        json_array_append_new(out, j);
    }
    nubo_as_config_free(&c);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "policies", out);
    return 0;
}

int ctl_handle_autoscale(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                         struct nubo_err *err)
{
    struct as_path p;
    if (as_path_parse(rest, &p) < 0)
        return nubo_error_http(err, 404, "no endpoint %.200s", ri->path);
    if (p.policies) {
        switch (ri->method) {
        case EVHTTP_REQ_POST:
            if (!p.policy[0])
                return policy_create(ctx, ri, &p, err);
            break;
        case EVHTTP_REQ_GET:
            return policy_get_delete(ctx, ri, &p, false, err);
        case EVHTTP_REQ_DELETE:
            return policy_get_delete(ctx, ri, &p, true, err);
        default:
            break;
        }
        return nubo_error_http(err, 405, "%s: use %s", ri->path,
                               p.policy[0] ? "GET or DELETE" : "POST, GET or DELETE");
    }
    switch (ri->method) {
    case EVHTTP_REQ_POST:
        if (!p.ref[0])
            return as_create(ctx, ri, err);
        break;
    case EVHTTP_REQ_GET:
    case EVHTTP_REQ_DELETE:
        return ctl_named_get_delete(ctx, ri, p.ref[0] ? p.ref : NULL,
                                    ri->method == EVHTTP_REQ_DELETE, &ctx->svcs, &config_ops, err);
    default:
        break;
    }
    return nubo_error_http(err, 405, "%s: use %s", ri->path,
                           p.ref[0] ? "GET or DELETE" : "POST, GET or DELETE");
}
