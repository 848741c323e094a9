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
#include "util.h"

static char dir[64];
static const struct ctl_user_row acme = {.uuid = "u-acme", .name = "acme"};

static struct ctl_ctx *ctx_open(void)
{
    struct ctl_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct nubo_err err = {0};
    ctl_config_defaults(&ctx->cfg);
    ctx->base = event_base_new();
    char path[128];
    snprintf(path, sizeof(path), "%s/ctl.db", dir);
    assert_int_equal(ctl_store_open(&ctx->store, path, false, &err), 0);
    assert_int_equal(ctl_state_load(ctx, &err), 0);
    /* the loop clones as the owner: it must be a known user */
    struct ctl_user_row *u = xmalloc(sizeof(*u));
    *u = acme;
    ctl_map_put(&ctx->users_by_name, acme.name, u);
    assert_int_equal(ctl_autoscale_start(ctx, &err), 0);
    return ctx;
}

static void ctx_close(struct ctl_ctx *ctx)
{
    ctl_autoscale_free(ctx);
    ctl_state_free(ctx);
    ctl_store_close(&ctx->store);
    event_base_free(ctx->base);
    free(ctx);
}

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/nubo-ctlas-XXXXXX");
    assert_non_null(mkdtemp(dir));
    *state = ctx_open();
    return 0;
}

static int teardown(void **state)
{
    ctx_close(*state);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void add_node(struct ctl_ctx *ctx, const char *name)
{
    struct nubo_register_req rq = {0};
    snprintf(rq.name, sizeof(rq.name), "%s", name);
    snprintf(rq.metro, sizeof(rq.metro), "fra");
    rq.memory_mb = 1024;
    rq.vcpus = 4;
    snprintf(rq.accel, sizeof(rq.accel), "tcg");
    char token[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node = NULL;
    struct nubo_err err = {0};
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, token, &node, &err), 0);
}

static const struct ctl_image_row image = {
    .digest_ref =
        "acme/web@sha256:0000000000000000000000000000000000000000000000000000000000000000",
    .repo = "acme/web",
    .owner = "acme",
};

/* Every instance of g reports running, started long ago (warm). */
static void all_running(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    struct nubo_err err = {0};
    for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
        if (ctl_instance_state(in) == NUBO_STATE_RUNNING)
            continue;
        struct nubo_status_report r = {0};
        memcpy(r.uuid, in->row.uuid, sizeof(r.uuid));
        r.state = NUBO_STATE_RUNNING;
        r.start_seq = in->row.start_seq;
        r.start_count = 1;
        r.started_at_us = nubo_now_us() - 10 * 1000000;
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
    nubo_create_req_init(&cr);
    snprintf(cr.name, sizeof(cr.name), "master");
    cr.autostart = true;
    cr.memory_mb = 256;
    struct ctl_instance *made[1];
    size_t n = 0;
    struct nubo_err err = {0};
    assert_int_equal(ctl_place(ctx, &acme, &cr, &image, sg, made, &n, &err), 0);
    json_decref(sg);
    nubo_create_req_free(&cr);
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
    assert_int_equal(ctl_autoscale_create(ctx, &acme, g, &req, &err), 0);
    assert_int_equal(ctl_autoscale_create(ctx, &acme, g, &req, &err), -1);
    assert_int_equal(err.http_status, 409);
    nubo_as_config_free(&req);
}

#define MS 1000

static void test_up_and_down(void **state)
{
    struct ctl_ctx *ctx = *state;
    add_node(ctx, "a");
    add_node(ctx, "b");
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
    *state = ctx = ctx_open();
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
    add_node(ctx, "a");
    struct ctl_svc *g;
    struct ctl_instance *m = make_master(ctx, &g);
    /* a second, ordinary member keeps the (inline) group alive without the master */
    json_t *sg = json_pack("{s:s}", "uuid", g->row.uuid);
    struct nubo_create_req cr;
    nubo_create_req_init(&cr);
    snprintf(cr.name, sizeof(cr.name), "other");
    struct ctl_instance *made[1];
    size_t n = 0;
    struct nubo_err err = {0};
    assert_int_equal(ctl_place(ctx, &acme, &cr, &image, sg, made, &n, &err), 0);
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
    add_node(ctx, "a");
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
