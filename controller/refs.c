/* Look-ups by {uuid}|{name} shared by /v1/services and /v1/certificates: the path's reference,
 * ?uuid=/?name= and bodies, and GET/DELETE over any kind of named object (struct
 * ctl_named_ops says how the kinds differ). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "util.h"

/* The {uuid}|{name} items a request names: path, ?uuid=/?name=, or a body (object or array).
 * *all when none. Returns a new array or NULL with err. */
json_t *ctl_collect_refs(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                         bool *all, struct nubo_err *err)
{
    *all = false;
    json_t *list = json_array();
    if (path_ref) {
        json_array_append_new(
            list, json_pack("{s:s}", nubo_uuid_valid(path_ref) ? "uuid" : "name", path_ref));
        return list;
    }
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "uuid") || !strcmp(kv->key, "name")) {
            char buf[4096];
            if (nubo_snprintf(buf, sizeof(buf), "%s", kv->value) < 0) {
                json_decref(list);
                nubo_error_http(err, 400, "query %s: too long", kv->key);
                return NULL;
            }
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_array_append_new(list, json_pack("{s:s}", kv->key, t));
        } else if (strcmp(kv->key, "details") == 0) {
            bool details; /* every answer has the details; a bad value is still refused */
            if (ctl_query_bool(kv->key, kv->value, &details, err) < 0) {
                json_decref(list);
                return NULL;
            }
        } else {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", kv->key);
            json_decref(list);
            nubo_error_http(err, 400, "unknown query parameter '%s'", shown);
            return NULL;
        }
    }
    if (ri->body) {
        json_t *body = NULL;
        if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, err) < 0) {
            json_decref(list);
            return NULL;
        }
        if (json_is_object(body)) {
            json_array_append(list, body);
        } else if (json_is_array(body) && json_array_size(body) <= NUBO_API_MAX_ITEMS) {
            json_array_extend(list, body);
        } else {
            json_decref(body);
            json_decref(list);
            nubo_error_http(err, 400, "body: must be {\"uuid\"}, {\"name\"} or an array of them");
            return NULL;
        }
        json_decref(body);
    }
    *all = json_array_size(list) == 0;
    return list;
}

/* One look-up item -> uuid/name; 400 on a bad shape. */
int ctl_ref_of(json_t *e, size_t i, char uuid[NUBO_UUID_STR_LEN + 1],
               char name[NUBO_NAME_MAX + 1], struct nubo_err *err)
{
    static const char *const keys[] = {"uuid", "name", NULL};
    char ctx[24];
    snprintf(ctx, sizeof(ctx), "[%zu]", i);
    uuid[0] = name[0] = '\0';
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be {\"uuid\"} or {\"name\"}", ctx);
    if (pj_only_keys(e, ctx, keys, err) < 0 ||
        pj_str(e, ctx, "uuid", false, uuid, NUBO_UUID_STR_LEN + 1, err) < 0 ||
        pj_str(e, ctx, "name", false, name, NUBO_NAME_MAX + 1, err) < 0)
        return -1;
    if (!uuid[0] && !name[0])
        return nubo_error_http(err, 400, "%s: give uuid or name", ctx);
    return 0;
}

int ctl_body_items(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, const char *missing,
                   const char *verb, const char *noun, size_t max, json_t **body, bool *batch,
                   size_t *n, struct nubo_err *err)
{
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "%s", missing);
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, body, err) < 0)
        return ctl_err_status(err, 400);
    *batch = json_is_array(*body);
    *n = *batch ? json_array_size(*body) : 1;
    if (*batch && (*n == 0 || *n > max))
        return nubo_error_http(err, 400, "%s: an array of 1..%zu %s", verb, max, noun);
    return 0;
}

int ctl_path_ref(const struct ctl_reqinfo *ri, const char *rest, char buf[128], const char **ref,
                 struct nubo_err *err)
{
    *ref = NULL;
    if (rest[0] != '/')
        return 0;
    if (strchr(rest + 1, '/') || strlen(rest + 1) >= 128 ||
        (!nubo_uuid_valid(rest + 1) && !nubo_name_valid(rest + 1)))
        return nubo_error_http(err, 404, "no endpoint %.200s", ri->path);
    snprintf(buf, 128, "%s", rest + 1);
    *ref = buf;
    return 0;
}

/* GET lists the caller's objects of map (all, sorted) or the ones named; DELETE needs names. */
int ctl_named_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref, bool del,
                         const struct ctl_map *map, const struct ctl_named_ops *ops,
                         struct nubo_err *err)
{
    bool all;
    cleanup_json json_t *refs = ctl_collect_refs(ctx, ri, pref, &all, err);
    if (refs == NULL)
        return ctl_err_status(err, 400);
    if (all && del)
        return nubo_error_http(err, 400, "delete: name the %s by uuid or name (nothing deleted)",
                               ops->plural);
    json_t *out = json_array();
    if (all) {
        cleanup_free void **v = xcalloc(map->n + 1, sizeof(*v));
        size_t cnt = 0;
        ctl_map_foreach(map, e)
        {
            if (strcmp(ops->owner(e->val), ri->user.name) == 0 &&
                (ops->listed == NULL || ops->listed(ctx, e->val)))
                v[cnt++] = e->val;
        }
        qsort(v, cnt, sizeof(*v), ops->cmp);
        for (size_t i = 0; i < cnt; i++) {
            json_t *j = ops->to_json(ctx, v[i]);
            json_object_del(j, "status");
            json_array_append_new(out, j);
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, ops->collection, out, 0));
        return 0;
    }
    size_t i;
    json_t *e;
    json_array_foreach(refs, i, e)
    {
        char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
        struct nubo_err ierr = {0};
        if (ctl_ref_of(e, i, uuid, name, &ierr) < 0) {
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, ierr.msg));
            continue;
        }
        void *obj = ops->find(ctx, &ri->user, uuid, name);
        if (obj == NULL)
            json_array_append_new(out, ops->not_found(uuid, name));
        else
            json_array_append_new(out, del ? ops->del(ctx, obj) : ops->to_json(ctx, obj));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, ops->collection, out);
    return 0;
}
