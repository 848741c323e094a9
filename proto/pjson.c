/* Strict, bounded JSON field access shared by the proto/ decoders; see pjson.h. */
#include "pjson.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

#define CTX_FMT "%s%s%s"
#define CTX_ARGS(ctx, key) (ctx), ((ctx)[0] ? "." : ""), (key)

int pj_parse(const char *buf, size_t len, size_t max_len, json_t **out, struct nubo_err *err)
{
    if (len > max_len)
        return nubo_error_http(err, 413, "request body of %zu bytes is larger than the %zu allowed",
                               len, max_len);
    if (len == 0)
        return nubo_error_http(err, 400, "empty body: expected JSON");
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL)
        return nubo_error_http(err, 400, "malformed JSON at line %d column %d: %s", jerr.line,
                               jerr.column, jerr.text);
    *out = j;
    return 0;
}

char *pj_dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
}

static json_t *field(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_null(v) ? NULL : v;
}

static int absent(const char *ctx, const char *key, bool required, struct nubo_err *err)
{
    if (required)
        return nubo_error_http(err, 400, CTX_FMT ": missing required field", CTX_ARGS(ctx, key));
    return 0;
}

static int str_ok(json_t *v, size_t max_len)
{
    if (!json_is_string(v))
        return 0;
    size_t n = json_string_length(v);
    return n <= max_len && memchr(json_string_value(v), '\0', n) == NULL;
}

int pj_str(json_t *o, const char *ctx, const char *key, bool required, char *buf, size_t bufsz,
           struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!str_ok(v, bufsz - 1))
        return nubo_error_http(err, 400, CTX_FMT ": must be a string of at most %zu bytes",
                               CTX_ARGS(ctx, key), bufsz - 1);
    memcpy(buf, json_string_value(v), json_string_length(v) + 1);
    return 1;
}

int pj_strdup(json_t *o, const char *ctx, const char *key, bool required, size_t max_len,
              char **out, struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!str_ok(v, max_len))
        return nubo_error_http(err, 400, CTX_FMT ": must be a string of at most %zu bytes",
                               CTX_ARGS(ctx, key), max_len);
    *out = strdup(json_string_value(v));
    if (*out == NULL)
        return nubo_error_http(err, 500, "out of memory");
    return 1;
}

int pj_int(json_t *o, const char *ctx, const char *key, bool required, int64_t min, int64_t max,
           int64_t *out, struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
        return nubo_error_http(err, 400, CTX_FMT ": must be an integer in %lld..%lld",
                               CTX_ARGS(ctx, key), (long long)min, (long long)max);
    *out = json_integer_value(v);
    return 1;
}

int pj_bool(json_t *o, const char *ctx, const char *key, bool required, bool *out,
            struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_boolean(v))
        return nubo_error_http(err, 400, CTX_FMT ": must be true or false", CTX_ARGS(ctx, key));
    *out = json_is_true(v);
    return 1;
}

int pj_time(json_t *o, const char *ctx, const char *key, bool required, int64_t *out_us,
            struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    int64_t us = 0;
    /* 1970..9999: zero means "never" on the wire, and encoders must round-trip */
    if (!str_ok(v, 40) || nubo_time_parse_iso8601(json_string_value(v), &us) < 0 || us <= 0 ||
        us >= INT64_C(253402300800000000))
        return nubo_error_http(err, 400, CTX_FMT ": must be an ISO 8601 time", CTX_ARGS(ctx, key));
    *out_us = us;
    return 1;
}

int pj_array(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
             json_t **out, struct nubo_err *err)
{
    json_t *v = field(o, key);
    *out = NULL;
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_array(v) || json_array_size(v) > max_items)
        return nubo_error_http(err, 400, CTX_FMT ": must be an array of at most %zu entries",
                               CTX_ARGS(ctx, key), max_items);
    *out = v;
    return 1;
}

int pj_object(json_t *o, const char *ctx, const char *key, bool required, json_t **out,
              struct nubo_err *err)
{
    json_t *v = field(o, key);
    *out = NULL;
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_object(v))
        return nubo_error_http(err, 400, CTX_FMT ": must be an object", CTX_ARGS(ctx, key));
    *out = v;
    return 1;
}

void pj_strv_free(char **v, size_t n)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void pj_env_free(struct nubo_kv *kv, size_t n)
{
    if (kv == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        free(kv[i].key);
        free(kv[i].value);
    }
    free(kv);
}

int pj_strv(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
            size_t max_len, char ***out, size_t *n_out, struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_array(v) || json_array_size(v) > max_items)
        return nubo_error_http(err, 400, CTX_FMT ": must be an array of at most %zu strings",
                               CTX_ARGS(ctx, key), max_items);
    size_t n = json_array_size(v);
    char **r = calloc(n + 1, sizeof(*r));
    if (r == NULL)
        return nubo_error_http(err, 500, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *e = json_array_get(v, i);
        if (!str_ok(e, max_len)) {
            pj_strv_free(r, i);
            return nubo_error_http(err, 400, CTX_FMT "[%zu]: must be a string of at most %zu bytes",
                                   CTX_ARGS(ctx, key), i, max_len);
        }
        r[i] = strdup(json_string_value(e));
        if (r[i] == NULL) {
            pj_strv_free(r, i);
            return nubo_error_http(err, 500, "out of memory");
        }
    }
    *out = r;
    *n_out = n;
    return 1;
}

int pj_env(json_t *o, const char *ctx, const char *key, bool required, size_t max_items,
           size_t max_len, struct nubo_kv **out, size_t *n_out, struct nubo_err *err)
{
    json_t *v = field(o, key);
    if (v == NULL)
        return absent(ctx, key, required, err);
    if (!json_is_object(v) || json_object_size(v) > max_items)
        return nubo_error_http(err, 400, CTX_FMT ": must be an object of at most %zu string values",
                               CTX_ARGS(ctx, key), max_items);
    size_t n = json_object_size(v), i = 0;
    struct nubo_kv *r = calloc(n + 1, sizeof(*r));
    if (r == NULL)
        return nubo_error_http(err, 500, "out of memory");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e)
    {
        size_t klen = strlen(k);
        if (klen == 0 || klen > max_len || strchr(k, '=') != NULL) {
            pj_env_free(r, i);
            return nubo_error_http(err, 400,
                                   CTX_FMT ": variable names must be 1..%zu bytes without '='",
                                   CTX_ARGS(ctx, key), max_len);
        }
        if (!str_ok(e, max_len)) {
            pj_env_free(r, i);
            return nubo_error_http(err, 400, CTX_FMT ".%s: must be a string of at most %zu bytes",
                                   CTX_ARGS(ctx, key), k, max_len);
        }
        r[i].key = strdup(k);
        r[i].value = strdup(json_string_value(e));
        i++;
        if (r[i - 1].key == NULL || r[i - 1].value == NULL) {
            pj_env_free(r, i);
            return nubo_error_http(err, 500, "out of memory");
        }
    }
    *out = r;
    *n_out = n;
    return 1;
}

int pj_only_keys(json_t *o, const char *ctx, const char *const *allowed, struct nubo_err *err)
{
    const char *k;
    json_t *e;
    json_object_foreach(o, k, e)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(allowed[i], k) == 0;
        if (!ok) {
            char shown[64];
            snprintf(shown, sizeof(shown), "%s", k);
            for (char *p = shown; *p; p++)
                if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
                    *p = '?';
            return nubo_error_http(err, 400, "%s%sunknown field '%s'", ctx, ctx[0] ? ": " : "",
                                   shown);
        }
    }
    return 0;
}

json_t *pj_strv_new(char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *pj_env_new(const struct nubo_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    return o;
}

json_t *pj_time_new(int64_t us)
{
    if (us == 0)
        return json_null();
    char buf[32];
    nubo_time_iso8601(us, buf);
    return json_string(buf);
}

void pj_set_time(json_t *o, const char *key, int64_t us)
{
    if (us != 0)
        json_object_set_new(o, key, pj_time_new(us));
}

char **pj_strv_dup(char *const *v, size_t n)
{
    char **r = calloc(n + 1, sizeof(*r));
    for (size_t i = 0; r && i < n; i++) {
        r[i] = strdup(v[i]);
        if (r[i] == NULL) {
            pj_strv_free(r, i);
            return NULL;
        }
    }
    return r;
}

struct nubo_kv *pj_env_dup(const struct nubo_kv *kv, size_t n)
{
    struct nubo_kv *r = calloc(n + 1, sizeof(*r));
    for (size_t i = 0; r && i < n; i++) {
        r[i].key = strdup(kv[i].key);
        r[i].value = strdup(kv[i].value);
        if (r[i].key == NULL || r[i].value == NULL) {
            pj_env_free(r, i + 1);
            return NULL;
        }
    }
    return r;
}
