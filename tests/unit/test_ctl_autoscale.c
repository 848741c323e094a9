/* Unit tests for controller/model_autoscale.c without HTTP or timers: the loop driven by hand
 * (ctl_autoscale_tick at chosen times, traffic reports fed in): scale-out at once and once per
 * warmup, spread over nodes, max_size held, scale-in after the cooldown down to the master,
 * the replicas' marks across a restart, delete, a reset when the master goes, and CPU from the
 * agents' counter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_autoscale.h"
#include "ctl_fixture.h"

static char dir[64];

/* fresh: an empty store, else a reload of the test's. */
static struct ctl_ctx *ctx_open(bool fresh)
{
    struct ctl_ctx *ctx = fix_ctx_new();
    ctx->base = event_base_new();
    fix_ctx_load(ctx, dir, fresh);
    /* the loop clones as the owner: it must be a known user */
    struct ctl_user_row *u = xmalloc(sizeof(*u));
    *u = *fix_acme();
    ctl_map_put(&ctx->users_by_name, u->name, u);
    struct nubo_err err = {0};
    assert_int_equal(ctl_autoscale_start(ctx, &err), 0);
    return ctx;
}

static void ctx_close(struct ctl_ctx *ctx)
{
    struct event_base *base = ctx->base;
    ctl_autoscale_free(ctx);
    fix_ctx_free(ctx);
    event_base_free(base);
}

static int setup(void **state)
{
    fix_dir_new(dir, sizeof(dir), "ctlas");
    *state = ctx_open(true);
    return 0;
}

static int teardown(void **state)
{
    ctx_close(*state);
    return fix_dir_remove(dir);
}

/* Every instance of g reports running, started long ago (warm). */
static void all_running(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    struct nubo_err err = {0};
    for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
        if (ctl_instance_state(in) == NUBO_STATE_RUNNING)
            continue;
        struct nubo_status_report r = fix_report(in, NUBO_STATE_RUNNING);
        r.started_at_us -= 10 * 1000000;
        assert_int_equal(ctl_instances_observe(ctx, in->node, &r, 1, &err), 0);
    }
}

/* The ingress reports current sessions open to every instance of g. */
static void traffic(struct ctl_ctx *ctx, struct ctl_svc *g, int64_t current)
{
    struct nubo_ingress_traffic_item it[8] = {0};
    size_t n = 0;
    for (struct ctl_instance *in = g->inst_head; in && n < 8; in = in->svc_next) {
        memcpy(it[n].instance, in->row.uuid, sizeof(it[n].instance));
        it[n++].current = current;
    }
    struct nubo_ingress_traffic t = {"fra", it, n};
    ctl_autoscale_traffic(ctx, &t);
}

static struct ctl_instance *make_master(struct ctl_ctx *ctx, struct ctl_svc **g)
{
    json_t *sg = json_pack("{s:[{s:i, s:i}]}", "services", "port", 443, "destination_port", 8080);
    struct nubo_create_req cr;
    fix_create_req(&cr, "master");
    cr.memory_mb = 256;
    struct ctl_instance *made[1];
    struct nubo_err err = {0};
    assert_int_equal(fix_place(ctx, &cr, sg, made, &err), 1);
    json_decref(sg);
    *g = made[0]->svc;
    all_running(ctx, *g);
    return made[0];
}

static void configure(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    json_t *j =
        json_loads("{\"name\":\"x\",\"min_size\":1,\"max_size\":3,\"warmup_time_ms\":100,"
                   "\"cooldown_time_ms\":200,\"policies\":[{\"name\":\"load\",\"type\":\"step\","
                   "\"metric\":\"inflight_reqs\",\"steps\":[{\"upper_bound\":1,\"adjustment\":-1},"
                   "{\"lower_bound\":3,\"adjustment\":1}]}]}",
                   0, NULL);
    struct nubo_as_config req;
    struct nubo_err err = {0};
    assert_int_equal(nubo_as_config_req_decode(j, &req, &err), 0);
    json_decref(j);
    assert_int_equal(ctl_autoscale_create(ctx, fix_acme(), g, &req, &err), 0);
    assert_int_equal(ctl_autoscale_create(ctx, fix_acme(), g, &req, &err), -1);
    assert_int_equal(err.http_status, 409);
    nubo_as_config_free(&req);
}

#define MS 1000

static void test_up_and_down(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    fix_add_node(ctx, "b", "fra", 1024);
    struct ctl_svc *g;
    struct ctl_instance *m = make_master(ctx, &g);
    char master[NUBO_UUID_STR_LEN + 1], svc[NUBO_UUID_STR_LEN + 1];
    memcpy(master, m->row.uuid, sizeof(master));
    memcpy(svc, g->row.uuid, sizeof(svc));
    configure(ctx, g);
    int64_t t = nubo_mono_us();
    /* idle at min_size: nothing to do */
    traffic(ctx, g, 0);
    ctl_autoscale_tick(ctx, t);
    assert_int_equal(g->n_instances, 1);
    /* 6 in flight on the master: one more at once, a clone on the other node */
    traffic(ctx, g, 6);
    ctl_autoscale_tick(ctx, t + 10 * MS);
    assert_int_equal(g->n_instances, 2);
    struct ctl_instance *r1 = g->inst_head == m ? m->svc_next : g->inst_head;
    assert_string_equal(r1->row.image, m->row.image);
    assert_int_equal(r1->row.memory_mb, 256);
    assert_int_equal(r1->row.desired, NUBO_DESIRED_RUNNING);
    assert_true(r1->node != m->node);
    /* still loaded, but within the warmup: no second step */
    all_running(ctx, g);
    traffic(ctx, g, 6);
    ctl_autoscale_tick(ctx, t + 50 * MS);
    assert_int_equal(g->n_instances, 2);
    ctl_autoscale_tick(ctx, t + 120 * MS);
    assert_int_equal(g->n_instances, 3);
    /* max_size holds */
    all_running(ctx, g);
    traffic(ctx, g, 50);
    ctl_autoscale_tick(ctx, t + 300 * MS);
    assert_int_equal(g->n_instances, 3);
    /* quiet: one step down per cooldown, never the master */
    traffic(ctx, g, 0);
    ctl_autoscale_tick(ctx, t + 400 * MS);
    assert_int_equal(g->n_instances, 3);
    ctl_autoscale_tick(ctx, t + 500 * MS);
    assert_int_equal(g->n_instances, 3);
    ctl_autoscale_tick(ctx, t + 610 * MS);
    assert_int_equal(g->n_instances, 2);
    /* a restart keeps the configuration and which instances are replicas */
    ctx_close(ctx);
    *state = ctx = ctx_open(false);
    g = ctl_map_get(&ctx->svcs, svc);
    assert_non_null(g);
    assert_non_null(ctl_autoscale_of(ctx, svc));
    struct nubo_as_config view;
    ctl_autoscale_view(ctx, g, &view);
    assert_true(view.configured);
    assert_string_equal(view.master.name, "master");
    assert_int_equal(view.n_policies, 1);
    nubo_as_config_free(&view);
    all_running(ctx, g);
    t = nubo_mono_us();
    traffic(ctx, g, 0);
    ctl_autoscale_tick(ctx, t);
    ctl_autoscale_tick(ctx, t + 250 * MS);
    assert_int_equal(g->n_instances, 1);
    assert_string_equal(g->inst_head->row.uuid, master);
    /* delete: replicas go (none left here), the master stays */
    traffic(ctx, g, 6);
    ctl_autoscale_tick(ctx, t + 300 * MS);
    assert_int_equal(g->n_instances, 2);
    struct nubo_err err = {0};
    assert_int_equal(ctl_autoscale_delete(ctx, g, &err), 0);
    assert_int_equal(g->n_instances, 1);
    assert_null(ctl_autoscale_of(ctx, svc));
    assert_int_equal(ctl_autoscale_delete(ctx, g, &err), -1);
    assert_int_equal(err.http_status, 404);
}

static void test_master_gone(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_svc *g;
    struct ctl_instance *m = make_master(ctx, &g);
    /* a second, ordinary member keeps the (inline) group alive without the master */
    json_t *sg = json_pack("{s:s}", "uuid", g->row.uuid);
    struct nubo_create_req cr;
    fix_create_req(&cr, "other");
    cr.autostart = false;
    struct ctl_instance *made[1];
    struct nubo_err err = {0};
    assert_int_equal(fix_place(ctx, &cr, sg, made, &err), 1);
    json_decref(sg);
    char svc[NUBO_UUID_STR_LEN + 1];
    memcpy(svc, g->row.uuid, sizeof(svc));
    configure(ctx, g);
    all_running(ctx, g);
    traffic(ctx, g, 9);
    ctl_autoscale_tick(ctx, nubo_mono_us());
    assert_int_equal(g->n_instances, 3);
    struct ctl_instance *v[1] = {m};
    assert_int_equal(ctl_instances_delete(ctx, v, 1, &err), 0);
    ctl_autoscale_tick(ctx, nubo_mono_us());
    /* the replica went with the configuration; the ordinary member stays */
    assert_null(ctl_autoscale_of(ctx, svc));
    assert_int_equal(g->n_instances, 1);
    assert_string_equal(g->inst_head->row.name, "other");
}

static void test_cpu(void **state)
{
    struct ctl_ctx *ctx = *state;
    fix_add_node(ctx, "a", "fra", 1024);
    struct ctl_svc *g;
    struct ctl_instance *m = make_master(ctx, &g);
    configure(ctx, g);
    json_t *j = json_loads("{\"name\":\"hot\",\"type\":\"step\",\"steps\":[{\"lower_bound\":80,"
                           "\"adjustment\":1}]}",
                           0, NULL);
    struct nubo_as_policy *p = xmalloc(sizeof(*p));
    struct nubo_err err = {0};
    assert_int_equal(nubo_as_policy_decode(j, "", p, &err), 0);
    json_decref(j);
    assert_int_equal(ctl_autoscale_policy_add(ctx, g, p, &err), 0);
    assert_int_equal(ctl_autoscale_policy_add(ctx, g, p, &err), -1);
    assert_int_equal(err.http_status, 409);
    free(p);
    /* the agents' counter: 450 ms of CPU in 1 s is 45 %, then 950 ms is 95 % */
    int64_t t = nubo_mono_us();
    traffic(ctx, g, 1); /* requests in flight between the steps: no opinion from "load" */
    m->cpu_time_ms = 1000;
    ctl_autoscale_tick(ctx, t);
    m->cpu_time_ms = 1450;
    ctl_autoscale_tick(ctx, t + 1000 * MS);
    assert_int_equal(g->n_instances, 1);
    traffic(ctx, g, 1);
    m->cpu_time_ms = 2400;
    ctl_autoscale_tick(ctx, t + 2000 * MS);
    assert_int_equal(g->n_instances, 2);
    assert_int_equal(ctl_autoscale_policy_delete(ctx, g, "hot", &err), 0);
    assert_int_equal(ctl_autoscale_policy_delete(ctx, g, "hot", &err), -1);
    assert_int_equal(err.http_status, 404);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_up_and_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_master_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cpu, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
