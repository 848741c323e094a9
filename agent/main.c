/* nubo-agent: turns this host into a nubo node (see agent_core.h and nubo-agent.ini). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent_core.h"
#include "daemon_opts.h"
#include "http.h"
#include "log.h"

int main(int argc, char **argv)
{
    struct nubo_daemon_args args = {.level = NUBO_LOG_INFO};
    int orc = nubo_daemon_opts("nubo-agent", argc, argv, NULL, true, &args);
    if (orc >= 0)
        return orc;
    log_init("nubo-agent", args.level);
    /* Secrets at rest: nothing the agent writes is for other local users (what qemu must
     * read is opened to it explicitly). */
    umask(077);
    nu_http_global_init();
    struct agent_config cfg;
    agent_config_defaults(&cfg);
    struct nubo_err err = {0};
    if (agent_config_load(&cfg, args.config, &err) < 0) {
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
    nu_http_global_cleanup();
    return rc < 0 ? 1 : 0;
}
