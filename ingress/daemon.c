/* The nubo-ingress loop: long-poll the controller's GET /ingress/v1/watch for this metro,
 * reconcile HAProxy to each reply (runtime API when the shape is unchanged, a checked seamless
 * reload otherwise), back off on errors, restart HAProxy if it dies. Level-triggered: every
 * reply is the full set, so applying the same reply twice changes nothing. */
#include "ingress_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "http.h"
#include "log.h"
#include "pjson.h"
#include "xalloc.h"

#define ING_BACKOFF_MIN_MS 250
#define ING_BACKOFF_MAX_MS 10000
#define ING_LEFT_OUT_RETRY_MS 5000 /* a left-out port is probed again at least this often */

static int write_file(const char *path, const char *text, int mode, struct nubo_err *err)
{
    return nubo_write_file_atomic(path, text, strlen(text), mode, err);
}

/* Map files, user certificates and the crt-list: what a (re)loading HAProxy reads. */
static int write_side_files(struct ing_daemon *d, const struct ing_plan *p, struct nubo_err *err)
{
    char path[ING_PATH_MAX + 96];
    for (size_t i = 0; i < p->n_frontends; i++) {
        cleanup_free char *m = ing_render_map(p, p->frontends[i].port);
        if (!m)
            return nubo_error(err, ENOMEM, "rendering a map");
        ing_map_path(&d->cfg, p->frontends[i].port, path, sizeof(path));
        if (write_file(path, m, 0600, err) < 0)
            return -1;
    }
    for (size_t i = 0; i < p->n_certs; i++) {
        snprintf(path, sizeof(path), "%s/certs/%s.pem", d->cfg.runtime_dir, p->certs[i].uuid);
        if (write_file(path, p->certs[i].pem, 0600, err) < 0)
            return -1;
    }
    cleanup_free char *crt = ing_render_crt_list(&d->cfg, p);
    if (!crt)
        return nubo_error(err, ENOMEM, "rendering the crt-list");
    snprintf(path, sizeof(path), "%s/crt-list", d->cfg.runtime_dir);
    return write_file(path, crt, 0600, err);
}

static int full_apply(struct ing_daemon *d, const struct ing_plan *p, struct nubo_err *err)
{
    cleanup_free char *text = ing_render_config(&d->cfg, p, false);
    if (!text)
        return nubo_error(err, ENOMEM, "rendering the HAProxy configuration");
    char tmp[ING_PATH_MAX + 64];
    snprintf(tmp, sizeof(tmp), "%s.new", d->hap.cfg_path);
    if (write_file(tmp, text, 0600, err) < 0)
        return -1;
    if (ing_haproxy_check(&d->cfg, tmp, err) < 0)
        return nubo_error_wrap(err, "kept the running HAProxy (%s)", tmp);
    if (rename(tmp, d->hap.cfg_path) < 0)
        return nubo_error(err, errno, "cannot rename %s", tmp);
    if (ing_haproxy_alive(&d->hap)) {
        if (ing_haproxy_reload(&d->hap, err) < 0)
            return -1;
    } else if (ing_haproxy_start(&d->hap, &d->cfg, err) < 0) {
        return -1;
    }
    d->n_reloads++;
    return 0;
}

/* A published port something else on this host already listens on would fail the whole reload
 * ("cannot bind socket") and with it every other change: leave that frontend out, say so (the
 * log and, after the apply, the controller, which shows it on the groups publishing it), and
 * try it again with the next watch reply. Ports the running HAProxy holds are not probed. */
static void drop_unbindable(struct ing_daemon *d, struct ing_plan *next,
                            struct nubo_ingress_ports_report *left_out)
{
    memset(left_out, 0, sizeof(*left_out));
    snprintf(left_out->metro, sizeof(left_out->metro), "%s", d->cfg.metro);
    bool running = d->have_plan && ing_haproxy_alive(&d->hap);
    for (size_t i = 0; i < next->n_frontends;) {
        int64_t port = next->frontends[i].port;
        bool held = false;
        for (size_t k = 0; running && k < d->plan.n_frontends; k++)
            held = held || d->plan.frontends[k].port == port;
        struct nubo_err e = {0};
        if (held || ing_port_probe(d->cfg.listen_addr, ing_bind_port(&d->cfg, port), &e) == 0) {
            i++;
            continue;
        }
        bool before = false; /* probed again every few seconds: said once */
        for (size_t k = 0; k < d->left_out.n_left_out; k++)
            before = before || d->left_out.left_out[k].port == port;
        if (!before)
            log_warnx("public port %lld left out: %s (something else on this host uses it); "
                      "the other frontends are applied",
                      (long long)port, e.msg);
        if (left_out->n_left_out < NUBO_INGRESS_MAX_LEFT_OUT) {
            struct nubo_ingress_port_left_out *lo = &left_out->left_out[left_out->n_left_out++];
            lo->port = port;
            snprintf(lo->error, sizeof(lo->error), "%.120s: something else on the ingress host "
                     "listens there", e.msg);
        }
        ing_plan_drop_frontend(next, port);
    }
}

/* Tell the controller which ports this apply left out, when that changed or is not empty (a
 * restarted controller learns it again); a failed report is tried again after the next apply. */
static void report_left_out(struct ing_daemon *d, const struct nubo_ingress_ports_report *now)
{
    bool same = now->n_left_out == d->left_out.n_left_out;
    for (size_t i = 0; same && i < now->n_left_out; i++)
        same = now->left_out[i].port == d->left_out.left_out[i].port &&
               strcmp(now->left_out[i].error, d->left_out.left_out[i].error) == 0;
    d->left_out_told = d->left_out_told && same;
    d->left_out = *now;
    if (d->left_out_told && now->n_left_out == 0)
        return;
    struct nubo_err e = {0};
    json_t *body = nubo_ingress_ports_report_encode(now);
    if (body == NULL || ing_controller_post(&d->cfg, d->token, NUBO_INGRESS_PATH_PORTS, body,
                                            NULL, &e) < 0) {
        log_warnx("cannot tell the controller which ports are left out: %s",
                  body ? e.msg : "out of memory");
        return;
    }
    d->left_out_told = true;
}

int ing_apply(struct ing_daemon *d, const struct nubo_ingress_watch_resp *w, struct nubo_err *err)
{
    struct ing_plan next = {0};
    if (ing_plan_build(&d->cfg, w, d->have_plan ? &d->plan : NULL, &next, err) < 0)
        return -1;
    cleanup_free struct nubo_ingress_ports_report *left_out = xmalloc(sizeof(*left_out));
    drop_unbindable(d, &next, left_out);
    char *shape = ing_render_config(&d->cfg, &next, true);
    if (!shape) {
        ing_plan_free(&next);
        return nubo_error(err, ENOMEM, "rendering the HAProxy configuration");
    }
    int rc = write_side_files(d, &next, err);
    bool full = !d->have_plan || !d->shape || strcmp(shape, d->shape) != 0 ||
                !ing_haproxy_alive(&d->hap);
    if (rc == 0 && !full) {
        struct ing_cmds cmds;
        if (ing_runtime_cmds(&d->cfg, &d->plan, &next, &cmds, err) < 0) {
            rc = -1;
        } else {
            for (size_t i = 0; i < cmds.n; i++) {
                char *reply = NULL;
                struct nubo_err e2 = {0};
                if (ing_sock_cmd(d->hap.runtime_sock, cmds.v[i], 2000, &reply, &e2) < 0 ||
                    !ing_runtime_reply_ok(cmds.v[i], reply)) {
                    log_warnx("runtime command '%s' failed (%s); reloading instead", cmds.v[i],
                              reply ? reply : e2.msg);
                    full = true;
                    free(reply);
                    break;
                }
                log_debug("runtime: %s", cmds.v[i]);
                free(reply);
                d->n_runtime_cmds++;
            }
            if (cmds.n)
                log_info("applied version %lld with %zu runtime commands, no reload",
                         (long long)(w ? w->version : 0), cmds.n);
            ing_cmds_free(&cmds);
        }
    }
    if (rc == 0 && full) {
        rc = full_apply(d, &next, err);
        if (rc == 0)
            log_info("applied version %lld with a reload (%zu backends, %zu domains routed)",
                     (long long)(w ? w->version : 0), next.n_backends, next.n_maps);
    }
    if (rc < 0) {
        free(shape);
        ing_plan_free(&next);
        return -1;
    }
    if (d->have_plan)
        ing_plan_free(&d->plan);
    d->plan = next;
    d->have_plan = true;
    free(d->shape);
    d->shape = shape;
    ing_act_update(d->act, &d->plan, d->token);
    report_left_out(d, left_out);
    return 0;
}

static int read_token(struct ing_daemon *d, struct nubo_err *err)
{
    cleanup_free char *t = NULL;
    size_t len;
    if (nubo_read_file(d->cfg.token_file, sizeof(d->token) - 1, &t, &len, err) < 0)
        return nubo_error_wrap(err, "ingress token ([controller] token_file)");
    while (len && (t[len - 1] == '\n' || t[len - 1] == '\r' || t[len - 1] == ' '))
        t[--len] = 0;
    if (!len)
        return nubo_error(err, 0, "ingress token file %s is empty", d->cfg.token_file);
    memcpy(d->token, t, len + 1);
    return 0;
}

int ing_daemon_start(struct ing_daemon *d, struct nubo_err *err)
{
    char path[ING_PATH_MAX + 64];
    ing_haproxy_init(&d->hap, &d->cfg);
    snprintf(path, sizeof(path), "%s/maps", d->cfg.runtime_dir);
    if (nubo_mkdir_p(path, 0700, err) < 0)
        return -1;
    snprintf(path, sizeof(path), "%s/certs", d->cfg.runtime_dir);
    if (nubo_mkdir_p(path, 0700, err) < 0)
        return -1;
    /* HAProxy wants certificate and key in one PEM. */
    cleanup_free char *crt = NULL, *key = NULL;
    size_t lc, lk;
    if (nubo_read_file(d->cfg.cert_file, NUBO_INGRESS_MAX_PEM, &crt, &lc, err) < 0 ||
        nubo_read_file(d->cfg.key_file, NUBO_INGRESS_MAX_PEM, &key, &lk, err) < 0)
        return nubo_error_wrap(err, "metro certificate ([tls] cert, key)");
    cleanup_free char *pem = malloc(lc + lk + 2);
    if (!pem)
        return nubo_error(err, ENOMEM, "metro certificate");
    snprintf(pem, lc + lk + 2, "%s%s%s", crt, lc && crt[lc - 1] != '\n' ? "\n" : "", key);
    snprintf(path, sizeof(path), "%s/certs/metro.pem", d->cfg.runtime_dir);
    if (write_file(path, pem, 0600, err) < 0)
        return -1;
    if (read_token(d, err) < 0)
        return -1;
    if (ing_act_start(&d->act, &d->cfg, d->hap.runtime_sock, d->token, err) < 0)
        return -1;
    /* Listen at once, before the controller answers: unknown names get "no route". */
    return ing_apply(d, NULL, err);
}

static bool watch_stopping(void *ud)
{
    const struct ing_daemon *d = ud;
    return *d->stopping != 0;
}

/* One long poll. Returns 1 with *out filled, 0 on shutdown, -1 on error (401: token re-read). */
static int watch_once(struct ing_daemon *d, struct nubo_ingress_watch_resp *out,
                      struct nubo_err *err)
{
    char url[ING_PATH_MAX + 256];
    /* while a port is left out, the watch comes back sooner to probe it again */
    int64_t timeout_ms = d->cfg.watch_timeout_ms;
    if (d->left_out.n_left_out && timeout_ms > ING_LEFT_OUT_RETRY_MS)
        timeout_ms = ING_LEFT_OUT_RETRY_MS;
    snprintf(url, sizeof(url), "%s?metro=%s&version=%lld&timeout_ms=%lld", NUBO_INGRESS_PATH_WATCH,
             d->cfg.metro, (long long)d->version, (long long)timeout_ms);
    struct nu_http_req rq;
    nu_http_req_init(&rq, "GET", url);
    rq.ca_file = d->cfg.controller_ca;
    rq.bearer = d->token;
    rq.connect_timeout_ms = 5000;
    rq.timeout_ms = (long)timeout_ms + 15000L;
    rq.max_body = NUBO_INGRESS_MAX_BODY;
    rq.abort_fn = watch_stopping;
    rq.opaque = d;
    struct nu_http_resp r;
    int rc = nu_http_targets_do(&d->cfg.controllers, &rq, &r, err);
    if (*d->stopping) {
        rc = 0;
    } else if (rc < 0) {
        rc = nubo_error_wrap(err, "watch");
    } else if (r.status != 200) {
        rc = nubo_error(err, 0, "watch %s: HTTP %ld: %.200s", url, r.status, r.body ? r.body : "");
        if (r.status == 401)
            read_token(d, NULL);
    } else {
        json_t *j = NULL;
        rc = pj_parse(r.body ? r.body : "", r.len, NUBO_INGRESS_MAX_BODY, &j, err);
        if (rc == 0) {
            rc = nubo_ingress_watch_resp_decode(j, out, err);
            json_decref(j);
        }
        rc = rc < 0 ? nubo_error_wrap(err, "watch reply") : 1;
    }
    nu_http_resp_free(&r);
    return rc;
}

static void sleep_ms_interruptible(const struct ing_daemon *d, int64_t ms)
{
    for (int64_t t = 0; t < ms && !*d->stopping; t += 50) {
        struct timespec ts = {0, 50L * 1000000L};
        nanosleep(&ts, NULL);
    }
}

int ing_daemon_run(struct ing_daemon *d)
{
    int64_t backoff_ms = ING_BACKOFF_MIN_MS;
    bool applied_current = false;
    while (!*d->stopping) {
        struct nubo_err err = {0};
        if (!ing_haproxy_alive(&d->hap)) {
            /* HAProxy died: start it again from the plan it ran. */
            if (!d->have_plan || full_apply(d, &d->plan, &err) < 0) {
                log_warnx("restarting haproxy: %s", err.msg);
                sleep_ms_interruptible(d, backoff_ms);
                backoff_ms = backoff_ms * 2 > ING_BACKOFF_MAX_MS ? ING_BACKOFF_MAX_MS : backoff_ms * 2;
                continue;
            }
        }
        struct nubo_ingress_watch_resp w;
        memset(&w, 0, sizeof(w));
        int r = watch_once(d, &w, &err);
        if (r == 0)
            break;
        if (r < 0) {
            log_warnx("%s (retrying in %lld ms)", err.msg, (long long)backoff_ms);
            sleep_ms_interruptible(d, backoff_ms);
            backoff_ms = backoff_ms * 2 > ING_BACKOFF_MAX_MS ? ING_BACKOFF_MAX_MS : backoff_ms * 2;
            continue;
        }
        /* an unchanged set is applied again while ports are left out (they may bind now) or
         * the controller has not taken the report */
        if (w.version != d->version || !applied_current || d->left_out.n_left_out ||
            !d->left_out_told) {
            if (ing_apply(d, &w, &err) < 0) {
                log_warnx("applying version %lld: %s (retrying in %lld ms)", (long long)w.version,
                          err.msg, (long long)backoff_ms);
                applied_current = false;
                sleep_ms_interruptible(d, backoff_ms);
                backoff_ms = backoff_ms * 2 > ING_BACKOFF_MAX_MS ? ING_BACKOFF_MAX_MS : backoff_ms * 2;
            } else {
                d->version = w.version;
                applied_current = true;
                backoff_ms = ING_BACKOFF_MIN_MS;
            }
        } else {
            backoff_ms = ING_BACKOFF_MIN_MS;
        }
        nubo_ingress_watch_resp_free(&w);
    }
    return 0;
}

void ing_daemon_free(struct ing_daemon *d)
{
    ing_act_stop(d->act);
    d->act = NULL;
    ing_haproxy_stop(&d->hap);
    if (d->have_plan)
        ing_plan_free(&d->plan);
    free(d->shape);
    d->shape = NULL;
    ing_config_free(&d->cfg);
}
