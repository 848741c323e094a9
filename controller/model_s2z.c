/* Scale-to-zero: the model's side. The metro's nubo-ingress reports what HAProxy's per-server
 * counters say of each instance (open sessions, time since traffic last moved); an instance
 * whose policy is on or idle and that has been quiet for its cooldown is drained at the
 * ingress and then goes to standby (its domain stopped, its slot, address and group kept). A
 * connection the ingress holds for a group with nothing running wakes one standby instance (or
 * keeps one that is draining for standby). Decisions go through
 * ctl_instances_desire like any start or stop, so they are committed before they act. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

/* A stateful idle instance with TCP sessions open is quiet once its servers' byte counters
 * have not moved for this long, its cooldown if longer: HAProxy (option contstats) refreshes
 * a TCP session's counters only every <= 5 s, so a connection busy all the time may show no
 * movement for up to 5 s plus the ingress's report interval (ingress/README.md). */
#define S2Z_TCP_QUIET_MIN_MS 6000

/* Has in been quiet long enough for its policy? */
static bool s2z_due(const struct ctl_instance *in, const struct nubo_ingress_traffic_item *t,
                    int64_t now_us)
{
    const struct nubo_scale_to_zero *z = &in->row.s2z;
    if (z->policy == NUBO_S2Z_OFF || in->row.desired != NUBO_DESIRED_RUNNING ||
        ctl_instance_state(in) != NUBO_STATE_RUNNING)
        return false;
    /* the guest holds itself awake (its scale_to_zero_disable counter) */
    if (in->obs.s2z_disable > 0)
        return false;
    /* a fresh start gets its cooldown before the first decision */
    if (in->obs.started_at_us > 0 && now_us - in->obs.started_at_us < z->cooldown_time_ms * 1000)
        return false;
    /* idle: client connections held open at the ingress (keep-alive) do not hold it, since
     * their next request goes to the activator and wakes it; HTTP requests in flight do
     * (silent_ms and quiet_ms restart while one is open). An open TCP connection (silent_ms
     * restarts) holds a stateless one: its standby would lose the guest's end of it. A
     * stateful one keeps it across the standby, and the connection's next bytes move its
     * sleeping slot's `bin`, which makes the ingress wake it: so only the byte counters hold
     * it (quiet_ms), for at least S2Z_TCP_QUIET_MIN_MS */
    if (z->policy == NUBO_S2Z_IDLE && t->silent_ms >= 0) {
        if (t->silent_ms >= z->cooldown_time_ms)
            return true;
        int64_t quiet = z->cooldown_time_ms > S2Z_TCP_QUIET_MIN_MS ? z->cooldown_time_ms
                                                                   : S2Z_TCP_QUIET_MIN_MS;
        return z->stateful && t->quiet_ms >= quiet;
    }
    /* on: any request or connection, held open at the ingress or in flight, holds it */
    return t->current == 0 && t->idle_ms >= z->cooldown_time_ms;
}

/* The standby stop is drained: the first decision only drains the instance at the ingress (no
 * new request reaches it; one that comes waits at the activator, which wakes it, i.e. cancels
 * the drain). The stop follows on a report that shows every slot of it drained and it still
 * quiet, so nothing that reached it before the drain is cut; a report that shows traffic since
 * cancels the drain (its cooldown starts again). An ingress that never shows the drain (a slot
 * HAProxy lost, an old ingress) cancels it after S2Z_DRAIN_MAX_US. */
#define S2Z_DRAIN_MAX_US (30 * INT64_C(1000000))

static void s2z_drain_end(struct ctl_ctx *ctx, struct ctl_instance *in, const char *why)
{
    in->s2z_drain_us = 0;
    ctl_emit_instance_changed(ctx, in);
    log_info("instance %s (%s): %s, stays running", in->row.name, in->row.uuid, why);
}

int ctl_s2z_traffic(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t, struct nubo_err *err)
{
    cleanup_free struct ctl_desire *d = xcalloc(t->n_instances + 1, sizeof(*d));
    size_t n = 0;
    int64_t now = nubo_now_us(), mono = nubo_mono_us();
    for (size_t i = 0; i < t->n_instances; i++) {
        const struct nubo_ingress_traffic_item *it = &t->instances[i];
        struct ctl_instance *in = ctl_map_get(&ctx->instances, it->instance);
        /* only the reporting metro's instances: one ingress cannot stop another's */
        if (in == NULL || strcmp(in->row.metro, t->metro) != 0)
            continue;
        bool due = s2z_due(in, it, now);
        if (in->s2z_drain_us == 0) {
            if (due) {
                in->s2z_drain_us = mono;
                ctl_emit_instance_changed(ctx, in); /* the watch shows it draining */
                log_debug("instance %s: quiet for its cooldown, draining it for standby",
                          in->row.name);
            }
        } else if (!due) {
            s2z_drain_end(ctx, in, "traffic while draining for standby");
        } else if (it->draining) {
            d[n++] = (struct ctl_desire){.in = in, .standby = true};
        } else if (mono - in->s2z_drain_us > S2Z_DRAIN_MAX_US) {
            s2z_drain_end(ctx, in, "the ingress did not drain it for standby");
        }
    }
    if (n == 0)
        return 0;
    if (ctl_instances_desire(ctx, d, n, err) < 0)
        return nubo_error_wrap(err, "scale-to-zero");
    for (size_t i = 0; i < n; i++)
        if (d[i].changed)
            log_info("instance %s (%s): no traffic for %lld ms, drained, to standby",
                     d[i].in->row.name, d[i].in->row.uuid,
                     (long long)d[i].in->row.s2z.cooldown_time_ms);
    return 0;
}

/* Bytes moved on a TCP session of instance in, which held the session's server slot before
 * its standby: start it if it sleeps, whatever else of its group runs (only it holds the
 * other end of that connection). */
static int s2z_wake_instance(struct ctl_ctx *ctx, struct ctl_instance *in,
                             struct nubo_ingress_wake_resp *out, struct nubo_err *err)
{
    enum nubo_state st = ctl_instance_state(in);
    if (in->s2z_drain_us)
        s2z_drain_end(ctx, in, "bytes on one of its connections while it drains for standby");
    if (in->row.desired == NUBO_DESIRED_RUNNING &&
        (st == NUBO_STATE_STARTING || st == NUBO_STATE_RUNNING)) {
        out->starting = 1;
        return 0;
    }
    if (!ctl_instance_sleeping(in) || in->node == NULL || !in->node->ready)
        return 0; /* stopped by its user, or its node is away: nothing will come */
    struct ctl_desire d = {.in = in, .start = true};
    if (ctl_instances_desire(ctx, &d, 1, err) < 0)
        return nubo_error_wrap(err, "waking %s", in->row.name);
    out->starting = 1;
    if (d.changed) {
        out->woken = 1;
        in->wake_mono_us = nubo_mono_us();
        ctx->metrics.s2z_wakes++;
        log_info("instance %s (%s): bytes on a connection it keeps in standby, waking it",
                 in->row.name, in->row.uuid);
    }
    return 0;
}

int ctl_s2z_wake(struct ctl_ctx *ctx, const char *metro, const char *svc_uuid,
                 const char *instance, struct nubo_ingress_wake_resp *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    struct ctl_svc *g = ctl_map_get(&ctx->svcs, svc_uuid);
    if (g == NULL || strcmp(g->row.metro, metro) != 0)
        return 0; /* gone meanwhile: nothing will come */
    if (instance && instance[0]) {
        for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next)
            if (strcmp(in->row.uuid, instance) == 0)
                return s2z_wake_instance(ctx, in, out, err);
        return 0; /* deleted, or moved to another group: not this group's to wake */
    }
    struct ctl_instance *pick = NULL;
    bool kept = false;
    for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
        enum nubo_state st = ctl_instance_state(in);
        if (in->s2z_drain_us && !kept) { /* draining for standby: a request came, one stays */
            s2z_drain_end(ctx, in, "a request waits while it drains for standby");
            kept = true;
        }
        if (in->row.desired == NUBO_DESIRED_RUNNING &&
            (st == NUBO_STATE_STARTING || st == NUBO_STATE_RUNNING))
            out->starting++;
        else if (ctl_instance_sleeping(in) && in->node && in->node->ready &&
                 (pick == NULL || in->row.created_at_us < pick->row.created_at_us))
            pick = in; /* the oldest: a repeated wake picks the same one */
    }
    if (out->starting > 0 || pick == NULL)
        return 0;
    struct ctl_desire d = {.in = pick, .start = true};
    if (ctl_instances_desire(ctx, &d, 1, err) < 0)
        return nubo_error_wrap(err, "waking %s", pick->row.name);
    if (d.changed) {
        out->woken = 1;
        out->starting = 1;
        pick->wake_mono_us = nubo_mono_us(); /* nubo_instance_wake_time_seconds */
        ctx->metrics.s2z_wakes++;
        log_info("instance %s (%s): traffic waits at the ingress, waking it", pick->row.name,
                 pick->row.uuid);
    }
    return 0;
}
