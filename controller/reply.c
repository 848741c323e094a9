/* The ground floor every handler stands on: the JSON envelope and error replies, request
 * accounting, and requests parked until something answers them (long polls, waits, registry
 * look-ups). Nothing here knows a handler. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

const char *ctl_reason(int code)
{
    switch (code) {
    case 200:
        return "OK";
    case 307:
        return "Temporary Redirect";
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
    case 429:
        return "Too Many Requests";
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
    struct evbuffer *out = xcheck(evbuffer_new(), "reply buffer");
    if (text) {
        evbuffer_add_reference(out, text, strlen(text), free_text, NULL);
        evbuffer_add(out, "\n", 1);
    } else { /* an encoder refused its object: a bug, but the client still gets an answer */
        code = 500;
        evbuffer_add_printf(out,
                            "{\"status\":\"error\",\"message\":\"cannot encode the reply\"}\n");
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json");
    account(ctx, route, start_us, code);
    evhttp_send_reply(req, code, ctl_reason(code), out);
    evbuffer_free(out);
}

void ctl_reply_raw(struct ctl_ctx *ctx, struct evhttp_request *req, int route,
                   struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    ctx->metrics.requests[route][2]++;
    evhttp_send_reply(req, 200, "OK", body);
}

void ctl_reply_prometheus(struct ctl_ctx *ctx, struct evhttp_request *req, int route,
                          int64_t start_us, struct evbuffer *body)
{
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    account(ctx, route, start_us, 200);
    evhttp_send_reply(req, 200, "OK", body);
}

void ctl_reply_text(struct ctl_ctx *ctx, struct evhttp_request *req, int route, const char *text,
                    size_t len)
{
    struct evbuffer *b = xcheck(evbuffer_new(), "reply buffer");
    evbuffer_add(b, text, len);
    ctl_reply_raw(ctx, req, route, b);
    evbuffer_free(b);
}

/* The request-level error envelope: one line of msg, errors [{status}]. */
static json_t *error_envelope(int code, char *msg)
{
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    json_t *env = nubo_envelope_new("error", msg, NULL, NULL, 0);
    json_object_set_new(env, "errors", json_pack("[{s:i}]", "status", code));
    return env;
}

static void reply_msg(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                      int code, char *msg)
{
    ctl_reply_json(ctx, req, route, start_us, code, error_envelope(code, msg));
}

char *ctl_error_text(const struct nubo_err *err)
{
    char msg[NUBO_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", err->msg[0] ? err->msg : "request failed");
    json_t *env = error_envelope(err->http_status ? err->http_status : 500, msg);
    char *text = json_dumps(env, JSON_COMPACT);
    json_decref(env);
    return xcheck(text, "error reply");
}

void ctl_reply_err(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, const struct nubo_err *err)
{
    char msg[NUBO_ERR_MSG_MAX];
    snprintf(msg, sizeof(msg), "%s", err->msg[0] ? err->msg : "request failed");
    reply_msg(ctx, ri->req, ri->route, ri->start_us, err->http_status ? err->http_status : 500,
              msg);
}

void ctl_reply_items(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     const char *collection, json_t *items)
{
    size_t n_err = 0, i;
    json_t *it;
    const char *first_msg = NULL;
    json_array_foreach(items, i, it)
    {
        const char *st = json_string_value(json_object_get(it, "status"));
        if (st && strcmp(st, "error") == 0) {
            if (n_err == 0)
                first_msg = json_string_value(json_object_get(it, "message"));
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
    json_t *env = nubo_envelope_new(status, m, collection, items, 0);
    /* Item failures answer inside a 200, each with its platform code (the platform does so:
     * the SDKs read data before they look at HTTP). A top-level errors[] only when nothing
     * succeeded: the JS SDK's unwrap() throws on any, which a partial success must not do. */
    if (n_err == n && n > 0) {
        json_t *errs = json_array();
        json_array_foreach(json_object_get(json_object_get(env, "data"), collection), i, it)
        json_array_append_new(errs, json_pack("{s:i}", "status",
                                              nubo_api_error_http((int)json_integer_value(
                                                  json_object_get(it, "error")))));
        json_object_set_new(env, "errors", errs);
    }
    ctl_reply_json(ctx, req, route, start_us, 200, env);
}

/* ---- parked requests ---- */

void ctl_park_link(struct ctl_parked **list, struct ctl_parked *p)
{
    p->list = list;
    p->prev = NULL;
    p->next = *list;
    if (*list)
        (*list)->prev = p;
    *list = p;
}

void ctl_park_unlink(struct ctl_parked *p)
{
    if (p->list == NULL)
        return;
    if (p->prev)
        p->prev->next = p->next;
    else if (*p->list == p)
        *p->list = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    p->list = NULL;
}

void ctl_parked_free(struct ctl_parked *p)
{
    if (p == NULL)
        return;
    ctl_park_unlink(p);
    if (p->timer)
        event_free(p->timer);
    if (p->data_free)
        p->data_free(p->data);
    free(p);
}

static void park_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_parked *p = arg;
    p->on_timeout(p);
}

struct ctl_parked *ctl_park(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri,
                            struct ctl_parked **list, int64_t timeout_ms, ctl_park_fn on_timeout,
                            void *data, void (*data_free)(void *data))
{
    struct ctl_parked *p = xcalloc(1, sizeof(*p));
    p->ctx = ctx;
    p->req = ri->req;
    p->route = ri->route;
    p->start_mono_us = ri->start_us;
    p->on_timeout = on_timeout;
    p->data = data;
    p->data_free = data_free;
    ctl_park_link(list, p);
    if (timeout_ms < 0 || on_timeout == NULL)
        return p;
    p->timer = xcheck(evtimer_new(ctx->base, park_timer_cb, p), "timer");
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (evtimer_add(p->timer, &tv) < 0) {
        /* never seen in practice; answering at once beats a request that hangs */
        log_warnx("cannot arm a timer: answering a parked request at once");
        event_active(p->timer, EV_TIMEOUT, 0);
    }
    return p;
}

void ctl_park_answer_all(struct ctl_parked **list, int route, const char *text, size_t len)
{
    while (*list) {
        struct ctl_parked *p = *list;
        ctl_park_unlink(p);
        ctl_reply_text(p->ctx, p->req, route, text, len);
        ctl_parked_free(p);
    }
}

void ctl_reply_elsewhere(struct ctl_ctx *ctx, struct evhttp_request *req, int route)
{
    const struct ctl_leader *l = &ctx->leader;
    struct ctl_reqinfo ri = {.req = req, .route = route, .start_us = nubo_mono_us()};
    struct nubo_err err = {0};
    const char *uri = evhttp_request_get_uri(req);
    char loc[CTL_URL_MAX + 2048];
    /* redirect, not proxy: the client's next requests go straight to the leader, and a
     * follower holds no connection or state for anyone (README "Several controllers") */
    if (!l->leading && l->leader_url[0] && strcmp(l->leader_url, l->url) != 0 && uri &&
        uri[0] == '/' && nubo_snprintf(loc, sizeof(loc), "%s%s", l->leader_url, uri) >= 0) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
        nubo_error_http(&err, 307, "this controller follows; the leader is %s", l->leader_url);
    } else if (l->leading) {
        nubo_error_http(&err, 503, "the controller is shutting down; retry");
    } else {
        nubo_error_http(&err, 503, "no leader elected yet; retry");
    }
    ctl_reply_err(ctx, &ri, &err);
}

void ctl_park_drain(struct ctl_parked **list)
{
    while (*list) {
        struct ctl_parked *p = *list;
        ctl_park_unlink(p);
        ctl_reply_elsewhere(p->ctx, p->req, p->route);
        ctl_parked_free(p);
    }
}

void ctl_reqinfo_of_parked(struct ctl_reqinfo *ri, const struct ctl_parked *p)
{
    memset(ri, 0, sizeof(*ri));
    ri->req = p->req;
    ri->start_us = p->start_mono_us;
    ri->route = p->route;
}

const char *ctl_bearer(struct evhttp_request *req)
{
    return ctl_bearer_of(evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization"));
}

const char *ctl_bearer_of(const char *a)
{
    if (a == NULL || strncasecmp(a, "Bearer ", 7) != 0)
        return NULL;
    a += 7;
    while (*a == ' ')
        a++;
    return a;
}

int ctl_watch_params(const struct ctl_reqinfo *ri, int64_t max_timeout_ms, int64_t *version,
                     int64_t *timeout_ms, struct nubo_err *err)
{
    *version = 0;
    *timeout_ms = 30000;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "version")) {
            if (nubo_parse_int(kv->value, 0, INT64_C(1) << 62, version, NULL) < 0)
                return nubo_error_http(err, 400, "watch: version must be a whole number");
        } else if (!strcmp(kv->key, "timeout_ms")) {
            if (nubo_parse_int(kv->value, 0, max_timeout_ms, timeout_ms, NULL) < 0)
                return nubo_error_http(err, 400, "watch: timeout_ms must be 0..%lld",
                                       (long long)max_timeout_ms);
        }
    }
    return 0;
}

int ctl_query_bool(const char *key, const char *v, bool *out, struct nubo_err *err)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, ""))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else
        return nubo_error_http(err, 400, "query %.64s: '%.64s' is not true or false", key, v);
    return 0;
}
