/* The agent's context and main loop (libevent): every piece of node state is touched only on
 * this thread; blocking work (pulls, libvirt calls, HTTP) runs on worker threads whose results
 * come back through agent_post_main. */
#include "agent_core.h"

#include <errno.h>
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

static void on_inotify(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct agent *ag = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ie = (struct inotify_event *)p;
            p += sizeof(*ie) + ie->len;
            if (ie->mask & IN_Q_OVERFLOW) {
                struct agent_instance *in;
                LIST_FOREACH(in, &ag->instances, link)
                agent_on_console(ag, in);
                continue;
            }
            struct agent_instance *in;
            bool found = false;
            LIST_FOREACH(in, &ag->instances, link)
            {
                if (in->con.wd == ie->wd) {
                    agent_on_console(ag, in);
                    found = true;
                    break;
                }
            }
            if (!found)
                agent_ctl_on_inotify(ag, ie->wd);
        }
    }
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct agent *ag = arg;
    log_info("signal %d: stopping (guests keep running)", (int)sig);
    __atomic_store_n(&ag->stopping, true, __ATOMIC_RELAXED);
    event_base_loopexit(ag->base, NULL);
}

static int64_t host_tsc_khz(void)
{
    /* Linux guests under TCG calibrate the TSC against the PIT and sometimes hang doing it;
     * telling them the host's frequency avoids that (this-machine.md). */
    char *s = NULL;
    size_t len;
    int64_t khz = 0;
    if (nubo_read_file("/sys/devices/system/cpu/cpu0/tsc_freq_khz", 64, &s, &len, NULL) == 0) {
        khz = strtoll(s, NULL, 10);
        free(s);
        if (khz > 0)
            return khz;
    }
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return 0;
    char line[256];
    while (fgets(line, sizeof(line), f)) {
        double mhz;
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1 || sscanf(line, "cpu MHz\t: %lf", &mhz) == 1) {
            khz = (int64_t)(mhz * 1000.0);
            break;
        }
    }
    fclose(f);
    return khz;
}

int agent_init(struct agent *ag, const struct agent_config *cfg, struct nubo_err *err)
{
    memset(ag, 0, sizeof(*ag));
    ag->cfg = *cfg;
    ag->inotify_fd = -1;
    LIST_INIT(&ag->instances);
    LIST_INIT(&ag->images);
    ag->ctl.assign_wd = -1;
    if (evthread_use_pthreads() < 0)
        return nubo_error(err, 0, "libevent without pthreads support");
    ag->base = event_base_new();
    if (!ag->base)
        return nubo_error(err, 0, "cannot create the event loop");
    if (agent_loop_init(ag, err) < 0)
        return -1;
    /* Lower floors reach the modules above them only through these hooks. */
    ag->events = (struct agent_events){
        .kick = agent_ctl_kick,
        .registry_cred = agent_ctl_registry_cred,
        .domain_event = agent_on_domain_event,
        .domains_resync = agent_resync_domains,
        .reconcile_all = agent_reconcile_all,
        .save = agent_state_save,
    };
    ag->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (ag->inotify_fd < 0)
        return nubo_error(err, errno, "inotify");
    ag->inotify_ev = event_new(ag->base, ag->inotify_fd, EV_READ | EV_PERSIST, on_inotify, ag);
    event_add(ag->inotify_ev, NULL);

    ag->accel = agent_accel_resolve(cfg->accel, NULL);
    ag->tsc_khz = host_tsc_khz();
    struct sysinfo si;
    if (sysinfo(&si) == 0)
        ag->memory_mb = (int64_t)((uint64_t)si.totalram * si.mem_unit >> 20) -
                        cfg->memory_reserve_mb;
    /* The warm slots' memory is the node's, held before any instance asks for it. */
    ag->memory_mb -= agent_slots_reserved_mb(cfg);
    if (ag->memory_mb < 64)
        ag->memory_mb = 64;
    ag->vcpus = sysconf(_SC_NPROCESSORS_ONLN) - cfg->vcpu_reserve;
    if (ag->vcpus < 1)
        ag->vcpus = 1;

    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/instances", cfg->state_dir);
    if (nubo_mkdir_p(p, 0700, err) < 0)
        return nubo_error_wrap(err, "state dir");
    /* Traversable, not listable: qemu (libvirt's qemu user) opens an instance's 0600 env file
     * inside (fw_cfg); everything else in the state dir stays the agent's. */
    if (chmod(cfg->state_dir, 0711) < 0 || chmod(p, 0711) < 0)
        return nubo_error(err, errno, "cannot set the mode of the state dir %s", cfg->state_dir);
    if (agent_images_init(ag, err) < 0 || agent_volumes_init(ag, err) < 0 ||
        agent_slots_init(ag, err) < 0)
        return -1;
    if (agent_state_load(ag, err) < 0)
        return -1;
    log_info("node %s (metro %s): %lld MiB, %lld vCPUs, accel %s", cfg->node_name, cfg->metro,
             (long long)ag->memory_mb, (long long)ag->vcpus, agent_accel_name(ag->accel));
    return 0;
}

int agent_run_loop(struct agent *ag)
{
    struct nubo_err err = {0};
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 3; i++) {
        ag->sig_ev[i] = evsignal_new(ag->base, sigs[i], on_signal, ag);
        event_add(ag->sig_ev[i], NULL);
    }
    if (agent_virt_start(ag, &err) < 0) {
        log_warnx("%s", err.msg);
        return -1;
    }
    if (agent_ctl_start(ag, &err) < 0) {
        log_warnx("%s", err.msg);
        return -1;
    }
    event_base_dispatch(ag->base);
    return 0;
}

void agent_fini(struct agent *ag)
{
    __atomic_store_n(&ag->stopping, true, __ATOMIC_RELAXED);
    agent_ctl_stop(ag);
    /* Let in-flight workers finish; they post back, so keep draining posts meanwhile. */
    for (int i = 0; i < 600; i++) {
        pthread_mutex_lock(&ag->work_mu);
        int w = ag->workers;
        pthread_mutex_unlock(&ag->work_mu);
        if (w == 0)
            break;
        if (ag->base)
            event_base_loop(ag->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(50000);
    }
    if (ag->base) {
        struct nubo_err err = {0};
        if (agent_state_save(ag, &err) < 0)
            log_warnx("%s", err.msg);
    }
    agent_virt_stop(ag);
    struct agent_instance *in;
    while ((in = LIST_FIRST(&ag->instances)))
        agent_instance_free(ag, in);
    agent_images_free(ag);
    agent_volumes_free(ag);
    agent_slots_free(ag);
    for (int i = 0; i < 3; i++)
        if (ag->sig_ev[i])
            event_free(ag->sig_ev[i]);
    if (ag->inotify_ev)
        event_free(ag->inotify_ev);
    if (ag->inotify_fd >= 0)
        close(ag->inotify_fd);
    agent_loop_fini(ag);
    if (ag->base)
        event_base_free(ag->base);
    ag->base = NULL;
}
