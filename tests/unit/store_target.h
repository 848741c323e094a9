/* The store a unit test opens: a sqlite file in dir, or, when tests/tools/with-postgres runs
 * the test (NUBO_TEST_PG_URL set), a fresh PostgreSQL database with the same name on that
 * server, so each test starts empty on either backend. Reopening the same name keeps the data. */
#ifndef NUBO_TEST_STORE_TARGET_H
#define NUBO_TEST_STORE_TARGET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

static inline void store_quiet(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

static inline const char *store_pg_url(void)
{
    const char *u = getenv("NUBO_TEST_PG_URL");
    return u && *u ? u : NULL;
}

/* fresh: drop and create the PostgreSQL database (sqlite files start fresh in a new dir). */
static inline void store_target(char *out, size_t size, const char *dir, const char *name,
                                bool fresh)
{
    const char *pg = store_pg_url();
    if (pg == NULL) {
        snprintf(out, size, "%s/%s.db", dir, name);
        return;
    }
    const char *slash = strrchr(pg, '/');
    snprintf(out, size, "%.*s/%s", (int)(slash - pg), pg, name);
    if (!fresh)
        return;
    PGconn *c = PQconnectdb(pg);
    PQsetNoticeProcessor(c, store_quiet, NULL);
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    PQclear(PQexec(c, sql));
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "creating database %s: %s", name, PQerrorMessage(c));
        abort();
    }
    PQclear(r);
    PQfinish(c);
}

#endif
