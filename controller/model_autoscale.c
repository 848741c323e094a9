/* Autoscale: the model's side. Every CTL_AS_TICK_MS each configured group is measured (the
 * ingress's in-flight figures, the agents' CPU time, averaged over the group's warm instances:
 * running for warmup_time_ms), its step policies say how many instances it wants, and the loop
 * adds replicas cloned from the master (through ctl_place: quotas, scheduler, one commit) at
 * once, at most once per warmup, or removes the newest replicas once the policies have wanted
 * fewer for cooldown_time_ms. The size is the master plus its replicas; the master is never
 * removed, so min_size 0 means the master alone, which scale-to-zero may put to standby.
 * Other instances a user added to the group are served but neither counted nor touched. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl_autoscale.h"
#include "log.h"
#include "util.h"

/* The last figures of one instance. */
struct as_sample {
    int64_t inflight, inflight_at_us; /* the ingress's report (mono) */
    int64_t cpu_ms, cpu_at_us;        /* the agents' counter when it last moved (mono) */
    double cpu_pct;                   /* over the last two moves */
    int64_t cpu_pct_at_us;
};

struct ctl_as_group {
    char svc[NUBO_UUID_STR_LEN + 1];
    struct nubo_as_config cfg; /* cfg.uuid = svc, cfg.master.uuid = the master */
    char (*replicas)[NUBO_UUID_STR_LEN + 1];
    size_t n_replicas, cap;
    int64_t last_out_us;  /* mono: the last scale-out */
    int64_t low_since_us; /* mono: since when the policies want fewer (0 = they do not) */
    int64_t last_logged;  /* the last size the loop logged wanting */
    bool refused;         /* the last scale-out was refused (logged once) */
};

struct ctl_autoscale {
    struct ctl_map groups;  /* svc uuid -> ctl_as_group */
    struct ctl_map samples; /* instance uuid -> as_sample */
    struct event *timer;
};

static struct ctl_autoscale *as_of(struct ctl_ctx *ctx)
{
    if (ctx->as == NULL)
        ctx->as = xcalloc(1, sizeof(*ctx->as));
    return ctx->as;
}

struct ctl_as_group *ctl_autoscale_of(struct ctl_ctx *ctx, const char *svc_uuid)
{
    return ctx->as ? ctl_map_get(&ctx->as->groups, svc_uuid) : NULL;
}

static void group_free(struct ctl_as_group *a)
{
    nubo_as_config_free(&a->cfg);
    free(a->replicas);
    free(a);
}

static void replica_add(struct ctl_as_group *a, const char *uuid)
{
    if (a->n_replicas == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8;
        a->replicas = xrealloc(a->replicas, a->cap * sizeof(*a->replicas));
    }
    snprintf(a->replicas[a->n_replicas++], sizeof(a->replicas[0]), "%s", uuid);
}

static void replica_drop(struct ctl_as_group *a, size_t i)
{
    memmove(&a->replicas[i], &a->replicas[i + 1], (a->n_replicas - i - 1) * sizeof(a->replicas[0]));
    a->n_replicas--;
}

/* Persist a's configuration (its own transaction or the caller's). */
static int config_put(struct ctl_ctx *ctx, const struct nubo_as_config *c, struct nubo_err *err)
{
    cleanup_json json_t *j = nubo_as_config_req_encode(c);
    cleanup_free char *text = j ? pj_dump(j) : NULL;
    if (text == NULL)
        return nubo_error_http(err, 500, "autoscale: out of memory");
    return ctl_store_as_put(&ctx->store, c->uuid, text, err);
}

/* ---- load ---- */

static int load_config(void *arg, const char *svc_uuid, const char *text)
{
    struct ctl_ctx *ctx = arg;
    struct nubo_err err = {0};
    json_t *j = NULL;
    struct ctl_as_group *a = xcalloc(1, sizeof(*a));
    snprintf(a->svc, sizeof(a->svc), "%s", svc_uuid);
    if (pj_parse(text, strlen(text), 1u << 24, &j, &err) < 0 ||
        nubo_as_config_req_decode(j, &a->cfg, &err) < 0 || strcmp(a->cfg.uuid, svc_uuid) != 0) {
        /* a row this controller cannot read scales nothing; the operator hears of it */
        log_warnx("autoscale: the stored configuration of group %s is unreadable (%s); "
                  "ignoring it",
                  svc_uuid, err.msg[0] ? err.msg : "group mismatch");
        json_decref(j);
        group_free(a);
        return 0;
    }
    json_decref(j);
    ctl_map_put(&as_of(ctx)->groups, svc_uuid, a);
    return 0;
}

static int load_replica(void *arg, const char *inst_uuid, const char *svc_uuid)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_as_group *a = ctl_autoscale_of(ctx, svc_uuid);
    if (a)
        replica_add(a, inst_uuid);
    return 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    ctl_autoscale_tick(arg, nubo_mono_us());
}

int ctl_autoscale_start(struct ctl_ctx *ctx, struct nubo_err *err)
{
    struct ctl_autoscale *as = as_of(ctx);
    if (ctl_store_as_load(&ctx->store, load_config, load_replica, ctx, err) < 0)
        return nubo_error_wrap(err, "loading the autoscale configurations");
    if (as->groups.n)
        log_info("autoscale: %zu configured group(s)", as->groups.n);
    as->timer = event_new(ctx->base, -1, EV_PERSIST, on_timer, ctx);
    if (as->timer == NULL)
        return nubo_error(err, 0, "autoscale: cannot create its timer");
    struct timeval tv = {0, CTL_AS_TICK_MS * 1000};
    evtimer_add(as->timer, &tv);
    return 0;
}

void ctl_autoscale_free(struct ctl_ctx *ctx)
{
    struct ctl_autoscale *as = ctx->as;
    if (as == NULL)
        return;
    if (as->timer)
        event_free(as->timer);
    ctl_map_foreach(&as->groups, e)
        group_free(e->val);
    ctl_map_foreach(&as->samples, e)
        free(e->val);
    ctl_map_clear(&as->groups);
    ctl_map_clear(&as->samples);
    free(as);
    ctx->as = NULL;
}

/* ---- the API's side ---- */

void ctl_autoscale_view(struct ctl_ctx *ctx, const struct ctl_svc *g, struct nubo_as_config *out)
{
    const struct ctl_as_group *a = ctl_autoscale_of(ctx, g->row.uuid);
    nubo_as_config_init(out);
    snprintf(out->uuid, sizeof(out->uuid), "%s", g->row.uuid);
    snprintf(out->name, sizeof(out->name), "%s", g->row.name);
    if (a == NULL) {
        out->configured = out->enabled = false;
        return;
    }
    out->min_size = a->cfg.min_size;
    out->max_size = a->cfg.max_size;
    out->warmup_time_ms = a->cfg.warmup_time_ms;
    out->cooldown_time_ms = a->cfg.cooldown_time_ms;
    out->master = a->cfg.master;
    const struct ctl_instance *m = ctl_map_get(&ctx->instances, a->cfg.master.uuid);
    if (m)
        snprintf(out->master.name, sizeof(out->master.name), "%s", m->row.name);
    if (a->cfg.n_policies) {
        out->policies = xcalloc(a->cfg.n_policies, sizeof(*out->policies));
        memcpy(out->policies, a->cfg.policies, a->cfg.n_policies * sizeof(*out->policies));
        out->n_policies = a->cfg.n_policies;
    }
}

int ctl_autoscale_create(struct ctl_ctx *ctx, const struct ctl_user_row *u, struct ctl_svc *g,
                         const struct nubo_as_config *req, struct nubo_err *err)
{
    if (ctl_autoscale_of(ctx, g->row.uuid))
        return nubo_error_http(err, 409,
                               "service group %s has an autoscale configuration already; delete "
                               "it first",
                               g->row.name);
    /* the master: the one named, or the group's oldest instance */
    struct ctl_instance *m = NULL;
    if (req->master.uuid[0] || req->master.name[0]) {
        m = ctl_instance_find(ctx, u, req->master.uuid, req->master.name);
        if (m == NULL)
            return nubo_error_http(err, 404, "master: instance %s not found",
                                   req->master.uuid[0] ? req->master.uuid : req->master.name);
        if (m->svc != g)
            return nubo_error_http(err, 400,
                                   "master: instance %s is not in service group %s; create it "
                                   "with service_group {\"name\":\"%s\"}",
                                   m->row.name, g->row.name, g->row.name);
    } else {
        for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next)
            if (m == NULL || in->row.created_at_us < m->row.created_at_us)
                m = in;
        if (m == NULL)
            return nubo_error_http(err, 400,
                                   "master: service group %s has no instance to copy; create "
                                   "one in it or name the master",
                                   g->row.name);
    }
    /* a size the user's quota can never hold is refused now, not at the first scale-out */
    int64_t hard[NUBO_QUOTA_N];
    ctl_quota_hard(ctx, u, hard);
    if (req->max_size > hard[NUBO_QUOTA_INSTANCES] ||
        req->max_size * m->row.memory_mb > hard[NUBO_QUOTA_MEMORY_MB])
        return nubo_error_http(err, 403,
                               "max_size: %lld instances of %lld MiB exceed your quota (%lld "
                               "instances, %lld MiB); ask for fewer",
                               (long long)req->max_size, (long long)m->row.memory_mb,
                               (long long)hard[NUBO_QUOTA_INSTANCES],
                               (long long)hard[NUBO_QUOTA_MEMORY_MB]);
    struct ctl_as_group *a = xcalloc(1, sizeof(*a));
    snprintf(a->svc, sizeof(a->svc), "%s", g->row.uuid);
    a->cfg = *req;
    a->cfg.policies = NULL;
    if (req->n_policies) {
        a->cfg.policies = xcalloc(req->n_policies, sizeof(*a->cfg.policies));
        memcpy(a->cfg.policies, req->policies, req->n_policies * sizeof(*a->cfg.policies));
    }
    snprintf(a->cfg.uuid, sizeof(a->cfg.uuid), "%s", g->row.uuid);
    a->cfg.name[0] = '\0';
    snprintf(a->cfg.master.uuid, sizeof(a->cfg.master.uuid), "%s", m->row.uuid);
    a->cfg.master.name[0] = '\0';
    if (config_put(ctx, &a->cfg, err) < 0) {
        group_free(a);
        return -1;
    }
    ctl_map_put(&as_of(ctx)->groups, a->svc, a);
    log_info("autoscale: group %s (%s) configured: %lld..%lld instances, master %s, %zu "
             "polic%s",
             g->row.name, g->row.uuid, (long long)a->cfg.min_size, (long long)a->cfg.max_size,
             m->row.name, a->cfg.n_policies, a->cfg.n_policies == 1 ? "y" : "ies");
    return 0;
}

/* The replicas of a that still exist, as instances (n_out of them). */
static struct ctl_instance **replicas_live(struct ctl_ctx *ctx, const struct ctl_as_group *a,
                                           size_t *n_out)
{
    struct ctl_instance **v = xcalloc(a->n_replicas + 1, sizeof(*v));
    size_t n = 0;
    for (size_t i = 0; i < a->n_replicas; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, a->replicas[i]);
        if (in)
            v[n++] = in;
    }
    *n_out = n;
    return v;
}

/* Forget a (the configuration and its replicas' marks are gone from the store). */
static void group_forget(struct ctl_ctx *ctx, struct ctl_as_group *a)
{
    ctl_map_del(&ctx->as->groups, a->svc);
    group_free(a);
}

int ctl_autoscale_delete(struct ctl_ctx *ctx, struct ctl_svc *g, struct nubo_err *err)
{
    struct ctl_as_group *a = ctl_autoscale_of(ctx, g->row.uuid);
    if (a == NULL)
        return nubo_error_http(err, 404, "service group %s has no autoscale configuration",
                               g->row.name);
    /* the platform's: the replicas go, the master stays (and runs) */
    size_t n;
    cleanup_free struct ctl_instance **v = replicas_live(ctx, a, &n);
    if (n && ctl_instances_delete(ctx, v, n, err) < 0)
        return nubo_error_wrap(err, "deleting the replicas of %s", g->row.name);
    if (ctl_store_as_delete(&ctx->store, a->svc, err) < 0)
        return -1;
    struct ctl_instance *m = ctl_map_get(&ctx->instances, a->cfg.master.uuid);
    log_info("autoscale: group %s (%s): configuration deleted with %zu replica(s)", g->row.name,
             g->row.uuid, n);
    group_forget(ctx, a);
    if (m && m->row.desired == NUBO_DESIRED_STOPPED) {
        struct ctl_desire d = {.in = m, .start = true};
        if (ctl_instances_desire(ctx, &d, 1, err) < 0)
            return nubo_error_wrap(err, "starting the master %s", m->row.name);
    }
    return 0;
}

/* Commit c (a's configuration with other policies, c->policies malloc'd) and make it a's. */
static int policies_commit(struct ctl_ctx *ctx, struct ctl_as_group *a, struct nubo_as_config *c,
                           struct nubo_err *err)
{
    if (config_put(ctx, c, err) < 0) {
        free(c->policies);
        return -1;
    }
    free(a->cfg.policies);
    a->cfg = *c;
    return 0;
}

int ctl_autoscale_policy_add(struct ctl_ctx *ctx, struct ctl_svc *g, const struct nubo_as_policy *p,
                             struct nubo_err *err)
{
    struct ctl_as_group *a = ctl_autoscale_of(ctx, g->row.uuid);
    if (a == NULL)
        return nubo_error_http(err, 404,
                               "service group %s has no autoscale configuration; create it first "
                               "(nubo services autoscale init)",
                               g->row.name);
    for (size_t i = 0; i < a->cfg.n_policies; i++)
        if (strcmp(a->cfg.policies[i].name, p->name) == 0)
            return nubo_error_http(err, 409, "service group %s has a policy named %s already",
                                   g->row.name, p->name);
    if (a->cfg.n_policies >= NUBO_AS_MAX_POLICIES)
        return nubo_error_http(err, 400, "service group %s has %d policies, the most it may",
                               g->row.name, NUBO_AS_MAX_POLICIES);
    struct nubo_as_config c = a->cfg;
    c.policies = xcalloc(a->cfg.n_policies + 1, sizeof(*c.policies));
    memcpy(c.policies, a->cfg.policies, a->cfg.n_policies * sizeof(*c.policies));
    c.policies[c.n_policies++] = *p;
    return policies_commit(ctx, a, &c, err);
}

int ctl_autoscale_policy_delete(struct ctl_ctx *ctx, struct ctl_svc *g, const char *name,
                                struct nubo_err *err)
{
    struct ctl_as_group *a = ctl_autoscale_of(ctx, g->row.uuid);
    if (a == NULL)
        return nubo_error_http(err, 404, "service group %s has no autoscale configuration",
                               g->row.name);
    size_t k = 0;
    while (k < a->cfg.n_policies && strcmp(a->cfg.policies[k].name, name) != 0)
        k++;
    if (k == a->cfg.n_policies)
        return nubo_error_http(err, 404, "service group %s has no policy named %s", g->row.name,
                               name);
    struct nubo_as_config c = a->cfg;
    c.policies = xcalloc(a->cfg.n_policies, sizeof(*c.policies));
    for (size_t i = 0, w = 0; i < a->cfg.n_policies; i++)
        if (i != k)
            c.policies[w++] = a->cfg.policies[i];
    c.n_policies--;
    return policies_commit(ctx, a, &c, err);
}

/* ---- measurements ---- */

static struct as_sample *sample_of(struct ctl_ctx *ctx, const char *uuid)
{
    struct as_sample *s = ctl_map_get(&ctx->as->samples, uuid);
    if (s == NULL) {
        s = xcalloc(1, sizeof(*s));
        s->cpu_ms = -1;
        ctl_map_put(&ctx->as->samples, uuid, s);
    }
    return s;
}

void ctl_autoscale_traffic(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t)
{
    if (ctx->as == NULL || ctx->as->groups.n == 0)
        return;
    int64_t now = nubo_mono_us();
    for (size_t i = 0; i < t->n_instances; i++) {
        const struct ctl_instance *in = ctl_map_get(&ctx->instances, t->instances[i].instance);
        /* one metro's ingress speaks for its own instances only */
        if (in == NULL || in->svc == NULL || strcmp(in->row.metro, t->metro) != 0 ||
            !ctl_autoscale_of(ctx, in->svc->row.uuid))
            continue;
        struct as_sample *s = sample_of(ctx, in->row.uuid);
        s->inflight = t->instances[i].current;
        s->inflight_at_us = now;
    }
}

/* Follow in's CPU counter (the agents report it with their status batches). */
static void cpu_follow(struct ctl_ctx *ctx, const struct ctl_instance *in, int64_t now)
{
    struct as_sample *s = sample_of(ctx, in->row.uuid);
    if (in->cpu_time_ms == s->cpu_ms)
        return;
    if (s->cpu_ms >= 0 && in->cpu_time_ms > s->cpu_ms && now > s->cpu_at_us) {
        double busy_ms = (double)(in->cpu_time_ms - s->cpu_ms);
        double wall_ms = (double)(now - s->cpu_at_us) / 1000.0;
        int64_t vcpus = in->row.vcpus > 0 ? in->row.vcpus : 1;
        s->cpu_pct = 100.0 * busy_ms / (wall_ms * (double)vcpus);
        s->cpu_pct_at_us = now;
    }
    s->cpu_ms = in->cpu_time_ms; /* a restart resets the counter: the next move measures */
    s->cpu_at_us = now;
}

/* Is in running and past its warmup? Its figures count only then. */
static bool warm(const struct ctl_instance *in, const struct nubo_as_config *c)
{
    if (ctl_instance_state(in) != NUBO_STATE_RUNNING || !in->has_obs)
        return false;
    return in->obs.started_at_us > 0 &&
           nubo_now_us() - in->obs.started_at_us >= c->warmup_time_ms * 1000;
}

/* The group's per-instance averages over its warm members (master and replicas). */
static void measure(struct ctl_ctx *ctx, const struct ctl_as_group *a, struct ctl_instance *m,
                    int64_t now, double value[NUBO_AS_METRIC_N], bool have[NUBO_AS_METRIC_N])
{
    double sum[NUBO_AS_METRIC_N] = {0};
    size_t cnt[NUBO_AS_METRIC_N] = {0};
    int64_t max_age = (int64_t)CTL_AS_SAMPLE_MAX_AGE_MS * 1000;
    for (size_t i = 0; i <= a->n_replicas; i++) {
        struct ctl_instance *in = i == 0 ? m : ctl_map_get(&ctx->instances, a->replicas[i - 1]);
        if (in == NULL)
            continue;
        cpu_follow(ctx, in, now);
        if (!warm(in, &a->cfg))
            continue;
        const struct as_sample *s = ctl_map_get(&ctx->as->samples, in->row.uuid);
        if (s && s->inflight_at_us && now - s->inflight_at_us <= max_age) {
            sum[NUBO_AS_METRIC_INFLIGHT] += (double)s->inflight;
            cnt[NUBO_AS_METRIC_INFLIGHT]++;
        }
        if (s && s->cpu_pct_at_us && now - s->cpu_pct_at_us <= max_age) {
            sum[NUBO_AS_METRIC_CPU] += s->cpu_pct;
            cnt[NUBO_AS_METRIC_CPU]++;
        }
    }
    for (int k = 0; k < NUBO_AS_METRIC_N; k++) {
        have[k] = cnt[k] > 0;
        value[k] = have[k] ? sum[k] / (double)cnt[k] : 0;
    }
}

/* ---- acting ---- */

/* Add up to k replicas cloned from m: all k in one placement (spread by the scheduler), or
 * fewer when the quota or the nodes hold fewer. Returns how many were made. */
static size_t scale_out(struct ctl_ctx *ctx, struct ctl_as_group *a, struct ctl_svc *g,
                        struct ctl_instance *m, size_t k)
{
    const struct ctl_user_row *u = ctl_user_find(ctx, m->row.owner);
    if (u == NULL)
        return 0;
    struct nubo_create_req cr;
    nubo_create_req_init(&cr);
    cr.args = m->row.args;
    cr.n_args = m->row.n_args;
    cr.has_args = true;
    cr.env = m->row.env;
    cr.n_env = m->row.n_env;
    cr.memory_mb = m->row.memory_mb;
    cr.vcpus = m->row.vcpus;
    cr.autostart = true;
    cr.restart_policy = m->row.restart_policy;
    cr.features = m->row.features;
    snprintf(cr.metro, sizeof(cr.metro), "%s", g->row.metro);
    cr.n_service_ports = m->row.n_service_ports < NUBO_AGENT_MAX_PORTS ? m->row.n_service_ports
                                                                       : NUBO_AGENT_MAX_PORTS;
    memcpy(cr.service_ports, m->row.service_ports, cr.n_service_ports * sizeof(int64_t));
    cr.scale_to_zero = m->row.s2z;
    /* the image as the master pinned it; its args and env come with the master's */
    struct ctl_image_row im = {0};
    snprintf(im.digest_ref, sizeof(im.digest_ref), "%s", m->row.image);
    size_t repo_len = strcspn(m->row.image, "@");
    snprintf(im.repo, sizeof(im.repo), "%.*s",
             (int)(repo_len < sizeof(im.repo) ? repo_len : sizeof(im.repo) - 1), m->row.image);
    cleanup_json json_t *sgj = json_pack("{s:s}", "uuid", g->row.uuid);
    cleanup_free struct ctl_instance **made = xcalloc(k + 1, sizeof(*made));
    struct nubo_err err = {0};
    for (size_t want = k; want > 0; want--) {
        size_t n_made = 0;
        memset(&err, 0, sizeof(err));
        cr.replicas = (int64_t)want - 1;
        if (ctl_place(ctx, u, &cr, &im, sgj, made, &n_made, &err) < 0)
            continue;
        a->refused = false;
        /* the marks: a crash before this commit leaves ordinary instances, never lost ones */
        struct nubo_err serr = {0};
        if (ctl_store_begin(&ctx->store, &serr) == 0) {
            bool ok = true;
            for (size_t i = 0; ok && i < n_made; i++)
                ok = ctl_store_as_replica_put(&ctx->store, made[i]->row.uuid, a->svc, &serr) == 0;
            if (ok && ctl_store_commit(&ctx->store, &serr) == 0)
                serr.msg[0] = '\0';
            else
                ctl_store_rollback(&ctx->store);
        }
        if (serr.msg[0])
            log_warnx("autoscale: group %s: %s (the new replicas stay in memory only)", g->row.name,
                      serr.msg);
        for (size_t i = 0; i < n_made; i++)
            replica_add(a, made[i]->row.uuid);
        return n_made;
    }
    if (!a->refused)
        log_warnx("autoscale: group %s (%s): cannot add a replica: %s", g->row.name, g->row.uuid,
                  err.msg);
    a->refused = true;
    return 0;
}

/* Remove the k newest replicas. */
static void scale_in(struct ctl_ctx *ctx, struct ctl_as_group *a, struct ctl_svc *g, size_t k)
{
    if (k > a->n_replicas)
        k = a->n_replicas;
    cleanup_free struct ctl_instance **v = xcalloc(k + 1, sizeof(*v));
    for (size_t i = 0; i < k; i++)
        v[i] = ctl_map_get(&ctx->instances, a->replicas[a->n_replicas - 1 - i]);
    struct nubo_err err = {0};
    if (ctl_instances_delete(ctx, v, k, &err) < 0) {
        log_warnx("autoscale: group %s (%s): cannot remove replicas: %s", g->row.name, g->row.uuid,
                  err.msg);
        return;
    }
    a->n_replicas -= k; /* the store's trigger dropped their marks */
}

/* The group or the master is gone: the platform resets autoscale and deletes the replicas. */
static void reset(struct ctl_ctx *ctx, struct ctl_as_group *a, struct ctl_svc *g)
{
    struct nubo_err err = {0};
    size_t n;
    cleanup_free struct ctl_instance **v = replicas_live(ctx, a, &n);
    if ((n && ctl_instances_delete(ctx, v, n, &err) < 0) ||
        ctl_store_as_delete(&ctx->store, a->svc, &err) < 0) {
        log_warnx("autoscale: group %s: resetting after its master went: %s", a->svc, err.msg);
        return; /* tried again next tick */
    }
    log_info("autoscale: group %s (%s): the master is gone; configuration and %zu replica(s) "
             "deleted",
             g ? g->row.name : "-", a->svc, n);
    group_forget(ctx, a);
}

static void tick_group(struct ctl_ctx *ctx, struct ctl_as_group *a, int64_t now)
{
    struct ctl_svc *g = ctl_map_get(&ctx->svcs, a->svc);
    struct ctl_instance *m = ctl_map_get(&ctx->instances, a->cfg.master.uuid);
    if (g == NULL || m == NULL || m->svc != g) {
        reset(ctx, a, g);
        return;
    }
    /* replicas a user deleted or moved out of the group are no longer ours */
    for (size_t i = a->n_replicas; i-- > 0;) {
        const struct ctl_instance *in = ctl_map_get(&ctx->instances, a->replicas[i]);
        if (in && in->svc == g)
            continue;
        struct nubo_err err = {0};
        if (in && ctl_store_as_replica_delete(&ctx->store, a->replicas[i], &err) < 0)
            log_warnx("autoscale: %s", err.msg);
        replica_drop(a, i);
    }
    double value[NUBO_AS_METRIC_N];
    bool have[NUBO_AS_METRIC_N];
    measure(ctx, a, m, now, value, have);
    int64_t current = 1 + (int64_t)a->n_replicas;
    int64_t want = nubo_as_desired(&a->cfg, value, have, current);
    if (want != a->last_logged && want != current)
        log_info("autoscale: group %s: %lld instance(s), policies want %lld (inflight %.2f%s, "
                 "cpu %.1f%%%s)",
                 g->row.name, (long long)current, (long long)want, value[NUBO_AS_METRIC_INFLIGHT],
                 have[NUBO_AS_METRIC_INFLIGHT] ? "" : " unknown", value[NUBO_AS_METRIC_CPU],
                 have[NUBO_AS_METRIC_CPU] ? "" : " unknown");
    a->last_logged = want;
    if (want > current) {
        a->low_since_us = 0;
        /* new replicas get their warmup before their figures (and another scale-out) count */
        if (a->last_out_us && now - a->last_out_us < a->cfg.warmup_time_ms * 1000)
            return;
        size_t made = scale_out(ctx, a, g, m, (size_t)(want - current));
        a->last_out_us = now; /* a refused one is tried again after a warmup too */
        if (made) {
            log_info("autoscale: group %s (%s): %lld -> %lld instances", g->row.name, g->row.uuid,
                     (long long)current, (long long)(current + (int64_t)made));
        }
    } else if (want < current) {
        if (a->low_since_us == 0) {
            a->low_since_us = now;
            return;
        }
        int64_t cool = a->cfg.cooldown_time_ms * 1000;
        if (now - a->low_since_us < cool || (a->last_out_us && now - a->last_out_us < cool))
            return;
        scale_in(ctx, a, g, (size_t)(current - want));
        a->low_since_us = now; /* the next step down waits another cooldown */
        log_info("autoscale: group %s (%s): %lld -> %lld instances", g->row.name, g->row.uuid,
                 (long long)current, (long long)(1 + (int64_t)a->n_replicas));
    } else {
        a->low_since_us = 0;
    }
}

void ctl_autoscale_tick(struct ctl_ctx *ctx, int64_t now_us)
{
    if (ctx->as == NULL || ctx->as->groups.n == 0)
        return;
    /* a group may go (reset) while we walk: walk a copy of the keys */
    size_t n = 0;
    cleanup_free char(*keys)[NUBO_UUID_STR_LEN + 1] = xcalloc(ctx->as->groups.n + 1, sizeof(*keys));
    ctl_map_foreach(&ctx->as->groups, e)
        snprintf(keys[n++], sizeof(keys[0]), "%s", e->key);
    for (size_t i = 0; i < n; i++) {
        struct ctl_as_group *a = ctl_map_get(&ctx->as->groups, keys[i]);
        if (a)
            tick_group(ctx, a, now_us);
    }
    /* figures of instances that are gone */
    size_t dead = 0;
    ctl_map_foreach(&ctx->as->samples, e)
        dead += ctl_map_get(&ctx->instances, e->key) == NULL;
    if (dead == 0)
        return;
    cleanup_free char(*gone)[NUBO_UUID_STR_LEN + 1] = xcalloc(dead, sizeof(*gone));
    size_t k = 0;
    ctl_map_foreach(&ctx->as->samples, e) {
        if (ctl_map_get(&ctx->instances, e->key) == NULL)
            snprintf(gone[k++], sizeof(gone[0]), "%s", e->key);
    }
    for (size_t i = 0; i < k; i++)
        free(ctl_map_del(&ctx->as->samples, gone[i]));
}
