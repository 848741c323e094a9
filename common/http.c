/* The one HTTP client (http.h): the only file in the tree that drives libcurl. Every exchange
 * is bounded (answer size, connect and total or stall timeouts), restricted to http/https, and
 * reports its failure as "METHOD URL: why" with a kind the caller can act on. */
#include "http.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleanup.h"

struct xfer {
    const struct nu_http_req *rq;
    struct nu_http_resp *rs;
    size_t max, cap;
    size_t sent;
    bool too_big, sink_refused, read_failed;
};

static bool status_ok(long s)
{
    return s >= 200 && s < 300;
}

static size_t write_cb(char *p, size_t size, size_t nm, void *ud)
{
    struct xfer *x = ud;
    struct nu_http_resp *rs = x->rs;
    size_t n = size * nm;
    if (x->rq->sink && status_ok(rs->status)) {
        if (!x->rq->sink(x->rq->opaque, p, n)) {
            x->sink_refused = true;
            return 0;
        }
        rs->body_bytes += n;
        return n;
    }
    if (rs->len + n > x->max) {
        x->too_big = true;
        return 0;
    }
    if (rs->len + n + 1 > x->cap) {
        size_t cap = x->cap ? x->cap : 4096;
        while (cap < rs->len + n + 1)
            cap *= 2;
        char *d = realloc(rs->body, cap);
        if (!d)
            return 0;
        rs->body = d;
        x->cap = cap;
    }
    memcpy(rs->body + rs->len, p, n);
    rs->len += n;
    rs->body[rs->len] = '\0';
    rs->body_bytes += n;
    return n;
}

static void header_value(char *dst, size_t dsize, const char *v, size_t vlen)
{
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' '))
        vlen--;
    if (vlen >= dsize)
        vlen = dsize - 1;
    memcpy(dst, v, vlen);
    dst[vlen] = '\0';
}

static bool header_is(const char *buf, size_t kl, const char *name)
{
    return kl == strlen(name) && strncasecmp(buf, name, kl) == 0;
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    struct nu_http_resp *rs = x->rs;
    size_t n = size * nitems;
    if (n >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        /* A new answer (after 100-continue or a redirect) replaces what the last one said. */
        rs->location[0] = rs->content_type[0] = rs->docker_digest[0] = '\0';
        rs->www_authenticate[0] = '\0';
        rs->content_length = -1;
        const char *sp = memchr(buf, ' ', n);
        rs->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        return n;
    }
    const char *colon = memchr(buf, ':', n);
    if (!colon)
        return n;
    size_t kl = (size_t)(colon - buf);
    const char *v = colon + 1;
    size_t vl = n - kl - 1;
    if (header_is(buf, kl, "Location")) {
        header_value(rs->location, sizeof(rs->location), v, vl);
    } else if (header_is(buf, kl, "Content-Type")) {
        header_value(rs->content_type, sizeof(rs->content_type), v, vl);
        char *semi = strchr(rs->content_type, ';');
        if (semi)
            *semi = '\0';
    } else if (header_is(buf, kl, "Docker-Content-Digest")) {
        header_value(rs->docker_digest, sizeof(rs->docker_digest), v, vl);
    } else if (header_is(buf, kl, "WWW-Authenticate")) {
        header_value(rs->www_authenticate, sizeof(rs->www_authenticate), v, vl);
    } else if (header_is(buf, kl, "Content-Length")) {
        char tmp[32];
        header_value(tmp, sizeof(tmp), v, vl);
        rs->content_length = strtoll(tmp, NULL, 10);
    }
    return n;
}

static size_t read_cb(char *p, size_t size, size_t nitems, void *ud)
{
    struct xfer *x = ud;
    const struct nu_http_req *rq = x->rq;
    size_t want = size * nitems;
    if (want > rq->body_len - x->sent)
        want = rq->body_len - x->sent;
    if (want == 0)
        return 0;
    if (rq->body_fd >= 0) {
        ssize_t r;
        do {
            r = pread(rq->body_fd, p, want, rq->body_off + (off_t)x->sent);
        } while (r < 0 && errno == EINTR);
        if (r <= 0) {
            x->read_failed = true;
            return CURL_READFUNC_ABORT;
        }
        want = (size_t)r;
    } else {
        memcpy(p, (const char *)rq->body + x->sent, want);
    }
    x->sent += want;
    return want;
}

/* A redirect or an auth round may send the body again from the start. */
static int seek_cb(void *ud, curl_off_t offset, int origin)
{
    struct xfer *x = ud;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->rq->body_len)
        return CURL_SEEKFUNC_CANTSEEK;
    x->sent = (size_t)offset;
    return CURL_SEEKFUNC_OK;
}

static int xferinfo_cb(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    struct xfer *x = ud;
    const struct nu_http_req *rq = x->rq;
    if (rq->abort_fn && rq->abort_fn(rq->opaque))
        return 1;
    if (rq->progress)
        rq->progress(rq->opaque, (uint64_t)(ulnow > 0 ? ulnow : dlnow));
    return 0;
}

static enum nu_http_fail classify(CURLcode rc, const struct xfer *x)
{
    if (x->too_big)
        return NU_HTTP_TOO_BIG;
    if (x->sink_refused)
        return NU_HTTP_SINK;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
        return NU_HTTP_UNREACHABLE;
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
        return NU_HTTP_TRANSIENT;
    case CURLE_PARTIAL_FILE:
        return NU_HTTP_TRUNCATED;
    case CURLE_ABORTED_BY_CALLBACK:
        return NU_HTTP_ABORTED;
    default:
        return NU_HTTP_FAILED;
    }
}

static void describe(CURLcode rc, const struct xfer *x, const char *cerr)
{
    struct nu_http_resp *rs = x->rs;
    switch (rs->fail) {
    case NU_HTTP_TOO_BIG:
        snprintf(rs->why, sizeof(rs->why), "answer larger than %zu bytes", x->max);
        break;
    case NU_HTTP_SINK:
        snprintf(rs->why, sizeof(rs->why), "the receiver refused the data");
        break;
    case NU_HTTP_ABORTED:
        snprintf(rs->why, sizeof(rs->why), "aborted");
        break;
    case NU_HTTP_TRUNCATED:
        snprintf(rs->why, sizeof(rs->why), "truncated answer (got %llu of %lld bytes)",
                 (unsigned long long)rs->body_bytes, rs->content_length);
        break;
    default:
        if (x->read_failed)
            snprintf(rs->why, sizeof(rs->why), "cannot read the request body");
        else
            snprintf(rs->why, sizeof(rs->why), "%s", cerr[0] ? cerr : curl_easy_strerror(rc));
    }
}

static int fail_status(enum nu_http_fail f)
{
    switch (f) {
    case NU_HTTP_UNREACHABLE:
        return 503;
    case NU_HTTP_TRANSIENT:
        return 504;
    case NU_HTTP_TOO_BIG:
        return 413;
    default:
        return 502;
    }
}

void nu_http_req_init(struct nu_http_req *rq, const char *method, const char *url)
{
    memset(rq, 0, sizeof(*rq));
    rq->method = method;
    rq->url = url;
    rq->body_fd = -1;
}

bool nu_http_req_header(struct nu_http_req *rq, const char *line)
{
    for (size_t i = 0; i + 1 < NU_HTTP_HEADERS_MAX; i++)
        if (!rq->headers[i]) {
            rq->headers[i] = line;
            return true;
        }
    return false;
}

void nu_http_resp_free(struct nu_http_resp *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
}

static void curl_cleanup(CURL **c)
{
    if (*c)
        curl_easy_cleanup(*c);
}

static void slist_cleanup(struct curl_slist **l)
{
    curl_slist_free_all(*l);
}

int nu_http_do(const struct nu_http_req *rq, struct nu_http_resp *rs, struct nubo_err *err)
{
    const char *method = rq->method ? rq->method : "GET";
    memset(rs, 0, sizeof(*rs));
    rs->content_length = -1;
    struct xfer x = {.rq = rq, .rs = rs, .max = rq->max_body ? rq->max_body
                                                             : NU_HTTP_BODY_DEFAULT_MAX};
    __attribute__((cleanup(curl_cleanup))) CURL *c = curl_easy_init();
    __attribute__((cleanup(slist_cleanup))) struct curl_slist *h = NULL;
    cleanup_free char *auth = NULL;
    if (!c) {
        rs->fail = NU_HTTP_FAILED;
        snprintf(rs->why, sizeof(rs->why), "cannot start an HTTP client");
        return nubo_error(err, ENOMEM, "%s %s: %s", method, rq->url, rs->why);
    }
    if (rq->bearer && rq->bearer[0]) {
        if (asprintf(&auth, "Authorization: Bearer %s", rq->bearer) < 0) {
            auth = NULL;
            return nubo_error(err, ENOMEM, "%s %s", method, rq->url);
        }
        h = curl_slist_append(h, auth);
    }
    for (size_t i = 0; i < NU_HTTP_HEADERS_MAX && rq->headers[i]; i++)
        h = curl_slist_append(h, rq->headers[i]);
    /* Bodies go at once: no 100-continue round trip (evhttp and the registry answer either). */
    h = curl_slist_append(h, "Expect:");

    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, rq->url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_USERAGENT, rq->user_agent ? rq->user_agent : "nubo/0.1");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, rq->follow_redirects ? 1L : 0L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     rq->connect_timeout_ms > 0 ? rq->connect_timeout_ms : 10000L);
    if (rq->timeout_ms > 0)
        curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, rq->timeout_ms);
    if (rq->stall_s > 0) {
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, rq->stall_s);
    }
    if (rq->unix_path && rq->unix_path[0])
        curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, rq->unix_path);
    if (rq->ca_file && rq->ca_file[0])
        curl_easy_setopt(c, CURLOPT_CAINFO, rq->ca_file);
    if (rq->user && rq->user[0]) {
        curl_easy_setopt(c, CURLOPT_USERNAME, rq->user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, rq->password ? rq->password : "");
        curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    }
    bool sends = rq->body || rq->body_fd >= 0 || strcmp(method, "PUT") == 0 ||
                 strcmp(method, "POST") == 0 || strcmp(method, "PATCH") == 0;
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (sends) {
        curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(c, CURLOPT_READDATA, &x);
        curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(c, CURLOPT_SEEKDATA, &x);
        curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body_len);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &x);
    if (rq->abort_fn || rq->progress) {
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, xferinfo_cb);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    }
    CURLcode rc = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code)
        rs->status = code;
    if (rc == CURLE_OK)
        return 0;
    rs->fail = classify(rc, &x);
    long sent = 0;
    curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &sent);
    /* A timeout before any of the request went out is a peer that cannot be reached (a lost
     * machine): the request can go elsewhere, it was not done here. */
    if (rs->fail == NU_HTTP_TRANSIENT && rc == CURLE_OPERATION_TIMEDOUT && sent == 0)
        rs->fail = NU_HTTP_UNREACHABLE;
    describe(rc, &x, cerr);
    return nubo_error_http(err, fail_status(rs->fail), "%s %s%s%s: %s", method, rq->url,
                           rq->unix_path && rq->unix_path[0] ? " via " : "",
                           rq->unix_path ? rq->unix_path : "", rs->why);
}

void nu_http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void nu_http_global_cleanup(void)
{
    curl_global_cleanup();
}
