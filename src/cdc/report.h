/* report.h: what the lake holds of a configured source: `loch status` (per table: rows,
 * last source commit, when the lake last moved, lag) and `loch validate` (the source's
 * rows against the lake's, row by row). The work is here; cmd/ only prints.
 *
 * The lake is read as SQL through a reader the caller hands in (struct cdc_lake_reader):
 * only query/ turns lake tables into something DuckDB can read (files by field id,
 * position deletes as row masks), and cdc/ may not include query/ (scripts/layers), so
 * the caller (cmd/) wires a query session in. Not for replication (source.h). */
#ifndef LOCH_CDC_REPORT_H
#define LOCH_CDC_REPORT_H

#include <stdint.h>

#include "cdc/source.h"
#include "engine/engine.h"

/* Runs one read statement on the lake: *out (rows as engine_rows) belongs to the reader
 * and stays valid until its next call; the caller never frees it. */
struct cdc_lake_reader {
    int (*query)(void *ctx, const char *sql, struct engine_rows **out, struct loch_err *err);
    void *ctx;
};

/* ---- status (status.c) ---- */

struct cdc_status_table {
    const char *ns, *name;   /* the lake table (<source>.<schema>, <table>) */
    const char *rows;        /* its row count as text, "?" when unknown */
    int64_t last_commit_us;  /* newest source commit in its change log (_commit_ts), 0 = none */
    int64_t lake_ms;         /* newest snapshot of the table or its change log, 0 = none */
    size_t n_files;          /* live data + delete files of the table (not its change log) */
    int64_t avg_bytes;       /* their average size */
    double delete_ratio;     /* rows deleted by position deletes / rows in its data files */
};

struct cdc_status_source {
    const struct loch_source *src;
    const char *checkpoint;  /* NULL: not loaded yet (no checkpoint) */
    size_t n_tables;
    struct cdc_status_table *tables;
};

/* Status of every configured source, or only the one named `only` (no match: *n_out 0).
 * Everything in a. A reader's error (naming the statement) ends it; a table whose
 * metadata cannot be read only lacks lake_ms. */
int cdc_status(const struct loch_config *cfg, struct catalog *cat, struct store *st,
               const struct cdc_lake_reader *lake, const char *only, struct arena *a,
               struct cdc_status_source **out, size_t *n_out, struct loch_err *err);

/* ---- validate (validate.c) ---- */

#define CDC_VALIDATE_SHOWN 20 /* differing keys named per table */

struct cdc_validate_diff {
    const char *key;   /* "col=value, ..." of the key columns (all columns without a key) */
    const char *what;  /* "only in the source", "only in the lake", "differs" */
};

struct cdc_validate_table {
    const char *full;  /* <source>.<schema>.<table> */
    int64_t n_src;     /* rows at the source */
    int64_t n_diff;    /* rows that differ (any side) */
    size_t n_shown;    /* the first CDC_VALIDATE_SHOWN of them, at most */
    struct cdc_validate_diff shown[CDC_VALIDATE_SHOWN];
};

/* Called after each table is compared; t (and its strings) live in the arena given to
 * cdc_validate. */
typedef void (*cdc_validate_fn)(void *ctx, const struct cdc_validate_table *t);

/* Copies the source's current rows of every selected table (or only "schema.table") onto
 * conn (cdc_source_copy: converted as replication converts them), then compares each
 * with the lake's table by per-bucket hashes of rows, reading only differing buckets row
 * by row; done(ctx, table) after each. *n_diff is the total of differing rows. run->cat,
 * st, eng are the command's. Everything in a; the copies are dropped as it goes. */
int cdc_validate(struct cdc_run *run, struct engine_conn *conn, const struct cdc_lake_reader *lake,
                 const char *only, struct arena *a, cdc_validate_fn done, void *ctx, int64_t *n_diff,
                 struct loch_err *err);

#endif
