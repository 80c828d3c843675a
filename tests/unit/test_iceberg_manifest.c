/* test_iceberg_manifest.c: unit tests for Iceberg Avro manifests and manifest lists
 * (src/iceberg/manifest.c, avro.c): round trips, inheritance, file metadata, foreign
 * writers' layouts, and truncated or corrupt input. Not for bounds (test_iceberg_bounds.c).
 *
 * With LOCH_AVRO_DUMP=<dir> set, the encoded files are also written there for an
 * interop check with fastavro / PyIceberg. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iceberg/avro.h"
#include "iceberg/iceberg.h"

static struct iceberg_field FIELDS[] = {
    {1, "id", true, {ICEBERG_LONG, 0, 0, 0}, NULL},
    {2, "name", false, {ICEBERG_STRING, 0, 0, 0}, NULL},
    {3, "amount", false, {ICEBERG_DECIMAL, 18, 2, 0}, NULL},
};
static int IDENT[] = {1};
static const struct iceberg_schema SCHEMA = {7, 3, FIELDS, 1, IDENT};

static void dump(const char *name, const struct buf *b)
{
    const char *dir = getenv("LOCH_AVRO_DUMP");
    if (!dir)
        return;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b->data, 1, b->len, f), b->len);
    fclose(f);
}

/* Three data files: one inheriting everything, one ADDED with explicit numbers, one
 * EXISTING; stats with gaps (-1 counts, missing bounds) and binary bounds with NULs. */
static struct iceberg_column_stats STATS_A[] = {
    {1, 100, 10, 0, -1, (const uint8_t *)"\x01\0\0\0\0\0\0\0", 8,
     (const uint8_t *)"\x0a\0\0\0\0\0\0\0", 8},
    {2, 55, 10, 3, -1, (const uint8_t *)"al\xc3\xa9", 4, (const uint8_t *)"zo", 2},
    {3, -1, 10, 10, -1, NULL, 0, NULL, 0},
};
static struct iceberg_column_stats STATS_C[] = {
    {1, 8, 1, 0, -1, (const uint8_t *)"\x07\0\0\0\0\0\0\0", 8,
     (const uint8_t *)"\x07\0\0\0\0\0\0\0", 8},
    {4, -1, -1, -1, 0, (const uint8_t *)"", 0, NULL, 0}, /* empty (non-NULL) lower bound */
};

static void make_files(struct iceberg_data_file f[3])
{
    memset(f, 0, 3 * sizeof *f);
    f[0] = (struct iceberg_data_file){
        .content = ICEBERG_CONTENT_DATA,
        .path = "file:///lake/core/public/loans/data/00000-a.parquet",
        .record_count = 10, .file_size = 4096, .n_stats = 3, .stats = STATS_A,
        .status = ICEBERG_ADDED, .snapshot_id = -1, .sequence_number = -1,
        .file_sequence_number = -1};
    f[1] = (struct iceberg_data_file){
        .content = ICEBERG_CONTENT_DATA,
        .path = "file:///lake/core/public/loans/data/00001-b.parquet",
        .record_count = 0, .file_size = 77,
        .status = ICEBERG_ADDED, .snapshot_id = 42, .sequence_number = 3,
        .file_sequence_number = 4};
    f[2] = (struct iceberg_data_file){
        .content = ICEBERG_CONTENT_DATA,
        .path = "file:///lake/core/public/loans/data/00002-c.parquet",
        .record_count = 1, .file_size = 1234567890123LL, .n_stats = 2, .stats = STATS_C,
        .status = ICEBERG_EXISTING, .snapshot_id = 41, .sequence_number = 2,
        .file_sequence_number = 2};
}

static const struct iceberg_column_stats *find_stats(const struct iceberg_data_file *f, int id)
{
    for (size_t i = 0; i < f->n_stats; i++)
        if (f->stats[i].field_id == id)
            return &f->stats[i];
    return NULL;
}

static void check_stats(const struct iceberg_data_file *got, const struct iceberg_data_file *want)
{
    assert_int_equal(got->n_stats, want->n_stats);
    for (size_t i = 0; i < want->n_stats; i++) {
        const struct iceberg_column_stats *w = &want->stats[i];
        const struct iceberg_column_stats *g = find_stats(got, w->field_id);
        assert_non_null(g);
        assert_true(g->column_size == w->column_size);
        assert_true(g->value_count == w->value_count);
        assert_true(g->null_count == w->null_count);
        assert_true(g->nan_count == w->nan_count);
        assert_int_equal(g->lower != NULL, w->lower != NULL);
        assert_int_equal(g->upper != NULL, w->upper != NULL);
        if (w->lower) {
            assert_int_equal(g->lower_len, w->lower_len);
            assert_memory_equal(g->lower, w->lower, w->lower_len);
        }
        if (w->upper) {
            assert_int_equal(g->upper_len, w->upper_len);
            assert_memory_equal(g->upper, w->upper, w->upper_len);
        }
    }
}

static const struct iceberg_manifest LIST_ROW = {
    .path = "file:///lake/m.avro", .length = 0 /* unknown: not checked */, .spec_id = 0,
    .content = ICEBERG_CONTENT_DATA, .sequence_number = 5, .min_sequence_number = 2,
    .added_snapshot_id = 99};

static void encode_manifest(struct buf *out)
{
    struct iceberg_data_file files[3];
    struct loch_err err;
    make_files(files);
    int rc = iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_DATA, files, 3, out, &err);
    if (rc)
        fail_msg("encode: %s", err.msg);
}

static void test_manifest_roundtrip(void **state)
{
    (void)state;
    struct buf b = {0};
    struct iceberg_data_file want[3];
    make_files(want);
    encode_manifest(&b);
    dump("manifest.avro", &b);

    struct arena *a = arena_new();
    struct iceberg_data_file *got = NULL;
    size_t n = 0;
    struct loch_err err;
    struct iceberg_manifest row = LIST_ROW;
    row.length = (int64_t)b.len;
    int rc = iceberg_manifest_decode((const uint8_t *)b.data, b.len, &row, a, &got, &n, &err);
    if (rc)
        fail_msg("decode: %s", err.msg);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(got[i].path, want[i].path);
        assert_int_equal(got[i].content, want[i].content);
        assert_int_equal(got[i].status, want[i].status);
        assert_true(got[i].record_count == want[i].record_count);
        assert_true(got[i].file_size == want[i].file_size);
        assert_null(got[i].referenced_data_file);
        check_stats(&got[i], &want[i]);
    }
    /* Inheritance from the manifest-list row (spec "Sequence Number Inheritance"). */
    assert_true(got[0].snapshot_id == 99);
    assert_true(got[0].sequence_number == 5);
    assert_true(got[0].file_sequence_number == 5);
    assert_true(got[1].snapshot_id == 42 && got[1].sequence_number == 3 &&
                got[1].file_sequence_number == 4);
    assert_true(got[2].snapshot_id == 41 && got[2].sequence_number == 2 &&
                got[2].file_sequence_number == 2);

    /* A length that disagrees with the list row is corruption. */
    row.length++;
    assert_int_equal(iceberg_manifest_decode((const uint8_t *)b.data, b.len, &row, a, &got, &n, &err),
                     LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "manifest list says"));

    /* Without a list row nothing is inherited: -1 stays. */
    arena_reset(a);
    assert_int_equal(iceberg_manifest_decode((const uint8_t *)b.data, b.len, NULL, a, &got, &n, &err), 0);
    assert_true(got[0].snapshot_id == -1 && got[0].sequence_number == -1 &&
                got[0].file_sequence_number == -1);
    arena_free(a);
    buf_free(&b);
}

static void test_manifest_file_metadata(void **state)
{
    (void)state;
    struct buf b = {0}, schema = {0};
    encode_manifest(&b);
    iceberg_schema_to_json(&SCHEMA, &schema);

    struct arena *a = arena_new();
    struct iceberg_avro_reader r;
    struct loch_err err;
    assert_int_equal(iceberg_avro_reader_open(&r, (const uint8_t *)b.data, b.len, "manifest", a, &err), 0);
    assert_string_equal(iceberg_avro_reader_meta(&r, "schema"), schema.data);
    assert_string_equal(iceberg_avro_reader_meta(&r, "schema-id"), "7");
    assert_string_equal(iceberg_avro_reader_meta(&r, "partition-spec"), "[]");
    assert_string_equal(iceberg_avro_reader_meta(&r, "partition-spec-id"), "0");
    assert_string_equal(iceberg_avro_reader_meta(&r, "format-version"), "2");
    assert_string_equal(iceberg_avro_reader_meta(&r, "content"), "data");
    assert_string_equal(iceberg_avro_reader_meta(&r, "avro.codec"), "deflate");
    /* The schema text keeps Iceberg's ids and record names (spec Appendix A). */
    const char *as = iceberg_avro_reader_meta(&r, "avro.schema");
    const char *must[] = {
        "\"name\":\"manifest_entry\"", "\"name\":\"r2\"", "\"name\":\"r102\"",
        "\"field-id\":0", "\"field-id\":2", "\"field-id\":134", "\"field-id\":143",
        "\"name\":\"k117_v118\"", "\"name\":\"k126_v127\"", "\"logicalType\":\"map\"",
        "\"element-id\":133", "\"element-id\":136", "\"default\":null",
    };
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(as, must[i]))
            fail_msg("avro.schema lacks %s", must[i]);
    assert_null(strstr(as, "block_size_in_bytes")); /* v1-only field */
    assert_int_equal(r.n_records, 3);
    iceberg_avro_reader_close(&r);
    arena_free(a);
    buf_free(&b);
    buf_free(&schema);
}

static void test_delete_manifest(void **state)
{
    (void)state;
    struct iceberg_data_file f = {
        .content = ICEBERG_CONTENT_POSITION_DELETES,
        .path = "file:///lake/t/data/del-1.parquet", .record_count = 2, .file_size = 900,
        .referenced_data_file = "file:///lake/t/data/00000-a.parquet",
        .status = ICEBERG_ADDED, .snapshot_id = -1, .sequence_number = -1,
        .file_sequence_number = -1};
    struct buf b = {0};
    struct loch_err err;
    assert_int_equal(iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_POSITION_DELETES, &f, 1, &b, &err), 0);
    dump("delete-manifest.avro", &b);

    struct arena *a = arena_new();
    struct iceberg_avro_reader r;
    assert_int_equal(iceberg_avro_reader_open(&r, (const uint8_t *)b.data, b.len, "manifest", a, &err), 0);
    assert_string_equal(iceberg_avro_reader_meta(&r, "content"), "deletes");
    iceberg_avro_reader_close(&r);

    struct iceberg_manifest row = LIST_ROW;
    row.content = ICEBERG_CONTENT_POSITION_DELETES;
    struct iceberg_data_file *got;
    size_t n;
    assert_int_equal(iceberg_manifest_decode((const uint8_t *)b.data, b.len, &row, a, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(got[0].content, ICEBERG_CONTENT_POSITION_DELETES);
    assert_string_equal(got[0].referenced_data_file, f.referenced_data_file);
    assert_int_equal(got[0].n_stats, 0);
    arena_free(a);
    buf_free(&b);
}

static void test_empty_manifest(void **state)
{
    (void)state;
    struct buf b = {0};
    struct loch_err err;
    assert_int_equal(iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_DATA, NULL, 0, &b, &err), 0);
    struct arena *a = arena_new();
    struct iceberg_data_file *got = (void *)1;
    size_t n = 99;
    assert_int_equal(iceberg_manifest_decode((const uint8_t *)b.data, b.len, NULL, a, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    arena_free(a);
    buf_free(&b);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    struct iceberg_data_file f[3];
    struct buf b = {0};
    struct loch_err err;

    make_files(f);
    f[2].sequence_number = -1; /* EXISTING must carry its sequence number */
    assert_int_equal(iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_DATA, f, 3, &b, &err), LOCH_EINVAL);
    assert_non_null(strstr(err.msg, "00002-c.parquet"));

    make_files(f);
    assert_int_equal(iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_POSITION_DELETES, f, 3, &b, &err),
                     LOCH_EINVAL);
    make_files(f);
    f[1].path = NULL;
    assert_int_equal(iceberg_manifest_encode(&SCHEMA, ICEBERG_CONTENT_DATA, f, 3, &b, &err), LOCH_EINVAL);
    assert_int_equal(b.len, 0);
}

static const struct iceberg_manifest ROWS[] = {
    {"file:///lake/t/metadata/m0.avro", 6001, 0, ICEBERG_CONTENT_DATA, 5, 2, 99, 1, 2, 0, 10, 20, 0},
    {"file:///lake/t/metadata/m1.avro", 777, 0, ICEBERG_CONTENT_POSITION_DELETES, 5, 5, 99, 1, 0,
     0, 3, 0, 0},
    {"file:///lake/t/metadata/m2.avro", 1LL << 40, 0, ICEBERG_CONTENT_DATA, 1, 1, 12345678901234LL,
     0, 0, 7, 0, 0, 1LL << 33},
};

static void test_manifest_list_roundtrip(void **state)
{
    (void)state;
    struct buf b = {0};
    struct loch_err err;
    assert_int_equal(iceberg_manifest_list_encode(ROWS, 3, 99, -1, 5, &b, &err), 0);
    dump("manifest-list.avro", &b);

    struct arena *a = arena_new();
    struct iceberg_manifest *got;
    size_t n;
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)b.data, b.len, a, &got, &n, &err), 0);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_string_equal(got[i].path, ROWS[i].path);
        assert_true(got[i].length == ROWS[i].length);
        assert_int_equal(got[i].spec_id, ROWS[i].spec_id);
        assert_int_equal(got[i].content, ROWS[i].content);
        assert_true(got[i].sequence_number == ROWS[i].sequence_number);
        assert_true(got[i].min_sequence_number == ROWS[i].min_sequence_number);
        assert_true(got[i].added_snapshot_id == ROWS[i].added_snapshot_id);
        assert_int_equal(got[i].added_files, ROWS[i].added_files);
        assert_int_equal(got[i].existing_files, ROWS[i].existing_files);
        assert_int_equal(got[i].deleted_files, ROWS[i].deleted_files);
        assert_true(got[i].added_rows == ROWS[i].added_rows);
        assert_true(got[i].existing_rows == ROWS[i].existing_rows);
        assert_true(got[i].deleted_rows == ROWS[i].deleted_rows);
    }

    struct iceberg_avro_reader r;
    assert_int_equal(iceberg_avro_reader_open(&r, (const uint8_t *)b.data, b.len, "manifest list", a, &err), 0);
    assert_string_equal(iceberg_avro_reader_meta(&r, "snapshot-id"), "99");
    assert_string_equal(iceberg_avro_reader_meta(&r, "parent-snapshot-id"), "null");
    assert_string_equal(iceberg_avro_reader_meta(&r, "sequence-number"), "5");
    assert_string_equal(iceberg_avro_reader_meta(&r, "format-version"), "2");
    const char *as = iceberg_avro_reader_meta(&r, "avro.schema");
    const char *must[] = {"\"name\":\"manifest_file\"", "\"name\":\"r508\"", "\"field-id\":500",
                          "\"field-id\":517", "\"element-id\":508", "\"field-id\":519",
                          "\"added_files_count\""};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(as, must[i]))
            fail_msg("avro.schema lacks %s", must[i]);
    iceberg_avro_reader_close(&r);

    buf_reset(&b);
    assert_int_equal(iceberg_manifest_list_encode(ROWS, 1, 100, 99, 6, &b, &err), 0);
    assert_int_equal(iceberg_avro_reader_open(&r, (const uint8_t *)b.data, b.len, "manifest list", a, &err), 0);
    assert_string_equal(iceberg_avro_reader_meta(&r, "parent-snapshot-id"), "99");
    iceberg_avro_reader_close(&r);
    arena_free(a);
    buf_free(&b);
}

/* Every proper prefix of a valid file is an error, never a crash or a partial success. */
static void test_truncated(void **state)
{
    (void)state;
    struct buf m = {0}, l = {0};
    struct loch_err err;
    encode_manifest(&m);
    assert_int_equal(iceberg_manifest_list_encode(ROWS, 3, 99, -1, 5, &l, &err), 0);
    struct arena *a = arena_new();
    struct iceberg_manifest row = LIST_ROW;
    for (int with_length = 0; with_length < 2; with_length++) {
        /* The list row's manifest_length catches a cut at a block boundary (a valid,
         * shorter container); without it only that one cut may decode, to 0 entries. */
        row.length = with_length ? (int64_t)m.len : 0;
        size_t n_valid = 0;
        for (size_t cut = 0; cut < m.len; cut++) {
            struct iceberg_data_file *got;
            size_t n;
            uint8_t *copy = malloc(cut ? cut : 1); /* exact size, so ASan sees any over-read */
            memcpy(copy, m.data, cut);
            int rc = iceberg_manifest_decode(copy, cut, &row, a, &got, &n, &err);
            if (rc == 0 && !with_length && n == 0)
                n_valid++;
            else if (rc != LOCH_ECORRUPT)
                fail_msg("manifest cut at %zu gave %d", cut, rc);
            free(copy);
            arena_reset(a);
        }
        assert_int_equal(n_valid, with_length ? 0 : 1);
    }
    size_t n_valid = 0;
    for (size_t cut = 0; cut < l.len; cut++) {
        struct iceberg_manifest *got;
        size_t n;
        uint8_t *copy = malloc(cut ? cut : 1);
        memcpy(copy, l.data, cut);
        int rc = iceberg_manifest_list_decode(copy, cut, a, &got, &n, &err);
        if (rc == 0 && n == 0)
            n_valid++;
        else if (rc != LOCH_ECORRUPT)
            fail_msg("manifest list cut at %zu gave %d", cut, rc);
        free(copy);
        arena_reset(a);
    }
    assert_int_equal(n_valid, 1);
    /* The error names the position. */
    struct iceberg_manifest *got;
    size_t n;
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)l.data, 10, a, &got, &n, &err),
                     LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "manifest list is truncated at byte"));
    arena_free(a);
    buf_free(&m);
    buf_free(&l);
}

/* Flipping any byte gives an error or a (possibly different) decode, never a crash. */
static void test_corrupt_bytes(void **state)
{
    (void)state;
    struct buf m = {0};
    encode_manifest(&m);
    struct arena *a = arena_new();
    static const uint8_t flips[] = {0xff, 0x01, 0x80};
    for (size_t i = 0; i < m.len; i++)
        for (size_t k = 0; k < sizeof flips; k++) {
            uint8_t *copy = malloc(m.len);
            memcpy(copy, m.data, m.len);
            copy[i] ^= flips[k];
            struct iceberg_data_file *got;
            size_t n;
            struct loch_err err;
            int rc = iceberg_manifest_decode(copy, m.len, &LIST_ROW, a, &got, &n, &err);
            assert_true(rc == 0 || rc == LOCH_ECORRUPT || rc == LOCH_EUNSUPPORTED);
            free(copy);
            arena_reset(a);
        }
    arena_free(a);
    buf_free(&m);
}

/* ---- a foreign writer: other field order, unknown fields, [T,"null"] unions,
 * old count names, a null codec and two blocks ---- */

static const char FOREIGN_LIST_SCHEMA[] =
    "{\"type\":\"record\",\"name\":\"manifest_file\",\"fields\":["
    "{\"name\":\"added_snapshot_id\",\"type\":[\"long\",\"null\"],\"field-id\":503},"
    "{\"name\":\"manifest_path\",\"type\":\"string\",\"field-id\":500},"
    "{\"name\":\"some_future_field\",\"type\":{\"type\":\"map\",\"values\":\"string\"}},"
    "{\"name\":\"manifest_length\",\"type\":\"long\",\"field-id\":501},"
    "{\"name\":\"partition_spec_id\",\"type\":\"int\",\"field-id\":502},"
    "{\"name\":\"added_data_files_count\",\"type\":[\"null\",\"int\"],\"field-id\":504}"
    "]}";

static void put_str(struct buf *b, const char *s)
{
    buf_put_varlong(b, (int64_t)strlen(s));
    buf_puts(b, s);
}

static void test_foreign_manifest_list(void **state)
{
    (void)state;
    avro_schema_t s;
    assert_int_equal(avro_schema_from_json_length(FOREIGN_LIST_SCHEMA, strlen(FOREIGN_LIST_SCHEMA), &s), 0);
    avro_value_iface_t *iface = avro_generic_class_from_schema(s);
    avro_value_t rec, f, br, e;
    assert_int_equal(avro_generic_value_new(iface, &rec), 0);

    const uint8_t sync[16] = "0123456789abcdef";
    struct buf file = {0};
    buf_append(&file, "Obj\x01", 4);
    buf_put_varlong(&file, -2); /* a negative-count map block with its byte size */
    buf_put_varlong(&file, 0);
    put_str(&file, "avro.schema");
    put_str(&file, FOREIGN_LIST_SCHEMA);
    put_str(&file, "avro.codec");
    put_str(&file, "null");
    buf_put_varlong(&file, 0);
    buf_append(&file, sync, 16);

    for (int blk = 0; blk < 2; blk++) {
        char recs[512];
        avro_writer_t w = avro_writer_memory(recs, sizeof recs);
        avro_value_get_by_name(&rec, "added_snapshot_id", &f, NULL);
        avro_value_set_branch(&f, 0, &br);
        avro_value_set_long(&br, 1000 + blk);
        avro_value_get_by_name(&rec, "manifest_path", &f, NULL);
        avro_value_set_string(&f, blk ? "s3://b/m1.avro" : "s3://b/m0.avro");
        avro_value_get_by_name(&rec, "some_future_field", &f, NULL);
        avro_value_add(&f, "k", &e, NULL, NULL);
        avro_value_set_string(&e, "v");
        avro_value_get_by_name(&rec, "manifest_length", &f, NULL);
        avro_value_set_long(&f, 500 + blk);
        avro_value_get_by_name(&rec, "partition_spec_id", &f, NULL);
        avro_value_set_int(&f, 0);
        avro_value_get_by_name(&rec, "added_data_files_count", &f, NULL);
        avro_value_set_branch(&f, 1, &br);
        avro_value_set_int(&br, 3 + blk);
        assert_int_equal(avro_value_write(w, &rec), 0);
        int64_t len = avro_writer_tell(w);
        avro_writer_free(w);
        buf_put_varlong(&file, 1);
        buf_put_varlong(&file, len);
        buf_append(&file, recs, (size_t)len);
        buf_append(&file, sync, 16);
    }
    avro_value_decref(&rec);
    avro_value_iface_decref(iface);
    avro_schema_decref(s);

    struct arena *a = arena_new();
    struct iceberg_manifest *got;
    size_t n;
    struct loch_err err;
    int rc = iceberg_manifest_list_decode((const uint8_t *)file.data, file.len, a, &got, &n, &err);
    if (rc)
        fail_msg("decode: %s", err.msg);
    assert_int_equal(n, 2);
    assert_string_equal(got[1].path, "s3://b/m1.avro");
    assert_true(got[1].added_snapshot_id == 1001);
    assert_true(got[1].length == 501);
    assert_int_equal(got[1].added_files, 4);
    assert_int_equal(got[0].content, ICEBERG_CONTENT_DATA); /* absent: v1 meaning */
    assert_true(got[0].sequence_number == 0);

    /* A wrong sync marker after a block is refused. */
    file.data[file.len - 1] ^= 1;
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)file.data, file.len, a, &got, &n, &err),
                     LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "sync"));
    arena_free(a);
    buf_free(&file);
}

static void test_not_avro(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct iceberg_manifest *got;
    size_t n;
    struct loch_err err;
    const char *junk = "{\"format-version\":2}";
    assert_int_equal(iceberg_manifest_list_decode((const uint8_t *)junk, strlen(junk), a, &got, &n, &err),
                     LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "magic"));
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_roundtrip),
        cmocka_unit_test(test_manifest_file_metadata),
        cmocka_unit_test(test_delete_manifest),
        cmocka_unit_test(test_empty_manifest),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_manifest_list_roundtrip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt_bytes),
        cmocka_unit_test(test_foreign_manifest_list),
        cmocka_unit_test(test_not_avro),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
