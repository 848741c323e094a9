/* Which controller leads, when several share one PostgreSQL store: a lease row (leader_lease,
 * one row) with an epoch that is also the fencing token every write transaction checks
 * (store_db.h: ctl_db_set_fence). The leader renews the lease every lease_check_ms; a follower
 * looks as often and takes a lease that expired (server time, so the controllers' clocks do not
 * matter), bumping the epoch, then loads the working set and re-arms the timers. A leader that
 * finds its lease gone executes itself again and comes back as a follower: nothing of its term
 * (timers, parked requests, a half-applied batch) survives, and its writes were refused by the
 * fence from the moment the epoch moved. On sqlite the one controller always leads. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/keyvalq_struct.h>

#include "ctl.h"
#include "ctl_autoscale.h"
#include "log.h"
#include "util.h"

/* the PostgreSQL server's clock in µs: leases compare against it alone */
#define PG_NOW_US "(extract(epoch from clock_timestamp())*1000000)::bigint"

static const char *const sql_read =
    "SELECT epoch,holder,url,expires_us>" PG_NOW_US " FROM leader_lease WHERE id=1";
/* an expired lease, or our own from before a restart (the URL is ours: its port is bound by us
 * now, so whoever held it under that URL is gone) */
static const char *const sql_take =
    "UPDATE leader_lease SET epoch=epoch+1,holder=?,url=?,expires_us=" PG_NOW_US "+? "
    "WHERE id=1 AND (expires_us<=" PG_NOW_US " OR url=?) RETURNING epoch";
static const char *const sql_renew =
    "UPDATE leader_lease SET expires_us=" PG_NOW_US "+? WHERE id=1 AND epoch=? AND holder=? "
    "RETURNING epoch";

/* The fence's check (store_db_pg.c runs it first in every write transaction): the epoch under a
 * share lock, which the next leader's bump waits for. A controller stopped inside a transaction
 * would hold that lock for ever: the server ends such a session after a lease's time. */
static void fence_sql(struct ctl_ctx *ctx, char *out, size_t size)
{
    snprintf(out, size,
             "SET LOCAL idle_in_transaction_session_timeout=%lld;"
             "SELECT epoch FROM leader_lease WHERE id=1 FOR SHARE",
             (long long)ctx->cfg.lease_ttl_ms);
}

static void set_fence(struct ctl_ctx *ctx, int64_t epoch)
{
    char sql[256];
    fence_sql(ctx, sql, sizeof(sql));
    ctl_db_set_fence(ctx->store.db, sql, epoch);
}

/* [controller] advertise_url, or the listen address with the scheme TLS implies. */
static int own_url(struct ctl_ctx *ctx, struct nubo_err *err)
{
    struct ctl_leader *l = &ctx->leader;
    if (ctx->cfg.advertise_url[0]) {
        snprintf(l->url, sizeof(l->url), "%s", ctx->cfg.advertise_url);
    } else {
        char host[128];
        snprintf(host, sizeof(host), "%s", ctx->cfg.listen);
        char *colon = strrchr(host, ':');
        const char *port = colon ? colon + 1 : "7060";
        if (colon)
            *colon = '\0';
        char name[128];
        /* a wildcard address names no machine: this host's name does */
        if (!strcmp(host, "0.0.0.0") || !strcmp(host, "[::]") || host[0] == '\0') {
            if (gethostname(name, sizeof(name)) < 0)
                return nubo_error(err, errno, "advertise_url: cannot read the host name");
            name[sizeof(name) - 1] = '\0';
        } else {
            snprintf(name, sizeof(name), "%s", host);
        }
        if (nubo_snprintf(l->url, sizeof(l->url), "%s://%s:%s",
                          ctx->cfg.tls_cert_file[0] ? "https" : "http", name, port) < 0)
            return nubo_error(err, 0, "advertise_url: the listen address is too long");
    }
    size_t n = strlen(l->url);
    while (n > 0 && l->url[n - 1] == '/')
        l->url[--n] = '\0';
    if (strncmp(l->url, "http://", 7) != 0 && strncmp(l->url, "https://", 8) != 0)
        return nubo_error(err, 0, "[controller] advertise_url %s: expected http(s)://HOST:PORT",
                          l->url);
    return 0;
}

/* Load the working set from the store and start what only the leader runs. */
static int load_and_run(struct ctl_ctx *ctx, struct nubo_err *err)
{
    int64_t t0 = nubo_mono_us();
    /* nodes come back with a fresh grace (ctl_node_new): heartbeats missed while nobody led
     * cost no guest a restart */
    if (ctl_auth_bootstrap(ctx, err) < 0 || ctl_state_load(ctx, err) < 0 ||
        ctl_autoscale_start(ctx, err) < 0)
        return -1;
    ctx->leader.takeover_ms = (nubo_mono_us() - t0) / 1000;
    return 0;
}

static int read_lease(struct ctl_ctx *ctx, bool *valid, char url[CTL_URL_MAX]);

static void rejoin_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    log_warnx("leader: starting again as a follower");
    /* the listeners, client connections and the store's connection close with the old image */
    if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
        log_warn("close_range");
    setenv("NUBO_CTL_REJOIN", "1", 1);
    execv("/proc/self/exe", ctx->leader.argv);
    log_warn("cannot execute /proc/self/exe again; exiting");
    _exit(1);
}

/* Refuse every write from now on and start again as a follower shortly: a moment for the
 * answers already given to leave before the process image is replaced. */
static void rejoin(struct ctl_ctx *ctx)
{
    struct ctl_leader *l = &ctx->leader;
    l->leading = false;
    ctl_db_set_fence(ctx->store.db, "SELECT -1", -1);
    evtimer_del(l->timer);
    l->rejoin_ev = evtimer_new(ctx->base, rejoin_cb, ctx);
    struct timeval tv = {0, 100 * 1000};
    if (l->rejoin_ev == NULL || evtimer_add(l->rejoin_ev, &tv) < 0)
        rejoin_cb(-1, 0, ctx);
}

/* The lease is gone (taken, or not renewable for a lease's time): the parked long polls are
 * sent to the new leader (or told to retry), then this controller rejoins as a follower. */
static void step_down(struct ctl_ctx *ctx, const char *why)
{
    struct ctl_leader *l = &ctx->leader;
    if (!l->leading)
        return;
    log_warnx("leader: lost the lease of epoch %lld (%s)", (long long)l->epoch, why);
    l->leading = false;
    /* where to send them: the lease as it is now (unknown when the store is out of reach) */
    bool valid = false;
    char url[CTL_URL_MAX];
    l->leader_url[0] = '\0';
    if (read_lease(ctx, &valid, url) > 0 && valid)
        snprintf(l->leader_url, sizeof(l->leader_url), "%s", url);
    ctl_agent_release(ctx);
    ctl_ingress_release(ctx);
    rejoin(ctx);
}

/* Read the lease: 1 = read (leader_url set while it is valid), -1 = the store failed. */
static int read_lease(struct ctl_ctx *ctx, bool *valid, char url[CTL_URL_MAX])
{
    struct ctl_leader *l = &ctx->leader;
    struct ctl_stmt *st = l->st_read;
    ctl_stmt_reset(st);
    int rc = ctl_stmt_step(st);
    if (rc == 1) {
        l->epoch = ctl_col_int64(st, 0);
        const char *u = ctl_col_text(st, 2);
        snprintf(url, CTL_URL_MAX, "%s", u ? u : "");
        *valid = ctl_col_int64(st, 3) != 0;
    }
    ctl_stmt_reset(st);
    if (rc != 1) {
        log_warnx("leader: cannot read the lease: %s",
                  rc == 0 ? "no leader_lease row" : ctl_db_errmsg(ctx->store.db));
        return -1;
    }
    return 1;
}

/* Bump the epoch if the lease is free: 1 = ours, 0 = someone else's, -1 = the store failed. */
static int take_lease(struct ctl_ctx *ctx)
{
    struct ctl_leader *l = &ctx->leader;
    struct nubo_err err = {0};
    char sql[96];
    /* a lock the bump waits for belongs to a leader inside a transaction; do not wait on it
     * longer than one check */
    snprintf(sql, sizeof(sql), "SET LOCAL lock_timeout=%lld", (long long)ctx->cfg.lease_check_ms);
    if (ctl_db_exec(ctx->store.db, "BEGIN", &err) < 0 ||
        ctl_db_exec(ctx->store.db, sql, &err) < 0) {
        ctl_db_exec(ctx->store.db, "ROLLBACK", NULL);
        log_warnx("leader: %s", err.msg);
        return -1;
    }
    struct ctl_stmt *st = l->st_take;
    ctl_stmt_reset(st);
    ctl_bind_text(st, 1, l->holder);
    ctl_bind_text(st, 2, l->url);
    ctl_bind_int64(st, 3, ctx->cfg.lease_ttl_ms * 1000);
    ctl_bind_text(st, 4, l->url);
    int rc = ctl_stmt_step(st);
    int64_t epoch = rc == 1 ? ctl_col_int64(st, 0) : 0;
    ctl_stmt_reset(st);
    if (rc < 0) {
        log_warnx("leader: cannot take the lease: %s", ctl_db_errmsg(ctx->store.db));
        ctl_db_exec(ctx->store.db, "ROLLBACK", NULL);
        return -1;
    }
    if (ctl_db_exec(ctx->store.db, "COMMIT", &err) < 0) {
        log_warnx("leader: %s", err.msg);
        return -1;
    }
    if (rc == 0)
        return 0;
    l->epoch = epoch;
    l->renewed_mono_us = nubo_mono_us();
    return 1;
}

/* Take the lease if it is free and lead: 1 leading, 0 following, -1 a failed load (err). */
static int try_lead(struct ctl_ctx *ctx, struct nubo_err *err)
{
    struct ctl_leader *l = &ctx->leader;
    bool valid = false;
    char url[CTL_URL_MAX];
    if (read_lease(ctx, &valid, url) < 0)
        return 0;
    snprintf(l->leader_url, sizeof(l->leader_url), "%s", valid ? url : "");
    if (valid && strcmp(url, l->url) != 0)
        return 0;
    int64_t before = l->epoch;
    if (take_lease(ctx) <= 0)
        return 0;
    /* from here the old leader's writes are refused; ours pass */
    set_fence(ctx, l->epoch);
    if (load_and_run(ctx, err) < 0) {
        ctl_db_set_fence(ctx->store.db, "SELECT -1", -1);
        return -1;
    }
    l->leading = true;
    snprintf(l->leader_url, sizeof(l->leader_url), "%s", l->url);
    log_info("leader: leading with epoch %lld (after %lld); state loaded in %lld ms (%zu node(s), "
             "%zu instance(s))",
             (long long)l->epoch, (long long)before, (long long)l->takeover_ms, ctx->nodes.n,
             ctx->instances.n);
    return 1;
}

static void renew(struct ctl_ctx *ctx)
{
    struct ctl_leader *l = &ctx->leader;
    if (ctl_db_take_fenced(ctx->store.db)) {
        step_down(ctx, "a write found another epoch");
        return;
    }
    struct ctl_stmt *st = l->st_renew;
    ctl_stmt_reset(st);
    ctl_bind_int64(st, 1, ctx->cfg.lease_ttl_ms * 1000);
    ctl_bind_int64(st, 2, l->epoch);
    ctl_bind_text(st, 3, l->holder);
    int rc = ctl_stmt_step(st);
    ctl_stmt_reset(st);
    int64_t now = nubo_mono_us();
    if (rc == 1) {
        l->renewed_mono_us = now;
        return;
    }
    if (rc == 0) {
        step_down(ctx, "another controller took it");
        return;
    }
    log_warnx("leader: cannot renew the lease: %s", ctl_db_errmsg(ctx->store.db));
    /* the store is out of reach: by the time the lease would have expired another controller
     * may lead; writes are fenced anyway, this one stops answering as leader */
    if (now - l->renewed_mono_us > ctx->cfg.lease_ttl_ms * 1000)
        step_down(ctx, "the store was out of reach for a lease's time");
}

static void on_check(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_ctx *ctx = arg;
    if (ctx->leader.leading) {
        renew(ctx);
        return;
    }
    struct nubo_err err = {0};
    if (try_lead(ctx, &err) < 0) {
        /* half a working set must not serve: start again, as a follower */
        log_warnx("leader: taking over failed: %s", err.msg);
        rejoin(ctx);
    }
}

int ctl_leader_start(struct ctl_ctx *ctx, struct nubo_err *err)
{
    struct ctl_leader *l = &ctx->leader;
    if (own_url(ctx, err) < 0)
        return -1;
    l->ha = ctl_db_kind(ctx->store.db) == CTL_DB_PG;
    if (!l->ha) {
        if (load_and_run(ctx, err) < 0)
            return -1;
        l->leading = true;
        snprintf(l->leader_url, sizeof(l->leader_url), "%s", l->url);
        return 0;
    }
    nubo_uuid_new(l->holder);
    ctl_db_set_fence(ctx->store.db, "SELECT -1", -1); /* no writes before the lease is ours */
    if (ctl_db_prepare(ctx->store.db, sql_read, true, &l->st_read, err) < 0 ||
        ctl_db_prepare(ctx->store.db, sql_take, true, &l->st_take, err) < 0 ||
        ctl_db_prepare(ctx->store.db, sql_renew, true, &l->st_renew, err) < 0)
        return nubo_error_wrap(err, "preparing the leader lease");
    ctl_stmt_unfenced(l->st_take);
    ctl_stmt_unfenced(l->st_renew);
    l->timer = event_new(ctx->base, -1, EV_PERSIST, on_check, ctx);
    if (l->timer == NULL)
        return nubo_error(err, 0, "cannot create the leader timer");
    struct timeval tv = {ctx->cfg.lease_check_ms / 1000, (ctx->cfg.lease_check_ms % 1000) * 1000};
    evtimer_add(l->timer, &tv);
    if (try_lead(ctx, err) < 0)
        return -1;
    if (!l->leading)
        log_info("leader: following %s (epoch %lld); this controller is %s",
                 l->leader_url[0] ? l->leader_url : "(no leader yet)", (long long)l->epoch, l->url);
    return 0;
}

void ctl_leader_free(struct ctl_ctx *ctx)
{
    struct ctl_leader *l = &ctx->leader;
    if (l->timer)
        event_free(l->timer);
    if (l->rejoin_ev)
        event_free(l->rejoin_ev);
    ctl_stmt_finalize(l->st_read);
    ctl_stmt_finalize(l->st_take);
    ctl_stmt_finalize(l->st_renew);
    l->timer = l->rejoin_ev = NULL;
    l->st_read = l->st_take = l->st_renew = NULL;
}

void ctl_leader_health(struct ctl_ctx *ctx, json_t *env)
{
    const struct ctl_leader *l = &ctx->leader;
    json_object_set_new(env, "role", json_string(l->leading ? "leader" : "follower"));
    json_object_set_new(env, "epoch", json_integer(l->epoch));
    json_object_set_new(env, "leader_url", json_string(l->leader_url));
}
