/* commit.c: several tables' changes + a checkpoint -> one catalog transaction. Not for
 * building the changes (writer.c, callers), nor for opening or creating a table (table.c). */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/util.h"

int sink_commit(struct catalog *cat, struct store *st, struct sink_table_change *t, size_t n,
                const struct catalog_kv *kv, size_t n_kv, struct arena *a, struct loch_err *err)
{
    struct catalog_update *u = arena_alloc(a, (n ? n : 1) * sizeof *u);
    struct iceberg_metadata **mds = arena_alloc(a, (n ? n : 1) * sizeof *mds);
    /* the files the new metadata points at are durable before it is written */
    size_t n_files = 0;
    const char **files = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; iceberg_change_file(t[i].change, k); k++) {
            if (n_files == cap) {
                size_t nc = cap ? 2 * cap : 16;
                files = arena_grow(a, files, n_files, nc, sizeof *files);
                cap = nc;
            }
            files[n_files++] = iceberg_change_file(t[i].change, k);
        }
    if (n_files) {
        int rc = store_sync(st, files, n_files, err);
        if (rc)
            return loch_err_prefix(err, "making the new data files durable");
    }
    for (size_t i = 0; i < n; i++) {
        const char *loc;
        int rc = iceberg_change_write(t[i].change, st, &loc, &mds[i], err);
        if (rc)
            return loch_err_prefix(err, "writing metadata of %s.%s", t[i].ns, t[i].name);
        u[i].ns = t[i].ns;
        u[i].name = t[i].name;
        u[i].expected_location = t[i].base_location;
        u[i].new_location = loc;
    }
    int rc = catalog_commit(cat, u, n, kv, n_kv, err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        struct loch_err e;
        loch_err_clear(&e);
        if (iceberg_table_write_hint(st, mds[i], u[i].new_location, &e))
            log_warn("version hint of %s.%s not refreshed: %s", t[i].ns, t[i].name, e.msg);
    }
    return 0;
}
