/* The controller's durable store: sqlite3 in WAL mode (the default) or PostgreSQL (store_db.h),
 * with versioned migrations. Intent
 * (instances: what users asked for) and observation (observations: what agents reported) are
 * separate tables. Every write is committed before the caller acknowledges it. */
#ifndef NUBO_CTL_STORE_H
#define NUBO_CTL_STORE_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include <sqlite3.h>

#include "store_db.h"

#include "agent.h"
#include "api.h"
#include "cluster.h"
#include "error.h"
#include "service.h"

struct ctl_user_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_API_USER_MAX + 1];
    bool admin;
    int64_t created_at_us;
};

/* An API token: only its sha256 is kept. */
struct ctl_token_row {
    char hash[NUBO_SHA256_HEX_LEN + 1];
    char user_uuid[NUBO_UUID_STR_LEN + 1];
    int64_t created_at_us;
    int64_t expires_at_us;                /* 0 = never */
    char scope[NUBO_TOKEN_SCOPE_MAX + 1]; /* "" = the user's rights; "metrics" = /metrics only */
};

struct ctl_node_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    int64_t memory_mb, vcpus;
    char accel[16];
    char libvirt_version[NUBO_VERSION_STR_MAX];
    char qemu_version[NUBO_VERSION_STR_MAX];
    char agent_version[NUBO_VERSION_STR_MAX];
    int64_t subnet_index;
    char token_hash[NUBO_SHA256_HEX_LEN + 1];
    int64_t created_at_us, registered_at_us;
    bool unavailable;
    bool maintenance; /* drained by an operator: the scheduler skips it */
    char register_key_hash[NUBO_SHA256_HEX_LEN + 1]; /* of its agent's register key, "" = none */
};

struct ctl_instance_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char owner[NUBO_API_USER_MAX + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t created_at_us;
    char image[NUBO_IMAGE_REF_MAX]; /* digest form */
    int64_t memory_mb, vcpus;
    char **args;
    size_t n_args;
    struct nubo_kv *env;
    size_t n_env;
    enum nubo_restart_policy restart_policy;
    uint32_t features;
    int64_t *service_ports;
    size_t n_service_ports;
    char node_uuid[NUBO_UUID_STR_LEN + 1];
    char metro[NUBO_NAME_MAX + 1];
    int64_t ip_host; /* host byte within the node's /24 */
    enum nubo_desired desired;
    int64_t start_seq;
    bool stop_force;
    int64_t drain_timeout_ms;
    char service_group[NUBO_UUID_STR_LEN + 1]; /* "" = none */
    /* scale-to-zero (table scale_to_zero, written with ctl_store_s2z_put) */
    struct nubo_scale_to_zero s2z;
    bool standby; /* stopped by scale-to-zero: traffic starts it again */
};
void ctl_instance_row_free(struct ctl_instance_row *r);

struct ctl_image_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char digest_ref[NUBO_IMAGE_REF_MAX]; /* owner/name@sha256:… */
    char repo[256];
    char owner[NUBO_API_USER_MAX + 1];
    int64_t created_at_us;
    int64_t size_in_bytes;
    bool initrd;
    bool detailed; /* args/env/size known (inspected), not only announced */
    char **args;
    size_t n_args;
    struct nubo_kv *env;
    size_t n_env;
};
void ctl_image_row_free(struct ctl_image_row *r);

/* A service group (platform-api.md 1.6) as stored. */
struct ctl_svc_domain {
    char fqdn[NUBO_FQDN_MAX + 1];
    char cert[NUBO_UUID_STR_LEN + 1]; /* user certificate uuid, "" = the metro's wildcard */
};
struct ctl_svc_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char owner[NUBO_API_USER_MAX + 1];
    char name[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    int64_t created_at_us;
    bool persistent; /* false: created inline, deleted with its last instance */
    int64_t soft_limit, hard_limit;
    struct nubo_ingress_port ports[NUBO_SVC_MAX_PORTS];
    size_t n_ports;
    struct ctl_svc_domain domains[NUBO_SVC_MAX_DOMAINS];
    size_t n_domains;
};

/* A user certificate (platform-api.md 1.9). */
struct ctl_cert_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char owner[NUBO_API_USER_MAX + 1];
    char name[NUBO_NAME_MAX + 1];
    char cn[NUBO_FQDN_MAX + 1];
    char *chain, *pkey; /* PEM, malloc'd */
    int64_t created_at_us;
};
void ctl_cert_row_free(struct ctl_cert_row *r);

enum ctl_stmt_id {
    ST_USER_INS,
    ST_TOKEN_INS,
    ST_USERS,
    ST_TOKENS,
    ST_NODE_PUT,
    ST_NODES,
    ST_INST_PUT,
    ST_INST_DEL,
    ST_OBS_DEL,
    ST_OBS_PUT,
    ST_INSTS,
    ST_IMG_PUT,
    ST_TAG_PUT,
    ST_IMG_DEL,
    ST_TAG_DEL_DIGEST,
    ST_IMG_BY_TAG,
    ST_IMG_BY_DIGEST,
    ST_IMG_BY_UUID,
    ST_IMGS,
    ST_IMG_TAGS,
    ST_SVC_PUT,
    ST_SVC_DEL,
    ST_SVCS,
    ST_CERT_PUT,
    ST_CERT_DEL,
    ST_CERTS,
    ST_LOG_PUT,
    ST_LOG_DEL,
    ST_LOG_TRIM,
    ST_LOGS,
    ST_QUOTA_PUT,
    ST_QUOTA_DEL,
    ST_QUOTAS,
    ST_S2Z_PUT,
    ST_S2ZS,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST__COUNT
};

struct ctl_store {
    struct ctl_db *db;
    struct ctl_stmt *st[ST__COUNT];
    /* WAL checkpoints (and their fsyncs) run on a thread with its own connection, so a
     * commit on the event loop never waits for one */
    sqlite3 *ckpt_db;
    pthread_t ckpt_thread;
    pthread_mutex_t ckpt_mu;
    pthread_cond_t ckpt_cv;
    bool ckpt_running, ckpt_stop;
};

#define CTL_STORE_SCHEMA_VERSION 7

/* target: a sqlite file path or a postgresql:// URL (ctl_db_open). */
int ctl_store_open(struct ctl_store *s, const char *target, bool sync_full, struct nubo_err *err);
/* Start sqlite's checkpoint thread (the controller does; tests may skip it); nothing to do on
 * PostgreSQL. */
int ctl_store_start_checkpointer(struct ctl_store *s, const char *path, struct nubo_err *err);
void ctl_store_close(struct ctl_store *s);
int ctl_store_begin(struct ctl_store *s, struct nubo_err *err);
int ctl_store_commit(struct ctl_store *s, struct nubo_err *err);
void ctl_store_rollback(struct ctl_store *s);

/* One statement prepared for this call with up to two text parameters (NULL: unbound), run to
 * its end: for the tables that change at human speed (users, autoscale), kept out of the
 * statement table. what names it in the error. */
int ctl_store_exec_text(struct ctl_store *s, const char *sql, const char *a, const char *b,
                        const char *what, struct nubo_err *err);
int ctl_store_user_insert(struct ctl_store *s, const struct ctl_user_row *u, struct nubo_err *err);
int ctl_store_token_insert(struct ctl_store *s, const struct ctl_token_row *t,
                           struct nubo_err *err);
int ctl_store_users_load(struct ctl_store *s, int (*cb)(void *arg, const struct ctl_user_row *u),
                         void *arg, struct nubo_err *err);
int ctl_store_tokens_load(struct ctl_store *s,
                          int (*cb)(void *arg, const struct ctl_token_row *t), void *arg,
                          struct nubo_err *err);
/* store_users.c: a revoked token; a deleted user with its tokens and quotas (its objects are
 * the caller's to delete first). */
int ctl_store_token_delete(struct ctl_store *s, const char *hash, struct nubo_err *err);
int ctl_store_user_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);

int ctl_store_node_put(struct ctl_store *s, const struct ctl_node_row *n, struct nubo_err *err);
int ctl_store_nodes_load(struct ctl_store *s, int (*cb)(void *arg, const struct ctl_node_row *n),
                         void *arg, struct nubo_err *err);

int ctl_store_instance_put(struct ctl_store *s, const struct ctl_instance_row *r,
                           struct nubo_err *err);
int ctl_store_instance_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);
int ctl_store_obs_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);
int ctl_store_obs_put(struct ctl_store *s, const struct nubo_status_report *o,
                      struct nubo_err *err);
/* cb takes ownership of row's allocations; obs is NULL when never observed. */
int ctl_store_instances_load(struct ctl_store *s,
                             int (*cb)(void *arg, struct ctl_instance_row *row,
                                       const struct nubo_status_report *obs),
                             void *arg, struct nubo_err *err);

/* An instance's scale-to-zero settings and standby flag (deleted with the instance). */
int ctl_store_s2z_put(struct ctl_store *s, const struct ctl_instance_row *r, struct nubo_err *err);
/* cb gets each stored row's uuid, settings and standby flag. */
int ctl_store_s2z_load(struct ctl_store *s,
                       int (*cb)(void *arg, const char *uuid, const struct nubo_scale_to_zero *z,
                                 bool standby),
                       void *arg, struct nubo_err *err);

/* Upsert by digest_ref: a known image keeps its uuid and created_at. */
int ctl_store_image_put(struct ctl_store *s, const struct ctl_image_row *im, struct nubo_err *err);
int ctl_store_tag_put(struct ctl_store *s, const char *repo, const char *tag,
                      const char *digest_ref, struct nubo_err *err);
int ctl_store_image_delete(struct ctl_store *s, const char *digest_ref, struct nubo_err *err);
/* 1 found, 0 not found, -1 error. */
int ctl_store_image_by_tag(struct ctl_store *s, const char *repo, const char *tag,
                           struct ctl_image_row *out, struct nubo_err *err);
int ctl_store_image_by_digest(struct ctl_store *s, const char *digest_ref,
                              struct ctl_image_row *out, struct nubo_err *err);
int ctl_store_image_by_uuid(struct ctl_store *s, const char *uuid, struct ctl_image_row *out,
                            struct nubo_err *err);
/* Images owned by owner_a or owner_b (either may be NULL). */
int ctl_store_images_list(struct ctl_store *s, const char *owner_a, const char *owner_b,
                          int (*cb)(void *arg, const struct ctl_image_row *im), void *arg,
                          struct nubo_err *err);
/* "repo:tag" strings of the tags pointing at digest_ref. */
int ctl_store_image_tags(struct ctl_store *s, const char *digest_ref, char ***tags, size_t *n,
                         struct nubo_err *err);

int ctl_store_svc_put(struct ctl_store *s, const struct ctl_svc_row *r, struct nubo_err *err);
int ctl_store_svc_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);
int ctl_store_svcs_load(struct ctl_store *s, int (*cb)(void *arg, const struct ctl_svc_row *r),
                        void *arg, struct nubo_err *err);
int ctl_store_cert_put(struct ctl_store *s, const struct ctl_cert_row *r, struct nubo_err *err);
int ctl_store_cert_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);
/* cb takes ownership of the row's chain and pkey. */
int ctl_store_certs_load(struct ctl_store *s, int (*cb)(void *arg, struct ctl_cert_row *r),
                         void *arg, struct nubo_err *err);
/* A user's hard limit for quota (proto/api.h's name), set by an admin; hard < 0 removes it
 * (the operator's default applies again). */
int ctl_store_quota_put(struct ctl_store *s, const char *user_uuid, const char *quota,
                        int64_t hard, struct nubo_err *err);
int ctl_store_quotas_load(struct ctl_store *s,
                          int (*cb)(void *arg, const char *user_uuid, const char *quota,
                                    int64_t hard),
                          void *arg, struct nubo_err *err);
/* Console tails, bounded per instance: chunks appended at their stream offset; trim drops
 * the chunks that end at or before start. */
int ctl_store_log_put(struct ctl_store *s, const char *uuid, int64_t offset, const void *data,
                      size_t len, struct nubo_err *err);
int ctl_store_log_trim(struct ctl_store *s, const char *uuid, int64_t start, struct nubo_err *err);
/* Every chunk, by instance then offset. */
int ctl_store_logs_load(struct ctl_store *s,
                        int (*cb)(void *arg, const char *uuid, int64_t offset, const void *data,
                                  size_t len),
                        void *arg, struct nubo_err *err);

#endif
