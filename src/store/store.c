/* store.c: picks a store implementation by the warehouse's scheme and dispatches calls.
 * Not for any storage logic: that lives in fs.c (and later s3.c). */
#include "store/store.h"
#include "store/fs.h"

#include <stdlib.h>
#include <string.h>

int store_open(const char *warehouse, struct store **out, struct loch_err *err)
{
    *out = NULL;
    if (!warehouse || !*warehouse) {
        loch_errf(err, LOCH_EINVAL, "the warehouse location is empty");
        return loch_err_hint(err, "set warehouse in loch.yaml to an absolute path or a file:// URI");
    }
    if (warehouse[0] == '/')
        return fs_store_open(warehouse, out, err);
    if (!strncmp(warehouse, "file://", 7)) {
        const char *p = warehouse + 7;
        if (p[0] != '/') {
            loch_errf(err, LOCH_EINVAL, "warehouse URI \"%s\" has no absolute path", warehouse);
            return loch_err_hint(err, "write it as file:///absolute/path (three slashes)");
        }
        return fs_store_open(p, out, err);
    }
    const char *colon = strstr(warehouse, "://");
    if (colon) {
        loch_errf(err, LOCH_EUNSUPPORTED, "warehouse scheme \"%.*s\" is not supported yet: \"%s\"",
                  (int)(colon - warehouse), warehouse, warehouse);
        return loch_err_hint(err, "use a local folder (an absolute path or file:///path)");
    }
    loch_errf(err, LOCH_EINVAL, "warehouse path \"%s\" is not absolute", warehouse);
    return loch_err_hint(err, "use an absolute path or a file:// URI");
}

void store_close(struct store *s)
{
    if (s)
        s->ops->close(s);
}

int store_put(struct store *s, const char *uri, const void *data, size_t len, int flags,
              struct loch_err *err)
{
    return s->ops->put(s, uri, data, len, flags, err);
}

int store_get(struct store *s, const char *uri, char **data, size_t *len, struct loch_err *err)
{
    return s->ops->get(s, uri, data, len, err);
}

int store_sync(struct store *s, const char *const *uris, size_t n, struct loch_err *err)
{
    return s->ops->sync ? s->ops->sync(s, uris, n, err) : 0;
}

int store_delete(struct store *s, const char *uri, struct loch_err *err)
{
    return s->ops->del(s, uri, err);
}

int store_size(struct store *s, const char *uri, int64_t *out, struct loch_err *err)
{
    return s->ops->size(s, uri, out, err);
}

int store_list(struct store *s, const char *prefix, store_list_fn fn,
               void *ctx, struct loch_err *err)
{
    return s->ops->list(s, prefix, fn, ctx, err);
}

char *store_local_root(struct store *s)
{
    if (!s || strncmp(s->root, "file://", 7) != 0)
        return NULL;
    return fs_store_dir(s);
}

char *store_local_path(struct store *s, const char *uri)
{
    if (!s || strncmp(s->root, "file://", 7) != 0)
        return NULL;
    return fs_store_path(s, uri);
}
