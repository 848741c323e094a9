/* Command line shared by the config-file daemons (see daemon_opts.h). */
#include "daemon_opts.h"

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>

static void usage(FILE *f, const char *prog)
{
    fprintf(f, "usage: %s --config FILE [--log-level error|warn|info|debug]\n", prog);
}

int nubo_daemon_opts(const char *prog, int argc, char **argv, const char **config,
                     enum nubo_log_level *level)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"log-level", required_argument, NULL, 'l'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    *config = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            *config = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, level) < 0) {
                fprintf(stderr, "%s: unknown log level '%s' (use error, warn, info or debug)\n",
                        prog, optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout, prog);
            return 0;
        default:
            usage(stderr, prog);
            return 2;
        }
    }
    if (*config == NULL) {
        usage(stderr, prog);
        return 2;
    }
    return -1;
}
