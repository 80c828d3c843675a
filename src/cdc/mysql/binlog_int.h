/* binlog_int.h: private to cdc/mysql/'s decoders (binlog.c, values.c): the fixed-width
 * integer readers over the bounds-checked cursor and the truncation error. Not for the
 * source's own files (mysql_int.h). */
#ifndef LOCH_CDC_MYSQL_BINLOG_INT_H
#define LOCH_CDC_MYSQL_BINLOG_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"

#define TRUNC(err, what) loch_errf(err, LOCH_ECORRUPT, "binlog event truncated: %s", what)

/* n little-endian bytes (n <= 8); false (and the cursor failed) on underrun. */
static inline bool get_le(struct cursor *c, size_t n, uint64_t *out)
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

/* n big-endian bytes (n <= 8); false (and the cursor failed) on underrun. */
static inline bool get_be(struct cursor *c, size_t n, uint64_t *out)
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

#endif
