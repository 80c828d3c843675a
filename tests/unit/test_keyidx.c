/* test_keyidx.c: the applier's in-memory key index: lookups after growth, several rows
 * under one key, batch calls against single ones, removal (and reuse of the room), long
 * keys, clear. Not for how the applier renders keys (tests/integration/test_cdc_*.py check lake == source). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static char *tmp_path(void)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/loch_test_keyidx_%d.kx", (int)getpid());
    return path;
}

static void free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Saved and loaded back: the same entries (several rows per key, long keys, none of the
 * removed ones) and the same names; another tag finds nothing. */
/* The batch calls do what the single ones do, over runs longer than their prefetch run,
 * with keys missing, keys of several rows, long keys and a key repeated in one batch. */
static void test_batches_match_single_calls(void **state)
{
    (void)state;
    enum { N = 5000, Q = 300 };
    struct keyidx *x = keyidx_new();
    static char keys[N][48];
    struct keyidx_entry add[N];
    for (int i = 0; i < N; i++) {
        int n = snprintf(keys[i], sizeof keys[i], i % 3 ? "%d" : "a rather long key number %d", i % (N / 2));
        add[i] = (struct keyidx_entry){keys[i], (size_t)n, i % 9, i}; /* every key twice */
    }
    keyidx_add_many(x, add, N);
    assert_int_equal(keyidx_count(x), N);
    struct keyidx_entry q[Q];
    char missing[Q][16];
    for (int i = 0; i < Q; i++) {
        if (i % 4 == 3) { /* absent */
            int n = snprintf(missing[i], sizeof missing[i], "no-%d", i);
            q[i] = (struct keyidx_entry){missing[i], (size_t)n, 0, 0};
        } else {
            q[i] = add[(i * 37) % (N / 2)];
        }
    }
    q[Q - 1] = q[0]; /* the same key twice in one batch */
    int64_t want[3] = {0}, got[3] = {0};
    for (int i = 0; i < Q; i++)
        keyidx_find(x, q[i].key, q[i].len, count_fn, want);
    keyidx_find_many(x, q, Q, count_fn, got);
    assert_true(want[0] > Q); /* keys of two rows were found */
    assert_int_equal(got[0], want[0]);
    assert_int_equal(got[1], want[1]);
    assert_int_equal(got[2], want[2]);
    size_t before = keyidx_count(x);
    int64_t first[3] = {0}; /* q[0] is asked twice: its rows go once */
    keyidx_find(x, q[0].key, q[0].len, count_fn, first);
    keyidx_take_many(x, q, Q);
    int64_t left[3] = {0};
    for (int i = 0; i < Q; i++)
        keyidx_find(x, q[i].key, q[i].len, count_fn, left);
    assert_int_equal(left[0], 0);
    assert_int_equal(keyidx_count(x), before - (size_t)(want[0] - first[0]));
    keyidx_free(x);
}

static void test_save_and_load(void **state)
{
    (void)state;
    struct keyidx *x = keyidx_new();
    char k[64];
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof k, i % 3 ? "%d" : "a key longer than sixteen bytes %d", i);
        keyidx_add(x, k, (size_t)n, i % 4, (int64_t)i * 1000003);
    }
    keyidx_add(x, "dup", 3, 1, 1);
    keyidx_add(x, "dup", 3, 2, 2);
    for (int i = 0; i < 20000; i += 5) {
        int n = snprintf(k, sizeof k, i % 3 ? "%d" : "a key longer than sixteen bytes %d", i);
        assert_int_equal(keyidx_take(x, k, (size_t)n, NULL, NULL), 1);
    }
    char *names[] = {"file:///a/b.parquet", "", "s3://bucket/x y.parquet"};
    struct loch_err err;
    assert_int_equal(keyidx_save(x, tmp_path(), "tag 1", names, 3, &err), 0);

    struct keyidx *y = keyidx_new();
    keyidx_add(y, "stale", 5, 0, 0);
    char **got;
    size_t n_got;
    assert_int_equal(keyidx_load(y, tmp_path(), "tag 2", &got, &n_got, &err), LOCH_ENOENT);
    assert_int_equal(keyidx_count(y), 0);
    assert_int_equal(keyidx_load(y, tmp_path(), "tag 1", &got, &n_got, &err), 0);
    assert_int_equal(n_got, 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(got[i], names[i]);
    free_names(got, n_got);
    assert_int_equal(keyidx_count(y), keyidx_count(x));
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(k, sizeof k, i % 3 ? "%d" : "a key longer than sixteen bytes %d", i);
        int32_t fid;
        int64_t pos;
        bool there = keyidx_get(y, k, (size_t)n, &fid, &pos);
        assert_int_equal(there, i % 5 != 0);
        if (there) {
            assert_int_equal(fid, i % 4);
            assert_int_equal(pos, (int64_t)i * 1000003);
        }
    }
    int64_t sum[3] = {0};
    assert_int_equal(keyidx_find(y, "dup", 3, count_fn, sum), 2);
    assert_int_equal(sum[1], 3);
    assert_int_equal(keyidx_load(y, "/nonexistent/loch.kx", "tag 1", &got, &n_got, &err), LOCH_ENOENT);
    unlink(tmp_path());
    keyidx_free(x);
    keyidx_free(y);
}

/* Every truncation and every flipped byte of a saved index is refused (never a partial
 * index, never a read outside the bytes). */
static void test_damaged_files_are_refused(void **state)
{
    (void)state;
    struct keyidx *x = keyidx_new();
    char k[64];
    for (int i = 0; i < 50; i++) {
        int n = snprintf(k, sizeof k, i % 2 ? "%d" : "long key number %d, padded", i);
        keyidx_add(x, k, (size_t)n, i % 3, i);
    }
    char *names[] = {"f0", "f1", "f2"};
    struct loch_err err;
    assert_int_equal(keyidx_save(x, tmp_path(), "t", names, 3, &err), 0);
    FILE *f = fopen(tmp_path(), "rb");
    assert_non_null(f);
    unsigned char data[8192];
    size_t len = fread(data, 1, sizeof data, f);
    fclose(f);
    unlink(tmp_path());
    assert_true(len > 100 && len < sizeof data);
    struct keyidx *y = keyidx_new();
    char **got;
    size_t n_got;
    assert_int_equal(keyidx_parse(y, data, len, "t", &got, &n_got, &err), 0);
    free_names(got, n_got);
    assert_int_equal(keyidx_count(y), 50);
    for (size_t cut = 0; cut < len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1); /* exact size: ASan sees any overread */
        memcpy(copy, data, cut);
        int rc = keyidx_parse(y, copy, cut, "t", &got, &n_got, &err);
        assert_true(rc == LOCH_ECORRUPT || rc == LOCH_ENOENT);
        assert_int_equal(keyidx_count(y), 0);
        free(copy);
    }
    for (size_t at = 0; at < len; at++) {
        data[at] ^= 0x10;
        int rc = keyidx_parse(y, data, len, "t", &got, &n_got, &err);
        assert_true(rc == LOCH_ECORRUPT || rc == LOCH_ENOENT);
        assert_int_equal(keyidx_count(y), 0);
        data[at] ^= 0x10;
    }
    keyidx_free(x);
    keyidx_free(y);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_several_rows_per_key),
        cmocka_unit_test(test_batches_match_single_calls),
        cmocka_unit_test(test_save_and_load),
        cmocka_unit_test(test_damaged_files_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
