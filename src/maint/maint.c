/* maint.c: one table's maintenance (maint.h): its locks, compaction (compact.c), then
 * snapshot expiry and the sweep of unreferenced files. Replication commits every flush
 * interval; without this, files, metadata and manifest lists grow without bound. Not for
 * the schedule (sched.c) or for printing (cmd/maintain.c). */
#include "maint/maint_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "iceberg/table.h"
#include "sink/sink.h"

/* "90s", "30m", "12h", "7d" (or plain seconds) -> ms; -1 when malformed. */
int64_t maint_parse_age(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0)
        return -1;
    double unit = 1000;
    if (!strcmp(end, "d"))
        unit = 86400e3;
    else if (!strcmp(end, "h"))
        unit = 3600e3;
    else if (!strcmp(end, "m"))
        unit = 60e3;
    else if (*end && strcmp(end, "s"))
        return -1;
    return (int64_t)(v * unit);
}

void maint_progress(struct maint_ctx *x, const char *fmt, ...)
{
    if (!x->o->progress)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    x->o->progress(x->o->progress_ctx, msg);
}

static char *last_key(struct arena *a, const char *ns, const char *name)
{
    return arena_printf(a, "maint.%s.%s.last", ns, name);
}

int64_t maint_last_run(struct catalog *cat, const char *ns, const char *name, struct arena *a)
{
    char *v;
    struct loch_err e;
    if (catalog_get_kv(cat, last_key(a, ns, name), a, &v, &e))
        return -1;
    return strtoll(v, NULL, 10);
}

const char *maint_prop(const struct iceberg_metadata *m, const char *key)
{
    for (size_t i = 0; i < m->n_properties; i++)
        if (!strcmp(m->properties[i].key, key))
            return m->properties[i].value;
    return NULL;
}

struct sweep {
    struct arena *a;
    const char *const *keep;   /* references of the new metadata */
    size_t n_keep;
    const char *const *was;    /* references of the metadata before expiry */
    size_t n_was;
    int64_t orphan_before_ms;
    bool dry_run;
    size_t n_expired_files, n_orphans, n_failed;
    int64_t bytes;
    const char **doomed;
    size_t n_doomed, cap_doomed;
};

static int sweep_one(void *ctx, const char *uri, int64_t size, int64_t mtime_ms)
{
    struct sweep *w = ctx;
    if (iceberg_references_has(w->keep, w->n_keep, uri))
        return 0;
    bool expired = iceberg_references_has(w->was, w->n_was, uri);
    if (!expired && mtime_ms >= w->orphan_before_ms)
        return 0; /* maybe a write in flight: leave it to a later run */
    if (w->n_doomed == w->cap_doomed) {
        size_t cap = w->cap_doomed ? w->cap_doomed * 2 : 64;
        w->doomed = arena_grow(w->a, w->doomed, w->cap_doomed, cap, sizeof *w->doomed);
        w->cap_doomed = cap;
    }
    w->doomed[w->n_doomed++] = arena_strdup(w->a, uri);
    if (expired)
        w->n_expired_files++;
    else
        w->n_orphans++;
    w->bytes += size;
    return 0;
}

/* Snapshot expiry and the sweep; t is open (under the writer lock when x holds it). */
static int expire_and_sweep(struct maint_ctx *x, struct sink_table *t, bool shared, struct maint_report *out,
                            struct loch_err *err)
{
    const struct maint_options *o = x->o;
    struct arena *a = x->a;
    struct catalog *cat = x->cat;
    struct store *st = x->st;
    const char *ns = x->ns, *name = x->name;
    struct iceberg_metadata *md = t->md;
    int lk = -1, rc;
    if (shared) { /* another writer holds the table: commit under its commit lock */
        if ((rc = sink_commit_lock(x->state_dir, ns, name, &lk, err)))
            return rc;
        if ((rc = sink_table_open(cat, st, ns, name, a, t, err)))
            goto out;
        md = t->md;
    }

    /* Java's table properties win over the command line, as in Spark's expire_snapshots. */
    int64_t expire_ms = o->expire_ms;
    long retain = o->retain_last;
    const char *p;
    if ((p = maint_prop(md, "history.expire.max-snapshot-age-ms")) && atoll(p) > 0)
        expire_ms = atoll(p);
    if ((p = maint_prop(md, "history.expire.min-snapshots-to-keep")) && atol(p) > 0)
        retain = atol(p);

    const char **was;
    size_t n_was;
    if ((rc = iceberg_table_references(st, md, t->location, a, &was, &n_was, err)))
        goto out;

    struct iceberg_change *ch = iceberg_change_begin(a, md, t->location);
    iceberg_change_expire_snapshots(ch, util_now_ms() - expire_ms, (size_t)retain);
    size_t n_exp = iceberg_change_expiring(ch);
    const struct iceberg_metadata *now_md = md;
    const char *now_loc = t->location;
    if (n_exp && !o->dry_run) {
        struct sink_table_change tc = {ns, name, t->location, ch};
        if ((rc = sink_commit(cat, st, &tc, 1, NULL, 0, a, err)))
            goto out;
        struct sink_table now; /* reopened under the lock t holds */
        if ((rc = sink_table_open(cat, st, ns, name, a, &now, err)))
            goto out;
        now_md = now.md;
        now_loc = now.location;
    }
    sink_unlock(lk); /* the sweep removes only what no snapshot reaches */
    lk = -1;

    const char **keep;
    size_t n_keep;
    if ((rc = iceberg_table_references(st, now_md, now_loc, a, &keep, &n_keep, err)))
        goto out;
    struct sweep w = {.a = a, .keep = keep, .n_keep = n_keep, .was = n_exp && !o->dry_run ? was : NULL,
                      .n_was = n_exp && !o->dry_run ? n_was : 0,
                      .orphan_before_ms = util_now_ms() - o->orphan_ms, .dry_run = o->dry_run};
    char *prefix = arena_printf(a, "%s/", now_md->location);
    if ((rc = store_list(st, prefix, sweep_one, &w, err)))
        goto out;
    for (size_t i = 0; i < w.n_doomed && !o->dry_run; i++) {
        struct loch_err e2;
        loch_err_clear(&e2);
        if (store_delete(st, w.doomed[i], &e2)) {
            w.n_failed++;
            log_warn("maintenance of %s.%s: could not remove %s: %s", ns, name, w.doomed[i], e2.msg);
        }
    }
    out->n_expired = n_exp;
    out->n_kept = o->dry_run ? now_md->n_snapshots - n_exp : now_md->n_snapshots;
    out->n_expired_files = w.n_expired_files;
    out->n_orphans = w.n_orphans;
    out->n_failed = w.n_failed;
    out->bytes = w.bytes;
out:
    sink_unlock(lk);
    return rc;
}

int maint_table(struct catalog *cat, struct store *st, const char *state_dir, const char *ns, const char *name,
                const struct maint_options *o, struct arena *a, struct maint_report *out, struct loch_err *err)
{
    *out = (struct maint_report){0};
    struct maint_ctx x = {.cat = cat, .st = st, .conn = o->conn, .state_dir = state_dir, .ns = ns, .name = name,
                          .o = o, .a = a};
    /* The writer lock when it is free; a replicator holds it for as long as it runs,
     * and then the commit lock and compare-and-swap keep the two apart. */
    int fd = -1;
    int rc = sink_trylock(state_dir, ns, name, &fd, err);
    bool shared = rc == LOCH_ECONFLICT;
    if (shared) {
        loch_err_clear(err);
        rc = 0;
    }
    if (rc)
        return rc;
    if (o->conn)
        rc = maint_compact(&x, out, err);
    struct sink_table t;
    if (!rc)
        rc = sink_table_open(cat, st, ns, name, a, &t, err);
    if (!rc) {
        maint_progress(&x, "%s.%s: expiring snapshots, removing unreferenced files", ns, name);
        rc = expire_and_sweep(&x, &t, shared, out, err);
    }
    if (!rc && !o->dry_run) {
        struct catalog_kv kv = {last_key(a, ns, name), arena_printf(a, "%lld", (long long)util_now_ms())};
        rc = catalog_commit(cat, NULL, 0, &kv, 1, err);
    }
    sink_unlock(fd);
    return rc;
}
