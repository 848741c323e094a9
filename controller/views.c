/* API objects from the working set, as proto/ encodes them: instances and the service group
 * reference they carry. Handlers' shared floor: reads the model, calls no handler. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_autoscale.h"
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
    out->scale_to_zero = in->row.s2z;
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
    if (in->svc) {
        out->service_group = xmalloc(sizeof(*out->service_group));
        ctl_svc_to_api(ctx, in->svc, false, out->service_group);
    }
}

json_t *ctl_instance_json(struct ctl_ctx *ctx, const struct ctl_instance *in, bool details)
{
    struct nubo_instance api;
    ctl_instance_to_api(ctx, in, &api);
    json_t *j = nubo_instance_encode(&api, details); /* api borrows but its service_group */
    free(api.service_group);
    return j;
}

void ctl_svc_to_api(struct ctl_ctx *ctx, const struct ctl_svc *g, bool with_instances,
                    struct nubo_svc_group *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, g->row.uuid, sizeof(out->uuid));
    memcpy(out->name, g->row.name, sizeof(out->name));
    out->created_at_us = g->row.created_at_us;
    out->persistent = g->row.persistent;
    out->autoscale = ctl_autoscale_of(ctx, g->row.uuid) != NULL;
    out->soft_limit = g->row.soft_limit;
    out->hard_limit = g->row.hard_limit;
    memcpy(out->metro, g->row.metro, sizeof(out->metro));
    memcpy(out->ports, g->row.ports, sizeof(out->ports));
    out->n_ports = g->row.n_ports;
    for (size_t i = 0; i < out->n_ports; i++) {
        const char *e = ctl_ingress_port_error(ctx, g->row.metro, out->ports[i].port);
        if (e)
            snprintf(out->port_errors[i], sizeof(out->port_errors[i]), "%s", e);
    }
    out->has_services = true;
    for (size_t i = 0; i < g->row.n_domains; i++) {
        struct nubo_svc_domain *d = &out->domains[out->n_domains++];
        memcpy(d->fqdn, g->row.domains[i].fqdn, sizeof(d->fqdn));
        /* no certificate = the metro's wildcard certificate, held by the ingress */
        const char *cu = g->row.domains[i].cert;
        const struct ctl_cert *c = cu[0] ? ctl_map_get(&ctx->certs, cu) : NULL;
        if (c) {
            d->has_cert = true;
            memcpy(d->cert.uuid, c->row.uuid, sizeof(d->cert.uuid));
            memcpy(d->cert.name, c->row.name, sizeof(d->cert.name));
            snprintf(d->cert_state, sizeof(d->cert_state), "valid");
        }
    }
    if (!with_instances)
        return;
    size_t n = 0;
    for (const struct ctl_instance *in = g->inst_head; in; in = in->svc_next)
        n++;
    out->instances = n ? xcalloc(n, sizeof(*out->instances)) : NULL;
    for (const struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
        struct nubo_api_ref *r = &out->instances[out->n_instances++];
        memcpy(r->uuid, in->row.uuid, sizeof(r->uuid));
        memcpy(r->name, in->row.name, sizeof(r->name));
    }
}

json_t *ctl_item_ok(const char *uuid, const char *name)
{
    struct nubo_item_status st = {.ok = true};
    snprintf(st.uuid, sizeof(st.uuid), "%s", uuid);
    snprintf(st.name, sizeof(st.name), "%s", name ? name : "");
    return nubo_item_status_encode(&st);
}
