/* Unit tests for controller/scheduler.c: fit, metro, readiness, spread, determinism. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scheduler.h"

static void test_spread_and_tiebreak(void **state)
{
    struct ctl_sched_node nodes[] = {
        {"c", "fra", true, 1000, 8, 253},
        {"a", "fra", true, 1000, 8, 253},
        {"b", "fra", true, 1000, 8, 253},
    };
    struct ctl_sched_req req = {"fra", 128, 1, 3};
    size_t out[3];
    struct nubo_err err = {0};
    assert_int_equal(ctl_schedule(nodes, 3, &req, out, &err), 0);
    /* equal nodes: lowest uuid first, and each replica on another node */
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 2);
    assert_int_equal(out[2], 0);
    /* six replicas: two per node */
    size_t out6[6];
    req.count = 6;
    assert_int_equal(ctl_schedule(nodes, 3, &req, out6, &err), 0);
    int per[3] = {0};
    for (int i = 0; i < 6; i++)
        per[out6[i]]++;
    assert_int_equal(per[0], 2);
    assert_int_equal(per[1], 2);
    assert_int_equal(per[2], 2);
    /* same input, same answer */
    size_t again[6];
    assert_int_equal(ctl_schedule(nodes, 3, &req, again, &err), 0);
    assert_memory_equal(out6, again, sizeof(again));
}

static void test_most_free_memory_first(void **state)
{
    struct ctl_sched_node nodes[] = {
        {"a", "fra", true, 500, 8, 253},
        {"b", "fra", true, 2000, 8, 253},
    };
    struct ctl_sched_req req = {NULL, 128, 1, 1};
    size_t out[1];
    assert_int_equal(ctl_schedule(nodes, 2, &req, out, NULL), 0);
    assert_int_equal(out[0], 1);
}

static void test_filters(void **state)
{
    struct ctl_sched_node nodes[] = {
        {"a", "fra", false, 4000, 8, 253}, /* not ready */
        {"b", "dal", true, 4000, 8, 253},  /* other metro */
        {"c", "fra", true, 100, 8, 253},   /* too little memory */
        {"d", "fra", true, 4000, 0, 253},  /* no vCPU left */
        {"e", "fra", true, 4000, 8, 0},    /* no address left */
        {"f", "fra", true, 4000, 8, 253},
    };
    struct ctl_sched_req req = {"fra", 256, 1, 1};
    size_t out[2];
    struct nubo_err err = {0};
    assert_int_equal(ctl_schedule(nodes, 6, &req, out, &err), 0);
    assert_int_equal(out[0], 5);
    /* the only fitting node takes both when they fit */
    req.count = 2;
    assert_int_equal(ctl_schedule(nodes, 6, &req, out, &err), 0);
    assert_int_equal(out[0], 5);
    assert_int_equal(out[1], 5);
}

static void test_no_capacity(void **state)
{
    struct ctl_sched_node nodes[] = {
        {"a", "fra", true, 300, 8, 253},
        {"b", "fra", true, 300, 8, 253},
    };
    struct ctl_sched_req req = {"fra", 256, 1, 3}; /* 2 fit, 3 do not */
    size_t out[3];
    struct nubo_err err = {0};
    assert_int_equal(ctl_schedule(nodes, 2, &req, out, &err), -1);
    assert_int_equal(err.http_status, 503);
    assert_non_null(strstr(err.msg, "no capacity"));
    assert_null(strchr(err.msg, '\n'));
    req.metro = "sin";
    assert_int_equal(ctl_schedule(nodes, 2, &req, out, &err), -1);
    assert_int_equal(err.http_status, 400);
    assert_int_equal(ctl_schedule(NULL, 0, &(struct ctl_sched_req){NULL, 16, 1, 1}, out, &err), -1);
    assert_int_equal(err.http_status, 503);
}

static void test_many_nodes(void **state)
{
    enum { N = 10000 };
    struct ctl_sched_node *nodes = calloc(N, sizeof(*nodes));
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "n%05d", i);
        nodes[i] = (struct ctl_sched_node){ids[i], i % 2 ? "fra" : "dal", true, 4096, 4, 253};
    }
    struct ctl_sched_req req = {"fra", 128, 1, 254};
    size_t out[254];
    assert_int_equal(ctl_schedule(nodes, N, &req, out, NULL), 0);
    for (int i = 0; i < 254; i++) {
        assert_int_equal(out[i] % 2, 1);
        for (int k = 0; k < i; k++)
            assert_true(out[k] != out[i]); /* 254 replicas on 5000 nodes: all apart */
    }
    free(nodes);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread_and_tiebreak),
        cmocka_unit_test(test_most_free_memory_first),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_no_capacity),
        cmocka_unit_test(test_many_nodes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
