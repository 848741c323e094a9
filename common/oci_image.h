/* Unikernel images in kraftkit's OCI layout (reference/image-format.md): one index ->
 * one manifest (x86_64) -> config + single-file tar layers for kernel and initrd.
 * Everything is reproducible: fixed mtimes, sorted entries, canonical JSON. */
#ifndef NUBO_OCI_IMAGE_H
#define NUBO_OCI_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "registry.h"

#define NUBO_ANNOT_KERNEL "org.unikraft.kernel.image"
#define NUBO_ANNOT_INITRD "org.unikraft.kernel.initrd"
#define NUBO_PATH_KERNEL "/unikraft/bin/kernel"
#define NUBO_PATH_INITRD "/unikraft/bin/initrd"

/* What goes into an image. */
#define NUBO_IMAGE_USER_MAX 64

struct nubo_image_spec {
    const char *kernel_path;      /* required: ELF (PVH) or bzImage */
    const char *initrd_path;      /* optional: cpio (newc) */
    const char *const *cmd;       /* NULL-terminated default args, may be NULL */
    const char *const *env;       /* NULL-terminated "K=V", may be NULL */
    const char *const *labels;    /* NULL-terminated "K=V", may be NULL */
    const char *ref_name;         /* "acme/app:latest" for the annotations */
    const char *user;             /* config.User ("name[:group]", "uid[:gid]"), may be NULL */
};

/* What a pulled or packed image says about itself (from its config and manifest). */
struct nubo_image_info {
    char index_digest[80];        /* digest of the top-level object (what a tag points to) */
    char manifest_digest[80];
    char config_digest[80];
    char kernel_digest[80];       /* layer digests, "" when absent */
    char initrd_digest[80];
    uint64_t size_in_bytes;       /* config + layers */
    char **cmd;                   /* NULL-terminated, malloc'd */
    char **env;                   /* NULL-terminated, malloc'd */
    char **labels;                /* NULL-terminated "K=V", malloc'd */
    char user[NUBO_IMAGE_USER_MAX + 1]; /* config.User, "" when the image declares none */
    char os[32];                  /* config "os": the Unikraft platform for kraftkit images */
};
/* config.User as nubo passes it to a guest: name or uid, optionally ":" group or gid, of
 * [A-Za-z0-9_.-] (no spaces or quotes: it travels on the kernel command line). */
bool nubo_image_user_valid(const char *s);
void nubo_image_info_free(struct nubo_image_info *info);

/* Pack spec into an OCI image layout directory (oci-layout, index.json, blobs/sha256/…).
 * Verifies the kernel is an ELF or bzImage and the initrd a cpio archive. */
int nubo_oci_pack(const struct nubo_image_spec *spec, const char *layout_dir,
                  struct nubo_image_info *info_out, struct nubo_err *err);

/* Push a layout directory's image to repo:tag. */
int nubo_oci_push(const char *layout_dir, const struct nubo_registry *reg, const char *repo,
                  const char *tag, nubo_progress_fn progress, void *opaque,
                  struct nubo_image_info *info_out, struct nubo_err *err);

/* Resolve repo + tag-or-digest in a registry: index/manifest walk to the x86_64 manifest,
 * config parsed. No layer is downloaded. */
int nubo_oci_inspect(const struct nubo_registry *reg, const char *repo,
                     const char *tag_or_digest, struct nubo_image_info *info_out,
                     struct nubo_err *err);

/* Extract the single regular file at want_path from a tar layer file into out_path,
 * refusing absolute paths, "..", links, devices and anything else but that one file, and
 * (HTTP 413) a file that unpacks to more than max_bytes (0 = no limit: local use only). */
int nubo_oci_extract_layer_file(const char *layer_tar, const char *want_path, const char *out_path,
                                uint64_t max_bytes, struct nubo_err *err);

#endif
