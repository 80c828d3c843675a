/* backoff.c: failed-login back-off (backoff.h): a fixed open-addressed table under one
 * mutex, so a flood of distinct names cannot make it grow. Not for connection limits
 * (pgwire.c, http.c). */
#include "server/backoff.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "base/util.h"

#define SLOTS 4096 /* power of two */
#define PROBE 16
#define KEY_MAX 96

struct entry {
    char key[KEY_MAX]; /* "" = free */
    uint32_t fails;
    int64_t until_ms;  /* may not try before this */
};

struct backoff {
    pthread_mutex_t mu;
    int64_t base_ms, max_ms;
    struct entry *e;
};

struct backoff *backoff_new(int64_t base_ms, int64_t max_ms)
{
    struct backoff *b = xcalloc(1, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->base_ms = base_ms;
    b->max_ms = max_ms < base_ms ? base_ms : max_ms;
    b->e = xcalloc(SLOTS, sizeof *b->e);
    return b;
}

void backoff_free(struct backoff *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->e);
    free(b);
}

static uint32_t hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The entry of key, or NULL; with make, a free or the stalest slot of its probe run. */
static struct entry *find(struct backoff *b, const char *key, bool make)
{
    uint32_t h = hash(key);
    struct entry *pick = NULL; /* a free slot, else the one whose wait ended first */
    for (uint32_t i = 0; i < PROBE; i++) {
        struct entry *e = &b->e[(h + i) & (SLOTS - 1)];
        if (e->key[0] && !strncmp(e->key, key, KEY_MAX - 1))
            return e;
        if (!pick || (pick->key[0] && (!e->key[0] || e->until_ms < pick->until_ms)))
            pick = e;
    }
    if (!make)
        return NULL;
    memset(pick, 0, sizeof *pick);
    strncpy(pick->key, key, KEY_MAX - 1);
    return pick;
}

int64_t backoff_wait_ms(struct backoff *b, const char *key)
{
    if (!b || b->base_ms <= 0)
        return 0;
    int64_t now = util_now_ms(), wait = 0;
    pthread_mutex_lock(&b->mu);
    struct entry *e = find(b, key, false);
    if (e && e->until_ms > now)
        wait = e->until_ms - now;
    pthread_mutex_unlock(&b->mu);
    return wait;
}

void backoff_fail(struct backoff *b, const char *key)
{
    if (!b || b->base_ms <= 0)
        return;
    int64_t now = util_now_ms();
    pthread_mutex_lock(&b->mu);
    struct entry *e = find(b, key, true);
    if (e->fails && now > e->until_ms + b->max_ms)
        e->fails = 0; /* quiet for long enough: start again */
    if (e->fails < 63)
        e->fails++;
    /* the first failure is free (a typo); then base, 2 base, 4 base ... up to max */
    int64_t d = e->fails < 2 ? 0 : b->base_ms;
    for (uint32_t i = 2; i < e->fails && d < b->max_ms; i++)
        d *= 2;
    e->until_ms = now + (d < b->max_ms ? d : b->max_ms);
    pthread_mutex_unlock(&b->mu);
}

void backoff_ok(struct backoff *b, const char *key)
{
    if (!b || b->base_ms <= 0)
        return;
    pthread_mutex_lock(&b->mu);
    struct entry *e = find(b, key, false);
    if (e)
        memset(e, 0, sizeof *e);
    pthread_mutex_unlock(&b->mu);
}
