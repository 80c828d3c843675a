/* http_int.h: private to the HTTP room (http*.c): the server, worker and request
 * structures, the result formats, and the functions one HTTP file lends another.
 * Not a public interface: the rest of loch sees only http.h. */
#ifndef LOCH_SERVER_HTTP_INT_H
#define LOCH_SERVER_HTTP_INT_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "query/query.h"
#include "server/deadline.h"
#include "server/http.h"
#include "server/limits.h"

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
    struct backoff *bo;     /* failed bearer tokens, per "addr:" */
    struct deadlines *dl;   /* statement time limits (deadline.h) */
};

/* Per-request state (MHD's con_cls). */
struct req {
    struct buf body;
    bool too_big;
};

enum out_format { OUT_JSON, OUT_CSV, OUT_ARROW };

#define ARROW_STREAM_TYPE "application/vnd.apache.arrow.stream"

/* The Content-Type of a result format. */
static inline const char *http_content_type(enum out_format f)
{
    return f == OUT_CSV ? "text/csv; charset=utf-8" : f == OUT_ARROW ? ARROW_STREAM_TYPE : "application/json";
}

/* A statement's time limit while it runs: the user's limit (limits.h), armed with the
 * server's deadline service; fired tells the interrupt came from the limit. */
struct http_limit {
    struct deadline dl;
    int64_t ms;
    const char *from;  /* the config key of the limit */
    struct query_session *qs;
    bool armed;
    atomic_bool fired; /* set on the deadline thread, read by the request's */
};

/* ---- http.c */

/* A worker (catalog + store handles) from the pool, opened when none is idle; NULL with
 * err filled when the lake cannot be opened. Hand it back with http_worker_give. */
struct worker *http_worker_take(struct http_server *s, struct loch_err *err);
void http_worker_give(struct http_server *s, struct worker *w); /* w may be NULL */
/* Opens a session of user for a request on w (on the engine of the user's memory limit;
 * *lim (OUT) gets the user's limits) and lists it so http_server_stop can interrupt it.
 * LOCH_ECANCELED while the server stops; else limits_resolve's or the session's error. */
int http_session_open(struct http_server *s, struct worker *w, const char *user, struct config_limits *lim,
                      struct query_session **out, struct loch_err *err);
void http_session_close(struct http_server *s, struct query_session *qs); /* qs may be NULL */
/* Arms lim for qs's statement when the user has a time limit (lim->ms > 0). */
void http_limit_start(struct http_server *s, struct http_limit *lim, struct query_session *qs);
/* Disarms lim; true when the limit fired (the statement was interrupted by it); false
 * when lim is not armed (never started, or stopped already). */
bool http_limit_stop(struct http_server *s, struct http_limit *lim);
/* Sets err to the statement-timeout error of lim (57014, with the limit in the detail). */
void http_limit_error(const struct http_limit *lim, struct loch_err *err);
/* Queue a response: body (malloc'd, taken) of type; j (taken) as JSON; e as the error
 * body {"error": {...}} with e's HTTP status; or an error made of code, msg and hint. */
enum MHD_Result http_send_text(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len);
enum MHD_Result http_send_json(struct MHD_Connection *c, unsigned status, json_t *j);
enum MHD_Result http_send_error(struct MHD_Connection *c, const struct loch_err *e);
enum MHD_Result http_fail(struct MHD_Connection *c, int code, const char *msg, const char *hint);
/* {"error": {"sqlstate", "message", "detail"?, "hint"}} for e (a new reference). */
json_t *http_error_json(const struct loch_err *e);
/* The user of the request's bearer token (malloc'd, the caller frees it), or NULL after
 * queueing a 401 (*sent is then the result to return). */
char *http_authenticate(struct http_server *s, struct MHD_Connection *c, struct worker *w, enum MHD_Result *sent);

/* ---- http_sql.c */

/* POST /v1/sql with the request's collected body. */
enum MHD_Result http_do_sql(struct http_server *s, struct MHD_Connection *c, struct req *q);
/* Metrics, query history and the log line of one finished /v1/sql request (rc 0: ok). */
void http_account(struct worker *w, const char *user, const char *sql, int64_t started_ms, double secs, int rc,
                  int64_t rows, int64_t scanned, const struct loch_err *err);

/* ---- http_stream.c */

/* Runs one read statement and answers with a streamed body in fmt. Takes w, user and sql
 * (malloc'd): they are released when the response ends. */
enum MHD_Result http_stream_sql(struct http_server *s, struct MHD_Connection *c, struct worker *w, char *user,
                                char *sql, enum out_format fmt);

#endif
