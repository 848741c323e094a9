/* The controller -> ingress protocol of PROTOCOL.md (GET /ingress/v1/watch) as C types with
 * bounded jansson codecs; the controller encodes, nubo-ingress decodes. */
#ifndef NUBO_PROTO_INGRESS_H
#define NUBO_PROTO_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent.h"
#include "error.h"
#include "pjson.h"
#include "util.h"

#define NUBO_INGRESS_PATH_WATCH "/ingress/v1/watch"
#define NUBO_INGRESS_PATH_TRAFFIC "/ingress/v1/traffic"
#define NUBO_INGRESS_PATH_WAKE "/ingress/v1/wake"
#define NUBO_INGRESS_PATH_PORTS "/ingress/v1/ports"
#define NUBO_INGRESS_MAX_SMALL_BODY (8u << 20) /* traffic reports and wake requests */

/* Hard bounds on one watch reply. */
#define NUBO_INGRESS_MAX_BODY (64u << 20)
#define NUBO_INGRESS_MAX_SERVICES 16384
#define NUBO_INGRESS_MAX_PORTS 64     /* ports of one service group */
#define NUBO_INGRESS_MAX_DOMAINS 64   /* domains of one service group */
#define NUBO_INGRESS_MAX_BACKENDS 65536
#define NUBO_INGRESS_MAX_CERTS 4096
#define NUBO_INGRESS_MAX_PEM (256u << 10) /* one chain or key, PEM text */
#define NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS 60000
#define NUBO_FQDN_MAX 253

/* Handler bits of one published port (platform-api.md 1.6). */
#define NUBO_HANDLER_HTTP 0x1u
#define NUBO_HANDLER_TLS 0x2u
#define NUBO_HANDLER_REDIRECT 0x4u
#define NUBO_HANDLER_ALL (NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS | NUBO_HANDLER_REDIRECT)

/* "http" -> NUBO_HANDLER_HTTP ...; 0 when unknown. */
unsigned nubo_handler_parse(const char *s);
/* JSON array of handler names in the order http, tls, redirect. */
json_t *nubo_handlers_encode(unsigned handlers);
/* Decode an array of handler names (no duplicates) into bits; 0 absent, 1 ok, -1 err. */
int nubo_handlers_decode(json_t *o, const char *ctx, const char *key, bool required,
                         unsigned *out, struct nubo_err *err);

struct nubo_ingress_port {
    int64_t port;             /* public port 1..65535 */
    int64_t destination_port; /* port on the instance 1..65535 */
    unsigned handlers;        /* NUBO_HANDLER_* bits */
};

struct nubo_ingress_domain {
    char fqdn[NUBO_FQDN_MAX + 1];
    char certificate[NUBO_UUID_STR_LEN + 1]; /* user certificate uuid, "" = metro wildcard */
};

struct nubo_ingress_backend {
    char instance[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char node[NUBO_NAME_MAX + 1];
    char ip[NUBO_IP_STR_MAX];
    /* running | draining (no new connections) | standby (scale-to-zero: traffic wakes it) */
    enum nubo_state state;
};

struct nubo_ingress_service {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t soft_limit, hard_limit; /* 1..65535 */
    struct nubo_ingress_port *ports;
    size_t n_ports;
    struct nubo_ingress_domain *domains;
    size_t n_domains;
    struct nubo_ingress_backend *backends;
    size_t n_backends;
};

struct nubo_ingress_cert {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char cn[NUBO_FQDN_MAX + 1];
    char *chain; /* PEM, malloc'd */
    char *pkey;  /* PEM, malloc'd */
};

/* GET /ingress/v1/watch reply. */
struct nubo_ingress_watch_resp {
    int64_t version;
    char metro[NUBO_NAME_MAX + 1];
    char domain_suffix[NUBO_FQDN_MAX + 1]; /* "fra.nubo.local" */
    struct nubo_ingress_service *services;
    size_t n_services;
    struct nubo_ingress_cert *certificates;
    size_t n_certificates;
};

/* POST /ingress/v1/traffic: what HAProxy's per-server counters say of each instance that has
 * a server slot; the controller's scale-to-zero decides from it. */
struct nubo_ingress_traffic_item {
    char instance[NUBO_UUID_STR_LEN + 1];
    /* sessions open to it now (HAProxy scur: HTTP requests in flight, TCP connections) plus
     * the client connections open at the ingress to its group's HTTP ports (keep-alive) */
    int64_t current;
    int64_t idle_ms; /* since its counters last moved or current was above 0 (or it joined) */
    /* since its counters last moved or an HTTP request or TCP connection was open to it:
     * client connections merely held open at the ingress do not count (policy idle); -1 = not
     * reported (an older ingress) */
    int64_t silent_ms;
    /* since its counters last moved or a request was in flight (an HTTP server session, or a
     * connection held at the ingress's activator for its group): open TCP sessions do not
     * restart it, so a silent connection does not hold it (a stateful instance with policy
     * idle; HAProxy refreshes a TCP session's counters only every <= 5 s, which the
     * controller allows for); -1 = not reported (an older ingress) */
    int64_t quiet_ms;
    bool draining; /* every server slot it has is in HAProxy's drain state */
    /* The spec's instance metrics, summed over the instance's servers (optional on the wire:
     * an older ingress sends none). nconns: sessions open now on its TCP (non-HTTP) ports;
     * nreqs: HTTP requests in flight (scur of its HTTP servers); nqueued: waiting in HAProxy's
     * queues for it (qcur); ntotal: connections and HTTP requests it was handed since this
     * ingress first saw it (stot, carried over HAProxy reloads and slot reuse). */
    int64_t nconns, nreqs, nqueued, ntotal;
};
struct nubo_ingress_traffic {
    char metro[NUBO_NAME_MAX + 1];
    struct nubo_ingress_traffic_item *instances;
    size_t n_instances;
};
json_t *nubo_ingress_traffic_encode(const struct nubo_ingress_traffic *t);
int nubo_ingress_traffic_decode(json_t *j, struct nubo_ingress_traffic *out, struct nubo_err *err);
void nubo_ingress_traffic_free(struct nubo_ingress_traffic *t);

/* POST /ingress/v1/wake: a connection for the service group waits at the ingress and no
 * instance runs. The controller starts one of its standby instances unless one is already
 * starting or running; starting counts both (0 = nothing will come: answer the client).
 * With instance: bytes moved on an established TCP session of that very instance, which sleeps
 * (its server slot's `bin`): it is started if it is in standby, whatever else of the group
 * runs, since only it holds the other end of that connection; starting then counts it alone. */
struct nubo_ingress_wake_req {
    char service[NUBO_UUID_STR_LEN + 1];
    char instance[NUBO_UUID_STR_LEN + 1]; /* "" = any of the group (optional on the wire) */
};
struct nubo_ingress_wake_resp {
    int64_t woken;    /* instances this call started */
    int64_t starting; /* instances starting or running now, woken included */
};
json_t *nubo_ingress_wake_req_encode(const struct nubo_ingress_wake_req *r);
int nubo_ingress_wake_req_decode(json_t *j, struct nubo_ingress_wake_req *out,
                                 struct nubo_err *err);
json_t *nubo_ingress_wake_resp_encode(const struct nubo_ingress_wake_resp *r);
int nubo_ingress_wake_resp_decode(json_t *j, struct nubo_ingress_wake_resp *out,
                                  struct nubo_err *err);

/* POST /ingress/v1/ports: the public ports nubo-ingress left out of HAProxy because they
 * could not bind on its host, the whole set each time (empty = all bound). The controller shows
 * each on the service groups of the metro that publish it. */
#define NUBO_INGRESS_MAX_LEFT_OUT 128
#define NUBO_INGRESS_PORT_ERROR_MAX 200
struct nubo_ingress_port_left_out {
    int64_t port; /* public port 1..65535 */
    char error[NUBO_INGRESS_PORT_ERROR_MAX + 1]; /* one line: why it did not bind */
};
struct nubo_ingress_ports_report {
    char metro[NUBO_NAME_MAX + 1];
    struct nubo_ingress_port_left_out left_out[NUBO_INGRESS_MAX_LEFT_OUT];
    size_t n_left_out;
};
json_t *nubo_ingress_ports_report_encode(const struct nubo_ingress_ports_report *r);
int nubo_ingress_ports_report_decode(json_t *j, struct nubo_ingress_ports_report *out,
                                     struct nubo_err *err);

/* Encoders return a new reference (NULL only on allocation failure). Decoders zero *out, fill
 * it and return 0, or return -1 with a one-line message in err (400) and leave nothing to free.
 * Unknown fields are ignored so either side may add fields. */
json_t *nubo_ingress_service_encode(const struct nubo_ingress_service *s);
int nubo_ingress_service_decode(json_t *j, const char *ctx, struct nubo_ingress_service *out,
                                struct nubo_err *err);
void nubo_ingress_service_free(struct nubo_ingress_service *s);

json_t *nubo_ingress_cert_encode(const struct nubo_ingress_cert *c);
int nubo_ingress_cert_decode(json_t *j, const char *ctx, struct nubo_ingress_cert *out,
                             struct nubo_err *err);
void nubo_ingress_cert_free(struct nubo_ingress_cert *c);

json_t *nubo_ingress_watch_resp_encode(const struct nubo_ingress_watch_resp *w);
/* Parse the body first with pj_parse(buf, len, NUBO_INGRESS_MAX_BODY, &j, err). */
int nubo_ingress_watch_resp_decode(json_t *j, struct nubo_ingress_watch_resp *out,
                                   struct nubo_err *err);
void nubo_ingress_watch_resp_free(struct nubo_ingress_watch_resp *w);

#endif
