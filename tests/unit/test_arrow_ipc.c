/* test_arrow_ipc.c: engine results written as Arrow IPC streams (server/arrow_ipc.c) and
 * read back with nanoarrow's own IPC reader: the schema carries the exact types (decimal128,
 * timestamp[us, UTC], utf8), every row of every chunk comes back with its NULLs, an empty
 * result is a schema and the end marker, and a stream cut short is refused by the reader. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <nanoarrow/nanoarrow.h>
#include <nanoarrow/nanoarrow_ipc.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"
#include "server/arrow_ipc.h"

struct fixture {
    struct engine *e;
    struct engine_conn *c;
};

static int setup(void **state)
{
    static struct fixture f;
    struct loch_err err = {0};
    if (engine_open(NULL, &f.e, &err) || engine_connect(f.e, &f.c, &err))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    engine_disconnect(f->c);
    engine_close(f->e);
    return 0;
}

/* Writes the whole result of sql as an IPC stream into out; returns the rows written. */
static int64_t write_stream(struct engine_conn *c, const char *sql, struct buf *out)
{
    struct loch_err err = {0};
    struct engine_stmt *st;
    struct engine_stream *es;
    struct engine_chunk *ch;
    struct arrow_ipc *w;
    assert_int_equal(engine_prepare(c, sql, &st, &err), 0);
    assert_int_equal(engine_execute(st, &es, &err), 0);
    assert_int_equal(arrow_ipc_begin(out, es, &w, &err), 0);
    int64_t rows = 0;
    for (;;) {
        assert_int_equal(engine_stream_next(es, &ch, &err), 0);
        if (!ch)
            break;
        rows += (int64_t)engine_chunk_rows(ch);
        int rc = arrow_ipc_chunk(w, ch, &err);
        if (rc)
            fprintf(stderr, "%s\n", err.msg);
        assert_int_equal(rc, 0);
    }
    assert_int_equal(arrow_ipc_end(w, &err), 0);
    arrow_ipc_free(w);
    engine_stream_free(es);
    engine_stmt_free(st);
    return rows;
}

/* A nanoarrow IPC reader over a copy of bytes. */
static int open_reader(const void *p, size_t n, struct ArrowArrayStream *s)
{
    struct ArrowBuffer in;
    ArrowBufferInit(&in);
    assert_int_equal(ArrowBufferAppend(&in, p, (int64_t)n), NANOARROW_OK);
    struct ArrowIpcInputStream input;
    assert_int_equal(ArrowIpcInputStreamInitBuffer(&input, &in), NANOARROW_OK); /* takes in */
    return ArrowIpcArrayStreamReaderInit(s, &input, NULL);
}

static void test_types_and_rows_round_trip(void **state)
{
    struct fixture *f = *state;
    struct buf out = {0};
    /* 5000 rows: three DuckDB chunks, so three record batches */
    int64_t n = write_stream(f->c,
                             "SELECT i AS id, CAST(CAST(i AS DECIMAL(18,2)) * 0.25 AS DECIMAL(18,2)) AS amount, "
                             "CAST(i AS DECIMAL(38,0)) * 100000000000000000000 AS big, "
                             "TIMESTAMPTZ '2024-01-01 00:00:00+00' + to_microseconds(i) AS ts, "
                             "CASE WHEN i % 2 = 0 THEN NULL ELSE 'Zürich ' || i END AS s, "
                             "CAST('2024-01-01 00:00:00.123456789' AS TIMESTAMP_NS) AS ns "
                             "FROM range(5000) t(i) ORDER BY i",
                             &out);
    assert_int_equal(n, 5000);

    struct ArrowArrayStream s;
    assert_int_equal(open_reader(out.data, out.len, &s), NANOARROW_OK);
    struct ArrowSchema schema;
    struct ArrowError e = {{0}};
    assert_int_equal(ArrowArrayStreamGetSchema(&s, &schema, &e), NANOARROW_OK);
    assert_int_equal(schema.n_children, 6);
    assert_string_equal(schema.children[0]->format, "l");
    assert_string_equal(schema.children[1]->format, "d:18,2");
    assert_string_equal(schema.children[2]->format, "d:38,0");
    assert_string_equal(schema.children[3]->format, "tsu:UTC");
    assert_string_equal(schema.children[4]->format, "u");
    assert_string_equal(schema.children[5]->format, "tsn:"); /* the unit DuckDB has, not µs */
    assert_string_equal(schema.children[4]->name, "s");

    struct ArrowArrayView v;
    assert_int_equal(ArrowArrayViewInitFromSchema(&v, &schema, &e), NANOARROW_OK);
    int64_t row = 0, batches = 0;
    for (;;) {
        struct ArrowArray a;
        assert_int_equal(ArrowArrayStreamGetNext(&s, &a, &e), NANOARROW_OK);
        if (!a.release)
            break;
        batches++;
        assert_int_equal(ArrowArrayViewSetArray(&v, &a, &e), NANOARROW_OK);
        for (int64_t i = 0; i < a.length; i++, row++) {
            assert_int_equal(ArrowArrayViewGetIntUnsafe(v.children[0], i), row);
            struct ArrowDecimal d;
            ArrowDecimalInit(&d, 128, 18, 2);
            ArrowArrayViewGetDecimalUnsafe(v.children[1], i, &d);
            assert_int_equal(ArrowDecimalGetIntUnsafe(&d), row * 25); /* i/4 in cents */
            ArrowDecimalInit(&d, 128, 38, 0);
            ArrowArrayViewGetDecimalUnsafe(v.children[2], i, &d);
            uint8_t bytes[16], want[16] = {0};
            ArrowDecimalGetBytes(&d, bytes);
            /* row * 10^20 as a 128-bit little-endian integer */
            unsigned __int128 x = (unsigned __int128)row * ((unsigned __int128)10000000000ULL * 10000000000ULL);
            memcpy(want, &x, 16);
            assert_memory_equal(bytes, want, 16);
            assert_int_equal(ArrowArrayViewGetIntUnsafe(v.children[3], i), 1704067200000000LL + row);
            if (row % 2 == 0) {
                assert_true(ArrowArrayViewIsNull(v.children[4], i));
            } else {
                char want_s[32];
                snprintf(want_s, sizeof want_s, "Zürich %lld", (long long)row);
                struct ArrowStringView sv = ArrowArrayViewGetStringUnsafe(v.children[4], i);
                assert_int_equal(sv.size_bytes, (int64_t)strlen(want_s));
                assert_memory_equal(sv.data, want_s, strlen(want_s));
            }
            assert_int_equal(ArrowArrayViewGetIntUnsafe(v.children[5], i), 1704067200123456789LL);
        }
        a.release(&a);
    }
    assert_int_equal(row, 5000);
    assert_int_equal(batches, 3);
    ArrowArrayViewReset(&v);
    schema.release(&schema);
    ArrowArrayStreamRelease(&s);

    /* a stream cut short (inside the last record batch) is refused */
    assert_int_equal(open_reader(out.data, out.len - 9, &s), NANOARROW_OK);
    assert_int_equal(ArrowArrayStreamGetSchema(&s, &schema, &e), NANOARROW_OK);
    schema.release(&schema);
    int rc = NANOARROW_OK;
    for (int i = 0; i < 10 && rc == NANOARROW_OK; i++) {
        struct ArrowArray a;
        rc = ArrowArrayStreamGetNext(&s, &a, &e);
        if (rc == NANOARROW_OK && !a.release)
            break;
        if (rc == NANOARROW_OK)
            a.release(&a);
    }
    assert_int_not_equal(rc, NANOARROW_OK);
    ArrowArrayStreamRelease(&s);
    buf_free(&out);
}

/* The unit of TIMESTAMP_NS stays DuckDB's in the chunk (for Arrow), while engine_chunk_get
 * still reads µs (for JSON, CSV and the wire). */
static void test_chunk_get_still_reads_microseconds(void **state)
{
    struct fixture *f = *state;
    struct loch_err err = {0};
    struct engine_stmt *st;
    struct engine_stream *es;
    struct engine_chunk *ch;
    assert_int_equal(engine_prepare(f->c, "SELECT CAST('2024-01-01 00:00:00.123456789' AS TIMESTAMP_NS) AS ns, "
                                          "CAST('2024-01-01 00:00:01' AS TIMESTAMP_S) AS s",
                                    &st, &err),
                     0);
    assert_int_equal(engine_execute(st, &es, &err), 0);
    assert_int_equal(engine_stream_next(es, &ch, &err), 0);
    struct engine_val v;
    assert_true(engine_chunk_get(ch, 0, 0, &v));
    assert_int_equal(v.i, 1704067200123456LL);
    assert_true(engine_chunk_get(ch, 1, 0, &v));
    assert_int_equal(v.i, 1704067201000000LL);
    assert_true(engine_chunk_get(ch, 0, 0, &v)); /* reading twice does not convert twice */
    assert_int_equal(v.i, 1704067200123456LL);
    engine_stream_free(es);
    engine_stmt_free(st);
}

static void test_empty_results(void **state)
{
    struct fixture *f = *state;
    struct buf out = {0};
    assert_int_equal(write_stream(f->c, "SELECT 1 AS one, 'x' AS two WHERE false", &out), 0);
    struct ArrowArrayStream s;
    struct ArrowSchema schema;
    struct ArrowArray a;
    struct ArrowError e = {{0}};
    assert_int_equal(open_reader(out.data, out.len, &s), NANOARROW_OK);
    assert_int_equal(ArrowArrayStreamGetSchema(&s, &schema, &e), NANOARROW_OK);
    assert_int_equal(schema.n_children, 2);
    assert_string_equal(schema.children[1]->name, "two");
    schema.release(&schema);
    assert_int_equal(ArrowArrayStreamGetNext(&s, &a, &e), NANOARROW_OK);
    assert_null(a.release); /* no batch: the end marker */
    ArrowArrayStreamRelease(&s);

    /* no result set at all: a stream of no columns */
    buf_reset(&out);
    struct loch_err err = {0};
    assert_int_equal(arrow_ipc_empty(&out, &err), 0);
    assert_int_equal(open_reader(out.data, out.len, &s), NANOARROW_OK);
    assert_int_equal(ArrowArrayStreamGetSchema(&s, &schema, &e), NANOARROW_OK);
    assert_int_equal(schema.n_children, 0);
    schema.release(&schema);
    assert_int_equal(ArrowArrayStreamGetNext(&s, &a, &e), NANOARROW_OK);
    assert_null(a.release);
    ArrowArrayStreamRelease(&s);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_rows_round_trip),
        cmocka_unit_test(test_chunk_get_still_reads_microseconds),
        cmocka_unit_test(test_empty_results),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
