/* sched.c: maintenance that runs itself (maint.h): a thread of low priority in `loch
 * serve` and `loch replicate` that looks at every lake table each interval and maintains,
 * one table at a time, those past a threshold (live files, small files, deleted rows,
 * snapshot age). It never holds a replicator up beyond one short commit lock per
 * commit (compact.c). Not for what maintenance does (maint.c, compact.c). */
#include "maint/maint_int.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "iceberg/table.h"
#include "sink/sink.h"

struct maint_sched {
    struct maint_schedule s;
    char *catalog_path, *warehouse, *state_dir;
    struct engine *eng; /* our own: one thread, so it takes no core from replication */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
};

/* Whether ns.name is past a threshold (scratch in a). */
static bool due(struct maint_sched *m, struct catalog *cat, struct store *st, const struct catalog_table *ct,
                struct arena *a)
{
    struct sink_table t;
    struct iceberg_scan *scan;
    struct loch_err e;
    if (sink_table_open(cat, st, ct->ns, ct->name, a, &t, &e) || iceberg_scan_plan(st, t.md, -1, a, &scan, &e))
        return false;
    int64_t now = util_now_ms();
    for (size_t i = 0; i < t.md->n_snapshots; i++)
        if (t.md->snapshots[i].snapshot_id != t.md->current_snapshot_id &&
            t.md->snapshots[i].timestamp_ms < now - m->s.snapshot_age_ms)
            return true;
    size_t n_small = 0;
    int64_t deleted = 0;
    for (size_t i = 0; i < scan->n_data; i++)
        n_small += scan->data[i].file_size < m->s.target_bytes * 3 / 4;
    for (size_t i = 0; i < scan->n_deletes; i++)
        deleted += scan->deletes[i].record_count;
    size_t n_files = scan->n_data + scan->n_deletes;
    if (n_files >= m->s.min_files && n_small >= 2 &&
        (double)n_small >= m->s.small_file_ratio * (double)scan->n_data)
        return true;
    return scan->total_records && (double)deleted >= m->s.delete_ratio * (double)scan->total_records;
}

static void round_of(struct maint_sched *m, struct catalog *cat, struct store *st, struct engine_conn *conn)
{
    struct arena *a = arena_new();
    struct catalog_table *t;
    size_t n;
    struct loch_err e;
    loch_err_clear(&e);
    if (catalog_list_tables(cat, NULL, a, &t, &n, &e)) {
        log_warn("maintenance: cannot list the lake's tables: %s", e.msg);
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&m->mu);
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        struct arena *ta = arena_new();
        if (due(m, cat, st, &t[i], ta)) {
            struct maint_options o = {.expire_ms = m->s.snapshot_age_ms, .orphan_ms = m->s.orphan_ms,
                                      .retain_last = 1, .conn = conn, .target_bytes = m->s.target_bytes,
                                      .delete_ratio = m->s.delete_ratio,
                                      /* about what one core rewrites within a flush interval */
                                      .locked_max_bytes = 16LL << 20};
            struct maint_report r;
            int64_t t0 = util_now_ms();
            loch_err_clear(&e);
            if (maint_table(cat, st, m->state_dir, t[i].ns, t[i].name, &o, ta, &r, &e))
                log_warn("maintenance of %s.%s: %s (tried again next round)", t[i].ns, t[i].name, e.msg);
            else
                log_info("maintenance of %s.%s in %lld ms: %zu files -> %zu (%zu rewritten into %zu, %zu delete "
                         "files dropped), %zu snapshots expired, %zu files removed",
                         t[i].ns, t[i].name, (long long)(util_now_ms() - t0), r.files_before,
                         r.compacted ? r.files_after : r.files_before, r.compacted ? r.n_rewritten : 0,
                         r.compacted ? r.n_written : 0, r.compacted ? r.n_deletes_removed : 0, r.n_expired,
                         r.n_expired_files + r.n_orphans);
        }
        arena_free(ta);
    }
    arena_free(a);
}

static void *sched_main(void *arg)
{
    struct maint_sched *m = arg;
    /* low priority: on Linux nice is per thread (DuckDB's one worker is this thread) */
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
    struct catalog *cat = NULL;
    struct store *st = NULL;
    struct engine_conn *conn = NULL;
    struct loch_err e;
    loch_err_clear(&e);
    if (catalog_open(m->catalog_path, false, &cat, &e) || store_open(m->warehouse, &st, &e) ||
        engine_connect(m->eng, &conn, &e)) {
        log_warn("maintenance: not scheduled: %s", e.msg);
        goto out;
    }
    for (;;) {
        pthread_mutex_lock(&m->mu);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t ns = ts.tv_nsec + (m->s.interval_ms % 1000) * 1000000;
        ts.tv_sec += m->s.interval_ms / 1000 + ns / 1000000000;
        ts.tv_nsec = ns % 1000000000;
        while (!m->stop && pthread_cond_timedwait(&m->cv, &m->mu, &ts) == 0)
            ;
        bool stop = m->stop;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        round_of(m, cat, st, conn);
    }
out:
    engine_disconnect(conn);
    store_close(st);
    catalog_close(cat);
    return NULL;
}

int maint_sched_start(const struct maint_schedule *s, const char *catalog_path, const char *warehouse,
                      const char *state_dir, struct maint_sched **out, struct loch_err *err)
{
    struct maint_sched *m = xcalloc(1, sizeof *m);
    m->s = *s;
    m->catalog_path = xstrdup(catalog_path);
    m->warehouse = xstrdup(warehouse);
    m->state_dir = xstrdup(state_dir);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->cv, NULL);
    struct engine_options eo = {.threads = 1};
    int rc = engine_open(&eo, &m->eng, err);
    if (!rc && pthread_create(&m->thread, NULL, sched_main, m))
        rc = loch_errf(err, LOCH_EINTERNAL, "cannot start the maintenance thread");
    if (rc) {
        engine_close(m->eng);
        free(m->catalog_path);
        free(m->warehouse);
        free(m->state_dir);
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void maint_sched_stop(struct maint_sched *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->mu);
    m->stop = true;
    pthread_cond_signal(&m->cv);
    pthread_mutex_unlock(&m->mu);
    pthread_join(m->thread, NULL);
    engine_close(m->eng);
    pthread_mutex_destroy(&m->mu);
    pthread_cond_destroy(&m->cv);
    free(m->catalog_path);
    free(m->warehouse);
    free(m->state_dir);
    free(m);
}
