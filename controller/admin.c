/* Operators' endpoints: users and tokens (admin), nodes, metros, and Prometheus metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

const double *ctl_hist_bounds(void);

static json_t *user_json(const struct ctl_user_row *u, const char *token)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:o}", "status", "success", "uuid", u->uuid, "name",
                          u->name, "admin", u->admin, "created_at", pj_time_new(u->created_at_us));
    if (token)
        json_object_set_new(o, "token", json_string(token));
    return o;
}

static struct ctl_user_row *find_user(struct ctl_ctx *ctx, const char *ref)
{
    struct ctl_user_row *u = ctl_map_get(&ctx->users_by_name, ref);
    if (u)
        return u;
    ctl_map_foreach(&ctx->users_by_name, e)
    {
        struct ctl_user_row *x = e->val;
        if (strcmp(x->uuid, ref) == 0)
            return x;
    }
    return NULL;
}

static int new_token(struct ctl_ctx *ctx, struct ctl_user_row *u, bool insert_user,
                     char token[NUBO_AGENT_TOKEN_MAX], struct nubo_err *err)
{
    char hash[NUBO_SHA256_HEX_LEN + 1];
    ctl_token_new(u->name, token, hash);
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    if ((insert_user && ctl_store_user_insert(&ctx->store, u, err) < 0) ||
        ctl_store_token_insert(&ctx->store, hash, u->uuid, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return -1;
    }
    if ((insert_user && ctl_map_put(&ctx->users_by_name, u->name, u) < 0) ||
        ctl_map_put(&ctx->tokens, hash, u) < 0)
        return nubo_error_http(err, 500, "out of memory");
    return 0;
}

/* POST /v1/users {"name"} (admin) -> the user and a token
 * GET /v1/users (admin: all; others: themselves), GET /v1/users/me
 * POST /v1/users/{name|uuid}/tokens (admin, or the user itself) -> a new token */
void ctl_handle_users(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    ri->route = CTL_R_USERS;
    struct nubo_err err = {0};
    const struct ctl_user_row *me = ctl_map_get(&ctx->users_by_name, ri->user.name);
    bool admin = me && me->admin;
    if (rest[0] == '\0' && ri->method == EVHTTP_REQ_GET) {
        json_t *out = json_array();
        ctl_map_foreach(&ctx->users_by_name, e)
        {
            struct ctl_user_row *u = e->val;
            if (admin || strcmp(u->name, ri->user.name) == 0)
                json_array_append_new(out, user_json(u, NULL));
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, "users", out, 0));
        return;
    }
    if (strcmp(rest, "/me") == 0 && ri->method == EVHTTP_REQ_GET) {
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                        json_pack("[o]", user_json(&ri->user, NULL)));
        return;
    }
    if (rest[0] == '\0' && ri->method == EVHTTP_REQ_POST) {
        if (!admin) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 403,
                            "only an admin creates users (use the bootstrap admin token)");
            return;
        }
        cleanup_json json_t *j = NULL;
        static const char *const allowed[] = {"name", "admin", NULL};
        char name[NUBO_API_USER_MAX + 1] = "";
        bool is_admin = false;
        if (ri->body == NULL ||
            pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &j, &err) < 0 ||
            (!json_is_object(j) &&
             nubo_error_http(&err, 400, "users: body must be an object") < 0) ||
            pj_only_keys(j, "", allowed, &err) < 0 ||
            pj_str(j, "", "name", true, name, sizeof(name), &err) < 0 ||
            pj_bool(j, "", "admin", false, &is_admin, &err) < 0) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                            ri->body ? err.msg : "users: send {\"name\": \"acme\"}");
            return;
        }
        if (!nubo_name_valid(name)) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                            "name: '%s' must be 1..63 characters of [a-z0-9-]", name);
            return;
        }
        if (ctl_map_get(&ctx->users_by_name, name)) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 409,
                            "user '%s' already exists; POST /v1/users/%s/tokens for a new token",
                            name, name);
            return;
        }
        struct ctl_user_row *u = calloc(1, sizeof(*u));
        if (u == NULL) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
            return;
        }
        nubo_uuid_new(u->uuid);
        snprintf(u->name, sizeof(u->name), "%s", name);
        u->admin = is_admin;
        u->created_at_us = nubo_now_us();
        char token[NUBO_AGENT_TOKEN_MAX];
        if (new_token(ctx, u, true, token, &err) < 0) {
            free(u);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
            return;
        }
        log_info("user %s created", u->name);
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                        json_pack("[o]", user_json(u, token)));
        return;
    }
    /* /{ref}/tokens */
    char ref[80];
    const char *slash = rest[0] == '/' ? strchr(rest + 1, '/') : NULL;
    if (slash && strcmp(slash, "/tokens") == 0 && ri->method == EVHTTP_REQ_POST &&
        (size_t)(slash - rest - 1) < sizeof(ref)) {
        snprintf(ref, sizeof(ref), "%.*s", (int)(slash - rest - 1), rest + 1);
        struct ctl_user_row *u = find_user(ctx, ref);
        if (u == NULL || (!admin && strcmp(u->name, ri->user.name) != 0)) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404, "user '%s' not found", ref);
            return;
        }
        char token[NUBO_AGENT_TOKEN_MAX];
        if (new_token(ctx, u, false, token, &err) < 0) {
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
            return;
        }
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                        json_pack("[o]", user_json(u, token)));
        return;
    }
    ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404,
                    "no endpoint %s %s (POST|GET /v1/users, GET /v1/users/me, POST "
                    "/v1/users/{name}/tokens)",
                    ri->method == EVHTTP_REQ_GET ? "GET" : "for this method on", ri->path);
}

static json_t *node_json(struct ctl_ctx *ctx, const struct ctl_node *n)
{
    char subnet[NUBO_CIDR_STR_MAX], gw[NUBO_IP_STR_MAX];
    ctl_node_subnet(n, subnet);
    ctl_node_gateway(n, gw);
    int64_t seen_ms = (nubo_mono_us() - n->last_seen_mono_us) / 1000;
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s, "
                     "s:s, s:s, s:o, s:o, s:I, s:s}",
                     "status", "success", "uuid", n->row.uuid, "name", n->row.name, "metro",
                     n->row.metro, "state",
                     !n->ready ? "unavailable" : n->row.maintenance ? "maintenance" : "ready", "memory_mb",
                     (json_int_t)n->row.memory_mb, "vcpus", (json_int_t)n->row.vcpus,
                     "free_memory_mb", (json_int_t)(n->row.memory_mb - n->used_memory_mb),
                     "allocated_memory_mb", (json_int_t)n->used_memory_mb, "allocated_vcpus",
                     (json_int_t)n->used_vcpus, "instances", (json_int_t)n->n_instances, "accel",
                     n->row.accel, "subnet", subnet, "gateway", gw, "agent_version",
                     n->row.agent_version, "qemu_version", n->row.qemu_version, "created_at",
                     pj_time_new(n->row.created_at_us), "registered_at",
                     pj_time_new(n->row.registered_at_us), "last_seen_ms", (json_int_t)seen_ms,
                     "guest_cpu", n->guest_cpu);
}

static int cmp_node(const void *a, const void *b)
{
    const struct ctl_node *x = *(struct ctl_node *const *)a, *y = *(struct ctl_node *const *)b;
    return strcmp(x->row.name, y->row.name);
}

void ctl_handle_nodes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    ri->route = CTL_R_NODES;
    if (rest[0] != '\0') {
        ctl_node_admin(ctx, ri, rest);
        return;
    }
    if (ri->method != EVHTTP_REQ_GET) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "nodes: use GET");
        return;
    }
    struct ctl_node **v = malloc((ctx->nodes.n + 1) * sizeof(*v));
    size_t n = 0;
    ctl_map_foreach(&ctx->nodes, e) v[n++] = e->val;
    qsort(v, n, sizeof(*v), cmp_node);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, node_json(ctx, v[i]));
    free(v);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   nubo_envelope_new("success", NULL, "nodes", out, 0));
}

void ctl_handle_metros(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    ri->route = CTL_R_METROS;
    if (ri->method != EVHTTP_REQ_GET) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "metros: use GET");
        return;
    }
    json_t *by = json_object();
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        json_t *m = json_object_get(by, n->row.metro);
        if (m == NULL) {
            /* a stable uuid per metro name */
            char hex[NUBO_SHA256_HEX_LEN + 1], uuid[40];
            nubo_sha256_hex(n->row.metro, strlen(n->row.metro), hex);
            snprintf(uuid, sizeof(uuid), "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8, hex + 12,
                     hex + 15, hex + 18);
            m = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "status", "success", "uuid",
                          uuid, "name", n->row.metro, "state", "offline", "nodes", (json_int_t)0,
                          "ready_nodes", (json_int_t)0, "memory_mb", (json_int_t)0,
                          "free_memory_mb", (json_int_t)0);
            json_object_set_new(by, n->row.metro, m);
        }
        json_object_set_new(m, "nodes",
                            json_integer(json_integer_value(json_object_get(m, "nodes")) + 1));
        if (n->ready) {
            json_object_set_new(m, "state", json_string("online"));
            json_object_set_new(
                m, "ready_nodes",
                json_integer(json_integer_value(json_object_get(m, "ready_nodes")) + 1));
            json_object_set_new(m, "memory_mb",
                                json_integer(json_integer_value(json_object_get(m, "memory_mb")) +
                                             n->row.memory_mb));
            json_object_set_new(
                m, "free_memory_mb",
                json_integer(json_integer_value(json_object_get(m, "free_memory_mb")) +
                             n->row.memory_mb - n->used_memory_mb));
        }
    }
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(by, k, v) json_array_append(out, v);
    json_decref(by);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   nubo_envelope_new("success", NULL, "metros", out, 0));
}

static void hist_text(struct evbuffer *b, const char *name, const char *help,
                      const struct ctl_hist *h)
{
    const double *bounds = ctl_hist_bounds();
    evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < CTL_HIST_BUCKETS; i++) {
        cum += h->counts[i];
        evbuffer_add_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                            (unsigned long long)cum);
    }
    cum += h->counts[CTL_HIST_BUCKETS];
    evbuffer_add_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.6f\n%s_count %llu\n", name,
                        (unsigned long long)cum, name, h->sum_s, name, (unsigned long long)h->n);
}

void ctl_handle_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    if (ri->method != EVHTTP_REQ_GET) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "metrics: use GET");
        return;
    }
    struct evbuffer *b = evbuffer_new();
    uint64_t by_state[NUBO_STATE__COUNT] = {0};
    ctl_map_foreach(&ctx->instances, e) by_state[ctl_instance_state(e->val)]++;
    evbuffer_add_printf(b, "# HELP nubo_instances Instances by state.\n"
                           "# TYPE nubo_instances gauge\n");
    for (int s = 0; s < NUBO_STATE__COUNT; s++)
        evbuffer_add_printf(b, "nubo_instances{state=\"%s\"} %llu\n", nubo_state_name(s),
                            (unsigned long long)by_state[s]);
    uint64_t ready = 0, unavail = 0;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (n->ready)
            ready++;
        else
            unavail++;
    }
    evbuffer_add_printf(b,
                        "# HELP nubo_nodes Nodes by state.\n# TYPE nubo_nodes gauge\n"
                        "nubo_nodes{state=\"ready\"} %llu\nnubo_nodes{state=\"unavailable\"} "
                        "%llu\n",
                        (unsigned long long)ready, (unsigned long long)unavail);
    evbuffer_add_printf(b, "# HELP nubo_api_requests_total API requests by route and status "
                           "class.\n# TYPE nubo_api_requests_total counter\n");
    for (int r = 0; r < CTL_R__COUNT; r++)
        for (int c = 1; c <= 5; c++)
            if (ctx->metrics.requests[r][c])
                evbuffer_add_printf(b, "nubo_api_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                                    ctl_route_names[r], c,
                                    (unsigned long long)ctx->metrics.requests[r][c]);
    hist_text(b, "nubo_api_request_duration_seconds",
              "API request latency (long polls and waits excluded).", &ctx->metrics.latency);
    hist_text(b, "nubo_instance_boot_time_seconds",
              "Instance boot times (boot_time_us) as reported by the agents.",
              &ctx->metrics.boot_time);
    evbuffer_add_printf(b,
                        "# HELP nubo_uptime_seconds Controller uptime.\n"
                        "# TYPE nubo_uptime_seconds gauge\nnubo_uptime_seconds %.3f\n",
                        (double)(nubo_mono_us() - ctx->started_mono_us) / 1e6);
    ctx->metrics.requests[CTL_R_METRICS][2]++;
    evhttp_add_header(evhttp_request_get_output_headers(ri->req), "Content-Type",
                      "text/plain; version=0.0.4");
    evhttp_send_reply(ri->req, 200, "OK", b);
    evbuffer_free(b);
}

/* ---- node maintenance: PUT /v1/nodes/{name}/drain and /ready (admin) ---- */

static int free_ip(const uint8_t used[32])
{
    for (int h = 2; h <= 254; h++)
        if (!(used[h / 8] & (1u << (h % 8))))
            return h;
    return -1;
}

/* Re-place every instance of node on the other ready nodes of its metro (all or nothing),
 * in one transaction with the node's maintenance flag. */
static int node_drain(struct ctl_ctx *ctx, struct ctl_node *node, json_t *moved,
                      struct nubo_err *err)
{
    size_t ni = node->n_instances, nn = 0;
    struct ctl_node **nodes = calloc(ctx->nodes.n + 1, sizeof(*nodes));
    struct ctl_sched_node *sn = calloc(ctx->nodes.n + 1, sizeof(*sn));
    uint8_t(*ipmap)[32] = calloc(ctx->nodes.n + 1, sizeof(*ipmap));
    struct ctl_instance **inst = calloc(ni + 1, sizeof(*inst));
    size_t *target = calloc(ni + 1, sizeof(*target));
    int *host = calloc(ni + 1, sizeof(*host));
    int rc = -1;
    if (!nodes || !sn || !ipmap || !inst || !target || !host) {
        nubo_error_http(err, 500, "out of memory");
        goto out;
    }
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (n == node)
            continue;
        nodes[nn] = n;
        memcpy(ipmap[nn], n->ip_used, 32);
        sn[nn] = (struct ctl_sched_node){
            .uuid = n->row.uuid,
            .metro = n->row.metro,
            .ready = n->ready && !n->row.maintenance,
            .free_memory_mb = n->row.memory_mb - n->used_memory_mb,
            .free_vcpus = n->row.vcpus * ctx->cfg.vcpu_overcommit - n->used_vcpus,
            .free_ips = CTL_HOSTS_PER_NODE - (int64_t)n->n_instances,
        };
        nn++;
    }
    size_t k = 0;
    for (struct ctl_instance *in = node->inst_head; in && k < ni; in = in->node_next)
        inst[k++] = in;
    ni = k;
    /* plan: one placement at a time, each taking its share of the target */
    for (size_t i = 0; i < ni; i++) {
        struct ctl_sched_req sr = {node->row.metro, inst[i]->row.memory_mb, inst[i]->row.vcpus, 1};
        if (ctl_schedule(sn, nn, &sr, &target[i], err) < 0) {
            nubo_error_http(err, 409,
                            "cannot drain node %s: no other ready node of metro %s has room for "
                            "instance %s (%lld MiB, %lld vCPUs); nothing was moved",
                            node->row.name, node->row.metro, inst[i]->row.name,
                            (long long)inst[i]->row.memory_mb, (long long)inst[i]->row.vcpus);
            goto out;
        }
        size_t t = target[i];
        host[i] = free_ip(ipmap[t]);
        if (host[i] < 0) {
            nubo_error_http(err, 409, "cannot drain node %s: node %s has no free address",
                            node->row.name, nodes[t]->row.name);
            goto out;
        }
        ipmap[t][host[i] / 8] |= (uint8_t)(1u << (host[i] % 8));
        sn[t].free_memory_mb -= inst[i]->row.memory_mb;
        sn[t].free_vcpus -= inst[i]->row.vcpus;
        sn[t].free_ips--;
    }
    struct ctl_node_row nrow = node->row;
    nrow.maintenance = true;
    if (ctl_store_begin(&ctx->store, err) < 0)
        goto out;
    if (ctl_store_node_put(&ctx->store, &nrow, err) < 0)
        goto rollback;
    for (size_t i = 0; i < ni; i++) {
        struct ctl_instance_row r = inst[i]->row; /* shallow: only scalars change */
        memcpy(r.node_uuid, nodes[target[i]]->row.uuid, sizeof(r.node_uuid));
        r.ip_host = host[i];
        if (ctl_store_instance_put(&ctx->store, &r, err) < 0 ||
            ctl_store_obs_delete(&ctx->store, r.uuid, err) < 0)
            goto rollback;
    }
    if (ctl_store_commit(&ctx->store, err) < 0)
        goto out;
    /* committed: the working set follows */
    node->row.maintenance = true;
    for (size_t i = 0; i < ni; i++) {
        struct ctl_instance *in = inst[i];
        struct ctl_node *to = nodes[target[i]];
        ctl_instance_detach(ctx, in);
        memcpy(in->row.node_uuid, to->row.uuid, sizeof(in->row.node_uuid));
        in->row.ip_host = host[i];
        /* what the old node reported says nothing about the new placement */
        if (in->has_obs)
            nubo_status_report_free(&in->obs);
        in->has_obs = false;
        free(in->assign_json);
        in->assign_json = NULL;
        ctl_instance_attach(ctx, in, to);
        ctl_node_bump(ctx, to);
        char ip[NUBO_IP_STR_MAX];
        ctl_node_ip_str(to, host[i], ip);
        json_array_append_new(moved, json_pack("{s:s, s:s, s:s, s:s}", "uuid", in->row.uuid,
                                               "name", in->row.name, "node", to->row.name,
                                               "private_ip", ip));
        log_info("drain %s: instance %s moved to %s (%s)", node->row.name, in->row.name,
                 to->row.name, ip);
    }
    ctl_node_bump(ctx, node); /* its desired set is now empty */
    for (size_t i = 0; i < ni; i++)
        ctl_instance_changed(ctx, inst[i]);
    rc = 0;
    goto out;
rollback:
    ctl_store_rollback(&ctx->store);
out:
    free(nodes);
    free(sn);
    free(ipmap);
    free(inst);
    free(target);
    free(host);
    return rc;
}

void ctl_node_admin(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    ri->route = CTL_R_NODE_ADMIN;
    char ref[NUBO_NAME_MAX + 1], op[16];
    const char *s = rest + 1, *slash = strchr(s, '/');
    if (rest[0] != '/' || slash == NULL || (size_t)(slash - s) > NUBO_NAME_MAX ||
        strlen(slash + 1) >= sizeof(op)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404,
                        "no endpoint %.200s (PUT /v1/nodes/{name}/drain or /ready)", ri->path);
        return;
    }
    memcpy(ref, s, (size_t)(slash - s));
    ref[slash - s] = '\0';
    snprintf(op, sizeof(op), "%s", slash + 1);
    bool drain = strcmp(op, "drain") == 0;
    if (!drain && strcmp(op, "ready") != 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404,
                        "no endpoint %.200s (PUT /v1/nodes/{name}/drain or /ready)", ri->path);
        return;
    }
    if (ri->method != EVHTTP_REQ_PUT && ri->method != EVHTTP_REQ_POST) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "%s: use PUT", ri->path);
        return;
    }
    if (!ri->user.admin) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 403,
                        "node %s: only an admin can %s nodes", ref,
                        drain ? "drain" : "return to service");
        return;
    }
    struct ctl_node *node = ctl_map_get(&ctx->nodes_by_name, ref);
    if (node == NULL)
        node = ctl_map_get(&ctx->nodes, ref);
    if (node == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404,
                        "node %s not found; see GET /v1/nodes", ref);
        return;
    }
    struct nubo_err err = {0};
    json_t *moved = json_array();
    if (drain) {
        if (node_drain(ctx, node, moved, &err) < 0) {
            json_decref(moved);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 500, "%s",
                            err.msg);
            return;
        }
    } else if (node->row.maintenance) {
        struct ctl_node_row nrow = node->row;
        nrow.maintenance = false;
        if (ctl_store_begin(&ctx->store, &err) < 0 ||
            ctl_store_node_put(&ctx->store, &nrow, &err) < 0 ||
            ctl_store_commit(&ctx->store, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            json_decref(moved);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
            return;
        }
        node->row.maintenance = false;
        log_info("node %s is back in service", node->row.name);
    }
    json_t *item = node_json(ctx, node);
    json_object_set_new(item, "moved_instances", moved);
    json_t *out = json_array();
    json_array_append_new(out, item);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "nodes", out);
}
