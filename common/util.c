/* Small shared helpers; see util.h. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "cleanup.h"

int nubo_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, struct nubo_err *err)
{
    if (s == NULL || *s == '\0')
        return nubo_error_http(err, 400, "empty number");
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || !(isdigit((unsigned char)s[0]) || s[0] == '-'))
        return nubo_error_http(err, 400, "'%s' is not a whole number", s);
    if (v < min || v > max)
        return nubo_error_http(err, 400, "%lld is out of range %lld..%lld", v, (long long)min,
                               (long long)max);
    *out = v;
    return 0;
}

int nubo_parse_size_mb(const char *s, int64_t *out_mb, struct nubo_err *err)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return nubo_error_http(err, 400, "bad size '%s': expected e.g. 512, 512Mi, 512MiB or 1Gi",
                               s ? s : "");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || v > (1ULL << 40))
        return nubo_error_http(err, 400, "bad size '%s': too large", s);
    /* Units are binary whatever the spelling: "512M" means 512 MiB, as on the platform. */
    static const struct {
        const char *suffix;
        int shift; /* relative to MiB: K=-10, M=0, G=10, T=20 */
    } units[] = {
        {"", 0},     {"M", 0},    {"Mi", 0},  {"MiB", 0},  {"MB", 0},   {"m", 0},
        {"G", 10},   {"Gi", 10},  {"GiB", 10}, {"GB", 10}, {"g", 10},
        {"K", -10},  {"Ki", -10}, {"KiB", -10}, {"KB", -10}, {"k", -10},
        {"T", 20},   {"Ti", 20},  {"TiB", 20},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        unsigned long long mb;
        if (units[i].shift >= 0) {
            mb = v << units[i].shift;
            if (units[i].shift && (mb >> units[i].shift) != v)
                return nubo_error_http(err, 400, "bad size '%s': too large", s);
        } else {
            if (v % 1024 != 0)
                return nubo_error_http(err, 400, "bad size '%s': not a whole number of MiB", s);
            mb = v >> 10;
        }
        if (mb == 0)
            return nubo_error_http(err, 400, "bad size '%s': must be at least 1 MiB", s);
        if (mb > INT32_MAX)
            return nubo_error_http(err, 400, "bad size '%s': too large", s);
        *out_mb = (int64_t)mb;
        return 0;
    }
    return nubo_error_http(err, 400, "bad size '%s': unknown unit '%s' (use Mi, MiB, Gi)", s, end);
}

int nubo_parse_duration_ms(const char *s, int64_t *out_ms, struct nubo_err *err)
{
    if (s == NULL || !isdigit((unsigned char)s[0]))
        return nubo_error_http(err, 400, "bad duration '%s': expected e.g. 500ms, 5s, 2m",
                               s ? s : "");
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE || v < 0 || v > (1LL << 40))
        return nubo_error_http(err, 400, "bad duration '%s': too large", s);
    long long mul;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        mul = 1;
    else if (strcmp(end, "s") == 0)
        mul = 1000;
    else if (strcmp(end, "m") == 0)
        mul = 60000;
    else if (strcmp(end, "h") == 0)
        mul = 3600000;
    else
        return nubo_error_http(err, 400, "bad duration '%s': unknown unit '%s' (ms, s, m, h)", s,
                               end);
    *out_ms = v * mul;
    return 0;
}

bool nubo_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > NUBO_NAME_MAX || s[0] == '-' || s[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return false;
    return true;
}

void nubo_random_bytes(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

int64_t nubo_jitter_ms(int64_t ms)
{
    uint32_t r;
    nubo_random_bytes(&r, sizeof(r));
    return ms <= 0 ? ms : ms - (int64_t)((uint64_t)(ms / 4) * r / UINT32_MAX);
}

void nubo_random_alnum(char *out, size_t n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char r[64];
    size_t i = 0;
    while (i < n) {
        nubo_random_bytes(r, sizeof(r));
        for (size_t j = 0; j < sizeof(r) && i < n; j++)
            if (r[j] < 252) /* 252 = 7*36: unbiased */
                out[i++] = alphabet[r[j] % 36];
    }
    out[n] = '\0';
}

void nubo_uuid_new(char out[NUBO_UUID_STR_LEN + 1])
{
    unsigned char b[16];
    nubo_random_bytes(b, sizeof(b));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, NUBO_UUID_STR_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

bool nubo_uuid_valid(const char *s)
{
    if (s == NULL || strlen(s) != NUBO_UUID_STR_LEN)
        return false;
    for (int i = 0; i < NUBO_UUID_STR_LEN; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        } else if (!isxdigit((unsigned char)s[i])) {
            return false;
        }
    }
    return true;
}

int64_t nubo_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t nubo_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void nubo_time_iso8601(int64_t us, char out[32])
{
    time_t sec = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&sec, &tm);
    char buf[96]; /* roomy enough for any int the compiler imagines */
    snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(us % 1000000));
    snprintf(out, 32, "%.31s", buf);
}

int nubo_time_parse_iso8601(const char *s, int64_t *out_us)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (p == NULL)
        return -1;
    int64_t frac = 0;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (isdigit((unsigned char)*p)) {
            if (digits < 6) {
                frac = frac * 10 + (*p - '0');
                digits++;
            }
            p++;
        }
        while (digits++ < 6)
            frac *= 10;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    *out_us = (int64_t)timegm(&tm) * 1000000 + frac;
    return 0;
}

int nubo_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct nubo_err *err)
{
    char tmp[PATH_MAX];
    if (nubo_snprintf(tmp, sizeof(tmp), "%s.tmp", path) < 0)
        return nubo_error(err, ENAMETOOLONG, "write %s", path);
    cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0)
        return nubo_error(err, errno, "create %s", tmp);
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int e = errno;
            unlink(tmp);
            return nubo_error(err, e, "write %s", tmp);
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, (mode_t)mode) < 0 || fsync(fd) < 0) {
        int e = errno;
        unlink(tmp);
        return nubo_error(err, e, "sync %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return nubo_error(err, e, "rename %s to %s", tmp, path);
    }
    /* Make the rename itself durable. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    cleanup_close int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0)
        fsync(dfd);
    return 0;
}

int nubo_copy_fd(int in, const char *in_name, int out, const char *out_name,
                 struct nubo_err *err)
{
    char buf[65536];
    for (;;) {
        ssize_t r = read(in, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return nubo_error(err, errno, "cannot read %s", in_name);
        if (r == 0)
            return 0;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(out, buf + off, (size_t)(r - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return nubo_error(err, errno, "cannot write %s", out_name);
            off += w;
        }
    }
}

int nubo_read_file(const char *path, size_t max_len, char **out, size_t *out_len,
                   struct nubo_err *err)
{
    cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nubo_error(err, errno, "open %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return nubo_error(err, errno, "stat %s", path);
    if ((size_t)st.st_size > max_len)
        return nubo_error(err, EFBIG, "read %s (%lld bytes, limit %zu)", path,
                          (long long)st.st_size, max_len);
    size_t cap = (size_t)st.st_size + 1, len = 0;
    cleanup_free char *buf = malloc(cap);
    if (buf == NULL)
        return nubo_error(err, ENOMEM, "read %s", path);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_len + 1)
                return nubo_error(err, EFBIG, "read %s (limit %zu bytes)", path, max_len);
            char *nb = realloc(buf, cap * 2);
            if (nb == NULL)
                return nubo_error(err, ENOMEM, "read %s", path);
            buf = nb;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return nubo_error(err, errno, "read %s", path);
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max_len)
            return nubo_error(err, EFBIG, "read %s (limit %zu bytes)", path, max_len);
    }
    buf[len] = '\0';
    if (out_len)
        *out_len = len;
    *out = steal_pointer(&buf);
    return 0;
}

int nubo_mkdir_p(const char *path, int mode, struct nubo_err *err)
{
    char buf[PATH_MAX];
    if (nubo_snprintf(buf, sizeof(buf), "%s", path) < 0)
        return nubo_error(err, ENAMETOOLONG, "mkdir %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
            return nubo_error(err, errno, "mkdir %s", buf);
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) < 0 && errno != EEXIST)
        return nubo_error(err, errno, "mkdir %s", buf);
    return 0;
}

void nubo_hex(const void *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *b = data;
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * len] = '\0';
}

static EVP_MD *sha256_md;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

/* The algorithm is fetched once: EVP_sha256() makes EVP_Digest look it up (a locked table) on
 * every call, and the controller hashes a node's token on every agent request. */
void nubo_sha256_hex(const void *data, size_t len, char out[NUBO_SHA256_HEX_LEN + 1])
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sha256_fetch);
    unsigned char md[SHA256_DIGEST_LENGTH];
    unsigned int mdlen = 0;
    EVP_Digest(data, len, md, &mdlen, sha256_md ? sha256_md : EVP_sha256(), NULL);
    nubo_hex(md, SHA256_DIGEST_LENGTH, out);
}

bool nubo_digest_valid(const char *s)
{
    if (s == NULL || strncmp(s, "sha256:", 7) != 0 || strlen(s) != NUBO_DIGEST_STR_LEN)
        return false;
    for (const char *p = s + 7; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

char *nubo_base64_encode(const void *data, size_t len)
{
    size_t outlen = 4 * ((len + 2) / 3);
    char *out = malloc(outlen + 1);
    if (out == NULL)
        return NULL;
    EVP_EncodeBlock((unsigned char *)out, data, (int)len);
    out[outlen] = '\0';
    return out;
}

unsigned char *nubo_base64_decode(const char *s, size_t *out_len)
{
    size_t len = strlen(s);
    if (len % 4 != 0)
        return NULL;
    unsigned char *out = malloc(len / 4 * 3 + 1);
    if (out == NULL)
        return NULL;
    int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)len);
    if (n < 0) {
        free(out);
        return NULL;
    }
    /* EVP_DecodeBlock counts padding bytes as data. */
    if (len >= 1 && s[len - 1] == '=')
        n--;
    if (len >= 2 && s[len - 2] == '=')
        n--;
    *out_len = (size_t)n;
    return out;
}

int nubo_snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

static bool path_delim(char c)
{
    return c == '\0' || c == ' ' || c == '\t' || c == '\n' || c == '\'' || c == '"' || c == ')' ||
           c == ',' || c == ';' || c == ']';
}

void nubo_scrub_paths(char *s)
{
    char *w = s;
    const char *r = s;
    char prev = ' ';
    while (*r) {
        bool starts = *r == '/' && (prev == ' ' || prev == '\'' || prev == '"' || prev == '(' ||
                                    prev == '=' || prev == '[' || prev == '\t');
        if (!starts) {
            prev = *r;
            *w++ = *r++;
            continue;
        }
        const char *end = r;
        int slashes = 0;
        while (!path_delim(*end)) {
            slashes += *end == '/';
            end++;
        }
        /* the last non-empty component ("/a/b/" -> "b") */
        const char *last_end = end;
        while (last_end > r && last_end[-1] == '/')
            last_end--;
        const char *last = last_end;
        while (last > r && last[-1] != '/')
            last--;
        if (slashes < 2 || last == last_end) { /* "/x" or "/" alone: nothing to hide */
            while (r < end)
                *w++ = *r++;
        } else {
            memmove(w, last, (size_t)(last_end - last));
            w += last_end - last;
            r = end;
        }
        prev = r[-1];
    }
    *w = '\0';
}

long nubo_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}
