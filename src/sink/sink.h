/* sink.h: rows -> Iceberg-ready Parquet files (data files with field ids, ZSTD, column
 * metrics; position-delete files) and the commit of several tables' changes, with the
 * caller's checkpoint, in one catalog transaction. The C API every writer uses: `loch
 * load`, SQL DML and the CDC sources. Not for reading (query/) or metadata formats
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

/* The location of a new table: *out = <warehouse>/<ns parts as folders>/<name> (in a).
 * LOCH_ENAME when catalog_check_name refuses ns or name (*out NULL): no path is built
 * from a name that could leave the warehouse. */
int sink_table_location(struct arena *a, const char *warehouse_root, const char *ns, const char *name, char **out,
                        struct loch_err *err);

#endif
