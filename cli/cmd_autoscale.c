/* nubo services autoscale init|get|rm and policies add|get|rm: a service group's autoscale
 * configuration and step policies (/v1/services/autoscale, /v1/services/{name}/autoscale/
 * policies). */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "autoscale.h"
#include "cli.h"
#include "util.h"

#define AS_USAGE                                                                                   \
    "usage: nubo services autoscale init SERVICE [--master INSTANCE] [--min-size N]\n"             \
    "                 [--max-size N] [--warmup-time 1s] [--cooldown-time 1s]\n"                    \
    "       nubo services autoscale get|rm SERVICE\n"                                              \
    "       nubo services autoscale policies add SERVICE NAME [--metric cpu|inflight_reqs]\n"      \
    "                 [--adjustment change|exact|percent] --step LOWER:UPPER/ADJ...\n"             \
    "                 (a bound left empty is open: --step 5:/+1 --step :1/-1)\n"                   \
    "       nubo services autoscale policies get SERVICE [NAME] | rm SERVICE NAME\n"

#define AS_MAX_ARGS 8

struct as_opts {
    struct nubo_as_config cfg;  /* init */
    struct nubo_as_policy *pol; /* policies add */
    const char *pos[AS_MAX_ARGS];
    size_t n_pos;
};

/* "LOWER:UPPER/ADJ", either bound empty (open). */
static int parse_step(const char *s, struct nubo_as_step *out, struct nubo_err *err)
{
    char buf[96], *colon, *slash;
    memset(out, 0, sizeof(*out));
    if (nubo_snprintf(buf, sizeof(buf), "%s", s) < 0 || !(colon = strchr(buf, ':')) ||
        !(slash = strchr(colon, '/')))
        return nubo_error(err, 0, "--step %s: write LOWER:UPPER/ADJUSTMENT, e.g. 5:/+1", s);
    *colon = *slash = '\0';
    const char *adj = slash[1] == '+' ? slash + 2 : slash + 1;
    if ((buf[0] &&
         nubo_parse_int(buf, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX, &out->lower_bound, NULL) < 0) ||
        (colon[1] && nubo_parse_int(colon + 1, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX,
                                    &out->upper_bound, NULL) < 0) ||
        nubo_parse_int(adj, -NUBO_AS_BOUND_MAX, NUBO_AS_BOUND_MAX, &out->adjustment, NULL) < 0)
        return nubo_error(err, 0, "--step %s: bounds and adjustment are integers", s);
    out->has_lower = buf[0] != '\0';
    out->has_upper = colon[1] != '\0';
    return 0;
}

static int set_enum(const char *v, const char *(*name)(int), int n, int *out)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v, name(i)) == 0) {
            *out = i;
            return 0;
        }
    return -1;
}

static const char *metric_name(int i)
{
    return nubo_as_metric_name((enum nubo_as_metric)i);
}

static const char *adjust_name(int i)
{
    return nubo_as_adjust_name((enum nubo_as_adjust)i);
}

static int as_parse(struct cli_ctx *ctx, int argc, char **argv, struct as_opts *o, bool *help)
{
    static const struct option own[] = {{"master", required_argument, NULL, 'm'},
                                        {"min-size", required_argument, NULL, 'a'},
                                        {"max-size", required_argument, NULL, 'b'},
                                        {"warmup-time", required_argument, NULL, 'w'},
                                        {"cooldown-time", required_argument, NULL, 'c'},
                                        {"metric", required_argument, NULL, 'M'},
                                        {"adjustment", required_argument, NULL, 'A'},
                                        {"step", required_argument, NULL, 's'},
                                        {"help", no_argument, NULL, 'h'},
                                        {NULL, 0, NULL, 0}};
    struct option *opts = cli_opts_with_globals(own);
    struct nubo_err err = {0};
    int c, rc = 0, e;
    optind = 0;
    *help = false;
    while (rc == 0 && (c = getopt_long(argc, argv, "h" CLI_GLOBAL_SHORT, opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            *help = true;
            break;
        case 'm':
            if (strlen(optarg) > NUBO_NAME_MAX && !nubo_uuid_valid(optarg))
                rc = cli_usage(ctx, "services autoscale", "--master %s: not an instance name",
                               optarg);
            else if (nubo_uuid_valid(optarg))
                snprintf(o->cfg.master.uuid, sizeof(o->cfg.master.uuid), "%s", optarg);
            else
                snprintf(o->cfg.master.name, sizeof(o->cfg.master.name), "%s", optarg);
            break;
        case 'a':
        case 'b':
            if (nubo_parse_int(optarg, c == 'a' ? 0 : 1, NUBO_AS_MAX_SIZE,
                               c == 'a' ? &o->cfg.min_size : &o->cfg.max_size, NULL) < 0)
                rc =
                    cli_usage(ctx, "services autoscale", "--%s-size %s: must be %d..%d",
                              c == 'a' ? "min" : "max", optarg, c == 'a' ? 0 : 1, NUBO_AS_MAX_SIZE);
            break;
        case 'w':
        case 'c': {
            int64_t *t = c == 'w' ? &o->cfg.warmup_time_ms : &o->cfg.cooldown_time_ms;
            if (nubo_parse_duration_ms(optarg, t, &err) < 0 || *t < 1 || *t > NUBO_AS_TIME_MAX)
                rc = cli_usage(ctx, "services autoscale", "--%s-time %s: a duration of 1ms..24d",
                               c == 'w' ? "warmup" : "cooldown", optarg);
            break;
        }
        case 'M':
            if (set_enum(optarg, metric_name, NUBO_AS_METRIC_N, &e) < 0)
                rc = cli_usage(ctx, "services autoscale", "--metric %s: use cpu or inflight_reqs",
                               optarg);
            else
                o->pol->metric = (enum nubo_as_metric)e;
            break;
        case 'A':
            if (set_enum(optarg, adjust_name, 3, &e) < 0)
                rc = cli_usage(ctx, "services autoscale",
                               "--adjustment %s: use change, exact or percent", optarg);
            else
                o->pol->adjustment_type = (enum nubo_as_adjust)e;
            break;
        case 's':
            if (o->pol->n_steps >= NUBO_AS_MAX_STEPS)
                rc = cli_usage(ctx, "services autoscale", "at most %d steps", NUBO_AS_MAX_STEPS);
            else if (parse_step(optarg, &o->pol->steps[o->pol->n_steps], &err) < 0)
                rc = cli_usage(ctx, "services autoscale", "%s", err.msg);
            else
                o->pol->n_steps++;
            break;
        default: {
            int r = cli_global_opt(ctx, c, optarg, &err);
            if (r <= 0)
                rc = cli_usage(ctx, "services autoscale", "%s",
                               r < 0 ? err.msg : cli_unknown_flag(ctx, argc, argv));
        }
        }
    }
    free(opts);
    /* the words after "autoscale" (the first one: the caller found it) */
    for (int i = optind + 1; rc == 0 && i < argc; i++) {
        if (o->n_pos == AS_MAX_ARGS)
            return cli_usage(ctx, "services autoscale", "too many arguments");
        o->pos[o->n_pos++] = argv[i];
    }
    return rc;
}

/* One item of a reply, shown as a key: value object after a client-side decode. */
static int show_config(struct cli_ctx *ctx, json_t *item, struct nubo_err *err)
{
    struct nubo_as_config c;
    if (nubo_as_config_decode(item, &c, err) < 0)
        return nubo_error_wrap(err, "the API's autoscale configuration");
    json_t *j = nubo_as_config_encode(&c);
    cli_render_object(ctx->o, j);
    json_decref(j);
    nubo_as_config_free(&c);
    return 0;
}

static int show_policy(struct cli_ctx *ctx, json_t *item, struct nubo_err *err)
{
    struct nubo_as_policy *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return nubo_error(err, ENOMEM, "policy");
    int rc = nubo_as_policy_show_decode(item, p, err);
    if (rc == 0) {
        json_t *j = nubo_as_policy_encode(p);
        cli_render_object(ctx->o, j);
        json_decref(j);
    }
    free(p);
    return rc < 0 ? nubo_error_wrap(err, "the API's policy") : 0;
}

static int show_policies(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    size_t i;
    json_t *it;
    json_array_foreach(items, i, it) {
        if (i)
            fputc('\n', ctx->o);
        if (show_policy(ctx, it, err) < 0)
            return -1;
    }
    return 0;
}

static int show_done(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_item_status st;
    json_t *it = json_array_get(items, 0);
    if (it == NULL || nubo_item_status_decode(it, &st, err) < 0)
        return nubo_error(err, 0, "the API answered no item");
    if (!st.ok)
        return nubo_error(err, 0, "%s", st.message);
    fprintf(ctx->o, "%s: done\n", st.name);
    return 0;
}

/* POST and check the one item (cli_create_reply renders it, show_done fails on an error). */
static int post_one(struct cli_ctx *ctx, const char *cmd, const char *path, const char *collection,
                    json_t *body)
{
    return cli_create_reply(ctx, cmd, path, collection, body, show_done);
}

static int policies_cmd(struct cli_ctx *ctx, struct as_opts *o)
{
    const char *sub = o->n_pos > 1 ? o->pos[1] : "get";
    if (o->n_pos < 3)
        return cli_usage(ctx, "services autoscale policies", "%s needs a service name", sub);
    char path[200];
    snprintf(path, sizeof(path), "/v1/services/%s/autoscale/policies", o->pos[2]);
    if (!strcmp(sub, "add") || !strcmp(sub, "create")) {
        if (o->n_pos != 4 || !nubo_name_valid(o->pos[3]))
            return cli_usage(ctx, "services autoscale policies",
                             "add SERVICE NAME: name the "
                             "policy ([a-z0-9-])");
        if (o->pol->n_steps == 0)
            return cli_usage(ctx, "services autoscale policies",
                             "add: give at least one --step LOWER:UPPER/ADJ");
        snprintf(o->pol->name, sizeof(o->pol->name), "%s", o->pos[3]);
        return post_one(ctx, "services autoscale policies add", path, "policies",
                        nubo_as_policy_encode(o->pol));
    }
    bool get = !strcmp(sub, "get") || !strcmp(sub, "list") || !strcmp(sub, "ls");
    bool rm = !strcmp(sub, "rm") || !strcmp(sub, "remove") || !strcmp(sub, "delete");
    if (!get && !rm)
        return cli_usage(ctx, "services autoscale policies",
                         "unknown subcommand '%s' (use add, get, rm)", sub);
    if (get && o->n_pos == 3)
        return cli_list(ctx, "services autoscale policies get", path, "policies", show_policies);
    if (o->n_pos != 4)
        return cli_usage(ctx, "services autoscale policies", "%s SERVICE NAME", sub);
    return cli_get_or_remove(ctx, "services autoscale policies", path, "policies", get, o->pos[3],
                             show_policy);
}

int cmd_services_autoscale(struct cli_ctx *ctx, int argc, char **argv)
{
    struct as_opts o = {0};
    nubo_as_config_init(&o.cfg);
    o.pol = calloc(1, sizeof(*o.pol));
    if (o.pol == NULL)
        return CLI_EXIT_FAIL;
    bool help;
    int rc = as_parse(ctx, argc, argv, &o, &help);
    if (rc == 0 && (help || o.n_pos == 0))
        fputs(AS_USAGE, ctx->o);
    else if (rc == 0 && !strcmp(o.pos[0], "policies"))
        rc = policies_cmd(ctx, &o);
    else if (rc == 0 && !strcmp(o.pos[0], "init")) {
        if (o.n_pos != 2)
            rc = cli_usage(ctx, "services autoscale", "init SERVICE: name the service group");
        else {
            if (nubo_uuid_valid(o.pos[1]))
                snprintf(o.cfg.uuid, sizeof(o.cfg.uuid), "%s", o.pos[1]);
            else
                snprintf(o.cfg.name, sizeof(o.cfg.name), "%.63s", o.pos[1]);
            rc = post_one(ctx, "services autoscale init", "/v1/services/autoscale",
                          "service_groups", nubo_as_config_req_encode(&o.cfg));
        }
    } else if (rc == 0) {
        bool get = !strcmp(o.pos[0], "get");
        bool rm =
            !strcmp(o.pos[0], "rm") || !strcmp(o.pos[0], "delete") || !strcmp(o.pos[0], "reset");
        if (!get && !rm)
            rc = cli_usage(ctx, "services autoscale",
                           "unknown subcommand '%s' (use init, get, rm, policies)", o.pos[0]);
        else if (o.n_pos != 2)
            rc = cli_usage(ctx, "services autoscale", "%s needs a service name", o.pos[0]);
        else
            rc = cli_get_or_remove(ctx, "services autoscale", "/v1/services/autoscale",
                                   "service_groups", get, o.pos[1], show_config);
    }
    free(o.pol);
    return rc;
}
