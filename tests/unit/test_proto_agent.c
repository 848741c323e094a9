/* Unit tests for proto/agent.c: every message round-trips; bad input fails with one line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define UUID1 "0b0f5c4e-3a55-4c1b-9d63-8f1e2a7b9c01"
#define UUID2 "7d2a1e90-5b1f-4e5c-8a4b-2c3d4e5f6a7b"

static json_t *parse(const char *s)
{
    json_t *j = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse(s, strlen(s), NUBO_AGENT_MAX_BODY, &j, &err), 0);
    return j;
}

static void assert_one_line(const struct nubo_err *err)
{
    assert_true(strlen(err->msg) > 0);
    assert_null(strchr(err->msg, '\n'));
}

static void test_register_roundtrip(void **state)
{
    struct nubo_status_report rep = {.state = NUBO_STATE_RUNNING,
                                     .start_seq = 3,
                                     .boot_time_us = 15090,
                                     .phases = {1200, 300, 5000, 8590, 40, 7},
                                     .start_count = 1,
                                     .started_at_us = 1795746040123456,
                                     .has_exit_code = true,
                                     .exit_code = -1,
                                     .restart_attempt = 2,
                                     .message = "hello"};
    strcpy(rep.uuid, UUID1);
    struct nubo_register_req req = {.name = "node-a",
                                    .metro = "fra",
                                    .memory_mb = 8192,
                                    .vcpus = 2,
                                    .accel = "tcg",
                                    .libvirt_version = "9.0.0",
                                    .qemu_version = "7.2.0",
                                    .agent_version = "0.1.0",
                                    .instances = &rep,
                                    .n_instances = 1,
                                    .register_key = "k0123456789abcdefghij0123456789_-"};
    json_t *j = nubo_register_req_encode(&req);
    char *text = pj_dump(j);
    json_decref(j);
    j = parse(text);
    free(text);
    struct nubo_register_req got;
    struct nubo_err err = {0};
    assert_int_equal(nubo_register_req_decode(j, &got, &err), 0);
    json_decref(j);
    assert_string_equal(got.name, "node-a");
    assert_string_equal(got.metro, "fra");
    assert_string_equal(got.register_key, "k0123456789abcdefghij0123456789_-");
    assert_int_equal(got.memory_mb, 8192);
    assert_int_equal(got.vcpus, 2);
    assert_int_equal(got.n_instances, 1);
    struct nubo_status_report *r = &got.instances[0];
    assert_string_equal(r->uuid, UUID1);
    assert_int_equal(r->state, NUBO_STATE_RUNNING);
    assert_int_equal(r->start_seq, 3);
    assert_int_equal(r->boot_time_us, 15090);
    assert_int_equal(r->phases.vmm_us, 5000);
    assert_int_equal(r->phases.slot_us, 40);
    assert_int_equal(r->phases.copy_us, 7);
    assert_int_equal(r->started_at_us, 1795746040123456);
    assert_int_equal(r->stopped_at_us, 0);
    assert_true(r->has_exit_code);
    assert_int_equal(r->exit_code, -1);
    assert_false(r->has_stop_code);
    assert_int_equal(r->restart_attempt, 2);
    assert_string_equal(r->message, "hello");
    nubo_register_req_free(&got);

    struct nubo_register_resp resp = {.node = {.uuid = UUID2,
                                               .name = "node-a",
                                               .metro = "fra",
                                               .subnet = "10.64.3.0/24",
                                               .gateway = "10.64.3.1",
                                               .dns = "10.64.3.1"},
                                      .token = "tok",
                                      .heartbeat_interval_ms = 2000,
                                      .grace_ms = 10000};
    j = nubo_register_resp_encode(&resp);
    struct nubo_register_resp rgot;
    assert_int_equal(nubo_register_resp_decode(j, &rgot, &err), 0);
    json_decref(j);
    assert_string_equal(rgot.node.subnet, "10.64.3.0/24");
    assert_string_equal(rgot.token, "tok");
    assert_int_equal(rgot.grace_ms, 10000);
}

/* The register key is optional (agents before it send none), and when sent it has the form of
 * a random key, never a short or odd string; it never shows in the error. */
static void test_register_key(void **state)
{
    (void)state;
    static const char *const base =
        "{\"name\":\"n1\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1%s}";
    static const struct {
        const char *extra;
        int rc;
        const char *key;
    } cases[] = {
        {"", 0, ""},
        {",\"register_key\":\"\"", 0, ""},
        {",\"register_key\":\"abcdefghijklmnopqrstuvwxyz012345\"", 0,
         "abcdefghijklmnopqrstuvwxyz012345"},
        {",\"register_key\":\"abcdefghijklmnopqrstuvwxyz01234\"", -1, NULL}, /* 31 */
        {",\"register_key\":\"abcdefghijklmnopqrstuvwxyz01234 \"", -1, NULL},
        {",\"register_key\":\"abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123\"",
         -1, NULL}, /* 66 */
        {",\"register_key\":42", -1, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), base, cases[i].extra);
        json_t *j = parse(text);
        struct nubo_register_req got;
        struct nubo_err err = {0};
        assert_int_equal(nubo_register_req_decode(j, &got, &err), cases[i].rc);
        json_decref(j);
        if (cases[i].rc == 0) {
            assert_string_equal(got.register_key, cases[i].key);
            nubo_register_req_free(&got);
        } else {
            assert_int_equal(err.http_status, 400);
            assert_null(strstr(err.msg, "abcdefghijklmnop"));
        }
    }
}

static void test_watch_roundtrip(void **state)
{
    char *args[] = {"/usr/bin/python3", "/src/server.py"};
    struct nubo_kv env[] = {{"K", "V"}, {"PATH", "/bin"}};
    int64_t ports[] = {8080};
    struct nubo_assignment a = {.uuid = UUID1,
                                .name = "web-ab12c",
                                .image = "acme/web@sha256:"
                                         "278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc"
                                         "4049472",
                                .memory_mb = 128,
                                .vcpus = 1,
                                .args = args,
                                .n_args = 2,
                                .env = env,
                                .n_env = 2,
                                .desired_state = NUBO_DESIRED_STOPPED,
                                .restart_policy = NUBO_RESTART_ON_FAILURE,
                                .private_ip = "10.64.3.7",
                                .prefix = 24,
                                .gateway = "10.64.3.1",
                                .dns = "10.64.3.1",
                                .service_ports = ports,
                                .n_service_ports = 1,
                                .start_seq = 3,
                                .stop_force = true,
                                .stop_save = true,
                                .stop_drain_timeout_ms = 500};
    struct nubo_watch_resp w = {.version = 42, .assignments = &a, .n_assignments = 1};
    json_t *j = nubo_watch_resp_encode(&w), *j2;
    struct nubo_watch_resp got;
    struct nubo_err err = {0};
    assert_int_equal(nubo_watch_resp_decode(j, &got, &err), 0);
    json_decref(j);
    assert_int_equal(got.version, 42);
    assert_int_equal(got.n_assignments, 1);
    struct nubo_assignment *g = &got.assignments[0];
    assert_string_equal(g->name, "web-ab12c");
    assert_int_equal(g->n_args, 2);
    assert_string_equal(g->args[1], "/src/server.py");
    assert_int_equal(g->n_env, 2);
    assert_string_equal(g->env[1].key, "PATH");
    assert_int_equal(g->desired_state, NUBO_DESIRED_STOPPED);
    assert_int_equal(g->restart_policy, NUBO_RESTART_ON_FAILURE);
    assert_int_equal(g->prefix, 24);
    assert_int_equal(g->n_service_ports, 1);
    assert_int_equal(g->service_ports[0], 8080);
    assert_true(g->stop_force);
    assert_true(g->stop_save);
    assert_int_equal(g->stop_drain_timeout_ms, 500);
    /* A copy owns its arrays: it encodes the same after the original is gone. */
    struct nubo_assignment copy;
    assert_int_equal(nubo_assignment_copy(&copy, g), 0);
    char *before = json_dumps(j2 = nubo_assignment_encode(g), JSON_SORT_KEYS);
    json_decref(j2);
    nubo_watch_resp_free(&got);
    assert_ptr_not_equal(copy.args, args);
    char *after = json_dumps(j2 = nubo_assignment_encode(&copy), JSON_SORT_KEYS);
    json_decref(j2);
    assert_string_equal(before, after);
    free(before);
    free(after);
    nubo_assignment_free(&copy);
}

static void test_status_and_log_roundtrip(void **state)
{
    struct nubo_status_report reps[2] = {{.uuid = UUID1, .state = NUBO_STATE_STARTING},
                                         {.uuid = UUID2,
                                          .state = NUBO_STATE_STOPPED,
                                          .stop_reason = 3,
                                          .has_stop_code = true,
                                          .stop_code = 0x0c0004}};
    struct nubo_status_batch b = {.instances = reps, .n_instances = 2};
    json_t *j = nubo_status_batch_encode(&b);
    struct nubo_status_batch got;
    struct nubo_err err = {0};
    assert_int_equal(nubo_status_batch_decode(j, &got, &err), 0);
    json_decref(j);
    assert_int_equal(got.n_instances, 2);
    assert_int_equal(got.instances[1].stop_code, 0x0c0004);
    assert_int_equal(got.instances[1].stop_reason, 3);
    nubo_status_batch_free(&got);

    /* an empty heartbeat; an older agent's free_memory_mb is ignored, not refused */
    j = parse("{\"instances\":[],\"free_memory_mb\":4096}");
    assert_int_equal(nubo_status_batch_decode(j, &got, &err), 0);
    assert_int_equal(got.n_instances, 0);
    nubo_status_batch_free(&got);
    json_decref(j);

    struct nubo_status_resp sr = {.version = 7}, srg;
    j = nubo_status_resp_encode(&sr);
    assert_int_equal(nubo_status_resp_decode(j, &srg, &err), 0);
    assert_int_equal(srg.version, 7);
    assert_int_equal(srg.heartbeat_interval_ms, 0); /* absent: keep the current interval */
    assert_null(json_object_get(j, "heartbeat_interval_ms"));
    json_decref(j);
    sr.heartbeat_interval_ms = 20000;
    j = nubo_status_resp_encode(&sr);
    assert_int_equal(nubo_status_resp_decode(j, &srg, &err), 0);
    assert_int_equal(srg.heartbeat_interval_ms, 20000);
    json_decref(j);
    j = json_pack("{s:i,s:i}", "version", 1, "heartbeat_interval_ms", 0);
    assert_int_equal(nubo_status_resp_decode(j, &srg, &err), -1); /* below 10 ms */
    json_decref(j);

    unsigned char data[] = "boot\nNUBO_READY\n";
    struct nubo_log_chunk c = {
        .uuid = UUID1, .offset = 8192, .data = data, .len = sizeof(data) - 1};
    struct nubo_log_batch lb = {.logs = &c, .n_logs = 1}, lg;
    j = nubo_log_batch_encode(&lb);
    assert_int_equal(nubo_log_batch_decode(j, &lg, &err), 0);
    json_decref(j);
    assert_int_equal(lg.n_logs, 1);
    assert_int_equal(lg.logs[0].offset, 8192);
    assert_int_equal(lg.logs[0].len, sizeof(data) - 1);
    assert_memory_equal(lg.logs[0].data, data, sizeof(data) - 1);
    nubo_log_batch_free(&lg);
}

static void test_bad_inputs(void **state)
{
    static const char *bad_register[] = {
        "[]",
        "{\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1}",
        "{\"name\":\"Node_A\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":\"1024\",\"vcpus\":1}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":0}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"accel\":\"hvf\"}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":{}}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":"
        "[{\"uuid\":\"x\",\"state\":\"running\"}]}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":"
        "[{\"uuid\":\"" UUID1 "\",\"state\":\"flying\"}]}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":"
        "[{\"uuid\":\"" UUID1 "\",\"state\":\"running\",\"stop_reason\":32}]}",
        "{\"name\":\"a\",\"metro\":\"fra\",\"memory_mb\":1024,\"vcpus\":1,\"instances\":"
        "[{\"uuid\":\"" UUID1 "\",\"state\":\"running\",\"started_at\":\"yesterday\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad_register) / sizeof(bad_register[0]); i++) {
        json_t *j = parse(bad_register[i]);
        struct nubo_register_req r;
        struct nubo_err err = {0};
        assert_int_equal(nubo_register_req_decode(j, &r, &err), -1);
        assert_int_equal(err.http_status, 400);
        assert_one_line(&err);
        json_decref(j);
    }
    static const char *bad_watch[] = {
        "{\"assignments\":[]}",
        "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\"}]}",
        "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a\",\"image\":\"i\","
        "\"memory_mb\":1,\"vcpus\":1,\"desired_state\":\"running\",\"private_ip\":\"10.1.2.300\","
        "\"prefix\":24,\"gateway\":\"10.1.2.1\"}]}",
        "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a\",\"image\":\"i\","
        "\"memory_mb\":1,\"vcpus\":1,\"desired_state\":\"running\",\"private_ip\":\"10.1.2.3\","
        "\"prefix\":24,\"gateway\":\"10.1.2.1\",\"service_ports\":[70000]}]}",
        "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a\",\"image\":\"i\","
        "\"memory_mb\":1,\"vcpus\":1,\"desired_state\":\"running\",\"private_ip\":\"10.1.2.3\","
        "\"prefix\":24,\"gateway\":\"10.1.2.1\",\"env\":{\"A\":1}}]}",
    };
    for (size_t i = 0; i < sizeof(bad_watch) / sizeof(bad_watch[0]); i++) {
        json_t *j = parse(bad_watch[i]);
        struct nubo_watch_resp w;
        struct nubo_err err = {0};
        assert_int_equal(nubo_watch_resp_decode(j, &w, &err), -1);
        assert_one_line(&err);
        json_decref(j);
    }
    static const char *bad_log[] = {
        "{}",
        "{\"logs\":[{\"uuid\":\"" UUID1 "\",\"offset\":-1,\"data\":\"\"}]}",
        "{\"logs\":[{\"uuid\":\"" UUID1 "\",\"offset\":0,\"data\":\"!!!\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad_log) / sizeof(bad_log[0]); i++) {
        json_t *j = parse(bad_log[i]);
        struct nubo_log_batch b;
        struct nubo_err err = {0};
        assert_int_equal(nubo_log_batch_decode(j, &b, &err), -1);
        assert_one_line(&err);
        json_decref(j);
    }
    /* text-level: malformed and oversize */
    json_t *j = NULL;
    struct nubo_err err = {0};
    assert_int_equal(pj_parse("{\"a\":", 5, 100, &j, &err), -1);
    assert_int_equal(err.http_status, 400);
    assert_one_line(&err);
    assert_int_equal(pj_parse("{\"a\":1}", 7, 3, &j, &err), -1);
    assert_int_equal(err.http_status, 413);
    assert_int_equal(pj_parse("{\"a\":1,\"a\":2}", 13, 100, &j, &err), -1);
}

static void test_enums(void **state)
{
    for (int s = 0; s < NUBO_STATE__COUNT; s++) {
        enum nubo_state back;
        assert_int_equal(nubo_state_parse(nubo_state_name(s), &back), 0);
        assert_int_equal(back, s);
    }
    assert_true(nubo_cidr_valid("10.64.0.0/16"));
    assert_false(nubo_cidr_valid("10.64.0.0/33"));
    assert_false(nubo_cidr_valid("10.64.0.0"));
    assert_false(nubo_ipv4_valid("1.2.3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_roundtrip),
        cmocka_unit_test(test_register_key),
        cmocka_unit_test(test_watch_roundtrip),
        cmocka_unit_test(test_status_and_log_roundtrip),
        cmocka_unit_test(test_bad_inputs),
        cmocka_unit_test(test_enums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
