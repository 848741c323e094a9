/* Command line of the nubo daemons (nubo-controller, nubo-agent, nubo-ingress): --config FILE,
 * --log-level and a daemon's own --name VALUE options, parsed, explained and refused alike. */
#ifndef NUBO_DAEMON_OPTS_H
#define NUBO_DAEMON_OPTS_H

#include <stdbool.h>

#include "log.h"

/* One more "--name VALUE" option: value is set when it is given. */
struct nubo_daemon_opt {
    const char *name;
    const char *arg;  /* placeholder in the usage text, e.g. "ADDR" */
    const char *help; /* one line */
    const char **value;
};

struct nubo_daemon_args {
    const char *config; /* NULL when not given (only when the config is optional) */
    enum nubo_log_level level;
    bool level_given;
};

/* Parses argv for prog with the extra options (NULL-name-ended table, or NULL). Returns -1 to
 * go on with *out filled (level keeps the caller's default unless given), or an exit code:
 * 0 after --help, 2 after a usage error (unknown option, stray argument, bad level, missing
 * --config when config_required). */
int nubo_daemon_opts(const char *prog, int argc, char **argv, const struct nubo_daemon_opt *extra,
                     bool config_required, struct nubo_daemon_args *out);

#endif
