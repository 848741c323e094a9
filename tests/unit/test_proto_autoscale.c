/* Unit tests for proto/autoscale.c: the step math (bounds, adjustment types, several policies,
 * clamping) and the codecs (defaults, the spec's shapes, every refusal one line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"

static json_t *parse(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    assert_non_null(j);
    return j;
}

static struct nubo_as_policy policy(const char *json)
{
    struct nubo_as_policy p;
    struct nubo_err err = {0};
    json_t *j = parse(json);
    assert_int_equal(nubo_as_policy_decode(j, "", &p, &err), 0);
    json_decref(j);
    return p;
}

static void test_step_bounds(void **state)
{
    /* below 1 in flight: one fewer; 1..5: keep; 5 and up: two more */
    struct nubo_as_policy p =
        policy("{\"name\":\"p\",\"type\":\"step\",\"metric\":\"inflight_reqs\",\"steps\":["
               "{\"upper_bound\":1,\"adjustment\":-1},{\"lower_bound\":1,\"upper_bound\":5,"
               "\"adjustment\":0},{\"lower_bound\":5,\"adjustment\":2}]}");
    assert_int_equal(p.metric, NUBO_AS_METRIC_INFLIGHT);
    assert_int_equal(p.adjustment_type, NUBO_AS_ADJ_CHANGE);
    int64_t w = -7;
    assert_true(nubo_as_policy_want(&p, 0.0, 3, &w));
    assert_int_equal(w, 2);
    assert_true(nubo_as_policy_want(&p, 0.99, 3, &w));
    assert_int_equal(w, 2);
    assert_true(nubo_as_policy_want(&p, 1.0, 3, &w)); /* lower bound inclusive */
    assert_int_equal(w, 3);
    assert_true(nubo_as_policy_want(&p, 5.0, 3, &w)); /* upper bound exclusive */
    assert_int_equal(w, 5);
    assert_true(nubo_as_policy_want(&p, 1e9, 3, &w));
    assert_int_equal(w, 5);
    /* a gap between steps: no opinion */
    struct nubo_as_policy g = policy("{\"name\":\"g\",\"type\":\"step\",\"steps\":["
                                     "{\"upper_bound\":10,\"adjustment\":-1},"
                                     "{\"lower_bound\":80,\"adjustment\":1}]}");
    assert_int_equal(g.metric, NUBO_AS_METRIC_CPU); /* the spec's default */
    assert_false(nubo_as_policy_want(&g, 50.0, 2, &w));
    assert_true(nubo_as_policy_want(&g, -3.0, 2, &w));
    assert_int_equal(w, 1);
}

static void test_adjustment_types(void **state)
{
    int64_t w;
    struct nubo_as_policy e = policy("{\"name\":\"e\",\"type\":\"step\",\"adjustment_type\":"
                                     "\"exact\",\"steps\":{\"lower_bound\":0,\"adjustment\":3}}");
    assert_int_equal(e.n_steps, 1); /* the spec's single step object */
    assert_true(nubo_as_policy_want(&e, 0, 7, &w));
    assert_int_equal(w, 3);
    struct nubo_as_policy pc = policy("{\"name\":\"pc\",\"type\":\"step\",\"adjustment_type\":"
                                      "\"percent\",\"steps\":[{\"lower_bound\":50,"
                                      "\"adjustment\":50},{\"upper_bound\":50,"
                                      "\"adjustment\":-10}]}");
    assert_true(nubo_as_policy_want(&pc, 60, 4, &w));
    assert_int_equal(w, 6); /* 4 + 50 % */
    assert_true(nubo_as_policy_want(&pc, 60, 1, &w));
    assert_int_equal(w, 2); /* 50 % of one is still one more */
    assert_true(nubo_as_policy_want(&pc, 10, 4, &w));
    assert_int_equal(w, 3); /* -10 % of 4 rounds to zero: one fewer at least */
}

static void test_desired_clamps_and_combines(void **state)
{
    struct nubo_as_config c;
    nubo_as_config_init(&c);
    c.min_size = 2;
    c.max_size = 5;
    struct nubo_as_policy pol[2] = {
        policy("{\"name\":\"cpu\",\"type\":\"step\",\"steps\":[{\"lower_bound\":80,"
               "\"adjustment\":1},{\"upper_bound\":20,\"adjustment\":-1}]}"),
        policy("{\"name\":\"req\",\"type\":\"step\",\"metric\":\"inflight_reqs\",\"steps\":["
               "{\"lower_bound\":10,\"adjustment\":3}]}"),
    };
    c.policies = pol;
    c.n_policies = 2;
    double v[NUBO_AS_METRIC_N] = {90, 0};
    bool have[NUBO_AS_METRIC_N] = {true, false};
    assert_int_equal(nubo_as_desired(&c, v, have, 3), 4);
    /* both policies speak: the larger want wins */
    v[NUBO_AS_METRIC_INFLIGHT] = 12;
    have[NUBO_AS_METRIC_INFLIGHT] = true;
    assert_int_equal(nubo_as_desired(&c, v, have, 3), 5); /* 6 clamped to max_size */
    /* scale in, never below min_size */
    v[NUBO_AS_METRIC_CPU] = 5;
    v[NUBO_AS_METRIC_INFLIGHT] = 0;
    assert_int_equal(nubo_as_desired(&c, v, have, 3), 2);
    assert_int_equal(nubo_as_desired(&c, v, have, 2), 2);
    /* nothing known: the current size, brought into range */
    have[0] = have[1] = false;
    assert_int_equal(nubo_as_desired(&c, v, have, 1), 2);
    assert_int_equal(nubo_as_desired(&c, v, have, 9), 5);
    /* min_size 0: the master stays, so the floor is one */
    c.min_size = 0;
    have[0] = true;
    assert_int_equal(nubo_as_desired(&c, v, have, 1), 1);
}

static void expect_config_refused(const char *json, const char *what)
{
    struct nubo_as_config c;
    struct nubo_err err = {0};
    json_t *j = parse(json);
    assert_int_equal(nubo_as_config_req_decode(j, &c, &err), -1);
    json_decref(j);
    assert_int_equal(err.http_status, 400);
    assert_non_null(strstr(err.msg, what));
    assert_null(strchr(err.msg, '\n'));
    assert_null(c.policies);
}

static void test_config_decode(void **state)
{
    struct nubo_as_config c;
    struct nubo_err err = {0};
    json_t *j = parse("{\"name\":\"web\"}");
    assert_int_equal(nubo_as_config_req_decode(j, &c, &err), 0);
    json_decref(j);
    assert_string_equal(c.name, "web");
    assert_int_equal(c.min_size, 1);
    assert_int_equal(c.max_size, 4);
    assert_int_equal(c.warmup_time_ms, 1000);
    assert_int_equal(c.cooldown_time_ms, 1000);
    assert_int_equal(c.n_policies, 0);
    /* the spec draws policies inside master: read there too; round trip */
    j = parse("{\"uuid\":\"471a2a73-36db-4df9-bb63-82a45810e88a\",\"min_size\":0,\"max_size\":3,"
              "\"warmup_time_ms\":200,\"cooldown_time_ms\":900,\"master\":{\"name\":\"m\","
              "\"policies\":[{\"name\":\"p\",\"type\":\"step\",\"metric\":\"inflight_reqs\","
              "\"steps\":[{\"lower_bound\":2,\"adjustment\":1}]}]}}");
    assert_int_equal(nubo_as_config_req_decode(j, &c, &err), 0);
    json_decref(j);
    assert_int_equal(c.n_policies, 1);
    assert_string_equal(c.master.name, "m");
    json_t *enc = nubo_as_config_req_encode(&c);
    struct nubo_as_config back;
    assert_int_equal(nubo_as_config_req_decode(enc, &back, &err), 0);
    json_decref(enc);
    assert_int_equal(back.min_size, 0);
    assert_int_equal(back.max_size, 3);
    assert_int_equal(back.warmup_time_ms, 200);
    assert_int_equal(back.cooldown_time_ms, 900);
    assert_string_equal(back.policies[0].name, "p");
    assert_int_equal(back.policies[0].steps[0].lower_bound, 2);
    assert_false(back.policies[0].steps[0].has_upper);
    /* shown and read back by a client */
    back.configured = back.enabled = true;
    json_t *shown = nubo_as_config_encode(&back);
    assert_string_equal(json_string_value(json_object_get(shown, "status")), "success");
    struct nubo_as_config cl;
    assert_int_equal(nubo_as_config_decode(shown, &cl, &err), 0);
    json_decref(shown);
    assert_true(cl.configured);
    assert_int_equal(cl.max_size, 3);
    assert_int_equal(cl.n_policies, 1);
    assert_int_equal(cl.policies[0].metric, NUBO_AS_METRIC_INFLIGHT);
    nubo_as_config_free(&cl);
    nubo_as_config_free(&back);
    nubo_as_config_free(&c);
    /* unconfigured */
    struct nubo_as_config u;
    nubo_as_config_init(&u);
    u.configured = false;
    snprintf(u.name, sizeof(u.name), "web");
    shown = nubo_as_config_encode(&u);
    assert_string_equal(json_string_value(json_object_get(shown, "status")), "unconfigured");
    assert_null(json_object_get(shown, "policies"));
    json_decref(shown);

    expect_config_refused("{\"name\":\"web\",\"min_size\":3,\"max_size\":2}",
                          "min_size (3) must not exceed max_size (2)");
    expect_config_refused("{\"min_size\":1}", "uuid or name");
    expect_config_refused("{\"name\":\"web\",\"size\":1}", "size");
    expect_config_refused("{\"name\":\"web\",\"max_size\":0}", "max_size");
    expect_config_refused("{\"name\":\"web\",\"warmup_time_ms\":0}", "warmup_time_ms");
    expect_config_refused("{\"name\":\"web\",\"policies\":[{\"name\":\"p\",\"type\":\"step\","
                          "\"metric\":\"memory\",\"steps\":[{\"lower_bound\":1,"
                          "\"adjustment\":1}]}]}",
                          "'memory' is not one of cpu, inflight_reqs");
    expect_config_refused("{\"name\":\"web\",\"policies\":[{\"name\":\"p\",\"type\":\"step\","
                          "\"steps\":[{\"lower_bound\":1,\"adjustment\":1}]},{\"name\":\"p\","
                          "\"type\":\"step\",\"steps\":[{\"lower_bound\":1,\"adjustment\":1}]}]}",
                          "listed twice");
}

static void expect_policy_refused(const char *json, const char *what)
{
    struct nubo_as_policy p;
    struct nubo_err err = {0};
    json_t *j = parse(json);
    assert_int_equal(nubo_as_policy_decode(j, "", &p, &err), -1);
    json_decref(j);
    assert_int_equal(err.http_status, 400);
    if (strstr(err.msg, what) == NULL)
        fail_msg("'%s' does not say '%s'", err.msg, what);
}

static void test_policy_refusals(void **state)
{
    expect_policy_refused("{\"name\":\"p\",\"type\":\"on_demand\"}", "'on_demand' is not");
    expect_policy_refused("{\"name\":\"p\",\"type\":\"step\",\"steps\":[]}", "1..253 steps");
    expect_policy_refused("{\"name\":\"p\",\"type\":\"step\",\"steps\":[{\"adjustment\":1}]}",
                          "only one may be left open");
    expect_policy_refused("{\"name\":\"p\",\"type\":\"step\",\"steps\":[{\"lower_bound\":5,"
                          "\"upper_bound\":5,\"adjustment\":1}]}",
                          "must be below upper_bound");
    expect_policy_refused("{\"name\":\"p\",\"type\":\"step\",\"steps\":[{\"lower_bound\":5,"
                          "\"adjustment\":1},{\"lower_bound\":1,\"upper_bound\":6,"
                          "\"adjustment\":-1}]}",
                          "overlaps steps[0]");
    expect_policy_refused("{\"name\":\"p\",\"type\":\"step\",\"adjustment_type\":\"absolute\","
                          "\"steps\":[{\"lower_bound\":1,\"adjustment\":1}]}",
                          "'absolute' is not one of change, exact, percent");
    expect_policy_refused("{\"name\":\"P!\",\"type\":\"step\",\"steps\":[{\"lower_bound\":1,"
                          "\"adjustment\":1}]}",
                          "name");
    expect_policy_refused("{\"type\":\"step\"}", "name");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_bounds),
        cmocka_unit_test(test_adjustment_types),
        cmocka_unit_test(test_desired_clamps_and_combines),
        cmocka_unit_test(test_config_decode),
        cmocka_unit_test(test_policy_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
