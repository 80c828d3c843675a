/* validate.c: `loch validate`'s comparison: the source's rows (copied onto a DuckDB
 * connection by the source, converted as replication converts them) against the lake's,
 * by order-independent per-bucket hashes, reading only differing buckets row by row.
 * Not for copying the source (pg/validate.c, mysql/validate.c), nor for printing (cmd/). */
#include "cdc/report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/change.h"

#define BUCKETS 64

struct grab {
    size_t nrows, ncols;
    char ***v; /* rows x cols text (NULL for SQL NULL) */
};

static void grab_rows(struct grab *g, struct engine_rows *r, struct arena *a)
{
    memset(g, 0, sizeof *g);
    if (!r)
        return;
    g->nrows = engine_rows_count(r);
    g->ncols = engine_rows_ncols(r);
    g->v = arena_alloc(a, (g->nrows + 1) * sizeof *g->v);
    for (size_t i = 0; i < g->nrows; i++) {
        g->v[i] = arena_alloc(a, (g->ncols + 1) * sizeof **g->v);
        for (size_t c = 0; c < g->ncols; c++)
            g->v[i][c] = engine_rows_text(r, c, i, a);
    }
}

static int src_query(struct engine_conn *c, struct arena *a, const char *sql, struct grab *g, struct loch_err *err)
{
    struct engine_rows *r;
    int rc = engine_query(c, sql, &r, err);
    if (rc)
        return rc;
    grab_rows(g, r, a);
    engine_rows_free(r);
    return 0;
}

static int lake_query(const struct cdc_lake_reader *lake, struct arena *a, const char *sql, struct grab *g,
                      struct loch_err *err)
{
    struct engine_rows *r = NULL;
    int rc = lake->query(lake->ctx, sql, &r, err);
    if (!rc)
        grab_rows(g, r, a); /* the reader's until its next call */
    return rc;
}

static void col_list(struct buf *b, const struct cdc_table *t, bool keys_only, const char *alias)
{
    bool first = true;
    for (size_t i = 0; i < t->n_columns; i++) {
        if (keys_only && t->has_key && !t->columns[i].key)
            continue;
        if (!first)
            buf_puts(b, ", ");
        first = false;
        if (alias)
            buf_printf(b, "%s.", alias);
        buf_sql_ident(b, t->columns[i].name);
    }
}

/* SELECT bucket, count, sum of row hashes FROM rel GROUP BY bucket */
static char *bucket_sql(struct arena *a, const struct cdc_table *t, const char *rel)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT hash(");
    col_list(&b, t, true, NULL);
    buf_printf(&b, ") %% %d AS b, count(*) AS n, sum(hash(", BUCKETS);
    col_list(&b, t, false, NULL);
    buf_printf(&b, "))::HUGEINT AS h FROM %s GROUP BY ALL ORDER BY b", rel);
    char *o = arena_strdup(a, b.data);
    buf_free(&b);
    return o;
}

/* SELECT key text, row hash FROM rel WHERE bucket = k ORDER BY key text */
static char *rows_sql(struct arena *a, const struct cdc_table *t, const char *rel, int bucket)
{
    struct buf b = {0};
    buf_puts(&b, "SELECT concat_ws(', '");
    for (size_t i = 0; i < t->n_columns; i++) {
        if (t->has_key && !t->columns[i].key)
            continue;
        buf_puts(&b, ", ");
        buf_sql_str(&b, t->columns[i].name);
        buf_puts(&b, " || '=' || coalesce(CAST(");
        buf_sql_ident(&b, t->columns[i].name);
        buf_puts(&b, " AS VARCHAR), 'NULL')");
    }
    buf_puts(&b, ") AS k, hash(");
    col_list(&b, t, false, NULL);
    buf_puts(&b, ")::VARCHAR AS h FROM ");
    buf_puts(&b, rel);
    buf_puts(&b, " WHERE hash(");
    col_list(&b, t, true, NULL);
    buf_printf(&b, ") %% %d = %d ORDER BY k, h", BUCKETS, bucket);
    char *o = arena_strdup(a, b.data);
    buf_free(&b);
    return o;
}

static const char *cell(struct grab *g, size_t r, size_t c) { return g->v[r][c] ? g->v[r][c] : "NULL"; }

/* Names the keys that differ within one bucket (the first ones in out->shown); adds
 * them to out->n_diff. Both sides come ordered by key text. */
static void diff_bucket(struct grab *s, struct grab *l, struct cdc_validate_table *out)
{
    size_t i = 0, j = 0;
    while (i < s->nrows || j < l->nrows) {
        int c = i == s->nrows ? 1 : j == l->nrows ? -1 : strcmp(cell(s, i, 0), cell(l, j, 0));
        const char *what = NULL, *key = NULL;
        if (c < 0) {
            what = "only in the source";
            key = cell(s, i++, 0);
        } else if (c > 0) {
            what = "only in the lake";
            key = cell(l, j++, 0);
        } else {
            if (strcmp(cell(s, i, 1), cell(l, j, 1))) {
                what = "differs";
                key = cell(s, i, 0);
            }
            i++, j++;
        }
        if (what) {
            if (out->n_shown < CDC_VALIDATE_SHOWN)
                out->shown[out->n_shown++] = (struct cdc_validate_diff){key, what};
            out->n_diff++;
        }
    }
}

/* "a/b" of a bucket's count and hash in g, NULL when g lacks the bucket. */
static const char *bucket_of(struct grab *g, int b, struct arena *a)
{
    char num[16];
    snprintf(num, sizeof num, "%d", b);
    for (size_t k = 0; k < g->nrows; k++)
        if (!strcmp(cell(g, k, 0), num))
            return arena_printf(a, "%s/%s", cell(g, k, 1), cell(g, k, 2));
    return NULL;
}

/* Compares source copy src_rel with lake table lake_rel into *out. */
static int compare_table(struct engine_conn *conn, const struct cdc_lake_reader *lake, const struct cdc_table *t,
                         const char *src_rel, const char *lake_rel, struct arena *a,
                         struct cdc_validate_table *out, struct loch_err *err)
{
    struct grab sb, lb;
    int rc = src_query(conn, a, bucket_sql(a, t, src_rel), &sb, err);
    if (!rc)
        rc = lake_query(lake, a, bucket_sql(a, t, lake_rel), &lb, err);
    if (rc)
        return rc;
    for (size_t k = 0; k < sb.nrows; k++)
        out->n_src += strtoll(cell(&sb, k, 1), NULL, 10);
    for (int b = 0; b < BUCKETS && !rc; b++) {
        const char *sh = bucket_of(&sb, b, a), *lh = bucket_of(&lb, b, a);
        if ((!sh && !lh) || (sh && lh && !strcmp(sh, lh)))
            continue;
        struct grab sr, lr;
        rc = src_query(conn, a, rows_sql(a, t, src_rel, b), &sr, err);
        if (!rc)
            rc = lake_query(lake, a, rows_sql(a, t, lake_rel, b), &lr, err);
        if (!rc)
            diff_bucket(&sr, &lr, out);
    }
    return rc;
}

int cdc_validate(struct cdc_run *run, struct engine_conn *conn, const struct cdc_lake_reader *lake,
                 const char *only, struct arena *a, cdc_validate_fn done, void *ctx, int64_t *n_diff,
                 struct loch_err *err)
{
    *n_diff = 0;
    struct cdc_table_list tl = {0};
    int rc = cdc_source_copy(run, conn, only, a, &tl, err);
    const char *source = run->src->name;
    for (size_t i = 0; i < tl.n && !rc; i++) {
        const struct cdc_table *t = &tl.t[i];
        struct buf lr = {0};
        buf_sql_ident(&lr, source);
        buf_puts(&lr, ".");
        buf_sql_ident(&lr, t->schema);
        buf_puts(&lr, ".");
        buf_sql_ident(&lr, t->name);
        char *lake_rel = arena_strdup(a, lr.data), *src_rel = arena_printf(a, "__src_%zu", i);
        buf_free(&lr);
        struct cdc_validate_table *out = arena_alloc(a, sizeof *out);
        memset(out, 0, sizeof *out);
        out->full = arena_printf(a, "%s.%s.%s", source, t->schema, t->name);
        rc = compare_table(conn, lake, t, src_rel, lake_rel, a, out, err);
        if (rc)
            break;
        *n_diff += out->n_diff;
        if (done)
            done(ctx, out);
        engine_exec(conn, arena_printf(a, "DROP TABLE IF EXISTS %s", src_rel), NULL);
    }
    return rc;
}
