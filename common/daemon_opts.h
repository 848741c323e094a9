/* Command line of the config-file daemons (nubo-agent, nubo-ingress): --config FILE and
 * --log-level, parsed the same way so both behave alike. */
#ifndef NUBO_DAEMON_OPTS_H
#define NUBO_DAEMON_OPTS_H

#include "log.h"

/* Parses argv for prog. Returns -1 to go on with *config and *level set (level keeps its
 * default unless given), or an exit code: 0 after --help, 2 after a usage error. */
int nubo_daemon_opts(const char *prog, int argc, char **argv, const char **config,
                     enum nubo_log_level *level);

#endif
