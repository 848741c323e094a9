/* nubo-controller: the Unikraft-Cloud-compatible API server, scheduler and agent endpoint.
 * One libevent loop owns everything; blocking registry calls run on the resolver thread. Here
 * the floors are put together: the model's events are wired to the handlers that answer for
 * them. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/thread.h>

#include "ctl.h"
#include "ctl_autoscale.h"
#include "daemon_opts.h"
#include "log.h"
#include "util.h"

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
    ctl_leader_free(ctx);
    if (ctx->tick)
        event_free(ctx->tick);
    if (ctx->base) {
        /* parked requests first (503), then the working set they point into */
        ctl_agent_free(ctx);
        ctl_ingress_free(ctx);
        ctl_park_drain(&ctx->resolving); /* the resolver is stopped: nobody answers these */
        ctl_park_drain(&ctx->waits);
        ctl_autoscale_free(ctx);
        ctl_state_free(ctx);
    }
    if (ctx->http)
        evhttp_free(ctx->http);
    if (ctx->http_unix)
        evhttp_free(ctx->http_unix);
    if (ctx->accept_ev)
        event_free(ctx->accept_ev);
    ctl_conns_free(ctx);
    ctl_regtoken_free(ctx);
    ctl_rate_free(ctx);
    if (ctx->store.db)
        ctl_store_close(&ctx->store);
    if (ctx->base)
        event_base_free(ctx->base);
    ctl_tls_free(ctx); /* after the loop: it frees the last connections */
    free(ctx);
}

/* Runs a few times per grace period. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    if (!ctx->leader.leading)
        return; /* a follower holds no working set */
    ctl_logs_flush(ctx);
    ctl_nodes_check(ctx);
    ctl_waits_reap(ctx);
}

/* The store; a controller that lost its lease and started again (leader.c) waits for a store
 * out of reach instead of exiting, as a follower would. */
static int store_open(struct ctl_ctx *ctx, struct nubo_err *err)
{
    const char *target = ctx->cfg.store_url[0] ? ctx->cfg.store_url : ctx->cfg.db_path;
    bool rejoin = getenv("NUBO_CTL_REJOIN") != NULL;
    unsetenv("NUBO_CTL_REJOIN");
    for (int attempt = 0;; attempt++) {
        if (ctl_store_open(&ctx->store, target, ctx->cfg.sync_full, err) == 0)
            return 0;
        if (!rejoin)
            return -1;
        if (attempt % 10 == 0)
            log_warnx("%s; retrying every second", err->msg);
        memset(err, 0, sizeof(*err));
        sleep(1);
    }
}

/* What the model reports, and who answers for it. */
static const struct ctl_events events = {
    .instance_changed = ctl_waits_on_changed,
    .instance_gone = ctl_waits_on_gone,
    .node_set_changed = ctl_agent_on_node_changed,
    .services_changed = ctl_ingress_on_changed,
};

int main(int argc, char **argv)
{
    const char *o_listen = NULL, *o_db = NULL, *o_unix = NULL, *o_boot = NULL;
    const struct nubo_daemon_opt own[] = {
        {"listen", "ADDR", "HOST:PORT for the API (default 127.0.0.1:7060)", &o_listen},
        {"db", "FILE", "sqlite database (created if missing)", &o_db},
        {"unix", "PATH", "also serve on a unix socket (agents in namespaces)", &o_unix},
        {"bootstrap-token-file", "FILE", "admin token; created (0600) when missing", &o_boot},
        {NULL, NULL, NULL, NULL},
    };
    struct nubo_daemon_args args = {.level = NUBO_LOG_INFO};
    int orc = nubo_daemon_opts("nubo-controller", argc, argv, own, false, &args);
    if (orc >= 0)
        return orc;
    log_init("nubo-controller", NUBO_LOG_INFO);
    /* Secrets at rest: the database (keys, env, token hashes), its -wal/-shm and the token
     * files are for this user alone (the unix socket is opened to its group explicitly). */
    umask(077);
    struct ctl_ctx *ctx = xcalloc(1, sizeof(*ctx));
    struct nubo_err err = {0};
    ctx->events = events;
    ctl_config_defaults(&ctx->cfg);
    if (args.config && ctl_config_load_ini(&ctx->cfg, args.config, &err) < 0)
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
    if (args.level_given)
        ctx->cfg.log_level = args.level;
    log_set_level((enum nubo_log_level)ctx->cfg.log_level);
    if (ctl_config_finish(&ctx->cfg, &err) < 0)
        goto fail;
    signal(SIGPIPE, SIG_IGN);
    evthread_use_pthreads();
    /* epoll's changelist: the event changes of one loop pass reach the kernel once per fd at
     * its end, so evhttp's disable-read/enable-write/... toggles on a request cost one
     * epoll_ctl or none instead of one each (the controller dups no socket, which the
     * changelist would mishandle) */
    struct event_config *evcfg = event_config_new();
    if (evcfg)
        event_config_set_flag(evcfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    ctx->base = evcfg ? event_base_new_with_config(evcfg) : NULL;
    if (evcfg)
        event_config_free(evcfg);
    if (ctx->base == NULL) {
        nubo_error(&err, 0, "cannot create the event loop");
        goto fail;
    }
    ctx->started_mono_us = nubo_mono_us();
    ctx->leader.argv = argv;
    if (store_open(ctx, &err) < 0 ||
        ctl_store_start_checkpointer(&ctx->store, ctx->cfg.db_path, &err) < 0 ||
        ctl_regtoken_init(ctx, &err) < 0 || ctl_ingress_bootstrap(ctx, &err) < 0 ||
        ctl_resolver_start(ctx, &err) < 0 || ctl_server_start(ctx, &err) < 0 ||
        ctl_leader_start(ctx, &err) < 0)
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
