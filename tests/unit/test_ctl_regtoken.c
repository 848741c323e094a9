/* Unit tests for controller/regtoken.c: who is granted what of a registry scope, malformed
 * scopes refused, and a signed token that verifies with the key and carries the claims the
 * registry checks (iss, aud, exp, access) and libtrust's kid shape. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "ctl.h"
#include "util.h"

static char *grant(const struct ctl_regtoken_who *who, const char *scope, int *rc)
{
    json_t *access = json_array();
    *rc = ctl_regtoken_grant(who, scope, access);
    json_t *first = json_array_get(access, 0);
    char *s = first ? json_dumps(json_object_get(first, "actions"), JSON_COMPACT) : strdup("");
    json_decref(access);
    return s;
}

static void expect(const struct ctl_regtoken_who *who, const char *scope, int want_rc,
                   const char *want_actions)
{
    int rc;
    char *got = grant(who, scope, &rc);
    if (rc != want_rc || strcmp(got, want_actions) != 0)
        fail_msg("%s on %s: rc %d actions %s (want %d %s)", who->name, scope, rc, got, want_rc,
                 want_actions);
    free(got);
}

static void test_grants(void **state)
{
    (void)state;
    static const struct ctl_regtoken_who alice = {.name = "alice"},
                                         admin = {.name = "admin", .admin = true},
                                         node = {.name = "node:fra-1", .node = true};
    static const struct {
        const struct ctl_regtoken_who *who;
        const char *scope;
        int rc;
        const char *actions;
    } cases[] = {
        /* the owner: everything under alice/, including nested names */
        {&alice, "repository:alice/app:pull,push", 1, "[\"pull\",\"push\"]"},
        {&alice, "repository:alice/a/b:*", 1, "[\"pull\",\"push\",\"delete\"]"},
        {&alice, "repository:alice/app:delete", 1, "[\"delete\"]"},
        /* official/...: pull only; another user's namespace and look-alikes: nothing */
        {&alice, "repository:official/hello:pull,push,delete", 1, "[\"pull\"]"},
        {&alice, "repository:bob/app:pull,push", 0, ""},
        {&alice, "repository:alicex/app:pull", 0, ""},
        {&alice, "repository:officialx/app:pull", 0, ""},
        {&alice, "repository:alice:pull", 0, ""}, /* no namespace: nobody's */
        {&alice, "registry:catalog:*", 0, ""},
        /* admin: anything; node: pull of any repository */
        {&admin, "repository:official/hello:push", 1, "[\"push\"]"},
        {&admin, "registry:catalog:*", 1, "[\"*\"]"},
        {&node, "repository:bob/app:pull,push,delete", 1, "[\"pull\"]"},
        {&node, "registry:catalog:*", 0, ""},
        /* unknown actions are not granted; malformed scopes are refused */
        {&alice, "repository:alice/app:frobnicate", 0, ""},
        {&alice, "repository(plugin):alice/app:pull", 1, "[\"pull\"]"},
        {&alice, "repository:alice/app", -1, ""},
        {&alice, "repository:Alice/App:pull", -1, ""},
        {&alice, "repository:alice/../bob:pull", -1, ""},
        {&alice, "repository:alice//app:pull", -1, ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        expect(cases[i].who, cases[i].scope, cases[i].rc, cases[i].actions);
}

static char *b64url_decode(const char *s, size_t n, size_t *out_len)
{
    char *t = calloc(1, n + 4);
    for (size_t i = 0; i < n; i++)
        t[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (n % 4)
        t[n++] = '=';
    unsigned char *d = nubo_base64_decode(t, out_len);
    free(t);
    return (char *)d;
}

static void test_sign(void **state)
{
    (void)state;
    char dir[] = "/tmp/nubo-regtoken-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/key.pem", dir);
    EVP_PKEY *key = EVP_RSA_gen(2048);
    assert_non_null(key);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);

    struct ctl_ctx *ctx = calloc(1, sizeof(*ctx));
    ctl_config_defaults(&ctx->cfg);
    snprintf(ctx->cfg.registry_token_key_file, sizeof(ctx->cfg.registry_token_key_file), "%s",
             path);
    struct nubo_err err = {0};
    assert_int_equal(ctl_regtoken_init(ctx, &err), 0);
    /* libtrust's kid: 12 groups of 4 base32 digits */
    assert_int_equal(strlen(ctx->regtoken_kid), 59);
    for (size_t i = 0; i < 59; i++)
        assert_true(i % 5 == 4 ? ctx->regtoken_kid[i] == ':'
                               : strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", ctx->regtoken_kid[i]) !=
                                     NULL);
    assert_non_null(ctx->cfg.registry.token_fn);

    json_t *access = json_array();
    struct ctl_regtoken_who alice = {.name = "alice"};
    assert_int_equal(ctl_regtoken_grant(&alice, "repository:alice/app:pull", access), 1);
    char *tok = ctl_regtoken_sign(ctx, "alice", access, &err);
    json_decref(access);
    assert_non_null(tok);
    char *d1 = strchr(tok, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    assert_non_null(d2);
    size_t hl, cl, sl;
    char *hdr = b64url_decode(tok, (size_t)(d1 - tok), &hl);
    char *cl_json = b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), &cl);
    char *sig = b64url_decode(d2 + 1, strlen(d2 + 1), &sl);
    json_t *h = json_loadb(hdr, hl, 0, NULL), *c = json_loadb(cl_json, cl, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "alg")), "RS256");
    assert_string_equal(json_string_value(json_object_get(h, "kid")), ctx->regtoken_kid);
    assert_string_equal(json_string_value(json_object_get(c, "iss")), "nubo-controller");
    assert_string_equal(json_string_value(json_object_get(c, "aud")), "nubo-registry");
    assert_string_equal(json_string_value(json_object_get(c, "sub")), "alice");
    int64_t now = nubo_now_us() / 1000000;
    json_int_t exp = json_integer_value(json_object_get(c, "exp"));
    assert_true(exp > now && exp <= now + 300 + 1);
    json_t *a0 = json_array_get(json_object_get(c, "access"), 0);
    assert_string_equal(json_string_value(json_object_get(a0, "name")), "alice/app");

    /* the signature verifies over "<header>.<claims>" with the public key */
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    assert_int_equal(EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key), 1);
    assert_int_equal(EVP_DigestVerify(md, (unsigned char *)sig, sl, (unsigned char *)tok,
                                      (size_t)(d2 - tok)),
                     1);
    EVP_MD_CTX_free(md);

    /* a controller-internal token answers the challenge's scope in full */
    char out[NUBO_REGISTRY_TOKEN_MAX];
    assert_int_equal(ctx->cfg.registry.token_fn(ctx->cfg.registry.token_opaque, "http://x",
                                                "nubo-registry",
                                                "repository:bob/app:pull repository:a/b:pull", out,
                                                sizeof(out), &err),
                     0);
    assert_non_null(strchr(out, '.'));

    json_decref(h);
    json_decref(c);
    free(hdr);
    free(cl_json);
    free(sig);
    free(tok);
    ctl_regtoken_free(ctx);
    free(ctx);
    EVP_PKEY_free(key);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grants),
        cmocka_unit_test(test_sign),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
