/* Codecs for the controller <-> agent protocol (PROTOCOL.md); see agent.h. */
#include "agent.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[NUBO_STATE__COUNT] = {
    "stopped", "starting", "running", "draining", "stopping", "standby", "unavailable",
};

const char *nubo_state_name(enum nubo_state s)
{
    return (unsigned)s < NUBO_STATE__COUNT ? state_names[s] : "unknown";
}

int nubo_state_parse(const char *s, enum nubo_state *out)
{
    for (int i = 0; i < NUBO_STATE__COUNT; i++)
        if (strcmp(s, state_names[i]) == 0) {
            *out = (enum nubo_state)i;
            return 0;
        }
    return -1;
}

const char *nubo_desired_name(enum nubo_desired d)
{
    return d == NUBO_DESIRED_STOPPED ? "stopped" : "running";
}

int nubo_desired_parse(const char *s, enum nubo_desired *out)
{
    if (strcmp(s, "running") == 0)
        *out = NUBO_DESIRED_RUNNING;
    else if (strcmp(s, "stopped") == 0)
        *out = NUBO_DESIRED_STOPPED;
    else
        return -1;
    return 0;
}

static const char *const policy_names[] = {"never", "always", "on-failure"};

const char *nubo_restart_policy_name(enum nubo_restart_policy p)
{
    return (unsigned)p < 3 ? policy_names[p] : "never";
}

int nubo_restart_policy_parse(const char *s, enum nubo_restart_policy *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, policy_names[i]) == 0) {
            *out = (enum nubo_restart_policy)i;
            return 0;
        }
    return -1;
}

bool nubo_ipv4_valid(const char *s)
{
    struct in_addr a;
    return s && strlen(s) < NUBO_IP_STR_MAX && inet_pton(AF_INET, s, &a) == 1;
}

bool nubo_cidr_valid(const char *s)
{
    if (s == NULL || strlen(s) >= NUBO_CIDR_STR_MAX)
        return false;
    char buf[NUBO_CIDR_STR_MAX];
    snprintf(buf, sizeof(buf), "%s", s);
    char *slash = strchr(buf, '/');
    if (slash == NULL)
        return false;
    *slash = '\0';
    int64_t n;
    return nubo_ipv4_valid(buf) && nubo_parse_int(slash + 1, 8, 30, &n, NULL) == 0;
}

json_t *nubo_error_envelope(const char *msg)
{
    return json_pack("{s:s, s:s}", "status", "error", "message", msg ? msg : "");
}

const char *nubo_error_envelope_message(json_t *j)
{
    json_t *m = json_object_get(j, "message");
    return json_is_string(m) ? json_string_value(m) : NULL;
}

static void set_opt_int(json_t *o, const char *key, bool has, int64_t v)
{
    json_object_set_new(o, key, has ? json_integer(v) : json_null());
}

/* ---- status report ------------------------------------------------------------------- */

json_t *nubo_status_report_encode(const struct nubo_status_report *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "uuid", json_string(r->uuid));
    json_object_set_new(o, "state", json_string(nubo_state_name(r->state)));
    json_object_set_new(o, "start_seq", json_integer(r->start_seq));
    json_object_set_new(o, "boot_time_us", json_integer(r->boot_time_us));
    json_object_set_new(o, "net_time_us", json_integer(r->net_time_us));
    json_object_set_new(o, "phases_us",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "image",
                                  (json_int_t)r->phases.image_us, "domain",
                                  (json_int_t)r->phases.domain_us, "vmm",
                                  (json_int_t)r->phases.vmm_us, "guest",
                                  (json_int_t)r->phases.guest_us, "slot",
                                  (json_int_t)r->phases.slot_us, "copy",
                                  (json_int_t)r->phases.copy_us));
    json_object_set_new(o, "start_count", json_integer(r->start_count));
    json_object_set_new(o, "restart_count", json_integer(r->restart_count));
    json_object_set_new(o, "started_at", pj_time_new(r->started_at_us));
    json_object_set_new(o, "stopped_at", pj_time_new(r->stopped_at_us));
    json_object_set_new(o, "stop_reason", json_integer(r->stop_reason));
    set_opt_int(o, "exit_code", r->has_exit_code, r->exit_code);
    set_opt_int(o, "stop_code", r->has_stop_code, r->stop_code);
    json_object_set_new(o, "restart",
                        json_pack("{s:I, s:o}", "attempt", (json_int_t)r->restart_attempt,
                                  "next_at", pj_time_new(r->restart_next_at_us)));
    if (r->s2z_disable)
        json_object_set_new(o, "scale_to_zero_disable", json_integer(r->s2z_disable));
    if (r->message)
        json_object_set_new(o, "message", json_string(r->message));
    return o;
}

void nubo_status_report_free(struct nubo_status_report *r)
{
    if (r == NULL)
        return;
    free(r->message);
    r->message = NULL;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            goto fail;                                                                             \
    } while (0)

int nubo_status_report_decode(json_t *j, const char *ctx, struct nubo_status_report *out,
                              struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    char state[16];
    TRY(pj_str(j, ctx, "uuid", true, out->uuid, sizeof(out->uuid), err));
    if (!nubo_uuid_valid(out->uuid)) {
        nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", ctx, out->uuid);
        goto fail;
    }
    TRY(pj_str(j, ctx, "state", true, state, sizeof(state), err));
    if (nubo_state_parse(state, &out->state) < 0 || out->state == NUBO_STATE_STANDBY ||
        out->state == NUBO_STATE_UNAVAILABLE) {
        nubo_error_http(err, 400,
                        "%s.state: '%s' is not one of starting, running, draining, stopping, "
                        "stopped",
                        ctx, state);
        goto fail;
    }
    const int64_t big = INT64_C(1) << 53;
    TRY(pj_int(j, ctx, "start_seq", false, 0, big, &out->start_seq, err));
    TRY(pj_int(j, ctx, "boot_time_us", false, 0, big, &out->boot_time_us, err));
    TRY(pj_int(j, ctx, "net_time_us", false, 0, big, &out->net_time_us, err));
    json_t *ph = json_object_get(j, "phases_us");
    if (ph && !json_is_null(ph)) {
        char pctx[80];
        snprintf(pctx, sizeof(pctx), "%s%sphases_us", ctx, ctx[0] ? "." : "");
        if (!json_is_object(ph)) {
            nubo_error_http(err, 400, "%s: must be an object", pctx);
            goto fail;
        }
        TRY(pj_int(ph, pctx, "image", false, 0, big, &out->phases.image_us, err));
        TRY(pj_int(ph, pctx, "domain", false, 0, big, &out->phases.domain_us, err));
        TRY(pj_int(ph, pctx, "vmm", false, 0, big, &out->phases.vmm_us, err));
        TRY(pj_int(ph, pctx, "guest", false, 0, big, &out->phases.guest_us, err));
        TRY(pj_int(ph, pctx, "slot", false, 0, big, &out->phases.slot_us, err));
        TRY(pj_int(ph, pctx, "copy", false, 0, big, &out->phases.copy_us, err));
    }
    TRY(pj_int(j, ctx, "start_count", false, 0, big, &out->start_count, err));
    TRY(pj_int(j, ctx, "restart_count", false, 0, big, &out->restart_count, err));
    TRY(pj_time(j, ctx, "started_at", false, &out->started_at_us, err));
    TRY(pj_time(j, ctx, "stopped_at", false, &out->stopped_at_us, err));
    TRY(pj_int(j, ctx, "stop_reason", false, 0, 31, &out->stop_reason, err));
    int rc = pj_int(j, ctx, "exit_code", false, INT32_MIN, INT32_MAX, &out->exit_code, err);
    TRY(rc);
    out->has_exit_code = rc == 1;
    rc = pj_int(j, ctx, "stop_code", false, 0, UINT32_MAX, &out->stop_code, err);
    TRY(rc);
    out->has_stop_code = rc == 1;
    json_t *rs = json_object_get(j, "restart");
    if (rs && !json_is_null(rs)) {
        char rctx[80];
        snprintf(rctx, sizeof(rctx), "%s%srestart", ctx, ctx[0] ? "." : "");
        if (!json_is_object(rs)) {
            nubo_error_http(err, 400, "%s: must be an object", rctx);
            goto fail;
        }
        TRY(pj_int(rs, rctx, "attempt", false, 0, 1 << 30, &out->restart_attempt, err));
        TRY(pj_time(rs, rctx, "next_at", false, &out->restart_next_at_us, err));
    }
    TRY(pj_int(j, ctx, "scale_to_zero_disable", false, 0, INT32_MAX, &out->s2z_disable, err));
    TRY(pj_strdup(j, ctx, "message", false, NUBO_AGENT_MAX_MESSAGE, &out->message, err));
    return 0;
fail:
    nubo_status_report_free(out);
    return -1;
}

static int decode_reports(json_t *j, const char *key, bool required,
                          struct nubo_status_report **out, size_t *n_out, struct nubo_err *err)
{
    json_t *a = json_object_get(j, key);
    *out = NULL;
    *n_out = 0;
    if (a == NULL || json_is_null(a)) {
        if (required)
            return nubo_error_http(err, 400, "%s: missing required field", key);
        return 0;
    }
    if (!json_is_array(a) || json_array_size(a) > NUBO_AGENT_MAX_INSTANCES)
        return nubo_error_http(err, 400, "%s: must be an array of at most %u status reports", key,
                               NUBO_AGENT_MAX_INSTANCES);
    size_t n = json_array_size(a);
    struct nubo_status_report *r = calloc(n + 1, sizeof(*r));
    if (r == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "%s[%zu]", key, i);
        if (nubo_status_report_decode(json_array_get(a, i), ctx, &r[i], err) < 0) {
            for (size_t k = 0; k < i; k++)
                nubo_status_report_free(&r[k]);
            free(r);
            return -1;
        }
    }
    *out = r;
    *n_out = n;
    return 0;
}

static void free_reports(struct nubo_status_report *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++)
        nubo_status_report_free(&r[i]);
    free(r);
}

static json_t *encode_reports(const struct nubo_status_report *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, nubo_status_report_encode(&r[i]));
    return a;
}

/* ---- register ------------------------------------------------------------------------ */

json_t *nubo_register_req_encode(const struct nubo_register_req *r)
{
    json_t *o =
        json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s, s:s}", "name", r->name, "metro", r->metro,
                  "memory_mb", (json_int_t)r->memory_mb, "vcpus", (json_int_t)r->vcpus, "accel",
                  r->accel, "libvirt_version", r->libvirt_version, "qemu_version", r->qemu_version,
                  "agent_version", r->agent_version);
    if (o)
        json_object_set_new(o, "instances", encode_reports(r->instances, r->n_instances));
    if (o && r->guest_cpu[0])
        json_object_set_new(o, "guest_cpu", json_string(r->guest_cpu));
    if (o && r->volume_mb > 0) {
        json_object_set_new(o, "volume_mb", json_integer(r->volume_mb));
        json_object_set_new(o, "volumes", nubo_volume_reports_encode(r->volumes, r->n_volumes));
    }
    if (o && r->register_key[0])
        json_object_set_new(o, "register_key", json_string(r->register_key));
    return o;
}

bool nubo_register_key_valid(const char *k)
{
    size_t n = strlen(k);
    if (n < NUBO_REGISTER_KEY_MIN || n >= NUBO_REGISTER_KEY_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((k[i] >= 'a' && k[i] <= 'z') || (k[i] >= 'A' && k[i] <= 'Z') ||
              (k[i] >= '0' && k[i] <= '9') || k[i] == '_' || k[i] == '-'))
            return false;
    return true;
}

int nubo_register_req_decode(json_t *j, struct nubo_register_req *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "register: body must be a JSON object");
    TRY(pj_str(j, "", "name", true, out->name, sizeof(out->name), err));
    if (!nubo_name_valid(out->name))
        return nubo_error_http(
            err, 400, "name: '%s' must be 1..63 characters of [a-z0-9-] (node name)", out->name);
    TRY(pj_str(j, "", "metro", true, out->metro, sizeof(out->metro), err));
    if (!nubo_name_valid(out->metro))
        return nubo_error_http(err, 400, "metro: '%s' must be 1..63 characters of [a-z0-9-]",
                               out->metro);
    TRY(pj_int(j, "", "memory_mb", true, 16, INT64_C(1) << 32, &out->memory_mb, err));
    TRY(pj_int(j, "", "vcpus", true, 1, 4096, &out->vcpus, err));
    TRY(pj_str(j, "", "accel", false, out->accel, sizeof(out->accel), err));
    if (out->accel[0] == '\0')
        snprintf(out->accel, sizeof(out->accel), "tcg");
    if (strcmp(out->accel, "kvm") != 0 && strcmp(out->accel, "tcg") != 0)
        return nubo_error_http(err, 400, "accel: '%s' is not kvm or tcg", out->accel);
    TRY(pj_str(j, "", "guest_cpu", false, out->guest_cpu, sizeof(out->guest_cpu), err));
    TRY(pj_str(j, "", "libvirt_version", false, out->libvirt_version, sizeof(out->libvirt_version),
               err));
    TRY(pj_str(j, "", "qemu_version", false, out->qemu_version, sizeof(out->qemu_version), err));
    TRY(pj_str(j, "", "agent_version", false, out->agent_version, sizeof(out->agent_version), err));
    TRY(decode_reports(j, "instances", false, &out->instances, &out->n_instances, err));
    TRY(pj_int(j, "", "volume_mb", false, 0, INT64_C(1) << 40, &out->volume_mb, err));
    TRY(pj_str(j, "", "register_key", false, out->register_key, sizeof(out->register_key), err));
    if (out->register_key[0] && !nubo_register_key_valid(out->register_key)) {
        nubo_error_http(err, 400, "register_key: must be %d..%d characters of [A-Za-z0-9_-]",
                        NUBO_REGISTER_KEY_MIN, NUBO_REGISTER_KEY_MAX - 1);
        goto fail;
    }
    if (nubo_volume_reports_decode(json_object_get(j, "volumes"), "volumes", &out->volumes,
                                   &out->n_volumes, err) < 0) {
        nubo_register_req_free(out);
        return -1;
    }
    return 0;
fail:
    nubo_register_req_free(out);
    return -1;
}

void nubo_register_req_free(struct nubo_register_req *r)
{
    if (r == NULL)
        return;
    free_reports(r->instances, r->n_instances);
    r->instances = NULL;
    r->n_instances = 0;
    free(r->volumes);
    r->volumes = NULL;
    r->n_volumes = 0;
}

json_t *nubo_register_resp_encode(const struct nubo_register_resp *r)
{
    return json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s}, s:s, s:I, s:I}", "node", "uuid",
                     r->node.uuid, "name", r->node.name, "metro", r->node.metro, "subnet",
                     r->node.subnet, "gateway", r->node.gateway, "dns", r->node.dns, "token",
                     r->token, "heartbeat_interval_ms", (json_int_t)r->heartbeat_interval_ms,
                     "grace_ms", (json_int_t)r->grace_ms);
}

int nubo_register_resp_decode(json_t *j, struct nubo_register_resp *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "register response: must be a JSON object");
    json_t *n = json_object_get(j, "node");
    if (!json_is_object(n))
        return nubo_error_http(err, 400, "node: missing or not an object");
    struct nubo_node_info *ni = &out->node;
    TRY(pj_str(n, "node", "uuid", true, ni->uuid, sizeof(ni->uuid), err));
    TRY(pj_str(n, "node", "name", true, ni->name, sizeof(ni->name), err));
    TRY(pj_str(n, "node", "metro", true, ni->metro, sizeof(ni->metro), err));
    TRY(pj_str(n, "node", "subnet", true, ni->subnet, sizeof(ni->subnet), err));
    TRY(pj_str(n, "node", "gateway", true, ni->gateway, sizeof(ni->gateway), err));
    TRY(pj_str(n, "node", "dns", false, ni->dns, sizeof(ni->dns), err));
    if (!nubo_uuid_valid(ni->uuid) || !nubo_cidr_valid(ni->subnet) ||
        !nubo_ipv4_valid(ni->gateway) || (ni->dns[0] && !nubo_ipv4_valid(ni->dns)))
        return nubo_error_http(err, 400, "node: uuid, subnet, gateway or dns malformed");
    if (ni->dns[0] == '\0')
        memcpy(ni->dns, ni->gateway, sizeof(ni->dns));
    TRY(pj_str(j, "", "token", true, out->token, sizeof(out->token), err));
    if (out->token[0] == '\0')
        return nubo_error_http(err, 400, "token: must not be empty");
    out->heartbeat_interval_ms = 2000;
    out->grace_ms = 10000;
    TRY(pj_int(j, "", "heartbeat_interval_ms", false, 10, 3600000, &out->heartbeat_interval_ms,
               err));
    TRY(pj_int(j, "", "grace_ms", false, 10, 86400000, &out->grace_ms, err));
    return 0;
fail:
    return -1;
}

/* ---- watch --------------------------------------------------------------------------- */

json_t *nubo_assignment_encode(const struct nubo_assignment *a)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "uuid", json_string(a->uuid));
    json_object_set_new(o, "name", json_string(a->name));
    json_object_set_new(o, "image", json_string(a->image));
    json_object_set_new(o, "memory_mb", json_integer(a->memory_mb));
    json_object_set_new(o, "vcpus", json_integer(a->vcpus));
    json_object_set_new(o, "args", pj_strv_new(a->args, a->n_args));
    json_object_set_new(o, "env", pj_env_new(a->env, a->n_env));
    json_object_set_new(o, "desired_state", json_string(nubo_desired_name(a->desired_state)));
    json_object_set_new(o, "restart_policy",
                        json_string(nubo_restart_policy_name(a->restart_policy)));
    json_object_set_new(o, "private_ip", json_string(a->private_ip));
    json_object_set_new(o, "prefix", json_integer(a->prefix));
    json_object_set_new(o, "gateway", json_string(a->gateway));
    json_object_set_new(o, "dns", json_string(a->dns));
    json_t *ports = json_array();
    for (size_t i = 0; ports && i < a->n_service_ports; i++)
        json_array_append_new(ports, json_integer(a->service_ports[i]));
    json_object_set_new(o, "service_ports", ports);
    json_object_set_new(o, "start_seq", json_integer(a->start_seq));
    json_object_set_new(o, "stop",
                        json_pack("{s:b, s:b, s:I}", "force", a->stop_force, "save",
                                  a->stop_save, "drain_timeout_ms",
                                  (json_int_t)a->stop_drain_timeout_ms));
    if (a->n_volumes)
        json_object_set_new(o, "volumes", nubo_volume_mounts_encode(a->volumes, a->n_volumes));
    return o;
}

void nubo_assignment_free(struct nubo_assignment *a)
{
    if (a == NULL)
        return;
    pj_strv_free(a->args, a->n_args);
    pj_env_free(a->env, a->n_env);
    free(a->service_ports);
    free(a->volumes);
    a->args = NULL;
    a->env = NULL;
    a->service_ports = NULL;
    a->volumes = NULL;
    a->n_args = a->n_env = a->n_service_ports = a->n_volumes = 0;
}

int nubo_assignment_copy(struct nubo_assignment *dst, const struct nubo_assignment *src)
{
    *dst = *src;
    dst->args = pj_strv_dup(src->args, src->n_args);
    dst->env = pj_env_dup(src->env, src->n_env);
    dst->service_ports = calloc(src->n_service_ports + 1, sizeof(*dst->service_ports));
    dst->volumes = calloc(src->n_volumes + 1, sizeof(*dst->volumes));
    if (dst->volumes && src->n_volumes)
        memcpy(dst->volumes, src->volumes, src->n_volumes * sizeof(*dst->volumes));
    if (!dst->args || !dst->env || !dst->service_ports || !dst->volumes) {
        nubo_assignment_free(dst);
        return -1;
    }
    if (src->n_service_ports)
        memcpy(dst->service_ports, src->service_ports,
               src->n_service_ports * sizeof(*dst->service_ports));
    return 0;
}

int nubo_assignment_decode(json_t *j, const char *ctx, struct nubo_assignment *out,
                           struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    char buf[16];
    TRY(pj_str(j, ctx, "uuid", true, out->uuid, sizeof(out->uuid), err));
    if (!nubo_uuid_valid(out->uuid)) {
        nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", ctx, out->uuid);
        goto fail;
    }
    TRY(pj_str(j, ctx, "name", true, out->name, sizeof(out->name), err));
    TRY(pj_str(j, ctx, "image", true, out->image, sizeof(out->image), err));
    TRY(pj_int(j, ctx, "memory_mb", true, 1, INT64_C(1) << 32, &out->memory_mb, err));
    TRY(pj_int(j, ctx, "vcpus", true, 1, 4096, &out->vcpus, err));
    TRY(pj_strv(j, ctx, "args", false, NUBO_AGENT_MAX_ARGS, NUBO_AGENT_MAX_STR, &out->args,
                &out->n_args, err));
    TRY(pj_env(j, ctx, "env", false, NUBO_AGENT_MAX_ENV, NUBO_AGENT_MAX_STR, &out->env, &out->n_env,
               err));
    TRY(pj_str(j, ctx, "desired_state", true, buf, sizeof(buf), err));
    if (nubo_desired_parse(buf, &out->desired_state) < 0) {
        nubo_error_http(err, 400, "%s.desired_state: '%s' is not running or stopped", ctx, buf);
        goto fail;
    }
    snprintf(buf, sizeof(buf), "never");
    TRY(pj_str(j, ctx, "restart_policy", false, buf, sizeof(buf), err));
    if (nubo_restart_policy_parse(buf, &out->restart_policy) < 0) {
        nubo_error_http(err, 400, "%s.restart_policy: '%s' is not never, always or on-failure", ctx,
                        buf);
        goto fail;
    }
    TRY(pj_str(j, ctx, "private_ip", true, out->private_ip, sizeof(out->private_ip), err));
    TRY(pj_int(j, ctx, "prefix", true, 8, 30, &out->prefix, err));
    TRY(pj_str(j, ctx, "gateway", true, out->gateway, sizeof(out->gateway), err));
    TRY(pj_str(j, ctx, "dns", false, out->dns, sizeof(out->dns), err));
    if (out->dns[0] == '\0')
        memcpy(out->dns, out->gateway, sizeof(out->dns));
    if (!nubo_ipv4_valid(out->private_ip) || !nubo_ipv4_valid(out->gateway) ||
        !nubo_ipv4_valid(out->dns)) {
        nubo_error_http(err, 400, "%s: private_ip, gateway or dns is not an IPv4 address", ctx);
        goto fail;
    }
    json_t *ports = json_object_get(j, "service_ports");
    if (ports && !json_is_null(ports)) {
        if (!json_is_array(ports) || json_array_size(ports) > NUBO_AGENT_MAX_PORTS) {
            nubo_error_http(err, 400, "%s.service_ports: must be an array of at most %d ports", ctx,
                            NUBO_AGENT_MAX_PORTS);
            goto fail;
        }
        out->service_ports = calloc(json_array_size(ports) + 1, sizeof(int64_t));
        if (out->service_ports == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto fail;
        }
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p)
        {
            if (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535) {
                nubo_error_http(err, 400, "%s.service_ports[%zu]: must be a port 1..65535", ctx, i);
                goto fail;
            }
            out->service_ports[out->n_service_ports++] = json_integer_value(p);
        }
    }
    TRY(pj_int(j, ctx, "start_seq", false, 0, INT64_C(1) << 53, &out->start_seq, err));
    json_t *st = json_object_get(j, "stop");
    if (st && !json_is_null(st)) {
        char sctx[80];
        snprintf(sctx, sizeof(sctx), "%s.stop", ctx);
        if (!json_is_object(st)) {
            nubo_error_http(err, 400, "%s: must be an object", sctx);
            goto fail;
        }
        TRY(pj_bool(st, sctx, "force", false, &out->stop_force, err));
        TRY(pj_bool(st, sctx, "save", false, &out->stop_save, err));
        TRY(pj_int(st, sctx, "drain_timeout_ms", false, 0, 3600000, &out->stop_drain_timeout_ms,
                   err));
    }
    char vctx[64];
    snprintf(vctx, sizeof(vctx), "%s.volumes", ctx);
    TRY(nubo_volume_attach_decode(json_object_get(j, "volumes"), vctx, &out->volumes,
                                  &out->n_volumes, err));
    return 0;
fail:
    nubo_assignment_free(out);
    return -1;
}

json_t *nubo_watch_resp_encode(const struct nubo_watch_resp *w)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < w->n_assignments; i++)
        json_array_append_new(a, nubo_assignment_encode(&w->assignments[i]));
    json_t *o = json_pack("{s:I, s:o}", "version", (json_int_t)w->version, "assignments", a);
    if (o && w->has_volumes)
        json_object_set_new(o, "volumes", nubo_volume_specs_encode(w->volumes, w->n_volumes));
    return o;
}

void nubo_watch_resp_free(struct nubo_watch_resp *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; w->assignments && i < w->n_assignments; i++)
        nubo_assignment_free(&w->assignments[i]);
    free(w->assignments);
    w->assignments = NULL;
    w->n_assignments = 0;
    free(w->volumes);
    w->volumes = NULL;
    w->n_volumes = 0;
}

int nubo_watch_resp_decode(json_t *j, struct nubo_watch_resp *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "watch response: must be a JSON object");
    if (pj_int(j, "", "version", true, 0, INT64_C(1) << 62, &out->version, err) < 0)
        return -1;
    json_t *vols = json_object_get(j, "volumes");
    out->has_volumes = vols != NULL && !json_is_null(vols);
    if (nubo_volume_specs_decode(vols, "volumes", &out->volumes, &out->n_volumes, err) < 0)
        return -1;
    json_t *a = json_object_get(j, "assignments");
    if (a == NULL || json_is_null(a))
        return 0;
    if (!json_is_array(a) || json_array_size(a) > NUBO_AGENT_MAX_INSTANCES)
        return nubo_watch_resp_free(out),
               nubo_error_http(err, 400, "assignments: must be an array of at most %u entries",
                               NUBO_AGENT_MAX_INSTANCES);
    size_t n = json_array_size(a);
    out->assignments = calloc(n + 1, sizeof(*out->assignments));
    if (out->assignments == NULL)
        return nubo_watch_resp_free(out), nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        char ctx[48];
        snprintf(ctx, sizeof(ctx), "assignments[%zu]", i);
        if (nubo_assignment_decode(json_array_get(a, i), ctx, &out->assignments[i], err) < 0) {
            nubo_watch_resp_free(out);
            return -1;
        }
        out->n_assignments = i + 1;
    }
    return 0;
}

/* ---- status -------------------------------------------------------------------------- */

json_t *nubo_status_batch_encode(const struct nubo_status_batch *b)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "instances", encode_reports(b->instances, b->n_instances));
    if (b->n_volumes)
        json_object_set_new(o, "volumes", nubo_volume_reports_encode(b->volumes, b->n_volumes));
    if (b->n_stats)
        json_object_set_new(o, "stats", nubo_instance_stats_encode(b->stats, b->n_stats));
    return o;
}

int nubo_status_batch_decode(json_t *j, struct nubo_status_batch *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "status: body must be a JSON object");
    if (decode_reports(j, "instances", false, &out->instances, &out->n_instances, err) < 0)
        return -1;
    if (nubo_volume_reports_decode(json_object_get(j, "volumes"), "volumes", &out->volumes,
                                   &out->n_volumes, err) < 0 ||
        nubo_instance_stats_decode(json_object_get(j, "stats"), NUBO_AGENT_MAX_INSTANCES,
                                   &out->stats, &out->n_stats, err) < 0) {
        nubo_status_batch_free(out);
        return -1;
    }
    return 0;
}

void nubo_status_batch_free(struct nubo_status_batch *b)
{
    if (b == NULL)
        return;
    free_reports(b->instances, b->n_instances);
    b->instances = NULL;
    b->n_instances = 0;
    free(b->volumes);
    b->volumes = NULL;
    b->n_volumes = 0;
    free(b->stats);
    b->stats = NULL;
    b->n_stats = 0;
}

json_t *nubo_status_resp_encode(const struct nubo_status_resp *r)
{
    json_t *j = json_pack("{s:I}", "version", (json_int_t)r->version);
    if (j && r->heartbeat_interval_ms > 0)
        json_object_set_new(j, "heartbeat_interval_ms", json_integer(r->heartbeat_interval_ms));
    return j;
}

int nubo_status_resp_decode(json_t *j, struct nubo_status_resp *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "status response: must be a JSON object");
    if (pj_int(j, "", "version", true, 0, INT64_C(1) << 62, &out->version, err) < 0 ||
        pj_int(j, "", "heartbeat_interval_ms", false, 10, 3600000, &out->heartbeat_interval_ms,
               err) < 0)
        return -1;
    return 0;
}

/* ---- log ----------------------------------------------------------------------------- */

json_t *nubo_log_batch_encode(const struct nubo_log_batch *b)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < b->n_logs; i++) {
        char *data = nubo_base64_encode(b->logs[i].data, b->logs[i].len);
        json_array_append_new(a,
                              json_pack("{s:s, s:I, s:s}", "uuid", b->logs[i].uuid, "offset",
                                        (json_int_t)b->logs[i].offset, "data", data ? data : ""));
        free(data);
    }
    return json_pack("{s:o}", "logs", a);
}

void nubo_log_batch_free(struct nubo_log_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; b->logs && i < b->n_logs; i++)
        free(b->logs[i].data);
    free(b->logs);
    b->logs = NULL;
    b->n_logs = 0;
}

int nubo_log_batch_decode(json_t *j, struct nubo_log_batch *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "log: body must be a JSON object");
    json_t *a = json_object_get(j, "logs");
    if (!json_is_array(a) || json_array_size(a) > NUBO_AGENT_MAX_LOGS)
        return nubo_error_http(err, 400, "logs: must be an array of at most %u chunks",
                               NUBO_AGENT_MAX_LOGS);
    size_t n = json_array_size(a);
    out->logs = calloc(n + 1, sizeof(*out->logs));
    if (out->logs == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(a, i);
        struct nubo_log_chunk *c = &out->logs[i];
        char ctx[32];
        snprintf(ctx, sizeof(ctx), "logs[%zu]", i);
        out->n_logs = i;
        if (!json_is_object(e)) {
            nubo_error_http(err, 400, "%s: must be an object", ctx);
            goto fail;
        }
        TRY(pj_str(e, ctx, "uuid", true, c->uuid, sizeof(c->uuid), err));
        if (!nubo_uuid_valid(c->uuid)) {
            nubo_error_http(err, 400, "%s.uuid: not a UUID", ctx);
            goto fail;
        }
        TRY(pj_int(e, ctx, "offset", true, 0, INT64_C(1) << 53, &c->offset, err));
        json_t *d = json_object_get(e, "data");
        size_t max_b64 = 4 * ((NUBO_AGENT_MAX_LOG_CHUNK + 2) / 3);
        if (!json_is_string(d) || json_string_length(d) > max_b64) {
            nubo_error_http(err, 400, "%s.data: must be base64 of at most %u bytes", ctx,
                            NUBO_AGENT_MAX_LOG_CHUNK);
            goto fail;
        }
        if (json_string_length(d) == 0) {
            c->data = calloc(1, 1);
            c->len = 0;
        } else {
            c->data = nubo_base64_decode(json_string_value(d), &c->len);
        }
        if (c->data == NULL) {
            nubo_error_http(err, 400, "%s.data: not valid base64", ctx);
            goto fail;
        }
        out->n_logs = i + 1;
    }
    return 0;
fail:
    nubo_log_batch_free(out);
    return -1;
}
