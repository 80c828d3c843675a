/* plancache.c: parsed table metadata and scan plans kept across statements, keyed by
 * metadata file. A metadata file never changes once written (a table's next state is a
 * new file), so what was read from it stays right; a statement that prunes then reads
 * neither the metadata file nor every manifest again. Not for views (view.c) or for
 * choosing files (iceberg/prune.c).
 *
 * Entries are shared by sessions of every thread: held by reference count for the
 * statement's use, evicted least recently used when no one holds them. */
#include "query/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PLAN_ENTRIES 16      /* tables (states) kept */
#define PLAN_SNAPSHOTS 4     /* plans kept per table state: the current one, a few AT reads */

struct plan_snap {
    int64_t snapshot;
    struct iceberg_scan *plan;
};

struct plan_entry {
    char *location;
    struct arena *a;            /* md and plans */
    struct iceberg_metadata *md;
    struct plan_snap snaps[PLAN_SNAPSHOTS];
    size_t n_snaps;
    unsigned refs;              /* under cache_mu */
    uint64_t used;              /* under cache_mu */
    bool cached;                /* in entries[]; else freed on its last release */
    pthread_mutex_t mu;         /* planning into a, and snaps */
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct plan_entry *entries[PLAN_ENTRIES];
static uint64_t tick;

static void entry_free(struct plan_entry *e)
{
    pthread_mutex_destroy(&e->mu);
    arena_free(e->a);
    free(e->location);
    free(e);
}

/* The cached entry for the metadata file at location, with a reference taken and marked
 * used; NULL when there is none. cache_mu held. */
static struct plan_entry *take_locked(const char *location)
{
    for (size_t i = 0; i < PLAN_ENTRIES; i++)
        if (entries[i] && !strcmp(entries[i]->location, location)) {
            entries[i]->refs++;
            entries[i]->used = ++tick;
            return entries[i];
        }
    return NULL;
}

int lake_plan_table(struct query_session *s, const char *ns, const char *name, const char *location,
                    struct lake_table *t, struct plan_entry **out, struct loch_err *err)
{
    pthread_mutex_lock(&cache_mu);
    struct plan_entry *e = take_locked(location);
    pthread_mutex_unlock(&cache_mu);
    if (!e) {
        /* read outside the lock; a twin read by another session meanwhile is dropped */
        struct plan_entry *n = xcalloc(1, sizeof *n);
        n->location = xstrdup(location);
        n->a = arena_new();
        pthread_mutex_init(&n->mu, NULL);
        int rc = iceberg_table_load(s->env.st, location, n->a, &n->md, err);
        if (rc) {
            entry_free(n);
            return loch_err_prefix(err, "reading the metadata of %s.%s", ns, name);
        }
        n->refs = 1;
        pthread_mutex_lock(&cache_mu);
        e = take_locked(location);
        if (e) {
            pthread_mutex_unlock(&cache_mu);
            entry_free(n);
        } else {
            size_t slot = PLAN_ENTRIES;
            for (size_t i = 0; i < PLAN_ENTRIES; i++) {
                if (!entries[i]) {
                    slot = i;
                    break;
                }
                if (!entries[i]->refs && (slot == PLAN_ENTRIES || entries[i]->used < entries[slot]->used))
                    slot = i;
            }
            if (slot < PLAN_ENTRIES) {
                if (entries[slot])
                    entry_free(entries[slot]);
                entries[slot] = n;
                n->cached = true;
                n->used = ++tick;
            }
            pthread_mutex_unlock(&cache_mu);
            e = n;
        }
    }
    *t = (struct lake_table){arena_strdup(s->stmt_arena, ns), arena_strdup(s->stmt_arena, name),
                             arena_strdup(s->stmt_arena, location), e->md};
    *out = e;
    return 0;
}

int lake_plan_scan(struct query_session *s, struct plan_entry *e, int64_t snapshot, struct iceberg_scan **out,
                   struct loch_err *err)
{
    pthread_mutex_lock(&e->mu);
    struct iceberg_scan *p = NULL;
    for (size_t i = 0; i < e->n_snaps && !p; i++)
        if (e->snaps[i].snapshot == snapshot)
            p = e->snaps[i].plan;
    int rc = 0;
    if (!p) {
        bool keep = e->n_snaps < PLAN_SNAPSHOTS;
        rc = iceberg_scan_plan(s->env.st, e->md, snapshot, keep ? e->a : s->stmt_arena, &p, err);
        if (!rc && keep)
            e->snaps[e->n_snaps++] = (struct plan_snap){snapshot, p};
    }
    if (!rc) {
        /* the caller prunes its copy in place; the files' strings and stats stay shared */
        struct iceberg_scan *c = arena_alloc(s->stmt_arena, sizeof *c);
        *c = *p;
        c->data = p->n_data ? arena_memdup(s->stmt_arena, p->data, p->n_data * sizeof *p->data) : NULL;
        c->deletes = p->n_deletes ? arena_memdup(s->stmt_arena, p->deletes, p->n_deletes * sizeof *p->deletes) : NULL;
        *out = c;
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

void lake_plan_release(struct plan_entry *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&cache_mu);
    bool gone = --e->refs == 0 && !e->cached;
    pthread_mutex_unlock(&cache_mu);
    if (gone)
        entry_free(e);
}
