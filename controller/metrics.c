/* The controller's counters: route names and the latency / boot-time histograms that
 * GET /metrics prints. Ground floor: everyone may count, nothing here calls up. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

const char *const ctl_route_names[CTL_R__COUNT] = {
    "other",           "healthz",          "metrics",         "instances_create", "instances_list",
    "instances_get",   "instances_delete", "instances_start", "instances_stop",   "instances_wait",
    "instances_log",   "images",           "nodes",           "metros",           "users",
    "registry_events", "registry_token",   "agent_register",   "agent_watch",     "agent_status",     "agent_log",
    "services",        "certificates",     "ingress_watch",   "node_admin",
    "volumes",
};

static const double hist_bounds_s[CTL_HIST_BUCKETS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0,    10.0,    30.0, /* boots and wakes under TCG, or with a cold image cache */
};

void ctl_hist_observe(struct ctl_hist *h, double s)
{
    size_t i = 0;
    while (i < CTL_HIST_BUCKETS && s > hist_bounds_s[i])
        i++;
    h->counts[i]++;
    h->sum_s += s;
    h->n++;
}

const double *ctl_hist_bounds(void)
{
    return hist_bounds_s;
}

struct ctl_metro_count *ctl_metrics_metro(struct ctl_metrics *m, const char *metro)
{
    for (size_t i = 0; i < m->n_metro; i++)
        if (strcmp(m->metro[i].metro, metro) == 0)
            return &m->metro[i];
    if (m->n_metro >= CTL_METRICS_METROS)
        return NULL;
    struct ctl_metro_count *c = &m->metro[m->n_metro++];
    snprintf(c->metro, sizeof(c->metro), "%s", metro);
    return c;
}
