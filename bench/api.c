/* API and scale benchmark: one real nubo-controller with N fake-agent nodes (one process) per
 * size in --nodes (e.g. 64,1000,10000), each size a fresh store filled to --per-node instances
 * per node (replica creates, untimed), then: creates/s and p50/p99 of --creates single creates
 * with the controller CPU each costs, end to end until the agents report them running, get
 * p99, the heartbeat cost of an idle window (controller CPU per node and second, per beat),
 * memory per instance (RSS delta), GET /metrics as a scraper asks it (--scrapes calls one
 * after another: p50/p99, controller CPU each, size) and the time a new controller takes to
 * load that store and answer. A trivial evhttp handler driven the same way is the baseline;
 * a table at the end gives each size's ratios against the first.
 * usage: bench_api [--creates N] [--gets N] [--concurrency C] [--nodes N[,N...]]
 *                  [--per-node N] [--idle-s S] [--scrapes N] [--store-url URL]
 * (--store-url: the controller's store on PostgreSQL, [store] url, where %d becomes the node
 * count, one database per size; bench/store.sh and bench/scale.sh start one)
 * BENCH_PERF=DIR records the controller with `perf record` over each size's timed creates
 * into DIR/perf.<nodes>.data (build with -fno-omit-frame-pointer for its call chains;
 * BENCH_PERF_CG=dwarf,8192 follows them through libc too). */
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
    size_t last_len; /* the body of the last 200 */
};

struct lconn {
    struct load *l;
    struct evhttp_connection *c;
    int64_t t0;
};

static void issue(struct lconn *lc);

/* A 200's body: its length, and the uuid a create answered (the gets ask for those). */
static void got_body(struct load *l, struct evbuffer *b)
{
    size_t len = evbuffer_get_length(b);
    l->last_len = len;
    if (l->uuids == NULL || l->n_uuids >= l->cap_uuids)
        return;
    const char *t = (const char *)evbuffer_pullup(b, -1);
    const char *u = t ? memmem(t, len, "\"uuid\":\"", 8) : NULL;
    if (u && (size_t)(u - t) + 8 + NUBO_UUID_STR_LEN <= len) {
        memcpy(l->uuids[l->n_uuids], u + 8, NUBO_UUID_STR_LEN);
        l->uuids[l->n_uuids++][NUBO_UUID_STR_LEN] = '\0';
    }
}

static void done_cb(struct evhttp_request *req, void *arg)
{
    struct lconn *lc = arg;
    struct load *l = lc->l;
    l->lat_us[l->done++] = nubo_mono_us() - lc->t0;
    if (req == NULL || evhttp_request_get_response_code(req) != 200)
        l->errors++;
    else
        got_body(l, evhttp_request_get_input_buffer(req));
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

/* GET /metrics (for admins) as a NUL-terminated text in b, which the caller frees. */
static const char *metrics_text(const char *base_url, const char *token, struct evbuffer *b)
{
    char url[200];
    snprintf(url, sizeof(url), "%s/metrics", base_url);
    http("GET", url, token, NULL, b);
    evbuffer_add(b, "", 1);
    return (const char *)evbuffer_pullup(b, -1);
}

/* The agent protocol's requests so far (watch, status, log), from /metrics. */
static void agent_requests(const char *base_url, const char *token, long out[3])
{
    static const char *const routes[3] = {"agent_watch", "agent_status", "agent_log"};
    struct evbuffer *b = evbuffer_new();
    const char *t = metrics_text(base_url, token, b);
    for (int i = 0; i < 3; i++) {
        char pre[96];
        int n = snprintf(pre, sizeof(pre), "nubo_api_requests_total{route=\"%s\",", routes[i]);
        out[i] = 0;
        for (const char *p = t; p && (p = strstr(p, pre)) != NULL; p += n) {
            const char *sp = strchr(p, ' ');
            out[i] += sp ? strtol(sp + 1, NULL, 10) : 0;
        }
    }
    evbuffer_free(b);
}

static long metric(const char *base_url, const char *token, const char *name)
{
    struct evbuffer *b = evbuffer_new();
    const char *t = metrics_text(base_url, token, b);
    const char *p = t ? strstr(t, name) : NULL;
    long v = p ? strtol(p + strlen(name), NULL, 10) : -1;
    evbuffer_free(b);
    return v;
}

/* The controller's CPU time so far (user + system, µs) and resident set (KiB), from /proc. */
static int64_t proc_cpu_us(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                            &st) != 2)
        return -1;
    return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)sysconf(_SC_CLK_TCK));
}

static long proc_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kb;
}

/* What one cluster size measured. */
struct size_row {
    int nodes;
    long instances;
    double reg_s;
    struct result create, get;
    double create_cpu_us; /* controller CPU per timed create */
    double e2e_per_s;
    double agent_req[3]; /* watch, status, log requests per timed create, to end to end */
    double hb_per_s, hb_cpu_us_node_s, hb_cpu_us_beat; /* the idle window */
    double mem_kb_inst;
    struct result scrape; /* GET /metrics, one at a time */
    double scrape_cpu_ms; /* controller CPU each, net of the idle window's rate */
    double scrape_kib;    /* its body */
    double load_s;   /* from the new controller's exec to its first answer */
    double loaded_s; /* of which loading the store (its log's "loaded ... in N ms") */
    long load_rss_kb;
    bool ok;
};

struct bench {
    char ctl_bin[PATH_MAX + 64], fake_bin[PATH_MAX + 64];
    const char *store_url; /* may hold %d: the node count */
    const char *create_body;
    int creates, gets, conc, per_node, idle_s, scrapes;
    int bport;
    struct result b_create, b_get;
    bool baseline_done;
};

static pid_t start_controller(const char *bin, const char *listen, const char *db, const char *ini,
                              const char *log)
{
    char *cargv[] = {(char *)bin, "--listen", (char *)listen, "--db", (char *)db, "--config",
                     (char *)ini, NULL};
    return spawn(cargv, log);
}

/* Create until `want` instances exist, replicas per request, with conc connections. */
static int fill(struct bench *B, int port, const char *token, long want, int conc)
{
    const int per_req = 100;
    char body[256];
    snprintf(body, sizeof(body),
             "{\"image\":\"admin/bench:latest\",\"memory_mb\":16,\"autostart\":true,"
             "\"replicas\":%d}",
             per_req - 1);
    long reqs = want / per_req;
    if (reqs > 0) {
        struct load l = {.port = port,
                         .method = EVHTTP_REQ_POST,
                         .token = token,
                         .body = body,
                         .fixed_path = "/v1/instances",
                         .total = (int)reqs};
        struct result r = run(&l, conc);
        if (r.errors)
            return -1;
    }
    long rest = want - reqs * per_req;
    if (rest > 0) {
        struct load l = {.port = port,
                         .method = EVHTTP_REQ_POST,
                         .token = token,
                         .body = B->create_body,
                         .fixed_path = "/v1/instances",
                         .total = (int)rest};
        if (run(&l, conc).errors)
            return -1;
    }
    (void)B;
    return 0;
}

/* Wait until the agents report at least want instances running; false after secs. A look
 * every every_ms: /metrics at 10,000 nodes is megabytes the controller writes. */
static bool wait_running(const char *url, const char *token, long want, int secs, int every_ms)
{
    for (int64_t t0 = nubo_mono_us(); nubo_mono_us() - t0 < (int64_t)secs * 1000000;) {
        if (metric(url, token, "nubo_instances{state=\"running\"} ") >= want)
            return true;
        usleep((useconds_t)every_ms * 1000);
    }
    return false;
}

static void run_size(struct bench *B, int nodes, struct size_row *row)
{
    memset(row, 0, sizeof(*row));
    row->nodes = nodes;
    long total = (long)nodes * B->per_node;
    if (total < B->creates)
        total = B->creates;
    row->instances = total;
    /* BENCH_TMP picks the filesystem of the database (default /tmp) */
    char dir[256];
    snprintf(dir, sizeof(dir), "%.200s/nubo-bench-api-XXXXXX",
             getenv("BENCH_TMP") ? getenv("BENCH_TMP") : "/tmp");
    if (!mkdtemp(dir))
        return;
    char ini[PATH_MAX], db[PATH_MAX], logf[PATH_MAX], flog[PATH_MAX], listen[64], url[128],
        join[PATH_MAX], tokfile[PATH_MAX], store_url[1024] = "", nodes_s[16];
    snprintf(nodes_s, sizeof(nodes_s), "%d", nodes);
    snprintf(ini, sizeof(ini), "%s/ctl.ini", dir);
    snprintf(db, sizeof(db), "%s/ctl.db", dir);
    snprintf(logf, sizeof(logf), "%s/controller.log", dir);
    const char *log = logf;
    snprintf(flog, sizeof(flog), "%s/fake.log", dir);
    snprintf(join, sizeof(join), "%s/ctl.db.join-token", dir);
    snprintf(tokfile, sizeof(tokfile), "%s/ctl.db.admin-token", dir);
    if (B->store_url) { /* %d in the URL: the node count */
        const char *pct = strstr(B->store_url, "%d");
        int pre = pct ? (int)(pct - B->store_url) : (int)strlen(B->store_url);
        snprintf(store_url, sizeof(store_url), "%.*s%s%s", pre, B->store_url,
                 pct ? nodes_s : "", pct ? pct + 2 : "");
    }
    FILE *f = fopen(ini, "w");
    /* each node takes a /24 of guest addresses: a /8 pool holds 65,536 nodes */
    /* every fake node's connections come from 127.0.0.1: no per-client cap */
    fprintf(f, "[controller]\nlog_level = warn\nplain_http = loopback\n"
               "max_connections_per_client = 0\n"
               "[registry]\nnotification_secret = bench\n"
               "url = http://127.0.0.1:1\n[agent]\nsubnet_pool = 10.0.0.0/8\n");
    if (store_url[0])
        fprintf(f, "[store]\nurl = %s\n", store_url);
    fclose(f);
    int port = free_port();
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    snprintf(url, sizeof(url), "http://%s", listen);
    pid_t ctl = start_controller(B->ctl_bin, listen, db, ini, log);
    char hz[160];
    snprintf(hz, sizeof(hz), "%s/v1/healthz", url);
    pid_t fake = -1;
    char *token = NULL;
    char(*paths)[96] = NULL;
    struct load l = {0};
    if (!wait_http(hz, 60)) {
        fprintf(stderr, "bench_api: controller did not start (see %s)\n", log);
        goto out;
    }
    size_t tl;
    nubo_read_file(tokfile, 4096, &token, &tl, NULL);
    while (tl && token[tl - 1] == '\n')
        token[--tl] = '\0';
    /* reports of all nodes over at most 256 connections: 10,000 nodes stay under the usual
     * 20,000 open files on both sides (a watch each, parked, needs its own) */
    char conns_s[16];
    snprintf(conns_s, sizeof(conns_s), "%d", nodes < 256 ? nodes : 256);
    char *fargv[] = {B->fake_bin, "--controller",   url,     "--join-token-file", join,
                     "--nodes",   nodes_s,          "--memory-mb", "65536",     "--vcpus",
                     "64",        "--boot-ms",      "1",     "--status-conns",  conns_s,
                     "--quiet",   NULL};
    fake = spawn(fargv, flog);
    int64_t reg_t0 = nubo_mono_us();
    long ready = 0;
    for (int i = 0; i < 600 && (ready = metric(url, token, "nubo_nodes{state=\"ready\"} ")) < nodes;
         i++)
        usleep(500000);
    if (ready < nodes) {
        fprintf(stderr, "bench_api: only %ld of %d fake nodes became ready in 300 s (see %s)\n",
                ready, nodes, log);
        goto out;
    }
    row->reg_s = (double)(nubo_mono_us() - reg_t0) / 1e6;
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
    long rss0 = proc_rss_kb(ctl);
    /* the cluster at its size first (untimed), then the timed creates on top */
    long pre = total - B->creates;
    if (pre > 0 && (fill(B, port, token, pre, 4) < 0 || !wait_running(url, token, pre, 600, 1000))) {
        fprintf(stderr, "bench_api: filling %ld instances failed (see %s)\n", pre, log);
        goto out;
    }
    l = (struct load){.port = port,
                      .method = EVHTTP_REQ_POST,
                      .token = token,
                      .body = B->create_body,
                      .fixed_path = "/v1/instances",
                      .total = B->creates};
    l.cap_uuids = (size_t)B->creates;
    l.uuids = calloc(l.cap_uuids, sizeof(*l.uuids));
    pid_t perf = 0;
    if (getenv("BENCH_PERF")) {
        char out[PATH_MAX], pid_s[16], plog[PATH_MAX + 8];
        snprintf(out, sizeof(out), "%s/perf.%d.data", getenv("BENCH_PERF"), nodes);
        snprintf(pid_s, sizeof(pid_s), "%d", (int)ctl);
        snprintf(plog, sizeof(plog), "%s.perf", log);
        /* BENCH_PERF_CG: perf's --call-graph (fp by default; dwarf,8192 where libc's frames
         * hide the callers) */
        char *cg = getenv("BENCH_PERF_CG") ? getenv("BENCH_PERF_CG") : "fp";
        char *pargv[] = {"/usr/bin/perf", "record", "--call-graph", cg, "-q", "-p", pid_s,
                         "-o", out, NULL};
        perf = spawn(pargv, plog);
        usleep(500000); /* perf attaches before the creates start */
    }
    long areq0[3], areq1[3];
    agent_requests(url, token, areq0);
    int64_t cpu0 = proc_cpu_us(ctl), t_create0 = nubo_mono_us();
    row->create = run(&l, B->conc);
    if (perf > 0) {
        kill(perf, SIGINT);
        waitpid(perf, NULL, 0);
    }
    row->create_cpu_us = (double)(proc_cpu_us(ctl) - cpu0) / B->creates;
    /* end to end: until the fake agents report every instance running */
    if (strstr(B->create_body, "\"autostart\":false") == NULL) {
        if (!wait_running(url, token, total - row->create.errors, 600,
                          nodes / 20 > 100 ? nodes / 20 : 100)) {
            fprintf(stderr, "bench_api: not every instance reported running (see %s)\n", log);
            goto out;
        }
        row->e2e_per_s = B->creates / ((double)(nubo_mono_us() - t_create0) / 1e6);
        agent_requests(url, token, areq1);
        for (int i = 0; i < 3; i++)
            row->agent_req[i] = (double)(areq1[i] - areq0[i]) / B->creates;
    }
    paths = calloc(l.n_uuids ? l.n_uuids : 1, sizeof(*paths));
    for (size_t i = 0; i < l.n_uuids; i++)
        snprintf(paths[i], sizeof(paths[i]), "/v1/instances/%s", l.uuids[i]);
    struct load g = {.port = port,
                     .method = EVHTTP_REQ_GET,
                     .token = token,
                     .paths = paths,
                     .n_paths = l.n_uuids ? l.n_uuids : 1,
                     .total = B->gets};
    row->get = run(&g, B->conc);
    row->mem_kb_inst = (double)(proc_rss_kb(ctl) - rss0) / (double)total;
    /* idle: only heartbeats and the watches' timeouts, all nodes and instances in place */
    char mname[96];
    snprintf(mname, sizeof(mname), "nubo_api_requests_total{route=\"agent_status\",code=\"2xx\"} ");
    long hb0 = metric(url, token, mname);
    cpu0 = proc_cpu_us(ctl);
    int64_t w0 = nubo_mono_us();
    sleep((unsigned)B->idle_s);
    double win_s = (double)(nubo_mono_us() - w0) / 1e6;
    double cpu_us = (double)(proc_cpu_us(ctl) - cpu0);
    long beats = metric(url, token, mname) - hb0 - 1; /* this scrape's own request is no beat */
    row->hb_per_s = beats / win_s;
    row->hb_cpu_us_node_s = cpu_us / win_s / nodes;
    row->hb_cpu_us_beat = beats > 0 ? cpu_us / beats : 0;
    /* GET /metrics as Prometheus asks it (the admin token, one scrape at a time): latency to
     * the whole body, and the controller's CPU each less the idle window's background rate */
    struct load ml = {.port = port,
                      .method = EVHTTP_REQ_GET,
                      .token = token,
                      .fixed_path = "/metrics",
                      .total = B->scrapes};
    cpu0 = proc_cpu_us(ctl);
    int64_t s0 = nubo_mono_us();
    row->scrape = run(&ml, 1);
    double scrape_s = (double)(nubo_mono_us() - s0) / 1e6;
    row->scrape_cpu_ms =
        ((double)(proc_cpu_us(ctl) - cpu0) - cpu_us / win_s * scrape_s) / B->scrapes / 1e3;
    if (row->scrape_cpu_ms < 0) /* below the idle rate's noise: a small body */
        row->scrape_cpu_ms = 0;
    row->scrape_kib = (double)ml.last_len / 1024.0;
    /* a new controller on the same store: start, load everything, answer (the agents come
     * back to it at once, as at a takeover); its log says how long the load took */
    kill(ctl, SIGTERM);
    waitpid(ctl, NULL, 0);
    if ((f = fopen(ini, "w")) != NULL) {
        /* as the first one: the agents' 256 connections must leave room for the probe */
        fprintf(f, "[controller]\nlog_level = info\nplain_http = loopback\n"
                   "max_connections_per_client = 0\n[registry]\nnotification_secret = bench\n"
                   "url = http://127.0.0.1:1\n[agent]\nsubnet_pool = 10.0.0.0/8\n");
        if (store_url[0])
            fprintf(f, "[store]\nurl = %s\n", store_url);
        fclose(f);
    }
    char log2[PATH_MAX + 8];
    snprintf(log2, sizeof(log2), "%s.2", log);
    log = log2;
    int64_t l0 = nubo_mono_us();
    ctl = start_controller(B->ctl_bin, listen, db, ini, log);
    if (!wait_http(hz, 120)) {
        fprintf(stderr, "bench_api: the restarted controller did not answer (see %s)\n", log);
        goto out;
    }
    row->load_s = (double)(nubo_mono_us() - l0) / 1e6;
    char *text = NULL;
    size_t text_len = 0;
    if (nubo_read_file(log, 1 << 24, &text, &text_len, NULL) == 0) {
        const char *p = strstr(text, " instance(s) in ");
        row->loaded_s = p ? strtod(p + 16, NULL) / 1000.0 : 0;
    }
    free(text);
    row->load_rss_kb = proc_rss_kb(ctl);
    row->ok = row->create.errors == 0 && row->get.errors == 0 && row->scrape.errors == 0;
    printf("bench_api: %d nodes, %ld instances: registered in %.1f s, %.0f creates/s (p99 %.1f "
           "ms, %.0f µs controller CPU each), %.0f/s end to end, get p99 %.2f ms, %.0f "
           "heartbeats/s, a new controller loaded the store in %.2f s and answered after %.2f "
           "s; GET /metrics: %.0f KiB, p50 %.1f ms, p99 %.1f ms, %.1f ms controller CPU each; agent "
           "requests per create: watch %.2f, status %.2f, log %.2f\n",
           nodes, total, row->reg_s, row->create.per_s, row->create.p99_ms, row->create_cpu_us,
           row->e2e_per_s, row->get.p99_ms, row->hb_per_s, row->loaded_s, row->load_s,
           row->scrape_kib, row->scrape.p50_ms, row->scrape.p99_ms, row->scrape_cpu_ms,
           row->agent_req[0], row->agent_req[1], row->agent_req[2]);
out:
    free(paths);
    free(l.uuids);
    free(token);
    if (fake > 0)
        kill(fake, SIGTERM);
    kill(ctl, SIGTERM);
    waitpid(ctl, NULL, 0);
    if (fake > 0)
        waitpid(fake, NULL, 0);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (getenv("BENCH_KEEP") || !row->ok)
        fprintf(stderr, "bench_api: logs kept in %s\n", dir);
    else if (system(cmd) != 0)
        row->ok = false;
}

static void print_rows(const struct bench *B, const struct size_row *rows, size_t n)
{
    printf("bench_api: %d timed creates and %d gets per size on %d connections, fake nodes in one "
           "process, store %s\n",
           B->creates, B->gets, B->conc, B->store_url ? "postgresql" : "sqlite");
    printf("  baseline (trivial evhttp handler): POST %.0f/s p99 %.2f ms, GET %.0f/s p99 %.2f ms\n",
           B->b_create.per_s, B->b_create.p99_ms, B->b_get.per_s, B->b_get.p99_ms);
    printf("  %7s %9s %9s %9s %8s %9s %9s %9s %9s %9s %9s %9s %9s %7s %7s %7s %8s\n", "nodes",
           "instances", "create/s", "cr p99ms", "cr cpuµs", "e2e/s", "get p99ms", "hb/s",
           "hb µs/n/s", "KiB/inst", "met p50ms", "met p99ms", "met cpums", "load s", "up s",
           "reg s", "agreq/cr");
    for (size_t i = 0; i < n; i++) {
        const struct size_row *r = &rows[i];
        if (!r->ok) {
            printf("  %7d %9ld  (failed: see the messages above)\n", r->nodes, r->instances);
            continue;
        }
        printf("  %7d %9ld %9.0f %9.2f %8.0f %9.0f %9.2f %9.0f %9.2f %9.2f %9.2f %9.2f %9.2f "
               "%7.2f %7.2f %7.1f %8.2f\n",
               r->nodes, r->instances, r->create.per_s, r->create.p99_ms, r->create_cpu_us,
               r->e2e_per_s, r->get.p99_ms, r->hb_per_s, r->hb_cpu_us_node_s, r->mem_kb_inst,
               r->scrape.p50_ms, r->scrape.p99_ms, r->scrape_cpu_ms, r->loaded_s, r->load_s,
               r->reg_s, r->agent_req[0] + r->agent_req[1] + r->agent_req[2]);
    }
    printf("  (cr cpuµs: controller CPU per timed create, its agents' reports included; hb: an idle "
           "window, controller CPU per node and second; KiB/inst: RSS delta over the instances; "
           "met: GET /metrics one at a time, its latency and controller CPU each net of the idle "
           "rate; load s: a new controller loading the store, up s: its exec to first answer with every "
           "agent reconnecting; agreq/cr: the agents' watch, status and log requests per timed "
           "create until all run)\n");
    if (n < 2 || !rows[0].ok)
        return;
    const struct size_row *b = &rows[0];
    printf("  ratios against the %d-node row:\n", b->nodes);
    for (size_t i = 1; i < n; i++) {
        const struct size_row *r = &rows[i];
        if (!r->ok)
            continue;
        printf("  %7d nodes: create/s x%.2f, create CPU x%.2f, get p99 x%.2f, heartbeat CPU per "
               "node x%.2f, memory per instance x%.2f, /metrics CPU x%.1f, load x%.1f for x%.1f "
               "the instances\n",
               r->nodes, r->create.per_s / b->create.per_s, r->create_cpu_us / b->create_cpu_us,
               r->get.p99_ms / b->get.p99_ms, r->hb_cpu_us_node_s / b->hb_cpu_us_node_s,
               r->mem_kb_inst / b->mem_kb_inst,
               b->scrape_cpu_ms > 0 ? r->scrape_cpu_ms / b->scrape_cpu_ms : 0,
               r->loaded_s / b->loaded_s,
               (double)r->instances / (double)b->instances);
    }
}

int main(int argc, char **argv)
{
    struct bench B = {
        .creates = 10000, .gets = 20000, .conc = 16, .per_node = 10, .idle_s = 10, .scrapes = 20};
    const char *sizes = "64";
    setvbuf(stdout, NULL, _IOLBF, 0); /* progress lines survive a timeout(1) kill */
    /* the controller and the fake agent each hold two connections per node; as root, let them
     * (both raise their soft limit to this hard one) */
    struct rlimit rl = {1 << 17, 1 << 17};
    setrlimit(RLIMIT_NOFILE, &rl);
    static const struct option opts[] = {{"creates", required_argument, NULL, 'c'},
                                         {"gets", required_argument, NULL, 'g'},
                                         {"concurrency", required_argument, NULL, 'C'},
                                         {"nodes", required_argument, NULL, 'n'},
                                         {"per-node", required_argument, NULL, 'p'},
                                         {"idle-s", required_argument, NULL, 'i'},
                                         {"store-url", required_argument, NULL, 's'},
                                         {"scrapes", required_argument, NULL, 'm'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            B.creates = atoi(optarg);
            break;
        case 'g':
            B.gets = atoi(optarg);
            break;
        case 'C':
            B.conc = atoi(optarg);
            break;
        case 'n':
            sizes = optarg;
            break;
        case 'p':
            B.per_node = atoi(optarg);
            break;
        case 'i':
            B.idle_s = atoi(optarg);
            break;
        case 's':
            B.store_url = optarg;
            break;
        case 'm':
            B.scrapes = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: bench_api [--creates N] [--gets N] [--concurrency C] "
                            "[--nodes N[,N...]] [--per-node N] [--idle-s S] [--scrapes N] "
                            "[--store-url URL]\n");
            return 2;
        }
    }
    if (B.creates < 1 || B.gets < 1 || B.conc < 1 || B.per_node < 0 || B.per_node > 253 ||
        B.idle_s < 1 || B.scrapes < 1) {
        fprintf(stderr, "bench_api: creates, gets, concurrency, idle-s and scrapes are at least "
                        "1, per-node 0..253\n");
        return 2;
    }
    int size_v[16];
    size_t n_sizes = 0;
    for (char *dup = strdup(sizes), *save = NULL, *t = strtok_r(dup, ",", &save);
         t && n_sizes < 16; t = strtok_r(NULL, ",", &save)) {
        size_v[n_sizes] = atoi(t);
        if (size_v[n_sizes] < 1 || size_v[n_sizes] > 65536 ||
            B.creates > size_v[n_sizes] * 253) {
            fprintf(stderr, "bench_api: %s nodes: 1..65536 nodes, at least %d for %d creates\n",
                    t, B.creates / 253 + 1, B.creates);
            return 2;
        }
        n_sizes++;
    }
    signal(SIGPIPE, SIG_IGN);
    nu_http_global_init();
    /* the binaries live next to this one in the build tree */
    char self[PATH_MAX], build[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (sl < 0)
        return 1;
    self[sl] = '\0';
    snprintf(build, sizeof(build), "%s", self);
    *strrchr(build, '/') = '\0';
    *strrchr(build, '/') = '\0';
    snprintf(B.ctl_bin, sizeof(B.ctl_bin), "%s/controller/nubo-controller", build);
    snprintf(B.fake_bin, sizeof(B.fake_bin), "%s/tests/nubo-fake-agent", build);
    if (access(B.ctl_bin, X_OK) || access(B.fake_bin, X_OK)) {
        fprintf(stderr, "bench_api: build nubo-controller and nubo-fake-agent first\n");
        return 1;
    }
    B.create_body = getenv("BENCH_BODY")
                        ? getenv("BENCH_BODY")
                        : "{\"image\":\"admin/bench:latest\",\"memory_mb\":16,\"autostart\":true}";
    /* the baseline: the same POST and GETs against a trivial handler */
    B.bport = free_port();
    pid_t base_pid = start_baseline(B.bport);
    usleep(200000);
    struct load bl = {.port = B.bport,
                      .method = EVHTTP_REQ_POST,
                      .token = "x",
                      .body = B.create_body,
                      .fixed_path = "/v1/instances",
                      .total = B.creates};
    B.b_create = run(&bl, B.conc);
    struct load bg = {.port = B.bport,
                      .method = EVHTTP_REQ_GET,
                      .token = "x",
                      .fixed_path = "/v1/instances/00000000-0000-4000-8000-000000000000",
                      .total = B.gets};
    B.b_get = run(&bg, B.conc);
    kill(base_pid, SIGTERM);
    waitpid(base_pid, NULL, 0);
    struct size_row rows[16];
    int rc = 0;
    for (size_t i = 0; i < n_sizes; i++) {
        run_size(&B, size_v[i], &rows[i]);
        rc |= !rows[i].ok;
    }
    print_rows(&B, rows, n_sizes);
    return rc;
}
