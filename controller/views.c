/* API objects from the working set, as proto/ encodes them: instances and the service group
 * reference they carry. Handlers' shared floor: reads the model, calls no handler. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

void ctl_instance_to_api(struct ctl_ctx *ctx, const struct ctl_instance *in,
                         struct nubo_instance *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, in->row.uuid, sizeof(out->uuid));
    memcpy(out->name, in->row.name, sizeof(out->name));
    out->created_at_us = in->row.created_at_us;
    out->state = ctl_instance_state(in);
    memcpy(out->image, in->row.image, sizeof(out->image));
    out->memory_mb = in->row.memory_mb;
    out->vcpus = in->row.vcpus;
    /* borrowed: the caller encodes and drops them without freeing */
    out->args = in->row.args;
    out->n_args = in->row.n_args;
    out->env = in->row.env;
    out->n_env = in->row.n_env;
    if (in->node)
        ctl_node_ip_str(in->node, (int)in->row.ip_host, out->private_ip);
    out->restart_policy = in->row.restart_policy;
    out->features = in->row.features;
    if (in->node) {
        memcpy(out->node, in->node->row.name, sizeof(out->node));
    }
    memcpy(out->metro, in->row.metro, sizeof(out->metro));
    snprintf(out->private_fqdn, sizeof(out->private_fqdn), "%s.%s", in->row.name,
             ctx->cfg.cluster_domain);
    if (in->has_obs) {
        const struct nubo_status_report *o = &in->obs;
        out->boot_time_us = o->boot_time_us;
        out->net_time_us = o->net_time_us;
        out->boot_phases = o->phases;
        out->start_count = o->start_count;
        out->restart_count = o->restart_count;
        out->started_at_us = o->started_at_us;
        out->stopped_at_us = o->stopped_at_us;
        out->stop_reason = o->stop_reason;
        out->has_exit_code = o->has_exit_code;
        out->exit_code = o->exit_code;
        out->has_stop_code = o->has_stop_code;
        out->stop_code = o->stop_code;
        out->restart_attempt = o->restart_attempt;
        out->restart_next_at_us = o->restart_next_at_us;
        out->message = o->message;
        if (o->started_at_us) {
            int64_t end = o->state == NUBO_STATE_RUNNING || o->state == NUBO_STATE_DRAINING ||
                                  o->stopped_at_us < o->started_at_us
                              ? nubo_now_us()
                              : o->stopped_at_us;
            out->uptime_ms = end > o->started_at_us ? (end - o->started_at_us) / 1000 : 0;
        }
    }
}

json_t *ctl_instance_json(struct ctl_ctx *ctx, const struct ctl_instance *in, bool details)
{
    struct nubo_instance api;
    ctl_instance_to_api(ctx, in, &api);
    json_t *j = nubo_instance_encode(&api, details); /* api borrows: nothing to free */
    if (j && in->svc)
        json_object_set_new(j, "service_group", ctl_svc_instance_ref(ctx, in->svc));
    return j;
}

static json_t *cert_ref(struct ctl_ctx *ctx, const char *uuid)
{
    struct ctl_cert *c = uuid[0] ? ctl_map_get(&ctx->certs, uuid) : NULL;
    if (c == NULL)
        return json_null();
    return json_pack("{s:s, s:s, s:s}", "uuid", c->row.uuid, "name", c->row.name, "state", "valid");
}

json_t *ctl_svc_domains_json(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    json_t *a = json_array();
    for (size_t i = 0; i < g->row.n_domains; i++) {
        /* certificate null = the metro's wildcard certificate, held by the ingress */
        json_t *d = json_pack("{s:s, s:o}", "fqdn", g->row.domains[i].fqdn, "certificate",
                              cert_ref(ctx, g->row.domains[i].cert));
        json_array_append_new(a, d);
    }
    return a;
}

json_t *ctl_svc_instance_ref(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    /* services is a nubo addition: clients tell https from http URLs by it */
    return json_pack("{s:s, s:s, s:o, s:o}", "uuid", g->row.uuid, "name", g->row.name, "domains",
                     ctl_svc_domains_json(ctx, g), "services",
                     nubo_svc_ports_encode(g->row.ports, g->row.n_ports));
}
