/* source.h: running one configured source's replication (full load, then streaming) until
 * stopped, in the calling thread: `loch replicate` calls it directly, `loch serve` from a
 * background thread; and the ops table through which sources register (sources.c).
 * Not for the change model (change.h), the applier (applier.h) or protocol details
 * (pg/, mysql/). */
#ifndef LOCH_CDC_SOURCE_H
#define LOCH_CDC_SOURCE_H

#include <stdatomic.h>
#include <stdbool.h>

#include "base/err.h"
#include "base/mem.h"
#include "config.h"

struct catalog; /* opaque here: a source hands them to cdc_applier_open */
struct engine;
struct engine_conn;
struct store;

struct cdc_table;
struct cdc_table_list {
    size_t n;
    struct cdc_table *t;
};

struct cdc_run {
    const struct loch_config *cfg;
    const struct loch_source *src;
    struct catalog *cat;       /* one per thread (catalog handles are per thread) */
    struct store *st;
    struct engine *eng;        /* shared; the run opens its own connections */
    bool catch_up;             /* return 0 once everything committed at the source before
                                * the run started is in the lake */
    atomic_bool *stop;         /* set (from a signal handler or another thread) to stop:
                                * the flush in hand finishes, then the run returns 0 */
    bool progress;             /* full-load progress lines on stderr */
};

/* Runs the source named r->src (type "postgres" or "mysql"): creates what it needs at the
 * source (PG: publication, slot), loads tables not yet loaded, then streams changes into
 * the lake. Reconnects with backoff on dropped connections. Returns 0 when stopped or
 * caught up; a LOCH_E* code with err filled on a condition a retry cannot fix (wrong
 * server settings, missing privilege, unsupported type). */
int cdc_source_run(struct cdc_run *r, struct loch_err *err);

/* For `loch validate`: copies the current rows of every selected source table (or only
 * "schema.table") into DuckDB temp tables __src_0, __src_1, ... on conn, each value
 * converted exactly as replication converts it (so equal rows are equal values). *out
 * (in a) describes the tables in that order. r->cat/st/eng may be NULL. */
int cdc_source_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                    struct cdc_table_list *out, struct loch_err *err);

/* How the runner reaches a source. Each source exports one (cdc/pg/ops.c,
 * cdc/mysql/ops.c); sources.c lists them and picks one by the configured type. */
struct cdc_source_ops {
    const char *type; /* loch.yaml `type:` of the source ("postgres", "mysql") */
    /* cdc_source_run for this type */
    int (*run)(struct cdc_run *r, struct loch_err *err);
    /* cdc_source_copy for this type; NULL: `loch validate` is not built for it */
    int (*copy)(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                struct cdc_table_list *out, struct loch_err *err);
};

#endif
