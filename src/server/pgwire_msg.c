/* pgwire_msg.c: protocol 3.0 message decoders and encoders (see pgwire_msg.h). Decoders
 * read through the bounds-checked cursor: no length from the wire is trusted. */
#include "server/pgwire_msg.h"

#include <stdio.h>
#include <string.h>

static int bad(struct loch_err *err, char type, const char *what)
{
    if (type)
        return loch_errf(err, LOCH_EPROTO, "invalid '%c' message: %s", type, what);
    return loch_errf(err, LOCH_EPROTO, "invalid startup packet: %s", what);
}

int pgwire_parse_startup(const uint8_t *body, size_t len, struct arena *a, struct pgwire_startup *out,
                         struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    struct cursor c = cursor_make(body, len);
    uint32_t code;
    if (!cursor_be32(&c, &code))
        return bad(err, 0, "shorter than its protocol code");
    out->code = code;
    if (code == PGWIRE_SSL_REQUEST || code == PGWIRE_GSSENC_REQUEST) {
        if (c.left)
            return bad(err, 0, "request longer than 8 bytes");
        return 0;
    }
    if (code == PGWIRE_CANCEL_REQUEST) {
        uint32_t pid, key;
        if (!cursor_be32(&c, &pid) || !cursor_be32(&c, &key) || c.left)
            return bad(err, 0, "CancelRequest is not 16 bytes");
        out->cancel_pid = (int32_t)pid;
        out->cancel_key = (int32_t)key;
        return 0;
    }
    if (code >> 16 != 3)
        return loch_errf(err, LOCH_EPROTO, "unsupported frontend protocol %u.%u: server supports 3.0",
                         code >> 16, code & 0xffff);
    size_t cap = 0;
    for (;;) {
        const char *k, *v;
        size_t kl, vl;
        if (!cursor_cstr(&c, &k, &kl))
            return bad(err, 0, "parameter list not terminated");
        if (!kl)
            break;
        if (!cursor_cstr(&c, &v, &vl))
            return bad(err, 0, "parameter without a value");
        if (out->n_params == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            out->keys = arena_grow(a, out->keys, cap, ncap, sizeof *out->keys);
            out->vals = arena_grow(a, out->vals, cap, ncap, sizeof *out->vals);
            cap = ncap;
        }
        out->keys[out->n_params] = k;
        out->vals[out->n_params++] = v;
    }
    if (c.left)
        return bad(err, 0, "bytes after the parameter list");
    return 0;
}

const char *pgwire_startup_get(const struct pgwire_startup *s, const char *key)
{
    for (size_t i = 0; i < s->n_params; i++)
        if (!strcmp(s->keys[i], key))
            return s->vals[i];
    return NULL;
}

static bool get_i16(struct cursor *c, int16_t *v)
{
    uint16_t u;
    if (!cursor_be16(c, &u))
        return false;
    *v = (int16_t)u;
    return true;
}

static bool get_i32(struct cursor *c, int32_t *v)
{
    uint32_t u;
    if (!cursor_be32(c, &u))
        return false;
    *v = (int32_t)u;
    return true;
}

static bool get_str(struct cursor *c, const char **s)
{
    size_t l;
    return cursor_cstr(c, s, &l);
}

int pgwire_parse(char type, const uint8_t *body, size_t len, struct arena *a, struct pgwire_msg *out,
                 struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    out->type = type;
    struct cursor c = cursor_make(body, len);
    switch (type) {
    case 'Q':
        if (!get_str(&c, &out->u.query.sql))
            return bad(err, type, "query string not terminated");
        break;
    case 'P': {
        if (!get_str(&c, &out->u.parse.name) || !get_str(&c, &out->u.parse.sql))
            return bad(err, type, "statement name or query not terminated");
        uint16_t n;
        if (!cursor_be16(&c, &n))
            return bad(err, type, "missing parameter type count");
        if ((size_t)n * 4 > c.left)
            return bad(err, type, "parameter type count larger than the message");
        out->u.parse.n_types = n;
        out->u.parse.types = arena_alloc(a, (n ? n : 1) * sizeof(uint32_t));
        for (uint16_t i = 0; i < n; i++)
            cursor_be32(&c, &out->u.parse.types[i]);
        break;
    }
    case 'B': {
        if (!get_str(&c, &out->u.bind.portal) || !get_str(&c, &out->u.bind.stmt))
            return bad(err, type, "portal or statement name not terminated");
        uint16_t n;
        if (!cursor_be16(&c, &n) || (size_t)n * 2 > c.left)
            return bad(err, type, "parameter format count larger than the message");
        out->u.bind.n_fmts = n;
        out->u.bind.fmts = arena_alloc(a, (n ? n : 1) * sizeof(int16_t));
        for (uint16_t i = 0; i < n; i++)
            get_i16(&c, &out->u.bind.fmts[i]);
        if (!cursor_be16(&c, &n) || (size_t)n * 4 > c.left)
            return bad(err, type, "parameter count larger than the message");
        out->u.bind.n_params = n;
        out->u.bind.params = arena_alloc(a, (n ? n : 1) * sizeof(struct pgwire_param));
        for (uint16_t i = 0; i < n; i++) {
            int32_t l;
            if (!get_i32(&c, &l))
                return bad(err, type, "parameter length missing");
            if (l == -1) {
                out->u.bind.params[i].data = NULL;
                continue;
            }
            if (l < 0 || (size_t)l > c.left)
                return bad(err, type, "parameter length larger than the message");
            const uint8_t *p;
            cursor_bytes(&c, (size_t)l, &p);
            out->u.bind.params[i].data = p;
            out->u.bind.params[i].len = l;
        }
        if (!cursor_be16(&c, &n) || (size_t)n * 2 > c.left)
            return bad(err, type, "result format count larger than the message");
        out->u.bind.n_rfmts = n;
        out->u.bind.rfmts = arena_alloc(a, (n ? n : 1) * sizeof(int16_t));
        for (uint16_t i = 0; i < n; i++)
            get_i16(&c, &out->u.bind.rfmts[i]);
        for (uint16_t i = 0; i < out->u.bind.n_fmts; i++)
            if (out->u.bind.fmts[i] != 0 && out->u.bind.fmts[i] != 1)
                return bad(err, type, "parameter format code is neither 0 (text) nor 1 (binary)");
        for (uint16_t i = 0; i < out->u.bind.n_rfmts; i++)
            if (out->u.bind.rfmts[i] != 0 && out->u.bind.rfmts[i] != 1)
                return bad(err, type, "result format code is neither 0 (text) nor 1 (binary)");
        if (out->u.bind.n_fmts > 1 && out->u.bind.n_fmts != out->u.bind.n_params)
            return bad(err, type, "parameter format count is neither 0, 1 nor the parameter count");
        break;
    }
    case 'D':
    case 'C': {
        uint8_t k;
        if (!cursor_u8(&c, &k) || (k != 'S' && k != 'P'))
            return bad(err, type, "kind is neither 'S' (statement) nor 'P' (portal)");
        out->u.describe.kind = (char)k;
        if (!get_str(&c, &out->u.describe.name))
            return bad(err, type, "name not terminated");
        break;
    }
    case 'E':
        if (!get_str(&c, &out->u.execute.portal) || !get_i32(&c, &out->u.execute.max_rows))
            return bad(err, type, "portal name or row limit missing");
        break;
    case 'S': case 'H': case 'X': case 'c':
        break;
    case 'p': case 'd': case 'f':
        out->u.raw.data = body;
        out->u.raw.len = len;
        return 0;
    default:
        if (type >= 0x20 && type < 0x7f)
            return loch_errf(err, LOCH_EPROTO, "unknown message type '%c'", type);
        return loch_errf(err, LOCH_EPROTO, "unknown message type 0x%02x", (unsigned char)type);
    }
    if (c.left)
        return bad(err, type, "bytes left after the last field");
    return 0;
}

int pgwire_parse_sasl_initial(const uint8_t *body, size_t len, const char **mech, const uint8_t **data,
                              size_t *data_len, struct loch_err *err)
{
    struct cursor c = cursor_make(body, len);
    int32_t l;
    if (!get_str(&c, mech) || !get_i32(&c, &l))
        return bad(err, 'p', "SASL mechanism or length missing");
    if (l < 0 || (size_t)l != c.left)
        return bad(err, 'p', "SASL data length does not match the message");
    cursor_bytes(&c, (size_t)l, data);
    *data_len = (size_t)l;
    return 0;
}

size_t pgwire_begin(struct buf *b, char type)
{
    buf_putc(b, type);
    size_t mark = b->len;
    buf_put_be32(b, 0);
    return mark;
}

void pgwire_end(struct buf *b, size_t mark)
{
    uint32_t n = (uint32_t)(b->len - mark);
    unsigned char *p = (unsigned char *)b->data + mark;
    p[0] = (unsigned char)(n >> 24);
    p[1] = (unsigned char)(n >> 16);
    p[2] = (unsigned char)(n >> 8);
    p[3] = (unsigned char)n;
}

void pgwire_put16(struct buf *b, uint16_t v)
{
    unsigned char p[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    buf_append(b, p, 2);
}

void pgwire_put32(struct buf *b, uint32_t v) { buf_put_be32(b, v); }

void pgwire_put64(struct buf *b, uint64_t v)
{
    buf_put_be32(b, (uint32_t)(v >> 32));
    buf_put_be32(b, (uint32_t)v);
}

void pgwire_putstr(struct buf *b, const char *s) { buf_append(b, s, strlen(s) + 1); }

void pgwire_auth(struct buf *b, uint32_t code, const void *data, size_t len)
{
    size_t m = pgwire_begin(b, 'R');
    pgwire_put32(b, code);
    if (len)
        buf_append(b, data, len);
    pgwire_end(b, m);
}

void pgwire_param_status(struct buf *b, const char *name, const char *value)
{
    size_t m = pgwire_begin(b, 'S');
    pgwire_putstr(b, name);
    pgwire_putstr(b, value);
    pgwire_end(b, m);
}

void pgwire_backend_key(struct buf *b, int32_t pid, int32_t key)
{
    size_t m = pgwire_begin(b, 'K');
    pgwire_put32(b, (uint32_t)pid);
    pgwire_put32(b, (uint32_t)key);
    pgwire_end(b, m);
}

void pgwire_ready(struct buf *b, char status)
{
    size_t m = pgwire_begin(b, 'Z');
    buf_putc(b, status);
    pgwire_end(b, m);
}

void pgwire_complete(struct buf *b, const char *tag)
{
    size_t m = pgwire_begin(b, 'C');
    pgwire_putstr(b, tag);
    pgwire_end(b, m);
}

void pgwire_error(struct buf *b, bool notice, const char *severity, const char *sqlstate, const char *msg,
                  const char *detail, const char *hint, size_t position)
{
    size_t m = pgwire_begin(b, notice ? 'N' : 'E');
    buf_putc(b, 'S');
    pgwire_putstr(b, severity);
    buf_putc(b, 'V');
    pgwire_putstr(b, severity);
    buf_putc(b, 'C');
    pgwire_putstr(b, sqlstate);
    buf_putc(b, 'M');
    pgwire_putstr(b, msg);
    if (detail && *detail) {
        buf_putc(b, 'D');
        pgwire_putstr(b, detail);
    }
    if (hint && *hint) {
        buf_putc(b, 'H');
        pgwire_putstr(b, hint);
    }
    if (position) {
        char pos[24];
        snprintf(pos, sizeof pos, "%zu", position);
        buf_putc(b, 'P');
        pgwire_putstr(b, pos);
    }
    buf_putc(b, '\0');
    pgwire_end(b, m);
}
