/* Unikernel images in kraftkit's OCI layout (oci_image.h): reproducible packing into a layout
 * directory, push, inspect through a registry, and safe extraction of one file from a layer. */
#include "oci_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "util.h"

#define OCI_CONFIG_MAX (1u << 20)
#define OCI_KRAFTKIT_VERSION "0.11.6-nubo"
#define OCI_ARCH "x86_64"
#define OCI_OS "kraftcloud"

bool nubo_image_user_valid(const char *s)
{
    size_t n = strlen(s), colons = 0;
    if (n == 0 || n > NUBO_IMAGE_USER_MAX || s[0] == ':' || s[n - 1] == ':')
        return false;
    for (const char *p = s; *p; p++) {
        if (*p == ':')
            colons++;
        else if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-'))
            return false;
    }
    return colons <= 1;
}

void nubo_image_info_free(struct nubo_image_info *info)
{
    if (!info)
        return;
    char **lists[] = {info->cmd, info->env, info->labels};
    for (size_t l = 0; l < 3; l++) {
        if (!lists[l])
            continue;
        for (char **p = lists[l]; *p; p++)
            free(*p);
        free(lists[l]);
    }
    info->cmd = info->env = info->labels = NULL;
}

static char **strv_dup(const char *const *v)
{
    size_t n = 0;
    while (v && v[n])
        n++;
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!(out[i] = strdup(v[i]))) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    return out;
}

/* ---------------------------------------------------------------- helpers */

static char *canonical_json(json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

static int file_sha256(const char *path, char digest[80], uint64_t *size, struct nubo_err *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open %s", path);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md)
        return nubo_error(err, ENOMEM, "out of memory");
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            EVP_MD_CTX_free(md);
            return nubo_error(err, errno, "cannot read %s", path);
        }
        if (r == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)r);
        total += (uint64_t)r;
    }
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    strcpy(digest, "sha256:");
    nubo_hex(d, dl, digest + 7);
    if (size)
        *size = total;
    return 0;
}

static int blob_path(const char *layout_dir, const char *digest, char *out, size_t size,
                     struct nubo_err *err)
{
    if (!nubo_digest_valid(digest))
        return nubo_error(err, 0, "bad digest '%s' in OCI layout %s", digest, layout_dir);
    if (nubo_snprintf(out, size, "%s/blobs/sha256/%s", layout_dir, digest + 7) < 0)
        return nubo_error(err, ENAMETOOLONG, "OCI layout path %s", layout_dir);
    return 0;
}

/* Store a memory blob under its digest. */
static int write_blob_mem(const char *layout_dir, const char *data, size_t len, char digest[80],
                          struct nubo_err *err)
{
    char hex[NUBO_SHA256_HEX_LEN + 1];
    nubo_sha256_hex(data, len, hex);
    snprintf(digest, 80, "sha256:%s", hex);
    char path[PATH_MAX];
    if (blob_path(layout_dir, digest, path, sizeof(path), err) < 0)
        return -1;
    return nubo_write_file_atomic(path, data, len, 0644, err);
}

static int read_magic(const char *path, unsigned char *buf, size_t want, size_t *got,
                      uint64_t *size, struct nubo_err *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return nubo_error(err, errno, "cannot stat %s", path);
    if (!S_ISREG(st.st_mode))
        return nubo_error(err, 0, "%s is not a regular file", path);
    ssize_t r = pread(fd, buf, want, 0);
    if (r < 0)
        return nubo_error(err, errno, "cannot read %s", path);
    *got = (size_t)r;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int check_kernel(const char *path, struct nubo_err *err)
{
    unsigned char b[0x210];
    size_t n;
    uint64_t size;
    if (read_magic(path, b, sizeof(b), &n, &size, err) < 0)
        return nubo_error_wrap(err, "kernel");
    if (n >= 20 && memcmp(b, "\x7f" "ELF", 4) == 0) {
        unsigned machine = (unsigned)b[18] | ((unsigned)b[19] << 8);
        if (b[5] != 1)
            return nubo_error(err, 0, "kernel %s is a big-endian ELF: nubo runs x86_64 only", path);
        if (machine != 62 /* EM_X86_64 */ && machine != 3 /* EM_386, PVH/multiboot stubs */)
            return nubo_error(err, 0, "kernel %s is an ELF for machine %u, not x86_64", path,
                              machine);
        return 0;
    }
    if (n >= 0x206 && b[0x1fe] == 0x55 && b[0x1ff] == 0xaa && memcmp(b + 0x202, "HdrS", 4) == 0)
        return 0;
    return nubo_error(err, 0,
                      "kernel %s is neither an ELF nor a bzImage: pass the unikernel binary or "
                      "vmlinuz",
                      path);
}

static int check_initrd(const char *path, struct nubo_err *err)
{
    unsigned char b[8];
    size_t n;
    uint64_t size;
    if (read_magic(path, b, sizeof(b), &n, &size, err) < 0)
        return nubo_error_wrap(err, "initrd");
    if (n >= 6 && (memcmp(b, "070701", 6) == 0 || memcmp(b, "070702", 6) == 0 ||
                   memcmp(b, "070707", 6) == 0))
        return 0;
    return nubo_error(err, 0,
                      "initrd %s is not a cpio archive (newc or odc): build it with "
                      "'cpio -o -H newc' or give nubo a directory",
                      path);
}

/* Write a one-file, timestamp-free tar of src at want_path into layout/blobs and return its
 * digest and size. */
static int write_layer(const char *layout_dir, const char *src, const char *want_path,
                       char digest[80], uint64_t *size, struct nubo_err *err)
{
    char tmp[PATH_MAX];
    if (nubo_snprintf(tmp, sizeof(tmp), "%s/blobs/sha256/.layer-XXXXXX", layout_dir) < 0)
        return nubo_error(err, ENAMETOOLONG, "OCI layout path %s", layout_dir);
    int tfd = mkstemp(tmp);
    if (tfd < 0)
        return nubo_error(err, errno, "cannot create a temporary layer in %s", layout_dir);
    cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (in < 0 || fstat(in, &st) < 0) {
        int e = errno;
        close(tfd);
        unlink(tmp);
        return nubo_error(err, e, "cannot open %s", src);
    }
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    int rc = 0;
    if (!a || !e || archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
        archive_write_add_filter_none(a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
        archive_write_open_fd(a, tfd) != ARCHIVE_OK) {
        rc = nubo_error(err, 0, "cannot start a tar layer: %s",
                        a ? archive_error_string(a) : "out of memory");
        goto out;
    }
    /* Relative name: what tar tools produce; extraction accepts "/…" too (kraftkit). */
    archive_entry_set_pathname(e, want_path[0] == '/' ? want_path + 1 : want_path);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0755);
    archive_entry_set_size(e, st.st_size);
    archive_entry_set_mtime(e, 0, 0);
    archive_entry_set_uid(e, 0);
    archive_entry_set_gid(e, 0);
    if (archive_write_header(a, e) != ARCHIVE_OK) {
        rc = nubo_error(err, 0, "cannot write tar header for %s: %s", src, archive_error_string(a));
        goto out;
    }
    char buf[65536];
    int64_t left = st.st_size;
    while (left > 0) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = nubo_error(err, r < 0 ? errno : 0, "cannot read %s%s", src,
                            r == 0 ? ": file shrank while packing" : "");
            goto out;
        }
        if (r > left)
            r = (ssize_t)left;
        if (archive_write_data(a, buf, (size_t)r) != r) {
            rc = nubo_error(err, 0, "cannot write tar layer: %s", archive_error_string(a));
            goto out;
        }
        left -= r;
    }
    if (archive_write_close(a) != ARCHIVE_OK)
        rc = nubo_error(err, 0, "cannot finish tar layer: %s", archive_error_string(a));
out:
    if (e)
        archive_entry_free(e);
    if (a)
        archive_write_free(a);
    if (rc == 0 && fsync(tfd) < 0)
        rc = nubo_error(err, errno, "cannot sync layer for %s", src);
    close(tfd);
    if (rc == 0)
        rc = file_sha256(tmp, digest, size, err);
    char final[PATH_MAX];
    if (rc == 0)
        rc = blob_path(layout_dir, digest, final, sizeof(final), err);
    if (rc == 0) {
        chmod(tmp, 0644);
        if (rename(tmp, final) < 0)
            rc = nubo_error(err, errno, "cannot store layer %s", final);
    }
    if (rc < 0)
        unlink(tmp);
    return rc;
}

static json_t *descriptor(const char *media_type, const char *digest, uint64_t size)
{
    return json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", digest, "size",
                     (json_int_t)size);
}

static json_t *strv_json(const char *const *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && v[i]; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

/* RFC 3339 creation time: SOURCE_DATE_EPOCH when set, else the epoch, so that the same
 * inputs give the same digests. */
static void created_time(char out[32])
{
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    int64_t secs = 0;
    if (sde && *sde) {
        char *end;
        long long v = strtoll(sde, &end, 10);
        if (*end == '\0' && v >= 0)
            secs = v;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *annotations(const char *ref_name)
{
    char created[32];
    created_time(created);
    json_t *a = json_object();
    json_object_set_new(a, "org.opencontainers.image.created", json_string(created));
    json_object_set_new(a, "sh.kraftkit.version", json_string(OCI_KRAFTKIT_VERSION));
    if (ref_name && *ref_name) {
        json_object_set_new(a, "org.opencontainers.image.ref.name", json_string(ref_name));
        json_object_set_new(a, "io.containerd.image.name", json_string(ref_name));
        json_object_set_new(a, "org.unikraft.image.name", json_string(ref_name));
    }
    return a;
}

/* ---------------------------------------------------------------- pack */

int nubo_oci_pack(const struct nubo_image_spec *spec, const char *layout_dir,
                  struct nubo_image_info *info_out, struct nubo_err *err)
{
    if (!spec || !spec->kernel_path)
        return nubo_error(err, 0, "packing an image needs a kernel (--kernel FILE)");
    if (check_kernel(spec->kernel_path, err) < 0)
        return -1;
    if (spec->initrd_path && check_initrd(spec->initrd_path, err) < 0)
        return -1;
    for (size_t i = 0; spec->labels && spec->labels[i]; i++)
        if (!strchr(spec->labels[i], '=') || spec->labels[i][0] == '=')
            return nubo_error(err, 0, "label '%s' is not KEY=VALUE", spec->labels[i]);
    for (size_t i = 0; spec->env && spec->env[i]; i++)
        if (!strchr(spec->env[i], '=') || spec->env[i][0] == '=')
            return nubo_error(err, 0, "environment entry '%s' is not KEY=VALUE", spec->env[i]);

    char dir[PATH_MAX];
    if (nubo_snprintf(dir, sizeof(dir), "%s/blobs/sha256", layout_dir) < 0)
        return nubo_error(err, ENAMETOOLONG, "OCI layout path %s", layout_dir);
    if (nubo_mkdir_p(dir, 0755, err) < 0)
        return nubo_error_wrap(err, "cannot create OCI layout %s", layout_dir);

    struct nubo_image_info info;
    memset(&info, 0, sizeof(info));
    uint64_t ksize = 0, isize = 0;
    if (write_layer(layout_dir, spec->kernel_path, NUBO_PATH_KERNEL, info.kernel_digest, &ksize,
                    err) < 0)
        return -1;
    if (spec->initrd_path && write_layer(layout_dir, spec->initrd_path, NUBO_PATH_INITRD,
                                         info.initrd_digest, &isize, err) < 0)
        return -1;

    /* Config: an ordinary OCI image config with Unikraft's platform names. */
    cleanup_json json_t *labels = json_object();
    for (size_t i = 0; spec->labels && spec->labels[i]; i++) {
        const char *eq = strchr(spec->labels[i], '=');
        char key[256];
        snprintf(key, sizeof(key), "%.*s", (int)(eq - spec->labels[i]), spec->labels[i]);
        json_object_set_new(labels, key, json_string(eq + 1));
    }
    json_t *diff_ids = json_array();
    json_array_append_new(diff_ids, json_string(info.kernel_digest));
    if (spec->initrd_path)
        json_array_append_new(diff_ids, json_string(info.initrd_digest));
    json_t *cfg_inner = json_object();
    if (spec->cmd && spec->cmd[0])
        json_object_set_new(cfg_inner, "Cmd", strv_json(spec->cmd));
    if (spec->env && spec->env[0])
        json_object_set_new(cfg_inner, "Env", strv_json(spec->env));
    if (json_object_size(labels))
        json_object_set(cfg_inner, "Labels", labels);
    if (spec->user && spec->user[0]) {
        if (!nubo_image_user_valid(spec->user))
            return nubo_error(err, EINVAL,
                              "user '%s': use name[:group] or uid[:gid] of [A-Za-z0-9_.-]",
                              spec->user);
        json_object_set_new(cfg_inner, "User", json_string(spec->user));
    }
    cleanup_json json_t *config = json_pack("{s:s, s:s, s:o, s:{s:s, s:o}}", "architecture",
                                            OCI_ARCH, "os", OCI_OS, "config", cfg_inner, "rootfs",
                                            "type", "layers", "diff_ids", diff_ids);
    if (!config)
        return nubo_error(err, ENOMEM, "cannot build image config");
    cleanup_free char *cfg_text = canonical_json(config);
    uint64_t csize = strlen(cfg_text);
    if (write_blob_mem(layout_dir, cfg_text, csize, info.config_digest, err) < 0)
        return -1;

    json_t *layers = json_array();
    json_t *kl = descriptor(NUBO_MEDIA_OCI_LAYER_TAR, info.kernel_digest, ksize);
    json_object_set_new(kl, "annotations", json_pack("{s:s}", NUBO_ANNOT_KERNEL, NUBO_PATH_KERNEL));
    json_array_append_new(layers, kl);
    if (spec->initrd_path) {
        json_t *il = descriptor(NUBO_MEDIA_OCI_LAYER_TAR, info.initrd_digest, isize);
        json_object_set_new(il, "annotations",
                            json_pack("{s:s}", NUBO_ANNOT_INITRD, NUBO_PATH_INITRD));
        json_array_append_new(layers, il);
    }
    cleanup_json json_t *manifest = json_pack(
        "{s:i, s:s, s:o, s:o, s:o}", "schemaVersion", 2, "mediaType", NUBO_MEDIA_OCI_MANIFEST,
        "config", descriptor(NUBO_MEDIA_OCI_CONFIG, info.config_digest, csize), "layers", layers,
        "annotations", annotations(spec->ref_name));
    cleanup_free char *man_text = canonical_json(manifest);
    uint64_t msize = strlen(man_text);
    if (write_blob_mem(layout_dir, man_text, msize, info.manifest_digest, err) < 0)
        return -1;

    json_t *mdesc = descriptor(NUBO_MEDIA_OCI_MANIFEST, info.manifest_digest, msize);
    json_object_set_new(mdesc, "platform",
                        json_pack("{s:s, s:s}", "architecture", OCI_ARCH, "os", OCI_OS));
    cleanup_json json_t *index = json_pack("{s:i, s:s, s:[o], s:o}", "schemaVersion", 2,
                                           "mediaType", NUBO_MEDIA_OCI_INDEX, "manifests", mdesc,
                                           "annotations", annotations(spec->ref_name));
    cleanup_free char *idx_text = canonical_json(index);
    uint64_t xsize = strlen(idx_text);
    if (write_blob_mem(layout_dir, idx_text, xsize, info.index_digest, err) < 0)
        return -1;

    /* The layout's own entry points: oci-layout and index.json -> our image index. */
    char path[PATH_MAX];
    static const char layout_text[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
    if (nubo_snprintf(path, sizeof(path), "%s/oci-layout", layout_dir) < 0 ||
        nubo_write_file_atomic(path, layout_text, strlen(layout_text), 0644, err) < 0)
        return -1;
    json_t *top_desc = descriptor(NUBO_MEDIA_OCI_INDEX, info.index_digest, xsize);
    if (spec->ref_name && *spec->ref_name)
        json_object_set_new(top_desc, "annotations",
                            json_pack("{s:s}", "org.opencontainers.image.ref.name",
                                      spec->ref_name));
    cleanup_json json_t *top = json_pack("{s:i, s:s, s:[o]}", "schemaVersion", 2, "mediaType",
                                         NUBO_MEDIA_OCI_INDEX, "manifests", top_desc);
    cleanup_free char *top_text = canonical_json(top);
    if (nubo_snprintf(path, sizeof(path), "%s/index.json", layout_dir) < 0 ||
        nubo_write_file_atomic(path, top_text, strlen(top_text), 0644, err) < 0)
        return -1;

    if (info_out) {
        info.size_in_bytes = csize + ksize + isize;
        info.cmd = strv_dup(spec->cmd);
        info.env = strv_dup(spec->env);
        info.labels = strv_dup(spec->labels);
        if (!info.cmd || !info.env || !info.labels) {
            nubo_image_info_free(&info);
            return nubo_error(err, ENOMEM, "out of memory");
        }
        *info_out = info;
    }
    return 0;
}

/* ---------------------------------------------------------------- config parsing */

static char **json_strv(json_t *arr)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s && (out[k] = strdup(s)))
            k++;
    }
    return out;
}

static char **json_labels(json_t *obj)
{
    size_t n = json_is_object(obj) ? json_object_size(obj) : 0;
    char **out = calloc(n + 1, sizeof(char *));
    if (!out)
        return NULL;
    /* Sorted, so the order never depends on the JSON's. */
    const char **keys = calloc(n + 1, sizeof(char *));
    size_t k = 0;
    const char *key;
    json_t *v;
    if (keys)
        json_object_foreach(obj, key, v) keys[k++] = key;
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    size_t o = 0;
    for (size_t i = 0; i < k; i++) {
        const char *s = json_string_value(json_object_get(obj, keys[i]));
        if (!s)
            continue;
        size_t l = strlen(keys[i]) + strlen(s) + 2;
        out[o] = malloc(l);
        if (out[o]) {
            snprintf(out[o], l, "%s=%s", keys[i], s);
            o++;
        }
    }
    free(keys);
    return out;
}

static const char *annot(json_t *desc, const char *key)
{
    return json_string_value(json_object_get(json_object_get(desc, "annotations"), key));
}

/* Fill info's layer and config fields from a manifest body (and its config from loader). */
static int manifest_to_info(json_t *man, const char *what, struct nubo_image_info *info,
                            uint64_t *config_size, struct nubo_err *err)
{
    json_t *cfg = json_object_get(man, "config");
    const char *cd = json_string_value(json_object_get(cfg, "digest"));
    if (!cd || !nubo_digest_valid(cd))
        return nubo_error(err, 0, "%s: manifest has no valid config digest", what);
    snprintf(info->config_digest, sizeof(info->config_digest), "%s", cd);
    *config_size = (uint64_t)json_integer_value(json_object_get(cfg, "size"));
    info->size_in_bytes = *config_size;
    json_t *layers = json_object_get(man, "layers");
    if (!json_is_array(layers))
        return nubo_error(err, 0, "%s: manifest has no layers", what);
    size_t i;
    json_t *l;
    json_array_foreach(layers, i, l)
    {
        const char *d = json_string_value(json_object_get(l, "digest"));
        if (!d || !nubo_digest_valid(d))
            return nubo_error(err, 0, "%s: layer %zu has no valid digest", what, i);
        json_int_t sz = json_integer_value(json_object_get(l, "size"));
        if (sz < 0)
            return nubo_error(err, 0, "%s: layer %zu has a negative size", what, i);
        info->size_in_bytes += (uint64_t)sz;
        if (annot(l, NUBO_ANNOT_KERNEL))
            snprintf(info->kernel_digest, sizeof(info->kernel_digest), "%s", d);
        else if (annot(l, NUBO_ANNOT_INITRD))
            snprintf(info->initrd_digest, sizeof(info->initrd_digest), "%s", d);
    }
    /* Images without annotations: kraftkit's order is kernel, then initrd. */
    if (!info->kernel_digest[0] && json_array_size(layers) >= 1 && !info->initrd_digest[0]) {
        snprintf(info->kernel_digest, sizeof(info->kernel_digest), "%s",
                 json_string_value(json_object_get(json_array_get(layers, 0), "digest")));
        if (json_array_size(layers) >= 2)
            snprintf(info->initrd_digest, sizeof(info->initrd_digest), "%s",
                     json_string_value(json_object_get(json_array_get(layers, 1), "digest")));
    }
    if (!info->kernel_digest[0])
        return nubo_error(err, 0, "%s: no kernel layer (annotation %s)", what, NUBO_ANNOT_KERNEL);
    return 0;
}

static int config_to_info(const char *text, size_t len, const char *what,
                          struct nubo_image_info *info, struct nubo_err *err)
{
    json_error_t jerr;
    cleanup_json json_t *c = json_loadb(text, len, 0, &jerr);
    if (!json_is_object(c))
        return nubo_error(err, 0, "%s: image config is not JSON: %s", what, jerr.text);
    json_t *inner = json_object_get(c, "config");
    const char *os = json_string_value(json_object_get(c, "os"));
    snprintf(info->os, sizeof(info->os), "%s", os ? os : "");
    info->cmd = json_strv(json_object_get(inner, "Cmd"));
    info->env = json_strv(json_object_get(inner, "Env"));
    info->labels = json_labels(json_object_get(inner, "Labels"));
    if (!info->cmd || !info->env || !info->labels)
        return nubo_error(err, ENOMEM, "out of memory");
    const char *user = json_string_value(json_object_get(inner, "User"));
    if (user && user[0] && !nubo_image_user_valid(user))
        return nubo_error(err, 0, "%s: image config User '%.64s' is not name[:group] or uid[:gid]",
                          what, user);
    snprintf(info->user, sizeof(info->user), "%s", user ? user : "");
    return 0;
}

static bool is_index_type(const char *mt)
{
    return mt && (strcmp(mt, NUBO_MEDIA_OCI_INDEX) == 0 || strcmp(mt, NUBO_MEDIA_DOCKER_LIST) == 0);
}

/* Choose the x86_64 manifest in an index; a lone manifest without a platform is accepted. */
static const char *pick_manifest(json_t *idx)
{
    json_t *mans = json_object_get(idx, "manifests");
    size_t i;
    json_t *m;
    json_array_foreach(mans, i, m)
    {
        const char *arch = json_string_value(
            json_object_get(json_object_get(m, "platform"), "architecture"));
        if (arch && (strcmp(arch, "x86_64") == 0 || strcmp(arch, "amd64") == 0))
            return json_string_value(json_object_get(m, "digest"));
    }
    if (json_array_size(mans) == 1 && !json_object_get(json_array_get(mans, 0), "platform"))
        return json_string_value(json_object_get(json_array_get(mans, 0), "digest"));
    return NULL;
}

/* ---------------------------------------------------------------- inspect */

int nubo_oci_inspect(const struct nubo_registry *reg, const char *repo,
                     const char *tag_or_digest, struct nubo_image_info *info_out,
                     struct nubo_err *err)
{
    struct nubo_image_info info;
    memset(&info, 0, sizeof(info));
    char what[512];
    snprintf(what, sizeof(what), "image %s%s%s", repo, nubo_digest_valid(tag_or_digest) ? "@" : ":",
             tag_or_digest);
    cleanup_free char *body = NULL;
    cleanup_free char *mt = NULL;
    size_t len = 0;
    if (nubo_registry_get_manifest(reg, repo, tag_or_digest, &body, &len, &mt, info.index_digest,
                                   err) < 0)
        return -1;
    json_error_t jerr;
    cleanup_json json_t *top = json_loadb(body, len, 0, &jerr);
    if (!json_is_object(top))
        return nubo_error(err, 0, "%s: manifest is not JSON: %s", what, jerr.text);
    cleanup_json json_t *man = NULL;
    if (is_index_type(mt) || json_object_get(top, "manifests")) {
        const char *md = pick_manifest(top);
        if (!md || !nubo_digest_valid(md))
            return nubo_error(err, 0, "%s has no x86_64 manifest", what);
        cleanup_free char *mbody = NULL;
        cleanup_free char *mmt = NULL;
        size_t mlen = 0;
        if (nubo_registry_get_manifest(reg, repo, md, &mbody, &mlen, &mmt, info.manifest_digest,
                                       err) < 0)
            return -1;
        man = json_loadb(mbody, mlen, 0, &jerr);
        if (!json_is_object(man))
            return nubo_error(err, 0, "%s: manifest %s is not JSON", what, md);
    } else {
        memcpy(info.manifest_digest, info.index_digest, sizeof(info.manifest_digest));
        man = json_incref(top);
    }
    uint64_t csize = 0;
    if (manifest_to_info(man, what, &info, &csize, err) < 0)
        return -1;
    if (csize > OCI_CONFIG_MAX)
        return nubo_error(err, 0, "%s: config of %llu bytes is too large", what,
                          (unsigned long long)csize);
    cleanup_free char *cfg = NULL;
    size_t clen = 0;
    if (nubo_registry_get_blob_mem(reg, repo, info.config_digest, OCI_CONFIG_MAX, &cfg, &clen,
                                   err) < 0)
        return -1;
    if (config_to_info(cfg, clen, what, &info, err) < 0) {
        nubo_image_info_free(&info);
        return -1;
    }
    if (info_out)
        *info_out = info;
    else
        nubo_image_info_free(&info);
    return 0;
}

/* ---------------------------------------------------------------- push */

struct push_progress {
    nubo_progress_fn fn;
    void *opaque;
    uint64_t base, total;
};

static void push_progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct push_progress *p = opaque;
    if (p->fn)
        p->fn(p->opaque, p->base + done, p->total);
}

static int read_layout_json(const char *layout_dir, const char *digest, char **text, size_t *len,
                            struct nubo_err *err)
{
    char path[PATH_MAX];
    if (digest == NULL) {
        if (nubo_snprintf(path, sizeof(path), "%s/index.json", layout_dir) < 0)
            return nubo_error(err, ENAMETOOLONG, "OCI layout path %s", layout_dir);
    } else if (blob_path(layout_dir, digest, path, sizeof(path), err) < 0)
        return -1;
    if (nubo_read_file(path, NUBO_MANIFEST_MAX, text, len, err) < 0)
        return nubo_error_wrap(err, "OCI layout %s", layout_dir);
    if (digest) {
        char hex[NUBO_SHA256_HEX_LEN + 1];
        nubo_sha256_hex(*text, *len, hex);
        if (strcmp(hex, digest + 7) != 0) {
            free(*text);
            *text = NULL;
            return nubo_error(err, 0, "OCI layout %s: blob %s is corrupt (hashes to sha256:%s)",
                              layout_dir, digest, hex);
        }
    }
    return 0;
}

int nubo_oci_push(const char *layout_dir, const struct nubo_registry *reg, const char *repo,
                  const char *tag, nubo_progress_fn progress, void *opaque,
                  struct nubo_image_info *info_out, struct nubo_err *err)
{
    struct nubo_image_info info;
    memset(&info, 0, sizeof(info));
    cleanup_free char *top_text = NULL;
    size_t top_len = 0;
    if (read_layout_json(layout_dir, NULL, &top_text, &top_len, err) < 0)
        return -1;
    json_error_t jerr;
    cleanup_json json_t *top = json_loadb(top_text, top_len, 0, &jerr);
    json_t *entry = json_array_get(json_object_get(top, "manifests"), 0);
    const char *entry_digest = json_string_value(json_object_get(entry, "digest"));
    const char *entry_mt = json_string_value(json_object_get(entry, "mediaType"));
    if (!entry_digest || !nubo_digest_valid(entry_digest))
        return nubo_error(err, 0, "OCI layout %s: index.json names no image (run nubo pkg first)",
                          layout_dir);
    snprintf(info.index_digest, sizeof(info.index_digest), "%s", entry_digest);

    cleanup_free char *idx_text = NULL;
    size_t idx_len = 0;
    if (read_layout_json(layout_dir, entry_digest, &idx_text, &idx_len, err) < 0)
        return -1;
    cleanup_json json_t *idx = json_loadb(idx_text, idx_len, 0, &jerr);
    if (!json_is_object(idx))
        return nubo_error(err, 0, "OCI layout %s: %s is not JSON", layout_dir, entry_digest);
    bool nested = is_index_type(entry_mt) || json_object_get(idx, "manifests");
    cleanup_free char *man_text = NULL;
    size_t man_len = 0;
    cleanup_json json_t *man = NULL;
    if (nested) {
        const char *md = pick_manifest(idx);
        if (!md || !nubo_digest_valid(md))
            return nubo_error(err, 0, "OCI layout %s: no x86_64 manifest", layout_dir);
        snprintf(info.manifest_digest, sizeof(info.manifest_digest), "%s", md);
        if (read_layout_json(layout_dir, md, &man_text, &man_len, err) < 0)
            return -1;
        man = json_loadb(man_text, man_len, 0, &jerr);
    } else {
        snprintf(info.manifest_digest, sizeof(info.manifest_digest), "%s", entry_digest);
        man = json_incref(idx);
    }
    if (!json_is_object(man))
        return nubo_error(err, 0, "OCI layout %s: manifest is not JSON", layout_dir);
    uint64_t csize = 0;
    if (manifest_to_info(man, layout_dir, &info, &csize, err) < 0)
        return -1;

    /* Blobs first (layers, config), then the manifest by digest, then the tag. */
    struct push_progress pp = {progress, opaque, 0, info.size_in_bytes};
    json_t *layers = json_object_get(man, "layers");
    size_t n = json_array_size(layers);
    for (size_t i = 0; i <= n; i++) {
        json_t *d = i < n ? json_array_get(layers, i) : json_object_get(man, "config");
        const char *dg = json_string_value(json_object_get(d, "digest"));
        uint64_t sz = (uint64_t)json_integer_value(json_object_get(d, "size"));
        char path[PATH_MAX];
        if (blob_path(layout_dir, dg, path, sizeof(path), err) < 0)
            return -1;
        if (nubo_registry_put_blob_file(reg, repo, path, dg, progress ? push_progress_cb : NULL,
                                        &pp, err) < 0)
            return nubo_error_wrap(err, "pushing %s:%s", repo, tag);
        pp.base += sz;
    }
    if (nested && nubo_registry_put_manifest(reg, repo, info.manifest_digest,
                                             NUBO_MEDIA_OCI_MANIFEST, man_text, man_len, err) < 0)
        return nubo_error_wrap(err, "pushing %s:%s", repo, tag);
    const char *top_mt = nested ? NUBO_MEDIA_OCI_INDEX : NUBO_MEDIA_OCI_MANIFEST;
    if (nubo_registry_put_manifest(reg, repo, tag, top_mt, idx_text, idx_len, err) < 0)
        return nubo_error_wrap(err, "pushing %s:%s", repo, tag);

    if (info_out) {
        cleanup_free char *cfg = NULL;
        size_t clen = 0;
        char path[PATH_MAX];
        if (blob_path(layout_dir, info.config_digest, path, sizeof(path), err) < 0 ||
            nubo_read_file(path, OCI_CONFIG_MAX, &cfg, &clen, err) < 0)
            return -1;
        if (config_to_info(cfg, clen, layout_dir, &info, err) < 0) {
            nubo_image_info_free(&info);
            return -1;
        }
        *info_out = info;
    }
    return 0;
}

/* ---------------------------------------------------------------- extract */

/* Strip "./" and one leading "/" (kraftkit writes "/unikraft/bin/kernel"). */
static const char *norm_name(const char *n)
{
    while (n[0] == '.' && n[1] == '/')
        n += 2;
    if (n[0] == '/')
        n++;
    return n;
}

static bool has_dotdot(const char *n)
{
    const char *p = n;
    while (*p) {
        const char *s = strchr(p, '/');
        size_t l = s ? (size_t)(s - p) : strlen(p);
        if (l == 2 && p[0] == '.' && p[1] == '.')
            return true;
        if (!s)
            break;
        p = s + 1;
    }
    return false;
}

/* Last component of a path: messages name the layer file, never where the host keeps it
 * (they reach tenants through the agent). */
static const char *name_of(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Copy the current entry's data to fd, at most max_bytes (0 = no limit) really written: a
 * small compressed layer can expand to anything (a gzip bomb). */
static int copy_capped(struct archive *a, int fd, uint64_t max_bytes, const char *want_path,
                       const char *layer_tar, struct nubo_err *err)
{
    char buf[65536];
    uint64_t total = 0;
    for (;;) {
        la_ssize_t n = archive_read_data(a, buf, sizeof(buf));
        if (n == 0)
            return 0;
        if (n < 0)
            return nubo_error(err, 0, "cannot extract %s from layer %s: %s", want_path,
                              name_of(layer_tar), archive_error_string(a));
        total += (uint64_t)n;
        if (max_bytes && total > max_bytes)
            return nubo_error_http(err, 413,
                                   "%s in layer %s expands past the limit of %llu bytes unpacked",
                                   want_path, name_of(layer_tar), (unsigned long long)max_bytes);
        for (la_ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return nubo_error(err, errno, "cannot write %s", name_of(want_path));
            off += w;
        }
    }
}

int nubo_oci_extract_layer_file(const char *layer_tar, const char *want_path, const char *out_path,
                                uint64_t max_bytes, struct nubo_err *err)
{
    const char *want = norm_name(want_path);
    struct archive *a = archive_read_new();
    if (!a)
        return nubo_error(err, ENOMEM, "out of memory");
    archive_read_support_format_tar(a);
    archive_read_support_filter_gzip(a);
    archive_read_support_filter_none(a);
    int rc = 0, out = -1;
    bool found = false;
    if (archive_read_open_filename(a, layer_tar, 65536) != ARCHIVE_OK) {
        rc = nubo_error(err, 0, "cannot read layer %s: %s", name_of(layer_tar),
                        archive_error_string(a));
        goto done;
    }
    struct archive_entry *e;
    for (;;) {
        int r = archive_read_next_header(a, &e);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            rc = nubo_error(err, 0, "layer %s is not a valid tar: %s", name_of(layer_tar),
                            archive_error_string(a));
            goto done;
        }
        const char *raw = archive_entry_pathname(e);
        if (!raw) {
            rc = nubo_error(err, 0, "layer %s has an entry without a name", name_of(layer_tar));
            goto done;
        }
        const char *name = norm_name(raw);
        mode_t type = archive_entry_filetype(e);
        if (has_dotdot(raw)) {
            rc = nubo_error(err, 0, "layer %s: refusing entry '%s' (path with '..')",
                            name_of(layer_tar), raw);
            goto done;
        }
        if (archive_entry_hardlink(e) || type == AE_IFLNK) {
            rc = nubo_error(err, 0, "layer %s: refusing link '%s'", name_of(layer_tar), raw);
            goto done;
        }
        if (type == AE_IFDIR) {
            if (raw[0] == '/' && strcmp(name, "") != 0 && strncmp(want, name, strlen(name)) != 0) {
                rc = nubo_error(err, 0, "layer %s: refusing absolute entry '%s'",
                                name_of(layer_tar), raw);
                goto done;
            }
            continue;
        }
        if (type != AE_IFREG) {
            rc =
                nubo_error(err, 0, "layer %s: refusing special file '%s'", name_of(layer_tar), raw);
            goto done;
        }
        if (strcmp(name, want) != 0) {
            rc = nubo_error(err, 0,
                            "layer %s: unexpected file '%s' (a unikernel layer holds only %s)",
                            name_of(layer_tar), raw, want_path);
            goto done;
        }
        if (found) {
            rc = nubo_error(err, 0, "layer %s holds %s twice", name_of(layer_tar), want_path);
            goto done;
        }
        found = true;
        out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (out < 0) {
            rc = nubo_error(err, errno, "cannot create %s", name_of(out_path));
            goto done;
        }
        /* The header's size is the layer author's claim: count what is really written. */
        if (max_bytes && archive_entry_size_is_set(e) &&
            (uint64_t)archive_entry_size(e) > max_bytes) {
            rc = nubo_error_http(
                err, 413, "%s in layer %s is %lld bytes unpacked, over the limit of %llu bytes",
                want_path, name_of(layer_tar), (long long)archive_entry_size(e),
                (unsigned long long)max_bytes);
            goto done;
        }
        if (copy_capped(a, out, max_bytes, want_path, layer_tar, err) < 0) {
            rc = -1;
            goto done;
        }
        if (fsync(out) < 0 || close(out) < 0) {
            out = -1;
            rc = nubo_error(err, errno, "cannot write %s", name_of(out_path));
            goto done;
        }
        out = -1;
    }
    if (!found)
        rc = nubo_error(err, 0, "layer %s does not contain %s", name_of(layer_tar), want_path);
done:
    if (out >= 0)
        close(out);
    if (rc < 0 && found)
        unlink(out_path);
    archive_read_free(a);
    return rc;
}
