/* history.c: loch_query_history in catalog.db (the table is catalog/schema.c's). An
 * AUTOINCREMENT-free rowid table; every 100th insert deletes rows older than the newest
 * HISTORY_MAX, so the table stays bounded without a delete per query. */
#include "server/history.h"

#include <stdlib.h>

#include "query/query.h"

static const char INSERT_SQL[] = "INSERT INTO loch_query_history (user_name, protocol, sql, started_ms, duration_ms,"
                                  " rows, bytes_scanned, status, sqlstate, error) VALUES (?,?,?,?,?,?,?,?,?,?)";

/* Deletes the rows older than the newest HISTORY_MAX below last_id. */
static int trim(struct catalog *cat, int64_t last_id, struct loch_err *err)
{
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat, "DELETE FROM loch_query_history WHERE id <= ?", "cannot trim the query history",
                             &st, err);
    if (rc)
        return rc;
    catalog_bind_int64(st, 1, last_id - HISTORY_MAX);
    int step = catalog_step(st, err);
    catalog_finalize(st);
    return step < 0 ? step : 0;
}

int history_record(struct catalog *cat, const struct history_entry *e, struct loch_err *err)
{
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat, INSERT_SQL, "cannot record a query", &st, err);
    if (rc)
        return rc;
    char *sql = query_redact(e->sql);
    char *msg = e->error ? query_redact(e->error) : NULL;
    catalog_bind_text(st, 1, e->user ? e->user : "?");
    catalog_bind_text(st, 2, e->protocol ? e->protocol : "?");
    catalog_bind_text(st, 3, sql);
    catalog_bind_int64(st, 4, e->started_ms);
    catalog_bind_int64(st, 5, e->duration_ms);
    catalog_bind_int64(st, 6, e->rows);
    catalog_bind_int64(st, 7, e->bytes_scanned);
    catalog_bind_text(st, 8, e->status ? e->status : "ok");
    catalog_bind_text(st, 9, e->sqlstate);
    catalog_bind_text(st, 10, msg);
    /* A history row need not survive a power cut (a process crash it does: the WAL is
     * written), so it does not wait for the disk: the query's client is waiting. */
    catalog_relaxed_sync(cat, true);
    int step = catalog_step(st, err);
    catalog_relaxed_sync(cat, false);
    catalog_finalize(st);
    free(sql);
    free(msg);
    if (step < 0)
        return step;
    int64_t id = catalog_last_insert_id(cat);
    return id % 100 == 0 ? trim(cat, id, err) : 0;
}

static const char *col_text(struct arena *a, struct catalog_stmt *st, int i)
{
    const char *s = catalog_column_text(st, i);
    return s ? arena_strdup(a, s) : NULL;
}

int history_list(struct catalog *cat, const char *user, size_t limit, struct arena *a, struct history_entry **out,
                 size_t *n_out, struct loch_err *err)
{
    *out = NULL;
    *n_out = 0;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "SELECT id, user_name, protocol, sql, started_ms, duration_ms, rows, bytes_scanned,"
                             " status, sqlstate, error FROM loch_query_history WHERE ?1 IS NULL OR user_name = ?1"
                             " ORDER BY id DESC LIMIT ?2",
                             "cannot list the query history", &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, user);
    catalog_bind_int64(st, 2, limit > INT64_MAX ? INT64_MAX : (int64_t)limit);
    size_t cap = 16, n = 0;
    struct history_entry *v = arena_alloc(a, cap * sizeof *v);
    int step;
    while ((step = catalog_step(st, err)) == 1) {
        if (n == cap) {
            v = arena_grow(a, v, cap, cap * 2, sizeof *v);
            cap *= 2;
        }
        struct history_entry *e = &v[n++];
        e->id = catalog_column_int64(st, 0);
        e->user = col_text(a, st, 1);
        e->protocol = col_text(a, st, 2);
        e->sql = col_text(a, st, 3);
        e->started_ms = catalog_column_int64(st, 4);
        e->duration_ms = catalog_column_int64(st, 5);
        e->rows = catalog_column_int64(st, 6);
        e->bytes_scanned = catalog_column_int64(st, 7);
        e->status = col_text(a, st, 8);
        e->sqlstate = col_text(a, st, 9);
        e->error = col_text(a, st, 10);
    }
    catalog_finalize(st);
    if (step < 0)
        return step;
    *out = v;
    *n_out = n;
    return 0;
}
