/* The scheduler: ctl_schedule, a pure function (scheduler.h; O(count x candidates), no
 * allocation beyond the candidates; capacity.c hands it the few candidates that matter), and
 * the address search creates, starts and drains share. */
#include "scheduler.h"
#include "ctl.h"

#include <stdlib.h>
#include <string.h>

struct cand {
    size_t idx;
    int64_t mem, vcpus, ips;
    size_t placed;
};

static bool better(const struct cand *a, const struct cand *b, const struct ctl_sched_node *nodes)
{
    if (a->placed != b->placed)
        return a->placed < b->placed;
    if (a->mem != b->mem)
        return a->mem > b->mem;
    if (a->vcpus != b->vcpus)
        return a->vcpus > b->vcpus;
    return strcmp(nodes[a->idx].uuid, nodes[b->idx].uuid) < 0;
}

int ctl_schedule(const struct ctl_sched_node *nodes, size_t n_nodes,
                 const struct ctl_sched_req *req, size_t *out, struct nubo_err *err)
{
    bool any_metro = req->metro == NULL || req->metro[0] == '\0';
    if (req->count == 0)
        return 0;
    struct cand *c = malloc((n_nodes ? n_nodes : 1) * sizeof(*c));
    if (c == NULL)
        return nubo_error_http(err, 500, "scheduler: out of memory");
    size_t nc = 0;
    bool metro_seen = false;
    for (size_t i = 0; i < n_nodes; i++) {
        const struct ctl_sched_node *n = &nodes[i];
        if (!any_metro && strcmp(n->metro, req->metro) != 0)
            continue;
        metro_seen = true;
        if (!n->ready || n->free_memory_mb < req->memory_mb || n->free_vcpus < req->vcpus ||
            n->free_ips < 1)
            continue;
        c[nc++] = (struct cand){i, n->free_memory_mb, n->free_vcpus, n->free_ips, 0};
    }
    int rc = 0;
    if (!metro_seen) {
        rc = any_metro ? nubo_error_http(err, 503,
                                         "no nodes have registered yet; start a "
                                         "nubo-agent")
                       : nubo_error_http(err, 400, "metro '%s' has no nodes; see GET /v1/metros",
                                         req->metro);
        goto out;
    }
    for (size_t k = 0; k < req->count; k++) {
        struct cand *best = NULL;
        for (size_t i = 0; i < nc; i++) {
            struct cand *x = &c[i];
            if (x->mem < req->memory_mb || x->vcpus < req->vcpus || x->ips < 1)
                continue;
            if (best == NULL || better(x, best, nodes))
                best = x;
        }
        if (best == NULL) {
            rc = nubo_error_http(err, 503,
                                 "no capacity: %zu instance(s) of %lld MiB and %lld vCPU(s) do "
                                 "not fit on the ready nodes%s%s; free capacity or add nodes",
                                 req->count, (long long)req->memory_mb, (long long)req->vcpus,
                                 any_metro ? "" : " of metro ", any_metro ? "" : req->metro);
            goto out;
        }
        best->mem -= req->memory_mb;
        best->vcpus -= req->vcpus;
        best->ips -= 1;
        best->placed++;
        out[k] = best->idx;
    }
out:
    free(c);
    return rc;
}

/* ---- addresses ---- */

int ctl_ip_lowest_free(const uint8_t used[32])
{
    for (int h = 2; h <= 254; h++)
        if (!(used[h / 8] & (1u << (h % 8))))
            return h;
    return -1;
}
