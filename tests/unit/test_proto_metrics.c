/* proto/metrics.c: the agent's stats survive a status batch round trip and bad entries are
 * refused; the API's instance_metrics object carries the spec's fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "metrics.h"

static void test_stats_in_batch(void **state)
{
    (void)state;
    struct nubo_instance_stats s[2] = {
        {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a", .rss_bytes = 5121024, .cpu_time_ms = 230},
        {.uuid = "571a2a73-36db-4df9-bb63-82a45810e88a", .rss_bytes = 0, .cpu_time_ms = 0},
    };
    struct nubo_status_batch b = {.stats = s, .n_stats = 2}, b2;
    json_t *j = nubo_status_batch_encode(&b);
    struct nubo_err err = {0};
    int rc = nubo_status_batch_decode(j, &b2, &err);
    json_decref(j);
    assert_int_equal(rc, 0);
    bool same = b2.n_stats == 2;
    for (size_t i = 0; same && i < 2; i++) /* field by field: struct padding is not data */
        same = !strcmp(b2.stats[i].uuid, s[i].uuid) && b2.stats[i].rss_bytes == s[i].rss_bytes &&
               b2.stats[i].cpu_time_ms == s[i].cpu_time_ms;
    nubo_status_batch_free(&b2);
    assert_true(same);
    static const char *const bad[] = {
        "{\"stats\":{}}",
        "{\"stats\":[{\"uuid\":\"x\",\"rss_bytes\":1,\"cpu_time_ms\":1}]}",
        "{\"stats\":[{\"uuid\":\"471a2a73-36db-4df9-bb63-82a45810e88a\",\"rss_bytes\":-1,"
        "\"cpu_time_ms\":1}]}",
        "{\"stats\":[{\"uuid\":\"471a2a73-36db-4df9-bb63-82a45810e88a\",\"cpu_time_ms\":1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        j = json_loads(bad[i], 0, NULL);
        assert_non_null(j);
        if (nubo_status_batch_decode(j, &b2, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        json_decref(j);
    }
}

static void test_api_object(void **state)
{
    (void)state;
    struct nubo_instance_metrics m = {.uuid = "471a2a73-36db-4df9-bb63-82a45810e88a",
                                      .name = "w1",
                                      .rss_bytes = 123456789,
                                      .cpu_time_ms = 230,
                                      .boot_time_us = 41000,
                                      .net_time_us = 52000,
                                      .nconns = 3,
                                      .nreqs = 65535,
                                      .nqueued = 1,
                                      .ntotal = INT64_C(9000000000)};
    json_t *j = nubo_instance_metrics_encode(&m);
    static const char *const fields[] = {"status", "uuid", "name", "rss_bytes", "cpu_time_ms",
                                         "boot_time_us", "net_time_us", "nconns",
                                         "nreqs",       "nqueued",     "ntotal", NULL};
    for (size_t i = 0; fields[i]; i++)
        assert_non_null(json_object_get(j, fields[i]));
    json_t *a = json_pack("[O]", j);
    struct nubo_instance_metrics *v;
    size_t n;
    struct nubo_err err = {0};
    assert_int_equal(nubo_instance_metrics_list_decode(a, 4, &v, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(v[0].uuid, m.uuid);
    assert_string_equal(v[0].name, m.name);
    assert_int_equal(v[0].rss_bytes, m.rss_bytes);
    assert_int_equal(v[0].cpu_time_ms, m.cpu_time_ms);
    assert_int_equal(v[0].boot_time_us, m.boot_time_us);
    assert_int_equal(v[0].net_time_us, m.net_time_us);
    assert_int_equal(v[0].nconns, 3);
    assert_int_equal(v[0].nreqs, 65535);
    assert_int_equal(v[0].nqueued, 1);
    assert_int_equal(v[0].ntotal, INT64_C(9000000000));
    nubo_instance_metrics_list_free(v, n);
    json_decref(a);
    json_decref(j);
    /* the spec's int32 gauges stop at 65535 */
    j = json_pack("{s:s, s:i}", "uuid", m.uuid, "nreqs", 65536);
    struct nubo_instance_metrics one;
    assert_int_equal(nubo_instance_metrics_decode(j, &one, &err), -1);
    assert_non_null(strstr(err.msg, "nreqs"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_in_batch),
        cmocka_unit_test(test_api_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
