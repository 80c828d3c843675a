/* json.c: MySQL's binary JSON (the JSON column of MySQL 5.7+/8.x binlog rows) to JSON text.
 * Layout per MySQL sql-common/json_binary.h ("The binary format"): a type byte, then
 * objects/arrays as element count + byte size + entry tables with offsets relative to
 * the object start, scalars inline or at an offset. The text is produced by jansson
 * (never hand-written); MariaDB's JSON is LONGTEXT and never comes here. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/mysql/binlog.h"

enum {
    J_SMALL_OBJ = 0, J_LARGE_OBJ = 1, J_SMALL_ARR = 2, J_LARGE_ARR = 3, J_LITERAL = 4,
    J_INT16 = 5, J_UINT16 = 6, J_INT32 = 7, J_UINT32 = 8, J_INT64 = 9, J_UINT64 = 10,
    J_DOUBLE = 11, J_STRING = 12, J_OPAQUE = 15,
};

#define MAX_DEPTH 100

static uint64_t le(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Variable-length length: 7 bits per byte, low bits first, at most 5 bytes. */
static bool varlen(const uint8_t *p, size_t len, size_t *used, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < 5 && i < len; i++) {
        v |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *used = i + 1;
            *out = v;
            return true;
        }
    }
    return false;
}

static json_t *value(uint8_t type, const uint8_t *p, size_t len, int depth, struct arena *a,
                     struct loch_err *err);

static json_t *container(uint8_t type, const uint8_t *p, size_t len, int depth, struct arena *a,
                         struct loch_err *err)
{
    bool large = type == J_LARGE_OBJ || type == J_LARGE_ARR;
    bool obj = type == J_SMALL_OBJ || type == J_LARGE_OBJ;
    size_t os = large ? 4 : 2;
    if (depth > MAX_DEPTH) {
        loch_errf(err, LOCH_EUNSUPPORTED, "JSON value nested deeper than %d", MAX_DEPTH);
        return NULL;
    }
    if (len < 2 * os)
        goto trunc;
    uint64_t count = le(p, os), size = le(p + os, os);
    if (size > len)
        goto trunc;
    len = size; /* everything below stays inside this container */
    size_t key_entries = obj ? count * (os + 2) : 0;
    size_t val_entry = 1 + os;
    if (count > len || 2 * os + key_entries + count * val_entry > len)
        goto trunc;
    json_t *out = obj ? json_object() : json_array();
    for (uint64_t i = 0; i < count; i++) {
        const uint8_t *ve = p + 2 * os + key_entries + i * val_entry;
        uint8_t vt = ve[0];
        json_t *v;
        bool inlined = vt == J_LITERAL || vt == J_INT16 || vt == J_UINT16 ||
                       (large && (vt == J_INT32 || vt == J_UINT32));
        if (inlined) {
            v = value(vt, ve + 1, os, depth + 1, a, err);
        } else {
            uint64_t off = le(ve + 1, os);
            if (off >= len) {
                json_decref(out);
                goto trunc;
            }
            v = value(vt, p + off, len - off, depth + 1, a, err);
        }
        if (!v) {
            json_decref(out);
            return NULL;
        }
        if (obj) {
            const uint8_t *ke = p + 2 * os + i * (os + 2);
            uint64_t koff = le(ke, os), klen = le(ke + os, 2);
            if (koff > len || klen > len - koff) {
                json_decref(v);
                json_decref(out);
                goto trunc;
            }
            char *k = arena_strndup(a, (const char *)p + koff, klen);
            if (strlen(k) != klen) /* a NUL inside the key */
                json_decref(v);
            if (strlen(k) != klen || json_object_set_new(out, k, v) != 0) { /* set_new frees v on error */
                json_decref(out);
                loch_errf(err, LOCH_ECORRUPT, "JSON object key is not valid UTF-8 text");
                return NULL;
            }
        } else {
            json_array_append_new(out, v);
        }
    }
    return out;
trunc:
    loch_errf(err, LOCH_ECORRUPT, "binary JSON truncated or with an offset out of bounds");
    return NULL;
}

static json_t *opaque(const uint8_t *p, size_t len, struct arena *a, struct loch_err *err)
{
    size_t used;
    uint64_t n;
    if (len < 1 || !varlen(p + 1, len - 1, &used, &n) || n > len - 1 - used) {
        loch_errf(err, LOCH_ECORRUPT, "binary JSON opaque value truncated");
        return NULL;
    }
    uint8_t ftype = p[0];
    const uint8_t *d = p + 1 + used;
    if (ftype == BL_NEWDECIMAL && n >= 2) {
        /* precision, scale, then the DECIMAL binary form; kept exact as a string */
        struct binlog_column col = {.type = BL_NEWDECIMAL, .meta = (uint16_t)(d[0] << 8 | d[1])};
        struct cursor c = cursor_make(d + 2, n - 2);
        const char *txt;
        if (binlog_value_text(&col, &c, a, &txt, err) != 0)
            return NULL;
        return json_string(txt);
    }
    if ((ftype == BL_DATETIME || ftype == BL_TIMESTAMP || ftype == BL_DATE || ftype == BL_TIME) &&
        n == 8) {
        /* a packed int64 (my_time.h TIME_to_longlong_*_packed) */
        int64_t packed = (int64_t)le(d, 8);
        bool neg = packed < 0;
        if (neg)
            packed = -packed;
        int64_t intpart = packed >> 24, us = packed % (1LL << 24);
        char txt[64];
        if (ftype == BL_TIME) {
            int64_t h = (intpart >> 12) % (1 << 10), mi = (intpart >> 6) % 64, s = intpart % 64;
            snprintf(txt, sizeof txt, "%s%02" PRId64 ":%02" PRId64 ":%02" PRId64 ".%06" PRId64,
                     neg ? "-" : "", h, mi, s, us);
        } else {
            int64_t ymd = intpart >> 17, ym = ymd >> 5, hms = intpart % (1 << 17);
            if (ftype == BL_DATE)
                snprintf(txt, sizeof txt, "%04" PRId64 "-%02" PRId64 "-%02" PRId64, ym / 13,
                         ym % 13, ymd % 32);
            else
                snprintf(txt, sizeof txt,
                         "%04" PRId64 "-%02" PRId64 "-%02" PRId64 " %02" PRId64 ":%02" PRId64
                         ":%02" PRId64 ".%06" PRId64,
                         ym / 13, ym % 13, ymd % 32, hms >> 12, (hms >> 6) % 64, hms % 64, us);
        }
        return json_string(txt);
    }
    /* other opaque values (BLOB, BIT, GEOMETRY...): MySQL prints "base64:typeN:..." */
    struct buf b = {0};
    buf_printf(&b, "hex:type%u:", ftype);
    for (uint64_t i = 0; i < n; i++)
        buf_printf(&b, "%02x", d[i]);
    json_t *s = json_string(b.data);
    buf_free(&b);
    return s;
}

static json_t *value(uint8_t type, const uint8_t *p, size_t len, int depth, struct arena *a,
                     struct loch_err *err)
{
    switch (type) {
    case J_SMALL_OBJ: case J_LARGE_OBJ: case J_SMALL_ARR: case J_LARGE_ARR:
        return container(type, p, len, depth, a, err);
    case J_LITERAL:
        if (len < 1)
            break;
        if (p[0] == 0)
            return json_null();
        if (p[0] == 1)
            return json_true();
        if (p[0] == 2)
            return json_false();
        loch_errf(err, LOCH_ECORRUPT, "binary JSON literal %u", p[0]);
        return NULL;
    case J_INT16:
        if (len < 2)
            break;
        return json_integer((int16_t)le(p, 2));
    case J_UINT16:
        if (len < 2)
            break;
        return json_integer((json_int_t)le(p, 2));
    case J_INT32:
        if (len < 4)
            break;
        return json_integer((int32_t)le(p, 4));
    case J_UINT32:
        if (len < 4)
            break;
        return json_integer((json_int_t)le(p, 4));
    case J_INT64:
        if (len < 8)
            break;
        return json_integer((json_int_t)(int64_t)le(p, 8));
    case J_UINT64: {
        if (len < 8)
            break;
        uint64_t u = le(p, 8);
        if (u <= INT64_MAX)
            return json_integer((json_int_t)u);
        /* jansson integers are signed 64-bit: keep the exact digits as a string */
        char t[24];
        snprintf(t, sizeof t, "%" PRIu64, u);
        return json_string(t);
    }
    case J_DOUBLE: {
        if (len < 8)
            break;
        uint64_t u = le(p, 8);
        double d;
        memcpy(&d, &u, 8);
        return json_real(d);
    }
    case J_STRING: {
        size_t used;
        uint64_t n;
        if (!varlen(p, len, &used, &n) || n > len - used)
            break;
        json_t *s = json_stringn((const char *)p + used, n);
        if (!s)
            loch_errf(err, LOCH_ECORRUPT, "binary JSON string is not valid UTF-8");
        return s;
    }
    case J_OPAQUE:
        return opaque(p, len, a, err);
    default:
        loch_errf(err, LOCH_ECORRUPT, "binary JSON type 0x%02x is unknown", type);
        return NULL;
    }
    loch_errf(err, LOCH_ECORRUPT, "binary JSON scalar truncated");
    return NULL;
}

int binlog_json_text(const uint8_t *p, size_t len, struct arena *a, const char **out,
                     struct loch_err *err)
{
    if (len == 0) { /* an empty image stands for JSON null (Field_json::pack of a NULL doc) */
        *out = "null";
        return 0;
    }
    json_t *j = value(p[0], p + 1, len - 1, 0, a, err);
    if (!j)
        return err && err->code ? err->code : LOCH_ECORRUPT;
    char *s = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
    json_decref(j);
    if (!s)
        return loch_errf(err, LOCH_ECORRUPT, "binary JSON could not be written as text");
    *out = arena_strdup(a, s);
    free(s);
    return 0;
}
