/* What store_db.c (dispatch, sqlite) and store_db_pg.c (PostgreSQL) share; nothing else
 * includes it. */
#ifndef NUBO_CTL_STORE_DB_IMPL_H
#define NUBO_CTL_STORE_DB_IMPL_H

#include <sqlite3.h>

#include "store_db.h"

struct pg_db;
struct pg_stmt;

struct ctl_db {
    enum ctl_db_kind kind;
    sqlite3 *lite;
    struct pg_db *pg;
    char errmsg[512]; /* PostgreSQL's last error, one line */
};

struct ctl_stmt {
    struct ctl_db *db;
    sqlite3_stmt *lite;
    struct pg_stmt *pg;
};

int pg_open(struct ctl_db *db, const char *url, struct nubo_err *err);
void pg_close(struct ctl_db *db);
bool pg_in_tx(struct ctl_db *db);
int pg_exec(struct ctl_db *db, const char *sql, struct nubo_err *err);
int pg_begin_migration(struct ctl_db *db, struct nubo_err *err);
int pg_schema_version(struct ctl_db *db, int *version, struct nubo_err *err);
int pg_schema_version_set(struct ctl_db *db, int version, struct nubo_err *err);
int pg_prepare(struct ctl_stmt *st, const char *sql, bool persistent, struct nubo_err *err);
void pg_finalize(struct ctl_stmt *st);
void pg_set_fence(struct ctl_db *db, const char *check_sql, int64_t epoch);
bool pg_take_fenced(struct ctl_db *db);
void pg_unfenced(struct ctl_stmt *st);
void pg_reset(struct ctl_stmt *st);
int pg_step(struct ctl_stmt *st);
void pg_bind(struct ctl_stmt *st, int i, const char *v, size_t len, bool binary);
void pg_bind_int64(struct ctl_stmt *st, int i, int64_t v);
const char *pg_col_text(struct ctl_stmt *st, int i);
const void *pg_col_blob(struct ctl_stmt *st, int i, size_t *len);
bool pg_col_null(struct ctl_stmt *st, int i);

#endif
