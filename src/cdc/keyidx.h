/* keyidx.h: the applier's primary-key index, in memory: key -> the (file id, row
 * position) of each live lake row with that key. Every operation costs O(1) per key, so a
 * flush costs what its batch touches, not what the table holds. A key is bytes (the
 * applier joins DuckDB's text of each typed key column); a key may map to several rows
 * (tables matched on all columns, REPLICA IDENTITY FULL). Not thread-safe: one owner at a
 * time. Not the truth: the lake is. At a clean stop the applier saves it (keyidx_save)
 * tagged with the table state it matches, so the next start loads it instead of
 * rebuilding it from the lake. */
#ifndef LOCH_CDC_KEYIDX_H
#define LOCH_CDC_KEYIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

struct keyidx;

struct keyidx *keyidx_new(void);
void keyidx_free(struct keyidx *x); /* x may be NULL */
/* Makes room for n entries in all (saves regrowing when the count is known). */
void keyidx_reserve(struct keyidx *x, size_t n);
/* Forgets every entry (keeps the memory for reuse). */
void keyidx_clear(struct keyidx *x);
/* Adds key -> (fid, pos); an existing entry of the same key stays (see above). */
void keyidx_add(struct keyidx *x, const char *key, size_t len, int32_t fid, int64_t pos);
/* keyidx_add for n entries at once (faster: their buckets are fetched together). The
 * keys are copied. */
struct keyidx_entry {
    const char *key;
    size_t len;
    int32_t fid;
    int64_t pos;
};
void keyidx_add_many(struct keyidx *x, const struct keyidx_entry *e, size_t n);
/* Calls fn for each entry of key (fn may be NULL) and removes them; returns how many. */
size_t keyidx_take(struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
/* keyidx_take (no fn) of n keys (their fid and pos unused), faster like keyidx_add_many. */
void keyidx_take_many(struct keyidx *x, const struct keyidx_entry *e, size_t n);
/* keyidx_find of n keys (their fid and pos unused), in order, faster like keyidx_add_many. */
void keyidx_find_many(const struct keyidx *x, const struct keyidx_entry *e, size_t n,
                      void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
/* Calls fn for each entry of key; returns how many. */
size_t keyidx_find(const struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
/* The first entry of key; false when there is none. */
bool keyidx_get(const struct keyidx *x, const char *key, size_t len, int32_t *fid, int64_t *pos);
/* Calls fn for every entry. */
void keyidx_each(const struct keyidx *x, void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx);
size_t keyidx_count(const struct keyidx *x);

/* Writes every entry of x to path, replacing it atomically (a temporary file renamed over
 * it; not fsync'ed, it is a cache: the file carries a checksum instead). tag names what
 * the entries are valid for (keyidx_load gives them back only under the same tag); names
 * are strings stored alongside (the applier's data file paths, by fid). Returns 0 or
 * LOCH_EIO (err says why; path is then unchanged). */
int keyidx_save(const struct keyidx *x, const char *path, const char *tag, char *const *names, size_t n_names,
                struct loch_err *err);
/* Replaces x's entries with those keyidx_save wrote to path under tag. OUT: *names, a
 * malloc'd array of *n_names malloc'd strings (the caller frees them). Returns LOCH_ENOENT
 * when there is no file or it was saved under another tag, LOCH_ECORRUPT when it is
 * damaged or malformed, LOCH_EIO when it cannot be read; on any error x is empty. */
int keyidx_load(struct keyidx *x, const char *path, const char *tag, char ***names, size_t *n_names,
                struct loch_err *err);
/* keyidx_load's decoder over len bytes in memory (for tests and the fuzz target): never
 * reads outside data[0..len), whatever the bytes claim. */
int keyidx_parse(struct keyidx *x, const void *data, size_t len, const char *tag, char ***names, size_t *n_names,
                 struct loch_err *err);
/* The checksum keyidx_save ends a file with (8 bytes, little-endian), of its len bytes
 * before; for the fuzz target, which must get past it to reach the decoder. */
uint64_t keyidx_checksum(const void *data, size_t len);

#endif
