/* The one HTTP client of every nubo binary (libcurl underneath): one bounded exchange per call,
 * over TCP or a unix socket, with bearer or basic auth, an abort hook for long polls and
 * shutdown, and errors that say what failed, for which URL and why. Blocking; callers inside
 * an event loop run it on a worker thread. */
#ifndef NUBO_HTTP_H
#define NUBO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"

#define NU_HTTP_BODY_DEFAULT_MAX (16u << 20) /* answer bound when the caller names none */
#define NU_HTTP_HEADERS_MAX 8                /* extra request header lines */
#define NU_HTTP_WHY_MAX 256

/* Why an exchange got no complete answer (resp.fail). */
enum nu_http_fail {
    NU_HTTP_OK = 0,
    NU_HTTP_UNREACHABLE, /* cannot resolve or connect (or timed out before sending) */
    NU_HTTP_TRANSIENT,   /* timed out, connection dropped, nothing answered: worth a retry */
    NU_HTTP_TOO_BIG,     /* the answer passed max_body */
    NU_HTTP_TRUNCATED,   /* fewer bytes than Content-Length */
    NU_HTTP_ABORTED,     /* abort_fn said stop */
    NU_HTTP_SINK,        /* the sink refused the data (its own error says why) */
    NU_HTTP_FAILED,      /* anything else (TLS, protocol, out of memory) */
};

/* Receives the body of a 2xx answer instead of memory; returns false to stop the transfer.
 * Non-2xx bodies always go to memory so callers can quote the server's error. */
typedef bool (*nu_http_sink_fn)(void *opaque, const char *data, size_t len);
/* Polled about once a second while the exchange runs; true aborts it. */
typedef bool (*nu_http_abort_fn)(void *opaque);
/* Bytes moved so far (sent while uploading, else received). */
typedef void (*nu_http_progress_fn)(void *opaque, uint64_t bytes);

struct nu_http_req {
    const char *method;    /* NULL = GET; HEAD asks for headers only */
    const char *url;       /* absolute http:// or https:// */
    const char *unix_path; /* non-empty: the HTTP goes over this socket (URL host = Host) */
    const char *bearer;    /* non-empty: Authorization: Bearer <bearer> */
    const char *user;      /* non-empty: basic auth with password */
    const char *password;
    const char *headers[NU_HTTP_HEADERS_MAX]; /* "Name: value" lines, NULL-ended */
    const char *user_agent;                   /* NULL = "nubo/0.1" */
    /* https: trust this CA bundle (PEM) instead of the system's; the peer's certificate and
     * name are verified either way. NULL or "" = the system's. */
    const char *ca_file;
    /* Request body: body_len bytes from body, or from body_fd at body_off when body_fd >= 0.
     * PUT, POST and PATCH without one send an empty body. */
    const void *body;
    size_t body_len;
    int body_fd; /* -1 = none; set by nu_http_req_init */
    off_t body_off;
    long connect_timeout_ms; /* 0 = 10 s */
    long timeout_ms;         /* whole exchange; 0 = none (then set stall_s) */
    long stall_s;            /* > 0: abort when under 1 B/s for this long */
    bool follow_redirects;   /* up to 5, http and https only */
    size_t max_body;         /* answer kept in memory; 0 = NU_HTTP_BODY_DEFAULT_MAX */
    nu_http_sink_fn sink;
    nu_http_abort_fn abort_fn;
    nu_http_progress_fn progress;
    void *opaque; /* for sink, abort_fn and progress */
};

struct nu_http_resp {
    long status;         /* of the last answer; 0 when none came */
    char *body;          /* malloc'd, NUL-terminated (NULL when empty or sunk) */
    size_t len;          /* bytes in body */
    uint64_t body_bytes; /* bytes of the answer's body, sunk or kept */
    long long content_length; /* -1 = not sent */
    char location[2048];
    char content_type[128]; /* without parameters */
    char docker_digest[80];
    char www_authenticate[512];
    enum nu_http_fail fail;
    char why[NU_HTTP_WHY_MAX]; /* transport error text, "" when fail == NU_HTTP_OK */
};

void nu_http_req_init(struct nu_http_req *rq, const char *method, const char *url);
/* Appends one header line; false when the table is full. */
bool nu_http_req_header(struct nu_http_req *rq, const char *line);

/* One exchange. Returns 0 when an answer came (any status: the caller judges it) and -1 when
 * none did, with resp->fail, resp->why and err set ("GET <url>: <why>"). resp must be
 * released with nu_http_resp_free either way. */
int nu_http_do(const struct nu_http_req *rq, struct nu_http_resp *resp, struct nubo_err *err);
void nu_http_resp_free(struct nu_http_resp *resp);

/* ---- Controller lists (issue 17): N controllers share one store, one of them leads. A
 * follower answers 307 with the leader's advertise_url + the same path (method and body to be
 * kept), or 503 while it knows no leader. Clients name every controller; calls go to the one
 * that answered last, follow a follower's 307 to a trusted place, and move on to the next one
 * when a controller cannot be reached or answers 503. Implemented in http_targets.c. */
#define NU_HTTP_TARGETS_MAX 8      /* controllers in one list */
#define NU_HTTP_TARGET_URL_MAX 256 /* one base URL */
#define NU_HTTP_REDIRECTS_MAX 2    /* a follower's 307, and one more while leadership moves */

struct nu_http_target {
    char url[NU_HTTP_TARGET_URL_MAX]; /* base URL, without a trailing '/' */
    char unix_path[108];              /* non-empty: HTTP over this socket (url's host = Host) */
};

struct nu_http_targets {
    struct nu_http_target t[NU_HTTP_TARGETS_MAX];
    size_t n;
    /* Shared by the threads that call: read and written with atomics only. */
    int current;    /* the one that answered last: the next call goes there first */
    unsigned moves; /* bumped when current changes: a GET parked elsewhere gives up */
};

/* "https://a:7060, https://b:7060" (commas, blanks around them ignored). sockets, when not
 * empty, is a list of unix sockets: one per URL, or several for a single URL (each with that
 * URL as Host). Every URL is http:// or https:// without user info; at most
 * NU_HTTP_TARGETS_MAX. */
int nu_http_targets_parse(struct nu_http_targets *ts, const char *urls, const char *sockets,
                          struct nubo_err *err);
/* The controller calls go to first now (for derived URLs and messages). */
const struct nu_http_target *nu_http_targets_current(const struct nu_http_targets *ts);

/* What a 307 from a controller may lead to (decision 10: a redirect must not carry the token to
 * a host the client was not told to trust): the index of the listed controller whose origin
 * (scheme, host, port) the Location has; NU_HTTP_REDIRECT_DIRECT when it names no listed one
 * but is https, the client trusts a private CA (ca_file: the peer is verified against it, and
 * only the cluster's own services hold certificates from it) and the answer did not come over
 * a unix socket (such a client may not reach TCP at all); NU_HTTP_REDIRECT_REFUSED otherwise,
 * plain http included (then the client tries the next listed controller instead). */
#define NU_HTTP_REDIRECT_DIRECT (-1)
#define NU_HTTP_REDIRECT_REFUSED (-2)
int nu_http_redirect_target(const struct nu_http_targets *ts, const char *location,
                            const char *ca_file, bool over_socket);

/* One exchange with whichever controller answers for the list: rq->url is the path and query
 * ("/v1/instances?limit=5"), appended to a controller's base URL; rq->unix_path is taken from
 * the list. Tries each listed controller at most once: on to the next one when it cannot be
 * reached, answers 503, or (GET and HEAD only) drops the exchange; a POST that got no answer is
 * not sent again (the caller decides), but the next call starts with the next controller. A GET
 * still waiting on a controller that is no longer the current one gives up (its caller asks
 * again, at the current one). Returns like nu_http_do; when every controller answered 503 (or
 * failed), the last 503 is the answer. */
int nu_http_targets_do(struct nu_http_targets *ts, const struct nu_http_req *rq,
                       struct nu_http_resp *resp, struct nubo_err *err);

/* Process-wide setup and teardown of the HTTP library (once, before any thread runs). */
void nu_http_global_init(void);
void nu_http_global_cleanup(void);

#endif
