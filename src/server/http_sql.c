/* http_sql.c: POST /v1/sql: the Accept header's format, the JSON body, accounting, and
 * scripts and writes run through query_run, answered with the last result (JSON, CSV or
 * Arrow IPC, rendered by encode.c / arrow_ipc.c). One read statement streams instead
 * (http_stream.c). Not for routing or authentication (http.c). */
#include "server/http_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/util.h"
#include "server/arrow_ipc.h"
#include "server/encode.h"
#include "server/history.h"
#include "server/metrics.h"

struct run {
    enum out_format fmt;
    struct arena *a;   /* lifetime: one statement's rendering */
    json_t *result;    /* JSON: the last statement's result */
    struct buf csv;    /* CSV or Arrow IPC: the last statement's result */
    int64_t rows;
    bool emit_failed;  /* Arrow: the last result could not be written */
    struct loch_err emit_err;
};

static int64_t tag_count(const char *tag)
{
    const char *sp = tag ? strrchr(tag, ' ') : NULL;
    if (!sp)
        return 0;
    char *end;
    long long v = strtoll(sp + 1, &end, 10);
    return *end ? 0 : v;
}

/* The last statement's result as an Arrow IPC stream in r->csv (no columns when it has
 * no result set). */
static int emit_arrow(struct run *r, const struct query_result *res, struct loch_err *err)
{
    buf_reset(&r->csv);
    if (!res->rows)
        return arrow_ipc_empty(&r->csv, err);
    struct engine_stream *es = engine_stream_rows(res->rows);
    struct arrow_ipc *w = NULL;
    struct engine_chunk *ch = NULL;
    int rc = arrow_ipc_begin(&r->csv, es, &w, err);
    while (!rc && !(rc = engine_stream_next(es, &ch, err)) && ch)
        rc = arrow_ipc_chunk(w, ch, err);
    if (!rc)
        rc = arrow_ipc_end(w, err);
    arrow_ipc_free(w);
    engine_stream_free(es);
    return rc;
}

static int emit(void *ctx, const struct query_result *res)
{
    struct run *r = ctx;
    arena_reset(r->a);
    r->rows = tag_count(res->tag);
    if (r->fmt == OUT_ARROW) {
        /* query_run's emit cannot fail with a message: a conversion error (not expected:
         * the columns were made Arrow-friendly by engine_prepare's rules) is kept here. */
        r->emit_failed = emit_arrow(r, res, &r->emit_err) != 0;
        return 0;
    }
    if (r->fmt == OUT_CSV) {
        buf_reset(&r->csv);
        if (res->rows)
            encode_csv_result(&r->csv, res->rows, "\r\n", r->a);
        return 0;
    }
    json_decref(r->result);
    r->result = encode_json_result(res->rows, res->tag, r->a);
    return 0;
}

/* The format one media range of an Accept header names, or -1. */
static int range_format(const char *r, size_t n)
{
    static const struct {
        const char *range;
        int fmt;
    } known[] = {
        {"application/json", OUT_JSON}, {"*/*", OUT_JSON}, {"application/*", OUT_JSON},
        {"text/csv", OUT_CSV}, {"text/*", OUT_CSV}, {ARROW_STREAM_TYPE, OUT_ARROW},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strlen(known[i].range) == n && !strncasecmp(r, known[i].range, n))
            return known[i].fmt;
    return -1;
}

/* The format the Accept header asks for (RFC 9110 section 12.5.1: of the media ranges loch
 * can produce, the one with the highest q, the first listed on a tie; q=0 means "not
 * this"); -1 after queueing a 406. */
static int pick_format(struct MHD_Connection *c, enum MHD_Result *sent)
{
    const char *acc = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    if (!acc || !acc[strspn(acc, " \t")])
        return OUT_JSON;
    int best = -1;
    double best_q = 0;
    for (const char *p = acc; *p;) {
        size_t len = strcspn(p, ","); /* one element: range *( ";" parameter ) */
        const char *next = p[len] ? p + len + 1 : p + len;
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        size_t rlen = strcspn(p, ";, \t");
        if (rlen > len)
            rlen = len;
        double q = 1;
        for (size_t i = rlen; i < len; i++) {
            if (p[i] != ';')
                continue;
            size_t j = i + 1;
            while (j < len && (p[j] == ' ' || p[j] == '\t'))
                j++;
            if (j + 1 < len && (p[j] == 'q' || p[j] == 'Q') && p[j + 1] == '=') {
                char *e;
                q = strtod(p + j + 2, &e);
                if (e == p + j + 2 || e > p + len || q < 0 || q > 1)
                    q = 0; /* a malformed weight: do not pick this range */
            }
        }
        int f = range_format(p, rlen);
        if (f >= 0 && q > best_q) {
            best = f;
            best_q = q;
        }
        p = next;
    }
    if (best < 0)
        *sent = http_fail(c, LOCH_ENOTACCEPT, "cannot produce any of the types in the Accept header",
                     "accept application/json (the default), text/csv or " ARROW_STREAM_TYPE);
    return best;
}

/* The "sql" member of a JSON body (*sql malloc'd), or *sql NULL after queueing a 400. */
static enum MHD_Result parse_body(struct MHD_Connection *c, struct req *q, char **sql)
{
    *sql = NULL;
    json_error_t jerr;
    json_t *body = json_loadb(q->body.data ? q->body.data : "", q->body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!body) {
        char msg[300];
        snprintf(msg, sizeof msg, "request body is not JSON: %s (line %d, column %d)", jerr.text, jerr.line,
                 jerr.column);
        return http_fail(c, LOCH_EINVAL, msg, "send {\"sql\": \"SELECT ...\"} with Content-Type: application/json");
    }
    json_t *jsql = json_object_get(body, "sql");
    if (!json_is_object(body) || !json_is_string(jsql) || !*json_string_value(jsql)) {
        json_decref(body);
        return http_fail(c, LOCH_EINVAL, "request body needs a non-empty string member \"sql\"",
                    "send {\"sql\": \"SELECT ...\"}");
    }
    if (strlen(json_string_value(jsql)) != json_string_length(jsql)) {
        json_decref(body);
        return http_fail(c, LOCH_EINVAL, "\"sql\" contains a NUL character", NULL);
    }
    *sql = xstrdup(json_string_value(jsql));
    json_decref(body);
    return MHD_YES;
}

/* True when sql is one statement that reads (it can be streamed). */
static bool is_one_read(const char *sql)
{
    struct arena *a = arena_new(); /* lifetime: this call */
    struct query_piece *p;
    size_t n = 0;
    struct loch_err err;
    bool yes = query_split(a, sql, &p, &n, &err) == 0 && n == 1 && query_is_read(p[0].text);
    arena_free(a);
    return yes;
}

/* Metrics, query history and the log line of one finished /v1/sql request. */
void http_account(struct worker *w, const char *user, const char *sql, int64_t started_ms, double secs, int rc,
                    int64_t rows, int64_t scanned, const struct loch_err *err)
{
    metrics_query(METRICS_HTTP, rc == 0, rc ? 0 : (uint64_t)(rows > 0 ? rows : 0), secs);
    struct history_entry h = {
        .user = user, .protocol = "http", .sql = sql, .started_ms = started_ms,
        .duration_ms = (int64_t)(secs * 1000), .rows = rc ? 0 : rows, .bytes_scanned = scanned,
        .status = rc ? "error" : "ok", .sqlstate = rc ? loch_err_sqlstate(rc) : NULL, .error = rc ? err->msg : NULL,
    };
    struct loch_err herr;
    if (history_record(w->cat, &h, &herr) != 0)
        log_warn("http: cannot record query history: %s", herr.msg);
    log_info("http: user=%s status=%s duration=%.3fs rows=%lld", user, rc ? loch_err_sqlstate(rc) : "ok", secs,
             (long long)(rc ? 0 : rows));
}
enum MHD_Result http_do_sql(struct http_server *s, struct MHD_Connection *c, struct req *q)
{
    enum MHD_Result sent = MHD_NO;
    if (q->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the %zu-byte limit", s->max_body);
        return http_fail(c, LOCH_ETOOLARGE, msg, "send shorter SQL");
    }
    int fmt = pick_format(c, &sent);
    if (fmt < 0)
        return sent;
    struct loch_err err;
    loch_err_clear(&err);
    struct worker *w = http_worker_take(s, &err);
    if (!w)
        return http_send_error(c, &err);
    char *user = http_authenticate(s, c, w, &sent);
    if (!user) {
        http_worker_give(s, w);
        return sent;
    }
    char *sql = NULL;
    sent = parse_body(c, q, &sql);
    if (!sql) {
        http_worker_give(s, w);
        free(user);
        return sent;
    }
    if (is_one_read(sql))
        return http_stream_sql(s, c, w, user, sql, (enum out_format)fmt);
    int64_t started = util_now_ms();
    double t0 = util_mono_s();
    struct run r = {.fmt = (enum out_format)fmt, .a = arena_new(), .rows = 0};
    struct query_session *qs = NULL;
    struct config_limits lim = {0};
    int rc = http_session_open(s, w, user, &lim, &qs, &err);
    struct http_limit tl = {.ms = lim.timeout_ms, .from = lim.timeout_from};
    int64_t scanned = 0;
    if (!rc) {
        http_limit_start(s, &tl, qs);
        metrics_query_running(METRICS_HTTP, true);
        rc = query_run(qs, sql, emit, &r, &err);
        scanned = query_scanned_bytes(qs);
        metrics_query_running(METRICS_HTTP, false);
    }
    if (!rc && r.emit_failed) {
        err = r.emit_err;
        rc = err.code;
    }
    if (http_limit_stop(s, &tl) && rc) {
        http_limit_error(&tl, &err);
        rc = LOCH_ECANCELED;
    }
    http_session_close(s, qs);
    http_account(w, user, sql, started, util_mono_s() - t0, rc, r.rows, scanned, &err);
    http_worker_give(s, w);
    free(user);
    free(sql);
    if (rc) {
        json_decref(r.result);
        buf_free(&r.csv);
        arena_free(r.a);
        return http_send_error(c, &err);
    }
    arena_free(r.a);
    if (r.fmt == OUT_ARROW && !r.csv.len && arrow_ipc_empty(&r.csv, &err) != 0) { /* no statements */
        buf_free(&r.csv);
        return http_send_error(c, &err);
    }
    if (r.fmt != OUT_JSON) {
        json_decref(r.result);
        size_t len = r.csv.len;
        char *text = buf_take(&r.csv);
        return http_send_text(c, MHD_HTTP_OK, http_content_type(r.fmt), text ? text : xstrdup(""), text ? len : 0);
    }
    if (!r.result) { /* no statements: an empty result */
        r.result = json_object();
        json_object_set_new(r.result, "columns", json_array());
        json_object_set_new(r.result, "rows", json_array());
        json_object_set_new(r.result, "tag", json_string(""));
    }
    return http_send_json(c, MHD_HTTP_OK, r.result);
}
