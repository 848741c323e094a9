/* Nodes, metros and users of the public API: encoders and lenient client decoders; see
 * cluster.h. */
#include "cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            goto fail;                                                                             \
    } while (0)

static const int64_t big = INT64_C(1) << 62;

/* The replace reply's node carries its new token; no other node object does. */
static json_t *node_with_token(json_t *o, const struct nubo_node *n)
{
    if (o && n->token[0])
        json_object_set_new(o, "token", json_string(n->token));
    return o;
}

json_t *nubo_node_encode(const struct nubo_node *n)
{
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:s, "
        "s:s, s:s, s:o, s:o, s:I, s:s}",
        "status", "success", "uuid", n->uuid, "name", n->name, "metro", n->metro, "state", n->state,
        "memory_mb", (json_int_t)n->memory_mb, "vcpus", (json_int_t)n->vcpus, "free_memory_mb",
        (json_int_t)n->free_memory_mb, "allocated_memory_mb", (json_int_t)n->allocated_memory_mb,
        "allocated_vcpus", (json_int_t)n->allocated_vcpus, "instances", (json_int_t)n->instances,
        "accel", n->accel, "subnet", n->subnet, "gateway", n->gateway, "agent_version",
        n->agent_version, "qemu_version", n->qemu_version, "created_at",
        pj_time_new(n->created_at_us), "registered_at", pj_time_new(n->registered_at_us),
        "last_seen_ms", (json_int_t)n->last_seen_ms, "guest_cpu", n->guest_cpu);
    if (o == NULL || !n->has_moved)
        return node_with_token(o, n);
    node_with_token(o, n);
    json_t *mv = json_array();
    for (size_t i = 0; mv && i < n->n_moved; i++)
        json_array_append_new(mv, json_pack("{s:s, s:s, s:s, s:s}", "uuid", n->moved[i].uuid,
                                            "name", n->moved[i].name, "node", n->moved[i].node,
                                            "private_ip", n->moved[i].private_ip));
    json_object_set_new(o, "moved_instances", mv);
    return o;
}

void nubo_node_free(struct nubo_node *n)
{
    if (n == NULL)
        return;
    free(n->moved);
    n->moved = NULL;
    n->n_moved = 0;
}

static int moved_decode(json_t *e, const char *ctx, struct nubo_moved_instance *out,
                        struct nubo_err *err)
{
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    if (pj_str(e, ctx, "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(e, ctx, "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_str(e, ctx, "node", false, out->node, sizeof(out->node), err) < 0 ||
        pj_str(e, ctx, "private_ip", false, out->private_ip, sizeof(out->private_ip), err) < 0)
        return -1;
    return 0;
}

int nubo_node_decode(json_t *j, struct nubo_node *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "node: must be a JSON object");
    TRY(pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err));
    TRY(pj_str(j, "", "name", false, out->name, sizeof(out->name), err));
    TRY(pj_str(j, "", "metro", false, out->metro, sizeof(out->metro), err));
    TRY(pj_str(j, "", "state", false, out->state, sizeof(out->state), err));
    TRY(pj_int(j, "", "memory_mb", false, 0, big, &out->memory_mb, err));
    TRY(pj_int(j, "", "vcpus", false, 0, big, &out->vcpus, err));
    TRY(pj_int(j, "", "free_memory_mb", false, -big, big, &out->free_memory_mb, err));
    TRY(pj_int(j, "", "allocated_memory_mb", false, 0, big, &out->allocated_memory_mb, err));
    TRY(pj_int(j, "", "allocated_vcpus", false, 0, big, &out->allocated_vcpus, err));
    TRY(pj_int(j, "", "instances", false, 0, big, &out->instances, err));
    TRY(pj_str(j, "", "accel", false, out->accel, sizeof(out->accel), err));
    TRY(pj_str(j, "", "subnet", false, out->subnet, sizeof(out->subnet), err));
    TRY(pj_str(j, "", "gateway", false, out->gateway, sizeof(out->gateway), err));
    TRY(pj_str(j, "", "agent_version", false, out->agent_version, sizeof(out->agent_version), err));
    TRY(pj_str(j, "", "qemu_version", false, out->qemu_version, sizeof(out->qemu_version), err));
    TRY(pj_time(j, "", "created_at", false, &out->created_at_us, err));
    TRY(pj_time(j, "", "registered_at", false, &out->registered_at_us, err));
    TRY(pj_int(j, "", "last_seen_ms", false, -big, big, &out->last_seen_ms, err));
    TRY(pj_str(j, "", "guest_cpu", false, out->guest_cpu, sizeof(out->guest_cpu), err));
    TRY(pj_str(j, "", "token", false, out->token, sizeof(out->token), err));
    json_t *a;
    int rc = pj_array(j, "", "moved_instances", false, NUBO_NODE_MAX_MOVED, &a, err);
    TRY(rc);
    out->has_moved = rc == 1;
    if (json_array_size(a)) {
        out->moved = calloc(json_array_size(a), sizeof(*out->moved));
        if (out->moved == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(a, i, e)
        {
            char c[48];
            snprintf(c, sizeof(c), "moved_instances[%zu]", i);
            TRY(moved_decode(e, c, &out->moved[i], err));
            out->n_moved = i + 1;
        }
    }
    return 0;
fail:
    nubo_node_free(out);
    return -1;
}

PJ_LIST_CODEC(nubo_node, struct nubo_node, nubo_node_decode, nubo_node_free)

json_t *nubo_metro_encode(const struct nubo_metro *m)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I}", "status", "success", "uuid", m->uuid,
                  "name", m->name, "state", m->state, "nodes", (json_int_t)m->nodes, "ready_nodes",
                  (json_int_t)m->ready_nodes, "memory_mb", (json_int_t)m->memory_mb,
                  "free_memory_mb", (json_int_t)m->free_memory_mb);
    if (o && m->endpoint[0])
        json_object_set_new(o, "endpoint", json_string(m->endpoint));
    return o;
}

int nubo_metro_decode(json_t *j, struct nubo_metro *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "metro: must be a JSON object");
    if (pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_str(j, "", "state", false, out->state, sizeof(out->state), err) < 0 ||
        pj_int(j, "", "nodes", false, 0, big, &out->nodes, err) < 0 ||
        pj_int(j, "", "ready_nodes", false, 0, big, &out->ready_nodes, err) < 0 ||
        pj_int(j, "", "memory_mb", false, 0, big, &out->memory_mb, err) < 0 ||
        pj_int(j, "", "free_memory_mb", false, -big, big, &out->free_memory_mb, err) < 0 ||
        pj_str(j, "", "endpoint", false, out->endpoint, sizeof(out->endpoint), err) < 0)
        return -1;
    return 0;
}

/* a metro owns nothing to free */
static void metro_fini(struct nubo_metro *m)
{
    (void)m;
}
PJ_LIST_CODEC(nubo_metro, struct nubo_metro, nubo_metro_decode, metro_fini)

json_t *nubo_user_encode(const struct nubo_user *u)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:o}", "status", "success", "uuid", u->uuid, "name",
                          u->name, "admin", u->admin, "created_at", pj_time_new(u->created_at_us));
    if (o && u->token[0])
        json_object_set_new(o, "token", json_string(u->token));
    if (o && u->token_id[0])
        json_object_set_new(o, "token_id", json_string(u->token_id));
    if (o && u->expires_at_us)
        json_object_set_new(o, "expires_at", pj_time_new(u->expires_at_us));
    return o;
}

int nubo_user_decode(json_t *j, struct nubo_user *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "user: must be a JSON object");
    if (pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_bool(j, "", "admin", false, &out->admin, err) < 0 ||
        pj_time(j, "", "created_at", false, &out->created_at_us, err) < 0 ||
        pj_str(j, "", "token", false, out->token, sizeof(out->token), err) < 0 ||
        pj_str(j, "", "token_id", false, out->token_id, sizeof(out->token_id), err) < 0 ||
        pj_time(j, "", "expires_at", false, &out->expires_at_us, err) < 0)
        return -1;
    return 0;
}

json_t *nubo_token_encode(const struct nubo_token *t)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b}", "status", "success", "id", t->id,
                          "user", t->user, "scope", t->scope, "created_at",
                          pj_time_new(t->created_at_us), "current", t->current);
    if (o && t->expires_at_us)
        json_object_set_new(o, "expires_at", pj_time_new(t->expires_at_us));
    return o;
}

int nubo_token_decode(json_t *j, struct nubo_token *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "token: must be a JSON object");
    if (pj_str(j, "", "id", false, out->id, sizeof(out->id), err) < 0 ||
        pj_str(j, "", "user", false, out->user, sizeof(out->user), err) < 0 ||
        pj_str(j, "", "scope", false, out->scope, sizeof(out->scope), err) < 0 ||
        pj_time(j, "", "created_at", false, &out->created_at_us, err) < 0 ||
        pj_time(j, "", "expires_at", false, &out->expires_at_us, err) < 0 ||
        pj_bool(j, "", "current", false, &out->current, err) < 0)
        return -1;
    return 0;
}

static void token_fini(struct nubo_token *t)
{
    (void)t;
}
PJ_LIST_CODEC(nubo_token, struct nubo_token, nubo_token_decode, token_fini)

json_t *nubo_token_req_encode(const struct nubo_token_req *r)
{
    json_t *o = json_object();
    if (r->ttl_s)
        json_object_set_new(o, "ttl_s", json_integer(r->ttl_s));
    if (r->expires_at_us)
        json_object_set_new(o, "expires_at", pj_time_new(r->expires_at_us));
    if (r->scope[0])
        json_object_set_new(o, "scope", json_string(r->scope));
    return o;
}

int nubo_token_req_decode(json_t *j, int64_t now_us, struct nubo_token_req *out,
                          struct nubo_err *err)
{
    static const char *const allowed[] = {"ttl_s", "expires_at", "scope", NULL};
    memset(out, 0, sizeof(*out));
    if (j == NULL)
        return 0;
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "tokens: body must be an object");
    if (pj_only_keys(j, "", allowed, err) < 0 ||
        pj_int(j, "", "ttl_s", false, 1, NUBO_TOKEN_TTL_MAX_S, &out->ttl_s, err) < 0 ||
        pj_time(j, "", "expires_at", false, &out->expires_at_us, err) < 0 ||
        pj_str(j, "", "scope", false, out->scope, sizeof(out->scope), err) < 0)
        return -1;
    if (out->scope[0] && strcmp(out->scope, "metrics") != 0)
        return nubo_error_http(err, 400, "scope: '%s' is not a scope (\"metrics\", or none)",
                               out->scope);
    if (out->ttl_s && out->expires_at_us)
        return nubo_error_http(err, 400, "tokens: give ttl_s or expires_at, not both");
    if (out->ttl_s)
        out->expires_at_us = now_us + out->ttl_s * 1000000;
    if (out->expires_at_us && out->expires_at_us <= now_us)
        return nubo_error_http(err, 400, "expires_at: the time has passed; give a future time");
    if (out->expires_at_us > now_us + NUBO_TOKEN_TTL_MAX_S * 1000000)
        return nubo_error_http(err, 400, "expires_at: at most ten years ahead");
    return 0;
}
