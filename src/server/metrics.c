/* metrics.c: counters as C11 atomics, lags in a small mutex-guarded table, rendered in
 * Prometheus' text format (metric names loch_*; one HELP/TYPE pair per family). */
#include "server/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

static const char *proto_name[METRICS_N_PROTO] = {"pgwire", "http"};

static atomic_uint_fast64_t conn_open[METRICS_N_PROTO], conn_total[METRICS_N_PROTO];
static atomic_uint_fast64_t queries[METRICS_N_PROTO], errors[METRICS_N_PROTO], rows[METRICS_N_PROTO];
static atomic_uint_fast64_t auth_fail[METRICS_N_PROTO];
static atomic_uint_fast64_t query_us[METRICS_N_PROTO];
static atomic_uint_fast64_t running[METRICS_N_PROTO];

#define MAX_LAGS 4096
static pthread_mutex_t lag_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char table[256];
    double seconds;
} lags[MAX_LAGS];
static size_t n_lags;

void metrics_connection_open(enum metrics_proto p)
{
    atomic_fetch_add(&conn_open[p], 1);
    atomic_fetch_add(&conn_total[p], 1);
}

void metrics_connection_close(enum metrics_proto p) { atomic_fetch_sub(&conn_open[p], 1); }

void metrics_query_running(enum metrics_proto p, bool start)
{
    if (start)
        atomic_fetch_add(&running[p], 1);
    else
        atomic_fetch_sub(&running[p], 1);
}

void metrics_auth_failure(enum metrics_proto p) { atomic_fetch_add(&auth_fail[p], 1); }

void metrics_query(enum metrics_proto p, bool ok, uint64_t n_rows, double seconds)
{
    atomic_fetch_add(&queries[p], 1);
    if (!ok)
        atomic_fetch_add(&errors[p], 1);
    atomic_fetch_add(&rows[p], n_rows);
    atomic_fetch_add(&query_us[p], (uint_fast64_t)(seconds > 0 ? seconds * 1e6 : 0));
}

void metrics_set_replication_lag(const char *table, double seconds)
{
    if (!table || strlen(table) >= sizeof lags[0].table)
        return;
    pthread_mutex_lock(&lag_mu);
    size_t i = 0;
    while (i < n_lags && strcmp(lags[i].table, table))
        i++;
    if (i == n_lags && n_lags < MAX_LAGS)
        snprintf(lags[n_lags++].table, sizeof lags[0].table, "%s", table);
    if (i < n_lags)
        lags[i].seconds = seconds;
    pthread_mutex_unlock(&lag_mu);
}

void metrics_reset(void)
{
    for (int p = 0; p < METRICS_N_PROTO; p++) {
        atomic_store(&conn_open[p], 0);
        atomic_store(&conn_total[p], 0);
        atomic_store(&queries[p], 0);
        atomic_store(&errors[p], 0);
        atomic_store(&rows[p], 0);
        atomic_store(&auth_fail[p], 0);
        atomic_store(&query_us[p], 0);
        atomic_store(&running[p], 0);
    }
    pthread_mutex_lock(&lag_mu);
    n_lags = 0;
    pthread_mutex_unlock(&lag_mu);
}

static void family(struct buf *b, const char *name, const char *type, const char *help, atomic_uint_fast64_t *v,
                   double scale)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (int p = 0; p < METRICS_N_PROTO; p++) {
        uint64_t x = atomic_load(&v[p]);
        if (scale == 1)
            buf_printf(b, "%s{protocol=\"%s\"} %llu\n", name, proto_name[p], (unsigned long long)x);
        else
            buf_printf(b, "%s{protocol=\"%s\"} %.6f\n", name, proto_name[p], (double)x * scale);
    }
}

/* Label values escape \, " and newline (exposition format). */
static void label_value(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            buf_putc(b, '\\');
        if (*s == '\n') {
            buf_puts(b, "\\n");
            continue;
        }
        buf_putc(b, *s);
    }
}

void metrics_render(struct buf *out)
{
    family(out, "loch_queries_total", "counter", "Statements run.", queries, 1);
    family(out, "loch_query_errors_total", "counter", "Statements that failed.", errors, 1);
    family(out, "loch_query_rows_total", "counter", "Rows returned or changed by statements.", rows, 1);
    family(out, "loch_query_seconds_total", "counter", "Wall time spent in statements.", query_us, 1e-6);
    family(out, "loch_queries_running", "gauge", "Statements running now (executing or streaming rows).", running,
           1);
    family(out, "loch_connections_open", "gauge", "Client connections open now.", conn_open, 1);
    family(out, "loch_connections_total", "counter", "Client connections accepted.", conn_total, 1);
    family(out, "loch_auth_failures_total", "counter", "Failed logins (password or token).", auth_fail, 1);
    buf_puts(out, "# HELP loch_replication_lag_seconds Seconds between a source commit and its appearance in the "
                  "lake, per table.\n# TYPE loch_replication_lag_seconds gauge\n");
    pthread_mutex_lock(&lag_mu);
    for (size_t i = 0; i < n_lags; i++) {
        buf_puts(out, "loch_replication_lag_seconds{table=\"");
        label_value(out, lags[i].table);
        buf_printf(out, "\"} %.3f\n", lags[i].seconds);
    }
    pthread_mutex_unlock(&lag_mu);
}
