/* keyidx.h: the applier's primary-key index, in memory: key -> the (file id, row
 * position) of each live lake row with that key. Every operation costs O(1) per key, so a
 * flush costs what its batch touches, not what the table holds. A key is bytes (the
 * applier joins DuckDB's text of each typed key column); a key may map to several rows
 * (tables matched on all columns, REPLICA IDENTITY FULL). Not thread-safe: one owner at a
 * time. Not for anything durable: it is rebuilt from the lake at start. */
#ifndef LOCH_CDC_KEYIDX_H
#define LOCH_CDC_KEYIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct keyidx;

struct keyidx *keyidx_new(void);
void keyidx_free(struct keyidx *x); /* x may be NULL */
/* Makes room for n entries in all (saves regrowing when the count is known). */
void keyidx_reserve(struct keyidx *x, size_t n);
/* Forgets every entry (keeps the memory for reuse). */
void keyidx_clear(struct keyidx *x);
/* Adds key -> (fid, pos); an existing entry of the same key stays (see above). */
void keyidx_add(struct keyidx *x, const char *key, size_t len, int32_t fid, int64_t pos);
/* Calls fn for each entry of key (fn may be NULL) and removes them; returns how many. */
size_t keyidx_take(struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
/* Calls fn for each entry of key; returns how many. */
size_t keyidx_find(const struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
/* The first entry of key; false when there is none. */
bool keyidx_get(const struct keyidx *x, const char *key, size_t len, int32_t *fid, int64_t *pos);
/* Calls fn for every entry. */
void keyidx_each(const struct keyidx *x, void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
size_t keyidx_count(const struct keyidx *x);

#endif
