/* /v1/users/quotas and /v1/users/{uuid|name}/quotas: what a user holds and may hold (GET: a
 * user sees its own, an admin anyone's, /v1/users/quotas lists every user for an admin), and
 * PATCH (admin, nubo extension) to set one user's hard limits; the model is model_quotas.c. */
#include <stdio.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "util.h"

static json_t *quota_json(struct ctl_ctx *ctx, const struct ctl_user_row *u)
{
    struct nubo_user_quota q;
    ctl_quota_view(ctx, u, &q);
    return nubo_user_quota_encode(&q);
}

int ctl_handle_quotas(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err)
{
    ri->route = CTL_R_USERS;
    const struct ctl_user_row *me = ctl_map_get(&ctx->users_by_name, ri->user.name);
    bool admin = me && me->admin;
    char ref[NUBO_API_USER_MAX + NUBO_UUID_STR_LEN + 2] = "";
    size_t len = strlen(rest) - strlen("/quotas");
    if (len > 0 && (len - 1 >= sizeof(ref) || rest[0] != '/' || memchr(rest + 1, '/', len - 1)))
        return nubo_error_http(err, 404, "no endpoint %s (GET /v1/users/{uuid}/quotas)",
                               ri->path);
    if (len > 0)
        snprintf(ref, sizeof(ref), "%.*s", (int)(len - 1), rest + 1);
    if (ref[0] == '\0') {
        if (ri->method != EVHTTP_REQ_GET)
            return nubo_error_http(err, 405, "%s: use GET (PATCH /v1/users/{uuid}/quotas sets "
                                             "a user's limits)",
                                   ri->path);
        json_t *out = json_array();
        ctl_map_foreach(&ctx->users_by_name, e)
        {
            const struct ctl_user_row *u = e->val;
            if (admin || strcmp(u->name, ri->user.name) == 0)
                json_array_append_new(out, quota_json(ctx, u));
        }
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "quotas", out);
        return 0;
    }
    const struct ctl_user_row *u = ctl_user_find(ctx, ref);
    if (u == NULL || (!admin && strcmp(u->name, ri->user.name) != 0))
        return nubo_error_http(err, 404, "user '%s' not found", ref);
    if (ri->method == EVHTTP_REQ_PATCH) {
        if (!admin)
            return nubo_error_http(err, 403, "only an admin sets quotas");
        cleanup_json json_t *body = NULL;
        if (ri->body == NULL)
            return nubo_error_http(err, 400,
                                   "quotas: send {\"hard\": {\"live_memory_mb\": 4096, …}}");
        if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, err) < 0)
            return ctl_err_status(err, 400);
        struct nubo_quota_set set;
        if (nubo_quota_set_decode(body, &set, err) < 0 || ctl_quota_set(ctx, u, &set, err) < 0)
            return -1;
    } else if (ri->method != EVHTTP_REQ_GET) {
        return nubo_error_http(err, 405, "%s: use GET or PATCH", ri->path);
    }
    json_t *out = json_array();
    json_array_append_new(out, quota_json(ctx, u));
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "quotas", out);
    return 0;
}
