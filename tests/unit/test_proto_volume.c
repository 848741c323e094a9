/* proto/volume.c: the strict decoders refuse every bad input with a one-line error naming the
 * field, and every message survives encode -> decode unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "api.h"
#include "volume.h"

static json_t *parse(const char *s)
{
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    assert_non_null(j);
    return j;
}

static void test_at(void **state)
{
    (void)state;
    static const char *const good[] = {"/data", "/home/user", "/my files", "/a.b/c_d-e", "/a/..b"};
    static const char *const bad[] = {"", "/", "data", "/data/", "//data", "/a//b", "/a/./b",
                                      "/a/../b", "/..", "/a:b", "/a\"b", "/a,b", "/a]"};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
        assert_true(nubo_volume_at_valid(good[i]));
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_false(nubo_volume_at_valid(bad[i]));
    char longp[NUBO_VOLUME_AT_MAX + 3];
    memset(longp, 'a', sizeof(longp));
    longp[0] = '/';
    longp[sizeof(longp) - 1] = '\0';
    assert_false(nubo_volume_at_valid(longp));
}

static void test_mounts(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int n; /* -1 = refused */
    } cases[] = {
        {"[]", 0},
        {"null", 0},
        {"[{\"name\":\"data\",\"at\":\"/data\"}]", 1},
        {"[{\"uuid\":\"471a2a73-36db-4df9-bb63-82a45810e88a\",\"at\":\"/d\",\"readonly\":true}]", 1},
        {"[{\"size_mb\":64,\"at\":\"/cache\"},{\"name\":\"data\",\"at\":\"/data\"}]", 2},
        {"{}", -1},
        {"[5]", -1},
        {"[{\"at\":\"/data\"}]", -1},                                  /* no volume */
        {"[{\"name\":\"data\"}]", -1},                                 /* no at */
        {"[{\"name\":\"data\",\"size_mb\":5,\"at\":\"/d\"}]", -1},     /* two of them */
        {"[{\"size_mb\":0,\"at\":\"/d\"}]", -1},                       /* size 0 */
        {"[{\"size_mb\":1048577,\"at\":\"/d\"}]", -1},                 /* over the spec */
        {"[{\"name\":\"data\",\"at\":\"/\"}]", -1},
        {"[{\"name\":\"data\",\"at\":\"rel\"}]", -1},
        {"[{\"uuid\":\"nope\",\"at\":\"/d\"}]", -1},
        {"[{\"name\":\"data\",\"at\":\"/d\",\"colour\":1}]", -1},
        {"[{\"name\":\"a\",\"at\":\"/d\"},{\"name\":\"b\",\"at\":\"/d\"}]", -1},  /* one path */
        {"[{\"name\":\"a\",\"at\":\"/d\"},{\"name\":\"a\",\"at\":\"/e\"}]", -1},  /* one volume */
        {"[{\"name\":\"data\",\"at\":\"/d\",\"readonly\":\"yes\"}]", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        json_t *j = parse(cases[i].in);
        struct nubo_volume_mount *m = NULL;
        size_t n = 99;
        struct nubo_err err = {0};
        int rc = nubo_volume_mounts_decode(json_is_null(j) ? NULL : j, "volumes", &m, &n, &err);
        if (cases[i].n < 0) {
            if (rc != -1)
                fail_msg("accepted %s", cases[i].in);
            assert_int_equal(err.http_status, 400);
            assert_null(strchr(err.msg, '\n'));
            assert_true(strncmp(err.msg, "volumes", 7) == 0);
        } else {
            if (rc != 0)
                fail_msg("refused %s: %s", cases[i].in, err.msg);
            assert_int_equal(n, (size_t)cases[i].n);
            /* round trip */
            json_t *back = nubo_volume_mounts_encode(m, n);
            struct nubo_volume_mount *m2 = NULL;
            size_t n2;
            assert_int_equal(nubo_volume_mounts_decode(back, "volumes", &m2, &n2, &err), 0);
            assert_int_equal(n2, n);
            if (n)
                assert_memory_equal(m, m2, n * sizeof(*m));
            json_decref(back);
            free(m2);
        }
        free(m);
        json_decref(j);
    }
}

static void test_create_req(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "[]", "{}", "{\"size_mb\":0}", "{\"size_mb\":\"5\"}", "{\"size_mb\":1048577}",
        "{\"size_mb\":5,\"name\":\"Bad_Name\"}", "{\"size_mb\":5,\"x\":1}",
        "{\"size_mb\":5,\"metro\":\"FRA\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        json_t *j = parse(bad[i]);
        struct nubo_volume_create_req r;
        struct nubo_err err = {0};
        if (nubo_volume_create_req_decode(j, &r, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_int_equal(err.http_status, 400);
        json_decref(j);
    }
    struct nubo_volume_create_req r = {.name = "data", .size_mb = 1024, .metro = "fra0"}, r2;
    json_t *j = nubo_volume_create_req_encode(&r);
    struct nubo_err err = {0};
    assert_int_equal(nubo_volume_create_req_decode(j, &r2, &err), 0);
    assert_memory_equal(&r, &r2, sizeof(r));
    json_decref(j);
}

static void test_volume_object(void **state)
{
    (void)state;
    struct nubo_volume v = {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a",
                            .name = "data",
                            .size_mb = 100,
                            .state = NUBO_VOL_MOUNTED,
                            .persistent = true,
                            .created_at_us = 1700000000000000,
                            .n_attached = 1,
                            .n_mounted = 1,
                            .node = "node-1",
                            .metro = "fra0"};
    snprintf(v.attached_to[0].uuid, sizeof(v.attached_to[0].uuid), "%s", v.uuid);
    snprintf(v.attached_to[0].name, sizeof(v.attached_to[0].name), "w1");
    v.mounted_by[0] = v.attached_to[0];
    v.mounted_by[0].readonly = true;
    json_t *j = nubo_volume_encode(&v, true);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "mounted");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "success");
    assert_true(json_is_boolean(json_object_get(j, "persistent")));
    /* readonly belongs to mounted_by only (the spec's shapes) */
    assert_null(json_object_get(json_array_get(json_object_get(j, "attached_to"), 0), "readonly"));
    assert_true(json_is_true(
        json_object_get(json_array_get(json_object_get(j, "mounted_by"), 0), "readonly")));
    struct nubo_volume *list = NULL;
    size_t n;
    struct nubo_err err = {0};
    json_t *a = json_pack("[O]", j);
    assert_int_equal(nubo_volume_list_decode(a, 10, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_memory_equal(&list[0], &v, sizeof(v));
    nubo_volume_list_free(list, n);
    json_decref(a);
    json_decref(j);
    for (int s = 0; s < NUBO_VOL__COUNT; s++) {
        enum nubo_volume_state back;
        assert_int_equal(nubo_volume_state_parse(nubo_volume_state_name(s), &back), 0);
        assert_int_equal(back, s);
    }
}

static void test_agent_messages(void **state)
{
    (void)state;
    /* the assignment carries the mounts; the watch answer the node's set */
    struct nubo_volume_mount m = {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a", .at = "/data"};
    struct nubo_assignment a = {.uuid = "571a2a73-36db-4df9-bb63-82a45810e88a",
                                .name = "w1",
                                .image = "admin/x@sha256:00",
                                .memory_mb = 64,
                                .vcpus = 1,
                                .private_ip = "10.0.0.2",
                                .prefix = 24,
                                .gateway = "10.0.0.1",
                                .dns = "10.0.0.1",
                                .volumes = &m,
                                .n_volumes = 1};
    struct nubo_volume_spec spec = {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a",
                                    .size_mb = 100};
    struct nubo_watch_resp w = {.version = 7,
                                .assignments = &a,
                                .n_assignments = 1,
                                .has_volumes = true,
                                .volumes = &spec,
                                .n_volumes = 1};
    json_t *j = nubo_watch_resp_encode(&w);
    struct nubo_watch_resp w2;
    struct nubo_err err = {0};
    assert_int_equal(nubo_watch_resp_decode(j, &w2, &err), 0);
    assert_true(w2.has_volumes);
    assert_int_equal(w2.n_volumes, 1);
    assert_memory_equal(&w2.volumes[0], &spec, sizeof(spec));
    assert_int_equal(w2.assignments[0].n_volumes, 1);
    assert_memory_equal(&w2.assignments[0].volumes[0], &m, sizeof(m));
    struct nubo_assignment copy;
    assert_int_equal(nubo_assignment_copy(&copy, &w2.assignments[0]), 0);
    assert_memory_equal(&copy.volumes[0], &m, sizeof(m));
    nubo_assignment_free(&copy);
    nubo_watch_resp_free(&w2);
    json_decref(j);
    /* an agent's mount names its volume by uuid only */
    j = parse("[{\"name\":\"data\",\"at\":\"/d\"}]");
    struct nubo_volume_mount *mv;
    size_t n;
    assert_int_equal(nubo_volume_attach_decode(j, "volumes", &mv, &n, &err), -1);
    json_decref(j);
    /* status batch volume reports */
    struct nubo_volume_report r = {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a",
                                   .state = NUBO_VOL_ERROR,
                                   .message = "formatting failed"};
    struct nubo_status_batch b = {.volumes = &r, .n_volumes = 1}, b2;
    j = nubo_status_batch_encode(&b);
    assert_int_equal(nubo_status_batch_decode(j, &b2, &err), 0);
    assert_int_equal(b2.n_volumes, 1);
    assert_memory_equal(&b2.volumes[0], &r, sizeof(r));
    nubo_status_batch_free(&b2);
    json_decref(j);
    j = parse("{\"volumes\":[{\"uuid\":\"471a2a73-36db-4df9-bb63-82a45810e88a\","
              "\"state\":\"melted\"}]}");
    assert_int_equal(nubo_status_batch_decode(j, &b2, &err), -1);
    json_decref(j);
}

static void test_cli_flag(void **state)
{
    (void)state;
    struct nubo_volume_mount m;
    struct nubo_err err = {0};
    assert_int_equal(nubo_volume_mount_parse("data:/data", &m, &err), 0);
    assert_string_equal(m.name, "data");
    assert_string_equal(m.at, "/data");
    assert_false(m.readonly);
    assert_int_equal(nubo_volume_mount_parse("471a2a73-36db-4df9-bb63-82a45810e88a:/d:ro", &m,
                                             &err),
                     0);
    assert_string_equal(m.uuid, "471a2a73-36db-4df9-bb63-82a45810e88a");
    assert_string_equal(m.name, "");
    assert_true(m.readonly);
    static const char *const bad[] = {"data", ":/data", "data:/", "data:rel", "data:/d:rw:x",
                                      "data:/d:maybe"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        if (nubo_volume_mount_parse(bad[i], &m, &err) != -1)
            fail_msg("accepted -v %s", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_at),           cmocka_unit_test(test_mounts),
        cmocka_unit_test(test_create_req),   cmocka_unit_test(test_volume_object),
        cmocka_unit_test(test_agent_messages), cmocka_unit_test(test_cli_flag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
