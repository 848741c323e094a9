/* The store's statement layer: one small SQL interface over sqlite3 (the embedded default) and
 * PostgreSQL (libpq, chosen by a postgresql:// URL), so store.c's functions have a single
 * implementation. SQL is written the sqlite way with ? placeholders; on PostgreSQL it is
 * translated (store_db_pg.c says which constructs, and refuses the rest loudly). Bound text and
 * blobs are not copied: they must stay valid until the statement is stepped. */
#ifndef NUBO_CTL_STORE_DB_H
#define NUBO_CTL_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

enum ctl_db_kind { CTL_DB_SQLITE, CTL_DB_PG };

struct ctl_db;
struct ctl_stmt;

/* True when target names a PostgreSQL server (postgresql:// or postgres://). */
bool ctl_db_target_is_pg(const char *target);
/* target: a sqlite file path or a PostgreSQL URL; sync_full applies to sqlite (PostgreSQL's
 * durability is the server's synchronous_commit). */
int ctl_db_open(struct ctl_db **out, const char *target, bool sync_full, struct nubo_err *err);
void ctl_db_close(struct ctl_db *db);
enum ctl_db_kind ctl_db_kind(const struct ctl_db *db);
const char *ctl_db_errmsg(struct ctl_db *db);
bool ctl_db_in_tx(struct ctl_db *db);

/* Statements without parameters, several separated by ';' (migrations). */
int ctl_db_exec(struct ctl_db *db, const char *sql, struct nubo_err *err);
/* Begin a transaction that serializes schema migrations between processes sharing the store. */
int ctl_db_begin_migration(struct ctl_db *db, struct nubo_err *err);
int ctl_db_schema_version(struct ctl_db *db, int *version, struct nubo_err *err);
int ctl_db_schema_version_set(struct ctl_db *db, int version, struct nubo_err *err);

/* Fencing (PostgreSQL; nothing on sqlite): while set, every write transaction first reads
 * check_sql's one integer under the row lock the SQL takes and fails unless it equals epoch, so a
 * controller that lost the leadership cannot write (leader.c); epoch < 0 refuses every write.
 * A write statement outside a transaction runs in one with that check. check_sql NULL: off. */
void ctl_db_set_fence(struct ctl_db *db, const char *check_sql, int64_t epoch);
/* A write was refused by the fence since the last call (which clears it). */
bool ctl_db_take_fenced(struct ctl_db *db);

/* persistent: kept for the connection's life (prepared once on the server). */
int ctl_db_prepare(struct ctl_db *db, const char *sql, bool persistent, struct ctl_stmt **out,
                   struct nubo_err *err);
void ctl_stmt_finalize(struct ctl_stmt *st);
/* The fence does not apply to st (the leader lease's own statements). */
void ctl_stmt_unfenced(struct ctl_stmt *st);
/* End the current row set and clear the bindings. */
void ctl_stmt_reset(struct ctl_stmt *st);
/* 1 row, 0 done, -1 error (ctl_db_errmsg says which). */
int ctl_stmt_step(struct ctl_stmt *st);

/* Parameters count from 1, as in sqlite; a NULL text binds SQL NULL. */
void ctl_bind_text(struct ctl_stmt *st, int i, const char *v);
void ctl_bind_int64(struct ctl_stmt *st, int i, int64_t v);
void ctl_bind_blob(struct ctl_stmt *st, int i, const void *v, size_t len);
void ctl_bind_null(struct ctl_stmt *st, int i);

/* Columns count from 0; valid until the next step or reset. A NULL column reads as NULL text,
 * 0, or an empty blob. */
const char *ctl_col_text(struct ctl_stmt *st, int i);
int64_t ctl_col_int64(struct ctl_stmt *st, int i);
const void *ctl_col_blob(struct ctl_stmt *st, int i, size_t *len);
bool ctl_col_null(struct ctl_stmt *st, int i);

/* PostgreSQL's form of one sqlite-dialect statement (the translation prepare applies), without
 * the INSERT OR REPLACE rewrite, which needs the table's primary key from the server: for
 * tests. */
int ctl_db_pg_translate(const char *sql, char **out, int *n_params, struct nubo_err *err);

#endif
