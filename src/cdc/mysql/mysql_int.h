/* mysql_int.h: private to cdc/mysql/: the state of one MySQL/MariaDB source run and the
 * calls its files make of each other (conn.c, checks.c, load.c, stream.c, ddl.c, validate.c).
 * Not for other rooms: they reach the source through cdc/source.h.
 *
 * The source: server checks with refusals that name the setting, a consistent full load
 * without a global lock, then binlog streaming through MariaDB Connector/C's mariadb_rpl
 * (transport only) into the shared applier (cdc/change.h), whole transactions at a time,
 * with the binlog position (and GTID) as the checkpoint committed with the data.
 * Reconnects with backoff. */
#ifndef LOCH_CDC_MYSQL_MYSQL_INT_H
#define LOCH_CDC_MYSQL_MYSQL_INT_H

#include <mysql.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/mem.h"
#include "cdc/applier.h"
#include "cdc/mysql/binlog.h"
#include "cdc/mysql/mysql.h"
#include "cdc/source.h"

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

struct mysrc {
    struct cdc_run *r;
    struct arena *run;    /* lifetime: cdc_mysql_run */
    struct mysrc_params prm;
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
    struct mysrc_pos pos; /* read position: end of the last whole event group */
    char file[256];       /* current binlog file */
    /* MariaDB: last GTID per domain, comma-separated. MySQL: the executed set's canonical
     * text when executed_known, else (gtid_mode off, or a checkpoint written before loch
     * kept sets) the last GTID. */
    char gtid_state[MYSRC_GTID_TEXT_MAX];
    /* MySQL with gtid_mode=ON: every GTID up to pos (lifetime: run, read again from the
     * checkpoint by every attempt; heap). A group whose GTID is already in it is skipped. */
    struct mysrc_gtid_set executed;
    bool executed_known;
    struct mysrc_gtid cur;  /* GTID of the open MySQL group (cur_valid) */
    bool cur_valid;
    bool skip_tx;           /* the open group is already in the lake: nothing reaches the applier */
    uint64_t n_skipped;     /* groups skipped since skip_from was set */
    char skip_from[256];    /* resumed by GTID set from this file ("" = not) */
    int64_t last_event_s; /* header timestamp of the last event read (0 = none) */
    int64_t last_flush_ms;
    int64_t staged;       /* row changes handed to the applier since its last flush */
    const struct mysrc_pos *until; /* catch-up target (NULL when following) */
    struct mysrc_pos saved;        /* read position at the last flush */
    bool progressed;
};

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

static inline bool stopping(const struct mysrc *m)
{
    return m->r->stop && atomic_load(m->r->stop);
}

/* ---- conn.c ---- */

/* Fills err from the connection's last error, naming what was being done and the server:
 * LOCH_EAUTH (login), LOCH_EPERM (privilege, with the GRANT), LOCH_ECONFIG (binlog
 * purged), LOCH_ESOURCE otherwise (a reconnect may help). Returns the code. */
int mysrc_conn_error(MYSQL *c, const struct mysrc *m, const char *what, struct loch_err *err);
/* Runs a statement whose result is not needed. */
int mysrc_exec(struct mysrc *m, MYSQL *c, const char *sql, struct loch_err *err);
/* First column of the first row of sql, in a (NULL when no row or SQL NULL). */
int mysrc_value(struct mysrc *m, MYSQL *c, const char *sql, struct arena *a, char **out,
                struct loch_err *err);
/* A new connection (utf8mb4, UTC, TLS as the URL says); *out is the caller's to close. */
int mysrc_connect(struct mysrc *m, MYSQL **out, struct loch_err *err);

/* ---- checks.c ---- */

/* LOCH_ECONFIG saying the server has var=have and loch needs want, with how to set it. */
int mysrc_refuse_setting(struct loch_err *err, const char *var, const char *have, const char *want,
                         const char *extra);
/* Binary logging, ROW format, FULL images and metadata, no MySQL 8 compression or partial
 * JSON, the privileges; sets is_mariadb, checksum and gtid_positions. */
int mysrc_check_server(struct mysrc *m, struct arena *a, struct loch_err *err);
/* SHOW MASTER STATUS (and on MySQL with GTIDs the executed set) into *out. */
int mysrc_server_position(struct mysrc *m, MYSQL *c, struct mysrc_pos *out, struct loch_err *err);
/* *out: whether file is still on the server (SHOW BINARY LOGS). */
int mysrc_binlog_exists(struct mysrc *m, const char *file, bool *out, struct loch_err *err);
/* The checkpoint's file was purged (MySQL, gtid_mode=ON, the checkpoint holds the
 * executed set in m->executed): moves m->pos to the start of the newest file whose
 * Previous_gtids the set covers; its groups already in the set are skipped by the stream. */
int mysrc_resume_by_gtid_set(struct mysrc *m, struct arena *a, const char *cp, struct loch_err *err);
/* The followed table db.name's shape (found, or made undeclared, in the run arena). */
struct shape *mysrc_shape_find(struct mysrc *m, const char *db, const char *name);
struct shape *mysrc_shape_get(struct mysrc *m, const char *db, const char *name);
/* Declares t (built in any arena) for shape s when it differs from what the applier has. */
int mysrc_shape_declare(struct mysrc *m, struct shape *s, const struct cdc_table *t, struct loch_err *err);
/* The cdc_table of a TABLE_MAP (in a). LOCH_ECONFIG without the FULL row metadata. */
int mysrc_table_from_map(struct mysrc *m, const struct binlog_table *bt, struct arena *a,
                         struct cdc_table *t, struct loch_err *err);
/* The shape of db.name from information_schema (for the full load and for tables that
 * were created or truncated before any row of theirs was seen). cols_out (optional): the
 * binlog column model of each column, for the full-load SELECT. LOCH_ENOENT when gone. */
int mysrc_table_from_schema(struct mysrc *m, MYSQL *c, const char *db, const char *name, struct arena *a,
                            struct cdc_table *t, struct binlog_column **cols_out, struct loch_err *err);

/* ---- load.c ---- */

/* Loads every selected table, then commits *start (OUT: where the stream begins) as the
 * checkpoint with the last rows; an interrupted load continues from its committed ranges. */
int mysrc_full_load(struct mysrc *m, struct mysrc_pos *start, struct loch_err *err);
/* The SELECT expression giving column c's canonical text (cdc/change.h forms), in a. */
char *mysrc_select_expr(struct arena *a, const struct binlog_column *c);
/* Writes s (n bytes) as one quoted CSV field (the caller's thread owns f). */
void mysrc_csv_field(FILE *f, const char *s, size_t n);
/* A zero date ('0000-00-00', or month or day 00): NULL in the lake. */
bool mysrc_zero_date(const char *s);

/* ---- stream.c ---- */

/* Streams from m->pos until stopped, caught up (until != NULL) or an error. */
int mysrc_stream(struct mysrc *m, const struct mysrc_pos *until, struct loch_err *err);
/* force: flush now and wait for it. Otherwise flush on the applier's thread when due. */
int mysrc_flush_if(struct mysrc *m, bool force, struct loch_err *err);
/* The checkpoint text of the current read position and GTID state, in a. */
char *mysrc_checkpoint_text(struct mysrc *m, struct arena *a);

/* ---- ddl.c ---- */

/* A QUERY event's statement that is no BEGIN/COMMIT: truncates, drops, renames and
 * creates of followed tables reach the lake at the event's position. */
int mysrc_on_ddl(struct mysrc *m, const char *db, const char *stmt, int64_t ts_us, struct loch_err *err);

#endif
