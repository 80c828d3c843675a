/* mem.c: allocation wrappers (abort on OOM) and a bump arena of chained blocks. */
#include "base/mem.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void oom(size_t n)
{
    fprintf(stderr, "loch: out of memory allocating %zu bytes\n", n);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = xmalloc((size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

struct block {
    struct block *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
};

struct arena {
    struct block *head;
};

enum { BLOCK_MIN = 64 * 1024 };

static struct block *block_new(size_t need)
{
    size_t cap = need > BLOCK_MIN ? need : BLOCK_MIN;
    struct block *b = xmalloc(sizeof *b + cap);
    b->next = NULL;
    b->cap = cap;
    b->used = 0;
    return b;
}

struct arena *arena_new(void)
{
    struct arena *a = xmalloc(sizeof *a);
    a->head = block_new(0);
    return a;
}

void arena_free(struct arena *a)
{
    if (!a)
        return;
    for (struct block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

void arena_reset(struct arena *a)
{
    struct block *b = a->head;
    while (b->next) {
        struct block *n = b->next;
        free(b);
        b = n;
    }
    /* keep the last (oldest, first-created) block */
    a->head = b;
    b->used = 0;
}

void *arena_alloc(struct arena *a, size_t n)
{
    size_t need = (n + 15) & ~(size_t)15;
    if (need < n)
        oom(n);
    struct block *b = a->head;
    if (b->cap - b->used < need) {
        b = block_new(need);
        b->next = a->head;
        a->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    memset(p, 0, n);
    return p;
}

char *arena_strdup(struct arena *a, const char *s) { return s ? arena_strndup(a, s, strlen(s)) : NULL; }

char *arena_strndup(struct arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void *arena_memdup(struct arena *a, const void *src, size_t n)
{
    void *p = arena_alloc(a, n);
    if (n)
        memcpy(p, src, n);
    return p;
}

char *arena_printf(struct arena *a, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *p = arena_alloc(a, (size_t)n + 1);
    vsnprintf(p, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    return p;
}

void *arena_grow(struct arena *a, void *old, size_t old_n, size_t new_n, size_t size)
{
    if (new_n && size > SIZE_MAX / new_n)
        oom(SIZE_MAX);
    void *p = arena_alloc(a, new_n * size);
    if (old && old_n)
        memcpy(p, old, (old_n < new_n ? old_n : new_n) * size);
    return p;
}
