/* validate.c: `loch validate` for MySQL/MariaDB sources: every selected table's rows, in one
 * snapshot, copied into DuckDB temp tables in the forms the full load reads.
 * Not for comparing them (cmd/) or replication itself. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/util.h"
#include "cdc/mysql/mysql_int.h"

/* Writes every row of db.name to one CSV file in the canonical forms the full load uses. */
static int spill_whole(struct mysrc *m, MYSQL *c, const char *db, const char *name, const struct cdc_table *t,
                       const struct binlog_column *cols, const char *path, struct arena *a, struct loch_err *err)
{
    struct buf q = {0};
    buf_puts(&q, "SELECT ");
    for (size_t i = 0; i < t->n_columns; i++)
        buf_printf(&q, "%s%s", i ? ", " : "", mysrc_select_expr(a, &cols[i]));
    buf_puts(&q, " FROM ");
    mysrc_buf_ident(&q, db);
    buf_putc(&q, '.');
    mysrc_buf_ident(&q, name);
    int rc = mysql_real_query(c, q.data, q.len);
    buf_free(&q);
    MYSQL_RES *res = rc == 0 ? mysql_use_result(c) : NULL;
    if (!res)
        return mysrc_conn_error(c, m, "reading a table for validation", err);
    FILE *f = fopen(path, "w");
    if (!f) {
        mysql_free_result(res);
        return loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *lens = mysql_fetch_lengths(res);
        for (size_t i = 0; i < t->n_columns; i++) {
            if (i)
                putc_unlocked(',', f);
            uint8_t ty = cols[i].type;
            if (!row[i] || ((ty == BL_DATE || ty == BL_DATETIME2 || ty == BL_TIMESTAMP2) && mysrc_zero_date(row[i])))
                continue;
            mysrc_csv_field(f, row[i], lens[i]);
        }
        putc_unlocked('\n', f);
    }
    rc = mysql_errno(c) ? mysrc_conn_error(c, m, "reading a table for validation", err) : 0;
    mysql_free_result(res);
    if (fclose(f) != 0 && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

int cdc_mysql_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                   struct cdc_table_list *out, struct loch_err *err)
{
    struct mysrc m = {.r = r, .run = a};
    out->n = 0;
    out->t = NULL;
    int rc = mysrc_params_parse(r->src->url, r->src->password_env, a, &m.prm, err);
    if (!rc)
        rc = mysrc_connect(&m, &m.q, err);
    char *v = NULL;
    if (!rc)
        rc = mysrc_value(&m, m.q, "SELECT @@version", a, &v, err);
    m.is_mariadb = v && strstr(v, "MariaDB");
    /* one snapshot for every table, like the full load */
    if (!rc)
        rc = mysrc_exec(&m, m.q, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc)
        rc = mysrc_exec(&m, m.q, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err);
    MYSQL_RES *res = NULL;
    if (!rc) {
        const char *sql = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                          "WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME";
        if (mysql_real_query(m.q, sql, strlen(sql)) != 0 || !(res = mysql_store_result(m.q)))
            rc = mysrc_conn_error(m.q, &m, "listing tables", err);
    }
    size_t n = 0;
    char **dbs = NULL, **names = NULL;
    if (!rc) {
        size_t cap = mysql_num_rows(res) + 1;
        dbs = arena_alloc(a, cap * sizeof *dbs);
        names = arena_alloc(a, cap * sizeof *names);
        out->t = arena_alloc(a, cap * sizeof *out->t);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res))) {
            char *full = arena_printf(a, "%s.%s", row[0], row[1]);
            if ((!only || !strcmp(only, full)) &&
                mysrc_table_selected(row[0], row[1], r->src->tables, r->src->n_tables, r->src->exclude,
                                     r->src->n_exclude)) {
                dbs[n] = arena_strdup(a, row[0]);
                names[n++] = arena_strdup(a, row[1]);
            }
        }
    }
    if (res)
        mysql_free_result(res);
    char *dir = arena_printf(a, "%s/spill", r->cfg->state_dir);
    if (!rc)
        rc = util_mkdirs(dir, err);
    for (size_t i = 0; i < n && !rc; i++) {
        struct cdc_table *ct = &out->t[out->n];
        struct binlog_column *cols;
        rc = mysrc_table_from_schema(&m, m.q, dbs[i], names[i], a, ct, &cols, err);
        char *path = arena_printf(a, "%s/validate-%s-%zu.csv", dir, r->src->name, out->n);
        if (!rc)
            rc = spill_whole(&m, m.q, dbs[i], names[i], ct, cols, path, a, err);
        if (!rc)
            rc = cdc_csv_to_temp_table(conn, arena_printf(a, "__src_%zu", out->n), ct, path, err);
        unlink(path);
        if (!rc)
            out->n++;
    }
    if (!rc && only && n == 0) {
        loch_errf(err, LOCH_ENOENT, "source %s has no replicated table %s", r->src->name, only);
        loch_err_hint(err, "name it as DATABASE.TABLE; it must match tables: and not exclude:");
        rc = LOCH_ENOENT;
    }
    if (m.q)
        mysql_close(m.q);
    return rc;
}
