/* Scale-to-zero at the ingress: the activator and the traffic reporter, on one thread of their
 * own (a libevent loop) next to the watch loop. Threading: the watch thread owns the plan and
 * hands the activator a snapshot after each apply (ing_act_update: mutex + eventfd); everything
 * else here runs on the activator's loop.
 *
 * Activator: every backend has a `backup` server on a unix socket of ours, which HAProxy uses
 * only while none of the group's instance servers is up. A request or connection arriving there
 * is held unread (its bytes wait in the socket; only its end is watched), the controller is
 * asked to wake a standby instance (POST /ingress/v1/wake), and once the watch shows the
 * instance running and its server is `ready` (the watch thread applied it before handing over
 * the snapshot) and a connect of our own to its port succeeds (the app may listen well after
 * `running`), the held connection is spliced into HAProxy again through the backend's re-entry
 * frontend (a unix socket, render.c), which now picks the instance's server. The client sees
 * one slow response. Spliced rather than closed for HAProxy's own retry (`retry-on
 * empty-response`): a reload during the wake leaves the held connection with the old worker,
 * which never learns that the instance's server is up (the runtime API reaches the new one)
 * and, in its soft stop, cannot open a socket behind `namespace` at all; the re-entry socket
 * is the current worker's. A spliced request also keeps a body HAProxy could not replay.
 * Nothing will come (no standby or starting instance, or the wake timed out): an HTTP request
 * gets a 503, a TCP connection is closed.
 *
 * Reporter: every traffic_interval_ms, HAProxy's `show stat` per-server counters (scur, stot,
 * bin, bout) and the client connections per HTTP backend (`show table nubo_conns`: in HTTP mode
 * a keep-alive connection between requests holds no server session) become, per instance, the
 * sessions and connections open now, the time since they last moved, the time since the last
 * request in flight (policy idle) and whether its slots are drained (POST
 * /ingress/v1/traffic); the controller decides standby. The same report carries the
 * API's instance metrics: nreqs / nconns (scur of its HTTP / TCP servers), nqueued (qcur) and
 * ntotal (stot increments while it held the slot; kept an hour after it last had one, so a
 * standby and wake does not start it again). */
#include "ingress_core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "cleanup.h"
#include "http.h"
#include "log.h"
#include "pjson.h"

#define ACT_BACKLOG 1024
#define ACT_MAX_HELD 4096         /* held connections in all; past it a request gets 503 at once */
#define ACT_LINGER_MS 2000        /* a 503's connection waits this long for HAProxy's close */
#define ACT_WAKE_AGAIN_US 1000000 /* a wake the watch does not show yet is asked again after */
#define ACT_SERVER_MAX (ING_BE_NAME_MAX + NUBO_NAME_MAX + 24)
#define ACT_MAX_PIPES 4096            /* spliced TCP connections; past it one is closed */
#define ACT_PIPE_BUF (256u << 10)     /* bytes one direction of a splice holds before it waits */
#define ACT_TOTAL_FORGET_US (3600 * INT64_C(1000000)) /* ntotal of an instance without a slot */
#define ACT_PROBE_AGAIN_MS 20   /* a refused port probe is tried again after */
/* A probe's connect timeout starts short and doubles with each one that times out: a guest whose
 * network is not up yet drops the SYN, and waiting a whole second for it then delayed every
 * wake by up to that second; a guest slow to answer under load still gets up to a second. */
#define ACT_PROBE_TIMEOUT_MIN_MS 50
#define ACT_PROBE_TIMEOUT_MS 1000

#define ACT_503_BODY "no instance of this service could be started.\n"
static const char act_503[] = "HTTP/1.1 503 Service Unavailable\r\n"
                              "Content-Type: text/plain\r\n"
                              "Content-Length: 46\r\n"
                              "Connection: close\r\n\r\n" ACT_503_BODY;
_Static_assert(sizeof(ACT_503_BODY) - 1 == 46, "Content-Length of the activator's 503");

struct act_target {
    char be[ING_BE_NAME_MAX];
    char service[NUBO_UUID_STR_LEN + 1];
    bool ready; /* an instance server is up */
    bool tcp;   /* mode tcp: a refusal is a close, not a 503 */
    int64_t n_standby, n_starting, n_draining;
    /* a ready instance server's address, probed before what waits is released */
    char ip[NUBO_IP_STR_MAX];
    int64_t port;
    char netns[NUBO_NAME_MAX + 1]; /* "" = reached directly */
};
struct act_slot {
    char be[ING_BE_NAME_MAX];
    char server[ACT_SERVER_MAX];
    char instance[NUBO_UUID_STR_LEN + 1]; /* "" = an empty slot (kept for ntotal) */
    char sleeper[NUBO_UUID_STR_LEN + 1];  /* an empty slot's instance asleep (plan.c) */
    bool http;
    bool draining; /* HAProxy's drain state: no new requests */
};
struct act_snap {
    struct act_target *t;
    size_t nt;
    struct act_slot *s;
    size_t ns;
};

struct act_listener {
    struct act_listener *next;
    struct ing_act *a;
    char be[ING_BE_NAME_MAX];
    char path[ING_PATH_MAX + 64];
    int fd;
    struct event *ev;
    int64_t wake_asked_us; /* 0 = not asked since it last had a ready server */
    bool seen;
    /* The instance answers on its port: what waits is released only then (an app may listen
     * well after the instance is reported running; HAProxy's few retries would not cover it). */
    bool port_ok;
    int64_t ready_us;         /* the first probe after it was ready, 0 = none yet */
    int probe_fd;             /* a connect in progress, -1 = none */
    int probe_timeout_ms;     /* this wake's next connect timeout, 0 = not probed yet */
    struct event *probe_ev;   /* probe_fd writable (or its timeout) */
    struct event *probe_tmr;  /* the next attempt */
};
struct act_held {
    struct act_held *next;
    struct ing_act *a;
    char be[ING_BE_NAME_MAX];
    int fd;
    bool tcp;          /* mode tcp: refused by a close, not a 503 */
    bool closing;      /* answered 503, on a->closing: read to the peer's end, then closed */
    int64_t since_us;
    struct event *ev;  /* the peer went away (closing: readable, drained to its end) */
    struct event *tmo; /* wake_timeout_ms */
};
/* A released connection spliced to HAProxy's re-entry socket: b[0] the held side, b[1]
 * the re-entry side; eof[i]: side i ended its stream (passed on as a shutdown of the other). */
struct act_pipe {
    struct act_pipe *next;
    struct ing_act *a;
    struct bufferevent *b[2];
    bool eof[2];
};
struct act_activity {
    char instance[NUBO_UUID_STR_LEN + 1];
    uint64_t sig;          /* stot + bin + bout over its servers */
    uint64_t seen_sig_acc; /* this round's sum */
    int64_t cur;           /* this round's scur over its servers */
    int64_t held;          /* this round's client connections open to its HTTP backends */
    size_t n_slots, n_draining;
    int64_t inflight;   /* this round's requests in flight: its HTTP servers' scur, held ones */
    int64_t changed_us; /* counters moved, or cur + held above 0 (policy on) */
    int64_t silent_us;  /* counters moved, or cur above 0 (policy idle) */
    int64_t quiet_us;   /* counters moved, or inflight above 0 (stateful idle: tcpwake.c) */
    bool seen;
};

/* Instance metrics: per server slot, and per instance across its slots and rounds. */
struct act_slot_total {
    char be[ING_BE_NAME_MAX];
    char server[ACT_SERVER_MAX];
    struct ing_slot_total t;
    struct ing_slot_bin bin;
    char wake[NUBO_UUID_STR_LEN + 1]; /* its sleeper, to wake: its bin moved ("" = none) */
    struct ing_wake_hold hold;        /* the instance woken for those bytes, held running */
    bool holding;                     /* this round: hold says in flight */
    bool seen;
};
struct act_counts {
    char instance[NUBO_UUID_STR_LEN + 1];
    int64_t nconns, nreqs, nqueued; /* this round's */
    uint64_t ntotal;
    int64_t last_slot_us;
};

struct ing_act {
    struct ing_config *cfg; /* its controller list's current one is shared */
    char runtime_sock[ING_PATH_MAX + 32];
    pthread_t thread;
    bool running;
    struct event_base *base;
    int efd;
    struct event *notify_ev, *stats_ev;
    pthread_mutex_t mu;
    struct act_snap pending; /* handed over by the watch thread, under mu */
    bool have_pending, stop;
    char token[512]; /* under mu */
    /* the activator thread's own */
    struct act_snap snap;
    struct act_listener *listeners;
    struct act_held *held;
    size_t n_held;
    struct act_held *closing; /* 503s sent, waiting for the peer's end */
    struct act_pipe *pipes;
    size_t n_pipes;
    struct act_activity *act;
    size_t n_act;
    struct act_slot_total *slot_tot;
    size_t n_slot_tot;
    struct act_counts *counts;
    size_t n_counts;
    size_t n_holding; /* this round's slots whose instance a wake for bytes holds */
    uint64_t n_woken_released, n_refused;
    bool stopping; /* being freed: a 503 closes at once */
};

static void snap_free(struct act_snap *s)
{
    free(s->t);
    free(s->s);
    memset(s, 0, sizeof(*s));
}

static const struct act_target *snap_target(const struct act_snap *s, const char *be)
{
    for (size_t i = 0; i < s->nt; i++)
        if (strcmp(s->t[i].be, be) == 0)
            return &s->t[i];
    return NULL;
}

/* ---- controller calls (blocking, short: the controller is local) ---- */

static int act_post(struct ing_act *a, const char *path, json_t *body, json_t **reply,
                    struct nubo_err *err)
{
    char token[sizeof(a->token)];
    pthread_mutex_lock(&a->mu);
    memcpy(token, a->token, sizeof(token));
    pthread_mutex_unlock(&a->mu);
    return ing_controller_post(a->cfg, token, path, body, reply, err);
}

/* POST /ingress/v1/wake for service's group (instance: that one, "" = the controller picks). */
static int act_wake_ask(struct ing_act *a, const char *service, const char *instance,
                        struct nubo_ingress_wake_resp *wr, struct nubo_err *err)
{
    struct nubo_ingress_wake_req rq = {0};
    snprintf(rq.service, sizeof(rq.service), "%s", service);
    snprintf(rq.instance, sizeof(rq.instance), "%s", instance);
    json_t *j = NULL;
    int rc = act_post(a, NUBO_INGRESS_PATH_WAKE, nubo_ingress_wake_req_encode(&rq), &j, err);
    if (rc == 0)
        rc = nubo_ingress_wake_resp_decode(j, wr, err);
    json_decref(j);
    return rc;
}

/* ---- held connections ---- */

static void held_unlink(struct act_held **list, struct act_held *h)
{
    for (struct act_held **pp = list; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            break;
        }
}

static void held_read_cb(evutil_socket_t fd, short what, void *arg);

static void held_close(struct act_held *h)
{
    if (h->ev)
        event_free(h->ev);
    event_free(h->tmo);
    close(h->fd);
    free(h);
}

static void held_free(struct ing_act *a, struct act_held *h, bool answer_503)
{
    held_unlink(&a->held, h);
    a->n_held--;
    if (!answer_503) {
        a->n_woken_released++;
    } else if (h->tcp) { /* no protocol to answer in: a refusal is the close */
        a->n_refused++;
    } else {
        /* A close while request bytes sit unread resets a unix socket's peer (ECONNRESET),
         * and HAProxy may then drop the 503 it has not read yet: so the answer is followed by
         * our end of stream, and the socket stays open, read and discarded, until HAProxy
         * closes its end (or ACT_LINGER_MS). */
        ssize_t w = send(h->fd, act_503, sizeof(act_503) - 1, MSG_NOSIGNAL);
        (void)w;
        a->n_refused++;
        event_free(h->ev);
        h->ev = NULL;
        if (a->stopping || shutdown(h->fd, SHUT_WR) < 0 ||
            !(h->ev = event_new(a->base, h->fd, EV_READ | EV_PERSIST, held_read_cb, h))) {
            held_close(h);
            return;
        }
        struct timeval tv = {ACT_LINGER_MS / 1000, (ACT_LINGER_MS % 1000) * 1000};
        h->closing = true;
        h->next = a->closing;
        a->closing = h;
        event_add(h->ev, NULL);
        evtimer_add(h->tmo, &tv);
        return;
    }
    held_close(h);
}

/* ---- splices of released connections ---- */

static void pipe_free(struct act_pipe *p)
{
    struct ing_act *a = p->a;
    for (struct act_pipe **pp = &a->pipes; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    a->n_pipes--;
    for (int i = 0; i < 2; i++)
        if (p->b[i])
            bufferevent_free(p->b[i]);
    free(p);
}

static int pipe_side(const struct act_pipe *p, const struct bufferevent *bev)
{
    return p->b[0] == bev ? 0 : 1;
}

/* What one side sent goes to the other; past ACT_PIPE_BUF unsent, reading waits for it. */
static void pipe_read_cb(struct bufferevent *bev, void *arg)
{
    struct act_pipe *p = arg;
    struct bufferevent *to = p->b[1 - pipe_side(p, bev)];
    bufferevent_write_buffer(to, bufferevent_get_input(bev));
    if (evbuffer_get_length(bufferevent_get_output(to)) >= ACT_PIPE_BUF)
        bufferevent_disable(bev, EV_READ);
}

static void pipe_write_cb(struct bufferevent *bev, void *arg)
{
    struct act_pipe *p = arg;
    int i = pipe_side(p, bev);
    struct bufferevent *from = p->b[1 - i];
    if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
        return;
    /* drained: the other side may send again, or its end of stream is passed on */
    if (p->eof[1 - i]) {
        shutdown(bufferevent_getfd(bev), SHUT_WR);
        if (p->eof[i])
            pipe_free(p);
    } else {
        bufferevent_enable(from, EV_READ);
    }
}

static void pipe_event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct act_pipe *p = arg;
    int i = pipe_side(p, bev);
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & BEV_EVENT_ERROR) {
        pipe_free(p);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        p->eof[i] = true;
        bufferevent_disable(bev, EV_READ);
        pipe_write_cb(p->b[1 - i], p); /* pass the end on once what it sent is out */
    }
}

/* Hand a held connection to the instance: connect to the backend's re-entry socket (the
 * current HAProxy worker's) and splice. Its unread bytes wait in the socket until then. */
static void act_splice(struct ing_act *a, struct act_held *h)
{
    int fd = h->fd;
    h->fd = -1;
    char be[ING_BE_NAME_MAX];
    snprintf(be, sizeof(be), "%s", h->be);
    held_free(a, h, false);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char path[ING_PATH_MAX + 64];
    ing_act_in_path(a->cfg, be, path, sizeof(path));
    if (nubo_snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path) < 0) {
        log_warnx("%s: re-entry socket path %s too long", be, path);
        close(fd);
        return;
    }
    struct act_pipe *p = a->n_pipes < ACT_MAX_PIPES ? calloc(1, sizeof(*p)) : NULL;
    if (!p) {
        log_warnx("%s: cannot splice a held connection (%zu spliced)", be, a->n_pipes);
        close(fd);
        return;
    }
    p->a = a;
    p->b[0] = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
    p->b[1] = bufferevent_socket_new(a->base, -1, BEV_OPT_CLOSE_ON_FREE);
    p->next = a->pipes;
    a->pipes = p;
    a->n_pipes++;
    if (!p->b[0]) {
        close(fd);
        pipe_free(p);
        return;
    }
    for (int i = 0; i < 2; i++)
        if (p->b[i])
            bufferevent_setcb(p->b[i], pipe_read_cb, pipe_write_cb, pipe_event_cb, p);
    if (!p->b[1] || bufferevent_socket_connect(p->b[1], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        log_warnx("%s: cannot reach the re-entry socket %s", be, sa.sun_path);
        pipe_free(p);
        return;
    }
    bufferevent_enable(p->b[0], EV_READ);
    bufferevent_enable(p->b[1], EV_READ);
}

/* ---- probing a woken instance's port ---- */

struct act_sock_arg {
    const char *netns;
    int fd, err;
};

static void *act_sock_thread(void *arg)
{
    struct act_sock_arg *s = arg;
    char path[NUBO_NAME_MAX + 32];
    snprintf(path, sizeof(path), "/var/run/netns/%s", s->netns);
    int ns = open(path, O_RDONLY | O_CLOEXEC);
    if (ns < 0 || setns(ns, CLONE_NEWNET) < 0)
        s->err = errno;
    else if ((s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
        s->err = errno;
    if (ns >= 0)
        close(ns);
    return NULL;
}

/* A TCP socket in network namespace netns ("" = ours), as HAProxy's `namespace` opens its
 * server sockets: made on a thread of its own, whose namespace ends with it. */
static int act_socket_in(const char *netns)
{
    if (!netns[0])
        return socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct act_sock_arg s = {.netns = netns, .fd = -1};
    pthread_t th;
    int rc = pthread_create(&th, NULL, act_sock_thread, &s);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(th, NULL);
    errno = s.err;
    return s.fd;
}

static void probe_stop(struct act_listener *l)
{
    if (l->probe_ev)
        event_del(l->probe_ev);
    if (l->probe_tmr)
        event_del(l->probe_tmr);
    if (l->probe_fd >= 0)
        close(l->probe_fd);
    l->probe_fd = -1;
}

static void act_settle(struct ing_act *a, const char *be);
static void probe_start(struct act_listener *l, const struct act_target *t);

static void probe_done(struct act_listener *l, bool ok)
{
    probe_stop(l);
    if (ok) {
        l->port_ok = true;
        act_settle(l->a, l->be);
    } else {
        struct timeval tv = {0, ACT_PROBE_AGAIN_MS * 1000};
        evtimer_add(l->probe_tmr, &tv);
    }
}

static void probe_io_cb(evutil_socket_t fd, short what, void *arg)
{
    struct act_listener *l = arg;
    int e = ETIMEDOUT;
    socklen_t len = sizeof(e);
    if ((what & EV_WRITE) && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) < 0)
        e = errno;
    if (!(what & EV_WRITE) && l->probe_timeout_ms < ACT_PROBE_TIMEOUT_MS)
        l->probe_timeout_ms = l->probe_timeout_ms * 2 > ACT_PROBE_TIMEOUT_MS
                                  ? ACT_PROBE_TIMEOUT_MS
                                  : l->probe_timeout_ms * 2;
    probe_done(l, e == 0);
}

static void probe_tmr_cb(evutil_socket_t fd, short what, void *arg)
{
    struct act_listener *l = arg;
    const struct act_target *t = snap_target(&l->a->snap, l->be);
    bool waiting = false;
    for (struct act_held *h = l->a->held; h && !waiting; h = h->next)
        waiting = strcmp(h->be, l->be) == 0;
    if (t && t->ready && waiting) /* else nothing to probe for any more */
        probe_start(l, t);
}

/* One connect to t's instance server; its answer settles what waits, a refusal tries again. */
static void probe_start(struct act_listener *l, const struct act_target *t)
{
    if (l->probe_fd >= 0 || evtimer_pending(l->probe_tmr, NULL))
        return;
    if (l->ready_us == 0)
        l->ready_us = nubo_mono_us();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)t->port)};
    if (inet_pton(AF_INET, t->ip, &sa.sin_addr) != 1) {
        probe_done(l, true); /* nothing to probe: HAProxy's retries are all there is */
        return;
    }
    l->probe_fd = act_socket_in(t->netns);
    if (l->probe_fd < 0) {
        log_warnx("%s: cannot probe %s:%lld in namespace %s: %s (releasing at once)", l->be,
                  t->ip, (long long)t->port, t->netns, strerror(errno));
        probe_done(l, true);
        return;
    }
    if (connect(l->probe_fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        probe_done(l, true);
        return;
    }
    if (errno != EINPROGRESS) {
        probe_done(l, false);
        return;
    }
    if (l->probe_timeout_ms < ACT_PROBE_TIMEOUT_MIN_MS)
        l->probe_timeout_ms = ACT_PROBE_TIMEOUT_MIN_MS;
    struct timeval tv = {l->probe_timeout_ms / 1000, (l->probe_timeout_ms % 1000) * 1000};
    event_assign(l->probe_ev, l->a->base, l->probe_fd, EV_WRITE, probe_io_cb, l);
    event_add(l->probe_ev, &tv);
}

/* Settle what waits for be: release it to the instance, answer 503, or (re)ask a wake. */
static void act_settle(struct ing_act *a, const char *be)
{
    bool any = false;
    for (struct act_held *h = a->held; h && !any; h = h->next)
        any = strcmp(h->be, be) == 0;
    if (!any)
        return;
    const struct act_target *t = snap_target(&a->snap, be);
    struct act_listener *l = a->listeners;
    while (l && strcmp(l->be, be) != 0)
        l = l->next;
    int verdict = 0; /* 1 release, -1 refuse, 0 wait */
    if (t == NULL || l == NULL)
        verdict = -1;
    else if (t->ready && l->port_ok)
        verdict = 1;
    else if (t->ready)
        probe_start(l, t); /* settles again when the port answers */
    else if (t->n_starting == 0 && t->n_standby == 0 && t->n_draining == 0)
        verdict = -1; /* stopped by a user, crashed while waking, deleted: nothing comes */
    /* A draining instance (on its way to standby: its servers no longer take requests) is
     * asked for like a sleeping one: the wake keeps it running and its server comes back. */
    else if (t->n_starting == 0 &&
             (l->wake_asked_us == 0 || nubo_mono_us() - l->wake_asked_us > ACT_WAKE_AGAIN_US)) {
        l->wake_asked_us = nubo_mono_us();
        struct nubo_err err = {0};
        struct nubo_ingress_wake_resp wr;
        if (act_wake_ask(a, t->service, "", &wr, &err) < 0) {
            log_warnx("wake for %s: %s (asking again)", be, err.msg);
        } else {
            log_info("%s: a request waits, wake asked: %lld woken, %lld starting", be,
                     (long long)wr.woken, (long long)wr.starting);
            if (wr.starting == 0)
                verdict = -1;
        }
    }
    if (verdict == 0)
        return;
    int64_t now = nubo_mono_us(), oldest = now, n = 0;
    for (struct act_held *h = a->held, *nx; h; h = nx) {
        nx = h->next;
        if (strcmp(h->be, be) == 0) {
            oldest = h->since_us < oldest ? h->since_us : oldest;
            n++;
            if (verdict > 0)
                act_splice(a, h);
            else
                held_free(a, h, verdict < 0);
        }
    }
    if (verdict > 0 && l) {
        /* the wake's phases at the ingress (bench/s2z_wake.sh reads them) */
        log_info("%s: released %lld held for up to %lld ms; its port answered %lld ms after the "
                 "instance was ready",
                 be, (long long)n, (long long)(now - oldest) / 1000,
                 (long long)(l->ready_us ? (now - l->ready_us) / 1000 : -1));
        l->wake_asked_us = 0;
    }
}

static void held_read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct act_held *h = arg;
    struct ing_act *a = h->a;
    if (h->closing) { /* after a 503: read to HAProxy's end */
        char buf[4096];
        ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (r > 0 || (r < 0 && (errno == EAGAIN || errno == EINTR)))
            return;
        held_unlink(&a->closing, h);
        held_close(h);
        return;
    }
    /* held: the bytes stay for the instance, only the end is looked for */
    if (!(what & EV_CLOSED))
        return;
    /* HAProxy gave up on it (the client went away, or its own timeout) */
    held_unlink(&a->held, h);
    a->n_held--;
    held_close(h);
}

static void held_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct act_held *h = arg;
    if (h->closing) {
        held_unlink(&h->a->closing, h);
        held_close(h);
        return;
    }
    log_warnx("%s: no instance came up within %lld ms; answering 503", h->be,
              (long long)h->a->cfg->wake_timeout_ms);
    held_free(h->a, h, true);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    struct act_listener *l = arg;
    struct ing_act *a = l->a;
    for (int k = 0; k < 64; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        const struct act_target *t = snap_target(&a->snap, l->be);
        bool tcp = t && t->tcp;
        /* An instance came up since HAProxy picked us, or an old worker (a reload) that never
         * learnt it did sends its retry here: spliced to the current worker at once (below). */
        bool up = t && t->ready && l->port_ok;
        if (!up && a->n_held >= ACT_MAX_HELD) {
            ssize_t w = tcp ? 0 : send(fd, act_503, sizeof(act_503) - 1, MSG_NOSIGNAL);
            (void)w;
            close(fd);
            a->n_refused++;
            continue;
        }
        struct act_held *h = calloc(1, sizeof(*h));
        if (!h) {
            close(fd);
            continue;
        }
        h->a = a;
        h->fd = fd;
        h->tcp = tcp;
        h->since_us = nubo_mono_us();
        snprintf(h->be, sizeof(h->be), "%s", l->be);
        h->ev = event_new(a->base, fd, EV_CLOSED | EV_PERSIST, held_read_cb, h);
        h->tmo = evtimer_new(a->base, held_timeout_cb, h);
        if (!h->ev || !h->tmo) {
            if (h->ev)
                event_free(h->ev);
            if (h->tmo)
                event_free(h->tmo);
            close(fd);
            free(h);
            continue;
        }
        struct timeval tv = {a->cfg->wake_timeout_ms / 1000,
                             (a->cfg->wake_timeout_ms % 1000) * 1000};
        event_add(h->ev, NULL);
        evtimer_add(h->tmo, &tv);
        h->next = a->held;
        a->held = h;
        a->n_held++;
        act_settle(a, l->be);
    }
}

/* ---- listeners: one unix socket per backend ---- */

static int listener_open(struct ing_act *a, const char *be, struct nubo_err *err)
{
    struct act_listener *l = calloc(1, sizeof(*l));
    if (!l)
        return nubo_error(err, ENOMEM, "activator %s", be);
    l->a = a;
    l->probe_fd = -1;
    snprintf(l->be, sizeof(l->be), "%s", be);
    ing_act_sock_path(a->cfg, be, l->path, sizeof(l->path));
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(l->path) >= sizeof(sa.sun_path)) {
        free(l);
        return nubo_error(err, 0,
                          "activator socket %s is longer than %zu bytes; use a shorter "
                          "[ingress] runtime_dir",
                          l->path, sizeof(sa.sun_path) - 1);
    }
    memcpy(sa.sun_path, l->path, strlen(l->path) + 1);
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l->fd < 0) {
        free(l);
        return nubo_error(err, errno, "activator socket for %s", be);
    }
    unlink(l->path);
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l->fd, ACT_BACKLOG) < 0) {
        int e = errno;
        close(l->fd);
        free(l);
        return nubo_error(err, e, "cannot listen on %s", sa.sun_path);
    }
    l->ev = event_new(a->base, l->fd, EV_READ | EV_PERSIST, accept_cb, l);
    l->probe_ev = event_new(a->base, -1, 0, probe_io_cb, l);
    l->probe_tmr = evtimer_new(a->base, probe_tmr_cb, l);
    if (!l->ev || !l->probe_ev || !l->probe_tmr) {
        if (l->ev)
            event_free(l->ev);
        if (l->probe_ev)
            event_free(l->probe_ev);
        if (l->probe_tmr)
            event_free(l->probe_tmr);
        close(l->fd);
        unlink(l->path);
        free(l);
        return nubo_error(err, ENOMEM, "activator %s", be);
    }
    event_add(l->ev, NULL);
    l->next = a->listeners;
    a->listeners = l;
    return 0;
}

static void listener_close(struct act_listener *l)
{
    probe_stop(l);
    event_free(l->probe_ev);
    event_free(l->probe_tmr);
    event_free(l->ev);
    close(l->fd);
    unlink(l->path);
    free(l);
}

/* A new snapshot: listeners follow the HTTP backends; what waits is settled again. */
static void act_take_snapshot(struct ing_act *a)
{
    pthread_mutex_lock(&a->mu);
    if (!a->have_pending) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    snap_free(&a->snap);
    a->snap = a->pending;
    memset(&a->pending, 0, sizeof(a->pending));
    a->have_pending = false;
    pthread_mutex_unlock(&a->mu);
    for (struct act_listener *l = a->listeners; l; l = l->next)
        l->seen = false;
    for (size_t i = 0; i < a->snap.nt; i++) {
        struct act_listener *l = a->listeners;
        while (l && strcmp(l->be, a->snap.t[i].be) != 0)
            l = l->next;
        if (l) {
            l->seen = true;
            if (!a->snap.t[i].ready) { /* the next instance's port is probed afresh */
                l->port_ok = false;
                l->ready_us = 0;
                l->probe_timeout_ms = 0;
                probe_stop(l);
            }
            continue;
        }
        struct nubo_err err = {0};
        if (listener_open(a, a->snap.t[i].be, &err) < 0)
            log_warnx("%s (requests for its standby instances get 503)", err.msg);
        else
            a->listeners->seen = true;
    }
    /* settle before closing listeners: a backend that vanished answers 503 */
    for (struct act_listener *l = a->listeners; l; l = l->next)
        act_settle(a, l->be);
    for (struct act_listener **pp = &a->listeners; *pp;) {
        struct act_listener *l = *pp;
        if (l->seen) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        for (struct act_held *h = a->held, *nx; h; h = nx) {
            nx = h->next;
            if (strcmp(h->be, l->be) == 0)
                held_free(a, h, true);
        }
        listener_close(l);
    }
}

static void notify_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ing_act *a = arg;
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
    pthread_mutex_lock(&a->mu);
    bool stop = a->stop;
    pthread_mutex_unlock(&a->mu);
    if (stop) {
        event_base_loopbreak(a->base);
        return;
    }
    act_take_snapshot(a);
}

/* ---- traffic: HAProxy's per-server counters ---- */

/* The CSV field at index idx of line (0-based); copies at most outsz-1 bytes. */
static void csv_field(const char *line, int idx, char *out, size_t outsz)
{
    const char *p = line;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, ',');
        if (p)
            p++;
    }
    size_t n = 0;
    while (p && p[n] && p[n] != ',' && p[n] != '\n')
        n++;
    if (n >= outsz)
        n = outsz - 1;
    if (p)
        memcpy(out, p, n);
    out[n] = 0;
}

int ing_stat_instance(const char *csv, const char *be, const char *server, int64_t *cur,
                      uint64_t *sig)
{
    struct ing_srv_stat st;
    if (!ing_stat_server(csv, be, server, &st))
        return 0;
    *cur += st.scur;
    *sig += st.stot + st.bin + st.bout;
    return 1;
}

int ing_stat_server(const char *csv, const char *be, const char *server, struct ing_srv_stat *out)
{
    memset(out, 0, sizeof(*out));
    for (const char *line = csv; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line == '#')
            continue;
        char px[ING_BE_NAME_MAX], sv[ACT_SERVER_MAX], f[32];
        csv_field(line, 0, px, sizeof(px));
        csv_field(line, 1, sv, sizeof(sv));
        if (strcmp(px, be) != 0 || strcmp(sv, server) != 0)
            continue;
        csv_field(line, 2, f, sizeof(f));
        out->qcur = strtoll(f, NULL, 10);
        csv_field(line, 4, f, sizeof(f));
        out->scur = strtoll(f, NULL, 10);
        csv_field(line, 7, f, sizeof(f));
        out->stot = strtoull(f, NULL, 10);
        csv_field(line, 8, f, sizeof(f));
        out->bin = strtoull(f, NULL, 10);
        csv_field(line, 9, f, sizeof(f));
        out->bout = strtoull(f, NULL, 10);
        return 1;
    }
    return 0;
}

int64_t ing_table_conns(const char *table, const char *be)
{
    size_t n = strlen(be);
    for (const char *line = table; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *k = strstr(line, " key=");
        const char *eol = strchr(line, '\n');
        if (!k || (eol && k > eol) || strncmp(k + 5, be, n) != 0 || k[5 + n] != ' ')
            continue;
        const char *c = strstr(k, " conn_cur=");
        if (!c || (eol && c > eol))
            return 0;
        return strtoll(c + 10, NULL, 10);
    }
    return 0;
}

uint64_t ing_slot_total_step(struct ing_slot_total *c, const char *holder, uint64_t stot)
{
    /* A slot we never saw is new with this HAProxy (it starts with the ingress, a reload
     * starts the counters again): all its sessions are its holder's. A slot that changed
     * hands from one instance to another between two reads keeps the old holder's count as
     * the base; from empty (maintenance) nothing came in meanwhile. A drop means a reload. */
    uint64_t inc;
    if (!c->known)
        inc = stot;
    else if (strcmp(c->holder, holder) != 0 && c->holder[0])
        inc = 0;
    else
        inc = stot >= c->last_stot ? stot - c->last_stot : stot;
    c->known = true;
    c->last_stot = stot;
    snprintf(c->holder, sizeof(c->holder), "%s", holder);
    return holder[0] ? inc : 0;
}

/* One more zeroed element at the end of the array *v of *n elements; NULL out of memory. */
static void *act_push(void **v, size_t *n, size_t size)
{
    char *nv = realloc(*v, (*n + 1) * size);
    if (!nv)
        return NULL;
    *v = nv;
    memset(nv + *n * size, 0, size);
    return nv + (*n)++ * size;
}

static struct act_counts *act_counts_get(struct ing_act *a, const char *instance, bool add)
{
    for (size_t i = 0; i < a->n_counts; i++)
        if (strcmp(a->counts[i].instance, instance) == 0)
            return &a->counts[i];
    struct act_counts *c = add ? act_push((void **)&a->counts, &a->n_counts, sizeof(*c)) : NULL;
    if (c)
        snprintf(c->instance, sizeof(c->instance), "%s", instance);
    return c;
}

/* Requests wait in the backend's queue, not a server's, when every server of a round-robin
 * backend is at its maxconn (hard_limit): that queue is the group's, shared out evenly over
 * the instances that have a slot in the backend (the first ones get the remainder). */
static int64_t act_backend_queue_share(struct ing_act *a, const char *csv,
                                       const struct act_slot *sl, size_t at)
{
    struct ing_srv_stat be;
    if (!ing_stat_server(csv, sl->be, "BACKEND", &be) || be.qcur <= 0)
        return 0;
    int64_t n = 0, before = 0;
    for (size_t i = 0; i < a->snap.ns; i++)
        if (a->snap.s[i].instance[0] && strcmp(a->snap.s[i].be, sl->be) == 0) {
            if (i < at)
                before++;
            n++;
        }
    return be.qcur / n + (before < be.qcur % n ? 1 : 0);
}

/* This round's instance metrics from csv, for every slot of the snapshot (empty ones too). */
static void act_count(struct ing_act *a, const char *csv, int64_t now)
{
    for (size_t i = 0; i < a->n_counts; i++)
        a->counts[i].nconns = a->counts[i].nreqs = a->counts[i].nqueued = 0;
    for (size_t i = 0; i < a->n_slot_tot; i++)
        a->slot_tot[i].seen = a->slot_tot[i].holding = false;
    a->n_holding = 0;
    for (size_t i = 0; i < a->snap.ns; i++) {
        const struct act_slot *sl = &a->snap.s[i];
        struct ing_srv_stat st;
        if (!ing_stat_server(csv, sl->be, sl->server, &st))
            continue; /* not in this HAProxy yet (a reload on its way) */
        struct act_slot_total *tt = NULL;
        for (size_t k = 0; k < a->n_slot_tot && !tt; k++)
            if (!strcmp(a->slot_tot[k].be, sl->be) && !strcmp(a->slot_tot[k].server, sl->server))
                tt = &a->slot_tot[k];
        if (!tt) {
            if (!(tt = act_push((void **)&a->slot_tot, &a->n_slot_tot, sizeof(*tt))))
                return;
            snprintf(tt->be, sizeof(tt->be), "%s", sl->be);
            snprintf(tt->server, sizeof(tt->server), "%s", sl->server);
        }
        tt->seen = true;
        /* TCP slots only: an HTTP slot in maintenance gets no request (they go to the activator) */
        const char *sleeper = sl->http ? "" : sl->sleeper;
        const char *wake = ing_slot_bin_step(&tt->bin, sl->instance, sleeper, st.bin);
        if (wake) {
            snprintf(tt->wake, sizeof(tt->wake), "%s", wake);
            ing_wake_hold_start(&tt->hold, wake, now);
        } else if (strcmp(tt->wake, sleeper) != 0 || sl->instance[0])
            tt->wake[0] = '\0'; /* awake again, or not its slot any more */
        tt->holding = ing_wake_hold_step(&tt->hold, sl->instance, st.bin + st.bout, now);
        a->n_holding += tt->holding;
        uint64_t inc = ing_slot_total_step(&tt->t, sl->instance, st.stot);
        struct act_counts *c = sl->instance[0] ? act_counts_get(a, sl->instance, true) : NULL;
        if (!c)
            continue;
        c->ntotal += inc;
        c->nqueued += st.qcur + act_backend_queue_share(a, csv, sl, i);
        if (sl->http)
            c->nreqs += st.scur;
        else
            c->nconns += st.scur;
        c->last_slot_us = now;
    }
    size_t w = 0;
    for (size_t i = 0; i < a->n_slot_tot; i++)
        if (a->slot_tot[i].seen)
            a->slot_tot[w++] = a->slot_tot[i];
    a->n_slot_tot = w;
    w = 0;
    for (size_t i = 0; i < a->n_counts; i++)
        if (now - a->counts[i].last_slot_us < ACT_TOTAL_FORGET_US)
            a->counts[w++] = a->counts[i];
    a->n_counts = w;
}

static void act_count_fill(struct ing_act *a, struct nubo_ingress_traffic *t)
{
    for (size_t i = 0; i < t->n_instances; i++) {
        struct nubo_ingress_traffic_item *it = &t->instances[i];
        const struct act_counts *c = act_counts_get(a, it->instance, false);
        if (!c)
            continue;
        it->nconns = c->nconns;
        it->nreqs = c->nreqs;
        it->nqueued = c->nqueued;
        it->ntotal = (int64_t)c->ntotal;
    }
}

/* Bytes moved on a TCP session whose slot an instance asleep keeps: ask the wake of that very
 * instance (asked again each round until the controller answers). */
static void act_wake_sleepers(struct ing_act *a)
{
    for (size_t i = 0; i < a->n_slot_tot; i++) {
        struct act_slot_total *tt = &a->slot_tot[i];
        const struct act_target *t = tt->wake[0] ? snap_target(&a->snap, tt->be) : NULL;
        if (!t) {
            tt->wake[0] = '\0';
            continue;
        }
        struct nubo_err err = {0};
        struct nubo_ingress_wake_resp wr;
        if (act_wake_ask(a, t->service, tt->wake, &wr, &err) < 0) {
            log_warnx("wake of %s for bytes on %s/%s: %s (asking again)", tt->wake, tt->be,
                      tt->server, err.msg);
        } else {
            log_info("%s/%s: bytes for %s, which sleeps: wake asked: %lld woken, %lld starting",
                     tt->be, tt->server, tt->wake, (long long)wr.woken, (long long)wr.starting);
            tt->wake[0] = '\0';
        }
    }
}

static void stats_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ing_act *a = arg;
    /* a wake that failed (controller unreachable) is asked again from here */
    for (struct act_listener *l = a->listeners; l; l = l->next)
        act_settle(a, l->be);
    if (a->snap.ns == 0)
        return;
    char *csv = NULL;
    struct nubo_err err = {0};
    if (ing_sock_cmd(a->runtime_sock, "show stat", 2000, &csv, &err) < 0) {
        log_debug("traffic: %s", err.msg);
        return;
    }
    /* client connections per HTTP backend (keep-alive ones between requests have no server
     * session): without the table the report is by server sessions alone */
    char *table = NULL;
    bool any_http = false;
    for (size_t i = 0; i < a->snap.ns && !any_http; i++)
        any_http = a->snap.s[i].http && a->snap.s[i].instance[0];
    if (any_http &&
        ing_sock_cmd(a->runtime_sock, "show table " ING_CONNS_TABLE, 2000, &table, &err) < 0) {
        log_debug("traffic: %s", err.msg);
        table = NULL;
    }
    int64_t now = nubo_mono_us();
    for (size_t i = 0; i < a->n_act; i++)
        a->act[i].seen = false;
    act_count(a, csv, now);
    act_wake_sleepers(a);
    for (size_t i = 0; i < a->snap.ns; i++) {
        const struct act_slot *sl = &a->snap.s[i];
        if (!sl->instance[0])
            continue;
        struct act_activity *ac = NULL;
        for (size_t k = 0; k < a->n_act && !ac; k++)
            if (strcmp(a->act[k].instance, sl->instance) == 0)
                ac = &a->act[k];
        if (!ac) {
            struct act_activity *nv = realloc(a->act, (a->n_act + 1) * sizeof(*nv));
            if (!nv)
                break;
            a->act = nv;
            ac = &a->act[a->n_act++];
            memset(ac, 0, sizeof(*ac));
            snprintf(ac->instance, sizeof(ac->instance), "%s", sl->instance);
            /* it just joined: its cooldown starts now */
            ac->changed_us = ac->silent_us = ac->quiet_us = now;
            ac->sig = UINT64_MAX;
        }
        if (!ac->seen) {
            ac->seen = true;
            ac->cur = ac->held = ac->inflight = 0;
            ac->n_slots = ac->n_draining = 0;
            ac->seen_sig_acc = 0;
        }
        int64_t cur0 = ac->cur;
        ing_stat_instance(csv, sl->be, sl->server, &ac->cur, &ac->seen_sig_acc);
        if (sl->http)
            ac->inflight += ac->cur - cur0;
        /* Requests held here for its group are in flight for it: a wake's instance must not
         * drain for standby while what woke it waits for its port (an old worker's client
         * connection, after a reload, shows in no table the current worker has). */
        int64_t held = 0;
        for (const struct act_held *h = a->n_held ? a->held : NULL; h; h = h->next)
            held += strcmp(h->be, sl->be) == 0;
        /* woken for bytes that have not reached it yet (tcpwake.c) */
        for (size_t k = 0; k < a->n_slot_tot && a->n_holding; k++)
            if (a->slot_tot[k].holding && !strcmp(a->slot_tot[k].be, sl->be) &&
                !strcmp(a->slot_tot[k].server, sl->server))
                held++;
        ac->cur += held;
        ac->inflight += held;
        if (sl->http && table)
            ac->held += ing_table_conns(table, sl->be);
        ac->n_slots++;
        ac->n_draining += sl->draining;
    }
    free(csv);
    free(table);
    /* forget instances without a slot; report the others */
    size_t w = 0;
    for (size_t i = 0; i < a->n_act; i++)
        if (a->act[i].seen)
            a->act[w++] = a->act[i];
    a->n_act = w;
    struct nubo_ingress_traffic t = {0};
    snprintf(t.metro, sizeof(t.metro), "%s", a->cfg->metro);
    t.instances = calloc(a->n_act + 1, sizeof(*t.instances));
    if (!t.instances)
        return;
    for (size_t i = 0; i < a->n_act; i++) {
        struct act_activity *ac = &a->act[i];
        bool moved = ac->sig != UINT64_MAX && ac->seen_sig_acc != ac->sig;
        if (moved || ac->cur + ac->held > 0)
            ac->changed_us = now;
        if (moved || ac->cur > 0)
            ac->silent_us = now;
        if (moved || ac->inflight > 0)
            ac->quiet_us = now;
        ac->sig = ac->seen_sig_acc;
        struct nubo_ingress_traffic_item *it = &t.instances[t.n_instances++];
        snprintf(it->instance, sizeof(it->instance), "%s", ac->instance);
        it->current = ac->cur + ac->held;
        it->idle_ms = (now - ac->changed_us) / 1000;
        it->silent_ms = (now - ac->silent_us) / 1000;
        it->quiet_ms = (now - ac->quiet_us) / 1000;
        it->draining = ac->n_slots > 0 && ac->n_draining == ac->n_slots;
    }
    act_count_fill(a, &t);
    if (t.n_instances > 0 &&
        act_post(a, NUBO_INGRESS_PATH_TRAFFIC, nubo_ingress_traffic_encode(&t), NULL, &err) < 0)
        log_debug("traffic report: %s", err.msg);
    free(t.instances);
}

/* ---- the thread and the watch thread's side ---- */

static void *act_main(void *arg)
{
    struct ing_act *a = arg;
    event_base_dispatch(a->base);
    return NULL;
}

int ing_act_start(struct ing_act **out, struct ing_config *cfg, const char *runtime_sock,
                  const char *token, struct nubo_err *err)
{
    *out = NULL;
    struct ing_act *a = calloc(1, sizeof(*a));
    if (!a)
        return nubo_error(err, ENOMEM, "activator");
    a->cfg = cfg;
    snprintf(a->runtime_sock, sizeof(a->runtime_sock), "%s", runtime_sock);
    snprintf(a->token, sizeof(a->token), "%s", token);
    pthread_mutex_init(&a->mu, NULL);
    char dir[ING_PATH_MAX + 8];
    snprintf(dir, sizeof(dir), "%s/act", cfg->runtime_dir);
    a->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    a->base = event_base_new();
    if (a->efd < 0 || !a->base || nubo_mkdir_p(dir, 0700, err) < 0) {
        ing_act_stop(a);
        return nubo_error(err, errno, "starting the scale-to-zero activator");
    }
    a->notify_ev = event_new(a->base, a->efd, EV_READ | EV_PERSIST, notify_cb, a);
    a->stats_ev = event_new(a->base, -1, EV_PERSIST, stats_cb, a);
    if (!a->notify_ev || !a->stats_ev) {
        ing_act_stop(a);
        return nubo_error(err, ENOMEM, "starting the scale-to-zero activator");
    }
    event_add(a->notify_ev, NULL);
    struct timeval tv = {cfg->traffic_interval_ms / 1000, (cfg->traffic_interval_ms % 1000) * 1000};
    event_add(a->stats_ev, &tv);
    /* signals stay with the watch thread, whose sleeps they end */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&a->thread, NULL, act_main, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        ing_act_stop(a);
        return nubo_error(err, rc, "starting the scale-to-zero activator thread");
    }
    a->running = true;
    *out = a;
    return 0;
}

static void act_notify(struct ing_act *a)
{
    uint64_t one = 1;
    ssize_t w = write(a->efd, &one, sizeof(one));
    (void)w;
}

void ing_act_update(struct ing_act *a, const struct ing_plan *p, const char *token)
{
    if (!a)
        return;
    struct act_snap s = {0};
    size_t ns = 0;
    for (size_t i = 0; i < p->n_backends; i++)
        for (size_t j = 0; j < p->backends[i].n_nodes; j++)
            ns += p->backends[i].nodes[j].n_slots;
    s.t = calloc(p->n_backends + 1, sizeof(*s.t));
    s.s = calloc(ns + 1, sizeof(*s.s));
    if (!s.t || !s.s) {
        snap_free(&s);
        log_warnx("activator: out of memory; keeping the previous plan");
        return;
    }
    for (size_t i = 0; i < p->n_backends; i++) {
        const struct ing_backend *b = &p->backends[i];
        struct act_target *t = NULL;
        {
            t = &s.t[s.nt++];
            t->tcp = !b->http;
            snprintf(t->be, sizeof(t->be), "%s", b->name);
            snprintf(t->service, sizeof(t->service), "%s", b->service);
            t->n_standby = b->n_standby;
            t->n_starting = b->n_starting;
            t->n_draining = b->n_draining;
        }
        for (size_t j = 0; j < b->n_nodes; j++)
            for (size_t k = 0; k < b->nodes[j].n_slots; k++) {
                const struct ing_slot *sl = &b->nodes[j].slots[k];
                if (t && sl->instance[0] && !sl->draining && !t->ready) {
                    t->ready = true;
                    snprintf(t->ip, sizeof(t->ip), "%s", sl->ip);
                    t->port = b->dest_port;
                    snprintf(t->netns, sizeof(t->netns), "%s", b->nodes[j].netns);
                }
                struct act_slot *as = &s.s[s.ns++];
                snprintf(as->be, sizeof(as->be), "%s", b->name);
                snprintf(as->server, sizeof(as->server), "%s-%zu", b->nodes[j].node, k + 1);
                snprintf(as->instance, sizeof(as->instance), "%s", sl->instance);
                snprintf(as->sleeper, sizeof(as->sleeper), "%s", sl->sleeper);
                as->http = b->http;
                as->draining = sl->draining;
            }
    }
    pthread_mutex_lock(&a->mu);
    snap_free(&a->pending);
    a->pending = s;
    a->have_pending = true;
    if (token)
        snprintf(a->token, sizeof(a->token), "%s", token);
    pthread_mutex_unlock(&a->mu);
    act_notify(a);
}

void ing_act_stop(struct ing_act *a)
{
    if (!a)
        return;
    if (a->running) {
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_mutex_unlock(&a->mu);
        act_notify(a);
        pthread_join(a->thread, NULL);
    }
    a->stopping = true;
    while (a->held)
        held_free(a, a->held, true);
    while (a->closing) {
        struct act_held *h = a->closing;
        a->closing = h->next;
        held_close(h);
    }
    while (a->pipes)
        pipe_free(a->pipes);
    while (a->listeners) {
        struct act_listener *l = a->listeners;
        a->listeners = l->next;
        listener_close(l);
    }
    if (a->notify_ev)
        event_free(a->notify_ev);
    if (a->stats_ev)
        event_free(a->stats_ev);
    if (a->base)
        event_base_free(a->base);
    if (a->efd >= 0)
        close(a->efd);
    snap_free(&a->snap);
    snap_free(&a->pending);
    free(a->act);
    free(a->slot_tot);
    free(a->counts);
    pthread_mutex_destroy(&a->mu);
    free(a);
}
