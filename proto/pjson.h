/* Strict, bounded JSON field access for the proto/ decoders: every getter checks type,
 * range and length and fills a one-line error naming the field ("instances[3].state: ..."). */
#ifndef NUBO_PJSON_H
#define NUBO_PJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

/* A key/value pair (env maps keep the sender's order). */
struct nubo_kv {
    char *key;
    char *value;
};

/* Parse text of at most max_len bytes into a JSON value (any type). 400 on failure, 413 when
 * larger than max_len. */
int pj_parse(const char *buf, size_t len, size_t max_len, json_t **out, struct nubo_err *err);
/* Compact JSON text (malloc'd) or NULL on allocation failure. */
char *pj_dump(const json_t *j);

/* The getters below return 1 when the field was present and valid, 0 when it is absent or
 * JSON null (allowed unless required), -1 with err filled otherwise. ctx names the object
 * ("" for the top level). */
int pj_str(json_t *o, const char *ctx, const char *key, bool required, char *buf, size_t bufsz,
           struct nubo_err *err);
int pj_strdup(json_t *o, const char *ctx, const char *key, bool required, size_t max_len,
              char **out, struct nubo_err *err);
int pj_int(json_t *o, const char *ctx, const char *key, bool required, int64_t min, int64_t max,
           int64_t *out, struct nubo_err *err);
int pj_bool(json_t *o, const char *ctx, const char *key, bool required, bool *out,
            struct nubo_err *err);
/* ISO 8601 timestamp string -> microseconds since the epoch. */
int pj_time(json_t *o, const char *ctx, const char *key, bool required, int64_t *out_us,
            struct nubo_err *err);
/* Array of strings: at most max_items, each at most max_len bytes, no NUL. */
int pj_strv(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
            size_t max_len, char ***out, size_t *n_out, struct nubo_err *err);
/* Object of string values. */
int pj_env(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
           size_t max_len, struct nubo_kv **out, size_t *n_out, struct nubo_err *err);
/* A nested array (at most max_items entries) or object: 1 with *out borrowed, 0 absent/null. */
int pj_array(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
             json_t **out, struct nubo_err *err);
int pj_object(json_t *o, const char *ctx, const char *key, bool required, json_t **out,
              struct nubo_err *err);
/* Reject keys not in allowed (NULL-terminated): the public API is strict about unknown fields. */
int pj_only_keys(json_t *o, const char *ctx, const char *const *allowed, struct nubo_err *err);

/* Encoders for the same shapes. */
json_t *pj_strv_new(char *const *v, size_t n);
json_t *pj_env_new(const struct nubo_kv *kv, size_t n);
/* A timestamp as ISO 8601, or JSON null when us == 0. */
json_t *pj_time_new(int64_t us);
/* Sets o.key to the ISO 8601 time us, or leaves it out when us is 0 (the public API never
 * says null where the spec types a string). */
void pj_set_time(json_t *o, const char *key, int64_t us);

/* Defines `int NAME_list_decode(json_t *a, size_t max, T **out, size_t *n_out, err)` and
 * `void NAME_list_free(T *v, size_t n)` from a type's decode(json_t *, T *, err) and
 * free(T *): one array walk for every object type of the API. */
#define PJ_LIST_CODEC(NAME, T, DECODE, FREE)                                                       \
    void NAME##_list_free(T *v, size_t n)                                                          \
    {                                                                                              \
        for (size_t i = 0; v && i < n; i++)                                                        \
            FREE(&v[i]);                                                                           \
        free(v);                                                                                   \
    }                                                                                              \
    int NAME##_list_decode(json_t *a, size_t max, T **out, size_t *n_out, struct nubo_err *err)    \
    {                                                                                              \
        *out = NULL;                                                                               \
        *n_out = 0;                                                                                \
        if (!json_is_array(a) || json_array_size(a) > max)                                         \
            return nubo_error_http(err, 400, "must be an array of at most %zu objects", max);      \
        T *v = calloc(json_array_size(a) + 1, sizeof(*v));                                         \
        if (v == NULL)                                                                             \
            return nubo_error_http(err, 500, "out of memory");                                     \
        for (size_t i = 0; i < json_array_size(a); i++)                                            \
            if (DECODE(json_array_get(a, i), &v[i], err) < 0) {                                    \
                NAME##_list_free(v, i);                                                            \
                return nubo_error_wrap(err, "[%zu]", i);                                           \
            }                                                                                      \
        *out = v;                                                                                  \
        *n_out = json_array_size(a);                                                               \
        return 0;                                                                                  \
    }

void pj_strv_free(char **v, size_t n);
void pj_env_free(struct nubo_kv *kv, size_t n);
char **pj_strv_dup(char *const *v, size_t n);
struct nubo_kv *pj_env_dup(const struct nubo_kv *kv, size_t n);

#endif
