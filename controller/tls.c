/* HTTPS for the controller's TCP listener: an OpenSSL context from [controller] tls_cert_file
 * and tls_key_file, and every accepted connection wrapped in TLS before evhttp reads it
 * (libevent's bufferevent_openssl, which evhttp then owns whole; conns.c asks for it). */
#include <stdlib.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ctl.h"
#include "log.h"

/* Each connection's TLS layer; evhttp sets its socket after. */
struct bufferevent *ctl_tls_bev(struct ctl_ctx *ctx, struct event_base *base)
{
    SSL *ssl = SSL_new(ctx->tls);
    struct bufferevent *bev =
        ssl ? bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                             BEV_OPT_CLOSE_ON_FREE)
            : NULL;
    /* NULL would make evhttp serve the connection bare: plain HTTP on the TLS port */
    if (bev == NULL) {
        log_warnx("out of memory setting up a TLS connection");
        abort();
    }
    return bev;
}

static int tls_error(struct nubo_err *err, const char *what, const char *path)
{
    char why[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, why, sizeof(why));
    ERR_clear_error();
    return nubo_error(err, 0, "%s %s: %s", what, path, why[0] ? why : "unknown TLS error");
}

int ctl_tls_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    const struct ctl_config *cfg = &ctx->cfg;
    SSL_CTX *tls = SSL_CTX_new(TLS_server_method());
    if (tls == NULL)
        return tls_error(err, "cannot set up TLS for", cfg->listen);
    ctx->tls = tls;
    SSL_CTX_set_min_proto_version(tls, TLS1_2_VERSION);
    SSL_CTX_set_options(tls, SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(tls, cfg->tls_cert_file) != 1)
        return tls_error(err, "[controller] tls_cert_file", cfg->tls_cert_file);
    if (SSL_CTX_use_PrivateKey_file(tls, cfg->tls_key_file, SSL_FILETYPE_PEM) != 1)
        return tls_error(err, "[controller] tls_key_file", cfg->tls_key_file);
    if (SSL_CTX_check_private_key(tls) != 1)
        return tls_error(err, "[controller] tls_key_file does not match", cfg->tls_cert_file);
    return 0;
}

void ctl_tls_free(struct ctl_ctx *ctx)
{
    if (ctx->tls)
        SSL_CTX_free(ctx->tls);
    ctx->tls = NULL;
}
