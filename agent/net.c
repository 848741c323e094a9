/* Guest networking: the node bridge (gateway IP on it) in the bridge's namespace and one tap
 * per instance. Taps are created where libvirtd opens them (managed='no'), then moved into the
 * bridge's namespace and enslaved once qemu holds them, so any libvirtd namespace works. */
#include "agent_core.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

void agent_net_tap_name(const char *uuid, char out[AGENT_TAP_MAX])
{
    /* "nt" + 12 hex of sha256(uuid): fits IFNAMSIZ and stays distinct even for uuids that
     * share a prefix. */
    char hex[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(uuid, strlen(uuid), hex);
    snprintf(out, AGENT_TAP_MAX, "nt%.12s", hex);
}

int agent_net_bridge_setup(const struct agent_config *c, const char *gateway, int prefix,
                           struct nubo_err *err)
{
    char ns[AGENT_PATH_MAX];
    agent_net_bridge_ns_path(c, ns, sizeof(ns));
    char addr[32];
    snprintf(addr, sizeof(addr), "%s/%d", gateway, prefix);
    char br[AGENT_TAP_MAX];
    snprintf(br, sizeof(br), "%s", c->bridge);
    /* "ip link show" tells whether it exists; creation is the only step that may fail twice. */
    char *show[] = {"ip", "link", "show", "dev", br, NULL};
    if (agent_run(ns, show, NULL) < 0) {
        char *add[] = {"ip", "link", "add", "name", br, "type", "bridge", NULL};
        if (agent_run(ns, add, err) < 0)
            return nubo_error_wrap(err, "cannot create bridge %s", br);
    }
    /* replace: idempotent, so a restarted agent does not disturb running guests */
    char *aadd[] = {"ip", "addr", "replace", addr, "dev", br, NULL};
    char *up[] = {"ip", "link", "set", "dev", br, "up", NULL};
    if (agent_run(ns, aadd, err) < 0 || agent_run(ns, up, err) < 0)
        return nubo_error_wrap(err, "cannot configure bridge %s with %s", br, addr);
    return 0;
}

/* Create (or take over a leftover of) a persistent tap where libvirtd will open it. Done with
 * two ioctls on this thread rather than ip(8): this is on the boot-time path. setns() only
 * moves the calling (worker) thread, and it is moved back. */
int agent_net_tap_create(const struct agent_config *c, const char *tap, struct nubo_err *err)
{
    cleanup_close int orig = -1;
    if (c->libvirt_netns[0]) {
        orig = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        cleanup_close int target = open(c->libvirt_netns, O_RDONLY | O_CLOEXEC);
        if (orig < 0 || target < 0 || setns(target, CLONE_NEWNET) < 0)
            return nubo_error(err, errno, "cannot enter libvirtd's network namespace %s",
                              c->libvirt_netns);
    }
    int rc = 0;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        rc = nubo_error(err, errno, "cannot create tap %s: /dev/net/tun", tap);
    } else {
        struct ifreq ifr;
        memset(&ifr, 0, sizeof(ifr));
        snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", tap);
        ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
        if (ioctl(fd, TUNSETIFF, &ifr) < 0 || ioctl(fd, TUNSETPERSIST, 1) < 0)
            rc = nubo_error(err, errno, "cannot create tap %s", tap);
        close(fd);
    }
    if (orig >= 0 && setns(orig, CLONE_NEWNET) < 0) {
        /* This thread is stuck in the wrong namespace: never let it do anything else. */
        log_warn("cannot return to the agent's network namespace");
        abort();
    }
    return rc;
}

int agent_net_tap_attach(const struct agent_config *c, const char *tap, struct nubo_err *err)
{
    char ns[AGENT_PATH_MAX];
    agent_net_bridge_ns_path(c, ns, sizeof(ns));
    char t[AGENT_TAP_MAX], br[AGENT_TAP_MAX], target[64];
    snprintf(t, sizeof(t), "%s", tap);
    snprintf(br, sizeof(br), "%s", c->bridge);
    if (c->netns[0])
        snprintf(target, sizeof(target), "%s", c->netns);
    else
        snprintf(target, sizeof(target), "%d", (int)getpid());
    if (strcmp(ns, c->libvirt_netns) != 0) {
        /* a leftover of an earlier run with this name would block the move */
        char *del[] = {"ip", "link", "del", "dev", t, NULL};
        agent_run(ns, del, NULL);
        char *mv[] = {"ip", "link", "set", "dev", t, "netns", target, NULL};
        if (agent_run(c->libvirt_netns, mv, err) < 0)
            return nubo_error_wrap(err, "cannot move tap %s to namespace %s", t, target);
    }
    char *en[] = {"ip", "link", "set", "dev", t, "master", br, "up", NULL};
    if (agent_run(ns, en, err) < 0)
        return nubo_error_wrap(err, "cannot attach tap %s to bridge %s", t, br);
    /* A second fence behind the nftables rules: the bridge itself forwards nothing between
     * isolated ports. */
    char *iso[] = {"ip", "link", "set", "dev", t, "type", "bridge_slave", "isolated", "on", NULL};
    struct nubo_err e = {0};
    if (agent_run(ns, iso, &e) < 0)
        log_warnx("tap %s: cannot isolate the bridge port (the rules still hold): %s", t, e.msg);
    return 0;
}

int agent_net_tap_rules(const struct agent_config *c, const char *tap, const char *ip,
                        const char *mac, struct nubo_err *err)
{
    char ns[AGENT_PATH_MAX];
    agent_net_bridge_ns_path(c, ns, sizeof(ns));
    struct agent_fw_guest g = {0};
    snprintf(g.tap, sizeof(g.tap), "%s", tap);
    snprintf(g.ip, sizeof(g.ip), "%s", ip);
    snprintf(g.mac, sizeof(g.mac), "%s", mac ? mac : "");
    cleanup_free char *text = agent_fw_guest_add(&g);
    if (agent_fw_apply(ns, text, err) < 0)
        return nubo_error_wrap(err, "cannot install the isolation rules of tap %s", tap);
    return 0;
}

void agent_net_tap_remove(const struct agent_config *c, const char *tap)
{
    char ns[AGENT_PATH_MAX];
    agent_net_bridge_ns_path(c, ns, sizeof(ns));
    char t[AGENT_TAP_MAX];
    snprintf(t, sizeof(t), "%s", tap);
    char *del[] = {"ip", "link", "del", "dev", t, NULL};
    bool existed = agent_run(ns, del, NULL) == 0;
    if (strcmp(ns, c->libvirt_netns) != 0)
        existed = agent_run(c->libvirt_netns, del, NULL) == 0 || existed;
    /* A tap that never existed has no rules (they are added after the tap); touching nftables
     * for it would create the agent's table wherever the agent runs, even in a namespace that
     * has no guest network at all. */
    if (!existed)
        return;
    /* The tap is gone first, so its rules never lapse while it can still carry frames. */
    cleanup_free char *text = agent_fw_guest_del(t);
    struct nubo_err err = {0};
    if (text && agent_fw_apply(ns, text, &err) < 0)
        log_warnx("tap %s: %s", t, err.msg);
}

static int connect_once(struct sockaddr_in *sa, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int rc = connect(fd, (struct sockaddr *)sa, sizeof(*sa));
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (poll(&p, 1, timeout_ms) == 1) {
            int e = 0;
            socklen_t l = sizeof(e);
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &l);
            rc = e == 0 ? 0 : -1;
        } else
            rc = -1;
    }
    close(fd);
    return rc;
}

/* Runs on a worker thread: setns() affects only this thread, so the probe sees the guest's
 * network without moving the agent. */
int agent_net_probe(const struct agent_config *c, const char *ip, const int64_t *ports,
                    size_t n_ports, int64_t timeout_ms, struct nubo_err *err)
{
    if (c->netns[0]) {
        char ns[AGENT_PATH_MAX];
        agent_net_bridge_ns_path(c, ns, sizeof(ns));
        cleanup_close int fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
            return nubo_error(err, errno, "cannot enter network namespace %s", ns);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, ip, &sa.sin_addr) != 1)
        return nubo_error(err, 0, "bad private ip %s", ip);
    int64_t end = nubo_mono_us() + timeout_ms * 1000;
    while (nubo_mono_us() < end) {
        for (size_t i = 0; i < n_ports; i++) {
            sa.sin_port = htons((uint16_t)ports[i]);
            if (connect_once(&sa, 200) == 0)
                return 0;
        }
        usleep(5000);
    }
    return nubo_error(err, ETIMEDOUT, "no service port of %s answered", ip);
}
