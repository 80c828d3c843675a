/* applier_flush.c: when a batch is due, and flushing it: the key indexes it needs, every
 * touched table's files written on two threads, one sink_commit with the checkpoint, on
 * the flush thread (cdc_applier_flush_start / _poll) or the caller's. Not for one
 * table's files (applier_write.c) or staging (applier_stage.c).
 *
 * Two batches alternate (struct batch, struct tstage; staging tables stg_<id>_<no>_<set>
 * are plain tables of the in-memory database, appended on the staging connection): the
 * source stages into one while a flush thread writes the other (cdc_applier_flush_start),
 * so receiving never waits on the lake. Flushes run one at a time and in order; every
 * call that changes tables or the index (table, rename, drop, load, flush) first waits
 * for the flush in the air. The flush thread owns the work connections, the catalog and
 * store handles (ap->conn, conn2, fcat, fst) while it runs; the source thread touches only
 * the staging connection then. A flush writes the files of its tables on two threads at
 * once, each with its work connection (see flush_tables); everything on that path runs
 * its SQL through wconn(), the connection of the thread it runs on. */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "sink/sink.h"

/* See wconn() in applier_int.h. */
_Thread_local struct engine_conn *applier_work_conn;

static bool batch_pending(const struct cdc_applier *ap, int set)
{
    const struct batch *B = &ap->bt[set];
    if (B->n_txn > 0 || B->n_kv > 0 || B->checkpoint)
        return true;
    for (size_t i = 0; i < ap->n_tables; i++)
        if (ap->tables[i]->s[set].n_loads > 0)
            return true;
    return false;
}

bool cdc_applier_pending(const struct cdc_applier *ap)
{
    return ap->flying || ap->durable || batch_pending(ap, ap->cur);
}

/* The interval is a bound on the time from source commit to lake commit: the batch is
 * flushed when its oldest transaction, counted from its commit at the source, would
 * otherwise wait longer than the interval minus what a flush takes (moving average). A
 * quarter interval of local time at least, so a lagging or skewed source clock cannot
 * cause a flush storm; at most the interval of local time. */
bool cdc_applier_flush_idle(const struct cdc_applier *ap) { return !ap->flying || atomic_load(&ap->landed); }

bool cdc_applier_flush_due(const struct cdc_applier *ap)
{
    const struct batch *B = &ap->bt[ap->cur];
    if (ap->in_txn || !B->first_ms)
        return false;
    int64_t local = now_ms() - B->first_ms, iv = ap->o.flush_interval_ms;
    if (B->n_changes >= ap->o.flush_max_changes || local >= iv)
        return true;
    if (ap->o.flush_min_changes && B->n_changes >= ap->o.flush_min_changes && cdc_applier_flush_idle(ap))
        return true;
    if (!B->first_commit_us || local < iv / 4)
        return false;
    int64_t since_commit = (util_now_us() - B->first_commit_us) / 1000;
    return since_commit >= iv - ap->flush_ewma_ms;
}

/* The tables of one flush, shared by its two threads: each takes the next table (the
 * most staged first, so the two finish close together) and writes its files on its own
 * work connection into its own arena. */
struct flush_work {
    struct cdc_applier *ap;
    int set;
    struct pending **order;
    size_t n;
    atomic_size_t next;
    atomic_bool failed;
    int rc2;                   /* the second thread's result */
    struct loch_err err2;
};

static int work_tables(struct flush_work *w, struct engine_conn *conn, struct arena *a, struct loch_err *err)
{
    for (;;) {
        size_t i = atomic_fetch_add(&w->next, 1);
        if (i >= w->n || atomic_load(&w->failed))
            return 0;
        struct pending *pp = w->order[i];
        pp->conn = conn;
        pp->a = a;
        int rc = applier_flush_files(w->ap, pp->at, w->set, pp, err);
        if (rc) {
            atomic_store(&w->failed, true);
            return rc;
        }
    }
}

static void *second_main(void *arg)
{
    struct flush_work *w = arg;
    applier_work_conn = w->ap->conn2;
    loch_err_clear(&w->err2);
    w->rc2 = work_tables(w, w->ap->conn2, w->ap->arena2, &w->err2);
    applier_work_conn = NULL;
    return NULL;
}

static size_t staged_of(const struct pending *p, int set) { return p->at->s[set].n_staged; }

static _Thread_local int sort_set; /* for by_staged: qsort takes no context */

static int by_staged(const void *a, const void *b)
{
    size_t x = staged_of(*(struct pending *const *)a, sort_set), y = staged_of(*(struct pending *const *)b, sort_set);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* applier_flush_files of every pending table with staged changes, on this thread
 * (ap->conn, the batch's arena) and a second one (conn2, arena2) at once: a flush is
 * mostly single-threaded DuckDB statements, one table's after another, so two tables at
 * a time use both cores where one thread left the second to the receiving thread's
 * spare time. */
static int flush_tables(struct cdc_applier *ap, int set, struct pending *p, size_t n_p, struct loch_err *err)
{
    struct arena *a = ap->bt[set].arena;
    struct flush_work w = {.ap = ap, .set = set};
    w.order = arena_alloc(a, (n_p + 1) * sizeof *w.order);
    for (size_t i = 0; i < n_p; i++)
        if (staged_of(&p[i], set))
            w.order[w.n++] = &p[i];
    sort_set = set;
    if (w.n > 1)
        qsort(w.order, w.n, sizeof *w.order, by_staged);
    atomic_init(&w.next, 0);
    atomic_init(&w.failed, false);
    arena_reset(ap->arena2);
    pthread_t th;
    bool two = w.n > 1 && pthread_create(&th, NULL, second_main, &w) == 0;
    int rc = work_tables(&w, ap->conn, a, err);
    if (two) {
        pthread_join(th, NULL);
        if (!rc && w.rc2) {
            rc = w.rc2;
            *err = w.err2;
        }
    }
    return rc;
}

/* The key indexes batch `set` needs before its files are written: restored from the
 * last stop or built from the lake, plus the files loaded in this batch (not committed
 * yet). An index nobody needs yet waits (insert-only tables: until a TRUNCATE). */
static int prepare_indexes(struct cdc_applier *ap, int set, struct loch_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < ap->n_tables && !rc; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[set];
        if (at->dropped || !at->need_index || !S->n_staged || (!at->kills && S->trunc_seq < 0))
            continue;
        if (!applier_restore_index(ap, at))
            rc = applier_build_index(ap, at, err);
        for (size_t k = 0; k < S->n_loads && !rc; k++) {
            struct arena *ka = arena_new();
            int32_t fid = applier_add_file(at, S->loads[k].path);
            rc = applier_index_file(ap, at, fid, applier_key_cols(at, ka), "", "", err);
            arena_free(ka);
        }
    }
    return rc;
}

/* __pos_<id> (ord, pos): each staged transaction's position, by ordinal (the staging
 * rows carry the ordinal). */
static int stage_positions(struct cdc_applier *ap, struct batch *B, struct loch_err *err)
{
    struct arena *a = B->arena;
    int rc = exec(ap, arena_printf(a, "CREATE OR REPLACE TABLE memory.main.__pos_%d (ord BIGINT, pos VARCHAR)", ap->id),
                  err);
    struct engine_appender *pa = NULL;
    if (!rc && B->n_txn)
        rc = engine_appender_open(ap->conn, "memory", arena_printf(a, "__pos_%d", ap->id), &pa, err);
    for (size_t i = 0; i < B->n_txn && !rc; i++) {
        engine_append_int(pa, (int64_t)i);
        engine_append_text(pa, B->pos[i], strlen(B->pos[i]));
        rc = engine_append_end_row(pa, err);
    }
    if (pa && !rc)
        rc = engine_appender_flush(pa, err);
    engine_appender_close(pa);
    return rc;
}

/* The metadata changes of the written tables (into tc, *n_tc): loads, data and deletes
 * to the current-state table, the change log to _changes; each tagged with the batch's
 * source position and transaction count. */
static void table_changes(struct cdc_applier *ap, int set, struct pending *p, size_t n_p,
                          struct sink_table_change *tc, size_t *n_tc)
{
    struct batch *B = &ap->bt[set];
    struct arena *a = B->arena;
    for (size_t i = 0; i < n_p; i++) {
        struct pending *pp = &p[i];
        struct atable *at = pp->at;
        struct tstage *S = &at->s[set];
        struct iceberg_change *ch = iceberg_change_begin(a, at->md, at->loc);
        for (size_t k = 0; k < S->n_loads; k++)
            iceberg_change_add_file(ch, &S->loads[k]);
        if (pp->data.record_count > 0)
            iceberg_change_add_file(ch, &pp->data);
        if (pp->del.record_count > 0)
            iceberg_change_add_file(ch, &pp->del);
        if (!iceberg_change_empty(ch))
            tc[(*n_tc)++] = (struct sink_table_change){at->ns, at->name, at->loc, ch};
        if (pp->chg.record_count > 0) {
            struct iceberg_change *cc = iceberg_change_begin(a, at->cmd, at->cloc);
            iceberg_change_add_file(cc, &pp->chg);
            tc[(*n_tc)++] = (struct sink_table_change){at->ns, at->cname, at->cloc, cc};
        }
    }
    for (size_t i = 0; i < *n_tc; i++) {
        char num[32];
        if (B->checkpoint)
            iceberg_change_set_summary(tc[i].change, "loch.source-position", B->checkpoint);
        snprintf(num, sizeof num, "%lld", (long long)B->n_txn);
        iceberg_change_set_summary(tc[i].change, "loch.source-transactions", num);
    }
}

/* The commit locks of the tables batch `set` writes (sink_commit_lock: maintenance may
 * rewrite a replicated table beside the applier), taken in table order into fds[2 * i,
 * 2 * i + 1] (-1 where not taken); then each table whose catalog pointer moved since the
 * applier last looked (a compaction or snapshot expiry committed) is reloaded and its
 * key index dropped, to be rebuilt from the new files before any delete is computed. */
int applier_commit_lock(struct cdc_applier *ap, struct atable *at, int fds[2], struct loch_err *err)
{
    fds[0] = fds[1] = -1;
    int rc = sink_commit_lock(ap->o.state_dir, at->ns, at->name, &fds[0], err);
    if (!rc)
        rc = sink_commit_lock(ap->o.state_dir, at->ns, at->cname, &fds[1], err);
    return rc;
}

static int lock_and_refresh(struct cdc_applier *ap, int set, int *fds, struct loch_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        fds[2 * i] = fds[2 * i + 1] = -1;
        if (rc || at->dropped || (!at->s[set].n_staged && !at->s[set].n_loads))
            continue;
        if ((rc = applier_commit_lock(ap, at, &fds[2 * i], err)) || !at->md)
            continue;
        struct arena *a = arena_new();
        struct catalog_table ct, cc;
        rc = catalog_load_table(ap->fcat, at->ns, at->name, a, &ct, err);
        if (!rc)
            rc = catalog_load_table(ap->fcat, at->ns, at->cname, a, &cc, err);
        bool moved = !rc && (strcmp(ct.metadata_location, at->loc) || strcmp(cc.metadata_location, at->cloc));
        arena_free(a);
        if (moved)
            rc = applier_load_md(ap, at, err);
        /* the index follows rewritten files: whoever reloaded the metadata, an index of
         * another snapshot than the table's is rebuilt (a mere expiry keeps the snapshot) */
        if (!rc && at->kills && !at->need_index && at->md->current_snapshot_id != at->idx_snap) {
            log_info("%s: %s.%s was rewritten by maintenance; its key index is rebuilt", ap->o.source, at->ns,
                     at->name);
            applier_forget_files(at);
            at->need_index = true;
        }
    }
    return rc;
}

static void unlock_all(const struct cdc_applier *ap, int *fds)
{
    for (size_t i = 0; i < 2 * ap->n_tables; i++)
        sink_unlock(fds[i]);
}

/* Writes and commits batch `set` (its staging rows committed). Runs on the flush thread
 * or the caller's; touches only the work connection, fcat, fst, the batch and the tables'
 * stage `set`, index and metadata. */
static int flush_batch(struct cdc_applier *ap, int set, struct loch_err *err)
{
    int64_t t_start = now_ms();
    struct batch *B = &ap->bt[set];
    struct arena *a = B->arena;
    struct pending *p = arena_alloc(a, (ap->n_tables + 1) * sizeof *p);
    struct sink_table_change *tc = arena_alloc(a, (2 * ap->n_tables + 1) * sizeof *tc);
    size_t n_p = 0, n_tc = 0;
    int *fds = arena_alloc(a, (2 * ap->n_tables + 1) * sizeof *fds);
    int rc = lock_and_refresh(ap, set, fds, err);
    if (!rc)
        rc = prepare_indexes(ap, set, err);
    if (!rc)
        rc = stage_positions(ap, B, err);
    for (size_t i = 0; i < ap->n_tables && !rc; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[set];
        if (at->dropped || (!S->n_staged && !S->n_loads))
            continue;
        p[n_p++] = (struct pending){.at = at, .conn = ap->conn, .a = a};
    }
    if (!rc)
        rc = flush_tables(ap, set, p, n_p, err);
    if (!rc)
        table_changes(ap, set, p, n_p, tc, &n_tc);
    struct catalog_kv kv[KV_MAX + 1];
    size_t n_kv = 0;
    for (size_t i = 0; i < B->n_kv; i++)
        kv[n_kv++] = B->kv[i];
    if (B->checkpoint)
        kv[n_kv++] = (struct catalog_kv){applier_ckpt_key(a, ap->o.source), B->checkpoint};
    int64_t t_files = now_ms();
    if (!rc)
        rc = sink_commit(ap->fcat, ap->fst, tc, n_tc, kv, n_kv, a, err);
    int64_t t_commit = now_ms();
    for (size_t i = 0; i < n_p && !rc; i++) {
        if (p[i].at->s[set].n_staged) { /* on the connection holding the table's flush tables */
            applier_work_conn = p[i].conn == ap->conn ? NULL : p[i].conn;
            rc = applier_advance_index(ap, p[i].at, set, &p[i], err);
            applier_work_conn = NULL;
        }
        if (!rc)
            rc = applier_load_md(ap, p[i].at, err);
        if (!rc) /* our own commit: the index (advanced, or to be built) is of it */
            p[i].at->idx_snap = p[i].at->md->current_snapshot_id;
    }
    unlock_all(ap, fds);
    if (!rc)
        log_debug("%s: flushed %zu transactions, %zu changes, %zu lake tables in %lld ms (files %lld, commit %lld, "
                  "index %lld)", ap->o.source, B->n_txn, B->n_changes, n_tc, (long long)(now_ms() - t_start),
                  (long long)(t_files - t_start), (long long)(t_commit - t_files), (long long)(now_ms() - t_commit));
    if (rc)
        ap->broken = true;
    return rc;
}

/* After batch `set` was flushed (on this thread): counters, the durable checkpoint, and
 * the batch emptied for reuse. */
static void flushed(struct cdc_applier *ap, int set, int64_t took)
{
    struct batch *B = &ap->bt[set];
    if (B->checkpoint) {
        free(ap->durable);
        ap->durable = xstrdup(B->checkpoint);
    }
    if (B->n_txn)
        ap->stats.last_commit_ts_us = B->last_ts;
    ap->stats.flushes++;
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        at->s[set] = (struct tstage){.trunc_seq = -1};
        if (at->drop_after_flush && !at->dropped && !at->s[ap->cur].n_staged && !ap->in_txn) {
            applier_table_close(ap, at);
            at->dropped = true;
        }
    }
    ap->flush_ewma_ms = ap->flush_ewma_ms ? (3 * ap->flush_ewma_ms + took) / 4 : took;
    if (ap->flush_ewma_ms > ap->o.flush_interval_ms * 3 / 4)
        ap->flush_ewma_ms = ap->o.flush_interval_ms * 3 / 4;
    struct arena *keep = B->arena;
    arena_reset(keep);
    *B = (struct batch){.arena = keep};
}

static void *flight_main(void *arg)
{
    struct cdc_applier *ap = arg; /* ap->cur does not change while a flush is in the air */
    int64_t t0 = now_ms();
    loch_err_clear(&ap->flight_err);
    ap->flight_rc = flush_batch(ap, 1 - ap->cur, &ap->flight_err);
    ap->flight_ms = now_ms() - t0;
    atomic_store(&ap->landed, true);
    return NULL;
}

int applier_land(struct cdc_applier *ap, struct loch_err *err)
{
    ap->last = NULL; /* every call that changes tables comes through here */
    if (!ap->flying)
        return 0;
    pthread_join(ap->flight, NULL);
    ap->flying = false;
    atomic_store(&ap->landed, false);
    if (ap->flight_rc) {
        *err = ap->flight_err;
        return ap->flight_rc;
    }
    flushed(ap, 1 - ap->cur, ap->flight_ms);
    return 0;
}

/* Reports ap->durable (copied into a) and forgets it. */
static void report(struct cdc_applier *ap, struct arena *a, char **checkpoint_out)
{
    if (checkpoint_out && ap->durable)
        *checkpoint_out = arena_strdup(a, ap->durable);
    free(ap->durable);
    ap->durable = NULL;
}

int cdc_applier_flush(struct cdc_applier *ap, struct arena *out_arena, char **checkpoint_out, struct loch_err *err)
{
    if (checkpoint_out)
        *checkpoint_out = NULL;
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "flush inside a transaction");
    int rc = applier_land(ap, err);
    if (rc)
        return rc;
    if (batch_pending(ap, ap->cur)) {
        int64_t t0 = now_ms();
        for (size_t i = 0; i < ap->n_tables && !rc; i++)
            if (!ap->tables[i]->dropped && ap->tables[i]->app[ap->cur])
                rc = engine_appender_flush(ap->tables[i]->app[ap->cur], err);
        if (!rc)
            rc = flush_batch(ap, ap->cur, err);
        if (rc)
            return rc;
        flushed(ap, ap->cur, now_ms() - t0);
    }
    report(ap, out_arena, checkpoint_out);
    return 0;
}

int cdc_applier_flush_start(struct cdc_applier *ap, struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "flush inside a transaction");
    int rc = applier_land(ap, err);
    if (rc || !batch_pending(ap, ap->cur))
        return rc;
    applier_use_threads(ap, false); /* streaming (the flush thread is idle now) */
    for (size_t i = 0; i < ap->n_tables && !rc; i++)
        if (!ap->tables[i]->dropped && ap->tables[i]->app[ap->cur])
            rc = engine_appender_flush(ap->tables[i]->app[ap->cur], err);
    if (rc)
        return rc;
    ap->cur = 1 - ap->cur;
    atomic_store(&ap->landed, false);
    if (pthread_create(&ap->flight, NULL, flight_main, ap)) {
        ap->cur = 1 - ap->cur;
        return loch_errf(err, LOCH_EINTERNAL, "cannot start the flush thread");
    }
    ap->flying = true;
    return 0;
}

int cdc_applier_flush_poll(struct cdc_applier *ap, struct arena *out_arena, char **checkpoint_out,
                           struct loch_err *err)
{
    if (checkpoint_out)
        *checkpoint_out = NULL;
    if (ap->flying && atomic_load(&ap->landed)) {
        int rc = applier_land(ap, err);
        if (rc)
            return rc;
    }
    report(ap, out_arena, checkpoint_out);
    return 0;
}
