/* fs.c: the object store on a local folder (file:///...). Puts are crash-safe: a temp file
 * in the target folder, fsync, then rename (or link for no-overwrite), then fsync of the
 * folder. Not for S3 or for anything that knows what the objects mean. */
#include "store/fs.h"

#include "base/mem.h"
#include "base/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Temp files of puts in flight (or left by a crash) start with this; list skips them and
 * maintenance may delete old ones. */
#define TMP_PREFIX ".loch-tmp-"

struct fs_store {
    struct store base;
    char *dir; /* absolute, no trailing slash ("" for the filesystem root) */
};

static struct fs_store *fs_of(struct store *s) { return (struct fs_store *)s; }

/* True when the relative path rel (after the root) stays inside the root: no empty, "."
 * or ".." segments that could step out or alias. */
static bool rel_is_clean(const char *rel)
{
    const char *p = rel;
    while (*p) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!e)
            break;
        p = e + 1;
        if (!*p)
            return false; /* trailing slash: a folder, not an object */
    }
    return true;
}

char *fs_store_path(struct store *s, const char *uri)
{
    size_t rn = strlen(s->root);
    if (!uri || strncmp(uri, s->root, rn) != 0 || uri[rn] != '/' || !uri[rn + 1])
        return NULL;
    if (!rel_is_clean(uri + rn + 1))
        return NULL;
    return xasprintf("%s/%s", fs_of(s)->dir, uri + rn + 1);
}

char *fs_store_dir(struct store *s) { return xstrdup(fs_of(s)->dir); }

static int outside(struct store *s, const char *uri, struct loch_err *err)
{
    loch_errf(err, LOCH_EINVAL, "object URI \"%s\" is outside the store %s", uri ? uri : "(null)", s->root);
    loch_err_detail(err, "an object URI is the store root, a slash, and a relative path without . or .. parts");
    return loch_err_hint(err, "build URIs from the warehouse root, e.g. %s/ns/table/data/file.parquet", s->root);
}

static int fsync_dir(const char *dir, struct loch_err *err)
{
    int fd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return loch_errf(err, LOCH_EIO, "cannot open folder \"%s\" to sync it: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return loch_errf(err, LOCH_EIO, "cannot fsync folder \"%s\": %s", dir, strerror(e));
    return 0;
}

/* mkdir -p that also fsyncs the parent of every folder it creates, so a new folder
 * survives a crash together with the object put into it. */
static int mkdirs_durable(const char *path, struct loch_err *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n >= sizeof tmp)
        return loch_errf(err, LOCH_EINVAL, "path is too long: \"%s\"", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(tmp, 0700) == 0) {
            char *slash = strrchr(tmp, '/');
            *slash = '\0';
            int rc = fsync_dir(tmp, err);
            *slash = '/';
            if (rc)
                return rc;
        } else if (errno != EEXIST) {
            return loch_errf(err, LOCH_EIO, "cannot create folder \"%s\": %s", tmp, strerror(errno));
        }
        *p = saved;
        if (!saved)
            break;
    }
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static int fs_put(struct store *s, const char *uri, const void *data, size_t len, int flags,
                  struct loch_err *err)
{
    char *path = fs_store_path(s, uri);
    if (!path)
        return outside(s, uri, err);
    char *slash = strrchr(path, '/');
    char *parent = xstrndup(path, (size_t)(slash - path));
    char uuid[37];
    util_uuid4(uuid);
    char *tmp = xasprintf("%s/" TMP_PREFIX "%s", parent, uuid);
    int rc = *parent ? mkdirs_durable(parent, err) : 0;
    int fd = -1;
    if (rc)
        goto out;
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot create a temp file for %s: %s", uri, strerror(errno));
        goto out;
    }
    if (write_all(fd, data, len) != 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", uri, strerror(errno));
        loch_err_hint(err, "check free space in %s", parent);
        goto out;
    }
    if (!(flags & STORE_NO_SYNC) && fsync(fd) != 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot fsync %s: %s", uri, strerror(errno));
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = loch_errf(err, LOCH_EIO, "cannot close %s: %s", uri, strerror(errno));
        goto out;
    }
    fd = -1;
    if (flags & STORE_NO_OVERWRITE) {
        /* link() fails atomically when the name is taken: the check-and-create that
         * rename() cannot do. The temp name is then dropped. */
        if (link(tmp, path) != 0) {
            if (errno == EEXIST) {
                rc = loch_errf(err, LOCH_EEXIST, "object %s already exists", uri);
                loch_err_detail(err, "the put asked not to replace an existing object");
            } else {
                rc = loch_errf(err, LOCH_EIO, "cannot create %s: %s", uri, strerror(errno));
            }
            goto out;
        }
        unlink(tmp);
    } else if (rename(tmp, path) != 0) {
        rc = loch_errf(err, LOCH_EIO, "cannot move %s into place: %s", uri, strerror(errno));
        goto out;
    }
    if (!(flags & (STORE_DIR_SYNC_LATER | STORE_NO_SYNC)))
        rc = fsync_dir(parent, err);
out:
    if (fd >= 0)
        close(fd);
    if (rc)
        unlink(tmp);
    free(tmp);
    free(parent);
    free(path);
    return rc;
}

static int fs_get(struct store *s, const char *uri, char **data, size_t *len, struct loch_err *err)
{
    *data = NULL;
    if (len)
        *len = 0;
    char *path = fs_store_path(s, uri);
    if (!path)
        return outside(s, uri, err);
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        rc = errno == ENOENT ? loch_errf(err, LOCH_ENOENT, "object %s does not exist", uri)
                             : loch_errf(err, LOCH_EIO, "cannot open %s: %s", uri, strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = loch_errf(err, LOCH_ENOENT, "object %s is not a file", uri);
        goto out;
    }
    size_t cap = (size_t)st.st_size, n = 0;
    char *p = xmalloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 4096; /* the file grew since fstat */
            p = xrealloc(p, cap + 1);
        }
        ssize_t r = read(fd, p + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = loch_errf(err, LOCH_EIO, "cannot read %s: %s", uri, strerror(errno));
            free(p);
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    p[n] = '\0';
    *data = p;
    if (len)
        *len = n;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int fs_del(struct store *s, const char *uri, struct loch_err *err)
{
    char *path = fs_store_path(s, uri);
    if (!path)
        return outside(s, uri, err);
    int rc = 0;
    if (unlink(path) != 0)
        rc = errno == ENOENT ? loch_errf(err, LOCH_ENOENT, "object %s does not exist", uri)
                             : loch_errf(err, LOCH_EIO, "cannot delete %s: %s", uri, strerror(errno));
    free(path);
    return rc;
}

static int fs_size(struct store *s, const char *uri, int64_t *out, struct loch_err *err)
{
    char *path = fs_store_path(s, uri);
    if (!path)
        return outside(s, uri, err);
    struct stat st;
    int rc = 0;
    if (stat(path, &st) != 0)
        rc = errno == ENOENT ? loch_errf(err, LOCH_ENOENT, "object %s does not exist", uri)
                             : loch_errf(err, LOCH_EIO, "cannot stat %s: %s", uri, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = loch_errf(err, LOCH_ENOENT, "object %s is not a file", uri);
    else
        *out = (int64_t)st.st_size;
    free(path);
    return rc;
}

struct walk {
    const char *prefix; /* full URI prefix */
    store_list_fn fn;
    void *ctx;
    struct loch_err *err;
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Walks folder dir (whose URI is duri) in name order; returns 0, 1 when fn stopped the
 * walk, or a negative error. */
static int walk_dir(struct walk *w, const char *dir, const char *duri)
{
    DIR *d = opendir(*dir ? dir : "/");
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return loch_errf(w->err, LOCH_EIO, "cannot list folder \"%s\": %s", dir, strerror(errno));
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
            !strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = xstrdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    size_t plen = strlen(w->prefix);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]);
        char *uri = xasprintf("%s/%s", duri, names[i]);
        size_t ulen = strlen(uri);
        /* Descend only where the prefix can still match below. */
        bool could = ulen >= plen ? !strncmp(uri, w->prefix, plen) : !strncmp(uri, w->prefix, ulen);
        struct stat st;
        if (could && lstat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                rc = walk_dir(w, path, uri);
            else if (S_ISREG(st.st_mode) && ulen >= plen && w->fn(w->ctx, uri, (int64_t)st.st_size, (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000) != 0)
                rc = 1;
        }
        free(path);
        free(uri);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int fs_list(struct store *s, const char *prefix, store_list_fn fn,
                   void *ctx, struct loch_err *err)
{
    size_t rn = strlen(s->root);
    if (!prefix || strncmp(prefix, s->root, rn) != 0 || (prefix[rn] != '/' && prefix[rn] != '\0'))
        return outside(s, prefix, err);
    struct walk w = {prefix, fn, ctx, err};
    int rc = walk_dir(&w, fs_of(s)->dir, s->root);
    return rc < 0 ? rc : 0;
}

static void fs_close(struct store *s)
{
    free(fs_of(s)->dir);
    free(s->root);
    free(s);
}

/* Writeback of every file is started first, so the first fdatasync commits the journal
 * for all of them and the others find little left to do; then each folder once. */
static int fs_sync(struct store *s, const char *const *uris, size_t n, struct loch_err *err)
{
    int rc = 0;
    int *fds = xmalloc((n ? n : 1) * sizeof *fds);
    char **dirs = xcalloc(n ? n : 1, sizeof *dirs);
    size_t n_dirs = 0;
    for (size_t i = 0; i < n; i++) {
        fds[i] = -1;
        char *path = fs_store_path(s, uris[i]);
        if (!path) /* not in this store (a file registered where it lies): not ours to sync */
            continue;
        fds[i] = open(path, O_RDONLY | O_CLOEXEC);
        if (fds[i] < 0 && !rc)
            rc = loch_errf(err, LOCH_EIO, "cannot open %s to sync it: %s", uris[i], strerror(errno));
        if (fds[i] >= 0)
            sync_file_range(fds[i], 0, 0, SYNC_FILE_RANGE_WRITE);
        char *slash = strrchr(path, '/');
        *slash = 0;
        bool seen = false;
        for (size_t k = 0; k < n_dirs && !seen; k++)
            seen = !strcmp(dirs[k], path);
        if (!seen)
            dirs[n_dirs++] = xstrdup(path);
        free(path);
    }
    for (size_t i = 0; i < n; i++) {
        if (fds[i] >= 0 && fdatasync(fds[i]) != 0 && !rc)
            rc = loch_errf(err, LOCH_EIO, "cannot sync %s: %s", uris[i], strerror(errno));
        if (fds[i] >= 0)
            close(fds[i]);
    }
    for (size_t k = 0; k < n_dirs; k++) {
        if (!rc)
            rc = fsync_dir(dirs[k], err);
        free(dirs[k]);
    }
    free(dirs);
    free(fds);
    return rc;
}

static const struct store_ops fs_ops = {fs_put, fs_get, fs_del, fs_size, fs_list, fs_sync, fs_close};

int fs_store_open(const char *dir, struct store **out, struct loch_err *err)
{
    *out = NULL;
    if (dir[0] != '/') {
        loch_errf(err, LOCH_EINVAL, "store folder \"%s\" is not an absolute path", dir);
        return loch_err_hint(err, "use an absolute path or a file:/// URI");
    }
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == 1)
        n = 0; /* the filesystem root itself */
    char *d = xstrndup(dir, n);
    if (*d && !rel_is_clean(d + 1)) {
        loch_errf(err, LOCH_EINVAL, "store folder \"%s\" has empty, . or .. parts", dir);
        free(d);
        return loch_err_hint(err, "write the warehouse as a plain absolute path");
    }
    int rc = *d ? util_mkdirs(d, err) : 0;
    if (rc) {
        loch_err_prefix(err, "cannot open the warehouse");
        free(d);
        return rc;
    }
    /* The warehouse by its real path: a symlink on the way is resolved once, here, so
     * the folders DuckDB is confined to and every path built below name the same place
     * a resolved path does (engine/ and query/ compare resolved paths with them). */
    char *real = *d ? realpath(d, NULL) : NULL;
    if (*d && !real) {
        rc = loch_errf(err, LOCH_EIO, "cannot resolve the warehouse folder \"%s\": %s", d, strerror(errno));
        free(d);
        return rc;
    }
    if (real) {
        free(d);
        d = strcmp(real, "/") ? real : (free(real), xstrdup(""));
    }
    struct fs_store *fs = xcalloc(1, sizeof *fs);
    fs->base.ops = &fs_ops;
    fs->base.root = xasprintf("file://%s", d);
    fs->dir = d;
    *out = &fs->base;
    return 0;
}
