/* nubo-ingress configuration: one INI file (see nubo-ingress.ini), validated as it is read. */
#include "ingress_core.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ing_config_defaults(struct ing_config *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->metro, sizeof(c->metro), "local");
    snprintf(c->controller_url, sizeof(c->controller_url), "http://127.0.0.1:7060");
    snprintf(c->token_file, sizeof(c->token_file), "/var/lib/nubo/controller.db.ingress-token");
    snprintf(c->haproxy_bin, sizeof(c->haproxy_bin), "/usr/sbin/haproxy");
    snprintf(c->runtime_dir, sizeof(c->runtime_dir), "/run/nubo-ingress");
    snprintf(c->listen_addr, sizeof(c->listen_addr), "127.0.0.1");
    c->http_port = 80;
    c->https_port = 443;
    c->watch_timeout_ms = 30000;
    c->timeout_queue_ms = 1;
}

void ing_config_free(struct ing_config *c)
{
    free(c->nodes);
    c->nodes = NULL;
    c->n_nodes = 0;
}

const struct ing_node_reach *ing_config_node(const struct ing_config *c, const char *node)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (strcmp(c->nodes[i].node, node) == 0)
            return &c->nodes[i];
    return NULL;
}

struct load_ctx {
    struct ing_config *c;
    struct nubo_err *err;
    bool failed;
};

static int set_str(char *dst, size_t dstsz, const char *v, struct load_ctx *l, const char *key)
{
    if (strlen(v) >= dstsz) {
        nubo_error(l->err, 0, "config key %s: value longer than %zu bytes", key, dstsz - 1);
        return -1;
    }
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

static int set_int(int64_t *dst, const char *v, int64_t min, int64_t max, struct load_ctx *l,
                   const char *key)
{
    if (nubo_parse_int(v, min, max, dst, l->err) < 0)
        return nubo_error_wrap(l->err, "config key %s", key);
    return 0;
}

static int handler(void *ud, const char *sec, const char *key, const char *v)
{
    struct load_ctx *l = ud;
    struct ing_config *c = l->c;
    int64_t n;
    int r = 0;
    if (l->failed)
        return 0;
#define IS(s, k) (strcmp(sec, s) == 0 && strcmp(key, k) == 0)
    if (IS("ingress", "metro"))
        r = set_str(c->metro, sizeof(c->metro), v, l, key);
    else if (IS("ingress", "runtime_dir"))
        r = set_str(c->runtime_dir, sizeof(c->runtime_dir), v, l, key);
    else if (IS("ingress", "listen_addr"))
        r = set_str(c->listen_addr, sizeof(c->listen_addr), v, l, key);
    else if (IS("ingress", "http_port")) {
        r = set_int(&n, v, 1, 65535, l, key);
        c->http_port = (int)n;
    } else if (IS("ingress", "https_port")) {
        r = set_int(&n, v, 1, 65535, l, key);
        c->https_port = (int)n;
    } else if (IS("ingress", "watch_timeout_ms"))
        r = set_int(&c->watch_timeout_ms, v, 1000, NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS, l, key);
    else if (IS("ingress", "timeout_queue_ms"))
        r = set_int(&c->timeout_queue_ms, v, 1, 60000, l, key);
    else if (IS("controller", "url"))
        r = set_str(c->controller_url, sizeof(c->controller_url), v, l, key);
    else if (IS("controller", "socket"))
        r = set_str(c->controller_socket, sizeof(c->controller_socket), v, l, key);
    else if (IS("controller", "token_file"))
        r = set_str(c->token_file, sizeof(c->token_file), v, l, key);
    else if (IS("haproxy", "binary"))
        r = set_str(c->haproxy_bin, sizeof(c->haproxy_bin), v, l, key);
    else if (IS("tls", "cert"))
        r = set_str(c->cert_file, sizeof(c->cert_file), v, l, key);
    else if (IS("tls", "key"))
        r = set_str(c->key_file, sizeof(c->key_file), v, l, key);
    else if (IS("tls", "ca"))
        r = set_str(c->ca_file, sizeof(c->ca_file), v, l, key);
    else if (strcmp(sec, "nodes") == 0) {
        if (!nubo_name_valid(key)) {
            nubo_error(l->err, 0, "config [nodes]: %s is not a node name ([a-z0-9-], 1..63)", key);
            r = -1;
        } else if (c->n_nodes >= ING_MAX_NODES) {
            nubo_error(l->err, 0, "config [nodes]: more than %d nodes", ING_MAX_NODES);
            r = -1;
        } else {
            struct ing_node_reach nr = {0};
            snprintf(nr.node, sizeof(nr.node), "%s", key);
            if (strncmp(v, "netns:", 6) == 0 && v[6] && strlen(v + 6) <= NUBO_NAME_MAX &&
                strspn(v + 6, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
                    strlen(v + 6))
                snprintf(nr.netns, sizeof(nr.netns), "%s", v + 6);
            else if (strcmp(v, "direct") != 0) {
                nubo_error(l->err, 0,
                           "config [nodes] %s = %s: want netns:<namespace> or direct", key, v);
                r = -1;
            }
            if (r == 0) {
                struct ing_node_reach *nv = realloc(c->nodes, (c->n_nodes + 1) * sizeof(*nv));
                if (!nv) {
                    nubo_error(l->err, ENOMEM, "config [nodes]");
                    r = -1;
                } else {
                    c->nodes = nv;
                    c->nodes[c->n_nodes++] = nr;
                }
            }
        }
    } else {
        nubo_error(l->err, 0, "config: unknown key [%s] %s", sec, key);
        r = -1;
    }
#undef IS
    if (r < 0)
        l->failed = true;
    return 1;
}

int ing_config_load(const char *path, struct ing_config *c, struct nubo_err *err)
{
    struct load_ctx l = {c, err, false};
    int r = ini_parse(path, handler, &l);
    if (l.failed)
        return nubo_error_wrap(err, "%s", path);
    if (r < 0)
        return nubo_error(err, errno, "cannot read config %s", path);
    if (r > 0)
        return nubo_error(err, 0, "config %s: syntax error on line %d", path, r);
    if (!nubo_name_valid(c->metro))
        return nubo_error(err, 0, "config %s: [ingress] metro %s is not a valid name", path,
                          c->metro);
    if (!c->cert_file[0] || !c->key_file[0])
        return nubo_error(err, 0,
                          "config %s: [tls] cert and key (the metro's wildcard certificate) are "
                          "required",
                          path);
    if (c->http_port == c->https_port)
        return nubo_error(err, 0, "config %s: http_port and https_port must differ", path);
    return 0;
}
