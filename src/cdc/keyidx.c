/* keyidx.c: see keyidx.h. Chained hashing over a node array addressed by 32-bit indexes
 * (0 = none); removed nodes go to a free list, so a table whose rows are updated over and
 * over keeps a steady size. Keys up to INLINE bytes live in the node. */
#include "cdc/keyidx.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

#define INLINE 16

struct node {
    uint64_t h;
    int64_t pos;
    int32_t fid;
    uint32_t next; /* in the bucket chain, or in the free list */
    uint32_t len;
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
    for (size_t b = 0; b < x->n_buckets; b++)
        for (uint32_t i = x->buckets[b]; i; i = x->nodes[i].next)
            if (x->nodes[i].len > INLINE)
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

void keyidx_add(struct keyidx *x, const char *key, size_t len, int32_t fid, int64_t pos)
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
    e->h = hash(key, len);
    e->pos = pos;
    e->fid = fid;
    e->len = (uint32_t)len;
    if (len <= INLINE) {
        memcpy(e->k.inl, key, len);
    } else {
        e->k.ptr = xmalloc(len);
        memcpy(e->k.ptr, key, len);
    }
    size_t b = e->h & (x->n_buckets - 1);
    e->next = x->buckets[b];
    x->buckets[b] = i;
    x->count++;
}

size_t keyidx_take(struct keyidx *x, const char *key, size_t len, void (*fn)(void *ctx, int32_t fid, int64_t pos),
                   void *ctx)
{
    uint64_t h = hash(key, len);
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
        if (e->len > INLINE)
            free(e->k.ptr);
        e->len = 0;
        e->next = x->free_head;
        x->free_head = i;
        x->count--;
        n++;
    }
    return n;
}

size_t keyidx_find(const struct keyidx *x, const char *key, size_t len,
                   void (*fn)(void *ctx, int32_t fid, int64_t pos), void *ctx)
{
    uint64_t h = hash(key, len);
    size_t n = 0;
    for (uint32_t i = x->buckets[h & (x->n_buckets - 1)]; i; i = x->nodes[i].next)
        if (same(&x->nodes[i], h, key, len)) {
            fn(ctx, x->nodes[i].fid, x->nodes[i].pos);
            n++;
        }
    return n;
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
