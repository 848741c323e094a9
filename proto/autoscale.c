/* Autoscale configurations and step policies: codecs and the step math (see autoscale.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"
#include "pjson.h"
#include "util.h"
#include "xalloc.h"

#define CTXJ(ctx) (*(ctx) ? "." : "")

static const char *const metric_names[NUBO_AS_METRIC_N] = {"cpu", "inflight_reqs"};
static const char *const adjust_names[] = {"change", "exact", "percent"};

const char *nubo_as_metric_name(enum nubo_as_metric m)
{
    return (unsigned)m < NUBO_AS_METRIC_N ? metric_names[m] : "cpu";
}

const char *nubo_as_adjust_name(enum nubo_as_adjust a)
{
    return (unsigned)a <= NUBO_AS_ADJ_PERCENT ? adjust_names[a] : "change";
}

void nubo_as_config_init(struct nubo_as_config *c)
{
    memset(c, 0, sizeof(*c));
    c->configured = true;
    c->enabled = true;
    c->min_size = NUBO_AS_DEFAULT_MIN;
    c->max_size = NUBO_AS_DEFAULT_MAX;
    c->warmup_time_ms = NUBO_AS_DEFAULT_TIME_MS;
    c->cooldown_time_ms = NUBO_AS_DEFAULT_TIME_MS;
}

void nubo_as_config_free(struct nubo_as_config *c)
{
    free(c->policies);
    c->policies = NULL;
    c->n_policies = 0;
}

/* ---- policies ---- */

static int step_decode(json_t *e, const char *ctx, struct nubo_as_step *out, struct nubo_err *err)
{
    static const char *const keys[] = {"lower_bound", "upper_bound", "adjustment", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return nubo_error_http(err, 400,
                               "%s: must be an object {lower_bound, upper_bound, "
                               "adjustment}",
                               ctx);
    int lo, hi;
    if (pj_only_keys(e, ctx, keys, err) < 0 ||
        (lo = pj_int(e, ctx, "lower_bound", false, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX,
                     &out->lower_bound, err)) < 0 ||
        (hi = pj_int(e, ctx, "upper_bound", false, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX,
                     &out->upper_bound, err)) < 0 ||
        pj_int(e, ctx, "adjustment", true, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX, &out->adjustment,
               err) < 0)
        return -1;
    out->has_lower = lo == 1;
    out->has_upper = hi == 1;
    if (!out->has_lower && !out->has_upper)
        return nubo_error_http(err, 400,
                               "%s: give lower_bound or upper_bound (only one may be "
                               "left open)",
                               ctx);
    if (out->has_lower && out->has_upper && out->lower_bound >= out->upper_bound)
        return nubo_error_http(err, 400, "%s: lower_bound (%lld) must be below upper_bound (%lld)",
                               ctx, (long long)out->lower_bound, (long long)out->upper_bound);
    return 0;
}

/* Do two steps share a value? Bounds are [lower, upper). */
static bool steps_overlap(const struct nubo_as_step *a, const struct nubo_as_step *b)
{
    bool a_below_b = a->has_upper && b->has_lower && a->upper_bound <= b->lower_bound;
    bool b_below_a = b->has_upper && a->has_lower && b->upper_bound <= a->lower_bound;
    return !a_below_b && !b_below_a;
}

static int enum_decode(json_t *j, const char *ctx, const char *key, const char *const *names,
                       size_t n, int dflt, int *out, struct nubo_err *err)
{
    char v[32];
    int rc = pj_str(j, ctx, key, false, v, sizeof(v), err);
    if (rc < 0)
        return -1;
    *out = dflt;
    if (rc == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, names[i]) == 0) {
            *out = (int)i;
            return 0;
        }
    char all[128] = "";
    for (size_t i = 0; i < n; i++)
        snprintf(all + strlen(all), sizeof(all) - strlen(all), "%s%s", i ? ", " : "", names[i]);
    return nubo_error_http(err, 400, "%s%s%s: '%s' is not one of %s", ctx, CTXJ(ctx), key, v, all);
}

int nubo_as_policy_decode(json_t *j, const char *ctx, struct nubo_as_policy *out,
                          struct nubo_err *err)
{
    static const char *const keys[] = {"name", "type", "metric", "adjustment_type", "steps", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400,
                               "%s%smust be an object {name, type, metric, "
                               "adjustment_type, steps}",
                               ctx, *ctx ? ": " : "");
    char type[32];
    if (pj_only_keys(j, ctx, keys, err) < 0 ||
        pj_str(j, ctx, "name", true, out->name, sizeof(out->name), err) < 0 ||
        pj_str(j, ctx, "type", true, type, sizeof(type), err) < 0)
        return -1;
    if (!nubo_name_valid(out->name))
        return nubo_error_http(err, 400,
                               "%s%sname: '%s' must be 1..63 bytes of [a-z0-9-], not starting or "
                               "ending with '-'",
                               ctx, CTXJ(ctx), out->name);
    if (strcmp(type, "step") != 0)
        return nubo_error_http(err, 400,
                               "%s%stype: '%s' is not supported; nubo scales by step "
                               "policies (\"step\")",
                               ctx, CTXJ(ctx), type);
    int m, a;
    if (enum_decode(j, ctx, "metric", metric_names, NUBO_AS_METRIC_N, NUBO_AS_METRIC_CPU, &m, err) <
            0 ||
        enum_decode(j, ctx, "adjustment_type", adjust_names, 3, NUBO_AS_ADJ_CHANGE, &a, err) < 0)
        return -1;
    out->metric = (enum nubo_as_metric)m;
    out->adjustment_type = (enum nubo_as_adjust)a;
    char c[96];
    snprintf(c, sizeof(c), "%s%ssteps", ctx, CTXJ(ctx));
    json_t *s = json_object_get(j, "steps");
    if (json_is_object(s)) { /* the spec draws steps as one step object */
        if (step_decode(s, c, &out->steps[0], err) < 0)
            return -1;
        out->n_steps = 1;
        return 0;
    }
    if (!json_is_array(s) || json_array_size(s) == 0 || json_array_size(s) > NUBO_AS_MAX_STEPS)
        return nubo_error_http(err, 400,
                               "%s: give 1..%d steps [{lower_bound, upper_bound, "
                               "adjustment}]",
                               c, NUBO_AS_MAX_STEPS);
    size_t i;
    json_t *e;
    json_array_foreach(s, i, e) {
        char ci[136];
        snprintf(ci, sizeof(ci), "%s[%zu]", c, i);
        if (step_decode(e, ci, &out->steps[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (steps_overlap(&out->steps[k], &out->steps[i]))
                return nubo_error_http(err, 400,
                                       "%s: overlaps %s[%zu]; steps must not share a "
                                       "value",
                                       ci, c, k);
        out->n_steps = i + 1;
    }
    return 0;
}

json_t *nubo_as_policy_encode(const struct nubo_as_policy *p)
{
    json_t *steps = json_array();
    for (size_t i = 0; steps && i < p->n_steps; i++) {
        const struct nubo_as_step *s = &p->steps[i];
        json_t *o = json_pack("{s:I}", "adjustment", (json_int_t)s->adjustment);
        if (s->has_lower)
            json_object_set_new(o, "lower_bound", json_integer(s->lower_bound));
        if (s->has_upper)
            json_object_set_new(o, "upper_bound", json_integer(s->upper_bound));
        json_array_append_new(steps, o);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", p->name, "type", "step", "metric",
                     nubo_as_metric_name(p->metric), "adjustment_type",
                     nubo_as_adjust_name(p->adjustment_type), "steps", steps);
}

int nubo_as_policy_show_decode(json_t *j, struct nubo_as_policy *out, struct nubo_err *err)
{
    /* what the controller encodes is what it decodes strictly; "status" rides along in replies */
    json_t *c = json_deep_copy(j);
    if (json_is_object(c))
        json_object_del(c, "status");
    int rc = nubo_as_policy_decode(c, "", out, err);
    json_decref(c);
    return rc;
}

/* ---- configurations ---- */

static int size_check(const struct nubo_as_config *c, struct nubo_err *err)
{
    if (c->min_size > c->max_size)
        return nubo_error_http(err, 400, "min_size (%lld) must not exceed max_size (%lld)",
                               (long long)c->min_size, (long long)c->max_size);
    return 0;
}

static int policies_decode(json_t *a, const char *ctx, struct nubo_as_config *out,
                           struct nubo_err *err)
{
    if (json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > NUBO_AS_MAX_POLICIES)
        return nubo_error_http(err, 400, "%s: an array of at most %d policies", ctx,
                               NUBO_AS_MAX_POLICIES);
    out->policies = xcalloc(json_array_size(a) + 1, sizeof(*out->policies));
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        char c[48];
        snprintf(c, sizeof(c), "%s[%zu]", ctx, i);
        if (nubo_as_policy_decode(e, c, &out->policies[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(out->policies[k].name, out->policies[i].name) == 0)
                return nubo_error_http(err, 400, "%s.name: policy '%s' is listed twice", c,
                                       out->policies[i].name);
        out->n_policies = i + 1;
    }
    return 0;
}

int nubo_as_config_req_decode(json_t *j, struct nubo_as_config *out, struct nubo_err *err)
{
    static const char *const keys[] = {"uuid",     "name",           "min_size",
                                       "max_size", "warmup_time_ms", "cooldown_time_ms",
                                       "master",   "policies",       NULL};
    static const char *const mkeys[] = {"uuid", "name", "policies", NULL};
    nubo_as_config_init(out);
    if (!json_is_object(j))
        return nubo_error_http(err, 400,
                               "autoscale: send an object {uuid|name, min_size, "
                               "max_size, master, policies, ...}");
    json_t *m = NULL;
    int rc = 0;
    if (pj_only_keys(j, "", keys, err) < 0 ||
        pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_int(j, "", "min_size", false, 0, NUBO_AS_MAX_SIZE, &out->min_size, err) < 0 ||
        pj_int(j, "", "max_size", false, 1, NUBO_AS_MAX_SIZE, &out->max_size, err) < 0 ||
        pj_int(j, "", "warmup_time_ms", false, 1, NUBO_AS_TIME_MAX, &out->warmup_time_ms, err) <
            0 ||
        pj_int(j, "", "cooldown_time_ms", false, 1, NUBO_AS_TIME_MAX, &out->cooldown_time_ms, err) <
            0 ||
        (rc = pj_object(j, "", "master", false, &m, err)) < 0)
        goto fail;
    if (!out->uuid[0] && !out->name[0]) {
        nubo_error_http(err, 400, "autoscale: name the service group by uuid or name");
        goto fail;
    }
    if (out->uuid[0] && out->name[0]) {
        nubo_error_http(err, 400,
                        "autoscale: give the service group's uuid or its name, not "
                        "both");
        goto fail;
    }
    if (m &&
        (pj_only_keys(m, "master", mkeys, err) < 0 ||
         pj_str(m, "master", "uuid", false, out->master.uuid, sizeof(out->master.uuid), err) < 0 ||
         pj_str(m, "master", "name", false, out->master.name, sizeof(out->master.name), err) < 0))
        goto fail;
    json_t *p = json_object_get(j, "policies"), *mp = m ? json_object_get(m, "policies") : NULL;
    if (p && mp && !json_is_null(p) && !json_is_null(mp)) {
        nubo_error_http(err, 400,
                        "policies: give them at the top level or inside master, not "
                        "both");
        goto fail;
    }
    if ((p || mp) && policies_decode(p ? p : mp, p ? "policies" : "master.policies", out, err) < 0)
        goto fail;
    if (size_check(out, err) < 0)
        goto fail;
    return 0;
fail:
    nubo_as_config_free(out);
    return -1;
}

static json_t *policies_encode(const struct nubo_as_config *c)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < c->n_policies; i++)
        json_array_append_new(a, nubo_as_policy_encode(&c->policies[i]));
    return a;
}

json_t *nubo_as_config_req_encode(const struct nubo_as_config *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:o}", "min_size", (json_int_t)c->min_size,
                          "max_size", (json_int_t)c->max_size, "warmup_time_ms",
                          (json_int_t)c->warmup_time_ms, "cooldown_time_ms",
                          (json_int_t)c->cooldown_time_ms, "policies", policies_encode(c));
    if (o == NULL)
        return NULL;
    if (c->uuid[0])
        json_object_set_new(o, "uuid", json_string(c->uuid));
    else
        json_object_set_new(o, "name", json_string(c->name));
    if (c->master.uuid[0] || c->master.name[0]) {
        json_t *m = json_object();
        if (c->master.uuid[0])
            json_object_set_new(m, "uuid", json_string(c->master.uuid));
        else
            json_object_set_new(m, "name", json_string(c->master.name));
        json_object_set_new(o, "master", m);
    }
    return o;
}

json_t *nubo_as_config_encode(const struct nubo_as_config *c)
{
    if (!c->configured)
        return json_pack("{s:s, s:s, s:s, s:b}", "status", "unconfigured", "uuid", c->uuid, "name",
                         c->name, "enabled", 0);
    return json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:I, s:I, s:o, s:o}", "status", "success",
                     "uuid", c->uuid, "name", c->name, "enabled", c->enabled, "min_size",
                     (json_int_t)c->min_size, "max_size", (json_int_t)c->max_size, "warmup_time_ms",
                     (json_int_t)c->warmup_time_ms, "cooldown_time_ms",
                     (json_int_t)c->cooldown_time_ms, "master", nubo_api_ref_encode(&c->master),
                     "policies", policies_encode(c));
}

int nubo_as_config_decode(json_t *j, struct nubo_as_config *out, struct nubo_err *err)
{
    nubo_as_config_init(out);
    if (!json_is_object(j))
        return nubo_error_http(err, 502, "autoscale configuration: not an object");
    const char *st = json_string_value(json_object_get(j, "status"));
    out->configured = st == NULL || strcmp(st, "success") == 0;
    json_t *m = json_object_get(j, "master");
    if (pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_bool(j, "", "enabled", false, &out->enabled, err) < 0 ||
        pj_int(j, "", "min_size", false, 0, NUBO_AS_MAX_SIZE, &out->min_size, err) < 0 ||
        pj_int(j, "", "max_size", false, 0, NUBO_AS_MAX_SIZE, &out->max_size, err) < 0 ||
        pj_int(j, "", "warmup_time_ms", false, 0, NUBO_AS_TIME_MAX, &out->warmup_time_ms, err) <
            0 ||
        pj_int(j, "", "cooldown_time_ms", false, 0, NUBO_AS_TIME_MAX, &out->cooldown_time_ms, err) <
            0 ||
        (json_is_object(m) &&
         (pj_str(m, "master", "uuid", false, out->master.uuid, sizeof(out->master.uuid), err) < 0 ||
          pj_str(m, "master", "name", false, out->master.name, sizeof(out->master.name), err) <
              0))) {
        err->http_status = 502;
        return -1;
    }
    json_t *p = json_object_get(j, "policies");
    if (json_is_array(p) && json_array_size(p) > 0) {
        if (json_array_size(p) > NUBO_AS_MAX_POLICIES)
            return nubo_error_http(err, 502, "autoscale configuration: too many policies");
        out->policies = xcalloc(json_array_size(p), sizeof(*out->policies));
        size_t i;
        json_t *e;
        json_array_foreach(p, i, e) {
            if (nubo_as_policy_show_decode(e, &out->policies[i], err) < 0) {
                nubo_as_config_free(out);
                return nubo_error_wrap(err, "policies[%zu]", i);
            }
            out->n_policies = i + 1;
        }
    }
    return 0;
}

/* ---- the math ---- */

bool nubo_as_policy_want(const struct nubo_as_policy *p, double value, int64_t current,
                         int64_t *want)
{
    for (size_t i = 0; i < p->n_steps; i++) {
        const struct nubo_as_step *s = &p->steps[i];
        if ((s->has_lower && value < (double)s->lower_bound) ||
            (s->has_upper && value >= (double)s->upper_bound))
            continue;
        int64_t adj = s->adjustment;
        switch (p->adjustment_type) {
        case NUBO_AS_ADJ_EXACT:
            *want = adj;
            break;
        case NUBO_AS_ADJ_PERCENT: {
            int64_t d = current * adj / 100; /* toward zero ... */
            if (d == 0 && adj != 0)
                d = adj > 0 ? 1 : -1; /* ... but a percentage that asks moves by one at least */
            *want = current + d;
            break;
        }
        default:
            *want = current + adj;
        }
        return true;
    }
    return false;
}

int64_t nubo_as_desired(const struct nubo_as_config *c, const double value[NUBO_AS_METRIC_N],
                        const bool have[NUBO_AS_METRIC_N], int64_t current)
{
    bool any = false;
    int64_t best = 0;
    for (size_t i = 0; i < c->n_policies; i++) {
        const struct nubo_as_policy *p = &c->policies[i];
        int64_t w;
        if ((unsigned)p->metric >= NUBO_AS_METRIC_N || !have[p->metric] ||
            !isfinite(value[p->metric]) || !nubo_as_policy_want(p, value[p->metric], current, &w))
            continue;
        /* several policies: the one asking for the most wins (scaling out is the safe side) */
        if (!any || w > best)
            best = w;
        any = true;
    }
    int64_t d = any ? best : current;
    int64_t lo = c->min_size > 1 ? c->min_size : 1;
    if (d > c->max_size)
        d = c->max_size;
    if (d < lo)
        d = lo;
    return d;
}
