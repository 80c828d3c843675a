/* status.c: `loch status`'s figures: per replicated table its row count, the newest
 * source commit in its change log and when the lake last moved. Not for printing them
 * (cmd/cdc.c), nor for replication. */
#include "cdc/report.h"

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/applier.h"
#include "iceberg/table.h"
#include "sink/sink.h"

static bool is_changes(const char *name)
{
    size_t l = strlen(name);
    return l > 8 && !strcmp(name + l - 8, "_changes");
}

/* SELECT (count of the table), (newest _commit_ts of its change log in epoch µs) */
static char *figures_sql(struct arena *a, const char *source, const char *schema, const char *name,
                         const char *changes)
{
    struct buf q = {0};
    const char *rel[2] = {name, changes};
    for (int k = 0; k < 2; k++) {
        buf_puts(&q, k ? ", (SELECT epoch_us(max(_commit_ts)) FROM " : "SELECT (SELECT count(*) FROM ");
        buf_sql_ident(&q, source);
        buf_puts(&q, ".");
        buf_sql_ident(&q, schema);
        buf_puts(&q, ".");
        buf_sql_ident(&q, rel[k]);
        buf_puts(&q, ")");
    }
    char *o = arena_strdup(a, q.data);
    buf_free(&q);
    return o;
}

/* The newest snapshot's time of the table or its change log: when the lake last moved. */
static int64_t lake_moved_ms(struct catalog *cat, struct store *st, const char *ns, const char *const names[2],
                             struct arena *a)
{
    int64_t ms = 0;
    for (int k = 0; k < 2; k++) {
        struct sink_table t;
        struct loch_err e;
        if (sink_table_open(cat, st, ns, names[k], a, &t, &e) || t.md->current_snapshot_id < 0)
            continue;
        const struct iceberg_snapshot *sn = iceberg_metadata_snapshot(t.md, t.md->current_snapshot_id);
        if (sn && sn->timestamp_ms > ms)
            ms = sn->timestamp_ms;
    }
    return ms;
}

/* Live files, their average size and the deleted fraction of rows (what maintenance
 * looks at). Left 0 when the table cannot be read. */
static void file_figures(struct store *st, struct catalog *cat, struct cdc_status_table *ot, struct arena *a)
{
    struct sink_table t;
    struct iceberg_scan *scan;
    struct loch_err e;
    if (sink_table_open(cat, st, ot->ns, ot->name, a, &t, &e) || iceberg_scan_plan(st, t.md, -1, a, &scan, &e))
        return;
    int64_t bytes = 0, deleted = 0;
    for (size_t i = 0; i < scan->n_data; i++)
        bytes += scan->data[i].file_size;
    for (size_t i = 0; i < scan->n_deletes; i++) {
        bytes += scan->deletes[i].file_size;
        deleted += scan->deletes[i].record_count;
    }
    ot->n_files = scan->n_data + scan->n_deletes;
    ot->avg_bytes = ot->n_files ? bytes / (int64_t)ot->n_files : 0;
    ot->delete_ratio = scan->total_records ? (double)deleted / (double)scan->total_records : 0;
}

int cdc_status(const struct loch_config *cfg, struct catalog *cat, struct store *st,
               const struct cdc_lake_reader *lake, const char *only, struct arena *a,
               struct cdc_status_source **out, size_t *n_out, struct loch_err *err)
{
    *out = arena_alloc(a, (cfg->n_sources + 1) * sizeof **out);
    *n_out = 0;
    struct catalog_table *t;
    size_t n;
    int rc = catalog_list_tables(cat, NULL, a, &t, &n, err);
    for (size_t s = 0; s < cfg->n_sources && !rc; s++) {
        const struct loch_source *src = &cfg->sources[s];
        if (only && strcmp(only, src->name))
            continue;
        struct cdc_status_source *o = &(*out)[(*n_out)++];
        *o = (struct cdc_status_source){.src = src};
        char *ck = NULL;
        struct loch_err e2;
        if (cdc_applier_checkpoint(cat, src->name, a, &ck, &e2) != 0)
            continue;
        o->checkpoint = ck;
        o->tables = arena_alloc(a, (n + 1) * sizeof *o->tables);
        size_t plen = strlen(src->name);
        for (size_t i = 0; i < n && !rc; i++) {
            if (strncmp(t[i].ns, src->name, plen) || t[i].ns[plen] != '.' || is_changes(t[i].name))
                continue;
            char *cn = arena_printf(a, "%s_changes", t[i].name);
            struct engine_rows *r;
            rc = lake->query(lake->ctx, figures_sql(a, src->name, t[i].ns + plen + 1, t[i].name, cn), &r, err);
            if (rc)
                break;
            struct cdc_status_table *ot = &o->tables[o->n_tables++];
            *ot = (struct cdc_status_table){.ns = t[i].ns, .name = t[i].name, .rows = "?"};
            if (r && engine_rows_count(r)) {
                char *rows = engine_rows_text(r, 0, 0, a);
                char *last = engine_rows_text(r, 1, 0, a);
                if (rows)
                    ot->rows = rows;
                if (last)
                    ot->last_commit_us = strtoll(last, NULL, 10);
            }
            const char *const names[2] = {t[i].name, cn};
            ot->lake_ms = lake_moved_ms(cat, st, t[i].ns, names, a);
            file_figures(st, cat, ot, a);
        }
    }
    return rc;
}
