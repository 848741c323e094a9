/* The store's statement layer on PostgreSQL (libpq): the sqlite-dialect SQL store.c writes,
 * translated; statements prepared once per connection; results fetched whole (a row set never
 * stays open on the server, so a callback may run other statements meanwhile).
 *
 * Translation, token by token outside quotes (migration authors: store.c's comment above the
 * migrations repeats the rules):
 *   ?                          -> $1, $2, ...
 *   INTEGER                    -> BIGINT (sqlite integers are 64-bit; times are in µs)
 *   BLOB                       -> BYTEA
 *   BEGIN [IMMEDIATE|DEFERRED] -> BEGIN
 *   INSERT OR IGNORE INTO ...  -> INSERT INTO ... ON CONFLICT DO NOTHING
 *   INSERT OR REPLACE INTO t(c, ...) VALUES(...)
 *                              -> INSERT INTO ... ON CONFLICT(<t's primary key>) DO UPDATE SET
 *                                 c=EXCLUDED.c, ... (the key is read from the server; a
 *                                 conflict on another UNIQUE constraint fails instead of
 *                                 deleting the other row as sqlite would)
 *   CREATE TRIGGER n {AFTER|BEFORE} {DELETE|INSERT|UPDATE} ON t [FOR EACH ROW] BEGIN body END
 *                              -> a plpgsql function n_fn running body, and the trigger
 * and refused with a message naming the construct: PRAGMA, AUTOINCREMENT, rowid, other INSERT OR
 * forms, REPLACE INTO, and sqlite-only functions (ifnull, group_concat, strftime, ...). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libpq-fe.h>

#include "cleanup.h"
#include "log.h"
#include "store_db_impl.h"

#define PG_MAX_PARAMS 64
/* pg_advisory_xact_lock key serializing schema migrations between controllers */
#define PG_MIGRATION_LOCK 0x6e75626f /* "nubo" */

struct pg_db {
    PGconn *conn;
    unsigned next_name;
    struct pg_stmt *persistent; /* prepared again after a reconnect */
    char *fence_sql;            /* store_db.h: ctl_db_set_fence; NULL = off */
    int64_t fence_epoch;
    bool fenced;
};

enum pg_stmt_kind { PK_OTHER, PK_BEGIN, PK_WRITE };

struct pg_stmt {
    char name[24];
    bool persistent;
    char *sql; /* translated */
    enum pg_stmt_kind kind;
    bool unfenced;
    int n_params;
    const char *values[PG_MAX_PARAMS];
    int lengths[PG_MAX_PARAMS];
    int formats[PG_MAX_PARAMS];
    char ints[PG_MAX_PARAMS][24];
    PGresult *res;
    int row, n_rows;
    unsigned char *blob; /* the last column read as a blob, unescaped */
    struct pg_stmt *next;
};

/* ---- translation ---- */

struct sbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void sb_putn(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 256) + n;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_puts(struct sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        b->oom = true;
    else
        sb_putn(b, tmp, (size_t)n);
}

enum tok_kind { T_END, T_SPACE, T_WORD, T_STRING, T_QIDENT, T_PARAM, T_PUNCT };

struct tok {
    enum tok_kind kind;
    const char *s;
    size_t n;
};

/* The token at *pos; quoted text ('' and "" escapes) is one token. */
static struct tok next_tok(const char *sql, size_t *pos)
{
    const char *s = sql + *pos;
    struct tok t = {.s = s, .n = 1};
    if (*s == '\0') {
        t.kind = T_END;
        t.n = 0;
    } else if (isspace((unsigned char)*s)) {
        t.kind = T_SPACE;
        while (isspace((unsigned char)s[t.n]))
            t.n++;
    } else if (isalpha((unsigned char)*s) || *s == '_') {
        t.kind = T_WORD;
        while (isalnum((unsigned char)s[t.n]) || s[t.n] == '_')
            t.n++;
    } else if (*s == '\'' || *s == '"') {
        t.kind = *s == '\'' ? T_STRING : T_QIDENT;
        for (;;) {
            if (s[t.n] == '\0')
                break;
            if (s[t.n] == *s) {
                if (s[t.n + 1] == *s) {
                    t.n += 2;
                    continue;
                }
                t.n++;
                break;
            }
            t.n++;
        }
    } else if (*s == '?') {
        t.kind = T_PARAM;
    } else {
        t.kind = T_PUNCT;
    }
    *pos += t.n;
    return t;
}

static bool word_is(const struct tok *t, const char *w)
{
    return t->kind == T_WORD && strlen(w) == t->n && strncasecmp(t->s, w, t->n) == 0;
}

/* The next token that is not blank. */
static struct tok next_solid(const char *sql, size_t *pos)
{
    struct tok t;
    do
        t = next_tok(sql, pos);
    while (t.kind == T_SPACE);
    return t;
}

static const char *const refused_words[] = {
    "PRAGMA", "AUTOINCREMENT", "ROWID", "GLOB", "IFNULL", "GROUP_CONCAT", "STRFTIME",
    "JULIANDAY", "INSTR", "PRINTF", "DATETIME", "TYPEOF", "RANDOMBLOB", "ZEROBLOB", "TOTAL",
    "COLLATE", "WITHOUT", "VACUUM", "ATTACH",
};

/* Copy sql[pos..end) translating words and placeholders. */
static int generic(const char *sql, size_t pos, size_t end, struct sbuf *out, int *n_params,
                   struct nubo_err *err)
{
    while (pos < end) {
        struct tok t = next_tok(sql, &pos);
        if (t.kind == T_END)
            break;
        if (t.kind == T_PARAM) {
            sb_printf(out, "$%d", ++*n_params);
            continue;
        }
        if (t.kind == T_WORD) {
            if (word_is(&t, "INTEGER")) {
                sb_puts(out, "BIGINT");
                continue;
            }
            if (word_is(&t, "BLOB")) {
                sb_puts(out, "BYTEA");
                continue;
            }
            for (size_t i = 0; i < sizeof(refused_words) / sizeof(refused_words[0]); i++)
                if (word_is(&t, refused_words[i]))
                    return nubo_error(err, 0,
                                      "store: '%.*s' is sqlite-only SQL with no PostgreSQL "
                                      "translation (controller/store_db_pg.c lists the subset)",
                                      (int)t.n, t.s);
        }
        sb_putn(out, t.s, t.n);
    }
    return 0;
}

/* The primary key columns of table, comma-separated, read from the server. */
static int primary_key(struct ctl_db *db, const char *table, struct sbuf *cols,
                       struct nubo_err *err)
{
    const char *v[1] = {table};
    PGresult *r = PQexecParams(db->pg->conn,
                               "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                               "a.attrelid=i.indrelid AND a.attnum=ANY(i.indkey) "
                               "WHERE i.indrelid=$1::regclass AND i.indisprimary "
                               "ORDER BY array_position(i.indkey::int2[], a.attnum)",
                               1, NULL, v, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = nubo_error(err, 0, "store: reading the primary key of %s: %s", table,
                        PQresultErrorMessage(r));
    else if (PQntuples(r) == 0)
        rc = nubo_error(err, 0,
                        "store: INSERT OR REPLACE into %s needs a PRIMARY KEY on PostgreSQL",
                        table);
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        if (i)
            sb_puts(cols, ",");
        sb_puts(cols, PQgetvalue(r, i, 0));
    }
    PQclear(r);
    return rc;
}

static bool in_list(const char *list, const char *w)
{
    size_t n = strlen(w);
    for (const char *p = list; *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncasecmp(p, w, n) == 0)
            return true;
        p += len + (c != NULL);
    }
    return false;
}

/* INSERT OR REPLACE INTO t(c, ...) rest: pos is just after INTO. */
static int translate_replace(struct ctl_db *db, const char *sql, size_t pos, struct sbuf *out,
                             int *n_params, struct nubo_err *err)
{
    if (db == NULL)
        return nubo_error(err, 0, "store: INSERT OR REPLACE needs the server's primary keys");
    size_t start = pos;
    struct tok t = next_solid(sql, &pos);
    char table[128], cols[1024] = "";
    if (t.kind != T_WORD || t.n >= sizeof(table))
        return nubo_error(err, 0, "store: INSERT OR REPLACE: a plain table name must follow INTO");
    snprintf(table, sizeof(table), "%.*s", (int)t.n, t.s);
    t = next_solid(sql, &pos);
    if (t.kind != T_PUNCT || *t.s != '(')
        return nubo_error(err, 0, "store: INSERT OR REPLACE into %s must name its columns",
                          table);
    for (;;) {
        t = next_solid(sql, &pos);
        if (t.kind == T_WORD || (t.kind == T_QIDENT && t.n >= 2)) {
            /* kept as the server names it: unquoted words fold to lower case */
            const char *w = t.kind == T_WORD ? t.s : t.s + 1;
            size_t n = t.kind == T_WORD ? t.n : t.n - 2, l = strlen(cols);
            if (l + n + 2 >= sizeof(cols))
                return nubo_error(err, 0, "store: INSERT OR REPLACE into %s: too many columns",
                                  table);
            if (l)
                cols[l++] = ',';
            for (size_t k = 0; k < n; k++)
                cols[l++] = t.kind == T_WORD ? (char)tolower((unsigned char)w[k]) : w[k];
            cols[l] = '\0';
        } else if (t.kind == T_PUNCT && *t.s == ')')
            break;
        else if (!(t.kind == T_PUNCT && *t.s == ','))
            return nubo_error(err, 0, "store: INSERT OR REPLACE into %s: unreadable column list",
                              table);
    }
    struct sbuf pk = {0};
    if (primary_key(db, table, &pk, err) < 0) {
        free(pk.p);
        return -1;
    }
    sb_puts(out, "INSERT INTO");
    int rc = generic(sql, start, strlen(sql), out, n_params, err);
    if (rc == 0) {
        sb_puts(out, " ON CONFLICT(");
        for (const char *p = pk.p ? pk.p : ""; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            sb_printf(out, "%s\"%.*s\"", p == pk.p ? "" : ",", (int)len, p);
            p += len + (c != NULL);
        }
        sb_puts(out, ") DO ");
        bool any = false;
        for (const char *p = cols; *p;) {
            const char *c = strchr(p, ',');
            size_t len = c ? (size_t)(c - p) : strlen(p);
            char col[128];
            snprintf(col, sizeof(col), "%.*s", (int)len, p);
            if (!in_list(pk.p ? pk.p : "", col)) {
                sb_printf(out, "%s\"%s\"=EXCLUDED.\"%s\"", any ? "," : "UPDATE SET ", col, col);
                any = true;
            }
            p += len + (c != NULL);
        }
        if (!any)
            sb_puts(out, "NOTHING");
    }
    free(pk.p);
    return rc;
}

/* CREATE TRIGGER name {AFTER|BEFORE} event ON table [FOR EACH ROW] BEGIN body END: pos is just
 * after TRIGGER. */
static int translate_trigger(const char *sql, size_t pos, struct sbuf *out, int *n_params,
                             struct nubo_err *err)
{
    struct tok name = next_solid(sql, &pos);
    struct tok when = next_solid(sql, &pos);
    struct tok ev = next_solid(sql, &pos);
    struct tok on = next_solid(sql, &pos);
    struct tok table = next_solid(sql, &pos);
    if (name.kind != T_WORD || !(word_is(&when, "AFTER") || word_is(&when, "BEFORE")) ||
        !(word_is(&ev, "DELETE") || word_is(&ev, "INSERT") || word_is(&ev, "UPDATE")) ||
        !word_is(&on, "ON") || table.kind != T_WORD)
        return nubo_error(err, 0,
                          "store: CREATE TRIGGER translates to PostgreSQL only as "
                          "'CREATE TRIGGER n AFTER|BEFORE DELETE|INSERT|UPDATE ON t BEGIN ... END'");
    struct tok t = next_solid(sql, &pos);
    if (word_is(&t, "FOR")) {
        struct tok e = next_solid(sql, &pos), r = next_solid(sql, &pos);
        if (!word_is(&e, "EACH") || !word_is(&r, "ROW"))
            return nubo_error(err, 0, "store: CREATE TRIGGER %.*s: only FOR EACH ROW",
                              (int)name.n, name.s);
        t = next_solid(sql, &pos);
    }
    if (!word_is(&t, "BEGIN"))
        return nubo_error(err, 0, "store: CREATE TRIGGER %.*s: BEGIN expected (no WHEN clause)",
                          (int)name.n, name.s);
    /* the body ends at the last END */
    size_t body = pos, end = 0, p = pos;
    for (;;) {
        size_t at = p;
        t = next_tok(sql, &p);
        if (t.kind == T_END)
            break;
        if (word_is(&t, "END"))
            end = at;
    }
    if (end == 0)
        return nubo_error(err, 0, "store: CREATE TRIGGER %.*s: END expected", (int)name.n,
                          name.s);
    const char *ret = word_is(&when, "AFTER") ? "NULL" : word_is(&ev, "DELETE") ? "OLD" : "NEW";
    sb_printf(out, "CREATE FUNCTION %.*s_fn() RETURNS trigger LANGUAGE plpgsql AS $nubo$BEGIN ",
              (int)name.n, name.s);
    if (generic(sql, body, end, out, n_params, err) < 0)
        return -1;
    sb_printf(out, " RETURN %s; END$nubo$;", ret);
    sb_printf(out, "CREATE TRIGGER %.*s %.*s %.*s ON %.*s FOR EACH ROW EXECUTE FUNCTION %.*s_fn()",
              (int)name.n, name.s, (int)when.n, when.s, (int)ev.n, ev.s, (int)table.n, table.s,
              (int)name.n, name.s);
    return 0;
}

/* One statement; db NULL: no INSERT OR REPLACE (it needs the server). */
static int translate_one(struct ctl_db *db, const char *sql, struct sbuf *out, int *n_params,
                         struct nubo_err *err)
{
    size_t pos = 0;
    *n_params = 0;
    struct tok a = next_solid(sql, &pos);
    size_t after_a = pos;
    struct tok b = next_solid(sql, &pos);
    size_t after_b = pos;
    struct tok c = next_solid(sql, &pos);
    struct tok d = next_solid(sql, &pos);
    size_t after_d = pos;
    if (word_is(&a, "BEGIN")) {
        if (b.kind == T_END || word_is(&b, "IMMEDIATE") || word_is(&b, "DEFERRED") ||
            word_is(&b, "EXCLUSIVE") || word_is(&b, "TRANSACTION")) {
            sb_puts(out, "BEGIN");
            return 0;
        }
    }
    if (word_is(&a, "CREATE") && word_is(&b, "TRIGGER"))
        return translate_trigger(sql, after_b, out, n_params, err);
    if (word_is(&a, "REPLACE"))
        return nubo_error(err, 0, "store: write INSERT OR REPLACE, not REPLACE INTO");
    if (word_is(&a, "INSERT") && word_is(&b, "OR")) {
        if (!word_is(&d, "INTO"))
            return nubo_error(err, 0, "store: INSERT OR %.*s: INTO expected", (int)c.n, c.s);
        if (word_is(&c, "REPLACE"))
            return translate_replace(db, sql, after_d, out, n_params, err);
        if (word_is(&c, "IGNORE")) {
            sb_puts(out, "INSERT INTO");
            if (generic(sql, after_d, strlen(sql), out, n_params, err) < 0)
                return -1;
            sb_puts(out, " ON CONFLICT DO NOTHING");
            return 0;
        }
        return nubo_error(err, 0, "store: INSERT OR %.*s has no PostgreSQL translation",
                          (int)c.n, c.s);
    }
    (void)after_a;
    return generic(sql, 0, strlen(sql), out, n_params, err);
}

int ctl_db_pg_translate(const char *sql, char **out, int *n_params, struct nubo_err *err)
{
    struct sbuf b = {0};
    int n = 0;
    if (translate_one(NULL, sql, &b, &n, err) < 0 || b.oom) {
        free(b.p);
        return b.oom ? nubo_error(err, 0, "store: out of memory") : -1;
    }
    *out = b.p ? b.p : strdup("");
    *n_params = n;
    return 0;
}

/* ---- connection ---- */

static void one_line(char *dst, size_t size, const char *msg)
{
    snprintf(dst, size, "%s", msg ? msg : "unknown error");
    for (char *p = dst; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    size_t n = strlen(dst);
    while (n && dst[n - 1] == ' ')
        dst[--n] = '\0';
}

static int pg_fail(struct ctl_db *db, const PGresult *r, struct nubo_err *err, const char *what)
{
    one_line(db->errmsg, sizeof(db->errmsg),
             r ? PQresultErrorMessage(r) : PQerrorMessage(db->pg->conn));
    if (db->errmsg[0] == '\0')
        one_line(db->errmsg, sizeof(db->errmsg), PQerrorMessage(db->pg->conn));
    return nubo_error_http(err, 500, "store: %s: %s", what, db->errmsg);
}

static void quiet_notices(void *arg, const char *msg)
{
    (void)arg;
    log_debug("store: postgresql: %s", msg);
}

/* A command without parameters or rows, raw (already PostgreSQL SQL). */
static int pg_command(struct ctl_db *db, const char *sql, struct nubo_err *err, const char *what)
{
    PGresult *r = PQexec(db->pg->conn, sql);
    ExecStatusType s = PQresultStatus(r);
    int rc = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? 0 : pg_fail(db, r, err, what);
    PQclear(r);
    return rc;
}

static int session_setup(struct ctl_db *db, struct nubo_err *err)
{
    PQsetNoticeProcessor(db->pg->conn, quiet_notices, NULL);
    /* an acknowledged write must survive the server's crash: never let a server default of
     * synchronous_commit=off apply to the controller (local, on and remote_* all wait) */
    PGresult *r = PQexec(db->pg->conn, "SHOW synchronous_commit");
    bool off = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
               strcmp(PQgetvalue(r, 0, 0), "off") == 0;
    PQclear(r);
    if (off && pg_command(db, "SET synchronous_commit=on", err, "session setup") < 0)
        return -1;
    return 0;
}

int pg_open(struct ctl_db *db, const char *url, struct nubo_err *err)
{
    db->pg = calloc(1, sizeof(*db->pg));
    if (db->pg == NULL)
        return nubo_error(err, 0, "store: out of memory");
    db->pg->conn = PQconnectdb(url);
    if (db->pg->conn == NULL)
        return nubo_error(err, 0, "store: out of memory");
    if (PQstatus(db->pg->conn) != CONNECTION_OK) {
        char msg[512];
        one_line(msg, sizeof(msg), PQerrorMessage(db->pg->conn));
        /* the URL may carry a password: name the server by its parts instead */
        return nubo_error(err, 0, "cannot connect to PostgreSQL (database %s on %s port %s): %s",
                          PQdb(db->pg->conn), PQhost(db->pg->conn), PQport(db->pg->conn), msg);
    }
    return session_setup(db, err);
}

void pg_close(struct ctl_db *db)
{
    if (db->pg == NULL)
        return;
    if (db->pg->conn)
        PQfinish(db->pg->conn);
    free(db->pg->fence_sql);
    free(db->pg);
    db->pg = NULL;
}

bool pg_in_tx(struct ctl_db *db)
{
    PGTransactionStatusType t = PQtransactionStatus(db->pg->conn);
    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int prepare_on_server(struct ctl_db *db, struct pg_stmt *p, struct nubo_err *err)
{
    PGresult *r = PQprepare(db->pg->conn, p->name, p->sql, p->n_params, NULL);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pg_fail(db, r, err, "preparing a statement");
    PQclear(r);
    return rc;
}

/* A connection the server or network dropped (a failover, a restart) is opened again, and the
 * statements prepared again, before the next statement outside a transaction: the transaction
 * a drop interrupts fails, as it must. */
static int ensure_connected(struct ctl_db *db, struct nubo_err *err)
{
    if (PQstatus(db->pg->conn) == CONNECTION_OK)
        return 0;
    log_warnx("store: the PostgreSQL connection was lost; reconnecting");
    PQreset(db->pg->conn);
    if (PQstatus(db->pg->conn) != CONNECTION_OK)
        return pg_fail(db, NULL, err, "reconnecting to PostgreSQL");
    if (session_setup(db, err) < 0)
        return -1;
    for (struct pg_stmt *p = db->pg->persistent; p; p = p->next)
        if (prepare_on_server(db, p, err) < 0)
            return -1;
    log_info("store: reconnected to PostgreSQL");
    return 0;
}

/* Split sqlite-dialect text at top-level ';' (a trigger's body keeps its own), translate and run
 * each statement in turn, so a table created earlier in the text is known to later ones. */
int pg_exec(struct ctl_db *db, const char *sql, struct nubo_err *err)
{
    if (ensure_connected(db, err) < 0)
        return -1;
    size_t pos = 0, start = 0;
    bool trigger = false, last_end = false;
    int words = 0;
    struct tok first = {0};
    for (;;) {
        struct tok t = next_tok(sql, &pos);
        if (t.kind == T_WORD) {
            if (words == 0)
                first = t;
            else if (words == 1 && word_is(&first, "CREATE") && word_is(&t, "TRIGGER"))
                trigger = true;
            words++;
        }
        bool split = t.kind == T_END || (t.kind == T_PUNCT && *t.s == ';' && (!trigger || last_end));
        if (t.kind != T_SPACE)
            last_end = word_is(&t, "END");
        if (!split)
            continue;
        size_t stop = t.kind == T_END ? pos : pos - 1;
        if (words > 0) {
            char *one = strndup(sql + start, stop - start);
            struct sbuf b = {0};
            int n = 0;
            int rc = one == NULL ? nubo_error(err, 0, "store: out of memory")
                                 : translate_one(db, one, &b, &n, err);
            if (rc == 0 && b.oom)
                rc = nubo_error(err, 0, "store: out of memory");
            if (rc == 0 && n > 0)
                rc = nubo_error(err, 0, "store: a statement run without parameters has '?'");
            if (rc == 0)
                rc = pg_command(db, b.p, err, "running SQL");
            free(one);
            free(b.p);
            if (rc < 0)
                return -1;
        }
        if (t.kind == T_END)
            return 0;
        start = pos;
        words = 0;
        trigger = last_end = false;
    }
}

int pg_begin_migration(struct ctl_db *db, struct nubo_err *err)
{
    char lock[96];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%d)", PG_MIGRATION_LOCK);
    if (ensure_connected(db, err) < 0 || pg_command(db, "BEGIN", err, "begin") < 0)
        return -1;
    /* other controllers starting at once wait here, then see the version this one wrote */
    if (pg_command(db, lock, err, "locking the schema") < 0 ||
        pg_command(db, "CREATE TABLE IF NOT EXISTS nubo_schema(version BIGINT NOT NULL)", err,
                   "creating the schema version table") < 0 ||
        pg_command(db,
                   "INSERT INTO nubo_schema SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM nubo_schema)",
                   err, "creating the schema version") < 0) {
        pg_command(db, "ROLLBACK", NULL, "rollback");
        return -1;
    }
    return 0;
}

int pg_schema_version(struct ctl_db *db, int *version, struct nubo_err *err)
{
    PGresult *r = PQexec(db->pg->conn, "SELECT version FROM nubo_schema");
    int rc = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        *version = atoi(PQgetvalue(r, 0, 0));
    else if (PQresultStatus(r) == PGRES_TUPLES_OK)
        *version = 0;
    else
        rc = pg_fail(db, r, err, "reading the schema version");
    PQclear(r);
    return rc;
}

int pg_schema_version_set(struct ctl_db *db, int version, struct nubo_err *err)
{
    char sql[64];
    snprintf(sql, sizeof(sql), "UPDATE nubo_schema SET version=%d", version);
    return pg_command(db, sql, err, "writing the schema version");
}

/* ---- statements ---- */

int pg_prepare(struct ctl_stmt *st, const char *sql, bool persistent, struct nubo_err *err)
{
    struct ctl_db *db = st->db;
    if (ensure_connected(db, err) < 0)
        return -1;
    struct pg_stmt *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return nubo_error(err, 0, "store: out of memory");
    st->pg = p;
    struct sbuf b = {0};
    if (translate_one(db, sql, &b, &p->n_params, err) < 0 || b.oom) {
        free(b.p);
        return b.oom ? nubo_error(err, 0, "store: out of memory") : -1;
    }
    p->sql = b.p;
    size_t at = 0;
    struct tok first = next_solid(p->sql, &at);
    if (word_is(&first, "BEGIN"))
        p->kind = PK_BEGIN;
    else if (word_is(&first, "INSERT") || word_is(&first, "UPDATE") || word_is(&first, "DELETE"))
        p->kind = PK_WRITE;
    if (p->n_params > PG_MAX_PARAMS)
        return nubo_error(err, 0, "store: a statement has more than %d parameters", PG_MAX_PARAMS);
    p->persistent = persistent;
    p->row = -1;
    if (!persistent)
        return 0; /* run with PQexecParams: one round trip, nothing left on the server */
    snprintf(p->name, sizeof(p->name), "nubo%u", db->pg->next_name++);
    if (prepare_on_server(db, p, err) < 0)
        return -1;
    p->next = db->pg->persistent;
    db->pg->persistent = p;
    return 0;
}

static void clear_result(struct pg_stmt *p)
{
    if (p->res)
        PQclear(p->res);
    p->res = NULL;
    if (p->blob)
        PQfreemem(p->blob);
    p->blob = NULL;
    p->row = -1;
    p->n_rows = 0;
}

void pg_finalize(struct ctl_stmt *st)
{
    struct pg_stmt *p = st->pg;
    if (p == NULL)
        return;
    clear_result(p);
    if (p->persistent && st->db->pg) {
        for (struct pg_stmt **q = &st->db->pg->persistent; *q; q = &(*q)->next)
            if (*q == p) {
                *q = p->next;
                break;
            }
        char sql[48];
        snprintf(sql, sizeof(sql), "DEALLOCATE %s", p->name);
        if (PQstatus(st->db->pg->conn) == CONNECTION_OK)
            PQclear(PQexec(st->db->pg->conn, sql));
    }
    free(p->sql);
    free(p);
    st->pg = NULL;
}

void pg_reset(struct ctl_stmt *st)
{
    struct pg_stmt *p = st->pg;
    clear_result(p);
    memset(p->values, 0, sizeof(p->values));
    memset(p->lengths, 0, sizeof(p->lengths));
    memset(p->formats, 0, sizeof(p->formats));
}

/* ---- fencing ---- */

void pg_set_fence(struct ctl_db *db, const char *check_sql, int64_t epoch)
{
    free(db->pg->fence_sql);
    db->pg->fence_sql = check_sql ? strdup(check_sql) : NULL;
    db->pg->fence_epoch = epoch;
}

bool pg_take_fenced(struct ctl_db *db)
{
    bool f = db->pg->fenced;
    db->pg->fenced = false;
    return f;
}

void pg_unfenced(struct ctl_stmt *st)
{
    st->pg->unfenced = true;
}

/* Inside a transaction: the lease's epoch, read under a share lock, must still be ours. A new
 * leader bumps it with an UPDATE, which waits for this transaction to end; so a write either
 * commits before the new leader's term begins (and the new leader, which loads its state after
 * the bump, sees it) or is refused here. */
static int fence_check(struct ctl_db *db)
{
    struct pg_db *pg = db->pg;
    int64_t epoch = -1;
    if (pg->fence_epoch >= 0) {
        PGresult *r = PQexec(pg->conn, pg->fence_sql);
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            pg_fail(db, r, NULL, "");
            PQclear(r);
            return -1;
        }
        epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        PQclear(r);
        if (epoch == pg->fence_epoch)
            return 0;
    }
    pg->fenced = true;
    snprintf(db->errmsg, sizeof(db->errmsg),
             "write refused: this controller does not lead (lease epoch %lld, ours %lld); retry "
             "on the leader",
             (long long)epoch, (long long)pg->fence_epoch);
    log_warnx("store: %s", db->errmsg);
    return -1;
}

int pg_step(struct ctl_stmt *st)
{
    struct pg_stmt *p = st->pg;
    struct ctl_db *db = st->db;
    if (p->res == NULL) {
        if (!pg_in_tx(db) && ensure_connected(db, NULL) < 0) {
            one_line(db->errmsg, sizeof(db->errmsg), PQerrorMessage(db->pg->conn));
            return -1;
        }
        bool fence = db->pg->fence_sql != NULL && !p->unfenced;
        /* a lone write gets the transaction the check needs */
        bool wrap = fence && p->kind == PK_WRITE && !pg_in_tx(db);
        if (wrap) {
            if (pg_command(db, "BEGIN", NULL, "") < 0)
                return -1;
            if (fence_check(db) < 0) {
                PQclear(PQexec(db->pg->conn, "ROLLBACK"));
                return -1;
            }
        }
        p->res = p->persistent ? PQexecPrepared(db->pg->conn, p->name, p->n_params, p->values,
                                                p->lengths, p->formats, 0)
                               : PQexecParams(db->pg->conn, p->sql, p->n_params, NULL, p->values,
                                              p->lengths, p->formats, 0);
        ExecStatusType s = PQresultStatus(p->res);
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
            pg_fail(db, p->res, NULL, "");
            clear_result(p);
            if (wrap)
                PQclear(PQexec(db->pg->conn, "ROLLBACK"));
            return -1;
        }
        if ((fence && p->kind == PK_BEGIN && fence_check(db) < 0) ||
            (wrap && pg_command(db, "COMMIT", NULL, "") < 0)) {
            clear_result(p);
            if (pg_in_tx(db))
                PQclear(PQexec(db->pg->conn, "ROLLBACK"));
            return -1;
        }
        p->n_rows = s == PGRES_TUPLES_OK ? PQntuples(p->res) : 0;
        p->row = -1;
    }
    if (p->blob)
        PQfreemem(p->blob);
    p->blob = NULL;
    if (p->row + 1 >= p->n_rows) {
        p->row = p->n_rows;
        return 0;
    }
    p->row++;
    return 1;
}

void pg_bind(struct ctl_stmt *st, int i, const char *v, size_t len, bool binary)
{
    struct pg_stmt *p = st->pg;
    if (i < 1 || i > p->n_params)
        return;
    p->values[i - 1] = v;
    p->lengths[i - 1] = binary ? (int)len : 0;
    p->formats[i - 1] = binary ? 1 : 0;
}

void pg_bind_int64(struct ctl_stmt *st, int i, int64_t v)
{
    struct pg_stmt *p = st->pg;
    if (i < 1 || i > p->n_params)
        return;
    snprintf(p->ints[i - 1], sizeof(p->ints[i - 1]), "%lld", (long long)v);
    pg_bind(st, i, p->ints[i - 1], 0, false);
}

static bool have_cell(struct pg_stmt *p, int i)
{
    return p->res && p->row >= 0 && p->row < p->n_rows && i >= 0 && i < PQnfields(p->res);
}

bool pg_col_null(struct ctl_stmt *st, int i)
{
    struct pg_stmt *p = st->pg;
    return !have_cell(p, i) || PQgetisnull(p->res, p->row, i);
}

const char *pg_col_text(struct ctl_stmt *st, int i)
{
    struct pg_stmt *p = st->pg;
    if (pg_col_null(st, i))
        return NULL;
    return PQgetvalue(p->res, p->row, i);
}

const void *pg_col_blob(struct ctl_stmt *st, int i, size_t *len)
{
    struct pg_stmt *p = st->pg;
    *len = 0;
    if (pg_col_null(st, i))
        return NULL;
    if (p->blob)
        PQfreemem(p->blob);
    p->blob = PQunescapeBytea((const unsigned char *)PQgetvalue(p->res, p->row, i), len);
    return p->blob;
}
