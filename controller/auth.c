/* Credentials: user tokens (bearer, stored as sha256; optional expiry; a metrics-only scope),
 * the bootstrap admin token file, the agents' join token and node tokens. Nothing secret is
 * stored in clear. */
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
    nubo_hex(rnd, sizeof(rnd), hex);
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

static void token_add(struct ctl_ctx *ctx, const struct ctl_token_row *row, struct ctl_user_row *u)
{
    struct ctl_token *t = xcalloc(1, sizeof(*t));
    t->row = *row;
    t->user = u;
    free(ctl_map_del(&ctx->tokens, row->hash));
    ctl_map_put(&ctx->tokens, row->hash, t);
}

static int token_cb(void *arg, const struct ctl_token_row *row)
{
    struct load_ctx *lc = arg;
    struct ctl_user_row *u = ctl_map_get(&lc->by_uuid, row->user_uuid);
    if (u)
        token_add(lc->ctx, row, u);
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

    char token[NUBO_AGENT_TOKEN_MAX];
    struct ctl_token_row row = {.created_at_us = nubo_now_us()};
    if (ctl_token_file(ctx->cfg.bootstrap_token_file, ctx->cfg.admin_user, token, err) < 0)
        return -1;
    nubo_sha256_hex(token, strlen(token), row.hash);
    struct ctl_user_row *admin = ctl_map_get(&ctx->users_by_name, ctx->cfg.admin_user);
    bool new_admin = admin == NULL;
    if (new_admin) {
        admin = xcalloc(1, sizeof(*admin));
        nubo_uuid_new(admin->uuid);
        snprintf(admin->name, sizeof(admin->name), "%s", ctx->cfg.admin_user);
        admin->admin = true;
        admin->created_at_us = nubo_now_us();
    }
    memcpy(row.user_uuid, admin->uuid, sizeof(row.user_uuid));
    if (ctl_map_get(&ctx->tokens, row.hash) == NULL || new_admin) {
        if (ctl_store_begin(&ctx->store, err) < 0)
            goto fail;
        if ((new_admin && ctl_store_user_insert(&ctx->store, admin, err) < 0) ||
            ctl_store_token_insert(&ctx->store, &row, err) < 0 ||
            ctl_store_commit(&ctx->store, err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto fail;
        }
        if (new_admin)
            ctl_map_put(&ctx->users_by_name, admin->name, admin);
        new_admin = false;
        token_add(ctx, &row, admin);
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

int ctl_auth_check(struct ctl_ctx *ctx, const char *token, bool metrics,
                   const struct ctl_user_row **u_out, const struct ctl_token **t_out,
                   struct nubo_err *err)
{
    *u_out = NULL;
    if (t_out)
        *t_out = NULL;
    if (token == NULL || token[0] == '\0' || strlen(token) >= NUBO_AGENT_TOKEN_MAX)
        return nubo_error_http(err, 401,
                               "missing or unknown token: send Authorization: Bearer <token>");
    char h[NUBO_SHA256_HEX_LEN + 1];
    hash_token(token, h);
    const struct ctl_token *t = ctl_map_get(&ctx->tokens, h);
    if (t == NULL)
        return nubo_error_http(err, 401,
                               "missing or unknown token: send Authorization: Bearer <token>");
    if (t->row.expires_at_us && t->row.expires_at_us <= nubo_now_us()) {
        char at[32];
        nubo_time_iso8601(t->row.expires_at_us, at);
        return nubo_error_http(err, 401,
                               "token %.*s of user %s expired at %s: get a new one (nubo tokens "
                               "create, or ask an admin)",
                               NUBO_TOKEN_ID_LEN, t->row.hash, t->user->name, at);
    }
    bool scoped = strcmp(t->row.scope, "metrics") == 0;
    if (metrics && !scoped && !t->user->admin)
        return nubo_error_http(err, 403,
                               "/metrics: only an admin's token or a metrics token (nubo tokens "
                               "create --scope metrics, by an admin) reads it");
    if (!metrics && scoped)
        return nubo_error_http(err, 403,
                               "this is a metrics token: it reads GET /metrics and nothing else");
    *u_out = t->user;
    if (t_out)
        *t_out = t;
    return 0;
}

const struct ctl_user_row *ctl_auth_user(struct ctl_ctx *ctx, const char *token)
{
    const struct ctl_user_row *u;
    struct nubo_err err = {0};
    return ctl_auth_check(ctx, token, false, &u, NULL, &err) < 0 ? NULL : u;
}

int ctl_token_issue(struct ctl_ctx *ctx, struct ctl_user_row *u, bool insert_user,
                    const struct nubo_token_req *req, char token[NUBO_AGENT_TOKEN_MAX],
                    const struct ctl_token **out, struct nubo_err *err)
{
    struct ctl_token_row row = {.created_at_us = nubo_now_us()};
    ctl_token_new(u->name, token, row.hash);
    memcpy(row.user_uuid, u->uuid, sizeof(row.user_uuid));
    if (req) {
        row.expires_at_us = req->expires_at_us;
        memcpy(row.scope, req->scope, sizeof(row.scope));
    }
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    if ((insert_user && ctl_store_user_insert(&ctx->store, u, err) < 0) ||
        ctl_store_token_insert(&ctx->store, &row, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return -1;
    }
    if (insert_user)
        ctl_map_put(&ctx->users_by_name, u->name, u);
    token_add(ctx, &row, u);
    if (out)
        *out = ctl_map_get(&ctx->tokens, row.hash);
    return 0;
}

int ctl_token_revoke(struct ctl_ctx *ctx, struct ctl_token *t, struct nubo_err *err)
{
    if (ctl_store_begin(&ctx->store, err) < 0 ||
        ctl_store_token_delete(&ctx->store, t->row.hash, err) < 0 ||
        ctl_store_commit(&ctx->store, err) < 0) {
        ctl_store_rollback(&ctx->store);
        return ctl_err_status(err, 500);
    }
    log_info("token %.*s of user %s revoked", NUBO_TOKEN_ID_LEN, t->row.hash, t->user->name);
    free(ctl_map_del(&ctx->tokens, t->row.hash));
    return 0;
}

void ctl_auth_forget_user(struct ctl_ctx *ctx, struct ctl_user_row *u)
{
    ctl_map_foreach(&ctx->tokens, e) {
        struct ctl_token *t = e->val;
        if (t->user == u)
            free(ctl_map_del(&ctx->tokens, t->row.hash));
    }
    free(ctl_map_del(&ctx->quotas, u->uuid));
    free(ctl_map_del(&ctx->rate_buckets, u->uuid));
    ctl_map_del(&ctx->users_by_name, u->name);
    free(u);
}

void ctl_token_to_api(const struct ctl_token *t, bool current, struct nubo_token *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->id, t->row.hash, NUBO_TOKEN_ID_LEN);
    snprintf(out->user, sizeof(out->user), "%s", t->user->name);
    snprintf(out->scope, sizeof(out->scope), "%s", t->row.scope);
    out->created_at_us = t->row.created_at_us;
    out->expires_at_us = t->row.expires_at_us;
    out->current = current;
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
