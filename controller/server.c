/* The router: an evhttp for the TCP listener (HTTPS unless plain_http allows plain) and one for
 * the optional unix socket (plain), on one event loop; the gate that bounds a request from its
 * headers (conns.c asks it before the body is read), bearer auth, and the path to the handler
 * that answers it. A handler that fails returns err and is answered here, in one place. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/listener.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

static bool prefix(const char *path, const char *pre, const char **rest)
{
    size_t n = strlen(pre);
    if (strncmp(path, pre, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return false;
    *rest = path + n;
    return true;
}

/* The handler for ri's path; 0 when it answered (or parked the request), -1 with err. */
static int route(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, bool agent, const char *rest,
                 struct nubo_err *err)
{
    if (agent && ctx->leader.leading)
        return ctl_handle_agent(ctx, ri, rest, err);
    bool leader_check =
        strcmp(ri->path, "/healthz/leader") == 0 || strcmp(ri->path, "/v1/healthz/leader") == 0;
    if (strcmp(ri->path, "/v1/healthz") == 0 || strcmp(ri->path, "/healthz") == 0 || leader_check) {
        ri->route = CTL_R_HEALTHZ;
        /* /healthz/leader: 503 on a follower, for a load balancer's health check */
        bool up = !leader_check || ctx->leader.leading;
        json_t *env = nubo_envelope_new(up ? "success" : "error",
                                        up ? NULL : "this controller follows", NULL, NULL, 0);
        json_object_set_new(env, "version", json_string(CTL_VERSION));
        ctl_leader_health(ctx, env);
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, up ? 200 : 503, env);
        return 0;
    }
    if (!ctx->leader.leading) {
        ctl_reply_elsewhere(ctx, ri->req, ri->route);
        return 0;
    }
    if (strcmp(ri->path, "/metrics") == 0 || strcmp(ri->path, "/v1/metrics") == 0) {
        ri->route = CTL_R_METRICS;
        return ctl_handle_metrics(ctx, ri, err);
    }
    if (prefix(ri->path, "/ingress/v1", &rest))
        return ctl_handle_ingress(ctx, ri, rest, err);
    if (strcmp(ri->path, "/registry/token") == 0) {
        ri->route = CTL_R_REG_TOKEN;
        return ctl_handle_registry_token(ctx, ri, err);
    }
    if (strcmp(ri->path, "/registry/events") == 0) {
        ri->route = CTL_R_REG_EVENTS;
        return ctl_handle_registry_events(ctx, ri, err);
    }
    if (!prefix(ri->path, "/v1", &rest))
        return nubo_error_http(err, 404, "no endpoint %s; the API lives under /v1", ri->path);
    const struct ctl_user_row *u;
    if (ctl_auth_check(ctx, ctl_bearer(ri->req), false, &u, NULL, err) < 0)
        return -1;
    ri->user = *u;
    int64_t retry_ms = 0;
    if (!ctl_rate_take(ctx, u, ri->body_len, &retry_ms)) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%lld", (long long)(retry_ms + 999) / 1000);
        evhttp_add_header(evhttp_request_get_output_headers(ri->req), "Retry-After", ra);
        return nubo_error_http(err, 429,
                               "user %s sends more than %lld requests per second: slow down and "
                               "retry after %lld ms",
                               u->name, (long long)ctx->cfg.rate_limit_per_s, (long long)retry_ms);
    }
    const char *sub;
    if (prefix(rest, "/instances", &sub))
        return ctl_handle_instances(ctx, ri, sub, err);
    if (prefix(rest, "/images", &sub))
        return ctl_handle_images(ctx, ri, sub, err);
    if (prefix(rest, "/users", &sub)) {
        size_t sl = strlen(sub);
        if (sl >= 7 && strcmp(sub + sl - 7, "/quotas") == 0)
            return ctl_handle_quotas(ctx, ri, sub, err);
        return ctl_handle_users(ctx, ri, sub, err);
    }
    if (strcmp(rest, "/metros") == 0)
        return ctl_handle_metros(ctx, ri, err);
    if (prefix(rest, "/nodes", &sub))
        return ctl_handle_nodes(ctx, ri, sub, err);
    if (prefix(rest, "/services", &sub))
        return ctl_handle_services(ctx, ri, sub, err);
    if (prefix(rest, "/certificates", &sub))
        return ctl_handle_certificates(ctx, ri, sub, err);
    if (prefix(rest, "/volumes", &sub))
        return ctl_handle_volumes(ctx, ri, sub, err);
    return nubo_error_http(err, 404,
                           "no endpoint %s (nubo serves /v1/instances, /v1/images, /v1/services, "
                           "/v1/certificates, /v1/volumes, /v1/nodes, /v1/metros, /v1/users)",
                           ri->path);
}


/* Any credential this controller issued or was given: the bound of a route that checks its
 * own (agents, ingress, registry) is the public one for it, the anonymous one without. */
static bool known_credential(struct ctl_ctx *ctx, const char *bearer)
{
    if (bearer == NULL)
        return false;
    char h[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(bearer, strlen(bearer), h);
    return ctl_auth_user(ctx, bearer) || ctl_auth_node(ctx, bearer) ||
           ctl_auth_join(ctx, bearer) ||
           (ctx->ingress_token_hash[0] && strcmp(h, ctx->ingress_token_hash) == 0) ||
           (ctx->cfg.registry_secret[0] && strcmp(bearer, ctx->cfg.registry_secret) == 0);
}

int ctl_route_gate(struct ctl_ctx *ctx, struct ctl_gate *g, struct nubo_err *err)
{
    char path[CTL_PATH_MAX];
    snprintf(path, sizeof(path), "%s", g->path);
    size_t pl = strlen(path);
    if (pl > 1 && path[pl - 1] == '/') /* as dispatch tolerates it */
        path[pl - 1] = '\0';
    const char *rest;
    bool with_body = g->content_length > 0 || g->chunked;
    g->limit = 16 * 1024; /* what the router reads of a request nobody vouches for */
    if (!ctx->leader.leading) {
        /* A follower holds no users or nodes to check a token against, and only redirects
         * (route): it reads a bounded body of a request that carries any token, and sends one
         * too large for that to the next controller in the client's list (503) unread. */
        if (g->bearer)
            g->limit = ctx->cfg.max_body_bytes;
        if (g->content_length > g->limit)
            return nubo_error_http(err, 503,
                                   "this controller follows (leader: %s); send the request to "
                                   "the leader",
                                   ctx->leader.leader_url[0] ? ctx->leader.leader_url
                                                             : "not elected yet");
        return 0;
    }
    if (prefix(path, "/agent/v1", &rest)) {
        if (ctl_auth_node(ctx, g->bearer) || ctl_auth_join(ctx, g->bearer))
            g->limit = NUBO_AGENT_MAX_BODY;
    } else if (!prefix(path, "/v1", &rest) || strcmp(path, "/v1/healthz") == 0 ||
               strcmp(path, "/v1/metrics") == 0) {
        /* healthz, metrics, ingress, registry, 404s: their handlers check their own credential */
        if (known_credential(ctx, g->bearer))
            g->limit = ctx->cfg.max_body_bytes;
    } else {
        const struct ctl_user_row *u;
        if (ctl_auth_check(ctx, g->bearer, false, &u, NULL, err) < 0)
            return -1;
        int64_t retry_ms = 0;
        if (!ctl_rate_check(ctx, u, &retry_ms)) {
            g->retry_after_s = (retry_ms + 999) / 1000;
            return nubo_error_http(err, 429,
                                   "user %s sends more than %lld requests per second: slow down "
                                   "and retry after %lld ms",
                                   u->name, (long long)ctx->cfg.rate_limit_per_s,
                                   (long long)retry_ms);
        }
        g->limit = ctx->cfg.max_body_bytes;
    }
    if (g->content_length > g->limit) {
        if (with_body && g->limit < ctx->cfg.max_body_bytes)
            return nubo_error_http(err, 401,
                                   "missing or unknown token: a body of %lld bytes needs "
                                   "Authorization: Bearer <token>",
                                   (long long)g->content_length);
        return nubo_error_http(err, 413,
                               "request body of %lld bytes is larger than the %lld allowed; send "
                               "fewer items per request",
                               (long long)g->content_length, (long long)g->limit);
    }
    return 0;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_reqinfo ri = {0};
    struct nubo_err err = {0};
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    ri.req = req;
    ri.start_us = nubo_mono_us();
    ctl_conns_request(ctx, req);
    ri.method = evhttp_request_get_command(req);
    ri.query = &query;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (nubo_snprintf(ri.path, sizeof(ri.path), "%s", path) < 0) {
        nubo_error_http(&err, 400, "request path too long");
        ctl_reply_err(ctx, &ri, &err);
        return;
    }
    /* tolerate a trailing slash */
    size_t pl = strlen(ri.path);
    if (pl > 1 && ri.path[pl - 1] == '/')
        ri.path[pl - 1] = '\0';
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (q && q[0] && evhttp_parse_query_str(q, &query) < 0) {
        nubo_error_http(&err, 400, "malformed query string");
        ctl_reply_err(ctx, &ri, &err);
        return;
    }
    const char *rest = NULL;
    bool agent = prefix(ri.path, "/agent/v1", &rest);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    size_t limit = agent ? NUBO_AGENT_MAX_BODY : (size_t)ctx->cfg.max_body_bytes;
    cleanup_free char *body = NULL;
    if (len > limit) {
        nubo_error_http(&err, 413,
                        "request body of %zu bytes is larger than the %zu allowed; send fewer "
                        "items per request",
                        len, limit);
        ctl_reply_err(ctx, &ri, &err);
        goto out;
    }
    if (len > 0) {
        body = xmalloc(len + 1);
        evbuffer_copyout(in, body, len);
        body[len] = '\0';
        /* whitespace-only bodies count as no body (curl -d '' and friends) */
        size_t k = 0;
        while (k < len && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t'))
            k++;
        if (k < len) {
            ri.body = body;
            ri.body_len = len;
        }
    }
    if (route(ctx, &ri, agent, rest, &err) < 0)
        ctl_reply_err(ctx, &ri, &err);
out:
    evhttp_clear_headers(&query);
    int64_t took_us = nubo_mono_us() - ri.start_us;
    if (took_us > 100000) /* a loop stall this long delays every other client */
        log_warnx("slow request: %s %s took %lld ms in the event loop", ctl_route_names[ri.route],
                  ri.path, (long long)took_us / 1000);
}

/* Out of file descriptors, libevent would retry accept() in a busy loop with a warning each
 * time: pause the listeners instead (new clients wait in the kernel's backlog), say so once
 * in a while, and listen again shortly. */
static void accept_resume(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    if (!ctl_conns_room(ctx))
        return; /* conns.c listens again once a connection closes */
    for (size_t i = 0; i < ctx->n_listeners; i++)
        evconnlistener_enable(ctx->listeners[i]);
}

/* libevent hands an error callback the listener's own argument (evhttp's), not ours: the one
 * context of this process is kept here. */
static struct ctl_ctx *guarded_ctx;

static void accept_error(struct evconnlistener *l, void *unused)
{
    struct ctl_ctx *ctx = guarded_ctx;
    int e = EVUTIL_SOCKET_ERROR();
    int64_t now = nubo_mono_us();
    if (now - ctx->accept_warned_us > 10 * 1000000) {
        ctx->accept_warned_us = now;
        log_warnx("cannot accept connections: %s (%ld open files allowed); pausing 100 ms",
                  strerror(e), nubo_raise_nofile());
    }
    for (size_t i = 0; i < ctx->n_listeners; i++)
        evconnlistener_disable(ctx->listeners[i]);
    struct timeval tv = {0, 100000};
    evtimer_add(ctx->accept_ev, &tv);
}

static void guard_listener(struct ctl_ctx *ctx, struct evhttp_bound_socket *bs)
{
    struct evconnlistener *l = evhttp_bound_socket_get_listener(bs);
    if (ctx->n_listeners >= sizeof(ctx->listeners) / sizeof(ctx->listeners[0]))
        return;
    ctx->listeners[ctx->n_listeners++] = l;
    guarded_ctx = ctx;
    evconnlistener_set_error_cb(l, accept_error);
    if (ctx->accept_ev == NULL)
        ctx->accept_ev = evtimer_new(ctx->base, accept_resume, ctx);
}

/* One evhttp with the router's settings; TLS on every connection when tls; connections
 * guarded by conns.c, which sets each request's body bound from its headers (per_client: the
 * TCP listener's, counted by address). */
static struct evhttp *server_new(struct ctl_ctx *ctx, bool tls, bool per_client,
                                 struct nubo_err *err)
{
    if (tls && ctx->tls == NULL && ctl_tls_load(ctx, err) < 0)
        return NULL;
    struct evhttp *http = evhttp_new(ctx->base);
    if (http == NULL) {
        nubo_error(err, 0, "cannot create the HTTP server");
        return NULL;
    }
    evhttp_set_max_headers_size(http, 64 * 1024);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                         EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(http, 120); /* idle keep-alive; a request's headers have less */
    evhttp_set_gencb(http, dispatch, ctx);
    ctl_conns_attach(ctx, http, tls, per_client, ctl_route_gate);
    return http;
}

static int listen_unix(struct ctl_ctx *ctx, const char *path, struct nubo_err *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(sa.sun_path))
        return nubo_error(err, 0, "unix socket path %s is too long", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return nubo_error(err, 0, "%s exists and is not a socket; remove it", path);
        unlink(path);
    }
    ctx->http_unix = server_new(ctx, false, false, err);
    if (ctx->http_unix == NULL)
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nubo_error(err, errno, "socket");
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
        listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        return nubo_error(err, e, "cannot listen on the unix socket %s", path);
    }
    struct evhttp_bound_socket *bs = evhttp_accept_socket_with_handle(ctx->http_unix, fd);
    if (bs == NULL) {
        close(fd);
        return nubo_error(err, 0, "cannot serve the unix socket %s", path);
    }
    guard_listener(ctx, bs);
    log_info("listening on unix:%s", path);
    return 0;
}

int ctl_server_start(struct ctl_ctx *ctx, struct nubo_err *err)
{
    bool tls = ctx->cfg.tls_cert_file[0] != '\0';
    ctx->http = server_new(ctx, tls, true, err);
    if (ctx->http == NULL)
        return -1;
    char host[128];
    snprintf(host, sizeof(host), "%s", ctx->cfg.listen);
    char *colon = strrchr(host, ':');
    int64_t port;
    if (colon == NULL || nubo_parse_int(colon + 1, 0, 65535, &port, NULL) < 0)
        return nubo_error(err, 0, "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:7060",
                          ctx->cfg.listen);
    *colon = '\0';
    if (host[0] == '[') { /* [::1]:7060 */
        memmove(host, host + 1, strlen(host));
        char *rb = strchr(host, ']');
        if (rb)
            *rb = '\0';
    }
    struct evhttp_bound_socket *bs =
        evhttp_bind_socket_with_handle(ctx->http, host, (uint16_t)port);
    if (bs == NULL)
        return nubo_error(err, errno, "cannot listen on %s", ctx->cfg.listen);
    guard_listener(ctx, bs);
    long nofile = nubo_raise_nofile();
    /* -1: as many as the open files allow, less a reserve for the store, the registry's and
     * the leader's connections and the files the controller opens. A node holds one or two
     * connections (its watch, its reports): a fixed 10,000 stalled a 10,000-node cluster. */
    if (ctx->cfg.max_connections < 0)
        ctx->cfg.max_connections = nofile > 2048 ? nofile - 1024 : 1024;
    log_info("listening on %s://%s (%ld open files allowed, max_connections %lld)",
             tls ? "https" : "http", ctx->cfg.listen, nofile,
             (long long)ctx->cfg.max_connections);
    if (ctx->cfg.unix_path[0] && listen_unix(ctx, ctx->cfg.unix_path, err) < 0)
        return -1;
    return 0;
}
