/* source.c: the MySQL/MariaDB source behind cdc_mysql_run (cdc/source.h): server checks
 * with refusals that name the setting, a consistent full load without a global lock for
 * the load, then binlog streaming through MariaDB Connector/C's mariadb_rpl into the
 * shared applier (cdc/change.h), whole transactions at a time, with the binlog position
 * (and GTID) as the checkpoint committed with the data. Reconnects with backoff.
 * Not for byte layouts (binlog.c) or the lake (the applier). */
#include <errno.h>
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <mariadb_rpl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"
#include "cdc/change.h"
#include "cdc/load.h"
#include "cdc/mysql/binlog.h"
#include "cdc/mysql/mysql.h"
#include "cdc/source.h"
#include "iceberg/table.h"

/* A followed table's shape as last declared to the applier. */
struct shape {
    char *db, *name;      /* in the run arena */
    struct cdc_table t;   /* deep copy in the run arena */
    bool declared;        /* given to the current applier */
};

struct txrow {
    struct shape *sh;
    struct binlog_row r;
};

struct tmap {
    uint64_t id;
    struct binlog_table *bt;
    struct shape *sh;     /* NULL when the table is not followed */
};

struct my {
    struct cdc_run *r;
    struct arena *run;    /* lifetime: cdc_mysql_run */
    struct mysql_params prm;
    uint32_t server_id;
    bool is_mariadb, gtid_positions;
    bool checksum;        /* events end with a CRC32 (binlog_checksum != NONE) */
    const char *position_column;
    MYSQL *q;             /* queries: checks, schema look-ups (lifetime: one attempt) */
    struct cdc_applier *ap;
    struct shape **shapes;
    size_t n_shapes;
    /* streaming state (lifetime: one attempt) */
    struct arena *tx;     /* lifetime: one source transaction */
    struct tmap *maps;
    size_t n_maps, cap_maps;
    struct txrow *rows;
    size_t n_rows, cap_rows;
    bool in_tx;           /* inside an event group (after GTID or BEGIN) */
    bool began;           /* a BEGIN query opened the group: other queries are inside it */
    char gtid[128];       /* GTID of the open transaction ("" = none) */
    int64_t tx_ts_us;
    struct mysql_pos pos; /* read position: end of the last whole event group */
    char file[256];       /* current binlog file */
    /* MariaDB: last GTID per domain, comma-separated. MySQL: the executed set's canonical
     * text when executed_known, else (gtid_mode off, or a checkpoint written before loch
     * kept sets) the last GTID. */
    char gtid_state[MYSQL_GTID_TEXT_MAX];
    /* MySQL with gtid_mode=ON: every GTID up to pos (lifetime: run, read again from the
     * checkpoint by every attempt; heap). A group whose GTID is already in it is skipped. */
    struct mysql_gtid_set executed;
    bool executed_known;
    struct mysql_gtid cur;  /* GTID of the open MySQL group (cur_valid) */
    bool cur_valid;
    bool skip_tx;           /* the open group is already in the lake: nothing reaches the applier */
    uint64_t n_skipped;     /* groups skipped since skip_from was set */
    char skip_from[256];    /* resumed by GTID set from this file ("" = not) */
    int64_t last_event_s; /* header timestamp of the last event read (0 = none) */
    int64_t last_flush_ms;
    int64_t staged;       /* row changes handed to the applier since its last flush */
    const struct mysql_pos *until; /* catch-up target (NULL when following) */
    struct mysql_pos saved;        /* read position at the last flush */
    bool progressed;
};

/* ---- connections and queries ---- */

static int conn_error(MYSQL *c, const struct my *m, const char *what, struct loch_err *err)
{
    unsigned e = mysql_errno(c);
    if (e == ER_ACCESS_DENIED_ERROR || e == 1698 /* ER_ACCESS_DENIED_NO_PASSWORD_ERROR */) {
        loch_errf(err, LOCH_EAUTH, "MySQL server %s:%u refused the login of %s: %s", m->prm.host,
                  m->prm.port, m->prm.user, mysql_error(c));
        return loch_err_hint(err, "check the user in url: and the password in the variable named by "
                                  "password_env:");
    }
    if (e == ER_SPECIFIC_ACCESS_DENIED_ERROR || e == ER_TABLEACCESS_DENIED_ERROR ||
        e == ER_DBACCESS_DENIED_ERROR || e == ER_COLUMNACCESS_DENIED_ERROR) {
        loch_errf(err, LOCH_EPERM, "%s on %s:%u: %s", what, m->prm.host, m->prm.port, mysql_error(c));
        return loch_err_hint(err, "GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO '%s'@'%%'",
                             m->prm.user);
    }
    if (e == ER_MASTER_FATAL_ERROR_READING_BINLOG) {
        loch_errf(err, LOCH_ECONFIG, "the server cannot send the binlog from the saved position: %s",
                  mysql_error(c));
        loch_err_detail(err, "the binlog files holding it were probably purged (binlog_expire_logs_seconds, "
                             "PURGE BINARY LOGS)");
        return loch_err_hint(err, "re-snapshot: drop this source's lake tables (loch sql \"DROP TABLE ...\") "
                                  "and its checkpoint key cdc.<source>.checkpoint, then run loch replicate again; "
                                  "raise binlog retention so it cannot happen again");
    }
    if (e >= 2000 && e < 3000) /* client errors: server gone, lost connection, cannot connect */
        return loch_errf(err, LOCH_ESOURCE, "%s on %s:%u: %s", what, m->prm.host, m->prm.port, mysql_error(c));
    return loch_errf(err, LOCH_ESOURCE, "%s on %s:%u: %s (error %u)", what, m->prm.host, m->prm.port,
                     mysql_error(c), e);
}

static int q_exec(struct my *m, MYSQL *c, const char *sql, struct loch_err *err)
{
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return conn_error(c, m, sql, err);
    MYSQL_RES *res = mysql_store_result(c);
    if (res)
        mysql_free_result(res);
    return 0;
}

/* First column of the first row of sql, in a (NULL when no row or SQL NULL). */
static int q_value(struct my *m, MYSQL *c, const char *sql, struct arena *a, char **out,
                   struct loch_err *err)
{
    *out = NULL;
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return conn_error(c, m, sql, err);
    MYSQL_RES *res = mysql_store_result(c);
    if (!res)
        return conn_error(c, m, sql, err);
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0])
        *out = arena_strdup(a, row[0]);
    mysql_free_result(res);
    return 0;
}

static int connect_server(struct my *m, MYSQL **out, struct loch_err *err)
{
    MYSQL *c = mysql_init(NULL);
    if (!c)
        return loch_errf(err, LOCH_ENOMEM, "mysql_init failed");
    unsigned timeout = 10, rw_timeout = 600;
    mysql_optionsv(c, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_optionsv(c, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_optionsv(c, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    mysql_optionsv(c, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    if (m->prm.tls && strcmp(m->prm.tls, "off") != 0) {
        my_bool on = 1;
        mysql_optionsv(c, MYSQL_OPT_SSL_ENFORCE, &on);
        if (!strcmp(m->prm.tls, "verify"))
            mysql_optionsv(c, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &on);
    }
    if (!mysql_real_connect(c, m->prm.host, m->prm.user, m->prm.password ? m->prm.password : "",
                            NULL, m->prm.port, NULL, 0)) {
        int rc = conn_error(c, m, "connecting", err);
        mysql_close(c);
        return rc;
    }
    /* TIMESTAMP values read as UTC text; utf8mb4 for every string. */
    int rc = q_exec(m, c, "SET time_zone = '+00:00', NAMES utf8mb4", err);
    if (rc) {
        mysql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- checks ---- */

static int refuse_setting(struct loch_err *err, const char *var, const char *have, const char *want,
                          const char *extra)
{
    loch_errf(err, LOCH_ECONFIG, "the source server has %s=%s; loch needs %s=%s", var,
              have ? have : "(not set)", var, want);
    return loch_err_hint(err, "SET GLOBAL %s=%s and put %s=%s under [mysqld] in the server's config%s",
                         var, want, var, want, extra ? extra : "");
}

static int check_server(struct my *m, struct arena *a, struct loch_err *err)
{
    char *v;
    int rc;
    if ((rc = q_value(m, m->q, "SELECT @@version", a, &v, err)))
        return rc;
    m->is_mariadb = v && strstr(v, "MariaDB") != NULL;
    if ((rc = q_value(m, m->q, "SELECT @@log_bin", a, &v, err)))
        return rc;
    if (!v || strcmp(v, "1") != 0) {
        loch_errf(err, LOCH_ECONFIG, "binary logging is off on the source server (log_bin=OFF)");
        return loch_err_hint(err, "start the server with log_bin (log-bin=binlog under [mysqld]) and "
                                  "binlog_format=ROW, then restart it");
    }
    if ((rc = q_value(m, m->q, "SELECT @@binlog_format", a, &v, err)))
        return rc;
    if (!v || strcasecmp(v, "ROW") != 0)
        return refuse_setting(err, "binlog_format", v, "ROW",
                              "; sessions already open keep their format until they reconnect");
    if ((rc = q_value(m, m->q, "SELECT @@binlog_row_image", a, &v, err)))
        return rc;
    if (!v || strcasecmp(v, "FULL") != 0)
        return refuse_setting(err, "binlog_row_image", v, "FULL", NULL);
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
        return refuse_setting(err, "binlog_row_metadata", v, "FULL", NULL);
    if ((rc = q_value(m, m->q, "SELECT @@global.binlog_checksum", a, &v, err)))
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
                return refuse_setting(err, "binlog_transaction_compression", "ON", "OFF", NULL);
        }
        if (mysql_real_query(m->q, "SELECT @@binlog_row_value_options", 34) == 0) {
            res = mysql_store_result(m->q);
            row = res ? mysql_fetch_row(res) : NULL;
            bool partial = row && row[0] && strstr(row[0], "PARTIAL_JSON");
            if (res)
                mysql_free_result(res);
            if (partial)
                return refuse_setting(err, "binlog_row_value_options", "PARTIAL_JSON", "''", NULL);
        }
        if ((rc = q_value(m, m->q, "SELECT @@gtid_mode", a, &v, err)) == 0 && v &&
            !strcasecmp(v, "ON"))
            m->gtid_positions = true;
        loch_err_clear(err);
    } else {
        m->gtid_positions = true;
    }
    /* Privileges: read from SHOW GRANTS so the refusal names what is missing. */
    if (mysql_real_query(m->q, "SHOW GRANTS", 11) != 0)
        return conn_error(m->q, m, "SHOW GRANTS", err);
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
static int server_position(struct my *m, MYSQL *c, struct mysql_pos *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    if (mysql_real_query(c, "SHOW MASTER STATUS", 18) != 0 &&
        mysql_real_query(c, "SHOW BINARY LOG STATUS", 22) != 0)
        return conn_error(c, m, "SHOW MASTER STATUS", err);
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
        struct mysql_gtid_set set = {0};
        rc = mysql_gtid_set_parse(mysql_num_fields(res) >= 5 ? row[4] : NULL, &set, err);
        if (!rc) {
            struct arena *a = arena_new(); /* lifetime: this formatting */
            char *text = mysql_gtid_set_format(&set, a);
            if (strlen(text) >= sizeof out->gtid)
                rc = loch_errf(err, LOCH_EUNSUPPORTED, "the source's executed GTID set is %zu bytes of text; loch "
                               "keeps at most %zu in a checkpoint", strlen(text), sizeof out->gtid - 1);
            else
                memcpy(out->gtid, text, strlen(text) + 1);
            out->gtid_is_set = true;
            arena_free(a);
        }
        mysql_gtid_set_free(&set);
    }
    mysql_free_result(res);
    return rc;
}

/* True when file is still on the server (SHOW BINARY LOGS). */
static int binlog_exists(struct my *m, const char *file, bool *out, struct loch_err *err)
{
    *out = false;
    if (mysql_real_query(m->q, "SHOW BINARY LOGS", 16) != 0)
        return conn_error(m->q, m, "SHOW BINARY LOGS", err);
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
static int binlog_files(struct my *m, struct arena *a, struct mysql_binlog_file **out, size_t *n,
                        struct loch_err *err)
{
    *out = NULL;
    *n = 0;
    if (mysql_real_query(m->q, "SHOW BINARY LOGS", 16) != 0)
        return conn_error(m->q, m, "SHOW BINARY LOGS", err);
    MYSQL_RES *res = mysql_store_result(m->q);
    if (!res)
        return conn_error(m->q, m, "SHOW BINARY LOGS", err);
    struct mysql_binlog_file *f = arena_alloc(a, (mysql_num_rows(res) + 1) * sizeof *f);
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
            return conn_error(m->q, m, sql, err);
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
 * Previous_gtids the set covers (mysql_gtid_resume_file); its groups already in the set
 * are skipped by on_event. */
static int resume_by_gtid_set(struct my *m, struct arena *a, const char *cp, struct loch_err *err)
{
    struct mysql_binlog_file *files;
    size_t n, k;
    int rc = binlog_files(m, a, &files, &n, err);
    if (!rc)
        rc = mysql_gtid_resume_file(files, n, &m->executed, &k, err);
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

static struct shape *shape_find(struct my *m, const char *db, const char *name)
{
    for (size_t i = 0; i < m->n_shapes; i++)
        if (!strcmp(m->shapes[i]->db, db) && !strcmp(m->shapes[i]->name, name))
            return m->shapes[i];
    return NULL;
}

static struct shape *shape_get(struct my *m, const char *db, const char *name)
{
    struct shape *s = shape_find(m, db, name);
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
static int shape_declare(struct my *m, struct shape *s, const struct cdc_table *t, struct loch_err *err)
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
static int table_from_map(struct my *m, const struct binlog_table *bt, struct arena *a,
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
static int table_from_schema(struct my *m, MYSQL *c, const char *db, const char *name, struct arena *a,
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
        return conn_error(c, m, "reading information_schema.COLUMNS", err);
    MYSQL_RES *res = mysql_store_result(c);
    if (!res)
        return conn_error(c, m, "reading information_schema.COLUMNS", err);
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
        rc = mysql_column_from_schema(row[1], row[2], strtoll(row[3], NULL, 10), strtoll(row[4], NULL, 10),
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

/* ---- full load (cdc/load.h) ----
 * LOAD_READERS connections each hold a consistent snapshot (START TRANSACTION WITH
 * CONSISTENT SNAPSHOT) and take tables in turn, streaming rows (mysql_use_result) into
 * CSV chunk files that the calling thread loads while reading goes on. Reader 0's
 * snapshot is the stream's start: its binlog position is where streaming begins, and
 * tables without a usable key are read by it alone. The other readers' snapshots are a
 * little later; a table they read gets the changes between the two positions again from
 * the stream, which converge to the source (an insert replaces the row of its key, a
 * delete of a missing key does nothing; a key-less table matches rows on all columns). A table with a primary key of orderable types is
 * read in key ranges, `key > bound ORDER BY key LIMIT n`, each range committed with its
 * last key, so an interrupted load continues after it; a restart reads with new
 * snapshots and streams from the first run's position, which converges the same way. */

#define LOAD_READERS 2

struct myload_table {
    struct binlog_column *cols;
    char *select_list, *from, *order;
    size_t *key_col;      /* row field of each key column (in key order) */
};

struct myload {
    struct my *m;
    MYSQL *first;         /* reader 0's snapshot connection (opened by full_load), or NULL */
};

/* The spill files are written by one thread each: the unlocked stdio calls. */
static void csv_field(FILE *f, const char *s, size_t n)
{
    putc_unlocked('"', f);
    while (n > 0) {
        const char *q = memchr(s, '"', n);
        size_t k = q ? (size_t)(q - s) + 1 : n;
        fwrite_unlocked(s, 1, k, f);
        if (q)
            putc_unlocked('"', f); /* a quote doubled */
        s += k;
        n -= k;
    }
    putc_unlocked('"', f);
}

static bool zero_date(const char *s)
{
    /* '0000-00-00', or a month or day of 00 (allowed without NO_ZERO_IN_DATE) */
    return strlen(s) >= 10 && (!strncmp(s + 5, "00", 2) || !strncmp(s + 8, "00", 2));
}

static char *quote_ident(struct arena *a, const char *name)
{
    struct buf q = {0};
    buf_putc(&q, '`');
    for (const char *p = name; *p; p++) {
        if (*p == '`')
            buf_putc(&q, '`');
        buf_putc(&q, *p);
    }
    buf_putc(&q, '`');
    char *id = arena_strdup(a, q.data);
    buf_free(&q);
    return id;
}

/* The SELECT expression giving column c's canonical text (cdc/change.h forms). */
static char *select_expr(struct arena *a, const struct binlog_column *c)
{
    char *id = quote_ident(a, c->name);
    switch (c->type) {
    case BL_BIT:
        return arena_printf(a, "CAST(%s AS UNSIGNED)", id);
    case BL_FLOAT: /* the float's exact value as a double: casts back to the same float */
        return arena_printf(a, "(%s + 0e0)", id);
    case BL_TIMESTAMP2:
        return arena_printf(a, "CONCAT(%s, '+00')", id);
    case BL_GEOMETRY:
        return arena_printf(a, "HEX(%s)", id);
    case BL_STRING: case BL_VARCHAR: case BL_BLOB:
        return c->collation == 63 ? arena_printf(a, "HEX(%s)", id) : id;
    default:
        return id;
    }
}

static bool binary_text(const struct binlog_column *c)
{
    return (c->type == BL_STRING || c->type == BL_VARCHAR || c->type == BL_BLOB) && c->collation == 63;
}

/* Whether ranges over a key column compare as its index orders: the literal written by
 * key_literal compares like the column (ENUM/SET order by index but compare as text;
 * floats do not round-trip exactly; JSON and geometry are no keys). */
static bool rangeable(const struct binlog_column *c)
{
    switch (c->type) {
    case BL_TINY: case BL_SHORT: case BL_INT24: case BL_LONG: case BL_LONGLONG: case BL_YEAR:
    case BL_NEWDECIMAL: case BL_DECIMAL: case BL_BIT:
    case BL_DATE: case BL_NEWDATE: case BL_DATETIME2: case BL_TIME2: case BL_TIMESTAMP2:
    case BL_STRING: case BL_VARCHAR: case BL_VAR_STRING:
        return true;
    case BL_BLOB: /* VARBINARY/TEXT keys are prefix keys unless binary VARCHAR */
        return false;
    default:
        return false;
    }
}

/* The SQL literal of key value v (canonical text as read) of column c. */
static void key_literal(struct buf *b, MYSQL *conn, const struct binlog_column *c, const char *v)
{
    size_t n = strlen(v);
    if (binary_text(c)) { /* HEX() text */
        buf_puts(b, "X'");
        buf_append(b, v, n);
        buf_putc(b, '\'');
        return;
    }
    if (c->type == BL_TIMESTAMP2 && n >= 3 && !strcmp(v + n - 3, "+00"))
        n -= 3;
    bool number = n > 0 && strspn(v, "0123456789.-") == n && (c->type == BL_TINY || c->type == BL_SHORT ||
        c->type == BL_INT24 || c->type == BL_LONG || c->type == BL_LONGLONG || c->type == BL_YEAR ||
        c->type == BL_NEWDECIMAL || c->type == BL_DECIMAL || c->type == BL_BIT);
    if (number) { /* never quoted: MySQL compares an integer column with a string as double */
        buf_append(b, v, n);
        return;
    }
    char *esc = xmalloc(2 * n + 1);
    mysql_real_escape_string(conn, esc, v, (unsigned long)n);
    buf_printf(b, "'%s'", esc);
    free(esc);
}

/* `(k1 > v1) OR (k1 = v1 AND k2 > v2) OR ...`: the rows after key `after`, in a form the
 * range optimizer turns into index ranges. */
static void after_cond(struct buf *b, MYSQL *conn, const struct cdc_load_table *lt, char *const *after)
{
    const struct myload_table *mt = lt->user;
    for (size_t k = 0; k < lt->n_key; k++) {
        buf_puts(b, k ? " OR (" : "(");
        for (size_t j = 0; j <= k; j++) {
            const struct binlog_column *c = &mt->cols[mt->key_col[j]];
            buf_printf(b, "%s`", j ? " AND " : "");
            for (const char *p = c->name; *p; p++) {
                if (*p == '`')
                    buf_putc(b, '`');
                buf_putc(b, *p);
            }
            buf_puts(b, j == k ? "` > " : "` = ");
            key_literal(b, conn, c, after[j]);
        }
        buf_puts(b, ")");
    }
}

/* Runs one SELECT of table ti into chunk files of CDC_LOAD_RANGE_ROWS rows. keyed: the
 * SELECT is one key range (LIMIT CDC_LOAD_RANGE_ROWS); its chunk carries the range's bound
 * and *next the key to continue after (NULL when the range was the last). Else the last
 * chunk ends the table. */
static int read_select(struct my *m, struct cdc_load *L, MYSQL *c, size_t ti, const char *sql, bool keyed,
                       char ***next, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct myload_table *mt = lt->user;
    size_t ncols = lt->t->n_columns;
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return conn_error(c, m, "reading a table for the full load", err);
    MYSQL_RES *res = mysql_use_result(c);
    if (!res)
        return conn_error(c, m, "reading a table for the full load", err);
    char *fbuf = xmalloc(1 << 20);
    FILE *f = NULL;
    char *path = NULL;
    char **key = keyed ? xcalloc(lt->n_key, sizeof *key) : NULL;
    int64_t rows = 0, total = 0, bytes = 0;
    int rc = 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        if (!f) {
            path = cdc_load_chunk_path(L);
            if (!(f = fopen(path, "w"))) {
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                break;
            }
            setvbuf(f, fbuf, _IOFBF, 1 << 20);
        }
        unsigned long *lens = mysql_fetch_lengths(res);
        for (size_t i = 0; i < ncols; i++) {
            if (i)
                putc_unlocked(',', f);
            bytes += lens[i] + 1;
            if (!row[i])
                continue;
            uint8_t ty = mt->cols[i].type;
            if ((ty == BL_DATE || ty == BL_DATETIME2 || ty == BL_TIMESTAMP2) && zero_date(row[i]))
                continue;
            csv_field(f, row[i], lens[i]);
        }
        putc_unlocked('\n', f);
        rows++;
        total++;
        if (keyed && total == CDC_LOAD_RANGE_ROWS) /* the range's last row: its key is the bound */
            for (size_t k = 0; k < lt->n_key; k++) {
                const char *v = row[mt->key_col[k]];
                key[k] = xstrdup(v ? v : "");
            }
        if ((total & 4095) == 0) {
            cdc_load_count(L, ti, 4096, bytes);
            bytes = 0;
            if (cdc_load_aborted(L)) {
                rc = LOCH_ECANCELED;
                break;
            }
        }
        if (!keyed && rows == CDC_LOAD_RANGE_ROWS) {
            int cl = fclose(f);
            f = NULL;
            if (cl != 0) {
                rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
                break;
            }
            bool ok = cdc_load_push(L, ti, path, rows, false, NULL);
            path = NULL;
            rows = 0;
            if (!ok) {
                rc = LOCH_ECANCELED;
                break;
            }
        }
    }
    cdc_load_count(L, ti, total & 4095, bytes);
    if (!rc && mysql_errno(c))
        rc = conn_error(c, m, "reading a table for the full load", err);
    mysql_free_result(res); /* reads what is left when stopped early */
    if (f && fclose(f) != 0 && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    free(fbuf); /* every FILE using it is closed above */
    bool done = !keyed || total < CDC_LOAD_RANGE_ROWS;
    if (rc) {
        if (path)
            unlink(path);
        free(path);
        cdc_load_key_free(key, lt->n_key);
        return rc;
    }
    char *bound = done ? xstrdup("\"done\"") : cdc_load_bound(key, lt->n_key);
    if (done)
        cdc_load_key_free(key, lt->n_key);
    else if (next)
        *next = key;
    if (!cdc_load_push(L, ti, path, rows, done, bound)) {
        if (!done && next) {
            cdc_load_key_free(*next, lt->n_key);
            *next = NULL;
        }
        return LOCH_ECANCELED;
    }
    return 0;
}

static int read_table(struct my *m, struct cdc_load *L, MYSQL *c, size_t ti, struct loch_err *err)
{
    const struct cdc_load_table *lt = cdc_load_table(L, ti);
    const struct myload_table *mt = lt->user;
    if (!lt->n_key) {
        char *sql = xasprintf("SELECT %s FROM %s", mt->select_list, mt->from);
        int rc = read_select(m, L, c, ti, sql, false, NULL, err);
        free(sql);
        return rc;
    }
    char **after = cdc_load_key_copy(lt->after, lt->n_key);
    int rc = 0;
    for (;;) {
        struct buf q = {0};
        buf_printf(&q, "SELECT %s FROM %s", mt->select_list, mt->from);
        if (after) {
            buf_puts(&q, " WHERE ");
            after_cond(&q, c, lt, after);
        }
        buf_printf(&q, " ORDER BY %s LIMIT %d", mt->order, CDC_LOAD_RANGE_ROWS);
        cdc_load_key_free(after, lt->n_key);
        after = NULL;
        rc = read_select(m, L, c, ti, q.data, true, &after, err);
        buf_free(&q);
        if (rc || !after)
            break;
    }
    cdc_load_key_free(after, lt->n_key);
    return rc;
}

/* A connection holding a consistent snapshot. start (optional): where the stream starts
 * for it. MariaDB (and Percona) tell the snapshot's own binlog position
 * (Binlog_snapshot_file/position). Stock MySQL has no such status; there start is the
 * server's position read just before the snapshot opens, so the stream replays the few
 * changes between the two over rows that already have them, which converges as for the
 * later readers (see above). No lock is ever taken (FLUSH TABLES WITH READ LOCK would
 * also need the RELOAD privilege). */
static int open_snapshot(struct my *m, MYSQL **out, struct mysql_pos *start, struct arena *a,
                         struct loch_err *err)
{
    MYSQL *c = NULL;
    int rc = connect_server(m, &c, err);
    if (rc)
        return rc;
    rc = q_exec(m, c, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc && start && !m->is_mariadb)
        rc = server_position(m, c, start, err);
    if (!rc)
        rc = q_exec(m, c, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err);
    if (!rc && start && m->is_mariadb) {
        char *file = NULL, *pos = NULL;
        rc = q_value(m, c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                           "WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_FILE'", a, &file, err);
        if (!rc)
            rc = q_value(m, c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                               "WHERE VARIABLE_NAME = 'BINLOG_SNAPSHOT_POSITION'", a, &pos, err);
        if (!rc && (!file || !pos || !*file))
            rc = loch_errf(err, LOCH_ECONFIG, "the server reports no Binlog_snapshot_file/position");
        if (!rc) {
            memset(start, 0, sizeof *start);
            snprintf(start->file, sizeof start->file, "%s", file);
            start->pos = strtoull(pos, NULL, 10);
            /* the GTID position of that file:pos, so a later resume works even when the
             * file is purged (MariaDB's BINLOG_GTID_POS) */
            char esc[600], *g = NULL;
            mysql_real_escape_string(c, esc, file, (unsigned long)strlen(file));
            if (q_value(m, c, arena_printf(a, "SELECT BINLOG_GTID_POS('%s', %s)", esc, pos), a, &g, err) == 0 && g)
                snprintf(start->gtid, sizeof start->gtid, "%s", g);
            loch_err_clear(err);
        }
    }
    if (rc) {
        mysql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

static int my_reader(void *ctx, struct cdc_load *L, int k, struct loch_err *err)
{
    struct myload *ml = ctx;
    mysql_thread_init();
    MYSQL *c = k == 0 ? ml->first : NULL;
    int rc = 0;
    if (!c) {
        struct arena *a = arena_new(); /* lifetime: opening the snapshot */
        rc = open_snapshot(ml->m, &c, NULL, a, err);
        arena_free(a);
    }
    size_t ti;
    while (!rc && (ti = cdc_load_next(L, k)) != SIZE_MAX)
        rc = read_table(ml->m, L, c, ti, err);
    if (c && c != ml->first)
        mysql_close(c);
    mysql_thread_end();
    return rc;
}

/* The primary key's columns in index order (information_schema.STATISTICS), as indexes
 * into t's columns; *n 0 when the table has no key usable for ranges (none, a prefix
 * key, or a column rangeable() refuses). */
static int range_key(struct my *m, const char *db, const char *name, const struct cdc_table *t,
                     const struct binlog_column *cols, struct arena *a, size_t **out, size_t *n,
                     struct loch_err *err)
{
    *n = 0;
    *out = NULL;
    if (!t->has_key)
        return 0;
    char edb[512], ename[512];
    mysql_real_escape_string(m->q, edb, db, (unsigned long)strlen(db));
    mysql_real_escape_string(m->q, ename, name, (unsigned long)strlen(name));
    char *sql = arena_printf(a, "SELECT COLUMN_NAME, SUB_PART FROM information_schema.STATISTICS "
                                "WHERE TABLE_SCHEMA='%s' AND TABLE_NAME='%s' AND INDEX_NAME='PRIMARY' "
                                "ORDER BY SEQ_IN_INDEX", edb, ename);
    if (mysql_real_query(m->q, sql, strlen(sql)) != 0)
        return conn_error(m->q, m, "reading information_schema.STATISTICS", err);
    MYSQL_RES *res = mysql_store_result(m->q);
    if (!res)
        return conn_error(m->q, m, "reading information_schema.STATISTICS", err);
    size_t *key = arena_alloc(a, (t->n_columns + 1) * sizeof *key), nk = 0;
    bool ok = true;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        size_t i = 0;
        while (i < t->n_columns && strcmp(t->columns[i].name, row[0]))
            i++;
        if (i == t->n_columns || row[1] || nk == t->n_columns || !rangeable(&cols[i]))
            ok = false;
        else
            key[nk++] = i;
    }
    mysql_free_result(res);
    if (ok && nk > 0) {
        *out = key;
        *n = nk;
    }
    return 0;
}

/* The lake tables of every selected table, loaded; then the stream's start position
 * becomes the checkpoint in the same commit as the last rows. A first run records that
 * position (loch_kv cdc.<source>.load) before loading, so an interrupted load continues
 * from its committed ranges and streams from it. */
static int full_load(struct my *m, struct mysql_pos *start, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: the full load */
    const char *src = m->r->src->name;
    char *load_kv = arena_printf(a, "cdc.%s.load", src), *saved = NULL;
    struct loch_err e2;
    bool resume = catalog_get_kv(m->r->cat, load_kv, a, &saved, &e2) == 0 && saved;
    struct myload ml = {.m = m};
    int rc = 0;
    if (resume) {
        rc = mysql_pos_parse(saved, start, err);
        bool exists = false;
        if (!rc)
            rc = binlog_exists(m, start->file, &exists, err);
        if (!rc && !exists) {
            loch_errf(err, LOCH_ECONFIG, "source %s: an interrupted full load cannot continue: the binlog file %s "
                      "holding its start %s was purged", src, start->file, saved);
            rc = loch_err_hint(err, "drop the source's lake tables and delete the loch_kv keys cdc.%s.* to load "
                                    "again from scratch; raise the server's binlog retention", src);
        }
        if (!rc)
            log_info("mysql source %s: continuing the interrupted full load (stream from %s)", src, saved);
    } else {
        rc = open_snapshot(m, &ml.first, start, a, err);
        /* From here a restart continues this load instead of starting over. */
        struct catalog_kv kv = {load_kv, mysql_pos_format(start, a)};
        if (!rc)
            rc = catalog_commit(m->r->cat, NULL, 0, &kv, 1, err);
    }
    MYSQL_RES *res = NULL;
    struct cdc_load_table *lt = NULL;
    size_t n = 0;
    if (!rc) {
        const char *sql = "SELECT TABLE_SCHEMA, TABLE_NAME, IFNULL(TABLE_ROWS, -1) FROM information_schema.TABLES "
                          "WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME";
        if (mysql_real_query(m->q, sql, strlen(sql)) != 0 || !(res = mysql_store_result(m->q)))
            rc = conn_error(m->q, m, "listing tables", err);
    }
    if (!rc) {
        lt = arena_alloc(a, (mysql_num_rows(res) + 1) * sizeof *lt);
        MYSQL_ROW row;
        while ((row = mysql_fetch_row(res)))
            if (mysql_table_selected(row[0], row[1], m->r->src->tables, m->r->src->n_tables,
                                     m->r->src->exclude, m->r->src->n_exclude)) {
                lt[n].schema = arena_strdup(a, row[0]);
                lt[n].name = arena_strdup(a, row[1]);
                lt[n++].est = strtoll(row[2], NULL, 10);
            }
        mysql_free_result(res);
    }
    /* shapes and key ranges of every table, declared before any reader starts */
    for (size_t i = 0; i < n && !rc; i++) {
        struct myload_table *mt = arena_alloc(a, sizeof *mt);
        struct cdc_table t;
        rc = table_from_schema(m, m->q, lt[i].schema, lt[i].name, a, &t, &mt->cols, err);
        struct shape *s = rc ? NULL : shape_get(m, lt[i].schema, lt[i].name);
        if (!rc)
            rc = shape_declare(m, s, &t, err);
        if (!rc)
            rc = range_key(m, lt[i].schema, lt[i].name, &t, mt->cols, a, &mt->key_col, &lt[i].n_key, err);
        if (rc)
            break;
        lt[i].t = &s->t;
        lt[i].user = mt;
        lt[i].first_reader_only = lt[i].n_key == 0 && !resume;
        struct buf q = {0};
        for (size_t c = 0; c < t.n_columns; c++)
            buf_printf(&q, "%s%s", c ? ", " : "", select_expr(a, &mt->cols[c]));
        mt->select_list = arena_strdup(a, q.data);
        buf_free(&q);
        struct buf o = {0};
        for (size_t k = 0; k < lt[i].n_key; k++)
            buf_printf(&o, "%s%s", k ? ", " : "", quote_ident(a, mt->cols[mt->key_col[k]].name));
        mt->order = arena_strdup(a, o.data ? o.data : "");
        buf_free(&o);
        mt->from = arena_printf(a, "%s.%s", quote_ident(a, lt[i].schema), quote_ident(a, lt[i].name));
    }
    if (!rc)
        rc = cdc_load_run(m->r, m->ap, lt, n, resume, LOAD_READERS, my_reader, &ml, err);
    if (ml.first) {
        if (!rc)
            rc = q_exec(m, ml.first, "COMMIT", err);
        mysql_close(ml.first);
    }
    if (!rc) {
        /* The start position becomes the checkpoint with the last loaded rows, in one commit. */
        char *cp = mysql_pos_format(start, a);
        char *position = m->gtid_positions ? "" : cp;
        cdc_applier_set_kv(m->ap, load_kv, NULL);
        cdc_load_forget(m->ap, src, lt, n);
        rc = cdc_applier_begin(m->ap, "snapshot", util_now_us(), err);
        if (!rc)
            rc = cdc_applier_commit(m->ap, position, cp, err);
        char *done = NULL;
        if (!rc)
            rc = cdc_applier_flush(m->ap, a, &done, err);
        if (!rc)
            log_info("mysql source %s: full load of %zu tables done; streaming from %s", src, n, cp);
    }
    arena_free(a);
    return rc;
}

/* ---- streaming ---- */

static struct tmap *map_find(struct my *m, uint64_t id)
{
    for (size_t i = 0; i < m->n_maps; i++)
        if (m->maps[i].id == id)
            return &m->maps[i];
    return NULL;
}

static void tx_reset(struct my *m)
{
    arena_reset(m->tx);
    m->maps = NULL;
    m->n_maps = m->cap_maps = 0;
    m->rows = NULL;
    m->n_rows = m->cap_rows = 0;
    m->in_tx = false;
    m->began = false;
    m->gtid[0] = 0;
    m->cur_valid = false;
    m->skip_tx = false;
}

static void log_skipped(struct my *m)
{
    log_info("mysql source %s: skipped %" PRIu64 " transactions of %s onwards already in the lake "
             "(their GTIDs are in the checkpoint's set)", m->r->src->name, m->n_skipped, m->skip_from);
    m->skip_from[0] = 0;
}

/* The open MySQL group ended (or a new one began): its GTID joins the executed set, whose
 * text the next checkpoint carries. LOCH_EUNSUPPORTED when that text outgrows a checkpoint. */
static int gtid_done(struct my *m, struct loch_err *err)
{
    if (!m->cur_valid || !m->executed_known)
        return 0;
    m->cur_valid = false;
    if (m->skip_tx)
        return 0; /* already in the set */
    mysql_gtid_set_add(&m->executed, &m->cur);
    char *text = mysql_gtid_set_format(&m->executed, m->tx);
    size_t n = strlen(text);
    if (n >= sizeof m->gtid_state) {
        loch_errf(err, LOCH_EUNSUPPORTED, "the source's executed GTID set grew to %zu bytes of text; loch "
                  "keeps at most %zu in a checkpoint", n, sizeof m->gtid_state - 1);
        return loch_err_detail(err, "every server uuid that ever wrote to the source adds about 50 bytes, "
                                    "every gap in its numbers about 20");
    }
    memcpy(m->gtid_state, text, n + 1);
    return 0;
}

static void gtid_state_update(struct my *m, uint32_t domain, const char *gtid)
{
    /* keep one "d-s-n" per domain, in first-seen order */
    char out[sizeof m->gtid_state] = "";
    bool replaced = false;
    char copy[sizeof m->gtid_state];
    snprintf(copy, sizeof copy, "%s", m->gtid_state);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        uint32_t d = (uint32_t)strtoul(tok, NULL, 10);
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, "%s%s", l ? "," : "", d == domain ? gtid : tok);
        replaced |= d == domain;
    }
    if (!replaced) {
        size_t l = strlen(out);
        snprintf(out + l, sizeof out - l, "%s%s", l ? "," : "", gtid);
    }
    memcpy(m->gtid_state, out, sizeof out);
}

static char *checkpoint_text(struct my *m, struct arena *a)
{
    struct mysql_pos p = m->pos;
    snprintf(p.gtid, sizeof p.gtid, "%s", m->gtid_state);
    p.gtid_is_set = m->executed_known;
    return mysql_pos_format(&p, a);
}

/* Behind the source (draining a backlog), fewer, larger flushes apply faster and nobody
 * waits on the lag: flush every BEHIND_FLUSH_MS or BEHIND_FLUSH_CHANGES instead of at the
 * configured interval. Behind = a catch-up run short of its target, or events written
 * more than BEHIND_S ago (far enough above a normal flush's duration that a busy but
 * keeping-up stream never counts as behind). */
#define BEHIND_S 5
#define BEHIND_FLUSH_MS 10000
#define BEHIND_FLUSH_CHANGES 300000
/* ...but an idle flush thread takes this many at once (it never waits for a full batch;
 * batches grow to what a flush takes while the next one is received). */
#define BEHIND_MIN_CHANGES 50000

/* force: flush now and wait for it (stop, idle checkpoint, end of catch-up). Otherwise
 * flush on a thread of its own when due, while the stream goes on. */
static int flush_if(struct my *m, bool force, struct loch_err *err)
{
    char *done = NULL;
    int rc = cdc_applier_flush_poll(m->ap, m->tx, &done, err);
    if (!rc && done)
        log_debug("mysql source %s: durable at %s", m->r->src->name, done);
    if (rc || !cdc_applier_pending(m->ap) || (!force && !cdc_applier_flush_due(m->ap)))
        return rc;
    int64_t now = util_now_ms();
    bool behind = (m->last_event_s && now / 1000 - m->last_event_s > BEHIND_S) ||
                  (m->until && m->pos.file[0] && mysql_pos_cmp(&m->pos, m->until) < 0);
    if (!force && behind && now - m->last_flush_ms < BEHIND_FLUSH_MS && m->staged < BEHIND_FLUSH_CHANGES &&
        !(m->staged >= BEHIND_MIN_CHANGES && cdc_applier_flush_idle(m->ap)))
        return 0;
    m->last_flush_ms = now;
    m->staged = 0;
    m->saved = m->pos; /* at least this far once the flush below succeeds */
    if (force) {
        done = NULL;
        rc = cdc_applier_flush(m->ap, m->tx, &done, err);
        if (!rc && done)
            log_debug("mysql source %s: durable at %s", m->r->src->name, done);
    } else {
        rc = cdc_applier_flush_start(m->ap, err);
    }
    m->progressed = true;
    return rc;
}

static struct cdc_value *values(struct arena *a, const char **v, size_t n)
{
    if (!v)
        return NULL;
    struct cdc_value *out = arena_alloc(a, (n ? n : 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        out[i].text = v[i];
        out[i].len = v[i] ? strlen(v[i]) : 0;
    }
    return out;
}

/* A whole source transaction is buffered (so shape changes are declared between
 * transactions, as the applier requires), then handed over. */
static int tx_commit(struct my *m, int64_t ts_us, struct loch_err *err)
{
    int rc = 0;
    if (m->n_rows > 0) {
        for (size_t i = 0; i < m->n_maps && !rc; i++) {
            struct tmap *tm = &m->maps[i];
            if (!tm->sh)
                continue;
            struct cdc_table t;
            rc = table_from_map(m, tm->bt, m->tx, &t, err);
            if (!rc)
                rc = shape_declare(m, tm->sh, &t, err);
        }
        char *cp = checkpoint_text(m, m->tx);
        char *position = m->gtid_positions ? m->gtid : arena_printf(m->tx, "%s:%" PRIu64, m->pos.file, m->pos.pos);
        const char *txid = m->gtid[0] ? m->gtid : position;
        if (!rc)
            rc = cdc_applier_begin(m->ap, txid, ts_us, err);
        for (size_t i = 0; i < m->n_rows && !rc; i++) {
            struct txrow *tr = &m->rows[i];
            struct cdc_change c = {
                .op = (enum cdc_op)tr->r.op,
                .table = &tr->sh->t,
                .before = values(m->tx, tr->r.before, tr->sh->t.n_columns),
                .after = values(m->tx, tr->r.after, tr->sh->t.n_columns),
            };
            rc = cdc_applier_change(m->ap, &c, err);
        }
        m->staged += (int64_t)m->n_rows;
        if (!rc)
            rc = cdc_applier_commit(m->ap, position, cp, err);
        else
            cdc_applier_rollback(m->ap);
    }
    tx_reset(m);
    if (!rc)
        rc = flush_if(m, false, err);
    return rc;
}

/* The lake's current shape of db.name (for a DROP or TRUNCATE of a table this run has
 * not declared yet, e.g. right after a restart); LOCH_ENOENT when the lake has no such
 * table. Columns, types and key come from the Iceberg schema. */
static int lake_shape(struct my *m, const char *db, const char *name, struct arena *a, struct cdc_table *t,
                      struct loch_err *err)
{
    struct catalog_table ct;
    struct iceberg_metadata *md;
    char *ns = arena_printf(a, "%s.%s", m->r->src->name, db);
    int rc = catalog_load_table(m->r->cat, ns, name, a, &ct, err);
    if (!rc)
        rc = iceberg_table_load(m->r->st, ct.metadata_location, a, &md, err);
    if (rc)
        return rc;
    const struct iceberg_schema *sc = iceberg_metadata_current_schema(md);
    memset(t, 0, sizeof *t);
    t->source = m->r->src->name;
    t->schema = arena_strdup(a, db);
    t->name = arena_strdup(a, name);
    t->n_columns = sc->n_fields;
    t->columns = arena_alloc(a, (sc->n_fields ? sc->n_fields : 1) * sizeof *t->columns);
    for (size_t i = 0; i < sc->n_fields; i++) {
        struct cdc_column *c = &t->columns[i];
        c->name = sc->fields[i].name;
        c->type = sc->fields[i].type;
        c->nullable = !sc->fields[i].required;
        c->source_type = "(from the lake)";
        for (size_t k = 0; k < sc->n_identifier_ids; k++)
            if (sc->identifier_ids[k] == sc->fields[i].id)
                c->key = true;
        t->has_key |= c->key;
    }
    if (!t->has_key && m->q) {
        /* the lake schema may have lost its identifier fields (a dropped column); the
         * source still knows its primary key */
        char edb[512], ename[512];
        mysql_real_escape_string(m->q, edb, db, (unsigned long)strlen(db));
        mysql_real_escape_string(m->q, ename, name, (unsigned long)strlen(name));
        char *sql = arena_printf(a, "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='%s' "
                                    "AND TABLE_NAME='%s' AND COLUMN_KEY='PRI'", edb, ename);
        MYSQL_RES *res = NULL;
        if (mysql_real_query(m->q, sql, strlen(sql)) == 0 && (res = mysql_store_result(m->q))) {
            MYSQL_ROW row;
            while ((row = mysql_fetch_row(res)))
                for (size_t i = 0; i < t->n_columns; i++)
                    if (row[0] && !strcmp(row[0], t->columns[i].name)) {
                        t->columns[i].key = true;
                        t->has_key = true;
                    }
        }
        if (res)
            mysql_free_result(res);
    }
    t->full_identity = !t->has_key;
    return 0;
}

/* Shape s declared to the applier, from the lake when this run has not seen it yet.
 * *found false when the lake has no such table either (nothing to do). */
static int declare_known(struct my *m, const char *db, const char *name, struct shape **out, bool *found,
                         struct loch_err *err)
{
    struct shape *s = shape_find(m, db, name);
    *found = true;
    *out = s;
    if (s && s->declared)
        return 0;
    struct cdc_table t;
    int rc = lake_shape(m, db, name, m->tx, &t, err);
    if (rc == LOCH_ENOENT) {
        loch_err_clear(err);
        *found = false;
        return 0;
    }
    if (rc)
        return rc;
    s = shape_get(m, db, name);
    *out = s;
    return shape_declare(m, s, &t, err);
}

/* A one-change transaction emptying table s, at the current DDL event's position. */
static int commit_truncate(struct my *m, struct shape *s, int64_t ts_us, struct loch_err *err)
{
    char *cp = checkpoint_text(m, m->tx);
    char *position = m->gtid_positions ? m->gtid : arena_printf(m->tx, "%s:%" PRIu64, m->pos.file, m->pos.pos);
    int rc = cdc_applier_begin(m->ap, m->gtid[0] ? m->gtid : position, ts_us, err);
    struct cdc_change c = {.op = CDC_TRUNCATE, .table = &s->t};
    if (!rc)
        rc = cdc_applier_change(m->ap, &c, err);
    if (!rc)
        rc = cdc_applier_commit(m->ap, position, cp, err);
    else
        cdc_applier_rollback(m->ap);
    return rc;
}

static bool followed(struct my *m, const char *db, const char *name)
{
    const struct loch_source *src = m->r->src;
    return mysql_table_selected(db, name, src->tables, src->n_tables, src->exclude, src->n_exclude);
}

/* RENAME TABLE a TO b, c TO d, ... (and ALTER TABLE a RENAME TO b). The server applies the
 * pairs in order; the lake takes their net effect at once (a chain a -> b -> c is a -> c,
 * a swap through a temporary name is a <-> b), so a name vacated by one pair is free for
 * another. For each table, by its name before and after:
 *   followed -> followed      its lake tables are renamed (rows, snapshots, _changes kept),
 *                             with the DDL's position, in one catalog transaction
 *   followed -> not followed  its current state empties (a T change) and it is no longer
 *                             followed, as for DROP; history stays under the old name
 *   not followed -> followed  it starts empty in the lake (no row of it was ever read):
 *                             a warning says to re-snapshot for its earlier rows */
static int on_rename(struct my *m, const struct mysql_ddl *d, int64_t ts_us, struct loch_err *err)
{
    size_t np = d->n_tables / 2, n = 0;
    const char **odb = arena_alloc(m->tx, (np + 1) * sizeof *odb), **oname = arena_alloc(m->tx, (np + 1) * sizeof *oname);
    const char **ndb = arena_alloc(m->tx, (np + 1) * sizeof *ndb), **nname = arena_alloc(m->tx, (np + 1) * sizeof *nname);
    for (size_t i = 0; i < np; i++) {
        const char *fdb = d->dbs[2 * i], *fname = d->tables[2 * i];
        size_t k = 0;
        while (k < n && !(!strcmp(ndb[k], fdb) && !strcmp(nname[k], fname)))
            k++;
        if (k == n) {
            odb[n] = fdb;
            oname[n++] = fname;
        }
        ndb[k] = d->dbs[2 * i + 1];
        nname[k] = d->tables[2 * i + 1];
    }
    bool any = false;
    for (size_t k = 0; k < n; k++)
        any |= (followed(m, odb[k], oname[k]) || followed(m, ndb[k], nname[k])) &&
               (strcmp(odb[k], ndb[k]) || strcmp(oname[k], nname[k]));
    if (!any)
        return 0;
    /* what preceded the DDL becomes durable on its own, at its own position */
    int rc = cdc_applier_flush(m->ap, NULL, NULL, err);
    struct cdc_rename *ren = arena_alloc(m->tx, (n + 1) * sizeof *ren);
    struct shape **from = arena_alloc(m->tx, (n + 1) * sizeof *from);
    size_t n_ren = 0;
    for (size_t k = 0; k < n && !rc; k++) {
        bool f = followed(m, odb[k], oname[k]), t = followed(m, ndb[k], nname[k]);
        if (!strcmp(odb[k], ndb[k]) && !strcmp(oname[k], nname[k]))
            continue; /* renamed back within the statement */
        if (!f) {
            if (t)
                log_warn("mysql source %s: %s.%s (not followed) was renamed to %s.%s, which is: it starts empty in "
                         "the lake and gets the rows changed from now on (re-snapshot to load the others)",
                         m->r->src->name, odb[k], oname[k], ndb[k], nname[k]);
            continue;
        }
        struct shape *s;
        bool found;
        rc = declare_known(m, odb[k], oname[k], &s, &found, err);
        if (rc || !found)
            continue; /* never reached the lake: its rows arrive under the new name */
        if (t) {
            ren[n_ren] = (struct cdc_rename){odb[k], oname[k], ndb[k], nname[k]};
            from[n_ren++] = s;
            continue;
        }
        log_warn("mysql source %s: %s.%s was renamed to %s.%s, which is not followed: its current state empties "
                 "in the lake, its history stays under the old name", m->r->src->name, odb[k], oname[k], ndb[k],
                 nname[k]);
        rc = commit_truncate(m, s, ts_us, err);
        if (!rc)
            rc = cdc_applier_drop_table(m->ap, odb[k], oname[k], err);
        s->declared = false;
    }
    if (rc || n_ren == 0)
        return rc;
    rc = cdc_applier_rename_tables(m->ap, ren, n_ren, checkpoint_text(m, m->tx), err);
    if (rc)
        return rc;
    /* the shapes follow: each new name has the old one's (declared under the new name),
     * copied first, as a swap's names are each other's */
    struct cdc_table *moved = arena_alloc(m->tx, n_ren * sizeof *moved);
    for (size_t i = 0; i < n_ren; i++) {
        moved[i] = from[i]->t;
        from[i]->declared = false;
    }
    for (size_t i = 0; i < n_ren; i++) {
        struct shape *s = shape_get(m, ren[i].schema_to, ren[i].to);
        s->t = moved[i];
        s->t.schema = s->db;
        s->t.name = s->name;
        s->declared = true;
    }
    return 0;
}

static int on_ddl(struct my *m, const char *db, const char *stmt, int64_t ts_us, struct loch_err *err)
{
    struct mysql_ddl d;
    mysql_ddl_parse(stmt, m->tx, &d);
    const struct loch_source *src = m->r->src;
    int rc = 0;
    for (size_t i = 0; i < d.n_tables; i++)
        if (!d.dbs[i])
            d.dbs[i] = db;
    switch (d.kind) {
    case MYSQL_DDL_TRUNCATE: {
        if (!mysql_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables, src->exclude,
                                  src->n_exclude))
            break;
        struct shape *s;
        bool found;
        rc = declare_known(m, d.dbs[0], d.tables[0], &s, &found, err);
        if (!rc && !found) { /* never loaded (created and truncated before any row): its shape now */
            struct cdc_table t;
            rc = table_from_schema(m, m->q, d.dbs[0], d.tables[0], m->tx, &t, NULL, err);
            if (rc == LOCH_ENOENT) {
                loch_err_clear(err);
                rc = 0;
                break;
            }
            s = shape_get(m, d.dbs[0], d.tables[0]);
            if (!rc)
                rc = shape_declare(m, s, &t, err);
        }
        if (!rc)
            rc = commit_truncate(m, s, ts_us, err);
        break;
    }
    case MYSQL_DDL_DROP:
        /* the current state empties (a T change), history stays in earlier snapshots and
         * in _changes; a table created again under the name continues the lake tables */
        for (size_t i = 0; i < d.n_tables && !rc; i++) {
            struct shape *s;
            bool found;
            if (!mysql_table_selected(d.dbs[i], d.tables[i], src->tables, src->n_tables, src->exclude,
                                      src->n_exclude))
                continue;
            rc = declare_known(m, d.dbs[i], d.tables[i], &s, &found, err);
            if (rc || !found)
                continue;
            rc = commit_truncate(m, s, ts_us, err);
            if (!rc)
                rc = cdc_applier_drop_table(m->ap, d.dbs[i], d.tables[i], err);
            s->declared = false;
        }
        break;
    case MYSQL_DDL_RENAME:
        rc = on_rename(m, &d, ts_us, err);
        break;
    case MYSQL_DDL_ALTER: {
        if (d.n_renames == 0 || !mysql_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables,
                                                      src->exclude, src->n_exclude))
            break;
        /* a rename must reach the lake even right after a restart (the next table map
         * alone would look like a dropped and an added column) */
        struct shape *s;
        bool found;
        rc = declare_known(m, d.dbs[0], d.tables[0], &s, &found, err);
        for (size_t i = 0; i < d.n_renames && !rc && found; i++) {
            size_t k = 0;
            while (k < s->t.n_columns && strcmp(s->t.columns[k].name, d.rename_from[i]))
                k++;
            if (k == s->t.n_columns)
                continue; /* already renamed in the lake */
            rc = cdc_applier_rename_column(m->ap, d.dbs[0], d.tables[0], d.rename_from[i], d.rename_to[i], err);
            if (!rc)
                s->t.columns[k].name = arena_strdup(m->run, d.rename_to[i]);
        }
        /* other changes (ADD/DROP/MODIFY COLUMN) arrive with the table's next TABLE_MAP */
        break;
    }
    case MYSQL_DDL_CREATE: {
        if (!mysql_table_selected(d.dbs[0], d.tables[0], src->tables, src->n_tables, src->exclude,
                                  src->n_exclude))
            break;
        struct cdc_table t;
        rc = table_from_schema(m, m->q, d.dbs[0], d.tables[0], m->tx, &t, NULL, err);
        if (rc == LOCH_ENOENT || rc == LOCH_EUNSUPPORTED) {
            /* dropped again since, or a type loch refuses: the table map decides later */
            loch_err_clear(err);
            rc = 0;
            break;
        }
        if (!rc)
            rc = shape_declare(m, shape_get(m, d.dbs[0], d.tables[0]), &t, err);
        break;
    }
    default:
        break;
    }
    return rc;
}

/* Parses one event; *group_end when a whole event group (transaction or DDL) ended here. */
static int on_event(struct my *m, MARIADB_RPL *rpl, MARIADB_RPL_EVENT *ev, bool *group_end,
                    struct loch_err *err)
{
    *group_end = false;
    const uint8_t *raw = ev->raw_data;
    size_t size = ev->raw_data_size;
    /* raw_data: the packet's 0x00 OK byte, the 19-byte common header, the body, then a
     * 4-byte CRC32 when the server writes checksums. */
    if (size < 20)
        return loch_errf(err, LOCH_ECORRUPT, "binlog event of %zu bytes", size);
    struct cursor hc = cursor_make(raw + 1, 19);
    uint32_t when, server_id, ev_size, log_pos;
    uint8_t type;
    uint16_t flags;
    cursor_le32(&hc, &when);
    cursor_u8(&hc, &type);
    cursor_le32(&hc, &server_id);
    cursor_le32(&hc, &ev_size);
    cursor_le32(&hc, &log_pos);
    cursor_le16(&hc, &flags);
    /* Known from binlog_checksum, not from the library: the artificial ROTATE that opens
     * the stream comes before the FORMAT_DESCRIPTION that tells the library. */
    size_t csum = m->checksum && type != BL_EV_FORMAT_DESCRIPTION ? 4 : 0;
    if (ev_size < 19 + csum || ev_size > size - 1)
        return loch_errf(err, LOCH_ECORRUPT, "binlog event length %u in a packet of %zu bytes", ev_size, size);
    const uint8_t *body = raw + 20;
    size_t blen = ev_size - 19 - csum;
    int64_t ts_us = (int64_t)when * 1000000;
    int rc = 0;
    if (type == BL_EV_HEARTBEAT) /* the server had nothing more to send: caught up */
        m->last_event_s = 0;
    else if (when && !(flags & LOG_EVENT_ARTIFICIAL_F))
        m->last_event_s = when;
    /* Events between groups (FORMAT_DESCRIPTION, GTID_LIST, BINLOG_CHECKPOINT, ...) move
     * the read position too, so a catch-up target that ends on them is reached.
     * Artificial events (log_pos 0) and heartbeats do not. */
    if (!m->in_tx && log_pos != 0 && !(flags & LOG_EVENT_ARTIFICIAL_F) && type != BL_EV_HEARTBEAT &&
        type != BL_EV_ROTATE && type != BL_EV_GTID_MARIADB && type != BL_EV_GTID_MYSQL && type != BL_EV_QUERY &&
        m->file[0]) {
        snprintf(m->pos.file, sizeof m->pos.file, "%s", m->file);
        m->pos.pos = log_pos;
    }
    switch (type) {
    case BL_EV_ROTATE: {
        const char *file;
        uint64_t pos;
        if ((rc = binlog_rotate_decode(body, blen, m->tx, &file, &pos, err)))
            return rc;
        snprintf(m->file, sizeof m->file, "%s", file);
        if (!m->in_tx) {
            snprintf(m->pos.file, sizeof m->pos.file, "%s", file);
            m->pos.pos = pos;
        }
        return 0;
    }
    case BL_EV_GTID_MARIADB: {
        uint64_t seq;
        uint32_t domain;
        uint8_t gflags;
        if ((rc = binlog_mariadb_gtid_decode(body, blen, &seq, &domain, &gflags, err)))
            return rc;
        tx_reset(m);
        snprintf(m->gtid, sizeof m->gtid, "%u-%u-%" PRIu64, domain, server_id, seq);
        gtid_state_update(m, domain, m->gtid);
        m->in_tx = true;
        m->tx_ts_us = ts_us;
        return 0;
    }
    case BL_EV_GTID_MYSQL: {
        const char *g;
        if ((rc = binlog_mysql_gtid_decode(body, blen, m->tx, &g, err)))
            return rc;
        /* a group whose end was not recognised (an XA COMMIT, say) still happened */
        if ((rc = gtid_done(m, err)))
            return rc;
        tx_reset(m);
        snprintf(m->gtid, sizeof m->gtid, "%s", g);
        if (m->executed_known) {
            if ((rc = mysql_gtid_parse(m->gtid, &m->cur, err)))
                return rc;
            m->cur_valid = true;
            m->skip_tx = mysql_gtid_set_contains(&m->executed, &m->cur);
            if (m->skip_tx)
                m->n_skipped++;
            else if (m->skip_from[0])
                log_skipped(m);
        } else {
            snprintf(m->gtid_state, sizeof m->gtid_state, "%s", g);
        }
        m->in_tx = true;
        m->tx_ts_us = ts_us;
        return 0;
    }
    case BL_EV_PREVIOUS_GTIDS: {
        /* Every GTID written before this file. The stream has seen all of them, so they
         * join the executed set: this completes a set read from SHOW MASTER STATUS a
         * commit early, and gives a checkpoint written before loch kept sets one. */
        if (m->is_mariadb || !m->gtid_positions || m->in_tx)
            return 0;
        const char *text;
        struct mysql_gtid_set prev = {0};
        if ((rc = binlog_mysql_previous_gtids_decode(body, blen, m->tx, &text, err)) ||
            (rc = mysql_gtid_set_parse(text, &prev, err)))
            return rc;
        if (!m->executed_known) {
            mysql_gtid_set_free(&m->executed);
            log_info("mysql source %s: the checkpoint carries the executed GTID set from %s on",
                     m->r->src->name, m->file);
        }
        mysql_gtid_set_union(&m->executed, &prev);
        mysql_gtid_set_free(&prev);
        m->executed_known = true;
        m->cur_valid = false;
        char *set = mysql_gtid_set_format(&m->executed, m->tx);
        if (strlen(set) >= sizeof m->gtid_state)
            return loch_errf(err, LOCH_EUNSUPPORTED, "the source's executed GTID set grew to %zu bytes of text; "
                             "loch keeps at most %zu in a checkpoint", strlen(set), sizeof m->gtid_state - 1);
        memcpy(m->gtid_state, set, strlen(set) + 1);
        return 0;
    }
    case BL_EV_QUERY: {
        const char *db, *stmt;
        if ((rc = binlog_query_decode(body, blen, m->tx, &db, &stmt, err)))
            return rc;
        struct mysql_ddl d;
        mysql_ddl_parse(stmt, m->tx, &d);
        if (d.kind == MYSQL_DDL_BEGIN) {
            m->in_tx = m->began = true;
            m->tx_ts_us = ts_us;
            return 0;
        }
        if (m->began && d.kind != MYSQL_DDL_COMMIT)
            return 0; /* SAVEPOINT and the like, inside a transaction */
        snprintf(m->pos.file, sizeof m->pos.file, "%s", m->file);
        m->pos.pos = log_pos;
        if ((rc = gtid_done(m, err)))
            return rc;
        if (d.kind == MYSQL_DDL_COMMIT) { /* non-transactional tables end with COMMIT */
            rc = tx_commit(m, m->tx_ts_us ? m->tx_ts_us : ts_us, err);
        } else if (m->skip_tx) {
            tx_reset(m);
        } else {
            rc = on_ddl(m, db, stmt, ts_us, err);
            tx_reset(m);
        }
        *group_end = true;
        return rc;
    }
    case BL_EV_XID:
        snprintf(m->pos.file, sizeof m->pos.file, "%s", m->file);
        m->pos.pos = log_pos;
        if ((rc = gtid_done(m, err)))
            return rc;
        rc = tx_commit(m, m->tx_ts_us ? m->tx_ts_us : ts_us, err);
        *group_end = true;
        return rc;
    case BL_EV_TABLE_MAP: {
        if (m->skip_tx)
            return 0;
        struct binlog_table *bt;
        if ((rc = binlog_table_map_decode(body, blen, 6, m->tx, &bt, err)))
            return rc;
        struct tmap *tm = map_find(m, bt->table_id);
        if (!tm) {
            if (m->n_maps == m->cap_maps) {
                size_t cap = m->cap_maps ? m->cap_maps * 2 : 8;
                m->maps = arena_grow(m->tx, m->maps, m->n_maps, cap, sizeof *m->maps);
                m->cap_maps = cap;
            }
            tm = &m->maps[m->n_maps++];
        }
        tm->id = bt->table_id;
        tm->bt = bt;
        const struct loch_source *src = m->r->src;
        tm->sh = mysql_table_selected(bt->db, bt->name, src->tables, src->n_tables, src->exclude,
                                      src->n_exclude) ? shape_get(m, bt->db, bt->name) : NULL;
        return 0;
    }
    case BL_EV_WRITE_ROWS_V1: case BL_EV_UPDATE_ROWS_V1: case BL_EV_DELETE_ROWS_V1:
    case BL_EV_WRITE_ROWS: case BL_EV_UPDATE_ROWS: case BL_EV_DELETE_ROWS: {
        if (m->skip_tx)
            return 0;
        uint64_t id;
        if ((rc = binlog_rows_table_id(body, blen, 6, &id, err)))
            return rc;
        struct tmap *tm = map_find(m, id);
        if (!tm)
            return loch_errf(err, LOCH_ECORRUPT, "rows event for table id %" PRIu64 " without a table map", id);
        if (!tm->sh)
            return 0;
        struct binlog_row *rows;
        size_t n;
        if ((rc = binlog_rows_decode(type, body, blen, 6, tm->bt, m->tx, &rows, &n, err)))
            return rc;
        if (m->n_rows + n > m->cap_rows) {
            size_t cap = m->cap_rows ? m->cap_rows : 64;
            while (cap < m->n_rows + n)
                cap *= 2;
            m->rows = arena_grow(m->tx, m->rows, m->n_rows, cap, sizeof *m->rows);
            m->cap_rows = cap;
        }
        for (size_t i = 0; i < n; i++) {
            m->rows[m->n_rows].sh = tm->sh;
            m->rows[m->n_rows++].r = rows[i];
        }
        if (!m->in_tx) { /* a rows event outside BEGIN..COMMIT (never from a real server) */
            m->in_tx = true;
            m->tx_ts_us = ts_us;
        }
        return 0;
    }
    case BL_EV_QUERY_COMPRESSED: case BL_EV_WRITE_ROWS_COMPRESSED_V1: case 167: case 168: case 169:
    case 170: case BL_EV_DELETE_ROWS_COMPRESSED:
        loch_errf(err, LOCH_ECONFIG, "the source server writes compressed binlog events (type %u)", type);
        return loch_err_hint(err, "SET GLOBAL log_bin_compress=OFF (and in the server's config); events "
                                  "already written compressed need a re-snapshot");
    case 38: /* XA_PREPARE_LOG_EVENT: the rows of an XA transaction commit later, by xid */
        if (m->n_rows == 0) { /* touched no followed table */
            rc = gtid_done(m, err);
            tx_reset(m);
            return rc;
        }
        loch_errf(err, LOCH_EUNSUPPORTED, "the source wrote an XA transaction (XA PREPARE at %s:%u), which loch "
                  "cannot replicate yet", m->file, log_pos);
        return loch_err_hint(err, "avoid XA transactions on replicated tables, or exclude those tables");
    case BL_EV_TRANSACTION_PAYLOAD:
        return refuse_setting(err, "binlog_transaction_compression", "ON", "OFF", NULL);
    case BL_EV_PARTIAL_UPDATE_ROWS:
        return refuse_setting(err, "binlog_row_value_options", "PARTIAL_JSON", "''", NULL);
    default: /* FORMAT_DESCRIPTION, HEARTBEAT, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, ... */
        return 0;
    }
}

/* When only tables loch does not follow change, no transaction reaches the applier and
 * the checkpoint would stay behind; on a busy server its file could even be purged.
 * Every IDLE_CHECKPOINT_MS with nothing staged, an empty transaction carries the read
 * position into the lake. */
#define IDLE_CHECKPOINT_MS 10000

static int advance_idle(struct my *m, struct loch_err *err)
{
    if (m->in_tx || cdc_applier_pending(m->ap) || !m->pos.file[0])
        return 0;
    int64_t now = util_now_ms();
    if (now - m->last_flush_ms < IDLE_CHECKPOINT_MS || mysql_pos_cmp(&m->pos, &m->saved) <= 0)
        return 0;
    char *cp = checkpoint_text(m, m->tx);
    int rc = cdc_applier_begin(m->ap, "idle", now * 1000, err);
    if (!rc)
        rc = cdc_applier_commit(m->ap, m->gtid_positions ? "" : cp, cp, err);
    if (!rc)
        rc = flush_if(m, true, err);
    tx_reset(m);
    return rc;
}

static bool stopping(const struct my *m)
{
    return m->r->stop && atomic_load(m->r->stop);
}

/* Streams from m->pos until stopped, caught up (until != NULL) or an error. */
static int stream(struct my *m, const struct mysql_pos *until, struct loch_err *err)
{
    MYSQL *c = NULL;
    int rc = connect_server(m, &c, err);
    if (rc)
        return rc;
    if ((rc = q_exec(m, c, "SET @master_binlog_checksum = @@global.binlog_checksum", err)) ||
        (rc = q_exec(m, c, "SET @master_heartbeat_period = 1000000000", err)))
        goto out;
    if (m->is_mariadb && (rc = q_exec(m, c, "SET @mariadb_slave_capability = 4", err)))
        goto out;
    bool use_gtid = !m->pos.file[0] && m->pos.gtid[0] && m->is_mariadb;
    if (use_gtid) {
        char esc[1100], *sql;
        mysql_real_escape_string(c, esc, m->pos.gtid, (unsigned long)strlen(m->pos.gtid));
        sql = arena_printf(m->tx, "SET @slave_connect_state = '%s'", esc);
        if ((rc = q_exec(m, c, sql, err)) || (rc = q_exec(m, c, "SET @slave_gtid_strict_mode = 1", err)))
            goto out;
    }
    MARIADB_RPL *rpl = mariadb_rpl_init(c);
    if (!rpl) {
        rc = loch_errf(err, LOCH_ESOURCE, "cannot start a binlog stream: %s", mysql_error(c));
        goto out;
    }
    snprintf(m->file, sizeof m->file, "%s", m->pos.file);
    unsigned long start = m->pos.pos ? (unsigned long)m->pos.pos : 4;
    uint32_t flags = 0;
    mariadb_rpl_optionsv(rpl, MARIADB_RPL_FILENAME, m->pos.file, (size_t)strlen(m->pos.file));
    mariadb_rpl_optionsv(rpl, MARIADB_RPL_START, start);
    mariadb_rpl_optionsv(rpl, MARIADB_RPL_SERVER_ID, m->server_id);
    mariadb_rpl_optionsv(rpl, MARIADB_RPL_FLAGS, flags);
    if (mariadb_rpl_open(rpl) != 0) {
        rc = conn_error(c, m, "starting the binlog stream", err);
        mariadb_rpl_close(rpl);
        goto out;
    }
    log_info("mysql source %s: streaming from %s:%lu as replica %u", m->r->src->name,
             m->pos.file[0] ? m->pos.file : "(gtid)", start, m->server_id);
    MARIADB_RPL_EVENT *ev = NULL;
    tx_reset(m);
    m->until = until;
    for (;;) {
        if (stopping(m))
            break;
        if (until && !m->in_tx && m->pos.file[0] && mysql_pos_cmp(&m->pos, until) >= 0)
            break;
        ev = mariadb_rpl_fetch(rpl, ev);
        if (!ev) {
            if (mysql_errno(c))
                rc = conn_error(c, m, "reading the binlog", err);
            else
                rc = loch_errf(err, LOCH_ESOURCE, "the binlog stream ended: %s", mariadb_rpl_error(rpl));
            break;
        }
        bool end;
        if ((rc = on_event(m, rpl, ev, &end, err)))
            break;
        if (ev->event_type == HEARTBEAT_LOG_EVENT && (rc = flush_if(m, false, err)))
            break;
        if (end)
            m->progressed = true;
        if ((end || ev->event_type == HEARTBEAT_LOG_EVENT) && (rc = advance_idle(m, err)))
            break;
    }
    m->until = NULL;
    if (m->skip_from[0])
        log_skipped(m);
    if (ev)
        mariadb_free_rpl_event(ev);
    mariadb_rpl_close(rpl);
out:
    mysql_close(c);
    return rc;
}

/* One attempt: connect, check, load when never loaded, stream. */
static int attempt(struct my *m, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: the attempt */
    int rc = connect_server(m, &m->q, err);
    if (!rc)
        rc = check_server(m, a, err);
    if (!rc) {
        m->position_column = m->gtid_positions ? "_gtid" : "_binlog_pos";
        struct cdc_applier_options o = {
            .source = m->r->src->name,
            .state_dir = m->r->cfg->state_dir,
            .position_column = m->position_column,
            .position_type = {.id = ICEBERG_STRING},
            .flush_interval_ms = m->r->cfg->flush_interval_ms,
            .flush_min_changes = BEHIND_MIN_CHANGES,
        };
        rc = cdc_applier_open(&o, m->r->cat, m->r->st, m->r->eng, &m->ap, err);
    }
    for (size_t i = 0; i < m->n_shapes; i++)
        m->shapes[i]->declared = false;
    struct mysql_pos until = {0};
    if (!rc && m->r->catch_up)
        rc = server_position(m, m->q, &until, err);
    char *cp = NULL;
    if (!rc) {
        rc = cdc_applier_checkpoint(m->r->cat, m->r->src->name, a, &cp, err);
        if (rc == LOCH_ENOENT) {
            loch_err_clear(err);
            rc = full_load(m, &m->pos, err);
            m->progressed = true;
        } else if (!rc) {
            rc = mysql_pos_parse(cp, &m->pos, err);
            bool exists = false;
            if (!rc)
                rc = binlog_exists(m, m->pos.file, &exists, err);
            bool by_set = !m->is_mariadb && m->gtid_positions && m->pos.gtid_is_set;
            if (!rc && !exists) {
                if (m->is_mariadb && m->pos.gtid[0]) {
                    log_warn("mysql source %s: binlog %s is gone; resuming from GTID %s",
                             m->r->src->name, m->pos.file, m->pos.gtid);
                    m->pos.file[0] = 0;
                    m->pos.pos = 0;
                } else if (by_set) {
                    if (!(rc = mysql_gtid_set_parse(m->pos.gtid, &m->executed, err)))
                        rc = resume_by_gtid_set(m, a, cp, err);
                } else {
                    loch_errf(err, LOCH_ECONFIG, "the binlog file %s holding the saved position %s was purged "
                              "from the source server", m->pos.file, cp);
                    if (!m->is_mariadb)
                        loch_err_detail(err, m->gtid_positions ? "the checkpoint holds no executed GTID set (it was "
                                        "written before loch kept one), so it cannot resume by GTID"
                                        : "resuming by GTID needs gtid_mode=ON on the source server");
                    rc = loch_err_hint(err, "re-snapshot: drop this source's lake tables and the checkpoint key "
                                            "cdc.%s.checkpoint, then run loch replicate again; raise the "
                                            "server's binlog retention", m->r->src->name);
                }
            }
        }
    }
    /* MySQL with gtid_mode=ON: the executed set at the start position, kept up to date by
     * the stream (full load: from SHOW MASTER STATUS; resume: from the checkpoint). */
    m->executed_known = false;
    if (!rc && !m->is_mariadb && m->gtid_positions && m->pos.gtid_is_set) {
        rc = mysql_gtid_set_parse(m->pos.gtid, &m->executed, err);
        m->executed_known = rc == 0;
    }
    if (!rc) {
        snprintf(m->gtid_state, sizeof m->gtid_state, "%s", m->pos.gtid);
        m->saved = m->pos;
        m->last_flush_ms = util_now_ms();
    }
    if (!rc && !(m->r->catch_up && m->pos.file[0] && mysql_pos_cmp(&m->pos, &until) >= 0))
        rc = stream(m, m->r->catch_up ? &until : NULL, err);
    if (m->ap && (rc == 0 || rc == LOCH_ESOURCE)) {
        /* whole transactions staged before a stop or a dropped connection are kept */
        struct loch_err e2;
        loch_err_clear(&e2);
        int frc = flush_if(m, true, &e2);
        if (frc && !rc) {
            rc = frc;
            *err = e2;
        }
    }
    cdc_applier_close(m->ap);
    m->ap = NULL;
    if (m->q)
        mysql_close(m->q);
    m->q = NULL;
    arena_free(a);
    return rc;
}

int cdc_mysql_run(struct cdc_run *r, struct loch_err *err)
{
    struct my m = {.r = r};
    m.run = arena_new();
    m.tx = arena_new();
    int rc = mysql_params_parse(r->src->url, r->src->password_env, m.run, &m.prm, err);
    if (rc)
        goto done;
    m.server_id = r->src->server_id ? (uint32_t)r->src->server_id : mysql_derive_server_id(r->src->name);
    int64_t backoff_ms = 500;
    for (;;) {
        m.progressed = false;
        rc = attempt(&m, err);
        if (rc != LOCH_ESOURCE || stopping(&m))
            break;
        if (m.progressed)
            backoff_ms = 500;
        log_warn("mysql source %s: %s; reconnecting in %" PRId64 " ms", r->src->name, err->msg, backoff_ms);
        for (int64_t waited = 0; waited < backoff_ms && !stopping(&m); waited += 100) {
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
        if (stopping(&m)) {
            rc = 0;
            loch_err_clear(err);
            break;
        }
        backoff_ms = backoff_ms * 2 > 30000 ? 30000 : backoff_ms * 2;
    }
done:
    if (rc == LOCH_ECANCELED && stopping(&m)) {
        rc = 0;
        loch_err_clear(err);
    }
    mysql_gtid_set_free(&m.executed);
    arena_free(m.tx);
    arena_free(m.run);
    return rc;
}

/* ---- validation copy (loch validate) ---- */

/* Writes every row of db.name to one CSV file in the canonical forms the full load uses. */
static int spill_whole(struct my *m, MYSQL *c, const char *db, const char *name, const struct cdc_table *t,
                       const struct binlog_column *cols, const char *path, struct arena *a, struct loch_err *err)
{
    struct buf q = {0};
    buf_puts(&q, "SELECT ");
    for (size_t i = 0; i < t->n_columns; i++)
        buf_printf(&q, "%s%s", i ? ", " : "", select_expr(a, &cols[i]));
    buf_printf(&q, " FROM `%s`.`%s`", db, name);
    int rc = mysql_real_query(c, q.data, q.len);
    buf_free(&q);
    MYSQL_RES *res = rc == 0 ? mysql_use_result(c) : NULL;
    if (!res)
        return conn_error(c, m, "reading a table for validation", err);
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
            if (!row[i] || ((ty == BL_DATE || ty == BL_DATETIME2 || ty == BL_TIMESTAMP2) && zero_date(row[i])))
                continue;
            csv_field(f, row[i], lens[i]);
        }
        putc_unlocked('\n', f);
    }
    rc = mysql_errno(c) ? conn_error(c, m, "reading a table for validation", err) : 0;
    mysql_free_result(res);
    if (fclose(f) != 0 && !rc)
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
    return rc;
}

int cdc_mysql_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                   struct cdc_table_list *out, struct loch_err *err)
{
    struct my m = {.r = r, .run = a};
    out->n = 0;
    out->t = NULL;
    int rc = mysql_params_parse(r->src->url, r->src->password_env, a, &m.prm, err);
    if (!rc)
        rc = connect_server(&m, &m.q, err);
    char *v = NULL;
    if (!rc)
        rc = q_value(&m, m.q, "SELECT @@version", a, &v, err);
    m.is_mariadb = v && strstr(v, "MariaDB");
    /* one snapshot for every table, like the full load */
    if (!rc)
        rc = q_exec(&m, m.q, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", err);
    if (!rc)
        rc = q_exec(&m, m.q, "START TRANSACTION WITH CONSISTENT SNAPSHOT", err);
    MYSQL_RES *res = NULL;
    if (!rc) {
        const char *sql = "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                          "WHERE TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_SCHEMA, TABLE_NAME";
        if (mysql_real_query(m.q, sql, strlen(sql)) != 0 || !(res = mysql_store_result(m.q)))
            rc = conn_error(m.q, &m, "listing tables", err);
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
                mysql_table_selected(row[0], row[1], r->src->tables, r->src->n_tables, r->src->exclude,
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
        rc = table_from_schema(&m, m.q, dbs[i], names[i], a, ct, &cols, err);
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
