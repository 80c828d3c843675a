/* pgwire.c: the PostgreSQL wire-protocol server: listener, connection threads, startup
 * (TLS, SCRAM-SHA-256), simple and extended query, cancel and time limits. Message bytes
 * are decoded in pgwire_msg.c, values encoded in pgwire_types.c; SQL runs in query/.
 * Not for HTTP (http.c). Reference: PostgreSQL documentation, chapter 55 (protocol 3.0). */
#include "server/pgwire.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "access/principal.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "query/query.h"
#include "server/backoff.h"
#include "server/history.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "server/pgwire_msg.h"
#include "server/pgwire_types.h"
#include "server/scram.h"

#define OUT_FLUSH_BYTES (64 * 1024) /* a streamed result is written in pieces of this size */
#define SERVER_VERSION "16.0 (loch)"
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
    pthread_t accept_thread, reaper_thread;
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
    char txn;                /* 'I' idle, 'T' in a transaction block, 'E' failed block */
    bool ext_skip;           /* an extended-protocol error: discard until Sync */
    struct prep *preps;
    struct portal *portals;
    struct portal *streaming; /* the portal whose stream is open on the DuckDB connection */
    /* guarded by srv->mu: */
    bool logged_in;          /* no longer evictable; counts against max_connections */
    bool evicted;            /* its socket was shut down to make room (or past the deadline) */
    int64_t login_deadline_us;
    bool running;
    int64_t deadline_us;     /* 0: none */
    int cancel_reason;       /* 1 user, 2 timeout */
    struct conn *next;
    /* session settings clients SET and SHOW */
    char *app_name;
    uint64_t n_queries;
    double opened;
};

/* ---------------------------------------------------------------- socket I/O */

static int io_write(struct conn *c, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t w;
        if (c->ssl) {
            int r = SSL_write(c->ssl, s, (int)(n > 1 << 30 ? 1 << 30 : n));
            w = r > 0 ? r : -1;
        } else {
            w = send(c->fd, s, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
        }
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads exactly n bytes; -1 on EOF or error. */
static int io_read(struct conn *c, void *p, size_t n)
{
    char *d = p;
    while (n) {
        ssize_t r;
        if (c->ssl) {
            int k = SSL_read(c->ssl, d, (int)(n > 1 << 30 ? 1 << 30 : n));
            r = k > 0 ? k : -1;
        } else {
            r = recv(c->fd, d, n, 0);
            if (r < 0 && errno == EINTR)
                continue;
        }
        if (r <= 0)
            return -1;
        d += r;
        n -= (size_t)r;
    }
    return 0;
}

static int flush_out(struct conn *c)
{
    int rc = c->out.len ? io_write(c, c->out.data, c->out.len) : 0;
    buf_reset(&c->out);
    return rc;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* ---------------------------------------------------------------- errors */

/* The SQLSTATE for an error: loch's one table (err.h). */
static const char *sqlstate_of(const struct loch_err *e) { return loch_err_sqlstate(e->code); }

/* The 1-based character position of a syntax error in stmt, from DuckDB's
 * "LINE n: <excerpt>\n<spaces>^" trailer; 0 when unknown. */
static size_t error_position(const char *msg, const char *stmt)
{
    const char *l = strstr(msg, "LINE ");
    if (!l)
        return 0;
    int line = atoi(l + 5);
    const char *colon = strchr(l, ':');
    const char *nl = colon ? strchr(colon, '\n') : NULL;
    if (!colon || !nl || line < 1)
        return 0;
    size_t prefix = (size_t)(colon + 2 - l);
    const char *excerpt = colon + 2;
    size_t ex_len = (size_t)(nl - excerpt);
    const char *caret = strchr(nl + 1, '^');
    if (!caret)
        return 0;
    size_t col = (size_t)(caret - (nl + 1));
    if (col < prefix)
        return 0;
    col -= prefix;
    bool dots = ex_len >= 3 && !strncmp(excerpt, "...", 3);
    const char *p = stmt;
    for (int k = 1; k < line && p; k++) {
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    if (!p)
        return 0;
    size_t line_off = (size_t)(p - stmt);
    if (dots) { /* DuckDB shows "...<middle of the line>": find that middle in the line */
        size_t want = ex_len - 3 < 16 ? ex_len - 3 : 16;
        char key[17];
        memcpy(key, excerpt + 3, want);
        key[want] = '\0';
        const char *f = want ? strstr(p, key) : NULL;
        if (!f || col < 3)
            return 0;
        line_off = (size_t)(f - stmt);
        col -= 3;
    }
    /* characters, not bytes */
    size_t chars = 0;
    for (size_t k = 0; k < line_off + col && stmt[k]; k++)
        if (((unsigned char)stmt[k] & 0xc0) != 0x80)
            chars++;
    return chars + 1;
}

static void send_error(struct conn *c, const struct loch_err *e, const char *stmt, size_t stmt_off)
{
    const char *state = sqlstate_of(e);
    const char *msg = e->msg[0] ? e->msg : loch_strerror(e->code);
    size_t pos = 0;
    if (stmt && e->code != LOCH_ECANCELED && e->code != LOCH_EPERM) {
        pos = error_position(msg, stmt);
        if (pos) {
            /* stmt_off counts bytes; turn the statement start into characters too */
            size_t pre = 0;
            for (size_t k = 0; k < stmt_off; k++)
                if (((unsigned char)stmt[-(ptrdiff_t)stmt_off + (ptrdiff_t)k] & 0xc0) != 0x80)
                    pre++;
            pos += pre;
        }
    }
    /* DuckDB's multi-line caret display goes to the detail, the first line stays the message */
    char first[1024];
    snprintf(first, sizeof first, "%s", msg);
    char *nl = strchr(first, '\n');
    if (nl)
        *nl = '\0';
    pgwire_error(&c->out, false, "ERROR", state, first, e->detail, e->hint, pos);
}

static void send_fatal(struct conn *c, const char *state, const char *msg)
{
    pgwire_error(&c->out, false, "FATAL", state, msg, NULL, NULL, 0);
    flush_out(c);
}

/* ---------------------------------------------------------------- query accounting */

static void query_begin(struct conn *c)
{
    int64_t to = c->limits.timeout_ms;
    pthread_mutex_lock(&c->srv->mu);
    c->running = true;
    c->cancel_reason = 0;
    c->deadline_us = to > 0 ? util_now_us() + to * 1000 : 0;
    pthread_mutex_unlock(&c->srv->mu);
}

/* Ends the running query; returns why it was interrupted (0, 1 user, 2 timeout). */
static int query_end(struct conn *c)
{
    pthread_mutex_lock(&c->srv->mu);
    c->running = false;
    int why = c->cancel_reason;
    c->cancel_reason = 0;
    pthread_mutex_unlock(&c->srv->mu);
    return why;
}

/* The statement text as it may be logged: one line, at most 200 characters, and nothing
 * after a PASSWORD keyword (CREATE USER ... WITH PASSWORD '...'). */
static void log_sql(char *out, size_t cap, const char *sql)
{
    size_t n = 0;
    for (const char *p = sql; *p && n + 1 < cap && n < 200; p++) {
        if (!strncasecmp(p, "password", 8)) {
            snprintf(out + n, cap - n, "PASSWORD <hidden>");
            return;
        }
        out[n++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    }
    out[n] = '\0';
}

static void log_query(struct conn *c, const char *sql, double t0, uint64_t rows, int64_t scanned,
                      const struct loch_err *e)
{
    char s[256];
    log_sql(s, sizeof s, sql);
    double secs = util_mono_s() - t0;
    log_info("pgwire: query user=%s pid=%d duration_ms=%.1f rows=%llu status=%s sql=\"%s\"", c->user, c->pid,
             secs * 1000.0, (unsigned long long)rows, e ? sqlstate_of(e) : "ok", s);
    metrics_query(METRICS_PGWIRE, e == NULL, rows, secs);
    c->n_queries++;
    /* The user's query history (GET /v1/queries); history_record redacts passwords. */
    struct history_entry h = {.user = c->user, .protocol = "pgwire", .sql = sql,
                              .started_ms = util_now_ms() - (int64_t)(secs * 1000.0),
                              .duration_ms = (int64_t)(secs * 1000.0), .rows = (int64_t)rows, .bytes_scanned = scanned,
                              .status = e ? "error" : "ok", .sqlstate = e ? sqlstate_of(e) : NULL,
                              .error = e ? e->msg : NULL};
    struct loch_err herr;
    if (c->cat && c->user && history_record(c->cat, &h, &herr) != 0)
        log_warn("pgwire: cannot record query history: %s", herr.msg);
}

/* ---------------------------------------------------------------- result rows */

static void send_row_description(struct conn *c, struct engine_stream *s, struct engine_stmt *st,
                                 const int16_t *rfmts, uint16_t n_rfmts)
{
    size_t n = s ? engine_stream_ncols(s) : engine_stmt_ncols(st);
    size_t m = pgwire_begin(&c->out, 'T');
    pgwire_put16(&c->out, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        const struct engine_col *col = s ? engine_stream_col(s, i) : engine_stmt_col(st, i);
        struct pgwire_type t;
        pgwire_type_of(col, &t);
        pgwire_putstr(&c->out, col->name);
        pgwire_put32(&c->out, 0);
        pgwire_put16(&c->out, 0);
        pgwire_put32(&c->out, t.oid);
        pgwire_put16(&c->out, (uint16_t)t.len);
        pgwire_put32(&c->out, (uint32_t)t.typmod);
        int16_t f = n_rfmts == 0 ? 0 : n_rfmts == 1 ? rfmts[0] : (i < n_rfmts ? rfmts[i] : 0);
        pgwire_put16(&c->out, (uint16_t)f);
    }
    pgwire_end(&c->out, m);
}

/* Sends DataRows from p's stream until it ends (*done) or max_rows rows were sent in this
 * call (0 = no limit). The socket is written every OUT_FLUSH_BYTES: a slow reader blocks
 * the write, which holds back the next fetch, so memory stays bounded. */
static int stream_rows(struct conn *c, struct portal *p, int32_t max_rows, bool *done, uint64_t *sent,
                       struct loch_err *err)
{
    struct engine_stream *s = p->stream;
    size_t nc = engine_stream_ncols(s);
    int16_t *fm = p->rfmts;
    uint16_t nf = p->n_rfmts;
    *done = false;
    *sent = 0;
    for (;;) {
        if (!p->chunk || p->chunk_row >= engine_chunk_rows(p->chunk)) {
            int rc = engine_stream_next(s, &p->chunk, err);
            p->chunk_row = 0;
            if (rc)
                return rc;
            if (!p->chunk) {
                *done = true;
                return 0;
            }
            continue;
        }
        if (max_rows > 0 && *sent >= (uint64_t)max_rows)
            return 0;
        struct engine_chunk *ch = p->chunk;
        size_t row = p->chunk_row++;
        size_t m = pgwire_begin(&c->out, 'D');
        pgwire_put16(&c->out, (uint16_t)nc);
        for (size_t i = 0; i < nc; i++) {
            struct engine_val v;
            if (!engine_chunk_get(ch, i, row, &v)) {
                pgwire_put32(&c->out, UINT32_MAX);
                continue;
            }
            size_t lm = c->out.len;
            pgwire_put32(&c->out, 0);
            int16_t f = nf == 0 ? 0 : nf == 1 ? fm[0] : (i < nf ? fm[i] : 0);
            if (f == 1)
                pgwire_encode_binary(&c->out, engine_stream_col(s, i), &v);
            else
                pgwire_encode_text(&c->out, engine_stream_col(s, i), &v);
            uint32_t l = (uint32_t)(c->out.len - lm - 4);
            unsigned char *q = (unsigned char *)c->out.data + lm;
            q[0] = (unsigned char)(l >> 24);
            q[1] = (unsigned char)(l >> 16);
            q[2] = (unsigned char)(l >> 8);
            q[3] = (unsigned char)l;
        }
        pgwire_end(&c->out, m);
        (*sent)++;
        p->rows_sent++;
        if (c->out.len >= OUT_FLUSH_BYTES && flush_out(c) != 0)
            return loch_errf(err, LOCH_EIO, "client connection lost while sending rows");
    }
}

static void portal_close_stream(struct conn *c, struct portal *p)
{
    if (!p)
        return;
    engine_stream_free(p->stream);
    p->stream = NULL;
    p->chunk = NULL;
    p->chunk_row = 0;
    if (c->streaming == p)
        c->streaming = NULL;
}

/* One DuckDB connection runs one statement at a time: before anything else runs on it, a
 * suspended portal's stream (row limit reached) takes the rest of its rows into memory,
 * so the portal can still be read to its end. */
static void free_connection(struct conn *c)
{
    struct portal *p = c->streaming;
    if (!p)
        return;
    c->streaming = NULL;
    struct loch_err err;
    loch_err_clear(&err);
    if (engine_stream_buffer(p->stream, &err) != 0) {
        log_info("pgwire: suspended portal \"%s\" failed while buffered: %s", p->name, err.msg);
        portal_close_stream(c, p);
    }
}

/* ---------------------------------------------------------------- statements loch answers itself */

/* Session parameters clients set at connect; they are remembered and shown, and change
 * nothing in DuckDB (whose own settings are not the client's to change). */
static const char *const known_params[] = {
    "application_name", "extra_float_digits", "client_encoding", "datestyle", "timezone", "search_path",
    "statement_timeout", "intervalstyle", "client_min_messages", "standard_conforming_strings",
    "bytea_output", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "default_transaction_isolation",
    "default_transaction_read_only", "idle_in_transaction_session_timeout", "lock_timeout", "jit",
    "session_characteristics", "transaction_isolation", "geqo", "join_collapse_limit", "role",
    "default_transaction_deferrable", "transaction_read_only", "server_version", "server_encoding",
    "integer_datetimes", "max_identifier_length", "is_superuser", "session_authorization", NULL};

static const char *param_value(struct conn *c, const char *name)
{
    if (!strcasecmp(name, "application_name"))
        return c->app_name ? c->app_name : "";
    if (!strcasecmp(name, "server_version"))
        return SERVER_VERSION;
    if (!strcasecmp(name, "server_encoding") || !strcasecmp(name, "client_encoding"))
        return "UTF8";
    if (!strcasecmp(name, "datestyle"))
        return "ISO, MDY";
    if (!strcasecmp(name, "timezone"))
        return "UTC";
    if (!strcasecmp(name, "integer_datetimes") || !strcasecmp(name, "standard_conforming_strings"))
        return "on";
    if (!strcasecmp(name, "transaction_isolation") || !strcasecmp(name, "default_transaction_isolation"))
        return "read committed";
    if (!strcasecmp(name, "transaction_read_only") || !strcasecmp(name, "default_transaction_read_only"))
        return "off";
    if (!strcasecmp(name, "max_identifier_length"))
        return "63";
    if (!strcasecmp(name, "is_superuser"))
        return c->admin ? "on" : "off";
    if (!strcasecmp(name, "session_authorization"))
        return c->user;
    if (!strcasecmp(name, "search_path"))
        return "\"$user\", public";
    if (!strcasecmp(name, "statement_timeout") || !strcasecmp(name, "lock_timeout") ||
        !strcasecmp(name, "idle_in_transaction_session_timeout"))
        return "0";
    if (!strcasecmp(name, "intervalstyle"))
        return "postgres";
    if (!strcasecmp(name, "bytea_output"))
        return "hex";
    if (!strcasecmp(name, "client_min_messages"))
        return "notice";
    return "";
}

static bool is_known_param(const char *name)
{
    for (int i = 0; known_params[i]; i++)
        if (!strcasecmp(name, known_params[i]))
            return true;
    return false;
}

/* Words of a statement, lower-cased, at most n, for recognising SET/SHOW/BEGIN. */
static size_t words(const char *sql, char w[][64], size_t n)
{
    size_t k = 0;
    const char *p = sql;
    while (k < n) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        size_t l = 0;
        if (*p == '=' || *p == ',') {
            w[k][l++] = *p++;
        } else if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q && l < 63)
                w[k][l++] = *p++;
            if (*p == q)
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '=' && *p != ',' &&
                   *p != ';' && l < 63) {
                w[k][l++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
                p++;
            }
            if (*p == ';')
                p++;
            if (!l)
                break;
        }
        w[k][l] = '\0';
        k++;
    }
    return k;
}

enum intercept { IC_NONE, IC_DONE, IC_ROWS };

/* Answers SET/RESET/SHOW of client parameters and transaction control without DuckDB.
 * IC_DONE: *tag is the command tag; IC_ROWS: *show_name and *show_value are one row to send. */
static enum intercept intercept(struct conn *c, const char *sql, const char **tag, const char **show_name,
                                const char **show_value)
{
    char w[6][64];
    size_t n = words(sql, w, 6);
    if (!n)
        return IC_NONE;
    if (!strcmp(w[0], "begin") || (!strcmp(w[0], "start") && n > 1 && !strcmp(w[1], "transaction"))) {
        c->txn = 'T';
        *tag = "BEGIN";
        return IC_DONE;
    }
    if (!strcmp(w[0], "commit") || !strcmp(w[0], "end")) {
        c->txn = 'I';
        *tag = "COMMIT";
        return IC_DONE;
    }
    if (!strcmp(w[0], "rollback") || !strcmp(w[0], "abort")) {
        c->txn = 'I';
        *tag = "ROLLBACK";
        return IC_DONE;
    }
    if (!strcmp(w[0], "discard") || !strcmp(w[0], "unlisten")) {
        *tag = !strcmp(w[0], "discard") ? "DISCARD ALL" : "UNLISTEN";
        return IC_DONE;
    }
    if (!strcmp(w[0], "set") || !strcmp(w[0], "reset")) {
        size_t i = 1;
        if (n > 1 && (!strcmp(w[1], "session") || !strcmp(w[1], "local")))
            i = 2;
        if (n > i && (!strcmp(w[i], "transaction") || !strcmp(w[i], "session") || is_known_param(w[i]) ||
                      !strcmp(w[i], "time") || !strcmp(w[i], "names") || !strcmp(w[i], "all") ||
                      !strcmp(w[i], "characteristics"))) {
            if (!strcmp(w[i], "application_name") && !strcmp(w[0], "set")) {
                size_t v = (n > i + 1 && (!strcmp(w[i + 1], "=") || !strcmp(w[i + 1], "to"))) ? i + 2 : i + 1;
                free(c->app_name);
                c->app_name = xstrdup(n > v ? w[v] : "");
            }
            *tag = !strcmp(w[0], "set") ? "SET" : "RESET";
            return IC_DONE;
        }
        return IC_NONE;
    }
    if (!strcmp(w[0], "show") && n > 1) {
        if (!strcmp(w[1], "transaction") && n > 3) { /* SHOW TRANSACTION ISOLATION LEVEL */
            *show_name = "transaction_isolation";
            *show_value = "read committed";
            return IC_ROWS;
        }
        if (is_known_param(w[1])) {
            *show_name = w[1][0] ? (const char *)arena_strdup(c->msg_arena, w[1]) : "";
            *show_value = param_value(c, w[1]);
            return IC_ROWS;
        }
    }
    return IC_NONE;
}

/* RowDescription of one text column called name (answers loch makes itself: SHOW, ...). */
static void send_text_row_description(struct conn *c, const char *name)
{
    size_t m = pgwire_begin(&c->out, 'T');
    pgwire_put16(&c->out, 1);
    pgwire_putstr(&c->out, name);
    pgwire_put32(&c->out, 0);            /* no table */
    pgwire_put16(&c->out, 0);            /* no column number */
    pgwire_put32(&c->out, PG_OID_TEXT);
    pgwire_put16(&c->out, (uint16_t)-1); /* variable length */
    pgwire_put32(&c->out, (uint32_t)-1); /* no typmod */
    pgwire_put16(&c->out, 0);            /* text format */
    pgwire_end(&c->out, m);
}

static void send_one_text_row(struct conn *c, const char *name, const char *value, bool describe)
{
    if (describe)
        send_text_row_description(c, name);
    size_t m = pgwire_begin(&c->out, 'D');
    pgwire_put16(&c->out, 1);
    pgwire_put32(&c->out, (uint32_t)strlen(value));
    buf_puts(&c->out, value);
    pgwire_end(&c->out, m);
    pgwire_complete(&c->out, "SHOW");
}

/* ---------------------------------------------------------------- unanswerable catalog queries */

/* The output column names of a SELECT, read from its text: each top-level item of the
 * first select list, named by its alias (AS x) or its last identifier. For catalog
 * queries loch cannot run: the client still gets a result set of the shape it asked for,
 * with no rows (JDBC refuses "no results" from an executeQuery). */
static size_t guess_columns(struct arena *a, const char *sql, char ***out)
{
    const char *p = strcasestr(sql, "select");
    size_t n = 0, cap = 0;
    char **names = NULL;
    if (!p) {
        *out = NULL;
        return 0;
    }
    p += 6;
    int depth = 0;
    const char *item = p;
    for (;; p++) {
        bool end = !*p;
        if (!end && (*p == '\'' || *p == '"')) {
            char q = *p++;
            while (*p && *p != q)
                p++;
            if (!*p)
                end = true;
            else
                continue;
        }
        if (!end && (*p == '(' || *p == '['))
            depth++;
        else if (!end && (*p == ')' || *p == ']'))
            depth--;
        bool from = !end && depth == 0 && !strncasecmp(p, "from", 4) && (p[4] == ' ' || p[4] == '\n' ||
                    p[4] == '\t' || p[4] == '\r') && (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t' || p[-1] == '\r');
        if (end || from || (depth == 0 && *p == ',')) {
            const char *e = p;
            while (e > item && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
                e--;
            const char *b = e;
            if (b > item && b[-1] == '"') { /* "Quoted Name" */
                b--;
                while (b > item && b[-1] != '"')
                    b--;
                e--;
            } else {
                while (b > item && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
                    b--;
            }
            if (e > item) {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    names = arena_grow(a, names, cap, nc, sizeof *names);
                    cap = nc;
                }
                names[n++] = b < e ? arena_strndup(a, b, (size_t)(e - b)) : arena_strdup(a, "?column?");
            }
            item = p + 1;
            if (end || from)
                break;
        }
    }
    *out = names;
    return n;
}

static void send_empty_description(struct conn *c, const char *sql)
{
    char **names;
    size_t n = guess_columns(c->msg_arena, sql, &names);
    size_t m = pgwire_begin(&c->out, 'T');
    pgwire_put16(&c->out, (uint16_t)n);
    for (size_t i = 0; i < n; i++) {
        pgwire_putstr(&c->out, names[i]);
        pgwire_put32(&c->out, 0);
        pgwire_put16(&c->out, 0);
        pgwire_put32(&c->out, PG_OID_TEXT);
        pgwire_put16(&c->out, (uint16_t)-1);
        pgwire_put32(&c->out, (uint32_t)-1);
        pgwire_put16(&c->out, 0);
    }
    pgwire_end(&c->out, m);
}

/* ---------------------------------------------------------------- running statements */

struct cmd_ctx {
    struct conn *c;
    bool describe; /* send RowDescription for row results (simple protocol) */
    uint64_t rows;
    int rc;
    struct loch_err *err;
};

/* query_run's per-statement callback: a command's rows (SHOW TABLES, PRAGMA, lake DDL
 * answers) go out like a stream over the materialised result. */
static int cmd_emit(void *ctx, const struct query_result *r)
{
    struct cmd_ctx *x = ctx;
    struct conn *c = x->c;
    if (r->rows && engine_rows_ncols(r->rows) > 0) {
        struct portal tmp = {0};
        tmp.stream = engine_stream_rows(r->rows);
        if (x->describe)
            send_row_description(c, tmp.stream, NULL, NULL, 0);
        bool done;
        uint64_t sent;
        int rc = stream_rows(c, &tmp, 0, &done, &sent, x->err);
        engine_stream_free(tmp.stream);
        x->rows += sent;
        if (rc)
            return rc;
        pgwire_complete(&c->out, arena_printf(c->msg_arena, "SELECT %llu", (unsigned long long)sent));
        return 0;
    }
    pgwire_complete(&c->out, r->tag ? r->tag : "OK");
    return 0;
}

/* Maps an interrupt to PostgreSQL's message for why it happened. */
static void cancel_message(struct conn *c, int why, struct loch_err *err)
{
    if (err->code != LOCH_ECANCELED && !(why && err->code))
        return;
    if (why == 2) {
        loch_errf(err, LOCH_ECANCELED, "canceling statement due to statement timeout");
        loch_err_detail(err, "the limit is %lld ms (%s)", (long long)c->limits.timeout_ms, c->limits.timeout_from);
    } else if (why == 1)
        loch_errf(err, LOCH_ECANCELED, "canceling statement due to user request");
}

/* Runs a command (not a read) through query_run: lake writes, DDL, user management. */
static int run_command(struct conn *c, const char *sql, bool describe, uint64_t *rows, struct loch_err *err)
{
    free_connection(c);
    struct cmd_ctx x = {c, describe, 0, 0, err};
    query_begin(c);
    int rc = query_run(c->qs, sql, cmd_emit, &x, err);
    int why = query_end(c);
    if (rc)
        cancel_message(c, why, err);
    *rows = x.rows;
    return rc;
}

/* Binds p's parameters and starts its statement: the stream is open afterwards (rows
 * are produced as they are fetched). Idempotent while the stream is open. */
static int portal_start(struct conn *c, struct portal *p, struct loch_err *err)
{
    if (p->stream)
        return 0;
    struct engine_stmt *st = p->prep->st;
    if (c->streaming != p)
        free_connection(c);
    if (p->rows_sent)
        return loch_errf(err, LOCH_EUNSUPPORTED,
                         "portal \"%s\" was closed by a later statement on this connection", p->name);
    size_t np = engine_stmt_nparams(st);
    if (p->n_params != np)
        return loch_errf(err, LOCH_EPROTO, "bind message supplies %u parameters, but the statement requires %zu",
                         p->n_params, np);
    int rc = 0;
    for (size_t i = 0; i < np && !rc; i++) {
        int fmt = p->n_fmts == 0 ? 0 : p->n_fmts == 1 ? p->fmts[0] : p->fmts[i];
        uint32_t oid = i < p->prep->n_types ? p->prep->types[i] : 0;
        rc = pgwire_bind_param(st, i, oid, fmt, p->params[i].data, p->params[i].len, err);
    }
    if (rc)
        return rc;
    query_begin(c);
    rc = engine_execute(st, &p->stream, err);
    int why = query_end(c);
    if (rc) {
        cancel_message(c, why, err);
        return rc;
    }
    c->streaming = p;
    return 0;
}

/* Streams up to max_rows rows of p (started on demand); sends PortalSuspended when the
 * limit stops it, CommandComplete when the result ends. */
static int execute_portal(struct conn *c, struct portal *p, int32_t max_rows, bool describe, uint64_t *rows,
                          struct loch_err *err)
{
    struct engine_stmt *st = p->prep->st;
    *rows = 0;
    if (p->done && !p->stream) { /* ran to its end before: nothing more (as PostgreSQL) */
        pgwire_complete(&c->out, "SELECT 0");
        return 0;
    }
    if (!p->stream) {
        int rc = portal_start(c, p, err);
        if (rc)
            return rc;
        if (describe && engine_stream_ncols(p->stream) > 0)
            send_row_description(c, p->stream, NULL, p->rfmts, p->n_rfmts);
    }
    query_begin(c);
    bool done = false;
    uint64_t sent = 0;
    int rc = 0;
    bool has_rows = engine_stmt_returns_rows(st) || engine_stream_ncols(p->stream) > 0;
    if (has_rows)
        rc = stream_rows(c, p, max_rows, &done, &sent, err);
    else
        done = true;
    int why = query_end(c);
    *rows = sent;
    if (rc) {
        cancel_message(c, why, err);
        portal_close_stream(c, p);
        p->done = true;
        return rc;
    }
    if (!done) {
        size_t m = pgwire_begin(&c->out, 's');
        pgwire_end(&c->out, m);
        return 0;
    }
    const char *tag;
    if (has_rows)
        tag = arena_printf(c->msg_arena, "SELECT %llu", (unsigned long long)p->rows_sent);
    else
        tag = arena_printf(c->msg_arena, "OK %lld", (long long)engine_stream_changed(p->stream));
    pgwire_complete(&c->out, tag);
    portal_close_stream(c, p);
    p->done = true;
    return 0;
}

/* ---------------------------------------------------------------- simple query */

static void simple_query(struct conn *c, const char *sql)
{
    struct loch_err err;
    loch_err_clear(&err);
    free_connection(c);
    struct query_piece *pieces;
    size_t n;
    if (query_split(c->msg_arena, sql, &pieces, &n, &err) != 0) {
        send_error(c, &err, NULL, 0);
        pgwire_ready(&c->out, c->txn);
        return;
    }
    if (n == 0) {
        size_t m = pgwire_begin(&c->out, 'I');
        pgwire_end(&c->out, m);
    }
    for (size_t i = 0; i < n; i++) {
        const char *text = pieces[i].text;
        double t0 = util_mono_s();
        uint64_t rows = 0;
        int64_t scanned = 0;
        int rc = 0;
        const char *tag = NULL, *sn = NULL, *sv = NULL;
        loch_err_clear(&err);
        enum intercept ic = intercept(c, text, &tag, &sn, &sv);
        if (ic == IC_DONE) {
            pgwire_complete(&c->out, tag);
        } else if (ic == IC_ROWS) {
            send_one_text_row(c, sn, sv, true);
            rows = 1;
        } else if (query_is_read(text) || query_is_catalog(text)) {
            struct prep pr = {0};
            bool cat = false;
            rc = query_prepare_catalog(c->qs, text, &pr.st, &cat, &err);
            if (cat && rc) { /* a catalog question beyond loch's description: no rows */
                log_debug("pgwire: catalog query answered empty: %s", err.msg);
                loch_err_clear(&err);
                rc = 0;
                send_empty_description(c, text);
                pgwire_complete(&c->out, "SELECT 0");
            } else if (!cat) {
                rc = query_is_read(text) ? query_prepare(c->qs, text, &pr.st, &err)
                                         : run_command(c, text, true, &rows, &err);
                scanned = query_scanned_bytes(c->qs);
                if (rc && query_is_catalog(text) && err.code != LOCH_ECANCELED) {
                    /* a non-administrator's catalog query: no rows, rather than an error
                     * psql would show for \dt (nothing in the lake is theirs to list) */
                    log_info("pgwire: catalog query of user=%s answered empty: %s", c->user, err.msg);
                    loch_err_clear(&err);
                    rc = 0;
                    send_empty_description(c, text);
                    pgwire_complete(&c->out, "SELECT 0");
                }
            }
            if (!rc && pr.st) {
                struct portal p = {0};
                p.name = "";
                p.prep = &pr;
                rc = execute_portal(c, &p, 0, true, &rows, &err);
                portal_close_stream(c, &p);
            }
            engine_stmt_free(pr.st);
        } else {
            rc = run_command(c, text, true, &rows, &err);
            scanned = query_scanned_bytes(c->qs);
        }
        log_query(c, text, t0, rows, scanned, rc ? &err : NULL);
        if (rc) {
            /* the statement's text lives in the arena; its offset in the message is known */
            send_error(c, &err, sql + pieces[i].off, pieces[i].off);
            if (c->txn == 'T')
                c->txn = 'E';
            break;
        }
        if (c->out.len >= OUT_FLUSH_BYTES && flush_out(c) != 0)
            break;
    }
    pgwire_ready(&c->out, c->txn);
}

/* ---------------------------------------------------------------- extended query */

static struct prep *find_prep(struct conn *c, const char *name)
{
    for (struct prep *p = c->preps; p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static struct portal *find_portal(struct conn *c, const char *name)
{
    for (struct portal *p = c->portals; p; p = p->next)
        if (!strcmp(p->name, name))
            return p;
    return NULL;
}

static void portal_free(struct conn *c, struct portal *p)
{
    portal_close_stream(c, p);
    for (uint16_t i = 0; i < p->n_params; i++)
        free((void *)p->params[i].data);
    free(p->params);
    free(p->fmts);
    free(p->rfmts);
    free(p->name);
    free(p);
}

static void drop_portal(struct conn *c, const char *name)
{
    for (struct portal **pp = &c->portals; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            struct portal *p = *pp;
            *pp = p->next;
            portal_free(c, p);
            return;
        }
}

static void drop_prep(struct conn *c, const char *name)
{
    for (struct prep **pp = &c->preps; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            struct prep *p = *pp;
            /* portals made from it go with it */
            for (struct portal **qq = &c->portals; *qq;) {
                if ((*qq)->prep == p) {
                    struct portal *q = *qq;
                    *qq = q->next;
                    portal_free(c, q);
                } else {
                    qq = &(*qq)->next;
                }
            }
            *pp = p->next;
            engine_stmt_free(p->st);
            free(p->name);
            free(p->sql);
            free(p->types);
            free(p);
            return;
        }
}

static int ext_parse(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
{
    free_connection(c);
    const char *name = m->u.parse.name;
    if (*name && find_prep(c, name))
        return loch_errf(err, LOCH_EEXIST, "prepared statement \"%s\" already exists", name);
    if (!*name)
        drop_prep(c, "");
    struct query_piece *pieces;
    size_t n;
    int rc = query_split(c->msg_arena, m->u.parse.sql, &pieces, &n, err);
    if (rc)
        return rc;
    if (n > 1)
        return loch_errf(err, LOCH_ESYNTAX, "cannot insert multiple commands into a prepared statement");
    struct prep *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->sql = xstrdup(n ? pieces[0].text : "");
    p->n_types = m->u.parse.n_types;
    p->types = xcalloc(p->n_types ? p->n_types : 1, sizeof *p->types);
    memcpy(p->types, m->u.parse.types, p->n_types * sizeof *p->types);
    const char *tag, *sn, *sv;
    bool cat = false;
    if (n && intercept(c, p->sql, &tag, &sn, &sv) == IC_NONE) {
        rc = query_prepare_catalog(c->qs, p->sql, &p->st, &cat, err);
        if (cat && rc) { /* beyond loch's description of the catalog: no rows */
            log_debug("pgwire: catalog query answered empty: %s", err->msg);
            loch_err_clear(err);
            rc = 0;
            p->empty = true;
        } else if (!cat && query_is_read(p->sql)) {
            rc = query_prepare(c->qs, p->sql, &p->st, err);
            p->scanned = query_scanned_bytes(c->qs);
            if (rc && query_is_catalog(p->sql) && err->code != LOCH_ECANCELED) {
                log_info("pgwire: catalog query of user=%s answered empty: %s", c->user, err->msg);
                loch_err_clear(err);
                rc = 0;
                p->empty = true;
            }
        }
        if (rc) {
            free(p->name);
            free(p->sql);
            free(p->types);
            free(p);
            return rc;
        }
    }
    p->next = c->preps;
    c->preps = p;
    size_t mk = pgwire_begin(&c->out, '1');
    pgwire_end(&c->out, mk);
    return 0;
}

static int ext_bind(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
{
    struct prep *pr = find_prep(c, m->u.bind.stmt);
    if (!pr)
        return loch_errf(err, LOCH_ENOENT, "prepared statement \"%s\" does not exist", m->u.bind.stmt);
    if (*m->u.bind.portal && find_portal(c, m->u.bind.portal))
        return loch_errf(err, LOCH_EEXIST, "portal \"%s\" already exists", m->u.bind.portal);
    drop_portal(c, m->u.bind.portal);
    size_t need = pr->st ? engine_stmt_nparams(pr->st) : 0;
    if (m->u.bind.n_params != need && pr->st)
        return loch_errf(err, LOCH_EPROTO, "bind message supplies %u parameters, but prepared statement \"%s\" "
                         "requires %zu", m->u.bind.n_params, pr->name, need);
    if (!pr->st && m->u.bind.n_params) {
        loch_errf(err, LOCH_EUNSUPPORTED, "parameters are supported in queries, not in this statement");
        return loch_err_hint(err, "put the values in the statement text");
    }
    struct portal *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(m->u.bind.portal);
    p->prep = pr;
    p->n_params = m->u.bind.n_params;
    p->params = xcalloc(p->n_params ? p->n_params : 1, sizeof *p->params);
    for (uint16_t i = 0; i < p->n_params; i++) {
        const struct pgwire_param *q = &m->u.bind.params[i];
        if (q->data) {
            char *d = xmalloc((size_t)q->len + 1);
            memcpy(d, q->data, (size_t)q->len);
            d[q->len] = '\0';
            p->params[i].data = (const uint8_t *)d;
            p->params[i].len = q->len;
        }
    }
    p->n_fmts = m->u.bind.n_fmts;
    p->fmts = xcalloc(p->n_fmts ? p->n_fmts : 1, sizeof *p->fmts);
    memcpy(p->fmts, m->u.bind.fmts, p->n_fmts * sizeof *p->fmts);
    p->n_rfmts = m->u.bind.n_rfmts;
    p->rfmts = xcalloc(p->n_rfmts ? p->n_rfmts : 1, sizeof *p->rfmts);
    memcpy(p->rfmts, m->u.bind.rfmts, p->n_rfmts * sizeof *p->rfmts);
    p->next = c->portals;
    c->portals = p;
    size_t mk = pgwire_begin(&c->out, '2');
    pgwire_end(&c->out, mk);
    return 0;
}

static void describe_intercepted(struct conn *c, const char *sql)
{
    const char *tag, *sn = NULL, *sv;
    if (intercept(c, sql, &tag, &sn, &sv) == IC_ROWS) {
        send_text_row_description(c, sn);
    } else {
        size_t m = pgwire_begin(&c->out, 'n');
        pgwire_end(&c->out, m);
    }
}

static int ext_describe(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
{
    const char *name = m->u.describe.name;
    if (m->u.describe.kind == 'S') {
        struct prep *pr = find_prep(c, name);
        if (!pr)
            return loch_errf(err, LOCH_ENOENT, "prepared statement \"%s\" does not exist", name);
        size_t np = pr->st ? engine_stmt_nparams(pr->st) : 0;
        size_t mk = pgwire_begin(&c->out, 't');
        pgwire_put16(&c->out, (uint16_t)np);
        for (size_t i = 0; i < np; i++) {
            uint32_t oid = i < pr->n_types && pr->types[i] ? pr->types[i]
                                                           : pgwire_param_oid(engine_stmt_param_type(pr->st, i));
            pgwire_put32(&c->out, oid);
        }
        pgwire_end(&c->out, mk);
        if (pr->st && engine_stmt_returns_rows(pr->st))
            send_row_description(c, NULL, pr->st, NULL, 0);
        else if (pr->empty)
            send_empty_description(c, pr->sql);
        else
            describe_intercepted(c, pr->sql);
        return 0;
    }
    struct portal *p = find_portal(c, name);
    if (!p)
        return loch_errf(err, LOCH_ENOENT, "portal \"%s\" does not exist", name);
    if (p->prep->st) {
        /* The row types can depend on the parameters (DuckDB resolves them when bound):
         * start the portal and describe the stream itself. */
        int rc = p->done ? 0 : portal_start(c, p, err);
        if (rc)
            return rc;
        if (p->stream && engine_stream_ncols(p->stream) > 0) {
            send_row_description(c, p->stream, NULL, p->rfmts, p->n_rfmts);
            return 0;
        }
        if (!p->stream && engine_stmt_returns_rows(p->prep->st)) {
            send_row_description(c, NULL, p->prep->st, p->rfmts, p->n_rfmts);
            return 0;
        }
    }
    if (p->prep->empty)
        send_empty_description(c, p->prep->sql);
    else
        describe_intercepted(c, p->prep->sql);
    return 0;
}

static int ext_execute(struct conn *c, const struct pgwire_msg *m, struct loch_err *err, const char **sql_out)
{
    struct portal *p = find_portal(c, m->u.execute.portal);
    if (!p)
        return loch_errf(err, LOCH_ENOENT, "portal \"%s\" does not exist", m->u.execute.portal);
    *sql_out = p->prep->sql;
    double t0 = util_mono_s();
    uint64_t rows = 0;
    int64_t scanned = 0;
    int rc = 0;
    const char *tag = NULL, *sn = NULL, *sv = NULL;
    enum intercept ic = p->prep->st ? IC_NONE : intercept(c, p->prep->sql, &tag, &sn, &sv);
    if (p->prep->empty) {
        pgwire_complete(&c->out, "SELECT 0");
        return 0;
    }
    if (!*p->prep->sql) {
        size_t mk = pgwire_begin(&c->out, 'I');
        pgwire_end(&c->out, mk);
        return 0;
    }
    if (ic == IC_DONE) {
        pgwire_complete(&c->out, tag);
    } else if (ic == IC_ROWS) {
        send_one_text_row(c, sn, sv, false);
        rows = 1;
    } else if (p->prep->st) {
        rc = execute_portal(c, p, m->u.execute.max_rows, false, &rows, err);
        scanned = p->prep->scanned;
    } else {
        rc = run_command(c, p->prep->sql, false, &rows, err);
        scanned = query_scanned_bytes(c->qs);
    }
    if (!p->stream) /* finished (not suspended): log once per execution */
        log_query(c, p->prep->sql, t0, p->rows_sent ? p->rows_sent : rows, scanned, rc ? err : NULL);
    return rc;
}

static int ext_close(struct conn *c, const struct pgwire_msg *m)
{
    if (m->u.describe.kind == 'S')
        drop_prep(c, m->u.describe.name);
    else
        drop_portal(c, m->u.describe.name);
    size_t mk = pgwire_begin(&c->out, '3');
    pgwire_end(&c->out, mk);
    return 0;
}

/* ---------------------------------------------------------------- slots and lakes */

/* A pooled catalog + store for a session that has logged in (see struct lake). */
static int lake_take(struct pgwire_server *srv, struct lake **out, struct loch_err *err)
{
    pthread_mutex_lock(&srv->mu);
    struct lake *l = srv->idle;
    if (l)
        srv->idle = l->next;
    pthread_mutex_unlock(&srv->mu);
    if (!l) {
        l = xcalloc(1, sizeof *l);
        if (catalog_open(srv->o.catalog_path, false, &l->cat, err) != 0 ||
            store_open(srv->o.cfg->warehouse, &l->st, err) != 0) {
            catalog_close(l->cat);
            free(l);
            return err->code;
        }
    }
    *out = l;
    return 0;
}

static void lake_give(struct pgwire_server *srv, struct lake *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&srv->mu);
    l->next = srv->idle;
    srv->idle = l;
    pthread_mutex_unlock(&srv->mu);
}

/* After authentication: the connection takes a slot of max_connections, the last
 * reserved_admin_connections of them only for administrators (PostgreSQL's
 * superuser_reserved_connections). Connections not logged in hold no slot: they are
 * bounded per address and evicted oldest-first when the server is full, so they cannot
 * lock anyone out. Returns -1 when refused (answered). */
static int claim_slot(struct conn *c)
{
    struct pgwire_server *srv = c->srv;
    const struct loch_config *cfg = srv->o.cfg;
    size_t in = 0;
    pthread_mutex_lock(&srv->mu);
    for (struct conn *x = srv->conns; x; x = x->next)
        in += x->logged_in;
    size_t cap = (size_t)cfg->max_connections - (c->admin ? 0 : (size_t)cfg->reserved_admin_connections);
    bool ok = !c->evicted && in < cap;
    if (ok)
        c->logged_in = true;
    pthread_mutex_unlock(&srv->mu);
    if (ok)
        return 0;
    if (c->evicted)
        return -1; /* its socket is gone */
    if (!c->admin && in < (size_t)cfg->max_connections) {
        pgwire_error(&c->out, false, "FATAL", loch_err_sqlstate(LOCH_ETOOMANY), "remaining connection slots are reserved for administrators",
                     NULL, "server.reserved_admin_connections of server.max_connections are kept for administrators",
                     0);
        flush_out(c);
    } else {
        send_fatal(c, loch_err_sqlstate(LOCH_ETOOMANY), "sorry, too many clients already");
    }
    log_warn("pgwire: refused user=%s from=%s: %zu sessions (max_connections %lld, %lld reserved for administrators)",
             c->user, c->peer, in, (long long)cfg->max_connections, (long long)cfg->reserved_admin_connections);
    return -1;
}

/* Under srv->mu: ends a connection that has not logged in (its thread wakes on the
 * shut-down socket and exits). */
static void evict(struct pgwire_server *srv, struct conn *x)
{
    x->evicted = true;
    srv->n_evicted++;
    shutdown(x->fd, SHUT_RDWR);
}

/* ---------------------------------------------------------------- startup */

/* Reads one frontend message of the normal phase into *body (malloc'd). Returns 1 on a
 * clean EOF, -1 on a protocol violation (already answered), 0 with the message. */
static int read_message(struct conn *c, char *type, uint8_t **body, size_t *len)
{
    uint8_t hdr[5];
    if (io_read(c, hdr, 5) != 0)
        return 1;
    uint32_t l = be32(hdr + 1);
    /* before login, only small SASL messages: a stranger cannot make us allocate much */
    uint32_t limit = c->qs ? PGWIRE_MAX_MESSAGE : PGWIRE_MAX_STARTUP;
    if (l < 4 || l - 4 > limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid message length %u for message type 0x%02x (limit %u bytes)", l, hdr[0],
                 limit);
        send_fatal(c, "08P01", msg);
        return -1;
    }
    *type = (char)hdr[0];
    *len = l - 4;
    *body = xmalloc(*len + 1);
    if (*len && io_read(c, *body, *len) != 0) {
        free(*body);
        *body = NULL;
        return 1;
    }
    (*body)[*len] = 0;
    return 0;
}

static void handle_cancel(struct pgwire_server *srv, int32_t pid, int32_t key)
{
    pthread_mutex_lock(&srv->mu);
    for (struct conn *x = srv->conns; x; x = x->next)
        if (x->pid == pid && x->key == key && x->running && x->qs) {
            x->cancel_reason = 1;
            query_interrupt(x->qs);
            log_info("pgwire: cancel request for pid=%d", pid);
        }
    pthread_mutex_unlock(&srv->mu);
}

/* Holds the login while the user or the address backs off after failed logins (before
 * any credential is checked), in this connection's own thread; the login deadline and
 * server stop still end it. Returns -1 when the connection ended meanwhile. */
static int backoff_pause(struct conn *c, char (*keys)[160])
{
    snprintf(keys[0], 160, "user:%s", c->user);
    snprintf(keys[1], 160, "addr:%s", c->host);
    int64_t wu = backoff_wait_ms(c->srv->bo, keys[0]), wa = backoff_wait_ms(c->srv->bo, keys[1]);
    int64_t w = wu > wa ? wu : wa;
    if (!w)
        return 0;
    log_info("pgwire: login held %lld ms after failed logins (%s) user=%s from=%s", (long long)w,
             wu >= wa ? "user" : "address", c->user, c->peer);
    int64_t until = util_now_us() + w * 1000;
    for (;;) {
        pthread_mutex_lock(&c->srv->mu);
        bool gone = c->evicted || atomic_load(&c->srv->stopping);
        pthread_mutex_unlock(&c->srv->mu);
        int64_t left = until - util_now_us();
        if (gone)
            return -1;
        if (left <= 0)
            return 0;
        struct timespec ts = {0, (left > 50000 ? 50000 : left) * 1000};
        nanosleep(&ts, NULL);
    }
}

/* SASL SCRAM-SHA-256 exchange (protocol docs 55.3.1). 0 when authenticated. */
static int authenticate(struct conn *c)
{
    char keys[2][160];
    if (backoff_pause(c, keys))
        return -1;
    static const char mech[] = "SCRAM-SHA-256\0";
    pgwire_auth(&c->out, 10, mech, sizeof mech);
    if (flush_out(c))
        return -1;
    struct loch_err err;
    loch_err_clear(&err);
    struct scram_verifier v;
    pthread_mutex_lock(&c->srv->auth_mu);
    bool known = principal_scram_lookup(c->srv->auth_cat, c->user, &v, &err) == 0;
    pthread_mutex_unlock(&c->srv->auth_mu);
    if (!known)
        log_info("pgwire: login refused for %s: %s", c->peer, err.msg);
    char type;
    uint8_t *body = NULL;
    size_t len;
    int rc = read_message(c, &type, &body, &len);
    if (rc)
        return -1;
    struct scram_state st = {0};
    const char *m;
    const uint8_t *data;
    size_t dl;
    struct buf sf = {0};
    if (type != 'p' || pgwire_parse_sasl_initial(body, len, &m, &data, &dl, &err) != 0 ||
        strcmp(m, "SCRAM-SHA-256") != 0 ||
        scram_server_first(&st, known ? &v : NULL, c->user, (const char *)data, dl, &sf, &err) != 0) {
        free(body);
        send_fatal(c, "08P01", type != 'p' ? "expected a SASL response" : err.msg[0] ? err.msg
                                                                              : "unsupported SASL mechanism");
        scram_state_free(&st);
        buf_free(&sf);
        return -1;
    }
    free(body);
    pgwire_auth(&c->out, 11, sf.data, sf.len);
    buf_free(&sf);
    if (flush_out(c) || read_message(c, &type, &body, &len) != 0) {
        scram_state_free(&st);
        return -1;
    }
    struct buf fin = {0};
    rc = type == 'p' ? scram_server_final(&st, (const char *)body, len, &fin, &err) : LOCH_EPROTO;
    free(body);
    scram_state_free(&st);
    if (rc) {
        char msg[256];
        /* the same words whether the user exists or not */
        snprintf(msg, sizeof msg, "password authentication failed for user \"%s\"", c->user);
        send_fatal(c, rc == LOCH_EAUTH ? "28P01" : "08P01", rc == LOCH_EAUTH ? msg : err.msg);
        buf_free(&fin);
        log_info("pgwire: authentication failed user=%s from=%s", c->user, c->peer);
        metrics_auth_failure(METRICS_PGWIRE);
        if (rc == LOCH_EAUTH) {
            backoff_fail(c->srv->bo, keys[0]);
            backoff_fail(c->srv->bo, keys[1]);
        }
        return -1;
    }
    backoff_ok(c->srv->bo, keys[0]);
    backoff_ok(c->srv->bo, keys[1]);
    pgwire_auth(&c->out, 12, fin.data, fin.len);
    buf_free(&fin);
    pgwire_auth(&c->out, 0, NULL, 0);
    return 0;
}

/* Startup phase: SSL/GSS requests, cancel, the v3 startup packet, authentication. */
static int startup(struct conn *c)
{
    struct loch_err err;
    loch_err_clear(&err);
    for (;;) {
        uint8_t hdr[4];
        if (io_read(c, hdr, 4) != 0)
            return -1;
        uint32_t l = be32(hdr);
        if (l < 8 || l > PGWIRE_MAX_STARTUP) {
            send_fatal(c, "08P01", "invalid length of startup packet");
            return -1;
        }
        uint8_t *body = xmalloc(l - 4);
        if (io_read(c, body, l - 4) != 0) {
            free(body);
            return -1;
        }
        struct pgwire_startup s;
        int rc = pgwire_parse_startup(body, l - 4, c->msg_arena, &s, &err);
        if (rc) {
            send_fatal(c, "08P01", err.msg);
            free(body);
            return -1;
        }
        if (s.code == PGWIRE_SSL_REQUEST) {
            free(body);
            if (c->ssl || !c->srv->tls) {
                if (io_write(c, "N", 1))
                    return -1;
                continue;
            }
            if (io_write(c, "S", 1))
                return -1;
            c->ssl = SSL_new(c->srv->tls);
            SSL_set_fd(c->ssl, c->fd);
            if (SSL_accept(c->ssl) != 1) {
                unsigned long e = ERR_get_error();
                char eb[256];
                ERR_error_string_n(e, eb, sizeof eb);
                log_info("pgwire: TLS handshake with %s failed: %s", c->peer, eb);
                return -1;
            }
            continue;
        }
        if (s.code == PGWIRE_GSSENC_REQUEST) {
            free(body);
            if (io_write(c, "N", 1))
                return -1;
            continue;
        }
        if (s.code == PGWIRE_CANCEL_REQUEST) {
            free(body);
            handle_cancel(c->srv, s.cancel_pid, s.cancel_key);
            return -1; /* the cancel connection just closes */
        }
        if (c->srv->tls_required && !c->ssl) {
            free(body);
            send_fatal(c, "28000", "this server requires TLS (server.tls.mode is \"required\"); connect with "
                                   "sslmode=require");
            return -1;
        }
        const char *user = pgwire_startup_get(&s, "user");
        const char *db = pgwire_startup_get(&s, "database");
        const char *app = pgwire_startup_get(&s, "application_name");
        if (!user || !*user) {
            free(body);
            send_fatal(c, "28000", "no user name in the startup packet");
            return -1;
        }
        c->user = xstrdup(user);
        c->database = xstrdup(db && *db ? db : user);
        if (app)
            c->app_name = xstrdup(app);
        free(body);
        break;
    }
    if (authenticate(c) != 0)
        return -1;
    struct loch_err e2;
    loch_err_clear(&e2);
    if (lake_take(c->srv, &c->lake, &e2) != 0) {
        log_error("pgwire: cannot open the lake for %s: %s", c->peer, e2.msg);
        send_fatal(c, "58030", "the server cannot open its catalog");
        return -1;
    }
    c->cat = c->lake->cat;
    c->st = c->lake->st;
    c->admin = principal_is_admin(c->cat, c->user);
    if (claim_slot(c) != 0)
        return -1;
    /* The user's limits and resource group, fixed for the session (a role change applies
     * from the next login). */
    struct query_env env = {c->cat, c->st, NULL, c->srv->o.cfg->state_dir, NULL};
    const struct pgwire_options *o = &c->srv->o;
    if (limits_resolve(o->cfg, c->cat, c->user, o->eng, o->pool, &c->limits, &env.eng, &env.restricted, &e2) != 0 ||
        query_session_open_as(&env, c->user, &c->qs, &e2) != 0) {
        send_fatal(c, loch_err_sqlstate(e2.code), e2.msg);
        return -1;
    }
    static const char *const ps[][2] = {
        {"server_version", SERVER_VERSION}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"}, {"integer_datetimes", "on"},
        {"standard_conforming_strings", "on"}, {"IntervalStyle", "postgres"},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        pgwire_param_status(&c->out, ps[i][0], ps[i][1]);
    pgwire_param_status(&c->out, "is_superuser", c->admin ? "on" : "off");
    pgwire_param_status(&c->out, "session_authorization", c->user);
    pgwire_param_status(&c->out, "application_name", c->app_name ? c->app_name : "");
    pgwire_backend_key(&c->out, c->pid, c->key);
    pgwire_ready(&c->out, 'I');
    log_info("pgwire: connection authorized user=%s database=%s pid=%d from=%s tls=%s admin=%s", c->user,
             c->database, c->pid, c->peer, c->ssl ? "on" : "off", c->admin ? "yes" : "no");
    return flush_out(c);
}

/* ---------------------------------------------------------------- connection thread */

static void serve_messages(struct conn *c)
{
    for (;;) {
        arena_reset(c->msg_arena);
        char type;
        uint8_t *body = NULL;
        size_t len = 0;
        if (read_message(c, &type, &body, &len) != 0)
            return;
        struct pgwire_msg m;
        struct loch_err err;
        loch_err_clear(&err);
        if (pgwire_parse(type, body, len, c->msg_arena, &m, &err) != 0) {
            /* a malformed or unknown message: the stream cannot be trusted any more */
            send_fatal(c, "08P01", err.msg);
            log_info("pgwire: protocol violation from %s user=%s: %s", c->peer, c->user, err.msg);
            free(body);
            return;
        }
        if (type == 'X') {
            free(body);
            return;
        }
        if (c->ext_skip && type != 'S') {
            free(body);
            continue;
        }
        int rc = 0;
        const char *sql = NULL;
        switch (type) {
        case 'Q':
            simple_query(c, m.u.query.sql);
            rc = flush_out(c);
            free(body);
            if (rc)
                return;
            continue;
        case 'P': rc = ext_parse(c, &m, &err); sql = m.u.parse.sql; break;
        case 'B': rc = ext_bind(c, &m, &err); break;
        case 'D': rc = ext_describe(c, &m, &err); break;
        case 'E': rc = ext_execute(c, &m, &err, &sql); break;
        case 'C': rc = ext_close(c, &m); break;
        case 'H': rc = 0; break;
        case 'S':
            c->ext_skip = false;
            drop_portal(c, ""); /* the unnamed portal ends with the implicit transaction */
            pgwire_ready(&c->out, c->txn);
            break;
        case 'p':
            send_fatal(c, "08P01", "unexpected password message");
            free(body);
            return;
        default: /* 'd', 'c', 'f': COPY data without a COPY */
            rc = 0;
            break;
        }
        if (rc) {
            if (type == 'P')
                log_query(c, sql ? sql : "", util_mono_s(), 0, c->qs ? query_scanned_bytes(c->qs) : 0, &err);
            send_error(c, &err, (type == 'P' || type == 'E') ? sql : NULL, 0);
            c->ext_skip = true;
            if (c->txn == 'T')
                c->txn = 'E';
        }
        free(body);
        if ((type == 'S' || type == 'H' || c->out.len >= OUT_FLUSH_BYTES) && flush_out(c) != 0)
            return;
    }
}

static void conn_free(struct conn *c)
{
    while (c->portals)
        drop_portal(c, c->portals->name);
    while (c->preps)
        drop_prep(c, c->preps->name);
    query_session_close(c->qs);
    lake_give(c->srv, c->lake);
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    buf_free(&c->out);
    arena_free(c->msg_arena);
    free(c->user);
    free(c->database);
    free(c->app_name);
    free(c);
}

/* Takes c off the server's list of connections (CancelRequest and stop look there). */
static void conn_unlink(struct pgwire_server *srv, struct conn *c)
{
    pthread_mutex_lock(&srv->mu);
    for (struct conn **pp = &srv->conns; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    srv->n_conns--;
    if (c->evicted)
        srv->n_evicted--;
    pthread_mutex_unlock(&srv->mu);
}

static void *conn_main(void *arg)
{
    struct conn *c = arg;
    struct pgwire_server *srv = c->srv;
    if (startup(c) == 0) {
        metrics_connection_open(METRICS_PGWIRE);
        serve_messages(c);
        metrics_connection_close(METRICS_PGWIRE);
        flush_out(c);
        log_info("pgwire: disconnection user=%s pid=%d from=%s duration_s=%.3f queries=%llu", c->user, c->pid,
                 c->peer, util_mono_s() - c->opened, (unsigned long long)c->n_queries);
    }
    /* the session goes after the unlink: a CancelRequest can no longer reach it */
    conn_unlink(srv, c);
    conn_free(c);
    pthread_mutex_lock(&srv->mu);
    pthread_cond_broadcast(&srv->gone);
    pthread_mutex_unlock(&srv->mu);
    return NULL;
}

/* ---------------------------------------------------------------- listener */

/* Whether a new connection from host may start its login: NULL when it may (an older
 * connection that has not logged in may have been evicted to make room), else why not. */
static const char *admit(struct pgwire_server *srv, const char *host)
{
    const struct loch_config *cfg = srv->o.cfg;
    const char *why = NULL;
    pthread_mutex_lock(&srv->mu);
    size_t from_host = 0;
    struct conn *oldest = NULL; /* the list is newest first */
    for (struct conn *x = srv->conns; x; x = x->next) {
        if (x->logged_in || x->evicted)
            continue;
        from_host += !strcmp(x->host, host);
        oldest = x;
    }
    if (from_host >= (size_t)cfg->startup_per_address)
        why = "too many connections from this address that have not logged in (server.startup_connections_per_address)";
    else if (srv->n_conns >= (size_t)cfg->max_connections + EVICT_SLACK)
        why = "sorry, too many clients already";
    else if (srv->n_conns - srv->n_evicted >= (size_t)cfg->max_connections) {
        if (oldest)
            evict(srv, oldest);
        else
            why = "sorry, too many clients already";
    }
    pthread_mutex_unlock(&srv->mu);
    return why;
}

static void *accept_main(void *arg)
{
    struct pgwire_server *srv = arg;
    for (;;) {
        struct pollfd pf[2] = {{srv->lfd, POLLIN, 0}, {srv->wake[0], POLLIN, 0}};
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents || atomic_load(&srv->stopping))
            break;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept(srv->lfd, (struct sockaddr *)&sa, &sl);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char host[64] = "?", port[16] = "?";
        getnameinfo((struct sockaddr *)&sa, sl, host, sizeof host, port, sizeof port, NI_NUMERICHOST | NI_NUMERICSERV);
        const char *why = admit(srv, host);
        if (why) {
            struct buf b = {0};
            pgwire_error(&b, false, "FATAL", loch_err_sqlstate(LOCH_ETOOMANY), why, NULL, NULL, 0);
            (void)!send(fd, b.data, b.len, MSG_NOSIGNAL);
            buf_free(&b);
            close(fd);
            log_warn("pgwire: refused a connection from %s: %s", host, why);
            continue;
        }
        struct conn *c = xcalloc(1, sizeof *c);
        c->srv = srv;
        c->fd = fd;
        c->txn = 'I';
        c->msg_arena = arena_new();
        c->opened = util_mono_s();
        c->login_deadline_us = util_now_us() + srv->o.cfg->login_timeout_ms * 1000;
        snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
        snprintf(c->host, sizeof c->host, "%s", host);
        RAND_bytes((unsigned char *)&c->key, sizeof c->key);
        pthread_mutex_lock(&srv->mu);
        c->pid = ++srv->next_pid;
        c->next = srv->conns;
        srv->conns = c;
        srv->n_conns++;
        pthread_mutex_unlock(&srv->mu);
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 1 << 20);
        pthread_t t;
        if (pthread_create(&t, &at, conn_main, c) != 0) {
            log_error("pgwire: cannot start a thread for %s", c->peer);
            conn_unlink(srv, c);
            conn_free(c);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

/* Interrupts queries past their deadline (the user's time limit, limits.h) and ends logins
 * past server.login_timeout_ms, every 20 ms. */
static void *reaper_main(void *arg)
{
    struct pgwire_server *srv = arg;
    while (!atomic_load(&srv->stopping)) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int64_t now = util_now_us();
        pthread_mutex_lock(&srv->mu);
        for (struct conn *c = srv->conns; c; c = c->next) {
            if (c->running && c->deadline_us && now > c->deadline_us && !c->cancel_reason && c->qs) {
                c->cancel_reason = 2;
                query_interrupt(c->qs);
            }
            /* One deadline for the whole login, however the client trickles its bytes. */
            if (!c->logged_in && !c->evicted && now > c->login_deadline_us) {
                log_info("pgwire: login deadline passed for %s (server.login_timeout_ms %lld)", c->peer,
                         (long long)srv->o.cfg->login_timeout_ms);
                evict(srv, c);
            }
        }
        pthread_mutex_unlock(&srv->mu);
    }
    return NULL;
}

static int listen_on(const char *addr, int *fd_out, int *port_out, struct loch_err *err)
{
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return loch_errf(err, LOCH_ECONFIG, "server.sql_listen \"%s\" is not HOST:PORT", addr);
    size_t hl = (size_t)(colon - addr);
    if (hl >= sizeof host)
        return loch_errf(err, LOCH_ECONFIG, "server.sql_listen \"%s\": host too long", addr);
    memcpy(host, addr, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int g = getaddrinfo(*host ? host : NULL, colon + 1, &hints, &res);
    if (g != 0)
        return loch_errf(err, LOCH_ECONFIG, "server.sql_listen \"%s\": %s", addr, gai_strerror(g));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        loch_errf(err, LOCH_EIO, "cannot listen on %s: %s", addr, strerror(e));
        return loch_err_hint(err, "is another server using the port? change server.sql_listen in the config");
    }
    freeaddrinfo(res);
    struct sockaddr_storage sa;
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    *port_out = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                               : ((struct sockaddr_in *)&sa)->sin_port);
    *fd_out = fd;
    return 0;
}

static int tls_setup(struct pgwire_server *srv, struct loch_err *err)
{
    const struct loch_config *cfg = srv->o.cfg;
    if (!cfg->tls_mode || !strcmp(cfg->tls_mode, "off"))
        return 0;
    srv->tls_required = !strcmp(cfg->tls_mode, "required");
    srv->tls = SSL_CTX_new(TLS_server_method());
    if (!srv->tls)
        return loch_errf(err, LOCH_EINTERNAL, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(srv->tls, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(srv->tls, cfg->tls_cert) != 1) {
        loch_errf(err, LOCH_ECONFIG, "cannot load the TLS certificate %s", cfg->tls_cert);
        return loch_err_hint(err, "server.tls.cert must be a PEM certificate (chain)");
    }
    if (SSL_CTX_use_PrivateKey_file(srv->tls, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(srv->tls) != 1) {
        loch_errf(err, LOCH_ECONFIG, "cannot load the TLS key %s (or it does not match the certificate)",
                  cfg->tls_key);
        return loch_err_hint(err, "server.tls.key must be the PEM private key of server.tls.cert");
    }
    return 0;
}

int pgwire_server_start(const struct pgwire_options *o, struct pgwire_server **out, struct loch_err *err)
{
    struct pgwire_server *srv = xcalloc(1, sizeof *srv);
    srv->o = *o;
    srv->lfd = -1;
    srv->wake[0] = srv->wake[1] = -1;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_mutex_init(&srv->auth_mu, NULL);
    pthread_cond_init(&srv->gone, NULL);
    RAND_bytes((unsigned char *)&srv->next_pid, sizeof srv->next_pid);
    srv->next_pid = (srv->next_pid & 0x3fffffff) + 1000;
    srv->bo = backoff_new(o->cfg->login_backoff_ms, o->cfg->login_backoff_max_ms);
    int rc = catalog_open(o->catalog_path, false, &srv->auth_cat, err);
    if (!rc)
        rc = tls_setup(srv, err);
    if (!rc)
        rc = listen_on(o->cfg->sql_listen, &srv->lfd, &srv->port, err);
    if (!rc && pipe(srv->wake) != 0)
        rc = loch_errf(err, LOCH_EIO, "cannot create a pipe: %s", strerror(errno));
    if (!rc && pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0)
        rc = loch_errf(err, LOCH_EIO, "cannot start the accept thread");
    if (!rc && pthread_create(&srv->reaper_thread, NULL, reaper_main, srv) != 0) {
        atomic_store(&srv->stopping, true);
        (void)!write(srv->wake[1], "x", 1);
        pthread_join(srv->accept_thread, NULL);
        rc = loch_errf(err, LOCH_EIO, "cannot start the timeout thread");
    }
    if (rc) {
        if (srv->lfd >= 0)
            close(srv->lfd);
        if (srv->wake[0] >= 0) {
            close(srv->wake[0]);
            close(srv->wake[1]);
        }
        SSL_CTX_free(srv->tls);
        catalog_close(srv->auth_cat);
        backoff_free(srv->bo);
        pthread_mutex_destroy(&srv->mu);
        pthread_mutex_destroy(&srv->auth_mu);
        pthread_cond_destroy(&srv->gone);
        free(srv);
        return rc;
    }
    log_info("pgwire: listening on %s (port %d)", o->cfg->sql_listen, srv->port);
    *out = srv;
    return 0;
}

int pgwire_server_port(const struct pgwire_server *s) { return s->port; }

void pgwire_server_stop(struct pgwire_server *srv)
{
    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    (void)!write(srv->wake[1], "x", 1);
    pthread_join(srv->accept_thread, NULL);
    pthread_join(srv->reaper_thread, NULL);
    close(srv->lfd);
    /* Wake every connection: interrupt its query, end its blocking reads and writes. */
    pthread_mutex_lock(&srv->mu);
    for (struct conn *c = srv->conns; c; c = c->next) {
        if (c->running && c->qs)
            query_interrupt(c->qs);
        shutdown(c->fd, SHUT_RDWR);
    }
    while (srv->n_conns > 0)
        pthread_cond_wait(&srv->gone, &srv->mu);
    pthread_mutex_unlock(&srv->mu);
    close(srv->wake[0]);
    close(srv->wake[1]);
    SSL_CTX_free(srv->tls);
    for (struct lake *l = srv->idle, *next; l; l = next) {
        next = l->next;
        store_close(l->st);
        catalog_close(l->cat);
        free(l);
    }
    catalog_close(srv->auth_cat);
    backoff_free(srv->bo);
    pthread_mutex_destroy(&srv->mu);
    pthread_mutex_destroy(&srv->auth_mu);
    pthread_cond_destroy(&srv->gone);
    free(srv);
}
