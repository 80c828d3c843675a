/* maintain.c: `loch maintain [NS.TABLE ...]`: expires old snapshots (one commit per
 * table, under the table's writer lock) and removes the files nothing references any
 * more: those only expired snapshots reached (at once) and orphans left by crashed or
 * failed writes (once older than --orphans-older-than, so a write in flight is never
 * touched). Replication commits every flush interval; without this, metadata and
 * manifest lists grow without bound. */
#include "cmd/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "iceberg/table.h"
#include "query/query.h"
#include "sink/sink.h"

struct opts {
    int64_t expire_ms;   /* snapshot age beyond which it expires */
    int64_t orphan_ms;   /* unreferenced file age beyond which it is removed */
    long retain_last;    /* newest snapshots always kept */
    bool dry_run;
};

/* "90s", "30m", "12h", "7d" (or plain seconds) -> ms; -1 when malformed. */
static int64_t parse_age(const char *s)
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

static const char *prop(const struct iceberg_metadata *m, const char *key)
{
    for (size_t i = 0; i < m->n_properties; i++)
        if (!strcmp(m->properties[i].key, key))
            return m->properties[i].value;
    return NULL;
}

struct sweep {
    struct app *app;
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
        w->doomed = arena_grow(w->app->a, w->doomed, w->cap_doomed, cap, sizeof *w->doomed);
        w->cap_doomed = cap;
    }
    w->doomed[w->n_doomed++] = arena_strdup(w->app->a, uri);
    if (expired)
        w->n_expired_files++;
    else
        w->n_orphans++;
    w->bytes += size;
    return 0;
}

static int maintain_table(struct app *app, const char *ns, const char *name, const struct opts *o,
                          struct loch_err *err)
{
    int lock;
    int rc = sink_lock(app->cfg->state_dir, ns, name, &lock, err);
    if (rc)
        return rc;
    struct catalog_table ct;
    struct iceberg_metadata *md;
    rc = catalog_load_table(app->cat, ns, name, app->a, &ct, err);
    if (!rc)
        rc = iceberg_table_load(app->st, ct.metadata_location, app->a, &md, err);
    if (rc)
        goto out;

    /* Java's table properties win over the command line, as in Spark's expire_snapshots. */
    int64_t expire_ms = o->expire_ms;
    long retain = o->retain_last;
    const char *p;
    if ((p = prop(md, "history.expire.max-snapshot-age-ms")) && atoll(p) > 0)
        expire_ms = atoll(p);
    if ((p = prop(md, "history.expire.min-snapshots-to-keep")) && atol(p) > 0)
        retain = atol(p);

    const char **was;
    size_t n_was;
    if ((rc = iceberg_table_references(app->st, md, ct.metadata_location, app->a, &was, &n_was, err)))
        goto out;

    struct iceberg_change *ch = iceberg_change_begin(app->a, md, ct.metadata_location);
    iceberg_change_expire_snapshots(ch, util_now_ms() - expire_ms, (size_t)retain);
    size_t n_exp = iceberg_change_expiring(ch);
    const struct iceberg_metadata *now_md = md;
    const char *now_loc = ct.metadata_location;
    if (n_exp && !o->dry_run) {
        struct sink_table_change tc = {ns, name, ct.metadata_location, ch};
        if ((rc = sink_commit(app->cat, app->st, &tc, 1, NULL, 0, app->a, err)))
            goto out;
        if ((rc = catalog_load_table(app->cat, ns, name, app->a, &ct, err)) ||
            (rc = iceberg_table_load(app->st, ct.metadata_location, app->a, &md, err)))
            goto out;
        now_md = md;
        now_loc = ct.metadata_location;
    }

    const char **keep;
    size_t n_keep;
    if ((rc = iceberg_table_references(app->st, now_md, now_loc, app->a, &keep, &n_keep, err)))
        goto out;
    struct sweep w = {.app = app, .keep = keep, .n_keep = n_keep, .was = n_exp && !o->dry_run ? was : NULL,
                      .n_was = n_exp && !o->dry_run ? n_was : 0,
                      .orphan_before_ms = util_now_ms() - o->orphan_ms, .dry_run = o->dry_run};
    char *prefix = arena_printf(app->a, "%s/", now_md->location);
    if ((rc = store_list(app->st, prefix, sweep_one, &w, err)))
        goto out;
    for (size_t i = 0; i < w.n_doomed && !o->dry_run; i++) {
        struct loch_err e2;
        loch_err_clear(&e2);
        if (store_delete(app->st, w.doomed[i], &e2)) {
            w.n_failed++;
            fprintf(stderr, "loch: warning: could not remove %s: %s\n", w.doomed[i], e2.msg);
        }
    }
    size_t kept = o->dry_run ? now_md->n_snapshots - n_exp : now_md->n_snapshots;
    if (o->dry_run)
        printf("%s.%s: [dry run] %zu snapshot(s) would expire, %zu kept; %zu orphan file(s) would be removed "
               "(%.1f MB)\n",
               ns, name, n_exp, kept, w.n_orphans, (double)w.bytes / 1e6);
    else
        printf("%s.%s: %zu snapshot(s) expired, %zu kept; removed %zu file(s) of expired snapshots and %zu "
               "orphan file(s) (%.1f MB)%s\n",
               ns, name, n_exp, kept, w.n_expired_files, w.n_orphans, (double)w.bytes / 1e6,
               w.n_failed ? "; some could not be removed, see the warnings above" : "");
out:
    sink_unlock(lock);
    return rc;
}

int cmd_maintain(struct app *app, int argc, char **argv)
{
    struct opts o = {.expire_ms = 5 * 86400000LL, .orphan_ms = 3 * 86400000LL, .retain_last = 1};
    const char *usage = "usage: loch maintain [NS.TABLE ...] [--expire-older-than AGE] [--retain-last N]\n"
                        "                     [--orphans-older-than AGE] [--dry-run]\n"
                        "  AGE: 90s, 30m, 12h, 7d; defaults: snapshots 5d (keeping the newest 1), orphans 3d\n"
                        "  --dry-run reports what would expire and the orphans, and changes nothing\n";
    int n_tables = 0;
    char **tables = argv; /* table names are compacted to the front of argv */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--dry-run")) {
            o.dry_run = true;
        } else if ((!strcmp(a, "--expire-older-than") || !strcmp(a, "--orphans-older-than")) && i + 1 < argc) {
            int64_t v = parse_age(argv[++i]);
            if (v < 0) {
                fprintf(stderr, "loch: %s wants an age like 90s, 30m, 12h or 7d, not \"%s\"\n", a, argv[i]);
                return 2;
            }
            *(a[2] == 'e' ? &o.expire_ms : &o.orphan_ms) = v;
        } else if (!strcmp(a, "--retain-last") && i + 1 < argc) {
            char *end;
            o.retain_last = strtol(argv[++i], &end, 10);
            if (*end || o.retain_last < 1) {
                fprintf(stderr, "loch: --retain-last wants a whole number of at least 1, not \"%s\"\n", argv[i]);
                return 2;
            }
        } else if (a[0] == '-') {
            fputs(usage, stderr);
            return 2;
        } else {
            tables[n_tables++] = argv[i];
        }
    }
    if (app_open(app, false))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    int failed = 0;
    if (n_tables) {
        for (int i = 0; i < n_tables; i++) {
            char *ns, *name;
            int rc = query_split_name(app->a, tables[i], &ns, &name, &err);
            if (!rc)
                rc = maintain_table(app, ns, name, &o, &err);
            if (rc) {
                app_fail(&err);
                failed = 1;
            }
        }
        return failed;
    }
    struct catalog_table *t;
    size_t n;
    if (catalog_list_tables(app->cat, NULL, app->a, &t, &n, &err)) {
        app_fail(&err);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        if (maintain_table(app, t[i].ns, t[i].name, &o, &err)) {
            app_fail(&err);
            failed = 1;
            loch_err_clear(&err);
        }
    return failed;
}
