/* Service group and certificate requests: strict decoders and the platform's handler rules;
 * see service.h. */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CTXJ(ctx) (*(ctx) ? "." : "")

unsigned nubo_svc_default_handlers(int64_t port)
{
    if (port == 80)
        return NUBO_HANDLER_HTTP;
    if (port == 443)
        return NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS;
    return NUBO_HANDLER_TLS;
}

int nubo_svc_port_check(const struct nubo_ingress_port *p, const char *ctx, struct nubo_err *err)
{
    unsigned h = p->handlers;
    bool http = h & NUBO_HANDLER_HTTP, tls = h & NUBO_HANDLER_TLS,
         redirect = h & NUBO_HANDLER_REDIRECT;
    if (p->port < 1 || p->port > 65535 || p->destination_port < 1 || p->destination_port > 65535)
        return nubo_error_http(err, 400, "%s: ports must be 1..65535", ctx);
    if (p->port == 80) {
        if (!http || tls)
            return nubo_error_http(err, 400,
                                   "%s: port 80 needs the 'http' handler and no 'tls' (e.g. "
                                   "handlers [\"http\",\"redirect\"])",
                                   ctx);
    } else if (p->port == 443) {
        if (!http || !tls)
            return nubo_error_http(err, 400, "%s: port 443 needs the handlers 'http' and 'tls'",
                                   ctx);
    } else if (!tls || http) {
        return nubo_error_http(err, 400,
                               "%s: port %lld carries raw TCP behind TLS: handlers 'tls' without "
                               "'http' (http is only for 80 and 443)",
                               ctx, (long long)p->port);
    }
    if (redirect && p->port != 80)
        return nubo_error_http(err, 400,
                               "%s: 'redirect' is only allowed on port 80 (it redirects to 443)",
                               ctx);
    return 0;
}

static int port_decode(json_t *e, const char *ctx, struct nubo_ingress_port *out,
                       struct nubo_err *err)
{
    static const char *const keys[] = {"port", "destination_port", "handlers", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object {port, destination_port, handlers}",
                               ctx);
    if (pj_only_keys(e, ctx, keys, err) < 0 ||
        pj_int(e, ctx, "port", true, 1, 65535, &out->port, err) < 0)
        return -1;
    int rc = pj_int(e, ctx, "destination_port", false, 1, 65535, &out->destination_port, err);
    if (rc < 0)
        return -1;
    if (rc == 0)
        out->destination_port = out->port;
    rc = nubo_handlers_decode(e, ctx, "handlers", false, &out->handlers, err);
    if (rc < 0)
        return -1;
    if (rc == 0 || out->handlers == 0)
        out->handlers = nubo_svc_default_handlers(out->port);
    return nubo_svc_port_check(out, ctx, err);
}

int nubo_svc_ports_decode(json_t *a, const char *ctx, struct nubo_ingress_port *out,
                          size_t max, size_t *n_out, struct nubo_err *err)
{
    *n_out = 0;
    if (!json_is_array(a) || json_array_size(a) > max)
        return nubo_error_http(err, 400, "%s: must be an array of at most %zu services", ctx, max);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        char c[96];
        snprintf(c, sizeof(c), "%s[%zu]", ctx, i);
        if (port_decode(e, c, &out[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (out[k].port == out[i].port)
                return nubo_error_http(err, 400, "%s: port %lld is published twice", c,
                                       (long long)out[i].port);
        *n_out = i + 1;
    }
    return 0;
}

json_t *nubo_svc_ports_encode(const struct nubo_ingress_port *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_pack("{s:I, s:I, s:o}", "port", (json_int_t)p[i].port,
                                           "destination_port", (json_int_t)p[i].destination_port,
                                           "handlers", nubo_handlers_encode(p[i].handlers)));
    return a;
}

static bool label_ok(const char *s, size_t len)
{
    if (len == 0 || len > 63 || s[0] == '-' || s[len - 1] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

bool nubo_fqdn_valid(const char *s, bool wildcard)
{
    size_t len = strlen(s);
    if (len == 0 || len > NUBO_FQDN_MAX || strchr(s, '.') == NULL)
        return false;
    const char *p = s;
    bool first = true;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        bool star = first && wildcard && l == 1 && p[0] == '*';
        if (!star && !label_ok(p, l))
            return false;
        if (dot == NULL)
            break;
        p = dot + 1;
        if (*p == '\0')
            return false;
        first = false;
    }
    return true;
}

bool nubo_cn_matches(const char *cn, const char *fqdn)
{
    if (strcmp(cn, fqdn) == 0)
        return true;
    if (strncmp(cn, "*.", 2) != 0)
        return false;
    const char *dot = strchr(fqdn, '.');
    return dot && strcmp(dot + 1, cn + 2) == 0;
}

static int domain_decode(json_t *e, const char *ctx, struct nubo_svc_domain_req *out,
                         struct nubo_err *err)
{
    static const char *const keys[] = {"name", "fqdn", "certificate", NULL};
    memset(out, 0, sizeof(*out));
    if (json_is_string(e)) {
        if (json_string_length(e) > NUBO_FQDN_MAX)
            return nubo_error_http(err, 400, "%s: a domain is at most %d bytes", ctx,
                                   NUBO_FQDN_MAX);
        snprintf(out->name, sizeof(out->name), "%s", json_string_value(e));
    } else if (json_is_object(e)) {
        if (pj_only_keys(e, ctx, keys, err) < 0)
            return -1;
        int a = pj_str(e, ctx, "name", false, out->name, sizeof(out->name), err);
        if (a < 0)
            return -1;
        char fq[NUBO_FQDN_MAX + 1] = "";
        int b = pj_str(e, ctx, "fqdn", false, fq, sizeof(fq), err);
        if (b < 0)
            return -1;
        if (a && b)
            return nubo_error_http(err, 400, "%s: give name or fqdn, not both", ctx);
        if (b) {
            memcpy(out->name, fq, sizeof(out->name));
            out->is_fqdn = true;
        }
        json_t *c = json_object_get(e, "certificate");
        if (c && !json_is_null(c)) {
            static const char *const ckeys[] = {"uuid", "name", "state", NULL};
            char cc[128];
            snprintf(cc, sizeof(cc), "%s.certificate", ctx);
            if (json_is_string(c)) {
                const char *v = json_string_value(c);
                if (nubo_uuid_valid(v))
                    snprintf(out->cert_uuid, sizeof(out->cert_uuid), "%s", v);
                else if (nubo_name_valid(v))
                    snprintf(out->cert_name, sizeof(out->cert_name), "%s", v);
                else
                    return nubo_error_http(err, 400, "%s: not a certificate uuid or name", cc);
            } else if (!json_is_object(c) || pj_only_keys(c, cc, ckeys, err) < 0 ||
                       pj_str(c, cc, "uuid", false, out->cert_uuid, sizeof(out->cert_uuid), err) <
                           0 ||
                       pj_str(c, cc, "name", false, out->cert_name, sizeof(out->cert_name), err) <
                           0) {
                if (!json_is_object(c))
                    nubo_error_http(err, 400, "%s: must be {\"uuid\"} or {\"name\"}", cc);
                return -1;
            }
            if (out->cert_uuid[0] && !nubo_uuid_valid(out->cert_uuid))
                return nubo_error_http(err, 400, "%s.uuid: '%s' is not a UUID", cc,
                                       out->cert_uuid);
            if (!out->cert_uuid[0] && !out->cert_name[0])
                return nubo_error_http(err, 400, "%s: give its uuid or name", cc);
        }
    } else {
        return nubo_error_http(err, 400, "%s: must be {\"name\"} or {\"fqdn\"}", ctx);
    }
    if (out->name[0] == '\0')
        return nubo_error_http(err, 400, "%s: needs a name or fqdn", ctx);
    /* lower-case: DNS names are case-insensitive, the ingress matches them as given */
    for (char *p = out->name; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (strchr(out->name, '.'))
        out->is_fqdn = true;
    if (out->is_fqdn ? !nubo_fqdn_valid(out->name, false) : !nubo_name_valid(out->name))
        return nubo_error_http(err, 400,
                               "%s: '%s' is not a valid %s ([a-z0-9-] labels, 1..63 bytes each)",
                               ctx, out->name, out->is_fqdn ? "domain name" : "name");
    return 0;
}

int nubo_svc_domains_decode(json_t *a, const char *ctx, struct nubo_svc_domain_req *out,
                            size_t max, size_t *n_out, struct nubo_err *err)
{
    *n_out = 0;
    if (!json_is_array(a) || json_array_size(a) > max)
        return nubo_error_http(err, 400, "%s: must be an array of at most %zu domains", ctx, max);
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        char c[96];
        snprintf(c, sizeof(c), "%s[%zu]", ctx, i);
        if (domain_decode(e, c, &out[i], err) < 0)
            return -1;
        for (size_t k = 0; k < i; k++)
            if (strcmp(out[k].name, out[i].name) == 0)
                return nubo_error_http(err, 400, "%s: domain '%s' is listed twice", c, out[i].name);
        *n_out = i + 1;
    }
    return 0;
}

void nubo_svc_create_req_init(struct nubo_svc_create_req *r)
{
    memset(r, 0, sizeof(*r));
    r->soft_limit = 1;
    r->hard_limit = NUBO_SVC_LIMIT_MAX;
}

static int svc_create_decode(json_t *j, bool inline_group, struct nubo_svc_create_req *out,
                             struct nubo_err *err);

bool nubo_svc_name_reserved(const char *name)
{
    return strcmp(name, "autoscale") == 0;
}

/* The spec draws POST /v1/services with the domains inside each services[] entry; nubo (and
 * the SDKs) keep them at the group level. Both are accepted: *flat is j with the entries'
 * domains gathered at the top (a new reference), or j itself when there are none. */
static int hoist_domains(json_t *j, const char *ctx, json_t **flat, struct nubo_err *err)
{
    json_t *s = json_object_get(j, "services");
    size_t i;
    json_t *e;
    bool inner = false;
    json_array_foreach(s, i, e) inner = inner || json_object_get(e, "domains") != NULL;
    if (!inner) {
        *flat = json_incref(j);
        return 0;
    }
    if (json_object_get(j, "domains"))
        return nubo_error_http(err, 400,
                               "%s%sdomains: give the domains at the group level or inside "
                               "services[], not both",
                               ctx, CTXJ(ctx));
    json_t *c = json_deep_copy(j);
    json_t *all = json_array();
    json_array_foreach(json_object_get(c, "services"), i, e)
    {
        json_t *d = json_object_get(e, "domains");
        if (d && !json_is_array(d)) {
            json_decref(all);
            json_decref(c);
            return nubo_error_http(err, 400, "%s%sservices[%zu].domains: must be an array", ctx,
                                   CTXJ(ctx), i);
        }
        if (d)
            json_array_extend(all, d);
        json_object_del(e, "domains");
    }
    json_object_set_new(c, "domains", all);
    *flat = c;
    return 0;
}

int nubo_svc_create_req_decode(json_t *j, bool inline_group, struct nubo_svc_create_req *out,
                               struct nubo_err *err)
{
    const char *ctx0 = inline_group ? "service_group" : "";
    json_t *flat = NULL;
    nubo_svc_create_req_init(out);
    if (json_is_object(j) && json_is_array(json_object_get(j, "services")) &&
        hoist_domains(j, ctx0, &flat, err) < 0)
        return -1;
    int rc = svc_create_decode(flat ? flat : j, inline_group, out, err);
    json_decref(flat);
    return rc;
}

static int svc_create_decode(json_t *j, bool inline_group, struct nubo_svc_create_req *out,
                             struct nubo_err *err)
{
    static const char *const keys[] = {"name",       "metro",      "services", "domains",
                                       "soft_limit", "hard_limit", NULL};
    static const char *const inline_keys[] = {"services", "domains", "soft_limit", "hard_limit",
                                              NULL};
    const char *ctx = inline_group ? "service_group" : "";
    nubo_svc_create_req_init(out);
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "%s: must be a JSON object",
                               inline_group ? "service_group" : "service group");
    if (pj_only_keys(j, ctx, inline_group ? inline_keys : keys, err) < 0)
        return -1;
    if (!inline_group) {
        if (pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err) < 0 ||
            pj_str(j, ctx, "metro", false, out->metro, sizeof(out->metro), err) < 0)
            return -1;
        if (out->name[0] && !nubo_name_valid(out->name))
            return nubo_error_http(err, 400,
                                   "name: '%s' must be 1..63 bytes of [a-z0-9-], not starting or "
                                   "ending with '-'",
                                   out->name);
        if (nubo_svc_name_reserved(out->name))
            return nubo_error_http(err, 400,
                                   "name: '%s' is a word of the API's paths "
                                   "(/v1/services/%s); choose another",
                                   out->name, out->name);
        if (out->metro[0] && !nubo_name_valid(out->metro))
            return nubo_error_http(err, 400, "metro: '%s' is not a metro name", out->metro);
    }
    char c[64];
    snprintf(c, sizeof(c), "%s%sservices", ctx, CTXJ(ctx));
    json_t *s = json_object_get(j, "services");
    if (s == NULL || json_is_null(s) || json_array_size(s) == 0)
        return nubo_error_http(err, 400,
                               "%s: publish at least one port, e.g. [{\"port\":443,"
                               "\"destination_port\":8080,\"handlers\":[\"http\",\"tls\"]}]",
                               c);
    if (nubo_svc_ports_decode(s, c, out->ports, NUBO_SVC_MAX_PORTS, &out->n_ports, err) < 0)
        return -1;
    json_t *d = json_object_get(j, "domains");
    if (d && !json_is_null(d)) {
        snprintf(c, sizeof(c), "%s%sdomains", ctx, CTXJ(ctx));
        if (nubo_svc_domains_decode(d, c, out->domains, NUBO_SVC_MAX_DOMAINS, &out->n_domains,
                                    err) < 0)
            return -1;
        out->has_domains = true;
    }
    if (pj_int(j, ctx, "soft_limit", false, 1, NUBO_SVC_LIMIT_MAX, &out->soft_limit, err) < 0 ||
        pj_int(j, ctx, "hard_limit", false, 1, NUBO_SVC_LIMIT_MAX, &out->hard_limit, err) < 0)
        return -1;
    if (out->soft_limit > out->hard_limit)
        return nubo_error_http(err, 400, "%s%ssoft_limit (%lld) must not exceed hard_limit (%lld)",
                               ctx, CTXJ(ctx), (long long)out->soft_limit,
                               (long long)out->hard_limit);
    return 0;
}

static json_t *domains_req_encode(const struct nubo_svc_domain_req *d, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_pack("{s:s}", d[i].is_fqdn ? "fqdn" : "name", d[i].name);
        if (d[i].cert_uuid[0])
            json_object_set_new(o, "certificate", json_pack("{s:s}", "uuid", d[i].cert_uuid));
        else if (d[i].cert_name[0])
            json_object_set_new(o, "certificate", json_pack("{s:s}", "name", d[i].cert_name));
        json_array_append_new(a, o);
    }
    return a;
}

json_t *nubo_svc_create_req_encode(const struct nubo_svc_create_req *r, bool inline_group)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    if (!inline_group && r->name[0])
        json_object_set_new(o, "name", json_string(r->name));
    if (!inline_group && r->metro[0])
        json_object_set_new(o, "metro", json_string(r->metro));
    json_object_set_new(o, "services", nubo_svc_ports_encode(r->ports, r->n_ports));
    if (r->has_domains || r->n_domains)
        json_object_set_new(o, "domains", domains_req_encode(r->domains, r->n_domains));
    if (r->soft_limit != 1)
        json_object_set_new(o, "soft_limit", json_integer(r->soft_limit));
    if (r->hard_limit != NUBO_SVC_LIMIT_MAX)
        json_object_set_new(o, "hard_limit", json_integer(r->hard_limit));
    return o;
}

int nubo_svc_patch_decode(json_t *j, const char *ctx, bool ref_required,
                          struct nubo_svc_patch *out, struct nubo_err *err)
{
    static const char *const keys[] = {"uuid", "name", "prop", "op", "value", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400,
                               "%s%smust be an object {uuid|name, prop, op, value}", ctx,
                               *ctx ? ": " : "");
    if (pj_only_keys(j, ctx, keys, err) < 0 ||
        pj_str(j, ctx, "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(j, ctx, "name", false, out->name, sizeof(out->name), err) < 0)
        return -1;
    if (ref_required && !out->uuid[0] && !out->name[0])
        return nubo_error_http(err, 400, "%s%sname the service group by uuid or name", ctx,
                               *ctx ? ": " : "");
    if (!ref_required && (out->uuid[0] || out->name[0]))
        return nubo_error_http(err, 400,
                               "%s%sgive the service group in the path or in the body, not both",
                               ctx, *ctx ? ": " : "");
    if (out->uuid[0] && !nubo_uuid_valid(out->uuid))
        return nubo_error_http(err, 400, "%s%suuid: '%s' is not a UUID", ctx, CTXJ(ctx),
                               out->uuid);
    char prop[16], op[8];
    if (pj_str(j, ctx, "prop", true, prop, sizeof(prop), err) < 0 ||
        pj_str(j, ctx, "op", true, op, sizeof(op), err) < 0)
        return -1;
    if (!strcmp(prop, "services"))
        out->prop = NUBO_SVC_PROP_SERVICES;
    else if (!strcmp(prop, "domains"))
        out->prop = NUBO_SVC_PROP_DOMAINS;
    else if (!strcmp(prop, "soft_limit"))
        out->prop = NUBO_SVC_PROP_SOFT_LIMIT;
    else if (!strcmp(prop, "hard_limit"))
        out->prop = NUBO_SVC_PROP_HARD_LIMIT;
    else
        return nubo_error_http(err, 400,
                               "%s%sprop: '%s' is not services, domains, soft_limit or hard_limit",
                               ctx, CTXJ(ctx), prop);
    if (!strcmp(op, "set"))
        out->op = NUBO_SVC_OP_SET;
    else if (!strcmp(op, "add"))
        out->op = NUBO_SVC_OP_ADD;
    else if (!strcmp(op, "del"))
        out->op = NUBO_SVC_OP_DEL;
    else
        return nubo_error_http(err, 400, "%s%sop: '%s' is not set, add or del", ctx, CTXJ(ctx),
                               op);
    json_t *v = json_object_get(j, "value");
    char c[64];
    snprintf(c, sizeof(c), "%s%svalue", ctx, CTXJ(ctx));
    if (v == NULL)
        return nubo_error_http(err, 400, "%s: is required", c);
    switch (out->prop) {
    case NUBO_SVC_PROP_SOFT_LIMIT:
    case NUBO_SVC_PROP_HARD_LIMIT:
        if (out->op != NUBO_SVC_OP_SET)
            return nubo_error_http(err, 400, "%s%sop: %s only takes 'set'", ctx, CTXJ(ctx), prop);
        if (!json_is_integer(v) || json_integer_value(v) < 1 ||
            json_integer_value(v) > NUBO_SVC_LIMIT_MAX)
            return nubo_error_http(err, 400, "%s: %s must be an integer in 1..%d", c, prop,
                                   NUBO_SVC_LIMIT_MAX);
        out->limit = json_integer_value(v);
        return 0;
    case NUBO_SVC_PROP_SERVICES:
        if (json_is_object(v) || json_is_integer(v)) {
            json_t *a = json_pack("[O]", v);
            int rc;
            if (out->op == NUBO_SVC_OP_DEL) {
                out->ports[0].port = json_is_integer(v) ? json_integer_value(v)
                                                        : json_integer_value(json_object_get(v, "port"));
                out->n_ports = 1;
                rc = out->ports[0].port >= 1 && out->ports[0].port <= 65535
                         ? 0
                         : nubo_error_http(err, 400, "%s: name the port to remove (1..65535)", c);
            } else {
                rc = nubo_svc_ports_decode(a, c, out->ports, NUBO_SVC_MAX_PORTS, &out->n_ports,
                                           err);
            }
            json_decref(a);
            return rc;
        }
        if (!json_is_array(v) || json_array_size(v) > NUBO_SVC_MAX_PORTS)
            return nubo_error_http(err, 400, "%s: must be an array of at most %d services", c,
                                   NUBO_SVC_MAX_PORTS);
        if (out->op == NUBO_SVC_OP_DEL) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                json_t *p = json_is_object(e) ? json_object_get(e, "port") : e;
                if (!json_is_integer(p) || json_integer_value(p) < 1 ||
                    json_integer_value(p) > 65535)
                    return nubo_error_http(err, 400, "%s[%zu]: name the port to remove (1..65535)",
                                           c, i);
                out->ports[out->n_ports++].port = json_integer_value(p);
            }
            return 0;
        }
        return nubo_svc_ports_decode(v, c, out->ports, NUBO_SVC_MAX_PORTS, &out->n_ports, err);
    case NUBO_SVC_PROP_DOMAINS:
        if (json_is_object(v) || json_is_string(v)) {
            json_t *a = json_pack("[O]", v);
            int rc = nubo_svc_domains_decode(a, c, out->domains, NUBO_SVC_MAX_DOMAINS,
                                             &out->n_domains, err);
            json_decref(a);
            return rc;
        }
        return nubo_svc_domains_decode(v, c, out->domains, NUBO_SVC_MAX_DOMAINS, &out->n_domains,
                                       err);
    }
    return 0;
}

int nubo_cert_req_decode(json_t *j, struct nubo_cert_req *out, struct nubo_err *err)
{
    static const char *const keys[] = {"name", "cn", "chain", "pkey", NULL};
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "certificate: must be an object {name?, cn, chain, pkey}");
    if (pj_only_keys(j, "", keys, err) < 0 ||
        pj_str(j, "", "name", false, out->name, sizeof(out->name), err) < 0 ||
        pj_str(j, "", "cn", true, out->cn, sizeof(out->cn), err) < 0 ||
        pj_strdup(j, "", "chain", true, NUBO_CERT_MAX_PEM, &out->chain, err) < 0 ||
        pj_strdup(j, "", "pkey", true, NUBO_CERT_MAX_PEM, &out->pkey, err) < 0)
        goto fail;
    if (out->name[0] && !nubo_name_valid(out->name)) {
        nubo_error_http(err, 400, "name: '%s' must be 1..63 bytes of [a-z0-9-]", out->name);
        goto fail;
    }
    for (char *p = out->cn; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (!nubo_fqdn_valid(out->cn, true)) {
        nubo_error_http(err, 400, "cn: '%s' is not a domain name (e.g. www.example.com or "
                                  "*.example.com)",
                        out->cn);
        goto fail;
    }
    return 0;
fail:
    nubo_cert_req_free(out);
    return -1;
}

void nubo_cert_req_free(struct nubo_cert_req *r)
{
    free(r->chain);
    free(r->pkey);
    r->chain = r->pkey = NULL;
}

json_t *nubo_cert_req_encode(const struct nubo_cert_req *r)
{
    json_t *o = json_pack("{s:s, s:s, s:s}", "cn", r->cn, "chain", r->chain ? r->chain : "",
                          "pkey", r->pkey ? r->pkey : "");
    if (o && r->name[0])
        json_object_set_new(o, "name", json_string(r->name));
    return o;
}

/* ---- objects as the API shows them ---------------------------------------------------- */

#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((x) < 0)                                                                               \
            goto fail;                                                                             \
    } while (0)

json_t *nubo_api_ref_encode(const struct nubo_api_ref *r)
{
    return json_pack("{s:s, s:s}", "uuid", r->uuid, "name", r->name);
}

json_t *nubo_api_refs_encode(const struct nubo_api_ref *r, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, nubo_api_ref_encode(&r[i]));
    return a;
}

static int ref_decode(json_t *e, const char *ctx, struct nubo_api_ref *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object {uuid, name}", ctx);
    if (pj_str(e, ctx, "uuid", false, out->uuid, sizeof(out->uuid), err) < 0 ||
        pj_str(e, ctx, "name", false, out->name, sizeof(out->name), err) < 0)
        return -1;
    return 0;
}

int nubo_api_refs_decode(json_t *o, const char *ctx, const char *key, size_t max,
                         struct nubo_api_ref **out, size_t *n_out, struct nubo_err *err)
{
    json_t *a;
    *out = NULL;
    *n_out = 0;
    int rc = pj_array(o, ctx, key, false, max, &a, err);
    if (rc <= 0 || json_array_size(a) == 0)
        return rc;
    struct nubo_api_ref *v = calloc(json_array_size(a), sizeof(*v));
    if (v == NULL)
        return nubo_error_http(err, 500, "out of memory");
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
        char c[96];
        snprintf(c, sizeof(c), "%s%s%s[%zu]", ctx, CTXJ(ctx), key, i);
        if (ref_decode(e, c, &v[i], err) < 0) {
            free(v);
            return -1;
        }
    }
    *out = v;
    *n_out = json_array_size(a);
    return 1;
}

json_t *nubo_svc_domains_encode(const struct nubo_svc_domain *d, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o = json_pack("{s:s}", "fqdn", d[i].fqdn);
        /* no certificate of its own (the metro's wildcard serves it): left out, never null */
        if (d[i].has_cert)
            json_object_set_new(o, "certificate",
                                json_pack("{s:s, s:s, s:s}", "uuid", d[i].cert.uuid, "name",
                                          d[i].cert.name, "state", d[i].cert_state));
        json_array_append_new(a, o);
    }
    return a;
}

json_t *nubo_svc_group_ref_encode(const struct nubo_svc_group *g)
{
    /* services is a nubo addition: clients tell https from http URLs by it */
    return json_pack("{s:s, s:s, s:o, s:o}", "uuid", g->uuid, "name", g->name, "domains",
                     nubo_svc_domains_encode(g->domains, g->n_domains), "services",
                     nubo_svc_ports_encode(g->ports, g->n_ports));
}

/* The group's published ports with the ingress's error on each it left out. */
static json_t *group_ports_encode(const struct nubo_svc_group *g)
{
    json_t *a = nubo_svc_ports_encode(g->ports, g->n_ports);
    for (size_t i = 0; a && i < g->n_ports; i++)
        if (g->port_errors[i][0])
            json_object_set_new(json_array_get(a, i), "error", json_string(g->port_errors[i]));
    return a;
}

json_t *nubo_svc_group_encode(const struct nubo_svc_group *g)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:I, s:I, s:s, s:o, s:o, s:o}", "status",
                     "success", "uuid", g->uuid, "name", g->name, "created_at",
                     pj_time_new(g->created_at_us), "persistent", g->persistent, "autoscale",
                     g->autoscale, "soft_limit", (json_int_t)g->soft_limit, "hard_limit",
                     (json_int_t)g->hard_limit, "metro", g->metro, "services",
                     group_ports_encode(g), "domains",
                     nubo_svc_domains_encode(g->domains, g->n_domains), "instances",
                     nubo_api_refs_encode(g->instances, g->n_instances));
}

void nubo_svc_group_free(struct nubo_svc_group *g)
{
    if (g == NULL)
        return;
    free(g->instances);
    g->instances = NULL;
    g->n_instances = 0;
}

/* A published port as a reply shows it: bounded, but the handler rules are the server's. */
static int port_show_decode(json_t *e, const char *ctx, struct nubo_ingress_port *out,
                            struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object {port, destination_port, handlers}",
                               ctx);
    if (pj_int(e, ctx, "port", false, 0, 65535, &out->port, err) < 0 ||
        pj_int(e, ctx, "destination_port", false, 0, 65535, &out->destination_port, err) < 0 ||
        nubo_handlers_decode(e, ctx, "handlers", false, &out->handlers, err) < 0)
        return -1;
    return 0;
}

static int domain_show_decode(json_t *e, const char *ctx, struct nubo_svc_domain *out,
                              struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(e))
        return nubo_error_http(err, 400, "%s: must be an object {fqdn, certificate}", ctx);
    json_t *c;
    char cc[128];
    snprintf(cc, sizeof(cc), "%s.certificate", ctx);
    if (pj_str(e, ctx, "fqdn", false, out->fqdn, sizeof(out->fqdn), err) < 0 ||
        pj_object(e, ctx, "certificate", false, &c, err) < 0)
        return -1;
    out->has_cert = c != NULL;
    if (c && (ref_decode(c, cc, &out->cert, err) < 0 ||
              pj_str(c, cc, "state", false, out->cert_state, sizeof(out->cert_state), err) < 0))
        return -1;
    return 0;
}

int nubo_svc_group_decode(json_t *j, struct nubo_svc_group *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "service group: must be a JSON object");
    json_t *a;
    size_t i;
    json_t *e;
    char c[64];
    TRY(pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err));
    TRY(pj_str(j, "", "name", false, out->name, sizeof(out->name), err));
    TRY(pj_time(j, "", "created_at", false, &out->created_at_us, err));
    TRY(pj_bool(j, "", "persistent", false, &out->persistent, err));
    TRY(pj_bool(j, "", "autoscale", false, &out->autoscale, err));
    TRY(pj_int(j, "", "soft_limit", false, 0, NUBO_SVC_LIMIT_MAX, &out->soft_limit, err));
    TRY(pj_int(j, "", "hard_limit", false, 0, NUBO_SVC_LIMIT_MAX, &out->hard_limit, err));
    TRY(pj_str(j, "", "metro", false, out->metro, sizeof(out->metro), err));
    int rc = pj_array(j, "", "services", false, NUBO_SVC_MAX_PORTS, &a, err);
    TRY(rc);
    out->has_services = rc == 1;
    json_array_foreach(a, i, e)
    {
        snprintf(c, sizeof(c), "services[%zu]", i);
        TRY(port_show_decode(e, c, &out->ports[i], err));
        TRY(pj_str(e, c, "error", false, out->port_errors[i], sizeof(out->port_errors[i]), err));
        out->n_ports = i + 1;
    }
    TRY(pj_array(j, "", "domains", false, NUBO_SVC_MAX_DOMAINS, &a, err));
    json_array_foreach(a, i, e)
    {
        snprintf(c, sizeof(c), "domains[%zu]", i);
        TRY(domain_show_decode(e, c, &out->domains[i], err));
        out->n_domains = i + 1;
    }
    TRY(nubo_api_refs_decode(j, "", "instances", NUBO_SVC_MAX_INSTANCES, &out->instances,
                             &out->n_instances, err));
    return 0;
fail:
    nubo_svc_group_free(out);
    return -1;
}

json_t *nubo_certificate_encode(const struct nubo_certificate *c)
{
    return json_pack("{s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o}", "status",
                     "success", "uuid", c->uuid, "name", c->name, "created_at",
                     pj_time_new(c->created_at_us), "common_name", c->common_name, "state",
                     c->state, "subject", c->subject, "issuer", c->issuer, "serial_number",
                     c->serial_number, "not_before", pj_time_new(c->not_before_us), "not_after",
                     pj_time_new(c->not_after_us), "service_groups",
                     nubo_api_refs_encode(c->service_groups, c->n_service_groups));
}

void nubo_certificate_free(struct nubo_certificate *c)
{
    if (c == NULL)
        return;
    free(c->service_groups);
    c->service_groups = NULL;
    c->n_service_groups = 0;
}

int nubo_certificate_decode(json_t *j, struct nubo_certificate *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(j))
        return nubo_error_http(err, 400, "certificate: must be a JSON object");
    TRY(pj_str(j, "", "uuid", false, out->uuid, sizeof(out->uuid), err));
    TRY(pj_str(j, "", "name", false, out->name, sizeof(out->name), err));
    TRY(pj_time(j, "", "created_at", false, &out->created_at_us, err));
    TRY(pj_str(j, "", "common_name", false, out->common_name, sizeof(out->common_name), err));
    TRY(pj_str(j, "", "state", false, out->state, sizeof(out->state), err));
    TRY(pj_str(j, "", "subject", false, out->subject, sizeof(out->subject), err));
    TRY(pj_str(j, "", "issuer", false, out->issuer, sizeof(out->issuer), err));
    TRY(pj_str(j, "", "serial_number", false, out->serial_number, sizeof(out->serial_number),
               err));
    TRY(pj_time(j, "", "not_before", false, &out->not_before_us, err));
    TRY(pj_time(j, "", "not_after", false, &out->not_after_us, err));
    TRY(nubo_api_refs_decode(j, "", "service_groups", NUBO_CERT_MAX_GROUPS, &out->service_groups,
                             &out->n_service_groups, err));
    return 0;
fail:
    nubo_certificate_free(out);
    return -1;
}
