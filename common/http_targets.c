/* Controller lists (http.h, issue 17): which of several controllers a call goes to, which 307s
 * it follows (only to places the client was told to trust: decision 10), and when it moves on
 * to the next controller. Every exchange still goes through nu_http_do. */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cleanup.h"

/* scheme://host[:port] of a URL, lower-cased, the port made explicit. */
struct origin {
    char scheme[8];
    char host[NU_HTTP_TARGET_URL_MAX];
    long port;
};

static bool origin_parse(const char *url, struct origin *o)
{
    const char *rest;
    if (strncasecmp(url, "http://", 7) == 0) {
        snprintf(o->scheme, sizeof(o->scheme), "http");
        o->port = 80;
        rest = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        snprintf(o->scheme, sizeof(o->scheme), "https");
        o->port = 443;
        rest = url + 8;
    } else {
        return false;
    }
    size_t al = strcspn(rest, "/?#");
    /* user info would let "https://listed@elsewhere" pass for a listed host */
    if (al == 0 || al >= sizeof(o->host) || memchr(rest, '@', al))
        return false;
    const char *end = rest + al, *port = NULL;
    size_t hl;
    if (rest[0] == '[') {
        const char *rb = memchr(rest, ']', al);
        if (!rb || (rb + 1 < end && rb[1] != ':'))
            return false;
        hl = (size_t)(rb - rest) + 1;
        port = rb + 1 < end ? rb + 1 : NULL;
    } else {
        port = memchr(rest, ':', al);
        hl = port ? (size_t)(port - rest) : al;
    }
    if (hl == 0 || (rest[0] == '[' && hl < 3))
        return false;
    for (size_t i = 0; i < hl; i++)
        o->host[i] = (char)tolower((unsigned char)rest[i]);
    o->host[hl] = '\0';
    if (port) {
        const char *p = port + 1;
        if (p == end)
            return false;
        long v = 0;
        for (; p < end; p++) {
            if (!isdigit((unsigned char)*p))
                return false;
            v = v * 10 + (*p - '0');
            if (v > 65535)
                return false;
        }
        if (v == 0)
            return false;
        o->port = v;
    }
    return true;
}

static bool origin_eq(const struct origin *a, const struct origin *b)
{
    return strcmp(a->scheme, b->scheme) == 0 && strcmp(a->host, b->host) == 0 && a->port == b->port;
}

/* The next item of a comma-separated list, blanks around it dropped: its start and length,
 * or false at the end. */
static bool list_next(const char **p, const char **item, size_t *len)
{
    const char *s = *p;
    if (!s || !*s)
        return false;
    size_t n = strcspn(s, ",");
    *p = s[n] ? s + n + 1 : s + n;
    while (n && isspace((unsigned char)*s)) {
        s++;
        n--;
    }
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    *item = s;
    *len = n;
    return true;
}

int nu_http_targets_parse(struct nu_http_targets *ts, const char *urls, const char *sockets,
                          struct nubo_err *err)
{
    memset(ts, 0, sizeof(*ts));
    const char *p = urls, *item;
    size_t len;
    while (list_next(&p, &item, &len)) {
        if (len == 0)
            return nubo_error(err, 0, "controller URL list '%.200s': an empty entry", urls);
        if (ts->n == NU_HTTP_TARGETS_MAX)
            return nubo_error(err, 0, "controller URL list '%.200s': more than %d URLs", urls,
                              NU_HTTP_TARGETS_MAX);
        while (len && item[len - 1] == '/')
            len--;
        struct nu_http_target *t = &ts->t[ts->n];
        if (len >= sizeof(t->url))
            return nubo_error(err, 0, "controller URL '%.60s…': longer than %d bytes", item,
                              NU_HTTP_TARGET_URL_MAX - 1);
        memcpy(t->url, item, len);
        t->url[len] = '\0';
        struct origin o;
        if (!origin_parse(t->url, &o))
            return nubo_error(err, 0,
                              "controller URL '%s': expected http://host[:port] or "
                              "https://host[:port], without user info",
                              t->url);
        ts->n++;
    }
    if (ts->n == 0)
        return nubo_error(err, 0, "no controller URL given");
    size_t n_sock = 0;
    p = sockets;
    while (list_next(&p, &item, &len)) {
        if (len == 0 || len >= sizeof(ts->t[0].unix_path))
            return nubo_error(err, 0,
                              "controller socket list '%.200s': an empty or too long "
                              "entry (at most 107 bytes each)",
                              sockets);
        if (n_sock == NU_HTTP_TARGETS_MAX)
            return nubo_error(err, 0, "controller socket list: more than %d sockets",
                              NU_HTTP_TARGETS_MAX);
        if (ts->n == 1 && n_sock > 0) /* one URL, several sockets: each its own controller */
            ts->t[n_sock] = ts->t[0];
        memcpy(ts->t[n_sock].unix_path, item, len);
        ts->t[n_sock].unix_path[len] = '\0';
        n_sock++;
    }
    if (n_sock > 1 && ts->n == 1)
        ts->n = n_sock;
    else if (n_sock && n_sock != ts->n)
        return nubo_error(err, 0,
                          "%zu controller URL(s) but %zu socket(s): give one socket per "
                          "URL, or one URL for all sockets",
                          ts->n, n_sock);
    return 0;
}

const struct nu_http_target *nu_http_targets_current(const struct nu_http_targets *ts)
{
    int i = __atomic_load_n(&ts->current, __ATOMIC_RELAXED);
    return &ts->t[i >= 0 && (size_t)i < ts->n ? i : 0];
}

int nu_http_redirect_target(const struct nu_http_targets *ts, const char *location,
                            const char *ca_file, bool over_socket)
{
    struct origin lo, o;
    if (!origin_parse(location, &lo))
        return NU_HTTP_REDIRECT_REFUSED;
    for (size_t i = 0; i < ts->n; i++)
        if (origin_parse(ts->t[i].url, &o) && origin_eq(&lo, &o))
            return (int)i;
    if (strcmp(lo.scheme, "https") == 0 && ca_file && ca_file[0] && !over_socket)
        return NU_HTTP_REDIRECT_DIRECT;
    return NU_HTTP_REDIRECT_REFUSED;
}

static void set_current(struct nu_http_targets *ts, int idx)
{
    if (__atomic_exchange_n(&ts->current, idx, __ATOMIC_RELAXED) != idx)
        __atomic_add_fetch(&ts->moves, 1, __ATOMIC_RELAXED);
}

static int next_untried(const struct nu_http_targets *ts, int from, unsigned tried)
{
    for (size_t i = 1; i <= ts->n; i++) {
        int k = (int)(((size_t)from + i) % ts->n);
        if (!(tried & (1u << k)))
            return k;
    }
    return -1;
}

/* One attempt's view of the caller's hooks, plus the give-up rule for parked GETs. */
struct attempt {
    const struct nu_http_req *rq;
    struct nu_http_targets *ts;
    int idx; /* -1: a redirect outside the list */
    unsigned moves;
    bool idempotent;
};

static bool attempt_abort(void *ud)
{
    const struct attempt *a = ud;
    if (a->rq->abort_fn && a->rq->abort_fn(a->rq->opaque))
        return true;
    /* another call found this controller gone (or not leading): a long poll here would wait
     * for nothing */
    return a->idempotent && a->idx >= 0 &&
           __atomic_load_n(&a->ts->moves, __ATOMIC_RELAXED) != a->moves &&
           __atomic_load_n(&a->ts->current, __ATOMIC_RELAXED) != a->idx;
}

static bool attempt_sink(void *ud, const char *data, size_t len)
{
    const struct attempt *a = ud;
    return a->rq->sink(a->rq->opaque, data, len);
}

static void attempt_progress(void *ud, uint64_t bytes)
{
    const struct attempt *a = ud;
    a->rq->progress(a->rq->opaque, bytes);
}

static char *join_url(const struct nu_http_target *t, const char *path)
{
    char *u;
    return asprintf(&u, "%s%s", t->url, path) < 0 ? NULL : u;
}

int nu_http_targets_do(struct nu_http_targets *ts, const struct nu_http_req *rq,
                       struct nu_http_resp *rs, struct nubo_err *err)
{
    const char *method = rq->method ? rq->method : "GET";
    memset(rs, 0, sizeof(*rs));
    rs->content_length = -1;
    if (ts->n == 0) {
        rs->fail = NU_HTTP_FAILED;
        snprintf(rs->why, sizeof(rs->why), "no controller URL configured");
        return nubo_error(err, 0, "%s %s: %s", method, rq->url, rs->why);
    }
    bool idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int start = __atomic_load_n(&ts->current, __ATOMIC_RELAXED);
    if (start < 0 || (size_t)start >= ts->n)
        start = 0;
    int idx = start, redirects = 0;
    unsigned tried = 0;
    cleanup_free char *url = join_url(&ts->t[idx], rq->url);
    struct nu_http_resp held = {0}; /* a 503 kept while other controllers are asked */
    bool have_held = false;
    char refused[160] = "";
    for (;;) {
        if (!url) {
            nu_http_resp_free(&held);
            rs->fail = NU_HTTP_FAILED;
            return nubo_error(err, ENOMEM, "%s %s", method, rq->url);
        }
        if (idx >= 0)
            tried |= 1u << idx;
        struct attempt a = {.rq = rq,
                            .ts = ts,
                            .idx = idx,
                            .moves = __atomic_load_n(&ts->moves, __ATOMIC_RELAXED),
                            .idempotent = idempotent};
        struct nu_http_req r = *rq;
        r.url = url;
        r.unix_path = idx >= 0 ? ts->t[idx].unix_path : NULL;
        r.follow_redirects = false;
        r.abort_fn = attempt_abort;
        r.sink = rq->sink ? attempt_sink : NULL;
        r.progress = rq->progress ? attempt_progress : NULL;
        r.opaque = &a;
        nu_http_resp_free(rs);
        int rc = nu_http_do(&r, rs, err);
        bool over_socket = r.unix_path && r.unix_path[0];
        int next;
        if (rc == 0 && rs->status == 307 && rs->location[0]) {
            int k = redirects < NU_HTTP_REDIRECTS_MAX
                        ? nu_http_redirect_target(ts, rs->location, rq->ca_file, over_socket)
                        : NU_HTTP_REDIRECT_REFUSED;
            if (k == NU_HTTP_REDIRECT_DIRECT || (k >= 0 && !(tried & (1u << k)))) {
                redirects++;
                idx = k >= 0 ? k : -1;
                free(url);
                url = strdup(rs->location);
                continue;
            }
            /* a follower whose leader this client does not follow to (not listed, already
             * asked, or too many hops): the next listed controller may be the leader */
            snprintf(refused, sizeof(refused), "%.60s redirects to %.80s", r.url, rs->location);
            next = next_untried(ts, idx >= 0 ? idx : start, tried);
            if (next < 0) {
                if (have_held)
                    break;
                nu_http_resp_free(&held);
                rs->fail = NU_HTTP_FAILED;
                snprintf(rs->why, sizeof(rs->why), "no listed controller leads (%s)", refused);
                return nubo_error_http(err, 503, "%s %s: %s", method, rq->url, rs->why);
            }
        } else if (rc == 0 && rs->status == 503) {
            /* a follower that knows no leader, or a controller shutting down */
            next = next_untried(ts, idx >= 0 ? idx : start, tried);
            if (next < 0) {
                nu_http_resp_free(&held);
                return 0;
            }
            nu_http_resp_free(&held);
            held = *rs;
            have_held = true;
            memset(rs, 0, sizeof(*rs));
        } else if (rc < 0 && (rs->fail == NU_HTTP_UNREACHABLE ||
                              (rs->fail == NU_HTTP_TRANSIENT && idempotent))) {
            next = next_untried(ts, idx >= 0 ? idx : start, tried);
            if (next < 0) {
                if (have_held)
                    break;
                if (ts->n > 1)
                    nubo_error_wrap(err, "none of the %zu controllers answered; the last", ts->n);
                return -1;
            }
        } else {
            nu_http_resp_free(&held);
            if (rc == 0 && idx >= 0)
                set_current(ts, idx);
            else if (rc < 0 && rs->fail == NU_HTTP_TRANSIENT && idx >= 0 && ts->n > 1)
                /* sent, no answer: not sent again here (it may have been done), but the
                 * caller's retry starts with another controller */
                set_current(ts, (int)(((size_t)idx + 1) % ts->n));
            return rc;
        }
        idx = next;
        free(url);
        url = join_url(&ts->t[idx], rq->url);
    }
    /* every controller was asked: the last 503 is the answer */
    nu_http_resp_free(rs);
    *rs = held;
    nubo_err_clear(err);
    return 0;
}
