/* mysql.h: the MySQL/MariaDB source's pieces below cdc_mysql_run (source.h): connection
 * settings from `url:` + `password_env:`, server checks with refusals that name the
 * setting to change, table selection by database.table globs, the mapping of
 * information_schema columns to the binlog column model, checkpoint text, and DDL
 * statement recognition. Not for the binlog byte layouts (binlog.h) or the lake
 * (cdc/change.h). */
#ifndef LOCH_CDC_MYSQL_MYSQL_H
#define LOCH_CDC_MYSQL_MYSQL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "cdc/mysql/binlog.h"

struct mysrc_params {
    const char *host;  /* a name or an IP address (IPv6 without brackets) */
    unsigned port;     /* default 3306 */
    const char *user;
    const char *password; /* NULL = none */
    const char *tls;   /* NULL/"off", "require" (encrypt), "verify" (encrypt + verify cert and host) */
};

/* Parses mysql://user[:password]@host[:port][/][?tls=off|require|verify] with libcurl's
 * URL API (RFC 3986): user and password are percent-decoded (%40 for @, %3A for :), an
 * IPv6 host is written in brackets ([::1], a zone as [fe80::1%25eth0]), the port defaults
 * to 3306, other query parameters are ignored. The password from the environment variable
 * password_env (may be NULL) wins over one in the URL. Strings live in a. LOCH_ECONFIG
 * naming what is wrong or missing (user, host, port, tls), never showing the password. */
int mysrc_params_parse(const char *url, const char *password_env, struct arena *a,
                       struct mysrc_params *out, struct loch_err *err);

/* Longest GTID text a checkpoint holds, with its NUL: a MariaDB domain-server-seq list or
 * a MySQL executed-GTID set (about 100 bytes per server uuid that ever wrote to the
 * source). Longer text is refused with an error, never cut. */
#define MYSRC_GTID_TEXT_MAX 16384

/* A binlog position as saved in the checkpoint: "FILE:POS" with an optional " gtid=G".
 * G is the MariaDB GTID position (domain-server-seq list) on MariaDB, and on MySQL the
 * executed-GTID set at FILE:POS (what @@gtid_executed held there, "uuid:1-5:7,uuid2:1-9").
 * Checkpoints of MySQL sources written before loch kept that set hold the last GTID only,
 * "gtid=uuid:n"; the set form is written as " gtid_set=S" so the two are never confused. */
struct mysrc_pos {
    char file[256];
    uint64_t pos;
    char gtid[MYSRC_GTID_TEXT_MAX]; /* "" when unknown */
    bool gtid_is_set;               /* gtid is a MySQL executed-GTID set (" gtid_set=") */
};
/* LOCH_ECORRUPT when text is not FILE:POS[ gtid=G| gtid_set=S] or its GTID text is longer
 * than MYSRC_GTID_TEXT_MAX - 1. */
int mysrc_pos_parse(const char *text, struct mysrc_pos *out, struct loch_err *err);
/* Formats p into a. */
char *mysrc_pos_format(const struct mysrc_pos *p, struct arena *a);
/* Orders two positions of the same server by file sequence number, then offset. */
int mysrc_pos_cmp(const struct mysrc_pos *a, const struct mysrc_pos *b);

/* True when db.table matches one of the include globs and none of the exclude globs
 * (fnmatch; a glob without '.' matches the database with any table). */
bool mysrc_table_selected(const char *db, const char *table, const char **include, size_t n_include,
                          const char **exclude, size_t n_exclude);

/* MySQL's identifier quoting, the one backtick quoter (the double-quoted form of
 * PostgreSQL and DuckDB is base/buf.h's): appends s as `...` with backticks doubled. */
struct buf;
void mysrc_buf_ident(struct buf *b, const char *s);
/* The same, NUL-terminated in a. */
char *mysrc_ident(struct arena *a, const char *s);

/* Fills c from information_schema.COLUMNS fields (DATA_TYPE, COLUMN_TYPE, NUMERIC_PRECISION,
 * NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME, CHARACTER_MAXIMUM_LENGTH/OCTET
 * length), so a fully loaded table has the shape its binlog TABLE_MAP will have.
 * is_mariadb: JSON is LONGTEXT there. LOCH_EUNSUPPORTED naming the type. */
int mysrc_column_from_schema(const char *data_type, const char *column_type, int64_t precision,
                             int64_t scale, int64_t dt_precision, const char *charset,
                             int64_t octet_len, bool is_mariadb, struct arena *a,
                             struct binlog_column *c, struct loch_err *err);

/* What a QUERY event's statement does to tables loch follows. */
enum mysrc_ddl_kind {
    MYSRC_DDL_NONE,       /* not a table DDL loch acts on (BEGIN, COMMIT, GRANT, ...) */
    MYSRC_DDL_BEGIN,
    MYSRC_DDL_COMMIT,
    MYSRC_DDL_TRUNCATE,   /* tables[0] */
    MYSRC_DDL_DROP,       /* tables[0..n) */
    MYSRC_DDL_ALTER,      /* tables[0]; renames[] column renames in order */
    MYSRC_DDL_RENAME,     /* tables[2i] -> tables[2i+1] */
    MYSRC_DDL_CREATE,     /* tables[0] */
};

struct mysrc_ddl {
    enum mysrc_ddl_kind kind;
    size_t n_tables;
    const char **dbs, **tables; /* db NULL = the event's default database */
    size_t n_renames;
    const char **rename_from, **rename_to;
};

/* Recognises the statement (comments and backquoted names handled). Unknown statements
 * are MYSRC_DDL_NONE, never an error. Output in a. */
void mysrc_ddl_parse(const char *sql, struct arena *a, struct mysrc_ddl *out);

/* ---- MySQL GTID sets ----
 * A GTID is uuid:n (the server uuid that first committed the transaction, its sequence
 * number 1..2^63-2). A set keeps, per uuid in uuid order, sorted disjoint non-adjacent
 * inclusive ranges, which makes its text canonical. Tagged GTIDs (MySQL 8.3+,
 * "uuid:tag:n") are refused. The set owns its arrays (heap): mysrc_gtid_set_free. */
struct mysrc_gtid {
    uint8_t uuid[16];
    uint64_t seq;
};
struct mysrc_gtid_range {
    uint64_t first, last; /* inclusive */
};
struct mysrc_gtid_sid {
    uint8_t uuid[16];
    struct mysrc_gtid_range *ranges;
    size_t n_ranges, cap_ranges;
};
struct mysrc_gtid_set {
    struct mysrc_gtid_sid *sids; /* sorted by uuid */
    size_t n_sids, cap_sids;
}; /* all zero: the empty set */

/* Parses one "uuid:n" (as binlog_mysql_gtid_decode writes it). LOCH_ECORRUPT naming the text. */
int mysrc_gtid_parse(const char *text, struct mysrc_gtid *out, struct loch_err *err);
/* Parses a set as MySQL prints it (SHOW MASTER STATUS, @@gtid_executed, Previous_gtids):
 * "uuid:1-5:7,\nuuid2:1-100"; whitespace between tokens, empty elements and "" (the empty
 * set) allowed, uuids in either case, ranges in any order (merged). out is replaced (any
 * earlier contents freed); on error it is left empty and the result is LOCH_ECORRUPT with
 * the offset, or LOCH_EUNSUPPORTED for a tagged GTID. */
int mysrc_gtid_set_parse(const char *text, struct mysrc_gtid_set *out, struct loch_err *err);
/* Frees s's arrays and leaves it empty. */
void mysrc_gtid_set_free(struct mysrc_gtid_set *s);
/* Adds g, merging with adjacent ranges (O(1) for the next number of a uuid's last range). */
void mysrc_gtid_set_add(struct mysrc_gtid_set *s, const struct mysrc_gtid *g);
/* Adds every GTID of b to s. */
void mysrc_gtid_set_union(struct mysrc_gtid_set *s, const struct mysrc_gtid_set *b);
bool mysrc_gtid_set_contains(const struct mysrc_gtid_set *s, const struct mysrc_gtid *g);
/* True when every GTID of a is in b. */
bool mysrc_gtid_set_subset(const struct mysrc_gtid_set *a, const struct mysrc_gtid_set *b);
/* Canonical text in a: lowercase uuids in order, "uuid:1-5:7" joined by ","; "" when empty. */
char *mysrc_gtid_set_format(const struct mysrc_gtid_set *s, struct arena *a);

/* A binlog file still on the server (SHOW BINARY LOGS order: oldest first) with the text of
 * its PREVIOUS_GTIDS event (SHOW BINLOG EVENTS' Info column): every GTID written before it. */
struct mysrc_binlog_file {
    const char *name;
    const char *previous_gtids; /* NULL: the file has no PREVIOUS_GTIDS event */
};
/* Where a stream resumes when the checkpoint's file was purged but its executed set is
 * known: the newest file F such that F and every older file have Previous_gtids within
 * executed; nothing before F is missing from the lake, and F's transactions whose GTID
 * is in executed are to be skipped. *chosen (OUT) indexes files. LOCH_ECONFIG when no
 * file qualifies (transactions loch never saw were purged; the caller adds the
 * re-snapshot hint), LOCH_ECORRUPT when a Previous_gtids text does not parse or a file
 * has none. */
int mysrc_gtid_resume_file(const struct mysrc_binlog_file *files, size_t n_files,
                           const struct mysrc_gtid_set *executed, size_t *chosen, struct loch_err *err);

/* Derived replica server id (when server_id: is not configured): stable for a source
 * name and host, in 0x40000000..0x7fffffff so it stays clear of small hand-set ids. */
uint32_t mysrc_derive_server_id(const char *source_name);

/* ---- entry points: the runner reaches them through cdc_mysql_ops (ops.c) ---- */
struct cdc_run;
struct cdc_table_list;
struct engine_conn;
/* cdc_source_run (cdc/source.h) for a source of this type. */
int cdc_mysql_run(struct cdc_run *r, struct loch_err *err);
/* cdc_source_copy (cdc/source.h) for a source of this type. */
int cdc_mysql_copy(struct cdc_run *r, struct engine_conn *conn, const char *only, struct arena *a,
                   struct cdc_table_list *out, struct loch_err *err);

#endif
