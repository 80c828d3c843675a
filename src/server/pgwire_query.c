/* pgwire_query.c: running statements for a pgwire connection: error responses, query
 * accounting and time limits, rows streamed as DataRows, and the simple query protocol.
 * Not for the extended protocol's bookkeeping (pgwire_ext.c) nor SQL semantics (query/). */
#include "server/pgwire_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "server/history.h"
#include "server/metrics.h"

/* ---------------------------------------------------------------- errors */

/* The SQLSTATE for an error: loch's one table (err.h). */
static const char *pgwire_sqlstate_of(const struct loch_err *e) { return loch_err_sqlstate(e->code); }

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

void pgwire_send_error(struct conn *c, const struct loch_err *e, const char *stmt, size_t stmt_off)
{
    const char *state = pgwire_sqlstate_of(e);
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

void pgwire_send_fatal(struct conn *c, int code, const char *msg)
{
    pgwire_error(&c->out, false, "FATAL", loch_err_sqlstate(code), msg, NULL, NULL, 0);
    pgwire_flush(c);
}
/* ---------------------------------------------------------------- query accounting */

/* The user's time limit of c's statement passed (on the deadline thread): interrupt it. */
static void stmt_expired(void *arg)
{
    struct conn *c = arg;
    pthread_mutex_lock(&c->srv->mu);
    if (c->running && !c->cancel_reason && c->qs) {
        c->cancel_reason = 2;
        query_interrupt(c->qs);
    }
    pthread_mutex_unlock(&c->srv->mu);
}

/* A statement of c starts running (executing, or streaming rows): CancelRequest may
 * interrupt it, its time limit (limits.h) is armed, loch_queries_running counts it. */
static void stmt_begin(struct conn *c)
{
    int64_t to = c->limits.timeout_ms;
    pthread_mutex_lock(&c->srv->mu);
    c->running = true;
    c->cancel_reason = 0;
    pthread_mutex_unlock(&c->srv->mu);
    metrics_query_running(METRICS_PGWIRE, true);
    if (to > 0)
        deadline_arm(c->srv->dl, &c->stmt_dl, to, stmt_expired, c);
}

/* Ends the running statement; returns why it was interrupted (0, 1 user, 2 timeout). */
static int stmt_end(struct conn *c)
{
    deadline_disarm(c->srv->dl, &c->stmt_dl);
    metrics_query_running(METRICS_PGWIRE, false);
    pthread_mutex_lock(&c->srv->mu);
    c->running = false;
    int why = c->cancel_reason;
    c->cancel_reason = 0;
    pthread_mutex_unlock(&c->srv->mu);
    return why;
}

/* The statement text as it may be logged: passwords redacted by the one rule of logs and
 * history (query_redact), on one line, at most 200 characters. */
static void log_sql(char *out, size_t cap, const char *sql)
{
    char *red = query_redact(sql);
    size_t n = 0;
    for (const char *p = red; *p && n + 1 < cap && n < 200; p++)
        out[n++] = (*p == '\n' || *p == '\r' || *p == '\t') ? ' ' : *p;
    out[n] = '\0';
    free(red);
}

void pgwire_log_query(struct conn *c, const char *sql, double t0, uint64_t rows, int64_t scanned,
                      const struct loch_err *e)
{
    char s[256];
    log_sql(s, sizeof s, sql);
    double secs = util_mono_s() - t0;
    log_info("pgwire: query user=%s pid=%d duration_ms=%.1f rows=%llu status=%s sql=\"%s\"", c->user, c->pid,
             secs * 1000.0, (unsigned long long)rows, e ? pgwire_sqlstate_of(e) : "ok", s);
    metrics_query(METRICS_PGWIRE, e == NULL, rows, secs);
    c->n_queries++;
    /* The user's query history (GET /v1/queries); history_record redacts passwords. */
    struct history_entry h = {.user = c->user, .protocol = "pgwire", .sql = sql,
                              .started_ms = util_now_ms() - (int64_t)(secs * 1000.0),
                              .duration_ms = (int64_t)(secs * 1000.0), .rows = (int64_t)rows, .bytes_scanned = scanned,
                              .status = e ? "error" : "ok", .sqlstate = e ? pgwire_sqlstate_of(e) : NULL,
                              .error = e ? e->msg : NULL};
    struct loch_err herr;
    if (c->cat && c->user && history_record(c->cat, &h, &herr) != 0)
        log_warn("pgwire: cannot record query history: %s", herr.msg);
}

/* ---------------------------------------------------------------- result rows */

void pgwire_send_row_description(struct conn *c, struct engine_stream *s, struct engine_stmt *st,
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
        if (c->out.len >= OUT_FLUSH_BYTES && pgwire_flush(c) != 0)
            return loch_errf(err, LOCH_EIO, "client connection lost while sending rows");
    }
}

void pgwire_portal_close(struct conn *c, struct portal *p)
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
void pgwire_free_connection(struct conn *c)
{
    struct portal *p = c->streaming;
    if (!p)
        return;
    c->streaming = NULL;
    struct loch_err err;
    loch_err_clear(&err);
    if (engine_stream_buffer(p->stream, &err) != 0) {
        log_info("pgwire: suspended portal \"%s\" failed while buffered: %s", p->name, err.msg);
        pgwire_portal_close(c, p);
    }
}

/* ---------------------------------------------------------------- statements loch answers itself */

/* RowDescription of one text column called name (answers loch makes itself: SHOW, ...). */
void pgwire_send_text_row_description(struct conn *c, const char *name)
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

void pgwire_send_one_text_row(struct conn *c, const char *name, const char *value, bool describe)
{
    if (describe)
        pgwire_send_text_row_description(c, name);
    size_t m = pgwire_begin(&c->out, 'D');
    pgwire_put16(&c->out, 1);
    pgwire_put32(&c->out, (uint32_t)strlen(value));
    buf_puts(&c->out, value);
    pgwire_end(&c->out, m);
    pgwire_complete(&c->out, "SHOW");
}

void pgwire_send_empty_description(struct conn *c, const char *sql)
{
    char **names;
    size_t n = query_guess_columns(c->msg_arena, sql, &names);
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
            pgwire_send_row_description(c, tmp.stream, NULL, NULL, 0);
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
int pgwire_run_command(struct conn *c, const char *sql, bool describe, uint64_t *rows, struct loch_err *err)
{
    pgwire_free_connection(c);
    struct cmd_ctx x = {c, describe, 0, 0, err};
    stmt_begin(c);
    int rc = query_run(c->qs, sql, cmd_emit, &x, err);
    int why = stmt_end(c);
    if (rc)
        cancel_message(c, why, err);
    *rows = x.rows;
    return rc;
}

/* Binds p's parameters and starts its statement: the stream is open afterwards (rows
 * are produced as they are fetched). Idempotent while the stream is open. */
int pgwire_portal_start(struct conn *c, struct portal *p, struct loch_err *err)
{
    if (p->stream)
        return 0;
    struct engine_stmt *st = p->prep->st;
    if (c->streaming != p)
        pgwire_free_connection(c);
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
    stmt_begin(c);
    rc = engine_execute(st, &p->stream, err);
    int why = stmt_end(c);
    if (rc) {
        cancel_message(c, why, err);
        return rc;
    }
    c->streaming = p;
    return 0;
}

/* Streams up to max_rows rows of p (started on demand); sends PortalSuspended when the
 * limit stops it, CommandComplete when the result ends. */
int pgwire_execute_portal(struct conn *c, struct portal *p, int32_t max_rows, bool describe, uint64_t *rows,
                          struct loch_err *err)
{
    struct engine_stmt *st = p->prep->st;
    *rows = 0;
    if (p->done && !p->stream) { /* ran to its end before: nothing more (as PostgreSQL) */
        pgwire_complete(&c->out, "SELECT 0");
        return 0;
    }
    if (!p->stream) {
        int rc = pgwire_portal_start(c, p, err);
        if (rc)
            return rc;
        if (describe && engine_stream_ncols(p->stream) > 0)
            pgwire_send_row_description(c, p->stream, NULL, p->rfmts, p->n_rfmts);
    }
    stmt_begin(c);
    bool done = false;
    uint64_t sent = 0;
    int rc = 0;
    bool has_rows = engine_stmt_returns_rows(st) || engine_stream_ncols(p->stream) > 0;
    if (has_rows)
        rc = stream_rows(c, p, max_rows, &done, &sent, err);
    else
        done = true;
    int why = stmt_end(c);
    *rows = sent;
    if (rc) {
        cancel_message(c, why, err);
        pgwire_portal_close(c, p);
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
    pgwire_portal_close(c, p);
    p->done = true;
    return 0;
}

/* ---------------------------------------------------------------- simple query */

void pgwire_simple_query(struct conn *c, const char *sql)
{
    struct loch_err err;
    loch_err_clear(&err);
    pgwire_free_connection(c);
    struct query_piece *pieces;
    size_t n;
    if (query_split(c->msg_arena, sql, &pieces, &n, &err) != 0) {
        pgwire_send_error(c, &err, NULL, 0);
        pgwire_ready(&c->out, c->cl.txn);
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
        struct query_answer ans = {0};
        loch_err_clear(&err);
        enum query_intercept ic = query_intercept(&c->cl, c->msg_arena, text, &ans);
        if (ic == QUERY_IC_DONE) {
            pgwire_complete(&c->out, ans.tag);
        } else if (ic == QUERY_IC_ROWS) {
            pgwire_send_one_text_row(c, ans.name, ans.value, true);
            rows = 1;
        } else if (query_is_read(text) || query_is_catalog(text)) {
            struct prep pr = {0};
            bool cat = false;
            rc = query_prepare_catalog(c->qs, text, &pr.st, &cat, &err);
            if (cat && rc) { /* a catalog question beyond loch's description: no rows */
                log_debug("pgwire: catalog query answered empty: %s", err.msg);
                loch_err_clear(&err);
                rc = 0;
                pgwire_send_empty_description(c, text);
                pgwire_complete(&c->out, "SELECT 0");
            } else if (!cat) {
                rc = query_is_read(text) ? query_prepare(c->qs, text, &pr.st, &err)
                                         : pgwire_run_command(c, text, true, &rows, &err);
                scanned = query_scanned_bytes(c->qs);
                if (rc && query_is_catalog(text) && err.code != LOCH_ECANCELED) {
                    /* a non-administrator's catalog query: no rows, rather than an error
                     * psql would show for \dt (nothing in the lake is theirs to list) */
                    log_info("pgwire: catalog query of user=%s answered empty: %s", c->user, err.msg);
                    loch_err_clear(&err);
                    rc = 0;
                    pgwire_send_empty_description(c, text);
                    pgwire_complete(&c->out, "SELECT 0");
                }
            }
            if (!rc && pr.st) {
                struct portal p = {0};
                p.name = "";
                p.prep = &pr;
                rc = pgwire_execute_portal(c, &p, 0, true, &rows, &err);
                pgwire_portal_close(c, &p);
            }
            engine_stmt_free(pr.st);
        } else {
            rc = pgwire_run_command(c, text, true, &rows, &err);
            scanned = query_scanned_bytes(c->qs);
        }
        pgwire_log_query(c, text, t0, rows, scanned, rc ? &err : NULL);
        if (rc) {
            /* the statement's text lives in the arena; its offset in the message is known */
            pgwire_send_error(c, &err, sql + pieces[i].off, pieces[i].off);
            if (c->cl.txn == 'T')
                c->cl.txn = 'E';
            break;
        }
        if (c->out.len >= OUT_FLUSH_BYTES && pgwire_flush(c) != 0)
            break;
    }
    pgwire_ready(&c->out, c->cl.txn);
}

