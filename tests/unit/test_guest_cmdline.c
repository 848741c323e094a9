/* Unit tests for the guests' command-line parser (guest/lib/cmdline.c), compiled for the host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "../../guest/lib/cmdline.c"

static struct guest_cmdline c;

static void test_full_line(void **state)
{
	(void)state;
	guest_cmdline_parse(&c, "console=ttyS0 quiet panic=-1 tsc_early_khz=2000000 "
				"netdev.ip=10.1.2.3/24:10.1.2.1:8.8.8.8 "
				"env.vars=[ \"K=V\" \"A=b c\" ] -- /usr/bin/python3 \"/src/my app.py\" x");
	assert_true(c.net.present);
	assert_int_equal(c.net.ip, 0x0a010203);
	assert_int_equal(c.net.prefix, 24);
	assert_int_equal(c.net.gateway, 0x0a010201);
	assert_int_equal(c.net.dns, 0x08080808);
	assert_int_equal(c.nenv, 2);
	assert_string_equal(c.env[0], "K=V");
	assert_string_equal(c.env[1], "A=b c");
	assert_int_equal(c.argc, 3);
	assert_string_equal(c.argv[0], "/usr/bin/python3");
	assert_string_equal(c.argv[1], "/src/my app.py");
	assert_string_equal(c.argv[2], "x");
	assert_false(c.truncated);
}

static void test_compact_env_and_no_args(void **state)
{
	(void)state;
	guest_cmdline_parse(&c, "env.vars=[\"X=1\" Y=2] console=ttyS0");
	assert_int_equal(c.nenv, 2);
	assert_string_equal(c.env[0], "X=1");
	assert_string_equal(c.env[1], "Y=2");
	assert_int_equal(c.argc, 0);
	assert_false(c.net.present);
}

static void test_comma_env_list(void **state)
{
	(void)state;
	/* One kernel token: Linux does not count its entries as init environment. */
	guest_cmdline_parse(&c, "env.vars=[\"A=1\",\"B=x y\",\"C=a,b\"] -- run");
	assert_int_equal(c.nenv, 3);
	assert_string_equal(c.env[0], "A=1");
	assert_string_equal(c.env[1], "B=x y");
	assert_string_equal(c.env[2], "C=a,b");
	assert_int_equal(c.argc, 1);
	assert_string_equal(c.argv[0], "run");
}

static void test_fstab(void **state)
{
	(void)state;
	/* the agent's volumes: serial:at:fs:mode, a mount point may hold spaces */
	guest_cmdline_parse(&c, "vfs.fstab=[\"0123456789abcdef0123:/data:ext4:rw\","
				"\"fedcba98765432100123:/my files:ext4:ro\"] env.vars=[\"A=1\"] -- run");
	assert_int_equal(c.nfstab, 2);
	assert_string_equal(c.fstab[0], "0123456789abcdef0123:/data:ext4:rw");
	assert_string_equal(c.fstab[1], "fedcba98765432100123:/my files:ext4:ro");
	assert_int_equal(c.nenv, 1);
	assert_int_equal(c.argc, 1);
	/* after --, it is the app's argument, not a mount */
	guest_cmdline_parse(&c, "-- vfs.fstab=[\"x:/y:ext4\"]");
	assert_int_equal(c.nfstab, 0);
	assert_int_equal(c.argc, 1);
}

static void test_escapes_and_dashes(void **state)
{
	(void)state;
	guest_cmdline_parse(&c, "-- --exit 3 \"say \\\"hi\\\"\" --");
	assert_int_equal(c.argc, 4);
	assert_string_equal(c.argv[0], "--exit");
	assert_string_equal(c.argv[2], "say \"hi\"");
	assert_string_equal(c.argv[3], "--");
}

static void test_bad_netdev(void **state)
{
	(void)state;
	const char *bad[] = {"netdev.ip=10.0.0.300/24", "netdev.ip=10.0.0.1/33", "netdev.ip=abc",
			     "netdev.ip=10.0.0.1/24:1.2.3", "netdev.ip=1.2.3.4x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		guest_cmdline_parse(&c, bad[i]);
		assert_false(c.net.present);
		assert_true(c.bad_netdev);
	}
	guest_cmdline_parse(&c, "netdev.ip=10.0.0.2/16::");
	assert_true(c.net.present);
	assert_int_equal(c.net.prefix, 16);
	assert_int_equal(c.net.gateway, 0);
}

static void test_bounds(void **state)
{
	(void)state;
	/* Far longer than GUEST_CMDLINE_MAX and more args than GUEST_MAX_ARGS: flagged, no overflow. */
	size_t n = 3 * GUEST_CMDLINE_MAX;
	char *line = malloc(n + 1);
	assert_non_null(line);
	memcpy(line, "-- ", 3);
	for (size_t i = 3; i < n; i++)
		line[i] = (i % 2) ? 'a' : ' ';
	line[n] = '\0';
	guest_cmdline_parse(&c, line);
	assert_true(c.truncated);
	assert_int_equal(c.argc, GUEST_MAX_ARGS);
	/* Unterminated quotes and lists end at the end of the line. */
	guest_cmdline_parse(&c, "env.vars=[ \"A=1");
	assert_int_equal(c.nenv, 1);
	assert_string_equal(c.env[0], "A=1");
	free(line);
	line = calloc(1, GUEST_CMDLINE_MAX + 16);
	assert_non_null(line);
	memcpy(line, "-- ", 3);
	memset(line + 3, 'b', GUEST_CMDLINE_MAX + 8);
	guest_cmdline_parse(&c, line);
	assert_true(c.truncated);
	assert_int_equal(c.argc, 0);
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_line),
		cmocka_unit_test(test_compact_env_and_no_args),
		cmocka_unit_test(test_comma_env_list),
		cmocka_unit_test(test_fstab),
		cmocka_unit_test(test_escapes_and_dashes),
		cmocka_unit_test(test_bad_netdev),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
