/* Serial console of an instance: qemu appends (O_APPEND, fd passed by libvirt) to
 * <dir>/console.log; we follow it as it grows (inotify on dir), copy every byte into a bounded
 * ring on disk (<dir>/console.ring, shipped to the controller from there) and spot the marker
 * lines of the guest console protocol: NUBO_READY, NUBO_EXIT <n>, NUBO_CRASH <text>; the
 * caller also hears of any output and of every other line (readiness rules, stock kernels). */
#include "agent_core.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"

/* Ring file: a header then cap bytes; stream byte p lives at HDR + p % cap. The header keeps
 * where we are in console.log so a restarted agent resumes where it stopped. */
/* console.log is opened by libvirt for qemu with O_APPEND and grows without limit; once we
 * have copied this much of it into the ring we truncate it (appends then start again at 0).
 * The bytes a guest writes between our last read and the truncate are lost: microseconds. */
#define CONSOLE_FILE_MAX (1u << 20)

#define RING_MAGIC 0x6e75626f636f6e31ULL /* "nubocon1" */
#define RING_HDR 64
struct ring_hdr {
    uint64_t magic, cap, total, shipped, file_ino, file_off;
};

enum agent_marker agent_console_match(const char *line, int *exit_code, const char **text)
{
    /* Leading noise (a kernel's carriage returns, ANSI resets) does not hide a marker. */
    while (*line == '\r' || *line == ' ' || *line == '\t')
        line++;
    if (strncmp(line, "NUBO_READY", 10) == 0 && (line[10] == '\0' || isspace((unsigned char)line[10])))
        return AGENT_MARK_READY;
    if (strncmp(line, "NUBO_EXIT", 9) == 0 && (line[9] == ' ' || line[9] == '\0')) {
        const char *p = line + 9;
        while (*p == ' ')
            p++;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < -2147483647L || v > 2147483647L)
            v = 0;
        if (exit_code)
            *exit_code = (int)v;
        return AGENT_MARK_EXIT;
    }
    if (strncmp(line, "NUBO_S2Z_DISABLE ", 17) == 0) {
        char *end;
        errno = 0;
        long v = strtol(line + 17, &end, 10);
        if (end == line + 17 || errno || v < 0 || v > 2147483647L)
            return AGENT_MARK_NONE;
        if (exit_code)
            *exit_code = (int)v;
        return AGENT_MARK_S2Z_DISABLE;
    }
    if (strncmp(line, "NUBO_CRASH", 10) == 0 && (line[10] == ' ' || line[10] == '\0')) {
        const char *p = line + 10;
        while (*p == ' ')
            p++;
        if (text)
            *text = p;
        return AGENT_MARK_CRASH;
    }
    return AGENT_MARK_NONE;
}

static int ring_write_hdr(struct agent_console *c)
{
    struct ring_hdr h = {RING_MAGIC, c->ring_cap, c->total, c->shipped, c->file_ino, c->file_off};
    if (pwrite(c->ring_fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h))
        return -1;
    return 0;
}

int agent_console_open(struct agent_console *c, const char *dir, uint64_t ring_cap,
                       struct nubo_err *err)
{
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    c->ring_fd = -1;
    c->wd = -1;
    c->ring_cap = ring_cap;
    if (nubo_snprintf(c->dir, sizeof(c->dir), "%s", dir) < 0)
        return nubo_error(err, ENAMETOOLONG, "console dir %s", dir);
    if (nubo_mkdir_p(dir, 0755, err) < 0)
        return -1;
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/console.ring", dir);
    c->ring_fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (c->ring_fd < 0)
        return nubo_error(err, errno, "cannot open console ring %s", p);
    struct ring_hdr h;
    if (pread(c->ring_fd, &h, sizeof(h), 0) == (ssize_t)sizeof(h) && h.magic == RING_MAGIC &&
        h.cap == ring_cap && h.shipped <= h.total) {
        c->total = h.total;
        c->shipped = h.shipped;
        c->file_ino = h.file_ino;
        c->file_off = h.file_off;
    } else if (ftruncate(c->ring_fd, 0) < 0 || ring_write_hdr(c) < 0) {
        return nubo_error(err, errno, "cannot initialise console ring %s", p);
    }
    return 0;
}

static void feed(struct agent_console *c, const char *buf, size_t n, agent_marker_fn fn,
                 void *opaque)
{
    for (size_t i = 0; i < n; i++) {
        char ch = buf[i];
        if (ch == '\n') {
            c->line[c->line_len] = '\0';
            int code = 0;
            const char *text = NULL;
            enum agent_marker m = agent_console_match(c->line, &code, &text);
            if (fn)
                fn(opaque, m != AGENT_MARK_NONE ? m : AGENT_MARK_LINE, code,
                   text ? text : m != AGENT_MARK_NONE ? "" : c->line);
            c->line_len = 0;
        } else if (c->line_len < sizeof(c->line) - 1) {
            c->line[c->line_len++] = ch == '\r' ? ' ' : ch;
        }
    }
}

static void ring_append(struct agent_console *c, const char *buf, size_t n)
{
    /* Only the last cap bytes matter. */
    if (n > c->ring_cap) {
        c->total += n - c->ring_cap;
        buf += n - c->ring_cap;
        n = c->ring_cap;
    }
    while (n > 0) {
        uint64_t pos = c->total % c->ring_cap;
        size_t chunk = (size_t)(c->ring_cap - pos) < n ? (size_t)(c->ring_cap - pos) : n;
        if (pwrite(c->ring_fd, buf, chunk, (off_t)(RING_HDR + pos)) != (ssize_t)chunk)
            log_warn("console ring %s: write", c->dir);
        c->total += chunk;
        buf += chunk;
        n -= chunk;
    }
}

/* Read everything new from the open fd. */
static int drain_fd(struct agent_console *c, agent_marker_fn fn, void *opaque)
{
    char buf[16384];
    int got = 0;
    for (;;) {
        ssize_t n = pread(c->fd, buf, sizeof(buf), (off_t)c->file_off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (n == 0)
            break;
        c->file_off += (uint64_t)n;
        ring_append(c, buf, (size_t)n);
        if (fn)
            fn(opaque, AGENT_MARK_OUTPUT, 0, "");
        feed(c, buf, (size_t)n, fn, opaque);
        got = 1;
    }
    return got;
}

int agent_console_pump(struct agent_console *c, agent_marker_fn fn, void *opaque)
{
    char p[AGENT_PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/console.log", c->dir);
    int changed = 0;
    for (int round = 0; round < 4; round++) {
        struct stat st;
        if (stat(p, &st) < 0) {
            /* Not created yet (domain not started) or rotated away just now. */
            if (c->fd >= 0 && drain_fd(c, fn, opaque) > 0)
                changed = 1;
            break;
        }
        if (c->fd >= 0 && (uint64_t)st.st_ino != c->file_ino) {
            /* virtlogd rotated: finish the old file through our fd, then switch. */
            if (drain_fd(c, fn, opaque) > 0)
                changed = 1;
            close(c->fd);
            c->fd = -1;
            c->file_ino = 0;
            c->file_off = 0;
        }
        if (c->fd < 0) {
            c->fd = open(p, O_RDONLY | O_CLOEXEC);
            if (c->fd < 0)
                break;
            if ((uint64_t)st.st_ino != c->file_ino) {
                c->file_ino = (uint64_t)st.st_ino;
                c->file_off = 0;
            }
        }
        if ((uint64_t)st.st_size < c->file_off) /* truncated under us: start over */
            c->file_off = 0;
        int r = drain_fd(c, fn, opaque);
        if (r > 0)
            changed = 1;
        struct stat st2;
        if (stat(p, &st2) == 0 && (uint64_t)st2.st_ino == c->file_ino)
            break;
    }
    if (c->fd >= 0 && c->file_off >= CONSOLE_FILE_MAX) {
        int wfd = open(p, O_WRONLY | O_CLOEXEC);
        if (wfd >= 0) {
            if (drain_fd(c, fn, opaque) > 0)
                changed = 1;
            if (ftruncate(wfd, 0) == 0)
                c->file_off = 0;
            close(wfd);
            changed = 1;
        }
    }
    if (changed)
        ring_write_hdr(c);
    return changed;
}

int agent_console_read_since(struct agent_console *c, uint64_t from, unsigned char **data,
                             size_t *len, uint64_t *start, size_t max_len)
{
    *data = NULL;
    *len = 0;
    uint64_t lo = c->total > c->ring_cap ? c->total - c->ring_cap : 0;
    if (from < lo)
        from = lo;
    if (from > c->total)
        from = c->total;
    *start = from;
    size_t n = (size_t)(c->total - from);
    if (n > max_len)
        n = max_len;
    if (n == 0)
        return 0;
    unsigned char *buf = malloc(n);
    if (!buf)
        return -1;
    size_t done = 0;
    while (done < n) {
        uint64_t pos = (from + done) % c->ring_cap;
        size_t chunk = (size_t)(c->ring_cap - pos) < n - done ? (size_t)(c->ring_cap - pos)
                                                              : n - done;
        if (pread(c->ring_fd, buf + done, chunk, (off_t)(RING_HDR + pos)) != (ssize_t)chunk) {
            free(buf);
            return -1;
        }
        done += chunk;
    }
    *data = buf;
    *len = n;
    return 0;
}

void agent_console_close(struct agent_console *c)
{
    if (c->ring_fd >= 0) {
        ring_write_hdr(c);
        close(c->ring_fd);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = c->ring_fd = -1;
}
