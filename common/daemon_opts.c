/* Command line shared by the nubo daemons (see daemon_opts.h). */
#include "daemon_opts.h"

#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAEMON_OPTS_MAX 16 /* extra options a daemon may declare */

static void usage(FILE *f, const char *prog, const struct nubo_daemon_opt *extra,
                  bool config_required)
{
    fprintf(f, "usage: %s %s", prog, config_required ? "--config FILE" : "[--config FILE]");
    for (size_t i = 0; extra && extra[i].name; i++)
        fprintf(f, " [--%s %s]", extra[i].name, extra[i].arg);
    fprintf(f, " [--log-level error|warn|info|debug]\n");
    for (size_t i = 0; extra && extra[i].name; i++) {
        char left[64];
        snprintf(left, sizeof(left), "--%s %s", extra[i].name, extra[i].arg);
        fprintf(f, "  %-28s %s\n", left, extra[i].help);
    }
}

int nubo_daemon_opts(const char *prog, int argc, char **argv, const struct nubo_daemon_opt *extra,
                     bool config_required, struct nubo_daemon_args *out)
{
    struct option opts[DAEMON_OPTS_MAX + 4] = {{"config", required_argument, NULL, 'c'},
                                               {"log-level", required_argument, NULL, 'l'},
                                               {"help", no_argument, NULL, 'h'}};
    size_t n_extra = 0;
    while (extra && extra[n_extra].name) {
        if (n_extra == DAEMON_OPTS_MAX)
            abort(); /* a daemon declared more options than this table holds */
        opts[3 + n_extra] = (struct option){extra[n_extra].name, required_argument, NULL,
                                            0x100 + (int)n_extra};
        n_extra++;
    }
    out->config = NULL;
    out->level_given = false;
    int o;
    while ((o = getopt_long(argc, argv, "c:l:h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            out->config = optarg;
            break;
        case 'l':
            if (log_level_parse(optarg, &out->level) < 0) {
                fprintf(stderr, "%s: unknown log level '%s' (use error, warn, info or debug)\n",
                        prog, optarg);
                return 2;
            }
            out->level_given = true;
            break;
        case 'h':
            usage(stdout, prog, extra, config_required);
            return 0;
        default:
            if (o >= 0x100 && (size_t)(o - 0x100) < n_extra) {
                *extra[o - 0x100].value = optarg;
                break;
            }
            usage(stderr, prog, extra, config_required);
            return 2;
        }
    }
    if (optind != argc || (config_required && out->config == NULL)) {
        usage(stderr, prog, extra, config_required);
        return 2;
    }
    return -1;
}
