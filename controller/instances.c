/* /v1/instances: create (scheduling, IP allocation, image pinning), list/get, start, stop,
 * delete, wait and log, in both the batch (/v1/instances/<op> + array body or ?uuid=/?name=)
 * and the single-object (/v1/instances/{uuid|name}[/<op>]) forms. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "scheduler.h"
#include "util.h"

#define CTL_MAX_CREATES 64           /* create objects in one request */
#define CTL_WAIT_CAP_MS (86400000LL) /* "forever" waits end after a day */

/* ---- request items ------------------------------------------------------------------- */

static bool is_int_key(const char *k)
{
    return !strcmp(k, "wait_timeout_ms") || !strcmp(k, "drain_timeout_ms") ||
           !strcmp(k, "timeout_ms") || !strcmp(k, "timeout_s") || !strcmp(k, "offset") ||
           !strcmp(k, "limit");
}

/* Query parameters: uuid/name look-ups go to refs, the endpoint's parameters to extra. */
static int query_params(struct ctl_reqinfo *ri, json_t *refs, json_t *extra, bool *details,
                        struct nubo_err *err)
{
    struct evkeyval *kv;
    TAILQ_FOREACH(kv, ri->query, next)
    {
        const char *k = kv->key, *v = kv->value;
        if (!strcmp(k, "uuid") || !strcmp(k, "name")) {
            /* repeatable and comma-separated */
            char buf[4096];
            if (nubo_snprintf(buf, sizeof(buf), "%s", v) < 0)
                return nubo_error_http(err, 400, "query %s: too long", k);
            char *save = NULL;
            for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (json_array_size(refs) >= NUBO_API_MAX_ITEMS)
                    return nubo_error_http(err, 400, "query: at most %d look-ups",
                                           NUBO_API_MAX_ITEMS);
                json_array_append_new(refs, json_pack("{s:s}", k, t));
            }
        } else if (!strcmp(k, "details") || !strcmp(k, "metrics") || !strcmp(k, "force")) {
            bool b;
            if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, ""))
                b = true;
            else if (!strcmp(v, "false") || !strcmp(v, "0"))
                b = false;
            else
                return nubo_error_http(err, 400, "query %s: must be true or false", k);
            if (!strcmp(k, "details"))
                *details = b;
            else if (!strcmp(k, "force"))
                json_object_set_new(extra, k, json_boolean(b));
        } else if (is_int_key(k)) {
            int64_t n;
            if (nubo_parse_int(v, -(INT64_C(1) << 53), INT64_C(1) << 53, &n, NULL) < 0)
                return nubo_error_http(err, 400, "query %s: '%s' is not a whole number", k, v);
            json_object_set_new(extra, k, json_integer(n));
        } else if (!strcmp(k, "state")) {
            json_object_set_new(extra, k, json_string(v));
        } else {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", k);
            return nubo_error_http(err, 400, "unknown query parameter '%s'", shown);
        }
    }
    return 0;
}

static void merge_defaults(json_t *item, json_t *extra)
{
    const char *k;
    json_t *v;
    json_object_foreach(extra, k, v)
    {
        if (!json_object_get(item, k))
            json_object_set(item, k, v);
    }
}

/* Gather the items a batch or single-object request names. *all = no look-up at all. */
static int collect_items(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, enum nubo_item_kind kind,
                         const char *path_ref, struct nubo_item **items_out, size_t *n_out,
                         bool *all, bool *details, struct nubo_err *err)
{
    cleanup_json json_t *body = NULL;
    cleanup_json json_t *refs = json_array();
    cleanup_json json_t *extra = json_object();
    *all = false;
    *details = true;
    *items_out = NULL;
    *n_out = 0;
    if (ri->body &&
        pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, err) < 0)
        return -1;
    if (query_params(ri, refs, extra, details, err) < 0)
        return -1;
    cleanup_json json_t *list = json_array();
    if (path_ref) {
        if (json_array_size(refs))
            return nubo_error_http(err, 400,
                                   "give the instance in the path or in the query, "
                                   "not both");
        json_t *one;
        if (body == NULL)
            one = json_object();
        else if (json_is_object(body))
            one = json_deep_copy(body);
        else
            return nubo_error_http(err, 400, "body: must be a JSON object for %s", ri->path);
        if (json_object_get(one, "uuid") || json_object_get(one, "name")) {
            json_decref(one);
            return nubo_error_http(err, 400,
                                   "give the instance in the path or in the body, not both");
        }
        json_object_set_new(one, nubo_uuid_valid(path_ref) ? "uuid" : "name",
                            json_string(path_ref));
        json_array_append_new(list, one);
    } else if (json_is_array(body)) {
        if (json_array_size(refs))
            return nubo_error_http(err, 400, "give look-ups in the body or the query, not both");
        if (json_array_size(body) > NUBO_API_MAX_ITEMS)
            return nubo_error_http(err, 400, "at most %d items per request", NUBO_API_MAX_ITEMS);
        size_t i;
        json_t *e;
        json_array_foreach(body, i, e) json_array_append_new(list, json_deep_copy(e));
    } else if (json_is_object(body)) {
        json_array_append_new(list, json_deep_copy(body));
    } else if (body != NULL) {
        return nubo_error_http(err, 400,
                               "body: must be an object or an array of {\"uuid\"} / {\"name\"}");
    } else {
        size_t i;
        json_t *e;
        json_array_foreach(refs, i, e) json_array_append(list, e);
    }
    if (json_array_size(list) == 0) {
        *all = true;
        if (json_object_size(extra) == 0 || kind == NUBO_ITEM_REF)
            return 0;
    }
    size_t n = json_array_size(list);
    struct nubo_item *items = calloc(n + 1, sizeof(*items));
    if (items == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(list, i);
        if (json_is_object(e))
            merge_defaults(e, extra);
        char c[24];
        snprintf(c, sizeof(c), "[%zu]", i);
        if (nubo_item_decode(e, kind, path_ref ? "" : c, &items[i], err) < 0) {
            free(items);
            return -1;
        }
    }
    *items_out = items;
    *n_out = n;
    return 0;
}

/* collect_items for an action that must name its instances, never all of them: on failure it
 * has replied (all_msg when none were named) and returns -1. */
static int collect_named(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, enum nubo_item_kind kind,
                         const char *path_ref, const char *all_msg, struct nubo_item **items,
                         size_t *n)
{
    struct nubo_err err = {0};
    bool all, details;
    if (collect_items(ctx, ri, kind, path_ref, items, n, &all, &details, &err) < 0 ||
        (all && nubo_error_http(&err, 400, "%s", all_msg) < 0)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return -1;
    }
    return 0;
}

static json_t *not_found(const struct nubo_item *it)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "instance %s not found", it->uuid[0] ? it->uuid : it->name);
    return nubo_item_error(it->uuid, it->name, 404, msg);
}

static int cmp_created(const void *a, const void *b)
{
    const struct ctl_instance *x = *(struct ctl_instance *const *)a;
    const struct ctl_instance *y = *(struct ctl_instance *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

/* ---- get / list ---------------------------------------------------------------------- */

static void do_get(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref)
{
    struct nubo_err err = {0};
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    bool all, details;
    ri->route = path_ref ? CTL_R_INST_GET : CTL_R_INST_LIST;
    if (collect_items(ctx, ri, NUBO_ITEM_REF, path_ref, &items, &n, &all, &details, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status ?: 400, "%s",
                        err.msg);
        return;
    }
    json_t *out = json_array();
    if (all) {
        size_t cnt = 0;
        struct ctl_instance **v = malloc((ctx->instances.n + 1) * sizeof(*v));
        if (v == NULL) {
            json_decref(out);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
            return;
        }
        ctl_map_foreach(&ctx->instances, e)
        {
            struct ctl_instance *in = e->val;
            if (strcmp(in->row.owner, ri->user.name) == 0)
                v[cnt++] = in;
        }
        qsort(v, cnt, sizeof(*v), cmp_created);
        for (size_t i = 0; i < cnt; i++) {
            json_t *j = ctl_instance_json(ctx, v[i], details);
            if (details)
                json_object_del(j, "status"); /* listing everything carries no item status */
            json_array_append_new(out, j);
        }
        free(v);
        json_t *env = nubo_envelope_new("success", NULL, "instances", out, 0);
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, env);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
        json_array_append_new(out, in ? ctl_instance_json(ctx, in, details) : not_found(&items[i]));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
}

/* ---- waits (also used by create and start with wait_timeout_ms) ---------------------- */

void ctl_wait_fire(struct ctl_ctx *ctx, struct ctl_parked *p, bool timed_out)
{
    json_t *out = json_array();
    for (size_t i = 0; i < p->n_items; i++) {
        struct ctl_wait_item *it = &p->items[i];
        if (it->done) {
            json_array_append(out, it->result);
            continue;
        }
        struct ctl_instance *in = ctl_instance_find(ctx, &p->user, it->uuid, NULL);
        if (in == NULL) {
            char msg[128];
            snprintf(msg, sizeof(msg), "instance %s not found", it->uuid);
            json_array_append_new(out, nubo_item_error(it->uuid, it->name, 404, msg));
        } else if (p->wait_reply_items) {
            json_array_append_new(out, ctl_instance_json(ctx, in, true));
        } else {
            char msg[200];
            snprintf(msg, sizeof(msg),
                     "instance %s did not reach state %s in time (it is %s); wait longer or "
                     "check its log",
                     in->row.name, nubo_state_name(it->want),
                     nubo_state_name(ctl_instance_state(in)));
            json_t *e = nubo_item_error(it->uuid, it->name, 408, msg);
            json_object_set_new(e, "state", json_string(nubo_state_name(ctl_instance_state(in))));
            json_array_append_new(out, e);
        }
    }
    (void)timed_out;
    ctl_park_unlink(&ctx->waits, p);
    ctl_reply_items(ctx, p->req, p->route, p->start_mono_us, p->collection, out);
    ctl_parked_free(p);
}

void ctl_wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct ctl_parked *p = arg;
    ctl_wait_fire(p->ctx, p, true);
}

/* Park a reply until every item reached its state, or timeout_ms passed. Takes items. */
static void park_wait(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_wait_item *items,
                      size_t n, int64_t timeout_ms, bool reply_items)
{
    struct ctl_parked *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        for (size_t i = 0; i < n; i++)
            json_decref(items[i].result);
        free(items);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    p->kind = CTL_PARK_WAIT;
    p->ctx = ctx;
    p->req = ri->req;
    p->route = ri->route;
    p->start_mono_us = ri->start_us;
    p->items = items;
    p->n_items = n;
    p->user = ri->user;
    p->collection = "instances";
    p->wait_reply_items = reply_items;
    ctl_park_link(&ctx->waits, p);
    bool all = true;
    for (size_t i = 0; i < n; i++)
        all = all && items[i].done;
    if (all || timeout_ms == 0) {
        ctl_wait_fire(ctx, p, !all);
        return;
    }
    if (timeout_ms < 0 || timeout_ms > CTL_WAIT_CAP_MS)
        timeout_ms = CTL_WAIT_CAP_MS;
    p->timer = evtimer_new(ctx->base, ctl_wait_timer_cb, p);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (p->timer == NULL || evtimer_add(p->timer, &tv) < 0)
        ctl_wait_fire(ctx, p, true);
}

static void do_wait(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_WAIT;
    if (collect_named(ctx, ri, NUBO_ITEM_WAIT, path_ref,
                      "wait: name the instances by uuid or name", &items, &n) < 0)
        return;
    struct ctl_wait_item *w = calloc(n + 1, sizeof(*w));
    if (w == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    int64_t timeout_ms = 0;
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
        memcpy(w[i].name, items[i].name, sizeof(w[i].name));
        w[i].want = items[i].state;
        if (in == NULL) {
            memcpy(w[i].uuid, items[i].uuid, sizeof(w[i].uuid));
            w[i].done = true;
            w[i].result = not_found(&items[i]);
            continue;
        }
        memcpy(w[i].uuid, in->row.uuid, sizeof(w[i].uuid));
        if (ctl_instance_state(in) == w[i].want) {
            w[i].done = true;
            w[i].result = ctl_instance_json(ctx, in, true);
        } else if (ctl_wait_hopeless(in, w[i].want)) {
            w[i].done = true;
            w[i].result = ctl_wait_hopeless_item(ctx, in, false);
        }
        if (items[i].timeout_ms < 0 || timeout_ms < 0)
            timeout_ms = -1;
        else if (items[i].timeout_ms > timeout_ms)
            timeout_ms = items[i].timeout_ms;
    }
    park_wait(ctx, ri, w, n, timeout_ms, false);
}

/* ---- start / stop / delete ----------------------------------------------------------- */

static void do_startstop(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                         bool start)
{
    struct nubo_err err = {0};
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = start ? CTL_R_INST_START : CTL_R_INST_STOP;
    enum nubo_item_kind kind = start ? NUBO_ITEM_START : NUBO_ITEM_STOP;
    if (collect_named(ctx, ri, kind, path_ref,
                      start ? "start: name the instances by uuid or name"
                            : "stop: name the instances by uuid or name",
                      &items, &n) < 0)
        return;
    cleanup_free struct ctl_instance **found = calloc(n + 1, sizeof(*found));
    cleanup_free bool *change = calloc(n + 1, sizeof(bool));
    if (!found || !change) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    if (ctl_store_begin(&ctx->store, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
        found[i] = in;
        if (in == NULL)
            continue;
        for (size_t k = 0; k < i; k++)
            if (found[k] == in)
                goto next; /* named twice: act once */
        struct ctl_instance_row tmp = in->row;
        enum nubo_state st = ctl_instance_state(in);
        if (start) {
            /* a start on a live instance changes nothing */
            if (in->row.desired == NUBO_DESIRED_RUNNING && st != NUBO_STATE_STOPPED)
                continue;
            tmp.desired = NUBO_DESIRED_RUNNING;
            tmp.start_seq++;
            tmp.stop_force = false;
            tmp.drain_timeout_ms = 0;
        } else {
            if (in->row.desired == NUBO_DESIRED_STOPPED && in->row.stop_force == items[i].force)
                continue;
            tmp.desired = NUBO_DESIRED_STOPPED;
            tmp.stop_force = items[i].force;
            tmp.drain_timeout_ms = items[i].drain_timeout_ms;
        }
        if (ctl_store_instance_put(&ctx->store, &tmp, &err) < 0) {
            ctl_store_rollback(&ctx->store);
            ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
            return;
        }
        change[i] = true;
    next:;
    }
    if (ctl_store_commit(&ctx->store, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
        return;
    }
    /* committed: now the working set follows */
    int64_t wait_ms = 0;
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = found[i];
        if (in == NULL || !change[i])
            continue;
        if (start) {
            in->row.desired = NUBO_DESIRED_RUNNING;
            in->row.start_seq++;
            in->row.stop_force = false;
            in->row.drain_timeout_ms = 0;
        } else {
            in->row.desired = NUBO_DESIRED_STOPPED;
            in->row.stop_force = items[i].force;
            in->row.drain_timeout_ms = items[i].drain_timeout_ms;
        }
        free(in->assign_json);
        in->assign_json = NULL;
        if (in->node)
            ctl_node_bump(ctx, in->node);
    }
    for (size_t i = 0; i < n; i++)
        if (found[i] && change[i])
            ctl_instance_changed(ctx, found[i]);
    for (size_t i = 0; i < n; i++)
        if (start && found[i] && (items[i].wait_timeout_ms != 0))
            wait_ms =
                items[i].wait_timeout_ms < 0 || wait_ms < 0
                    ? -1
                    : (items[i].wait_timeout_ms > wait_ms ? items[i].wait_timeout_ms : wait_ms);
    if (wait_ms != 0) {
        struct ctl_wait_item *w = calloc(n + 1, sizeof(*w));
        if (w) {
            for (size_t i = 0; i < n; i++) {
                struct ctl_instance *in = found[i];
                snprintf(w[i].uuid, sizeof(w[i].uuid), "%s", in ? in->row.uuid : items[i].uuid);
                memcpy(w[i].name, items[i].name, sizeof(w[i].name));
                w[i].want = NUBO_STATE_RUNNING;
                if (in == NULL || ctl_instance_state(in) == NUBO_STATE_RUNNING) {
                    w[i].done = true;
                    w[i].result = in ? ctl_instance_json(ctx, in, true) : not_found(&items[i]);
                }
            }
            park_wait(ctx, ri, w, n, wait_ms, true);
            return;
        }
    }
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, found[i] ? ctl_instance_json(ctx, found[i], true)
                                            : not_found(&items[i]));
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
}

/* Remove committed-deleted instances from the working set. */
static void forget_instance(struct ctl_ctx *ctx, struct ctl_instance *in)
{
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", in->row.owner, in->row.name);
    ctl_map_del(&ctx->instance_names, key);
    ctl_map_del(&ctx->instances, in->row.uuid);
    struct ctl_node *node = in->node;
    struct ctl_svc *g = in->svc;
    ctl_svc_unlink(ctx, in);
    if (g) {
        ctl_ingress_bump(ctx, g->row.metro);
        if (!g->row.persistent && g->n_instances == 0)
            ctl_svc_forget(ctx, g); /* its row went in the same transaction */
    }
    ctl_instance_detach(ctx, in);
    if (node)
        ctl_node_bump(ctx, node);
    char uuid[NUBO_UUID_STR_LEN + 1];
    memcpy(uuid, in->row.uuid, sizeof(uuid));
    ctl_instance_destroy(in);
    ctl_instance_gone(ctx, uuid);
}

int ctl_instances_delete(struct ctl_ctx *ctx, struct ctl_instance **v, size_t n,
                         struct nubo_err *err)
{
    if (ctl_store_begin(&ctx->store, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i] && v[i]->svc)
            v[i]->svc->pending_del = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] && ctl_store_instance_delete(&ctx->store, v[i]->row.uuid, err) < 0) {
            ctl_store_rollback(&ctx->store);
            return -1;
        }
        /* an inline (ephemeral) group goes with its last instance, in the same transaction */
        struct ctl_svc *g = v[i] ? v[i]->svc : NULL;
        if (g && ++g->pending_del == g->n_instances && !g->row.persistent &&
            ctl_store_svc_delete(&ctx->store, g->row.uuid, err) < 0) {
            ctl_store_rollback(&ctx->store);
            return -1;
        }
    }
    if (ctl_store_commit(&ctx->store, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (v[i])
            forget_instance(ctx, v[i]);
    return 0;
}

static void do_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref)
{
    struct nubo_err err = {0};
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_DELETE;
    if (collect_named(ctx, ri, NUBO_ITEM_REF, path_ref,
                      "delete: name the instances by uuid or name (nothing deleted)", &items,
                      &n) < 0)
        return;
    cleanup_free struct ctl_instance **v = calloc(n + 1, sizeof(*v));
    if (v == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        return;
    }
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
        for (size_t k = 0; in && k < i; k++)
            if (v[k] == in)
                in = NULL;
        if (in == NULL) {
            bool dup = false;
            for (size_t k = 0; k < i; k++)
                dup =
                    dup || (v[k] && ((items[i].uuid[0] && !strcmp(v[k]->row.uuid, items[i].uuid)) ||
                                     (items[i].name[0] && !strcmp(v[k]->row.name, items[i].name))));
            json_array_append_new(out,
                                  dup ? json_pack("{s:s, s:s}", "status", "success", "uuid",
                                                  items[i].uuid[0] ? items[i].uuid : items[i].name)
                                      : not_found(&items[i]));
            continue;
        }
        v[i] = in;
        json_array_append_new(out, json_pack("{s:s, s:s, s:s}", "status", "success", "uuid",
                                             in->row.uuid, "name", in->row.name));
    }
    if (ctl_instances_delete(ctx, v, n, &err) < 0) {
        json_decref(out);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "%s", err.msg);
        return;
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
}

/* ---- log ----------------------------------------------------------------------------- */

static void do_log(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_LOG;
    if (collect_named(ctx, ri, NUBO_ITEM_LOG, path_ref,
                      "log: name the instances by uuid or name", &items, &n) < 0)
        return;
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        struct ctl_instance *in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
        if (in == NULL) {
            json_array_append_new(out, not_found(&items[i]));
            continue;
        }
        const struct ctl_logtail *lt = &in->log;
        int64_t start = lt->start, end = lt->start + (int64_t)lt->len;
        int64_t from = items[i].offset < 0 ? end + items[i].offset : items[i].offset;
        if (from < start)
            from = start;
        if (from > end)
            from = end;
        int64_t to = from + items[i].limit;
        if (to > end)
            to = end;
        char *b64 = nubo_base64_encode(lt->buf ? lt->buf + (from - start) : (const void *)"",
                                       (size_t)(to - from));
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:{s:I, s:I}, s:{s:I, s:I}, s:s}", "status",
                              "success", "uuid", in->row.uuid, "name", in->row.name, "output",
                              b64 ? b64 : "", "available", "start", (json_int_t)start, "end",
                              (json_int_t)end, "range", "start", (json_int_t)from, "end",
                              (json_int_t)to, "state", nubo_state_name(ctl_instance_state(in)));
        free(b64);
        json_array_append_new(out, o);
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
}

/* ---- create -------------------------------------------------------------------------- */

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
    char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
    snprintf(key, sizeof(key), "%s/%s", owner, name);
    if (ctl_map_get(&ctx->instance_names, key))
        return true;
    for (size_t i = 0; i < n_batch; i++)
        if (strcmp(batch[i], name) == 0)
            return true;
    return false;
}

static int lowest_free_ip(const struct ctl_node *node)
{
    for (int h = 2; h <= 254; h++)
        if (!(node->ip_used[h / 8] & (1u << (h % 8))))
            return h;
    return -1;
}

/* Create one create-object's instances. Appends item objects to out and the instances to
 * made. Returns -1 with err for an item error (nothing changed). */
static int create_one(struct ctl_ctx *ctx, const struct ctl_user_row *u,
                      const struct nubo_create_req *cr, const struct ctl_image_row *im,
                      json_t *sgj, json_t *out, struct ctl_instance **made, size_t *n_made,
                      char (*taken)[NUBO_NAME_MAX + 1], size_t *n_taken, struct nubo_err *err)
{
    size_t count = (size_t)cr->replicas + 1;
    /* the service group: an existing one ({uuid}|{name}) or an inline one to create */
    struct ctl_svc *grp = NULL;
    struct nubo_svc_create_req *inl = NULL;
    struct ctl_svc_row *new_grp = NULL;
    const char *metro = cr->metro;
    if (sgj) {
        json_t *su = json_object_get(sgj, "uuid"), *sn_ = json_object_get(sgj, "name");
        if (json_is_object(sgj) && (su || sn_) && json_object_size(sgj) == 1) {
            const char *ref = json_string_value(su ? su : sn_);
            if (ref == NULL)
                return nubo_error_http(err, 400, "service_group.%s: must be a string",
                                       su ? "uuid" : "name");
            grp = ctl_svc_find(ctx, u, su ? ref : NULL, su ? NULL : ref);
            if (grp == NULL)
                return nubo_error_http(err, 404,
                                       "service group %.100s not found; create it first (nubo "
                                       "services create) or pass services inline",
                                       ref);
            if (cr->metro[0] && strcmp(cr->metro, grp->row.metro) != 0)
                return nubo_error_http(err, 400,
                                       "service group %s is in metro %s, not %s; instances join "
                                       "groups of their own metro",
                                       grp->row.name, grp->row.metro, cr->metro);
            metro = grp->row.metro;
        } else {
            inl = malloc(sizeof(*inl));
            new_grp = malloc(sizeof(*new_grp));
            if (inl == NULL || new_grp == NULL) {
                free(inl);
                free(new_grp);
                return nubo_error_http(err, 500, "out of memory");
            }
            if (nubo_svc_create_req_decode(sgj, true, inl, err) < 0) {
                free(inl);
                free(new_grp);
                return -1;
            }
        }
    }
    /* memory bound: the largest node of the metro */
    int64_t max_mem = 0;
    size_t nn = 0;
    struct ctl_sched_node *sn = calloc(ctx->nodes.n + 1, sizeof(*sn));
    struct ctl_node **nodes = calloc(ctx->nodes.n + 1, sizeof(*nodes));
    size_t *place = calloc(count, sizeof(*place));
    struct ctl_instance **inst = calloc(count, sizeof(*inst));
    char(*names)[NUBO_NAME_MAX + 1] = calloc(count, sizeof(*names));
    int rc = -1;
    if (!sn || !nodes || !place || !inst || !names) {
        nubo_error_http(err, 500, "out of memory");
        goto out;
    }
    ctl_map_foreach(&ctx->nodes, e)
    {
        struct ctl_node *n = e->val;
        if ((!cr->metro[0] || strcmp(cr->metro, n->row.metro) == 0) && n->row.memory_mb > max_mem)
            max_mem = n->row.memory_mb;
        nodes[nn] = n;
        sn[nn] = (struct ctl_sched_node){
            .uuid = n->row.uuid,
            .metro = n->row.metro,
            .ready = n->ready && !n->row.maintenance, /* drained nodes take nothing new */
            .free_memory_mb = n->row.memory_mb - n->used_memory_mb,
            .free_vcpus = n->row.vcpus * ctx->cfg.vcpu_overcommit - n->used_vcpus,
            .free_ips = CTL_HOSTS_PER_NODE - (int64_t)n->n_instances,
        };
        nn++;
    }
    if (max_mem > 0 && cr->memory_mb > max_mem) {
        nubo_error_http(err, 400,
                        "memory_mb: %lld is more than the largest node offers (%lld MiB); ask "
                        "for less",
                        (long long)cr->memory_mb, (long long)max_mem);
        goto out;
    }
    /* names */
    char base[NUBO_NAME_MAX + 1];
    base_name(im->repo, base);
    for (size_t i = 0; i < count; i++) {
        bool given = i == 0 && cr->name[0];
        if (given) {
            if (name_taken(ctx, u->name, cr->name, taken, *n_taken)) {
                nubo_error_http(err, 409,
                                "an instance named '%s' already exists; choose another name",
                                cr->name);
                goto out;
            }
            memcpy(names[i], cr->name, sizeof(names[i]));
            continue;
        }
        const char *stem = cr->name[0] ? cr->name : base;
        if (strlen(stem) > 57) {
            nubo_error_http(err, 400, "name: '%s' is too long to add a replica suffix (max 57)",
                            stem);
            goto out;
        }
        int tries = 0;
        do {
            char rnd[6];
            nubo_random_alnum(rnd, 5);
            snprintf(names[i], sizeof(names[i]), "%s-%s", stem, rnd);
        } while ((name_taken(ctx, u->name, names[i], taken, *n_taken) ||
                  name_taken(ctx, u->name, names[i], names, i)) &&
                 ++tries < 20);
        if (tries >= 20) {
            nubo_error_http(err, 409, "cannot find a free name for '%s'", stem);
            goto out;
        }
    }
    struct ctl_sched_req sr = {metro, cr->memory_mb, cr->vcpus, count};
    if (ctl_schedule(sn, nn, &sr, place, err) < 0)
        goto out;
    if (inl) {
        /* one group serves one metro: keep every replica in the first one's */
        const char *m0 = nodes[place[0]]->row.metro;
        bool spread = false;
        for (size_t i = 1; i < count; i++)
            spread = spread || strcmp(nodes[place[i]]->row.metro, m0) != 0;
        if (spread) {
            sr.metro = m0;
            if (ctl_schedule(sn, nn, &sr, place, err) < 0)
                goto out;
        }
        if (ctl_svc_build(ctx, u, inl, nodes[place[0]]->row.metro, false, new_grp, err) < 0)
            goto out;
    }
    /* build rows; IPs are marked on the nodes and unmarked again if the commit fails */
    int64_t now = nubo_now_us();
    for (size_t i = 0; i < count; i++) {
        struct ctl_node *node = nodes[place[i]];
        struct ctl_instance *in = calloc(1, sizeof(*in));
        if (in == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto undo;
        }
        inst[i] = in;
        struct ctl_instance_row *r = &in->row;
        nubo_uuid_new(r->uuid);
        snprintf(r->owner, sizeof(r->owner), "%s", u->name);
        memcpy(r->name, names[i], sizeof(r->name));
        r->created_at_us = now;
        snprintf(r->image, sizeof(r->image), "%s", im->digest_ref);
        r->memory_mb = cr->memory_mb;
        r->vcpus = cr->vcpus;
        if (cr->has_args) {
            r->args = pj_strv_dup(cr->args, cr->n_args);
            r->n_args = cr->n_args;
        } else {
            r->args = pj_strv_dup(im->args, im->n_args);
            r->n_args = im->n_args;
        }
        /* image env first; the request's values win */
        r->env = calloc(im->n_env + cr->n_env + 1, sizeof(*r->env));
        if (r->args == NULL || r->env == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto undo;
        }
        for (size_t k = 0; k < im->n_env; k++) {
            bool over = false;
            for (size_t m = 0; m < cr->n_env; m++)
                over = over || strcmp(cr->env[m].key, im->env[k].key) == 0;
            if (!over) {
                r->env[r->n_env].key = strdup(im->env[k].key);
                r->env[r->n_env++].value = strdup(im->env[k].value);
            }
        }
        for (size_t m = 0; m < cr->n_env; m++) {
            r->env[r->n_env].key = strdup(cr->env[m].key);
            r->env[r->n_env++].value = strdup(cr->env[m].value);
        }
        r->restart_policy = cr->restart_policy;
        r->features = cr->features;
        r->service_ports = calloc(cr->n_service_ports + 1, sizeof(int64_t));
        if (r->service_ports == NULL) {
            nubo_error_http(err, 500, "out of memory");
            goto undo;
        }
        memcpy(r->service_ports, cr->service_ports, cr->n_service_ports * sizeof(int64_t));
        r->n_service_ports = cr->n_service_ports;
        memcpy(r->node_uuid, node->row.uuid, sizeof(r->node_uuid));
        memcpy(r->metro, node->row.metro, sizeof(r->metro));
        int h = lowest_free_ip(node);
        if (h < 0) {
            nubo_error_http(err, 503, "node %s has no free address", node->row.name);
            goto undo;
        }
        r->ip_host = h;
        node->ip_used[h / 8] |= (uint8_t)(1u << (h % 8));
        r->desired = cr->autostart ? NUBO_DESIRED_RUNNING : NUBO_DESIRED_STOPPED;
        r->start_seq = cr->autostart ? 1 : 0;
        if (grp)
            memcpy(r->service_group, grp->row.uuid, sizeof(r->service_group));
        else if (new_grp)
            memcpy(r->service_group, new_grp->uuid, sizeof(r->service_group));
    }
    if (ctl_store_begin(&ctx->store, err) < 0)
        goto undo;
    if (new_grp && ctl_store_svc_put(&ctx->store, new_grp, err) < 0) {
        ctl_store_rollback(&ctx->store);
        goto undo;
    }
    for (size_t i = 0; i < count; i++)
        if (ctl_store_instance_put(&ctx->store, &inst[i]->row, err) < 0) {
            ctl_store_rollback(&ctx->store);
            goto undo;
        }
    if (ctl_store_commit(&ctx->store, err) < 0)
        goto undo;
    /* committed */
    if (new_grp && (grp = ctl_svc_add(ctx, new_grp)) == NULL)
        log_warnx("service group %s: out of memory adding it to the working set", new_grp->name);
    for (size_t i = 0; i < count; i++) {
        struct ctl_instance *in = inst[i];
        struct ctl_node *node = nodes[place[i]];
        char key[NUBO_API_USER_MAX + NUBO_NAME_MAX + 2];
        snprintf(key, sizeof(key), "%s/%s", in->row.owner, in->row.name);
        ctl_map_put(&ctx->instances, in->row.uuid, in);
        ctl_map_put(&ctx->instance_names, key, in);
        ctl_instance_attach(ctx, in, node);
        ctl_svc_link(ctx, in);
        ctl_node_bump(ctx, node);
        json_array_append_new(out, ctl_instance_json(ctx, in, true));
        made[(*n_made)++] = in;
        memcpy(taken[(*n_taken)++], in->row.name, sizeof(taken[0]));
        inst[i] = NULL;
    }
    if (grp)
        ctl_ingress_bump(ctx, grp->row.metro);
    rc = 0;
    goto out;
undo:
    for (size_t i = 0; i < count; i++) {
        if (inst[i] == NULL)
            continue;
        int h = (int)inst[i]->row.ip_host;
        struct ctl_node *node = nodes[place[i]];
        if (h > 0)
            node->ip_used[h / 8] &= (uint8_t) ~(1u << (h % 8));
        ctl_instance_destroy(inst[i]);
        inst[i] = NULL;
    }
out:
    free(sn);
    free(nodes);
    free(place);
    free(inst);
    free(names);
    free(inl);
    free(new_grp);
    return rc;
}

static const struct ctl_resolved *find_resolved(const struct ctl_parked *p, const char *repo,
                                                const char *ref)
{
    for (const struct ctl_resolved *r = p ? p->resolved : NULL; r; r = r->next)
        if (strcmp(r->repo, repo) == 0 && strcmp(r->ref, ref) == 0)
            return r;
    return NULL;
}

/* Create, possibly re-run after the registry resolved unknown tags (resume != NULL). */
static void do_create(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, struct ctl_parked *resume)
{
    struct nubo_err err = {0};
    ri->route = CTL_R_INST_CREATE;
    cleanup_json json_t *body = NULL;
    if (ri->body == NULL) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "create: send a JSON object with at least \"image\"");
        goto done;
    }
    if (pj_parse(ri->body, ri->body_len, (size_t)ctx->cfg.max_body_bytes, &body, &err) < 0) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, err.http_status, "%s", err.msg);
        goto done;
    }
    bool batch = json_is_array(body);
    size_t n = batch ? json_array_size(body) : 1;
    if (batch && (n == 0 || n > CTL_MAX_CREATES)) {
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400,
                        "create: an array of 1..%d create objects", CTL_MAX_CREATES);
        goto done;
    }
    struct nubo_create_req *crs = calloc(n, sizeof(*crs));
    struct ctl_image_row *ims = calloc(n, sizeof(*ims));
    json_t **errs = calloc(n, sizeof(*errs));
    json_t **sgs = calloc(n, sizeof(*sgs)); /* each object's service_group, taken out */
    if (!crs || !ims || !errs || !sgs) {
        free(crs);
        free(ims);
        free(errs);
        free(sgs);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 500, "out of memory");
        goto done;
    }
    /* pass 1: decode and find the images */
    struct ctl_resolved *want = NULL;
    for (size_t i = 0; i < n; i++) {
        json_t *e = batch ? json_array_get(body, i) : body;
        json_t *sg = json_is_object(e) ? json_object_get(e, "service_group") : NULL;
        if (sg && !json_is_null(sg)) {
            sgs[i] = json_incref(sg);
            json_object_del(e, "service_group");
            if (!json_is_object(sg)) {
                const char *m = "service_group: must be {\"uuid\"}, {\"name\"} or {\"services\": "
                                "[…], \"domains\": […]}";
                if (!batch) {
                    ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s", m);
                    goto free_all;
                }
                errs[i] = nubo_item_error(NULL, NULL, 400, m);
                continue;
            }
        } else if (sg) {
            json_object_del(e, "service_group");
        }
        if (nubo_create_req_decode(e, &crs[i], &err) < 0) {
            if (!batch) {
                ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 400, "%s", err.msg);
                goto free_all;
            }
            errs[i] = nubo_item_error(NULL, NULL, 400, err.msg);
            continue;
        }
        char repo[256], ref[160];
        int rc = ctl_image_lookup(ctx, &ri->user, crs[i].image, &ims[i], repo, ref, &err);
        if (rc < 0) {
            errs[i] = nubo_item_error(NULL, crs[i].name, err.http_status ?: 400, err.msg);
        } else if (rc == 0) {
            const struct ctl_resolved *r = find_resolved(resume, repo, ref);
            if (r) {
                if (r->http_status == 404 || r->http_status == 0)
                    snprintf(err.msg, sizeof(err.msg),
                             "image %.200s not found; push it first (nubo push) or check the "
                             "name",
                             crs[i].image);
                else
                    snprintf(err.msg, sizeof(err.msg),
                             "cannot resolve image %.200s from the registry: %.250s", crs[i].image,
                             r->msg);
                errs[i] =
                    nubo_item_error(NULL, crs[i].name, r->http_status == 404 ? 404 : 502, err.msg);
            } else {
                struct ctl_resolved *w = calloc(1, sizeof(*w));
                if (w) {
                    snprintf(w->repo, sizeof(w->repo), "%s", repo);
                    snprintf(w->ref, sizeof(w->ref), "%s", ref);
                    w->next = want;
                    want = w;
                }
            }
        }
    }
    if (want) {
        /* ask the registry (worker thread) and come back */
        struct ctl_parked *p = resume;
        if (p == NULL) {
            p = calloc(1, sizeof(*p));
            if (p)
                p->body = malloc(ri->body_len + 1);
            if (p == NULL || p->body == NULL) {
                if (p)
                    free(p);
                p = NULL;
            } else {
                p->kind = CTL_PARK_RESOLVE;
                p->ctx = ctx;
                p->req = ri->req;
                p->route = ri->route;
                p->start_mono_us = ri->start_us;
                p->user = ri->user;
                memcpy(p->body, ri->body, ri->body_len + 1);
                p->body_len = ri->body_len;
            }
        }
        bool queued = false;
        while (want) {
            struct ctl_resolved *w = want;
            want = w->next;
            if (p && !find_resolved(p, w->repo, w->ref) &&
                ctl_resolve_async(ctx, w->repo, w->ref, p, &err) == 0) {
                /* record it as tried; the answer fills it in */
                w->http_status = 404;
                w->next = p->resolved;
                p->resolved = w;
                queued = true;
            } else {
                free(w);
            }
        }
        if (queued) {
            for (size_t i = 0; i < n; i++) {
                nubo_create_req_free(&crs[i]);
                ctl_image_row_free(&ims[i]);
                json_decref(errs[i]);
                json_decref(sgs[i]);
            }
            free(crs);
            free(ims);
            free(errs);
            free(sgs);
            ctl_park_link(&ctx->resolving, p);
            return; /* parked: ctl_create_resume re-runs us */
        }
        if (p && p != resume)
            ctl_parked_free(p);
        ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 503,
                        "cannot ask the registry to resolve the image: %s", err.msg);
        goto free_all;
    }
    /* pass 2: schedule and commit each create object */
    {
        size_t total = 0;
        for (size_t i = 0; i < n; i++)
            if (!errs[i])
                total += (size_t)crs[i].replicas + 1;
        struct ctl_instance **made = calloc(total + 1, sizeof(*made));
        char(*taken)[NUBO_NAME_MAX + 1] = calloc(total + 1, sizeof(*taken));
        size_t n_made = 0, n_taken = 0;
        json_t *out = json_array();
        int64_t wait_ms = 0;
        for (size_t i = 0; i < n; i++) {
            if (errs[i]) {
                json_array_append(out, errs[i]);
                continue;
            }
            if (!made || !taken) {
                json_array_append_new(out,
                                      nubo_item_error(NULL, crs[i].name, 500, "out of memory"));
                continue;
            }
            if (create_one(ctx, &ri->user, &crs[i], &ims[i], sgs[i], out, made, &n_made, taken,
                           &n_taken, &err) < 0) {
                json_array_append_new(
                    out, nubo_item_error(NULL, crs[i].name, err.http_status ?: 400, err.msg));
                continue;
            }
            if (crs[i].wait_timeout_ms < 0 || wait_ms < 0)
                wait_ms = crs[i].wait_timeout_ms ? -1 : wait_ms;
            else if (crs[i].wait_timeout_ms > wait_ms)
                wait_ms = crs[i].wait_timeout_ms;
        }
        if (wait_ms != 0 && n_made > 0) {
            /* reply when every created instance runs (or the time is up) */
            size_t m = json_array_size(out);
            struct ctl_wait_item *w = calloc(m + 1, sizeof(*w));
            if (w) {
                size_t k = 0;
                for (size_t j = 0; j < m; j++) {
                    json_t *it = json_array_get(out, j);
                    const char *uuid = json_string_value(json_object_get(it, "uuid"));
                    const char *st = json_string_value(json_object_get(it, "status"));
                    w[j].want = NUBO_STATE_RUNNING;
                    if (st && !strcmp(st, "error")) {
                        w[j].done = true;
                        w[j].result = json_incref(it);
                        continue;
                    }
                    snprintf(w[j].uuid, sizeof(w[j].uuid), "%s", uuid ? uuid : "");
                    struct ctl_instance *in = made[k++];
                    if (ctl_instance_state(in) == NUBO_STATE_RUNNING) {
                        w[j].done = true;
                        w[j].result = json_incref(it);
                    }
                }
                json_decref(out);
                free(made);
                free(taken);
                park_wait(ctx, ri, w, m, wait_ms, true);
                goto free_all;
            }
        }
        free(made);
        free(taken);
        ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
    }
free_all:
    for (size_t i = 0; i < n; i++) {
        nubo_create_req_free(&crs[i]);
        ctl_image_row_free(&ims[i]);
        json_decref(errs[i]);
        json_decref(sgs[i]);
    }
    free(crs);
    free(ims);
    free(errs);
    free(sgs);
done:
    if (resume)
        ctl_parked_free(resume);
}

void ctl_create_resume(struct ctl_ctx *ctx, struct ctl_parked *p)
{
    struct ctl_reqinfo ri;
    struct evkeyvalq q;
    ctl_reqinfo_of_parked(&ri, p, EVHTTP_REQ_POST, &q);
    snprintf(ri.path, sizeof(ri.path), "/v1/instances");
    do_create(ctx, &ri, p);
}

/* ---- routing ------------------------------------------------------------------------- */

static void bad_method(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *allowed)
{
    ctl_reply_error(ctx, ri->req, ri->route, ri->start_us, 405, "%s: use %s", ri->path, allowed);
}

void ctl_handle_instances(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest)
{
    char seg1[128] = "", seg2[32] = "";
    if (rest[0] == '/') {
        const char *s = rest + 1;
        const char *slash = strchr(s, '/');
        size_t l1 = slash ? (size_t)(slash - s) : strlen(s);
        if (l1 >= sizeof(seg1) ||
            (slash && (strlen(slash + 1) >= sizeof(seg2) || strchr(slash + 1, '/')))) {
            ctl_reply_error(ctx, ri->req, CTL_R_OTHER, ri->start_us, 404, "no endpoint %s",
                            ri->path);
            return;
        }
        memcpy(seg1, s, l1);
        if (slash)
            snprintf(seg2, sizeof(seg2), "%s", slash + 1);
    }
    enum evhttp_cmd_type m = ri->method;
    const char *op = seg1;
    const char *ref = NULL;
    if (seg1[0] && strcmp(seg1, "start") && strcmp(seg1, "stop") && strcmp(seg1, "wait") &&
        strcmp(seg1, "log")) {
        ref = seg1;
        op = seg2;
        if (!nubo_uuid_valid(ref) && !nubo_name_valid(ref)) {
            ctl_reply_error(ctx, ri->req, CTL_R_INST_GET, ri->start_us, 404,
                            "instance '%.64s' not found: not a uuid or instance name", ref);
            return;
        }
    }
    if (op[0] == '\0') {
        if (m == EVHTTP_REQ_POST && ref == NULL)
            do_create(ctx, ri, NULL);
        else if (m == EVHTTP_REQ_GET)
            do_get(ctx, ri, ref);
        else if (m == EVHTTP_REQ_DELETE)
            do_delete(ctx, ri, ref);
        else
            bad_method(ctx, ri, ref ? "GET or DELETE" : "POST, GET or DELETE");
    } else if (!strcmp(op, "start") || !strcmp(op, "stop")) {
        if (m == EVHTTP_REQ_PUT || m == EVHTTP_REQ_POST)
            do_startstop(ctx, ri, ref, op[2] == 'a');
        else
            bad_method(ctx, ri, "PUT");
    } else if (!strcmp(op, "wait")) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_PUT)
            do_wait(ctx, ri, ref);
        else
            bad_method(ctx, ri, "GET or PUT");
    } else if (!strcmp(op, "log")) {
        if (m == EVHTTP_REQ_GET)
            do_log(ctx, ri, ref);
        else
            bad_method(ctx, ri, "GET");
    } else {
        ctl_reply_error(ctx, ri->req, CTL_R_OTHER, ri->start_us, 404,
                        "no endpoint %.200s (start, stop, wait, log)", ri->path);
    }
}
