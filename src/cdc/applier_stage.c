/* applier_stage.c: staging into the current batch: a full load's data file
 * (cdc_applier_load) and source transactions (begin, change, commit, rollback), each
 * change appended to its table's staging table with the in-batch map that resolves
 * unchanged values. Not for what a flush does with them (applier_flush.c). */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t fnv(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h;
}

/* ---- full load ---- */

static void add_load(struct cdc_applier *ap, struct atable *at, const struct iceberg_data_file *f)
{
    struct tstage *S = &at->s[ap->cur];
    if (S->n_loads == S->cap_loads) {
        size_t n = S->cap_loads ? 2 * S->cap_loads : 8;
        S->loads = arena_grow(ap->bt[ap->cur].arena, S->loads, S->n_loads, n, sizeof *S->loads);
        S->cap_loads = n;
    }
    S->loads[S->n_loads++] = *f;
}

int cdc_applier_load(struct cdc_applier *ap, const struct cdc_table *t, const char *select_sql, int64_t *n_rows,
                     struct loch_err *err)
{
    struct atable *at = applier_find_table(ap, t->schema, t->name);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "load of undeclared table %s.%s", t->schema, t->name);
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "load of %s.%s inside a transaction", t->schema, t->name);
    int rc = applier_land(ap, err);
    applier_use_threads(ap, true);
    if (rc)
        return rc;
    struct arena *a = ap->bt[ap->cur].arena;
    struct buf q = {0};
    buf_puts(&q, "SELECT ");
    const struct iceberg_schema *s = iceberg_metadata_current_schema(at->md);
    applier_select_cols(&q, at, s, "c", s->n_fields, a);
    buf_printf(&q, " FROM (SELECT ");
    for (size_t i = 0; i < at->t.n_columns; i++) {
        char src[32];
        snprintf(src, sizeof src, "__s%zu", i);
        if (i)
            buf_puts(&q, ", ");
        cast_expr(&q, src, &at->t.columns[i].type);
        buf_printf(&q, " AS c%zu", i);
    }
    buf_printf(&q, " FROM (%s) AS __s(", select_sql);
    for (size_t i = 0; i < at->t.n_columns; i++)
        buf_printf(&q, "%s__s%zu", i ? ", " : "", i);
    buf_puts(&q, "))");
    struct iceberg_data_file f;
    rc = applier_write_file(ap, at, false, q.data, a, &f, err);
    buf_free(&q);
    if (rc)
        return loch_err_prefix(err, "loading %s.%s", at->ns, at->name);
    *n_rows = f.record_count;
    if (f.record_count == 0)
        return 0;
    add_load(ap, at, &f);
    /* The file is committed by the next flush; the key index is built (from the lake and
     * files still to commit) when a flush first needs it, not while loading. */
    applier_forget_files(at);
    at->need_index = true;
    if (!ap->bt[ap->cur].first_ms)
        ap->bt[ap->cur].first_ms = now_ms();
    ap->stats.rows_loaded += f.record_count;
    return rc;
}

/* ---- transactions ---- */

int cdc_applier_begin(struct cdc_applier *ap, const char *txid, int64_t commit_ts_us, struct loch_err *err)
{
    if (ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "transaction %s begins inside transaction %s", txid, ap->txid);
    ap->in_txn = true;
    ap->txn_first_seq = ap->seq;
    ap->txid = arena_strdup(ap->bt[ap->cur].arena, txid);
    ap->ts = commit_ts_us;
    return 0;
}

/* The in-batch map's key: each key value as its length (4 bytes; all ones for NULL) and
 * its bytes. Called per change: no printf. */
static size_t key_text(struct atable *at, const struct cdc_value *v, struct buf *out)
{
    buf_reset(out);
    for (size_t k = 0; k < at->n_key; k++) {
        const struct cdc_value *x = &v[at->key[k]];
        uint32_t len = x->text ? (uint32_t)x->len : UINT32_MAX;
        buf_append(out, &len, sizeof len);
        if (x->text)
            buf_append(out, x->text, x->len);
    }
    return out->len;
}

static struct mentry *map_find(struct tstage *S, const char *key, size_t len, uint64_t h)
{
    if (!S->n_buckets)
        return NULL;
    for (struct mentry *e = S->buckets[h % S->n_buckets]; e; e = e->next)
        if (e->h == h && e->key_len == len && !memcmp(e->key, key, len))
            return e;
    return NULL;
}

static void map_put(struct arena *a, struct tstage *S, const char *key, size_t len, uint64_t h, int64_t seq,
                    struct cdc_value *row, char **lk)
{
    if (!S->n_buckets) {
        S->n_buckets = 4096;
        S->buckets = arena_alloc(a, S->n_buckets * sizeof *S->buckets);
    }
    struct mentry *e = arena_alloc(a, sizeof *e);
    e->h = h;
    e->key = arena_memdup(a, key, len);
    e->key_len = len;
    e->seq = seq;
    e->row = row;
    e->lk = lk;
    size_t b = h % S->n_buckets;
    e->next = S->buckets[b];
    S->buckets[b] = e;
}

static void app_text(struct engine_appender *app, const struct cdc_value *v)
{
    if (!v || !v->text || v->unchanged)
        engine_append_text(app, NULL, 0);
    else
        engine_append_text(app, v->text, v->len);
}

/* The integer a BIGINT staging column gets: the source's canonical decimal text, checked.
 * false when the text is not one. */
static bool parse_int(const struct cdc_value *v, int64_t *out)
{
    const char *p = v->text, *end = v->text + v->len;
    bool neg = p < end && *p == '-';
    p += neg;
    if (p == end || end - p > 19)
        return false;
    uint64_t x = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (x > (uint64_t)INT64_MAX + neg)
        return false;
    *out = neg ? (int64_t)(0 - x) : (int64_t)x;
    return true;
}

static bool int_ok(const struct cdc_value *v)
{
    int64_t x;
    return !v || !v->text || v->unchanged || parse_int(v, &x);
}

static void app_int(struct engine_appender *app, const struct cdc_value *v)
{
    int64_t x;
    if (!v || !v->text || v->unchanged || !parse_int(v, &x))
        engine_append_text(app, NULL, 0);
    else
        engine_append_int(app, x);
}

/* The row an insert or update stages (in a): the after image, with values the source did
 * not send taken from a full old row or from an earlier change of the same key in this
 * batch. Values still unchanged come from the lake at flush: their staging columns are
 * listed in u (",3,5,"), and *lk_out is the key the lake holds that row under. Puts the
 * row in the in-batch map. kb is scratch. */
static struct cdc_value *after_image(struct cdc_applier *ap, struct atable *at, const struct cdc_change *c,
                                     int64_t seq, struct buf *kb, struct buf *u, char ***lk_out)
{
    struct tstage *S = &at->s[ap->cur];
    struct arena *a = ap->bt[ap->cur].arena;
    size_t n = at->t.n_columns;
    const struct cdc_value *old = c->before ? c->before : c->after;
    char **lk = NULL;
    struct cdc_value *row = arena_alloc(a, (n ? n : 1) * sizeof *row);
    bool any_unch = false;
    for (size_t i = 0; i < n; i++) {
        row[i] = c->after[i];
        if (row[i].text && !row[i].unchanged)
            row[i].text = arena_memdup(a, row[i].text, row[i].len);
        any_unch |= row[i].unchanged;
    }
    if (any_unch && c->before) {
        /* a full old row (REPLICA IDENTITY FULL) holds the value */
        for (size_t i = 0; i < n; i++)
            if (row[i].unchanged && !c->before[i].unchanged) {
                row[i] = c->before[i];
                if (row[i].text)
                    row[i].text = arena_memdup(a, row[i].text, row[i].len);
            }
    }
    any_unch = false;
    for (size_t i = 0; i < n; i++)
        any_unch |= row[i].unchanged;
    if (any_unch && at->n_key) {
        size_t kl = key_text(at, old, kb);
        struct mentry *e = map_find(S, kb->data, kl, fnv(kb->data, kl));
        if (e) {
            for (size_t i = 0; i < n; i++)
                if (row[i].unchanged)
                    row[i] = e->row[i];
            lk = e->lk;
        }
    }
    any_unch = false;
    for (size_t i = 0; i < n; i++)
        if (row[i].unchanged) {
            if (!any_unch)
                buf_putc(u, ',');
            buf_printf(u, "%zu,", at->sc[i]);
            any_unch = true;
        }
    if (any_unch && !lk) {
        lk = arena_alloc(a, (at->n_key + 1) * sizeof *lk);
        for (size_t k = 0; k < at->n_key; k++) {
            const struct cdc_value *x = &old[at->key[k]];
            lk[k] = x->text ? arena_strndup(a, x->text, x->len) : NULL;
        }
    }
    if (any_unch)
        S->n_unresolved++;
    if (at->n_key) {
        size_t kl = key_text(at, row, kb);
        map_put(a, S, kb->data, kl, fnv(kb->data, kl), seq, row, any_unch ? lk : NULL);
    }
    *lk_out = lk;
    return row;
}

/* The value staging column j gets: the staged row's (insert, update), the before image's
 * (delete), or NULL (truncate, or a column dropped since). */
static const struct cdc_value *staged_value(const struct atable *at, const struct cdc_change *c,
                                            const struct cdc_value *row, size_t j)
{
    int i = at->rev[j];
    return i < 0 ? NULL : row ? &row[i] : c->op == CDC_DELETE ? &c->before[i] : NULL;
}

/* Checks every value a BIGINT staging column gets before the row is begun, so a bad one
 * leaves no partial row behind. LOCH_ECONVERT naming table, column and value. */
static int check_ints(const struct atable *at, const struct cdc_change *c, const struct cdc_value *row,
                      const struct cdc_value *old, struct loch_err *err)
{
    int rc = 0;
    const struct cdc_value *okv = c->op == CDC_TRUNCATE ? NULL : old;
    for (size_t k = 0; k < at->n_key && okv; k++)
        if (at->kint[k] && !int_ok(&okv[at->key[k]]))
            rc = loch_errf(err, LOCH_ECONVERT, "%s.%s: key column %s: \"%.*s\" is not an integer", at->ns,
                           at->name, at->t.columns[at->key[k]].name, (int)okv[at->key[k]].len, okv[at->key[k]].text);
    for (size_t j = 0; j < at->stg_nc && !rc; j++) {
        const struct cdc_value *v = staged_value(at, c, row, j);
        if (at->sint[j] && !int_ok(v))
            rc = loch_errf(err, LOCH_ECONVERT, "%s.%s: column %s: \"%.*s\" is not an integer", at->ns, at->name,
                           at->t.columns[at->rev[j]].name, (int)v->len, v->text);
    }
    return rc;
}

/* Appends the staging row of change c (layout: create_stage in applier_table.c). */
static int append_change(struct cdc_applier *ap, struct atable *at, const struct cdc_change *c, int64_t seq,
                         const struct cdc_value *row, char **lk, const struct cdc_value *old, const struct buf *u,
                         struct loch_err *err)
{
    struct engine_appender *app = at->app[ap->cur];
    engine_append_int(app, seq);
    char op = (char)c->op;
    engine_append_text(app, &op, 1);
    engine_append_int(app, ap->ts);
    engine_append_int(app, (int64_t)ap->bt[ap->cur].n_txn); /* -> its position at flush */
    engine_append_text(app, ap->txid, strlen(ap->txid));
    engine_append_text(app, u->len ? u->data : NULL, u->len); /* NULL: nothing unchanged */
    for (size_t k = 0; k < at->n_key; k++) {
        if (c->op == CDC_TRUNCATE)
            engine_append_text(app, NULL, 0);
        else if (at->kint[k])
            app_int(app, &old[at->key[k]]);
        else
            app_text(app, &old[at->key[k]]);
        if (lk && lk[k])
            engine_append_text(app, lk[k], strlen(lk[k]));
        else
            engine_append_text(app, NULL, 0);
    }
    for (size_t j = 0; j < at->stg_nc; j++) {
        const struct cdc_value *v = staged_value(at, c, row, j);
        if (at->sint[j])
            app_int(app, v);
        else
            app_text(app, v);
    }
    return engine_append_end_row(app, err);
}

int cdc_applier_change(struct cdc_applier *ap, const struct cdc_change *c, struct loch_err *err)
{
    if (!ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "change outside a transaction");
    struct atable *at = ap->last && ap->last_t == c->table && !ap->last->dropped ? ap->last : NULL;
    if (!at)
        at = applier_find_table(ap, c->table->schema, c->table->name);
    if (!at)
        return loch_errf(err, LOCH_EINVAL, "change for undeclared table %s.%s", c->table->schema, c->table->name);
    ap->last = at;
    ap->last_t = c->table;
    if ((c->op == CDC_INSERT && !c->after) || (c->op == CDC_UPDATE && !c->after) || (c->op == CDC_DELETE && !c->before))
        return loch_errf(err, LOCH_EINVAL, "%c change for %s.%s without its row image", c->op, at->ns, at->name);
    if (!at->kills && (c->op == CDC_UPDATE || c->op == CDC_DELETE))
        return 0; /* insert-only table: the source should not send these */
    int64_t seq = ap->seq++;
    struct tstage *S = &at->s[ap->cur];
    struct cdc_value *row = NULL;
    char **lk = NULL;
    const struct cdc_value *old = c->before ? c->before : c->after;
    struct buf kb = {0}, u = {0};
    if (c->op == CDC_INSERT || c->op == CDC_UPDATE)
        row = after_image(ap, at, c, seq, &kb, &u, &lk);
    int rc = check_ints(at, c, row, old, err);
    if (rc) {
        buf_free(&kb);
        buf_free(&u);
        return rc;
    }
    rc = append_change(ap, at, c, seq, row, lk, old, &u, err);
    if (c->op == CDC_TRUNCATE) {
        S->trunc_seq = seq;
        S->n_buckets = 0; /* nothing earlier in the batch survives */
        S->buckets = NULL;
    }
    S->n_staged++;
    ap->bt[ap->cur].n_changes++;
    ap->stats.changes++;
    buf_free(&kb);
    buf_free(&u);
    if (rc)
        return loch_err_prefix(err, "staging a change of %s.%s", at->ns, at->name);
    return 0;
}

int cdc_applier_commit(struct cdc_applier *ap, const char *position, const char *checkpoint, struct loch_err *err)
{
    if (!ap->in_txn)
        return loch_errf(err, LOCH_EINVAL, "commit outside a transaction");
    ap->in_txn = false;
    struct batch *B = &ap->bt[ap->cur];
    if (B->n_txn == B->cap_pos) {
        size_t nc = B->cap_pos ? 2 * B->cap_pos : 1024;
        B->pos = arena_grow(B->arena, B->pos, B->n_txn, nc, sizeof *B->pos);
        B->cap_pos = nc;
    }
    B->pos[B->n_txn] = arena_strdup(B->arena, position);
    B->checkpoint = arena_strdup(B->arena, checkpoint);
    B->last_ts = ap->ts;
    B->n_txn++;
    ap->stats.transactions++;
    if (!B->first_ms)
        B->first_ms = now_ms();
    if (!B->first_commit_us)
        B->first_commit_us = ap->ts;
    return 0;
}

void cdc_applier_rollback(struct cdc_applier *ap)
{
    if (!ap->in_txn)
        return;
    ap->in_txn = false;
    for (size_t i = 0; i < ap->n_tables; i++) {
        struct atable *at = ap->tables[i];
        struct tstage *S = &at->s[ap->cur];
        if (at->dropped || !at->app[ap->cur])
            continue;
        struct loch_err e;
        engine_appender_flush(at->app[ap->cur], &e);
        char sql[256], name[64];
        stg_name(name, sizeof name, ap, at, ap->cur);
        snprintf(sql, sizeof sql, "DELETE FROM memory.main.%s WHERE _seq >= %lld", name, (long long)ap->txn_first_seq);
        engine_exec(ap->sconn, sql, NULL);
        for (size_t b = 0; b < S->n_buckets; b++)
            while (S->buckets[b] && S->buckets[b]->seq >= ap->txn_first_seq)
                S->buckets[b] = S->buckets[b]->next;
        if (S->trunc_seq >= ap->txn_first_seq)
            S->trunc_seq = -1; /* an earlier truncate of this batch would be lost; see flush */
    }
    ap->seq = ap->txn_first_seq;
}
