/* nubo certificates list|get|create|rm: TLS certificates for service-group domains
 * (POST/GET/DELETE /v1/certificates). */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

#define CERTS_USAGE                                                                                \
    "usage: nubo certificates list|get NAME|rm NAME [-o json|table]\n"                             \
    "       nubo certificates create --cn CN --chain FILE.pem --key FILE.pem [-n NAME]\n"

static int show_certs(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_certificate *v;
    size_t n;
    if (nubo_certificate_list_decode(items, CLI_MAX_GROUPS, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's certificates");
    cli_render_certificates(ctx->o, v, n, nubo_now_us());
    nubo_certificate_list_free(v, n);
    return 0;
}

static int show_cert(struct cli_ctx *ctx, json_t *item, struct nubo_err *err)
{
    struct nubo_certificate c;
    if (nubo_certificate_decode(item, &c, err) < 0)
        return nubo_error_wrap(err, "the API's certificate");
    json_t *j = nubo_certificate_encode(&c);
    cli_render_object(ctx->o, j);
    json_decref(j);
    nubo_certificate_free(&c);
    return 0;
}

static int certs_create(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {
        {"name", required_argument, NULL, 'n'},  {"cn", required_argument, NULL, 'C'},
        {"chain", required_argument, NULL, 'c'}, {"key", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    const char *name = NULL, *cn = NULL, *chain_f = NULL, *key_f = NULL;
    int c, rc = 0;
    optind = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "hn:" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(CERTS_USAGE, ctx->o);
            free(opts);
            return 0;
        } else if (c == 'n') {
            name = optarg;
        } else if (c == 'C') {
            cn = optarg;
        } else if (c == 'c') {
            chain_f = optarg;
        } else if (c == 'k') {
            key_f = optarg;
        } else {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, "certificates create", "%s",
                               r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
    }
    free(opts);
    if (rc)
        return rc;
    if (!cn || !chain_f || !key_f)
        return cli_usage(ctx, "certificates create", "give --cn, --chain FILE and --key FILE");
    struct nubo_cert_req req = {0};
    if ((name && strlen(name) >= sizeof(req.name)) || strlen(cn) >= sizeof(req.cn))
        return cli_usage(ctx, "certificates create", "--name or --cn is too long");
    snprintf(req.name, sizeof(req.name), "%s", name ? name : "");
    snprintf(req.cn, sizeof(req.cn), "%s", cn);
    size_t len;
    if (nubo_read_file(chain_f, 256 << 10, &req.chain, &len, &err) < 0 ||
        nubo_read_file(key_f, 256 << 10, &req.pkey, &len, &err) < 0) {
        nubo_cert_req_free(&req);
        return cli_fail(ctx, "certificates create", &err);
    }
    json_t *body = nubo_cert_req_encode(&req);
    nubo_cert_req_free(&req);
    return cli_create_reply(ctx, "certificates create", "/v1/certificates", "certificates", body,
                            show_certs);
}

int cmd_certificates(struct cli_ctx *ctx, int argc, char **argv)
{
    int w = cli_first_word(argc, argv, 1);
    if (w < argc && (!strcmp(argv[w], "create") || !strcmp(argv[w], "add")))
        return certs_create(ctx, argc, argv);
    static const struct cli_named named = {"certificates", CERTS_USAGE, "/v1/certificates",
                                           "certificates", "certificate", show_certs, show_cert};
    return cli_named_main(ctx, &named, argc, argv);
}
