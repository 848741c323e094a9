/* The plan: frontends, backends with server slots per node, map entries and certificates,
 * derived from one watch reply. Slots are sticky: an instance keeps its slot across plans and
 * slot counts only grow, so instances coming and going change server states at runtime and
 * only a new backend, frontend, certificate or more slots than a node has need a reload. */
#include "ingress_core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

int ing_bind_port(const struct ing_config *cfg, int64_t port)
{
    if (port == 80)
        return cfg->http_port;
    if (port == 443)
        return cfg->https_port;
    return (int)port;
}

void ing_plan_drop_frontend(struct ing_plan *p, int64_t port)
{
    size_t k = 0;
    for (size_t i = 0; i < p->n_frontends; i++)
        if (p->frontends[i].port != port)
            p->frontends[k++] = p->frontends[i];
    p->n_frontends = k;
    k = 0;
    for (size_t i = 0; i < p->n_maps; i++)
        if (p->maps[i].port != port)
            p->maps[k++] = p->maps[i];
    p->n_maps = k;
}

void ing_plan_free(struct ing_plan *p)
{
    for (size_t i = 0; i < p->n_backends; i++) {
        for (size_t j = 0; j < p->backends[i].n_nodes; j++)
            free(p->backends[i].nodes[j].slots);
        free(p->backends[i].nodes);
    }
    free(p->backends);
    free(p->frontends);
    free(p->maps);
    for (size_t i = 0; i < p->n_certs; i++) {
        free(p->certs[i].pem);
        free(p->certs[i].snis);
    }
    free(p->certs);
    memset(p, 0, sizeof(*p));
}

const struct ing_backend *ing_plan_backend(const struct ing_plan *p, const char *name)
{
    if (!p)
        return NULL;
    for (size_t i = 0; i < p->n_backends; i++)
        if (strcmp(p->backends[i].name, name) == 0)
            return &p->backends[i];
    return NULL;
}

static void *grow(void *v, size_t n, size_t size)
{
    return realloc(v, (n + 1) * size);
}

static struct ing_frontend *frontend_get(struct ing_plan *p, int64_t port)
{
    for (size_t i = 0; i < p->n_frontends; i++)
        if (p->frontends[i].port == port)
            return &p->frontends[i];
    return NULL;
}

static int frontend_add(struct ing_plan *p, int64_t port, bool http, bool tls,
                        struct nubo_err *err)
{
    struct ing_frontend *nv = grow(p->frontends, p->n_frontends, sizeof(*nv));
    if (!nv)
        return nubo_error(err, ENOMEM, "plan: frontend %lld", (long long)port);
    p->frontends = nv;
    p->frontends[p->n_frontends++] = (struct ing_frontend){port, http, tls};
    return 0;
}

static bool map_has(const struct ing_plan *p, int64_t port, const char *key)
{
    for (size_t i = 0; i < p->n_maps; i++)
        if (p->maps[i].port == port && strcasecmp(p->maps[i].key, key) == 0)
            return true; /* keys are stored lowercased; DNS names compare without case */
    return false;
}

/* Names reach HAProxy's config, map files and runtime commands: only DNS characters pass. */
static bool fqdn_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= NUBO_FQDN_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

static int map_add(struct ing_plan *p, int64_t port, const char *key, const char *value,
                   struct nubo_err *err)
{
    if (!fqdn_ok(key)) {
        log_warnx("domain '%.64s' on port %lld is not a DNS name; not routed", key,
                  (long long)port);
        return 0;
    }
    if (map_has(p, port, key)) {
        log_warnx("domain %s on port %lld is claimed twice; the first service keeps it", key,
                  (long long)port);
        return 0;
    }
    struct ing_map_entry *nv = grow(p->maps, p->n_maps, sizeof(*nv));
    if (!nv)
        return nubo_error(err, ENOMEM, "plan: map entry %s", key);
    p->maps = nv;
    struct ing_map_entry *e = &p->maps[p->n_maps++];
    memset(e, 0, sizeof(*e));
    e->port = port;
    snprintf(e->key, sizeof(e->key), "%s", key);
    for (char *c = e->key; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    snprintf(e->value, sizeof(e->value), "%s", value);
    return 0;
}

static struct ing_node_slots *node_slots_get(struct ing_backend *b, const char *node)
{
    for (size_t i = 0; i < b->n_nodes; i++)
        if (strcmp(b->nodes[i].node, node) == 0)
            return &b->nodes[i];
    return NULL;
}

/* Copy prev's nodes and slots (emptied), so slots stay where they were. */
static int backend_seed(struct ing_backend *b, const struct ing_backend *prev,
                        struct nubo_err *err)
{
    if (!prev || prev->n_nodes == 0)
        return 0;
    b->nodes = calloc(prev->n_nodes, sizeof(*b->nodes));
    if (!b->nodes)
        return nubo_error(err, ENOMEM, "plan: backend %s", b->name);
    for (size_t i = 0; i < prev->n_nodes; i++) {
        struct ing_node_slots *ns = &b->nodes[b->n_nodes++];
        *ns = prev->nodes[i];
        ns->slots = calloc(ns->n_slots, sizeof(*ns->slots));
        if (!ns->slots) {
            ns->n_slots = 0;
            return nubo_error(err, ENOMEM, "plan: backend %s", b->name);
        }
    }
    return 0;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = ING_MIN_SLOTS;
    while (p < n)
        p *= 2;
    return p;
}

/* Place the service's backends on node slots: an instance already in a slot of prev keeps it. */
static int backend_place(const struct ing_config *cfg, struct ing_backend *b,
                         const struct ing_backend *prev, const struct nubo_ingress_service *s,
                         struct nubo_err *err)
{
    if (backend_seed(b, prev, err) < 0)
        return -1;
    /* Every node of the metro starts with slots, so the first instances on a node join at
     * runtime instead of reloading for a node new to the backend. */
    for (size_t n = 0; n < cfg->n_nodes; n++) {
        if (node_slots_get(b, cfg->nodes[n].node))
            continue;
        struct ing_node_slots *nv = grow(b->nodes, b->n_nodes, sizeof(*nv));
        if (!nv)
            return nubo_error(err, ENOMEM, "plan: backend %s", b->name);
        b->nodes = nv;
        struct ing_node_slots *ns = &b->nodes[b->n_nodes];
        memset(ns, 0, sizeof(*ns));
        snprintf(ns->node, sizeof(ns->node), "%s", cfg->nodes[n].node);
        snprintf(ns->netns, sizeof(ns->netns), "%s", cfg->nodes[n].netns);
        if (!(ns->slots = calloc(ING_MIN_SLOTS, sizeof(*ns->slots))))
            return nubo_error(err, ENOMEM, "plan: backend %s", b->name);
        ns->n_slots = ING_MIN_SLOTS;
        b->n_nodes++;
    }
    /* pass 0: running instances that had a slot; pass 1: instances asleep (standby, waking)
     * that had one keep it while it is free; pass 2: the running rest into free slots
     * (growing). Running first, so a (bogus) entry listing an instance twice settles the same
     * way every time. */
    bool *placed = calloc(s->n_backends + 1, sizeof(bool));
    if (!placed)
        return nubo_error(err, ENOMEM, "plan: backend %s", b->name);
    int rc = 0;
    for (int pass = 0; pass < 3 && rc == 0; pass++) {
        for (size_t i = 0; i < s->n_backends && rc == 0; i++) {
            const struct nubo_ingress_backend *ib = &s->backends[i];
            if (placed[i])
                continue;
            bool asleep = ib->state == NUBO_STATE_STANDBY || ib->state == NUBO_STATE_STARTING;
            if ((ib->state != NUBO_STATE_RUNNING && ib->state != NUBO_STATE_DRAINING &&
                 !asleep) ||
                (asleep && pass == 2)) {
                placed[i] = true; /* no slot; one asleep keeps its own (pass 1) only */
                continue;
            }
            if (asleep != (pass == 1) && pass < 2)
                continue;
            const struct ing_node_reach *nr = ing_config_node(cfg, ib->node);
            if (!nr) {
                if (pass == 0)
                    log_warnx("service %s: instance %s is on node %s, which [nodes] does not "
                              "list; it gets no traffic",
                              s->name, ib->name, ib->node);
                placed[i] = true;
                continue;
            }
            struct ing_node_slots *ns = node_slots_get(b, ib->node);
            const struct ing_node_slots *pns = NULL;
            if (prev)
                for (size_t k = 0; k < prev->n_nodes; k++)
                    if (strcmp(prev->nodes[k].node, ib->node) == 0)
                        pns = &prev->nodes[k];
            size_t at = SIZE_MAX;
            if (pass < 2) {
                if (!pns || !ns)
                    continue;
                /* first match: a (bogus) duplicate entry then lands where it did before */
                for (size_t k = 0; k < pns->n_slots && at == SIZE_MAX; k++)
                    if (strcmp(pns->slots[k].instance, ib->instance) == 0 ||
                        strcmp(pns->slots[k].sleeper, ib->instance) == 0)
                        at = k;
                if (at == SIZE_MAX || ns->slots[at].instance[0] || ns->slots[at].sleeper[0])
                    continue;
                if (asleep) {
                    snprintf(ns->slots[at].sleeper, sizeof(ns->slots[at].sleeper), "%s",
                             ib->instance);
                    placed[i] = true;
                    continue;
                }
            } else {
                if (!ns) {
                    struct ing_node_slots *nv = grow(b->nodes, b->n_nodes, sizeof(*nv));
                    if (!nv) {
                        rc = nubo_error(err, ENOMEM, "plan: backend %s", b->name);
                        break;
                    }
                    b->nodes = nv;
                    ns = &b->nodes[b->n_nodes++];
                    memset(ns, 0, sizeof(*ns));
                    snprintf(ns->node, sizeof(ns->node), "%s", nr->node);
                    snprintf(ns->netns, sizeof(ns->netns), "%s", nr->netns);
                }
                /* a free slot no instance asleep keeps; else one it keeps (its wake on a
                 * silent connection is lost, but growing would reload HAProxy, which ends every
                 * connection of the old worker within hard-stop-after) */
                for (size_t k = 0; k < ns->n_slots && at == SIZE_MAX; k++)
                    if (!ns->slots[k].instance[0] && !ns->slots[k].sleeper[0])
                        at = k;
                for (size_t k = 0; k < ns->n_slots && at == SIZE_MAX; k++)
                    if (!ns->slots[k].instance[0])
                        at = k;
                if (at == SIZE_MAX) {
                    size_t n = pow2_at_least(ns->n_slots + 1);
                    struct ing_slot *nv = realloc(ns->slots, n * sizeof(*nv));
                    if (!nv) {
                        rc = nubo_error(err, ENOMEM, "plan: backend %s", b->name);
                        break;
                    }
                    memset(nv + ns->n_slots, 0, (n - ns->n_slots) * sizeof(*nv));
                    at = ns->n_slots;
                    ns->slots = nv;
                    ns->n_slots = n;
                }
            }
            struct ing_slot *sl = &ns->slots[at];
            sl->sleeper[0] = '\0';
            snprintf(sl->instance, sizeof(sl->instance), "%s", ib->instance);
            snprintf(sl->ip, sizeof(sl->ip), "%s", ib->ip);
            sl->draining = ib->state == NUBO_STATE_DRAINING;
            placed[i] = true;
        }
    }
    free(placed);
    return rc;
}

static int cmp_fe(const void *a, const void *b)
{
    const struct ing_frontend *x = a, *y = b;
    return (x->port > y->port) - (x->port < y->port);
}
static int cmp_be(const void *a, const void *b)
{
    return strcmp(((const struct ing_backend *)a)->name, ((const struct ing_backend *)b)->name);
}
static int cmp_map(const void *a, const void *b)
{
    const struct ing_map_entry *x = a, *y = b;
    if (x->port != y->port)
        return (x->port > y->port) - (x->port < y->port);
    return strcmp(x->key, y->key);
}
static int cmp_cert(const void *a, const void *b)
{
    return strcmp(((const struct ing_cert_file *)a)->uuid, ((const struct ing_cert_file *)b)->uuid);
}

static int plan_service(const struct ing_config *cfg, const struct nubo_ingress_service *s,
                        const struct ing_plan *prev, struct ing_plan *p, struct nubo_err *err)
{
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct nubo_ingress_port *pt = &s->ports[i];
        bool http = pt->handlers & NUBO_HANDLER_HTTP, tls = pt->handlers & NUBO_HANDLER_TLS;
        bool redirect = pt->handlers & NUBO_HANDLER_REDIRECT;
        if (!http && !tls) {
            log_warnx("service %s: port %lld has neither http nor tls; skipped (raw TCP cannot be "
                      "routed by name)",
                      s->name, (long long)pt->port);
            continue;
        }
        struct ing_frontend *fe = frontend_get(p, pt->port);
        if (!fe) {
            if (frontend_add(p, pt->port, http, tls, err) < 0)
                return -1;
        } else if (fe->http != http || fe->tls != tls) {
            log_warnx("service %s: port %lld wants handlers another service's use of the port "
                      "contradicts; skipped",
                      s->name, (long long)pt->port);
            continue;
        }
        char be[ING_BE_NAME_MAX];
        if (redirect) {
            snprintf(be, sizeof(be), "nubo_redirect");
        } else {
            snprintf(be, sizeof(be), "be_%s_%lld", s->uuid, (long long)pt->port);
            if (ing_plan_backend(p, be)) {
                log_warnx("service %s: listed twice with port %lld; the first entry counts",
                          s->uuid, (long long)pt->port);
                continue;
            }
            struct ing_backend *nv = grow(p->backends, p->n_backends, sizeof(*nv));
            if (!nv)
                return nubo_error(err, ENOMEM, "plan: service %s", s->name);
            p->backends = nv;
            struct ing_backend *b = &p->backends[p->n_backends++];
            memset(b, 0, sizeof(*b));
            snprintf(b->name, sizeof(b->name), "%s", be);
            snprintf(b->service, sizeof(b->service), "%s", s->uuid);
            snprintf(b->service_name, sizeof(b->service_name), "%s",
                     nubo_name_valid(s->name) ? s->name : "-");
            b->port = pt->port;
            b->dest_port = pt->destination_port;
            b->hard_limit = s->hard_limit;
            b->soft_limit = s->soft_limit;
            b->http = http;
            for (size_t k = 0; k < s->n_backends; k++) {
                b->n_standby += s->backends[k].state == NUBO_STATE_STANDBY;
                b->n_starting += s->backends[k].state == NUBO_STATE_STARTING;
                b->n_draining += s->backends[k].state == NUBO_STATE_DRAINING;
            }
            if (backend_place(cfg, b, ing_plan_backend(prev, be), s, err) < 0)
                return -1;
        }
        for (size_t d = 0; d < s->n_domains; d++)
            if (map_add(p, pt->port, s->domains[d].fqdn, be, err) < 0)
                return -1;
    }
    return 0;
}

/* "a.example.com b.example.com": the routable domains whose certificate is uuid, each once;
 * NULL when none (or out of memory). */
static char *cert_snis(const struct nubo_ingress_watch_resp *w, const char *uuid)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < w->n_services; i++)
        for (size_t d = 0; d < w->services[i].n_domains; d++) {
            const struct nubo_ingress_domain *dom = &w->services[i].domains[d];
            if (strcmp(dom->certificate, uuid) != 0 || !fqdn_ok(dom->fqdn))
                continue;
            fprintf(f, "%s%s", n++ ? " " : "", dom->fqdn);
        }
    if (fclose(f) != 0 || n == 0) {
        free(buf);
        return NULL;
    }
    for (char *c = buf; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    return buf;
}

int ing_plan_build(const struct ing_config *cfg, const struct nubo_ingress_watch_resp *w,
                   const struct ing_plan *prev, struct ing_plan *out, struct nubo_err *err)
{
    struct ing_plan p = {0};
    /* 80 and 443 always listen: a name without a service answers "no route", not a refusal. */
    if (frontend_add(&p, 80, true, false, err) < 0 || frontend_add(&p, 443, true, true, err) < 0)
        goto fail;
    for (size_t i = 0; w && i < w->n_services; i++)
        if (plan_service(cfg, &w->services[i], prev, &p, err) < 0)
            goto fail;
    for (size_t i = 0; w && i < w->n_certificates; i++) {
        const struct nubo_ingress_cert *c = &w->certificates[i];
        if (!c->chain || !c->pkey)
            continue;
        /* A user certificate answers only for the domains that name it: without SNI filters
         * HAProxy would pick it for every name it carries (another tenant's, the metro's). */
        char *snis = cert_snis(w, c->uuid);
        if (snis == NULL) {
            log_warnx("certificate %s: no domain of this metro names it; not served", c->uuid);
            continue;
        }
        struct ing_cert_file *nv = grow(p.certs, p.n_certs, sizeof(*nv));
        if (!nv) {
            free(snis);
            nubo_error(err, ENOMEM, "plan: certificate %s", c->uuid);
            goto fail;
        }
        p.certs = nv;
        struct ing_cert_file *cf = &p.certs[p.n_certs++];
        memset(cf, 0, sizeof(*cf));
        cf->snis = snis;
        snprintf(cf->uuid, sizeof(cf->uuid), "%s", c->uuid);
        size_t lc = strlen(c->chain), lk = strlen(c->pkey);
        cf->pem = malloc(lc + lk + 3);
        if (!cf->pem) {
            nubo_error(err, ENOMEM, "plan: certificate %s", c->uuid);
            goto fail;
        }
        snprintf(cf->pem, lc + lk + 3, "%s%s%s%s", c->chain,
                 lc && c->chain[lc - 1] != '\n' ? "\n" : "", c->pkey,
                 lk && c->pkey[lk - 1] != '\n' ? "\n" : "");
    }
    /* Backends of services that vanished keep nothing; the shape changes and HAProxy reloads. */
    qsort(p.frontends, p.n_frontends, sizeof(*p.frontends), cmp_fe);
    if (p.n_backends)
        qsort(p.backends, p.n_backends, sizeof(*p.backends), cmp_be);
    if (p.n_maps)
        qsort(p.maps, p.n_maps, sizeof(*p.maps), cmp_map);
    if (p.n_certs)
        qsort(p.certs, p.n_certs, sizeof(*p.certs), cmp_cert);
    *out = p;
    return 0;
fail:
    ing_plan_free(&p);
    return -1;
}
