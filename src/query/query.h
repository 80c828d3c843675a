/* query.h: SQL sessions over the lake. A session owns a DuckDB connection in which every
 * lake table a statement names becomes a view over its live Parquet files (deletes
 * applied, columns mapped by field id); `AT (VERSION => id)` / `AT (TIMESTAMP => ts)`
 * read earlier snapshots; write statements (CREATE TABLE, INSERT, UPDATE, DELETE,
 * ALTER TABLE, DROP TABLE) on lake tables become Iceberg commits.
 * Not for authentication or grants (access/), nor for wire formats (server/, cmd/). */
#ifndef LOCH_QUERY_QUERY_H
#define LOCH_QUERY_QUERY_H

#include <stdint.h>

#include "catalog/catalog.h"
#include "engine/engine.h"
#include "store/store.h"

struct query_env {
    struct catalog *cat;
    struct store *st;
    struct engine *eng;         /* the process engine: administrators' statements */
    const char *state_dir;      /* for writer locks */
    /* The restricted engine (engine_options.restricted_dir): every statement of a
     * principal that is not an administrator runs there, and only there. NULL: such
     * statements are refused. */
    struct engine *restricted;
};

struct query_session;

/* A session of the local administrator (`loch sql`, `loch load`): everything allowed. */
int query_session_open(const struct query_env *env, struct query_session **out, struct loch_err *err);
/* A session of principal `user` (copied). A session is an administrator's only when user
 * is a member of admin when it opens (then it connects to env->eng) and still is at each
 * statement; every other statement runs on env->restricted, which holds no lake data and
 * reaches no file (a role granted later applies from the next session). Until grants
 * exist, a non-administrator may only run SELECTs that name no lake table, no file and
 * no table function outside a short allow-list (range, generate_series, unnest), plus
 * transaction control, SET of a few client settings (answered by loch) and ALTER USER
 * <self> [WITH] PASSWORD '...'; anything else is LOCH_EPERM (SQLSTATE 42501) naming
 * what was refused. What DuckDB executes for them is its own text of the tree that was
 * checked, never the client's text. */
int query_session_open_as(const struct query_env *env, const char *user, struct query_session **out,
                          struct loch_err *err);
/* The session's principal ("admin" for the local administrator). */
const char *query_session_user(const struct query_session *s);
void query_session_close(struct query_session *s); /* s may be NULL */

/* One statement's outcome: rows (owned by the session until the next statement or
 * close; NULL for commands) and a command tag ("SELECT 3", "DELETE 5", "ALTER TABLE"). */
struct query_result {
    struct engine_rows *rows;
    const char *tag;
};

typedef int (*query_emit_fn)(void *ctx, const struct query_result *r);

/* Runs the statements of sql in order, calling emit after each. Stops at the first
 * error (earlier statements stay done: each write statement is its own commit) and
 * returns it with the statement's position in err. */
int query_run(struct query_session *s, const char *sql, query_emit_fn emit, void *ctx, struct loch_err *err);

/* ---- For servers: statements one at a time, results streamed ---- */

/* One statement of a script: its text (NUL-terminated, no ';') and where it starts. */
struct query_piece {
    const char *text;
    size_t off;
};

/* Splits sql into statements (outside quotes and comments; empty ones dropped), in a.
 * LOCH_ESYNTAX with the position of an unterminated quote or comment. */
int query_split(struct arena *a, const char *sql, struct query_piece **out, size_t *n_out, struct loch_err *err);

/* True when the statement produces rows and runs through query_prepare (SELECT, WITH,
 * VALUES, TABLE, FROM, SHOW, DESCRIBE, EXPLAIN, SUMMARIZE, PIVOT, PRAGMA, CALL, parenthesised
 * queries); everything else goes through query_run, which knows lake writes. */
bool query_is_read(const char *sql);

/* Prepares one read statement for streaming: the lake tables it names become views (AT
 * clauses rewritten to snapshot views), then DuckDB prepares it ($1.. parameters kept).
 * Errors as query_run. *out belongs to the caller (engine_stmt_free), and must be freed
 * before the session is closed. */
int query_prepare(struct query_session *s, const char *sql, struct engine_stmt **out, struct loch_err *err);

/* Whether the statements prepared next may read pruned views (on by default). A pruned
 * view is the files one statement's WHERE selects in the snapshot current when it was
 * prepared: right for a statement run at once, stale for one kept and executed later (a
 * named prepared statement), which should be prepared with pruning off: it then reads the
 * table's shared view, which later statements keep current. */
void query_set_pruning(struct query_session *s, bool on);
/* Before a kept statement (one prepared earlier, pruning off) runs again: makes the lake
 * views its text names read the tables' current snapshots, as query_prepare did when it
 * was prepared (DuckDB re-binds a prepared statement whose views changed). Nothing for a
 * session that is not an administrator's (it reads no lake view). Errors as
 * query_prepare. */
int query_refresh(struct query_session *s, const char *sql, struct loch_err *err);

/* True when sql reads PostgreSQL's or DuckDB's catalog (pg_catalog., information_schema.,
 * pg_class and friends, duckdb_*()). query_prepare refuses such statements (42501) to
 * non-administrators: the catalog shows the lake views of every session. */
bool query_is_catalog(const char *sql);

/* For administrators, prepares a catalog query of psql or JDBC against a PostgreSQL-
 * shaped description of the lake (pgcompat.c); *handled false for anything else (and for
 * other principals, whose catalog queries go through query_prepare and the guard). */
int query_prepare_catalog(struct query_session *s, const char *sql, struct engine_stmt **out, bool *handled,
                          struct loch_err *err);

/* intercept.c: what a PostgreSQL client sends that loch answers itself, with no DuckDB
 * (for every principal: so none of it reaches DuckDB for a non-administrator either).
 * The server_version loch reports to PostgreSQL clients. */
#define QUERY_SERVER_VERSION "16.0 (loch)"

/* A client's session state those answers read and change. The caller owns it: app_name
 * is malloc'd (free it at the end); user is borrowed for the session's life. */
struct query_client {
    char txn;          /* 'I' idle, 'T' in a transaction block, 'E' failed block */
    char *app_name;    /* application_name, NULL until set */
    const char *user;  /* the logged-in principal */
    bool admin;        /* shown as is_superuser */
};

enum query_intercept {
    QUERY_IC_NONE, /* not one of them: run the statement */
    QUERY_IC_DONE, /* answered: send out->tag as the command tag */
    QUERY_IC_ROWS, /* answered with one text row: column out->name, value out->value */
};

struct query_answer {
    const char *tag, *name, *value; /* static, or in the arena given */
};

/* Recognises SET/RESET/SHOW of client parameters (application_name, DateStyle, ... which
 * change nothing in DuckDB), BEGIN/START TRANSACTION/COMMIT/END/ROLLBACK/ABORT (which move
 * c->txn) and DISCARD/UNLISTEN in the text of one statement; SET application_name updates
 * c->app_name. Fills *out (strings static or in a) for QUERY_IC_DONE / _ROWS. Never fails. */
enum query_intercept query_intercept(struct query_client *c, struct arena *a, const char *sql,
                                     struct query_answer *out);

/* The output column names of a SELECT, read from its text (each top-level item of the
 * first select list, named by its alias or its last identifier): for catalog queries loch
 * cannot answer, so the client still gets a result of the shape it asked for, with no
 * rows (JDBC refuses "no results" from executeQuery). *out (OUT: in a) has the names;
 * returns their number (0, *out NULL, when there is no SELECT). */
size_t query_guess_columns(struct arena *a, const char *sql, char ***out);

/* The bytes scanned by the last statement prepared (query_prepare, query_prepare_catalog)
 * or script run (query_run, summed over its statements): the file_size_in_bytes of the
 * data and delete files that scan planning selected for every lake table reference it
 * reads, not bytes decompressed. 0 when it read no lake table; -1 when unknown (statements
 * DuckDB cannot describe, and lake writes, make every table's view: which they read is
 * not known). */
int64_t query_scanned_bytes(const struct query_session *s);

/* Interrupts the statement running in s, from another thread (CancelRequest, timeouts). */
void query_interrupt(struct query_session *s);

/* A copy of sql (malloc'd) safe for logs and query history: the literal after every
 * PASSWORD keyword becomes '********'. */
char *query_redact(const char *sql);

/* The DuckDB reader for a local file: format "csv", "json" or "parquet", or NULL to go by
 * the file name's extension (.csv/.tsv/.txt, .json/.ndjson/.jsonl, .parquet; a .gz or .zst
 * suffix aside). NULL when it cannot be told. */
const char *query_file_reader(const char *path, const char *format);
/* Loads the file at path into lake table ns.name in an administrator's session s: the
 * table is created from the file when missing (*created true), else the file's rows are
 * appended by column name. CSV columns DuckDB would read as DOUBLE stay exact DECIMALs
 * when every value is a plain decimal. *rows is the rows loaded. Errors: LOCH_EPERM for a
 * non-administrator, LOCH_EINVAL for an unknown format, LOCH_ENOENT for a missing file,
 * else query_run's. */
int query_load_file(struct query_session *s, const char *ns, const char *name, const char *path, const char *format,
                    int64_t *rows, bool *created, struct loch_err *err);

/* Splits "a.b.c" into namespace "a.b" and table "c" (in a). LOCH_EINVAL when there is no
 * namespace part. */
int query_split_name(struct arena *a, const char *full, char **ns, char **name, struct loch_err *err);

#endif
