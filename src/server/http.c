/* http.c: the HTTP API (http.h) on libmicrohttpd with a thread per connection, so one
 * slow query holds only its own client. Request bodies are collected up to a limit and
 * parsed with jansson (values in responses are encoded by jansson too). A single read
 * statement streams its rows from the engine; scripts and writes run through query_run
 * and answer with the last result. Each request borrows a worker (catalog + store
 * handles) from a pool that grows to the number of concurrent requests.
 * Not for the PostgreSQL protocol (pgwire*.c) or SQL semantics (query/). */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "access/token.h"
#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "query/query.h"
#include "server/arrow_ipc.h"
#include "server/backoff.h"
#include "server/history.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "server/pgwire_types.h"

#define DEFAULT_MAX_BODY (1u << 20)

struct worker {
    struct catalog *cat;
    struct store *st;
    struct worker *next;
};

struct http_server {
    struct MHD_Daemon *d;
    const struct loch_config *cfg;
    struct engine *eng;
    struct engine_pool *pool;
    char *catalog_path;
    size_t max_body;
    int port;
    pthread_mutex_t mu;
    struct worker *free_workers; /* idle ones; busy ones are held by requests */
    struct query_session **running; /* sessions of requests in flight (under mu) */
    size_t n_running, cap_running;
    bool stopping;
    struct backoff *bo; /* failed bearer tokens, per "addr:" */
};

/* Per-request state (MHD's con_cls). */
struct req {
    struct buf body;
    bool too_big;
};

/* ---- workers ---- */

static struct worker *worker_take(struct http_server *s, struct loch_err *err)
{
    pthread_mutex_lock(&s->mu);
    struct worker *w = s->free_workers;
    if (w)
        s->free_workers = w->next;
    pthread_mutex_unlock(&s->mu);
    if (w)
        return w;
    w = xcalloc(1, sizeof *w);
    if (catalog_open(s->catalog_path, false, &w->cat, err) != 0 || store_open(s->cfg->warehouse, &w->st, err) != 0) {
        catalog_close(w->cat);
        free(w);
        return NULL;
    }
    return w;
}

static void worker_give(struct http_server *s, struct worker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&s->mu);
    w->next = s->free_workers;
    s->free_workers = w;
    pthread_mutex_unlock(&s->mu);
}

/* Opens a session for a request (on the engine of the user's memory limit; *lim gets the
 * user's limits) and lists it, so http_server_stop can interrupt it. */
static int session_open(struct http_server *s, struct worker *w, const char *user, struct config_limits *lim,
                        struct query_session **out, struct loch_err *err)
{
    struct query_env env = {w->cat, w->st, NULL, s->cfg->state_dir, NULL};
    int rc = limits_resolve(s->cfg, w->cat, user, s->eng, s->pool, lim, &env.eng, &env.restricted, err);
    if (!rc)
        rc = query_session_open_as(&env, user, out, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        query_session_close(*out);
        *out = NULL;
        return loch_errf(err, LOCH_ECANCELED, "the server is shutting down");
    }
    if (s->n_running == s->cap_running) {
        s->cap_running = s->cap_running ? 2 * s->cap_running : 16;
        s->running = xrealloc(s->running, s->cap_running * sizeof *s->running);
    }
    s->running[s->n_running++] = *out;
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static void session_close(struct http_server *s, struct query_session *qs)
{
    if (!qs)
        return;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->n_running; i++)
        if (s->running[i] == qs) {
            s->running[i] = s->running[--s->n_running];
            break;
        }
    pthread_mutex_unlock(&s->mu);
    query_session_close(qs);
}

/* ---- responses ---- */

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"loch\"");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(j);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    /* json_dumps leaves no newline; curl users like one. */
    text = xrealloc(text, len + 2);
    text[len] = '\n';
    text[len + 1] = '\0';
    return send_text(c, status, "application/json", text, len + 1);
}

static json_t *error_json(const struct loch_err *e)
{
    json_t *o = json_object();
    json_object_set_new(o, "sqlstate", json_string(loch_err_sqlstate(e->code)));
    json_object_set_new(o, "message", json_string(e->msg[0] ? e->msg : loch_strerror(e->code)));
    if (e->detail[0])
        json_object_set_new(o, "detail", json_string(e->detail));
    json_object_set_new(o, "hint", e->hint[0] ? json_string(e->hint) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", o);
    return root;
}

static enum MHD_Result send_error(struct MHD_Connection *c, const struct loch_err *e)
{
    return send_json(c, (unsigned)loch_err_http(e->code), error_json(e));
}

static enum MHD_Result fail(struct MHD_Connection *c, int code, const char *msg, const char *hint)
{
    struct loch_err e;
    loch_errf(&e, code, "%s", msg);
    if (hint)
        loch_err_hint(&e, "%s", hint);
    return send_error(c, &e);
}

/* ---- authentication ---- */

/* "addr:<client address>" (no port): the back-off key of a connection. */
static void addr_key(struct MHD_Connection *c, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host, sizeof host);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host, sizeof host);
    snprintf(out, cap, "addr:%s", host);
}

/* Holds a request whose address backs off after wrong tokens (backoff.h), before any
 * token is checked: in this connection's own thread, no lock held, ended early by stop. */
static void backoff_pause(struct http_server *s, const char *key)
{
    int64_t w = backoff_wait_ms(s->bo, key);
    if (!w)
        return;
    log_info("http: request held %lld ms after failed logins (%s)", (long long)w, key);
    int64_t until = util_now_ms() + w;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        int64_t left = until - util_now_ms();
        if (stopping || left <= 0)
            return;
        struct timespec ts = {0, (left > 50 ? 50 : left) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* The user of the request's bearer token (malloc'd), or NULL after queueing a 401. A
 * request that presents a token waits first while its address backs off. */
static char *authenticate(struct http_server *s, struct MHD_Connection *c, struct worker *w, enum MHD_Result *sent)
{
    char key[80];
    addr_key(c, key, sizeof key);
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        metrics_auth_failure(METRICS_HTTP);
        *sent = fail(c, LOCH_EAUTH, "authentication required",
                     "send Authorization: Bearer <token>; create one with: loch token create --user NAME");
        return NULL;
    }
    backoff_pause(s, key);
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    struct loch_err err;
    char *user = NULL;
    int rc = token_verify(w->cat, tok, &user, &err);
    if (rc) {
        if (rc == LOCH_EAUTH) {
            /* The reason (unknown, expired, user gone) goes to the log, not to the client. */
            log_info("http: authentication failed (%s): %s", key, err.msg);
            metrics_auth_failure(METRICS_HTTP);
            backoff_fail(s->bo, key);
            *sent = fail(c, LOCH_EAUTH, "authentication failed", "check the bearer token (loch token list)");
        } else {
            *sent = send_error(c, &err);
        }
        return NULL;
    }
    backoff_ok(s->bo, key);
    return user;
}

/* ---- POST /v1/sql ---- */

enum out_format { OUT_JSON, OUT_CSV, OUT_ARROW };

#define ARROW_STREAM_TYPE "application/vnd.apache.arrow.stream"

static const char *content_type(enum out_format f)
{
    return f == OUT_CSV ? "text/csv; charset=utf-8" : f == OUT_ARROW ? ARROW_STREAM_TYPE : "application/json";
}

struct run {
    enum out_format fmt;
    struct arena *a;   /* lifetime: one statement's rendering */
    json_t *result;    /* JSON: the last statement's result */
    struct buf csv;    /* CSV or Arrow IPC: the last statement's result */
    int64_t rows;
    bool emit_failed;  /* Arrow: the last result could not be written */
    struct loch_err emit_err;
};

static bool is_decimal_type(const char *t) { return !strncmp(t, "DECIMAL", 7); }

static bool is_int_type(const char *t)
{
    static const char *ints[] = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT",
                                 "UINTEGER", "UBIGINT", "HUGEINT", "UHUGEINT", NULL};
    for (int i = 0; ints[i]; i++)
        if (!strcmp(t, ints[i]))
            return true;
    return false;
}

static json_t *json_value(const char *type, const char *text)
{
    if (!text)
        return json_null();
    if (!strcmp(type, "BOOLEAN"))
        return json_boolean(!strcmp(text, "true"));
    if (is_int_type(type)) {
        errno = 0;
        char *end;
        long long v = strtoll(text, &end, 10);
        if (!errno && !*end)
            return json_integer(v);
        return json_string(text); /* beyond 64 bits: exact as text */
    }
    if (!strcmp(type, "DOUBLE") || !strcmp(type, "FLOAT")) {
        double d = strtod(text, NULL);
        if (isfinite(d))
            return json_real(d);
        return json_string(text);
    }
    return json_string(text); /* DECIMAL (exact), dates, text, ... */
}

static void csv_field(struct buf *b, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        buf_puts(b, s);
        return;
    }
    buf_putc(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            buf_putc(b, '"');
        buf_putc(b, *s);
    }
    buf_putc(b, '"');
}

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
        if (!res->rows)
            return 0;
        size_t nc = engine_rows_ncols(res->rows), nr = engine_rows_count(res->rows);
        for (size_t c = 0; c < nc; c++) {
            if (c)
                buf_putc(&r->csv, ',');
            csv_field(&r->csv, engine_rows_name(res->rows, c));
        }
        buf_puts(&r->csv, "\r\n");
        for (size_t row = 0; row < nr; row++) {
            for (size_t c = 0; c < nc; c++) {
                if (c)
                    buf_putc(&r->csv, ',');
                char *v = engine_rows_text(res->rows, c, row, r->a);
                if (v)
                    csv_field(&r->csv, v);
            }
            buf_puts(&r->csv, "\r\n");
            if ((row & 1023) == 1023)
                arena_reset(r->a);
        }
        return 0;
    }
    json_decref(r->result);
    r->result = json_object();
    json_t *cols = json_array(), *rows = json_array();
    if (res->rows) {
        size_t nc = engine_rows_ncols(res->rows), nr = engine_rows_count(res->rows);
        char **types = arena_alloc(r->a, (nc ? nc : 1) * sizeof *types);
        for (size_t c = 0; c < nc; c++) {
            types[c] = engine_rows_type(res->rows, c, r->a);
            json_t *col = json_object();
            json_object_set_new(col, "name", json_string(engine_rows_name(res->rows, c)));
            json_object_set_new(col, "type", json_string(types[c]));
            json_array_append_new(cols, col);
        }
        for (size_t row = 0; row < nr; row++) {
            json_t *jr = json_array();
            for (size_t c = 0; c < nc; c++) {
                char *v = engine_rows_text(res->rows, c, row, r->a);
                json_array_append_new(jr, is_decimal_type(types[c]) ? (v ? json_string(v) : json_null())
                                                                    : json_value(types[c], v));
            }
            json_array_append_new(rows, jr);
        }
    }
    json_object_set_new(r->result, "columns", cols);
    json_object_set_new(r->result, "rows", rows);
    json_object_set_new(r->result, "tag", json_string(res->tag ? res->tag : ""));
    return 0;
}

/* The per-query time limit: a thread that interrupts the session's statement when the
 * limit passes before watchdog_stop. */
struct watchdog {
    struct query_session *qs;
    int64_t ms;
    const char *from; /* the config key of the limit */
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done, fired;
};

static void *watchdog_main(void *arg)
{
    struct watchdog *w = arg;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t)(w->ms / 1000);
    until.tv_nsec += (long)(w->ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->mu);
    while (!w->done)
        if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
            break;
    if (!w->done) {
        w->fired = true;
        query_interrupt(w->qs);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

static bool watchdog_start(struct watchdog *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->th, NULL, watchdog_main, w) == 0)
        return true;
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return false;
}

/* Ends the watch; true when the limit had passed (the statement was interrupted). */
static bool watchdog_stop(struct watchdog *w)
{
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->th, NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    return w->fired;
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
        *sent = fail(c, LOCH_ENOTACCEPT, "cannot produce any of the types in the Accept header",
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
        return fail(c, LOCH_EINVAL, msg, "send {\"sql\": \"SELECT ...\"} with Content-Type: application/json");
    }
    json_t *jsql = json_object_get(body, "sql");
    if (!json_is_object(body) || !json_is_string(jsql) || !*json_string_value(jsql)) {
        json_decref(body);
        return fail(c, LOCH_EINVAL, "request body needs a non-empty string member \"sql\"",
                    "send {\"sql\": \"SELECT ...\"}");
    }
    if (strlen(json_string_value(jsql)) != json_string_length(jsql)) {
        json_decref(body);
        return fail(c, LOCH_EINVAL, "\"sql\" contains a NUL character", NULL);
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
static void account(struct worker *w, const char *user, const char *sql, int64_t started_ms, double secs, int rc,
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

/* ---- streamed results: one read statement, rows sent as DuckDB produces them ---- */

/* DuckDB's name of a column type, as the materialised path reports it. */
static void type_name(const struct engine_col *c, char out[48])
{
    static const char *names[] = {
        [ENGINE_T_OTHER] = "VARCHAR", [ENGINE_T_BOOL] = "BOOLEAN", [ENGINE_T_INT16] = "SMALLINT",
        [ENGINE_T_INT32] = "INTEGER", [ENGINE_T_INT64] = "BIGINT", [ENGINE_T_HUGEINT] = "HUGEINT",
        [ENGINE_T_FLOAT] = "FLOAT", [ENGINE_T_DOUBLE] = "DOUBLE", [ENGINE_T_DECIMAL] = "DECIMAL",
        [ENGINE_T_TEXT] = "VARCHAR", [ENGINE_T_JSON] = "JSON", [ENGINE_T_BLOB] = "BLOB", [ENGINE_T_DATE] = "DATE",
        [ENGINE_T_TIME] = "TIME", [ENGINE_T_TIMESTAMP] = "TIMESTAMP",
        [ENGINE_T_TIMESTAMPTZ] = "TIMESTAMP WITH TIME ZONE", [ENGINE_T_UUID] = "UUID",
        [ENGINE_T_INTERVAL] = "INTERVAL",
    };
    const char *n = (size_t)c->type < sizeof names / sizeof names[0] && names[c->type] ? names[c->type] : "VARCHAR";
    if (c->type == ENGINE_T_DECIMAL)
        snprintf(out, 48, "DECIMAL(%d,%d)", c->width, c->scale);
    else
        snprintf(out, 48, "%s", n);
}

/* A value as text: PostgreSQL's text form (exact decimals, ISO dates), booleans as
 * true/false like DuckDB prints them. */
static void value_text(struct buf *b, const struct engine_col *c, const struct engine_val *v)
{
    if (c->type == ENGINE_T_BOOL)
        buf_puts(b, v->i ? "true" : "false");
    else
        pgwire_encode_text(b, c, v);
}

/* Appends one value as JSON (encoded by jansson): numbers for integers and floats,
 * strings for decimals (exact) and everything else. */
static void value_json(struct buf *b, struct buf *tmp, const struct engine_col *c, const struct engine_val *v)
{
    json_t *j;
    bool number = c->type == ENGINE_T_INT16 || c->type == ENGINE_T_INT32 || c->type == ENGINE_T_INT64;
    bool real = (c->type == ENGINE_T_FLOAT || c->type == ENGINE_T_DOUBLE) && isfinite(v->f);
    if (c->type == ENGINE_T_BOOL) {
        j = json_boolean(v->i);
    } else if (number) {
        j = json_integer(v->i);
    } else if (real) {
        j = json_real(v->f);
    } else { /* decimals (exact), NaN/infinities and everything else as text */
        buf_reset(tmp);
        value_text(tmp, c, v);
        j = json_stringn(tmp->data ? tmp->data : "", tmp->len);
        if (!j) /* not valid UTF-8 */
            j = json_string("\ufffd");
    }
    char *text = json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(17));
    json_decref(j);
    buf_puts(b, text ? text : "null");
    free(text);
}

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
    struct watchdog wd;
    bool watching;
    struct config_limits lim;
    int64_t scanned;
    bool accounted;          /* history recorded (at the end of the body, before the client sees it) */
    struct loch_err err;
};

static void stream_header(struct stream *x)
{
    struct buf *b = &x->out;
    if (x->fmt == OUT_CSV) {
        for (size_t i = 0; i < x->n_cols; i++) {
            if (i)
                buf_putc(b, ',');
            csv_field(b, engine_stream_col(x->es, i)->name);
        }
        buf_puts(b, "\r\n");
        return;
    }
    buf_puts(b, "{\"columns\":[");
    for (size_t i = 0; i < x->n_cols; i++) {
        const struct engine_col *c = engine_stream_col(x->es, i);
        char tn[48];
        type_name(c, tn);
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
                value_text(&x->tmp, c, &v);
                csv_field(b, x->tmp.data ? x->tmp.data : "");
            }
        } else if (!has) {
            buf_puts(b, "null");
        } else {
            value_json(b, &x->tmp, c, &v);
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
        json_t *e = error_json(&x->err);
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
    if (rc == LOCH_ECANCELED && x->wd.fired) {
        loch_errf(&x->err, LOCH_ECANCELED, "canceling statement due to statement timeout");
        loch_err_detail(&x->err, "the limit is %lld ms (%s)", (long long)x->wd.ms, x->wd.from);
    }
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
        if (x->watching) {
            watchdog_stop(&x->wd);
            x->watching = false;
        }
        if (!x->accounted)
            account(x->w, x->user, x->sql, x->started_ms, util_mono_s() - x->t0, x->failed ? x->err.code : 0,
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
    if (x->watching && watchdog_stop(&x->wd) && !x->failed && x->phase < 2) {
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
    session_close(x->s, x->qs);
    if (!x->accounted)
        account(x->w, x->user, x->sql, x->started_ms, util_mono_s() - x->t0, x->failed ? x->err.code : 0, x->rows,
                x->scanned, &x->err);
    worker_give(x->s, x->w);
    buf_free(&x->out);
    buf_free(&x->tmp);
    free(x->user);
    free(x->sql);
    free(x);
}

/* Runs one read statement and answers with a streamed body. Takes w, user and sql. */
static enum MHD_Result stream_sql(struct http_server *s, struct MHD_Connection *c, struct worker *w, char *user,
                                  char *sql, enum out_format fmt)
{
    struct stream *x = xcalloc(1, sizeof *x);
    *x = (struct stream){.s = s, .w = w, .user = user, .sql = sql, .fmt = fmt, .started_ms = util_now_ms(),
                         .t0 = util_mono_s()};
    int rc = session_open(s, w, user, &x->lim, &x->qs, &x->err);
    x->wd = (struct watchdog){.qs = x->qs, .ms = x->lim.timeout_ms, .from = x->lim.timeout_from};
    x->watching = !rc && x->wd.ms > 0 && watchdog_start(&x->wd);
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
        return send_error(c, &e);
    }
    x->n_cols = engine_stream_ncols(x->es);
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, x,
                                                                stream_free);
    if (!r) {
        stream_free(x);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(fmt));
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result do_sql(struct http_server *s, struct MHD_Connection *c, struct req *q)
{
    enum MHD_Result sent = MHD_NO;
    if (q->too_big) {
        char msg[128];
        snprintf(msg, sizeof msg, "request body is larger than the %zu-byte limit", s->max_body);
        return fail(c, LOCH_ETOOLARGE, msg, "send shorter SQL");
    }
    int fmt = pick_format(c, &sent);
    if (fmt < 0)
        return sent;
    struct loch_err err;
    loch_err_clear(&err);
    struct worker *w = worker_take(s, &err);
    if (!w)
        return send_error(c, &err);
    char *user = authenticate(s, c, w, &sent);
    if (!user) {
        worker_give(s, w);
        return sent;
    }
    char *sql = NULL;
    sent = parse_body(c, q, &sql);
    if (!sql) {
        worker_give(s, w);
        free(user);
        return sent;
    }
    if (is_one_read(sql))
        return stream_sql(s, c, w, user, sql, (enum out_format)fmt);
    int64_t started = util_now_ms();
    double t0 = util_mono_s();
    struct run r = {.fmt = (enum out_format)fmt, .a = arena_new(), .rows = 0};
    struct query_session *qs = NULL;
    struct config_limits lim;
    int rc = session_open(s, w, user, &lim, &qs, &err);
    struct watchdog wd = {.qs = qs, .ms = lim.timeout_ms, .from = lim.timeout_from};
    bool watching = !rc && wd.ms > 0 && watchdog_start(&wd);
    int64_t scanned = 0;
    if (!rc) {
        rc = query_run(qs, sql, emit, &r, &err);
        scanned = query_scanned_bytes(qs);
    }
    if (!rc && r.emit_failed) {
        err = r.emit_err;
        rc = err.code;
    }
    if (watching && watchdog_stop(&wd) && rc) {
        loch_errf(&err, LOCH_ECANCELED, "canceling statement due to statement timeout");
        loch_err_detail(&err, "the limit is %lld ms (%s)", (long long)wd.ms, wd.from);
        rc = LOCH_ECANCELED;
    }
    session_close(s, qs);
    account(w, user, sql, started, util_mono_s() - t0, rc, r.rows, scanned, &err);
    worker_give(s, w);
    free(user);
    free(sql);
    if (rc) {
        json_decref(r.result);
        buf_free(&r.csv);
        arena_free(r.a);
        return send_error(c, &err);
    }
    arena_free(r.a);
    if (r.fmt == OUT_ARROW && !r.csv.len && arrow_ipc_empty(&r.csv, &err) != 0) { /* no statements */
        buf_free(&r.csv);
        return send_error(c, &err);
    }
    if (r.fmt != OUT_JSON) {
        json_decref(r.result);
        size_t len = r.csv.len;
        char *text = buf_take(&r.csv);
        return send_text(c, MHD_HTTP_OK, content_type(r.fmt), text ? text : xstrdup(""), text ? len : 0);
    }
    if (!r.result) { /* no statements: an empty result */
        r.result = json_object();
        json_object_set_new(r.result, "columns", json_array());
        json_object_set_new(r.result, "rows", json_array());
        json_object_set_new(r.result, "tag", json_string(""));
    }
    return send_json(c, MHD_HTTP_OK, r.result);
}

/* ---- GET /v1/queries ---- */

static void iso_ms(int64_t ms, char out[40])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", (int)(ms % 1000));
}

static enum MHD_Result do_queries(struct http_server *s, struct MHD_Connection *c)
{
    enum MHD_Result sent = MHD_NO;
    const char *lim = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "limit");
    long limit = 100;
    if (lim) {
        char *end;
        limit = strtol(lim, &end, 10);
        if (*end || end == lim || limit < 1 || limit > HISTORY_MAX)
            return fail(c, LOCH_EINVAL, "limit must be a whole number from 1 to 10000", NULL);
    }
    struct loch_err err;
    struct worker *w = worker_take(s, &err);
    if (!w)
        return send_error(c, &err);
    char *user = authenticate(s, c, w, &sent);
    if (!user) {
        worker_give(s, w);
        return sent;
    }
    struct arena *a = arena_new(); /* lifetime: this request */
    struct history_entry *e;
    size_t n;
    int rc = history_list(w->cat, user, (size_t)limit, a, &e, &n, &err);
    worker_give(s, w);
    free(user);
    if (rc) {
        arena_free(a);
        return send_error(c, &err);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char when[40];
        iso_ms(e[i].started_ms, when);
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(e[i].id));
        json_object_set_new(o, "user", json_string(e[i].user));
        json_object_set_new(o, "protocol", json_string(e[i].protocol));
        json_object_set_new(o, "sql", json_string(e[i].sql));
        json_object_set_new(o, "start", json_string(when));
        json_object_set_new(o, "duration_ms", json_integer(e[i].duration_ms));
        json_object_set_new(o, "rows", e[i].rows >= 0 ? json_integer(e[i].rows) : json_null());
        json_object_set_new(o, "bytes_scanned", e[i].bytes_scanned >= 0 ? json_integer(e[i].bytes_scanned) : json_null());
        json_object_set_new(o, "status", json_string(e[i].status));
        json_object_set_new(o, "sqlstate", e[i].sqlstate ? json_string(e[i].sqlstate) : json_null());
        json_object_set_new(o, "error", e[i].error ? json_string(e[i].error) : json_null());
        json_array_append_new(list, o);
    }
    arena_free(a);
    json_t *root = json_object();
    json_object_set_new(root, "queries", list);
    return send_json(c, MHD_HTTP_OK, root);
}

/* ---- dispatch ---- */

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct loch_err e;
    loch_errf(&e, LOCH_EMETHOD, "method not allowed here; use %s", allow);
    json_t *j = error_json(&e);
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, allow);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct http_server *s = cls;
    struct req *q = *con_cls;
    if (!q) {
        q = xcalloc(1, sizeof *q);
        *con_cls = q;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body)
            q->too_big = true; /* answered once the body has been read */
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!q->too_big && q->body.len + *upload_data_size <= s->max_body)
            buf_append(&q->body, upload_data, *upload_data_size);
        else {
            q->too_big = true;
            buf_free(&q->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET), post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!strcmp(url, "/v1/sql"))
        return post ? do_sql(s, c, q) : method_not_allowed(c, "POST");
    if (!strcmp(url, "/v1/queries"))
        return get ? do_queries(s, c) : method_not_allowed(c, "GET");
    if (!strcmp(url, "/metrics")) {
        if (!get)
            return method_not_allowed(c, "GET");
        if (!s->cfg->metrics_open) { /* counters tell who does what: a token unless configured open */
            enum MHD_Result sent = MHD_NO;
            struct loch_err err;
            struct worker *w = worker_take(s, &err);
            if (!w)
                return send_error(c, &err);
            char *user = authenticate(s, c, w, &sent);
            worker_give(s, w);
            if (!user)
                return sent;
            free(user);
        }
        struct buf b = {0};
        metrics_render(&b);
        size_t len = b.len;
        return send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf_take(&b), len);
    }
    if (!strcmp(url, "/healthz")) {
        if (!get)
            return method_not_allowed(c, "GET");
        return send_json(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route %.200s", url);
    return fail(c, LOCH_ENOROUTE, msg, "routes: POST /v1/sql, GET /v1/queries, GET /metrics, GET /healthz");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct req *q = *con_cls;
    if (q) {
        buf_free(&q->body);
        free(q);
        *con_cls = NULL;
    }
}

static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    (void)cls, (void)socket_context;
    char from[INET6_ADDRSTRLEN + 8] = "?";
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (sa->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
        } else if (sa->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
        }
        snprintf(from, sizeof from, "%s:%d", host, port);
    }
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        metrics_connection_open(METRICS_HTTP);
        log_info("http: connection from=%s", from);
    } else {
        metrics_connection_close(METRICS_HTTP);
        log_info("http: disconnection from=%s", from);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    log_warn("http: %s", line);
}

/* host:port or [v6]:port -> an address. */
static int resolve(const char *listen, struct sockaddr_storage *out, socklen_t *len, struct loch_err *err)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen || !colon[1] || (size_t)(colon - listen) >= sizeof host) {
        loch_errf(err, LOCH_ECONFIG, "server.http_listen \"%s\" is not HOST:PORT", listen);
        return loch_err_hint(err, "for example 127.0.0.1:8181");
    }
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *res;
    int g = getaddrinfo(host, colon + 1, &hints, &res);
    if (g != 0) {
        loch_errf(err, LOCH_ECONFIG, "server.http_listen \"%s\": %s", listen, gai_strerror(g));
        return loch_err_hint(err, "give a numeric address and port, e.g. 127.0.0.1:8181");
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int http_server_start(const struct http_options *o, struct http_server **out, struct loch_err *err)
{
    *out = NULL;
    const char *listen = o->listen ? o->listen : o->cfg->http_listen ? o->cfg->http_listen : "127.0.0.1:8181";
    struct sockaddr_storage addr;
    socklen_t alen;
    int rc = resolve(listen, &addr, &alen, err);
    if (rc)
        return rc;
    struct http_server *s = xcalloc(1, sizeof *s);
    s->cfg = o->cfg;
    s->eng = o->eng;
    s->pool = o->pool;
    s->catalog_path = xstrdup(o->catalog_path);
    s->max_body = o->max_body ? o->max_body : DEFAULT_MAX_BODY;
    pthread_mutex_init(&s->mu, NULL);
    s->bo = backoff_new(o->cfg->login_backoff_ms, o->cfg->login_backoff_max_ms);
    /* poll(), never select(): select cannot watch a descriptor above FD_SETSIZE (1024), and
     * a busy process has those (MHD refused such connections and logged it). */
    if (MHD_is_feature_supported(MHD_FEATURE_POLL) != MHD_YES) {
        backoff_free(s->bo);
        pthread_mutex_destroy(&s->mu);
        free(s->catalog_path);
        free(s);
        return loch_errf(err, LOCH_EINTERNAL, "libmicrohttpd was built without poll() support");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_USE_ERROR_LOG;
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                            MHD_OPTION_NOTIFY_COMPLETED, completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                            notify_connection, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)o->cfg->http_max_connections,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)o->cfg->http_per_address,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_END);
    if (!s->d) {
        loch_errf(err, LOCH_EIO, "cannot serve HTTP on %s", listen);
        loch_err_hint(err, "is the address in use (another loch serve?) or not local? change server.http_listen");
        backoff_free(s->bo);
        pthread_mutex_destroy(&s->mu);
        free(s->catalog_path);
        free(s);
        return LOCH_EIO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return 0;
}

int http_server_port(const struct http_server *s) { return s->port; }

void http_server_stop(struct http_server *s)
{
    if (!s)
        return;
    /* Running statements end now (their clients get an error); then MHD closes every
     * connection and joins its thread. */
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    for (size_t i = 0; i < s->n_running; i++)
        query_interrupt(s->running[i]);
    pthread_mutex_unlock(&s->mu);
    MHD_stop_daemon(s->d);
    free(s->running);
    for (struct worker *w = s->free_workers, *next; w; w = next) {
        next = w->next;
        catalog_close(w->cat);
        store_close(w->st);
        free(w);
    }
    backoff_free(s->bo);
    pthread_mutex_destroy(&s->mu);
    free(s->catalog_path);
    free(s);
}
