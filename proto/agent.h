/* The controller <-> agent protocol of PROTOCOL.md as C types with jansson codecs. Decoders
 * validate every field and bound every length; neither side hand-builds this JSON. */
#ifndef NUBO_PROTO_AGENT_H
#define NUBO_PROTO_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "pjson.h"
#include "util.h"
#include "metrics.h"
#include "volume.h"

#define NUBO_AGENT_PATH_REGISTER "/agent/v1/register"
#define NUBO_AGENT_PATH_WATCH "/agent/v1/watch"
#define NUBO_AGENT_PATH_STATUS "/agent/v1/status"
#define NUBO_AGENT_PATH_LOG "/agent/v1/log"

/* Hard bounds on what one message may carry. */
#define NUBO_AGENT_MAX_BODY (64u << 20) /* one request or response body */
#define NUBO_AGENT_MAX_INSTANCES 65536  /* instances listed in one message */
#define NUBO_AGENT_MAX_ARGS 253         /* as the public API */
#define NUBO_AGENT_MAX_ENV 256
#define NUBO_AGENT_MAX_STR 4096               /* one arg, env name or value */
#define NUBO_AGENT_MAX_MESSAGE 1024           /* status message text */
#define NUBO_AGENT_MAX_PORTS 64               /* service_ports per assignment */
#define NUBO_AGENT_MAX_LOGS 4096              /* log chunks per batch */
#define NUBO_AGENT_MAX_LOG_CHUNK (256u << 10) /* decoded bytes per log chunk */
#define NUBO_AGENT_WATCH_TIMEOUT_MAX_MS 60000
#define NUBO_AGENT_TOKEN_MAX 128
/* The register key an agent makes once and keeps (agent/README.md): 32..64 characters of
 * [A-Za-z0-9_-], so at least 160 bits when random [a-z0-9] */
#define NUBO_REGISTER_KEY_MIN 32
#define NUBO_REGISTER_KEY_MAX 65 /* with the NUL */
#define NUBO_IMAGE_REF_MAX 512 /* "owner/name@sha256:<64 hex>" and tags */
#define NUBO_VERSION_STR_MAX 64
#define NUBO_IP_STR_MAX 16 /* dotted IPv4 + NUL */
#define NUBO_CIDR_STR_MAX 20

/* Instance states. The agent reports starting..stopped; the API adds the others. */
enum nubo_state {
    NUBO_STATE_STOPPED = 0,
    NUBO_STATE_STARTING,
    NUBO_STATE_RUNNING,
    NUBO_STATE_DRAINING,
    NUBO_STATE_STOPPING,
    NUBO_STATE_STANDBY,
    NUBO_STATE_UNAVAILABLE, /* nubo: its node missed heartbeats past the grace */
    NUBO_STATE__COUNT
};
const char *nubo_state_name(enum nubo_state s);
int nubo_state_parse(const char *s, enum nubo_state *out); /* -1 when unknown */

enum nubo_desired { NUBO_DESIRED_RUNNING = 0, NUBO_DESIRED_STOPPED };
const char *nubo_desired_name(enum nubo_desired d);
int nubo_desired_parse(const char *s, enum nubo_desired *out);

enum nubo_restart_policy { NUBO_RESTART_NEVER = 0, NUBO_RESTART_ALWAYS, NUBO_RESTART_ON_FAILURE };
const char *nubo_restart_policy_name(enum nubo_restart_policy p);
int nubo_restart_policy_parse(const char *s, enum nubo_restart_policy *out);

/* Stop reason bits (platform-api.md 1.4). */
#define NUBO_STOP_KERNEL 0x01u
#define NUBO_STOP_APP 0x02u
#define NUBO_STOP_PLATFORM 0x04u
#define NUBO_STOP_USER 0x08u
#define NUBO_STOP_FORCED 0x10u

/* Where the time of a start went. A start from a warm slot (agent/README.md) has no vmm
 * phase: slot_us is its take (RAM written, resumed), copy_us the part of it spent writing the
 * kernel into the slot's guest RAM. */
struct nubo_phases {
    int64_t image_us, domain_us, vmm_us, guest_us;
    int64_t slot_us, copy_us;
};

/* One instance as a node observes it (status report, also the register inventory). */
struct nubo_status_report {
    char uuid[NUBO_UUID_STR_LEN + 1];
    enum nubo_state state; /* starting|running|draining|stopping|stopped */
    int64_t start_seq;     /* the assignment's start_seq this report is about */
    int64_t boot_time_us;  /* 0 = not measured */
    int64_t net_time_us;
    struct nubo_phases phases;
    int64_t start_count, restart_count;
    int64_t started_at_us, stopped_at_us; /* 0 = null */
    int64_t stop_reason;                  /* NUBO_STOP_* bits, 0..31 */
    bool has_exit_code;
    int64_t exit_code;
    bool has_stop_code;
    int64_t stop_code; /* 0..UINT32_MAX */
    int64_t restart_attempt;
    int64_t restart_next_at_us; /* 0 = null */
    /* the guest's scale-to-zero disable counter (its init's /uk/libukp/scale_to_zero_disable):
     * > 0 holds the instance out of standby */
    int64_t s2z_disable;
    char *message;              /* malloc'd, NULL = none */
};

/* POST /agent/v1/register */
#define NUBO_GUEST_CPU_MAX 48
struct nubo_register_req {
    char name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    int64_t memory_mb;
    int64_t vcpus;
    char accel[16]; /* "kvm" | "tcg" */
    char guest_cpu[NUBO_GUEST_CPU_MAX]; /* "host-passthrough" | "qemu64+rdrand[+rdseed]" */
    char libvirt_version[NUBO_VERSION_STR_MAX];
    char qemu_version[NUBO_VERSION_STR_MAX];
    char agent_version[NUBO_VERSION_STR_MAX];
    struct nubo_status_report *instances;
    size_t n_instances;
    int64_t volume_mb; /* disk the node offers to volumes, 0 = none */
    struct nubo_volume_report *volumes; /* the volumes it holds */
    size_t n_volumes;
    /* The agent's own random key, made and kept before its first register: a join-token
     * register of a name the controller already has is that agent's retry (its reply was lost)
     * only when the key is the one the name was registered with. "" = none (older agents). */
    char register_key[NUBO_REGISTER_KEY_MAX];
};

struct nubo_node_info {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    char subnet[NUBO_CIDR_STR_MAX]; /* "10.64.3.0/24" */
    char gateway[NUBO_IP_STR_MAX];
    char dns[NUBO_IP_STR_MAX];
};

struct nubo_register_resp {
    struct nubo_node_info node;
    char token[NUBO_AGENT_TOKEN_MAX];
    int64_t heartbeat_interval_ms;
    int64_t grace_ms;
};

/* One entry of the desired set (GET /agent/v1/watch). */
struct nubo_assignment {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char image[NUBO_IMAGE_REF_MAX]; /* digest form "owner/name@sha256:…" */
    int64_t memory_mb;
    int64_t vcpus;
    char **args;
    size_t n_args;
    struct nubo_kv *env;
    size_t n_env;
    enum nubo_desired desired_state;
    enum nubo_restart_policy restart_policy;
    char private_ip[NUBO_IP_STR_MAX];
    int64_t prefix;
    char gateway[NUBO_IP_STR_MAX];
    char dns[NUBO_IP_STR_MAX];
    int64_t *service_ports;
    size_t n_service_ports;
    int64_t start_seq;
    bool stop_force;
    /* scale-to-zero stateful standby: the stop saves the guest's memory to the node's disk
     * and the next start restores it instead of booting */
    bool stop_save;
    int64_t stop_drain_timeout_ms;
    struct nubo_volume_mount *volumes; /* uuid, at, readonly; malloc'd */
    size_t n_volumes;
};

struct nubo_watch_resp {
    int64_t version;
    struct nubo_assignment *assignments;
    size_t n_assignments;
    bool has_volumes; /* "volumes" present: the node's full volume set */
    struct nubo_volume_spec *volumes;
    size_t n_volumes;
};

/* POST /agent/v1/status */
struct nubo_status_batch {
    struct nubo_status_report *instances;
    size_t n_instances;
    struct nubo_volume_report *volumes;
    size_t n_volumes;
    struct nubo_instance_stats *stats; /* running domains' rss and cpu time */
    size_t n_stats;
};

struct nubo_status_resp {
    int64_t version;
    /* > 0: heartbeat at this interval from now on (the controller stretches it as the cluster
     * grows, so the heartbeats of all nodes together stay under its configured rate) */
    int64_t heartbeat_interval_ms;
};

/* POST /agent/v1/log */
struct nubo_log_chunk {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t offset;
    unsigned char *data; /* decoded bytes, malloc'd */
    size_t len;
};

struct nubo_log_batch {
    struct nubo_log_chunk *logs;
    size_t n_logs;
};

/* Encoders return a new reference (NULL only on allocation failure). Decoders fill *out
 * (zeroed first) and return 0, or return -1 with a one-line message in err (http_status 400)
 * and leave nothing to free. Unknown fields are ignored so either side may add fields. */
json_t *nubo_status_report_encode(const struct nubo_status_report *r);
int nubo_status_report_decode(json_t *j, const char *ctx, struct nubo_status_report *out,
                              struct nubo_err *err);
void nubo_status_report_free(struct nubo_status_report *r);

json_t *nubo_register_req_encode(const struct nubo_register_req *r);
int nubo_register_req_decode(json_t *j, struct nubo_register_req *out, struct nubo_err *err);
void nubo_register_req_free(struct nubo_register_req *r);
/* A register key's form: NUBO_REGISTER_KEY_MIN..MAX-1 characters of [A-Za-z0-9_-]. */
bool nubo_register_key_valid(const char *k);

json_t *nubo_register_resp_encode(const struct nubo_register_resp *r);
int nubo_register_resp_decode(json_t *j, struct nubo_register_resp *out, struct nubo_err *err);

json_t *nubo_assignment_encode(const struct nubo_assignment *a);
int nubo_assignment_decode(json_t *j, const char *ctx, struct nubo_assignment *out,
                           struct nubo_err *err);
void nubo_assignment_free(struct nubo_assignment *a);
/* A deep copy (dst owns its arrays); -1 on out of memory with dst left empty. */
int nubo_assignment_copy(struct nubo_assignment *dst, const struct nubo_assignment *src);

json_t *nubo_watch_resp_encode(const struct nubo_watch_resp *w);
int nubo_watch_resp_decode(json_t *j, struct nubo_watch_resp *out, struct nubo_err *err);
void nubo_watch_resp_free(struct nubo_watch_resp *w);

json_t *nubo_status_batch_encode(const struct nubo_status_batch *b);
int nubo_status_batch_decode(json_t *j, struct nubo_status_batch *out, struct nubo_err *err);
void nubo_status_batch_free(struct nubo_status_batch *b);

json_t *nubo_status_resp_encode(const struct nubo_status_resp *r);
int nubo_status_resp_decode(json_t *j, struct nubo_status_resp *out, struct nubo_err *err);

json_t *nubo_log_batch_encode(const struct nubo_log_batch *b);
int nubo_log_batch_decode(json_t *j, struct nubo_log_batch *out, struct nubo_err *err);
void nubo_log_batch_free(struct nubo_log_batch *b);

/* Parse a body first with pj_parse(buf, len, NUBO_AGENT_MAX_BODY, &j, err). */

/* Error envelope shared with the public API: {"status":"error","message":msg}. */
json_t *nubo_error_envelope(const char *msg);
/* The message of an error envelope (borrowed from j) or NULL. */
const char *nubo_error_envelope_message(json_t *j);

/* IPv4 helpers used by both sides. */
bool nubo_ipv4_valid(const char *s);
/* "a.b.c.d/n" with 8 <= n <= 30. */
bool nubo_cidr_valid(const char *s);

#endif
