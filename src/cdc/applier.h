/* applier.h: the applier, which turns whole source transactions of the change model
 * (change.h) into lake commits; the one door of the change-capture core that sources
 * write through. Not for talking to a source (cdc/pg/, cdc/mysql/) or for Parquet and
 * metadata writing (sink/, iceberg/), which the applier calls.
 *
 * A source describes each table (struct cdc_table), then feeds transactions:
 *
 *     cdc_applier_table(ap, &t)                       (new table or changed shape)
 *     cdc_applier_rename_tables(ap, ...)              (RENAME TABLE, between transactions)
 *     cdc_applier_begin(ap, txid, commit_ts_us)
 *     cdc_applier_change(ap, &change) ...             (rows of that transaction)
 *     cdc_applier_commit(ap, position, checkpoint)
 *     if (cdc_applier_flush_due(ap)) cdc_applier_flush(ap, ...) -> ack the source
 *
 * Every source table <schema>.<table> of source S becomes two Iceberg tables in
 * namespace "S.<schema>": <table> (current state: data files + position deletes found
 * through a primary-key index) and <table>_changes (append-only: all columns, then
 * _op ('I','U','D','T'), _commit_ts (timestamptz), the source's position column
 * (e.g. _lsn long, _binlog_pos / _gtid string), _txid (string)).
 *
 * Exactly once: a flush writes the files of every touched table and commits all their
 * metadata pointers plus the checkpoint key/value of the last whole transaction in ONE
 * catalog transaction (sink_commit). The source acknowledges (PostgreSQL: standby status
 * flush LSN; MySQL: nothing to ack) only positions cdc_applier_flush reported as durable,
 * and resumes from cdc_applier_checkpoint after a restart. Transactions are never split
 * across flushes. */
#ifndef LOCH_CDC_APPLIER_H
#define LOCH_CDC_APPLIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "cdc/change.h"

/* The lake's handles, opaque here: a source holds them (struct cdc_run) and hands them to
 * cdc_applier_open; only the applier reaches into them. */
struct catalog;
struct engine;
struct engine_conn;
struct store;

/* ---- the applier ---- */

struct cdc_applier_options {
    const char *source;            /* namespace first level; also the checkpoint key's name */
    const char *state_dir;         /* for writer locks (sink_lock) and spill files */
    const char *position_column;   /* "_lsn", "_binlog_pos", "_gtid" */
    struct iceberg_type position_type; /* of that column (long for _lsn, string otherwise) */
    int64_t flush_interval_ms;     /* flush at most this long after the first change; <=0: 1000 */
    size_t flush_max_changes;      /* also flush when this many changes are staged; 0: 500000 */
    size_t flush_min_changes;      /* while no flush is in the air, this many staged changes are
                                    * due at once (0: off): draining a backlog, the flush thread
                                    * never waits for a full batch, and batches grow to what a
                                    * flush takes while the next one is received */
};

struct cdc_applier;

/* Opens an applier writing through cat and st with its own connection to eng (callers
 * keep them open until cdc_applier_close). The applier holds the writer lock of every
 * table it touches until closed. */
int cdc_applier_open(const struct cdc_applier_options *o, struct catalog *cat, struct store *st,
                     struct engine *eng, struct cdc_applier **out, struct loch_err *err);
/* Drops staged changes that were not flushed and releases everything. ap may be NULL. */
void cdc_applier_close(struct cdc_applier *ap);

/* The last checkpoint this source committed (the string given to cdc_applier_commit), in
 * a; LOCH_ENOENT when the source never committed (then the source starts with a full
 * load). Usable without an applier. */
int cdc_applier_checkpoint(struct catalog *cat, const char *source, struct arena *a, char **out,
                           struct loch_err *err);
/* Writes a checkpoint alone (e.g. the start position after a full load when no change
 * followed). */
int cdc_applier_set_checkpoint(struct catalog *cat, const char *source, const char *checkpoint,
                               struct loch_err *err);

/* Declares a table, or its new shape. t is copied. Creates <source>.<schema>.<name> and
 * <name>_changes when missing; otherwise evolves them to t by name: new columns are
 * added (optional), columns missing from t are dropped, a changed type is widened when
 * Iceberg allows it (else LOCH_EUNSUPPORTED naming table, column, both types). Changes
 * staged in the old shape stay staged, mapped by column name; they are flushed first when
 * the key or a column's staging type (integer or text) changes, which happens between
 * transactions only (inside one: LOCH_EUNSUPPORTED). The primary-key index is read back
 * from a clean stop's save, or (re)built from the lake, by the first flush that needs it. */
int cdc_applier_table(struct cdc_applier *ap, const struct cdc_table *t, struct loch_err *err);
/* Renames a column in both lake tables (field id kept), so old files read under the new
 * name. Call before cdc_applier_table with the new shape. */
int cdc_applier_rename_column(struct cdc_applier *ap, const char *schema, const char *table,
                              const char *from, const char *to, struct loch_err *err);
/* A source table was dropped: its lake tables stay (history) but it is forgotten here;
 * a table of the same name declared later continues them. */
int cdc_applier_drop_table(struct cdc_applier *ap, const char *schema, const char *table,
                           struct loch_err *err);

/* One source table's new name in cdc_applier_rename_tables. */
struct cdc_rename {
    const char *schema, *from;   /* a declared table */
    const char *schema_to, *to;
};

/* Source tables were renamed (RENAME TABLE): their two lake tables each
 * (<source>.<schema>.<from> and <from>_changes) take the new names, keeping snapshots,
 * history and rows, and later changes go to them under the new names (declare them with
 * the new name; the key index and everything else carry over). The renames happen at
 * once, so a swap (a -> b, b -> a) or a chain (b -> c, a -> b) is given as its net
 * effect. Everything staged is flushed first, then that flush's commit, the renames and
 * checkpoint (NULL: none; what the source resumes from after the rename) land in ONE
 * catalog transaction: after a crash the lake has all of it or none of it.
 * A lake table already under a target name whose source table replication no longer
 * follows (kept from a dropped table) is moved aside, with its _changes, to
 * <to>_dropped_<UTC yyyymmddhhmmss>, and a warning says so. Errors: LOCH_EINVAL for a
 * table not declared or inside a transaction, LOCH_EEXIST when a target is a table still
 * followed; after a failure in the commit the applier must be closed (as after a failed
 * flush). */
int cdc_applier_rename_tables(struct cdc_applier *ap, const struct cdc_rename *r, size_t n,
                              const char *checkpoint, struct loch_err *err);

/* Full load: appends the rows of select_sql (run on the applier's connection; columns in
 * t's order, VARCHAR in the canonical forms above, or already typed) to the current-state
 * table as one data file, staged in the current flush (no _changes rows: a full load is
 * not a change). Returns the rows written in *n_rows. Must be outside begin/commit. */
int cdc_applier_load(struct cdc_applier *ap, const struct cdc_table *t, const char *select_sql,
                     int64_t *n_rows, struct loch_err *err);
/* The applier's DuckDB connection, for a source to stage full-load data (e.g. read_csv
 * of a spill file) before cdc_applier_load. */
struct engine_conn *cdc_applier_conn(struct cdc_applier *ap);

/* Stages a loch_kv key/value (copied; value NULL deletes the key) to be written by the
 * next flush, in the same catalog transaction (e.g. full-load progress per table: a
 * chunk's data and "loaded up to key K" become durable together). */
void cdc_applier_set_kv(struct cdc_applier *ap, const char *key, const char *value);

/* ---- the lake, as a source may see it ----
 * A source reaches the catalog and Iceberg only through these (and the calls above):
 * they read and write with the handles given to cdc_applier_open, in the caller's
 * thread, and never wait for a flush in the air. */

/* Reads loch_kv key (e.g. a source's "cdc.<source>.load" marker) into *out (in a);
 * LOCH_ENOENT when absent. */
int cdc_applier_get_kv(struct cdc_applier *ap, const char *key, struct arena *a, char **out,
                       struct loch_err *err);
/* Writes loch_kv key = value (value NULL deletes it) at once, in a catalog transaction of
 * its own: unlike cdc_applier_set_kv it does not wait for the next flush. */
int cdc_applier_put_kv(struct cdc_applier *ap, const char *key, const char *value, struct loch_err *err);
/* The lake's current-state table <source>.<schema>.<name> as a cdc_table (in a): columns,
 * types, nullability from its current Iceberg schema, key = its identifier fields,
 * source_type "(from the lake)". out NULL: only whether the table exists (no metadata
 * read). LOCH_ENOENT when the lake has no such table; other errors as the catalog or
 * store report them. */
int cdc_applier_lake_table(struct cdc_applier *ap, const char *schema, const char *name, struct arena *a,
                           struct cdc_table *out, struct loch_err *err);

/* One source transaction: txid (source's id as text), commit time in µs since the Unix
 * epoch (UTC). */
int cdc_applier_begin(struct cdc_applier *ap, const char *txid, int64_t commit_ts_us, struct loch_err *err);
/* Stages one row change of the open transaction (copied). LOCH_EINVAL on a change for an
 * undeclared table or with a wrong image. */
int cdc_applier_change(struct cdc_applier *ap, const struct cdc_change *c, struct loch_err *err);
/* Ends the transaction: position is the value of the position column for its rows (text
 * in the position type's canonical form), checkpoint is what the source needs to resume
 * after it (stored under loch_kv "cdc.<source>.checkpoint"). Both copied. */
int cdc_applier_commit(struct cdc_applier *ap, const char *position, const char *checkpoint,
                       struct loch_err *err);
/* Forgets the open transaction's staged changes (source aborted it or the connection
 * dropped mid-transaction). */
void cdc_applier_rollback(struct cdc_applier *ap);

/* True when whole transactions are staged and the flush interval since the first of
 * them has passed, the size bound is reached, or flush_min_changes are staged while no
 * flush is in the air. */
bool cdc_applier_flush_due(const struct cdc_applier *ap);
/* True when no flush is in the air (or the one in the air has landed). */
bool cdc_applier_flush_idle(const struct cdc_applier *ap);
/* True when committed transactions are staged and not yet flushed, a flush is in the
 * air, or a durable checkpoint was not reported yet. */
bool cdc_applier_pending(const struct cdc_applier *ap);
/* Writes every table touched by the staged whole transactions and commits them with the
 * checkpoint of the last one in one catalog transaction. Nothing staged: no-op. On
 * success, *checkpoint_out (may be NULL; in a) is the checkpoint now durable, or NULL
 * when nothing was flushed. On error nothing is visible in the lake; the applier must be
 * closed and replication restarted from cdc_applier_checkpoint. */
int cdc_applier_flush(struct cdc_applier *ap, struct arena *a, char **checkpoint_out, struct loch_err *err);
/* The same flush, on a thread of its own: waits for the previous one (its error is
 * returned here), then hands the staged batch to the flush thread and returns; staging
 * goes on into the other batch meanwhile. Flushes commit one at a time, in order. Every
 * other applier call that touches tables (table, renames, drop, load, flush, close) first
 * waits for the flush in the air. Durability is learned from cdc_applier_flush_poll (or
 * the checkpoint of a later cdc_applier_flush). */
int cdc_applier_flush_start(struct cdc_applier *ap, struct loch_err *err);
/* Never waits: when a flush ended since the last report, *checkpoint_out (in a) is the
 * checkpoint now durable, else NULL; a failed flush returns its error (then close the
 * applier and restart from cdc_applier_checkpoint). */
int cdc_applier_flush_poll(struct cdc_applier *ap, struct arena *a, char **checkpoint_out, struct loch_err *err);

/* Appends the SQL that turns expr (VARCHAR in the canonical form above) into type t's
 * DuckDB type, exactly as the applier does (validation reuses it). */
void cdc_cast_sql(struct buf *b, const char *expr, const struct iceberg_type *t);
/* Makes DuckDB temp table `name` on conn from a CSV file of t's rows in the canonical text
 * forms (no header, '"' quoting, unquoted empty field = NULL), each column cast to its
 * Iceberg type by cdc_cast_sql: how `loch validate` reads a source table the way
 * replication would have written it. */
int cdc_csv_to_temp_table(struct engine_conn *conn, const char *name, const struct cdc_table *t,
                          const char *csv_path, struct loch_err *err);

/* Progress counters (since open). */
struct cdc_applier_stats {
    int64_t transactions, changes, flushes, rows_loaded;
    int64_t last_commit_ts_us; /* source commit time of the last flushed transaction; 0 none */
};
void cdc_applier_stats(const struct cdc_applier *ap, struct cdc_applier_stats *out);

#endif
