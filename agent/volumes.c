/* The node's volumes: one raw file per volume under the volume dir, formatted ext4 on
 * creation, attached to guests as virtio-blk disks.
 *
 * Raw, not qcow2: mkfs.ext4 (e2fsprogs) formats a plain file directly, as the agent's own user
 * and without a loop device, nbd or root; a sparse raw file only takes the blocks the guest
 * wrote; and virtio-blk over raw has no image format between the guest and the file. qcow2's
 * gains (snapshots, backing files) are nothing nubo offers for volumes.
 *
 * Files are made on a worker thread (<uuid>.raw.tmp, mkfs, fsync, rename): a file named
 * <uuid>.raw is always a complete, formatted volume, so an agent restart finds exactly the
 * volumes it made. The main thread owns the list; the desired set (the controller's watch
 * answer) decides what exists: a volume no longer in it is deleted. */
#include "agent_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

struct agent_volume {
    char uuid[NUBO_UUID_STR_LEN + 1];
    int64_t size_mb;
    enum nubo_volume_state state; /* initialized (being made), available, error */
    char message[NUBO_VOLUME_MSG_MAX];
    bool making; /* a worker holds it */
    bool dirty;  /* not yet reported */
    LIST_ENTRY(agent_volume) link;
};

static void vol_path(const struct agent *ag, const char *uuid, const char *suffix, char *out,
                     size_t size)
{
    snprintf(out, size, "%s/%s.raw%s", ag->volume_dir, uuid, suffix);
}

void agent_volume_serial(const char *uuid, char out[AGENT_VOLUME_SERIAL_MAX + 1])
{
    size_t k = 0;
    for (const char *p = uuid; *p && k < AGENT_VOLUME_SERIAL_MAX; p++)
        if (*p != '-')
            out[k++] = *p;
    out[k] = '\0';
}

static struct agent_volume *vol_find(struct agent *ag, const char *uuid)
{
    struct agent_volume *v;
    LIST_FOREACH(v, &ag->volumes, link)
    if (strcmp(v->uuid, uuid) == 0)
        return v;
    return NULL;
}

static struct agent_volume *vol_add(struct agent *ag, const char *uuid, int64_t size_mb,
                                    enum nubo_volume_state st)
{
    struct agent_volume *v = calloc(1, sizeof(*v));
    if (v == NULL)
        return NULL;
    snprintf(v->uuid, sizeof(v->uuid), "%s", uuid);
    v->size_mb = size_mb;
    v->state = st;
    v->dirty = true;
    LIST_INSERT_HEAD(&ag->volumes, v, link);
    return v;
}

int agent_volumes_init(struct agent *ag, struct nubo_err *err)
{
    LIST_INIT(&ag->volumes);
    if (ag->cfg.volume_dir[0])
        snprintf(ag->volume_dir, sizeof(ag->volume_dir), "%s", ag->cfg.volume_dir);
    else if (nubo_snprintf(ag->volume_dir, sizeof(ag->volume_dir), "%s/volumes",
                           ag->cfg.state_dir) < 0)
        return nubo_error(err, 0, "state dir %s: path too long", ag->cfg.state_dir);
    /* traversable, not listable: qemu opens the files (libvirt hands them to its user) */
    if (nubo_mkdir_p(ag->volume_dir, 0711, err) < 0 || chmod(ag->volume_dir, 0711) < 0)
        return nubo_error_wrap(err, "volume dir %s", ag->volume_dir);
    ag->volume_mb = ag->cfg.volume_budget_mb;
    struct statvfs sv;
    if (ag->volume_mb < 0) /* auto: half of what the file system has free now */
        ag->volume_mb = statvfs(ag->volume_dir, &sv) == 0
                            ? (int64_t)((uint64_t)sv.f_bavail * sv.f_frsize >> 21)
                            : 0;
    DIR *d = opendir(ag->volume_dir);
    if (d == NULL)
        return nubo_error(err, errno, "cannot read the volume dir %s", ag->volume_dir);
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL) {
        char uuid[NUBO_UUID_STR_LEN + 1];
        size_t len = strlen(e->d_name);
        if (len <= 4 || len - 4 > NUBO_UUID_STR_LEN)
            continue;
        char path[AGENT_PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/%s", ag->volume_dir, e->d_name);
        snprintf(uuid, sizeof(uuid), "%.*s", (int)(len - 4), e->d_name);
        if (len > 8 && strcmp(e->d_name + len - 8, ".raw.tmp") == 0) {
            unlink(path); /* a creation the last run did not finish */
            continue;
        }
        struct stat st;
        if (strcmp(e->d_name + len - 4, ".raw") != 0 || !nubo_uuid_valid(uuid) ||
            stat(path, &st) < 0)
            continue;
        vol_add(ag, uuid, (int64_t)(st.st_size >> 20), NUBO_VOL_AVAILABLE);
        n++;
    }
    closedir(d);
    log_info("volumes: %zu in %s, %lld MiB offered", n, ag->volume_dir, (long long)ag->volume_mb);
    return 0;
}

void agent_volumes_free(struct agent *ag)
{
    struct agent_volume *v;
    while ((v = LIST_FIRST(&ag->volumes)) != NULL) {
        LIST_REMOVE(v, link);
        free(v);
    }
    free(ag->vol_want);
    ag->vol_want = NULL;
}

struct make_job {
    char uuid[NUBO_UUID_STR_LEN + 1];
    char tmp[AGENT_PATH_MAX + 64], final[AGENT_PATH_MAX + 64];
    int64_t size_mb;
    int rc;
    char error[NUBO_VOLUME_MSG_MAX];
};

static void make_work(void *arg)
{
    struct make_job *j = arg;
    struct nubo_err err = {0};
    int fd = open(j->tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)j->size_mb << 20) < 0) {
        snprintf(j->error, sizeof(j->error), "cannot create the volume file: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        j->rc = -1;
        return;
    }
    close(fd);
    char label[17];
    snprintf(label, sizeof(label), "%.16s", j->uuid);
    /* -m 0: no blocks reserved for root (the app usually is not); lazy init: a large volume
     * is ready at once, the guest kernel zeroes the inode tables in the background */
    char *const argv[] = {"mkfs.ext4", "-q", "-F", "-m", "0", "-L", label,
                          "-E", "lazy_itable_init=1,lazy_journal_init=1", j->tmp, NULL};
    if (agent_run(NULL, argv, &err) < 0) {
        snprintf(j->error, sizeof(j->error), "formatting failed: %.200s", err.msg);
        nubo_scrub_paths(j->error); /* the volume's owner reads it: no host paths */
        unlink(j->tmp);
        j->rc = -1;
        return;
    }
    fd = open(j->tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0 || rename(j->tmp, j->final) < 0) {
        snprintf(j->error, sizeof(j->error), "cannot keep the volume file: %s", strerror(errno));
        unlink(j->tmp);
        j->rc = -1;
    }
    if (fd >= 0)
        close(fd);
}

static void make_done(struct agent *ag, void *arg)
{
    struct make_job *j = arg;
    struct agent_volume *v = vol_find(ag, j->uuid);
    if (v) {
        v->making = false;
        v->state = j->rc == 0 ? NUBO_VOL_AVAILABLE : NUBO_VOL_ERROR;
        snprintf(v->message, sizeof(v->message), "%s", j->rc == 0 ? "" : j->error);
        v->dirty = true;
        if (j->rc == 0)
            log_info("volume %s: %lld MiB ext4 ready", v->uuid, (long long)v->size_mb);
        else
            log_warnx("volume %s: %s", v->uuid, j->error);
    }
    free(j);
    agent_volumes_sweep(ag); /* deleted while it was being made */
    agent_ev_kick(ag);
    agent_ev_reconcile_all(ag); /* instances waiting for it */
}

static void vol_make(struct agent *ag, struct agent_volume *v)
{
    struct make_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    snprintf(j->uuid, sizeof(j->uuid), "%s", v->uuid);
    j->size_mb = v->size_mb;
    vol_path(ag, v->uuid, ".tmp", j->tmp, sizeof(j->tmp));
    vol_path(ag, v->uuid, "", j->final, sizeof(j->final));
    v->making = true;
    v->state = NUBO_VOL_INITIALIZED;
    v->dirty = true;
    if (agent_spawn(ag, make_work, make_done, j) < 0) {
        free(j);
        v->making = false;
        v->state = NUBO_VOL_ERROR;
        snprintf(v->message, sizeof(v->message), "cannot start a worker thread");
    }
}

/* Does an instance with a domain still use v (it must outlive the domain)? */
static bool vol_in_use(struct agent *ag, const char *uuid)
{
    struct agent_instance *in;
    LIST_FOREACH(in, &ag->instances, link)
    {
        if (!in->domain && in->op != AGENT_OP_CREATE)
            continue;
        for (size_t i = 0; i < in->a.n_volumes; i++)
            if (strcmp(in->a.volumes[i].uuid, uuid) == 0)
                return true;
    }
    return false;
}

void agent_volumes_apply(struct agent *ag, const struct nubo_volume_spec *s, size_t n)
{
    struct nubo_volume_spec *copy = calloc(n + 1, sizeof(*copy));
    if (copy == NULL)
        return; /* nothing is deleted on a set we could not keep */
    if (n)
        memcpy(copy, s, n * sizeof(*s));
    free(ag->vol_want);
    ag->vol_want = copy;
    ag->n_vol_want = n;
    ag->have_vol_want = true;
    for (size_t i = 0; i < n; i++) {
        struct agent_volume *v = vol_find(ag, s[i].uuid);
        if (v == NULL && (v = vol_add(ag, s[i].uuid, s[i].size_mb, NUBO_VOL_INITIALIZED)))
            vol_make(ag, v);
    }
    agent_volumes_sweep(ag);
}

void agent_volumes_sweep(struct agent *ag)
{
    if (!ag->have_vol_want)
        return;
    const struct nubo_volume_spec *s = ag->vol_want;
    size_t n = ag->n_vol_want;
    struct agent_volume *v, *tmp;
    for (v = LIST_FIRST(&ag->volumes); v; v = tmp) {
        tmp = LIST_NEXT(v, link);
        bool wanted = false;
        for (size_t i = 0; i < n && !wanted; i++)
            wanted = strcmp(s[i].uuid, v->uuid) == 0;
        if (wanted || v->making || vol_in_use(ag, v->uuid))
            continue; /* swept again when that domain or mkfs is done */
        char path[AGENT_PATH_MAX + 64];
        vol_path(ag, v->uuid, "", path, sizeof(path));
        if (unlink(path) < 0 && errno != ENOENT)
            log_warnx("volume %s: cannot delete %s: %s", v->uuid, path, strerror(errno));
        else
            log_info("volume %s deleted", v->uuid);
        LIST_REMOVE(v, link);
        free(v);
    }
}

size_t agent_volumes_report(struct agent *ag, bool all, struct nubo_volume_report **out)
{
    size_t n = 0;
    struct agent_volume *v;
    LIST_FOREACH(v, &ag->volumes, link)
    n += all || v->dirty;
    *out = calloc(n + 1, sizeof(**out));
    if (*out == NULL)
        return 0;
    size_t k = 0;
    LIST_FOREACH(v, &ag->volumes, link)
    {
        if (!all && !v->dirty)
            continue;
        struct nubo_volume_report *r = &(*out)[k++];
        memcpy(r->uuid, v->uuid, sizeof(r->uuid));
        r->state = v->state;
        memcpy(r->message, v->message, sizeof(r->message));
        v->dirty = false;
    }
    return k;
}

bool agent_volumes_dirty(struct agent *ag)
{
    struct agent_volume *v;
    LIST_FOREACH(v, &ag->volumes, link)
    if (v->dirty)
        return true;
    return false;
}

int agent_volumes_disks(struct agent *ag, const struct nubo_assignment *a,
                        struct agent_disk *disks, char *why, size_t why_size)
{
    for (size_t i = 0; i < a->n_volumes && i < NUBO_VOLUME_MAX_MOUNTS; i++) {
        const struct nubo_volume_mount *m = &a->volumes[i];
        struct agent_volume *v = vol_find(ag, m->uuid);
        if (v == NULL || v->state == NUBO_VOL_INITIALIZED)
            return 1; /* on its way: the watch answer that lists it, or mkfs */
        if (v->state != NUBO_VOL_AVAILABLE) {
            snprintf(why, why_size, "volume %s for %s is unusable: %s", m->uuid, m->at,
                     v->message[0] ? v->message : nubo_volume_state_name(v->state));
            return -1;
        }
        vol_path(ag, v->uuid, "", disks[i].path, sizeof(disks[i].path));
        agent_volume_serial(v->uuid, disks[i].serial);
        disks[i].readonly = m->readonly;
    }
    return 0;
}
