/* Who may hold which name and which public port: the rules shared by service group domains (model_groups.c) and the
 * names a user certificate may carry (model_certs.c). A tenant must not reach another tenant's
 * traffic by naming it, nor learn who holds a name it is refused. */
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/* name is suffix or a name under it */
static bool at_or_under(const char *name, const char *suffix)
{
    size_t n = strlen(name), s = strlen(suffix);
    if (n == s)
        return strcmp(name, suffix) == 0;
    return n > s && name[n - s - 1] == '.' && strcmp(name + n - s, suffix) == 0;
}

static bool granted(struct ctl_ctx *ctx, const char *owner, const char *name)
{
    for (size_t i = 0; i < ctx->cfg.n_domain_grants; i++) {
        const struct ctl_domain_grant *g = &ctx->cfg.domain_grants[i];
        if (strcmp(g->user, owner) == 0 && at_or_under(name, g->domain))
            return true;
    }
    return false;
}

/* A name outside the platform's domain: first come, or only what the operator granted. */
static int custom_check(struct ctl_ctx *ctx, const char *owner, const char *name, const char *what,
                        struct nubo_err *err)
{
    if (ctx->cfg.n_domain_grants == 0 || granted(ctx, owner, name))
        return 0;
    return nubo_error_http(err, 403,
                           "%s %s is not among the domains this platform grants you; ask the "
                           "operator ([services] custom_domains)",
                           what, name);
}

int ctl_domain_check(struct ctl_ctx *ctx, const char *owner, const char *metro, const char *fqdn,
                     const struct ctl_svc *self, struct nubo_err *err)
{
    const char *d = ctx->cfg.services_domain;
    if (at_or_under(fqdn, d)) {
        /* <label>.<metro>.<domain>: one label under this group's metro, nothing else */
        size_t n = strlen(fqdn), sl = strlen(metro) + 1 + strlen(d);
        const char *dot = strchr(fqdn, '.');
        bool ok = n > sl + 1 && dot && (size_t)(dot - fqdn) == n - sl - 1 &&
                  strncmp(dot + 1, metro, strlen(metro)) == 0 && dot[1 + strlen(metro)] == '.';
        if (!ok)
            return nubo_error_http(err, 400,
                                   "domain %s is reserved: names under %s are the platform's; use "
                                   "<name>.%s.%s (this group's metro)",
                                   fqdn, d, metro, d);
    } else if (custom_check(ctx, owner, fqdn, "domain", err) < 0) {
        return -1;
    }
    const struct ctl_svc *other = ctl_map_get(&ctx->svc_fqdns, fqdn);
    if (other && other != self) {
        if (strcmp(other->row.owner, owner) == 0)
            return nubo_error_http(err, 409,
                                   "domain %s is already a domain of your service group %s; "
                                   "remove it there first",
                                   fqdn, other->row.name);
        /* another tenant's: say no more than that it is taken */
        return nubo_error_http(err, 409, "domain %s is not available; choose another name", fqdn);
    }
    return 0;
}

int ctl_cert_name_check(struct ctl_ctx *ctx, const char *owner, const char *name,
                        struct nubo_err *err)
{
    const char *base = strncmp(name, "*.", 2) == 0 ? name + 2 : name;
    if (at_or_under(base, ctx->cfg.services_domain))
        return nubo_error_http(err, 400,
                               "the certificate names %s, under the platform's domain %s (the "
                               "ingress serves those with the metro's certificate); leave it out",
                               name, ctx->cfg.services_domain);
    if (custom_check(ctx, owner, base, "the certificate's name", err) < 0)
        return -1;
    ctl_map_foreach(&ctx->svc_fqdns, e)
    {
        const struct ctl_svc *g = e->val;
        if (strcmp(g->row.owner, owner) != 0 && nubo_cn_matches(name, e->key))
            return nubo_error_http(err, 409,
                                   "the certificate names %s, which covers a domain that is not "
                                   "available to you; leave it out",
                                   name);
    }
    return 0;
}

int ctl_public_port_check(struct ctl_ctx *ctx, int64_t port, struct nubo_err *err)
{
    const uint8_t *bits = ctx->cfg.public_ports;
    if (port >= 1 && port <= 65535 && (bits[port / 8] & (1u << (port % 8))))
        return 0;
    /* a port the ingress host already uses would make every HAProxy reload fail */
    return nubo_error_http(err, 400,
                           "port %lld cannot be published here (public ports %s%s%s); choose "
                           "another port",
                           (long long)port, ctx->cfg.public_ports_text,
                           ctx->cfg.reserved_ports_text[0] ? ", reserved " : "",
                           ctx->cfg.reserved_ports_text);
}
