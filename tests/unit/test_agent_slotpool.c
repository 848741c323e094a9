/* Unit tests of the warm-slot pool's bookkeeping (agent/slotpool.c): [slots] shapes parsing and
 * config, which shape an instance fits, counting and picking slots, the memory the pool holds
 * off the node's capacity, a slot's derived tap and MAC, and a guest chain naming a slot's MAC
 * (firewall.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent_core.h"

static void test_shapes_parse(void **state)
{
    (void)state;
    struct agent_slot_shape sh[4];
    size_t n = 99;
    struct nubo_err err = {0};
    assert_int_equal(agent_slot_shapes_parse("16x1, 128x2,256x4", sh, 4, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(sh[0].memory_mb, 16);
    assert_int_equal(sh[0].vcpus, 1);
    assert_int_equal(sh[1].memory_mb, 128);
    assert_int_equal(sh[1].vcpus, 2);
    assert_int_equal(sh[2].vcpus, 4);
    assert_int_equal(agent_slot_shapes_parse("", sh, 4, &n, &err), 0);
    assert_int_equal(n, 0);
    static const char *const bad[] = {"16", "16x", "x1", "16x0", "0x1", "16y1", "16x1x2",
                                      "-16x1", "16x1, 16x1", "1x1,2x1,3x1,4x1,5x1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nubo_err e = {0};
        struct agent_slot_shape junk[4];
        assert_int_equal(agent_slot_shapes_parse(bad[i], junk, 4, &n, &e), -1);
        assert_true(e.msg[0] != '\0');
    }
    char name[32];
    agent_slot_shape_name(&sh[0], name);
    assert_string_equal(name, "16x1");
}

static void test_config(void **state)
{
    (void)state;
    struct agent_config c;
    agent_config_defaults(&c);
    assert_int_equal(c.slot_pool_size, 0); /* off unless the node asks */
    assert_int_equal(c.n_slot_shapes, 2);
    assert_int_equal(agent_slots_reserved_mb(&c), 0);
    char path[] = "/tmp/nubo-slotpool-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char ini[] = "[slots]\nsize = 3\nshapes = 16x1, 64x2\n";
    assert_int_equal(write(fd, ini, sizeof(ini) - 1), (ssize_t)(sizeof(ini) - 1));
    close(fd);
    struct nubo_err err = {0};
    assert_int_equal(agent_config_load(&c, path, &err), 0);
    assert_int_equal(c.slot_pool_size, 3);
    assert_int_equal(c.n_slot_shapes, 2);
    assert_int_equal(agent_slots_reserved_mb(&c), 3 * (16 + 64));
    assert_int_equal(agent_slot_shape_find(&c, 64, 2), 1);
    assert_int_equal(agent_slot_shape_find(&c, 64, 1), -1);
    assert_int_equal(agent_slot_shape_find(&c, 17, 1), -1);
    FILE *f = fopen(path, "w");
    fputs("[slots]\nshapes = 16x1,, nonsense\n", f);
    fclose(f);
    agent_config_defaults(&c);
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    f = fopen(path, "w");
    fputs("[slots]\nsize = 65\n", f);
    fclose(f);
    agent_config_defaults(&c);
    assert_int_equal(agent_config_load(&c, path, &err), -1);
    unlink(path);
}

static struct agent_slot *mk(struct agent_slot_list *l, const char *name, size_t shape,
                             enum agent_slot_state st)
{
    struct agent_slot *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->shape = shape;
    s->state = st;
    LIST_INSERT_HEAD(l, s, link); /* as slotpool.c does: newest first */
    return s;
}

static void test_count_pick(void **state)
{
    (void)state;
    struct agent_slot_list l;
    LIST_INIT(&l);
    assert_null(agent_slot_pick(&l, 0));
    assert_int_equal(agent_slot_count(&l, 0, false), 0);
    struct agent_slot *a = mk(&l, "a", 0, AGENT_SLOT_WARM);
    struct agent_slot *b = mk(&l, "b", 0, AGENT_SLOT_LAUNCHING);
    struct agent_slot *c = mk(&l, "c", 1, AGENT_SLOT_WARM);
    struct agent_slot *d = mk(&l, "d", 0, AGENT_SLOT_WARM);
    assert_int_equal(agent_slot_count(&l, 0, false), 3); /* launching ones count to the size */
    assert_int_equal(agent_slot_count(&l, 0, true), 2);
    assert_int_equal(agent_slot_count(&l, 1, false), 1);
    assert_int_equal(agent_slot_count(&l, 2, false), 0);
    /* the oldest warm slot of the shape; never a launching one, never another shape */
    assert_ptr_equal(agent_slot_pick(&l, 0), a);
    LIST_REMOVE(a, link);
    assert_ptr_equal(agent_slot_pick(&l, 0), d);
    LIST_REMOVE(d, link);
    assert_null(agent_slot_pick(&l, 0));
    assert_ptr_equal(agent_slot_pick(&l, 1), c);
    b->state = AGENT_SLOT_WARM;
    assert_ptr_equal(agent_slot_pick(&l, 0), b);
    LIST_REMOVE(b, link);
    LIST_REMOVE(c, link);
    free(a);
    free(b);
    free(c);
    free(d);
}

static void test_net_names(void **state)
{
    (void)state;
    const char *n1 = "4d2b6597-29ea-406b-8ab8-8090e19c6f12";
    const char *n2 = "7572fceb-4ce0-4cd2-9399-f25d10b79c7c";
    char tap[AGENT_TAP_MAX], mac[AGENT_MAC_STR_MAX], tap2[AGENT_TAP_MAX], mac2[AGENT_MAC_STR_MAX];
    agent_slot_net_names(n1, tap, mac);
    char want[AGENT_TAP_MAX];
    agent_net_tap_name(n1, want);
    assert_string_equal(tap, want); /* the same rule as an instance's: "nt" + hash */
    assert_int_equal(strlen(mac), 17);
    assert_memory_equal(mac, "02:6f:", 6); /* apart from the IP-derived 02:6e: MACs */
    agent_slot_net_names(n1, tap2, mac2); /* stable: a re-adopting agent derives it again */
    assert_string_equal(mac, mac2);
    agent_slot_net_names(n2, tap2, mac2);
    assert_string_not_equal(tap, tap2);
    assert_string_not_equal(mac, mac2);
    /* the guest's chain names the slot's MAC, not one derived from its IP */
    struct agent_fw_guest g = {0};
    snprintf(g.tap, sizeof(g.tap), "%s", tap);
    snprintf(g.ip, sizeof(g.ip), "10.77.0.10");
    snprintf(g.mac, sizeof(g.mac), "%s", mac);
    char *text = agent_fw_guest_add(&g);
    assert_non_null(text);
    char rule[64];
    snprintf(rule, sizeof(rule), "ether saddr != %s", mac);
    assert_non_null(strstr(text, rule));
    assert_null(strstr(text, "02:6e:0a:4d:00:0a"));
    free(text);
    /* a MAC that is not one goes into no rule */
    snprintf(g.mac, sizeof(g.mac), "02:6f:xx;drop;");
    assert_null(agent_fw_guest_add(&g));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_parse),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_count_pick),
        cmocka_unit_test(test_net_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
