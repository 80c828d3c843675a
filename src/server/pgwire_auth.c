/* pgwire_auth.c: a pgwire connection's startup phase: SSL/GSS requests, CancelRequest,
 * the v3 startup packet, the held back-off after failed logins and the SCRAM-SHA-256
 * exchange (scram.c does the maths), then the session. Not for statements (pgwire_query.c).
 * Reference: PostgreSQL docs 55.2.1 (start-up), 55.3.1 (SASL). */
#include "server/pgwire_int.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "access/principal.h"
#include "base/log.h"
#include "base/util.h"
#include "server/backoff.h"
#include "server/limits.h"
#include "server/metrics.h"
#include "server/scram.h"

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
    if (pgwire_flush(c))
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
    int rc = pgwire_read_message(c, &type, &body, &len);
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
        pgwire_send_fatal(c, LOCH_EPROTO, type != 'p' ? "expected a SASL response" : err.msg[0] ? err.msg
                                                                              : "unsupported SASL mechanism");
        scram_state_free(&st);
        buf_free(&sf);
        return -1;
    }
    free(body);
    pgwire_auth(&c->out, 11, sf.data, sf.len);
    buf_free(&sf);
    if (pgwire_flush(c) || pgwire_read_message(c, &type, &body, &len) != 0) {
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
        pgwire_send_fatal(c, rc == LOCH_EAUTH ? LOCH_EAUTH : LOCH_EPROTO, rc == LOCH_EAUTH ? msg : err.msg);
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

/* The ParameterStatus messages a client expects after login (protocol docs 55.2.1). */
static void send_parameters(struct conn *c)
{
    static const char *const ps[][2] = {
        {"server_version", QUERY_SERVER_VERSION}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"}, {"TimeZone", "UTC"}, {"integer_datetimes", "on"},
        {"standard_conforming_strings", "on"}, {"IntervalStyle", "postgres"},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        pgwire_param_status(&c->out, ps[i][0], ps[i][1]);
    pgwire_param_status(&c->out, "is_superuser", c->admin ? "on" : "off");
    pgwire_param_status(&c->out, "session_authorization", c->user);
    pgwire_param_status(&c->out, "application_name", c->cl.app_name ? c->cl.app_name : "");
}

/* Startup phase: SSL/GSS requests, cancel, the v3 startup packet, authentication. */
int pgwire_startup(struct conn *c)
{
    struct loch_err err;
    loch_err_clear(&err);
    for (;;) {
        uint8_t hdr[4];
        if (pgwire_io_read(c, hdr, 4) != 0)
            return -1;
        uint32_t l = pgwire_be32(hdr);
        if (l < 8 || l > PGWIRE_MAX_STARTUP) {
            pgwire_send_fatal(c, LOCH_EPROTO, "invalid length of startup packet");
            return -1;
        }
        uint8_t *body = xmalloc(l - 4);
        if (pgwire_io_read(c, body, l - 4) != 0) {
            free(body);
            return -1;
        }
        struct pgwire_startup s;
        int rc = pgwire_parse_startup(body, l - 4, c->msg_arena, &s, &err);
        if (rc) {
            pgwire_send_fatal(c, LOCH_EPROTO, err.msg);
            free(body);
            return -1;
        }
        if (s.code == PGWIRE_SSL_REQUEST) {
            free(body);
            if (c->ssl || !c->srv->tls) {
                if (pgwire_io_write(c, "N", 1))
                    return -1;
                continue;
            }
            if (pgwire_io_write(c, "S", 1))
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
            if (pgwire_io_write(c, "N", 1))
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
            pgwire_send_fatal(c, LOCH_ELOGIN, "this server requires TLS (server.tls.mode is \"required\"); connect with "
                                   "sslmode=require");
            return -1;
        }
        const char *user = pgwire_startup_get(&s, "user");
        const char *db = pgwire_startup_get(&s, "database");
        const char *app = pgwire_startup_get(&s, "application_name");
        if (!user || !*user) {
            free(body);
            pgwire_send_fatal(c, LOCH_ELOGIN, "no user name in the startup packet");
            return -1;
        }
        c->user = xstrdup(user);
        c->cl.user = c->user;
        c->database = xstrdup(db && *db ? db : user);
        if (app)
            c->cl.app_name = xstrdup(app);
        free(body);
        break;
    }
    if (authenticate(c) != 0)
        return -1;
    struct loch_err e2;
    loch_err_clear(&e2);
    if (pgwire_lake_take(c->srv, &c->lake, &e2) != 0) {
        log_error("pgwire: cannot open the lake for %s: %s", c->peer, e2.msg);
        pgwire_send_fatal(c, LOCH_EIO, "the server cannot open its catalog");
        return -1;
    }
    c->cat = c->lake->cat;
    c->st = c->lake->st;
    c->admin = principal_is_admin(c->cat, c->user);
    c->cl.admin = c->admin;
    if (pgwire_claim_slot(c) != 0)
        return -1;
    /* The user's limits and resource group, fixed for the session (a role change applies
     * from the next login). */
    struct query_env env = {c->cat, c->st, NULL, c->srv->o.cfg->state_dir, NULL};
    const struct pgwire_options *o = &c->srv->o;
    if (limits_resolve(o->cfg, c->cat, c->user, o->eng, o->pool, &c->limits, &env.eng, &env.restricted, &e2) != 0 ||
        query_session_open_as(&env, c->user, &c->qs, &e2) != 0) {
        pgwire_send_fatal(c, e2.code, e2.msg);
        return -1;
    }
    send_parameters(c);
    pgwire_backend_key(&c->out, c->pid, c->key);
    pgwire_ready(&c->out, 'I');
    log_info("pgwire: connection authorized user=%s database=%s pid=%d from=%s tls=%s admin=%s", c->user,
             c->database, c->pid, c->peer, c->ssl ? "on" : "off", c->admin ? "yes" : "no");
    return pgwire_flush(c);
}


int pgwire_tls_setup(struct pgwire_server *srv, struct loch_err *err)
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

