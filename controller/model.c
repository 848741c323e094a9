/* The controller's working set in memory, its lowest floor above the store: nodes and
 * instances loaded at start and kept in step with it, their indexes and the derived (visible)
 * state. The model knows no HTTP; what changes is told through ctx->events. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

/* ---- nodes ---- */

void ctl_node_ip_str(const struct ctl_node *n, int host, char out[NUBO_IP_STR_MAX])
{
    /* node subnets are /24s carved from the pool in index order */
    struct in_addr a;
    a.s_addr = htonl(n->subnet_base | (uint32_t)host);
    inet_ntop(AF_INET, &a, out, NUBO_IP_STR_MAX);
}

void ctl_node_subnet(const struct ctl_node *n, char out[NUBO_CIDR_STR_MAX])
{
    char ip[NUBO_IP_STR_MAX];
    ctl_node_ip_str(n, 0, ip);
    snprintf(out, NUBO_CIDR_STR_MAX, "%s/24", ip);
}

void ctl_node_gateway(const struct ctl_node *n, char out[NUBO_IP_STR_MAX])
{
    ctl_node_ip_str(n, 1, out);
}

struct ctl_node *ctl_node_new(struct ctl_ctx *ctx, const struct ctl_node_row *row)
{
    struct ctl_node *n = xcalloc(1, sizeof(*n));
    n->row = *row;
    n->subnet_base = ctx->cfg.pool_net + ((uint32_t)row->subnet_index << 8);
    n->ready = !row->unavailable;
    n->last_seen_mono_us = nubo_mono_us();
    n->version = ++ctx->version_seq;
    ctl_map_put(&ctx->nodes, n->row.uuid, n);
    ctl_map_put(&ctx->nodes_by_name, n->row.name, n);
    ctl_map_put(&ctx->node_tokens, n->row.token_hash, n);
    ctl_capacity_add_node(ctx, n);
    int max = 1 << (24 - ctx->cfg.pool_prefix);
    if (ctx->subnet_used == NULL)
        ctx->subnet_used = xcalloc((size_t)max / 8 + 1, 1);
    if (row->subnet_index >= 0 && row->subnet_index < max)
        ctx->subnet_used[row->subnet_index / 8] |= (uint8_t)(1u << (row->subnet_index % 8));
    return n;
}

struct ctl_node *ctl_node_find(struct ctl_ctx *ctx, const char *ref)
{
    struct ctl_node *node = ctl_map_get(&ctx->nodes_by_name, ref);
    return node ? node : ctl_map_get(&ctx->nodes, ref);
}

static int node_cb(void *arg, const struct ctl_node_row *row)
{
    ctl_node_new(arg, row);
    return 0;
}

/* ---- instances ---- */

void ctl_instance_attach(struct ctl_instance *in, struct ctl_node *node)
{
    in->node = node;
    in->node_prev = NULL;
    in->node_next = node->inst_head;
    if (node->inst_head)
        node->inst_head->node_prev = in;
    node->inst_head = in;
    node->n_instances++;
    int h = (int)in->row.ip_host;
    if (h > 0 && h < 256)
        node->ip_used[h / 8] |= (uint8_t)(1u << (h % 8));
    ctl_instance_account(in);
}

void ctl_instance_detach(struct ctl_instance *in)
{
    struct ctl_node *node = in->node;
    if (node == NULL)
        return;
    node->used_memory_mb -= in->held_memory_mb;
    node->used_vcpus -= in->held_vcpus;
    in->held_memory_mb = in->held_vcpus = 0;
    if (in->node_prev)
        in->node_prev->node_next = in->node_next;
    else
        node->inst_head = in->node_next;
    if (in->node_next)
        in->node_next->node_prev = in->node_prev;
    node->n_instances--;
    int h = (int)in->row.ip_host;
    if (h > 0 && h < 256)
        node->ip_used[h / 8] &= (uint8_t) ~(1u << (h % 8));
    in->node = NULL;
    in->node_prev = in->node_next = NULL;
    ctl_node_reindex(node);
}

void ctl_instance_move(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *to,
                       int host)
{
    struct ctl_node *from = in->node;
    ctl_instance_detach(in);
    memcpy(in->row.node_uuid, to->row.uuid, sizeof(in->row.node_uuid));
    in->row.ip_host = host;
    /* what the old node reported says nothing about the new placement */
    if (in->has_obs)
        nubo_status_report_free(&in->obs);
    in->has_obs = false;
    free(in->assign_json);
    in->assign_json = NULL;
    ctl_instance_attach(in, to);
    ctl_node_bump(ctx, to);
    if (from && from != to)
        ctl_node_bump(ctx, from);
}

void ctl_instance_destroy(struct ctl_instance *in)
{
    if (in == NULL)
        return;
    ctl_instance_row_free(&in->row);
    if (in->has_obs)
        nubo_status_report_free(&in->obs);
    free(in->assign_json);
    free(in->log.buf);
    free(in);
}

void ctl_instance_add(struct ctl_ctx *ctx, struct ctl_instance *in, struct ctl_node *node)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), in->row.owner, in->row.name);
    ctl_map_put(&ctx->instances, in->row.uuid, in);
    ctl_map_put(&ctx->instance_names, key, in);
    ctl_svc_link(ctx, in);
    if (node)
        ctl_instance_attach(in, node);
    ctl_instance_count(ctx, in);
}

static int instance_cb(void *arg, struct ctl_instance_row *row,
                       const struct nubo_status_report *obs)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_instance *in = xcalloc(1, sizeof(*in));
    in->row = *row;
    if (obs) {
        in->obs = *obs;
        in->obs.message = obs->message ? xstrdup(obs->message) : NULL;
        in->has_obs = true;
    }
    struct ctl_node *node = ctl_map_get(&ctx->nodes, in->row.node_uuid);
    if (node == NULL)
        log_warnx("instance %s: its node %s is unknown", in->row.uuid, in->row.node_uuid);
    ctl_instance_add(ctx, in, node);
    return 0;
}

static int s2z_cb(void *arg, const char *uuid, const struct nubo_scale_to_zero *z, bool standby)
{
    struct ctl_instance *in = ctl_map_get(&((struct ctl_ctx *)arg)->instances, uuid);
    if (in) {
        in->row.s2z = *z;
        in->row.standby = standby;
        ctl_instance_recount(in); /* standby reads as its own state */
    }
    return 0;
}

int ctl_state_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    ctx->version_seq = nubo_now_us(); /* versions never repeat across restarts */
    int64_t t0 = nubo_mono_us();
    if (ctl_store_nodes_load(&ctx->store, node_cb, ctx, err) < 0 ||
        ctl_services_load(ctx, err) < 0 ||
        ctl_store_instances_load(&ctx->store, instance_cb, ctx, err) < 0 ||
        ctl_store_s2z_load(&ctx->store, s2z_cb, ctx, err) < 0 ||
        ctl_logs_load(ctx, err) < 0 || ctl_quotas_load(ctx, err) < 0 ||
        ctl_volumes_load(ctx, err) < 0)
        return nubo_error_wrap(err, "loading the state");
    log_info("loaded %zu node(s), %zu instance(s) in %lld ms", ctx->nodes.n, ctx->instances.n,
             (long long)(nubo_mono_us() - t0) / 1000);
    return 0;
}

void ctl_state_free(struct ctl_ctx *ctx)
{
    if (ctx->store.db)
        ctl_logs_flush(ctx); /* the last tails before the store closes */
    ctl_map_foreach(&ctx->instances, e) ctl_instance_destroy(e->val);
    ctl_services_free(ctx);
    ctl_quotas_free(ctx);
    ctl_volumes_free(ctx);
    ctl_map_foreach(&ctx->nodes, e) free(e->val);
    ctl_map_foreach(&ctx->users_by_name, e) free(e->val);
    ctl_map_foreach(&ctx->tokens, e) free(e->val);
    ctl_map_clear(&ctx->instances);
    free(ctx->logs_dirty);
    ctx->logs_dirty = NULL;
    ctx->n_logs_dirty = ctx->cap_logs_dirty = 0;
    ctl_map_clear(&ctx->instance_names);
    ctl_map_clear(&ctx->nodes);
    ctl_map_clear(&ctx->nodes_by_name);
    ctl_capacity_free(ctx);
    ctl_state_counts_free(ctx);
    ctx->ingress_fresh = NULL;
    free(ctx->subnet_used);
    ctx->subnet_used = NULL;
    ctx->subnet_hint = 0;
    ctl_map_clear(&ctx->node_tokens);
    ctl_map_clear(&ctx->users_by_name);
    ctl_map_clear(&ctx->tokens);
}

struct ctl_instance *ctl_instance_find(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                       const char *uuid, const char *name)
{
    struct ctl_instance *in;
    if (uuid && uuid[0]) {
        in = ctl_map_get(&ctx->instances, uuid);
        /* another user's instance is reported exactly like a missing one */
        return in && strcmp(in->row.owner, u->name) == 0 ? in : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), u->name, name ? name : "");
    return ctl_map_get(&ctx->instance_names, key);
}

bool ctl_instance_name_taken(struct ctl_ctx *ctx, const char *owner, const char *name)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), owner, name);
    return ctl_map_get(&ctx->instance_names, key) != NULL;
}
