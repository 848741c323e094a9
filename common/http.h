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
    NU_HTTP_UNREACHABLE, /* cannot resolve or connect */
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

/* Process-wide setup and teardown of the HTTP library (once, before any thread runs). */
void nu_http_global_init(void);
void nu_http_global_cleanup(void);

#endif
