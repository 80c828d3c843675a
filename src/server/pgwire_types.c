/* pgwire_types.c: value encoders and parameter decoders for the wire (see pgwire_types.h).
 * Dates and times: DuckDB counts from 1970-01-01, PostgreSQL's binary forms from
 * 2000-01-01 (POSTGRES_EPOCH_JDATE); infinities map to the extreme values both use. */
#include "server/pgwire_types.h"

#include "base/util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PG_EPOCH_DAYS 10957                    /* 2000-01-01 - 1970-01-01 */
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)

void pgwire_type_of(const struct engine_col *c, struct pgwire_type *out)
{
    out->typmod = -1;
    switch (c->type) {
    case ENGINE_T_BOOL: out->oid = PG_OID_BOOL; out->len = 1; break;
    case ENGINE_T_INT16: out->oid = PG_OID_INT2; out->len = 2; break;
    case ENGINE_T_INT32: out->oid = PG_OID_INT4; out->len = 4; break;
    case ENGINE_T_INT64: out->oid = PG_OID_INT8; out->len = 8; break;
    case ENGINE_T_HUGEINT: out->oid = PG_OID_NUMERIC; out->len = -1; break;
    case ENGINE_T_FLOAT: out->oid = PG_OID_FLOAT4; out->len = 4; break;
    case ENGINE_T_DOUBLE: out->oid = PG_OID_FLOAT8; out->len = 8; break;
    case ENGINE_T_DECIMAL:
        out->oid = PG_OID_NUMERIC;
        out->len = -1;
        out->typmod = ((c->width << 16) | c->scale) + 4;
        break;
    case ENGINE_T_JSON: out->oid = PG_OID_JSON; out->len = -1; break;
    case ENGINE_T_BLOB: out->oid = PG_OID_BYTEA; out->len = -1; break;
    case ENGINE_T_DATE: out->oid = PG_OID_DATE; out->len = 4; break;
    case ENGINE_T_TIME: out->oid = PG_OID_TIME; out->len = 8; break;
    case ENGINE_T_TIMESTAMP: out->oid = PG_OID_TIMESTAMP; out->len = 8; break;
    case ENGINE_T_TIMESTAMPTZ: out->oid = PG_OID_TIMESTAMPTZ; out->len = 8; break;
    case ENGINE_T_UUID: out->oid = PG_OID_UUID; out->len = 16; break;
    case ENGINE_T_INTERVAL: out->oid = PG_OID_INTERVAL; out->len = 16; break;
    case ENGINE_T_TEXT: out->oid = PG_OID_VARCHAR; out->len = -1; break;
    default: out->oid = PG_OID_TEXT; out->len = -1; break;
    }
}

uint32_t pgwire_param_oid(enum engine_type t)
{
    if (t == ENGINE_T_OTHER)
        return PG_OID_TEXT;
    struct engine_col c = {"", t, 18, 3};
    struct pgwire_type pt;
    pgwire_type_of(&c, &pt);
    return pt.oid;
}

/* ---- text ---- */

/* Appends v in decimal, zero-padded to at least width digits (printf is too slow for a
 * million rows). */
static void put_uint(struct buf *b, uint64_t v, int width)
{
    char t[24];
    int n = 0;
    do {
        t[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n < width)
        t[n++] = '0';
    buf_reserve(b, (size_t)n);
    for (int i = n - 1; i >= 0; i--)
        b->data[b->len++] = t[i];
    b->data[b->len] = '\0';
}

static void put_int(struct buf *b, int64_t v)
{
    if (v < 0) {
        buf_putc(b, '-');
        put_uint(b, (uint64_t)0 - (uint64_t)v, 1);
    } else {
        put_uint(b, (uint64_t)v, 1);
    }
}

/* Decimal digits of the 128-bit value (hi, lo), sign first. */
static size_t i128_digits(int64_t hi, uint64_t lo, char *out, bool *neg)
{
    unsigned __int128 u = ((unsigned __int128)(uint64_t)hi << 64) | lo;
    *neg = hi < 0;
    if (*neg)
        u = ~u + 1;
    char tmp[48];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = '\0';
    return n;
}

/* Unscaled value digits -> "[-]int.frac" with scale fraction digits. */
static void decimal_text(struct buf *b, const struct engine_val *v, int scale, char *digits, size_t *nd, bool *neg)
{
    if (v->wide) {
        *nd = i128_digits(v->hi, v->lo, digits, neg);
    } else {
        *neg = v->i < 0;
        *nd = util_u64_dec(digits, *neg ? (uint64_t)0 - (uint64_t)v->i : (uint64_t)v->i);
    }
    if (!b)
        return;
    if (*neg)
        buf_putc(b, '-');
    if ((int)*nd <= scale) {
        buf_putc(b, '0');
        if (scale > 0) {
            buf_putc(b, '.');
            for (int k = 0; k < scale - (int)*nd; k++)
                buf_putc(b, '0');
            buf_append(b, digits, *nd);
        }
    } else {
        buf_append(b, digits, *nd - (size_t)scale);
        if (scale > 0) {
            buf_putc(b, '.');
            buf_append(b, digits + *nd - (size_t)scale, (size_t)scale);
        }
    }
}

/* Shortest text that reads back as the same value (PostgreSQL 12+ with extra_float_digits
 * >= 1, which every modern driver sets). */
static void float_text(struct buf *b, double d, bool single)
{
    if (isnan(d)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(d)) {
        buf_puts(b, d > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char s[40];
    for (int prec = single ? 6 : 15; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, d);
        if (single ? (float)strtod(s, NULL) == (float)d : strtod(s, NULL) == d)
            break;
    }
    buf_puts(b, s);
}

/* Civil date from days since 1970-01-01 (Howard Hinnant's algorithm). */
static void civil(int64_t days, int64_t *y, int *m, int *d)
{
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static void date_part(struct buf *b, int64_t days, bool *bc)
{
    int64_t y;
    int m, d;
    civil(days, &y, &m, &d);
    *bc = y <= 0;
    put_uint(b, (uint64_t)(*bc ? 1 - y : y), 4);
    buf_putc(b, '-');
    put_uint(b, (uint64_t)m, 2);
    buf_putc(b, '-');
    put_uint(b, (uint64_t)d, 2);
}

static void time_part(struct buf *b, int64_t us)
{
    int64_t s = us / 1000000, frac = us % 1000000;
    put_uint(b, (uint64_t)(s / 3600), 2);
    buf_putc(b, ':');
    put_uint(b, (uint64_t)(s / 60 % 60), 2);
    buf_putc(b, ':');
    put_uint(b, (uint64_t)(s % 60), 2);
    if (frac) {
        int digits = 6;
        while (frac % 10 == 0) {
            frac /= 10;
            digits--;
        }
        buf_putc(b, '.');
        put_uint(b, (uint64_t)frac, digits);
    }
}

static void timestamp_text(struct buf *b, int64_t us, bool tz)
{
    if (us == INT64_MAX || us == -INT64_MAX || us == INT64_MIN) {
        buf_puts(b, us == INT64_MAX ? "infinity" : "-infinity");
        return;
    }
    int64_t days = us >= 0 ? us / 86400000000 : -((-us + 86400000000 - 1) / 86400000000);
    int64_t rest = us - days * 86400000000;
    bool bc;
    date_part(b, days, &bc);
    buf_putc(b, ' ');
    time_part(b, rest);
    if (tz)
        buf_puts(b, "+00");
    if (bc)
        buf_puts(b, " BC");
}

static const char hexd[] = "0123456789abcdef";

static void uuid_bytes(const struct engine_val *v, unsigned char out[16])
{
    uint64_t hi = (uint64_t)v->hi, lo = v->lo;
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(hi >> (56 - 8 * i));
        out[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
}

static void interval_text(struct buf *b, const struct engine_val *v)
{
    int32_t years = v->months / 12, mons = v->months % 12;
    bool any = false;
    if (years) {
        buf_printf(b, "%d year%s", years, years == 1 || years == -1 ? "" : "s");
        any = true;
    }
    if (mons) {
        buf_printf(b, "%s%d mon%s", any ? " " : "", mons, mons == 1 || mons == -1 ? "" : "s");
        any = true;
    }
    if (v->days) {
        buf_printf(b, "%s%d day%s", any ? " " : "", v->days, v->days == 1 || v->days == -1 ? "" : "s");
        any = true;
    }
    if (v->i || !any) {
        if (any)
            buf_putc(b, ' ');
        int64_t us = v->i;
        if (us < 0) {
            buf_putc(b, '-');
            us = -us;
        }
        time_part(b, us);
    }
}

void pgwire_encode_text(struct buf *b, const struct engine_col *c, const struct engine_val *v)
{
    switch (c->type) {
    case ENGINE_T_BOOL: buf_putc(b, v->i ? 't' : 'f'); break;
    case ENGINE_T_INT16: case ENGINE_T_INT32: case ENGINE_T_INT64:
        put_int(b, v->i);
        break;
    case ENGINE_T_HUGEINT: {
        char d[48];
        bool neg;
        i128_digits(v->hi, v->lo, d, &neg);
        if (neg)
            buf_putc(b, '-');
        buf_puts(b, d);
        break;
    }
    case ENGINE_T_FLOAT: float_text(b, v->f, true); break;
    case ENGINE_T_DOUBLE: float_text(b, v->f, false); break;
    case ENGINE_T_DECIMAL: {
        char d[48];
        size_t nd;
        bool neg;
        decimal_text(b, v, c->scale, d, &nd, &neg);
        break;
    }
    case ENGINE_T_BLOB:
        buf_puts(b, "\\x");
        for (size_t i = 0; i < v->len; i++) {
            unsigned char ch = (unsigned char)v->p[i];
            buf_putc(b, hexd[ch >> 4]);
            buf_putc(b, hexd[ch & 15]);
        }
        break;
    case ENGINE_T_DATE:
        if (v->i == INT32_MAX || v->i == -INT32_MAX || v->i == INT32_MIN) {
            buf_puts(b, v->i == INT32_MAX ? "infinity" : "-infinity");
        } else {
            bool bc;
            date_part(b, v->i, &bc);
            if (bc)
                buf_puts(b, " BC");
        }
        break;
    case ENGINE_T_TIME: time_part(b, v->i); break;
    case ENGINE_T_TIMESTAMP: timestamp_text(b, v->i, false); break;
    case ENGINE_T_TIMESTAMPTZ: timestamp_text(b, v->i, true); break;
    case ENGINE_T_UUID: {
        unsigned char u[16];
        uuid_bytes(v, u);
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10)
                buf_putc(b, '-');
            buf_putc(b, hexd[u[i] >> 4]);
            buf_putc(b, hexd[u[i] & 15]);
        }
        break;
    }
    case ENGINE_T_INTERVAL: interval_text(b, v); break;
    default: buf_append(b, v->p, v->len); break;
    }
}

/* ---- binary ---- */

static void put16(struct buf *b, uint16_t v)
{
    unsigned char p[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    buf_append(b, p, 2);
}

static void put64(struct buf *b, uint64_t v)
{
    buf_put_be32(b, (uint32_t)(v >> 32));
    buf_put_be32(b, (uint32_t)v);
}

/* numeric_send: ndigits, weight, sign, dscale, then base-10000 digits (most significant
 * first); weight is the power of 10000 of the first digit. */
static void numeric_binary(struct buf *b, const char *digits, size_t nd, bool neg, int scale)
{
    size_t int_len = (int)nd > scale ? nd - (size_t)scale : 0;
    /* Pad the integer part on the left to a multiple of 4 and the fraction on the right. */
    size_t lpad = (4 - int_len % 4) % 4;
    size_t frac_len = (size_t)scale;
    size_t rpad = (4 - frac_len % 4) % 4;
    char tmp[128];
    size_t n = 0;
    for (size_t k = 0; k < lpad; k++)
        tmp[n++] = '0';
    for (size_t k = 0; k < int_len; k++)
        tmp[n++] = digits[k];
    for (size_t k = 0; k < frac_len; k++) { /* fraction digits, left-padded with zeros */
        size_t from_end = frac_len - k;     /* position counted from the last digit */
        tmp[n++] = from_end <= nd ? digits[nd - from_end] : '0';
    }
    for (size_t k = 0; k < rpad; k++)
        tmp[n++] = '0';
    size_t ngroups = n / 4, int_groups = (lpad + int_len) / 4;
    uint16_t g[32];
    for (size_t k = 0; k < ngroups; k++)
        g[k] = (uint16_t)((tmp[4 * k] - '0') * 1000 + (tmp[4 * k + 1] - '0') * 100 + (tmp[4 * k + 2] - '0') * 10 +
                          (tmp[4 * k + 3] - '0'));
    int weight = (int)int_groups - 1;
    size_t first = 0, last = ngroups;
    while (first < last && g[first] == 0) {
        first++;
        weight--;
    }
    while (last > first && g[last - 1] == 0)
        last--;
    if (first == last) {
        weight = 0;
        neg = false;
    }
    put16(b, (uint16_t)(last - first));
    put16(b, (uint16_t)(int16_t)weight);
    put16(b, neg ? 0x4000 : 0x0000);
    put16(b, (uint16_t)scale);
    for (size_t k = first; k < last; k++)
        put16(b, g[k]);
}

void pgwire_encode_binary(struct buf *b, const struct engine_col *c, const struct engine_val *v)
{
    switch (c->type) {
    case ENGINE_T_BOOL: buf_putc(b, v->i ? 1 : 0); break;
    case ENGINE_T_INT16: put16(b, (uint16_t)(int16_t)v->i); break;
    case ENGINE_T_INT32: buf_put_be32(b, (uint32_t)(int32_t)v->i); break;
    case ENGINE_T_INT64: put64(b, (uint64_t)v->i); break;
    case ENGINE_T_FLOAT: {
        float f = (float)v->f;
        uint32_t u;
        memcpy(&u, &f, 4);
        buf_put_be32(b, u);
        break;
    }
    case ENGINE_T_DOUBLE: {
        uint64_t u;
        memcpy(&u, &v->f, 8);
        put64(b, u);
        break;
    }
    case ENGINE_T_HUGEINT: {
        char d[48];
        bool neg;
        size_t nd = i128_digits(v->hi, v->lo, d, &neg);
        numeric_binary(b, d, nd, neg, 0);
        break;
    }
    case ENGINE_T_DECIMAL: {
        char d[48];
        size_t nd;
        bool neg;
        decimal_text(NULL, v, c->scale, d, &nd, &neg);
        numeric_binary(b, d, nd, neg, c->scale);
        break;
    }
    case ENGINE_T_DATE: {
        int64_t d = v->i;
        int32_t out = d == INT32_MAX ? INT32_MAX : (d == -INT32_MAX || d == INT32_MIN) ? INT32_MIN
                                                                                       : (int32_t)(d - PG_EPOCH_DAYS);
        buf_put_be32(b, (uint32_t)out);
        break;
    }
    case ENGINE_T_TIME: put64(b, (uint64_t)v->i); break;
    case ENGINE_T_TIMESTAMP:
    case ENGINE_T_TIMESTAMPTZ: {
        int64_t t = v->i;
        int64_t out = t == INT64_MAX ? INT64_MAX : (t == -INT64_MAX || t == INT64_MIN) ? INT64_MIN : t - PG_EPOCH_US;
        put64(b, (uint64_t)out);
        break;
    }
    case ENGINE_T_UUID: {
        unsigned char u[16];
        uuid_bytes(v, u);
        buf_append(b, u, 16);
        break;
    }
    case ENGINE_T_INTERVAL:
        put64(b, (uint64_t)v->i);
        buf_put_be32(b, (uint32_t)v->days);
        buf_put_be32(b, (uint32_t)v->months);
        break;
    default: buf_append(b, v->p, v->len); break; /* text, varchar, json, bytea: raw bytes */
    }
}

/* ---- parameters ---- */

static int bad_param(size_t i, uint32_t oid, const char *what, struct loch_err *err)
{
    loch_errf(err, LOCH_EINVAL, "invalid value for parameter $%zu: %s", i + 1, what);
    return loch_err_detail(err, "declared type OID %u", oid);
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int k = 0; k < n; k++)
        v = (v << 8) | p[k];
    return v;
}

/* numeric_recv -> text, for DuckDB to cast. */
static int numeric_from_binary(const uint8_t *p, int32_t len, struct buf *out)
{
    if (len < 8)
        return -1;
    uint16_t nd = (uint16_t)be(p, 2), sign = (uint16_t)be(p + 4, 2), dscale = (uint16_t)be(p + 6, 2);
    int16_t weight = (int16_t)be(p + 2, 2);
    if ((int32_t)(8 + 2 * nd) != len || dscale > 1000)
        return -1;
    if (sign == 0xC000) {
        buf_puts(out, "NaN");
        return 0;
    }
    if (sign != 0 && sign != 0x4000)
        return -1;
    if (sign == 0x4000)
        buf_putc(out, '-');
    if (weight < 0)
        buf_putc(out, '0');
    for (int k = 0; k <= weight; k++) {
        uint16_t g = k < nd ? (uint16_t)be(p + 8 + 2 * k, 2) : 0;
        if (g > 9999)
            return -1;
        buf_printf(out, k == 0 ? "%u" : "%04u", g);
    }
    if (dscale) {
        buf_putc(out, '.');
        struct buf f = {0};
        for (int k = weight + 1; (int)f.len < dscale; k++) {
            uint16_t g = (k >= 0 && k < nd) ? (uint16_t)be(p + 8 + 2 * k, 2) : 0;
            buf_printf(&f, "%04u", g);
        }
        buf_append(out, f.data, dscale);
        buf_free(&f);
    }
    return 0;
}

int pgwire_bind_param(struct engine_stmt *st, size_t i, uint32_t oid, int format, const uint8_t *data,
                      int32_t len, struct loch_err *err)
{
    if (!data)
        return engine_bind_null(st, i, err);
    if (format == 0) {
        char *s = xstrndup((const char *)data, (size_t)len);
        int rc;
        char *end = NULL;
        errno = 0;
        if (oid == PG_OID_INT2 || oid == PG_OID_INT4 || oid == PG_OID_INT8) {
            long long v = strtoll(s, &end, 10);
            rc = (!*s || *end || errno) ? bad_param(i, oid, "not an integer", err) : engine_bind_int(st, i, v, err);
        } else if (oid == PG_OID_FLOAT4 || oid == PG_OID_FLOAT8) {
            double v = strtod(s, &end);
            rc = (!*s || *end) ? bad_param(i, oid, "not a number", err) : engine_bind_double(st, i, v, err);
        } else if (oid == PG_OID_BOOL) {
            bool t = !strcasecmp(s, "t") || !strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "on") ||
                     !strcasecmp(s, "yes");
            bool f = !strcasecmp(s, "f") || !strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "off") ||
                     !strcasecmp(s, "no");
            rc = (t || f) ? engine_bind_bool(st, i, t, err) : bad_param(i, oid, "not a boolean", err);
        } else if (oid == PG_OID_BYTEA && len >= 2 && s[0] == '\\' && s[1] == 'x') {
            size_t n = ((size_t)len - 2) / 2;
            unsigned char *raw = xmalloc(n + 1);
            bool ok = ((size_t)len - 2) % 2 == 0;
            for (size_t k = 0; ok && k < n; k++) {
                const char *h1 = strchr(hexd, s[2 + 2 * k] | 0x20), *h2 = strchr(hexd, s[3 + 2 * k] | 0x20);
                ok = h1 && h2 && *h1 && *h2;
                if (ok)
                    raw[k] = (unsigned char)(((h1 - hexd) << 4) | (h2 - hexd));
            }
            rc = ok ? engine_bind_blob(st, i, raw, n, err) : bad_param(i, oid, "not a hex bytea", err);
            free(raw);
        } else {
            rc = engine_bind_text(st, i, s, (size_t)len, err);
        }
        free(s);
        return rc;
    }
    switch (oid) {
    case PG_OID_INT2:
    case PG_OID_INT4:
    case PG_OID_INT8:
        if (len == 2)
            return engine_bind_int(st, i, (int16_t)be(data, 2), err);
        if (len == 4)
            return engine_bind_int(st, i, (int32_t)be(data, 4), err);
        if (len == 8)
            return engine_bind_int(st, i, (int64_t)be(data, 8), err);
        return bad_param(i, oid, "binary integer of the wrong length", err);
    case PG_OID_FLOAT4: {
        if (len != 4)
            return bad_param(i, oid, "binary float4 is not 4 bytes", err);
        uint32_t u = (uint32_t)be(data, 4);
        float f;
        memcpy(&f, &u, 4);
        return engine_bind_double(st, i, f, err);
    }
    case PG_OID_FLOAT8: {
        if (len != 8)
            return bad_param(i, oid, "binary float8 is not 8 bytes", err);
        uint64_t u = be(data, 8);
        double d;
        memcpy(&d, &u, 8);
        return engine_bind_double(st, i, d, err);
    }
    case PG_OID_BOOL:
        if (len != 1)
            return bad_param(i, oid, "binary bool is not 1 byte", err);
        return engine_bind_bool(st, i, data[0] != 0, err);
    case PG_OID_BYTEA:
        return engine_bind_blob(st, i, data, (size_t)len, err);
    case 0: case PG_OID_TEXT: case PG_OID_VARCHAR: case PG_OID_BPCHAR: case PG_OID_NAME: case PG_OID_JSON:
    case PG_OID_UNKNOWN:
        return engine_bind_text(st, i, (const char *)data, (size_t)len, err);
    case PG_OID_JSONB:
        if (len < 1 || data[0] != 1)
            return bad_param(i, oid, "binary jsonb without version 1", err);
        return engine_bind_text(st, i, (const char *)data + 1, (size_t)len - 1, err);
    case PG_OID_DATE: {
        if (len != 4)
            return bad_param(i, oid, "binary date is not 4 bytes", err);
        int32_t d = (int32_t)be(data, 4);
        return engine_bind_date(st, i, d == INT32_MAX ? INT32_MAX : d == INT32_MIN ? -INT32_MAX : d + PG_EPOCH_DAYS,
                                err);
    }
    case PG_OID_TIMESTAMP:
    case PG_OID_TIMESTAMPTZ: {
        if (len != 8)
            return bad_param(i, oid, "binary timestamp is not 8 bytes", err);
        int64_t t = (int64_t)be(data, 8);
        return engine_bind_timestamp(st, i, t == INT64_MAX ? INT64_MAX : t == INT64_MIN ? -INT64_MAX : t + PG_EPOCH_US,
                                     oid == PG_OID_TIMESTAMPTZ, err);
    }
    case PG_OID_UUID: {
        if (len != 16)
            return bad_param(i, oid, "binary uuid is not 16 bytes", err);
        char s[37];
        size_t n = 0;
        for (int k = 0; k < 16; k++) {
            if (k == 4 || k == 6 || k == 8 || k == 10)
                s[n++] = '-';
            s[n++] = hexd[data[k] >> 4];
            s[n++] = hexd[data[k] & 15];
        }
        return engine_bind_text(st, i, s, 36, err);
    }
    case PG_OID_NUMERIC: {
        struct buf t = {0};
        int rc = numeric_from_binary(data, len, &t) ? bad_param(i, oid, "malformed binary numeric", err)
                                                    : engine_bind_text(st, i, t.data, t.len, err);
        buf_free(&t);
        return rc;
    }
    default:
        loch_errf(err, LOCH_EUNSUPPORTED, "binary format for parameter $%zu of type OID %u is not supported", i + 1,
                  oid);
        return loch_err_hint(err, "send the parameter in text format");
    }
}

