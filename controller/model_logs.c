/* Console tails: the newest [instances] log_tail_bytes of each instance's console, appended as
 * agents send them and written to the store at most once per tick, only what is new. */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"

void ctl_logtail_push(struct ctl_logtail *lt, const void *data, size_t len)
{
    const unsigned char *d = data;
    if (len >= lt->cap) {
        d += len - lt->cap;
        lt->start += (int64_t)(lt->len + len - lt->cap);
        len = lt->cap;
        lt->len = 0;
    } else if (lt->len + len > lt->cap) {
        size_t drop = lt->len + len - lt->cap;
        memmove(lt->buf, lt->buf + drop, lt->len - drop);
        lt->len -= drop;
        lt->start += (int64_t)drop;
    }
    if (lt->len + len > lt->alloc) {
        size_t want = lt->alloc ? lt->alloc : 256;
        while (want < lt->len + len)
            want *= 2;
        lt->alloc = want < lt->cap ? want : lt->cap;
        lt->buf = xrealloc(lt->buf, lt->alloc);
    }
    memcpy(lt->buf + lt->len, d, len);
    lt->len += len;
}

/* Bytes at offset into the tail: what it has already is skipped, a gap starts it over. */
static void tail_append(struct ctl_ctx *ctx, struct ctl_logtail *lt, int64_t offset,
                        const unsigned char *data, size_t len)
{
    if (lt->buf == NULL) {
        lt->cap = (size_t)ctx->cfg.log_tail_bytes;
        lt->buf = xmalloc(lt->alloc = 256 < lt->cap ? 256 : lt->cap);
        lt->len = 0;
        lt->start = offset;
    }
    int64_t end = lt->start + (int64_t)lt->len;
    if (offset > end) { /* a gap */
        lt->len = 0;
        lt->start = offset;
    } else {
        data += end - offset;
        len -= (size_t)(end - offset);
    }
    ctl_logtail_push(lt, data, len);
}

void ctl_log_append(struct ctl_ctx *ctx, struct ctl_instance *in, int64_t offset,
                    const unsigned char *data, size_t len)
{
    const struct ctl_logtail *lt = &in->log;
    if (lt->buf && offset + (int64_t)len <= lt->start + (int64_t)lt->len)
        return; /* already have it */
    tail_append(ctx, &in->log, offset, data, len);
    if (in->log_dirty)
        return;
    if (ctx->n_logs_dirty == ctx->cap_logs_dirty) {
        ctx->cap_logs_dirty = ctx->cap_logs_dirty ? 2 * ctx->cap_logs_dirty : 64;
        ctx->logs_dirty =
            xrealloc(ctx->logs_dirty, ctx->cap_logs_dirty * sizeof(*ctx->logs_dirty));
    }
    memcpy(ctx->logs_dirty[ctx->n_logs_dirty++], in->row.uuid, sizeof(*ctx->logs_dirty));
    in->log_dirty = true;
}

void ctl_logs_flush(struct ctl_ctx *ctx)
{
    /* Console output reaches the store at most once per tick per instance, all in one
     * transaction, and only the bytes that arrived since: a chunk appended at its offset, the
     * chunks the bounded tail has moved past deleted. */
    if (ctx->n_logs_dirty == 0)
        return;
    struct nubo_err err = {0};
    int64_t t0 = nubo_mono_us();
    size_t written = 0;
    if (ctl_store_begin(&ctx->store, &err) < 0)
        goto fail;
    for (size_t i = 0; i < ctx->n_logs_dirty; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, ctx->logs_dirty[i]);
        if (in == NULL || !in->log_dirty) /* deleted since, its tail with it */
            continue;
        const struct ctl_logtail *lt = &in->log;
        written++;
        if (lt->buf == NULL)
            continue;
        int64_t end = lt->start + (int64_t)lt->len;
        int64_t from = in->log_saved_end > lt->start ? in->log_saved_end : lt->start;
        if ((from < end &&
             ctl_store_log_put(&ctx->store, in->row.uuid, from, lt->buf + (from - lt->start),
                               (size_t)(end - from), &err) < 0) ||
            ctl_store_log_trim(&ctx->store, in->row.uuid, lt->start, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto fail;
        }
    }
    if (ctl_store_commit(&ctx->store, &err) < 0)
        goto fail;
    for (size_t i = 0; i < ctx->n_logs_dirty; i++) {
        struct ctl_instance *in = ctl_map_get(&ctx->instances, ctx->logs_dirty[i]);
        if (in && in->log_dirty) {
            in->log_dirty = false;
            in->log_saved_end = in->log.start + (int64_t)in->log.len;
        }
    }
    ctx->n_logs_dirty = 0;
    int64_t took_us = nubo_mono_us() - t0;
    if (took_us > 100000) /* the loop waited this long */
        log_warnx("console tails: saving %zu took %lld ms", written, (long long)took_us / 1000);
    return;
fail:
    log_warnx("console tails: cannot save them (kept in memory, retried): %s", err.msg);
}

/* Console chunks arrive by instance and offset: append each to the tail (which keeps the
 * newest log_tail_bytes), starting over at a gap. */
static int logchunk_cb(void *arg, const char *uuid, int64_t offset, const void *data, size_t len)
{
    struct ctl_ctx *ctx = arg;
    struct ctl_instance *in = ctl_map_get(&ctx->instances, uuid);
    if (in == NULL || len == 0)
        return 0;
    struct ctl_logtail *lt = &in->log;
    if (lt->buf && offset + (int64_t)len <= lt->start + (int64_t)lt->len)
        return 0;
    tail_append(ctx, lt, offset, data, len);
    in->log_saved_end = lt->start + (int64_t)lt->len;
    return 0;
}

int ctl_logs_load(struct ctl_ctx *ctx, struct nubo_err *err)
{
    return ctl_store_logs_load(&ctx->store, logchunk_cb, ctx, err);
}
