/* nubo-agent: turns this host into a nubo node (see agent_core.h and nubo-agent.ini). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "agent_core.h"
#include "log.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: nubo-agent --config FILE [--log-level error|warn|info|debug]\n");
}

int main(int argc, char **argv)
{
    const char *config = NULL;
    enum nubo_log_level lvl = NUBO_LOG_INFO;
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            config = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &lvl) < 0) {
                fprintf(stderr, "nubo-agent: unknown log level '%s'\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!config) {
        usage(stderr);
        return 2;
    }
    log_init("nubo-agent", lvl);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    struct nubo_err err = {0};
    if (agent_config_load(&cfg, config, &err) < 0) {
        fprintf(stderr, "nubo-agent: %s\n", err.msg);
        return 1;
    }
    static struct agent ag; /* large; lives for the whole process */
    if (agent_init(&ag, &cfg, &err) < 0) {
        fprintf(stderr, "nubo-agent: %s\n", err.msg);
        agent_fini(&ag);
        return 1;
    }
    int rc = agent_run_loop(&ag);
    agent_fini(&ag);
    curl_global_cleanup();
    return rc < 0 ? 1 : 0;
}
