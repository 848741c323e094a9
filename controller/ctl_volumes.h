/* Volumes in the controller: the stored rows (store_volumes.c), the working set and its rules
 * (model_volumes.c: placement on a node's disk budget, one writer, pinning an instance to its
 * volume's node) and the /v1/volumes handlers (volumes.c). Kept apart from ctl.h so the rest
 * of the controller only sees the few hooks it calls. */
#ifndef NUBO_CTL_VOLUMES_H
#define NUBO_CTL_VOLUMES_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"
#include "volume.h"

/* ---- store_volumes.c ---- */
struct ctl_volume_row {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char owner[NUBO_API_USER_MAX + 1];
    char name[NUBO_NAME_MAX + 1];
    char node_uuid[NUBO_UUID_STR_LEN + 1];
    char metro[NUBO_NAME_MAX + 1];
    int64_t size_mb;
    bool persistent; /* false: made inline with an instance, deleted with it */
    int64_t created_at_us;
    enum nubo_volume_state obs; /* what its node last said: uninitialized|initialized|available|error */
    char message[NUBO_VOLUME_MSG_MAX];
};
struct ctl_volume_mount_row {
    char volume_uuid[NUBO_UUID_STR_LEN + 1];
    char instance_uuid[NUBO_UUID_STR_LEN + 1];
    char at[NUBO_VOLUME_AT_MAX + 1];
    bool readonly;
};
int ctl_store_volume_put(struct ctl_store *s, const struct ctl_volume_row *r, struct nubo_err *err);
int ctl_store_volume_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err);
int ctl_store_volume_mount_put(struct ctl_store *s, const struct ctl_volume_mount_row *m,
                               struct nubo_err *err);
int ctl_store_volume_mount_delete(struct ctl_store *s, const char *volume_uuid,
                                  struct nubo_err *err);
int ctl_store_node_volume_mb_put(struct ctl_store *s, const char *node_uuid, int64_t mb,
                                 struct nubo_err *err);
int ctl_store_volumes_load(struct ctl_store *s,
                           int (*vol)(void *arg, const struct ctl_volume_row *r),
                           int (*mnt)(void *arg, const struct ctl_volume_mount_row *m),
                           int (*budget)(void *arg, const char *node_uuid, int64_t mb), void *arg,
                           struct nubo_err *err);

/* ---- model_volumes.c ---- */
struct ctl_volume {
    struct ctl_volume_row row;
    bool attached; /* one writer: at most one instance mounts it */
    struct ctl_volume_mount_row mount;
};
struct ctl_volumes {
    struct ctl_map by_uuid; /* -> ctl_volume */
    struct ctl_map by_name; /* "owner/name" -> ctl_volume */
    struct ctl_map budget;  /* node uuid -> int64_t* volume_mb the node offers */
};
int ctl_volumes_load(struct ctl_ctx *ctx, struct nubo_err *err); /* after the instances */
void ctl_volumes_free(struct ctl_ctx *ctx);
/* Another user's volume is reported exactly like a missing one. */
struct ctl_volume *ctl_volume_find(struct ctl_ctx *ctx, const char *owner, const char *uuid,
                                   const char *name);
struct ctl_volume *ctl_volume_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                     const struct nubo_volume_create_req *req,
                                     struct nubo_err *err);
/* 409 while an instance has it attached. */
int ctl_volume_delete(struct ctl_ctx *ctx, struct ctl_volume *v, struct nubo_err *err);
void ctl_volume_to_api(struct ctl_ctx *ctx, const struct ctl_volume *v, struct nubo_volume *out);

/* A create's volumes, resolved before placement and committed with the instance. */
struct ctl_volume_plan {
    size_t n;
    struct ctl_volume *vol[NUBO_VOLUME_MAX_MOUNTS]; /* existing; NULL = made inline */
    struct ctl_volume_row new_row[NUBO_VOLUME_MAX_MOUNTS];
    struct ctl_volume_mount_row mount[NUBO_VOLUME_MAX_MOUNTS];
    struct ctl_node *pin; /* the node the existing volumes live on, NULL = any */
};
/* Resolve cr's volumes for u: each exists, is u's, is free (one writer), lives on one node
 * (*plan->pin) that is up. -1 with a one-line err, nothing changed. */
int ctl_volumes_plan(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                     const struct nubo_create_req *cr, struct ctl_volume_plan *plan,
                     struct nubo_err *err);
/* Once the instance's node is chosen: the inline volumes fit its disk budget. */
int ctl_volumes_plan_node(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                          struct ctl_volume_plan *plan, const struct ctl_node *node,
                          const char *instance_uuid, struct nubo_err *err);
/* Inside the create's transaction. */
int ctl_volumes_plan_store(struct ctl_ctx *ctx, const struct ctl_volume_plan *plan,
                           struct nubo_err *err);
/* After the commit. */
void ctl_volumes_plan_apply(struct ctl_ctx *ctx, const struct ctl_volume_plan *plan);
/* Inside an instance delete's transaction: detach its volumes, delete the inline ones. */
int ctl_volumes_store_detach(struct ctl_ctx *ctx, const char *instance_uuid,
                             struct nubo_err *err);
/* After that commit. */
void ctl_volumes_forget_instance(struct ctl_ctx *ctx, const char *instance_uuid);
/* The instance's mounts for its assignment (malloc'd, NULL when none). */
struct nubo_volume_mount *ctl_volumes_of_instance(struct ctl_ctx *ctx, const char *instance_uuid,
                                                  size_t *n);
/* The node's volumes for its watch answer (a JSON array, new reference). */
json_t *ctl_volumes_node_json(struct ctl_ctx *ctx, const struct ctl_node *node);
/* A node's register (budget, what it holds) and status batches (volume reports). */
int ctl_volumes_node_budget(struct ctl_ctx *ctx, struct ctl_node *node, int64_t volume_mb,
                            struct nubo_err *err);
int ctl_volumes_observe(struct ctl_ctx *ctx, struct ctl_node *node,
                        const struct nubo_volume_report *r, size_t n, struct nubo_err *err);

/* ---- volumes.c ---- */
int ctl_handle_volumes(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                       struct nubo_err *err);

#endif
