/* history.c: loch_query_history in catalog.db. An AUTOINCREMENT-free rowid table; every
 * 100th insert deletes rows older than the newest HISTORY_MAX, so the table stays
 * bounded without a delete per query. */
#include "server/history.h"

#include <sqlite3.h>
#include <stdlib.h>

#include "query/query.h"

static const char HISTORY_SCHEMA_SQL[] =
    "CREATE TABLE IF NOT EXISTS loch_query_history ("
    " id INTEGER PRIMARY KEY,"
    " user_name TEXT NOT NULL,"
    " protocol TEXT NOT NULL,"
    " sql TEXT NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL,"
    " rows INTEGER NOT NULL,"
    " bytes_scanned INTEGER NOT NULL,"
    " status TEXT NOT NULL,"
    " sqlstate TEXT NULL,"
    " error TEXT NULL);"
    "CREATE INDEX IF NOT EXISTS loch_query_history_user ON loch_query_history (user_name, id);";

static int db_fail(sqlite3 *db, struct loch_err *err, const char *what)
{
    return loch_errf(err, LOCH_EIO, "catalog: %s: %s", what, sqlite3_errmsg(db));
}

static int ensure_schema(sqlite3 *db, struct loch_err *err)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'loch_query_history'",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot read the schema");
    bool have = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!have && sqlite3_exec(db, HISTORY_SCHEMA_SQL, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot create loch_query_history");
    return 0;
}

static void bind_opt(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static const char INSERT_SQL[] = "INSERT INTO loch_query_history (user_name, protocol, sql, started_ms, duration_ms,"
                                  " rows, bytes_scanned, status, sqlstate, error) VALUES (?,?,?,?,?,?,?,?,?,?)";

int history_record(struct catalog *cat, const struct history_entry *e, struct loch_err *err)
{
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    /* per query: the schema is checked only when the insert cannot be prepared */
    if (sqlite3_prepare_v2(db, INSERT_SQL, -1, &st, NULL) != SQLITE_OK) {
        int rc = ensure_schema(db, err);
        if (rc)
            return rc;
        if (sqlite3_prepare_v2(db, INSERT_SQL, -1, &st, NULL) != SQLITE_OK)
            return db_fail(db, err, "cannot prepare a history insert");
    }
    char *sql = query_redact(e->sql);
    char *msg = e->error ? query_redact(e->error) : NULL;
    bind_opt(st, 1, e->user ? e->user : "?");
    bind_opt(st, 2, e->protocol ? e->protocol : "?");
    bind_opt(st, 3, sql);
    sqlite3_bind_int64(st, 4, e->started_ms);
    sqlite3_bind_int64(st, 5, e->duration_ms);
    sqlite3_bind_int64(st, 6, e->rows);
    sqlite3_bind_int64(st, 7, e->bytes_scanned);
    bind_opt(st, 8, e->status ? e->status : "ok");
    bind_opt(st, 9, e->sqlstate);
    bind_opt(st, 10, msg);
    /* A history row need not survive a power cut (a process crash it does: the WAL is
     * written), so it does not wait for the disk: the query's client is waiting. */
    sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    int step = sqlite3_step(st);
    sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
    sqlite3_finalize(st);
    free(sql);
    free(msg);
    if (step != SQLITE_DONE)
        return db_fail(db, err, "cannot record a query");
    int64_t id = sqlite3_last_insert_rowid(db);
    if (id % 100 == 0) {
        if (sqlite3_prepare_v2(db, "DELETE FROM loch_query_history WHERE id <= ?", -1, &st, NULL) != SQLITE_OK)
            return db_fail(db, err, "cannot prepare a history trim");
        sqlite3_bind_int64(st, 1, id - HISTORY_MAX);
        step = sqlite3_step(st);
        sqlite3_finalize(st);
        if (step != SQLITE_DONE)
            return db_fail(db, err, "cannot trim the query history");
    }
    return 0;
}

static const char *col_text(struct arena *a, sqlite3_stmt *st, int i)
{
    const char *s = (const char *)sqlite3_column_text(st, i);
    return s ? arena_strdup(a, s) : NULL;
}

int history_list(struct catalog *cat, const char *user, size_t limit, struct arena *a, struct history_entry **out,
                 size_t *n_out, struct loch_err *err)
{
    *out = NULL;
    *n_out = 0;
    sqlite3 *db = catalog_db(cat);
    int rc = ensure_schema(db, err);
    if (rc)
        return rc;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, user_name, protocol, sql, started_ms, duration_ms, rows, bytes_scanned, status,"
                           " sqlstate, error FROM loch_query_history WHERE ?1 IS NULL OR user_name = ?1"
                           " ORDER BY id DESC LIMIT ?2",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot prepare a history listing");
    if (user)
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)limit);
    size_t cap = 16, n = 0;
    struct history_entry *v = arena_alloc(a, cap * sizeof *v);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            v = arena_grow(a, v, cap, cap * 2, sizeof *v);
            cap *= 2;
        }
        struct history_entry *e = &v[n++];
        e->id = sqlite3_column_int64(st, 0);
        e->user = col_text(a, st, 1);
        e->protocol = col_text(a, st, 2);
        e->sql = col_text(a, st, 3);
        e->started_ms = sqlite3_column_int64(st, 4);
        e->duration_ms = sqlite3_column_int64(st, 5);
        e->rows = sqlite3_column_int64(st, 6);
        e->bytes_scanned = sqlite3_column_int64(st, 7);
        e->status = col_text(a, st, 8);
        e->sqlstate = col_text(a, st, 9);
        e->error = col_text(a, st, 10);
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return db_fail(db, err, "cannot list the query history");
    *out = v;
    *n_out = n;
    return 0;
}
