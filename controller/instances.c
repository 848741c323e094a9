/* /v1/instances: list/get, start, stop, delete, wait and log, in both the batch
 * (/v1/instances/<op> + array body or ?uuid=/?name=) and the single-object
 * (/v1/instances/{uuid|name}[/<op>]) forms; POST goes to create.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/queue.h>

#include <event2/keyvalq_struct.h>

#include "cleanup.h"
#include "ctl.h"
#include "log.h"
#include "util.h"

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
            if (ctl_query_bool(k, v, &b, err) < 0)
                return -1;
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
    struct nubo_item *items = xcalloc(n + 1, sizeof(*items));
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

/* collect_items for an action that must name its instances, never all of them (all_msg). */
static int collect_named(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, enum nubo_item_kind kind,
                         const char *path_ref, const char *all_msg, struct nubo_item **items,
                         size_t *n, struct nubo_err *err)
{
    bool all, details;
    if (collect_items(ctx, ri, kind, path_ref, items, n, &all, &details, err) < 0)
        return ctl_err_status(err, 400);
    if (all)
        return nubo_error_http(err, 400, "%s", all_msg);
    return 0;
}

static json_t *not_found(const struct nubo_item *it)
{
    char msg[160];
    snprintf(msg, sizeof(msg), "instance %s not found", it->uuid[0] ? it->uuid : it->name);
    return nubo_item_error(it->uuid, it->name, 404, msg);
}

/* A start/stop/delete answer: the item with the state it is in now (with_state) and was in. */
static json_t *state_item(const struct ctl_instance *in, bool with_state, enum nubo_state before)
{
    struct nubo_item_status st = {.ok = true,
                                  .has_state = with_state,
                                  .state = ctl_instance_state(in),
                                  .has_previous_state = true,
                                  .previous_state = before};
    memcpy(st.uuid, in->row.uuid, sizeof(st.uuid));
    memcpy(st.name, in->row.name, sizeof(st.name));
    return nubo_item_status_encode(&st);
}

static int cmp_created(const void *a, const void *b)
{
    const struct ctl_instance *x = *(struct ctl_instance *const *)a;
    const struct ctl_instance *y = *(struct ctl_instance *const *)b;
    if (x->row.created_at_us != y->row.created_at_us)
        return x->row.created_at_us < y->row.created_at_us ? -1 : 1;
    return strcmp(x->row.uuid, y->row.uuid);
}

/* Reply with the instances found for items (NULL: that item's 404). */
static void reply_found(struct ctl_ctx *ctx, const struct ctl_reqinfo *ri,
                        struct ctl_instance *const *found, const struct nubo_item *items, size_t n,
                        bool details)
{
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(out, found[i] ? ctl_instance_json(ctx, found[i], details)
                                            : not_found(&items[i]));
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
}

/* ---- get / list ---------------------------------------------------------------------- */

static int do_get(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                  struct nubo_err *err)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    bool all, details;
    ri->route = path_ref ? CTL_R_INST_GET : CTL_R_INST_LIST;
    if (collect_items(ctx, ri, NUBO_ITEM_REF, path_ref, &items, &n, &all, &details, err) < 0)
        return ctl_err_status(err, 400);
    if (all) {
        json_t *out = json_array();
        size_t cnt = 0;
        cleanup_free struct ctl_instance **v = xcalloc(ctx->instances.n + 1, sizeof(*v));
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
        json_t *env = nubo_envelope_new("success", NULL, "instances", out, 0);
        ctl_reply_json(ctx, ri->req, ri->route, ri->start_us, 200, env);
        return 0;
    }
    cleanup_free struct ctl_instance **found = xcalloc(n + 1, sizeof(*found));
    for (size_t i = 0; i < n; i++)
        found[i] = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name);
    reply_found(ctx, ri, found, items, n, details);
    return 0;
}

/* ---- wait ---------------------------------------------------------------------------- */

static int do_wait(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                   struct nubo_err *err)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_WAIT;
    if (collect_named(ctx, ri, NUBO_ITEM_WAIT, path_ref, "wait: name the instances by uuid or name",
                      &items, &n, err) < 0)
        return -1;
    struct ctl_wait_item *w = xcalloc(n + 1, sizeof(*w));
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
        } else if (ctl_instance_hopeless(in, w[i].want)) {
            w[i].done = true;
            w[i].result = ctl_wait_hopeless_item(ctx, in, false);
        }
        if (items[i].timeout_ms < 0 || timeout_ms < 0)
            timeout_ms = -1;
        else if (items[i].timeout_ms > timeout_ms)
            timeout_ms = items[i].timeout_ms;
    }
    ctl_wait_park(ctx, ri, w, n, timeout_ms, false);
    return 0;
}

/* ---- start / stop / delete ----------------------------------------------------------- */

static int do_startstop(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                        bool start, struct nubo_err *err)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = start ? CTL_R_INST_START : CTL_R_INST_STOP;
    if (collect_named(ctx, ri, start ? NUBO_ITEM_START : NUBO_ITEM_STOP, path_ref,
                      start ? "start: name the instances by uuid or name"
                            : "stop: name the instances by uuid or name",
                      &items, &n, err) < 0)
        return -1;
    cleanup_free struct ctl_desire *d = xcalloc(n + 1, sizeof(*d));
    cleanup_free enum nubo_state *before = xcalloc(n + 1, sizeof(*before));
    for (size_t i = 0; i < n; i++) {
        d[i] = (struct ctl_desire){
            .in = ctl_instance_find(ctx, &ri->user, items[i].uuid, items[i].name),
            .start = start,
            .force = items[i].force,
            .drain_timeout_ms = items[i].drain_timeout_ms,
        };
        if (d[i].in)
            before[i] = ctl_instance_state(d[i].in);
    }
    if (ctl_instances_desire(ctx, d, n, err) < 0)
        return ctl_err_status(err, 500);
    int64_t wait_ms = 0;
    for (size_t i = 0; i < n; i++)
        if (start && d[i].in && (items[i].wait_timeout_ms != 0))
            wait_ms =
                items[i].wait_timeout_ms < 0 || wait_ms < 0
                    ? -1
                    : (items[i].wait_timeout_ms > wait_ms ? items[i].wait_timeout_ms : wait_ms);
    if (wait_ms != 0) {
        struct ctl_wait_item *w = xcalloc(n + 1, sizeof(*w));
        for (size_t i = 0; i < n; i++) {
            struct ctl_instance *in = d[i].in;
            snprintf(w[i].uuid, sizeof(w[i].uuid), "%s", in ? in->row.uuid : items[i].uuid);
            memcpy(w[i].name, items[i].name, sizeof(w[i].name));
            w[i].want = NUBO_STATE_RUNNING;
            if (in == NULL || ctl_instance_state(in) == NUBO_STATE_RUNNING) {
                w[i].done = true;
                w[i].result = in ? ctl_instance_json(ctx, in, true) : not_found(&items[i]);
            }
        }
        ctl_wait_park(ctx, ri, w, n, wait_ms, true);
        return 0;
    }
    /* the documented shape: {status, uuid, name, state, previous_state} per item */
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        if (d[i].in == NULL) {
            json_array_append_new(out, not_found(&items[i]));
            continue;
        }
        json_array_append_new(out, state_item(d[i].in, true, before[i]));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
    return 0;
}

static int do_delete(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                     struct nubo_err *err)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_DELETE;
    if (collect_named(ctx, ri, NUBO_ITEM_REF, path_ref,
                      "delete: name the instances by uuid or name (nothing deleted)", &items, &n,
                      err) < 0)
        return -1;
    cleanup_free struct ctl_instance **v = xcalloc(n + 1, sizeof(*v));
    cleanup_json json_t *out = json_array();
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
                                  dup ? ctl_item_ok(items[i].uuid[0] ? items[i].uuid
                                                                     : items[i].name,
                                                    NULL)
                                      : not_found(&items[i]));
            continue;
        }
        v[i] = in;
        json_array_append_new(out, state_item(in, false, ctl_instance_state(in)));
    }
    if (ctl_instances_delete(ctx, v, n, err) < 0)
        return ctl_err_status(err, 500);
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", steal_pointer(&out));
    return 0;
}

/* ---- log ----------------------------------------------------------------------------- */

static int do_log(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *path_ref,
                  struct nubo_err *err)
{
    cleanup_free struct nubo_item *items = NULL;
    size_t n;
    ri->route = CTL_R_INST_LOG;
    if (collect_named(ctx, ri, NUBO_ITEM_LOG, path_ref, "log: name the instances by uuid or name",
                      &items, &n, err) < 0)
        return -1;
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
        struct nubo_log_window w = {.data = lt->buf ? (unsigned char *)lt->buf + (from - start)
                                                    : NULL, /* borrowed: not freed */
                                    .len = (size_t)(to - from),
                                    .available_start = start,
                                    .available_end = end,
                                    .has_range = true,
                                    .range_start = from,
                                    .range_end = to,
                                    .state = ctl_instance_state(in)};
        memcpy(w.uuid, in->row.uuid, sizeof(w.uuid));
        memcpy(w.name, in->row.name, sizeof(w.name));
        json_array_append_new(out, nubo_log_window_encode(&w));
    }
    ctl_reply_items(ctx, ri->req, ri->route, ri->start_us, "instances", out);
    return 0;
}

/* ---- routing ------------------------------------------------------------------------- */

static int bad_method(const struct ctl_reqinfo *ri, const char *allowed, struct nubo_err *err)
{
    return nubo_error_http(err, 405, "%s: use %s", ri->path, allowed);
}

int ctl_handle_instances(struct ctl_ctx *ctx, struct ctl_reqinfo *ri, const char *rest,
                         struct nubo_err *err)
{
    char seg1[128] = "", seg2[32] = "";
    if (rest[0] == '/') {
        const char *s = rest + 1;
        const char *slash = strchr(s, '/');
        size_t l1 = slash ? (size_t)(slash - s) : strlen(s);
        if (l1 >= sizeof(seg1) ||
            (slash && (strlen(slash + 1) >= sizeof(seg2) || strchr(slash + 1, '/'))))
            return nubo_error_http(err, 404, "no endpoint %s", ri->path);
        memcpy(seg1, s, l1);
        if (slash)
            snprintf(seg2, sizeof(seg2), "%s", slash + 1);
    }
    /* "metrics" is a path word, never an instance name */
    if (!strcmp(seg1, "metrics") && !seg2[0])
        return ctl_handle_instance_metrics(ctx, ri, NULL, err);
    if (!strcmp(seg2, "metrics"))
        return ctl_handle_instance_metrics(ctx, ri, seg1, err);
    enum evhttp_cmd_type m = ri->method;
    const char *op = seg1;
    const char *ref = NULL;
    if (seg1[0] && !nubo_instance_name_reserved(seg1)) {
        ref = seg1;
        op = seg2;
        if (!nubo_uuid_valid(ref) && !nubo_name_valid(ref)) {
            ri->route = CTL_R_INST_GET;
            return nubo_error_http(err, 404,
                                   "instance '%.64s' not found: not a uuid or instance name", ref);
        }
    }
    if (op[0] == '\0') {
        if (m == EVHTTP_REQ_POST && ref == NULL)
            return ctl_handle_create(ctx, ri, err);
        if (m == EVHTTP_REQ_GET)
            return do_get(ctx, ri, ref, err);
        if (m == EVHTTP_REQ_DELETE)
            return do_delete(ctx, ri, ref, err);
        return bad_method(ri, ref ? "GET or DELETE" : "POST, GET or DELETE", err);
    }
    if (!strcmp(op, "start") || !strcmp(op, "stop")) {
        if (m == EVHTTP_REQ_PUT || m == EVHTTP_REQ_POST)
            return do_startstop(ctx, ri, ref, op[2] == 'a', err);
        return bad_method(ri, "PUT", err);
    }
    if (!strcmp(op, "wait")) {
        if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_PUT)
            return do_wait(ctx, ri, ref, err);
        return bad_method(ri, "GET or PUT", err);
    }
    if (!strcmp(op, "log")) {
        if (m == EVHTTP_REQ_GET)
            return do_log(ctx, ri, ref, err);
        return bad_method(ri, "GET", err);
    }
    return nubo_error_http(err, 404, "no endpoint %.200s (start, stop, wait, log)", ri->path);
}
