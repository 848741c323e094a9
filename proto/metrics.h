/* Instance metrics on the wire: what an agent measures of its running domains (shipped in the
 * status batches) and GET /v1/instances/metrics' object (the spec's instance_metrics). */
#ifndef NUBO_PROTO_METRICS_H
#define NUBO_PROTO_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "util.h"

/* One running domain as libvirt measures it (status batch "stats"). */
struct nubo_instance_stats {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t rss_bytes;   /* the VMM's resident set */
    int64_t cpu_time_ms; /* CPU time of the current run */
};
json_t *nubo_instance_stats_encode(const struct nubo_instance_stats *s, size_t n);
/* Bounded by max entries; a = NULL or null gives none. */
int nubo_instance_stats_decode(json_t *a, size_t max, struct nubo_instance_stats **out,
                               size_t *n_out, struct nubo_err *err);

/* GET /v1/instances/metrics, one instance. */
struct nubo_instance_metrics {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char name[NUBO_NAME_MAX + 1];
    int64_t rss_bytes, cpu_time_ms;
    int64_t boot_time_us, net_time_us; /* the last start's, 0 = not measured */
    /* from the metro's ingress (HAProxy's per-server counters): TCP connections open, HTTP
     * requests in flight, queued (the spec's int32 fields, at most 65535), and connections
     * plus HTTP requests handled over the instance's life */
    int64_t nconns, nreqs, nqueued, ntotal;
};
#define NUBO_METRICS_GAUGE_MAX 65535 /* nconns, nreqs, nqueued: the spec's maximum */
json_t *nubo_instance_metrics_encode(const struct nubo_instance_metrics *m);
int nubo_instance_metrics_decode(json_t *j, struct nubo_instance_metrics *out,
                                 struct nubo_err *err);
void nubo_instance_metrics_free(struct nubo_instance_metrics *m); /* nothing allocated */
int nubo_instance_metrics_list_decode(json_t *a, size_t max, struct nubo_instance_metrics **out,
                                      size_t *n_out, struct nubo_err *err);
void nubo_instance_metrics_list_free(struct nubo_instance_metrics *v, size_t n);

#endif
