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

/* A session of the local administrator (`loch sql`, `loch load`): everything allowed. */
int query_session_open(const struct query_env *env, struct query_session **out, struct loch_err *err);
/* A session of principal `user` (copied). Whether it is an administrator (principal_is_admin)
 * is decided again for every statement. Until grants exist, a non-administrator may only
 * run SELECTs that name no lake table, no file and no table function outside a short
 * allow-list (range, generate_series, unnest), plus transaction control and SET of a few
 * client settings; anything else is LOCH_EPERM (SQLSTATE 42501) naming what was refused.
 * Deny by default: no path of a non-administrator reaches a file. */
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

/* A copy of sql (malloc'd) safe for logs and query history: the literal after every
 * PASSWORD keyword becomes '********'. */
char *query_redact(const char *sql);

/* Splits "a.b.c" into namespace "a.b" and table "c" (in a). LOCH_EINVAL when there is no
 * namespace part. */
int query_split_name(struct arena *a, const char *full, char **ns, char **name, struct loch_err *err);

#endif
