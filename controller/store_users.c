/* The store's side of the user lifecycle (issue 11, observation 8): revoking a token, deleting
 * a user. Statements are prepared per call, as in store_volumes.c: both happen at human speed. */
#include <stdio.h>
#include <string.h>

#include "store.h"

static int exec_bound(struct ctl_store *s, const char *sql, const char *arg, const char *what,
                      struct nubo_err *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return nubo_error_http(err, 500, "store: %s: %s", what, sqlite3_errmsg(s->db));
    sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return nubo_error_http(err, 500, "store: %s: %s", what, sqlite3_errmsg(s->db));
    return 0;
}

int ctl_store_token_delete(struct ctl_store *s, const char *hash, struct nubo_err *err)
{
    return exec_bound(s, "DELETE FROM tokens WHERE hash=?", hash, "revoking a token", err);
}

int ctl_store_user_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    /* the rows that reference the user first (foreign keys are on) */
    if (exec_bound(s, "DELETE FROM tokens WHERE user_uuid=?", uuid, "deleting a user's tokens",
                   err) < 0 ||
        exec_bound(s, "DELETE FROM quotas WHERE user_uuid=?", uuid, "deleting a user's quotas",
                   err) < 0)
        return -1;
    return exec_bound(s, "DELETE FROM users WHERE uuid=?", uuid, "deleting a user", err);
}
