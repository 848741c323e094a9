/* What happens to instances after they are placed: start and stop (desired state), the
 * agents' observations (with delete-on-stop), and deletion. Each change is committed, then
 * applied to the working set, then told through the events. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

/* Remove a committed-deleted instance from the working set. */
static void forget_instance(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), in->row.owner, in->row.name);
    ctl_map_del(&ctx->instance_names, key);
    ctl_map_del(&ctx->instances, in->row.uuid);
    struct ctl_node *node = in->node;
    struct ctl_svc *g = in->svc;
    ctl_svc_unlink(in);
    if (g) {
        ctl_emit_services_changed(ctx, g->row.metro);
        if (!g->row.persistent && g->n_instances == 0)
            ctl_svc_forget(ctx, g); /* its row went in the same transaction */
    }
    ctl_instance_uncount(in);
    ctl_instance_ingress_unlink(ctx, in);
    ctl_instance_detach(in);
    if (node)
        ctl_node_bump(ctx, node);
    char uuid[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, in->row.uuid, sizeof(uuid));
    ctl_volumes_forget_instance(ctx, uuid);
    ctl_instance_destroy(in);
    ctl_emit_instance_gone(ctx, uuid);
}

int ctl_instances_delete(struct ctl_ctx *ctx, struct ctl_instance **v, size_t n,
                         struct nubo_err *err)
{
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i] && v[i]->svc)
            v[i]->svc->pending_del = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] && (ctl_store_instance_delete(&ctx->store, v[i]->row.uuid, err) < 0 ||
                     ctl_volumes_store_detach(ctx, v[i]->row.uuid, err) < 0)) {
            ctl_store_rollback(&ctx->store);
            return -1;
        }
        /* an inline (ephemeral) group goes with its last instance, in the same transaction */
        struct ctl_svc *g = v[i] ? v[i]->svc : NULL;
        if (g && ++g->pending_del == g->n_instances && !g->row.persistent &&
            ctl_store_svc_delete(&ctx->store, g->row.uuid, err) < 0) {
            ctl_store_rollback(&ctx->store);
            return -1;
        }
    }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i])
            forget_instance(ctx, v[i]);
    return 0;
}

/* The row d asks for; false when it changes nothing. */
static bool desired_row(const struct ctl_desire *d, struct ctl_instance_row *r)
{
    const struct ctl_instance *in = d->in;
    if (d->start) {
        /* a start on a live instance changes nothing */
        if (in->row.desired == NUBO_DESIRED_RUNNING && ctl_instance_state(in) != NUBO_STATE_STOPPED)
            return false;
        r->desired = NUBO_DESIRED_RUNNING;
        r->start_seq++;
        r->stop_force = false;
        r->drain_timeout_ms = 0;
        r->standby = false;
        return true;
    }
    if (d->standby) {
        /* only what runs goes to standby: a user's stop stays a stop */
        if (in->row.desired != NUBO_DESIRED_RUNNING)
            return false;
        r->desired = NUBO_DESIRED_STOPPED;
        /* stateless: nothing in the guest is kept anyway; stateful: the agent saves its
         * memory (the assignment's stop.save), which a destroy would lose */
        r->stop_force = !in->row.s2z.stateful;
        r->drain_timeout_ms = 0;
        r->standby = true;
        return true;
    }
    if (in->row.desired == NUBO_DESIRED_STOPPED && in->row.stop_force == d->force &&
        !in->row.standby)
        return false;
    r->desired = NUBO_DESIRED_STOPPED;
    r->stop_force = d->force;
    r->drain_timeout_ms = d->drain_timeout_ms;
    r->standby = false; /* a user's stop: traffic no longer wakes it */
    return true;
}

/* Starts of stopped instances make them live: each owner's live quotas must hold them all. */
static int desire_quota(struct ctl_ctx *ctx, const struct ctl_desire *d, size_t n,
                        struct nubo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        const struct ctl_instance *in = d[i].in;
        if (in == NULL || !d[i].start || in->row.desired == NUBO_DESIRED_RUNNING)
            continue;
        bool seen = false; /* this owner's starts were summed at its first one */
        for (size_t k = 0; k < i && !seen; k++)
            seen = d[k].in && d[k].start && d[k].in->row.desired != NUBO_DESIRED_RUNNING &&
                   strcmp(d[k].in->row.owner, in->row.owner) == 0;
        if (seen)
            continue;
        int64_t delta[NUBO_QUOTA_N] = {0};
        for (size_t k = i; k < n; k++) {
            const struct ctl_instance *o = d[k].in;
            bool twice = false;
            for (size_t j = i; j < k && !twice; j++)
                twice = d[j].in == o;
            if (o == NULL || twice || !d[k].start || o->row.desired == NUBO_DESIRED_RUNNING ||
                strcmp(o->row.owner, in->row.owner) != 0)
                continue;
            delta[NUBO_QUOTA_LIVE_INSTANCES]++;
            delta[NUBO_QUOTA_LIVE_MEMORY_MB] += o->row.memory_mb;
            delta[NUBO_QUOTA_LIVE_VCPUS] += o->row.vcpus;
        }
        if (ctl_quota_check_owner(ctx, in->row.owner, delta, err) < 0)
            return -1;
    }
    return 0;
}

int ctl_instances_desire(struct ctl_ctx *ctx, struct ctl_desire *d, size_t n, struct nubo_err *err)
{
    for (size_t i = 0; i < n; i++)
        d[i].changed = false;
    if (desire_quota(ctx, d, n, err) < 0 || ctl_place_starts(ctx, d, n, err) < 0)
        return -1;
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (d[i].in == NULL)
            continue;
        bool twice = false; /* named twice: act once */
        for (size_t k = 0; k < i; k++)
            twice = twice || d[k].in == d[i].in;
        struct ctl_instance_row tmp = d[i].in->row; /* shallow: only scalars change */
        if (twice || !desired_row(&d[i], &tmp))
            continue;
        if (d[i].move_to) { /* re-placed at start: another node, another address */
            memcpy(tmp.node_uuid, d[i].move_to->row.uuid, sizeof(tmp.node_uuid));
            tmp.ip_host = d[i].move_ip_host;
        }
        if ((d[i].move_to && ctl_store_obs_delete(&ctx->store, tmp.uuid, err) < 0) ||
            ctl_store_instance_put(&ctx->store, &tmp, err) < 0 ||
            ((tmp.s2z.policy != NUBO_S2Z_OFF || tmp.standby != d[i].in->row.standby) &&
             ctl_store_s2z_put(&ctx->store, &tmp, err) < 0)) {
            ctl_store_rollback(&ctx->store);
            return -1;
        }
        d[i].changed = true;
    }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return -1;
    /* committed: now the working set follows */
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = d[i].in;
        if (!d[i].changed)
            continue;
        desired_row(&d[i], &in->row);
        in->s2z_drain_us = 0; /* a standby drain ends with any start or stop */
        ctl_instance_account(in);
        free(in->assign_json);
        in->assign_json = NULL;
        if (d[i].move_to) {
            log_info("instance %s: node %s has no room for its start, placed on %s",
                     in->row.name, in->node ? in->node->row.name : "?", d[i].move_to->row.name);
            ctl_instance_move(ctx, in, d[i].move_to, d[i].move_ip_host);
        } else if (in->node) {
            ctl_node_bump(ctx, in->node);
        }
    }
    for (size_t i = 0; i < n; i++)
        if (d[i].changed)
            ctl_emit_instance_changed(ctx, d[i].in);
    return 0;
}

static bool obs_equal(const struct nubo_status_report *a, const struct nubo_status_report *b)
{
    return a->state == b->state && a->start_seq == b->start_seq &&
           a->boot_time_us == b->boot_time_us && a->net_time_us == b->net_time_us &&
           a->start_count == b->start_count && a->restart_count == b->restart_count &&
           a->started_at_us == b->started_at_us && a->stopped_at_us == b->stopped_at_us &&
           a->stop_reason == b->stop_reason && a->has_exit_code == b->has_exit_code &&
           a->exit_code == b->exit_code && a->has_stop_code == b->has_stop_code &&
           a->stop_code == b->stop_code && a->restart_attempt == b->restart_attempt &&
           a->restart_next_at_us == b->restart_next_at_us && a->s2z_disable == b->s2z_disable &&
           !memcmp(&a->phases, &b->phases, sizeof(a->phases)) &&
           ((a->message == NULL && b->message == NULL) ||
            (a->message && b->message && !strcmp(a->message, b->message)));
}

/* The reports of part that change something: hit[i] is the instance reps[i] moves, else NULL.
 * Reads only the model, which no one changes before the part's apply. */
static size_t obs_filter(struct ctl_ctx *ctx, const struct ctl_obs_part *p,
                         struct ctl_instance **hit)
{
    size_t changed = 0;
    for (size_t i = 0; i < p->n; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, p->reps[i].uuid);
        /* not ours or not on this node: the watch tells the node to drop it */
        if (in == NULL || in->node != p->node)
            continue;
        if (in->has_obs && obs_equal(&in->obs, &p->reps[i]))
            continue;
        hit[i] = in;
        changed++;
    }
    return changed;
}

/* A committed report in the working set; an instance it stops for good joins dos. */
static void obs_apply(struct ctl_ctx *ctx, struct ctl_instance *in, struct nubo_status_report *r,
                      struct ctl_instance **dos, size_t *n_dos)
{
    bool was_running = in->has_obs && in->obs.state == NUBO_STATE_RUNNING &&
                       in->obs.start_count == r->start_count;
    if (r->state == NUBO_STATE_RUNNING && !was_running && r->boot_time_us > 0)
        ctl_hist_observe(&ctx->metrics.boot_time, (double)r->boot_time_us / 1e6);
    if (r->state == NUBO_STATE_RUNNING && !was_running && in->wake_mono_us > 0) {
        /* a wake that failed and a much later start is no wake time */
        double s = (double)(nubo_mono_us() - in->wake_mono_us) / 1e6;
        if (s < CTL_WAKE_TIME_MAX_S)
            ctl_hist_observe(&ctx->metrics.wake_time, s);
        in->wake_mono_us = 0;
    }
    bool was_stopped = in->has_obs && in->obs.state == NUBO_STATE_STOPPED;
    if (in->has_obs)
        nubo_status_report_free(&in->obs);
    in->obs = *r;
    r->message = NULL; /* moved */
    in->has_obs = true;
    ctl_instance_account(in);
    /* a standby is a pause, not a stop */
    if ((in->row.features & NUBO_FEATURE_DELETE_ON_STOP) && !in->row.standby &&
        in->obs.state == NUBO_STATE_STOPPED && !was_stopped &&
        in->obs.start_seq >= in->row.start_seq && in->row.start_seq > 0)
        dos[(*n_dos)++] = in;
}

int ctl_instances_observe_group(struct ctl_ctx *ctx, struct ctl_obs_part *parts, size_t n_parts,
                                struct nubo_err *err)
{
    size_t total = 0, changed = 0;
    for (size_t k = 0; k < n_parts; k++)
        total += parts[k].n;
    /* hit: every part's reports one after the other */
    cleanup_free struct ctl_instance **hit = xcalloc(total + 1, sizeof(*hit));
    for (size_t k = 0, off = 0; k < n_parts; off += parts[k].n, k++)
        changed += obs_filter(ctx, &parts[k], hit + off);
    if (changed == 0)
        return 0;
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    for (size_t k = 0, off = 0; k < n_parts; off += parts[k].n, k++)
        for (size_t i = 0; i < parts[k].n; i++)
            if (hit[off + i] && ctl_store_obs_put(&ctx->store, &parts[k].reps[i], err) < 0) {
                ctl_store_rollback(&ctx->store);
                return -1;
            }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return -1;
    /* committed: the working set follows, in the order the reports came; deletes on stop
     * wait until every part is applied (they free instances a later part may name) */
    cleanup_free struct ctl_instance **dos = xcalloc(total + 1, sizeof(*dos));
    size_t n_dos = 0;
    for (size_t k = 0, off = 0; k < n_parts; off += parts[k].n, k++)
        for (size_t i = 0; i < parts[k].n; i++)
            if (hit[off + i])
                obs_apply(ctx, hit[off + i], &parts[k].reps[i], dos, &n_dos);
    for (size_t i = 0; i < total; i++)
        if (hit[i])
            ctl_emit_instance_changed(ctx, hit[i]);
    if (n_dos) {
        struct nubo_err derr = {0};
        if (ctl_instances_delete(ctx, dos, n_dos, &derr) < 0)
            log_warnx("delete-on-stop: %s", derr.msg);
    }
    return 0;
}

int ctl_instances_observe(struct ctl_ctx *ctx, struct ctl_node *node,
                          struct nubo_status_report *reps, size_t n, struct nubo_err *err)
{
    struct ctl_obs_part p = {node, reps, n};
    return ctl_instances_observe_group(ctx, &p, 1, err);
}
