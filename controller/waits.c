/* Replies held until instances reach a state: GET|PUT /v1/instances/wait and the create/start
 * wait_timeout_ms. Woken by the model's instance_changed / instance_gone events (main.c wires
 * them here), answered at the latest when their time is up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "util.h"

#define CTL_WAIT_CAP_MS (86400000LL) /* "forever" waits end after a day */

struct wait {
    struct ctl_wait_item *items;
    size_t n;
    struct ctl_user_row user;
    bool reply_items; /* create/start: reply with instance objects on timeout too */
};

static void wait_free(void *data)
{
    struct wait *w = data;
    for (size_t i = 0; i < w->n; i++)
        json_decref(w->items[i].result);
    free(w->items);
    free(w);
}

json_t *ctl_wait_hopeless_item(struct ctl_ctx *ctx, const struct ctl_instance *in, bool reply_items)
{
    if (reply_items) /* create/start with a wait: the object says it is stopped */
        return ctl_instance_json(ctx, in, true);
    const struct nubo_status_report *o = &in->obs;
    char why[160] = "";
    int64_t sr = o->stop_reason;
    snprintf(why, sizeof(why), "stop_reason %lld (%s%s%s%s%s)", (long long)sr,
             sr & NUBO_STOP_KERNEL ? "K" : "-", sr & NUBO_STOP_APP ? "A" : "-",
             sr & NUBO_STOP_PLATFORM ? "P" : "-", sr & NUBO_STOP_USER ? "U" : "-",
             sr & NUBO_STOP_FORCED ? "F" : "-");
    char code[48] = "";
    if (o->has_exit_code)
        snprintf(code, sizeof(code), ", exit code %lld", (long long)o->exit_code);
    struct nubo_item_status st = {.error = NUBO_APIERR_WRONG_STATE,
                                  .has_state = true,
                                  .state = NUBO_STATE_STOPPED,
                                  .has_stop_reason = true,
                                  .stop_reason = sr};
    memcpy(st.uuid, in->row.uuid, sizeof(st.uuid));
    memcpy(st.name, in->row.name, sizeof(st.name));
    snprintf(st.message, sizeof(st.message),
             "instance %s stopped instead of reaching running: %.300s%s%s%s; see its log",
             in->row.name, o->message ? o->message : "", o->message ? "; " : "", why, code);
    for (char *p = st.message; *p; p++) /* one line, whatever the agent wrote */
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    return nubo_item_status_encode(&st);
}

/* Answer p with what its items reached, and free it. */
static void wait_fire(struct ctl_parked *p)
{
    struct ctl_ctx *ctx = p->ctx;
    struct wait *w = p->data;
    json_t *out = json_array();
    for (size_t i = 0; i < w->n; i++) {
        struct ctl_wait_item *it = &w->items[i];
        if (it->done) {
            json_array_append(out, it->result);
            continue;
        }
        struct ctl_instance *in = ctl_instance_find(ctx, &w->user, it->uuid, NULL);
        if (in == NULL) {
            char msg[128];
            snprintf(msg, sizeof(msg), "instance %s not found", it->uuid);
            json_array_append_new(out, nubo_item_error(it->uuid, it->name, 404, msg));
        } else if (w->reply_items) {
            json_array_append_new(out, ctl_instance_json(ctx, in, true));
        } else {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "instance %s did not reach state %s in time (it is %s); wait longer or "
                     "check its log",
                     in->row.name, nubo_state_name(it->want),
                     nubo_state_name(ctl_instance_state(in)));
            struct nubo_item_status st = {
                .error = NUBO_APIERR_TIMED_OUT, .has_state = true, .state = ctl_instance_state(in)};
            memcpy(st.uuid, it->uuid, sizeof(st.uuid));
            memcpy(st.name, it->name, sizeof(st.name));
            snprintf(st.message, sizeof(st.message), "%s", msg);
            json_array_append_new(out, nubo_item_status_encode(&st));
        }
    }
    ctl_park_unlink(p);
    ctl_reply_items(ctx, p->req, p->route, p->start_mono_us, "instances", out);
    ctl_parked_free(p);
}

void ctl_wait_park(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri, struct ctl_wait_item *items,
                   size_t n, int64_t timeout_ms, bool reply_items)
{
    struct wait *w = xcalloc(1, sizeof(*w));
    *w = (struct wait){items, n, ri->user, reply_items};
    bool all = true;
    for (size_t i = 0; i < n; i++)
        all = all && items[i].done;
    if (timeout_ms < 0 || timeout_ms > CTL_WAIT_CAP_MS)
        timeout_ms = CTL_WAIT_CAP_MS;
    bool now = all || timeout_ms == 0;
    struct ctl_parked *p =
        ctl_park(ctx, ri, &ctx->waits, now ? -1 : timeout_ms, wait_fire, w, wait_free);
    if (now)
        wait_fire(p);
}

/* Items of the waits that in (by uuid) settles: result set by settle; fires complete waits. */
static void settle(struct ctl_ctx *ctx, const char *uuid,
                   json_t *(*result)(struct ctl_ctx *ctx, struct ctl_wait_item *it,
                                     struct ctl_instance *in, bool reply_items),
                   struct ctl_instance *in)
{
    for (struct ctl_parked *p = ctx->waits, *nx; p; p = nx) {
        nx = p->next;
        struct wait *w = p->data;
        bool all = true, hit = false;
        for (size_t i = 0; i < w->n; i++) {
            struct ctl_wait_item *it = &w->items[i];
            if (!it->done && strcmp(it->uuid, uuid) == 0) {
                it->result = result(ctx, it, in, w->reply_items);
                if (it->result) {
                    it->done = true;
                    hit = true;
                }
            }
            all = all && it->done;
        }
        if (hit && all)
            wait_fire(p);
    }
}

static json_t *changed_result(struct ctl_ctx *ctx, struct ctl_wait_item *it,
                              struct ctl_instance *in, bool reply_items)
{
    if (ctl_instance_state(in) == it->want)
        return ctl_instance_json(ctx, in, true);
    if (ctl_instance_hopeless(in, it->want))
        return ctl_wait_hopeless_item(ctx, in, reply_items);
    return NULL;
}

static json_t *gone_result(struct ctl_ctx *ctx, struct ctl_wait_item *it, struct ctl_instance *in,
                           bool reply_items)
{
    char msg[128];
    snprintf(msg, sizeof(msg), "instance %s was deleted while waiting", it->uuid);
    return nubo_item_error(it->uuid, it->name, 404, msg);
}

void ctl_waits_on_changed(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    settle(ctx, in->row.uuid, changed_result, in);
}

void ctl_waits_on_gone(struct ctl_ctx *ctx, const char *uuid)
{
    settle(ctx, uuid, gone_result, NULL);
}

void ctl_waits_reap(struct ctl_ctx *ctx)
{
    for (struct ctl_parked *p = ctx->waits, *nx; p; p = nx) {
        nx = p->next;
        if (evhttp_request_get_connection(p->req) == NULL)
            wait_fire(p);
    }
}
