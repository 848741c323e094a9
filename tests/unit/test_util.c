/* Unit tests for common/util.c: sizes, durations, names, uuids, digests, base64, files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void test_sizes(void **state)
{
    static const struct {
        const char *in;
        int64_t mb; /* -1 = must fail */
    } cases[] = {
        {"512", 512},   {"512M", 512},   {"512Mi", 512}, {"512MiB", 512}, {"1Gi", 1024},
        {"1G", 1024},   {"2GiB", 2048},  {"1024Ki", 1},  {"0", -1},       {"", -1},
        {"-5", -1},     {"12Zi", -1},    {"1.5Gi", -1},  {"100Ki", -1},   {"Mi", -1},
        {"99999999999999999999", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t mb = 0;
        struct nubo_err err = {0};
        int rc = nubo_parse_size_mb(cases[i].in, &mb, &err);
        if (cases[i].mb < 0) {
            assert_int_equal(rc, -1);
            assert_true(strlen(err.msg) > 0);
            assert_null(strchr(err.msg, '\n'));
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal(mb, cases[i].mb);
        }
    }
}

static void test_durations(void **state)
{
    int64_t ms;
    assert_int_equal(nubo_parse_duration_ms("500ms", &ms, NULL), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(nubo_parse_duration_ms("5s", &ms, NULL), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(nubo_parse_duration_ms("2m", &ms, NULL), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(nubo_parse_duration_ms("7", &ms, NULL), 0);
    assert_int_equal(ms, 7);
    assert_int_equal(nubo_parse_duration_ms("5x", &ms, NULL), -1);
    assert_int_equal(nubo_parse_duration_ms("s", &ms, NULL), -1);
}

static void test_names(void **state)
{
    assert_true(nubo_name_valid("http-python312-ma2i9"));
    assert_true(nubo_name_valid("a"));
    assert_false(nubo_name_valid(""));
    assert_false(nubo_name_valid("-a"));
    assert_false(nubo_name_valid("a-"));
    assert_false(nubo_name_valid("Upper"));
    assert_false(nubo_name_valid("a_b"));
    char long_name[65];
    memset(long_name, 'a', 64);
    long_name[64] = '\0';
    assert_false(nubo_name_valid(long_name));
    long_name[63] = '\0';
    assert_true(nubo_name_valid(long_name));
}

static void test_random_and_uuid(void **state)
{
    char s[6];
    nubo_random_alnum(s, 5);
    assert_int_equal(strlen(s), 5);
    assert_true(nubo_name_valid(s) || s[0] == '-');
    char u1[37], u2[37];
    nubo_uuid_new(u1);
    nubo_uuid_new(u2);
    assert_true(nubo_uuid_valid(u1));
    assert_string_not_equal(u1, u2);
    assert_int_equal(u1[14], '4');
    assert_false(nubo_uuid_valid("not-a-uuid"));
}

/* A heartbeat armed with jitter fires within [75%, 100%] of its interval, and not always at
 * the same point of it. */
static void test_jitter(void **state)
{
    (void)state;
    int64_t lo = 20000, hi = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t v = nubo_jitter_ms(20000);
        assert_true(v >= 15000 && v <= 20000);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    assert_true(hi - lo > 4000); /* 2,000 draws cover most of the 5,000 ms range */
    assert_int_equal(nubo_jitter_ms(0), 0);
    assert_int_equal(nubo_jitter_ms(3), 3); /* a quarter of 3 ms is 0 */
}

static void test_digest_and_base64(void **state)
{
    char hex[65];
    nubo_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    nubo_sha256_hex("", 0, hex); /* the second call uses the algorithm fetched by the first */
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char h[9];
    nubo_hex("\x00\x9f\xa0\xff", 4, h);
    assert_string_equal(h, "009fa0ff");
    nubo_hex("", 0, h);
    assert_string_equal(h, "");
    char d[80];
    snprintf(d, sizeof(d), "sha256:%s", hex);
    assert_true(nubo_digest_valid(d));
    d[10] = 'X';
    assert_false(nubo_digest_valid(d));
    assert_false(nubo_digest_valid("sha256:abc"));

    char *b = nubo_base64_encode("hello!!", 7);
    assert_string_equal(b, "aGVsbG8hIQ==");
    size_t n;
    unsigned char *raw = nubo_base64_decode(b, &n);
    assert_non_null(raw);
    assert_int_equal(n, 7);
    assert_memory_equal(raw, "hello!!", 7);
    free(raw);
    free(b);
    assert_null(nubo_base64_decode("abc", &n));
}

static void test_time(void **state)
{
    char s[32];
    nubo_time_iso8601(1795746040123456LL, s);
    int64_t back;
    assert_int_equal(nubo_time_parse_iso8601(s, &back), 0);
    assert_int_equal(back, 1795746040123456LL);
    assert_int_equal(nubo_time_parse_iso8601("garbage", &back), -1);
}

static void test_atomic_file(void **state)
{
    char dir[] = "/tmp/nubo-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/a/b/state.json", dir);
    char sub[256];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(nubo_mkdir_p(sub, 0755, NULL), 0);
    assert_int_equal(nubo_write_file_atomic(path, "{\"x\":1}", 7, 0600, NULL), 0);
    char *data;
    size_t len;
    assert_int_equal(nubo_read_file(path, 1024, &data, &len, NULL), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "{\"x\":1}");
    free(data);
    struct nubo_err err = {0};
    assert_int_equal(nubo_read_file(path, 3, &data, &len, &err), -1);
    assert_non_null(strstr(err.msg, "limit"));
    unlink(path);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* A copy larger than the copy buffer, appended after what out already holds. */
static void test_copy_fd(void **state)
{
    (void)state;
    FILE *src = tmpfile(), *dst = tmpfile();
    assert_non_null(src);
    assert_non_null(dst);
    for (int i = 0; i < 30000; i++)
        fprintf(src, "%04d", i % 10000);
    fflush(src);
    fputs("head", dst);
    fflush(dst);
    rewind(src);
    struct nubo_err err = {0};
    assert_int_equal(nubo_copy_fd(fileno(src), "src", fileno(dst), "dst", &err), 0);
    assert_int_equal(lseek(fileno(dst), 0, SEEK_END), 4 + 120000);
    char got[9] = {0};
    assert_int_equal(pread(fileno(dst), got, 8, 4 + 4 * 9999), 8);
    assert_string_equal(got, "99990000");
    assert_int_equal(nubo_copy_fd(-1, "nowhere", fileno(dst), "dst", &err), -1);
    assert_string_equal(err.msg, "cannot read nowhere: Bad file descriptor");
    fclose(src);
    fclose(dst);
}

static void test_scrub_paths(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"cannot create /var/cache/nubo-agent/tmp/ab.x/kernel.tar: No space left",
         "cannot create kernel.tar: No space left"},
        {"Cannot access storage file '/var/lib/nubo/images/0a/kernel' (as uid:64055)",
         "Cannot access storage file 'kernel' (as uid:64055)"},
        {"registry http://127.0.0.1:5000/v2/a/b answered 404", /* URLs stay */
         "registry http://127.0.0.1:5000/v2/a/b answered 404"},
        {"path=/run/x/y/, then (/a/b)", "path=y, then (b)"},
        {"/srv/a/b at the start", "b at the start"},
        {"a lone / or /tmp stays", "a lone / or /tmp stays"},
        {"repo official/hello@sha256:ab", "repo official/hello@sha256:ab"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "%s", cases[i].in);
        nubo_scrub_paths(buf);
        assert_string_equal(buf, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_random_and_uuid),
        cmocka_unit_test(test_digest_and_base64),
        cmocka_unit_test(test_jitter),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_atomic_file),
        cmocka_unit_test(test_scrub_paths),
        cmocka_unit_test(test_copy_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
