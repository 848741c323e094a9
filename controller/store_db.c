/* The store's statement layer (store_db.h): the backend dispatch and the sqlite3 side. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "store_db_impl.h"
#include "util.h"

bool ctl_db_target_is_pg(const char *target)
{
    return strncasecmp(target, "postgresql://", 13) == 0 ||
           strncasecmp(target, "postgres://", 11) == 0;
}

static int lite_err(struct ctl_db *db, struct nubo_err *err, const char *what)
{
    return nubo_error_http(err, 500, "store: %s: %s", what, sqlite3_errmsg(db->lite));
}

static int lite_exec(struct ctl_db *db, const char *sql, struct nubo_err *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db->lite, sql, NULL, NULL, &msg) != SQLITE_OK) {
        nubo_error_http(err, 500, "store: %s", msg ? msg : "exec failed");
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static int lite_open(struct ctl_db *db, const char *path, bool sync_full, struct nubo_err *err)
{
    if (sqlite3_open_v2(path, &db->lite, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return nubo_error(err, 0, "cannot open the database %s: %s", path,
                          db->lite ? sqlite3_errmsg(db->lite) : "out of memory");
    sqlite3_busy_timeout(db->lite, 5000);
    /* The database holds private keys, instance env and token hashes: 0600 whatever umask
     * made it (or an older nubo left); sqlite gives -wal and -shm the database's mode. */
    if (chmod(path, 0600) < 0 && errno != ENOENT)
        return nubo_error(err, errno, "cannot make the database %s private (chmod 0600)", path);
    for (int i = 0; i < 2; i++) {
        char side[4096];
        if (nubo_snprintf(side, sizeof(side), "%s%s", path, i ? "-shm" : "-wal") >= 0)
            chmod(side, 0600);
    }
    /* WAL + synchronous=NORMAL: a commit survives a process crash (kill -9); FULL also
     * survives power loss at the price of an fsync per commit. */
    if (lite_exec(db, "PRAGMA journal_mode=WAL", err) < 0 ||
        lite_exec(db, sync_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL", err) <
            0 ||
        lite_exec(db, "PRAGMA foreign_keys=ON", err) < 0)
        return nubo_error_wrap(err, "opening the database %s", path);
    /* Reads through a memory map: loading 100,000 instances at start (or at a takeover) is
     * otherwise a pread per page, and a syscall costs. The page cache (dirty pages and pages
     * read from the log) stays at 8 MiB: every commit walks the cache's whole hash table (the
     * pager's truncate at the end of a write, pcache1), which a 64 MiB cache grown during a
     * fill made a third of a create's CPU at 100,000 instances (bench/scale.sh: 302-316 µs
     * per create with 8 MiB, 466-582 with 64 MiB, same build otherwise). */
    if (lite_exec(db, "PRAGMA mmap_size=4294967296", err) < 0 ||
        lite_exec(db, "PRAGMA cache_size=-8192", err) < 0)
        return nubo_error_wrap(err, "opening the database %s", path);
    /* this connection starts the log over once the checkpoint thread has copied it all
     * (store.c, ckpt_main), and then cuts the file back to 16 MiB */
    if (lite_exec(db, "PRAGMA journal_size_limit=16777216", err) < 0)
        return nubo_error_wrap(err, "opening the database %s", path);
    return 0;
}

int ctl_db_open(struct ctl_db **out, const char *target, bool sync_full, struct nubo_err *err)
{
    struct ctl_db *db = calloc(1, sizeof(*db));
    if (db == NULL)
        return nubo_error(err, ENOMEM, "opening the store");
    db->kind = ctl_db_target_is_pg(target) ? CTL_DB_PG : CTL_DB_SQLITE;
    int rc = db->kind == CTL_DB_PG ? pg_open(db, target, err) : lite_open(db, target, sync_full, err);
    if (rc < 0) {
        ctl_db_close(db);
        return -1;
    }
    *out = db;
    return 0;
}

void ctl_db_close(struct ctl_db *db)
{
    if (db == NULL)
        return;
    if (db->kind == CTL_DB_PG)
        pg_close(db);
    else if (db->lite)
        sqlite3_close(db->lite);
    free(db);
}

enum ctl_db_kind ctl_db_kind(const struct ctl_db *db)
{
    return db->kind;
}

const char *ctl_db_errmsg(struct ctl_db *db)
{
    return db->kind == CTL_DB_PG ? db->errmsg : sqlite3_errmsg(db->lite);
}

bool ctl_db_in_tx(struct ctl_db *db)
{
    return db->kind == CTL_DB_PG ? pg_in_tx(db) : !sqlite3_get_autocommit(db->lite);
}

int ctl_db_exec(struct ctl_db *db, const char *sql, struct nubo_err *err)
{
    return db->kind == CTL_DB_PG ? pg_exec(db, sql, err) : lite_exec(db, sql, err);
}

int ctl_db_begin_migration(struct ctl_db *db, struct nubo_err *err)
{
    /* sqlite: IMMEDIATE takes the write lock, so a second process waits then sees the new
     * version */
    return db->kind == CTL_DB_PG ? pg_begin_migration(db, err)
                                 : lite_exec(db, "BEGIN IMMEDIATE", err);
}

int ctl_db_schema_version(struct ctl_db *db, int *version, struct nubo_err *err)
{
    if (db->kind == CTL_DB_PG)
        return pg_schema_version(db, version, err);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db->lite, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return lite_err(db, err, "reading the schema version");
    *version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : 0;
    sqlite3_finalize(st);
    return 0;
}

int ctl_db_schema_version_set(struct ctl_db *db, int version, struct nubo_err *err)
{
    if (db->kind == CTL_DB_PG)
        return pg_schema_version_set(db, version, err);
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version=%d;", version);
    return lite_exec(db, bump, err);
}

void ctl_db_set_fence(struct ctl_db *db, const char *check_sql, int64_t epoch)
{
    if (db->kind == CTL_DB_PG)
        pg_set_fence(db, check_sql, epoch);
}

bool ctl_db_take_fenced(struct ctl_db *db)
{
    return db->kind == CTL_DB_PG && pg_take_fenced(db);
}

void ctl_stmt_unfenced(struct ctl_stmt *st)
{
    if (st->db->kind == CTL_DB_PG)
        pg_unfenced(st);
}

int ctl_db_prepare(struct ctl_db *db, const char *sql, bool persistent, struct ctl_stmt **out,
                   struct nubo_err *err)
{
    struct ctl_stmt *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return nubo_error_http(err, 500, "store: out of memory");
    st->db = db;
    int rc;
    if (db->kind == CTL_DB_PG)
        rc = pg_prepare(st, sql, persistent, err);
    else if (sqlite3_prepare_v3(db->lite, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                                &st->lite, NULL) != SQLITE_OK)
        rc = lite_err(db, err, "preparing a statement");
    else
        rc = 0;
    if (rc < 0) {
        ctl_stmt_finalize(st);
        return -1;
    }
    *out = st;
    return 0;
}

void ctl_stmt_finalize(struct ctl_stmt *st)
{
    if (st == NULL)
        return;
    if (st->db->kind == CTL_DB_PG)
        pg_finalize(st);
    else
        sqlite3_finalize(st->lite);
    free(st);
}

void ctl_stmt_reset(struct ctl_stmt *st)
{
    if (st->db->kind == CTL_DB_PG) {
        pg_reset(st);
        return;
    }
    sqlite3_reset(st->lite);
    sqlite3_clear_bindings(st->lite);
}

int ctl_stmt_step(struct ctl_stmt *st)
{
    if (st->db->kind == CTL_DB_PG)
        return pg_step(st);
    int rc = sqlite3_step(st->lite);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

void ctl_bind_text(struct ctl_stmt *st, int i, const char *v)
{
    if (st->db->kind == CTL_DB_PG)
        pg_bind(st, i, v, 0, false);
    else if (v == NULL)
        sqlite3_bind_null(st->lite, i);
    else
        sqlite3_bind_text(st->lite, i, v, -1, SQLITE_STATIC);
}

void ctl_bind_int64(struct ctl_stmt *st, int i, int64_t v)
{
    if (st->db->kind == CTL_DB_PG)
        pg_bind_int64(st, i, v);
    else
        sqlite3_bind_int64(st->lite, i, v);
}

void ctl_bind_blob(struct ctl_stmt *st, int i, const void *v, size_t len)
{
    /* an empty blob stays a blob: sqlite binds NULL for a NULL pointer */
    if (st->db->kind == CTL_DB_PG)
        pg_bind(st, i, len ? v : "", len, true);
    else
        sqlite3_bind_blob64(st->lite, i, len ? v : "", len, SQLITE_STATIC);
}

void ctl_bind_null(struct ctl_stmt *st, int i)
{
    if (st->db->kind == CTL_DB_PG)
        pg_bind(st, i, NULL, 0, false);
    else
        sqlite3_bind_null(st->lite, i);
}

const char *ctl_col_text(struct ctl_stmt *st, int i)
{
    if (st->db->kind == CTL_DB_PG)
        return pg_col_text(st, i);
    return (const char *)sqlite3_column_text(st->lite, i);
}

int64_t ctl_col_int64(struct ctl_stmt *st, int i)
{
    if (st->db->kind != CTL_DB_PG)
        return sqlite3_column_int64(st->lite, i);
    const char *t = pg_col_text(st, i);
    if (t == NULL)
        return 0;
    /* a boolean expression arrives as t/f */
    if (t[0] == 't' || t[0] == 'f')
        return t[0] == 't';
    return strtoll(t, NULL, 10);
}

const void *ctl_col_blob(struct ctl_stmt *st, int i, size_t *len)
{
    if (st->db->kind == CTL_DB_PG)
        return pg_col_blob(st, i, len);
    const void *d = sqlite3_column_blob(st->lite, i);
    *len = (size_t)sqlite3_column_bytes(st->lite, i);
    return d;
}

bool ctl_col_null(struct ctl_stmt *st, int i)
{
    if (st->db->kind == CTL_DB_PG)
        return pg_col_null(st, i);
    return sqlite3_column_type(st->lite, i) == SQLITE_NULL;
}
