/* stream.c: the MySQL/MariaDB binlog stream into the applier: one function per event kind,
 * whole transactions buffered and handed over, GTID state kept for the checkpoint, flushes
 * paced. Not for byte layouts (binlog.c) or DDL (ddl.c). */
#include <inttypes.h>
#include <mysql.h>
#include <mariadb_rpl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/util.h"
#include "cdc/mysql/mysql_int.h"

static struct tmap *map_find(struct mysrc *m, uint64_t id)
{
    for (size_t i = 0; i < m->n_maps; i++)
        if (m->maps[i].id == id)
            return &m->maps[i];
    return NULL;
}

static void tx_reset(struct mysrc *m)
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

static void log_skipped(struct mysrc *m)
{
    log_info("mysql source %s: skipped %" PRIu64 " transactions of %s onwards already in the lake "
             "(their GTIDs are in the checkpoint's set)", m->r->src->name, m->n_skipped, m->skip_from);
    m->skip_from[0] = 0;
}

/* The open MySQL group ended (or a new one began): its GTID joins the executed set, whose
 * text the next checkpoint carries. LOCH_EUNSUPPORTED when that text outgrows a checkpoint. */
static int gtid_done(struct mysrc *m, struct loch_err *err)
{
    if (!m->cur_valid || !m->executed_known)
        return 0;
    m->cur_valid = false;
    if (m->skip_tx)
        return 0; /* already in the set */
    mysrc_gtid_set_add(&m->executed, &m->cur);
    char *text = mysrc_gtid_set_format(&m->executed, m->tx);
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

static void gtid_state_update(struct mysrc *m, uint32_t domain, const char *gtid)
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

char *mysrc_checkpoint_text(struct mysrc *m, struct arena *a)
{
    struct mysrc_pos p = m->pos;
    snprintf(p.gtid, sizeof p.gtid, "%s", m->gtid_state);
    p.gtid_is_set = m->executed_known;
    return mysrc_pos_format(&p, a);
}



/* force: flush now and wait for it (stop, idle checkpoint, end of catch-up). Otherwise
 * flush on a thread of its own when due, while the stream goes on. */
int mysrc_flush_if(struct mysrc *m, bool force, struct loch_err *err)
{
    char *done = NULL;
    int rc = cdc_applier_flush_poll(m->ap, m->tx, &done, err);
    if (!rc && done)
        log_debug("mysql source %s: durable at %s", m->r->src->name, done);
    if (rc || !cdc_applier_pending(m->ap) || (!force && !cdc_applier_flush_due(m->ap)))
        return rc;
    int64_t now = util_now_ms();
    bool behind = (m->last_event_s && now / 1000 - m->last_event_s > BEHIND_S) ||
                  (m->until && m->pos.file[0] && mysrc_pos_cmp(&m->pos, m->until) < 0);
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
static int tx_commit(struct mysrc *m, int64_t ts_us, struct loch_err *err)
{
    int rc = 0;
    if (m->n_rows > 0) {
        for (size_t i = 0; i < m->n_maps && !rc; i++) {
            struct tmap *tm = &m->maps[i];
            if (!tm->sh)
                continue;
            struct cdc_table t;
            rc = mysrc_table_from_map(m, tm->bt, m->tx, &t, err);
            if (!rc)
                rc = mysrc_shape_declare(m, tm->sh, &t, err);
        }
        char *cp = mysrc_checkpoint_text(m, m->tx);
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
        rc = mysrc_flush_if(m, false, err);
    return rc;
}


/* One binlog event: its common header (MySQL "Binlog Event Header", v4: timestamp, type,
 * server id, event size, next position, flags) and its body without the checksum. */
struct event {
    uint8_t type;
    uint32_t when, server_id, log_pos;
    uint16_t flags;
    const uint8_t *body;
    size_t len;
    int64_t ts_us;
};

/* raw_data: the packet's 0x00 OK byte, the 19-byte common header, the body, then a 4-byte
 * CRC32 when the server writes checksums. */
static int event_header(const struct mysrc *m, const MARIADB_RPL_EVENT *ev, struct event *e, struct loch_err *err)
{
    const uint8_t *raw = ev->raw_data;
    size_t size = ev->raw_data_size;
    if (size < 20)
        return loch_errf(err, LOCH_ECORRUPT, "binlog event of %zu bytes", size);
    struct cursor hc = cursor_make(raw + 1, 19);
    uint32_t ev_size;
    cursor_le32(&hc, &e->when);
    cursor_u8(&hc, &e->type);
    cursor_le32(&hc, &e->server_id);
    cursor_le32(&hc, &ev_size);
    cursor_le32(&hc, &e->log_pos);
    cursor_le16(&hc, &e->flags);
    /* Known from binlog_checksum, not from the library: the artificial ROTATE that opens
     * the stream comes before the FORMAT_DESCRIPTION that tells the library. */
    size_t csum = m->checksum && e->type != BL_EV_FORMAT_DESCRIPTION ? 4 : 0;
    if (ev_size < 19 + csum || ev_size > size - 1)
        return loch_errf(err, LOCH_ECORRUPT, "binlog event length %u in a packet of %zu bytes", ev_size, size);
    e->body = raw + 20;
    e->len = ev_size - 19 - csum;
    e->ts_us = (int64_t)e->when * 1000000;
    return 0;
}

/* The age of the stream (for flush pacing) and the read position between groups. */
static void track_position(struct mysrc *m, const struct event *e)
{
    bool artificial = (e->flags & LOG_EVENT_ARTIFICIAL_F) != 0;
    if (e->type == BL_EV_HEARTBEAT) /* the server had nothing more to send: caught up */
        m->last_event_s = 0;
    else if (e->when && !artificial)
        m->last_event_s = e->when;
    /* Events between groups (FORMAT_DESCRIPTION, GTID_LIST, BINLOG_CHECKPOINT, ...) move
     * the read position too, so a catch-up target that ends on them is reached.
     * Artificial events (log_pos 0) and heartbeats do not. */
    if (!m->in_tx && e->log_pos != 0 && !artificial && e->type != BL_EV_HEARTBEAT && e->type != BL_EV_ROTATE &&
        e->type != BL_EV_GTID_MARIADB && e->type != BL_EV_GTID_MYSQL && e->type != BL_EV_QUERY && m->file[0]) {
        snprintf(m->pos.file, sizeof m->pos.file, "%s", m->file);
        m->pos.pos = e->log_pos;
    }
}

/* The end of a group (XID, COMMIT or DDL query) is the read position. */
static void group_position(struct mysrc *m, const struct event *e)
{
    snprintf(m->pos.file, sizeof m->pos.file, "%s", m->file);
    m->pos.pos = e->log_pos;
}

static int on_rotate(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    const char *file;
    uint64_t pos;
    int rc = binlog_rotate_decode(e->body, e->len, m->tx, &file, &pos, err);
    if (rc)
        return rc;
    snprintf(m->file, sizeof m->file, "%s", file);
    if (!m->in_tx) {
        snprintf(m->pos.file, sizeof m->pos.file, "%s", file);
        m->pos.pos = pos;
    }
    return 0;
}

static int on_gtid_mariadb(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    uint64_t seq;
    uint32_t domain;
    uint8_t gflags;
    int rc = binlog_mariadb_gtid_decode(e->body, e->len, &seq, &domain, &gflags, err);
    if (rc)
        return rc;
    tx_reset(m);
    snprintf(m->gtid, sizeof m->gtid, "%u-%u-%" PRIu64, domain, e->server_id, seq);
    gtid_state_update(m, domain, m->gtid);
    m->in_tx = true;
    m->tx_ts_us = e->ts_us;
    return 0;
}

static int on_gtid_mysql(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    const char *g;
    int rc = binlog_mysql_gtid_decode(e->body, e->len, m->tx, &g, err);
    if (rc)
        return rc;
    /* a group whose end was not recognised (an XA COMMIT, say) still happened */
    if ((rc = gtid_done(m, err)))
        return rc;
    tx_reset(m);
    snprintf(m->gtid, sizeof m->gtid, "%s", g);
    if (m->executed_known) {
        if ((rc = mysrc_gtid_parse(m->gtid, &m->cur, err)))
            return rc;
        m->cur_valid = true;
        m->skip_tx = mysrc_gtid_set_contains(&m->executed, &m->cur);
        if (m->skip_tx)
            m->n_skipped++;
        else if (m->skip_from[0])
            log_skipped(m);
    } else {
        snprintf(m->gtid_state, sizeof m->gtid_state, "%s", g);
    }
    m->in_tx = true;
    m->tx_ts_us = e->ts_us;
    return 0;
}

/* Every GTID written before this file. The stream has seen all of them, so they join the
 * executed set: this completes a set read from SHOW MASTER STATUS a commit early, and
 * gives a checkpoint written before loch kept sets one. */
static int on_previous_gtids(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    if (m->is_mariadb || !m->gtid_positions || m->in_tx)
        return 0;
    const char *text;
    struct mysrc_gtid_set prev = {0};
    int rc;
    if ((rc = binlog_mysql_previous_gtids_decode(e->body, e->len, m->tx, &text, err)) ||
        (rc = mysrc_gtid_set_parse(text, &prev, err)))
        return rc;
    if (!m->executed_known) {
        mysrc_gtid_set_free(&m->executed);
        log_info("mysql source %s: the checkpoint carries the executed GTID set from %s on",
                 m->r->src->name, m->file);
    }
    mysrc_gtid_set_union(&m->executed, &prev);
    mysrc_gtid_set_free(&prev);
    m->executed_known = true;
    m->cur_valid = false;
    char *set = mysrc_gtid_set_format(&m->executed, m->tx);
    if (strlen(set) >= sizeof m->gtid_state)
        return loch_errf(err, LOCH_EUNSUPPORTED, "the source's executed GTID set grew to %zu bytes of text; "
                         "loch keeps at most %zu in a checkpoint", strlen(set), sizeof m->gtid_state - 1);
    memcpy(m->gtid_state, set, strlen(set) + 1);
    return 0;
}

/* BEGIN opens a group, COMMIT ends one of non-transactional tables; any other statement
 * outside BEGIN..COMMIT is a group of its own (DDL). */
static int on_query(struct mysrc *m, const struct event *e, bool *group_end, struct loch_err *err)
{
    const char *db, *stmt;
    int rc = binlog_query_decode(e->body, e->len, m->tx, &db, &stmt, err);
    if (rc)
        return rc;
    struct mysrc_ddl d;
    mysrc_ddl_parse(stmt, m->tx, &d);
    if (d.kind == MYSRC_DDL_BEGIN) {
        m->in_tx = m->began = true;
        m->tx_ts_us = e->ts_us;
        return 0;
    }
    if (m->began && d.kind != MYSRC_DDL_COMMIT)
        return 0; /* SAVEPOINT and the like, inside a transaction */
    group_position(m, e);
    if ((rc = gtid_done(m, err)))
        return rc;
    if (d.kind == MYSRC_DDL_COMMIT) { /* non-transactional tables end with COMMIT */
        rc = tx_commit(m, m->tx_ts_us ? m->tx_ts_us : e->ts_us, err);
    } else if (m->skip_tx) {
        tx_reset(m);
    } else {
        rc = mysrc_on_ddl(m, db, stmt, e->ts_us, err);
        tx_reset(m);
    }
    *group_end = true;
    return rc;
}

static int on_xid(struct mysrc *m, const struct event *e, bool *group_end, struct loch_err *err)
{
    group_position(m, e);
    int rc = gtid_done(m, err);
    if (rc)
        return rc;
    rc = tx_commit(m, m->tx_ts_us ? m->tx_ts_us : e->ts_us, err);
    *group_end = true;
    return rc;
}

static int on_table_map(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    if (m->skip_tx)
        return 0;
    struct binlog_table *bt;
    int rc = binlog_table_map_decode(e->body, e->len, 6, m->tx, &bt, err);
    if (rc)
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
    tm->sh = mysrc_table_selected(bt->db, bt->name, src->tables, src->n_tables, src->exclude, src->n_exclude)
                 ? mysrc_shape_get(m, bt->db, bt->name)
                 : NULL;
    return 0;
}

/* WRITE/UPDATE/DELETE rows, v1 or v2: the rows of followed tables join the open group. */
static int on_rows(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    if (m->skip_tx)
        return 0;
    uint64_t id;
    int rc = binlog_rows_table_id(e->body, e->len, 6, &id, err);
    if (rc)
        return rc;
    struct tmap *tm = map_find(m, id);
    if (!tm)
        return loch_errf(err, LOCH_ECORRUPT, "rows event for table id %" PRIu64 " without a table map", id);
    if (!tm->sh)
        return 0;
    struct binlog_row *rows;
    size_t n;
    if ((rc = binlog_rows_decode(e->type, e->body, e->len, 6, tm->bt, m->tx, &rows, &n, err)))
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
        m->tx_ts_us = e->ts_us;
    }
    return 0;
}

/* XA PREPARE: the rows of an XA transaction commit later, by xid. */
static int on_xa_prepare(struct mysrc *m, const struct event *e, struct loch_err *err)
{
    if (m->n_rows == 0) { /* touched no followed table */
        int rc = gtid_done(m, err);
        tx_reset(m);
        return rc;
    }
    loch_errf(err, LOCH_EUNSUPPORTED, "the source wrote an XA transaction (XA PREPARE at %s:%u), which loch "
              "cannot replicate yet", m->file, e->log_pos);
    return loch_err_hint(err, "avoid XA transactions on replicated tables, or exclude those tables");
}

/* Parses one event; *group_end when a whole event group (transaction or DDL) ended here. */
static int on_event(struct mysrc *m, const MARIADB_RPL_EVENT *ev, bool *group_end, struct loch_err *err)
{
    *group_end = false;
    struct event e;
    int rc = event_header(m, ev, &e, err);
    if (rc)
        return rc;
    track_position(m, &e);
    switch (e.type) {
    case BL_EV_ROTATE:
        return on_rotate(m, &e, err);
    case BL_EV_GTID_MARIADB:
        return on_gtid_mariadb(m, &e, err);
    case BL_EV_GTID_MYSQL:
        return on_gtid_mysql(m, &e, err);
    case BL_EV_PREVIOUS_GTIDS:
        return on_previous_gtids(m, &e, err);
    case BL_EV_QUERY:
        return on_query(m, &e, group_end, err);
    case BL_EV_XID:
        return on_xid(m, &e, group_end, err);
    case BL_EV_TABLE_MAP:
        return on_table_map(m, &e, err);
    case BL_EV_WRITE_ROWS_V1: case BL_EV_UPDATE_ROWS_V1: case BL_EV_DELETE_ROWS_V1:
    case BL_EV_WRITE_ROWS: case BL_EV_UPDATE_ROWS: case BL_EV_DELETE_ROWS:
        return on_rows(m, &e, err);
    case BL_EV_XA_PREPARE:
        return on_xa_prepare(m, &e, err);
    case BL_EV_QUERY_COMPRESSED:
    case BL_EV_WRITE_ROWS_COMPRESSED_V1: case BL_EV_UPDATE_ROWS_COMPRESSED_V1: case BL_EV_DELETE_ROWS_COMPRESSED_V1:
    case BL_EV_WRITE_ROWS_COMPRESSED: case BL_EV_UPDATE_ROWS_COMPRESSED: case BL_EV_DELETE_ROWS_COMPRESSED:
        loch_errf(err, LOCH_ECONFIG, "the source server writes compressed binlog events (type %u)", e.type);
        return loch_err_hint(err, "SET GLOBAL log_bin_compress=OFF (and in the server's config); events "
                                  "already written compressed need a re-snapshot");
    case BL_EV_TRANSACTION_PAYLOAD:
        return mysrc_refuse_setting(err, "binlog_transaction_compression", "ON", "OFF", NULL);
    case BL_EV_PARTIAL_UPDATE_ROWS:
        return mysrc_refuse_setting(err, "binlog_row_value_options", "PARTIAL_JSON", "''", NULL);
    default: /* FORMAT_DESCRIPTION, HEARTBEAT, GTID_LIST, BINLOG_CHECKPOINT, ANNOTATE_ROWS, ... */
        return 0;
    }
}

/* When only tables loch does not follow change, no transaction reaches the applier and
 * the checkpoint would stay behind; on a busy server its file could even be purged.
 * Every IDLE_CHECKPOINT_MS with nothing staged, an empty transaction carries the read
 * position into the lake. */
#define IDLE_CHECKPOINT_MS 10000

static int advance_idle(struct mysrc *m, struct loch_err *err)
{
    if (m->in_tx || cdc_applier_pending(m->ap) || !m->pos.file[0])
        return 0;
    int64_t now = util_now_ms();
    if (now - m->last_flush_ms < IDLE_CHECKPOINT_MS || mysrc_pos_cmp(&m->pos, &m->saved) <= 0)
        return 0;
    char *cp = mysrc_checkpoint_text(m, m->tx);
    int rc = cdc_applier_begin(m->ap, "idle", now * 1000, err);
    if (!rc)
        rc = cdc_applier_commit(m->ap, m->gtid_positions ? "" : cp, cp, err);
    if (!rc)
        rc = mysrc_flush_if(m, true, err);
    tx_reset(m);
    return rc;
}

/* Streams from m->pos until stopped, caught up (until != NULL) or an error. */
int mysrc_stream(struct mysrc *m, const struct mysrc_pos *until, struct loch_err *err)
{
    MYSQL *c = NULL;
    int rc = mysrc_connect(m, &c, err);
    if (rc)
        return rc;
    if ((rc = mysrc_exec(m, c, "SET @master_binlog_checksum = @@global.binlog_checksum", err)) ||
        (rc = mysrc_exec(m, c, "SET @master_heartbeat_period = 1000000000", err)))
        goto out;
    if (m->is_mariadb && (rc = mysrc_exec(m, c, "SET @mariadb_slave_capability = 4", err)))
        goto out;
    bool use_gtid = !m->pos.file[0] && m->pos.gtid[0] && m->is_mariadb;
    if (use_gtid) {
        char esc[1100], *sql;
        mysql_real_escape_string(c, esc, m->pos.gtid, (unsigned long)strlen(m->pos.gtid));
        sql = arena_printf(m->tx, "SET @slave_connect_state = '%s'", esc);
        if ((rc = mysrc_exec(m, c, sql, err)) || (rc = mysrc_exec(m, c, "SET @slave_gtid_strict_mode = 1", err)))
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
        rc = mysrc_conn_error(c, m, "starting the binlog stream", err);
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
        if (until && !m->in_tx && m->pos.file[0] && mysrc_pos_cmp(&m->pos, until) >= 0)
            break;
        ev = mariadb_rpl_fetch(rpl, ev);
        if (!ev) {
            if (mysql_errno(c))
                rc = mysrc_conn_error(c, m, "reading the binlog", err);
            else
                rc = loch_errf(err, LOCH_ESOURCE, "the binlog stream ended: %s", mariadb_rpl_error(rpl));
            break;
        }
        bool end;
        if ((rc = on_event(m, ev, &end, err)))
            break;
        if (ev->event_type == HEARTBEAT_LOG_EVENT && (rc = mysrc_flush_if(m, false, err)))
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
