/* The store: schema migrations, prepared statements, row codecs, on either backend of
 * store_db.h; see store.h. */
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "log.h"
#include "util.h"

/* Each migration moves the schema from version i to i+1; never edit a shipped one. The same
 * text runs on sqlite as written and on PostgreSQL translated (store_db_pg.c), so write the
 * subset both share:
 *  - types TEXT, INTEGER (64-bit on both), BLOB; booleans are INTEGER 0/1, compared with =0/<>0;
 *  - every table a PRIMARY KEY (INSERT OR REPLACE upserts on it; on PostgreSQL a conflict on
 *    another UNIQUE fails instead of deleting that row); no AUTOINCREMENT or rowid;
 *  - DDL: CREATE TABLE/INDEX, ALTER TABLE ADD COLUMN (NOT NULL needs a DEFAULT), DROP TABLE,
 *    triggers only as CREATE TRIGGER n AFTER|BEFORE DELETE|INSERT|UPDATE ON t BEGIN ...; END;
 *  - no PRAGMA, no sqlite-only functions (ifnull -> coalesce, group_concat, strftime, ...);
 *    quote identifiers PostgreSQL reserves ("offset", "user", "order") with double quotes;
 *  - statements: ? placeholders; INSERT OR REPLACE/IGNORE name their columns.
 * What cannot be translated fails loudly at open; unit.test_store_pg runs every migration and
 * compares the resulting tables and columns with sqlite's. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE users(uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " admin INTEGER NOT NULL, created_at INTEGER NOT NULL);"
    "CREATE TABLE tokens(hash TEXT PRIMARY KEY, user_uuid TEXT NOT NULL REFERENCES users(uuid),"
    " created_at INTEGER NOT NULL);"
    "CREATE TABLE nodes(uuid TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, metro TEXT NOT NULL,"
    " memory_mb INTEGER NOT NULL, vcpus INTEGER NOT NULL, accel TEXT NOT NULL,"
    " libvirt_version TEXT, qemu_version TEXT, agent_version TEXT,"
    " subnet_index INTEGER NOT NULL UNIQUE, token_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, registered_at INTEGER NOT NULL,"
    " unavailable INTEGER NOT NULL DEFAULT 0);"
    /* intent */
    "CREATE TABLE instances(uuid TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL, image TEXT NOT NULL, memory_mb INTEGER NOT NULL,"
    " vcpus INTEGER NOT NULL, args TEXT NOT NULL, env TEXT NOT NULL,"
    " restart_policy INTEGER NOT NULL, features INTEGER NOT NULL, service_ports TEXT NOT NULL,"
    " node_uuid TEXT NOT NULL, metro TEXT NOT NULL, ip_host INTEGER NOT NULL,"
    " desired INTEGER NOT NULL, start_seq INTEGER NOT NULL, stop_force INTEGER NOT NULL,"
    " drain_timeout_ms INTEGER NOT NULL, UNIQUE(owner, name));"
    /* observation: the agent's last report, kept apart from intent */
    "CREATE TABLE observations(uuid TEXT PRIMARY KEY, report TEXT NOT NULL);"
    "CREATE TABLE images(digest_ref TEXT PRIMARY KEY, uuid TEXT NOT NULL UNIQUE,"
    " repo TEXT NOT NULL, owner TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " size_in_bytes INTEGER NOT NULL, initrd INTEGER NOT NULL, detailed INTEGER NOT NULL,"
    " args TEXT NOT NULL, env TEXT NOT NULL);"
    "CREATE INDEX images_owner ON images(owner);"
    "CREATE TABLE tags(repo TEXT NOT NULL, tag TEXT NOT NULL, digest_ref TEXT NOT NULL,"
    " PRIMARY KEY(repo, tag));"
    "CREATE INDEX tags_digest ON tags(digest_ref);",
    /* 1 -> 2: service groups, certificates, node maintenance, persisted console tails */
    "ALTER TABLE instances ADD COLUMN service_group TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE nodes ADD COLUMN maintenance INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE service_groups(uuid TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,"
    " metro TEXT NOT NULL, created_at INTEGER NOT NULL, persistent INTEGER NOT NULL,"
    " soft_limit INTEGER NOT NULL, hard_limit INTEGER NOT NULL, services TEXT NOT NULL,"
    " domains TEXT NOT NULL, UNIQUE(owner, name));"
    "CREATE TABLE certificates(uuid TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,"
    " cn TEXT NOT NULL, chain TEXT NOT NULL, pkey TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " UNIQUE(owner, name));"
    "CREATE TABLE logtails(uuid TEXT PRIMARY KEY, start INTEGER NOT NULL, data BLOB NOT NULL);",
    /* 2 -> 3: console tails as appended chunks (a flush writes only the new bytes; chunks the
     * bounded tail has moved past are deleted) instead of one rewritten blob */
    "DROP TABLE logtails;"
    "CREATE TABLE logchunks(uuid TEXT NOT NULL, \"offset\" INTEGER NOT NULL, data BLOB NOT NULL,"
    " PRIMARY KEY(uuid, \"offset\"));",
    /* 3 -> 4: per-user hard limits an admin set (the rest come from [quotas]) */
    "CREATE TABLE quotas(user_uuid TEXT NOT NULL REFERENCES users(uuid), quota TEXT NOT NULL,"
    " hard INTEGER NOT NULL, PRIMARY KEY(user_uuid, quota));",
    /* 4 -> 5: scale-to-zero settings and the standby flag, apart from the instance row; the
     * trigger removes them with their instance (REPLACE on instances fires no delete trigger) */
    "CREATE TABLE scale_to_zero(uuid TEXT PRIMARY KEY, policy INTEGER NOT NULL,"
    " stateful INTEGER NOT NULL, cooldown_ms INTEGER NOT NULL, standby INTEGER NOT NULL);"
    "CREATE TRIGGER scale_to_zero_gone AFTER DELETE ON instances"
    " BEGIN DELETE FROM scale_to_zero WHERE uuid=old.uuid; END;",
    /* 5 -> 6: volumes (store_volumes.c): the volume, the instance mounting it, the disk each
     * node offers to volumes (re-sent on register; kept so placement works before it is) */
    "CREATE TABLE volumes(uuid TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT NOT NULL,"
    " node_uuid TEXT NOT NULL, metro TEXT NOT NULL, size_mb INTEGER NOT NULL,"
    " persistent INTEGER NOT NULL, created_at INTEGER NOT NULL, state TEXT NOT NULL,"
    " message TEXT NOT NULL DEFAULT '', UNIQUE(owner, name));"
    "CREATE TABLE volume_mounts(volume_uuid TEXT PRIMARY KEY, instance_uuid TEXT NOT NULL,"
    " at TEXT NOT NULL, readonly INTEGER NOT NULL);"
    "CREATE TABLE node_volume_mb(node_uuid TEXT PRIMARY KEY, volume_mb INTEGER NOT NULL);",
    /* 6 -> 7: token expiry and scope (a metrics-only token for Prometheus) */
    "ALTER TABLE tokens ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT '';",
    /* 7 -> 8: autoscale (store_autoscale.c): a group's configuration (the create request's
     * JSON, group and master by uuid) and the instances autoscale made; the triggers drop them
     * with their group or instance */
    "CREATE TABLE autoscale(svc_uuid TEXT PRIMARY KEY, config TEXT NOT NULL);"
    "CREATE TABLE autoscale_replicas(instance_uuid TEXT PRIMARY KEY, svc_uuid TEXT NOT NULL);"
    "CREATE TRIGGER autoscale_svc_gone AFTER DELETE ON service_groups BEGIN"
    " DELETE FROM autoscale WHERE svc_uuid=old.uuid;"
    " DELETE FROM autoscale_replicas WHERE svc_uuid=old.uuid; END;"
    "CREATE TRIGGER autoscale_replica_gone AFTER DELETE ON instances"
    " BEGIN DELETE FROM autoscale_replicas WHERE instance_uuid=old.uuid; END;",
    /* 8 -> 9: the lease of the controller leading among those sharing a PostgreSQL store
     * (leader.c): one row; its epoch is the fencing token every write transaction checks.
     * sqlite gets it too (the same schema everywhere) and leaves it unused. */
    "CREATE TABLE leader_lease(id INTEGER PRIMARY KEY, epoch INTEGER NOT NULL,"
    " holder TEXT NOT NULL, url TEXT NOT NULL, expires_us INTEGER NOT NULL);"
    "INSERT INTO leader_lease(id,epoch,holder,url,expires_us) VALUES(1,0,'','',0);",
    /* 9 -> 10: the hash of the register key a node's agent registered with (agents.c): the
     * same agent retrying a join-token register whose reply it lost; '' = none */
    "ALTER TABLE nodes ADD COLUMN register_key_hash TEXT NOT NULL DEFAULT '';",
};

static const char *const stmt_sql[ST__COUNT] = {
    [ST_USER_INS] = "INSERT INTO users(uuid,name,admin,created_at) VALUES(?,?,?,?)",
    [ST_TOKEN_INS] = "INSERT OR IGNORE INTO tokens(hash,user_uuid,created_at,expires_at,scope) "
                     "VALUES(?,?,?,?,?)",
    [ST_USERS] = "SELECT uuid,name,admin,created_at FROM users",
    [ST_TOKENS] = "SELECT hash,user_uuid,created_at,expires_at,scope FROM tokens",
    [ST_NODE_PUT] = "INSERT OR REPLACE INTO nodes(uuid,name,metro,memory_mb,vcpus,accel,"
                    "libvirt_version,qemu_version,agent_version,subnet_index,token_hash,"
                    "created_at,registered_at,unavailable,maintenance,register_key_hash) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [ST_NODES] = "SELECT uuid,name,metro,memory_mb,vcpus,accel,libvirt_version,qemu_version,"
                 "agent_version,subnet_index,token_hash,created_at,registered_at,unavailable,"
                 "maintenance,register_key_hash FROM nodes",
    [ST_INST_PUT] = "INSERT OR REPLACE INTO instances(uuid,owner,name,created_at,image,"
                    "memory_mb,vcpus,args,env,restart_policy,features,service_ports,node_uuid,"
                    "metro,ip_host,desired,start_seq,stop_force,drain_timeout_ms,service_group) "
                    "VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
    [ST_INST_DEL] = "DELETE FROM instances WHERE uuid=?",
    [ST_OBS_DEL] = "DELETE FROM observations WHERE uuid=?",
    [ST_OBS_PUT] = "INSERT OR REPLACE INTO observations(uuid,report) VALUES(?,?)",
    /* in no order (lists sort themselves): sorting 100,000 rows is a tenth of a takeover */
    [ST_INSTS] = "SELECT i.uuid,owner,name,created_at,image,memory_mb,vcpus,args,env,"
                 "restart_policy,features,service_ports,node_uuid,metro,ip_host,desired,"
                 "start_seq,stop_force,drain_timeout_ms,o.report,service_group FROM instances i "
                 "LEFT JOIN observations o ON o.uuid=i.uuid",
    [ST_IMG_PUT] = "INSERT INTO images(digest_ref,uuid,repo,owner,created_at,size_in_bytes,"
                   "initrd,detailed,args,env) VALUES(?,?,?,?,?,?,?,?,?,?) "
                   "ON CONFLICT(digest_ref) DO UPDATE SET size_in_bytes=excluded.size_in_bytes,"
                   "initrd=excluded.initrd,detailed=excluded.detailed,args=excluded.args,"
                   "env=excluded.env WHERE excluded.detailed>=images.detailed",
    [ST_TAG_PUT] = "INSERT OR REPLACE INTO tags(repo,tag,digest_ref) VALUES(?,?,?)",
    [ST_IMG_DEL] = "DELETE FROM images WHERE digest_ref=?",
    [ST_TAG_DEL_DIGEST] = "DELETE FROM tags WHERE digest_ref=?",
    [ST_IMG_BY_TAG] = "SELECT i.digest_ref,uuid,i.repo,owner,created_at,size_in_bytes,initrd,"
                      "detailed,args,env FROM tags t JOIN images i ON i.digest_ref=t.digest_ref "
                      "WHERE t.repo=? AND t.tag=?",
    [ST_IMG_BY_DIGEST] = "SELECT digest_ref,uuid,repo,owner,created_at,size_in_bytes,initrd,"
                         "detailed,args,env FROM images WHERE digest_ref=?",
    [ST_IMG_BY_UUID] = "SELECT digest_ref,uuid,repo,owner,created_at,size_in_bytes,initrd,"
                       "detailed,args,env FROM images WHERE uuid=?",
    [ST_IMGS] = "SELECT digest_ref,uuid,repo,owner,created_at,size_in_bytes,initrd,detailed,"
                "args,env FROM images WHERE owner=? OR owner=? ORDER BY created_at, uuid",
    [ST_IMG_TAGS] = "SELECT repo||':'||tag FROM tags WHERE digest_ref=? ORDER BY tag",
    [ST_SVC_PUT] = "INSERT OR REPLACE INTO service_groups(uuid,owner,name,metro,created_at,"
                   "persistent,soft_limit,hard_limit,services,domains) VALUES(?,?,?,?,?,?,?,?,?,?)",
    [ST_SVC_DEL] = "DELETE FROM service_groups WHERE uuid=?",
    [ST_SVCS] = "SELECT uuid,owner,name,metro,created_at,persistent,soft_limit,hard_limit,"
                "services,domains FROM service_groups ORDER BY created_at, uuid",
    [ST_CERT_PUT] = "INSERT OR REPLACE INTO certificates(uuid,owner,name,cn,chain,pkey,created_at)"
                    " VALUES(?,?,?,?,?,?,?)",
    [ST_CERT_DEL] = "DELETE FROM certificates WHERE uuid=?",
    [ST_CERTS] = "SELECT uuid,owner,name,cn,chain,pkey,created_at FROM certificates "
                 "ORDER BY created_at, uuid",
    [ST_LOG_PUT] = "INSERT OR REPLACE INTO logchunks(uuid,\"offset\",data) VALUES(?,?,?)",
    [ST_LOG_TRIM] = "DELETE FROM logchunks WHERE uuid=? AND \"offset\"+length(data)<=?",
    [ST_LOG_DEL] = "DELETE FROM logchunks WHERE uuid=?",
    [ST_QUOTA_PUT] = "INSERT OR REPLACE INTO quotas(user_uuid,quota,hard) VALUES(?,?,?)",
    [ST_QUOTA_DEL] = "DELETE FROM quotas WHERE user_uuid=? AND quota=?",
    [ST_QUOTAS] = "SELECT user_uuid,quota,hard FROM quotas",
    [ST_LOGS] = "SELECT l.uuid,l.\"offset\",l.data FROM logchunks l JOIN instances i ON "
                "i.uuid=l.uuid ORDER BY l.uuid, l.\"offset\"",
    [ST_S2Z_PUT] = "INSERT OR REPLACE INTO scale_to_zero(uuid,policy,stateful,cooldown_ms,standby)"
                   " VALUES(?,?,?,?,?)",
    [ST_S2ZS] = "SELECT uuid,policy,stateful,cooldown_ms,standby FROM scale_to_zero",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

static int db_err(struct ctl_store *s, struct nubo_err *err, const char *what)
{
    return nubo_error_http(err, 500, "store: %s: %s", what, ctl_db_errmsg(s->db));
}

static int migrate(struct ctl_store *s, struct nubo_err *err)
{
    int target = (int)(sizeof(migrations) / sizeof(migrations[0]));
    /* one transaction per migration; it also re-reads the version, so controllers opening one
     * store at once migrate it once */
    for (;;) {
        int version;
        if (ctl_db_begin_migration(s->db, err) < 0)
            return -1;
        if (ctl_db_schema_version(s->db, &version, err) < 0) {
            ctl_db_exec(s->db, "ROLLBACK", NULL);
            return -1;
        }
        if (version >= target) {
            ctl_db_exec(s->db, "ROLLBACK", NULL);
            if (version > target)
                return nubo_error(err, 0,
                                  "store: the database has schema version %d, newer than this "
                                  "nubo-controller knows (%d); upgrade nubo-controller",
                                  version, target);
            return 0;
        }
        if (ctl_db_exec(s->db, migrations[version], err) < 0 ||
            ctl_db_schema_version_set(s->db, version + 1, err) < 0) {
            ctl_db_exec(s->db, "ROLLBACK", NULL);
            return nubo_error_wrap(err, "migrating the schema to version %d", version + 1);
        }
        if (ctl_db_exec(s->db, "COMMIT", err) < 0)
            return -1;
        log_info("store: schema migrated to version %d", version + 1);
    }
}

int ctl_store_open(struct ctl_store *s, const char *target, bool sync_full, struct nubo_err *err)
{
    memset(s, 0, sizeof(*s));
    if (ctl_db_open(&s->db, target, sync_full, err) < 0)
        return -1;
    if (migrate(s, err) < 0) {
        nubo_error_wrap(err, "opening the store");
        ctl_store_close(s);
        return -1;
    }
    for (int i = 0; i < ST__COUNT; i++)
        if (ctl_db_prepare(s->db, stmt_sql[i], true, &s->st[i], err) < 0) {
            ctl_store_close(s);
            return -1;
        }
    return 0;
}

/* 4,096 frames: 16 MiB of log at sqlite's 4 KiB pages */
#define CKPT_RESTART_FRAMES 4096

static void *ckpt_main(void *arg)
{
    struct ctl_store *s = arg;
    pthread_mutex_lock(&s->ckpt_mu);
    while (!s->ckpt_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu, &ts);
        if (s->ckpt_stop)
            break;
        pthread_mutex_unlock(&s->ckpt_mu);
        int log_frames = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                           &log_frames, &done);
        /* A passive checkpoint copies the log into the database but never rewinds it: only
         * a writer that finds the log wholly copied starts it over, and under a steady write
         * load that moment hardly comes (100,000 creates grew it to 2 GB, which a restart or a
         * takeover then reads whole). Past CKPT_RESTART_FRAMES the rest of the log is copied
         * with the writer held off for that moment; busy now means the next round. RESTART,
         * not TRUNCATE: the loop's next write then starts the log over itself (and cuts the
         * file to journal_size_limit, store_db.c). TRUNCATE rewrote the log's header from
         * this connection, and a connection that finds the header changed by another drops
         * its whole page cache and memory map: at 100,000 instances the loop refaulted its
         * b-trees after every cut (a third of a create's sqlite time). */
        if (rc == SQLITE_OK && log_frames > CKPT_RESTART_FRAMES)
            rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL, SQLITE_CHECKPOINT_RESTART,
                                           &log_frames, &done);
        if (rc != SQLITE_OK && rc != SQLITE_BUSY)
            log_warnx("store: checkpoint: %s", sqlite3_errmsg(s->ckpt_db));
        pthread_mutex_lock(&s->ckpt_mu);
    }
    pthread_mutex_unlock(&s->ckpt_mu);
    return NULL;
}

int ctl_store_start_checkpointer(struct ctl_store *s, const char *path, struct nubo_err *err)
{
    if (ctl_db_kind(s->db) != CTL_DB_SQLITE)
        return 0; /* PostgreSQL checkpoints by itself */
    if (sqlite3_open_v2(path, &s->ckpt_db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        return nubo_error(err, 0, "cannot open %s for checkpoints", path);
    sqlite3_busy_timeout(s->ckpt_db, 1000);
    /* A connection that has read nothing has not opened the log, and its checkpoints do
     * nothing at all (they answer -1 frames): reading the journal mode opens it. */
    if (sqlite3_exec(s->ckpt_db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK)
        return nubo_error(err, 0, "cannot open %s for checkpoints: %s", path,
                          sqlite3_errmsg(s->ckpt_db));
    /* the loop's connection no longer checkpoints by itself */
    if (ctl_db_exec(s->db, "PRAGMA wal_autocheckpoint=0", err) < 0)
        return -1;
    pthread_mutex_init(&s->ckpt_mu, NULL);
    pthread_cond_init(&s->ckpt_cv, NULL);
    if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0)
        return nubo_error(err, 0, "cannot start the checkpoint thread");
    s->ckpt_running = true;
    return 0;
}

void ctl_store_close(struct ctl_store *s)
{
    if (s->ckpt_running) {
        pthread_mutex_lock(&s->ckpt_mu);
        s->ckpt_stop = true;
        pthread_cond_signal(&s->ckpt_cv);
        pthread_mutex_unlock(&s->ckpt_mu);
        pthread_join(s->ckpt_thread, NULL);
        s->ckpt_running = false;
    }
    if (s->ckpt_db)
        sqlite3_close(s->ckpt_db);
    for (int i = 0; i < ST__COUNT; i++)
        ctl_stmt_finalize(s->st[i]);
    ctl_db_close(s->db);
    memset(s, 0, sizeof(*s));
}

static struct ctl_stmt *stmt(struct ctl_store *s, enum ctl_stmt_id i)
{
    ctl_stmt_reset(s->st[i]);
    return s->st[i];
}

static int step_done(struct ctl_store *s, struct ctl_stmt *st, struct nubo_err *err, const char *what)
{
    int rc = ctl_stmt_step(st);
    ctl_stmt_reset(st);
    if (rc != 0)
        return db_err(s, err, what);
    return 0;
}

int ctl_store_begin(struct ctl_store *s, struct nubo_err *err)
{
    return step_done(s, stmt(s, ST_BEGIN), err, "begin");
}

int ctl_store_commit(struct ctl_store *s, struct nubo_err *err)
{
    if (step_done(s, stmt(s, ST_COMMIT), err, "commit") < 0) {
        ctl_store_rollback(s);
        return -1;
    }
    return 0;
}

void ctl_store_rollback(struct ctl_store *s)
{
    if (ctl_db_in_tx(s->db))
        step_done(s, stmt(s, ST_ROLLBACK), NULL, "rollback");
}

static void bind_text(struct ctl_stmt *st, int i, const char *v)
{
    ctl_bind_text(st, i, v);
}

static void col_text(struct ctl_stmt *st, int i, char *buf, size_t size)
{
    const char *t = ctl_col_text(st, i);
    snprintf(buf, size, "%s", t ? t : "");
}

/* ---- users ---- */

int ctl_store_exec_text(struct ctl_store *s, const char *sql, const char *a, const char *b,
                        const char *what, struct nubo_err *err)
{
    struct ctl_stmt *st = NULL;
    if (ctl_db_prepare(s->db, sql, false, &st, err) < 0)
        return nubo_error_wrap(err, "%s", what);
    if (a)
        ctl_bind_text(st, 1, a);
    if (b)
        ctl_bind_text(st, 2, b);
    int rc = ctl_stmt_step(st);
    int out = rc == 0 ? 0 : nubo_error_http(err, 500, "store: %s: %s", what, ctl_db_errmsg(s->db));
    ctl_stmt_finalize(st);
    return out;
}

int ctl_store_user_insert(struct ctl_store *s, const struct ctl_user_row *u, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_USER_INS);
    bind_text(st, 1, u->uuid);
    bind_text(st, 2, u->name);
    ctl_bind_int64(st, 3, u->admin);
    ctl_bind_int64(st, 4, u->created_at_us);
    return step_done(s, st, err, "inserting a user");
}

int ctl_store_token_insert(struct ctl_store *s, const struct ctl_token_row *t,
                           struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_TOKEN_INS);
    bind_text(st, 1, t->hash);
    bind_text(st, 2, t->user_uuid);
    ctl_bind_int64(st, 3, t->created_at_us);
    ctl_bind_int64(st, 4, t->expires_at_us);
    bind_text(st, 5, t->scope);
    return step_done(s, st, err, "inserting a token");
}

int ctl_store_users_load(struct ctl_store *s, int (*cb)(void *, const struct ctl_user_row *),
                         void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_USERS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_user_row u = {0};
        col_text(st, 0, u.uuid, sizeof(u.uuid));
        col_text(st, 1, u.name, sizeof(u.name));
        u.admin = ctl_col_int64(st, 2) != 0;
        u.created_at_us = ctl_col_int64(st, 3);
        if (cb(arg, &u) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading users: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading users");
}

int ctl_store_tokens_load(struct ctl_store *s, int (*cb)(void *, const struct ctl_token_row *),
                          void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_TOKENS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_token_row t = {0};
        col_text(st, 0, t.hash, sizeof(t.hash));
        col_text(st, 1, t.user_uuid, sizeof(t.user_uuid));
        t.created_at_us = ctl_col_int64(st, 2);
        t.expires_at_us = ctl_col_int64(st, 3);
        col_text(st, 4, t.scope, sizeof(t.scope));
        if (cb(arg, &t) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading tokens: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading tokens");
}

/* ---- nodes ---- */

int ctl_store_node_put(struct ctl_store *s, const struct ctl_node_row *n, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_NODE_PUT);
    bind_text(st, 1, n->uuid);
    bind_text(st, 2, n->name);
    bind_text(st, 3, n->metro);
    ctl_bind_int64(st, 4, n->memory_mb);
    ctl_bind_int64(st, 5, n->vcpus);
    bind_text(st, 6, n->accel);
    bind_text(st, 7, n->libvirt_version);
    bind_text(st, 8, n->qemu_version);
    bind_text(st, 9, n->agent_version);
    ctl_bind_int64(st, 10, n->subnet_index);
    bind_text(st, 11, n->token_hash);
    ctl_bind_int64(st, 12, n->created_at_us);
    ctl_bind_int64(st, 13, n->registered_at_us);
    ctl_bind_int64(st, 14, n->unavailable);
    ctl_bind_int64(st, 15, n->maintenance);
    bind_text(st, 16, n->register_key_hash);
    return step_done(s, st, err, "saving a node");
}

int ctl_store_nodes_load(struct ctl_store *s, int (*cb)(void *, const struct ctl_node_row *),
                         void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_NODES);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_node_row n = {0};
        col_text(st, 0, n.uuid, sizeof(n.uuid));
        col_text(st, 1, n.name, sizeof(n.name));
        col_text(st, 2, n.metro, sizeof(n.metro));
        n.memory_mb = ctl_col_int64(st, 3);
        n.vcpus = ctl_col_int64(st, 4);
        col_text(st, 5, n.accel, sizeof(n.accel));
        col_text(st, 6, n.libvirt_version, sizeof(n.libvirt_version));
        col_text(st, 7, n.qemu_version, sizeof(n.qemu_version));
        col_text(st, 8, n.agent_version, sizeof(n.agent_version));
        n.subnet_index = ctl_col_int64(st, 9);
        col_text(st, 10, n.token_hash, sizeof(n.token_hash));
        n.created_at_us = ctl_col_int64(st, 11);
        n.registered_at_us = ctl_col_int64(st, 12);
        n.unavailable = ctl_col_int64(st, 13) != 0;
        n.maintenance = ctl_col_int64(st, 14) != 0;
        col_text(st, 15, n.register_key_hash, sizeof(n.register_key_hash));
        if (cb(arg, &n) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading nodes: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading nodes");
}

/* ---- instances ---- */

void ctl_instance_row_free(struct ctl_instance_row *r)
{
    if (r == NULL)
        return;
    pj_strv_free(r->args, r->n_args);
    pj_env_free(r->env, r->n_env);
    free(r->service_ports);
    r->args = NULL;
    r->env = NULL;
    r->service_ports = NULL;
    r->n_args = r->n_env = r->n_service_ports = 0;
}

static char *json_text(json_t *j)
{
    char *t = pj_dump(j);
    json_decref(j);
    return t;
}

/* A row holds no more args and env than their readers accept: the agent's assignment decoder
 * and the API's clients (proto/agent.h). Stored beyond that, a row could be written but not
 * used, and one tenant's image broke every user's listing. The readers below stay more
 * tolerant (STORE_READ_*) so that rows an older controller wrote still load. */
#define STORE_MAX_ARGS NUBO_AGENT_MAX_ARGS
#define STORE_MAX_ENV NUBO_AGENT_MAX_ENV
#define STORE_MAX_STR NUBO_AGENT_MAX_STR
#define STORE_READ_MAX_ITEMS 1024
#define STORE_READ_MAX_STR (1u << 20)

/* Encode args and env as a row stores them, refusing (400, one line naming the object) what
 * the decoders would refuse: the same decoder runs on the text about to be written. */
static int row_lists(const char *what, const char *id, char *const *args, size_t n_args,
                     const struct nubo_kv *env, size_t n_env, char **args_out, char **env_out,
                     struct nubo_err *err)
{
    cleanup_json json_t *w =
        json_pack("{s:o, s:o}", "args", pj_strv_new(args, n_args), "env", pj_env_new(env, n_env));
    if (w == NULL)
        return nubo_error_http(err, 500, "store: out of memory");
    char **a = NULL;
    struct nubo_kv *e = NULL;
    size_t na = 0, ne = 0;
    struct nubo_err perr = {0};
    int rc = pj_strv(w, "", "args", false, STORE_MAX_ARGS, STORE_MAX_STR, &a, &na, &perr) < 0 ||
                     pj_env(w, "", "env", false, STORE_MAX_ENV, STORE_MAX_STR, &e, &ne, &perr) < 0
                 ? -1
                 : 0;
    pj_strv_free(a, na);
    pj_env_free(e, ne);
    if (rc < 0)
        return nubo_error_http(err, perr.http_status ?: 400, "%s %s: %s", what, id, perr.msg);
    *args_out = pj_dump(json_object_get(w, "args"));
    *env_out = pj_dump(json_object_get(w, "env"));
    if (*args_out == NULL || *env_out == NULL) {
        free(*args_out);
        free(*env_out);
        return nubo_error_http(err, 500, "store: out of memory");
    }
    return 0;
}

int ctl_store_instance_put(struct ctl_store *s, const struct ctl_instance_row *r,
                           struct nubo_err *err)
{
    cleanup_free char *args = NULL;
    cleanup_free char *env = NULL;
    if (row_lists("instance", r->name, r->args, r->n_args, r->env, r->n_env, &args, &env, err) < 0)
        return -1;
    json_t *pa = json_array();
    for (size_t i = 0; i < r->n_service_ports; i++)
        json_array_append_new(pa, json_integer(r->service_ports[i]));
    cleanup_free char *ports = json_text(pa);
    if (!ports)
        return nubo_error_http(err, 500, "store: out of memory");
    struct ctl_stmt *st = stmt(s, ST_INST_PUT);
    bind_text(st, 1, r->uuid);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->name);
    ctl_bind_int64(st, 4, r->created_at_us);
    bind_text(st, 5, r->image);
    ctl_bind_int64(st, 6, r->memory_mb);
    ctl_bind_int64(st, 7, r->vcpus);
    bind_text(st, 8, args);
    bind_text(st, 9, env);
    ctl_bind_int64(st, 10, (int)r->restart_policy);
    ctl_bind_int64(st, 11, r->features);
    bind_text(st, 12, ports);
    bind_text(st, 13, r->node_uuid);
    bind_text(st, 14, r->metro);
    ctl_bind_int64(st, 15, r->ip_host);
    ctl_bind_int64(st, 16, (int)r->desired);
    ctl_bind_int64(st, 17, r->start_seq);
    ctl_bind_int64(st, 18, r->stop_force);
    ctl_bind_int64(st, 19, r->drain_timeout_ms);
    bind_text(st, 20, r->service_group);
    return step_done(s, st, err, "saving an instance");
}

int ctl_store_s2z_put(struct ctl_store *s, const struct ctl_instance_row *r, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_S2Z_PUT);
    bind_text(st, 1, r->uuid);
    ctl_bind_int64(st, 2, (int)r->s2z.policy);
    ctl_bind_int64(st, 3, r->s2z.stateful);
    ctl_bind_int64(st, 4, r->s2z.cooldown_time_ms);
    ctl_bind_int64(st, 5, r->standby);
    return step_done(s, st, err, "saving scale-to-zero settings");
}

int ctl_store_s2z_load(struct ctl_store *s,
                       int (*cb)(void *arg, const char *uuid, const struct nubo_scale_to_zero *z,
                                 bool standby),
                       void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_S2ZS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        char uuid[NUBO_UUID_STR_LEN + 1];
        col_text(st, 0, uuid, sizeof(uuid));
        struct nubo_scale_to_zero z = {0};
        int pol = ctl_col_int64(st, 1);
        z.policy = pol == NUBO_S2Z_ON || pol == NUBO_S2Z_IDLE ? (enum nubo_s2z_policy)pol
                                                               : NUBO_S2Z_OFF;
        z.stateful = ctl_col_int64(st, 2) != 0;
        z.cooldown_time_ms = ctl_col_int64(st, 3);
        if (z.cooldown_time_ms < 0 || z.cooldown_time_ms > NUBO_S2Z_MAX_COOLDOWN_MS)
            z.cooldown_time_ms = NUBO_S2Z_DEFAULT_COOLDOWN_MS;
        if (cb(arg, uuid, &z, ctl_col_int64(st, 4) != 0) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading scale-to-zero settings: out of memory");
        }
    }
    ctl_stmt_reset(st);
    if (rc != 0)
        return db_err(s, err, "loading scale-to-zero settings");
    return 0;
}

int ctl_store_instance_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_OBS_DEL);
    bind_text(st, 1, uuid);
    if (step_done(s, st, err, "deleting an observation") < 0)
        return -1;
    st = stmt(s, ST_LOG_DEL);
    bind_text(st, 1, uuid);
    if (step_done(s, st, err, "deleting a console tail") < 0)
        return -1;
    st = stmt(s, ST_INST_DEL);
    bind_text(st, 1, uuid);
    return step_done(s, st, err, "deleting an instance");
}

int ctl_store_obs_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_OBS_DEL);
    bind_text(st, 1, uuid);
    return step_done(s, st, err, "deleting an observation");
}

int ctl_store_obs_put(struct ctl_store *s, const struct nubo_status_report *o, struct nubo_err *err)
{
    cleanup_free char *text = json_text(nubo_status_report_encode(o));
    if (text == NULL)
        return nubo_error_http(err, 500, "store: out of memory");
    struct ctl_stmt *st = stmt(s, ST_OBS_PUT);
    bind_text(st, 1, o->uuid);
    bind_text(st, 2, text);
    return step_done(s, st, err, "saving an observation");
}

static json_t *col_json(struct ctl_stmt *st, int i)
{
    const char *t = ctl_col_text(st, i);
    return t ? json_loads(t, 0, NULL) : NULL;
}

static void col_text_json(json_t *o, const char *key, char *buf, size_t size)
{
    const char *t = json_string_value(json_object_get(o, key));
    snprintf(buf, size, "%s", t ? t : "");
}

int ctl_store_instances_load(struct ctl_store *s,
                             int (*cb)(void *, struct ctl_instance_row *,
                                       const struct nubo_status_report *),
                             void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_INSTS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_instance_row r = {0};
        col_text(st, 0, r.uuid, sizeof(r.uuid));
        col_text(st, 1, r.owner, sizeof(r.owner));
        col_text(st, 2, r.name, sizeof(r.name));
        r.created_at_us = ctl_col_int64(st, 3);
        col_text(st, 4, r.image, sizeof(r.image));
        r.memory_mb = ctl_col_int64(st, 5);
        r.vcpus = ctl_col_int64(st, 6);
        json_t *w = json_pack("{s:o?, s:o?, s:o?}", "args", col_json(st, 7), "env", col_json(st, 8),
                              "ports", col_json(st, 11));
        struct nubo_err perr = {0};
        if (w == NULL ||
            pj_strv(w, "", "args", false, STORE_READ_MAX_ITEMS, STORE_READ_MAX_STR, &r.args,
                    &r.n_args, &perr) < 0 ||
            pj_env(w, "", "env", false, STORE_READ_MAX_ITEMS, STORE_READ_MAX_STR, &r.env, &r.n_env,
                   &perr) < 0) {
            json_decref(w);
            ctl_instance_row_free(&r);
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "store: instance %s has a corrupt row: %s", r.uuid, perr.msg);
        }
        json_t *ports = json_object_get(w, "ports");
        r.service_ports = calloc(json_array_size(ports) + 1, sizeof(int64_t));
        for (size_t i = 0; r.service_ports && i < json_array_size(ports); i++)
            r.service_ports[r.n_service_ports++] = json_integer_value(json_array_get(ports, i));
        json_decref(w);
        r.restart_policy = (enum nubo_restart_policy)ctl_col_int64(st, 9);
        r.features = (uint32_t)ctl_col_int64(st, 10);
        col_text(st, 12, r.node_uuid, sizeof(r.node_uuid));
        col_text(st, 13, r.metro, sizeof(r.metro));
        r.ip_host = ctl_col_int64(st, 14);
        r.desired = (enum nubo_desired)ctl_col_int64(st, 15);
        r.start_seq = ctl_col_int64(st, 16);
        r.stop_force = ctl_col_int64(st, 17) != 0;
        r.drain_timeout_ms = ctl_col_int64(st, 18);
        col_text(st, 20, r.service_group, sizeof(r.service_group));
        struct nubo_status_report obs;
        bool has_obs = false;
        json_t *oj = col_json(st, 19);
        if (oj) {
            has_obs = nubo_status_report_decode(oj, "observation", &obs, &perr) == 0;
            if (!has_obs)
                log_warnx("store: dropping the unreadable observation of %s: %s", r.uuid, perr.msg);
            json_decref(oj);
        }
        int crc = cb(arg, &r, has_obs ? &obs : NULL);
        if (has_obs)
            nubo_status_report_free(&obs);
        if (crc < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading instances: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading instances");
}

/* ---- images ---- */

void ctl_image_row_free(struct ctl_image_row *r)
{
    if (r == NULL)
        return;
    pj_strv_free(r->args, r->n_args);
    pj_env_free(r->env, r->n_env);
    r->args = NULL;
    r->env = NULL;
    r->n_args = r->n_env = 0;
}

int ctl_store_image_put(struct ctl_store *s, const struct ctl_image_row *im, struct nubo_err *err)
{
    cleanup_free char *args = NULL;
    cleanup_free char *env = NULL;
    if (row_lists("image", im->digest_ref, im->args, im->n_args, im->env, im->n_env, &args, &env,
                  err) < 0)
        return -1;
    struct ctl_stmt *st = stmt(s, ST_IMG_PUT);
    bind_text(st, 1, im->digest_ref);
    bind_text(st, 2, im->uuid);
    bind_text(st, 3, im->repo);
    bind_text(st, 4, im->owner);
    ctl_bind_int64(st, 5, im->created_at_us);
    ctl_bind_int64(st, 6, im->size_in_bytes);
    ctl_bind_int64(st, 7, im->initrd);
    ctl_bind_int64(st, 8, im->detailed);
    bind_text(st, 9, args);
    bind_text(st, 10, env);
    return step_done(s, st, err, "saving an image");
}

int ctl_store_tag_put(struct ctl_store *s, const char *repo, const char *tag,
                      const char *digest_ref, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_TAG_PUT);
    bind_text(st, 1, repo);
    bind_text(st, 2, tag);
    bind_text(st, 3, digest_ref);
    return step_done(s, st, err, "saving a tag");
}

int ctl_store_image_delete(struct ctl_store *s, const char *digest_ref, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_TAG_DEL_DIGEST);
    bind_text(st, 1, digest_ref);
    if (step_done(s, st, err, "deleting tags") < 0)
        return -1;
    st = stmt(s, ST_IMG_DEL);
    bind_text(st, 1, digest_ref);
    return step_done(s, st, err, "deleting an image");
}

static int read_image(struct ctl_store *s, struct ctl_stmt *st, struct ctl_image_row *out,
                      struct nubo_err *err)
{
    memset(out, 0, sizeof(*out));
    col_text(st, 0, out->digest_ref, sizeof(out->digest_ref));
    col_text(st, 1, out->uuid, sizeof(out->uuid));
    col_text(st, 2, out->repo, sizeof(out->repo));
    col_text(st, 3, out->owner, sizeof(out->owner));
    out->created_at_us = ctl_col_int64(st, 4);
    out->size_in_bytes = ctl_col_int64(st, 5);
    out->initrd = ctl_col_int64(st, 6) != 0;
    out->detailed = ctl_col_int64(st, 7) != 0;
    json_t *w = json_pack("{s:o?, s:o?}", "args", col_json(st, 8), "env", col_json(st, 9));
    struct nubo_err perr = {0};
    int rc = 0;
    if (w == NULL ||
        pj_strv(w, "", "args", false, STORE_READ_MAX_ITEMS, STORE_READ_MAX_STR, &out->args,
                &out->n_args, &perr) < 0 ||
        pj_env(w, "", "env", false, STORE_READ_MAX_ITEMS, STORE_READ_MAX_STR, &out->env,
               &out->n_env, &perr) < 0) {
        ctl_image_row_free(out);
        rc = nubo_error(err, 0, "store: image %s has a corrupt row (%s)", out->digest_ref,
                        w ? perr.msg : "out of memory");
    }
    json_decref(w);
    return rc;
}

static int image_one(struct ctl_store *s, struct ctl_stmt *st, struct ctl_image_row *out,
                     struct nubo_err *err)
{
    int rc = ctl_stmt_step(st);
    int ret;
    struct nubo_err rerr = {0};
    if (rc == 1 && read_image(s, st, out, &rerr) < 0) {
        /* answered as unknown: a lookup then asks the registry, whose answer replaces it */
        log_warnx("%s; treated as absent", rerr.msg);
        ret = 0;
    } else if (rc == 1)
        ret = 1;
    else if (rc == 0)
        ret = 0;
    else
        ret = db_err(s, err, "looking up an image");
    ctl_stmt_reset(st);
    return ret;
}

int ctl_store_image_by_tag(struct ctl_store *s, const char *repo, const char *tag,
                           struct ctl_image_row *out, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_IMG_BY_TAG);
    bind_text(st, 1, repo);
    bind_text(st, 2, tag);
    return image_one(s, st, out, err);
}

int ctl_store_image_by_digest(struct ctl_store *s, const char *digest_ref,
                              struct ctl_image_row *out, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_IMG_BY_DIGEST);
    bind_text(st, 1, digest_ref);
    return image_one(s, st, out, err);
}

int ctl_store_image_by_uuid(struct ctl_store *s, const char *uuid, struct ctl_image_row *out,
                            struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_IMG_BY_UUID);
    bind_text(st, 1, uuid);
    return image_one(s, st, out, err);
}

int ctl_store_images_list(struct ctl_store *s, const char *owner_a, const char *owner_b,
                          int (*cb)(void *, const struct ctl_image_row *), void *arg,
                          struct nubo_err *err)
{
    /* Collect first: cb may run other statements on the same connection. */
    struct ctl_stmt *st = stmt(s, ST_IMGS);
    bind_text(st, 1, owner_a ? owner_a : "");
    bind_text(st, 2, owner_b ? owner_b : "");
    struct ctl_image_row *rows = NULL;
    size_t n = 0, cap = 0;
    int rc, ret = 0;
    while ((rc = ctl_stmt_step(st)) == 1) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct ctl_image_row *nr = realloc(rows, cap * sizeof(*rows));
            if (nr == NULL) {
                ret = nubo_error_http(err, 500, "store: out of memory");
                break;
            }
            rows = nr;
        }
        /* One unreadable row must not fail every user's listing: skip it, say so. */
        struct nubo_err rerr = {0};
        if (read_image(s, st, &rows[n], &rerr) < 0) {
            log_warnx("%s; skipped in the listing", rerr.msg);
            continue;
        }
        n++;
    }
    ctl_stmt_reset(st);
    if (ret == 0 && rc != 0)
        ret = db_err(s, err, "listing images");
    for (size_t i = 0; i < n; i++) {
        if (ret == 0 && cb(arg, &rows[i]) < 0)
            ret = nubo_error_http(err, 500, "listing images: out of memory");
        ctl_image_row_free(&rows[i]);
    }
    free(rows);
    return ret;
}

int ctl_store_image_tags(struct ctl_store *s, const char *digest_ref, char ***tags, size_t *n,
                         struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_IMG_TAGS);
    bind_text(st, 1, digest_ref);
    char **v = calloc(1, sizeof(*v));
    size_t cnt = 0;
    int rc;
    while (v && (rc = ctl_stmt_step(st)) == 1) {
        char **nv = realloc(v, (cnt + 2) * sizeof(*v));
        if (nv == NULL)
            break;
        v = nv;
        v[cnt++] = strdup(ctl_col_text(st, 0));
        v[cnt] = NULL;
    }
    ctl_stmt_reset(st);
    if (v == NULL)
        return nubo_error_http(err, 500, "store: out of memory");
    *tags = v;
    *n = cnt;
    return 0;
}

/* ---- service groups ---- */

static json_t *domains_json(const struct ctl_svc_row *r)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->n_domains; i++)
        json_array_append_new(a, json_pack("{s:s, s:s}", "fqdn", r->domains[i].fqdn, "cert",
                                           r->domains[i].cert));
    return a;
}

int ctl_store_svc_put(struct ctl_store *s, const struct ctl_svc_row *r, struct nubo_err *err)
{
    cleanup_free char *ports = json_text(nubo_svc_ports_encode(r->ports, r->n_ports));
    cleanup_free char *doms = json_text(domains_json(r));
    if (!ports || !doms)
        return nubo_error_http(err, 500, "store: out of memory");
    struct ctl_stmt *st = stmt(s, ST_SVC_PUT);
    bind_text(st, 1, r->uuid);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->name);
    bind_text(st, 4, r->metro);
    ctl_bind_int64(st, 5, r->created_at_us);
    ctl_bind_int64(st, 6, r->persistent);
    ctl_bind_int64(st, 7, r->soft_limit);
    ctl_bind_int64(st, 8, r->hard_limit);
    bind_text(st, 9, ports);
    bind_text(st, 10, doms);
    return step_done(s, st, err, "saving a service group");
}

int ctl_store_svc_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_SVC_DEL);
    bind_text(st, 1, uuid);
    return step_done(s, st, err, "deleting a service group");
}

int ctl_store_svcs_load(struct ctl_store *s, int (*cb)(void *, const struct ctl_svc_row *),
                        void *arg, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_SVCS);
    int rc;
    struct ctl_svc_row *r = malloc(sizeof(*r));
    if (r == NULL)
        return nubo_error(err, 0, "loading service groups: out of memory");
    while ((rc = ctl_stmt_step(st)) == 1) {
        memset(r, 0, sizeof(*r));
        col_text(st, 0, r->uuid, sizeof(r->uuid));
        col_text(st, 1, r->owner, sizeof(r->owner));
        col_text(st, 2, r->name, sizeof(r->name));
        col_text(st, 3, r->metro, sizeof(r->metro));
        r->created_at_us = ctl_col_int64(st, 4);
        r->persistent = ctl_col_int64(st, 5) != 0;
        r->soft_limit = ctl_col_int64(st, 6);
        r->hard_limit = ctl_col_int64(st, 7);
        json_t *ports = col_json(st, 8), *doms = col_json(st, 9);
        struct nubo_err perr = {0};
        int bad = ports == NULL || doms == NULL ||
                  nubo_svc_ports_decode(ports, "services", r->ports, NUBO_SVC_MAX_PORTS,
                                        &r->n_ports, &perr) < 0;
        size_t i;
        json_t *d;
        json_array_foreach(doms, i, d)
        {
            if (i >= NUBO_SVC_MAX_DOMAINS)
                break;
            col_text_json(d, "fqdn", r->domains[i].fqdn, sizeof(r->domains[i].fqdn));
            col_text_json(d, "cert", r->domains[i].cert, sizeof(r->domains[i].cert));
            r->n_domains = i + 1;
        }
        json_decref(ports);
        json_decref(doms);
        if (bad) {
            log_warnx("store: service group %s has a corrupt row (%s); skipped", r->uuid,
                      perr.msg);
            continue;
        }
        if (cb(arg, r) < 0) {
            ctl_stmt_reset(st);
            free(r);
            return nubo_error(err, 0, "loading service groups: out of memory");
        }
    }
    free(r);
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading service groups");
}

/* ---- certificates ---- */

void ctl_cert_row_free(struct ctl_cert_row *r)
{
    if (r == NULL)
        return;
    free(r->chain);
    free(r->pkey);
    r->chain = r->pkey = NULL;
}

int ctl_store_cert_put(struct ctl_store *s, const struct ctl_cert_row *r, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_CERT_PUT);
    bind_text(st, 1, r->uuid);
    bind_text(st, 2, r->owner);
    bind_text(st, 3, r->name);
    bind_text(st, 4, r->cn);
    bind_text(st, 5, r->chain);
    bind_text(st, 6, r->pkey);
    ctl_bind_int64(st, 7, r->created_at_us);
    return step_done(s, st, err, "saving a certificate");
}

int ctl_store_cert_delete(struct ctl_store *s, const char *uuid, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_CERT_DEL);
    bind_text(st, 1, uuid);
    return step_done(s, st, err, "deleting a certificate");
}

int ctl_store_certs_load(struct ctl_store *s, int (*cb)(void *, struct ctl_cert_row *), void *arg,
                         struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_CERTS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        struct ctl_cert_row r = {0};
        col_text(st, 0, r.uuid, sizeof(r.uuid));
        col_text(st, 1, r.owner, sizeof(r.owner));
        col_text(st, 2, r.name, sizeof(r.name));
        col_text(st, 3, r.cn, sizeof(r.cn));
        const char *c = ctl_col_text(st, 4);
        const char *k = ctl_col_text(st, 5);
        r.chain = strdup(c ? c : "");
        r.pkey = strdup(k ? k : "");
        r.created_at_us = ctl_col_int64(st, 6);
        if (r.chain == NULL || r.pkey == NULL || cb(arg, &r) < 0) {
            ctl_cert_row_free(&r);
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading certificates: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading certificates");
}

/* ---- console tails ---- */

int ctl_store_log_put(struct ctl_store *s, const char *uuid, int64_t offset, const void *data,
                      size_t len, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_LOG_PUT);
    bind_text(st, 1, uuid);
    ctl_bind_int64(st, 2, offset);
    ctl_bind_blob(st, 3, data, len);
    return step_done(s, st, err, "saving console output");
}

int ctl_store_log_trim(struct ctl_store *s, const char *uuid, int64_t start, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_LOG_TRIM);
    bind_text(st, 1, uuid);
    ctl_bind_int64(st, 2, start);
    return step_done(s, st, err, "trimming console output");
}

int ctl_store_logs_load(struct ctl_store *s,
                        int (*cb)(void *, const char *, int64_t, const void *, size_t), void *arg,
                        struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_LOGS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        char uuid[NUBO_UUID_STR_LEN + 1];
        col_text(st, 0, uuid, sizeof(uuid));
        size_t len;
        const void *d = ctl_col_blob(st, 2, &len);
        if (cb(arg, uuid, ctl_col_int64(st, 1), d, len) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading console tails: out of memory");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading console tails");
}

/* ---- quotas ---- */

int ctl_store_quota_put(struct ctl_store *s, const char *user_uuid, const char *quota,
                        int64_t hard, struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, hard < 0 ? ST_QUOTA_DEL : ST_QUOTA_PUT);
    bind_text(st, 1, user_uuid);
    bind_text(st, 2, quota);
    if (hard >= 0)
        ctl_bind_int64(st, 3, hard);
    return step_done(s, st, err, "saving a quota");
}

int ctl_store_quotas_load(struct ctl_store *s,
                          int (*cb)(void *, const char *, const char *, int64_t), void *arg,
                          struct nubo_err *err)
{
    struct ctl_stmt *st = stmt(s, ST_QUOTAS);
    int rc;
    while ((rc = ctl_stmt_step(st)) == 1) {
        char user[NUBO_UUID_STR_LEN + 1], quota[32];
        col_text(st, 0, user, sizeof(user));
        col_text(st, 1, quota, sizeof(quota));
        if (cb(arg, user, quota, ctl_col_int64(st, 2)) < 0) {
            ctl_stmt_reset(st);
            return nubo_error(err, 0, "loading quotas");
        }
    }
    ctl_stmt_reset(st);
    return rc == 0 ? 0 : db_err(s, err, "loading quotas");
}
