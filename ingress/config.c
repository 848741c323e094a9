/* nubo-ingress configuration: one INI file (see nubo-ingress.ini), validated as it is read. */
#include "ingress_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int set_node(void *t, const char *key, const char *v, struct nubo_err *err);

#define C struct ing_config
static const struct nu_cfg_key ing_settings[] = {
    NU_CFG_S(C, "ingress", "metro", metro, "local"),
    NU_CFG_S(C, "ingress", "runtime_dir", runtime_dir, "/run/nubo-ingress"),
    NU_CFG_S(C, "ingress", "listen_addr", listen_addr, "127.0.0.1"),
    NU_CFG_I(C, "ingress", "http_port", http_port, 1, 65535, "80"),
    NU_CFG_I(C, "ingress", "https_port", https_port, 1, 65535, "443"),
    NU_CFG_I(C, "ingress", "watch_timeout_ms", watch_timeout_ms, 1000,
             NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS, "30000"),
    NU_CFG_I(C, "ingress", "timeout_queue_ms", timeout_queue_ms, 1, 60000, "1"),
    NU_CFG_I(C, "ingress", "wake_timeout_ms", wake_timeout_ms, 1000, 55000, "30000"),
    NU_CFG_I(C, "ingress", "traffic_interval_ms", traffic_interval_ms, 100, 60000, "500"),
    NU_CFG_S(C, "controller", "url", controller_url, "http://127.0.0.1:7060"),
    NU_CFG_S(C, "controller", "socket", controller_socket, NULL),
    NU_CFG_S(C, "controller", "ca_file", controller_ca, NULL),
    NU_CFG_S(C, "controller", "token_file", token_file, "/var/lib/nubo/controller.db.ingress-token"),
    NU_CFG_S(C, "haproxy", "binary", haproxy_bin, "/usr/sbin/haproxy"),
    NU_CFG_S(C, "tls", "cert", cert_file, NULL),
    NU_CFG_S(C, "tls", "key", key_file, NULL),
    NU_CFG_S(C, "tls", "ca", ca_file, NULL),
    NU_CFG_F("nodes", NULL, set_node, NULL), /* <node> = netns:<namespace> | direct */
    {0},
};
#undef C

void ing_config_defaults(struct ing_config *c)
{
    nu_cfg_init(ing_settings, c, sizeof(*c));
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

static int set_node(void *t, const char *key, const char *v, struct nubo_err *err)
{
    struct ing_config *c = t;
    if (!nubo_name_valid(key))
        return nubo_error(err, 0, "not a node name ([a-z0-9-], 1..63)");
    if (c->n_nodes >= ING_MAX_NODES)
        return nubo_error(err, 0, "more than %d nodes", ING_MAX_NODES);
    struct ing_node_reach nr = {0};
    snprintf(nr.node, sizeof(nr.node), "%s", key);
    if (strncmp(v, "netns:", 6) == 0 && v[6] && strlen(v + 6) <= NUBO_NAME_MAX &&
        strspn(v + 6, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
            strlen(v + 6))
        snprintf(nr.netns, sizeof(nr.netns), "%s", v + 6);
    else if (strcmp(v, "direct") != 0)
        return nubo_error(err, 0, "'%s': want netns:<namespace> or direct", v);
    struct ing_node_reach *nv = realloc(c->nodes, (c->n_nodes + 1) * sizeof(*nv));
    if (!nv)
        return nubo_error(err, ENOMEM, "out of memory");
    c->nodes = nv;
    c->nodes[c->n_nodes++] = nr;
    return 0;
}

int ing_config_load(const char *path, struct ing_config *c, struct nubo_err *err)
{
    if (nu_cfg_load(path, ing_settings, c, NULL, err) < 0)
        return -1;
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
    if (nu_http_targets_parse(&c->controllers, c->controller_url, c->controller_socket, err) < 0)
        return nubo_error_wrap(err, "config %s: [controller] url/socket", path);
    return 0;
}
