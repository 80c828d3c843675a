/* test_iceberg_table.c: tables through a local store (src/iceberg/table.c): create, write
 * changes, load, plan scans, schema changes, concurrent writers and manifest merging.
 * Not for the JSON or Avro encodings themselves (their own tests). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "iceberg/table.h"

struct fixture {
    char dir[64];
    struct store *store;
    struct arena *a;
    char *location;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    strcpy(f->dir, "/tmp/loch-table-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(store_open(f->dir, &f->store, NULL), 0);
    f->a = arena_new();
    f->location = arena_printf(f->a, "file://%s/db/t", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    store_close(f->store);
    arena_free(f->a);
    free(f);
    return 0;
}

static struct iceberg_schema *base_schema(struct arena *a)
{
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    s->n_fields = 2;
    s->fields = arena_alloc(a, 2 * sizeof *s->fields);
    s->fields[0] = (struct iceberg_field){1, "id", true, {ICEBERG_LONG, 0, 0, 0}, NULL};
    s->fields[1] = (struct iceberg_field){2, "name", false, {ICEBERG_STRING, 0, 0, 0}, NULL};
    s->n_identifier_ids = 1;
    s->identifier_ids = arena_alloc(a, sizeof(int));
    s->identifier_ids[0] = 1;
    return s;
}

/* A data file with id bounds [lo, hi] (8-byte little-endian longs). */
static struct iceberg_data_file data_file(struct arena *a, const char *loc, int n, int64_t lo,
                                          int64_t hi)
{
    struct iceberg_data_file d = {0};
    d.content = ICEBERG_CONTENT_DATA;
    d.path = arena_printf(a, "%s/data/f%03d.parquet", loc, n);
    d.record_count = 10 + n;
    d.file_size = 1000 + n;
    d.n_stats = 1;
    d.stats = arena_alloc(a, sizeof *d.stats);
    d.stats[0].field_id = 1;
    d.stats[0].column_size = 80;
    d.stats[0].value_count = d.record_count;
    d.stats[0].null_count = 0;
    d.stats[0].nan_count = -1;
    uint8_t *l = arena_alloc(a, 8), *u = arena_alloc(a, 8);
    for (int i = 0; i < 8; i++) {
        l[i] = (uint8_t)((uint64_t)lo >> (8 * i));
        u[i] = (uint8_t)((uint64_t)hi >> (8 * i));
    }
    d.stats[0].lower = l;
    d.stats[0].lower_len = 8;
    d.stats[0].upper = u;
    d.stats[0].upper_len = 8;
    d.status = ICEBERG_ADDED;
    d.snapshot_id = d.sequence_number = d.file_sequence_number = -1;
    return d;
}

static const char *summary(const struct iceberg_snapshot *sn, const char *key)
{
    for (size_t i = 0; i < sn->n_summary; i++)
        if (!strcmp(sn->summary[i].key, key))
            return sn->summary[i].value;
    return NULL;
}

static const struct iceberg_snapshot *current(const struct iceberg_metadata *m)
{
    return iceberg_metadata_snapshot(m, m->current_snapshot_id);
}

/* Creates the table; *loc gets the v1 metadata location. */
static struct iceberg_metadata *create(struct fixture *f, const char **loc)
{
    struct iceberg_metadata *m = iceberg_metadata_new(f->a, f->location, base_schema(f->a));
    struct loch_err err;
    int rc = iceberg_table_create(f->store, m, f->a, loc, &err);
    if (rc)
        loch_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    return m;
}

static struct iceberg_metadata *commit(struct fixture *f, struct iceberg_change *c,
                                       const char **loc)
{
    struct iceberg_metadata *m;
    struct loch_err err;
    int rc = iceberg_change_write(c, f->store, loc, &m, &err);
    if (rc)
        loch_err_print(&err, stderr);
    assert_int_equal(rc, 0);
    return m;
}

static void test_create_append_scan(void **state)
{
    struct fixture *f = *state;
    struct loch_err err;
    const char *v1, *v2;
    struct iceberg_metadata *m = create(f, &v1), *back;
    char *want = arena_printf(f->a, "%s/metadata/v1.metadata.json", f->location);
    assert_string_equal(v1, want);
    assert_int_equal(iceberg_table_load(f->store, v1, f->a, &back, &err), 0);
    assert_string_equal(back->table_uuid, m->table_uuid);
    assert_int_equal(back->current_snapshot_id, -1);
    /* v1 exists: a second create is refused. */
    assert_int_equal(iceberg_table_create(f->store, m, f->a, &v2, &err), LOCH_EEXIST);

    struct iceberg_scan *scan;
    assert_int_equal(iceberg_scan_plan(f->store, back, -1, f->a, &scan, &err), 0);
    assert_int_equal(scan->snapshot_id, -1);
    assert_int_equal(scan->n_data, 0);

    struct iceberg_change *c = iceberg_change_begin(f->a, back, v1);
    assert_true(iceberg_change_empty(c));
    struct iceberg_data_file d1 = data_file(f->a, f->location, 1, -5, 100);
    struct iceberg_data_file d2 = data_file(f->a, f->location, 2, 101, 200);
    iceberg_change_add_file(c, &d1);
    iceberg_change_add_file(c, &d2);
    iceberg_change_set_summary(c, "loch.source-position", "0/16B3748");
    assert_false(iceberg_change_empty(c));
    m = commit(f, c, &v2);
    want = arena_printf(f->a, "%s/metadata/v2.metadata.json", f->location);
    assert_string_equal(v2, want);
    assert_int_equal(m->last_sequence_number, 1);
    assert_int_equal(m->n_snapshots, 1);
    assert_int_equal(m->n_metadata_log, 1);
    assert_string_equal(m->metadata_log[0].metadata_file, v1);
    assert_int_equal(back->n_snapshots, 0); /* the base is untouched */

    assert_int_equal(iceberg_table_write_hint(f->store, m, v2, &err), 0);
    char *hint;
    size_t hint_len;
    char *hint_uri = arena_printf(f->a, "%s/metadata/version-hint.text", f->location);
    assert_int_equal(store_get(f->store, hint_uri, &hint, &hint_len, &err), 0);
    assert_string_equal(hint, "2");
    free(hint);

    assert_int_equal(iceberg_table_load(f->store, v2, f->a, &back, &err), 0);
    const struct iceberg_snapshot *sn = current(back);
    assert_non_null(sn);
    assert_int_equal(sn->parent_id, -1);
    assert_int_equal(sn->sequence_number, 1);
    assert_int_equal(sn->schema_id, 0);
    assert_string_equal(summary(sn, "operation"), "append");
    assert_string_equal(summary(sn, "added-data-files"), "2");
    assert_string_equal(summary(sn, "added-records"), "23");
    assert_string_equal(summary(sn, "total-records"), "23");
    assert_string_equal(summary(sn, "total-data-files"), "2");
    assert_string_equal(summary(sn, "total-delete-files"), "0");
    assert_string_equal(summary(sn, "total-files-size"), "2003");
    assert_string_equal(summary(sn, "added-files-size"), "2003");
    assert_string_equal(summary(sn, "loch.source-position"), "0/16B3748");
    assert_int_equal(back->n_snapshot_log, 1);

    assert_int_equal(iceberg_scan_plan(f->store, back, -1, f->a, &scan, &err), 0);
    assert_int_equal(scan->snapshot_id, sn->snapshot_id);
    assert_int_equal(scan->n_data, 2);
    assert_int_equal(scan->n_deletes, 0);
    assert_int_equal(scan->total_records, 23);
    assert_int_equal(scan->schema->schema_id, 0);
    for (size_t i = 0; i < 2; i++) {
        const struct iceberg_data_file *d = &scan->data[i];
        const struct iceberg_data_file *src = strcmp(d->path, d1.path) ? &d2 : &d1;
        assert_string_equal(d->path, src->path);
        assert_int_equal(d->record_count, src->record_count);
        assert_int_equal(d->file_size, src->file_size);
        assert_int_equal(d->sequence_number, 1); /* inherited */
        assert_int_equal(d->snapshot_id, sn->snapshot_id);
        assert_int_equal(d->n_stats, 1);
        assert_int_equal(d->stats[0].lower_len, 8);
        assert_memory_equal(d->stats[0].lower, src->stats[0].lower, 8);
        assert_memory_equal(d->stats[0].upper, src->stats[0].upper, 8);
    }

    assert_int_equal(iceberg_scan_plan(f->store, back, 12345, f->a, &scan, &err), LOCH_ENOENT);
}

/* Two writers from the same base: the second gets EEXIST and leaves no orphans. */
static int count_objects(void *ctx, const char *uri, int64_t size, int64_t mtime_ms)
{
    (void)uri;
    (void)size;
    (*(int *)ctx)++;
    return 0;
}

static void test_concurrent_writers(void **state)
{
    struct fixture *f = *state;
    struct loch_err err;
    const char *v1, *v2, *v2b;
    struct iceberg_metadata *base = create(f, &v1), *m;
    struct iceberg_change *c1 = iceberg_change_begin(f->a, base, v1);
    struct iceberg_change *c2 = iceberg_change_begin(f->a, base, v1);
    struct iceberg_data_file d = data_file(f->a, f->location, 1, 0, 1);
    iceberg_change_add_file(c1, &d);
    iceberg_change_add_file(c2, &d);
    commit(f, c1, &v2);
    int before = 0, after = 0;
    char *prefix = arena_printf(f->a, "%s/metadata/", f->location);
    assert_int_equal(store_list(f->store, prefix, count_objects, &before, &err), 0);
    assert_int_equal(iceberg_change_write(c2, f->store, &v2b, &m, &err), LOCH_EEXIST);
    assert_non_null(strstr(err.hint, "retry"));
    assert_int_equal(store_list(f->store, prefix, count_objects, &after, &err), 0);
    assert_int_equal(before, after);

    struct iceberg_change *empty = iceberg_change_begin(f->a, base, v1);
    assert_int_equal(iceberg_change_write(empty, f->store, &v2b, &m, &err), LOCH_EINVAL);
}

static void test_deletes_and_schema(void **state)
{
    struct fixture *f = *state;
    struct loch_err err;
    const char *loc;
    struct iceberg_metadata *m = create(f, &loc);
    struct iceberg_change *c = iceberg_change_begin(f->a, m, loc);
    struct iceberg_data_file d1 = data_file(f->a, f->location, 1, 0, 9);
    iceberg_change_add_file(c, &d1);
    m = commit(f, c, &loc);
    int64_t first = m->current_snapshot_id;

    /* A position-delete file on d1. */
    struct iceberg_data_file del = {0};
    del.content = ICEBERG_CONTENT_POSITION_DELETES;
    del.path = arena_printf(f->a, "%s/data/del-1.parquet", f->location);
    del.record_count = 3;
    del.file_size = 500;
    del.referenced_data_file = d1.path;
    c = iceberg_change_begin(f->a, m, loc);
    iceberg_change_add_file(c, &del);
    m = commit(f, c, &loc);
    const struct iceberg_snapshot *sn = current(m);
    assert_int_equal(sn->parent_id, first);
    assert_int_equal(sn->sequence_number, 2);
    assert_string_equal(summary(sn, "operation"), "delete");
    assert_string_equal(summary(sn, "added-delete-files"), "1");
    assert_string_equal(summary(sn, "added-position-deletes"), "3");
    assert_string_equal(summary(sn, "total-position-deletes"), "3");
    assert_string_equal(summary(sn, "total-delete-files"), "1");
    assert_string_equal(summary(sn, "total-data-files"), "1");
    assert_string_equal(summary(sn, "total-records"), "11");
    assert_string_equal(summary(sn, "total-files-size"), "1501");
    struct iceberg_scan *scan;
    assert_int_equal(iceberg_scan_plan(f->store, m, -1, f->a, &scan, &err), 0);
    assert_int_equal(scan->n_data, 1);
    assert_int_equal(scan->n_deletes, 1);
    assert_int_equal(scan->data[0].sequence_number, 1);
    assert_int_equal(scan->deletes[0].sequence_number, 2); /* applies to d1 (seq 1) */
    assert_string_equal(scan->deletes[0].referenced_data_file, d1.path);
    assert_int_equal(scan->total_records, 11);

    /* As stored (no inheritance applied): ADDED entries carry an explicit snapshot id
     * (PyIceberg <= 0.10 mangles inherited ones) and null sequence numbers. */
    char *raw;
    size_t raw_len, n_ms, n_entries;
    struct iceberg_manifest *ms;
    struct iceberg_data_file *entries;
    assert_int_equal(store_get(f->store, sn->manifest_list, &raw, &raw_len, &err), 0);
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)raw, raw_len, f->a, &ms, &n_ms, &err), 0);
    free(raw);
    assert_int_equal(n_ms, 2);
    const struct iceberg_manifest *dm = ms[0].content == ICEBERG_CONTENT_POSITION_DELETES ? &ms[0] : &ms[1];
    assert_int_equal(dm->content, ICEBERG_CONTENT_POSITION_DELETES);
    assert_int_equal(dm->sequence_number, 2);
    assert_int_equal(dm->min_sequence_number, 2);
    assert_int_equal(dm->added_snapshot_id, sn->snapshot_id);
    assert_int_equal(dm->added_files, 1);
    assert_int_equal(dm->added_rows, 3);
    assert_int_equal(store_get(f->store, dm->path, &raw, &raw_len, &err), 0);
    assert_int_equal(dm->length, (int64_t)raw_len);
    assert_int_equal(iceberg_manifest_decode((const uint8_t *)raw, raw_len, NULL, f->a, &entries,
                                             &n_entries, &err), 0);
    free(raw);
    assert_int_equal(n_entries, 1);
    assert_int_equal(entries[0].status, ICEBERG_ADDED);
    assert_int_equal(entries[0].snapshot_id, sn->snapshot_id);
    assert_int_equal(entries[0].sequence_number, -1);

    /* Schema-only change: new metadata, no snapshot. */
    struct iceberg_schema *s2;
    struct iceberg_type t = {ICEBERG_DOUBLE, 0, 0, 0};
    assert_int_equal(iceberg_schema_add_column(f->a, m, iceberg_metadata_current_schema(m), "score",
                                               &t, &s2, &err), 0);
    c = iceberg_change_begin(f->a, m, loc);
    iceberg_change_set_schema(c, s2);
    int64_t snap_before = m->current_snapshot_id;
    size_t n_snaps = m->n_snapshots;
    const char *v4;
    m = commit(f, c, &v4);
    assert_non_null(strstr(v4, "/v4.metadata.json"));
    assert_int_equal(m->n_snapshots, n_snaps);
    assert_int_equal(m->current_snapshot_id, snap_before);
    assert_int_equal(m->current_schema_id, 1);
    assert_int_equal(m->n_schemas, 2);
    assert_int_equal(m->last_column_id, 3);
    assert_int_equal(m->last_sequence_number, 2);
    assert_int_equal(m->n_metadata_log, 3);
    struct iceberg_metadata *back;
    assert_int_equal(iceberg_table_load(f->store, v4, f->a, &back, &err), 0);
    assert_int_equal(back->current_schema_id, 1);
    assert_non_null(iceberg_schema_find(iceberg_metadata_current_schema(back), "score"));

    /* Data under the new schema; old snapshots keep their schema. */
    c = iceberg_change_begin(f->a, back, v4);
    struct iceberg_data_file d2 = data_file(f->a, f->location, 2, 10, 19);
    iceberg_change_add_file(c, &d2);
    m = commit(f, c, &loc);
    assert_int_equal(current(m)->schema_id, 1);
    assert_int_equal(iceberg_scan_plan(f->store, m, -1, f->a, &scan, &err), 0);
    assert_int_equal(scan->schema->n_fields, 3);
    assert_int_equal(scan->n_data, 2);
    assert_int_equal(scan->n_deletes, 1);
    assert_int_equal(iceberg_scan_plan(f->store, m, first, f->a, &scan, &err), 0);
    assert_int_equal(scan->schema->n_fields, 2);
    assert_int_equal(scan->n_data, 1);
    assert_int_equal(scan->n_deletes, 0);

    /* Re-staging the current schema reuses its id. */
    c = iceberg_change_begin(f->a, m, loc);
    iceberg_change_set_schema(c, iceberg_metadata_current_schema(m));
    m = commit(f, c, &loc);
    assert_int_equal(m->n_schemas, 2);
    assert_int_equal(m->current_schema_id, 1);
}

static int manifests_in(struct fixture *f, const struct iceberg_metadata *m, int *n_data)
{
    char *data;
    size_t len;
    struct iceberg_manifest *ms;
    size_t n;
    struct loch_err err;
    assert_int_equal(store_get(f->store, current(m)->manifest_list, &data, &len, &err), 0);
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)data, len, f->a, &ms, &n, &err), 0);
    free(data);
    *n_data = 0;
    for (size_t i = 0; i < n; i++)
        *n_data += ms[i].content == ICEBERG_CONTENT_DATA;
    return (int)n;
}

/* 70 commits of one file each: manifests merge past 64, and every file is listed once
 * with the sequence number of the commit that added it. */
static void test_manifest_merge(void **state)
{
    struct fixture *f = *state;
    struct loch_err err;
    const char *loc;
    struct iceberg_metadata *m = create(f, &loc);
    m->n_properties = 1;
    m->properties = arena_alloc(f->a, sizeof *m->properties);
    m->properties[0] = (struct iceberg_kv){"write.metadata.previous-versions-max", "20"};
    enum { N = 70 };
    int max_manifests = 0, n_data = 0;
    for (int i = 1; i <= N; i++) {
        struct iceberg_change *c = iceberg_change_begin(f->a, m, loc);
        struct iceberg_data_file d = data_file(f->a, f->location, i, i, i);
        iceberg_change_add_file(c, &d);
        if (i == 3) {
            struct iceberg_data_file del = {0};
            del.content = ICEBERG_CONTENT_POSITION_DELETES;
            del.path = arena_printf(f->a, "%s/data/del.parquet", f->location);
            del.record_count = 1;
            del.file_size = 100;
            iceberg_change_add_file(c, &del);
        }
        m = commit(f, c, &loc);
        int n = manifests_in(f, m, &n_data);
        if (n > max_manifests)
            max_manifests = n;
    }
    assert_true(max_manifests <= 64 + 1 /* delete manifest */);
    assert_int_equal(m->last_sequence_number, N);
    assert_string_equal(summary(current(m), "total-data-files"), "70");
    assert_string_equal(summary(current(m), "operation"), "append");

    struct iceberg_scan *scan;
    assert_int_equal(iceberg_scan_plan(f->store, m, -1, f->a, &scan, &err), 0);
    assert_int_equal(scan->n_data, N);
    assert_int_equal(scan->n_deletes, 1);
    assert_int_equal(scan->deletes[0].sequence_number, 3);
    int seen[N + 1] = {0};
    int64_t total = 0;
    for (size_t i = 0; i < scan->n_data; i++) {
        int k;
        const char *p = strrchr(scan->data[i].path, '/');
        assert_int_equal(sscanf(p, "/f%d.parquet", &k), 1);
        assert_true(k >= 1 && k <= N);
        seen[k]++;
        /* A merged entry keeps the sequence number and snapshot of the commit that added it. */
        assert_int_equal(scan->data[i].sequence_number, k);
        assert_int_equal(scan->data[i].file_sequence_number, k);
        assert_non_null(iceberg_metadata_snapshot(m, scan->data[i].snapshot_id));
        assert_int_equal(iceberg_metadata_snapshot(m, scan->data[i].snapshot_id)->sequence_number, k);
        assert_int_equal(scan->data[i].n_stats, 1);
        total += scan->data[i].record_count;
    }
    for (int k = 1; k <= N; k++)
        assert_int_equal(seen[k], 1);
    /* The metadata log keeps the newest 20 versions (v51..v70 before v71). */
    assert_int_equal(m->n_metadata_log, 20);
    assert_non_null(strstr(m->metadata_log[19].metadata_file, "/v70.metadata.json"));
    assert_non_null(strstr(m->metadata_log[0].metadata_file, "/v51.metadata.json"));
    assert_non_null(strstr(loc, "/v71.metadata.json"));
    assert_int_equal(scan->total_records, total);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, total);
    assert_string_equal(summary(current(m), "total-records"), buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_create_append_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletes_and_schema, setup, teardown),
        cmocka_unit_test_setup_teardown(test_manifest_merge, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
