/* nubo-controller configuration: defaults, then the INI file (inih), then the command line. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ini.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

void ctl_config_defaults(struct ctl_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->listen, sizeof(c->listen), "127.0.0.1:7060");
    snprintf(c->admin_user, sizeof(c->admin_user), "admin");
    c->log_level = NUBO_LOG_INFO;
    c->max_body_bytes = NUBO_API_MAX_BODY;
    c->heartbeat_interval_ms = 2000;
    c->grace_ms = 10000;
    c->watch_coalesce_ms = 20;
    c->pool_net = 0x0a400000; /* 10.64.0.0/16 */
    c->pool_prefix = 16;
    snprintf(c->cluster_domain, sizeof(c->cluster_domain), "internal");
    c->vcpu_overcommit = 8;
    c->log_tail_bytes = 64 * 1024;
    snprintf(c->registry.url, sizeof(c->registry.url), "http://127.0.0.1:5000");
    c->registry.timeout_ms = 10000;
    snprintf(c->services_domain, sizeof(c->services_domain), "nubo.local");
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

struct ini_state {
    struct ctl_config *c;
    struct nubo_err *err;
    bool failed;
};

static int set_str(char *dst, size_t size, const char *v)
{
    return nubo_snprintf(dst, size, "%s", v) < 0 ? -1 : 0;
}

static int set_int(int64_t *dst, const char *v, int64_t min, int64_t max)
{
    return nubo_parse_int(v, min, max, dst, NULL);
}

/* A secret kept in a file of its own (0600, the controller's user), not in this config that
 * ships 0644: its first line, without the newline. */
static int read_secret(struct ini_state *st, const char *key, const char *path, char *dst,
                       size_t size)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    struct nubo_err e = {0};
    if (nubo_read_file(path, size - 1, &text, &len, &e) < 0) {
        nubo_error(st->err, 0, "[registry] %s: %s", key, e.msg);
        return -3;
    }
    text[strcspn(text, "\r\n")] = '\0';
    if (text[0] == '\0') {
        nubo_error(st->err, 0, "[registry] %s: %s is empty", key, path);
        return -3;
    }
    struct stat sb;
    if (stat(path, &sb) == 0 && (sb.st_mode & 0077))
        log_warnx("config: %s holds a secret but is readable by others (mode %04o): chmod 600 it",
                  path, (unsigned)(sb.st_mode & 07777));
    snprintf(dst, size, "%s", text);
    return 0;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *st = user;
    struct ctl_config *c = st->c;
    int rc = -2; /* unknown key */
#define KEY(s, n) (strcmp(section, s) == 0 && strcmp(name, n) == 0)
    if (KEY("controller", "listen"))
        rc = set_str(c->listen, sizeof(c->listen), value);
    else if (KEY("controller", "unix"))
        rc = set_str(c->unix_path, sizeof(c->unix_path), value);
    else if (KEY("controller", "db"))
        rc = set_str(c->db_path, sizeof(c->db_path), value);
    else if (KEY("controller", "bootstrap_token_file"))
        rc = set_str(c->bootstrap_token_file, sizeof(c->bootstrap_token_file), value);
    else if (KEY("controller", "admin_user"))
        rc = nubo_name_valid(value) ? set_str(c->admin_user, sizeof(c->admin_user), value) : -1;
    else if (KEY("controller", "log_level")) {
        enum nubo_log_level l;
        rc = log_level_parse(value, &l);
        c->log_level = l;
    } else if (KEY("controller", "sync")) {
        rc = strcmp(value, "full") == 0 || strcmp(value, "normal") == 0 ? 0 : -1;
        c->sync_full = strcmp(value, "full") == 0;
    } else if (KEY("controller", "max_body_bytes"))
        rc = set_int(&c->max_body_bytes, value, 1024, 64 << 20);
    else if (KEY("agent", "join_token_file"))
        rc = set_str(c->join_token_file, sizeof(c->join_token_file), value);
    else if (KEY("agent", "heartbeat_interval_ms"))
        rc = set_int(&c->heartbeat_interval_ms, value, 50, 3600000);
    else if (KEY("agent", "grace_ms"))
        rc = set_int(&c->grace_ms, value, 100, 86400000);
    else if (KEY("agent", "watch_coalesce_ms"))
        rc = set_int(&c->watch_coalesce_ms, value, 0, 1000);
    else if (KEY("agent", "subnet_pool"))
        rc = ctl_parse_cidr(value, &c->pool_net, &c->pool_prefix);
    else if (KEY("scheduler", "vcpu_overcommit"))
        rc = set_int(&c->vcpu_overcommit, value, 1, 1024);
    else if (KEY("instances", "cluster_domain"))
        rc = set_str(c->cluster_domain, sizeof(c->cluster_domain), value);
    else if (KEY("instances", "log_tail_bytes"))
        rc = set_int(&c->log_tail_bytes, value, 1024, 16 << 20);
    else if (KEY("registry", "url"))
        rc = set_str(c->registry.url, sizeof(c->registry.url), value);
    else if (KEY("registry", "unix_socket"))
        rc = set_str(c->registry.unix_path, sizeof(c->registry.unix_path), value);
    else if (KEY("registry", "user"))
        rc = set_str(c->registry.user, sizeof(c->registry.user), value);
    else if (KEY("registry", "password_file"))
        rc = read_secret(st, name, value, c->registry.password, sizeof(c->registry.password));
    else if (KEY("registry", "password")) {
        log_warnx("config: [registry] password in the config is deprecated: put it in a 0600 "
                  "file and name it with password_file");
        rc = set_str(c->registry.password, sizeof(c->registry.password), value);
    } else if (KEY("services", "domain"))
        rc = nubo_fqdn_valid(value, false) || nubo_name_valid(value)
                 ? set_str(c->services_domain, sizeof(c->services_domain), value)
                 : -1;
    else if (KEY("ingress", "token_file"))
        rc = set_str(c->ingress_token_file, sizeof(c->ingress_token_file), value);
    else if (KEY("registry", "notification_secret_file"))
        rc = read_secret(st, name, value, c->registry_secret, sizeof(c->registry_secret));
    else if (KEY("registry", "notification_secret")) {
        log_warnx("config: [registry] notification_secret in the config is deprecated: put it "
                  "in a 0600 file and name it with notification_secret_file");
        rc = set_str(c->registry_secret, sizeof(c->registry_secret), value);
    }
#undef KEY
    if (rc == 0)
        return 1;
    if (!st->failed) {
        st->failed = true;
        if (rc == -3) /* the message is set */
            ;
        else if (rc == -2)
            nubo_error(st->err, 0, "unknown setting [%s] %s", section, name);
        else
            nubo_error(st->err, 0, "bad value '%s' for [%s] %s", value, section, name);
    }
    return 0;
}

int ctl_config_load_ini(struct ctl_config *c, const char *path, struct nubo_err *err)
{
    struct ini_state st = {c, err, false};
    int rc = ini_parse(path, ini_cb, &st);
    if (rc < 0)
        return nubo_error(err, errno, "cannot read the config %s", path);
    if (st.failed)
        return nubo_error_wrap(err, "config %s", path);
    if (rc > 0)
        return nubo_error(err, 0, "config %s: syntax error on line %d", path, rc);
    return 0;
}

int ctl_config_finish(struct ctl_config *c, struct nubo_err *err)
{
    if (c->db_path[0] == '\0')
        return nubo_error(err, 0, "no database given: pass --db FILE or set [controller] db");
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
    if (c->heartbeat_interval_ms >= c->grace_ms)
        return nubo_error(err, 0,
                          "[agent] grace_ms (%lld) must exceed heartbeat_interval_ms "
                          "(%lld)",
                          (long long)c->grace_ms, (long long)c->heartbeat_interval_ms);
    return 0;
}
