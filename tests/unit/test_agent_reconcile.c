/* The agent's reconcile loop and event handling against libvirt's test driver
 * (test:///default, in-process): desired set -> domain created; console marker -> running;
 * guest exit / crash / outside destroy -> stop_reason, exit_code and restart policy; user
 * stop, force stop, delete; re-adoption of a running domain by a second agent. No qemu runs:
 * the test writes the console lines a guest would print. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "agent_core.h"
#include "log.h"

#define UUID1 "11111111-2222-4333-8444-555555555555"
#define HEX "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct fx {
    char dir[64];
    struct agent_config cfg;
    struct agent ag;
    virConnectPtr peek; /* a second connection: the "outside world" */
};

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void append(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
    close(fd);
}

static void spin(struct agent *ag, int ms)
{
    int64_t end = nubo_mono_us() + ms * 1000;
    while (nubo_mono_us() < end) {
        event_base_loop(ag->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        usleep(1000);
    }
}

#define WAIT_FOR(ag, cond, ms)                                                                   \
    do {                                                                                         \
        int64_t end_ = nubo_mono_us() + (ms) * 1000;                                             \
        while (!(cond) && nubo_mono_us() < end_) {                                               \
            event_base_loop((ag)->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);                          \
            usleep(1000);                                                                        \
        }                                                                                        \
        assert_true(cond);                                                                       \
    } while (0)

static void agent_up(struct fx *f)
{
    struct nubo_err err = {0};
    assert_int_equal(agent_init(&f->ag, &f->cfg, &err), 0);
    assert_int_equal(agent_virt_start(&f->ag, &err), 0);
    assert_non_null(f->ag.virt.conn);
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_agent_rec.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    agent_config_defaults(&f->cfg);
    snprintf(f->cfg.libvirt_uri, sizeof(f->cfg.libvirt_uri), "test:///default");
    snprintf(f->cfg.state_dir, sizeof(f->cfg.state_dir), "%s/state", f->dir);
    snprintf(f->cfg.cache_dir, sizeof(f->cfg.cache_dir), "%s/cache", f->dir);
    snprintf(f->cfg.node_name, sizeof(f->cfg.node_name), "unit");
    f->cfg.accel = AGENT_ACCEL_TCG;
    f->cfg.shutdown_timeout_ms = 200;
    /* a cached image, so no registry is needed */
    char p[256];
    snprintf(p, sizeof(p), "%s/cache/images/" HEX, f->dir);
    struct nubo_err err = {0};
    assert_int_equal(nubo_mkdir_p(p, 0755, &err), 0);
    char k[300];
    snprintf(k, sizeof(k), "%s/kernel", p);
    /* A Linux boot header (so the agent would boot it) that speaks our console protocol. */
    char kimg[0x300] = {0};
    memcpy(kimg + 0x202, "HdrS", 4);
    memcpy(kimg + 0x280, "NUBO_READY", 10);
    FILE *kf = fopen(k, "w");
    assert_non_null(kf);
    assert_int_equal(fwrite(kimg, 1, sizeof(kimg), kf), sizeof(kimg));
    fclose(kf);
    snprintf(k, sizeof(k), "%s/meta.json", p);
    write_file(k, "{\"has_initrd\":false,\"cmd\":[\"/app\"],\"env\":[],\"labels\":[],"
                  "\"size_bytes\":768}");
    f->peek = virConnectOpen("test:///default");
    assert_non_null(f->peek);
    agent_up(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    agent_fini(&f->ag);
    /* leave the shared test driver clean for the next test */
    virDomainPtr d = virDomainLookupByName(f->peek, UUID1);
    if (d) {
        virDomainDestroy(d);
        virDomainFree(d);
    }
    virConnectClose(f->peek);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static int64_t g_drain_ms;

static void assign(struct agent *ag, int64_t version, const char *desired, int64_t start_seq,
                   const char *policy, bool force)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "{\"version\":%lld,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a1\","
             "\"image\":\"acme/app@sha256:" HEX "\",\"memory_mb\":64,\"vcpus\":1,\"args\":[],"
             "\"env\":{},\"desired_state\":\"%s\",\"restart_policy\":\"%s\","
             "\"private_ip\":\"10.9.0.5\",\"prefix\":24,\"gateway\":\"10.9.0.1\","
             "\"dns\":\"10.9.0.1\",\"service_ports\":[],\"start_seq\":%lld,"
             "\"stop\":{\"force\":%s,\"drain_timeout_ms\":%lld}}]}",
             (long long)version, desired, policy, (long long)start_seq, force ? "true" : "false",
             (long long)g_drain_ms);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    struct nubo_watch_resp w = {0};
    struct nubo_err err = {0};
    assert_int_equal(nubo_watch_resp_decode(j, &w, &err), 0);
    agent_apply_assignments(ag, &w);
    nubo_watch_resp_free(&w);
    json_decref(j);
}

static void assign_none(struct agent *ag, int64_t version)
{
    struct nubo_watch_resp w = {.version = version};
    agent_apply_assignments(ag, &w);
}

static void console(struct fx *f, const char *line)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/state/instances/" UUID1 "/console.log", f->dir);
    append(p, line);
}

static bool domain_active(struct fx *f)
{
    virDomainPtr d = virDomainLookupByName(f->peek, UUID1);
    if (!d)
        return false;
    bool a = virDomainIsActive(d) == 1;
    virDomainFree(d);
    return a;
}

static void destroy_outside(struct fx *f)
{
    virDomainPtr d = virDomainLookupByName(f->peek, UUID1);
    assert_non_null(d);
    assert_int_equal(virDomainDestroy(d), 0);
    virDomainFree(d);
}

static void test_start_ready_exit_restart(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "on-failure", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    WAIT_FOR(ag, in->domain, 5000);
    assert_true(domain_active(f));
    assert_int_equal(in->r.state, NUBO_STATE_STARTING);
    assert_int_equal(in->r.start_count, 1);
    console(f, "hello\nNUBO_READY\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    assert_true(in->r.boot_time_us > 0);
    assert_true(in->r.phases.vmm_us > 0);
    assert_true(in->r.started_at_us > 0);

    /* the app exits 3: reported, and on-failure restarts it at once (attempt 1 = immediate) */
    console(f, "NUBO_EXIT 3\n");
    spin(ag, 20);
    destroy_outside(f);
    WAIT_FOR(ag, in->r.restart_count == 1, 5000);
    WAIT_FOR(ag, in->domain, 5000);
    assert_int_equal(in->r.start_count, 2);
    assert_int_equal(in->r.restart_attempt, 1);

    /* now it crashes: no NUBO_EXIT; the next restart waits 5 s (attempt 2) */
    console(f, "NUBO_READY\nNUBO_CRASH null pointer\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    destroy_outside(f);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    assert_int_equal(in->r.stop_reason, NUBO_STOP_KERNEL);
    assert_false(in->r.has_exit_code);
    assert_non_null(strstr(in->msg, "null pointer"));
    assert_int_equal(in->r.restart_attempt, 2);
    assert_true(in->r.restart_next_at_us > nubo_now_us() + 3000000);
    assert_false(in->domain);

    /* a user stop aborts the pending restart */
    assign(ag, 2, "stopped", 1, "on-failure", false);
    assert_int_equal(in->r.restart_next_at_us, 0);
    spin(ag, 50);
    assert_false(in->domain);
    /* and a user start (start_seq bump) starts a fresh sequence */
    assign(ag, 3, "running", 2, "on-failure", false);
    WAIT_FOR(ag, in->domain, 5000);
    assert_int_equal(in->r.restart_attempt, 0);
    assert_int_equal(in->r.start_seq, 2);
}

static void test_exit_code_reported(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    console(f, "NUBO_READY\nNUBO_EXIT 0\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    destroy_outside(f);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    assert_int_equal(in->r.stop_reason, NUBO_STOP_APP | NUBO_STOP_KERNEL);
    assert_true(in->r.has_exit_code);
    assert_int_equal(in->r.exit_code, 0);
    spin(ag, 100);
    assert_false(in->domain); /* never: stays stopped */
    assert_int_equal(in->r.restart_count, 0);
}

static void test_user_stop_graceful_then_destroy(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "always", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    console(f, "NUBO_READY\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    /* the test driver's shutdown ends the domain at once; either way it must end as a user
     * stop, not restart (policy always only covers stops from inside) */
    assign(ag, 2, "stopped", 1, "always", false);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    assert_true(in->r.stop_reason & NUBO_STOP_USER);
    assert_true(in->r.stop_reason & NUBO_STOP_PLATFORM);
    assert_false(in->r.stop_reason & NUBO_STOP_FORCED);
    spin(ag, 100);
    assert_false(domain_active(f));
    assert_int_equal(in->r.restart_count, 0);
}

static void test_drain_then_stop(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    console(f, "NUBO_READY\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    g_drain_ms = 300;
    assign(ag, 2, "stopped", 1, "never", false);
    g_drain_ms = 0;
    assert_int_equal(in->r.state, NUBO_STATE_DRAINING);
    spin(ag, 100);
    assert_int_equal(in->r.state, NUBO_STATE_DRAINING); /* still draining within the timeout */
    assert_true(domain_active(f));
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    assert_false(domain_active(f));
    assert_true(in->r.stop_reason & NUBO_STOP_USER);
}

static void test_stop_in_progress_survives_agent_restart(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    g_drain_ms = 1000;
    assign(ag, 2, "stopped", 1, "never", false);
    g_drain_ms = 0;
    assert_int_equal(in->r.state, NUBO_STATE_DRAINING);
    spin(ag, 20);
    agent_fini(ag); /* dies while draining */
    memset(ag, 0, sizeof(*ag));
    agent_up(f);
    in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    assert_true(in->domain);
    /* the stop is issued again from the persisted desired set, drain and all */
    assert_int_equal(in->r.state, NUBO_STATE_DRAINING);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 5000);
    assert_false(domain_active(f));
    assert_true(in->r.stop_reason & NUBO_STOP_USER);
}

static void test_restart_backoff_survives_agent_restart(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "always", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    console(f, "NUBO_READY\nNUBO_EXIT 0\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    destroy_outside(f); /* exit 1: immediate restart (attempt 1) */
    WAIT_FOR(ag, in->r.restart_count == 1 && in->domain, 5000);
    console(f, "NUBO_READY\nNUBO_EXIT 0\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    destroy_outside(f); /* exit 2: restart in 5 s */
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    int64_t next_at = in->r.restart_next_at_us;
    assert_true(next_at > nubo_now_us());
    spin(ag, 20);
    agent_fini(ag);
    memset(ag, 0, sizeof(*ag));
    agent_up(f);
    in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    assert_int_equal(in->r.restart_next_at_us, next_at);
    assert_int_equal(in->r.restart_attempt, 2);
    /* the restarted agent keeps the back-off and restarts it when it is due */
    assign(ag, 1, "running", 1, "always", false);
    WAIT_FOR(ag, in->domain, 8000);
    assert_true(nubo_now_us() >= next_at - 50000);
    assert_int_equal(in->r.restart_count, 2);
}

static void test_cmdline_too_long(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    char big[3001];
    memset(big, 'v', 3000);
    big[3000] = '\0';
    char *text = NULL;
    assert_true(asprintf(&text,
                         "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a1\","
                         "\"image\":\"acme/app@sha256:" HEX "\",\"memory_mb\":64,\"vcpus\":1,"
                         "\"env\":{\"BIG\":\"%s\"},\"desired_state\":\"running\",\"start_seq\":1,"
                         "\"private_ip\":\"10.9.0.5\",\"prefix\":24,\"gateway\":\"10.9.0.1\","
                         "\"dns\":\"10.9.0.1\"}]}",
                         big) > 0);
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    free(text);
    struct nubo_watch_resp w = {0};
    struct nubo_err err = {0};
    assert_int_equal(nubo_watch_resp_decode(j, &w, &err), 0);
    json_decref(j);
    agent_apply_assignments(ag, &w);
    nubo_watch_resp_free(&w);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    assert_int_equal(in->r.state, NUBO_STATE_STOPPED);
    assert_non_null(strstr(in->msg, "2047-byte limit"));
    assert_false(in->domain);
    assert_false(domain_active(f));
}

/* A kernel of 512 KiB really on disk: the cache counts what files take, not what meta.json
 * (or a layer's compressed size) claims. */
static void write_kernel(const char *path)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 512 * 1024; i++) /* a Linux boot header, so the agent boots it */
        fputc(i >= 0x202 && i < 0x206 ? "HdrS"[i - 0x202] : 'k', fp);
    fclose(fp);
}

static void test_kernel_larger_than_memory(void **state)
{
    /* the cached image's kernel grows to 65 MiB (sparse: it still loads whole): a 64 MiB
     * instance of it is refused with a message of its own, no domain is made */
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    char k[300];
    snprintf(k, sizeof(k), "%s/cache/images/" HEX "/kernel", f->dir);
    assert_int_equal(truncate(k, 65 << 20), 0);
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED && in->msg[0], 3000);
    if (!strstr(in->msg, "needs 65 MiB for its kernel and initrd, more than the 64 MiB"))
        fail_msg("message: %s", in->msg);
    assert_int_equal(in->r.stop_reason, NUBO_STOP_PLATFORM);
    assert_false(in->domain);
    assert_false(domain_active(f));
    /* the refused image is not held: nothing keeps it from eviction */
    assert_int_equal(agent_image_find(ag, "sha256:" HEX)->refs, 0);
}

static void add_image(struct fx *f, const char *hex, time_t atime)
{
    char p[256], k[300];
    snprintf(p, sizeof(p), "%s/cache/images/%s", f->dir, hex);
    struct nubo_err err = {0};
    assert_int_equal(nubo_mkdir_p(p, 0755, &err), 0);
    snprintf(k, sizeof(k), "%s/kernel", p);
    write_kernel(k);
    struct timeval tv[2] = {{atime, 0}, {atime, 0}};
    utimes(k, tv);
    snprintf(k, sizeof(k), "%s/meta.json", p);
    /* size_bytes lies (as a compressed layer size would): it must not be what counts */
    write_file(k, "{\"has_initrd\":false,\"cmd\":[],\"env\":[],\"labels\":[],"
                  "\"size_bytes\":1}");
}

static bool image_dir_exists(struct fx *f, const char *hex)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s/cache/images/%s", f->dir, hex);
    return stat(p, &st) == 0;
}

static void test_cache_eviction(void **state)
{
    /* three cached images of 512 KiB each (two of them old), a 1 MiB limit: once nothing
     * uses them, the least recently used go and the one used last stays */
    struct fx *f = *state;
    agent_fini(&f->ag);
    memset(&f->ag, 0, sizeof(f->ag));
    const char *B = "b000000000000000000000000000000000000000000000000000000000000000";
    const char *C = "c000000000000000000000000000000000000000000000000000000000000000";
    add_image(f, B, time(NULL) - 3600);
    add_image(f, C, time(NULL) - 7200);
    char k[300];
    snprintf(k, sizeof(k), "%s/cache/images/" HEX "/kernel", f->dir);
    write_kernel(k);
    snprintf(k, sizeof(k), "%s/cache/images/" HEX "/meta.json", f->dir);
    write_file(k, "{\"has_initrd\":false,\"cmd\":[],\"env\":[],\"labels\":[],"
                  "\"size_bytes\":1}");
    f->cfg.cache_size_mb = 1;
    agent_up(f);
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false); /* uses image HEX */
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    assert_true(image_dir_exists(f, B) && image_dir_exists(f, C)); /* nothing evicted yet */
    assign_none(ag, 2);
    WAIT_FOR(ag, agent_instance_find(ag, UUID1) == NULL, 3000);
    assert_false(image_dir_exists(f, B));
    assert_false(image_dir_exists(f, C));
    assert_true(image_dir_exists(f, HEX));
    assert_non_null(agent_image_find(ag, "sha256:" HEX));
}

static void test_force_stop_and_delete(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    assign(ag, 2, "stopped", 1, "never", true);
    WAIT_FOR(ag, in->r.state == NUBO_STATE_STOPPED, 3000);
    assert_int_equal(in->r.stop_reason, NUBO_STOP_FORCED | NUBO_STOP_USER | NUBO_STOP_PLATFORM);
    assert_false(domain_active(f));
    assign(ag, 3, "running", 2, "never", false);
    WAIT_FOR(ag, in->domain, 5000);
    assign_none(ag, 4);
    WAIT_FOR(ag, agent_instance_find(ag, UUID1) == NULL, 3000);
    assert_false(domain_active(f));
    char p[256];
    struct stat st;
    snprintf(p, sizeof(p), "%s/state/instances/" UUID1, f->dir);
    assert_int_equal(stat(p, &st), -1); /* its files went with it */
}

static void test_readopt_after_restart(void **state)
{
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    assign(ag, 1, "running", 1, "never", false);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    WAIT_FOR(ag, in->domain, 5000);
    console(f, "NUBO_READY\n");
    WAIT_FOR(ag, in->r.state == NUBO_STATE_RUNNING, 3000);
    int64_t boot = in->r.boot_time_us, started = in->r.started_at_us;
    spin(ag, 20); /* let the state file be written */
    /* the agent goes away without touching its guest (as after kill -9: no cleanup runs
     * that could matter, guests are never stopped on exit) and a new one starts */
    agent_fini(ag);
    assert_true(domain_active(f));
    memset(ag, 0, sizeof(*ag));
    agent_up(f);
    in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    assert_true(in->domain);
    assert_int_equal(in->r.state, NUBO_STATE_RUNNING);
    assert_int_equal(in->r.boot_time_us, boot);
    assert_int_equal(in->r.started_at_us, started);
    assert_int_equal(in->r.start_count, 1);
    /* the same desired set arrives: nothing is restarted */
    assign(ag, 1, "running", 1, "never", false);
    spin(ag, 100);
    assert_int_equal(in->r.start_count, 1);
    /* a guest that ended while no agent was watching is reported as such */
    agent_fini(ag);
    destroy_outside(f);
    memset(ag, 0, sizeof(*ag));
    agent_up(f);
    in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    assert_false(in->domain);
    assert_int_equal(in->r.state, NUBO_STATE_STOPPED);
    assert_int_equal(in->r.stop_reason, NUBO_STOP_KERNEL);
    assert_non_null(strstr(in->msg, "away"));
}

static void test_registry_down(void **state)
{
    /* an image that is not cached, and a registry that does not answer: the instance fails
     * with a message naming the image, the agent carries on */
    struct fx *f = *state;
    struct agent *ag = &f->ag;
    snprintf(ag->cfg.registry.url, sizeof(ag->cfg.registry.url), "http://127.0.0.1:1");
    const char *text = "{\"version\":1,\"assignments\":[{\"uuid\":\"" UUID1 "\",\"name\":\"a1\","
                       "\"image\":\"acme/other@sha256:" "fedcba9876543210fedcba9876543210"
                       "fedcba9876543210fedcba9876543210" "\",\"memory_mb\":64,\"vcpus\":1,"
                       "\"desired_state\":\"running\",\"start_seq\":1,\"private_ip\":\"10.9.0.6\","
                       "\"prefix\":24,\"gateway\":\"10.9.0.1\",\"dns\":\"10.9.0.1\"}]}";
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    assert_non_null(j);
    struct nubo_watch_resp w = {0};
    struct nubo_err err = {0};
    int rc = nubo_watch_resp_decode(j, &w, &err);
    json_decref(j);
    if (rc < 0)
        fail_msg("decode: %s", err.msg);
    agent_apply_assignments(ag, &w);
    nubo_watch_resp_free(&w);
    struct agent_instance *in = agent_instance_find(ag, UUID1);
    assert_non_null(in);
    WAIT_FOR(ag, in->msg[0] != '\0', 20000);
    assert_int_equal(in->r.state, NUBO_STATE_STOPPED);
    assert_non_null(strstr(in->msg, "acme/other"));
    assert_int_equal(in->r.stop_reason, NUBO_STOP_PLATFORM);
    assert_false(in->domain);
    assert_false(domain_active(f));
}

int main(void)
{
    log_init("test", getenv("NUBO_TEST_DEBUG") ? NUBO_LOG_DEBUG : NUBO_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_start_ready_exit_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exit_code_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_stop_graceful_then_destroy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_force_stop_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain_then_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_progress_survives_agent_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cmdline_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kernel_larger_than_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_backoff_survives_agent_restart, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_readopt_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_down, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
