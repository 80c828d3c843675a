/* runner.h: running configured sources, each on a thread of its own with its own catalog
 * handle, until asked to stop (or caught up): what `loch replicate` runs in the
 * foreground and `loch serve` in the background. Not for one source's replication
 * (source.h: cdc_source_run), nor for signals or printing (cmd/). */
#ifndef LOCH_CDC_RUNNER_H
#define LOCH_CDC_RUNNER_H

#include <stdbool.h>

#include "base/err.h"
#include "base/mem.h"
#include "config.h"
#include "engine/engine.h"
#include "store/store.h"

struct cdc_runner_options {
    const struct loch_config *cfg; /* sources and state folder; outlives the runner */
    const char *only;              /* a source's name, or NULL for every configured source */
    struct store *st;              /* shared by the runs; outlives the runner */
    struct engine *eng;            /* the engine replication writes through; outlives it */
    bool catch_up;                 /* each run returns once it has what its source had committed
                                    * when it started (cdc_run.catch_up) */
    bool progress;                 /* full-load progress lines on stderr */
    bool keep_going;               /* a failing source is logged and the others go on (a
                                    * server); otherwise it stops them all (a command) */
};

struct cdc_runner;

/* Starts a thread per selected source (cdc_source_run with a catalog handle of its own
 * under cfg->state_dir). *out is the caller's until cdc_runner_wait. LOCH_ECONFIG (*out
 * NULL, nothing started) when no configured source is selected. */
int cdc_runner_start(const struct cdc_runner_options *o, struct cdc_runner **out, struct loch_err *err);

/* Asks every run to stop: the flush in hand finishes, then each returns. Only stores an
 * atomic flag, so a signal handler may call it. r may be NULL. */
void cdc_runner_stop(struct cdc_runner *r);

/* Waits for every run to end, then frees r (r may be NULL: returns 0). Returns 0 when every
 * run ended well, else how many failed, their errors in *failed (an array in a, *n_failed
 * long; either may be NULL when the caller does not want them). */
int cdc_runner_wait(struct cdc_runner *r, struct arena *a, struct loch_err **failed, size_t *n_failed);

#endif
