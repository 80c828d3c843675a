/* keyidx.c: see keyidx.h. Chained hashing over a node array addressed by 32-bit indexes
 * (0 = none); removed nodes go to a free list, so a table whose rows are updated over and
 * over keeps a steady size. Keys up to INLINE bytes live in the node. */
#include "cdc/keyidx.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/mem.h"

#define INLINE 16

struct node {
    uint64_t h;
    int64_t pos;
    int32_t fid;
    uint32_t next; /* in the bucket chain, or in the free list */
    uint32_t len;
    bool live; /* false once taken (the node is then in the free list) */
    union {
        char inl[INLINE];
        char *ptr;
    } k;
};

struct keyidx {
    struct node *nodes; /* nodes[0] unused */
    uint32_t n_nodes, cap_nodes;
    uint32_t free_head;
    uint32_t *buckets;
    size_t n_buckets; /* a power of two */
    size_t count;
    size_t n_long; /* live keys longer than INLINE (their bytes are malloc'd) */
};

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint8_t)p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static const char *node_key(const struct node *e) { return e->len <= INLINE ? e->k.inl : e->k.ptr; }

static bool same(const struct node *e, uint64_t h, const char *key, size_t len)
{
    return e->h == h && e->len == len && !memcmp(node_key(e), key, len);
}

struct keyidx *keyidx_new(void)
{
    struct keyidx *x = xcalloc(1, sizeof *x);
    x->n_buckets = 1024;
    x->buckets = xcalloc(x->n_buckets, sizeof *x->buckets);
    x->cap_nodes = 1024;
    x->nodes = xcalloc(x->cap_nodes, sizeof *x->nodes);
    x->n_nodes = 1;
    return x;
}

static void free_keys(struct keyidx *x)
{
    if (!x->n_long)
        return;
    for (uint32_t i = 1; i < x->n_nodes; i++) /* in memory order: bucket chains are cold */
        if (x->nodes[i].live && x->nodes[i].len > INLINE)
            free(x->nodes[i].k.ptr);
}

void keyidx_free(struct keyidx *x)
{
    if (!x)
        return;
    free_keys(x);
    free(x->buckets);
    free(x->nodes);
    free(x);
}

void keyidx_clear(struct keyidx *x)
{
    free_keys(x);
    memset(x->buckets, 0, x->n_buckets * sizeof *x->buckets);
    x->n_nodes = 1;
    x->free_head = 0;
    x->count = 0;
    x->n_long = 0;
}

static void grow_buckets(struct keyidx *x)
{
    size_t nb = x->n_buckets * 2;
    uint32_t *b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; i < x->n_buckets; i++) {
        uint32_t j = x->buckets[i];
        while (j) {
            uint32_t next = x->nodes[j].next;
            size_t at = x->nodes[j].h & (nb - 1);
            x->nodes[j].next = b[at];
            b[at] = j;
            j = next;
        }
    }
    free(x->buckets);
    x->buckets = b;
    x->n_buckets = nb;
}

void keyidx_reserve(struct keyidx *x, size_t n)
{
    if (n >= UINT32_MAX / 2)
        n = UINT32_MAX / 2 - 1;
    while (x->n_buckets < n)
        grow_buckets(x);
    if (n + 1 > x->cap_nodes) {
        x->cap_nodes = (uint32_t)(n + 1);
        x->nodes = xrealloc(x->nodes, (size_t)x->cap_nodes * sizeof *x->nodes);
    }
}

static void add_hashed(struct keyidx *x, uint64_t h, const char *key, size_t len, int32_t fid, int64_t pos)
{
    if (x->count + 1 > x->n_buckets)
        grow_buckets(x);
    uint32_t i = x->free_head;
    if (i) {
        x->free_head = x->nodes[i].next;
    } else {
        if (x->n_nodes == x->cap_nodes) {
            if (x->cap_nodes > UINT32_MAX / 2)
                abort(); /* 2^31 keys: beyond what one table can index in memory */
            x->cap_nodes = x->cap_nodes * 2;
            x->nodes = xrealloc(x->nodes, (size_t)x->cap_nodes * sizeof *x->nodes);
        }
        i = x->n_nodes++;
    }
    struct node *e = &x->nodes[i];
    e->h = h;
    e->pos = pos;
    e->fid = fid;
    e->len = (uint32_t)len;
    e->live = true;
    if (len <= INLINE) {
        memcpy(e->k.inl, key, len);
    } else {
        e->k.ptr = xmalloc(len);
        memcpy(e->k.ptr, key, len);
        x->n_long++;
    }
    size_t b = e->h & (x->n_buckets - 1);
    e->next = x->buckets[b];
    x->buckets[b] = i;
    x->count++;
}

void keyidx_add(struct keyidx *x, const char *key, size_t len, int32_t fid, int64_t pos)
{
    add_hashed(x, hash(key, len), key, len, fid, pos);
}

enum { RUN = 32 }; /* keys whose cache misses overlap (the *_many calls) */

void keyidx_add_many(struct keyidx *x, const struct keyidx_entry *e, size_t n)
{
    /* Buckets are where the time goes once the index outgrows the caches: hash a run of
     * keys first and prefetch their buckets, so the misses overlap instead of queueing. */
    uint64_t h[RUN];
    for (size_t at = 0; at < n; at += RUN) {
        size_t m = n - at < RUN ? n - at : RUN;
        if (x->count + m > x->n_buckets)
            keyidx_reserve(x, 2 * (x->count + m));
        for (size_t i = 0; i < m; i++) {
            h[i] = hash(e[at + i].key, e[at + i].len);
            __builtin_prefetch(&x->buckets[h[i] & (x->n_buckets - 1)], 1);
        }
        for (size_t i = 0; i < m; i++)
            add_hashed(x, h[i], e[at + i].key, e[at + i].len, e[at + i].fid, e[at + i].pos);
    }
}

/* Lookups of a run of keys: hash them and prefetch their buckets, then read each bucket's
 * head and prefetch its first node, so the cache misses of the run overlap. h[] gets the
 * hashes. */
static void prefetch_run(const struct keyidx *x, const struct keyidx_entry *e, size_t m, uint64_t *h)
{
    size_t mask = x->n_buckets - 1;
    for (size_t i = 0; i < m; i++) {
        h[i] = hash(e[i].key, e[i].len);
        __builtin_prefetch(&x->buckets[h[i] & mask]);
    }
    for (size_t i = 0; i < m; i++) {
        uint32_t j = x->buckets[h[i] & mask];
        if (j)
            __builtin_prefetch(&x->nodes[j]);
    }
}

static size_t take_hashed(struct keyidx *x, uint64_t h, const char *key, size_t len,
                          void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    uint32_t *link = &x->buckets[h & (x->n_buckets - 1)];
    size_t n = 0;
    while (*link) {
        uint32_t i = *link;
        struct node *e = &x->nodes[i];
        if (!same(e, h, key, len)) {
            link = &e->next;
            continue;
        }
        if (fn)
            fn(ctx, e->fid, e->pos);
        *link = e->next;
        if (e->len > INLINE) {
            free(e->k.ptr);
            x->n_long--;
        }
        e->len = 0;
        e->live = false;
        e->next = x->free_head;
        x->free_head = i;
        x->count--;
        n++;
    }
    return n;
}

void keyidx_take_many(struct keyidx *x, const struct keyidx_entry *e, size_t n)
{
    uint64_t h[RUN];
    for (size_t at = 0; at < n; at += RUN) {
        size_t m = n - at < RUN ? n - at : RUN;
        prefetch_run(x, e + at, m, h);
        for (size_t i = 0; i < m; i++)
            take_hashed(x, h[i], e[at + i].key, e[at + i].len, NULL, NULL);
    }
}

static size_t find_hashed(const struct keyidx *x, uint64_t h, const char *key, size_t len,
                          void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    size_t n = 0;
    for (uint32_t i = x->buckets[h & (x->n_buckets - 1)]; i; i = x->nodes[i].next)
        if (same(&x->nodes[i], h, key, len)) {
            fn(ctx, x->nodes[i].fid, x->nodes[i].pos);
            n++;
        }
    return n;
}

void keyidx_find_many(const struct keyidx *x, const struct keyidx_entry *e, size_t n,
                      void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    uint64_t h[RUN];
    for (size_t at = 0; at < n; at += RUN) {
        size_t m = n - at < RUN ? n - at : RUN;
        prefetch_run(x, e + at, m, h);
        for (size_t i = 0; i < m; i++)
            find_hashed(x, h[i], e[at + i].key, e[at + i].len, fn, ctx);
    }
}

size_t keyidx_take(struct keyidx *x, const char *key, size_t len, void (*fn)(void *ctx, int32_t fid, int64_t pos),
                   void *ctx)
{
    return take_hashed(x, hash(key, len), key, len, fn, ctx);
}

size_t keyidx_find(const struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    return find_hashed(x, hash(key, len), key, len, fn, ctx);
}

bool keyidx_get(const struct keyidx *x, const char *key, size_t len, int32_t *fid, int64_t *pos)
{
    uint64_t h = hash(key, len);
    for (uint32_t i = x->buckets[h & (x->n_buckets - 1)]; i; i = x->nodes[i].next)
        if (same(&x->nodes[i], h, key, len)) {
            *fid = x->nodes[i].fid;
            *pos = x->nodes[i].pos;
            return true;
        }
    return false;
}

void keyidx_each(const struct keyidx *x, void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    for (size_t b = 0; b < x->n_buckets; b++)
        for (uint32_t i = x->buckets[b]; i; i = x->nodes[i].next)
            fn(ctx, x->nodes[i].fid, x->nodes[i].pos);
}

size_t keyidx_count(const struct keyidx *x) { return x->count; }

/* ---- saved indexes ----
 * File layout (all integers LEB128 varints; fid and pos zigzag-encoded):
 *   "LOCHKX1\n"  tag_len tag  n_names (len bytes)*  count (key_len key fid pos)*
 *   checksum: 8 bytes little-endian, of everything before it (sum_words below).
 * The checksum guards against a torn or damaged file, since the file is not fsync'ed: it
 * is a cache, and any doubt means rebuilding from the lake. */

#define MAGIC "LOCHKX1\n"
#define MAGIC_LEN 8
#define WBUF (1u << 20) /* a multiple of 8: the checksum runs over whole words per block */

/* Word-at-a-time mixing hash of p[0..n) (the tail zero-padded). */
#define SUM_SEED 0x6C6F63686B7831ULL

static uint64_t sum_words(uint64_t h, const unsigned char *p, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 32;
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 32;
    }
    return h;
}

uint64_t keyidx_checksum(const void *data, size_t len) { return sum_words(SUM_SEED, data, len) ^ len; }

struct writer {
    FILE *f;
    unsigned char *buf;
    size_t n;
    uint64_t h, total;
    bool failed;
};

static void w_flush(struct writer *w)
{
    w->h = sum_words(w->h, w->buf, w->n);
    w->total += w->n;
    if (w->n && fwrite(w->buf, 1, w->n, w->f) != w->n)
        w->failed = true;
    w->n = 0;
}

static void w_put(struct writer *w, const void *p, size_t n)
{
    const unsigned char *s = p;
    while (n) {
        size_t k = WBUF - w->n < n ? WBUF - w->n : n;
        memcpy(w->buf + w->n, s, k);
        w->n += k;
        s += k;
        n -= k;
        if (w->n == WBUF)
            w_flush(w);
    }
}

/* Makes room for n more bytes (n <= WBUF / 2). Writes out whole words only, so the
 * running checksum sees the same words as a reader summing the whole file. */
static void w_room(struct writer *w, size_t n)
{
    if (WBUF - w->n >= n)
        return;
    size_t whole = w->n & ~(size_t)7;
    w->h = sum_words(w->h, w->buf, whole);
    w->total += whole;
    if (fwrite(w->buf, 1, whole, w->f) != whole)
        w->failed = true;
    memmove(w->buf, w->buf + whole, w->n - whole);
    w->n -= whole;
}

static unsigned char *put_varint(unsigned char *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    *p++ = (unsigned char)v;
    return p;
}

static void w_varint(struct writer *w, uint64_t v)
{
    unsigned char b[10];
    size_t n = 0;
    do {
        b[n] = v & 0x7f;
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    w_put(w, b, n);
}

static uint64_t zigzag(int64_t v) { return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63); }
static int64_t unzigzag(uint64_t v) { return (int64_t)(v >> 1) ^ -(int64_t)(v & 1); }

int keyidx_save(const struct keyidx *x, const char *path, const char *tag, char *const *names, size_t n_names,
                struct loch_err *err)
{
    char *tmp = xasprintf("%s.tmp", path);
    struct writer w = {.f = fopen(tmp, "wb"), .buf = xmalloc(WBUF), .h = SUM_SEED};
    if (!w.f) {
        int e = errno;
        free(w.buf);
        free(tmp);
        return loch_errf(err, LOCH_EIO, "cannot create %s.tmp: %s", path, strerror(e));
    }
    w_put(&w, MAGIC, MAGIC_LEN);
    w_varint(&w, strlen(tag));
    w_put(&w, tag, strlen(tag));
    w_varint(&w, n_names);
    for (size_t i = 0; i < n_names; i++) {
        w_varint(&w, strlen(names[i]));
        w_put(&w, names[i], strlen(names[i]));
    }
    w_varint(&w, x->count);
    for (uint32_t i = 1; i < x->n_nodes; i++) { /* node order: sequential, and live ones only */
        const struct node *e = &x->nodes[i];
        if (!e->live)
            continue;
        if (e->len <= 64) { /* the common case, encoded in place */
            w_room(&w, 64 + 3 * 10);
            unsigned char *p = put_varint(w.buf + w.n, e->len);
            memcpy(p, node_key(e), e->len);
            p = put_varint(p + e->len, zigzag(e->fid));
            p = put_varint(p, zigzag(e->pos));
            w.n = (size_t)(p - w.buf);
            continue;
        }
        w_varint(&w, e->len);
        w_put(&w, node_key(e), e->len);
        w_varint(&w, zigzag(e->fid));
        w_varint(&w, zigzag(e->pos));
    }
    w_flush(&w);
    unsigned char sum[8];
    uint64_t h = w.h ^ w.total;
    for (int i = 0; i < 8; i++)
        sum[i] = (unsigned char)(h >> (8 * i));
    if (fwrite(sum, 1, 8, w.f) != 8)
        w.failed = true;
    if (fclose(w.f))
        w.failed = true;
    free(w.buf);
    int rc = 0;
    if (w.failed || rename(tmp, path)) {
        rc = loch_errf(err, LOCH_EIO, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return rc;
}

/* A cursor over the mapped file that fails on underrun. */
struct cursor {
    const unsigned char *p, *end;
    bool bad;
};

static uint64_t c_varint(struct cursor *c)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (c->p >= c->end) {
            c->bad = true;
            return 0;
        }
        unsigned char b = *c->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    c->bad = true;
    return 0;
}

/* n bytes at the cursor, or NULL (bad) when fewer are left. */
static const unsigned char *c_bytes(struct cursor *c, uint64_t n)
{
    if (c->bad || n > (uint64_t)(c->end - c->p)) {
        c->bad = true;
        return NULL;
    }
    const unsigned char *s = c->p;
    c->p += n;
    return s;
}

int keyidx_parse(struct keyidx *x, const void *data, size_t len, const char *tag, char ***names_out,
                 size_t *n_names_out, struct loch_err *err)
{
    *names_out = NULL;
    *n_names_out = 0;
    keyidx_clear(x);
    const unsigned char *d = data;
    struct cursor c = {d, d + len, false};
    if (len < MAGIC_LEN + 8 || memcmp(d, MAGIC, MAGIC_LEN))
        return loch_errf(err, LOCH_ECORRUPT, "not a saved key index");
    c.p += MAGIC_LEN;
    c.end -= 8;
    uint64_t tag_len = c_varint(&c);
    const unsigned char *t = c_bytes(&c, tag_len);
    if (!t)
        return loch_errf(err, LOCH_ECORRUPT, "saved key index truncated in its tag");
    if (tag_len != strlen(tag) || memcmp(t, tag, tag_len))
        return loch_errf(err, LOCH_ENOENT, "the saved key index is of another table state");
    uint64_t want = 0;
    for (int i = 0; i < 8; i++)
        want |= (uint64_t)c.end[i] << (8 * i);
    if (keyidx_checksum(d, len - 8) != want)
        return loch_errf(err, LOCH_ECORRUPT, "saved key index fails its checksum");
    uint64_t n_names = c_varint(&c);
    if (n_names > (uint64_t)(c.end - c.p)) /* each name takes at least one byte */
        return loch_errf(err, LOCH_ECORRUPT, "saved key index claims %llu names", (unsigned long long)n_names);
    char **names = xcalloc(n_names ? n_names : 1, sizeof *names);
    size_t got = 0;
    for (; got < n_names && !c.bad; got++) {
        uint64_t n = c_varint(&c);
        const unsigned char *s = c_bytes(&c, n);
        if (!s)
            break;
        names[got] = xmalloc(n + 1);
        memcpy(names[got], s, n);
        names[got][n] = 0;
    }
    uint64_t count = c_varint(&c);
    if (!c.bad && count > (uint64_t)(c.end - c.p) / 3) /* a record takes at least 3 bytes */
        c.bad = true;
    if (!c.bad)
        keyidx_reserve(x, count);
    struct keyidx_entry run[256];
    size_t n_run = 0;
    for (uint64_t i = 0; i < count && !c.bad; i++) {
        uint64_t kl = c_varint(&c);
        const unsigned char *k = c_bytes(&c, kl);
        uint64_t fid = c_varint(&c), pos = c_varint(&c);
        int64_t f = unzigzag(fid);
        if (c.bad || f < INT32_MIN || f > INT32_MAX || kl > UINT32_MAX) {
            c.bad = true;
            break;
        }
        run[n_run++] = (struct keyidx_entry){(const char *)k, kl, (int32_t)f, unzigzag(pos)};
        if (n_run == sizeof run / sizeof run[0]) {
            keyidx_add_many(x, run, n_run);
            n_run = 0;
        }
    }
    if (!c.bad)
        keyidx_add_many(x, run, n_run);
    if (c.bad || c.p != c.end) {
        for (size_t i = 0; i < got; i++)
            free(names[i]);
        free(names);
        keyidx_clear(x);
        return loch_errf(err, LOCH_ECORRUPT, "saved key index is malformed");
    }
    *names_out = names;
    *n_names_out = got;
    return 0;
}

int keyidx_load(struct keyidx *x, const char *path, const char *tag, char ***names, size_t *n_names,
                struct loch_err *err)
{
    *names = NULL;
    *n_names = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return loch_errf(err, LOCH_ENOENT, "no saved key index at %s", path);
        return loch_errf(err, LOCH_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) || sb.st_size <= 0) {
        close(fd);
        return loch_errf(err, LOCH_ECORRUPT, "saved key index %s is empty", path);
    }
    void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return loch_errf(err, LOCH_EIO, "cannot map %s: %s", path, strerror(errno));
    madvise(m, (size_t)sb.st_size, MADV_SEQUENTIAL);
    int rc = keyidx_parse(x, m, (size_t)sb.st_size, tag, names, n_names, err);
    munmap(m, (size_t)sb.st_size);
    if (rc)
        loch_err_prefix(err, "%s", path);
    return rc;
}
