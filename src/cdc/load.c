/* load.c: the shared full load (load.h): a queue of CSV chunk files between the source's
 * reader threads and the calling thread, which loads each file through the applier and
 * commits a table's progress with the range that completes it. At most LOAD_QUEUE files
 * wait on disk, which bounds the disk a load uses. */
#include "cdc/load.h"

#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"

#define LOAD_QUEUE 4
#define LOAD_MAX_READERS 8

struct lstate {                /* per table, guarded by mu */
    int64_t rows, bytes, loaded;
    int chunks_out, chunks_done;
    bool taken, read_done, printed;
};

struct lchunk {
    size_t table;
    char *path;
    int64_t rows;
    char *bound;
    bool last;
};

struct cdc_load {
    struct cdc_run *r;
    struct cdc_load_table *t;
    struct lstate *ls;
    size_t n;
    const char *dir;
    cdc_load_reader_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct lchunk q[LOAD_QUEUE];
    size_t q_len;
    int active;                /* readers still running */
    int seq;
    atomic_bool failed;        /* set under mu (with err); read without it (per row) */
    struct loch_err err;
    double t0;
};

static bool stop_set(const struct cdc_load *L) { return L->r->stop && atomic_load(L->r->stop); }

bool cdc_load_aborted(struct cdc_load *L) { return atomic_load(&L->failed) || stop_set(L); }

static void load_fail(struct cdc_load *L, const struct loch_err *e)
{
    pthread_mutex_lock(&L->mu);
    if (!atomic_load(&L->failed)) {
        L->err = *e;
        atomic_store(&L->failed, true);
    }
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
}

const struct cdc_load_table *cdc_load_table(const struct cdc_load *L, size_t ti) { return &L->t[ti]; }

size_t cdc_load_next(struct cdc_load *L, int reader)
{
    pthread_mutex_lock(&L->mu);
    size_t got = SIZE_MAX;
    for (size_t i = 0; i < L->n && !L->failed && !stop_set(L); i++) {
        struct lstate *ls = &L->ls[i];
        if (ls->taken || (L->t[i].first_reader_only && reader != 0))
            continue;
        ls->taken = true;
        if (L->t[i].done_before) { /* nothing to read, nothing to load */
            ls->read_done = true;
            continue;
        }
        got = i;
        break;
    }
    pthread_mutex_unlock(&L->mu);
    return got;
}

char *cdc_load_chunk_path(struct cdc_load *L)
{
    pthread_mutex_lock(&L->mu);
    int k = L->seq++;
    pthread_mutex_unlock(&L->mu);
    return xasprintf("%s/%s-load-%d.csv", L->dir, L->r->src->name, k);
}

bool cdc_load_push(struct cdc_load *L, size_t ti, char *path, int64_t rows, bool last, char *bound)
{
    pthread_mutex_lock(&L->mu);
    while (L->q_len == LOAD_QUEUE && !L->failed && !stop_set(L))
        pthread_cond_wait(&L->cv, &L->mu);
    bool ok = !L->failed && !stop_set(L);
    if (ok) {
        L->q[L->q_len++] = (struct lchunk){ti, path, rows, bound, last};
        L->ls[ti].chunks_out++;
    } else {
        if (path)
            unlink(path);
        free(path);
        free(bound);
    }
    if (last)
        L->ls[ti].read_done = true;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return ok;
}

void cdc_load_count(struct cdc_load *L, size_t ti, int64_t rows, int64_t bytes)
{
    pthread_mutex_lock(&L->mu);
    L->ls[ti].rows += rows;
    L->ls[ti].bytes += bytes;
    pthread_mutex_unlock(&L->mu);
}

char *cdc_load_bound(char *const *key, size_t n)
{
    json_t *a = json_array();
    for (size_t k = 0; k < n; k++)
        json_array_append_new(a, json_string(key[k]));
    char *o = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return o;
}

char **cdc_load_key_copy(char *const *key, size_t n)
{
    if (!key)
        return NULL;
    char **c = xcalloc(n ? n : 1, sizeof *c);
    for (size_t k = 0; k < n; k++)
        c[k] = xstrdup(key[k]);
    return c;
}

void cdc_load_key_free(char **key, size_t n)
{
    if (!key)
        return;
    for (size_t k = 0; k < n; k++)
        free(key[k]);
    free(key);
}

static char *progress_key(struct arena *a, const char *source, const struct cdc_load_table *t)
{
    return arena_printf(a, "cdc.%s.load.%s.%s", source, t->schema, t->name);
}

void cdc_load_forget(struct cdc_applier *ap, const char *source, const struct cdc_load_table *t, size_t n)
{
    struct arena *a = arena_new(); /* lifetime: this call (set_kv copies) */
    for (size_t i = 0; i < n; i++)
        cdc_applier_set_kv(ap, progress_key(a, source, &t[i]), NULL);
    arena_free(a);
}

/* What an earlier run committed of table t: "done", or the key to continue after. */
static void read_progress(struct cdc_load *L, struct cdc_applier *ap, struct cdc_load_table *t, struct arena *a)
{
    char *v = NULL;
    struct loch_err e;
    if (cdc_applier_get_kv(ap, progress_key(a, L->r->src->name, t), a, &v, &e) != 0 || !v)
        return;
    json_t *j = json_loads(v, JSON_DECODE_ANY, NULL);
    if (json_is_string(j) && !strcmp(json_string_value(j), "done")) {
        t->done_before = true;
    } else if (json_is_array(j) && json_array_size(j) == t->n_key && t->n_key > 0) {
        t->after = arena_alloc(a, t->n_key * sizeof *t->after);
        for (size_t c = 0; c < t->n_key; c++) {
            const char *s = json_string_value(json_array_get(j, c));
            t->after[c] = arena_strdup(a, s ? s : "");
        }
        log_info("source %s: %s.%s: continuing the full load after key %s", L->r->src->name, t->schema, t->name, v);
    }
    json_decref(j);
}

static void progress_lines(struct cdc_load *L, bool final)
{
    double now = util_mono_s();
    pthread_mutex_lock(&L->mu);
    for (size_t i = 0; i < L->n; i++) {
        struct lstate *ls = &L->ls[i];
        const struct cdc_load_table *t = &L->t[i];
        bool done = ls->read_done && ls->chunks_done == ls->chunks_out;
        if (ls->printed || t->done_before || (!ls->taken && !final))
            continue;
        double el = now - L->t0 > 1e-3 ? now - L->t0 : 1e-3, rate = ls->rows / el;
        if (done) {
            fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s (done)\n", L->r->src->name,
                    t->schema, t->name, ls->loaded, ls->bytes / 1e6, ls->loaded / el);
            ls->printed = true;
        } else if (!final && ls->taken) {
            fprintf(stderr, "loch: %s %s.%s: %" PRId64 " rows, %.1f MB, %.0f rows/s, %" PRId64 " in the lake",
                    L->r->src->name, t->schema, t->name, ls->rows, ls->bytes / 1e6, rate, ls->loaded);
            if (t->est > ls->rows && rate > 0)
                fprintf(stderr, ", ETA %.0f s", (t->est - ls->rows) / rate);
            fprintf(stderr, "\n");
        }
    }
    pthread_mutex_unlock(&L->mu);
}

struct reader_arg {
    struct cdc_load *L;
    int k;
};

static void *reader_main(void *arg)
{
    struct reader_arg *ra = arg;
    struct cdc_load *L = ra->L;
    struct loch_err err;
    loch_err_clear(&err);
    int rc = L->fn(L->ctx, L, ra->k, &err);
    if (rc && rc != LOCH_ECANCELED)
        load_fail(L, &err);
    pthread_mutex_lock(&L->mu);
    L->active--;
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->mu);
    return NULL;
}

/* Loads one chunk file into the applier (*got: its rows). */
static int load_chunk(struct cdc_load *L, struct cdc_applier *ap, const struct lchunk *c, int64_t *got,
                      struct loch_err *err)
{
    const struct cdc_load_table *t = &L->t[c->table];
    *got = 0;
    if (!c->path || c->rows == 0)
        return 0;
    struct buf sel = {0};
    buf_puts(&sel, "SELECT * FROM read_csv(");
    buf_sql_str(&sel, c->path);
    buf_puts(&sel, ", header = false, all_varchar = true, allow_quoted_nulls = false, delim = ',', "
                   "quote = '\"', escape = '\"', new_line = '\\n', parallel = true, auto_detect = false, "
                   "columns = {");
    for (size_t k = 0; k < t->t->n_columns; k++)
        buf_printf(&sel, "%s'c%zu': 'VARCHAR'", k ? ", " : "", k);
    buf_puts(&sel, "})");
    int rc = cdc_applier_load(ap, t->t, sel.data, got, err);
    buf_free(&sel);
    if (!rc && *got != c->rows)
        rc = loch_errf(err, LOCH_EINTERNAL, "loading %s.%s: a chunk of %" PRId64 " rows gave %" PRId64, t->schema,
                       t->name, c->rows, *got);
    return rc;
}

static bool keyless_partly_staged(struct cdc_load *L)
{
    bool partial = false;
    pthread_mutex_lock(&L->mu);
    for (size_t k = 0; k < L->n; k++) {
        const struct lstate *ls = &L->ls[k];
        partial |= !L->t[k].n_key && ls->chunks_out > 0 && !(ls->read_done && ls->chunks_done == ls->chunks_out);
    }
    pthread_mutex_unlock(&L->mu);
    return partial;
}

/* Starts the reader threads; returns how many started (a failure to start one fails the
 * load through load_fail, and the others finish what they hold). */
static int start_readers(struct cdc_load *L, int readers, pthread_t *th, struct reader_arg *ra)
{
    int started = 0;
    for (int k = 0; k < readers; k++) {
        ra[k] = (struct reader_arg){L, k};
        pthread_mutex_lock(&L->mu);
        L->active++;
        pthread_mutex_unlock(&L->mu);
        if (pthread_create(&th[k], NULL, reader_main, &ra[k]) != 0) {
            pthread_mutex_lock(&L->mu);
            L->active--;
            pthread_mutex_unlock(&L->mu);
            struct loch_err e;
            loch_errf(&e, LOCH_EINTERNAL, "cannot start a full-load reader thread");
            load_fail(L, &e);
            break;
        }
        started++;
    }
    return started;
}

/* Waits (at most a second, less when progress is due or a stop was asked) for a chunk from
 * the readers and takes it off the queue into *c: true when there was one. *finished: the
 * queue is empty and no reader is left; *failed: the load failed. */
static bool next_chunk(struct cdc_load *L, double last, struct lchunk *c, bool *finished, bool *failed)
{
    pthread_mutex_lock(&L->mu);
    while (!L->q_len && L->active && !L->failed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&L->cv, &L->mu, &ts);
        if ((L->r->progress && util_mono_s() - last >= 1.0) || stop_set(L))
            break;
    }
    bool have = L->q_len > 0 && !L->failed;
    if (have) {
        *c = L->q[0];
        memmove(L->q, L->q + 1, (L->q_len - 1) * sizeof *L->q);
        L->q_len--;
        pthread_cond_broadcast(&L->cv);
    }
    *finished = !L->q_len && !L->active;
    *failed = L->failed;
    pthread_mutex_unlock(&L->mu);
    return have;
}

/* Loads one chunk through the applier. A chunk that ends a key range (or a table) commits
 * with its progress, unless a key-less table is half-staged: its rows must commit all at
 * once, since it cannot be continued. An error fails the whole load (load_fail). */
static int take_chunk(struct cdc_load *L, struct cdc_applier *ap, struct lchunk *c, struct arena *a,
                      struct loch_err *err)
{
    int64_t got = 0;
    int rc = load_chunk(L, ap, c, &got, err);
    pthread_mutex_lock(&L->mu);
    L->ls[c->table].loaded += got;
    L->ls[c->table].chunks_done++;
    pthread_mutex_unlock(&L->mu);
    if (!rc && c->bound) {
        cdc_applier_set_kv(ap, progress_key(a, L->r->src->name, &L->t[c->table]), c->bound);
        if (!keyless_partly_staged(L))
            rc = cdc_applier_flush(ap, NULL, NULL, err);
    }
    if (rc) {
        struct loch_err e = *err;
        load_fail(L, &e);
    }
    return rc;
}

int cdc_load_run(struct cdc_run *r, struct cdc_applier *ap, struct cdc_load_table *t, size_t n, bool resume,
                 int readers, cdc_load_reader_fn fn, void *ctx, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: the load */
    struct cdc_load L = {.r = r, .t = t, .n = n, .fn = fn, .ctx = ctx};
    atomic_init(&L.failed, false);
    L.ls = arena_alloc(a, (n + 1) * sizeof *L.ls);
    L.dir = arena_printf(a, "%s/spill", r->cfg->state_dir);
    int rc = util_mkdirs(L.dir, err);
    if (rc) {
        arena_free(a);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        t[i].done_before = false;
        t[i].after = NULL;
        if (resume)
            read_progress(&L, ap, &t[i], a);
    }
    if (readers > LOAD_MAX_READERS)
        readers = LOAD_MAX_READERS;
    if (readers > (int)n)
        readers = n ? (int)n : 1;
    pthread_mutex_init(&L.mu, NULL);
    pthread_cond_init(&L.cv, NULL);
    pthread_t th[LOAD_MAX_READERS];
    struct reader_arg ra[LOAD_MAX_READERS];
    L.t0 = util_mono_s();
    int started = start_readers(&L, readers, th, ra);
    double last = L.t0;
    for (;;) {
        struct lchunk c = {0};
        bool finished, failed;
        bool have = next_chunk(&L, last, &c, &finished, &failed);
        if (have && !rc)
            rc = take_chunk(&L, ap, &c, a, err);
        if (c.path)
            unlink(c.path);
        free(c.path);
        free(c.bound);
        if (r->progress && (util_mono_s() - last >= 1.0 || finished)) {
            progress_lines(&L, false);
            last = util_mono_s();
        }
        if (finished || (failed && !L.active))
            break;
        if (stop_set(&L)) { /* wake readers waiting on a full queue */
            pthread_mutex_lock(&L.mu);
            pthread_cond_broadcast(&L.cv);
            pthread_mutex_unlock(&L.mu);
        }
    }
    for (int k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    for (size_t i = 0; i < L.q_len; i++) { /* left over after a failure */
        if (L.q[i].path)
            unlink(L.q[i].path);
        free(L.q[i].path);
        free(L.q[i].bound);
    }
    if (!rc && L.failed) {
        *err = L.err;
        rc = err->code ? err->code : LOCH_EINTERNAL;
    }
    if (!rc && stop_set(&L))
        rc = loch_errf(err, LOCH_ECANCELED, "source %s: stopped during the full load", r->src->name);
    if (!rc && r->progress)
        progress_lines(&L, true);
    pthread_cond_destroy(&L.cv);
    pthread_mutex_destroy(&L.mu);
    /* t[].after points into a: the caller must not use it after the load */
    for (size_t i = 0; i < n; i++)
        t[i].after = NULL;
    arena_free(a);
    return rc;
}
