/* The autoscale tables of the store (migration 6 -> 7 in store.c). Statements are prepared per
 * call, as store_volumes.c does: configurations change at human speed and replicas at the
 * loop's, both far below what preparing costs. */
#include <stdio.h>
#include <string.h>

#include "ctl_autoscale.h"

static int adb_err(struct ctl_store *s, struct nubo_err *err, const char *what)
{
    return nubo_error_http(err, 500, "store: %s: %s", what, sqlite3_errmsg(s->db));
}

/* Run sql with up to two text parameters. */
static int aexec(struct ctl_store *s, const char *sql, const char *a, const char *b,
                 struct nubo_err *err, const char *what)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return adb_err(s, err, what);
    if (a)
        sqlite3_bind_text(st, 1, a, -1, SQLITE_STATIC);
    if (b)
        sqlite3_bind_text(st, 2, b, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : adb_err(s, err, what);
}

int ctl_store_as_put(struct ctl_store *s, const char *svc_uuid, const char *config,
                     struct nubo_err *err)
{
    return aexec(s, "INSERT OR REPLACE INTO autoscale(svc_uuid,config) VALUES(?,?)", svc_uuid,
                 config, err, "saving an autoscale configuration");
}

int ctl_store_as_delete(struct ctl_store *s, const char *svc_uuid, struct nubo_err *err)
{
    if (aexec(s, "DELETE FROM autoscale_replicas WHERE svc_uuid=?", svc_uuid, NULL, err,
              "deleting autoscale replicas") < 0)
        return -1;
    return aexec(s, "DELETE FROM autoscale WHERE svc_uuid=?", svc_uuid, NULL, err,
                 "deleting an autoscale configuration");
}

int ctl_store_as_replica_put(struct ctl_store *s, const char *inst_uuid, const char *svc_uuid,
                             struct nubo_err *err)
{
    return aexec(s,
                 "INSERT OR REPLACE INTO autoscale_replicas(instance_uuid,svc_uuid) "
                 "VALUES(?,?)",
                 inst_uuid, svc_uuid, err, "saving an autoscale replica");
}

int ctl_store_as_replica_delete(struct ctl_store *s, const char *inst_uuid, struct nubo_err *err)
{
    return aexec(s, "DELETE FROM autoscale_replicas WHERE instance_uuid=?", inst_uuid, NULL, err,
                 "forgetting an autoscale replica");
}

/* Each row of sql (two text columns) to cb. */
static int aload(struct ctl_store *s, const char *sql,
                 int (*cb)(void *arg, const char *a, const char *b), void *arg,
                 struct nubo_err *err, const char *what)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
        return adb_err(s, err, what);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *a = (const char *)sqlite3_column_text(st, 0);
        const char *b = (const char *)sqlite3_column_text(st, 1);
        if (cb(arg, a ? a : "", b ? b : "") < 0) {
            sqlite3_finalize(st);
            return nubo_error(err, 0, "%s: out of memory", what);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : adb_err(s, err, what);
}

int ctl_store_as_load(struct ctl_store *s,
                      int (*config_cb)(void *arg, const char *svc_uuid, const char *config),
                      int (*replica_cb)(void *arg, const char *inst_uuid, const char *svc_uuid),
                      void *arg, struct nubo_err *err)
{
    if (aload(s, "SELECT svc_uuid, config FROM autoscale ORDER BY svc_uuid", config_cb, arg, err,
              "loading autoscale configurations") < 0)
        return -1;
    return aload(s, "SELECT instance_uuid, svc_uuid FROM autoscale_replicas ORDER BY rowid",
                 replica_cb, arg, err, "loading autoscale replicas");
}
