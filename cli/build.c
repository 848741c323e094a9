/* The build pipeline shared by nubo build and nubo deploy: Kraftfile -> runtime (pulled and
 * verified from the registry) -> app rootfs (cpio, Dockerfile subset, directory or buildah)
 * -> initrd = runtime initrd ++ app cpio -> OCI layout -> push. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"
#include "log.h"
#include "oci_image.h"
#include "util.h"

#define RUNTIME_LAYER_MAX (4ull << 30)

void cli_registry_for(struct cli_ctx *ctx, const struct nubo_image_ref *ref,
                      struct nubo_registry *out)
{
    *out = ctx->reg;
    if (ref->host[0]) {
        const char *u = ctx->reg.url;
        const char *h = strstr(u, "://");
        h = h ? h + 3 : u;
        size_t hl = strcspn(h, "/");
        if (strlen(ref->host) != hl || strncmp(h, ref->host, hl) != 0) {
            if (nubo_snprintf(out->url, sizeof(out->url), "http://%s", ref->host) < 0)
                out->url[0] = '\0';
            out->unix_path[0] = '\0';
            return; /* another registry: the nubo token is not for it */
        }
    }
    /* The nubo registry's token service is the controller: the API token goes there and
     * nowhere else, whatever realm a registry names. */
    struct nubo_err perr = {0};
    if (!out->user[0] && ctx->token[0] && ctx->api_url[0] && cli_api_targets(ctx, &perr) &&
        nubo_snprintf(out->realm_token, sizeof(out->realm_token), "%s", ctx->token) >= 0)
        out->realm_targets = &ctx->api; /* whichever controller answers (http.h) */
}

/* "1.2.3" vs "1.10": compare dot-separated numbers; non-numeric parts by strcmp. */
static int version_cmp(const char *a, const char *b)
{
    while (*a && *b) {
        char *ea, *eb;
        long x = strtol(a, &ea, 10), y = strtol(b, &eb, 10);
        if (ea != a && eb != b) {
            if (x != y)
                return x < y ? -1 : 1;
            a = ea;
            b = eb;
        } else {
            if (*a != *b)
                return *a < *b ? -1 : 1;
            a++;
            b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

/* "base, node, python" from the registry's catalog: the repositories under official/. */
/* Append the name_len bytes at name to the ", "-separated out unless they are there already. */
static void list_add(char *out, size_t size, const char *name, size_t name_len)
{
    char one[256];
    if (name_len == 0 || name_len >= sizeof(one))
        return;
    memcpy(one, name, name_len);
    one[name_len] = '\0';
    for (const char *p = out; (p = strstr(p, one)) != NULL; p += name_len)
        if ((p == out || p[-1] == ' ') && (p[name_len] == ',' || p[name_len] == '\0'))
            return;
    size_t used = strlen(out);
    int n = snprintf(out + used, size - used, "%s%s", used ? ", " : "", one);
    if (n < 0 || (size_t)n >= size - used)
        out[used] = '\0';
}

/* The runtimes of this cluster (repositories under official/): the registry's catalog when it
 * lists it to us (a registry with token auth lists it to admins only), else the images the
 * controller shows this user. */
static int runtimes_in_cluster(struct cli_ctx *ctx, const struct nubo_registry *reg, char *out,
                               size_t size)
{
    out[0] = '\0';
    cleanup_free char *text = NULL;
    struct nubo_err gerr = {0};
    json_t *r;
    size_t i;
    if (nubo_registry_get_json(reg, "/v2/_catalog?n=1000", &text, &gerr) == 0) {
        json_t *cat = json_loads(text, 0, NULL);
        json_array_foreach(json_object_get(cat, "repositories"), i, r)
        {
            const char *s = json_string_value(r);
            if (s && !strncmp(s, "official/", 9))
                list_add(out, size, s + 9, strlen(s + 9));
        }
        json_decref(cat);
        return 0;
    }
    json_t *resp, *items;
    struct nubo_image *v;
    size_t n;
    if (cli_api_list(ctx, "GET", "/v1/images", NULL, "images", &resp, &items, &gerr) < 0)
        return -1;
    int rc = nubo_image_list_decode(items, NUBO_AGENT_MAX_INSTANCES, &v, &n, &gerr);
    json_decref(resp);
    if (rc < 0)
        return -1;
    for (i = 0; i < n; i++) {
        const char *at = strchr(v[i].url, '@');
        if (at && !strncmp(v[i].url, "official/", 9))
            list_add(out, size, v[i].url + 9, (size_t)(at - v[i].url - 9));
    }
    nubo_image_list_free(v, n);
    return 0;
}

int cli_resolve_runtime(struct cli_ctx *ctx, const char *runtime, char *repo, size_t repo_size,
                        char *tag, size_t tag_size, struct nubo_err *err)
{
    const char *r = runtime;
    /* Names written for Unikraft Cloud resolve in this cluster's "official" namespace. */
    static const char *const hosts[] = {"unikraft.org/", "index.unikraft.io/", NULL};
    for (size_t i = 0; hosts[i]; i++)
        if (!strncmp(r, hosts[i], strlen(hosts[i])))
            r += strlen(hosts[i]);
    char full[512];
    snprintf(full, sizeof(full), "%s%s", strchr(r, '/') ? "" : "official/", r);
    struct nubo_image_ref ref;
    if (nubo_image_ref_parse(full, &ref, err) < 0)
        return nubo_error_wrap(err, "runtime '%s'", runtime);
    struct nubo_registry reg;
    cli_registry_for(ctx, &ref, &reg);
    snprintf(repo, repo_size, "%s", ref.repo);
    const char *want = ref.digest[0] ? ref.digest : ref.tag;
    snprintf(tag, tag_size, "%s", want);
    cleanup_free char *body = NULL;
    cleanup_free char *mt = NULL;
    size_t len;
    char dig[80];
    struct nubo_err gerr = {0};
    if (nubo_registry_get_manifest(&reg, ref.repo, want, &body, &len, &mt, dig, &gerr) == 0)
        return 0;
    if (gerr.http_status != 404) {
        *err = gerr;
        return nubo_error_wrap(err, "runtime '%s'", runtime);
    }
    /* Not there: pick the closest tag the cluster has (python:3.12 -> official/python:3.11). */
    char path[600];
    snprintf(path, sizeof(path), "/v2/%s/tags/list", ref.repo);
    cleanup_free char *tags_text = NULL;
    json_t *tags_json = NULL;
    if (!ref.digest[0] && nubo_registry_get_json(&reg, path, &tags_text, &gerr) == 0) {
        json_error_t jerr;
        tags_json = json_loads(tags_text, 0, &jerr);
    }
    json_t *tags = json_object_get(tags_json, "tags");
    const char *best = NULL;
    char major[32];
    snprintf(major, sizeof(major), "%.*s", (int)strcspn(ref.tag, "."), ref.tag);
    size_t i;
    json_t *t;
    json_array_foreach(tags, i, t)
    {
        const char *s = json_string_value(t);
        if (!s)
            continue;
        size_t ml = strlen(major);
        bool same_major = ml && !strncmp(s, major, ml) && (s[ml] == '.' || s[ml] == '\0') &&
                          strchr(ref.tag, '.');
        if (same_major && (!best || version_cmp(s, best) > 0))
            best = s;
    }
    if (!best)
        json_array_foreach(tags, i, t)
            if (json_string_value(t) && !strcmp(json_string_value(t), "latest"))
                best = "latest";
    if (!best && !tags) {
        /* No such repository at all: name the runtimes that do exist. */
        char have[1024];
        if (runtimes_in_cluster(ctx, &reg, have, sizeof(have)) < 0)
            snprintf(have, sizeof(have), "a catalog it would not list");
        json_decref(tags_json);
        return nubo_error(err, 0,
                          "runtime '%s' does not exist in this cluster (registry %s has: %s); "
                          "pick one of those or push it with guest/build-runtimes --runtimes NAME",
                          runtime, reg.url, have[0] ? have : "no runtimes");
    }
    if (!best) {
        json_decref(tags_json);
        return nubo_error(err, 0,
                          "runtime '%s' is not in the registry %s (looked for %s:%s): push the "
                          "runtimes first (guest/build-runtimes) or choose one that exists",
                          runtime, reg.url, ref.repo, want);
    }
    snprintf(tag, tag_size, "%s", best);
    cli_notice(ctx, "notice: runtime %s is not in this cluster; using %s:%s, the closest one it has",
               runtime, ref.repo, tag);
    json_decref(tags_json);
    return 0;
}

/* A verified, content-addressed copy of a blob in the cache; path into out. */
static int cached_blob(struct cli_ctx *ctx, const struct nubo_registry *reg, const char *repo,
                       const char *digest, char *out, size_t size, struct nubo_err *err)
{
    char dir[PATH_MAX];
    if (cli_cache_dir(dir, sizeof(dir), err) < 0)
        return -1;
    char bdir[PATH_MAX];
    if (nubo_snprintf(bdir, sizeof(bdir), "%s/blobs/sha256", dir) < 0)
        return nubo_error(err, ENAMETOOLONG, "cache path");
    if (nubo_mkdir_p(bdir, 0755, err) < 0)
        return -1;
    if (nubo_snprintf(out, size, "%s/%s", bdir, digest + 7) < 0)
        return nubo_error(err, ENAMETOOLONG, "cache path");
    if (access(out, R_OK) == 0)
        return 0; /* written only after verification, under its digest */
    char tmp[PATH_MAX];
    if (nubo_snprintf(tmp, sizeof(tmp), "%s/.dl-XXXXXX", bdir) < 0)
        return nubo_error(err, ENAMETOOLONG, "cache path");
    int fd = mkstemp(tmp);
    if (fd < 0)
        return nubo_error(err, errno, "cannot create a file in %s", bdir);
    int rc = nubo_registry_get_blob_fd(reg, repo, digest, fd, RUNTIME_LAYER_MAX, NULL, err);
    close(fd);
    if (rc == 0 && rename(tmp, out) < 0)
        rc = nubo_error(err, errno, "cannot store %s", out);
    if (rc < 0)
        unlink(tmp);
    (void)ctx;
    return rc;
}

struct progress {
    struct cli_ctx *ctx;
    const char *what;
    int64_t last_us;
};

static void progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct progress *p = opaque;
    int64_t now = nubo_mono_us();
    if (done < total && now - p->last_us < 100000)
        return;
    p->last_us = now;
    char d[32], t[32];
    cli_human_bytes(done, d, sizeof(d));
    cli_human_bytes(total, t, sizeof(t));
    int pct = total ? (int)(done * 100 / total) : 100;
    char bar[31];
    int fill = pct * 30 / 100;
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : ' ';
    bar[30] = '\0';
    fprintf(p->ctx->e, "\rpushing %s [%s] %3d%% %s / %s ", p->what, bar, pct, d, t);
    if (done >= total)
        fputc('\n', p->ctx->e);
    fflush(p->ctx->e);
}

int cli_push_layout(struct cli_ctx *ctx, const char *layout, const char *repo, const char *tag,
                    char digest_out[80], struct nubo_err *err)
{
    struct nubo_image_ref ref;
    char full[600];
    snprintf(full, sizeof(full), "%s:%s", repo, tag);
    if (nubo_image_ref_parse(full, &ref, err) < 0)
        return -1;
    struct nubo_registry reg;
    cli_registry_for(ctx, &ref, &reg);
    struct progress p = {ctx, full, 0};
    bool bar = isatty(STDERR_FILENO) == 1 && !ctx->quiet && ctx->e == stderr;
    struct nubo_image_info info = {0};
    if (nubo_oci_push(layout, &reg, ref.repo, ref.tag, bar ? progress_cb : NULL, &p, &info, err) < 0)
        return -1;
    if (digest_out)
        snprintf(digest_out, 80, "%s", info.index_digest);
    nubo_image_info_free(&info);
    return 0;
}

int cli_wait_image_listed(struct cli_ctx *ctx, const char *ref, const char *digest,
                          int64_t timeout_ms, struct nubo_err *err)
{
    int64_t deadline = nubo_mono_us() + timeout_ms * 1000;
    long delay_ms = 50;
    char last[NUBO_ERR_MSG_MAX] = "not listed yet";
    for (;;) {
        struct nubo_image_query q = {0};
        snprintf(q.tag, sizeof(q.tag), "%s", ref);
        json_t *body = nubo_image_query_encode(&q);
        json_t *resp, *items;
        struct nubo_err e = {0};
        int rc = cli_api_list(ctx, "GET", "/v1/images", body, "images", &resp, &items, &e);
        json_decref(body);
        if (rc == 0) {
            json_t *it;
            size_t i;
            bool found = false;
            json_array_foreach(items, i, it)
            {
                struct nubo_item_status st;
                struct nubo_image im;
                if (nubo_item_status_decode(it, &st, NULL) < 0 || !st.ok ||
                    nubo_image_decode(it, &im, NULL) < 0)
                    continue;
                found |= strstr(im.url, digest) != NULL;
                nubo_image_free(&im);
            }
            json_decref(resp);
            if (found)
                return 0;
        } else if (e.http_status != 404 && e.http_status != 400) {
            /* Unreachable API, bad token: waiting will not help. */
            *err = e;
            return -1;
        } else {
            snprintf(last, sizeof(last), "%s", e.msg);
        }
        if (nubo_mono_us() > deadline)
            return nubo_error(err, 0, "the controller at %s does not list %s@%s after %lld ms "
                              "(%s): is it receiving the registry's notifications?",
                              ctx->api_url, ref, digest, (long long)timeout_ms, last);
        struct timespec ts = {0, delay_ms * 1000000L};
        nanosleep(&ts, NULL);
        if (delay_ms < 500)
            delay_ms *= 2;
    }
}

static bool has_key(char **list, const char *kv)
{
    size_t kl = strcspn(kv, "=");
    for (size_t i = 0; list && list[i]; i++)
        if (!strncmp(list[i], kv, kl) && list[i][kl] == '=')
            return true;
    return false;
}

/* later entries win by key: merged = a, then b, then c. */
static char **merge_kv(char **a, char **b, char **c)
{
    char **srcs[3] = {c, b, a};
    char **out = calloc(1, sizeof(char *));
    /* Walk from the most important so the first occurrence of a key is kept... */
    for (int s = 0; s < 3; s++)
        for (size_t i = 0; srcs[s] && srcs[s][i]; i++)
            if (!has_key(out, srcs[s][i]))
                cli_strv_push(&out, srcs[s][i]);
    /* ...then restore a stable order: sorted by key, so digests do not depend on it. */
    size_t n = cli_strv_len(out);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0; j--) {
            char *t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return out;
}

static int rm_rf(const char *path)
{
    char *argv[] = {"rm", "-rf", (char *)path, NULL};
    pid_t pid = fork();
    if (pid == 0) {
        execvp("rm", argv);
        _exit(127);
    }
    int st;
    return pid > 0 && waitpid(pid, &st, 0) > 0 ? 0 : -1;
}

static bool file_is_cpio(const char *path)
{
    char m[6];
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd >= 0 && read(fd, m, 6) == 6 &&
           (!memcmp(m, "070701", 6) || !memcmp(m, "070702", 6) || !memcmp(m, "070707", 6));
}

static int layout_dir_for(const char *repo, const char *tag, char *out, size_t size,
                          struct nubo_err *err)
{
    char cache[PATH_MAX];
    if (cli_cache_dir(cache, sizeof(cache), err) < 0)
        return -1;
    if (nubo_snprintf(out, size, "%s/oci/%s/%s", cache, repo, tag) < 0)
        return nubo_error(err, ENAMETOOLONG, "layout path");
    return 0;
}

int cli_default_layout(const char *repo, const char *tag, char *out, size_t size,
                       struct nubo_err *err)
{
    return layout_dir_for(repo, tag, out, size, err);
}

int cli_build(struct cli_ctx *ctx, const struct cli_build_opts *o, struct cli_build_result *res,
              struct nubo_err *err)
{
    memset(res, 0, sizeof(*res));
    cli_org_from_token(ctx);
    struct cli_kraftfile kf;
    char kpath[PATH_MAX];
    if (cli_kraftfile_load(o->dir, o->kraftfile, &kf, kpath, sizeof(kpath), err) < 0)
        return -1;
    int rc = -1;
    char tmpdir[] = "/tmp/nubo-build-XXXXXX";
    bool have_tmp = false;
    struct nubo_image_info rinfo = {0};
    struct cli_df_result dfr = {0};
    struct cli_dockerfile df = {0};
    char **cmd = NULL, **env = NULL, **labels = NULL;

    /* Image name: --output, else <org>/<Kraftfile name or directory>:latest. */
    char name[256];
    if (kf.name[0])
        snprintf(name, sizeof(name), "%s", kf.name);
    else {
        char real[PATH_MAX];
        if (!realpath(o->dir, real))
            snprintf(real, sizeof(real), "%s", o->dir);
        snprintf(name, sizeof(name), "%s", basename(real));
        for (char *p = name; *p; p++)
            *p = (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') : *p;
    }
    char out_ref[600];
    if (o->output && !strchr(o->output, '/'))
        /* "app:tag" lands in the caller's namespace, as on the platform. */
        snprintf(out_ref, sizeof(out_ref), "%s/%s", ctx->org, o->output);
    else if (o->output)
        snprintf(out_ref, sizeof(out_ref), "%s", o->output);
    else
        snprintf(out_ref, sizeof(out_ref), "%s/%s:latest", ctx->org, name);
    struct nubo_image_ref oref;
    if (nubo_image_ref_parse(out_ref, &oref, err) < 0) {
        nubo_error_wrap(err, "--output");
        goto out;
    }
    if (oref.digest[0]) {
        nubo_error(err, 0, "--output %s: give a tag, not a digest", out_ref);
        goto out;
    }
    snprintf(res->repo, sizeof(res->repo), "%s", oref.repo);
    snprintf(res->tag, sizeof(res->tag), "%s", oref.tag);
    snprintf(res->ref, sizeof(res->ref), "%s:%s", oref.repo, oref.tag);

    if (!mkdtemp(tmpdir)) {
        nubo_error(err, errno, "cannot create a build directory in /tmp");
        goto out;
    }
    have_tmp = true;

    /* 1. The runtime: kernel + base initrd, verified from the registry. */
    const char *runtime = o->runtime ? o->runtime : kf.runtime;
    char rrepo[256], rtag[128];
    if (cli_resolve_runtime(ctx, runtime, rrepo, sizeof(rrepo), rtag, sizeof(rtag), err) < 0)
        goto out;
    struct nubo_image_ref rref;
    char rfull[512];
    snprintf(rfull, sizeof(rfull), "%s%s%s", rrepo, nubo_digest_valid(rtag) ? "@" : ":", rtag);
    nubo_image_ref_parse(rfull, &rref, NULL);
    struct nubo_registry rreg;
    cli_registry_for(ctx, &rref, &rreg);
    if (nubo_oci_inspect(&rreg, rrepo, rtag, &rinfo, err) < 0) {
        nubo_error_wrap(err, "runtime %s", runtime);
        goto out;
    }
    char blob[PATH_MAX], kernel[PATH_MAX], rinitrd[PATH_MAX] = "";
    snprintf(kernel, sizeof(kernel), "%s/kernel", tmpdir);
    if (cached_blob(ctx, &rreg, rrepo, rinfo.kernel_digest, blob, sizeof(blob), err) < 0 ||
        nubo_oci_extract_layer_file(blob, NUBO_PATH_KERNEL, kernel, RUNTIME_LAYER_MAX, err) < 0) {
        nubo_error_wrap(err, "runtime %s kernel", runtime);
        goto out;
    }
    if (rinfo.initrd_digest[0]) {
        snprintf(rinitrd, sizeof(rinitrd), "%s/runtime-initrd", tmpdir);
        if (cached_blob(ctx, &rreg, rrepo, rinfo.initrd_digest, blob, sizeof(blob), err) < 0 ||
            nubo_oci_extract_layer_file(blob, NUBO_PATH_INITRD, rinitrd, RUNTIME_LAYER_MAX, err) <
                0) {
            nubo_error_wrap(err, "runtime %s initrd", runtime);
            goto out;
        }
    }

    /* 2. The app's rootfs as a cpio. */
    const char *rootfs = o->rootfs ? o->rootfs : kf.rootfs;
    char app_cpio[PATH_MAX] = "";
    if (rootfs && rootfs[0]) {
        char kdir[PATH_MAX], rpath[PATH_MAX];
        snprintf(kdir, sizeof(kdir), "%s", kpath);
        char *kd = dirname(kdir);
        while (rootfs[0] == '.' && rootfs[1] == '/')
            rootfs += 2;
        if (rootfs[0] == '/')
            snprintf(rpath, sizeof(rpath), "%s", rootfs);
        else if (nubo_snprintf(rpath, sizeof(rpath), "%s/%s", kd, rootfs) < 0) {
            nubo_error(err, ENAMETOOLONG, "rootfs path");
            goto out;
        }
        struct stat st;
        if (stat(rpath, &st) < 0) {
            nubo_error(err, 0, "%s: rootfs %s: no such file or directory (give a Dockerfile, a "
                       "directory or a cpio archive)", kpath, rootfs);
            goto out;
        }
        snprintf(app_cpio, sizeof(app_cpio), "%s/app.cpio", tmpdir);
        if (S_ISDIR(st.st_mode)) {
            if (cli_cpio_from_dir(rpath, app_cpio, err) < 0)
                goto out;
        } else if (file_is_cpio(rpath)) {
            snprintf(app_cpio, sizeof(app_cpio), "%s", rpath);
        } else {
            cleanup_free char *text = NULL;
            size_t len;
            if (nubo_read_file(rpath, 1u << 20, &text, &len, err) < 0)
                goto out;
            if (cli_dockerfile_parse(text, rpath, &df, err) < 0) {
                if (!strstr(rpath, "ockerfile"))
                    nubo_error(err, 0, "%s: rootfs %s is neither a Dockerfile, a directory nor "
                               "a cpio archive", kpath, rootfs);
                goto out;
            }
            char root[PATH_MAX], ctxdir[PATH_MAX], why[256];
            snprintf(root, sizeof(root), "%s/rootfs", tmpdir);
            mkdir(root, 0755);
            snprintf(ctxdir, sizeof(ctxdir), "%s", rpath);
            char *cd = dirname(ctxdir);
            int line = cli_dockerfile_needs_buildah(&df, runtime, why, sizeof(why));
            if (line > 0) {
                if (cli_dockerfile_buildah(&df, cd, root, o->build_args, line, why, &dfr, err) < 0)
                    goto out;
            } else if (cli_dockerfile_build(&df, cd, root, o->build_args, &dfr, err) < 0) {
                goto out;
            }
            if (cli_cpio_from_dir(root, app_cpio, err) < 0)
                goto out;
        }
    }
    char initrd[PATH_MAX] = "";
    if (app_cpio[0]) {
        snprintf(initrd, sizeof(initrd), "%s/initrd.cpio", tmpdir);
        if (cli_concat_files(rinitrd[0] ? rinitrd : NULL, app_cpio, initrd, err) < 0)
            goto out;
    } else if (rinitrd[0]) {
        snprintf(initrd, sizeof(initrd), "%s", rinitrd);
    }

    /* 3. Defaults: Kraftfile over Dockerfile over runtime. */
    char **rcmd = rinfo.cmd;
    cmd = calloc(1, sizeof(char *));
    char **pick = kf.cmd ? kf.cmd : dfr.cmd ? dfr.cmd : rcmd;
    for (size_t i = 0; pick && pick[i]; i++)
        cli_strv_push(&cmd, pick[i]);
    env = merge_kv(rinfo.env, dfr.env, kf.env);
    labels = merge_kv(rinfo.labels, dfr.labels, kf.labels);
    if (cli_s2z_from_labels(labels, &res->s2z, &res->s2z_given, err) < 0)
        goto out;

    /* 4. Pack and push. */
    char layout[PATH_MAX];
    if (o->oci_dir)
        snprintf(layout, sizeof(layout), "%s", o->oci_dir);
    else if (layout_dir_for(oref.repo, oref.tag, layout, sizeof(layout), err) < 0)
        goto out;
    struct nubo_image_spec spec = {
        .kernel_path = kernel,
        .initrd_path = initrd[0] ? initrd : NULL,
        .cmd = (const char *const *)cmd,
        .env = (const char *const *)env,
        .labels = (const char *const *)labels,
        .ref_name = res->ref,
        /* the Dockerfile's USER, else the runtime's */
        .user = dfr.user        ? dfr.user
                : rinfo.user[0] ? rinfo.user
                                : NULL,
    };
    struct nubo_image_info info = {0};
    if (nubo_oci_pack(&spec, layout, &info, err) < 0)
        goto out;
    snprintf(res->digest, sizeof(res->digest), "%s", info.index_digest);
    res->size_in_bytes = info.size_in_bytes;
    bool same_kernel = strcmp(info.kernel_digest, rinfo.kernel_digest) == 0;
    nubo_image_info_free(&info);
    if (o->push) {
        char pushed[80];
        char qrepo[600];
        snprintf(qrepo, sizeof(qrepo), "%s%s%s", oref.host, oref.host[0] ? "/" : "", oref.repo);
        /* The kernel layer is the runtime's, byte for byte: have the registry mount it from
         * the runtime's repository instead of uploading it again (best effort). */
        struct nubo_registry oreg;
        cli_registry_for(ctx, &oref, &oreg);
        if (same_kernel && !strcmp(oreg.url, rreg.url) && !strcmp(oreg.unix_path, rreg.unix_path)) {
            struct nubo_err merr = {0};
            if (nubo_registry_mount_blob(&oreg, oref.repo, rinfo.kernel_digest, rrepo, &merr) < 0)
                log_debug("mounting the kernel layer failed: %s", merr.msg);
        }
        if (cli_push_layout(ctx, layout, qrepo, oref.tag, pushed, err) < 0)
            goto out;
    }
    rc = 0;
out:
    if (have_tmp && !getenv("NUBO_KEEP_BUILD"))
        rm_rf(tmpdir);
    cli_kraftfile_free(&kf);
    cli_dockerfile_free(&df);
    cli_df_result_free(&dfr);
    nubo_image_info_free(&rinfo);
    cli_strv_free(cmd);
    cli_strv_free(env);
    cli_strv_free(labels);
    return rc;
}
