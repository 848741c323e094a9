/* User certificates in the working set: what OpenSSL reads from an upload (the chain parses,
 * the key matches, it names its cn, every name it carries is one its owner may hold), their
 * commits, and who uses them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

struct ctl_cert *ctl_cert_find(struct ctl_ctx *ctx, const char *owner, const char *uuid,
                               const char *name)
{
    if (uuid && uuid[0]) {
        struct ctl_cert *c = ctl_map_get(&ctx->certs, uuid);
        return c && strcmp(c->row.owner, owner) == 0 ? c : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), owner, name ? name : "");
    return ctl_map_get(&ctx->cert_names, key);
}

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
        hit = s && (size_t)ASN1_STRING_length(g->d.dNSName) == strlen(s) && strcasecmp(s, cn) == 0;
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

/* DNS names compare case-insensitively; the rules compare lower case. */
static void name_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* Every DNS name the leaf answers for (subject CN and DNS SANs) must be one owner may carry
 * (model_domains.c): a certificate is never a way to another tenant's or the platform's names. */
static int cert_names_allowed(struct ctl_ctx *ctx, const struct ctl_cert *c, struct nubo_err *err)
{
    BIO *cb = BIO_new_mem_buf(c->row.chain, -1);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    BIO_free(cb);
    ERR_clear_error();
    if (x == NULL)
        return nubo_error_http(err, 400, "chain: not a PEM certificate");
    int rc = 0;
    char subj_cn[256];
    if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, subj_cn,
                                  sizeof(subj_cn)) > 0) {
        name_lower(subj_cn);
        rc = ctl_cert_name_check(ctx, c->row.owner, subj_cn, err);
    }
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; rc == 0 && sans && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(sans, i);
        if (g->type != GEN_DNS)
            continue;
        char name[NUBO_FQDN_MAX + 3];
        int len = ASN1_STRING_length(g->d.dNSName);
        if (len <= 0 || (size_t)len >= sizeof(name))
            continue; /* longer than any name a domain can have: matches none */
        memcpy(name, ASN1_STRING_get0_data(g->d.dNSName), (size_t)len);
        name[len] = '\0';
        name_lower(name);
        rc = ctl_cert_name_check(ctx, c->row.owner, name, err);
    }
    GENERAL_NAMES_free(sans);
    X509_free(x);
    return rc;
}

static struct ctl_cert *cert_add(struct ctl_ctx *ctx, struct ctl_cert *c)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), c->row.owner, c->row.name);
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

const struct ctl_svc *ctl_cert_user(struct ctl_ctx *ctx, const struct ctl_cert *c)
{
    ctl_map_foreach(&ctx->svcs, e)
    {
        struct ctl_svc *g = e->val;
        for (size_t i = 0; i < g->row.n_domains; i++)
            if (strcmp(g->row.domains[i].cert, c->row.uuid) == 0)
                return g;
    }
    return NULL;
}

struct ctl_cert *ctl_cert_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                 struct nubo_cert_req *req, struct nubo_err *err)
{
    int64_t delta[NUBO_QUOTA_N] = {0};
    delta[NUBO_QUOTA_CERTIFICATES] = 1;
    if (ctl_quota_check(ctx, u, delta, err) < 0)
        return NULL;
    struct ctl_cert *c = xcalloc(1, sizeof(*c));
    nubo_uuid_new(c->row.uuid);
    snprintf(c->row.owner, sizeof(c->row.owner), "%s", u->name);
    memcpy(c->row.cn, req->cn, sizeof(c->row.cn));
    c->row.chain = steal_pointer(&req->chain);
    c->row.pkey = steal_pointer(&req->pkey);
    c->row.created_at_us = nubo_now_us();
    if (req->name[0]) {
        memcpy(c->row.name, req->name, sizeof(c->row.name));
    } else {
        char rnd[6];
        nubo_random_alnum(rnd, 5);
        snprintf(c->row.name, sizeof(c->row.name), "cert-%s", rnd);
    }
    if (ctl_cert_find(ctx, u->name, NULL, c->row.name)) {
        nubo_error_http(err, 409, "a certificate named '%s' already exists; choose another name",
                        c->row.name);
        goto fail;
    }
    if (cert_check(c, err) < 0) {
        (void)ctl_err_wrap(err, 400, "certificate %s", c->row.name);
        goto fail;
    }
    if (cert_names_allowed(ctx, c, err) < 0) {
        (void)nubo_error_wrap(err, "certificate %s", c->row.name); /* keeps 400/403/409 */
        goto fail;
    }
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_cert_put(&ctx->store, &c->row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        ctl_err_status(err, 500);
        goto fail;
    }
    return cert_add(ctx, c);
fail:
    cert_destroy(c);
    return NULL;
}

int ctl_cert_delete(struct ctl_ctx *ctx, struct ctl_cert *c, struct nubo_err *err)
{
    const struct ctl_svc *by = ctl_cert_user(ctx, c);
    if (by)
        return nubo_error_http(err, 409,
                               "certificate %s is used by service group %s; remove that domain "
                               "first",
                               c->row.name, by->row.name);
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_cert_delete(&ctx->store, c->row.uuid, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), c->row.owner, c->row.name);
    ctl_map_del(&ctx->certs, c->row.uuid);
    ctl_map_del(&ctx->cert_names, key);
    cert_destroy(c);
    return 0;
}

static int cert_load_cb(void *arg, struct ctl_cert_row *row)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_cert *c = xcalloc(1, sizeof(*c));
    c->row = *row;
    struct nubo_err err = {0};
    if (cert_check(c, &err) < 0)
        log_warnx("certificate %s no longer checks out: %s", c->row.name, err.msg);
    cert_add(ctx, c);
    return 0;
}

int ctl_certs_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    return ctl_store_certs_load(&ctx->store, cert_load_cb, ctx, err);
}

void ctl_certs_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->certs, e) cert_destroy(e->val);
    ctl_map_clear(&ctx->certs);
    ctl_map_clear(&ctx->cert_names);
}
