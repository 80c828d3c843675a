/* checks.c: what the MySQL/MariaDB source must be and have: server settings and privileges,
 * binlog positions and files, and the shapes of followed tables (from TABLE_MAP or
 * information_schema). Not for reading rows (load.c, stream.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "cdc/mysql/mysql_int.h"

/* ---- checks ---- */

int mysrc_refuse_setting(struct loch_err *err, const char *var, const char *have, const char *want,
                         const char *extra)
{
    loch_errf(err, LOCH_ECONFIG, "the source server has %s=%s; loch needs %s=%s", var,
              have ? have : "(not set)", var, want);
    return loch_err_hint(err, "SET GLOBAL %s=%s and put %s=%s under [mysqld] in the server's config%s",
                         var, want, var, want, extra ? extra : "");
}

int mysrc_check_server(struct mysrc *m, struct arena *a, struct loch_err *err)
{
    char *v;
    int rc;
    if ((rc = mysrc_value(m, m->q, "SELECT @@version", a, &v, err)))
        return rc;
    m->is_mariadb = v && strstr(v, "MariaDB") != NULL;
    if ((rc = mysrc_value(m, m->q, "SELECT @@log_bin", a, &v, err)))
        return rc;
    if (!v || strcmp(v, "1") != 0) {
        loch_errf(err, LOCH_ECONFIG, "binary logging is off on the source server (log_bin=OFF)");
        return loch_err_hint(err, "start the server with log_bin (log-bin=binlog under [mysqld]) and "
                                  "binlog_format=ROW, then restart it");
    }
    if ((rc = mysrc_value(m, m->q, "SELECT @@binlog_format", a, &v, err)))
        return rc;
    if (!v || strcasecmp(v, "ROW") != 0)
        return mysrc_refuse_setting(err, "binlog_format", v, "ROW",
                              "; sessions already open keep their format until they reconnect");
    if ((rc = mysrc_value(m, m->q, "SELECT @@binlog_row_image", a, &v, err)))
        return rc;
    if (!v || strcasecmp(v, "FULL") != 0)
        return mysrc_refuse_setting(err, "binlog_row_image", v, "FULL", NULL);
    /* Column names, signedness, ENUM/SET strings and the primary key come from the
     * TABLE_MAP metadata, so every table map carries its table's shape. */
    if (mysql_real_query(m->q, "SELECT @@binlog_row_metadata", 28) != 0) {
        loch_errf(err, LOCH_ECONFIG, "the source server has no binlog_row_metadata setting (%s)",
                  mysql_error(m->q));
        return loch_err_hint(err, "loch needs MariaDB 10.5+ or MySQL 8.0.1+ with binlog_row_metadata=FULL");
    }
    MYSQL_RES *res = mysql_store_result(m->q);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    v = row && row[0] ? arena_strdup(a, row[0]) : NULL;
    if (res)
        mysql_free_result(res);
    if (!v || strcasecmp(v, "FULL") != 0)
        return mysrc_refuse_setting(err, "binlog_row_metadata", v, "FULL", NULL);
    if ((rc = mysrc_value(m, m->q, "SELECT @@global.binlog_checksum", a, &v, err)))
        return rc;
    m->checksum = v && strcasecmp(v, "NONE") != 0;
    if (!m->is_mariadb) {
        /* MySQL 8 features MariaDB Connector/C cannot read (cdc-anchors 4b). */
        if (mysql_real_query(m->q, "SELECT @@binlog_transaction_compression", 39) == 0) {
            res = mysql_store_result(m->q);
            row = res ? mysql_fetch_row(res) : NULL;
            bool on = row && row[0] && strcmp(row[0], "0") != 0;
            if (res)
                mysql_free_result(res);
            if (on)
                return mysrc_refuse_setting(err, "binlog_transaction_compression", "ON", "OFF", NULL);
        }
        if (mysql_real_query(m->q, "SELECT @@binlog_row_value_options", 34) == 0) {
            res = mysql_store_result(m->q);
            row = res ? mysql_fetch_row(res) : NULL;
            bool partial = row && row[0] && strstr(row[0], "PARTIAL_JSON");
            if (res)
                mysql_free_result(res);
            if (partial)
                return mysrc_refuse_setting(err, "binlog_row_value_options", "PARTIAL_JSON", "''", NULL);
        }
        if ((rc = mysrc_value(m, m->q, "SELECT @@gtid_mode", a, &v, err)) == 0 && v &&
            !strcasecmp(v, "ON"))
            m->gtid_positions = true;
        loch_err_clear(err);
    } else {
        m->gtid_positions = true;
    }
    /* Privileges: read from SHOW GRANTS so the refusal names what is missing. */
    if (mysql_real_query(m->q, "SHOW GRANTS", 11) != 0)
        return mysrc_conn_error(m->q, m, "SHOW GRANTS", err);
    res = mysql_store_result(m->q);
    struct buf g = {0};
    while (res && (row = mysql_fetch_row(res)))
        if (row[0]) {
            buf_puts(&g, row[0]);
            buf_putc(&g, '\n');
        }
    if (res)
        mysql_free_result(res);
    const char *grants = g.data ? g.data : "";
    bool all = strstr(grants, "ALL PRIVILEGES ON *.*") != NULL;
    const char *missing = NULL;
    if (!all && !strstr(grants, "REPLICATION SLAVE"))
        missing = "REPLICATION SLAVE";
    else if (!all && !strstr(grants, "REPLICATION CLIENT") && !strstr(grants, "BINLOG MONITOR") &&
             !strstr(grants, "SUPER"))
        missing = "REPLICATION CLIENT";
    else if (!all && !strstr(grants, "SELECT"))
        missing = "SELECT";
    buf_free(&g);
    if (missing) {
        loch_errf(err, LOCH_EPERM, "the source user %s lacks the %s privilege", m->prm.user, missing);
        return loch_err_hint(err, "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '%s'@'%%'",
                             m->prm.user);
    }
    return 0;
}

/* SHOW MASTER STATUS (SHOW BINARY LOG STATUS on MySQL 8.4+). */
int mysrc_server_position(struct mysrc *m, MYSQL *c, struct mysrc_pos *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    if (mysql_real_query(c, "SHOW MASTER STATUS", 18) != 0 &&
        mysql_real_query(c, "SHOW BINARY LOG STATUS", 22) != 0)
        return mysrc_conn_error(c, m, "SHOW MASTER STATUS", err);
    MYSQL_RES *res = mysql_store_result(c);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    if (!row || !row[0] || !row[1]) {
        if (res)
            mysql_free_result(res);
        loch_errf(err, LOCH_ECONFIG, "the source server reports no binlog position (SHOW MASTER STATUS is empty)");
        return loch_err_hint(err, "enable log_bin on the server");
    }
    snprintf(out->file, sizeof out->file, "%s", row[0]);
    out->pos = strtoull(row[1], NULL, 10);
    int rc = 0;
    if (!m->is_mariadb && m->gtid_positions) {
        /* Executed_Gtid_Set, the 5th column, is the set at that position (MySQL reads it
         * just before the position, so a commit in between may be missing from it: the
         * stream then replays that transaction over rows that have it, which converges,
         * and the file's next PREVIOUS_GTIDS event completes the set). */
        struct mysrc_gtid_set set = {0};
        rc = mysrc_gtid_set_parse(mysql_num_fields(res) >= 5 ? row[4] : NULL, &set, err);
        if (!rc) {
            struct arena *a = arena_new(); /* lifetime: this formatting */
            char *text = mysrc_gtid_set_format(&set, a);
            if (strlen(text) >= sizeof out->gtid)
                rc = loch_errf(err, LOCH_EUNSUPPORTED, "the source's executed GTID set is %zu bytes of text; loch "
                               "keeps at most %zu in a checkpoint", strlen(text), sizeof out->gtid - 1);
            else
                memcpy(out->gtid, text, strlen(text) + 1);
            out->gtid_is_set = true;
            arena_free(a);
        }
        mysrc_gtid_set_free(&set);
    }
    mysql_free_result(res);
    return rc;
}

/* True when file is still on the server (SHOW BINARY LOGS). */
int mysrc_binlog_exists(struct mysrc *m, const char *file, bool *out, struct loch_err *err)
{
    *out = false;
    if (mysql_real_query(m->q, "SHOW BINARY LOGS", 16) != 0)
        return mysrc_conn_error(m->q, m, "SHOW BINARY LOGS", err);
    MYSQL_RES *res = mysql_store_result(m->q);
    MYSQL_ROW row;
    while (res && (row = mysql_fetch_row(res)))
        if (row[0] && !strcmp(row[0], file))
            *out = true;
    if (res)
        mysql_free_result(res);
    return 0;
}

/* The binlog files on the server, oldest first, each with its PREVIOUS_GTIDS event's
 * text (SHOW BINLOG EVENTS' Info column: the set, as MySQL prints sets), in a. */
static int binlog_files(struct mysrc *m, struct arena *a, struct mysrc_binlog_file **out, size_t *n,
                        struct loch_err *err)
{
    *out = NULL;
    *n = 0;
    if (mysql_real_query(m->q, "SHOW BINARY LOGS", 16) != 0)
        return mysrc_conn_error(m->q, m, "SHOW BINARY LOGS", err);
    MYSQL_RES *res = mysql_store_result(m->q);
    if (!res)
        return mysrc_conn_error(m->q, m, "SHOW BINARY LOGS", err);
    struct mysrc_binlog_file *f = arena_alloc(a, (mysql_num_rows(res) + 1) * sizeof *f);
    MYSQL_ROW row;
    size_t k = 0;
    while ((row = mysql_fetch_row(res)))
        if (row[0])
            f[k++].name = arena_strdup(a, row[0]);
    mysql_free_result(res);
    for (size_t i = 0; i < k; i++) {
        /* FORMAT_DESCRIPTION, PREVIOUS_GTIDS, then the first group (MySQL 5.6+ writes the
         * PREVIOUS_GTIDS event into every file, with gtid_mode off too) */
        char esc[600];
        mysql_real_escape_string(m->q, esc, f[i].name, (unsigned long)strlen(f[i].name));
        char *sql = arena_printf(a, "SHOW BINLOG EVENTS IN '%s' LIMIT 3", esc);
        if (mysql_real_query(m->q, sql, strlen(sql)) != 0 || !(res = mysql_store_result(m->q)))
            return mysrc_conn_error(m->q, m, sql, err);
        while ((row = mysql_fetch_row(res)))
            if (mysql_num_fields(res) >= 6 && row[2] && !strcmp(row[2], "Previous_gtids"))
                f[i].previous_gtids = arena_strdup(a, row[5] ? row[5] : "");
        mysql_free_result(res);
    }
    *out = f;
    *n = k;
    return 0;
}

/* The checkpoint's file was purged (MySQL, gtid_mode=ON, the checkpoint holds the
 * executed set in m->executed): moves m->pos to the start of the newest file whose
 * Previous_gtids the set covers (mysrc_gtid_resume_file); its groups already in the set
 * are skipped by on_event. */
int mysrc_resume_by_gtid_set(struct mysrc *m, struct arena *a, const char *cp, struct loch_err *err)
{
    struct mysrc_binlog_file *files;
    size_t n, k;
    int rc = binlog_files(m, a, &files, &n, err);
    if (!rc)
        rc = mysrc_gtid_resume_file(files, n, &m->executed, &k, err);
    if (rc == LOCH_ECONFIG) {
        loch_err_detail(err, "the saved position was %s", cp);
        return loch_err_hint(err, "re-snapshot: drop this source's lake tables and the checkpoint key "
                                  "cdc.%s.checkpoint, then run loch replicate again; raise the server's "
                                  "binlog retention", m->r->src->name);
    }
    if (rc)
        return rc;
    log_warn("mysql source %s: binlog %s is gone; resuming by GTID set from %s:4 (the newest file whose "
             "Previous_gtids the lake has), skipping the transactions the lake already has",
             m->r->src->name, m->pos.file, files[k].name);
    snprintf(m->pos.file, sizeof m->pos.file, "%s", files[k].name);
    m->pos.pos = 4;
    snprintf(m->skip_from, sizeof m->skip_from, "%s", files[k].name);
    m->n_skipped = 0;
    return 0;
}

/* ---- shapes ---- */

struct shape *mysrc_shape_find(struct mysrc *m, const char *db, const char *name)
{
    for (size_t i = 0; i < m->n_shapes; i++)
        if (!strcmp(m->shapes[i]->db, db) && !strcmp(m->shapes[i]->name, name))
            return m->shapes[i];
    return NULL;
}

struct shape *mysrc_shape_get(struct mysrc *m, const char *db, const char *name)
{
    struct shape *s = mysrc_shape_find(m, db, name);
    if (s)
        return s;
    s = arena_alloc(m->run, sizeof *s);
    s->db = arena_strdup(m->run, db);
    s->name = arena_strdup(m->run, name);
    m->shapes = arena_grow(m->run, m->shapes, m->n_shapes, m->n_shapes + 1, sizeof *m->shapes);
    m->shapes[m->n_shapes++] = s;
    return s;
}

static bool same_shape(const struct cdc_table *a, const struct cdc_table *b)
{
    if (a->n_columns != b->n_columns || a->has_key != b->has_key)
        return false;
    for (size_t i = 0; i < a->n_columns; i++) {
        const struct cdc_column *x = &a->columns[i], *y = &b->columns[i];
        if (strcmp(x->name, y->name) || !iceberg_type_equal(&x->type, &y->type) ||
            x->key != y->key || x->nullable != y->nullable)
            return false;
    }
    return true;
}

/* Declares t (built in any arena) for shape s when it differs from what the applier has. */
int mysrc_shape_declare(struct mysrc *m, struct shape *s, const struct cdc_table *t, struct loch_err *err)
{
    if (s->declared && same_shape(&s->t, t))
        return 0;
    struct cdc_table c = *t;
    c.columns = arena_alloc(m->run, (t->n_columns ? t->n_columns : 1) * sizeof *c.columns);
    for (size_t i = 0; i < t->n_columns; i++) {
        c.columns[i] = t->columns[i];
        c.columns[i].name = arena_strdup(m->run, t->columns[i].name);
        c.columns[i].source_type = arena_strdup(m->run, t->columns[i].source_type);
    }
    c.source = m->r->src->name;
    c.schema = s->db;
    c.name = s->name;
    int rc = cdc_applier_table(m->ap, &c, err);
    if (rc)
        return rc;
    s->t = c;
    s->declared = true;
    return 0;
}

static const char *type_name(uint8_t t)
{
    switch (t) {
    case BL_TINY: return "tinyint";
    case BL_SHORT: return "smallint";
    case BL_INT24: return "mediumint";
    case BL_LONG: return "int";
    case BL_LONGLONG: return "bigint";
    case BL_FLOAT: return "float";
    case BL_DOUBLE: return "double";
    case BL_NEWDECIMAL: return "decimal";
    case BL_BIT: return "bit";
    case BL_YEAR: return "year";
    case BL_DATE: return "date";
    case BL_TIME: case BL_TIME2: return "time";
    case BL_DATETIME: case BL_DATETIME2: return "datetime";
    case BL_TIMESTAMP: case BL_TIMESTAMP2: return "timestamp";
    case BL_VARCHAR: case BL_VAR_STRING: return "varchar";
    case BL_STRING: return "char";
    case BL_BLOB: return "blob/text";
    case BL_JSON: return "json";
    case BL_ENUM: return "enum";
    case BL_SET: return "set";
    case BL_GEOMETRY: return "geometry";
    default: return "unknown";
    }
}

/* The cdc_table of a TABLE_MAP (in a). Needs the FULL row metadata (names). */
int mysrc_table_from_map(struct mysrc *m, const struct binlog_table *bt, struct arena *a,
                         struct cdc_table *t, struct loch_err *err)
{
    memset(t, 0, sizeof *t);
    if (!bt->has_metadata) {
        loch_errf(err, LOCH_ECONFIG, "the binlog table map of %s.%s carries no column names", bt->db, bt->name);
        return loch_err_hint(err, "SET GLOBAL binlog_row_metadata=FULL (and in the server's config); "
                                  "events written before the change cannot be read: re-snapshot");
    }
    t->source = m->r->src->name;
    t->schema = bt->db;
    t->name = bt->name;
    t->n_columns = bt->n_cols;
    t->columns = arena_alloc(a, (bt->n_cols ? bt->n_cols : 1) * sizeof *t->columns);
    for (size_t i = 0; i < bt->n_cols; i++) {
        struct cdc_column *c = &t->columns[i];
        const struct binlog_column *bc = &bt->cols[i];
        c->name = bc->name;
        c->nullable = bc->nullable;
        c->source_type = arena_printf(a, "%s%s", type_name(bc->type), bc->is_unsigned ? " unsigned" : "");
        int rc = binlog_column_type(bc, &c->type, err);
        if (rc)
            return loch_err_prefix(err, "%s.%s.%s", bt->db, bt->name, bc->name);
    }
    for (size_t i = 0; i < bt->n_pk; i++)
        t->columns[bt->pk[i]].key = true;
    t->has_key = bt->n_pk > 0;
    t->full_identity = !t->has_key; /* FULL row images carry every column */
    return 0;
}

/* The shape of db.name from information_schema (for the full load and for tables that
 * were created or truncated before any row of theirs was seen). cols_out: the binlog
 * column model of each column, for the full-load SELECT. LOCH_ENOENT when gone. */
int mysrc_table_from_schema(struct mysrc *m, MYSQL *c, const char *db, const char *name, struct arena *a,
                            struct cdc_table *t, struct binlog_column **cols_out, struct loch_err *err)
{
    char edb[512], ename[512];
    mysql_real_escape_string(c, edb, db, (unsigned long)strlen(db));
    mysql_real_escape_string(c, ename, name, (unsigned long)strlen(name));
    char *sql = arena_printf(a,
        "SELECT COLUMN_NAME, DATA_TYPE, COLUMN_TYPE, IFNULL(NUMERIC_PRECISION,0), IFNULL(NUMERIC_SCALE,0), "
        "IFNULL(DATETIME_PRECISION,0), CHARACTER_SET_NAME, IFNULL(CHARACTER_OCTET_LENGTH,0), IS_NULLABLE, "
        "COLUMN_KEY FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%s' AND TABLE_NAME='%s' "
        "ORDER BY ORDINAL_POSITION", edb, ename);
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return mysrc_conn_error(c, m, "reading information_schema.COLUMNS", err);
    MYSQL_RES *res = mysql_store_result(c);
    if (!res)
        return mysrc_conn_error(c, m, "reading information_schema.COLUMNS", err);
    size_t n = mysql_num_rows(res);
    memset(t, 0, sizeof *t);
    t->source = m->r->src->name;
    t->schema = arena_strdup(a, db);
    t->name = arena_strdup(a, name);
    t->n_columns = n;
    t->columns = arena_alloc(a, (n ? n : 1) * sizeof *t->columns);
    struct binlog_column *cols = arena_alloc(a, (n ? n : 1) * sizeof *cols);
    MYSQL_ROW row;
    size_t i = 0;
    int rc = 0;
    while ((row = mysql_fetch_row(res)) && i < n) {
        struct cdc_column *cc = &t->columns[i];
        rc = mysrc_column_from_schema(row[1], row[2], strtoll(row[3], NULL, 10), strtoll(row[4], NULL, 10),
                                      strtoll(row[5], NULL, 10), row[6], strtoll(row[7], NULL, 10),
                                      m->is_mariadb, a, &cols[i], err);
        if (!rc)
            rc = binlog_column_type(&cols[i], &cc->type, err);
        if (rc) {
            loch_err_prefix(err, "%s.%s.%s", db, name, row[0]);
            break;
        }
        cc->name = arena_strdup(a, row[0]);
        cols[i].name = cc->name;
        cc->source_type = arena_strdup(a, row[2]);
        cc->nullable = !strcmp(row[8], "YES");
        cc->key = !strcmp(row[9], "PRI");
        t->has_key |= cc->key;
        i++;
    }
    mysql_free_result(res);
    if (rc)
        return rc;
    if (n == 0)
        return loch_errf(err, LOCH_ENOENT, "table %s.%s does not exist at the source", db, name);
    t->full_identity = !t->has_key;
    if (cols_out)
        *cols_out = cols;
    return 0;
}
