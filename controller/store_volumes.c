/* The volume tables of the store (migration 3 -> 4 in store.c). Statements are prepared per
 * call: volumes change at human speed, and keeping them out of store.c's statement table keeps
 * that table one concern. */
#include <stdio.h>
#include <string.h>

#include "ctl_volumes.h"

static int vdb_err(struct ctl_store *s, struct nubo_err *err, const char *what)
{
    return nubo_error_http(err, 500, "store: %s: %s", what, ctl_db_errmsg(s->db));
}

static struct ctl_stmt *vprep(struct ctl_store *s, const char *sql, struct nubo_err *err)
{
    struct ctl_stmt *st = NULL;
    if (ctl_db_prepare(s->db, sql, false, &st, err) < 0) {
        nubo_error_wrap(err, "preparing a volume statement");
        return NULL;
    }
    return st;
}

static int vdone(struct ctl_store *s, struct ctl_stmt *st, struct nubo_err *err, const char *what)
{
    int rc = ctl_stmt_step(st);
    int out = rc == 0 ? 0 : vdb_err(s, err, what);
    ctl_stmt_finalize(st);
    return out;
}

static void vtext(struct ctl_stmt *st, int i, char *buf, size_t size)
{
    const char *t = ctl_col_text(st, i);
    snprintf(buf, size, "%s", t ? t : "");
}

int ctl_store_volume_put(struct ctl_store *s, const struct ctl_volume_row *r, struct nubo_err *err)
{
    struct ctl_stmt *st = vprep(s,
                             "INSERT OR REPLACE INTO volumes(uuid,owner,name,node_uuid,metro,"
                             "size_mb,persistent,created_at,state,message) "
                             "VALUES(?,?,?,?,?,?,?,?,?,?)",
                             err);
    if (st == NULL)
        return -1;
    ctl_bind_text(st, 1, r->uuid);
    ctl_bind_text(st, 2, r->owner);
    ctl_bind_text(st, 3, r->name);
    ctl_bind_text(st, 4, r->node_uuid);
    ctl_bind_text(st, 5, r->metro);
    ctl_bind_int64(st, 6, r->size_mb);
    ctl_bind_int64(st, 7, r->persistent);
    ctl_bind_int64(st, 8, r->created_at_us);
    ctl_bind_text(st, 9, nubo_volume_state_name(r->obs));
    ctl_bind_text(st, 10, r->message);
    return vdone(s, st, err, "saving a volume");
}

int ctl_store_volume_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    struct ctl_stmt *st = vprep(s, "DELETE FROM volumes WHERE uuid=?", err);
    if (st == NULL)
        return -1;
    ctl_bind_text(st, 1, uuid);
    return vdone(s, st, err, "deleting a volume");
}

int ctl_store_volume_mount_put(struct ctl_store *s, const struct ctl_volume_mount_row *m,
                               struct nubo_err *err)
{
    struct ctl_stmt *st = vprep(s,
                             "INSERT OR REPLACE INTO volume_mounts(volume_uuid,instance_uuid,at,"
                             "readonly) VALUES(?,?,?,?)",
                             err);
    if (st == NULL)
        return -1;
    ctl_bind_text(st, 1, m->volume_uuid);
    ctl_bind_text(st, 2, m->instance_uuid);
    ctl_bind_text(st, 3, m->at);
    ctl_bind_int64(st, 4, m->readonly);
    return vdone(s, st, err, "saving a volume mount");
}

int ctl_store_volume_mount_delete(struct ctl_store *s, const char *volume_uuid,
                                  struct nubo_err *err)
{
    struct ctl_stmt *st = vprep(s, "DELETE FROM volume_mounts WHERE volume_uuid=?", err);
    if (st == NULL)
        return -1;
    ctl_bind_text(st, 1, volume_uuid);
    return vdone(s, st, err, "deleting a volume mount");
}

int ctl_store_node_volume_mb_put(struct ctl_store *s, const char *node_uuid, int64_t mb,
                                 struct nubo_err *err)
{
    struct ctl_stmt *st =
        vprep(s, "INSERT OR REPLACE INTO node_volume_mb(node_uuid,volume_mb) VALUES(?,?)", err);
    if (st == NULL)
        return -1;
    ctl_bind_text(st, 1, node_uuid);
    ctl_bind_int64(st, 2, mb);
    return vdone(s, st, err, "saving a node's volume budget");
}

int ctl_store_volumes_load(struct ctl_store *s,
                           int (*vol)(void *arg, const struct ctl_volume_row *r),
                           int (*mnt)(void *arg, const struct ctl_volume_mount_row *m),
                           int (*budget)(void *arg, const char *node_uuid, int64_t mb), void *arg,
                           struct nubo_err *err)
{
    struct ctl_stmt *st = vprep(s,
                             "SELECT uuid,owner,name,node_uuid,metro,size_mb,persistent,"
                             "created_at,state,message FROM volumes ORDER BY created_at, uuid",
                             err);
    if (st == NULL)
        return -1;
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_volume_row r = {0};
        char state[24];
        vtext(st, 0, r.uuid, sizeof(r.uuid));
        vtext(st, 1, r.owner, sizeof(r.owner));
        vtext(st, 2, r.name, sizeof(r.name));
        vtext(st, 3, r.node_uuid, sizeof(r.node_uuid));
        vtext(st, 4, r.metro, sizeof(r.metro));
        r.size_mb = ctl_col_int64(st, 5);
        r.persistent = ctl_col_int64(st, 6) != 0;
        r.created_at_us = ctl_col_int64(st, 7);
        vtext(st, 8, state, sizeof(state));
        if (nubo_volume_state_parse(state, &r.obs) < 0)
            r.obs = NUBO_VOL_ERROR;
        vtext(st, 9, r.message, sizeof(r.message));
        vol(arg, &r);
    }
    ctl_stmt_finalize(st);
    if (rc != 0)
        return vdb_err(s, err, "loading volumes");
    st = vprep(s, "SELECT volume_uuid,instance_uuid,at,readonly FROM volume_mounts", err);
    if (st == NULL)
        return -1;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_volume_mount_row m = {0};
        vtext(st, 0, m.volume_uuid, sizeof(m.volume_uuid));
        vtext(st, 1, m.instance_uuid, sizeof(m.instance_uuid));
        vtext(st, 2, m.at, sizeof(m.at));
        m.readonly = ctl_col_int64(st, 3) != 0;
        mnt(arg, &m);
    }
    ctl_stmt_finalize(st);
    if (rc != 0)
        return vdb_err(s, err, "loading volume mounts");
    st = vprep(s, "SELECT node_uuid,volume_mb FROM node_volume_mb", err);
    if (st == NULL)
        return -1;
    while ((rc = ctl_stmt_step(st)) == 1) {
        char node[NUBO_UUID_STR_LEN + 1];
        vtext(st, 0, node, sizeof(node));
        budget(arg, node, ctl_col_int64(st, 1));
    }
    ctl_stmt_finalize(st);
    return rc == 0 ? 0 : vdb_err(s, err, "loading node volume budgets");
}
