/* A fake nubo-agent for tests and benchmarks: many nodes in one process, speaking the real
 * agent protocol (proto/agent.h) to a real controller: register, long-poll watch, batched
 * status reports that follow each assignment through starting -> running -> stopped, and a
 * console line per boot, without any VM. An instance whose env has NUBO_FAKE_CRASH crashes
 * instead of reaching running (stopped, stop_reason kernel, with a message). With --hook PROG,
 * `PROG start <uuid> <ip>` runs (and must succeed) before an instance reports running and
 * `PROG stop <uuid> <ip>` when it stops, so a test can serve a real app for each "guest". With
 * --volume-mb it offers that much disk to volumes and reports every volume of its desired set
 * available (no file behind it). Each node keeps a register key as the real agent does
 * (--no-register-key: registers as agents before it did). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "agent.h"
#include "util.h"

struct opts {
    char host[128];
    int port;
    char join_token[NUBO_AGENT_TOKEN_MAX];
    int nodes;
    char prefix[32];
    char metro[NUBO_NAME_MAX + 1];
    int64_t memory_mb, vcpus;
    int64_t boot_ms;
    int64_t volume_mb;
    bool quiet;
    char hook[512];
    char state_dir[512]; /* "" = node tokens kept in memory only */
    int status_conns;    /* 0 = a status connection per node; N = N shared by all nodes */
    bool no_register_key; /* register as agents did before the register key */
};

struct fnode;

struct finst {
    struct finst *next;
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t start_seq; /* last start acted on */
    enum nubo_state state;
    int64_t start_count;
    int64_t started_at_us, stopped_at_us;
    int64_t stop_reason;
    int64_t boot_time_us;
    bool present; /* in the latest desired set */
    bool crash;   /* env NUBO_FAKE_CRASH: every boot ends in a crash */
    char ip[NUBO_IP_STR_MAX];
    bool dirty;   /* a report is pending */
    bool log_pending;
    int64_t log_offset;
    int64_t boot_start_us;
    struct event *boot_timer;
    struct fnode *node;
};

struct fctx;

struct fnode {
    struct fctx *fx;
    char name[NUBO_NAME_MAX + 1];
    char token[NUBO_AGENT_TOKEN_MAX]; /* the node token, once registered: it registers again */
    bool reg_with_token;              /* the register in flight sent the node token */
    /* like the real agent's: made (and kept in the state dir) before the first register */
    char register_key[NUBO_REGISTER_KEY_MAX];
    bool registered, registering;
    int backoff_ms; /* register retry delay, reset by a success */
    int64_t version;
    int64_t hb_ms;
    struct evhttp_connection *watch_conn, *conn;
    struct finst *insts;
    bool status_inflight;
    struct event *flush_ev, *hb_ev;
    struct nubo_volume_report *vols; /* the volumes of the latest desired set */
    size_t n_vols;
    bool vols_dirty;
};

struct fctx {
    struct opts o;
    struct event_base *base;
    struct fnode *nodes;
    int registered;
};

static void do_register(struct fnode *n);
static void do_watch(struct fnode *n);
static void schedule_flush(struct fnode *n);

static struct evhttp_request *new_req(struct fnode *n, void (*cb)(struct evhttp_request *, void *),
                                      const char *token)
{
    struct evhttp_request *r = evhttp_request_new(cb, n);
    struct evkeyvalq *h = evhttp_request_get_output_headers(r);
    evhttp_add_header(h, "Host", "controller");
    evhttp_add_header(h, "Content-Type", "application/json");
    if (token) {
        char auth[NUBO_AGENT_TOKEN_MAX + 16];
        snprintf(auth, sizeof(auth), "Bearer %s", token);
        evhttp_add_header(h, "Authorization", auth);
    }
    return r;
}

static json_t *reply_json(struct evhttp_request *req)
{
    if (req == NULL || evhttp_request_get_response_code(req) != 200)
        return NULL;
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(b);
    json_t *j = NULL;
    if (len == 0 ||
        pj_parse((const char *)evbuffer_pullup(b, -1), len, NUBO_AGENT_MAX_BODY, &j, NULL) < 0)
        return NULL;
    return j;
}

static void post_json(struct fnode *n, struct evhttp_connection *c, const char *path, json_t *j,
                      void (*cb)(struct evhttp_request *, void *), const char *token)
{
    char *text = pj_dump(j);
    json_decref(j);
    struct evhttp_request *r = new_req(n, cb, token);
    evbuffer_add(evhttp_request_get_output_buffer(r), text, strlen(text));
    free(text);
    evhttp_make_request(c, r, EVHTTP_REQ_POST, path);
}

static void retry_cb(evutil_socket_t fd, short what, void *arg)
{
    do_register(arg);
}

static void reregister_later(struct fnode *n)
{
    if (!n->registered && n->registering)
        return;
    n->registered = false;
    n->registering = true;
    /* back off like the real agent (200 ms doubling to 5 s): thousands of fake nodes retrying
     * a refused register every 200 ms would be a load test of their own */
    n->backoff_ms = n->backoff_ms ? (n->backoff_ms * 2 > 5000 ? 5000 : n->backoff_ms * 2) : 200;
    struct timeval tv = {n->backoff_ms / 1000, (n->backoff_ms % 1000) * 1000};
    event_base_once(n->fx->base, -1, EV_TIMEOUT, retry_cb, n, &tv);
}

/* ---- status ---- */

static void status_cb(struct evhttp_request *req, void *arg)
{
    struct fnode *n = arg;
    n->status_inflight = false;
    if (req && evhttp_request_get_response_code(req) == 401) {
        reregister_later(n);
        return;
    }
    json_t *j = reply_json(req);
    struct nubo_status_resp r;
    if (j && nubo_status_resp_decode(j, &r, NULL) == 0 && r.heartbeat_interval_ms > 0 &&
        r.heartbeat_interval_ms != n->hb_ms && n->hb_ev) {
        n->hb_ms = r.heartbeat_interval_ms;
        if (!n->fx->o.quiet)
            printf("%s: heartbeat interval now %lld ms\n", n->name, (long long)n->hb_ms), fflush(stdout);
        int64_t hb = nubo_jitter_ms(n->hb_ms); /* as the agent: nodes told at once spread out */
        struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
        evtimer_add(n->hb_ev, &tv);
    }
    json_decref(j);
    bool more = n->vols_dirty;
    for (struct finst *fi = n->insts; fi; fi = fi->next)
        more = more || fi->dirty || fi->log_pending;
    if (more)
        schedule_flush(n);
}

static void log_cb(struct evhttp_request *req, void *arg)
{
    (void)req;
    (void)arg;
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fnode *n = arg;
    if (!n->registered || n->status_inflight)
        return;
    size_t cnt = 0, nlog = 0;
    for (struct finst *fi = n->insts; fi; fi = fi->next) {
        cnt += fi->dirty;
        nlog += fi->log_pending;
    }
    struct nubo_status_report *reps = calloc(cnt + 1, sizeof(*reps));
    size_t k = 0;
    for (struct finst *fi = n->insts; fi && reps; fi = fi->next) {
        if (!fi->dirty)
            continue;
        struct nubo_status_report *r = &reps[k++];
        memcpy(r->uuid, fi->uuid, sizeof(r->uuid));
        r->state = fi->state;
        r->start_seq = fi->start_seq;
        r->start_count = fi->start_count;
        r->started_at_us = fi->started_at_us;
        r->stopped_at_us = fi->stopped_at_us;
        r->stop_reason = fi->stop_reason;
        r->boot_time_us = fi->boot_time_us;
        r->phases.guest_us = fi->boot_time_us;
        if (fi->crash && fi->state == NUBO_STATE_STOPPED && fi->stop_reason == NUBO_STOP_KERNEL)
            r->message = (char *)"fake: kernel panic during boot"; /* borrowed */
        if (fi->state == NUBO_STATE_STOPPED && fi->stop_reason & NUBO_STOP_APP) {
            r->has_exit_code = true;
            r->exit_code = 0;
        }
        fi->dirty = false;
    }
    struct nubo_status_batch b = {.instances = reps, .n_instances = k};
    if (n->vols_dirty) {
        b.volumes = n->vols;
        b.n_volumes = n->n_vols;
        n->vols_dirty = false;
    }
    n->status_inflight = true;
    post_json(n, n->conn, NUBO_AGENT_PATH_STATUS, nubo_status_batch_encode(&b), status_cb,
              n->token);
    free(reps);
    if (nlog) {
        struct nubo_log_chunk *c = calloc(nlog, sizeof(*c));
        size_t m = 0;
        for (struct finst *fi = n->insts; fi && c; fi = fi->next) {
            if (!fi->log_pending)
                continue;
            char line[160];
            int len = snprintf(line, sizeof(line), "fake boot %lld of %s\nNUBO_READY\n",
                               (long long)fi->start_count, fi->uuid);
            memcpy(c[m].uuid, fi->uuid, sizeof(c[m].uuid));
            c[m].offset = fi->log_offset;
            c[m].data = (unsigned char *)strdup(line);
            c[m].len = (size_t)len;
            fi->log_offset += len;
            fi->log_pending = false;
            m++;
        }
        struct nubo_log_batch lb = {c, m};
        post_json(n, n->conn, NUBO_AGENT_PATH_LOG, nubo_log_batch_encode(&lb), log_cb, n->token);
        nubo_log_batch_free(&lb);
    }
}

static void schedule_flush(struct fnode *n)
{
    event_active(n->flush_ev, 0, 0);
}

static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fnode *n = arg;
    int64_t hb = nubo_jitter_ms(n->hb_ms);
    struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
    evtimer_add(n->hb_ev, &tv);
    if (n->registered && !n->status_inflight)
        flush_cb(-1, 0, n); /* possibly empty: a heartbeat */
}

/* ---- instances ---- */

static void set_state(struct finst *fi, enum nubo_state s)
{
    fi->state = s;
    fi->dirty = true;
    schedule_flush(fi->node);
}

/* --hook: synchronous (blocks the fake nodes while it runs; tests keep it short). */
static bool run_hook(const struct finst *fi, const char *what)
{
    const char *hook = fi->node->fx->o.hook;
    if (!hook[0])
        return true;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        execl(hook, hook, what, fi->uuid, fi->ip, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return false;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static void boot_done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct finst *fi = arg;
    if (fi->state != NUBO_STATE_STARTING)
        return;
    if (!fi->crash && !run_hook(fi, "start"))
        fi->crash = true; /* the app did not come up: report it like a crash */
    if (fi->crash) {
        fi->stopped_at_us = nubo_now_us();
        fi->stop_reason = NUBO_STOP_KERNEL;
        set_state(fi, NUBO_STATE_STOPPED);
        return;
    }
    fi->boot_time_us = nubo_mono_us() - fi->boot_start_us;
    if (fi->boot_time_us < 1)
        fi->boot_time_us = 1;
    fi->log_pending = true;
    set_state(fi, NUBO_STATE_RUNNING);
}

static void start_inst(struct finst *fi)
{
    fi->start_count++;
    fi->started_at_us = nubo_now_us();
    fi->stopped_at_us = 0;
    fi->stop_reason = 0;
    fi->boot_time_us = 0;
    fi->boot_start_us = nubo_mono_us();
    set_state(fi, NUBO_STATE_STARTING);
    int64_t ms = fi->node->fx->o.boot_ms;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (fi->boot_timer == NULL)
        fi->boot_timer = evtimer_new(fi->node->fx->base, boot_done_cb, fi);
    evtimer_add(fi->boot_timer, &tv);
}

static void apply(struct fnode *n, struct nubo_watch_resp *w)
{
    if (w->has_volumes) {
        free(n->vols);
        n->vols = calloc(w->n_volumes + 1, sizeof(*n->vols));
        n->n_vols = n->vols ? w->n_volumes : 0;
        for (size_t i = 0; i < n->n_vols; i++) {
            memcpy(n->vols[i].uuid, w->volumes[i].uuid, sizeof(n->vols[i].uuid));
            n->vols[i].state = NUBO_VOL_AVAILABLE;
        }
        n->vols_dirty = n->n_vols > 0;
    }
    for (struct finst *fi = n->insts; fi; fi = fi->next)
        fi->present = false;
    for (size_t i = 0; i < w->n_assignments; i++) {
        struct nubo_assignment *a = &w->assignments[i];
        struct finst *fi = n->insts;
        while (fi && strcmp(fi->uuid, a->uuid) != 0)
            fi = fi->next;
        if (fi == NULL) {
            fi = calloc(1, sizeof(*fi));
            memcpy(fi->uuid, a->uuid, sizeof(fi->uuid));
            fi->node = n;
            fi->state = NUBO_STATE_STOPPED;
            fi->next = n->insts;
            n->insts = fi;
            for (size_t k = 0; k < a->n_env; k++)
                fi->crash = fi->crash || strcmp(a->env[k].key, "NUBO_FAKE_CRASH") == 0;
        }
        fi->present = true;
        snprintf(fi->ip, sizeof(fi->ip), "%s", a->private_ip);
        bool live = fi->state == NUBO_STATE_STARTING || fi->state == NUBO_STATE_RUNNING;
        if (a->desired_state == NUBO_DESIRED_RUNNING && a->start_seq > fi->start_seq) {
            fi->start_seq = a->start_seq;
            if (!live)
                start_inst(fi);
            else
                set_state(fi, fi->state); /* report the new start_seq */
        } else if (a->desired_state == NUBO_DESIRED_STOPPED && live) {
            if (fi->boot_timer)
                evtimer_del(fi->boot_timer);
            if (fi->state == NUBO_STATE_RUNNING)
                run_hook(fi, "stop");
            fi->stopped_at_us = nubo_now_us();
            fi->stop_reason =
                a->stop_force
                    ? (NUBO_STOP_FORCED | NUBO_STOP_USER | NUBO_STOP_PLATFORM)
                    : (NUBO_STOP_USER | NUBO_STOP_PLATFORM | NUBO_STOP_APP | NUBO_STOP_KERNEL);
            set_state(fi, NUBO_STATE_STOPPED);
        }
    }
    /* gone from the desired set: delete */
    for (struct finst **pp = &n->insts; *pp;) {
        struct finst *fi = *pp;
        if (fi->present) {
            pp = &fi->next;
            continue;
        }
        *pp = fi->next;
        if (fi->state == NUBO_STATE_RUNNING)
            run_hook(fi, "stop");
        if (fi->boot_timer)
            event_free(fi->boot_timer);
        free(fi);
    }
    if (n->vols_dirty)
        schedule_flush(n);
}

/* ---- watch / register ---- */

static void watch_cb(struct evhttp_request *req, void *arg)
{
    struct fnode *n = arg;
    if (req && evhttp_request_get_response_code(req) == 401) {
        reregister_later(n);
        return;
    }
    json_t *j = reply_json(req);
    struct nubo_watch_resp w;
    struct nubo_err err = {0};
    if (j == NULL || nubo_watch_resp_decode(j, &w, &err) < 0) {
        json_decref(j);
        if (!n->fx->o.quiet)
            fprintf(stderr, "fake-agent %s: watch failed (%d) %s\n", n->name,
                    req ? evhttp_request_get_response_code(req) : 0, err.msg);
        reregister_later(n);
        return;
    }
    json_decref(j);
    n->version = w.version;
    apply(n, &w);
    nubo_watch_resp_free(&w);
    do_watch(n);
}

static void do_watch(struct fnode *n)
{
    char path[128];
    snprintf(path, sizeof(path), "%s?version=%lld&timeout_ms=30000", NUBO_AGENT_PATH_WATCH,
             (long long)n->version);
    struct evhttp_request *r = new_req(n, watch_cb, n->token);
    evhttp_make_request(n->watch_conn, r, EVHTTP_REQ_GET, path);
}

/* Like the real agent's <state_dir>/node-token: one file per fake node. */
static void token_path(const struct fnode *n, char *out, size_t size)
{
    snprintf(out, size, "%s/%s.token", n->fx->o.state_dir, n->name);
}

/* The node's register key (the real agent's <state_dir>/register-key): the kept one, or a new
 * one, kept before it is first sent. */
static void register_key_ensure(struct fnode *n)
{
    if (n->register_key[0] || n->fx->o.no_register_key)
        return;
    char kp[600], *text = NULL;
    size_t len = 0;
    snprintf(kp, sizeof(kp), "%s/%s.register-key", n->fx->o.state_dir, n->name);
    if (n->fx->o.state_dir[0] &&
        nubo_read_file(kp, NUBO_REGISTER_KEY_MAX - 1, &text, &len, NULL) == 0 &&
        nubo_register_key_valid(text)) {
        snprintf(n->register_key, sizeof(n->register_key), "%s", text);
        free(text);
        return;
    }
    free(text);
    nubo_random_alnum(n->register_key, 52);
    struct nubo_err err = {0};
    if (n->fx->o.state_dir[0] &&
        nubo_write_file_atomic(kp, n->register_key, strlen(n->register_key), 0600, &err) < 0)
        fprintf(stderr, "fake-agent %s: %s\n", n->name, err.msg);
}

static void register_cb(struct evhttp_request *req, void *arg)
{
    struct fnode *n = arg;
    json_t *j = reply_json(req);
    struct nubo_register_resp r;
    struct nubo_err err = {0};
    n->registering = false;
    char tp[600];
    token_path(n, tp, sizeof(tp));
    if (req && evhttp_request_get_response_code(req) == 401 && n->reg_with_token) {
        n->token[0] = '\0'; /* unknown to the controller: the join token next */
        if (n->fx->o.state_dir[0])
            unlink(tp);
    }
    if (j == NULL || nubo_register_resp_decode(j, &r, &err) < 0) {
        json_decref(j);
        if (!n->fx->o.quiet)
            fprintf(stderr, "fake-agent %s: register failed (%d) %s\n", n->name,
                    req ? evhttp_request_get_response_code(req) : 0, err.msg);
        reregister_later(n);
        return;
    }
    json_decref(j);
    memcpy(n->token, r.token, sizeof(n->token));
    if (n->fx->o.state_dir[0] && nubo_write_file_atomic(tp, n->token, strlen(n->token), 0600,
                                                        &err) < 0)
        fprintf(stderr, "fake-agent %s: %s\n", n->name, err.msg);
    n->backoff_ms = 0;
    n->hb_ms = r.heartbeat_interval_ms;
    bool first = !n->registered && n->hb_ev == NULL;
    n->registered = true;
    n->version = 0;
    if (first) {
        n->hb_ev = event_new(n->fx->base, -1, 0, hb_cb, n);
        /* the first beat at a random point of the interval: real nodes do not start in step */
        int64_t first_ms = 1 + (int64_t)(random() % (n->hb_ms > 1 ? n->hb_ms : 1));
        struct timeval tv = {first_ms / 1000, (first_ms % 1000) * 1000};
        evtimer_add(n->hb_ev, &tv);
        if (++n->fx->registered == n->fx->o.nodes && !n->fx->o.quiet) {
            printf("registered %d node(s)\n", n->fx->o.nodes);
            fflush(stdout);
        }
    }
    do_watch(n);
}

static void do_register(struct fnode *n)
{
    n->registering = true;
    struct nubo_register_req rq = {0};
    memcpy(rq.name, n->name, sizeof(rq.name));
    memcpy(rq.metro, n->fx->o.metro, sizeof(rq.metro));
    rq.memory_mb = n->fx->o.memory_mb;
    rq.vcpus = n->fx->o.vcpus;
    snprintf(rq.accel, sizeof(rq.accel), "tcg");
    snprintf(rq.agent_version, sizeof(rq.agent_version), "fake-0.1");
    register_key_ensure(n);
    memcpy(rq.register_key, n->register_key, sizeof(rq.register_key));
    rq.volume_mb = n->fx->o.volume_mb;
    rq.volumes = n->vols;
    rq.n_volumes = n->n_vols;
    size_t cnt = 0;
    for (struct finst *fi = n->insts; fi; fi = fi->next)
        cnt++;
    rq.instances = calloc(cnt + 1, sizeof(*rq.instances));
    for (struct finst *fi = n->insts; fi && rq.instances; fi = fi->next) {
        struct nubo_status_report *r = &rq.instances[rq.n_instances++];
        memcpy(r->uuid, fi->uuid, sizeof(r->uuid));
        r->state = fi->state;
        r->start_seq = fi->start_seq;
        r->start_count = fi->start_count;
        r->started_at_us = fi->started_at_us;
        r->stopped_at_us = fi->stopped_at_us;
        r->boot_time_us = fi->boot_time_us;
    }
    json_t *j = nubo_register_req_encode(&rq);
    free(rq.instances);
    if (n->token[0] == '\0' && n->fx->o.state_dir[0]) {
        char tp[600], *text = NULL;
        size_t len = 0;
        token_path(n, tp, sizeof(tp));
        if (nubo_read_file(tp, NUBO_AGENT_TOKEN_MAX - 1, &text, &len, NULL) == 0)
            snprintf(n->token, sizeof(n->token), "%s", text);
        free(text);
    }
    /* a known node comes back with its node token; the join token only brings a new name */
    n->reg_with_token = n->token[0] != '\0';
    post_json(n, n->conn, NUBO_AGENT_PATH_REGISTER, j, register_cb,
              n->reg_with_token ? n->token : n->fx->o.join_token);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct fctx fx = {0};
    struct opts *o = &fx.o;
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 7060;
    o->nodes = 1;
    snprintf(o->prefix, sizeof(o->prefix), "fake");
    snprintf(o->metro, sizeof(o->metro), "fra0");
    o->memory_mb = 8192;
    o->vcpus = 8;
    o->boot_ms = 20;
    static const struct option opts[] = {
        {"controller", required_argument, NULL, 'c'},
        {"join-token-file", required_argument, NULL, 'j'},
        {"nodes", required_argument, NULL, 'n'},
        {"prefix", required_argument, NULL, 'p'},
        {"metro", required_argument, NULL, 'm'},
        {"memory-mb", required_argument, NULL, 'M'},
        {"vcpus", required_argument, NULL, 'V'},
        {"boot-ms", required_argument, NULL, 'b'},
        {"quiet", no_argument, NULL, 'q'},
        {"volume-mb", required_argument, NULL, 'D'},
        {"hook", required_argument, NULL, 'H'},
        {"state-dir", required_argument, NULL, 'S'},
        {"status-conns", required_argument, NULL, 'C'},
        {"no-register-key", no_argument, NULL, 'K'},
        {NULL, 0, NULL, 0},
    };
    int c;
    int64_t v;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'c': {
            /* http://HOST:PORT */
            const char *s = optarg;
            if (strncmp(s, "http://", 7) == 0)
                s += 7;
            snprintf(o->host, sizeof(o->host), "%s", s);
            char *colon = strrchr(o->host, ':');
            if (colon) {
                *colon = '\0';
                o->port = atoi(colon + 1);
            }
            char *slash = strchr(colon ? colon + 1 : o->host, '/');
            (void)slash;
            break;
        }
        case 'j': {
            char *text = NULL;
            size_t len;
            struct nubo_err err = {0};
            if (nubo_read_file(optarg, 4096, &text, &len, &err) < 0) {
                fprintf(stderr, "nubo-fake-agent: %s\n", err.msg);
                return 1;
            }
            while (len && (text[len - 1] == '\n' || text[len - 1] == ' '))
                text[--len] = '\0';
            snprintf(o->join_token, sizeof(o->join_token), "%s", text);
            free(text);
            break;
        }
        case 'n':
            if (nubo_parse_int(optarg, 1, 100000, &v, NULL) == 0)
                o->nodes = (int)v;
            break;
        case 'p':
            snprintf(o->prefix, sizeof(o->prefix), "%s", optarg);
            break;
        case 'm':
            snprintf(o->metro, sizeof(o->metro), "%s", optarg);
            break;
        case 'M':
            if (nubo_parse_int(optarg, 16, INT64_C(1) << 32, &v, NULL) == 0)
                o->memory_mb = v;
            break;
        case 'V':
            if (nubo_parse_int(optarg, 1, 4096, &v, NULL) == 0)
                o->vcpus = v;
            break;
        case 'b':
            if (nubo_parse_int(optarg, 0, 600000, &v, NULL) == 0)
                o->boot_ms = v;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'D':
            if (nubo_parse_int(optarg, 0, INT64_C(1) << 40, &v, NULL) == 0)
                o->volume_mb = v;
            break;
        case 'H':
            snprintf(o->hook, sizeof(o->hook), "%s", optarg);
            break;
        case 'C':
            if (nubo_parse_int(optarg, 0, 100000, &v, NULL) == 0)
                o->status_conns = (int)v;
            break;
        case 'K':
            o->no_register_key = true;
            break;
        case 'S':
            snprintf(o->state_dir, sizeof(o->state_dir), "%s", optarg);
            if (nubo_mkdir_p(o->state_dir, 0700, NULL) < 0) {
                fprintf(stderr, "nubo-fake-agent: cannot create %s\n", o->state_dir);
                return 1;
            }
            break;
        default:
            fprintf(stderr, "usage: nubo-fake-agent --controller http://HOST:PORT "
                            "--join-token-file FILE [--nodes N] [--prefix P] [--metro M] "
                            "[--memory-mb N] [--vcpus N] [--boot-ms N] [--hook PROG] [--volume-mb N] "
                            "[--state-dir DIR] [--status-conns N] [--no-register-key] [--quiet]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    fx.base = event_base_new();
    srandom((unsigned)getpid());
    nubo_raise_nofile(); /* a watch and a status connection per node */
    fx.nodes = calloc((size_t)o->nodes, sizeof(*fx.nodes));
    /* --status-conns: registers, reports and logs of all nodes share N connections (queued on
     * each), so 10,000 simulated nodes hold 10,000 watches + N sockets, not twice 10,000: the
     * open-files limit (often 20,000 and not raisable) binds both this process and the
     * controller */
    struct evhttp_connection **shared = NULL;
    if (o->status_conns > 0) {
        shared = calloc((size_t)o->status_conns, sizeof(*shared));
        for (int i = 0; i < o->status_conns; i++) {
            shared[i] = evhttp_connection_base_new(fx.base, NULL, o->host, (unsigned short)o->port);
            evhttp_connection_set_retries(shared[i], 0);
        }
    }
    for (int i = 0; i < o->nodes; i++) {
        struct fnode *n = &fx.nodes[i];
        n->fx = &fx;
        snprintf(n->name, sizeof(n->name), "%s-%d", o->prefix, i);
        n->conn = shared ? shared[i % o->status_conns]
                         : evhttp_connection_base_new(fx.base, NULL, o->host,
                                                      (unsigned short)o->port);
        n->watch_conn = evhttp_connection_base_new(fx.base, NULL, o->host, (unsigned short)o->port);
        evhttp_connection_set_timeout(n->watch_conn, 90);
        if (!shared)
            evhttp_connection_set_retries(n->conn, 0);
        n->flush_ev = event_new(fx.base, -1, 0, flush_cb, n);
        do_register(n);
    }
    struct event *si = evsignal_new(fx.base, SIGINT, on_signal, fx.base);
    struct event *st = evsignal_new(fx.base, SIGTERM, on_signal, fx.base);
    evsignal_add(si, NULL);
    evsignal_add(st, NULL);
    event_base_dispatch(fx.base);
    return 0;
}
