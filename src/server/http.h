/* http.h: loch's HTTP API on libmicrohttpd (a thread per connection):
 *   POST /v1/sql      body {"sql": "..."} with "Authorization: Bearer <token>"; results as
 *                     JSON (default), CSV (Accept: text/csv) or an Arrow IPC stream
 *                     (Accept: application/vnd.apache.arrow.stream); the Accept type with
 *                     the highest q wins, none loch makes is 406
 *   GET  /v1/queries  the caller's query history (?limit=N, newest first)
 *   GET  /metrics     Prometheus text (no authentication: counters only, no data)
 *   GET  /healthz     {"status":"ok"}
 * JSON results: {"columns":[{"name","type"}], "rows":[[...]], "tag":"SELECT 2"}; integers
 * and floats are JSON numbers, DECIMAL values are strings holding every digit (exact),
 * booleans are booleans, NULL is null, everything else is DuckDB's text. Errors:
 * {"error":{"sqlstate","message","detail","hint"}} with the status of err.h's table.
 * One read statement (SELECT, WITH, ...) streams: rows go out as DuckDB produces them, so
 * a large result does not sit in memory; an error after rows have gone out ends a JSON
 * body with an "error" member instead of "tag", and cuts a CSV or Arrow body short (the
 * chunked transfer fails; an Arrow stream stops inside a message). Arrow types are
 * DuckDB's conversion (engine.h): decimal128, timestamp[us, tz=UTC], utf8, ... Scripts of
 * several statements, and writes, answer when done with the last statement's result (in
 * Arrow: a stream of no columns when it has no result set).
 * The user's time limit (query.timeout_ms or its query.roles entry, limits.h) bounds each
 * request's statements (57014 when it passes).
 * Not for the PostgreSQL protocol (pgwire.h) nor SQL semantics (query/). */
#ifndef LOCH_SERVER_HTTP_H
#define LOCH_SERVER_HTTP_H

#include <stddef.h>

#include "base/err.h"
#include "config.h"
#include "engine/engine.h"

struct http_options {
    const struct loch_config *cfg; /* warehouse, state folder, query limits; outlives the server */
    struct engine *eng;            /* shared DuckDB database */
    const char *catalog_path;      /* state/catalog.db: each worker opens its own handle */
    const char *listen;            /* host:port; NULL = cfg->http_listen */
    size_t max_body;               /* request body limit in bytes; 0 = 1 MiB */
    struct engine_pool *pool;      /* NULL, or the engines per memory limit (limits_resolve); outlives the server */
};

struct http_server;

/* Binds the address and starts serving. LOCH_ECONFIG for an address that does not parse,
 * LOCH_EIO when it cannot be bound (in use, no permission), naming it; nothing is left
 * running on error. */
int http_server_start(const struct http_options *o, struct http_server **out, struct loch_err *err);

/* The port actually bound (useful with port 0). */
int http_server_port(const struct http_server *s);

/* Stops accepting, finishes running requests, closes every connection and frees the
 * server. s may be NULL. */
void http_server_stop(struct http_server *s);

#endif
