/* test_keyidx.c: the applier's in-memory key index: lookups after growth, several rows
 * under one key, removal (and reuse of the room), long keys, clear. Not for how the
 * applier renders keys (tests/integration/test_cdc_*.py check lake == source). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cdc/keyidx.h"

static void count_fn(void *ctx, int32_t fid, int64_t pos)
{
    int64_t *sum = ctx;
    sum[0]++;
    sum[1] += fid;
    sum[2] += pos;
}

static void test_many_keys(void **state)
{
    (void)state;
    struct keyidx *x = keyidx_new();
    char k[64];
    for (int i = 0; i < 300000; i++) {
        int n = snprintf(k, sizeof k, i % 7 ? "%d" : "a rather long key number %d", i);
        keyidx_add(x, k, (size_t)n, i % 5, i);
    }
    assert_int_equal(keyidx_count(x), 300000);
    for (int i = 0; i < 300000; i += 997) {
        int n = snprintf(k, sizeof k, i % 7 ? "%d" : "a rather long key number %d", i);
        int32_t fid;
        int64_t pos;
        assert_true(keyidx_get(x, k, (size_t)n, &fid, &pos));
        assert_int_equal(fid, i % 5);
        assert_int_equal(pos, i);
    }
    int32_t fid;
    int64_t pos;
    assert_false(keyidx_get(x, "300000", 6, &fid, &pos));
    assert_false(keyidx_get(x, "", 0, &fid, &pos));
    /* remove the even keys, then add them back with new positions: the size holds */
    for (int i = 0; i < 300000; i += 2) {
        int n = snprintf(k, sizeof k, i % 7 ? "%d" : "a rather long key number %d", i);
        int64_t sum[3] = {0};
        assert_int_equal(keyidx_take(x, k, (size_t)n, count_fn, sum), 1);
        assert_int_equal(sum[2], i);
    }
    assert_int_equal(keyidx_count(x), 150000);
    assert_false(keyidx_get(x, "4", 1, &fid, &pos));
    assert_true(keyidx_get(x, "5", 1, &fid, &pos));
    for (int i = 0; i < 300000; i += 2) {
        int n = snprintf(k, sizeof k, i % 7 ? "%d" : "a rather long key number %d", i);
        keyidx_add(x, k, (size_t)n, 9, 1000000 + i);
    }
    assert_int_equal(keyidx_count(x), 300000);
    assert_true(keyidx_get(x, "4", 1, &fid, &pos));
    assert_int_equal(fid, 9);
    assert_int_equal(pos, 1000004);
    int64_t all[3] = {0};
    keyidx_each(x, count_fn, all);
    assert_int_equal(all[0], 300000);
    keyidx_clear(x);
    assert_int_equal(keyidx_count(x), 0);
    assert_false(keyidx_get(x, "5", 1, &fid, &pos));
    keyidx_free(x);
}

static void test_several_rows_per_key(void **state)
{
    (void)state;
    struct keyidx *x = keyidx_new();
    keyidx_add(x, "same", 4, 1, 10);
    keyidx_add(x, "same", 4, 2, 20);
    keyidx_add(x, "other", 5, 3, 30);
    keyidx_add(x, "", 0, 4, 40); /* tables without key columns index every row under "" */
    keyidx_add(x, "", 0, 4, 41);
    int64_t sum[3] = {0};
    assert_int_equal(keyidx_find(x, "same", 4, count_fn, sum), 2);
    assert_int_equal(sum[2], 30);
    assert_int_equal(keyidx_count(x), 5);
    memset(sum, 0, sizeof sum);
    assert_int_equal(keyidx_take(x, "same", 4, count_fn, sum), 2);
    assert_int_equal(sum[1], 3);
    assert_int_equal(keyidx_take(x, "same", 4, NULL, NULL), 0);
    assert_int_equal(keyidx_take(x, "", 0, NULL, NULL), 2);
    int32_t fid;
    int64_t pos;
    assert_true(keyidx_get(x, "other", 5, &fid, &pos));
    assert_int_equal(pos, 30);
    assert_int_equal(keyidx_count(x), 1);
    keyidx_free(x);
    keyidx_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_several_rows_per_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
