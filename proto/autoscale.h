/* Autoscale of service groups (platform-api.md 1.8): the configuration and its step policies
 * as the API carries them, strict decoders (controller) and lenient ones (CLI), and what a set
 * of step policies asks for given the metrics: the one definition both sides use. */
#ifndef NUBO_PROTO_AUTOSCALE_H
#define NUBO_PROTO_AUTOSCALE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"
#include "service.h"

#define NUBO_AS_MAX_POLICIES 253 /* the spec's maxItems */
#define NUBO_AS_MAX_STEPS 253
#define NUBO_AS_MAX_SIZE 253        /* max_size: as many as one create may make (replicas + 1) */
#define NUBO_AS_TIME_MAX 2147483647 /* warmup/cooldown (int32, the spec's) */
#define NUBO_AS_BOUND_MAX 2147483647
#define NUBO_AS_DEFAULT_MIN 1
#define NUBO_AS_DEFAULT_MAX 4
#define NUBO_AS_DEFAULT_TIME_MS 1000

/* What a policy watches, per instance of the group (averaged over its warm instances):
 * cpu = percent of the instance's vCPUs busy (the agents' cpu_time_ms), inflight_reqs = the
 * requests or connections open to it at the ingress (HAProxy's scur). */
enum nubo_as_metric { NUBO_AS_METRIC_CPU = 0, NUBO_AS_METRIC_INFLIGHT, NUBO_AS_METRIC_N };
/* change: current + adjustment; exact: adjustment; percent: current + current * adj / 100
 * (at least one instance when adj is not 0). */
enum nubo_as_adjust { NUBO_AS_ADJ_CHANGE = 0, NUBO_AS_ADJ_EXACT, NUBO_AS_ADJ_PERCENT };
const char *nubo_as_metric_name(enum nubo_as_metric m);
const char *nubo_as_adjust_name(enum nubo_as_adjust a);

/* A step covers lower_bound <= value < upper_bound; a missing bound is open (not both). */
struct nubo_as_step {
    bool has_lower, has_upper;
    int64_t lower_bound, upper_bound, adjustment;
};

/* A step policy ("on_demand" is the platform's too; nubo refuses it with a message). */
struct nubo_as_policy {
    char name[NUBO_NAME_MAX + 1];
    enum nubo_as_metric metric;
    enum nubo_as_adjust adjustment_type;
    struct nubo_as_step steps[NUBO_AS_MAX_STEPS];
    size_t n_steps;
};

/* A group's configuration. As a create request: the group by uuid or name, master by uuid or
 * name (both empty = the group's oldest instance). As shown: configured false is the spec's
 * "unconfigured" item (only uuid and name then). */
struct nubo_as_config {
    char uuid[NUBO_UUID_STR_LEN + 1]; /* the service group */
    char name[NUBO_NAME_MAX + 1];
    bool configured;
    bool enabled;
    int64_t min_size, max_size; /* 0 <= min <= max <= NUBO_AS_MAX_SIZE, max >= 1 */
    int64_t warmup_time_ms, cooldown_time_ms;
    struct nubo_api_ref master;
    struct nubo_as_policy *policies; /* malloc'd, NULL when none */
    size_t n_policies;
};
void nubo_as_config_init(struct nubo_as_config *c); /* the defaults, configured */
void nubo_as_config_free(struct nubo_as_config *c);

/* POST /v1/services/autoscale: strict (unknown fields, bad ranges, min > max, a bad policy:
 * one-line 400). The spec draws policies inside master; both places are read. */
int nubo_as_config_req_decode(json_t *j, struct nubo_as_config *out, struct nubo_err *err);
json_t *nubo_as_config_req_encode(const struct nubo_as_config *c);

/* POST /v1/services/{uuid}/autoscale/policies (and each of a config's policies): strict. */
int nubo_as_policy_decode(json_t *j, const char *ctx, struct nubo_as_policy *out,
                          struct nubo_err *err);
json_t *nubo_as_policy_encode(const struct nubo_as_policy *p);
/* Lenient (client side). */
int nubo_as_policy_show_decode(json_t *j, struct nubo_as_policy *out, struct nubo_err *err);

/* The spec's autoscale_config item with "status" success or unconfigured. */
json_t *nubo_as_config_encode(const struct nubo_as_config *c);
/* Lenient (client side): unknown fields ignored. */
int nubo_as_config_decode(json_t *j, struct nubo_as_config *out, struct nubo_err *err);

/* ---- the policy math ---- */
/* The group size policy p asks for when its metric reads value and the group has current
 * instances: true with *want when a step covers value, false when none does (no opinion). */
bool nubo_as_policy_want(const struct nubo_as_policy *p, double value, int64_t current,
                         int64_t *want);
/* The size c asks for: the largest want of the policies whose metric is known (have[m]),
 * current when none has an opinion, always within [max(min_size, 1), max_size] (the master is
 * always one of them). */
int64_t nubo_as_desired(const struct nubo_as_config *c, const double value[NUBO_AS_METRIC_N],
                        const bool have[NUBO_AS_METRIC_N], int64_t current);

#endif
