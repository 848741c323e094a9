/* nubo-agent configuration: one INI file (see nubo-agent.ini), validated as it is read. */
#include "agent_core.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

void agent_config_defaults(struct agent_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->node_name, sizeof(c->node_name), "node-1");
    snprintf(c->metro, sizeof(c->metro), "local");
    snprintf(c->controller_url, sizeof(c->controller_url), "http://127.0.0.1:7060");
    snprintf(c->libvirt_uri, sizeof(c->libvirt_uri), "qemu:///system");
    snprintf(c->registry.url, sizeof(c->registry.url), "http://127.0.0.1:5000");
    snprintf(c->cache_dir, sizeof(c->cache_dir), "/var/cache/nubo-agent");
    snprintf(c->state_dir, sizeof(c->state_dir), "/var/lib/nubo-agent");
    snprintf(c->bridge, sizeof(c->bridge), "nubobr0");
    c->cache_size_mb = 4096;
    c->max_image_mb = 1024;
    c->accel = AGENT_ACCEL_AUTO;
    c->memory_reserve_mb = 512;
    c->vcpu_reserve = 0;
    c->shutdown_timeout_ms = 5000;
    c->console_ring_kb = 256;
    c->watch_timeout_ms = 30000;
    c->net_probe_timeout_ms = 30000;
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

struct cfg_ctx {
    struct agent_config *c;
    struct nubo_err *err;
    int failed;
};

static int set_str(char *dst, size_t size, const char *v, const char *sec, const char *key,
                   struct cfg_ctx *x)
{
    if (strlen(v) >= size) {
        nubo_error(x->err, 0, "config [%s] %s: value longer than %zu bytes", sec, key, size - 1);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int set_int(int64_t *dst, const char *v, int64_t min, int64_t max, const char *sec,
                   const char *key, struct cfg_ctx *x)
{
    struct nubo_err e = {0};
    if (nubo_parse_int(v, min, max, dst, &e) < 0) {
        nubo_error(x->err, 0, "config [%s] %s: %s", sec, key, e.msg);
        return -1;
    }
    return 0;
}

static int set_ms(int64_t *dst, const char *v, const char *sec, const char *key,
                  struct cfg_ctx *x)
{
    struct nubo_err e = {0};
    if (nubo_parse_duration_ms(v, dst, &e) < 0) {
        nubo_error(x->err, 0, "config [%s] %s: %s", sec, key, e.msg);
        return -1;
    }
    return 0;
}

static int set_mb(int64_t *dst, const char *v, const char *sec, const char *key,
                  struct cfg_ctx *x)
{
    struct nubo_err e = {0};
    if (nubo_parse_size_mb(v, dst, &e) < 0) {
        nubo_error(x->err, 0, "config [%s] %s: %s", sec, key, e.msg);
        return -1;
    }
    return 0;
}

#define IS(s, k) (strcmp(sec, s) == 0 && strcmp(key, k) == 0)

static int on_kv(void *user, const char *sec, const char *key, const char *v)
{
    struct cfg_ctx *x = user;
    struct agent_config *c = x->c;
    int r = 0;
    if (x->failed)
        return 0;
    if (IS("node", "name")) {
        if (!nubo_name_valid(v)) {
            nubo_error(x->err, 0, "config [node] name '%s': use 1-63 of [a-z0-9-]", v);
            r = -1;
        } else
            r = set_str(c->node_name, sizeof(c->node_name), v, sec, key, x);
    } else if (IS("node", "metro")) {
        if (!nubo_name_valid(v)) {
            nubo_error(x->err, 0, "config [node] metro '%s': use 1-63 of [a-z0-9-]", v);
            r = -1;
        } else
            r = set_str(c->metro, sizeof(c->metro), v, sec, key, x);
    } else if (IS("node", "memory_reserve")) {
        r = set_mb(&c->memory_reserve_mb, v, sec, key, x);
    } else if (IS("node", "memory_reserve_mb")) {
        r = set_int(&c->memory_reserve_mb, v, 0, 1 << 30, sec, key, x);
    } else if (IS("node", "vcpu_reserve")) {
        r = set_int(&c->vcpu_reserve, v, 0, 4096, sec, key, x);
    } else if (IS("controller", "url")) {
        r = set_str(c->controller_url, sizeof(c->controller_url), v, sec, key, x);
    } else if (IS("controller", "socket") || IS("controller", "unix_socket")) {
        r = set_str(c->controller_socket, sizeof(c->controller_socket), v, sec, key, x);
    } else if (IS("controller", "join_token_file")) {
        r = set_str(c->join_token_file, sizeof(c->join_token_file), v, sec, key, x);
    } else if (IS("controller", "watch_timeout")) {
        r = set_ms(&c->watch_timeout_ms, v, sec, key, x);
    } else if (IS("standalone", "assignments_file")) {
        r = set_str(c->assignments_file, sizeof(c->assignments_file), v, sec, key, x);
    } else if (IS("standalone", "status_file")) {
        r = set_str(c->status_file, sizeof(c->status_file), v, sec, key, x);
    } else if (IS("standalone", "subnet")) {
        r = set_str(c->subnet, sizeof(c->subnet), v, sec, key, x);
    } else if (IS("standalone", "gateway")) {
        r = set_str(c->gateway, sizeof(c->gateway), v, sec, key, x);
    } else if (IS("standalone", "dns")) {
        r = set_str(c->dns, sizeof(c->dns), v, sec, key, x);
    } else if (IS("libvirt", "uri")) {
        r = set_str(c->libvirt_uri, sizeof(c->libvirt_uri), v, sec, key, x);
    } else if (IS("libvirt", "accel")) {
        if (strcmp(v, "auto") == 0)
            c->accel = AGENT_ACCEL_AUTO;
        else if (strcmp(v, "kvm") == 0)
            c->accel = AGENT_ACCEL_KVM;
        else if (strcmp(v, "tcg") == 0)
            c->accel = AGENT_ACCEL_TCG;
        else {
            nubo_error(x->err, 0, "config [libvirt] accel '%s': use auto, kvm or tcg", v);
            r = -1;
        }
    } else if (IS("libvirt", "shutdown_timeout")) {
        r = set_ms(&c->shutdown_timeout_ms, v, sec, key, x);
    } else if (IS("libvirt", "netns")) {
        r = set_str(c->libvirt_netns, sizeof(c->libvirt_netns), v, sec, key, x);
    } else if (IS("registry", "url")) {
        r = set_str(c->registry.url, sizeof(c->registry.url), v, sec, key, x);
    } else if (IS("registry", "socket") || IS("registry", "unix_socket")) {
        r = set_str(c->registry.unix_path, sizeof(c->registry.unix_path), v, sec, key, x);
    } else if (IS("images", "cache_dir")) {
        r = set_str(c->cache_dir, sizeof(c->cache_dir), v, sec, key, x);
    } else if (IS("images", "cache_size")) {
        r = set_mb(&c->cache_size_mb, v, sec, key, x);
    } else if (IS("images", "cache_size_mb")) {
        r = set_int(&c->cache_size_mb, v, 1, 1 << 30, sec, key, x);
    } else if (IS("images", "max_image_size")) {
        r = set_mb(&c->max_image_mb, v, sec, key, x);
    } else if (IS("state", "dir") || IS("node", "state_dir")) {
        r = set_str(c->state_dir, sizeof(c->state_dir), v, sec, key, x);
    } else if (IS("state", "console_ring")) {
        int64_t mb = 0;
        struct nubo_err e = {0};
        /* accept KiB sizes: "256K" -> parse in KiB via MiB parser is lossy, so take plain KiB */
        if (nubo_parse_int(v, 4, 1 << 20, &mb, &e) < 0) {
            nubo_error(x->err, 0, "config [state] console_ring: %s (KiB)", e.msg);
            r = -1;
        } else
            c->console_ring_kb = mb;
    } else if (IS("network", "bridge")) {
        r = set_str(c->bridge, sizeof(c->bridge), v, sec, key, x);
    } else if (IS("network", "netns")) {
        r = set_str(c->netns, sizeof(c->netns), v, sec, key, x);
    } else if (IS("network", "egress")) {
        if (strcmp(v, "none") == 0)
            c->egress = AGENT_EGRESS_NONE;
        else if (strcmp(v, "nat") == 0)
            c->egress = AGENT_EGRESS_NAT;
        else {
            nubo_error(x->err, 0, "config [network] egress '%s': use none or nat", v);
            r = -1;
        }
    } else if (IS("network", "ingress_from")) {
        struct nubo_err e = {0};
        if (agent_fw_cidrs_parse(v, c->ingress_from, AGENT_INGRESS_FROM_MAX, &c->n_ingress_from,
                                 &e) < 0) {
            nubo_error(x->err, 0, "config [network] ingress_from: %s", e.msg);
            r = -1;
        }
    } else if (IS("network", "net_probe_timeout")) {
        r = set_ms(&c->net_probe_timeout_ms, v, sec, key, x);
    } else {
        nubo_error(x->err, 0, "config: unknown key [%s] %s", sec, key);
        r = -1;
    }
    if (r < 0)
        x->failed = 1;
    return 1;
}

int agent_config_load(struct agent_config *c, const char *path, struct nubo_err *err)
{
    struct cfg_ctx x = {.c = c, .err = err};
    int rc = ini_parse(path, on_kv, &x);
    if (rc == -1)
        return nubo_error(err, errno, "cannot open config %s", path);
    if (rc > 0)
        return nubo_error(err, 0, "config %s: syntax error on line %d", path, rc);
    if (x.failed)
        return nubo_error_wrap(err, "config %s", path);
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
