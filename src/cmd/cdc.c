/* cdc.c: `loch status` (per replicated table: rows, last source commit, lag) and
 * `loch validate --source NAME [--table SCHEMA.TABLE]` (source vs lake, row by row).
 * Not for replication itself (cdc/, replicate.c). */
#include "cmd/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/util.h"
#include "cdc/applier.h"
#include "cdc/source.h"
#include "iceberg/table.h"
#include "query/query.h"

struct grab {
    struct arena *a;
    size_t nrows, ncols;
    char ***v; /* rows x cols text (NULL for SQL NULL) */
};

static int grab_rows(void *ctx, const struct query_result *r)
{
    struct grab *g = ctx;
    if (!r->rows)
        return 0;
    g->nrows = engine_rows_count(r->rows);
    g->ncols = engine_rows_ncols(r->rows);
    g->v = arena_alloc(g->a, (g->nrows + 1) * sizeof *g->v);
    for (size_t i = 0; i < g->nrows; i++) {
        g->v[i] = arena_alloc(g->a, (g->ncols + 1) * sizeof **g->v);
        for (size_t c = 0; c < g->ncols; c++)
            g->v[i][c] = engine_rows_text(r->rows, c, i, g->a);
    }
    return 0;
}

static int lake_query(struct query_session *qs, struct arena *a, const char *sql, struct grab *g, struct loch_err *err)
{
    memset(g, 0, sizeof *g);
    g->a = a;
    return query_run(qs, sql, grab_rows, g, err);
}

static bool is_changes(const char *name)
{
    size_t l = strlen(name);
    return l > 8 && !strcmp(name + l - 8, "_changes");
}

/* ---- status ---- */

int cmd_status(struct app *app, int argc, char **argv)
{
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: loch status [--source NAME]\n");
            return 2;
        }
    }
    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct query_session *qs = NULL;
    struct catalog_table *t;
    size_t n;
    int rc = query_session_open(&env, &qs, &err);
    if (!rc)
        rc = catalog_list_tables(app->cat, NULL, app->a, &t, &n, &err);
    int64_t now = util_now_us();
    for (size_t s = 0; s < app->cfg->n_sources && !rc; s++) {
        const struct loch_source *src = &app->cfg->sources[s];
        if (only && strcmp(only, src->name))
            continue;
        char *ck = NULL;
        struct loch_err e2;
        bool have = cdc_applier_checkpoint(app->cat, src->name, app->a, &ck, &e2) == 0;
        printf("source %s (%s): %s%s\n", src->name, src->type, have ? "replicated up to " : "not loaded yet",
               have ? ck : "");
        if (!have)
            continue;
        printf("  %-40s | %12s | %-26s | %-26s | %s\n", "table", "rows", "last source commit", "in lake at",
               "lag");
        size_t plen = strlen(src->name);
        for (size_t i = 0; i < n && !rc; i++) {
            if (strncmp(t[i].ns, src->name, plen) || t[i].ns[plen] != '.' || is_changes(t[i].name))
                continue;
            struct buf q = {0};
            buf_puts(&q, "SELECT (SELECT count(*) FROM ");
            buf_sql_ident(&q, src->name);
            buf_puts(&q, ".");
            buf_sql_ident(&q, t[i].ns + plen + 1);
            buf_puts(&q, ".");
            buf_sql_ident(&q, t[i].name);
            buf_puts(&q, "), (SELECT epoch_us(max(_commit_ts)) FROM ");
            buf_sql_ident(&q, src->name);
            buf_puts(&q, ".");
            buf_sql_ident(&q, t[i].ns + plen + 1);
            buf_puts(&q, ".");
            char *cn = arena_printf(app->a, "%s_changes", t[i].name);
            buf_sql_ident(&q, cn);
            buf_puts(&q, ")");
            struct grab g;
            rc = lake_query(qs, app->a, q.data, &g, &err);
            buf_free(&q);
            if (rc)
                break;
            /* when the lake last moved: the newest snapshot of the table or its change log */
            int64_t lake_ms = 0;
            const char *names[2] = {t[i].name, cn};
            for (int k = 0; k < 2; k++) {
                struct catalog_table ct;
                struct iceberg_metadata *md;
                if (!catalog_load_table(app->cat, t[i].ns, names[k], app->a, &ct, &e2) &&
                    !iceberg_table_load(app->st, ct.metadata_location, app->a, &md, &e2) && md->current_snapshot_id >= 0) {
                    const struct iceberg_snapshot *sn = iceberg_metadata_snapshot(md, md->current_snapshot_id);
                    if (sn && sn->timestamp_ms > lake_ms)
                        lake_ms = sn->timestamp_ms;
                }
            }
            char last[40] = "-", inlake[40] = "-", lag[40] = "-";
            if (g.nrows && g.v[0][1]) {
                int64_t us = strtoll(g.v[0][1], NULL, 10);
                time_t sec = (time_t)(us / 1000000);
                struct tm tm;
                gmtime_r(&sec, &tm);
                strftime(last, sizeof last, "%Y-%m-%d %H:%M:%SZ", &tm);
                if (lake_ms)
                    snprintf(lag, sizeof lag, "%.3f s", (lake_ms * 1000 - us) / 1e6);
                (void)now;
            }
            if (lake_ms) {
                time_t sec = (time_t)(lake_ms / 1000);
                struct tm tm;
                gmtime_r(&sec, &tm);
                strftime(inlake, sizeof inlake, "%Y-%m-%d %H:%M:%SZ", &tm);
            }
            printf("  %-40s | %12s | %-26s | %-26s | %s\n", arena_printf(app->a, "%s.%s", t[i].ns, t[i].name),
                   g.nrows ? g.v[0][0] : "?", last, inlake, lag);
        }
    }
    query_session_close(qs);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return 0;
}

/* ---- validate ---- */

#define BUCKETS 64

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

static int src_query(struct engine_conn *c, struct arena *a, const char *sql, struct grab *g, struct loch_err *err)
{
    struct engine_rows *r;
    int rc = engine_query(c, sql, &r, err);
    if (rc)
        return rc;
    struct query_result qr = {r, NULL};
    memset(g, 0, sizeof *g);
    g->a = a;
    grab_rows(g, &qr);
    engine_rows_free(r);
    return 0;
}

static const char *cell(struct grab *g, size_t r, size_t c) { return g->v[r][c] ? g->v[r][c] : "NULL"; }

/* Names the keys that differ within one bucket; returns how many. */
static int64_t diff_bucket(struct grab *s, struct grab *l, const char *table, int64_t shown)
{
    size_t i = 0, j = 0;
    int64_t n = 0;
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
            if (shown + n < 20)
                printf("  %s: row (%s) %s\n", table, key, what);
            n++;
        }
    }
    return n;
}

int cmd_validate(struct app *app, int argc, char **argv)
{
    const char *only_src = NULL, *only_table = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--source") && i + 1 < argc)
            only_src = argv[++i];
        else if (!strcmp(argv[i], "--table") && i + 1 < argc)
            only_table = argv[++i];
        else {
            fprintf(stderr, "usage: loch validate --source NAME [--table SCHEMA.TABLE]\n");
            return 2;
        }
    }
    if (!only_src) {
        fprintf(stderr, "usage: loch validate --source NAME [--table SCHEMA.TABLE]\n");
        return 2;
    }
    if (app_open(app, true))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    const struct loch_source *src = NULL;
    for (size_t i = 0; i < app->cfg->n_sources; i++)
        if (!strcmp(app->cfg->sources[i].name, only_src))
            src = &app->cfg->sources[i];
    if (!src) {
        loch_errf(&err, LOCH_ECONFIG, "no source named \"%s\" in the config", only_src);
        app_fail(&err);
        return 1;
    }
    struct engine_conn *conn = NULL;
    struct query_session *qs = NULL;
    struct query_env env = {app->cat, app->st, app->eng, app->cfg->state_dir, NULL};
    struct cdc_run run = {app->cfg, src, app->cat, app->st, app->eng, false, NULL, false};
    struct cdc_table_list tl = {0};
    int rc = engine_connect(app->eng, &conn, &err);
    if (!rc)
        rc = query_session_open(&env, &qs, &err);
    if (!rc)
        rc = cdc_source_copy(&run, conn, only_table, app->a, &tl, &err);
    int64_t total_diff = 0;
    for (size_t i = 0; i < tl.n && !rc; i++) {
        const struct cdc_table *t = &tl.t[i];
        char *full = arena_printf(app->a, "%s.%s.%s", src->name, t->schema, t->name);
        struct buf lr = {0};
        buf_sql_ident(&lr, src->name);
        buf_puts(&lr, ".");
        buf_sql_ident(&lr, t->schema);
        buf_puts(&lr, ".");
        buf_sql_ident(&lr, t->name);
        char *lake_rel = arena_strdup(app->a, lr.data), *src_rel = arena_printf(app->a, "__src_%zu", i);
        buf_free(&lr);
        struct grab sb, lb;
        rc = src_query(conn, app->a, bucket_sql(app->a, t, src_rel), &sb, &err);
        if (!rc)
            rc = lake_query(qs, app->a, bucket_sql(app->a, t, lake_rel), &lb, &err);
        if (rc)
            break;
        /* order-independent per-bucket hashes; only differing buckets are read row by row */
        int64_t n_src = 0, n_diff = 0;
        for (size_t k = 0; k < sb.nrows; k++)
            n_src += strtoll(cell(&sb, k, 1), NULL, 10);
        for (int b = 0; b < BUCKETS && !rc; b++) {
            const char *sh = NULL, *lh = NULL;
            char num[16];
            snprintf(num, sizeof num, "%d", b);
            for (size_t k = 0; k < sb.nrows; k++)
                if (!strcmp(cell(&sb, k, 0), num))
                    sh = arena_printf(app->a, "%s/%s", cell(&sb, k, 1), cell(&sb, k, 2));
            for (size_t k = 0; k < lb.nrows; k++)
                if (!strcmp(cell(&lb, k, 0), num))
                    lh = arena_printf(app->a, "%s/%s", cell(&lb, k, 1), cell(&lb, k, 2));
            if ((!sh && !lh) || (sh && lh && !strcmp(sh, lh)))
                continue;
            struct grab sr, lrw;
            rc = src_query(conn, app->a, rows_sql(app->a, t, src_rel, b), &sr, &err);
            if (!rc)
                rc = lake_query(qs, app->a, rows_sql(app->a, t, lake_rel, b), &lrw, &err);
            if (!rc)
                n_diff += diff_bucket(&sr, &lrw, full, n_diff);
        }
        if (rc)
            break;
        printf("%s: %" PRId64 " rows at the source, %s\n", full, n_src,
               n_diff ? arena_printf(app->a, "%" PRId64 " differing rows", n_diff) : "identical in the lake");
        total_diff += n_diff;
        engine_exec(conn, arena_printf(app->a, "DROP TABLE IF EXISTS __src_%zu", i), NULL);
    }
    query_session_close(qs);
    engine_disconnect(conn);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    return total_diff ? 1 : 0;
}
