/* nubo-agent configuration: one INI file (see nubo-agent.ini), validated as it is read. */
#include "agent_core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

static int set_accel(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_egress(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_ingress_from(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_slot_shapes(void *t, const char *key, const char *v, struct nubo_err *err);

#define C struct agent_config
static const struct nu_cfg_key agent_settings[] = {
    NU_CFG_N(C, "node", "name", node_name, "node-1"),
    NU_CFG_N(C, "node", "metro", metro, "local"),
    NU_CFG_M(C, "node", "memory_reserve", memory_reserve_mb, 0, 0, NULL),
    NU_CFG_I(C, "node", "memory_reserve_mb", memory_reserve_mb, 0, 1 << 30, "512"),
    NU_CFG_I(C, "node", "vcpu_reserve", vcpu_reserve, 0, 4096, "0"),
    NU_CFG_S(C, "node", "state_dir", state_dir, NULL),
    NU_CFG_S(C, "controller", "url", controller_url, "http://127.0.0.1:7060"),
    NU_CFG_S(C, "controller", "socket", controller_socket, NULL),
    NU_CFG_S(C, "controller", "unix_socket", controller_socket, NULL),
    NU_CFG_S(C, "controller", "join_token_file", join_token_file, NULL),
    NU_CFG_S(C, "controller", "ca_file", controller_ca, NULL),
    NU_CFG_D(C, "controller", "watch_timeout", watch_timeout_ms, 0, 0, "30000"),
    NU_CFG_S(C, "standalone", "assignments_file", assignments_file, NULL),
    NU_CFG_S(C, "standalone", "status_file", status_file, NULL),
    NU_CFG_S(C, "standalone", "subnet", subnet, NULL),
    NU_CFG_S(C, "standalone", "gateway", gateway, NULL),
    NU_CFG_S(C, "standalone", "dns", dns, NULL),
    NU_CFG_S(C, "libvirt", "uri", libvirt_uri, "qemu:///system"),
    NU_CFG_F("libvirt", "accel", set_accel, "auto"),
    NU_CFG_D(C, "libvirt", "shutdown_timeout", shutdown_timeout_ms, 0, 0, "5000"),
    NU_CFG_S(C, "libvirt", "netns", libvirt_netns, NULL),
    NU_CFG_S(C, "registry", "url", registry.url, "http://127.0.0.1:5000"),
    NU_CFG_S(C, "registry", "socket", registry.unix_path, NULL),
    NU_CFG_S(C, "registry", "unix_socket", registry.unix_path, NULL),
    NU_CFG_S(C, "images", "cache_dir", cache_dir, "/var/cache/nubo-agent"),
    NU_CFG_M(C, "images", "cache_size", cache_size_mb, 0, 0, NULL),
    NU_CFG_I(C, "images", "cache_size_mb", cache_size_mb, 1, 1 << 30, "4096"),
    NU_CFG_M(C, "images", "max_image_size", max_image_mb, 0, 0, "1024"),
    NU_CFG_S(C, "state", "dir", state_dir, "/var/lib/nubo-agent"),
    NU_CFG_I(C, "state", "console_ring", console_ring_kb, 4, 1 << 20, "256"), /* KiB */
    NU_CFG_S(C, "network", "bridge", bridge, "nubobr0"),
    NU_CFG_S(C, "network", "netns", netns, NULL),
    NU_CFG_F("network", "egress", set_egress, NULL),
    NU_CFG_F("network", "ingress_from", set_ingress_from, NULL),
    NU_CFG_D(C, "network", "net_probe_timeout", net_probe_timeout_ms, 0, 0, "30000"),
    NU_CFG_S(C, "volumes", "dir", volume_dir, NULL),
    NU_CFG_I(C, "volumes", "budget_mb", volume_budget_mb, -1, INT64_C(1) << 40, "-1"),
    /* Off unless the node asks: every slot is a paused qemu holding its shape's memory. */
    NU_CFG_I(C, "slots", "size", slot_pool_size, 0, AGENT_SLOT_POOL_MAX, "0"),
    NU_CFG_F("slots", "shapes", set_slot_shapes, "16x1, 128x1"),
    NU_CFG_S(C, "slots", "firmware", slot_firmware, NULL),
    {0},
};
#undef C

void agent_config_defaults(struct agent_config *c)
{
    nu_cfg_init(agent_settings, c, sizeof(*c));
}

const char *agent_accel_name(enum agent_accel a)
{
    switch (a) {
    case AGENT_ACCEL_KVM:
        return "kvm";
    case AGENT_ACCEL_TCG:
        return "tcg";
    default:
        return "auto";
    }
}

enum agent_accel agent_accel_resolve(enum agent_accel want, const char *sysfs_module_dir)
{
    if (want != AGENT_ACCEL_AUTO)
        return want;
    /* kvm_pvm provides /dev/kvm by software nesting: guests run emulated and slower than TCG,
     * so only the hardware modules count. */
    const char *dir = sysfs_module_dir ? sysfs_module_dir : "/sys/module";
    static const char *const mods[] = {"kvm_intel", "kvm_amd"};
    for (size_t i = 0; i < 2; i++) {
        char p[AGENT_PATH_MAX];
        struct stat st;
        snprintf(p, sizeof(p), "%s/%s", dir, mods[i]);
        if (stat(p, &st) == 0 && access("/dev/kvm", R_OK | W_OK) == 0)
            return AGENT_ACCEL_KVM;
    }
    return AGENT_ACCEL_TCG;
}

static int set_accel(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct agent_config *c = t;
    if (strcmp(v, "auto") == 0)
        c->accel = AGENT_ACCEL_AUTO;
    else if (strcmp(v, "kvm") == 0)
        c->accel = AGENT_ACCEL_KVM;
    else if (strcmp(v, "tcg") == 0)
        c->accel = AGENT_ACCEL_TCG;
    else
        return nubo_error(err, 0, "'%s': use auto, kvm or tcg", v);
    return 0;
}

static int set_egress(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct agent_config *c = t;
    if (strcmp(v, "none") == 0)
        c->egress = AGENT_EGRESS_NONE;
    else if (strcmp(v, "nat") == 0)
        c->egress = AGENT_EGRESS_NAT;
    else
        return nubo_error(err, 0, "'%s': use none or nat", v);
    return 0;
}

static int set_ingress_from(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct agent_config *c = t;
    return agent_fw_cidrs_parse(v, c->ingress_from, AGENT_INGRESS_FROM_MAX, &c->n_ingress_from,
                                err);
}

static int set_slot_shapes(void *t, const char *key, const char *v, struct nubo_err *err)
{
    (void)key;
    struct agent_config *c = t;
    return agent_slot_shapes_parse(v, c->slot_shapes, AGENT_SLOT_SHAPES_MAX, &c->n_slot_shapes,
                                   err);
}

int agent_config_load(struct agent_config *c, const char *path, struct nubo_err *err)
{
    if (nu_cfg_load(path, agent_settings, c, NULL, err) < 0)
        return -1;
    if (c->netns[0] && (strchr(c->netns, '/') || c->netns[0] == '.'))
        return nubo_error(err, 0, "config %s: [network] netns must be a name under /run/netns",
                          path);
    if (c->subnet[0] && !nubo_cidr_valid(c->subnet))
        return nubo_error(err, 0, "config %s: [standalone] subnet '%s' is not a.b.c.d/n", path,
                          c->subnet);
    if (c->gateway[0] && !nubo_ipv4_valid(c->gateway))
        return nubo_error(err, 0, "config %s: [standalone] gateway '%s' is not IPv4", path,
                          c->gateway);
    if (c->watch_timeout_ms > NUBO_AGENT_WATCH_TIMEOUT_MAX_MS)
        c->watch_timeout_ms = NUBO_AGENT_WATCH_TIMEOUT_MAX_MS;
    return 0;
}
