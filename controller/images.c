/* The image index: GET /v1/images (and the legacy /v1/images/list), the registry's push and
 * delete notifications, and on-demand resolution of unknown tags on a worker thread (the
 * registry client blocks; the event loop never does). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>
#include <event2/thread.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "oci_image.h"
#include "util.h"

#define CTL_REG_EVENTS_MAX 1024

static bool visible(const struct ctl_user_row *u, const char *owner)
{
    return strcmp(owner, u->name) == 0 || strcmp(owner, "official") == 0;
}

int ctl_image_lookup(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *ref,
                     struct ctl_image_row *row_out, char repo_out[256], char ref_out[160],
                     struct nubo_err *err)
{
    struct nubo_api_image_ref r;
    if (nubo_api_image_ref_parse(ref, &r, err) < 0)
        return -1;
    /* "app:tag" means the caller's own app, else an official one */
    char cands[2][256 + NUBO_API_USER_MAX + 2];
    int nc = 0;
    if (r.owner[0]) {
        if (!visible(u, r.owner))
            return nubo_error_http(err, 404,
                                   "image %s not found; check the name (your images "
                                   "live under %s/)",
                                   ref, u->name);
        snprintf(cands[nc++], sizeof(cands[0]), "%s", r.repo);
    } else {
        snprintf(cands[nc++], sizeof(cands[0]), "%s/%s", u->name, r.repo);
        snprintf(cands[nc++], sizeof(cands[0]), "official/%s", r.repo);
    }
    for (int i = 0; i < nc; i++) {
        int rc;
        if (r.digest[0]) {
            char dref[NUBO_IMAGE_REF_MAX];
            if (nubo_snprintf(dref, sizeof(dref), "%.300s@%.80s", cands[i], r.digest) < 0)
                return nubo_error_http(err, 400, "image reference too long");
            rc = ctl_store_image_by_digest(&ctx->store, dref, row_out, err);
        } else {
            rc = ctl_store_image_by_tag(&ctx->store, cands[i], r.tag, row_out, err);
        }
        if (rc != 0)
            return rc;
    }
    /* unknown to the index: the registry decides (the first candidate) */
    snprintf(repo_out, 256, "%.255s", cands[0]);
    snprintf(ref_out, 160, "%s", r.digest[0] ? r.digest : r.tag);
    if (nc > 1) /* without an owner, the registry is asked for the official image */
        snprintf(repo_out, 256, "%.255s", cands[1]);
    return 0;
}

/* ---- index updates (loop thread) ---- */

static int index_image(struct ctl_ctx *ctx, const char *repo, const char *tag,
                       const struct nubo_image_info *info, const char *digest, int64_t size,
                       struct nubo_err *err)
{
    struct ctl_image_row im = {0};
    nubo_uuid_new(im.uuid);
    if (nubo_snprintf(im.digest_ref, sizeof(im.digest_ref), "%s@%s", repo, digest) < 0)
        return nubo_error_http(err, 400, "image reference too long");
    snprintf(im.repo, sizeof(im.repo), "%s", repo);
    const char *slash = strchr(repo, '/');
    snprintf(im.owner, sizeof(im.owner), "%.*s", slash ? (int)(slash - repo) : 0, repo);
    im.created_at_us = nubo_now_us();
    im.size_in_bytes = size;
    size_t n_env = 0;
    if (info) {
        im.detailed = true;
        im.size_in_bytes = (int64_t)info->size_in_bytes;
        im.initrd = info->initrd_digest[0] != '\0';
        size_t n = 0;
        while (info->cmd && info->cmd[n])
            n++;
        im.args = info->cmd;
        im.n_args = n;
        while (info->env && info->env[n_env])
            n_env++;
        im.env = calloc(n_env + 1, sizeof(*im.env));
        size_t k = 0;
        for (size_t i = 0; im.env && i < n_env; i++) {
            const char *eq = strchr(info->env[i], '=');
            if (eq == NULL)
                continue;
            im.env[k].key = strndup(info->env[i], (size_t)(eq - info->env[i]));
            im.env[k].value = strdup(eq + 1);
            k++;
        }
        im.n_env = k;
    }
    int rc = -1;
    if (ctl_store_begin(&ctx->store, err) < 0)
        goto out;
    if (ctl_store_image_put(&ctx->store, &im, err) < 0 ||
        (tag && tag[0] && ctl_store_tag_put(&ctx->store, repo, tag, im.digest_ref, err) < 0)) {
        ctl_store_rollback(&ctx->store);
        goto out;
    }
    rc = ctl_store_commit(&ctx->store, err);
    if (rc == 0)
        log_info("image %s%s%s indexed", im.digest_ref, tag && tag[0] ? " as tag " : "",
                 tag && tag[0] ? tag : "");
out:
    pj_env_free(im.env, im.n_env);
    return rc;
}

/* ---- the resolver thread ---- */

static void *resolver_main(void *arg)
{
    struct ctl_ctx *ctx = arg;
    pthread_mutex_lock(&ctx->job_mu);
    for (;;) {
        while (!ctx->stopping && ctx->jobs == NULL)
            pthread_cond_wait(&ctx->job_cv, &ctx->job_mu);
        if (ctx->stopping)
            break;
        struct ctl_job *j = ctx->jobs;
        ctx->jobs = j->next;
        pthread_mutex_unlock(&ctx->job_mu);
        j->ok = nubo_oci_inspect(&ctx->cfg.registry, j->repo, j->ref, &j->info, &j->err) == 0;
        pthread_mutex_lock(&ctx->job_mu);
        j->next = ctx->done;
        ctx->done = j;
        event_active(ctx->done_ev, 0, 0);
    }
    pthread_mutex_unlock(&ctx->job_mu);
    return NULL;
}

static void jobs_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    pthread_mutex_lock(&ctx->job_mu);
    struct ctl_job *list = ctx->done;
    ctx->done = NULL;
    pthread_mutex_unlock(&ctx->job_mu);
    while (list) {
        struct ctl_job *j = list;
        list = j->next;
        struct nubo_err err = {0};
        bool is_digest = strncmp(j->ref, "sha256:", 7) == 0;
        if (j->ok) {
            const char *digest =
                j->info.index_digest[0] ? j->info.index_digest : j->info.manifest_digest;
            if (index_image(ctx, j->repo, is_digest ? NULL : j->ref, &j->info, digest, 0, &err) <
                0) {
                log_warnx("image %s:%s: %s", j->repo, j->ref, err.msg);
                /* An image the index refuses (its config is beyond the limits) is not offered
                 * half-known from its push event: whoever waits gets the reason. */
                char full[NUBO_IMAGE_REF_MAX];
                struct nubo_err derr = {0};
                if (err.http_status == 400 &&
                    nubo_snprintf(full, sizeof(full), "%s@%s", j->repo, digest) >= 0 &&
                    (ctl_store_begin(&ctx->store, &derr) < 0 ||
                     ctl_store_image_delete(&ctx->store, full, &derr) < 0 ||
                     ctl_store_commit(&ctx->store, &derr) < 0)) {
                    ctl_store_rollback(&ctx->store);
                    log_warnx("image %s: %s", full, derr.msg);
                }
                nubo_image_info_free(&j->info);
                j->ok = false;
                j->err = err;
            }
        } else if (j->waiter == NULL) {
            log_warnx("image %s %s: inspect failed: %s", j->repo, j->ref, j->err.msg);
        }
        if (j->ok)
            nubo_image_info_free(&j->info);
        struct ctl_parked *p = j->waiter;
        if (p) {
            for (struct ctl_resolved *r = p->resolved; r; r = r->next)
                if (!strcmp(r->repo, j->repo) && !strcmp(r->ref, j->ref)) {
                    r->http_status = j->ok ? 0 : (j->err.http_status == 404 ? 404 : 502);
                    snprintf(r->msg, sizeof(r->msg), "%s", j->ok ? "" : j->err.msg);
                }
            if (--p->pending == 0) {
                ctl_park_unlink(&ctx->resolving, p);
                if (p->resume_images)
                    ctl_images_resume(ctx, p);
                else
                    ctl_create_resume(ctx, p);
            }
        }
        free(j);
    }
}

int ctl_resolver_start(struct ctl_ctx *ctx, struct nubo_err *err)
{
    pthread_mutex_init(&ctx->job_mu, NULL);
    pthread_cond_init(&ctx->job_cv, NULL);
    ctx->done_ev = event_new(ctx->base, -1, 0, jobs_done_cb, ctx);
    if (ctx->done_ev == NULL)
        return nubo_error(err, 0, "cannot create the resolver event");
    if (pthread_create(&ctx->resolver, NULL, resolver_main, ctx) != 0)
        return nubo_error(err, 0, "cannot start the resolver thread");
    ctx->resolver_running = true;
    return 0;
}

void ctl_resolver_stop(struct ctl_ctx *ctx)
{
    if (!ctx->resolver_running)
        return;
    pthread_mutex_lock(&ctx->job_mu);
    ctx->stopping = true;
    pthread_cond_broadcast(&ctx->job_cv);
    pthread_mutex_unlock(&ctx->job_mu);
    pthread_join(ctx->resolver, NULL);
    ctx->resolver_running = false;
    for (struct ctl_job *l = ctx->jobs, *nx; l; l = nx) {
        nx = l->next;
        free(l);
    }
    for (struct ctl_job *l = ctx->done, *nx; l; l = nx) {
        nx = l->next;
        if (l->ok)
            nubo_image_info_free(&l->info);
        free(l);
    }
    event_free(ctx->done_ev);
}

int ctl_resolve_async(struct ctl_ctx *ctx, const char *repo, const char *ref, struct ctl_parked *p,
                      struct nubo_err *err)
{
    if (!ctx->resolver_running)
        return nubo_error_http(err, 503, "the image resolver is not running");
    if (ctx->cfg.registry.url[0] == '\0')
        return nubo_error_http(err, 503, "no registry configured ([registry] url)");
    struct ctl_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return nubo_error_http(err, 500, "out of memory");
    snprintf(j->repo, sizeof(j->repo), "%s", repo);
    snprintf(j->ref, sizeof(j->ref), "%s", ref);
    j->waiter = p;
    if (p)
        p->pending++;
    pthread_mutex_lock(&ctx->job_mu);
    /* FIFO */
    struct ctl_job **tail = &ctx->jobs;
    while (*tail)
        tail = &(*tail)->next;
    *tail = j;
    pthread_cond_signal(&ctx->job_cv);
    pthread_mutex_unlock(&ctx->job_mu);
    return 0;
}

/* ---- POST /registry/events ---- */

static bool manifest_type(const char *mt)
{
    return mt && (!strcmp(mt, NUBO_MEDIA_OCI_INDEX) || !strcmp(mt, NUBO_MEDIA_OCI_MANIFEST) ||
                  !strcmp(mt, NUBO_MEDIA_DOCKER_MANIFEST) || !strcmp(mt, NUBO_MEDIA_DOCKER_LIST));
}

void ctl_handle_registry_events(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    struct nubo_err err = {0};
    if (ri->method != EVHTTP_REQ_POST) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "registry events: use POST");
        return;
    }
    if (ctx->cfg.registry_secret[0] == '\0') {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 403,
                        "registry notifications are off: set [registry] notification_secret");
        return;
    }
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(ri->req), "Authorization");
    char want[300];
    snprintf(want, sizeof(want), "Bearer %s", ctx->cfg.registry_secret);
    if (a == NULL || strcmp(a, want) != 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 401,
                        "registry events: wrong or missing notification secret");
        return;
    }
    cleanup_json json_t *j = NULL;
    if (ri->body == NULL || pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        ri->body ? err.msg : "registry events: empty body");
        return;
    }
    json_t *events = json_object_get(j, "events");
    if (!json_is_array(events) || json_array_size(events) > CTL_REG_EVENTS_MAX) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "registry events: expected {\"events\": [...]}");
        return;
    }
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
        if (!strcmp(action, "push") && manifest_type(mt) && tag && tag[0] && strlen(tag) < 128) {
            /* index at once from the event; the worker fills in args/env/size */
            if (index_image(ctx, r.repo, tag, NULL, digest, size, &err) < 0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
                return;
            }
            ctl_resolve_async(ctx, r.repo, digest, NULL, &err);
            indexed++;
        } else if (!strcmp(action, "delete")) {
            if (ctl_store_begin(&ctx->store, &err) < 0 ||
                ctl_store_image_delete(&ctx->store, full, &err) < 0 ||
                ctl_store_commit(&ctx->store, &err) < 0) {
                ctl_store_rollback(&ctx->store);
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
                return;
            }
            log_info("image %s deleted from the index", full);
            indexed++;
        }
    }
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   json_pack("{s:s, s:I}", "status", "success", "indexed", (json_int_t)indexed));
}

/* ---- GET /v1/images ---- */

static json_t *image_json(struct ctl_ctx *ctx, const struct ctl_image_row *row)
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
    json_t *j = nubo_image_encode(&im);
    pj_strv_free(im.tags, im.n_tags);
    return j;
}

struct list_ctx {
    struct ctl_ctx *ctx;
    json_t *out;
    const char *ns;
    bool tagged;
};

static int list_cb(void *arg, const struct ctl_image_row *row)
{
    struct list_ctx *lc = arg;
    if (lc->ns && strcmp(lc->ns, row->owner) != 0)
        return 0;
    json_t *j = image_json(lc->ctx, row);
    if (lc->tagged && json_array_size(json_object_get(j, "tags")) == 0) {
        json_decref(j);
        return 0;
    }
    return json_array_append_new(lc->out, j);
}

static struct ctl_resolved *resolved_find(struct ctl_resolved *list, const char *repo,
                                          const char *ref)
{
    for (struct ctl_resolved *r = list; r; r = r->next)
        if (strcmp(r->repo, repo) == 0 && strcmp(r->ref, ref) == 0)
            return r;
    return NULL;
}

/* One look-up. A tag or digest the index does not know is asked of the registry: then NULL
 * comes back and *want lists what to resolve before answering (resume: what was tried). */
static json_t *lookup_one(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *kind,
                          const char *value, struct ctl_parked *resume, struct ctl_resolved **want)
{
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
            struct ctl_resolved *r = resolved_find(resume ? resume->resolved : NULL, repo, ref);
            if (r && r->http_status != 0 && r->http_status != 404) {
                char msg[NUBO_ERR_MSG_MAX];
                snprintf(msg, sizeof(msg), "cannot ask the registry for %.200s: %.250s", value,
                         r->msg);
                return nubo_item_error(NULL, NULL, 502, msg);
            }
            if (r == NULL && want && ctx->resolver_running) {
                if (resolved_find(*want, repo, ref) == NULL) {
                    struct ctl_resolved *w = calloc(1, sizeof(*w));
                    if (w) {
                        snprintf(w->repo, sizeof(w->repo), "%s", repo);
                        snprintf(w->ref, sizeof(w->ref), "%s", ref);
                        w->http_status = 404;
                        w->next = *want;
                        *want = w;
                    }
                }
                return NULL;
            }
        }
        if (rc < 0 && err.http_status == 404)
            rc = 0;
    }
    if (rc < 0)
        return nubo_item_error(NULL, NULL, err.http_status ?: 500, err.msg);
    if (rc == 0 || !visible(u, row.owner)) {
        if (rc == 1)
            ctl_image_row_free(&row);
        char msg[600];
        snprintf(msg, sizeof(msg), "image %s %.500s not found", kind, value);
        return nubo_item_error(NULL, NULL, 404, msg);
    }
    json_t *j = image_json(ctx, &row);
    ctl_image_row_free(&row);
    return j;
}

static void do_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct ctl_parked *resume);

void ctl_handle_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    do_images(ctx, ri, rest, NULL);
}

void ctl_images_resume(struct ctl_ctx *ctx, struct ctl_parked *p)
{
    struct ctl_reqinfo ri;
    struct evkeyvalq q;
    ctl_reqinfo_of_parked(&ri, p, EVHTTP_REQ_GET, &q);
    ri.route = CTL_R_IMAGES;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(p->req);
    const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;
    if (qs && qs[0])
        evhttp_parse_query_str(qs, &q);
    snprintf(ri.path, sizeof(ri.path), "/v1/images");
    do_images(ctx, &ri, "", p);
    evhttp_clear_headers(&q);
    ctl_parked_free(p);
}

static void do_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct ctl_parked *resume)
{
    ri->route = CTL_R_IMAGES;
    if (rest[0] && strcmp(rest, "/list") != 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404,
                        "no endpoint %s (GET /v1/images or /v1/images/list)", ri->path);
        return;
    }
    if (ri->method != EVHTTP_REQ_GET) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "images: use GET");
        return;
    }
    struct nubo_err err = {0};
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
            tagged = !strcmp(kv->value, "true") || !strcmp(kv->value, "1");
        } else {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                            "images: unknown query parameter '%.64s'", kv->key);
            return;
        }
    }
    if (ri->body) {
        cleanup_json json_t *b = NULL;
        if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &b, &err) < 0) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status, "%s", err.msg);
            return;
        }
        json_t *arr = json_is_array(b) ? b : NULL;
        size_t n = arr ? json_array_size(arr) : 1;
        if (n > NUBO_API_MAX_ITEMS) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                            "images: at most %d look-ups", NUBO_API_MAX_ITEMS);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *e = arr ? json_array_get(arr, i) : b;
            static const char *const allowed[] = {"uuid", "digest", "tag", "tagged", NULL};
            if (!json_is_object(e) || pj_only_keys(e, "images", allowed, &err) < 0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s",
                                json_is_object(e) ? err.msg
                                                  : "images: look-ups are {\"digest\"}, "
                                                    "{\"tag\"} or {\"uuid\"} objects");
                return;
            }
            const char *k = json_object_get(e, "uuid")     ? "uuid"
                            : json_object_get(e, "digest") ? "digest"
                            : json_object_get(e, "tag")    ? "tag"
                                                           : NULL;
            if (k == NULL) {
                if (json_object_get(e, "tagged")) {
                    tagged = json_is_true(json_object_get(e, "tagged"));
                    continue;
                }
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "images: give digest, tag or uuid");
                return;
            }
            if (!json_is_string(json_object_get(e, k))) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "images: %s must be a string", k);
                return;
            }
            json_array_append_new(looks, json_pack("{s:O}", k, json_object_get(e, k)));
        }
    }
    json_t *out = json_array();
    if (json_array_size(looks) == 0) {
        struct list_ctx lc = {ctx, out, ns, tagged};
        if (ctl_store_images_list(&ctx->store, ri->user.name, "official", list_cb, &lc, &err) < 0) {
            json_decref(out);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
            return;
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, "images", out, 0));
        return;
    }
    size_t i;
    json_t *e;
    struct ctl_resolved *want = NULL;
    json_array_foreach(looks, i, e)
    {
        const char *k;
        json_t *v;
        json_object_foreach(e, k, v)
        {
            json_t *item = lookup_one(ctx, &ri->user, k, json_string_value(v), resume, &want);
            if (item)
                json_array_append_new(out, item);
        }
    }
    if (want) {
        /* ask the registry on the worker thread, then answer everything at once */
        struct ctl_parked *p = calloc(1, sizeof(*p));
        if (p && ri->body) {
            p->body = malloc(ri->body_len + 1);
            if (p->body) {
                memcpy(p->body, ri->body, ri->body_len + 1);
                p->body_len = ri->body_len;
            }
        }
        if (p && (ri->body == NULL || p->body)) {
            p->kind = CTL_PARK_RESOLVE;
            p->resume_images = true;
            p->ctx = ctx;
            p->req = ri->req;
            p->route = ri->route;
            p->start_mono_us = ri->start_us;
            p->user = ri->user;
        }
        bool queued = false;
        while (want) {
            struct ctl_resolved *w = want;
            want = w->next;
            if (p && p->kind == CTL_PARK_RESOLVE &&
                ctl_resolve_async(ctx, w->repo, w->ref, p, &err) == 0) {
                w->next = p->resolved;
                p->resolved = w;
                queued = true;
            } else {
                free(w);
            }
        }
        if (queued) {
            ctl_park_link(&ctx->resolving, p);
            json_decref(out);
            return;
        }
        ctl_parked_free(p);
        json_decref(out);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 503,
                        "cannot ask the registry about the image: %s", err.msg);
        return;
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "images", out);
}
