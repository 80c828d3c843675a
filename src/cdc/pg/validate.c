/* validate.c: `loch validate` for PostgreSQL sources: every selected table's rows copied
 * into DuckDB temp tables, each value converted as replication converts it.
 * Not for comparing them (cmd/) or replication itself. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cdc/pg/pg_int.h"

static int copy_whole(struct pgsrc *s, const struct srctab *st, const struct cdc_table *t, const enum pgsrc_conv *conv,
                      const char *path, struct loch_err *err)
{
    struct arena *a = arena_new();
    struct buf sql = {0};
    buf_puts(&sql, "COPY (SELECT ");
    for (size_t i = 0; i < t->n_columns; i++)
        buf_printf(&sql, "%s%s", i ? ", " : "",
                   pgsrc_copy_expr(conv[i], arena_sql_ident(a, t->columns[i].name), a));
    buf_printf(&sql, " FROM ONLY %s.%s) TO STDOUT (FORMAT csv)", arena_sql_ident(a, st->schema),
               arena_sql_ident(a, st->name));
    PGresult *r = PQexec(s->sql, sql.data);
    buf_free(&sql);
    int rc = 0;
    if (PQresultStatus(r) != PGRES_COPY_OUT) {
        rc = pgsrc_fail(s, r, arena_printf(a, "reading table %s.%s", st->schema, st->name), err);
        arena_free(a);
        return rc;
    }
    PQclear(r);
    FILE *f = fopen(path, "w");
    if (!f)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    char *line;
    int n;
    while ((n = PQgetCopyData(s->sql, &line, 0)) > 0) {
        if (f && !rc && fwrite(line, 1, (size_t)n, f) != (size_t)n)
            rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        PQfreemem(line);
    }
    if (f && fclose(f) && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    if (n == -2 && !rc)
        rc = loch_errf(err, LOCH_ESOURCE, "source %s: reading %s.%s failed: %s", s->src->name, st->schema, st->name,
                       PQerrorMessage(s->sql));
    while ((r = PQgetResult(s->sql))) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && !rc)
            rc = pgsrc_fail(s, r, "reading a table", err);
        else
            PQclear(r);
    }
    arena_free(a);
    return rc;
}

int cdc_pg_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                struct cdc_table_list *out, struct loch_err *err)
{
    struct pgsrc s = {0};
    s.r = r;
    s.src = r->src;
    s.arena = a;
    if (r->src->password_env)
        s.password = getenv(r->src->password_env);
    int rc = pgsrc_connect(&s, false, &s.sql, err);
    struct srctab *t = NULL;
    size_t n = 0;
    if (!rc)
        rc = pgsrc_list_tables(&s, a, &t, &n, err);
    out->t = arena_alloc(a, (n + 1) * sizeof *out->t);
    out->n = 0;
    char *dir = arena_printf(a, "%s/spill", r->cfg->state_dir);
    if (!rc)
        rc = util_mkdirs(dir, err);
    bool found = !only;
    for (size_t i = 0; i < n && !rc; i++) {
        char *full = arena_printf(a, "%s.%s", t[i].schema, t[i].name);
        if (only && strcmp(only, full))
            continue;
        found = true;
        struct cdc_table *ct = &out->t[out->n];
        enum pgsrc_conv *conv;
        rc = pgsrc_describe(&s, &t[i], a, ct, &conv, err);
        char *path = arena_printf(a, "%s/validate-%s-%zu.csv", dir, r->src->name, out->n);
        if (!rc)
            rc = copy_whole(&s, &t[i], ct, conv, path, err);
        if (!rc)
            rc = cdc_csv_to_temp_table(conn, arena_printf(a, "__src_%zu", out->n), ct, path, err);
        unlink(path);
        if (!rc)
            out->n++;
    }
    if (!rc && !found) {
        loch_errf(err, LOCH_ENOENT, "source %s has no replicated table %s", r->src->name, only);
        loch_err_hint(err, "name it as SCHEMA.TABLE, as the source spells it; it must match tables: and not exclude:");
        rc = LOCH_ENOENT;
    }
    PQfinish(s.sql);
    return rc;
}
