/* Unit tests for the controller's model without HTTP: registration, placement (names,
 * addresses, all-or-nothing), start/stop, observations, delete-on-stop, drain, inline service
 * groups, and what the model reports through struct ctl_events; then a reload from the store
 * gives the same working set; the tenant rules (names, ports, quotas). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_fixture.h"
#include "scheduler.h"
#include "store_target.h"
#include "util.h"

/* What the model reported. */
static struct {
    int changed, gone, node_sets, services;
    char last_gone[NUBO_UUID_STR_LEN + 1];
    char last_metro[NUBO_NAME_MAX + 1];
} ev;

static void on_changed(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    ev.changed++;
}
static void on_gone(struct ctl_ctx *ctx, const char *uuid)
{
    ev.gone++;
    snprintf(ev.last_gone, sizeof(ev.last_gone), "%s", uuid);
}
static void on_node_set(struct ctl_ctx *ctx, struct ctl_node *node)
{
    ev.node_sets++;
}
static void on_services(struct ctl_ctx *ctx, const char *metro)
{
    ev.services++;
    snprintf(ev.last_metro, sizeof(ev.last_metro), "%s", metro);
}

static char dir[64];

/* The test's store with the model's events wired (fresh: an empty one, else a reload). */
static struct ctl_ctx *ctx_open_as(bool fresh)
{
    struct ctl_ctx *ctx = fix_ctx_new();
    ctx->events = (struct ctl_events){on_changed, on_gone, on_node_set, on_services};
    return fix_ctx_load(ctx, dir, fresh);
}

static struct ctl_ctx *ctx_open(void)
{
    return ctx_open_as(false);
}

static int setup(void **state)
{
    fix_dir_new(dir, sizeof(dir), "ctlmodel");
    memset(&ev, 0, sizeof(ev));
    *state = ctx_open_as(true);
    return 0;
}

static int teardown(void **state)
{
    fix_ctx_free(*state);
    return fix_dir_remove(dir);
}


/* Place one create of replicas + 1 instances; returns how many were made. */
static int place(struct ctl_ctx *ctx, const char *name, int64_t replicas, int64_t memory_mb,
                 json_t *sg, struct ctl_instance **made, struct nubo_err *err)
{
    struct nubo_create_req cr;
    fix_create_req(&cr, name);
    cr.replicas = replicas;
    cr.memory_mb = memory_mb;
    return fix_place(ctx, &cr, sg, made, err);
}

/* NAME with scale-to-zero on (cooldown 100 ms) behind port 443, alone on a new node "a". */
static struct ctl_instance *place_s2z(struct ctl_ctx *ctx, const char *name, bool stateful)
{
    fix_add_node(ctx, "a", "fra", 1024);
    json_t *sg = json_pack("{s:[{s:i, s:i}]}", "services", "port", 443, "destination_port", 8080);
    struct nubo_create_req cr;
    fix_create_req(&cr, name);
    cr.scale_to_zero = (struct nubo_scale_to_zero){NUBO_S2Z_ON, stateful, 100};
    struct ctl_instance *made[2];
    struct nubo_err err = {0};
    assert_int_equal(fix_place(ctx, &cr, sg, made, &err), 1);
    json_decref(sg);
    return made[0];
}

static void test_register_subnets(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_node *b = fix_add_node(ctx, "b", "fra", 1024);
    assert_int_not_equal(a->row.subnet_index, b->row.subnet_index);
    char gw[NUBO_IP_STR_MAX];
    ctl_node_gateway(a, gw);
    assert_string_equal(gw, "10.64.0.1");
    assert_int_equal(ev.node_sets, 2);
    /* a re-registration keeps the node and its subnet, with a new token */
    int64_t idx = a->row.subnet_index;
    assert_ptr_equal(fix_add_node(ctx, "a", "fra", 2048), a);
    assert_int_equal(a->row.subnet_index, idx);
    assert_int_equal(a->row.memory_mb, 2048);
}

/* Heartbeats of all nodes together stay under max_heartbeats_per_second: the interval stretches
 * with the node count, the grace with it, and a node told a long interval keeps its long grace
 * after the cluster shrinks until it is told the short one. */
static void test_heartbeat_stretch(void **state)
{
    struct ctl_ctx *ctx = *state;
    ctx->cfg.heartbeat_interval_ms = 2000;
    ctx->cfg.grace_ms = 10000;
    ctx->cfg.max_heartbeats_per_second = 2;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    fix_add_node(ctx, "b", "fra", 1024);
    assert_int_equal(ctl_heartbeat_ms(ctx), 2000); /* 2 nodes at 2 s = 1/s: no stretch */
    assert_int_equal(ctl_node_grace_ms(ctx, a), 10000);
    for (int i = 0; i < 8; i++) {
        char name[8];
        snprintf(name, sizeof(name), "n%d", i);
        fix_add_node(ctx, name, "fra", 1024);
    }
    assert_int_equal(ctl_heartbeat_ms(ctx), 5000); /* 10 nodes, 2 beats/s */
    assert_int_equal(ctl_node_grace_ms(ctx, a), 25000);
    a->heartbeat_told_ms = ctl_heartbeat_ms(ctx);
    ctx->cfg.max_heartbeats_per_second = 1000; /* as if the cluster shrank */
    assert_int_equal(ctl_heartbeat_ms(ctx), 2000);
    assert_int_equal(ctl_node_grace_ms(ctx, a), 25000);
    a->heartbeat_told_ms = 2000;
    assert_int_equal(ctl_node_grace_ms(ctx, a), 10000);
}

static void test_place_spread_and_addresses(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_node *b = fix_add_node(ctx, "b", "fra", 1024);
    struct ctl_instance *made[8];
    struct nubo_err err = {0};
    ev.node_sets = 0;
    assert_int_equal(place(ctx, "web", 3, 128, NULL, made, &err), 4);
    assert_string_equal(made[0]->row.name, "web");
    assert_int_equal(strncmp(made[1]->row.name, "web-", 4), 0);
    /* spread: two on each node, each node's lowest addresses .2 and .3 */
    assert_int_equal(a->n_instances, 2);
    assert_int_equal(b->n_instances, 2);
    for (int i = 0; i < 4; i++)
        assert_true(made[i]->row.ip_host == 2 || made[i]->row.ip_host == 3);
    int64_t used_mb, used_vcpus;
    ctl_node_used(a, &used_mb, &used_vcpus);
    assert_int_equal(used_mb, 256);
    assert_int_equal(ev.node_sets, 4);
    assert_ptr_equal(ctl_instance_find(ctx, fix_acme(), NULL, "web"), made[0]);
    assert_int_equal(ctl_instance_state(made[0]), NUBO_STATE_STARTING);
    /* the name is taken now */
    assert_int_equal(place(ctx, "web", 0, 128, NULL, made, &err), -1);
    assert_int_equal(err.http_status, 409);
}

static void test_place_all_or_nothing(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 512);
    struct ctl_instance *made[8];
    struct nubo_err err = {0};
    /* 3 x 256 MiB do not fit in 512: nothing is placed, no address stays taken */
    assert_int_equal(place(ctx, "big", 2, 256, NULL, made, &err), -1);
    assert_int_equal(err.http_status, 503);
    assert_int_equal(a->n_instances, 0);
    assert_int_equal(ctx->instances.n, 0);
    assert_int_equal(ctl_ip_lowest_free(a->ip_used), 2);
    /* more than the largest node offers is the caller's mistake */
    nubo_err_clear(&err);
    assert_int_equal(place(ctx, "huge", 0, 4096, NULL, made, &err), -1);
    assert_int_equal(err.http_status, 400);
}

static void test_start_stop_observe(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_instance *made[2];
    struct nubo_err err = {0};
    assert_int_equal(place(ctx, "app", 0, 128, NULL, made, &err), 1);
    struct ctl_instance *in = made[0];
    struct nubo_status_report r = fix_report(in, NUBO_STATE_RUNNING);
    ev.changed = 0;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_RUNNING);
    assert_int_equal(ev.changed, 1);
    /* the same report again changes nothing and says nothing */
    r = fix_report(in, NUBO_STATE_RUNNING);
    r.started_at_us = in->obs.started_at_us;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    assert_int_equal(ev.changed, 1);
    /* stop: desired stopped, visible stopping until the node reports */
    struct ctl_desire d = {.in = in, .start = false};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_true(d.changed);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STOPPING);
    /* a second stop is no change */
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_false(d.changed);
    /* start again: a new start_seq, starting until the node acts on it */
    int64_t seq = in->row.start_seq;
    d = (struct ctl_desire){.in = in, .start = true};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_int_equal(in->row.start_seq, seq + 1);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STARTING);
}

static void test_delete_on_stop(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct nubo_create_req cr;
    fix_create_req(&cr, "once");
    cr.features = NUBO_FEATURE_DELETE_ON_STOP;
    struct ctl_instance *made[1];
    struct nubo_err err = {0};
    assert_int_equal(fix_place(ctx, &cr, NULL, made, &err), 1);
    char uuid[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, made[0]->row.uuid, sizeof(uuid));
    struct nubo_status_report r = fix_report(made[0], NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, a, &r, 1, &err), 0);
    assert_int_equal(ctx->instances.n, 0);
    assert_int_equal(ev.gone, 1);
    assert_string_equal(ev.last_gone, uuid);
    assert_int_equal(a->n_instances, 0);
    assert_int_equal(ctl_ip_lowest_free(a->ip_used), 2);
}

static void test_drain(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_instance *made[4];
    struct nubo_err err = {0};
    assert_int_equal(place(ctx, "w", 1, 256, NULL, made, &err), 2);
    /* no other node: nothing moves */
    struct nubo_moved_instance *moved = NULL;
    size_t n_moved = 0;
    assert_int_equal(ctl_node_drain(ctx, a, &moved, &n_moved, &err), -1);
    assert_null(moved);
    assert_int_equal(err.http_status, 409);
    assert_false(a->row.maintenance);
    struct ctl_node *b = fix_add_node(ctx, "b", "fra", 1024);
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_drain(ctx, a, &moved, &n_moved, &err), 0);
    assert_int_equal(n_moved, 2);
    assert_string_equal(moved[0].node, "b");
    free(moved);
    assert_true(a->row.maintenance);
    assert_int_equal(a->n_instances, 0);
    assert_int_equal(b->n_instances, 2);
    assert_ptr_equal(made[0]->node, b);
    assert_false(made[0]->has_obs);
    /* a drained node takes nothing new */
    assert_int_equal(place(ctx, "x", 0, 128, NULL, made, &err), 1);
    assert_ptr_equal(made[0]->node, b);
    assert_int_equal(ctl_node_set_ready(ctx, a, &err), 0);
    assert_false(a->row.maintenance);
}

static void test_inline_group(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    json_t *sg = json_pack("{s:[{s:i, s:i}]}", "services", "port", 443, "destination_port", 8080);
    struct ctl_instance *made[4];
    struct nubo_err err = {0};
    ev.services = 0;
    assert_int_equal(place(ctx, "svc", 1, 128, sg, made, &err), 2);
    json_decref(sg);
    struct ctl_svc *g = made[0]->svc;
    assert_non_null(g);
    assert_ptr_equal(made[1]->svc, g);
    assert_int_equal(g->n_instances, 2);
    assert_false(g->row.persistent);
    assert_string_equal(g->row.metro, "fra");
    assert_int_equal(ev.services, 1);
    assert_string_equal(ev.last_metro, "fra");
    int64_t ports[4];
    assert_int_equal(ctl_svc_dest_ports(g, ports, 4), 1);
    assert_int_equal(ports[0], 8080);
    /* an inline group goes with its last instance, in the same transaction */
    assert_int_equal(ctl_instances_delete(ctx, made, 2, &err), 0);
    assert_int_equal(ctx->svcs.n, 0);
    assert_int_equal(ev.gone, 2);
}

/* Tenants: platform names only one label under the group's own metro, certificates never
 * naming the platform's domain, public ports from the allowed list, quotas refusing a create
 * with the limit's name and changing nothing. */
static void test_tenant_rules(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 4096);
    struct nubo_err err = {0};
    const char *refused[] = {"fra.nubo.local", "nubo.local", "x.ams.nubo.local",
                             "a.b.fra.nubo.local"};
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        memset(&err, 0, sizeof(err));
        assert_int_equal(ctl_domain_check(ctx, "acme", "fra", refused[i], NULL, &err), -1);
        assert_int_equal(err.http_status, 400);
    }
    assert_int_equal(ctl_domain_check(ctx, "acme", "fra", "x.fra.nubo.local", NULL, &err), 0);
    assert_int_equal(ctl_domain_check(ctx, "acme", "fra", "www.acme.test", NULL, &err), 0);
    assert_int_equal(ctl_cert_name_check(ctx, "acme", "*.fra.nubo.local", &err), -1);
    assert_int_equal(ctl_cert_name_check(ctx, "acme", "*.acme.test", &err), 0);
    assert_int_equal(ctl_public_port_check(ctx, 22, &err), -1);
    assert_int_equal(ctl_public_port_check(ctx, 8443, &err), 0);
    assert_int_equal(ctl_public_port_check(ctx, 443, &err), 0);

    ctx->cfg.quota_default[NUBO_QUOTA_LIVE_MEMORY_MB] = 256;
    struct ctl_instance *made[4];
    assert_int_equal(place(ctx, "q", 1, 128, NULL, made, &err), 2);
    memset(&err, 0, sizeof(err));
    assert_int_equal(place(ctx, "over", 0, 16, NULL, made, &err), -1);
    assert_int_equal(err.http_status, 403);
    assert_non_null(strstr(err.msg, "quota live_memory_mb"));
    assert_int_equal(ctx->instances.n, 2);
    int64_t used[NUBO_QUOTA_N];
    ctl_quota_used(ctx, "acme", used);
    assert_int_equal(used[NUBO_QUOTA_LIVE_MEMORY_MB], 256);
    assert_int_equal(used[NUBO_QUOTA_INSTANCES], 2);
}

static void test_reload(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    fix_add_node(ctx, "b", "ams", 1024);
    struct ctl_instance *made[4];
    struct nubo_err err = {0};
    assert_int_equal(place(ctx, "keep", 2, 128, NULL, made, &err), 3);
    char uuid[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, made[0]->row.uuid, sizeof(uuid));
    int64_t ip = made[0]->row.ip_host;
    fix_ctx_free(ctx);
    *state = ctx = ctx_open();
    assert_int_equal(ctx->nodes.n, 2);
    assert_int_equal(ctx->instances.n, 3);
    struct ctl_instance *in = ctl_instance_find(ctx, fix_acme(), uuid, NULL);
    assert_non_null(in);
    assert_non_null(in->node);
    assert_int_equal(in->row.ip_host, ip);
    int64_t used_mb, used_vcpus;
    ctl_node_used(in->node, &used_mb, &used_vcpus);
    assert_int_equal(used_mb, 128 * (int64_t)in->node->n_instances);
    /* another user's instance answers like a missing one */
    const struct ctl_user_row other = {.uuid = "u-x", .name = "other"};
    assert_null(ctl_instance_find(ctx, &other, uuid, NULL));
}

/* Scale-to-zero's state machine: quiet -> standby (persisted), a wake starts one, a user's stop
 * is not woken. */
static void test_scale_to_zero(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_instance *in = place_s2z(ctx, "sleepy", false);
    struct nubo_err err = {0};
    char uuid[NUBO_UUID_STR_LEN + 1], svc[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, in->row.uuid, sizeof(uuid));
    memcpy(svc, in->svc->row.uuid, sizeof(svc));
    struct nubo_status_report r = fix_report(in, NUBO_STATE_RUNNING);
    r.started_at_us = nubo_now_us() - 10 * 1000000;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    struct nubo_ingress_traffic_item it = {.current = 1, .idle_ms = 5000};
    memcpy(it.instance, uuid, sizeof(it.instance));
    struct nubo_ingress_traffic t = {"fra", &it, 1};
    /* a session open, too short a quiet time, another metro's report: it keeps running */
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    it = (struct nubo_ingress_traffic_item){.current = 0, .idle_ms = 50};
    memcpy(it.instance, uuid, sizeof(it.instance));
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    it.idle_ms = 200;
    snprintf(t.metro, sizeof(t.metro), "ams");
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_RUNNING);
    /* quiet past the cooldown: drained at the ingress first, still running */
    snprintf(t.metro, sizeof(t.metro), "fra");
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in->s2z_drain_us > 0);
    assert_false(in->row.standby);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_RUNNING);
    /* traffic before the drain took: the drain ends, it stays */
    it.idle_ms = 10;
    it.draining = true;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(in->s2z_drain_us, 0);
    assert_false(in->row.standby);
    /* drained again; a request waiting at the activator keeps it (no second instance started) */
    it.idle_ms = 200;
    it.draining = false;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in->s2z_drain_us > 0);
    struct nubo_ingress_wake_resp wr;
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 0);
    assert_int_equal(wr.starting, 1);
    assert_int_equal(in->s2z_drain_us, 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_RUNNING);
    /* drained again, and a report that shows it drained and still quiet: stopped (forced) as
     * standby; one that does not show the drain yet changes nothing */
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_false(in->row.standby);
    it.draining = true;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(in->s2z_drain_us, 0);
    assert_true(in->row.standby);
    assert_true(in->row.stop_force);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STOPPING);
    r = fix_report(in, NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STANDBY);
    /* the standby flag and the settings survive a restart */
    fix_ctx_free(ctx);
    *state = ctx = ctx_open();
    in = ctl_instance_find(ctx, fix_acme(), uuid, NULL);
    assert_non_null(in);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STANDBY);
    assert_int_equal(in->row.s2z.policy, NUBO_S2Z_ON);
    assert_int_equal(in->row.s2z.cooldown_time_ms, 100);
    /* a wake starts it once; another wake while it starts starts nothing more */
    assert_int_equal(ctl_s2z_wake(ctx, "ams", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.starting, 0); /* not the asking ingress's metro */
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 1);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STARTING);
    assert_false(in->row.standby);
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 0);
    assert_int_equal(wr.starting, 1);
    /* standby again, then a user's stop: it stays stopped, nothing to wake */
    r = fix_report(in, NUBO_STATE_RUNNING);
    r.started_at_us = nubo_now_us() - 10 * 1000000;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0); /* drain */
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0); /* drained: standby */
    r = fix_report(in, NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STANDBY);
    struct ctl_desire d = {.in = in, .start = false, .force = true};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_true(d.changed);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STOPPED);
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.starting, 0);
    /* a standby stop never applies to what a user stopped */
    d = (struct ctl_desire){.in = in, .standby = true};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_false(d.changed);
    struct ctl_instance *v[1] = {in};
    assert_int_equal(ctl_instances_delete(ctx, v, 1, &err), 0);
}

/* Stopped instances hold no memory (the platform's rule): a full metro of stopped instances
 * takes new ones, and a start finds room on its node or another of its metro, or says why not. */
static void test_place_at_start(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_node *b = fix_add_node(ctx, "b", "fra", 1024);
    struct ctl_instance *made[2], *big[2];
    struct nubo_err err = {0};
    int64_t mem, vcpus;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(place(ctx, i ? "big2" : "big1", 0, 768, NULL, made, &err), 1);
        big[i] = made[0];
        struct nubo_status_report r = fix_report(big[i], NUBO_STATE_RUNNING);
        assert_int_equal(ctl_instances_observe(ctx, big[i]->node, &r, 1, &err), 0);
    }
    assert_ptr_not_equal(big[0]->node, big[1]->node);
    /* the metro is full while they run */
    assert_int_equal(place(ctx, "third", 0, 768, NULL, made, &err), -1);
    assert_int_equal(err.http_status, 503);
    /* stopping: the guest holds its memory until its node reports it stopped */
    for (int i = 0; i < 2; i++) {
        struct ctl_desire d = {.in = big[i]};
        assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
        assert_true(ctl_instance_holds(big[i]));
        struct nubo_status_report r = fix_report(big[i], NUBO_STATE_STOPPED);
        assert_int_equal(ctl_instances_observe(ctx, big[i]->node, &r, 1, &err), 0);
        assert_false(ctl_instance_holds(big[i]));
    }
    ctl_node_used(a, &mem, &vcpus);
    assert_int_equal(mem, 0);
    /* two stopped instances no longer block another create */
    nubo_err_clear(&err);
    assert_int_equal(place(ctx, "third", 0, 768, NULL, made, &err), 1);
    struct ctl_node *full = made[0]->node;
    struct ctl_instance *mover = big[0]->node == full ? big[0] : big[1];
    struct ctl_instance *other = mover == big[0] ? big[1] : big[0];
    struct ctl_node *home = other->node;
    /* a create that does not start takes an address, not memory */
    struct nubo_create_req cr;
    fix_create_req(&cr, "later");
    cr.autostart = false;
    cr.memory_mb = 1024;
    assert_int_equal(fix_place(ctx, &cr, NULL, made, &err), 1);
    assert_false(ctl_instance_holds(made[0]));
    /* the start of the instance whose node filled up runs on the other node */
    struct ctl_desire d = {.in = mover, .start = true};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_true(d.changed);
    assert_ptr_equal(mover->node, home);
    assert_string_equal(mover->row.node_uuid, home->row.uuid);
    assert_false(mover->has_obs);
    assert_int_equal(ctl_instance_state(mover), NUBO_STATE_STARTING);
    ctl_node_used(home, &mem, &vcpus);
    assert_int_equal(mem, 768);
    /* the last one fits nowhere: a 503 naming it, nothing changed */
    d = (struct ctl_desire){.in = other, .start = true};
    int64_t seq = other->row.start_seq;
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), -1);
    assert_int_equal(err.http_status, 503);
    assert_non_null(strstr(err.msg, other->row.name));
    assert_non_null(strstr(err.msg, "no capacity"));
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(other->row.start_seq, seq);
    assert_ptr_equal(other->node, home);
    /* the moved placement is what a restarted controller reads back */
    char uuid[NUBO_UUID_STR_LEN + 1], home_name[NUBO_NAME_MAX + 1];
    memcpy(uuid, mover->row.uuid, sizeof(uuid));
    snprintf(home_name, sizeof(home_name), "%s", home->row.name);
    int64_t ip = mover->row.ip_host;
    fix_ctx_free(ctx);
    *state = ctx = ctx_open();
    struct ctl_instance *back = ctl_instance_find(ctx, fix_acme(), uuid, NULL);
    assert_non_null(back);
    assert_string_equal(back->node->row.name, home_name);
    assert_int_equal(back->row.ip_host, ip);
    assert_false(back->has_obs);
    (void)a;
    (void)b;
}

/* Stateful: the standby is a stop that saves (not forced); the guest's disable counter holds
 * the instance out of standby while it is above 0. */
static void test_scale_to_zero_stateful(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_instance *in = place_s2z(ctx, "keeper", true);
    struct nubo_err err = {0};
    struct nubo_status_report r = fix_report(in, NUBO_STATE_RUNNING);
    r.started_at_us = nubo_now_us() - 10 * 1000000;
    r.s2z_disable = 2;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    struct nubo_ingress_traffic_item it = {.current = 0, .idle_ms = 5000};
    memcpy(it.instance, in->row.uuid, sizeof(it.instance));
    struct nubo_ingress_traffic t = {"fra", &it, 1};
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_RUNNING); /* held by its guest */
    r.s2z_disable = 0;
    assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    it.draining = true;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0); /* drain */
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0); /* drained: standby */
    assert_true(in->row.standby);
    assert_false(in->row.stop_force); /* a destroy would lose what the save keeps */
    /* a request arriving while the node still saves it wakes it (not an empty group) */
    assert_int_equal(ctl_instance_state(in), NUBO_STATE_STOPPING);
    assert_true(ctl_instance_sleeping(in));
    struct nubo_ingress_wake_resp wr;
    assert_int_equal(ctl_s2z_wake(ctx, "fra", in->svc->row.uuid, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 1);
    assert_int_equal(in->row.desired, NUBO_DESIRED_RUNNING);
    struct ctl_instance *v[1] = {in};
    assert_int_equal(ctl_instances_delete(ctx, v, 1, &err), 0);
}

/* Policy idle: client connections held open at the ingress do not hold it (silent_ms), an
 * HTTP request in flight or a TCP connection does (they restart silent_ms); on is held by both;
 * a report without silent_ms decides idle like on. */
static void test_scale_to_zero_idle(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_instance *in[2];
    struct nubo_ingress_traffic_item it[2];
    struct nubo_err err = {0};
    for (int i = 0; i < 2; i++) {
        json_t *sg =
            json_pack("{s:[{s:i, s:i}]}", "services", "port", 443, "destination_port", 8080);
        struct nubo_create_req cr;
        nubo_create_req_init(&cr);
        snprintf(cr.name, sizeof(cr.name), i ? "on" : "idle");
        snprintf(cr.image, sizeof(cr.image), "%s", fix_image()->digest_ref);
        cr.scale_to_zero =
            (struct nubo_scale_to_zero){i ? NUBO_S2Z_ON : NUBO_S2Z_IDLE, false, 100};
        cr.autostart = true;
        struct ctl_instance *made[2];
        size_t n = 0;
        assert_int_equal(ctl_place(ctx, fix_acme(), &cr, fix_image(), sg, made, &n, &err), 0);
        json_decref(sg);
        nubo_create_req_free(&cr);
        in[i] = made[0];
        struct nubo_status_report r = fix_report(in[i], NUBO_STATE_RUNNING);
        r.started_at_us = nubo_now_us() - 10 * 1000000;
        assert_int_equal(ctl_instances_observe(ctx, in[i]->node, &r, 1, &err), 0);
        /* a keep-alive client connection open at the ingress, silent for 5 s */
        it[i] = (struct nubo_ingress_traffic_item){.current = 1, .idle_ms = 0, .silent_ms = 5000};
        memcpy(it[i].instance, in[i]->row.uuid, sizeof(it[i].instance));
    }
    struct nubo_ingress_traffic t = {"fra", it, 2};
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in[0]->s2z_drain_us > 0); /* idle: on its way */
    assert_int_equal(in[1]->s2z_drain_us, 0); /* on: held by the connection */
    it[0].draining = it[1].draining = true;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in[0]->row.standby);
    assert_false(in[1]->row.standby);
    /* a request in flight (silent_ms restarts) holds idle; an older ingress: idle as on */
    struct nubo_ingress_wake_resp wr;
    assert_int_equal(ctl_s2z_wake(ctx, "fra", in[0]->svc->row.uuid, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 1);
    struct nubo_status_report r = fix_report(in[0], NUBO_STATE_RUNNING);
    r.started_at_us = nubo_now_us() - 10 * 1000000;
    assert_int_equal(ctl_instances_observe(ctx, in[0]->node, &r, 1, &err), 0);
    it[0].silent_ms = 0;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(in[0]->s2z_drain_us, 0);
    it[0].silent_ms = -1;
    it[0].idle_ms = 5000;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(in[0]->s2z_drain_us, 0); /* current 1 */
    struct ctl_instance *v[2] = {in[0], in[1]};
    assert_int_equal(ctl_instances_delete(ctx, v, 2, &err), 0);
}

/* Make every write of an observation of uuid fail at COMMIT (a deferred check), on either
 * backend, through a connection of the test's own. */
static void fail_obs_commits(struct ctl_ctx *ctx, const char *uuid)
{
    char sql[1024];
    struct nubo_err err = {0};
    if (store_pg_url() == NULL) {
        /* a deferred foreign key the trigger breaks: sqlite checks it at COMMIT */
        snprintf(sql, sizeof(sql),
                 "PRAGMA foreign_keys=ON; CREATE TABLE fk_parent(id INTEGER PRIMARY KEY);"
                 "CREATE TABLE fk_child(id INTEGER REFERENCES fk_parent(id) DEFERRABLE "
                 "INITIALLY DEFERRED);"
                 "CREATE TRIGGER obs_fail AFTER INSERT ON observations WHEN NEW.uuid = '%s' "
                 "BEGIN INSERT INTO fk_child VALUES(1); END;",
                 uuid);
        if (ctl_db_exec(ctx->store.db, sql, &err) < 0)
            fail_msg("%s", err.msg);
        return;
    }
    char url[PATH_MAX];
    store_target(url, sizeof(url), dir, "ctl", false);
    PGconn *c = PQconnectdb(url);
    PQsetNoticeProcessor(c, store_quiet, NULL);
    snprintf(sql, sizeof(sql),
             "CREATE FUNCTION obs_fail() RETURNS trigger LANGUAGE plpgsql AS "
             "$$ BEGIN RAISE EXCEPTION 'injected'; END $$;"
             "CREATE CONSTRAINT TRIGGER obs_fail AFTER INSERT OR UPDATE ON observations "
             "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.uuid = '%s') "
             "EXECUTE FUNCTION obs_fail()",
             uuid);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s", PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/* Group commit (agents.c writes the status reports of one loop pass in one transaction): the
 * reports of several nodes apply in order; a commit that fails fails the whole group, and the
 * working set still matches the store. */
static void test_observe_group(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_node *b = fix_add_node(ctx, "b", "ams", 1024);
    struct nubo_create_req cr;
    struct ctl_instance *x, *y, *z;
    struct nubo_err err = {0};
    fix_create_req(&cr, "x");
    snprintf(cr.metro, sizeof(cr.metro), "fra");
    assert_int_equal(fix_place(ctx, &cr, NULL, &x, &err), 1);
    fix_create_req(&cr, "y");
    snprintf(cr.metro, sizeof(cr.metro), "ams");
    assert_int_equal(fix_place(ctx, &cr, NULL, &y, &err), 1);
    fix_create_req(&cr, "z");
    cr.features = NUBO_FEATURE_DELETE_ON_STOP;
    snprintf(cr.metro, sizeof(cr.metro), "ams");
    assert_int_equal(fix_place(ctx, &cr, NULL, &z, &err), 1);
    assert_ptr_equal(x->node, a);
    assert_ptr_equal(y->node, b);
    /* node a: x starting then running; node b: y running, z stopped for good (deleted after
     * the whole group applied) */
    struct nubo_status_report ra[2] = {fix_report(x, NUBO_STATE_STARTING),
                                       fix_report(x, NUBO_STATE_RUNNING)};
    struct nubo_status_report rb[2] = {fix_report(y, NUBO_STATE_RUNNING),
                                       fix_report(z, NUBO_STATE_STOPPED)};
    struct ctl_obs_part parts[2] = {{a, ra, 2}, {b, rb, 2}};
    ev.changed = ev.gone = 0;
    assert_int_equal(ctl_instances_observe_group(ctx, parts, 2, &err), 0);
    assert_int_equal(ctl_instance_state(x), NUBO_STATE_RUNNING);
    assert_int_equal(ctl_instance_state(y), NUBO_STATE_RUNNING);
    assert_int_equal(ev.gone, 1);
    assert_int_equal(ctx->instances.n, 2);
    assert_true(ctl_state_counts_verify(ctx));
    /* x's observation cannot commit: the report of y in the same group fails with it */
    fail_obs_commits(ctx, x->row.uuid);
    struct nubo_status_report fa[1] = {fix_report(x, NUBO_STATE_STOPPED)};
    struct nubo_status_report fb[1] = {fix_report(y, NUBO_STATE_STOPPED)};
    struct ctl_obs_part fparts[2] = {{b, fb, 1}, {a, fa, 1}};
    ev.changed = 0;
    nubo_err_clear(&err);
    assert_int_equal(ctl_instances_observe_group(ctx, fparts, 2, &err), -1);
    assert_true(err.msg[0] != '\0');
    assert_int_equal(ev.changed, 0);
    assert_int_equal(ctl_instance_state(x), NUBO_STATE_RUNNING);
    assert_int_equal(ctl_instance_state(y), NUBO_STATE_RUNNING);
    assert_true(ctl_state_counts_verify(ctx));
    /* the store says the same: a second controller loads both running */
    struct ctl_ctx *again = ctx_open();
    struct ctl_instance *x2 = ctl_map_get(&again->instances, x->row.uuid);
    struct ctl_instance *y2 = ctl_map_get(&again->instances, y->row.uuid);
    assert_non_null(x2);
    assert_non_null(y2);
    assert_int_equal(ctl_instance_state(x2), NUBO_STATE_RUNNING);
    assert_int_equal(ctl_instance_state(y2), NUBO_STATE_RUNNING);
    fix_ctx_free(again);
    /* the store takes writes again: y's report alone commits */
    struct nubo_status_report fy = fix_report(y, NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, b, &fy, 1, &err), 0);
    assert_int_equal(ctl_instance_state(y), NUBO_STATE_STOPPED);
    assert_true(ctl_state_counts_verify(ctx));
}

/* The counts GET /metrics reads (kept at every transition) against a walk of the instances,
 * through creates, reports, stops, standby, an unavailable node, a move and deletes. */
static void test_state_counts(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    struct ctl_node *a = fix_add_node(ctx, "a", "fra", 1024);
    fix_add_node(ctx, "b", "fra", 1024);
    fix_add_node(ctx, "c", "ams", 1024);
    struct ctl_instance *made[4];
    assert_int_equal(place(ctx, "m", 3, 64, NULL, made, &err), 4);
    assert_true(ctl_state_counts_verify(ctx));
    struct ctl_metro_states *m = NULL;
    size_t nm = ctl_instance_state_sums(ctx, false, &m);
    uint64_t starting = 0;
    for (size_t i = 0; i < nm; i++)
        starting += m[i].by_state[NUBO_STATE_STARTING];
    free(m);
    assert_int_equal(starting, 4);
    for (int i = 0; i < 4; i++) {
        struct nubo_status_report r = fix_report(made[i], NUBO_STATE_RUNNING);
        assert_int_equal(ctl_instances_observe(ctx, made[i]->node, &r, 1, &err), 0);
        assert_true(ctl_state_counts_verify(ctx));
    }
    struct ctl_desire d = {.in = made[0], .start = false};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    assert_true(ctl_state_counts_verify(ctx)); /* stopping */
    struct nubo_status_report r = fix_report(made[0], NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, made[0]->node, &r, 1, &err), 0);
    d = (struct ctl_desire){.in = made[1], .standby = true};
    assert_int_equal(ctl_instances_desire(ctx, &d, 1, &err), 0);
    r = fix_report(made[1], NUBO_STATE_STOPPED);
    assert_int_equal(ctl_instances_observe(ctx, made[1]->node, &r, 1, &err), 0);
    assert_int_equal(ctl_instance_state(made[1]), NUBO_STATE_STANDBY);
    assert_true(ctl_state_counts_verify(ctx));
    /* node a goes away: its instances read unavailable, then come back */
    a->last_seen_mono_us = nubo_mono_us() - INT64_C(3600) * 1000000;
    ctl_nodes_check(ctx);
    assert_false(a->ready);
    assert_true(ctl_state_counts_verify(ctx));
    ctl_node_seen(ctx, a);
    assert_true(ctl_state_counts_verify(ctx));
    /* drained: its instances move (their observations go with the old placement) */
    struct nubo_moved_instance *moved = NULL;
    size_t n_moved = 0;
    ctl_node_drain(ctx, a, &moved, &n_moved, &err);
    free(moved);
    assert_true(ctl_state_counts_verify(ctx));
    /* a reload counts the same */
    fix_ctx_free(ctx);
    *state = ctx = ctx_open();
    assert_true(ctl_state_counts_verify(ctx));
    struct ctl_instance *all[4];
    size_t n = 0;
    ctl_map_foreach(&ctx->instances, e) all[n++] = e->val;
    assert_int_equal(ctl_instances_delete(ctx, all, n, &err), 0);
    assert_true(ctl_state_counts_verify(ctx));
    nm = ctl_instance_state_sums(ctx, false, &m);
    free(m);
    assert_int_equal(nm, 0); /* no metro row without instances, as a walk has none */
}

/* Policy idle on TCP ports: an open TCP session holds a stateless instance (silent_ms); a
 * stateful one only while its byte counters move (quiet_ms, at least 6 s: HAProxy refreshes a
 * busy session's counters every <= 5 s). Bytes on its sleeping slot wake that very instance,
 * even while another of its group runs. */
static void test_scale_to_zero_idle_tcp(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 2048);
    struct ctl_instance *in[3]; /* stateful, stateful (same group), stateless */
    struct nubo_ingress_traffic_item it[3];
    struct nubo_err err = {0};
    for (int g = 0; g < 2; g++) {
        json_t *sg = json_pack("{s:[{s:i, s:i, s:[s]}]}", "services", "port", 6379,
                               "destination_port", 6379, "handlers", "tls");
        struct nubo_create_req cr;
        fix_create_req(&cr, g ? "plain" : "keeper");
        cr.replicas = g ? 0 : 1;
        cr.scale_to_zero = (struct nubo_scale_to_zero){NUBO_S2Z_IDLE, g == 0, 100};
        assert_int_equal(fix_place(ctx, &cr, sg, in + (g ? 2 : 0), &err), g ? 1 : 2);
        json_decref(sg);
    }
    for (int i = 0; i < 3; i++) {
        struct nubo_status_report r = fix_report(in[i], NUBO_STATE_RUNNING);
        r.started_at_us = nubo_now_us() - 10 * 1000000;
        assert_int_equal(ctl_instances_observe(ctx, in[i]->node, &r, 1, &err), 0);
        /* a TCP session open, its bytes not moving for 5.5 s: a busy one may look so */
        it[i] = (struct nubo_ingress_traffic_item){.current = 1, .silent_ms = 0, .quiet_ms = 5500};
        memcpy(it[i].instance, in[i]->row.uuid, sizeof(it[i].instance));
    }
    it[1].quiet_ms = 0; /* the group's other instance is busy */
    struct nubo_ingress_traffic t = {"fra", it, 3};
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(in[i]->s2z_drain_us, 0);
    it[0].quiet_ms = it[2].quiet_ms = 6000; /* past the counters' lag: silent */
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in[0]->s2z_drain_us > 0);     /* stateful: on its way */
    assert_int_equal(in[2]->s2z_drain_us, 0); /* stateless: held by the connection */
    it[0].draining = it[2].draining = true;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_true(in[0]->row.standby);
    assert_false(in[1]->row.standby);
    assert_false(in[2]->row.standby);
    /* a group wake finds one running and starts nothing; the instance's own wake starts it */
    const char *svc = in[0]->svc->row.uuid;
    struct nubo_ingress_wake_resp wr;
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, NULL, &wr, &err), 0);
    assert_int_equal(wr.woken, 0);
    assert_true(in[0]->row.standby);
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, in[2]->row.uuid, &wr, &err), 0);
    assert_int_equal(wr.starting, 0); /* not this group's: nothing */
    uint64_t wakes = ctx->metrics.s2z_wakes;
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, in[0]->row.uuid, &wr, &err), 0);
    assert_int_equal(wr.woken, 1);
    assert_int_equal(wr.starting, 1);
    assert_int_equal(in[0]->row.desired, NUBO_DESIRED_RUNNING);
    assert_int_equal(ctx->metrics.s2z_wakes, wakes + 1);
    assert_int_equal(ctl_s2z_wake(ctx, "fra", svc, in[0]->row.uuid, &wr, &err), 0);
    assert_int_equal(wr.woken, 0); /* asked again while it starts: nothing more */
    assert_int_equal(wr.starting, 1);
    /* a cooldown longer than the lag rules: 7 s quiet is not 8 s */
    struct nubo_status_report r = fix_report(in[0], NUBO_STATE_RUNNING);
    r.started_at_us = nubo_now_us() - 10 * 1000000;
    assert_int_equal(ctl_instances_observe(ctx, in[0]->node, &r, 1, &err), 0);
    in[0]->row.s2z.cooldown_time_ms = 8000;
    it[0].quiet_ms = 7000;
    it[0].draining = false;
    assert_int_equal(ctl_s2z_traffic(ctx, &t, &err), 0);
    assert_int_equal(in[0]->s2z_drain_us, 0);
    struct ctl_instance *v[3] = {in[0], in[1], in[2]};
    assert_int_equal(ctl_instances_delete(ctx, v, 3, &err), 0);
}

/* The capacity index (capacity.c) against the scheduler on every node: after random creates,
 * stops, reports, unavailable and drained nodes, a plan places exactly where ctl_schedule on
 * a full snapshot (sums walked from the instances) would, and the kept sums match the walk. */
static void test_plan_matches_full_schedule(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    const char *metros[] = {"fra", "ams", "par"};
    struct ctl_node *nodes[48];
    srandom(7);
    for (int i = 0; i < 48; i++) {
        char name[16];
        snprintf(name, sizeof(name), "n%d", i);
        nodes[i] = fix_add_node(ctx, name, metros[i % 3], 512 * (1 + random() % 4));
    }
    struct ctl_instance *made[8];
    for (int step = 0; step < 400; step++) {
        int what = (int)(random() % 10);
        if (what < 5) { /* a create, maybe with replicas; it may not fit */
            char name[16];
            snprintf(name, sizeof(name), "i%d", step);
            nubo_err_clear(&err);
            place(ctx, name, random() % 4, 64 * (1 + random() % 8), NULL, made, &err);
        } else if (what < 7 && ctx->instances.n) { /* stop one, or report it stopped */
            struct ctl_instance *in = NULL;
            size_t pick = (size_t)random() % ctx->instances.n, k = 0;
            ctl_map_foreach(&ctx->instances, e) if (k++ == pick) in = e->val;
            if (what == 5) {
                struct ctl_desire d = {.in = in, .start = random() % 2 == 0};
                nubo_err_clear(&err);
                ctl_instances_desire(ctx, &d, 1, &err);
            } else {
                struct nubo_status_report r =
                    fix_report(in, random() % 2 ? NUBO_STATE_STOPPED : NUBO_STATE_RUNNING);
                assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
            }
        } else if (what == 7) { /* a node goes away or comes back */
            struct ctl_node *n = nodes[random() % 48];
            if (n->ready)
                n->last_seen_mono_us = nubo_mono_us() - INT64_C(3600) * 1000000;
            else
                ctl_node_seen(ctx, n);
            ctl_nodes_check(ctx);
        } else if (what == 8) { /* drained, or back in service */
            struct ctl_node *n = nodes[random() % 48];
            struct nubo_moved_instance *moved = NULL;
            size_t n_moved = 0;
            nubo_err_clear(&err);
            if (n->row.maintenance)
                ctl_node_set_ready(ctx, n, &err);
            else
                ctl_node_drain(ctx, n, &moved, &n_moved, &err);
            free(moved);
        }
        assert_true(ctl_capacity_verify(ctx));
        assert_true(ctl_state_counts_verify(ctx));
        /* the same request both ways */
        struct ctl_sched_node all[48];
        for (int i = 0; i < 48; i++) {
            int64_t mb, vc;
            ctl_node_used_walk(nodes[i], &mb, &vc);
            all[i] = (struct ctl_sched_node){nodes[i]->row.uuid, nodes[i]->row.metro,
                                             nodes[i]->ready && !nodes[i]->row.maintenance,
                                             nodes[i]->row.memory_mb - mb,
                                             nodes[i]->row.vcpus * ctx->cfg.vcpu_overcommit - vc,
                                             CTL_HOSTS_PER_NODE - (int64_t)nodes[i]->n_instances};
        }
        struct ctl_sched_req rq = {random() % 4 ? metros[random() % 3] : "",
                                   64 * (random() % 9), random() % 3, 1 + (size_t)(random() % 6)};
        size_t want[8], got[8];
        struct nubo_err e1 = {0}, e2 = {0};
        int r1 = ctl_schedule(all, 48, &rq, want, &e1);
        struct ctl_plan plan;
        ctl_plan_init(&plan, ctx, NULL);
        int r2 = ctl_plan_place(&plan, &rq, got, &e2);
        assert_int_equal(r1, r2);
        if (r1 < 0)
            assert_string_equal(e1.msg, e2.msg);
        for (size_t k = 0; r1 == 0 && k < rq.count; k++)
            assert_ptr_equal(plan.node[got[k]], nodes[want[k]]);
        ctl_plan_free(&plan);
    }
    assert_true(ctx->instances.n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register_subnets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_to_zero_stateful, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_to_zero_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_to_zero_idle_tcp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_heartbeat_stretch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_spread_and_addresses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_all_or_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_stop_observe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_on_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tenant_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scale_to_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_at_start, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plan_matches_full_schedule, setup, teardown),
        cmocka_unit_test_setup_teardown(test_observe_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_counts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
