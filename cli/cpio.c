/* Reproducible initrds: a directory tree as a newc cpio (sorted names, mtime 0, uid/gid 0,
 * sequential inode numbers), and byte concatenation onto a runtime's initrd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "cleanup.h"
#include "cli.h"
#include "util.h"

#define CPIO_MAX_DEPTH 64

struct cpio_w {
    struct archive *a;
    int64_t ino;
    const char *root;
};

static int name_cmp(const struct dirent **x, const struct dirent **y)
{
    return strcmp((*x)->d_name, (*y)->d_name);
}

static int add_file_data(struct cpio_w *w, const char *path, int64_t size, struct nubo_err *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return nubo_error(err, errno, "cannot open %s", path);
    char buf[65536];
    int64_t left = size;
    while (left > 0) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return nubo_error(err, r < 0 ? errno : 0, "cannot read %s%s", path,
                              r == 0 ? " (file shrank)" : "");
        if (r > left)
            r = (ssize_t)left;
        if (archive_write_data(w->a, buf, (size_t)r) != r)
            return nubo_error(err, 0, "cannot write cpio data: %s", archive_error_string(w->a));
        left -= r;
    }
    return 0;
}

static int walk(struct cpio_w *w, const char *rel, int depth, struct nubo_err *err)
{
    if (depth > CPIO_MAX_DEPTH)
        return nubo_error(err, 0, "rootfs %s nests deeper than %d directories", w->root,
                          CPIO_MAX_DEPTH);
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s%s%s", w->root, rel[0] ? "/" : "", rel);
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, name_cmp);
    if (n < 0)
        return nubo_error(err, errno, "cannot list %s", dir);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const char *nm = names[i]->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, ".."))
            continue;
        char r2[PATH_MAX], full[PATH_MAX];
        if (snprintf(r2, sizeof(r2), "%s%s%s", rel, rel[0] ? "/" : "", nm) >= (int)sizeof(r2) ||
            snprintf(full, sizeof(full), "%s/%s", w->root, r2) >= (int)sizeof(full)) {
            rc = nubo_error(err, ENAMETOOLONG, "path in rootfs %s", w->root);
            break;
        }
        struct stat st;
        if (lstat(full, &st) < 0) {
            rc = nubo_error(err, errno, "cannot stat %s", full);
            break;
        }
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, r2);
        archive_entry_set_mode(e, st.st_mode);
        archive_entry_set_uid(e, 0);
        archive_entry_set_gid(e, 0);
        archive_entry_set_mtime(e, 0, 0);
        archive_entry_set_ino64(e, ++w->ino);
        archive_entry_set_dev(e, 0);
        archive_entry_set_nlink(e, S_ISDIR(st.st_mode) ? 2 : 1);
        char target[PATH_MAX];
        if (S_ISREG(st.st_mode))
            archive_entry_set_size(e, st.st_size);
        else if (S_ISLNK(st.st_mode)) {
            ssize_t l = readlink(full, target, sizeof(target) - 1);
            if (l < 0) {
                archive_entry_free(e);
                rc = nubo_error(err, errno, "cannot read link %s", full);
                break;
            }
            target[l] = '\0';
            archive_entry_set_symlink(e, target);
            archive_entry_set_size(e, 0);
        } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
            archive_entry_set_rdev(e, st.st_rdev);
            archive_entry_set_size(e, 0);
        } else if (!S_ISDIR(st.st_mode) && !S_ISFIFO(st.st_mode)) {
            archive_entry_free(e);
            continue; /* sockets are not files to ship */
        } else {
            archive_entry_set_size(e, 0);
        }
        if (archive_write_header(w->a, e) != ARCHIVE_OK)
            rc = nubo_error(err, 0, "cannot add %s to the cpio: %s", r2,
                            archive_error_string(w->a));
        archive_entry_free(e);
        if (rc == 0 && S_ISREG(st.st_mode))
            rc = add_file_data(w, full, st.st_size, err);
        if (rc == 0 && S_ISDIR(st.st_mode))
            rc = walk(w, r2, depth + 1, err);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

int cli_cpio_from_dir(const char *root_dir, const char *out_path, struct nubo_err *err)
{
    struct cpio_w w = {archive_write_new(), 0, root_dir};
    if (!w.a)
        return nubo_error(err, ENOMEM, "out of memory");
    int rc = 0;
    if (archive_write_set_format_cpio_newc(w.a) != ARCHIVE_OK ||
        archive_write_add_filter_none(w.a) != ARCHIVE_OK ||
        archive_write_set_bytes_in_last_block(w.a, 1) != ARCHIVE_OK ||
        archive_write_open_filename(w.a, out_path) != ARCHIVE_OK)
        rc = nubo_error(err, 0, "cannot create %s: %s", out_path, archive_error_string(w.a));
    if (rc == 0)
        rc = walk(&w, "", 0, err);
    if (rc == 0 && archive_write_close(w.a) != ARCHIVE_OK)
        rc = nubo_error(err, 0, "cannot finish %s: %s", out_path, archive_error_string(w.a));
    archive_write_free(w.a);
    if (rc < 0)
        unlink(out_path);
    return rc;
}

static int copy_into(int out, const char *path, const char *out_path, struct nubo_err *err)
{
    cleanup_close int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return nubo_error(err, errno, "cannot open %s", path);
    return nubo_copy_fd(in, path, out, out_path, err);
}

int cli_concat_files(const char *a, const char *b, const char *out_path, struct nubo_err *err)
{
    cleanup_close int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0)
        return nubo_error(err, errno, "cannot create %s", out_path);
    if (a && copy_into(out, a, out_path, err) < 0)
        return -1;
    /* newc archives end 4-byte aligned; keep the next one aligned for the kernel's unpacker. */
    off_t pos = lseek(out, 0, SEEK_CUR);
    if (pos > 0 && pos % 4) {
        static const char zeros[4];
        if (write(out, zeros, (size_t)(4 - pos % 4)) < 0)
            return nubo_error(err, errno, "cannot write %s", out_path);
    }
    if (copy_into(out, b, out_path, err) < 0)
        return -1;
    return 0;
}
