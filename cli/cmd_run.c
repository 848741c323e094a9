/* nubo run: create instance(s) through POST /v1/instances, wait with the API's wait endpoint,
 * print the deploy tree. The create+wait+print flow is shared with nubo deploy. */
#include <errno.h>
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
    o->s2z.cooldown_time_ms = NUBO_S2Z_DEFAULT_COOLDOWN_MS;
}

#define S2Z_LABEL "cloud.unikraft.v1.instances/scale_to_zero."

int cli_s2z_from_labels(char **labels, struct nubo_scale_to_zero *out, unsigned *given,
                        struct nubo_err *err)
{
    *given = 0;
    out->policy = NUBO_S2Z_OFF;
    out->stateful = false;
    out->cooldown_time_ms = NUBO_S2Z_DEFAULT_COOLDOWN_MS;
    for (size_t i = 0; labels && labels[i]; i++) {
        if (strncmp(labels[i], S2Z_LABEL, strlen(S2Z_LABEL)) != 0)
            continue;
        const char *k = labels[i] + strlen(S2Z_LABEL), *eq = strchr(k, '=');
        if (!eq)
            continue;
        const char *v = eq + 1;
        size_t kl = (size_t)(eq - k);
        if (kl == 6 && strncmp(k, "policy", 6) == 0) {
            if (nubo_s2z_policy_parse(v, &out->policy) < 0)
                return nubo_error(err, 0, "label %spolicy: '%s' is not on, off or idle",
                                  S2Z_LABEL, v);
            *given |= CLI_S2Z_POLICY;
        } else if (kl == 8 && strncmp(k, "stateful", 8) == 0) {
            if (strcmp(v, "true") && strcmp(v, "false"))
                return nubo_error(err, 0, "label %sstateful: '%s' is not true or false",
                                  S2Z_LABEL, v);
            out->stateful = strcmp(v, "true") == 0;
            *given |= CLI_S2Z_STATEFUL;
        } else if (kl == 16 && strncmp(k, "cooldown_time_ms", 16) == 0) {
            if (nubo_parse_int(v, 0, NUBO_S2Z_MAX_COOLDOWN_MS, &out->cooldown_time_ms, err) < 0)
                return nubo_error_wrap(err, "label %scooldown_time_ms", S2Z_LABEL);
            *given |= CLI_S2Z_COOLDOWN;
        }
    }
    return 0;
}

void cli_s2z_merge(struct cli_run_opts *o, const struct nubo_scale_to_zero *labels,
                   unsigned given_l)
{
    if ((given_l & CLI_S2Z_POLICY) && !(o->s2z_given & CLI_S2Z_POLICY))
        o->s2z.policy = labels->policy;
    if ((given_l & CLI_S2Z_COOLDOWN) && !(o->s2z_given & CLI_S2Z_COOLDOWN))
        o->s2z.cooldown_time_ms = labels->cooldown_time_ms;
    if ((given_l & CLI_S2Z_STATEFUL) && !(o->s2z_given & CLI_S2Z_STATEFUL))
        o->s2z.stateful = labels->stateful;
    o->s2z_given |= given_l;
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
    case 'v':
        if (o->n_volumes >= NUBO_VOLUME_MAX_MOUNTS)
            return nubo_error(err, 0, "-v: at most %d volumes", NUBO_VOLUME_MAX_MOUNTS);
        if (nubo_volume_mount_parse(arg, &o->volumes[o->n_volumes], err) < 0)
            return -1;
        o->n_volumes++;
        return 1;
    case CLI_RUN_OPT_NO_START:
        o->start = false;
        return 1;
    case CLI_RUN_OPT_RESTART:
        if (strcmp(arg, "never") && strcmp(arg, "always") && strcmp(arg, "on-failure"))
            return nubo_error(err, 0, "--restart '%s': expected never, always or on-failure", arg);
        snprintf(o->restart, sizeof(o->restart), "%s", arg);
        return 1;
    case CLI_RUN_OPT_S2Z:
        if (nubo_s2z_policy_parse(arg, &o->s2z.policy) < 0)
            return nubo_error(err, 0, "--scale-to-zero '%s': expected on, idle or off", arg);
        o->s2z_given |= CLI_S2Z_POLICY;
        return 1;
    case CLI_RUN_OPT_S2Z_COOLDOWN:
        if (nubo_parse_duration_ms(arg, &o->s2z.cooldown_time_ms, err) < 0 ||
            o->s2z.cooldown_time_ms > NUBO_S2Z_MAX_COOLDOWN_MS)
            return nubo_error(err, 0, "--scale-to-zero-cooldown '%s': expected a duration up to "
                                      "24h (1s, 500ms)",
                              arg);
        o->s2z_given |= CLI_S2Z_COOLDOWN;
        return 1;
    case CLI_RUN_OPT_S2Z_STATEFUL:
        o->s2z.stateful = true;
        o->s2z_given |= CLI_S2Z_STATEFUL;
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
    struct nubo_create_req r;
    nubo_create_req_init(&r);
    /* 0 leaves memory and vCPUs to the platform's defaults */
    r.memory_mb = o->memory_mb;
    r.vcpus = o->vcpus;
    r.autostart = o->start;
    r.replicas = o->replicas;
    snprintf(r.image, sizeof(r.image), "%s", o->image);
    snprintf(r.name, sizeof(r.name), "%s", o->name);
    snprintf(r.metro, sizeof(r.metro), "%s", ctx->metro);
    if (o->restart[0])
        nubo_restart_policy_parse(o->restart, &r.restart_policy);
    /* a cooldown or stateful flag alone means scale-to-zero on */
    r.scale_to_zero = o->s2z;
    if (o->s2z_given && !(o->s2z_given & CLI_S2Z_POLICY))
        r.scale_to_zero.policy = NUBO_S2Z_ON;
    r.has_args = o->has_args;
    r.args = o->args;
    r.n_args = cli_strv_len(o->args);
    /* the -e flags, in the order given */
    struct nubo_kv env[NUBO_AGENT_MAX_ENV];
    const char *k;
    json_t *v;
    json_object_foreach(o->env, k, v)
    {
        if (r.n_env < NUBO_AGENT_MAX_ENV)
            env[r.n_env++] = (struct nubo_kv){(char *)k, (char *)json_string_value(v)};
    }
    r.env = env;
    r.volumes = (struct nubo_volume_mount *)o->volumes;
    r.n_volumes = o->n_volumes;
    struct nubo_svc_create_req sg;
    if (o->n_ports) {
        /* An inline (ephemeral) service group, as the platform's CLI sends for -p. */
        nubo_svc_create_req_init(&sg);
        cli_ports_proto(o->ports, o->n_ports, sg.ports);
        sg.n_ports = (size_t)o->n_ports;
        r.service_group = &sg;
        for (int i = 0; i < o->n_ports; i++) {
            bool dup = false;
            for (int k2 = 0; k2 < i; k2++)
                dup |= o->ports[k2].destination_port == o->ports[i].destination_port;
            /* 80:443/redirect points at the LB's own 443, not at the app. */
            if (!dup && !(sg.ports[i].handlers & NUBO_HANDLER_REDIRECT) &&
                r.n_service_ports < NUBO_AGENT_MAX_PORTS)
                r.service_ports[r.n_service_ports++] = o->ports[i].destination_port;
        }
    }
    /* r borrows everything above: encode, do not free */
    return nubo_create_req_encode(&r);
}

/* The first item of an instances answer: its status, or why there is none. */
static int first_status(json_t *items, const char *what, struct nubo_item_status *st,
                        struct nubo_err *err)
{
    json_t *it = json_array_get(items, 0);
    if (it == NULL)
        return nubo_error(err, 0, "the API %s nothing", what);
    if (nubo_item_status_decode(it, st, err) < 0)
        return nubo_error_wrap(err, "the API's answer");
    return 0;
}

int cli_run_create(struct cli_ctx *ctx, const struct cli_run_opts *o, struct nubo_err *err)
{
    json_t *req = cli_run_request(ctx, o);
    json_t *resp, *items;
    int rc = cli_api_list(ctx, "POST", "/v1/instances", req, "instances", &resp, &items, err);
    json_decref(req);
    if (rc < 0)
        return -1;
    struct nubo_item_status st;
    if (first_status(items, "created", &st, err) < 0) {
        json_decref(resp);
        return nubo_error_wrap(err, "creating an instance of %s", o->image);
    }
    if (!st.ok) {
        nubo_error(err, 0, "creating an instance of %s: %s", o->image, st.message);
        json_decref(resp);
        return -1;
    }
    /* Wait with the API's own wait endpoint: one blocking call, bounded by timeout_ms. */
    size_t n = json_array_size(items), n_refs = 0;
    struct nubo_item *refs = calloc(n + 1, sizeof(*refs));
    if (refs == NULL) {
        json_decref(resp);
        return nubo_error(err, ENOMEM, "out of memory");
    }
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it)
    {
        if (nubo_item_status_decode(it, &st, NULL) == 0 && st.uuid[0]) {
            nubo_item_init(&refs[n_refs]);
            memcpy(refs[n_refs++].uuid, st.uuid, sizeof(st.uuid));
        }
    }
    json_decref(resp);
    bool wait_failed = false;
    if (o->start) {
        json_t *wbody = json_array();
        for (i = 0; i < n_refs; i++) {
            refs[i].state = NUBO_STATE_RUNNING;
            refs[i].timeout_ms = o->timeout_ms;
            json_array_append_new(wbody, nubo_item_encode(&refs[i], NUBO_ITEM_WAIT));
        }
        json_t *wresp, *witems;
        struct nubo_err werr = {0};
        if (cli_api_list(ctx, "GET", "/v1/instances/wait", wbody, "instances", &wresp, &witems,
                         &werr) < 0)
            wait_failed = true;
        else {
            json_array_foreach(witems, i, it)
                wait_failed |= nubo_item_status_decode(it, &st, NULL) < 0 || !st.ok;
            json_decref(wresp);
        }
        json_decref(wbody);
    }
    json_t *gbody = json_array();
    for (i = 0; i < n_refs; i++)
        json_array_append_new(gbody, nubo_item_encode(&refs[i], NUBO_ITEM_REF));
    free(refs);
    json_t *gresp, *got;
    rc = cli_api_list(ctx, "GET", "/v1/instances", gbody, "instances", &gresp, &got, err);
    json_decref(gbody);
    if (rc < 0)
        return nubo_error_wrap(err, "reading back the new instance");
    struct nubo_instance first;
    if (json_array_size(got) == 0 || nubo_instance_decode(json_array_get(got, 0), &first, err) < 0) {
        if (json_array_size(got) == 0)
            nubo_error(err, 0, "the API lost the new instance");
        json_decref(gresp);
        return nubo_error_wrap(err, "reading back the new instance");
    }
    /* One instance prints as an object (scripts read .uuid), replicas as the array. */
    if (ctx->out == CLI_OUT_JSON)
        cli_print_json(ctx->o, json_array_size(got) == 1 ? json_array_get(got, 0) : got);
    else
        cli_render_deploy_tree(ctx->o, &first, ctx->tty, ctx->prog);
    enum nubo_state state = first.state;
    bool online = state == NUBO_STATE_RUNNING || state == NUBO_STATE_STANDBY ||
                  (!o->start && state == NUBO_STATE_STOPPED);
    rc = 0;
    if (o->start && (!online || wait_failed))
        rc = nubo_error(err, 0, "instance %s is %s, not running: see 'nubo instances logs %s'",
                        first.name[0] ? first.name : "?", nubo_state_name(state),
                        first.name[0] ? first.name : "?");
    nubo_instance_free(&first);
    json_decref(gresp);
    return rc;
}

static void usage(FILE *f)
{
    fputs("usage: nubo run --image REF [--metro M] [-p EXT:INT[/h1+h2]]... [-m SIZE]\n"
          "                [-R N] [-e K=V]... [--name N] [--start|--no-start] [-V N]\n"
          "                [--restart never|always|on-failure] [--timeout DUR]\n"
          "                [--scale-to-zero on|idle|off] [--scale-to-zero-cooldown DUR]\n"
          "                [--scale-to-zero-stateful] [-- ARGS...]\n"
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
