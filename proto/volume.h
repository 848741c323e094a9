/* Volumes on the wire: the public API's volume object, create body and the `volumes` of an
 * instance create, and the controller <-> agent messages that carry them (the node's volumes
 * in the watch answer, an instance's mounts in its assignment, the agent's volume reports in
 * its status batches). One definition each, shared by controller, agent and CLI. */
#ifndef NUBO_PROTO_VOLUME_H
#define NUBO_PROTO_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "pjson.h"
#include "util.h"

#define NUBO_VOLUME_MIN_MB 1
#define NUBO_VOLUME_MAX_MB 1048576 /* the spec's maximum */
/* A mount point: the spec allows longer, but it travels on the guest's kernel command line. */
#define NUBO_VOLUME_AT_MAX 255
#define NUBO_VOLUME_MAX_MOUNTS 16   /* volumes of one instance (virtio-mmio slots, cmdline) */
#define NUBO_VOLUME_MAX_NODE 4096   /* volumes in one agent message */
#define NUBO_VOLUME_MSG_MAX 256     /* an agent's error text */
#define NUBO_VOLUME_MAX_USERS 16    /* attached_to / mounted_by kept (one writer: 1 used) */

/* The platform's volume states (spec: components.schemas.volume.state). */
enum nubo_volume_state {
    NUBO_VOL_UNINITIALIZED = 0, /* placed, the node has not made it yet */
    NUBO_VOL_INITIALIZED,       /* being created and formatted */
    NUBO_VOL_AVAILABLE,         /* ready, attached to nothing */
    NUBO_VOL_IDLE,              /* attached to an instance that is not running */
    NUBO_VOL_MOUNTED,           /* attached to a running instance */
    NUBO_VOL_BUSY,
    NUBO_VOL_ERROR,
    NUBO_VOL__COUNT
};
const char *nubo_volume_state_name(enum nubo_volume_state s);
int nubo_volume_state_parse(const char *s, enum nubo_volume_state *out); /* -1 when unknown */

/* An instance a volume is attached to / mounted by. */
struct nubo_volume_user {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    bool readonly; /* mounted_by only */
};

/* A volume as GET /v1/volumes shows it; node and metro are nubo's additive fields. */
struct nubo_volume {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t size_mb;
    enum nubo_volume_state state;
    bool persistent;
    int64_t created_at_us;
    struct nubo_volume_user attached_to[NUBO_VOLUME_MAX_USERS];
    size_t n_attached;
    struct nubo_volume_user mounted_by[NUBO_VOLUME_MAX_USERS];
    size_t n_mounted;
    char node[NUBO_NAME_MAX + 1];
    char metro[NUBO_NAME_MAX + 1];
    char message[NUBO_VOLUME_MSG_MAX]; /* why it is in error, "" = none */
};
/* With "status":"success" (as a look-up item carries it) when item is set. */
json_t *nubo_volume_encode(const struct nubo_volume *v, bool item);
/* Lenient (client side). */
int nubo_volume_decode(json_t *j, struct nubo_volume *out, struct nubo_err *err);
void nubo_volume_free(struct nubo_volume *v); /* nothing allocated: for the list codec */
int nubo_volume_list_decode(json_t *a, size_t max, struct nubo_volume **out, size_t *n_out,
                            struct nubo_err *err);
void nubo_volume_list_free(struct nubo_volume *v, size_t n);

/* One object of POST /v1/volumes. */
struct nubo_volume_create_req {
    char name[NUBO_NAME_MAX + 1]; /* "" = vol-<5 random> */
    int64_t size_mb;
    char metro[NUBO_NAME_MAX + 1]; /* nubo: "" = any */
};
/* Strict: unknown fields, wrong types and out-of-range values fail with a one-line 400. */
int nubo_volume_create_req_decode(json_t *j, struct nubo_volume_create_req *out,
                                  struct nubo_err *err);
json_t *nubo_volume_create_req_encode(const struct nubo_volume_create_req *r);

/* One entry of an instance's volumes: on create {"uuid"|"name", "at", "readonly"} or the
 * inline {"size_mb", "at"}; in an assignment always {"uuid", "at", "readonly"}. */
struct nubo_volume_mount {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t size_mb; /* > 0: create a volume of this size with the instance */
    char at[NUBO_VOLUME_AT_MAX + 1];
    bool readonly;
};
/* An absolute mount point that is not "/", of the spec's characters ([ a-zA-Z0-9._-] between
 * slashes), without empty, "." or ".." components. */
bool nubo_volume_at_valid(const char *at);
/* The create form (strict; ctx "volumes"): exactly one of uuid, name, size_mb per entry, a
 * valid `at`, no two entries at one path or naming one volume. [] gives n 0. */
int nubo_volume_mounts_decode(json_t *a, const char *ctx, struct nubo_volume_mount **out,
                              size_t *n_out, struct nubo_err *err);
/* The assignment form (uuid required) of the same entries. */
int nubo_volume_attach_decode(json_t *a, const char *ctx, struct nubo_volume_mount **out,
                              size_t *n_out, struct nubo_err *err);
/* Encodes whichever of uuid / name / size_mb is set. */
json_t *nubo_volume_mounts_encode(const struct nubo_volume_mount *m, size_t n);
/* "name:/path[:ro]" (the CLI's -v) into m. */
int nubo_volume_mount_parse(const char *s, struct nubo_volume_mount *m, struct nubo_err *err);

/* What a node should hold (watch answer "volumes"). */
struct nubo_volume_spec {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t size_mb;
};
json_t *nubo_volume_specs_encode(const struct nubo_volume_spec *v, size_t n);
int nubo_volume_specs_decode(json_t *a, const char *ctx, struct nubo_volume_spec **out,
                             size_t *n_out, struct nubo_err *err);

/* What a node holds (status batch and register "volumes"): initialized (being made),
 * available (made), error (with why). */
struct nubo_volume_report {
    char uuid[NUBO_UUID_STR_LEN + 1];
    enum nubo_volume_state state;
    char message[NUBO_VOLUME_MSG_MAX];
};
json_t *nubo_volume_reports_encode(const struct nubo_volume_report *v, size_t n);
int nubo_volume_reports_decode(json_t *a, const char *ctx, struct nubo_volume_report **out,
                               size_t *n_out, struct nubo_err *err);

#endif
