/* API benchmark: instance creates/s and p50/p99 latency of create and get through the real
 * nubo-controller with N fake-agent nodes, against a trivial evhttp handler (a baseline that
 * parses nothing and stores nothing) driven the same way in the same run.
 * usage: bench_api [--creates N] [--gets N] [--concurrency C] [--nodes N] [--store-url URL]
 * (--store-url: the controller's store on PostgreSQL, [store] url; bench/store.sh starts one) */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "http.h"
#include "util.h"

struct load {
    struct event_base *base;
    int port;
    const char *method_name;
    enum evhttp_cmd_type method;
    const char *token;
    const char *body;
    char (*paths)[96]; /* per-request path (GET) or NULL = fixed_path */
    size_t n_paths;
    const char *fixed_path;
    int total, issued, done, errors;
    int64_t *lat_us;
    char (*uuids)[NUBO_UUID_STR_LEN + 1]; /* created uuids, collected from replies */
    size_t n_uuids, cap_uuids;
};

struct lconn {
    struct load *l;
    struct evhttp_connection *c;
    int64_t t0;
};

static void issue(struct lconn *lc);

static void done_cb(struct evhttp_request *req, void *arg)
{
    struct lconn *lc = arg;
    struct load *l = lc->l;
    l->lat_us[l->done++] = nubo_mono_us() - lc->t0;
    if (req == NULL || evhttp_request_get_response_code(req) != 200) {
        l->errors++;
    } else if (l->uuids && l->n_uuids < l->cap_uuids) {
        struct evbuffer *b = evhttp_request_get_input_buffer(req);
        size_t len = evbuffer_get_length(b);
        const char *t = (const char *)evbuffer_pullup(b, -1);
        const char *u = t ? memmem(t, len, "\"uuid\":\"", 8) : NULL;
        if (u && (size_t)(u - t) + 8 + NUBO_UUID_STR_LEN <= len) {
            memcpy(l->uuids[l->n_uuids], u + 8, NUBO_UUID_STR_LEN);
            l->uuids[l->n_uuids++][NUBO_UUID_STR_LEN] = '\0';
        }
    }
    if (l->issued < l->total)
        issue(lc);
    else if (l->done == l->total)
        event_base_loopbreak(l->base);
}

static void issue(struct lconn *lc)
{
    struct load *l = lc->l;
    int i = l->issued++;
    struct evhttp_request *r = evhttp_request_new(done_cb, lc);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r);
    evhttp_add_header(h, "Host", "bench");
    char auth[200];
    snprintf(auth, sizeof(auth), "Bearer %s", l->token);
    evhttp_add_header(h, "Authorization", auth);
    if (l->body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(r), l->body, strlen(l->body));
    }
    const char *path = l->paths ? l->paths[(size_t)i % l->n_paths] : l->fixed_path;
    lc->t0 = nubo_mono_us();
    evhttp_make_request(lc->c, r, l->method, path);
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

struct result {
    double per_s, p50_ms, p99_ms;
    int errors;
};

static struct result run(struct load *l, int conc)
{
    l->base = event_base_new();
    l->issued = l->done = l->errors = 0;
    l->lat_us = calloc((size_t)l->total, sizeof(int64_t));
    struct lconn *cs = calloc((size_t)conc, sizeof(*cs));
    int64_t t0 = nubo_mono_us();
    for (int i = 0; i < conc && l->issued < l->total; i++) {
        cs[i].l = l;
        cs[i].c = evhttp_connection_base_new(l->base, NULL, "127.0.0.1", (unsigned short)l->port);
        evhttp_connection_set_timeout(cs[i].c, 60);
        issue(&cs[i]);
    }
    event_base_dispatch(l->base);
    int64_t el = nubo_mono_us() - t0;
    qsort(l->lat_us, (size_t)l->done, sizeof(int64_t), cmp64);
    struct result r = {
        .per_s = l->done / (el / 1e6),
        .p50_ms = l->lat_us[l->done / 2] / 1000.0,
        .p99_ms = l->lat_us[(size_t)(l->done * 0.99)] / 1000.0,
        .errors = l->errors,
    };
    for (int i = 0; i < conc; i++)
        if (cs[i].c)
            evhttp_connection_free(cs[i].c);
    free(cs);
    free(l->lat_us);
    event_base_free(l->base);
    return r;
}

/* ---- the baseline: a trivial evhttp handler in a child process ---- */

static void trivial_cb(struct evhttp_request *req, void *arg)
{
    static const char reply[] =
        "{\"status\":\"success\",\"data\":{\"instances\":[{\"status\":"
        "\"success\",\"uuid\":\"00000000-0000-4000-8000-000000000000\"}]}}\n";
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, reply, sizeof(reply) - 1);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static pid_t start_baseline(int port)
{
    pid_t pid = fork();
    if (pid == 0) {
        struct event_base *base = event_base_new();
        struct evhttp *http = evhttp_new(base);
        evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
        evhttp_set_gencb(http, trivial_cb, NULL);
        if (evhttp_bind_socket(http, "127.0.0.1", (unsigned short)port) < 0)
            _exit(1);
        event_base_dispatch(base);
        _exit(0);
    }
    return pid;
}

/* ---- setup helpers (common/http.c; not timed) ---- */

static long http(const char *method, const char *url, const char *auth, const char *body,
                 struct evbuffer *out)
{
    struct nu_http_req rq;
    nu_http_req_init(&rq, method, url);
    rq.bearer = auth;
    if (body) {
        rq.body = body;
        rq.body_len = strlen(body);
    }
    rq.timeout_ms = 10000;
    struct nu_http_resp rs;
    long code = nu_http_do(&rq, &rs, NULL) == 0 ? rs.status : 0;
    if (out && rs.body)
        evbuffer_add(out, rs.body, rs.len);
    nu_http_resp_free(&rs);
    return code;
}

static int free_port(void)
{
    /* bind :0 and let the kernel pick */
    struct event_base *b = event_base_new();
    struct evhttp *h = evhttp_new(b);
    struct evhttp_bound_socket *s = evhttp_bind_socket_with_handle(h, "127.0.0.1", 0);
    int port = -1;
    if (s) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len);
        port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    }
    evhttp_free(h);
    event_base_free(b);
    return port;
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        FILE *f = freopen(log, "a", stdout);
        (void)f;
        dup2(1, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

static bool wait_http(const char *url, int secs)
{
    for (int i = 0; i < secs * 20; i++) {
        if (http("GET", url, NULL, NULL, NULL) == 200)
            return true;
        usleep(50000);
    }
    return false;
}

static long count_in(const char *url, const char *auth, const char *needle)
{
    struct evbuffer *b = evbuffer_new();
    http("GET", url, auth, NULL, b);
    size_t len = evbuffer_get_length(b);
    const char *t = (const char *)evbuffer_pullup(b, -1);
    long n = 0;
    for (const char *p = t; p && (p = memmem(p, len - (size_t)(p - t), needle, strlen(needle)));
         p++)
        n++;
    evbuffer_free(b);
    return n;
}

static long metric(const char *base_url, const char *token, const char *name)
{
    char url[200];
    snprintf(url, sizeof(url), "%s/metrics", base_url);
    struct evbuffer *b = evbuffer_new();
    http("GET", url, token, NULL, b); /* /metrics is for admins */
    evbuffer_add(b, "", 1);
    const char *t = (const char *)evbuffer_pullup(b, -1);
    const char *p = t ? strstr(t, name) : NULL;
    long v = p ? strtol(p + strlen(name), NULL, 10) : -1;
    evbuffer_free(b);
    return v;
}

int main(int argc, char **argv)
{
    int creates = 10000, gets = 20000, conc = 16, nodes = 64;
    const char *store_url = NULL;
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines survive a timeout(1) kill */
    /* the controller and the fake agent each hold two connections per node; as root, let them
     * (both raise their soft limit to this hard one) */
    struct rlimit rl = {1 << 17, 1 << 17};
    setrlimit(RLIMIT_NOFILE, &rl);
    static const struct option opts[] = {{"creates", required_argument, NULL, 'c'},
                                         {"gets", required_argument, NULL, 'g'},
                                         {"concurrency", required_argument, NULL, 'C'},
                                         {"nodes", required_argument, NULL, 'n'},
                                         {"store-url", required_argument, NULL, 's'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            creates = atoi(optarg);
            break;
        case 'g':
            gets = atoi(optarg);
            break;
        case 'C':
            conc = atoi(optarg);
            break;
        case 'n':
            nodes = atoi(optarg);
            break;
        case 's':
            store_url = optarg;
            break;
        default:
            fprintf(stderr, "usage: bench_api [--creates N] [--gets N] [--concurrency C] "
                            "[--nodes N] [--store-url URL]\n");
            return 2;
        }
    }
    if (creates > nodes * 253) {
        fprintf(stderr, "bench_api: %d creates need at least %d nodes\n", creates,
                creates / 253 + 1);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    nu_http_global_init();
    /* the binaries live next to this one in the build tree */
    char self[PATH_MAX], build[PATH_MAX], ctl_bin[PATH_MAX + 64], fake_bin[PATH_MAX + 64];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl < 0)
        return 1;
    self[sl] = '\0';
    snprintf(build, sizeof(build), "%s", self);
    *strrchr(build, '/') = '\0';
    *strrchr(build, '/') = '\0';
    snprintf(ctl_bin, sizeof(ctl_bin), "%s/controller/nubo-controller", build);
    snprintf(fake_bin, sizeof(fake_bin), "%s/tests/nubo-fake-agent", build);
    if (access(ctl_bin, X_OK) || access(fake_bin, X_OK)) {
        fprintf(stderr, "bench_api: build nubo-controller and nubo-fake-agent first\n");
        return 1;
    }
    /* BENCH_TMP picks the filesystem of the database (default /tmp) */
    char dir[256];
    snprintf(dir, sizeof(dir), "%.200s/nubo-bench-api-XXXXXX",
             getenv("BENCH_TMP") ? getenv("BENCH_TMP") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    char ini[PATH_MAX], db[PATH_MAX], log[PATH_MAX], flog[PATH_MAX], listen[64], url[128],
        join[PATH_MAX], tokfile[PATH_MAX];
    snprintf(ini, sizeof(ini), "%s/ctl.ini", dir);
    snprintf(db, sizeof(db), "%s/ctl.db", dir);
    snprintf(log, sizeof(log), "%s/controller.log", dir);
    snprintf(flog, sizeof(flog), "%s/fake.log", dir);
    snprintf(join, sizeof(join), "%s/ctl.db.join-token", dir);
    snprintf(tokfile, sizeof(tokfile), "%s/ctl.db.admin-token", dir);
    FILE *f = fopen(ini, "w");
    /* each node takes a /24 of guest addresses: a /8 pool holds 65,536 nodes */
    /* every fake node's connections come from 127.0.0.1: no per-client cap */
    fprintf(f, "[controller]\nlog_level = warn\nplain_http = loopback\n"
               "max_connections_per_client = 0\n"
               "[registry]\nnotification_secret = bench\n"
               "url = http://127.0.0.1:1\n[agent]\nsubnet_pool = 10.0.0.0/8\n");
    if (store_url)
        fprintf(f, "[store]\nurl = %s\n", store_url);
    fclose(f);
    int port = free_port(), bport = free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "http://%s", listen);
    char *cargv[] = {ctl_bin, "--listen", listen, "--db", db, "--config", ini, NULL};
    pid_t ctl = spawn(cargv, log);
    pid_t base_pid = start_baseline(bport);
    char hz[160];
    snprintf(hz, sizeof(hz), "%s/v1/healthz", url);
    int rc = 1;
    pid_t fake = -1;
    if (!wait_http(hz, 20)) {
        fprintf(stderr, "bench_api: controller did not start (see %s)\n", log);
        goto out;
    }
    char *token = NULL;
    size_t tl;
    nubo_read_file(tokfile, 4096, &token, &tl, NULL);
    while (tl && token[tl - 1] == '\n')
        token[--tl] = '\0';
    char nodes_s[16];
    snprintf(nodes_s, sizeof(nodes_s), "%d", nodes);
    char *fargv[] = {fake_bin, "--controller", url,     "--join-token-file", join, "--nodes",
                     nodes_s,  "--memory-mb",  "65536", "--vcpus",           "64", "--boot-ms",
                     "1",      "--quiet",      NULL};
    fake = spawn(fargv, flog);
    char nodes_url[160];
    snprintf(nodes_url, sizeof(nodes_url), "%s/v1/nodes", url);
    int ready = 0;
    int64_t reg_t0 = nubo_mono_us();
    for (int i = 0; i < 2400 && (ready = count_in(nodes_url, token, "\"state\":\"ready\"")) < nodes;
         i++)
        usleep(50000);
    if (ready < nodes) {
        fprintf(stderr, "bench_api: only %d of %d fake nodes became ready in 120 s (see %s)\n",
                ready, nodes, log);
        goto out;
    }
    printf("bench_api: %d nodes registered and ready in %.2f s\n", nodes,
           (double)(nubo_mono_us() - reg_t0) / 1e6);
    char ev_url[160];
    snprintf(ev_url, sizeof(ev_url), "%s/registry/events", url);
    char ev[600];
    snprintf(
        ev, sizeof(ev),
        "{\"events\":[{\"action\":\"push\",\"target\":{\"mediaType\":\"application/"
        "vnd.oci.image.index.v1+json\",\"repository\":\"admin/bench\",\"digest\":\"sha256:%064d\","
        "\"tag\":\"latest\",\"size\":1}}]}",
        0);
    if (http("POST", ev_url, "bench", ev, NULL) != 200) {
        fprintf(stderr, "bench_api: cannot index the bench image\n");
        goto out;
    }

    const char *create_body = getenv("BENCH_BODY")
                                  ? getenv("BENCH_BODY")
                                  : "{\"image\":\"admin/bench:latest\",\"memory_mb\":16,\"autostart\":true}";
    /* baseline first: the same POST, then GETs */
    struct load bl = {.port = bport,
                      .method = EVHTTP_REQ_POST,
                      .token = token,
                      .body = create_body,
                      .fixed_path = "/v1/instances",
                      .total = creates};
    struct result b_create = run(&bl, conc);
    struct load l = {.port = port,
                     .method = EVHTTP_REQ_POST,
                     .token = token,
                     .body = create_body,
                     .fixed_path = "/v1/instances",
                     .total = creates};
    l.cap_uuids = (size_t)creates;
    l.uuids = calloc(l.cap_uuids, sizeof(*l.uuids));
    int64_t t_create0 = nubo_mono_us();
    struct result c_create = run(&l, conc);
    /* end to end: until the fake agents report every instance running */
    long running = 0;
    int64_t t_run = 0;
    bool autostart = strstr(create_body, "\"autostart\":false") == NULL;
    for (int i = 0; autostart && i < 12000; i++) {
        running = metric(url, token, "nubo_instances{state=\"running\"} ");
        if (running >= creates - c_create.errors) {
            t_run = nubo_mono_us() - t_create0;
            break;
        }
        usleep(5000);
    }
    char(*paths)[96] = calloc(l.n_uuids ? l.n_uuids : 1, sizeof(*paths));
    for (size_t i = 0; i < l.n_uuids; i++)
        snprintf(paths[i], sizeof(paths[i]), "/v1/instances/%s", l.uuids[i]);
    struct load bg = {.port = bport,
                      .method = EVHTTP_REQ_GET,
                      .token = token,
                      .paths = paths,
                      .n_paths = l.n_uuids ? l.n_uuids : 1,
                      .total = gets};
    struct result b_get = run(&bg, conc);
    struct load g = {.port = port,
                     .method = EVHTTP_REQ_GET,
                     .token = token,
                     .paths = paths,
                     .n_paths = l.n_uuids ? l.n_uuids : 1,
                     .total = gets};
    struct result c_get = run(&g, conc);

    printf("bench_api: %d creates, %d gets, %d connections, %d fake nodes (one process), "
           "store %s\n",
           creates, gets, conc, nodes, store_url ? "postgresql" : "sqlite");
    printf("  %-26s %12s %10s %10s %7s\n", "", "req/s", "p50 ms", "p99 ms", "errors");
    printf("  %-26s %12.0f %10.3f %10.3f %7d\n", "baseline POST (trivial)", b_create.per_s,
           b_create.p50_ms, b_create.p99_ms, b_create.errors);
    printf("  %-26s %12.0f %10.3f %10.3f %7d\n", "controller create", c_create.per_s,
           c_create.p50_ms, c_create.p99_ms, c_create.errors);
    printf("  %-26s %12.0f %10.3f %10.3f %7d\n", "baseline GET (trivial)", b_get.per_s,
           b_get.p50_ms, b_get.p99_ms, b_get.errors);
    printf("  %-26s %12.0f %10.3f %10.3f %7d\n", "controller get", c_get.per_s, c_get.p50_ms,
           c_get.p99_ms, c_get.errors);
    printf("  ratio create/baseline: %.2f of the throughput, p99 x%.1f\n",
           c_create.per_s / b_create.per_s, c_create.p99_ms / b_create.p99_ms);
    printf("  ratio get/baseline:    %.2f of the throughput, p99 x%.1f\n",
           c_get.per_s / b_get.per_s, c_get.p99_ms / b_get.p99_ms);
    if (t_run)
        printf("  end to end: %ld instances created and reported running by the agents in "
               "%.2f s = %.0f instances/s\n",
               running, t_run / 1e6, running / (t_run / 1e6));
    else
        printf("  end to end: only %ld of %d reported running\n", running, creates);
    rc = c_create.errors || c_get.errors ? 1 : 0;
    free(paths);
    free(l.uuids);
    free(token);
out:
    if (fake > 0)
        kill(fake, SIGTERM);
    kill(ctl, SIGTERM);
    kill(base_pid, SIGTERM);
    waitpid(ctl, NULL, 0);
    if (fake > 0)
        waitpid(fake, NULL, 0);
    waitpid(base_pid, NULL, 0);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("BENCH_KEEP"))
        fprintf(stderr, "bench_api: logs kept in %s\n", dir);
    else if (rc == 0 && system(cmd) != 0)
        rc = 1;
    else if (rc)
        fprintf(stderr, "bench_api: logs kept in %s\n", dir);
    return rc;
}
