/* The one INI reader of every nubo program (inih underneath): a program declares a table of
 * its settings (section, key, type, bounds, where it lands, default) and gets the same
 * validation and the same error wording, "config FILE:LINE: [section] key: why". */
#ifndef NUBO_CONFIG_H
#define NUBO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum nu_cfg_type {
    NU_CFG_END = 0, /* ends a table */
    NU_CFG_STR,     /* copied into a char array; must fit */
    NU_CFG_NAME,    /* a string that must be a name: 1..63 of [a-z0-9-] */
    NU_CFG_INT,     /* decimal in [min, max], into an int64_t or an int */
    NU_CFG_MS,      /* duration ("500ms", "5s", "2m", bare = ms) into an int64_t of ms */
    NU_CFG_MB,      /* memory size ("512", "512Mi", "1Gi") into an int64_t of MiB */
    NU_CFG_FN,      /* anything else: the row's setter */
};

/* Sets one value; returns -1 with err saying why the value is wrong (without file or key). */
typedef int (*nu_cfg_set_fn)(void *target, const char *key, const char *value,
                             struct nubo_err *err);

struct nu_cfg_key {
    const char *section; /* NULL = the section nu_cfg_opts.section selects */
    const char *key;     /* NULL = every key of the section (NU_CFG_FN only) */
    enum nu_cfg_type type;
    size_t offset, size; /* the field in the target struct */
    int64_t min, max;    /* INT always; MS and MB when not both 0 */
    nu_cfg_set_fn set;   /* NU_CFG_FN */
    const char *def;     /* default, read like a value from the file; NULL = none */
};

#define NU_CFG_FIELD(T, f) offsetof(T, f), sizeof(((T *)0)->f)
#define NU_CFG_S(T, sec, key, f, def) {sec, key, NU_CFG_STR, NU_CFG_FIELD(T, f), 0, 0, NULL, def}
#define NU_CFG_N(T, sec, key, f, def) {sec, key, NU_CFG_NAME, NU_CFG_FIELD(T, f), 0, 0, NULL, def}
#define NU_CFG_I(T, sec, key, f, lo, hi, def)                                                       \
    {sec, key, NU_CFG_INT, NU_CFG_FIELD(T, f), lo, hi, NULL, def}
#define NU_CFG_D(T, sec, key, f, lo, hi, def)                                                       \
    {sec, key, NU_CFG_MS, NU_CFG_FIELD(T, f), lo, hi, NULL, def}
#define NU_CFG_M(T, sec, key, f, lo, hi, def)                                                       \
    {sec, key, NU_CFG_MB, NU_CFG_FIELD(T, f), lo, hi, NULL, def}
#define NU_CFG_F(sec, key, fn, def) {sec, key, NU_CFG_FN, 0, 0, 0, 0, fn, def}

struct nu_cfg_opts {
    const char *what;    /* the file's name in messages; NULL = "config" */
    const char *section; /* non-NULL: read only this section (a CLI profile) */
    bool ignore_unknown; /* skip settings no row names (newer files, older binaries) */
    const char *hint;    /* appended to a syntax error, e.g. ": run 'nubo login' again" */
};

/* Store every row's default into target. Fails only on a table whose default is wrong. */
int nu_cfg_defaults(const struct nu_cfg_key *table, void *target, struct nubo_err *err);
/* Zero target (size bytes) and store the defaults; a wrong default is a bug in the program's
 * table, so it aborts with the message (every table's unit test would catch it first). */
void nu_cfg_init(const struct nu_cfg_key *table, void *target, size_t size);
/* Read path into target through table. opts may be NULL. Stops at the first bad line. */
int nu_cfg_load(const char *path, const struct nu_cfg_key *table, void *target,
                const struct nu_cfg_opts *opts, struct nubo_err *err);

#endif
