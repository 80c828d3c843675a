/* sql.c: the statement door for the modules that own loch_* tables (access/,
 * server/history.c): they write their SQL, catalog/ keeps the SQLite handle and maps its
 * errors (cat_db_err), so no module outside catalog/ includes sqlite3.h.
 * Not for creating tables (schema.c) or for the Iceberg tables (catalog.c). */
#include "catalog/internal.h"

#include <limits.h>
#include <stdlib.h>

#include "base/mem.h"

struct catalog_stmt {
    struct catalog *c;
    sqlite3_stmt *st;
    const char *what;
};

int catalog_prepare(struct catalog *c, const char *sql, const char *what, struct catalog_stmt **out,
                    struct loch_err *err)
{
    *out = NULL;
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(c->db, sql, -1, &st, NULL) != SQLITE_OK)
        return cat_db_err(c, err, what);
    struct catalog_stmt *s = xmalloc(sizeof *s);
    *s = (struct catalog_stmt){.c = c, .st = st, .what = what};
    *out = s;
    return 0;
}

void catalog_bind_text(struct catalog_stmt *s, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(s->st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s->st, i);
}

void catalog_bind_textn(struct catalog_stmt *s, int i, const char *v, size_t len)
{
    if (v && len <= INT_MAX)
        sqlite3_bind_text(s->st, i, v, (int)len, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(s->st, i);
}

void catalog_bind_int64(struct catalog_stmt *s, int i, int64_t v) { sqlite3_bind_int64(s->st, i, v); }

int catalog_step(struct catalog_stmt *s, struct loch_err *err)
{
    int step = sqlite3_step(s->st);
    if (step == SQLITE_ROW)
        return 1;
    if (step == SQLITE_DONE)
        return 0;
    return cat_db_err(s->c, err, s->what);
}

const char *catalog_column_text(struct catalog_stmt *s, int i)
{
    return (const char *)sqlite3_column_text(s->st, i);
}

int64_t catalog_column_int64(struct catalog_stmt *s, int i) { return sqlite3_column_int64(s->st, i); }

void catalog_reset(struct catalog_stmt *s) { sqlite3_reset(s->st); }

void catalog_finalize(struct catalog_stmt *s)
{
    if (!s)
        return;
    sqlite3_finalize(s->st);
    free(s);
}

int64_t catalog_changes(struct catalog *c) { return sqlite3_changes(c->db); }

int64_t catalog_last_insert_id(struct catalog *c) { return sqlite3_last_insert_rowid(c->db); }

void catalog_relaxed_sync(struct catalog *c, bool relaxed)
{
    /* a PRAGMA that names a known value cannot fail */
    sqlite3_exec(c->db, relaxed ? "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL", NULL, NULL, NULL);
}
