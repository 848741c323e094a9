/* Volumes in the working set: a volume lives on one node, inside the disk that node offers to
 * volumes; an instance that mounts one is placed on that node; one writer at a time. Every
 * change is committed before the working set follows; the node hears of it through its
 * desired set (ctl_node_bump). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_volumes.h"
#include "log.h"
#include "util.h"

static struct ctl_volumes *vols(struct ctl_ctx *ctx)
{
    if (ctx->vols == NULL)
        ctx->vols = xcalloc(1, sizeof(*ctx->vols));
    return ctx->vols;
}

static void vol_add(struct ctl_ctx *ctx, struct ctl_volume *v)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), v->row.owner, v->row.name);
    ctl_map_put(&vols(ctx)->by_uuid, v->row.uuid, v);
    ctl_map_put(&vols(ctx)->by_name, key, v);
}

static void vol_forget(struct ctl_ctx *ctx, struct ctl_volume *v)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), v->row.owner, v->row.name);
    ctl_map_del(&vols(ctx)->by_name, key);
    ctl_map_del(&vols(ctx)->by_uuid, v->row.uuid);
    struct ctl_node *node = ctl_map_get(&ctx->nodes, v->row.node_uuid);
    if (node)
        ctl_node_bump(ctx, node);
    free(v);
}

static int load_vol(void *arg, const struct ctl_volume_row *r)
{
    struct ctl_volume *v = xcalloc(1, sizeof(*v));
    v->row = *r;
    vol_add(arg, v);
    return 0;
}

static int load_mount(void *arg, const struct ctl_volume_mount_row *m)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_volume *v = ctl_map_get(&vols(ctx)->by_uuid, m->volume_uuid);
    if (v == NULL || ctl_map_get(&ctx->instances, m->instance_uuid) == NULL) {
        log_warnx("volume mount %s -> %s names a missing volume or instance; ignored",
                  m->volume_uuid, m->instance_uuid);
        return 0;
    }
    v->attached = true;
    v->mount = *m;
    return 0;
}

static int load_budget(void *arg, const char *node_uuid, int64_t mb)
{
    struct ctl_ctx *ctx = arg;
    int64_t *p = xmalloc(sizeof(*p));
    *p = mb;
    free(ctl_map_get(&vols(ctx)->budget, node_uuid));
    ctl_map_put(&vols(ctx)->budget, node_uuid, p);
    return 0;
}

int ctl_volumes_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    vols(ctx);
    if (ctl_store_volumes_load(&ctx->store, load_vol, load_mount, load_budget, ctx, err) < 0)
        return nubo_error_wrap(err, "loading volumes");
    return 0;
}

void ctl_volumes_free(struct ctl_ctx *ctx)
{
    if (ctx->vols == NULL)
        return;
    ctl_map_foreach(&ctx->vols->by_uuid, e) free(e->val);
    ctl_map_foreach(&ctx->vols->budget, e) free(e->val);
    ctl_map_clear(&ctx->vols->by_uuid);
    ctl_map_clear(&ctx->vols->by_name);
    ctl_map_clear(&ctx->vols->budget);
    free(ctx->vols);
    ctx->vols = NULL;
}

struct ctl_volume *ctl_volume_find(struct ctl_ctx *ctx, const char *owner, const char *uuid,
                                   const char *name)
{
    struct ctl_volume *v;
    if (uuid && uuid[0]) {
        v = ctl_map_get(&vols(ctx)->by_uuid, uuid);
        return v && strcmp(v->row.owner, owner) == 0 ? v : NULL;
    }
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    ctl_owner_key(key, sizeof(key), owner, name ? name : "");
    return ctl_map_get(&vols(ctx)->by_name, key);
}

/* The disk a node still offers to volumes (MiB); -1 when it offers none. */
static int64_t node_free_mb(struct ctl_ctx *ctx, const struct ctl_node *node)
{
    int64_t *budget = ctl_map_get(&vols(ctx)->budget, node->row.uuid);
    if (budget == NULL || *budget <= 0)
        return -1;
    int64_t used = 0;
    ctl_map_foreach(&vols(ctx)->by_uuid, e)
    {
        const struct ctl_volume *v = e->val;
        if (strcmp(v->row.node_uuid, node->row.uuid) == 0)
            used += v->row.size_mb;
    }
    return *budget - used;
}

/* "vol-<5 random>", free for owner and not in taken[0..n). */
static int volume_name(struct ctl_ctx *ctx, const char *owner, char out[NUBO_NAME_MAX + 1],
                       const struct ctl_volume_row *taken, size_t n, struct nubo_err *err)
{
    for (int tries = 0; tries < 20; tries++) {
        char rnd[6];
        nubo_random_alnum(rnd, 5);
        snprintf(out, NUBO_NAME_MAX + 1, "vol-%s", rnd);
        bool used = ctl_volume_find(ctx, owner, NULL, out) != NULL;
        for (size_t i = 0; i < n; i++)
            used = used || strcmp(taken[i].name, out) == 0;
        if (!used)
            return 0;
    }
    return nubo_error_http(err, 409, "cannot find a free volume name; give one");
}

static void new_row(const struct ctl_user_row *u, const char *name, int64_t size_mb,
                    bool persistent, struct ctl_volume_row *r)
{
    memset(r, 0, sizeof(*r));
    nubo_uuid_new(r->uuid);
    snprintf(r->owner, sizeof(r->owner), "%s", u->name);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->size_mb = size_mb;
    r->persistent = persistent;
    r->created_at_us = nubo_now_us();
    r->obs = NUBO_VOL_UNINITIALIZED;
}

struct ctl_volume *ctl_volume_create(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                                     const struct nubo_volume_create_req *req,
                                     struct nubo_err *err)
{
    char name[NUBO_NAME_MAX + 1];
    if (req->name[0]) {
        if (ctl_volume_find(ctx, u->name, NULL, req->name)) {
            nubo_error_http(err, 409, "a volume named '%s' already exists; choose another name",
                            req->name);
            return NULL;
        }
        snprintf(name, sizeof(name), "%s", req->name);
    } else if (volume_name(ctx, u->name, name, NULL, 0, err) < 0) {
        return NULL;
    }
    int64_t delta[NUBO_QUOTA_N] = {[NUBO_QUOTA_VOLUMES] = 1,
                                   [NUBO_QUOTA_TOTAL_VOLUME_MB] = req->size_mb};
    if (ctl_quota_check(ctx, u, delta, err) < 0)
        return NULL;
    /* the node of the metro with the most free volume space (then the lowest uuid) */
    struct ctl_node *best = NULL;
    int64_t best_free = -1, any_budget = 0;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *node = e->val;
        if (!node->ready || node->row.maintenance ||
            (req->metro[0] && strcmp(req->metro, node->row.metro) != 0))
            continue;
        int64_t f = node_free_mb(ctx, node);
        if (f < 0)
            continue;
        any_budget++;
        if (f > best_free || (f == best_free && strcmp(node->row.uuid, best->row.uuid) < 0)) {
            best = node;
            best_free = f;
        }
    }
    if (any_budget == 0) {
        nubo_error_http(err, 503,
                        "no available node%s%s offers disk to volumes; start a node whose agent "
                        "has [volumes] budget_mb set",
                        req->metro[0] ? " in metro " : "", req->metro);
        return NULL;
    }
    if (best_free < req->size_mb) {
        nubo_error_http(err, 400,
                        "size_mb: %lld MiB is more than any node has left for volumes (at most "
                        "%lld MiB); ask for less",
                        (long long)req->size_mb, (long long)(best_free > 0 ? best_free : 0));
        return NULL;
    }
    struct ctl_volume *v = xcalloc(1, sizeof(*v));
    new_row(u, name, req->size_mb, true, &v->row);
    memcpy(v->row.node_uuid, best->row.uuid, sizeof(v->row.node_uuid));
    memcpy(v->row.metro, best->row.metro, sizeof(v->row.metro));
    if (ctl_store_volume_put(&ctx->store, &v->row, err) < 0) {
        free(v);
        return NULL;
    }
    vol_add(ctx, v);
    ctl_node_bump(ctx, best);
    log_info("volume %s (%s/%s, %lld MiB) placed on node %s", v->row.uuid, u->name, name,
             (long long)req->size_mb, best->row.name);
    return v;
}

int ctl_volume_delete(struct ctl_ctx *ctx, struct ctl_volume *v, struct nubo_err *err)
{
    if (v->attached) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, v->mount.instance_uuid);
        return nubo_error_http(err, 409,
                               "volume %s is attached to instance %s; delete that instance first",
                               v->row.name, in ? in->row.name : v->mount.instance_uuid);
    }
    if (ctl_store_volume_delete(&ctx->store, v->row.uuid, err) < 0)
        return -1;
    vol_forget(ctx, v);
    return 0;
}

void ctl_volume_to_api(struct ctl_ctx *ctx, const struct ctl_volume *v, struct nubo_volume *out)
{
    memset(out, 0, sizeof(*out));
    memcpy(out->uuid, v->row.uuid, sizeof(out->uuid));
    memcpy(out->name, v->row.name, sizeof(out->name));
    out->size_mb = v->row.size_mb;
    out->persistent = v->row.persistent;
    out->created_at_us = v->row.created_at_us;
    memcpy(out->metro, v->row.metro, sizeof(out->metro));
    memcpy(out->message, v->row.message, sizeof(out->message));
    const struct ctl_node *node = ctl_map_get(&ctx->nodes, v->row.node_uuid);
    snprintf(out->node, sizeof(out->node), "%s", node ? node->row.name : "");
    out->state = v->row.obs;
    const struct ctl_instance *in =
        v->attached ? ctl_map_get(&ctx->instances, v->mount.instance_uuid) : NULL;
    if (in == NULL)
        return;
    struct nubo_volume_user *a = &out->attached_to[out->n_attached++];
    memcpy(a->uuid, in->row.uuid, sizeof(a->uuid));
    memcpy(a->name, in->row.name, sizeof(a->name));
    enum nubo_state st = ctl_instance_state(in);
    bool live = st == NUBO_STATE_STARTING || st == NUBO_STATE_RUNNING ||
                st == NUBO_STATE_DRAINING || st == NUBO_STATE_STOPPING;
    if (live) {
        out->mounted_by[out->n_mounted] = *a;
        out->mounted_by[out->n_mounted++].readonly = v->mount.readonly;
    }
    if (v->row.obs == NUBO_VOL_AVAILABLE)
        out->state = live ? NUBO_VOL_MOUNTED : NUBO_VOL_IDLE;
}

/* ---- an instance's volumes ----------------------------------------------------------- */

int ctl_volumes_plan(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                     const struct nubo_create_req *cr, struct ctl_volume_plan *plan,
                     struct nubo_err *err)
{
    memset(plan, 0, sizeof(*plan));
    if (cr->n_volumes == 0)
        return 0;
    if (cr->replicas > 0)
        return nubo_error_http(err, 400,
                               "replicas: an instance with volumes has no replicas (a volume has "
                               "one writer)");
    /* the inline volumes made with this instance, against the user's volume quotas */
    int64_t delta[NUBO_QUOTA_N] = {0};
    for (size_t i = 0; i < cr->n_volumes && i < NUBO_VOLUME_MAX_MOUNTS; i++)
        if (cr->volumes[i].size_mb > 0) {
            delta[NUBO_QUOTA_VOLUMES]++;
            delta[NUBO_QUOTA_TOTAL_VOLUME_MB] += cr->volumes[i].size_mb;
        }
    if (ctl_quota_check(ctx, u, delta, err) < 0)
        return -1;
    const struct ctl_volume *first = NULL;
    for (size_t i = 0; i < cr->n_volumes && i < NUBO_VOLUME_MAX_MOUNTS; i++) {
        const struct nubo_volume_mount *m = &cr->volumes[i];
        struct ctl_volume_mount_row *mr = &plan->mount[i];
        snprintf(mr->at, sizeof(mr->at), "%s", m->at);
        mr->readonly = m->readonly;
        plan->n = i + 1;
        if (m->size_mb > 0) { /* inline: made with the instance, gone with it */
            char name[NUBO_NAME_MAX + 1];
            if (volume_name(ctx, u->name, name, plan->new_row, i, err) < 0)
                return -1;
            new_row(u, name, m->size_mb, false, &plan->new_row[i]);
            memcpy(mr->volume_uuid, plan->new_row[i].uuid, sizeof(mr->volume_uuid));
            continue;
        }
        struct ctl_volume *v = ctl_volume_find(ctx, u->name, m->uuid, m->name);
        const char *ref = m->uuid[0] ? m->uuid : m->name;
        if (v == NULL)
            return nubo_error_http(err, 404,
                                   "volumes[%zu]: volume %s not found; create it first (nubo "
                                   "volumes create)",
                                   i, ref);
        if (v->attached) {
            struct ctl_instance *in = ctl_map_get(&ctx->instances, v->mount.instance_uuid);
            return nubo_error_http(err, 409,
                                   "volumes[%zu]: volume %s is attached to instance %s; a volume "
                                   "has one writer (delete that instance first)",
                                   i, v->row.name, in ? in->row.name : v->mount.instance_uuid);
        }
        if (cr->metro[0] && strcmp(cr->metro, v->row.metro) != 0)
            return nubo_error_http(err, 400,
                                   "volumes[%zu]: volume %s is in metro %s, not %s", i,
                                   v->row.name, v->row.metro, cr->metro);
        struct ctl_node *node = ctl_map_get(&ctx->nodes, v->row.node_uuid);
        if (node == NULL)
            return nubo_error_http(err, 503,
                                   "volumes[%zu]: volume %s lived on a node that was removed; its "
                                   "data is gone with it",
                                   i, v->row.name);
        if (plan->pin && plan->pin != node)
            return nubo_error_http(err, 400,
                                   "volumes: %s lives on node %s and %s on node %s; an instance "
                                   "mounts volumes of one node",
                                   first->row.name, plan->pin->row.name, v->row.name,
                                   node->row.name);
        plan->pin = node;
        first = first ? first : v;
        plan->vol[i] = v;
        memcpy(mr->volume_uuid, v->row.uuid, sizeof(mr->volume_uuid));
    }
    if (plan->pin && (!plan->pin->ready || plan->pin->row.maintenance))
        return nubo_error_http(err, 503,
                               "volume %s lives on node %s, which is %s; the instance can only "
                               "run there: bring the node back or use another volume",
                               first->row.name, plan->pin->row.name,
                               plan->pin->ready ? "in maintenance" : "unavailable");
    return 0;
}

int ctl_volumes_plan_node(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                          struct ctl_volume_plan *plan, const struct ctl_node *node,
                          const char *instance_uuid, struct nubo_err *err)
{
    (void)u;
    int64_t want = 0;
    for (size_t i = 0; i < plan->n; i++) {
        memcpy(plan->mount[i].instance_uuid, instance_uuid, sizeof(plan->mount[i].instance_uuid));
        if (plan->vol[i])
            continue;
        memcpy(plan->new_row[i].node_uuid, node->row.uuid, sizeof(plan->new_row[i].node_uuid));
        memcpy(plan->new_row[i].metro, node->row.metro, sizeof(plan->new_row[i].metro));
        want += plan->new_row[i].size_mb;
    }
    if (want == 0)
        return 0;
    int64_t f = node_free_mb(ctx, node);
    if (f < want)
        return nubo_error_http(err, 400,
                               "volumes: %lld MiB of new volumes do not fit node %s (%lld MiB "
                               "left for volumes); ask for less",
                               (long long)want, node->row.name, (long long)(f > 0 ? f : 0));
    return 0;
}

int ctl_volumes_plan_store(struct ctl_ctx *ctx, const struct ctl_volume_plan *plan,
                           struct nubo_err *err)
{
    for (size_t i = 0; i < plan->n; i++) {
        if (plan->vol[i] == NULL && ctl_store_volume_put(&ctx->store, &plan->new_row[i], err) < 0)
            return -1;
        if (ctl_store_volume_mount_put(&ctx->store, &plan->mount[i], err) < 0)
            return -1;
    }
    return 0;
}

void ctl_volumes_plan_apply(struct ctl_ctx *ctx, const struct ctl_volume_plan *plan)
{
    for (size_t i = 0; i < plan->n; i++) {
        struct ctl_volume *v = plan->vol[i];
        if (v == NULL) {
            v = xcalloc(1, sizeof(*v));
            v->row = plan->new_row[i];
            vol_add(ctx, v);
        }
        v->attached = true;
        v->mount = plan->mount[i];
    }
}

int ctl_volumes_store_detach(struct ctl_ctx *ctx, const char *instance_uuid, struct nubo_err *err)
{
    ctl_map_foreach(&vols(ctx)->by_uuid, e)
    {
        struct ctl_volume *v = e->val;
        if (!v->attached || strcmp(v->mount.instance_uuid, instance_uuid) != 0)
            continue;
        if (ctl_store_volume_mount_delete(&ctx->store, v->row.uuid, err) < 0 ||
            (!v->row.persistent && ctl_store_volume_delete(&ctx->store, v->row.uuid, err) < 0))
            return -1;
    }
    return 0;
}

void ctl_volumes_forget_instance(struct ctl_ctx *ctx, const char *instance_uuid)
{
    ctl_map_foreach(&vols(ctx)->by_uuid, e)
    {
        struct ctl_volume *v = e->val;
        if (!v->attached || strcmp(v->mount.instance_uuid, instance_uuid) != 0)
            continue;
        v->attached = false;
        if (!v->row.persistent)
            vol_forget(ctx, v); /* safe: the foreach keeps the next entry */
    }
}

struct nubo_volume_mount *ctl_volumes_of_instance(struct ctl_ctx *ctx, const char *instance_uuid,
                                                  size_t *n)
{
    *n = 0;
    struct nubo_volume_mount *out = NULL;
    ctl_map_foreach(&vols(ctx)->by_uuid, e)
    {
        const struct ctl_volume *v = e->val;
        if (!v->attached || strcmp(v->mount.instance_uuid, instance_uuid) != 0)
            continue;
        if (*n >= NUBO_VOLUME_MAX_MOUNTS)
            break;
        if (out == NULL)
            out = xcalloc(NUBO_VOLUME_MAX_MOUNTS, sizeof(*out));
        struct nubo_volume_mount *m = &out[(*n)++];
        memcpy(m->uuid, v->row.uuid, sizeof(m->uuid));
        memcpy(m->at, v->mount.at, sizeof(m->at));
        m->readonly = v->mount.readonly;
    }
    return out;
}

json_t *ctl_volumes_node_json(struct ctl_ctx *ctx, const struct ctl_node *node)
{
    size_t n = 0;
    struct nubo_volume_spec *s = xcalloc(vols(ctx)->by_uuid.n + 1, sizeof(*s));
    ctl_map_foreach(&vols(ctx)->by_uuid, e)
    {
        const struct ctl_volume *v = e->val;
        if (strcmp(v->row.node_uuid, node->row.uuid) != 0 || n >= NUBO_VOLUME_MAX_NODE)
            continue;
        memcpy(s[n].uuid, v->row.uuid, sizeof(s[n].uuid));
        s[n++].size_mb = v->row.size_mb;
    }
    json_t *j = nubo_volume_specs_encode(s, n);
    free(s);
    return j;
}

int ctl_volumes_node_budget(struct ctl_ctx *ctx, struct ctl_node *node, int64_t volume_mb,
                            struct nubo_err *err)
{
    int64_t *cur = ctl_map_get(&vols(ctx)->budget, node->row.uuid);
    if (cur && *cur == volume_mb)
        return 0;
    if (ctl_store_node_volume_mb_put(&ctx->store, node->row.uuid, volume_mb, err) < 0)
        return -1;
    return load_budget(ctx, node->row.uuid, volume_mb);
}

int ctl_volumes_observe(struct ctl_ctx *ctx, struct ctl_node *node,
                        const struct nubo_volume_report *r, size_t n, struct nubo_err *err)
{
    for (size_t i = 0; i < n; i++) {
        struct ctl_volume *v = ctl_map_get(&vols(ctx)->by_uuid, r[i].uuid);
        if (v == NULL || strcmp(v->row.node_uuid, node->row.uuid) != 0)
            continue; /* not (or no longer) this node's: its agent drops it */
        if (v->row.obs == r[i].state && strcmp(v->row.message, r[i].message) == 0)
            continue;
        struct ctl_volume_row tmp = v->row;
        tmp.obs = r[i].state;
        memcpy(tmp.message, r[i].message, sizeof(tmp.message));
        if (ctl_store_volume_put(&ctx->store, &tmp, err) < 0)
            return -1;
        if (tmp.obs == NUBO_VOL_ERROR)
            log_warnx("volume %s on node %s: %s", v->row.uuid, node->row.name, tmp.message);
        v->row = tmp;
    }
    return 0;
}
