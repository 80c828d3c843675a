/* maint.h: table maintenance, the library door: snapshot expiry and the sweep of files
 * nothing references any more. Used by `loch maintain` (cmd/) and, to come, by the
 * servers' own schedule. Not for argument parsing or printing (cmd/), nor for writing
 * data (sink/). */
#ifndef LOCH_MAINT_MAINT_H
#define LOCH_MAINT_MAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "catalog/catalog.h"
#include "store/store.h"

struct maint_options {
    int64_t expire_ms; /* snapshot age beyond which it expires (the table's
                          history.expire.max-snapshot-age-ms wins, as in Spark) */
    int64_t orphan_ms; /* unreferenced file age beyond which it is removed */
    long retain_last;  /* newest snapshots always kept (history.expire.min-snapshots-to-keep wins) */
    bool dry_run;      /* report only; change nothing */
};

/* What maint_table did (or, in a dry run, would do). */
struct maint_report {
    size_t n_expired;       /* snapshots expired */
    size_t n_kept;          /* snapshots left */
    size_t n_expired_files; /* files only expired snapshots reached, removed */
    size_t n_orphans;       /* files of unfinished writes, old enough, removed */
    size_t n_failed;        /* files that could not be removed (each logged as a warning) */
    int64_t bytes;          /* their sizes */
};

/* Maintains ns.name under its writer lock (state_dir/locks): expires old snapshots in one
 * commit (sink_commit), then removes the files the table no longer references: those
 * only expired snapshots reached at once, orphans once older than o->orphan_ms (so a
 * write in flight is never touched). Allocations in a. Errors: the catalog's, the
 * store's, LOCH_ECONFLICT when another writer committed first (nothing removed). */
int maint_table(struct catalog *cat, struct store *st, const char *state_dir, const char *ns, const char *name,
                const struct maint_options *o, struct arena *a, struct maint_report *out, struct loch_err *err);

/* "90s", "30m", "12h", "7d" (or plain seconds) -> ms; -1 when malformed. */
int64_t maint_parse_age(const char *s);

#endif
