/* Unit tests of the guest isolation ruleset (agent/firewall.c): the text it generates, what it
 * refuses to put into rules, and - in a network namespace of its own when run as root - that
 * the kernel takes it, that re-applying it never duplicates a rule, and that concurrent callers
 * (a burst's takes) are combined without one bad text failing the others. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_core.h"

static const struct agent_fw_guest guests[] = {
    {.tap = "nt0123456789ab", .ip = "10.64.1.2"},
    {.tap = "ntfedcba987654", .ip = "10.64.1.3"},
};

static struct agent_fw_node node_none(void)
{
    return (struct agent_fw_node){
        .bridge = "nubobr0", .gateway = "10.64.1.1", .subnet = "10.64.1.0/24"};
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_mac(void **state)
{
    (void)state;
    char mac[AGENT_MAC_STR_MAX];
    agent_net_guest_mac("10.64.1.2", mac);
    assert_string_equal(mac, "02:6e:0a:40:01:02");
    agent_net_guest_mac("192.168.255.254", mac);
    assert_string_equal(mac, "02:6e:c0:a8:ff:fe");
}

static void test_ruleset_none(void **state)
{
    (void)state;
    struct agent_fw_node n = node_none();
    char *t = agent_fw_ruleset(&n, guests, 2);
    assert_non_null(t);
    /* replaced atomically, never appended to */
    assert_non_null(strstr(t, "add table bridge nubo_agent\ndelete table bridge nubo_agent\n"));
    assert_non_null(strstr(t, "add table inet nubo_agent\ndelete table inet nubo_agent\n"));
    /* per guest: its chain, its vmap entry, its MAC and IP as the only sources */
    assert_non_null(strstr(t, "chain guest_nt0123456789ab {"));
    assert_non_null(strstr(t, "ether saddr != 02:6e:0a:40:01:02 counter drop"));
    assert_non_null(strstr(t, "arp saddr ether 02:6e:0a:40:01:02 arp saddr ip 10.64.1.2 accept"));
    assert_non_null(strstr(t, "ether type ip ip saddr 10.64.1.2 accept"));
    assert_non_null(strstr(t, "ether type ip ip saddr 10.64.1.3 accept"));
    assert_non_null(strstr(t, "guests { \"ntfedcba987654\" : jump guest_ntfedcba987654 }"));
    assert_int_equal(count(t, "chain guest_"), 2);
    /* unknown guest ports and guest-to-guest frames dropped */
    assert_non_null(strstr(t, "iifname \"nt*\" counter drop comment \"a guest port without"));
    assert_non_null(strstr(t, "iifname \"nt*\" counter drop comment \"no guest-to-guest"));
    /* the host: only replies; no forwarding, no NAT, no DNS */
    assert_non_null(strstr(t, "iifname \"nubobr0\" ct state established,related accept\n"
                              "\t\tiifname \"nubobr0\" counter drop"));
    assert_non_null(strstr(t, "iifname \"nubobr0\" oifname \"nubobr0\" counter drop"));
    assert_non_null(strstr(t, "comment \"egress = none\""));
    assert_null(strstr(t, "masquerade"));
    assert_null(strstr(t, "dport 53"));
    assert_null(strstr(t, "the ingress"));
    free(t);
}

static void test_ruleset_nat_ingress(void **state)
{
    (void)state;
    char from[AGENT_INGRESS_FROM_MAX][NUBO_CIDR_STR_MAX];
    size_t n_from = 0;
    struct nubo_err err = {0};
    assert_int_equal(agent_fw_cidrs_parse(" 192.0.2.10, 198.51.100.0/24", from,
                                          AGENT_INGRESS_FROM_MAX, &n_from, &err),
                     0);
    assert_int_equal(n_from, 2);
    assert_string_equal(from[0], "192.0.2.10/32");
    struct agent_fw_node n = node_none();
    n.egress = AGENT_EGRESS_NAT;
    n.ingress_from = (const char(*)[NUBO_CIDR_STR_MAX])from;
    n.n_ingress_from = n_from;
    char *t = agent_fw_ruleset(&n, NULL, 0);
    assert_non_null(t);
    assert_non_null(strstr(t, "ip saddr 10.64.1.0/24 oifname != \"nubobr0\" masquerade"));
    assert_non_null(strstr(t, "iifname \"nubobr0\" accept comment \"egress = nat\""));
    assert_non_null(strstr(t, "ip daddr 10.64.1.1 meta l4proto { tcp, udp } th dport 53 accept"));
    assert_non_null(strstr(t, "oifname \"nubobr0\" ip daddr 10.64.1.0/24 ip saddr { "
                              "192.0.2.10/32, 198.51.100.0/24 } accept"));
    /* still no guest-to-guest through the gateway, whatever the egress */
    assert_non_null(strstr(t, "iifname \"nubobr0\" oifname \"nubobr0\" counter drop"));
    assert_int_equal(count(t, "chain guest_"), 0);
    free(t);
}

static void test_refused(void **state)
{
    (void)state;
    struct agent_fw_node n = node_none();
    n.bridge = "br\" accept";
    assert_null(agent_fw_ruleset(&n, guests, 2));
    n = node_none();
    n.gateway = "10.64.1.1; drop";
    assert_null(agent_fw_ruleset(&n, guests, 2));
    n = node_none();
    n.subnet = "10.64.1.0";
    assert_null(agent_fw_ruleset(&n, guests, 2));
    /* a guest with a bad tap or IP gets no chain (and its port then passes nothing) */
    struct agent_fw_guest bad[] = {{.tap = "eth0", .ip = "10.64.1.9"},
                                   {.tap = "nt0123456789ab", .ip = "10.64.1.2;x"}};
    n = node_none();
    char *t = agent_fw_ruleset(&n, bad, 2);
    assert_non_null(t);
    assert_int_equal(count(t, "chain guest_"), 0);
    free(t);
    assert_null(agent_fw_guest_add(&bad[0]));
    assert_null(agent_fw_guest_add(&bad[1]));
    assert_null(agent_fw_guest_del("nt0123"));
    char from[2][NUBO_CIDR_STR_MAX];
    size_t n_from = 0;
    struct nubo_err err = {0};
    assert_int_equal(agent_fw_cidrs_parse("10.0.0.0/8 x", from, 2, &n_from, &err), -1);
    assert_int_equal(agent_fw_cidrs_parse("1.1.1.1,2.2.2.2,3.3.3.3", from, 2, &n_from, &err), -1);
}

static char *nft_list(const char *cmd)
{
    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    char *out = NULL;
    if (nft_run_cmd_from_buffer(nft, cmd) == 0)
        out = strdup(nft_ctx_get_output_buffer(nft));
    nft_ctx_free(nft);
    return out;
}

#define BURST 8
struct burst_call {
    char *text;
    int rc;
};

static void *burst_apply(void *arg)
{
    struct burst_call *c = arg;
    struct nubo_err err = {0};
    c->rc = agent_fw_apply("", c->text, &err);
    return NULL;
}

/* BURST guests' chains asked for at once, and one text nftables refuses among them. */
static int burst_roundtrip(void)
{
    struct burst_call calls[BURST + 1];
    pthread_t th[BURST + 1];
    for (int i = 0; i < BURST; i++) {
        struct agent_fw_guest g = {0};
        snprintf(g.tap, sizeof(g.tap), "nt00000000%04d", i);
        snprintf(g.ip, sizeof(g.ip), "10.64.2.%d", i + 2);
        calls[i].text = agent_fw_guest_add(&g);
    }
    calls[BURST].text = strdup("add chain bridge nubo_agent guest_bad { this is not nft }\n");
    for (int i = 0; i <= BURST; i++)
        pthread_create(&th[i], NULL, burst_apply, &calls[i]);
    for (int i = 0; i <= BURST; i++) {
        pthread_join(th[i], NULL);
        free(calls[i].text);
    }
    for (int i = 0; i < BURST; i++)
        if (calls[i].rc != 0)
            return 11;
    if (calls[BURST].rc == 0)
        return 12;
    /* a removal queued without waiting goes before what is asked for after it */
    agent_fw_apply_async("", agent_fw_guest_del("nt000000000000"));
    struct agent_fw_guest again = {.tap = "nt000000000001", .ip = "10.64.2.3"};
    char *t = agent_fw_guest_add(&again);
    struct nubo_err err = {0};
    if (agent_fw_apply("", t, &err) < 0)
        return 14;
    free(t);
    char *l = nft_list("list table bridge nubo_agent");
    int rc = !l || count(l, "chain guest_nt00000000") != BURST - 1 ||
                     strstr(l, "guest_nt000000000000") || strstr(l, "guest_bad") ? 13 : 0;
    if (rc)
        fprintf(stderr, "after the burst:\n%s", l ? l : "(none)");
    free(l);
    return rc;
}

/* In a child, in a fresh network namespace: what the agent does over a guest's life. */
static int kernel_roundtrip(void)
{
    if (unshare(CLONE_NEWNET) < 0)
        return errno == EPERM ? 77 : 1;
    struct nubo_err err = {0};
    /* a tap going before the node ruleset was ever installed */
    char *early = agent_fw_guest_del(guests[0].tap);
    if (agent_fw_apply("", early, &err) < 0) {
        fprintf(stderr, "early del: %s\n", err.msg);
        return 10;
    }
    free(early);
    struct agent_fw_node n = node_none();
    char *t = agent_fw_ruleset(&n, guests, 1);
    if (agent_fw_apply("", t, &err) < 0) {
        fprintf(stderr, "ruleset: %s\n%s", err.msg, t);
        return 2;
    }
    /* the agent restarts: the same ruleset again, and the guest's own add again */
    if (agent_fw_apply("", t, &err) < 0)
        return 3;
    free(t);
    char *add = agent_fw_guest_add(&guests[1]);
    if (agent_fw_apply("", add, &err) < 0 || agent_fw_apply("", add, &err) < 0) {
        fprintf(stderr, "guest add: %s\n%s", err.msg, add);
        return 4;
    }
    free(add);
    char *l = nft_list("list table bridge nubo_agent");
    if (!l || count(l, "chain guest_") != 2 || count(l, "ip saddr 10.64.1.3 accept") != 1 ||
        count(l, "ip saddr 10.64.1.2 accept") != 1 || count(l, "jump guest_") != 2) {
        fprintf(stderr, "after adds:\n%s", l ? l : "(none)");
        return 5;
    }
    free(l);
    /* removing twice (the tap goes, then the instance is deleted) is fine */
    char *del = agent_fw_guest_del(guests[1].tap);
    if (agent_fw_apply("", del, &err) < 0 || agent_fw_apply("", del, &err) < 0) {
        fprintf(stderr, "guest del: %s\n", err.msg);
        return 6;
    }
    free(del);
    l = nft_list("list table bridge nubo_agent");
    if (!l || count(l, "chain guest_") != 1 || strstr(l, "10.64.1.3")) {
        fprintf(stderr, "after del:\n%s", l ? l : "(none)");
        return 7;
    }
    free(l);
    n.egress = AGENT_EGRESS_NAT;
    t = agent_fw_ruleset(&n, guests, 2);
    if (agent_fw_apply("", t, &err) < 0) {
        fprintf(stderr, "nat ruleset: %s\n", err.msg);
        return 8;
    }
    free(t);
    l = nft_list("list table inet nubo_agent");
    if (!l || count(l, "masquerade") != 1 || count(l, "chain input") != 1) {
        fprintf(stderr, "inet:\n%s", l ? l : "(none)");
        return 9;
    }
    free(l);
    return burst_roundtrip();
}

static void test_kernel_roundtrip(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(kernel_roundtrip());
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    if (WEXITSTATUS(st) == 77)
        skip();
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mac),
        cmocka_unit_test(test_ruleset_none),
        cmocka_unit_test(test_ruleset_nat_ingress),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_kernel_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
