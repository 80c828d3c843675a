/* table.h: Iceberg tables through a store: load metadata, stage a change (added data
 * files, position-delete files, a new schema) and write it as one snapshot's worth of
 * manifests + manifest list + metadata file; plan scans of any snapshot; evolve schemas.
 * Not for the catalog pointer move (catalog_commit does it, so several tables move in one
 * transaction) or for writing Parquet (sink/).
 *
 * Metadata files are named <location>/metadata/v<N>.metadata.json and written with
 * STORE_NO_OVERWRITE; manifests and lists get fresh UUID names. Nothing is visible to
 * readers until the catalog pointer moves, so a crash leaves only orphans. */
#ifndef LOCH_ICEBERG_TABLE_H
#define LOCH_ICEBERG_TABLE_H

#include "iceberg/iceberg.h"
#include "store/store.h"

/* Reads and parses the metadata file at metadata_location. */
int iceberg_table_load(struct store *s, const char *metadata_location, struct arena *a,
                       struct iceberg_metadata **out, struct loch_err *err);

/* Writes the first metadata file (v1, no snapshot) of a new table at m->location.
 * *out_location (in a) is the metadata file URI to create in the catalog. When that
 * location already holds metadata (a dropped table's files, a create that crashed before
 * its catalog entry), the table gets its own location beside it, m->location + "-<8 hex>",
 * and m->location is updated: write data files after this call. */
int iceberg_table_create(struct store *s, struct iceberg_metadata *m, struct arena *a,
                         const char **out_location, struct loch_err *err);

/* A pending change to one table. Lives in arena a (the transaction's lifetime). */
struct iceberg_change;

/* base_location is the metadata file base was read from (it goes into metadata-log). */
struct iceberg_change *iceberg_change_begin(struct arena *a, const struct iceberg_metadata *base,
                                            const char *base_location);
/* Adds a data file (content DATA) or position-delete file (POSITION_DELETES); copied. */
void iceberg_change_add_file(struct iceberg_change *c, const struct iceberg_data_file *f);
/* Removes a live data or position-delete file of the base (copied): a rewrite. Its
 * manifest entry becomes DELETED and the snapshot's operation "replace"; the caller adds
 * the files that replace it, with the same live rows. */
void iceberg_change_remove_file(struct iceberg_change *c, const struct iceberg_data_file *f);
/* The data sequence number the change's added data files get (a rewrite passes that of
 * the snapshot it read, so deletes committed since still apply to the new files); by
 * default they get the new snapshot's. */
void iceberg_change_set_data_sequence(struct iceberg_change *c, int64_t seq);
/* Makes s (copied; schema_id assigned here) the current schema; last-column-id is raised
 * to the highest field id of s. */
void iceberg_change_set_schema(struct iceberg_change *c, const struct iceberg_schema *s);
/* Sets a summary property of the snapshot (e.g. "loch.source-position"). */
/* Makes the table's default sort order the identity fields f[0..n) (copied; n == 0: the
 * unsorted order 0). An order equal to one the table has is reused, else added with the
 * next id (spec "Sort Orders"). Field ids must be in the current (or new) schema. */
void iceberg_change_set_sort_order(struct iceberg_change *c, const struct iceberg_sort_field *f, size_t n);
void iceberg_change_set_summary(struct iceberg_change *c, const char *key, const char *value);
/* Expires snapshots: those older than before_ms (ms since the epoch), except the current
 * one and the newest retain_last, leave the metadata (spec "Snapshot Expiration"); the
 * files only they reached become unreferenced (see iceberg_table_references). */
void iceberg_change_expire_snapshots(struct iceberg_change *c, int64_t before_ms, size_t retain_last);
/* How many snapshots of the base the staged expiry removes. */
size_t iceberg_change_expiring(const struct iceberg_change *c);
/* The URI of the i-th file added (data files, then delete files); NULL past the last. */
const char *iceberg_change_file(const struct iceberg_change *c, size_t i);
/* True when nothing was staged (an expiry that removes nothing counts as nothing). */
bool iceberg_change_empty(const struct iceberg_change *c);

/* Writes manifests, manifest list and the next metadata file. When files were added,
 * a new snapshot becomes current (operation append / delete / overwrite); a schema-only
 * change writes new metadata without a snapshot. *out_location and *out_metadata (in the
 * change's arena) describe the result; the caller then moves the catalog pointer from
 * base_location to *out_location. LOCH_EEXIST when another writer took the version. */
int iceberg_change_write(struct iceberg_change *c, struct store *s, const char **out_location,
                         struct iceberg_metadata **out_metadata, struct loch_err *err);

/* After a successful catalog commit: writes metadata/version-hint.text for path-based
 * readers (DuckDB iceberg_scan, Hadoop tables). Best effort: errors are only returned. */
int iceberg_table_write_hint(struct store *s, const struct iceberg_metadata *m,
                             const char *metadata_location, struct loch_err *err);

/* Every object the table's metadata reaches: metadata_location, the metadata-log files,
 * version-hint.text, and for every snapshot its manifest list, manifests and data and
 * delete files. *out (sorted, unique, in a) is for iceberg_references_has; an object
 * under the table location that is not in it is unreferenced (expired or orphaned). */
int iceberg_table_references(struct store *s, const struct iceberg_metadata *m, const char *metadata_location,
                             struct arena *a, const char ***out, size_t *n_out, struct loch_err *err);
bool iceberg_references_has(const char *const *refs, size_t n, const char *uri);

/* ---- scan planning (spec "Scan Planning") ---- */
struct iceberg_scan {
    const struct iceberg_schema *schema; /* schema of the snapshot read (or current) */
    int64_t snapshot_id;                 /* -1: table has no snapshot (empty) */
    size_t n_data;
    struct iceberg_data_file *data;      /* live data files */
    size_t n_deletes;
    struct iceberg_data_file *deletes;   /* live position-delete files */
    int64_t total_records;               /* sum of data record counts (before deletes) */
};

/* Lists the live files of snapshot_id (-1 = current) by reading its manifest list and
 * manifests. The schema used is the snapshot's schema-id when recorded, else current.
 * LOCH_ENOENT when the snapshot does not exist. */
int iceberg_scan_plan(struct store *s, const struct iceberg_metadata *m, int64_t snapshot_id,
                      struct arena *a, struct iceberg_scan **out, struct loch_err *err);

/* ---- schema evolution (spec "Schema Evolution"); each returns a new schema in a ---- */
/* Adds an optional column with a new id (m->last_column_id + 1, or above the ids in cur). */
int iceberg_schema_add_column(struct arena *a, const struct iceberg_metadata *m,
                              const struct iceberg_schema *cur, const char *name,
                              const struct iceberg_type *t, struct iceberg_schema **out,
                              struct loch_err *err);
/* Refuses identifier (primary-key) columns and the last column. */
int iceberg_schema_drop_column(struct arena *a, const struct iceberg_schema *cur, const char *name,
                               struct iceberg_schema **out, struct loch_err *err);
int iceberg_schema_rename_column(struct arena *a, const struct iceberg_schema *cur, const char *from,
                                 const char *to, struct iceberg_schema **out, struct loch_err *err);
/* Only the promotions iceberg_type_promotable allows; others LOCH_EUNSUPPORTED. */
int iceberg_schema_alter_type(struct arena *a, const struct iceberg_schema *cur, const char *name,
                              const struct iceberg_type *t, struct iceberg_schema **out,
                              struct loch_err *err);

#endif
