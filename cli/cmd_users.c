/* nubo users list|create|rm and nubo tokens list|create|revoke: the user lifecycle (issue 11,
 * observation 8). Users are an admin's business; a user lists, makes and revokes its own
 * tokens (--user for an admin acting on someone else's). A token is shown once, when made. */
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define USERS_USAGE                                                                                \
    "usage: nubo users list [-o json|table]\n"                                                     \
    "       nubo users create NAME [--admin]      (admin; prints the user's first token)\n"        \
    "       nubo users rm NAME [--force]          (admin; --force also deletes what it owns)\n"

#define TOKENS_USAGE                                                                               \
    "usage: nubo tokens list [--user NAME]\n"                                                      \
    "       nubo tokens create [--user NAME] [--ttl 30d] [--scope metrics]\n"                      \
    "       nubo tokens revoke ID [--user NAME]\n"                                                 \
    "  --scope metrics: a token that reads GET /metrics and nothing else (admins only)\n"

static int show_users(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    static const char *const h[] = {"NAME", "ADMIN", "CREATED AT", NULL};
    struct cli_table *t = cli_table_new(h);
    int64_t now = nubo_now_us();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        struct nubo_user u;
        if (nubo_user_decode(it, &u, err) < 0) {
            cli_table_free(t);
            return nubo_error_wrap(err, "the API's users");
        }
        char created[64];
        cli_time_ago(u.created_at_us, now, created, sizeof(created));
        const char *row[] = {u.name, u.admin ? "yes" : "no", created, NULL};
        cli_table_add(t, row);
    }
    cli_table_print(t, ctx->o);
    cli_table_free(t);
    return 0;
}

static int show_tokens(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_token *v;
    size_t n;
    if (nubo_token_list_decode(items, NUBO_TOKENS_MAX, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's tokens");
    cli_render_tokens(ctx->o, v, n, nubo_now_us());
    nubo_token_list_free(v, n);
    return 0;
}

/* A reply that minted a token: the token once, and what it is. */
static int show_minted(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_user u;
    if (nubo_user_decode(json_array_get(items, 0), &u, err) < 0)
        return nubo_error_wrap(err, "the API's user");
    char at[32] = "never";
    if (u.expires_at_us)
        nubo_time_iso8601(u.expires_at_us, at);
    fprintf(ctx->o, "token %s of user %s (expires: %s); shown once, keep it secret:\n%s\n",
            u.token_id, u.name, at, u.token);
    return 0;
}

/* One option loop for users and tokens; flags belong to one subcommand each. */
struct user_opts {
    bool help, admin, force;
    char user[NUBO_API_USER_MAX + 1];
    struct nubo_token_req req;
};

static int parse_opts(struct cli_ctx *ctx, const char *cmd, int argc, char **argv,
                      struct user_opts *o)
{
    static const struct option own[] = {
        {"help", no_argument, NULL, 'h'},         {"admin", no_argument, NULL, 'A'},
        {"force", no_argument, NULL, 'f'},        {"user", required_argument, NULL, 'u'},
        {"ttl", required_argument, NULL, 'T'},    {"scope", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    int c, rc = 0;
    int64_t ms;
    memset(o, 0, sizeof(*o));
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hfu:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h')
            o->help = true;
        else if (c == 'A')
            o->admin = true;
        else if (c == 'f')
            o->force = true;
        else if (c == 'u' && nubo_name_valid(optarg))
            snprintf(o->user, sizeof(o->user), "%s", optarg);
        else if (c == 'u')
            rc = cli_usage(ctx, cmd, "--user: '%s' is not a user name", optarg);
        else if (c == 'T' && nubo_parse_duration_ms(optarg, &ms, &err) == 0 && ms >= 1000)
            o->req.ttl_s = ms / 1000;
        else if (c == 'T')
            rc = cli_usage(ctx, cmd, "--ttl: '%s' is not a duration of a second or more (e.g. "
                           "12h, 30d)", optarg);
        else if (c == 'S')
            snprintf(o->req.scope, sizeof(o->req.scope), "%s", optarg);
        else {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, cmd, "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    return rc;
}

/* DELETE the path; the one item's status says whether it went. */
static int delete_one(struct cli_ctx *ctx, const char *cmd, const char *path,
                      const char *collection, const char *what)
{
    struct nubo_err err = {0};
    json_t *resp, *items;
    if (cli_api_list(ctx, "DELETE", path, NULL, collection, &resp, &items, &err) < 0)
        return cli_fail(ctx, cmd, &err);
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (!ctx->quiet)
        fprintf(ctx->o, "%s\n", what);
    json_decref(resp);
    return 0;
}

int cmd_users(struct cli_ctx *ctx, int argc, char **argv)
{
    struct user_opts o;
    int rc = parse_opts(ctx, "users", argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(USERS_USAGE, ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cli_list(ctx, "users list", "/v1/users", "users", show_users);
    bool create = !strcmp(sub, "create"), rm = !strcmp(sub, "rm") || !strcmp(sub, "delete");
    if (!create && !rm)
        return cli_usage(ctx, "users", "unknown subcommand '%s' (use list, create, rm)", sub);
    if (name == NULL || !nubo_name_valid(name))
        return cli_usage(ctx, "users", "%s needs a user name ([a-z0-9-], 1..63)", sub);
    if (create) {
        json_t *body = json_pack("{s:s, s:b}", "name", name, "admin", o.admin);
        return cli_create_reply(ctx, "users create", "/v1/users", "users", body, show_minted);
    }
    char path[160], what[160];
    snprintf(path, sizeof(path), "/v1/users/%s%s", name, o.force ? "?force=true" : "");
    snprintf(what, sizeof(what), "removed user %s%s", name,
             o.force ? " and everything it owned" : "");
    return delete_one(ctx, "users rm", path, "users", what);
}

int cmd_tokens(struct cli_ctx *ctx, int argc, char **argv)
{
    struct user_opts o;
    int rc = parse_opts(ctx, "tokens", argc, argv, &o);
    if (rc)
        return rc;
    if (o.help) {
        fputs(TOKENS_USAGE, ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    char path[200];
    snprintf(path, sizeof(path), "/v1/users/%s/tokens", o.user[0] ? o.user : "me");
    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cli_list(ctx, "tokens list", path, "tokens", show_tokens);
    if (!strcmp(sub, "create"))
        return cli_create_reply(ctx, "tokens create", path, "users",
                                nubo_token_req_encode(&o.req), show_minted);
    if (strcmp(sub, "revoke") && strcmp(sub, "rm"))
        return cli_usage(ctx, "tokens", "unknown subcommand '%s' (use list, create, revoke)", sub);
    const char *id = optind + 1 < argc ? argv[optind + 1] : NULL;
    if (id == NULL || strlen(id) != NUBO_TOKEN_ID_LEN || strspn(id, "0123456789abcdef") !=
                                                            NUBO_TOKEN_ID_LEN)
        return cli_usage(ctx, "tokens", "revoke needs a token id (%d hex digits; see nubo tokens "
                         "list)", NUBO_TOKEN_ID_LEN);
    char what[80];
    size_t pl = strlen(path);
    snprintf(path + pl, sizeof(path) - pl, "/%s", id);
    snprintf(what, sizeof(what), "revoked token %s", id);
    return delete_one(ctx, "tokens revoke", path, "tokens", what);
}
