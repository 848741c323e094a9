/* nubo-controller internals: the context every handler receives, the in-memory working set
 * (loaded from and written through to the sqlite store), and what crosses files. */
#ifndef NUBO_CTL_H
#define NUBO_CTL_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>

#include "agent.h"
#include "api.h"
#include "error.h"
#include "oci_image.h"
#include "registry.h"
#include "service.h"
#include "store.h"

#define CTL_VERSION "0.1.0"
#define CTL_HOSTS_PER_NODE 253 /* .2 .. .254 of the node's /24; .1 is the gateway */

/* ---- config.c ---- */
struct ctl_config {
    char listen[128];
    char unix_path[108];
    char db_path[PATH_MAX];
    char bootstrap_token_file[PATH_MAX];
    char join_token_file[PATH_MAX];
    char admin_user[NUBO_API_USER_MAX + 1];
    int log_level;
    bool sync_full;
    int64_t max_body_bytes; /* public API bodies */
    int64_t heartbeat_interval_ms;
    int64_t grace_ms;
    int64_t watch_coalesce_ms; /* hold a changed desired set this long to batch changes */
    uint32_t pool_net;         /* host byte order */
    int pool_prefix;           /* <= 24 */
    char cluster_domain[64];
    int64_t vcpu_overcommit;
    int64_t log_tail_bytes; /* console tail kept per instance */
    struct nubo_registry registry;
    char registry_secret[256]; /* notifications Authorization: Bearer <secret> */
    char services_domain[128];  /* default domains: <group>.<metro>.<services_domain> */
    char ingress_token_file[PATH_MAX];
};
void ctl_config_defaults(struct ctl_config *c);
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
int ctl_map_put(struct ctl_map *m, const char *key, void *val); /* replaces */
void *ctl_map_del(struct ctl_map *m, const char *key);
void ctl_map_clear(struct ctl_map *m);
#define ctl_map_foreach(m, e)                                                                      \
    for (size_t _i = 0; _i < (m)->nb; _i++)                                                        \
        for (struct ctl_map_ent *e = (m)->b[_i], *_nx = e ? e->next : NULL; e;                     \
             e = _nx, _nx = e ? e->next : NULL)

/* ---- the working set ---- */

struct ctl_instance;
struct ctl_parked;
struct ctl_svc;

struct ctl_node {
    struct ctl_node_row row; /* what the store keeps */
    char guest_cpu[NUBO_GUEST_CPU_MAX]; /* as last registered (not stored: re-sent on register) */
    uint32_t subnet_base;    /* pool + index * 256, host byte order */
    bool ready;              /* false = unavailable (missed heartbeats) */
    int64_t last_seen_mono_us;
    int64_t free_memory_mb; /* as reported, -1 unknown */
    int64_t used_memory_mb, used_vcpus;
    size_t n_instances;
    uint8_t ip_used[32]; /* host byte of the /24 */
    int64_t version;     /* assignment version */
    struct ctl_instance *inst_head;
    struct ctl_parked *watches;
    struct event *flush_ev; /* answers parked watches, throttled (ctl_node_bump) */
    int64_t last_flush_mono_us;
};

struct ctl_logtail {
    unsigned char *buf;
    size_t len, cap;
    int64_t start; /* stream offset of buf[0] */
};
/* Appends len bytes to lt (buf allocated), keeping only the newest cap bytes. */
void ctl_logtail_push(struct ctl_logtail *lt, const void *data, size_t len);

struct ctl_instance {
    struct ctl_instance_row row; /* intent, as stored */
    bool has_obs;
    struct nubo_status_report obs; /* observation, as stored */
    struct ctl_node *node;
    struct ctl_instance *node_prev, *node_next;
    char *assign_json; /* cached encoded assignment, NULL = stale */
    size_t assign_len;
    struct ctl_logtail log;
    struct ctl_svc *svc; /* its service group, NULL = none */
    struct ctl_instance *svc_prev, *svc_next;
    bool log_dirty;          /* console output not yet persisted */
    int64_t log_saved_end;   /* stream offset up to which the store has it */
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

/* One metro's ingress state: its version and the nubo-ingress long polls parked on it. */
struct ctl_ing_metro {
    char name[NUBO_NAME_MAX + 1];
    int64_t version;
    struct ctl_parked *watches;
    struct event *flush_ev;
    struct ctl_ctx *ctx;
};

/* A request whose reply waits for something (watch, wait, image resolve). */
enum ctl_park_kind { CTL_PARK_WATCH, CTL_PARK_WAIT, CTL_PARK_RESOLVE, CTL_PARK_INGRESS };
struct ctl_wait_item {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    enum nubo_state want;
    bool done;
    json_t *result; /* item to reply with */
};
struct ctl_parked {
    struct ctl_parked *next, *prev; /* in ctx->waits or node->watches */
    enum ctl_park_kind kind;
    struct ctl_ctx *ctx;
    struct evhttp_request *req;
    int route;
    int64_t start_mono_us;
    struct event *timer;
    /* watch */
    struct ctl_node *node;
    struct ctl_ing_metro *ing; /* ingress watch */
    /* wait */
    bool wait_reply_items; /* create/start: reply with instance objects on timeout too */
    const char *collection;
    struct ctl_wait_item *items;
    size_t n_items;
    struct ctl_user_row user;
    /* resolve: the create (resume_images false) or images look-up to re-run once the
     * registry answered */
    bool resume_images;
    char *body;
    size_t body_len;
    int pending;
    struct ctl_resolved *resolved;
};
struct ctl_resolved {
    struct ctl_resolved *next;
    char repo[256];
    char ref[160];
    int http_status; /* 0 = resolved */
    char msg[NUBO_ERR_MSG_MAX];
};

/* ---- metrics ---- */
#define CTL_HIST_BUCKETS 14
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
    CTL_R_AGENT_REGISTER,
    CTL_R_AGENT_WATCH,
    CTL_R_AGENT_STATUS,
    CTL_R_AGENT_LOG,
    CTL_R_SERVICES,
    CTL_R_CERTS,
    CTL_R_INGRESS_WATCH,
    CTL_R_NODE_ADMIN,
    CTL_R__COUNT
};
extern const char *const ctl_route_names[CTL_R__COUNT];
struct ctl_metrics {
    uint64_t requests[CTL_R__COUNT][6]; /* by status class 1xx..5xx (index 1..5) */
    struct ctl_hist latency;
    struct ctl_hist boot_time;
};
void ctl_hist_observe(struct ctl_hist *h, double seconds);

/* ---- images.c: the resolver thread's queue ---- */
struct ctl_job {
    struct ctl_job *next;
    char repo[256];
    char ref[160]; /* tag or digest */
    bool ok;
    struct nubo_image_info info;
    struct nubo_err err;
    struct ctl_parked *waiter; /* a parked create to re-run, or NULL (notification) */
    char event_digest[80];     /* notification: digest the registry announced */
};

struct ctl_ctx {
    struct ctl_config cfg;
    struct event_base *base;
    struct evhttp *http;
    struct ctl_store store;
    char join_token_hash[NUBO_SHA256_HEX_LEN + 1];
    struct ctl_map users_by_name; /* -> ctl_user */
    struct ctl_map tokens;        /* sha256 hex -> ctl_user */
    struct ctl_map nodes;         /* uuid -> ctl_node */
    struct ctl_map nodes_by_name;
    struct ctl_map node_tokens;    /* sha256 hex -> ctl_node */
    struct ctl_map instances;      /* uuid -> ctl_instance */
    struct ctl_map instance_names; /* "owner/name" -> ctl_instance */
    struct ctl_map svcs;      /* uuid -> ctl_svc */
    struct ctl_map svc_names; /* "owner/name" -> ctl_svc */
    struct ctl_map svc_fqdns; /* fqdn -> ctl_svc (domains are global) */
    struct ctl_map certs;     /* uuid -> ctl_cert */
    struct ctl_map cert_names; /* "owner/name" -> ctl_cert */
    struct ctl_map ing_metros; /* metro -> ctl_ing_metro */
    char ingress_token_hash[NUBO_SHA256_HEX_LEN + 1];
    struct ctl_parked *waits;
    struct ctl_parked *resolving; /* creates and look-ups waiting for the registry */
    void *status_jobs;            /* status batches being applied in slices (agents.c) */
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

/* ---- server.c ---- */
int ctl_server_start(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_reply_json(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                    int code, json_t *body);
void ctl_reply_error(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     int code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* A batch reply: items (stolen) with per-item "status"; picks success/partial/error. */
void ctl_reply_items(struct ctl_ctx *ctx, struct evhttp_request *req, int route, int64_t start_us,
                     const char *collection, json_t *items);
void ctl_park_link(struct ctl_parked **head, struct ctl_parked *p);
void ctl_park_unlink(struct ctl_parked **head, struct ctl_parked *p);
void ctl_parked_free(struct ctl_parked *p);
/* Request helpers. */
struct ctl_reqinfo {
    struct evhttp_request *req;
    int64_t start_us;
    int route;
    enum evhttp_cmd_type method;
    char path[512];
    struct evkeyvalq *query; /* may be empty list, never NULL */
    const char *body;        /* NUL-terminated copy, NULL when empty */
    size_t body_len;
    struct ctl_user_row user;
};
/* Rebuilds in ri the request p parked, to re-run it once what it waited on arrived; q is an
 * empty query list the caller owns. */
void ctl_reqinfo_of_parked(struct ctl_reqinfo *ri, const struct ctl_parked *p,
                           enum evhttp_cmd_type method, struct evkeyvalq *q);
/* A long-poll reply parked until cb fires after timeout_ms (or a change wakes it first). On
 * failure it has already answered 500 and returns NULL; the caller sets what p waits on and
 * links it. */
struct ctl_parked *ctl_park_timed(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri,
                                  enum ctl_park_kind kind, int64_t timeout_ms,
                                  event_callback_fn cb);

/* ---- state.c: the working set ---- */
int ctl_state_load(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_state_free(struct ctl_ctx *ctx);
enum nubo_state ctl_instance_state(const struct ctl_instance *in);
void ctl_instance_to_api(struct ctl_ctx *ctx, const struct ctl_instance *in,
                         struct nubo_instance *out);
json_t *ctl_instance_json(struct ctl_ctx *ctx, const struct ctl_instance *in, bool details);
void ctl_instance_attach(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *node);
void ctl_instance_detach(struct ctl_ctx *ctx, struct ctl_instance *in);
void ctl_instance_destroy(struct ctl_instance *in);
struct ctl_instance *ctl_instance_find(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                       const char *uuid, const char *name);
/* The node's desired set changed: bump its version and answer its parked watches. */
void ctl_node_bump(struct ctl_ctx *ctx, struct ctl_node *node);
/* Something an instance's visible state depends on changed: answer satisfied waits. */
void ctl_instance_changed(struct ctl_ctx *ctx, struct ctl_instance *in);
void ctl_instance_gone(struct ctl_ctx *ctx, const char *uuid);
/* A wait for want can no longer succeed (the instance stopped after its latest start). */
bool ctl_wait_hopeless(const struct ctl_instance *in, enum nubo_state want);
/* The item a hopeless wait answers with: the instance (reply_items) or a 409 naming why. */
json_t *ctl_wait_hopeless_item(struct ctl_ctx *ctx, const struct ctl_instance *in,
                               bool reply_items);
void ctl_node_ip_str(const struct ctl_node *n, int host, char out[NUBO_IP_STR_MAX]);
void ctl_node_gateway(const struct ctl_node *n, char out[NUBO_IP_STR_MAX]);
void ctl_node_subnet(const struct ctl_node *n, char out[NUBO_CIDR_STR_MAX]);
struct ctl_node *ctl_node_new(struct ctl_ctx *ctx, const struct ctl_node_row *row);
void ctl_agent_flush_watches(struct ctl_ctx *ctx, struct ctl_node *node);

/* ---- handlers ---- */
void ctl_handle_instances(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_images(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_registry_events(struct ctl_ctx *ctx, struct ctl_reqinfo *ri);
void ctl_handle_agent(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_users(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_nodes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
/* PUT /v1/nodes/{name}/drain|ready (admin) */
void ctl_node_admin(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_metros(struct ctl_ctx *ctx, struct ctl_reqinfo *ri);
void ctl_handle_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri);
void ctl_agent_tick(struct ctl_ctx *ctx);
/* Persist the console tails that changed since the last call (tick and shutdown). */
void ctl_logs_flush(struct ctl_ctx *ctx);
void ctl_agent_free_jobs(struct ctl_ctx *ctx);
void ctl_wait_fire(struct ctl_ctx *ctx, struct ctl_parked *p, bool timed_out);
void ctl_wait_timer_cb(evutil_socket_t fd, short what, void *arg);

/* ---- services.c: service groups, certificates, the ingress watch ---- */
void ctl_handle_services(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_certificates(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest);
void ctl_handle_ingress(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                        const char *token);
int ctl_services_load(struct ctl_ctx *ctx, struct nubo_err *err); /* before the instances */
int ctl_ingress_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_services_free(struct ctl_ctx *ctx);
struct ctl_svc *ctl_svc_find(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                             const char *name);
/* An instance joins / leaves its group (in->row.service_group) in the working set. */
void ctl_svc_link(struct ctl_ctx *ctx, struct ctl_instance *in);
void ctl_svc_unlink(struct ctl_ctx *ctx, struct ctl_instance *in);
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
/* service_group{uuid,name,domains[{fqdn,certificate}]} for an instance object. */
json_t *ctl_svc_instance_ref(struct ctl_ctx *ctx, const struct ctl_svc *g);
/* Something a metro's ingress depends on changed. */
void ctl_ingress_bump(struct ctl_ctx *ctx, const char *metro);

/* ---- auth.c ---- */
int ctl_auth_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err);
const struct ctl_user_row *ctl_auth_user(struct ctl_ctx *ctx, const char *token);
struct ctl_node *ctl_auth_node(struct ctl_ctx *ctx, const char *token);
bool ctl_auth_join(struct ctl_ctx *ctx, const char *token);
/* A fresh token "base64(<user>:<hex>)" into out and its hash into hash_out. */
void ctl_token_new(const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   char hash_out[NUBO_SHA256_HEX_LEN + 1]);
/* Read a token file, or create it (mode 0600) with a random token. */
int ctl_token_file(const char *path, const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   struct nubo_err *err);

/* ---- images.c ---- */
int ctl_resolver_start(struct ctl_ctx *ctx, struct nubo_err *err);
void ctl_resolver_stop(struct ctl_ctx *ctx);
/* Resolve an image reference for user u to a digest reference. Returns 1 found (digest_ref
 * filled), 0 unknown to the index (the caller may ask the registry), -1 error. */
int ctl_image_lookup(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *ref,
                     struct ctl_image_row *row_out, char repo_out[256], char ref_out[160],
                     struct nubo_err *err);
/* Queue a registry inspection; when it completes, p (a parked create) is re-run. */
int ctl_resolve_async(struct ctl_ctx *ctx, const char *repo, const char *ref, struct ctl_parked *p,
                      struct nubo_err *err);
void ctl_create_resume(struct ctl_ctx *ctx, struct ctl_parked *p);
void ctl_images_resume(struct ctl_ctx *ctx, struct ctl_parked *p);

#endif
