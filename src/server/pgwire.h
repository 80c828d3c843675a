/* pgwire.h: loch's PostgreSQL wire-protocol (3.0) server: listener, one thread per
 * connection, TLS, SCRAM-SHA-256, simple and extended query with streamed results,
 * CancelRequest and per-query time limits. Not for HTTP (http.h) nor for SQL semantics
 * (query/): a connection is a query session behind a socket. */
#ifndef LOCH_SERVER_PGWIRE_H
#define LOCH_SERVER_PGWIRE_H

#include "base/err.h"
#include "config.h"
#include "engine/engine.h"

struct pgwire_options {
    const struct loch_config *cfg; /* listen address, TLS, query limits; outlives the server */
    struct engine *eng;            /* shared DuckDB database; each connection connects to it */
    const char *catalog_path;      /* state/catalog.db: each connection opens its own handle */
    struct engine_pool *pool;      /* NULL, or the engines per memory limit (limits_resolve); outlives the server */
};

struct pgwire_server;

/* Binds cfg->sql_listen (host:port, [v6]:port), loads the TLS certificate when TLS is not
 * "off", and starts the accept thread. On error (address in use, bad certificate):
 * LOCH_EIO / LOCH_ECONFIG with the address or file named; nothing is left running. */
int pgwire_server_start(const struct pgwire_options *o, struct pgwire_server **out, struct loch_err *err);

/* The port actually bound (useful with port 0). */
int pgwire_server_port(const struct pgwire_server *s);

/* Stops accepting, interrupts running queries, closes every connection, joins every
 * thread and frees the server. s may be NULL. */
void pgwire_server_stop(struct pgwire_server *s);

#endif
