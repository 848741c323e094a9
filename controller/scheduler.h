/* The scheduler: a pure function from (nodes, request) to placements, unit-tested alone. */
#ifndef NUBO_CTL_SCHED_H
#define NUBO_CTL_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct ctl_sched_node {
    const char *uuid; /* the final tie-break: lowest uuid wins */
    const char *metro;
    bool ready;
    int64_t free_memory_mb;
    int64_t free_vcpus;
    int64_t free_ips;
};

struct ctl_sched_req {
    const char *metro; /* NULL or "" = any metro */
    int64_t memory_mb;
    int64_t vcpus;
    size_t count; /* instances to place (replicas + 1) */
};

/* Place req->count instances: out[i] = index into nodes. Candidates are ready nodes of the
 * metro where memory, vCPUs and an address fit. Each instance goes to the candidate holding
 * the fewest of this request so far (spread), then the most free memory, then the most free
 * vCPUs, then the lowest uuid: the same input always gives the same placement. All or
 * nothing: -1 with a one-line message (http_status 503) when they do not all fit. */
int ctl_schedule(const struct ctl_sched_node *nodes, size_t n_nodes,
                 const struct ctl_sched_req *req, size_t *out, struct nubo_err *err);

#endif
