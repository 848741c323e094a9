/* Instance lifecycle: starting -> running -> (draining) -> stopping -> stopped, driven by the
 * desired set, libvirt lifecycle events and the console markers (never by polling). Restart
 * policies with the platform's back-off live here too. */
#include "agent_core.h"

#include <errno.h>
#include <stdarg.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/virterror.h>

#include "cleanup.h"
#include "log.h"

#define HEALTHY_RESET_MS 10000
#define RESTART_BACKOFF_FIRST_MS 5000
#define RESTART_BACKOFF_MAX_MS 300000

static void start_instance(struct agent *ag, struct agent_instance *in);
static void begin_stop(struct agent *ag, struct agent_instance *in, bool force,
                       int64_t drain_ms);
static void domain_stopped(struct agent *ag, struct agent_instance *in, const char *why);
static void set_ready(struct agent *ag, struct agent_instance *in);
static void do_create(struct agent *ag, struct agent_instance *in);

int64_t agent_restart_delay_ms(int64_t attempt)
{
    /* immediate, 5 s, 10 s, 20 s, ... capped at 5 min */
    if (attempt <= 0)
        return 0;
    int64_t d = RESTART_BACKOFF_FIRST_MS;
    for (int64_t i = 1; i < attempt && d < RESTART_BACKOFF_MAX_MS; i++)
        d *= 2;
    return d > RESTART_BACKOFF_MAX_MS ? RESTART_BACKOFF_MAX_MS : d;
}

void agent_mark_dirty(struct agent *ag, struct agent_instance *in)
{
    in->dirty = true;
    agent_schedule_save(ag);
    agent_ev_kick(ag);
}

static void set_msg(struct agent_instance *in, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_msg(struct agent_instance *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->msg, sizeof(in->msg), fmt, ap);
    va_end(ap);
    nubo_scrub_paths(in->msg);
}

void agent_report_fill(struct agent_instance *in, struct nubo_status_report *out)
{
    *out = in->r;
    memcpy(out->uuid, in->uuid, sizeof(out->uuid));
    out->message = in->msg[0] ? in->msg : NULL;
}

struct agent_instance *agent_instance_find(struct agent *ag, const char *uuid)
{
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    if (strcmp(in->uuid, uuid) == 0)
        return in;
    return NULL;
}

struct agent_instance *agent_instance_find_dom(struct agent *ag, const char *name)
{
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    if (strcmp(in->dom, name) == 0)
        return in;
    return NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg);
static void on_healthy(evutil_socket_t fd, short what, void *arg);

struct agent_instance *agent_instance_new(struct agent *ag, const char *uuid)
{
    struct agent_instance *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->ag_back = ag;
    snprintf(in->uuid, sizeof(in->uuid), "%s", uuid);
    in->start_seq_done = -1;
    in->r.state = NUBO_STATE_STOPPED;
    in->con.fd = in->con.ring_fd = in->con.wd = -1;
    snprintf(in->dom, sizeof(in->dom), "%s", uuid);
    agent_net_tap_name(uuid, in->tap);
    in->timer = evtimer_new(ag->base, on_timer, in);
    in->healthy_timer = evtimer_new(ag->base, on_healthy, in);
    char dir[AGENT_PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s/instances/%s", ag->cfg.state_dir, uuid);
    struct nubo_err err = {0};
    if (agent_console_open(&in->con, dir, (uint64_t)ag->cfg.console_ring_kb * 1024, &err) < 0)
        log_warnx("instance %s: %s", uuid, err.msg);
    else
        in->con.wd = agent_inotify_add(ag, dir, IN_MODIFY | IN_CREATE | IN_MOVED_TO |
                                                    IN_CLOSE_WRITE);
    LIST_INSERT_HEAD(&ag->instances, in, link);
    return in;
}

void agent_instance_free(struct agent *ag, struct agent_instance *in)
{
    LIST_REMOVE(in, link);
    if (in->con.wd >= 0)
        inotify_rm_watch(ag->inotify_fd, in->con.wd);
    agent_console_close(&in->con);
    if (in->timer)
        event_free(in->timer);
    if (in->healthy_timer)
        event_free(in->healthy_timer);
    if (in->img)
        agent_image_unref(ag, in->img);
    nubo_assignment_free(&in->a);
    free(in);
}

/* Remove everything an instance left on the host (it is gone from the desired set). */
static void instance_delete(struct agent *ag, struct agent_instance *in)
{
    log_info("instance %s: deleted", in->uuid);
    agent_net_tap_remove(&ag->cfg, in->tap);
    char dir[AGENT_PATH_MAX + 64];
    static const char *const files[] = {"console.log",
                                        "console.log.0",
                                        "console.log.1",
                                        "console.log.2",
                                        "console.log.3",
                                        "console.ring",
                                        "env",
                                        AGENT_SAVE_FILE};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        snprintf(dir, sizeof(dir), "%s/instances/%s/%s", ag->cfg.state_dir, in->uuid, files[i]);
        unlink(dir);
    }
    snprintf(dir, sizeof(dir), "%s/instances/%s", ag->cfg.state_dir, in->uuid);
    agent_instance_free(ag, in);
    rmdir(dir);
    agent_volumes_sweep(ag); /* a volume deleted while this domain held it goes now */
    agent_schedule_save(ag);
    agent_ev_kick(ag);
}

static void timer_set(struct agent_instance *in, int kind, int64_t ms)
{
    evtimer_del(in->timer);
    in->timer_kind = kind;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(in->timer, &tv);
}

static void timer_clear(struct agent_instance *in)
{
    evtimer_del(in->timer);
    in->timer_kind = AGENT_TIMER_NONE;
}

/* After a restart of the agent: a restart back-off that was pending goes on where it was. */
void agent_instance_rearm(struct agent *ag, struct agent_instance *in)
{
    (void)ag;
    if (in->r.state != NUBO_STATE_STOPPED || in->r.restart_next_at_us <= 0 || in->domain)
        return;
    int64_t left_ms = (in->r.restart_next_at_us - nubo_now_us()) / 1000;
    timer_set(in, AGENT_TIMER_RESTART, left_ms > 0 ? left_ms : 0);
}

/* ---- worker jobs: libvirt calls by domain name, on a connection reference of their own ---- */

struct dom_job {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char dom[NUBO_UUID_STR_LEN + 1]; /* the domain's name (a slot's, or the uuid) */
    uint64_t gen;
    virConnectPtr conn;
    enum { JOB_DESTROY, JOB_SHUTDOWN, JOB_CHECK, JOB_SAVE } kind;
    char path[AGENT_PATH_MAX + 64]; /* JOB_SAVE: where the guest's memory goes */
    int rc;
    char error[AGENT_MSG_MAX];
};

static void dom_job_work(void *arg)
{
    struct dom_job *j = arg;
    virDomainPtr d = virDomainLookupByName(j->conn, j->dom);
    if (!d) {
        j->rc = 1; /* already gone */
        return;
    }
    if (j->kind == JOB_CHECK) {
        j->rc = virDomainIsActive(d) == 1 ? 0 : 1;
        virDomainFree(d);
        return;
    }
    int rc = j->kind == JOB_DESTROY   ? virDomainDestroy(d)
             : j->kind == JOB_SAVE    ? virDomainSave(d, j->path)
                                      : virDomainShutdown(d);
    if (rc < 0 && (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN ||
                   virGetLastErrorCode() == VIR_ERR_OPERATION_INVALID)) {
        j->rc = 1; /* it ended on its own meanwhile */
    } else if (rc < 0) {
        snprintf(j->error, sizeof(j->error), "%s", virGetLastErrorMessage());
        j->rc = -1;
    }
    virDomainFree(d);
}

static void dom_job(struct agent *ag, struct agent_instance *in, int kind);

/* A stateful standby's save returned: the domain is gone, its memory on disk (or, when the
 * save failed, destroyed: a wake then boots it afresh rather than never). */
static void save_done(struct agent *ag, struct agent_instance *in, struct dom_job *j)
{
    if (j->rc < 0) {
        unlink(j->path);
        if (in && in->domain && in->op == AGENT_OP_SAVE) {
            in->op = AGENT_OP_DESTROY;
            dom_job(ag, in, JOB_DESTROY);
        }
        return;
    }
    if (!in) { /* deleted while saving */
        unlink(j->path);
        return;
    }
    in->saved = j->rc == 0;
    if (in->saved)
        log_info("instance %s: memory saved for its standby", in->uuid);
    if (in->domain)
        domain_stopped(ag, in, j->rc == 0 ? "saved" : "domain already gone");
}

static void dom_job_done(struct agent *ag, void *arg)
{
    struct dom_job *j = arg;
    virConnectClose(j->conn);
    struct agent_instance *in = agent_instance_find(ag, j->uuid);
    static const char *const what[] = {"destroy", "shutdown", "check", "save"};
    if (j->rc < 0)
        log_warnx("instance %s: %s failed: %s", j->uuid, what[j->kind], j->error);
    if (j->kind == JOB_SAVE)
        save_done(ag, in, j);
    /* about the domain it runs in now, not one of an earlier run; while a save runs, the
     * domain's end is the save's to report */
    else if (in && j->rc == 1 && in->domain && j->kind != JOB_SHUTDOWN &&
             in->op != AGENT_OP_SAVE && strcmp(in->dom, j->dom) == 0)
        domain_stopped(ag, in, in->stop_why[0] ? in->stop_why : "domain already gone");
    free(j);
}

static int dom_job_dom(struct agent *ag, const char *uuid, const char *dom, int kind,
                       const char *path)
{
    if (!ag->virt.conn) {
        log_warnx("instance %s: libvirt not connected; will act after reconnecting", uuid);
        return -1;
    }
    struct dom_job *j = calloc(1, sizeof(*j));
    if (!j)
        return -1;
    snprintf(j->uuid, sizeof(j->uuid), "%s", uuid);
    snprintf(j->dom, sizeof(j->dom), "%s", dom);
    snprintf(j->path, sizeof(j->path), "%s", path ? path : "");
    j->kind = kind;
    j->conn = ag->virt.conn;
    virConnectRef(j->conn);
    if (agent_spawn(ag, dom_job_work, dom_job_done, j) < 0) {
        virConnectClose(j->conn);
        free(j);
        return -1;
    }
    return 0;
}

static void save_path(const struct agent_instance *in, char *p, size_t size)
{
    snprintf(p, size, "%s/" AGENT_SAVE_FILE, in->con.dir);
}

/* A save image nothing will restore (a user's stop, a failed restore) frees its disk. */
static void save_discard(struct agent *ag, struct agent_instance *in)
{
    char p[AGENT_PATH_MAX + 64];
    save_path(in, p, sizeof(p));
    unlink(p);
    if (in->saved) {
        in->saved = false;
        log_info("instance %s: saved memory discarded", in->uuid);
        agent_schedule_save(ag);
    }
}

static void dom_job(struct agent *ag, struct agent_instance *in, int kind)
{
    dom_job_dom(ag, in->uuid, in->dom, kind, NULL);
}

/* ---- kernel command line ---- */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 256);
        while (nc < b->len + n + 1)
            nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}
static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}
static void sb_sep(struct sbuf *b)
{
    if (b->len)
        sb_add(b, " ", 1);
}
/* "…" with \ and " escaped, as the Unikraft argument parser reads them. */
static void sb_quoted(struct sbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sb_add(b, "\\", 1);
        sb_add(b, p, 1);
    }
    sb_add(b, "\"", 1);
}

static bool needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const char *p = s; *p; p++)
        if (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'' || *p == '\\' || *p == '\n')
            return true;
    return false;
}

static void strv_free_n(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* The instance's environment as "K=V" strings: the image's defaults not overridden by the
 * instance, then the instance's own. NULL with *n > 0 when out of memory. */
static char **env_merged(const struct nubo_assignment *a, const struct agent_image *img, size_t *n)
{
    size_t n_img = 0;
    while (img && img->env && img->env[n_img])
        n_img++;
    *n = 0;
    if (n_img + a->n_env == 0)
        return NULL;
    char **v = calloc(n_img + a->n_env, sizeof(*v));
    size_t k = 0;
    for (size_t i = 0; v && i < n_img; i++) {
        const char *eq = strchr(img->env[i], '=');
        size_t kl = eq ? (size_t)(eq - img->env[i]) : strlen(img->env[i]);
        bool overridden = false;
        for (size_t j = 0; j < a->n_env; j++)
            if (strlen(a->env[j].key) == kl && strncmp(a->env[j].key, img->env[i], kl) == 0)
                overridden = true;
        if (!overridden && !(v[k++] = strdup(img->env[i])))
            goto oom;
    }
    for (size_t j = 0; v && j < a->n_env; j++)
        if (asprintf(&v[k++], "%s=%s", a->env[j].key, a->env[j].value) < 0) {
            v[k - 1] = NULL;
            goto oom;
        }
    *n = v ? k : n_img + a->n_env;
    return v;
oom:
    strv_free_n(v, k);
    *n = n_img + a->n_env;
    return NULL;
}

bool agent_image_env_via_fw_cfg(const struct agent_image *img)
{
    const char *how = img ? agent_image_label(img, AGENT_LABEL_ENV) : NULL;
    return how && strcmp(how, "fw_cfg") == 0;
}

int agent_build_env_file(const struct nubo_assignment *a, const struct agent_image *img,
                         char **data, size_t *len)
{
    size_t n = 0;
    char **env = env_merged(a, img, &n);
    if (env == NULL && n > 0)
        return -1;
    struct sbuf b = {0};
    sb_add(&b, "", 0);
    for (size_t i = 0; i < n; i++)
        sb_add(&b, env[i], strlen(env[i]) + 1); /* with its NUL: values may hold anything */
    strv_free_n(env, n);
    if (b.oom) {
        free(b.p);
        return -1;
    }
    *data = b.p;
    *len = b.len;
    return 0;
}

char *agent_build_cmdline(const struct nubo_assignment *a, const struct agent_image *img,
                          int64_t tsc_khz)
{
    struct sbuf b = {0};
    sb_str(&b, "");
    const char *kargs = img ? agent_image_label(img, "org.nubo.kernel.args") : NULL;
    if (kargs && *kargs)
        sb_str(&b, kargs);
    /* tsc_early_khz is Linux's; any other kernel would hand it to its app as an argument. */
    if (tsc_khz > 0 && img && img->linux_kernel) {
        char t[64];
        snprintf(t, sizeof(t), "tsc_early_khz=%lld", (long long)tsc_khz);
        sb_sep(&b);
        sb_str(&b, t);
    }
    if (img && img->linux_kernel && img->user[0]) {
        /* The image's config.User for nubo's Linux /init (which runs the app unprivileged
         * unless told otherwise); dotted, so the kernel leaves it alone. Checked at pull:
         * [A-Za-z0-9_.-] and one ':'. */
        sb_sep(&b);
        sb_str(&b, "nubo.user=");
        sb_str(&b, img->user);
    }
    if (a->private_ip[0]) {
        char t[128];
        snprintf(t, sizeof(t), "netdev.ip=%s/%lld:%s:%s", a->private_ip, (long long)a->prefix,
                 a->gateway, a->dns);
        sb_sep(&b);
        sb_str(&b, t);
    }
    /* env on the command line only for kernels that read it nowhere else (Unikraft's
     * env.vars): nubo's runtimes get it through fw_cfg, out of every local user's `ps` */
    size_t n_env = 0;
    char **env = agent_image_env_via_fw_cfg(img) ? NULL : env_merged(a, img, &n_env);
    if (env == NULL && n_env > 0)
        b.oom = true;
    if (n_env > 0) {
        /* Unikraft reads the spaced form env.vars=[ "A=1" "B=2" ]; Linux would hand each
         * spaced element to init as a boot environment variable and panic past 32, so Linux
         * kernels get the compact form env.vars=["A=1","B=2"] (one token, which our /init
         * parses). */
        bool compact = img && img->linux_kernel;
        sb_sep(&b);
        sb_str(&b, "env.vars=[");
        for (size_t i = 0; env && i < n_env; i++) {
            if (!compact || i > 0)
                sb_str(&b, compact ? "," : " ");
            sb_quoted(&b, env[i]);
        }
        sb_str(&b, compact ? "]" : " ]");
    }
    strv_free_n(env, n_env);
    /* volumes for nubo's Linux /init, in Unikraft's vfs.fstab shape with the disk's serial as
     * the device ("<serial>:<at>:ext4:rw"); a stock unikernel keeps its own fstab */
    if (a->n_volumes && img && img->linux_kernel) {
        sb_sep(&b);
        sb_str(&b, "vfs.fstab=[");
        for (size_t i = 0; i < a->n_volumes; i++) {
            char serial[AGENT_VOLUME_SERIAL_MAX + 1], e[NUBO_VOLUME_AT_MAX + 64];
            agent_volume_serial(a->volumes[i].uuid, serial);
            snprintf(e, sizeof(e), "%s:%s:ext4:%s", serial, a->volumes[i].at,
                     a->volumes[i].readonly ? "ro" : "rw");
            if (i > 0)
                sb_str(&b, ",");
            sb_quoted(&b, e);
        }
        sb_str(&b, "]");
    }
    sb_sep(&b);
    sb_str(&b, "--");
    char *const *args = a->args;
    size_t n_args = a->n_args;
    size_t n_cmd = 0;
    if (n_args == 0 && img && img->cmd) {
        while (img->cmd[n_cmd])
            n_cmd++;
        args = img->cmd;
        n_args = n_cmd;
    }
    for (size_t i = 0; i < n_args; i++) {
        sb_add(&b, " ", 1);
        if (needs_quotes(args[i]))
            sb_quoted(&b, args[i]);
        else
            sb_str(&b, args[i]);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

int agent_unikraft_line(const char *line, int *code)
{
    /* libukboot at printk level info: "[ 0.1] Info: [libukboot] <boot.c @ 545> main returned 3" */
    const char *p = strstr(line, "[libukboot]");
    if (p && (p = strstr(p, "main returned ")) != NULL) {
        char *end;
        errno = 0;
        long v = strtol(p + 14, &end, 10);
        if (end != p + 14 && !errno && v >= INT32_MIN && v <= INT32_MAX) {
            *code = (int)v;
            return 1;
        }
    }
    /* A crash prints CRIT (at every printk level; the register dump from trace.c says little);
     * a failed init function ends the boot with an orderly poweroff that must not pass for a
     * clean exit. */
    if ((strstr(line, "CRIT: ") && !strstr(line, "<trace.c")) ||
        (strstr(line, "[libukboot]") && strstr(line, "Init function") &&
         strstr(line, "returned error")))
        return 2;
    return 0;
}

/* ---- start ---- */

static void fail_start(struct agent *ag, struct agent_instance *in, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail_start(struct agent *ag, struct agent_instance *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->msg, sizeof(in->msg), fmt, ap);
    va_end(ap);
    log_warnx("instance %s: %s", in->uuid, in->msg);
    /* The message reaches the tenant: the operator's log above keeps the host paths. */
    nubo_scrub_paths(in->msg);
    in->op = AGENT_OP_NONE;
    in->pending_create = false;
    in->r.state = NUBO_STATE_STOPPED;
    in->r.stopped_at_us = nubo_now_us();
    /* The platform could not start it (pull, libvirt): "--P--", the message says why. */
    in->r.stop_reason = NUBO_STOP_PLATFORM;
    in->r.has_exit_code = false;
    in->r.has_stop_code = false;
    agent_mark_dirty(ag, in);
}

/* The environment for fw_cfg, 0600 in the instance's directory: libvirt hands the file to
 * qemu (DAC-labelled for its user), qemu reads it once at start, and create_done removes it.
 * qemu must reach it, so the directories on the way are 0711: traversable, not listable. */
static int write_env_file(struct agent_instance *in, char *path, size_t size, struct nubo_err *err)
{
    cleanup_free char *data = NULL;
    size_t len = 0;
    if (agent_build_env_file(&in->a, in->img, &data, &len) < 0)
        return nubo_error(err, ENOMEM, "out of memory");
    if (len == 0)
        return 0;
    if (nubo_snprintf(path, size, "%s/env", in->con.dir) < 0)
        return nubo_error(err, ENAMETOOLONG, "instance directory path too long");
    if (chmod(in->con.dir, 0711) < 0)
        return nubo_error(err, errno, "cannot open the instance directory to qemu");
    return nubo_write_file_atomic(path, data, len, 0600, err);
}

static void env_file_remove(struct agent_instance *in)
{
    char p[AGENT_PATH_MAX + 64];
    if (nubo_snprintf(p, sizeof(p), "%s/env", in->con.dir) >= 0)
        unlink(p);
}

struct create_job {
    struct agent *ag;
    char uuid[NUBO_UUID_STR_LEN + 1];
    char dom[NUBO_UUID_STR_LEN + 1];
    uint64_t gen;
    virConnectPtr conn;
    char *xml;
    struct agent_config cfg;
    char tap[AGENT_TAP_MAX];
    char ip[NUBO_IP_STR_MAX];
    bool with_net;
    /* A take of a warm slot instead of virDomainCreateXML: the kernel, the command line and
     * where the slot's console goes (the instance's console.log). */
    struct agent_slot *slot;
    char *cmdline;
    char kernel[AGENT_PATH_MAX];
    char console_from[AGENT_PATH_MAX + 64], console_to[AGENT_PATH_MAX + 64];
    int64_t copy_us;
    int64_t t_resume_mono; /* the take done, the guest's vCPUs resumed from here */
    int64_t t_spawn_mono, rules_us, label_us; /* where a burst's take spends its time */
    char restore[AGENT_PATH_MAX + 64]; /* a stateful standby's save image, "" = boot */
    bool restored;
    char restore_error[AGENT_MSG_MAX];
    int64_t t0_mono, t0_real, t1_mono;
    int rc;
    bool created;
    char error[AGENT_MSG_MAX];
    char net_error[AGENT_MSG_MAX];
};

/* A take's phases, posted as soon as the slot is resumed: the guest's readiness is usually
 * read before the worker is back (rules and label follow the resume), and the report that says
 * `running` - the one the create's response waits for - should carry them. */
struct take_phases {
    char uuid[NUBO_UUID_STR_LEN + 1];
    uint64_t gen;
    int64_t t0_mono, t_resume_mono, copy_us;
};

static void take_resumed(struct agent *ag, void *arg)
{
    struct take_phases *p = arg;
    struct agent_instance *in = agent_instance_find(ag, p->uuid);
    if (in && in->op_gen == p->gen && in->op == AGENT_OP_CREATE) {
        in->r.phases.domain_us = p->t0_mono - in->t_prep_mono_us;
        in->r.phases.slot_us = p->t_resume_mono - p->t0_mono;
        in->r.phases.copy_us = p->copy_us;
        if (in->ready_seen && in->r.boot_time_us > in->r.phases.slot_us)
            in->r.phases.guest_us = in->r.boot_time_us - in->r.phases.slot_us;
        agent_mark_dirty(ag, in);
    }
    free(p);
}

/* Taking a warm slot: the guest written into its paused RAM, its console file handed to the
 * instance (qemu keeps writing through its fd), its metadata naming the instance (for a
 * re-adopting agent), its rules in, then resumed. Before the resume nothing of the guest ran:
 * a failure destroys the slot and the instance takes the plain path. */
static void take_work(struct create_job *j)
{
    struct nubo_err err = {0};
    struct agent_slot *s = j->slot;
    j->t0_real = nubo_now_us();
    j->t0_mono = nubo_mono_us();
    struct agent_slot_image im;
    int rc = agent_slot_image_build(j->kernel, j->cmdline, s->ram.size >> 20, &im, &err);
    if (rc == 0)
        rc = agent_slot_mark_taking(&s->ram, &err);
    if (rc == 0)
        rc = agent_slot_fill(&s->ram, &im, &err);
    agent_slot_image_free(&im);
    j->copy_us = nubo_mono_us() - j->t0_mono;
    virDomainPtr d = virDomainLookupByName(j->conn, s->name);
    if (rc == 0 && !d)
        rc = nubo_error(&err, 0, "slot domain gone: %s", virGetLastErrorMessage());
    if (rc == 0 && rename(j->console_from, j->console_to) < 0)
        rc = nubo_error(&err, errno, "cannot hand the slot's console to the instance");
    j->t_resume_mono = nubo_mono_us();
    if (rc == 0 && virDomainResume(d) < 0)
        rc = nubo_error(&err, 0, "cannot resume the slot: %s", virGetLastErrorMessage());
    j->t1_mono = nubo_mono_us();
    struct take_phases *tp = rc == 0 ? calloc(1, sizeof(*tp)) : NULL;
    if (tp) {
        *tp = (struct take_phases){.gen = j->gen, .t0_mono = j->t0_mono,
                                   .t_resume_mono = j->t_resume_mono, .copy_us = j->copy_us};
        snprintf(tp->uuid, sizeof(tp->uuid), "%s", j->uuid);
        agent_post_main(j->ag, take_resumed, tp);
    }
    /* The guest's rules after the resume, off its boot path: its tap (attached at launch)
     * passes nothing until they are in (firewall.c, rule 6), so the order fails closed; a
     * guest needs longer than this to send its first frame. */
    if (rc == 0 && j->with_net && agent_net_tap_rules(&j->cfg, j->tap, j->ip, s->mac, &err) < 0)
        snprintf(j->net_error, sizeof(j->net_error), "%s", err.msg);
    int64_t t_rules = nubo_mono_us();
    /* Also after: libvirt saves the domain's status for the label. Should the agent die
     * before, a restarted one finds a running slot nobody took and destroys it; the instance
     * starts again (its state said starting). */
    if (rc == 0 && agent_domain_meta_take(d, j->cfg.node_name, "slot", j->uuid) < 0)
        log_warnx("instance %s: cannot label slot %s: %s", j->uuid, s->name,
                  virGetLastErrorMessage());
    j->rules_us = t_rules - j->t1_mono;
    j->label_us = nubo_mono_us() - t_rules;
    if (rc < 0) {
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
        j->rc = -1;
        if (d)
            virDomainDestroy(d);
        agent_net_tap_remove(&j->cfg, s->tap);
    } else
        j->created = true;
    if (d)
        virDomainFree(d);
}

static void create_work(void *arg)
{
    struct create_job *j = arg;
    struct nubo_err err = {0};
    if (j->slot) {
        take_work(j);
        return;
    }
    if (j->with_net && agent_net_tap_create(&j->cfg, j->tap, &err) < 0) {
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
        j->rc = -1;
        return;
    }
    j->t0_real = nubo_now_us();
    j->t0_mono = nubo_mono_us();
    virDomainPtr d = NULL;
    if (j->restore[0]) {
        /* the guest resumes where its standby saved it (same XML: tap, console, fw_cfg);
         * a save image that cannot be restored is dropped and the instance boots afresh,
         * so a wake never fails for it */
        if (virDomainRestore(j->conn, j->restore) == 0 &&
            (d = virDomainLookupByName(j->conn, j->dom)) != NULL)
            j->restored = true;
        else
            snprintf(j->restore_error, sizeof(j->restore_error), "%s", virGetLastErrorMessage());
        unlink(j->restore);
    }
    if (!d)
        d = virDomainCreateXML(j->conn, j->xml, 0);
    j->t1_mono = nubo_mono_us();
    if (!d) {
        snprintf(j->error, sizeof(j->error), "%s", virGetLastErrorMessage());
        j->rc = -1;
        if (j->with_net)
            agent_net_tap_remove(&j->cfg, j->tap);
        return;
    }
    j->created = true;
    virDomainFree(d);
    /* Rules first: a tap on the bridge without them would carry anything (fail closed: no
     * rules, no attach, the guest runs without network). */
    if (j->with_net && (agent_net_tap_rules(&j->cfg, j->tap, j->ip, NULL, &err) < 0 ||
                        agent_net_tap_attach(&j->cfg, j->tap, &err) < 0))
        snprintf(j->net_error, sizeof(j->net_error), "%s", err.msg);
}

struct probe_job {
    char uuid[NUBO_UUID_STR_LEN + 1];
    uint64_t gen;
    struct agent_config cfg;
    char ip[NUBO_IP_STR_MAX];
    int64_t ports[NUBO_AGENT_MAX_PORTS];
    size_t n_ports;
    int rc;
    int64_t ok_mono;
    char error[AGENT_MSG_MAX];
};

static void probe_work(void *arg)
{
    struct probe_job *j = arg;
    struct nubo_err err = {0};
    j->rc = agent_net_probe(&j->cfg, j->ip, j->ports, j->n_ports, j->cfg.net_probe_timeout_ms,
                            &err);
    j->ok_mono = nubo_mono_us();
    if (j->rc < 0)
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
}

static void probe_done(struct agent *ag, void *arg)
{
    struct probe_job *j = arg;
    struct agent_instance *in = agent_instance_find(ag, j->uuid);
    if (in && in->op_gen == j->gen && in->domain) {
        if (j->rc == 0) {
            in->r.net_time_us = j->ok_mono - in->t0_mono_us;
            log_info("instance %s: service port answered, net_time %lld us", in->uuid,
                     (long long)in->r.net_time_us);
            if (in->ready_rule == AGENT_READY_PORT)
                set_ready(ag, in);
            agent_mark_dirty(ag, in);
        } else
            log_warnx("instance %s: %s", in->uuid, j->error);
    }
    free(j);
}

static void became_running(struct agent *ag, struct agent_instance *in)
{
    in->r.state = NUBO_STATE_RUNNING;
    log_info("instance %s: running, boot_time %lld us", in->uuid,
             (long long)in->r.boot_time_us);
    struct timeval tv = {HEALTHY_RESET_MS / 1000, 0};
    evtimer_add(in->healthy_timer, &tv);
    agent_mark_dirty(ag, in);
}

/* The instance met its readiness rule: boot_time_us = request (just before libvirt's start
 * call) -> now. */
static void set_ready(struct agent *ag, struct agent_instance *in)
{
    if (in->ready_seen || in->t0_mono_us <= 0 || in->r.state != NUBO_STATE_STARTING ||
        !(in->domain || in->op == AGENT_OP_CREATE))
        return;
    in->ready_seen = true;
    in->r.boot_time_us = nubo_mono_us() - in->t0_mono_us;
    if (in->domain)
        in->r.phases.guest_us = nubo_mono_us() - in->t1_mono_us;
    /* The guest runs even while libvirt is still finishing its start call (it resumes the
     * vCPUs before it saves state and returns): report it now rather than after libvirt's
     * tail. */
    became_running(ag, in);
}

static void create_done(struct agent *ag, void *arg)
{
    struct create_job *j = arg;
    virConnectClose(j->conn);
    free(j->xml);
    free(j->cmdline);
    bool slot_failed = j->slot && j->rc < 0;
    char sn[32] = "";
    if (j->slot) {
        agent_slot_shape_name(&ag->cfg.slot_shapes[j->slot->shape], sn);
        free(j->slot); /* the instance holds its domain now (or it was destroyed) */
        j->slot = NULL;
        agent_slots_take_done(ag);
    }
    struct agent_instance *in = agent_instance_find(ag, j->uuid);
    if (!in || in->op_gen != j->gen) {
        /* Deleted (or superseded) while libvirt was starting it: do not leak the guest. */
        if (in)
            env_file_remove(in);
        if (j->created)
            dom_job_dom(ag, j->uuid, j->dom, JOB_DESTROY, NULL);
        if (j->created && sn[0])
            agent_net_tap_remove(&ag->cfg, j->tap);
        free(j);
        return;
    }
    in->op = AGENT_OP_NONE;
    env_file_remove(in); /* qemu read it when it started, or it never will */
    if (slot_failed) {
        /* Nothing of the guest ran: start it the plain way. */
        log_warnx("instance %s: warm slot %s (%s) failed: %s; starting it without a slot",
                  in->uuid, j->dom, sn, j->error);
        in->no_slot = true;
        in->r.start_count--; /* do_create counts this start again */
        free(j);
        do_create(ag, in);
        return;
    }
    if (j->restore[0]) { /* the worker consumed the save image either way */
        in->saved = false;
        if (j->restore_error[0])
            log_warnx("instance %s: cannot restore its saved memory (%s); booting it afresh",
                      in->uuid, j->restore_error);
    }
    if (j->rc < 0) {
        /* A guest that runs and ends within milliseconds can make libvirt's start call fail
         * after the guest already ran: its console tells. Then it is a run that ended, not a
         * failed start. */
        agent_on_console(ag, in);
        if (in->ready_seen || in->exit_seen || in->crash_seen) {
            log_info("instance %s: ended while libvirt was starting it (%s)", in->uuid,
                     j->error);
            in->domain = true;
            in->t1_mono_us = j->t1_mono;
            in->r.phases.vmm_us = j->t1_mono - j->t0_mono;
            domain_stopped(ag, in, "ended while libvirt was starting it");
        } else {
            fail_start(ag, in, "cannot start instance %s: %s", in->uuid, j->error);
            agent_reconcile(ag, in);
        }
        free(j);
        return;
    }
    in->domain = true;
    in->t0_mono_us = j->t0_mono;
    in->t0_real_us = j->t0_real;
    in->t1_mono_us = j->t1_mono;
    in->r.phases.domain_us = j->t0_mono - in->t_prep_mono_us;
    if (sn[0]) {
        /* the guest runs from the resume on: its boot is counted from there */
        in->r.phases.slot_us = j->t_resume_mono - j->t0_mono;
        in->r.phases.copy_us = j->copy_us;
        in->t1_mono_us = j->t_resume_mono;
    } else
        in->r.phases.vmm_us = j->t1_mono - j->t0_mono;
    /* started_at stays the launch's (set with start_count): under TCG the guest's ready marker,
     * and with it a running report, often comes before libvirt returns, and a started_at that
     * moved afterwards looked like a restart to anyone comparing it (tests/integration/e2e_ha.sh) */
    if (j->net_error[0])
        log_warnx("instance %s: %s", in->uuid, j->net_error);
    if (in->guest_shutdown) { /* it ended while libvirt was still returning */
        in->op = AGENT_OP_DESTROY;
        dom_job(ag, in, JOB_DESTROY);
    } else if (in->check_after_create) {
        in->check_after_create = false;
        dom_job(ag, in, JOB_CHECK);
    }
    /* The marker may have been read while libvirt was still returning. */
    agent_on_console(ag, in);
    /* a restored guest runs its app already: no marker will come, the restore was its boot */
    if (j->restored) {
        log_info("instance %s: restored from its saved memory", in->uuid);
        set_ready(ag, in);
    }
    if (in->ready_seen) { /* it reached its marker while libvirt was still returning */
        in->r.phases.guest_us =
            in->r.boot_time_us - in->r.phases.vmm_us - in->r.phases.slot_us;
        if (in->r.phases.guest_us < 0)
            in->r.phases.guest_us = 0;
        /* its running report went out with the launch's phases still zero: send them now */
        agent_mark_dirty(ag, in);
    }
    if (sn[0])
        log_info("instance %s: started from warm slot %s (%s; image %lld us, domain prep %lld "
                 "us, worker start %lld us, slot take %lld us of which RAM copy %lld us, "
                 "virDomainResume %lld us; then rules %lld us, label %lld us)",
                 in->uuid, j->dom, sn, (long long)in->r.phases.image_us,
                 (long long)in->r.phases.domain_us, (long long)(j->t0_mono - j->t_spawn_mono),
                 (long long)in->r.phases.slot_us, (long long)in->r.phases.copy_us,
                 (long long)(j->t1_mono - j->t_resume_mono), (long long)j->rules_us,
                 (long long)j->label_us);
    else
        log_info("instance %s: domain started (image %lld us, domain prep %lld us, "
                 "virDomainCreateXML %lld us)",
                 in->uuid, (long long)in->r.phases.image_us, (long long)in->r.phases.domain_us,
                 (long long)in->r.phases.vmm_us);
    if (in->a.n_service_ports > 0 && in->a.private_ip[0]) {
        struct probe_job *p = calloc(1, sizeof(*p));
        if (p) {
            snprintf(p->uuid, sizeof(p->uuid), "%s", in->uuid);
            p->gen = in->op_gen;
            p->cfg = ag->cfg;
            snprintf(p->ip, sizeof(p->ip), "%s", in->a.private_ip);
            p->n_ports = in->a.n_service_ports < NUBO_AGENT_MAX_PORTS ? in->a.n_service_ports
                                                                      : NUBO_AGENT_MAX_PORTS;
            memcpy(p->ports, in->a.service_ports, p->n_ports * sizeof(int64_t));
            if (agent_spawn(ag, probe_work, probe_done, p) < 0)
                free(p);
        }
    }
    agent_mark_dirty(ag, in);
    free(j);
    agent_reconcile(ag, in);
}

void agent_instance_boot_rules(struct agent_instance *in)
{
    if (!in->img)
        return;
    const char *pattern = NULL;
    in->ready_rule = agent_ready_rule(agent_image_label(in->img, "org.nubo.ready"),
                                      in->img->has_marker, &pattern);
    snprintf(in->ready_pattern, sizeof(in->ready_pattern), "%s", pattern ? pattern : "");
    if (in->ready_rule == AGENT_READY_PORT && (in->a.n_service_ports == 0 || !in->a.private_ip[0]))
        in->ready_rule = AGENT_READY_OUTPUT; /* nothing to probe: the first output counts */
    in->foreign = !in->img->has_marker;
}

/* Stock kernels that are not Linux (Unikraft) have no ACPI power-button handler: a shutdown
 * request would only make the stop wait out the whole grace. */
static bool honours_acpi_shutdown(const struct agent_instance *in)
{
    /* A warm slot's guest gets the agent's ACPI tables (slots.c): the same power button. */
    return !in->img || in->img->linux_kernel || in->img->has_marker;
}

/* Why this start cannot take a warm slot (NULL: it can). A slot boots a 64-bit PVH kernel
 * with no initrd, no ACPI tables and no devices beyond its NIC; all else is fixed at launch. */
static const char *slot_refusal(struct agent *ag, const struct agent_instance *in, bool with_net)
{
    if (in->no_slot)
        return "a warm slot failed for this start";
    if (in->saved)
        return "it resumes from the memory its standby saved";
    if (in->img->boot != AGENT_BOOT_PVH)
        return "its kernel is not a PVH ELF";
    if (in->img->initrd[0])
        return "its image has an initrd (a slot passes no ramdisk)";
    if (in->img->linux_kernel)
        return "a Linux kernel (wants ACPI tables a slot does not have)";
    if (agent_image_env_via_fw_cfg(in->img))
        return "its environment goes through fw_cfg, fixed when qemu starts";
    if (in->a.n_volumes > 0)
        return "it mounts volumes (disks are fixed when qemu starts)";
    if (!with_net && in->a.private_ip[0])
        return "the node's bridge is not ready";
    if (agent_slot_shape_find(&ag->cfg, in->a.memory_mb, in->a.vcpus) < 0)
        return "no slot shape of its memory and vCPUs is configured";
    return NULL;
}

static void do_create(struct agent *ag, struct agent_instance *in)
{
    in->pending_create = false;
    in->t_prep_mono_us = nubo_mono_us();
    struct agent_kernel_info ki = {.boot = in->img->boot, .linux_kernel = in->img->linux_kernel};
    char why[AGENT_MSG_MAX - 96];
    if (agent_kernel_refusal(&ki, in->img->platform, why, sizeof(why)) < 0) {
        fail_start(ag, in, "cannot boot instance %s: %s", in->uuid, why);
        return;
    }
    struct agent_disk disks[NUBO_VOLUME_MAX_MOUNTS];
    int vr = agent_volumes_disks(ag, &in->a, disks, why, sizeof(why));
    if (vr > 0) { /* its volume is being made: volumes.c reconciles when it is */
        in->pending_create = true;
        log_info("instance %s: waiting for its volumes", in->uuid);
        return;
    }
    if (vr < 0) {
        fail_start(ag, in, "cannot start instance %s: %s", in->uuid, why);
        return;
    }
    agent_instance_boot_rules(in);
    cleanup_free char *cmdline = agent_build_cmdline(&in->a, in->img, ag->tsc_khz);
    char console[AGENT_PATH_MAX + 64];
    snprintf(console, sizeof(console), "%s/console.log", in->con.dir);
    bool with_net = ag->bridge_ready && in->a.private_ip[0];
    /* A plain start runs in a domain named after the instance, with a tap and MAC of its
     * own; a warm slot's come with the slot. */
    snprintf(in->dom, sizeof(in->dom), "%s", in->uuid);
    agent_net_tap_name(in->uuid, in->tap);
    in->mac[0] = '\0';
    char mac[AGENT_MAC_STR_MAX];
    agent_net_guest_mac(in->a.private_ip, mac);
    struct agent_domain_spec spec = {
        .uuid = in->uuid,
        .node = ag->cfg.node_name,
        .kernel = in->img->kernel,
        .initrd = in->img->initrd[0] ? in->img->initrd : NULL,
        .cmdline = cmdline,
        .console_path = console,
        .tap = with_net ? in->tap : NULL,
        .mac = with_net ? mac : NULL,
        .memory_mb = in->a.memory_mb, /* the decoder guarantees >= 1 of each */
        .vcpus = in->a.vcpus,
        .accel = ag->accel,
        .boot = in->img->boot,
        .rdseed = ag->virt.tcg_rdseed,
        .disks = disks,
        .n_disks = in->a.n_volumes,
    };
    /* x86 Linux keeps 2047 bytes of its command line and drops the rest silently (the app's
     * args and env come last): refuse instead of booting a guest with half its settings. */
    if (cmdline && strlen(cmdline) > AGENT_CMDLINE_MAX) {
        fail_start(ag, in,
                   "kernel command line of instance %s is %zu bytes, over the %d-byte limit: "
                   "shorten its args or env",
                   in->uuid, strlen(cmdline), AGENT_CMDLINE_MAX);
        return;
    }
    char env_file[AGENT_PATH_MAX + 64] = "";
    if (cmdline && agent_image_env_via_fw_cfg(in->img)) {
        struct nubo_err err = {0};
        if (write_env_file(in, env_file, sizeof(env_file), &err) < 0) {
            fail_start(ag, in, "cannot prepare the environment of instance %s: %s", in->uuid,
                       err.msg);
            return;
        }
        spec.env_file = env_file[0] ? env_file : NULL;
    }
    struct agent_slot *slot = NULL;
    if (ag->cfg.slot_pool_size > 0 && cmdline) {
        const char *plain = slot_refusal(ag, in, with_net);
        if (!plain && !(slot = agent_slots_take(ag, in->a.memory_mb, in->a.vcpus)))
            plain = "no warm slot of its shape is ready";
        if (plain)
            log_info("instance %s: plain start (%s)", in->uuid, plain);
    }
    in->no_slot = false;
    char *xml = cmdline && !slot ? agent_domain_xml(&spec) : NULL;
    if (!xml && !slot) {
        fail_start(ag, in, "cannot build the domain of instance %s: out of memory", in->uuid);
        return;
    }
    if (!in->a.private_ip[0] || !ag->bridge_ready)
        log_info("instance %s: starting without network (%s)", in->uuid,
                 !in->a.private_ip[0] ? "no private ip assigned" : "node bridge not ready");
    /* Whatever the console holds so far belongs to the previous boot. */
    agent_on_console(ag, in);
    in->con.line_len = 0;
    in->ready_seen = in->exit_seen = in->crash_seen = in->guest_shutdown = false;
    in->main_returned = in->guest_poweroff = false;
    in->main_code = 0;
    in->check_after_create = false;
    in->stop_why[0] = '\0';
    in->crash_text[0] = '\0';
    in->t0_mono_us = 0;
    struct create_job *j = calloc(1, sizeof(*j));
    if (!j) {
        free(xml);
        if (slot)
            agent_slots_take_done(ag);
        free(slot);
        fail_start(ag, in, "cannot start instance %s: out of memory", in->uuid);
        return;
    }
    j->ag = ag;
    snprintf(j->uuid, sizeof(j->uuid), "%s", in->uuid);
    j->gen = ++in->op_gen;
    j->conn = ag->virt.conn;
    virConnectRef(j->conn);
    j->xml = xml;
    j->cfg = ag->cfg;
    if (slot) {
        snprintf(in->dom, sizeof(in->dom), "%s", slot->name);
        snprintf(in->tap, sizeof(in->tap), "%s", slot->tap);
        snprintf(in->mac, sizeof(in->mac), "%s", slot->mac);
        j->slot = slot;
        j->cmdline = steal_pointer(&cmdline);
        snprintf(j->kernel, sizeof(j->kernel), "%s", in->img->kernel);
        snprintf(j->console_from, sizeof(j->console_from), "%s/slots/%s.log", ag->cfg.state_dir,
                 slot->name);
        snprintf(j->console_to, sizeof(j->console_to), "%s", console);
    }
    snprintf(j->dom, sizeof(j->dom), "%s", in->dom);
    snprintf(j->tap, sizeof(j->tap), "%s", in->tap);
    snprintf(j->ip, sizeof(j->ip), "%s", in->a.private_ip);
    j->with_net = with_net;
    if (in->saved)
        save_path(in, j->restore, sizeof(j->restore));
    in->op = AGENT_OP_CREATE;
    in->r.start_count++;
    in->r.started_at_us = nubo_now_us();
    in->t0_real_us = in->r.started_at_us; /* saved: a restarted agent times the boot from it */
    /* boot_time_us counts from here; the marker may arrive before the call returns */
    in->t0_mono_us = nubo_mono_us();
    j->t_spawn_mono = in->t0_mono_us;
    if (agent_spawn(ag, create_work, create_done, j) < 0) {
        virConnectClose(j->conn);
        free(j->xml);
        free(j->cmdline);
        if (j->slot)
            agent_slots_take_done(ag);
        free(j->slot); /* its paused domain is adopted back at the next resync */
        free(j);
        fail_start(ag, in, "cannot start instance %s: no thread", in->uuid);
    }
}

struct image_wait {
    char uuid[NUBO_UUID_STR_LEN + 1];
    uint64_t gen;
};

static void on_image(struct agent *ag, void *opaque, struct agent_image *img, const char *error)
{
    struct image_wait *w = opaque;
    struct agent_instance *in = agent_instance_find(ag, w->uuid);
    if (!in || in->op_gen != w->gen || in->op != AGENT_OP_PULL) {
        if (img)
            agent_image_unref(ag, img);
        free(w);
        return;
    }
    free(w);
    in->op = AGENT_OP_NONE;
    if (!img) {
        fail_start(ag, in, "cannot pull image %s for instance %s: %s", in->a.image, in->uuid,
                   error);
        agent_reconcile(ag, in);
        return;
    }
    /* qemu holds the kernel and initrd in its own memory and copies them into the guest's: an
     * image larger than the instance's memory cannot boot, and would cost the node far more
     * than the instance's memory_mb (a 512 MiB kernel in a 16 MiB instance: 1.6 GB RSS). */
    int64_t mem_mb = in->a.memory_mb > 0 ? in->a.memory_mb : 128;
    uint64_t boot_bytes = agent_file_disk_bytes(img->kernel) +
                          (img->initrd[0] ? agent_file_disk_bytes(img->initrd) : 0);
    if (boot_bytes > (uint64_t)mem_mb << 20) {
        agent_image_unref(ag, img);
        fail_start(ag, in,
                   "image %s needs %llu MiB for its kernel and initrd, more than the %lld MiB "
                   "of memory of instance %s: give it more memory (memory_mb) or use a "
                   "smaller image",
                   in->a.image, (unsigned long long)((boot_bytes + (1u << 20) - 1) >> 20),
                   (long long)mem_mb, in->uuid);
        agent_reconcile(ag, in);
        return;
    }
    if (in->img && in->img != img)
        agent_image_unref(ag, in->img);
    else if (in->img == img)
        agent_image_unref(ag, img); /* keep one reference per instance */
    in->img = img;
    in->r.phases.image_us = nubo_mono_us() - in->t_pull_mono_us;
    if (!in->assigned || in->a.desired_state != NUBO_DESIRED_RUNNING || in->want_stop) {
        in->r.state = NUBO_STATE_STOPPED;
        in->r.stopped_at_us = nubo_now_us();
        in->r.stop_reason = NUBO_STOP_USER | NUBO_STOP_PLATFORM;
        agent_mark_dirty(ag, in);
        agent_reconcile(ag, in);
        return;
    }
    if (!ag->virt.conn) {
        in->pending_create = true;
        log_info("instance %s: waiting for libvirt to start it", in->uuid);
        return;
    }
    do_create(ag, in);
}

static void start_instance(struct agent *ag, struct agent_instance *in)
{
    timer_clear(in);
    in->want_stop = in->stop_force = in->stop_user = false;
    in->r.state = NUBO_STATE_STARTING;
    in->r.start_seq = in->a.start_seq;
    in->r.boot_time_us = 0;
    in->r.net_time_us = 0;
    memset(&in->r.phases, 0, sizeof(in->r.phases));
    in->r.stop_reason = 0;
    in->r.has_exit_code = in->r.has_stop_code = false;
    in->r.stopped_at_us = 0;
    in->r.restart_next_at_us = 0;
    /* a boot starts the guest's counter at 0, and a guest only goes to standby (saved or
     * not) with its counter at 0 */
    in->r.s2z_disable = 0;
    in->msg[0] = '\0';
    in->op = AGENT_OP_PULL;
    in->t_pull_mono_us = nubo_mono_us();
    struct image_wait *w = calloc(1, sizeof(*w));
    if (!w) {
        fail_start(ag, in, "out of memory");
        return;
    }
    snprintf(w->uuid, sizeof(w->uuid), "%s", in->uuid);
    w->gen = ++in->op_gen;
    log_info("instance %s: starting (image %s, %lld MiB, %lld vCPU)", in->uuid, in->a.image,
             (long long)in->a.memory_mb, (long long)in->a.vcpus);
    agent_mark_dirty(ag, in);
    agent_image_get(ag, in->a.image, on_image, w);
}

/* ---- stop ---- */

/* ACPI shutdown with the grace timer, or destroy at once for a guest that cannot take one. */
static void request_shutdown(struct agent *ag, struct agent_instance *in)
{
    if (!honours_acpi_shutdown(in)) {
        in->op = AGENT_OP_DESTROY;
        dom_job(ag, in, JOB_DESTROY);
        return;
    }
    dom_job(ag, in, JOB_SHUTDOWN);
    timer_set(in, AGENT_TIMER_SHUTDOWN, ag->cfg.shutdown_timeout_ms);
}

static void begin_stop(struct agent *ag, struct agent_instance *in, bool force, int64_t drain_ms)
{
    if (in->want_stop && !(force && !in->stop_force))
        return;
    in->want_stop = true;
    in->stop_user = true;
    in->stop_force = in->stop_force || force;
    evtimer_del(in->healthy_timer);
    if (in->op == AGENT_OP_CREATE)
        return; /* create_done reconciles again */
    char path[AGENT_PATH_MAX + 64];
    save_path(in, path, sizeof(path));
    /* (a guest in a warm slot is not saved: its restore would bring back the slot's domain,
     * not one named after the instance; its standby is stateless) */
    if (!force && in->assigned && in->a.stop_save && in->a.desired_state == NUBO_DESIRED_STOPPED &&
        in->op == AGENT_OP_NONE && strcmp(in->dom, in->uuid) == 0 && dom_job_dom(ag, in->uuid, in->dom, JOB_SAVE, path) == 0) {
        /* a stateful standby: the guest's memory goes to disk, libvirt ends the domain */
        in->r.state = NUBO_STATE_STOPPING;
        timer_clear(in);
        in->op = AGENT_OP_SAVE;
    } else if (force) {
        in->r.state = NUBO_STATE_STOPPING;
        timer_clear(in);
        in->op = AGENT_OP_DESTROY;
        dom_job(ag, in, JOB_DESTROY);
    } else if (drain_ms > 0) {
        in->r.state = NUBO_STATE_DRAINING;
        timer_set(in, AGENT_TIMER_DRAIN, drain_ms);
    } else {
        in->r.state = NUBO_STATE_STOPPING;
        request_shutdown(ag, in);
    }
    log_info("instance %s: %s", in->uuid, nubo_state_name(in->r.state));
    agent_mark_dirty(ag, in);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent_instance *in = arg;
    struct agent *ag = in->ag_back;
    int kind = in->timer_kind;
    in->timer_kind = AGENT_TIMER_NONE;
    switch (kind) {
    case AGENT_TIMER_DRAIN:
        in->r.state = NUBO_STATE_STOPPING;
        request_shutdown(ag, in);
        agent_mark_dirty(ag, in);
        break;
    case AGENT_TIMER_SHUTDOWN:
        log_info("instance %s: no shutdown within %lld ms; destroying", in->uuid,
                 (long long)ag->cfg.shutdown_timeout_ms);
        in->op = AGENT_OP_DESTROY;
        dom_job(ag, in, JOB_DESTROY);
        break;
    case AGENT_TIMER_RESTART:
        in->restart_due = true;
        agent_reconcile(ag, in);
        break;
    default:
        break;
    }
}

static void on_healthy(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct agent_instance *in = arg;
    if (in->r.state == NUBO_STATE_RUNNING && in->r.restart_attempt != 0) {
        in->r.restart_attempt = 0;
        agent_mark_dirty(in->ag_back, in);
    }
}

/* The domain is gone: decide what it was (user stop, app exit, crash), maybe restart. */
static void domain_stopped(struct agent *ag, struct agent_instance *in, const char *why_in)
{
    char why[64];
    snprintf(why, sizeof(why), "%s", why_in);
    in->stop_why[0] = '\0';
    agent_on_console(ag, in); /* a NUBO_EXIT written just before the end counts */
    /* A stock kernel has no NUBO_EXIT: powering itself off (ACPI) is its exit, with the code
     * Unikraft printed if it did (else 0); a panic (pvpanic: libvirt's crashed event), a CRIT
     * line or a failed init is a crash. */
    if (in->foreign && !in->exit_seen && !in->crash_seen && in->guest_poweroff &&
        !in->crash_text[0]) {
        in->exit_seen = true;
        in->exit_code = in->main_returned ? in->main_code : 0;
    }
    in->domain = false;
    if (in->op == AGENT_OP_DESTROY || in->op == AGENT_OP_SAVE)
        in->op = AGENT_OP_NONE;
    timer_clear(in);
    evtimer_del(in->healthy_timer);
    agent_net_tap_remove(&ag->cfg, in->tap);
    bool was_user = in->stop_user;
    uint32_t reason;
    in->r.has_exit_code = false;
    in->r.has_stop_code = false;
    if (was_user) {
        if (in->stop_force && !in->exit_seen)
            reason = NUBO_STOP_FORCED | NUBO_STOP_USER | NUBO_STOP_PLATFORM;
        else if (in->exit_seen)
            reason = NUBO_STOP_USER | NUBO_STOP_PLATFORM | NUBO_STOP_APP | NUBO_STOP_KERNEL;
        else
            reason = NUBO_STOP_USER | NUBO_STOP_PLATFORM | NUBO_STOP_KERNEL;
        if (!in->assigned)
            reason = NUBO_STOP_PLATFORM | (reason & (NUBO_STOP_APP | NUBO_STOP_KERNEL));
    } else if (in->exit_seen) {
        reason = NUBO_STOP_APP | NUBO_STOP_KERNEL;
    } else {
        reason = NUBO_STOP_KERNEL;
        if (in->crash_text[0])
            set_msg(in, "instance %s crashed: %s", in->uuid, in->crash_text);
        else if (in->foreign)
            set_msg(in, "instance %s crashed (%s)", in->uuid,
                    in->crash_seen ? "guest panic" : why);
        else
            set_msg(in, "instance %s stopped without NUBO_EXIT (%s)%s", in->uuid, why,
                    in->ready_seen ? "" : " before its ready marker");
    }
    if (reason & NUBO_STOP_APP) {
        in->r.has_exit_code = true;
        in->r.exit_code = in->exit_code;
    }
    if (reason & NUBO_STOP_KERNEL) {
        in->r.has_stop_code = true;
        in->r.stop_code = in->exit_seen ? 0 : (in->crash_seen ? 1 : 0);
    }
    in->r.stop_reason = reason;
    in->r.state = NUBO_STATE_STOPPED;
    in->r.stopped_at_us = nubo_now_us();
    in->want_stop = in->stop_user = in->stop_force = false;
    log_info("instance %s: stopped (stop_reason %u%s%s)", in->uuid, reason,
             in->exit_seen ? ", exit code " : "", in->exit_seen ? "given" : "");
    /* Restart policy: only stops that came from inside the guest count. */
    if (!was_user && in->assigned && in->a.desired_state == NUBO_DESIRED_RUNNING) {
        bool failed = !in->exit_seen || in->exit_code != 0;
        if (in->a.restart_policy == NUBO_RESTART_ALWAYS ||
            (in->a.restart_policy == NUBO_RESTART_ON_FAILURE && failed)) {
            int64_t delay = agent_restart_delay_ms(in->r.restart_attempt);
            in->r.restart_attempt++;
            in->r.restart_next_at_us = nubo_now_us() + delay * 1000;
            log_info("instance %s: restart %lld in %lld ms (policy %s)", in->uuid,
                     (long long)in->r.restart_attempt, (long long)delay,
                     nubo_restart_policy_name(in->a.restart_policy));
            timer_set(in, AGENT_TIMER_RESTART, delay);
        }
    }
    agent_mark_dirty(ag, in);
    agent_reconcile(ag, in);
}

/* ---- events ---- */

static void on_marker(void *opaque, enum agent_marker m, int code, const char *text)
{
    struct agent_instance *in = opaque;
    struct agent *ag = in->ag_back;
    switch (m) {
    case AGENT_MARK_READY:
        if (in->ready_rule == AGENT_READY_MARKER)
            set_ready(ag, in);
        break;
    case AGENT_MARK_EXIT:
        in->exit_seen = true;
        in->exit_code = code;
        break;
    case AGENT_MARK_CRASH:
        in->crash_seen = true;
        snprintf(in->crash_text, sizeof(in->crash_text), "%s", text);
        break;
    case AGENT_MARK_S2Z_DISABLE:
        if (in->r.s2z_disable != code) {
            in->r.s2z_disable = code;
            log_info("instance %s: scale-to-zero disable counter %d", in->uuid, code);
            agent_mark_dirty(ag, in);
        }
        break;
    case AGENT_MARK_OUTPUT:
        if (in->ready_rule == AGENT_READY_OUTPUT)
            set_ready(ag, in);
        break;
    case AGENT_MARK_LINE:
        if (in->ready_rule == AGENT_READY_LINE && strstr(text, in->ready_pattern))
            set_ready(ag, in);
        if (in->foreign) {
            int c = 0;
            int k = agent_unikraft_line(text, &c);
            if (k == 1) {
                in->main_returned = true;
                in->main_code = c;
            } else if (k == 2 && !in->crash_text[0]) {
                /* From the level on: "CRIT: [lib…] <file @ line> what", no timestamp. */
                const char *t = strstr(text, "CRIT: ");
                if (!t)
                    t = strstr(text, "ERR: ");
                snprintf(in->crash_text, sizeof(in->crash_text), "%s", t ? t : text);
                size_t n = strlen(in->crash_text); /* the console's CR became a blank */
                while (n > 0 && in->crash_text[n - 1] == ' ')
                    in->crash_text[--n] = '\0';
            }
        }
        break;
    default:
        break;
    }
}

void agent_on_console(struct agent *ag, struct agent_instance *in)
{
    (void)ag;
    if (in->con.ring_fd < 0)
        return;
    if (agent_console_pump(&in->con, on_marker, in) > 0)
        agent_ev_kick(ag);
}

void agent_on_domain_event(struct agent *ag, const char *name, int event, int detail)
{
    struct agent_instance *in = agent_instance_find_dom(ag, name);
    if (!in) {
        agent_slots_on_event(ag, name, event); /* maybe a warm slot's */
        return;
    }
    log_debug("instance %s: libvirt event %d/%d (domain %s)", in->uuid, event, detail, name);
    switch (event) {
    case VIR_DOMAIN_EVENT_SHUTDOWN:
        /* The guest powered off or reset itself (qemu is already gone); libvirt takes a second
         * or more to reap it and report the domain stopped, destroying now ends it sooner. */
        in->guest_shutdown = true;
        /* HOST: qemu was killed (our destroy), not a poweroff the guest asked for. */
        if (detail != VIR_DOMAIN_EVENT_SHUTDOWN_HOST)
            in->guest_poweroff = true;
        if (in->domain && in->op == AGENT_OP_NONE) {
            in->op = AGENT_OP_DESTROY;
            dom_job(ag, in, JOB_DESTROY);
        }
        break;
    case VIR_DOMAIN_EVENT_STOPPED:
    case VIR_DOMAIN_EVENT_CRASHED:
        /* A guest panic (pvpanic; Unikraft writes it on every crash). */
        if (event == VIR_DOMAIN_EVENT_CRASHED ||
            (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_CRASHED))
            in->crash_seen = true;
        if (in->op == AGENT_OP_CREATE) {
            /* Ended before libvirt's start call returned — or a late event of the previous
             * run: create_done asks libvirt which it was. */
            in->check_after_create = true;
            break;
        }
        if (in->domain || in->op == AGENT_OP_DESTROY) {
            static const char *const why[] = {"shutdown",  "destroyed", "crashed", "migrated",
                                              "saved",     "failed",    "snapshot"};
            const char *w = event == VIR_DOMAIN_EVENT_CRASHED ? "crashed"
                            : (detail >= 0 && detail < 7)     ? why[detail]
                                                              : "stopped";
            if (event == VIR_DOMAIN_EVENT_STOPPED && detail == VIR_DOMAIN_EVENT_STOPPED_DESTROYED &&
                !in->want_stop && !in->guest_shutdown)
                w = "destroyed outside nubo";
            snprintf(in->stop_why, sizeof(in->stop_why), "%s", w);
            /* Events are delivered late: one about the previous run of this instance may arrive
             * after a quick restart. Ask libvirt before believing it. */
            dom_job(ag, in, JOB_CHECK);
        }
        break;
    default:
        break;
    }
}

void agent_resync_domains(struct agent *ag)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(ag->virt.conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        log_warnx("cannot list libvirt domains: %s", virGetLastErrorMessage());
        n = 0;
    }
    struct agent_instance *in, *tmp;
    bool *seen = calloc((size_t)n + 1, sizeof(bool));
    for (int i = 0; i < n; i++) {
        const char *name = virDomainGetName(doms[i]);
        char slot[32], taken_by[NUBO_UUID_STR_LEN + 1];
        if (!name || !nubo_uuid_valid(name) ||
            !agent_domain_meta(doms[i], ag->cfg.node_name, slot, taken_by))
            continue;
        in = agent_instance_find_dom(ag, name);
        if (!in && taken_by[0] && (in = agent_instance_find(ag, taken_by)) != NULL &&
            (in->domain || in->op == AGENT_OP_CREATE) && strcmp(in->dom, name) != 0)
            in = NULL; /* that instance runs elsewhere: this is a leftover */
        if (!in && taken_by[0] && (in = agent_instance_find(ag, taken_by)) != NULL) {
            /* A slot it took before the state file said so (the agent died in between). */
            snprintf(in->dom, sizeof(in->dom), "%s", name);
            agent_slot_net_names(name, in->tap, in->mac);
        }
        if (!in && slot[0] && !taken_by[0]) {
            agent_slots_adopt(ag, doms[i], slot); /* a warm slot: back in the pool, or gone */
            continue;
        }
        if (!in && slot[0]) {
            log_info("warm slot %s: taken by instance %s, which this node no longer holds; "
                     "destroyed", name, taken_by);
            virDomainDestroy(doms[i]);
            continue;
        }
        if (!in) {
            /* Ours by its metadata but not in our state file (lost write): adopt it. */
            in = agent_instance_new(ag, name);
            if (!in)
                continue;
            in->assigned = false;
            in->r.state = NUBO_STATE_RUNNING;
            log_info("instance %s: adopted from libvirt (not in the state file)", name);
        }
        if (strcmp(name, in->uuid) != 0)
            log_info("instance %s: domain found running in warm slot %s, re-adopted (%s)",
                     in->uuid, name, nubo_state_name(in->r.state));
        else
            log_info("instance %s: domain found running, re-adopted (%s)", name,
                     nubo_state_name(in->r.state));
        if (!in->domain && in->op == AGENT_OP_NONE &&
            (in->r.state == NUBO_STATE_STOPPED || in->r.state == NUBO_STATE_STARTING)) {
            /* The agent died while libvirt was starting it: it is running now; whether the
             * guest got to its marker the console tells (boot time from the saved start). */
            in->r.state = in->ready_seen ? NUBO_STATE_RUNNING : NUBO_STATE_STARTING;
            if (in->t0_mono_us <= 0)
                in->t0_mono_us = nubo_mono_us();
            in->r.stopped_at_us = 0;
            agent_mark_dirty(ag, in);
        }
        in->domain = true;
        if (seen)
            seen[i] = true;
        agent_on_console(ag, in);
    }
    /* Domains we had that are no longer there ended while we were not listening. */
    for (in = LIST_FIRST(&ag->instances); in; in = tmp) {
        tmp = LIST_NEXT(in, link);
        if (!in->domain)
            continue;
        bool found = false;
        for (int i = 0; i < n; i++) {
            const char *name = virDomainGetName(doms[i]);
            if (name && strcmp(name, in->dom) == 0)
                found = true;
        }
        if (!found)
            domain_stopped(ag, in, "ended while the agent was away");
    }
    agent_slots_resync_done(ag, doms, n);
    for (int i = 0; i < n; i++)
        virDomainFree(doms[i]);
    free(doms);
    free(seen);
    /* Re-adopted guests keep their rules; those of guests that ended meanwhile go. */
    if (ag->bridge_ready) {
        struct nubo_err err = {0};
        if (agent_fw_sync(ag, &err) < 0)
            log_warnx("%s", err.msg);
    }
    /* A destroy asked for while libvirt was away was never sent: send it now. */
    LIST_FOREACH(in, &ag->instances, link)
    if (in->domain && in->op == AGENT_OP_DESTROY)
        dom_job(ag, in, JOB_DESTROY);
    agent_reconcile_all(ag);
    agent_schedule_save(ag);
}

/* ---- reconcile ---- */

void agent_reconcile(struct agent *ag, struct agent_instance *in)
{
    if (!in->assigned) {
        if (!ag->have_assignments)
            return; /* adopted before the first desired set: wait for it */
        if (in->op == AGENT_OP_CREATE)
            return;
        if (in->domain) {
            if (in->op != AGENT_OP_DESTROY) {
                in->want_stop = in->stop_user = in->stop_force = true;
                in->op = AGENT_OP_DESTROY;
                dom_job(ag, in, JOB_DESTROY);
            }
            return;
        }
        instance_delete(ag, in);
        return;
    }
    if (in->op == AGENT_OP_CREATE || in->op == AGENT_OP_DESTROY || in->op == AGENT_OP_SAVE)
        return;
    if (in->a.desired_state == NUBO_DESIRED_STOPPED) {
        /* stopped for good (not a stateful standby): the next start is a boot */
        if (in->saved && !in->a.stop_save)
            save_discard(ag, in);
        if (in->timer_kind == AGENT_TIMER_RESTART || in->restart_due) {
            timer_clear(in);
            in->restart_due = false;
            in->r.restart_next_at_us = 0;
            agent_mark_dirty(ag, in);
        }
        if (in->op == AGENT_OP_PULL || in->pending_create) {
            in->op_gen++; /* drop the pull's result */
            in->op = AGENT_OP_NONE;
            in->pending_create = false;
            in->r.state = NUBO_STATE_STOPPED;
            in->r.stopped_at_us = nubo_now_us();
            in->r.stop_reason = NUBO_STOP_USER | NUBO_STOP_PLATFORM;
            agent_mark_dirty(ag, in);
            return;
        }
        if (in->domain)
            begin_stop(ag, in, in->a.stop_force, in->a.stop_drain_timeout_ms);
        /* A user start seen while stopped is consumed so it does not fire later. */
        if (!in->domain && in->a.start_seq > in->start_seq_done)
            in->start_seq_done = in->a.start_seq;
        return;
    }
    /* desired running */
    if (in->pending_create) {
        if (ag->virt.conn)
            do_create(ag, in);
        return;
    }
    if (in->op != AGENT_OP_NONE || in->domain) {
        /* A start request for an instance that is starting or running is already met. */
        if (!in->want_stop && in->a.start_seq > in->start_seq_done) {
            in->start_seq_done = in->a.start_seq;
            in->r.start_seq = in->a.start_seq;
            agent_mark_dirty(ag, in);
        }
        return;
    }
    if (in->a.start_seq > in->start_seq_done) {
        /* A user start (or a new instance): a fresh restart sequence. */
        in->start_seq_done = in->a.start_seq;
        in->r.restart_attempt = 0;
        in->restart_due = false;
        start_instance(ag, in);
    } else if (in->restart_due) {
        in->restart_due = false;
        in->r.restart_count++;
        start_instance(ag, in);
    }
}

void agent_reconcile_all(struct agent *ag)
{
    struct agent_instance *in, *tmp;
    for (in = LIST_FIRST(&ag->instances); in; in = tmp) {
        tmp = LIST_NEXT(in, link);
        agent_reconcile(ag, in);
    }
}

void agent_apply_assignments(struct agent *ag, const struct nubo_watch_resp *w)
{
    ag->have_assignments = true;
    /* volumes first: an instance of this set may mount one made in it */
    if (w->has_volumes)
        agent_volumes_apply(ag, w->volumes, w->n_volumes);
    struct agent_instance *in, *tmp;
    LIST_FOREACH(in, &ag->instances, link)
    in->assigned = false;
    for (size_t i = 0; i < w->n_assignments; i++) {
        const struct nubo_assignment *a = &w->assignments[i];
        in = agent_instance_find(ag, a->uuid);
        if (!in) {
            in = agent_instance_new(ag, a->uuid);
            if (!in) {
                log_warnx("instance %s: out of memory", a->uuid);
                continue;
            }
            in->r.start_seq = a->start_seq;
            agent_mark_dirty(ag, in);
        }
        struct nubo_assignment copy;
        if (nubo_assignment_copy(&copy, a) < 0) {
            log_warnx("instance %s: cannot copy assignment: out of memory", a->uuid);
            continue;
        }
        nubo_assignment_free(&in->a);
        in->a = copy;
        in->assigned = true;
    }
    for (in = LIST_FIRST(&ag->instances); in; in = tmp) {
        tmp = LIST_NEXT(in, link);
        agent_reconcile(ag, in);
    }
    agent_schedule_save(ag);
}
