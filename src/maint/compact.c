/* compact.c: compaction (maint.h): small files rewritten into files near the target
 * size, files with many deleted rows rewritten without them, committed as one Iceberg
 * "replace" snapshot that also drops the delete files nothing live needs any more.
 * Not for snapshot expiry or the sweep of unreferenced files (maint.c).
 *
 * Beside a writer that holds the table (the applier replicating it) compaction reads
 * and writes without any lock and validates at commit under the table's commit lock
 * (sink_commit_lock), which every applier flush also holds from its look at the catalog
 * pointer to its commit: when a flush landed since the rewrite read the table, the
 * rewrite is rebased onto it when that flush deleted nothing in the rewritten files
 * and left them live, else done again from the new snapshot. So a delete is never
 * lost with a removed file, nor a deleted row brought back by its rewrite. The
 * catalog's compare-and-swap covers the writers that take no commit lock. */
#include "maint/maint_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "iceberg/table.h"
#include "sink/sink.h"

#define MAX_ATTEMPTS 5

/* One attempt's view of the table and what it rewrites. */
struct plan {
    struct sink_table t;
    struct iceberg_scan *scan;
    int64_t *deleted;   /* per scan->data: rows deleted by live position deletes */
    int *group;         /* per scan->data: the output file it goes into, -1 = stays */
    int n_groups;
    bool *drop_del;     /* per scan->deletes: no live file after the rewrite needs it */
    size_t n_rewrite, n_drop_del;
};

static bool has_path(const struct iceberg_data_file *f, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(f[i].path, path))
            return true;
    return false;
}

#define ALL_GROUPS (-2) /* list_paths: the files of every group */

static void list_paths(struct buf *b, const struct iceberg_data_file *f, size_t n, const int *group, int g)
{
    bool first = true;
    buf_putc(b, '[');
    for (size_t i = 0; i < n; i++) {
        if (group && (g == ALL_GROUPS ? group[i] < 0 : group[i] != g))
            continue;
        if (!first)
            buf_puts(b, ", ");
        buf_sql_str(b, f[i].path);
        first = false;
    }
    buf_putc(b, ']');
}

static int query(struct engine_conn *c, struct buf *b, struct engine_rows **r, struct loch_err *err)
{
    int rc = engine_query_text(c, b->data, r, err);
    buf_reset(b);
    return rc;
}

/* Which files to rewrite, grouped into outputs of about target bytes of live rows. */
static int make_plan(struct maint_ctx *x, struct plan *p, struct loch_err *err)
{
    struct arena *a = x->a;
    struct iceberg_scan *s = p->scan;
    p->deleted = arena_alloc(a, (s->n_data + 1) * sizeof *p->deleted);
    p->group = arena_alloc(a, (s->n_data + 1) * sizeof *p->group);
    p->drop_del = arena_alloc(a, (s->n_deletes + 1) * sizeof *p->drop_del);
    memset(p->deleted, 0, (s->n_data + 1) * sizeof *p->deleted);
    struct buf b = {0};
    int rc = 0;
    engine_exec(x->conn, "CREATE OR REPLACE TEMP TABLE __maint_dl (df VARCHAR, file_path VARCHAR, pos BIGINT)",
                NULL);
    if (s->n_deletes) {
        buf_puts(&b, "INSERT INTO __maint_dl SELECT filename, file_path, pos FROM read_parquet(");
        list_paths(&b, s->deletes, s->n_deletes, NULL, 0);
        buf_puts(&b, ", filename = true)");
        rc = engine_exec(x->conn, b.data, err);
        buf_reset(&b);
        struct engine_rows *r = NULL;
        buf_puts(&b, "SELECT file_path, count(*) FROM __maint_dl GROUP BY 1");
        if (!rc)
            rc = query(x->conn, &b, &r, err);
        for (size_t i = 0; !rc && i < engine_rows_count(r); i++) {
            const char *fp = engine_rows_text(r, 0, i, a);
            for (size_t k = 0; k < s->n_data; k++)
                if (!strcmp(s->data[k].path, fp))
                    p->deleted[k] = strtoll(engine_rows_text(r, 1, i, a), NULL, 10);
        }
        engine_rows_free(r);
    }
    /* Candidates: files under 3/4 of the target (Iceberg's min-file-size-bytes) and files
     * whose deleted fraction reaches the threshold; outputs of about target live bytes. */
    int64_t in_group = 0;
    int g = 0, members = 0;
    for (size_t i = 0; i < s->n_data; i++) {
        const struct iceberg_data_file *f = &s->data[i];
        double dfrac = f->record_count ? (double)p->deleted[i] / (double)f->record_count : 0;
        bool heavy = p->deleted[i] && dfrac >= x->o->delete_ratio;
        bool small = f->file_size < x->target * 3 / 4;
        p->group[i] = -1;
        if (!heavy && !small)
            continue;
        int64_t live = (int64_t)((double)f->file_size * (1 - dfrac));
        if (members && in_group + live > x->target) {
            g++;
            in_group = members = 0;
        }
        p->group[i] = g;
        in_group += live;
        members++;
    }
    /* A group of one file with nothing deleted gains nothing; the others are numbered
     * 0.. in order. */
    int *renum = arena_alloc(a, (size_t)(g + 2) * sizeof *renum);
    for (int k = 0; k <= g; k++) {
        int n_in = 0;
        bool dels = false;
        for (size_t i = 0; i < s->n_data; i++)
            if (p->group[i] == k) {
                n_in++;
                dels |= p->deleted[i] > 0;
            }
        renum[k] = n_in > 1 || (n_in == 1 && dels) ? p->n_groups++ : -1;
    }
    for (size_t i = 0; i < s->n_data; i++) {
        if (p->group[i] >= 0)
            p->group[i] = renum[p->group[i]];
        p->n_rewrite += p->group[i] >= 0;
    }
    /* A delete file goes when no data file live after the rewrite is named in it. */
    struct engine_rows *r = NULL;
    if (!rc && s->n_deletes) {
        buf_puts(&b, "SELECT DISTINCT df, file_path FROM __maint_dl");
        rc = query(x->conn, &b, &r, err);
    }
    for (size_t j = 0; j < s->n_deletes; j++)
        p->drop_del[j] = true;
    for (size_t i = 0; !rc && r && i < engine_rows_count(r); i++) {
        const char *df = engine_rows_text(r, 0, i, a), *fp = engine_rows_text(r, 1, i, a);
        bool live_after = false;
        for (size_t k = 0; k < s->n_data && !live_after; k++)
            live_after = p->group[k] < 0 && !strcmp(s->data[k].path, fp);
        for (size_t j = 0; live_after && j < s->n_deletes; j++)
            if (!strcmp(s->deletes[j].path, df))
                p->drop_del[j] = false;
    }
    engine_rows_free(r);
    for (size_t j = 0; j < s->n_deletes; j++)
        p->n_drop_del += p->drop_del[j];
    buf_free(&b);
    return rc;
}

/* The ORDER BY keys of the table's sort order over the __c<i> aliases of write_group,
 * appended to b; false (nothing appended) when the table is unsorted. */
static bool order_keys(struct buf *b, const struct iceberg_metadata *m, const struct iceberg_schema *cur)
{
    const struct iceberg_sort_order *so = iceberg_metadata_sort_order(m);
    bool any = false;
    for (size_t k = 0; so && k < so->n_fields; k++)
        for (size_t i = 0; i < cur->n_fields; i++)
            if (cur->fields[i].id == so->fields[k].source_id) {
                buf_printf(b, "%s__c%zu %s NULLS %s", any ? ", " : "", i, so->fields[k].desc ? "DESC" : "ASC",
                           so->fields[k].nulls_first ? "FIRST" : "LAST");
                any = true;
            }
    return any;
}

/* Writes group g's live rows (data minus its position deletes, every column by field
 * id, so files of older schemas read right) as one data file.
 *
 * On a table with a sort order the groups are not cut by input file: the live rows of
 * every rewritten file are sorted together and output g gets the g-th of n_groups equal
 * slices (ntile), so the outputs' bounds on the sort columns do not overlap and pruning
 * skips all but one of them for a point query. That reads the inputs once per output,
 * a price only sorted tables pay. */
static int write_group(struct maint_ctx *x, struct plan *p, int g, struct iceberg_data_file *out,
                       struct loch_err *err)
{
    const struct iceberg_schema *cur = iceberg_metadata_current_schema(p->t.md);
    struct buf keys = {0}, b = {0};
    bool sorted = order_keys(&keys, p->t.md, cur);
    buf_puts(&b, "SELECT ");
    for (size_t i = 0; i < cur->n_fields; i++)
        buf_printf(&b, "%s__c%zu", i ? ", " : "", i);
    if (sorted && p->n_groups > 1) {
        buf_puts(&b, " FROM (SELECT *, ntile(");
        buf_printf(&b, "%d) OVER (ORDER BY %s) AS __tile", p->n_groups, keys.data);
    }
    buf_puts(&b, " FROM read_parquet(");
    list_paths(&b, p->scan->data, p->scan->n_data, p->group, sorted ? ALL_GROUPS : g);
    buf_puts(&b, ", filename = true, file_row_number = true, schema = MAP {");
    for (size_t i = 0; i < cur->n_fields; i++) {
        char duck[64];
        buf_printf(&b, "%s%d: {name: '__c%zu', type: ", i ? ", " : "", cur->fields[i].id, i);
        buf_sql_str(&b, iceberg_type_duckdb(&cur->fields[i].type, duck, sizeof duck));
        buf_puts(&b, ", default_value: NULL}");
    }
    buf_puts(&b, "}) AS r WHERE NOT EXISTS (SELECT 1 FROM __maint_dl AS d WHERE d.file_path = r.filename AND "
                 "d.pos = r.file_row_number)");
    if (sorted && p->n_groups > 1)
        buf_printf(&b, ") WHERE __tile = %d", g + 1);
    if (sorted)
        buf_printf(&b, " ORDER BY %s", keys.data);
    int rc = sink_write_data(x->conn, x->st, p->t.md, b.data, x->a, out, err);
    buf_free(&keys);
    buf_free(&b);
    return rc;
}

/* Under the commit lock: the change against the table as it is now, or LOCH_ECONFLICT
 * when a commit since p's snapshot touched what p rewrites. */
static int rebase(struct maint_ctx *x, struct plan *p, struct sink_table *now, struct iceberg_change **out,
                  struct loch_err *err)
{
    struct iceberg_scan *cs = p->scan;
    int rc = 0;
    if (strcmp(now->location, p->t.location)) {
        if (now->md->current_schema_id != p->t.md->current_schema_id)
            return loch_errf(err, LOCH_ECONFLICT, "the schema of %s.%s changed during compaction", x->ns, x->name);
        if ((rc = iceberg_scan_plan(x->st, now->md, -1, x->a, &cs, err)))
            return rc;
        for (size_t i = 0; i < p->scan->n_data; i++)
            if (p->group[i] >= 0 && !has_path(cs->data, cs->n_data, p->scan->data[i].path))
                return loch_errf(err, LOCH_ECONFLICT, "%s left %s.%s during compaction", p->scan->data[i].path,
                                 x->ns, x->name);
        for (size_t j = 0; j < p->scan->n_deletes; j++)
            if (p->drop_del[j] && !has_path(cs->deletes, cs->n_deletes, p->scan->deletes[j].path))
                return loch_errf(err, LOCH_ECONFLICT, "%s left %s.%s during compaction",
                                 p->scan->deletes[j].path, x->ns, x->name);
        /* deletes committed since: none may name a file being rewritten */
        struct buf b = {0};
        size_t n_new = 0;
        buf_puts(&b, "SELECT count(*) FROM read_parquet([");
        for (size_t j = 0; j < cs->n_deletes; j++)
            if (!has_path(p->scan->deletes, p->scan->n_deletes, cs->deletes[j].path)) {
                buf_puts(&b, n_new++ ? ", " : "");
                buf_sql_str(&b, cs->deletes[j].path);
            }
        buf_puts(&b, "]) WHERE file_path IN (SELECT * FROM (VALUES ('')");
        for (size_t i = 0; i < p->scan->n_data; i++)
            if (p->group[i] >= 0) {
                buf_puts(&b, ", (");
                buf_sql_str(&b, p->scan->data[i].path);
                buf_puts(&b, ")");
            }
        buf_puts(&b, "))");
        struct engine_rows *r = NULL;
        if (n_new)
            rc = query(x->conn, &b, &r, err);
        bool hit = !rc && r && strcmp(engine_rows_text(r, 0, 0, x->a), "0");
        engine_rows_free(r);
        buf_free(&b);
        if (rc)
            return rc;
        if (hit)
            return loch_errf(err, LOCH_ECONFLICT, "a writer deleted rows of files being compacted in %s.%s",
                             x->ns, x->name);
    }
    struct iceberg_change *ch = iceberg_change_begin(x->a, now->md, now->location);
    for (size_t i = 0; i < cs->n_data; i++)
        for (size_t k = 0; k < p->scan->n_data; k++)
            if (p->group[k] >= 0 && !strcmp(cs->data[i].path, p->scan->data[k].path))
                iceberg_change_remove_file(ch, &cs->data[i]);
    for (size_t i = 0; i < cs->n_deletes; i++)
        for (size_t k = 0; k < p->scan->n_deletes; k++)
            if (p->drop_del[k] && !strcmp(cs->deletes[i].path, p->scan->deletes[k].path))
                iceberg_change_remove_file(ch, &cs->deletes[i]);
    const struct iceberg_snapshot *read = iceberg_metadata_snapshot(p->t.md, p->t.md->current_snapshot_id);
    iceberg_change_set_data_sequence(ch, read->sequence_number);
    iceberg_change_set_summary(ch, "loch.maintenance", "compaction");
    *out = ch;
    return 0;
}

/* One attempt: plan from the current snapshot, write, validate and commit. With locked,
 * the commit lock is held from the plan to the commit (no flush can land in between),
 * when the rewrite is at most o->locked_max_bytes; else the attempt runs unlocked. */
static int attempt(struct maint_ctx *x, bool locked, struct maint_report *out, struct loch_err *err)
{
    struct plan p = {0};
    int lk = -1;
    int rc = locked ? sink_commit_lock(x->state_dir, x->ns, x->name, &lk, err) : 0;
    if (!rc)
        rc = sink_table_open(x->cat, x->st, x->ns, x->name, x->a, &p.t, err);
    if (!rc)
        rc = iceberg_scan_plan(x->st, p.t.md, -1, x->a, &p.scan, err);
    if (rc) {
        sink_unlock(lk);
        return rc;
    }
    x->target = x->o->target_bytes;
    const char *tp = maint_prop(p.t.md, "write.target-file-size-bytes");
    if (tp && atoll(tp) > 0 && !x->o->target_from_cli)
        x->target = atoll(tp);
    if ((rc = make_plan(x, &p, err))) {
        sink_unlock(lk);
        return rc;
    }
    out->files_before = p.scan->n_data + p.scan->n_deletes;
    out->n_rewritten = p.n_rewrite;
    out->n_deletes_removed = p.n_drop_del;
    out->n_written = (size_t)p.n_groups;
    for (size_t i = 0; i < p.scan->n_data; i++)
        if (p.group[i] >= 0)
            out->bytes_rewritten += p.scan->data[i].file_size;
    if ((!p.n_rewrite && !p.n_drop_del) || x->o->dry_run) {
        out->files_after = out->files_before - p.n_rewrite - p.n_drop_del + (size_t)p.n_groups;
        sink_unlock(lk);
        return 0;
    }
    if (lk >= 0 && out->bytes_rewritten > x->o->locked_max_bytes) {
        sink_unlock(lk); /* too long to hold flushes up: validate at commit instead */
        lk = -1;
    }
    if (lk >= 0)
        maint_progress(x, "%s.%s: holding replication's flushes while %.1f MB are rewritten", x->ns, x->name,
                       (double)out->bytes_rewritten / 1e6);
    struct iceberg_data_file *nf = arena_alloc(x->a, ((size_t)p.n_groups + 1) * sizeof *nf);
    size_t n_nf = 0;
    for (int g = 0; g < p.n_groups && !rc; g++) {
        maint_progress(x, "%s.%s: rewriting file group %d of %d", x->ns, x->name, g + 1, p.n_groups);
        rc = write_group(x, &p, g, &nf[n_nf], err);
        if (!rc && nf[n_nf].record_count > 0)
            n_nf++;
    }
    struct sink_table now;
    struct iceberg_change *ch = NULL;
    if (!rc && lk < 0)
        rc = sink_commit_lock(x->state_dir, x->ns, x->name, &lk, err);
    if (!rc)
        rc = sink_table_open(x->cat, x->st, x->ns, x->name, x->a, &now, err);
    if (!rc)
        rc = rebase(x, &p, &now, &ch, err);
    for (size_t i = 0; i < n_nf && !rc; i++)
        iceberg_change_add_file(ch, &nf[i]);
    if (!rc) {
        struct sink_table_change tc = {x->ns, x->name, now.location, ch};
        rc = sink_commit(x->cat, x->st, &tc, 1, NULL, 0, x->a, err);
    }
    sink_unlock(lk);
    if (rc) { /* nothing references them */
        for (size_t i = 0; i < n_nf; i++)
            store_delete(x->st, nf[i].path, NULL);
        return rc;
    }
    out->n_written = n_nf;
    out->files_after = out->files_before - p.n_rewrite - p.n_drop_del + n_nf;
    out->compacted = true;
    return 0;
}

int maint_compact(struct maint_ctx *x, struct maint_report *out, struct loch_err *err)
{
    int rc = 0;
    for (int i = 0; i < MAX_ATTEMPTS; i++) {
        out->n_rewritten = out->n_deletes_removed = out->n_written = 0;
        out->bytes_rewritten = 0;
        loch_err_clear(err);
        /* Optimistic attempts first; the last holds the commit lock throughout, so a
         * table whose every flush touches the rewritten files still gets compacted. */
        rc = attempt(x, i == MAX_ATTEMPTS - 1 && x->o->locked_max_bytes > 0, out, err);
        if (rc != LOCH_ECONFLICT)
            break;
        out->n_retries++;
        log_info("compaction of %s.%s: %s; planning again from the new snapshot", x->ns, x->name, err->msg);
    }
    engine_exec(x->conn, "DROP TABLE IF EXISTS temp.__maint_dl", NULL);
    if (rc == LOCH_ECONFLICT)
        loch_err_hint(err, "writers kept changing the files being compacted; run it again later");
    return rc;
}
