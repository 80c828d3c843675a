/* applier_int.h: shared only inside the applier's files (src/cdc/applier*.c): its state
 * (struct cdc_applier, per-table struct atable, batches), small SQL helpers and the calls
 * one file makes into another. Not for anything outside the applier: sources and
 * commands use cdc/applier.h. */
#ifndef LOCH_CDC_APPLIER_INT_H
#define LOCH_CDC_APPLIER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "catalog/catalog.h"
#include "cdc/applier.h"
#include "engine/engine.h"
#include "iceberg/iceberg.h"
#include "store/store.h"
#include "cdc/keyidx.h"

#define KV_MAX 1024 /* loch_kv keys one batch may stage (cdc_applier_set_kv) */

/* In-batch map: key text -> latest after image, so an unchanged (TOASTed) value can be
 * taken from an earlier change of the same flush. Chained, newest first, so a rollback
 * can pop the open transaction's entries. */
struct mentry {
    struct mentry *next;
    uint64_t h;
    char *key;
    size_t key_len;
    int64_t seq;
    struct cdc_value *row; /* n_columns values (arena copies); unchanged ones still marked */
    char **lk;             /* lake key texts for values still unchanged */
};

/* What one table has staged in one batch. */
struct tstage {
    int64_t n_staged, n_unresolved, trunc_seq;
    size_t n_buckets;
    struct mentry **buckets;         /* in the batch arena */
    struct iceberg_data_file *loads; /* batch arena */
    size_t n_loads, cap_loads;
};

struct atable {
    struct cdc_table t;
    char *ns, *name, *cname;
    int no;                  /* temp table suffix */
    int lock_fd, lock_fd_c;
    size_t *key;             /* column indexes: primary key, all columns (full identity), none */
    size_t n_key;
    bool kills;              /* updates/deletes are applied (has key or full identity) */
    struct engine_appender *app[2]; /* per batch, on the staging connection */
    size_t *sc;              /* staging column of each t column (c<sc[i]>) */
    int *rev;                /* t column of each staging column, -1 = dropped since */
    bool *sint;              /* staging column holds BIGINT (integer columns), else VARCHAR */
    bool *kint;              /* the same for ok<k>, per key column */
    size_t stg_nc;
    bool drop_after_flush;
    int64_t next_fid;        /* data files numbered so far (fpath) */
    struct keyidx *kx;
    bool need_index;         /* kx is to be built from the lake before it is used */
    int64_t idx_snap;        /* the snapshot kx describes: when the table's is another
                                (maintenance rewrote it), kx is rebuilt before use */
    char **fpath;            /* malloc'd URIs, by fid */
    size_t cap_fil;
    struct preload *pre;     /* the index saved at the last stop, being read on its own thread */
    struct tstage s[2];      /* per batch */
    bool dropped;
    /* lake state, reloaded after each commit */
    struct arena *md_arena;
    const char *loc, *cloc;
    struct iceberg_metadata *md, *cmd;
};

/* A saved key index read on its own thread from the moment its table is declared, so
 * the first flush finds it ready (restore_index takes it). */
struct preload {
    pthread_t thread;
    char *path, *tag;
    struct keyidx *kx;
    char **names;
    size_t n_names;
    int rc;
    struct loch_err err;
};

/* One batch: what is staged between two flushes. */
struct batch {
    struct arena *arena;       /* lifetime: until the batch's flush ends */
    char *checkpoint;          /* of the last whole transaction staged */
    int64_t last_ts, first_ms;
    int64_t first_commit_us;   /* source commit time of the oldest staged transaction */
    size_t n_changes;
    size_t n_txn;
    char **pos;                /* position of each staged transaction, by ordinal */
    size_t cap_pos;
    struct catalog_kv kv[KV_MAX];
    size_t n_kv;
};

struct cdc_applier {
    struct cdc_applier_options o;
    struct catalog *cat;       /* the caller's handles (the caller's thread: kv, look-ups) */
    struct store *st;
    struct catalog *fcat;      /* the applier's own handles (the flush thread uses them) */
    struct store *fst;
    struct engine_conn *conn;  /* work: index, flush SQL, loads */
    struct engine_conn *conn2; /* work of the flush's second thread (flush_tables) */
    struct engine_conn *sconn; /* staging appenders */
    int id;                    /* staging table names are unique per applier */
    struct arena *arena;       /* lifetime: the applier */
    struct arena *arena2;      /* lifetime: one flush (what its second thread wrote) */
    struct batch bt[2];
    int cur;                   /* the batch being staged; the other may be in flight */
    struct atable **tables;
    size_t n_tables, cap_tables;
    int next_no;
    int64_t seq;
    bool in_txn;
    int64_t txn_first_seq;
    char *txid;
    int64_t ts;
    int64_t flush_ewma_ms;     /* how long flushes take (moving average) */
    int threads;               /* DuckDB threads last set: 0 unknown */
    /* the flush in the air (batch 1 - cur) */
    bool flying;
    pthread_t flight;
    atomic_bool landed;
    int flight_rc;
    int64_t flight_ms;
    struct loch_err flight_err;
    char *durable;             /* a checkpoint made durable and not yet reported (malloc'd) */
    bool broken;               /* a flush failed: key indexes may not match the lake */
    struct atable *last;       /* the table of the last change, and the source's handle */
    const struct cdc_table *last_t; /* for it (saves a look-up by name per change) */
    struct cdc_applier_stats stats;
};

/* ---- small helpers (every applier file) ---- */

static inline int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Iceberg int and long: staged as BIGINT (an appended string costs DuckDB string storage
 * and statistics per value, and integers are most keys) and indexed as 8 bytes. */
static inline bool int_type(const struct iceberg_type *t) { return t->id == ICEBERG_INT || t->id == ICEBERG_LONG; }

/* Appends the SQL turning x (VARCHAR, canonical form) into t's DuckDB type (cdc_cast_sql). */
static inline void cast_expr(struct buf *b, const char *x, const struct iceberg_type *t)
{
    char duck[64];
    if (t->id == ICEBERG_BINARY || t->id == ICEBERG_FIXED)
        buf_printf(b, "from_hex(%s)", x);
    else
        buf_printf(b, "CAST(%s AS %s)", x, iceberg_type_duckdb(t, duck, sizeof duck));
}

/* The work connection of the calling thread: conn2 on the flush's second thread (it sets
 * applier_work_conn), ap->conn everywhere else. Temp tables live per connection: a
 * table's flush and its index update after the commit run on the same one (struct
 * pending). Defined in applier_flush.c. */
extern _Thread_local struct engine_conn *applier_work_conn;

static inline struct engine_conn *wconn(const struct cdc_applier *ap)
{
    return applier_work_conn ? applier_work_conn : ap->conn;
}

static inline int exec(struct cdc_applier *ap, const char *sql, struct loch_err *err)
{
    return engine_exec(wconn(ap), sql, err);
}

/* Runs b's SQL and frees b. */
static inline int execb(struct cdc_applier *ap, struct buf *b, struct loch_err *err)
{
    int rc = engine_exec(wconn(ap), b->data, err);
    buf_free(b);
    return rc;
}

/* The staging table of at in batch set (a plain table of the in-memory database). */
static inline void stg_name(char *out, size_t n, const struct cdc_applier *ap, const struct atable *at, int set)
{
    snprintf(out, n, "stg_%d_%d_%d", ap->id, at->no, set);
}

/* ---- applier.c ---- */

/* DuckDB's threads for this applier's work: every core while loading, one while
 * streaming (see app_replication_engine). */
void applier_use_threads(struct cdc_applier *ap, bool all);
/* The loch_kv key of a source's checkpoint ("cdc.<source>.checkpoint"), in a. */
char *applier_ckpt_key(struct arena *a, const char *source);

/* ---- applier_table.c ---- */

/* The declared table schema.name, NULL when none (or dropped). */
struct atable *applier_find_table(struct cdc_applier *ap, const char *schema, const char *name);
/* Takes the commit locks of at's two lake tables (sink_commit_lock) into fds[0..1], so
 * no maintenance commit lands between the caller's look at the table and its commit;
 * sink_unlock both after (-1 where not taken). */
int applier_commit_lock(struct cdc_applier *ap, struct atable *at, int fds[2], struct loch_err *err);
/* (Re)loads both lake tables' metadata of at from the catalog. */
int applier_load_md(struct cdc_applier *ap, struct atable *at, struct loch_err *err);
/* Lets go of everything at holds: appenders, writer locks, staging tables, index. */
void applier_table_close(struct cdc_applier *ap, struct atable *at);

/* ---- applier_index.c ---- */

/* How the index reads a key column: integers as BIGINT, the rest as DuckDB's text. */
void applier_key_sql(struct buf *b, const char *expr, const struct iceberg_type *t);
/* Receives each result chunk's rows of applier_each_key: e[i] the row's joined key (fid
 * and pos free for fn to fill), ints[i] its integers (-1 for NULL). */
typedef void (*applier_key_rows_fn)(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n);
/* Runs sql, whose columns are the n_key key columns (applier_key_sql) then n_int (<= 4)
 * integers, calling fn per chunk. buffered: the whole result is read first (fn may use
 * the connection). */
int applier_each_key(struct cdc_applier *ap, const char *sql, size_t n_key, size_t n_int, bool buffered,
                     applier_key_rows_fn fn, void *ctx, struct loch_err *err);
/* Drops the key index and the file numbering of a table. */
void applier_forget_files(struct atable *at);
/* Numbers a data file of the table (path: its URI) for the index; returns its fid. */
int32_t applier_add_file(struct atable *at, const char *path);
/* Indexes the rows of data file fid (see the definition for cols, read_opts, where). */
int applier_index_file(struct cdc_applier *ap, struct atable *at, int32_t fid, const char *cols,
                       const char *read_opts, const char *where, struct loch_err *err);
/* The key columns of a file written with the current schema, as the index reads them (in a). */
char *applier_key_cols(struct atable *at, struct arena *a);
/* Rebuilds the key index from the live files of the current-state table. */
int applier_build_index(struct cdc_applier *ap, struct atable *at, struct loch_err *err);
/* Where a table's index is saved at a clean stop (malloc'd). */
char *applier_index_path(struct cdc_applier *ap, struct atable *at);
/* Saves the key index of a table for the next start, when it matches the lake. */
void applier_save_index(struct cdc_applier *ap, struct atable *at);
/* Takes the index saved at the last clean stop; false (rebuild) when none matches. */
bool applier_restore_index(struct cdc_applier *ap, struct atable *at);
/* Starts reading the index saved for a table just declared, when there is one. */
void applier_preload_start(struct cdc_applier *ap, struct atable *at);
/* Waits for the table's preload, if any, and hands it over (at->pre is then NULL). */
struct preload *applier_preload_join(struct atable *at);
void applier_preload_free(struct preload *p); /* p may be NULL */

/* ---- applier_write.c ---- */

/* One table's part of a flush: what applier_flush_files wrote, for the commit and the index. */
struct pending {
    struct atable *at;
    struct engine_conn *conn;  /* the work connection its files were written on */
    struct arena *a;           /* what they were written into (the writing thread's) */
    struct iceberg_data_file data, del, chg;
    bool truncated;
};

/* Writes one data file of the current-state table (changes: of _changes) from sql. */
int applier_write_file(struct cdc_applier *ap, struct atable *at, bool changes, const char *sql, struct arena *a,
                       struct iceberg_data_file *f, struct loch_err *err);
/* Columns of schema s in order (at most limit), each from at's column of that name as
 * <prefix><i>, NULL when at has no such column. */
void applier_select_cols(struct buf *b, struct atable *at, const struct iceberg_schema *s, const char *prefix,
                         size_t limit, struct arena *a);
/* Writes the files of one table's batch `set` (its staging rows are committed); fills p. */
int applier_flush_files(struct cdc_applier *ap, struct atable *at, int set, struct pending *p, struct loch_err *err);
/* After the commit: the index follows the lake, and the table's flush tables go. */
int applier_advance_index(struct cdc_applier *ap, struct atable *at, int set, struct pending *p,
                          struct loch_err *err);

/* ---- applier_flush.c ---- */

/* Waits for the flush in the air, if any; its checkpoint becomes ap->durable. Returns
 * the flush's result (its error in err). Every call that changes tables comes through
 * here. */
int applier_land(struct cdc_applier *ap, struct loch_err *err);

#endif
