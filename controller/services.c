/* Service groups (/v1/services: public ports, domains, limits), user certificates
 * (/v1/certificates, checked with OpenSSL) and the per-metro ingress watch (/ingress/v1/watch)
 * that nubo-ingress turns into HAProxy configuration. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

#define CTL_SVC_MAX_CREATES 64

/* ---- default names: <word>-<word>-<8 random> ------------------------------------------- */

static const char *const words_a[] = {
    "young",  "small",  "quiet",  "bold",   "calm",   "dark",   "bright", "cold",   "warm",
    "late",   "early",  "wild",   "gentle", "swift",  "proud",  "still",  "silent", "misty",
    "sunny",  "rapid",  "lucky",  "clever", "brave",  "fancy",  "green",  "blue",   "amber",
    "golden", "silver", "hidden", "lively", "happy",  "frosty", "rustic", "humble", "noble",
};
static const char *const words_b[] = {
    "night",  "darkness", "river", "forest", "meadow", "stone", "cloud", "wave",   "breeze",
    "dawn",   "sky",      "field", "flower", "leaf",   "lake",  "moon",  "star",   "sun",
    "rain",   "snow",     "fire",  "frost",  "hill",   "pine",  "shore", "thunder", "brook",
    "violet", "wood",     "bird",  "smoke",  "grass",  "sea",   "mountain", "water", "glade",
};

static void random_group_name(char out[NUBO_NAME_MAX + 1])
{
    uint32_t r[2];
    nubo_random_bytes(r, sizeof(r));
    char rnd[9];
    nubo_random_alnum(rnd, 8);
    snprintf(out, NUBO_NAME_MAX + 1, "%s-%s-%s", words_a[r[0] % (sizeof(words_a) / sizeof(*words_a))],
             words_b[r[1] % (sizeof(words_b) / sizeof(*words_b))], rnd);
}

/* ---- the working set ------------------------------------------------------------------ */

static void owner_key(char *out, size_t size, const char *owner, const char *name)
{
    snprintf(out, size, "%s/%s", owner, name);
}

struct ctl_svc *ctl_svc_find(struct ctl_ctx *ctx, const struct ctl_user_row *u, const char *uuid,
                             const char *name)
{
    if (uuid && uuid[0]) {
        struct ctl_svc *g = ctl_map_get(&ctx->svcs, uuid);
        return g && strcmp(g->row.owner, u->name) == 0 ? g : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), u->name, name ? name : "");
    return ctl_map_get(&ctx->svc_names, key);
}

static struct ctl_cert *cert_find(struct ctl_ctx *ctx, const char *owner, const char *uuid,
                                  const char *name)
{
    if (uuid && uuid[0]) {
        struct ctl_cert *c = ctl_map_get(&ctx->certs, uuid);
        return c && strcmp(c->row.owner, owner) == 0 ? c : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), owner, name ? name : "");
    return ctl_map_get(&ctx->cert_names, key);
}

struct ctl_svc *ctl_svc_add(struct ctl_ctx *ctx, const struct ctl_svc_row *row)
{
    struct ctl_svc *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->row = *row;
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), row->owner, row->name);
    ctl_map_put(&ctx->svcs, row->uuid, g);
    ctl_map_put(&ctx->svc_names, key, g);
    for (size_t i = 0; i < row->n_domains; i++)
        ctl_map_put(&ctx->svc_fqdns, row->domains[i].fqdn, g);
    return g;
}

void ctl_svc_forget(struct ctl_ctx *ctx, struct ctl_svc *g)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), g->row.owner, g->row.name);
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

void ctl_svc_unlink(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    (void)ctx;
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
    struct ctl_svc *other = ctl_map_get(&ctx->svc_fqdns, dom->fqdn);
    if (other && other != self)
        return nubo_error_http(err, 409,
                               "domain %s is already used by another service group; choose "
                               "another name",
                               dom->fqdn);
    if (d->cert_uuid[0] || d->cert_name[0]) {
        struct ctl_cert *c = cert_find(ctx, row->owner, d->cert_uuid, d->cert_name);
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
    owner_key(key, sizeof(key), owner, name);
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

/* ---- JSON ------------------------------------------------------------------------------ */

static json_t *cert_ref(struct ctl_ctx *ctx, const char *uuid)
{
    struct ctl_cert *c = uuid[0] ? ctl_map_get(&ctx->certs, uuid) : NULL;
    if (c == NULL)
        return json_null();
    return json_pack("{s:s, s:s, s:s}", "uuid", c->row.uuid, "name", c->row.name, "state",
                     "valid");
}

static json_t *domains_api(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    json_t *a = json_array();
    for (size_t i = 0; i < g->row.n_domains; i++) {
        /* certificate null = the metro's wildcard certificate, held by the ingress */
        json_t *d = json_pack("{s:s, s:o}", "fqdn", g->row.domains[i].fqdn, "certificate",
                              cert_ref(ctx, g->row.domains[i].cert));
        json_array_append_new(a, d);
    }
    return a;
}

json_t *ctl_svc_instance_ref(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    /* services is a nubo addition: clients tell https from http URLs by it */
    return json_pack("{s:s, s:s, s:o, s:o}", "uuid", g->row.uuid, "name", g->row.name, "domains",
                     domains_api(ctx, g), "services",
                     nubo_svc_ports_encode(g->row.ports, g->row.n_ports));
}

static json_t *svc_json(struct ctl_ctx *ctx, const struct ctl_svc *g)
{
    json_t *insts = json_array();
    for (const struct ctl_instance *in = g->inst_head; in; in = in->svc_next)
        json_array_append_new(insts,
                              json_pack("{s:s, s:s}", "uuid", in->row.uuid, "name", in->row.name));
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:I, s:s, s:o, s:o, s:o}", "status",
                     "success", "uuid", g->row.uuid, "name", g->row.name, "created_at",
                     pj_time_new(g->row.created_at_us), "persistent", g->row.persistent,
                     "autoscale", 0, "soft_limit", (json_int_t)g->row.soft_limit, "hard_limit",
                     (json_int_t)g->row.hard_limit, "metro", g->row.metro, "services",
                     nubo_svc_ports_encode(g->row.ports, g->row.n_ports), "domains",
                     domains_api(ctx, g), "instances", insts);
}

static int cmp_svc(const void *a, const void *b)
{
    const struct ctl_svc *x = *(struct ctl_svc *const *)a, *y = *(struct ctl_svc *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

/* ---- look-ups shared by /v1/services and /v1/certificates ------------------------------ */

/* The {uuid}|{name} items a request names: path, ?uuid=/?name=, or a body (object or array).
 * *all when none. Returns a new array or NULL with err. */
static json_t *collect_refs(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                            bool *all, struct nubo_err *err)
{
    *all = false;
    json_t *list = json_array();
    if (path_ref) {
        json_array_append_new(list, json_pack("{s:s}", nubo_uuid_valid(path_ref) ? "uuid" : "name",
                                              path_ref));
        return list;
    }
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "uuid") || !strcmp(kv->key, "name")) {
            char buf[4096];
            if (nubo_snprintf(buf, sizeof(buf), "%s", kv->value) < 0) {
                json_decref(list);
                nubo_error_http(err, 400, "query %s: too long", kv->key);
                return NULL;
            }
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
                json_array_append_new(list, json_pack("{s:s}", kv->key, t));
        } else if (strcmp(kv->key, "details") != 0) {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", kv->key);
            json_decref(list);
            nubo_error_http(err, 400, "unknown query parameter '%s'", shown);
            return NULL;
        }
    }
    if (ri->body) {
        json_t *body = NULL;
        if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, err) < 0) {
            json_decref(list);
            return NULL;
        }
        if (json_is_object(body)) {
            json_array_append(list, body);
        } else if (json_is_array(body) && json_array_size(body) <= NUBO_API_MAX_ITEMS) {
            json_array_extend(list, body);
        } else {
            json_decref(body);
            json_decref(list);
            nubo_error_http(err, 400, "body: must be {\"uuid\"}, {\"name\"} or an array of them");
            return NULL;
        }
        json_decref(body);
    }
    *all = json_array_size(list) == 0;
    return list;
}

/* One look-up item -> uuid/name; 400 on a bad shape. */
static int ref_of(json_t *e, size_t i, char uuid[NUBO_UUID_STR_LEN + 1],
                  char name[NUBO_NAME_MAX + 1], struct nubo_err *err)
{
    static const char *const keys[] = {"uuid", "name", NULL};
    char ctx[24];
    snprintf(ctx, sizeof(ctx), "[%zu]", i);
    uuid[0] = name[0] = '\0';
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be {\"uuid\"} or {\"name\"}", ctx);
    if (pj_only_keys(e, ctx, keys, err) < 0 ||
        pj_str(e, ctx, "uuid", false, uuid, NUBO_UUID_STR_LEN + 1, err) < 0 ||
        pj_str(e, ctx, "name", false, name, NUBO_NAME_MAX + 1, err) < 0)
        return -1;
    if (!uuid[0] && !name[0])
        return nubo_error_http(err, 400, "%s: give uuid or name", ctx);
    return 0;
}

static const char *path_ref(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                            char buf[128])
{
    if (rest[0] != '/')
        return NULL;
    if (strchr(rest + 1, '/') || strlen(rest + 1) >= 128 ||
        (!nubo_uuid_valid(rest + 1) && !nubo_name_valid(rest + 1))) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404, "no endpoint %.200s",
                        ri->path);
        return (const char *)-1;
    }
    snprintf(buf, 128, "%s", rest + 1);
    return buf;
}

/* ---- /v1/services ---------------------------------------------------------------------- */

static const char *default_metro(struct ctl_ctx *ctx)
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

static void svc_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    struct nubo_err err = {0};
    cleanup_json json_t *body = NULL;
    if (ri->body == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "create: send a JSON object with at least \"services\"");
        return;
    }
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status, "%s", err.msg);
        return;
    }
    bool batch = json_is_array(body);
    size_t n = batch ? json_array_size(body) : 1;
    if (batch && (n == 0 || n > CTL_SVC_MAX_CREATES)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "create: an array of 1..%d service group objects", CTL_SVC_MAX_CREATES);
        return;
    }
    struct nubo_svc_create_req *req = malloc(sizeof(*req));
    struct ctl_svc_row *row = malloc(sizeof(*row));
    json_t *out = json_array();
    if (!req || !row) {
        free(req);
        free(row);
        json_decref(out);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        if (nubo_svc_create_req_decode(e, false, req, &err) < 0) {
            if (!batch) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s", err.msg);
                json_decref(out);
                goto done;
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, err.msg));
            continue;
        }
        const char *metro = req->metro[0] ? req->metro : default_metro(ctx);
        if (metro == NULL) {
            json_array_append_new(out,
                                  nubo_item_error(NULL, req->name, 400,
                                                  "no metro known yet (no node registered); give "
                                                  "\"metro\""));
            continue;
        }
        if (ctl_svc_build(ctx, &ri->user, req, metro, true, row, &err) < 0) {
            json_array_append_new(out, nubo_item_error(NULL, req->name, err.http_status ?: 400,
                                                       err.msg));
            continue;
        }
        if (ctl_store_begin(&ctx->store, &err) < 0 ||
            ctl_store_svc_put(&ctx->store, row, &err) < 0 ||
            ctl_store_commit(&ctx->store, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            json_array_append_new(out, nubo_item_error(NULL, req->name, 500, err.msg));
            continue;
        }
        struct ctl_svc *g = ctl_svc_add(ctx, row);
        if (g == NULL) {
            json_array_append_new(out, nubo_item_error(NULL, req->name, 500, "out of memory"));
            continue;
        }
        ctl_ingress_bump(ctx, g->row.metro);
        json_array_append_new(out, svc_json(ctx, g));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "service_groups", out);
done:
    free(req);
    free(row);
}

static json_t *svc_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "service group %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

/* What GET/DELETE by reference differ in between service groups and certificates. */
struct named_ops {
    const char *collection; /* envelope key */
    const char *plural;     /* for the one-line error */
    const char *(*owner)(const void *obj);
    int (*cmp)(const void *a, const void *b);
    json_t *(*to_json)(struct ctl_ctx *ctx, const void *obj);
    void *(*find)(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *uuid, const char *name);
    json_t *(*not_found)(const char *uuid, const char *name);
    /* Deletes obj unless something still uses it; returns that item's result either way. */
    json_t *(*del)(struct ctl_ctx *ctx, void *obj);
};

/* GET lists the caller's objects of map (all, sorted) or the ones named; DELETE needs names. */
static void named_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref,
                             bool del, const struct ctl_map *map, const struct named_ops *ops)
{
    struct nubo_err err = {0};
    bool all;
    cleanup_json json_t *refs = collect_refs(ctx, ri, pref, &all, &err);
    if (refs == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return;
    }
    if (all && del) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "delete: name the %s by uuid or name (nothing deleted)", ops->plural);
        return;
    }
    json_t *out = json_array();
    if (all) {
        void **v = malloc((map->n + 1) * sizeof(*v));
        size_t cnt = 0;
        ctl_map_foreach(map, e)
        {
            if (v && strcmp(ops->owner(e->val), ri->user.name) == 0)
                v[cnt++] = e->val;
        }
        if (v)
            qsort(v, cnt, sizeof(*v), ops->cmp);
        for (size_t i = 0; i < cnt; i++) {
            json_t *j = ops->to_json(ctx, v[i]);
            json_object_del(j, "status");
            json_array_append_new(out, j);
        }
        free(v);
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200,
                       nubo_envelope_new("success", NULL, ops->collection, out, 0));
        return;
    }
    size_t i;
    json_t *e;
    json_array_foreach(refs, i, e)
    {
        char uuid[NUBO_UUID_STR_LEN + 1], name[NUBO_NAME_MAX + 1];
        if (ref_of(e, i, uuid, name, &err) < 0) {
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, err.msg));
            continue;
        }
        void *obj = ops->find(ctx, ri, uuid, name);
        if (obj == NULL)
            json_array_append_new(out, ops->not_found(uuid, name));
        else
            json_array_append_new(out, del ? ops->del(ctx, obj) : ops->to_json(ctx, obj));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, ops->collection, out);
}

static const char *svc_owner(const void *obj)
{
    return ((const struct ctl_svc *)obj)->row.owner;
}

static json_t *svc_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return svc_json(ctx, obj);
}

static void *svc_find_any(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *uuid,
                          const char *name)
{
    return ctl_svc_find(ctx, &ri->user, uuid, name);
}

static json_t *svc_delete_one(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_svc *g = obj;
    struct nubo_err err = {0};
    if (g->n_instances > 0) {
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "service group %s has %zu instance(s) attached (e.g. %s); delete them first",
                 g->row.name, g->n_instances, g->inst_head->row.name);
        return nubo_item_error(g->row.uuid, g->row.name, 409, msg);
    }
    if (ctl_store_begin(&ctx->store, &err) < 0 ||
        ctl_store_svc_delete(&ctx->store, g->row.uuid, &err) < 0 ||
        ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_store_rollback(&ctx->store);
        return nubo_item_error(g->row.uuid, g->row.name, 500, err.msg);
    }
    json_t *ok = json_pack("{s:s, s:s, s:s}", "status", "success", "uuid", g->row.uuid, "name",
                           g->row.name);
    char metro[NUBO_NAME_MAX + 1];
    memcpy(metro, g->row.metro, sizeof(metro));
    ctl_svc_forget(ctx, g);
    ctl_ingress_bump(ctx, metro);
    return ok;
}

static const struct named_ops svc_ops = {
    .collection = "service_groups",
    .plural = "service groups",
    .owner = svc_owner,
    .cmp = cmp_svc,
    .to_json = svc_json_any,
    .find = svc_find_any,
    .not_found = svc_not_found,
    .del = svc_delete_one,
};

static void svc_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref,
                           bool del)
{
    named_get_delete(ctx, ri, pref, del, &ctx->svcs, &svc_ops);
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
            if (resolve_domain(ctx, row, g, &p->domains[i], &row->domains[row->n_domains], err) <
                0)
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

static void svc_patch(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref)
{
    struct nubo_err err = {0};
    cleanup_json json_t *body = NULL;
    if (ri->body == NULL ||
        pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, &err) < 0) {
        if (ri->body == NULL)
            nubo_error_http(&err, 400,
                            "patch: send {\"uuid\"|\"name\", \"prop\", \"op\", \"value\"} (or an "
                            "array of them)");
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return;
    }
    bool batch = json_is_array(body);
    size_t n = batch ? json_array_size(body) : 1;
    if (batch && (n == 0 || n > CTL_SVC_MAX_CREATES)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "patch: an array of 1..%d operations", CTL_SVC_MAX_CREATES);
        return;
    }
    struct nubo_svc_patch *p = malloc(sizeof(*p));
    struct ctl_svc_row *row = malloc(sizeof(*row));
    json_t *out = json_array();
    for (size_t i = 0; p && row && i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        char c[24] = "";
        if (batch)
            snprintf(c, sizeof(c), "[%zu]", i);
        if (nubo_svc_patch_decode(e, c, pref == NULL, p, &err) < 0) {
            if (!batch) {
                json_decref(out);
                out = NULL;
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s", err.msg);
                break;
            }
            json_array_append_new(out, nubo_item_error(NULL, NULL, 400, err.msg));
            continue;
        }
        if (pref && nubo_uuid_valid(pref))
            snprintf(p->uuid, sizeof(p->uuid), "%.36s", pref);
        else if (pref) /* path_ref() admitted only uuids and names of <= 63 bytes */
            snprintf(p->name, sizeof(p->name), "%.63s", pref);
        struct ctl_svc *g = ctl_svc_find(ctx, &ri->user, p->uuid, p->name);
        if (g == NULL) {
            json_array_append_new(out, svc_not_found(p->uuid, p->name));
            continue;
        }
        *row = g->row;
        if (apply_patch(ctx, g, p, row, &err) < 0) {
            json_array_append_new(out,
                                  nubo_item_error(g->row.uuid, g->row.name, err.http_status ?: 400,
                                                  err.msg));
            continue;
        }
        if (ctl_store_begin(&ctx->store, &err) < 0 ||
            ctl_store_svc_put(&ctx->store, row, &err) < 0 ||
            ctl_store_commit(&ctx->store, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            json_array_append_new(out, nubo_item_error(g->row.uuid, g->row.name, 500, err.msg));
            continue;
        }
        /* committed: swap the domains in the fqdn index, then the row */
        for (size_t k = 0; k < g->row.n_domains; k++)
            if (ctl_map_get(&ctx->svc_fqdns, g->row.domains[k].fqdn) == g)
                ctl_map_del(&ctx->svc_fqdns, g->row.domains[k].fqdn);
        bool ports_changed = p->prop == NUBO_SVC_PROP_SERVICES;
        g->row = *row;
        for (size_t k = 0; k < g->row.n_domains; k++)
            ctl_map_put(&ctx->svc_fqdns, g->row.domains[k].fqdn, g);
        if (ports_changed)
            svc_reassign(ctx, g);
        ctl_ingress_bump(ctx, g->row.metro);
        json_array_append_new(out, svc_json(ctx, g));
    }
    if (out && (!p || !row)) {
        json_decref(out);
        out = NULL;
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
    }
    if (out)
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "service_groups", out);
    free(p);
    free(row);
}

void ctl_handle_services(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    ri->route = CTL_R_SERVICES;
    char buf[128];
    const char *pref = path_ref(ctx, ri, rest, buf);
    if (pref == (const char *)-1)
        return;
    switch (ri->method) {
    case EVHTTP_REQ_POST:
        if (pref == NULL) {
            svc_create(ctx, ri);
            return;
        }
        break;
    case EVHTTP_REQ_GET:
        svc_get_delete(ctx, ri, pref, false);
        return;
    case EVHTTP_REQ_DELETE:
        svc_get_delete(ctx, ri, pref, true);
        return;
    case EVHTTP_REQ_PATCH:
        svc_patch(ctx, ri, pref);
        return;
    default:
        break;
    }
    ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "%s: use %s", ri->path,
                    pref ? "GET, PATCH or DELETE" : "POST, GET, PATCH or DELETE");
}

/* ---- certificates ---------------------------------------------------------------------- */

static void asn1_time_us(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm = {0};
    *out = 0;
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        *out = (int64_t)timegm(&tm) * 1000000;
}

static void x509_name_text(const X509_NAME *n, char *out, size_t size)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253);
    int len = BIO_read(b, out, (int)size - 1);
    out[len > 0 ? len : 0] = '\0';
    BIO_free(b);
}

/* Does the certificate name cn (subject CN or a DNS SAN, compared as written)? */
static bool cert_names(X509 *x, const char *cn)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    bool hit = false;
    for (int i = 0; sans && i < sk_GENERAL_NAME_num(sans) && !hit; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        const char *s = (const char *)ASN1_STRING_get0_data(g->d.dNSName);
        hit = s && (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(s) &&
              strcasecmp(s, cn) == 0;
    }
    GENERAL_NAMES_free(sans);
    if (hit)
        return true;
    char subj_cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, subj_cn,
                                  sizeof(subj_cn)) > 0 &&
        strcasecmp(subj_cn, cn) == 0)
        return true;
    return false;
}

/* Parse and check a certificate: the chain's first PEM certificate is the leaf, the key matches
 * it, it names cn. Fills the derived fields of c. */
static int cert_check(struct ctl_cert *c, struct nubo_err *err)
{
    int rc = -1;
    BIO *cb = BIO_new_mem_buf(c->row.chain, -1), *kb = BIO_new_mem_buf(c->row.pkey, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    ERR_clear_error();
    if (x == NULL) {
        nubo_error_http(err, 400, "chain: not a PEM certificate (-----BEGIN CERTIFICATE-----)");
        goto out;
    }
    /* every further block of the chain must parse too */
    X509 *more;
    while ((more = PEM_read_bio_X509(cb, NULL, NULL, NULL)) != NULL)
        X509_free(more);
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (e && ERR_GET_REASON(e) != PEM_R_NO_START_LINE) {
        nubo_error_http(err, 400, "chain: a certificate after the first one does not parse");
        goto out;
    }
    if (k == NULL) {
        nubo_error_http(err, 400,
                        "pkey: not an unencrypted PEM private key (-----BEGIN PRIVATE KEY-----)");
        goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
        ERR_clear_error();
        nubo_error_http(err, 400, "pkey: the key does not match the chain's first certificate");
        goto out;
    }
    if (!cert_names(x, c->row.cn)) {
        nubo_error_http(err, 400,
                        "cn: the certificate does not name %s (neither its subject CN nor a "
                        "DNS subject alternative name)",
                        c->row.cn);
        goto out;
    }
    x509_name_text(X509_get_subject_name(x), c->subject, sizeof(c->subject));
    x509_name_text(X509_get_issuer_name(x), c->issuer, sizeof(c->issuer));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    snprintf(c->serial, sizeof(c->serial), "%s", hex ? hex : "");
    OPENSSL_free(hex);
    BN_free(bn);
    asn1_time_us(X509_get0_notBefore(x), &c->not_before_us);
    asn1_time_us(X509_get0_notAfter(x), &c->not_after_us);
    rc = 0;
out:
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    return rc;
}

static struct ctl_cert *cert_add(struct ctl_ctx *ctx, struct ctl_cert *c)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), c->row.owner, c->row.name);
    ctl_map_put(&ctx->certs, c->row.uuid, c);
    ctl_map_put(&ctx->cert_names, key, c);
    return c;
}

static void cert_destroy(struct ctl_cert *c)
{
    if (c) {
        ctl_cert_row_free(&c->row);
        free(c);
    }
}

static json_t *cert_json(struct ctl_ctx *ctx, const struct ctl_cert *c)
{
    json_t *groups = json_array();
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        for (size_t i = 0; i < g->row.n_domains; i++)
            if (strcmp(g->row.domains[i].cert, c->row.uuid) == 0) {
                json_array_append_new(groups, json_pack("{s:s, s:s}", "uuid", g->row.uuid, "name",
                                                        g->row.name));
                break;
            }
    }
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "status",
                     "success", "uuid", c->row.uuid, "name", c->row.name, "created_at",
                     pj_time_new(c->row.created_at_us), "common_name", c->row.cn, "state", "valid",
                     "subject", c->subject, "issuer", c->issuer, "serial_number", c->serial,
                     "not_before", pj_time_new(c->not_before_us), "not_after",
                     pj_time_new(c->not_after_us), "service_groups", groups);
}

static bool cert_used(struct ctl_ctx *ctx, const struct ctl_cert *c, const struct ctl_svc **by)
{
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        for (size_t i = 0; i < g->row.n_domains; i++)
            if (strcmp(g->row.domains[i].cert, c->row.uuid) == 0) {
                *by = g;
                return true;
            }
    }
    return false;
}

static void cert_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri)
{
    struct nubo_err err = {0};
    cleanup_json json_t *body = NULL;
    if (ri->body == NULL ||
        pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, &err) < 0) {
        if (ri->body == NULL)
            nubo_error_http(&err, 400, "create: send {\"name\"?, \"cn\", \"chain\", \"pkey\"}");
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return;
    }
    struct nubo_cert_req req;
    if (nubo_cert_req_decode(body, &req, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s", err.msg);
        return;
    }
    struct ctl_cert *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        nubo_cert_req_free(&req);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    nubo_uuid_new(c->row.uuid);
    snprintf(c->row.owner, sizeof(c->row.owner), "%s", ri->user.name);
    memcpy(c->row.cn, req.cn, sizeof(c->row.cn));
    c->row.chain = req.chain;
    c->row.pkey = req.pkey;
    c->row.created_at_us = nubo_now_us();
    if (req.name[0]) {
        memcpy(c->row.name, req.name, sizeof(c->row.name));
    } else {
        char rnd[6];
        nubo_random_alnum(rnd, 5);
        snprintf(c->row.name, sizeof(c->row.name), "cert-%s", rnd);
    }
    if (cert_find(ctx, ri->user.name, NULL, c->row.name)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 409,
                        "a certificate named '%s' already exists; choose another name",
                        c->row.name);
        cert_destroy(c);
        return;
    }
    if (cert_check(c, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "certificate %s: %s",
                        c->row.name, err.msg);
        cert_destroy(c);
        return;
    }
    if (ctl_store_begin(&ctx->store, &err) < 0 || ctl_store_cert_put(&ctx->store, &c->row, &err) < 0 ||
        ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_store_rollback(&ctx->store);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
        cert_destroy(c);
        return;
    }
    cert_add(ctx, c);
    json_t *out = json_array();
    json_array_append_new(out, cert_json(ctx, c));
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "certificates", out);
}

static int cmp_cert(const void *a, const void *b)
{
    const struct ctl_cert *x = *(struct ctl_cert *const *)a, *y = *(struct ctl_cert *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

static const char *cert_owner(const void *obj)
{
    return ((const struct ctl_cert *)obj)->row.owner;
}

static json_t *cert_json_any(struct ctl_ctx *ctx, const void *obj)
{
    return cert_json(ctx, obj);
}

static void *cert_find_any(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *uuid,
                           const char *name)
{
    return cert_find(ctx, ri->user.name, uuid, name);
}

static json_t *cert_not_found(const char *uuid, const char *name)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "certificate %s not found", uuid[0] ? uuid : name);
    return nubo_item_error(uuid, name, 404, msg);
}

static json_t *cert_delete_one(struct ctl_ctx *ctx, void *obj)
{
    struct ctl_cert *c = obj;
    struct nubo_err err = {0};
    const struct ctl_svc *by = NULL;
    if (cert_used(ctx, c, &by)) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "certificate %s is used by service group %s; remove that domain first",
                 c->row.name, by->row.name);
        return nubo_item_error(c->row.uuid, c->row.name, 409, msg);
    }
    if (ctl_store_begin(&ctx->store, &err) < 0 ||
        ctl_store_cert_delete(&ctx->store, c->row.uuid, &err) < 0 ||
        ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_store_rollback(&ctx->store);
        return nubo_item_error(c->row.uuid, c->row.name, 500, err.msg);
    }
    json_t *ok = json_pack("{s:s, s:s, s:s}", "status", "success", "uuid", c->row.uuid, "name",
                           c->row.name);
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    owner_key(key, sizeof(key), c->row.owner, c->row.name);
    ctl_map_del(&ctx->certs, c->row.uuid);
    ctl_map_del(&ctx->cert_names, key);
    cert_destroy(c);
    return ok;
}

static const struct named_ops cert_ops = {
    .collection = "certificates",
    .plural = "certificates",
    .owner = cert_owner,
    .cmp = cmp_cert,
    .to_json = cert_json_any,
    .find = cert_find_any,
    .not_found = cert_not_found,
    .del = cert_delete_one,
};

static void cert_get_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *pref, bool del)
{
    named_get_delete(ctx, ri, pref, del, &ctx->certs, &cert_ops);
}

void ctl_handle_certificates(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    ri->route = CTL_R_CERTS;
    char buf[128];
    const char *pref = path_ref(ctx, ri, rest, buf);
    if (pref == (const char *)-1)
        return;
    if (ri->method == EVHTTP_REQ_POST && pref == NULL)
        cert_create(ctx, ri);
    else if (ri->method == EVHTTP_REQ_GET)
        cert_get_delete(ctx, ri, pref, false);
    else if (ri->method == EVHTTP_REQ_DELETE)
        cert_get_delete(ctx, ri, pref, true);
    else
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "%s: use %s", ri->path,
                        pref ? "GET or DELETE" : "POST, GET or DELETE");
}

/* ---- the ingress watch ----------------------------------------------------------------- */

static void ing_flush_cb(evutil_socket_t fd, short what, void *arg);

static struct ctl_ing_metro *ing_metro(struct ctl_ctx *ctx, const char *metro)
{
    struct ctl_ing_metro *m = ctl_map_get(&ctx->ing_metros, metro);
    if (m)
        return m;
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    snprintf(m->name, sizeof(m->name), "%s", metro);
    m->version = ++ctx->version_seq;
    m->ctx = ctx;
    m->flush_ev = event_new(ctx->base, -1, 0, ing_flush_cb, m);
    if (m->flush_ev == NULL || ctl_map_put(&ctx->ing_metros, m->name, m) < 0) {
        if (m->flush_ev)
            event_free(m->flush_ev);
        free(m);
        return NULL;
    }
    return m;
}

void ctl_ingress_bump(struct ctl_ctx *ctx, const char *metro)
{
    struct ctl_ing_metro *m = ctl_map_get(&ctx->ing_metros, metro);
    if (m == NULL)
        return; /* nobody watched it yet: its first watch gets a fresh version anyway */
    m->version = ++ctx->version_seq;
    /* answered once the current loop iteration is done, so a burst of changes made by one
     * request or status batch costs one reply */
    if (m->watches && !event_pending(m->flush_ev, EV_TIMEOUT, NULL))
        event_active(m->flush_ev, EV_TIMEOUT, 0);
}

/* The metro's full ingress set as JSON text. */
static char *ing_set(struct ctl_ctx *ctx, struct ctl_ing_metro *m)
{
    struct nubo_ingress_watch_resp w = {0};
    w.version = m->version;
    snprintf(w.metro, sizeof(w.metro), "%s", m->name);
    snprintf(w.domain_suffix, sizeof(w.domain_suffix), "%s.%s", m->name,
             ctx->cfg.services_domain);
    size_t cap = 0, cap_certs = 0;
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        if (strcmp(g->row.metro, m->name) != 0)
            continue;
        cap++;
        for (size_t k = 0; k < g->row.n_domains; k++)
            cap_certs += g->row.domains[k].cert[0] != '\0';
    }
    w.services = calloc(cap + 1, sizeof(*w.services));
    w.certificates = calloc(cap_certs + 1, sizeof(*w.certificates));
    char *text = NULL;
    if (w.services == NULL || w.certificates == NULL)
        goto out;
    struct ctl_svc **order = calloc(cap + 1, sizeof(*order));
    if (order == NULL)
        goto out;
    size_t n = 0;
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        if (strcmp(g->row.metro, m->name) == 0)
            order[n++] = g;
    }
    qsort(order, n, sizeof(*order), cmp_svc);
    for (size_t i = 0; i < n; i++) {
        struct ctl_svc *g = order[i];
        struct nubo_ingress_service *s = &w.services[w.n_services++];
        memcpy(s->uuid, g->row.uuid, sizeof(s->uuid));
        memcpy(s->name, g->row.name, sizeof(s->name));
        s->soft_limit = g->row.soft_limit;
        s->hard_limit = g->row.hard_limit;
        s->ports = g->row.ports; /* borrowed */
        s->n_ports = g->row.n_ports;
        s->domains = calloc(g->row.n_domains + 1, sizeof(*s->domains));
        s->backends = calloc(g->n_instances + 1, sizeof(*s->backends));
        for (size_t k = 0; s->domains && k < g->row.n_domains; k++) {
            memcpy(s->domains[k].fqdn, g->row.domains[k].fqdn, sizeof(s->domains[k].fqdn));
            memcpy(s->domains[k].certificate, g->row.domains[k].cert,
                   sizeof(s->domains[k].certificate));
            s->n_domains = k + 1;
            struct ctl_cert *c =
                g->row.domains[k].cert[0] ? ctl_map_get(&ctx->certs, g->row.domains[k].cert) : NULL;
            bool listed = false;
            for (size_t q = 0; c && q < w.n_certificates; q++)
                listed = listed || strcmp(w.certificates[q].uuid, c->row.uuid) == 0;
            if (c && !listed) {
                struct nubo_ingress_cert *ic = &w.certificates[w.n_certificates++];
                memcpy(ic->uuid, c->row.uuid, sizeof(ic->uuid));
                memcpy(ic->name, c->row.name, sizeof(ic->name));
                memcpy(ic->cn, c->row.cn, sizeof(ic->cn));
                ic->chain = c->row.chain; /* borrowed */
                ic->pkey = c->row.pkey;
            }
        }
        for (struct ctl_instance *in = g->inst_head; s->backends && in; in = in->svc_next) {
            enum nubo_state st = ctl_instance_state(in);
            if ((st != NUBO_STATE_RUNNING && st != NUBO_STATE_DRAINING) || in->node == NULL)
                continue;
            struct nubo_ingress_backend *b = &s->backends[s->n_backends++];
            memcpy(b->instance, in->row.uuid, sizeof(b->instance));
            memcpy(b->name, in->row.name, sizeof(b->name));
            memcpy(b->node, in->node->row.name, sizeof(b->node));
            ctl_node_ip_str(in->node, (int)in->row.ip_host, b->ip);
            b->state = st;
        }
    }
    free(order);
    json_t *j = nubo_ingress_watch_resp_encode(&w);
    text = pj_dump(j);
    json_decref(j);
out:
    for (size_t i = 0; w.services && i < w.n_services; i++) {
        free(w.services[i].domains);
        free(w.services[i].backends);
    }
    free(w.services);
    free(w.certificates);
    return text;
}

static void ing_send(struct ctl_ctx *ctx, struct evhttp_request *req, int64_t start_us,
                     const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || text == NULL) {
        if (b)
            evbuffer_free(b);
        ctl_reply_error(ctx, req, CTL_R_INGRESS_WATCH, start_us, 500, "out of memory");
        return;
    }
    evbuffer_add(b, text, strlen(text));
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    ctx->metrics.requests[CTL_R_INGRESS_WATCH][2]++;
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void ing_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ctl_ing_metro *m = arg;
    if (m->watches == NULL)
        return;
    char *text = ing_set(m->ctx, m);
    while (m->watches) {
        struct ctl_parked *p = m->watches;
        ctl_park_unlink(&m->watches, p);
        ing_send(m->ctx, p->req, p->start_mono_us, text);
        ctl_parked_free(p);
    }
    free(text);
}

static void ing_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct ctl_parked *p = arg;
    struct ctl_ing_metro *m = p->ing;
    ctl_park_unlink(&m->watches, p);
    char *text = ing_set(p->ctx, m);
    ing_send(p->ctx, p->req, p->start_mono_us, text);
    free(text);
    ctl_parked_free(p);
}

int ctl_ingress_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err)
{
    char token[NUBO_AGENT_TOKEN_MAX];
    if (ctl_token_file(ctx->cfg.ingress_token_file, "ingress", token, err) < 0)
        return nubo_error_wrap(err, "[ingress] token_file");
    nubo_sha256_hex(token, strlen(token), ctx->ingress_token_hash);
    return 0;
}

void ctl_handle_ingress(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                        const char *token)
{
    ri->route = CTL_R_INGRESS_WATCH;
    char hash[NUBO_SHA256_HEX_LEN + 1];
    while (token && *token == ' ')
        token++;
    if (token)
        nubo_sha256_hex(token, strlen(token), hash);
    if (token == NULL || ctx->ingress_token_hash[0] == '\0' ||
        strcmp(hash, ctx->ingress_token_hash) != 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 401,
                        "missing or unknown ingress token: send Authorization: Bearer <the "
                        "[ingress] token_file contents>");
        return;
    }
    if (strcmp(rest, "/watch") != 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 404, "no endpoint %.200s (watch)",
                        ri->path);
        return;
    }
    if (ri->method != EVHTTP_REQ_GET) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "%s: use GET", ri->path);
        return;
    }
    int64_t version = 0, timeout_ms = 30000;
    const char *metro = NULL;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "version")) {
            if (nubo_parse_int(kv->value, 0, INT64_C(1) << 62, &version, NULL) < 0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "watch: version must be a whole number");
                return;
            }
        } else if (!strcmp(kv->key, "timeout_ms")) {
            if (nubo_parse_int(kv->value, 0, NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS, &timeout_ms,
                               NULL) < 0) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                                "watch: timeout_ms must be 0..%d",
                                NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS);
                return;
            }
        } else if (!strcmp(kv->key, "metro")) {
            metro = kv->value;
        }
    }
    if (metro == NULL || !nubo_name_valid(metro)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "watch: give ?metro=<metro name> (the metro this ingress serves)");
        return;
    }
    struct ctl_ing_metro *m = ing_metro(ctx, metro);
    if (m == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    if (version != m->version || timeout_ms == 0) {
        char *text = ing_set(ctx, m);
        ing_send(ctx, ri->req, ri->start_us, text);
        free(text);
        return;
    }
    struct ctl_parked *p = ctl_park_timed(ctx, ri, CTL_PARK_INGRESS, timeout_ms, ing_timeout_cb);
    if (p == NULL)
        return;
    p->ing = m;
    ctl_park_link(&m->watches, p);
}

/* ---- load / free ----------------------------------------------------------------------- */

static int svc_load_cb(void *arg, const struct ctl_svc_row *row)
{
    return ctl_svc_add(arg, row) ? 0 : -1;
}

static int cert_load_cb(void *arg, struct ctl_cert_row *row)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_cert *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -1;
    c->row = *row;
    struct nubo_err err = {0};
    if (cert_check(c, &err) < 0)
        log_warnx("certificate %s no longer checks out: %s", c->row.name, err.msg);
    cert_add(ctx, c);
    return 0;
}

int ctl_services_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    if (ctl_store_certs_load(&ctx->store, cert_load_cb, ctx, err) < 0 ||
        ctl_store_svcs_load(&ctx->store, svc_load_cb, ctx, err) < 0)
        return -1;
    if (ctx->svcs.n || ctx->certs.n)
        log_info("loaded %zu service group(s), %zu certificate(s)", ctx->svcs.n, ctx->certs.n);
    return 0;
}

void ctl_services_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->ing_metros, e)
    {
        struct ctl_ing_metro *m = e->val;
        while (m->watches) {
            struct ctl_parked *p = m->watches;
            ctl_park_unlink(&m->watches, p);
            evhttp_send_error(p->req, 503, "shutting down");
            ctl_parked_free(p);
        }
        event_free(m->flush_ev);
        free(m);
    }
    ctl_map_foreach(&ctx->svcs, e) free(e->val);
    ctl_map_foreach(&ctx->certs, e) cert_destroy(e->val);
    ctl_map_clear(&ctx->ing_metros);
    ctl_map_clear(&ctx->svcs);
    ctl_map_clear(&ctx->svc_names);
    ctl_map_clear(&ctx->svc_fqdns);
    ctl_map_clear(&ctx->certs);
    ctl_map_clear(&ctx->cert_names);
}
