/* HAProxy configuration text, map files and crt-list for a plan. Host (HTTP) or SNI (TCP+TLS)
 * names route through one map per frontend, so a domain is a runtime `add map`; servers are
 * per-node slots whose address and state the runtime API sets. */
#include "ingress_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ing_map_path(const struct ing_config *cfg, int64_t port, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/maps/fe_%lld.map", cfg->runtime_dir, (long long)port);
}

static void render_frontend(FILE *f, const struct ing_config *cfg, const struct ing_frontend *fe)
{
    char map[ING_PATH_MAX + 64];
    ing_map_path(cfg, fe->port, map, sizeof(map));
    fprintf(f, "frontend fe_%lld\n", (long long)fe->port);
    fprintf(f, "    mode %s\n", fe->http ? "http" : "tcp");
    fprintf(f, "    bind %s:%d", cfg->listen_addr, ing_bind_port(cfg, fe->port));
    if (fe->tls)
        fprintf(f, " ssl crt-list %s/crt-list%s", cfg->runtime_dir,
                fe->http ? " alpn h2,http/1.1" : "");
    fputc('\n', f);
    /* scale-to-zero: the client connections open to each group (keep-alive ones between
     * requests hold no server session), by the backend their SNI names (activator.c) */
    if (fe->http && fe->tls)
        fprintf(f, "    tcp-request session track-sc2 ssl_fc_sni,lower,map(%s) table %s\n", map,
                ING_CONNS_TABLE);
    /* scale-to-zero of TCP ports: in a TCP tunnel HAProxy 2.6 adds a session's bytes to its
     * server's bin/bout only when the session ends, unless contstats (then at least every 5 s):
     * the activator's report and a silent connection's wake read them (activator.c) */
    if (!fe->http)
        fprintf(f, "    option contstats\n");
    if (fe->http)
        fprintf(f, "    use_backend %%[req.hdr(host),field(1,:),lower,map(%s,nubo_no_route)]\n",
                map);
    else
        fprintf(f, "    use_backend %%[ssl_fc_sni,lower,map(%s,nubo_no_route_tcp)]\n", map);
    fputc('\n', f);
}

static void render_backend(FILE *f, const struct ing_config *cfg, const struct ing_backend *b,
                           bool shape)
{
    fprintf(f, "# service %s (%s): public port %lld -> %lld; soft_limit %lld, hard_limit %lld\n",
            b->service_name, b->service, (long long)b->port, (long long)b->dest_port,
            (long long)b->soft_limit, (long long)b->hard_limit);
    fprintf(f, "backend %s\n", b->name);
    fprintf(f, "    mode %s\n", b->http ? "http" : "tcp");
    fprintf(f, "    balance roundrobin\n");
    if (b->http)
        fprintf(f, "    retry-on conn-failure empty-response\n");
    else /* a silent TCP connection is kept (the platform keeps them), within this bound */
        fprintf(f, "    timeout tunnel %s\n", ING_TCP_TUNNEL_TIMEOUT);
    for (size_t i = 0; i < b->n_nodes; i++) {
        const struct ing_node_slots *ns = &b->nodes[i];
        for (size_t k = 0; k < ns->n_slots; k++) {
            const struct ing_slot *sl = &ns->slots[k];
            fprintf(f, "    server %s-%zu ", ns->node, k + 1);
            if (shape)
                fprintf(f, "<addr>");
            else
                fprintf(f, "%s", sl->instance[0] ? sl->ip : "0.0.0.0");
            fprintf(f, ":%lld", (long long)b->dest_port);
            if (ns->netns[0])
                fprintf(f, " namespace %s", ns->netns);
            fprintf(f, " maxconn %lld", (long long)b->hard_limit);
            if (shape)
                fprintf(f, " <state>");
            else if (!sl->instance[0] || sl->draining)
                fprintf(f, " disabled"); /* maintenance: no new connections */
            fputc('\n', f);
        }
    }
    /* used only while no instance server is up: requests and connections wait there for a
     * wake */
    char sock[ING_PATH_MAX + 64];
    ing_act_sock_path(cfg, b->name, sock, sizeof(sock));
    fprintf(f, "    server nubo-activator unix@%s backup\n", sock);
    fputc('\n', f);
    /* where the activator splices a woken connection back in, to the current worker
     * (activator.c) */
    ing_act_in_path(cfg, b->name, sock, sizeof(sock));
    fprintf(f, "frontend %s_in\n    mode %s\n%s    bind unix@%s\n    default_backend %s\n\n",
            b->name, b->http ? "http" : "tcp", b->http ? "" : "    option contstats\n", sock,
            b->name);
}

char *ing_render_config(const struct ing_config *cfg, const struct ing_plan *p, bool shape)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "# nubo-ingress, metro %s: generated on every change, do not edit\n", cfg->metro);
    fprintf(f, "global\n");
    fprintf(f, "    master-worker\n");
    fprintf(f, "    stats socket %s/runtime.sock mode 600 level admin expose-fd listeners\n",
            cfg->runtime_dir);
    fprintf(f, "    stats timeout 10s\n");
    fprintf(f, "    hard-stop-after 60s\n");
    fprintf(f, "    ssl-default-bind-options ssl-min-ver TLSv1.2\n");
    fprintf(f, "\n");
    fprintf(f, "defaults\n");
    fprintf(f, "    timeout connect 5s\n");
    fprintf(f, "    timeout client 60s\n");
    fprintf(f, "    timeout server 60s\n");
    fprintf(f, "    timeout http-request 10s\n");
    fprintf(f, "    timeout http-keep-alive 10s\n");
    /* The platform fails requests past hard_limit instead of queueing them. */
    fprintf(f, "    timeout queue %lld\n", (long long)cfg->timeout_queue_ms);
    fprintf(f, "    retries 3\n");
    fprintf(f, "    option redispatch 1\n");
    fprintf(f, "\n");
    for (size_t i = 0; i < p->n_certs; i++) {
        char hex[NUBO_SHA256_HEX_LEN + 1];
        nubo_sha256_hex(p->certs[i].pem, strlen(p->certs[i].pem), hex);
        fprintf(f, "# certificate %s sha256 %s for %s\n", p->certs[i].uuid, hex,
                p->certs[i].snis);
    }
    if (p->n_certs)
        fputc('\n', f);
    for (size_t i = 0; i < p->n_frontends; i++)
        render_frontend(f, cfg, &p->frontends[i]);
    fprintf(f, "backend nubo_no_route\n");
    fprintf(f, "    mode http\n");
    fprintf(f, "    http-request return status 503 content-type text/plain string \"no service "
               "for this host\"\n\n");
    fprintf(f, "backend %s\n", ING_CONNS_TABLE);
    fprintf(f, "    stick-table type string len %d size 100k expire 10m store conn_cur\n\n",
            ING_BE_NAME_MAX);
    fprintf(f, "backend nubo_no_route_tcp\n");
    fprintf(f, "    mode tcp\n");
    fprintf(f, "    tcp-request content reject\n\n");
    fprintf(f, "backend nubo_redirect\n");
    fprintf(f, "    mode http\n");
    if (cfg->https_port == 443)
        fprintf(f, "    http-request redirect location "
                   "https://%%[req.hdr(host),field(1,:)]%%[capture.req.uri] code 301\n\n");
    else
        fprintf(f, "    http-request redirect location "
                   "https://%%[req.hdr(host),field(1,:)]:%d%%[capture.req.uri] code 301\n\n",
                cfg->https_port);
    for (size_t i = 0; i < p->n_backends; i++)
        render_backend(f, cfg, &p->backends[i], shape);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *ing_render_map(const struct ing_plan *p, int64_t port)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    fprintf(f, "# nubo-ingress: domain -> backend for public port %lld\n", (long long)port);
    for (size_t i = 0; i < p->n_maps; i++)
        if (p->maps[i].port == port)
            fprintf(f, "%s %s\n", p->maps[i].key, p->maps[i].value);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

char *ing_render_crt_list(const struct ing_config *cfg, const struct ing_plan *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    /* The first certificate is the default: the metro's wildcard. */
    fprintf(f, "%s/certs/metro.pem\n", cfg->runtime_dir);
    /* A user certificate only for its own domains (SNI filters): never picked by HAProxy for a
     * name it merely carries, whatever its key type. */
    for (size_t i = 0; i < p->n_certs; i++)
        fprintf(f, "%s/certs/%s.pem %s\n", cfg->runtime_dir, p->certs[i].uuid, p->certs[i].snis);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The activator's unix sockets per backend: HAProxy's config (here) points at them and the
 * activator (activator.c) listens on them. */
void ing_act_sock_path(const struct ing_config *cfg, const char *be, char *out, size_t outsz)
{
    /* short and fixed-length: unix socket paths are bounded (108 bytes) */
    char hex[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(be, strlen(be), hex);
    snprintf(out, outsz, "%s/act/%.16s.sock", cfg->runtime_dir, hex);
}

void ing_act_in_path(const struct ing_config *cfg, const char *be, char *out, size_t outsz)
{
    char hex[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(be, strlen(be), hex);
    snprintf(out, outsz, "%s/act/%.16s.in.sock", cfg->runtime_dir, hex);
}
