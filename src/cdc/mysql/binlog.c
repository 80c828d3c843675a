/* binlog.c: TABLE_MAP, rows-event and value decoders for the MySQL/MariaDB binlog (see
 * binlog.h). Byte layouts cite MySQL's libbinlogevents (rows_event.h "Table_map_event",
 * "Rows_event"), my_time.cc (TIME2/DATETIME2/TIMESTAMP2 packings), strings/decimal.c
 * (decimal2bin) and MariaDB's log_event.h where the two differ. Not for I/O. */
#include "cdc/mysql/binlog.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"

#define TRUNC(err, what) loch_errf(err, LOCH_ECORRUPT, "binlog event truncated: %s", what)

static bool get_le(struct cursor *c, size_t n, uint64_t *out)
{
    const uint8_t *p;
    if (!cursor_bytes(c, n, &p))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    *out = v;
    return true;
}

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

static bool get_be(struct cursor *c, size_t n, uint64_t *out)
{
    const uint8_t *p;
    if (!cursor_bytes(c, n, &p))
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    *out = v;
    return true;
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

/* ---- values ---- */

static const char *fmt(struct arena *a, const char *f, ...) __attribute__((format(printf, 2, 3)));
static const char *fmt(struct arena *a, const char *f, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, f);
    int n = vsnprintf(tmp, sizeof tmp, f, ap);
    va_end(ap);
    return arena_strndup(a, tmp, n < (int)sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Fractional seconds of TIME2/DATETIME2/TIMESTAMP2: (fsp+1)/2 big-endian bytes, scaled
 * to microseconds (my_time.cc my_datetime_packed_from_binary). */
static bool read_frac(struct cursor *c, unsigned fsp, bool is_signed, int64_t *us)
{
    uint64_t v = 0;
    switch (fsp) {
    case 0:
        *us = 0;
        return true;
    case 1: case 2:
        if (!get_be(c, 1, &v))
            return false;
        *us = (is_signed ? (int64_t)(int8_t)v : (int64_t)v) * 10000;
        return true;
    case 3: case 4:
        if (!get_be(c, 2, &v))
            return false;
        *us = (is_signed ? (int64_t)(int16_t)v : (int64_t)v) * 100;
        return true;
    case 5: case 6:
        if (!get_be(c, 3, &v))
            return false;
        *us = is_signed && (v & 0x800000) ? (int64_t)v - 0x1000000 : (int64_t)v;
        return true;
    default:
        c->failed = true;
        return false;
    }
}

/* Days since 1970-01-01 -> civil date (Howard Hinnant's days_from_civil inverse). */
static void civil(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = yy + (*m <= 2);
}

static const int dig2bytes[10] = {0, 1, 1, 2, 2, 3, 3, 4, 4, 4};

/* DECIMAL(p,s) in MySQL's binary form (strings/decimal.c decimal2bin): groups of 9 digits
 * in 4 big-endian bytes, leading/trailing partial groups in dig2bytes[] bytes, sign bit
 * inverted in the first byte, every byte inverted for negatives. */
static int decimal_text(struct cursor *c, unsigned prec, unsigned scale, struct arena *a,
                        const char **out, struct loch_err *err)
{
    if (prec == 0 || prec > 65 || scale > 30 || scale > prec)
        return loch_errf(err, LOCH_ECORRUPT, "DECIMAL(%u,%u) is not a valid precision/scale",
                         prec, scale);
    unsigned intg = prec - scale, intg0 = intg / 9, intg0x = intg % 9;
    unsigned frac0 = scale / 9, frac0x = scale % 9;
    size_t size = intg0 * 4 + dig2bytes[intg0x] + frac0 * 4 + dig2bytes[frac0x];
    const uint8_t *raw;
    if (!cursor_bytes(c, size, &raw))
        return TRUNC(err, "DECIMAL value");
    uint8_t b[40];
    memcpy(b, raw, size);
    bool neg = !(b[0] & 0x80);
    b[0] ^= 0x80;
    if (neg)
        for (size_t i = 0; i < size; i++)
            b[i] ^= 0xFF;
    struct cursor d = cursor_make(b, size);
    char ip[96], fp[48];
    size_t il = 0, fl = 0;
    uint64_t g = 0;
    static const uint32_t pow10[10] = {1, 10, 100, 1000, 10000, 100000, 1000000, 10000000,
                                       100000000, 1000000000};
    if (intg0x) {
        get_be(&d, (size_t)dig2bytes[intg0x], &g);
        if (g >= pow10[intg0x])
            return loch_errf(err, LOCH_ECORRUPT, "DECIMAL digit group out of range");
        il += (size_t)snprintf(ip + il, sizeof ip - il, "%" PRIu64, g);
    }
    for (unsigned i = 0; i < intg0; i++) {
        get_be(&d, 4, &g);
        if (g >= pow10[9])
            return loch_errf(err, LOCH_ECORRUPT, "DECIMAL digit group out of range");
        il += (size_t)snprintf(ip + il, sizeof ip - il, "%09" PRIu64, g);
    }
    for (unsigned i = 0; i < frac0; i++) {
        get_be(&d, 4, &g);
        if (g >= pow10[9])
            return loch_errf(err, LOCH_ECORRUPT, "DECIMAL digit group out of range");
        fl += (size_t)snprintf(fp + fl, sizeof fp - fl, "%09" PRIu64, g);
    }
    if (frac0x) {
        get_be(&d, (size_t)dig2bytes[frac0x], &g);
        if (g >= pow10[frac0x])
            return loch_errf(err, LOCH_ECORRUPT, "DECIMAL digit group out of range");
        fl += (size_t)snprintf(fp + fl, sizeof fp - fl, "%0*" PRIu64, (int)frac0x, g);
    }
    ip[il] = fp[fl] = 0;
    const char *istart = ip;
    while (*istart == '0' && istart[1])
        istart++;
    if (!*istart)
        istart = "0";
    bool zero = strspn(istart, "0") == strlen(istart) && strspn(fp, "0") == fl;
    *out = arena_printf(a, "%s%s%s%s", neg && !zero ? "-" : "", istart, fl ? "." : "", fp);
    return 0;
}

/* Binary values: two hex digits per byte, no prefix (cdc/change.h canonical form). */
static void bin_escape(struct buf *b, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    buf_reserve(b, n * 2);
    for (size_t i = 0; i < n; i++) {
        char e[2] = {hex[p[i] >> 4], hex[p[i] & 15]};
        buf_append(b, e, 2);
    }
}

static bool is_binary(const struct binlog_column *c)
{
    return c->collation == 63;
}

static int string_text(const struct binlog_column *col, const uint8_t *p, size_t n, bool pad,
                       struct arena *a, const char **out)
{
    if (is_binary(col)) {
        struct buf b = {0};
        bin_escape(&b, p, n);
        /* BINARY(n) values are stored with trailing 0x00 stripped (Field_string::pack);
         * SELECT returns them padded to n bytes. */
        if (pad)
            for (size_t i = n; i < col->meta; i++)
                buf_append(&b, "00", 2);
        *out = arena_strndup(a, b.data ? b.data : "", b.len);
        buf_free(&b);
        return 0;
    }
    if (pad) /* CHAR: SELECT strips trailing spaces (PAD_CHAR_TO_FULL_LENGTH off) */
        while (n > 0 && p[n - 1] == ' ')
            n--;
    *out = arena_strndup(a, (const char *)p, n);
    return 0;
}

/* ---- column values: one decoder per type family, looked up by type code ----
 * Every decoder reads at the cursor (which fails on underrun), leaves the canonical text
 * in *out (NULL for MySQL's zero dates) and names the type in a truncation error. */

struct value_codec {
    int (*decode)(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                  struct arena *a, const char **out, struct loch_err *err);
    size_t width;      /* fixed-width types: bytes in the row image */
    const char *name;  /* for truncation errors */
};

/* TINYINT .. BIGINT: width little-endian bytes, two's complement unless UNSIGNED. */
static int dec_int(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                   struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (!get_le(c, vc->width, &v))
        return TRUNC(err, vc->name);
    if (col->is_unsigned) {
        *out = fmt(a, "%" PRIu64, v);
        return 0;
    }
    unsigned bits = (unsigned)vc->width * 8;
    int64_t s = bits < 64 && (v >> (bits - 1) & 1) ? (int64_t)(v - (1ULL << bits)) : (int64_t)v;
    *out = fmt(a, "%" PRId64, s);
    return 0;
}

/* FLOAT: the float's exact value with enough digits to round-trip. */
static int dec_float(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                     struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    float f;
    if (!get_le(c, 4, &v))
        return TRUNC(err, vc->name);
    uint32_t u = (uint32_t)v;
    memcpy(&f, &u, 4);
    *out = fmt(a, "%.9g", (double)f);
    return 0;
}

static int dec_double(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                      struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    double d;
    if (!get_le(c, 8, &v))
        return TRUNC(err, vc->name);
    memcpy(&d, &v, 8);
    *out = fmt(a, "%.17g", d);
    return 0;
}

/* DECIMAL(p,s): precision and scale are the metadata's two bytes. */
static int dec_decimal(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                       struct arena *a, const char **out, struct loch_err *err)
{
    return decimal_text(c, col->meta >> 8, col->meta & 0xFF, a, out, err);
}

/* YEAR: one byte, years since 1900; 0 is the zero year. */
static int dec_year(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (!get_le(c, 1, &v))
        return TRUNC(err, vc->name);
    *out = fmt(a, "%u", v ? (unsigned)v + 1900 : 0);
    return 0;
}

/* BIT(n): (n + 7) / 8 big-endian bytes. */
static int dec_bit(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                   struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    size_t nb = ((size_t)col->meta + 7) / 8;
    if (nb == 0 || nb > 8)
        return loch_errf(err, LOCH_ECORRUPT, "BIT(%u) is not a valid width", col->meta);
    if (!get_be(c, nb, &v))
        return TRUNC(err, vc->name);
    *out = fmt(a, "%" PRIu64, v);
    return 0;
}

/* DATE: 3 little-endian bytes, day:5 month:4 year:15. */
static int dec_date(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (!get_le(c, 3, &v))
        return TRUNC(err, vc->name);
    unsigned d = v & 31, m = (v >> 5) & 15, y = (unsigned)(v >> 9);
    if (m == 0 || d == 0) /* zero or partial-zero date: no such day */
        return 0;
    *out = fmt(a, "%04u-%02u-%02u", y, m, d);
    return 0;
}

/* TIME before 5.6: 3-byte little-endian signed HHMMSS. */
static int dec_time(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (!get_le(c, 3, &v))
        return TRUNC(err, vc->name);
    int64_t t = v & 0x800000 ? (int64_t)v - 0x1000000 : (int64_t)v;
    if (t < 0 || t / 10000 >= 24)
        return loch_errf(err, LOCH_EUNSUPPORTED, "TIME value %" PRId64 " is outside 00:00:00..23:59:59", t);
    *out = fmt(a, "%02d:%02d:%02d.000000", (int)(t / 10000), (int)(t / 100 % 100), (int)(t % 100));
    return 0;
}

/* TIME2 (my_time_packed_from_binary): 3 big-endian bytes + fraction, or 6 bytes for
 * fsp 5-6; an Iceberg time holds 00:00:00..23:59:59.999999 only. */
static int dec_time2(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                     struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    unsigned fsp = col->meta;
    int64_t packed, frac;
    if (fsp > 6)
        return loch_errf(err, LOCH_ECORRUPT, "TIME(%u) is not a valid precision", fsp);
    if (fsp >= 5) {
        if (!get_be(c, 6, &v))
            return TRUNC(err, vc->name);
        packed = (int64_t)v - 0x800000000000LL;
    } else {
        if (!get_be(c, 3, &v) || !read_frac(c, fsp, true, &frac))
            return TRUNC(err, vc->name);
        int64_t intpart = (int64_t)v - 0x800000;
        if (intpart < 0 && frac) {
            intpart++;
            frac -= fsp <= 2 ? 0x100 * 10000 : 0x10000 * 100;
        }
        packed = intpart * (1LL << 24) + frac;
    }
    bool neg = packed < 0;
    if (neg)
        packed = -packed;
    int64_t hms = packed >> 24, us = packed % (1LL << 24);
    int64_t h = (hms >> 12) % (1 << 10), mi = (hms >> 6) % 64, s = hms % 64;
    if (neg || h >= 24)
        return loch_errf(err, LOCH_EUNSUPPORTED,
                         "TIME value %s%02" PRId64 ":%02" PRId64 ":%02" PRId64
                         " is outside 00:00:00..23:59:59.999999, which an Iceberg time holds",
                         neg ? "-" : "", h, mi, s);
    if (mi > 59 || s > 59 || us > 999999)
        return loch_errf(err, LOCH_ECORRUPT, "TIME value out of range");
    *out = fmt(a, "%02d:%02d:%02d.%06d", (int)h, (int)mi, (int)s, (int)us);
    return 0;
}

/* DATETIME before 5.6: 8-byte little-endian YYYYMMDDhhmmss. */
static int dec_datetime(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                        struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (!get_le(c, 8, &v))
        return TRUNC(err, vc->name);
    unsigned long long d = v / 1000000, t = v % 1000000;
    unsigned y = (unsigned)(d / 10000), m = (unsigned)(d / 100 % 100), dd = (unsigned)(d % 100);
    if (m == 0 || dd == 0)
        return 0;
    *out = fmt(a, "%04u-%02u-%02u %02u:%02u:%02u.000000", y, m, dd, (unsigned)(t / 10000),
               (unsigned)(t / 100 % 100), (unsigned)(t % 100));
    return 0;
}

/* DATETIME2 (my_datetime_packed_from_binary): 40-bit big-endian + fraction. */
static int dec_datetime2(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                         struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    unsigned fsp = col->meta;
    int64_t us;
    if (fsp > 6)
        return loch_errf(err, LOCH_ECORRUPT, "DATETIME(%u) is not a valid precision", fsp);
    if (!get_be(c, 5, &v) || !read_frac(c, fsp, false, &us))
        return TRUNC(err, vc->name);
    int64_t intpart = (int64_t)v - 0x8000000000LL;
    if (intpart < 0)
        return loch_errf(err, LOCH_ECORRUPT, "negative DATETIME");
    int64_t ymd = intpart >> 17, ym = ymd >> 5, hms = intpart % (1 << 17);
    unsigned d = (unsigned)(ymd % 32), m = (unsigned)(ym % 13), y = (unsigned)(ym / 13);
    unsigned s = (unsigned)(hms % 64), mi = (unsigned)((hms >> 6) % 64), h = (unsigned)(hms >> 12);
    if (m == 0 || d == 0)
        return 0;
    if (h > 23 || mi > 59 || s > 59 || us > 999999 || y > 9999)
        return loch_errf(err, LOCH_ECORRUPT, "DATETIME value out of range");
    *out = fmt(a, "%04u-%02u-%02u %02u:%02u:%02u.%06u", y, m, d, h, mi, s, (unsigned)us);
    return 0;
}

/* TIMESTAMP: 4-byte little-endian seconds since the epoch; TIMESTAMP2: 4 big-endian bytes
 * + fraction. Both in UTC; 0 is the zero timestamp. */
static int dec_timestamp(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                         struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    int64_t us = 0;
    if (col->type == BL_TIMESTAMP) {
        if (!get_le(c, 4, &v))
            return TRUNC(err, vc->name);
    } else {
        if (col->meta > 6)
            return loch_errf(err, LOCH_ECORRUPT, "TIMESTAMP(%u) is not a valid precision", col->meta);
        if (!get_be(c, 4, &v) || !read_frac(c, col->meta, false, &us))
            return TRUNC(err, vc->name);
        if (us > 999999)
            return loch_errf(err, LOCH_ECORRUPT, "TIMESTAMP fraction out of range");
    }
    if (v == 0 && us == 0) /* the zero timestamp */
        return 0;
    int64_t y;
    unsigned m, d;
    civil((int64_t)(v / 86400), &y, &m, &d);
    unsigned sod = (unsigned)(v % 86400);
    *out = fmt(a, "%04d-%02u-%02u %02u:%02u:%02u.%06u+00", (int)y, m, d, sod / 3600, sod / 60 % 60, sod % 60,
               (unsigned)us);
    return 0;
}

/* VARCHAR / CHAR: a 1-byte length (2 when the column's maximum is over 255 bytes), the
 * bytes; CHAR is padded (binary) or has trailing spaces stripped. */
static int dec_string(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                      struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    const uint8_t *p;
    size_t lb = col->meta > 255 ? 2 : 1;
    if (!get_le(c, lb, &v) || !cursor_bytes(c, v, &p))
        return TRUNC(err, vc->name);
    return string_text(col, p, v, col->type == BL_STRING, a, out);
}

/* BLOB/TEXT and GEOMETRY (always binary): a length of meta bytes, the bytes. */
static int dec_blob(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    const uint8_t *p;
    if (col->meta < 1 || col->meta > 4)
        return loch_errf(err, LOCH_ECORRUPT, "BLOB length size %u", col->meta);
    if (!get_le(c, col->meta, &v) || !cursor_bytes(c, v, &p))
        return TRUNC(err, vc->name);
    if (col->type == BL_GEOMETRY) {
        struct binlog_column bin = *col;
        bin.collation = 63;
        return string_text(&bin, p, v, false, a, out);
    }
    return string_text(col, p, v, false, a, out);
}

/* MySQL's binary JSON: a length of meta bytes, the document (json.c). */
static int dec_json(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    const uint8_t *p;
    if (col->meta < 1 || col->meta > 4)
        return loch_errf(err, LOCH_ECORRUPT, "JSON length size %u", col->meta);
    if (!get_le(c, col->meta, &v) || !cursor_bytes(c, v, &p))
        return TRUNC(err, vc->name);
    return binlog_json_text(p, v, a, out, err);
}

/* ENUM: a 1-based index of meta bytes into the ENUM_STR_VALUE names. */
static int dec_enum(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                    struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (col->meta != 1 && col->meta != 2)
        return loch_errf(err, LOCH_ECORRUPT, "ENUM pack length %u", col->meta);
    if (!get_le(c, col->meta, &v))
        return TRUNC(err, vc->name);
    if (v == 0) { /* the error value '' stored for invalid input in non-strict mode */
        *out = "";
        return 0;
    }
    if (col->n_values == 0)
        return loch_errf(err, LOCH_EUNSUPPORTED, "ENUM column without its value list");
    if (v > col->n_values)
        return loch_errf(err, LOCH_ECORRUPT, "ENUM index %" PRIu64 " of %zu values", v, col->n_values);
    *out = col->values[v - 1];
    return 0;
}

/* SET: a bitmap of meta bytes over the SET_STR_VALUE names, written comma-separated. */
static int dec_set(const struct value_codec *vc, const struct binlog_column *col, struct cursor *c,
                   struct arena *a, const char **out, struct loch_err *err)
{
    uint64_t v;
    if (col->meta < 1 || col->meta > 8)
        return loch_errf(err, LOCH_ECORRUPT, "SET pack length %u", col->meta);
    if (!get_le(c, col->meta, &v))
        return TRUNC(err, vc->name);
    if (v != 0 && col->n_values == 0)
        return loch_errf(err, LOCH_EUNSUPPORTED, "SET column without its value list");
    struct buf b = {0};
    for (size_t i = 0; i < 64; i++) {
        if (!(v >> i & 1))
            continue;
        if (i >= col->n_values) {
            buf_free(&b);
            return loch_errf(err, LOCH_ECORRUPT, "SET bit %zu of %zu values", i, col->n_values);
        }
        if (b.len)
            buf_putc(&b, ',');
        buf_puts(&b, col->values[i]);
    }
    *out = arena_strndup(a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return 0;
}

/* By type code; a type without a decoder is LOCH_EUNSUPPORTED. */
static const struct value_codec value_codecs[256] = {
    [BL_TINY] = {dec_int, 1, "TINYINT"},
    [BL_SHORT] = {dec_int, 2, "SMALLINT"},
    [BL_INT24] = {dec_int, 3, "MEDIUMINT"},
    [BL_LONG] = {dec_int, 4, "INT"},
    [BL_LONGLONG] = {dec_int, 8, "BIGINT"},
    [BL_FLOAT] = {dec_float, 4, "FLOAT"},
    [BL_DOUBLE] = {dec_double, 8, "DOUBLE"},
    [BL_NEWDECIMAL] = {dec_decimal, 0, "DECIMAL"},
    [BL_YEAR] = {dec_year, 1, "YEAR"},
    [BL_BIT] = {dec_bit, 0, "BIT"},
    [BL_DATE] = {dec_date, 3, "DATE"},
    [BL_NEWDATE] = {dec_date, 3, "DATE"},
    [BL_TIME] = {dec_time, 3, "TIME"},
    [BL_TIME2] = {dec_time2, 0, "TIME"},
    [BL_DATETIME] = {dec_datetime, 8, "DATETIME"},
    [BL_DATETIME2] = {dec_datetime2, 0, "DATETIME"},
    [BL_TIMESTAMP] = {dec_timestamp, 4, "TIMESTAMP"},
    [BL_TIMESTAMP2] = {dec_timestamp, 0, "TIMESTAMP"},
    [BL_VARCHAR] = {dec_string, 0, "VARCHAR"},
    [BL_VAR_STRING] = {dec_string, 0, "VARCHAR"},
    [BL_STRING] = {dec_string, 0, "CHAR"},
    [BL_BLOB] = {dec_blob, 0, "BLOB/TEXT"},
    [BL_TINY_BLOB] = {dec_blob, 0, "BLOB/TEXT"},
    [BL_MEDIUM_BLOB] = {dec_blob, 0, "BLOB/TEXT"},
    [BL_LONG_BLOB] = {dec_blob, 0, "BLOB/TEXT"},
    [BL_GEOMETRY] = {dec_blob, 0, "BLOB/TEXT"},
    [BL_JSON] = {dec_json, 0, "JSON"},
    [BL_ENUM] = {dec_enum, 0, "ENUM"},
    [BL_SET] = {dec_set, 0, "SET"},
};

int binlog_value_text(const struct binlog_column *col, struct cursor *c, struct arena *a,
                      const char **out, struct loch_err *err)
{
    *out = NULL;
    const struct value_codec *vc = &value_codecs[col->type];
    if (!vc->decode)
        return loch_errf(err, LOCH_EUNSUPPORTED, "binlog column type %u is not supported", col->type);
    return vc->decode(vc, col, c, a, out, err);
}

int binlog_column_type(const struct binlog_column *c, struct iceberg_type *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    switch (c->type) {
    case BL_TINY: case BL_SHORT: case BL_INT24: case BL_YEAR:
        out->id = ICEBERG_INT;
        return 0;
    case BL_LONG:
        out->id = c->is_unsigned ? ICEBERG_LONG : ICEBERG_INT;
        return 0;
    case BL_LONGLONG:
        if (c->is_unsigned) {
            out->id = ICEBERG_DECIMAL;
            out->precision = 20;
        } else {
            out->id = ICEBERG_LONG;
        }
        return 0;
    case BL_BIT:
        if (c->meta >= 64) {
            out->id = ICEBERG_DECIMAL;
            out->precision = 20;
        } else {
            out->id = ICEBERG_LONG;
        }
        return 0;
    case BL_FLOAT:
        out->id = ICEBERG_FLOAT;
        return 0;
    case BL_DOUBLE:
        out->id = ICEBERG_DOUBLE;
        return 0;
    case BL_NEWDECIMAL: {
        int p = c->meta >> 8, s = c->meta & 0xFF;
        if (p > 38) {
            out->id = ICEBERG_STRING; /* beyond Iceberg's 38 digits: exact text */
        } else {
            out->id = ICEBERG_DECIMAL;
            out->precision = p;
            out->scale = s;
        }
        return 0;
    }
    case BL_DATE: case BL_NEWDATE:
        out->id = ICEBERG_DATE;
        return 0;
    case BL_TIME: case BL_TIME2:
        out->id = ICEBERG_TIME;
        return 0;
    case BL_DATETIME: case BL_DATETIME2:
        out->id = ICEBERG_TIMESTAMP;
        return 0;
    case BL_TIMESTAMP: case BL_TIMESTAMP2:
        out->id = ICEBERG_TIMESTAMPTZ;
        return 0;
    case BL_VARCHAR: case BL_VAR_STRING: case BL_STRING: case BL_BLOB: case BL_TINY_BLOB:
    case BL_MEDIUM_BLOB: case BL_LONG_BLOB:
        out->id = is_binary(c) ? ICEBERG_BINARY : ICEBERG_STRING;
        return 0;
    case BL_GEOMETRY:
        out->id = ICEBERG_BINARY;
        return 0;
    case BL_ENUM: case BL_SET: case BL_JSON:
        out->id = ICEBERG_STRING;
        return 0;
    default:
        return loch_errf(err, LOCH_EUNSUPPORTED, "column %s: binlog type %u has no Iceberg mapping",
                         c->name ? c->name : "?", c->type);
    }
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
