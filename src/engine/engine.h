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
    /* NULL, or a NULL-terminated list of folders: every file DuckDB reads or writes must
     * then lie below one of them (allowed_directories, external access off), and the
     * configuration is locked so no statement can undo it. Sessions keep UTC. */
    const char *const *confine_to;
    /* NULL, or a folder (created 0700 if missing) that makes this a restricted engine, the
     * one non-administrators' statements run on: its only database is an empty DuckDB
     * file kept in that folder and opened read-only (no statement can create a shared
     * object: tables, views, macros, attached databases), with no file access at all
     * (enable_external_access off, nothing allowed), spilling into a folder of its own
     * beside it, configuration locked. Both are named to DuckDB through a descriptor of the
     * folder (/proc/self/fd/N/...), so no setting or listing shows where the lake lives.
     * confine_to is ignored. */
    const char *restricted_dir;
};

struct engine;       /* one per process: a DuckDB in-memory database */
struct engine_conn;  /* one per session/thread */
struct engine_rows;  /* a materialised result */

/* Opens an in-memory DuckDB database (or, with o->restricted_dir, the restricted kind
 * described there). */
int engine_open(const struct engine_options *o, struct engine **out, struct loch_err *err);
void engine_close(struct engine *e); /* e may be NULL */

/* ---- resource groups: one database per memory limit ----
 * DuckDB's memory_limit belongs to a database, not to a connection; so sessions that must
 * share a memory budget (the members of a role) connect to a database of their own whose
 * memory_limit is that budget. The pool holds one such database per distinct limit. */
struct engine_pool;

/* A pool whose engine for o->memory_mb is base (borrowed: the process engine; NULL: that
 * one is opened on first use too); engines for other limits are opened on first use with
 * o's other options. o is copied; its strings
 * and confine_to list are borrowed and must outlive the pool. */
struct engine_pool *engine_pool_new(struct engine *base, const struct engine_options *o);
/* The engine whose memory_limit is memory_mb (0 = DuckDB's default), opened on first use
 * (thread-safe): a restricted one (o->restricted_dir, which the pool's options must then
 * name; LOCH_EINVAL if not) when restricted, else one like base (restricted_dir unset).
 * Errors as engine_open. *out lives until engine_pool_free. */
int engine_pool_get(struct engine_pool *p, int64_t memory_mb, bool restricted, struct engine **out,
                    struct loch_err *err);
/* Closes the engines the pool opened (never base). No connection to them may remain.
 * p may be NULL. */
void engine_pool_free(struct engine_pool *p);

/* When e is confined (engine_options.confine_to): the real paths (symlinks resolved) of
 * the local folders it may touch, NULL-terminated, owned by e; NULL when it is not. */
const char *const *engine_confined_folders(const struct engine *e);

/* A number that identifies e among every engine this process opened (never reused, unlike
 * its address): for caches of what was created in a database. */
uint64_t engine_id(const struct engine *e);
/* True for an engine opened with engine_options.restricted_dir. */
bool engine_is_restricted(const struct engine *e);

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
/* Row masks apply position deletes inside DuckDB: engine_mask_build runs positions_sql
 * (one BIGINT column: deleted row positions of one data file, 0-based, below nrows) and
 * returns an id; in SQL `loch_keep(id, file_row_number)` is then false for those rows.
 * key names what the positions come from (data file + its delete files, which never
 * change): masks are shared by all connections of the engine, and a later build with the
 * same key and nrows returns the existing mask without running the query. A statement
 * that uses a dropped mask fails with "expired" (it never reads another mask). */
int engine_mask_build(struct engine_conn *c, const char *key, const char *positions_sql, uint64_t nrows,
                      int64_t *id_out, struct loch_err *err);
/* Drops every mask of the engine. No running statement may use them. */
void engine_masks_clear(struct engine_conn *c);
/* When the engine's masks take more than max_bytes, drops those unused for idle_ms; for
 * the start of a statement, so memory stays bounded while running statements (which
 * touched their masks when their views were made) keep theirs. */
void engine_masks_trim(struct engine_conn *c, size_t max_bytes, int64_t idle_ms);
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

/* ---- Prepared statements and streamed results (for servers) ----
 * A statement is prepared once and executed many times with bound parameters; its result
 * arrives chunk by chunk (DuckDB's streaming result: rows are produced as the caller
 * fetches, so a slow reader holds back the query instead of growing memory). While a
 * stream is open, nothing else may run on its connection. */

/* Value types as the wire sees them; every other DuckDB type is ENGINE_T_OTHER and comes
 * back as text (see engine_prepare). */
enum engine_type {
    ENGINE_T_OTHER, ENGINE_T_BOOL, ENGINE_T_INT16, ENGINE_T_INT32, ENGINE_T_INT64,
    ENGINE_T_HUGEINT, ENGINE_T_FLOAT, ENGINE_T_DOUBLE, ENGINE_T_DECIMAL, ENGINE_T_TEXT,
    ENGINE_T_JSON, ENGINE_T_BLOB, ENGINE_T_DATE, ENGINE_T_TIME, ENGINE_T_TIMESTAMP,
    ENGINE_T_TIMESTAMPTZ, ENGINE_T_UUID, ENGINE_T_INTERVAL,
};

struct engine_col {
    const char *name;     /* owned by the statement or stream */
    enum engine_type type;
    int width, scale;     /* DECIMAL only */
};

/* One value read from a chunk. Which member holds it depends on the column's type:
 * i: BOOL (0/1), INT16/32/64, DATE (days since 1970-01-01), TIME (µs since midnight),
 *    TIMESTAMP/TIMESTAMPTZ (µs since 1970-01-01 UTC), DECIMAL (unscaled, when it fits)
 * hi/lo: HUGEINT, wide DECIMAL (unscaled), UUID (the 128 bits as written, big-end first)
 * f: FLOAT/DOUBLE;  p/len: TEXT, JSON, BLOB, OTHER (text);  months/days/i: INTERVAL
 * Dates and timestamps use INT32_MAX/INT64_MAX (and the negated values) for +/-infinity.
 * p points into the chunk: valid until the next fetch. */
struct engine_val {
    int64_t i;
    int64_t hi;
    uint64_t lo;
    double f;
    const char *p;
    size_t len;
    int32_t months, days;
    bool wide;            /* DECIMAL held in hi/lo */
};

struct engine_stmt;
struct engine_stream;
struct engine_chunk;

/* Prepares one statement on c. A SELECT whose columns include types the wire does not
 * carry natively (lists, structs, enums, ...) is wrapped so those columns come back as
 * text. Errors as engine_exec. *out is freed with engine_stmt_free. */
int engine_prepare(struct engine_conn *c, const char *sql, struct engine_stmt **out, struct loch_err *err);
void engine_stmt_free(struct engine_stmt *st); /* st may be NULL */
size_t engine_stmt_nparams(const struct engine_stmt *st);
/* Type DuckDB inferred for parameter i (0-based); ENGINE_T_OTHER when unknown. */
enum engine_type engine_stmt_param_type(const struct engine_stmt *st, size_t i);
/* Result columns known before execution (0 for statements without rows). */
size_t engine_stmt_ncols(const struct engine_stmt *st);
const struct engine_col *engine_stmt_col(const struct engine_stmt *st, size_t i);
/* True when the statement returns rows (SELECT, SHOW, EXPLAIN, ...). */
bool engine_stmt_returns_rows(const struct engine_stmt *st);

/* Binds parameter i (0-based): NULL; text DuckDB casts to the parameter's type; or a typed
 * value. LOCH_EINVAL names the parameter when DuckDB refuses it. */
int engine_bind_null(struct engine_stmt *st, size_t i, struct loch_err *err);
int engine_bind_text(struct engine_stmt *st, size_t i, const char *s, size_t len, struct loch_err *err);
int engine_bind_int(struct engine_stmt *st, size_t i, int64_t v, struct loch_err *err);
int engine_bind_double(struct engine_stmt *st, size_t i, double v, struct loch_err *err);
int engine_bind_bool(struct engine_stmt *st, size_t i, bool v, struct loch_err *err);
int engine_bind_blob(struct engine_stmt *st, size_t i, const void *p, size_t len, struct loch_err *err);
int engine_bind_date(struct engine_stmt *st, size_t i, int32_t days, struct loch_err *err);
int engine_bind_timestamp(struct engine_stmt *st, size_t i, int64_t us, bool tz, struct loch_err *err);

/* Executes st with its bound parameters as a stream. Errors as engine_exec (LOCH_ECANCELED
 * when interrupted). *out is freed with engine_stream_free before st is. */
int engine_execute(struct engine_stmt *st, struct engine_stream **out, struct loch_err *err);
/* A stream over a materialised result (borrowed: r must outlive the stream). */
struct engine_stream *engine_stream_rows(struct engine_rows *r);
size_t engine_stream_ncols(const struct engine_stream *s);
const struct engine_col *engine_stream_col(const struct engine_stream *s, size_t i);
/* Rows changed, for statements without rows (INSERT ... on DuckDB objects). */
int64_t engine_stream_changed(struct engine_stream *s);
/* The next chunk (*out NULL at the end). Errors as engine_exec: a query can fail or be
 * interrupted midway. The chunk is valid until the next call or engine_stream_free. */
int engine_stream_next(struct engine_stream *s, struct engine_chunk **out, struct loch_err *err);
void engine_stream_free(struct engine_stream *s); /* s may be NULL */
/* Fetches the rest of s into memory so its connection is free for other statements (a
 * second portal while one is suspended); engine_stream_next then hands out the buffered
 * chunks. The chunk last returned stays valid. Errors as engine_stream_next (reported
 * now, or by the next engine_stream_next). */
int engine_stream_buffer(struct engine_stream *s, struct loch_err *err);
size_t engine_chunk_rows(const struct engine_chunk *ch);
/* Reads (col, row) into *v; false for SQL NULL. */
bool engine_chunk_get(struct engine_chunk *ch, size_t col, size_t row, struct engine_val *v);

/* ---- Streamed results as Arrow (the C data interface:
 * https://arrow.apache.org/docs/format/CDataInterface.html) ----
 * DuckDB converts; the session's settings decide the details (time zone UTC, so
 * TIMESTAMPTZ is timestamp[us, tz=UTC]; DECIMAL is decimal128; VARCHAR is utf8). */
struct ArrowSchema;
struct ArrowArray;

/* The schema of s's rows: a struct with one child per column. *out (caller-allocated) is
 * the caller's to release (out->release(out)); on error it is left unset and the result
 * is LOCH_EQUERY with DuckDB's message. */
int engine_stream_arrow_schema(struct engine_stream *s, struct ArrowSchema *out, struct loch_err *err);
/* The rows of ch (a chunk of s) as one struct array matching engine_stream_arrow_schema.
 * *out owns copies of the data: it outlives ch and is the caller's to release. Errors as
 * engine_stream_arrow_schema. */
int engine_chunk_to_arrow(struct engine_stream *s, struct engine_chunk *ch, struct ArrowArray *out,
                          struct loch_err *err);

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
