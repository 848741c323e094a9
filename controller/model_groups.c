/* Service groups in the working set: the group a request names, the rules a group must keep
 * (domains and public ports per model_domains.c, certificates that cover them, limits), and
 * their changes, each committed before the working set follows. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

/* ---- default names: <word>-<word>-<8 random> ------------------------------------------- */

static const char *const words_a[] = {
    "young",  "small",  "quiet",  "bold",   "calm",  "dark",   "bright", "cold",   "warm",
    "late",   "early",  "wild",   "gentle", "swift", "proud",  "still",  "silent", "misty",
    "sunny",  "rapid",  "lucky",  "clever", "brave", "fancy",  "green",  "blue",   "amber",
    "golden", "silver", "hidden", "lively", "happy", "frosty", "rustic", "humble", "noble",
};
static const char *const words_b[] = {
    "night",  "darkness", "river", "forest", "meadow", "stone", "cloud",    "wave",    "breeze",
    "dawn",   "sky",      "field", "flower", "leaf",   "lake",  "moon",     "star",    "sun",
    "rain",   "snow",     "fire",  "frost",  "hill",   "pine",  "shore",    "thunder", "brook",
    "violet", "wood",     "bird",  "smoke",  "grass",  "sea",   "mountain", "water",   "glade",
};

static void random_group_name(char out[NUBO_NAME_MAX + 1])
{
    uint32_t r[2];
    nubo_random_bytes(r, sizeof(r));
    char rnd[9];
    nubo_random_alnum(rnd, 8);
    snprintf(out, NUBO_NAME_MAX + 1, "%s-%s-%s",
             words_a[r[0] % (sizeof(words_a) / sizeof(*words_a))],
             words_b[r[1] % (sizeof(words_b) / sizeof(*words_b))], rnd);
}

/* ---- the working set ------------------------------------------------------------------ */

struct ctl_svc *ctl_svc_find(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                             const char *name)
{
    if (uuid && uuid[0]) {
        struct ctl_svc *g = ctl_map_get(&ctx->svcs, uuid);
        return g && strcmp(g->row.owner, u->name) == 0 ? g : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), u->name, name ? name : "");
    return ctl_map_get(&ctx->svc_names, key);
}

struct ctl_svc *ctl_svc_add(struct ctl_ctx *ctx, const struct ctl_svc_row *row)
{
    struct ctl_svc *g = xcalloc(1, sizeof(*g));
    g->row = *row;
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), row->owner, row->name);
    ctl_map_put(&ctx->svcs, row->uuid, g);
    ctl_map_put(&ctx->svc_names, key, g);
    for (size_t i = 0; i < row->n_domains; i++)
        ctl_map_put(&ctx->svc_fqdns, row->domains[i].fqdn, g);
    return g;
}

void ctl_svc_forget(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), g->row.owner, g->row.name);
    ctl_map_del(&ctx->svcs, g->row.uuid);
    ctl_map_del(&ctx->svc_names, key);
    for (size_t i = 0; i < g->row.n_domains; i++)
        if (ctl_map_get(&ctx->svc_fqdns, g->row.domains[i].fqdn) == g)
            ctl_map_del(&ctx->svc_fqdns, g->row.domains[i].fqdn);
    for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next)
        in->svc = NULL;
    free(g);
}

void ctl_svc_link(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    if (in->row.service_group[0] == '\0' || in->svc)
        return;
    struct ctl_svc *g = ctl_map_get(&ctx->svcs, in->row.service_group);
    if (g == NULL) {
        log_warnx("instance %s: its service group %s is unknown", in->row.uuid,
                  in->row.service_group);
        return;
    }
    in->svc = g;
    in->svc_prev = NULL;
    in->svc_next = g->inst_head;
    if (g->inst_head)
        g->inst_head->svc_prev = in;
    g->inst_head = in;
    g->n_instances++;
}

void ctl_svc_unlink(struct ctl_instance *in)
{
    struct ctl_svc *g = in->svc;
    if (g == NULL)
        return;
    if (in->svc_prev)
        in->svc_prev->svc_next = in->svc_next;
    else
        g->inst_head = in->svc_next;
    if (in->svc_next)
        in->svc_next->svc_prev = in->svc_prev;
    g->n_instances--;
    in->svc = NULL;
    in->svc_prev = in->svc_next = NULL;
}

size_t ctl_svc_dest_ports(const struct ctl_svc *g, int64_t *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < g->row.n_ports && n < max; i++) {
        const struct nubo_ingress_port *p = &g->row.ports[i];
        if (p->handlers & NUBO_HANDLER_REDIRECT)
            continue; /* answered by the ingress itself */
        bool dup = false;
        for (size_t k = 0; k < n; k++)
            dup = dup || out[k] == p->destination_port;
        if (!dup)
            out[n++] = p->destination_port;
    }
    return n;
}

/* The instances of g need new assignments (their service ports changed). */
static void svc_reassign(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
        free(in->assign_json);
        in->assign_json = NULL;
        if (in->node)
            ctl_node_bump(ctx, in->node);
    }
}

/* ---- building groups ------------------------------------------------------------------ */

static bool has_tls(const struct ctl_svc_row *r)
{
    for (size_t i = 0; i < r->n_ports; i++)
        if (r->ports[i].handlers & NUBO_HANDLER_TLS)
            return true;
    return false;
}

/* The fqdn a domain request names in metro. */
static int domain_fqdn(struct ctl_ctx *ctx, const struct nubo_svc_domain_req *d, const char *metro,
                       char out[NUBO_FQDN_MAX + 1], struct nubo_err *err)
{
    if (d->is_fqdn) {
        snprintf(out, NUBO_FQDN_MAX + 1, "%s", d->name);
        return 0;
    }
    if (nubo_snprintf(out, NUBO_FQDN_MAX + 1, "%s.%s.%s", d->name, metro,
                      ctx->cfg.services_domain) < 0)
        return nubo_error_http(err, 400, "domain '%s': longer than %d bytes", d->name,
                               NUBO_FQDN_MAX);
    return 0;
}

/* Whether the metro wildcard *.<metro>.<domain> covers fqdn. */
static bool under_metro(struct ctl_ctx *ctx, const char *metro, const char *fqdn)
{
    char cn[NUBO_FQDN_MAX + 3];
    snprintf(cn, sizeof(cn), "*.%s.%s", metro, ctx->cfg.services_domain);
    return nubo_cn_matches(cn, fqdn);
}

/* Resolve one domain of group row (uuid/owner/metro/ports set) into dom. self = the group being
 * changed (its own domains do not conflict), NULL for a new one. */
static int resolve_domain(struct ctl_ctx *ctx, const struct ctl_svc_row *row,
                          const struct ctl_svc *self, const struct nubo_svc_domain_req *d,
                          struct ctl_svc_domain *dom, struct nubo_err *err)
{
    memset(dom, 0, sizeof(*dom));
    if (domain_fqdn(ctx, d, row->metro, dom->fqdn, err) < 0)
        return -1;
    if (ctl_domain_check(ctx, row->owner, row->metro, dom->fqdn, self, err) < 0)
        return -1;
    if (d->cert_uuid[0] || d->cert_name[0]) {
        struct ctl_cert *c = ctl_cert_find(ctx, row->owner, d->cert_uuid, d->cert_name);
        if (c == NULL)
            return nubo_error_http(err, 404,
                                   "certificate %s not found; upload it first (POST "
                                   "/v1/certificates)",
                                   d->cert_uuid[0] ? d->cert_uuid : d->cert_name);
        if (!nubo_cn_matches(c->row.cn, dom->fqdn))
            return nubo_error_http(err, 400,
                                   "certificate %s (cn %s) does not cover the domain %s; use a "
                                   "certificate for it",
                                   c->row.name, c->row.cn, dom->fqdn);
        memcpy(dom->cert, c->row.uuid, sizeof(dom->cert));
        return 0;
    }
    if (under_metro(ctx, row->metro, dom->fqdn))
        return 0; /* the metro's wildcard certificate */
    /* a custom domain: the owner's certificate whose cn covers it */
    ctl_map_foreach(&ctx->certs, e)
    {
        struct ctl_cert *c = e->val;
        if (strcmp(c->row.owner, row->owner) == 0 && nubo_cn_matches(c->row.cn, dom->fqdn)) {
            memcpy(dom->cert, c->row.uuid, sizeof(dom->cert));
            return 0;
        }
    }
    if (has_tls(row))
        return nubo_error_http(err, 400,
                               "no certificate covers the domain %s; upload one (POST "
                               "/v1/certificates) or use a name under .%s.%s",
                               dom->fqdn, row->metro, ctx->cfg.services_domain);
    return 0;
}

static bool name_used(struct ctl_ctx *ctx, const char *owner, const char *name)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), owner, name);
    return ctl_map_get(&ctx->svc_names, key) != NULL;
}

int ctl_svc_build(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                  const struct nubo_svc_create_req *req, const char *metro, bool persistent,
                  struct ctl_svc_row *row, struct nubo_err *err)
{
    memset(row, 0, sizeof(*row));
    nubo_uuid_new(row->uuid);
    snprintf(row->owner, sizeof(row->owner), "%s", u->name);
    snprintf(row->metro, sizeof(row->metro), "%s", metro);
    row->created_at_us = nubo_now_us();
    row->persistent = persistent;
    row->soft_limit = req->soft_limit;
    row->hard_limit = req->hard_limit;
    memcpy(row->ports, req->ports, req->n_ports * sizeof(req->ports[0]));
    row->n_ports = req->n_ports;
    for (size_t i = 0; i < req->n_ports; i++)
        if (ctl_public_port_check(ctx, req->ports[i].port, err) < 0)
            return -1;
    if (req->name[0]) {
        if (name_used(ctx, u->name, req->name))
            return nubo_error_http(err, 409,
                                   "a service group named '%s' already exists; choose another "
                                   "name",
                                   req->name);
        memcpy(row->name, req->name, sizeof(row->name));
    } else {
        int tries = 0;
        do
            random_group_name(row->name);
        while (name_used(ctx, u->name, row->name) && ++tries < 20);
    }
    if (!req->has_domains) {
        struct nubo_svc_domain_req d = {0};
        memcpy(d.name, row->name, sizeof(row->name));
        if (resolve_domain(ctx, row, NULL, &d, &row->domains[0], err) < 0)
            return -1;
        row->n_domains = 1;
        return 0;
    }
    for (size_t i = 0; i < req->n_domains; i++) {
        if (resolve_domain(ctx, row, NULL, &req->domains[i], &row->domains[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(row->domains[k].fqdn, row->domains[i].fqdn) == 0)
                return nubo_error_http(err, 400, "domains: %s is listed twice",
                                       row->domains[i].fqdn);
        row->n_domains = i + 1;
    }
    return 0;
}

int ctl_svc_cmp(const void *a, const void *b)
{
    const struct ctl_svc *x = *(struct ctl_svc *const *)a, *y = *(struct ctl_svc *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

const char *ctl_default_metro(struct ctl_ctx *ctx)
{
    const char *best = NULL;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if (best == NULL || strcmp(n->row.metro, best) < 0)
            best = n->row.metro;
    }
    return best;
}

/* Apply one PATCH operation to a copy of g's row. */
static int apply_patch(struct ctl_ctx *ctx, const struct ctl_svc *g, const struct nubo_svc_patch *p,
                       struct ctl_svc_row *row, struct nubo_err *err)
{
    switch (p->prop) {
    case NUBO_SVC_PROP_SOFT_LIMIT:
        row->soft_limit = p->limit;
        break;
    case NUBO_SVC_PROP_HARD_LIMIT:
        row->hard_limit = p->limit;
        break;
    case NUBO_SVC_PROP_SERVICES:
        for (size_t i = 0; p->op != NUBO_SVC_OP_DEL && i < p->n_ports; i++)
            if (ctl_public_port_check(ctx, p->ports[i].port, err) < 0)
                return -1;
        if (p->op == NUBO_SVC_OP_SET) {
            memcpy(row->ports, p->ports, p->n_ports * sizeof(p->ports[0]));
            row->n_ports = p->n_ports;
        } else if (p->op == NUBO_SVC_OP_ADD) {
            for (size_t i = 0; i < p->n_ports; i++) {
                for (size_t k = 0; k < row->n_ports; k++)
                    if (row->ports[k].port == p->ports[i].port)
                        return nubo_error_http(err, 409,
                                               "port %lld is already published by %s; del it "
                                               "first or use set",
                                               (long long)p->ports[i].port, row->name);
                if (row->n_ports >= NUBO_SVC_MAX_PORTS)
                    return nubo_error_http(err, 400, "a service group publishes at most %d ports",
                                           NUBO_SVC_MAX_PORTS);
                row->ports[row->n_ports++] = p->ports[i];
            }
        } else {
            for (size_t i = 0; i < p->n_ports; i++) {
                size_t k = 0;
                while (k < row->n_ports && row->ports[k].port != p->ports[i].port)
                    k++;
                if (k == row->n_ports)
                    return nubo_error_http(err, 404, "port %lld is not published by %s",
                                           (long long)p->ports[i].port, row->name);
                memmove(&row->ports[k], &row->ports[k + 1],
                        (row->n_ports - k - 1) * sizeof(row->ports[0]));
                row->n_ports--;
            }
        }
        if (row->n_ports == 0)
            return nubo_error_http(err, 400,
                                   "a service group needs at least one published port; delete "
                                   "the group instead");
        break;
    case NUBO_SVC_PROP_DOMAINS: {
        if (p->op == NUBO_SVC_OP_SET)
            row->n_domains = 0;
        for (size_t i = 0; i < p->n_domains; i++) {
            char fqdn[NUBO_FQDN_MAX + 1];
            if (domain_fqdn(ctx, &p->domains[i], row->metro, fqdn, err) < 0)
                return -1;
            size_t k = 0;
            while (k < row->n_domains && strcmp(row->domains[k].fqdn, fqdn) != 0)
                k++;
            if (p->op == NUBO_SVC_OP_DEL) {
                if (k == row->n_domains)
                    return nubo_error_http(err, 404, "domain %s is not a domain of %s", fqdn,
                                           row->name);
                memmove(&row->domains[k], &row->domains[k + 1],
                        (row->n_domains - k - 1) * sizeof(row->domains[0]));
                row->n_domains--;
                continue;
            }
            if (k < row->n_domains)
                return nubo_error_http(err, 409, "domain %s is already a domain of %s", fqdn,
                                       row->name);
            if (row->n_domains >= NUBO_SVC_MAX_DOMAINS)
                return nubo_error_http(err, 400, "a service group has at most %d domains",
                                       NUBO_SVC_MAX_DOMAINS);
            if (resolve_domain(ctx, row, g, &p->domains[i], &row->domains[row->n_domains], err) < 0)
                return -1;
            row->n_domains++;
        }
        break;
    }
    }
    if (row->soft_limit > row->hard_limit)
        return nubo_error_http(err, 400, "soft_limit (%lld) must not exceed hard_limit (%lld)",
                               (long long)row->soft_limit, (long long)row->hard_limit);
    return 0;
}

struct ctl_svc *ctl_svc_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                               const struct nubo_svc_create_req *req, struct nubo_err *err)
{
    const char *metro = req->metro[0] ? req->metro : ctl_default_metro(ctx);
    if (metro == NULL) {
        nubo_error_http(err, 400, "no metro known yet (no node registered); give \"metro\"");
        return NULL;
    }
    int64_t delta[NUBO_QUOTA_N] = {0};
    delta[NUBO_QUOTA_SERVICE_GROUPS] = 1;
    delta[NUBO_QUOTA_SERVICES] = (int64_t)req->n_ports;
    if (ctl_quota_check(ctx, u, delta, err) < 0)
        return NULL;
    struct ctl_svc_row row;
    if (ctl_svc_build(ctx, u, req, metro, true, &row, err) < 0)
        return NULL;
    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_svc_put(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        ctl_err_status(err, 500);
        return NULL;
    }
    struct ctl_svc *g = ctl_svc_add(ctx, &row);
    ctl_emit_services_changed(ctx, g->row.metro);
    return g;
}

int ctl_svc_patch(struct ctl_ctx *ctx, struct ctl_svc *g, const struct nubo_svc_patch *p,
                  struct nubo_err *err)
{
    struct ctl_svc_row row = g->row;
    if (apply_patch(ctx, g, p, &row, err) < 0)
        return ctl_err_status(err, 400);
    int64_t delta[NUBO_QUOTA_N] = {0};
    delta[NUBO_QUOTA_SERVICES] = (int64_t)row.n_ports - (int64_t)g->row.n_ports;
    if (ctl_quota_check_owner(ctx, g->row.owner, delta, err) < 0)
        return -1;
    if (ctl_store_begin(&ctx->store, err) < 0 || ctl_store_svc_put(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    /* committed: swap the domains in the fqdn index, then the row */
    for (size_t k = 0; k < g->row.n_domains; k++)
        if (ctl_map_get(&ctx->svc_fqdns, g->row.domains[k].fqdn) == g)
            ctl_map_del(&ctx->svc_fqdns, g->row.domains[k].fqdn);
    g->row = row;
    for (size_t k = 0; k < g->row.n_domains; k++)
        ctl_map_put(&ctx->svc_fqdns, g->row.domains[k].fqdn, g);
    if (p->prop == NUBO_SVC_PROP_SERVICES)
        svc_reassign(ctx, g);
    ctl_emit_services_changed(ctx, g->row.metro);
    return 0;
}

int ctl_svc_delete(struct ctl_ctx *ctx, struct ctl_svc *g, struct nubo_err *err)
{
    if (g->n_instances > 0)
        return nubo_error_http(err, 409,
                               "service group %s has %zu instance(s) attached (e.g. %s); delete "
                               "them first",
                               g->row.name, g->n_instances, g->inst_head->row.name);
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_svc_delete(&ctx->store, g->row.uuid, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    char metro[NUBO_NAME_MAX + 1];
    memcpy(metro, g->row.metro, sizeof(metro));
    ctl_svc_forget(ctx, g);
    ctl_emit_services_changed(ctx, metro);
    return 0;
}

/* ---- load / free ----------------------------------------------------------------------- */

static int svc_load_cb(void *arg, const struct ctl_svc_row *row)
{
    ctl_svc_add(arg, row);
    return 0;
}

int ctl_services_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    if (ctl_certs_load(ctx, err) < 0 || ctl_store_svcs_load(&ctx->store, svc_load_cb, ctx, err) < 0)
        return -1;
    if (ctx->svcs.n || ctx->certs.n)
        log_info("loaded %zu service group(s), %zu certificate(s)", ctx->svcs.n, ctx->certs.n);
    return 0;
}

void ctl_services_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->svcs, e) free(e->val);
    ctl_certs_free(ctx);
    ctl_map_clear(&ctx->svcs);
    ctl_map_clear(&ctx->svc_names);
    ctl_map_clear(&ctx->svc_fqdns);
}
