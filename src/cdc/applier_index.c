/* applier_index.c: the applier's primary-key index of each table (keyidx.h): built from
 * the lake's live files, fed by each flush, saved at a clean stop and read back on a
 * thread of its own. Not for the index's data structure (keyidx.c) or when a flush
 * uses it (applier_write.c). */
#include "cdc/applier_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "iceberg/table.h"

/* ---- the key index ---- */

/* Appends one key column's text as the index joins them ("N|" for NULL, else "<len>:"). */
static void key_part(struct buf *b, const char *p, size_t len, bool null)
{
    if (null) {
        buf_append(b, "N|", 2);
        return;
    }
    char num[24];
    buf_append(b, num, util_u64_dec(num, len));
    buf_putc(b, ':');
    buf_append(b, p, len);
}

/* How the index reads a key column: integers as BIGINT (compared as 8 bytes: no text to
 * make for the common key type), everything else as DuckDB's text of the typed value. */
void applier_key_sql(struct buf *b, const char *expr, const struct iceberg_type *t)
{
    bool integer = int_type(t);
    buf_printf(b, "CAST(%s AS %s)", expr, integer ? "BIGINT" : "VARCHAR");
}

/* Runs sql, whose columns are the n_key key columns (applier_key_sql) then n_int integers, and
 * calls fn with the rows of each result chunk: e[i] the row's joined key (its fid and pos
 * free for fn to fill), ints[i] its integers (-1 for NULL). Batches let the index overlap
 * its cache misses (keyidx_*_many). Streams in O(1) memory, unless fn uses the connection
 * (an appender's flush would end the stream): buffered. */
int applier_each_key(struct cdc_applier *ap, const char *sql, size_t n_key, size_t n_int, bool buffered,
                     applier_key_rows_fn fn, void *ctx, struct loch_err *err)
{
    struct engine_stmt *st = NULL;
    struct engine_stream *es = NULL;
    int rc = engine_prepare(wconn(ap), sql, &st, err);
    if (!rc)
        rc = engine_execute(st, &es, err);
    if (!rc && buffered)
        rc = engine_stream_buffer(es, err);
    struct buf kb = {0};
    struct keyidx_entry *e = NULL;
    int64_t (*ints)[4] = NULL;
    size_t cap = 0;
    bool integer[64] = {false};
    for (size_t k = 0; !rc && k < n_key && k < 64; k++) {
        enum engine_type t = engine_stream_col(es, k)->type;
        integer[k] = t == ENGINE_T_INT16 || t == ENGINE_T_INT32 || t == ENGINE_T_INT64;
    }
    while (!rc) {
        struct engine_chunk *ch = NULL;
        rc = engine_stream_next(es, &ch, err);
        if (rc || !ch)
            break;
        size_t n = engine_chunk_rows(ch);
        if (n > cap) {
            cap = n;
            e = xrealloc(e, cap * sizeof *e);
            ints = xrealloc(ints, cap * sizeof *ints);
        }
        buf_reset(&kb);
        for (size_t r = 0; r < n; r++) {
            size_t at = kb.len;
            for (size_t k = 0; k < n_key; k++) {
                struct engine_val v;
                bool have = engine_chunk_get(ch, k, r, &v);
                if (have && k < 64 && integer[k]) {
                    char raw[9] = {'I'};
                    memcpy(raw + 1, &v.i, 8);
                    buf_append(&kb, raw, sizeof raw);
                } else {
                    key_part(&kb, have ? v.p : NULL, have ? v.len : 0, !have);
                }
            }
            /* the key's offset in kb while kb may still move; made a pointer below */
            e[r] = (struct keyidx_entry){NULL, kb.len - at, 0, (int64_t)at};
            for (size_t i = 0; i < 4; i++) {
                struct engine_val v;
                ints[r][i] = i < n_int && engine_chunk_get(ch, n_key + i, r, &v) ? v.i : -1;
            }
        }
        for (size_t r = 0; r < n; r++) {
            e[r].key = kb.data ? kb.data + e[r].pos : "";
            e[r].pos = 0;
        }
        fn(ctx, e, (const int64_t (*)[4])ints, n);
    }
    free(e);
    free(ints);
    buf_free(&kb);
    engine_stream_free(es);
    engine_stmt_free(st);
    return rc;
}

void applier_forget_files(struct atable *at)
{
    for (int64_t i = 0; i < at->next_fid; i++)
        free(at->fpath[i]);
    free(at->fpath);
    at->fpath = NULL;
    at->cap_fil = 0;
    at->next_fid = 0;
    keyidx_free(at->kx);
    at->kx = NULL;
}

/* Numbers a data file of the table (path: its URI) for the index. */
int32_t applier_add_file(struct atable *at, const char *path)
{
    if ((size_t)at->next_fid == at->cap_fil) {
        at->cap_fil = at->cap_fil ? 2 * at->cap_fil : 64;
        at->fpath = xrealloc(at->fpath, at->cap_fil * sizeof *at->fpath);
    }
    at->fpath[at->next_fid] = xstrdup(path);
    return (int32_t)at->next_fid++;
}

struct add_ctx {
    struct keyidx *kx;
    int32_t fid;
};

static void add_rows(void *ctx, struct keyidx_entry *e, const int64_t (*ints)[4], size_t n)
{
    struct add_ctx *c = ctx;
    for (size_t i = 0; i < n; i++) {
        e[i].fid = c->fid;
        e[i].pos = ints[i][0];
    }
    keyidx_add_many(c->kx, e, n);
}

/* Indexes the rows of data file fid: key columns read as `cols` (SQL of the key columns,
 * each cast to VARCHAR), positions by file_row_number; `where` (may be empty) filters. */
int applier_index_file(struct cdc_applier *ap, struct atable *at, int32_t fid, const char *cols,
                       const char *read_opts, const char *where, struct loch_err *err)
{
    struct buf b = {0};
    buf_printf(&b, "SELECT %s%sfile_row_number FROM read_parquet(", cols, *cols ? ", " : "");
    buf_sql_str(&b, at->fpath[fid]);
    buf_printf(&b, ", file_row_number = true%s)%s", read_opts, where);
    struct add_ctx c = {at->kx, fid};
    int rc = applier_each_key(ap, b.data, at->n_key, 1, false, add_rows, &c, err);
    buf_free(&b);
    return rc;
}

/* The key columns of a file written with the current schema, as VARCHAR. */
char *applier_key_cols(struct atable *at, struct arena *a)
{
    struct buf b = {0};
    for (size_t k = 0; k < at->n_key; k++) {
        struct buf id = {0};
        buf_sql_ident(&id, at->t.columns[at->key[k]].name);
        if (k)
            buf_puts(&b, ", ");
        applier_key_sql(&b, id.data, &at->t.columns[at->key[k]].type);
        buf_free(&id);
    }
    char *o = arena_strdup(a, b.data ? b.data : "");
    buf_free(&b);
    return o;
}

/* Rebuilds the key index from the live files of the current-state table. */
int applier_build_index(struct cdc_applier *ap, struct atable *at, struct loch_err *err)
{
    int64_t t_start = now_ms();
    struct arena *a = arena_new();
    struct buf b = {0};
    applier_forget_files(at);
    at->kx = keyidx_new();
    at->need_index = false;
    at->idx_snap = at->md->current_snapshot_id;
    struct iceberg_scan *scan = NULL;
    int rc = iceberg_scan_plan(ap->fst, at->md, -1, a, &scan, err);
    if (!rc && scan->n_deletes) {
        buf_puts(&b, "CREATE OR REPLACE TEMP TABLE __loch_dl AS SELECT file_path, pos FROM read_parquet([");
        for (size_t i = 0; i < scan->n_deletes; i++) {
            char *lp = xstrdup(scan->deletes[i].path);
            if (i)
                buf_puts(&b, ", ");
            buf_sql_str(&b, lp ? lp : scan->deletes[i].path);
            free(lp);
        }
        buf_puts(&b, "])");
        rc = execb(ap, &b, err);
    }
    /* key columns by field id: files written before a rename carry the old name */
    struct buf cols = {0}, opts = {0};
    const struct iceberg_schema *cur = iceberg_metadata_current_schema(at->md);
    for (size_t k = 0; k < at->n_key; k++) {
        const struct iceberg_field *f = iceberg_schema_find(cur, at->t.columns[at->key[k]].name);
        char duck[64];
        char kx[32];
        snprintf(kx, sizeof kx, "k%zu", k);
        if (k)
            buf_puts(&cols, ", ");
        applier_key_sql(&cols, kx, &at->t.columns[at->key[k]].type);
        buf_printf(&opts, "%s%d: {name: 'k%zu', type: ", k ? ", " : ", schema = MAP {", f ? f->id : -1, k);
        buf_sql_str(&opts, iceberg_type_duckdb(&at->t.columns[at->key[k]].type, duck, sizeof duck));
        buf_puts(&opts, ", default_value: NULL}");
    }
    if (at->n_key)
        buf_puts(&opts, "}");
    int64_t rows = 0;
    for (size_t i = 0; !rc && i < scan->n_data; i++)
        rows += scan->data[i].record_count;
    if (!rc)
        keyidx_reserve(at->kx, (size_t)rows);
    for (size_t i = 0; !rc && i < scan->n_data; i++) {
        int32_t fid = applier_add_file(at, scan->data[i].path);
        buf_reset(&b);
        if (scan->n_deletes) {
            buf_puts(&b, " WHERE file_row_number NOT IN (SELECT pos FROM __loch_dl WHERE file_path = ");
            buf_sql_str(&b, scan->data[i].path);
            buf_puts(&b, ")");
        }
        rc = applier_index_file(ap, at, fid, cols.data ? cols.data : "", opts.data ? opts.data : "",
                                b.data ? b.data : "", err);
    }
    buf_free(&cols);
    buf_free(&opts);
    log_debug("applier: %lld ms: key index of %s.%s: %zu keys in %lld files", (long long)(now_ms() - t_start),
              at->ns, at->name, keyidx_count(at->kx), (long long)at->next_fid);
    engine_exec(ap->conn, "DROP TABLE IF EXISTS temp.__loch_dl", NULL);
    buf_free(&b);
    arena_free(a);
    if (rc)
        loch_err_prefix(err, "building the key index of %s.%s", at->ns, at->name);
    return rc;
}

/* ---- the key index across restarts ----
 * A clean stop saves each built index to <state>/keyidx/<table uuid>.kx, tagged with the
 * table state it matches: snapshot, schema and how keys are rendered. The first flush of
 * the next start that needs the index loads it when the tag still holds (nothing else
 * committed to the table since), else rebuilds it from the lake. The file is removed once
 * read, so a crash later never meets an index it did not save. */

char *applier_index_path(struct cdc_applier *ap, struct atable *at)
{
    return xasprintf("%s/keyidx/%s.kx", ap->o.state_dir, at->md->table_uuid);
}

static char *index_tag(struct atable *at, struct arena *a)
{
    return arena_printf(a, "v1 %s %lld %d %s", at->md->table_uuid, (long long)at->md->current_snapshot_id,
                        at->md->current_schema_id, applier_key_cols(at, a));
}

void applier_save_index(struct cdc_applier *ap, struct atable *at)
{
    if (at->dropped || !at->kx || at->need_index || !at->md || !at->kills)
        return;
    int64_t t0 = now_ms();
    struct arena *a = arena_new();
    struct loch_err e;
    char *dir = xasprintf("%s/keyidx", ap->o.state_dir);
    char *path = applier_index_path(ap, at);
    int rc = util_mkdirs(dir, &e);
    if (!rc)
        rc = keyidx_save(at->kx, path, index_tag(at, a), at->fpath, (size_t)at->next_fid, &e);
    if (rc)
        log_warn("applier: the key index of %s.%s is not saved (the next start rebuilds it): %s", at->ns,
                 at->name, e.msg);
    else
        log_debug("applier: %lld ms: saved the key index of %s.%s (%zu keys)", (long long)(now_ms() - t0), at->ns,
                  at->name, keyidx_count(at->kx));
    free(path);
    free(dir);
    arena_free(a);
}

static void *preload_main(void *arg)
{
    struct preload *p = arg;
    p->rc = keyidx_load(p->kx, p->path, p->tag, &p->names, &p->n_names, &p->err);
    return NULL;
}

/* Starts reading the index saved for a table just declared, when there is one. */
void applier_preload_start(struct cdc_applier *ap, struct atable *at)
{
    if (at->pre || !at->kills || !at->md)
        return;
    struct arena *a = arena_new();
    struct preload *p = xcalloc(1, sizeof *p);
    p->path = applier_index_path(ap, at);
    p->tag = xstrdup(index_tag(at, a));
    p->kx = keyidx_new();
    arena_free(a);
    if (!util_exists(p->path) || pthread_create(&p->thread, NULL, preload_main, p)) {
        applier_preload_free(p);
        return;
    }
    at->pre = p;
}

struct preload *applier_preload_join(struct atable *at)
{
    struct preload *p = at->pre;
    if (p)
        pthread_join(p->thread, NULL);
    at->pre = NULL;
    return p;
}

void applier_preload_free(struct preload *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n_names; i++)
        free(p->names[i]);
    free(p->names);
    keyidx_free(p->kx);
    free(p->path);
    free(p->tag);
    free(p);
}

/* Takes the index saved at the last clean stop (read ahead by applier_preload_start, or read
 * now); false (rebuild) when there is none that matches the table now. */
bool applier_restore_index(struct cdc_applier *ap, struct atable *at)
{
    int64_t t0 = now_ms();
    struct arena *a = arena_new();
    char *tag = index_tag(at, a);
    struct preload *p = applier_preload_join(at);
    if (!p) {
        p = xcalloc(1, sizeof *p);
        p->path = applier_index_path(ap, at);
        p->tag = xstrdup(tag);
        p->kx = keyidx_new();
        preload_main(p);
    } else if (strcmp(p->tag, tag)) { /* the table moved on since it was declared */
        p->rc = loch_errf(&p->err, LOCH_ENOENT, "the saved key index is of another table state");
    }
    if (p->rc == LOCH_ECORRUPT || p->rc == LOCH_EIO)
        log_warn("applier: rebuilding the key index of %s.%s from the lake: %s", at->ns, at->name, p->err.msg);
    bool ok = p->rc == 0;
    if (ok) {
        applier_forget_files(at);
        at->kx = p->kx;
        p->kx = NULL;
        for (size_t i = 0; i < p->n_names; i++)
            applier_add_file(at, p->names[i]);
        at->need_index = false;
        at->idx_snap = at->md->current_snapshot_id; /* the tag names it */
        log_debug("applier: %lld ms: key index of %s.%s: %zu keys, saved at the last stop", (long long)(now_ms() - t0),
                  at->ns, at->name, keyidx_count(at->kx));
    }
    unlink(p->path); /* taken, stale or damaged: no later start may meet it */
    applier_preload_free(p);
    arena_free(a);
    return ok;
}
