/* Instance metrics codecs: see metrics.h. */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

#include "pjson.h"

#define METRIC_MAX (INT64_C(1) << 62)

json_t *nubo_instance_stats_encode(const struct nubo_instance_stats *s, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:I, s:I}", "uuid", s[i].uuid, "rss_bytes",
                                           (json_int_t)s[i].rss_bytes, "cpu_time_ms",
                                           (json_int_t)s[i].cpu_time_ms));
    return a;
}

int nubo_instance_stats_decode(json_t *a, size_t max, struct nubo_instance_stats **out,
                               size_t *n_out, struct nubo_err *err)
{
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > max)
        return nubo_error_http(err, 400, "stats: must be an array of at most %zu entries", max);
    size_t n = json_array_size(a);
    struct nubo_instance_stats *v = calloc(n + 1, sizeof(*v));
    if (v == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ctx[32];
        snprintf(ctx, sizeof(ctx), "stats[%zu]", i);
        json_t *e = json_array_get(a, i);
        if (!json_is_object(e) ||
            pj_str(e, ctx, "uuid", true, v[i].uuid, sizeof(v[i].uuid), err) < 0 ||
            pj_int(e, ctx, "rss_bytes", true, 0, METRIC_MAX, &v[i].rss_bytes, err) < 0 ||
            pj_int(e, ctx, "cpu_time_ms", true, 0, METRIC_MAX, &v[i].cpu_time_ms, err) < 0 ||
            !nubo_uuid_valid(v[i].uuid)) {
            nubo_error_http(err, 400, "%s: must be {uuid, rss_bytes, cpu_time_ms}", ctx);
            free(v);
            return -1;
        }
    }
    *out = v;
    *n_out = n;
    return 0;
}

json_t *nubo_instance_metrics_encode(const struct nubo_instance_metrics *m)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "status",
                     "success", "uuid", m->uuid, "name", m->name, "rss_bytes",
                     (json_int_t)m->rss_bytes, "cpu_time_ms", (json_int_t)m->cpu_time_ms,
                     "boot_time_us", (json_int_t)m->boot_time_us, "net_time_us",
                     (json_int_t)m->net_time_us, "nconns", (json_int_t)m->nconns, "nreqs",
                     (json_int_t)m->nreqs, "nqueued", (json_int_t)m->nqueued, "ntotal",
                     (json_int_t)m->ntotal);
}

int nubo_instance_metrics_decode(json_t *j, struct nubo_instance_metrics *out,
                                 struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "instance metrics: must be an object");
    if (pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_int(j, "", "rss_bytes", false, 0, METRIC_MAX, &out->rss_bytes, err) < 0 ||
        pj_int(j, "", "cpu_time_ms", false, 0, METRIC_MAX, &out->cpu_time_ms, err) < 0 ||
        pj_int(j, "", "boot_time_us", false, 0, METRIC_MAX, &out->boot_time_us, err) < 0 ||
        pj_int(j, "", "net_time_us", false, 0, METRIC_MAX, &out->net_time_us, err) < 0 ||
        pj_int(j, "", "nconns", false, 0, NUBO_METRICS_GAUGE_MAX, &out->nconns, err) < 0 ||
        pj_int(j, "", "nreqs", false, 0, NUBO_METRICS_GAUGE_MAX, &out->nreqs, err) < 0 ||
        pj_int(j, "", "nqueued", false, 0, NUBO_METRICS_GAUGE_MAX, &out->nqueued, err) < 0 ||
        pj_int(j, "", "ntotal", false, 0, METRIC_MAX, &out->ntotal, err) < 0)
        return -1;
    return 0;
}

void nubo_instance_metrics_free(struct nubo_instance_metrics *m)
{
    (void)m;
}

PJ_LIST_CODEC(nubo_instance_metrics, struct nubo_instance_metrics, nubo_instance_metrics_decode,
              nubo_instance_metrics_free)
