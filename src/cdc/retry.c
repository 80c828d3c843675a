/* retry.c: the sources' reconnect back-off (retry.h): the policy's arithmetic and the
 * interruptible wait. Not for connecting (each source's conn.c). */
#include "cdc/retry.h"

#include <stdlib.h>
#include <time.h>

#include "base/log.h"
#include "base/util.h"

static int64_t mono_ms(void) { return (int64_t)(util_mono_s() * 1000.0); }

void cdc_retry_init(struct cdc_retry *r, int64_t base_ms, int64_t cap_ms, int64_t healthy_ms, int jitter_pct)
{
    r->base_ms = base_ms > 0 ? base_ms : 1;
    r->cap_ms = cap_ms < r->base_ms ? r->base_ms : cap_ms;
    r->healthy_ms = healthy_ms > 0 ? healthy_ms : 0;
    r->jitter_pct = jitter_pct < 0 ? 0 : jitter_pct > 100 ? 100 : jitter_pct;
    r->next_ms = r->base_ms;
    r->started_ms = mono_ms();
}

void cdc_retry_start(struct cdc_retry *r) { r->started_ms = mono_ms(); }

void cdc_retry_healthy(struct cdc_retry *r) { r->next_ms = r->base_ms; }

int64_t cdc_retry_next(struct cdc_retry *r, int64_t attempt_ms)
{
    if (r->healthy_ms && attempt_ms > r->healthy_ms)
        cdc_retry_healthy(r);
    int64_t wait = r->next_ms;
    r->next_ms = wait > r->cap_ms / 2 ? r->cap_ms : wait * 2;
    if (r->jitter_pct) {
        /* shorter only, so the cap holds; many loch processes then do not reconnect in step */
        int64_t span = wait * r->jitter_pct / 100;
        if (span > 0)
            wait -= (int64_t)(rand() % (span + 1));
    }
    return wait;
}

static bool stopped(atomic_bool *stop) { return stop && atomic_load(stop); }

bool cdc_retry_wait(struct cdc_retry *r, const char *who, const struct loch_err *err, atomic_bool *stop)
{
    int64_t wait = cdc_retry_next(r, mono_ms() - r->started_ms);
    log_warn("%s%s%s; reconnecting in %.1f s", who ? who : "", who ? ": " : "", err->msg, wait / 1000.0);
    for (int64_t waited = 0; waited < wait && !stopped(stop); waited += 100) {
        int64_t step = wait - waited < 100 ? wait - waited : 100;
        struct timespec ts = {0, (long)step * 1000000L};
        nanosleep(&ts, NULL);
    }
    return !stopped(stop);
}
