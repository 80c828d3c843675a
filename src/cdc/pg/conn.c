/* conn.c: the PostgreSQL source's connections and queries, one session (checks, publications,
 * full load or resume, then the stream) and the reconnect loop behind cdc_pg_run.
 * Not for what a session does in detail: checks.c, load.c, stream.c. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "cdc/pg/pg_int.h"
#include "cdc/retry.h"

static char *ident_part(struct arena *a, const char *s)
{
    char *o = arena_strdup(a, s);
    for (char *p = o; *p; p++) {
        char c = *p;
        if (c >= 'A' && c <= 'Z')
            *p = (char)(c - 'A' + 'a');
        else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            *p = '_';
    }
    return o;
}

/* ---- connections ---- */

int pgsrc_connect(struct pgsrc *s, bool replication, PGconn **out, struct loch_err *err)
{
    const char *keys[6], *vals[6];
    int n = 0;
    keys[n] = "dbname"; vals[n++] = s->src->url;
    keys[n] = "options"; vals[n++] = SESSION_OPTIONS;
    keys[n] = "fallback_application_name"; vals[n++] = "loch";
    if (replication) {
        keys[n] = "replication"; vals[n++] = "database";
    }
    if (s->password) {
        keys[n] = "password"; vals[n++] = s->password;
    }
    keys[n] = NULL; vals[n] = NULL;
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (PQstatus(c) != CONNECTION_OK) {
        char *m = PQerrorMessage(c);
        size_t l = strlen(m);
        while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
            m[--l] = 0;
        loch_errf(err, LOCH_ESOURCE, "source %s: cannot connect%s: %s", s->src->name,
                  replication ? " for replication" : "", m);
        if (strstr(m, "replication") && strstr(m, "pg_hba"))
            loch_err_hint(err, "allow replication connections for this role in pg_hba.conf");
        else if (!s->password && strstr(m, "password"))
            loch_err_hint(err, "set password_env: VAR for source %s, or use a .pgpass file", s->src->name);
        PQfinish(c);
        return LOCH_ESOURCE;
    }
    *out = c;
    return 0;
}

int pgsrc_fail(struct pgsrc *s, PGresult *r, const char *what, struct loch_err *err)
{
    const char *m = PQresultErrorMessage(r);
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    int code = LOCH_ESOURCE;
    if (state && !strcmp(state, "42501"))
        code = LOCH_EPERM;
    loch_errf(err, code, "source %s: %s: %s", s->src->name, what, m && *m ? m : "connection lost");
    size_t l = strlen(err->msg);
    while (l && err->msg[l - 1] == '\n')
        err->msg[--l] = 0;
    PQclear(r);
    return code;
}

int pgsrc_exec(struct pgsrc *s, PGconn *c, const char *sql, const char *what, struct loch_err *err)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        return pgsrc_fail(s, r, what, err);
    PQclear(r);
    return 0;
}

int pgsrc_query(struct pgsrc *s, PGconn *c, const char *sql, const char *what, PGresult **out,
                struct loch_err *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        return pgsrc_fail(s, r, what, err);
    *out = r;
    return 0;
}

/* ---- a session and the reconnect loop ---- */

/* Batch size while catching up: big enough that a flush's fixed costs stay small, small
 * enough that flushing overlaps receiving. And the smallest batch flushed at once when
 * the flush thread is idle (the flush thread then never waits for a full batch). */
#define CATCH_UP_FLUSH_CHANGES 200000
#define MIN_FLUSH_CHANGES 50000

static void disconnect(struct pgsrc *s)
{
    PQfinish(s->repl);
    PQfinish(s->sql);
    s->repl = s->sql = NULL;
    s->n_rels = 0; /* Relation messages come again on the next session */
}

static int session(struct pgsrc *s, bool first, struct loch_err *err)
{
    int rc = pgsrc_connect(s, false, &s->sql, err);
    if (!rc)
        rc = pgsrc_check_server(s, err);
    if (rc)
        return rc;
    if (first && s->r->catch_up) {
        PGresult *r = NULL;
        rc = pgsrc_query(s, s->sql, "SELECT pg_current_wal_insert_lsn()::text", "reading the WAL position", &r, err);
        if (rc)
            return rc;
        pgoutput_lsn_parse(PQgetvalue(r, 0, 0), &s->catchup_target);
        if (!s->catchup_target)
            s->catchup_target = 1;
        PQclear(r);
    }
    struct arena *a = arena_new();
    struct srctab *t;
    size_t n;
    rc = pgsrc_list_tables(s, a, &t, &n, err);
    if (!rc)
        rc = pgsrc_setup_publications(s, t, n, err);
    if (!rc)
        rc = pgsrc_connect(s, true, &s->repl, err);
    char *ck = NULL;
    struct loch_err e2;
    bool have = !rc && cdc_applier_checkpoint(s->r->cat, s->src->name, a, &ck, &e2) == 0 && ck;
    if (!rc && !have) {
        rc = pgsrc_initial_sync(s, t, n, err);
        if (!rc)
            pgsrc_remember(s, t, n);
    } else if (!rc) {
        if (!pgoutput_lsn_parse(ck, &s->resume_lsn))
            rc = loch_errf(err, LOCH_ECORRUPT, "source %s: checkpoint \"%s\" is not an LSN", s->src->name, ck);
        if (s->resume_lsn > s->flushed_lsn)
            s->flushed_lsn = s->resume_lsn;
        struct slotinfo si;
        if (!rc)
            rc = pgsrc_slot_info(s, &si, err);
        if (!rc && !si.exists) {
            rc = loch_errf(err, LOCH_ESOURCE, "source %s: replication slot %s is gone; changes after %s are lost to it",
                           s->src->name, s->slot, ck);
            loch_err_hint(err, "to start over with a full load, drop the source's lake tables and delete the "
                               "checkpoint (loch_kv key cdc.%s.checkpoint)", s->src->name);
            rc = LOCH_ECONFIG; /* retrying cannot fix it */
        }
        /* Tables are declared by the stream's Relation messages, which describe them as
         * of each change (the catalog now may be ahead of the resume position); only
         * tables the lake lacks are loaded here. */
        if (!rc)
            rc = pgsrc_sync_tables(s, t, n, err);
    }
    arena_free(a);
    s->last_poll_ms = mono_ms();
    if (!rc)
        rc = pgsrc_stream(s, err);
    return rc;
}

int cdc_pg_run(struct cdc_run *r, struct loch_err *err)
{
    struct pgsrc s = {0};
    s.r = r;
    s.src = r->src;
    s.arena = arena_new();
    s.msg = arena_new();
    if (r->src->password_env) {
        s.password = getenv(r->src->password_env);
        if (!s.password) {
            arena_free(s.arena);
            arena_free(s.msg);
            loch_errf(err, LOCH_ECONFIG, "source %s: environment variable %s (password_env) is not set", r->src->name,
                      r->src->password_env);
            return loch_err_hint(err, "export %s=... before starting loch", r->src->password_env);
        }
    }
    char *base = ident_part(s.arena, r->src->name);
    s.slot = r->src->slot ? arena_strdup(s.arena, r->src->slot) : arena_printf(s.arena, "loch_%s", base);
    s.pub = r->src->publication ? arena_strdup(s.arena, r->src->publication) : arena_printf(s.arena, "loch_%s", base);
    s.pub_ins = arena_printf(s.arena, "%s_ins", s.pub);
    struct cdc_applier_options o = {
        .source = r->src->name,
        .state_dir = r->cfg->state_dir,
        .position_column = "_lsn",
        .position_type = {ICEBERG_LONG, 0, 0, 0},
        .flush_interval_ms = r->cfg->flush_interval_ms,
        .flush_min_changes = MIN_FLUSH_CHANGES,
    };
    /* Catching up is for throughput, not latency: flush by size (the flush thread writes
     * one batch while the next is received) and at the target. */
    if (r->catch_up) {
        o.flush_interval_ms = 3600 * 1000;
        o.flush_max_changes = CATCH_UP_FLUSH_CHANGES;
    }
    int rc = 0;
    struct cdc_retry retry;
    cdc_retry_init(&retry, CDC_RETRY_BASE_MS, CDC_RETRY_CAP_MS, CDC_RETRY_HEALTHY_MS, 0);
    bool first = true;
    while (!stopping(&s)) {
        rc = cdc_applier_open(&o, r->cat, r->st, r->eng, &s.ap, err);
        if (rc)
            break;
        cdc_retry_start(&retry);
        rc = session(&s, first, err);
        first = false;
        disconnect(&s);
        cdc_applier_close(s.ap);
        s.ap = NULL;
        if (rc != LOCH_ESOURCE)
            break;
        cdc_retry_wait(&retry, NULL, err, r->stop); /* err names the source; stopped: the loop ends */
        loch_err_clear(err);
        rc = 0;
    }
    if (rc == LOCH_ECANCELED && stopping(&s))
        rc = 0;
    arena_free(s.msg);
    arena_free(s.arena);
    free(s.rels);
    return rc;
}
