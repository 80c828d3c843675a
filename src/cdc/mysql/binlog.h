/* binlog.h: decoders for MySQL/MariaDB binlog event bodies that loch needs byte-exact:
 * TABLE_MAP (with the optional metadata of binlog_row_metadata=FULL), WRITE/UPDATE/DELETE
 * rows v1/v2 and their row images, QUERY, GTID and ROTATE bodies. Values come out as the
 * canonical text literal DuckDB casts exactly to the column's Iceberg type.
 * Not for the network (mysql/stream.c talks to the server through MariaDB Connector/C's
 * mariadb_rpl) and not for applying changes (cdc/ applier).
 *
 * Why ours: mariadb_rpl_extract_rows (Connector/C 3.3.5+) ignores the columns-present
 * bitmap, has no case for MySQL's binary JSON (type 245) and so misreads every column
 * after it, gives TIMESTAMP2 as "sec.frac" text and needs MYSQL_TIME formatting for the
 * rest (../shared/reference/cdc-anchors.md 4b). Layouts follow the MySQL source
 * documentation (libbinlogevents rows_event.h, table_map metadata in rows_event.cpp,
 * my_time.cc for the temporal packings, decimal.c for DECIMAL) and MariaDB's log_event.h.
 *
 * Every decoder reads through struct cursor (base/buf.h): a length from the wire is
 * checked against what is left, and truncated input is LOCH_ECORRUPT, never a read
 * past the buffer. All output lives in the caller's arena. */
#ifndef LOCH_CDC_MYSQL_BINLOG_H
#define LOCH_CDC_MYSQL_BINLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "cdc/change.h"

/* Column type codes as they appear in TABLE_MAP (MySQL enum_field_types). */
enum {
    BL_DECIMAL = 0, BL_TINY = 1, BL_SHORT = 2, BL_LONG = 3, BL_FLOAT = 4, BL_DOUBLE = 5,
    BL_NULL = 6, BL_TIMESTAMP = 7, BL_LONGLONG = 8, BL_INT24 = 9, BL_DATE = 10, BL_TIME = 11,
    BL_DATETIME = 12, BL_YEAR = 13, BL_NEWDATE = 14, BL_VARCHAR = 15, BL_BIT = 16,
    BL_TIMESTAMP2 = 17, BL_DATETIME2 = 18, BL_TIME2 = 19, BL_JSON = 245, BL_NEWDECIMAL = 246,
    BL_ENUM = 247, BL_SET = 248, BL_TINY_BLOB = 249, BL_MEDIUM_BLOB = 250, BL_LONG_BLOB = 251,
    BL_BLOB = 252, BL_VAR_STRING = 253, BL_STRING = 254, BL_GEOMETRY = 255,
};

/* Binlog event type codes loch handles (MySQL log_event.h / MariaDB log_event.h). */
enum {
    BL_EV_QUERY = 2, BL_EV_STOP = 3, BL_EV_ROTATE = 4, BL_EV_FORMAT_DESCRIPTION = 15,
    BL_EV_XID = 16, BL_EV_TABLE_MAP = 19,
    BL_EV_WRITE_ROWS_V1 = 23, BL_EV_UPDATE_ROWS_V1 = 24, BL_EV_DELETE_ROWS_V1 = 25,
    BL_EV_HEARTBEAT = 27, BL_EV_WRITE_ROWS = 30, BL_EV_UPDATE_ROWS = 31, BL_EV_DELETE_ROWS = 32,
    BL_EV_GTID_MYSQL = 33, BL_EV_ANONYMOUS_GTID = 34, BL_EV_PREVIOUS_GTIDS = 35,
    BL_EV_XA_PREPARE = 38, BL_EV_PARTIAL_UPDATE_ROWS = 39, BL_EV_TRANSACTION_PAYLOAD = 40,
    BL_EV_ANNOTATE_ROWS = 160, BL_EV_BINLOG_CHECKPOINT = 161, BL_EV_GTID_MARIADB = 162,
    BL_EV_GTID_LIST = 163, BL_EV_QUERY_COMPRESSED = 165,
    BL_EV_WRITE_ROWS_COMPRESSED_V1 = 166, BL_EV_UPDATE_ROWS_COMPRESSED_V1 = 167,
    BL_EV_DELETE_ROWS_COMPRESSED_V1 = 168, BL_EV_WRITE_ROWS_COMPRESSED = 169,
    BL_EV_UPDATE_ROWS_COMPRESSED = 170, BL_EV_DELETE_ROWS_COMPRESSED = 171,
};

struct binlog_column {
    uint8_t type;         /* real type: STRING's metadata may turn it into ENUM or SET */
    uint16_t meta;        /* type metadata, already normalised (see binlog.c) */
    bool nullable;
    bool is_unsigned;     /* from SIGNEDNESS metadata; false when absent */
    int collation;        /* character columns: collation id (63 = binary); -1 unknown */
    const char *name;     /* from COLUMN_NAME metadata; NULL when absent */
    size_t n_values;      /* ENUM / SET value names (ENUM_STR_VALUE / SET_STR_VALUE) */
    const char **values;
};

struct binlog_table {
    uint64_t table_id;
    const char *db, *name;
    size_t n_cols;
    struct binlog_column *cols;
    size_t n_pk;
    int *pk;              /* column indexes of the primary key (SIMPLE_PRIMARY_KEY / WITH_PREFIX) */
    bool has_metadata;    /* column names were present (binlog_row_metadata=FULL) */
};

/* Decodes a TABLE_MAP body (the bytes after the 19-byte common header, checksum
 * removed). table_id_len is 6 for every server since 5.1 (post-header length 8), 4 for
 * older ones. *out and every string in it live in a. LOCH_ECORRUPT on truncation or an
 * inconsistent length. */
int binlog_table_map_decode(const uint8_t *body, size_t len, int table_id_len, struct arena *a,
                            struct binlog_table **out, struct loch_err *err);

/* Reads only the table id of a rows event body (to find its TABLE_MAP). */
int binlog_rows_table_id(const uint8_t *body, size_t len, int table_id_len, uint64_t *out,
                         struct loch_err *err);

/* One row change of a rows event. before/after hold t->n_cols values each (NULL entry =
 * SQL NULL); before is NULL for 'I', after is NULL for 'D'. */
struct binlog_row {
    char op; /* 'I', 'U', 'D' */
    const char **before, **after;
};

/* Decodes a WRITE/UPDATE/DELETE rows event body (v1 types 23..25 or v2 types 30..32) of
 * table t. Every column must be present in the image (binlog_row_image=FULL): a partial
 * image is LOCH_EUNSUPPORTED naming the setting. Values are canonical text (see
 * binlog_value_text). *rows (n_rows entries) lives in a. */
int binlog_rows_decode(int event_type, const uint8_t *body, size_t len, int table_id_len,
                       const struct binlog_table *t, struct arena *a, struct binlog_row **rows,
                       size_t *n_rows, struct loch_err *err);

/* The Iceberg type loch gives column c: integers by size and signedness (BIGINT UNSIGNED ->
 * decimal(20,0)), DECIMAL(p,s) -> decimal(p,s) (p > 38 -> string, exact text), FLOAT ->
 * float, DOUBLE -> double, BIT(n) -> long (n = 64 -> decimal(20,0)), YEAR -> int, DATE ->
 * date, TIME -> time, DATETIME -> timestamp, TIMESTAMP -> timestamptz (UTC), character
 * columns, ENUM, SET, JSON -> string, binary columns and GEOMETRY -> binary.
 * LOCH_EUNSUPPORTED for types with no exact mapping. */
int binlog_column_type(const struct binlog_column *c, struct iceberg_type *out, struct loch_err *err);

/* Decodes one value of column c at the cursor into canonical text in a: integers and
 * decimals in plain decimal notation, floats with enough digits to round-trip, dates
 * 'YYYY-MM-DD', times 'HH:MM:SS.ffffff', timestamps 'YYYY-MM-DD HH:MM:SS.ffffff' (+00 for
 * TIMESTAMP), binary as hex digits, two per byte (cdc/change.h), ENUM/SET by name, MySQL
 * binary JSON as JSON text. MySQL's zero dates ('0000-00-00') have no Iceberg value and
 * become NULL (*out = NULL). Returns 0 or LOCH_ECORRUPT / LOCH_EUNSUPPORTED. */
struct cursor;
int binlog_value_text(const struct binlog_column *c, struct cursor *cur, struct arena *a,
                      const char **out, struct loch_err *err);

/* MySQL binary JSON (sql-common/json_binary.cc layout) -> JSON text in a. */
int binlog_json_text(const uint8_t *p, size_t len, struct arena *a, const char **out,
                     struct loch_err *err);

/* A QUERY event body: default database and statement (both NUL-terminated copies in a). */
int binlog_query_decode(const uint8_t *body, size_t len, struct arena *a, const char **db,
                        const char **statement, struct loch_err *err);

/* A ROTATE body: next file name (copy in a) and position. */
int binlog_rotate_decode(const uint8_t *body, size_t len, struct arena *a, const char **file,
                         uint64_t *pos, struct loch_err *err);

/* A MariaDB GTID body (type 162): sequence number, domain id, flags. */
int binlog_mariadb_gtid_decode(const uint8_t *body, size_t len, uint64_t *seq, uint32_t *domain,
                               uint8_t *flags, struct loch_err *err);

/* A MySQL GTID body (type 33): "uuid:gno" text in a. */
int binlog_mysql_gtid_decode(const uint8_t *body, size_t len, struct arena *a, const char **gtid,
                             struct loch_err *err);

/* A MySQL PREVIOUS_GTIDS body (type 35, the second event of every binlog file: every GTID
 * written before the file) as set text "uuid:a-b:c,uuid2:..." in a (libbinlogevents
 * Previous_gtids_event: 8-byte sid count, then per sid 16 bytes of uuid, an 8-byte
 * interval count and [start, end) pairs of 8 bytes). LOCH_EUNSUPPORTED for the tagged
 * format of MySQL 8.3+, LOCH_ECORRUPT when counts exceed the body or an interval is empty. */
int binlog_mysql_previous_gtids_decode(const uint8_t *body, size_t len, struct arena *a, const char **set,
                                       struct loch_err *err);

/* MySQL length-encoded ("packed") integer at the cursor. */
bool binlog_cursor_packed(struct cursor *c, uint64_t *out);

#endif
