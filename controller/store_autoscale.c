/* The autoscale tables of the store (migration 7 -> 8 in store.c). Statements are prepared per
 * call, as store_volumes.c does: configurations change at human speed and replicas at the
 * loop's, both far below what preparing costs. */
#include <stdio.h>
#include <string.h>

#include "ctl_autoscale.h"

static int aexec(struct ctl_store *s, const char *sql, const char *a, const char *b,
                 struct nubo_err *err, const char *what)
{
    return ctl_store_exec_text(s, sql, a, b, what, err);
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
    struct ctl_stmt *st = NULL;
    if (ctl_db_prepare(s->db, sql, false, &st, err) < 0)
        return nubo_error_wrap(err, "%s", what);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        const char *a = ctl_col_text(st, 0);
        const char *b = ctl_col_text(st, 1);
        if (cb(arg, a ? a : "", b ? b : "") < 0) {
            ctl_stmt_finalize(st);
            return nubo_error(err, 0, "%s: out of memory", what);
        }
    }
    int out = rc == 0 ? 0 : nubo_error_http(err, 500, "store: %s: %s", what, ctl_db_errmsg(s->db));
    ctl_stmt_finalize(st);
    return out;
}

int ctl_store_as_load(struct ctl_store *s,
                      int (*config_cb)(void *arg, const char *svc_uuid, const char *config),
                      int (*replica_cb)(void *arg, const char *inst_uuid, const char *svc_uuid),
                      void *arg, struct nubo_err *err)
{
    if (aload(s, "SELECT svc_uuid, config FROM autoscale ORDER BY svc_uuid", config_cb, arg, err,
              "loading autoscale configurations") < 0)
        return -1;
    /* oldest first: scale-in removes from the end (no rowid: both backends read this) */
    return aload(s,
                 "SELECT r.instance_uuid, r.svc_uuid FROM autoscale_replicas r"
                 " JOIN instances i ON i.uuid = r.instance_uuid"
                 " ORDER BY i.created_at, r.instance_uuid",
                 replica_cb, arg, err, "loading autoscale replicas");
}
