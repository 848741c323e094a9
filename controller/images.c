/* /v1/images (and the legacy /v1/images/list): the visible images, or look-ups by uuid,
 * digest or tag (a tag the index does not know is asked of the registry while the request is
 * parked); and POST /registry/events, the registry's push and delete notifications. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "oci_image.h"
#include "util.h"

#define CTL_REG_EVENTS_MAX 1024

/* ---- POST /registry/events ---- */

static bool manifest_type(const char *mt)
{
    return mt && (!strcmp(mt, NUBO_MEDIA_OCI_INDEX) || !strcmp(mt, NUBO_MEDIA_OCI_MANIFEST) ||
                  !strcmp(mt, NUBO_MEDIA_DOCKER_MANIFEST) || !strcmp(mt, NUBO_MEDIA_DOCKER_LIST));
}

/* With registry tokens on, the event's actor is the token's subject: only the namespace's
 * owner (or an admin) may have pushed there; anything else is not indexed. */
static bool pusher_owns(struct ctl_ctx *ctx, json_t *ev, const char *owner)
{
    if (ctx->regtoken_key == NULL)
        return true;
    const char *who = json_string_value(json_object_get(json_object_get(ev, "actor"), "name"));
    const struct ctl_user_row *u = who ? ctl_map_get(&ctx->users_by_name, who) : NULL;
    return u && (u->admin || strcmp(u->name, owner) == 0);
}

int ctl_handle_registry_events(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    if (ri->method != EVHTTP_REQ_POST)
        return nubo_error_http(err, 405, "registry events: use POST");
    if (ctx->cfg.registry_secret[0] == '\0')
        return nubo_error_http(err, 403,
                               "registry notifications are off: set [registry] "
                               "notification_secret");
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(ri->req), "Authorization");
    char want[300];
    snprintf(want, sizeof(want), "Bearer %s", ctx->cfg.registry_secret);
    if (a == NULL || strcmp(a, want) != 0)
        return nubo_error_http(err, 401, "registry events: wrong or missing notification secret");
    cleanup_json json_t *j = NULL;
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "registry events: empty body");
    if (pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, err) < 0)
        return ctl_err_status(err, 400);
    json_t *events = json_object_get(j, "events");
    if (!json_is_array(events) || json_array_size(events) > CTL_REG_EVENTS_MAX)
        return nubo_error_http(err, 400, "registry events: expected {\"events\": [...]}");
    size_t i, indexed = 0;
    json_t *ev;
    json_array_foreach(events, i, ev)
    {
        const char *action = json_string_value(json_object_get(ev, "action"));
        json_t *t = json_object_get(ev, "target");
        const char *mt = json_string_value(json_object_get(t, "mediaType"));
        const char *repo = json_string_value(json_object_get(t, "repository"));
        const char *digest = json_string_value(json_object_get(t, "digest"));
        const char *tag = json_string_value(json_object_get(t, "tag"));
        json_int_t size = json_integer_value(json_object_get(t, "size"));
        if (!action || !repo || !digest || !nubo_digest_valid(digest) || strlen(repo) >= 200)
            continue;
        char full[NUBO_IMAGE_REF_MAX];
        snprintf(full, sizeof(full), "%s@%s", repo, digest);
        struct nubo_api_image_ref r;
        if (nubo_api_image_ref_parse(full, &r, NULL) < 0 || !r.owner[0])
            continue;
        if (!strcmp(action, "push") && !pusher_owns(ctx, ev, r.owner)) {
            log_warnx("registry events: push to %s by someone who does not own %s/: not indexed",
                      full, r.owner);
            continue;
        }
        if (!strcmp(action, "push") && manifest_type(mt) && tag && tag[0] && strlen(tag) < 128) {
            /* index at once from the event; the worker fills in args/env/size */
            if (ctl_image_index(ctx, r.repo, tag, NULL, digest, size, err) < 0) {
                err->http_status = 500;
                return -1;
            }
            struct nubo_err qerr = {0};
            ctl_resolve_async(ctx, r.repo, digest, NULL, &qerr);
            indexed++;
        } else if (!strcmp(action, "delete")) {
            if (ctl_image_forget(ctx, full, err) < 0)
                return -1;
            indexed++;
        }
    }
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   json_pack("{s:s, s:I}", "status", "success", "indexed", (json_int_t)indexed));
    return 0;
}

/* ---- GET /v1/images ---- */

static json_t *image_json(struct ctl_ctx *ctx, const struct ctl_image_row *row, bool legacy)
{
    struct nubo_image im = {0};
    memcpy(im.uuid, row->uuid, sizeof(im.uuid));
    im.created_at_us = row->created_at_us;
    snprintf(im.owner, sizeof(im.owner), "%s", row->owner);
    memcpy(im.url, row->digest_ref, sizeof(im.url));
    struct nubo_err err = {0};
    if (ctl_store_image_tags(&ctx->store, row->digest_ref, &im.tags, &im.n_tags, &err) < 0) {
        im.tags = NULL;
        im.n_tags = 0;
    }
    im.initrd_or_rom = row->initrd;
    im.size_in_bytes = row->size_in_bytes;
    im.args = row->args;
    im.n_args = row->n_args;
    im.env = row->env;
    im.n_env = row->n_env;
    json_t *j = legacy ? nubo_image_encode_legacy(&im) : nubo_image_encode(&im);
    pj_strv_free(im.tags, im.n_tags);
    return j;
}

struct list_ctx {
    struct ctl_ctx *ctx;
    json_t *out;
    const char *ns;
    bool tagged;
    bool legacy; /* GET /images/list */
};

static int list_cb(void *arg, const struct ctl_image_row *row)
{
    struct list_ctx *lc = arg;
    if (lc->ns && strcmp(lc->ns, row->owner) != 0)
        return 0;
    json_t *j = image_json(lc->ctx, row, lc->legacy);
    if (lc->tagged && json_array_size(json_object_get(j, "tags")) == 0) {
        json_decref(j);
        return 0;
    }
    return json_array_append_new(lc->out, j);
}

/* A look-up request, decoded; lives in the parked request while the registry answers. */
struct lookups {
    struct ctl_resolve_batch batch; /* first: batch.done finds it again */
    struct ctl_parked *parked;
    struct ctl_user_row user;
    json_t *looks; /* [{kind: value}] */
    bool legacy;   /* GET /images/list */
};

static void lookups_free(void *data)
{
    struct lookups *l = data;
    if (l == NULL)
        return;
    json_decref(l->looks);
    ctl_resolve_batch_clear(&l->batch);
    free(l);
}

/* One look-up. A tag or digest the index does not know is asked of the registry: then NULL
 * comes back and *want lists what to resolve before answering (l->batch: what was asked). */
static json_t *lookup_one(struct ctl_ctx *ctx, struct lookups *l, const char *kind,
                          const char *value, struct ctl_resolved **want)
{
    const struct ctl_user_row *u = &l->user;
    struct ctl_image_row row;
    struct nubo_err err = {0};
    int rc = 0;
    char repo[256] = "", ref[160] = "";
    if (!strcmp(kind, "uuid")) {
        if (!nubo_uuid_valid(value))
            return nubo_item_error(NULL, NULL, 400, "uuid: not a UUID");
        rc = ctl_store_image_by_uuid(&ctx->store, value, &row, &err);
    } else {
        rc = ctl_image_lookup(ctx, u, value, &row, repo, ref, &err);
        if (rc == 0 && repo[0]) {
            struct ctl_resolved *r = ctl_resolved_find(&l->batch, repo, ref);
            if (r && r->http_status != 0 && r->http_status != 404) {
                char msg[NUBO_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "cannot ask the registry for %.200s: %.250s", value,
                         r->msg);
                return nubo_item_error(NULL, NULL, 502, msg);
            }
            if (r == NULL && ctx->resolver_running) {
                ctl_resolve_want(want, repo, ref);
                return NULL;
            }
        }
        if (rc < 0 && err.http_status == 404)
            rc = 0;
    }
    if (rc < 0)
        return nubo_item_error(NULL, NULL, err.http_status ?: 500, err.msg);
    if (rc == 0 || !ctl_image_visible(u, row.owner)) {
        if (rc == 1)
            ctl_image_row_free(&row);
        char msg[600];
        snprintf(msg, sizeof(msg), "image %s %.500s not found", kind, value);
        return nubo_item_error(NULL, NULL, 404, msg);
    }
    json_t *j = image_json(ctx, &row, l->legacy);
    ctl_image_row_free(&row);
    return j;
}

/* Answer l's look-ups, or ask the registry first (1 = parked, -1 with err). */
static int lookups_answer(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, struct lookups *l,
                          struct nubo_err *err)
{
    json_t *out = json_array();
    struct ctl_resolved *want = NULL;
    size_t i;
    json_t *e;
    json_array_foreach(l->looks, i, e)
    {
        const char *k;
        json_t *v;
        json_object_foreach(e, k, v)
        {
            json_t *item = lookup_one(ctx, l, k, json_string_value(v), &want);
            if (item)
                json_array_append_new(out, item);
        }
    }
    if (want == NULL) {
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "images", out);
        return 0;
    }
    json_decref(out);
    /* ask the registry on the worker thread, then answer everything at once */
    if (ctl_resolve_ask(ctx, &l->batch, want, err) < 0)
        return ctl_err_wrap(err, 503, "cannot ask the registry about the image");
    return 1;
}

static void lookups_resumed(struct ctl_ctx *ctx, struct ctl_resolve_batch *b)
{
    struct lookups *l = (struct lookups *)b;
    struct ctl_parked *p = l->parked;
    struct ctl_reqinfo ri;
    ctl_reqinfo_of_parked(&ri, p);
    struct nubo_err err = {0};
    int rc = lookups_answer(ctx, &ri, l, &err);
    if (rc == 1)
        return; /* asked again: still parked */
    if (rc < 0)
        ctl_reply_err(ctx, &ri, &err);
    ctl_parked_free(p);
}

/* The look-ups a body names (an object or an array of {digest}|{tag}|{uuid}). */
static int body_looks(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, json_t *looks,
                      bool *tagged, struct nubo_err *err)
{
    cleanup_json json_t *b = NULL;
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &b, err) < 0)
        return -1;
    json_t *arr = json_is_array(b) ? b : NULL;
    size_t n = arr ? json_array_size(arr) : 1;
    if (n > NUBO_API_MAX_ITEMS)
        return nubo_error_http(err, 400, "images: at most %d look-ups", NUBO_API_MAX_ITEMS);
    for (size_t i = 0; i < n; i++) {
        json_t *e = arr ? json_array_get(arr, i) : b;
        static const char *const allowed[] = {"uuid", "digest", "tag", "tagged", NULL};
        if (!json_is_object(e))
            return nubo_error_http(err, 400,
                                   "images: look-ups are {\"digest\"}, {\"tag\"} or {\"uuid\"} "
                                   "objects");
        if (pj_only_keys(e, "images", allowed, err) < 0)
            return ctl_err_status(err, 400);
        const char *k = json_object_get(e, "uuid")     ? "uuid"
                        : json_object_get(e, "digest") ? "digest"
                        : json_object_get(e, "tag")    ? "tag"
                                                       : NULL;
        if (k == NULL) {
            if (json_object_get(e, "tagged")) {
                if (!json_is_boolean(json_object_get(e, "tagged")))
                    return nubo_error_http(err, 400, "images: tagged must be true or false");
                *tagged = json_is_true(json_object_get(e, "tagged"));
                continue;
            }
            return nubo_error_http(err, 400, "images: give digest, tag or uuid");
        }
        if (!json_is_string(json_object_get(e, k)))
            return nubo_error_http(err, 400, "images: %s must be a string", k);
        json_array_append_new(looks, json_pack("{s:O}", k, json_object_get(e, k)));
    }
    return 0;
}

int ctl_handle_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err)
{
    ri->route = CTL_R_IMAGES;
    if (rest[0] && strcmp(rest, "/list") != 0)
        return nubo_error_http(err, 404, "no endpoint %s (GET /v1/images or /v1/images/list)",
                               ri->path);
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "images: use GET");
    bool legacy = rest[0] != '\0'; /* /images/list */
    cleanup_json json_t *looks = json_array();
    const char *ns = NULL;
    bool tagged = false;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "uuid")) {
            char buf[4096];
            snprintf(buf, sizeof(buf), "%s", kv->value);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_array_append_new(looks, json_pack("{s:s}", "uuid", t));
        } else if (!strcmp(kv->key, "digest") || !strcmp(kv->key, "tag")) {
            json_array_append_new(looks, json_pack("{s:s}", kv->key, kv->value));
        } else if (!strcmp(kv->key, "namespace")) {
            ns = kv->value;
        } else if (!strcmp(kv->key, "tagged")) {
            if (ctl_query_bool(kv->key, kv->value, &tagged, err) < 0)
                return -1;
        } else {
            return nubo_error_http(err, 400, "images: unknown query parameter '%.64s'", kv->key);
        }
    }
    if (ri->body && body_looks(ctx, ri, looks, &tagged, err) < 0)
        return -1;
    if (json_array_size(looks) == 0) {
        json_t *out = json_array();
        struct list_ctx lc = {ctx, out, ns, tagged, legacy};
        if (ctl_store_images_list(&ctx->store, ri->user.name, "official", list_cb, &lc, err) < 0) {
            json_decref(out);
            return ctl_err_status(err, 500);
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, "images", out, 0));
        return 0;
    }
    struct lookups *l = xcalloc(1, sizeof(*l));
    l->user = ri->user;
    l->legacy = legacy;
    l->looks = steal_pointer(&looks);
    l->batch.done = lookups_resumed;
    int rc = lookups_answer(ctx, ri, l, err);
    if (rc == 1) { /* parked until the registry answers */
        l->parked = ctl_park(ctx, ri, &ctx->resolving, -1, NULL, l, lookups_free);
        return 0;
    }
    lookups_free(l);
    return rc;
}
