/* The public API (Unikraft Cloud platform API v1 as nubo serves it): request and object
 * types, strict validating decoders, encoders, and the response envelope. The controller
 * decodes requests and encodes objects with these; the CLI does the opposite. */
#ifndef NUBO_PROTO_API_H
#define NUBO_PROTO_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "agent.h"
#include "error.h"
#include "pjson.h"
#include "service.h"
#include "volume.h"

#define NUBO_API_MAX_BODY (1u << 20) /* request body bound (413 above) */
#define NUBO_API_MAX_ITEMS 1024      /* items in one batch request */
#define NUBO_API_MAX_REPLICAS 253
#define NUBO_API_MIN_MEMORY_MB 16
#define NUBO_API_MAX_MEMORY_MB (1 << 20) /* the node's size bounds it further */
#define NUBO_API_DEFAULT_MEMORY_MB 128
#define NUBO_API_MAX_VCPUS 64
#define NUBO_API_MAX_DRAIN_MS 3600000
#define NUBO_API_LOG_DEFAULT_LIMIT 4096
#define NUBO_API_LOG_MAX_LIMIT 16383
#define NUBO_API_USER_MAX 63

/* Instance features (bit mask). */
#define NUBO_FEATURE_DELETE_ON_STOP 0x1u
#define NUBO_FEATURE_SCALE_TO_ZERO 0x2u

/* scale_to_zero on create and on the instance (the OpenAPI description's "Scale-To-Zero"). */
#define NUBO_S2Z_MAX_COOLDOWN_MS 86400000
#define NUBO_S2Z_DEFAULT_COOLDOWN_MS 1000
enum nubo_s2z_policy { NUBO_S2Z_OFF = 0, NUBO_S2Z_ON, NUBO_S2Z_IDLE };
struct nubo_scale_to_zero {
    enum nubo_s2z_policy policy;
    bool stateful;
    int64_t cooldown_time_ms; /* 0..NUBO_S2Z_MAX_COOLDOWN_MS, default 1000 */
};
const char *nubo_s2z_policy_name(enum nubo_s2z_policy p);
int nubo_s2z_policy_parse(const char *s, enum nubo_s2z_policy *out); /* -1 when unknown */
/* {policy, stateful, cooldown_time_ms} (strict; ctx names it in errors); 0 absent, 1 ok, -1 err.
 * Absent leaves *out untouched. */
int nubo_s2z_decode(json_t *j, const char *key, struct nubo_scale_to_zero *out,
                    struct nubo_err *err);
json_t *nubo_s2z_encode(const struct nubo_scale_to_zero *s);

/* POST /v1/instances */
struct nubo_create_req {
    char name[NUBO_NAME_MAX + 1]; /* "" = generate <image-basename>-<5 random> */
    char image[NUBO_IMAGE_REF_MAX];
    char **args;
    size_t n_args;
    bool has_args; /* args given (even empty) override the image's */
    struct nubo_kv *env;
    size_t n_env;
    int64_t memory_mb; /* default 128; encode: 0 = the platform's default */
    int64_t vcpus;     /* default 1; encode: 0 = the platform's default */
    bool autostart;    /* default false (the spec's); the encoder always sends it */
    int64_t replicas;  /* 0..253: replicas+1 instances */
    enum nubo_restart_policy restart_policy;
    uint32_t features;
    char metro[NUBO_NAME_MAX + 1];               /* "" = any */
    int64_t wait_timeout_ms;                     /* 0 = no wait, -1 = wait as long as allowed */
    int64_t service_ports[NUBO_AGENT_MAX_PORTS]; /* nubo: ports timed by net_time_us */
    size_t n_service_ports;
    /* policy off = none; the legacy features ["scale-to-zero"] = policy on, defaults */
    struct nubo_scale_to_zero scale_to_zero;
    /* The inline (ephemeral) group a client publishes ports with; malloc'd, NULL = none.
     * Encode only: the controller takes "service_group" out before decoding the rest. */
    struct nubo_svc_create_req *service_group;
    struct nubo_volume_mount *volumes; /* malloc'd; [] and absent both give none */
    size_t n_volumes;
};
/* Words the instance paths use after /v1/instances/ (start, stop, wait, log, metrics): no
 * instance may be named so, or /v1/instances/metrics would name it. */
bool nubo_instance_name_reserved(const char *name);
/* Strict: unknown fields, wrong types and out-of-range values fail with a one-line 400. */
int nubo_create_req_decode(json_t *j, struct nubo_create_req *out, struct nubo_err *err);
/* Client side; memory_mb/vcpus 0 (and restart_policy never) are left out for the platform's
 * defaults. */
json_t *nubo_create_req_encode(const struct nubo_create_req *r);
void nubo_create_req_free(struct nubo_create_req *r);
void nubo_create_req_init(struct nubo_create_req *r); /* the defaults */

/* An instance as the API shows it. */
struct nubo_instance {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t created_at_us;
    enum nubo_state state;
    char image[NUBO_IMAGE_REF_MAX];
    int64_t memory_mb, vcpus;
    char **args;
    size_t n_args;
    struct nubo_kv *env;
    size_t n_env;
    char private_ip[NUBO_IP_STR_MAX];
    int64_t boot_time_us, net_time_us;
    int64_t start_count, restart_count;
    int64_t started_at_us, stopped_at_us; /* 0 = null */
    int64_t uptime_ms;
    int64_t stop_reason;
    bool has_exit_code;
    int64_t exit_code;
    bool has_stop_code;
    int64_t stop_code;
    enum nubo_restart_policy restart_policy;
    int64_t restart_attempt, restart_next_at_us;
    uint32_t features;
    struct nubo_scale_to_zero scale_to_zero; /* shown when the policy is not off */
    char node[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    char *message;                         /* why it is not running, if known */
    char private_fqdn[NUBO_NAME_MAX + 72]; /* "" = "<name>.internal" */
    /* Where the last start's time went (image pull, domain define, VMM start, guest boot),
     * as the agent measured it; details only, "boot_phases": {image_us, domain_us, ...}. */
    struct nubo_phases boot_phases;
    /* The group publishing it, in the short form; malloc'd by the decoder, NULL = none. */
    struct nubo_svc_group *service_group;
};
/* Adds "status":"success", private_fqdn "<name>.internal" and the derived fields. */
json_t *nubo_instance_encode(const struct nubo_instance *in, bool details);
/* Lenient (client side): unknown fields ignored, missing fields zero. */
int nubo_instance_decode(json_t *j, struct nubo_instance *out, struct nubo_err *err);
void nubo_instance_free(struct nubo_instance *in);

/* {uuid}|{name} items of the batch forms, with each endpoint's extra fields. */
enum nubo_item_kind {
    NUBO_ITEM_REF = 0, /* get, delete: uuid|name only */
    NUBO_ITEM_START,   /* + wait_timeout_ms */
    NUBO_ITEM_STOP,    /* + force, drain_timeout_ms */
    NUBO_ITEM_WAIT,    /* + state, timeout_ms */
    NUBO_ITEM_LOG,     /* + offset, limit */
};
struct nubo_item {
    char uuid[NUBO_UUID_STR_LEN + 1]; /* one of uuid / name is set */
    char name[NUBO_NAME_MAX + 1];
    int64_t wait_timeout_ms;  /* start */
    bool force;               /* stop */
    int64_t drain_timeout_ms; /* stop */
    enum nubo_state state;    /* wait, default running */
    int64_t timeout_ms;       /* wait, default -1 = forever */
    int64_t offset, limit;    /* log, defaults -4096 / 4096 */
};
void nubo_item_init(struct nubo_item *it);
/* An item naming its object by who: the uuid when who is one, else the name. */
void nubo_item_ref(struct nubo_item *it, const char *who);
/* One item object (strict). ctx names it in errors ("[2]"). */
int nubo_item_decode(json_t *j, enum nubo_item_kind kind, const char *ctx, struct nubo_item *out,
                     struct nubo_err *err);
json_t *nubo_item_encode(const struct nubo_item *it, enum nubo_item_kind kind);

/* The platform's error codes, an item's "error" (the SDKs' APIHTTPError enum, in its order:
 * the Go SDK tests ErrorContainsOnly(err, APIHTTPErrorNotFound) = 8). HTTP statuses stay on
 * request-level errors only. */
enum nubo_api_error {
    NUBO_APIERR_UNKNOWN_ERROR = 0,
    NUBO_APIERR_NOT_SUPPORTED = 1,
    NUBO_APIERR_WRONG_METHOD = 2,
    NUBO_APIERR_NO_API_ENDPOINT = 3,
    NUBO_APIERR_FAIL_NOT_ALL = 4,
    NUBO_APIERR_TOO_MANY = 5,
    NUBO_APIERR_UNKNOWN = 6,
    NUBO_APIERR_INVALID = 7,
    NUBO_APIERR_NOT_FOUND = 8,
    NUBO_APIERR_NO_FREE = 9,
    NUBO_APIERR_FAILED_OPERATION = 10,
    NUBO_APIERR_WRONG_STATE = 11,
    NUBO_APIERR_TIMED_OUT = 12,
    NUBO_APIERR_MISSING_ID = 13,
    NUBO_APIERR_NOT_ALLOWED = 14,
    NUBO_APIERR_ATTACHED = 15,
    NUBO_APIERR_MALFORMED_REQUEST = 16,
    NUBO_APIERR_NOT_BOTH = 17,
    NUBO_APIERR_ADD_SERVICE = 18,
    NUBO_APIERR_QUOTA = 19,
    NUBO_APIERR_GUEST_MEMORY_TOO_SMALL = 20,
    NUBO_APIERR_NOT_ATTACHED = 21,
    NUBO_APIERR_TOO_LONG = 22,
    NUBO_APIERR_ALREADY_EXISTS = 23,
    NUBO_APIERR_CANNOT_BE_USED = 24,
    NUBO_APIERR_AUTOSCALE_INSTANCE = 25,       /* an instance autoscale made or copies */
    NUBO_APIERR_AUTOSCALE_CONFIGURED = 26,     /* the group has a configuration already */
    NUBO_APIERR_AUTOSCALE_NOT_CONFIGURED = 27, /* the group has none */
    NUBO_APIERR_AUTOSCALE_DISABLED = 28,
    NUBO_APIERR_AUTOSCALE_SIZE_OOR = 29, /* min_size/max_size out of range (quota) */
};
/* The code an item failure with this HTTP status has (409 = already exists; callers that
 * mean another conflict name its code themselves), and back: the HTTP status that tells the
 * same (for the envelope's errors[]). */
int nubo_api_error_of_http(int http_status);
int nubo_api_error_http(int code);

/* What a batch answer says of one item besides the object itself: success, or an error with
 * its message and platform error code (and, for a wait that went wrong, the state it is in). */
struct nubo_item_status {
    bool ok; /* "status" is not "error" (listings carry no status at all) */
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char message[NUBO_ERR_MSG_MAX]; /* errors only */
    int64_t error;                  /* enum nubo_api_error of an error, 0 on success */
    bool has_state;
    enum nubo_state state;
    bool has_stop_reason; /* a wait for running that ended in a stop says why */
    int64_t stop_reason;
    bool has_previous_state; /* start, stop, delete: the state before the request */
    enum nubo_state previous_state;
};
/* {"status":"success", uuid, name[, state][, previous_state]} (the start, stop and delete
 * answers) or the error item with its extras. */
json_t *nubo_item_status_encode(const struct nubo_item_status *s);
int nubo_item_status_decode(json_t *j, struct nubo_item_status *out, struct nubo_err *err);

/* One item of GET /v1/instances/log: a window of the console log. */
struct nubo_log_window {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    unsigned char *data; /* the decoded "output", malloc'd; at most NUBO_API_LOG_MAX_LIMIT */
    size_t len;
    int64_t available_start, available_end; /* what the controller holds */
    bool has_range;
    int64_t range_start, range_end; /* what this answer carries */
    enum nubo_state state;
};
json_t *nubo_log_window_encode(const struct nubo_log_window *c);
int nubo_log_window_decode(json_t *j, struct nubo_log_window *out, struct nubo_err *err);
void nubo_log_window_free(struct nubo_log_window *c);

/* An image as GET /v1/images shows it (seed document fields). */
struct nubo_image {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t created_at_us;
    char owner[NUBO_API_USER_MAX + 1];
    char url[NUBO_IMAGE_REF_MAX]; /* owner/name@sha256:… */
    char **tags;                  /* "owner/name:tag" */
    size_t n_tags;
    bool initrd_or_rom;
    int64_t size_in_bytes;
    char **args;
    size_t n_args;
    struct nubo_kv *env;
    size_t n_env;
};
json_t *nubo_image_encode(const struct nubo_image *im);
/* The legacy GET /images/list item (the spec's and the legacy Go SDK's shape): args as one
 * space-separated string, kernel_args (nubo sets none: "") and labels ({}). */
json_t *nubo_image_encode_legacy(const struct nubo_image *im);
/* Lenient; "digest" (the legacy /images/list field) stands in for a missing "url", and a
 * legacy string "args" is split at spaces. */
int nubo_image_decode(json_t *j, struct nubo_image *out, struct nubo_err *err);
void nubo_image_free(struct nubo_image *im);

/* GET /v1/images look-up body: exactly one of uuid, digest ("owner/name@sha256:…") or tag
 * ("owner/name:tag"). */
struct nubo_image_query {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char digest[NUBO_IMAGE_REF_MAX];
    char tag[NUBO_IMAGE_REF_MAX];
};
json_t *nubo_image_query_encode(const struct nubo_image_query *q);

/* The response envelope:
 * {"status": "success"|"partial_success"|"error", "message"?, "data": {<collection>: items},
 *  "op_time_us"}. items is stolen (may be NULL for no data). */
json_t *nubo_envelope_new(const char *status, const char *message, const char *collection,
                          json_t *items, int64_t op_time_us);
/* A per-item error: {"status":"error","message":msg,"error":code} plus uuid/name when known;
 * the first takes the HTTP status the failure would have alone and says its platform code. */
json_t *nubo_item_error(const char *uuid, const char *name, int http_status, const char *msg);
json_t *nubo_item_error_code(const char *uuid, const char *name, enum nubo_api_error code,
                             const char *msg);
/* Client side: check an envelope and borrow data.<collection> (an array). A top-level error
 * comes back as -1 with its message. */
int nubo_envelope_items(json_t *j, const char *collection, json_t **items, struct nubo_err *err);
/* Client side: does the envelope report a failure ("error" or "failure")? */
bool nubo_envelope_failed(json_t *j);
/* The message that best explains an envelope: the first item's (it names the object), else
 * the top-level one; "" when there is none. */
void nubo_envelope_message(json_t *j, char *buf, size_t size);

/* Lists of objects (the client's view of data.<collection>): every element decoded with the
 * type's lenient decoder into a malloc'd array of at most max, freed with *_list_free. */
int nubo_instance_list_decode(json_t *a, size_t max, struct nubo_instance **out, size_t *n_out,
                              struct nubo_err *err);
void nubo_instance_list_free(struct nubo_instance *v, size_t n);
int nubo_image_list_decode(json_t *a, size_t max, struct nubo_image **out, size_t *n_out,
                           struct nubo_err *err);
void nubo_image_list_free(struct nubo_image *v, size_t n);
int nubo_svc_group_list_decode(json_t *a, size_t max, struct nubo_svc_group **out,
                               size_t *n_out, struct nubo_err *err);
void nubo_svc_group_list_free(struct nubo_svc_group *v, size_t n);
int nubo_certificate_list_decode(json_t *a, size_t max, struct nubo_certificate **out,
                                 size_t *n_out, struct nubo_err *err);
void nubo_certificate_list_free(struct nubo_certificate *v, size_t n);

/* Quotas (GET /v1/users/quotas, /v1/users/{uuid}/quotas: the platform's user_quota):
 * {uuid, name, used{…}, hard{…}, limits{min_memory_mb, max_memory_mb}}. "live" = an instance
 * whose desired state is running. nubo extensions: memory_mb (memory of all instances,
 * stopped ones included: a placed instance holds its node's memory), live_vcpus,
 * certificates. */
enum nubo_quota {
    NUBO_QUOTA_INSTANCES,
    NUBO_QUOTA_LIVE_INSTANCES,
    NUBO_QUOTA_LIVE_MEMORY_MB,
    NUBO_QUOTA_SERVICE_GROUPS,
    NUBO_QUOTA_SERVICES, /* published ports over all groups */
    NUBO_QUOTA_VOLUMES,
    NUBO_QUOTA_TOTAL_VOLUME_MB,
    NUBO_QUOTA_MEMORY_MB,
    NUBO_QUOTA_LIVE_VCPUS,
    NUBO_QUOTA_CERTIFICATES,
    NUBO_QUOTA_N
};
#define NUBO_QUOTA_UNLIMITED 2147483647 /* the API's int32 maximum: no limit */
/* "instances", "live_memory_mb", ...; NULL past the end. */
const char *nubo_quota_name(enum nubo_quota q);
struct nubo_user_quota {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_API_USER_MAX + 1];
    int64_t used[NUBO_QUOTA_N];
    int64_t hard[NUBO_QUOTA_N]; /* 0..NUBO_QUOTA_UNLIMITED */
    int64_t min_memory_mb, max_memory_mb;
};
json_t *nubo_user_quota_encode(const struct nubo_user_quota *q);
/* Lenient (client side): missing counts are 0. */
int nubo_user_quota_decode(json_t *j, struct nubo_user_quota *out, struct nubo_err *err);
/* PATCH /v1/users/{uuid|name}/quotas (nubo, admin): {"hard": {"<quota>": n | null, …}};
 * null returns a quota to the operator's default. Strict. */
struct nubo_quota_set {
    bool given[NUBO_QUOTA_N];
    int64_t hard[NUBO_QUOTA_N]; /* -1 = back to the default */
};
int nubo_quota_set_decode(json_t *j, struct nubo_quota_set *out, struct nubo_err *err);
json_t *nubo_quota_set_encode(const struct nubo_quota_set *s);

/* An image reference: "owner/name[:tag]" or "owner/name@sha256:<hex>" (no registry host; a
 * leading "host[:port]/" with a dot or colon in it is stripped). The repository is 2..n
 * components of [a-z0-9._-]; the owner is the first component. */
struct nubo_api_image_ref {
    char repo[256];
    char owner[NUBO_API_USER_MAX + 1];
    char tag[129];   /* "" when a digest was given; "latest" when neither */
    char digest[80]; /* "sha256:<hex>" or "" */
};
int nubo_api_image_ref_parse(const char *s, struct nubo_api_image_ref *out, struct nubo_err *err);

#endif
