/* The controller's working set in memory: nodes and instances loaded from the store at start
 * and kept in step with it; the derived (visible) state; waking parked watches and waits. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

void ctl_node_ip_str(const struct ctl_node *n, int host, char out[NUBO_IP_STR_MAX])
{
    /* node subnets are /24s carved from the pool in index order */
    struct in_addr a;
    a.s_addr = htonl(n->subnet_base | (uint32_t)host);
    inet_ntop(AF_INET, &a, out, NUBO_IP_STR_MAX);
}

void ctl_node_subnet(const struct ctl_node *n, char out[NUBO_CIDR_STR_MAX])
{
    char ip[NUBO_IP_STR_MAX];
    ctl_node_ip_str(n, 0, ip);
    snprintf(out, NUBO_CIDR_STR_MAX, "%s/24", ip);
}

static void flush_watches_cb(evutil_socket_t fd, short what, void *arg);

void ctl_node_gateway(const struct ctl_node *n, char out[NUBO_IP_STR_MAX])
{
    ctl_node_ip_str(n, 1, out);
}

struct ctl_node *ctl_node_new(struct ctl_ctx *ctx, const struct ctl_node_row *row)
{
    struct ctl_node *n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->row = *row;
    n->subnet_base = ctx->cfg.pool_net + ((uint32_t)row->subnet_index << 8);
    n->ready = !row->unavailable;
    n->last_seen_mono_us = nubo_mono_us();
    n->version = ++ctx->version_seq;
    n->flush_ev = event_new(ctx->base, -1, 0, flush_watches_cb, n);
    if (n->flush_ev == NULL || ctl_map_put(&ctx->nodes, n->row.uuid, n) < 0 ||
        ctl_map_put(&ctx->nodes_by_name, n->row.name, n) < 0 ||
        ctl_map_put(&ctx->node_tokens, n->row.token_hash, n) < 0) {
        ctl_map_del(&ctx->nodes, n->row.uuid);
        ctl_map_del(&ctx->nodes_by_name, n->row.name);
        ctl_map_del(&ctx->node_tokens, n->row.token_hash);
        if (n->flush_ev)
            event_free(n->flush_ev);
        free(n);
        return NULL;
    }
    return n;
}

static int node_cb(void *arg, const struct ctl_node_row *row)
{
    struct ctl_ctx *ctx = arg;
    return ctl_node_new(ctx, row) ? 0 : -1;
}

void ctl_instance_attach(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *node)
{
    (void)ctx;
    in->node = node;
    in->node_prev = NULL;
    in->node_next = node->inst_head;
    if (node->inst_head)
        node->inst_head->node_prev = in;
    node->inst_head = in;
    node->used_memory_mb += in->row.memory_mb;
    node->used_vcpus += in->row.vcpus;
    node->n_instances++;
    int h = (int)in->row.ip_host;
    if (h > 0 && h < 256)
        node->ip_used[h / 8] |= (uint8_t)(1u << (h % 8));
}

void ctl_instance_detach(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    (void)ctx;
    struct ctl_node *node = in->node;
    if (node == NULL)
        return;
    if (in->node_prev)
        in->node_prev->node_next = in->node_next;
    else
        node->inst_head = in->node_next;
    if (in->node_next)
        in->node_next->node_prev = in->node_prev;
    node->used_memory_mb -= in->row.memory_mb;
    node->used_vcpus -= in->row.vcpus;
    node->n_instances--;
    int h = (int)in->row.ip_host;
    if (h > 0 && h < 256)
        node->ip_used[h / 8] &= (uint8_t) ~(1u << (h % 8));
    in->node = NULL;
    in->node_prev = in->node_next = NULL;
}

void ctl_instance_destroy(struct ctl_instance *in)
{
    if (in == NULL)
        return;
    ctl_instance_row_free(&in->row);
    if (in->has_obs)
        nubo_status_report_free(&in->obs);
    free(in->assign_json);
    free(in->log.buf);
    free(in);
}

static int instance_cb(void *arg, struct ctl_instance_row *row,
                       const struct nubo_status_report *obs)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_instance *in = calloc(1, sizeof(*in));
    if (in == NULL) {
        ctl_instance_row_free(row);
        return -1;
    }
    in->row = *row;
    if (obs) {
        in->obs = *obs;
        in->obs.message = obs->message ? strdup(obs->message) : NULL;
        in->has_obs = true;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", in->row.owner, in->row.name);
    if (ctl_map_put(&ctx->instances, in->row.uuid, in) < 0 ||
        ctl_map_put(&ctx->instance_names, key, in) < 0) {
        ctl_instance_destroy(in);
        return -1;
    }
    ctl_svc_link(ctx, in);
    struct ctl_node *node = ctl_map_get(&ctx->nodes, in->row.node_uuid);
    if (node)
        ctl_instance_attach(ctx, in, node);
    else
        log_warnx("instance %s: its node %s is unknown", in->row.uuid, in->row.node_uuid);
    return 0;
}

void ctl_logtail_push(struct ctl_logtail *lt, const void *data, size_t len)
{
    const unsigned char *d = data;
    if (len >= lt->cap) {
        d += len - lt->cap;
        lt->start += (int64_t)(lt->len + len - lt->cap);
        len = lt->cap;
        lt->len = 0;
    } else if (lt->len + len > lt->cap) {
        size_t drop = lt->len + len - lt->cap;
        memmove(lt->buf, lt->buf + drop, lt->len - drop);
        lt->len -= drop;
        lt->start += (int64_t)drop;
    }
    memcpy(lt->buf + lt->len, d, len);
    lt->len += len;
}

/* Console chunks arrive by instance and offset: append each to the tail (which keeps the
 * newest log_tail_bytes), starting over at a gap. */
static int logchunk_cb(void *arg, const char *uuid, int64_t offset, const void *data, size_t len)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_instance *in = ctl_map_get(&ctx->instances, uuid);
    if (in == NULL || len == 0)
        return 0;
    struct ctl_logtail *lt = &in->log;
    size_t cap = (size_t)ctx->cfg.log_tail_bytes;
    if (lt->buf == NULL) {
        lt->buf = malloc(cap);
        if (lt->buf == NULL)
            return -1;
        lt->cap = cap;
        lt->len = 0;
        lt->start = offset;
    }
    int64_t end = lt->start + (int64_t)lt->len;
    if (offset + (int64_t)len <= end)
        return 0;
    if (offset > end) { /* a gap */
        lt->len = 0;
        lt->start = offset;
    } else {
        data = (const unsigned char *)data + (end - offset);
        len -= (size_t)(end - offset);
    }
    ctl_logtail_push(lt, data, len);
    in->log_saved_end = lt->start + (int64_t)lt->len;
    return 0;
}

int ctl_state_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    ctx->version_seq = nubo_now_us(); /* versions never repeat across restarts */
    if (ctl_store_nodes_load(&ctx->store, node_cb, ctx, err) < 0 ||
        ctl_services_load(ctx, err) < 0 ||
        ctl_store_instances_load(&ctx->store, instance_cb, ctx, err) < 0 ||
        ctl_store_logs_load(&ctx->store, logchunk_cb, ctx, err) < 0)
        return nubo_error_wrap(err, "loading the state");
    log_info("loaded %zu node(s), %zu instance(s)", ctx->nodes.n, ctx->instances.n);
    return 0;
}

void ctl_state_free(struct ctl_ctx *ctx)
{
    if (ctx->store.db)
        ctl_logs_flush(ctx); /* the last tails before the store closes */
    ctl_map_foreach(&ctx->instances, e) ctl_instance_destroy(e->val);
    ctl_services_free(ctx);
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        while (n->watches) {
            struct ctl_parked *p = n->watches;
            ctl_park_unlink(&n->watches, p);
            evhttp_send_error(p->req, 503, "shutting down");
            ctl_parked_free(p);
        }
        event_free(n->flush_ev);
        free(n);
    }
    ctl_agent_free_jobs(ctx);
    while (ctx->resolving) { /* the resolver is stopped: nobody answers these any more */
        struct ctl_parked *p = ctx->resolving;
        ctl_park_unlink(&ctx->resolving, p);
        evhttp_send_error(p->req, 503, "shutting down");
        ctl_parked_free(p);
    }
    while (ctx->waits) {
        struct ctl_parked *p = ctx->waits;
        ctl_park_unlink(&ctx->waits, p);
        evhttp_send_error(p->req, 503, "shutting down");
        ctl_parked_free(p);
    }
    ctl_map_foreach(&ctx->users_by_name, e) free(e->val);
    ctl_map_clear(&ctx->instances);
    ctl_map_clear(&ctx->instance_names);
    ctl_map_clear(&ctx->nodes);
    ctl_map_clear(&ctx->nodes_by_name);
    ctl_map_clear(&ctx->node_tokens);
    ctl_map_clear(&ctx->users_by_name);
    ctl_map_clear(&ctx->tokens);
}

enum nubo_state ctl_instance_state(const struct ctl_instance *in)
{
    if (in->node && !in->node->ready)
        return NUBO_STATE_UNAVAILABLE;
    bool want_run = in->row.desired == NUBO_DESIRED_RUNNING;
    if (!in->has_obs || in->obs.start_seq < in->row.start_seq) {
        /* the node has not acted on the latest start yet */
        if (want_run)
            return NUBO_STATE_STARTING;
        if (!in->has_obs)
            return NUBO_STATE_STOPPED;
    }
    enum nubo_state s = in->obs.state;
    if (!want_run && (s == NUBO_STATE_STARTING || s == NUBO_STATE_RUNNING))
        return NUBO_STATE_STOPPING; /* asked to stop; the node has not reported it yet */
    return s;
}

void ctl_instance_to_api(struct ctl_ctx *ctx, const struct ctl_instance *in,
                         struct nubo_instance *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, in->row.uuid, sizeof(out->uuid));
    memcpy(out->name, in->row.name, sizeof(out->name));
    out->created_at_us = in->row.created_at_us;
    out->state = ctl_instance_state(in);
    memcpy(out->image, in->row.image, sizeof(out->image));
    out->memory_mb = in->row.memory_mb;
    out->vcpus = in->row.vcpus;
    /* borrowed: the caller encodes and drops them without freeing */
    out->args = in->row.args;
    out->n_args = in->row.n_args;
    out->env = in->row.env;
    out->n_env = in->row.n_env;
    if (in->node)
        ctl_node_ip_str(in->node, (int)in->row.ip_host, out->private_ip);
    out->restart_policy = in->row.restart_policy;
    out->features = in->row.features;
    if (in->node) {
        memcpy(out->node, in->node->row.name, sizeof(out->node));
    }
    memcpy(out->metro, in->row.metro, sizeof(out->metro));
    snprintf(out->private_fqdn, sizeof(out->private_fqdn), "%s.%s", in->row.name,
             ctx->cfg.cluster_domain);
    if (in->has_obs) {
        const struct nubo_status_report *o = &in->obs;
        out->boot_time_us = o->boot_time_us;
        out->net_time_us = o->net_time_us;
        out->start_count = o->start_count;
        out->restart_count = o->restart_count;
        out->started_at_us = o->started_at_us;
        out->stopped_at_us = o->stopped_at_us;
        out->stop_reason = o->stop_reason;
        out->has_exit_code = o->has_exit_code;
        out->exit_code = o->exit_code;
        out->has_stop_code = o->has_stop_code;
        out->stop_code = o->stop_code;
        out->restart_attempt = o->restart_attempt;
        out->restart_next_at_us = o->restart_next_at_us;
        out->message = o->message;
        if (o->started_at_us) {
            int64_t end = o->state == NUBO_STATE_RUNNING || o->state == NUBO_STATE_DRAINING ||
                                  o->stopped_at_us < o->started_at_us
                              ? nubo_now_us()
                              : o->stopped_at_us;
            out->uptime_ms = end > o->started_at_us ? (end - o->started_at_us) / 1000 : 0;
        }
    }
}

json_t *ctl_instance_json(struct ctl_ctx *ctx, const struct ctl_instance *in, bool details)
{
    struct nubo_instance api;
    ctl_instance_to_api(ctx, in, &api);
    json_t *j = nubo_instance_encode(&api, details); /* api borrows: nothing to free */
    if (j && in->svc)
        json_object_set_new(j, "service_group", ctl_svc_instance_ref(ctx, in->svc));
    return j;
}

struct ctl_instance *ctl_instance_find(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                       const char *uuid, const char *name)
{
    struct ctl_instance *in;
    if (uuid && uuid[0]) {
        in = ctl_map_get(&ctx->instances, uuid);
        /* another user's instance is reported exactly like a missing one */
        return in && strcmp(in->row.owner, u->name) == 0 ? in : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", u->name, name ? name : "");
    return ctl_map_get(&ctx->instance_names, key);
}

/* ---- waking parked requests ---- */

static void flush_watches_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_node *node = arg;
    /* the ctx is reachable through any parked watch */
    if (node->watches)
        ctl_agent_flush_watches(node->watches->ctx, node);
}

void ctl_node_bump(struct ctl_ctx *ctx, struct ctl_node *node)
{
    node->version = ++ctx->version_seq;
    if (node->watches == NULL || event_pending(node->flush_ev, EV_TIMEOUT, NULL))
        return;
    /* A change is answered at once, unless the node got a full set less than
     * watch_coalesce_ms ago: then the reply waits for the rest of that interval and carries
     * every change made meanwhile, so a burst of creates costs a few replies, not one per
     * instance (the agent parses the whole set each time). */
    int64_t gap_us =
        ctx->cfg.watch_coalesce_ms * 1000 - (nubo_mono_us() - node->last_flush_mono_us);
    if (gap_us <= 0) {
        event_active(node->flush_ev, EV_TIMEOUT, 0);
        return;
    }
    struct timeval tv = {gap_us / 1000000, gap_us % 1000000};
    if (evtimer_add(node->flush_ev, &tv) < 0)
        event_active(node->flush_ev, EV_TIMEOUT, 0);
}

bool ctl_wait_hopeless(const struct ctl_instance *in, enum nubo_state want)
{
    /* Waiting for running is hopeless once the node acted on the latest start and the
     * instance stopped with nothing scheduled to start it again (no restart pending, still
     * meant to run: a crash or a failed start, not a user's stop). */
    return want == NUBO_STATE_RUNNING && in->row.desired == NUBO_DESIRED_RUNNING &&
           in->has_obs && in->obs.start_seq >= in->row.start_seq && in->row.start_seq > 0 &&
           ctl_instance_state(in) == NUBO_STATE_STOPPED && in->obs.restart_next_at_us == 0;
}

json_t *ctl_wait_hopeless_item(struct ctl_ctx *ctx, const struct ctl_instance *in,
                               bool reply_items)
{
    if (reply_items) /* create/start with a wait: the object says it is stopped */
        return ctl_instance_json(ctx, in, true);
    const struct nubo_status_report *o = &in->obs;
    char why[160] = "";
    int64_t sr = o->stop_reason;
    snprintf(why, sizeof(why), "stop_reason %lld (%s%s%s%s%s)", (long long)sr,
             sr & NUBO_STOP_KERNEL ? "K" : "-", sr & NUBO_STOP_APP ? "A" : "-",
             sr & NUBO_STOP_PLATFORM ? "P" : "-", sr & NUBO_STOP_USER ? "U" : "-",
             sr & NUBO_STOP_FORCED ? "F" : "-");
    char code[48] = "";
    if (o->has_exit_code)
        snprintf(code, sizeof(code), ", exit code %lld", (long long)o->exit_code);
    char msg[600];
    snprintf(msg, sizeof(msg),
             "instance %s stopped instead of reaching running: %.300s%s%s%s; see its log",
             in->row.name, o->message ? o->message : "", o->message ? "; " : "", why, code);
    for (char *p = msg; *p; p++) /* one line, whatever the agent wrote */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_t *e = nubo_item_error(in->row.uuid, in->row.name, 409, msg);
    json_object_set_new(e, "state", json_string("stopped"));
    json_object_set_new(e, "stop_reason", json_integer(sr));
    return e;
}

void ctl_instance_changed(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    enum nubo_state st = ctl_instance_state(in);
    if (in->svc)
        ctl_ingress_bump(ctx, in->row.metro); /* a backend may have come or gone */
    for (struct ctl_parked *p = ctx->waits, *nx; p; p = nx) {
        nx = p->next;
        bool all = true, hit = false;
        for (size_t i = 0; i < p->n_items; i++) {
            struct ctl_wait_item *it = &p->items[i];
            if (!it->done && strcmp(it->uuid, in->row.uuid) == 0 && st == it->want) {
                it->done = true;
                it->result = ctl_instance_json(ctx, in, true);
                hit = true;
            } else if (!it->done && strcmp(it->uuid, in->row.uuid) == 0 &&
                       ctl_wait_hopeless(in, it->want)) {
                it->done = true;
                it->result = ctl_wait_hopeless_item(ctx, in, p->wait_reply_items);
                hit = true;
            }
            all = all && it->done;
        }
        if (hit && all)
            ctl_wait_fire(ctx, p, false);
    }
}

void ctl_instance_gone(struct ctl_ctx *ctx, const char *uuid)
{
    for (struct ctl_parked *p = ctx->waits, *nx; p; p = nx) {
        nx = p->next;
        bool all = true, hit = false;
        for (size_t i = 0; i < p->n_items; i++) {
            struct ctl_wait_item *it = &p->items[i];
            if (!it->done && strcmp(it->uuid, uuid) == 0) {
                it->done = true;
                char msg[128];
                snprintf(msg, sizeof(msg), "instance %s was deleted while waiting", uuid);
                it->result = nubo_item_error(it->uuid, it->name, 404, msg);
                hit = true;
            }
            all = all && it->done;
        }
        if (hit && all)
            ctl_wait_fire(ctx, p, false);
    }
}
