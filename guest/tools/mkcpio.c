/* guest_mkcpio: writes a reproducible cpio "newc" archive (initramfs) from a spec on stdin:
 * every entry owned by 0:0, mtime fixed, inodes numbered in order, directory trees sorted
 * bytewise, so the same inputs always give the same bytes (and the same image digest).
 *   dir   PATH MODE
 *   file  PATH MODE SRC
 *   slink PATH TARGET
 *   nod   PATH MODE c|b MAJOR MINOR
 *   tree  PATH SRCDIR        (SRCDIR's contents under PATH: dirs, files, symlinks; modes kept;
 *                             PATH itself needs its own dir line: the kernel does not mkdir -p)
 * Usage: guest_mkcpio OUT.cpio < spec */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define MKCPIO_PATH_MAX 4096

struct cpio_out {
	FILE *f;
	const char *name;
	uint64_t off;
	uint32_t ino;
	uint32_t mtime;
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "guest_mkcpio: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static int put(struct cpio_out *o, const void *buf, size_t len)
{
	if (len && fwrite(buf, 1, len, o->f) != len)
		return fail("cannot write %s: %s", o->name, strerror(errno));
	o->off += len;
	return 0;
}

static int pad4(struct cpio_out *o)
{
	static const char zeros[4];
	return put(o, zeros, (size_t)((4 - o->off % 4) % 4));
}

/* One newc header + name; PATH is stored without a leading slash (kernel convention). */
static int header(struct cpio_out *o, const char *path, uint32_t mode, uint64_t size,
		  uint32_t rmaj, uint32_t rmin)
{
	while (*path == '/')
		path++;
	if (!*path)
		path = ".";
	if (size > 0xffffffffu)
		return fail("%s%s: file too large for newc (4 GiB)", path, "");
	char hdr[111];
	size_t namesize = strlen(path) + 1;
	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ++o->ino, mode, 0u, 0u,
		 1u, o->mtime, (uint32_t)size, 0u, 0u, rmaj, rmin, (uint32_t)namesize, 0u);
	if (put(o, hdr, 110) < 0 || put(o, path, namesize) < 0)
		return -1;
	return pad4(o);
}

static int emit_file(struct cpio_out *o, const char *path, uint32_t perm, const char *src)
{
	FILE *in = fopen(src, "rb");
	if (!in)
		return fail("cannot open %s: %s", src, strerror(errno));
	struct stat st;
	if (fstat(fileno(in), &st) < 0 || !S_ISREG(st.st_mode)) {
		fclose(in);
		return fail("%s is not a regular file%s", src, "");
	}
	if (header(o, path, S_IFREG | perm, (uint64_t)st.st_size, 0, 0) < 0) {
		fclose(in);
		return -1;
	}
	char buf[65536];
	uint64_t left = (uint64_t)st.st_size;
	while (left) {
		size_t n = fread(buf, 1, left < sizeof(buf) ? (size_t)left : sizeof(buf), in);
		if (n == 0) {
			fclose(in);
			return fail("%s shrank while being archived%s", src, "");
		}
		if (put(o, buf, n) < 0) {
			fclose(in);
			return -1;
		}
		left -= n;
	}
	fclose(in);
	return pad4(o);
}

static int emit_slink(struct cpio_out *o, const char *path, const char *target)
{
	size_t len = strlen(target);
	if (header(o, path, S_IFLNK | 0777, len, 0, 0) < 0 || put(o, target, len) < 0)
		return -1;
	return pad4(o);
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int emit_tree(struct cpio_out *o, const char *path, const char *src, int depth)
{
	if (depth > 64)
		return fail("%s: directory tree too deep%s", src, "");
	DIR *d = opendir(src);
	if (!d)
		return fail("cannot open directory %s: %s", src, strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	int rc = 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn) {
				rc = fail("out of memory reading %s%s", src, "");
				break;
			}
			names = nn;
		}
		if (!(names[n] = strdup(de->d_name))) {
			rc = fail("out of memory reading %s%s", src, "");
			break;
		}
		n++;
	}
	closedir(d);
	if (rc == 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && rc == 0; i++) {
		char spath[MKCPIO_PATH_MAX], dpath[MKCPIO_PATH_MAX];
		if ((size_t)snprintf(spath, sizeof(spath), "%s/%s", src, names[i]) >= sizeof(spath) ||
		    (size_t)snprintf(dpath, sizeof(dpath), "%s/%s", path, names[i]) >= sizeof(dpath)) {
			rc = fail("path too long under %s%s", src, "");
			break;
		}
		struct stat st;
		if (lstat(spath, &st) < 0) {
			rc = fail("cannot stat %s: %s", spath, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			rc = header(o, dpath, S_IFDIR | (st.st_mode & 07777), 0, 0, 0);
			if (rc == 0)
				rc = emit_tree(o, dpath, spath, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			rc = emit_file(o, dpath, st.st_mode & 07777, spath);
		} else if (S_ISLNK(st.st_mode)) {
			char target[MKCPIO_PATH_MAX];
			ssize_t tl = readlink(spath, target, sizeof(target) - 1);
			if (tl < 0)
				rc = fail("cannot read link %s: %s", spath, strerror(errno));
			else {
				target[tl] = '\0';
				rc = emit_slink(o, dpath, target);
			}
		} else {
			rc = fail("%s: unsupported file type (only dirs, files, symlinks)%s", spath, "");
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

static int parse_mode(const char *s, uint32_t *mode)
{
	char *end;
	unsigned long v = strtoul(s, &end, 8);
	if (!*s || *end || v > 07777)
		return fail("bad mode %s%s", s, "");
	*mode = (uint32_t)v;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: guest_mkcpio OUT.cpio < spec\n");
		return 2;
	}
	struct cpio_out o = {.name = argv[1]};
	const char *epoch = getenv("SOURCE_DATE_EPOCH");
	o.mtime = epoch ? (uint32_t)strtoul(epoch, NULL, 10) : 0;
	char tmp[MKCPIO_PATH_MAX];
	snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
	o.f = fopen(tmp, "wb");
	if (!o.f) {
		fail("cannot create %s: %s", tmp, strerror(errno));
		return 1;
	}

	char line[3 * MKCPIO_PATH_MAX];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof(line), stdin)) {
		lineno++;
		size_t len = strlen(line);
		if (len && line[len - 1] == '\n')
			line[--len] = '\0';
		else if (!feof(stdin)) {
			rc = fail("spec line too long%s%s", "", "");
			break;
		}
		char *f[7] = {0};
		int nf = 0;
		for (char *tok = strtok(line, " \t"); tok && nf < 7; tok = strtok(NULL, " \t"))
			f[nf++] = tok;
		if (nf == 0 || f[0][0] == '#')
			continue;
		uint32_t mode = 0;
		if (!strcmp(f[0], "dir") && nf == 3) {
			rc = parse_mode(f[2], &mode);
			if (rc == 0)
				rc = header(&o, f[1], S_IFDIR | mode, 0, 0, 0);
		} else if (!strcmp(f[0], "file") && nf == 4) {
			rc = parse_mode(f[2], &mode);
			if (rc == 0)
				rc = emit_file(&o, f[1], mode, f[3]);
		} else if (!strcmp(f[0], "slink") && nf == 3) {
			rc = emit_slink(&o, f[1], f[2]);
		} else if (!strcmp(f[0], "nod") && nf == 6 && (!strcmp(f[3], "c") || !strcmp(f[3], "b"))) {
			rc = parse_mode(f[2], &mode);
			if (rc == 0)
				rc = header(&o, f[1], (f[3][0] == 'c' ? S_IFCHR : S_IFBLK) | mode, 0,
					    (uint32_t)strtoul(f[4], NULL, 10), (uint32_t)strtoul(f[5], NULL, 10));
		} else if (!strcmp(f[0], "tree") && nf == 3) {
			rc = emit_tree(&o, f[1], f[2], 0);
		} else {
			char num[16];
			snprintf(num, sizeof(num), "%d", lineno);
			rc = fail("spec line %s: cannot parse '%s'", num, f[0]);
		}
	}
	if (rc == 0)
		rc = header(&o, "TRAILER!!!", 0, 0, 0, 0);
	if (fclose(o.f) != 0 && rc == 0)
		rc = fail("cannot write %s: %s", tmp, strerror(errno));
	if (rc == 0 && rename(tmp, argv[1]) < 0)
		rc = fail("cannot rename to %s: %s", argv[1], strerror(errno));
	if (rc != 0)
		unlink(tmp);
	return rc == 0 ? 0 : 1;
}
