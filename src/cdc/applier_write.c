/* applier_write.c: one table's part of a flush: its staged batch turned into a data file,
 * a position-delete file and a _changes file, and its key index moved after the commit.
 * Not for which tables flush when, on which thread, or the commit (applier_flush.c).
 *
 * How a flush works, per touched table (all inside DuckDB, on temp tables):
 *   stg_*  every staged change, integer columns as BIGINT, the rest as text (_seq, _op,
 *          _ts, _pos, _txid, _u = unchanged column list or NULL, c<i> = after image (D:
 *          before image), ok<k> = old key, lk<k> = key under which the lake holds the
 *          row an unchanged value comes from)
 *   kx     the primary-key index (keyidx.h, in memory): key (integers as 8 bytes, other
 *          types as DuckDB's text of the typed value) -> (fid, pos) of the live row; fid
 *          numbers the table's data files (fpath). Read back from the file a clean
 *          stop saved when it still matches the table, else built from the lake (live
 *          files, deletes applied, plus files loaded but not committed yet), by the first
 *          flush that needs it. Insert-only tables keep none.
 * The typed changes (ty) give the live rows (lv: for each key touched, the last put,
 * unless a later change killed it), position deletes for every indexed row whose key
 * was touched, and the _changes rows. All tables + the checkpoint go in one sink_commit;
 * the index moves only after that commit succeeded. */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "sink/sink.h"

/* The flush's work tables are per source table (__ty -> __ty_<no>), because the index
 * moves only after every table's files are written. Rewrites b in place. */
static void sfx(struct buf *b, int no)
{
    static const char *names[] = {"__ty", "__ev", "__lv", "__need", "__oldv"};
    struct buf o = {0};
    for (size_t i = 0; i < b->len;) {
        bool hit = false;
        for (size_t k = 0; k < sizeof names / sizeof names[0] && !hit; k++) {
            size_t l = strlen(names[k]);
            char nx = i + l < b->len ? b->data[i + l] : 0;
            if (i + l <= b->len && !memcmp(b->data + i, names[k], l) && !(nx == '_' || (nx >= 'a' && nx <= 'z'))) {
                buf_printf(&o, "%s_%d", names[k], no);
                i += l;
                hit = true;
            }
        }
        if (!hit)
            buf_putc(&o, b->data[i++]);
    }
    buf_free(b);
    *b = o;
}

static int execs(struct cdc_applier *ap, struct buf *b, int no, struct loch_err *err)
{
    sfx(b, no);
    int64_t t0 = now_ms();
    char head[72];
    snprintf(head, sizeof head, "%s", b->data);
    int rc = execb(ap, b, err);
    log_debug("applier: %lld ms: %s", (long long)(now_ms() - t0), head);
    return rc;
}

int applier_write_file(struct cdc_applier *ap, struct atable *at, bool changes, const char *sql, struct arena *a,
                       struct iceberg_data_file *f, struct loch_err *err)
{
    int64_t t0 = now_ms();
    int rc = sink_write_data(wconn(ap), ap->fst, changes ? at->cmd : at->md, sql, a, f, err);
    log_debug("applier: %lld ms: write %s%s (%lld rows)", (long long)(now_ms() - t0), at->name,
              changes ? " changes" : "", (long long)f->record_count);
    return rc;
}

void applier_select_cols(struct buf *b, struct atable *at, const struct iceberg_schema *s, const char *prefix,
                         size_t limit, struct arena *a)
{
    for (size_t f = 0; f < s->n_fields && f < limit; f++) {
        if (f)
            buf_puts(b, ", ");
        size_t i = 0;
        while (i < at->t.n_columns && strcmp(at->t.columns[i].name, s->fields[f].name))
            i++;
        if (i < at->t.n_columns)
            buf_printf(b, "%s%zu AS %s", prefix, i, arena_sql_ident(a, s->fields[f].name));
        else
            buf_printf(b, "NULL AS %s", arena_sql_ident(a, s->fields[f].name));
    }
}

/* ---- one table's files ---- */

static void keymatch(struct buf *b, struct atable *at, const char *l, const char *lp, bool lnew, const char *r,
                     const char *rp, bool rnew)
{
    if (!at->n_key)
        buf_puts(b, "true");
    for (size_t k = 0; k < at->n_key; k++) {
        if (k)
            buf_puts(b, " AND ");
        if (lnew)
            buf_printf(b, "%s.c%zu", l, at->key[k]);
        else
            buf_printf(b, "%s.%s%zu", l, lp, k);
        buf_puts(b, " IS NOT DISTINCT FROM ");
        if (rnew)
            buf_printf(b, "%s.c%zu", r, at->key[k]);
        else
            buf_printf(b, "%s.%s%zu", r, rp, k);
    }
}

static int each_touched_key(struct cdc_applier *ap, struct atable *at, bool buffered, applier_key_rows_fn fn, void *ctx,
                            struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT DISTINCT ");
    for (size_t k = 0; k < at->n_key; k++) {
        char kx[32];
        snprintf(kx, sizeof kx, "k%zu", k);
        if (k)
            buf_puts(&b, ", ");
        applier_key_sql(&b, kx, &at->t.columns[at->key[k]].type);
    }
    buf_puts(&b, " FROM __ev");
    sfx(&b, at->no);
    int rc = applier_each_key(ap, b.data, at->n_key, 0, buffered, fn, ctx, err);
    buf_free(&b);
    return rc;
}

struct need_ctx {
    struct cdc_applier *ap;
    struct atable *at;
    struct engine_appender *app;
    bool failed;
};

/* Staged rows whose unchanged values come from the lake rows under their keys. */
static void need_rows(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct need_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        int32_t fid;
        int64_t pos;
        if (!keyidx_get(c->at->kx, e[i].key, e[i].len, &fid, &pos))
            continue;
        engine_append_int(c->app, ints[i][0]);
        engine_append_text(c->app, c->at->fpath[fid], strlen(c->at->fpath[fid]));
        engine_append_int(c->app, pos);
        struct loch_err err;
        if (engine_append_end_row(c->app, &err))
            c->failed = true;
    }
}

/* Position deletes gathered from the index, written sorted as the spec asks (by file
 * path, then position): sorting here costs a few ms where DuckDB's ORDER BY on the path
 * strings cost ~50 ms per 50k rows. */
struct del_pos {
    int32_t fid;
    int64_t pos;
};

struct del_ctx {
    struct del_pos *v;
    size_t n, cap;
};

static void del_pos(void *ctx, int32_t fid, int64_t pos)
{
    struct del_ctx *c = ctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 1024;
        c->v = xrealloc(c->v, c->cap * sizeof *c->v);
    }
    c->v[c->n++] = (struct del_pos){fid, pos};
}

/* Keys the batch touched: every indexed row of them gets a position delete. */
static void del_keys(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct atable *at = ((void **)ctx)[0];
    (void)ints;
    keyidx_find_many(at->kx, e, n, del_pos, ((void **)ctx)[1]);
}

static _Thread_local char **sort_paths; /* for by_path: qsort takes no context */

static int by_path(const void *a, const void *b)
{
    return strcmp(sort_paths[*(const int32_t *)a], sort_paths[*(const int32_t *)b]);
}

static int by_rank(const void *a, const void *b)
{
    const struct del_pos *x = a, *y = b; /* fid holds the file's rank by path here */
    if (x->fid != y->fid)
        return x->fid < y->fid ? -1 : 1;
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Fills __del with dc's positions in (path, pos) order; *single is the one data file they
 * all reference, or NULL. */
static int stage_deletes(struct cdc_applier *ap, struct atable *at, struct del_ctx *dc, const char **single,
                         struct loch_err *err)
{
    size_t nf = (size_t)at->next_fid;
    int32_t *order = xmalloc((nf ? nf : 1) * sizeof *order), *rank = xmalloc((nf ? nf : 1) * sizeof *rank);
    for (size_t i = 0; i < nf; i++)
        order[i] = (int32_t)i;
    sort_paths = at->fpath;
    qsort(order, nf, sizeof *order, by_path);
    for (size_t i = 0; i < nf; i++)
        rank[order[i]] = (int32_t)i;
    for (size_t i = 0; i < dc->n; i++)
        dc->v[i].fid = rank[dc->v[i].fid];
    if (dc->n) /* dc->v is NULL when nothing is deleted */
        qsort(dc->v, dc->n, sizeof *dc->v, by_rank);
    *single = dc->n && dc->v[0].fid == dc->v[dc->n - 1].fid ? at->fpath[order[dc->v[0].fid]] : NULL;
    struct engine_appender *app = NULL;
    int rc = exec(ap, "CREATE OR REPLACE TEMP TABLE __del (path VARCHAR, pos BIGINT)", err);
    if (!rc)
        rc = engine_appender_open(wconn(ap), "temp", "__del", &app, err);
    for (size_t i = 0; i < dc->n && !rc; i++) {
        const char *path = at->fpath[order[dc->v[i].fid]];
        engine_append_text(app, path, strlen(path));
        engine_append_int(app, dc->v[i].pos);
        rc = engine_append_end_row(app, err);
    }
    if (app && !rc)
        rc = engine_appender_flush(app, err);
    engine_appender_close(app);
    free(order);
    free(rank);
    return rc;
}

/* Step 1a of a flush with values the source did not send (TOAST): the lake rows they come
 * from, found through the index by the key they had there, into __need (_seq, local,
 * _pos). */
static int stage_needed_rows(struct cdc_applier *ap, struct atable *at, const char *stg, struct loch_err *err)
{
    struct buf b = {0};
    struct need_ctx nc = {ap, at, NULL, 0};
    char need[32];
    snprintf(need, sizeof need, "__need_%d", at->no);
    buf_printf(&b, "CREATE OR REPLACE TEMP TABLE %s (_seq BIGINT, local VARCHAR, _pos BIGINT)", need);
    int rc = execb(ap, &b, err);
    if (!rc)
        rc = engine_appender_open(wconn(ap), "temp", need, &nc.app, err);
    buf_puts(&b, "SELECT ");
    for (size_t k = 0; k < at->n_key; k++) {
        char x[32];
        snprintf(x, sizeof x, "s.lk%zu", k);
        struct buf typed = {0};
        cast_expr(&typed, x, &at->t.columns[at->key[k]].type);
        applier_key_sql(&b, typed.data, &at->t.columns[at->key[k]].type);
        buf_puts(&b, ", ");
        buf_free(&typed);
    }
    buf_printf(&b, "s._seq FROM memory.main.%s s WHERE s._u <> ''", stg);
    if (!rc)
        rc = applier_each_key(ap, b.data, at->n_key, 1, true, need_rows, &nc, err);
    buf_free(&b);
    if (!rc && nc.failed)
        rc = loch_errf(err, LOCH_EENGINE, "staging the rows unchanged values come from");
    if (nc.app && !rc)
        rc = engine_appender_flush(nc.app, err);
    engine_appender_close(nc.app);
    return rc;
}

/* Step 1b: __oldv (_seq, c<i> per column): the values of the rows in __need, read from
 * their files. */
static int read_old_values(struct cdc_applier *ap, struct atable *at, struct arena *a, struct loch_err *err)
{
    int no = at->no;
    size_t n = at->t.n_columns;
    struct buf b = {0};
    struct engine_rows *r = NULL;
    buf_puts(&b, "SELECT DISTINCT local FROM __need");
    sfx(&b, no);
    int rc = engine_query(wconn(ap), b.data, &r, err);
    buf_free(&b);
    if (!rc) {
        size_t nf = engine_rows_count(r);
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __oldv AS SELECT n._seq");
        for (size_t i = 0; i < n; i++)
            buf_printf(&b, ", r.%s AS c%zu", arena_sql_ident(a, at->t.columns[i].name), i);
        if (nf) {
            buf_puts(&b, " FROM __need n JOIN read_parquet([");
            for (size_t i = 0; i < nf; i++) {
                if (i)
                    buf_puts(&b, ", ");
                buf_sql_str(&b, engine_rows_text(r, 0, i, a));
            }
            buf_puts(&b, "], filename = true, file_row_number = true, union_by_name = true) r "
                         "ON r.filename = n.local AND r.file_row_number = n._pos");
        } else {
            buf_puts(&b, " FROM __need n, (SELECT ");
            for (size_t i = 0; i < n; i++) {
                char duck[64];
                buf_printf(&b, "%sNULL::%s AS %s", i ? ", " : "",
                           iceberg_type_duckdb(&at->t.columns[i].type, duck, sizeof duck),
                           arena_sql_ident(a, at->t.columns[i].name));
            }
            buf_puts(&b, ") r WHERE false");
        }
        rc = execs(ap, &b, no, err);
    }
    engine_rows_free(r);
    return rc;
}

/* Step 2: __ty, the staged changes in their lake types (unchanged values from __oldv when
 * toast), each with its transaction's position. */
static int type_changes(struct cdc_applier *ap, struct atable *at, const char *stg, bool toast, struct loch_err *err)
{
    struct buf b = {0};
    buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __ty AS SELECT s._seq, s._op, s._ts, __pos.pos AS _pos, s._txid");
    for (size_t i = 0; i < at->t.n_columns; i++) {
        char x[32];
        snprintf(x, sizeof x, "s.c%zu", at->sc[i]);
        buf_puts(&b, ", ");
        if (toast)
            buf_printf(&b, "CASE WHEN contains(s._u, ',%zu,') THEN o.c%zu ELSE ", at->sc[i], i);
        cast_expr(&b, x, &at->t.columns[i].type);
        buf_printf(&b, "%s AS c%zu", toast ? " END" : "", i);
    }
    for (size_t k = 0; k < at->n_key; k++) {
        char x[32];
        snprintf(x, sizeof x, "s.ok%zu", k);
        buf_puts(&b, ", ");
        cast_expr(&b, x, &at->t.columns[at->key[k]].type);
        buf_printf(&b, " AS ok%zu", k);
    }
    buf_printf(&b, " FROM memory.main.%s s LEFT JOIN memory.main.__pos_%d AS __pos ON __pos.ord = s._tx%s", stg, ap->id,
               toast ? " LEFT JOIN __oldv o ON o._seq = s._seq" : "");
    int rc = execs(ap, &b, at->no, err);
    if (rc)
        loch_err_prefix(err, "converting the changes of %s.%s to their lake types", at->ns, at->name);
    return rc;
}

/* Step 3: __lv, the live rows: for each key touched, the last put, unless a later change
 * killed it (__ev: every key deleted, moved away or put); after the batch's truncate
 * (trunc_seq) only. Insert-only tables: the inserts. */
static int live_rows(struct cdc_applier *ap, struct atable *at, int64_t trunc_seq, struct loch_err *err)
{
    struct buf b = {0};
    int no = at->no, rc = 0;
    if (!at->kills) {
        buf_printf(&b, "CREATE OR REPLACE TEMP TABLE __lv AS SELECT * FROM __ty WHERE _op = 'I' AND _seq > %lld",
                   (long long)trunc_seq);
        return execs(ap, &b, no, err);
    }
    buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __ev AS SELECT ");
    for (size_t k = 0; k < at->n_key; k++)
        buf_printf(&b, "ok%zu AS k%zu, ", k, k);
    buf_puts(&b, "_seq, false AS put FROM __ty WHERE _op = 'D' OR (_op = 'U' AND NOT (");
    keymatch(&b, at, "__ty", "ok", false, "__ty", NULL, true);
    buf_puts(&b, ")) UNION ALL SELECT ");
    for (size_t k = 0; k < at->n_key; k++)
        buf_printf(&b, "c%zu AS k%zu, ", at->key[k], k);
    buf_puts(&b, "_seq, true FROM __ty WHERE _op IN ('I', 'U')");
    rc = execs(ap, &b, no, err);
    if (!rc) {
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __lv AS SELECT t.* FROM __ty t JOIN (SELECT ");
        for (size_t k = 0; k < at->n_key; k++)
            buf_printf(&b, "k%zu, ", k);
        buf_puts(&b, "max(_seq) AS _ms FROM __ev GROUP BY ALL) m ON ");
        keymatch(&b, at, "t", NULL, true, "m", "k", false);
        buf_printf(&b, " AND t._seq = m._ms WHERE t._op IN ('I', 'U') AND t._seq > %lld", (long long)trunc_seq);
        rc = execs(ap, &b, no, err);
    }
    return rc;
}

/* Step 4: the position-delete file: every indexed row whose key was touched, or all of
 * them when the batch truncated the table (p->truncated). */
static int write_deletes(struct cdc_applier *ap, struct atable *at, struct pending *p, struct loch_err *err)
{
    struct del_ctx dc = {0};
    int rc = 0;
    if (p->truncated) {
        keyidx_each(at->kx, del_pos, &dc);
    } else {
        void *ctx[2] = {at, &dc};
        rc = each_touched_key(ap, at, false, del_keys, ctx, err);
    }
    struct sink_deletes_known known = {NULL};
    if (!rc)
        rc = stage_deletes(ap, at, &dc, &known.single_file, err);
    int64_t t0 = now_ms();
    if (!rc)
        rc = sink_write_deletes(wconn(ap), ap->fst, at->md, "SELECT path, pos FROM __del", &known, p->a, &p->del, err);
    free(dc.v);
    log_debug("applier: %lld ms: deletes %s (%lld rows)", (long long)(now_ms() - t0), at->name,
              (long long)p->del.record_count);
    return rc;
}

/* Step 5: the data file of the new live rows (in any order: the index reads their
 * positions back from the file). */
static int write_live(struct cdc_applier *ap, struct atable *at, struct pending *p, struct loch_err *err)
{
    const struct iceberg_schema *s = iceberg_metadata_current_schema(at->md);
    struct buf b = {0};
    buf_puts(&b, "SELECT ");
    applier_select_cols(&b, at, s, "c", s->n_fields, p->a);
    buf_puts(&b, " FROM __lv");
    sfx(&b, at->no);
    int rc = applier_write_file(ap, at, false, b.data, p->a, &p->data, err);
    buf_free(&b);
    return rc;
}

/* Step 6: the change log's file (_changes), in change order. */
static int write_change_log(struct cdc_applier *ap, struct atable *at, struct pending *p, struct loch_err *err)
{
    const struct iceberg_schema *cs = iceberg_metadata_current_schema(at->cmd);
    size_t n = at->t.n_columns;
    struct buf b = {0};
    buf_puts(&b, "SELECT ");
    for (size_t f = 0; f < cs->n_fields; f++) {
        const char *fn = cs->fields[f].name;
        if (f)
            buf_puts(&b, ", ");
        if (!strcmp(fn, "_op"))
            buf_puts(&b, "_op");
        else if (!strcmp(fn, "_commit_ts"))
            buf_puts(&b, "make_timestamptz(_ts)"); /* exact; a TIMESTAMP cast goes through ICU */
        else if (!strcmp(fn, ap->o.position_column))
            cast_expr(&b, "_pos", &ap->o.position_type);
        else if (!strcmp(fn, "_txid"))
            buf_puts(&b, "_txid");
        else {
            size_t i = 0;
            while (i < n && strcmp(at->t.columns[i].name, fn))
                i++;
            if (i < n)
                buf_printf(&b, "c%zu", i);
            else
                buf_puts(&b, "NULL");
        }
        buf_printf(&b, " AS %s", arena_sql_ident(p->a, fn));
    }
    buf_puts(&b, " FROM __ty ORDER BY _seq");
    sfx(&b, at->no);
    int rc = applier_write_file(ap, at, true, b.data, p->a, &p->chg, err);
    buf_free(&b);
    return rc;
}

/* Writes the files of one table's batch `set` (its staging rows are committed); fills p. */
int applier_flush_files(struct cdc_applier *ap, struct atable *at, int set, struct pending *p, struct loch_err *err)
{
    struct tstage *S = &at->s[set];
    char stg[64];
    stg_name(stg, sizeof stg, ap, at, set);
    int rc = 0;
    /* 1. values the source did not send (TOAST): from the lake rows they left unchanged */
    bool toast = S->n_unresolved > 0 && at->n_key;
    if (toast) {
        rc = stage_needed_rows(ap, at, stg, err);
        if (!rc)
            rc = read_old_values(ap, at, p->a, err);
    }
    /* 2. typed changes */
    if (!rc)
        rc = type_changes(ap, at, stg, toast, err);
    /* 3. live rows */
    if (!rc)
        rc = live_rows(ap, at, S->trunc_seq, err);
    /* 4. position deletes of indexed rows whose key was touched (all on truncate) */
    p->truncated = S->trunc_seq >= 0;
    if (!rc && (at->kills || p->truncated))
        rc = write_deletes(ap, at, p, err);
    /* 5. the new live rows; 6. the change log */
    if (!rc)
        rc = write_live(ap, at, p, err);
    if (!rc)
        rc = write_change_log(ap, at, p, err);
    if (rc)
        loch_err_prefix(err, "flushing %s.%s", at->ns, at->name);
    return rc;
}

static void take_keys(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    (void)ints;
    keyidx_take_many(ctx, e, n);
}

/* After the commit: the index follows the lake. */
int applier_advance_index(struct cdc_applier *ap, struct atable *at, int set, struct pending *p, struct loch_err *err)
{
    struct buf b = {0};
    int no = at->no;
    int rc = 0;
    char stg[64];
    stg_name(stg, sizeof stg, ap, at, set);
    if (!at->kills || at->need_index) {
        /* insert-only tables keep no index between flushes (a TRUNCATE builds one for its
         * flush): it would only grow */
        applier_forget_files(at);
        at->need_index = true;
    } else if (p->truncated) {
        keyidx_clear(at->kx);
    } else {
        rc = each_touched_key(ap, at, false, take_keys, at->kx, err);
    }
    if (!rc && p->data.record_count > 0 && !at->need_index) {
        struct arena *a = arena_new();
        int32_t fid = applier_add_file(at, p->data.path);
        rc = applier_index_file(ap, at, fid, applier_key_cols(at, a), "", "", err);
        arena_free(a);
    }
    buf_printf(&b, "DELETE FROM memory.main.%s; DROP TABLE IF EXISTS __ty; DROP TABLE IF EXISTS __ev; "
               "DROP TABLE IF EXISTS __lv; DROP TABLE IF EXISTS __need; DROP TABLE IF EXISTS __oldv; "
               "DROP TABLE IF EXISTS __del", stg);
    if (!rc)
        rc = execs(ap, &b, no, err);
    buf_free(&b);
    return rc;
}
