/* internal.h: what session.c, view.c and write.c share inside query/. */
#ifndef LOCH_QUERY_INTERNAL_H
#define LOCH_QUERY_INTERNAL_H

#include <jansson.h>

#include "iceberg/prune.h"
#include "iceberg/table.h"
#include "query/lex.h"
#include "query/query.h"
#include "sink/sink.h"

struct query_session {
    struct query_env env;
    /* The process engine's connection: lake views, writes, everything an administrator
     * runs. Only sessions opened as an administrator have one (NULL otherwise). */
    struct engine_conn *conn;
    /* The restricted engine's connection (env.restricted), opened on the first statement
     * that is not an administrator's: every such statement runs here and nowhere else. */
    struct engine_conn *rconn;
    struct arena *stmt_arena; /* lifetime: one statement */
    struct engine_rows *last;
    char **attached;          /* DuckDB catalogs attached for namespaces */
    size_t n_attached;
    char *user;               /* the principal; NULL = the local administrator */
    int64_t scanned;          /* query_scanned_bytes: file bytes its views cover; -1 unknown */
    uint64_t prune_seq;       /* names this connection's pruned views: __loch_prune_<n> */
    bool no_prune;            /* query_set_pruning(s, false): statements read whole tables */
    struct buf prune_report;  /* a line per lake table reference of the last statement */
};

/* A lake table loaded for one statement. */
struct lake_table {
    const char *ns, *name;
    const char *location;             /* metadata file */
    struct iceberg_metadata *md;
};

int lake_load(struct query_session *s, const char *ns, const char *name, struct lake_table *t,
              struct loch_err *err);
/* Creates (or replaces) the DuckDB view for t at snapshot_id (-1 current) named
 * view_name in t's namespace; positional adds __loch_file/__loch_pos columns. Adds the
 * bytes of the files the view reads (data and delete files) to s->scanned unless that is
 * unknown (-1). */
int lake_view(struct query_session *s, struct lake_table *t, int64_t snapshot_id, const char *view_name,
              bool positional, struct iceberg_prune_stats *ps, struct loch_err *err);
/* A view of t at snapshot_id (-1 current) reading only the files filter leaves (and the
 * delete files that apply to them): a TEMP view temp.main.<temp_name> of s's connection,
 * so no other session or later statement takes it for the whole table. *ps gets the
 * files and bytes before and after pruning; the bytes after are added to s->scanned.
 * plan (may be NULL: planned here) is t's plan of snapshot_id, pruned in place. */
int lake_view_pruned(struct query_session *s, struct lake_table *t, int64_t snapshot_id,
                     const struct iceberg_expr *filter, const char *temp_name, struct iceberg_scan *plan,
                     struct iceberg_prune_stats *ps, struct loch_err *err);
/* The SQL-quoted DuckDB name for a view in namespace ns: "core"."public"."x". */
char *lake_view_ident(struct query_session *s, const char *ns, const char *view_name);
/* True when the view view_name of namespace ns was last made, in this session's database,
 * as the current state of the table whose metadata file is location (nothing to redo);
 * *ps (may be NULL) then counts the files it reads. */
bool lake_view_fresh(struct query_session *s, const char *ns, const char *view_name, const char *location,
                     struct iceberg_prune_stats *ps);
/* The plan cache (plancache.c): the metadata of the table whose metadata file is
 * location, read once per process and kept. *t is filled (its md shared, read-only);
 * *ref holds it until lake_plan_release, which the caller must call after its last use
 * of t->md and of plans from lake_plan_scan (in the same statement). */
struct plan_entry;
int lake_plan_table(struct query_session *s, const char *ns, const char *name, const char *location,
                    struct lake_table *t, struct plan_entry **ref, struct loch_err *err);
/* The live files of snapshot (-1 current) of ref's table, planned once and kept; *out is
 * the caller's copy in s->stmt_arena (arrays its own, files' strings and stats shared). */
int lake_plan_scan(struct query_session *s, struct plan_entry *ref, int64_t snapshot, struct iceberg_scan **out,
                   struct loch_err *err);
void lake_plan_release(struct plan_entry *ref); /* ref may be NULL */

/* The filter that the WHERE of select (a SELECT_NODE whose FROM is exactly the table
 * reference ref, both from DuckDB's parse tree) puts on the rows of that table, whose
 * columns are sc's, as far as it can prune files (predicates.c): comparisons, BETWEEN,
 * IN, IS [NOT] NULL of a column with constants, under AND and OR. Constants are cast by
 * DuckDB on s's connection. NULL when nothing prunes; never an error (a doubt is no
 * filter). Lives in s->stmt_arena. */
struct iceberg_expr *query_predicates(struct query_session *s, json_t *select, json_t *ref,
                                      const struct iceberg_schema *sc);
/* Makes every lake table visible (for statements DuckDB cannot serialise). Which of them
 * the statement reads is then unknown: s->scanned becomes -1. */
int lake_view_all(struct query_session *s, struct loch_err *err);

/* Parses DuckDB's json_serialize_sql text (its 2^64-1 "no location" made to fit
 * jansson); NULL when malformed. The caller json_decref's it. */
json_t *duck_json_parse(const char *text);
/* The text of a tree from duck_json_parse, as json_deserialize_sql takes it (malloc'd). */
char *duck_json_dump(const json_t *j);

/* The statement guard for non-administrators (guard.c). DuckDB parses st's text on c (the
 * restricted connection); when that is one SELECT that names no relation but CTEs in
 * scope and object-free catalog relations, no table function outside an allow-list and
 * no engine-describing function, *sql_out (in s->stmt_arena) is DuckDB's text for that
 * very tree: the one thing the caller may execute. Else LOCH_EPERM naming what was
 * refused, LOCH_ESYNTAX for a parse error or more than one statement. */
int guard_check(struct query_session *s, struct engine_conn *c, const struct stmt *st, char **sql_out,
                struct loch_err *err);
/* The command tag loch answers itself for a non-administrator's transaction control
 * (BEGIN, COMMIT, ...) and SET/RESET of a client setting; NULL for anything else. Nothing
 * of such a statement reaches DuckDB. */
const char *guard_answer(const struct stmt *st);

/* For statements of administrators in a confined engine (engine_confined_folders; 0 at
 * once when the engine is not confined): resolves every file path sql names before it
 * runs - table function arguments (read_text, read_csv, glob, ..., query('...') checked
 * as SQL), unqualified names DuckDB reads as files, the targets of COPY ... TO / FROM,
 * EXPORT and IMPORT DATABASE, ATTACH - with globs expanded and symlinks followed (for a
 * write target: the nearest existing folder on its way, and symlinks below a target
 * folder). Returns 0, or LOCH_EPERM (SQLSTATE 42501) naming the first path that resolves
 * outside the engine's folders, or a table function whose path is computed (it cannot
 * be known before it runs). Uses s->conn (DuckDB parses) and s->stmt_arena. */
int query_paths_check(struct query_session *s, const char *sql, struct loch_err *err);

/* Handles a write statement on a lake table. *handled false: not a lake write. */
int write_try(struct query_session *s, const struct stmt *st, bool *handled, const char **tag,
              struct loch_err *err);

/* Serialises changes to the shared DuckDB catalog made for reading (view.c). */
void lake_catalog_lock(void);
void lake_catalog_unlock(void);

/* True for the local administrator and members of admin (session.c). */
bool session_admin(struct query_session *s);

#endif
