/* deadline.h: statement time limits (and pgwire's login deadline) for both servers: one
 * thread per server runs a callback when a registered deadline passes before it is
 * disarmed. Not for deciding the limits (limits.h) nor for what an interrupt does (query/). */
#ifndef LOCH_SERVER_DEADLINE_H
#define LOCH_SERVER_DEADLINE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"

struct deadlines;

/* One deadline, owned (embedded) by the caller: a connection or a request. Between
 * deadline_arm and deadline_disarm it must stay where it is; fields are the service's. */
struct deadline {
    int64_t at_us;            /* CLOCK_MONOTONIC */
    void (*fire)(void *arg);
    void *arg;
    bool armed, fired;
    struct deadline *next;
};

/* Starts the service's thread. *out (OUT) is freed by deadlines_stop; on failure err is
 * filled (LOCH_EIO) and its code returned. */
int deadlines_start(struct deadlines **out, struct loch_err *err);
/* Stops the thread and frees ds (NULL: no-op). Every deadline must be disarmed first. */
void deadlines_stop(struct deadlines *ds);

/* Registers d: when after_ms milliseconds pass before deadline_disarm(d), fire(arg) runs
 * once on the service's thread (it must not arm or disarm deadlines of ds). d must not be
 * armed already. */
void deadline_arm(struct deadlines *ds, struct deadline *d, int64_t after_ms, void (*fire)(void *), void *arg);
/* Unregisters d (a no-op when it is not armed); returns whether it fired. After the call
 * fire is not running and will not run: what arg points to may go. */
bool deadline_disarm(struct deadlines *ds, struct deadline *d);

#endif
