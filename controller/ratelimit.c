/* Per-user request rate limit on the public API (issue 11, observation 4): a token bucket per
 * user, refilled at [controller] rate_limit_per_s up to rate_limit_burst, so one tenant's flood
 * is answered 429 at once instead of queueing in front of everyone else's requests: from the
 * headers when the bucket is already empty (conns.c, before the body is read), else when the
 * request is routed. A request costs one token plus one per CTL_RATE_BODY_UNIT of its body.
 * Admins (operators, the bootstrap scripts) are not limited. Main loop only. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

struct ctl_bucket {
    double tokens;
    int64_t last_us;
};

/* u's bucket refilled to now; false with retry_ms when it holds less than one request. */
static bool rate_has(struct ctl_ctx *ctx, const struct ctl_user_row *u, struct ctl_bucket **out,
                     int64_t *retry_ms)
{
    const struct ctl_config *c = &ctx->cfg;
    int64_t now = nubo_mono_us();
    struct ctl_bucket *b = ctl_map_get(&ctx->rate_buckets, u->uuid);
    if (b == NULL) {
        b = xcalloc(1, sizeof(*b));
        b->tokens = (double)c->rate_limit_burst;
        b->last_us = now;
        ctl_map_put(&ctx->rate_buckets, u->uuid, b);
    }
    b->tokens += (double)(now - b->last_us) * (double)c->rate_limit_per_s / 1e6;
    if (b->tokens > (double)c->rate_limit_burst)
        b->tokens = (double)c->rate_limit_burst;
    b->last_us = now;
    *out = b;
    if (b->tokens >= 1.0)
        return true;
    *retry_ms = (int64_t)((1.0 - b->tokens) * 1000.0 / (double)c->rate_limit_per_s) + 1;
    return false;
}

bool ctl_rate_take(struct ctl_ctx *ctx, const struct ctl_user_row *u, size_t body_len,
                   int64_t *retry_ms)
{
    struct ctl_bucket *b;
    if (ctx->cfg.rate_limit_per_s <= 0 || u->admin)
        return true;
    if (!rate_has(ctx, u, &b, retry_ms))
        return false;
    /* a body costs what reading and decoding it costs: the bucket may go into debt, and the
     * gate refuses the next requests from their headers until it is paid */
    b->tokens -= 1.0 + (double)(body_len / CTL_RATE_BODY_UNIT);
    return true;
}

bool ctl_rate_check(struct ctl_ctx *ctx, const struct ctl_user_row *u, int64_t *retry_ms)
{
    struct ctl_bucket *b;
    return ctx->cfg.rate_limit_per_s <= 0 || u->admin || rate_has(ctx, u, &b, retry_ms);
}

void ctl_rate_free(struct ctl_ctx *ctx)
{
    ctl_map_foreach(&ctx->rate_buckets, e) free(e->val);
    ctl_map_clear(&ctx->rate_buckets);
}
