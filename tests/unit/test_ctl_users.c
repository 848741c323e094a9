/* Unit tests for the user lifecycle and node identity in the controller's model (issue 11,
 * observations 7 and 8): token expiry, scope and revocation, each surviving a reload from the
 * store; deleting a user (refused while it owns things, forced); a node's token kept across
 * registers, its metro kept, and an admin's replace; a register whose reply was lost retried
 * with the agent's register key; the token request codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_fixture.h"

static char dir[64];

static struct ctl_ctx *ctx_open(bool fresh)
{
    struct ctl_ctx *ctx = fix_ctx_new();
    snprintf(ctx->cfg.bootstrap_token_file, sizeof(ctx->cfg.bootstrap_token_file), "%s/admin", dir);
    snprintf(ctx->cfg.join_token_file, sizeof(ctx->cfg.join_token_file), "%s/join", dir);
    fix_ctx_load(ctx, dir, fresh);
    struct nubo_err err = {0};
    assert_int_equal(ctl_auth_bootstrap(ctx, &err), 0);
    return ctx;
}

static struct ctl_ctx *reload(struct ctl_ctx *ctx)
{
    fix_ctx_free(ctx);
    return ctx_open(false);
}

static int setup(void **state)
{
    fix_dir_new(dir, sizeof(dir), "ctlusers");
    *state = ctx_open(true);
    return 0;
}

static int teardown(void **state)
{
    fix_ctx_free(*state);
    return fix_dir_remove(dir);
}

static struct ctl_user_row *new_user(struct ctl_ctx *ctx, const char *name, bool admin,
                                     char token[NUBO_AGENT_TOKEN_MAX])
{
    struct ctl_user_row *u = xcalloc(1, sizeof(*u));
    nubo_uuid_new(u->uuid);
    snprintf(u->name, sizeof(u->name), "%s", name);
    u->admin = admin;
    struct nubo_err err = {0};
    assert_int_equal(ctl_token_issue(ctx, u, true, NULL, token, NULL, &err), 0);
    return u;
}

static int check(struct ctl_ctx *ctx, const char *token, bool metrics, struct nubo_err *err)
{
    const struct ctl_user_row *u;
    nubo_err_clear(err);
    return ctl_auth_check(ctx, token, metrics, &u, NULL, err) < 0 ? err->http_status : 200;
}

static void test_token_expiry_scope_revoke(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    char acme_tok[NUBO_AGENT_TOKEN_MAX], ops_tok[NUBO_AGENT_TOKEN_MAX];
    char short_tok[NUBO_AGENT_TOKEN_MAX], scrape_tok[NUBO_AGENT_TOKEN_MAX];
    struct ctl_user_row *acme = new_user(ctx, "acme", false, acme_tok);
    struct ctl_user_row *ops = new_user(ctx, "ops", true, ops_tok);
    (void)ops;
    struct nubo_token_req req = {.expires_at_us = nubo_now_us() + 3600 * INT64_C(1000000)};
    const struct ctl_token *t;
    assert_int_equal(ctl_token_issue(ctx, acme, false, &req, short_tok, &t, &err), 0);
    struct nubo_token_req scrape = {.scope = "metrics"};
    assert_int_equal(ctl_token_issue(ctx, ops, false, &scrape, scrape_tok, NULL, &err), 0);

    assert_int_equal(check(ctx, acme_tok, false, &err), 200);
    assert_int_equal(check(ctx, short_tok, false, &err), 200);
    /* /metrics: admins and metrics tokens; the metrics token nowhere else */
    assert_int_equal(check(ctx, acme_tok, true, &err), 403);
    assert_int_equal(check(ctx, ops_tok, true, &err), 200);
    assert_int_equal(check(ctx, scrape_tok, true, &err), 200);
    assert_int_equal(check(ctx, scrape_tok, false, &err), 403);
    assert_null(ctl_auth_user(ctx, scrape_tok));
    assert_int_equal(check(ctx, "nope", false, &err), 401);

    /* expiry and scope survive a restart; a past expiry is refused with a clear line */
    ctx = *state = reload(ctx);
    char h[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(short_tok, strlen(short_tok), h);
    struct ctl_token *st = ctl_map_get(&ctx->tokens, h);
    assert_non_null(st);
    assert_int_equal(st->row.expires_at_us, req.expires_at_us);
    assert_int_equal(check(ctx, scrape_tok, false, &err), 403);
    st->row.expires_at_us = nubo_now_us() - 1;
    assert_int_equal(check(ctx, short_tok, false, &err), 401);
    assert_non_null(strstr(err.msg, "expired at"));
    assert_null(ctl_auth_user(ctx, short_tok));

    /* a revoked token fails at once, and after a restart */
    nubo_sha256_hex(acme_tok, strlen(acme_tok), h);
    assert_int_equal(ctl_token_revoke(ctx, ctl_map_get(&ctx->tokens, h), &err), 0);
    assert_int_equal(check(ctx, acme_tok, false, &err), 401);
    ctx = *state = reload(ctx);
    assert_int_equal(check(ctx, acme_tok, false, &err), 401);
    assert_int_equal(check(ctx, ops_tok, false, &err), 200);
}

static void test_user_delete(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    char tok[NUBO_AGENT_TOKEN_MAX];
    struct ctl_user_row *acme = new_user(ctx, "acme", false, tok);
    /* an image in the index makes acme an owner */
    struct ctl_image_row im = {
        .digest_ref =
            "acme/web@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        .repo = "acme/web",
        .owner = "acme",
    };
    nubo_uuid_new(im.uuid);
    assert_int_equal(ctl_store_image_put(&ctx->store, &im, &err), 0);
    struct ctl_user_owned o;
    assert_int_equal(ctl_user_owned(ctx, "acme", &o, &err), 0);
    assert_int_equal(o.images, 1);
    assert_int_equal(ctl_user_delete(ctx, acme, false, &err), -1);
    assert_int_equal(err.http_status, 409);
    assert_non_null(strstr(err.msg, "1 image(s)"));
    assert_non_null(ctl_map_get(&ctx->users_by_name, "acme"));
    assert_int_equal(check(ctx, tok, false, &err), 200);
    /* forced: the image goes, then the user and its tokens */
    assert_int_equal(ctl_user_delete(ctx, acme, true, &err), 0);
    assert_null(ctl_map_get(&ctx->users_by_name, "acme"));
    assert_int_equal(check(ctx, tok, false, &err), 401);
    ctx = *state = reload(ctx);
    assert_null(ctl_map_get(&ctx->users_by_name, "acme"));
    assert_int_equal(ctl_user_owned(ctx, "acme", &o, &err), 0);
    assert_int_equal(o.images, 0);
    assert_int_equal(check(ctx, tok, false, &err), 401);
}

/* A register of node NAME in metro fra, with register key KEY ("" = none). */
static struct nubo_register_req node_req(const char *name, const char *key)
{
    struct nubo_register_req rq = {.memory_mb = 1024, .vcpus = 2};
    snprintf(rq.name, sizeof(rq.name), "%s", name);
    snprintf(rq.metro, sizeof(rq.metro), "fra");
    snprintf(rq.register_key, sizeof(rq.register_key), "%s", key);
    return rq;
}

static void test_node_identity(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    struct nubo_register_req rq = node_req("n1", "");
    char tok[NUBO_AGENT_TOKEN_MAX], again[NUBO_AGENT_TOKEN_MAX], fresh[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node;
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, tok, &node, &err), 0);
    /* back with its token: the same token, and a register never moves it to another metro */
    snprintf(rq.metro, sizeof(rq.metro), "ams");
    assert_int_equal(ctl_node_register(ctx, &rq, tok, again, &node, &err), 0);
    assert_string_equal(again, tok);
    assert_string_equal(node->row.metro, "fra");
    assert_ptr_equal(ctl_auth_node(ctx, tok), node);
    ctx = *state = reload(ctx);
    node = ctl_auth_node(ctx, tok);
    assert_non_null(node);
    /* an admin's replace: the old token is refused, the new one is the node's */
    assert_int_equal(ctl_node_replace(ctx, node, fresh, &err), 0);
    assert_null(ctl_auth_node(ctx, tok));
    assert_ptr_equal(ctl_auth_node(ctx, fresh), node);
    ctx = *state = reload(ctx);
    assert_null(ctl_auth_node(ctx, tok));
    assert_non_null(ctl_auth_node(ctx, fresh));
}

/* A join-token register the controller committed but whose reply the agent never read (the
 * controller killed or failing over right after the commit): the agent, with no node token,
 * registers again with the join token. With the register key it first came with, that is its
 * retry: a new node token (the lost one refused), the same node. Any other key, or none, is
 * still a takeover and refused (409) with nothing changed. */
static void test_register_lost_reply(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    static const char key[] = "k0123456789abcdefghijklmnopqrstuvwxyz0123456789";
    struct nubo_register_req rq = node_req("n1", key);
    char lost[NUBO_AGENT_TOKEN_MAX], tok[NUBO_AGENT_TOKEN_MAX], tok2[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node, *again;
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), 0);
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, lost, &node, &err), 0);
    /* the reply is lost; a controller that took over loads the node from the store */
    ctx = *state = reload(ctx);
    node = ctl_map_get(&ctx->nodes_by_name, "n1");
    assert_non_null(node);
    char uuid[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, node->row.uuid, sizeof(uuid));
    int64_t subnet = node->row.subnet_index;

    /* the same key: its own retry */
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), 0);
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, tok, &again, &err), 0);
    assert_ptr_equal(again, node);
    assert_string_equal(again->row.uuid, uuid);
    assert_int_equal(again->row.subnet_index, subnet);
    assert_string_not_equal(tok, lost);
    assert_ptr_equal(ctl_auth_node(ctx, tok), node);
    assert_null(ctl_auth_node(ctx, lost));

    /* another key, no key, or the right key from another metro: refused, nothing changed */
    int64_t registered_at = node->row.registered_at_us;
    struct nubo_register_req other = rq;
    snprintf(other.register_key, sizeof(other.register_key), "%s", key);
    other.register_key[0] = 'K'; /* as long as the key, one byte different */
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &other, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
    assert_non_null(strstr(err.msg, "nubo nodes replace n1"));
    assert_null(strstr(err.msg, key));
    other.register_key[0] = '\0';
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &other, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
    snprintf(other.register_key, sizeof(other.register_key), "%s", key);
    snprintf(other.metro, sizeof(other.metro), "ams");
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &other, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
    assert_int_equal(node->row.registered_at_us, registered_at);
    assert_ptr_equal(ctl_auth_node(ctx, tok), node);

    /* a register with its node token keeps both the token and the key */
    assert_int_equal(ctl_node_register_check(ctx, &rq, node, &err), 0);
    assert_int_equal(ctl_node_register(ctx, &rq, tok, tok2, &again, &err), 0);
    assert_string_equal(tok2, tok);
    ctx = *state = reload(ctx);
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), 0);

    /* an admin's replace: the old machine's key no longer brings the name back */
    node = ctl_map_get(&ctx->nodes_by_name, "n1");
    assert_int_equal(ctl_node_replace(ctx, node, tok2, &err), 0);
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
    ctx = *state = reload(ctx);
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
}

/* A node an older agent registered has no key: a join-token register of its name is refused
 * whatever key it sends, until the node (with its token) registers with a key of its own. */
static void test_register_key_bound_later(void **state)
{
    struct ctl_ctx *ctx = *state;
    struct nubo_err err = {0};
    struct nubo_register_req rq = node_req("old", "");
    char tok[NUBO_AGENT_TOKEN_MAX], tok2[NUBO_AGENT_TOKEN_MAX];
    struct ctl_node *node;
    assert_int_equal(ctl_node_register(ctx, &rq, NULL, tok, &node, &err), 0);
    assert_string_equal(node->row.register_key_hash, "");
    snprintf(rq.register_key, sizeof(rq.register_key), "%s",
             "abcdefghijklmnopqrstuvwxyz0123456789");
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), -1);
    assert_int_equal(err.http_status, 409);
    nubo_err_clear(&err);
    assert_int_equal(ctl_node_register_check(ctx, &rq, node, &err), 0);
    assert_int_equal(ctl_node_register(ctx, &rq, tok, tok2, &node, &err), 0);
    ctx = *state = reload(ctx);
    assert_int_equal(ctl_node_register_check(ctx, &rq, NULL, &err), 0);
}

static void test_token_req(void **state)
{
    (void)state;
    struct nubo_token_req r;
    struct nubo_err err = {0};
    int64_t now = nubo_now_us();
    json_t *j = json_pack("{s:I}", "ttl_s", (json_int_t)60);
    assert_int_equal(nubo_token_req_decode(j, now, &r, &err), 0);
    assert_int_equal(r.expires_at_us, now + 60 * INT64_C(1000000));
    json_decref(j);
    assert_int_equal(nubo_token_req_decode(NULL, now, &r, &err), 0);
    assert_int_equal(r.expires_at_us, 0);
    static const char *const bad[] = {
        "{\"ttl_s\":0}",
        "{\"ttl_s\":60,\"expires_at\":\"2100-01-01T00:00:00Z\"}",
        "{\"expires_at\":\"2001-01-01T00:00:00Z\"}",
        "{\"scope\":\"admin\"}",
        "{\"what\":1}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_error_t je;
        j = json_loads(bad[i], 0, &je);
        assert_non_null(j);
        nubo_err_clear(&err);
        assert_int_equal(nubo_token_req_decode(j, now, &r, &err), -1);
        assert_int_equal(err.http_status, 400);
        json_decref(j);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_expiry_scope_revoke, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_node_identity, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_lost_reply, setup, teardown),
        cmocka_unit_test_setup_teardown(test_register_key_bound_later, setup, teardown),
        cmocka_unit_test(test_token_req),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
