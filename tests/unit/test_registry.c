/* Unit tests for common/registry.c: reference parsing and the transport's error reporting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "registry.h"

static void test_ref_parse(void **state)
{
    static const struct {
        const char *in;
        const char *host, *repo, *tag, *digest; /* repo NULL = must fail */
    } cases[] = {
        {"acme/app:latest", "", "acme/app", "latest", ""},
        {"acme/app", "", "acme/app", "latest", ""},
        {"app", "", "app", "latest", ""},
        {"official/python:3.11", "", "official/python", "3.11", ""},
        {"127.0.0.1:5000/acme/app:v1", "127.0.0.1:5000", "acme/app", "v1", ""},
        {"localhost/acme/app", "localhost", "acme/app", "latest", ""},
        {"index.unikraft.io/official/base:latest", "index.unikraft.io", "official/base", "latest", ""},
        {"acme/app@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472", "",
         "acme/app", "", "sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472"},
        {"acme/app:v1@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472", "",
         "acme/app", "", "sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472"},
        {"", NULL, NULL, NULL, NULL},
        {"Acme/App", NULL, NULL, NULL, NULL},
        {"acme/app@sha256:1234", NULL, NULL, NULL, NULL},
        {"acme/app:", NULL, NULL, NULL, NULL},
        {"acme/../etc:x", NULL, NULL, NULL, NULL},
        {"acme//app", NULL, NULL, NULL, NULL},
        {"acme/app:bad tag", NULL, NULL, NULL, NULL},
        {"/acme", NULL, NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct nubo_image_ref r;
        struct nubo_err err = {0};
        int rc = nubo_image_ref_parse(cases[i].in, &r, &err);
        if (!cases[i].repo) {
            if (rc == 0)
                fail_msg("'%s' parsed but must not", cases[i].in);
            assert_true(strlen(err.msg) > 0);
            assert_null(strchr(err.msg, '\n'));
            continue;
        }
        if (rc != 0)
            fail_msg("'%s' failed: %s", cases[i].in, err.msg);
        assert_string_equal(r.host, cases[i].host);
        assert_string_equal(r.repo, cases[i].repo);
        assert_string_equal(r.tag, cases[i].tag);
        assert_string_equal(r.digest, cases[i].digest);
    }
}

static void test_ref_format(void **state)
{
    struct nubo_image_ref r;
    char buf[600];
    assert_int_equal(nubo_image_ref_parse("127.0.0.1:5000/acme/app:v1", &r, NULL), 0);
    nubo_image_ref_format(&r, buf, sizeof(buf));
    assert_string_equal(buf, "acme/app:v1");
    assert_int_equal(nubo_image_ref_parse(
                         "a/b@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472",
                         &r, NULL),
                     0);
    nubo_image_ref_format(&r, buf, sizeof(buf));
    assert_string_equal(buf, "a/b@sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472");
}

/* A port nobody listens on: bind, read the port, close. */
static int dead_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t l = sizeof(a);
    getsockname(s, (struct sockaddr *)&a, &l);
    close(s);
    return ntohs(a.sin_port);
}

static void test_registry_down(void **state)
{
    struct nubo_registry reg = {0};
    snprintf(reg.url, sizeof(reg.url), "http://127.0.0.1:%d", dead_port());
    reg.retries = 1;
    struct nubo_err err = {0};
    char *body = NULL, *mt = NULL;
    size_t len;
    char dig[80];
    assert_int_equal(nubo_registry_get_manifest(&reg, "acme/app", "latest", &body, &len, &mt, dig, &err), -1);
    assert_non_null(strstr(err.msg, "cannot reach registry"));
    assert_non_null(strstr(err.msg, reg.url));
    assert_null(strchr(err.msg, '\n'));
    nubo_err_clear(&err);
    assert_int_equal(nubo_registry_blob_exists(&reg, "acme/app", "sha256:278cb8b14f9faf9c2702dddd8bfb6124912d82c11b4a2c6590b6e32fc4049472", &err), -1);
    assert_non_null(strstr(err.msg, "cannot reach registry"));
    /* Bad input is refused before any network traffic. */
    nubo_err_clear(&err);
    assert_int_equal(nubo_registry_blob_exists(&reg, "acme/app", "sha256:12", &err), -1);
    assert_non_null(strstr(err.msg, "bad blob digest"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_parse),
        cmocka_unit_test(test_ref_format),
        cmocka_unit_test(test_registry_down),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
