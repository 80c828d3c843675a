/* test_base.c: the two things every decoder and every request leans on: the read cursor
 * never reads past its bytes (and stays failed once it failed), and arenas hand out
 * aligned, independent memory that survives growth and is reused after a reset. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "base/buf.h"
#include "base/mem.h"

static void test_cursor_reads_in_bounds_and_fails_past_the_end(void **state)
{
    (void)state;
    const uint8_t bytes[] = {0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 'h', 'i', 0};
    struct cursor c = cursor_make(bytes, sizeof bytes);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    assert_true(cursor_u8(&c, &u8) && u8 == 1);
    assert_true(cursor_be16(&c, &u16) && u16 == 0x0203);
    assert_true(cursor_le32(&c, &u32) && u32 == 0x07060504);
    const uint8_t *p;
    assert_true(cursor_bytes(&c, 2, &p) && p[0] == 8 && p[1] == 9);
    const char *s;
    size_t len;
    assert_true(cursor_cstr(&c, &s, &len) && len == 2 && !strcmp(s, "hi"));
    assert_int_equal(c.left, 0);
    assert_false(c.failed);
    /* past the end: fails, reads nothing, and stays failed */
    uint64_t u64 = 77;
    assert_false(cursor_be64(&c, &u64));
    assert_int_equal(u64, 77);
    assert_true(c.failed);
    struct cursor d = cursor_make(bytes, 3);
    assert_false(cursor_be32(&d, &u32));
    assert_true(d.failed);
    assert_false(cursor_u8(&d, &u8)); /* bytes remain, but the cursor already failed */
    /* lengths larger than what is left, including ones that would wrap */
    struct cursor e = cursor_make(bytes, sizeof bytes);
    assert_false(cursor_bytes(&e, SIZE_MAX, &p));
    struct cursor f = cursor_make(bytes, sizeof bytes);
    assert_false(cursor_bytes(&f, sizeof bytes + 1, &p));
    /* a string without its NUL */
    struct cursor g = cursor_make("abc", 3);
    assert_false(cursor_cstr(&g, &s, &len));
}

static void test_cursor_varlong_round_trip_and_overlong(void **state)
{
    (void)state;
    const int64_t vals[] = {0, 1, -1, 63, -64, 64, 1234567890123LL, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        struct buf b = {0};
        buf_put_varlong(&b, vals[i]);
        struct cursor c = cursor_make(b.data, b.len);
        int64_t v;
        assert_true(cursor_varlong(&c, &v));
        assert_true(v == vals[i]);
        assert_int_equal(c.left, 0);
        /* truncated: fails */
        struct cursor t = cursor_make(b.data, b.len - 1);
        if (b.len > 1)
            assert_false(cursor_varlong(&t, &v));
        buf_free(&b);
    }
    uint8_t overlong[12];
    memset(overlong, 0xff, sizeof overlong);
    struct cursor c = cursor_make(overlong, sizeof overlong);
    int64_t v;
    assert_false(cursor_varlong(&c, &v));
}

/* arena_sql_ident gives the text buf_sql_ident appends: quotes doubled, nothing else. */
static void test_sql_ident_forms_agree(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    const char *in[] = {"", "t", "Mixed Case", "a\"b", "\"\"", "x.y", "ünï"};
    const char *want[] = {"\"\"", "\"t\"", "\"Mixed Case\"", "\"a\"\"b\"", "\"\"\"\"\"\"", "\"x.y\"", "\"ünï\""};
    for (size_t i = 0; i < sizeof in / sizeof *in; i++) {
        struct buf b = {0};
        buf_sql_ident(&b, in[i]);
        assert_string_equal(b.data, want[i]);
        assert_string_equal(arena_sql_ident(a, in[i]), want[i]);
        buf_free(&b);
    }
    arena_free(a);
}

static void test_arena_memory_is_aligned_independent_and_reset(void **state)
{
    (void)state;
    struct arena *a = arena_new();
    char *first = arena_strdup(a, "first");
    /* many allocations of odd sizes, larger than any block, all aligned and intact */
    void *ptrs[2000];
    for (size_t i = 0; i < 2000; i++) {
        size_t n = 1 + (i * 37) % 5000 + (i == 1999 ? (size_t)8 << 20 : 0);
        ptrs[i] = arena_alloc(a, n);
        assert_int_equal((uintptr_t)ptrs[i] % _Alignof(max_align_t), 0);
        memset(ptrs[i], (int)(i & 0xff), n < 64 ? n : 64);
    }
    for (size_t i = 0; i < 2000; i++)
        assert_int_equal(((unsigned char *)ptrs[i])[0], i & 0xff);
    assert_string_equal(first, "first");
    char *p = arena_printf(a, "%s-%d", "x", 42);
    assert_string_equal(p, "x-42");
    assert_null(arena_strdup(a, NULL));
    assert_string_equal(arena_strndup(a, "abcdef", 3), "abc");
    int *grown = arena_alloc(a, 4 * sizeof *grown);
    for (int i = 0; i < 4; i++)
        grown[i] = i;
    grown = arena_grow(a, grown, 4, 1000, sizeof *grown);
    for (int i = 0; i < 4; i++)
        assert_int_equal(grown[i], i);
    arena_reset(a);
    char *again = arena_strdup(a, "after reset");
    assert_string_equal(again, "after reset");
    arena_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cursor_reads_in_bounds_and_fails_past_the_end),
        cmocka_unit_test(test_cursor_varlong_round_trip_and_overlong),
        cmocka_unit_test(test_arena_memory_is_aligned_independent_and_reset),
        cmocka_unit_test(test_sql_ident_forms_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
