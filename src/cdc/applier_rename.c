/* applier_rename.c: RENAME TABLE (cdc_applier_rename_tables): a flush, both lake tables'
 * renames, stale tables moved aside and the checkpoint in one catalog transaction, with
 * the writer locks moved to the new names. Not for column renames (applier_table.c). */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "sink/sink.h"

/* ---- table renames ---- */

static bool same_name(const char *ns1, const char *n1, const char *ns2, const char *n2)
{
    return !strcmp(ns1, ns2) && !strcmp(n1, n2);
}

/* The lock fd held for ns.name among the renamed tables' old locks (taken out: -1 left). */
static int take_lock(int *fds, char **names, size_t n, const char *ns, const char *name, struct arena *a)
{
    char *want = arena_printf(a, "%s.%s", ns, name);
    for (size_t i = 0; i < n; i++)
        if (fds[i] >= 0 && !strcmp(names[i], want)) {
            int fd = fds[i];
            fds[i] = -1;
            return fd;
        }
    return -1;
}

/* After a failed rename: lets go of the locks taken for new names (those that are still
 * a renamed table's own stay). */
static void release_new_locks(struct atable **at, size_t n, const int *new_fd)
{
    for (size_t j = 0; j < 2 * n; j++) {
        bool held = new_fd[j] < 0;
        for (size_t i = 0; i < n && !held; i++)
            held = at[i] && (at[i]->lock_fd == new_fd[j] || at[i]->lock_fd_c == new_fd[j]);
        if (!held)
            sink_unlock(new_fd[j]);
    }
}

/* Adds the move of a lake table kept under a target name to `aside`, when there is one.
 * (It is no source of this rename and no followed table: a dropped table's history.) */
static int stale_aside(struct cdc_applier *ap, const char *ns, const char *name, const char *aside,
                       struct catalog_rename *out, size_t *n_out, struct arena *a, struct loch_err *err)
{
    struct catalog_table ct;
    struct loch_err e;
    int rc = catalog_load_table(ap->fcat, ns, name, a, &ct, &e);
    if (rc == LOCH_ENOENT)
        return 0;
    if (rc) {
        *err = e;
        return rc;
    }
    log_warn("%s.%s: a lake table kept from a dropped source table is in the way of a rename; it is now %s.%s",
             ns, name, ns, aside);
    out[(*n_out)++] = (struct catalog_rename){ns, name, ns, aside};
    return 0;
}

/* LOCH_EEXIST when a target is a followed table that is not itself renamed away: the
 * source and the lake disagree. */
static int check_targets(struct cdc_applier *ap, const struct cdc_rename *r, size_t n, struct atable **at,
                         const char **ns_to, struct loch_err *err)
{
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        struct atable *t = applier_find_table(ap, r[i].schema_to, r[i].to);
        if (t && t->drop_after_flush)
            t = NULL; /* dropped by this very flush (e.g. renamed out of the followed set first) */
        bool moving = false;
        for (size_t k = 0; k < n && t && !moving; k++)
            moving = at[k] == t;
        if (t && !moving) {
            loch_errf(err, LOCH_EEXIST, "cannot rename %s.%s to %s.%s: replication still follows a table of that name",
                      at[i]->ns, at[i]->name, ns_to[i], r[i].to);
            loch_err_hint(err, "the source renamed onto a table the lake still follows; re-snapshot the source");
        }
        if (t && !moving)
            rc = LOCH_EEXIST;
    }
    return rc;
}

/* The catalog renames into cr (*n_cr): each table and its _changes, then lake tables in
 * the way, moved aside. */
static int plan_renames(struct cdc_applier *ap, const struct cdc_rename *r, size_t n, struct atable **at,
                        const char **ns_to, struct catalog_rename *cr, size_t *n_cr, struct arena *a,
                        struct loch_err *err)
{
    int rc = 0;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(stamp, sizeof stamp, "%Y%m%d%H%M%S", &tmv);
    for (size_t i = 0; i < n; i++) {
        cr[(*n_cr)++] = (struct catalog_rename){at[i]->ns, at[i]->name, ns_to[i], r[i].to};
        char *cto = arena_printf(a, "%s_changes", r[i].to);
        cr[(*n_cr)++] = (struct catalog_rename){at[i]->ns, at[i]->cname, ns_to[i], cto};
    }
    for (size_t i = 0; i < n && !rc; i++) {
        bool vacated = false;
        for (size_t k = 0; k < n && !vacated; k++)
            vacated = same_name(at[k]->ns, at[k]->name, ns_to[i], r[i].to);
        if (vacated)
            continue;
        char *aside = arena_printf(a, "%s_dropped_%s", r[i].to, stamp);
        rc = stale_aside(ap, ns_to[i], r[i].to, aside, cr, n_cr, a, err);
        if (!rc)
            rc = stale_aside(ap, ns_to[i], arena_printf(a, "%s_changes", r[i].to), arena_printf(a, "%s_changes", aside),
                             cr, n_cr, a, err);
    }
    return rc;
}

/* Writer locks under the new names (new_fd, for cr[0..2n)): a name that stays among the
 * renamed tables keeps its lock (flock would wait on our own), the others are taken.
 * old_fd (OUT) holds the old locks not carried over: the vacated names'. */
static int take_new_locks(struct cdc_applier *ap, struct atable **at, size_t n, const struct catalog_rename *cr,
                          int *old_fd, int *new_fd, struct arena *a, struct loch_err *err)
{
    int rc = 0;
    char **old_name = arena_alloc(a, 2 * n * sizeof *old_name);
    for (size_t i = 0; i < n; i++) {
        old_fd[2 * i] = at[i] ? at[i]->lock_fd : -1;
        old_fd[2 * i + 1] = at[i] ? at[i]->lock_fd_c : -1;
        old_name[2 * i] = at[i] ? arena_printf(a, "%s.%s", at[i]->ns, at[i]->name) : "";
        old_name[2 * i + 1] = at[i] ? arena_printf(a, "%s.%s", at[i]->ns, at[i]->cname) : "";
    }
    for (size_t j = 0; j < 2 * n && !rc; j++) {
        const char *name = cr[j].name_to;
        new_fd[j] = take_lock(old_fd, old_name, 2 * n, cr[j].ns_to, name, a);
        if (new_fd[j] < 0)
            rc = sink_lock(ap->o.state_dir, cr[j].ns_to, name, &new_fd[j], err);
    }
    return rc;
}

/* After the renames committed: the vacated locks go, and the tables take their new names
 * and locks. */
static void adopt_names(struct cdc_applier *ap, struct atable **at, const struct cdc_rename *r, size_t n,
                        const char **ns_to, const int *old_fd, const int *new_fd)
{
    for (size_t j = 0; j < 2 * n; j++)
        if (old_fd[j] >= 0)
            sink_unlock(old_fd[j]);
    for (size_t i = 0; i < n; i++) {
        struct atable *t = at[i];
        log_info("%s.%s: source table renamed; the lake tables are now %s.%s and %s.%s_changes", t->ns, t->name,
                 ns_to[i], r[i].to, ns_to[i], r[i].to);
        t->lock_fd = new_fd[2 * i];
        t->lock_fd_c = new_fd[2 * i + 1];
        t->ns = arena_strdup(ap->arena, ns_to[i]);
        t->name = arena_strdup(ap->arena, r[i].to);
        t->cname = arena_printf(ap->arena, "%s_changes", r[i].to);
        t->t.schema = arena_strdup(ap->arena, r[i].schema_to);
        t->t.name = t->name;
    }
}

int cdc_applier_rename_tables(struct cdc_applier *ap, const struct cdc_rename *r, size_t n, const char *checkpoint,
                              struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "rename of %s.%s inside a transaction", n ? r[0].schema : "?",
                         n ? r[0].from : "?");
    int rc = applier_land(ap, err);
    if (rc || n == 0)
        return rc;
    struct arena *a = arena_new();
    struct atable **at = arena_alloc(a, n * sizeof *at);
    const char **ns_to = arena_alloc(a, n * sizeof *ns_to);
    for (size_t i = 0; i < n && !rc; i++) {
        at[i] = applier_find_table(ap, r[i].schema, r[i].from);
        ns_to[i] = arena_printf(a, "%s.%s", ap->o.source, r[i].schema_to);
        if (!at[i])
            rc = loch_errf(err, LOCH_EINVAL, "rename of undeclared table %s.%s", r[i].schema, r[i].from);
    }
    if (!rc)
        rc = check_targets(ap, r, n, at, ns_to, err);
    /* The flush of what is staged (the source flushed what preceded the DDL: only its own
     * changes, e.g. emptying a table that left the followed set), the renames and the
     * checkpoint: one catalog transaction. */
    struct arena *ta = arena_new();
    char *done = NULL;
    bool in_tx = false;
    if (!rc && !(rc = catalog_tx_begin(ap->fcat, err))) {
        in_tx = true;
        rc = cdc_applier_flush(ap, ta, &done, err);
    }
    int *new_fd = arena_alloc(a, 2 * n * sizeof *new_fd), *old_fd = arena_alloc(a, 2 * n * sizeof *old_fd);
    for (size_t j = 0; j < 2 * n; j++)
        new_fd[j] = old_fd[j] = -1;
    struct catalog_rename *cr = arena_alloc(a, (4 * n + 1) * sizeof *cr);
    size_t n_cr = 0;
    if (!rc)
        rc = plan_renames(ap, r, n, at, ns_to, cr, &n_cr, a, err);
    if (!rc)
        rc = take_new_locks(ap, at, n, cr, old_fd, new_fd, a, err);
    struct catalog_kv kv = {applier_ckpt_key(a, ap->o.source), checkpoint};
    if (!rc)
        rc = catalog_rename_tables(ap->fcat, cr, n_cr, &kv, checkpoint ? 1 : 0, err);
    if (in_tx) {
        int rc2 = catalog_tx_end(ap->fcat, rc == 0, rc ? NULL : err);
        if (!rc)
            rc = rc2;
        if (rc)
            ap->broken = true; /* a flush may have moved key indexes past what the lake has */
    }
    if (!rc && (checkpoint || done)) {
        free(ap->durable);
        ap->durable = xstrdup(checkpoint ? checkpoint : done);
    }
    arena_free(ta);
    /* The locks now: on failure the tables keep theirs (the new ones go); on success the
     * tables take the new ones (the vacated go). */
    if (rc)
        release_new_locks(at, n, new_fd);
    else
        adopt_names(ap, at, r, n, ns_to, old_fd, new_fd);
    for (size_t i = 0; i < n && !rc; i++)
        rc = applier_load_md(ap, at[i], err);
    arena_free(a);
    return rc;
}
