/* backoff.h: exponential back-off after failed logins, per key ("user:NAME", "addr:HOST"),
 * used by both servers. It only answers "how long must this key still wait"; the server
 * holds that attempt (its own connection thread, no lock held, woken when the server
 * stops or the connection is ended) before it checks any credential, so a guesser learns
 * nothing sooner and a correct password is never refused, only late. Not for
 * authentication itself (scram.c, access/token.c). */
#ifndef LOCH_SERVER_BACKOFF_H
#define LOCH_SERVER_BACKOFF_H

#include <stdint.h>

struct backoff;

/* A table of at most a few thousand keys (the key whose wait ended first makes room).
 * After n failures in a row a key waits 0 (n = 1: a typo is free), then
 * min(base_ms * 2^(n-2), max_ms); a key whose wait ended more than max_ms ago starts
 * again from the first failure. base_ms 0 turns
 * back-off off (every call answers 0). Free with backoff_free. */
struct backoff *backoff_new(int64_t base_ms, int64_t max_ms);
void backoff_free(struct backoff *b);

/* Milliseconds key must still wait before its next attempt; 0 when it may try now.
 * Thread-safe; never blocks beyond a short lock. */
int64_t backoff_wait_ms(struct backoff *b, const char *key);

/* Records a failed attempt for key (it then waits, see backoff_new). Thread-safe. */
void backoff_fail(struct backoff *b, const char *key);

/* Records a successful login for key: its failures are forgotten. Thread-safe. */
void backoff_ok(struct backoff *b, const char *key);

#endif
