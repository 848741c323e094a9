/* Unit tests for proto/api.c: create-request defaults and strict validation, batch items,
 * image references, instance and envelope encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"

static json_t *parse(const char *s)
{
    json_t *j = NULL;
    assert_int_equal(pj_parse(s, strlen(s), NUBO_API_MAX_BODY, &j, NULL), 0);
    return j;
}

static void test_create_defaults(void **state)
{
    json_t *j = parse("{\"image\":\"acme/app:latest\"}");
    struct nubo_create_req r;
    struct nubo_err err = {0};
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_string_equal(r.image, "acme/app:latest");
    assert_int_equal(r.memory_mb, 128);
    assert_int_equal(r.vcpus, 1);
    assert_true(r.autostart);
    assert_int_equal(r.replicas, 0);
    assert_int_equal(r.restart_policy, NUBO_RESTART_NEVER);
    assert_false(r.has_args);
    nubo_create_req_free(&r);
    json_decref(j);

    j = parse("{\"image\":\"acme/app\",\"name\":\"web-1\",\"args\":[\"a\",\"b c\"],"
              "\"env\":{\"K\":\"V\"},\"memory_mb\":256,\"vcpus\":2,\"autostart\":false,"
              "\"replicas\":253,\"restart_policy\":\"on-failure\",\"metro\":\"fra0\","
              "\"features\":[],\"timeout_s\":0}");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_int_equal(r.n_args, 2);
    assert_string_equal(r.args[1], "b c");
    assert_string_equal(r.env[0].value, "V");
    assert_int_equal(r.replicas, 253);
    assert_false(r.autostart);
    assert_int_equal(r.restart_policy, NUBO_RESTART_ON_FAILURE);
    /* encode -> decode is the identity on what matters */
    json_t *e = nubo_create_req_encode(&r);
    struct nubo_create_req r2;
    assert_int_equal(nubo_create_req_decode(e, &r2, &err), 0);
    assert_string_equal(r2.name, "web-1");
    assert_int_equal(r2.memory_mb, 256);
    assert_int_equal(r2.replicas, 253);
    nubo_create_req_free(&r2);
    json_decref(e);
    nubo_create_req_free(&r);
    json_decref(j);
}

static void test_create_rejects(void **state)
{
    static const char *bad[] = {
        "[]",
        "{}",
        "{\"image\":\"\"}",
        "{\"image\":5}",
        "{\"image\":\"a/b\",\"unknown\":1}",
        "{\"image\":\"a/b\",\"memory_mb\":8}",
        "{\"image\":\"a/b\",\"memory_mb\":\"128\"}",
        "{\"image\":\"a/b\",\"memory_mb\":1.5}",
        "{\"image\":\"a/b\",\"replicas\":254}",
        "{\"image\":\"a/b\",\"replicas\":-1}",
        "{\"image\":\"a/b\",\"vcpus\":0}",
        "{\"image\":\"a/b\",\"name\":\"UPPER\"}",
        "{\"image\":\"a/b\",\"name\":\"-lead\"}",
        "{\"image\":\"a/"
        "b\",\"name\":\"a234567890123456789012345678901234567890123456789012345678901234\"}",
        "{\"image\":\"a/b\",\"args\":\"x\"}",
        "{\"image\":\"a/b\",\"args\":[1]}",
        "{\"image\":\"a/b\",\"env\":{\"K\":1}}",
        "{\"image\":\"a/b\",\"env\":[\"K=V\"]}",
        "{\"image\":\"a/b\",\"autostart\":\"yes\"}",
        "{\"image\":\"a/b\",\"restart_policy\":\"sometimes\"}",
        "{\"image\":\"a/b\",\"features\":[\"fly\"]}",
        "{\"image\":\"a/b\",\"metro\":\"FRA\"}",
        "{\"image\":\"a/b\",\"autostart\":false,\"wait_timeout_ms\":100}",
        "{\"image\":\"a/b\",\"volumes\":[{\"at\":\"/d\"}]}", /* [] is accepted (test_proto_volume) */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *j = parse(bad[i]);
        struct nubo_create_req r;
        struct nubo_err err = {0};
        if (nubo_create_req_decode(j, &r, &err) == 0)
            fail_msg("accepted: %s", bad[i]);
        assert_int_equal(err.http_status, 400);
        assert_true(strlen(err.msg) > 0);
        assert_null(strchr(err.msg, '\n'));
        json_decref(j);
    }
}

static void test_items(void **state)
{
    struct nubo_item it;
    struct nubo_err err = {0};
    json_t *j = parse("{\"uuid\":\"0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01\",\"force\":true,"
                      "\"drain_timeout_ms\":500}");
    assert_int_equal(nubo_item_decode(j, NUBO_ITEM_STOP, "", &it, &err), 0);
    assert_true(it.force);
    assert_int_equal(it.drain_timeout_ms, 500);
    json_decref(j);
    j = parse("{\"name\":\"web\",\"state\":\"stopped\",\"timeout_ms\":100}");
    assert_int_equal(nubo_item_decode(j, NUBO_ITEM_WAIT, "", &it, &err), 0);
    assert_int_equal(it.state, NUBO_STATE_STOPPED);
    assert_int_equal(it.timeout_ms, 100);
    json_decref(j);
    j = parse("{\"name\":\"web\"}");
    assert_int_equal(nubo_item_decode(j, NUBO_ITEM_LOG, "", &it, &err), 0);
    assert_int_equal(it.offset, -4096);
    assert_int_equal(it.limit, 4096);
    json_decref(j);
    static const char *bad[] = {
        "{}",
        "{\"uuid\":\"nope\"}",
        "{\"name\":\"a\",\"uuid\":\"0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01\"}",
        "{\"name\":\"a\",\"force\":1}",
        "{\"name\":\"a\",\"drain_timeout_ms\":3600001}",
        "{\"name\":\"a\",\"extra\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        j = parse(bad[i]);
        assert_int_equal(nubo_item_decode(j, NUBO_ITEM_STOP, "[0]", &it, &err), -1);
        assert_null(strchr(err.msg, '\n'));
        json_decref(j);
    }
    j = parse("{\"name\":\"a\",\"limit\":16384}");
    assert_int_equal(nubo_item_decode(j, NUBO_ITEM_LOG, "", &it, &err), -1);
    json_decref(j);
}

static void test_image_refs(void **state)
{
    struct nubo_api_image_ref r;
    struct nubo_err err = {0};
    assert_int_equal(nubo_api_image_ref_parse("acme/app:1.0", &r, &err), 0);
    assert_string_equal(r.repo, "acme/app");
    assert_string_equal(r.owner, "acme");
    assert_string_equal(r.tag, "1.0");
    assert_int_equal(nubo_api_image_ref_parse("127.0.0.1:5000/acme/app", &r, &err), 0);
    assert_string_equal(r.repo, "acme/app");
    assert_string_equal(r.tag, "latest");
    assert_int_equal(nubo_api_image_ref_parse("hello", &r, &err), 0);
    assert_string_equal(r.owner, "");
    char ref[200];
    snprintf(ref, sizeof(ref), "acme/app@sha256:%064d", 7);
    assert_int_equal(nubo_api_image_ref_parse(ref, &r, &err), 0);
    assert_string_equal(r.tag, "");
    assert_int_equal(strncmp(r.digest, "sha256:", 7), 0);
    static const char *bad[] = {"",          "acme/App", "acme//app",          "acme/app@sha256:12",
                                "acme/app:", "/app",     "acme/app:t@sha256:x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(nubo_api_image_ref_parse(bad[i], &r, &err), -1);
}

static void test_instance_and_envelope(void **state)
{
    struct nubo_instance in = {.uuid = "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01",
                               .name = "web",
                               .state = NUBO_STATE_RUNNING,
                               .memory_mb = 128,
                               .vcpus = 1,
                               .private_ip = "10.64.0.2",
                               .boot_time_us = 15090,
                               .node = "n1",
                               .metro = "fra0"};
    json_t *j = nubo_instance_encode(&in, true);
    assert_string_equal(json_string_value(json_object_get(j, "private_fqdn")), "web.internal");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "running");
    assert_true(json_is_null(json_object_get(j, "exit_code")));
    struct nubo_instance back;
    assert_int_equal(nubo_instance_decode(j, &back, NULL), 0);
    assert_int_equal(back.boot_time_us, 15090);
    assert_string_equal(back.node, "n1");
    nubo_instance_free(&back);
    json_t *env = nubo_envelope_new("success", NULL, "instances", json_pack("[o]", j), 12);
    json_t *items;
    assert_int_equal(nubo_envelope_items(env, "instances", &items, NULL), 0);
    assert_int_equal(json_array_size(items), 1);
    json_decref(env);
    env = nubo_envelope_new("error", "no such thing", NULL, NULL, 0);
    struct nubo_err err = {0};
    assert_int_equal(nubo_envelope_items(env, "instances", &items, &err), -1);
    assert_string_equal(err.msg, "no such thing");
    json_decref(env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_rejects),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_image_refs),
        cmocka_unit_test(test_instance_and_envelope),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
