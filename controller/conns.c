/* The connection guard of the controller's listeners (issue 11, observation 4): caps on open
 * connections (all of them, and per client address), a deadline for a request's headers, and
 * the header gate: auth, rate and Content-Length of the route are decided from the headers
 * alone (the router's gate, handed down by server.c) before evhttp reads a byte of the body.
 *
 * It stands beside evhttp, never between evhttp and the socket (a filter bufferevent there lost
 * replies and broke TLS): a callback on the connection's input buffer sees each read's bytes
 * before evhttp parses them, keeps a copy of the request's header lines until the blank line,
 * then sets the connection's body bound for evhttp to enforce, or takes the connection over to
 * answer the refusal itself and close. libevent 2.1 has no hook on a new connection or a new
 * server request, so a connection is counted just after evhttp set it up (an event activated
 * from the bufferevent callback, run before any read), and a request's end is its reply's
 * completion. Main loop only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

/* evhttp's own bound on a request's headers (server.c sets it); past it evhttp refuses. */
#define CONN_HEAD_MAX (64 * 1024)
/* The body bound until the gate decided: what evhttp reads of a request nobody vouched for. */
#define CONN_ANON_BODY_MAX (16 * 1024)

enum conn_state {
    CONN_HEAD,   /* reading a request's headers: the gate has not decided */
    CONN_BUSY,   /* decided (or routed): evhttp reads the body, the router answers */
    CONN_REFUSE, /* taken over: writing the refusal, then closed */
};

struct conn_kind {
    struct ctl_ctx *ctx;
    bool tls, per_client;
    ctl_gate_fn gate; /* the router's decision from the headers (server.c) */
};

struct ctl_conn {
    LIST_ENTRY(ctl_conn) link;
    struct conn_kind *kind;
    struct bufferevent *bev;
    struct evhttp_connection *evcon; /* known once adopted */
    struct evbuffer_cb_entry *watch; /* on bev's input */
    struct event *kick;              /* adopt, then a pipelined request's headers */
    struct event *head_timer;
    struct evbuffer *head; /* this request's header bytes not parsed yet */
    size_t head_bytes;     /* header bytes of this request so far */
    enum conn_state state;
    bool adopted, counted, deferred, line0;
    char key[32];  /* evcon's address, the by_evcon key */
    char peer[64]; /* per_client: the address counted */
    /* what the gate is told */
    char method[16], path[CTL_PATH_MAX], auth[NUBO_AGENT_TOKEN_MAX + 16];
    int64_t content_length;
    bool chunked, has_auth, has_length, bad;
};

struct ctl_conns {
    struct conn_kind kinds[2];
    size_t n_kinds;
    LIST_HEAD(, ctl_conn) all;
    struct ctl_map by_evcon; /* "%p" of the evhttp_connection -> ctl_conn */
    struct ctl_map per_peer; /* address -> int64_t count (malloc'd) */
    int64_t open;
    bool paused;
    int64_t warned_us;
};

static struct ctl_conns *conns_of(struct ctl_ctx *ctx)
{
    if (ctx->conns == NULL) {
        ctx->conns = xcalloc(1, sizeof(*ctx->conns));
        LIST_INIT(&ctx->conns->all);
    }
    return ctx->conns;
}

bool ctl_conns_room(struct ctl_ctx *ctx)
{
    return ctx->cfg.max_connections <= 0 || ctx->conns == NULL ||
           ctx->conns->open < ctx->cfg.max_connections;
}

/* At max_connections the listeners stop accepting: new clients wait in the kernel's backlog
 * rather than being accepted and closed. */
static void listeners_enable(struct ctl_ctx *ctx, bool on)
{
    struct ctl_conns *cs = ctx->conns;
    if (cs->paused == !on)
        return;
    cs->paused = !on;
    for (size_t i = 0; i < ctx->n_listeners; i++)
        on ? evconnlistener_enable(ctx->listeners[i]) : evconnlistener_disable(ctx->listeners[i]);
}

/* A refusal is logged once in 10 s: a flood must not flood the log too. */
static bool warn_now(struct ctl_ctx *ctx)
{
    int64_t now = nubo_mono_us();
    if (now - ctx->conns->warned_us < 10 * 1000000)
        return false;
    ctx->conns->warned_us = now;
    return true;
}

static void head_reset(struct ctl_conn *c)
{
    evbuffer_drain(c->head, evbuffer_get_length(c->head));
    c->head_bytes = 0;
    c->line0 = c->chunked = c->has_auth = c->has_length = c->bad = false;
    c->method[0] = c->path[0] = c->auth[0] = '\0';
    c->content_length = -1;
}

static void conn_free(struct ctl_conn *c)
{
    LIST_REMOVE(c, link);
    event_free(c->kick);
    event_free(c->head_timer);
    evbuffer_free(c->head);
    free(c);
}

/* evhttp frees the connection (closecb: every way it goes, before the bufferevent). */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct ctl_conn *c = arg;
    struct ctl_ctx *ctx = c->kind->ctx;
    struct ctl_conns *cs = ctx->conns;
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
    ctl_map_del(&cs->by_evcon, c->key);
    if (c->counted) {
        cs->open--;
        ctx->metrics.conns_open = (uint64_t)cs->open;
        int64_t *n = c->kind->per_client ? ctl_map_get(&cs->per_peer, c->peer) : NULL;
        if (n && --*n <= 0)
            free(ctl_map_del(&cs->per_peer, c->peer));
    }
    conn_free(c);
    if (cs->paused && ctl_conns_room(ctx))
        listeners_enable(ctx, true);
}

static void close_now(struct ctl_conn *c)
{
    evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

/* ---- a refusal, written by us on a connection evhttp no longer drives ---- */
static void refuse_written(struct bufferevent *bev, void *arg)
{
    close_now(arg);
}

static void refuse_event(struct bufferevent *bev, short what, void *arg)
{
    close_now(arg);
}

static void conn_refuse(struct ctl_conn *c, const struct nubo_err *err, int64_t retry_after_s)
{
    struct ctl_ctx *ctx = c->kind->ctx;
    int code = err->http_status ? err->http_status : 500;
    c->state = CONN_REFUSE;
    evtimer_del(c->head_timer);
    ctx->metrics.rejected_before_body++;
    ctx->metrics.requests[CTL_R_OTHER][code / 100 >= 1 && code / 100 <= 5 ? code / 100 : 5]++;
    cleanup_free char *body = ctl_error_text(err);
    char ra[48] = "";
    if (retry_after_s > 0)
        snprintf(ra, sizeof(ra), "Retry-After: %lld\r\n", (long long)retry_after_s);
    /* evhttp's callbacks go: the rest of this connection's bytes are nobody's to parse */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setcb(c->bev, NULL, refuse_written, refuse_event, c);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: "
                        "%zu\r\nConnection: close\r\n%s\r\n%s\n",
                        code, ctl_reason(code), strlen(body) + 1, ra, body);
    bufferevent_enable(c->bev, EV_WRITE);
}

/* ---- the gate ---- */
static void conn_decide(struct ctl_conn *c)
{
    struct ctl_ctx *ctx = c->kind->ctx;
    c->state = CONN_BUSY;
    evtimer_del(c->head_timer);
    evbuffer_drain(c->head, evbuffer_get_length(c->head));
    if (c->bad || !c->line0)
        return; /* evhttp refuses it too; the bound stays the anonymous one */
    struct ctl_gate g = {
        .method = c->method,
        .path = c->path,
        .bearer = c->has_auth ? ctl_bearer_of(c->auth) : NULL,
        .content_length = c->has_length ? c->content_length : -1,
        .chunked = c->chunked,
    };
    struct nubo_err err = {0};
    if (c->kind->gate(ctx, &g, &err) < 0) {
        conn_refuse(c, &err, g.retry_after_s);
        return;
    }
    evhttp_connection_set_max_body_size(c->evcon, (ev_ssize_t)g.limit);
}

static void header_line(struct ctl_conn *c, char *line)
{
    if (!c->line0) { /* METHOD SP target SP version */
        c->line0 = true;
        char *sp = strchr(line, ' ');
        char *sp2 = sp ? strchr(sp + 1, ' ') : NULL;
        size_t pl = sp2 ? strcspn(sp + 1, "?# ") : 0; /* the path; the query is not needed */
        if (sp == NULL || sp2 == NULL || (size_t)(sp - line) >= sizeof(c->method) ||
            pl >= sizeof(c->path)) {
            c->bad = true; /* evhttp or the router refuses it */
            return;
        }
        memcpy(c->method, line, (size_t)(sp - line));
        c->method[sp - line] = '\0';
        memcpy(c->path, sp + 1, pl);
        c->path[pl] = '\0';
        return;
    }
    if (line[0] == ' ' || line[0] == '\t')
        return; /* a folded continuation: none of the headers the gate reads */
    char *colon = strchr(line, ':');
    if (colon == NULL)
        return;
    *colon = '\0';
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    size_t vl = strlen(v);
    while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
        v[--vl] = '\0';
    /* the first of each, as evhttp_find_header reads them */
    if (strcasecmp(line, "Authorization") == 0 && !c->has_auth) {
        c->has_auth = true;
        if (vl < sizeof(c->auth))
            memcpy(c->auth, v, vl + 1); /* a longer one is no token of ours */
    } else if (strcasecmp(line, "Content-Length") == 0 && !c->has_length) {
        c->has_length = true;
        if (nubo_parse_int(v, 0, INT64_MAX, &c->content_length, NULL) < 0)
            c->bad = true;
    } else if (strcasecmp(line, "Transfer-Encoding") == 0) {
        c->chunked = c->chunked || strcasecmp(v, "chunked") == 0;
    }
}

/* Header lines parsed as evhttp parses them (evbuffer_readln, CRLF or LF). */
static void conn_parse(struct ctl_conn *c)
{
    while (c->state == CONN_HEAD) {
        size_t n;
        cleanup_free char *line = evbuffer_readln(c->head, &n, EVBUFFER_EOL_CRLF);
        if (line == NULL) {
            if (c->head_bytes > CONN_HEAD_MAX) {
                c->bad = true; /* evhttp refuses headers this long */
                conn_decide(c);
            }
            return;
        }
        if (n == 0 && c->line0) {
            conn_decide(c);
            return;
        }
        if (n > 0)
            header_line(c, line);
    }
}

/* Copy the last n bytes of buf (what a read just added) into the request's header copy. */
static void head_take(struct ctl_conn *c, struct evbuffer *buf, size_t n)
{
    struct ctl_ctx *ctx = c->kind->ctx;
    if (c->head_bytes == 0 && n > 0 && !evtimer_pending(c->head_timer, NULL)) {
        struct timeval tv = {ctx->cfg.header_timeout_ms / 1000,
                             (ctx->cfg.header_timeout_ms % 1000) * 1000};
        evtimer_add(c->head_timer, &tv); /* a request's first byte starts its deadline */
    }
    size_t room = c->head_bytes > CONN_HEAD_MAX ? 0 : CONN_HEAD_MAX + 1 - c->head_bytes;
    size_t len = evbuffer_get_length(buf), take = n < room ? n : room;
    if (take > 0) {
        struct evbuffer_ptr at;
        evbuffer_ptr_set(buf, &at, len - n, EVBUFFER_PTR_SET);
        char chunk[4096];
        for (size_t done = 0; done < take;) {
            size_t k = take - done < sizeof(chunk) ? take - done : sizeof(chunk);
            ev_ssize_t got = evbuffer_copyout_from(buf, &at, chunk, k);
            if (got <= 0)
                break;
            evbuffer_add(c->head, chunk, (size_t)got);
            evbuffer_ptr_set(buf, &at, (size_t)got, EVBUFFER_PTR_ADD);
            done += (size_t)got;
        }
    }
    c->head_bytes += n;
}

/* Every change of the connection's input: a read added bytes evhttp has not parsed yet. */
static void conn_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct ctl_conn *c = arg;
    if (info->n_added == 0 || c->state != CONN_HEAD || !c->adopted)
        return;
    head_take(c, buf, info->n_added);
    if (!c->deferred)
        conn_parse(c);
}

static void head_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_conn *c = arg;
    struct ctl_ctx *ctx = c->kind->ctx;
    ctx->metrics.header_timeouts++;
    log_debug("connection from %s: no complete request headers within %lld ms; closed",
              c->peer[0] ? c->peer : "the unix socket", (long long)ctx->cfg.header_timeout_ms);
    close_now(c);
}

/* The connection as evhttp set it up: count it, refuse it past a cap, start its deadline. */
static void conn_adopt(struct ctl_conn *c)
{
    struct ctl_ctx *ctx = c->kind->ctx;
    struct ctl_conns *cs = ctx->conns;
    void *evcon = NULL;
    bufferevent_getcb(c->bev, NULL, NULL, NULL, &evcon);
    if (evcon == NULL) { /* evhttp gave it up while setting it up */
        evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
        bufferevent_decref(c->bev);
        conn_free(c);
        return;
    }
    bufferevent_decref(c->bev); /* evhttp holds it */
    c->evcon = evcon;
    c->adopted = true;
    snprintf(c->key, sizeof(c->key), "%p", evcon);
    ctl_map_put(&cs->by_evcon, c->key, c);
    evhttp_connection_set_closecb(c->evcon, conn_closed, c);
    int64_t per_peer = 0;
    if (c->kind->per_client) {
        char *addr = NULL;
        ev_uint16_t port = 0;
        evhttp_connection_get_peer(c->evcon, &addr, &port);
        snprintf(c->peer, sizeof(c->peer), "%s", addr ? addr : "?");
        int64_t *n = ctl_map_get(&cs->per_peer, c->peer);
        if (n == NULL) {
            n = xcalloc(1, sizeof(*n));
            ctl_map_put(&cs->per_peer, c->peer, n);
        }
        per_peer = ++*n;
    }
    c->counted = true;
    cs->open++;
    ctx->metrics.conns_open = (uint64_t)cs->open;
    const struct ctl_config *cfg = &ctx->cfg;
    if (cfg->max_connections > 0 && cs->open > cfg->max_connections) {
        ctx->metrics.conns_refused++;
        if (warn_now(ctx))
            log_warnx("connection from %s refused: %lld connections are open ([controller] "
                      "max_connections)",
                      c->peer[0] ? c->peer : "the unix socket", (long long)cs->open - 1);
        close_now(c);
        return;
    }
    if (cfg->max_connections_per_client > 0 && per_peer > cfg->max_connections_per_client) {
        ctx->metrics.conns_refused++;
        if (warn_now(ctx))
            log_warnx("connection from %s refused: it has %lld open ([controller] "
                      "max_connections_per_client)",
                      c->peer, (long long)per_peer - 1);
        close_now(c);
        return;
    }
    if (!ctl_conns_room(ctx))
        listeners_enable(ctx, false);
    struct timeval tv = {cfg->header_timeout_ms / 1000, (cfg->header_timeout_ms % 1000) * 1000};
    evtimer_add(c->head_timer, &tv); /* a new connection's first request is due */
}

static void conn_kick(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_conn *c = arg;
    if (!c->adopted) {
        conn_adopt(c);
        return;
    }
    c->deferred = false;
    conn_parse(c);
}

/* evhttp_set_bevcb: the connection's bufferevent (TLS or plain) with the guard on it. */
static struct bufferevent *conn_bev(struct event_base *base, void *arg)
{
    struct conn_kind *kind = arg;
    struct ctl_ctx *ctx = kind->ctx;
    struct bufferevent *bev =
        kind->tls ? ctl_tls_bev(ctx, base) : xcheck(bufferevent_socket_new(base, -1, 0), "conn");
    struct ctl_conn *c = xcalloc(1, sizeof(*c));
    c->kind = kind;
    c->bev = bev;
    c->head = xcheck(evbuffer_new(), "conn");
    c->kick = xcheck(event_new(base, -1, 0, conn_kick, c), "conn");
    c->head_timer = xcheck(evtimer_new(base, head_timeout, c), "conn");
    c->watch = xcheck(evbuffer_add_cb(bufferevent_get_input(bev), conn_input, c), "conn");
    head_reset(c);
    LIST_INSERT_HEAD(&conns_of(ctx)->all, c, link);
    /* evhttp sets the socket and its callbacks after this returns; the kick runs before any
     * read of it (active now, reads only after the next poll) */
    bufferevent_incref(bev);
    event_active(c->kick, EV_TIMEOUT, 1);
    return bev;
}

void ctl_conns_attach(struct ctl_ctx *ctx, struct evhttp *http, bool tls, bool per_client,
                      ctl_gate_fn gate)
{
    struct ctl_conns *cs = conns_of(ctx);
    if (cs->n_kinds >= sizeof(cs->kinds) / sizeof(cs->kinds[0]))
        abort(); /* one per listener: server.c has two */
    struct conn_kind *kind = &cs->kinds[cs->n_kinds++];
    *kind = (struct conn_kind){ctx, tls, per_client, gate};
    /* until the gate vouches for a request, evhttp reads little of its body */
    evhttp_set_max_body_size(http, CONN_ANON_BODY_MAX);
    evhttp_set_bevcb(http, conn_bev, kind);
}

/* The reply went out; the connection's next request starts with what is already buffered. */
static void request_done(struct evhttp_request *req, void *arg)
{
    struct ctl_conn *c = arg;
    if (c->state == CONN_REFUSE)
        return;
    c->state = CONN_HEAD;
    head_reset(c);
    evhttp_connection_set_max_body_size(c->evcon, CONN_ANON_BODY_MAX);
    struct evbuffer *in = bufferevent_get_input(c->bev);
    size_t n = evbuffer_get_length(in);
    if (n == 0)
        return; /* idle keep-alive: evhttp's idle timeout, then the next first byte */
    head_take(c, in, n);
    /* decide once evhttp set the connection up for it: it resets the callbacks after this */
    c->deferred = true;
    event_active(c->kick, EV_TIMEOUT, 1);
}

void ctl_conns_request(struct ctl_ctx *ctx, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    char key[32];
    snprintf(key, sizeof(key), "%p", (void *)evcon);
    struct ctl_conn *c = ctx->conns && evcon ? ctl_map_get(&ctx->conns->by_evcon, key) : NULL;
    if (c == NULL)
        return;
    /* routed: never closed for its headers' sake while a handler holds the request */
    c->state = CONN_BUSY;
    evtimer_del(c->head_timer);
    evhttp_request_set_on_complete_cb(req, request_done, c);
}

void ctl_conns_free(struct ctl_ctx *ctx)
{
    struct ctl_conns *cs = ctx->conns;
    if (cs == NULL)
        return;
    /* evhttp_free closed the connections it had; these never reached it */
    while (!LIST_EMPTY(&cs->all)) {
        struct ctl_conn *c = LIST_FIRST(&cs->all);
        if (!c->adopted) {
            evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->watch);
            bufferevent_decref(c->bev);
        }
        conn_free(c);
    }
    ctl_map_clear(&cs->by_evcon);
    ctl_map_foreach(&cs->per_peer, e) free(e->val);
    ctl_map_clear(&cs->per_peer);
    free(cs);
    ctx->conns = NULL;
}
