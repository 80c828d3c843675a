/* values.c: one column value of a rows event's image to canonical text (cdc/change.h), by
 * a table of per-type decoders, and the Iceberg type of each column (binlog.h). Layouts
 * follow my_time.cc (TIME2/DATETIME2/TIMESTAMP2 packings) and strings/decimal.c
 * (decimal2bin). Not for event framing (binlog.c) or MySQL's binary JSON (json.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/mysql/binlog.h"
#include "cdc/mysql/binlog_int.h"

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
