/* mem.h: allocation wrappers and arenas with named lifetimes.
 * Not for DuckDB handles (engine/ owns those) or file handles.
 *
 * OOM policy: loch aborts with a message when the system allocator fails (Redis's
 * zmalloc policy). Every x* function here therefore never returns NULL. */
#ifndef LOCH_BASE_MEM_H
#define LOCH_BASE_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* printf into a new malloc'd string; caller frees. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* An arena hands out memory that lives until the arena is reset or freed.
 * Name arenas by lifetime at their creation site: process, command, connection,
 * transaction, message. Nothing allocated from an arena is freed on its own. */
struct arena;

struct arena *arena_new(void);
/* Frees every block and the arena itself. a may be NULL. */
void arena_free(struct arena *a);
/* Forgets every allocation but keeps the first block for reuse. */
void arena_reset(struct arena *a);
/* Zeroed, 16-byte aligned memory valid until reset/free. */
void *arena_alloc(struct arena *a, size_t n);
char *arena_strdup(struct arena *a, const char *s);   /* s may be NULL -> NULL */
char *arena_strndup(struct arena *a, const char *s, size_t n);
void *arena_memdup(struct arena *a, const void *p, size_t n);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Grows an array allocated from a: returns a new copy of old_n elements with room for
 * new_n (old memory stays until reset). */
void *arena_grow(struct arena *a, void *old, size_t old_n, size_t new_n, size_t size);

#endif
