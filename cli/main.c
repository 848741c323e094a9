/* nubo: the command-line client. Dispatches to one file per subcommand (cmd_*.c). */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "http.h"

#include "cli.h"
#include "log.h"

static void usage(FILE *f)
{
    fputs("usage: nubo <command> [flags]\n"
          "\n"
          "Build and package:\n"
          "  build [DIR] --output ORG/NAME:TAG   build the Kraftfile in DIR, pack and push it\n"
          "  pkg --kernel FILE [--initrd FILE] --output ORG/NAME:TAG [--push]\n"
          "  push ORG/NAME:TAG                   push a packed image\n"
          "  pull REF [--output DIR]              fetch and verify an image\n"
          "Run:\n"
          "  run --metro M -p 443:8080/http+tls -m 512MiB --image REF [-- ARGS]\n"
          "  deploy [DIR] -p 443:8080 -M 512 [-R N]   build + push + run\n"
          "Inspect and manage:\n"
          "  images list|get|rm\n"
          "  instances list|get|start|stop|rm|logs [-f]|wait --until STATE\n"
          "  services list|get|create|rm     certificates list|get|create|rm\n"
          "  volumes list|get|create NAME --size 1GiB|rm   (run -v NAME:/path[:ro])\n"
          "  nodes list|drain|ready|replace     metros list\n"
          "  users list|create|rm (admin)     tokens list|create|revoke\n"
          "  login --api URL --token TOKEN [--ca FILE] [--registry URL] [--metro M]\n"
          "\n"
          "Global flags: --api URL, --token T, --ca FILE, --registry URL, --metro M, -o json|table, -q\n"
          "Environment: NUBO_API, NUBO_TOKEN, NUBO_CA, NUBO_REGISTRY, NUBO_METRO, NUBO_PROFILE\n",
          f);
}

static const struct {
    const char *name;
    const char *alias;
    int (*fn)(struct cli_ctx *, int, char **);
} cmds[] = {
    {"build", NULL, cmd_build},          {"pkg", "package", cmd_pkg},
    {"push", NULL, cmd_push},            {"pull", NULL, cmd_pull},
    {"run", "create", cmd_run},          {"deploy", "launch", cmd_deploy},
    {"images", "image", cmd_images},     {"instances", "instance", cmd_instances},
    {"nodes", "node", cmd_nodes},        {"metros", "metro", cmd_metros},
    {"services", "service", cmd_services}, {"login", NULL, cmd_login},
    {"certificates", "certificate", cmd_certificates},
    {"volumes", "volume", cmd_volumes},
    {"users", "user", cmd_users},        {"tokens", "token", cmd_tokens},
};

int main(int argc, char **argv)
{
    log_init("nubo", NUBO_LOG_WARN);
    opterr = 0; /* flag errors are reported by the subcommands, in one line */
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_EXIT_USAGE : CLI_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        puts("nubo 0.1.0");
        return 0;
    }
    nu_http_global_init();
    struct cli_ctx ctx;
    cli_ctx_init(&ctx);
    struct nubo_err err = {0};
    if (cli_config_load(&ctx, &err) < 0) {
        int rc = cli_fail(&ctx, NULL, &err);
        nu_http_global_cleanup();
        return rc;
    }
    /* Global flags may also come before the command: nubo --token T images list. They are
     * moved behind the command name so the subcommand's own parser sees them. */
    int first = cli_first_word(argc, argv, 1);
    if (first >= argc) {
        usage(stderr);
        nu_http_global_cleanup();
        return CLI_EXIT_USAGE;
    }
    if (first > 1) {
        char *cmd = argv[first];
        memmove(argv + 2, argv + 1, (size_t)(first - 1) * sizeof(char *));
        argv[1] = cmd;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(argv[1], cmds[i].name) == 0 ||
            (cmds[i].alias && strcmp(argv[1], cmds[i].alias) == 0)) {
            int rc = cmds[i].fn(&ctx, argc - 1, argv + 1);
            fflush(stdout);
            nu_http_global_cleanup();
            return rc;
        }
    }
    fprintf(stderr, "nubo: unknown command '%s': run 'nubo --help' for the list\n", argv[1]);
    nu_http_global_cleanup();
    return CLI_EXIT_USAGE;
}
