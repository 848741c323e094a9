/* The node's side of the controller protocol (proto/PROTOCOL.md): register with all instances
 * held, long-poll watch of the desired set, batched status reports that double as heartbeats,
 * console shipping, re-register with back-off on 401 or a lost connection. HTTP runs on worker
 * threads (common/http.c, TCP or unix socket); state changes only on the main thread.
 * Standalone mode replaces the controller with two files: the desired set is read from a
 * watch-response JSON file (re-read when it is replaced) and the observed state written to a
 * status JSON file. */
#include "agent_core.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cleanup.h"
#include "http.h"
#include "log.h"

#define CTL_BACKOFF_MIN_MS 250
#define CTL_BACKOFF_MAX_MS 10000
#define CTL_LOG_CHUNK (64u << 10)
#define CTL_KICK_DELAY_MS 5

struct http_job {
    struct agent *ag;
    uint64_t gen;
    char path[512]; /* and query, for whichever controller answers (http.h) */
    char token[NUBO_AGENT_TOKEN_MAX];
    char *body;          /* request body (NULL = GET) */
    long timeout_ms;
    long status;
    char *resp;
    size_t resp_len;
    char error[NU_HTTP_WHY_MAX];
    /* log jobs: which offsets were shipped */
    size_t n_shipped;
    struct {
        char uuid[NUBO_UUID_STR_LEN + 1];
        uint64_t end;
    } *shipped;
};

/* A long poll must not hold the agent's exit for up to a watch timeout. */
static bool http_stopping(void *ud)
{
    struct http_job *j = ud;
    return __atomic_load_n(&j->ag->stopping, __ATOMIC_RELAXED);
}

static void http_work(void *arg)
{
    struct http_job *j = arg;
    struct nu_http_req rq;
    nu_http_req_init(&rq, j->body ? "POST" : "GET", j->path);
    rq.ca_file = j->ag->cfg.controller_ca;
    rq.bearer = j->token;
    nu_http_req_header(&rq, "Content-Type: application/json");
    if (j->body) {
        rq.body = j->body;
        rq.body_len = strlen(j->body);
    }
    rq.connect_timeout_ms = 5000;
    rq.timeout_ms = j->timeout_ms;
    rq.max_body = NUBO_AGENT_MAX_BODY;
    rq.abort_fn = http_stopping;
    rq.opaque = j;
    struct nu_http_resp rs;
    struct nubo_err err = {0};
    if (nu_http_targets_do(&j->ag->ctl.targets, &rq, &rs, &err) < 0)
        snprintf(j->error, sizeof(j->error), "%s", rs.why);
    else
        j->status = rs.status;
    j->resp = rs.body;
    j->resp_len = rs.len;
}

static void http_job_free(struct http_job *j)
{
    free(j->body);
    free(j->resp);
    free(j->shipped);
    free(j);
}

static struct http_job *http_job_new(struct agent *ag, const char *path, char *body,
                                     long timeout_ms)
{
    struct http_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(body);
        return NULL;
    }
    j->ag = ag;
    j->gen = ag->ctl.gen;
    snprintf(j->path, sizeof(j->path), "%s", path);
    snprintf(j->token, sizeof(j->token), "%s",
             ag->ctl.registered ? ag->ctl.token : ag->ctl.join_token);
    j->body = body;
    j->timeout_ms = timeout_ms;
    return j;
}

void agent_ctl_registry_cred(struct agent *ag, struct nubo_registry *reg)
{
    /* standalone, not registered yet, or the registry has credentials of its own */
    if (ag->cfg.controller_url[0] == '\0' || !ag->ctl.registered || reg->user[0])
        return;
    /* the controllers' token service, through the same list and failover as every other
     * controller call (the struct outlives every worker) */
    reg->realm_targets = &ag->ctl.targets;
    snprintf(reg->ca_file, sizeof(reg->ca_file), "%.255s", ag->cfg.controller_ca);
    snprintf(reg->realm_token, sizeof(reg->realm_token), "%s", ag->ctl.token);
}

static const char *resp_message(struct http_job *j)
{
    static __thread char buf[256];
    json_error_t je;
    json_t *r = j->resp ? json_loadb(j->resp, j->resp_len, 0, &je) : NULL;
    const char *m = r ? nubo_error_envelope_message(r) : NULL;
    snprintf(buf, sizeof(buf), "%s", m ? m : (j->resp ? "(no message)" : ""));
    json_decref(r);
    return buf;
}

/* Parse a reply body (bounded) into JSON; the caller decodes it with the proto codec. */
static json_t *parse_body(struct http_job *j, struct nubo_err *err)
{
    json_t *v = NULL;
    if (pj_parse(j->resp ? j->resp : "", j->resp_len, NUBO_AGENT_MAX_BODY, &v, err) < 0)
        return NULL;
    return v;
}

static void do_register(struct agent *ag);
static void do_watch(struct agent *ag);
static void do_status(struct agent *ag);
static void do_logs(struct agent *ag);

static void retry_later(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    struct timeval tv = {c->backoff_ms / 1000, (c->backoff_ms % 1000) * 1000};
    evtimer_add(c->retry_ev, &tv);
    c->backoff_ms = c->backoff_ms * 2 > CTL_BACKOFF_MAX_MS ? CTL_BACKOFF_MAX_MS : c->backoff_ms * 2;
}

/* The controller lost or rotated our token (401), or the connection failed: register again. */
static void session_lost(struct agent *ag, const char *why)
{
    struct agent_ctl *c = &ag->ctl;
    if (!c->registered)
        return;
    log_warnx("controller session lost (%s); registering again", why);
    c->registered = false;
    c->gen++;
    c->token[0] = '\0';
    c->watch_inflight = false;
    c->status_inflight = false;
    c->log_inflight = false;
    evtimer_del(c->hb_ev);
    retry_later(ag);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    if (ag->stopping)
        return;
    if (!ag->ctl.registered)
        do_register(ag);
    else if (!ag->ctl.watch_inflight)
        do_watch(ag);
}

static void node_token_path(const struct agent *ag, char *out, size_t size)
{
    snprintf(out, size, "%s/node-token", ag->cfg.state_dir);
}

/* The stored node token, when there is one and none is held yet (an operator may put one there
 * while the agent runs: `nubo nodes replace` hands it out). */
static void node_token_load(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    if (c->node_token[0])
        return;
    char p[AGENT_PATH_MAX + 16];
    node_token_path(ag, p, sizeof(p));
    cleanup_free char *tok = NULL;
    size_t len = 0;
    struct nubo_err err = {0};
    if (nubo_read_file(p, NUBO_AGENT_TOKEN_MAX - 1, &tok, &len, &err) < 0) {
        if (err.errnum != ENOENT)
            log_warnx("node token: %s", err.msg);
        return;
    }
    while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
        tok[--len] = '\0';
    snprintf(c->node_token, sizeof(c->node_token), "%s", tok);
}

static void node_token_save(struct agent *ag, const char *token)
{
    struct agent_ctl *c = &ag->ctl;
    if (strcmp(c->node_token, token) == 0)
        return;
    snprintf(c->node_token, sizeof(c->node_token), "%s", token);
    char p[AGENT_PATH_MAX + 16], line[NUBO_AGENT_TOKEN_MAX + 2];
    node_token_path(ag, p, sizeof(p));
    snprintf(line, sizeof(line), "%s\n", token);
    struct nubo_err err = {0};
    if (nubo_write_file_atomic(p, line, strlen(line), 0600, &err) < 0)
        log_warnx("cannot keep the node token (%s): after a restart this node cannot register "
                  "again until an admin replaces it",
                  err.msg);
}

/* The register key (agent_core.h): the kept one, or a new one written (0600) before it is ever
 * sent, so that a register the controller committed but whose reply was lost (the controller
 * killed or failing over, the connection reset) is retried with the same key and accepted as
 * this node's, not refused as a takeover of a known name. */
static int register_key_ensure(struct agent *ag, struct nubo_err *err)
{
    struct agent_ctl *c = &ag->ctl;
    char p[AGENT_PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/register-key", ag->cfg.state_dir);
    cleanup_free char *key = NULL;
    size_t len = 0;
    if (nubo_read_file(p, NUBO_REGISTER_KEY_MAX, &key, &len, err) == 0) {
        while (len > 0 && (key[len - 1] == '\n' || key[len - 1] == '\r' || key[len - 1] == ' '))
            key[--len] = '\0';
        if (!nubo_register_key_valid(key))
            return nubo_error(err, 0,
                              "%s is not a register key (%d..%d characters of [A-Za-z0-9_-]); "
                              "remove it and a new one is made",
                              p, NUBO_REGISTER_KEY_MIN, NUBO_REGISTER_KEY_MAX - 1);
        snprintf(c->register_key, sizeof(c->register_key), "%s", key);
        return 0;
    }
    if (err->errnum != ENOENT)
        return nubo_error_wrap(err, "register key");
    nubo_err_clear(err);
    nubo_random_alnum(c->register_key, 52); /* 36^52: 268 bits */
    char line[NUBO_REGISTER_KEY_MAX + 1];
    snprintf(line, sizeof(line), "%s\n", c->register_key);
    if (nubo_write_file_atomic(p, line, strlen(line), 0600, err) < 0) {
        c->register_key[0] = '\0';
        return nubo_error_wrap(err, "register key");
    }
    return 0;
}

/* The node bridge and its isolation rules, once the node (its subnet) is known. */
static void agent_bridge_ensure(struct agent *ag)
{
    if (!ag->have_node || ag->bridge_ready)
        return;
    char ip[NUBO_IP_STR_MAX];
    int prefix;
    if (agent_prefix_parse(ag->node.subnet, ip, sizeof(ip), &prefix) < 0) {
        log_warnx("node subnet '%s' is not a.b.c.d/n; guests get no network", ag->node.subnet);
        return;
    }
    struct nubo_err err = {0};
    if (agent_net_bridge_setup(&ag->cfg, ag->node.gateway, prefix, &err) < 0) {
        log_warnx("%s", err.msg);
        return;
    }
    /* No isolation rules, no guest network: taps are only attached once this holds. */
    if (agent_fw_sync(ag, &err) < 0) {
        log_warnx("%s; guests get no network", err.msg);
        return;
    }
    ag->bridge_ready = true;
    log_info("bridge %s up with %s/%d%s%s", ag->cfg.bridge, ag->node.gateway, prefix,
             ag->cfg.netns[0] ? " in netns " : "", ag->cfg.netns);
    agent_slots_refill(ag);
}


static void register_done(struct agent *ag, void *arg)
{
    struct http_job *j = arg;
    struct agent_ctl *c = &ag->ctl;
    c->registering = false;
    if (ag->stopping || j->gen != c->gen) {
        http_job_free(j);
        return;
    }
    if (!j->error[0] && j->status == 401 && c->node_token[0] &&
        strcmp(j->token, c->node_token) == 0) {
        /* the controller does not know it (an admin replaced this node, or a new database):
         * a stale credential is worth nothing; a new controller takes the join token */
        log_warnx("controller refused this node's token (%s); forgetting it and registering "
                  "with the join token",
                  resp_message(j));
        char p[AGENT_PATH_MAX + 16];
        node_token_path(ag, p, sizeof(p));
        unlink(p);
        c->node_token[0] = '\0';
        http_job_free(j);
        c->backoff_ms = CTL_BACKOFF_MIN_MS;
        retry_later(ag);
        return;
    }
    if (j->error[0] || j->status != 200) {
        if (j->error[0])
            log_warnx("cannot register with the controller at %s: %s; retrying in %lld ms",
                      nu_http_targets_current(&c->targets)->url, j->error,
                      (long long)c->backoff_ms);
        else
            log_warnx("controller refused registration of node %s (HTTP %ld: %s)%s; retrying "
                      "in %lld ms",
                      ag->cfg.node_name, j->status, resp_message(j),
                      j->status == 401   ? ": check the join token file"
                      : j->status == 409 ? ": the name is taken (see the message)"
                                         : "",
                      (long long)c->backoff_ms);
        http_job_free(j);
        retry_later(ag);
        return;
    }
    struct nubo_register_resp resp = {0};
    struct nubo_err err = {0};
    cleanup_json json_t *rj = parse_body(j, &err);
    if (!rj || nubo_register_resp_decode(rj, &resp, &err) < 0) {
        log_warnx("controller's register reply: %s; retrying", err.msg);
        http_job_free(j);
        retry_later(ag);
        return;
    }
    http_job_free(j);
    if (ag->have_node && strcmp(ag->node.subnet, resp.node.subnet) != 0)
        ag->bridge_ready = false;
    ag->node = resp.node;
    ag->have_node = true;
    snprintf(c->token, sizeof(c->token), "%s", resp.token);
    node_token_save(ag, resp.token);
    c->registered = true;
    c->gen++;
    c->heartbeat_ms = resp.heartbeat_interval_ms > 0 ? resp.heartbeat_interval_ms : 2000;
    c->backoff_ms = CTL_BACKOFF_MIN_MS;
    c->version = 0;
    log_info("registered as node %s (%s), subnet %s", ag->node.name, ag->node.uuid,
             ag->node.subnet);
    agent_bridge_ensure(ag);
    agent_schedule_save(ag);
    int64_t hb = nubo_jitter_ms(c->heartbeat_ms);
    struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
    evtimer_add(c->hb_ev, &tv);
    do_watch(ag);
}

static void do_register(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    if (c->registering || ag->stopping)
        return;
    struct nubo_register_req req = {0};
    snprintf(req.name, sizeof(req.name), "%s", ag->cfg.node_name);
    snprintf(req.metro, sizeof(req.metro), "%s", ag->cfg.metro);
    req.memory_mb = ag->memory_mb;
    req.vcpus = ag->vcpus;
    snprintf(req.accel, sizeof(req.accel), "%s", agent_accel_name(ag->accel));
    snprintf(req.guest_cpu, sizeof(req.guest_cpu), "%s",
             agent_guest_cpu(ag->accel, ag->virt.tcg_rdseed));
    unsigned long lv = ag->virt.lib_version, hv = ag->virt.hv_version;
    snprintf(req.libvirt_version, sizeof(req.libvirt_version), "%lu.%lu.%lu", lv / 1000000,
             lv / 1000 % 1000, lv % 1000);
    snprintf(req.qemu_version, sizeof(req.qemu_version), "%lu.%lu.%lu", hv / 1000000,
             hv / 1000 % 1000, hv % 1000);
    snprintf(req.agent_version, sizeof(req.agent_version), "%s", AGENT_VERSION);
    memcpy(req.register_key, c->register_key, sizeof(req.register_key));
    size_t n = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    n++;
    req.instances = calloc(n + 1, sizeof(*req.instances));
    size_t k = 0;
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (req.instances)
            agent_report_fill(in, &req.instances[k++]);
        in->dirty = false;
    }
    req.n_instances = k;
    req.volume_mb = ag->volume_mb;
    req.n_volumes = agent_volumes_report(ag, true, &req.volumes);
    json_t *body = nubo_register_req_encode(&req);
    free(req.instances); /* reports borrow instance strings: not nubo_register_req_free */
    free(req.volumes);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct http_job *j = text ? http_job_new(ag, NUBO_AGENT_PATH_REGISTER, text, 15000) : NULL;
    if (!j) {
        retry_later(ag);
        return;
    }
    node_token_load(ag);
    snprintf(j->token, sizeof(j->token), "%s", c->node_token[0] ? c->node_token : c->join_token);
    c->registering = true;
    if (agent_spawn(ag, http_work, register_done, j) < 0) {
        c->registering = false;
        http_job_free(j);
        retry_later(ag);
    }
}

static void watch_done(struct agent *ag, void *arg)
{
    struct http_job *j = arg;
    struct agent_ctl *c = &ag->ctl;
    if (ag->stopping || j->gen != c->gen) {
        http_job_free(j);
        return;
    }
    c->watch_inflight = false;
    if (j->status == 401) {
        http_job_free(j);
        session_lost(ag, "watch: 401");
        return;
    }
    if (j->error[0] || j->status != 200) {
        log_warnx("watch failed: %s%s; retrying", j->error[0] ? j->error : "HTTP ",
                  j->error[0] ? "" : resp_message(j));
        int was_conn = j->error[0] != 0;
        http_job_free(j);
        if (was_conn)
            session_lost(ag, "controller unreachable");
        else
            retry_later(ag);
        return;
    }
    struct nubo_watch_resp w = {0};
    struct nubo_err err = {0};
    cleanup_json json_t *wj = parse_body(j, &err);
    if (!wj || nubo_watch_resp_decode(wj, &w, &err) < 0) {
        log_warnx("controller's watch reply: %s; retrying", err.msg);
        http_job_free(j);
        retry_later(ag);
        return;
    }
    http_job_free(j);
    c->backoff_ms = CTL_BACKOFF_MIN_MS;
    if (w.version != c->version || !ag->have_assignments) {
        log_debug("desired set version %lld: %zu instance(s)", (long long)w.version,
                  w.n_assignments);
        c->version = w.version;
        agent_apply_assignments(ag, &w);
    }
    nubo_watch_resp_free(&w);
    do_watch(ag);
}

static void do_watch(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    if (c->watch_inflight || !c->registered || ag->stopping)
        return;
    char path[128];
    snprintf(path, sizeof(path), "%s?version=%lld&timeout_ms=%lld", NUBO_AGENT_PATH_WATCH,
             (long long)(ag->have_assignments ? c->version : 0),
             (long long)ag->cfg.watch_timeout_ms);
    struct http_job *j = http_job_new(ag, path, NULL, (long)ag->cfg.watch_timeout_ms + 15000);
    if (!j)
        return;
    c->watch_inflight = true;
    if (agent_spawn(ag, http_work, watch_done, j) < 0) {
        c->watch_inflight = false;
        http_job_free(j);
    }
}

static void status_done(struct agent *ag, void *arg)
{
    struct http_job *j = arg;
    struct agent_ctl *c = &ag->ctl;
    if (ag->stopping || j->gen != c->gen) {
        http_job_free(j);
        return;
    }
    c->status_inflight = false;
    if (j->status == 401) {
        http_job_free(j);
        session_lost(ag, "status: 401");
        return;
    }
    if (j->error[0] || j->status != 200) {
        log_warnx("status report failed: %s%s%s", j->error[0] ? j->error : "HTTP error ",
                  j->error[0] ? "" : resp_message(j),
                  j->status >= 400 && j->status < 500 ? " (refused; not resent)" : "");
        /* Lost on the way (connection, 5xx): send everything again with the next report. A
         * report the controller refuses (4xx) would only be refused again. */
        if (j->error[0] || j->status >= 500) {
            struct agent_instance *in;
            LIST_FOREACH(in, &ag->instances, link)
            in->dirty = true;
        }
        http_job_free(j);
        return;
    }
    struct nubo_status_resp sr = {0};
    struct nubo_err err = {0};
    cleanup_json json_t *sj = parse_body(j, &err);
    if (sj && nubo_status_resp_decode(sj, &sr, &err) == 0) {
        if (sr.heartbeat_interval_ms > 0 && sr.heartbeat_interval_ms != c->heartbeat_ms) {
            log_info("heartbeat interval now %lld ms (set by the controller)",
                     (long long)sr.heartbeat_interval_ms);
            c->heartbeat_ms = sr.heartbeat_interval_ms; /* the next timer arms with it */
        }
        if (sr.version != c->version && !c->watch_inflight)
            do_watch(ag);
    }
    http_job_free(j);
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    if (in->dirty) {
        agent_ctl_kick(ag);
        break;
    }
}

static char *status_body(struct agent *ag, bool all)
{
    size_t n = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    n++;
    struct nubo_status_batch b = {0};
    b.instances = calloc(n + 1, sizeof(*b.instances));
    if (!b.instances)
        return NULL;
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (!all && !in->dirty)
            continue;
        agent_report_fill(in, &b.instances[b.n_instances++]);
        if (!all)
            in->dirty = false;
    }
    b.n_volumes = agent_volumes_report(ag, all, &b.volumes);
    b.n_stats = agent_stats_report(ag, &b.stats);
    json_t *j = nubo_status_batch_encode(&b);
    free(b.instances);
    free(b.volumes);
    free(b.stats);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static void do_status(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    if (ag->cfg.status_file[0]) {
        cleanup_free char *text = status_body(ag, true);
        struct nubo_err err = {0};
        if (text && nubo_write_file_atomic(ag->cfg.status_file, text, strlen(text), 0644, &err) < 0)
            log_warnx("%s", err.msg);
        return;
    }
    if (!c->registered || c->status_inflight || ag->stopping)
        return;
    char *text = status_body(ag, false);
    struct http_job *j = text ? http_job_new(ag, NUBO_AGENT_PATH_STATUS, text, 10000) : NULL;
    if (!j)
        return;
    c->status_inflight = true;
    if (agent_spawn(ag, http_work, status_done, j) < 0) {
        c->status_inflight = false;
        http_job_free(j);
    }
}

static void log_done(struct agent *ag, void *arg)
{
    struct http_job *j = arg;
    struct agent_ctl *c = &ag->ctl;
    if (j->gen == c->gen)
        c->log_inflight = false;
    if (!ag->stopping && j->gen == c->gen && !j->error[0] && j->status == 200) {
        bool more = false;
        for (size_t i = 0; i < j->n_shipped; i++) {
            struct agent_instance *in = agent_instance_find(ag, j->shipped[i].uuid);
            if (in && j->shipped[i].end > in->con.shipped) {
                in->con.shipped = j->shipped[i].end;
                if (in->con.shipped < in->con.total)
                    more = true;
            }
        }
        if (more)
            agent_ctl_kick(ag);
    } else if (j->status == 401 && j->gen == c->gen) {
        session_lost(ag, "log: 401");
    }
    http_job_free(j);
}

static void do_logs(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    if (!c->registered || c->log_inflight || ag->stopping || ag->cfg.status_file[0])
        return;
    size_t n = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    if (in->con.ring_fd >= 0 && in->con.shipped < in->con.total)
        n++;
    if (n == 0)
        return;
    if (n > 64)
        n = 64; /* bounded batch; the rest goes next time */
    struct nubo_log_batch b = {0};
    b.logs = calloc(n, sizeof(*b.logs));
    __typeof__(((struct http_job *)0)->shipped) shipped = calloc(n, sizeof(*shipped));
    if (!b.logs || !shipped) {
        free(b.logs);
        free(shipped);
        return;
    }
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (b.n_logs >= n)
            break;
        if (in->con.ring_fd < 0 || in->con.shipped >= in->con.total)
            continue;
        unsigned char *data;
        size_t len;
        uint64_t start;
        if (agent_console_read_since(&in->con, in->con.shipped, &data, &len, &start,
                                     CTL_LOG_CHUNK) < 0 ||
            len == 0)
            continue;
        struct nubo_log_chunk *ch = &b.logs[b.n_logs];
        snprintf(ch->uuid, sizeof(ch->uuid), "%s", in->uuid);
        ch->offset = (int64_t)start;
        ch->data = data;
        ch->len = len;
        snprintf(shipped[b.n_logs].uuid, sizeof(shipped[0].uuid), "%s", in->uuid);
        shipped[b.n_logs].end = start + len;
        b.n_logs++;
    }
    size_t n_shipped = b.n_logs;
    json_t *body = n_shipped ? nubo_log_batch_encode(&b) : NULL;
    nubo_log_batch_free(&b);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct http_job *j = text ? http_job_new(ag, NUBO_AGENT_PATH_LOG, text, 10000) : NULL;
    if (!j) {
        free(shipped);
        return;
    }
    j->shipped = shipped;
    j->n_shipped = n_shipped;
    c->log_inflight = true;
    if (agent_spawn(ag, http_work, log_done, j) < 0) {
        c->log_inflight = false;
        http_job_free(j);
    }
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    agent_stats_collect(ag);
    do_status(ag);
    do_logs(ag);
    if (!ag->cfg.status_file[0] && ag->ctl.registered) {
        /* 75-100% of the interval: agents that (re)registered together do not beat together */
        int64_t hb = nubo_jitter_ms(ag->ctl.heartbeat_ms);
        struct timeval tv = {hb / 1000, (hb % 1000) * 1000};
        evtimer_add(ag->ctl.hb_ev, &tv);
    }
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent *ag = arg;
    do_status(ag);
    do_logs(ag);
}

void agent_ctl_kick(struct agent *ag)
{
    if (!ag->ctl.kick_ev || ag->stopping)
        return;
    if (!evtimer_pending(ag->ctl.kick_ev, NULL)) {
        struct timeval tv = {0, CTL_KICK_DELAY_MS * 1000};
        evtimer_add(ag->ctl.kick_ev, &tv);
    }
}

static void load_assignments(struct agent *ag)
{
    cleanup_free char *text = NULL;
    size_t len;
    struct nubo_err err = {0};
    if (nubo_read_file(ag->cfg.assignments_file, NUBO_AGENT_MAX_BODY, &text, &len, &err) < 0) {
        if (err.errnum != ENOENT)
            log_warnx("%s", err.msg);
        return;
    }
    struct nubo_watch_resp w = {0};
    cleanup_json json_t *wj = NULL;
    if (pj_parse(text, len, NUBO_AGENT_MAX_BODY, &wj, &err) < 0 ||
        nubo_watch_resp_decode(wj, &w, &err) < 0) {
        log_warnx("assignments file %s: %s", ag->cfg.assignments_file, err.msg);
        return;
    }
    if (w.version != ag->ctl.version || !ag->have_assignments) {
        ag->ctl.version = w.version;
        log_info("assignments file: version %lld, %zu instance(s)", (long long)w.version,
                 w.n_assignments);
        agent_apply_assignments(ag, &w);
    }
    nubo_watch_resp_free(&w);
}

void agent_ctl_on_inotify(struct agent *ag, int wd)
{
    if (wd == ag->ctl.assign_wd && ag->ctl.assign_wd >= 0)
        load_assignments(ag);
}

int agent_ctl_start(struct agent *ag, struct nubo_err *err)
{
    struct agent_ctl *c = &ag->ctl;
    c->backoff_ms = CTL_BACKOFF_MIN_MS;
    c->heartbeat_ms = 2000;
    c->hb_ev = evtimer_new(ag->base, on_heartbeat, ag);
    c->retry_ev = evtimer_new(ag->base, on_retry, ag);
    ag->ctl.kick_ev = evtimer_new(ag->base, on_kick, ag);
    if (ag->cfg.assignments_file[0]) {
        /* standalone: the node's network comes from the config */
        if (ag->cfg.subnet[0]) {
            snprintf(ag->node.subnet, sizeof(ag->node.subnet), "%s", ag->cfg.subnet);
            snprintf(ag->node.gateway, sizeof(ag->node.gateway), "%s", ag->cfg.gateway);
            snprintf(ag->node.dns, sizeof(ag->node.dns), "%s",
                     ag->cfg.dns[0] ? ag->cfg.dns : ag->cfg.gateway);
            snprintf(ag->node.name, sizeof(ag->node.name), "%s", ag->cfg.node_name);
            ag->have_node = true;
            agent_bridge_ensure(ag);
        }
        char dir[AGENT_PATH_MAX];
        snprintf(dir, sizeof(dir), "%s", ag->cfg.assignments_file);
        c->assign_wd = agent_inotify_add(ag, dirname(dir), IN_CLOSE_WRITE | IN_MOVED_TO);
        if (c->assign_wd < 0)
            return nubo_error(err, errno, "cannot watch %s", dir);
        load_assignments(ag);
        do_status(ag);
        return 0;
    }
    if (ag->have_node)
        agent_bridge_ensure(ag); /* restarted: guests keep their network meanwhile */
    if (nu_http_targets_parse(&c->targets, ag->cfg.controller_url, ag->cfg.controller_socket, err) <
        0)
        return nubo_error_wrap(err, "[controller] url/socket");
    if (ag->cfg.join_token_file[0]) {
        cleanup_free char *tok = NULL;
        size_t len;
        if (nubo_read_file(ag->cfg.join_token_file, NUBO_AGENT_TOKEN_MAX - 1, &tok, &len, err) < 0)
            return nubo_error_wrap(err, "join token");
        while (len > 0 && (tok[len - 1] == '\n' || tok[len - 1] == '\r' || tok[len - 1] == ' '))
            tok[--len] = '\0';
        snprintf(c->join_token, sizeof(c->join_token), "%s", tok);
    }
    if (register_key_ensure(ag, err) < 0)
        return -1;
    do_register(ag);
    return 0;
}

void agent_ctl_stop(struct agent *ag)
{
    struct agent_ctl *c = &ag->ctl;
    c->gen++;
    if (c->hb_ev)
        event_free(c->hb_ev);
    if (c->retry_ev)
        event_free(c->retry_ev);
    if (ag->ctl.kick_ev)
        event_free(ag->ctl.kick_ev);
    c->hb_ev = c->retry_ev = c->kick_ev = NULL;
}
