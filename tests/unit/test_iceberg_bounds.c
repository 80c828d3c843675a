/* test_iceberg_bounds.c: unit tests for the single-value binary encoding (spec
 * Appendix D) and string-bound truncation in src/iceberg/bounds.c.
 * Not for manifests (test_iceberg_manifest.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "iceberg/iceberg.h"

static struct iceberg_type ty(enum iceberg_type_id id)
{
    struct iceberg_type t = {id, 0, 0, 0};
    return t;
}

/* Encodes v as t, checks the bytes, decodes them again and returns the decoded value. */
static struct iceberg_value roundtrip(struct iceberg_type t, struct iceberg_value v,
                                      const uint8_t *want, size_t want_len)
{
    uint8_t out[64];
    size_t n = 0;
    assert_int_equal(iceberg_bound_encode(&t, &v, out, sizeof out, &n), 0);
    assert_int_equal(n, want_len);
    assert_memory_equal(out, want, want_len);
    struct iceberg_value back;
    assert_int_equal(iceberg_bound_decode(&t, out, n, &back), 0);
    assert_false(back.is_null);
    return back;
}

static void test_fixed_width(void **state)
{
    (void)state;
    struct iceberg_value v = {0};

    v.v.b = true;
    assert_true(roundtrip(ty(ICEBERG_BOOLEAN), v, (const uint8_t *)"\x01", 1).v.b);
    v.v.b = false;
    assert_false(roundtrip(ty(ICEBERG_BOOLEAN), v, (const uint8_t *)"\x00", 1).v.b);

    v.v.i32 = 0x01020304;
    assert_int_equal(roundtrip(ty(ICEBERG_INT), v, (const uint8_t *)"\x04\x03\x02\x01", 4).v.i32,
                     0x01020304);
    v.v.i32 = -2;
    assert_int_equal(roundtrip(ty(ICEBERG_INT), v, (const uint8_t *)"\xfe\xff\xff\xff", 4).v.i32, -2);
    v.v.i32 = 19000; /* 2022-01-08 */
    assert_int_equal(roundtrip(ty(ICEBERG_DATE), v, (const uint8_t *)"\x38\x4a\x00\x00", 4).v.i32,
                     19000);

    v.v.i64 = 0x0102030405060708LL;
    const uint8_t le8[] = {8, 7, 6, 5, 4, 3, 2, 1};
    assert_true(roundtrip(ty(ICEBERG_LONG), v, le8, 8).v.i64 == 0x0102030405060708LL);
    assert_true(roundtrip(ty(ICEBERG_TIME), v, le8, 8).v.i64 == 0x0102030405060708LL);
    assert_true(roundtrip(ty(ICEBERG_TIMESTAMP), v, le8, 8).v.i64 == 0x0102030405060708LL);
    assert_true(roundtrip(ty(ICEBERG_TIMESTAMPTZ), v, le8, 8).v.i64 == 0x0102030405060708LL);
    v.v.i64 = -1;
    assert_true(roundtrip(ty(ICEBERG_LONG), v, (const uint8_t *)"\xff\xff\xff\xff\xff\xff\xff\xff", 8)
                    .v.i64 == -1);

    v.v.f32 = 1.0f; /* 0x3F800000 */
    assert_true(roundtrip(ty(ICEBERG_FLOAT), v, (const uint8_t *)"\x00\x00\x80\x3f", 4).v.f32 == 1.0f);
    v.v.f32 = -2.5f; /* 0xC0200000 */
    assert_true(roundtrip(ty(ICEBERG_FLOAT), v, (const uint8_t *)"\x00\x00\x20\xc0", 4).v.f32 == -2.5f);
    v.v.f64 = 1.0; /* 0x3FF0000000000000 */
    assert_true(roundtrip(ty(ICEBERG_DOUBLE), v, (const uint8_t *)"\0\0\0\0\0\0\xf0\x3f", 8).v.f64 == 1.0);
    v.v.f64 = -0.0;
    assert_true(roundtrip(ty(ICEBERG_DOUBLE), v, (const uint8_t *)"\0\0\0\0\0\0\0\x80", 8).v.f64 == 0.0);
}

static void test_promoted_widths(void **state)
{
    (void)state;
    struct iceberg_type tl = ty(ICEBERG_LONG), td = ty(ICEBERG_DOUBLE);
    struct iceberg_value out;
    /* An int bound read as long after int->long promotion (sign-extended). */
    assert_int_equal(iceberg_bound_decode(&tl, (const uint8_t *)"\xfe\xff\xff\xff", 4, &out), 0);
    assert_true(out.v.i64 == -2);
    /* A float bound read as double after float->double promotion. */
    assert_int_equal(iceberg_bound_decode(&td, (const uint8_t *)"\x00\x00\x80\x3f", 4, &out), 0);
    assert_true(out.v.f64 == 1.0);
}

static struct iceberg_value dec(int64_t hi, uint64_t lo)
{
    struct iceberg_value v = {0};
    v.v.dec.hi = hi;
    v.v.dec.lo = lo;
    return v;
}

static void check_dec(int64_t hi, uint64_t lo, const char *want, size_t want_len)
{
    struct iceberg_type t = {ICEBERG_DECIMAL, 38, 2, 0};
    struct iceberg_value back = roundtrip(t, dec(hi, lo), (const uint8_t *)want, want_len);
    assert_true(back.v.dec.hi == hi);
    assert_true(back.v.dec.lo == lo);
}

static void test_decimal(void **state)
{
    (void)state;
    /* Java BigInteger.toByteArray(): minimal two's complement, big-endian. */
    check_dec(0, 0, "\x00", 1);
    check_dec(0, 1, "\x01", 1);
    check_dec(-1, UINT64_MAX, "\xff", 1);                /* -1 */
    check_dec(0, 127, "\x7f", 1);
    check_dec(0, 128, "\x00\x80", 2);
    check_dec(-1, (uint64_t)-128, "\x80", 1);            /* -128 */
    check_dec(-1, (uint64_t)-129, "\xff\x7f", 2);        /* -129 */
    check_dec(0, 12345, "\x30\x39", 2);
    check_dec(-1, (uint64_t)-12345, "\xcf\xc7", 2);
    check_dec(0, 0x8000000000000000ULL, "\x00\x80\x00\x00\x00\x00\x00\x00\x00", 9);
    /* 10^38 - 1 (38 nines) = 0x4B3B4CA85A86C47A098A223FFFFFFFFF. */
    check_dec(0x4B3B4CA85A86C47ALL, 0x098A223FFFFFFFFFULL,
              "\x4b\x3b\x4c\xa8\x5a\x86\xc4\x7a\x09\x8a\x22\x3f\xff\xff\xff\xff", 16);
    /* -(10^38 - 1) = 0xB4C4B357A5793B85F675DDC000000001. */
    check_dec((int64_t)0xB4C4B357A5793B85ULL, 0xF675DDC000000001ULL,
              "\xb4\xc4\xb3\x57\xa5\x79\x3b\x85\xf6\x75\xdd\xc0\x00\x00\x00\x01", 16);

    /* Decoding sign-extends short forms and rejects empty or over-long input. */
    struct iceberg_type t = {ICEBERG_DECIMAL, 10, 0, 0};
    struct iceberg_value out;
    assert_int_equal(iceberg_bound_decode(&t, (const uint8_t *)"\xff\x7f", 2, &out), 0);
    assert_true(out.v.dec.hi == -1 && out.v.dec.lo == (uint64_t)-129);
    assert_int_equal(iceberg_bound_decode(&t, (const uint8_t *)"", 0, &out), LOCH_ECORRUPT);
    uint8_t big[17] = {0};
    assert_int_equal(iceberg_bound_decode(&t, big, 17, &out), LOCH_ECORRUPT);
}

static void test_bytes_types(void **state)
{
    (void)state;
    struct iceberg_value v = {0}, back;
    const uint8_t uuid[16] = {0xf7, 0x9c, 0x3e, 0x09, 0x67, 0x7c, 0x4b, 0xbd,
                              0xa4, 0x79, 0x3f, 0x34, 0x9c, 0xb7, 0x85, 0xe7};
    v.v.bytes.p = uuid;
    v.v.bytes.len = 16;
    back = roundtrip(ty(ICEBERG_UUID), v, uuid, 16);
    assert_memory_equal(back.v.bytes.p, uuid, 16);

    const char *s = "h\xc3\xa9llo \xe2\x82\xac"; /* héllo € */
    v.v.bytes.p = (const uint8_t *)s;
    v.v.bytes.len = strlen(s);
    back = roundtrip(ty(ICEBERG_STRING), v, (const uint8_t *)s, strlen(s));
    assert_int_equal(back.v.bytes.len, strlen(s));

    v.v.bytes.p = (const uint8_t *)"";
    v.v.bytes.len = 0;
    back = roundtrip(ty(ICEBERG_STRING), v, (const uint8_t *)"", 0);
    assert_int_equal(back.v.bytes.len, 0);

    const uint8_t bin[3] = {0, 0xff, 0};
    v.v.bytes.p = bin;
    v.v.bytes.len = 3;
    roundtrip(ty(ICEBERG_BINARY), v, bin, 3);
    struct iceberg_type fx = {ICEBERG_FIXED, 0, 0, 3};
    roundtrip(fx, v, bin, 3);
}

static void test_errors(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    struct iceberg_value v = {0}, back;
    struct iceberg_type t = ty(ICEBERG_LONG);

    v.is_null = true;
    assert_int_equal(iceberg_bound_encode(&t, &v, out, sizeof out, &n), LOCH_EINVAL);
    v.is_null = false;
    assert_int_equal(iceberg_bound_encode(&t, &v, out, 4, &n), LOCH_EINVAL); /* too small */

    struct iceberg_type tu = ty(ICEBERG_UUID);
    v.v.bytes.p = out;
    v.v.bytes.len = 15;
    assert_int_equal(iceberg_bound_encode(&tu, &v, out, sizeof out, &n), LOCH_EINVAL);
    assert_int_equal(iceberg_bound_decode(&tu, out, 15, &back), LOCH_ECORRUPT);

    struct iceberg_type fx = {ICEBERG_FIXED, 0, 0, 4};
    assert_int_equal(iceberg_bound_decode(&fx, out, 3, &back), LOCH_ECORRUPT);

    const enum iceberg_type_id wrong[][2] = {
        {ICEBERG_BOOLEAN, 2}, {ICEBERG_INT, 8}, {ICEBERG_DATE, 3}, {ICEBERG_LONG, 5},
        {ICEBERG_TIME, 4},    {ICEBERG_TIMESTAMP, 7}, {ICEBERG_TIMESTAMPTZ, 9},
        {ICEBERG_FLOAT, 8},   {ICEBERG_DOUBLE, 5},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        struct iceberg_type w = ty(wrong[i][0]);
        assert_int_equal(iceberg_bound_decode(&w, out, (size_t)wrong[i][1], &back), LOCH_ECORRUPT);
    }
}

static void check_upper(const char *in, size_t n_cp, const char *want)
{
    uint8_t out[64];
    size_t len = 0;
    assert_true(iceberg_bound_truncate_upper((const uint8_t *)in, strlen(in), n_cp, out, &len));
    assert_int_equal(len, strlen(want));
    assert_memory_equal(out, want, len);
}

static void test_truncate(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n;

    /* Lower bound: the first n code points, never splitting a multibyte character. */
    const char *s = "\xc3\xa9t\xc3\xa9 \xe2\x82\xac\xf0\x9f\x98\x80z"; /* été €😀z */
    n = iceberg_bound_truncate_lower((const uint8_t *)s, strlen(s), 3, out);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "\xc3\xa9t\xc3\xa9", 5);
    n = iceberg_bound_truncate_lower((const uint8_t *)s, strlen(s), 6, out);
    assert_int_equal(n, 13);
    n = iceberg_bound_truncate_lower((const uint8_t *)s, strlen(s), 100, out);
    assert_int_equal(n, strlen(s));
    n = iceberg_bound_truncate_lower((const uint8_t *)"abc", 3, 0, out);
    assert_int_equal(n, 0);

    /* Upper bound: unchanged when nothing is cut, else the last code point + 1. */
    check_upper("abc", 3, "abc");
    check_upper("abcd", 3, "abd");
    check_upper("ab\x7f" "d", 3, "ab\xc2\x80");            /* U+007F -> U+0080 grows */
    check_upper("a\xc3\xa9xyz", 2, "a\xc3\xaa");           /* é -> ê */
    check_upper("\xe2\x82\xac\xe2\x82\xac!", 2, "\xe2\x82\xac\xe2\x82\xad");
    check_upper("a\xed\x9f\xbfz", 2, "a\xee\x80\x80");     /* U+D7FF skips surrogates to U+E000 */
    check_upper("a\xef\xbf\xbfz", 2, "a\xf0\x90\x80\x80"); /* U+FFFF -> U+10000 */
    /* U+10FFFF cannot grow: drop it and increment the one before. */
    check_upper("a\xf4\x8f\xbf\xbfz", 2, "b");

    /* No upper bound exists when every kept code point is U+10FFFF. */
    const char *max = "\xf4\x8f\xbf\xbf\xf4\x8f\xbf\xbf!";
    assert_false(iceberg_bound_truncate_upper((const uint8_t *)max, strlen(max), 2, out, &n));
    assert_false(iceberg_bound_truncate_upper((const uint8_t *)"ab", 2, 0, out, &n));

    /* Java's default truncate(16) on a long ASCII value. */
    check_upper("abcdefghijklmnopqrstuvwxyz", 16, "abcdefghijklmnoq");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_width), cmocka_unit_test(test_promoted_widths),
        cmocka_unit_test(test_decimal),     cmocka_unit_test(test_bytes_types),
        cmocka_unit_test(test_errors),      cmocka_unit_test(test_truncate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
