/* Capacity bookkeeping for placement at scale: what each node's instances hold, kept as they
 * change (not summed per placement), and per metro the ready nodes ordered as the scheduler
 * ranks them (most free memory, then vCPUs, then lowest uuid) in a treap, so a placement looks
 * at the few best nodes instead of every node. A plan runs ctl_schedule (the pure scheduler)
 * on those few plus the nodes its batch already took a share of: the same placements as on all
 * nodes, in O(count x metros x log nodes). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "scheduler.h"

/* A metro's nodes: all of them (count, largest) and the ready ones in rank order. */
struct ctl_cap_metro {
    char metro[NUBO_NAME_MAX + 1];
    struct ctl_node *root; /* treap of ready, in-service nodes */
    struct ctl_node *any;  /* one node of the metro (for "the metro exists") */
    size_t n_nodes;
    int64_t max_memory_mb; /* the largest node; recomputed when a node shrank */
    bool max_stale;
};

/* ---- the per-node sums ---- */

void ctl_node_used_walk(const struct ctl_node *node, int64_t *memory_mb, int64_t *vcpus)
{
    *memory_mb = *vcpus = 0;
    for (const struct ctl_instance *in = node->inst_head; in; in = in->node_next)
        if (ctl_instance_holds(in)) {
            *memory_mb += in->row.memory_mb;
            *vcpus += in->row.vcpus;
        }
}

void ctl_node_used(const struct ctl_node *node, int64_t *memory_mb, int64_t *vcpus)
{
    *memory_mb = node->used_memory_mb;
    *vcpus = node->used_vcpus;
}

void ctl_instance_account(struct ctl_instance *in)
{
    ctl_instance_recount(in); /* the state counts read what the sums read, and more */
    bool holds = in->node && ctl_instance_holds(in);
    int64_t mb = holds ? in->row.memory_mb : 0, vc = holds ? in->row.vcpus : 0;
    if (mb == in->held_memory_mb && vc == in->held_vcpus)
        return;
    if (in->node) {
        in->node->used_memory_mb += mb - in->held_memory_mb;
        in->node->used_vcpus += vc - in->held_vcpus;
        ctl_node_reindex(in->node);
    }
    in->held_memory_mb = mb;
    in->held_vcpus = vc;
}

bool ctl_capacity_verify(struct ctl_ctx *ctx)
{
    bool ok = true;
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        int64_t mb, vc;
        ctl_node_used_walk(n, &mb, &vc);
        if (mb != n->used_memory_mb || vc != n->used_vcpus) {
            log_warnx("node %s: capacity sums drifted: %lld MiB / %lld vCPUs kept, %lld / %lld "
                      "held",
                      n->row.name, (long long)n->used_memory_mb, (long long)n->used_vcpus,
                      (long long)mb, (long long)vc);
            ok = false;
        }
    }
    return ok;
}

/* ---- the treap ---- */

static int64_t free_mem(const struct ctl_node *n)
{
    return n->row.memory_mb - n->used_memory_mb;
}

static int64_t free_vcpus(const struct ctl_node *n)
{
    return n->vcpu_cap - n->used_vcpus;
}

/* a ranks before b (by the keys it was inserted with) */
static bool before(const struct ctl_node *a, const struct ctl_node *b)
{
    if (a->cap_key_mem != b->cap_key_mem)
        return a->cap_key_mem > b->cap_key_mem;
    if (a->cap_key_vcpus != b->cap_key_vcpus)
        return a->cap_key_vcpus > b->cap_key_vcpus;
    return strcmp(a->row.uuid, b->row.uuid) < 0;
}

static void split(struct ctl_node *t, const struct ctl_node *key, struct ctl_node **l,
                  struct ctl_node **r)
{
    if (t == NULL) {
        *l = *r = NULL;
    } else if (before(t, key)) {
        split(t->cap_r, key, &t->cap_r, r);
        *l = t;
    } else {
        split(t->cap_l, key, l, &t->cap_l);
        *r = t;
    }
}

static struct ctl_node *merge(struct ctl_node *a, struct ctl_node *b)
{
    if (a == NULL || b == NULL)
        return a ? a : b;
    if (a->cap_prio > b->cap_prio) {
        a->cap_r = merge(a->cap_r, b);
        return a;
    }
    b->cap_l = merge(a, b->cap_l);
    return b;
}

static struct ctl_node *insert(struct ctl_node *t, struct ctl_node *n)
{
    if (t == NULL)
        return n;
    if (n->cap_prio > t->cap_prio) {
        split(t, n, &n->cap_l, &n->cap_r);
        return n;
    }
    if (before(n, t))
        t->cap_l = insert(t->cap_l, n);
    else
        t->cap_r = insert(t->cap_r, n);
    return t;
}

static struct ctl_node *erase(struct ctl_node *t, struct ctl_node *n)
{
    if (t == n)
        return merge(t->cap_l, t->cap_r);
    if (before(n, t))
        t->cap_l = erase(t->cap_l, n);
    else
        t->cap_r = erase(t->cap_r, n);
    return t;
}

/* ---- metros ---- */

static struct ctl_cap_metro *metro_of(struct ctl_ctx *ctx, const char *metro)
{
    struct ctl_cap_metro *m = ctl_map_get(&ctx->cap_metros, metro);
    if (m == NULL) {
        m = xcalloc(1, sizeof(*m));
        snprintf(m->metro, sizeof(m->metro), "%s", metro);
        ctl_map_put(&ctx->cap_metros, m->metro, m);
    }
    return m;
}

void ctl_capacity_add_node(struct ctl_ctx *ctx, struct ctl_node *node)
{
    struct ctl_cap_metro *m = metro_of(ctx, node->row.metro);
    node->cap_metro = m;
    node->cap_prio = (uint32_t)random();
    node->vcpu_cap = node->row.vcpus * ctx->cfg.vcpu_overcommit;
    m->n_nodes++;
    if (m->any == NULL)
        m->any = node;
    if (node->row.memory_mb > m->max_memory_mb)
        m->max_memory_mb = node->row.memory_mb;
    ctl_node_reindex(node);
}

void ctl_capacity_node_resized(struct ctl_ctx *ctx, struct ctl_node *node, int64_t old_memory_mb)
{
    struct ctl_cap_metro *m = node->cap_metro;
    node->vcpu_cap = node->row.vcpus * ctx->cfg.vcpu_overcommit;
    if (node->row.memory_mb > m->max_memory_mb)
        m->max_memory_mb = node->row.memory_mb;
    else if (old_memory_mb == m->max_memory_mb && node->row.memory_mb < old_memory_mb)
        m->max_stale = true;
    ctl_node_reindex(node);
}

void ctl_node_reindex(struct ctl_node *node)
{
    struct ctl_cap_metro *m = node->cap_metro;
    if (m == NULL)
        return;
    bool want = node->ready && !node->row.maintenance;
    if (node->cap_in && want && node->cap_key_mem == free_mem(node) &&
        node->cap_key_vcpus == free_vcpus(node))
        return;
    if (node->cap_in)
        m->root = erase(m->root, node);
    node->cap_in = want;
    node->cap_l = node->cap_r = NULL;
    if (!want)
        return;
    node->cap_key_mem = free_mem(node);
    node->cap_key_vcpus = free_vcpus(node);
    m->root = insert(m->root, node);
}

/* A node of m shrank: once per such register, a look at every node. */
static void recompute_max(struct ctl_ctx *ctx, struct ctl_cap_metro *m)
{
    m->max_memory_mb = 0;
    ctl_map_foreach(&ctx->nodes, e)
    {
        const struct ctl_node *n = e->val;
        if (n->cap_metro == m && n->row.memory_mb > m->max_memory_mb)
            m->max_memory_mb = n->row.memory_mb;
    }
    m->max_stale = false;
}

int64_t ctl_capacity_max_memory_mb(struct ctl_ctx *ctx, const char *metro)
{
    int64_t max = 0;
    ctl_map_foreach(&ctx->cap_metros, e)
    {
        struct ctl_cap_metro *m = e->val;
        if (metro && metro[0] && strcmp(metro, m->metro) != 0)
            continue;
        if (m->max_stale)
            recompute_max(ctx, m);
        if (m->max_memory_mb > max)
            max = m->max_memory_mb;
    }
    return max;
}

void ctl_capacity_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->cap_metros, e) free(e->val);
    ctl_map_clear(&ctx->cap_metros);
}

/* ---- plans ---- */

void ctl_plan_init(struct ctl_plan *p, struct ctl_ctx *ctx, const struct ctl_node *skip)
{
    memset(p, 0, sizeof(*p));
    p->ctx = ctx;
    p->skip = skip;
}

void ctl_plan_free(struct ctl_plan *p)
{
    free(p->node);
    free(p->sn);
    free(p->ipmap);
    memset(p, 0, sizeof(*p));
}

static struct ctl_sched_node sched_node_of(const struct ctl_node *n)
{
    return (struct ctl_sched_node){
        .uuid = n->row.uuid,
        .metro = n->row.metro,
        .ready = n->ready && !n->row.maintenance, /* drained nodes take nothing new */
        .free_memory_mb = free_mem(n),
        .free_vcpus = free_vcpus(n),
        .free_ips = CTL_HOSTS_PER_NODE - (int64_t)n->n_instances,
    };
}

size_t ctl_plan_entry(struct ctl_plan *p, struct ctl_node *node)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->node[i] == node)
            return i;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 8;
        p->node = xrealloc(p->node, p->cap * sizeof(*p->node));
        p->sn = xrealloc(p->sn, p->cap * sizeof(*p->sn));
        p->ipmap = xrealloc(p->ipmap, p->cap * sizeof(*p->ipmap));
    }
    p->node[p->n] = node;
    p->sn[p->n] = sched_node_of(node);
    memcpy(p->ipmap[p->n], node->ip_used, sizeof(p->ipmap[p->n]));
#ifdef NUBO_CHECKS
    int64_t mb, vc;
    ctl_node_used_walk(node, &mb, &vc);
    if (mb != node->used_memory_mb || vc != node->used_vcpus) {
        log_warnx("node %s: capacity sums drifted (%lld/%lld kept, %lld/%lld held)",
                  node->row.name, (long long)node->used_memory_mb, (long long)node->used_vcpus,
                  (long long)mb, (long long)vc);
        abort();
    }
#endif
    return p->n++;
}

struct walk {
    const struct ctl_plan *p;
    const struct ctl_sched_req *req;
    struct ctl_node **out;
    size_t n, want;
};

static bool in_plan(const struct ctl_plan *p, const struct ctl_node *n)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->node[i] == n)
            return true;
    return n == p->skip;
}

/* In rank order until want fitting nodes are found or memory runs short; false = stop. */
static bool walk(struct walk *w, struct ctl_node *t)
{
    if (t == NULL)
        return true;
    if (!walk(w, t->cap_l))
        return false;
    if (t->cap_key_mem < w->req->memory_mb) /* everything after ranks lower still */
        return false;
    if (t->cap_key_vcpus >= w->req->vcpus &&
        CTL_HOSTS_PER_NODE - (int64_t)t->n_instances >= 1 && !in_plan(w->p, t)) {
        w->out[w->n++] = t;
        if (w->n == w->want)
            return false;
    }
    return walk(w, t->cap_r);
}

int ctl_plan_place(struct ctl_plan *p, const struct ctl_sched_req *req, size_t *out,
                   struct nubo_err *err)
{
    if (req->count == 0)
        return 0;
    bool any_metro = req->metro == NULL || req->metro[0] == '\0';
    size_t n_metros = any_metro ? p->ctx->cap_metros.n : 1;
    /* candidates: the plan's nodes (their values net of the batch so far), the best count
     * others of each metro, and one placeholder per metro that has nodes at all (never
     * ready: it only tells the scheduler the metro exists, for its message) */
    size_t cap = p->n + n_metros * (req->count + 1) + 1;
    struct ctl_sched_node *c = xcalloc(cap, sizeof(*c));
    struct ctl_node **cn = xcalloc(cap, sizeof(*cn));
    size_t nc = 0;
    for (size_t i = 0; i < p->n; i++) {
        c[nc] = p->sn[i];
        cn[nc++] = p->node[i];
    }
    struct ctl_node **found = xcalloc(req->count, sizeof(*found));
    ctl_map_foreach(&p->ctx->cap_metros, e)
    {
        struct ctl_cap_metro *m = e->val;
        if (!any_metro && strcmp(m->metro, req->metro) != 0)
            continue;
        struct walk w = {p, req, found, 0, req->count};
        walk(&w, m->root);
        for (size_t i = 0; i < w.n; i++) {
            c[nc] = sched_node_of(found[i]);
            cn[nc++] = found[i];
        }
        bool only_skip = m->n_nodes == 1 && p->skip && m->any == p->skip;
        if (m->any && !only_skip) {
            c[nc] = sched_node_of(m->any);
            c[nc].ready = false;
            cn[nc++] = NULL;
        }
    }
    free(found);
    size_t *pick = xcalloc(req->count, sizeof(*pick));
    int rc = ctl_schedule(c, nc, req, pick, err);
    for (size_t k = 0; rc == 0 && k < req->count; k++) {
        size_t e = ctl_plan_entry(p, cn[pick[k]]);
        p->sn[e].free_memory_mb -= req->memory_mb;
        p->sn[e].free_vcpus -= req->vcpus;
        p->sn[e].free_ips--;
        out[k] = e;
    }
    free(pick);
    free(c);
    free(cn);
    return rc;
}

int ctl_plan_address(struct ctl_plan *p, size_t e)
{
    int h = ctl_ip_lowest_free(p->ipmap[e]);
    if (h > 0)
        p->ipmap[e][h / 8] |= (uint8_t)(1u << (h % 8));
    return h;
}
