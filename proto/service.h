/* Service groups of the public API (platform-api.md 1.6) and certificates (1.9): request types,
 * strict decoders and the handler rules, shared by the controller (decode, validate) and the
 * CLI (encode). */
#ifndef NUBO_PROTO_SERVICE_H
#define NUBO_PROTO_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "ingress.h"
#include "pjson.h"
#include "util.h"

#define NUBO_SVC_MAX_PORTS 32
#define NUBO_SVC_MAX_DOMAINS 16
#define NUBO_SVC_LIMIT_MAX 65535
#define NUBO_CERT_MAX_PEM (64u << 10) /* chain or key PEM text */
#define NUBO_SVC_MAX_INSTANCES 65536     /* instance references one group lists */
#define NUBO_CERT_MAX_GROUPS 4096        /* group references one certificate lists */
#define NUBO_CERT_DN_MAX 255             /* subject, issuer */
#define NUBO_CERT_SERIAL_MAX 79
#define NUBO_OBJ_STATE_MAX 23            /* "valid", "ready", "maintenance" ... */

/* A domain as asked: "name" (a label: <name>.<metro>.<domain>, or an FQDN when it has a dot)
 * or "fqdn"; an optional certificate by uuid or name. */
struct nubo_svc_domain_req {
    char name[NUBO_FQDN_MAX + 1];
    bool is_fqdn; /* given as fqdn, or a name with a dot */
    char cert_uuid[NUBO_UUID_STR_LEN + 1];
    char cert_name[NUBO_NAME_MAX + 1];
};

/* POST /v1/services, or the inline service_group of an instance create. */
struct nubo_svc_create_req {
    char name[NUBO_NAME_MAX + 1];  /* "" = generate <word>-<word>-<8 random> */
    char metro[NUBO_NAME_MAX + 1]; /* nubo: "" = the metro the instances land in / the first */
    struct nubo_ingress_port ports[NUBO_SVC_MAX_PORTS];
    size_t n_ports;
    struct nubo_svc_domain_req domains[NUBO_SVC_MAX_DOMAINS];
    size_t n_domains;
    bool has_domains; /* domains given (even empty = no domain) */
    int64_t soft_limit, hard_limit; /* default 1 / 65535 */
};

/* The platform's handler rules for one published port: 80 = http and not tls (redirect allowed,
 * meaning -> 443); 443 = http+tls; any other port tls and not http; redirect only on 80.
 * 0 or -1 with a one-line 400 naming ctx. */
int nubo_svc_port_check(const struct nubo_ingress_port *p, const char *ctx, struct nubo_err *err);
/* handlers when none were given: 80 -> http, 443 -> http+tls, else tls. */
unsigned nubo_svc_default_handlers(int64_t port);

/* An array of {port, destination_port?, handlers?}: rules checked, no port twice. */
int nubo_svc_ports_decode(json_t *a, const char *ctx, struct nubo_ingress_port *out,
                          size_t max, size_t *n_out, struct nubo_err *err);
json_t *nubo_svc_ports_encode(const struct nubo_ingress_port *p, size_t n);
/* An array of {name|fqdn, certificate?{uuid|name}} (or bare strings). */
int nubo_svc_domains_decode(json_t *a, const char *ctx, struct nubo_svc_domain_req *out,
                            size_t max, size_t *n_out, struct nubo_err *err);

/* Strict: unknown fields fail. inline_group: the instance-create form (no name/metro). */
/* Words the service paths use after /v1/services/ (autoscale): no group may be named so, or
 * DELETE /v1/services/autoscale would delete it. */
bool nubo_svc_name_reserved(const char *name);
int nubo_svc_create_req_decode(json_t *j, bool inline_group, struct nubo_svc_create_req *out,
                               struct nubo_err *err);
void nubo_svc_create_req_init(struct nubo_svc_create_req *r);
json_t *nubo_svc_create_req_encode(const struct nubo_svc_create_req *r, bool inline_group);

/* A host name of 1..253 bytes, labels of [a-z0-9-] (1..63, not starting/ending with '-'),
 * at least two labels; the first label may be "*" when wildcard is true. */
bool nubo_fqdn_valid(const char *s, bool wildcard);
/* Does certificate name cn (possibly "*.example.com") cover fqdn? */
bool nubo_cn_matches(const char *cn, const char *fqdn);

/* PATCH /v1/services[/{uuid}]: one operation on one group. */
enum nubo_svc_prop { NUBO_SVC_PROP_SERVICES, NUBO_SVC_PROP_DOMAINS, NUBO_SVC_PROP_SOFT_LIMIT,
                     NUBO_SVC_PROP_HARD_LIMIT };
enum nubo_svc_op { NUBO_SVC_OP_SET, NUBO_SVC_OP_ADD, NUBO_SVC_OP_DEL };
struct nubo_svc_patch {
    char uuid[NUBO_UUID_STR_LEN + 1]; /* one of uuid / name (unless given in the path) */
    char name[NUBO_NAME_MAX + 1];
    enum nubo_svc_prop prop;
    enum nubo_svc_op op;
    /* services: set/add carry full ports; del only .port */
    struct nubo_ingress_port ports[NUBO_SVC_MAX_PORTS];
    size_t n_ports;
    /* domains: set/add carry requests; del only .name */
    struct nubo_svc_domain_req domains[NUBO_SVC_MAX_DOMAINS];
    size_t n_domains;
    int64_t limit; /* soft_limit / hard_limit (set only) */
};
/* {uuid|name, prop, op, value}; ref_required false for the path form. */
int nubo_svc_patch_decode(json_t *j, const char *ctx, bool ref_required,
                          struct nubo_svc_patch *out, struct nubo_err *err);

/* POST /v1/certificates */
struct nubo_cert_req {
    char name[NUBO_NAME_MAX + 1]; /* "" = generate */
    char cn[NUBO_FQDN_MAX + 1];
    char *chain; /* PEM, malloc'd */
    char *pkey;  /* PEM, malloc'd */
};
int nubo_cert_req_decode(json_t *j, struct nubo_cert_req *out, struct nubo_err *err);
void nubo_cert_req_free(struct nubo_cert_req *r);

/* The client's side: {name?, cn, chain, pkey}. */
json_t *nubo_cert_req_encode(const struct nubo_cert_req *r);

/* ---- the objects as the API shows them (controller encodes, CLI decodes) ------------- */

/* {uuid, name}: how one object names another (a group's instances, a certificate's groups). */
struct nubo_api_ref {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
};
json_t *nubo_api_ref_encode(const struct nubo_api_ref *r);
json_t *nubo_api_refs_encode(const struct nubo_api_ref *r, size_t n);
/* Lenient: an array of at most max {uuid, name} objects; *out malloc'd (NULL when empty). */
int nubo_api_refs_decode(json_t *o, const char *ctx, const char *key, size_t max,
                         struct nubo_api_ref **out, size_t *n_out, struct nubo_err *err);

/* One domain of a group: its FQDN and the certificate that serves it. */
struct nubo_svc_domain {
    char fqdn[NUBO_FQDN_MAX + 1];
    bool has_cert; /* false: "certificate": null = the metro's wildcard, held by the ingress */
    struct nubo_api_ref cert;
    char cert_state[NUBO_OBJ_STATE_MAX + 1]; /* "valid" */
};

/* A service group (GET /v1/services), and the short form an instance carries as its
 * "service_group" (uuid, name, domains, services). */
struct nubo_svc_group {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t created_at_us;
    bool persistent;
    bool autoscale;
    int64_t soft_limit, hard_limit; /* 1..NUBO_SVC_LIMIT_MAX */
    char metro[NUBO_NAME_MAX + 1];
    struct nubo_ingress_port ports[NUBO_SVC_MAX_PORTS]; /* "services" */
    /* nubo: why the metro's ingress could not publish ports[i] ("" = it did), shown as the
     * port's "error" */
    char port_errors[NUBO_SVC_MAX_PORTS][NUBO_INGRESS_PORT_ERROR_MAX + 1];
    size_t n_ports;
    bool has_services; /* the reply listed "services" (a client tells https from http by it) */
    struct nubo_svc_domain domains[NUBO_SVC_MAX_DOMAINS];
    size_t n_domains;
    struct nubo_api_ref *instances; /* malloc'd, at most NUBO_SVC_MAX_INSTANCES */
    size_t n_instances;
};
json_t *nubo_svc_group_encode(const struct nubo_svc_group *g);
/* The instance's "service_group": {uuid, name, domains, services}. */
json_t *nubo_svc_group_ref_encode(const struct nubo_svc_group *g);
json_t *nubo_svc_domains_encode(const struct nubo_svc_domain *d, size_t n);
/* Lenient (client side): unknown fields ignored, missing fields zero; reads both forms. */
int nubo_svc_group_decode(json_t *j, struct nubo_svc_group *out, struct nubo_err *err);
void nubo_svc_group_free(struct nubo_svc_group *g);

/* A certificate (GET /v1/certificates); the key never leaves the controller. */
struct nubo_certificate {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t created_at_us;
    char common_name[NUBO_FQDN_MAX + 1];
    char state[NUBO_OBJ_STATE_MAX + 1]; /* "valid" */
    char subject[NUBO_CERT_DN_MAX + 1];
    char issuer[NUBO_CERT_DN_MAX + 1];
    char serial_number[NUBO_CERT_SERIAL_MAX + 1];
    int64_t not_before_us, not_after_us; /* 0 = null */
    struct nubo_api_ref *service_groups; /* malloc'd, at most NUBO_CERT_MAX_GROUPS */
    size_t n_service_groups;
};
json_t *nubo_certificate_encode(const struct nubo_certificate *c);
int nubo_certificate_decode(json_t *j, struct nubo_certificate *out, struct nubo_err *err);
void nubo_certificate_free(struct nubo_certificate *c);

#endif
