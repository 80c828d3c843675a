/* table.c: one lake table's life as a writer sees it: its writer lock, opening it (the
 * catalog's pointer and the metadata it names), creating it (location, v1 metadata,
 * optionally its first rows, the catalog pointer). Every writer (applier, SQL, `loch
 * load`, maintenance) and the CLI open and create tables here. Not for changes to an
 * open table (writer.c, commit.c). */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/util.h"

/* flock on <state_dir>/<sub>/<ns>.<name>.lock; LOCH_ECONFLICT (when !wait) if held. */
static int lock_file(const char *state_dir, const char *sub, const char *ns, const char *name, bool wait,
                     int *fd_out, struct loch_err *err)
{
    *fd_out = -1;
    /* the names make the file name: checked before it is built */
    int rc = catalog_check_name(ns, name, err);
    if (rc)
        return rc;
    char *dir = xasprintf("%s/%s", state_dir, sub);
    rc = util_mkdirs(dir, err);
    if (rc) {
        free(dir);
        return rc;
    }
    char *path = xasprintf("%s/%s.%s.lock", dir, ns, name);
    free(dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot open lock file \"%s\": %s", path, strerror(errno));
        free(path);
        return rc;
    }
    while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) != 0) {
        if (errno == EINTR)
            continue;
        if (errno == EWOULDBLOCK)
            rc = loch_errf(err, LOCH_ECONFLICT, "%s.%s is locked by another writer (%s)", ns, name, path);
        else
            rc = loch_errf(err, LOCH_EIO, "cannot lock \"%s\": %s", path, strerror(errno));
        close(fd);
        free(path);
        return rc;
    }
    free(path);
    *fd_out = fd;
    return 0;
}

int sink_lock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err)
{
    return lock_file(state_dir, "locks", ns, name, true, fd_out, err);
}

int sink_trylock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err)
{
    return lock_file(state_dir, "locks", ns, name, false, fd_out, err);
}

/* A folder of its own: "<ns>.<name>.commit" could be another table's writer lock. */
int sink_commit_lock(const char *state_dir, const char *ns, const char *name, int *fd_out, struct loch_err *err)
{
    return lock_file(state_dir, "locks/commit", ns, name, true, fd_out, err);
}

void sink_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing releases the flock */
}

static int table_location(struct arena *a, const char *root, const char *ns, const char *name, char **out,
                        struct loch_err *err)
{
    *out = NULL;
    int rc = catalog_check_name(ns, name, err);
    if (rc)
        return rc;
    struct buf b = {0};
    buf_puts(&b, root);
    buf_putc(&b, '/');
    for (const char *p = ns; *p; p++)
        buf_putc(&b, *p == '.' ? '/' : *p);
    buf_printf(&b, "/%s", name);
    *out = arena_strdup(a, b.data);
    buf_free(&b);
    return 0;
}

int sink_table_open(struct catalog *cat, struct store *st, const char *ns, const char *name, struct arena *a,
                    struct sink_table *out, struct loch_err *err)
{
    *out = (struct sink_table){.lock_fd = -1};
    struct catalog_table ct;
    int rc = catalog_load_table(cat, ns, name, a, &ct, err);
    if (!rc)
        rc = iceberg_table_load(st, ct.metadata_location, a, &out->md, err);
    if (rc) {
        out->md = NULL;
        return rc;
    }
    out->ns = arena_strdup(a, ns);
    out->name = arena_strdup(a, name);
    out->location = ct.metadata_location;
    return 0;
}

int sink_table_open_locked(struct catalog *cat, struct store *st, const char *state_dir, const char *ns,
                           const char *name, struct arena *a, struct sink_table *out, struct loch_err *err)
{
    int fd;
    *out = (struct sink_table){.lock_fd = -1};
    int rc = sink_lock(state_dir, ns, name, &fd, err);
    if (!rc)
        rc = sink_table_open(cat, st, ns, name, a, out, err);
    if (rc) {
        sink_unlock(fd);
        out->lock_fd = -1;
        return rc;
    }
    out->lock_fd = fd;
    return 0;
}

void sink_table_close(struct sink_table *t)
{
    if (!t)
        return;
    sink_unlock(t->lock_fd);
    t->lock_fd = -1;
}

bool sink_table_exists(struct catalog *cat, const char *ns, const char *name, struct arena *a)
{
    struct catalog_table ct;
    struct loch_err e;
    return catalog_load_table(cat, ns, name, a, &ct, &e) == 0;
}

int sink_table_create(struct catalog *cat, struct store *st, const char *ns, const char *name,
                      const struct iceberg_schema *schema, const struct sink_first_rows *rows, struct arena *a,
                      int64_t *n_rows, struct loch_err *err)
{
    if (n_rows)
        *n_rows = 0;
    char *location;
    int rc = table_location(a, st->root, ns, name, &location, err);
    if (rc)
        return rc;
    if (sink_table_exists(cat, ns, name, a)) {
        loch_errf(err, LOCH_EEXIST, "table %s.%s already exists", ns, name);
        return loch_err_hint(err, "append with INSERT INTO %s.%s, or drop it first", ns, name);
    }
    struct iceberg_metadata *md = iceberg_metadata_new(a, location, schema);
    const char *v1;
    rc = iceberg_table_create(st, md, a, &v1, err);
    if (rc)
        return rc;
    if (!rows) {
        struct catalog_update u = {ns, name, NULL, v1};
        return catalog_commit(cat, &u, 1, NULL, 0, err);
    }
    /* the table appears with its rows, in one commit: no reader sees it empty */
    struct iceberg_data_file f;
    rc = sink_write_data(rows->conn, st, md, rows->select_sql, a, &f, err);
    if (rc)
        return rc;
    struct iceberg_change *ch = iceberg_change_begin(a, md, v1);
    if (f.record_count > 0)
        iceberg_change_add_file(ch, &f);
    struct sink_table_change tc = {ns, name, NULL, ch};
    rc = sink_commit(cat, st, &tc, 1, NULL, 0, a, err);
    if (!rc && n_rows)
        *n_rows = f.record_count;
    return rc;
}
