/* nubo-controller: the Unikraft-Cloud-compatible API server, scheduler and agent endpoint. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/thread.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: nubo-controller --listen ADDR --db FILE [--unix PATH] [--config FILE]\n"
               "                       [--bootstrap-token-file FILE] [--log-level LEVEL]\n"
               "  --listen ADDR               HOST:PORT for the API (default 127.0.0.1:7060)\n"
               "  --db FILE                   sqlite database (created if missing)\n"
               "  --unix PATH                 also serve on a unix socket (agents in namespaces)\n"
               "  --config FILE               INI file for everything else (see "
               "nubo-controller.ini)\n"
               "  --bootstrap-token-file FILE admin token; created (0600) when missing\n"
               "  --log-level LEVEL           error, warn, info, debug\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    log_info("signal %d: shutting down", (int)sig);
    event_base_loopbreak(ctx->base);
}

/* Tear down whatever got started; safe on a half-initialised ctx. */
static void ctx_free(struct ctl_ctx *ctx)
{
    ctl_resolver_stop(ctx);
    if (ctx->tick)
        event_free(ctx->tick);
    if (ctx->base)
        ctl_state_free(ctx);
    if (ctx->http)
        evhttp_free(ctx->http);
    if (ctx->store.db)
        ctl_store_close(&ctx->store);
    if (ctx->base)
        event_base_free(ctx->base);
    free(ctx);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    ctl_agent_tick(arg);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"db", required_argument, NULL, 'd'},
        {"unix", required_argument, NULL, 'u'},
        {"config", required_argument, NULL, 'c'},
        {"bootstrap-token-file", required_argument, NULL, 'b'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *o_listen = NULL, *o_db = NULL, *o_unix = NULL, *o_config = NULL, *o_boot = NULL,
               *o_level = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            o_listen = optarg;
            break;
        case 'd':
            o_db = optarg;
            break;
        case 'u':
            o_unix = optarg;
            break;
        case 'c':
            o_config = optarg;
            break;
        case 'b':
            o_boot = optarg;
            break;
        case 'v':
            o_level = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    log_init("nubo-controller", NUBO_LOG_INFO);
    /* Secrets at rest: the database (keys, env, token hashes), its -wal/-shm and the token
     * files are for this user alone (the unix socket is opened to its group explicitly). */
    umask(077);
    struct ctl_ctx *ctx = calloc(1, sizeof(*ctx));
    struct nubo_err err = {0};
    if (ctx == NULL)
        return 1;
    ctl_config_defaults(&ctx->cfg);
    if (o_config && ctl_config_load_ini(&ctx->cfg, o_config, &err) < 0)
        goto fail;
#define SET(dst, v)                                                                                \
    if ((v) && nubo_snprintf(dst, sizeof(dst), "%s", (v)) < 0) {                                   \
        nubo_error(&err, 0, "argument too long: %s", (v));                                         \
        goto fail;                                                                                 \
    }
    SET(ctx->cfg.listen, o_listen);
    SET(ctx->cfg.db_path, o_db);
    SET(ctx->cfg.unix_path, o_unix);
    SET(ctx->cfg.bootstrap_token_file, o_boot);
#undef SET
    if (o_level) {
        enum nubo_log_level l;
        if (log_level_parse(o_level, &l) < 0) {
            nubo_error(&err, 0, "--log-level %s: use error, warn, info or debug", o_level);
            goto fail;
        }
        ctx->cfg.log_level = l;
    }
    log_set_level((enum nubo_log_level)ctx->cfg.log_level);
    if (ctl_config_finish(&ctx->cfg, &err) < 0)
        goto fail;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    ctx->base = event_base_new();
    if (ctx->base == NULL) {
        nubo_error(&err, 0, "cannot create the event loop");
        goto fail;
    }
    ctx->started_mono_us = nubo_mono_us();
    if (ctl_store_open(&ctx->store, ctx->cfg.db_path, ctx->cfg.sync_full, &err) < 0 ||
        ctl_store_start_checkpointer(&ctx->store, ctx->cfg.db_path, &err) < 0 ||
        ctl_auth_bootstrap(ctx, &err) < 0 || ctl_ingress_bootstrap(ctx, &err) < 0 ||
        ctl_state_load(ctx, &err) < 0 ||
        ctl_resolver_start(ctx, &err) < 0 || ctl_server_start(ctx, &err) < 0)
        goto fail;
    struct event *sigint = evsignal_new(ctx->base, SIGINT, on_signal, ctx);
    struct event *sigterm = evsignal_new(ctx->base, SIGTERM, on_signal, ctx);
    evsignal_add(sigint, NULL);
    evsignal_add(sigterm, NULL);
    int64_t tick_ms = ctx->cfg.grace_ms / 4;
    if (tick_ms > 1000)
        tick_ms = 1000;
    if (tick_ms < 20)
        tick_ms = 20;
    ctx->tick = event_new(ctx->base, -1, EV_PERSIST, on_tick, ctx);
    struct timeval tv = {tick_ms / 1000, (tick_ms % 1000) * 1000};
    evtimer_add(ctx->tick, &tv);
    log_info("nubo-controller %s ready (db %s, admin token in %s, join token in %s)", CTL_VERSION,
             ctx->cfg.db_path, ctx->cfg.bootstrap_token_file, ctx->cfg.join_token_file);
    event_base_dispatch(ctx->base);
    event_free(sigint);
    event_free(sigterm);
    ctx_free(ctx);
    return 0;
fail:
    fprintf(stderr, "nubo-controller: %s\n", err.msg);
    ctx_free(ctx);
    return 1;
}
