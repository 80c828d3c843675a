/* test_cdc_retry.c: the sources' reconnect back-off (src/cdc/retry.c): waits start at
 * the base and double to the cap, a healthy attempt (long enough, or reported) starts
 * over, jitter only shortens, and a stop ends the wait early without sleeping it out. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <string.h>

#include "base/util.h"
#include "cdc/retry.h"

static void test_doubles_to_cap(void **state)
{
    (void)state;
    struct cdc_retry r;
    cdc_retry_init(&r, CDC_RETRY_BASE_MS, CDC_RETRY_CAP_MS, CDC_RETRY_HEALTHY_MS, 0);
    const int64_t want[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++)
        assert_int_equal(cdc_retry_next(&r, 10), want[i]);
}

static void test_healthy_starts_over(void **state)
{
    (void)state;
    struct cdc_retry r;
    cdc_retry_init(&r, 500, 30000, 30000, 0);
    assert_int_equal(cdc_retry_next(&r, 10), 500);
    assert_int_equal(cdc_retry_next(&r, 10), 1000);
    assert_int_equal(cdc_retry_next(&r, 30000), 2000);   /* not longer than healthy_ms */
    assert_int_equal(cdc_retry_next(&r, 30001), 500);    /* an attempt that lasted: over again */
    assert_int_equal(cdc_retry_next(&r, 10), 1000);
    cdc_retry_healthy(&r);                               /* progress the source reported */
    assert_int_equal(cdc_retry_next(&r, 10), 500);
    /* healthy_ms 0: only a reported one counts */
    cdc_retry_init(&r, 500, 30000, 0, 0);
    assert_int_equal(cdc_retry_next(&r, 10), 500);
    assert_int_equal(cdc_retry_next(&r, 1000000), 1000);
}

static void test_jitter_only_shortens(void **state)
{
    (void)state;
    struct cdc_retry r;
    cdc_retry_init(&r, 1000, 8000, 0, 20);
    int64_t nominal = 1000;
    bool varied = false;
    for (int i = 0; i < 200; i++) {
        int64_t w = cdc_retry_next(&r, 10);
        assert_true(w <= nominal && w >= nominal - nominal / 5);
        varied |= w != nominal;
        nominal = nominal * 2 > 8000 ? 8000 : nominal * 2;
    }
    assert_true(varied);
    cdc_retry_init(&r, 1000, 10, 0, 500); /* cap below base, jitter over 100: clamped */
    assert_int_equal(r.cap_ms, 1000);
    assert_int_equal(r.jitter_pct, 100);
}

static void test_stop_ends_wait(void **state)
{
    (void)state;
    struct cdc_retry r;
    struct loch_err err;
    loch_errf(&err, LOCH_ESOURCE, "source t: connection lost");
    atomic_bool stop;
    atomic_init(&stop, true);
    cdc_retry_init(&r, 30000, 30000, 0, 0);
    cdc_retry_start(&r);
    double t0 = util_mono_s();
    assert_false(cdc_retry_wait(&r, NULL, &err, &stop));
    assert_true(util_mono_s() - t0 < 1.0);
    atomic_store(&stop, false);
    cdc_retry_init(&r, 150, 150, 0, 0);
    cdc_retry_start(&r);
    t0 = util_mono_s();
    assert_true(cdc_retry_wait(&r, "mysql source t", &err, &stop));
    assert_true(util_mono_s() - t0 >= 0.14);
    assert_string_equal(err.msg, "source t: connection lost"); /* left as it is */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_to_cap),
        cmocka_unit_test(test_healthy_starts_over),
        cmocka_unit_test(test_jitter_only_shortens),
        cmocka_unit_test(test_stop_ends_wait),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
