/* change.h: the source-neutral change model every CDC source speaks (PostgreSQL pgoutput,
 * MariaDB binlog): tables, values in canonical text, I/U/D/T changes. Not for the applier
 * that turns them into lake commits (cdc/applier.h), for talking to a source (cdc/pg/,
 * cdc/mysql/) or for Parquet/metadata writing (sink/, iceberg/). Only base/ and the
 * Iceberg primitive types (a column's lake type) come with it. */
#ifndef LOCH_CDC_CHANGE_H
#define LOCH_CDC_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iceberg/iceberg_types.h"

/* ---- source tables ---- */

struct cdc_column {
    const char *name;         /* source column name = lake column name */
    struct iceberg_type type; /* natural Iceberg type (README type table) */
    bool nullable;
    bool key;                 /* part of the primary key */
    const char *source_type;  /* the source's spelling ("numeric(12,2)"), for messages */
};

struct cdc_table {
    const char *source;       /* source name: first namespace level */
    const char *schema;       /* source schema (MySQL: database): second level */
    const char *name;         /* source table name = lake table name */
    size_t n_columns;
    struct cdc_column *columns; /* in source order; an update or insert carries one value each */
    bool has_key;             /* at least one column has key = true */
    bool full_identity;       /* no key: rows matched on all columns (PG REPLICA IDENTITY FULL) */
    bool insert_only;         /* no key and no full identity: only inserts are replicated */
};

/* ---- values and changes ---- */

/* One column value, as text in the canonical literal form DuckDB casts exactly to the
 * column's Iceberg type (see cdc_value_forms below); text points at bytes the caller owns
 * until cdc_applier_change (cdc/applier.h) returns (the applier copies). */
struct cdc_value {
    const char *text;  /* NULL = SQL NULL */
    size_t len;
    bool unchanged;    /* not sent by the source (PG: unchanged TOASTed value in an update;
                        * in a key-only before image: every non-key column). The applier
                        * keeps the lake's current value; never written as a placeholder. */
};

/* Canonical literal forms, by Iceberg type (the sources convert to these):
 *   boolean      "t"/"f" or "true"/"false"
 *   int, long    decimal digits with optional '-'
 *   float,double decimal or exponent form; "NaN", "Infinity", "-Infinity"
 *   decimal(p,s) plain decimal text ("-1234.50"), never through a float
 *   date         "YYYY-MM-DD"
 *   time         "HH:MM:SS[.ffffff]"
 *   timestamp    "YYYY-MM-DD HH:MM:SS[.ffffff]"
 *   timestamptz  "YYYY-MM-DD HH:MM:SS[.ffffff]+HH[:MM]" (any offset; stored as UTC)
 *   string       UTF-8 text as is
 *   uuid         "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
 *   binary       hexadecimal digits, two per byte, no prefix ("" = empty)
 */

enum cdc_op {
    CDC_INSERT = 'I',
    CDC_UPDATE = 'U',
    CDC_DELETE = 'D',
    CDC_TRUNCATE = 'T', /* every row of the table goes; before and after are NULL */
};

struct cdc_change {
    enum cdc_op op;
    const struct cdc_table *table; /* as last given to cdc_applier_table */
    /* table->n_columns values each, or NULL:
     *   INSERT  before NULL,             after = new row
     *   UPDATE  before = old key or full old row when the key changed or the source
     *           sends it (else NULL: the key is after's key), after = new row (may hold
     *           unchanged values)
     *   DELETE  before = old key (other columns unchanged=true) or full old row, after NULL */
    const struct cdc_value *before;
    const struct cdc_value *after;
};

#endif
