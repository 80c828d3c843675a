/* load.h: the full load both sources share. Reader threads (one source connection each)
 * write a table's rows as CSV chunk files, every column text in the forms of change.h;
 * the calling thread turns each file into Parquet through the applier while the readers
 * go on, so reading the source and writing the lake overlap, for one big table as for
 * many. A table with a key is read in key ranges; each range commits with its last key
 * (loch_kv `cdc.<source>.load.<schema>.<table>`), so a restart continues after the last
 * range committed instead of starting over. A table without a key commits whole.
 * Not for how a source reads a range (pg/, mysql/) or how rows become Parquet (applier). */
#ifndef LOCH_CDC_LOAD_H
#define LOCH_CDC_LOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/mem.h"
#include "base/err.h"
#include "cdc/applier.h"
#include "cdc/source.h"

/* Rows per key range: each one commits (and so is where a restart continues). */
#define CDC_LOAD_RANGE_ROWS 250000

struct cdc_load;

struct cdc_load_table {
    const char *schema, *name;      /* at the source: progress lines and progress keys */
    const struct cdc_table *t;      /* as declared to the applier (cdc_applier_table) */
    size_t n_key;                   /* > 0: read in key ranges (resumable) */
    bool first_reader_only;         /* only reader 0 may read it */
    int64_t est;                    /* estimated rows for the ETA, -1 unknown */
    /* set by cdc_load_run from the saved progress when resuming: */
    bool done_before;               /* loaded by an earlier run: skipped */
    char **after;                   /* n_key key texts to continue after; NULL: from the start */
    void *user;                     /* the source's own per-table data */
};

/* One reader thread's body: opens its connection, then reads every table cdc_load_next
 * hands it (each through cdc_load_push), until it returns SIZE_MAX. Returns 0, or a code
 * with err filled (LOCH_ECANCELED when cdc_load_push refused: stop or another failure). */
typedef int (*cdc_load_reader_fn)(void *ctx, struct cdc_load *L, int reader, struct loch_err *err);

/* Loads t[0..n) into ap with `readers` threads running fn(ctx, L, k). resume: read the
 * progress keys first (tables done are skipped, key-ranged ones continue after their
 * last committed key; a key-less table is read again). Each finished range and table is
 * committed (cdc_applier_flush with its progress key), except while a key-less table is
 * partly in the applier (its rows commit at once). The caller commits the last data with
 * its checkpoint and cdc_load_forget. Progress lines on stderr when r->progress.
 * LOCH_ECANCELED when r->stop was set. */
int cdc_load_run(struct cdc_run *r, struct cdc_applier *ap, struct cdc_load_table *t, size_t n, bool resume,
                 int readers, cdc_load_reader_fn fn, void *ctx, struct loch_err *err);

/* Stages the deletion of every table's progress key (committed by the next flush). */
void cdc_load_forget(struct cdc_applier *ap, const char *source, const struct cdc_load_table *t, size_t n);

/* For readers. The next table for reader k (a table with first_reader_only goes to
 * reader 0 only), or SIZE_MAX when none is left or the load is failing. */
size_t cdc_load_next(struct cdc_load *L, int reader);
const struct cdc_load_table *cdc_load_table(const struct cdc_load *L, size_t ti);
/* A new, unused chunk file path (malloc'd) in the state folder's spill/. */
char *cdc_load_chunk_path(struct cdc_load *L);
/* Hands over a written chunk file (path may be NULL: no rows) of table ti, waiting while
 * the queue is full. last: the table is read. bound (JSON, malloc'd, or NULL): the
 * progress this chunk completes ("\"done\"" or cdc_load_bound's array), committed with
 * it. Takes path and bound in all cases; false (file removed) when the load stops. */
bool cdc_load_push(struct cdc_load *L, size_t ti, char *path, int64_t rows, bool last, char *bound);
/* Counts rows/bytes read of table ti (progress and rate only). */
void cdc_load_count(struct cdc_load *L, size_t ti, int64_t rows, int64_t bytes);
/* True when the load is stopping (failure elsewhere or r->stop): readers give up. */
bool cdc_load_aborted(struct cdc_load *L);
/* The JSON array of key texts a progress key holds (malloc'd). */
char *cdc_load_bound(char *const *key, size_t n);
/* A malloc'd copy of n key texts (NULL for NULL), and its release (key may be NULL). */
char **cdc_load_key_copy(char *const *key, size_t n);
void cdc_load_key_free(char **key, size_t n);

#endif
