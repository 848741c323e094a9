/* Unit tests for controller/store.c: migrations, round trips, and crash-and-reopen: a child
 * commits instances one by one, telling the parent after each commit, and is killed with
 * SIGKILL mid-way; every acknowledged instance must be there after reopening. The same tests
 * run on PostgreSQL under tests/tools/with-postgres (ctest unit.test_store_pg), which adds the
 * checks that the sqlite and PostgreSQL schemas agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store.h"
#include "store_target.h"
#include "util.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/nubo-store-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void make_row(struct ctl_instance_row *r, int i)
{
    memset(r, 0, sizeof(*r));
    nubo_uuid_new(r->uuid);
    snprintf(r->owner, sizeof(r->owner), "acme");
    snprintf(r->name, sizeof(r->name), "app-%d", i);
    r->created_at_us = 1000 + i;
    snprintf(r->image, sizeof(r->image), "acme/app@sha256:%064d", 0);
    r->memory_mb = 128;
    r->vcpus = 1;
    static char *args[] = {"/bin/app", "--flag"};
    static struct nubo_kv env[] = {{"K", "V"}};
    r->args = args;
    r->n_args = 2;
    r->env = env;
    r->n_env = 1;
    snprintf(r->node_uuid, sizeof(r->node_uuid), "%s", "00000000-0000-4000-8000-000000000000");
    snprintf(r->metro, sizeof(r->metro), "fra");
    r->ip_host = 2 + i % 250;
    r->desired = NUBO_DESIRED_RUNNING;
    r->start_seq = 1;
}

struct seen {
    int n;
    char names[4096][NUBO_NAME_MAX + 1];
    bool obs[4096];
};

static int collect(void *arg, struct ctl_instance_row *row, const struct nubo_status_report *obs)
{
    struct seen *s = arg;
    if (s->n < 4096) {
        memcpy(s->names[s->n], row->name, sizeof(s->names[0]));
        s->obs[s->n] = obs != NULL;
        s->n++;
    }
    ctl_instance_row_free(row);
    return 0;
}

static void test_roundtrip(void **state)
{
    char path[256];
    store_target(path, sizeof(path), dir, "rt", true);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct ctl_instance_row r;
    make_row(&r, 1);
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_instance_put(&s, &r, &err), 0);
    struct nubo_status_report o = {
        .state = NUBO_STATE_RUNNING, .start_seq = 1, .boot_time_us = 1234};
    memcpy(o.uuid, r.uuid, sizeof(o.uuid));
    assert_int_equal(ctl_store_obs_put(&s, &o, &err), 0);
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    /* a rolled-back write leaves nothing */
    struct ctl_instance_row r2;
    make_row(&r2, 2);
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_instance_put(&s, &r2, &err), 0);
    ctl_store_rollback(&s);
    ctl_store_close(&s);

    /* reopen: migrations are idempotent, data is there */
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct seen *seen = calloc(1, sizeof(*seen));
    assert_int_equal(ctl_store_instances_load(&s, collect, seen, &err), 0);
    assert_int_equal(seen->n, 1);
    assert_string_equal(seen->names[0], "app-1");
    assert_true(seen->obs[0]);
    /* images and tags */
    struct ctl_image_row im = {.uuid = "11111111-1111-4111-8111-111111111111",
                               .repo = "acme/app",
                               .owner = "acme",
                               .size_in_bytes = 10,
                               .detailed = true};
    snprintf(im.digest_ref, sizeof(im.digest_ref), "acme/app@sha256:%064d", 1);
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_image_put(&s, &im, &err), 0);
    assert_int_equal(ctl_store_tag_put(&s, "acme/app", "latest", im.digest_ref, &err), 0);
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    struct ctl_image_row got;
    assert_int_equal(ctl_store_image_by_tag(&s, "acme/app", "latest", &got, &err), 1);
    assert_string_equal(got.digest_ref, im.digest_ref);
    assert_int_equal(got.size_in_bytes, 10);
    ctl_image_row_free(&got);
    assert_int_equal(ctl_store_image_by_tag(&s, "acme/app", "nope", &got, &err), 0);
    /* a less detailed re-announcement does not erase details */
    im.detailed = false;
    im.size_in_bytes = 1;
    assert_int_equal(ctl_store_image_put(&s, &im, &err), 0);
    assert_int_equal(ctl_store_image_by_digest(&s, im.digest_ref, &got, &err), 1);
    assert_int_equal(got.size_in_bytes, 10);
    ctl_image_row_free(&got);
    assert_int_equal(ctl_store_image_delete(&s, im.digest_ref, &err), 0);
    assert_int_equal(ctl_store_image_by_tag(&s, "acme/app", "latest", &got, &err), 0);
    ctl_store_close(&s);
    free(seen);
}

static void test_crash_and_reopen(void **state)
{
    char path[256];
    store_target(path, sizeof(path), dir, "crash", true);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        struct ctl_store s;
        struct nubo_err err = {0};
        if (ctl_store_open(&s, path, false, &err) < 0)
            _exit(1);
        for (int i = 0;; i++) {
            struct ctl_instance_row r;
            make_row(&r, i);
            if (ctl_store_begin(&s, &err) < 0 || ctl_store_instance_put(&s, &r, &err) < 0 ||
                ctl_store_commit(&s, &err) < 0)
                _exit(1);
            /* acknowledge only after the commit returned */
            if (write(fds[1], &i, sizeof(i)) != sizeof(i))
                _exit(1);
        }
    }
    close(fds[1]);
    int last = -1, v;
    while (last < 300 && read(fds[0], &v, sizeof(v)) == sizeof(v))
        last = v;
    kill(pid, SIGKILL);
    /* drain what was acknowledged before the kill landed */
    while (read(fds[0], &v, sizeof(v)) == sizeof(v))
        last = v;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));

    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct seen *seen = calloc(1, sizeof(*seen));
    assert_int_equal(ctl_store_instances_load(&s, collect, seen, &err), 0);
    ctl_store_close(&s);
    /* every acknowledged instance survived (one more may have committed unacknowledged) */
    assert_true(seen->n >= last + 1);
    assert_true(seen->n <= last + 2);
    for (int i = 0; i <= last; i++) {
        char want[32];
        snprintf(want, sizeof(want), "app-%d", i);
        bool found = false;
        for (int k = 0; k < seen->n && !found; k++)
            found = strcmp(seen->names[k], want) == 0;
        assert_true(found);
    }
    free(seen);
}

/* Schema 2: service groups, certificates, the instance's group, node maintenance and console
 * tails survive a reopen; deleting an instance deletes its tail. */
static int svc_cb(void *arg, const struct ctl_svc_row *r)
{
    memcpy(arg, r, sizeof(*r));
    return 0;
}

static int cert_cb(void *arg, struct ctl_cert_row *r)
{
    struct ctl_cert_row *out = arg;
    ctl_cert_row_free(out);
    *out = *r;
    return 0;
}

struct tails {
    int n;
    int64_t start;
    char data[64];
};

static int tail_cb(void *arg, const char *uuid, int64_t start, const void *data, size_t len)
{
    struct tails *t = arg;
    t->n++;
    t->start = start;
    snprintf(t->data, sizeof(t->data), "%.*s", (int)len, (const char *)data);
    return 0;
}

static int group_of(void *arg, struct ctl_instance_row *row, const struct nubo_status_report *obs)
{
    (void)obs;
    memcpy(arg, row->service_group, sizeof(row->service_group));
    ctl_instance_row_free(row);
    return 0;
}

static int node_cb(void *arg, const struct ctl_node_row *n)
{
    *(bool *)arg = n->maintenance;
    return 0;
}

static void test_services_schema(void **state)
{
    char path[256];
    store_target(path, sizeof(path), dir, "svc", true);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct ctl_svc_row g = {.persistent = false, .soft_limit = 2, .hard_limit = 9,
                            .created_at_us = 5, .n_ports = 2, .n_domains = 1};
    nubo_uuid_new(g.uuid);
    snprintf(g.owner, sizeof(g.owner), "acme");
    snprintf(g.name, sizeof(g.name), "young-night-5fpf0jj8");
    snprintf(g.metro, sizeof(g.metro), "fra");
    g.ports[0] = (struct nubo_ingress_port){443, 8080, NUBO_HANDLER_HTTP | NUBO_HANDLER_TLS};
    g.ports[1] = (struct nubo_ingress_port){80, 443, NUBO_HANDLER_HTTP | NUBO_HANDLER_REDIRECT};
    snprintf(g.domains[0].fqdn, sizeof(g.domains[0].fqdn), "young-night-5fpf0jj8.fra.nubo.local");
    struct ctl_cert_row c = {.created_at_us = 7};
    nubo_uuid_new(c.uuid);
    snprintf(c.owner, sizeof(c.owner), "acme");
    snprintf(c.name, sizeof(c.name), "ex");
    snprintf(c.cn, sizeof(c.cn), "*.example.com");
    c.chain = "-----BEGIN CERTIFICATE-----";
    c.pkey = "-----BEGIN PRIVATE KEY-----";
    struct ctl_instance_row r;
    make_row(&r, 1);
    memcpy(r.service_group, g.uuid, sizeof(r.service_group));
    struct ctl_node_row n = {.memory_mb = 1, .vcpus = 1, .maintenance = true};
    nubo_uuid_new(n.uuid);
    snprintf(n.name, sizeof(n.name), "node-a");
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_svc_put(&s, &g, &err), 0);
    assert_int_equal(ctl_store_cert_put(&s, &c, &err), 0);
    assert_int_equal(ctl_store_instance_put(&s, &r, &err), 0);
    assert_int_equal(ctl_store_node_put(&s, &n, &err), 0);
    assert_int_equal(ctl_store_log_put(&s, r.uuid, 4090, "boot\n", 5, &err), 0);
    assert_int_equal(ctl_store_log_put(&s, r.uuid, 4095, "NUBO_READY\n", 11, &err), 0);
    assert_int_equal(ctl_store_log_trim(&s, r.uuid, 4095, &err), 0); /* drops the first */
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    ctl_store_close(&s);

    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct ctl_svc_row *got = calloc(1, sizeof(*got));
    assert_int_equal(ctl_store_svcs_load(&s, svc_cb, got, &err), 0);
    assert_string_equal(got->uuid, g.uuid);
    assert_false(got->persistent);
    assert_int_equal(got->hard_limit, 9);
    assert_int_equal(got->n_ports, 2);
    assert_int_equal(got->ports[1].handlers, NUBO_HANDLER_HTTP | NUBO_HANDLER_REDIRECT);
    assert_int_equal(got->n_domains, 1);
    assert_string_equal(got->domains[0].fqdn, g.domains[0].fqdn);
    assert_string_equal(got->domains[0].cert, "");
    free(got);
    struct ctl_cert_row gc = {0};
    assert_int_equal(ctl_store_certs_load(&s, cert_cb, &gc, &err), 0);
    assert_string_equal(gc.cn, "*.example.com");
    assert_string_equal(gc.pkey, c.pkey);
    ctl_cert_row_free(&gc);
    char grp[NUBO_UUID_STR_LEN + 1] = "";
    assert_int_equal(ctl_store_instances_load(&s, group_of, grp, &err), 0);
    assert_string_equal(grp, g.uuid);
    bool maint = false;
    assert_int_equal(ctl_store_nodes_load(&s, node_cb, &maint, &err), 0);
    assert_true(maint);
    struct tails t = {0};
    assert_int_equal(ctl_store_logs_load(&s, tail_cb, &t, &err), 0);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.start, 4095);
    assert_string_equal(t.data, "NUBO_READY\n");
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_instance_delete(&s, r.uuid, &err), 0);
    assert_int_equal(ctl_store_svc_delete(&s, g.uuid, &err), 0);
    assert_int_equal(ctl_store_cert_delete(&s, c.uuid, &err), 0);
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    memset(&t, 0, sizeof(t));
    assert_int_equal(ctl_store_logs_load(&s, tail_cb, &t, &err), 0);
    assert_int_equal(t.n, 0);
    ctl_store_close(&s);
}

static int count_images(void *arg, const struct ctl_image_row *r)
{
    (void)r;
    (*(int *)arg)++;
    return 0;
}

/* 9,000 env entries: what one image config held when every user's GET /v1/images answered
 * 500 (the store wrote it, its reader refused it). */
static struct nubo_kv *big_env(size_t n)
{
    struct nubo_kv *env = calloc(n, sizeof(*env));
    assert_non_null(env);
    for (size_t i = 0; i < n; i++) {
        assert_true(asprintf(&env[i].key, "K%zu", i) > 0);
        env[i].value = strdup("v");
    }
    return env;
}

static void test_limits(void **state)
{
    char path[256];
    store_target(path, sizeof(path), dir, "lim", true);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    struct ctl_image_row im = {.uuid = "22222222-2222-4222-8222-222222222222",
                               .repo = "official/big",
                               .owner = "official",
                               .detailed = true};
    snprintf(im.digest_ref, sizeof(im.digest_ref), "official/big@sha256:%064d", 2);
    im.env = big_env(9000);
    im.n_env = 9000;
    /* the writer refuses what the readers refuse, in one line naming the image */
    assert_int_equal(ctl_store_image_put(&s, &im, &err), -1);
    assert_int_equal(err.http_status, 400);
    if (!strstr(err.msg, "image official/big@sha256:") || !strstr(err.msg, "at most 256") ||
        strchr(err.msg, '\n'))
        fail_msg("message: %s", err.msg);
    /* exactly at the limit it is stored and read back */
    im.n_env = NUBO_AGENT_MAX_ENV;
    assert_int_equal(ctl_store_image_put(&s, &im, &err), 0);
    struct ctl_image_row got;
    assert_int_equal(ctl_store_image_by_digest(&s, im.digest_ref, &got, &err), 1);
    assert_int_equal(got.n_env, NUBO_AGENT_MAX_ENV);
    ctl_image_row_free(&got);
    /* a value over the string bound is refused too */
    char *long_v = calloc(1, NUBO_AGENT_MAX_STR + 2);
    memset(long_v, 'x', NUBO_AGENT_MAX_STR + 1);
    char *saved = im.env[0].value;
    im.env[0].value = long_v;
    err = (struct nubo_err){0};
    assert_int_equal(ctl_store_image_put(&s, &im, &err), -1);
    im.env[0].value = saved;
    free(long_v);
    /* instances: the same bound at create time */
    struct ctl_instance_row r;
    make_row(&r, 7);
    r.env = im.env;
    r.n_env = NUBO_AGENT_MAX_ENV + 1;
    err = (struct nubo_err){0};
    assert_int_equal(ctl_store_instance_put(&s, &r, &err), -1);
    if (!strstr(err.msg, "instance app-7: env: must be an object of at most 256"))
        fail_msg("message: %s", err.msg);
    im.n_env = 9000;
    pj_env_free(im.env, im.n_env);

    /* A row an older controller wrote beyond what its reader accepts (2,000 entries, over
     * the reader's 1,024), next to a good one: the listing skips it and answers, a look-up
     * treats it as absent. */
    char *bad_env = calloc(1, 16 * 2000 + 2);
    assert_non_null(bad_env);
    size_t off = 0;
    for (int i = 0; i < 2000; i++)
        off += (size_t)sprintf(bad_env + off, "%s\"K%d\":\"v\"", i ? "," : "{", i);
    strcpy(bad_env + off, "}");
    struct ctl_stmt *st;
    assert_int_equal(ctl_db_prepare(s.db, "INSERT INTO images VALUES(?,?,?,?,?,?,?,?,?,?)",
                                    false, &st, &err),
                     0);
    ctl_bind_text(st, 1,
                  "official/bad@sha256:3333333333333333333333333333333333333333"
                  "333333333333333333333333");
    ctl_bind_text(st, 2, "33333333-3333-4333-8333-333333333333");
    ctl_bind_text(st, 3, "official/bad");
    ctl_bind_text(st, 4, "official");
    ctl_bind_int64(st, 5, 5);
    ctl_bind_int64(st, 6, 1);
    ctl_bind_int64(st, 7, 0);
    ctl_bind_int64(st, 8, 1);
    ctl_bind_text(st, 9, "[]");
    ctl_bind_text(st, 10, bad_env);
    assert_int_equal(ctl_stmt_step(st), 0);
    ctl_stmt_finalize(st);
    free(bad_env);
    int n = 0;
    assert_int_equal(ctl_store_images_list(&s, "official", "acme", count_images, &n, &err), 0);
    assert_int_equal(n, 1); /* official/big, not official/bad */
    assert_int_equal(ctl_store_image_by_digest(&s,
                                               "official/bad@sha256:"
                                               "3333333333333333333333333333333333333333"
                                               "333333333333333333333333",
                                               &got, &err),
                     0);
    ctl_store_close(&s);
}

/* The sqlite-dialect SQL a migration author writes, as PostgreSQL gets it; what has no
 * translation fails with a message naming it. */
static void expect_pg(const char *in, const char *want)
{
    char *out = NULL;
    int n = 0;
    struct nubo_err err = {0};
    if (ctl_db_pg_translate(in, &out, &n, &err) < 0)
        fail_msg("%s: %s", in, err.msg);
    if (strcmp(out, want) != 0)
        fail_msg("%s\n  gave %s\n  want %s", in, out, want);
    free(out);
}

static void expect_refused(const char *in, const char *why)
{
    char *out = NULL;
    int n = 0;
    struct nubo_err err = {0};
    if (ctl_db_pg_translate(in, &out, &n, &err) == 0)
        fail_msg("%s was translated: %s", in, out);
    if (!strstr(err.msg, why))
        fail_msg("%s: message %s", in, err.msg);
}

/* The checkpoint thread keeps the log bounded under a steady write load: 48 MB written in
 * 12,000 commits leave a log of at most about 16 MiB (it used to do nothing, and the log held
 * all of it). sqlite only: PostgreSQL checkpoints by itself. */
static void test_checkpointer_bounds_log(void **state)
{
    if (store_pg_url()) {
        skip();
        return;
    }
    char path[256], wal[300];
    store_target(path, sizeof(path), dir, "ckpt", true);
    snprintf(wal, sizeof(wal), "%s-wal", path);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, path, false, &err), 0);
    assert_int_equal(ctl_store_start_checkpointer(&s, path, &err), 0);
    assert_int_equal(ctl_db_exec(s.db, "CREATE TABLE bulk (b BLOB)", &err), 0);
    for (int i = 0; i < 12000; i++)
        assert_int_equal(ctl_db_exec(s.db, "INSERT INTO bulk VALUES (randomblob(4000))", &err), 0);
    struct stat st = {0};
    bool bounded = false;
    for (int k = 0; k < 100 && !bounded; k++) {
        assert_int_equal(ctl_db_exec(s.db, "INSERT INTO bulk VALUES (randomblob(10))", &err), 0);
        bounded = stat(wal, &st) == 0 && st.st_size <= 20L << 20;
        if (!bounded)
            usleep(100 * 1000);
    }
    if (!bounded)
        fail_msg("the log holds %lld bytes after 48 MB of commits", (long long)st.st_size);
    ctl_store_close(&s);
}

static void test_pg_translation(void **state)
{
    expect_pg("CREATE TABLE t(a TEXT PRIMARY KEY, n INTEGER NOT NULL DEFAULT 0, d BLOB)",
              "CREATE TABLE t(a TEXT PRIMARY KEY, n BIGINT NOT NULL DEFAULT 0, d BYTEA)");
    expect_pg("SELECT a FROM t WHERE a=? AND n<=? AND a<>'?integer'",
              "SELECT a FROM t WHERE a=$1 AND n<=$2 AND a<>'?integer'");
    expect_pg("BEGIN IMMEDIATE", "BEGIN");
    expect_pg("INSERT OR IGNORE INTO t(a,n) VALUES(?,?)",
              "INSERT INTO t(a,n) VALUES($1,$2) ON CONFLICT DO NOTHING");
    expect_pg("ALTER TABLE t ADD COLUMN m INTEGER NOT NULL DEFAULT 0",
              "ALTER TABLE t ADD COLUMN m BIGINT NOT NULL DEFAULT 0");
    expect_pg("CREATE TRIGGER t_gone AFTER DELETE ON t BEGIN DELETE FROM u WHERE a=old.a; END",
              "CREATE FUNCTION t_gone_fn() RETURNS trigger LANGUAGE plpgsql AS $nubo$BEGIN "
              " DELETE FROM u WHERE a=old.a;  RETURN NULL; END$nubo$;"
              "CREATE TRIGGER t_gone AFTER DELETE ON t FOR EACH ROW EXECUTE FUNCTION t_gone_fn()");
    expect_refused("PRAGMA user_version=3", "PRAGMA");
    expect_refused("CREATE TABLE t(id INTEGER PRIMARY KEY AUTOINCREMENT)", "AUTOINCREMENT");
    expect_refused("SELECT ifnull(a,'') FROM t", "ifnull");
    expect_refused("SELECT group_concat(a) FROM t", "group_concat");
    expect_refused("INSERT OR ABORT INTO t(a) VALUES(?)", "INSERT OR ABORT");
    expect_refused("REPLACE INTO t(a) VALUES(?)", "REPLACE INTO");
    expect_refused("CREATE TRIGGER x AFTER DELETE ON t WHEN old.a='' BEGIN SELECT 1; END", "WHEN");
    /* INSERT OR REPLACE needs the table's key from the server (checked on PostgreSQL by every
     * statement store.c prepares) */
    expect_refused("INSERT OR REPLACE INTO t(a) VALUES(?)", "primary keys");
}

struct schema_cols {
    char text[16384];
};

static void schema_columns(struct ctl_store *s, const char *sql, struct schema_cols *out)
{
    struct ctl_stmt *st;
    struct nubo_err err = {0};
    if (ctl_db_prepare(s->db, sql, false, &st, &err) < 0)
        fail_msg("%s", err.msg);
    size_t off = 0;
    out->text[0] = '\0';
    while (ctl_stmt_step(st) == 1 && off < sizeof(out->text) - 256)
        off += (size_t)snprintf(out->text + off, sizeof(out->text) - off, "%s.%s %s\n",
                                ctl_col_text(st, 0), ctl_col_text(st, 1), ctl_col_text(st, 2));
    ctl_stmt_finalize(st);
}

/* Every table and column, nullability included, is the same on both backends after all the
 * migrations: a migration whose translation changed the schema fails here. */
static void test_pg_schema_parity(void **state)
{
    if (store_pg_url() == NULL)
        skip(); /* the sqlite-only run; unit.test_store_pg runs it */
    char lite_path[256], pg[256];
    snprintf(lite_path, sizeof(lite_path), "%s/parity.db", dir);
    store_target(pg, sizeof(pg), dir, "parity", true);
    struct ctl_store a, b;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&a, lite_path, false, &err), 0);
    if (ctl_store_open(&b, pg, false, &err) < 0)
        fail_msg("%s", err.msg);
    struct schema_cols *ca = calloc(1, sizeof(*ca)), *cb = calloc(1, sizeof(*cb));
    schema_columns(&a,
                   "SELECT m.name, p.name, CASE WHEN p.\"notnull\" OR p.pk THEN 'NO' ELSE 'YES' "
                   "END FROM sqlite_master m, pragma_table_info(m.name) p WHERE m.type='table' "
                   "ORDER BY 1, 2",
                   ca);
    schema_columns(&b,
                   "SELECT table_name, column_name, is_nullable FROM information_schema.columns "
                   "WHERE table_schema='public' AND table_name<>'nubo_schema' ORDER BY 1, 2",
                   cb);
    if (strcmp(ca->text, cb->text) != 0)
        fail_msg("schemas differ\n-- sqlite\n%s-- postgresql\n%s", ca->text, cb->text);
    assert_true(strlen(ca->text) > 100);
    free(ca);
    free(cb);
    ctl_store_close(&a);
    ctl_store_close(&b);
}

static int count_users(void *arg, const struct ctl_user_row *u)
{
    (void)u;
    (*(int *)arg)++;
    return 0;
}

/* The server drops the controller's connection (a restart, a failover): the statement in flight
 * fails, the next one reconnects, prepares the statements again and works. */
static void test_pg_reconnect(void **state)
{
    if (store_pg_url() == NULL)
        skip();
    char url[256];
    store_target(url, sizeof(url), dir, "reconn", true);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, url, false, &err), 0);
    struct ctl_user_row u = {.uuid = "u-1", .name = "acme", .created_at_us = 1};
    assert_int_equal(ctl_store_user_insert(&s, &u, &err), 0);
    struct ctl_stmt *st;
    assert_int_equal(ctl_db_prepare(s.db, "SELECT pg_backend_pid()", false, &st, &err), 0);
    assert_int_equal(ctl_stmt_step(st), 1);
    char kill_sql[96];
    snprintf(kill_sql, sizeof(kill_sql), "SELECT pg_terminate_backend(%s)", ctl_col_text(st, 0));
    ctl_stmt_finalize(st);
    PGconn *c = PQconnectdb(url);
    PGresult *r = PQexec(c, kill_sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    PQclear(r);
    PQfinish(c);
    int n = 0;
    err = (struct nubo_err){0};
    (void)ctl_store_users_load(&s, count_users, &n, &err); /* may fail: the dropped one */
    n = 0;
    if (ctl_store_users_load(&s, count_users, &n, &err) < 0)
        fail_msg("after the reconnect: %s", err.msg);
    assert_int_equal(n, 1);
    struct ctl_user_row u2 = {.uuid = "u-2", .name = "beta", .created_at_us = 2};
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_user_insert(&s, &u2, &err), 0);
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    ctl_store_close(&s);
}

/* The fence (store_db.h): a store whose epoch is no longer the lease's writes nothing, in a
 * transaction or alone, and says so once; the lease's own statement still runs, and a store
 * with the lease's epoch writes. The check is what leader.c installs. */
static void test_pg_fence(void **state)
{
    if (store_pg_url() == NULL)
        skip();
    char url[256];
    store_target(url, sizeof(url), dir, "fence", true);
    struct ctl_store s;
    struct nubo_err err = {0};
    assert_int_equal(ctl_store_open(&s, url, false, &err), 0);
    const char *check = "SET LOCAL idle_in_transaction_session_timeout=3000;"
                        "SELECT epoch FROM leader_lease WHERE id=1 FOR SHARE";
    assert_int_equal(ctl_db_exec(s.db, "UPDATE leader_lease SET epoch=7", &err), 0);
    ctl_db_set_fence(s.db, check, 7);
    struct ctl_user_row u = {.uuid = "u-1", .name = "acme", .created_at_us = 1};
    assert_int_equal(ctl_store_begin(&s, &err), 0);
    assert_int_equal(ctl_store_user_insert(&s, &u, &err), 0);
    assert_int_equal(ctl_store_commit(&s, &err), 0);
    assert_false(ctl_db_take_fenced(s.db));
    /* another controller takes over */
    PGconn *c = PQconnectdb(url);
    PQclear(PQexec(c, "UPDATE leader_lease SET epoch=8"));
    struct ctl_user_row u2 = {.uuid = "u-2", .name = "beta", .created_at_us = 2};
    assert_int_equal(ctl_store_begin(&s, &err), -1);
    assert_non_null(strstr(err.msg, "write refused"));
    assert_false(ctl_db_in_tx(s.db));
    err = (struct nubo_err){0};
    assert_int_equal(ctl_store_user_insert(&s, &u2, &err), -1); /* alone: wrapped, refused */
    assert_non_null(strstr(err.msg, "lease epoch 8, ours 7"));
    assert_false(ctl_db_in_tx(s.db));
    assert_true(ctl_db_take_fenced(s.db));
    assert_false(ctl_db_take_fenced(s.db));
    PGresult *r = PQexec(c, "SELECT count(*) FROM users");
    assert_string_equal(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    /* the lease statement is exempt; with the new epoch writes pass again */
    struct ctl_stmt *st;
    assert_int_equal(
        ctl_db_prepare(s.db, "UPDATE leader_lease SET holder=? WHERE id=1", false, &st, &err), 0);
    ctl_stmt_unfenced(st);
    ctl_bind_text(st, 1, "me");
    assert_int_equal(ctl_stmt_step(st), 0);
    ctl_stmt_finalize(st);
    ctl_db_set_fence(s.db, check, 8);
    err = (struct nubo_err){0};
    if (ctl_store_user_insert(&s, &u2, &err) < 0)
        fail_msg("%s", err.msg);
    r = PQexec(c, "SELECT count(*) FROM users");
    assert_string_equal(PQgetvalue(r, 0, 0), "2");
    PQclear(r);
    PQfinish(c);
    ctl_store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),       cmocka_unit_test(test_crash_and_reopen),
        cmocka_unit_test(test_services_schema), cmocka_unit_test(test_limits),
        cmocka_unit_test(test_pg_translation),  cmocka_unit_test(test_pg_schema_parity),
        cmocka_unit_test(test_pg_reconnect),    cmocka_unit_test(test_pg_fence),
        cmocka_unit_test(test_checkpointer_bounds_log),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
