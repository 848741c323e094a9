/* common/http.c against a real HTTP server (libevent evhttp in a child process, on loopback
 * TCP and on a unix socket): bodies both ways, bounds, headers, sinks, abort and error text.
 * And common/http_targets.c: controller lists, their parsing, which 307s are followed, and
 * failover past dead controllers, followers (307) and 503s, against more listeners in the same
 * child: a follower redirecting to the server, one redirecting to an unlisted host (which counts
 * what reaches it), and one answering 503. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http.h"

#define BIG_BYTES 100000

static pid_t g_server = -1;
static int g_port;
static int g_follower_port, g_astray_port, g_unavail_port, g_evil_port, g_dead_port;
static char g_sock[108];
static char g_dir[64];

/* /echo: "METHOD|Authorization|X-Test|body"; /big: BIG_BYTES of 'x'; /missing: 404 with a
 * JSON error; /headers: the registry's headers; /hold: never answers. */
static void on_request(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *out = evbuffer_new();
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evkeyvalq *oh = evhttp_request_get_output_headers(req);
    if (strcmp(uri, "/hold") == 0) {
        evbuffer_free(out);
        return;
    }
    if (strcmp(uri, "/big") == 0) {
        for (int i = 0; i < BIG_BYTES / 1000; i++)
            evbuffer_add_printf(out, "%01000d", 0);
        evhttp_send_reply(req, 200, "OK", out);
    } else if (strcmp(uri, "/missing") == 0) {
        evbuffer_add_printf(out, "{\"errors\":[{\"code\":\"NOPE\"}]}");
        evhttp_send_reply(req, 404, "Not Found", out);
    } else if (strcmp(uri, "/headers") == 0) {
        evhttp_add_header(oh, "Location", "/v2/acme/app/blobs/uploads/abc?_state=1");
        evhttp_add_header(oh, "Docker-Content-Digest", "sha256:00ff");
        evhttp_add_header(oh, "WWW-Authenticate", "Bearer realm=\"http://x/token\"");
        evhttp_add_header(oh, "Content-Type", "application/json; charset=utf-8");
        evbuffer_add_printf(out, "{}");
        evhttp_send_reply(req, 202, "Accepted", out);
    } else {
        const char *m = "OTHER";
        switch (evhttp_request_get_command(req)) {
        case EVHTTP_REQ_GET:
            m = "GET";
            break;
        case EVHTTP_REQ_POST:
            m = "POST";
            break;
        case EVHTTP_REQ_PUT:
            m = "PUT";
            break;
        case EVHTTP_REQ_DELETE:
            m = "DELETE";
            break;
        default:
            break;
        }
        const char *auth = evhttp_find_header(in, "Authorization");
        const char *xt = evhttp_find_header(in, "X-Test");
        evbuffer_add_printf(out, "%s|%s|%s|", m, auth ? auth : "", xt ? xt : "");
        evbuffer_add_buffer(out, evhttp_request_get_input_buffer(req));
        evhttp_send_reply(req, 200, "OK", out);
    }
    evbuffer_free(out);
}

/* A follower: 307 to where arg says, same path and query. */
static void on_follower(struct evhttp_request *req, void *arg)
{
    const int *to = arg;
    char loc[512];
    snprintf(loc, sizeof(loc), "http://127.0.0.1:%d%s", *to, evhttp_request_get_uri(req));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
    evhttp_send_reply(req, 307, "Temporary Redirect", NULL);
}

static void on_unavail(struct evhttp_request *req, void *arg)
{
    (void)arg;
    struct evbuffer *out = evbuffer_new();
    evbuffer_add_printf(out, "{\"status\":\"error\",\"message\":\"no leader\"}");
    evhttp_send_reply(req, 503, "Service Unavailable", out);
    evbuffer_free(out);
}

/* An unlisted host: every request it gets (and the token it carried) lands in a file. */
static void on_evil(struct evhttp_request *req, void *arg)
{
    (void)arg;
    char path[128];
    snprintf(path, sizeof(path), "%s/evil.log", g_dir);
    FILE *f = fopen(path, "a");
    const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (f) {
        fprintf(f, "%s %s\n", evhttp_request_get_uri(req), auth ? auth : "-");
        fclose(f);
    }
    evhttp_send_reply(req, 200, "OK", NULL);
}

static int listen_tcp(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    *port = ntohs(a.sin_port);
    return fd;
}

static int listen_unix(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 16) < 0)
        return -1;
    return fd;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof(g_dir), "/tmp/nubo-test-http-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_sock, sizeof(g_sock), "%s/s.sock", g_dir);
    int tfd = listen_tcp(&g_port);
    int ufd = listen_unix(g_sock);
    int ffd = listen_tcp(&g_follower_port), afd = listen_tcp(&g_astray_port);
    int nfd = listen_tcp(&g_unavail_port), efd = listen_tcp(&g_evil_port);
    int dfd = listen_tcp(&g_dead_port);
    if (tfd < 0 || ufd < 0 || ffd < 0 || afd < 0 || nfd < 0 || efd < 0 || dfd < 0)
        return -1;
    close(dfd); /* free a moment ago, nobody listens now: a dead controller */
    g_server = fork();
    if (g_server == 0) {
        struct event_base *base = event_base_new();
        struct evhttp *h = evhttp_new(base);
        evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
        evhttp_set_gencb(h, on_request, NULL);
        evhttp_accept_socket(h, tfd);
        evhttp_accept_socket(h, ufd);
        struct {
            int fd;
            void (*cb)(struct evhttp_request *, void *);
            void *arg;
        } more[] = {{ffd, on_follower, &g_port},
                    {afd, on_follower, &g_evil_port},
                    {nfd, on_unavail, NULL},
                    {efd, on_evil, NULL}};
        for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++) {
            struct evhttp *x = evhttp_new(base);
            evhttp_set_allowed_methods(x, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT);
            evhttp_set_gencb(x, more[i].cb, more[i].arg);
            evhttp_accept_socket(x, more[i].fd);
        }
        event_base_dispatch(base);
        _exit(0);
    }
    close(tfd);
    close(ufd);
    close(ffd);
    close(afd);
    close(nfd);
    close(efd);
    nu_http_global_init();
    return g_server > 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    if (g_server > 0) {
        kill(g_server, SIGTERM);
        waitpid(g_server, NULL, 0);
    }
    unlink(g_sock);
    rmdir(g_dir);
    nu_http_global_cleanup();
    return 0;
}

static void url(char *buf, size_t size, const char *path)
{
    snprintf(buf, size, "http://127.0.0.1:%d%s", g_port, path);
}

static void test_post_bearer_headers(void **state)
{
    (void)state;
    char u[128];
    url(u, sizeof(u), "/echo");
    struct nu_http_req rq;
    nu_http_req_init(&rq, "POST", u);
    rq.bearer = "tok123";
    assert_true(nu_http_req_header(&rq, "X-Test: yes"));
    rq.body = "{\"a\":1}";
    rq.body_len = 7;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(rs.status, 200);
    assert_string_equal(rs.body, "POST|Bearer tok123|yes|{\"a\":1}");
    assert_int_equal(rs.len, strlen(rs.body));
    nu_http_resp_free(&rs);
    /* The header table is bounded and says so when full. */
    int n = 1;
    while (nu_http_req_header(&rq, "X-More: 1"))
        n++;
    assert_int_equal(n, NU_HTTP_HEADERS_MAX - 1);
}

static void test_body_from_fd(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "%s/body", g_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    char u[128];
    url(u, sizeof(u), "/echo");
    struct nu_http_req rq;
    nu_http_req_init(&rq, "PUT", u);
    rq.body_fd = fd;
    rq.body_off = 3;
    rq.body_len = 4;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_string_equal(rs.body, "PUT|||3456");
    nu_http_resp_free(&rs);
    close(fd);
    unlink(path);
}

static void test_size_limit(void **state)
{
    (void)state;
    char u[128];
    url(u, sizeof(u), "/big");
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, u);
    rq.max_body = BIG_BYTES;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(rs.len, BIG_BYTES);
    nu_http_resp_free(&rs);
    rq.max_body = BIG_BYTES - 1;
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_TOO_BIG);
    assert_true(rs.len < BIG_BYTES);
    char want[200];
    snprintf(want, sizeof(want), "GET %s: answer larger than %d bytes", u, BIG_BYTES - 1);
    assert_string_equal(err.msg, want);
    assert_int_equal(err.http_status, 413);
    nu_http_resp_free(&rs);
}

static void test_unix_socket(void **state)
{
    (void)state;
    struct nu_http_req rq;
    nu_http_req_init(&rq, "DELETE", "http://controller/echo");
    rq.unix_path = g_sock;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(rs.status, 200);
    assert_string_equal(rs.body, "DELETE|||");
    nu_http_resp_free(&rs);
    /* A socket nobody listens on: unreachable, and the text names the socket. */
    char gone[160];
    snprintf(gone, sizeof(gone), "%s/gone.sock", g_dir);
    rq.unix_path = gone;
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_UNREACHABLE);
    assert_int_equal(err.http_status, 503);
    char want[256];
    snprintf(want, sizeof(want), "DELETE http://controller/echo via %s: ", gone);
    assert_memory_equal(err.msg, want, strlen(want));
    nu_http_resp_free(&rs);
}

static void test_unreachable_text(void **state)
{
    (void)state;
    int port;
    int fd = listen_tcp(&port);
    close(fd); /* a port that was free a moment ago and has no listener now */
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/x", port);
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, u);
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_UNREACHABLE);
    assert_true(rs.why[0] != '\0');
    char want[400];
    snprintf(want, sizeof(want), "GET %s: %s", u, rs.why);
    assert_string_equal(err.msg, want);
    assert_null(strchr(err.msg, '\n'));
    nu_http_resp_free(&rs);
    /* Only http and https: a file:// URL is refused, not read. */
    nu_http_req_init(&rq, NULL, "file:///etc/passwd");
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_FAILED);
    assert_null(rs.body);
    nu_http_resp_free(&rs);
}

struct hold {
    int polls;
};

static bool stop_after_two_polls(void *opaque)
{
    struct hold *h = opaque;
    return ++h->polls > 2;
}

static void test_abort(void **state)
{
    (void)state;
    char u[128];
    url(u, sizeof(u), "/hold");
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, u);
    rq.timeout_ms = 60000; /* the abort, not the timeout, must end it */
    struct hold h = {0};
    rq.abort_fn = stop_after_two_polls;
    rq.opaque = &h;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_ABORTED);
    assert_int_equal(h.polls, 3);
    char want[200];
    snprintf(want, sizeof(want), "GET %s: aborted", u);
    assert_string_equal(err.msg, want);
    nu_http_resp_free(&rs);
}

struct sunk {
    size_t bytes, calls;
    size_t refuse_after;
};

static bool sink(void *opaque, const char *data, size_t len)
{
    struct sunk *s = opaque;
    s->calls++;
    for (size_t i = 0; i < len; i++)
        if (data[i] != '0')
            return false;
    s->bytes += len;
    return !s->refuse_after || s->bytes < s->refuse_after;
}

static void test_sink_and_errors_in_memory(void **state)
{
    (void)state;
    char u[128];
    url(u, sizeof(u), "/big");
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, u);
    rq.max_body = 10; /* the sink is not bounded by max_body: the caller bounds it */
    struct sunk s = {0};
    rq.sink = sink;
    rq.opaque = &s;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(s.bytes, BIG_BYTES);
    assert_int_equal(rs.body_bytes, BIG_BYTES);
    assert_null(rs.body);
    nu_http_resp_free(&rs);
    /* A sink that stops the transfer. */
    s = (struct sunk){.refuse_after = 1};
    assert_int_equal(nu_http_do(&rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_SINK);
    nu_http_resp_free(&rs);
    /* A 404's body stays in memory for the caller to quote, whatever the sink. */
    url(u, sizeof(u), "/missing");
    rq.max_body = 1000;
    s = (struct sunk){0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(rs.status, 404);
    assert_int_equal(s.calls, 0);
    assert_string_equal(rs.body, "{\"errors\":[{\"code\":\"NOPE\"}]}");
    nu_http_resp_free(&rs);
}

static void test_response_headers(void **state)
{
    (void)state;
    char u[128];
    url(u, sizeof(u), "/headers");
    struct nu_http_req rq;
    nu_http_req_init(&rq, "POST", u);
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_int_equal(rs.status, 202);
    assert_string_equal(rs.location, "/v2/acme/app/blobs/uploads/abc?_state=1");
    assert_string_equal(rs.docker_digest, "sha256:00ff");
    assert_string_equal(rs.www_authenticate, "Bearer realm=\"http://x/token\"");
    assert_string_equal(rs.content_type, "application/json");
    assert_int_equal(rs.content_length, 2);
    nu_http_resp_free(&rs);
    /* HEAD: headers only. */
    nu_http_req_init(&rq, "HEAD", u);
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    assert_null(rs.body);
    nu_http_resp_free(&rs);
}

static void test_targets_parse(void **state)
{
    (void)state;
    struct nu_http_targets ts;
    struct nubo_err err = {0};
    assert_int_equal(
        nu_http_targets_parse(&ts, " https://a:7060/ ,http://B:80,https://[::1]:9", "", &err), 0);
    assert_int_equal(ts.n, 3);
    assert_string_equal(ts.t[0].url, "https://a:7060");
    assert_string_equal(ts.t[1].url, "http://B:80");
    assert_string_equal(ts.t[2].url, "https://[::1]:9");
    assert_string_equal(ts.t[0].unix_path, "");
    assert_string_equal(nu_http_targets_current(&ts)->url, "https://a:7060");
    /* one URL, several sockets: one controller per socket, the URL as Host */
    assert_int_equal(nu_http_targets_parse(&ts, "http://controller", "/r/a.sock, /r/b.sock", &err),
                     0);
    assert_int_equal(ts.n, 2);
    assert_string_equal(ts.t[1].url, "http://controller");
    assert_string_equal(ts.t[1].unix_path, "/r/b.sock");
    assert_int_equal(nu_http_targets_parse(&ts, "http://x,http://y", "/a,/b", &err), 0);
    assert_string_equal(ts.t[1].unix_path, "/b");
    /* refused, each with a one-line reason */
    const char *bad[] = {"",
                         "ftp://a",
                         "http://",
                         "http://a,,http://b",
                         "https://u:p@a",
                         "http://a:0",
                         "http://a:99999",
                         "http://a:x",
                         "a:7060",
                         "http://1,http://2,http://3,http://4,http://5,http://6,http://7,"
                         "http://8,http://9"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(nu_http_targets_parse(&ts, bad[i], NULL, &err), -1);
        assert_true(err.msg[0] != '\0');
        assert_null(strchr(err.msg, '\n'));
    }
    assert_int_equal(nu_http_targets_parse(&ts, "http://x,http://y,http://z", "/a,/b", &err), -1);
    assert_non_null(strstr(err.msg, "one socket per URL"));
}

static void test_redirect_trust(void **state)
{
    (void)state;
    struct nu_http_targets ts;
    struct nubo_err err = {0};
    assert_int_equal(
        nu_http_targets_parse(&ts, "https://ctl-1.example:7060, http://127.0.0.1", NULL, &err), 0);
    /* listed: same scheme, host (any case) and port (default ports made explicit) */
    assert_int_equal(
        nu_http_redirect_target(&ts, "https://CTL-1.example:7060/v1/x?y=1", NULL, false), 0);
    assert_int_equal(nu_http_redirect_target(&ts, "http://127.0.0.1:80/v1", NULL, false), 1);
    assert_int_equal(nu_http_redirect_target(&ts, "http://127.0.0.1/v1", "/ca.pem", true), 1);
    /* unlisted: only https verified against a private CA, and not for a client on a socket */
    assert_int_equal(
        nu_http_redirect_target(&ts, "https://ctl-2.example:7060/v1", "/ca.pem", false),
        NU_HTTP_REDIRECT_DIRECT);
    assert_int_equal(nu_http_redirect_target(&ts, "https://ctl-2.example:7060/v1", "/ca.pem", true),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "https://ctl-2.example:7060/v1", NULL, false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "https://ctl-2.example:7060/v1", "", false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "http://ctl-2.example/v1", "/ca.pem", false),
                     NU_HTTP_REDIRECT_REFUSED);
    /* not the listed one: other port, other scheme, user info hiding another host */
    assert_int_equal(nu_http_redirect_target(&ts, "http://ctl-1.example:7060/v1", "/ca.pem", false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "http://127.0.0.1:8080/", NULL, false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "http://127.0.0.1@evil.example/", NULL, false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "/v1/relative", NULL, false),
                     NU_HTTP_REDIRECT_REFUSED);
    assert_int_equal(nu_http_redirect_target(&ts, "file:///etc/passwd", "/ca.pem", false),
                     NU_HTTP_REDIRECT_REFUSED);
}

static void targets_of(struct nu_http_targets *ts, const int *ports, size_t n)
{
    char list[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(list + off, sizeof(list) - off, "%shttp://127.0.0.1:%d",
                                i ? ", " : "", ports[i]);
    struct nubo_err err = {0};
    assert_int_equal(nu_http_targets_parse(ts, list, NULL, &err), 0);
}

static size_t evil_hits(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/evil.log", g_dir);
    FILE *f = fopen(path, "r");
    size_t n = 0;
    for (int c; f && (c = fgetc(f)) != EOF;)
        n += c == '\n';
    if (f)
        fclose(f);
    return n;
}

/* A POST with a body and a token through the list: returns the answer's status. */
static long post_echo(struct nu_http_targets *ts, struct nu_http_resp *rs, struct nubo_err *err,
                      int *rc)
{
    struct nu_http_req rq;
    nu_http_req_init(&rq, "POST", "/echo?x=1");
    rq.bearer = "tok";
    rq.body = "hello";
    rq.body_len = 5;
    rq.connect_timeout_ms = 2000;
    *rc = nu_http_targets_do(ts, &rq, rs, err);
    return rs->status;
}

static void test_failover_dead_and_follower(void **state)
{
    (void)state;
    struct nu_http_targets ts;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    int rc;
    /* the first controller is dead: the call succeeds at the second, which is remembered */
    targets_of(&ts, (int[]){g_dead_port, g_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 200);
    assert_int_equal(rc, 0);
    assert_string_equal(rs.body, "POST|Bearer tok||hello");
    nu_http_resp_free(&rs);
    assert_int_equal(ts.current, 1);
    unsigned moves = ts.moves;
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 200);
    nu_http_resp_free(&rs);
    assert_int_equal(ts.moves, moves); /* straight there */
    /* a follower's 307 is followed to the listed leader, method, body and token kept */
    targets_of(&ts, (int[]){g_follower_port, g_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 200);
    assert_string_equal(rs.body, "POST|Bearer tok||hello");
    nu_http_resp_free(&rs);
    assert_int_equal(ts.current, 1);
    /* a 503 (no leader known) moves on; alone, the 503 is the answer */
    targets_of(&ts, (int[]){g_unavail_port, g_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 200);
    nu_http_resp_free(&rs);
    targets_of(&ts, (int[]){g_dead_port, g_unavail_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 503);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(rs.body, "no leader"));
    nu_http_resp_free(&rs);
    /* every controller dead: the error says so, in one line */
    targets_of(&ts, (int[]){g_dead_port, g_dead_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 0);
    assert_int_equal(rc, -1);
    assert_int_equal(rs.fail, NU_HTTP_UNREACHABLE);
    assert_non_null(strstr(err.msg, "none of the 2 controllers answered"));
    nu_http_resp_free(&rs);
}

static void test_redirect_to_unlisted_not_followed(void **state)
{
    (void)state;
    struct nu_http_targets ts;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    int rc;
    /* a 307 to a host not in the list is not followed (it would get the token): the next
     * listed controller is asked instead */
    targets_of(&ts, (int[]){g_astray_port, g_port}, 2);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 200);
    assert_string_equal(rs.body, "POST|Bearer tok||hello");
    nu_http_resp_free(&rs);
    /* alone: an error naming the redirect, and still nothing sent there */
    targets_of(&ts, (int[]){g_astray_port}, 1);
    assert_int_equal(post_echo(&ts, &rs, &err, &rc), 307);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(err.msg, "no listed controller leads"));
    nu_http_resp_free(&rs);
    assert_int_equal(evil_hits(), 0);
    /* the unlisted host is reachable (the count above means something) */
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d/probe", g_evil_port);
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, u);
    assert_int_equal(nu_http_do(&rq, &rs, &err), 0);
    nu_http_resp_free(&rs);
    assert_int_equal(evil_hits(), 1);
}

static void test_failover_sockets(void **state)
{
    (void)state;
    char gone[160], socks[400];
    snprintf(gone, sizeof(gone), "%s/gone.sock", g_dir);
    snprintf(socks, sizeof(socks), "%s,%s", gone, g_sock);
    struct nu_http_targets ts;
    struct nubo_err err = {0};
    assert_int_equal(nu_http_targets_parse(&ts, "http://controller", socks, &err), 0);
    struct nu_http_req rq;
    nu_http_req_init(&rq, NULL, "/echo");
    struct nu_http_resp rs;
    assert_int_equal(nu_http_targets_do(&ts, &rq, &rs, &err), 0);
    assert_string_equal(rs.body, "GET|||");
    nu_http_resp_free(&rs);
    assert_int_equal(ts.current, 1);
}

/* Stands in for another thread's call that found the controller gone: on its first poll it
 * moves the list's current controller elsewhere. */
struct mover {
    struct nu_http_targets *ts;
    int polls;
};

static bool move_current(void *opaque)
{
    struct mover *m = opaque;
    if (++m->polls == 1) {
        __atomic_store_n(&m->ts->current, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&m->ts->moves, 1, __ATOMIC_RELAXED);
    }
    return false;
}

static void test_parked_get_gives_up(void **state)
{
    (void)state;
    struct nu_http_targets ts;
    targets_of(&ts, (int[]){g_port, g_port}, 2);
    struct mover m = {.ts = &ts};
    struct nu_http_req rq;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    /* a long poll parked on controller 0 gives up once the list moved to controller 1 */
    nu_http_req_init(&rq, NULL, "/hold");
    rq.timeout_ms = 20000;
    rq.abort_fn = move_current;
    rq.opaque = &m;
    assert_int_equal(nu_http_targets_do(&ts, &rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_ABORTED); /* not the 20 s timeout */
    nu_http_resp_free(&rs);
    /* a POST is not abandoned that way (it may be done): it runs to its own timeout, is not
     * sent again, and the next call starts at the next controller */
    ts.current = 0;
    m.polls = 0;
    nu_http_req_init(&rq, "POST", "/hold");
    rq.body = "x";
    rq.body_len = 1;
    rq.timeout_ms = 2500;
    rq.abort_fn = move_current;
    rq.opaque = &m;
    assert_int_equal(nu_http_targets_do(&ts, &rq, &rs, &err), -1);
    assert_int_equal(rs.fail, NU_HTTP_TRANSIENT);
    assert_int_equal(ts.current, 1);
    nu_http_resp_free(&rs);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_bearer_headers),
        cmocka_unit_test(test_body_from_fd),
        cmocka_unit_test(test_size_limit),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_unreachable_text),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_sink_and_errors_in_memory),
        cmocka_unit_test(test_response_headers),
        cmocka_unit_test(test_targets_parse),
        cmocka_unit_test(test_redirect_trust),
        cmocka_unit_test(test_failover_dead_and_follower),
        cmocka_unit_test(test_redirect_to_unlisted_not_followed),
        cmocka_unit_test(test_failover_sockets),
        cmocka_unit_test(test_parked_get_gives_up),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
