/* http_stream.c: one read statement of POST /v1/sql streamed as DuckDB produces its rows
 * (JSON, CSV or Arrow IPC, chunk by chunk), under the user's time limit; the first chunk
 * comes before the status line so most errors are still a 4xx. Not for scripts or writes
 * (http_sql.c) nor for encoding values (encode.c). */
#include "server/http_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/util.h"
#include "server/arrow_ipc.h"
#include "server/encode.h"
#include "server/metrics.h"

struct stream {
    struct http_server *s;
    struct worker *w;
    char *user, *sql;
    enum out_format fmt;
    struct query_session *qs;
    struct engine_stmt *st;
    struct engine_stream *es;
    struct engine_chunk *ch; /* current chunk; NULL at the end */
    size_t row;              /* next row of ch */
    struct arrow_ipc *ipc;   /* Arrow: the IPC writer, appending to out */
    size_t n_cols;
    struct buf out, tmp;     /* bytes produced, not yet handed to MHD; scratch */
    size_t out_off;
    int phase;               /* 0 header, 1 rows, 2 done */
    bool any_row, failed;
    int64_t rows, started_ms;
    double t0;
    struct http_limit tl;    /* the user's time limit, armed while the statement runs */
    bool running;            /* counted in loch_queries_running */
    struct config_limits lim;
    int64_t scanned;
    bool accounted;          /* history recorded (at the end of the body, before the client sees it) */
    struct loch_err err;
};

/* The statement no longer runs (its body is all out, or the response ends). */
static void stream_stopped(struct stream *x)
{
    if (x->running)
        metrics_query_running(METRICS_HTTP, false);
    x->running = false;
}

static void stream_header(struct stream *x)
{
    struct buf *b = &x->out;
    if (x->fmt == OUT_CSV) {
        for (size_t i = 0; i < x->n_cols; i++) {
            if (i)
                buf_putc(b, ',');
            encode_csv_field(b, engine_stream_col(x->es, i)->name);
        }
        buf_puts(b, "\r\n");
        return;
    }
    buf_puts(b, "{\"columns\":[");
    for (size_t i = 0; i < x->n_cols; i++) {
        const struct engine_col *c = engine_stream_col(x->es, i);
        char tn[48];
        encode_type_name(c, tn);
        json_t *col = json_pack("{s:s,s:s}", "name", c->name ? c->name : "", "type", tn);
        char *text = json_dumps(col, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(col);
        buf_printf(b, "%s%s", i ? "," : "", text ? text : "{}");
        free(text);
    }
    buf_puts(b, "],\"rows\":[");
}

static void stream_row(struct stream *x)
{
    struct buf *b = &x->out;
    if (x->fmt == OUT_JSON)
        buf_puts(b, x->any_row ? ",[" : "[");
    for (size_t i = 0; i < x->n_cols; i++) {
        const struct engine_col *c = engine_stream_col(x->es, i);
        struct engine_val v;
        bool has = engine_chunk_get(x->ch, i, x->row, &v);
        if (i)
            buf_putc(b, ',');
        if (x->fmt == OUT_CSV) {
            if (has) {
                buf_reset(&x->tmp);
                encode_value_text(&x->tmp, c, &v);
                encode_csv_field(b, x->tmp.data ? x->tmp.data : "");
            }
        } else if (!has) {
            buf_puts(b, "null");
        } else {
            encode_value_json(b, &x->tmp, c, &v);
        }
    }
    buf_puts(b, x->fmt == OUT_JSON ? "]" : "\r\n");
    x->any_row = true;
    x->rows++;
    x->row++;
}

/* The end of a JSON result: the tag, or the error that stopped the stream midway (the
 * status line has gone out by then, so the error travels in the body). */
static void stream_trailer(struct stream *x)
{
    if (x->fmt != OUT_JSON)
        return;
    buf_puts(&x->out, "],");
    if (x->failed) {
        json_t *e = http_error_json(&x->err);
        char *text = json_dumps(json_object_get(e, "error"), JSON_COMPACT | JSON_ENSURE_ASCII);
        buf_printf(&x->out, "\"error\":%s}\n", text ? text : "{}");
        free(text);
        json_decref(e);
        return;
    }
    buf_printf(&x->out, "\"tag\":\"SELECT %lld\"}\n", (long long)x->rows);
}

static void stream_timeout_error(struct stream *x, int rc)
{
    if (rc == LOCH_ECANCELED && atomic_load(&x->tl.fired))
        http_limit_error(&x->tl, &x->err);
}

/* Arrow: one record batch per chunk (DuckDB's vector size, 2048 rows), then the
 * end-of-stream marker. A failure midway leaves the stream without its end, so readers
 * report it cut short (the chunked transfer fails too) instead of reading fewer rows. */
static void stream_fill_arrow(struct stream *x, size_t max)
{
    while (x->out.len - x->out_off < max && x->phase < 2) {
        int rc;
        if (x->ch) {
            rc = arrow_ipc_chunk(x->ipc, x->ch, &x->err);
            if (!rc) {
                x->rows += (int64_t)engine_chunk_rows(x->ch);
                rc = engine_stream_next(x->es, &x->ch, &x->err);
            }
        } else {
            rc = arrow_ipc_end(x->ipc, &x->err);
            x->phase = 2;
        }
        if (rc) {
            stream_timeout_error(x, rc);
            x->failed = true;
            x->ch = NULL;
            x->phase = 2;
        }
    }
}

/* Produces up to about `max` bytes more into x->out. */
static void stream_fill(struct stream *x, size_t max)
{
    if (x->fmt == OUT_ARROW) {
        stream_fill_arrow(x, max);
        return;
    }
    while (x->out.len - x->out_off < max && x->phase < 2) {
        if (x->phase == 0) {
            stream_header(x);
            x->phase = 1;
            continue;
        }
        if (x->ch && x->row < engine_chunk_rows(x->ch)) {
            stream_row(x);
            continue;
        }
        int rc = x->ch ? engine_stream_next(x->es, &x->ch, &x->err) : 0;
        x->row = 0;
        if (rc) {
            stream_timeout_error(x, rc);
            x->failed = true;
            x->ch = NULL;
        }
        if (!x->ch) {
            stream_trailer(x);
            x->phase = 2;
        }
    }
}

/* Bytes of x->out not to send yet. An Arrow IPC stream ends with a marker, but readers
 * (pyarrow among them) also take the end of input after a whole message as the end of
 * the stream; so the last byte produced waits until the stream has ended well, and a
 * stream that fails midway always stops inside a message, which every reader reports. */
static size_t stream_held(const struct stream *x)
{
    return x->fmt == OUT_ARROW && (x->phase < 2 || x->failed) ? 1 : 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct stream *x = cls;
    size_t pending = x->out.len - x->out_off;
    if (pending <= stream_held(x) && x->phase < 2) {
        if (x->out_off) {
            memmove(x->out.data, x->out.data + x->out_off, pending);
            x->out.len = pending;
            x->out_off = 0;
        }
        stream_fill(x, max + stream_held(x));
    }
    pending = x->out.len - x->out_off;
    size_t n = pending > stream_held(x) ? pending - stream_held(x) : 0;
    if (n == 0) {
        /* The body is all out but for its end: record the query now, so a client that
         * sends its next query on seeing the end finds this one in its history first. */
        http_limit_stop(x->s, &x->tl);
        stream_stopped(x);
        if (!x->accounted)
            http_account(x->w, x->user, x->sql, x->started_ms, util_mono_s() - x->t0, x->failed ? x->err.code : 0,
                    x->rows, x->scanned, &x->err);
        x->accounted = true;
        return x->failed && x->fmt != OUT_JSON ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    }
    if (n > max)
        n = max;
    memcpy(buf, x->out.data + x->out_off, n);
    x->out_off += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *x = cls;
    stream_stopped(x);
    if (http_limit_stop(x->s, &x->tl) && !x->failed && x->phase < 2) {
        x->failed = true; /* the client went away while the limit fired */
        loch_errf(&x->err, LOCH_ECANCELED, "canceling statement due to statement timeout");
    }
    if (x->phase < 2 && !x->failed) { /* the client hung up before the end */
        x->failed = true;
        loch_errf(&x->err, LOCH_ECANCELED, "the client closed the connection before the end of the result");
    }
    arrow_ipc_free(x->ipc);
    engine_stream_free(x->es);
    engine_stmt_free(x->st);
    http_session_close(x->s, x->qs);
    if (!x->accounted)
        http_account(x->w, x->user, x->sql, x->started_ms, util_mono_s() - x->t0, x->failed ? x->err.code : 0, x->rows,
                x->scanned, &x->err);
    http_worker_give(x->s, x->w);
    buf_free(&x->out);
    buf_free(&x->tmp);
    free(x->user);
    free(x->sql);
    free(x);
}

/* Runs one read statement and answers with a streamed body. Takes w, user and sql. */
enum MHD_Result http_stream_sql(struct http_server *s, struct MHD_Connection *c, struct worker *w, char *user,
                                  char *sql, enum out_format fmt)
{
    struct stream *x = xcalloc(1, sizeof *x);
    *x = (struct stream){.s = s, .w = w, .user = user, .sql = sql, .fmt = fmt, .started_ms = util_now_ms(),
                         .t0 = util_mono_s()};
    int rc = http_session_open(s, w, user, &x->lim, &x->qs, &x->err);
    if (!rc) {
        x->tl.ms = x->lim.timeout_ms;
        x->tl.from = x->lim.timeout_from;
        http_limit_start(s, &x->tl, x->qs);
        metrics_query_running(METRICS_HTTP, true);
        x->running = true;
    }
    if (!rc) {
        rc = query_prepare(x->qs, sql, &x->st, &x->err);
        x->scanned = query_scanned_bytes(x->qs);
    }
    if (!rc)
        rc = engine_execute(x->st, &x->es, &x->err);
    if (!rc) /* the first chunk: most errors show here, before the status line goes out */
        rc = engine_stream_next(x->es, &x->ch, &x->err);
    if (!rc && fmt == OUT_ARROW) { /* the schema message too: a type Arrow cannot carry is a 4xx */
        rc = arrow_ipc_begin(&x->out, x->es, &x->ipc, &x->err);
        x->phase = 1;
    }
    if (rc) {
        stream_timeout_error(x, rc);
        x->failed = true;
        x->phase = 2;
        struct loch_err e = x->err;
        stream_free(x);
        return http_send_error(c, &e);
    }
    x->n_cols = engine_stream_ncols(x->es);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, x,
                                                                stream_free);
    if (!r) {
        stream_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, http_content_type(fmt));
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}
