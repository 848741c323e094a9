/* Small shared helpers: sizes, durations, names, randomness, time, files, digests. */
#ifndef NUBO_UTIL_H
#define NUBO_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define NUBO_NAME_MAX 63        /* instance/node/metro names: [a-z0-9-], 1..63 bytes */
#define NUBO_UUID_STR_LEN 36
#define NUBO_SHA256_HEX_LEN 64
#define NUBO_DIGEST_STR_LEN (7 + NUBO_SHA256_HEX_LEN) /* "sha256:" + hex */

/* Memory size as the platform means it: binary units; "512", "512M", "512Mi", "512MiB",
 * "1G", "1Gi", "1GiB" -> MiB. Rejects zero, fractions below 1 MiB and overflow. */
int nubo_parse_size_mb(const char *s, int64_t *out_mb, struct nubo_err *err);
/* Durations: "500ms", "5s", "2m", "1h", bare number = milliseconds. */
int nubo_parse_duration_ms(const char *s, int64_t *out_ms, struct nubo_err *err);
/* Strict decimal integer in [min, max]. */
int nubo_parse_int(const char *s, int64_t min, int64_t max, int64_t *out, struct nubo_err *err);

/* A name of 1..63 bytes of [a-z0-9-], not starting or ending with '-'. */
bool nubo_name_valid(const char *s);

/* Cryptographically random bytes (getrandom); aborts only if the kernel refuses. */
void nubo_random_bytes(void *buf, size_t len);
/* n random characters of [a-z0-9] into out (out must hold n+1). */
void nubo_random_alnum(char *out, size_t n);
/* ms less a random part of up to a quarter of it: periodic timers that many hosts arm at the
 * same moment (every agent told a new heartbeat interval in one burst of replies) spread out
 * instead of firing together, and none fires later than ms. */
int64_t nubo_jitter_ms(int64_t ms);
/* A random version-4 UUID, lower-case, into out[37]. */
void nubo_uuid_new(char out[NUBO_UUID_STR_LEN + 1]);
bool nubo_uuid_valid(const char *s);

/* Clocks in microseconds. */
int64_t nubo_now_us(void);      /* CLOCK_REALTIME */
int64_t nubo_mono_us(void);     /* CLOCK_MONOTONIC */
/* RFC 3339 UTC with microseconds: 2026-11-27T02:20:40.123456Z into out[32]. */
void nubo_time_iso8601(int64_t realtime_us, char out[32]);
int nubo_time_parse_iso8601(const char *s, int64_t *out_us);

/* Write a file atomically: <path>.tmp, fsync, rename, fsync the directory. */
int nubo_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct nubo_err *err);
/* Read a whole file, at most max_len bytes (error if larger); *out is NUL-terminated. */
int nubo_read_file(const char *path, size_t max_len, char **out, size_t *out_len,
                   struct nubo_err *err);
/* Copy in to out until in ends; the names say which file in errors. */
int nubo_copy_fd(int in, const char *in_name, int out, const char *out_name,
                 struct nubo_err *err);
/* mkdir -p */
int nubo_mkdir_p(const char *path, int mode, struct nubo_err *err);

/* SHA-256 of a buffer as 64 lower-case hex characters into out[65]. */
void nubo_sha256_hex(const void *data, size_t len, char out[NUBO_SHA256_HEX_LEN + 1]);
/* Lowercase hex of len bytes into out (2 * len + 1 bytes, NUL-terminated). */
void nubo_hex(const void *data, size_t len, char *out);
/* "sha256:<64 hex>" */
bool nubo_digest_valid(const char *s);

/* Base64 (standard alphabet, padded). Returns malloc'd NUL-terminated string. */
char *nubo_base64_encode(const void *data, size_t len);
/* Returns malloc'd buffer or NULL on invalid input. */
unsigned char *nubo_base64_decode(const char *s, size_t *out_len);

/* Replace, in place, every absolute path in s (a '/' starting a word; URLs are left alone)
 * by its last component: a text a tenant reads never shows where a host keeps its files. */
void nubo_scrub_paths(char *s);

/* Raises the soft limit of open files to the hard one (a daemon holding a connection per node
 * or per client needs it); returns the limit now in force. */
long nubo_raise_nofile(void);

/* snprintf into a fixed buffer; returns -1 when truncated. */
int nubo_snprintf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
