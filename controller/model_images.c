/* The image index (sqlite, fed by the registry's notifications and by on-demand look-ups)
 * and the resolver thread that asks the registry (its client blocks; the event loop never
 * does). A finished batch of questions runs its done callback on the loop. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/thread.h>

#include "ctl.h"
#include "log.h"
#include "oci_image.h"
#include "util.h"

bool ctl_image_visible(const struct ctl_user_row *u, const char *owner)
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
        if (!ctl_image_visible(u, r.owner))
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

int ctl_image_index(struct ctl_ctx *ctx, const char *repo, const char *tag,
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
        im.env = xcalloc(n_env + 1, sizeof(*im.env));
        size_t k = 0;
        for (size_t i = 0; i < n_env; i++) {
            const char *eq = strchr(info->env[i], '=');
            if (eq == NULL)
                continue;
            im.env[k].key = xstrndup(info->env[i], (size_t)(eq - info->env[i]));
            im.env[k].value = xstrdup(eq + 1);
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

int ctl_image_forget(struct ctl_ctx *ctx, const char *digest_ref, struct nubo_err *err)
{
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_image_delete(&ctx->store, digest_ref, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    log_info("image %s deleted from the index", digest_ref);
    return 0;
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
            if (ctl_image_index(ctx, j->repo, is_digest ? NULL : j->ref, &j->info, digest, 0,
                                &err) < 0) {
                log_warnx("image %s:%s: %s", j->repo, j->ref, err.msg);
                /* An image the index refuses (its config is beyond the limits) is not offered
                 * half-known from its push event: whoever waits gets the reason. */
                char full[NUBO_IMAGE_REF_MAX];
                struct nubo_err derr = {0};
                if (err.http_status == 400 &&
                    nubo_snprintf(full, sizeof(full), "%s@%s", j->repo, digest) >= 0 &&
                    ctl_image_forget(ctx, full, &derr) < 0)
                    log_warnx("image %s: %s", full, derr.msg);
                nubo_image_info_free(&j->info);
                j->ok = false;
                j->err = err;
            }
        } else if (j->batch == NULL) {
            log_warnx("image %s %s: inspect failed: %s", j->repo, j->ref, j->err.msg);
        }
        if (j->ok)
            nubo_image_info_free(&j->info);
        struct ctl_resolve_batch *b = j->batch;
        if (b) {
            for (struct ctl_resolved *r = b->asked; r; r = r->next)
                if (!strcmp(r->repo, j->repo) && !strcmp(r->ref, j->ref)) {
                    r->http_status = j->ok ? 0 : (j->err.http_status == 404 ? 404 : 502);
                    snprintf(r->msg, sizeof(r->msg), "%s", j->ok ? "" : j->err.msg);
                }
            if (--b->pending == 0)
                b->done(ctx, b);
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

int ctl_resolve_async(struct ctl_ctx *ctx, const char *repo, const char *ref,
                      struct ctl_resolve_batch *b, struct nubo_err *err)
{
    if (!ctx->resolver_running)
        return nubo_error_http(err, 503, "the image resolver is not running");
    if (ctx->cfg.registry.url[0] == '\0')
        return nubo_error_http(err, 503, "no registry configured ([registry] url)");
    struct ctl_job *j = xcalloc(1, sizeof(*j));
    snprintf(j->repo, sizeof(j->repo), "%s", repo);
    snprintf(j->ref, sizeof(j->ref), "%s", ref);
    j->batch = b;
    if (b)
        b->pending++;
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

struct ctl_resolved *ctl_resolved_find(const struct ctl_resolve_batch *b, const char *repo,
                                       const char *ref)
{
    for (struct ctl_resolved *r = b ? b->asked : NULL; r; r = r->next)
        if (strcmp(r->repo, repo) == 0 && strcmp(r->ref, ref) == 0)
            return r;
    return NULL;
}

void ctl_resolve_batch_clear(struct ctl_resolve_batch *b)
{
    while (b->asked) {
        struct ctl_resolved *r = b->asked;
        b->asked = r->next;
        free(r);
    }
}

void ctl_resolve_want(struct ctl_resolved **want, const char *repo, const char *ref)
{
    for (struct ctl_resolved *w = *want; w; w = w->next)
        if (!strcmp(w->repo, repo) && !strcmp(w->ref, ref))
            return;
    struct ctl_resolved *w = xcalloc(1, sizeof(*w));
    snprintf(w->repo, sizeof(w->repo), "%s", repo);
    snprintf(w->ref, sizeof(w->ref), "%s", ref);
    w->http_status = 404; /* tried; the answer fills it in */
    w->next = *want;
    *want = w;
}

int ctl_resolve_ask(struct ctl_ctx *ctx, struct ctl_resolve_batch *b, struct ctl_resolved *want,
                    struct nubo_err *err)
{
    bool queued = false;
    while (want) {
        struct ctl_resolved *w = want;
        want = w->next;
        if (ctl_resolve_async(ctx, w->repo, w->ref, b, err) == 0) {
            w->next = b->asked;
            b->asked = w;
            queued = true;
        } else {
            free(w);
        }
    }
    return queued ? 0 : -1;
}
