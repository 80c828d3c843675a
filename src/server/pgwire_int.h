/* pgwire_int.h: private to the pgwire room (pgwire*.c): the server, connection, prepared
 * statement and portal structures, and the functions one pgwire file lends another.
 * Not a public interface: the rest of loch sees only pgwire.h. */
#ifndef LOCH_SERVER_PGWIRE_INT_H
#define LOCH_SERVER_PGWIRE_INT_H

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/mem.h"
#include "query/query.h"
#include "server/deadline.h"
#include "server/limits.h"
#include "server/pgwire.h"
#include "server/pgwire_msg.h"
#include "server/pgwire_types.h"

#define OUT_FLUSH_BYTES (64 * 1024) /* a streamed result is written in pieces of this size */
#define EVICT_SLACK 64 /* threads of evicted connections still ending, beyond max_connections */

struct conn;

/* A catalog + store pair a logged-in session uses; pooled, never opened per connection:
 * SQLite defers closing a database descriptor while another handle of the process holds
 * a lock on the file (WAL readers always do), so handles opened and closed per connection
 * piled up descriptors without bound. */
struct lake {
    struct catalog *cat;
    struct store *st;
    struct lake *next;
};

struct pgwire_server {
    struct pgwire_options o;
    int lfd, port;
    int wake[2];           /* a byte here stops the accept loop */
    SSL_CTX *tls;
    bool tls_required;
    pthread_t accept_thread;
    struct deadlines *dl;  /* statement time limits and login deadlines (deadline.h) */
    atomic_bool stopping;
    pthread_mutex_t mu;    /* guards conns, n_conns, and every conn's query/cancel fields */
    pthread_cond_t gone;   /* signalled when a connection thread ends */
    struct conn *conns;
    size_t n_conns;        /* threads, evicted ones included */
    size_t n_evicted;      /* evicted, still ending */
    int32_t next_pid;
    struct lake *idle;     /* under mu: lakes no session holds */
    /* Password look-ups before login go through this one handle, under auth_mu: a client
     * that has not logged in holds no catalog handle of its own. */
    pthread_mutex_t auth_mu;
    struct catalog *auth_cat;
    struct backoff *bo;    /* failed logins, per "user:" and "addr:" */
};

/* A prepared statement (extended protocol) or the statement of the simple protocol. */
struct prep {
    char *name, *sql;
    uint32_t *types;       /* declared parameter OIDs */
    size_t n_types;
    struct engine_stmt *st; /* NULL: a command run through query_run, or an intercepted one */
    bool empty;             /* a catalog query loch cannot answer: no rows */
    int64_t scanned;        /* query_scanned_bytes when st was prepared */
    struct prep *next;
};

struct portal {
    char *name;
    struct prep *prep;
    struct pgwire_param *params; /* copies */
    int16_t *fmts, *rfmts;
    uint16_t n_params, n_fmts, n_rfmts;
    struct engine_stream *stream; /* open while suspended (row limit reached) */
    struct engine_chunk *chunk;
    size_t chunk_row;
    uint64_t rows_sent;
    bool done;                    /* ran to its end (or failed): executing again is an error */
    struct portal *next;
};

struct conn {
    struct pgwire_server *srv;
    int fd;
    SSL *ssl;
    char peer[80];
    char host[64];           /* the peer's address, for per-address limits and back-off */
    struct lake *lake;       /* from login on */
    char *user, *database;
    bool admin;
    int32_t pid, key;
    struct catalog *cat;
    struct store *st;
    struct query_session *qs;
    struct config_limits limits; /* the user's, resolved at login */
    struct buf out;
    struct arena *msg_arena; /* lifetime: one frontend message */
    struct query_client cl;  /* transaction state, application_name: what loch answers itself */
    bool ext_skip;           /* an extended-protocol error: discard until Sync */
    struct prep *preps;
    struct portal *portals;
    struct portal *streaming; /* the portal whose stream is open on the DuckDB connection */
    /* guarded by srv->mu: */
    bool logged_in;          /* no longer evictable; counts against max_connections */
    bool evicted;            /* its socket was shut down to make room (or past the deadline) */
    bool running;
    int cancel_reason;       /* 1 user, 2 timeout */
    struct conn *next;
    struct deadline login_dl; /* armed from accept until the login ends */
    struct deadline stmt_dl;  /* armed while a statement runs under a time limit */
    uint64_t n_queries;
    double opened;
};

static inline uint32_t pgwire_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---- pgwire.c: socket I/O, slots and lakes */

/* Writes / reads exactly n bytes on c's socket (through TLS once it is on); -1 on EOF or
 * error (the connection is then done for). */
int pgwire_io_write(struct conn *c, const void *p, size_t n);
int pgwire_io_read(struct conn *c, void *p, size_t n);
/* Sends c->out and empties it (also on error); -1 when the client is gone. */
int pgwire_flush(struct conn *c);
/* Reads one frontend message of the normal phase into *body (OUT: malloc'd, the caller
 * frees it). Returns 1 on a clean EOF, -1 on a protocol violation (already answered),
 * 0 with the message. */
int pgwire_read_message(struct conn *c, char *type, uint8_t **body, size_t *len);
/* A pooled catalog + store for a logged-in session (OUT *out: handed back by conn_free);
 * err filled and its code returned when the lake cannot be opened. */
int pgwire_lake_take(struct pgwire_server *srv, struct lake **out, struct loch_err *err);
/* Takes one of max_connections for c after authentication (the reserved ones only for
 * administrators); -1 when refused (the client has been told). */
int pgwire_claim_slot(struct conn *c);

/* ---- pgwire_auth.c: startup */

/* The startup phase of c (TLS, cancel requests, the startup packet, SCRAM login, the
 * session): 0 when c is logged in with a session, -1 when the connection is to end
 * (the client has been told why, where there is anything to tell). */
int pgwire_startup(struct conn *c);
/* srv->tls from the config (server.tls.*): 0 and no context when TLS is off; otherwise
 * err filled (LOCH_ECONFIG naming the file) and its code returned. */
int pgwire_tls_setup(struct pgwire_server *srv, struct loch_err *err);

/* ---- pgwire_query.c: errors, accounting, rows, the simple protocol */

/* Queues an ErrorResponse for e into c->out; stmt (the statement's text, stmt_off bytes
 * into the message, may be NULL) places the position of a syntax error. */
void pgwire_send_error(struct conn *c, const struct loch_err *e, const char *stmt, size_t stmt_off);
/* Sends a FATAL ErrorResponse now, with code's SQLSTATE (a LOCH_E* of err.h: every
 * SQLSTATE comes from that one table) and msg (the connection is to end). */
void pgwire_send_fatal(struct conn *c, int code, const char *msg);
/* Logs a finished statement, counts it in /metrics and records it in the user's history
 * (e NULL: it succeeded). Never fails: a history error is logged. */
void pgwire_log_query(struct conn *c, const char *sql, double t0, uint64_t rows, int64_t scanned,
                      const struct loch_err *e);
/* A RowDescription of s's columns (or st's, when s is NULL) with result formats rfmts. */
void pgwire_send_row_description(struct conn *c, struct engine_stream *s, struct engine_stmt *st,
                                 const int16_t *rfmts, uint16_t n_rfmts);
/* Answers loch makes itself (SHOW): a one-text-column RowDescription; and one row of it
 * (with the description first when describe) and CommandComplete "SHOW". */
void pgwire_send_text_row_description(struct conn *c, const char *name);
void pgwire_send_one_text_row(struct conn *c, const char *name, const char *value, bool describe);
/* The RowDescription of a catalog query loch cannot answer: the columns its text names
 * (query_guess_columns), all text; no rows follow. */
void pgwire_send_empty_description(struct conn *c, const char *sql);
/* Ends p's open stream (if any); p stays (it may be bound again). p may be NULL. */
void pgwire_portal_close(struct conn *c, struct portal *p);
/* Before anything else runs on c's DuckDB connection: the suspended portal's rest is
 * taken into memory (or the portal closed when that fails). */
void pgwire_free_connection(struct conn *c);
/* Binds p's parameters and starts its statement (idempotent while its stream is open);
 * err filled and its code returned on failure (a time limit or cancel says so). */
int pgwire_portal_start(struct conn *c, struct portal *p, struct loch_err *err);
/* Streams up to max_rows rows of p (0: all; started on demand), then PortalSuspended or
 * CommandComplete. *rows: rows sent by this call. Errors as pgwire_portal_start. */
int pgwire_execute_portal(struct conn *c, struct portal *p, int32_t max_rows, bool describe, uint64_t *rows,
                          struct loch_err *err);
/* Runs a command (not a read) through query_run, sending its results; *rows: rows sent. */
int pgwire_run_command(struct conn *c, const char *sql, bool describe, uint64_t *rows, struct loch_err *err);
/* The simple query protocol for one Query message (every statement, then ReadyForQuery);
 * errors go to the client. */
void pgwire_simple_query(struct conn *c, const char *sql);

/* ---- pgwire_ext.c: the extended protocol */

/* Parse, Bind, Describe, Execute (OUT *sql_out: the portal's statement text, for the
 * error position), Close: each answers into c->out, or returns an error (filled) for the
 * caller to send and to skip until Sync. */
int pgwire_ext_parse(struct conn *c, const struct pgwire_msg *m, struct loch_err *err);
int pgwire_ext_bind(struct conn *c, const struct pgwire_msg *m, struct loch_err *err);
int pgwire_ext_describe(struct conn *c, const struct pgwire_msg *m, struct loch_err *err);
int pgwire_ext_execute(struct conn *c, const struct pgwire_msg *m, struct loch_err *err, const char **sql_out);
int pgwire_ext_close(struct conn *c, const struct pgwire_msg *m);
/* Frees the named portal / prepared statement (and the portals made from it); no-op
 * when there is none of that name. */
void pgwire_drop_portal(struct conn *c, const char *name);
void pgwire_drop_prep(struct conn *c, const char *name);

#endif
