/* Instance metrics: the agents' stats of running domains (rss, cpu time) and the ingresses'
 * HAProxy counters (connections, requests), kept in memory only: they change every heartbeat
 * or report and mean nothing after a restart. The API shows them with the last start's boot
 * and network times, as JSON or, for `Accept: text/plain` (a Prometheus scrape), as one
 * series per instance of the caller. */
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cleanup.h"
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

void ctl_instances_ingress(struct ctl_ctx *ctx, const struct nubo_ingress_traffic *t)
{
    int64_t now = nubo_mono_us();
    uint64_t handed = 0;
    for (size_t i = 0; i < t->n_instances; i++) {
        const struct nubo_ingress_traffic_item *it = &t->instances[i];
        struct ctl_instance *in = ctl_map_get(&ctx->instances, it->instance);
        /* only the reporting metro's instances: one ingress cannot speak for another's */
        if (in == NULL || strcmp(in->row.metro, t->metro) != 0)
            continue;
        in->nconns = it->nconns;
        in->nreqs = it->nreqs;
        in->nqueued = it->nqueued;
        in->ingress_mono_us = now;
        /* newest first: the stale ones gather at the tail */
        ctl_instance_ingress_unlink(ctx, in);
        in->ing_next = ctx->ingress_fresh;
        if (in->ing_next)
            in->ing_next->ing_prev = in;
        ctx->ingress_fresh = in;
        in->ing_linked = true;
        /* the ingress counts again from 0 after its restart (or an hour without a slot) */
        if (it->ntotal < in->ntotal_last) {
            in->ntotal_base += in->ntotal_last;
            handed += (uint64_t)it->ntotal;
        } else {
            handed += (uint64_t)(it->ntotal - in->ntotal_last);
        }
        in->ntotal_last = it->ntotal;
    }
    struct ctl_metro_count *mc = ctl_metrics_metro(&ctx->metrics, t->metro);
    if (mc)
        mc->ingress_sessions += handed;
}

static int64_t gauge(int64_t v)
{
    return v > NUBO_METRICS_GAUGE_MAX ? NUBO_METRICS_GAUGE_MAX : v;
}

void ctl_instance_ingress_unlink(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    if (!in->ing_linked)
        return;
    if (in->ing_prev)
        in->ing_prev->ing_next = in->ing_next;
    else
        ctx->ingress_fresh = in->ing_next;
    if (in->ing_next)
        in->ing_next->ing_prev = in->ing_prev;
    in->ing_prev = in->ing_next = NULL;
    in->ing_linked = false;
}

void ctl_ingress_gauge_sums(struct ctl_ctx *ctx, const struct ctl_metro_states *m, size_t nm,
                            struct ctl_ingress_sums *out)
{
    memset(out, 0, nm * sizeof(*out));
    int64_t now = nubo_mono_us();
    struct ctl_instance *next;
    for (struct ctl_instance *in = ctx->ingress_fresh; in; in = next) {
        next = in->ing_next;
        int64_t nconns, nreqs, nqueued;
        ctl_instance_ingress_gauges(in, now, &nconns, &nreqs, &nqueued);
        if (now - in->ingress_mono_us >= CTL_INGRESS_STALE_US) {
            ctl_instance_ingress_unlink(ctx, in); /* reads 0 until reported again */
            continue;
        }
        size_t i = 0;
        while (i < nm && strcmp(m[i].metro, in->row.metro) != 0)
            i++;
        if (i == nm)
            continue;
        out[i].nconns += nconns;
        out[i].nreqs += nreqs;
        out[i].nqueued += nqueued;
    }
}

void ctl_instance_ingress_gauges(const struct ctl_instance *in, int64_t now_mono_us,
                                 int64_t *nconns, int64_t *nreqs, int64_t *nqueued)
{
    *nconns = *nreqs = *nqueued = 0;
    /* what is open now, only while its ingress keeps reporting it (it stops when the
     * instance loses its server: stopped, standby, deleted, or the ingress is gone) */
    if (in->ingress_mono_us > 0 && now_mono_us - in->ingress_mono_us < CTL_INGRESS_STALE_US) {
        *nconns = gauge(in->nconns);
        *nreqs = gauge(in->nreqs);
        *nqueued = gauge(in->nqueued);
    }
}

void ctl_instance_metrics(const struct ctl_instance *in, struct nubo_instance_metrics *m)
{
    memset(m, 0, sizeof(*m));
    memcpy(m->uuid, in->row.uuid, sizeof(m->uuid));
    memcpy(m->name, in->row.name, sizeof(m->name));
    enum nubo_state st = ctl_instance_state(in);
    bool live = st == NUBO_STATE_RUNNING || st == NUBO_STATE_DRAINING ||
                st == NUBO_STATE_STOPPING || st == NUBO_STATE_STARTING;
    /* a stopped instance holds no memory (the spec: rss goes down to 0) */
    m->rss_bytes = live ? in->rss_bytes : 0;
    m->cpu_time_ms = in->cpu_time_ms;
    if (in->has_obs) {
        m->boot_time_us = in->obs.boot_time_us;
        m->net_time_us = in->obs.net_time_us;
    }
    ctl_instance_ingress_gauges(in, nubo_mono_us(), &m->nconns, &m->nreqs, &m->nqueued);
    m->ntotal = in->ntotal_base + in->ntotal_last;
}

static json_t *metrics_json(struct ctl_ctx *ctx, const void *obj)
{
    struct nubo_instance_metrics m;
    ctl_instance_metrics(obj, &m);
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

/* Does the client prefer the Prometheus text format? A scraper's Accept lists text/plain (or
 * OpenMetrics) and never application/json; a JSON client, curl's * / * or no header gets JSON. */
static bool wants_text(struct evhttp_request *req)
{
    const char *acc = evhttp_find_header(evhttp_request_get_input_headers(req), "Accept");
    return acc && !strstr(acc, "application/json") &&
           (strstr(acc, "text/plain") || strstr(acc, "application/openmetrics-text"));
}

static const struct {
    const char *name, *type, *help;
} text_series[] = {
    {"nubo_instance_rss_bytes", "gauge", "Resident set size of the instance's VMM (rss_bytes)."},
    {"nubo_instance_cpu_seconds_total", "counter",
     "CPU time of the instance's current run (cpu_time_ms / 1000)."},
    {"nubo_instance_boot_time_seconds", "gauge", "The last start's boot time (boot_time_us)."},
    {"nubo_instance_net_time_seconds", "gauge",
     "The last start's time to the first connect to its port (net_time_us)."},
    {"nubo_instance_connections", "gauge", "Inbound TCP (non-HTTP) connections open (nconns)."},
    {"nubo_instance_requests_in_flight", "gauge", "HTTP requests in flight (nreqs)."},
    {"nubo_instance_queued", "gauge", "Connections and requests queued for it (nqueued)."},
    {"nubo_instance_handled_total", "counter",
     "Inbound connections and HTTP requests handled (ntotal)."},
};

static double text_value(const struct nubo_instance_metrics *m, size_t k)
{
    switch (k) {
    case 0:
        return (double)m->rss_bytes;
    case 1:
        return (double)m->cpu_time_ms / 1e3;
    case 2:
        return (double)m->boot_time_us / 1e6;
    case 3:
        return (double)m->net_time_us / 1e6;
    case 4:
        return (double)m->nconns;
    case 5:
        return (double)m->nreqs;
    case 6:
        return (double)m->nqueued;
    default:
        return (double)m->ntotal;
    }
}

/* The caller's instances (or the one ref names) as Prometheus series; labels uuid and name,
 * which are UUIDs and DNS labels (nothing to escape). */
static int metrics_text(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *ref,
                        struct nubo_err *err)
{
    if (TAILQ_FIRST(ri->query) != NULL || ri->body != NULL)
        return nubo_error_http(err, 400,
                               "%s: the text form takes no look-ups; name one instance in the "
                               "path (/v1/instances/{uuid|name}/metrics) or ask for JSON",
                               ri->path);
    cleanup_free struct nubo_instance_metrics *v = xcalloc(ctx->instances.n + 1, sizeof(*v));
    size_t n = 0;
    if (ref) {
        bool is_uuid = nubo_uuid_valid(ref);
        const struct ctl_instance *in =
            ctl_instance_find(ctx, &ri->user, is_uuid ? ref : "", is_uuid ? "" : ref);
        if (in == NULL)
            return nubo_error_http(err, 404, "instance %s not found", ref);
        ctl_instance_metrics(in, &v[n++]);
    } else {
        cleanup_free struct ctl_instance **mine = xcalloc(ctx->instances.n + 1, sizeof(*mine));
        ctl_map_foreach(&ctx->instances, e)
        {
            struct ctl_instance *in = e->val;
            if (strcmp(in->row.owner, ri->user.name) == 0)
                mine[n++] = in;
        }
        qsort(mine, n, sizeof(*mine), inst_cmp);
        for (size_t i = 0; i < n; i++)
            ctl_instance_metrics(mine[i], &v[i]);
    }
    struct evbuffer *b = xcheck(evbuffer_new(), "metrics buffer");
    for (size_t k = 0; k < sizeof(text_series) / sizeof(text_series[0]); k++) {
        evbuffer_add_printf(b, "# HELP %s %s\n# TYPE %s %s\n", text_series[k].name,
                            text_series[k].help, text_series[k].name, text_series[k].type);
        for (size_t i = 0; i < n; i++)
            evbuffer_add_printf(b, "%s{uuid=\"%s\",name=\"%s\"} %.17g\n", text_series[k].name,
                                v[i].uuid, v[i].name, text_value(&v[i], k));
    }
    ctl_reply_prometheus(ctx, ri->req, ri->route, ri->start_us, b);
    evbuffer_free(b);
    return 0;
}

int ctl_handle_instance_metrics(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *ref,
                                struct nubo_err *err)
{
    ri->route = CTL_R_INST_GET;
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "%s: use GET", ri->path);
    if (wants_text(ri->req))
        return metrics_text(ctx, ri, ref, err);
    return ctl_named_get_delete(ctx, ri, ref, false, &ctx->instances, &metrics_ops, err);
}
