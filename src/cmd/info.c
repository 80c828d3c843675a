/* info.c: `loch tables`, `loch describe NS.TABLE`, `loch history NS.TABLE`: what the
 * catalog and the table metadata say, without running a query. */
#include "cmd/cmd.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iceberg/table.h"
#include "query/query.h"
#include "sink/sink.h"

static void iso_ms(int64_t ms, char *out, size_t n)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char b[32];
    strftime(b, sizeof b, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(out, n, "%s.%03dZ", b, (int)(ms % 1000));
}

static const char *summary(const struct iceberg_snapshot *s, const char *key)
{
    for (size_t i = 0; i < s->n_summary; i++)
        if (!strcmp(s->summary[i].key, key))
            return s->summary[i].value;
    return NULL;
}

int cmd_tables(struct app *app, int argc, char **argv)
{
    if (argc > 2) {
        fprintf(stderr, "usage: loch tables [NAMESPACE]\n");
        return 2;
    }
    if (app_open(app, false))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct catalog_table *t;
    size_t n;
    if (catalog_list_tables(app->cat, argc == 2 ? argv[1] : NULL, app->a, &t, &n, &err)) {
        app_fail(&err);
        return 1;
    }
    for (size_t i = 0; i < n; i++)
        printf("%s.%s\n", t[i].ns, t[i].name);
    if (n == 0)
        fprintf(stderr, "no tables yet; create one with: loch load NAMESPACE.TABLE FILE\n");
    return 0;
}

static int load(struct app *app, const char *full, struct iceberg_metadata **md, const char **loc,
                struct loch_err *err)
{
    char *ns, *name;
    int rc = query_split_name(app->a, full, &ns, &name, err);
    struct sink_table t;
    if (!rc)
        rc = sink_table_open(app->cat, app->st, ns, name, app->a, &t, err);
    if (!rc) {
        *md = t.md;
        *loc = t.location;
    }
    return rc;
}

int cmd_describe(struct app *app, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loch describe NAMESPACE.TABLE\n");
        return 2;
    }
    if (app_open(app, false))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct iceberg_metadata *md;
    const char *loc;
    struct iceberg_scan *plan = NULL;
    int rc = load(app, argv[1], &md, &loc, &err);
    if (!rc)
        rc = iceberg_scan_plan(app->st, md, -1, app->a, &plan, &err);
    if (rc) {
        app_fail(&err);
        return 1;
    }
    const struct iceberg_schema *s = iceberg_metadata_current_schema(md);
    printf("table      %s\nuuid       %s\nlocation   %s\nmetadata   %s\nschema id  %d\n\n", argv[1], md->table_uuid,
           md->location, loc, s->schema_id);
    printf("  id | column                           | type                 | required | key\n");
    printf("-----+----------------------------------+----------------------+----------+----\n");
    for (size_t i = 0; i < s->n_fields; i++) {
        const struct iceberg_field *f = &s->fields[i];
        char ty[64];
        iceberg_type_format(&f->type, ty, sizeof ty);
        bool key = false;
        for (size_t k = 0; k < s->n_identifier_ids; k++)
            key |= s->identifier_ids[k] == f->id;
        printf("%4d | %-32s | %-20s | %-8s | %s\n", f->id, f->name, ty, f->required ? "yes" : "no", key ? "yes" : "");
    }
    int64_t deleted = 0, bytes = 0;
    for (size_t i = 0; i < plan->n_deletes; i++)
        deleted += plan->deletes[i].record_count;
    for (size_t i = 0; i < plan->n_data; i++)
        bytes += plan->data[i].file_size;
    printf("\n");
    if (md->current_snapshot_id < 0) {
        printf("snapshot   none (empty table)\n");
    } else {
        const struct iceberg_snapshot *snap = iceberg_metadata_snapshot(md, md->current_snapshot_id);
        char ts[40];
        iso_ms(snap->timestamp_ms, ts, sizeof ts);
        printf("snapshot   %" PRId64 " at %s (%zu in history)\n", snap->snapshot_id, ts, md->n_snapshots);
    }
    printf("files      %zu data (%" PRId64 " bytes), %zu position-delete\n", plan->n_data, bytes, plan->n_deletes);
    printf("rows       %" PRId64 " (%" PRId64 " written, %" PRId64 " deleted)\n", plan->total_records - deleted,
           plan->total_records, deleted);
    return 0;
}

int cmd_history(struct app *app, int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loch history NAMESPACE.TABLE\n");
        return 2;
    }
    if (app_open(app, false))
        return 1;
    struct loch_err err;
    loch_err_clear(&err);
    struct iceberg_metadata *md;
    const char *loc;
    if (load(app, argv[1], &md, &loc, &err)) {
        app_fail(&err);
        return 1;
    }
    printf("%-20s | %-24s | %-9s | %13s | %13s | %s\n", "snapshot_id", "committed_at", "operation", "added_rows",
           "total_rows", "parent_id");
    for (size_t i = 0; i < md->n_snapshots; i++) {
        const struct iceberg_snapshot *s = &md->snapshots[i];
        char ts[40], parent[24] = "";
        iso_ms(s->timestamp_ms, ts, sizeof ts);
        if (s->parent_id >= 0)
            snprintf(parent, sizeof parent, "%" PRId64, s->parent_id);
        const char *op = summary(s, "operation"), *added = summary(s, "added-records"),
                   *total = summary(s, "total-records");
        printf("%-20" PRId64 " | %-24s | %-9s | %13s | %13s | %s%s\n", s->snapshot_id, ts, op ? op : "?",
               added ? added : "0", total ? total : "?", parent, s->snapshot_id == md->current_snapshot_id ? "  (current)" : "");
    }
    return 0;
}
