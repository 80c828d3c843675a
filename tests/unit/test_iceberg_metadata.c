/* test_iceberg_metadata.c: types and table-metadata JSON (src/iceberg/iceberg_types.c, metadata.c).
 * Not for I/O or manifests (test_iceberg_table.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "iceberg/iceberg.h"

static struct iceberg_schema *make_schema(struct arena *a, int id, size_t n)
{
    static const char *names[] = {"id", "name", "amount", "ts"};
    static const char *types[] = {"long", "string", "decimal(18,2)", "timestamptz"};
    struct iceberg_schema *s = arena_alloc(a, sizeof *s);
    s->schema_id = id;
    s->n_fields = n;
    s->fields = arena_alloc(a, n * sizeof *s->fields);
    for (size_t i = 0; i < n; i++) {
        s->fields[i].id = (int)i + 1;
        s->fields[i].name = names[i];
        s->fields[i].required = i == 0;
        assert_int_equal(iceberg_type_parse(types[i], &s->fields[i].type, NULL), 0);
    }
    s->fields[1].doc = "customer \"name\"";
    s->n_identifier_ids = 1;
    s->identifier_ids = arena_alloc(a, sizeof(int));
    s->identifier_ids[0] = 1;
    return s;
}

static void test_types(void **state)
{
    (void)state;
    static const char *spellings[] = {"boolean", "int", "long", "float", "double",
                                      "decimal(38,10)", "date", "time", "timestamp",
                                      "timestamptz", "string", "uuid", "fixed[16]", "binary"};
    static const char *duck[] = {"BOOLEAN", "INTEGER", "BIGINT", "FLOAT", "DOUBLE",
                                 "DECIMAL(38,10)", "DATE", "TIME", "TIMESTAMP",
                                 "TIMESTAMPTZ", "VARCHAR", "UUID", "BLOB", "BLOB"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        struct iceberg_type t;
        char out[64];
        assert_int_equal(iceberg_type_parse(spellings[i], &t, NULL), 0);
        iceberg_type_format(&t, out, sizeof out);
        assert_string_equal(out, spellings[i]);
        assert_string_equal(iceberg_type_duckdb(&t, out, sizeof out), duck[i]);
    }
    struct iceberg_type t, u;
    struct loch_err err;
    assert_int_equal(iceberg_type_parse("decimal( 9 , 2 )", &t, NULL), 0);
    assert_int_equal(t.precision, 9);
    assert_int_equal(t.scale, 2);
    assert_int_equal(iceberg_type_parse("decimal(39,2)", &t, &err), LOCH_EUNSUPPORTED);
    assert_int_equal(iceberg_type_parse("decimal(5,6)", &t, &err), LOCH_EUNSUPPORTED);
    assert_int_equal(iceberg_type_parse("fixed[0]", &t, &err), LOCH_EUNSUPPORTED);
    assert_int_equal(iceberg_type_parse("variant", &t, &err), LOCH_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "variant"));
    assert_int_equal(iceberg_type_parse("decimal(9,2)x", &t, &err), LOCH_EUNSUPPORTED);

    iceberg_type_parse("int", &t, NULL);
    iceberg_type_parse("long", &u, NULL);
    assert_true(iceberg_type_promotable(&t, &u));
    assert_false(iceberg_type_promotable(&u, &t));
    assert_true(iceberg_type_promotable(&t, &t));
    iceberg_type_parse("float", &t, NULL);
    iceberg_type_parse("double", &u, NULL);
    assert_true(iceberg_type_promotable(&t, &u));
    iceberg_type_parse("decimal(9,2)", &t, NULL);
    iceberg_type_parse("decimal(18,2)", &u, NULL);
    assert_true(iceberg_type_promotable(&t, &u));
    assert_false(iceberg_type_promotable(&u, &t));
    iceberg_type_parse("decimal(18,3)", &u, NULL);
    assert_false(iceberg_type_promotable(&t, &u));
    assert_false(iceberg_type_equal(&t, &u));
    iceberg_type_parse("string", &u, NULL);
    assert_false(iceberg_type_promotable(&t, &u));
}

/* Builds metadata with 2 schemas, 2 snapshots, properties and both logs. */
static struct iceberg_metadata *make_metadata(struct arena *a)
{
    struct iceberg_schema *s0 = make_schema(a, 0, 3);
    struct iceberg_metadata *m = iceberg_metadata_new(a, "file:///lake/db/t/", s0);
    assert_string_equal(m->location, "file:///lake/db/t");
    assert_int_equal(m->last_column_id, 3);
    assert_int_equal(m->last_partition_id, 999);
    assert_int_equal(m->current_snapshot_id, -1);
    assert_int_equal(strlen(m->table_uuid), 36);
    struct iceberg_schema *s1 = make_schema(a, 1, 4);
    struct iceberg_schema *both = arena_alloc(a, 2 * sizeof *both);
    both[0] = m->schemas[0];
    both[1] = *s1;
    m->schemas = both;
    m->n_schemas = 2;
    m->current_schema_id = 1;
    m->last_column_id = 4;
    m->last_sequence_number = 2;
    m->n_snapshots = 2;
    m->snapshots = arena_alloc(a, 2 * sizeof *m->snapshots);
    for (int i = 0; i < 2; i++) {
        struct iceberg_snapshot *sn = &m->snapshots[i];
        sn->snapshot_id = 9000000000000000001LL + i; /* beyond double precision */
        sn->parent_id = i ? m->snapshots[0].snapshot_id : -1;
        sn->sequence_number = i + 1;
        sn->timestamp_ms = 1700000000000LL + i;
        sn->manifest_list = arena_printf(a, "file:///lake/db/t/metadata/snap-%d.avro", i);
        sn->schema_id = i;
        sn->n_summary = 2;
        sn->summary = arena_alloc(a, 2 * sizeof *sn->summary);
        sn->summary[0] = (struct iceberg_kv){"operation", i ? "delete" : "append"};
        sn->summary[1] = (struct iceberg_kv){"added-records", "10"};
        /* a free-form metric */
    }
    m->current_snapshot_id = m->snapshots[1].snapshot_id;
    m->n_properties = 2;
    m->properties = arena_alloc(a, 2 * sizeof *m->properties);
    m->properties[0] = (struct iceberg_kv){"owner", "loch"};
    m->properties[1] = (struct iceberg_kv){"write.format.default", "parquet"};
    m->n_snapshot_log = 2;
    m->snapshot_log = arena_alloc(a, 2 * sizeof *m->snapshot_log);
    for (int i = 0; i < 2; i++) {
        m->snapshot_log[i].snapshot_id = m->snapshots[i].snapshot_id;
        m->snapshot_log[i].timestamp_ms = m->snapshots[i].timestamp_ms;
    }
    m->n_metadata_log = 1;
    m->metadata_log = arena_alloc(a, sizeof *m->metadata_log);
    m->metadata_log[0].metadata_file = "file:///lake/db/t/metadata/v1.metadata.json";
    m->metadata_log[0].timestamp_ms = 1699999999999LL;
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_metadata *m = make_metadata(a), *back;
    struct buf j1 = {0}, j2 = {0};
    struct loch_err err;
    assert_int_equal(iceberg_metadata_to_json(m, &j1, &err), 0);
    assert_int_equal(iceberg_metadata_from_json(j1.data, j1.len, a, &back, &err), 0);
    assert_int_equal(iceberg_metadata_to_json(back, &j2, &err), 0);
    assert_string_equal(j1.data, j2.data);

    assert_string_equal(back->table_uuid, m->table_uuid);
    assert_int_equal(back->n_schemas, 2);
    assert_int_equal(back->current_snapshot_id, 9000000000000000002LL);
    assert_int_equal(back->snapshots[1].parent_id, 9000000000000000001LL);
    assert_int_equal(back->snapshots[0].parent_id, -1);
    assert_string_equal(back->schemas[1].fields[1].doc, "customer \"name\"");
    assert_int_equal(back->schemas[1].fields[2].type.precision, 18);
    assert_string_equal(back->snapshots[1].summary[0].value, "delete");
    assert_string_equal(back->properties[1].value, "parquet");
    assert_string_equal(back->metadata_log[0].metadata_file, m->metadata_log[0].metadata_file);

    /* Every v2-required key is present and the refs/main rule holds. */
    json_t *root = json_loads(j1.data, 0, NULL);
    assert_non_null(root);
    static const char *required[] = {"format-version", "table-uuid", "location",
                                     "last-sequence-number", "last-updated-ms", "last-column-id",
                                     "schemas", "current-schema-id", "partition-specs",
                                     "default-spec-id", "last-partition-id", "sort-orders",
                                     "default-sort-order-id"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        assert_non_null(json_object_get(root, required[i]));
    assert_int_equal(json_integer_value(json_object_get(root, "format-version")), 2);
    json_t *main_ref = json_object_get(json_object_get(root, "refs"), "main");
    assert_non_null(main_ref);
    assert_int_equal(json_integer_value(json_object_get(main_ref, "snapshot-id")),
                     9000000000000000002LL);
    assert_string_equal(json_string_value(json_object_get(main_ref, "type")), "branch");
    json_t *s0 = json_array_get(json_object_get(root, "snapshots"), 0);
    assert_null(json_object_get(s0, "parent-snapshot-id"));
    assert_null(json_object_get(s0, "manifests"));
    assert_null(json_object_get(root, "schema")); /* v1-only */
    json_decref(root);

    buf_free(&j1);
    buf_free(&j2);
    arena_free(a);
}

static void test_empty_table(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_metadata *m = iceberg_metadata_new(a, "file:///x/t", make_schema(a, 7, 2)), *back;
    struct buf j = {0};
    assert_int_equal(m->schemas[0].schema_id, 0);
    assert_int_equal(iceberg_metadata_to_json(m, &j, NULL), 0);
    json_t *root = json_loads(j.data, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(root, "current-snapshot-id")), -1);
    assert_int_equal(json_object_size(json_object_get(root, "refs")), 0);
    assert_int_equal(json_array_size(json_object_get(root, "snapshots")), 0);
    json_decref(root);
    assert_int_equal(iceberg_metadata_from_json(j.data, j.len, a, &back, NULL), 0);
    assert_int_equal(back->current_snapshot_id, -1);

    /* Broken invariants are refused on write. */
    struct loch_err err;
    m->current_snapshot_id = 42;
    assert_int_equal(iceberg_metadata_to_json(m, &j, &err), LOCH_EINTERNAL);
    assert_non_null(strstr(err.msg, "current-snapshot-id 42"));
    buf_free(&j);
    arena_free(a);
}

/* The spec's core/src/test/resources/TableMetadataV2Valid.json (partitioned, sorted). */
static const char *v2_valid =
    "{\"format-version\":2,\"table-uuid\":\"9c12d441-03fe-4693-9a96-a0705ddf69c1\","
    "\"location\":\"s3://bucket/test/location\",\"last-sequence-number\":34,"
    "\"last-updated-ms\":1602638573590,\"last-column-id\":3,\"current-schema-id\":1,"
    "\"schemas\":[{\"type\":\"struct\",\"schema-id\":0,\"fields\":[{\"id\":1,\"name\":\"x\","
    "\"required\":true,\"type\":\"long\"}]},{\"type\":\"struct\",\"schema-id\":1,"
    "\"identifier-field-ids\":[1,2],\"fields\":[{\"id\":1,\"name\":\"x\",\"required\":true,"
    "\"type\":\"long\"},{\"id\":2,\"name\":\"y\",\"required\":true,\"type\":\"long\","
    "\"doc\":\"comment\"},{\"id\":3,\"name\":\"z\",\"required\":true,\"type\":\"long\"}]}],"
    "\"default-spec-id\":0,\"partition-specs\":[{\"spec-id\":0,\"fields\":[{\"name\":\"x\","
    "\"transform\":\"identity\",\"source-id\":1,\"field-id\":1000}]}],"
    "\"last-partition-id\":1000,\"default-sort-order-id\":3,\"sort-orders\":[{\"order-id\":3,"
    "\"fields\":[{\"transform\":\"identity\",\"source-id\":2,\"direction\":\"asc\","
    "\"null-order\":\"nulls-first\"},{\"transform\":\"bucket[4]\",\"source-id\":3,"
    "\"direction\":\"desc\",\"null-order\":\"nulls-last\"}]}],\"properties\":{},"
    "\"current-snapshot-id\":3055729675574597004,\"snapshots\":[{\"snapshot-id\":"
    "3051729675574597004,\"timestamp-ms\":1515100955770,\"sequence-number\":0,\"summary\":"
    "{\"operation\":\"append\"},\"manifest-list\":\"s3://a/b/1.avro\"},{\"snapshot-id\":"
    "3055729675574597004,\"parent-snapshot-id\":3051729675574597004,\"timestamp-ms\":"
    "1555100955770,\"sequence-number\":1,\"summary\":{\"operation\":\"append\"},"
    "\"manifest-list\":\"s3://a/b/2.avro\",\"schema-id\":1}],\"snapshot-log\":[{\"snapshot-id\":"
    "3051729675574597004,\"timestamp-ms\":1515100955770},{\"snapshot-id\":3055729675574597004,"
    "\"timestamp-ms\":1555100955770}],\"metadata-log\":[]}";

/* v2_valid with the layouts made empty and Java-only extras added (must be ignored). */
static char *unpartitioned_variant(void)
{
    json_t *root = json_loads(v2_valid, 0, NULL);
    assert_non_null(root);
    json_object_set_new(root, "partition-specs", json_pack("[{s:i,s:[]}]", "spec-id", 0, "fields"));
    json_object_set_new(root, "sort-orders", json_pack("[{s:i,s:[]}]", "order-id", 0, "fields"));
    json_object_set_new(root, "default-sort-order-id", json_integer(0));
    json_object_set_new(root, "last-partition-id", json_integer(999));
    json_object_set_new(root, "statistics", json_array());
    json_object_set_new(root, "refs", json_pack("{s:{s:I,s:s,s:i}}", "main", "snapshot-id",
                                                (json_int_t)3055729675574597004LL, "type", "branch",
                                                "max-ref-age-ms", 1000));
    char *text = json_dumps(root, 0);
    json_decref(root);
    return text;
}

static void test_foreign_metadata(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_metadata *m;
    struct loch_err err;
    assert_int_equal(iceberg_metadata_from_json(v2_valid, strlen(v2_valid), a, &m, &err),
                     LOCH_EUNSUPPORTED);
    assert_string_equal(err.msg, "partitioned tables are not supported yet");
    assert_true(err.hint[0] != '\0');

    char *text = unpartitioned_variant();
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), 0);
    free(text);
    assert_string_equal(m->table_uuid, "9c12d441-03fe-4693-9a96-a0705ddf69c1");
    assert_int_equal(m->last_sequence_number, 34);
    assert_int_equal(m->current_snapshot_id, 3055729675574597004LL);
    assert_int_equal(m->n_snapshots, 2);
    assert_int_equal(m->snapshots[0].parent_id, -1);
    assert_int_equal(m->snapshots[0].schema_id, -1);
    assert_int_equal(m->snapshots[1].schema_id, 1);
    const struct iceberg_schema *cur = iceberg_metadata_current_schema(m);
    assert_int_equal(cur->n_fields, 3);
    assert_int_equal(cur->n_identifier_ids, 2);
    assert_string_equal(iceberg_schema_find(cur, "y")->doc, "comment");
    assert_int_equal(iceberg_schema_field(cur, 3)->type.id, ICEBERG_LONG);
    assert_null(iceberg_schema_find(cur, "w"));
    assert_int_equal(m->n_snapshot_log, 2);
    assert_int_equal(m->n_metadata_log, 0);
    assert_non_null(iceberg_metadata_snapshot(m, 3051729675574597004LL));
    arena_free(a);
}

/* The spec's sort order of v2_valid with its identity field only is kept and written back;
 * the one with a bucket transform is refused. */
static void test_sort_orders(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_metadata *m, *m2;
    struct loch_err err;
    char *text = unpartitioned_variant();
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_t *v2 = json_loads(v2_valid, 0, NULL);
    json_t *orig = json_object_get(v2, "sort-orders");
    json_object_set(root, "sort-orders", orig);
    json_decref(v2);
    json_object_set_new(root, "default-sort-order-id", json_integer(3));
    text = json_dumps(root, 0);
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), LOCH_EUNSUPPORTED);
    free(text);

    json_array_remove(json_object_get(json_array_get(orig, 0), "fields"), 1);
    text = json_dumps(root, 0);
    json_decref(root);
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), 0);
    free(text);
    const struct iceberg_sort_order *so = iceberg_metadata_sort_order(m);
    assert_non_null(so);
    assert_int_equal(so->order_id, 3);
    assert_int_equal(so->n_fields, 1);
    assert_int_equal(so->fields[0].source_id, 2);
    assert_false(so->fields[0].desc);
    assert_true(so->fields[0].nulls_first);

    struct buf j = {0};
    assert_int_equal(iceberg_metadata_to_json(m, &j, &err), 0);
    assert_int_equal(iceberg_metadata_from_json(j.data, j.len, a, &m2, &err), 0);
    assert_int_equal(m2->n_sort_orders, 2); /* order 0 added */
    assert_int_equal(m2->default_sort_order_id, 3);
    assert_int_equal(iceberg_metadata_sort_order(m2)->fields[0].source_id, 2);
    assert_non_null(strstr(j.data, "\"order-id\": 0")); /* the unsorted order is always there */
    m2->default_sort_order_id = 7;
    buf_reset(&j);
    assert_int_equal(iceberg_metadata_to_json(m2, &j, &err), LOCH_EINTERNAL);
    m2->default_sort_order_id = 0;
    assert_null(iceberg_metadata_sort_order(m2));
    buf_free(&j);
    arena_free(a);
}

/* Removes key (a dotted path one or two deep) from the variant and expects the name. */
static void expect_missing(struct arena *a, const char *key, const char *sub, const char *name)
{
    char *text = unpartitioned_variant();
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    if (sub)
        json_object_del(json_array_get(json_object_get(root, key), 1), sub);
    else
        json_object_del(root, key);
    text = json_dumps(root, 0);
    json_decref(root);
    struct iceberg_metadata *m;
    struct loch_err err;
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), LOCH_ECORRUPT);
    free(text);
    assert_non_null(strstr(err.msg, name));
}

static void test_missing_fields(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    expect_missing(a, "table-uuid", NULL, "\"table-uuid\"");
    expect_missing(a, "last-column-id", NULL, "\"last-column-id\"");
    expect_missing(a, "last-sequence-number", NULL, "\"last-sequence-number\"");
    expect_missing(a, "schemas", NULL, "\"schemas\"");
    expect_missing(a, "sort-orders", NULL, "\"sort-orders\"");
    expect_missing(a, "snapshots", "manifest-list", "\"snapshots[1].manifest-list\"");
    expect_missing(a, "snapshots", "sequence-number", "\"snapshots[1].sequence-number\"");
    expect_missing(a, "schemas", "schema-id", "\"schemas[1].schema-id\"");

    struct iceberg_metadata *m;
    struct loch_err err;
    assert_int_equal(iceberg_metadata_from_json("{\"format-version\":", 18, a, &m, &err),
                     LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "invalid JSON"));
    const char *v1 = "{\"format-version\":1}";
    assert_int_equal(iceberg_metadata_from_json(v1, strlen(v1), a, &m, &err), LOCH_EUNSUPPORTED);
    arena_free(a);
}

/* refs.main must match current-snapshot-id; an absent current id reads as -1. */
static void test_refs_rules(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    char *text = unpartitioned_variant();
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    json_object_set_new(json_object_get(json_object_get(root, "refs"), "main"), "snapshot-id",
                        json_integer(3051729675574597004LL));
    text = json_dumps(root, 0);
    struct iceberg_metadata *m;
    struct loch_err err;
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "refs.main"));
    free(text);

    json_object_del(root, "refs");
    json_object_del(root, "current-snapshot-id");
    text = json_dumps(root, 0);
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), 0);
    assert_int_equal(m->current_snapshot_id, -1);
    free(text);

    json_object_set_new(root, "current-snapshot-id", json_integer(12345));
    text = json_dumps(root, 0);
    assert_int_equal(iceberg_metadata_from_json(text, strlen(text), a, &m, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "12345"));
    free(text);
    json_decref(root);
    arena_free(a);
}

static void test_schema_json(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_schema *s = make_schema(a, 3, 4), *back;
    struct buf j = {0}, j2 = {0};
    iceberg_schema_to_json(s, &j);
    assert_int_equal(iceberg_schema_from_json(j.data, j.len, a, &back, NULL), 0);
    iceberg_schema_to_json(back, &j2);
    assert_string_equal(j.data, j2.data);
    assert_int_equal(back->schema_id, 3);
    struct iceberg_schema *copy = iceberg_schema_copy(a, back);
    assert_string_equal(copy->fields[3].name, "ts");
    assert_int_equal(copy->fields[3].type.id, ICEBERG_TIMESTAMPTZ);

    const char *nested = "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"l\",\"required\":"
                         "false,\"type\":{\"type\":\"list\",\"element-id\":2,\"element\":\"int\","
                         "\"element-required\":false}}]}";
    struct loch_err err;
    assert_int_equal(iceberg_schema_from_json(nested, strlen(nested), a, &back, &err),
                     LOCH_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "\"l\""));
    const char *noid = "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"x\",\"required\":true,"
                       "\"type\":\"long\"}]}";
    assert_int_equal(iceberg_schema_from_json(noid, strlen(noid), a, &back, &err), 0);
    assert_int_equal(back->schema_id, 0);
    assert_int_equal(back->n_identifier_ids, 0);
    const char *badid = "{\"type\":\"struct\",\"identifier-field-ids\":[9],\"fields\":[{\"id\":1,"
                        "\"name\":\"x\",\"required\":true,\"type\":\"long\"}]}";
    assert_int_equal(iceberg_schema_from_json(badid, strlen(badid), a, &back, &err), LOCH_ECORRUPT);
    const char *noreq = "{\"type\":\"struct\",\"fields\":[{\"id\":1,\"name\":\"x\",\"type\":\"long\"}]}";
    assert_int_equal(iceberg_schema_from_json(noreq, strlen(noreq), a, &back, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "schema.fields[0].required"));
    buf_free(&j);
    buf_free(&j2);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),          cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_table),    cmocka_unit_test(test_foreign_metadata),
        cmocka_unit_test(test_missing_fields), cmocka_unit_test(test_refs_rules),
        cmocka_unit_test(test_schema_json),    cmocka_unit_test(test_sort_orders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
