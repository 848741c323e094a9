/* nubo run: create instance(s) through POST /v1/instances, wait with the API's wait endpoint,
 * print the deploy tree. The create+wait+print flow is shared with nubo deploy. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

void cli_run_opts_init(struct cli_run_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->env = json_object();
    o->start = true;
    o->timeout_ms = 120000;
}

void cli_run_opts_free(struct cli_run_opts *o)
{
    json_decref(o->env);
    cli_strv_free(o->args);
    o->env = NULL;
    o->args = NULL;
}

int cli_run_opt(struct cli_run_opts *o, int opt, const char *arg, struct nubo_err *err)
{
    int64_t v;
    switch (opt) {
    case 'n':
        if (!nubo_name_valid(arg))
            return nubo_error(err, 0, "--name '%s': use 1..63 characters of [a-z0-9-]", arg);
        snprintf(o->name, sizeof(o->name), "%s", arg);
        return 1;
    case 'm':
    case 'M':
        if (nubo_parse_size_mb(arg, &o->memory_mb, err) < 0)
            return nubo_error_wrap(err, "--memory");
        return 1;
    case 'p':
        return cli_parse_port(arg, o->ports, &o->n_ports, 16, err) < 0 ? -1 : 1;
    case 'e':
        return cli_parse_env(arg, o->env, err) < 0 ? -1 : 1;
    case 'R':
        if (nubo_parse_int(arg, 0, 253, &v, err) < 0)
            return nubo_error_wrap(err, "--replicas");
        o->replicas = v;
        return 1;
    case 'V':
        if (nubo_parse_int(arg, 1, 64, &v, err) < 0)
            return nubo_error_wrap(err, "--vcpus");
        o->vcpus = v;
        return 1;
    case 'S':
        o->start = true;
        return 1;
    case CLI_RUN_OPT_NO_START:
        o->start = false;
        return 1;
    case CLI_RUN_OPT_RESTART:
        if (strcmp(arg, "never") && strcmp(arg, "always") && strcmp(arg, "on-failure"))
            return nubo_error(err, 0, "--restart '%s': expected never, always or on-failure", arg);
        snprintf(o->restart, sizeof(o->restart), "%s", arg);
        return 1;
    case CLI_RUN_OPT_TIMEOUT:
        if (nubo_parse_duration_ms(arg, &o->timeout_ms, err) < 0)
            return nubo_error_wrap(err, "--timeout");
        return 1;
    default:
        return 0;
    }
}

json_t *cli_run_request(struct cli_ctx *ctx, const struct cli_run_opts *o)
{
    json_t *r = json_object();
    json_object_set_new(r, "image", json_string(o->image));
    json_object_set_new(r, "autostart", json_boolean(o->start));
    if (o->name[0])
        json_object_set_new(r, "name", json_string(o->name));
    if (o->memory_mb)
        json_object_set_new(r, "memory_mb", json_integer(o->memory_mb));
    if (o->vcpus)
        json_object_set_new(r, "vcpus", json_integer(o->vcpus));
    if (o->replicas)
        json_object_set_new(r, "replicas", json_integer(o->replicas));
    if (json_object_size(o->env))
        json_object_set(r, "env", o->env);
    if (o->has_args) {
        json_t *a = json_array();
        for (size_t i = 0; o->args && o->args[i]; i++)
            json_array_append_new(a, json_string(o->args[i]));
        json_object_set_new(r, "args", a);
    }
    if (o->restart[0])
        json_object_set_new(r, "restart_policy", json_string(o->restart));
    if (ctx->metro[0])
        json_object_set_new(r, "metro", json_string(ctx->metro));
    if (o->n_ports) {
        /* An inline (ephemeral) service group, as the platform's CLI sends for -p. */
        json_object_set_new(r, "service_group",
                            json_pack("{s:o}", "services", cli_ports_json(o->ports, o->n_ports)));
        json_t *dp = json_array();
        for (int i = 0; i < o->n_ports; i++) {
            bool dup = false;
            for (int k = 0; k < i; k++)
                dup |= o->ports[k].destination_port == o->ports[i].destination_port;
            /* 80:443/redirect points at the LB's own 443, not at the app. */
            bool redirect = false;
            for (int h = 0; h < o->ports[i].n_handlers; h++)
                redirect |= strcmp(o->ports[i].handlers[h], "redirect") == 0;
            if (!dup && !redirect)
                json_array_append_new(dp, json_integer(o->ports[i].destination_port));
        }
        json_object_set_new(r, "service_ports", dp);
    }
    return r;
}

int cli_run_create(struct cli_ctx *ctx, const struct cli_run_opts *o, struct nubo_err *err)
{
    json_t *req = cli_run_request(ctx, o);
    json_t *resp = NULL;
    int rc = cli_api(ctx, "POST", "/v1/instances", req, &resp, err);
    json_decref(req);
    if (rc < 0)
        return -1;
    json_t *items = cli_api_items(resp, "instances");
    if (!items || json_array_size(items) == 0) {
        json_decref(resp);
        return nubo_error(err, 0, "the API created nothing for image %s", o->image);
    }
    const char *ie = cli_item_error(json_array_get(items, 0));
    if (ie) {
        nubo_error(err, 0, "creating an instance of %s: %s", o->image, ie);
        json_decref(resp);
        return -1;
    }
    /* Wait with the API's own wait endpoint: one blocking call, bounded by timeout_ms. */
    json_t *refs = json_array();
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        const char *uuid = json_string_value(json_object_get(it, "uuid"));
        if (uuid)
            json_array_append_new(refs, json_pack("{s:s}", "uuid", uuid));
    }
    json_decref(resp);
    bool wait_failed = false;
    if (o->start) {
        json_t *wbody = json_deep_copy(refs);
        json_array_foreach(wbody, i, it)
        {
            json_object_set_new(it, "state", json_string("running"));
            json_object_set_new(it, "timeout_ms", json_integer(o->timeout_ms));
        }
        json_t *wresp = NULL;
        struct nubo_err werr = {0};
        if (cli_api(ctx, "GET", "/v1/instances/wait", wbody, &wresp, &werr) < 0)
            wait_failed = true;
        else {
            json_array_foreach(cli_api_items(wresp, "instances"), i, it)
                wait_failed |= cli_item_error(it) != NULL;
        }
        json_decref(wbody);
        json_decref(wresp);
    }
    json_t *gresp = NULL;
    rc = cli_api(ctx, "GET", "/v1/instances", refs, &gresp, err);
    json_decref(refs);
    if (rc < 0)
        return nubo_error_wrap(err, "reading back the new instance");
    json_t *got = cli_api_items(gresp, "instances");
    json_t *first = json_array_get(got, 0);
    /* One instance prints as an object (scripts read .uuid), replicas as the array. */
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, json_array_size(got) == 1 ? first : got);
    else
        cli_render_deploy_tree(ctx->o, first, ctx->tty, ctx->prog);
    const char *state = json_string_value(json_object_get(first, "state"));
    bool online = state && (!strcmp(state, "running") || !strcmp(state, "standby") ||
                            (!o->start && !strcmp(state, "stopped")));
    rc = 0;
    if (o->start && (!online || wait_failed)) {
        rc = nubo_error(err, 0, "instance %s is %s, not running: see 'nubo instances logs %s'",
                        json_string_value(json_object_get(first, "name")) ?: "?",
                        state ? state : "unknown",
                        json_string_value(json_object_get(first, "name")) ?: "?");
    }
    json_decref(gresp);
    return rc;
}

static void usage(FILE *f)
{
    fputs("usage: nubo run --image REF [--metro M] [-p EXT:INT[/h1+h2]]... [-m SIZE]\n"
          "                [-R N] [-e K=V]... [--name N] [--start|--no-start] [-V N]\n"
          "                [--restart never|always|on-failure] [--timeout DUR] [-- ARGS...]\n"
          "  -p 443:8080 alone publishes 443:8080/http+tls and 80:443/http+redirect.\n"
          "  Sizes: 512, 512Mi, 512MiB, 512M (binary), 1Gi.\n",
          f);
}

int cmd_run(struct cli_ctx *ctx, int argc, char **argv)
{
    static const struct option own[] = {{"help", no_argument, NULL, 'h'},
                                        {"image", required_argument, NULL, CLI_RUN_OPT_IMAGE},
                                        CLI_RUN_LONGOPTS,
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct cli_run_opts o;
    cli_run_opts_init(&o);
    struct nubo_err err = {0};
    int c, rc;
    /* Everything after "--" is the app's; flags and a positional image come before it. */
    int dd = 1;
    while (dd < argc && strcmp(argv[dd], "--") != 0)
        dd++;
    int full_argc = argc;
    argc = dd;
    optind = 0;
    while ((c = getopt_long(argc, argv, "h" CLI_RUN_SHORT CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        if (c == 'h') {
            usage(ctx->o);
            rc = 0;
            goto out;
        }
        if (c == CLI_RUN_OPT_IMAGE) {
            snprintf(o.image, sizeof(o.image), "%s", optarg);
            continue;
        }
        int r = cli_run_opt(&o, c, optarg, &err);
        if (r == 0)
            r = cli_global_opt(ctx, c, optarg, &err);
        if (r <= 0) {
            rc = cli_usage(ctx, "run", "%s", r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
            goto out;
        }
    }
    /* A positional image (kraft cloud instance create IMAGE) is accepted too. */
    if (optind < argc && !o.image[0])
        snprintf(o.image, sizeof(o.image), "%s", argv[optind++]);
    if (optind < argc) {
        rc = cli_usage(ctx, "run", "unexpected argument '%s' (app arguments go after --)",
                       argv[optind]);
        goto out;
    }
    if (dd < full_argc) {
        o.has_args = true;
        for (int i = dd + 1; i < full_argc; i++)
            cli_strv_push(&o.args, argv[i]);
    }
    if (!o.image[0]) {
        rc = cli_usage(ctx, "run", "--image REF is required (e.g. --image=acme/app:latest)");
        goto out;
    }
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(o.image, &ref, &err) < 0) {
        rc = cli_usage(ctx, "run", "%s", err.msg);
        goto out;
    }
    rc = cli_run_create(ctx, &o, &err) < 0 ? cli_fail(ctx, "run", &err) : 0;
out:
    free(opts);
    cli_run_opts_free(&o);
    return rc;
}
