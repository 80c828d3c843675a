/* store.h: the object store interface under the lake: whole-object put/get/delete/list
 * addressed by full URIs. fs.c implements local folders (file:///...); S3 comes later
 * behind the same interface. Not for metadata semantics (iceberg/) or the catalog.
 *
 * Guarantees every implementation keeps: a put is all-or-nothing (readers see the old
 * object or the whole new one, never a part); put with STORE_NO_OVERWRITE fails with
 * LOCH_EEXIST instead of replacing an object. */
#ifndef LOCH_STORE_STORE_H
#define LOCH_STORE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Put flags. STORE_DIR_SYNC_LATER: the caller puts another object into the same folder
 * afterwards, without this flag, before anything relies on this one (a local store then
 * makes the folder durable once, for both); the object's own bytes are still durable when
 * put returns. STORE_NO_SYNC: the object may be lost in a crash (an advisory hint). Both
 * are no-ops for stores whose puts are durable by nature. */
enum { STORE_NO_OVERWRITE = 1, STORE_DIR_SYNC_LATER = 2, STORE_NO_SYNC = 4 };

struct store;

/* Called by store_list for each object: its URI, size and last modification time (ms
 * since the epoch); returning non-zero stops the listing. */
typedef int (*store_list_fn)(void *ctx, const char *uri, int64_t size, int64_t mtime_ms);

struct store_ops {
    int (*put)(struct store *s, const char *uri, const void *data, size_t len, int flags,
               struct loch_err *err);
    int (*get)(struct store *s, const char *uri, char **data, size_t *len, struct loch_err *err);
    int (*del)(struct store *s, const char *uri, struct loch_err *err);
    int (*size)(struct store *s, const char *uri, int64_t *out, struct loch_err *err);
    /* Calls fn for each object whose URI starts with prefix, with its size and last
     * modification time (ms since the epoch); fn returning non-zero stops. */
    int (*list)(struct store *s, const char *prefix, store_list_fn fn,
                void *ctx, struct loch_err *err);
    /* May be NULL (puts and writes are durable by nature). */
    int (*sync)(struct store *s, const char *const *uris, size_t n, struct loch_err *err);
    void (*close)(struct store *s);
};

struct store {
    const struct store_ops *ops;
    char *root; /* warehouse root URI without trailing slash, e.g. file:///srv/lake */
};

/* Opens the store for a warehouse location: an absolute path or file:// URI (local).
 * Creates the folder when missing. Returns LOCH_EUNSUPPORTED for other schemes. */
int store_open(const char *warehouse, struct store **out, struct loch_err *err);
void store_close(struct store *s); /* s may be NULL */

/* Thin dispatchers; uri is a full URI inside the store. get returns a malloc'd,
 * NUL-terminated buffer the caller frees. LOCH_ENOENT when the object is missing. */
int store_put(struct store *s, const char *uri, const void *data, size_t len, int flags,
              struct loch_err *err);
int store_get(struct store *s, const char *uri, char **data, size_t *len, struct loch_err *err);
/* Makes objects written straight into the store's files (DuckDB's COPY into a local
 * folder, not through store_put) durable, bytes and folder entries, before metadata may
 * point at them. Batched: all are written back first, then committed. 0 or LOCH_EIO. */
int store_sync(struct store *s, const char *const *uris, size_t n, struct loch_err *err);
int store_delete(struct store *s, const char *uri, struct loch_err *err);
int store_size(struct store *s, const char *uri, int64_t *out, struct loch_err *err);
int store_list(struct store *s, const char *prefix, store_list_fn fn,
               void *ctx, struct loch_err *err);

/* For local stores: the filesystem path of uri (malloc'd), so DuckDB can write Parquet
 * straight to its final place; NULL for remote stores (then write locally and put). */
char *store_local_path(struct store *s, const char *uri);
/* For local stores: the folder behind the warehouse root (malloc'd); NULL for remote. */
char *store_local_root(struct store *s);

#endif
