/* nubo-ingress: one per metro, drives that metro's HAProxy from the controller's service state
 * (proto/PROTOCOL.md, GET /ingress/v1/watch). Pure parts (plan, config text, runtime commands)
 * are separate from the parts that touch processes and sockets so unit tests cover them. */
#ifndef NUBO_INGRESS_CORE_H
#define NUBO_INGRESS_CORE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "http.h"
#include "ingress.h"
#include "util.h"

#define ING_PATH_MAX 512
#define ING_MAX_NODES 4096
#define ING_MIN_SLOTS 2          /* server slots a backend gets per node at least */
#define ING_BE_NAME_MAX 96
/* HAProxy stick table: client connections open per HTTP backend (render.c, activator.c) */
#define ING_CONNS_TABLE "nubo_conns"
#define ING_CMD_MAX 1024         /* one runtime API command line */
/* How long a TCP connection may stay silent both ways before HAProxy closes it (the client
 * and server timeouts, 60 s, would close it sooner) */
#define ING_TCP_TUNNEL_TIMEOUT "1h"
#define ING_RT_REPLY_MAX (1u << 20)

/* How HAProxy reaches a node's guests: through the node's network namespace (HAProxy's
 * `namespace` keyword on server lines) or directly (routed hosts). */
struct ing_node_reach {
    char node[NUBO_NAME_MAX + 1];
    char netns[NUBO_NAME_MAX + 1]; /* "" = direct */
};

/* config.c */
struct ing_config {
    char metro[NUBO_NAME_MAX + 1];
    char controller_url[ING_PATH_MAX];    /* comma-separated: several controllers (http.h) */
    char controller_socket[ING_PATH_MAX]; /* likewise, one per URL when given */
    char controller_ca[ING_PATH_MAX]; /* https: the CA the controller's certificate is from */
    struct nu_http_targets controllers; /* url and socket parsed; the daemon and the activator
                                         * call through it (its current one is shared) */
    char token_file[ING_PATH_MAX];
    char haproxy_bin[ING_PATH_MAX];
    char runtime_dir[ING_PATH_MAX];
    char listen_addr[64];
    int http_port, https_port;
    char cert_file[ING_PATH_MAX], key_file[ING_PATH_MAX], ca_file[ING_PATH_MAX];
    int64_t watch_timeout_ms;
    int64_t timeout_queue_ms;
    int64_t wake_timeout_ms, traffic_interval_ms;
    struct ing_node_reach *nodes;
    size_t n_nodes;
};
void ing_config_defaults(struct ing_config *c);
int ing_config_load(const char *path, struct ing_config *c, struct nubo_err *err);
void ing_config_free(struct ing_config *c);
const struct ing_node_reach *ing_config_node(const struct ing_config *c, const char *node);

/* plan.c: what HAProxy should run, derived from one watch reply and the previous plan (an
 * instance keeps its server slot across plans, so a change is a runtime command, not a
 * reload). */
struct ing_slot {
    char instance[NUBO_UUID_STR_LEN + 1]; /* "" = empty slot (server in maintenance) */
    /* An empty slot's instance in standby or waking that had it: the slot is kept for it while
     * a free one serves others, and it comes back here (its established TCP sessions stay on
     * this server across a stateful standby: the slot says whose they are) */
    char sleeper[NUBO_UUID_STR_LEN + 1];
    char ip[NUBO_IP_STR_MAX];
    bool draining;
};
struct ing_node_slots {
    char node[NUBO_NAME_MAX + 1];
    char netns[NUBO_NAME_MAX + 1];
    size_t n_slots;
    struct ing_slot *slots;
};
struct ing_backend {
    char name[ING_BE_NAME_MAX];
    char service[NUBO_UUID_STR_LEN + 1];
    char service_name[NUBO_NAME_MAX + 1];
    int64_t port, dest_port, hard_limit, soft_limit;
    bool http;
    /* scale-to-zero: the group's instances in standby and starting (no slot, not in the shape),
     * and draining for standby (a request arriving then keeps one running: activator.c) */
    int64_t n_standby, n_starting, n_draining;
    size_t n_nodes;
    struct ing_node_slots *nodes;
};
struct ing_frontend {
    int64_t port; /* public port (80, 443, or a TCP+TLS port) */
    bool http, tls;
};
struct ing_map_entry {
    int64_t port; /* frontend */
    char key[NUBO_FQDN_MAX + 1];
    char value[ING_BE_NAME_MAX];
};
struct ing_cert_file {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char *pem;  /* chain + key */
    char *snis; /* "a.example.com b.example.com": the domains that name it, its only SNI
                 * filters (HAProxy would otherwise pick it for any name it carries) */
};
struct ing_plan {
    struct ing_frontend *frontends;
    size_t n_frontends;
    struct ing_backend *backends;
    size_t n_backends;
    struct ing_map_entry *maps;
    size_t n_maps;
    struct ing_cert_file *certs;
    size_t n_certs;
};
int ing_plan_build(const struct ing_config *cfg, const struct nubo_ingress_watch_resp *w,
                   const struct ing_plan *prev, struct ing_plan *out, struct nubo_err *err);
void ing_plan_free(struct ing_plan *p);
const struct ing_backend *ing_plan_backend(const struct ing_plan *p, const char *name);
/* Bind port of a public port: 80 -> http_port, 443 -> https_port, others unchanged. */
int ing_bind_port(const struct ing_config *cfg, int64_t port);
/* Take the frontend of public port out of p, with its routes: a port HAProxy cannot bind must
 * not fail the reload that carries every other tenant's changes. */
void ing_plan_drop_frontend(struct ing_plan *p, int64_t port);

/* render.c: HAProxy configuration text. shape = without server addresses and states, the
 * part that needs a reload when it changes. Returns malloc'd text. */
char *ing_render_config(const struct ing_config *cfg, const struct ing_plan *p, bool shape);
char *ing_render_map(const struct ing_plan *p, int64_t port);
char *ing_render_crt_list(const struct ing_config *cfg, const struct ing_plan *p);
void ing_map_path(const struct ing_config *cfg, int64_t port, char *out, size_t outsz);

/* runtime.c: runtime API commands turning prev into next (same shape). */
struct ing_cmds {
    char **v;
    size_t n;
};
int ing_runtime_cmds(const struct ing_config *cfg, const struct ing_plan *prev,
                     const struct ing_plan *next, struct ing_cmds *out, struct nubo_err *err);
void ing_cmds_free(struct ing_cmds *c);
/* Does a runtime API reply to cmd say it worked? */
bool ing_runtime_reply_ok(const char *cmd, const char *reply);

/* haproxy.c: the HAProxy master process (child), its sockets and reloads. */
struct ing_haproxy {
    pid_t pid; /* master, -1 = not running */
    char cfg_path[ING_PATH_MAX + 32];
    char master_sock[ING_PATH_MAX + 32];
    char runtime_sock[ING_PATH_MAX + 32];
    char pid_path[ING_PATH_MAX + 32]; /* the master's PID, for tools that clean up by PID */
};
void ing_haproxy_init(struct ing_haproxy *h, const struct ing_config *cfg);
int ing_haproxy_check(const struct ing_config *cfg, const char *cfg_path, struct nubo_err *err);
int ing_haproxy_start(struct ing_haproxy *h, const struct ing_config *cfg, struct nubo_err *err);
int ing_haproxy_reload(struct ing_haproxy *h, struct nubo_err *err);
void ing_haproxy_stop(struct ing_haproxy *h);
bool ing_haproxy_alive(struct ing_haproxy *h);
/* Can HAProxy bind addr:port (nothing else listens there)? errno-style error in err. */
int ing_port_probe(const char *addr, int port, struct nubo_err *err);
int ing_sock_cmd(const char *path, const char *cmd, int timeout_ms, char **reply,
                 struct nubo_err *err);

/* activator.c: scale-to-zero at the ingress, on its own thread (see the file's head). */
struct ing_act;
int ing_act_start(struct ing_act **out, struct ing_config *cfg, const char *runtime_sock,
                  const char *token, struct nubo_err *err);
/* After each apply (watch thread): the plan HAProxy now runs; token when it changed. */
void ing_act_update(struct ing_act *a, const struct ing_plan *p, const char *token);
void ing_act_stop(struct ing_act *a);
/* The unix socket of backend be's activator server. */
void ing_act_sock_path(const struct ing_config *cfg, const char *be, char *out, size_t outsz);
/* A TCP backend's re-entry socket: a frontend of HAProxy's own that the activator splices a
 * released connection into, so HAProxy picks the woken instance's server. */
void ing_act_in_path(const struct ing_config *cfg, const char *be, char *out, size_t outsz);
/* Adds the `show stat` counters of server be/server in csv: scur to *cur, stot+bin+bout to
 * *sig; 1 when the row was found. */
int ing_stat_instance(const char *csv, const char *be, const char *server, int64_t *cur,
                      uint64_t *sig);
/* The `show stat` row of server be/server in csv (pxname,svname,qcur,qmax,scur,smax,slim,
 * stot,bin,bout,...): its queue, sessions now and so far, bytes; 1 when the row was found. */
struct ing_srv_stat {
    int64_t qcur, scur;
    uint64_t stot, bin, bout;
};
int ing_stat_server(const char *csv, const char *be, const char *server, struct ing_srv_stat *out);
/* conn_cur of key be in `show table` output (the client connections tracked under it), 0 when
 * it is not there. */
int64_t ing_table_conns(const char *table, const char *be);
/* A server slot's stot over successive reads, so that each instance's ntotal counts only the
 * sessions it was handed: holder is who has the slot now ("" = empty: the server is in
 * maintenance and takes nothing). Returns the increment that belongs to holder. */
struct ing_slot_total {
    char holder[NUBO_UUID_STR_LEN + 1];
    uint64_t last_stot;
    bool known;
};
uint64_t ing_slot_total_step(struct ing_slot_total *c, const char *holder, uint64_t stot);
/* tcpwake.c: a server slot's bin (client -> server bytes) over successive reads. */
struct ing_slot_bin {
    char owner[NUBO_UUID_STR_LEN + 1]; /* the instance it was read for, awake or asleep */
    uint64_t last_bin;
    bool known;
};
/* One read of a slot held by instance ("" = none) or kept for sleeper ("" = none): the
 * instance to wake (the sleeper, when bytes moved on a session of its while it sleeps), else
 * NULL. The first read after the slot changed hands only sets the base. */
/* After a wake for bytes the woken instance is held (in flight, not due for standby) until its
 * slot's counters move while it holds the slot again, or a bound passes (tcpwake.c). */
struct ing_wake_hold {
    char instance[NUBO_UUID_STR_LEN + 1]; /* "" = none */
    int64_t asked_us;                     /* the bytes were seen, the wake asked */
    int64_t back_us;                      /* first read with it in the slot again, 0 = none */
    uint64_t sig;                         /* bin + bout then */
};
void ing_wake_hold_start(struct ing_wake_hold *h, const char *instance, int64_t now_us);
bool ing_wake_hold_step(struct ing_wake_hold *h, const char *holder, uint64_t sig, int64_t now_us);
const char *ing_slot_bin_step(struct ing_slot_bin *c, const char *instance, const char *sleeper,
                              uint64_t bin);

/* daemon.c: the watch loop and reconcile. */
struct ing_daemon {
    struct ing_config cfg;
    struct ing_haproxy hap;
    struct ing_plan plan; /* what HAProxy runs now */
    bool have_plan;
    char *shape;          /* shape text of the running config */
    int64_t version;
    char token[512];
    volatile int *stopping;
    struct ing_act *act; /* scale-to-zero; NULL in unit tests */
    /* public ports left out of the running plan because they would not bind, and whether the
     * controller has the current set (it is re-sent after every apply while not empty) */
    struct nubo_ingress_ports_report left_out;
    bool left_out_told;
    /* counters, logged and used by tests via the log */
    uint64_t n_reloads, n_runtime_cmds;
};
/* POST body (consumed) to the controller's path for this metro: 0 on a 200 (*reply, when not
 * NULL, the parsed answer), -1 with err otherwise. Blocking, a few seconds at most. */
int ing_controller_post(struct ing_config *cfg, const char *token, const char *path, json_t *body,
                        json_t **reply, struct nubo_err *err);
int ing_apply(struct ing_daemon *d, const struct nubo_ingress_watch_resp *w, struct nubo_err *err);
int ing_daemon_start(struct ing_daemon *d, struct nubo_err *err);
int ing_daemon_run(struct ing_daemon *d);
void ing_daemon_free(struct ing_daemon *d);

#endif
