/* test_pgoutput.c: the pgoutput and replication-frame decoders on hand-built messages
 * (byte layouts from protocol-logicalrep-message-formats.html), every truncation of each,
 * garbage; the value conversions of cdc/pg/pg_types.c. Not for a live server (integration). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/pg/pg.h"
#include "cdc/pg/pgoutput.h"

static void be16(struct buf *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 2);
}
static void be32(struct buf *b, uint32_t v) { buf_put_be32(b, v); }
static void be64(struct buf *b, uint64_t v)
{
    be32(b, (uint32_t)(v >> 32));
    be32(b, (uint32_t)v);
}
static void cstr(struct buf *b, const char *s) { buf_append(b, s, strlen(s) + 1); }
static void tcol(struct buf *b, const char *s)
{
    buf_putc(b, 't');
    be32(b, (uint32_t)strlen(s));
    buf_puts(b, s);
}

/* Every proper prefix of a valid message must be refused, never read past. */
static void all_prefixes_fail(const struct buf *m)
{
    for (size_t n = 0; n < m->len; n++) {
        struct arena *a = arena_new();
        struct pgo_msg out;
        struct loch_err err;
        /* copy so ASan sees reads past n */
        uint8_t *copy = xmalloc(n ? n : 1);
        memcpy(copy, m->data, n);
        assert_int_equal(pgoutput_decode(copy, n, a, &out, &err), LOCH_EPROTO);
        free(copy);
        arena_free(a);
    }
}

static void test_begin_commit(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_putc(&b, 'B');
    be64(&b, 0x100000020ULL);
    be64(&b, 757382400000000LL); /* 2024-01-01 in PG epoch µs */
    be32(&b, 4242);
    struct arena *a = arena_new();
    struct pgo_msg m;
    struct loch_err err;
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.kind, PGO_BEGIN);
    assert_true(m.u.begin.final_lsn == 0x100000020ULL);
    assert_int_equal(m.u.begin.xid, 4242);
    assert_true(m.u.begin.commit_ts + PGO_EPOCH_OFFSET_US == 1704067200000000LL);
    all_prefixes_fail(&b);
    buf_reset(&b);
    buf_putc(&b, 'C');
    buf_putc(&b, 0);
    be64(&b, 0x10);
    be64(&b, 0x38);
    be64(&b, 5);
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_true(m.u.commit.commit_lsn == 0x10 && m.u.commit.end_lsn == 0x38);
    all_prefixes_fail(&b);
    buf_putc(&b, 'x'); /* trailing garbage */
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);
    assert_non_null(strstr(err.msg, "trailing"));
    buf_free(&b);
    arena_free(a);
}

static void relation(struct buf *b)
{
    buf_putc(b, 'R');
    be32(b, 16384);
    cstr(b, "public");
    cstr(b, "accounts");
    buf_putc(b, 'd');
    be16(b, 3);
    buf_putc(b, 1);
    cstr(b, "id");
    be32(b, 23);
    be32(b, (uint32_t)-1);
    buf_putc(b, 0);
    cstr(b, "balance");
    be32(b, 1700);
    be32(b, ((12 << 16) | 2) + 4);
    buf_putc(b, 0);
    cstr(b, "doc");
    be32(b, 25);
    be32(b, (uint32_t)-1);
}

static void test_relation(void **state)
{
    (void)state;
    struct buf b = {0};
    relation(&b);
    struct arena *a = arena_new();
    struct pgo_msg m;
    struct loch_err err;
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_string_equal(m.u.rel.nspname, "public");
    assert_string_equal(m.u.rel.relname, "accounts");
    assert_int_equal(m.u.rel.replident, 'd');
    assert_int_equal(m.u.rel.ncols, 3);
    assert_int_equal(m.u.rel.cols[0].flags, 1);
    assert_string_equal(m.u.rel.cols[1].name, "balance");
    assert_int_equal(m.u.rel.cols[1].type_oid, 1700);
    assert_int_equal(m.u.rel.cols[2].typmod, -1);
    all_prefixes_fail(&b);
    /* a column count the buffer cannot hold is refused before any allocation */
    struct buf h = {0};
    buf_putc(&h, 'R');
    be32(&h, 1);
    cstr(&h, "s");
    cstr(&h, "t");
    buf_putc(&h, 'd');
    be16(&h, 65535);
    assert_int_equal(pgoutput_decode((uint8_t *)h.data, h.len, a, &m, &err), LOCH_EPROTO);
    buf_free(&h);
    buf_free(&b);
    arena_free(a);
}

static void test_insert_update_delete(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct pgo_msg m;
    struct loch_err err;
    struct buf b = {0};
    buf_putc(&b, 'I');
    be32(&b, 16384);
    buf_putc(&b, 'N');
    be16(&b, 3);
    tcol(&b, "7");
    buf_putc(&b, 'n');
    tcol(&b, "");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.kind, PGO_INSERT);
    assert_int_equal(m.u.dml.new.n, 3);
    assert_int_equal(m.u.dml.new.cols[0].kind, 't');
    assert_memory_equal(m.u.dml.new.cols[0].data, "7", 1);
    assert_int_equal(m.u.dml.new.cols[1].kind, 'n');
    assert_int_equal(m.u.dml.new.cols[2].len, 0);
    all_prefixes_fail(&b);

    buf_reset(&b); /* update with old key and an unchanged TOAST value */
    buf_putc(&b, 'U');
    be32(&b, 16384);
    buf_putc(&b, 'K');
    be16(&b, 3);
    tcol(&b, "7");
    buf_putc(&b, 'n');
    buf_putc(&b, 'n');
    buf_putc(&b, 'N');
    be16(&b, 3);
    tcol(&b, "8");
    tcol(&b, "10.50");
    buf_putc(&b, 'u');
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.u.dml.old_kind, 'K');
    assert_int_equal(m.u.dml.new.cols[2].kind, 'u');
    assert_memory_equal(m.u.dml.new.cols[1].data, "10.50", 5);
    all_prefixes_fail(&b);

    buf_reset(&b); /* update without an old tuple */
    buf_putc(&b, 'U');
    be32(&b, 1);
    buf_putc(&b, 'N');
    be16(&b, 1);
    tcol(&b, "x");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.u.dml.old_kind, 0);

    buf_reset(&b);
    buf_putc(&b, 'D');
    be32(&b, 16384);
    buf_putc(&b, 'O');
    be16(&b, 1);
    tcol(&b, "9");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.u.dml.old_kind, 'O');
    all_prefixes_fail(&b);

    buf_reset(&b); /* a delete with a new tuple is not pgoutput */
    buf_putc(&b, 'D');
    be32(&b, 1);
    buf_putc(&b, 'N');
    be16(&b, 0);
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);

    buf_reset(&b); /* a value length past the end */
    buf_putc(&b, 'I');
    be32(&b, 1);
    buf_putc(&b, 'N');
    be16(&b, 1);
    buf_putc(&b, 't');
    be32(&b, 0x7fffffff);
    buf_puts(&b, "abc");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);

    buf_reset(&b); /* an unknown column kind */
    buf_putc(&b, 'I');
    be32(&b, 1);
    buf_putc(&b, 'N');
    be16(&b, 1);
    buf_putc(&b, 'z');
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);
    buf_free(&b);
    arena_free(a);
}

static void test_truncate_type_origin_message(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    struct pgo_msg m;
    struct loch_err err;
    struct buf b = {0};
    buf_putc(&b, 'T');
    be32(&b, 2);
    buf_putc(&b, 1);
    be32(&b, 10);
    be32(&b, 11);
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.u.trunc.nrels, 2);
    assert_int_equal(m.u.trunc.relids[1], 11);
    all_prefixes_fail(&b);
    buf_reset(&b);
    buf_putc(&b, 'T');
    be32(&b, 0x40000000); /* more relations than bytes */
    buf_putc(&b, 0);
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);
    buf_reset(&b);
    buf_putc(&b, 'Y');
    be32(&b, 90000);
    cstr(&b, "public");
    cstr(&b, "mood");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_string_equal(m.u.type.name, "mood");
    all_prefixes_fail(&b);
    buf_reset(&b);
    buf_putc(&b, 'O');
    be64(&b, 1);
    cstr(&b, "node1");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    all_prefixes_fail(&b);
    buf_reset(&b);
    buf_putc(&b, 'M');
    buf_putc(&b, 1);
    be64(&b, 99);
    cstr(&b, "loch");
    be32(&b, 3);
    buf_puts(&b, "abc");
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), 0);
    assert_int_equal(m.u.message.len, 3);
    all_prefixes_fail(&b);
    buf_reset(&b);
    buf_putc(&b, 'Q');
    assert_int_equal(pgoutput_decode((uint8_t *)b.data, b.len, a, &m, &err), LOCH_EPROTO);
    assert_non_null(strstr(err.msg, "unknown message type"));
    buf_free(&b);
    arena_free(a);
}

static void test_frames(void **state)
{
    (void)state;
    struct pgo_frame f;
    struct loch_err err;
    struct buf b = {0};
    buf_putc(&b, 'k');
    be64(&b, 0xABCDEF);
    be64(&b, 1);
    buf_putc(&b, 1);
    assert_int_equal(pgoutput_decode_frame((uint8_t *)b.data, b.len, &f, &err), 0);
    assert_true(f.kind == 'k' && f.wal_end == 0xABCDEF && f.reply_requested);
    for (size_t n = 0; n < b.len; n++)
        assert_int_equal(pgoutput_decode_frame((uint8_t *)b.data, n, &f, &err), LOCH_EPROTO);
    buf_reset(&b);
    buf_putc(&b, 'w');
    be64(&b, 1);
    be64(&b, 2);
    be64(&b, 3);
    buf_puts(&b, "Bxyz");
    assert_int_equal(pgoutput_decode_frame((uint8_t *)b.data, b.len, &f, &err), 0);
    assert_int_equal(f.payload_len, 4);
    assert_memory_equal(f.payload, "Bxyz", 4);
    assert_int_equal(pgoutput_decode_frame((uint8_t *)b.data, 24, &f, &err), LOCH_EPROTO);
    buf_free(&b);
    uint8_t st[34];
    pgoutput_status_update(st, 0x0102030405060708ULL, 2, 3, 4, true);
    assert_int_equal(st[0], 'r');
    assert_int_equal(st[1], 1);
    assert_int_equal(st[8], 8);
    assert_int_equal(st[33], 1);
}

static void test_lsn_and_values(void **state)
{
    (void)state;
    char t[32];
    uint64_t v;
    pgoutput_lsn_format(0x16B3748ULL | (3ULL << 32), t, sizeof t);
    assert_string_equal(t, "3/16B3748");
    assert_true(pgoutput_lsn_parse(t, &v) && v == (0x16B3748ULL | (3ULL << 32)));
    assert_false(pgoutput_lsn_parse("3/16B3748x", &v));
    assert_false(pgoutput_lsn_parse("nope", &v));
    struct arena *a = arena_new();
    size_t n;
    const char *s = pgsrc_value_canon(PGSRC_CONV_MONEY, "-$1,234,567.89", 14, a, &n);
    assert_int_equal(n, 11);
    assert_memory_equal(s, "-1234567.89", 11);
    s = pgsrc_value_canon(PGSRC_CONV_MONEY, "($0.01)", 7, a, &n);
    assert_memory_equal(s, "-0.01", n);
    s = pgsrc_value_canon(PGSRC_CONV_BYTEA, "\\x00ff", 6, a, &n);
    assert_memory_equal(s, "00ff", n);
    assert_int_equal(n, 4);
    s = pgsrc_value_canon(PGSRC_CONV_NONE, "abc", 3, a, &n);
    assert_int_equal(n, 3);
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_begin_commit),
        cmocka_unit_test(test_relation),
        cmocka_unit_test(test_insert_update_delete),
        cmocka_unit_test(test_truncate_type_origin_message),
        cmocka_unit_test(test_frames),
        cmocka_unit_test(test_lsn_and_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
