/* common/config.c: the table-driven INI reader — types, bounds, defaults, sections, and the
 * one error wording "config FILE:LINE: ..." for every way a file can be wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"

struct demo {
    char name[16];
    char path[8];
    int64_t count;
    int port;
    int64_t wait_ms;
    int64_t mem_mb;
    char mode[8];
    int n_peers;
};

static int set_mode(void *t, const char *key, const char *v, struct nubo_err *err)
{
    if (strcmp(v, "fast") != 0 && strcmp(v, "slow") != 0)
        return nubo_error(err, 0, "'%s' is not fast or slow", v);
    snprintf(((struct demo *)t)->mode, sizeof(((struct demo *)t)->mode), "%s", v);
    return 0;
}

static int add_peer(void *t, const char *key, const char *v, struct nubo_err *err)
{
    if (strcmp(v, "ok") != 0)
        return nubo_error(err, 0, "peer %s wants ok", key);
    ((struct demo *)t)->n_peers++;
    return 0;
}

#define T struct demo
static const struct nu_cfg_key demo_table[] = {
    NU_CFG_N(T, "main", "name", name, "demo"),
    NU_CFG_S(T, "main", "path", path, "/x"),
    NU_CFG_I(T, "main", "count", count, 1, 10, "3"),
    NU_CFG_I(T, "main", "port", port, 1, 65535, "80"),
    NU_CFG_D(T, "main", "wait", wait_ms, 0, 60000, "5s"),
    NU_CFG_M(T, "main", "memory", mem_mb, 0, 0, "1Gi"),
    NU_CFG_F("main", "mode", set_mode, "slow"),
    NU_CFG_F("peers", NULL, add_peer, NULL),
    {0},
};
#undef T

static char g_path[64];

static void write_file(const char *text)
{
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_path, sizeof(g_path), "/tmp/nubo-test-config-XXXXXX");
    int fd = mkstemp(g_path);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(g_path);
    return 0;
}

static void test_defaults_and_values(void **state)
{
    (void)state;
    struct demo d = {0};
    struct nubo_err err = {0};
    assert_int_equal(nu_cfg_defaults(demo_table, &d, &err), 0);
    assert_string_equal(d.name, "demo");
    assert_string_equal(d.path, "/x");
    assert_int_equal(d.count, 3);
    assert_int_equal(d.port, 80);
    assert_int_equal(d.wait_ms, 5000);
    assert_int_equal(d.mem_mb, 1024);
    assert_string_equal(d.mode, "slow");
    write_file("; comment\n[main]\nname = web-1\npath = /srv\ncount = 10\nport = 8080\n"
               "wait = 250ms\nmemory = 512Mi\nmode = fast\n[peers]\na = ok\nb = ok\n");
    assert_int_equal(nu_cfg_load(g_path, demo_table, &d, NULL, &err), 0);
    assert_string_equal(d.name, "web-1");
    assert_string_equal(d.path, "/srv");
    assert_int_equal(d.count, 10);
    assert_int_equal(d.port, 8080);
    assert_int_equal(d.wait_ms, 250);
    assert_int_equal(d.mem_mb, 512);
    assert_string_equal(d.mode, "fast");
    assert_int_equal(d.n_peers, 2);
}

/* Each way a file can be wrong, with the exact line a user sees. */
static void expect(const char *text, const char *want_tail)
{
    struct demo d = {0};
    struct nubo_err err = {0};
    nu_cfg_defaults(demo_table, &d, &err);
    write_file(text);
    assert_int_equal(nu_cfg_load(g_path, demo_table, &d, NULL, &err), -1);
    char want[512];
    snprintf(want, sizeof(want), "config %s:%s", g_path, want_tail);
    assert_string_equal(err.msg, want);
}

static void test_errors(void **state)
{
    (void)state;
    expect("[main]\ncolour = blue\n", "2: unknown setting [main] colour");
    expect("[other]\nname = x\n", "2: unknown setting [other] name");
    expect("[main]\n\ncount = 11\n", "3: [main] count: 11 is out of range 1..10");
    expect("[main]\ncount = many\n", "2: [main] count: 'many' is not a whole number");
    expect("[main]\nport = 0\n", "2: [main] port: 0 is out of range 1..65535");
    expect("[main]\npath = /too/long\n", "2: [main] path: value longer than 7 bytes");
    expect("[main]\nname = Web_1\n", "2: [main] name: 'Web_1' is not a name (1-63 of [a-z0-9-])");
    expect("[main]\nwait = 2m\n", "2: [main] wait: 120000 is out of range 0..60000 ms");
    expect("[main]\nwait = soon\n", "2: [main] wait: bad duration 'soon': expected e.g. 500ms, "
                                    "5s, 2m");
    expect("[main]\nmode = warp\n", "2: [main] mode: 'warp' is not fast or slow");
    expect("[peers]\nx = ok\ny = no\n", "3: [peers] y: peer y wants ok");
    expect("[main]\nthis is not ini\n", "2: syntax error");
    /* The first problem wins, whichever kind it is. */
    expect("[main\ncolour = blue\n", "1: syntax error");
    expect("[main]\ncolour = blue\n[broken\n", "2: unknown setting [main] colour");
    /* A line longer than inih's buffer is refused, not read as two lines. */
    char long_line[600];
    snprintf(long_line, sizeof(long_line), "[main]\npath = %0500d\n", 0);
    struct demo d = {0};
    struct nubo_err err = {0};
    write_file(long_line);
    assert_int_equal(nu_cfg_load(g_path, demo_table, &d, NULL, &err), -1);
    assert_non_null(strstr(err.msg, ":2: line longer than"));
    /* A missing file names the file and the reason. */
    assert_int_equal(nu_cfg_load("/nonexistent/nubo.ini", demo_table, &d, NULL, &err), -1);
    assert_string_equal(err.msg, "cannot read config /nonexistent/nubo.ini: No such file or "
                                 "directory");
}

/* The CLI's way: one section picked at run time, unknown keys skipped, its own noun. */
#define P struct demo
static const struct nu_cfg_key profile_table[] = {
    NU_CFG_S(P, NULL, "name", name, NULL),
    {0},
};
#undef P

static void test_selected_section(void **state)
{
    (void)state;
    struct demo d = {0};
    struct nubo_err err = {0};
    const struct nu_cfg_opts opts = {.what = "profile", .section = "staging",
                                     .ignore_unknown = true, .hint = ": run 'nubo login'"};
    write_file("[default]\nname = a\n[staging]\nname = b\nnewer_key = 1\n[other]\nname = c\n");
    assert_int_equal(nu_cfg_load(g_path, profile_table, &d, &opts, &err), 0);
    assert_string_equal(d.name, "b");
    write_file("[staging]\nname = this-is-longer-than-16\n");
    assert_int_equal(nu_cfg_load(g_path, profile_table, &d, &opts, &err), -1);
    char want[256];
    snprintf(want, sizeof(want), "profile %s:2: [staging] name: value longer than 15 bytes",
             g_path);
    assert_string_equal(err.msg, want);
    write_file("[staging]\nnot ini\n");
    assert_int_equal(nu_cfg_load(g_path, profile_table, &d, &opts, &err), -1);
    snprintf(want, sizeof(want), "profile %s:2: syntax error: run 'nubo login'", g_path);
    assert_string_equal(err.msg, want);
}

/* A wrong default is a table bug and is reported as one. */
static void test_bad_default(void **state)
{
    (void)state;
    struct demo d = {0};
    struct nubo_err err = {0};
    const struct nu_cfg_key bad[] = {NU_CFG_I(struct demo, "main", "count", count, 1, 10, "0"),
                                     {0}};
    assert_int_equal(nu_cfg_defaults(bad, &d, &err), -1);
    assert_string_equal(err.msg, "default of [main] count: 0 is out of range 1..10");
}

/* The controller's table: its defaults apply (the agent's, the ingress's and the CLI's are
 * applied by their own unit tests) and a file overrides them. */
static void test_controller_table(void **state)
{
    (void)state;
    struct ctl_config c;
    ctl_config_defaults(&c);
    assert_string_equal(c.listen, "127.0.0.1:7060");
    assert_string_equal(c.admin_user, "admin");
    assert_int_equal(c.pool_net, 0x0a400000);
    assert_int_equal(c.pool_prefix, 16);
    assert_int_equal(c.log_tail_bytes, 64 * 1024);
    assert_int_equal(c.max_body_bytes, NUBO_API_MAX_BODY);
    assert_string_equal(c.services_domain, "nubo.local");
    write_file("[agent]\nsubnet_pool = 10.80.0.0/12\n[controller]\nsync = full\n");
    struct nubo_err err = {0};
    assert_int_equal(ctl_config_load_ini(&c, g_path, &err), 0);
    assert_int_equal(c.pool_net, 0x0a500000);
    assert_int_equal(c.pool_prefix, 12);
    assert_true(c.sync_full);
    write_file("[agent]\nsubnet_pool = 10.80.0.0/28\n");
    assert_int_equal(ctl_config_load_ini(&c, g_path, &err), -1);
    assert_non_null(strstr(err.msg, ":2: [agent] subnet_pool: '10.80.0.0/28' is not"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_values), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_selected_section),    cmocka_unit_test(test_bad_default),
        cmocka_unit_test(test_controller_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
