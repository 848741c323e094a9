/* The node's state file (<state_dir>/state.json), written atomically (tmp, fsync, rename):
 * node identity, and per instance its assignment, its last report and what a restarted agent
 * needs to re-adopt a running guest unchanged. Every field is validated on read. */
#include "agent_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"

#define STATE_VERSION 1

int agent_state_save(struct agent *ag, struct nubo_err *err)
{
    cleanup_json json_t *root = json_object();
    json_t *insts = json_array();
    json_object_set_new(root, "version", json_integer(STATE_VERSION));
    json_object_set_new(root, "node_name", json_string(ag->cfg.node_name));
    if (ag->have_node)
        json_object_set_new(root, "node",
                            json_pack("{s:s, s:s, s:s, s:s}", "uuid", ag->node.uuid, "subnet",
                                      ag->node.subnet, "gateway", ag->node.gateway, "dns",
                                      ag->node.dns));
    json_object_set_new(root, "instances", insts);
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    {
        struct nubo_status_report r;
        agent_report_fill(in, &r);
        json_t *o = json_object();
        json_object_set_new(o, "uuid", json_string(in->uuid));
        json_object_set_new(o, "report", nubo_status_report_encode(&r));
        if (in->assigned)
            json_object_set_new(o, "assignment", nubo_assignment_encode(&in->a));
        json_object_set_new(o, "start_seq_done", json_integer(in->start_seq_done));
        json_object_set_new(o, "domain", json_boolean(in->domain));
        if (strcmp(in->dom, in->uuid) != 0) /* it runs in a warm slot's domain */
            json_object_set_new(o, "domain_name", json_string(in->dom));
        json_object_set_new(o, "ready_seen", json_boolean(in->ready_seen));
        json_object_set_new(o, "exit_seen", json_boolean(in->exit_seen));
        json_object_set_new(o, "exit_code", json_integer(in->exit_code));
        json_object_set_new(o, "crash_text", json_string(in->crash_text));
        json_object_set_new(o, "stop_user", json_boolean(in->stop_user));
        json_object_set_new(o, "stop_force", json_boolean(in->stop_force));
        json_object_set_new(o, "saved", json_boolean(in->saved));
        json_object_set_new(o, "t0_real_us", json_integer(in->t0_real_us));
        json_object_set_new(o, "image_digest",
                            json_string(in->img ? in->img->digest : in->image_digest));
        json_array_append_new(insts, o);
    }
    cleanup_free char *text = json_dumps(root, JSON_COMPACT);
    if (!text)
        return nubo_error(err, ENOMEM, "cannot encode the agent state");
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/state.json", ag->cfg.state_dir);
    if (nubo_write_file_atomic(p, text, strlen(text), 0600, err) < 0)
        return nubo_error_wrap(err, "cannot save agent state");
    return 0;
}

static bool jbool(json_t *o, const char *k)
{
    return json_is_true(json_object_get(o, k));
}

int agent_state_load(struct agent *ag, struct nubo_err *err)
{
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/state.json", ag->cfg.state_dir);
    cleanup_free char *text = NULL;
    size_t len;
    if (nubo_read_file(p, AGENT_STATE_MAX, &text, &len, err) < 0) {
        if (err && err->errnum == ENOENT) {
            nubo_err_clear(err);
            return 0; /* first start */
        }
        return nubo_error_wrap(err, "cannot read agent state (move it away to start afresh)");
    }
    json_error_t je;
    cleanup_json json_t *root = json_loadb(text, len, 0, &je);
    if (!root || !json_is_object(root))
        return nubo_error(err, 0, "agent state %s: not JSON (line %d: %s); move it away to "
                          "start afresh", p, je.line, je.text);
    if (json_integer_value(json_object_get(root, "version")) != STATE_VERSION)
        return nubo_error(err, 0, "agent state %s: unknown version", p);
    json_t *node = json_object_get(root, "node");
    if (json_is_object(node)) {
        struct nubo_err e = {0};
        if (pj_str(node, "node", "uuid", true, ag->node.uuid, sizeof(ag->node.uuid), &e) < 0 ||
            pj_str(node, "node", "subnet", true, ag->node.subnet, sizeof(ag->node.subnet), &e) <
                0 ||
            pj_str(node, "node", "gateway", true, ag->node.gateway, sizeof(ag->node.gateway),
                   &e) < 0 ||
            pj_str(node, "node", "dns", false, ag->node.dns, sizeof(ag->node.dns), &e) < 0)
            return nubo_error(err, 0, "agent state %s: %s", p, e.msg);
        ag->have_node = true;
    }
    json_t *insts = json_object_get(root, "instances");
    size_t i;
    json_t *o;
    json_array_foreach(insts, i, o)
    {
        struct nubo_err e = {0};
        const char *uuid = json_string_value(json_object_get(o, "uuid"));
        if (!uuid || !nubo_uuid_valid(uuid)) {
            log_warnx("agent state: instances[%zu] has no valid uuid; skipped", i);
            continue;
        }
        struct nubo_status_report r = {0};
        if (nubo_status_report_decode(json_object_get(o, "report"), "report", &r, &e) < 0) {
            log_warnx("agent state: instance %s: %s; skipped", uuid, e.msg);
            continue;
        }
        struct agent_instance *in = agent_instance_new(ag, uuid);
        if (!in) {
            nubo_status_report_free(&r);
            return nubo_error(err, ENOMEM, "agent state");
        }
        if (r.message)
            snprintf(in->msg, sizeof(in->msg), "%s", r.message);
        nubo_status_report_free(&r);
        in->r = r;
        in->r.message = NULL;
        json_t *a = json_object_get(o, "assignment");
        if (a && nubo_assignment_decode(a, "assignment", &in->a, &e) == 0)
            in->assigned = true;
        in->start_seq_done = json_integer_value(json_object_get(o, "start_seq_done"));
        in->domain = jbool(o, "domain");
        const char *dn = json_string_value(json_object_get(o, "domain_name"));
        if (dn && nubo_uuid_valid(dn)) {
            snprintf(in->dom, sizeof(in->dom), "%s", dn);
            agent_slot_net_names(dn, in->tap, in->mac);
        }
        in->ready_seen = jbool(o, "ready_seen");
        in->exit_seen = jbool(o, "exit_seen");
        in->exit_code = (int)json_integer_value(json_object_get(o, "exit_code"));
        in->stop_user = jbool(o, "stop_user");
        in->stop_force = jbool(o, "stop_force");
        in->saved = jbool(o, "saved");
        /* want_stop stays false: a stop that was under way is issued again by reconcile */
        in->t0_real_us = json_integer_value(json_object_get(o, "t0_real_us"));
        /* boot time of a guest that had not reached its marker keeps counting from t0 */
        if (in->t0_real_us > 0)
            in->t0_mono_us = nubo_mono_us() - (nubo_now_us() - in->t0_real_us);
        in->t1_mono_us = in->t0_mono_us;
        const char *ct = json_string_value(json_object_get(o, "crash_text"));
        snprintf(in->crash_text, sizeof(in->crash_text), "%s", ct ? ct : "");
        const char *dg = json_string_value(json_object_get(o, "image_digest"));
        if (dg && nubo_digest_valid(dg)) {
            snprintf(in->image_digest, sizeof(in->image_digest), "%s", dg);
            struct agent_image *img = agent_image_find(ag, dg);
            if (img) {
                img->refs++;
                in->img = img;
                agent_instance_boot_rules(in); /* a guest still running is judged as it booted */
            }
        }
        agent_instance_rearm(ag, in);
        /* Something half done when we died (a pull, a create) is redone from the start —
         * unless libvirt turns out to hold the domain (agent_resync_domains adopts it then). */
        if (!in->domain && in->r.state != NUBO_STATE_STOPPED) {
            in->r.state = NUBO_STATE_STOPPED;
            in->start_seq_done = in->start_seq_done > 0 ? in->start_seq_done - 1 : -1;
        }
    }
    log_info("agent state: %zu instance(s) loaded from %s", json_array_size(insts), p);
    return 0;
}
