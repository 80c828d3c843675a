/* deadline.c: the deadline service (deadline.h): a list of armed deadlines under a mutex
 * and a thread sleeping on a condition variable until the earliest. Few deadlines are
 * armed at once (one per running statement), so a list is enough.
 * Not a general timer wheel; callbacks run under the service's lock, which is what lets
 * deadline_disarm promise that fire is not running once it returns. */
#include "server/deadline.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "base/mem.h"

struct deadlines {
    pthread_mutex_t mu;
    pthread_cond_t cv;   /* on CLOCK_MONOTONIC: the list changed, or stop */
    pthread_t th;
    bool stopping;
    struct deadline *armed;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void unlink_deadline(struct deadlines *ds, struct deadline *d)
{
    for (struct deadline **pp = &ds->armed; *pp; pp = &(*pp)->next)
        if (*pp == d) {
            *pp = d->next;
            break;
        }
    d->armed = false;
    d->next = NULL;
}

static void *deadlines_main(void *arg)
{
    struct deadlines *ds = arg;
    pthread_mutex_lock(&ds->mu);
    while (!ds->stopping) {
        struct deadline *first = NULL;
        for (struct deadline *d = ds->armed; d; d = d->next)
            if (!first || d->at_us < first->at_us)
                first = d;
        if (!first) {
            pthread_cond_wait(&ds->cv, &ds->mu);
            continue;
        }
        int64_t now = mono_us();
        if (now >= first->at_us) {
            unlink_deadline(ds, first);
            first->fired = true;
            first->fire(first->arg);
            continue;
        }
        struct timespec until = {(time_t)(first->at_us / 1000000), (long)(first->at_us % 1000000) * 1000};
        pthread_cond_timedwait(&ds->cv, &ds->mu, &until);
    }
    pthread_mutex_unlock(&ds->mu);
    return NULL;
}

int deadlines_start(struct deadlines **out, struct loch_err *err)
{
    struct deadlines *ds = xcalloc(1, sizeof *ds);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ds->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ds->mu, NULL);
    if (pthread_create(&ds->th, NULL, deadlines_main, ds) != 0) {
        pthread_cond_destroy(&ds->cv);
        pthread_mutex_destroy(&ds->mu);
        free(ds);
        return loch_errf(err, LOCH_EIO, "cannot start the time limit thread");
    }
    *out = ds;
    return 0;
}

void deadlines_stop(struct deadlines *ds)
{
    if (!ds)
        return;
    pthread_mutex_lock(&ds->mu);
    ds->stopping = true;
    pthread_cond_signal(&ds->cv);
    pthread_mutex_unlock(&ds->mu);
    pthread_join(ds->th, NULL);
    pthread_cond_destroy(&ds->cv);
    pthread_mutex_destroy(&ds->mu);
    free(ds);
}

void deadline_arm(struct deadlines *ds, struct deadline *d, int64_t after_ms, void (*fire)(void *), void *arg)
{
    pthread_mutex_lock(&ds->mu);
    d->at_us = mono_us() + after_ms * 1000;
    d->fire = fire;
    d->arg = arg;
    d->fired = false;
    d->armed = true;
    d->next = ds->armed;
    ds->armed = d;
    pthread_cond_signal(&ds->cv);
    pthread_mutex_unlock(&ds->mu);
}

bool deadline_disarm(struct deadlines *ds, struct deadline *d)
{
    pthread_mutex_lock(&ds->mu);
    if (d->armed)
        unlink_deadline(ds, d);
    bool fired = d->fired;
    d->fired = false;
    pthread_mutex_unlock(&ds->mu);
    return fired;
}
