/* OCI distribution client over common/http.c (registry.h): manifests, verified blob streaming,
 * chunked uploads, retries on connect errors and 5xx, optional unix-socket transport. */
#include "registry.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "http.h"
#include "util.h"

#define REG_CHUNK_BYTES (8u << 20)      /* PATCH chunk size for uploads */
#define REG_SMALL_BODY_MAX (16u << 20)  /* bound for JSON/error bodies */
#define REG_STALL_S 30                  /* blob transfers: abort below 1 B/s for this long */

/* ---------------------------------------------------------------- references */

static bool repo_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-' ||
           c == '/';
}

static bool tag_valid(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > 127)
        return false;
    if (!(isalnum((unsigned char)t[0]) || t[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)t[i]) || t[i] == '_' || t[i] == '.' || t[i] == '-'))
            return false;
    return true;
}

static bool repo_valid(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || r[0] == '/' || r[n - 1] == '/' || strstr(r, "//") || strstr(r, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!repo_char_ok(r[i]))
            return false;
    return true;
}

int nubo_image_ref_parse(const char *s, struct nubo_image_ref *out, struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    if (s == NULL || *s == '\0')
        return nubo_error_http(err, 400, "empty image reference: expected e.g. acme/app:latest");
    if (strlen(s) >= 512)
        return nubo_error_http(err, 400, "image reference too long (max 511 bytes)");
    char buf[512];
    snprintf(buf, sizeof(buf), "%s", s);
    char *rest = buf;

    /* A first component with '.' or ':' or "localhost" is a registry host. */
    char *slash = strchr(rest, '/');
    if (slash) {
        size_t hl = (size_t)(slash - rest);
        bool is_host = (memchr(rest, '.', hl) || memchr(rest, ':', hl) ||
                        (hl == 9 && strncmp(rest, "localhost", 9) == 0));
        if (is_host) {
            if (hl >= sizeof(out->host))
                return nubo_error_http(err, 400, "image reference '%s': host too long", s);
            memcpy(out->host, rest, hl);
            out->host[hl] = '\0';
            rest = slash + 1;
        }
    }
    char *at = strchr(rest, '@');
    if (at) {
        *at = '\0';
        if (!nubo_digest_valid(at + 1))
            return nubo_error_http(err, 400,
                                   "image reference '%s': bad digest (expected sha256:<64 hex>)", s);
        snprintf(out->digest, sizeof(out->digest), "%s", at + 1);
    }
    char *colon = strrchr(rest, ':');
    if (colon && strchr(colon, '/') == NULL) {
        *colon = '\0';
        if (!tag_valid(colon + 1))
            return nubo_error_http(err, 400, "image reference '%s': bad tag '%s'", s, colon + 1);
        if (!out->digest[0])
            snprintf(out->tag, sizeof(out->tag), "%s", colon + 1);
    }
    if (!repo_valid(rest) || strlen(rest) >= sizeof(out->repo))
        return nubo_error_http(err, 400,
                               "image reference '%s': bad repository name (lower-case "
                               "[a-z0-9._-/], e.g. acme/app)",
                               s);
    snprintf(out->repo, sizeof(out->repo), "%s", rest);
    if (!out->digest[0] && !out->tag[0])
        snprintf(out->tag, sizeof(out->tag), "latest");
    return 0;
}

void nubo_image_ref_format(const struct nubo_image_ref *ref, char *buf, size_t size)
{
    if (ref->digest[0])
        snprintf(buf, size, "%s@%s", ref->repo, ref->digest);
    else
        snprintf(buf, size, "%s:%s", ref->repo, ref->tag[0] ? ref->tag : "latest");
}

/* ---------------------------------------------------------------- transport */

/* A bearer token from the registry's token service, kept for the exchanges of one call so an
 * upload session asks for it once and never sends a body that is bound to be refused. */
struct reg_token {
    char value[NUBO_REGISTRY_TOKEN_MAX];
};

/* One registry exchange over nu_http_do: the request, the answer, and where a blob's body
 * goes (an fd with a running sha256, bounded) when it does not stay in memory. */
struct xfer {
    struct nu_http_req rq;
    struct nu_http_resp rs;
    bool blob; /* long transfer: no whole-request timeout, stall detection */
    int out_fd; /* >= 0: stream a 2xx body here */
    EVP_MD_CTX *md;
    uint64_t out_bytes, out_max;
    bool out_too_big, out_write_failed;
    int out_errno;
    nubo_progress_fn progress;
    void *opaque;
    uint64_t progress_base, progress_total;
    struct reg_token *tok; /* shared by the exchanges of one call; NULL = this exchange's own */
};

static bool sink_fd(void *ud, const char *p, size_t n)
{
    struct xfer *x = ud;
    if (x->out_max && x->out_bytes + n > x->out_max) {
        x->out_too_big = true;
        return false;
    }
    if (x->md)
        EVP_DigestUpdate(x->md, p, n);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(x->out_fd, p + off, n - off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            x->out_write_failed = true;
            x->out_errno = errno;
            return false;
        }
        off += (size_t)w;
    }
    x->out_bytes += n;
    return true;
}

static void on_progress(void *ud, uint64_t bytes)
{
    struct xfer *x = ud;
    x->progress(x->opaque, x->progress_base + bytes, x->progress_total);
}

static const char *reg_desc(const struct nubo_registry *reg)
{
    return reg->url[0] ? reg->url : "http://127.0.0.1:5000";
}

/* Quote the registry's own error text ({"errors":[{"code","message"}]}) when there is one. */
static void registry_error_text(const struct xfer *x, char *out, size_t size)
{
    out[0] = '\0';
    if (!x->rs.body || x->rs.len == 0)
        return;
    json_error_t jerr;
    json_t *j = json_loadb(x->rs.body, x->rs.len, 0, &jerr);
    if (j) {
        json_t *e0 = json_array_get(json_object_get(j, "errors"), 0);
        const char *code = json_string_value(json_object_get(e0, "code"));
        const char *msg = json_string_value(json_object_get(e0, "message"));
        if (code || msg)
            snprintf(out, size, " (%s%s%s)", code ? code : "", code && msg ? ": " : "",
                     msg ? msg : "");
        json_decref(j);
    }
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* One parameter (realm, service, scope) of a challenge: Bearer realm="…",service="…",… */
static bool challenge_param(const char *ch, const char *key, char *out, size_t size)
{
    const char *p = ch + 6; /* past "Bearer" */
    size_t kl = strlen(key);
    out[0] = '\0';
    while (*p) {
        while (*p == ' ' || *p == ',')
            p++;
        const char *eq = strchr(p, '=');
        if (eq == NULL)
            return false;
        bool match = (size_t)(eq - p) == kl && strncasecmp(p, key, kl) == 0;
        const char *v = eq + 1, *end;
        if (*v == '"') {
            v++;
            end = strchr(v, '"');
            if (end == NULL)
                return false;
        } else {
            end = v + strcspn(v, ",");
        }
        size_t n = (size_t)(end - v);
        if (match) {
            if (n >= size)
                return false;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = *end == '"' ? end + 1 : end;
    }
    return false;
}

/* Appends "&key=<value percent-encoded>"; false when out is full. */
static bool query_add(char *out, size_t size, const char *key, const char *v, size_t vlen)
{
    size_t n = strlen(out);
    int w = snprintf(out + n, size - n, "%c%s=", strchr(out, '?') ? '&' : '?', key);
    if (w < 0 || (size_t)w >= size - n)
        return false;
    n += (size_t)w;
    for (size_t i = 0; i < vlen; i++) {
        unsigned char c = (unsigned char)v[i];
        if (n + 4 > size)
            return false;
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
            out[n++] = (char)c;
        else
            n += (size_t)snprintf(out + n, 4, "%%%02X", c);
    }
    out[n] = '\0';
    return true;
}

/* Ask the realm for a token (GET realm?service=…&scope=…, one scope parameter per scope) with
 * the basic credentials or the realm token; or ask reg->token_fn. */
static int fetch_token(const struct nubo_registry *reg, const char *challenge,
                       struct reg_token *tok, struct nubo_err *err)
{
    char realm[512], service[256], scope[1024];
    if (!challenge_param(challenge, "realm", realm, sizeof(realm)) || realm[0] == '\0')
        return nubo_error_http(err, 502, "registry %s sent a token challenge without a realm",
                               reg_desc(reg));
    challenge_param(challenge, "service", service, sizeof(service));
    challenge_param(challenge, "scope", scope, sizeof(scope));
    tok->value[0] = '\0';
    if (reg->token_fn)
        return reg->token_fn(reg->token_opaque, realm, service, scope, tok->value,
                             sizeof(tok->value), err);
    if (reg->realm_targets)
        snprintf(realm, sizeof(realm), "/registry/token");
    else if (reg->realm_url[0])
        snprintf(realm, sizeof(realm), "%s", reg->realm_url);
    if (!reg->realm_targets && strncmp(realm, "http://", 7) != 0 &&
        strncmp(realm, "https://", 8) != 0)
        return nubo_error_http(err, 502, "registry %s names a token realm that is not http(s): %s",
                               reg_desc(reg), realm);
    char url[2600];
    snprintf(url, sizeof(url), "%s", realm);
    bool fits = !service[0] || query_add(url, sizeof(url), "service", service, strlen(service));
    for (const char *p = scope; fits && *p;) {
        size_t n = strcspn(p, " ");
        if (n)
            fits = query_add(url, sizeof(url), "scope", p, n);
        p += n;
        while (*p == ' ')
            p++;
    }
    if (!fits)
        return nubo_error_http(err, 502, "token request to %s too long", realm);
    struct nu_http_req rq;
    nu_http_req_init(&rq, "GET", url);
    rq.unix_path = reg->realm_unix_path;
    rq.ca_file = reg->ca_file;
    if (reg->user[0]) {
        rq.user = reg->user;
        rq.password = reg->password;
    } else {
        rq.bearer = reg->realm_token;
    }
    rq.timeout_ms = reg->timeout_ms > 0 ? reg->timeout_ms : 30000L;
    rq.max_body = 4 * NUBO_REGISTRY_TOKEN_MAX;
    struct nu_http_resp rs;
    int rc = reg->realm_targets ? nu_http_targets_do(reg->realm_targets, &rq, &rs, err)
                                : nu_http_do(&rq, &rs, err);
    if (rc == 0 && (rs.status == 401 || rs.status == 403))
        rc = nubo_error_http(err, 401,
                             "the registry's token service %s refused the credentials (HTTP %ld): "
                             "log in with `nubo login` (agents: check the node token)",
                             realm, rs.status);
    else if (rc == 0 && rs.status != 200)
        rc = nubo_error_http(err, 502, "the registry's token service %s answered HTTP %ld", realm,
                             rs.status);
    if (rc == 0) {
        json_error_t jerr;
        json_t *j = json_loadb(rs.body ? rs.body : "", rs.len, 0, &jerr);
        const char *t = json_string_value(json_object_get(j, "token"));
        if (t == NULL)
            t = json_string_value(json_object_get(j, "access_token"));
        if (t == NULL || t[0] == '\0' || strlen(t) >= sizeof(tok->value))
            rc = nubo_error_http(err, 502, "the registry's token service %s sent no usable token",
                                 realm);
        else
            snprintf(tok->value, sizeof(tok->value), "%s", t);
        json_decref(j);
    }
    nu_http_resp_free(&rs);
    return rc;
}

/* Run x once (no retry): 0 = an answer came (x->rs.status), -1 = none (x->rs.fail). */
static int xfer_once(const struct nubo_registry *reg, struct xfer *x, const struct reg_token *tok,
                     struct nubo_err *err)
{
    nu_http_resp_free(&x->rs);
    x->out_bytes = 0;
    x->out_too_big = x->out_write_failed = false;
    struct nu_http_req *rq = &x->rq;
    rq->unix_path = reg->unix_path;
    rq->ca_file = reg->ca_file;
    /* With a token the basic credentials stay with the realm, never go to the registry. */
    bool bearer = tok->value[0] != '\0';
    rq->bearer = bearer ? tok->value : NULL;
    rq->user = bearer ? NULL : reg->user;
    rq->password = reg->password;
    rq->follow_redirects = strcmp(rq->method, "GET") == 0;
    rq->connect_timeout_ms = 10000;
    rq->timeout_ms = x->blob ? 0 : reg->timeout_ms > 0 ? reg->timeout_ms : 30000L;
    rq->stall_s = x->blob ? REG_STALL_S : 0;
    rq->sink = x->out_fd >= 0 ? sink_fd : NULL;
    rq->progress = x->progress ? on_progress : NULL;
    rq->opaque = x;
    return nu_http_do(rq, &x->rs, err);
}

/* Run x with retries on connect errors and 5xx. Only a transport-level failure is turned
 * into an error here; callers judge the HTTP status. what = "GET manifest acme/app:tag". */
static int xfer_run(const struct nubo_registry *reg, struct xfer *x, bool retry_ok,
                    const char *what, struct nubo_err *err)
{
    int retries = reg->retries > 0 ? reg->retries : 2;
    off_t out_start = -1;
    if (x->out_fd >= 0)
        out_start = lseek(x->out_fd, 0, SEEK_CUR);
    struct reg_token own = {{0}};
    struct reg_token *tok = x->tok ? x->tok : &own;
    bool token_fetched = false;
    for (int attempt = 0;; attempt++) {
        if (x->md)
            EVP_DigestInit_ex(x->md, EVP_sha256(), NULL);
        int rc = xfer_once(reg, x, tok, err);
        enum nu_http_fail f = x->rs.fail;
        /* The token scheme: a 401 names the realm and scope; a token for it, then once more.
         * A second 401 means the token service did not grant the scope: the caller's error. */
        if (rc == 0 && x->rs.status == 401 && !token_fetched &&
            strncasecmp(x->rs.www_authenticate, "Bearer ", 7) == 0) {
            token_fetched = true;
            if (fetch_token(reg, x->rs.www_authenticate, tok, err) < 0)
                return nubo_error_wrap(err, "%s", what);
            if (x->out_fd >= 0 && x->out_bytes > 0 &&
                (out_start < 0 || lseek(x->out_fd, out_start, SEEK_SET) < 0 ||
                 ftruncate(x->out_fd, out_start) < 0))
                return nubo_error(err, errno, "%s: cannot rewind the local file", what);
            attempt--;
            continue;
        }
        bool again = rc < 0 ? f == NU_HTTP_UNREACHABLE || f == NU_HTTP_TRANSIENT
                            : x->rs.status >= 500;
        /* A retried download must start the fd over; a pipe cannot. */
        if (again && x->out_fd >= 0 && x->out_bytes > 0) {
            if (out_start < 0 || lseek(x->out_fd, out_start, SEEK_SET) < 0 ||
                ftruncate(x->out_fd, out_start) < 0)
                again = false;
        }
        if (again && retry_ok && attempt < retries) {
            sleep_ms(200L << attempt);
            continue;
        }
        if (rc == 0) {
            nubo_err_clear(err);
            return 0;
        }
        if (x->out_too_big || f == NU_HTTP_TOO_BIG)
            return nubo_error_http(err, 413, "%s from registry %s: larger than the %llu-byte limit",
                                   what, reg_desc(reg),
                                   (unsigned long long)(x->out_fd >= 0 ? x->out_max
                                                                       : x->rq.max_body));
        if (x->out_write_failed)
            return nubo_error(err, x->out_errno, "%s from registry %s: cannot write local file",
                              what, reg_desc(reg));
        if (f == NU_HTTP_UNREACHABLE)
            return nubo_error_http(err, 503,
                                   "cannot reach registry %s%s%s (%s): is it running? check "
                                   "--registry / NUBO_REGISTRY",
                                   reg_desc(reg), reg->unix_path[0] ? " via " : "",
                                   reg->unix_path, x->rs.why);
        if (f == NU_HTTP_TRUNCATED)
            return nubo_error_http(err, 502,
                                   "%s from registry %s: truncated body (got %llu of %lld bytes)",
                                   what, reg_desc(reg), (unsigned long long)x->rs.body_bytes,
                                   x->rs.content_length);
        return nubo_error_http(err, 502, "%s at registry %s failed: %s", what, reg_desc(reg),
                               x->rs.why);
    }
}

static int http_error(const struct nubo_registry *reg, const struct xfer *x, const char *what,
                      struct nubo_err *err)
{
    char detail[300];
    registry_error_text(x, detail, sizeof(detail));
    long st = x->rs.status;
    if (st == 401 || st == 403)
        return nubo_error_http(err, (int)st,
                               "%s: registry %s refused access (HTTP %ld)%s: these credentials "
                               "may not do this (a user pushes and pulls only <user>/... and "
                               "pulls official/...; check `nubo login`)",
                               what, reg_desc(reg), st, detail);
    if (st == 404)
        return nubo_error_http(err, 404, "%s: not found in registry %s%s", what, reg_desc(reg),
                               detail);
    return nubo_error_http(err, (int)st, "%s: registry %s answered HTTP %ld%s", what,
                           reg_desc(reg), st, detail);
}

static void xfer_free(struct xfer *x)
{
    nu_http_resp_free(&x->rs);
    if (x->md)
        EVP_MD_CTX_free(x->md);
}

static void xfer_init(struct xfer *x, const char *method, const char *url)
{
    memset(x, 0, sizeof(*x));
    nu_http_req_init(&x->rq, method, url);
    x->rq.max_body = REG_SMALL_BODY_MAX;
    x->out_fd = -1;
    x->rs.content_length = -1;
}
static int base_url(const struct nubo_registry *reg, char *out, size_t size)
{
    const char *u = reg->url[0] ? reg->url : "http://127.0.0.1:5000";
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    if (n + 1 > size)
        return -1;
    memcpy(out, u, n);
    out[n] = '\0';
    return 0;
}

static int make_url(const struct nubo_registry *reg, char *out, size_t size, struct nubo_err *err,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int make_url(const struct nubo_registry *reg, char *out, size_t size, struct nubo_err *err,
                    const char *fmt, ...)
{
    char base[300];
    if (base_url(reg, base, sizeof(base)) < 0)
        return nubo_error_http(err, 400, "registry URL too long");
    size_t bl = strlen(base);
    if (bl + 1 > size)
        return nubo_error_http(err, 400, "registry URL too long");
    memcpy(out, base, bl + 1);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out + bl, size - bl, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= size - bl)
        return nubo_error_http(err, 400, "registry URL too long");
    return 0;
}

static int check_repo_ref(const char *repo, const char *ref, struct nubo_err *err)
{
    if (!repo || !repo_valid(repo))
        return nubo_error_http(err, 400, "bad repository name '%s'", repo ? repo : "");
    if (ref && !(nubo_digest_valid(ref) || tag_valid(ref)))
        return nubo_error_http(err, 400, "bad tag or digest '%s' for %s", ref, repo);
    return 0;
}

/* ---------------------------------------------------------------- manifests */

int nubo_registry_get_manifest(const struct nubo_registry *reg, const char *repo,
                               const char *tag_or_digest, char **body, size_t *len,
                               char **media_type, char digest_out[80], struct nubo_err *err)
{
    if (check_repo_ref(repo, tag_or_digest, err) < 0)
        return -1;
    char url[1024], what[512];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/manifests/%s", repo, tag_or_digest) < 0)
        return -1;
    snprintf(what, sizeof(what), "manifest %s%s%s", repo,
             nubo_digest_valid(tag_or_digest) ? "@" : ":", tag_or_digest);
    struct xfer x;
    xfer_init(&x, "GET", url);
    x.rq.max_body = NUBO_MANIFEST_MAX;
    nu_http_req_header(&x.rq, "Accept: " NUBO_MEDIA_OCI_INDEX ", " NUBO_MEDIA_OCI_MANIFEST
                              ", " NUBO_MEDIA_DOCKER_LIST ", " NUBO_MEDIA_DOCKER_MANIFEST);
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0 && x.rs.status != 200)
        rc = http_error(reg, &x, what, err);
    if (rc == 0) {
        char hex[NUBO_SHA256_HEX_LEN + 1];
        nubo_sha256_hex(x.rs.body ? x.rs.body : "", x.rs.len, hex);
        char dig[80];
        snprintf(dig, sizeof(dig), "sha256:%s", hex);
        if (nubo_digest_valid(tag_or_digest) && strcmp(dig, tag_or_digest) != 0)
            rc = nubo_error_http(err, 502,
                                 "%s from registry %s failed verification: body hashes to %s",
                                 what, reg_desc(reg), dig);
        else {
            char mt[128];
            snprintf(mt, sizeof(mt), "%s", x.rs.content_type);
            /* Some servers answer application/json: trust the body's mediaType then. */
            if (mt[0] == '\0' || strcmp(mt, "application/json") == 0) {
                json_error_t jerr;
                json_t *j = json_loadb(x.rs.body ? x.rs.body : "", x.rs.len, 0, &jerr);
                const char *m = json_string_value(json_object_get(j, "mediaType"));
                snprintf(mt, sizeof(mt), "%s", m ? m : NUBO_MEDIA_OCI_MANIFEST);
                json_decref(j);
            }
            if (media_type) {
                *media_type = strdup(mt);
                if (!*media_type)
                    rc = nubo_error(err, ENOMEM, "out of memory");
            }
            if (rc == 0) {
                if (digest_out)
                    memcpy(digest_out, dig, strlen(dig) + 1);
                if (!x.rs.body)
                    x.rs.body = calloc(1, 1);
                if (len)
                    *len = x.rs.len;
                *body = x.rs.body;
                x.rs.body = NULL;
            }
        }
    }
    xfer_free(&x);
    return rc;
}

int nubo_registry_put_manifest(const struct nubo_registry *reg, const char *repo,
                               const char *tag_or_digest, const char *media_type,
                               const void *body, size_t len, struct nubo_err *err)
{
    if (check_repo_ref(repo, tag_or_digest, err) < 0)
        return -1;
    if (len > NUBO_MANIFEST_MAX)
        return nubo_error_http(err, 413, "manifest for %s too large", repo);
    char url[1024], what[512], ct[200];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/manifests/%s", repo, tag_or_digest) < 0)
        return -1;
    snprintf(what, sizeof(what), "PUT manifest %s%s%s", repo,
             nubo_digest_valid(tag_or_digest) ? "@" : ":", tag_or_digest);
    snprintf(ct, sizeof(ct), "Content-Type: %s", media_type);
    struct xfer x;
    xfer_init(&x, "PUT", url);
    nu_http_req_header(&x.rq, ct);
    x.rq.body = body;
    x.rq.body_len = len;
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0 && x.rs.status != 201 && x.rs.status != 200)
        rc = http_error(reg, &x, what, err);
    xfer_free(&x);
    return rc;
}

int nubo_registry_delete_manifest(const struct nubo_registry *reg, const char *repo,
                                  const char *digest, struct nubo_err *err)
{
    if (check_repo_ref(repo, digest, err) < 0)
        return -1;
    if (!nubo_digest_valid(digest))
        return nubo_error_http(err, 400, "deleting %s needs a digest, not '%s'", repo, digest);
    char url[1024], what[512];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/manifests/%s", repo, digest) < 0)
        return -1;
    snprintf(what, sizeof(what), "DELETE manifest %s@%s", repo, digest);
    struct xfer x;
    xfer_init(&x, "DELETE", url);
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0 && x.rs.status != 202 && x.rs.status != 200)
        rc = http_error(reg, &x, what, err);
    xfer_free(&x);
    return rc;
}

int nubo_registry_get_json(const struct nubo_registry *reg, const char *path, char **out,
                           struct nubo_err *err)
{
    if (!path || path[0] != '/')
        return nubo_error_http(err, 400, "registry path must start with '/'");
    char url[1024];
    if (make_url(reg, url, sizeof(url), err, "%s", path) < 0)
        return -1;
    struct xfer x;
    xfer_init(&x, "GET", url);
    nu_http_req_header(&x.rq, "Accept: application/json");
    int rc = xfer_run(reg, &x, true, path, err);
    if (rc == 0 && x.rs.status != 200)
        rc = http_error(reg, &x, path, err);
    if (rc == 0) {
        *out = x.rs.body ? x.rs.body : strdup("");
        x.rs.body = NULL;
    }
    xfer_free(&x);
    return rc;
}

/* ---------------------------------------------------------------- blobs: download */

static void md_final(EVP_MD_CTX *md, char out[80])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    strcpy(out, "sha256:");
    nubo_hex(d, dl, out + 7);
}

static int get_blob(const struct nubo_registry *reg, const char *repo, const char *digest,
                    int fd, uint64_t max_bytes, uint64_t *size_out, char **mem, size_t *mem_len,
                    struct nubo_err *err)
{
    if (check_repo_ref(repo, NULL, err) < 0)
        return -1;
    if (!nubo_digest_valid(digest))
        return nubo_error_http(err, 400, "bad blob digest '%s' for %s", digest ? digest : "", repo);
    char url[1024], what[512];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/blobs/%s", repo, digest) < 0)
        return -1;
    snprintf(what, sizeof(what), "blob %s of %s", digest, repo);
    struct xfer x;
    xfer_init(&x, "GET", url);
    x.blob = true;
    x.out_fd = fd;
    x.out_max = max_bytes;
    if (fd < 0)
        x.rq.max_body = max_bytes ? max_bytes : REG_SMALL_BODY_MAX;
    x.md = EVP_MD_CTX_new();
    if (!x.md) {
        xfer_free(&x);
        return nubo_error(err, ENOMEM, "out of memory");
    }
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0 && x.rs.status != 200)
        rc = http_error(reg, &x, what, err);
    /* A body kept in memory is hashed once it is whole; a streamed one was hashed on the way. */
    uint64_t n = fd >= 0 ? x.out_bytes : x.rs.len;
    if (rc == 0 && fd < 0)
        EVP_DigestUpdate(x.md, x.rs.body ? x.rs.body : "", x.rs.len);
    if (rc == 0 && x.rs.content_length >= 0 && (uint64_t)x.rs.content_length != n)
        rc = nubo_error_http(err, 502, "%s from registry %s: truncated body (got %llu of %lld bytes)",
                             what, reg_desc(reg), (unsigned long long)n, x.rs.content_length);
    if (rc == 0) {
        char got[80];
        md_final(x.md, got);
        if (strcmp(got, digest) != 0)
            rc = nubo_error_http(err, 502,
                                 "%s from registry %s failed verification: content hashes to %s "
                                 "(%llu bytes)",
                                 what, reg_desc(reg), got, (unsigned long long)n);
    }
    if (rc == 0) {
        if (size_out)
            *size_out = n;
        if (mem) {
            *mem = x.rs.body ? x.rs.body : calloc(1, 1);
            x.rs.body = NULL;
            if (mem_len)
                *mem_len = n;
        }
    }
    xfer_free(&x);
    return rc;
}

int nubo_registry_get_blob_fd(const struct nubo_registry *reg, const char *repo,
                              const char *digest, int fd, uint64_t max_bytes, uint64_t *size_out,
                              struct nubo_err *err)
{
    if (fd < 0)
        return nubo_error(err, EBADF, "blob %s: no file to write to", digest ? digest : "");
    return get_blob(reg, repo, digest, fd, max_bytes, size_out, NULL, NULL, err);
}

int nubo_registry_get_blob_mem(const struct nubo_registry *reg, const char *repo,
                               const char *digest, size_t max_bytes, char **out, size_t *len,
                               struct nubo_err *err)
{
    return get_blob(reg, repo, digest, -1, max_bytes ? max_bytes : REG_SMALL_BODY_MAX, NULL, out,
                    len, err);
}

static int blob_exists(const struct nubo_registry *reg, const char *repo, const char *digest,
                       struct reg_token *tok, struct nubo_err *err)
{
    if (check_repo_ref(repo, NULL, err) < 0)
        return -1;
    if (!nubo_digest_valid(digest))
        return nubo_error_http(err, 400, "bad blob digest '%s' for %s", digest ? digest : "", repo);
    char url[1024], what[512];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/blobs/%s", repo, digest) < 0)
        return -1;
    snprintf(what, sizeof(what), "HEAD blob %s of %s", digest, repo);
    struct xfer x;
    xfer_init(&x, "HEAD", url);
    x.tok = tok;
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0) {
        if (x.rs.status == 200)
            rc = 1;
        else if (x.rs.status == 404)
            rc = 0;
        else
            rc = http_error(reg, &x, what, err);
    }
    xfer_free(&x);
    return rc;
}

int nubo_registry_blob_exists(const struct nubo_registry *reg, const char *repo,
                              const char *digest, struct nubo_err *err)
{
    return blob_exists(reg, repo, digest, NULL, err);
}

/* ---------------------------------------------------------------- blobs: upload */

/* The upload URL from a Location header: absolute, or relative to the registry. */
static int upload_url(const struct nubo_registry *reg, const char *location, char *out,
                      size_t size, struct nubo_err *err)
{
    if (location[0] == '\0')
        return nubo_error_http(err, 502, "registry %s started an upload without a Location",
                               reg_desc(reg));
    if (strncmp(location, "http://", 7) == 0 || strncmp(location, "https://", 8) == 0) {
        if (nubo_snprintf(out, size, "%s", location) < 0)
            return nubo_error_http(err, 502, "upload Location too long");
        return 0;
    }
    char base[300];
    base_url(reg, base, sizeof(base));
    if (nubo_snprintf(out, size, "%s%s%s", base, location[0] == '/' ? "" : "/", location) < 0)
        return nubo_error_http(err, 502, "upload Location too long");
    return 0;
}

/* One upload session: POST, PATCH chunks, PUT ?digest=. Returns 0, or -1 with err set and
 * *retryable telling whether the whole session may be tried again. */
static int upload_session(const struct nubo_registry *reg, const char *repo, int fd,
                          const void *mem, uint64_t total, const char *digest,
                          nubo_progress_fn progress, void *opaque, struct reg_token *tok,
                          bool *retryable, struct nubo_err *err)
{
    char url[2200], what[512];
    *retryable = false;
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/blobs/uploads/", repo) < 0)
        return -1;
    snprintf(what, sizeof(what), "upload of blob %s to %s", digest, repo);
    struct xfer x;
    xfer_init(&x, "POST", url);
    x.tok = tok;
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0 && x.rs.status != 202)
        rc = http_error(reg, &x, what, err);
    char loc[2200];
    if (rc == 0)
        rc = upload_url(reg, x.rs.location, loc, sizeof(loc), err);
    xfer_free(&x);
    if (rc < 0)
        return -1;

    /* Chunks go as PATCH; the last (or only, for small blobs) goes with the PUT. */
    uint64_t done = 0;
    while (fd >= 0 && total - done > REG_CHUNK_BYTES) {
        uint64_t n = REG_CHUNK_BYTES;
        char range[80];
        snprintf(range, sizeof(range), "Content-Range: %llu-%llu", (unsigned long long)done,
                 (unsigned long long)(done + n - 1));
        xfer_init(&x, "PATCH", loc);
        x.tok = tok;
        x.blob = true;
        nu_http_req_header(&x.rq, "Content-Type: application/octet-stream");
        nu_http_req_header(&x.rq, range);
        x.rq.body_fd = fd;
        x.rq.body_off = (off_t)done;
        x.rq.body_len = n;
        x.progress = progress;
        x.opaque = opaque;
        x.progress_base = done;
        x.progress_total = total;
        rc = xfer_run(reg, &x, false, what, err);
        if (rc == 0 && x.rs.status != 202)
            rc = http_error(reg, &x, what, err);
        if (rc == 0)
            rc = upload_url(reg, x.rs.location, loc, sizeof(loc), err);
        bool srv = x.rs.status >= 500 || x.rs.status == 0;
        xfer_free(&x);
        if (rc < 0) {
            *retryable = srv;
            return -1;
        }
        done += n;
    }
    /* The Location already carries ?_state=…, so the digest is appended with '&'. */
    size_t ll = strlen(loc);
    if (nubo_snprintf(loc + ll, sizeof(loc) - ll, "%sdigest=%s", strchr(loc, '?') ? "&" : "?",
                      digest) < 0)
        return nubo_error_http(err, 502, "upload Location too long");
    xfer_init(&x, "PUT", loc);
    x.tok = tok;
    x.blob = true;
    nu_http_req_header(&x.rq, "Content-Type: application/octet-stream");
    x.rq.body_fd = fd;
    x.rq.body = mem;
    x.rq.body_off = (off_t)done;
    x.rq.body_len = (size_t)(total - done);
    x.progress = progress;
    x.opaque = opaque;
    x.progress_base = done;
    x.progress_total = total;
    rc = xfer_run(reg, &x, false, what, err);
    if (rc == 0 && x.rs.status != 201)
        rc = http_error(reg, &x, what, err);
    bool srv = x.rs.status >= 500 || x.rs.status == 0;
    xfer_free(&x);
    if (rc < 0) {
        *retryable = srv;
        return -1;
    }
    if (progress)
        progress(opaque, total, total);
    return 0;
}

static int put_blob(const struct nubo_registry *reg, const char *repo, int fd, const void *mem,
                    uint64_t total, const char *digest, nubo_progress_fn progress, void *opaque,
                    struct nubo_err *err)
{
    if (check_repo_ref(repo, NULL, err) < 0)
        return -1;
    if (!nubo_digest_valid(digest))
        return nubo_error_http(err, 400, "bad blob digest '%s' for %s", digest ? digest : "", repo);
    struct reg_token tok = {{0}};
    int have = blob_exists(reg, repo, digest, &tok, err);
    int rc = have < 0 ? -1 : 0;
    if (have == 1 && progress)
        progress(opaque, total, total);
    int retries = reg->retries > 0 ? reg->retries : 2;
    for (int attempt = 0; have == 0; attempt++) {
        bool retryable = false;
        rc = upload_session(reg, repo, fd, mem, total, digest, progress, opaque, &tok,
                            &retryable, err);
        if (rc == 0 || !retryable || attempt >= retries)
            break;
        sleep_ms(200L << attempt);
    }
    return rc;
}

int nubo_registry_put_blob_file(const struct nubo_registry *reg, const char *repo,
                                const char *path, const char *digest, nubo_progress_fn progress,
                                void *opaque, struct nubo_err *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open blob file %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return nubo_error(err, errno, "cannot stat blob file %s", path);
    if (!S_ISREG(st.st_mode))
        return nubo_error(err, 0, "blob file %s is not a regular file", path);
    return put_blob(reg, repo, fd, NULL, (uint64_t)st.st_size, digest, progress, opaque, err);
}

int nubo_registry_put_blob_mem(const struct nubo_registry *reg, const char *repo,
                               const void *data, size_t len, const char *digest,
                               struct nubo_err *err)
{
    return put_blob(reg, repo, -1, data ? data : "", len, digest, NULL, NULL, err);
}

/* ---------------------------------------------------------------- cross-repo mount */

int nubo_registry_mount_blob(const struct nubo_registry *reg, const char *repo,
                             const char *digest, const char *from_repo, struct nubo_err *err)
{
    if (check_repo_ref(repo, NULL, err) < 0 || check_repo_ref(from_repo, NULL, err) < 0)
        return -1;
    if (!nubo_digest_valid(digest))
        return nubo_error_http(err, 400, "bad blob digest '%s' for %s", digest ? digest : "", repo);
    char url[1024], what[512];
    if (make_url(reg, url, sizeof(url), err, "/v2/%s/blobs/uploads/?mount=%s&from=%s", repo,
                 digest, from_repo) < 0)
        return -1;
    snprintf(what, sizeof(what), "mount of blob %s from %s into %s", digest, from_repo, repo);
    struct xfer x;
    xfer_init(&x, "POST", url);
    int rc = xfer_run(reg, &x, true, what, err);
    if (rc == 0) {
        if (x.rs.status == 201)
            rc = 1;
        else if (x.rs.status == 202) {
            /* Not mounted: the registry opened an ordinary upload; close it again. */
            char loc[2200];
            if (upload_url(reg, x.rs.location, loc, sizeof(loc), err) == 0) {
                struct xfer d;
                xfer_init(&d, "DELETE", loc);
                struct nubo_err ignore = {0};
                xfer_run(reg, &d, false, what, &ignore);
                xfer_free(&d);
            }
            nubo_err_clear(err);
            rc = 0;
        } else
            rc = http_error(reg, &x, what, err);
    }
    xfer_free(&x);
    return rc;
}
