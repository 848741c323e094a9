/* The controller's counters: route names and the latency / boot-time histograms that
 * GET /metrics prints. Ground floor: everyone may count, nothing here calls up. */
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

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

void ctl_mtext_flush(struct ctl_mtext *t)
{
    if (t->n > 0)
        evbuffer_add(t->out, t->buf, t->n);
    t->n = 0;
}

void ctl_mtext_mem(struct ctl_mtext *t, const char *s, size_t len)
{
    if (t->n + len > sizeof(t->buf))
        ctl_mtext_flush(t);
    if (len > sizeof(t->buf)) {
        evbuffer_add(t->out, s, len);
        return;
    }
    memcpy(t->buf + t->n, s, len);
    t->n += len;
}

void ctl_mtext_str(struct ctl_mtext *t, const char *s)
{
    ctl_mtext_mem(t, s, strlen(s));
}

void ctl_mtext_i64(struct ctl_mtext *t, int64_t v)
{
    char d[24];
    size_t i = sizeof(d);
    /* in unsigned arithmetic, so INT64_MIN negates too */
    uint64_t u = v < 0 ? -(uint64_t)v : (uint64_t)v;
    do {
        d[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        d[--i] = '-';
    ctl_mtext_mem(t, d + i, sizeof(d) - i);
}

void ctl_mtext_series(struct ctl_mtext *t, const char *name, const char *k1, const char *v1,
                      const char *k2, const char *v2, int64_t v)
{
    ctl_mtext_str(t, name);
    ctl_mtext_mem(t, "{", 1);
    ctl_mtext_str(t, k1);
    ctl_mtext_mem(t, "=\"", 2);
    ctl_mtext_str(t, v1);
    if (k2) {
        ctl_mtext_mem(t, "\",", 2);
        ctl_mtext_str(t, k2);
        ctl_mtext_mem(t, "=\"", 2);
        ctl_mtext_str(t, v2);
    }
    ctl_mtext_mem(t, "\"} ", 3);
    ctl_mtext_i64(t, v);
    ctl_mtext_mem(t, "\n", 1);
}
