/* pgwire.c: the PostgreSQL wire-protocol server's frame: listener, admission, slots and
 * pooled lakes, a thread per connection and its message loop. Login is pgwire_auth.c,
 * statements pgwire_query.c / pgwire_ext.c, message bytes pgwire_msg.c, values pgwire_types.c.
 * Not for HTTP (http.c) nor SQL semantics (query/). Reference: PostgreSQL docs, chapter 55. */
#include "server/pgwire_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/util.h"
#include "server/backoff.h"
#include "server/metrics.h"

/* ---------------------------------------------------------------- socket I/O */

int pgwire_io_write(struct conn *c, const void *p, size_t n)
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
int pgwire_io_read(struct conn *c, void *p, size_t n)
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

int pgwire_flush(struct conn *c)
{
    int rc = c->out.len ? pgwire_io_write(c, c->out.data, c->out.len) : 0;
    buf_reset(&c->out);
    return rc;
}

/* Reads one frontend message of the normal phase into *body (malloc'd). Returns 1 on a
 * clean EOF, -1 on a protocol violation (already answered), 0 with the message. */
int pgwire_read_message(struct conn *c, char *type, uint8_t **body, size_t *len)
{
    uint8_t hdr[5];
    if (pgwire_io_read(c, hdr, 5) != 0)
        return 1;
    uint32_t l = pgwire_be32(hdr + 1);
    /* before login, only small SASL messages: a stranger cannot make us allocate much */
    uint32_t limit = c->qs ? PGWIRE_MAX_MESSAGE : PGWIRE_MAX_STARTUP;
    if (l < 4 || l - 4 > limit) {
        char msg[160];
        snprintf(msg, sizeof msg, "invalid message length %u for message type 0x%02x (limit %u bytes)", l, hdr[0],
                 limit);
        pgwire_send_fatal(c, LOCH_EPROTO, msg);
        return -1;
    }
    *type = (char)hdr[0];
    *len = l - 4;
    *body = xmalloc(*len + 1);
    if (*len && pgwire_io_read(c, *body, *len) != 0) {
        free(*body);
        *body = NULL;
        return 1;
    }
    (*body)[*len] = 0;
    return 0;
}

/* ---------------------------------------------------------------- slots and lakes */

/* A pooled catalog + store for a session that has logged in (see struct lake). */
int pgwire_lake_take(struct pgwire_server *srv, struct lake **out, struct loch_err *err)
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

static void pgwire_lake_give(struct pgwire_server *srv, struct lake *l)
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
int pgwire_claim_slot(struct conn *c)
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
        pgwire_flush(c);
    } else {
        pgwire_send_fatal(c, LOCH_ETOOMANY, "sorry, too many clients already");
    }
    log_warn("pgwire: refused user=%s from=%s: %zu sessions (max_connections %lld, %lld reserved for administrators)",
             c->user, c->peer, in, (long long)cfg->max_connections, (long long)cfg->reserved_admin_connections);
    return -1;
}

/* Under srv->mu: ends a connection that has not logged in (its thread wakes on the
 * shut-down socket and exits). */
static void pgwire_evict(struct pgwire_server *srv, struct conn *x)
{
    x->evicted = true;
    srv->n_evicted++;
    shutdown(x->fd, SHUT_RDWR);
}

/* ---------------------------------------------------------------- connection thread */

static void serve_messages(struct conn *c)
{
    for (;;) {
        arena_reset(c->msg_arena);
        char type;
        uint8_t *body = NULL;
        size_t len = 0;
        if (pgwire_read_message(c, &type, &body, &len) != 0)
            return;
        struct pgwire_msg m;
        struct loch_err err;
        loch_err_clear(&err);
        if (pgwire_parse(type, body, len, c->msg_arena, &m, &err) != 0) {
            /* a malformed or unknown message: the stream cannot be trusted any more */
            pgwire_send_fatal(c, LOCH_EPROTO, err.msg);
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
            pgwire_simple_query(c, m.u.query.sql);
            rc = pgwire_flush(c);
            free(body);
            if (rc)
                return;
            continue;
        case 'P': rc = pgwire_ext_parse(c, &m, &err); sql = m.u.parse.sql; break;
        case 'B': rc = pgwire_ext_bind(c, &m, &err); break;
        case 'D': rc = pgwire_ext_describe(c, &m, &err); break;
        case 'E': rc = pgwire_ext_execute(c, &m, &err, &sql); break;
        case 'C': rc = pgwire_ext_close(c, &m); break;
        case 'H': rc = 0; break;
        case 'S':
            c->ext_skip = false;
            pgwire_drop_portal(c, ""); /* the unnamed portal ends with the implicit transaction */
            pgwire_ready(&c->out, c->cl.txn);
            break;
        case 'p':
            pgwire_send_fatal(c, LOCH_EPROTO, "unexpected password message");
            free(body);
            return;
        default: /* 'd', 'c', 'f': COPY data without a COPY */
            rc = 0;
            break;
        }
        if (rc) {
            if (type == 'P')
                pgwire_log_query(c, sql ? sql : "", util_mono_s(), 0, c->qs ? query_scanned_bytes(c->qs) : 0, &err);
            pgwire_send_error(c, &err, (type == 'P' || type == 'E') ? sql : NULL, 0);
            c->ext_skip = true;
            if (c->cl.txn == 'T')
                c->cl.txn = 'E';
        }
        free(body);
        if ((type == 'S' || type == 'H' || c->out.len >= OUT_FLUSH_BYTES) && pgwire_flush(c) != 0)
            return;
    }
}

static void conn_free(struct conn *c)
{
    while (c->portals)
        pgwire_drop_portal(c, c->portals->name);
    while (c->preps)
        pgwire_drop_prep(c, c->preps->name);
    query_session_close(c->qs);
    pgwire_lake_give(c->srv, c->lake);
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    close(c->fd);
    buf_free(&c->out);
    arena_free(c->msg_arena);
    free(c->user);
    free(c->database);
    free(c->cl.app_name);
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
    int rc = pgwire_startup(c);
    deadline_disarm(srv->dl, &c->login_dl); /* logged in, or ending */
    if (rc == 0) {
        metrics_connection_open(METRICS_PGWIRE);
        serve_messages(c);
        metrics_connection_close(METRICS_PGWIRE);
        pgwire_flush(c);
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
            pgwire_evict(srv, oldest);
        else
            why = "sorry, too many clients already";
    }
    pthread_mutex_unlock(&srv->mu);
    return why;
}

/* The login deadline (server.login_timeout_ms) of c passed: a connection still logging
 * in is evicted (its thread wakes on the shut-down socket). On the deadline thread. */
static void login_expired(void *arg)
{
    struct conn *c = arg;
    struct pgwire_server *srv = c->srv;
    pthread_mutex_lock(&srv->mu);
    if (!c->logged_in && !c->evicted) {
        log_info("pgwire: login deadline passed for %s (server.login_timeout_ms %lld)", c->peer,
                 (long long)srv->o.cfg->login_timeout_ms);
        pgwire_evict(srv, c);
    }
    pthread_mutex_unlock(&srv->mu);
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
        c->cl.txn = 'I';
        c->msg_arena = arena_new();
        c->opened = util_mono_s();
        snprintf(c->peer, sizeof c->peer, "%s:%s", host, port);
        snprintf(c->host, sizeof c->host, "%s", host);
        RAND_bytes((unsigned char *)&c->key, sizeof c->key);
        pthread_mutex_lock(&srv->mu);
        c->pid = ++srv->next_pid;
        c->next = srv->conns;
        srv->conns = c;
        srv->n_conns++;
        pthread_mutex_unlock(&srv->mu);
        /* One deadline for the whole login, however the client trickles its bytes. */
        deadline_arm(srv->dl, &c->login_dl, srv->o.cfg->login_timeout_ms, login_expired, c);
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 1 << 20);
        pthread_t t;
        if (pthread_create(&t, &at, conn_main, c) != 0) {
            log_error("pgwire: cannot start a thread for %s", c->peer);
            deadline_disarm(srv->dl, &c->login_dl);
            conn_unlink(srv, c);
            conn_free(c);
        }
        pthread_attr_destroy(&at);
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
        rc = pgwire_tls_setup(srv, err);
    if (!rc)
        rc = listen_on(o->cfg->sql_listen, &srv->lfd, &srv->port, err);
    if (!rc)
        rc = deadlines_start(&srv->dl, err);
    if (!rc && pipe(srv->wake) != 0)
        rc = loch_errf(err, LOCH_EIO, "cannot create a pipe: %s", strerror(errno));
    if (!rc && pthread_create(&srv->accept_thread, NULL, accept_main, srv) != 0)
        rc = loch_errf(err, LOCH_EIO, "cannot start the accept thread");
    if (rc) {
        if (srv->lfd >= 0)
            close(srv->lfd);
        if (srv->wake[0] >= 0) {
            close(srv->wake[0]);
            close(srv->wake[1]);
        }
        SSL_CTX_free(srv->tls);
        deadlines_stop(srv->dl);
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
    deadlines_stop(srv->dl); /* every connection has disarmed its deadlines */
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
