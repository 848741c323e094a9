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
#include "util.h"

static json_t *user_json(const struct ctl_user_row *u, const char *token, const struct ctl_token *t)
{
    struct nubo_user api = {.admin = u->admin, .created_at_us = u->created_at_us};
    memcpy(api.uuid, u->uuid, sizeof(api.uuid));
    snprintf(api.name, sizeof(api.name), "%s", u->name);
    if (token)
        snprintf(api.token, sizeof(api.token), "%s", token);
    if (t) {
        memcpy(api.token_id, t->row.hash, NUBO_TOKEN_ID_LEN);
        api.expires_at_us = t->row.expires_at_us;
    }
    return nubo_user_encode(&api);
}

/* The items of a reply that answers about one user. */
static json_t *one_user(json_t *user)
{
    json_t *a = json_array();
    json_array_append_new(a, user);
    return a;
}

static int create_user(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    cleanup_json json_t *j = NULL;
    static const char *const allowed[] = {"name", "admin", NULL};
    char name[NUBO_API_USER_MAX + 1] = "";
    bool is_admin = false;
    if (ri->body == NULL)
        return nubo_error_http(err, 400, "users: send {\"name\": \"acme\"}");
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &j, err) < 0 ||
        (!json_is_object(j) && nubo_error_http(err, 400, "users: body must be an object") < 0) ||
        pj_only_keys(j, "", allowed, err) < 0 ||
        pj_str(j, "", "name", true, name, sizeof(name), err) < 0 ||
        pj_bool(j, "", "admin", false, &is_admin, err) < 0)
        return ctl_err_status(err, 400);
    if (!nubo_name_valid(name) || strcmp(name, "me") == 0)
        return nubo_error_http(
            err, 400, "name: '%s' must be 1..63 characters of [a-z0-9-] (and not 'me')", name);
    if (ctl_map_get(&ctx->users_by_name, name))
        return nubo_error_http(err, 409,
                               "user '%s' already exists; POST /v1/users/%s/tokens for a new "
                               "token",
                               name, name);
    struct ctl_user_row *u = xcalloc(1, sizeof(*u));
    nubo_uuid_new(u->uuid);
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->admin = is_admin;
    u->created_at_us = nubo_now_us();
    char token[NUBO_AGENT_TOKEN_MAX];
    const struct ctl_token *t;
    if (ctl_token_issue(ctx, u, true, NULL, token, &t, err) < 0) {
        free(u);
        return ctl_err_status(err, 500);
    }
    log_info("user %s created", u->name);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                    one_user(user_json(u, token, t)));
    return 0;
}

/* /{ref}/tokens[/{id}]: list (GET), issue (POST), revoke (DELETE). */
static int user_tokens(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_user_row *u,
                       const char *id, struct nubo_err *err)
{
    const struct ctl_token *mine = NULL;
    const struct ctl_user_row *who;
    ctl_auth_check(ctx, ctl_bearer(ri->req), false, &who, &mine, err);
    nubo_err_clear(err);
    if (id == NULL && ri->method == EVHTTP_REQ_GET) {
        json_t *out = json_array();
        ctl_map_foreach(&ctx->tokens, e) {
            const struct ctl_token *t = e->val;
            if (t->user != u)
                continue;
            struct nubo_token api;
            ctl_token_to_api(t, t == mine, &api);
            json_array_append_new(out, nubo_token_encode(&api));
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, "tokens", out, 0));
        return 0;
    }
    if (id == NULL && ri->method == EVHTTP_REQ_POST) {
        cleanup_json json_t *j = NULL;
        struct nubo_token_req req;
        if ((ri->body &&
             pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &j, err) < 0) ||
            nubo_token_req_decode(j, nubo_now_us(), &req, err) < 0)
            return ctl_err_status(err, 400);
        if (req.scope[0] && !u->admin)
            return nubo_error_http(err, 403,
                                   "tokens: a metrics token belongs to an admin user; %s is not "
                                   "one",
                                   u->name);
        char token[NUBO_AGENT_TOKEN_MAX];
        const struct ctl_token *t;
        if (ctl_token_issue(ctx, u, false, &req, token, &t, err) < 0)
            return ctl_err_status(err, 500);
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                        one_user(user_json(u, token, t)));
        return 0;
    }
    if (id && ri->method == EVHTTP_REQ_DELETE) {
        struct ctl_token *found = NULL;
        ctl_map_foreach(&ctx->tokens, e) {
            struct ctl_token *t = e->val;
            if (t->user == u && strlen(id) == NUBO_TOKEN_ID_LEN &&
                strncmp(t->row.hash, id, NUBO_TOKEN_ID_LEN) == 0)
                found = t;
        }
        if (found == NULL)
            return nubo_error_http(err, 404,
                                   "token %.32s of user %s not found; nubo tokens list shows the "
                                   "ids",
                                   id, u->name);
        struct nubo_token api;
        ctl_token_to_api(found, found == mine, &api);
        if (ctl_token_revoke(ctx, found, err) < 0)
            return -1;
        json_t *out = json_array();
        json_array_append_new(out, nubo_token_encode(&api));
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "tokens", out);
        return 0;
    }
    return nubo_error_http(err, 405,
                           "tokens: GET or POST /v1/users/{name}/tokens, DELETE "
                           "/v1/users/{name}/tokens/{id}");
}

static int delete_user(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_user_row *u,
                       struct nubo_err *err)
{
    bool force = false;
    const char *f = evhttp_find_header(ri->query, "force");
    if (f && ctl_query_bool("force", f, &force, err) < 0)
        return -1;
    if (strcmp(u->name, ri->user.name) == 0)
        return nubo_error_http(
            err, 409, "user %s: you cannot delete yourself; use another admin's token", u->name);
    char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_API_USER_MAX + 1];
    memcpy(uuid, u->uuid, sizeof(uuid));
    memcpy(name, u->name, sizeof(name));
    if (ctl_user_delete(ctx, u, force, err) < 0)
        return ctl_err_status(err, 500);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                    one_user(ctl_item_ok(uuid, name)));
    return 0;
}

/* POST /v1/users {"name"} (admin) -> the user and a token
 * GET /v1/users (admin: all; others: themselves), GET /v1/users/me
 * DELETE /v1/users/{name|uuid}[?force=true] (admin)
 * GET|POST /v1/users/{name|uuid|me}/tokens, DELETE …/tokens/{id} (admin, or the user itself) */
int ctl_handle_users(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err)
{
    ri->route = CTL_R_USERS;
    const struct ctl_user_row *me = ctl_map_get(&ctx->users_by_name, ri->user.name);
    bool admin = me && me->admin;
    if (rest[0] == '\0' && ri->method == EVHTTP_REQ_GET) {
        json_t *out = json_array();
        ctl_map_foreach(&ctx->users_by_name, e)
        {
            struct ctl_user_row *u = e->val;
            if (admin || strcmp(u->name, ri->user.name) == 0)
                json_array_append_new(out, user_json(u, NULL, NULL));
        }
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, "users", out, 0));
        return 0;
    }
    if (strcmp(rest, "/me") == 0 && ri->method == EVHTTP_REQ_GET) {
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "users",
                        one_user(user_json(&ri->user, NULL, NULL)));
        return 0;
    }
    if (rest[0] == '\0' && ri->method == EVHTTP_REQ_POST) {
        if (!admin)
            return nubo_error_http(err, 403,
                                   "only an admin creates users (use the bootstrap admin token)");
        return create_user(ctx, ri, err);
    }
    /* /{ref}[/tokens[/{id}]] */
    char ref[80], id[40];
    const char *s = rest[0] == '/' ? rest + 1 : NULL;
    size_t rl = s ? strcspn(s, "/") : 0;
    const char *tail = s ? s + rl : "";
    bool tokens = strncmp(tail, "/tokens", 7) == 0 && (tail[7] == '\0' || tail[7] == '/');
    bool with_id = tokens && tail[7] == '/' && strlen(tail + 8) < sizeof(id) && tail[8];
    if (s == NULL || rl == 0 || rl >= sizeof(ref) || (tail[0] && !tokens) ||
        (tokens && tail[7] == '/' && !with_id))
        return nubo_error_http(err, 404,
                               "no endpoint %.200s (users: GET|POST /v1/users, GET /v1/users/me, "
                               "DELETE /v1/users/{name}, GET|POST /v1/users/{name}/tokens, "
                               "DELETE /v1/users/{name}/tokens/{id})",
                               ri->path);
    snprintf(ref, sizeof(ref), "%.*s", (int)rl, s);
    if (with_id)
        snprintf(id, sizeof(id), "%s", tail + 8);
    struct ctl_user_row *u =
        strcmp(ref, "me") == 0 ? (struct ctl_user_row *)me : ctl_user_find(ctx, ref);
    if (u == NULL || (!admin && strcmp(u->name, ri->user.name) != 0))
        return nubo_error_http(err, 404, "user '%s' not found", ref);
    if (tokens)
        return user_tokens(ctx, ri, u, with_id ? id : NULL, err);
    if (ri->method != EVHTTP_REQ_DELETE)
        return nubo_error_http(err, 405, "users/%s: use DELETE (or GET /v1/users)", ref);
    if (!admin)
        return nubo_error_http(err, 403, "only an admin deletes users");
    return delete_user(ctx, ri, u, err);
}

/* The API view of a node; a drain reply also carries what it moved (has_moved). */
static void node_api(const struct ctl_node *n, struct nubo_node *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, n->row.uuid, sizeof(out->uuid));
    snprintf(out->name, sizeof(out->name), "%s", n->row.name);
    snprintf(out->metro, sizeof(out->metro), "%s", n->row.metro);
    snprintf(out->state, sizeof(out->state), "%s",
             !n->ready            ? "unavailable"
             : n->row.maintenance ? "maintenance"
                                  : "ready");
    out->memory_mb = n->row.memory_mb;
    out->vcpus = n->row.vcpus;
    int64_t used_mb, used_vcpus; /* running instances only: stopped ones hold nothing */
    ctl_node_used(n, &used_mb, &used_vcpus);
    out->free_memory_mb = n->row.memory_mb - used_mb;
    out->allocated_memory_mb = used_mb;
    out->allocated_vcpus = used_vcpus;
    out->instances = (int64_t)n->n_instances;
    snprintf(out->accel, sizeof(out->accel), "%s", n->row.accel);
    ctl_node_subnet(n, out->subnet);
    ctl_node_gateway(n, out->gateway);
    snprintf(out->agent_version, sizeof(out->agent_version), "%s", n->row.agent_version);
    snprintf(out->qemu_version, sizeof(out->qemu_version), "%s", n->row.qemu_version);
    out->created_at_us = n->row.created_at_us;
    out->registered_at_us = n->row.registered_at_us;
    out->last_seen_ms = (nubo_mono_us() - n->last_seen_mono_us) / 1000;
    memcpy(out->guest_cpu, n->guest_cpu, sizeof(out->guest_cpu));
}

static int cmp_node(const void *a, const void *b)
{
    const struct ctl_node *x = *(struct ctl_node *const *)a, *y = *(struct ctl_node *const *)b;
    return strcmp(x->row.name, y->row.name);
}

static int node_admin(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err);

int ctl_handle_nodes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err)
{
    ri->route = CTL_R_NODES;
    if (rest[0] != '\0')
        return node_admin(ctx, ri, rest, err);
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "nodes: use GET");
    struct ctl_node **v = xcalloc(ctx->nodes.n + 1, sizeof(*v));
    size_t n = 0;
    ctl_map_foreach(&ctx->nodes, e) v[n++] = e->val;
    qsort(v, n, sizeof(*v), cmp_node);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        struct nubo_node api;
        node_api(v[i], &api);
        json_array_append_new(out, nubo_node_encode(&api));
    }
    free(v);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   nubo_envelope_new("success", NULL, "nodes", out, 0));
    return 0;
}

int ctl_handle_metros(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    ri->route = CTL_R_METROS;
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "metros: use GET");
    /* in the order each metro is first met; a handful per cluster, so a linear look-up */
    struct nubo_metro *by = xcalloc(ctx->nodes.n + 1, sizeof(*by));
    size_t nm = 0;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        struct nubo_metro *m = NULL;
        for (size_t i = 0; i < nm && m == NULL; i++)
            if (strcmp(by[i].name, n->row.metro) == 0)
                m = &by[i];
        if (m == NULL) {
            m = &by[nm++];
            /* a stable uuid per metro name */
            char hex[NUBO_SHA256_HEX_LEN + 1];
            nubo_sha256_hex(n->row.metro, strlen(n->row.metro), hex);
            snprintf(m->uuid, sizeof(m->uuid), "%.8s-%.4s-4%.3s-8%.3s-%.12s", hex, hex + 8,
                     hex + 12, hex + 15, hex + 18);
            snprintf(m->name, sizeof(m->name), "%s", n->row.metro);
            snprintf(m->state, sizeof(m->state), "offline");
        }
        m->nodes++;
        if (n->ready) {
            snprintf(m->state, sizeof(m->state), "online");
            m->ready_nodes++;
            m->memory_mb += n->row.memory_mb;
            int64_t used_mb, used_vcpus;
            ctl_node_used(n, &used_mb, &used_vcpus);
            m->free_memory_mb += n->row.memory_mb - used_mb;
        }
    }
    json_t *out = json_array();
    for (size_t i = 0; i < nm; i++)
        json_array_append_new(out, nubo_metro_encode(&by[i]));
    free(by);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                   nubo_envelope_new("success", NULL, "metros", out, 0));
    return 0;
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

/* Per metro: instances by state, and what its ingress reports (handed out so far, open now). */
static void metrics_by_metro(struct ctl_ctx *ctx, struct evbuffer *b,
                             const struct ctl_metro_states *m, size_t nm)
{
    cleanup_free struct ctl_ingress_sums *ing = xcalloc(nm + 1, sizeof(*ing));
    ctl_ingress_gauge_sums(ctx, m, nm, ing);
    evbuffer_add_printf(b, "# HELP nubo_metro_instances Instances by metro and state.\n"
                           "# TYPE nubo_metro_instances gauge\n");
    for (size_t i = 0; i < nm; i++)
        for (int st = 0; st < NUBO_STATE__COUNT; st++)
            evbuffer_add_printf(b, "nubo_metro_instances{metro=\"%s\",state=\"%s\"} %llu\n",
                                m[i].metro, nubo_state_name(st),
                                (unsigned long long)m[i].by_state[st]);
    static const char *const gauges[][2] = {
        {"nubo_ingress_connections", "Inbound TCP (non-HTTP) connections open to instances."},
        {"nubo_ingress_requests_in_flight", "HTTP requests in flight to instances."},
        {"nubo_ingress_queued", "Connections and requests queued for instances."},
    };
    for (int g = 0; g < 3; g++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g][0], gauges[g][1],
                            gauges[g][0]);
        for (size_t i = 0; i < nm; i++)
            evbuffer_add_printf(b, "%s{metro=\"%s\"} %lld\n", gauges[g][0], m[i].metro,
                                (long long)(g == 0   ? ing[i].nconns
                                            : g == 1 ? ing[i].nreqs
                                                     : ing[i].nqueued));
    }
    evbuffer_add_printf(b, "# HELP nubo_ingress_sessions_total Inbound connections and HTTP "
                           "requests the metro's ingress handed to instances.\n"
                           "# TYPE nubo_ingress_sessions_total counter\n");
    for (size_t i = 0; i < ctx->metrics.n_metro; i++)
        evbuffer_add_printf(b, "nubo_ingress_sessions_total{metro=\"%s\"} %llu\n",
                            ctx->metrics.metro[i].metro,
                            (unsigned long long)ctx->metrics.metro[i].ingress_sessions);
}

/* Per node: what it offers and what placement gave away. Six series of one line per node:
 * the values are read in one pass over the nodes, the lines written without printf
 * (ctl_mtext). */
enum { NODE_SERIES = 6 };
struct node_vals {
    const struct ctl_node *n;
    int64_t v[NODE_SERIES];
};

static void metrics_nodes(struct evbuffer *b, const struct node_vals *nv, size_t n)
{
    static const char *const g[NODE_SERIES][2] = {
        {"nubo_node_ready", "1 when the node is ready and not drained."},
        {"nubo_node_memory_mb", "Guest memory the node offers (MiB)."},
        {"nubo_node_memory_allocated_mb", "Guest memory of the instances meant to run there (MiB)."},
        {"nubo_node_vcpus", "vCPUs the node offers."},
        {"nubo_node_vcpus_allocated", "vCPUs of the instances meant to run there."},
        {"nubo_node_instances", "Instances placed on the node."},
    };
    cleanup_free struct ctl_mtext *t = xmalloc(sizeof(*t));
    t->out = b;
    t->n = 0;
    for (int k = 0; k < NODE_SERIES; k++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s gauge\n", g[k][0], g[k][1], g[k][0]);
        for (size_t i = 0; i < n; i++)
            ctl_mtext_series(t, g[k][0], "node", nv[i].n->row.name, "metro", nv[i].n->row.metro,
                             nv[i].v[k]);
        ctl_mtext_flush(t); /* before the next printf into b */
    }
}

int ctl_handle_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "metrics: use GET");
    /* what the cluster runs and how busy it is: operators' knowledge, not every tenant's */
    const struct ctl_user_row *who;
    if (ctl_auth_check(ctx, ctl_bearer(ri->req), true, &who, NULL, err) < 0)
        return -1;
    struct evbuffer *b = xcheck(evbuffer_new(), "metrics buffer");
    /* kept by the model as instances change: no walk of every instance (65 ms of the loop
     * at 100,000 of them) */
    uint64_t by_state[NUBO_STATE__COUNT] = {0};
    cleanup_free struct ctl_metro_states *metros = NULL;
    size_t n_metros = ctl_instance_state_sums(ctx, false, &metros);
    for (size_t i = 0; i < n_metros; i++)
        for (int s = 0; s < NUBO_STATE__COUNT; s++)
            by_state[s] += metros[i].by_state[s];
    uint64_t ready = 0, unavail = 0;
    cleanup_free struct node_vals *nv = xcalloc(ctx->nodes.n + 1, sizeof(*nv));
    size_t n_nodes = 0;
    ctl_map_foreach(&ctx->nodes, e)
    {
        const struct ctl_node *n = e->val;
        if (n->ready)
            ready++;
        else
            unavail++;
        int64_t used_mb, used_vcpus;
        ctl_node_used(n, &used_mb, &used_vcpus);
        nv[n_nodes++] = (struct node_vals){
            .n = n,
            .v = {n->ready && !n->row.maintenance, n->row.memory_mb, used_mb, n->row.vcpus,
                  used_vcpus, (int64_t)n->n_instances},
        };
    }
    evbuffer_add_printf(b, "# HELP nubo_instances Instances by state.\n"
                           "# TYPE nubo_instances gauge\n");
    for (int s = 0; s < NUBO_STATE__COUNT; s++)
        evbuffer_add_printf(b, "nubo_instances{state=\"%s\"} %llu\n", nubo_state_name(s),
                            (unsigned long long)by_state[s]);
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
    hist_text(b, "nubo_instance_wake_time_seconds",
              "Scale-to-zero wakes: from the wake a held connection asked for to the agent's "
              "running.",
              &ctx->metrics.wake_time);
    metrics_by_metro(ctx, b, metros, n_metros);
    metrics_nodes(b, nv, n_nodes);
    evbuffer_add_printf(b,
                        "# HELP nubo_scale_to_zero_wakes_total Standby instances started by "
                        "traffic held at an ingress.\n# TYPE nubo_scale_to_zero_wakes_total "
                        "counter\nnubo_scale_to_zero_wakes_total %llu\n",
                        (unsigned long long)ctx->metrics.s2z_wakes);
    const struct ctl_metrics *m = &ctx->metrics;
    evbuffer_add_printf(
        b,
        "# HELP nubo_controller_connections Connections open to the controller's listeners.\n"
        "# TYPE nubo_controller_connections gauge\nnubo_controller_connections %llu\n"
        "# HELP nubo_controller_connections_refused_total Connections closed at once past "
        "max_connections or max_connections_per_client.\n"
        "# TYPE nubo_controller_connections_refused_total counter\n"
        "nubo_controller_connections_refused_total %llu\n"
        "# HELP nubo_controller_header_timeouts_total Connections closed for not sending a "
        "request's headers within header_timeout_ms.\n"
        "# TYPE nubo_controller_header_timeouts_total counter\n"
        "nubo_controller_header_timeouts_total %llu\n"
        "# HELP nubo_controller_rejected_before_body_total Requests refused from their headers "
        "(auth, rate, size) without reading their body.\n"
        "# TYPE nubo_controller_rejected_before_body_total counter\n"
        "nubo_controller_rejected_before_body_total %llu\n",
        (unsigned long long)m->conns_open, (unsigned long long)m->conns_refused,
        (unsigned long long)m->header_timeouts, (unsigned long long)m->rejected_before_body);
    evbuffer_add_printf(b,
                        "# HELP nubo_uptime_seconds Controller uptime.\n"
                        "# TYPE nubo_uptime_seconds gauge\nnubo_uptime_seconds %.3f\n",
                        (double)(nubo_mono_us() - ctx->started_mono_us) / 1e6);
    ctl_reply_prometheus(ctx, ri->req, CTL_R_METRICS, ri->start_us, b);
    evbuffer_free(b);
    return 0;
}

/* ---- node maintenance: PUT /v1/nodes/{name}/drain, /ready and /replace (admin) ---- */

static int node_admin(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err)
{
    ri->route = CTL_R_NODE_ADMIN;
    char ref[NUBO_NAME_MAX + 1], op[16];
    const char *s = rest + 1, *slash = strchr(s, '/');
    if (rest[0] != '/' || slash == NULL || (size_t)(slash - s) > NUBO_NAME_MAX ||
        strlen(slash + 1) >= sizeof(op))
        return nubo_error_http(
            err, 404, "no endpoint %.200s (PUT /v1/nodes/{name}/drain or /ready)", ri->path);
    memcpy(ref, s, (size_t)(slash - s));
    ref[slash - s] = '\0';
    snprintf(op, sizeof(op), "%s", slash + 1);
    bool drain = strcmp(op, "drain") == 0, replace = strcmp(op, "replace") == 0;
    if (!drain && !replace && strcmp(op, "ready") != 0)
        return nubo_error_http(
            err, 404, "no endpoint %.200s (PUT /v1/nodes/{name}/drain, /ready or /replace)",
            ri->path);
    if (ri->method != EVHTTP_REQ_PUT && ri->method != EVHTTP_REQ_POST)
        return nubo_error_http(err, 405, "%s: use PUT", ri->path);
    if (!ri->user.admin)
        return nubo_error_http(err, 403, "node %s: only an admin can %s nodes", ref,
                               drain     ? "drain"
                               : replace ? "replace"
                                         : "return to service");
    struct ctl_node *node = ctl_node_find(ctx, ref);
    if (node == NULL)
        return nubo_error_http(err, 404, "node %s not found; see GET /v1/nodes", ref);
    struct nubo_moved_instance *moved = NULL;
    size_t n_moved = 0;
    char token[NUBO_AGENT_TOKEN_MAX] = "";
    if ((drain     ? ctl_node_drain(ctx, node, &moved, &n_moved, err)
         : replace ? ctl_node_replace(ctx, node, token, err)
                   : ctl_node_set_ready(ctx, node, err)) < 0)
        return ctl_err_status(err, 500);
    if (replace)
        ctl_agent_cut(ctx, node); /* the old machine's parked watch ends now */
    struct nubo_node api;
    node_api(node, &api);
    memcpy(api.token, token, sizeof(api.token));
    api.has_moved = !replace;
    api.moved = moved;
    api.n_moved = n_moved;
    json_t *out = json_array();
    json_array_append_new(out, nubo_node_encode(&api));
    nubo_node_free(&api);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "nodes", out);
    return 0;
}
