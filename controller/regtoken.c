/* The registry's token service (distribution's `auth: token` scheme): GET /registry/token checks
 * a nubo user or node credential and signs a short-lived RS256 JWT granting, per repository,
 * what the subject may do. The registry trusts the key through the certificate in its
 * rootcertbundle and finds it by the JWT's kid (libtrust's fingerprint of the public key). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

#define REGTOKEN_SCOPES_MAX 16   /* scope parameters honoured per request */
#define REGTOKEN_SCOPE_MAX 512   /* one "type:name:actions" */
#define REGTOKEN_SUBJECT_CTL "nubo-controller"

/* ---- the grants (pure: tests/unit/test_regtoken.c) ---- */

/* distribution's repository grammar: components of [a-z0-9] runs joined by one of . _ - (or
 * __), separated by '/'; so no "..", no empty component, nothing that could climb a path. */
static bool repo_name_ok(const char *n, size_t len)
{
    if (len == 0 || len > 255)
        return false;
    bool prev_alnum = false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '.' || c == '_' || c == '-' || c == '/'))
            return false;
        if (!alnum && !prev_alnum && !(c == '_' && i > 0 && n[i - 1] == '_'))
            return false; /* a separator must follow an alphanumeric ("__" excepted) */
        prev_alnum = alnum;
    }
    return prev_alnum;
}

/* What who may do to a repository: a user pushes, pulls and deletes its own <user>/... and
 * pulls official/...; an admin does anything; a node pulls (the images it boots belong to any
 * tenant); the controller itself asks only for what it needs. */
static bool repo_allows(const struct ctl_regtoken_who *who, const char *repo, const char *action)
{
    bool pull = strcmp(action, "pull") == 0;
    if (!pull && strcmp(action, "push") != 0 && strcmp(action, "delete") != 0)
        return false;
    if (who->internal || who->admin)
        return true;
    if (who->node)
        return pull;
    const char *slash = strchr(repo, '/');
    if (slash == NULL)
        return false;
    size_t ol = (size_t)(slash - repo);
    if (ol == strlen(who->name) && strncmp(repo, who->name, ol) == 0)
        return true;
    return pull && ol == 8 && strncmp(repo, "official", 8) == 0;
}

int ctl_regtoken_grant(const struct ctl_regtoken_who *who, const char *scope, json_t *access)
{
    size_t sl = strlen(scope);
    if (sl == 0 || sl >= REGTOKEN_SCOPE_MAX)
        return -1;
    const char *c1 = strchr(scope, ':'), *c2 = strrchr(scope, ':');
    if (c1 == NULL || c1 == c2)
        return -1;
    size_t tl = (size_t)(c1 - scope);
    const char *name = c1 + 1;
    size_t nl = (size_t)(c2 - name);
    json_t *granted = json_array();
    if (tl == 8 && strncmp(scope, "registry", 8) == 0) {
        /* registry:catalog:* lists every tenant's repositories: admins only */
        if (nl == 7 && strncmp(name, "catalog", 7) == 0 && (who->admin || who->internal))
            json_array_append_new(granted, json_string("*"));
    } else if (strncmp(scope, "repository", 10) == 0 && (tl == 10 || scope[10] == '(')) {
        if (!repo_name_ok(name, nl)) {
            json_decref(granted);
            return -1;
        }
        char repo[256];
        memcpy(repo, name, nl);
        repo[nl] = '\0';
        static const char *const all[] = {"pull", "push", "delete"};
        bool want[3] = {false, false, false};
        for (const char *a = c2 + 1; *a;) {
            size_t al = strcspn(a, ",");
            for (size_t i = 0; i < 3; i++)
                if ((al == strlen(all[i]) && strncmp(a, all[i], al) == 0) ||
                    (al == 1 && a[0] == '*'))
                    want[i] = true;
            a += al;
            if (*a == ',')
                a++;
        }
        for (size_t i = 0; i < 3; i++)
            if (want[i] && repo_allows(who, repo, all[i]))
                json_array_append_new(granted, json_string(all[i]));
    } else {
        json_decref(granted);
        return -1;
    }
    if (json_array_size(granted) == 0) {
        json_decref(granted);
        return 0;
    }
    json_t *type = json_stringn(scope, tl), *nm = json_stringn(name, nl);
    json_array_append_new(access,
                          json_pack("{s:o, s:o, s:o}", "type", type, "name", nm, "actions", granted));
    return 1;
}

/* ---- signing ---- */

/* base64url without padding (RFC 7515). */
static char *b64url(const void *data, size_t len)
{
    char *s = xcheck(nubo_base64_encode(data, len), "base64");
    size_t n = 0;
    for (char *p = s; *p; p++) {
        if (*p == '=')
            break;
        s[n++] = *p == '+' ? '-' : *p == '/' ? '_' : *p;
    }
    s[n] = '\0';
    return s;
}

/* libtrust's key ID, which distribution matches against its trusted certificates' keys: the
 * SHA-256 of the DER SubjectPublicKeyInfo, first 240 bits, base32, in 12 groups of 4. */
static int key_id(EVP_PKEY *key, char out[CTL_REGTOKEN_KID_MAX], struct nubo_err *err)
{
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(key, &der);
    if (dl <= 0)
        return nubo_error(err, 0, "cannot encode the registry token key's public part");
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(der, (size_t)dl, md, &ml, EVP_sha256(), NULL);
    OPENSSL_free(der);
    static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    char flat[49];
    for (size_t i = 0; i < 48; i++) { /* 30 bytes = 240 bits = 48 digits, no padding */
        size_t bit = i * 5, byte = bit / 8, sh = bit % 8;
        unsigned v = (unsigned)md[byte] << 8 | (byte + 1 < 30 ? md[byte + 1] : 0);
        flat[i] = b32[(v >> (11 - sh)) & 31];
    }
    size_t n = 0;
    for (size_t i = 0; i < 48; i++) {
        if (i && i % 4 == 0)
            out[n++] = ':';
        out[n++] = flat[i];
    }
    out[n] = '\0';
    return 0;
}

char *ctl_regtoken_sign(struct ctl_ctx *ctx, const char *subject, json_t *access,
                        struct nubo_err *err)
{
    int64_t now = nubo_now_us() / 1000000;
    unsigned char rnd[16];
    char jti[33];
    nubo_random_bytes(rnd, sizeof(rnd));
    nubo_hex(rnd, sizeof(rnd), jti);
    cleanup_json json_t *hdr =
        json_pack("{s:s, s:s, s:s}", "typ", "JWT", "alg", "RS256", "kid", ctx->regtoken_kid);
    cleanup_json json_t *claims =
        json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:O}", "iss",
                  ctx->cfg.registry_token_issuer, "sub", subject, "aud",
                  ctx->cfg.registry_token_service, "exp",
                  (json_int_t)(now + ctx->cfg.registry_token_ttl_s), "nbf", (json_int_t)(now - 5),
                  "iat", (json_int_t)now, "jti", jti, "access", access);
    if (hdr == NULL || claims == NULL)
        return nubo_error(err, ENOMEM, "cannot build a registry token"), NULL;
    cleanup_free char *h = json_dumps(hdr, JSON_COMPACT);
    cleanup_free char *c = json_dumps(claims, JSON_COMPACT);
    cleanup_free char *hb = b64url(h, strlen(h));
    cleanup_free char *cb = b64url(c, strlen(c));
    cleanup_free char *input = NULL;
    if (asprintf(&input, "%s.%s", hb, cb) < 0)
        return nubo_error(err, ENOMEM, "cannot build a registry token"), NULL;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t sl = 0;
    unsigned char *sig = NULL;
    bool ok = md && EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, ctx->regtoken_key) == 1 &&
              EVP_DigestSign(md, NULL, &sl, (const unsigned char *)input, strlen(input)) == 1 &&
              (sig = xmalloc(sl)) != NULL &&
              EVP_DigestSign(md, sig, &sl, (const unsigned char *)input, strlen(input)) == 1;
    EVP_MD_CTX_free(md);
    if (!ok) {
        free(sig);
        return nubo_error(err, 0, "cannot sign a registry token (OpenSSL refused the key)"), NULL;
    }
    cleanup_free char *sb = b64url(sig, sl);
    free(sig);
    char *out = NULL;
    if (asprintf(&out, "%s.%s", input, sb) < 0)
        return nubo_error(err, ENOMEM, "cannot build a registry token"), NULL;
    return out;
}

/* The controller's own registry calls (image inspection) sign their tokens here, on the
 * resolver thread: the key and the config are read-only once the loop runs. */
static int own_token(void *opaque, const char *realm, const char *service, const char *scope,
                     char *out, size_t size, struct nubo_err *err)
{
    (void)realm;
    (void)service;
    struct ctl_ctx *ctx = opaque;
    struct ctl_regtoken_who who = {.internal = true};
    snprintf(who.name, sizeof(who.name), "%s", REGTOKEN_SUBJECT_CTL);
    cleanup_json json_t *access = json_array();
    char one[REGTOKEN_SCOPE_MAX];
    for (const char *p = scope; *p;) {
        size_t n = strcspn(p, " ");
        if (n && n < sizeof(one)) {
            memcpy(one, p, n);
            one[n] = '\0';
            ctl_regtoken_grant(&who, one, access);
        }
        p += n;
        while (*p == ' ')
            p++;
    }
    cleanup_free char *t = ctl_regtoken_sign(ctx, REGTOKEN_SUBJECT_CTL, access, err);
    if (t == NULL)
        return -1;
    if (nubo_snprintf(out, size, "%s", t) < 0)
        return nubo_error(err, 0, "registry token longer than %zu bytes", size - 1);
    return 0;
}

int ctl_regtoken_init(struct ctl_ctx *ctx, struct nubo_err *err)
{
    const char *path = ctx->cfg.registry_token_key_file;
    if (path[0] == '\0') {
        log_warnx("registry tokens are off ([registry] token_key_file unset): the registry must "
                  "then authenticate on its own");
        return 0;
    }
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return nubo_error(err, errno, "cannot open the registry token key %s", path);
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & 0077))
        log_warnx("registry token key %s is readable by others (mode %04o): chmod 600 it", path,
                  (unsigned)(sb.st_mode & 07777));
    EVP_PKEY *key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (key == NULL)
        return nubo_error(err, 0, "%s holds no PEM private key", path);
    if (EVP_PKEY_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        return nubo_error(err, 0,
                          "%s: the registry token key must be RSA (openssl genrsa -out KEY 2048)",
                          path);
    }
    if (key_id(key, ctx->regtoken_kid, err) < 0) {
        EVP_PKEY_free(key);
        return -1;
    }
    ctx->regtoken_key = key;
    ctx->cfg.registry.token_fn = own_token;
    ctx->cfg.registry.token_opaque = ctx;
    log_info("registry tokens: issuer %s, service %s, key %s (kid %s)",
             ctx->cfg.registry_token_issuer, ctx->cfg.registry_token_service, path,
             ctx->regtoken_kid);
    return 0;
}

void ctl_regtoken_free(struct ctl_ctx *ctx)
{
    EVP_PKEY_free(ctx->regtoken_key);
    ctx->regtoken_key = NULL;
}

/* ---- GET /registry/token ---- */

/* An image an instance is pinned to must not vanish under it (its next start would fail): no
 * delete on a repository while some instance uses a digest of it. The scope names no digest,
 * so the whole repository waits until its instances are gone. */
static bool repo_pinned(struct ctl_ctx *ctx, const char *repo)
{
    size_t rl = strlen(repo);
    ctl_map_foreach(&ctx->instances, e)
    {
        const struct ctl_instance *in = e->val;
        if (strncmp(in->row.image, repo, rl) == 0 && in->row.image[rl] == '@')
            return true;
    }
    return false;
}

static void drop_pinned_deletes(struct ctl_ctx *ctx, json_t *access)
{
    for (size_t i = json_array_size(access); i-- > 0;) {
        json_t *a = json_array_get(access, i), *acts = json_object_get(a, "actions");
        const char *name = json_string_value(json_object_get(a, "name"));
        size_t last = json_array_size(acts);
        if (strcmp(json_string_value(json_object_get(a, "type")), "repository") != 0 ||
            last == 0 || strcmp(json_string_value(json_array_get(acts, last - 1)), "delete") != 0 ||
            !repo_pinned(ctx, name))
            continue;
        log_info("registry token: no delete on %s while instances are pinned to it", name);
        json_array_remove(acts, last - 1);
        if (json_array_size(acts) == 0)
            json_array_remove(access, i);
    }
}

/* The credential of a token request: the password of Basic (docker login's; the user name is
 * not trusted, the token says who it is) or a Bearer token. */
static char *request_credential(struct evhttp_request *req)
{
    const char *a = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
    if (a == NULL || strlen(a) > 2048)
        return NULL;
    if (strncasecmp(a, "Bearer ", 7) == 0)
        return xstrdup(a + 7);
    if (strncasecmp(a, "Basic ", 6) != 0)
        return NULL;
    size_t n = 0;
    cleanup_free unsigned char *raw = nubo_base64_decode(a + 6, &n);
    if (raw == NULL)
        return NULL;
    char *colon = memchr(raw, ':', n);
    if (colon == NULL)
        return NULL;
    size_t pl = n - (size_t)(colon + 1 - (char *)raw);
    char *pw = xmalloc(pl + 1);
    memcpy(pw, colon + 1, pl);
    pw[pl] = '\0';
    return pw;
}

static char *iso8601(int64_t s, char buf[32])
{
    time_t t = (time_t)s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

int ctl_handle_registry_token(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct nubo_err *err)
{
    if (ri->method != EVHTTP_REQ_GET)
        return nubo_error_http(err, 405, "registry token: use GET");
    if (ctx->regtoken_key == NULL)
        return nubo_error_http(err, 404,
                               "registry tokens are off: set [registry] token_key_file");
    cleanup_free char *cred = request_credential(ri->req);
    const struct ctl_user_row *u = ctl_auth_user(ctx, cred);
    struct ctl_node *node = u ? NULL : ctl_auth_node(ctx, cred);
    if (u == NULL && node == NULL) {
        /* docker login and friends answer a Basic challenge with the user's credentials */
        evhttp_add_header(evhttp_request_get_output_headers(ri->req), "WWW-Authenticate",
                          "Basic realm=\"nubo\"");
        return nubo_error_http(err, 401,
                               "registry token: missing or unknown credential: log in with `nubo "
                               "login` (docker login: any user name, your nubo token as password)");
    }
    struct ctl_regtoken_who who = {0};
    if (u) {
        snprintf(who.name, sizeof(who.name), "%s", u->name);
        who.admin = u->admin;
    } else {
        snprintf(who.name, sizeof(who.name), "node:%s", node->row.name);
        who.node = true;
    }
    cleanup_json json_t *access = json_array();
    size_t n_scopes = 0;
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        if (strcmp(kv->key, "service") == 0 &&
            strcmp(kv->value, ctx->cfg.registry_token_service) != 0)
            return nubo_error_http(err, 400,
                                   "registry token: unknown service '%.64s' (this controller "
                                   "issues tokens for '%s')",
                                   kv->value, ctx->cfg.registry_token_service);
        if (strcmp(kv->key, "scope") != 0)
            continue;
        if (++n_scopes > REGTOKEN_SCOPES_MAX)
            return nubo_error_http(err, 400, "registry token: more than %d scopes",
                                   REGTOKEN_SCOPES_MAX);
        /* a scope may itself hold several, space-separated */
        char one[REGTOKEN_SCOPE_MAX];
        for (const char *p = kv->value; *p;) {
            size_t n = strcspn(p, " ");
            if (n >= sizeof(one) || (n && (memcpy(one, p, n), one[n] = '\0',
                                           ctl_regtoken_grant(&who, one, access) < 0)))
                return nubo_error_http(err, 400,
                                       "registry token: bad scope '%.80s' (expected "
                                       "repository:<name>:<actions>)",
                                       p);
            p += n;
            while (*p == ' ')
                p++;
        }
    }
    drop_pinned_deletes(ctx, access);
    char *t = ctl_regtoken_sign(ctx, who.name, access, err);
    if (t == NULL)
        return ctl_err_status(err, 500);
    int64_t now = nubo_now_us() / 1000000;
    char at[32];
    json_t *reply = json_pack("{s:s, s:s, s:I, s:s}", "token", t, "access_token", t, "expires_in",
                              (json_int_t)ctx->cfg.registry_token_ttl_s, "issued_at",
                              iso8601(now, at));
    free(t);
    evhttp_add_header(evhttp_request_get_output_headers(ri->req), "Cache-Control", "no-store");
    ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, reply);
    return 0;
}
