/* The HTTP front: one evhttp on one event loop, TCP and optionally a unix socket; routing,
 * bounded bodies, bearer auth, the JSON envelope and request metrics. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

const char *const ctl_route_names[CTL_R__COUNT] = {
    "other",           "healthz",          "metrics",         "instances_create", "instances_list",
    "instances_get",   "instances_delete", "instances_start", "instances_stop",   "instances_wait",
    "instances_log",   "images",           "nodes",           "metros",           "users",
    "registry_events", "agent_register",   "agent_watch",     "agent_status",     "agent_log",
    "services",        "certificates",     "ingress_watch",   "node_admin",
};

static const double hist_bounds_s[CTL_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
};

void ctl_hist_observe(struct ctl_hist *h, double s)
{
    size_t i = 0;
    while (i < CTL_HIST_BUCKETS && s > hist_bounds_s[i])
        i++;
    h->counts[i]++;
    h->sum_s += s;
    h->n++;
}

const double *ctl_hist_bounds(void)
{
    return hist_bounds_s;
}

static const char *reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void account(struct ctl_ctx *ctx, int route, int64_t start_us, int code)
{
    int cls = code / 100;
    if (cls < 1 || cls > 5)
        cls = 5;
    if (route < 0 || route >= CTL_R__COUNT)
        route = CTL_R_OTHER;
    ctx->metrics.requests[route][cls]++;
    if (route != CTL_R_AGENT_WATCH && route != CTL_R_INST_WAIT)
        ctl_hist_observe(&ctx->metrics.latency, (double)(nubo_mono_us() - start_us) / 1e6);
}

static void free_text(const void *data, size_t len, void *arg)
{
    free((void *)data);
}

void ctl_reply_json(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                    int code, json_t *body)
{
    if (json_is_object(body) && json_object_get(body, "op_time_us"))
        json_object_set_new(body, "op_time_us", json_integer(nubo_mono_us() - start_us));
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct evbuffer *out = evbuffer_new();
    if (text) {
        evbuffer_add_reference(out, text, strlen(text), free_text, NULL);
        evbuffer_add(out, "\n", 1);
    } else {
        code = 500;
        evbuffer_add_printf(out, "{\"status\":\"error\",\"message\":\"out of memory\"}\n");
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    account(ctx, route, start_us, code);
    evhttp_send_reply(req, code, reason(code), out);
    evbuffer_free(out);
}

void ctl_reply_error(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     int code, const char *fmt, ...)
{
    char msg[NUBO_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_t *env = nubo_envelope_new("error", msg, NULL, NULL, 0);
    json_object_set_new(env, "errors", json_pack("[{s:i}]", "status", code));
    ctl_reply_json(ctx, req, route, start_us, code, env);
}

void ctl_reply_items(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     const char *collection, json_t *items)
{
    size_t n_err = 0, i;
    json_t *it;
    const char *first_msg = NULL;
    int common_code = 0;
    json_array_foreach(items, i, it)
    {
        const char *st = json_string_value(json_object_get(it, "status"));
        if (st && strcmp(st, "error") == 0) {
            int code = (int)json_integer_value(json_object_get(it, "error"));
            if (n_err == 0) {
                first_msg = json_string_value(json_object_get(it, "message"));
                common_code = code;
            } else if (code != common_code) {
                common_code = 400;
            }
            n_err++;
        }
    }
    size_t n = json_array_size(items);
    const char *status = n_err == 0 ? "success" : n_err < n ? "partial_success" : "error";
    char msg[NUBO_ERR_MSG_MAX];
    const char *m = NULL;
    if (n_err && n_err < n) {
        snprintf(msg, sizeof(msg), "%zu of %zu items failed: %s", n_err, n,
                 first_msg ? first_msg : "");
        m = msg;
    } else if (n_err) {
        m = first_msg ? first_msg : "request failed";
    }
    int code =
        n_err == n && n > 0 ? (common_code >= 400 && common_code < 600 ? common_code : 400) : 200;
    json_t *env = nubo_envelope_new(status, m, collection, items, 0);
    if (n_err) {
        json_t *errs = json_array();
        json_array_foreach(json_object_get(json_object_get(env, "data"), collection), i, it)
        {
            const char *st = json_string_value(json_object_get(it, "status"));
            if (st && strcmp(st, "error") == 0)
                json_array_append_new(errs,
                                      json_pack("{s:O}", "status", json_object_get(it, "error")));
        }
        json_object_set_new(env, "errors", errs);
    }
    ctl_reply_json(ctx, req, route, start_us, code, env);
}

void ctl_park_link(struct ctl_parked **head, struct ctl_parked *p)
{
    p->prev = NULL;
    p->next = *head;
    if (*head)
        (*head)->prev = p;
    *head = p;
}

void ctl_park_unlink(struct ctl_parked **head, struct ctl_parked *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else if (*head == p)
        *head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

void ctl_parked_free(struct ctl_parked *p)
{
    if (p == NULL)
        return;
    if (p->timer)
        event_free(p->timer);
    for (size_t i = 0; i < p->n_items; i++)
        json_decref(p->items[i].result);
    free(p->items);
    free(p->body);
    while (p->resolved) {
        struct ctl_resolved *r = p->resolved;
        p->resolved = r->next;
        free(r);
    }
    free(p);
}

void ctl_reqinfo_of_parked(struct ctl_reqinfo *ri, const struct ctl_parked *p,
                           enum evhttp_cmd_type method, struct evkeyvalq *q)
{
    memset(ri, 0, sizeof(*ri));
    TAILQ_INIT(q);
    ri->req = p->req;
    ri->start_us = p->start_mono_us;
    ri->method = method;
    ri->query = q;
    ri->body = p->body;
    ri->body_len = p->body_len;
    ri->user = p->user;
}

struct ctl_parked *ctl_park_timed(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri,
                                  enum ctl_park_kind kind, int64_t timeout_ms,
                                  event_callback_fn cb)
{
    struct ctl_parked *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return NULL;
    }
    p->kind = kind;
    p->ctx = ctx;
    p->req = ri->req;
    p->route = ri->route;
    p->start_mono_us = ri->start_us;
    p->timer = evtimer_new(ctx->base, cb, p);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (p->timer == NULL || evtimer_add(p->timer, &tv) < 0) {
        ctl_parked_free(p);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "cannot arm a timer");
        return NULL;
    }
    return p;
}

static const char *bearer(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

static bool prefix(const char *path, const char *pre, const char **rest)
{
    size_t n = strlen(pre);
    if (strncmp(path, pre, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return false;
    *rest = path + n;
    return true;
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_reqinfo ri = {0};
    struct evkeyvalq query;
    TAILQ_INIT(&query);
    ri.req = req;
    ri.start_us = nubo_mono_us();
    ri.method = evhttp_request_get_command(req);
    ri.query = &query;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || path[0] == '\0')
        path = "/";
    if (nubo_snprintf(ri.path, sizeof(ri.path), "%s", path) < 0) {
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 400, "request path too long");
        return;
    }
    /* tolerate a trailing slash */
    size_t pl = strlen(ri.path);
    if (pl > 1 && ri.path[pl - 1] == '/')
        ri.path[pl - 1] = '\0';
    const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
    if (q && q[0] && evhttp_parse_query_str(q, &query) < 0) {
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 400, "malformed query string");
        return;
    }
    const char *rest = NULL;
    bool agent = prefix(ri.path, "/agent/v1", &rest);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    size_t limit = agent ? NUBO_AGENT_MAX_BODY : (size_t)ctx->cfg.max_body_bytes;
    cleanup_free char *body = NULL;
    if (len > limit) {
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 413,
                        "request body of %zu bytes is larger than the %zu allowed; send fewer "
                        "items per request",
                        len, limit);
        goto out;
    }
    if (len > 0) {
        body = malloc(len + 1);
        if (body == NULL) {
            ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 500, "out of memory");
            goto out;
        }
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

    if (agent) {
        ctl_handle_agent(ctx, &ri, rest);
        goto out;
    }
    if (strcmp(ri.path, "/v1/healthz") == 0 || strcmp(ri.path, "/healthz") == 0) {
        ri.route = CTL_R_HEALTHZ;
        json_t *env = nubo_envelope_new("success", NULL, NULL, NULL, 0);
        json_object_set_new(env, "version", json_string(CTL_VERSION));
        ctl_reply_json(ctx, req, ri.route, ri.start_us, 200, env);
        goto out;
    }
    if (strcmp(ri.path, "/metrics") == 0 || strcmp(ri.path, "/v1/metrics") == 0) {
        ri.route = CTL_R_METRICS;
        ctl_handle_metrics(ctx, &ri);
        goto out;
    }
    if (prefix(ri.path, "/ingress/v1", &rest)) {
        ctl_handle_ingress(ctx, &ri, rest, bearer(req));
        goto out;
    }
    if (strcmp(ri.path, "/registry/events") == 0) {
        ri.route = CTL_R_REG_EVENTS;
        ctl_handle_registry_events(ctx, &ri);
        goto out;
    }
    if (!prefix(ri.path, "/v1", &rest)) {
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 404,
                        "no endpoint %s; the API lives under /v1", ri.path);
        goto out;
    }
    const struct ctl_user_row *u = ctl_auth_user(ctx, bearer(req));
    if (u == NULL) {
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 401,
                        "missing or unknown token: send Authorization: Bearer <token>");
        goto out;
    }
    ri.user = *u;
    const char *sub;
    if (prefix(rest, "/instances", &sub))
        ctl_handle_instances(ctx, &ri, sub);
    else if (prefix(rest, "/images", &sub))
        ctl_handle_images(ctx, &ri, sub);
    else if (prefix(rest, "/users", &sub))
        ctl_handle_users(ctx, &ri, sub);
    else if (strcmp(rest, "/metros") == 0)
        ctl_handle_metros(ctx, &ri);
    else if (prefix(rest, "/nodes", &sub))
        ctl_handle_nodes(ctx, &ri, sub);
    else if (prefix(rest, "/services", &sub))
        ctl_handle_services(ctx, &ri, sub);
    else if (prefix(rest, "/certificates", &sub))
        ctl_handle_certificates(ctx, &ri, sub);
    else
        ctl_reply_error(ctx, req, CTL_R_OTHER, ri.start_us, 404,
                        "no endpoint %s (nubo serves /v1/instances, /v1/images, /v1/services, "
                        "/v1/certificates, /v1/nodes, /v1/metros, /v1/users)",
                        ri.path);
out:
    evhttp_clear_headers(&query);
    int64_t took_us = nubo_mono_us() - ri.start_us;
    if (took_us > 100000) /* a loop stall this long delays every other client */
        log_warnx("slow request: %s %s took %lld ms in the event loop", ctl_route_names[ri.route],
                  ri.path, (long long)took_us / 1000);
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
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return nubo_error(err, errno, "socket");
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0660) < 0 ||
        listen(fd, 1024) < 0) {
        int e = errno;
        close(fd);
        return nubo_error(err, e, "cannot listen on the unix socket %s", path);
    }
    if (evhttp_accept_socket_with_handle(ctx->http, fd) == NULL) {
        close(fd);
        return nubo_error(err, 0, "cannot serve the unix socket %s", path);
    }
    log_info("listening on unix:%s", path);
    return 0;
}

int ctl_server_start(struct ctl_ctx *ctx, struct nubo_err *err)
{
    ctx->http = evhttp_new(ctx->base);
    if (ctx->http == NULL)
        return nubo_error(err, 0, "cannot create the HTTP server");
    /* libevent's own hard cap; the per-route bounds (413 in our envelope) are smaller */
    evhttp_set_max_body_size(ctx->http, (ev_ssize_t)NUBO_AGENT_MAX_BODY + 1);
    evhttp_set_max_headers_size(ctx->http, 64 * 1024);
    evhttp_set_allowed_methods(ctx->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                              EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH |
                                              EVHTTP_REQ_HEAD);
    evhttp_set_timeout(ctx->http, 120);
    evhttp_set_gencb(ctx->http, dispatch, ctx);
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
    if (evhttp_bind_socket_with_handle(ctx->http, host, (uint16_t)port) == NULL)
        return nubo_error(err, errno, "cannot listen on %s", ctx->cfg.listen);
    log_info("listening on http://%s", ctx->cfg.listen);
    if (ctx->cfg.unix_path[0] && listen_unix(ctx, ctx->cfg.unix_path, err) < 0)
        return -1;
    return 0;
}
