/* Golden-output tests of the CLI renderers: JSON fixtures shaped like the API's answers,
 * decoded by proto's client half as the CLI does, in; the seed document's tables and deploy
 * tree out, byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

typedef void (*render_fn)(FILE *f, json_t *j, int64_t now);

static char *capture(render_fn fn, const char *json, int64_t now)
{
    json_error_t jerr;
    json_t *j = json_loads(json, 0, &jerr);
    if (!j)
        fail_msg("fixture is not JSON: %s", jerr.text);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, j, now);
    fclose(f);
    json_decref(j);
    return buf;
}

static void golden(const char *got, const char *want)
{
    if (strcmp(got, want) != 0)
        fail_msg("output differs.\n--- got ---\n%s--- want ---\n%s", got, want);
}

static int64_t t0;

static void setup_time(void)
{
    assert_int_equal(nubo_time_parse_iso8601("2026-11-27T02:00:45Z", &t0), 0);
}

static void r_tree(FILE *f, json_t *j, int64_t now)
{
    (void)now;
    struct nubo_instance in;
    struct nubo_err err = {0};
    if (nubo_instance_decode(j, &in, &err) < 0)
        fail_msg("fixture does not decode: %s", err.msg);
    cli_render_deploy_tree(f, &in, false, "nubo");
    nubo_instance_free(&in);
}

static void r_instances(FILE *f, json_t *j, int64_t now)
{
    struct nubo_instance *v;
    size_t n;
    struct nubo_err err = {0};
    if (nubo_instance_list_decode(j, 64, &v, &n, &err) < 0)
        fail_msg("fixture does not decode: %s", err.msg);
    cli_render_instances(f, v, n, now);
    nubo_instance_list_free(v, n);
}

static void test_deploy_tree_seed(void **state)
{
    /* The seed's first workflow, as GET /v1/instances returns it. */
    char *got = capture(r_tree, "{\"status\":\"success\",\"name\":\"http-python312-ma2i9\","
        "\"uuid\":\"e7389eee-9808-4152-b2ec-1f3c0541fd05\",\"state\":\"running\","
        "\"image\":\"<my-org>/http-python312@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472\","
        "\"boot_time_us\":15090,\"memory_mb\":512,"
        "\"service_group\":{\"uuid\":\"u\",\"name\":\"young-night-5fpf0jj8\","
        "\"domains\":[{\"fqdn\":\"young-night-5fpf0jj8.fra.unikraft.app\"}],"
        "\"services\":[{\"port\":443,\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]},"
        "\"private_fqdn\":\"http-python312-ma2i9.internal\",\"private_ip\":\"172.16.3.3\","
        "\"args\":[\"/usr/bin/python\",\"/src/server.py\"]}", 0);
    golden(got,
           "[●] Deployed successfully!\n"
           " │\n"
           " ├────────── name: http-python312-ma2i9\n"
           " ├────────── uuid: e7389eee-9808-4152-b2ec-1f3c0541fd05\n"
           " ├───────── state: running\n"
           " ├─────────── url: https://young-night-5fpf0jj8.fra.unikraft.app\n"
           " ├───────── image: <my-org>/http-python312@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472\n"
           " ├───── boot time: 15.09 ms\n"
           " ├──────── memory: 512 MiB\n"
           " ├─────── service: young-night-5fpf0jj8\n"
           " ├── private fqdn: http-python312-ma2i9.internal\n"
           " ├──── private ip: 172.16.3.3\n"
           " └────────── args: /usr/bin/python /src/server.py\n");
    free(got);
}

static void test_deploy_tree_metro_no_service(void **state)
{
    char *got = capture(r_tree, "{\"name\":\"hello-ab12c\",\"uuid\":\"7c0e1c9a-0000-4000-8000-000000000001\","
        "\"metro\":\"fra\",\"state\":\"running\",\"image\":\"acme/hello@sha256:aa\","
        "\"boot_time_us\":153646,\"memory_mb\":128,\"private_fqdn\":\"hello-ab12c.internal\","
        "\"private_ip\":\"10.64.3.7\",\"args\":[]}", 0);
    golden(got,
           "[●] Deployed successfully!\n"
           " │\n"
           " ├────────── name: hello-ab12c\n"
           " ├────────── uuid: 7c0e1c9a-0000-4000-8000-000000000001\n"
           " ├───────── metro: fra\n"
           " ├───────── state: running\n"
           " ├───────── image: acme/hello@sha256:aa\n"
           " ├───── boot time: 153.65 ms\n"
           " ├──────── memory: 128 MiB\n"
           " ├── private fqdn: hello-ab12c.internal\n"
           " ├──── private ip: 10.64.3.7\n"
           " └────────── args: \n");
    free(got);
}

static void test_deploy_tree_not_online(void **state)
{
    char *got = capture(r_tree, "{\"name\":\"crashy-1\",\"uuid\":\"u-1\",\"state\":\"stopped\","
        "\"stop_reason\":1,\"message\":\"NUBO_CRASH page fault\",\"image\":\"acme/crashy@sha256:bb\","
        "\"boot_time_us\":0,\"memory_mb\":256,\"private_fqdn\":\"crashy-1.internal\","
        "\"private_ip\":\"10.64.3.8\",\"args\":[\"--fail\"]}", 0);
    golden(got,
           "[●] Deployed but instance is not online!\n"
           " │\n"
           " ├────────── name: crashy-1\n"
           " ├────────── uuid: u-1\n"
           " ├───────── state: stopped\n"
           " ├─── stop reason: ----K the kernel stopped (crash): NUBO_CRASH page fault\n"
           " ├───────── image: acme/crashy@sha256:bb\n"
           " ├──────── memory: 256 MiB\n"
           " ├── private fqdn: crashy-1.internal\n"
           " ├──── private ip: 10.64.3.8\n"
           " └────────── args: --fail\n"
           "\n"
           "See why with: nubo instances logs crashy-1\n");
    free(got);
}

static void test_deploy_tree_not_started(void **state)
{
    char *got = capture(r_tree, "{\"name\":\"later\",\"uuid\":\"u-2\",\"state\":\"stopped\","
        "\"start_count\":0,\"stop_reason\":0,\"image\":\"acme/app@sha256:cc\",\"boot_time_us\":0,"
        "\"memory_mb\":128,\"private_fqdn\":\"later.internal\",\"private_ip\":\"10.64.3.9\",\"args\":[]}", 0);
    golden(got,
           "[●] Created but not started (--no-start)\n"
           " │\n"
           " ├────────── name: later\n"
           " ├────────── uuid: u-2\n"
           " ├───────── state: stopped\n"
           " ├───────── image: acme/app@sha256:cc\n"
           " ├──────── memory: 128 MiB\n"
           " ├── private fqdn: later.internal\n"
           " ├──── private ip: 10.64.3.9\n"
           " └────────── args: \n");
    free(got);
}

static void test_instances_table_seed(void **state)
{
    setup_time();
    char *got = capture(r_instances, "["
        "{\"name\":\"http-python312-w4bcp\",\"created_at\":\"2026-11-27T02:00:00.000000Z\",\"state\":\"running\","
        "\"service_group\":{\"domains\":[{\"fqdn\":\"sparkling-surf-qphxdk0j.fra.unikraft.app\"}]},"
        "\"image\":\"http-python312@sha256:5b922dfa1632af38c476b98fdd9f4314fb9c5e587d3d31255e6479108c057e88\","
        "\"memory_mb\":512,\"args\":[\"/usr/bin/python3\",\"/src/server.py\"],\"boot_time_us\":153794},"
        "{\"name\":\"http-python312-juvv4\",\"created_at\":\"2026-11-27T02:00:00Z\",\"state\":\"running\","
        "\"service_group\":{\"domains\":[{\"fqdn\":\"old-brook-v3bf7h7z.fra.unikraft.app\"}]},"
        "\"image\":\"http-python312@sha256:5b922dfa1632af38c476b98fdd9f4314fb9c5e587d3d31255e6479108c057e88\","
        "\"memory_mb\":512,\"args\":[\"/usr/bin/python3\",\"/src/server.py\"],\"boot_time_us\":154744},"
        "{\"name\":\"http-python312-8mxq5\",\"created_at\":\"2026-11-27T02:00:00Z\",\"state\":\"running\","
        "\"service_group\":{\"domains\":[{\"fqdn\":\"small-darkness-4t9y8n5s.fra.unikraft.app\"}]},"
        "\"image\":\"http-python312@sha256:5b922dfa1632af38c476b98fdd9f4314fb9c5e587d3d31255e6479108c057e88\","
        "\"memory_mb\":512,\"args\":[\"/usr/bin/python3\",\"/src/server.py\"],\"boot_time_us\":153646}]",
        t0);
    golden(got,
           "NAME                  FQDN                                      STATE    CREATED AT      IMAGE                     MEMORY   ARGS                             BOOT TIME\n"
           "http-python312-w4bcp  sparkling-surf-qphxdk0j.fra.unikraft.app  running  45 seconds ago  http-python312@sha256...  512 MiB  /usr/bin/python3 /src/server.py  153794us\n"
           "http-python312-juvv4  old-brook-v3bf7h7z.fra.unikraft.app       running  45 seconds ago  http-python312@sha256...  512 MiB  /usr/bin/python3 /src/server.py  154744us\n"
           "http-python312-8mxq5  small-darkness-4t9y8n5s.fra.unikraft.app  running  45 seconds ago  http-python312@sha256...  512 MiB  /usr/bin/python3 /src/server.py  153646us\n");
    free(got);
    got = capture(r_instances, "[]", t0);
    golden(got, "NAME  FQDN  STATE  CREATED AT  IMAGE  MEMORY  ARGS  BOOT TIME\n");
    free(got);
}

static void r_images(FILE *f, json_t *j, int64_t now)
{
    (void)now;
    struct nubo_image *v;
    size_t n;
    struct nubo_err err = {0};
    if (nubo_image_list_decode(j, 64, &v, &n, &err) < 0)
        fail_msg("fixture does not decode: %s", err.msg);
    cli_render_images(f, v, n);
    nubo_image_list_free(v, n);
}

static void test_images_table(void **state)
{
    char *got = capture(r_images, "["
        "{\"url\":\"acme/http-python312@sha256:aa\",\"tags\":[\"acme/http-python312:latest\"],\"size_in_bytes\":77312000},"
        "{\"url\":\"official/python@sha256:bb\",\"tags\":[\"official/python:3.11\",\"official/python:latest\"],\"size_in_bytes\":7712000},"
        "{\"url\":\"acme/old@sha256:cc\",\"tags\":[],\"size_in_bytes\":512}]", 0);
    golden(got,
           "IMAGE                TAG     SIZE\n"
           "acme/http-python312  latest  77 MB\n"
           "official/python      3.11    7.7 MB\n"
           "official/python      latest  7.7 MB\n"
           "acme/old             <none>  512 B\n");
    free(got);
}

/* nubo instances metrics: the agent's and the ingress's numbers side by side. */
static void test_metrics_table(void **state)
{
    (void)state;
    struct nubo_instance_metrics m[1] = {{.name = "web",
                                          .rss_bytes = 3 << 20,
                                          .cpu_time_ms = 230,
                                          .boot_time_us = 41000,
                                          .net_time_us = 52500,
                                          .nconns = 0,
                                          .nreqs = 2,
                                          .nqueued = 1,
                                          .ntotal = 1234}};
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    cli_render_metrics(f, m, 1);
    fclose(f);
    golden(got, "NAME  RSS      CPU TIME  BOOT TIME  NET TIME  CONNS  REQS  QUEUED  TOTAL\n"
                "web   3.0 MiB  230 ms    41.00 ms   52.50 ms  0      2     1       1234\n");
    free(got);
}

static void test_helpers(void **state)
{
    static const struct {
        int64_t ago_s;
        const char *want;
    } ago[] = {{0, "now"},          {1, "1 second ago"},   {45, "45 seconds ago"},
               {60, "1 minute ago"}, {179, "2 minutes ago"}, {3600, "1 hour ago"},
               {2 * 86400, "2 days ago"}, {400 * 86400LL, "1 year ago"}};
    for (size_t i = 0; i < sizeof(ago) / sizeof(ago[0]); i++) {
        char buf[64];
        cli_time_ago(1000000000000000LL - ago[i].ago_s * 1000000, 1000000000000000LL, buf, sizeof(buf));
        assert_string_equal(buf, ago[i].want);
    }
    static const struct {
        uint64_t b;
        const char *want;
    } bytes[] = {{0, "0 B"}, {9, "9 B"}, {512, "512 B"}, {1000, "1.0 kB"}, {77312000, "77 MB"},
                 {7712000, "7.7 MB"}, {1500000000, "1.5 GB"}};
    for (size_t i = 0; i < sizeof(bytes) / sizeof(bytes[0]); i++) {
        char buf[32];
        cli_human_bytes(bytes[i].b, buf, sizeof(buf));
        assert_string_equal(buf, bytes[i].want);
    }
    char sr[128];
    cli_stop_reason(28, NULL, sr, sizeof(sr));
    assert_string_equal(sr, "FUP-- forced stop");
    cli_stop_reason(15, NULL, sr, sizeof(sr));
    assert_string_equal(sr, "-UPAK stopped by the user");
    struct nubo_instance in = {.has_exit_code = true, .exit_code = 3};
    cli_stop_reason(3, &in, sr, sizeof(sr));
    assert_string_equal(sr, "---AK the app exited (exit code 3)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deploy_tree_seed),
        cmocka_unit_test(test_deploy_tree_metro_no_service),
        cmocka_unit_test(test_deploy_tree_not_online),
        cmocka_unit_test(test_deploy_tree_not_started),
        cmocka_unit_test(test_instances_table_seed),
        cmocka_unit_test(test_images_table),
        cmocka_unit_test(test_metrics_table),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
