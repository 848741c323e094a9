/* Placement of a create: one decoded create object becomes replicas + 1 instances with names,
 * nodes (the scheduler), private addresses and, when asked, a service group, committed in one
 * transaction. All or nothing: a create that does not fit changes nothing. And room for a
 * start: a stopped instance holds no memory (as on the platform), so a node may be
 * overcommitted by stopped instances and a start finds room on its node or another. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "ctl.h"
#include "ctl_volumes.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

static void base_name(const char *image_ref, char out[NUBO_NAME_MAX + 1])
{
    char repo[NUBO_IMAGE_REF_MAX];
    snprintf(repo, sizeof(repo), "%s", image_ref);
    char *cut = strpbrk(repo, "@");
    if (cut)
        *cut = '\0';
    char *slash = strrchr(repo, '/');
    const char *b = slash ? slash + 1 : repo;
    char *colon = strchr(b, ':');
    if (colon)
        *colon = '\0';
    size_t k = 0;
    for (const char *p = b; *p && k < 57; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            c = '-';
        if (c == '-' && (k == 0 || out[k - 1] == '-'))
            continue;
        out[k++] = c;
    }
    while (k > 0 && out[k - 1] == '-')
        k--;
    if (k == 0)
        k = (size_t)snprintf(out, 8, "app");
    out[k] = '\0';
}

static bool name_taken(struct ctl_ctx *ctx, const char *owner, const char *name,
                       char (*batch)[NUBO_NAME_MAX + 1], size_t n_batch)
{
    if (ctl_instance_name_taken(ctx, owner, name))
        return true;
    for (size_t i = 0; i < n_batch; i++)
        if (strcmp(batch[i], name) == 0)
            return true;
    return false;
}

/* The instances' names: the given one for the first, <stem>-<5 random> for the others. */
static int pick_names(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                      const struct nubo_create_req *cr, const struct ctl_image_row *im,
                      char (*names)[NUBO_NAME_MAX + 1], size_t count, struct nubo_err *err)
{
    char base[NUBO_NAME_MAX + 1];
    base_name(im->repo, base);
    for (size_t i = 0; i < count; i++) {
        if (i == 0 && cr->name[0]) {
            if (ctl_instance_name_taken(ctx, u->name, cr->name))
                return nubo_error_http(err, 409,
                                       "an instance named '%s' already exists; choose another "
                                       "name",
                                       cr->name);
            memcpy(names[i], cr->name, sizeof(names[i]));
            continue;
        }
        const char *stem = cr->name[0] ? cr->name : base;
        if (strlen(stem) > 57)
            return nubo_error_http(err, 400,
                                   "name: '%s' is too long to add a replica suffix (max 57)", stem);
        int tries = 0;
        do {
            char rnd[6];
            nubo_random_alnum(rnd, 5);
            snprintf(names[i], sizeof(names[i]), "%s-%s", stem, rnd);
        } while (name_taken(ctx, u->name, names[i], names, i) && ++tries < 20);
        if (tries >= 20)
            return nubo_error_http(err, 409, "cannot find a free name for '%s'", stem);
    }
    return 0;
}

/* The service group a create names: an existing one ({uuid}|{name}; *grp) or an inline one to
 * build once the metro is known (*inl). */
static int group_of(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                    const struct nubo_create_req *cr, json_t *sgj, struct ctl_svc **grp,
                    struct nubo_svc_create_req **inl, struct nubo_err *err)
{
    json_t *su = json_object_get(sgj, "uuid"), *sn = json_object_get(sgj, "name");
    if (json_is_object(sgj) && (su || sn) && json_object_size(sgj) == 1) {
        const char *ref = json_string_value(su ? su : sn);
        if (ref == NULL)
            return nubo_error_http(err, 400, "service_group.%s: must be a string",
                                   su ? "uuid" : "name");
        *grp = ctl_svc_find(ctx, u, su ? ref : NULL, su ? NULL : ref);
        if (*grp == NULL)
            return nubo_error_http(err, 404,
                                   "service group %.100s not found; create it first (nubo "
                                   "services create) or pass services inline",
                                   ref);
        if (cr->metro[0] && strcmp(cr->metro, (*grp)->row.metro) != 0)
            return nubo_error_http(err, 400,
                                   "service group %s is in metro %s, not %s; instances join "
                                   "groups of their own metro",
                                   (*grp)->row.name, (*grp)->row.metro, cr->metro);
        return 0;
    }
    *inl = xmalloc(sizeof(**inl));
    return nubo_svc_create_req_decode(sgj, true, *inl, err);
}

/* The instance row for one replica on node (address not yet chosen). */
static struct ctl_instance *new_instance(const struct ctl_user_row *u,
                                         const struct nubo_create_req *cr,
                                         const struct ctl_image_row *im, const char *name,
                                         const struct ctl_node *node, int64_t now)
{
    struct ctl_instance *in = xcalloc(1, sizeof(*in));
    struct ctl_instance_row *r = &in->row;
    nubo_uuid_new(r->uuid);
    snprintf(r->owner, sizeof(r->owner), "%s", u->name);
    snprintf(r->name, sizeof(r->name), "%s", name);
    r->created_at_us = now;
    snprintf(r->image, sizeof(r->image), "%s", im->digest_ref);
    r->memory_mb = cr->memory_mb;
    r->vcpus = cr->vcpus;
    if (cr->has_args) {
        r->args = xcheck(pj_strv_dup(cr->args, cr->n_args), "args");
        r->n_args = cr->n_args;
    } else {
        r->args = xcheck(pj_strv_dup(im->args, im->n_args), "args");
        r->n_args = im->n_args;
    }
    /* image env first; the request's values win */
    r->env = xcalloc(im->n_env + cr->n_env + 1, sizeof(*r->env));
    for (size_t k = 0; k < im->n_env; k++) {
        bool over = false;
        for (size_t m = 0; m < cr->n_env; m++)
            over = over || strcmp(cr->env[m].key, im->env[k].key) == 0;
        if (!over) {
            r->env[r->n_env].key = xstrdup(im->env[k].key);
            r->env[r->n_env++].value = xstrdup(im->env[k].value);
        }
    }
    for (size_t m = 0; m < cr->n_env; m++) {
        r->env[r->n_env].key = xstrdup(cr->env[m].key);
        r->env[r->n_env++].value = xstrdup(cr->env[m].value);
    }
    r->restart_policy = cr->restart_policy;
    r->features = cr->features;
    r->s2z = cr->scale_to_zero;
    r->service_ports = xcalloc(cr->n_service_ports + 1, sizeof(int64_t));
    memcpy(r->service_ports, cr->service_ports, cr->n_service_ports * sizeof(int64_t));
    r->n_service_ports = cr->n_service_ports;
    memcpy(r->node_uuid, node->row.uuid, sizeof(r->node_uuid));
    memcpy(r->metro, node->row.metro, sizeof(r->metro));
    r->desired = cr->autostart ? NUBO_DESIRED_RUNNING : NUBO_DESIRED_STOPPED;
    r->start_seq = cr->autostart ? 1 : 0;
    return in;
}

int ctl_place(struct ctl_ctx *ctx, const struct ctl_user_row *u, const struct nubo_create_req *cr,
              const struct ctl_image_row *im, json_t *sgj, struct ctl_instance **made,
              size_t *n_made, struct nubo_err *err)
{
    size_t count = (size_t)cr->replicas + 1;
    struct ctl_svc *grp = NULL;
    cleanup_free struct nubo_svc_create_req *inl = NULL;
    if (sgj && group_of(ctx, u, cr, sgj, &grp, &inl, err) < 0)
        return -1;
    /* quotas first: a refused create changes nothing and says which limit */
    int64_t delta[NUBO_QUOTA_N] = {0};
    delta[NUBO_QUOTA_INSTANCES] = (int64_t)count;
    delta[NUBO_QUOTA_MEMORY_MB] = (int64_t)count * cr->memory_mb;
    if (cr->autostart) {
        delta[NUBO_QUOTA_LIVE_INSTANCES] = (int64_t)count;
        delta[NUBO_QUOTA_LIVE_MEMORY_MB] = (int64_t)count * cr->memory_mb;
        delta[NUBO_QUOTA_LIVE_VCPUS] = (int64_t)count * cr->vcpus;
    }
    if (inl) {
        delta[NUBO_QUOTA_SERVICE_GROUPS] = 1;
        delta[NUBO_QUOTA_SERVICES] = (int64_t)inl->n_ports;
    }
    if (ctl_quota_check(ctx, u, delta, err) < 0)
        return -1;
    const char *metro = grp ? grp->row.metro : cr->metro;
    int64_t cap = ctl_max_memory_mb(&ctx->cfg, metro);
    if (cr->memory_mb > cap)
        return nubo_error_http(err, 400, "memory_mb: %lld is above %s%s's limit of %lld MiB",
                               (long long)cr->memory_mb, metro[0] ? "metro " : "the platform",
                               metro, (long long)cap);
    /* memory bound: the largest node of the metro */
    int64_t max_mem = ctl_capacity_max_memory_mb(ctx, cr->metro);
    if (max_mem > 0 && cr->memory_mb > max_mem)
        return nubo_error_http(err, 400,
                               "memory_mb: %lld is more than the largest node offers (%lld MiB); "
                               "ask for less",
                               (long long)cr->memory_mb, (long long)max_mem);
    cleanup_free char(*names)[NUBO_NAME_MAX + 1] = xcalloc(count, sizeof(*names));
    if (pick_names(ctx, u, cr, im, names, count, err) < 0)
        return -1;
    cleanup_free size_t *place = xcalloc(count, sizeof(*place));
    /* a create that does not start takes only addresses now: its start finds it room */
    struct ctl_sched_req sr = {metro, cr->autostart ? cr->memory_mb : 0,
                               cr->autostart ? cr->vcpus : 0, count};
    /* an instance mounting volumes runs on the node that holds them */
    cleanup_free struct ctl_volume_plan *vp = xmalloc(sizeof(*vp));
    if (ctl_volumes_plan(ctx, u, cr, vp, err) < 0)
        return -1;
    __attribute__((cleanup(ctl_plan_free))) struct ctl_plan plan;
    ctl_plan_init(&plan, ctx, NULL);
    if (vp->pin) {
        size_t k = ctl_plan_entry(&plan, vp->pin);
        struct nubo_err serr = {0};
        if (ctl_schedule(&plan.sn[k], 1, &sr, place, &serr) < 0)
            return nubo_error_http(err, 503,
                                   "node %s holds the instance's volumes but has no room for it "
                                   "(%lld MiB, %lld vCPUs); free the node or ask for less",
                                   vp->pin->row.name, (long long)cr->memory_mb,
                                   (long long)cr->vcpus);
        place[0] = k;
    } else if (ctl_plan_place(&plan, &sr, place, err) < 0) {
        return -1;
    }
    cleanup_free struct ctl_svc_row *new_grp = NULL;
    if (inl) {
        /* one group serves one metro: keep every replica in the first one's */
        char m0[NUBO_NAME_MAX + 1];
        snprintf(m0, sizeof(m0), "%s", plan.node[place[0]]->row.metro);
        bool spread = false;
        for (size_t i = 1; i < count; i++)
            spread = spread || strcmp(plan.node[place[i]]->row.metro, m0) != 0;
        if (spread) { /* placed again from scratch, in that metro only */
            sr.metro = m0;
            ctl_plan_free(&plan);
            ctl_plan_init(&plan, ctx, NULL);
            if (ctl_plan_place(&plan, &sr, place, err) < 0)
                return -1;
        }
        new_grp = xmalloc(sizeof(*new_grp));
        if (ctl_svc_build(ctx, u, inl, plan.node[place[0]]->row.metro, false, new_grp, err) < 0)
            return -1;
    }
    /* build rows; addresses are marked on the nodes and unmarked again if the commit fails */
    cleanup_free struct ctl_instance **inst = xcalloc(count, sizeof(*inst));
    int64_t now = nubo_now_us();
    int rc = -1;
    for (size_t i = 0; i < count; i++) {
        struct ctl_node *node = plan.node[place[i]];
        inst[i] = new_instance(u, cr, im, names[i], node, now);
        int h = ctl_ip_lowest_free(node->ip_used);
        if (h < 0) {
            nubo_error_http(err, 503, "node %s has no free address", node->row.name);
            goto undo;
        }
        inst[i]->row.ip_host = h;
        node->ip_used[h / 8] |= (uint8_t)(1u << (h % 8));
        if (vp->n && ctl_volumes_plan_node(ctx, u, vp, node, inst[i]->row.uuid, err) < 0)
            goto undo;
        const char *gu = grp ? grp->row.uuid : new_grp ? new_grp->uuid : NULL;
        if (gu)
            snprintf(inst[i]->row.service_group, sizeof(inst[i]->row.service_group), "%s", gu);
    }
    if (ctl_store_begin(&ctx->store, err) < 0)
        goto undo;
    if (new_grp && ctl_store_svc_put(&ctx->store, new_grp, err) < 0)
        goto rollback;
    for (size_t i = 0; i < count; i++)
        if (ctl_store_instance_put(&ctx->store, &inst[i]->row, err) < 0 ||
            (inst[i]->row.s2z.policy != NUBO_S2Z_OFF &&
             ctl_store_s2z_put(&ctx->store, &inst[i]->row, err) < 0))
            goto rollback;
    if (ctl_volumes_plan_store(ctx, vp, err) < 0)
        goto rollback;
    if (ctl_store_commit(&ctx->store, err) < 0)
        goto undo;
    ctl_volumes_plan_apply(ctx, vp);
    /* committed */
    if (new_grp)
        grp = ctl_svc_add(ctx, new_grp);
    for (size_t i = 0; i < count; i++) {
        struct ctl_node *node = plan.node[place[i]];
        ctl_instance_add(ctx, inst[i], node);
        ctl_node_bump(ctx, node);
        made[(*n_made)++] = inst[i];
        inst[i] = NULL;
    }
    if (grp)
        ctl_emit_services_changed(ctx, grp->row.metro);
    return 0;
rollback:
    ctl_store_rollback(&ctx->store);
undo:
    for (size_t i = 0; i < count; i++) {
        if (inst[i] == NULL)
            continue;
        int h = (int)inst[i]->row.ip_host;
        if (h > 0)
            plan.node[place[i]]->ip_used[h / 8] &= (uint8_t) ~(1u << (h % 8));
        ctl_instance_destroy(inst[i]);
    }
    return rc;
}

/* ---- starts ---- */

/* Does the instance mount volumes (a start cannot leave the node that holds them)? vol: the
 * first one. */
static bool pinned_by(struct ctl_ctx *ctx, const struct ctl_instance *in, char *vol, size_t size)
{
    size_t n = 0;
    cleanup_free struct nubo_volume_mount *m = ctl_volumes_of_instance(ctx, in->row.uuid, &n);
    if (n == 0)
        return false;
    /* the mount names its volume by uuid; the user knows it by name */
    const struct ctl_volume *v = ctl_volume_find(ctx, in->row.owner, m[0].uuid, NULL);
    snprintf(vol, size, "%s", v ? v->row.name : m[0].uuid);
    return true;
}

int ctl_place_starts(struct ctl_ctx *ctx, struct ctl_desire *d, size_t n, struct nubo_err *err)
{
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        d[i].move_to = NULL;
        any = any || (d[i].in && d[i].start && !ctl_instance_holds(d[i].in));
    }
    if (!any)
        return 0;
    __attribute__((cleanup(ctl_plan_free))) struct ctl_plan plan;
    ctl_plan_init(&plan, ctx, NULL);
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = d[i].in;
        bool twice = false;
        for (size_t k = 0; k < i && in; k++)
            twice = twice || d[k].in == in;
        if (in == NULL || !d[i].start || twice || ctl_instance_holds(in))
            continue;
        size_t home = in->node ? ctl_plan_entry(&plan, in->node) : SIZE_MAX;
        struct ctl_sched_node *hs = home != SIZE_MAX ? &plan.sn[home] : NULL;
        const int64_t mem = in->row.memory_mb, vcpus = in->row.vcpus;
        /* its own node first: the image is there, and so are its volumes */
        if (hs && !in->node->row.maintenance && hs->free_memory_mb >= mem &&
            hs->free_vcpus >= vcpus) {
            hs->free_memory_mb -= mem;
            hs->free_vcpus -= vcpus;
            continue;
        }
        char vol[NUBO_NAME_MAX + 1];
        if (pinned_by(ctx, in, vol, sizeof(vol)))
            return nubo_error_http(err, 503,
                                   "cannot start instance %s: its volume %s lives on node %s, "
                                   "which has no room for it (%lld MiB free, %lld asked); stop "
                                   "instances there",
                                   in->row.name, vol, in->node ? in->node->row.name : "?",
                                   (long long)(hs ? hs->free_memory_mb : 0), (long long)mem);
        struct ctl_sched_req sr = {in->row.metro, mem, vcpus, 1};
        size_t t;
        if (ctl_plan_place(&plan, &sr, &t, err) < 0)
            return nubo_error_wrap(err, "cannot start instance %s", in->row.name);
        int h = ctl_plan_address(&plan, t);
        if (h < 0)
            return nubo_error_http(err, 503, "cannot start instance %s: node %s has no free "
                                   "address", in->row.name, plan.node[t]->row.name);
        d[i].move_to = plan.node[t];
        d[i].move_ip_host = h;
    }
    return 0;
}
