/* test_store.c: the local folder store: put/get (and its sync flags), no-overwrite, list,
 * delete, size, store_sync of files written by others, and refusal of URIs outside the
 * root. Not for S3 (integration tests cover that). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "store/store.h"

struct fixture {
    char dir[64];
    struct store *s;
    char *root;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/loch-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char *wh = xasprintf("file://%s/lake/", fx->dir); /* trailing slash is dropped */
    struct loch_err err;
    assert_int_equal(store_open(wh, &fx->s, &err), 0);
    free(wh);
    fx->root = xasprintf("file://%s/lake", fx->dir);
    assert_string_equal(fx->s->root, fx->root);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    store_close(fx->s);
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(fx->root);
    free(fx);
    return 0;
}

static void test_put_get(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    char *uri = xasprintf("%s/core/public/loans/metadata/v1.json", fx->root);
    assert_int_equal(store_put(fx->s, uri, "{\"a\":1}", 7, 0, &err), 0);
    char *data;
    size_t len;
    assert_int_equal(store_get(fx->s, uri, &data, &len, &err), 0);
    assert_int_equal(len, 7);
    assert_string_equal(data, "{\"a\":1}");
    free(data);
    /* overwrite allowed without the flag */
    assert_int_equal(store_put(fx->s, uri, "xy", 2, 0, &err), 0);
    assert_int_equal(store_get(fx->s, uri, &data, &len, &err), 0);
    assert_int_equal(len, 2);
    assert_string_equal(data, "xy");
    free(data);
    /* an empty object is an object */
    char *empty = xasprintf("%s/empty", fx->root);
    assert_int_equal(store_put(fx->s, empty, "", 0, 0, &err), 0);
    assert_int_equal(store_get(fx->s, empty, &data, &len, &err), 0);
    assert_int_equal(len, 0);
    assert_string_equal(data, "");
    free(data);
    /* local path is the file itself */
    char *lp = store_local_path(fx->s, uri);
    char *want = xasprintf("%s/lake/core/public/loans/metadata/v1.json", fx->dir);
    assert_string_equal(lp, want);
    free(lp);
    free(want);
    free(empty);
    free(uri);
}

static void test_no_overwrite(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    char *uri = xasprintf("%s/t/metadata/00001.metadata.json", fx->root);
    assert_int_equal(store_put(fx->s, uri, "first", 5, STORE_NO_OVERWRITE, &err), 0);
    assert_int_equal(store_put(fx->s, uri, "second", 6, STORE_NO_OVERWRITE, &err), LOCH_EEXIST);
    assert_non_null(strstr(err.msg, uri));
    char *data;
    assert_int_equal(store_get(fx->s, uri, &data, NULL, &err), 0);
    assert_string_equal(data, "first");
    free(data);
    /* no temp files are left behind, by success or by refusal */
    int count = 0;
    char *dir = xasprintf("%s/lake/t/metadata", fx->dir);
    char *cmd = xasprintf("ls -A %s | wc -l", dir);
    FILE *p = popen(cmd, "r");
    assert_int_equal(fscanf(p, "%d", &count), 1);
    pclose(p);
    assert_int_equal(count, 1);
    free(cmd);
    free(dir);
    free(uri);
}

struct seen {
    char *uris[16];
    int64_t sizes[16];
    int n, stop_after;
};

static int collect(void *ctx, const char *uri, int64_t size, int64_t mtime_ms)
{
    struct seen *s = ctx;
    s->uris[s->n] = xstrdup(uri);
    s->sizes[s->n++] = size;
    return s->stop_after && s->n >= s->stop_after;
}

static void seen_free(struct seen *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->uris[i]);
    memset(s, 0, sizeof *s);
}

static void test_list_delete_size(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    const char *names[] = {"a/data/1.parquet", "a/data/2.parquet", "a/metadata/v1.json", "ab/x", "b/y"};
    for (int i = 0; i < 5; i++) {
        char *u = xasprintf("%s/%s", fx->root, names[i]);
        assert_int_equal(store_put(fx->s, u, names[i], strlen(names[i]), 0, &err), 0);
        free(u);
    }
    struct seen s = {0};
    assert_int_equal(store_list(fx->s, fx->root, collect, &s, &err), 0);
    assert_int_equal(s.n, 5);
    seen_free(&s);

    char *pre = xasprintf("%s/a/", fx->root);
    assert_int_equal(store_list(fx->s, pre, collect, &s, &err), 0);
    assert_int_equal(s.n, 3);
    char *want = xasprintf("%s/a/data/1.parquet", fx->root);
    assert_string_equal(s.uris[0], want);
    assert_int_equal(s.sizes[0], strlen("a/data/1.parquet"));
    seen_free(&s);
    free(pre);

    /* a prefix that is not a folder boundary matches names too: "a" covers a/ and ab/ */
    pre = xasprintf("%s/a", fx->root);
    assert_int_equal(store_list(fx->s, pre, collect, &s, &err), 0);
    assert_int_equal(s.n, 4);
    seen_free(&s);
    free(pre);

    /* the callback stops the walk */
    s.stop_after = 2;
    assert_int_equal(store_list(fx->s, fx->root, collect, &s, &err), 0);
    assert_int_equal(s.n, 2);
    seen_free(&s);

    /* a prefix matching nothing is an empty list */
    pre = xasprintf("%s/nothing/here/", fx->root);
    assert_int_equal(store_list(fx->s, pre, collect, &s, &err), 0);
    assert_int_equal(s.n, 0);
    free(pre);

    int64_t size = -1;
    assert_int_equal(store_size(fx->s, want, &size, &err), 0);
    assert_int_equal(size, strlen("a/data/1.parquet"));
    assert_int_equal(store_delete(fx->s, want, &err), 0);
    assert_int_equal(store_delete(fx->s, want, &err), LOCH_ENOENT);
    assert_int_equal(store_size(fx->s, want, &size, &err), LOCH_ENOENT);
    char *data = NULL;
    assert_int_equal(store_get(fx->s, want, &data, NULL, &err), LOCH_ENOENT);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_null(data);
    free(want);
}

static void test_outside_root(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    char *data;
    const char *bad[] = {"file:///etc/passwd", "s3://bucket/x", "", "relative/path"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(store_put(fx->s, bad[i], "x", 1, 0, &err), LOCH_EINVAL);
        assert_non_null(strstr(err.msg, "outside the store"));
        assert_int_equal(store_get(fx->s, bad[i], &data, NULL, &err), LOCH_EINVAL);
    }
    /* sibling folder sharing the root's name as a prefix, and .. escapes */
    char *sib = xasprintf("%s2/x", fx->root);
    char *dotdot = xasprintf("%s/a/../../escape", fx->root);
    char *rootonly = xasprintf("%s/", fx->root);
    assert_int_equal(store_put(fx->s, sib, "x", 1, 0, &err), LOCH_EINVAL);
    assert_int_equal(store_put(fx->s, dotdot, "x", 1, 0, &err), LOCH_EINVAL);
    assert_int_equal(store_put(fx->s, rootonly, "x", 1, 0, &err), LOCH_EINVAL);
    assert_int_equal(store_delete(fx->s, dotdot, &err), LOCH_EINVAL);
    assert_null(store_local_path(fx->s, sib));
    int64_t sz;
    assert_int_equal(store_size(fx->s, sib, &sz, &err), LOCH_EINVAL);
    struct seen s = {0};
    assert_int_equal(store_list(fx->s, sib, collect, &s, &err), LOCH_EINVAL);
    free(sib);
    free(dotdot);
    free(rootonly);
}

/* Files written into the folder by someone else (DuckDB's COPY) are made durable through
 * store_sync; a missing one is an error, one outside the store is not ours to sync; the
 * put flags that defer or skip syncing still store the object. */
static void test_sync_and_put_flags(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    char *a = xasprintf("%s/t/data/a.parquet", fx->root), *b = xasprintf("%s/t/data/b.parquet", fx->root);
    assert_int_equal(store_put(fx->s, a, "x", 1, 0, &err), 0); /* creates the folder */
    char *bp = xasprintf("%s/lake/t/data/b.parquet", fx->dir);
    FILE *f = fopen(bp, "w");
    assert_non_null(f);
    fputs("written by another writer", f);
    fclose(f);
    const char *both[] = {a, b, "file:///elsewhere/c.parquet"};
    assert_int_equal(store_sync(fx->s, both, 3, &err), 0);
    char *missing = xasprintf("%s/t/data/missing.parquet", fx->root);
    const char *one[] = {missing};
    assert_int_equal(store_sync(fx->s, one, 1, &err), LOCH_EIO);
    assert_non_null(strstr(err.msg, "missing.parquet"));
    char *m = xasprintf("%s/t/metadata/snap-1.avro", fx->root), *h = xasprintf("%s/t/metadata/hint", fx->root);
    assert_int_equal(store_put(fx->s, m, "list", 4, STORE_NO_OVERWRITE | STORE_DIR_SYNC_LATER, &err), 0);
    assert_int_equal(store_put(fx->s, m, "list", 4, STORE_NO_OVERWRITE | STORE_DIR_SYNC_LATER, &err), LOCH_EEXIST);
    assert_int_equal(store_put(fx->s, h, "7", 1, STORE_NO_SYNC, &err), 0);
    char *data;
    size_t len;
    assert_int_equal(store_get(fx->s, h, &data, &len, &err), 0);
    assert_int_equal(len, 1);
    free(data);
    free(a), free(b), free(bp), free(missing), free(m), free(h);
}

static void test_open(void **state)
{
    (void)state;
    struct store *s = NULL;
    struct loch_err err;
    assert_int_equal(store_open("s3://bucket/lake", &s, &err), LOCH_EUNSUPPORTED);
    assert_null(s);
    assert_int_equal(store_open("relative/lake", &s, &err), LOCH_EINVAL);
    assert_int_equal(store_open("file://relative", &s, &err), LOCH_EINVAL);
    assert_non_null(strstr(err.hint, "file:///"));
    store_close(NULL);
}

static void test_plain_path(void **state)
{
    struct fixture *fx = *state;
    struct store *s;
    struct loch_err err;
    char *p = xasprintf("%s/lake2", fx->dir);
    assert_int_equal(store_open(p, &s, &err), 0);
    char *want = xasprintf("file://%s", p);
    assert_string_equal(s->root, want);
    store_close(s);
    free(want);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_overwrite, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_delete_size, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outside_root, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_and_put_flags, setup, teardown),
        cmocka_unit_test(test_open),
        cmocka_unit_test_setup_teardown(test_plain_path, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
