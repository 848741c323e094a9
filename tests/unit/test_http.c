/* common/http.c against a real HTTP server (libevent evhttp in a child process, on loopback
 * TCP and on a unix socket): bodies both ways, bounds, headers, sinks, abort and error text. */
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
    if (tfd < 0 || ufd < 0)
        return -1;
    g_server = fork();
    if (g_server == 0) {
        struct event_base *base = event_base_new();
        struct evhttp *h = evhttp_new(base);
        evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                          EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD);
        evhttp_set_gencb(h, on_request, NULL);
        evhttp_accept_socket(h, tfd);
        evhttp_accept_socket(h, ufd);
        event_base_dispatch(base);
        _exit(0);
    }
    close(tfd);
    close(ufd);
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
