/* nubo instances list|get|start|stop|rm|logs [-f]|wait --until STATE. */
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
          "       nubo instances wait NAME... --until STATE [--timeout DUR]\n"
          "       nubo instances create [run flags] IMAGE [-- ARGS]   (= nubo run)\n"
          "Every form takes -o json|table.\n",
          f);
}

static json_t *ref_item(const char *who)
{
    return json_pack("{s:s}", nubo_uuid_valid(who) ? "uuid" : "name", who);
}

/* Batch call with one item per name; prints per-item failures; returns exit code. */
static int batch(struct cli_ctx *ctx, const char *cmd, const char *method, const char *path,
                 json_t *body, const char *verb, json_t **resp_out)
{
    struct nubo_err err = {0};
    json_t *resp = NULL;
    if (cli_api(ctx, method, path, body, &resp, &err) < 0)
        return cli_fail(ctx, cmd, &err);
    json_t *items = cli_api_items(resp, "instances");
    int rc = 0;
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *ie = cli_item_error(it);
        const char *name = json_string_value(json_object_get(it, "name"));
        if (!name)
            name = json_string_value(json_object_get(it, "uuid"));
        if (!name)
            name = json_string_value(json_object_get(json_array_get(body, i), "name"));
        if (!name)
            name = "?";
        if (ie) {
            fprintf(ctx->e, "%s %s: %s: %s\n", ctx->prog, cmd, name, ie);
            rc = CLI_EXIT_FAIL;
        } else if (verb && ctx->out != CLI_OUT_JSON && !ctx->quiet) {
            fprintf(ctx->o, "%s %s\n", verb, name);
        }
    }
    if (ctx->out == CLI_OUT_JSON && verb)
        cli_print_json(ctx->o, items ? items : json_object_get(resp, "data"));
    if (resp_out)
        *resp_out = resp;
    else
        json_decref(resp);
    return rc;
}

static int do_logs(struct cli_ctx *ctx, const char *who, bool follow)
{
    struct nubo_err err = {0};
    int64_t offset = 0;
    for (;;) {
        json_t *item = ref_item(who);
        json_object_set_new(item, "offset", json_integer(offset));
        json_object_set_new(item, "limit", json_integer(16383));
        json_t *body = json_pack("[o]", item);
        json_t *resp = NULL;
        int rc = cli_api(ctx, "GET", "/v1/instances/log", body, &resp, &err);
        json_decref(body);
        if (rc < 0)
            return cli_fail(ctx, "instances logs", &err);
        json_t *it = json_array_get(cli_api_items(resp, "instances"), 0);
        const char *ie = cli_item_error(it);
        if (ie || !it) {
            nubo_error(&err, 0, "%s: %s", who, ie ? ie : "no log in the answer");
            json_decref(resp);
            return cli_fail(ctx, "instances logs", &err);
        }
        const char *b64 = json_string_value(json_object_get(it, "output"));
        size_t len = 0;
        unsigned char *data = b64 ? nubo_base64_decode(b64, &len) : NULL;
        if (data && len)
            fwrite(data, 1, len, ctx->o);
        free(data);
        fflush(ctx->o);
        json_t *range = json_object_get(it, "range");
        json_t *avail = json_object_get(it, "available");
        int64_t end = json_integer_value(json_object_get(range, "end"));
        int64_t avail_end = json_integer_value(json_object_get(avail, "end"));
        if (!json_object_get(range, "end"))
            end = offset + (int64_t)len;
        const char *state = json_string_value(json_object_get(it, "state"));
        bool stopped = state && strcmp(state, "stopped") == 0;
        json_decref(resp);
        bool more = end < avail_end && end > offset;
        offset = end;
        if (more)
            continue;
        if (!follow || stopped)
            return 0;
        /* The log API has no long poll; following is polling, as the platform's CLI does. */
        struct timespec ts = {0, 500 * 1000000L};
        nanosleep(&ts, NULL);
    }
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

    if (!strcmp(sub, "list") || !strcmp(sub, "ls")) {
        json_t *resp = NULL;
        if (cli_api(ctx, "GET", "/v1/instances", NULL, &resp, &err) < 0)
            return cli_fail(ctx, "instances list", &err);
        json_t *items = cli_api_items(resp, "instances");
        json_t *empty = json_array();
        if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, items ? items : empty);
        else
            cli_render_instances(ctx->o, items ? items : empty, nubo_now_us());
        json_decref(empty);
        json_decref(resp);
        return 0;
    }
    if (nnames == 0)
        return cli_usage(ctx, "instances", "%s needs at least one instance name or uuid", sub);
    json_t *body = json_array();
    for (int i = 0; i < nnames; i++)
        json_array_append_new(body, ref_item(names[i]));
    int rc;
    if (!strcmp(sub, "get")) {
        json_t *resp = NULL;
        rc = batch(ctx, "instances get", "GET", "/v1/instances", body, NULL, &resp);
        json_t *items = cli_api_items(resp, "instances");
        if (ctx->out == CLI_OUT_JSON)
            cli_print_json(ctx->o, items);
        else {
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it)
            {
                if (cli_item_error(it))
                    continue;
                if (i)
                    fputc('\n', ctx->o);
                cli_render_object(ctx->o, it);
            }
        }
        json_decref(resp);
    } else if (!strcmp(sub, "start") || !strcmp(sub, "str")) {
        size_t i;
        json_t *it;
        json_array_foreach(body, i, it)
            if (wait)
                json_object_set_new(it, "wait_timeout_ms", json_integer(timeout_ms > 0 ? timeout_ms : 60000));
        rc = batch(ctx, "instances start", "PUT", "/v1/instances/start", body, "started", NULL);
    } else if (!strcmp(sub, "stop") || !strcmp(sub, "st")) {
        size_t i;
        json_t *it;
        json_array_foreach(body, i, it)
        {
            if (force)
                json_object_set_new(it, "force", json_true());
            if (drain_ms)
                json_object_set_new(it, "drain_timeout_ms", json_integer(drain_ms));
        }
        rc = batch(ctx, "instances stop", "PUT", "/v1/instances/stop", body, "stopping", NULL);
        if (rc == 0 && wait) {
            json_array_foreach(body, i, it)
            {
                json_object_del(it, "force");
                json_object_del(it, "drain_timeout_ms");
                json_object_set_new(it, "state", json_string("stopped"));
                json_object_set_new(it, "timeout_ms", json_integer(timeout_ms));
            }
            rc = batch(ctx, "instances stop", "GET", "/v1/instances/wait", body, NULL, NULL);
        }
    } else if (!strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete") ||
               !strcmp(sub, "del")) {
        rc = batch(ctx, "instances rm", "DELETE", "/v1/instances", body, "removed", NULL);
    } else if (!strcmp(sub, "logs") || !strcmp(sub, "log")) {
        if (nnames != 1) {
            json_decref(body);
            return cli_usage(ctx, "instances", "logs takes exactly one instance");
        }
        rc = do_logs(ctx, names[0], follow);
    } else if (!strcmp(sub, "wait")) {
        if (!until[0]) {
            json_decref(body);
            return cli_usage(ctx, "instances", "wait needs --until STATE");
        }
        size_t i;
        json_t *it;
        json_array_foreach(body, i, it)
        {
            json_object_set_new(it, "state", json_string(until));
            json_object_set_new(it, "timeout_ms", json_integer(timeout_ms));
        }
        rc = batch(ctx, "instances wait", "GET", "/v1/instances/wait", body, until, NULL);
    } else {
        json_decref(body);
        return cli_usage(ctx, "instances", "unknown subcommand '%s'", sub);
    }
    json_decref(body);
    return rc;
}
