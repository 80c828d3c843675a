/* conn.c: the MySQL/MariaDB source's connections and queries, one attempt (connect, check,
 * full load or resume, then the stream) and the reconnect loop behind cdc_mysql_run.
 * Not for what an attempt does in detail: checks.c, load.c, stream.c. */
#include <mysql.h>
#include <errmsg.h>
#include <mysqld_error.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "cdc/mysql/mysql_int.h"
#include "cdc/retry.h"

/* ---- connections and queries ---- */

int mysrc_conn_error(MYSQL *c, const struct mysrc *m, const char *what, struct loch_err *err)
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

int mysrc_exec(struct mysrc *m, MYSQL *c, const char *sql, struct loch_err *err)
{
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return mysrc_conn_error(c, m, sql, err);
    MYSQL_RES *res = mysql_store_result(c);
    if (res)
        mysql_free_result(res);
    return 0;
}

/* First column of the first row of sql, in a (NULL when no row or SQL NULL). */
int mysrc_value(struct mysrc *m, MYSQL *c, const char *sql, struct arena *a, char **out,
                struct loch_err *err)
{
    *out = NULL;
    if (mysql_real_query(c, sql, strlen(sql)) != 0)
        return mysrc_conn_error(c, m, sql, err);
    MYSQL_RES *res = mysql_store_result(c);
    if (!res)
        return mysrc_conn_error(c, m, sql, err);
    MYSQL_ROW row = mysql_fetch_row(res);
    if (row && row[0])
        *out = arena_strdup(a, row[0]);
    mysql_free_result(res);
    return 0;
}

int mysrc_connect(struct mysrc *m, MYSQL **out, struct loch_err *err)
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
        int rc = mysrc_conn_error(c, m, "connecting", err);
        mysql_close(c);
        return rc;
    }
    /* TIMESTAMP values read as UTC text; utf8mb4 for every string. */
    int rc = mysrc_exec(m, c, "SET time_zone = '+00:00', NAMES utf8mb4", err);
    if (rc) {
        mysql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- an attempt and the reconnect loop ---- */

/* One attempt: connect, check, load when never loaded, stream. */
static int attempt(struct mysrc *m, struct loch_err *err)
{
    struct arena *a = arena_new(); /* lifetime: the attempt */
    int rc = mysrc_connect(m, &m->q, err);
    if (!rc)
        rc = mysrc_check_server(m, a, err);
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
    struct mysrc_pos until = {0};
    if (!rc && m->r->catch_up)
        rc = mysrc_server_position(m, m->q, &until, err);
    char *cp = NULL;
    if (!rc) {
        rc = cdc_applier_checkpoint(m->r->cat, m->r->src->name, a, &cp, err);
        if (rc == LOCH_ENOENT) {
            loch_err_clear(err);
            rc = mysrc_full_load(m, &m->pos, err);
            m->progressed = true;
        } else if (!rc) {
            rc = mysrc_pos_parse(cp, &m->pos, err);
            bool exists = false;
            if (!rc)
                rc = mysrc_binlog_exists(m, m->pos.file, &exists, err);
            bool by_set = !m->is_mariadb && m->gtid_positions && m->pos.gtid_is_set;
            if (!rc && !exists) {
                if (m->is_mariadb && m->pos.gtid[0]) {
                    log_warn("mysql source %s: binlog %s is gone; resuming from GTID %s",
                             m->r->src->name, m->pos.file, m->pos.gtid);
                    m->pos.file[0] = 0;
                    m->pos.pos = 0;
                } else if (by_set) {
                    if (!(rc = mysrc_gtid_set_parse(m->pos.gtid, &m->executed, err)))
                        rc = mysrc_resume_by_gtid_set(m, a, cp, err);
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
        rc = mysrc_gtid_set_parse(m->pos.gtid, &m->executed, err);
        m->executed_known = rc == 0;
    }
    if (!rc) {
        snprintf(m->gtid_state, sizeof m->gtid_state, "%s", m->pos.gtid);
        m->saved = m->pos;
        m->last_flush_ms = util_now_ms();
    }
    if (!rc && !(m->r->catch_up && m->pos.file[0] && mysrc_pos_cmp(&m->pos, &until) >= 0))
        rc = mysrc_stream(m, m->r->catch_up ? &until : NULL, err);
    if (m->ap && (rc == 0 || rc == LOCH_ESOURCE)) {
        /* whole transactions staged before a stop or a dropped connection are kept */
        struct loch_err e2;
        loch_err_clear(&e2);
        int frc = mysrc_flush_if(m, true, &e2);
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
    struct mysrc m = {.r = r};
    m.run = arena_new();
    m.tx = arena_new();
    int rc = mysrc_params_parse(r->src->url, r->src->password_env, m.run, &m.prm, err);
    if (rc)
        goto done;
    m.server_id = r->src->server_id ? (uint32_t)r->src->server_id : mysrc_derive_server_id(r->src->name);
    struct cdc_retry retry;
    cdc_retry_init(&retry, CDC_RETRY_BASE_MS, CDC_RETRY_CAP_MS, CDC_RETRY_HEALTHY_MS, 0);
    char *who = arena_printf(m.run, "mysql source %s", r->src->name);
    for (;;) {
        m.progressed = false;
        cdc_retry_start(&retry);
        rc = attempt(&m, err);
        if (rc != LOCH_ESOURCE || stopping(&m))
            break;
        if (m.progressed)
            cdc_retry_healthy(&retry);
        if (!cdc_retry_wait(&retry, who, err, r->stop)) {
            rc = 0;
            loch_err_clear(err);
            break;
        }
    }
done:
    if (rc == LOCH_ECANCELED && stopping(&m)) {
        rc = 0;
        loch_err_clear(err);
    }
    mysrc_gtid_set_free(&m.executed);
    arena_free(m.tx);
    arena_free(m.run);
    return rc;
}
