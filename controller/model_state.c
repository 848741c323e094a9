/* The state an instance is in, derived from what was asked (intent) and what its node last
 * reported (observation): the ground floor every part of the model reads, calling nothing;
 * and the instances counted by that state as it changes, which GET /metrics reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

enum nubo_state ctl_instance_state(const struct ctl_instance *in)
{
    if (in->node && !in->node->ready)
        return NUBO_STATE_UNAVAILABLE;
    return ctl_instance_state_base(in);
}

enum nubo_state ctl_instance_state_base(const struct ctl_instance *in)
{
    bool want_run = in->row.desired == NUBO_DESIRED_RUNNING;
    if (!in->has_obs || in->obs.start_seq < in->row.start_seq) {
        /* the node has not acted on the latest start yet */
        if (want_run)
            return NUBO_STATE_STARTING;
        if (!in->has_obs)
            return NUBO_STATE_STOPPED;
    }
    enum nubo_state s = in->obs.state;
    if (!want_run && (s == NUBO_STATE_STARTING || s == NUBO_STATE_RUNNING))
        return NUBO_STATE_STOPPING; /* asked to stop; the node has not reported it yet */
    /* stopped by scale-to-zero: the next request through the ingress starts it */
    if (!want_run && in->row.standby && s == NUBO_STATE_STOPPED)
        return NUBO_STATE_STANDBY;
    return s;
}

bool ctl_instance_holds(const struct ctl_instance *in)
{
    /* meant to run (starting, running, crashed with a restart to come) */
    if (in->row.desired == NUBO_DESIRED_RUNNING)
        return true;
    /* asked to stop: the guest occupies its node until the node reports it stopped. Stopped
     * and standby instances (stateless: the guest is gone) hold nothing; a start finds them
     * room (model_place.c). */
    return in->has_obs && in->obs.state != NUBO_STATE_STOPPED;
}

bool ctl_instance_sleeping(const struct ctl_instance *in)
{
    enum nubo_state s = ctl_instance_state(in);
    return s == NUBO_STATE_STANDBY || (in->row.standby && s == NUBO_STATE_STOPPING);
}

bool ctl_instance_hopeless(const struct ctl_instance *in, enum nubo_state want)
{
    /* Waiting for running is hopeless once the node acted on the latest start and the
     * instance stopped with nothing scheduled to start it again (no restart pending, still
     * meant to run: a crash or a failed start, not a user's stop). */
    return want == NUBO_STATE_RUNNING && in->row.desired == NUBO_DESIRED_RUNNING && in->has_obs &&
           in->obs.start_seq >= in->row.start_seq && in->row.start_seq > 0 &&
           ctl_instance_state(in) == NUBO_STATE_STOPPED && in->obs.restart_next_at_us == 0;
}

/* ---- instances by state, kept ----
 * Each instance counts once in its metro's row and once in its node's n_by_state, by its base
 * state (as if its node were ready): a node going unavailable moves none of them, and the sums
 * read the node's counts as unavailable instead. */

void ctl_instance_count(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    struct ctl_state_count *c = ctx->state_counts;
    while (c && strcmp(c->metro, in->row.metro) != 0)
        c = c->next;
    if (c == NULL) {
        c = xcalloc(1, sizeof(*c));
        snprintf(c->metro, sizeof(c->metro), "%s", in->row.metro);
        c->next = ctx->state_counts;
        ctx->state_counts = c;
    }
    in->counted_in = c;
    in->counted_node = NULL;
    in->counted_state = -1;
    ctl_instance_recount(in);
}

void ctl_instance_uncount(struct ctl_instance *in)
{
    if (in->counted_in == NULL || in->counted_state < 0)
        return;
    in->counted_in->by_state[in->counted_state]--;
    if (in->counted_node)
        in->counted_node->n_by_state[in->counted_state]--;
    in->counted_node = NULL;
    in->counted_state = -1;
}

void ctl_instance_recount(struct ctl_instance *in)
{
    if (in->counted_in == NULL)
        return; /* not in the working set (yet) */
    int st = (int)ctl_instance_state_base(in);
    if (st == in->counted_state && in->counted_node == in->node)
        return;
    ctl_instance_uncount(in);
    in->counted_in->by_state[st]++;
    if (in->node)
        in->node->n_by_state[st]++;
    in->counted_node = in->node;
    in->counted_state = st;
}

static struct ctl_metro_states *row_of(struct ctl_metro_states **m, size_t *n, size_t *cap,
                                       const char *metro)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*m)[i].metro, metro) == 0)
            return &(*m)[i];
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        *m = xrealloc(*m, *cap * sizeof(**m));
    }
    struct ctl_metro_states *r = &(*m)[(*n)++];
    memset(r, 0, sizeof(*r));
    snprintf(r->metro, sizeof(r->metro), "%s", metro);
    return r;
}

size_t ctl_instance_state_sums(struct ctl_ctx *ctx, bool walk, struct ctl_metro_states **out)
{
    struct ctl_metro_states *m = NULL;
    size_t n = 0, cap = 0;
    if (walk) {
        ctl_map_foreach(&ctx->instances, e)
        {
            const struct ctl_instance *in = e->val;
            row_of(&m, &n, &cap, in->row.metro)->by_state[ctl_instance_state(in)]++;
        }
        *out = m;
        return n;
    }
    for (const struct ctl_state_count *c = ctx->state_counts; c; c = c->next)
        memcpy(row_of(&m, &n, &cap, c->metro)->by_state, c->by_state, sizeof(c->by_state));
    /* a node that is not ready: all of its instances are unavailable (a node's instances are
     * in its metro: placement and moves keep them there) */
    ctl_map_foreach(&ctx->nodes, e)
    {
        const struct ctl_node *node = e->val;
        if (node->ready || node->n_instances == 0)
            continue;
        struct ctl_metro_states *r = row_of(&m, &n, &cap, node->row.metro);
        for (int s = 0; s < NUBO_STATE__COUNT; s++) {
            r->by_state[s] -= node->n_by_state[s];
            r->by_state[NUBO_STATE_UNAVAILABLE] += node->n_by_state[s];
        }
    }
    /* the rows a walk has: metros with instances */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t total = 0;
        for (int s = 0; s < NUBO_STATE__COUNT; s++)
            total += m[i].by_state[s];
        if (total > 0)
            m[k++] = m[i];
    }
    *out = m;
    return k;
}

bool ctl_state_counts_verify(struct ctl_ctx *ctx)
{
    struct ctl_metro_states *kept = NULL, *walked = NULL;
    size_t nk = ctl_instance_state_sums(ctx, false, &kept);
    size_t nw = ctl_instance_state_sums(ctx, true, &walked);
    bool ok = nk == nw;
    if (!ok)
        log_warnx("instances by state: %zu metro(s) kept, %zu walked", nk, nw);
    for (size_t i = 0; i < nw && ok; i++) {
        const struct ctl_metro_states *k = NULL;
        for (size_t j = 0; j < nk && !k; j++)
            if (strcmp(kept[j].metro, walked[i].metro) == 0)
                k = &kept[j];
        for (int s = 0; s < NUBO_STATE__COUNT && ok; s++)
            if (k == NULL || k->by_state[s] != walked[i].by_state[s]) {
                log_warnx("metro %s: %llu instance(s) %s kept, %llu walked", walked[i].metro,
                          k ? (unsigned long long)k->by_state[s] : 0ULL, nubo_state_name(s),
                          (unsigned long long)walked[i].by_state[s]);
                ok = false;
            }
    }
    free(kept);
    free(walked);
    return ok;
}

void ctl_state_counts_free(struct ctl_ctx *ctx)
{
    while (ctx->state_counts) {
        struct ctl_state_count *c = ctx->state_counts;
        ctx->state_counts = c->next;
        free(c);
    }
}
