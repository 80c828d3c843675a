/* ops.c: how the runner (cdc/sources.c) reaches the PostgreSQL source: its entry points
 * as a struct cdc_source_ops. Not for anything the source does (conn.c and the other
 * files of pg_int.h). */
#include "cdc/source.h"

#include "cdc/pg/pg.h"

const struct cdc_source_ops cdc_pg_ops = {
    .type = "postgres",
    .run = cdc_pg_run,
    .copy = cdc_pg_copy,
};
