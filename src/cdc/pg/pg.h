/* pg.h: shared inside cdc/pg/: the PostgreSQL type mapping (pg_types.c) used by the source
 * (pg_int.h and its files), and the entry points ops.c hands the runner. Not for other
 * rooms: they use cdc/source.h. */
#ifndef LOCH_CDC_PG_PG_H
#define LOCH_CDC_PG_PG_H

#include <libpq-fe.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "cdc/change.h"

/* How a column's text differs from change.h's canonical form. */
enum pgsrc_conv {
    PGSRC_CONV_NONE,
    PGSRC_CONV_BYTEA, /* "\x0a1b" -> "0a1b" */
    PGSRC_CONV_MONEY, /* "-$1,234.56" -> "-1234.56" (lc_monetary = C, set by loch's session) */
};

struct pgsrc_coltype {
    struct iceberg_type type;
    enum pgsrc_conv conv;
    const char *type_name; /* PostgreSQL's name, for messages (in a) */
};

/* Maps (type OID, typmod) to the Iceberg type; unknown OIDs are looked up through sql
 * (domains resolve to their base type). LOCH_EUNSUPPORTED names column, table and type. */
int pgsrc_type_map(PGconn *sql, uint32_t oid, int32_t typmod, const char *table, const char *column,
                struct arena *a, struct pgsrc_coltype *out, struct loch_err *err);

/* The canonical text of a value received as s (len bytes); may point into s or into a. */
const char *pgsrc_value_canon(enum pgsrc_conv conv, const char *s, size_t len, struct arena *a, size_t *out_len);

/* The SELECT expression that gives a column's canonical text in COPY output. */
const char *pgsrc_copy_expr(enum pgsrc_conv conv, const char *quoted_col, struct arena *a);

/* The inverse of pgsrc_copy_expr: an SQL expression of the column's own type from a quoted
 * literal of its canonical text (a full-load chunk bound read back from COPY output). */
const char *pgsrc_copy_literal(enum pgsrc_conv conv, const char *literal, struct arena *a);

/* ---- entry points: the runner reaches them through cdc_pg_ops (ops.c) ---- */
struct cdc_run;
struct cdc_table_list;
struct engine_conn;
/* cdc_source_run (cdc/source.h) for a source of this type. */
int cdc_pg_run(struct cdc_run *r, struct loch_err *err);
/* cdc_source_copy (cdc/source.h) for a source of this type. */
int cdc_pg_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                struct cdc_table_list *out, struct loch_err *err);

#endif
