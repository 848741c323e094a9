/* nubo-controller configuration: defaults, then the INI file (common/config.c), then the
 * command line. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "config.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

static int set_log_level(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_sync(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_pool(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_services_domain(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_secret_file(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_secret_inline(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_ports(void *t, const char *key, const char *v, struct nubo_err *err);
static int port_list_apply(const char *v, uint8_t *bits, bool set, struct nubo_err *err);
static int set_domain_grants(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_metro_memory(void *t, const char *key, const char *v, struct nubo_err *err);
static int set_plain_http(void *t, const char *key, const char *v, struct nubo_err *err);

#define C struct ctl_config
static const struct nu_cfg_key ctl_settings[] = {
    NU_CFG_S(C, "controller", "listen", listen, "127.0.0.1:7060"),
    NU_CFG_S(C, "controller", "unix", unix_path, NULL),
    NU_CFG_S(C, "controller", "db", db_path, NULL),
    NU_CFG_S(C, "store", "url", store_url, NULL),
    NU_CFG_S(C, "controller", "advertise_url", advertise_url, NULL),
    NU_CFG_I(C, "controller", "lease_ttl_ms", lease_ttl_ms, 300, 600000, "3000"),
    NU_CFG_I(C, "controller", "lease_check_ms", lease_check_ms, 50, 60000, "500"),
    NU_CFG_S(C, "controller", "bootstrap_token_file", bootstrap_token_file, NULL),
    NU_CFG_N(C, "controller", "admin_user", admin_user, "admin"),
    NU_CFG_F("controller", "log_level", set_log_level, "info"),
    NU_CFG_F("controller", "sync", set_sync, "normal"),
    NU_CFG_I(C, "controller", "max_body_bytes", max_body_bytes, 1024, 64 << 20, NULL),
    NU_CFG_I(C, "controller", "rate_limit_per_s", rate_limit_per_s, 0, 1000000, "50"),
    NU_CFG_I(C, "controller", "rate_limit_burst", rate_limit_burst, 1, 1000000, "200"),
    NU_CFG_I(C, "controller", "max_connections", max_connections, -1, 1000000, "-1"),
    NU_CFG_I(C, "controller", "max_connections_per_client", max_connections_per_client, 0,
             1000000, "256"),
    NU_CFG_I(C, "controller", "header_timeout_ms", header_timeout_ms, 100, 3600000, "10000"),
    NU_CFG_S(C, "controller", "tls_cert_file", tls_cert_file, NULL),
    NU_CFG_S(C, "controller", "tls_key_file", tls_key_file, NULL),
    NU_CFG_F("controller", "plain_http", set_plain_http, "no"),
    NU_CFG_S(C, "agent", "join_token_file", join_token_file, NULL),
    NU_CFG_I(C, "agent", "heartbeat_interval_ms", heartbeat_interval_ms, 50, 3600000, "2000"),
    NU_CFG_I(C, "agent", "grace_ms", grace_ms, 100, 86400000, "10000"),
    NU_CFG_I(C, "agent", "max_heartbeats_per_second", max_heartbeats_per_second, 1, 1000000, "500"),
    NU_CFG_I(C, "agent", "watch_coalesce_ms", watch_coalesce_ms, 0, 1000, "20"),
    NU_CFG_F("agent", "subnet_pool", set_pool, "10.64.0.0/16"),
    NU_CFG_I(C, "scheduler", "vcpu_overcommit", vcpu_overcommit, 1, 1024, "8"),
    NU_CFG_S(C, "instances", "cluster_domain", cluster_domain, "internal"),
    NU_CFG_I(C, "instances", "log_tail_bytes", log_tail_bytes, 1024, 16 << 20, "65536"),
    NU_CFG_I(C, "instances", "max_memory_mb", max_memory_mb, NUBO_API_MIN_MEMORY_MB,
             NUBO_API_MAX_MEMORY_MB, "4096"),
    NU_CFG_F("metro_max_memory_mb", NULL, set_metro_memory, NULL),
    NU_CFG_S(C, "registry", "url", registry.url, "http://127.0.0.1:5000"),
    NU_CFG_S(C, "registry", "unix_socket", registry.unix_path, NULL),
    NU_CFG_S(C, "registry", "user", registry.user, NULL),
    NU_CFG_F("registry", "password_file", set_secret_file, NULL),
    NU_CFG_F("registry", "password", set_secret_inline, NULL),
    NU_CFG_F("registry", "notification_secret_file", set_secret_file, NULL),
    NU_CFG_F("registry", "notification_secret", set_secret_inline, NULL),
    NU_CFG_S(C, "registry", "token_key_file", registry_token_key_file, NULL),
    NU_CFG_S(C, "registry", "token_issuer", registry_token_issuer, "nubo-controller"),
    NU_CFG_S(C, "registry", "token_service", registry_token_service, "nubo-registry"),
    NU_CFG_I(C, "registry", "token_ttl_s", registry_token_ttl_s, 30, 3600, "300"),
    NU_CFG_F("services", "domain", set_services_domain, "nubo.local"),
    NU_CFG_F("services", "public_ports", set_ports, "80,443,1024-65535"),
    NU_CFG_F("services", "reserved_ports", set_ports, ""),
    NU_CFG_F("services", "custom_domains", set_domain_grants, "any"),
    NU_CFG_S(C, "ingress", "token_file", ingress_token_file, NULL),
#define Q(key, i, def) NU_CFG_I(C, "quotas", key, quota_default[i], 0, NUBO_QUOTA_UNLIMITED, def)
    Q("instances", NUBO_QUOTA_INSTANCES, "128"),
    Q("live_instances", NUBO_QUOTA_LIVE_INSTANCES, "64"),
    Q("live_memory_mb", NUBO_QUOTA_LIVE_MEMORY_MB, "16384"),
    Q("memory_mb", NUBO_QUOTA_MEMORY_MB, "32768"),
    Q("live_vcpus", NUBO_QUOTA_LIVE_VCPUS, "64"),
    Q("service_groups", NUBO_QUOTA_SERVICE_GROUPS, "64"),
    Q("services", NUBO_QUOTA_SERVICES, "128"),
    Q("certificates", NUBO_QUOTA_CERTIFICATES, "64"),
    Q("volumes", NUBO_QUOTA_VOLUMES, "64"),
    Q("total_volume_mb", NUBO_QUOTA_TOTAL_VOLUME_MB, "65536"),
#undef Q
    {0},
};
#undef C

void ctl_config_defaults(struct ctl_config *c)
{
    nu_cfg_init(ctl_settings, c, sizeof(*c));
    c->max_body_bytes = NUBO_API_MAX_BODY;
    c->registry.timeout_ms = 10000;
    /* the default public ports, for callers that never reach ctl_config_finish (unit tests) */
    (void)port_list_apply(c->public_ports_text, c->public_ports, true, NULL);
}

int ctl_parse_cidr(const char *s, uint32_t *net, int *prefix)
{
    char buf[32];
    if (nubo_snprintf(buf, sizeof(buf), "%s", s) < 0)
        return -1;
    char *slash = strchr(buf, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    struct in_addr a;
    int64_t p;
    if (inet_pton(AF_INET, buf, &a) != 1 || nubo_parse_int(slash + 1, 8, 24, &p, NULL) < 0)
        return -1;
    uint32_t mask = (uint32_t)(0xffffffffULL << (32 - p));
    *net = ntohl(a.s_addr) & mask;
    *prefix = (int)p;
    return 0;
}

static int set_log_level(void *t, const char *key, const char *v, struct nubo_err *err)
{
    enum nubo_log_level l;
    if (log_level_parse(v, &l) < 0)
        return nubo_error(err, 0, "'%s' is not error, warn, info or debug", v);
    ((struct ctl_config *)t)->log_level = l;
    return 0;
}

static int set_sync(void *t, const char *key, const char *v, struct nubo_err *err)
{
    if (strcmp(v, "full") != 0 && strcmp(v, "normal") != 0)
        return nubo_error(err, 0, "'%s' is not full or normal", v);
    ((struct ctl_config *)t)->sync_full = strcmp(v, "full") == 0;
    return 0;
}

static int set_pool(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ctl_config *c = t;
    if (ctl_parse_cidr(v, &c->pool_net, &c->pool_prefix) < 0)
        return nubo_error(err, 0, "'%s' is not a.b.c.d/n with n in 8..24", v);
    return 0;
}

static int set_services_domain(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ctl_config *c = t;
    if (!nubo_fqdn_valid(v, false) && !nubo_name_valid(v))
        return nubo_error(err, 0, "'%s' is not a DNS name", v);
    if (nubo_snprintf(c->services_domain, sizeof(c->services_domain), "%s", v) < 0)
        return nubo_error(err, 0, "value longer than %zu bytes", sizeof(c->services_domain) - 1);
    return 0;
}

/* "80,443,1024-65535": ports and ranges; each port is set (or cleared) in bits. */
static int port_list_apply(const char *v, uint8_t *bits, bool set, struct nubo_err *err)
{
    const char *p = v;
    while (*p) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (end == p)
            return nubo_error(err, 0, "'%s' is not a list of ports and ranges (80,443,1024-65535)",
                              v);
        if (*end == '-') {
            const char *q = end + 1;
            hi = strtol(q, &end, 10);
            if (end == q)
                return nubo_error(err, 0, "'%s': a range needs an upper port", v);
        }
        if (lo < 1 || hi > 65535 || lo > hi)
            return nubo_error(err, 0, "'%s': ports are 1..65535, ranges low-high", v);
        for (long k = lo; k <= hi; k++) {
            if (set)
                bits[k / 8] |= (uint8_t)(1u << (k % 8));
            else
                bits[k / 8] &= (uint8_t) ~(1u << (k % 8));
        }
        while (*end == ' ')
            end++;
        if (*end == ',')
            end++;
        else if (*end)
            return nubo_error(err, 0, "'%s' is not a list of ports and ranges (80,443,1024-65535)",
                              v);
        while (*end == ' ')
            end++;
        p = end;
    }
    return 0;
}

static int set_ports(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ctl_config *c = t;
    uint8_t scratch[sizeof(c->public_ports)];
    if (port_list_apply(v, scratch, true, err) < 0)
        return -1;
    bool pub = strcmp(key, "public_ports") == 0;
    char *dst = pub ? c->public_ports_text : c->reserved_ports_text;
    if (nubo_snprintf(dst, sizeof(c->public_ports_text), "%s", v) < 0)
        return nubo_error(err, 0, "value longer than %zu bytes", sizeof(c->public_ports_text) - 1);
    return 0;
}

/* "any", or "<user>:<domain> ..." (spaces or commas between): who may claim which custom
 * domains (the domain and every name under it). */
static int set_domain_grants(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ctl_config *c = t;
    c->n_domain_grants = 0;
    if (strcmp(v, "any") == 0)
        return 0;
    char buf[4096];
    if (nubo_snprintf(buf, sizeof(buf), "%s", v) < 0)
        return nubo_error(err, 0, "value longer than %zu bytes", sizeof(buf) - 1);
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ,", &save); tok; tok = strtok_r(NULL, " ,", &save)) {
        char *colon = strchr(tok, ':');
        if (colon == NULL)
            return nubo_error(err, 0, "'%s': want any, or <user>:<domain> entries", tok);
        *colon = '\0';
        if (!nubo_name_valid(tok) || !nubo_fqdn_valid(colon + 1, false))
            return nubo_error(err, 0, "'%s:%s': want <user>:<domain>", tok, colon + 1);
        if (c->n_domain_grants >= CTL_MAX_DOMAIN_GRANTS)
            return nubo_error(err, 0, "more than %d entries", CTL_MAX_DOMAIN_GRANTS);
        struct ctl_domain_grant *g = &c->domain_grants[c->n_domain_grants++];
        snprintf(g->user, sizeof(g->user), "%s", tok);
        snprintf(g->domain, sizeof(g->domain), "%s", colon + 1);
    }
    if (c->n_domain_grants == 0)
        return nubo_error(err, 0, "empty: want any, or <user>:<domain> entries");
    return 0;
}

/* Where [registry] password(_file) and notification_secret(_file) land. */
static char *secret_field(struct ctl_config *c, const char *key, size_t *size)
{
    bool pw = strncmp(key, "password", 8) == 0;
    *size = pw ? sizeof(c->registry.password) : sizeof(c->registry_secret);
    return pw ? c->registry.password : c->registry_secret;
}

/* A secret kept in a file of its own (0600, the controller's user), not in this config that
 * ships 0644: its first line, without the newline. */
static int set_secret_file(void *t, const char *key, const char *path, struct nubo_err *err)
{
    size_t size;
    char *dst = secret_field(t, key, &size);
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (nubo_read_file(path, size - 1, &text, &len, err) < 0)
        return -1;
    text[strcspn(text, "\r\n")] = '\0';
    if (text[0] == '\0')
        return nubo_error(err, 0, "%s is empty", path);
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 0077))
        log_warnx("config: %s holds a secret but is readable by others (mode %04o): chmod 600 it",
                  path, (unsigned)(sb.st_mode & 07777));
    snprintf(dst, size, "%s", text);
    return 0;
}

static int set_secret_inline(void *t, const char *key, const char *v, struct nubo_err *err)
{
    size_t size;
    char *dst = secret_field(t, key, &size);
    log_warnx("config: [registry] %s in the config is deprecated: put it in a 0600 file and name "
              "it with %s_file",
              key, key);
    if (nubo_snprintf(dst, size, "%s", v) < 0)
        return nubo_error(err, 0, "value longer than %zu bytes", size - 1);
    return 0;
}

static int set_metro_memory(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ctl_config *c = t;
    int64_t mb;
    if (!nubo_name_valid(key))
        return nubo_error(err, 0, "'%s' is not a metro name", key);
    if (nubo_parse_int(v, NUBO_API_MIN_MEMORY_MB, NUBO_API_MAX_MEMORY_MB, &mb, NULL) < 0)
        return nubo_error(err, 0, "'%s' is not a size in MiB (%d..%d)", v, NUBO_API_MIN_MEMORY_MB,
                          NUBO_API_MAX_MEMORY_MB);
    size_t i = 0;
    while (i < c->n_metro_max_memory && strcmp(c->metro_max_memory[i].metro, key) != 0)
        i++;
    if (i == c->n_metro_max_memory) {
        if (i == CTL_MAX_METRO_LIMITS)
            return nubo_error(err, 0, "at most %d metros", CTL_MAX_METRO_LIMITS);
        c->n_metro_max_memory++;
    }
    snprintf(c->metro_max_memory[i].metro, sizeof(c->metro_max_memory[i].metro), "%s", key);
    c->metro_max_memory[i].mb = mb;
    return 0;
}

/* "no" (HTTPS only), "loopback" (plain HTTP allowed on a loopback listen address, for tests
 * and one-machine setups) or "any" (plain HTTP anywhere: a TLS-terminating proxy in front). */
static int set_plain_http(void *t, const char *key, const char *v, struct nubo_err *err)
{
    static const char *const names[] = {
        [CTL_PLAIN_NO] = "no", [CTL_PLAIN_LOOPBACK] = "loopback", [CTL_PLAIN_ANY] = "any"};
    for (int i = 0; i < 3; i++)
        if (strcmp(v, names[i]) == 0) {
            ((struct ctl_config *)t)->plain_http = i;
            return 0;
        }
    return nubo_error(err, 0, "'%s' is not no, loopback or any", v);
}

/* A listen host that only this machine reaches. */
static bool host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* HTTPS when a certificate is configured; plain HTTP only where plain_http allows it. */
static int check_transport(struct ctl_config *c, struct nubo_err *err)
{
    if ((c->tls_cert_file[0] != '\0') != (c->tls_key_file[0] != '\0'))
        return nubo_error(err, 0, "[controller] tls_cert_file and tls_key_file go together");
    if (c->tls_cert_file[0]) {
        struct stat sb;
        if (stat(c->tls_key_file, &sb) == 0 && (sb.st_mode & 0077))
            log_warnx("config: %s holds the TLS key but is readable by others (mode %04o): "
                      "chmod 600 it",
                      c->tls_key_file, (unsigned)(sb.st_mode & 07777));
        return 0;
    }
    char host[128];
    snprintf(host, sizeof(host), "%s", c->listen);
    char *colon = strrchr(host, ':');
    if (colon == NULL)
        return nubo_error(err, 0, "--listen %s: expected HOST:PORT, e.g. 127.0.0.1:7060",
                          c->listen);
    *colon = '\0';
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') { /* [::1] */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (c->plain_http == CTL_PLAIN_ANY ||
        (c->plain_http == CTL_PLAIN_LOOPBACK && host_is_loopback(host)))
        return 0;
    if (c->plain_http == CTL_PLAIN_LOOPBACK)
        return nubo_error(err, 0,
                          "listen %s is not a loopback address: plain HTTP is refused there; set "
                          "[controller] tls_cert_file and tls_key_file",
                          c->listen);
    return nubo_error(err, 0,
                      "listen %s would be plain HTTP: set [controller] tls_cert_file and "
                      "tls_key_file, or plain_http = loopback for a loopback-only listener",
                      c->listen);
}

int64_t ctl_max_memory_mb(const struct ctl_config *c, const char *metro)
{
    for (size_t i = 0; metro && i < c->n_metro_max_memory; i++)
        if (strcmp(c->metro_max_memory[i].metro, metro) == 0)
            return c->metro_max_memory[i].mb;
    return c->max_memory_mb;
}

int ctl_config_load_ini(struct ctl_config *c, const char *path, struct nubo_err *err)
{
    return nu_cfg_load(path, ctl_settings, c, NULL, err);
}

int ctl_config_finish(struct ctl_config *c, struct nubo_err *err)
{
    if (c->db_path[0] == '\0')
        return nubo_error(err, 0, "no database given: pass --db FILE or set [controller] db");
    /* with PostgreSQL, db still names the local files (tokens) kept beside it */
    if (c->store_url[0] && !ctl_db_target_is_pg(c->store_url))
        return nubo_error(err, 0, "[store] url must be postgresql://…, not '%.40s'", c->store_url);
    if (c->join_token_file[0] == '\0' &&
        nubo_snprintf(c->join_token_file, sizeof(c->join_token_file), "%s.join-token", c->db_path) <
            0)
        return nubo_error(err, 0, "database path too long");
    if (c->bootstrap_token_file[0] == '\0' &&
        nubo_snprintf(c->bootstrap_token_file, sizeof(c->bootstrap_token_file), "%s.admin-token",
                      c->db_path) < 0)
        return nubo_error(err, 0, "database path too long");
    if (c->ingress_token_file[0] == '\0' &&
        nubo_snprintf(c->ingress_token_file, sizeof(c->ingress_token_file), "%s.ingress-token",
                      c->db_path) < 0)
        return nubo_error(err, 0, "database path too long");
    /* public ports: the allowed list minus the reserved ones and the API's own port */
    memset(c->public_ports, 0, sizeof(c->public_ports));
    if (port_list_apply(c->public_ports_text, c->public_ports, true, err) < 0 ||
        port_list_apply(c->reserved_ports_text, c->public_ports, false, err) < 0)
        return nubo_error_wrap(err, "[services] public_ports / reserved_ports");
    const char *colon = strrchr(c->listen, ':');
    long own = colon ? strtol(colon + 1, NULL, 10) : 0;
    if (own > 0 && own <= 65535)
        c->public_ports[own / 8] &= (uint8_t) ~(1u << (own % 8));
    if (check_transport(c, err) < 0)
        return -1;
    /* a leader renews every check: two checks fit in a lease, so one slow one does not lose it */
    if (c->lease_check_ms * 2 > c->lease_ttl_ms)
        return nubo_error(err, 0,
                          "[controller] lease_check_ms (%lld) must be at most half of "
                          "lease_ttl_ms (%lld)",
                          (long long)c->lease_check_ms, (long long)c->lease_ttl_ms);
    if (c->heartbeat_interval_ms >= c->grace_ms)
        return nubo_error(err, 0,
                          "[agent] grace_ms (%lld) must exceed heartbeat_interval_ms "
                          "(%lld)",
                          (long long)c->grace_ms, (long long)c->heartbeat_interval_ms);
    return 0;
}
