/* The table-driven INI reader (config.h): the only caller of inih in the tree. Lines are
 * counted by our own reader so every error names FILE:LINE, and a line longer than inih's
 * buffer is refused instead of being read as two lines. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "util.h"

struct load {
    const struct nu_cfg_key *table;
    void *target;
    const struct nu_cfg_opts *opts;
    FILE *f;
    int line;          /* of the line inih is handling */
    int bad_line;      /* first line we refused, 0 = none */
    struct nubo_err why;
};

static int set_value(const struct nu_cfg_key *k, void *target, const char *key, const char *v,
                     struct nubo_err *err)
{
    char *field = (char *)target + k->offset;
    int64_t n;
    switch (k->type) {
    case NU_CFG_NAME:
        if (!nubo_name_valid(v))
            return nubo_error(err, 0, "'%s' is not a name (1-63 of [a-z0-9-])", v);
        /* fall through */
    case NU_CFG_STR:
        if (nubo_snprintf(field, k->size, "%s", v) < 0)
            return nubo_error(err, 0, "value longer than %zu bytes", k->size - 1);
        return 0;
    case NU_CFG_INT:
        if (nubo_parse_int(v, k->min, k->max, &n, err) < 0)
            return -1;
        break;
    case NU_CFG_MS:
        if (nubo_parse_duration_ms(v, &n, err) < 0)
            return -1;
        break;
    case NU_CFG_MB:
        if (nubo_parse_size_mb(v, &n, err) < 0)
            return -1;
        break;
    case NU_CFG_FN:
        return k->set(target, key, v, err);
    default:
        return nubo_error(err, 0, "setting has no type");
    }
    if ((k->type == NU_CFG_MS || k->type == NU_CFG_MB) && (k->min || k->max) &&
        (n < k->min || n > k->max))
        return nubo_error(err, 0, "%lld is out of range %lld..%lld%s", (long long)n,
                          (long long)k->min, (long long)k->max,
                          k->type == NU_CFG_MS ? " ms" : " MiB");
    if (k->size == sizeof(int))
        *(int *)(void *)field = (int)n;
    else
        *(int64_t *)(void *)field = n;
    return 0;
}

int nu_cfg_defaults(const struct nu_cfg_key *table, void *target, struct nubo_err *err)
{
    for (const struct nu_cfg_key *k = table; k->type != NU_CFG_END; k++)
        if (k->def && set_value(k, target, k->key, k->def, err) < 0)
            return nubo_error_wrap(err, "default of [%s] %s", k->section ? k->section : "",
                                   k->key ? k->key : "*");
    return 0;
}

void nu_cfg_init(const struct nu_cfg_key *table, void *target, size_t size)
{
    memset(target, 0, size);
    struct nubo_err err = {0};
    if (nu_cfg_defaults(table, target, &err) < 0) {
        fprintf(stderr, "settings table: %s\n", err.msg);
        abort();
    }
}

static const struct nu_cfg_key *find(const struct load *l, const char *sec, const char *key)
{
    for (const struct nu_cfg_key *k = l->table; k->type != NU_CFG_END; k++) {
        bool sec_ok = k->section ? strcmp(k->section, sec) == 0 : true;
        if (sec_ok && (!k->key || strcmp(k->key, key) == 0))
            return k;
    }
    return NULL;
}

static int on_setting(void *user, const char *sec, const char *key, const char *value)
{
    struct load *l = user;
    if (l->bad_line)
        return 1; /* the first bad line is the one reported */
    if (l->opts && l->opts->section && strcmp(sec, l->opts->section) != 0)
        return 1;
    const struct nu_cfg_key *k = find(l, sec, key);
    if (!k) {
        if (l->opts && l->opts->ignore_unknown)
            return 1;
        nubo_error(&l->why, 0, "unknown setting [%s] %s", sec, key);
    } else if (set_value(k, l->target, key, value, &l->why) == 0) {
        return 1;
    } else {
        nubo_error_wrap(&l->why, "[%s] %s", sec, key);
    }
    l->bad_line = l->line;
    return 0;
}

/* fgets that counts lines and stops at one longer than inih's buffer (num bytes). */
static char *read_line(char *str, int num, void *stream)
{
    struct load *l = stream;
    if (l->bad_line)
        return NULL;
    char *s = fgets(str, num, l->f);
    if (!s)
        return NULL;
    l->line++;
    size_t n = strlen(s);
    if (n > 0 && s[n - 1] != '\n' && !feof(l->f)) {
        l->bad_line = l->line;
        nubo_error(&l->why, 0, "line longer than %d bytes", num - 2);
        return NULL;
    }
    return s;
}

int nu_cfg_load(const char *path, const struct nu_cfg_key *table, void *target,
                const struct nu_cfg_opts *opts, struct nubo_err *err)
{
    const char *what = opts && opts->what ? opts->what : "config";
    struct load l = {.table = table, .target = target, .opts = opts};
    l.f = fopen(path, "re");
    if (!l.f)
        return nubo_error(err, errno, "cannot read %s %s", what, path);
    int rc = ini_parse_stream(read_line, &l, on_setting, &l);
    bool read_err = ferror(l.f);
    fclose(l.f);
    if (read_err)
        return nubo_error(err, EIO, "cannot read %s %s", what, path);
    /* inih reports the first line it could not parse (ours included): ours is the earlier
     * one unless a syntax error came before it. */
    if (l.bad_line && (rc <= 0 || rc >= l.bad_line))
        return nubo_error(err, 0, "%s %s:%d: %s", what, path, l.bad_line, l.why.msg);
    if (rc > 0)
        return nubo_error(err, 0, "%s %s:%d: syntax error%s", what, path, rc,
                          opts && opts->hint ? opts->hint : "");
    if (rc < 0)
        return nubo_error(err, ENOMEM, "cannot read %s %s", what, path);
    return 0;
}
