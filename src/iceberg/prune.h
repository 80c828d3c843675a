/* prune.h: which data files of a scan may hold rows a filter keeps, decided from the
 * per-column metrics in the manifests (spec "Scan Planning": lower/upper bounds, value,
 * null and NaN counts). Not for reading SQL (query/predicates.c builds the filter) or for
 * evaluating rows: a file is dropped only when no row of it can match; everything unknown
 * (no metrics, a column added later, an undecodable bound) keeps the file.
 *
 * Comparison semantics are DuckDB's, the engine that runs the query over the files kept:
 * NaN is greater than every number and equal to itself, -0.0 equals 0.0, strings and
 * binaries compare as unsigned bytes (UTF-8 order = code point order). */
#ifndef LOCH_ICEBERG_PRUNE_H
#define LOCH_ICEBERG_PRUNE_H

#include "iceberg/iceberg.h"
#include "iceberg/table.h"

enum iceberg_expr_op {
    ICEBERG_EXPR_AND, ICEBERG_EXPR_OR,               /* children */
    ICEBERG_EXPR_EQ, ICEBERG_EXPR_LT, ICEBERG_EXPR_LE, /* column op values[0] */
    ICEBERG_EXPR_GT, ICEBERG_EXPR_GE,
    ICEBERG_EXPR_IN,                                 /* column = any of values */
    ICEBERG_EXPR_IS_NULL, ICEBERG_EXPR_NOT_NULL,     /* no values */
};

/* A filter on one table's rows. Literal values are in the column's type as read (the
 * scan's schema), none NULL or NaN, held as: i64 for int, long, date (days), time,
 * timestamp and timestamptz (microseconds, UTC); f64 for float and double; dec (unscaled,
 * at the column's scale) for decimal; bytes for string and binary; b for boolean. Other
 * types are never pruned on (a leaf on them keeps every file). */
struct iceberg_expr {
    enum iceberg_expr_op op;
    int field_id;
    struct iceberg_type type;
    size_t n_values;
    struct iceberg_value *values;
    size_t n_children;
    struct iceberg_expr *children;
};

/* True when the file may hold a row for which e is true (always true when unsure). */
bool iceberg_expr_may_match(const struct iceberg_expr *e, const struct iceberg_data_file *f);

/* True when iceberg_expr_may_match can ever drop a file on a column of type t. */
bool iceberg_prune_type_ok(const struct iceberg_type *t);

/* Files and bytes of a scan before and after pruning. */
struct iceberg_prune_stats {
    size_t n_data_before, n_data_after, n_deletes_before, n_deletes_after;
    int64_t data_bytes_before, data_bytes_after, delete_bytes_before, delete_bytes_after;
};

/* Drops from plan the data files e excludes (e may be NULL: nothing dropped), and the
 * position-delete files that then apply to no kept data file (a delete file naming no
 * data file stays while any data file does). plan's arrays are compacted in place;
 * total_records is recomputed. *out (may be NULL) gets the counts. */
void iceberg_scan_prune(struct iceberg_scan *plan, const struct iceberg_expr *e, struct iceberg_prune_stats *out);

#endif
