/* sink.h: opening and creating lake tables under their writer locks, rows ->
 * Iceberg-ready Parquet files (data files with field ids, ZSTD, column metrics;
 * position-delete files) and the commit of several tables' changes, with the caller's
 * checkpoint, in one catalog transaction. The C API every writer uses: `loch load`, SQL
 * DML, the CDC applier and maintenance. Not for reading rows (query/) or metadata formats
 * (iceberg/).
 *
 * Rows come as SQL text that DuckDB runs on the caller's connection, so staging, casting
 * and sorting stay inside the engine. */
#ifndef LOCH_SINK_SINK_H
#define LOCH_SINK_SINK_H

#include "catalog/catalog.h"
#include "engine/engine.h"
#include "iceberg/table.h"
#include "store/store.h"

/* Maps a DuckDB column type (as engine_rows_type spells it) to the natural Iceberg type.
 * LOCH_EUNSUPPORTED (naming column and type, with a CAST hint) for nested types and
 * intervals. */
int sink_type_from_duckdb(const char *duck_type, const char *column, struct iceberg_type *out,
                          struct loch_err *err);

/* Builds the schema (ids 1..n, all optional) for the columns of select_sql. */
int sink_schema_of_query(struct engine_conn *c, const char *select_sql, struct arena *a,
                         struct iceberg_schema **out, struct loch_err *err);

/* Writes the rows of select_sql as ONE Parquet data file under <m->location>/data/.
 * select_sql must yield the current schema's columns in order (any castable types;
 * each is cast to its Iceberg type). *out (strings in a) describes the file, with
 * metrics from the Parquet footer. When the query yields no row, no file is kept and
 * out->record_count is 0. */
int sink_write_data(struct engine_conn *c, struct store *st, const struct iceberg_metadata *m,
                    const char *select_sql, struct arena *a, struct iceberg_data_file *out,
                    struct loch_err *err);

/* What the caller of sink_write_deletes knows of its rows: they come sorted by (file_path,
 * pos) already (a table filled in that order, read without ORDER BY: DuckDB keeps
 * insertion order), and single_file is the one data file they all reference, or NULL
 * when they reference several. */
struct sink_deletes_known {
    const char *single_file;
};

/* Writes a position-delete file (spec "Position Delete Files") from select_sql, which
 * must yield (file_path VARCHAR, pos BIGINT). The spec wants them sorted by file_path,
 * then pos: with known == NULL they are sorted here and the file read back for its one
 * referenced data file; known says both instead. Same contract for empty results as
 * sink_write_data. */
int sink_write_deletes(struct engine_conn *c, struct store *st, const struct iceberg_metadata *m,
                       const char *select_sql, const struct sink_deletes_known *known, struct arena *a,
                       struct iceberg_data_file *out, struct loch_err *err);

/* One table's part of a commit. */
struct sink_table_change {
    const char *ns, *name;
    const char *base_location;     /* metadata file the change was built on; NULL = new table */
    struct iceberg_change *change;
};

/* Writes each change's metadata, then moves every table pointer and writes kv in ONE
 * catalog transaction (catalog_commit), then refreshes version hints. LOCH_ECONFLICT
 * when another writer moved a table first: nothing is visible, the caller may rebuild
 * and retry. Arena a holds the transaction's allocations. */
int sink_commit(struct catalog *cat, struct store *st, struct sink_table_change *t, size_t n,
                const struct catalog_kv *kv, size_t n_kv, struct arena *a, struct loch_err *err);

/* Serialises writers of one table across processes: an exclusive lock on
 * <state_dir>/locks/<ns>.<name>.lock (0600, never through a symlink), held until
 * sink_unlock. Blocks while another process holds it. LOCH_ENAME (nothing created)
 * when catalog_check_name refuses ns or name; *fd_out is then -1. */
int sink_lock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err);
void sink_unlock(int fd);

/* sink_lock that does not wait: LOCH_ECONFLICT (*fd_out -1) when another writer holds it. */
int sink_trylock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err);

/* The commit lock of ns.name (<state_dir>/locks/commit/<ns>.<name>.lock, released by
 * sink_unlock): held by a writer that commits to a table whose writer lock another holds
 * (maintenance beside replication) from its last look at the catalog pointer to its
 * commit, and by the applier across each flush, which first reloads what moved. So a
 * flush never commits deletes computed against files a rewrite removed, and a rewrite
 * validates against every flush that landed before it. Blocks while held. */
int sink_commit_lock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err);

/* ---- opening and creating a lake table (table.c): the one place that does ---- */

/* A lake table as a writer opens it: the catalog's pointer and the metadata it names. */
struct sink_table {
    const char *ns, *name;        /* in the arena it was opened with */
    const char *location;         /* metadata file the catalog points at: a change's base */
    struct iceberg_metadata *md;  /* in that arena */
    int lock_fd;                  /* writer lock (sink_table_open_locked), else -1 */
};

/* Opens ns.name: the catalog's pointer, then the metadata file it names (all in a).
 * LOCH_ENOENT when the catalog has no such table; the store's or parser's error for the
 * metadata file. out->lock_fd is -1: no lock is taken (readers, or callers that hold
 * the table's writer lock already). */
int sink_table_open(struct catalog *cat, struct store *st, const char *ns, const char *name, struct arena *a,
                    struct sink_table *out, struct loch_err *err);

/* sink_lock, then sink_table_open: on success the caller holds ns.name's writer lock
 * until sink_table_close(out); on error nothing is held. Blocks while another writer
 * holds the lock. LOCH_ENAME when the names are refused. */
int sink_table_open_locked(struct catalog *cat, struct store *st, const char *state_dir, const char *ns,
                           const char *name, struct arena *a, struct sink_table *out, struct loch_err *err);

/* Releases t's writer lock, if it holds one; its memory stays in its arena. t may be NULL. */
void sink_table_close(struct sink_table *t);

/* True when the catalog has ns.name (scratch in a). Any catalog error reads as false. */
bool sink_table_exists(struct catalog *cat, const char *ns, const char *name, struct arena *a);

/* A new table's first rows: select_sql (the schema's columns in order) run on conn. */
struct sink_first_rows {
    struct engine_conn *conn;
    const char *select_sql;
};

/* Creates ns.name with schema: its location <warehouse>/<ns parts as folders>/<name>,
 * metadata v1, and the catalog pointer; with rows, their data file is the first
 * snapshot, committed with the pointer in one sink_commit, so no reader sees the table
 * empty (*n_rows, when not NULL, is how many). The caller holds the table's writer lock
 * (sink_lock). LOCH_ENAME (nothing written) when catalog_check_name refuses a name, so
 * no path is built from a name that could leave the warehouse; LOCH_EEXIST (nothing
 * written) when the catalog has the table already; the catalog's error when another
 * process created it meanwhile without its lock (its v1 file is then an orphan for
 * maintenance). Arena a holds
 * the allocations. */
int sink_table_create(struct catalog *cat, struct store *st, const char *ns, const char *name,
                      const struct iceberg_schema *schema, const struct sink_first_rows *rows, struct arena *a,
                      int64_t *n_rows, struct loch_err *err);

#endif
