/* token.h: bearer tokens for the HTTP API. A token is shown once, when created; the
 * catalog keeps only its SHA-256 (table loch_tokens), a short id to list and revoke it
 * by, its user and its expiry. Not for passwords (principal.h) or OAuth2 flows. */
#ifndef LOCH_ACCESS_TOKEN_H
#define LOCH_ACCESS_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"
#include "catalog/catalog.h"

#define TOKEN_PREFIX "loch_"

struct token_info {
    char *id;          /* first 12 hex digits of the hash */
    char *user;
    int64_t created_at, expires_at; /* Unix seconds */
    int64_t last_used_at;           /* 0 = never used */
};

/* The lower-case hex SHA-256 of token, into out[65]. */
void token_hash_hex(const char *token, char out[65]);

/* Tokens always expire. One stored before they did (expires_at 0) is taken to expire
 * this many days after it was made. */
#define TOKEN_LEGACY_EXPIRY_DAYS 365

/* Creates a token for login user `user`, valid for expires_days, which must be 1 to
 * max_days (the configured maximum: auth.token_max_expiry_days). *token (malloc'd,
 * caller frees) is "loch_" + 43 random URL-safe characters; *id (malloc'd) names it for
 * list/revoke. LOCH_ENOROLE when user does not exist, LOCH_EINVAL when it cannot log in
 * or expires_days is outside 1..max_days (the message says the maximum). */
int token_create(struct catalog *cat, const char *user, int expires_days, int max_days, char **token, char **id,
                 struct loch_err *err);

/* The user a presented token belongs to (*user malloc'd). LOCH_EAUTH when the token is
 * unknown, revoked, expired, or its user can no longer log in; the message says which,
 * for the server log only. Records the use time (to the minute). */
int token_verify(struct catalog *cat, const char *token, char **user, struct loch_err *err);

/* Tokens of user (NULL: everyone's), oldest first; strings in a. */
int token_list(struct catalog *cat, const char *user, struct arena *a, struct token_info **out, size_t *n_out,
               struct loch_err *err);

/* Revokes the token whose id is id (or a unique prefix of it, at least 6 digits).
 * LOCH_ENOENT when none matches, LOCH_EINVAL when the prefix is ambiguous or short. */
int token_revoke(struct catalog *cat, const char *id, struct loch_err *err);

#endif
