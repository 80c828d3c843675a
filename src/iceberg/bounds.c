/* bounds.c: Iceberg's single-value binary encoding (spec Appendix D) used for
 * lower_bounds / upper_bounds in manifests and partition summaries, and Java-compatible
 * truncation of string bounds. Not for computing statistics (the sink reads them from
 * Parquet) or for Avro framing (avro.c). */
#include "iceberg/iceberg.h"

#include <string.h>

static void put_le(uint8_t *out, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* Decimal: Java's BigDecimal.unscaledValue().toByteArray(), i.e. the shortest
 * big-endian two's complement that keeps the sign bit (Appendix D "decimal"). */
static size_t decimal_encode(int64_t hi, uint64_t lo, uint8_t out[16])
{
    uint8_t full[16];
    for (int i = 0; i < 8; i++) {
        full[i] = (uint8_t)((uint64_t)hi >> (56 - 8 * i));
        full[8 + i] = (uint8_t)(lo >> (56 - 8 * i));
    }
    size_t skip = 0;
    /* Drop a leading 0x00 (0xFF) when the next byte still has the sign bit clear (set). */
    while (skip < 15 && ((full[skip] == 0x00 && !(full[skip + 1] & 0x80)) ||
                         (full[skip] == 0xFF && (full[skip + 1] & 0x80))))
        skip++;
    memcpy(out, full + skip, 16 - skip);
    return 16 - skip;
}

int iceberg_bound_encode(const struct iceberg_type *t, const struct iceberg_value *v, uint8_t *out,
                         size_t out_cap, size_t *out_len)
{
    uint8_t tmp[16];
    size_t n = 0;
    const uint8_t *src = tmp;

    if (!t || !v || !out_len || v->is_null)
        return LOCH_EINVAL;
    switch (t->id) {
    case ICEBERG_BOOLEAN:
        tmp[0] = v->v.b ? 1 : 0;
        n = 1;
        break;
    case ICEBERG_INT:
    case ICEBERG_DATE:
        put_le(tmp, (uint32_t)v->v.i32, 4);
        n = 4;
        break;
    case ICEBERG_LONG:
    case ICEBERG_TIME:
    case ICEBERG_TIMESTAMP:
    case ICEBERG_TIMESTAMPTZ:
        put_le(tmp, (uint64_t)v->v.i64, 8);
        n = 8;
        break;
    case ICEBERG_FLOAT: {
        uint32_t bits;
        memcpy(&bits, &v->v.f32, 4);
        put_le(tmp, bits, 4);
        n = 4;
        break;
    }
    case ICEBERG_DOUBLE: {
        uint64_t bits;
        memcpy(&bits, &v->v.f64, 8);
        put_le(tmp, bits, 8);
        n = 8;
        break;
    }
    case ICEBERG_DECIMAL:
        n = decimal_encode(v->v.dec.hi, v->v.dec.lo, tmp);
        break;
    case ICEBERG_UUID:
        /* The 16 bytes are already in RFC 4122 (big-endian) order. */
        if (v->v.bytes.len != 16)
            return LOCH_EINVAL;
        src = v->v.bytes.p;
        n = 16;
        break;
    case ICEBERG_FIXED:
        if (t->length < 0 || v->v.bytes.len != (size_t)t->length)
            return LOCH_EINVAL;
        src = v->v.bytes.p;
        n = v->v.bytes.len;
        break;
    case ICEBERG_STRING:
    case ICEBERG_BINARY:
        src = v->v.bytes.p;
        n = v->v.bytes.len;
        break;
    default:
        return LOCH_EUNSUPPORTED;
    }
    if (n > out_cap)
        return LOCH_EINVAL;
    if (n)
        memcpy(out, src, n);
    *out_len = n;
    return 0;
}

int iceberg_bound_decode(const struct iceberg_type *t, const uint8_t *p, size_t len,
                         struct iceberg_value *out)
{
    if (!t || !out || (!p && len))
        return LOCH_EINVAL;
    memset(out, 0, sizeof *out);
    switch (t->id) {
    case ICEBERG_BOOLEAN:
        if (len != 1)
            return LOCH_ECORRUPT;
        out->v.b = p[0] != 0;
        return 0;
    case ICEBERG_INT:
    case ICEBERG_DATE:
        if (len != 4)
            return LOCH_ECORRUPT;
        out->v.i32 = (int32_t)(uint32_t)get_le(p, 4);
        return 0;
    case ICEBERG_LONG:
        /* A bound written while the column was an int (promoted int->long) has 4 bytes;
         * Java's Conversions.fromByteBuffer accepts it the same way. */
        if (len == 4) {
            out->v.i64 = (int32_t)(uint32_t)get_le(p, 4);
            return 0;
        }
        /* fallthrough */
    case ICEBERG_TIME:
    case ICEBERG_TIMESTAMP:
    case ICEBERG_TIMESTAMPTZ:
        if (len != 8)
            return LOCH_ECORRUPT;
        out->v.i64 = (int64_t)get_le(p, 8);
        return 0;
    case ICEBERG_FLOAT: {
        if (len != 4)
            return LOCH_ECORRUPT;
        uint32_t bits = (uint32_t)get_le(p, 4);
        memcpy(&out->v.f32, &bits, 4);
        return 0;
    }
    case ICEBERG_DOUBLE: {
        if (len == 4) { /* promoted float->double, as for long above */
            uint32_t bits = (uint32_t)get_le(p, 4);
            float f;
            memcpy(&f, &bits, 4);
            out->v.f64 = f;
            return 0;
        }
        if (len != 8)
            return LOCH_ECORRUPT;
        uint64_t bits = get_le(p, 8);
        memcpy(&out->v.f64, &bits, 8);
        return 0;
    }
    case ICEBERG_DECIMAL: {
        if (len < 1 || len > 16)
            return LOCH_ECORRUPT;
        uint8_t full[16];
        memset(full, (p[0] & 0x80) ? 0xFF : 0x00, 16); /* sign-extend */
        memcpy(full + 16 - len, p, len);
        uint64_t hi = 0, lo = 0;
        for (int i = 0; i < 8; i++) {
            hi = (hi << 8) | full[i];
            lo = (lo << 8) | full[8 + i];
        }
        out->v.dec.hi = (int64_t)hi;
        out->v.dec.lo = lo;
        return 0;
    }
    case ICEBERG_UUID:
        if (len != 16)
            return LOCH_ECORRUPT;
        break;
    case ICEBERG_FIXED:
        if (t->length < 0 || len != (size_t)t->length)
            return LOCH_ECORRUPT;
        break;
    case ICEBERG_STRING:
    case ICEBERG_BINARY:
        break;
    default:
        return LOCH_EUNSUPPORTED;
    }
    out->v.bytes.p = p;
    out->v.bytes.len = len;
    return 0;
}

/* Length of the UTF-8 sequence starting at s[0] (at most left). Invalid or cut
 * sequences count as one byte, so truncation never reads past the input. */
static size_t utf8_len(const uint8_t *s, size_t left)
{
    size_t n = 1;
    if (s[0] >= 0xF0)
        n = 4;
    else if (s[0] >= 0xE0)
        n = 3;
    else if (s[0] >= 0xC0)
        n = 2;
    if (n > left)
        return 1;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 1;
    return n;
}

static uint32_t utf8_decode(const uint8_t *s, size_t n)
{
    switch (n) {
    case 2: return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    case 3: return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    case 4:
        return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
               ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    default: return s[0];
    }
}

static size_t utf8_encode(uint32_t cp, uint8_t *out)
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Byte length of the first n_cp code points of s (all of s when it is shorter). */
static size_t prefix_bytes(const uint8_t *s, size_t len, size_t n_cp, size_t *n_seen)
{
    size_t off = 0, k = 0;
    while (off < len && k < n_cp) {
        off += utf8_len(s + off, len - off);
        k++;
    }
    *n_seen = k;
    return off;
}

size_t iceberg_bound_truncate_lower(const uint8_t *s, size_t len, size_t n_cp, uint8_t *out)
{
    size_t k;
    size_t n = prefix_bytes(s, len, n_cp, &k);
    if (n)
        memcpy(out, s, n);
    return n;
}

bool iceberg_bound_truncate_upper(const uint8_t *s, size_t len, size_t n_cp, uint8_t *out,
                                  size_t *out_len)
{
    size_t k;
    size_t n = prefix_bytes(s, len, n_cp, &k);
    if (n)
        memcpy(out, s, n);
    if (n == len) { /* nothing cut: the value itself is the bound */
        *out_len = n;
        return true;
    }
    /* Java UnicodeUtil.truncateStringMax: increment the last code point that can be
     * incremented, dropping the ones after it. Code points are found from the start so
     * that invalid bytes (counted as one unit each) stay consistent with prefix_bytes. */
    for (size_t end = n; end > 0;) {
        /* find the start of the last unit before end */
        size_t off = 0, last = 0;
        while (off < end) {
            last = off;
            off += utf8_len(s + off, end - off);
        }
        size_t ulen = end - last;
        uint32_t cp = utf8_decode(s + last, ulen);
        uint32_t next = cp + 1;
        if (next >= 0xD800 && next <= 0xDFFF)
            next = 0xE000;
        if (ulen == 1 && cp >= 0x80) /* an invalid byte: treat it as binary */
            next = cp < 0xFF ? cp + 1 : 0x110000;
        if (next <= 0x10FFFF) {
            size_t m;
            if (ulen == 1 && cp >= 0x80) {
                out[last] = (uint8_t)next;
                m = 1;
            } else {
                m = utf8_encode(next, out + last);
            }
            *out_len = last + m;
            return true;
        }
        end = last;
    }
    return false;
}
