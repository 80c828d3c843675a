/* retry.h: the back-off every CDC source reconnects with after a dropped connection: a
 * wait that starts at a base, doubles up to a cap, optionally shortened at random
 * (jitter), and starts over once an attempt was healthy; plus the one log line that
 * announces it. Not for deciding which errors are worth a retry (the source does). */
#ifndef LOCH_CDC_RETRY_H
#define LOCH_CDC_RETRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct cdc_retry {
    /* the policy (cdc_retry_init) */
    int64_t base_ms;    /* the first wait, and the wait after a healthy attempt */
    int64_t cap_ms;     /* waits double up to this */
    int64_t healthy_ms; /* an attempt that lasted this long was healthy (0: only cdc_retry_healthy) */
    int jitter_pct;     /* each wait is up to this many percent shorter, at random (0: exact) */
    /* state */
    int64_t next_ms;    /* the wait after the next failed attempt, before jitter */
    int64_t started_ms; /* monotonic start of the current attempt */
};

/* The sources' policy: 0.5 s doubling to 30 s, healthy after 30 s, no jitter. */
#define CDC_RETRY_BASE_MS 500
#define CDC_RETRY_CAP_MS 30000
#define CDC_RETRY_HEALTHY_MS 30000

/* Sets the policy and starts at base_ms. cap_ms < base_ms is taken as base_ms;
 * jitter_pct is clamped to 0..100. */
void cdc_retry_init(struct cdc_retry *r, int64_t base_ms, int64_t cap_ms, int64_t healthy_ms, int jitter_pct);
/* An attempt begins now (for healthy_ms). */
void cdc_retry_start(struct cdc_retry *r);
/* The current attempt made progress the source can tell (rows landed, a flush): the
 * next wait is base_ms again. */
void cdc_retry_healthy(struct cdc_retry *r);
/* The attempt failed after lasting attempt_ms: returns the wait before the next one (ms,
 * jitter applied) and doubles the one after, up to cap_ms. Pure but for the random jitter
 * (no clock, no sleep): what the tests drive. */
int64_t cdc_retry_next(struct cdc_retry *r, int64_t attempt_ms);
/* The attempt begun by cdc_retry_start failed with err: logs a warning
 * "<who>: <err->msg>; reconnecting in <s> s" (who NULL: err->msg alone, when it already
 * names the source) and sleeps the wait cdc_retry_next gives, in 100 ms steps, while
 * *stop (may be NULL) stays false. Returns false when stopped during the wait (then do
 * not reconnect), true after the whole wait. err is left as it is. */
bool cdc_retry_wait(struct cdc_retry *r, const char *who, const struct loch_err *err, atomic_bool *stop);

#endif
