/* metrics.h: process-wide counters for `loch serve` (atomics: any thread may bump them)
 * and their Prometheus text rendering for GET /metrics. Not for per-query history
 * (history.h) or logs. */
#ifndef LOCH_SERVER_METRICS_H
#define LOCH_SERVER_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"

enum metrics_proto { METRICS_PGWIRE, METRICS_HTTP, METRICS_N_PROTO };

/* A client connection opened / closed (pgwire: a session; HTTP: a TCP connection). */
void metrics_connection_open(enum metrics_proto p);
void metrics_connection_close(enum metrics_proto p);
/* A failed login (wrong password or token). */
void metrics_auth_failure(enum metrics_proto p);
/* One statement finished: ok or not, rows returned or changed, wall time. */
void metrics_query(enum metrics_proto p, bool ok, uint64_t rows, double seconds);

/* A statement starts (start true) / stops running: executing, or streaming its rows to the
 * client. Calls pair up on every path; the loch_queries_running gauge is their balance,
 * which tests wait on ("the query is running now") instead of sleeping. */
void metrics_query_running(enum metrics_proto p, bool start);

/* Sets the replication lag of lake table `table` ("ns.name") in seconds; the CDC code
 * calls it after each applied transaction. Up to 4096 tables are tracked; more are
 * dropped silently (the metric is advisory). */
void metrics_set_replication_lag(const char *table, double seconds);

/* Appends every metric in the Prometheus text exposition format (version 0.0.4). */
void metrics_render(struct buf *out);

/* Zeroes every counter and forgets lags (tests). */
void metrics_reset(void);

#endif
