/* http.c: the HTTP API (http.h) on libmicrohttpd with a thread per connection, so one
 * slow query holds only its own client: the daemon, routing, bearer-token authentication,
 * the worker pool (catalog + store handles, grown to the requests in flight), error
 * bodies, GET /v1/queries and /metrics. POST /v1/sql is http_sql.c and http_stream.c.
 * Not for the PostgreSQL protocol (pgwire*.c) or SQL semantics (query/). */
#include "server/http_int.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "access/token.h"
#include "base/log.h"
#include "base/util.h"
#include "server/backoff.h"
#include "server/history.h"
#include "server/metrics.h"

#define DEFAULT_MAX_BODY (1u << 20)

/* ---- workers ---- */

struct worker *http_worker_take(struct http_server *s, struct loch_err *err)
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

void http_worker_give(struct http_server *s, struct worker *w)
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
int http_session_open(struct http_server *s, struct worker *w, const char *user, struct config_limits *lim,
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

void http_session_close(struct http_server *s, struct query_session *qs)
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

/* ---- time limits ---- */

static void limit_expired(void *arg)
{
    struct http_limit *lim = arg;
    atomic_store(&lim->fired, true);
    query_interrupt(lim->qs);
}

void http_limit_start(struct http_server *s, struct http_limit *lim, struct query_session *qs)
{
    lim->qs = qs;
    atomic_store(&lim->fired, false);
    lim->armed = qs && lim->ms > 0;
    if (lim->armed)
        deadline_arm(s->dl, &lim->dl, lim->ms, limit_expired, lim);
}

bool http_limit_stop(struct http_server *s, struct http_limit *lim)
{
    if (!lim->armed)
        return false;
    lim->armed = false;
    deadline_disarm(s->dl, &lim->dl);
    return atomic_load(&lim->fired);
}

void http_limit_error(const struct http_limit *lim, struct loch_err *err)
{
    loch_errf(err, LOCH_ECANCELED, "canceling statement due to statement timeout");
    loch_err_detail(err, "the limit is %lld ms (%s)", (long long)lim->ms, lim->from);
}

/* ---- responses ---- */

enum MHD_Result http_send_text(struct MHD_Connection *c, unsigned status, const char *type, char *body, size_t len)
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

enum MHD_Result http_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
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
    return http_send_text(c, status, "application/json", text, len + 1);
}

json_t *http_error_json(const struct loch_err *e)
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

enum MHD_Result http_send_error(struct MHD_Connection *c, const struct loch_err *e)
{
    return http_send_json(c, (unsigned)loch_err_http(e->code), http_error_json(e));
}

enum MHD_Result http_fail(struct MHD_Connection *c, int code, const char *msg, const char *hint)
{
    struct loch_err e;
    loch_errf(&e, code, "%s", msg);
    if (hint)
        loch_err_hint(&e, "%s", hint);
    return http_send_error(c, &e);
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
char *http_authenticate(struct http_server *s, struct MHD_Connection *c, struct worker *w, enum MHD_Result *sent)
{
    char key[80];
    addr_key(c, key, sizeof key);
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) != 0) {
        metrics_auth_failure(METRICS_HTTP);
        *sent = http_fail(c, LOCH_EAUTH, "authentication required",
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
            *sent = http_fail(c, LOCH_EAUTH, "authentication failed", "check the bearer token (loch token list)");
        } else {
            *sent = http_send_error(c, &err);
        }
        return NULL;
    }
    backoff_ok(s->bo, key);
    return user;
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
            return http_fail(c, LOCH_EINVAL, "limit must be a whole number from 1 to 10000", NULL);
    }
    struct loch_err err;
    struct worker *w = http_worker_take(s, &err);
    if (!w)
        return http_send_error(c, &err);
    char *user = http_authenticate(s, c, w, &sent);
    if (!user) {
        http_worker_give(s, w);
        return sent;
    }
    struct arena *a = arena_new(); /* lifetime: this request */
    struct history_entry *e;
    size_t n;
    int rc = history_list(w->cat, user, (size_t)limit, a, &e, &n, &err);
    http_worker_give(s, w);
    free(user);
    if (rc) {
        arena_free(a);
        return http_send_error(c, &err);
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
    return http_send_json(c, MHD_HTTP_OK, root);
}

/* ---- dispatch ---- */

static enum MHD_Result method_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct loch_err e;
    loch_errf(&e, LOCH_EMETHOD, "method not allowed here; use %s", allow);
    json_t *j = http_error_json(&e);
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
        return post ? http_do_sql(s, c, q) : method_not_allowed(c, "POST");
    if (!strcmp(url, "/v1/queries"))
        return get ? do_queries(s, c) : method_not_allowed(c, "GET");
    if (!strcmp(url, "/metrics")) {
        if (!get)
            return method_not_allowed(c, "GET");
        if (!s->cfg->metrics_open) { /* counters tell who does what: a token unless configured open */
            enum MHD_Result sent = MHD_NO;
            struct loch_err err;
            struct worker *w = http_worker_take(s, &err);
            if (!w)
                return http_send_error(c, &err);
            char *user = http_authenticate(s, c, w, &sent);
            http_worker_give(s, w);
            if (!user)
                return sent;
            free(user);
        }
        struct buf b = {0};
        metrics_render(&b);
        size_t len = b.len;
        return http_send_text(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", buf_take(&b), len);
    }
    if (!strcmp(url, "/healthz")) {
        if (!get)
            return method_not_allowed(c, "GET");
        return http_send_json(c, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    }
    char msg[300];
    snprintf(msg, sizeof msg, "no route %.200s", url);
    return http_fail(c, LOCH_ENOROUTE, msg, "routes: POST /v1/sql, GET /v1/queries, GET /metrics, GET /healthz");
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
    if (deadlines_start(&s->dl, err) != 0) {
        backoff_free(s->bo);
        pthread_mutex_destroy(&s->mu);
        free(s->catalog_path);
        free(s);
        return err->code;
    }
    /* poll(), never select(): select cannot watch a descriptor above FD_SETSIZE (1024), and
     * a busy process has those (MHD refused such connections and logged it). */
    if (MHD_is_feature_supported(MHD_FEATURE_POLL) != MHD_YES) {
        deadlines_stop(s->dl);
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
        deadlines_stop(s->dl);
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
    deadlines_stop(s->dl); /* every request has disarmed its limit */
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
