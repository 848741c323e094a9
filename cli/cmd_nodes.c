/* nubo nodes list|drain|ready|replace: the operators' view of the nodes (GET /v1/nodes), moving
 * a node in and out of maintenance, and handing a node's name to another machine. */
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "util.h"

/* PUT /v1/nodes/NAME/drain|ready: the node back, with the instances a drain moved. */
static int node_admin(struct cli_ctx *ctx, const char *sub, const char *name)
{
    char path[160], cmd[32];
    snprintf(path, sizeof(path), "/v1/nodes/%s/%s", name, sub);
    snprintf(cmd, sizeof(cmd), "nodes %s", sub);
    struct nubo_err err = {0};
    json_t *resp, *items;
    if (cli_api_list(ctx, "PUT", path, NULL, "nodes", &resp, &items, &err) < 0)
        return cli_fail(ctx, cmd, &err);
    struct nubo_node node;
    json_t *it = json_array_get(items, 0);
    if (it == NULL || nubo_node_decode(it, &node, &err) < 0) {
        if (it == NULL)
            nubo_error(&err, 0, "node %s: the API answered no node", name);
        json_decref(resp);
        return cli_fail(ctx, cmd, &err);
    }
    if (ctx->out == CLI_OUT_JSON) {
        cli_print_json(ctx->o, it);
    } else if (node.token[0]) {
        fprintf(ctx->o,
                "node %s has a new token; its old machine is cut off. On the machine that takes "
                "its place, write this line to <state dir>/node-token (mode 0600, default "
                "/var/lib/nubo-agent/node-token), then start nubo-agent:\n%s\n",
                name, node.token);
    } else if (!ctx->quiet) {
        fprintf(ctx->o, "node %s is %s", name, node.state[0] ? node.state : "?");
        if (node.n_moved)
            fprintf(ctx->o, "; moved %zu instance(s)", node.n_moved);
        fputc('\n', ctx->o);
        for (size_t i = 0; i < node.n_moved; i++)
            fprintf(ctx->o, "  %s -> %s (%s)\n", node.moved[i].name[0] ? node.moved[i].name : "?",
                    node.moved[i].node[0] ? node.moved[i].node : "?",
                    node.moved[i].private_ip[0] ? node.moved[i].private_ip : "?");
    }
    nubo_node_free(&node);
    json_decref(resp);
    return 0;
}

static int show_nodes(struct cli_ctx *ctx, json_t *items, struct nubo_err *err)
{
    struct nubo_node *v;
    size_t n;
    if (nubo_node_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, err) < 0)
        return nubo_error_wrap(err, "the API's nodes");
    cli_render_nodes(ctx->o, v, n, nubo_now_us());
    nubo_node_list_free(v, n);
    return 0;
}

int cmd_nodes(struct cli_ctx *ctx, int argc, char **argv)
{
    bool help;
    int rc = cli_simple_opts(ctx, "nodes", argc, argv, &help);
    if (rc)
        return rc;
    if (help) {
        fputs("usage: nubo nodes list [-o json|table]\n"
              "       nubo nodes drain NAME    (admin: maintenance, its instances move away)\n"
              "       nubo nodes ready NAME    (admin: back in service)\n"
              "       nubo nodes replace NAME  (admin: a new node token for the machine that "
              "takes its place)\n",
              ctx->o);
        return 0;
    }
    const char *sub = optind < argc ? argv[optind] : "list";
    if (!strcmp(sub, "drain") || !strcmp(sub, "ready") || !strcmp(sub, "replace")) {
        if (optind + 1 >= argc)
            return cli_usage(ctx, "nodes", "%s needs a node name", sub);
        const char *name = argv[optind + 1];
        if (!nubo_name_valid(name) && !nubo_uuid_valid(name))
            return cli_usage(ctx, "nodes", "'%s' is not a node name", name);
        return node_admin(ctx, sub, name);
    }
    if (strcmp(sub, "list") && strcmp(sub, "ls"))
        return cli_usage(ctx, "nodes", "unknown subcommand '%s' (use list, drain, ready, replace)", sub);
    return cli_list(ctx, "nodes list", "/v1/nodes", "nodes", show_nodes);
}
