/* Guest network isolation: the nftables ruleset a node's guests live under (agent/README.md,
 * "The rules a guest lives under"), generated as text and applied through libnftables in the
 * bridge's network namespace. One transaction per change, so a guest is never half-filtered. */
#include "agent_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

#define FW_TABLE "nubo_agent"
/* Every tap the agent makes is "nt" + 12 hex (agent_net_tap_name): a port with that prefix
 * but no chain of its own is one whose rules are missing, and passes nothing. */
#define FW_TAP_GLOB "nt*"

const char *agent_egress_name(enum agent_egress e)
{
    return e == AGENT_EGRESS_NAT ? "nat" : "none";
}

void agent_net_guest_mac(const char *ip, char out[AGENT_MAC_STR_MAX])
{
    /* Locally administered unicast 02:6e ("n") + the four bytes of the private IP: unique on
     * the bridge because the IPs are, and the same every time the instance starts, so the
     * rules can be written before libvirt creates the NIC. */
    struct in_addr a = {0};
    inet_pton(AF_INET, ip, &a);
    const unsigned char *b = (const unsigned char *)&a.s_addr;
    snprintf(out, AGENT_MAC_STR_MAX, "02:6e:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]);
}

/* Names and addresses are checked before they enter rule text: nothing from outside the
 * agent can add a rule of its own. */
static bool fw_ifname_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= AGENT_TAP_MAX)
        return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

static bool fw_tap_ok(const char *s)
{
    if (strlen(s) != 14 || strncmp(s, "nt", 2) != 0)
        return false;
    for (const char *p = s + 2; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* a.b.c.d/n with n in 1..32 (nubo_cidr_valid is for node subnets, /8../30) */
static bool fw_cidr_ok(const char *s)
{
    char ip[NUBO_IP_STR_MAX];
    int prefix;
    return agent_prefix_parse(s, ip, sizeof(ip), &prefix) == 0 && nubo_ipv4_valid(ip);
}

int agent_fw_cidrs_parse(const char *list, char out[][NUBO_CIDR_STR_MAX], size_t max, size_t *n_out,
                         struct nubo_err *err)
{
    size_t n = 0;
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        if (!*p)
            break;
        size_t len = strcspn(p, " ,");
        if (n == max)
            return nubo_error(err, 0, "more than %zu addresses", max);
        if (len >= NUBO_CIDR_STR_MAX)
            return nubo_error(err, 0, "'%.*s' is not a.b.c.d/n", (int)len, p);
        memcpy(out[n], p, len);
        out[n][len] = '\0';
        if (!strchr(out[n], '/') && nubo_ipv4_valid(out[n]))
            strcat(out[n], "/32");
        else if (!fw_cidr_ok(out[n]))
            return nubo_error(err, 0, "'%s' is not a.b.c.d/n", out[n]);
        n++;
        p += len;
    }
    *n_out = n;
    return 0;
}

/* "" or xx:xx:xx:xx:xx:xx in lower-case hex: it goes into rule text. */
static bool fw_mac_ok(const char *m)
{
    if (!m[0])
        return true;
    if (strlen(m) != 17)
        return false;
    for (int i = 0; i < 17; i++)
        if (i % 3 == 2 ? m[i] != ':' : !strchr("0123456789abcdef", m[i]) || !m[i])
            return false;
    return true;
}

static bool fw_guest_ok(const struct agent_fw_guest *g)
{
    return fw_tap_ok(g->tap) && nubo_ipv4_valid(g->ip) && fw_mac_ok(g->mac);
}

/* Rule text is written to a memory stream: no length to get wrong. */
static FILE *fw_text_begin(char **text, size_t *len)
{
    return open_memstream(text, len);
}

static char *fw_text_end(FILE *f, char **text)
{
    /* the stream's buffer pointer is only final after fclose */
    if (fclose(f) != 0) {
        free(*text);
        return NULL;
    }
    return *text;
}

static void fw_guest_chain(FILE *f, const struct agent_fw_guest *g)
{
    char mac[AGENT_MAC_STR_MAX];
    if (g->mac[0])
        snprintf(mac, sizeof(mac), "%s", g->mac);
    else
        agent_net_guest_mac(g->ip, mac);
    fprintf(f,
            "\tchain guest_%s {\n"
            "\t\tether saddr != %s counter drop comment \"source MAC is not the guest's\"\n"
            "\t\tether type arp arp htype 1 arp ptype ip arp hlen 6 arp plen 4"
            " arp saddr ether %s arp saddr ip %s accept\n"
            "\t\tether type arp counter drop comment \"ARP for an address not the guest's\"\n"
            "\t\tether type ip ip saddr %s accept\n"
            "\t\tcounter drop comment \"source IP is not the guest's, or not IPv4/ARP\"\n"
            "\t}\n",
            g->tap, mac, mac, g->ip, g->ip);
}

char *agent_fw_ruleset(const struct agent_fw_node *node, const struct agent_fw_guest *guests,
                       size_t n_guests)
{
    if (!fw_ifname_ok(node->bridge) || !nubo_ipv4_valid(node->gateway) ||
        !nubo_cidr_valid(node->subnet))
        return NULL;
    for (size_t i = 0; i < node->n_ingress_from; i++)
        if (!fw_cidr_ok(node->ingress_from[i]))
            return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fw_text_begin(&text, &len);
    if (!f)
        return NULL;
    const char *br = node->bridge;
    /* "add, delete, define" in one transaction: the whole ruleset is replaced atomically, so
     * re-applying it (agent restart, libvirt reconnect) never duplicates a rule. */
    fprintf(f, "add table bridge " FW_TABLE "\n"
               "delete table bridge " FW_TABLE "\n"
               "add table inet " FW_TABLE "\n"
               "delete table inet " FW_TABLE "\n");
    /* Layer 2, every frame a guest sends: through its own chain or nowhere. */
    fprintf(f,
            "table bridge " FW_TABLE " {\n"
            "\tmap guests {\n\t\ttype ifname : verdict\n\t}\n"
            "\tchain ports {\n"
            "\t\ttype filter hook prerouting priority filter; policy accept;\n"
            "\t\tiifname vmap @guests\n"
            "\t\tiifname \"" FW_TAP_GLOB "\" counter drop comment \"a guest port without rules\"\n"
            "\t}\n"
            "\tchain bridged {\n"
            "\t\ttype filter hook forward priority filter; policy accept;\n"
            "\t\tiifname \"" FW_TAP_GLOB "\" counter drop comment \"no guest-to-guest frames\"\n"
            "\t\toifname \"" FW_TAP_GLOB "\" counter drop comment \"no frames into a guest from "
            "another port\"\n"
            "\t}\n");
    for (size_t i = 0; i < n_guests; i++)
        if (fw_guest_ok(&guests[i]))
            fw_guest_chain(f, &guests[i]);
    fprintf(f, "}\n");
    for (size_t i = 0; i < n_guests; i++)
        if (fw_guest_ok(&guests[i]))
            fprintf(f, "add element bridge " FW_TABLE " guests { \"%s\" : jump guest_%s }\n",
                    guests[i].tap, guests[i].tap);
    /* Layer 3, what the host lets through from and to the bridge. */
    fprintf(f,
            "table inet " FW_TABLE " {\n"
            "\tchain input {\n"
            "\t\ttype filter hook input priority filter; policy accept;\n"
            "\t\tiifname \"%s\" ct state established,related accept\n",
            br);
    if (node->egress == AGENT_EGRESS_NAT)
        /* The resolver guests are told to use (netdev.ip's dns) is the gateway. */
        fprintf(f, "\t\tiifname \"%s\" ip daddr %s meta l4proto { tcp, udp } th dport 53 accept\n",
                br, node->gateway);
    fprintf(f,
            "\t\tiifname \"%s\" counter drop comment \"guests reach no host service\"\n"
            "\t}\n"
            "\tchain forward {\n"
            "\t\ttype filter hook forward priority filter; policy accept;\n"
            "\t\tiifname \"%s\" oifname \"%s\" counter drop comment \"no guest-to-guest through "
            "the gateway\"\n"
            "\t\toifname \"%s\" ct state established,related accept\n",
            br, br, br, br);
    if (node->n_ingress_from > 0) {
        fprintf(f, "\t\toifname \"%s\" ip daddr %s ip saddr { ", br, node->subnet);
        for (size_t i = 0; i < node->n_ingress_from; i++)
            fprintf(f, "%s%s", i ? ", " : "", node->ingress_from[i]);
        fprintf(f, " } accept comment \"the ingress\"\n");
    }
    fprintf(f,
            "\t\toifname \"%s\" counter drop comment \"nobody else opens connections to guests\"\n"
            "\t\tiifname \"%s\" ct state established,related accept\n",
            br, br);
    if (node->egress == AGENT_EGRESS_NAT)
        fprintf(f, "\t\tiifname \"%s\" accept comment \"egress = nat\"\n", br);
    fprintf(f,
            "\t\tiifname \"%s\" counter drop comment \"egress = none\"\n"
            "\t}\n",
            br);
    if (node->egress == AGENT_EGRESS_NAT)
        fprintf(f,
                "\tchain postrouting {\n"
                "\t\ttype nat hook postrouting priority srcnat; policy accept;\n"
                "\t\tip saddr %s oifname != \"%s\" masquerade\n"
                "\t}\n",
                node->subnet, br);
    fprintf(f, "}\n");
    return fw_text_end(f, &text);
}

char *agent_fw_guest_add(const struct agent_fw_guest *g)
{
    if (!fw_guest_ok(g))
        return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f = fw_text_begin(&text, &len);
    if (!f)
        return NULL;
    /* add + flush + define: re-adding a guest (a restart with the same tap) replaces its
     * chain instead of appending to it. */
    fprintf(f,
            "add chain bridge " FW_TABLE " guest_%s\n"
            "flush chain bridge " FW_TABLE " guest_%s\n"
            "table bridge " FW_TABLE " {\n",
            g->tap, g->tap);
    fw_guest_chain(f, g);
    fprintf(f, "}\nadd element bridge " FW_TABLE " guests { \"%s\" : jump guest_%s }\n", g->tap,
            g->tap);
    return fw_text_end(f, &text);
}

char *agent_fw_guest_del(const char *tap)
{
    if (!fw_tap_ok(tap))
        return NULL;
    char *text = NULL;
    /* nft 1.0.6 has no "destroy": add what may be missing (down to the table: a tap may go
     * before the node ruleset was ever installed), then delete it, so removing a guest that
     * has no rules is not an error. */
    if (asprintf(&text,
                 "add table bridge " FW_TABLE "\n"
                 "add map bridge " FW_TABLE " guests { type ifname : verdict; }\n"
                 "add chain bridge " FW_TABLE " guest_%s\n"
                 "add element bridge " FW_TABLE " guests { \"%s\" : jump guest_%s }\n"
                 "delete element bridge " FW_TABLE " guests { \"%s\" }\n"
                 "flush chain bridge " FW_TABLE " guest_%s\n"
                 "delete chain bridge " FW_TABLE " guest_%s\n",
                 tap, tap, tap, tap, tap, tap) < 0)
        return NULL;
    return text;
}

/* libnftables keeps process-wide state (its parser and symbol tables are initialised per
 * process) and is not documented as thread-safe: agent threads take turns. */
static pthread_mutex_t fw_mu = PTHREAD_MUTEX_INITIALIZER;

static int fw_run(const char *text, struct nubo_err *err)
{
    struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft)
        return nubo_error(err, ENOMEM, "cannot create an nftables context");
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    int rc = nft_run_cmd_from_buffer(nft, text);
    if (rc != 0) {
        const char *e = nft_ctx_get_error_buffer(nft);
        char line[256];
        snprintf(line, sizeof(line), "%s", e && *e ? e : "unknown error");
        line[strcspn(line, "\n")] = '\0';
        log_debug("nftables refused:\n%s\n%s", text, e ? e : "");
        nft_ctx_free(nft);
        return nubo_error(err, 0, "nftables: %s", line);
    }
    nft_ctx_free(nft);
    return 0;
}

/* Flat combining: a burst of starts asks for dozens of guest chains at once, and every nftables
 * run costs a context and a fetch of the whole ruleset (measured: 50 guests one after another
 * held fw_mu for 160 s at load 50, and the main thread's tap removal waited behind them). A
 * caller queues its text; whoever holds fw_mu applies every queued text of the same namespace
 * in one transaction (each on its own again should that one fail, so one bad text fails only
 * its caller) and marks them done; the others find theirs done when they get fw_mu. */
struct fw_req {
    const char *ns, *text;
    int rc;
    bool done;
    bool detached; /* agent_fw_apply_async's: owns ns and text, freed once applied */
    struct nubo_err err;
    struct fw_req *next;
};
static pthread_mutex_t fw_q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fw_req *fw_q; /* newest first */

static int fw_run_in(const char *netns_path, const char *text, struct nubo_err *err)
{
    cleanup_close int orig = -1;
    if (netns_path && netns_path[0]) {
        /* The netlink socket is opened in the calling thread's namespace: enter the bridge's
         * for the call only. setns() moves this thread alone. */
        orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        cleanup_close int target = open(netns_path, O_RDONLY | O_CLOEXEC);
        if (orig < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0)
            return nubo_error(err, errno, "cannot enter network namespace %s", netns_path);
    }
    int rc = fw_run(text, err);
    if (orig >= 0 && setns(orig, CLONE_NEWNET) < 0) {
        log_warn("cannot return to the agent's network namespace");
        abort();
    }
    return rc;
}

/* With fw_mu held: take the queued requests for NS (oldest first) and apply them. */
static void fw_combine(const char *ns)
{
    struct fw_req *mine = NULL, **keep = &fw_q;
    pthread_mutex_lock(&fw_q_mu);
    for (struct fw_req *r = fw_q, *next; r; r = next) {
        next = r->next;
        if (strcmp(r->ns, ns) == 0) {
            *keep = next;
            r->next = mine; /* reversed: oldest first */
            mine = r;
        } else
            keep = &r->next;
    }
    pthread_mutex_unlock(&fw_q_mu);
    size_t len = 0, n = 0;
    for (struct fw_req *r = mine; r; r = r->next, n++)
        len += strlen(r->text) + 1;
    char *all = n > 1 ? malloc(len + 1) : NULL;
    int rc = -1;
    if (all) {
        size_t off = 0;
        for (struct fw_req *r = mine; r; r = r->next) {
            size_t l = strlen(r->text);
            memcpy(all + off, r->text, l);
            all[off + l] = '\n';
            off += l + 1;
        }
        all[off] = '\0';
        struct nubo_err e = {0};
        rc = fw_run_in(ns, all, &e);
        free(all);
    }
    for (struct fw_req *r = mine, *next; r; r = next) {
        next = r->next;
        r->rc = rc == 0 ? 0 : fw_run_in(ns, r->text, &r->err);
        r->done = true;
        if (r->detached) {
            if (r->rc < 0)
                log_warnx("%s", r->err.msg);
            free((char *)r->ns);
            free((char *)r->text);
            free(r);
        }
    }
}

static void *fw_flush(void *arg)
{
    char *ns = arg;
    pthread_mutex_lock(&fw_mu);
    fw_combine(ns);
    pthread_mutex_unlock(&fw_mu);
    free(ns);
    return NULL;
}

void agent_fw_apply_async(const char *netns_path, char *text)
{
    if (!text)
        return; /* nothing valid to apply (a bad name never got rules either) */
    struct fw_req *r = calloc(1, sizeof(*r));
    char *ns = r ? strdup(netns_path ? netns_path : "") : NULL;
    char *flush_ns = ns ? strdup(ns) : NULL;
    if (!flush_ns) {
        free(ns);
        free(r);
        free(text);
        log_warnx("cannot queue a guest rule change: out of memory");
        return;
    }
    r->ns = ns;
    r->text = text;
    r->detached = true;
    pthread_mutex_lock(&fw_q_mu);
    r->next = fw_q;
    fw_q = r;
    pthread_mutex_unlock(&fw_q_mu);
    /* Whoever holds fw_mu next applies it; this thread makes sure someone does. */
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, fw_flush, flush_ns) != 0) {
        pthread_attr_destroy(&at);
        fw_flush(flush_ns); /* no thread: apply it here rather than never */
        return;
    }
    pthread_attr_destroy(&at);
}

int agent_fw_apply(const char *netns_path, const char *text, struct nubo_err *err)
{
    if (!text)
        return nubo_error(err, EINVAL, "cannot build the guest ruleset (bad name or address)");
    struct fw_req req = {.ns = netns_path ? netns_path : "", .text = text};
    pthread_mutex_lock(&fw_q_mu);
    req.next = fw_q;
    fw_q = &req;
    pthread_mutex_unlock(&fw_q_mu);
    pthread_mutex_lock(&fw_mu);
    if (!req.done)
        fw_combine(req.ns);
    pthread_mutex_unlock(&fw_mu);
    if (req.rc < 0) {
        if (err)
            *err = req.err;
        return -1;
    }
    return 0;
}

int agent_fw_sync(struct agent *ag, struct nubo_err *err)
{
    size_t n = 0, cap = 0;
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    cap++;
    cleanup_free struct agent_fw_guest *g = calloc(cap ? cap : 1, sizeof(*g));
    if (!g)
        return nubo_error(err, ENOMEM, "cannot build the guest ruleset");
    /* Every guest that has (or is about to have) a tap on the bridge; a rule for a tap that
     * is gone matches nothing and goes with its instance. */
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (!in->a.private_ip[0] || !(in->domain || in->op == AGENT_OP_CREATE))
            continue;
        snprintf(g[n].tap, sizeof(g[n].tap), "%s", in->tap);
        snprintf(g[n].ip, sizeof(g[n].ip), "%s", in->a.private_ip);
        snprintf(g[n].mac, sizeof(g[n].mac), "%s", in->mac);
        n++;
    }
    struct agent_fw_node node = {
        .bridge = ag->cfg.bridge,
        .gateway = ag->node.gateway,
        .subnet = ag->node.subnet,
        .egress = ag->cfg.egress,
        .ingress_from = (const char(*)[NUBO_CIDR_STR_MAX])ag->cfg.ingress_from,
        .n_ingress_from = ag->cfg.n_ingress_from,
    };
    cleanup_free char *text = agent_fw_ruleset(&node, g, n);
    char ns[AGENT_PATH_MAX];
    agent_net_bridge_ns_path(&ag->cfg, ns, sizeof(ns));
    if (agent_fw_apply(ns, text, err) < 0)
        return nubo_error_wrap(err, "cannot install the guest isolation rules");
    log_debug("guest isolation rules: %zu guest(s), egress %s", n,
              agent_egress_name(ag->cfg.egress));
    return 0;
}
