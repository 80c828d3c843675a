/* buf.h: a growable byte buffer (writer side) and a bounds-checked read cursor.
 * Not for text parsing of SQL or JSON (DuckDB and jansson do those). */
#ifndef LOCH_BASE_BUF_H
#define LOCH_BASE_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A malloc'd buffer; data is always NUL-terminated past len (so text can be used as a C
 * string). A zeroed struct buf is a valid empty buffer. */
struct buf {
    char *data;
    size_t len, cap;
};

void buf_reserve(struct buf *b, size_t extra);
void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a SQL string literal ('...' with quotes doubled). */
void buf_sql_str(struct buf *b, const char *s);
/* Appends s as a SQL identifier ("..." with quotes doubled). */
void buf_sql_ident(struct buf *b, const char *s);
struct arena;
/* s as a SQL identifier, the same text buf_sql_ident appends ("..." with quotes doubled),
 * NUL-terminated in a (lives as long as a; s is not kept). The one double-quote
 * identifier quoter: DuckDB and PostgreSQL SQL built as strings use it or buf_sql_ident. */
char *arena_sql_ident(struct arena *a, const char *s);
void buf_reset(struct buf *b);     /* len = 0, keeps memory */
void buf_free(struct buf *b);      /* frees memory, leaves an empty buffer */
/* Gives the malloc'd string to the caller and leaves b empty. */
char *buf_take(struct buf *b);

/* Big/little-endian and Avro zig-zag varint writers. */
void buf_put_be32(struct buf *b, uint32_t v);
void buf_put_varlong(struct buf *b, int64_t v);

/* A read cursor over bytes it does not own. Every getter fails (returns false and sets
 * c->failed) instead of reading past the end; once failed, every later getter fails. */
struct cursor {
    const uint8_t *p;
    size_t left;
    bool failed;
};

static inline struct cursor cursor_make(const void *p, size_t n)
{
    struct cursor c = {p, n, false};
    return c;
}
bool cursor_u8(struct cursor *c, uint8_t *out);
bool cursor_be16(struct cursor *c, uint16_t *out);
bool cursor_be32(struct cursor *c, uint32_t *out);
bool cursor_be64(struct cursor *c, uint64_t *out);
bool cursor_le16(struct cursor *c, uint16_t *out);
bool cursor_le32(struct cursor *c, uint32_t *out);
bool cursor_le64(struct cursor *c, uint64_t *out);
/* Points *out at the next n bytes (no copy). */
bool cursor_bytes(struct cursor *c, size_t n, const uint8_t **out);
/* Avro zig-zag varint (at most 10 bytes). */
bool cursor_varlong(struct cursor *c, int64_t *out);
/* A NUL-terminated string: *out points into the buffer, *len excludes the NUL. */
bool cursor_cstr(struct cursor *c, const char **out, size_t *len);

#endif
