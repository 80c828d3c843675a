/* maint.h: table maintenance, the library door: compaction (small files and files with
 * many deleted rows rewritten, one Iceberg "replace" commit), snapshot expiry and the
 * sweep of files nothing references any more; and the schedule that runs it by itself
 * (sched.c) in `loch serve` and `loch replicate`. Used by `loch maintain` (cmd/). Not for argument parsing or printing (cmd/), nor for writing
 * data (sink/). */
#ifndef LOCH_MAINT_MAINT_H
#define LOCH_MAINT_MAINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "catalog/catalog.h"
#include "engine/engine.h"
#include "store/store.h"

struct maint_options {
    int64_t expire_ms; /* snapshot age beyond which it expires (the table's
                          history.expire.max-snapshot-age-ms wins, as in Spark) */
    int64_t orphan_ms; /* unreferenced file age beyond which it is removed */
    long retain_last;  /* newest snapshots always kept (history.expire.min-snapshots-to-keep wins) */
    bool dry_run;      /* report only; change nothing */
    /* compaction: runs when conn is set */
    struct engine_conn *conn;  /* where rows are rewritten (the caller's, in its thread) */
    int64_t target_bytes;      /* output file size (default 256 MB; the table's
                                  write.target-file-size-bytes wins unless target_from_cli) */
    bool target_from_cli;
    double delete_ratio;       /* rewrite a file once this fraction of its rows is deleted */
    int64_t locked_max_bytes;  /* after optimistic attempts that writers' deletes defeated, the
                                  last holds the commit lock (and so the applier's flushes)
                                  from plan to commit when it rewrites at most this; 0 never */
    void (*progress)(void *ctx, const char *msg); /* long runs say what they do; may be NULL */
    void *progress_ctx;
};

#define MAINT_TARGET_BYTES (256LL << 20)
#define MAINT_DELETE_RATIO 0.10

/* What maint_table did (or, in a dry run, would do). */
struct maint_report {
    size_t n_expired;       /* snapshots expired */
    size_t n_kept;          /* snapshots left */
    size_t n_expired_files; /* files only expired snapshots reached, removed */
    size_t n_orphans;       /* files of unfinished writes, old enough, removed */
    size_t n_failed;        /* files that could not be removed (each logged as a warning) */
    int64_t bytes;          /* their sizes */
    /* compaction */
    bool compacted;           /* a replace snapshot was committed */
    size_t files_before, files_after; /* live data + delete files */
    size_t n_rewritten;       /* data files rewritten */
    size_t n_deletes_removed; /* delete files no live file needs any more, dropped */
    size_t n_written;         /* data files written in their place */
    int64_t bytes_rewritten;  /* sizes of the rewritten files */
    size_t n_retries;         /* attempts planned again after a writer's commit */
};

/* Maintains ns.name: compacts it (when o->conn is set; see compact.c for how it runs
 * beside a replicator), expires old snapshots in one commit (sink_commit), then removes
 * the files the table no longer references: those only expired snapshots reached at
 * once, orphans once older than o->orphan_ms (so a write in flight is never touched).
 * Takes the writer lock when free; when another writer holds it (replication), commits
 * under the table's commit lock (sink_commit_lock) with the catalog's compare-and-swap.
 * Records the time in loch_kv "maint.<ns>.<name>.last". Allocations in a. Errors: the
 * catalog's, the store's, the engine's, LOCH_ECONFLICT when writers kept committing
 * first (nothing of that step committed). */
int maint_table(struct catalog *cat, struct store *st, const char *state_dir, const char *ns, const char *name,
                const struct maint_options *o, struct arena *a, struct maint_report *out, struct loch_err *err);

/* The time (ms since the epoch) maint_table last ran on ns.name, or -1. */
int64_t maint_last_run(struct catalog *cat, const char *ns, const char *name, struct arena *a);

/* ---- the schedule (sched.c) ---- */
struct maint_schedule {
    int64_t interval_ms;      /* how often tables are looked at (default 60 s) */
    size_t min_files;         /* compact once a table has this many live files (default 32) */
    double small_file_ratio;  /* ... or this fraction of its data files is small (0.5) */
    double delete_ratio;      /* ... or this fraction of its rows is deleted (0.10) */
    int64_t snapshot_age_ms;  /* snapshots older than this expire (default 1 h) */
    int64_t orphan_ms;        /* unreferenced files older than this are removed (1 d) */
    int64_t target_bytes;     /* MAINT_TARGET_BYTES */
};
struct maint_sched;

/* Starts a thread of low priority (nice 10) that every s->interval_ms looks at each lake
 * table (one at a time) and maintains those past a threshold. It opens its own catalog
 * and store handles (catalog_path, warehouse) and a DuckDB engine of one thread. Errors of one table are logged and retried at the next round. *out
 * until maint_sched_stop. */
int maint_sched_start(const struct maint_schedule *s, const char *catalog_path, const char *warehouse,
                      const char *state_dir, struct maint_sched **out, struct loch_err *err);
/* Stops the thread (a table in progress finishes first; its commit or none) and frees it. */
void maint_sched_stop(struct maint_sched *m);

/* "90s", "30m", "12h", "7d" (or plain seconds) -> ms; -1 when malformed. */
int64_t maint_parse_age(const char *s);

#endif
