/* The public API objects, their strict decoders and encoders, and the envelope; see api.h. */
#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nubo_create_req_init(struct nubo_create_req *r)
{
    memset(r, 0, sizeof(*r));
    r->memory_mb = NUBO_API_DEFAULT_MEMORY_MB;
    r->vcpus = 1;
    r->autostart = false; /* the spec's default; the SDKs and our CLI send true explicitly */
    r->restart_policy = NUBO_RESTART_NEVER;
    r->scale_to_zero.cooldown_time_ms = NUBO_S2Z_DEFAULT_COOLDOWN_MS;
}

static const char *const s2z_policy_names[] = {"off", "on", "idle"};

const char *nubo_s2z_policy_name(enum nubo_s2z_policy p)
{
    return (unsigned)p < 3 ? s2z_policy_names[p] : "off";
}

int nubo_s2z_policy_parse(const char *s, enum nubo_s2z_policy *out)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, s2z_policy_names[i]) == 0) {
            *out = (enum nubo_s2z_policy)i;
            return 0;
        }
    return -1;
}

int nubo_s2z_decode(json_t *j, const char *key, struct nubo_scale_to_zero *out,
                    struct nubo_err *err)
{
    static const char *const allowed[] = {"policy", "stateful", "cooldown_time_ms", NULL};
    json_t *o = json_object_get(j, key);
    if (o == NULL || json_is_null(o))
        return 0;
    if (!json_is_object(o))
        return nubo_error_http(err, 400,
                               "%s: must be an object {policy: on|off|idle, stateful, "
                               "cooldown_time_ms}",
                               key);
    if (pj_only_keys(o, key, allowed, err) < 0)
        return -1;
    struct nubo_scale_to_zero s = {NUBO_S2Z_OFF, false, NUBO_S2Z_DEFAULT_COOLDOWN_MS};
    char pol[16];
    int rc = pj_str(o, key, "policy", true, pol, sizeof(pol), err);
    if (rc < 0 || nubo_s2z_policy_parse(pol, &s.policy) < 0)
        return nubo_error_http(err, 400, "%s.policy: must be on, off or idle", key);
    if (pj_bool(o, key, "stateful", false, &s.stateful, err) < 0 ||
        pj_int(o, key, "cooldown_time_ms", false, 0, NUBO_S2Z_MAX_COOLDOWN_MS,
               &s.cooldown_time_ms, err) < 0)
        return -1;
    *out = s;
    return 1;
}

json_t *nubo_s2z_encode(const struct nubo_scale_to_zero *s)
{
    return json_pack("{s:s, s:b, s:I}", "policy", nubo_s2z_policy_name(s->policy), "stateful",
                     s->stateful, "cooldown_time_ms", (json_int_t)s->cooldown_time_ms);
}

void nubo_create_req_free(struct nubo_create_req *r)
{
    if (r == NULL)
        return;
    pj_strv_free(r->args, r->n_args);
    pj_env_free(r->env, r->n_env);
    free(r->service_group);
    free(r->volumes);
    r->volumes = NULL;
    r->n_volumes = 0;
    r->args = NULL;
    r->env = NULL;
    r->service_group = NULL;
    r->n_args = r->n_env = 0;
}

bool nubo_instance_name_reserved(const char *name)
{
    static const char *const words[] = {"start", "stop", "wait", "log", "metrics", NULL};
    for (size_t i = 0; words[i]; i++)
        if (strcmp(name, words[i]) == 0)
            return true;
    return false;
}

static int unsupported(json_t *j, const char *key, struct nubo_err *err)
{
    json_t *v = json_object_get(j, key);
    if (v == NULL || json_is_null(v))
        return 0;
    return nubo_error_http(err, 400, "%s: not supported by nubo yet; remove the field", key);
}

int nubo_create_req_decode(json_t *j, struct nubo_create_req *out, struct nubo_err *err)
{
    static const char *const allowed[] = {"name",      "image",         "args",
                                          "env",       "memory_mb",     "vcpus",
                                          "autostart", "replicas",      "restart_policy",
                                          "features",  "metro",         "wait_timeout_ms",
                                          "timeout_s", "service_ports", "scale_to_zero",
                                          "volumes",   "service_group", NULL};
    nubo_create_req_init(out);
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "create: the body must be a JSON object");
    if (pj_only_keys(j, "", allowed, err) < 0)
        return -1;
    if (unsupported(j, "service_group", err) < 0)
        return -1;
    if (nubo_volume_mounts_decode(json_object_get(j, "volumes"), "volumes", &out->volumes,
                                  &out->n_volumes, err) < 0)
        return -1;
    char buf[32];
    int rc;
    if (pj_str(j, "", "image", true, out->image, sizeof(out->image), err) < 0)
        goto fail;
    if (out->image[0] == '\0') {
        nubo_error_http(err, 400, "image: must not be empty");
        goto fail;
    }
    rc = pj_str(j, "", "name", false, out->name, sizeof(out->name), err);
    if (rc < 0) {
        nubo_error_http(err, 400, "name: must be 1..63 characters of [a-z0-9-]");
        goto fail;
    }
    if (rc == 1 && !nubo_name_valid(out->name)) {
        nubo_error_http(err, 400,
                        "name: '%s' must be 1..63 characters of [a-z0-9-], not starting or "
                        "ending with '-'",
                        out->name);
        goto fail;
    }
    if (rc == 1 && nubo_instance_name_reserved(out->name)) {
        nubo_error_http(err, 400, "name: '%s' is a word of the API's paths (/v1/instances/%s); "
                        "choose another", out->name, out->name);
        goto fail;
    }
    rc = pj_strv(j, "", "args", false, NUBO_AGENT_MAX_ARGS, NUBO_AGENT_MAX_STR, &out->args,
                 &out->n_args, err);
    if (rc < 0)
        goto fail;
    out->has_args = rc == 1;
    if (pj_env(j, "", "env", false, NUBO_AGENT_MAX_ENV, NUBO_AGENT_MAX_STR, &out->env, &out->n_env,
               err) < 0)
        goto fail;
    if (pj_int(j, "", "memory_mb", false, NUBO_API_MIN_MEMORY_MB, NUBO_API_MAX_MEMORY_MB,
               &out->memory_mb, err) < 0)
        goto fail;
    if (pj_int(j, "", "vcpus", false, 1, NUBO_API_MAX_VCPUS, &out->vcpus, err) < 0)
        goto fail;
    if (pj_bool(j, "", "autostart", false, &out->autostart, err) < 0)
        goto fail;
    if (pj_int(j, "", "replicas", false, 0, NUBO_API_MAX_REPLICAS, &out->replicas, err) < 0)
        goto fail;
    rc = pj_str(j, "", "restart_policy", false, buf, sizeof(buf), err);
    if (rc < 0 || (rc == 1 && nubo_restart_policy_parse(buf, &out->restart_policy) < 0)) {
        nubo_error_http(err, 400, "restart_policy: must be never, always or on-failure");
        goto fail;
    }
    json_t *f = json_object_get(j, "features");
    if (f && !json_is_null(f)) {
        if (!json_is_array(f) || json_array_size(f) > 8) {
            nubo_error_http(err, 400, "features: must be an array of strings");
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(f, i, e)
        {
            const char *s = json_string_value(e);
            if (s && strcmp(s, "delete-on-stop") == 0)
                out->features |= NUBO_FEATURE_DELETE_ON_STOP;
            else if (s && strcmp(s, "scale-to-zero") == 0)
                out->scale_to_zero.policy = NUBO_S2Z_ON; /* legacy: policy on, defaults */
            else {
                nubo_error_http(err, 400,
                                "features[%zu]: must be \"delete-on-stop\" or \"scale-to-zero\"",
                                i);
                goto fail;
            }
        }
    }
    /* the object, when given, says more than the legacy feature string */
    if (nubo_s2z_decode(j, "scale_to_zero", &out->scale_to_zero, err) < 0)
        goto fail;
    if ((out->features & NUBO_FEATURE_DELETE_ON_STOP) &&
        out->restart_policy != NUBO_RESTART_NEVER) {
        nubo_error_http(err, 400, "features: delete-on-stop needs restart_policy never");
        goto fail;
    }
    rc = pj_str(j, "", "metro", false, out->metro, sizeof(out->metro), err);
    if (rc < 0 || (rc == 1 && !nubo_name_valid(out->metro))) {
        nubo_error_http(err, 400, "metro: must be a metro name such as fra0 (see GET /v1/metros)");
        goto fail;
    }
    if (pj_int(j, "", "wait_timeout_ms", false, -1, 3600000, &out->wait_timeout_ms, err) < 0)
        goto fail;
    int64_t timeout_s = 0;
    rc = pj_int(j, "", "timeout_s", false, -1, 3600, &timeout_s, err);
    if (rc < 0)
        goto fail;
    if (rc == 1)
        out->wait_timeout_ms = timeout_s < 0 ? -1 : timeout_s * 1000;
    if (out->wait_timeout_ms != 0 && !out->autostart) {
        nubo_error_http(err, 400, "wait_timeout_ms: only allowed with autostart");
        goto fail;
    }
    json_t *ports = json_object_get(j, "service_ports");
    if (ports && !json_is_null(ports)) {
        if (!json_is_array(ports) || json_array_size(ports) > NUBO_AGENT_MAX_PORTS) {
            nubo_error_http(err, 400, "service_ports: must be an array of at most %d ports",
                            NUBO_AGENT_MAX_PORTS);
            goto fail;
        }
        size_t i;
        json_t *p;
        json_array_foreach(ports, i, p)
        {
            if (!json_is_integer(p) || json_integer_value(p) < 1 || json_integer_value(p) > 65535) {
                nubo_error_http(err, 400, "service_ports[%zu]: must be a port 1..65535", i);
                goto fail;
            }
            out->service_ports[out->n_service_ports++] = json_integer_value(p);
        }
    }
    return 0;
fail:
    nubo_create_req_free(out);
    return -1;
}

json_t *nubo_create_req_encode(const struct nubo_create_req *r)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "image", json_string(r->image));
    if (r->name[0])
        json_object_set_new(o, "name", json_string(r->name));
    if (r->has_args || r->n_args)
        json_object_set_new(o, "args", pj_strv_new(r->args, r->n_args));
    if (r->n_env)
        json_object_set_new(o, "env", pj_env_new(r->env, r->n_env));
    /* 0 and the policy "never" leave the choice to the platform's defaults */
    if (r->memory_mb > 0)
        json_object_set_new(o, "memory_mb", json_integer(r->memory_mb));
    if (r->vcpus > 0)
        json_object_set_new(o, "vcpus", json_integer(r->vcpus));
    json_object_set_new(o, "autostart", json_boolean(r->autostart));
    if (r->n_volumes)
        json_object_set_new(o, "volumes", nubo_volume_mounts_encode(r->volumes, r->n_volumes));
    if (r->replicas)
        json_object_set_new(o, "replicas", json_integer(r->replicas));
    if (r->restart_policy != NUBO_RESTART_NEVER)
        json_object_set_new(o, "restart_policy",
                            json_string(nubo_restart_policy_name(r->restart_policy)));
    if (r->features & NUBO_FEATURE_DELETE_ON_STOP)
        json_object_set_new(o, "features", json_pack("[s]", "delete-on-stop"));
    if (r->metro[0])
        json_object_set_new(o, "metro", json_string(r->metro));
    if (r->wait_timeout_ms)
        json_object_set_new(o, "wait_timeout_ms", json_integer(r->wait_timeout_ms));
    if (r->n_service_ports) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_service_ports; i++)
            json_array_append_new(a, json_integer(r->service_ports[i]));
        json_object_set_new(o, "service_ports", a);
    }
    if (r->scale_to_zero.policy != NUBO_S2Z_OFF)
        json_object_set_new(o, "scale_to_zero", nubo_s2z_encode(&r->scale_to_zero));
    if (r->service_group)
        json_object_set_new(o, "service_group", nubo_svc_create_req_encode(r->service_group, true));
    return o;
}

/* ---- instance ------------------------------------------------------------------------ */

json_t *nubo_instance_encode(const struct nubo_instance *in, bool details)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "uuid", json_string(in->uuid));
    json_object_set_new(o, "name", json_string(in->name));
    if (!details)
        return o;
    json_object_set_new(o, "created_at", pj_time_new(in->created_at_us));
    json_object_set_new(o, "state", json_string(nubo_state_name(in->state)));
    json_object_set_new(o, "image", json_string(in->image));
    json_object_set_new(o, "memory_mb", json_integer(in->memory_mb));
    json_object_set_new(o, "vcpus", json_integer(in->vcpus));
    json_object_set_new(o, "args", pj_strv_new(in->args, in->n_args));
    json_object_set_new(o, "env", pj_env_new(in->env, in->n_env));
    char fqdn[NUBO_NAME_MAX + 80];
    if (in->private_fqdn[0])
        snprintf(fqdn, sizeof(fqdn), "%s", in->private_fqdn);
    else
        snprintf(fqdn, sizeof(fqdn), "%s.internal", in->name);
    json_object_set_new(o, "private_fqdn", json_string(fqdn));
    json_object_set_new(o, "private_ip", json_string(in->private_ip));
    json_object_set_new(o, "boot_time_us", json_integer(in->boot_time_us));
    json_object_set_new(o, "net_time_us", json_integer(in->net_time_us));
    json_object_set_new(o, "boot_phases",
                        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "image_us",
                                  (json_int_t)in->boot_phases.image_us, "domain_us",
                                  (json_int_t)in->boot_phases.domain_us, "vmm_us",
                                  (json_int_t)in->boot_phases.vmm_us, "guest_us",
                                  (json_int_t)in->boot_phases.guest_us, "slot_us",
                                  (json_int_t)in->boot_phases.slot_us, "copy_us",
                                  (json_int_t)in->boot_phases.copy_us));
    json_object_set_new(o, "start_count", json_integer(in->start_count));
    json_object_set_new(o, "restart_count", json_integer(in->restart_count));
    /* never null: Go's decoder and strict schema validators refuse null for a string, so an
     * instant that has not happened is left out */
    pj_set_time(o, "started_at", in->started_at_us);
    pj_set_time(o, "stopped_at", in->stopped_at_us);
    json_object_set_new(o, "uptime_ms", json_integer(in->uptime_ms));
    json_object_set_new(o, "restart_policy",
                        json_string(nubo_restart_policy_name(in->restart_policy)));
    json_t *restart = json_pack("{s:I}", "attempt", (json_int_t)in->restart_attempt);
    pj_set_time(restart, "next_at", in->restart_next_at_us);
    json_object_set_new(o, "restart", restart);
    json_object_set_new(o, "stop_reason", json_integer(in->stop_reason));
    if (in->has_exit_code)
        json_object_set_new(o, "exit_code", json_integer(in->exit_code));
    if (in->has_stop_code)
        json_object_set_new(o, "stop_code", json_integer(in->stop_code));
    json_t *feat = json_array();
    if (in->features & NUBO_FEATURE_DELETE_ON_STOP)
        json_array_append_new(feat, json_string("delete-on-stop"));
    json_object_set_new(o, "features", feat);
    if (in->scale_to_zero.policy != NUBO_S2Z_OFF)
        json_object_set_new(o, "scale_to_zero", nubo_s2z_encode(&in->scale_to_zero));
    json_object_set_new(o, "node", json_string(in->node));
    json_object_set_new(o, "metro", json_string(in->metro));
    if (in->message && in->message[0])
        json_object_set_new(o, "message", json_string(in->message));
    if (in->service_group)
        json_object_set_new(o, "service_group", nubo_svc_group_ref_encode(in->service_group));
    return o;
}

void nubo_instance_free(struct nubo_instance *in)
{
    if (in == NULL)
        return;
    pj_strv_free(in->args, in->n_args);
    pj_env_free(in->env, in->n_env);
    free(in->message);
    if (in->service_group)
        nubo_svc_group_free(in->service_group);
    free(in->service_group);
    in->args = NULL;
    in->env = NULL;
    in->message = NULL;
    in->service_group = NULL;
    in->n_args = in->n_env = 0;
}

int nubo_instance_decode(json_t *j, struct nubo_instance *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "instance: must be a JSON object");
    const int64_t big = INT64_C(1) << 62;
    char state[16] = "stopped", policy[16] = "never";
    char **feats = NULL;
    size_t n_feats = 0;
    int rc;
#define D(x)                                                                                       \
    if ((x) < 0)                                                                                   \
        goto fail;
    D(pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err));
    D(pj_str(j, "", "name", false, out->name, sizeof(out->name), err));
    D(pj_time(j, "", "created_at", false, &out->created_at_us, err));
    D(pj_str(j, "", "state", false, state, sizeof(state), err));
    if (nubo_state_parse(state, &out->state) < 0)
        out->state = NUBO_STATE_STOPPED;
    D(pj_str(j, "", "image", false, out->image, sizeof(out->image), err));
    D(pj_int(j, "", "memory_mb", false, 0, big, &out->memory_mb, err));
    D(pj_int(j, "", "vcpus", false, 0, big, &out->vcpus, err));
    D(pj_strv(j, "", "args", false, NUBO_AGENT_MAX_ARGS, NUBO_AGENT_MAX_STR, &out->args,
              &out->n_args, err));
    D(pj_env(j, "", "env", false, NUBO_AGENT_MAX_ENV, NUBO_AGENT_MAX_STR, &out->env, &out->n_env,
             err));
    D(pj_str(j, "", "private_fqdn", false, out->private_fqdn, sizeof(out->private_fqdn), err));
    D(pj_str(j, "", "private_ip", false, out->private_ip, sizeof(out->private_ip), err));
    D(pj_int(j, "", "boot_time_us", false, 0, big, &out->boot_time_us, err));
    D(pj_int(j, "", "net_time_us", false, 0, big, &out->net_time_us, err));
    json_t *sub;
    D(pj_object(j, "", "boot_phases", false, &sub, err));
    if (sub) {
        D(pj_int(sub, "boot_phases", "image_us", false, 0, big, &out->boot_phases.image_us, err));
        D(pj_int(sub, "boot_phases", "domain_us", false, 0, big, &out->boot_phases.domain_us, err));
        D(pj_int(sub, "boot_phases", "vmm_us", false, 0, big, &out->boot_phases.vmm_us, err));
        D(pj_int(sub, "boot_phases", "guest_us", false, 0, big, &out->boot_phases.guest_us, err));
        D(pj_int(sub, "boot_phases", "slot_us", false, 0, big, &out->boot_phases.slot_us, err));
        D(pj_int(sub, "boot_phases", "copy_us", false, 0, big, &out->boot_phases.copy_us, err));
    }
    D(pj_int(j, "", "start_count", false, 0, big, &out->start_count, err));
    D(pj_int(j, "", "restart_count", false, 0, big, &out->restart_count, err));
    D(pj_time(j, "", "started_at", false, &out->started_at_us, err));
    D(pj_time(j, "", "stopped_at", false, &out->stopped_at_us, err));
    D(pj_int(j, "", "uptime_ms", false, 0, big, &out->uptime_ms, err));
    D(pj_int(j, "", "stop_reason", false, 0, 31, &out->stop_reason, err));
    D(rc = pj_int(j, "", "exit_code", false, INT32_MIN, INT32_MAX, &out->exit_code, err));
    out->has_exit_code = rc == 1;
    D(rc = pj_int(j, "", "stop_code", false, 0, UINT32_MAX, &out->stop_code, err));
    out->has_stop_code = rc == 1;
    D(pj_str(j, "", "restart_policy", false, policy, sizeof(policy), err));
    if (nubo_restart_policy_parse(policy, &out->restart_policy) < 0)
        out->restart_policy = NUBO_RESTART_NEVER;
    D(pj_object(j, "", "restart", false, &sub, err));
    if (sub) {
        D(pj_int(sub, "restart", "attempt", false, 0, big, &out->restart_attempt, err));
        D(pj_time(sub, "restart", "next_at", false, &out->restart_next_at_us, err));
    }
    D(pj_strv(j, "", "features", false, 8, 32, &feats, &n_feats, err));
    for (size_t i = 0; i < n_feats; i++)
        if (strcmp(feats[i], "delete-on-stop") == 0)
            out->features |= NUBO_FEATURE_DELETE_ON_STOP;
    out->scale_to_zero.cooldown_time_ms = NUBO_S2Z_DEFAULT_COOLDOWN_MS;
    D(nubo_s2z_decode(j, "scale_to_zero", &out->scale_to_zero, err));
    D(pj_str(j, "", "node", false, out->node, sizeof(out->node), err));
    D(pj_str(j, "", "metro", false, out->metro, sizeof(out->metro), err));
    D(pj_strdup(j, "", "message", false, NUBO_AGENT_MAX_MESSAGE, &out->message, err));
    D(pj_object(j, "", "service_group", false, &sub, err));
    if (sub) {
        out->service_group = malloc(sizeof(*out->service_group));
        if (out->service_group == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto fail;
        }
        if (nubo_svc_group_decode(sub, out->service_group, err) < 0) {
            free(out->service_group);
            out->service_group = NULL;
            nubo_error_wrap(err, "service_group");
            goto fail;
        }
    }
    pj_strv_free(feats, n_feats);
#undef D
    return 0;
fail:
    pj_strv_free(feats, n_feats);
    nubo_instance_free(out);
    return -1;
}

/* ---- batch items --------------------------------------------------------------------- */

void nubo_item_init(struct nubo_item *it)
{
    memset(it, 0, sizeof(*it));
    it->state = NUBO_STATE_RUNNING;
    it->timeout_ms = -1;
    it->offset = -NUBO_API_LOG_DEFAULT_LIMIT;
    it->limit = NUBO_API_LOG_DEFAULT_LIMIT;
}

void nubo_item_ref(struct nubo_item *it, const char *who)
{
    nubo_item_init(it);
    if (nubo_uuid_valid(who))
        snprintf(it->uuid, sizeof(it->uuid), "%s", who);
    else
        snprintf(it->name, sizeof(it->name), "%s", who);
}

int nubo_item_decode(json_t *j, enum nubo_item_kind kind, const char *ctx, struct nubo_item *out,
                     struct nubo_err *err)
{
    static const char *const k_ref[] = {"uuid", "name", NULL};
    static const char *const k_start[] = {"uuid", "name", "wait_timeout_ms", NULL};
    static const char *const k_stop[] = {"uuid", "name", "force", "drain_timeout_ms", NULL};
    static const char *const k_wait[] = {"uuid", "name", "state", "timeout_ms", "timeout_s", NULL};
    static const char *const k_log[] = {"uuid", "name", "offset", "limit", NULL};
    const char *const *allowed = kind == NUBO_ITEM_START  ? k_start
                                 : kind == NUBO_ITEM_STOP ? k_stop
                                 : kind == NUBO_ITEM_WAIT ? k_wait
                                 : kind == NUBO_ITEM_LOG  ? k_log
                                                          : k_ref;
    nubo_item_init(out);
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: each item must be an object with uuid or name", ctx);
    if (pj_only_keys(j, ctx, allowed, err) < 0)
        return -1;
    int ru = pj_str(j, ctx, "uuid", false, out->uuid, sizeof(out->uuid), err);
    if (ru < 0)
        return -1;
    int rn = pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err);
    if (rn < 0)
        return nubo_error_http(err, 400, "%s%sname: must be 1..63 characters of [a-z0-9-]", ctx,
                               ctx[0] ? "." : "");
    if (ru == 1 && rn == 1)
        return nubo_error_http(err, 400, "%s: give either uuid or name, not both", ctx);
    if (ru != 1 && rn != 1)
        return nubo_error_http(err, 400, "%s: missing uuid or name", ctx);
    if (ru == 1 && !nubo_uuid_valid(out->uuid))
        return nubo_error_http(err, 400, "%s%suuid: '%s' is not a UUID", ctx, ctx[0] ? "." : "",
                               out->uuid);
    if (rn == 1 && !nubo_name_valid(out->name))
        return nubo_error_http(err, 400, "%s%sname: '%s' must be 1..63 characters of [a-z0-9-]",
                               ctx, ctx[0] ? "." : "", out->name);
    switch (kind) {
    case NUBO_ITEM_START:
        return pj_int(j, ctx, "wait_timeout_ms", false, -1, 3600000, &out->wait_timeout_ms, err) < 0
                   ? -1
                   : 0;
    case NUBO_ITEM_STOP:
        if (pj_bool(j, ctx, "force", false, &out->force, err) < 0)
            return -1;
        return pj_int(j, ctx, "drain_timeout_ms", false, 0, NUBO_API_MAX_DRAIN_MS,
                      &out->drain_timeout_ms, err) < 0
                   ? -1
                   : 0;
    case NUBO_ITEM_WAIT: {
        char st[16];
        int rc = pj_str(j, ctx, "state", false, st, sizeof(st), err);
        if (rc < 0 || (rc == 1 && (nubo_state_parse(st, &out->state) < 0)))
            return nubo_error_http(err, 400,
                                   "%s%sstate: must be one of stopped, starting, running, "
                                   "draining, stopping, standby",
                                   ctx, ctx[0] ? "." : "");
        if (pj_int(j, ctx, "timeout_ms", false, -1, 86400000, &out->timeout_ms, err) < 0)
            return -1;
        int64_t s;
        rc = pj_int(j, ctx, "timeout_s", false, -1, 86400, &s, err);
        if (rc < 0)
            return -1;
        if (rc == 1)
            out->timeout_ms = s < 0 ? -1 : s * 1000;
        return 0;
    }
    case NUBO_ITEM_LOG:
        if (pj_int(j, ctx, "offset", false, -(INT64_C(1) << 53), INT64_C(1) << 53, &out->offset,
                   err) < 0)
            return -1;
        return pj_int(j, ctx, "limit", false, 0, NUBO_API_LOG_MAX_LIMIT, &out->limit, err) < 0 ? -1
                                                                                               : 0;
    default:
        return 0;
    }
}

json_t *nubo_item_encode(const struct nubo_item *it, enum nubo_item_kind kind)
{
    json_t *o = json_object();
    if (it->uuid[0])
        json_object_set_new(o, "uuid", json_string(it->uuid));
    else
        json_object_set_new(o, "name", json_string(it->name));
    switch (kind) {
    case NUBO_ITEM_START:
        if (it->wait_timeout_ms)
            json_object_set_new(o, "wait_timeout_ms", json_integer(it->wait_timeout_ms));
        break;
    case NUBO_ITEM_STOP:
        json_object_set_new(o, "force", json_boolean(it->force));
        json_object_set_new(o, "drain_timeout_ms", json_integer(it->drain_timeout_ms));
        break;
    case NUBO_ITEM_WAIT:
        json_object_set_new(o, "state", json_string(nubo_state_name(it->state)));
        json_object_set_new(o, "timeout_ms", json_integer(it->timeout_ms));
        break;
    case NUBO_ITEM_LOG:
        json_object_set_new(o, "offset", json_integer(it->offset));
        json_object_set_new(o, "limit", json_integer(it->limit));
        break;
    default:
        break;
    }
    return o;
}

/* ---- images -------------------------------------------------------------------------- */

json_t *nubo_image_encode(const struct nubo_image *im)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "status", json_string("success"));
    json_object_set_new(o, "uuid", json_string(im->uuid));
    json_object_set_new(o, "created_at", pj_time_new(im->created_at_us));
    json_object_set_new(o, "owner", json_string(im->owner));
    json_object_set_new(o, "url", json_string(im->url));
    /* legacy /images/list clients read "digest" */
    json_object_set_new(o, "digest", json_string(im->url));
    json_object_set_new(o, "tags", pj_strv_new(im->tags, im->n_tags));
    json_object_set_new(o, "initrd_or_rom", json_boolean(im->initrd_or_rom));
    json_object_set_new(o, "initrd", json_boolean(im->initrd_or_rom));
    json_object_set_new(o, "size_in_bytes", json_integer(im->size_in_bytes));
    if (im->n_args)
        json_object_set_new(o, "args", pj_strv_new(im->args, im->n_args));
    if (im->n_env)
        json_object_set_new(o, "env", pj_env_new(im->env, im->n_env));
    return o;
}

json_t *nubo_image_encode_legacy(const struct nubo_image *im)
{
    json_t *o = nubo_image_encode(im);
    if (o == NULL)
        return NULL;
    size_t len = 1;
    for (size_t i = 0; i < im->n_args; i++)
        len += strlen(im->args[i]) + 1;
    char *args = calloc(1, len);
    if (args == NULL) {
        json_decref(o);
        return NULL;
    }
    for (size_t i = 0; i < im->n_args; i++) {
        if (i)
            strcat(args, " ");
        strcat(args, im->args[i]);
    }
    json_object_set_new(o, "args", json_string(args));
    free(args);
    json_object_set_new(o, "kernel_args", json_string(""));
    json_object_set_new(o, "labels", json_object());
    return o;
}

void nubo_image_free(struct nubo_image *im)
{
    if (im == NULL)
        return;
    pj_strv_free(im->tags, im->n_tags);
    pj_strv_free(im->args, im->n_args);
    pj_env_free(im->env, im->n_env);
    im->tags = im->args = NULL;
    im->env = NULL;
    im->n_tags = im->n_args = im->n_env = 0;
}

int nubo_image_decode(json_t *j, struct nubo_image *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "image: must be a JSON object");
    int rc = 0;
    rc |= pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0;
    rc |= pj_time(j, "", "created_at", false, &out->created_at_us, err) < 0;
    rc |= pj_str(j, "", "owner", false, out->owner, sizeof(out->owner), err) < 0;
    rc |= pj_str(j, "", "url", false, out->url, sizeof(out->url), err) < 0;
    if (rc == 0 && out->url[0] == '\0')
        rc |= pj_str(j, "", "digest", false, out->url, sizeof(out->url), err) < 0;
    rc |= pj_strv(j, "", "tags", false, 4096, 512, &out->tags, &out->n_tags, err) < 0;
    rc |= pj_bool(j, "", "initrd_or_rom", false, &out->initrd_or_rom, err) < 0;
    rc |= pj_int(j, "", "size_in_bytes", false, 0, INT64_C(1) << 62, &out->size_in_bytes, err) < 0;
    json_t *a = json_object_get(j, "args");
    if (json_is_string(a)) { /* legacy: one string */
        char buf[NUBO_AGENT_MAX_STR * 4];
        snprintf(buf, sizeof(buf), "%s", json_string_value(a));
        char *save = NULL;
        json_t *v = json_array();
        for (char *t = strtok_r(buf, " ", &save); t; t = strtok_r(NULL, " ", &save))
            json_array_append_new(v, json_string(t));
        json_t *tmp = json_pack("{s:o}", "args", v);
        rc |= pj_strv(tmp, "", "args", false, NUBO_AGENT_MAX_ARGS, NUBO_AGENT_MAX_STR,
                      &out->args, &out->n_args, err) < 0;
        json_decref(tmp);
    } else {
        rc |= pj_strv(j, "", "args", false, NUBO_AGENT_MAX_ARGS, NUBO_AGENT_MAX_STR, &out->args,
                      &out->n_args, err) < 0;
    }
    rc |= pj_env(j, "", "env", false, NUBO_AGENT_MAX_ENV, NUBO_AGENT_MAX_STR, &out->env,
                 &out->n_env, err) < 0;
    if (rc) {
        nubo_image_free(out);
        return -1;
    }
    return 0;
}

json_t *nubo_image_query_encode(const struct nubo_image_query *q)
{
    if (q->uuid[0])
        return json_pack("{s:s}", "uuid", q->uuid);
    if (q->digest[0])
        return json_pack("{s:s}", "digest", q->digest);
    return json_pack("{s:s}", "tag", q->tag);
}

/* ---- per-item status and log chunks --------------------------------------------------- */

json_t *nubo_item_status_encode(const struct nubo_item_status *s)
{
    if (s->ok) {
        json_t *o = json_pack("{s:s, s:s}", "status", "success", "uuid", s->uuid);
        if (o && s->name[0])
            json_object_set_new(o, "name", json_string(s->name));
        if (o && s->has_state)
            json_object_set_new(o, "state", json_string(nubo_state_name(s->state)));
        if (o && s->has_previous_state)
            json_object_set_new(o, "previous_state",
                                json_string(nubo_state_name(s->previous_state)));
        return o;
    }
    json_t *o = nubo_item_error_code(s->uuid, s->name, (enum nubo_api_error)s->error, s->message);
    if (o && s->has_state)
        json_object_set_new(o, "state", json_string(nubo_state_name(s->state)));
    if (o && s->has_stop_reason)
        json_object_set_new(o, "stop_reason", json_integer(s->stop_reason));
    return o;
}

int nubo_item_status_decode(json_t *j, struct nubo_item_status *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "item: must be a JSON object");
    char status[24] = "", state[16] = "", prev[16] = "";
    int rs, rr, rp;
    if (pj_str(j, "", "status", false, status, sizeof(status), err) < 0 ||
        (rp = pj_str(j, "", "previous_state", false, prev, sizeof(prev), err)) < 0 ||
        pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        (rs = pj_str(j, "", "state", false, state, sizeof(state), err)) < 0 ||
        (rr = pj_int(j, "", "stop_reason", false, 0, 31, &out->stop_reason, err)) < 0)
        return -1;
    out->has_state = rs == 1 && nubo_state_parse(state, &out->state) == 0;
    out->has_stop_reason = rr == 1;
    out->has_previous_state = rp == 1 && nubo_state_parse(prev, &out->previous_state) == 0;
    out->ok = strcmp(status, "error") != 0;
    if (out->ok)
        return 0;
    /* a message longer than ours is cut (on a character boundary), not refused: it is only
     * shown */
    json_t *m = json_object_get(j, "message");
    const char *text = json_is_string(m) ? json_string_value(m) : "failed";
    size_t len = strnlen(text, sizeof(out->message) - 1);
    if (text[len] != '\0')
        while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
            len--;
    memcpy(out->message, text, len);
    out->message[len] = '\0';
    return pj_int(j, "", "error", false, 0, 999, &out->error, err) < 0 ? -1 : 0;
}

json_t *nubo_log_window_encode(const struct nubo_log_window *c)
{
    char *b64 = nubo_base64_encode(c->data ? (const void *)c->data : "", c->len);
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:{s:I, s:I}, s:s}", "status", "success",
                  "uuid", c->uuid, "name", c->name, "output", b64 ? b64 : "", "available", "start",
                  (json_int_t)c->available_start, "end", (json_int_t)c->available_end, "range",
                  "start", (json_int_t)c->range_start, "end", (json_int_t)c->range_end, "state",
                  nubo_state_name(c->state));
    free(b64);
    return o;
}

void nubo_log_window_free(struct nubo_log_window *c)
{
    if (c == NULL)
        return;
    free(c->data);
    c->data = NULL;
    c->len = 0;
}

int nubo_log_window_decode(json_t *j, struct nubo_log_window *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "log: must be a JSON object");
    const int64_t big = INT64_C(1) << 53;
    char state[16] = "stopped";
    json_t *avail, *range;
    /* base64 of NUBO_API_LOG_MAX_LIMIT bytes, padded */
    char b64[(NUBO_API_LOG_MAX_LIMIT + 2) / 3 * 4 + 1] = "";
    if (pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_str(j, "", "output", false, b64, sizeof(b64), err) < 0 ||
        pj_str(j, "", "state", false, state, sizeof(state), err) < 0 ||
        pj_object(j, "", "available", false, &avail, err) < 0 ||
        pj_object(j, "", "range", false, &range, err) < 0)
        return -1;
    if (avail &&
        (pj_int(avail, "available", "start", false, 0, big, &out->available_start, err) < 0 ||
         pj_int(avail, "available", "end", false, 0, big, &out->available_end, err) < 0))
        return -1;
    int re = 0;
    if (range && (pj_int(range, "range", "start", false, 0, big, &out->range_start, err) < 0 ||
                  (re = pj_int(range, "range", "end", false, 0, big, &out->range_end, err)) < 0))
        return -1;
    out->has_range = re == 1;
    if (nubo_state_parse(state, &out->state) < 0)
        out->state = NUBO_STATE_STOPPED;
    if (b64[0]) {
        out->data = nubo_base64_decode(b64, &out->len);
        if (out->data == NULL)
            return nubo_error_http(err, 400, "output: must be base64");
    }
    return 0;
}

/* ---- envelope ------------------------------------------------------------------------ */

json_t *nubo_envelope_new(const char *status, const char *message, const char *collection,
                          json_t *items, int64_t op_time_us)
{
    json_t *o = json_object();
    json_object_set_new(o, "status", json_string(status));
    if (message)
        json_object_set_new(o, "message", json_string(message));
    if (collection && items)
        json_object_set_new(o, "data", json_pack("{s:o}", collection, items));
    else if (items)
        json_decref(items);
    json_object_set_new(o, "op_time_us", json_integer(op_time_us));
    return o;
}

int nubo_api_error_of_http(int http_status)
{
    switch (http_status) {
    case 400:
        return NUBO_APIERR_INVALID;
    case 401:
    case 403:
        return NUBO_APIERR_NOT_ALLOWED;
    case 404:
        return NUBO_APIERR_NOT_FOUND;
    case 405:
        return NUBO_APIERR_WRONG_METHOD;
    case 408:
        return NUBO_APIERR_TIMED_OUT;
    case 409:
        return NUBO_APIERR_ALREADY_EXISTS;
    case 413:
        return NUBO_APIERR_TOO_LONG;
    case 429:
        return NUBO_APIERR_TOO_MANY;
    case 503: /* no node with room */
        return NUBO_APIERR_NO_FREE;
    default:
        return http_status >= 500 ? NUBO_APIERR_FAILED_OPERATION : NUBO_APIERR_UNKNOWN_ERROR;
    }
}

int nubo_api_error_http(int code)
{
    switch (code) {
    case NUBO_APIERR_INVALID:
    case NUBO_APIERR_MISSING_ID:
    case NUBO_APIERR_MALFORMED_REQUEST:
    case NUBO_APIERR_NOT_BOTH:
    case NUBO_APIERR_GUEST_MEMORY_TOO_SMALL:
    case NUBO_APIERR_CANNOT_BE_USED:
    case NUBO_APIERR_AUTOSCALE_SIZE_OOR:
        return 400;
    case NUBO_APIERR_NOT_ALLOWED:
        return 403;
    case NUBO_APIERR_NOT_FOUND:
    case NUBO_APIERR_NO_API_ENDPOINT:
    case NUBO_APIERR_AUTOSCALE_NOT_CONFIGURED:
        return 404;
    case NUBO_APIERR_WRONG_METHOD:
        return 405;
    case NUBO_APIERR_TIMED_OUT:
        return 408;
    case NUBO_APIERR_WRONG_STATE:
    case NUBO_APIERR_ATTACHED:
    case NUBO_APIERR_NOT_ATTACHED:
    case NUBO_APIERR_ALREADY_EXISTS:
    case NUBO_APIERR_AUTOSCALE_INSTANCE:
    case NUBO_APIERR_AUTOSCALE_CONFIGURED:
    case NUBO_APIERR_AUTOSCALE_DISABLED:
        return 409;
    case NUBO_APIERR_TOO_LONG:
        return 413;
    case NUBO_APIERR_TOO_MANY:
    case NUBO_APIERR_QUOTA:
        return 429;
    case NUBO_APIERR_NO_FREE:
        return 503;
    default:
        return 500;
    }
}

json_t *nubo_item_error(const char *uuid, const char *name, int http_status, const char *msg)
{
    return nubo_item_error_code(uuid, name, nubo_api_error_of_http(http_status), msg);
}

json_t *nubo_item_error_code(const char *uuid, const char *name, enum nubo_api_error code,
                             const char *msg)
{
    json_t *o = json_pack("{s:s, s:s, s:i}", "status", "error", "message", msg, "error", code);
    if (uuid && uuid[0])
        json_object_set_new(o, "uuid", json_string(uuid));
    if (name && name[0])
        json_object_set_new(o, "name", json_string(name));
    return o;
}

int nubo_envelope_items(json_t *j, const char *collection, json_t **items, struct nubo_err *err)
{
    if (!json_is_object(j))
        return nubo_error_http(err, 502, "response is not a JSON object");
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *msg = json_string_value(json_object_get(j, "message"));
    if (status == NULL)
        return nubo_error_http(err, 502, "response has no status");
    json_t *data = json_object_get(j, "data");
    json_t *a = data ? json_object_get(data, collection) : NULL;
    if (strcmp(status, "error") == 0 && !json_is_array(a))
        return nubo_error_http(err, 400, "%s", msg ? msg : "request failed");
    if (!json_is_array(a))
        return nubo_error_http(err, 502, "response has no data.%s list", collection);
    *items = a;
    return 0;
}

bool nubo_envelope_failed(json_t *j)
{
    const char *st = json_string_value(json_object_get(j, "status"));
    return st && (strcmp(st, "error") == 0 || strcmp(st, "failure") == 0);
}

void nubo_envelope_message(json_t *j, char *buf, size_t size)
{
    const char *k, *msg = NULL;
    json_t *v;
    json_object_foreach(json_object_get(j, "data"), k, v)
    {
        msg = json_string_value(json_object_get(json_array_get(v, 0), "message"));
        if (msg)
            break;
    }
    if (msg == NULL)
        msg = json_string_value(json_object_get(j, "message"));
    snprintf(buf, size, "%s", msg ? msg : "");
}

PJ_LIST_CODEC(nubo_instance, struct nubo_instance, nubo_instance_decode, nubo_instance_free)
PJ_LIST_CODEC(nubo_image, struct nubo_image, nubo_image_decode, nubo_image_free)
PJ_LIST_CODEC(nubo_svc_group, struct nubo_svc_group, nubo_svc_group_decode, nubo_svc_group_free)
PJ_LIST_CODEC(nubo_certificate, struct nubo_certificate, nubo_certificate_decode,
              nubo_certificate_free)

/* ---- image references ---------------------------------------------------------------- */

static bool repo_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '/';
}

int nubo_api_image_ref_parse(const char *s, struct nubo_api_image_ref *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= NUBO_IMAGE_REF_MAX)
        return nubo_error_http(err, 400, "image: must be a reference like owner/name:tag");
    /* strip a registry host: the first component when it has a '.' or ':' (or is localhost) */
    const char *slash = strchr(s, '/');
    if (slash) {
        size_t hl = (size_t)(slash - s);
        if (memchr(s, '.', hl) || memchr(s, ':', hl) || (hl == 9 && !strncmp(s, "localhost", 9)))
            s = slash + 1;
    }
    char buf[NUBO_IMAGE_REF_MAX];
    snprintf(buf, sizeof(buf), "%s", s);
    char *at = strchr(buf, '@');
    if (at) {
        *at = '\0';
        if (!nubo_digest_valid(at + 1))
            return nubo_error_http(err, 400,
                                   "image: '%s' has a malformed digest (want sha256:<64 "
                                   "hex>)",
                                   s);
        snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
    }
    char *last_slash = strrchr(buf, '/');
    char *colon = strrchr(buf, ':');
    if (colon && (!last_slash || colon > last_slash)) {
        if (at)
            return nubo_error_http(err, 400, "image: '%s' has both a tag and a digest", s);
        *colon = '\0';
        size_t tl = strlen(colon + 1);
        if (tl == 0 || tl > 128)
            return nubo_error_http(err, 400, "image: '%s' has an empty or too long tag", s);
        for (const char *p = colon + 1; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                  (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
                return nubo_error_http(err, 400, "image: '%s' has a malformed tag", s);
        snprintf(out->tag, sizeof(out->tag), "%s", colon + 1);
    } else if (!at) {
        snprintf(out->tag, sizeof(out->tag), "latest");
    }
    size_t rl = strlen(buf);
    if (rl == 0 || rl >= sizeof(out->repo) || buf[0] == '/' || buf[rl - 1] == '/' ||
        strstr(buf, "//"))
        return nubo_error_http(err, 400, "image: '%s' is not a valid repository name", s);
    for (size_t i = 0; i < rl; i++)
        if (!repo_char(buf[i]))
            return nubo_error_http(err, 400,
                                   "image: '%s': repository names are lower-case [a-z0-9._-/]", s);
    snprintf(out->repo, sizeof(out->repo), "%s", buf);
    char *first = strchr(buf, '/');
    if (first) {
        *first = '\0';
        if (strlen(buf) > NUBO_API_USER_MAX)
            return nubo_error_http(err, 400, "image: '%s': owner name too long", s);
        snprintf(out->owner, sizeof(out->owner), "%s", buf);
    }
    return 0;
}

/* ---- quotas ----------------------------------------------------------------------------- */

static const char *const quota_names[NUBO_QUOTA_N] = {
    "instances", "live_instances", "live_memory_mb", "service_groups", "services",
    "volumes",   "total_volume_mb", "memory_mb",     "live_vcpus",     "certificates",
};

const char *nubo_quota_name(enum nubo_quota q)
{
    return (unsigned)q < NUBO_QUOTA_N ? quota_names[q] : NULL;
}

static json_t *quota_counts_encode(const int64_t *v)
{
    json_t *o = json_object();
    for (int i = 0; o && i < NUBO_QUOTA_N; i++)
        json_object_set_new(o, quota_names[i], json_integer(v[i]));
    return o;
}

json_t *nubo_user_quota_encode(const struct nubo_user_quota *q)
{
    return json_pack("{s:s, s:s, s:o, s:o, s:{s:I, s:I}}", "uuid", q->uuid, "name", q->name,
                     "used", quota_counts_encode(q->used), "hard", quota_counts_encode(q->hard),
                     "limits", "min_memory_mb", (json_int_t)q->min_memory_mb, "max_memory_mb",
                     (json_int_t)q->max_memory_mb);
}

static int quota_counts_decode(json_t *o, const char *ctx, int64_t *v, struct nubo_err *err)
{
    if (o == NULL)
        return 0;
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        if (pj_int(o, ctx, quota_names[i], false, 0, INT64_MAX, &v[i], err) < 0)
            return -1;
    return 0;
}

int nubo_user_quota_decode(json_t *j, struct nubo_user_quota *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "quota: not an object");
    if (pj_str(j, "quota", "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, "quota", "name", false, out->name, sizeof(out->name), err) < 0 ||
        quota_counts_decode(json_object_get(j, "used"), "used", out->used, err) < 0 ||
        quota_counts_decode(json_object_get(j, "hard"), "hard", out->hard, err) < 0)
        return -1;
    json_t *l = json_object_get(j, "limits");
    if (l && (pj_int(l, "limits", "min_memory_mb", false, 0, INT64_MAX, &out->min_memory_mb,
                     err) < 0 ||
              pj_int(l, "limits", "max_memory_mb", false, 0, INT64_MAX, &out->max_memory_mb,
                     err) < 0))
        return -1;
    return 0;
}

int nubo_quota_set_decode(json_t *j, struct nubo_quota_set *out, struct nubo_err *err)
{
    static const char *const keys[] = {"hard", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400,
                               "quotas: send {\"hard\": {\"live_memory_mb\": 4096, …}} (null = "
                               "the default)");
    if (pj_only_keys(j, "", keys, err) < 0) {
        err->http_status = 400;
        return -1;
    }
    json_t *h = json_object_get(j, "hard");
    if (!json_is_object(h) || json_object_size(h) == 0)
        return nubo_error_http(err, 400, "hard: an object of at least one quota");
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v)
    {
        int q = 0;
        while (q < NUBO_QUOTA_N && strcmp(quota_names[q], key) != 0)
            q++;
        if (q == NUBO_QUOTA_N)
            return nubo_error_http(err, 400, "hard.%.64s: not a quota (instances, live_instances, "
                                             "live_memory_mb, memory_mb, live_vcpus, "
                                             "service_groups, services, certificates, volumes, "
                                             "total_volume_mb)",
                                   key);
        out->given[q] = true;
        if (json_is_null(v)) {
            out->hard[q] = -1;
        } else if (pj_int(h, "hard", key, true, 0, NUBO_QUOTA_UNLIMITED, &out->hard[q], err) < 0) {
            return -1;
        }
    }
    return 0;
}

json_t *nubo_quota_set_encode(const struct nubo_quota_set *s)
{
    json_t *h = json_object();
    for (int i = 0; h && i < NUBO_QUOTA_N; i++)
        if (s->given[i])
            json_object_set_new(h, quota_names[i],
                                s->hard[i] < 0 ? json_null() : json_integer(s->hard[i]));
    return json_pack("{s:o}", "hard", h);
}
