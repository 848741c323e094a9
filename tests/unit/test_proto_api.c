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
    assert_false(r.autostart); /* the spec's default: a create without autostart stays stopped */
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
        "{\"image\":\"a/b\",\"scale_to_zero\":{}}",
        "{\"image\":\"a/b\",\"scale_to_zero\":\"on\"}",
        "{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"sometimes\"}}",
        "{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"on\",\"x\":1}}",
        "{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"on\",\"cooldown_time_ms\":-1}}",
        "{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"on\",\"cooldown_time_ms\":86400001}}",
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

/* scale_to_zero: the object, the legacy feature string, "off" accepted, encode round trip */
static void test_create_scale_to_zero(void **state)
{
    struct nubo_create_req r;
    struct nubo_err err = {0};
    json_t *j = parse("{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"off\"}}");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_int_equal(r.scale_to_zero.policy, NUBO_S2Z_OFF);
    nubo_create_req_free(&r);
    json_decref(j);
    j = parse("{\"image\":\"a/b\",\"features\":[\"scale-to-zero\"]}");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_int_equal(r.scale_to_zero.policy, NUBO_S2Z_ON);
    assert_int_equal(r.scale_to_zero.cooldown_time_ms, 1000);
    assert_false(r.scale_to_zero.stateful);
    nubo_create_req_free(&r);
    json_decref(j);
    /* stateful: the agent saves the guest's memory for its standby */
    j = parse("{\"image\":\"a/b\",\"scale_to_zero\":{\"policy\":\"on\",\"stateful\":true}}");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_true(r.scale_to_zero.stateful);
    nubo_create_req_free(&r);
    json_decref(j);
    /* the object says more than the feature string */
    j = parse("{\"image\":\"a/b\",\"features\":[\"scale-to-zero\"],\"scale_to_zero\":"
              "{\"policy\":\"idle\",\"stateful\":false,\"cooldown_time_ms\":0}}");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    assert_int_equal(r.scale_to_zero.policy, NUBO_S2Z_IDLE);
    assert_int_equal(r.scale_to_zero.cooldown_time_ms, 0);
    json_t *e = nubo_create_req_encode(&r);
    struct nubo_create_req r2;
    assert_int_equal(nubo_create_req_decode(e, &r2, &err), 0);
    assert_int_equal(r2.scale_to_zero.policy, NUBO_S2Z_IDLE);
    assert_int_equal(r2.scale_to_zero.cooldown_time_ms, 0);
    nubo_create_req_free(&r2);
    json_decref(e);
    nubo_create_req_free(&r);
    json_decref(j);
    /* the instance shows it, and a client reads it back; off is not shown */
    struct nubo_instance in;
    memset(&in, 0, sizeof(in));
    snprintf(in.uuid, sizeof(in.uuid), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    in.state = NUBO_STATE_STANDBY;
    in.scale_to_zero = (struct nubo_scale_to_zero){NUBO_S2Z_ON, false, 2500};
    e = nubo_instance_encode(&in, true);
    assert_string_equal(json_string_value(json_object_get(e, "state")), "standby");
    struct nubo_instance back;
    assert_int_equal(nubo_instance_decode(e, &back, &err), 0);
    assert_int_equal(back.state, NUBO_STATE_STANDBY);
    assert_int_equal(back.scale_to_zero.policy, NUBO_S2Z_ON);
    assert_int_equal(back.scale_to_zero.cooldown_time_ms, 2500);
    nubo_instance_free(&back);
    json_decref(e);
    in.scale_to_zero.policy = NUBO_S2Z_OFF;
    e = nubo_instance_encode(&in, true);
    assert_null(json_object_get(e, "scale_to_zero"));
    json_decref(e);
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
    /* never null where the spec types a string or integer: absent until it happened */
    static const char *const absent[] = {"exit_code", "stop_code", "started_at", "stopped_at"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        assert_null(json_object_get(j, absent[i]));
    assert_non_null(json_object_get(j, "restart"));
    assert_null(json_object_get(json_object_get(j, "restart"), "next_at"));
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

/* Quotas: an admin's change is strict (known quotas, 0..int32 max, null = the default); the
 * object carries used, hard and limits under the platform's names. */
static void test_quotas(void **state)
{
    (void)state;
    struct nubo_quota_set qs;
    struct nubo_err err = {0};
    json_t *j = json_loads("{\"hard\":{\"live_memory_mb\":4096,\"instances\":null}}", 0, NULL);
    assert_int_equal(nubo_quota_set_decode(j, &qs, &err), 0);
    assert_true(qs.given[NUBO_QUOTA_LIVE_MEMORY_MB] && qs.given[NUBO_QUOTA_INSTANCES]);
    assert_int_equal(qs.hard[NUBO_QUOTA_LIVE_MEMORY_MB], 4096);
    assert_int_equal(qs.hard[NUBO_QUOTA_INSTANCES], -1);
    assert_false(qs.given[NUBO_QUOTA_SERVICES]);
    json_decref(j);
    const char *bad[] = {"{\"hard\":{\"cpus\":1}}", "{\"hard\":{\"instances\":-2}}",
                         "{\"hard\":{}}", "{\"soft\":{\"instances\":1}}",
                         "{\"hard\":{\"instances\":2147483648}}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        j = json_loads(bad[i], 0, NULL);
        memset(&err, 0, sizeof(err));
        assert_int_equal(nubo_quota_set_decode(j, &qs, &err), -1);
        assert_int_equal(err.http_status, 400);
        assert_null(strchr(err.msg, '\n'));
        json_decref(j);
    }
    struct nubo_user_quota q = {.uuid = "u", .name = "bob", .min_memory_mb = 16,
                                .max_memory_mb = 8192};
    q.used[NUBO_QUOTA_LIVE_MEMORY_MB] = 256;
    q.hard[NUBO_QUOTA_LIVE_MEMORY_MB] = 512;
    j = nubo_user_quota_encode(&q);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "used"),
                                                        "live_memory_mb")),
                     256);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "limits"),
                                                        "max_memory_mb")),
                     8192);
    struct nubo_user_quota back;
    assert_int_equal(nubo_user_quota_decode(j, &back, &err), 0);
    assert_memory_equal(&back, &q, sizeof(q));
    json_decref(j);
}

/* Item failures carry the platform's error codes (the SDKs' APIHTTPError enum), not HTTP. */
static void test_item_error_codes(void **state)
{
    json_t *e = nubo_item_error("0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01", NULL, 404, "gone");
    assert_int_equal(json_integer_value(json_object_get(e, "error")), 8);
    struct nubo_item_status st;
    assert_int_equal(nubo_item_status_decode(e, &st, NULL), 0);
    assert_false(st.ok);
    assert_int_equal(st.error, NUBO_APIERR_NOT_FOUND);
    json_decref(e);
    assert_int_equal(nubo_api_error_of_http(408), 12);
    assert_int_equal(nubo_api_error_of_http(409), 23);
    assert_int_equal(nubo_api_error_of_http(400), 7);
    assert_int_equal(nubo_api_error_of_http(503), 9);
    for (int code = 0; code <= NUBO_APIERR_CANNOT_BE_USED; code++)
        assert_true(nubo_api_error_http(code) >= 400);
    assert_int_equal(nubo_api_error_http(NUBO_APIERR_NOT_FOUND), 404);
    e = nubo_item_error_code(NULL, "web", NUBO_APIERR_ATTACHED, "in use");
    assert_int_equal(json_integer_value(json_object_get(e, "error")), 15);
    json_decref(e);
}

/* start/stop/delete answer {status, uuid, name, state, previous_state}. */
static void test_item_previous_state(void **state)
{
    struct nubo_item_status st = {.ok = true,
                                  .uuid = "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01",
                                  .name = "web",
                                  .has_state = true,
                                  .state = NUBO_STATE_STOPPING,
                                  .has_previous_state = true,
                                  .previous_state = NUBO_STATE_RUNNING};
    json_t *j = nubo_item_status_encode(&st);
    assert_string_equal(json_string_value(json_object_get(j, "previous_state")), "running");
    assert_string_equal(json_string_value(json_object_get(j, "state")), "stopping");
    struct nubo_item_status back;
    assert_int_equal(nubo_item_status_decode(j, &back, NULL), 0);
    assert_true(back.ok && back.has_previous_state);
    assert_int_equal(back.previous_state, NUBO_STATE_RUNNING);
    json_decref(j);
}

/* Path words are no names: /v1/instances/metrics and /v1/services/autoscale stay endpoints. */
static void test_reserved_names(void **state)
{
    static const char *const words[] = {"metrics", "start", "stop", "wait", "log"};
    struct nubo_create_req r;
    struct nubo_err err = {0};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        json_t *j = json_pack("{s:s, s:s}", "image", "acme/app", "name", words[i]);
        assert_int_equal(nubo_create_req_decode(j, &r, &err), -1);
        assert_non_null(strstr(err.msg, "word of the API's paths"));
        json_decref(j);
    }
    json_t *j = json_pack("{s:s, s:s}", "image", "acme/app", "name", "metrics-1");
    assert_int_equal(nubo_create_req_decode(j, &r, &err), 0);
    nubo_create_req_free(&r);
    json_decref(j);
    struct nubo_svc_create_req sg;
    j = parse("{\"name\":\"autoscale\",\"services\":[{\"port\":443}]}");
    assert_int_equal(nubo_svc_create_req_decode(j, false, &sg, &err), -1);
    json_decref(j);
}

/* The spec's POST /v1/services shape (domains inside services[]) and nubo's are one request. */
static void test_service_domains_either_place(void **state)
{
    struct nubo_svc_create_req a, b;
    struct nubo_err err = {0};
    json_t *spec = parse("{\"name\":\"shop\",\"services\":[{\"port\":443,"
                         "\"destination_port\":8080,\"domains\":[{\"name\":\"shop.example.com\"}]},"
                         "{\"port\":80,\"destination_port\":443,\"handlers\":[\"http\",\"redirect\"]}]}");
    json_t *ours = parse("{\"name\":\"shop\",\"services\":[{\"port\":443,"
                         "\"destination_port\":8080},{\"port\":80,\"destination_port\":443,"
                         "\"handlers\":[\"http\",\"redirect\"]}],\"domains\":[{\"name\":"
                         "\"shop.example.com\"}]}");
    assert_int_equal(nubo_svc_create_req_decode(spec, false, &a, &err), 0);
    assert_int_equal(nubo_svc_create_req_decode(ours, false, &b, &err), 0);
    assert_int_equal(a.n_domains, 1);
    assert_string_equal(a.domains[0].name, b.domains[0].name);
    assert_int_equal(a.n_ports, b.n_ports);
    assert_memory_equal(a.ports, b.ports, sizeof(a.ports[0]) * a.n_ports);
    /* the caller's body is left as it was */
    assert_non_null(json_object_get(json_array_get(json_object_get(spec, "services"), 0), "domains"));
    json_decref(spec);
    json_decref(ours);
    json_t *both = parse("{\"services\":[{\"port\":443,\"domains\":[{\"name\":\"a\"}]}],"
                         "\"domains\":[{\"name\":\"b\"}]}");
    assert_int_equal(nubo_svc_create_req_decode(both, false, &a, &err), -1);
    assert_non_null(strstr(err.msg, "not both"));
    json_decref(both);
}

/* GET /images/list items in the legacy shape: args one string, kernel_args and labels. */
static void test_image_legacy(void **state)
{
    char *args[] = {"--port", "8080"};
    struct nubo_image im = {.uuid = "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01",
                            .url = "acme/app@sha256:aa",
                            .args = args,
                            .n_args = 2};
    json_t *j = nubo_image_encode_legacy(&im);
    assert_string_equal(json_string_value(json_object_get(j, "args")), "--port 8080");
    assert_string_equal(json_string_value(json_object_get(j, "kernel_args")), "");
    assert_true(json_is_object(json_object_get(j, "labels")));
    struct nubo_image back;
    assert_int_equal(nubo_image_decode(j, &back, NULL), 0);
    assert_int_equal(back.n_args, 2);
    assert_string_equal(back.args[1], "8080");
    nubo_image_free(&back);
    json_decref(j);
    j = nubo_image_encode(&im);
    assert_true(json_is_array(json_object_get(j, "args")));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quotas),
        cmocka_unit_test(test_create_defaults),
        cmocka_unit_test(test_create_rejects),
        cmocka_unit_test(test_create_scale_to_zero),
        cmocka_unit_test(test_items),
        cmocka_unit_test(test_image_refs),
        cmocka_unit_test(test_instance_and_envelope),
        cmocka_unit_test(test_item_error_codes),
        cmocka_unit_test(test_item_previous_state),
        cmocka_unit_test(test_reserved_names),
        cmocka_unit_test(test_service_domains_either_place),
        cmocka_unit_test(test_image_legacy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
