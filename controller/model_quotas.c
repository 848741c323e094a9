/* Per-user quotas: what a user holds (counted from the working set, so it never drifts), its
 * hard limits ([quotas] defaults, or what an admin set for it), the check every create and
 * start passes, and an admin's changes, committed before the working set follows. Admins have
 * no limits: they run the platform. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"

/* The limits an admin set for one user; -1 = the default. */
struct ctl_quota {
    int64_t hard[NUBO_QUOTA_N];
};

static struct ctl_quota *quota_of(struct ctl_ctx *ctx, const char *user_uuid, bool create)
{
    struct ctl_quota *q = ctl_map_get(&ctx->quotas, user_uuid);
    if (q == NULL && create) {
        q = xmalloc(sizeof(*q));
        for (int i = 0; i < NUBO_QUOTA_N; i++)
            q->hard[i] = -1;
        ctl_map_put(&ctx->quotas, user_uuid, q);
    }
    return q;
}

void ctl_quota_used(struct ctl_ctx *ctx, const char *owner, int64_t used[NUBO_QUOTA_N])
{
    memset(used, 0, NUBO_QUOTA_N * sizeof(used[0]));
    ctl_map_foreach(&ctx->instances, e)
    {
        const struct ctl_instance *in = e->val;
        if (strcmp(in->row.owner, owner) != 0)
            continue;
        used[NUBO_QUOTA_INSTANCES]++;
        used[NUBO_QUOTA_MEMORY_MB] += in->row.memory_mb;
        if (in->row.desired == NUBO_DESIRED_RUNNING) {
            used[NUBO_QUOTA_LIVE_INSTANCES]++;
            used[NUBO_QUOTA_LIVE_MEMORY_MB] += in->row.memory_mb;
            used[NUBO_QUOTA_LIVE_VCPUS] += in->row.vcpus;
        }
    }
    ctl_map_foreach(&ctx->svcs, e)
    {
        const struct ctl_svc *g = e->val;
        if (strcmp(g->row.owner, owner) == 0) {
            used[NUBO_QUOTA_SERVICE_GROUPS]++;
            used[NUBO_QUOTA_SERVICES] += (int64_t)g->row.n_ports;
        }
    }
    ctl_map_foreach(&ctx->certs, e)
    {
        if (strcmp(((const struct ctl_cert *)e->val)->row.owner, owner) == 0)
            used[NUBO_QUOTA_CERTIFICATES]++;
    }
    /* inline volumes count too: they hold their node's disk while their instance exists */
    if (ctx->vols == NULL)
        return;
    ctl_map_foreach(&ctx->vols->by_uuid, e)
    {
        const struct ctl_volume *v = e->val;
        if (strcmp(v->row.owner, owner) == 0) {
            used[NUBO_QUOTA_VOLUMES]++;
            used[NUBO_QUOTA_TOTAL_VOLUME_MB] += v->row.size_mb;
        }
    }
}

void ctl_quota_hard(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                    int64_t hard[NUBO_QUOTA_N])
{
    const struct ctl_quota *q = quota_of(ctx, u->uuid, false);
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        hard[i] = u->admin                   ? NUBO_QUOTA_UNLIMITED
                  : q && q->hard[i] >= 0     ? q->hard[i]
                                             : ctx->cfg.quota_default[i];
}

int ctl_quota_check(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                    const int64_t delta[NUBO_QUOTA_N], struct nubo_err *err)
{
    if (u->admin)
        return 0;
    int64_t used[NUBO_QUOTA_N], hard[NUBO_QUOTA_N];
    ctl_quota_used(ctx, u->name, used);
    ctl_quota_hard(ctx, u, hard);
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        if (delta[i] > 0 && hard[i] < NUBO_QUOTA_UNLIMITED && used[i] + delta[i] > hard[i])
            return nubo_error_http(err, 403,
                                   "quota %s exceeded: %lld in use, %lld more asked, limit %lld; "
                                   "free some (stop or delete) or ask an admin to raise it",
                                   nubo_quota_name(i), (long long)used[i], (long long)delta[i],
                                   (long long)hard[i]);
    return 0;
}

int ctl_quota_check_owner(struct ctl_ctx *ctx, const char *owner,
                          const int64_t delta[NUBO_QUOTA_N], struct nubo_err *err)
{
    const struct ctl_user_row *u = ctl_map_get(&ctx->users_by_name, owner);
    return u ? ctl_quota_check(ctx, u, delta, err) : 0;
}

void ctl_quota_view(struct ctl_ctx *ctx, const struct ctl_user_row *u, struct nubo_user_quota *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, u->uuid, sizeof(out->uuid));
    memcpy(out->name, u->name, sizeof(out->name));
    ctl_quota_used(ctx, u->name, out->used);
    ctl_quota_hard(ctx, u, out->hard);
    out->min_memory_mb = NUBO_API_MIN_MEMORY_MB;
    /* the largest node bounds one instance */
    ctl_map_foreach(&ctx->nodes, e)
    {
        const struct ctl_node *n = e->val;
        if (n->row.memory_mb > out->max_memory_mb)
            out->max_memory_mb = n->row.memory_mb;
    }
    if (out->max_memory_mb == 0)
        out->max_memory_mb = NUBO_API_MAX_MEMORY_MB;
}

int ctl_quota_set(struct ctl_ctx *ctx, const struct ctl_user_row *u, const struct nubo_quota_set *s,
                  struct nubo_err *err)
{
    if (ctl_store_begin(&ctx->store, err) < 0)
        return ctl_err_status(err, 500);
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        if (s->given[i] && ctl_store_quota_put(&ctx->store, u->uuid, nubo_quota_name(i),
                                               s->hard[i], err) < 0) {
            ctl_store_rollback(&ctx->store);
            return ctl_err_status(err, 500);
        }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return ctl_err_status(err, 500);
    struct ctl_quota *q = quota_of(ctx, u->uuid, true);
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        if (s->given[i])
            q->hard[i] = s->hard[i];
    return 0;
}

static int quota_load_cb(void *arg, const char *user_uuid, const char *quota, int64_t hard)
{
    struct ctl_ctx *ctx = arg;
    for (int i = 0; i < NUBO_QUOTA_N; i++)
        if (strcmp(nubo_quota_name(i), quota) == 0) {
            quota_of(ctx, user_uuid, true)->hard[i] = hard;
            return 0;
        }
    log_warnx("user %s: stored quota '%s' is unknown; ignored", user_uuid, quota);
    return 0;
}

int ctl_quotas_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    return ctl_store_quotas_load(&ctx->store, quota_load_cb, ctx, err);
}

void ctl_quotas_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->quotas, e) free(e->val);
    ctl_map_clear(&ctx->quotas);
}
