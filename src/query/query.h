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
    struct engine *eng;
    const char *state_dir; /* for writer locks */
};

struct query_session;

int query_session_open(const struct query_env *env, struct query_session **out, struct loch_err *err);
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

/* Splits "a.b.c" into namespace "a.b" and table "c" (in a). LOCH_EINVAL when there is no
 * namespace part. */
int query_split_name(struct arena *a, const char *full, char **ns, char **name, struct loch_err *err);

#endif
