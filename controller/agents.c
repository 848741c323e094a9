/* /agent/v1, the nodes' side of the API: register (a new name with the join token gets a node
 * token; a known node comes back with that token), the long-poll watch of a node's desired set
 * (woken by the model's node_set_changed event, which main.c wires here), status reports (also
 * heartbeats) and console logs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

/* A node's parked watches and the throttle on answering them. */
struct ctl_node_watch {
    struct ctl_parked *parked;
    struct event *flush_ev;
    int64_t last_flush_mono_us;
    struct ctl_node *node;
    struct ctl_ctx *ctx;
};

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
    a.stop_save = in->row.standby && in->row.s2z.stateful;
    a.stop_drain_timeout_ms = in->row.drain_timeout_ms;
    a.volumes = ctl_volumes_of_instance(ctx, in->row.uuid, &a.n_volumes);
    json_t *j = nubo_assignment_encode(&a);
    free(a.volumes);
    in->assign_json = pj_dump(j);
    json_decref(j);
    in->assign_len = in->assign_json ? strlen(in->assign_json) : 0;
    *len = in->assign_len;
    return in->assign_json;
}

/* {"version":V,"assignments":[…]} from the cached per-instance texts. */
static struct evbuffer *desired_set(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct evbuffer *b = xcheck(evbuffer_new(), "watch buffer");
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
    /* the volumes the node holds, whether or not an instance mounts them */
    json_t *vols = ctl_volumes_node_json(ctx, node);
    char *vt = pj_dump(vols);
    json_decref(vols);
    evbuffer_add_printf(b, "],\"volumes\":%s}\n", vt ? vt : "[]");
    free(vt);
    return b;
}

static void send_set(struct ctl_ctx *ctx, struct evhttp_request *req, struct ctl_node *node)
{
    struct evbuffer *set = desired_set(ctx, node);
    ctl_reply_raw(ctx, req, CTL_R_AGENT_WATCH, set);
    evbuffer_free(set);
}

static void flush_watches_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_node_watch *w = arg;
    if (w->parked == NULL)
        return;
    w->last_flush_mono_us = nubo_mono_us();
    struct evbuffer *set = desired_set(w->ctx, w->node);
    size_t len = evbuffer_get_length(set);
    const char *text = (const char *)evbuffer_pullup(set, -1);
    ctl_park_answer_all(&w->parked, CTL_R_AGENT_WATCH, text, len);
    evbuffer_free(set);
}

static struct ctl_node_watch *node_watch(struct ctl_ctx *ctx, struct ctl_node *node)
{
    if (node->watch == NULL) {
        struct ctl_node_watch *w = xcalloc(1, sizeof(*w));
        w->node = node;
        w->ctx = ctx;
        w->flush_ev = xcheck(event_new(ctx->base, -1, 0, flush_watches_cb, w), "watch event");
        node->watch = w;
    }
    return node->watch;
}

void ctl_agent_on_node_changed(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct ctl_node_watch *w = node->watch;
    if (w == NULL || w->parked == NULL || event_pending(w->flush_ev, EV_TIMEOUT, NULL))
        return;
    /* A change is answered at once, unless the node got a full set less than
     * watch_coalesce_ms ago: then the reply waits for the rest of that interval and carries
     * every change made meanwhile, so a burst of creates costs a few replies, not one per
     * instance (the agent parses the whole set each time). */
    int64_t gap_us = ctx->cfg.watch_coalesce_ms * 1000 - (nubo_mono_us() - w->last_flush_mono_us);
    if (gap_us <= 0) {
        event_active(w->flush_ev, EV_TIMEOUT, 0);
        return;
    }
    struct timeval tv = {gap_us / 1000000, gap_us % 1000000};
    if (evtimer_add(w->flush_ev, &tv) < 0)
        event_active(w->flush_ev, EV_TIMEOUT, 0);
}

static void watch_timeout(struct ctl_parked *p)
{
    struct ctl_node *node = p->data;
    ctl_park_unlink(p);
    send_set(p->ctx, p->req, node);
    ctl_parked_free(p);
}

static int do_watch(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node,
                    struct nubo_err *err)
{
    int64_t version, timeout_ms;
    if (ctl_watch_params(ri, NUBO_AGENT_WATCH_TIMEOUT_MAX_MS, &version, &timeout_ms, err) < 0)
        return -1;
    if (version == 0 || version != node->version || timeout_ms == 0) {
        send_set(ctx, ri->req, node);
        return 0;
    }
    ctl_park(ctx, ri, &node_watch(ctx, node)->parked, timeout_ms, watch_timeout, node, NULL);
    return 0;
}

/* ---- register, status, log ---- */

/* What an agent says of an instance or a volume reaches its tenant: whatever the agent's
 * version, host paths (the node's directories, other tenants' files) are cut to their last
 * component here, where the reports come in. */
static void scrub_reports(struct nubo_status_report *r, size_t n, struct nubo_volume_report *v,
                          size_t nv)
{
    for (size_t i = 0; i < n; i++)
        if (r[i].message)
            nubo_scrub_paths(r[i].message);
    for (size_t i = 0; i < nv; i++)
        nubo_scrub_paths(v[i].message);
}

/* Every status reply carries the assignment version and the heartbeat interval of the moment. */
static json_t *status_resp(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct nubo_status_resp resp = {node->version, ctl_heartbeat_ms(ctx)};
    node->heartbeat_told_ms = resp.heartbeat_interval_ms;
    return nubo_status_resp_encode(&resp);
}

static int do_register(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    const char *bearer = ctl_bearer(ri->req);
    struct ctl_node *by_token = ctl_auth_node(ctx, bearer);
    if (by_token == NULL && !ctl_auth_join(ctx, bearer))
        return nubo_error_http(err, 401,
                               "register: missing or wrong credential: a known node sends its "
                               "node token, a new node the join token (see [agent] "
                               "join_token_file)");
    cleanup_json json_t *j = NULL;
    struct nubo_register_req rq;
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "register: empty body");
    if (pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, err) < 0 ||
        nubo_register_req_decode(j, &rq, err) < 0)
        return ctl_err_status(err, 400);
    scrub_reports(rq.instances, rq.n_instances, rq.volumes, rq.n_volumes);
    if (ctl_node_register_check(ctx, &rq, by_token, err) < 0) {
        log_warnx("%s", err->msg);
        nubo_register_req_free(&rq);
        return -1;
    }
    char token[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node;
    int rc = ctl_node_register(ctx, &rq, by_token ? bearer : NULL, token, &node, err);
    nubo_register_req_free(&rq);
    if (rc < 0)
        return ctl_err_status(err, 500);
    struct nubo_register_resp resp = {0};
    memcpy(resp.node.uuid, node->row.uuid, sizeof(resp.node.uuid));
    memcpy(resp.node.name, node->row.name, sizeof(resp.node.name));
    memcpy(resp.node.metro, node->row.metro, sizeof(resp.node.metro));
    ctl_node_subnet(node, resp.node.subnet);
    ctl_node_gateway(node, resp.node.gateway);
    memcpy(resp.node.dns, resp.node.gateway, sizeof(resp.node.dns));
    memcpy(resp.token, token, sizeof(resp.token));
    resp.heartbeat_interval_ms = node->heartbeat_told_ms = ctl_heartbeat_ms(ctx);
    resp.grace_ms = ctl_node_grace_ms(ctx, node);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, nubo_register_resp_encode(&resp));
    return 0;
}

/* Status reports are written by group commit: the ones that arrive within one pass of the
 * event loop wait for a flush at the end of that pass, which writes all their changes in one
 * transaction, applies them, then answers each (every change committed before it is
 * acknowledged; a failed commit answers the whole group with the error and changes nothing).
 * A big batch goes a slice at a time, one slice per flush, with the loop free to serve other
 * requests between flushes; its answer goes out after its last slice commits. */
#define CTL_STATUS_SLICE 128
#define CTL_STATUS_GROUP 1024 /* reports per transaction, about */
#define CTL_STATUS_GROUP_JOBS 256

struct status_job {
    struct status_job *next_job; /* in the queue (struct status_queue) */
    struct ctl_ctx *ctx;
    struct evhttp_request *req;
    int64_t start_us;
    struct ctl_node *node;
    struct nubo_status_batch b;
    size_t next;
};

/* ctx->status_jobs: the batches waiting for a flush, in arrival order */
struct status_queue {
    struct status_job *head, **tail;
    struct event *flush_ev;
};

static void status_answer(struct ctl_ctx *ctx, struct status_job *sj, int rc,
                          const struct nubo_err *err)
{
    if (rc < 0) {
        struct ctl_reqinfo ri = {
            .req = sj->req, .start_us = sj->start_us, .route = CTL_R_AGENT_STATUS};
        struct nubo_err e = *err;
        ctl_reply_err(ctx, &ri, &e);
    } else {
        ctl_reply_json(ctx, sj->req, CTL_R_AGENT_STATUS, sj->start_us, 200,
                       status_resp(ctx, sj->node));
    }
    nubo_status_batch_free(&sj->b);
    free(sj);
}

static void status_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ctl_ctx *ctx = arg;
    struct status_queue *q = ctx->status_jobs;
    /* take a slice of each waiting batch, oldest first, up to the group's bounds */
    struct status_job *jobs[CTL_STATUS_GROUP_JOBS];
    struct ctl_obs_part parts[CTL_STATUS_GROUP_JOBS];
    size_t nj = 0, reports = 0;
    while (q->head && nj < CTL_STATUS_GROUP_JOBS && reports < CTL_STATUS_GROUP) {
        struct status_job *sj = q->head;
        q->head = sj->next_job;
        size_t n = sj->b.n_instances - sj->next;
        if (n > CTL_STATUS_SLICE)
            n = CTL_STATUS_SLICE;
        parts[nj] = (struct ctl_obs_part){sj->node, sj->b.instances + sj->next, n};
        jobs[nj++] = sj;
        reports += n;
    }
    if (q->head == NULL)
        q->tail = &q->head;
    struct nubo_err err = {0};
    int rc = ctl_instances_observe_group(ctx, parts, nj, &err);
    for (size_t k = 0; k < nj; k++) {
        struct status_job *sj = jobs[k];
        struct nubo_err jerr = err;
        int jrc = rc;
        if (jrc == 0 && sj->next == 0 && sj->b.n_volumes)
            jrc = ctl_volumes_observe(ctx, sj->node, sj->b.volumes, sj->b.n_volumes, &jerr);
        if (jrc == 0 && sj->next == 0)
            ctl_instances_stats(ctx, sj->node, sj->b.stats, sj->b.n_stats);
        sj->next += parts[k].n;
        if (jrc < 0 || sj->next >= sj->b.n_instances) {
            status_answer(ctx, sj, jrc, &jerr);
            continue;
        }
        /* more slices: back in the queue, behind what came meanwhile */
        sj->next_job = NULL;
        *q->tail = sj;
        q->tail = &sj->next_job;
    }
    if (q->head)
        event_active(q->flush_ev, EV_TIMEOUT, 0);
}

static struct status_queue *status_queue(struct ctl_ctx *ctx)
{
    struct status_queue *q = ctx->status_jobs;
    if (q == NULL) {
        q = xcalloc(1, sizeof(*q));
        q->tail = &q->head;
        q->flush_ev = xcheck(event_new(ctx->base, -1, 0, status_flush_cb, ctx), "status event");
        ctx->status_jobs = q;
    }
    return q;
}

static int do_status(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node,
                     struct nubo_err *err)
{
    cleanup_json json_t *j = NULL;
    struct nubo_status_batch b;
    if (ri->body == NULL) {
        ctl_node_seen(ctx, node); /* an empty heartbeat */
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, status_resp(ctx, node));
        return 0;
    }
    if (pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, err) < 0 ||
        nubo_status_batch_decode(j, &b, err) < 0)
        return ctl_err_status(err, 400);
    scrub_reports(b.instances, b.n_instances, b.volumes, b.n_volumes);
    ctl_node_seen(ctx, node);
    struct status_job *sj = xcalloc(1, sizeof(*sj));
    *sj = (struct status_job){NULL, ctx, ri->req, ri->start_us, node, b, 0};
    struct status_queue *q = status_queue(ctx);
    *q->tail = sj;
    q->tail = &sj->next_job;
    event_active(q->flush_ev, EV_TIMEOUT, 0); /* runs after this pass's other requests */
    return 0;
}

static int do_log(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_node *node,
                  struct nubo_err *err)
{
    cleanup_json json_t *j = NULL;
    struct nubo_log_batch b;
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "log: empty body");
    if (pj_parse(ri->body, ri->body_len, NUBO_AGENT_MAX_BODY, &j, err) < 0 ||
        nubo_log_batch_decode(j, &b, err) < 0)
        return ctl_err_status(err, 400);
    for (size_t i = 0; i < b.n_logs; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, b.logs[i].uuid);
        if (in && in->node == node)
            ctl_log_append(ctx, in, b.logs[i].offset, b.logs[i].data, b.logs[i].len);
    }
    nubo_log_batch_free(&b);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   json_pack("{s:s}", "status", "success"));
    return 0;
}

int ctl_handle_agent(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err)
{
    enum evhttp_cmd_type m = ri->method;
    if (!strcmp(rest, "/register")) {
        ri->route = CTL_R_AGENT_REGISTER;
        if (m != EVHTTP_REQ_POST)
            return nubo_error_http(err, 405, "register: use POST");
        return do_register(ctx, ri, err);
    }
    ri->route = !strcmp(rest, "/watch")    ? CTL_R_AGENT_WATCH
                : !strcmp(rest, "/status") ? CTL_R_AGENT_STATUS
                : !strcmp(rest, "/log")    ? CTL_R_AGENT_LOG
                                           : CTL_R_OTHER;
    if (ri->route == CTL_R_OTHER)
        return nubo_error_http(err, 404, "no agent endpoint %s (register, watch, status, log)",
                               ri->path);
    struct ctl_node *node = ctl_auth_node(ctx, ctl_bearer(ri->req));
    if (node == NULL)
        return nubo_error_http(err, 401, "unknown node token: register again");
    if (ri->route == CTL_R_AGENT_WATCH) {
        if (m != EVHTTP_REQ_GET)
            return nubo_error_http(err, 405, "watch: use GET");
        return do_watch(ctx, ri, node, err);
    }
    if (m != EVHTTP_REQ_POST)
        return nubo_error_http(err, 405, "%s: use POST", rest + 1);
    if (ri->route == CTL_R_AGENT_STATUS)
        return do_status(ctx, ri, node, err);
    return do_log(ctx, ri, node, err);
}

void ctl_agent_cut(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct ctl_node_watch *w = node->watch;
    while (w && w->parked) {
        struct ctl_parked *p = w->parked;
        ctl_park_unlink(p);
        struct ctl_reqinfo ri;
        ctl_reqinfo_of_parked(&ri, p);
        struct nubo_err err = {0};
        nubo_error_http(&err, 401, "node %s: this node token was replaced by an admin",
                        node->row.name);
        ctl_reply_err(ctx, &ri, &err);
        ctl_parked_free(p);
    }
}

/* Shutdown: parked watches and batches still being sliced are answered 503 (the agent asks
 * again). */
void ctl_agent_release(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (n->watch)
            ctl_park_drain(&n->watch->parked);
    }
}

void ctl_agent_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (n->watch == NULL)
            continue;
        ctl_park_drain(&n->watch->parked);
        event_free(n->watch->flush_ev);
        free(n->watch);
        n->watch = NULL;
    }
    struct status_queue *q = ctx->status_jobs;
    if (q == NULL)
        return;
    while (q->head) {
        struct status_job *sj = q->head;
        q->head = sj->next_job;
        evhttp_send_error(sj->req, 503, "shutting down");
        nubo_status_batch_free(&sj->b);
        free(sj);
    }
    event_free(q->flush_ev);
    free(q);
    ctx->status_jobs = NULL;
}
