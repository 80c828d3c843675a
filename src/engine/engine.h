/* engine.h: the one place loch talks to DuckDB's C API: the process database, its
 * connections, statements and results. Not for SQL text building (sink/, query/) or for
 * security decisions (access/, query/guard).
 *
 * Every DuckDB handle made here is destroyed here, on every path. */
#ifndef LOCH_ENGINE_ENGINE_H
#define LOCH_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"

struct engine_options {
    int threads;            /* 0 = DuckDB default (all cores) */
    int64_t memory_mb;      /* 0 = DuckDB default */
    const char *temp_dir;   /* spill folder; NULL = DuckDB default */
};

struct engine;       /* one per process: a DuckDB in-memory database */
struct engine_conn;  /* one per session/thread */
struct engine_rows;  /* a materialised result */

/* Opens an in-memory DuckDB database. */
int engine_open(const struct engine_options *o, struct engine **out, struct loch_err *err);
void engine_close(struct engine *e); /* e may be NULL */

/* A connection whose session time zone is UTC. */
int engine_connect(struct engine *e, struct engine_conn **out, struct loch_err *err);
void engine_disconnect(struct engine_conn *c); /* c may be NULL */

/* Runs sql (one or more statements), discarding results. On error: LOCH_ESYNTAX for
 * parser errors, LOCH_ENOENT for missing catalog objects, LOCH_ECANCELED when
 * interrupted, LOCH_EQUERY otherwise, with DuckDB's message. */
int engine_exec(struct engine_conn *c, const char *sql, struct loch_err *err);
/* Runs one statement and materialises its result; *out is freed with engine_rows_free. */
int engine_query(struct engine_conn *c, const char *sql, struct engine_rows **out, struct loch_err *err);
/* Like engine_query, for results shown to people: TIMESTAMPTZ/TIMETZ columns of a SELECT
 * come back as text in the session's zone (UTC), since the value-to-text accessor
 * (engine_rows_text) has no zone. Internal queries that need the real types use
 * engine_query. */
int engine_query_text(struct engine_conn *c, const char *sql, struct engine_rows **out, struct loch_err *err);
/* Interrupts the statement running on c (from another thread). */
void engine_interrupt(struct engine_conn *c);

enum engine_kind { ENGINE_KIND_TEXT, ENGINE_KIND_NUMBER, ENGINE_KIND_BOOL };

size_t engine_rows_count(const struct engine_rows *r);
size_t engine_rows_ncols(const struct engine_rows *r);
const char *engine_rows_name(const struct engine_rows *r, size_t col);
/* DuckDB's spelling of the column type ("DECIMAL(18,2)"), malloc'd into a. */
char *engine_rows_type(struct engine_rows *r, size_t col, struct arena *a);
enum engine_kind engine_rows_kind(struct engine_rows *r, size_t col);
bool engine_rows_null(struct engine_rows *r, size_t col, size_t row);
/* The value as text (DuckDB's cast to VARCHAR), copied into a; NULL for SQL NULL. */
char *engine_rows_text(struct engine_rows *r, size_t col, size_t row, struct arena *a);
int64_t engine_rows_int(struct engine_rows *r, size_t col, size_t row);
/* Rows changed for INSERT/UPDATE/DELETE/COPY statements. */
int64_t engine_rows_changed(struct engine_rows *r);
void engine_rows_free(struct engine_rows *r); /* r may be NULL */


/* ---- appenders: fast row loading into a table (CDC staging) ---- */
struct engine_appender;
/* Opens an appender on table (catalog may be NULL = default; "temp" for temp tables,
 * schema NULL = main). Rows are buffered; engine_appender_flush makes them visible. */
int engine_appender_open(struct engine_conn *c, const char *catalog, const char *table,
                         struct engine_appender **out, struct loch_err *err);
/* Appends one value of the current row: text (len bytes; s NULL = SQL NULL) or an int. */
void engine_append_text(struct engine_appender *ap, const char *s, size_t len);
void engine_append_int(struct engine_appender *ap, int64_t v);
/* Ends the current row; LOCH_EENGINE (with DuckDB's message) when a value did not fit. */
int engine_append_end_row(struct engine_appender *ap, struct loch_err *err);
int engine_appender_flush(struct engine_appender *ap, struct loch_err *err);
/* Flushes what is buffered (errors ignored) and destroys. ap may be NULL. */
void engine_appender_close(struct engine_appender *ap);

#endif
