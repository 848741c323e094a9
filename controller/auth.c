/* Credentials: user tokens (bearer, stored as sha256), the bootstrap admin token file, the
 * agents' join token and node tokens. Nothing secret is stored in clear. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

void ctl_token_new(const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   char hash_out[NUBO_SHA256_HEX_LEN + 1])
{
    unsigned char rnd[20];
    char hex[41], raw[NUBO_API_USER_MAX + 48];
    nubo_random_bytes(rnd, sizeof(rnd));
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    /* Shaped like Unikraft Cloud's tokens: base64("<user>:<secret>"). */
    snprintf(raw, sizeof(raw), "%s:%s", user, hex);
    char *b64 = nubo_base64_encode(raw, strlen(raw));
    snprintf(out, NUBO_AGENT_TOKEN_MAX, "%s", b64 ? b64 : hex);
    free(b64);
    nubo_sha256_hex(out, strlen(out), hash_out);
}

int ctl_token_file(const char *path, const char *user, char out[NUBO_AGENT_TOKEN_MAX],
                   struct nubo_err *err)
{
    cleanup_free char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) == 0) {
        if (nubo_read_file(path, 4096, &text, &len, err) < 0)
            return -1;
        while (len > 0 && isspace((unsigned char)text[len - 1]))
            text[--len] = '\0';
        if (len == 0 || len >= NUBO_AGENT_TOKEN_MAX || strchr(text, '\n'))
            return nubo_error(err, 0,
                              "token file %s must hold one token of 1..%d characters; fix or "
                              "remove it",
                              path, NUBO_AGENT_TOKEN_MAX - 1);
        memcpy(out, text, len + 1);
        return 0;
    }
    char hash[NUBO_SHA256_HEX_LEN + 1];
    ctl_token_new(user, out, hash);
    char line[NUBO_AGENT_TOKEN_MAX + 2];
    snprintf(line, sizeof(line), "%s\n", out);
    if (nubo_write_file_atomic(path, line, strlen(line), 0600, err) < 0)
        return nubo_error_wrap(err, "creating the token file %s", path);
    log_info("created token file %s (mode 0600)", path);
    return 0;
}

struct load_ctx {
    struct ctl_ctx *ctx;
    struct ctl_map by_uuid;
};

static int user_cb(void *arg, const struct ctl_user_row *u)
{
    struct load_ctx *lc = arg;
    struct ctl_user_row *c = xmalloc(sizeof(*c));
    *c = *u;
    ctl_map_put(&lc->ctx->users_by_name, c->name, c);
    ctl_map_put(&lc->by_uuid, c->uuid, c);
    return 0;
}

static int token_cb(void *arg, const char *hash, const char *user_uuid)
{
    struct load_ctx *lc = arg;
    struct ctl_user_row *u = ctl_map_get(&lc->by_uuid, user_uuid);
    if (u == NULL)
        return 0;
    ctl_map_put(&lc->ctx->tokens, hash, u);
    return 0;
}

int ctl_auth_bootstrap(struct ctl_ctx *ctx, struct nubo_err *err)
{
    struct load_ctx lc = {ctx, {0}};
    if (ctl_store_users_load(&ctx->store, user_cb, &lc, err) < 0 ||
        ctl_store_tokens_load(&ctx->store, token_cb, &lc, err) < 0) {
        ctl_map_clear(&lc.by_uuid);
        return -1;
    }
    ctl_map_clear(&lc.by_uuid);

    char token[NUBO_AGENT_TOKEN_MAX], hash[NUBO_SHA256_HEX_LEN + 1];
    if (ctl_token_file(ctx->cfg.bootstrap_token_file, ctx->cfg.admin_user, token, err) < 0)
        return -1;
    nubo_sha256_hex(token, strlen(token), hash);
    struct ctl_user_row *admin = ctl_map_get(&ctx->users_by_name, ctx->cfg.admin_user);
    bool new_admin = admin == NULL;
    if (new_admin) {
        admin = xcalloc(1, sizeof(*admin));
        nubo_uuid_new(admin->uuid);
        snprintf(admin->name, sizeof(admin->name), "%s", ctx->cfg.admin_user);
        admin->admin = true;
        admin->created_at_us = nubo_now_us();
    }
    if (ctl_map_get(&ctx->tokens, hash) == NULL || new_admin) {
        if (ctl_store_begin(&ctx->store, err) < 0)
            goto fail;
        if ((new_admin && ctl_store_user_insert(&ctx->store, admin, err) < 0) ||
            ctl_store_token_insert(&ctx->store, hash, admin->uuid, err) < 0 ||
            ctl_store_commit(&ctx->store, err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto fail;
        }
        if (new_admin)
            ctl_map_put(&ctx->users_by_name, admin->name, admin);
        new_admin = false;
        ctl_map_put(&ctx->tokens, hash, admin);
    }

    if (ctl_token_file(ctx->cfg.join_token_file, "node", token, err) < 0)
        return -1;
    nubo_sha256_hex(token, strlen(token), ctx->join_token_hash);
    return 0;
fail:
    if (new_admin)
        free(admin);
    return nubo_error_wrap(err, "bootstrapping the admin user");
}

static void hash_token(const char *token, char out[NUBO_SHA256_HEX_LEN + 1])
{
    nubo_sha256_hex(token, strlen(token), out);
}

const struct ctl_user_row *ctl_auth_user(struct ctl_ctx *ctx, const char *token)
{
    if (token == NULL || token[0] == '\0' || strlen(token) >= NUBO_AGENT_TOKEN_MAX)
        return NULL;
    char h[NUBO_SHA256_HEX_LEN + 1];
    hash_token(token, h);
    return ctl_map_get(&ctx->tokens, h);
}

struct ctl_node *ctl_auth_node(struct ctl_ctx *ctx, const char *token)
{
    if (token == NULL || token[0] == '\0' || strlen(token) >= NUBO_AGENT_TOKEN_MAX)
        return NULL;
    char h[NUBO_SHA256_HEX_LEN + 1];
    hash_token(token, h);
    return ctl_map_get(&ctx->node_tokens, h);
}

bool ctl_auth_join(struct ctl_ctx *ctx, const char *token)
{
    if (token == NULL || token[0] == '\0' || strlen(token) >= NUBO_AGENT_TOKEN_MAX)
        return false;
    char h[NUBO_SHA256_HEX_LEN + 1];
    hash_token(token, h);
    /* compare hashes, so timing reveals nothing about the token */
    return strcmp(h, ctx->join_token_hash) == 0;
}

struct ctl_user_row *ctl_user_find(struct ctl_ctx *ctx, const char *ref)
{
    struct ctl_user_row *u = ctl_map_get(&ctx->users_by_name, ref);
    if (u)
        return u;
    ctl_map_foreach(&ctx->users_by_name, e)
    {
        struct ctl_user_row *x = e->val;
        if (strcmp(x->uuid, ref) == 0)
            return x;
    }
    return NULL;
}
