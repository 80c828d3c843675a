/* test_engine_mask.c: row masks (how position deletes are applied in DuckDB): the rows
 * a mask marks are dropped and no other, two connections' masks stay apart, and a mask
 * used after it was cleared fails instead of reading some other mask. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "engine/engine.h"

static int64_t scalar(struct engine_conn *c, const char *sql)
{
    struct engine_rows *r;
    struct loch_err err = {0};
    int rc = engine_query(c, sql, &r, &err);
    if (rc)
        fprintf(stderr, "%s: %s\n", sql, err.msg);
    assert_int_equal(rc, 0);
    int64_t v = engine_rows_int(r, 0, 0);
    engine_rows_free(r);
    return v;
}

static void test_mask_drops_exactly_the_marked_rows(void **state)
{
    (void)state;
    struct engine *e;
    struct engine_conn *c;
    struct loch_err err = {0};
    assert_int_equal(engine_open(NULL, &e, &err), 0);
    assert_int_equal(engine_connect(e, &c, &err), 0);
    int64_t m;
    /* every 7th row of 1 M, plus positions out of range that must be ignored */
    assert_int_equal(engine_mask_build(c, "file-a",
                                       "SELECT CAST(i AS BIGINT) FROM range(0, 1000000, 7) t(i) "
                                       "UNION ALL SELECT -5 UNION ALL SELECT 5000000 UNION ALL SELECT NULL",
                                       1000000, &m, &err),
                     0);
    char q[256];
    snprintf(q, sizeof q, "SELECT count(*) FROM range(1000000) t(i) WHERE loch_keep(%lld, i)", (long long)m);
    assert_int_equal(scalar(c, q), 1000000 - 142858);
    snprintf(q, sizeof q, "SELECT count(*) FROM range(1000000) t(i) WHERE loch_keep(%lld, i) AND i %% 7 = 0",
             (long long)m);
    assert_int_equal(scalar(c, q), 0);
    /* rows past the file's row count are never marked */
    snprintf(q, sizeof q, "SELECT count(*) FROM range(1000000, 1000100) t(i) WHERE loch_keep(%lld, i)", (long long)m);
    assert_int_equal(scalar(c, q), 100);

    /* the same key on the same connection reuses the mask: the query is not run again */
    int64_t again;
    assert_int_equal(engine_mask_build(c, "file-a", "SELECT no_such_column", 1000000, &again, &err), 0);
    assert_int_equal(again, m);
    /* trimming under budget keeps it; over budget drops it */
    engine_masks_trim(c, 1 << 20);
    snprintf(q, sizeof q, "SELECT count(*) FROM range(14) t(i) WHERE loch_keep(%lld, i)", (long long)m);
    assert_int_equal(scalar(c, q), 12);

    /* a second connection's mask is its own */
    struct engine_conn *c2;
    assert_int_equal(engine_connect(e, &c2, &err), 0);
    int64_t m2;
    assert_int_equal(engine_mask_build(c2, "file-a", "SELECT CAST(3 AS BIGINT)", 10, &m2, &err), 0);
    assert_true(m2 != m);
    snprintf(q, sizeof q, "SELECT count(*) FROM range(10) t(i) WHERE loch_keep(%lld, i)", (long long)m2);
    assert_int_equal(scalar(c2, q), 9);
    engine_masks_clear(c2);
    /* c's mask survives c2's clear */
    snprintf(q, sizeof q, "SELECT count(*) FROM range(14) t(i) WHERE loch_keep(%lld, i)", (long long)m);
    assert_int_equal(scalar(c, q), 12);

    /* a dropped mask is an error, even once its slot is reused */
    engine_masks_trim(c, 1000);
    int64_t m3;
    assert_int_equal(engine_mask_build(c, "file-b", "SELECT CAST(1 AS BIGINT)", 10, &m3, &err), 0);
    snprintf(q, sizeof q, "SELECT count(*) FROM range(10) t(i) WHERE loch_keep(%lld, i)", (long long)m);
    struct engine_rows *r = NULL;
    assert_int_not_equal(engine_query(c, q, &r, &err), 0);
    assert_non_null(strstr(err.msg, "expired"));
    engine_rows_free(r);

    /* a query of the wrong shape is refused */
    assert_int_not_equal(engine_mask_build(c, "file-c", "SELECT 'x'", 10, &m3, &err), 0);

    engine_disconnect(c2);
    engine_disconnect(c);
    engine_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_drops_exactly_the_marked_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
