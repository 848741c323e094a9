/* /agent/v1: register (join token -> node token, subnet), the long-poll watch of a node's
 * desired set, status reports (also heartbeats), console logs; the heartbeat checker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

int ctl_instances_delete(struct ctl_ctx *ctx, struct ctl_instance **v, size_t n,
                         struct nubo_err *err);

static const char *bearer(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    return a + 7;
}

/* ---- the desired set ---- */

static const char *assignment_json(struct ctl_ctx *ctx, struct ctl_instance *in, size_t *len)
{
    if (in->assign_json) {
        *len = in->assign_len;
        return in->assign_json;
    }
    struct ctl_node *node = in->node;
    struct nubo_assignment a = {0};
    memcpy(a.uuid, in->row.uuid, sizeof(a.uuid));
    memcpy(a.name, in->row.name, sizeof(a.name));
    memcpy(a.image, in->row.image, sizeof(a.image));
    a.memory_mb = in->row.memory_mb;
    a.vcpus = in->row.vcpus;
    a.args = in->row.args;
    a.n_args = in->row.n_args;
    a.env = in->row.env;
    a.n_env = in->row.n_env;
    a.desired_state = in->row.desired;
    a.restart_policy = in->row.restart_policy;
    ctl_node_ip_str(node, (int)in->row.ip_host, a.private_ip);
    a.prefix = 24;
    ctl_node_gateway(node, a.gateway);
    memcpy(a.dns, a.gateway, sizeof(a.dns));
    a.service_ports = in->row.service_ports;
    a.n_service_ports = in->row.n_service_ports;
    int64_t group_ports[NUBO_AGENT_MAX_PORTS];
    if (in->svc) { /* the group's destination ports are what the agent times */
        a.service_ports = group_ports;
        a.n_service_ports = ctl_svc_dest_ports(in->svc, group_ports, NUBO_AGENT_MAX_PORTS);
    }
    a.start_seq = in->row.start_seq;
    a.stop_force = in->row.stop_force;
    a.stop_drain_timeout_ms = in->row.drain_timeout_ms;
    json_t *j = nubo_assignment_encode(&a);
    in->assign_json = pj_dump(j);
    json_decref(j);
    in->assign_len = in->assign_json ? strlen(in->assign_json) : 0;
    *len = in->assign_len;
    return in->assign_json;
}

/* {"version":V,"assignments":[…]} from the cached per-instance texts. */
static struct evbuffer *desired_set(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL)
        return NULL;
    evbuffer_add_printf(b, "{\"version\":%lld,\"assignments\":[", (long long)node->version);
    bool first = true;
    for (struct ctl_instance *in = node->inst_head; in; in = in->node_next) {
        size_t len;
        const char *t = assignment_json(ctx, in, &len);
        if (t == NULL)
            continue;
        if (!first)
            evbuffer_add(b, ",", 1);
        evbuffer_add(b, t, len);
        first = false;
    }
    evbuffer_add(b, "]}\n", 3);
    return b;
}

static void send_set(struct ctl_ctx *ctx, struct evhttp_request *req, int64_t start_us,
                     struct evbuffer *set)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    ctx->metrics.requests[CTL_R_AGENT_WATCH][2]++;
    (void)start_us;
    evhttp_send_reply(req, 200, "OK", set);
}

void ctl_agent_flush_watches(struct ctl_ctx *ctx, struct ctl_node *node)
{
    if (node->watches == NULL)
        return;
    node->last_flush_mono_us = nubo_mono_us();
    struct evbuffer *set = desired_set(ctx, node);
    if (set == NULL)
        return;
    size_t len = evbuffer_get_length(set);
    void *text = evbuffer_pullup(set, -1);
    while (node->watches) {
        struct ctl_parked *p = node->watches;
        ctl_park_unlink(&node->watches, p);
        struct evbuffer *copy = evbuffer_new();
        evbuffer_add(copy, text, len);
        send_set(ctx, p->req, p->start_mono_us, copy);
        evbuffer_free(copy);
        ctl_parked_free(p);
    }
    evbuffer_free(set);
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_parked *p = arg;
    struct ctl_node *node = p->node;
    ctl_park_unlink(&node->watches, p);
    struct evbuffer *set = desired_set(p->ctx, node);
    send_set(p->ctx, p->req, p->start_mono_us, set);
    if (set)
        evbuffer_free(set);
    ctl_parked_free(p);
}

static void do_watch(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node)
{
    int64_t version = 0, timeout_ms = 30000;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "version")) {
            if (nubo_parse_int(kv->value, 0, INT64_C(1) << 62, &version, NULL) < 0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "watch: version must be a whole number");
                return;
            }
        } else if (!strcmp(kv->key, "timeout_ms")) {
            if (nubo_parse_int(kv->value, 0, NUBO_AGENT_WATCH_TIMEOUT_MAX_MS, &timeout_ms, NULL) <
                0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "watch: timeout_ms must be 0..%d", NUBO_AGENT_WATCH_TIMEOUT_MAX_MS);
                return;
            }
        }
    }
    if (version == 0 || version != node->version || timeout_ms == 0) {
        struct evbuffer *set = desired_set(ctx, node);
        if (set == NULL) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
            return;
        }
        send_set(ctx, ri->req, ri->start_us, set);
        evbuffer_free(set);
        return;
    }
    struct ctl_parked *p = ctl_park_timed(ctx, ri, CTL_PARK_WATCH, timeout_ms, watch_timeout_cb);
    if (p == NULL)
        return;
    p->node = node;
    ctl_park_link(&node->watches, p);
}

/* ---- observations ---- */

static bool obs_equal(const struct nubo_status_report *a, const struct nubo_status_report *b)
{
    return a->state == b->state && a->start_seq == b->start_seq &&
           a->boot_time_us == b->boot_time_us && a->net_time_us == b->net_time_us &&
           a->start_count == b->start_count && a->restart_count == b->restart_count &&
           a->started_at_us == b->started_at_us && a->stopped_at_us == b->stopped_at_us &&
           a->stop_reason == b->stop_reason && a->has_exit_code == b->has_exit_code &&
           a->exit_code == b->exit_code && a->has_stop_code == b->has_stop_code &&
           a->stop_code == b->stop_code && a->restart_attempt == b->restart_attempt &&
           a->restart_next_at_us == b->restart_next_at_us &&
           !memcmp(&a->phases, &b->phases, sizeof(a->phases)) &&
           ((a->message == NULL && b->message == NULL) ||
            (a->message && b->message && !strcmp(a->message, b->message)));
}

/* Persist the reports that change something (one transaction), then apply them. */
static int apply_reports(struct ctl_ctx *ctx, struct ctl_node *node,
                         struct nubo_status_report *reps, size_t n, struct nubo_err *err)
{
    struct ctl_instance **hit = calloc(n + 1, sizeof(*hit));
    if (hit == NULL)
        return nubo_error_http(err, 500, "out of memory");
    size_t changed = 0;
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, reps[i].uuid);
        /* not ours or not on this node: the watch tells the node to drop it */
        if (in == NULL || in->node != node)
            continue;
        if (in->has_obs && obs_equal(&in->obs, &reps[i]))
            continue;
        hit[i] = in;
        changed++;
    }
    if (changed == 0) {
        free(hit);
        return 0;
    }
    if (ctl_store_begin(&ctx->store, err) < 0)
        goto fail;
    for (size_t i = 0; i < n; i++)
        if (hit[i] && ctl_store_obs_put(&ctx->store, &reps[i], err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto fail;
        }
    if (ctl_store_commit(&ctx->store, err) < 0)
        goto fail;
    struct ctl_instance **dos = calloc(n + 1, sizeof(*dos));
    size_t n_dos = 0;
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = hit[i];
        if (in == NULL)
            continue;
        struct nubo_status_report *r = &reps[i];
        bool was_running = in->has_obs && in->obs.state == NUBO_STATE_RUNNING &&
                           in->obs.start_count == r->start_count;
        if (r->state == NUBO_STATE_RUNNING && !was_running && r->boot_time_us > 0)
            ctl_hist_observe(&ctx->metrics.boot_time, (double)r->boot_time_us / 1e6);
        bool was_stopped = in->has_obs && in->obs.state == NUBO_STATE_STOPPED;
        if (in->has_obs)
            nubo_status_report_free(&in->obs);
        in->obs = *r;
        r->message = NULL; /* moved */
        in->has_obs = true;
        if (dos && (in->row.features & NUBO_FEATURE_DELETE_ON_STOP) &&
            in->obs.state == NUBO_STATE_STOPPED && !was_stopped &&
            in->obs.start_seq >= in->row.start_seq && in->row.start_seq > 0)
            dos[n_dos++] = in;
    }
    for (size_t i = 0; i < n; i++)
        if (hit[i])
            ctl_instance_changed(ctx, hit[i]);
    if (n_dos) {
        struct nubo_err derr = {0};
        if (ctl_instances_delete(ctx, dos, n_dos, &derr) < 0)
            log_warnx("delete-on-stop: %s", derr.msg);
    }
    free(dos);
    free(hit);
    return 0;
fail:
    free(hit);
    return -1;
}

static void node_seen(struct ctl_ctx *ctx, struct ctl_node *node)
{
    node->last_seen_mono_us = nubo_mono_us();
    if (node->ready)
        return;
    struct nubo_err err = {0};
    struct ctl_node_row row = node->row;
    row.unavailable = false;
    if (ctl_store_begin(&ctx->store, &err) < 0 || ctl_store_node_put(&ctx->store, &row, &err) < 0 ||
        ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_store_rollback(&ctx->store);
        log_warnx("node %s: cannot record it is back: %s", node->row.name, err.msg);
        return;
    }
    node->row.unavailable = false;
    node->ready = true;
    log_info("node %s is ready again", node->row.name);
    for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
        ctl_instance_changed(ctx, in);
}

/* ---- handlers ---- */

static int lowest_free_subnet(struct ctl_ctx *ctx)
{
    int max = 1 << (24 - ctx->cfg.pool_prefix);
    uint8_t *used = calloc((size_t)max, 1);
    if (used == NULL)
        return -1;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (n->row.subnet_index >= 0 && n->row.subnet_index < max)
            used[n->row.subnet_index] = 1;
    }
    int r = -1;
    for (int i = 0; i < max && r < 0; i++)
        if (!used[i])
            r = i;
    free(used);
    return r;
}

static void do_register(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    struct nubo_err err = {0};
    if (!ctl_auth_join(ctx, bearer(ri->req))) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 401,
                        "register: missing or wrong join token (see [agent] join_token_file)");
        return;
    }
    cleanup_json json_t *j = NULL;
    struct nubo_register_req rq;
    if (ri->body == NULL || pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, &err) < 0 ||
        nubo_register_req_decode(j, &rq, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        ri->body ? err.msg : "register: empty body");
        return;
    }
    struct ctl_node *node = ctl_map_get(&ctx->nodes_by_name, rq.name);
    struct ctl_node_row row;
    char token[NUBO_AGENT_TOKEN_MAX];
    if (node) {
        row = node->row;
    } else {
        memset(&row, 0, sizeof(row));
        nubo_uuid_new(row.uuid);
        memcpy(row.name, rq.name, sizeof(row.name));
        row.created_at_us = nubo_now_us();
        int idx = lowest_free_subnet(ctx);
        if (idx < 0) {
            nubo_register_req_free(&rq);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 503,
                            "register %s: the subnet pool is exhausted; widen [agent] "
                            "subnet_pool",
                            rq.name);
            return;
        }
        row.subnet_index = idx;
    }
    memcpy(row.metro, rq.metro, sizeof(row.metro));
    row.memory_mb = rq.memory_mb;
    row.vcpus = rq.vcpus;
    memcpy(row.accel, rq.accel, sizeof(row.accel));
    memcpy(row.libvirt_version, rq.libvirt_version, sizeof(row.libvirt_version));
    memcpy(row.qemu_version, rq.qemu_version, sizeof(row.qemu_version));
    memcpy(row.agent_version, rq.agent_version, sizeof(row.agent_version));
    row.registered_at_us = nubo_now_us();
    row.unavailable = false;
    ctl_token_new("node", token, row.token_hash);
    char guest_cpu[NUBO_GUEST_CPU_MAX];
    memcpy(guest_cpu, rq.guest_cpu, sizeof(guest_cpu));

    /* what the node no longer holds is no longer running there */
    size_t extra = 0;
    if (node)
        for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
            extra++;
    struct nubo_status_report *reps = calloc(rq.n_instances + extra + 1, sizeof(*reps));
    size_t nr = 0;
    if (reps == NULL) {
        nubo_register_req_free(&rq);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < rq.n_instances; i++) {
        reps[nr] = rq.instances[i];
        rq.instances[i].message = NULL;
        nr++;
    }
    if (node)
        for (struct ctl_instance *in = node->inst_head; in; in = in->node_next) {
            bool held = false;
            for (size_t i = 0; i < rq.n_instances && !held; i++)
                held = !strcmp(rq.instances[i].uuid, in->row.uuid);
            if (held || !in->has_obs || in->obs.state == NUBO_STATE_STOPPED)
                continue;
            reps[nr] = in->obs;
            reps[nr].message = strdup("the node restarted without this instance");
            reps[nr].state = NUBO_STATE_STOPPED;
            reps[nr].stopped_at_us = nubo_now_us();
            nr++;
        }
    nubo_register_req_free(&rq);

    if (ctl_store_begin(&ctx->store, &err) < 0 || ctl_store_node_put(&ctx->store, &row, &err) < 0 ||
        ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_store_rollback(&ctx->store);
        for (size_t i = 0; i < nr; i++)
            nubo_status_report_free(&reps[i]);
        free(reps);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
        return;
    }
    if (node) {
        ctl_map_del(&ctx->node_tokens, node->row.token_hash);
        bool was_ready = node->ready;
        node->row = row;
        node->ready = true;
        ctl_map_put(&ctx->node_tokens, node->row.token_hash, node);
        if (!was_ready)
            for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
                ctl_instance_changed(ctx, in);
    } else {
        node = ctl_node_new(ctx, &row);
        if (node == NULL) {
            for (size_t i = 0; i < nr; i++)
                nubo_status_report_free(&reps[i]);
            free(reps);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
            return;
        }
        log_info("node %s registered (metro %s, %lld MiB, %lld vCPUs, %s)", row.name, row.metro,
                 (long long)row.memory_mb, (long long)row.vcpus, row.accel);
    }
    node->last_seen_mono_us = nubo_mono_us();
    memcpy(node->guest_cpu, guest_cpu, sizeof(node->guest_cpu));
    if (apply_reports(ctx, node, reps, nr, &err) < 0)
        log_warnx("node %s: register reports not applied: %s", row.name, err.msg);
    for (size_t i = 0; i < nr; i++)
        nubo_status_report_free(&reps[i]);
    free(reps);
    ctl_node_bump(ctx, node);

    struct nubo_register_resp resp = {0};
    memcpy(resp.node.uuid, node->row.uuid, sizeof(resp.node.uuid));
    memcpy(resp.node.name, node->row.name, sizeof(resp.node.name));
    memcpy(resp.node.metro, node->row.metro, sizeof(resp.node.metro));
    ctl_node_subnet(node, resp.node.subnet);
    ctl_node_gateway(node, resp.node.gateway);
    memcpy(resp.node.dns, resp.node.gateway, sizeof(resp.node.dns));
    memcpy(resp.token, token, sizeof(resp.token));
    resp.heartbeat_interval_ms = ctx->cfg.heartbeat_interval_ms;
    resp.grace_ms = ctx->cfg.grace_ms;
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, nubo_register_resp_encode(&resp));
}

/* A big status batch is applied in slices, one transaction each, with the loop free to
 * serve other requests between slices; the reply goes out after the last one commits. */
#define CTL_STATUS_SLICE 128

struct status_job {
    struct status_job *lnext, *lprev; /* in ctx->status_jobs */
    struct ctl_ctx *ctx;
    struct evhttp_request *req;
    int64_t start_us;
    struct ctl_node *node;
    struct nubo_status_batch b;
    size_t next;
};

static void status_slice_cb(evutil_socket_t fd, short what, void *arg)
{
    struct status_job *sj = arg;
    struct ctl_ctx *ctx = sj->ctx;
    struct nubo_err err = {0};
    size_t n = sj->b.n_instances - sj->next;
    if (n > CTL_STATUS_SLICE)
        n = CTL_STATUS_SLICE;
    int rc = apply_reports(ctx, sj->node, sj->b.instances + sj->next, n, &err);
    sj->next += n;
    if (rc == 0 && sj->next < sj->b.n_instances &&
        event_base_once(ctx->base, -1, EV_TIMEOUT, status_slice_cb, sj, NULL) == 0)
        return;
    /* done: unlink */
    if (sj->lprev)
        sj->lprev->lnext = sj->lnext;
    else
        ctx->status_jobs = sj->lnext;
    if (sj->lnext)
        sj->lnext->lprev = sj->lprev;
    if (rc < 0) {
        ctl_reply_error(ctx, sj->req, CTL_R_AGENT_STATUS, sj->start_us, 500, "%s", err.msg);
    } else {
        struct nubo_status_resp resp = {sj->node->version};
        ctl_reply_json(ctx, sj->req, CTL_R_AGENT_STATUS, sj->start_us, 200,
                       nubo_status_resp_encode(&resp));
    }
    nubo_status_batch_free(&sj->b);
    free(sj);
}

static void do_status(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node)
{
    struct nubo_err err = {0};
    cleanup_json json_t *j = NULL;
    struct nubo_status_batch b;
    if (ri->body == NULL) {
        node_seen(ctx, node); /* an empty heartbeat */
        struct nubo_status_resp resp = {node->version};
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, nubo_status_resp_encode(&resp));
        return;
    }
    if (pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, &err) < 0 ||
        nubo_status_batch_decode(j, &b, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return;
    }
    node_seen(ctx, node);
    if (b.free_memory_mb >= 0)
        node->free_memory_mb = b.free_memory_mb;
    struct status_job *sj = calloc(1, sizeof(*sj));
    if (sj == NULL) {
        nubo_status_batch_free(&b);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    *sj = (struct status_job){NULL, NULL, ctx, ri->req, ri->start_us, node, b, 0};
    sj->lnext = ctx->status_jobs;
    if (sj->lnext)
        sj->lnext->lprev = sj;
    ctx->status_jobs = sj;
    status_slice_cb(-1, 0, sj);
}

static void log_append(struct ctl_ctx *ctx, struct ctl_instance *in, int64_t offset,
                       const unsigned char *data, size_t len)
{
    struct ctl_logtail *lt = &in->log;
    size_t cap = (size_t)ctx->cfg.log_tail_bytes;
    int64_t end = lt->start + (int64_t)lt->len;
    if (offset + (int64_t)len <= end)
        return; /* already have it */
    if (offset > end || lt->buf == NULL) {
        if (offset != end || lt->buf == NULL) {
            lt->len = 0; /* a gap: start over at this offset */
            lt->start = offset;
        }
    } else {
        size_t skip = (size_t)(end - offset);
        data += skip;
        len -= skip;
    }
    if (lt->buf == NULL) {
        lt->buf = malloc(cap);
        if (lt->buf == NULL)
            return;
        lt->cap = cap;
    }
    ctl_logtail_push(lt, data, len);
    in->log_dirty = true;
}

void ctl_logs_flush(struct ctl_ctx *ctx)
{
    /* Console output reaches the store at most once per tick per instance, all in one
     * transaction, and only the bytes that arrived since: a chunk appended at its offset, the
     * chunks the bounded tail has moved past deleted. */
    bool any = false;
    ctl_map_foreach(&ctx->instances, e) any = any || ((struct ctl_instance *)e->val)->log_dirty;
    if (!any)
        return;
    struct nubo_err err = {0};
    int64_t t0 = nubo_mono_us();
    size_t written = 0;
    if (ctl_store_begin(&ctx->store, &err) < 0)
        goto fail;
    ctl_map_foreach(&ctx->instances, e)
    {
        struct ctl_instance *in = e->val;
        const struct ctl_logtail *lt = &in->log;
        written += in->log_dirty;
        if (!in->log_dirty || lt->buf == NULL)
            continue;
        int64_t end = lt->start + (int64_t)lt->len;
        int64_t from = in->log_saved_end > lt->start ? in->log_saved_end : lt->start;
        if ((from < end && ctl_store_log_put(&ctx->store, in->row.uuid, from,
                                             lt->buf + (from - lt->start), (size_t)(end - from),
                                             &err) < 0) ||
            ctl_store_log_trim(&ctx->store, in->row.uuid, lt->start, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto fail;
        }
    }
    if (ctl_store_commit(&ctx->store, &err) < 0)
        goto fail;
    ctl_map_foreach(&ctx->instances, e)
    {
        struct ctl_instance *in = e->val;
        if (in->log_dirty) {
            in->log_dirty = false;
            in->log_saved_end = in->log.start + (int64_t)in->log.len;
        }
    }
    int64_t took_us = nubo_mono_us() - t0;
    if (took_us > 100000) /* the loop waited this long */
        log_warnx("console tails: saving %zu took %lld ms", written, (long long)took_us / 1000);
    return;
fail:
    log_warnx("console tails: cannot save them (kept in memory, retried): %s", err.msg);
}

static void do_log(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node)
{
    struct nubo_err err = {0};
    cleanup_json json_t *j = NULL;
    struct nubo_log_batch b;
    if (ri->body == NULL || pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, &err) < 0 ||
        nubo_log_batch_decode(j, &b, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        ri->body ? err.msg : "log: empty body");
        return;
    }
    for (size_t i = 0; i < b.n_logs; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, b.logs[i].uuid);
        if (in && in->node == node)
            log_append(ctx, in, b.logs[i].offset, b.logs[i].data, b.logs[i].len);
    }
    nubo_log_batch_free(&b);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   json_pack("{s:s}", "status", "success"));
}

void ctl_handle_agent(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    enum evhttp_cmd_type m = ri->method;
    if (!strcmp(rest, "/register")) {
        ri->route = CTL_R_AGENT_REGISTER;
        if (m != EVHTTP_REQ_POST)
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "register: use POST");
        else
            do_register(ctx, ri);
        return;
    }
    int route = !strcmp(rest, "/watch")    ? CTL_R_AGENT_WATCH
                : !strcmp(rest, "/status") ? CTL_R_AGENT_STATUS
                : !strcmp(rest, "/log")    ? CTL_R_AGENT_LOG
                                           : CTL_R_OTHER;
    ri->route = route;
    if (route == CTL_R_OTHER) {
        ctl_reply_error(ctx, ri->req, route, ri->start_us, 404,
                        "no agent endpoint %s (register, watch, status, log)", ri->path);
        return;
    }
    struct ctl_node *node = ctl_auth_node(ctx, bearer(ri->req));
    if (node == NULL) {
        ctl_reply_error(ctx, ri->req, route, ri->start_us, 401,
                        "unknown node token: register again");
        return;
    }
    if (route == CTL_R_AGENT_WATCH) {
        if (m != EVHTTP_REQ_GET)
            ctl_reply_error(ctx, ri->req, route, ri->start_us, 405, "watch: use GET");
        else
            do_watch(ctx, ri, node);
    } else if (m != EVHTTP_REQ_POST) {
        ctl_reply_error(ctx, ri->req, route, ri->start_us, 405, "%s: use POST", rest + 1);
    } else if (route == CTL_R_AGENT_STATUS) {
        do_status(ctx, ri, node);
    } else {
        do_log(ctx, ri, node);
    }
}

/* Shutdown: batches still being sliced are answered 503 (the agent sends them again). */
void ctl_agent_free_jobs(struct ctl_ctx *ctx)
{
    while (ctx->status_jobs) {
        struct status_job *sj = ctx->status_jobs;
        ctx->status_jobs = sj->lnext;
        evhttp_send_error(sj->req, 503, "shutting down");
        nubo_status_batch_free(&sj->b);
        free(sj);
    }
}

/* Runs a few times per grace period: nodes silent past the grace become unavailable. */
void ctl_agent_tick(struct ctl_ctx *ctx)
{
    int64_t now = nubo_mono_us();
    ctl_logs_flush(ctx);
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *node = e->val;
        if (!node->ready || now - node->last_seen_mono_us <= ctx->cfg.grace_ms * 1000)
            continue;
        struct nubo_err err = {0};
        struct ctl_node_row row = node->row;
        row.unavailable = true;
        if (ctl_store_begin(&ctx->store, &err) < 0 ||
            ctl_store_node_put(&ctx->store, &row, &err) < 0 ||
            ctl_store_commit(&ctx->store, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            log_warnx("node %s: cannot record it is unavailable: %s", node->row.name, err.msg);
            continue;
        }
        node->row.unavailable = true;
        node->ready = false;
        log_warnx("node %s missed heartbeats for %lld ms: unavailable", node->row.name,
                  (long long)(now - node->last_seen_mono_us) / 1000);
        for (struct ctl_instance *in = node->inst_head; in; in = in->node_next)
            ctl_instance_changed(ctx, in);
    }
    /* waits whose client went away: answering frees them */
    for (struct ctl_parked *p = ctx->waits, *nx; p; p = nx) {
        nx = p->next;
        if (evhttp_request_get_connection(p->req) == NULL)
            ctl_wait_fire(ctx, p, true);
    }
}
