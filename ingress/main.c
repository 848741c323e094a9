/* nubo-ingress: one per metro; runs HAProxy as its child and keeps it in step with the
 * controller's services (ingress/README.md). */
#include "ingress_core.h"

#include "http.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "daemon_opts.h"
#include "log.h"

/* The one piece of global state: set by the signal handler, read through d.stopping. */
static volatile int stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    struct nubo_daemon_args args = {.level = NUBO_LOG_INFO};
    int orc = nubo_daemon_opts("nubo-ingress", argc, argv, NULL, true, &args);
    if (orc >= 0)
        return orc;
    log_init("nubo-ingress", args.level);
    /* Secrets at rest: the HAProxy config dir holds users' private keys. */
    umask(077);
    struct ing_daemon d;
    memset(&d, 0, sizeof(d));
    d.stopping = &stopping;
    d.hap.pid = -1;
    ing_config_defaults(&d.cfg);
    struct nubo_err err = {0};
    if (ing_config_load(args.config, &d.cfg, &err) < 0) {
        fprintf(stderr, "nubo-ingress: %s\n", err.msg);
        ing_config_free(&d.cfg);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: sleeps end at once */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN); /* a closed terminal must not take the metro's ingress down */
    nu_http_global_init();
    if (ing_daemon_start(&d, &err) < 0) {
        fprintf(stderr, "nubo-ingress: metro %s: %s\n", d.cfg.metro, err.msg);
        ing_daemon_free(&d);
        nu_http_global_cleanup();
        return 1;
    }
    log_info("metro %s: haproxy (pid %d) listening on %s:%d and %s:%d; watching %s",
             d.cfg.metro, (int)d.hap.pid, d.cfg.listen_addr, d.cfg.http_port, d.cfg.listen_addr,
             d.cfg.https_port, d.cfg.controller_url);
    ing_daemon_run(&d);
    log_info("stopping: %llu reloads, %llu runtime commands applied",
             (unsigned long long)d.n_reloads, (unsigned long long)d.n_runtime_cmds);
    ing_daemon_free(&d);
    nu_http_global_cleanup();
    return 0;
}
