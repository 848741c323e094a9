/* Codecs for the controller -> ingress watch reply (PROTOCOL.md, second part); see ingress.h. */
#include "ingress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            goto fail;                                                                             \
    } while (0)

static const struct {
    const char *name;
    unsigned bit;
} handler_names[] = {
    {"http", NUBO_HANDLER_HTTP},
    {"tls", NUBO_HANDLER_TLS},
    {"redirect", NUBO_HANDLER_REDIRECT},
};

unsigned nubo_handler_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(handler_names) / sizeof(handler_names[0]); i++)
        if (strcmp(s, handler_names[i].name) == 0)
            return handler_names[i].bit;
    return 0;
}

json_t *nubo_handlers_encode(unsigned handlers)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < sizeof(handler_names) / sizeof(handler_names[0]); i++)
        if (handlers & handler_names[i].bit)
            json_array_append_new(a, json_string(handler_names[i].name));
    return a;
}

int nubo_handlers_decode(json_t *o, const char *ctx, const char *key, bool required,
                         unsigned *out, struct nubo_err *err)
{
    *out = 0;
    json_t *a = json_object_get(o, key);
    if (a == NULL || json_is_null(a)) {
        if (required)
            return nubo_error_http(err, 400, "%s%s%s: is required", ctx, *ctx ? "." : "", key);
        return 0;
    }
    if (!json_is_array(a) || json_array_size(a) > 8)
        return nubo_error_http(err, 400, "%s%s%s: must be an array of handlers (http, tls, redirect)",
                               ctx, *ctx ? "." : "", key);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        unsigned bit = json_is_string(v) ? nubo_handler_parse(json_string_value(v)) : 0;
        if (bit == 0)
            return nubo_error_http(err, 400, "%s%s%s[%zu]: must be one of http, tls, redirect", ctx,
                                   *ctx ? "." : "", key, i);
        if (*out & bit)
            return nubo_error_http(err, 400, "%s%s%s: handler '%s' is listed twice", ctx,
                                   *ctx ? "." : "", key, json_string_value(v));
        *out |= bit;
    }
    return 1;
}

static json_t *port_encode(const struct nubo_ingress_port *p)
{
    return json_pack("{s:I, s:I, s:o}", "port", (json_int_t)p->port, "destination_port",
                     (json_int_t)p->destination_port, "handlers", nubo_handlers_encode(p->handlers));
}

static int port_decode(json_t *j, const char *ctx, struct nubo_ingress_port *out,
                       struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    if (pj_int(j, ctx, "port", true, 1, 65535, &out->port, err) < 0 ||
        pj_int(j, ctx, "destination_port", true, 1, 65535, &out->destination_port, err) < 0 ||
        nubo_handlers_decode(j, ctx, "handlers", false, &out->handlers, err) < 0)
        return -1;
    return 0;
}

static json_t *domain_encode(const struct nubo_ingress_domain *d)
{
    return json_pack("{s:s, s:o}", "fqdn", d->fqdn, "certificate",
                     d->certificate[0] ? json_string(d->certificate) : json_null());
}

static int domain_decode(json_t *j, const char *ctx, struct nubo_ingress_domain *out,
                         struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    if (pj_str(j, ctx, "fqdn", true, out->fqdn, sizeof(out->fqdn), err) < 0)
        return -1;
    json_t *c = json_object_get(j, "certificate");
    if (c == NULL || json_is_null(c))
        return 0;
    /* Accept the uuid string, or an object carrying it (as the public API shows it). */
    json_t *u = json_is_object(c) ? json_object_get(c, "uuid") : c;
    if (!json_is_string(u) || !nubo_uuid_valid(json_string_value(u)))
        return nubo_error_http(err, 400, "%s.certificate: must be a certificate uuid or null", ctx);
    snprintf(out->certificate, sizeof(out->certificate), "%s", json_string_value(u));
    return 0;
}

static json_t *backend_encode(const struct nubo_ingress_backend *b)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "instance", b->instance, "name", b->name, "node",
                     b->node, "ip", b->ip, "state", nubo_state_name(b->state));
}

static int backend_decode(json_t *j, const char *ctx, struct nubo_ingress_backend *out,
                          struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    char st[16] = "running";
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    if (pj_str(j, ctx, "instance", true, out->instance, sizeof(out->instance), err) < 0 ||
        pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_str(j, ctx, "node", false, out->node, sizeof(out->node), err) < 0 ||
        pj_str(j, ctx, "ip", true, out->ip, sizeof(out->ip), err) < 0 ||
        pj_str(j, ctx, "state", false, st, sizeof(st), err) < 0)
        return -1;
    if (!nubo_uuid_valid(out->instance))
        return nubo_error_http(err, 400, "%s.instance: '%s' is not a UUID", ctx, out->instance);
    if (!nubo_ipv4_valid(out->ip))
        return nubo_error_http(err, 400, "%s.ip: '%s' is not an IPv4 address", ctx, out->ip);
    if (nubo_state_parse(st, &out->state) < 0)
        return nubo_error_http(err, 400, "%s.state: '%s' is not an instance state", ctx, st);
    return 0;
}

json_t *nubo_ingress_service_encode(const struct nubo_ingress_service *s)
{
    json_t *ports = json_array(), *domains = json_array(), *backends = json_array();
    for (size_t i = 0; ports && i < s->n_ports; i++)
        json_array_append_new(ports, port_encode(&s->ports[i]));
    for (size_t i = 0; domains && i < s->n_domains; i++)
        json_array_append_new(domains, domain_encode(&s->domains[i]));
    for (size_t i = 0; backends && i < s->n_backends; i++)
        json_array_append_new(backends, backend_encode(&s->backends[i]));
    return json_pack("{s:s, s:s, s:I, s:I, s:o, s:o, s:o}", "uuid", s->uuid, "name", s->name,
                     "soft_limit", (json_int_t)s->soft_limit, "hard_limit",
                     (json_int_t)s->hard_limit, "ports", ports, "domains", domains, "backends",
                     backends);
}

void nubo_ingress_service_free(struct nubo_ingress_service *s)
{
    if (s == NULL)
        return;
    free(s->ports);
    free(s->domains);
    free(s->backends);
    s->ports = NULL;
    s->domains = NULL;
    s->backends = NULL;
    s->n_ports = s->n_domains = s->n_backends = 0;
}

int nubo_ingress_service_decode(json_t *j, const char *ctx, struct nubo_ingress_service *out,
                                struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    out->soft_limit = 1;
    out->hard_limit = 65535;
    TRY(pj_str(j, ctx, "uuid", true, out->uuid, sizeof(out->uuid), err));
    if (!nubo_uuid_valid(out->uuid)) {
        nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", ctx, out->uuid);
        goto fail;
    }
    TRY(pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err));
    TRY(pj_int(j, ctx, "soft_limit", false, 1, 65535, &out->soft_limit, err));
    TRY(pj_int(j, ctx, "hard_limit", false, 1, 65535, &out->hard_limit, err));
    json_t *a;
    char sub[96];
    size_t i;
    json_t *v;

    TRY(pj_array(j, ctx, "ports", false, NUBO_INGRESS_MAX_PORTS, &a, err));
    if (a) {
        out->ports = calloc(json_array_size(a) + 1, sizeof(*out->ports));
        if (out->ports == NULL)
            goto oom;
        json_array_foreach(a, i, v)
        {
            snprintf(sub, sizeof(sub), "%s.ports[%zu]", ctx, i);
            TRY(port_decode(v, sub, &out->ports[i], err));
            out->n_ports = i + 1;
        }
    }
    TRY(pj_array(j, ctx, "domains", false, NUBO_INGRESS_MAX_DOMAINS, &a, err));
    if (a) {
        out->domains = calloc(json_array_size(a) + 1, sizeof(*out->domains));
        if (out->domains == NULL)
            goto oom;
        json_array_foreach(a, i, v)
        {
            snprintf(sub, sizeof(sub), "%s.domains[%zu]", ctx, i);
            TRY(domain_decode(v, sub, &out->domains[i], err));
            out->n_domains = i + 1;
        }
    }
    TRY(pj_array(j, ctx, "backends", false, NUBO_INGRESS_MAX_BACKENDS, &a, err));
    if (a) {
        out->backends = calloc(json_array_size(a) + 1, sizeof(*out->backends));
        if (out->backends == NULL)
            goto oom;
        json_array_foreach(a, i, v)
        {
            snprintf(sub, sizeof(sub), "%s.backends[%zu]", ctx, i);
            TRY(backend_decode(v, sub, &out->backends[i], err));
            out->n_backends = i + 1;
        }
    }
    return 0;
oom:
    nubo_error_http(err, 500, "out of memory");
fail:
    nubo_ingress_service_free(out);
    return -1;
}

json_t *nubo_ingress_cert_encode(const struct nubo_ingress_cert *c)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "uuid", c->uuid, "name", c->name, "cn", c->cn,
                     "chain", c->chain ? c->chain : "", "pkey", c->pkey ? c->pkey : "");
}

void nubo_ingress_cert_free(struct nubo_ingress_cert *c)
{
    if (c == NULL)
        return;
    free(c->chain);
    free(c->pkey);
    c->chain = c->pkey = NULL;
}

int nubo_ingress_cert_decode(json_t *j, const char *ctx, struct nubo_ingress_cert *out,
                             struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be an object", ctx);
    TRY(pj_str(j, ctx, "uuid", true, out->uuid, sizeof(out->uuid), err));
    if (!nubo_uuid_valid(out->uuid)) {
        nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", ctx, out->uuid);
        goto fail;
    }
    TRY(pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err));
    TRY(pj_str(j, ctx, "cn", true, out->cn, sizeof(out->cn), err));
    TRY(pj_strdup(j, ctx, "chain", true, NUBO_INGRESS_MAX_PEM, &out->chain, err));
    TRY(pj_strdup(j, ctx, "pkey", true, NUBO_INGRESS_MAX_PEM, &out->pkey, err));
    return 0;
fail:
    nubo_ingress_cert_free(out);
    return -1;
}

json_t *nubo_ingress_watch_resp_encode(const struct nubo_ingress_watch_resp *w)
{
    json_t *s = json_array(), *c = json_array();
    for (size_t i = 0; s && i < w->n_services; i++)
        json_array_append_new(s, nubo_ingress_service_encode(&w->services[i]));
    for (size_t i = 0; c && i < w->n_certificates; i++)
        json_array_append_new(c, nubo_ingress_cert_encode(&w->certificates[i]));
    return json_pack("{s:I, s:s, s:s, s:o, s:o}", "version", (json_int_t)w->version, "metro",
                     w->metro, "domain_suffix", w->domain_suffix, "services", s, "certificates",
                     c);
}

void nubo_ingress_watch_resp_free(struct nubo_ingress_watch_resp *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; w->services && i < w->n_services; i++)
        nubo_ingress_service_free(&w->services[i]);
    for (size_t i = 0; w->certificates && i < w->n_certificates; i++)
        nubo_ingress_cert_free(&w->certificates[i]);
    free(w->services);
    free(w->certificates);
    w->services = NULL;
    w->certificates = NULL;
    w->n_services = w->n_certificates = 0;
}

int nubo_ingress_watch_resp_decode(json_t *j, struct nubo_ingress_watch_resp *out,
                                   struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "ingress watch response: must be a JSON object");
    json_t *a;
    size_t i;
    json_t *v;
    char ctx[48];
    TRY(pj_int(j, "", "version", true, 0, INT64_C(1) << 62, &out->version, err));
    TRY(pj_str(j, "", "metro", true, out->metro, sizeof(out->metro), err));
    TRY(pj_str(j, "", "domain_suffix", false, out->domain_suffix, sizeof(out->domain_suffix), err));
    TRY(pj_array(j, "", "services", false, NUBO_INGRESS_MAX_SERVICES, &a, err));
    if (a) {
        out->services = calloc(json_array_size(a) + 1, sizeof(*out->services));
        if (out->services == NULL)
            goto oom;
        json_array_foreach(a, i, v)
        {
            snprintf(ctx, sizeof(ctx), "services[%zu]", i);
            TRY(nubo_ingress_service_decode(v, ctx, &out->services[i], err));
            out->n_services = i + 1;
        }
    }
    TRY(pj_array(j, "", "certificates", false, NUBO_INGRESS_MAX_CERTS, &a, err));
    if (a) {
        out->certificates = calloc(json_array_size(a) + 1, sizeof(*out->certificates));
        if (out->certificates == NULL)
            goto oom;
        json_array_foreach(a, i, v)
        {
            snprintf(ctx, sizeof(ctx), "certificates[%zu]", i);
            TRY(nubo_ingress_cert_decode(v, ctx, &out->certificates[i], err));
            out->n_certificates = i + 1;
        }
    }
    return 0;
oom:
    nubo_error_http(err, 500, "out of memory");
fail:
    nubo_ingress_watch_resp_free(out);
    return -1;
}

/* ---- scale-to-zero: traffic reports and wake requests ---- */

json_t *nubo_ingress_traffic_encode(const struct nubo_ingress_traffic *t)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < t->n_instances; i++)
    {
        const struct nubo_ingress_traffic_item *it = &t->instances[i];
        json_array_append_new(
            a, json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:I, s:I, s:I, s:I}", "instance",
                         it->instance, "current", (json_int_t)it->current, "idle_ms",
                         (json_int_t)it->idle_ms, "silent_ms", (json_int_t)it->silent_ms,
                         "quiet_ms", (json_int_t)it->quiet_ms, "draining", it->draining, "nconns", (json_int_t)it->nconns, "nreqs",
                         (json_int_t)it->nreqs, "nqueued", (json_int_t)it->nqueued, "ntotal",
                         (json_int_t)it->ntotal));
    }
    return json_pack("{s:s, s:o}", "metro", t->metro, "instances", a);
}

void nubo_ingress_traffic_free(struct nubo_ingress_traffic *t)
{
    if (t == NULL)
        return;
    free(t->instances);
    t->instances = NULL;
    t->n_instances = 0;
}

int nubo_ingress_traffic_decode(json_t *j, struct nubo_ingress_traffic *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "traffic report: must be a JSON object");
    json_t *a;
    if (pj_str(j, "", "metro", true, out->metro, sizeof(out->metro), err) < 0 ||
        pj_array(j, "", "instances", true, NUBO_INGRESS_MAX_BACKENDS, &a, err) < 0)
        return -1;
    out->instances = calloc(json_array_size(a) + 1, sizeof(*out->instances));
    if (out->instances == NULL)
        return nubo_error_http(err, 500, "out of memory");
    size_t i;
    json_t *v;
    char ctx[48];
    json_array_foreach(a, i, v)
    {
        struct nubo_ingress_traffic_item *it = &out->instances[i];
        snprintf(ctx, sizeof(ctx), "instances[%zu]", i);
        if (!json_is_object(v)) {
            nubo_error_http(err, 400, "%s: must be an object", ctx);
            goto fail;
        }
        TRY(pj_str(v, ctx, "instance", true, it->instance, sizeof(it->instance), err));
        if (!nubo_uuid_valid(it->instance)) {
            nubo_error_http(err, 400, "%s.instance: '%s' is not a UUID", ctx, it->instance);
            goto fail;
        }
        TRY(pj_int(v, ctx, "current", true, 0, INT64_C(1) << 40, &it->current, err));
        TRY(pj_int(v, ctx, "idle_ms", true, 0, INT64_C(1) << 50, &it->idle_ms, err));
        it->silent_ms = -1;
        TRY(pj_int(v, ctx, "silent_ms", false, 0, INT64_C(1) << 50, &it->silent_ms, err));
        it->quiet_ms = -1;
        TRY(pj_int(v, ctx, "quiet_ms", false, 0, INT64_C(1) << 50, &it->quiet_ms, err));
        TRY(pj_bool(v, ctx, "draining", false, &it->draining, err));
        TRY(pj_int(v, ctx, "nconns", false, 0, INT64_C(1) << 40, &it->nconns, err));
        TRY(pj_int(v, ctx, "nreqs", false, 0, INT64_C(1) << 40, &it->nreqs, err));
        TRY(pj_int(v, ctx, "nqueued", false, 0, INT64_C(1) << 40, &it->nqueued, err));
        TRY(pj_int(v, ctx, "ntotal", false, 0, INT64_C(1) << 62, &it->ntotal, err));
        out->n_instances = i + 1;
    }
    return 0;
fail:
    nubo_ingress_traffic_free(out);
    return -1;
}

json_t *nubo_ingress_ports_report_encode(const struct nubo_ingress_ports_report *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_left_out; i++)
        json_array_append_new(a, json_pack("{s:I, s:s}", "port", (json_int_t)r->left_out[i].port,
                                           "error", r->left_out[i].error));
    return json_pack("{s:s, s:o}", "metro", r->metro, "left_out", a);
}

int nubo_ingress_ports_report_decode(json_t *j, struct nubo_ingress_ports_report *out,
                                     struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "ports report: must be a JSON object");
    json_t *a;
    if (pj_str(j, "", "metro", true, out->metro, sizeof(out->metro), err) < 0 ||
        pj_array(j, "", "left_out", true, NUBO_INGRESS_MAX_LEFT_OUT, &a, err) < 0)
        return -1;
    if (!nubo_name_valid(out->metro))
        return nubo_error_http(err, 400, "metro: '%s' is not a metro name", out->metro);
    size_t i;
    json_t *v;
    char ctx[48];
    json_array_foreach(a, i, v)
    {
        struct nubo_ingress_port_left_out *p = &out->left_out[i];
        snprintf(ctx, sizeof(ctx), "left_out[%zu]", i);
        if (!json_is_object(v))
            return nubo_error_http(err, 400, "%s: must be an object {port, error}", ctx);
        if (pj_int(v, ctx, "port", true, 1, 65535, &p->port, err) < 0 ||
            pj_str(v, ctx, "error", true, p->error, sizeof(p->error), err) < 0)
            return -1;
        out->n_left_out = i + 1;
    }
    return 0;
}

json_t *nubo_ingress_wake_req_encode(const struct nubo_ingress_wake_req *r)
{
    json_t *j = json_pack("{s:s}", "service", r->service);
    if (j && r->instance[0])
        json_object_set_new(j, "instance", json_string(r->instance));
    return j;
}

int nubo_ingress_wake_req_decode(json_t *j, struct nubo_ingress_wake_req *out,
                                 struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "wake request: must be a JSON object");
    if (pj_str(j, "", "service", true, out->service, sizeof(out->service), err) < 0)
        return -1;
    if (!nubo_uuid_valid(out->service))
        return nubo_error_http(err, 400, "service: '%s' is not a UUID", out->service);
    if (pj_str(j, "", "instance", false, out->instance, sizeof(out->instance), err) < 0)
        return -1;
    if (out->instance[0] && !nubo_uuid_valid(out->instance))
        return nubo_error_http(err, 400, "instance: '%s' is not a UUID", out->instance);
    return 0;
}

json_t *nubo_ingress_wake_resp_encode(const struct nubo_ingress_wake_resp *r)
{
    return json_pack("{s:I, s:I}", "woken", (json_int_t)r->woken, "starting",
                     (json_int_t)r->starting);
}

int nubo_ingress_wake_resp_decode(json_t *j, struct nubo_ingress_wake_resp *out,
                                  struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "wake reply: must be a JSON object");
    if (pj_int(j, "", "woken", true, 0, INT64_C(1) << 40, &out->woken, err) < 0 ||
        pj_int(j, "", "starting", true, 0, INT64_C(1) << 40, &out->starting, err) < 0)
        return -1;
    return 0;
}
