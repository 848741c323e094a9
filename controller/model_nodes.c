/* Node lifecycle: registration (a /24 from the pool, a fresh node token), heartbeats and the
 * grace after which a silent node is unavailable, and an operator's drain (re-place all its
 * instances, all or nothing) and return to service. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

static int lowest_free_subnet(struct ctl_ctx *ctx)
{
    /* nodes keep their subnet for good: the used ones are marked as nodes come (model.c), and
     * everything below the hint is taken */
    int max = 1 << (24 - ctx->cfg.pool_prefix);
    for (int i = ctx->subnet_hint; i < max && ctx->subnet_used; i++)
        if (!(ctx->subnet_used[i / 8] & (1u << (i % 8)))) {
            ctx->subnet_hint = i;
            return i;
        }
    return ctx->subnet_used ? -1 : 0;
}

static void reports_free(struct nubo_status_report *reps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        nubo_status_report_free(&reps[i]);
    free(reps);
}

/* Who may register rq's name (issue 11, observation 7): a node comes back with its own node
 * token, bound to its name; the join token only brings a name that is not registered yet, or
 * the same agent again: the one whose register the controller committed but whose reply was
 * lost (a controller killed or failing over right after the commit), which never kept a node
 * token and proves itself with the register key it made before that first try. So whoever holds
 * the join token cannot take over a node (its token, its desired set with every tenant's env,
 * its metro); an admin replaces a node's machine with PUT /v1/nodes/{name}/replace. Everything
 * is checked before anything changes. */
int ctl_node_register_check(struct ctl_ctx *ctx, const struct nubo_register_req *rq,
                            const struct ctl_node *by_token, struct nubo_err *err)
{
    const struct ctl_node *known = ctl_map_get(&ctx->nodes_by_name, rq->name);
    if (by_token && by_token != known)
        return nubo_error_http(err, 403,
                               "register %s: this node token belongs to node %s; a node registers "
                               "under its own name",
                               rq->name, by_token->row.name);
    if (by_token == NULL && known) {
        char key_hash[NUBO_SHA256_HEX_LEN + 1];
        nubo_sha256_hex(rq->register_key, strlen(rq->register_key), key_hash);
        if (rq->register_key[0] == '\0' || known->row.register_key_hash[0] == '\0' ||
            strcmp(key_hash, known->row.register_key_hash) != 0)
            return nubo_error_http(
                err, 409,
                "register %s: node %s is already registered and the join token cannot take it "
                "over; its agent re-registers with its node token (<state dir>/node-token) or "
                "the register key it first came with (<state dir>/register-key); to put another "
                "machine in its place an admin runs `nubo nodes replace %s`",
                rq->name, rq->name, rq->name);
    }
    if (known && strcmp(known->row.metro, rq->metro) != 0)
        return nubo_error_http(err, 409,
                               "register %s: the node is in metro %s, not %s; a node's metro "
                               "does not change (set [node] metro = %s)",
                               rq->name, known->row.metro, rq->metro, known->row.metro);
    if (by_token == NULL && known)
        log_info("node %s: its agent registers again with the join token and its register key "
                 "(it kept no node token: a lost register reply or a lost node-token file): a new "
                 "node token",
                 rq->name);
    return 0;
}

int ctl_node_register(struct ctl_ctx *ctx, struct nubo_register_req *rq, const char *keep_token,
                      char token[NUBO_AGENT_TOKEN_MAX], struct ctl_node **out, struct nubo_err *err)
{
    struct ctl_node *node = ctl_map_get(&ctx->nodes_by_name, rq->name);
    struct ctl_node_row row;
    if (node) {
        row = node->row; /* its metro stays: what is placed there stays in that metro */
    } else {
        memset(&row, 0, sizeof(row));
        nubo_uuid_new(row.uuid);
        memcpy(row.name, rq->name, sizeof(row.name));
        row.created_at_us = nubo_now_us();
        int idx = lowest_free_subnet(ctx);
        if (idx < 0)
            return nubo_error_http(err, 503,
                                   "register %s: the subnet pool is exhausted; widen [agent] "
                                   "subnet_pool",
                                   rq->name);
        row.subnet_index = idx;
        memcpy(row.metro, rq->metro, sizeof(row.metro));
    }
    row.memory_mb = rq->memory_mb;
    row.vcpus = rq->vcpus;
    memcpy(row.accel, rq->accel, sizeof(row.accel));
    memcpy(row.libvirt_version, rq->libvirt_version, sizeof(row.libvirt_version));
    memcpy(row.qemu_version, rq->qemu_version, sizeof(row.qemu_version));
    memcpy(row.agent_version, rq->agent_version, sizeof(row.agent_version));
    row.registered_at_us = nubo_now_us();
    row.unavailable = false;
    if (rq->register_key[0]) /* the agent's key from now on (an older agent's node gets one) */
        nubo_sha256_hex(rq->register_key, strlen(rq->register_key), row.register_key_hash);
    if (keep_token) { /* the node's own credential: it stays the same across registers */
        snprintf(token, NUBO_AGENT_TOKEN_MAX, "%s", keep_token);
        nubo_sha256_hex(token, strlen(token), row.token_hash);
    } else {
        ctl_token_new("node", token, row.token_hash);
    }

    /* what the node no longer holds is no longer running there */
    size_t extra = node ? node->n_instances : 0;
    struct nubo_status_report *reps = xcalloc(rq->n_instances + extra + 1, sizeof(*reps));
    size_t nr = 0;
    for (size_t i = 0; i < rq->n_instances; i++) {
        reps[nr] = rq->instances[i];
        rq->instances[i].message = NULL;
        nr++;
    }
    if (node)
        for (struct ctl_instance *in = node->inst_head; in; in = in->node_next) {
            bool held = false;
            for (size_t i = 0; i < rq->n_instances && !held; i++)
                held = !strcmp(rq->instances[i].uuid, in->row.uuid);
            if (held || !in->has_obs || in->obs.state == NUBO_STATE_STOPPED)
                continue;
            reps[nr] = in->obs;
            reps[nr].message = xstrdup("the node restarted without this instance");
            reps[nr].state = NUBO_STATE_STOPPED;
            reps[nr].stopped_at_us = nubo_now_us();
            nr++;
        }

    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_node_put(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        reports_free(reps, nr);
        return -1;
    }
    if (node) {
        ctl_map_del(&ctx->node_tokens, node->row.token_hash);
        bool was_ready = node->ready;
        int64_t old_memory_mb = node->row.memory_mb;
        node->row = row;
        node->ready = true;
        ctl_map_put(&ctx->node_tokens, node->row.token_hash, node);
        ctl_capacity_node_resized(ctx, node, old_memory_mb);
        if (!was_ready)
            for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
                ctl_emit_instance_changed(ctx, in);
    } else {
        node = ctl_node_new(ctx, &row);
        log_info("node %s registered (metro %s, %lld MiB, %lld vCPUs, %s)", row.name, row.metro,
                 (long long)row.memory_mb, (long long)row.vcpus, row.accel);
    }
    node->last_seen_mono_us = nubo_mono_us();
    memcpy(node->guest_cpu, rq->guest_cpu, sizeof(node->guest_cpu));
    struct nubo_err rerr = {0};
    if (ctl_instances_observe(ctx, node, reps, nr, &rerr) < 0)
        log_warnx("node %s: register reports not applied: %s", row.name, rerr.msg);
    if (ctl_volumes_node_budget(ctx, node, rq->volume_mb, &rerr) < 0 ||
        ctl_volumes_observe(ctx, node, rq->volumes, rq->n_volumes, &rerr) < 0)
        log_warnx("node %s: its volumes were not recorded: %s", row.name, rerr.msg);
    reports_free(reps, nr);
    ctl_node_bump(ctx, node);
    *out = node;
    return 0;
}

int ctl_node_replace(struct ctl_ctx *ctx, struct ctl_node *node, char token[NUBO_AGENT_TOKEN_MAX],
                     struct nubo_err *err)
{
    struct ctl_node_row row = node->row;
    ctl_token_new("node", token, row.token_hash);
    row.register_key_hash[0] = '\0'; /* the new machine binds its own key when it registers */
    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_node_put(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    ctl_map_del(&ctx->node_tokens, node->row.token_hash);
    memcpy(node->row.token_hash, row.token_hash, sizeof(row.token_hash));
    node->row.register_key_hash[0] = '\0';
    ctl_map_put(&ctx->node_tokens, node->row.token_hash, node);
    log_info("node %s: its token was replaced by an admin; the old one is refused", row.name);
    return 0;
}

/* Record node's unavailable flag (a heartbeat came back, or the grace ran out). */
static int node_set_unavailable(struct ctl_ctx *ctx, struct ctl_node *node, bool unavailable,
                                struct nubo_err *err)
{
    struct ctl_node_row row = node->row;
    row.unavailable = unavailable;
    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_node_put(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return -1;
    }
    node->row.unavailable = unavailable;
    node->ready = !unavailable;
    ctl_node_reindex(node);
    for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
        ctl_emit_instance_changed(ctx, in);
    return 0;
}

void ctl_node_seen(struct ctl_ctx *ctx, struct ctl_node *node)
{
    node->last_seen_mono_us = nubo_mono_us();
    if (node->ready)
        return;
    struct nubo_err err = {0};
    if (node_set_unavailable(ctx, node, false, &err) < 0)
        log_warnx("node %s: cannot record it is back: %s", node->row.name, err.msg);
    else
        log_info("node %s is ready again", node->row.name);
}

int64_t ctl_heartbeat_ms(const struct ctl_ctx *ctx)
{
    int64_t base = ctx->cfg.heartbeat_interval_ms;
    int64_t rate = ctx->cfg.max_heartbeats_per_second;
    int64_t spread = ((int64_t)ctx->nodes.n * 1000 + rate - 1) / rate;
    return spread > base ? (spread > 3600000 ? 3600000 : spread) : base;
}

int64_t ctl_node_grace_ms(const struct ctl_ctx *ctx, const struct ctl_node *node)
{
    /* the larger of now and what the node was told: a node told a long interval before the
     * cluster shrank beats at that interval until its next reply tells it the shorter one */
    int64_t hb = ctl_heartbeat_ms(ctx);
    if (node->heartbeat_told_ms > hb)
        hb = node->heartbeat_told_ms;
    int64_t base = ctx->cfg.heartbeat_interval_ms;
    return hb <= base ? ctx->cfg.grace_ms : ctx->cfg.grace_ms * hb / base; /* < 2^49 */
}

void ctl_nodes_check(struct ctl_ctx *ctx)
{
    /* test builds: the kept capacity sums and state counts against the instances, every tick */
#ifdef NUBO_CHECKS
    if (!ctl_capacity_verify(ctx) || !ctl_state_counts_verify(ctx))
        abort();
#endif
    int64_t now = nubo_mono_us();
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *node = e->val;
        if (!node->ready || now - node->last_seen_mono_us <= ctl_node_grace_ms(ctx, node) * 1000)
            continue;
        struct nubo_err err = {0};
        if (node_set_unavailable(ctx, node, true, &err) < 0) {
            log_warnx("node %s: cannot record it is unavailable: %s", node->row.name, err.msg);
            continue;
        }
        log_warnx("node %s missed heartbeats for %lld ms: unavailable", node->row.name,
                  (long long)(now - node->last_seen_mono_us) / 1000);
    }
}

int ctl_node_drain(struct ctl_ctx *ctx, struct ctl_node *node, struct nubo_moved_instance **moved,
                   size_t *n_moved, struct nubo_err *err)
{
    *moved = NULL;
    *n_moved = 0;
    __attribute__((cleanup(ctl_plan_free))) struct ctl_plan plan;
    ctl_plan_init(&plan, ctx, node);
    size_t ni = node->n_instances;
    cleanup_free struct ctl_instance **inst = xcalloc(ni + 1, sizeof(*inst));
    cleanup_free size_t *target = xcalloc(ni + 1, sizeof(*target));
    cleanup_free int *host = xcalloc(ni + 1, sizeof(*host));
    size_t k = 0;
    for (struct ctl_instance *in = node->inst_head; in && k < ni; in = in->node_next)
        inst[k++] = in;
    ni = k;
    /* plan: one placement at a time, each taking its share of the target */
    for (size_t i = 0; i < ni; i++) {
        size_t n_vols = 0;
        free(ctl_volumes_of_instance(ctx, inst[i]->row.uuid, &n_vols));
        if (n_vols) /* its data cannot follow it */
            return nubo_error_http(err, 409,
                                   "cannot drain node %s: instance %s mounts volumes that live "
                                   "there; delete it first; nothing was moved",
                                   node->row.name, inst[i]->row.name);
        /* a stopped instance takes only an address: its start finds it room */
        bool holds = ctl_instance_holds(inst[i]);
        struct ctl_sched_req sr = {node->row.metro, holds ? inst[i]->row.memory_mb : 0,
                                   holds ? inst[i]->row.vcpus : 0, 1};
        if (ctl_plan_place(&plan, &sr, &target[i], err) < 0)
            return nubo_error_http(err, 409,
                                   "cannot drain node %s: no other ready node of metro %s has "
                                   "room for instance %s (%lld MiB, %lld vCPUs); nothing was "
                                   "moved",
                                   node->row.name, node->row.metro, inst[i]->row.name,
                                   (long long)inst[i]->row.memory_mb,
                                   (long long)inst[i]->row.vcpus);
        size_t t = target[i];
        host[i] = ctl_plan_address(&plan, t);
        if (host[i] < 0)
            return nubo_error_http(err, 409, "cannot drain node %s: node %s has no free address",
                                   node->row.name, plan.node[t]->row.name);
    }
    struct ctl_node_row nrow = node->row;
    nrow.maintenance = true;
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    if (ctl_store_node_put(&ctx->store, &nrow, err) < 0)
        goto rollback;
    for (size_t i = 0; i < ni; i++) {
        struct ctl_instance_row r = inst[i]->row; /* shallow: only scalars change */
        memcpy(r.node_uuid, plan.node[target[i]]->row.uuid, sizeof(r.node_uuid));
        r.ip_host = host[i];
        if (ctl_store_instance_put(&ctx->store, &r, err) < 0 ||
            ctl_store_obs_delete(&ctx->store, r.uuid, err) < 0)
            goto rollback;
    }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return -1;
    /* committed: the working set follows */
    node->row.maintenance = true;
    ctl_node_reindex(node);
    *moved = ni ? xcalloc(ni, sizeof(**moved)) : NULL;
    for (size_t i = 0; i < ni; i++) {
        struct ctl_instance *in = inst[i];
        struct ctl_node *to = plan.node[target[i]];
        ctl_instance_move(ctx, in, to, host[i]);
        struct nubo_moved_instance *mv = &(*moved)[(*n_moved)++];
        memcpy(mv->uuid, in->row.uuid, sizeof(mv->uuid));
        snprintf(mv->name, sizeof(mv->name), "%s", in->row.name);
        snprintf(mv->node, sizeof(mv->node), "%s", to->row.name);
        ctl_node_ip_str(to, host[i], mv->private_ip);
        log_info("drain %s: instance %s moved to %s (%s)", node->row.name, in->row.name,
                 to->row.name, mv->private_ip);
    }
    ctl_node_bump(ctx, node); /* its desired set is now empty */
    for (size_t i = 0; i < ni; i++)
        ctl_emit_instance_changed(ctx, inst[i]);
    return 0;
rollback:
    ctl_store_rollback(&ctx->store);
    return -1;
}

int ctl_node_set_ready(struct ctl_ctx *ctx, struct ctl_node *node, struct nubo_err *err)
{
    if (!node->row.maintenance)
        return 0;
    struct ctl_node_row nrow = node->row;
    nrow.maintenance = false;
    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_node_put(&ctx->store, &nrow, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    node->row.maintenance = false;
    ctl_node_reindex(node);
    log_info("node %s is back in service", node->row.name);
    return 0;
}
