/* Instance metrics: the agents' stats of running domains (rss, cpu time, kept in memory only:
 * they change every heartbeat and mean nothing after a restart) and the API that shows them
 * with the last start's boot and network times. */
#include <string.h>

#include "ctl.h"
#include "util.h"

void ctl_instances_stats(struct ctl_ctx *ctx, struct ctl_node *node,
                         const struct nubo_instance_stats *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, s[i].uuid);
        if (in == NULL || in->node != node)
            continue;
        in->rss_bytes = s[i].rss_bytes;
        in->cpu_time_ms = s[i].cpu_time_ms;
    }
}

static json_t *metrics_json(struct ctl_ctx *ctx, const void *obj)
{
    const struct ctl_instance *in = obj;
    struct nubo_instance_metrics m = {0};
    memcpy(m.uuid, in->row.uuid, sizeof(m.uuid));
    memcpy(m.name, in->row.name, sizeof(m.name));
    enum nubo_state st = ctl_instance_state(in);
    bool live = st == NUBO_STATE_RUNNING || st == NUBO_STATE_DRAINING ||
                st == NUBO_STATE_STOPPING || st == NUBO_STATE_STARTING;
    /* a stopped instance holds no memory (the spec: rss goes down to 0) */
    m.rss_bytes = live ? in->rss_bytes : 0;
    m.cpu_time_ms = in->cpu_time_ms;
    if (in->has_obs) {
        m.boot_time_us = in->obs.boot_time_us;
        m.net_time_us = in->obs.net_time_us;
    }
    return nubo_instance_metrics_encode(&m);
}

static const char *inst_owner(const void *obj)
{
    return ((const struct ctl_instance *)obj)->row.owner;
}

static int inst_cmp(const void *a, const void *b)
{
    const struct ctl_instance *x = *(struct ctl_instance *const *)a;
    const struct ctl_instance *y = *(struct ctl_instance *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

static void *inst_find(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                       const char *name)
{
    return ctl_instance_find(ctx, u, uuid, name);
}

static json_t *inst_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "instance %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

static const struct ctl_named_ops metrics_ops = {
    .collection = "instances",
    .plural = "instances",
    .owner = inst_owner,
    .cmp = inst_cmp,
    .to_json = metrics_json,
    .find = inst_find,
    .not_found = inst_not_found,
    .del = NULL,
};

int ctl_handle_instance_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *ref,
                                struct nubo_err *err)
{
    ri->route = CTL_R_INST_GET;
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "%s: use GET", ri->path);
    return ctl_named_get_delete(ctx, ri, ref, false, &ctx->instances, &metrics_ops, err);
}
