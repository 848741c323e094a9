/* nubo instances list|get|start|stop|rm|logs [-f]|wait --until STATE. */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "util.h"

static void usage(FILE *f)
{
    fputs("usage: nubo instances list\n"
          "       nubo instances get NAME|UUID...\n"
          "       nubo instances start [-w] NAME...\n"
          "       nubo instances stop [-f] [-d DRAIN] [-w] NAME...\n"
          "       nubo instances rm NAME...\n"
          "       nubo instances logs [-f] NAME\n"
          "       nubo instances metrics [NAME...]\n"
          "       nubo instances wait NAME... --until STATE [--timeout DUR]\n"
          "       nubo instances create [run flags] IMAGE [-- ARGS]   (= nubo run)\n"
          "Every form takes -o json|table.\n",
          f);
}

/* The body of a batch call: one item of the given kind per name. */
static json_t *batch_body(const struct nubo_item *items, int n, enum nubo_item_kind kind)
{
    json_t *a = json_array();
    for (int i = 0; a && i < n; i++)
        json_array_append_new(a, nubo_item_encode(&items[i], kind));
    return a;
}

/* Batch call with one item per name; prints per-item failures; returns exit code. ok[i]
 * (when given) says whether item i succeeded. */
static int batch(struct cli_ctx *ctx, const char *cmd, const char *method, const char *path,
                 const struct nubo_item *refs, int n, enum nubo_item_kind kind,
                 char *const *names, const char *verb, json_t **resp_out, bool *ok)
{
    struct nubo_err err = {0};
    json_t *resp, *items;
    json_t *body = batch_body(refs, n, kind);
    int rc = cli_api_list(ctx, method, path, body, "instances", &resp, &items, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, cmd, &err);
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        struct nubo_item_status st;
        if (nubo_item_status_decode(it, &st, &err) < 0) {
            nubo_error_wrap(&err, "the API's answer");
            json_decref(resp);
            return cli_fail(ctx, cmd, &err);
        }
        const char *name = st.name[0]   ? st.name
                           : st.uuid[0] ? st.uuid
                           : i < (size_t)n ? names[i]
                                          : "?";
        if (ok && i < (size_t)n)
            ok[i] = st.ok;
        if (!st.ok) {
            fprintf(ctx->e, "%s %s: %s: %s\n", ctx->prog, cmd, name, st.message);
            rc = CLI_EXIT_FAIL;
        } else if (verb && ctx->out != CLI_OUT_JSON && !ctx->quiet) {
            fprintf(ctx->o, "%s %s\n", verb, name);
        }
    }
    if (ctx->out == CLI_OUT_JSON && verb)
        cli_print_json(ctx->o, items);
    if (resp_out)
        *resp_out = resp;
    else
        json_decref(resp);
    return rc;
}

static int do_logs(struct cli_ctx *ctx, const char *who, bool follow)
{
    struct nubo_err err = {0};
    struct nubo_item ref;
    nubo_item_ref(&ref, who);
    ref.offset = 0;
    ref.limit = NUBO_API_LOG_MAX_LIMIT;
    for (;;) {
        json_t *body = batch_body(&ref, 1, NUBO_ITEM_LOG);
        json_t *resp, *items;
        int rc = cli_api_list(ctx, "GET", "/v1/instances/log", body, "instances", &resp, &items,
                              &err);
        json_decref(body);
        if (rc < 0)
            return cli_fail(ctx, "instances logs", &err);
        json_t *it = json_array_get(items, 0);
        struct nubo_item_status st = {.ok = false};
        struct nubo_log_window lw = {0};
        if (it == NULL)
            rc = nubo_error(&err, 0, "%s: no log in the answer", who);
        else if (nubo_item_status_decode(it, &st, &err) < 0 ||
                 (st.ok && nubo_log_window_decode(it, &lw, &err) < 0))
            rc = nubo_error_wrap(&err, "%s: the API's answer", who);
        else if (!st.ok)
            rc = nubo_error(&err, 0, "%s: %s", who, st.message);
        json_decref(resp);
        if (rc < 0) {
            nubo_log_window_free(&lw);
            return cli_fail(ctx, "instances logs", &err);
        }
        if (lw.len)
            fwrite(lw.data, 1, lw.len, ctx->o);
        fflush(ctx->o);
        int64_t end = lw.has_range ? lw.range_end : ref.offset + (int64_t)lw.len;
        bool stopped = lw.state == NUBO_STATE_STOPPED;
        bool more = end < lw.available_end && end > ref.offset;
        nubo_log_window_free(&lw);
        ref.offset = end;
        if (more)
            continue;
        if (!follow || stopped)
            return 0;
        /* The log API has no long poll; following is polling, as the platform's CLI does. */
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* `instances get`: each instance that came back, as proto shows it. */
static int show_instances(struct cli_ctx *ctx, json_t *items, const bool *ok, int n)
{
    size_t i;
    json_t *it;
    bool first = true;
    json_array_foreach(items, i, it)
    {
        if (i >= (size_t)n || !ok[i])
            continue;
        struct nubo_instance in;
        struct nubo_err err = {0};
        if (nubo_instance_decode(it, &in, &err) < 0) {
            nubo_error_wrap(&err, "the API's instance");
            return cli_fail(ctx, "instances get", &err);
        }
        if (!first)
            fputc('\n', ctx->o);
        first = false;
        json_t *j = nubo_instance_encode(&in, true);
        cli_render_object(ctx->o, j);
        json_decref(j);
        nubo_instance_free(&in);
    }
    return 0;
}

static int show_metrics(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_instance_metrics *v;
    size_t n;
    if (nubo_instance_metrics_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's metrics");
    cli_render_metrics(ctx->o, v, n);
    nubo_instance_metrics_list_free(v, n);
    return 0;
}

/* `instances metrics [NAME...]`: every instance's, or the named ones' (one GET with a body). */
static int do_metrics(struct cli_ctx *ctx, char **names, int n)
{
    if (n == 0)
        return cli_list(ctx, "instances metrics", "/v1/instances/metrics", "instances",
                        show_metrics);
    json_t *body = json_array();
    for (int i = 0; i < n; i++) {
        struct nubo_item ref;
        nubo_item_ref(&ref, names[i]);
        json_array_append_new(body, nubo_item_encode(&ref, NUBO_ITEM_REF));
    }
    struct nubo_err err = {0};
    json_t *resp, *items;
    int rc = cli_api_list(ctx, "GET", "/v1/instances/metrics", body, "instances", &resp, &items,
                          &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(ctx, "instances metrics", &err);
    for (size_t i = 0; i < json_array_size(items) && rc == 0; i++) {
        struct nubo_item_status st;
        if (nubo_item_status_decode(json_array_get(items, i), &st, &err) < 0 || !st.ok)
            rc = nubo_error(&err, 0, "%s: %s", st.name[0] ? st.name : st.uuid, st.message);
    }
    if (rc == 0 && ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, items);
    else if (rc == 0)
        rc = show_metrics(ctx, items, &err);
    json_decref(resp);
    return rc < 0 ? cli_fail(ctx, "instances metrics", &err) : 0;
}

static int show_list(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_instance *v;
    size_t n;
    if (nubo_instance_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's instances");
    cli_render_instances(ctx->o, v, n, nubo_now_us());
    nubo_instance_list_free(v, n);
    return 0;
}

int cmd_instances(struct cli_ctx *ctx, int argc, char **argv)
{
    enum { OPT_UNTIL = 1, OPT_TIMEOUT };
    static const struct option own[] = {
        {"help", no_argument, NULL, 'h'},       {"follow", no_argument, NULL, 'f'},
        {"force", no_argument, NULL, 'F'},      {"drain-timeout", required_argument, NULL, 'd'},
        {"wait", no_argument, NULL, 'w'},       {"until", required_argument, NULL, OPT_UNTIL},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {NULL, 0, NULL, 0}};
    /* kraft cloud instance create [FLAGS] IMAGE [-- ARGS] is nubo run. */
    if (argc > 1 && (!strcmp(argv[1], "create") || !strcmp(argv[1], "new")))
        return cmd_run(ctx, argc - 1, argv + 1);
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    bool follow = false, force = false, wait = false;
    int64_t drain_ms = 0, timeout_ms = -1;
    char until[32] = "";
    int c;
    optind = 0;
    while ((c = getopt_long(argc, argv, "hfd:w" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            free(opts);
            usage(ctx->o);
            return 0;
        case 'f':
            follow = true;
            force = true; /* -f is --follow for logs and --force for stop, as in kraft */
            break;
        case 'F':
            force = true;
            break;
        case 'w':
            wait = true;
            break;
        case 'd':
            if (nubo_parse_duration_ms(optarg, &drain_ms, &err) < 0) {
                free(opts);
                return cli_usage(ctx, "instances", "--drain-timeout: %s", err.msg);
            }
            break;
        case OPT_UNTIL: {
            /* "running" or "state==running" (the new CLI's filter form). */
            const char *v = optarg;
            if (strncmp(v, "state==", 7) == 0)
                v += 7;
            else if (strncmp(v, "state=", 6) == 0)
                v += 6;
            static const char *const states[] = {"stopped", "starting", "running", "draining",
                                                 "stopping", "standby", NULL};
            bool ok = false;
            for (size_t i = 0; states[i]; i++)
                ok |= strcmp(v, states[i]) == 0;
            if (!ok) {
                free(opts);
                return cli_usage(ctx, "instances", "--until '%s': expected one of stopped, "
                                 "starting, running, draining, stopping, standby", optarg);
            }
            snprintf(until, sizeof(until), "%s", v);
            break;
        }
        case OPT_TIMEOUT:
            if (nubo_parse_duration_ms(optarg, &timeout_ms, &err) < 0) {
                free(opts);
                return cli_usage(ctx, "instances", "--timeout: %s", err.msg);
            }
            break;
        default: {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0) {
                free(opts);
                return cli_usage(ctx, "instances", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
            }
        }
        }
    }
    free(opts);
    const char *sub = optind < argc ? argv[optind++] : "list";
    int nnames = argc - optind;
    char **names = argv + optind;

    if (!strcmp(sub, "list") || !strcmp(sub, "ls"))
        return cli_list(ctx, "instances list", "/v1/instances", "instances", show_list);
    if (!strcmp(sub, "metrics"))
        return do_metrics(ctx, names, nnames);
    if (nnames == 0)
        return cli_usage(ctx, "instances", "%s needs at least one instance name or uuid", sub);
    if (nnames > NUBO_API_MAX_ITEMS)
        return cli_usage(ctx, "instances", "at most %d instances at once", NUBO_API_MAX_ITEMS);
    struct nubo_item *refs = calloc((size_t)nnames, sizeof(*refs));
    bool *ok = calloc((size_t)nnames, sizeof(*ok));
    if (refs == NULL || ok == NULL) {
        free(refs);
        free(ok);
        nubo_error(&err, ENOMEM, "out of memory");
        return cli_fail(ctx, "instances", &err);
    }
    for (int i = 0; i < nnames; i++)
        nubo_item_ref(&refs[i], names[i]);
    int rc;
    if (!strcmp(sub, "get")) {
        json_t *resp = NULL;
        rc = batch(ctx, "instances get", "GET", "/v1/instances", refs, nnames, NUBO_ITEM_REF,
                   names, NULL, &resp, ok);
        json_t *items;
        if (resp && nubo_envelope_items(resp, "instances", &items, NULL) == 0) {
            if (ctx->out == CLI_OUT_JSON)
                cli_print_json(ctx->o, items);
            else if (show_instances(ctx, items, ok, nnames) != 0)
                rc = CLI_EXIT_FAIL;
        }
        json_decref(resp);
    } else if (!strcmp(sub, "start") || !strcmp(sub, "str")) {
        for (int i = 0; i < nnames; i++)
            refs[i].wait_timeout_ms = wait ? (timeout_ms > 0 ? timeout_ms : 60000) : 0;
        rc = batch(ctx, "instances start", "PUT", "/v1/instances/start", refs, nnames,
                   NUBO_ITEM_START, names, "started", NULL, NULL);
    } else if (!strcmp(sub, "stop") || !strcmp(sub, "st")) {
        for (int i = 0; i < nnames; i++) {
            refs[i].force = force;
            refs[i].drain_timeout_ms = drain_ms;
        }
        rc = batch(ctx, "instances stop", "PUT", "/v1/instances/stop", refs, nnames,
                   NUBO_ITEM_STOP, names, "stopping", NULL, NULL);
        if (rc == 0 && wait) {
            for (int i = 0; i < nnames; i++) {
                refs[i].state = NUBO_STATE_STOPPED;
                refs[i].timeout_ms = timeout_ms;
            }
            rc = batch(ctx, "instances stop", "GET", "/v1/instances/wait", refs, nnames,
                       NUBO_ITEM_WAIT, names, NULL, NULL, NULL);
        }
    } else if (!strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete") ||
               !strcmp(sub, "del")) {
        rc = batch(ctx, "instances rm", "DELETE", "/v1/instances", refs, nnames, NUBO_ITEM_REF,
                   names, "removed", NULL, NULL);
    } else if (!strcmp(sub, "logs") || !strcmp(sub, "log")) {
        rc = nnames != 1 ? cli_usage(ctx, "instances", "logs takes exactly one instance")
                         : do_logs(ctx, names[0], follow);
    } else if (!strcmp(sub, "wait")) {
        if (!until[0]) {
            rc = cli_usage(ctx, "instances", "wait needs --until STATE");
        } else {
            for (int i = 0; i < nnames; i++) {
                nubo_state_parse(until, &refs[i].state);
                refs[i].timeout_ms = timeout_ms;
            }
            rc = batch(ctx, "instances wait", "GET", "/v1/instances/wait", refs, nnames,
                       NUBO_ITEM_WAIT, names, until, NULL, NULL);
        }
    } else {
        rc = cli_usage(ctx, "instances", "unknown subcommand '%s'", sub);
    }
    free(refs);
    free(ok);
    return rc;
}
