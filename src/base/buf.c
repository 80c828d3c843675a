/* buf.c: growable buffer and bounds-checked cursor (see buf.h). */
#include "base/buf.h"
#include "base/mem.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len > extra)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len <= extra)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

void buf_append(struct buf *b, const void *p, size_t n)
{
    buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void buf_puts(struct buf *b, const char *s) { buf_append(b, s, strlen(s)); }
void buf_putc(struct buf *b, char c) { buf_append(b, &c, 1); }

void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
}

static void quoted(struct buf *b, const char *s, char q)
{
    buf_putc(b, q);
    for (; *s; s++) {
        if (*s == q)
            buf_putc(b, q);
        buf_putc(b, *s);
    }
    buf_putc(b, q);
}

void buf_sql_str(struct buf *b, const char *s) { quoted(b, s, '\''); }
void buf_sql_ident(struct buf *b, const char *s) { quoted(b, s, '"'); }

char *arena_sql_ident(struct arena *a, const char *s)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == '"' ? 2 : 1;
    char *o = arena_alloc(a, n + 1), *w = o;
    *w++ = '"';
    for (; *s; s++) {
        if (*s == '"')
            *w++ = '"';
        *w++ = *s;
    }
    *w++ = '"';
    *w = 0;
    return o;
}

void buf_reset(struct buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *buf_take(struct buf *b)
{
    if (!b->data)
        buf_reserve(b, 0), b->data[0] = '\0';
    char *p = b->data;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void buf_put_be32(struct buf *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    buf_append(b, x, 4);
}

void buf_put_varlong(struct buf *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    uint8_t x[10];
    size_t n = 0;
    while (z >= 0x80) {
        x[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    x[n++] = (uint8_t)z;
    buf_append(b, x, n);
}

bool cursor_bytes(struct cursor *c, size_t n, const uint8_t **out)
{
    if (c->failed || c->left < n) {
        c->failed = true;
        return false;
    }
    *out = c->p;
    c->p += n;
    c->left -= n;
    return true;
}

bool cursor_u8(struct cursor *c, uint8_t *out)
{
    const uint8_t *p;
    if (!cursor_bytes(c, 1, &p))
        return false;
    *out = p[0];
    return true;
}

#define BE(bits)                                                                  \
    bool cursor_be##bits(struct cursor *c, uint##bits##_t *out)                   \
    {                                                                             \
        const uint8_t *p;                                                         \
        if (!cursor_bytes(c, bits / 8, &p))                                       \
            return false;                                                         \
        uint##bits##_t v = 0;                                                     \
        for (int i = 0; i < bits / 8; i++)                                        \
            v = (uint##bits##_t)((v << 8) | p[i]);                                \
        *out = v;                                                                 \
        return true;                                                              \
    }                                                                             \
    bool cursor_le##bits(struct cursor *c, uint##bits##_t *out)                   \
    {                                                                             \
        const uint8_t *p;                                                         \
        if (!cursor_bytes(c, bits / 8, &p))                                       \
            return false;                                                         \
        uint##bits##_t v = 0;                                                     \
        for (int i = bits / 8 - 1; i >= 0; i--)                                   \
            v = (uint##bits##_t)((v << 8) | p[i]);                                \
        *out = v;                                                                 \
        return true;                                                              \
    }
BE(16)
BE(32)
BE(64)
#undef BE

bool cursor_varlong(struct cursor *c, int64_t *out)
{
    uint64_t z = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        uint8_t byte;
        if (!cursor_u8(c, &byte))
            return false;
        z |= (uint64_t)(byte & 0x7f) << shift;
        if (!(byte & 0x80)) {
            *out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            return true;
        }
    }
    c->failed = true;
    return false;
}

bool cursor_cstr(struct cursor *c, const char **out, size_t *len)
{
    if (c->failed)
        return false;
    const uint8_t *nul = memchr(c->p, 0, c->left);
    if (!nul) {
        c->failed = true;
        return false;
    }
    size_t n = (size_t)(nul - c->p);
    *out = (const char *)c->p;
    if (len)
        *len = n;
    c->p += n + 1;
    c->left -= n + 1;
    return true;
}
