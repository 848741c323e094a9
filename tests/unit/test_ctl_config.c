/* Unit tests for controller/config.c: secrets come from files named by path (the ini ships
 * 0644); the old inline keys still work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/nubo-ctlcfg-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *write_in(const char *name, const char *text, int mode)
{
    static char path[4][128];
    static int k;
    k = (k + 1) % 4;
    snprintf(path[k], sizeof(path[k]), "%s/%s", dir, name);
    FILE *f = fopen(path[k], "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path[k], mode);
    return path[k];
}

static void test_secret_files(void **state)
{
    (void)state;
    const char *secret = write_in("notify", "s3cret-notify\n", 0600);
    const char *pw = write_in("pw", "hunter2", 0600);
    char ini[512];
    snprintf(ini, sizeof(ini), "[registry]\nnotification_secret_file = %s\npassword_file = %s\n",
             secret, pw);
    struct ctl_config c;
    ctl_config_defaults(&c);
    struct nubo_err err = {0};
    if (ctl_config_load_ini(&c, write_in("a.ini", ini, 0644), &err) < 0)
        fail_msg("%s", err.msg);
    assert_string_equal(c.registry_secret, "s3cret-notify"); /* first line, no newline */
    assert_string_equal(c.registry.password, "hunter2");

    /* a missing or empty file is a one-line error naming the key */
    snprintf(ini, sizeof(ini), "[registry]\nnotification_secret_file = %s/nope\n", dir);
    ctl_config_defaults(&c);
    assert_int_equal(ctl_config_load_ini(&c, write_in("b.ini", ini, 0644), &err), -1);
    if (!strstr(err.msg, "notification_secret_file") || strchr(err.msg, '\n'))
        fail_msg("%s", err.msg);
    snprintf(ini, sizeof(ini), "[registry]\npassword_file = %s\n", write_in("empty", "\n", 0600));
    ctl_config_defaults(&c);
    assert_int_equal(ctl_config_load_ini(&c, write_in("c.ini", ini, 0644), &err), -1);
    assert_non_null(strstr(err.msg, "is empty"));

    /* the inline key still works (with a warning in the log) */
    ctl_config_defaults(&c);
    err = (struct nubo_err){0};
    assert_int_equal(
        ctl_config_load_ini(&c, write_in("d.ini", "[registry]\nnotification_secret = x1\n", 0644),
                            &err),
        0);
    assert_string_equal(c.registry_secret, "x1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
