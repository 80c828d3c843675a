/* pgwire_ext.c: the extended query protocol (Parse, Bind, Describe, Execute, Close) and
 * a connection's prepared statements and portals. Running them is pgwire_query.c's.
 * Not for the simple protocol nor for decoding the messages (pgwire_msg.c). */
#include "server/pgwire_int.h"

#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"

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
    pgwire_portal_close(c, p);
    for (uint16_t i = 0; i < p->n_params; i++)
        free((void *)p->params[i].data);
    free(p->params);
    free(p->fmts);
    free(p->rfmts);
    free(p->name);
    free(p);
}

void pgwire_drop_portal(struct conn *c, const char *name)
{
    for (struct portal **pp = &c->portals; *pp; pp = &(*pp)->next)
        if (!strcmp((*pp)->name, name)) {
            struct portal *p = *pp;
            *pp = p->next;
            portal_free(c, p);
            return;
        }
}

void pgwire_drop_prep(struct conn *c, const char *name)
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

int pgwire_ext_parse(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
{
    pgwire_free_connection(c);
    const char *name = m->u.parse.name;
    if (*name && find_prep(c, name))
        return loch_errf(err, LOCH_EEXIST, "prepared statement \"%s\" already exists", name);
    if (!*name)
        pgwire_drop_prep(c, "");
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
    struct query_answer ans;
    bool cat = false;
    if (n && query_intercept(&c->cl, c->msg_arena, p->sql, &ans) == QUERY_IC_NONE) {
        rc = query_prepare_catalog(c->qs, p->sql, &p->st, &cat, err);
        if (cat && rc) { /* beyond loch's description of the catalog: no rows */
            log_debug("pgwire: catalog query answered empty: %s", err->msg);
            loch_err_clear(err);
            rc = 0;
            p->empty = true;
        } else if (!cat && query_is_read(p->sql)) {
            /* a named statement is kept and run again later: no pruned view (query.h) */
            query_set_pruning(c->qs, !*name);
            rc = query_prepare(c->qs, p->sql, &p->st, err);
            query_set_pruning(c->qs, true);
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

int pgwire_ext_bind(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
{
    struct prep *pr = find_prep(c, m->u.bind.stmt);
    if (!pr)
        return loch_errf(err, LOCH_ENOENT, "prepared statement \"%s\" does not exist", m->u.bind.stmt);
    if (*m->u.bind.portal && find_portal(c, m->u.bind.portal))
        return loch_errf(err, LOCH_EEXIST, "portal \"%s\" already exists", m->u.bind.portal);
    pgwire_drop_portal(c, m->u.bind.portal);
    size_t need = pr->st ? engine_stmt_nparams(pr->st) : 0;
    if (m->u.bind.n_params != need && pr->st)
        return loch_errf(err, LOCH_EPROTO, "bind message supplies %u parameters, but prepared statement \"%s\" "
                         "requires %zu", m->u.bind.n_params, pr->name, need);
    if (!pr->st && m->u.bind.n_params) {
        loch_errf(err, LOCH_EUNSUPPORTED, "parameters are supported in queries, not in this statement");
        return loch_err_hint(err, "put the values in the statement text");
    }
    if (*pr->name && pr->st) { /* a kept statement reads the tables as they are now */
        pgwire_free_connection(c);
        int rc = query_refresh(c->qs, pr->sql, err);
        if (rc)
            return rc;
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
    struct query_answer ans = {0};
    if (query_intercept(&c->cl, c->msg_arena, sql, &ans) == QUERY_IC_ROWS) {
        pgwire_send_text_row_description(c, ans.name);
    } else {
        size_t m = pgwire_begin(&c->out, 'n');
        pgwire_end(&c->out, m);
    }
}

int pgwire_ext_describe(struct conn *c, const struct pgwire_msg *m, struct loch_err *err)
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
            pgwire_send_row_description(c, NULL, pr->st, NULL, 0);
        else if (pr->empty)
            pgwire_send_empty_description(c, pr->sql);
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
        int rc = p->done ? 0 : pgwire_portal_start(c, p, err);
        if (rc)
            return rc;
        if (p->stream && engine_stream_ncols(p->stream) > 0) {
            pgwire_send_row_description(c, p->stream, NULL, p->rfmts, p->n_rfmts);
            return 0;
        }
        if (!p->stream && engine_stmt_returns_rows(p->prep->st)) {
            pgwire_send_row_description(c, NULL, p->prep->st, p->rfmts, p->n_rfmts);
            return 0;
        }
    }
    if (p->prep->empty)
        pgwire_send_empty_description(c, p->prep->sql);
    else
        describe_intercepted(c, p->prep->sql);
    return 0;
}

int pgwire_ext_execute(struct conn *c, const struct pgwire_msg *m, struct loch_err *err, const char **sql_out)
{
    struct portal *p = find_portal(c, m->u.execute.portal);
    if (!p)
        return loch_errf(err, LOCH_ENOENT, "portal \"%s\" does not exist", m->u.execute.portal);
    *sql_out = p->prep->sql;
    double t0 = util_mono_s();
    uint64_t rows = 0;
    int64_t scanned = 0;
    int rc = 0;
    struct query_answer ans = {0};
    enum query_intercept ic = p->prep->st ? QUERY_IC_NONE : query_intercept(&c->cl, c->msg_arena, p->prep->sql, &ans);
    if (p->prep->empty) {
        pgwire_complete(&c->out, "SELECT 0");
        return 0;
    }
    if (!*p->prep->sql) {
        size_t mk = pgwire_begin(&c->out, 'I');
        pgwire_end(&c->out, mk);
        return 0;
    }
    if (ic == QUERY_IC_DONE) {
        pgwire_complete(&c->out, ans.tag);
    } else if (ic == QUERY_IC_ROWS) {
        pgwire_send_one_text_row(c, ans.name, ans.value, false);
        rows = 1;
    } else if (p->prep->st) {
        rc = pgwire_execute_portal(c, p, m->u.execute.max_rows, false, &rows, err);
        scanned = p->prep->scanned;
    } else {
        rc = pgwire_run_command(c, p->prep->sql, false, &rows, err);
        scanned = query_scanned_bytes(c->qs);
    }
    if (!p->stream) /* finished (not suspended): log once per execution */
        pgwire_log_query(c, p->prep->sql, t0, p->rows_sent ? p->rows_sent : rows, scanned, rc ? err : NULL);
    return rc;
}

int pgwire_ext_close(struct conn *c, const struct pgwire_msg *m)
{
    if (m->u.describe.kind == 'S')
        pgwire_drop_prep(c, m->u.describe.name);
    else
        pgwire_drop_portal(c, m->u.describe.name);
    size_t mk = pgwire_begin(&c->out, '3');
    pgwire_end(&c->out, mk);
    return 0;
}

