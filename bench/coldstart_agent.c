/* Cold start on a node with the image cached: nubo-agent's create -> running (NUBO_READY read
 * from the console) against, in the same run, qemu-system-x86_64 started directly on the same
 * guest and accelerator, `virsh create` of an equivalent domain, and the warm-slot take path
 * (agent/slots.c: a slot launched paused beforehand, the guest written into it, resumed).
 * Prints medians, p90s and ratios and where the agent's time went (domain prep /
 * virDomainCreateXML / guest).
 *   bench_coldstart_agent [--runs N] [--kernel F] [--initrd F] [--kernel-args "..."]
 *                         [--append APP_ARG] [--mem MiB] [--uri qemu:///system] [--burst N]
 * Default guest: the agent's tiny PVH test guest. Needs root and a running libvirtd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "agent_core.h"
#include "log.h"

extern char **environ;

#define MAXRUNS 100

struct opts {
    int runs;
    const char *kernel, *initrd, *append, *uri, *kargs;
    int mem;
    int burst;
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void sort_copy(int64_t *t, const int64_t *v, int n)
{
    memcpy(t, v, (size_t)n * sizeof(*v));
    qsort(t, (size_t)n, sizeof(*t), cmp_i64);
}

static int64_t median(int64_t *v, int n)
{
    int64_t t[MAXRUNS];
    sort_copy(t, v, n);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* nearest-rank 90th percentile */
static int64_t p90(int64_t *v, int n)
{
    int64_t t[MAXRUNS];
    sort_copy(t, v, n);
    int k = (9 * n + 9) / 10;
    return t[(k < 1 ? 1 : k) - 1];
}

static int copy_file(const char *from, const char *to)
{
    char *data;
    size_t len;
    struct nubo_err err = {0};
    if (nubo_read_file(from, 512u << 20, &data, &len, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return -1;
    }
    int rc = nubo_write_file_atomic(to, data, len, 0644, &err);
    free(data);
    if (rc < 0)
        fprintf(stderr, "bench: %s\n", err.msg);
    return rc;
}

/* ---- baseline 1: qemu directly, console on a pipe ---- */
static int64_t run_qemu(const struct opts *o, const char *cmdline)
{
    int p[2];
    if (pipe(p) < 0)
        return -1;
    char mem[16];
    snprintf(mem, sizeof(mem), "%d", o->mem);
    const char *argv[32];
    int n = 0;
    argv[n++] = "qemu-system-x86_64";
    argv[n++] = "-M";
    argv[n++] = "microvm";
    argv[n++] = "-accel";
    argv[n++] = "tcg";
    argv[n++] = "-nodefaults";
    argv[n++] = "-no-user-config";
    argv[n++] = "-display";
    argv[n++] = "none";
    argv[n++] = "-serial";
    argv[n++] = "stdio";
    argv[n++] = "-no-reboot";
    argv[n++] = "-m";
    argv[n++] = mem;
    argv[n++] = "-kernel";
    argv[n++] = o->kernel;
    if (o->initrd) {
        argv[n++] = "-initrd";
        argv[n++] = o->initrd;
    }
    argv[n++] = "-append";
    argv[n++] = cmdline;
    argv[n] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    pid_t pid;
    int64_t t0 = nubo_mono_us();
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        return -1;
    }
    char buf[8192];
    size_t have = 0;
    int64_t t1 = -1;
    while (nubo_mono_us() - t0 < 120000000) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        if (poll(&pf, 1, 1000) <= 0)
            continue;
        ssize_t r = read(p[0], buf + have, sizeof(buf) - 1 - have);
        if (r <= 0)
            break;
        have += (size_t)r;
        buf[have] = '\0';
        if (strstr(buf, "NUBO_READY")) {
            t1 = nubo_mono_us();
            break;
        }
        if (have > sizeof(buf) / 2) { /* keep the tail */
            memmove(buf, buf + have - 64, 64);
            have = 64;
        }
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    close(p[0]);
    return t1 < 0 ? -1 : t1 - t0;
}

/* ---- baseline 2: virsh create of the same domain XML, READY read from its console file ---- */
static int run_cmd(const char *const argv[])
{
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static bool file_has_ready(const char *path)
{
    char *data = NULL;
    size_t len;
    if (nubo_read_file(path, 16u << 20, &data, &len, NULL) < 0)
        return false;
    bool r = strstr(data, "NUBO_READY") != NULL;
    free(data);
    return r;
}

/* NUBO_READY in CONSOLE (inotify IFD on its directory): when it appeared, or -1. A child PID
 * (> 0) is reaped meanwhile if it exits. */
static int64_t wait_ready(int ifd, const char *console, int64_t t0, pid_t pid)
{
    bool reaped = pid <= 0;
    while (nubo_mono_us() - t0 < 120000000) {
        struct pollfd pf = {.fd = ifd, .events = POLLIN};
        int pr = poll(&pf, 1, 20);
        if (pr > 0) {
            char b[4096];
            if (read(ifd, b, sizeof(b)) < 0)
                break;
        }
        if (file_has_ready(console))
            return nubo_mono_us();
        if (!reaped && waitpid(pid, NULL, WNOHANG) == pid)
            reaped = true;
    }
    return -1;
}

static int64_t run_virsh(const struct opts *o, const char *dir, const char *cmdline, int i)
{
    char uuid[40], console[600], xmlp[600];
    snprintf(uuid, sizeof(uuid), "bbbbbbbb-0000-4000-8000-%012d", i);
    snprintf(console, sizeof(console), "%s/virsh-%d.log", dir, i);
    snprintf(xmlp, sizeof(xmlp), "%s/virsh-%d.xml", dir, i);
    struct agent_domain_spec s = {.uuid = uuid,
                                  .node = "bench",
                                  .kernel = o->kernel,
                                  .initrd = o->initrd,
                                  .cmdline = cmdline,
                                  .console_path = console,
                                  .memory_mb = o->mem,
                                  .vcpus = 1,
                                  .accel = AGENT_ACCEL_TCG};
    char *xml = agent_domain_xml(&s);
    if (!xml || nubo_write_file_atomic(xmlp, xml, strlen(xml), 0644, NULL) < 0) {
        free(xml);
        return -1;
    }
    free(xml);
    int ifd = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(ifd, dir, IN_MODIFY | IN_CREATE);
    const char *argv[] = {"virsh", "-q", "-c", o->uri, "create", xmlp, NULL};
    int64_t t0 = nubo_mono_us(), t1;
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    if (posix_spawnp(&pid, "virsh", &fa, NULL, (char *const *)argv, environ) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        close(ifd);
        return -1;
    }
    posix_spawn_file_actions_destroy(&fa);
    t1 = wait_ready(ifd, console, t0, pid);
    waitpid(pid, NULL, 0);
    close(ifd);
    const char *d[] = {"virsh", "-q", "-c", o->uri, "destroy", uuid, NULL};
    run_cmd(d);
    return t1 < 0 ? -1 : t1 - t0;
}

/* ---- the warm-slot take path (agent/slots.c), through libvirt on the agent's connection:
 * the slot is launched paused before the clock starts (that is what a pool does ahead of
 * requests); timed is what a request then costs: build the guest's RAM image from the cached
 * kernel, write it into the paused qemu, virDomainResume, NUBO_READY on its console. ---- */
struct slot {
    virDomainPtr dom;
    struct agent_slot_ram ram;
    char uuid[40], console[600];
    int64_t launch_us;
};

static int slot_launch(virConnectPtr conn, const struct opts *o, const char *dir, const char *fw,
                       int i, struct slot *sl)
{
    snprintf(sl->uuid, sizeof(sl->uuid), "cccccccc-0000-4000-8000-%012d", i);
    snprintf(sl->console, sizeof(sl->console), "%s/slot-%d.log", dir, i);
    struct agent_domain_spec sp = {.uuid = sl->uuid,
                                   .node = "bench",
                                   .kernel = "",
                                   .console_path = sl->console,
                                   .firmware = fw,
                                   .memory_mb = o->mem,
                                   .vcpus = 1,
                                   .accel = AGENT_ACCEL_TCG};
    char *xml = agent_domain_xml(&sp);
    int64_t t0 = nubo_mono_us();
    sl->dom = xml ? virDomainCreateXML(conn, xml, VIR_DOMAIN_START_PAUSED) : NULL;
    free(xml);
    if (!sl->dom) {
        fprintf(stderr, "bench: slot launch: %s\n", virGetLastErrorMessage());
        return -1;
    }
    struct nubo_err err = {0};
    pid_t pid = agent_slot_qemu_pid(sl->uuid);
    if (pid <= 0 || agent_slot_ram_find(pid, o->mem, &sl->ram, &err) < 0) {
        fprintf(stderr, "bench: slot %s: no qemu or guest RAM: %s\n", sl->uuid, err.msg);
        virDomainDestroy(sl->dom);
        virDomainFree(sl->dom);
        sl->dom = NULL;
        return -1;
    }
    sl->launch_us = nubo_mono_us() - t0;
    return 0;
}

static void slot_end(struct slot *sl)
{
    if (!sl->dom)
        return;
    virDomainDestroy(sl->dom);
    virDomainFree(sl->dom);
    sl->dom = NULL;
}

/* Take a launched slot; returns request -> NUBO_READY in us, or -1. */
static int64_t slot_take(struct slot *sl, const struct opts *o, const char *dir,
                         const char *cmdline, int64_t *fill_us)
{
    int ifd = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(ifd, dir, IN_MODIFY | IN_CREATE);
    int64_t t0 = nubo_mono_us(), t1 = -1;
    struct agent_slot_image im;
    struct nubo_err err = {0};
    if (agent_slot_image_build(o->kernel, cmdline, o->mem, &im, &err) < 0 ||
        agent_slot_fill(&sl->ram, &im, &err) < 0)
        fprintf(stderr, "bench: slot take: %s\n", err.msg);
    else {
        *fill_us = nubo_mono_us() - t0;
        if (virDomainResume(sl->dom) < 0)
            fprintf(stderr, "bench: slot resume: %s\n", virGetLastErrorMessage());
        else
            t1 = wait_ready(ifd, sl->console, t0, 0);
    }
    agent_slot_image_free(&im);
    close(ifd);
    return t1 < 0 ? -1 : t1 - t0;
}

/* ---- a burst: N guests asked for at once, through libvirt (N parallel virDomainCreateXML,
 * as the agent's workers call it) or from N slots launched beforehand. Seconds until every
 * guest printed NUBO_READY. ---- */
#define BURST_MAX 50
struct burst_job {
    virConnectPtr conn;
    char *xml;
    unsigned flags;
    virDomainPtr dom;
};

static void *burst_create(void *arg)
{
    struct burst_job *j = arg;
    j->dom = virDomainCreateXML(j->conn, j->xml, j->flags);
    return NULL;
}

static double run_burst(virConnectPtr conn, const struct opts *o, const char *dir, const char *fw,
                        const char *cmdline, int n, bool slots)
{
    struct burst_job jobs[BURST_MAX] = {{0}};
    pthread_t th[BURST_MAX];
    char consoles[BURST_MAX][600];
    struct agent_slot_ram ram[BURST_MAX];
    int ifd = inotify_init1(IN_CLOEXEC);
    inotify_add_watch(ifd, dir, IN_MODIFY | IN_CREATE);
    for (int i = 0; i < n; i++) {
        char uuid[40];
        snprintf(uuid, sizeof(uuid), "dddddddd-000%d-4000-8000-%012d", slots, i);
        snprintf(consoles[i], sizeof(consoles[i]), "%s/burst-%d-%d.log", dir, slots, i);
        struct agent_domain_spec sp = {.uuid = uuid,
                                       .node = "bench",
                                       .kernel = slots ? "" : o->kernel,
                                       .cmdline = cmdline,
                                       .console_path = consoles[i],
                                       .firmware = slots ? fw : NULL,
                                       .memory_mb = o->mem,
                                       .vcpus = 1,
                                       .accel = AGENT_ACCEL_TCG};
        jobs[i] = (struct burst_job){conn, agent_domain_xml(&sp), slots ? VIR_DOMAIN_START_PAUSED : 0,
                                     NULL};
    }
    int64_t t0 = nubo_mono_us();
    if (slots) { /* the pool, filled before the burst: not timed */
        for (int i = 0; i < n; i++)
            pthread_create(&th[i], NULL, burst_create, &jobs[i]);
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
        t0 = nubo_mono_us();
        for (int i = 0; i < n; i++) {
            struct agent_slot_image im;
            struct nubo_err err = {0};
            pid_t pid = jobs[i].dom ? agent_slot_qemu_pid(virDomainGetName(jobs[i].dom)) : -1;
            if (pid <= 0 || agent_slot_ram_find(pid, o->mem, &ram[i], &err) < 0 ||
                agent_slot_image_build(o->kernel, cmdline, o->mem, &im, &err) < 0 ||
                agent_slot_fill(&ram[i], &im, &err) < 0 || virDomainResume(jobs[i].dom) < 0)
                fprintf(stderr, "bench: burst slot %d: %s\n", i, err.msg);
            agent_slot_image_free(&im);
        }
    } else {
        for (int i = 0; i < n; i++)
            pthread_create(&th[i], NULL, burst_create, &jobs[i]);
        for (int i = 0; i < n; i++)
            pthread_join(th[i], NULL);
    }
    int ready = 0;
    bool done[BURST_MAX] = {false};
    while (ready < n && nubo_mono_us() - t0 < 300000000) {
        struct pollfd pf = {.fd = ifd, .events = POLLIN};
        if (poll(&pf, 1, 20) > 0) {
            char b[4096];
            if (read(ifd, b, sizeof(b)) < 0)
                break;
        }
        for (int i = 0; i < n; i++)
            if (!done[i] && file_has_ready(consoles[i])) {
                done[i] = true;
                ready++;
            }
    }
    int64_t t1 = nubo_mono_us();
    close(ifd);
    for (int i = 0; i < n; i++) {
        if (jobs[i].dom) {
            virDomainDestroy(jobs[i].dom);
            virDomainFree(jobs[i].dom);
        }
        free(jobs[i].xml);
    }
    if (ready < n) {
        fprintf(stderr, "bench: burst (%s): %d of %d ready\n", slots ? "slots" : "libvirt", ready,
                n);
        return -1;
    }
    return (t1 - t0) / 1e6;
}

/* ---- nubo-agent, in process: the desired set changes, the state becomes running ---- */
static void spin_until(struct agent *ag, struct agent_instance *in, enum nubo_state want,
                       int64_t limit_us)
{
    int64_t end = nubo_mono_us() + limit_us;
    while (in->r.state != want && nubo_mono_us() < end) {
        event_base_loop(ag->base, EVLOOP_ONCE);
        /* a start that ended without reaching running (guest exited, error) */
        if (want == NUBO_STATE_RUNNING && in->r.state == NUBO_STATE_STOPPED &&
            in->op == AGENT_OP_NONE && !in->domain && in->r.start_count > 0 &&
            in->r.stopped_at_us > 0)
            break;
    }
}

static void set_desired(struct agent *ag, struct nubo_assignment *a, enum nubo_desired d,
                        int64_t seq, bool force)
{
    a->desired_state = d;
    a->start_seq = seq;
    a->stop_force = force;
    struct nubo_watch_resp w = {.version = seq * 2 + (d == NUBO_DESIRED_STOPPED),
                                .assignments = a,
                                .n_assignments = 1};
    agent_apply_assignments(ag, &w);
}

static void wake(evutil_socket_t fd, short w, void *arg)
{
    (void)fd;
    (void)w;
    (void)arg;
}

int main(int argc, char **argv)
{
    struct opts o = {.runs = 10, .uri = "qemu:///system", .mem = 64};
    static char guest_default[1024];
    static const struct option lo[] = {{"runs", required_argument, NULL, 'n'},
                                       {"kernel", required_argument, NULL, 'k'},
                                       {"initrd", required_argument, NULL, 'i'},
                                       {"append", required_argument, NULL, 'a'},
                                       {"kernel-args", required_argument, NULL, 'K'},
                                       {"mem", required_argument, NULL, 'm'},
                                       {"uri", required_argument, NULL, 'u'},
                                       {"burst", required_argument, NULL, 'b'},
                                       {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': o.runs = atoi(optarg); break;
        case 'k': o.kernel = optarg; break;
        case 'i': o.initrd = optarg; break;
        case 'a': o.append = optarg; break;
        case 'K': o.kargs = optarg; break;
        case 'm': o.mem = atoi(optarg); break;
        case 'u': o.uri = optarg; break;
        case 'b': o.burst = atoi(optarg); break;
        default: return 2;
        }
    }
    if (o.runs < 1 || o.runs > MAXRUNS)
        o.runs = 10;
    /* the agent's test guest and slot firmware next to this binary's build tree */
    char self[512];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[sn > 0 ? sn : 0] = '\0';
    char *slash = strrchr(self, '/');
    if (slash)
        *slash = '\0';
    if (!o.kernel) {
        snprintf(guest_default, sizeof(guest_default), "%s/../agent/testguest/testguest", self);
        o.kernel = guest_default;
    }
    char fw_built[700];
    snprintf(fw_built, sizeof(fw_built), "%s/../agent/slotfw/slotfw.bin", self);
    if (access(o.kernel, R_OK) != 0) {
        fprintf(stderr, "bench: guest kernel %s not found (build agent_testguest or pass "
                        "--kernel)\n", o.kernel);
        return 77;
    }
    log_init("bench", NUBO_LOG_ERROR);
    char dir[] = "/tmp/nubo-bench-agent.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    chmod(dir, 0755);
    /* The guest's kernel (and initrd) stay where they are for the baselines; the agent gets
     * the same bytes as a cached image. */
    const char *hex = "be4c0000000000000000000000000000000000000000000000000000000000be";
    char p[1200];
    snprintf(p, sizeof(p), "%s/cache/images/%s", dir, hex);
    struct nubo_err err = {0};
    if (nubo_mkdir_p(p, 0755, &err) < 0) {
        fprintf(stderr, "bench: %s\n", err.msg);
        return 1;
    }
    char kp[1300], ip[1300], mp[1300];
    snprintf(kp, sizeof(kp), "%s/kernel", p);
    snprintf(ip, sizeof(ip), "%s/initrd", p);
    snprintf(mp, sizeof(mp), "%s/meta.json", p);
    if (copy_file(o.kernel, kp) < 0 || (o.initrd && copy_file(o.initrd, ip) < 0))
        return 1;
    /* all three boot the very same files */
    const char *shown_kernel = o.kernel;
    o.kernel = kp;
    if (o.initrd)
        o.initrd = ip;
    /* Slots take PVH kernels without an initrd (slots.c); the firmware must be readable by
     * libvirt's qemu user, so it goes beside the cached kernel. */
    struct agent_kernel_info ki;
    char fw[1300];
    snprintf(fw, sizeof(fw), "%s/slotfw.bin", p);
    bool slots = !o.initrd && agent_kernel_probe(kp, &ki, NULL) == 0 && ki.boot == AGENT_BOOT_PVH &&
                 access(fw_built, R_OK) == 0 && copy_file(fw_built, fw) == 0;
    char label[1200];
    snprintf(label, sizeof(label), "org.nubo.kernel.args=%s", o.kargs ? o.kargs : "");
    json_t *mj = json_pack("{s:b, s:[], s:[], s:[s], s:i}", "has_initrd", o.initrd != NULL, "cmd",
                           "env", "labels", label, "size_bytes", 1);
    char *meta = json_dumps(mj, JSON_COMPACT);
    json_decref(mj);
    if (!meta || nubo_write_file_atomic(mp, meta, strlen(meta), 0644, &err) < 0)
        return 1;
    free(meta);

    struct agent_config cfg;
    agent_config_defaults(&cfg);
    snprintf(cfg.libvirt_uri, sizeof(cfg.libvirt_uri), "%s", o.uri);
    snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s/state", dir);
    snprintf(cfg.cache_dir, sizeof(cfg.cache_dir), "%s/cache", dir);
    snprintf(cfg.node_name, sizeof(cfg.node_name), "bench");
    cfg.accel = AGENT_ACCEL_TCG;
    static struct agent ag;
    if (agent_init(&ag, &cfg, &err) < 0 || agent_virt_start(&ag, &err) < 0 || !ag.virt.conn) {
        fprintf(stderr, "bench: agent: %s (is libvirtd running?)\n", err.msg[0] ? err.msg : "no libvirt");
        return 77;
    }
    /* keep the loop from sleeping forever between events */
    struct event *tick = event_new(ag.base, -1, EV_PERSIST, wake, NULL);
    struct timeval tv = {0, 100000}; /* only bounds the waits; events wake the loop */
    event_add(tick, &tv);

    struct nubo_assignment a = {0};
    snprintf(a.uuid, sizeof(a.uuid), "bbbbbbbb-1111-4000-8000-000000000001");
    snprintf(a.name, sizeof(a.name), "bench");
    snprintf(a.image, sizeof(a.image), "bench/guest@sha256:%s", hex);
    a.memory_mb = o.mem;
    a.vcpus = 1;
    /* --append "a b c": the app's args, split on spaces */
    char *argbuf = strdup(o.append ? o.append : "");
    char *args[64];
    size_t nargs = 0;
    for (char *save = NULL, *t = strtok_r(argbuf, " ", &save); t && nargs < 64;
         t = strtok_r(NULL, " ", &save))
        args[nargs++] = t;
    a.args = args;
    a.n_args = nargs;
    a.restart_policy = NUBO_RESTART_NEVER;
    snprintf(a.private_ip, sizeof(a.private_ip), "10.99.0.2");
    a.prefix = 24;
    snprintf(a.gateway, sizeof(a.gateway), "10.99.0.1");
    snprintf(a.dns, sizeof(a.dns), "10.99.0.1");

    /* the exact command line the agent gives the guest, for the baselines */
    struct agent_image img0 = {0};
    char *labels0[2] = {label, NULL};
    img0.labels = labels0;
    char *cmdline = agent_build_cmdline(&a, &img0, ag.tsc_khz);

    int64_t ag_total[MAXRUNS], ag_boot[MAXRUNS], ag_vmm[MAXRUNS], ag_guest[MAXRUNS],
        ag_dom[MAXRUNS], q[MAXRUNS], v[MAXRUNS], st[MAXRUNS], sfill[MAXRUNS], slaunch[MAXRUNS];
    int n_ok = 0;
    printf("cold start, image cached, guest %s%s%s, %d MiB, TCG, %d runs each (interleaved)\n",
           shown_kernel, o.initrd ? " + initrd" : "", "", o.mem, o.runs);
    for (int i = 0; i < o.runs; i++) {
        /* rotate the order so none of the three always follows another's teardown */
        bool agent_ok = true;
        st[i] = sfill[i] = slaunch[i] = 0;
        for (int k = 0; k < 4; k++) {
            int which = (i + k) % 4;
            if (which == 3) {
                if (!slots)
                    continue;
                struct slot sl = {0};
                st[i] = -1;
                if (slot_launch(ag.virt.conn, &o, dir, fw, i, &sl) == 0) {
                    slaunch[i] = sl.launch_us;
                    st[i] = slot_take(&sl, &o, dir, cmdline, &sfill[i]);
                }
                slot_end(&sl);
                continue;
            }
            if (which == 1) {
                q[i] = run_qemu(&o, cmdline);
                continue;
            }
            if (which == 2) {
                v[i] = run_virsh(&o, dir, cmdline, i);
                continue;
            }
            int64_t t0 = nubo_mono_us();
            set_desired(&ag, &a, NUBO_DESIRED_RUNNING, i + 1, false);
            struct agent_instance *in = agent_instance_find(&ag, a.uuid);
            in->r.stopped_at_us = 0;
            spin_until(&ag, in, NUBO_STATE_RUNNING, 120000000);
            int64_t t1 = nubo_mono_us();
            if (in->r.state != NUBO_STATE_RUNNING) {
                fprintf(stderr, "bench: agent run %d did not reach running (state %s): %s\n", i,
                        nubo_state_name(in->r.state), in->msg);
                agent_ok = false;
                break;
            }
            ag_total[i] = t1 - t0;
            /* libvirt's start call may still be returning: wait for it (not timed) to read
             * the phase split */
            int64_t pend = nubo_mono_us() + 30000000;
            while (in->op == AGENT_OP_CREATE && nubo_mono_us() < pend)
                event_base_loop(ag.base, EVLOOP_ONCE);
            ag_boot[i] = in->r.boot_time_us;
            ag_vmm[i] = in->r.phases.vmm_us;
            ag_guest[i] = in->r.phases.guest_us;
            ag_dom[i] = in->r.phases.domain_us;
            set_desired(&ag, &a, NUBO_DESIRED_STOPPED, i + 1, true);
            spin_until(&ag, in, NUBO_STATE_STOPPED, 60000000);
        }
        if (!agent_ok)
            break;
        if (q[i] < 0 || v[i] < 0 || st[i] < 0) {
            fprintf(stderr, "bench: run %d failed (qemu %lld, virsh %lld, slot %lld)\n", i,
                    (long long)q[i], (long long)v[i], (long long)st[i]);
            break;
        }
        if (getenv("NUBO_BENCH_VERBOSE"))
            printf("  run %d: agent %.1f ms (create call %.1f), qemu %.1f ms, virsh %.1f ms, "
                   "slot take %.1f ms\n",
                   i, ag_total[i] / 1000.0, ag_vmm[i] / 1000.0, q[i] / 1000.0, v[i] / 1000.0,
                   st[i] / 1000.0);
        n_ok++;
    }
    int rc = 0;
    if (n_ok == 0) {
        fprintf(stderr, "bench: no complete run\n");
        rc = 1;
    } else {
        int64_t mt = median(ag_total, n_ok), mb = median(ag_boot, n_ok), mq = median(q, n_ok),
                mv = median(v, n_ok), ms = median(st, n_ok);
        printf("  %-46s %8s %8s\n", "", "median", "p90");
        printf("  %-46s %8.1f %8.1f ms\n", "qemu-system-x86_64 direct (spawn -> READY)",
               mq / 1000.0, p90(q, n_ok) / 1000.0);
        printf("  %-46s %8.1f %8.1f ms\n", "virsh create (spawn -> READY)", mv / 1000.0,
               p90(v, n_ok) / 1000.0);
        printf("  %-46s %8.1f %8.1f ms\n", "nubo-agent create -> running (no slot)", mt / 1000.0,
               p90(ag_total, n_ok) / 1000.0);
        printf("    boot_time_us (virDomainCreateXML -> READY) median %8.1f ms\n", mb / 1000.0);
        printf("    phases: domain prep %.1f ms, virDomainCreateXML %.1f ms, guest %.1f ms\n",
               median(ag_dom, n_ok) / 1000.0, median(ag_vmm, n_ok) / 1000.0,
               median(ag_guest, n_ok) / 1000.0);
        if (slots) {
            printf("  %-46s %8.1f %8.1f ms\n", "slot take (fill RAM + resume -> READY)",
                   ms / 1000.0, p90(st, n_ok) / 1000.0);
            printf("    of which building + writing the guest's RAM %.2f ms; the slot's launch "
                   "(paused, before the request) %.1f ms\n",
                   median(sfill, n_ok) / 1000.0, median(slaunch, n_ok) / 1000.0);
        } else
            printf("  slot take: not measured (the guest is not a PVH kernel without initrd)\n");
        printf("  ratio nubo-agent / qemu direct   = %.2f  (goal <= 1.5)\n", (double)mt / mq);
        printf("  ratio nubo-agent / virsh create  = %.2f\n", (double)mt / mv);
        if (slots)
            printf("  ratio slot take / qemu direct    = %.2f  (goal <= 1.5)\n", (double)ms / mq);
        printf("  libvirt cost over bare qemu      = %.1f ms\n", (mt - mq) / 1000.0);
        if (o.burst > 0 && o.burst <= BURST_MAX) {
            double bl = run_burst(ag.virt.conn, &o, dir, fw, cmdline, o.burst, false);
            double bs = slots ? run_burst(ag.virt.conn, &o, dir, fw, cmdline, o.burst, true) : -1;
            if (bl > 0)
                printf("  burst of %d at once through libvirt (parallel creates): all ready after "
                       "%.2f s = %.1f guests/s\n", o.burst, bl, o.burst / bl);
            if (bs > 0)
                printf("  burst of %d at once from %d warm slots: all ready after %.2f s = %.1f "
                       "guests/s\n", o.burst, o.burst, bs, o.burst / bs);
        }
    }
    free(cmdline);
    free(argbuf);
    struct agent_instance *in = agent_instance_find(&ag, a.uuid);
    if (in) {
        struct nubo_watch_resp w = {.version = 999999};
        agent_apply_assignments(&ag, &w);
        int64_t end = nubo_mono_us() + 10000000;
        while (agent_instance_find(&ag, a.uuid) && nubo_mono_us() < end)
            event_base_loop(ag.base, EVLOOP_ONCE);
    }
    event_free(tick);
    agent_fini(&ag);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench: could not remove %s\n", dir);
    return rc;
}
