/* nubo-controller internals: the context every file receives, the in-memory working set
 * (loaded from and written through to the sqlite store), and what crosses files, grouped by
 * floor: ground (reply, metrics, map, config, store), model (knows no HTTP; reports through
 * struct ctl_events), handlers (one file per endpoint family), router (server.c). */
#ifndef NUBO_CTL_H
#define NUBO_CTL_H

#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "agent.h"

struct evconnlistener;
struct bufferevent;
struct ctl_conns; /* conns.c */
#include "api.h"
#include "cluster.h"
#include "error.h"
#include "ingress.h"
#include "oci_image.h"
#include "registry.h"
#include "service.h"
#include "store.h"
#include "xalloc.h"

#define CTL_VERSION "0.1.0"
#define CTL_HOSTS_PER_NODE 253 /* .2 .. .254 of the node's /24; .1 is the gateway */
#define CTL_MAX_DOMAIN_GRANTS 256 /* [services] custom_domains entries */

#define CTL_REGTOKEN_KID_MAX 64 /* libtrust key ID: 12 groups of 4 base32 digits */
#define CTL_URL_MAX 256         /* a controller's advertise_url */

/* ---- config.c ---- */
#define CTL_MAX_METRO_LIMITS 64
enum { CTL_PLAIN_NO, CTL_PLAIN_LOOPBACK, CTL_PLAIN_ANY }; /* [controller] plain_http */
struct ctl_config {
    char listen[128];
    char unix_path[108];
    char db_path[PATH_MAX];
    char store_url[1024]; /* [store] url: PostgreSQL instead of the sqlite file at db_path */
    /* leader.c: controllers sharing a PostgreSQL store */
    char advertise_url[CTL_URL_MAX]; /* where followers redirect to; "" = from listen */
    int64_t lease_ttl_ms;            /* a leader that stops renewing loses the lease after */
    int64_t lease_check_ms;          /* renew (leader) or look (follower) this often */
    char bootstrap_token_file[PATH_MAX];
    char join_token_file[PATH_MAX];
    char admin_user[NUBO_API_USER_MAX + 1];
    int log_level;
    bool sync_full;
    int64_t max_body_bytes; /* public API bodies */
    /* The TCP listener: HTTPS with this certificate chain and key (PEM), or plain HTTP where
     * plain_http allows it (CTL_PLAIN_*); the unix socket is always plain. */
    char tls_cert_file[PATH_MAX];
    char tls_key_file[PATH_MAX];
    int plain_http;
    int64_t heartbeat_interval_ms;
    int64_t grace_ms;
    int64_t max_heartbeats_per_second; /* all nodes together; intervals stretch to keep it */
    int64_t watch_coalesce_ms; /* hold a changed desired set this long to batch changes */
    uint32_t pool_net;         /* host byte order */
    int pool_prefix;           /* <= 24 */
    char cluster_domain[64];
    int64_t vcpu_overcommit;
    int64_t log_tail_bytes; /* console tail kept per instance */
    struct nubo_registry registry;
    char registry_secret[256]; /* notifications Authorization: Bearer <secret> */
    /* regtoken.c: the registry's token service */
    char registry_token_key_file[PATH_MAX]; /* RSA key (PEM); "" = no tokens issued */
    char registry_token_issuer[128];        /* the registry's auth.token.issuer */
    char registry_token_service[128];       /* the registry's auth.token.service */
    int64_t registry_token_ttl_s;
    int64_t rate_limit_per_s; /* public API requests per user and second; 0 = no limit */
    int64_t rate_limit_burst;
    /* conns.c: open connections (0 = no cap), per client address on the TCP listener, and how
     * long a request's headers may take from its first byte (a new connection's from its
     * opening) */
    int64_t max_connections, max_connections_per_client, header_timeout_ms;
    char services_domain[128]; /* default domains: <group>.<metro>.<services_domain> */
    char ingress_token_file[PATH_MAX];
    /* Public ports a group may publish: [services] public_ports minus reserved_ports and the
     * controller's own listen port (one bit per port), and the lists as written, for errors. */
    uint8_t public_ports[65536 / 8];
    char public_ports_text[128], reserved_ports_text[128];
    /* Custom domains (outside services_domain): first come (n_domain_grants == 0, "any") or only
     * what [services] custom_domains grants each user. */
    struct ctl_domain_grant {
        char user[NUBO_API_USER_MAX + 1];
        char domain[NUBO_FQDN_MAX + 1];
    } domain_grants[CTL_MAX_DOMAIN_GRANTS];
    size_t n_domain_grants;
    /* [quotas]: every non-admin user's hard limits unless an admin set others */
    int64_t quota_default[NUBO_QUOTA_N];
    /* memory_mb cap of one instance: the spec's 4096 unless [instances] max_memory_mb or a
     * metro's line in [metro_max_memory_mb] (metro = MiB) says otherwise */
    int64_t max_memory_mb;
    struct {
        char metro[NUBO_NAME_MAX + 1];
        int64_t mb;
    } metro_max_memory[CTL_MAX_METRO_LIMITS];
    size_t n_metro_max_memory;
};
void ctl_config_defaults(struct ctl_config *c);
/* The memory_mb cap in metro ("" = any metro: the default). */
int64_t ctl_max_memory_mb(const struct ctl_config *c, const char *metro);
int ctl_config_load_ini(struct ctl_config *c, const char *path, struct nubo_err *err);
int ctl_config_finish(struct ctl_config *c, struct nubo_err *err);
int ctl_parse_cidr(const char *s, uint32_t *net, int *prefix);

/* ---- map.c: string-keyed hash map ---- */
struct ctl_map_ent {
    struct ctl_map_ent *next;
    uint64_t hash;
    void *val;
    char key[];
};
struct ctl_map {
    struct ctl_map_ent **b;
    size_t nb, n;
};
void *ctl_map_get(const struct ctl_map *m, const char *key);
void ctl_map_put(struct ctl_map *m, const char *key, void *val); /* replaces */
void *ctl_map_del(struct ctl_map *m, const char *key);
void ctl_map_clear(struct ctl_map *m);
#define ctl_map_foreach(m, e)                                                                      \
    for (size_t _i = 0; _i < (m)->nb; _i++)                                                        \
        for (struct ctl_map_ent *e = (m)->b[_i], *_nx = e ? e->next : NULL; e;                     \
             e = _nx, _nx = e ? e->next : NULL)

/* ==== the working set (model data) ========================================================== */

struct ctl_ctx;
struct ctl_instance;
struct ctl_parked;
struct ctl_svc;
struct ctl_node_watch; /* agents.c: the node's parked watches */
struct ctl_volumes;    /* ctl_volumes.h */
struct ctl_autoscale;  /* ctl_autoscale.h */

struct ctl_node {
    struct ctl_node_row row; /* what the store keeps */
    char guest_cpu[NUBO_GUEST_CPU_MAX]; /* as last registered (not stored: re-sent on register) */
    uint32_t subnet_base;    /* pool + index * 256, host byte order */
    bool ready;              /* false = unavailable (missed heartbeats) */
    int64_t last_seen_mono_us;
    int64_t heartbeat_told_ms; /* the interval this node was last told to heartbeat at */
    size_t n_instances; /* placed here, stopped ones included (they keep their address) */
    uint8_t ip_used[32]; /* host byte of the /24 */
    int64_t version;     /* assignment version */
    struct ctl_instance *inst_head;
    /* model_state.c: its instances by the state they would be in were it ready */
    uint32_t n_by_state[NUBO_STATE__COUNT];
    struct ctl_node_watch *watch; /* owned by agents.c; the model never touches it */
    /* capacity.c: what its instances hold (ctl_instance_account keeps it), and its place in
     * its metro's ranking of ready nodes (keys as inserted) */
    int64_t used_memory_mb, used_vcpus, vcpu_cap;
    struct ctl_cap_metro *cap_metro;
    struct ctl_node *cap_l, *cap_r;
    uint32_t cap_prio;
    bool cap_in;
    int64_t cap_key_mem, cap_key_vcpus;
};

struct ctl_logtail {
    unsigned char *buf;
    size_t len, cap; /* cap: the newest bytes kept ([instances] log_tail_bytes) */
    size_t alloc;    /* buf's size: grows with the tail up to cap (most consoles say little) */
    int64_t start;   /* stream offset of buf[0] */
};

struct ctl_instance {
    struct ctl_instance_row row; /* intent, as stored */
    bool has_obs;
    struct nubo_status_report obs; /* observation, as stored */
    struct ctl_node *node;
    struct ctl_instance *node_prev, *node_next;
    int64_t held_memory_mb, held_vcpus; /* what it counts in its node's used_* (capacity.c) */
    /* model_state.c: where it is counted by state (metro and node; -1 = not counted) */
    struct ctl_state_count *counted_in;
    struct ctl_node *counted_node;
    int counted_state;
    /* inst_metrics.c: in ctx->ingress_fresh while its ingress reports it */
    struct ctl_instance *ing_prev, *ing_next;
    bool ing_linked;
    char *assign_json; /* cached encoded assignment, NULL = stale */
    size_t assign_len;
    struct ctl_logtail log;
    struct ctl_svc *svc; /* its service group, NULL = none */
    struct ctl_instance *svc_prev, *svc_next;
    int64_t rss_bytes, cpu_time_ms; /* the agent's last stats (not stored: they move) */
    /* the ingress's last counters of it (not stored): gauges as of ingress_mono_us, and
     * ntotal = ntotal_base + ntotal_last (base grows when the ingress starts counting again) */
    int64_t nconns, nreqs, nqueued, ntotal_base, ntotal_last, ingress_mono_us;
    int64_t wake_mono_us; /* scale-to-zero woke it then; 0 = not waking */
    /* scale-to-zero: drained at the ingress on its way to standby since (mono us), 0 = not;
     * the stop follows once the ingress reports it drained and still quiet (model_s2z.c) */
    int64_t s2z_drain_us;
#define CTL_WAKE_TIME_MAX_S 300.0
    bool log_dirty;        /* console output not yet persisted */
    int64_t log_saved_end; /* stream offset up to which the store has it */
};

/* A service group in memory: the stored row and the instances attached to it. */
struct ctl_svc {
    struct ctl_svc_row row;
    struct ctl_instance *inst_head;
    size_t n_instances;
    size_t pending_del; /* scratch for a batch delete */
};

/* A user certificate with what OpenSSL read from it. */
struct ctl_cert {
    struct ctl_cert_row row;
    char subject[256], issuer[256], serial[80];
    int64_t not_before_us, not_after_us;
};

/* The "owner/name" key of the per-user name indexes. */
static inline void ctl_owner_key(char *out, size_t size, const char *owner, const char *name)
{
    snprintf(out, size, "%s/%s", owner, name);
}

/* ==== events: the model's only way out =======================================================
 * The model changes the working set and reports what changed here; main.c wires each event to
 * whoever answers for it (HTTP waits, agent watches, the ingress watch). A NULL hook drops the
 * event (unit tests set their own). No model file calls a handler. */
struct ctl_events {
    /* Something an instance's visible state depends on changed. */
    void (*instance_changed)(struct ctl_ctx *ctx, struct ctl_instance *in);
    /* An instance was deleted (committed; the struct is gone). */
    void (*instance_gone)(struct ctl_ctx *ctx, const char *uuid);
    /* A node's desired set changed; its version is already bumped. */
    void (*node_set_changed)(struct ctl_ctx *ctx, struct ctl_node *node);
    /* Something a metro's ingress depends on changed (groups, members, their state). */
    void (*services_changed)(struct ctl_ctx *ctx, const char *metro);
};

/* ==== ground floor: metrics.c ================================================================ */
#define CTL_HIST_BUCKETS 17
struct ctl_hist {
    uint64_t counts[CTL_HIST_BUCKETS + 1];
    double sum_s;
    uint64_t n;
};
enum ctl_route {
    CTL_R_OTHER = 0,
    CTL_R_HEALTHZ,
    CTL_R_METRICS,
    CTL_R_INST_CREATE,
    CTL_R_INST_LIST,
    CTL_R_INST_GET,
    CTL_R_INST_DELETE,
    CTL_R_INST_START,
    CTL_R_INST_STOP,
    CTL_R_INST_WAIT,
    CTL_R_INST_LOG,
    CTL_R_IMAGES,
    CTL_R_NODES,
    CTL_R_METROS,
    CTL_R_USERS,
    CTL_R_REG_EVENTS,
    CTL_R_REG_TOKEN,
    CTL_R_AGENT_REGISTER,
    CTL_R_AGENT_WATCH,
    CTL_R_AGENT_STATUS,
    CTL_R_AGENT_LOG,
    CTL_R_SERVICES,
    CTL_R_CERTS,
    CTL_R_INGRESS_WATCH,
    CTL_R_NODE_ADMIN,
    CTL_R_VOLUMES,
    CTL_R__COUNT
};
extern const char *const ctl_route_names[CTL_R__COUNT];
#define CTL_METRICS_METROS 64
struct ctl_metrics {
    uint64_t requests[CTL_R__COUNT][6]; /* by status class 1xx..5xx (index 1..5) */
    struct ctl_hist latency;
    struct ctl_hist boot_time;
    uint64_t s2z_wakes; /* standby instances started by traffic */
    /* conns.c */
    uint64_t conns_open, conns_refused, header_timeouts, rejected_before_body;
    struct ctl_hist wake_time; /* scale-to-zero: from the wake to the agent's running */
    struct ctl_metro_count {
        char metro[NUBO_NAME_MAX + 1];
        uint64_t ingress_sessions; /* connections and HTTP requests its ingress handed out */
    } metro[CTL_METRICS_METROS];
    size_t n_metro;
};
/* The counters of metro, added when first met; NULL past CTL_METRICS_METROS. */
struct ctl_metro_count *ctl_metrics_metro(struct ctl_metrics *m, const char *metro);
void ctl_hist_observe(struct ctl_hist *h, double seconds);
const double *ctl_hist_bounds(void);
/* GET /metrics' body, written without printf: at 10,000 nodes it is ~60,000 series lines, and a
 * vsnprintf and an evbuffer append each were most of the scrape's cost (bench_api, perf). Lines
 * are put together in buf and go to out in large pieces; ctl_mtext_flush before out is sent. */
struct ctl_mtext {
    struct evbuffer *out;
    size_t n;
    char buf[65536];
};
void ctl_mtext_mem(struct ctl_mtext *t, const char *s, size_t len);
void ctl_mtext_str(struct ctl_mtext *t, const char *s);
void ctl_mtext_i64(struct ctl_mtext *t, int64_t v);
/* name{k1="v1",k2="v2"} v\n (k2 NULL: one label) */
void ctl_mtext_series(struct ctl_mtext *t, const char *name, const char *k1, const char *v1,
                      const char *k2, const char *v2, int64_t v);
void ctl_mtext_flush(struct ctl_mtext *t);

/* ==== model_images.c: the index and the resolver thread's queue ============================= */
/* One registry question of a batch and, once answered, its answer. */
struct ctl_resolved {
    struct ctl_resolved *next;
    char repo[256];
    char ref[160];
    int http_status; /* 0 = resolved */
    char msg[NUBO_ERR_MSG_MAX];
};
/* Registry questions asked together; done runs on the loop once every one is answered. A
 * handler embeds it in what it parks and finds itself again from b. */
struct ctl_resolve_batch {
    struct ctl_resolved *asked;
    int pending;
    void (*done)(struct ctl_ctx *ctx, struct ctl_resolve_batch *b);
};
struct ctl_job {
    struct ctl_job *next;
    char repo[256];
    char ref[160]; /* tag or digest */
    bool ok;
    struct nubo_image_info info;
    struct nubo_err err;
    struct ctl_resolve_batch *batch; /* who waits for it, or NULL (notification) */
};

/* leader.c: which of the controllers sharing a PostgreSQL store leads. On sqlite the one
 * controller always leads (ha false). */
struct ctl_leader {
    bool ha;       /* PostgreSQL: the lease row decides */
    bool leading;  /* this controller runs the working set, its timers and watches */
    int64_t epoch; /* ours while leading, else the last one seen */
    char holder[NUBO_UUID_STR_LEN + 1]; /* this process's name in the lease */
    char url[CTL_URL_MAX];              /* ours (advertise_url) */
    char leader_url[CTL_URL_MAX];       /* the leader's while its lease is valid, else "" */
    int64_t renewed_mono_us;            /* the last renewal that reached the store */
    int64_t takeover_ms;                /* how long loading the state took at takeover */
    struct event *timer, *rejoin_ev;
    struct ctl_stmt *st_read, *st_take, *st_renew;
    char **argv; /* a leader that lost its lease executes itself again with these */
};

struct ctl_ctx {
    struct ctl_config cfg;
    struct ctl_leader leader;
    struct event_base *base;
    struct evhttp *http;      /* the TCP listener's (HTTPS unless plain_http) */
    struct evhttp *http_unix; /* the unix socket's (plain) */
    struct evconnlistener *listeners[2]; /* TCP and unix, paused while out of descriptors */
    struct ssl_ctx_st *tls; /* tls.c: the TCP listener's; NULL = plain HTTP */
    size_t n_listeners;
    struct event *accept_ev;
    int64_t accept_warned_us;
    struct ctl_store store;
    struct ctl_events events;
    char join_token_hash[NUBO_SHA256_HEX_LEN + 1];
    struct ctl_map users_by_name; /* -> ctl_user */
    struct ctl_map tokens;        /* sha256 hex -> struct ctl_token (owned) */
    struct ctl_map nodes;         /* uuid -> ctl_node */
    struct ctl_map nodes_by_name;
    struct ctl_map cap_metros;     /* metro -> capacity.c's ranking of its ready nodes */
    uint8_t *subnet_used;          /* the pool's /24s nodes hold (a bit each) */
    int subnet_hint;               /* every subnet below it is taken */
    struct ctl_map node_tokens;    /* sha256 hex -> ctl_node */
    struct ctl_map instances;      /* uuid -> ctl_instance */
    /* model_state.c: instances by state per metro, kept at every transition (GET /metrics) */
    struct ctl_state_count *state_counts;
    /* inst_metrics.c: the instances an ingress reported within CTL_INGRESS_STALE_US, newest
     * report first (the gauges of GET /metrics read these, not every instance) */
    struct ctl_instance *ingress_fresh;
    /* uuids of the instances whose log_dirty is set: the tick's flush visits these, not every
     * instance (100,000 of them made the scan a tenth of the controller's CPU) */
    char (*logs_dirty)[NUBO_UUID_STR_LEN + 1];
    size_t n_logs_dirty, cap_logs_dirty;
    struct ctl_map instance_names; /* "owner/name" -> ctl_instance */
    struct ctl_map svcs;           /* uuid -> ctl_svc */
    struct ctl_map svc_names;      /* "owner/name" -> ctl_svc */
    struct ctl_map svc_fqdns;      /* fqdn -> ctl_svc (domains are global) */
    struct ctl_map certs;          /* uuid -> ctl_cert */
    struct ctl_map cert_names;     /* "owner/name" -> ctl_cert */
    struct ctl_map ing_metros;     /* metro -> ingress_watch.c's per-metro state */
    struct ctl_map quotas;         /* user uuid -> struct ctl_quota (limits an admin set) */
    struct ctl_volumes *vols;      /* model_volumes.c (ctl_volumes.h) */
    struct ctl_autoscale *as;      /* model_autoscale.c (ctl_autoscale.h) */
    char ingress_token_hash[NUBO_SHA256_HEX_LEN + 1];
    struct ctl_map rate_buckets;      /* ratelimit.c: user uuid -> bucket */
    struct ctl_conns *conns;          /* conns.c */
    struct evp_pkey_st *regtoken_key; /* regtoken.c; NULL = tokens off */
    char regtoken_kid[CTL_REGTOKEN_KID_MAX];
    struct ctl_parked *waits;     /* waits.c */
    struct ctl_parked *resolving; /* creates and look-ups waiting for the registry */
    void *status_jobs;            /* status batches waiting for their group commit (agents.c) */
    int64_t version_seq;
    struct event *tick;
    struct ctl_metrics metrics;
    int64_t started_mono_us;
    /* resolver thread */
    pthread_t resolver;
    bool resolver_running;
    pthread_mutex_t job_mu;
    pthread_cond_t job_cv;
    struct ctl_job *jobs, *done;
    bool stopping;
    struct event *done_ev;
};

/* err with http_status set to status unless it carries one; returns -1. */
static inline int ctl_err_status(struct nubo_err *err, int status)
{
    if (err && err->http_status == 0)
        err->http_status = status;
    return -1;
}

/* "what: <err's message>" with status (nubo_error_wrap plus an HTTP status); returns -1. */
#define ctl_err_wrap(err, status, ...)                                                             \
    (nubo_error_wrap((err), __VA_ARGS__), (err)->http_status = (status), -1)

/* ---- the events, as the model raises them ---- */
static inline void ctl_emit_instance_changed(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    /* a backend may have come or gone */
    if (in->svc && ctx->events.services_changed)
        ctx->events.services_changed(ctx, in->row.metro);
    if (ctx->events.instance_changed)
        ctx->events.instance_changed(ctx, in);
}
static inline void ctl_emit_instance_gone(struct ctl_ctx *ctx, const char *uuid)
{
    if (ctx->events.instance_gone)
        ctx->events.instance_gone(ctx, uuid);
}
/* The node's desired set changed: bump its version and say so. */
static inline void ctl_node_bump(struct ctl_ctx *ctx, struct ctl_node *node)
{
    node->version = ++ctx->version_seq;
    if (ctx->events.node_set_changed)
        ctx->events.node_set_changed(ctx, node);
}
static inline void ctl_emit_services_changed(struct ctl_ctx *ctx, const char *metro)
{
    if (ctx->events.services_changed)
        ctx->events.services_changed(ctx, metro);
}

/* ==== ground floor: reply.c (answers, parked requests) ======================================= */
#define CTL_PATH_MAX 512 /* a request's path; longer ones are answered 400 */
struct ctl_reqinfo {
    struct evhttp_request *req;
    int64_t start_us;
    int route;
    enum evhttp_cmd_type method;
    char path[CTL_PATH_MAX];
    struct evkeyvalq *query; /* may be empty list, never NULL */
    const char *body;        /* NUL-terminated copy, NULL when empty */
    size_t body_len;
    struct ctl_user_row user;
};
void ctl_reply_json(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                    int code, json_t *body);
/* The one place a handler's err becomes a reply: err->http_status (500 when unset). */
void ctl_reply_err(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, const struct nubo_err *err);
/* The JSON text of the error envelope ctl_reply_err sends for err (malloc'd), and the reason
 * phrase of an HTTP status: for replies written outside evhttp (conns.c). */
char *ctl_error_text(const struct nubo_err *err);
const char *ctl_reason(int code);
/* A batch reply: items (stolen) with per-item "status"; picks success/partial/error. */
void ctl_reply_items(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     const char *collection, json_t *items);
/* A Prometheus text exposition (version 0.0.4), counted as a 200 of route. */
void ctl_reply_prometheus(struct ctl_ctx *ctx, struct evhttp_request *req, int route,
                          int64_t start_us, struct evbuffer *body);
/* A reply the caller built itself (watch sets): counted as a 200 of route. */
void ctl_reply_raw(struct ctl_ctx *ctx, struct evhttp_request *req, int route,
                   struct evbuffer *body);
void ctl_reply_text(struct ctl_ctx *ctx, struct evhttp_request *req, int route, const char *text,
                    size_t len);

/* A request whose reply waits for something. The parker keeps what it needs in data (freed with
 * data_free) and says what happens when the timer fires; whoever wakes it unlinks it, answers
 * and frees it. */
typedef void (*ctl_park_fn)(struct ctl_parked *p);
struct ctl_parked {
    struct ctl_parked *next, *prev;
    struct ctl_parked **list; /* the list it is linked on, NULL = none */
    struct ctl_ctx *ctx;
    struct evhttp_request *req;
    int route;
    int64_t start_mono_us;
    struct event *timer;
    ctl_park_fn on_timeout;
    void *data;
    void (*data_free)(void *data);
};
/* Park ri's request on list; on_timeout runs after timeout_ms (< 0: never). */
struct ctl_parked *ctl_park(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri,
                            struct ctl_parked **list, int64_t timeout_ms, ctl_park_fn on_timeout,
                            void *data, void (*data_free)(void *data));
void ctl_park_link(struct ctl_parked **list, struct ctl_parked *p);
void ctl_park_unlink(struct ctl_parked *p);
/* Unlinks p if linked, frees it and its data; the request must have been answered. */
void ctl_parked_free(struct ctl_parked *p);
/* Answers every request parked on list with the same JSON text (a 200 of route). */
void ctl_park_answer_all(struct ctl_parked **list, int route, const char *text, size_t len);
/* A follower's answer to any request but health (ctx->leader): 307 to the leader, or 503 while
 * none is known (or this one is shutting down). */
void ctl_reply_elsewhere(struct ctl_ctx *ctx, struct evhttp_request *req, int route);
/* Shutdown or a lost lease: answers every request parked on list as ctl_reply_elsewhere does
 * (307 to the leader, else 503) and frees them. */
void ctl_park_drain(struct ctl_parked **list);
/* A long poll's ?version=V&timeout_ms=T (defaults 0 and 30000; T <= max_timeout_ms). */
int ctl_watch_params(const struct ctl_reqinfo *ri, int64_t max_timeout_ms, int64_t *version,
                     int64_t *timeout_ms, struct nubo_err *err);
/* The reply target of a parked request, to answer it like the request it was. */
void ctl_reqinfo_of_parked(struct ctl_reqinfo *ri, const struct ctl_parked *p);

/* ==== model: model.c (the working set's primitives) ========================================= */
int ctl_state_load(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_state_free(struct ctl_ctx *ctx);
enum nubo_state ctl_instance_state(const struct ctl_instance *in);
/* The state it would be in were its node ready (ctl_instance_state but for unavailable). */
enum nubo_state ctl_instance_state_base(const struct ctl_instance *in);
/* Instances by state in a metro (base states: as if every node were ready), kept as they
 * change so that GET /metrics does not walk 100,000 instances. */
struct ctl_state_count {
    struct ctl_state_count *next;
    char metro[NUBO_NAME_MAX + 1];
    uint64_t by_state[NUBO_STATE__COUNT];
};
/* After anything ctl_instance_state_base reads or the instance's node changed;
 * ctl_instance_account calls it. A no-op until ctl_instance_add counted the instance. */
void ctl_instance_recount(struct ctl_instance *in);
/* Count an instance entering the working set; uncount it before it leaves. */
void ctl_instance_count(struct ctl_ctx *ctx, struct ctl_instance *in);
void ctl_instance_uncount(struct ctl_instance *in);
/* Instances by state per metro as ctl_instance_state sees them, a row per metro with
 * instances: from the kept counts and the nodes' readiness, or (walk) by a walk of every
 * instance, for tests. *out is malloc'd; returns the number of rows. */
struct ctl_metro_states {
    char metro[NUBO_NAME_MAX + 1];
    uint64_t by_state[NUBO_STATE__COUNT];
};
size_t ctl_instance_state_sums(struct ctl_ctx *ctx, bool walk, struct ctl_metro_states **out);
/* The kept counts against a walk (tests; logs a difference). */
bool ctl_state_counts_verify(struct ctl_ctx *ctx);
void ctl_state_counts_free(struct ctl_ctx *ctx);
/* A wait for want can no longer succeed (the instance stopped after its latest start). */
bool ctl_instance_hopeless(const struct ctl_instance *in, enum nubo_state want);
/* The instance takes its node's memory and vCPUs now (meant to run, or not yet reported
 * stopped); stopped and standby instances hold only their address. */
bool ctl_instance_holds(const struct ctl_instance *in);
/* ---- capacity.c: per-node sums kept as instances change, ready nodes ranked per metro ---- */
/* What the node's instances that hold capacity take of it (the kept sums; _walk adds them up). */
void ctl_node_used(const struct ctl_node *node, int64_t *memory_mb, int64_t *vcpus);
void ctl_node_used_walk(const struct ctl_node *node, int64_t *memory_mb, int64_t *vcpus);
/* After anything ctl_instance_holds reads changed (desired state, observation, its node):
 * moves the instance's share on its node's sums. Attach and detach call it. */
void ctl_instance_account(struct ctl_instance *in);
/* After a node's readiness, maintenance or free capacity changed: its place in the ranking. */
void ctl_node_reindex(struct ctl_node *node);
void ctl_capacity_add_node(struct ctl_ctx *ctx, struct ctl_node *node);
/* After a register changed the node's memory or vCPUs (old_memory_mb: before). */
void ctl_capacity_node_resized(struct ctl_ctx *ctx, struct ctl_node *node, int64_t old_memory_mb);
/* The largest node's memory in metro ("" or NULL: any metro); 0 without nodes. */
int64_t ctl_capacity_max_memory_mb(struct ctl_ctx *ctx, const char *metro);
/* Every node's kept sums against a walk of its instances (tests; logs each drift). */
bool ctl_capacity_verify(struct ctl_ctx *ctx);
void ctl_capacity_free(struct ctl_ctx *ctx);
/* A batch of placements (a create's replicas, a batch of starts, a drain) on the live capacity:
 * the nodes it placed on so far, each with what is left of it net of the batch (sn) and its
 * addresses (ipmap). ctl_plan_place puts req->count instances (out[i]: the entry in node/sn)
 * where ctl_schedule on all nodes would, looking only at the best few. */
struct ctl_sched_node;
struct ctl_sched_req;
struct ctl_plan {
    struct ctl_ctx *ctx;
    const struct ctl_node *skip; /* never a candidate (the node being drained) */
    size_t n, cap;
    struct ctl_node **node;
    struct ctl_sched_node *sn;
    uint8_t (*ipmap)[32];
};
void ctl_plan_init(struct ctl_plan *p, struct ctl_ctx *ctx, const struct ctl_node *skip);
void ctl_plan_free(struct ctl_plan *p);
/* The plan's entry for node, added with its live values when new. */
size_t ctl_plan_entry(struct ctl_plan *p, struct ctl_node *node);
int ctl_plan_place(struct ctl_plan *p, const struct ctl_sched_req *req, size_t *out,
                   struct nubo_err *err);
/* The lowest free address of entry e, taken in the plan; -1 when full. */
int ctl_plan_address(struct ctl_plan *p, size_t e);
/* In standby or on its way there (its node still stopping or saving it): traffic may wake it. */
bool ctl_instance_sleeping(const struct ctl_instance *in);
void ctl_instance_attach(struct ctl_instance *in, struct ctl_node *node);
void ctl_instance_detach(struct ctl_instance *in);
/* After a committed re-placement (the row's node and address, its observation deleted): move
 * the instance to node to with address host; both nodes' desired sets change. */
void ctl_instance_move(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *to,
                       int host);
void ctl_instance_destroy(struct ctl_instance *in);
/* Index a committed instance (by uuid and owner/name), on its node and in its group. */
void ctl_instance_add(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *node);
struct ctl_instance *ctl_instance_find(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                       const char *uuid, const char *name);
bool ctl_instance_name_taken(struct ctl_ctx *ctx, const char *owner, const char *name);
void ctl_node_ip_str(const struct ctl_node *n, int host, char out[NUBO_IP_STR_MAX]);
void ctl_node_gateway(const struct ctl_node *n, char out[NUBO_IP_STR_MAX]);
void ctl_node_subnet(const struct ctl_node *n, char out[NUBO_CIDR_STR_MAX]);
struct ctl_node *ctl_node_new(struct ctl_ctx *ctx, const struct ctl_node_row *row);
struct ctl_node *ctl_node_find(struct ctl_ctx *ctx, const char *name_or_uuid);

/* ---- model_logs.c: console tails ---- */
/* Appends len bytes to lt (buf allocated), keeping only the newest cap bytes. */
void ctl_logtail_push(struct ctl_logtail *lt, const void *data, size_t len);
/* Console bytes the agent sent for in at stream offset. */
void ctl_log_append(struct ctl_ctx *ctx, struct ctl_instance *in, int64_t offset,
                    const unsigned char *data, size_t len);
/* Persist the console tails that changed since the last call (tick and shutdown). */
void ctl_logs_flush(struct ctl_ctx *ctx);
int ctl_logs_load(struct ctl_ctx *ctx, struct nubo_err *err);

/* ---- model_instances.c: what happens to instances ---- */
/* Delete committed instances (one transaction, with inline groups left empty), then forget
 * them. NULL entries are skipped. */
int ctl_instances_delete(struct ctl_ctx *ctx, struct ctl_instance **v, size_t n,
                         struct nubo_err *err);
/* A start or stop of one instance; changed says whether it did anything. */
struct ctl_desire {
    struct ctl_instance *in; /* NULL = skip */
    bool start;
    bool standby; /* a stop by scale-to-zero (only of a running instance; traffic wakes it) */
    bool force;
    int64_t drain_timeout_ms;
    bool changed;
    /* set by ctl_place_starts: a start its node has no room for runs there instead */
    struct ctl_node *move_to;
    int move_ip_host;
};
int ctl_instances_desire(struct ctl_ctx *ctx, struct ctl_desire *d, size_t n, struct nubo_err *err);
/* Persist the reports of node that change something (one transaction), then apply them. */
int ctl_instances_observe(struct ctl_ctx *ctx, struct ctl_node *node,
                          struct nubo_status_report *reps, size_t n, struct nubo_err *err);
/* One node's reports in a group commit. */
struct ctl_obs_part {
    struct ctl_node *node;
    struct nubo_status_report *reps; /* applied ones give their message to the model */
    size_t n;
};
/* The reports of many nodes that change something, in one transaction, then applied in order.
 * -1: nothing was written nor applied, and err says why, for every part. */
int ctl_instances_observe_group(struct ctl_ctx *ctx, struct ctl_obs_part *parts, size_t n_parts,
                                struct nubo_err *err);

/* ---- model_s2z.c: scale-to-zero ---- */
/* An ingress's traffic report: instances quiet past their cooldown go to standby. */
int ctl_s2z_traffic(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t,
                    struct nubo_err *err);
/* A connection waits at metro's ingress for group svc_uuid: start one standby instance unless
 * one is starting or running. instance (NULL or "" = any): bytes moved on a TCP session of
 * that instance of the group; start it if it is in standby. */
int ctl_s2z_wake(struct ctl_ctx *ctx, const char *metro, const char *svc_uuid,
                 const char *instance, struct nubo_ingress_wake_resp *out, struct nubo_err *err);

/* ---- model_nodes.c: node lifecycle ---- */
/* May rq register its name? by_token: the node its bearer token belongs to, NULL = it came
 * with the join token. 0, or -1 with err set (403/409, one line saying what to do). */
int ctl_node_register_check(struct ctl_ctx *ctx, const struct nubo_register_req *rq,
                            const struct ctl_node *by_token, struct nubo_err *err);
/* Register (or re-register) a node from rq, the instances it no longer holds reported
 * stopped. keep_token: the node's token it came with (kept), NULL = a new one; either way it is
 * copied into token. The caller checked the credential (ctl_node_register_check); a known
 * node's metro never changes here. rq's register key, when it has one, becomes the node's. */
int ctl_node_register(struct ctl_ctx *ctx, struct nubo_register_req *rq, const char *keep_token,
                      char token[NUBO_AGENT_TOKEN_MAX], struct ctl_node **out,
                      struct nubo_err *err);
/* An admin replaces node's machine: a new token into token (committed); the old one, and the
 * old machine's register key, are refused from now on. The node keeps its name, metro, subnet
 * and instances. */
int ctl_node_replace(struct ctl_ctx *ctx, struct ctl_node *node, char token[NUBO_AGENT_TOKEN_MAX],
                     struct nubo_err *err);
void ctl_node_seen(struct ctl_ctx *ctx, struct ctl_node *node);
/* Nodes silent past the grace become unavailable. */
void ctl_nodes_check(struct ctl_ctx *ctx);
/* The heartbeat interval to tell a node now: the configured one, stretched so that all nodes
 * together stay under [agent] max_heartbeats_per_second (as Nomad stretches its TTLs). */
int64_t ctl_heartbeat_ms(const struct ctl_ctx *ctx);
/* How long node may stay silent: grace_ms scaled like the interval it was last told. */
int64_t ctl_node_grace_ms(const struct ctl_ctx *ctx, const struct ctl_node *node);
/* Re-place every instance of node elsewhere in its metro (all or nothing) and mark it
 * maintenance; moved gets {uuid,name,node,private_ip} per instance. */
/* On success *moved (malloc'd, NULL when none) lists the *n_moved instances it moved. */
int ctl_node_drain(struct ctl_ctx *ctx, struct ctl_node *node, struct nubo_moved_instance **moved,
                   size_t *n_moved, struct nubo_err *err);
int ctl_node_set_ready(struct ctl_ctx *ctx, struct ctl_node *node, struct nubo_err *err);

/* ---- scheduler.c: placement over the working set (see scheduler.h for the pure part) ---- */
struct ctl_sched_node;
struct ctl_sched_req;
/* The lowest free instance address of a node's /24 (.2 ..), -1 when full. */
int ctl_ip_lowest_free(const uint8_t used[32]);

/* ---- model_place.c: a create request into placed, committed instances ---- */
/* Place and commit one create object's instances (replicas + 1) for u with image im, joining
 * or making the service group sgj. Names already used in this request are in taken. Appends
 * the instances to made. -1 with err (nothing changed). */
int ctl_place(struct ctl_ctx *ctx, const struct ctl_user_row *u, const struct nubo_create_req *cr,
              const struct ctl_image_row *im, json_t *sgj, struct ctl_instance **made,
              size_t *n_made, struct nubo_err *err);
/* Room for the starts in d of instances that hold nothing now (stopped, standby): each runs on
 * its own node when that has room and takes new work, else d[i].move_to names another ready
 * node of its metro (and d[i].move_ip_host its address there). An instance whose volumes pin
 * it to a full node, or one that fits nowhere, is a 503 naming it; nothing is changed. */
int ctl_place_starts(struct ctl_ctx *ctx, struct ctl_desire *d, size_t n, struct nubo_err *err);

/* ---- model_users.c: deleting a user ---- */
struct ctl_user_owned {
    size_t instances, services, volumes, certificates, images;
};
/* What the user named owner holds (images: in the index). -1 only when the store fails. */
int ctl_user_owned(struct ctl_ctx *ctx, const char *owner, struct ctl_user_owned *out,
                   struct nubo_err *err);
/* Delete u: refused (409 naming what it owns) while it owns objects, unless force, which
 * deletes them first. u is freed. */
int ctl_user_delete(struct ctl_ctx *ctx, struct ctl_user_row *u, bool force, struct nubo_err *err);

/* ---- model_quotas.c: per-user quotas ---- */
/* What owner holds, counted from the working set. */
void ctl_quota_used(struct ctl_ctx *ctx, const char *owner, int64_t used[NUBO_QUOTA_N]);
/* u's hard limits: an admin's per-user value, else [quotas]; none (UNLIMITED) for admins. */
void ctl_quota_hard(struct ctl_ctx *ctx, const struct ctl_user_row *u, int64_t hard[NUBO_QUOTA_N]);
/* Would u holding delta more stay within every limit? 403 naming the first one exceeded. */
int ctl_quota_check(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                    const int64_t delta[NUBO_QUOTA_N], struct nubo_err *err);
/* The same for the user named owner (an object's owner); unknown users pass. */
int ctl_quota_check_owner(struct ctl_ctx *ctx, const char *owner,
                          const int64_t delta[NUBO_QUOTA_N], struct nubo_err *err);
void ctl_quota_view(struct ctl_ctx *ctx, const struct ctl_user_row *u, struct nubo_user_quota *out);
/* An admin's change of u's limits, committed first. */
int ctl_quota_set(struct ctl_ctx *ctx, const struct ctl_user_row *u, const struct nubo_quota_set *s,
                  struct nubo_err *err);
int ctl_quotas_load(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_quotas_free(struct ctl_ctx *ctx);

/* ---- model_domains.c: who may hold which name ---- */
/* May owner hold fqdn as a domain of a group in metro? Platform names (at or under [services]
 * domain) only as <label>.<metro>.<domain>; custom ones first come or as granted; not held by
 * another group (self excepted). Another tenant's domain is refused without naming its holder. */
int ctl_domain_check(struct ctl_ctx *ctx, const char *owner, const char *metro, const char *fqdn,
                     const struct ctl_svc *self, struct nubo_err *err);
/* May owner's certificate carry the DNS name name (possibly "*.x")? Never a platform name, only
 * granted custom domains, none that covers another tenant's domain. */
int ctl_cert_name_check(struct ctl_ctx *ctx, const char *owner, const char *name,
                        struct nubo_err *err);
/* Can port be published ([services] public_ports, reserved_ports)? 400 naming it otherwise. */
int ctl_public_port_check(struct ctl_ctx *ctx, int64_t port, struct nubo_err *err);

/* ---- model_groups.c: service groups ---- */
int ctl_services_load(struct ctl_ctx *ctx, struct nubo_err *err); /* before the instances */
void ctl_services_free(struct ctl_ctx *ctx);
struct ctl_svc *ctl_svc_find(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                             const char *name);
/* An instance joins / leaves its group (in->row.service_group) in the working set. */
void ctl_svc_link(struct ctl_ctx *ctx, struct ctl_instance *in);
void ctl_svc_unlink(struct ctl_instance *in);
/* Build a new group from a create request for user u in metro; persistent for explicit
 * groups. Fills row (nothing changes anywhere). */
int ctl_svc_build(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                  const struct nubo_svc_create_req *req, const char *metro, bool persistent,
                  struct ctl_svc_row *row, struct nubo_err *err);
/* Add a committed row to the working set. */
struct ctl_svc *ctl_svc_add(struct ctl_ctx *ctx, const struct ctl_svc_row *row);
void ctl_svc_forget(struct ctl_ctx *ctx, struct ctl_svc *g);
/* The ports the group's instances serve (destination ports, redirects excluded). */
size_t ctl_svc_dest_ports(const struct ctl_svc *g, int64_t *out, size_t max);
/* qsort order of groups: oldest first, then uuid. */
int ctl_svc_cmp(const void *a, const void *b);
/* The first metro by name that has nodes, NULL = none. */
const char *ctl_default_metro(struct ctl_ctx *ctx);
/* Build, commit and add a persistent group. */
struct ctl_svc *ctl_svc_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                               const struct nubo_svc_create_req *req, struct nubo_err *err);
/* Apply one PATCH operation to g and commit it. */
int ctl_svc_patch(struct ctl_ctx *ctx, struct ctl_svc *g, const struct nubo_svc_patch *p,
                  struct nubo_err *err);
/* Delete a group with no instances (409 otherwise). */
int ctl_svc_delete(struct ctl_ctx *ctx, struct ctl_svc *g, struct nubo_err *err);

/* ---- model_certs.c: user certificates ---- */
struct ctl_cert *ctl_cert_find(struct ctl_ctx *ctx, const char *owner, const char *uuid,
                               const char *name);
/* The group that uses c, NULL = none. */
const struct ctl_svc *ctl_cert_user(struct ctl_ctx *ctx, const struct ctl_cert *c);
/* Check (OpenSSL), commit and add a certificate from req (taken). */
struct ctl_cert *ctl_cert_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                 struct nubo_cert_req *req, struct nubo_err *err);
/* Delete a certificate no group uses (409 otherwise). */
int ctl_cert_delete(struct ctl_ctx *ctx, struct ctl_cert *c, struct nubo_err *err);
int ctl_certs_load(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_certs_free(struct ctl_ctx *ctx);

/* ---- model_images.c: the image index and the registry resolver ---- */
int ctl_resolver_start(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_resolver_stop(struct ctl_ctx *ctx);
/* Resolve an image reference for user u. Returns 1 found (row_out filled), 0 unknown to the
 * index (repo_out/ref_out: what to ask the registry), -1 error. */
int ctl_image_lookup(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *ref,
                     struct ctl_image_row *row_out, char repo_out[256], char ref_out[160],
                     struct nubo_err *err);
bool ctl_image_visible(const struct ctl_user_row *u, const char *owner);
/* Index repo@digest (tag optional) with what the registry told (info may be NULL). */
int ctl_image_index(struct ctl_ctx *ctx, const char *repo, const char *tag,
                    const struct nubo_image_info *info, const char *digest, int64_t size,
                    struct nubo_err *err);
int ctl_image_forget(struct ctl_ctx *ctx, const char *digest_ref, struct nubo_err *err);
/* Queue a registry inspection of repo:ref for b (NULL: just index the answer). */
int ctl_resolve_async(struct ctl_ctx *ctx, const char *repo, const char *ref,
                      struct ctl_resolve_batch *b, struct nubo_err *err);
/* What b asked about repo:ref (and, once answered, the answer), NULL = not asked. */
struct ctl_resolved *ctl_resolved_find(const struct ctl_resolve_batch *b, const char *repo,
                                       const char *ref);
void ctl_resolve_batch_clear(struct ctl_resolve_batch *b);
/* Add repo:ref to the list want unless it is there. */
void ctl_resolve_want(struct ctl_resolved **want, const char *repo, const char *ref);
/* Ask the registry about want (taken) for b: 0 when something was queued, else -1 with the
 * last failure in err. */
int ctl_resolve_ask(struct ctl_ctx *ctx, struct ctl_resolve_batch *b, struct ctl_resolved *want,
                    struct nubo_err *err);

/* ---- auth.c ---- */
/* An API token in memory (ctx->tokens, by hash): its row and its user. */
struct ctl_token {
    struct ctl_token_row row;
    struct ctl_user_row *user;
};
int ctl_auth_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err);
/* The user of a valid full token, NULL for anything else (missing, unknown, expired, scoped). */
const struct ctl_user_row *ctl_auth_user(struct ctl_ctx *ctx, const char *token);
/* The same with the reason in err: 401 missing/unknown/expired (one line naming what to do),
 * 403 a metrics-only token on the API. metrics: the request is GET /metrics, which admins'
 * tokens and metrics tokens may read. *t_out (may be NULL) gets the token. */
int ctl_auth_check(struct ctl_ctx *ctx, const char *token, bool metrics,
                   const struct ctl_user_row **u_out, const struct ctl_token **t_out,
                   struct nubo_err *err);
/* A new token for u (the user row inserted too when insert_user), committed, then indexed;
 * req (may be NULL) sets its expiry and scope. */
int ctl_token_issue(struct ctl_ctx *ctx, struct ctl_user_row *u, bool insert_user,
                    const struct nubo_token_req *req, char token[NUBO_AGENT_TOKEN_MAX],
                    const struct ctl_token **out, struct nubo_err *err);
/* Revoke t (committed first): the next request with it is a 401. t is freed. */
int ctl_token_revoke(struct ctl_ctx *ctx, struct ctl_token *t, struct nubo_err *err);
/* Forget u's tokens, quotas and rate bucket and u itself once the store dropped them. */
void ctl_auth_forget_user(struct ctl_ctx *ctx, struct ctl_user_row *u);
/* The API form of t; current = the request came with it. */
void ctl_token_to_api(const struct ctl_token *t, bool current, struct nubo_token *out);
struct ctl_node *ctl_auth_node(struct ctl_ctx *ctx, const char *token);
bool ctl_auth_join(struct ctl_ctx *ctx, const char *token);
/* A user by name or uuid, NULL = none. */
struct ctl_user_row *ctl_user_find(struct ctl_ctx *ctx, const char *ref);
/* A fresh token "base64(<user>:<hex>)" into out and its hash into hash_out. */
void ctl_token_new(const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   char hash_out[NUBO_SHA256_HEX_LEN + 1]);
/* Read a token file, or create it (mode 0600) with a random token. */
int ctl_token_file(const char *path, const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   struct nubo_err *err);
/* reply.c: the bearer token of a request (of an Authorization value), NULL = none. */
const char *ctl_bearer(struct evhttp_request *req);
const char *ctl_bearer_of(const char *authorization);

/* ==== handlers' shared floor ================================================================= */
/* views.c: API objects from the working set */
/* out borrows the instance's strings; only out->service_group (NULL = none) is malloc'd. */
void ctl_instance_to_api(struct ctl_ctx *ctx, const struct ctl_instance *in,
                         struct nubo_instance *out);
json_t *ctl_instance_json(struct ctl_ctx *ctx, const struct ctl_instance *in, bool details);
/* A group as the API shows it; with_instances fills out->instances (malloc'd: free with
 * nubo_svc_group_free), without it is the short form an instance carries. */
void ctl_svc_to_api(struct ctl_ctx *ctx, const struct ctl_svc *g, bool with_instances,
                    struct nubo_svc_group *out);
/* {"status":"success", uuid, name?}: what a delete says of an item it removed. */
json_t *ctl_item_ok(const char *uuid, const char *name);
/* A query flag: true/1/"" or false/0; anything else is a 400 naming key. */
int ctl_query_bool(const char *key, const char *v, bool *out, struct nubo_err *err);

/* refs.c: {uuid}|{name} look-ups shared by /v1/services and /v1/certificates */
/* A create or patch body: one object, or an array of 1..max (*batch) of n; missing is the
 * error for no body, "<verb>: an array of 1..<max> <noun>" for a wrong count. */
int ctl_body_items(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, const char *missing,
                   const char *verb, const char *noun, size_t max, json_t **body, bool *batch,
                   size_t *n, struct nubo_err *err);
/* The path's object reference (rest = "/<ref>"): NULL when none; -1 with err (404). */
int ctl_path_ref(const struct ctl_reqinfo *ri, const char *rest, char buf[128], const char **ref,
                 struct nubo_err *err);
/* What GET/DELETE by reference differ in between kinds of named objects. */
struct ctl_named_ops {
    const char *collection; /* envelope key */
    const char *plural;     /* for the one-line error */
    const char *(*owner)(const void *obj);
    int (*cmp)(const void *a, const void *b);
    json_t *(*to_json)(struct ctl_ctx *ctx, const void *obj);
    void *(*find)(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                  const char *name);
    json_t *(*not_found)(const char *uuid, const char *name);
    /* Deletes obj unless something still uses it; returns that item's result either way. */
    json_t *(*del)(struct ctl_ctx *ctx, void *obj);
    /* Which of the caller's objects a GET without look-ups lists (NULL = all). */
    bool (*listed)(struct ctl_ctx *ctx, const void *obj);
};
/* The {uuid}|{name} items a request names: the path's, ?uuid=/?name=, or a body (object or
 * array); *all when none. A new array, or NULL with err. */
json_t *ctl_collect_refs(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                         bool *all, struct nubo_err *err);
/* Item i of such a list -> uuid/name; 400 on a bad shape. */
int ctl_ref_of(json_t *e, size_t i, char uuid[NUBO_UUID_STR_LEN + 1], char name[NUBO_NAME_MAX + 1],
               struct nubo_err *err);
/* GET lists the caller's objects of map (all, sorted) or the ones named; DELETE needs names. */
int ctl_named_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref, bool del,
                         const struct ctl_map *map, const struct ctl_named_ops *ops,
                         struct nubo_err *err);

/* waits.c: replies held until instances reach a state */
struct ctl_wait_item {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    enum nubo_state want;
    bool done;
    json_t *result; /* item to reply with */
};
/* Park a reply until every item reached its state, or timeout_ms passed. Takes items.
 * reply_items (create/start): reply with instance objects on timeout too. */
void ctl_wait_park(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, struct ctl_wait_item *items,
                   size_t n, int64_t timeout_ms, bool reply_items);
/* The item a hopeless wait answers with: the instance (reply_items) or a 409 naming why. */
json_t *ctl_wait_hopeless_item(struct ctl_ctx *ctx, const struct ctl_instance *in,
                               bool reply_items);
void ctl_waits_on_changed(struct ctl_ctx *ctx, struct ctl_instance *in); /* event */
void ctl_waits_on_gone(struct ctl_ctx *ctx, const char *uuid);           /* event */
/* Waits whose client went away are answered (which frees them). */
void ctl_waits_reap(struct ctl_ctx *ctx);

/* ==== handlers: each answers one family of endpoints; -1 with err = the router replies ==== */
int ctl_handle_instances(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                         struct nubo_err *err);
/* inst_metrics.c: GET /v1/instances/metrics (ref NULL) and /v1/instances/{ref}/metrics */
int ctl_handle_instance_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *ref,
                                struct nubo_err *err);
/* A node's stats of its running domains (status batch). */
void ctl_instances_stats(struct ctl_ctx *ctx, struct ctl_node *node,
                         const struct nubo_instance_stats *s, size_t n);
/* A metro's ingress counters (POST /ingress/v1/traffic); gauges older than this are 0. */
#define CTL_INGRESS_STALE_US (5 * INT64_C(1000000))
void ctl_instances_ingress(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t);
/* The API's metrics of one instance, as GET /v1/instances/metrics shows them. */
void ctl_instance_metrics(const struct ctl_instance *in, struct nubo_instance_metrics *out);
/* Of those, what its ingress reports open now (0 once the reports are stale), as of now. */
/* Take the instance out of ctx->ingress_fresh (before it leaves the working set). */
void ctl_instance_ingress_unlink(struct ctl_ctx *ctx, struct ctl_instance *in);
/* Per metro, what its ingress reports open now: the sums of ctl_instance_ingress_gauges over
 * the instances reported within CTL_INGRESS_STALE_US (the rest read 0); rows as
 * ctl_instance_state_sums made them, metros not among them skipped. Drops stale ones from
 * ctx->ingress_fresh. */
struct ctl_ingress_sums {
    int64_t nconns, nreqs, nqueued;
};
void ctl_ingress_gauge_sums(struct ctl_ctx *ctx, const struct ctl_metro_states *m, size_t nm,
                            struct ctl_ingress_sums *out);
void ctl_instance_ingress_gauges(const struct ctl_instance *in, int64_t now_mono_us,
                                 int64_t *nconns, int64_t *nreqs, int64_t *nqueued);
int ctl_handle_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err);
int ctl_handle_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err);
int ctl_handle_registry_events(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err);

/* ---- regtoken.c: the registry's token service ---- */
struct ctl_regtoken_who {
    char name[NUBO_NAME_MAX + 8]; /* the JWT subject: user name or "node:<name>" */
    bool admin, node, internal;   /* internal: the controller's own calls */
};
/* Appends to access what who may do of one scope ("repository:<name>:<actions>",
 * "registry:catalog:*"): 1 = something granted, 0 = nothing, -1 = malformed scope. */
int ctl_regtoken_grant(const struct ctl_regtoken_who *who, const char *scope, json_t *access);
/* A signed JWT for subject with access (a JSON array); malloc'd, NULL with err. */
char *ctl_regtoken_sign(struct ctl_ctx *ctx, const char *subject, json_t *access,
                        struct nubo_err *err);
int ctl_regtoken_init(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_regtoken_free(struct ctl_ctx *ctx);
int ctl_handle_registry_token(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err);

/* ---- tls.c: HTTPS on the TCP listener ---- */
/* The TLS context of [controller] tls_cert_file and tls_key_file, and a connection's TLS layer
 * (for evhttp_set_bevcb, through conns.c). */
int ctl_tls_load(struct ctl_ctx *ctx, struct nubo_err *err);
struct bufferevent *ctl_tls_bev(struct ctl_ctx *ctx, struct event_base *base);
void ctl_tls_free(struct ctl_ctx *ctx);

/* ---- ratelimit.c ---- */
/* One request of u's budget, and one more per CTL_RATE_BODY_UNIT of its body: false (and when
 * to retry) once u is over its rate. */
#define CTL_RATE_BODY_UNIT (64 * 1024)
bool ctl_rate_take(struct ctl_ctx *ctx, const struct ctl_user_row *u, size_t body_len,
                   int64_t *retry_ms);
/* The same question without spending: the header gate refuses an empty bucket's request. */
bool ctl_rate_check(struct ctl_ctx *ctx, const struct ctl_user_row *u, int64_t *retry_ms);
void ctl_rate_free(struct ctl_ctx *ctx);
int ctl_handle_agent(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err);
/* quotas.c: rest is "/quotas" or "/{uuid|name}/quotas" (under /v1/users). */
int ctl_handle_quotas(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                      struct nubo_err *err);
int ctl_handle_users(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err);
int ctl_handle_nodes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                     struct nubo_err *err);
int ctl_handle_metros(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err);
int ctl_handle_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err);
int ctl_handle_services(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                        struct nubo_err *err);
int ctl_handle_certificates(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                            struct nubo_err *err);
int ctl_handle_ingress(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                       struct nubo_err *err);

/* agents.c: the agents' side of the events and of shutdown */
void ctl_agent_on_node_changed(struct ctl_ctx *ctx, struct ctl_node *node); /* event */
/* The node's token changed: its parked watches are answered 401 at once. */
void ctl_agent_cut(struct ctl_ctx *ctx, struct ctl_node *node);
void ctl_agent_free(struct ctl_ctx *ctx);
/* A lost lease: the parked watches are sent to the new leader (ctl_park_drain); the rest stays
 * until the process starts again. */
void ctl_agent_release(struct ctl_ctx *ctx);
/* ingress_watch.c */
int ctl_ingress_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_ingress_on_changed(struct ctl_ctx *ctx, const char *metro); /* event */
/* Why metro's ingress left public port out of HAProxy (its last report), NULL = it did not. */
const char *ctl_ingress_port_error(struct ctl_ctx *ctx, const char *metro, int64_t port);
void ctl_ingress_free(struct ctl_ctx *ctx);
void ctl_ingress_release(struct ctl_ctx *ctx); /* as ctl_agent_release */

/* ==== leader.c: election, fencing, takeover ==== */
/* Find out who leads (sqlite: this controller, at once) and lead if the lease is free; a
 * follower looks again every lease_check_ms. At start a failed load is returned. */
int ctl_leader_start(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_leader_free(struct ctl_ctx *ctx);
/* The health fields: role, epoch, leader_url. */
void ctl_leader_health(struct ctl_ctx *ctx, json_t *env);

/* ==== server.c: the router ==== */
int ctl_server_start(struct ctl_ctx *ctx, struct nubo_err *err);
/* What the header gate knows of a request before its body, and what it decides. */
struct ctl_gate {
    const char *method, *path; /* path as on the request line, without the query */
    const char *bearer;        /* NULL = none */
    int64_t content_length;    /* -1 = none */
    bool chunked;
    int64_t limit;         /* out: the body bound of this request */
    int64_t retry_after_s; /* out: with a 429 */
};
/* Auth, rate and body size of g's route from its headers alone: 0 with g->limit, or -1 with
 * err (its status) to answer without reading the body. */
int ctl_route_gate(struct ctl_ctx *ctx, struct ctl_gate *g, struct nubo_err *err);
typedef int (*ctl_gate_fn)(struct ctl_ctx *ctx, struct ctl_gate *g, struct nubo_err *err);

/* ==== conns.c: caps on connections, header deadline, the header gate ==== */
/* Guard every connection http accepts (TLS ones when tls; per_client: count them by peer
 * address against max_connections_per_client; gate: asked with each request's headers). */
void ctl_conns_attach(struct ctl_ctx *ctx, struct evhttp *http, bool tls, bool per_client,
                      ctl_gate_fn gate);
/* A request reached the router: its connection's next request starts when this one's reply is
 * sent. */
void ctl_conns_request(struct ctl_ctx *ctx, struct evhttp_request *req);
/* Whether the listeners may accept (false while max_connections are open). */
bool ctl_conns_room(struct ctl_ctx *ctx);
void ctl_conns_free(struct ctl_ctx *ctx);

#endif
