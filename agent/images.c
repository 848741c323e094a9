/* Image cache: images pulled by digest (index -> x86_64 manifest -> config + kernel/initrd
 * layers, every blob sha256-verified while it streams), kept content-addressed under
 * <cache_dir>/images/<hex>/ (built in a tmp dir, renamed into place), pulls of one digest
 * coalesced, and unused images evicted least-recently-used past the size limit. */
#include "agent_core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "oci_image.h"

static void strv_free(char **v)
{
    if (!v)
        return;
    for (char **p = v; *p; p++)
        free(*p);
    free(v);
}

static void image_free(struct agent_image *img)
{
    strv_free(img->cmd);
    strv_free(img->env);
    strv_free(img->labels);
    free(img);
}

const char *agent_image_label(const struct agent_image *img, const char *key)
{
    if (!img->labels)
        return NULL;
    size_t kl = strlen(key);
    for (char **p = img->labels; *p; p++)
        if (strncmp(*p, key, kl) == 0 && (*p)[kl] == '=')
            return *p + kl + 1;
    return NULL;
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[AGENT_PATH_MAX + 300];
            snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
            if (unlink(p) < 0 && (errno == EISDIR || errno == EPERM))
                rm_rf(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static char **json_strv(json_t *a)
{
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    if (n > 4096)
        n = 4096;
    char **v = calloc(n + 1, sizeof(char *));
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(a, i));
        if (s && (v[k] = strdup(s)))
            k++;
    }
    return v;
}

static json_t *strv_json(char **v)
{
    json_t *a = json_array();
    for (char **p = v; p && *p; p++)
        json_array_append_new(a, json_string(*p));
    return a;
}

/* meta.json in an image dir: what the config said, so a cached image needs no registry. */
static int image_load_dir(struct agent_image *img, const char *dir, struct nubo_err *err)
{
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/meta.json", dir);
    cleanup_free char *text = NULL;
    size_t len;
    if (nubo_read_file(p, 1u << 20, &text, &len, err) < 0)
        return -1;
    json_error_t je;
    cleanup_json json_t *j = json_loadb(text, len, 0, &je);
    if (!j || !json_is_object(j))
        return nubo_error(err, 0, "image cache %s: bad meta.json", dir);
    snprintf(img->dir, sizeof(img->dir), "%s", dir);
    snprintf(img->kernel, sizeof(img->kernel), "%s/kernel", dir);
    if (json_is_true(json_object_get(j, "has_initrd")))
        snprintf(img->initrd, sizeof(img->initrd), "%s/initrd", dir);
    img->cmd = json_strv(json_object_get(j, "cmd"));
    img->env = json_strv(json_object_get(j, "env"));
    img->labels = json_strv(json_object_get(j, "labels"));
    const char *user = json_string_value(json_object_get(j, "user"));
    if (user && user[0] && !nubo_image_user_valid(user))
        return nubo_error(err, 0, "image cache %s: bad user in meta.json", dir);
    snprintf(img->user, sizeof(img->user), "%s", user ? user : "");
    struct stat st;
    if (stat(img->kernel, &st) < 0)
        return nubo_error(err, errno, "image cache %s: kernel missing", dir);
    /* The cache accounts what the image takes on disk, never what its layers weighed
     * compressed (a 0.5 MB layer can unpack to 512 MiB), so eviction frees what it counts. */
    img->size_bytes = agent_file_disk_bytes(img->kernel) + agent_file_disk_bytes(p);
    if (img->initrd[0]) {
        if (access(img->initrd, R_OK) < 0)
            return nubo_error(err, errno, "image cache %s: initrd missing", dir);
        img->size_bytes += agent_file_disk_bytes(img->initrd);
    }
    struct agent_kernel_info ki;
    if (agent_kernel_probe(img->kernel, &ki, err) < 0)
        return -1;
    img->linux_kernel = ki.linux_kernel;
    img->boot = ki.boot;
    const char *plat = json_string_value(json_object_get(j, "platform"));
    snprintf(img->platform, sizeof(img->platform), "%s", plat ? plat : "");
    json_t *mk = json_object_get(j, "marker");
    /* Images cached before the key existed are scanned once here. */
    img->has_marker = mk ? json_is_true(mk)
                         : agent_file_has_marker(img->kernel) ||
                               (img->initrd[0] && agent_file_has_marker(img->initrd));
    img->last_used_us = (int64_t)st.st_atime * 1000000;
    img->ready = true;
    return 0;
}

static void images_total(struct agent *ag, uint64_t *total)
{
    *total = 0;
    struct agent_image *img;
    LIST_FOREACH(img, &ag->images, link)
    if (img->ready)
        *total += img->size_bytes;
}

/* Evict least-recently-used unused images until the cache fits its limit. */
static void images_evict(struct agent *ag)
{
    uint64_t limit = (uint64_t)ag->cfg.cache_size_mb << 20;
    for (;;) {
        uint64_t total;
        images_total(ag, &total);
        if (total <= limit)
            return;
        struct agent_image *img, *victim = NULL;
        LIST_FOREACH(img, &ag->images, link)
        {
            if (!img->ready || img->refs > 0 || img->pulling)
                continue;
            if (!victim || img->last_used_us < victim->last_used_us)
                victim = img;
        }
        if (!victim) {
            log_warnx("image cache %s holds %llu MiB, over its %lld MiB limit, all in use",
                      ag->cfg.cache_dir, (unsigned long long)(total >> 20),
                      (long long)ag->cfg.cache_size_mb);
            return;
        }
        log_info("image cache: evicting %s (%llu KiB)", victim->digest,
                 (unsigned long long)(victim->size_bytes >> 10));
        rm_rf(victim->dir);
        LIST_REMOVE(victim, link);
        image_free(victim);
    }
}

int agent_images_init(struct agent *ag, struct nubo_err *err)
{
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/images", ag->cfg.cache_dir);
    if (nubo_mkdir_p(p, 0755, err) < 0)
        return nubo_error_wrap(err, "image cache");
    /* qemu runs as its own user and must reach the kernel files (the agent's umask is 077). */
    chmod(ag->cfg.cache_dir, 0755);
    chmod(p, 0755);
    snprintf(p, sizeof(p), "%s/tmp", ag->cfg.cache_dir);
    rm_rf(p); /* half-finished pulls of a previous run */
    if (nubo_mkdir_p(p, 0755, err) < 0)
        return nubo_error_wrap(err, "image cache");
    snprintf(p, sizeof(p), "%s/images", ag->cfg.cache_dir);
    DIR *d = opendir(p);
    if (!d)
        return nubo_error(err, errno, "cannot read image cache %s", p);
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strlen(e->d_name) != NUBO_SHA256_HEX_LEN)
            continue;
        struct agent_image *img = calloc(1, sizeof(*img));
        if (!img)
            break;
        /* the name is exactly 64 characters (checked above): bounded copies */
        snprintf(img->digest, sizeof(img->digest), "sha256:%.64s", e->d_name);
        LIST_INIT(&img->waiters);
        char dir[AGENT_PATH_MAX + 80];
        snprintf(dir, sizeof(dir), "%.*s/%.64s", AGENT_PATH_MAX, p, e->d_name);
        struct nubo_err e2 = {0};
        if (image_load_dir(img, dir, &e2) < 0) {
            log_warnx("%s; removing it", e2.msg);
            rm_rf(dir);
            image_free(img);
            continue;
        }
        LIST_INSERT_HEAD(&ag->images, img, link);
    }
    closedir(d);
    return 0;
}

void agent_images_free(struct agent *ag)
{
    struct agent_image *img;
    while ((img = LIST_FIRST(&ag->images))) {
        LIST_REMOVE(img, link);
        struct agent_image_waiter *w;
        while ((w = LIST_FIRST(&img->waiters))) {
            LIST_REMOVE(w, link);
            free(w->opaque); /* waiters' opaque is a plain malloc'd tag */
            free(w);
        }
        image_free(img);
    }
}

struct agent_image *agent_image_find(struct agent *ag, const char *digest)
{
    struct agent_image *img;
    LIST_FOREACH(img, &ag->images, link)
    if (strcmp(img->digest, digest) == 0)
        return img;
    return NULL;
}

void agent_image_unref(struct agent *ag, struct agent_image *img)
{
    if (img->refs > 0)
        img->refs--;
    if (img->refs == 0)
        images_evict(ag);
}

/* Download a layer (at most max_image_mb compressed) and unpack its one file, refusing to
 * write more than max_unpacked bytes; *unpacked_out is what the file takes on disk. */
static int pull_layer(const struct agent_config *c, const char *repo, const char *digest,
                      const char *want, const char *tmpdir, const char *name, uint64_t max_unpacked,
                      uint64_t *unpacked_out, struct nubo_err *err)
{
    char tar[AGENT_PATH_MAX + 64], out[AGENT_PATH_MAX + 64];
    snprintf(tar, sizeof(tar), "%s/%s.tar", tmpdir, name);
    snprintf(out, sizeof(out), "%s/%s", tmpdir, name);
    cleanup_close int fd = open(tar, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return nubo_error(err, errno, "cannot create the %s layer file", name);
    if (nubo_registry_get_blob_fd(&c->registry, repo, digest, fd, (uint64_t)c->max_image_mb << 20,
                                  NULL, err) < 0)
        return nubo_error_wrap(err, "%s layer %s", name, digest);
    int rc = nubo_oci_extract_layer_file(tar, want, out, max_unpacked, err);
    unlink(tar);
    if (rc < 0 && err->http_status == 413)
        return nubo_error_wrap(err, "%s layer %s (the node unpacks at most %lld MiB per image)",
                               name, digest, (long long)c->max_image_mb);
    if (rc < 0)
        return nubo_error_wrap(err, "%s layer %s", name, digest);
    chmod(out, 0644);
    *unpacked_out = agent_file_disk_bytes(out);
    return 0;
}

uint64_t agent_file_disk_bytes(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0;
    /* what the file holds or occupies, whichever is more (a sparse file still loads whole) */
    uint64_t blocks = (uint64_t)st.st_blocks * 512;
    return blocks > (uint64_t)st.st_size ? blocks : (uint64_t)st.st_size;
}

int agent_image_pull_blocking(const struct agent_config *c, const char *repo,
                              const char *digest, const char *final_dir, struct nubo_err *err)
{
    struct nubo_image_info info = {0};
    if (nubo_oci_inspect(&c->registry, repo, digest, &info, err) < 0)
        return -1;
    int rc = -1;
    char tmpdir[AGENT_PATH_MAX + 64];
    char rnd[9];
    nubo_random_alnum(rnd, 8);
    snprintf(tmpdir, sizeof(tmpdir), "%s/tmp/%s.%s", c->cache_dir, digest + 7, rnd);
    uint64_t ksize = 0, isize = 0;
    json_t *meta = NULL;
    if (nubo_mkdir_p(tmpdir, 0755, err) < 0 || chmod(tmpdir, 0755) < 0) {
        if (err->msg[0] == '\0')
            nubo_error(err, errno, "cannot open the image directory to qemu");
        goto out;
    }
    if (!info.kernel_digest[0]) {
        nubo_error(err, 0, "image %s@%s has no kernel layer (annotation %s)", repo, digest,
                   NUBO_ANNOT_KERNEL);
        goto out;
    }
    /* max_image_mb bounds the unpacked image (kernel + initrd) as well as each download */
    uint64_t max_unpacked = (uint64_t)c->max_image_mb << 20;
    if (pull_layer(c, repo, info.kernel_digest, NUBO_PATH_KERNEL, tmpdir, "kernel", max_unpacked,
                   &ksize, err) < 0)
        goto out;
    if (info.initrd_digest[0] &&
        (ksize >= max_unpacked || pull_layer(c, repo, info.initrd_digest, NUBO_PATH_INITRD, tmpdir,
                                             "initrd", max_unpacked - ksize, &isize, err) < 0)) {
        if (ksize >= max_unpacked)
            nubo_error_http(err, 413,
                            "image %s@%s: its kernel alone fills the node's %lld MiB limit", repo,
                            digest, (long long)c->max_image_mb);
        goto out;
    }
    char kp[AGENT_PATH_MAX + 80], ip[AGENT_PATH_MAX + 80];
    snprintf(kp, sizeof(kp), "%s/kernel", tmpdir);
    snprintf(ip, sizeof(ip), "%s/initrd", tmpdir);
    /* Scanned here, on the worker: an initrd can be tens of MiB. */
    bool marker = agent_file_has_marker(kp) || (info.initrd_digest[0] && agent_file_has_marker(ip));
    meta = json_pack("{s:s, s:s, s:b, s:o, s:o, s:o, s:s, s:I, s:s, s:b}", "digest", digest,
                     "manifest", info.manifest_digest, "has_initrd", info.initrd_digest[0] != 0,
                     "cmd", strv_json(info.cmd), "env", strv_json(info.env), "labels",
                     strv_json(info.labels), "user", info.user, "size_bytes",
                     (json_int_t)(ksize + isize), "platform", info.os, "marker", marker);
    char *text = meta ? json_dumps(meta, JSON_COMPACT) : NULL;
    char mp[AGENT_PATH_MAX + 80];
    snprintf(mp, sizeof(mp), "%s/meta.json", tmpdir);
    if (!text || nubo_write_file_atomic(mp, text, strlen(text), 0644, err) < 0) {
        free(text);
        if (!text)
            nubo_error(err, ENOMEM, "image meta");
        goto out;
    }
    free(text);
    /* The image appears whole or not at all. */
    if (rename(tmpdir, final_dir) < 0 && errno != ENOTEMPTY && errno != EEXIST) {
        nubo_error(err, errno, "cannot move image into the cache at %s", final_dir);
        goto out;
    }
    rc = 0;
out:
    json_decref(meta);
    rm_rf(tmpdir);
    nubo_image_info_free(&info);
    return rc;
}

struct pull_job {
    struct agent_config cfg;
    char repo[256];
    char digest[96];
    char dir[AGENT_PATH_MAX + 128];
    int rc;
    char error[NUBO_ERR_MSG_MAX];
    int64_t t0_us, t1_us;
};

static void pull_work(void *arg)
{
    struct pull_job *j = arg;
    struct nubo_err err = {0};
    j->t0_us = nubo_mono_us();
    j->rc = agent_image_pull_blocking(&j->cfg, j->repo, j->digest, j->dir, &err);
    j->t1_us = nubo_mono_us();
    if (j->rc < 0)
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
}

static void pull_done(struct agent *ag, void *arg)
{
    struct pull_job *j = arg;
    struct agent_image *img = agent_image_find(ag, j->digest);
    if (!img) {
        free(j);
        return;
    }
    img->pulling = false;
    struct nubo_err err = {0};
    if (j->rc == 0 && image_load_dir(img, j->dir, &err) < 0) {
        j->rc = -1;
        snprintf(j->error, sizeof(j->error), "%s", err.msg);
    }
    if (j->rc == 0) {
        log_info("image %s@%s pulled in %lld ms (%llu KiB)", j->repo, j->digest,
                 (long long)((j->t1_us - j->t0_us) / 1000),
                 (unsigned long long)(img->size_bytes >> 10));
        img->last_used_us = nubo_now_us();
    } else {
        log_warnx("image %s@%s: %s", j->repo, j->digest, j->error);
    }
    /* Hand the result to everyone who asked while it was pulling. */
    if (j->rc < 0)
        LIST_REMOVE(img, link);
    struct agent_image_waiter *w;
    while ((w = LIST_FIRST(&img->waiters))) {
        LIST_REMOVE(w, link);
        if (j->rc == 0)
            img->refs++;
        w->fn(ag, w->opaque, j->rc == 0 ? img : NULL, j->error);
        free(w);
    }
    if (j->rc < 0) {
        image_free(img);
        img = NULL;
    }
    if (img)
        images_evict(ag);
    free(j);
}

void agent_image_get(struct agent *ag, const char *image_ref, agent_image_fn fn, void *opaque)
{
    struct nubo_image_ref ref;
    struct nubo_err err = {0};
    if (nubo_image_ref_parse(image_ref, &ref, &err) < 0) {
        fn(ag, opaque, NULL, err.msg);
        return;
    }
    if (!ref.digest[0] || !nubo_digest_valid(ref.digest)) {
        fn(ag, opaque, NULL, "the image must be pinned by digest (repo@sha256:...)");
        return;
    }
    struct agent_image *img = agent_image_find(ag, ref.digest);
    if (img && img->ready) {
        img->refs++;
        img->last_used_us = nubo_now_us();
        fn(ag, opaque, img, NULL);
        return;
    }
    struct agent_image_waiter *w = calloc(1, sizeof(*w));
    if (!w) {
        fn(ag, opaque, NULL, "out of memory");
        return;
    }
    w->fn = fn;
    w->opaque = opaque;
    if (img) { /* a pull of this digest is in flight: wait for it */
        LIST_INSERT_HEAD(&img->waiters, w, link);
        return;
    }
    img = calloc(1, sizeof(*img));
    struct pull_job *j = calloc(1, sizeof(*j));
    if (!img || !j) {
        free(img);
        free(j);
        free(w);
        fn(ag, opaque, NULL, "out of memory");
        return;
    }
    snprintf(img->digest, sizeof(img->digest), "%s", ref.digest);
    LIST_INIT(&img->waiters);
    img->pulling = true;
    LIST_INSERT_HEAD(&img->waiters, w, link);
    LIST_INSERT_HEAD(&ag->images, img, link);
    j->cfg = ag->cfg;
    if (ag->events.registry_cred)
        ag->events.registry_cred(ag, &j->cfg.registry);
    snprintf(j->repo, sizeof(j->repo), "%s", ref.repo);
    snprintf(j->digest, sizeof(j->digest), "%s", ref.digest);
    snprintf(j->dir, sizeof(j->dir), "%s/images/%s", ag->cfg.cache_dir, ref.digest + 7);
    log_info("image %s@%s: pulling", ref.repo, ref.digest);
    if (agent_spawn(ag, pull_work, pull_done, j) < 0) {
        j->rc = -1;
        snprintf(j->error, sizeof(j->error), "cannot start a pull thread");
        pull_done(ag, j);
    }
}
