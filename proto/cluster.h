/* The operators' objects of the public API: nodes (GET /v1/nodes, the drain/ready replies),
 * metros (GET /v1/metros) and users (/v1/users). The controller encodes them, the CLI decodes
 * them leniently; every bound sits next to the field it limits. */
#ifndef NUBO_PROTO_CLUSTER_H
#define NUBO_PROTO_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api.h"
#include "error.h"
#include "pjson.h"
#include "service.h"

#define NUBO_NODE_MAX_MOVED NUBO_AGENT_MAX_INSTANCES /* moved_instances of one drain */
#define NUBO_METRO_ENDPOINT_MAX 255

/* An instance a drain moved: where it went and its new address. */
struct nubo_moved_instance {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char node[NUBO_NAME_MAX + 1];
    char private_ip[NUBO_IP_STR_MAX];
};

struct nubo_node {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    char state[NUBO_OBJ_STATE_MAX + 1]; /* ready | maintenance | unavailable */
    int64_t memory_mb, vcpus;
    int64_t free_memory_mb; /* may go negative while overcommitted */
    int64_t allocated_memory_mb, allocated_vcpus;
    int64_t instances; /* how many are placed on it */
    char accel[16];    /* kvm | tcg */
    char subnet[NUBO_CIDR_STR_MAX];
    char gateway[NUBO_IP_STR_MAX];
    char agent_version[NUBO_VERSION_STR_MAX];
    char qemu_version[NUBO_VERSION_STR_MAX];
    int64_t created_at_us, registered_at_us; /* 0 = null */
    int64_t last_seen_ms;                    /* since its last report */
    char guest_cpu[NUBO_GUEST_CPU_MAX];      /* the CPU model its guests see, as registered */
    bool has_moved; /* the drain/ready replies add "moved_instances" (maybe empty) */
    struct nubo_moved_instance *moved; /* malloc'd, at most NUBO_NODE_MAX_MOVED */
    size_t n_moved;
    char token[NUBO_AGENT_TOKEN_MAX]; /* only in the replace reply: the new node token */
};
json_t *nubo_node_encode(const struct nubo_node *n);
/* Lenient (client side): unknown fields ignored, missing fields zero. */
int nubo_node_decode(json_t *j, struct nubo_node *out, struct nubo_err *err);
void nubo_node_free(struct nubo_node *n);
int nubo_node_list_decode(json_t *a, size_t max, struct nubo_node **out, size_t *n_out,
                          struct nubo_err *err);
void nubo_node_list_free(struct nubo_node *v, size_t n);

/* A metro: the nodes that share one name, summed up. */
struct nubo_metro {
    char uuid[NUBO_UUID_STR_LEN + 1]; /* stable per name */
    char name[NUBO_NAME_MAX + 1];
    char state[NUBO_OBJ_STATE_MAX + 1]; /* online (a node is ready) | offline */
    int64_t nodes, ready_nodes;
    int64_t memory_mb, free_memory_mb;          /* of its ready nodes */
    char endpoint[NUBO_METRO_ENDPOINT_MAX + 1]; /* the platform's field; "" = not sent */
};
json_t *nubo_metro_encode(const struct nubo_metro *m);
int nubo_metro_decode(json_t *j, struct nubo_metro *out, struct nubo_err *err);
int nubo_metro_list_decode(json_t *a, size_t max, struct nubo_metro **out, size_t *n_out,
                           struct nubo_err *err);
void nubo_metro_list_free(struct nubo_metro *v, size_t n);

#define NUBO_TOKEN_ID_LEN 16
#define NUBO_TOKEN_SCOPE_MAX 15
#define NUBO_TOKEN_TTL_MAX_S (10LL * 366 * 86400) /* ten years */
#define NUBO_TOKENS_MAX 4096                      /* tokens one list decodes */

struct nubo_user {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_API_USER_MAX + 1];
    bool admin;
    int64_t created_at_us;
    /* only in the answers that mint a token ("" / 0 = absent) */
    char token[NUBO_AGENT_TOKEN_MAX];
    char token_id[NUBO_TOKEN_ID_LEN + 1];
    int64_t expires_at_us; /* 0 = never */
};
json_t *nubo_user_encode(const struct nubo_user *u);
int nubo_user_decode(json_t *j, struct nubo_user *out, struct nubo_err *err);

/* A user's API token as GET /v1/users/{name}/tokens lists it (never the secret): id = the first
 * NUBO_TOKEN_ID_LEN hex digits of its sha256, the handle DELETE /v1/users/{name}/tokens/{id}
 * takes. scope "" = whatever its user may do; "metrics" = GET /metrics and nothing else. */
struct nubo_token {
    char id[NUBO_TOKEN_ID_LEN + 1];
    char user[NUBO_API_USER_MAX + 1];
    char scope[NUBO_TOKEN_SCOPE_MAX + 1];
    int64_t created_at_us;
    int64_t expires_at_us; /* 0 = never (left out) */
    bool current;          /* the token this request came with */
};
json_t *nubo_token_encode(const struct nubo_token *t);
int nubo_token_decode(json_t *j, struct nubo_token *out, struct nubo_err *err);
int nubo_token_list_decode(json_t *a, size_t max, struct nubo_token **out, size_t *n_out,
                           struct nubo_err *err);
void nubo_token_list_free(struct nubo_token *v, size_t n);

/* POST /v1/users/{name}/tokens: optional body {"ttl_s"} or {"expires_at"} (RFC 3339), and
 * "scope" ("" or "metrics"). Strict: unknown fields are a 400. */
struct nubo_token_req {
    int64_t ttl_s;         /* 0 = not given */
    int64_t expires_at_us; /* 0 = not given */
    char scope[NUBO_TOKEN_SCOPE_MAX + 1];
};
json_t *nubo_token_req_encode(const struct nubo_token_req *r);
/* j may be NULL (no body). now_us: the ttl's base; the result has expires_at_us set. */
int nubo_token_req_decode(json_t *j, int64_t now_us, struct nubo_token_req *out,
                          struct nubo_err *err);

#endif
