/* GET /ingress/v1/watch: each metro's nubo-ingress long-polls its full service set (groups,
 * domains, certificates, running and standby backends). The model's services_changed event
 * (main.c wires it here) bumps the metro's version and answers the parked polls after the loop
 * turn. POST /ingress/v1/traffic and /wake carry scale-to-zero's signals to model_s2z.c;
 * POST /ingress/v1/ports says which public ports the ingress could not bind (kept here, in
 * memory: the ingress re-sends it, and shown on the groups that publish them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_autoscale.h"
#include "log.h"
#include "util.h"

/* One metro's ingress state: its version and the nubo-ingress long polls parked on it. */
struct ing_metro {
    char name[NUBO_NAME_MAX + 1];
    int64_t version;
    struct ctl_parked *watches;
    struct event *flush_ev;
    struct ctl_ctx *ctx;
    struct nubo_ingress_ports_report *left_out; /* the latest ports report, NULL = none */
};

static void ing_flush_cb(evutil_socket_t fd, short what, void *arg);

static struct ing_metro *ing_metro(struct ctl_ctx *ctx, const char *metro)
{
    struct ing_metro *m = ctl_map_get(&ctx->ing_metros, metro);
    if (m)
        return m;
    m = xcalloc(1, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", metro);
    m->version = ++ctx->version_seq;
    m->ctx = ctx;
    m->flush_ev = xcheck(event_new(ctx->base, -1, 0, ing_flush_cb, m), "ingress event");
    ctl_map_put(&ctx->ing_metros, m->name, m);
    return m;
}

void ctl_ingress_on_changed(struct ctl_ctx *ctx, const char *metro)
{
    struct ing_metro *m = ctl_map_get(&ctx->ing_metros, metro);
    if (m == NULL)
        return; /* nobody watched it yet: its first watch gets a fresh version anyway */
    m->version = ++ctx->version_seq;
    /* answered once the current loop iteration is done, so a burst of changes made by one
     * request or status batch costs one reply */
    if (m->watches && !event_pending(m->flush_ev, EV_TIMEOUT, NULL))
        event_active(m->flush_ev, EV_TIMEOUT, 0);
}

/* The metro's full ingress set as JSON text (malloc'd). */
static char *ing_set(struct ctl_ctx *ctx, struct ing_metro *m)
{
    struct nubo_ingress_watch_resp w = {0};
    w.version = m->version;
    snprintf(w.metro, sizeof(w.metro), "%s", m->name);
    snprintf(w.domain_suffix, sizeof(w.domain_suffix), "%s.%s", m->name, ctx->cfg.services_domain);
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
    w.services = xcalloc(cap + 1, sizeof(*w.services));
    w.certificates = xcalloc(cap_certs + 1, sizeof(*w.certificates));
    struct ctl_svc **order = xcalloc(cap + 1, sizeof(*order));
    size_t n = 0;
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        if (strcmp(g->row.metro, m->name) == 0)
            order[n++] = g;
    }
    qsort(order, n, sizeof(*order), ctl_svc_cmp);
    for (size_t i = 0; i < n; i++) {
        struct ctl_svc *g = order[i];
        struct nubo_ingress_service *s = &w.services[w.n_services++];
        memcpy(s->uuid, g->row.uuid, sizeof(s->uuid));
        memcpy(s->name, g->row.name, sizeof(s->name));
        s->soft_limit = g->row.soft_limit;
        s->hard_limit = g->row.hard_limit;
        s->ports = g->row.ports; /* borrowed */
        s->n_ports = g->row.n_ports;
        s->domains = xcalloc(g->row.n_domains + 1, sizeof(*s->domains));
        s->backends = xcalloc(g->n_instances + 1, sizeof(*s->backends));
        for (size_t k = 0; k < g->row.n_domains; k++) {
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
        for (struct ctl_instance *in = g->inst_head; in; in = in->svc_next) {
            enum nubo_state st = ctl_instance_state(in);
            /* one on its way to standby is as good as there: a request arriving meanwhile is
             * held and wakes it, rather than finding the group empty */
            if (ctl_instance_sleeping(in))
                st = NUBO_STATE_STANDBY;
            /* about to go there: no new requests, those in flight finish (model_s2z.c) */
            else if (in->s2z_drain_us && st == NUBO_STATE_RUNNING)
                st = NUBO_STATE_DRAINING;
            /* standby and starting: the ingress holds requests while one wakes */
            if ((st != NUBO_STATE_RUNNING && st != NUBO_STATE_DRAINING &&
                 st != NUBO_STATE_STANDBY && st != NUBO_STATE_STARTING) ||
                in->node == NULL)
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
    char *text = xcheck(pj_dump(j), "ingress set");
    json_decref(j);
    for (size_t i = 0; i < w.n_services; i++) {
        free(w.services[i].domains);
        free(w.services[i].backends);
    }
    free(w.services);
    free(w.certificates);
    return text;
}

static void ing_flush_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ing_metro *m = arg;
    if (m->watches == NULL)
        return;
    cleanup_free char *text = ing_set(m->ctx, m);
    ctl_park_answer_all(&m->watches, CTL_R_INGRESS_WATCH, text, strlen(text));
}

static void ing_timeout(struct ctl_parked *p)
{
    ctl_park_unlink(p);
    cleanup_free char *text = ing_set(p->ctx, p->data);
    ctl_reply_text(p->ctx, p->req, CTL_R_INGRESS_WATCH, text, strlen(text));
    ctl_parked_free(p);
}

const char *ctl_ingress_port_error(struct ctl_ctx *ctx, const char *metro, int64_t port)
{
    const struct ing_metro *m = ctl_map_get(&ctx->ing_metros, metro);
    for (size_t i = 0; m && m->left_out && i < m->left_out->n_left_out; i++)
        if (m->left_out->left_out[i].port == port)
            return m->left_out->left_out[i].error;
    return NULL;
}

/* POST /ports: the whole set of ports the metro's ingress left out replaces the last one. */
static int ing_ports(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    if (ri->method != EVHTTP_REQ_POST)
        return nubo_error_http(err, 405, "%s: use POST", ri->path);
    json_t *j = NULL;
    if (pj_parse(ri->body ? ri->body : "", ri->body_len, NUBO_INGRESS_MAX_SMALL_BODY, &j, err) < 0)
        return ctl_err_status(err, 400);
    cleanup_free struct nubo_ingress_ports_report *r = xmalloc(sizeof(*r));
    int rc = nubo_ingress_ports_report_decode(j, r, err);
    json_decref(j);
    if (rc < 0)
        return -1;
    struct ing_metro *m = ing_metro(ctx, r->metro);
    for (size_t i = 0; i < r->n_left_out; i++) {
        bool known = false;
        for (size_t k = 0; m->left_out && k < m->left_out->n_left_out; k++)
            known = known || m->left_out->left_out[k].port == r->left_out[i].port;
        if (!known)
            log_warnx("metro %s: the ingress left out public port %lld: %s", m->name,
                      (long long)r->left_out[i].port, r->left_out[i].error);
    }
    free(m->left_out);
    m->left_out = NULL;
    if (r->n_left_out)
        m->left_out = steal_pointer(&r);
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, json_object());
    return 0;
}

int ctl_ingress_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err)
{
    char token[NUBO_AGENT_TOKEN_MAX];
    if (ctl_token_file(ctx->cfg.ingress_token_file, "ingress", token, err) < 0)
        return nubo_error_wrap(err, "[ingress] token_file");
    nubo_sha256_hex(token, strlen(token), ctx->ingress_token_hash);
    return 0;
}

/* POST /traffic (a metro's counters) and /wake (a held connection): scale-to-zero. */
static int ing_s2z(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                   struct nubo_err *err)
{
    if (ri->method != EVHTTP_REQ_POST)
        return nubo_error_http(err, 405, "%s: use POST", ri->path);
    const char *metro = NULL;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "metro"))
            metro = kv->value;
    }
    json_t *j = NULL;
    if (pj_parse(ri->body ? ri->body : "", ri->body_len, NUBO_INGRESS_MAX_SMALL_BODY, &j, err) < 0)
        return ctl_err_status(err, 400);
    int rc;
    if (strcmp(rest, "/traffic") == 0) {
        struct nubo_ingress_traffic t;
        rc = nubo_ingress_traffic_decode(j, &t, err);
        json_decref(j);
        if (rc < 0)
            return -1;
        ctl_instances_ingress(ctx, &t);
        rc = ctl_s2z_traffic(ctx, &t, err);
        ctl_autoscale_traffic(ctx, &t);
        nubo_ingress_traffic_free(&t);
        if (rc < 0)
            return -1;
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, json_object());
        return 0;
    }
    struct nubo_ingress_wake_req w;
    rc = nubo_ingress_wake_req_decode(j, &w, err);
    json_decref(j);
    if (rc < 0)
        return -1;
    if (metro == NULL || !nubo_name_valid(metro))
        return nubo_error_http(err, 400, "wake: give ?metro=<metro name>");
    struct nubo_ingress_wake_resp r;
    if (ctl_s2z_wake(ctx, metro, w.service, w.instance, &r, err) < 0)
        return -1;
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, nubo_ingress_wake_resp_encode(&r));
    return 0;
}

int ctl_handle_ingress(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                       struct nubo_err *err)
{
    ri->route = CTL_R_INGRESS_WATCH;
    const char *token = ctl_bearer(ri->req);
    char hash[NUBO_SHA256_HEX_LEN + 1];
    if (token)
        nubo_sha256_hex(token, strlen(token), hash);
    if (token == NULL || ctx->ingress_token_hash[0] == '\0' ||
        strcmp(hash, ctx->ingress_token_hash) != 0)
        return nubo_error_http(err, 401,
                               "missing or unknown ingress token: send Authorization: Bearer "
                               "<the [ingress] token_file contents>");
    if (strcmp(rest, "/traffic") == 0 || strcmp(rest, "/wake") == 0)
        return ing_s2z(ctx, ri, rest, err);
    if (strcmp(rest, "/ports") == 0)
        return ing_ports(ctx, ri, err);
    if (strcmp(rest, "/watch") != 0)
        return nubo_error_http(err, 404, "no endpoint %.200s (watch, traffic, wake, ports)",
                               ri->path);
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "%s: use GET", ri->path);
    int64_t version, timeout_ms;
    if (ctl_watch_params(ri, NUBO_INGRESS_WATCH_TIMEOUT_MAX_MS, &version, &timeout_ms, err) < 0)
        return -1;
    const char *metro = NULL;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (!strcmp(kv->key, "metro"))
            metro = kv->value; /* the last one, as given */
    }
    if (metro == NULL || !nubo_name_valid(metro))
        return nubo_error_http(err, 400,
                               "watch: give ?metro=<metro name> (the metro this ingress serves)");
    struct ing_metro *m = ing_metro(ctx, metro);
    if (version != m->version || timeout_ms == 0) {
        cleanup_free char *text = ing_set(ctx, m);
        ctl_reply_text(ctx, ri->req, ri->route, text, strlen(text));
        return 0;
    }
    ctl_park(ctx, ri, &m->watches, timeout_ms, ing_timeout, m, NULL);
    return 0;
}

void ctl_ingress_release(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->ing_metros, e)
        ctl_park_drain(&((struct ing_metro *)e->val)->watches);
}

void ctl_ingress_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->ing_metros, e)
    {
        struct ing_metro *m = e->val;
        ctl_park_drain(&m->watches);
        event_free(m->flush_ev);
        free(m->left_out);
        free(m);
    }
    ctl_map_clear(&ctx->ing_metros);
}
