/* test_iceberg_prune.c: unit tests for file pruning from column metrics in
 * src/iceberg/prune.c: each comparison against bounds, NULL and NaN counts, promoted
 * widths, negative decimals, truncated string bounds, AND / OR, and delete files going
 * with their data files. Not for SQL (tests/integration/test_pruning.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "iceberg/prune.h"

static struct iceberg_type ty(enum iceberg_type_id id)
{
    struct iceberg_type t = {id, 0, 0, 0};
    return t;
}

/* A file with one column (field 1) whose stats are given as encoded bounds. */
struct onefile {
    struct iceberg_data_file f;
    struct iceberg_column_stats st;
    uint8_t lo[64], hi[64];
};

static void file_of(struct onefile *o, struct iceberg_type t, const struct iceberg_value *lo,
                    const struct iceberg_value *hi, int64_t values, int64_t nulls, int64_t nans)
{
    memset(o, 0, sizeof *o);
    o->f.path = "file:///x.parquet";
    o->f.record_count = values;
    o->f.file_size = 100;
    o->f.n_stats = 1;
    o->f.stats = &o->st;
    o->st.field_id = 1;
    o->st.value_count = values;
    o->st.null_count = nulls;
    o->st.nan_count = nans;
    if (lo) {
        assert_int_equal(iceberg_bound_encode(&t, lo, o->lo, sizeof o->lo, &o->st.lower_len), 0);
        o->st.lower = o->lo;
    }
    if (hi) {
        assert_int_equal(iceberg_bound_encode(&t, hi, o->hi, sizeof o->hi, &o->st.upper_len), 0);
        o->st.upper = o->hi;
    }
}

static bool may(const struct onefile *o, struct iceberg_type t, enum iceberg_expr_op op, struct iceberg_value v)
{
    struct iceberg_expr e = {.op = op, .field_id = 1, .type = t, .n_values = 1, .values = &v};
    return iceberg_expr_may_match(&e, &o->f);
}

static struct iceberg_value i64(int64_t x) { struct iceberg_value v = {0}; v.v.i64 = x; return v; }
static struct iceberg_value i32(int32_t x) { struct iceberg_value v = {0}; v.v.i32 = x; return v; }
static struct iceberg_value f64(double x) { struct iceberg_value v = {0}; v.v.f64 = x; return v; }
static struct iceberg_value str(const char *s)
{
    struct iceberg_value v = {0};
    v.v.bytes.p = (const uint8_t *)s;
    v.v.bytes.len = strlen(s);
    return v;
}
static struct iceberg_value dec(int64_t x)
{
    struct iceberg_value v = {0};
    v.v.dec.hi = x < 0 ? -1 : 0;
    v.v.dec.lo = (uint64_t)x;
    return v;
}

static void test_comparisons(void **state)
{
    (void)state;
    struct iceberg_type t = ty(ICEBERG_LONG);
    struct iceberg_value lo = i64(10), hi = i64(20);
    struct onefile o;
    file_of(&o, t, &lo, &hi, 5, 0, -1);
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, i64(9)));
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, i64(10)));
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, i64(20)));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, i64(21)));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, i64(10)));
    assert_true(may(&o, t, ICEBERG_EXPR_LT, i64(11)));
    assert_false(may(&o, t, ICEBERG_EXPR_LE, i64(9)));
    assert_true(may(&o, t, ICEBERG_EXPR_LE, i64(10)));
    assert_false(may(&o, t, ICEBERG_EXPR_GT, i64(20)));
    assert_true(may(&o, t, ICEBERG_EXPR_GT, i64(19)));
    assert_false(may(&o, t, ICEBERG_EXPR_GE, i64(21)));
    assert_true(may(&o, t, ICEBERG_EXPR_GE, i64(20)));
    struct iceberg_value in[] = {i64(1), i64(25)}, in2[] = {i64(1), i64(15)};
    struct iceberg_expr e = {.op = ICEBERG_EXPR_IN, .field_id = 1, .type = t, .n_values = 2, .values = in};
    assert_false(iceberg_expr_may_match(&e, &o.f));
    e.values = in2;
    assert_true(iceberg_expr_may_match(&e, &o.f));
    /* NULL counts */
    struct iceberg_expr isnull = {.op = ICEBERG_EXPR_IS_NULL, .field_id = 1, .type = t};
    struct iceberg_expr notnull = {.op = ICEBERG_EXPR_NOT_NULL, .field_id = 1, .type = t};
    assert_false(iceberg_expr_may_match(&isnull, &o.f));
    assert_true(iceberg_expr_may_match(&notnull, &o.f));
    o.st.null_count = -1; /* unknown */
    assert_true(iceberg_expr_may_match(&isnull, &o.f));
    file_of(&o, t, NULL, NULL, 5, 5, -1); /* only NULLs */
    assert_true(iceberg_expr_may_match(&isnull, &o.f));
    assert_false(iceberg_expr_may_match(&notnull, &o.f));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, i64(1)));
    /* a column the file does not have (added later), or a file without metrics: kept */
    o.st.field_id = 2;
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, i64(1)));
    assert_true(iceberg_expr_may_match(&isnull, &o.f));
    o.f.n_stats = 0;
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, i64(1)));
}

static void test_promoted_and_temporal(void **state)
{
    (void)state;
    /* written as int (4-byte bounds), read as long */
    struct iceberg_type it = ty(ICEBERG_INT), lt = ty(ICEBERG_LONG);
    struct iceberg_value lo = i32(-5), hi = i32(5);
    struct onefile o;
    file_of(&o, it, &lo, &hi, 3, 0, -1);
    assert_true(may(&o, lt, ICEBERG_EXPR_EQ, i64(-5)));
    assert_false(may(&o, lt, ICEBERG_EXPR_LT, i64(-5)));
    assert_false(may(&o, lt, ICEBERG_EXPR_GT, i64(5)));
    assert_false(may(&o, lt, ICEBERG_EXPR_EQ, i64(3000000000LL)));
    /* float bounds read as double */
    struct iceberg_type ft = ty(ICEBERG_FLOAT), dt = ty(ICEBERG_DOUBLE);
    struct iceberg_value flo = {0}, fhi = {0};
    flo.v.f32 = -1.5f;
    fhi.v.f32 = 2.5f;
    file_of(&o, ft, &flo, &fhi, 3, 0, 0);
    assert_false(may(&o, dt, ICEBERG_EXPR_GT, f64(2.5)));
    assert_true(may(&o, dt, ICEBERG_EXPR_GE, f64(2.5)));
    assert_false(may(&o, dt, ICEBERG_EXPR_LT, f64(-1.5)));
    /* timestamptz: microseconds UTC, date: days */
    struct iceberg_type tz = ty(ICEBERG_TIMESTAMPTZ), date = ty(ICEBERG_DATE);
    struct iceberg_value tlo = i64(1704067200000000LL), thi = i64(1704153600000000LL);
    file_of(&o, tz, &tlo, &thi, 3, 0, -1);
    assert_false(may(&o, tz, ICEBERG_EXPR_LT, i64(1704067200000000LL)));
    assert_true(may(&o, tz, ICEBERG_EXPR_LE, i64(1704067200000000LL)));
    struct iceberg_value dlo = i32(19723), dhi = i32(19724);
    file_of(&o, date, &dlo, &dhi, 3, 0, -1);
    assert_false(may(&o, date, ICEBERG_EXPR_EQ, i64(19725)));
    assert_true(may(&o, date, ICEBERG_EXPR_EQ, i64(19724)));
}

static void test_nan_and_zero(void **state)
{
    (void)state;
    struct iceberg_type t = ty(ICEBERG_DOUBLE);
    struct iceberg_value lo = f64(-1), hi = f64(1);
    struct onefile o;
    /* NaN counts unknown: NaN sorts above every number in DuckDB, so > and >= keep */
    file_of(&o, t, &lo, &hi, 3, 0, -1);
    assert_true(may(&o, t, ICEBERG_EXPR_GT, f64(5)));
    assert_true(may(&o, t, ICEBERG_EXPR_GE, f64(5)));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, f64(5)));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, f64(-1)));
    o.st.nan_count = 0; /* known to hold no NaN */
    assert_false(may(&o, t, ICEBERG_EXPR_GT, f64(5)));
    /* a NaN bound is no bound */
    struct iceberg_value nan = f64(NAN);
    file_of(&o, t, &nan, &nan, 3, 0, 0);
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, f64(5)));
    assert_true(may(&o, t, ICEBERG_EXPR_LT, f64(-1e300)));
    /* -0.0 equals 0.0 */
    struct iceberg_value nz = f64(-0.0), z = f64(0.0);
    file_of(&o, t, &nz, &nz, 3, 0, 0);
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, f64(0.0)));
    assert_true(may(&o, t, ICEBERG_EXPR_GE, f64(0.0)));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, f64(0.0)));
    file_of(&o, t, &z, &z, 3, 0, 0);
    assert_true(may(&o, t, ICEBERG_EXPR_LE, f64(-0.0)));
}

static void test_decimal(void **state)
{
    (void)state;
    struct iceberg_type t = {ICEBERG_DECIMAL, 10, 2, 0};
    struct iceberg_value lo = dec(-40000), hi = dec(-301); /* -400.00 .. -3.01 */
    struct onefile o;
    file_of(&o, t, &lo, &hi, 3, 0, -1);
    assert_int_equal(o.st.lower_len, 3); /* minimum bytes, two's complement */
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, dec(-350)));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, dec(-300)));
    assert_false(may(&o, t, ICEBERG_EXPR_GT, dec(-301)));
    assert_true(may(&o, t, ICEBERG_EXPR_GT, dec(-302)));
    assert_false(may(&o, t, ICEBERG_EXPR_GE, dec(0)));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, dec(-40000)));
    assert_true(may(&o, t, ICEBERG_EXPR_LE, dec(-40000)));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, dec(-9000000)));
}

static void test_strings(void **state)
{
    (void)state;
    struct iceberg_type t = ty(ICEBERG_STRING);
    /* truncate(16) bounds of values "a_long_shared_prefix_value_0" .. "..._zzz" */
    struct iceberg_value lo = str("a_long_shared_pr"), hi = str("a_long_shared_ps");
    struct onefile o;
    file_of(&o, t, &lo, &hi, 3, 0, -1);
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, str("a_long_shared_prefix_value_zzz")));
    assert_true(may(&o, t, ICEBERG_EXPR_GE, str("a_long_shared_prefix_value_zzz")));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, str("b")));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, str("a_long_shared_pr")));
    assert_true(may(&o, t, ICEBERG_EXPR_LT, str("a_long_shared_pr0")));
    assert_false(may(&o, t, ICEBERG_EXPR_GT, str("a_long_shared_pt")));
    assert_false(may(&o, t, ICEBERG_EXPR_EQ, str("a_long_shared_pt")));
    /* the bound itself may be a prefix of larger values (see below): kept */
    assert_true(may(&o, t, ICEBERG_EXPR_GT, str("a_long_shared_ps")));
    /* an upper bound truncated without the increment (some writers): values starting
     * with it may be larger than it */
    struct iceberg_value hi2 = str("a_long_shared_pr");
    file_of(&o, t, &lo, &hi2, 3, 0, -1);
    assert_true(may(&o, t, ICEBERG_EXPR_EQ, str("a_long_shared_prefix")));
    assert_true(may(&o, t, ICEBERG_EXPR_GT, str("a_long_shared_prefix")));
    assert_false(may(&o, t, ICEBERG_EXPR_GT, str("a_long_shared_q")));
    /* bytes compare unsigned: "é" (0xC3 0xA9) sorts above "z" */
    struct iceberg_value ulo = str("z"), uhi = str("\xc3\xa9");
    file_of(&o, t, &ulo, &uhi, 3, 0, -1);
    assert_true(may(&o, t, ICEBERG_EXPR_GT, str("zz")));
    assert_false(may(&o, t, ICEBERG_EXPR_LT, str("y")));
}

static void test_and_or_and_deletes(void **state)
{
    (void)state;
    struct iceberg_type t = ty(ICEBERG_LONG);
    struct onefile o[3];
    struct iceberg_value b[6] = {i64(0), i64(9), i64(10), i64(19), i64(20), i64(29)};
    const char *paths[3] = {"file:///a", "file:///b", "file:///c"};
    struct iceberg_data_file data[3];
    for (int i = 0; i < 3; i++) {
        file_of(&o[i], t, &b[2 * i], &b[2 * i + 1], 10, 0, -1);
        o[i].f.path = paths[i];
        data[i] = o[i].f;
    }
    struct iceberg_value v5 = i64(5), v25 = i64(25);
    struct iceberg_expr leaves[2] = {{.op = ICEBERG_EXPR_EQ, .field_id = 1, .type = t, .n_values = 1, .values = &v5},
                                     {.op = ICEBERG_EXPR_EQ, .field_id = 1, .type = t, .n_values = 1, .values = &v25}};
    struct iceberg_expr or = {.op = ICEBERG_EXPR_OR, .n_children = 2, .children = leaves};
    struct iceberg_expr and = {.op = ICEBERG_EXPR_AND, .n_children = 2, .children = leaves};
    assert_true(iceberg_expr_may_match(&or, &data[0]));
    assert_false(iceberg_expr_may_match(&or, &data[1]));
    assert_false(iceberg_expr_may_match(&and, &data[0]));
    struct iceberg_data_file dels[3] = {{.content = ICEBERG_CONTENT_POSITION_DELETES, .path = "file:///d1",
                                         .file_size = 7, .referenced_data_file = "file:///b"},
                                        {.content = ICEBERG_CONTENT_POSITION_DELETES, .path = "file:///d2",
                                         .file_size = 5, .referenced_data_file = "file:///c"},
                                        {.content = ICEBERG_CONTENT_POSITION_DELETES, .path = "file:///d3",
                                         .file_size = 3, .referenced_data_file = NULL}};
    struct iceberg_scan plan = {.n_data = 3, .data = data, .n_deletes = 3, .deletes = dels};
    struct iceberg_prune_stats ps;
    iceberg_scan_prune(&plan, &or, &ps);
    assert_int_equal(ps.n_data_before, 3);
    assert_int_equal(ps.n_data_after, 2);
    assert_int_equal(ps.data_bytes_before, 300);
    assert_int_equal(ps.data_bytes_after, 200);
    assert_string_equal(plan.data[0].path, "file:///a");
    assert_string_equal(plan.data[1].path, "file:///c");
    assert_int_equal(ps.n_deletes_after, 2); /* d2 (for c) and d3 (for any file) */
    assert_int_equal(ps.delete_bytes_after, 8);
    assert_int_equal(plan.total_records, 20);
    /* nothing kept: no delete file either */
    plan.n_data = 3;
    plan.n_deletes = 3;
    struct iceberg_value v99 = i64(99);
    struct iceberg_expr none = {.op = ICEBERG_EXPR_EQ, .field_id = 1, .type = t, .n_values = 1, .values = &v99};
    for (int i = 0; i < 3; i++)
        data[i] = o[i].f;
    iceberg_scan_prune(&plan, &none, &ps);
    assert_int_equal(plan.n_data, 0);
    assert_int_equal(plan.n_deletes, 0);
    /* no filter: nothing goes */
    plan.n_data = 3;
    for (int i = 0; i < 3; i++)
        data[i] = o[i].f;
    iceberg_scan_prune(&plan, NULL, &ps);
    assert_int_equal(plan.n_data, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparisons), cmocka_unit_test(test_promoted_and_temporal),
        cmocka_unit_test(test_nan_and_zero), cmocka_unit_test(test_decimal),
        cmocka_unit_test(test_strings),     cmocka_unit_test(test_and_or_and_deletes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
