/* test_cdc_mysql_binlog.c: the binlog decoders (src/cdc/mysql/binlog.c, json.c) on event
 * bodies built by hand from the documented layouts (MySQL libbinlogevents Table_map_event
 * and Rows_event, strings/decimal.c, my_time.cc, json_binary.h), every prefix of a valid
 * event refused without a read past the end (run under ASan), and the pure helpers of the
 * MySQL source (URL, positions, globs, DDL recognition). MySQL 8 specifics (binary JSON,
 * v2 rows events) are covered here since the integration tests run MariaDB. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/mysql/binlog.h"
#include "cdc/mysql/mysql.h"

/* ---- a tiny event writer for the tests ---- */
static void put(struct buf *b, const void *p, size_t n) { buf_append(b, p, n); }
static void u8(struct buf *b, unsigned v) { uint8_t x = (uint8_t)v; put(b, &x, 1); }
static void le(struct buf *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}
static void be(struct buf *b, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--)
        u8(b, (unsigned)(v >> (8 * i)) & 0xff);
}
static void bytes(struct buf *b, const char *hex)
{
    for (; hex[0] && hex[1]; hex += 2) {
        while (*hex == ' ')
            hex++;
        unsigned v;
        sscanf(hex, "%2x", &v);
        u8(b, v);
    }
}
static void lenstr(struct buf *b, const char *s)
{
    u8(b, (unsigned)strlen(s));
    put(b, s, strlen(s));
}

/* Table map of bank.acc (id INT PK, balance DECIMAL(18,2) UNSIGNED NULL, owner VARCHAR(40)
 * utf8mb4, e ENUM('low','high'), s SET('a','b','c'), bu BIGINT UNSIGNED, bn BINARY(4)). */
static void table_map(struct buf *b)
{
    le(b, 0x123456, 6);             /* table id */
    le(b, 1, 2);                    /* flags */
    lenstr(b, "bank");
    u8(b, 0);
    lenstr(b, "acc");
    u8(b, 0);
    u8(b, 7);                       /* column count (packed) */
    u8(b, BL_LONG);
    u8(b, BL_NEWDECIMAL);
    u8(b, BL_VARCHAR);
    u8(b, BL_STRING);               /* ENUM: real type in the metadata */
    u8(b, BL_STRING);               /* SET */
    u8(b, BL_LONGLONG);
    u8(b, BL_STRING);               /* BINARY(4) */
    u8(b, 10);                      /* metadata length */
    u8(b, 18), u8(b, 2);            /* decimal precision, scale */
    le(b, 160, 2);                  /* varchar max bytes */
    u8(b, BL_ENUM), u8(b, 1);       /* enum: real type, pack length */
    u8(b, BL_SET), u8(b, 1);        /* set */
    u8(b, BL_STRING), u8(b, 4);     /* binary(4) */
    u8(b, 0x02);                    /* null bitmap: only balance nullable */
    /* optional metadata */
    u8(b, 1), u8(b, 1), u8(b, 0x60); /* SIGNEDNESS: numeric cols id, balance, bu -> 0,1,1 */
    u8(b, 3), u8(b, 2), u8(b, 45), u8(b, 63); /* COLUMN_CHARSET: the character columns owner, bn */
    struct buf names = {0};
    const char *n[] = {"id", "balance", "owner", "e", "s", "bu", "bn"};
    for (int i = 0; i < 7; i++)
        lenstr(&names, n[i]);
    u8(b, 4), u8(b, (unsigned)names.len), put(b, names.data, names.len);
    buf_free(&names);
    u8(b, 6), u8(b, 10), u8(b, 2), lenstr(b, "low"), lenstr(b, "high");          /* ENUM_STR_VALUE */
    u8(b, 5), u8(b, 7), u8(b, 3), lenstr(b, "a"), lenstr(b, "b"), lenstr(b, "c"); /* SET_STR_VALUE */
    u8(b, 8), u8(b, 1), u8(b, 0);   /* SIMPLE_PRIMARY_KEY: column 0 */
}

static struct binlog_table *decode_map(struct arena *a)
{
    struct buf b = {0};
    table_map(&b);
    struct binlog_table *t = NULL;
    struct loch_err err;
    assert_int_equal(binlog_table_map_decode((uint8_t *)b.data, b.len, 6, a, &t, &err), 0);
    buf_free(&b);
    return t;
}

static void test_table_map(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct binlog_table *t = decode_map(a);
    assert_int_equal(t->table_id, 0x123456);
    assert_string_equal(t->db, "bank");
    assert_string_equal(t->name, "acc");
    assert_int_equal(t->n_cols, 7);
    assert_true(t->has_metadata);
    assert_string_equal(t->cols[2].name, "owner");
    assert_int_equal(t->cols[1].meta, 18 << 8 | 2);
    assert_false(t->cols[0].is_unsigned);
    assert_true(t->cols[1].is_unsigned);
    assert_true(t->cols[5].is_unsigned);
    assert_true(t->cols[1].nullable);
    assert_false(t->cols[0].nullable);
    assert_int_equal(t->cols[3].type, BL_ENUM);
    assert_int_equal(t->cols[4].type, BL_SET);
    assert_int_equal(t->cols[3].n_values, 2);
    assert_string_equal(t->cols[3].values[1], "high");
    assert_int_equal(t->cols[4].n_values, 3);
    assert_int_equal(t->cols[2].collation, 45);
    assert_int_equal(t->cols[6].collation, 63);
    assert_int_equal(t->n_pk, 1);
    assert_int_equal(t->pk[0], 0);
    struct iceberg_type ty;
    struct loch_err err;
    assert_int_equal(binlog_column_type(&t->cols[5], &ty, &err), 0);
    assert_int_equal(ty.id, ICEBERG_DECIMAL);
    assert_int_equal(ty.precision, 20);
    assert_int_equal(binlog_column_type(&t->cols[6], &ty, &err), 0);
    assert_int_equal(ty.id, ICEBERG_BINARY);
    assert_int_equal(binlog_column_type(&t->cols[1], &ty, &err), 0);
    assert_int_equal(ty.id, ICEBERG_DECIMAL);
    assert_int_equal(ty.scale, 2);
    arena_free(a);
}

/* One row image of bank.acc, all columns present. */
static void image(struct buf *b, int32_t id, const char *dec_hex, const char *owner, unsigned e,
                  unsigned s, uint64_t bu, const char *bn, size_t bn_len)
{
    u8(b, dec_hex ? 0x00 : 0x02);   /* null bitmap */
    le(b, (uint32_t)id, 4);
    if (dec_hex)
        bytes(b, dec_hex);
    lenstr(b, owner);
    u8(b, e);
    u8(b, s);
    le(b, bu, 8);
    u8(b, (unsigned)bn_len);
    put(b, bn, bn_len);
}

static void rows_header(struct buf *b, int type, bool update)
{
    le(b, 0x123456, 6);
    le(b, 1, 2);
    if (type >= BL_EV_WRITE_ROWS)
        le(b, 2, 2);                /* v2 extra data: its own length only */
    u8(b, 7);
    u8(b, 0x7f);                    /* columns present */
    if (update)
        u8(b, 0x7f);
}

/* DECIMAL(18,2): 7-digit leading group (4 bytes), one 9-digit group, 2-digit fraction (1 byte). */
#define DEC_1234_56 "80000000 000004D2 38"
#define DEC_M1234_56 "7FFFFFFF FFFFFB2D C7"

static void test_write_rows_v1_and_v2(void **state)
{
    (void)state;
    for (int type = BL_EV_WRITE_ROWS_V1; type <= BL_EV_WRITE_ROWS; type += BL_EV_WRITE_ROWS - BL_EV_WRITE_ROWS_V1) {
        struct arena *a = arena_new();
        struct binlog_table *t = decode_map(a);
        struct buf b = {0};
        rows_header(&b, type, false);
        image(&b, 7, DEC_1234_56, "Zoë", 2, 5, UINT64_MAX, "\x01\x02", 2);
        image(&b, -1, NULL, "", 0, 0, 0, "", 0);
        struct binlog_row *rows;
        size_t n;
        struct loch_err err;
        assert_int_equal(binlog_rows_decode(type, (uint8_t *)b.data, b.len, 6, t, a, &rows, &n, &err), 0);
        assert_int_equal(n, 2);
        assert_int_equal(rows[0].op, 'I');
        assert_null(rows[0].before);
        assert_string_equal(rows[0].after[0], "7");
        assert_string_equal(rows[0].after[1], "1234.56");
        assert_string_equal(rows[0].after[2], "Zoë");
        assert_string_equal(rows[0].after[3], "high");
        assert_string_equal(rows[0].after[4], "a,c");
        assert_string_equal(rows[0].after[5], "18446744073709551615");
        assert_string_equal(rows[0].after[6], "01020000"); /* BINARY(4) padded back with 0x00 */
        assert_string_equal(rows[1].after[0], "-1");
        assert_null(rows[1].after[1]);
        assert_string_equal(rows[1].after[3], ""); /* ENUM index 0: the error value '' */
        assert_string_equal(rows[1].after[4], "");
        assert_string_equal(rows[1].after[6], "00000000");
        buf_free(&b);
        arena_free(a);
    }
}

static void test_update_and_delete_rows(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct binlog_table *t = decode_map(a);
    struct buf b = {0};
    rows_header(&b, BL_EV_UPDATE_ROWS_V1, true);
    image(&b, 1, DEC_1234_56, "old", 1, 1, 5, "ab", 2);
    image(&b, 1, DEC_M1234_56, "new", 2, 2, 6, "ab", 2);
    struct binlog_row *rows;
    size_t n;
    struct loch_err err;
    assert_int_equal(binlog_rows_decode(BL_EV_UPDATE_ROWS_V1, (uint8_t *)b.data, b.len, 6, t, a, &rows, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(rows[0].op, 'U');
    assert_string_equal(rows[0].before[2], "old");
    assert_string_equal(rows[0].after[2], "new");
    assert_string_equal(rows[0].before[1], "1234.56");
    assert_string_equal(rows[0].after[1], "-1234.56");
    buf_reset(&b);
    rows_header(&b, BL_EV_DELETE_ROWS, false);
    image(&b, 9, NULL, "x", 1, 0, 0, "", 0);
    assert_int_equal(binlog_rows_decode(BL_EV_DELETE_ROWS, (uint8_t *)b.data, b.len, 6, t, a, &rows, &n, &err), 0);
    assert_int_equal(rows[0].op, 'D');
    assert_null(rows[0].after);
    assert_string_equal(rows[0].before[0], "9");
    buf_free(&b);
    arena_free(a);
}

static void test_partial_image_refused(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct binlog_table *t = decode_map(a);
    struct buf b = {0};
    le(&b, 0x123456, 6);
    le(&b, 1, 2);
    u8(&b, 7);
    u8(&b, 0x01); /* MINIMAL image: only the key */
    u8(&b, 0);
    le(&b, 1, 4);
    struct binlog_row *rows;
    size_t n;
    struct loch_err err;
    assert_int_equal(binlog_rows_decode(BL_EV_DELETE_ROWS_V1, (uint8_t *)b.data, b.len, 6, t, a, &rows, &n, &err),
                     LOCH_EUNSUPPORTED);
    assert_non_null(strstr(err.hint, "binlog_row_image=FULL"));
    buf_free(&b);
    arena_free(a);
}

/* Every strict prefix of a valid event is refused, never read past (ASan would fire on
 * the exact-size copies). */
static void test_truncated_events(void **state)
{
    (void)state;
    struct buf map = {0}, rows = {0};
    table_map(&map);
    rows_header(&rows, BL_EV_UPDATE_ROWS, true);
    image(&rows, 1, DEC_1234_56, "old", 1, 1, 5, "ab", 2);
    image(&rows, 1, DEC_M1234_56, "new", 2, 2, 6, "ab", 2);
    struct arena *a = arena_new();
    struct binlog_table *t = decode_map(a);
    struct loch_err err;
    for (size_t n = 0; n < map.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        if (n)
            memcpy(copy, map.data, n);
        struct binlog_table *out;
        int rc = binlog_table_map_decode(copy, n, 6, a, &out, &err);
        /* cutting inside the optional metadata may leave a valid shorter map; cutting
         * anywhere before it never does */
        if (n < 36)
            assert_int_not_equal(rc, 0);
        free(copy);
    }
    for (size_t n = 0; n < rows.len; n++) {
        uint8_t *copy = malloc(n ? n : 1);
        if (n)
            memcpy(copy, rows.data, n);
        struct binlog_row *r;
        size_t nr;
        int rc = binlog_rows_decode(BL_EV_UPDATE_ROWS, copy, n, 6, t, a, &r, &nr, &err);
        assert_true(rc != 0 || nr == 0);
        free(copy);
    }
    buf_free(&map);
    buf_free(&rows);
    arena_free(a);
}

/* Fuzzer finding: a table map without columns made every row image empty, so a rows
 * event never ended; it is refused. */
static void test_zero_column_table_map(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct buf b = {0};
    le(&b, 1, 6), le(&b, 0, 2), lenstr(&b, "d"), u8(&b, 0), lenstr(&b, "t"), u8(&b, 0);
    u8(&b, 0), u8(&b, 0); /* no columns, no metadata */
    struct binlog_table *t;
    struct loch_err err;
    assert_int_equal(binlog_table_map_decode((uint8_t *)b.data, b.len, 6, a, &t, &err), LOCH_ECORRUPT);
    buf_free(&b);
    arena_free(a);
}

static const char *value(struct arena *a, uint8_t type, uint16_t meta, bool uns, const char *hex)
{
    struct binlog_column c = {.type = type, .meta = meta, .is_unsigned = uns, .collation = 45};
    struct buf b = {0};
    bytes(&b, hex);
    struct cursor cur = cursor_make(b.data, b.len);
    const char *out = NULL;
    struct loch_err err;
    int rc = binlog_value_text(&c, &cur, a, &out, &err);
    bool all_used = cur.left == 0;
    buf_free(&b);
    if (rc)
        return "ERROR";
    if (!all_used)
        fprintf(stderr, "bytes left after %s\n", hex);
    assert_true(all_used);
    return out ? out : "NULL";
}

static void test_values(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    /* strings/decimal.c decimal2bin comment: DECIMAL(14,4) 1234567890.1234 and its negative */
    assert_string_equal(value(a, BL_NEWDECIMAL, 14 << 8 | 4, false, "810DFB38D204D2"), "1234567890.1234");
    assert_string_equal(value(a, BL_NEWDECIMAL, 14 << 8 | 4, false, "7EF204C72DFB2D"), "-1234567890.1234");
    assert_string_equal(value(a, BL_NEWDECIMAL, 5 << 8 | 0, false, "800000"), "0");
    assert_string_equal(value(a, BL_NEWDECIMAL, 10 << 8 | 10, false, "80000001 00"), "0.0000000010"); /* 9+1 frac digits */
    assert_string_equal(value(a, BL_TINY, 0, false, "80"), "-128");
    assert_string_equal(value(a, BL_TINY, 0, true, "FF"), "255");
    assert_string_equal(value(a, BL_INT24, 0, false, "000080"), "-8388608");
    assert_string_equal(value(a, BL_LONG, 0, true, "FFFFFFFF"), "4294967295");
    assert_string_equal(value(a, BL_LONGLONG, 0, false, "0000000000000080"), "-9223372036854775808");
    assert_string_equal(value(a, BL_FLOAT, 0, false, "0000C03F"), "1.5");
    assert_string_equal(value(a, BL_DOUBLE, 0, false, "000000000000F8BF"), "-1.5");
    assert_string_equal(value(a, BL_YEAR, 0, false, "7C"), "2024"); /* 1900 + 124 */
    assert_string_equal(value(a, BL_YEAR, 0, false, "00"), "0");
    assert_string_equal(value(a, BL_BIT, 12, false, "0AAA"), "2730");
    assert_string_equal(value(a, BL_BIT, 64, false, "FFFFFFFFFFFFFFFF"), "18446744073709551615");
    /* DATE: 3 bytes little-endian, day | month << 5 | year << 9 */
    assert_string_equal(value(a, BL_DATE, 0, false, "5DD00F"), "2024-02-29");
    assert_string_equal(value(a, BL_DATE, 0, false, "000000"), "NULL"); /* zero date */
    /* DATETIME2(0): sign bit, 17 bits year*13+month, 5 day, 5 hour, 6 minute, 6 second */
    {
        uint64_t ym = 2024 * 13 + 1, v = (1ULL << 39) | ym << 22 | 2ULL << 17 | 10ULL << 12 | 7ULL << 6 | 9;
        struct buf b = {0};
        be(&b, v, 5);
        be(&b, 123456, 3); /* DATETIME2(6): 3 fraction bytes */
        char hex[64] = "";
        for (size_t i = 0; i < b.len; i++)
            sprintf(hex + 2 * i, "%02X", (uint8_t)b.data[i]);
        assert_string_equal(value(a, BL_DATETIME2, 6, false, hex), "2024-01-02 10:07:09.123456");
        hex[10] = 0;
        assert_string_equal(value(a, BL_DATETIME2, 0, false, hex), "2024-01-02 10:07:09.000000");
        buf_free(&b);
    }
    /* TIMESTAMP2(6): big-endian seconds + 3 fraction bytes; text in UTC */
    assert_string_equal(value(a, BL_TIMESTAMP2, 6, false, "6593DEA0 01E240"), "2024-01-02 10:00:00.123456+00");
    assert_string_equal(value(a, BL_TIMESTAMP2, 0, false, "00000000"), "NULL");
    assert_string_equal(value(a, BL_TIMESTAMP2, 3, false, "00000001 0064"), "1970-01-01 00:00:01.010000+00");
    /* TIME2(0): sign bit, unused bit, 10 bits hour, 6 minute, 6 second */
    assert_string_equal(value(a, BL_TIME2, 0, false, "817EFB"), "23:59:59.000000");
    assert_string_equal(value(a, BL_TIME2, 6, false, "817EFB0F423F"), "23:59:59.999999");
    assert_string_equal(value(a, BL_TIME2, 2, false, "80000005"), "00:00:00.050000");
    assert_string_equal(value(a, BL_TIME2, 0, false, "7FFFFF"), "ERROR"); /* negative: no Iceberg time */
    assert_string_equal(value(a, BL_TIME2, 0, false, "819000"), "ERROR"); /* 25:00:00 */
    assert_string_equal(value(a, BL_VARCHAR, 300, false, "0300616263"), "abc"); /* 2-byte length */
    assert_string_equal(value(a, BL_STRING, 40, false, "046162"), "ERROR"); /* length 4, 2 bytes left: truncated */
    assert_string_equal(value(a, BL_STRING, 40, false, "03616220"), "ab");      /* CHAR: trailing spaces go */
    assert_string_equal(value(a, BL_BLOB, 2, false, "0200C3A9"), "é");
    assert_string_equal(value(a, BL_TIME2, 9, false, "800000"), "ERROR");
    assert_string_equal(value(a, BL_NEWDECIMAL, 14 << 8 | 4, false, "810DFB38D204"), "ERROR");
    assert_string_equal(value(a, BL_NEWDECIMAL, 5 << 8 | 0, false, "FFFFFF"), "ERROR"); /* group out of range */
    arena_free(a);
}

static const char *json(struct arena *a, const char *hex)
{
    struct buf b = {0};
    bytes(&b, hex);
    uint8_t *copy = malloc(b.len ? b.len : 1);
    if (b.len)
        memcpy(copy, b.data, b.len);
    const char *out;
    struct loch_err err;
    int rc = binlog_json_text(copy, b.len, a, &out, &err);
    free(copy);
    buf_free(&b);
    return rc ? "ERROR" : out;
}

static void test_mysql_binary_json(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    /* small object {"a": 1}: count, size, key entry (offset, length), value entry (int16 inline), key */
    assert_string_equal(json(a, "00 0100 0C00 0B00 0100 050100 61"), "{\"a\": 1}");
    /* small array [true, "x"]: literal inline, string at offset 10 */
    assert_string_equal(json(a, "02 0200 0C00 040100 0C0A00 0178"), "[true, \"x\"]");
    assert_string_equal(json(a, "04 00"), "null");
    assert_string_equal(json(a, "09 FFFFFFFFFFFFFFFF"), "-1");
    assert_string_equal(json(a, "0A FFFFFFFFFFFFFFFF"), "\"18446744073709551615\"");
    assert_string_equal(json(a, "0B 000000000000F83F"), "1.5");
    assert_string_equal(json(a, "0C 03 616263"), "\"abc\"");
    assert_string_equal(json(a, ""), "null");
    /* nested: {"k": [1]} with the array at offset 11 */
    assert_string_equal(json(a, "00 0100 1300 0B00 0100 020C00 6B 0100 0700 050100"), "{\"k\": [1]}");
    /* opaque DECIMAL(4,2) 12.34: field type 246, length 4, precision, scale, binary */
    assert_string_equal(json(a, "0F F6 04 0402 8C22"), "\"12.34\"");
    /* bad input: offset past the end, size larger than the buffer, unknown type, truncated */
    assert_string_equal(json(a, "02 0100 0900 0C4000"), "ERROR");
    assert_string_equal(json(a, "00 0100 FF00 0B00 0100 050100 61"), "ERROR");
    assert_string_equal(json(a, "0D 00"), "ERROR");
    assert_string_equal(json(a, "0C 05 6162"), "ERROR");
    assert_string_equal(json(a, "00 01"), "ERROR");
    /* fuzzer finding: a key with a NUL inside is refused without leaking its value */
    assert_string_equal(json(a, "00 0100 0D00 0B00 0200 050100 6100"), "ERROR");
    arena_free(a);
}

static void test_other_events(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct buf b = {0};
    struct loch_err err;
    /* QUERY: thread id, exec time, db length, error code, status vars length, vars, db\0, statement */
    le(&b, 7, 4), le(&b, 0, 4), u8(&b, 4), le(&b, 0, 2), le(&b, 3, 2), bytes(&b, "000000");
    put(&b, "bank", 5);
    put(&b, "TRUNCATE t", 10);
    const char *db, *stmt;
    assert_int_equal(binlog_query_decode((uint8_t *)b.data, b.len, a, &db, &stmt, &err), 0);
    assert_string_equal(db, "bank");
    assert_string_equal(stmt, "TRUNCATE t");
    assert_int_not_equal(binlog_query_decode((uint8_t *)b.data, 14, a, &db, &stmt, &err), 0);
    buf_reset(&b);
    le(&b, 4, 8);
    put(&b, "binlog.000002", 13);
    const char *file;
    uint64_t pos;
    assert_int_equal(binlog_rotate_decode((uint8_t *)b.data, b.len, a, &file, &pos, &err), 0);
    assert_string_equal(file, "binlog.000002");
    assert_int_equal(pos, 4);
    buf_reset(&b);
    le(&b, 55, 8), le(&b, 3, 4), u8(&b, 1);
    uint64_t seq;
    uint32_t dom;
    uint8_t fl;
    assert_int_equal(binlog_mariadb_gtid_decode((uint8_t *)b.data, b.len, &seq, &dom, &fl, &err), 0);
    assert_int_equal(seq, 55);
    assert_int_equal(dom, 3);
    buf_reset(&b);
    u8(&b, 1);
    bytes(&b, "3E11FA47 71CA 11E1 9E33 C80AA9429562");
    le(&b, 23, 8);
    const char *g;
    assert_int_equal(binlog_mysql_gtid_decode((uint8_t *)b.data, b.len, a, &g, &err), 0);
    assert_string_equal(g, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23");
    buf_free(&b);
    arena_free(a);
}

static void test_ddl_recognition(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct mysrc_ddl d;
    mysrc_ddl_parse("TRUNCATE TABLE `bank`.`acc`", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_TRUNCATE);
    assert_string_equal(d.dbs[0], "bank");
    assert_string_equal(d.tables[0], "acc");
    mysrc_ddl_parse("DROP TABLE IF EXISTS `a`,b.c /* generated by server */", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_DROP);
    assert_int_equal(d.n_tables, 2);
    assert_null(d.dbs[0]);
    assert_string_equal(d.tables[1], "c");
    mysrc_ddl_parse("alter table t add column x int, RENAME COLUMN `n` TO `amount`, change old new int", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_ALTER);
    assert_int_equal(d.n_renames, 2);
    assert_string_equal(d.rename_from[0], "n");
    assert_string_equal(d.rename_to[0], "amount");
    assert_string_equal(d.rename_to[1], "new");
    mysrc_ddl_parse("ALTER TABLE t CHANGE COLUMN same same BIGINT", a, &d);
    assert_int_equal(d.n_renames, 0);
    mysrc_ddl_parse("RENAME TABLE a TO b, x.c TO x.d", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_RENAME);
    assert_int_equal(d.n_tables, 4);
    assert_string_equal(d.tables[3], "d");
    mysrc_ddl_parse("CREATE TABLE IF NOT EXISTS n (id int)", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_CREATE);
    assert_string_equal(d.tables[0], "n");
    mysrc_ddl_parse("BEGIN", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_BEGIN);
    mysrc_ddl_parse("DROP TEMPORARY TABLE t", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_NONE);
    mysrc_ddl_parse("GRANT SELECT ON *.* TO x", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_NONE);
    mysrc_ddl_parse("", a, &d);
    assert_int_equal(d.kind, MYSRC_DDL_NONE);
    arena_free(a);
}

/* The source URL through libcurl's URL API: percent-decoded user and password, IPv6
 * hosts, defaults, and a clear refusal (never showing the password) for missing parts. */
static void test_source_url(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct mysrc_params p;
    struct loch_err err;
    assert_int_equal(mysrc_params_parse("mysql://r%40pl:p%40ss%3Aw%2Fd%25@db.example:3310/?tls=verify",
                                        NULL, a, &p, &err), 0);
    assert_string_equal(p.user, "r@pl");
    assert_string_equal(p.password, "p@ss:w/d%");
    assert_string_equal(p.host, "db.example");
    assert_int_equal(p.port, 3310);
    assert_string_equal(p.tls, "verify");
    /* IPv6 literal without the brackets; default port; empty password kept as given */
    assert_int_equal(mysrc_params_parse("mysql://u:@[2001:db8::1]", NULL, a, &p, &err), 0);
    assert_string_equal(p.host, "2001:db8::1");
    assert_int_equal(p.port, 3306);
    assert_string_equal(p.password, "");
    assert_null(p.tls);
    assert_int_equal(mysrc_params_parse("mysql://u@[::1]:3307/db?x=1&tls=off", NULL, a, &p, &err), 0);
    assert_string_equal(p.host, "::1");
    assert_int_equal(p.port, 3307);
    assert_string_equal(p.tls, "off");
    assert_int_equal(mysrc_params_parse("mysql://u@[fe80::1%25eth0]:3306", NULL, a, &p, &err), 0);
    assert_string_equal(p.host, "fe80::1%eth0");
    /* missing or bad parts: LOCH_ECONFIG saying which, with the hint on encoding */
    assert_int_equal(mysrc_params_parse("mysql://db:3306", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "names no user"));
    assert_non_null(strstr(err.hint, "%40"));
    assert_int_equal(mysrc_params_parse("mysql://:secret@db", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "names no user"));
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(mysrc_params_parse("mysql://u:secret@/", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "names no host"));
    assert_null(strstr(err.msg, "secret"));
    assert_int_equal(mysrc_params_parse("mysql://u@db:0", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "port"));
    assert_int_equal(mysrc_params_parse("mysql://u@db:port", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "port"));
    assert_int_equal(mysrc_params_parse("mysql://u@[::1", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_int_equal(mysrc_params_parse("mysql://u@db/?tls=yes", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.msg, "tls=yes"));
    assert_int_equal(mysrc_params_parse("mysql://u%00@db", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_int_equal(mysrc_params_parse(NULL, NULL, a, &p, &err), LOCH_ECONFIG);
    arena_free(a);
}

static void test_helpers(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct mysrc_params p;
    struct loch_err err;
    assert_int_equal(mysrc_params_parse("mysql://repl@10.0.0.6:3307", NULL, a, &p, &err), 0);
    assert_string_equal(p.user, "repl");
    assert_string_equal(p.host, "10.0.0.6");
    assert_int_equal(p.port, 3307);
    assert_null(p.password);
    setenv("LOCH_UNIT_PW", "s3cret", 1);
    assert_int_equal(mysrc_params_parse("mysql://u:inurl@db/?tls=require", "LOCH_UNIT_PW", a, &p, &err), 0);
    assert_string_equal(p.password, "s3cret");
    assert_string_equal(p.host, "db");
    assert_int_equal(p.port, 3306);
    assert_string_equal(p.tls, "require");
    assert_int_equal(mysrc_params_parse("postgresql://u@h", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_int_equal(mysrc_params_parse("mysql://h:99999", NULL, a, &p, &err), LOCH_ECONFIG);
    assert_int_equal(mysrc_params_parse("mysql://u@h:1", "LOCH_UNIT_UNSET_VAR", a, &p, &err), LOCH_ECONFIG);
    struct mysrc_pos x, y;
    assert_int_equal(mysrc_pos_parse("binlog.000009:1234 gtid=0-1-5,1-1-9", &x, &err), 0);
    assert_string_equal(x.file, "binlog.000009");
    assert_int_equal(x.pos, 1234);
    assert_string_equal(x.gtid, "0-1-5,1-1-9");
    assert_string_equal(mysrc_pos_format(&x, a), "binlog.000009:1234 gtid=0-1-5,1-1-9");
    assert_int_equal(mysrc_pos_parse("binlog.000010:4", &y, &err), 0);
    assert_true(mysrc_pos_cmp(&x, &y) < 0);
    assert_int_not_equal(mysrc_pos_parse("nonsense", &y, &err), 0);
    const char *inc[] = {"deposits.*", "cards.acc*"};
    const char *exc[] = {"deposits.tmp_*"};
    assert_true(mysrc_table_selected("deposits", "loans", inc, 2, exc, 1));
    assert_false(mysrc_table_selected("deposits", "tmp_x", inc, 2, exc, 1));
    assert_true(mysrc_table_selected("cards", "accounts", inc, 2, exc, 1));
    assert_false(mysrc_table_selected("cards", "limits", inc, 2, exc, 1));
    assert_false(mysrc_table_selected("mysql", "user", NULL, 0, NULL, 0));
    assert_int_equal(mysrc_derive_server_id("core"), mysrc_derive_server_id("core"));
    assert_true(mysrc_derive_server_id("core") >= 0x40000000u);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_map),
        cmocka_unit_test(test_write_rows_v1_and_v2),
        cmocka_unit_test(test_update_and_delete_rows),
        cmocka_unit_test(test_partial_image_refused),
        cmocka_unit_test(test_truncated_events),
        cmocka_unit_test(test_zero_column_table_map),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_mysql_binary_json),
        cmocka_unit_test(test_other_events),
        cmocka_unit_test(test_ddl_recognition),
        cmocka_unit_test(test_source_url),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
