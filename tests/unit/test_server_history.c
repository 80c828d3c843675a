/* test_server_history.c: the query history (per-user listing, redaction, the bound) and
 * the metrics counters with their Prometheus rendering. Not for the HTTP routes that
 * serve them (tests/integration/test_access_http.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/history.h"
#include "server/metrics.h"

static void test_history(void **state)
{
    (void)state;
    char dir[] = "/tmp/loch-history-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/catalog.db", dir);
    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(path, true, &c, &err), 0);

    struct history_entry e = {.user = "alice", .protocol = "http", .sql = "CREATE USER x WITH PASSWORD 'topsecret'",
                              .started_ms = 1000, .duration_ms = 5, .rows = 0, .bytes_scanned = -1,
                              .status = "ok"};
    assert_int_equal(history_record(c, &e, &err), 0);
    e = (struct history_entry){.user = "bob", .protocol = "pgwire", .sql = "SELECT 1", .started_ms = 2000,
                               .duration_ms = 1, .rows = 1, .bytes_scanned = 42, .status = "error",
                               .sqlstate = "42501", .error = "permission denied"};
    assert_int_equal(history_record(c, &e, &err), 0);

    struct arena *a = arena_new();
    struct history_entry *out;
    size_t n;
    assert_int_equal(history_list(c, "alice", 10, a, &out, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].sql, "CREATE USER x WITH PASSWORD '********'");
    assert_null(out[0].sqlstate);
    assert_int_equal(history_list(c, "bob", 10, a, &out, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].sqlstate, "42501");
    assert_int_equal(out[0].bytes_scanned, 42);
    assert_int_equal(history_list(c, NULL, 10, a, &out, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].user, "bob"); /* newest first */

    /* bounded: the newest HISTORY_MAX (trimmed every 100 inserts) */
    e = (struct history_entry){.user = "carol", .protocol = "http", .sql = "SELECT 2", .status = "ok"};
    for (int i = 0; i < HISTORY_MAX + 200; i++) {
        e.started_ms = 3000 + i;
        assert_int_equal(history_record(c, &e, &err), 0);
    }
    struct catalog_stmt *st;
    assert_int_equal(catalog_prepare(c, "SELECT count(*) FROM loch_query_history", "test", &st, &err), 0);
    assert_int_equal(catalog_step(st, &err), 1);
    int64_t total = catalog_column_int64(st, 0);
    catalog_finalize(st);
    assert_true(total >= HISTORY_MAX && total < HISTORY_MAX + 100);
    assert_int_equal(history_list(c, "alice", 10, a, &out, &n, &err), 0);
    assert_int_equal(n, 0); /* the oldest went first */
    assert_int_equal(history_list(c, "carol", 3, a, &out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(out[0].started_ms, 3000 + HISTORY_MAX + 199);

    arena_free(a);
    catalog_close(c);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(path);
}

static void test_metrics(void **state)
{
    (void)state;
    metrics_reset();
    metrics_connection_open(METRICS_HTTP);
    metrics_connection_open(METRICS_HTTP);
    metrics_connection_close(METRICS_HTTP);
    metrics_query(METRICS_HTTP, true, 10, 0.5);
    metrics_query(METRICS_HTTP, false, 0, 0.25);
    metrics_query(METRICS_PGWIRE, true, 3, 0.001);
    metrics_auth_failure(METRICS_PGWIRE);
    metrics_set_replication_lag("core.public.loans", 1.5);
    metrics_set_replication_lag("core.public.loans", 2.25);
    metrics_set_replication_lag("odd\"name\\x", 0);
    struct buf b = {0};
    metrics_render(&b);
    const char *want[] = {
        "# TYPE loch_queries_total counter\n",
        "loch_queries_total{protocol=\"http\"} 2\n",
        "loch_queries_total{protocol=\"pgwire\"} 1\n",
        "loch_query_errors_total{protocol=\"http\"} 1\n",
        "loch_query_rows_total{protocol=\"http\"} 10\n",
        "loch_query_seconds_total{protocol=\"http\"} 0.750000\n",
        "loch_connections_open{protocol=\"http\"} 1\n",
        "loch_connections_total{protocol=\"http\"} 2\n",
        "loch_auth_failures_total{protocol=\"pgwire\"} 1\n",
        "# TYPE loch_replication_lag_seconds gauge\n",
        "loch_replication_lag_seconds{table=\"core.public.loans\"} 2.250\n",
        "loch_replication_lag_seconds{table=\"odd\\\"name\\\\x\"} 0.000\n",
        NULL,
    };
    for (int i = 0; want[i]; i++)
        if (!strstr(b.data, want[i]))
            fail_msg("missing %s in:\n%s", want[i], b.data);
    buf_free(&b);
    metrics_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
