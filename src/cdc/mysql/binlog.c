/* binlog.c: TABLE_MAP, rows-event and other event-body decoders for the MySQL/MariaDB
 * binlog (see binlog.h). Byte layouts cite MySQL's libbinlogevents (rows_event.h
 * "Table_map_event", "Rows_event") and MariaDB's log_event.h where the two differ.
 * Not for I/O, nor for column values (values.c). */
#include "cdc/mysql/binlog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/mysql/binlog_int.h"

bool binlog_cursor_packed(struct cursor *c, uint64_t *out)
{
    uint8_t b;
    if (!cursor_u8(c, &b))
        return false;
    if (b < 251) {
        *out = b;
        return true;
    }
    size_t n = b == 252 ? 2 : b == 253 ? 3 : b == 254 ? 8 : 0;
    if (n == 0) { /* 251 is NULL in result sets, 255 an error marker: neither is a length */
        c->failed = true;
        return false;
    }
    return get_le(c, n, out);
}

/* ---- TABLE_MAP ---- */

static bool is_numeric(uint8_t t)
{
    switch (t) {
    case BL_TINY: case BL_SHORT: case BL_INT24: case BL_LONG: case BL_LONGLONG:
    case BL_NEWDECIMAL: case BL_FLOAT: case BL_DOUBLE: case BL_DECIMAL:
        return true;
    default:
        return false;
    }
}

/* MySQL is_character_type(): the columns COLUMN_CHARSET / DEFAULT_CHARSET cover. */
static bool is_character(uint8_t t)
{
    return t == BL_STRING || t == BL_VAR_STRING || t == BL_VARCHAR || t == BL_BLOB ||
           t == BL_TINY_BLOB || t == BL_MEDIUM_BLOB || t == BL_LONG_BLOB;
}

/* Reads the per-column metadata block (Table_map_event "m_field_metadata"). */
static int read_column_meta(struct cursor *c, struct binlog_column *col, struct loch_err *err)
{
    const uint8_t *p;
    switch (col->type) {
    case BL_FLOAT: case BL_DOUBLE: case BL_BLOB: case BL_TINY_BLOB: case BL_MEDIUM_BLOB:
    case BL_LONG_BLOB: case BL_GEOMETRY: case BL_JSON: case BL_TIMESTAMP2: case BL_DATETIME2:
    case BL_TIME2:
        if (!cursor_bytes(c, 1, &p))
            return TRUNC(err, "table map column metadata");
        col->meta = p[0];
        break;
    case BL_VARCHAR: case BL_VAR_STRING:
        if (!cursor_bytes(c, 2, &p))
            return TRUNC(err, "table map column metadata");
        col->meta = (uint16_t)(p[0] | p[1] << 8);
        break;
    case BL_BIT:
        if (!cursor_bytes(c, 2, &p))
            return TRUNC(err, "table map column metadata");
        col->meta = (uint16_t)(p[1] * 8 + p[0]); /* number of bits */
        break;
    case BL_NEWDECIMAL:
        if (!cursor_bytes(c, 2, &p))
            return TRUNC(err, "table map column metadata");
        col->meta = (uint16_t)(p[0] << 8 | p[1]); /* precision << 8 | scale */
        break;
    case BL_STRING: case BL_ENUM: case BL_SET: {
        if (!cursor_bytes(c, 2, &p))
            return TRUNC(err, "table map column metadata");
        /* Field_string::save_field_metadata: byte 0 = real type with bits 4..5 of the
         * length XOR'ed in (lengths up to 1023), byte 1 = low 8 bits of the length. */
        uint8_t real = p[0];
        unsigned length = p[1];
        if ((real & 0x30) != 0x30) {
            length |= (unsigned)((real & 0x30) ^ 0x30) << 4;
            real |= 0x30;
        }
        col->type = real;
        col->meta = (uint16_t)length; /* CHAR: max bytes; ENUM/SET: pack length */
        break;
    }
    case BL_DECIMAL:
        return loch_errf(err, LOCH_EUNSUPPORTED, "pre-5.0 DECIMAL columns are not supported");
    default:
        break;
    }
    return 0;
}

static int read_str_values(struct cursor *c, struct arena *a, struct binlog_table *t, uint8_t want,
                           struct loch_err *err)
{
    for (size_t i = 0; i < t->n_cols && c->left > 0; i++) {
        struct binlog_column *col = &t->cols[i];
        if (col->type != want)
            continue;
        uint64_t n;
        if (!binlog_cursor_packed(c, &n) || n > c->left)
            return TRUNC(err, "ENUM/SET value list");
        col->values = arena_alloc(a, (n ? n : 1) * sizeof *col->values);
        col->n_values = n;
        for (uint64_t k = 0; k < n; k++) {
            uint64_t len;
            const uint8_t *s;
            if (!binlog_cursor_packed(c, &len) || len > c->left || !cursor_bytes(c, len, &s))
                return TRUNC(err, "ENUM/SET value");
            col->values[k] = arena_strndup(a, (const char *)s, len);
        }
    }
    return 0;
}

/* Optional metadata (binlog_row_metadata=FULL): type byte, packed length, value. */
static int read_optional_meta(struct cursor *c, struct arena *a, struct binlog_table *t,
                              struct loch_err *err)
{
    while (c->left > 0) {
        uint8_t type;
        uint64_t len;
        const uint8_t *v;
        if (!cursor_u8(c, &type) || !binlog_cursor_packed(c, &len) || len > c->left ||
            !cursor_bytes(c, len, &v))
            return TRUNC(err, "table map optional metadata");
        struct cursor f = cursor_make(v, len);
        switch (type) {
        case 1: { /* SIGNEDNESS: one bit per numeric column, most significant bit first */
            size_t k = 0;
            for (size_t i = 0; i < t->n_cols; i++) {
                if (!is_numeric(t->cols[i].type))
                    continue;
                if (k / 8 >= len)
                    return TRUNC(err, "SIGNEDNESS metadata");
                t->cols[i].is_unsigned = (v[k / 8] & (0x80 >> (k % 8))) != 0;
                k++;
            }
            break;
        }
        case 2: { /* DEFAULT_CHARSET: default collation, then (column index, collation) pairs
                   * where the index counts character columns only */
            uint64_t def, idx, coll;
            if (!binlog_cursor_packed(&f, &def))
                return TRUNC(err, "DEFAULT_CHARSET metadata");
            for (size_t i = 0; i < t->n_cols; i++)
                if (is_character(t->cols[i].type))
                    t->cols[i].collation = (int)def;
            while (f.left > 0) {
                if (!binlog_cursor_packed(&f, &idx) || !binlog_cursor_packed(&f, &coll))
                    return TRUNC(err, "DEFAULT_CHARSET metadata");
                size_t k = 0;
                for (size_t i = 0; i < t->n_cols; i++) {
                    if (!is_character(t->cols[i].type))
                        continue;
                    if (k++ == idx)
                        t->cols[i].collation = (int)coll;
                }
            }
            break;
        }
        case 3: /* COLUMN_CHARSET: one collation per character column */
            for (size_t i = 0; i < t->n_cols; i++) {
                uint64_t coll;
                if (!is_character(t->cols[i].type))
                    continue;
                if (!binlog_cursor_packed(&f, &coll))
                    return TRUNC(err, "COLUMN_CHARSET metadata");
                t->cols[i].collation = (int)coll;
            }
            break;
        case 4: /* COLUMN_NAME */
            for (size_t i = 0; i < t->n_cols; i++) {
                uint64_t n;
                const uint8_t *s;
                if (!binlog_cursor_packed(&f, &n) || n > f.left || !cursor_bytes(&f, n, &s))
                    return TRUNC(err, "COLUMN_NAME metadata");
                t->cols[i].name = arena_strndup(a, (const char *)s, n);
            }
            t->has_metadata = true;
            break;
        case 5: /* SET_STR_VALUE */
        case 6: { /* ENUM_STR_VALUE */
            int rc = read_str_values(&f, a, t, type == 5 ? BL_SET : BL_ENUM, err);
            if (rc)
                return rc;
            break;
        }
        case 8: /* SIMPLE_PRIMARY_KEY: column indexes */
        case 9: { /* PRIMARY_KEY_WITH_PREFIX: (index, prefix length) pairs */
            int *pk = arena_alloc(a, (len + 1) * sizeof *pk);
            size_t n = 0;
            while (f.left > 0) {
                uint64_t idx, prefix;
                if (!binlog_cursor_packed(&f, &idx) ||
                    (type == 9 && !binlog_cursor_packed(&f, &prefix)))
                    return TRUNC(err, "PRIMARY_KEY metadata");
                if (idx >= t->n_cols)
                    return loch_errf(err, LOCH_ECORRUPT,
                                     "table map primary key names column %" PRIu64 " of %zu",
                                     idx, t->n_cols);
                pk[n++] = (int)idx;
            }
            t->pk = pk;
            t->n_pk = n;
            break;
        }
        default: /* GEOMETRY_TYPE, ENUM_AND_SET_*_CHARSET, and future types: skipped */
            break;
        }
    }
    return 0;
}

int binlog_table_map_decode(const uint8_t *body, size_t len, int table_id_len, struct arena *a,
                            struct binlog_table **out, struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    struct binlog_table *t = arena_alloc(a, sizeof *t);
    uint64_t id, ncols, meta_len;
    const uint8_t *s, *types, *meta, *nulls;
    uint8_t n;
    if (table_id_len != 4 && table_id_len != 6)
        return loch_errf(err, LOCH_ECORRUPT, "table id length %d is neither 4 nor 6", table_id_len);
    if (!get_le(&c, (size_t)table_id_len, &id) || !cursor_bytes(&c, 2, &s))
        return TRUNC(err, "table map header");
    t->table_id = id;
    if (!cursor_u8(&c, &n) || !cursor_bytes(&c, (size_t)n + 1, &s))
        return TRUNC(err, "table map database name");
    t->db = arena_strndup(a, (const char *)s, n);
    if (!cursor_u8(&c, &n) || !cursor_bytes(&c, (size_t)n + 1, &s))
        return TRUNC(err, "table map table name");
    t->name = arena_strndup(a, (const char *)s, n);
    if (!binlog_cursor_packed(&c, &ncols) || ncols > c.left || !cursor_bytes(&c, ncols, &types))
        return TRUNC(err, "table map column types");
    if (ncols == 0) /* every image would be empty: a rows event could never end */
        return loch_errf(err, LOCH_ECORRUPT, "table map of %s.%s has no columns", t->db, t->name);
    if (!binlog_cursor_packed(&c, &meta_len) || meta_len > c.left ||
        !cursor_bytes(&c, meta_len, &meta))
        return TRUNC(err, "table map metadata");
    if (!cursor_bytes(&c, (ncols + 7) / 8, &nulls))
        return TRUNC(err, "table map null bitmap");
    t->n_cols = ncols;
    t->cols = arena_alloc(a, (ncols ? ncols : 1) * sizeof *t->cols);
    struct cursor mc = cursor_make(meta, meta_len);
    for (size_t i = 0; i < ncols; i++) {
        struct binlog_column *col = &t->cols[i];
        col->type = types[i];
        col->collation = -1;
        col->nullable = (nulls[i / 8] >> (i % 8)) & 1;
        int rc = read_column_meta(&mc, col, err);
        if (rc)
            return loch_err_prefix(err, "%s.%s column %zu", t->db, t->name, i + 1);
    }
    if (mc.left != 0)
        return loch_errf(err, LOCH_ECORRUPT, "table map of %s.%s: %zu metadata bytes left over",
                         t->db, t->name, mc.left);
    int rc = read_optional_meta(&c, a, t, err);
    if (rc)
        return loch_err_prefix(err, "table map of %s.%s", t->db, t->name);
    *out = t;
    return 0;
}

/* ---- rows events ---- */

int binlog_rows_table_id(const uint8_t *body, size_t len, int table_id_len, uint64_t *out,
                         struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    if ((table_id_len != 4 && table_id_len != 6) || !get_le(&c, (size_t)table_id_len, out))
        return TRUNC(err, "rows event header");
    return 0;
}

static int read_image(struct cursor *c, const struct binlog_table *t, struct arena *a,
                      const char ***out, struct loch_err *err)
{
    const uint8_t *nulls;
    const char **vals = arena_alloc(a, (t->n_cols ? t->n_cols : 1) * sizeof *vals);
    if (!cursor_bytes(c, (t->n_cols + 7) / 8, &nulls))
        return TRUNC(err, "row null bitmap");
    for (size_t i = 0; i < t->n_cols; i++) {
        if ((nulls[i / 8] >> (i % 8)) & 1)
            continue;
        int rc = binlog_value_text(&t->cols[i], c, a, &vals[i], err);
        if (rc)
            return loch_err_prefix(err, "%s.%s column %s", t->db, t->name,
                                   t->cols[i].name ? t->cols[i].name : "?");
    }
    *out = vals;
    return 0;
}

static bool all_set(const uint8_t *bits, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((bits[i / 8] >> (i % 8)) & 1))
            return false;
    return true;
}

int binlog_rows_decode(int event_type, const uint8_t *body, size_t len, int table_id_len,
                       const struct binlog_table *t, struct arena *a, struct binlog_row **rows,
                       size_t *n_rows, struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    uint64_t id, ncols, extra;
    const uint8_t *p, *present, *present_after = NULL;
    char op;
    bool v2;
    switch (event_type) {
    case BL_EV_WRITE_ROWS_V1: op = 'I'; v2 = false; break;
    case BL_EV_UPDATE_ROWS_V1: op = 'U'; v2 = false; break;
    case BL_EV_DELETE_ROWS_V1: op = 'D'; v2 = false; break;
    case BL_EV_WRITE_ROWS: op = 'I'; v2 = true; break;
    case BL_EV_UPDATE_ROWS: op = 'U'; v2 = true; break;
    case BL_EV_DELETE_ROWS: op = 'D'; v2 = true; break;
    default:
        return loch_errf(err, LOCH_EUNSUPPORTED, "binlog event type %d is not a rows event", event_type);
    }
    if ((table_id_len != 4 && table_id_len != 6) || !get_le(&c, (size_t)table_id_len, &id) ||
        !cursor_bytes(&c, 2, &p))
        return TRUNC(err, "rows event header");
    if (v2) { /* extra data: 2-byte length that counts itself (Rows_event post-header v2) */
        if (!get_le(&c, 2, &extra) || extra < 2 || !cursor_bytes(&c, extra - 2, &p))
            return TRUNC(err, "rows event extra data");
    }
    if (!binlog_cursor_packed(&c, &ncols) || ncols > 8 * c.left + 8)
        return TRUNC(err, "rows event column count");
    if (ncols != t->n_cols)
        return loch_errf(err, LOCH_ECORRUPT, "rows event for %s.%s has %" PRIu64
                         " columns, its table map %zu", t->db, t->name, ncols, t->n_cols);
    if (!cursor_bytes(&c, (ncols + 7) / 8, &present) ||
        (op == 'U' && !cursor_bytes(&c, (ncols + 7) / 8, &present_after)))
        return TRUNC(err, "rows event column bitmap");
    if (!all_set(present, ncols) || (present_after && !all_set(present_after, ncols))) {
        loch_errf(err, LOCH_EUNSUPPORTED, "a row change of %s.%s does not carry every column",
                  t->db, t->name);
        return loch_err_hint(err, "set binlog_row_image=FULL on the server "
                                  "(SET GLOBAL binlog_row_image='FULL' and in its config file)");
    }
    size_t cap = 8, n = 0;
    struct binlog_row *out = arena_alloc(a, cap * sizeof *out);
    while (c.left > 0) {
        if (n == cap) {
            out = arena_grow(a, out, n, cap * 2, sizeof *out);
            cap *= 2;
        }
        struct binlog_row *r = &out[n];
        memset(r, 0, sizeof *r);
        r->op = op;
        int rc = read_image(&c, t, a, op == 'I' ? &r->after : &r->before, err);
        if (rc == 0 && op == 'U')
            rc = read_image(&c, t, a, &r->after, err);
        if (rc)
            return rc;
        n++;
    }
    *rows = out;
    *n_rows = n;
    return 0;
}

/* ---- other event bodies ---- */

int binlog_query_decode(const uint8_t *body, size_t len, struct arena *a, const char **db,
                        const char **statement, struct loch_err *err)
{
    /* post-header: thread id 4, exec time 4, db length 1, error code 2, status vars length 2 */
    struct cursor c = cursor_make(body, len);
    const uint8_t *p;
    uint8_t dblen;
    uint64_t svlen;
    if (!cursor_bytes(&c, 8, &p) || !cursor_u8(&c, &dblen) || !cursor_bytes(&c, 2, &p) ||
        !get_le(&c, 2, &svlen) || !cursor_bytes(&c, svlen, &p))
        return TRUNC(err, "query event header");
    if (!cursor_bytes(&c, (size_t)dblen + 1, &p))
        return TRUNC(err, "query event database");
    *db = arena_strndup(a, (const char *)p, dblen);
    cursor_bytes(&c, c.left, &p);
    *statement = arena_strndup(a, (const char *)p, (size_t)(body + len - p));
    return 0;
}

int binlog_rotate_decode(const uint8_t *body, size_t len, struct arena *a, const char **file,
                         uint64_t *pos, struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    const uint8_t *p;
    if (!get_le(&c, 8, pos))
        return TRUNC(err, "rotate event");
    size_t n = c.left;
    if (!cursor_bytes(&c, n, &p) || n == 0)
        return TRUNC(err, "rotate event file name");
    *file = arena_strndup(a, (const char *)p, n);
    return 0;
}

int binlog_mariadb_gtid_decode(const uint8_t *body, size_t len, uint64_t *seq, uint32_t *domain,
                               uint8_t *flags, struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    uint64_t d;
    if (!get_le(&c, 8, seq) || !get_le(&c, 4, &d) || !cursor_u8(&c, flags))
        return TRUNC(err, "GTID event");
    *domain = (uint32_t)d;
    return 0;
}

/* A server uuid's 16 bytes as MySQL prints them (lower-case, dashed). */
static void uuid_text(const uint8_t *sid, char u[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            u[k++] = '-';
        u[k++] = hex[sid[i] >> 4];
        u[k++] = hex[sid[i] & 15];
    }
    u[k] = 0;
}

int binlog_mysql_previous_gtids_decode(const uint8_t *body, size_t len, struct arena *a, const char **set,
                                       struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    uint64_t n_sids;
    if (!get_le(&c, 8, &n_sids))
        return TRUNC(err, "PREVIOUS_GTIDS event");
    if (n_sids >> 56) { /* the top byte is the format: 1 = tagged (MySQL 8.3+) */
        loch_errf(err, LOCH_EUNSUPPORTED, "the source writes tagged GTIDs (PREVIOUS_GTIDS format %u)",
                  (unsigned)(n_sids >> 56));
        return loch_err_hint(err, "tagged GTIDs are not supported by loch");
    }
    if (n_sids > c.left / 24) /* each sid takes at least 24 bytes */
        return TRUNC(err, "PREVIOUS_GTIDS sid count");
    struct buf b = {0};
    int rc = 0;
    for (uint64_t i = 0; i < n_sids && !rc; i++) {
        const uint8_t *sid;
        uint64_t n_iv;
        if (!cursor_bytes(&c, 16, &sid) || !get_le(&c, 8, &n_iv) || n_iv > c.left / 16) {
            rc = TRUNC(err, "PREVIOUS_GTIDS sid");
            break;
        }
        char u[37];
        uuid_text(sid, u);
        buf_printf(&b, "%s%s", i ? "," : "", u);
        for (uint64_t k = 0; k < n_iv; k++) {
            uint64_t start = 0, end = 0;
            if (!get_le(&c, 8, &start) || !get_le(&c, 8, &end)) {
                rc = TRUNC(err, "PREVIOUS_GTIDS interval");
                break;
            }
            if (start < 1 || end <= start || end > (uint64_t)INT64_MAX) {
                rc = loch_errf(err, LOCH_ECORRUPT, "PREVIOUS_GTIDS interval [%" PRIu64 ", %" PRIu64 ") of %s",
                               start, end, u);
                break;
            }
            if (end - 1 == start)
                buf_printf(&b, ":%" PRIu64, start);
            else
                buf_printf(&b, ":%" PRIu64 "-%" PRIu64, start, end - 1);
        }
    }
    if (!rc)
        *set = arena_strndup(a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return rc;
}

int binlog_mysql_gtid_decode(const uint8_t *body, size_t len, struct arena *a, const char **gtid,
                             struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    const uint8_t *sid;
    uint8_t flags;
    uint64_t gno;
    if (!cursor_u8(&c, &flags) || !cursor_bytes(&c, 16, &sid) || !get_le(&c, 8, &gno))
        return TRUNC(err, "GTID event");
    char u[37];
    uuid_text(sid, u);
    *gtid = arena_printf(a, "%s:%" PRIu64, u, gno);
    return 0;
}
