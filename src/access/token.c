/* token.c: bearer tokens (token.h), stored as SHA-256 hashes in catalog.db. A token has
 * 256 random bits, so an unsalted fast hash is enough: guessing is hopeless, and the
 * look-up is by hash. Not for passwords (slow, salted verifiers: principal.c). */
#include "access/token.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/principal.h"
#include "base/util.h"

void token_hash_hex(const char *token, char out[65])
{
    unsigned char h[32];
    SHA256((const unsigned char *)token, strlen(token), h);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

int token_create(struct catalog *cat, const char *user, int expires_days, int max_days, char **token, char **id,
                 struct loch_err *err)
{
    *token = *id = NULL;
    if (expires_days < 1 || expires_days > max_days) {
        loch_errf(err, LOCH_EINVAL, "a token must expire within 1 to %d days, not %d", max_days, expires_days);
        return loch_err_hint(err, "tokens always expire; the maximum is auth.token_max_expiry_days in loch.yaml (%d)",
                             max_days);
    }
    if (!principal_exists(cat, user)) {
        loch_errf(err, LOCH_ENOROLE, "user \"%s\" does not exist", user);
        return loch_err_hint(err, "create it first: loch sql \"CREATE USER %s WITH PASSWORD '...'\"", user);
    }
    struct scram_verifier v;
    struct loch_err e2;
    if (principal_scram_lookup(cat, user, &v, &e2) == LOCH_EAUTH && strstr(e2.msg, "not permitted")) {
        loch_errf(err, LOCH_EINVAL, "role \"%s\" cannot log in", user);
        return loch_err_hint(err, "tokens are for users; ALTER ROLE %s LOGIN makes it one", user);
    }
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[43];
    if (RAND_bytes(r, sizeof r) != 1) {
        fprintf(stderr, "loch: RAND_bytes failed\n");
        abort();
    }
    char text[sizeof TOKEN_PREFIX + sizeof r];
    memcpy(text, TOKEN_PREFIX, sizeof TOKEN_PREFIX - 1);
    for (size_t i = 0; i < sizeof r; i++)
        text[sizeof TOKEN_PREFIX - 1 + i] = alphabet[r[i] & 63];
    text[sizeof TOKEN_PREFIX - 1 + sizeof r] = '\0';
    char hash[65];
    token_hash_hex(text, hash);
    int64_t now = util_now_ms() / 1000;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "INSERT INTO loch_tokens (id, hash, user_name, created_at, expires_at)"
                             " VALUES (?, ?, ?, ?, ?)",
                             "cannot store a token", &st, err);
    if (rc)
        return rc;
    catalog_bind_textn(st, 1, hash, 12);
    catalog_bind_text(st, 2, hash);
    catalog_bind_text(st, 3, user);
    catalog_bind_int64(st, 4, now);
    catalog_bind_int64(st, 5, now + (int64_t)expires_days * 86400);
    int step = catalog_step(st, err);
    catalog_finalize(st);
    if (step < 0)
        return step;
    *token = xstrdup(text);
    *id = xstrndup(hash, 12);
    memset(text, 0, sizeof text);
    return 0;
}

int token_verify(struct catalog *cat, const char *token, char **user, struct loch_err *err)
{
    *user = NULL;
    if (!token || strncmp(token, TOKEN_PREFIX, sizeof TOKEN_PREFIX - 1) != 0 || strlen(token) > 200)
        return loch_errf(err, LOCH_EAUTH, "not a loch token");
    char hash[65];
    token_hash_hex(token, hash);
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "SELECT id, user_name, expires_at, last_used_at, created_at FROM loch_tokens"
                             " WHERE hash = ?",
                             "cannot read a token", &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, hash);
    int step = catalog_step(st, err);
    char *u = NULL, *id = NULL;
    int64_t expires = 0, last_used = 0;
    if (step == 1) {
        last_used = catalog_column_int64(st, 3);
        id = xstrdup(catalog_column_text(st, 0));
        u = xstrdup(catalog_column_text(st, 1));
        expires = catalog_column_int64(st, 2);
        if (!expires) /* made before tokens always expired */
            expires = catalog_column_int64(st, 4) + (int64_t)TOKEN_LEGACY_EXPIRY_DAYS * 86400;
    }
    catalog_finalize(st);
    int64_t now = util_now_ms() / 1000;
    if (step < 0)
        rc = step;
    else if (!u)
        rc = loch_errf(err, LOCH_EAUTH, "unknown or revoked token");
    else if (expires <= now)
        rc = loch_errf(err, LOCH_EAUTH, "token %s of user \"%s\" has expired", id, u);
    else {
        struct scram_verifier v;
        struct loch_err e2;
        int lrc = principal_scram_lookup(cat, u, &v, &e2);
        /* A user without a password still logs in by token; one that may not log in does not. */
        if (lrc == LOCH_EAUTH && (strstr(e2.msg, "does not exist") || strstr(e2.msg, "not permitted")))
            rc = loch_errf(err, LOCH_EAUTH, "token %s: %s", id, e2.msg);
    }
    if (!rc) {
        /* The use time is kept to the minute: no catalog write on every request. */
        struct loch_err ignored;
        if (now - last_used >= 60 &&
            catalog_prepare(cat, "UPDATE loch_tokens SET last_used_at = ? WHERE id = ?", "cannot mark a token used",
                            &st, &ignored) == 0) {
            catalog_bind_int64(st, 1, now);
            catalog_bind_text(st, 2, id);
            catalog_step(st, &ignored); /* best effort: a busy catalog must not fail the request */
            catalog_finalize(st);
        }
        *user = u;
        u = NULL;
    }
    free(u);
    free(id);
    return rc;
}

int token_list(struct catalog *cat, const char *user, struct arena *a, struct token_info **out, size_t *n_out,
               struct loch_err *err)
{
    *out = NULL;
    *n_out = 0;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "SELECT id, user_name, created_at, expires_at, last_used_at FROM loch_tokens"
                             " WHERE ?1 IS NULL OR user_name = ?1 ORDER BY created_at, id",
                             "cannot list tokens", &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, user);
    size_t cap = 8, n = 0;
    struct token_info *v = arena_alloc(a, cap * sizeof *v);
    int step;
    while ((step = catalog_step(st, err)) == 1) {
        if (n == cap) {
            v = arena_grow(a, v, cap, cap * 2, sizeof *v);
            cap *= 2;
        }
        v[n].id = arena_strdup(a, catalog_column_text(st, 0));
        v[n].user = arena_strdup(a, catalog_column_text(st, 1));
        v[n].created_at = catalog_column_int64(st, 2);
        v[n].expires_at = catalog_column_int64(st, 3);
        if (!v[n].expires_at) /* made before tokens always expired: as token_verify sees it */
            v[n].expires_at = v[n].created_at + (int64_t)TOKEN_LEGACY_EXPIRY_DAYS * 86400;
        v[n].last_used_at = catalog_column_int64(st, 4);
        n++;
    }
    catalog_finalize(st);
    if (step < 0)
        return step;
    *out = v;
    *n_out = n;
    return 0;
}

/* Runs sql with its one parameter bound to pattern; *count (unless NULL) gets the first
 * column of its row. */
static int run_by_id(struct catalog *cat, const char *sql, const char *pattern, const char *what, int64_t *count,
                     struct loch_err *err)
{
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat, sql, what, &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, pattern);
    int step = catalog_step(st, err);
    if (count)
        *count = step == 1 ? catalog_column_int64(st, 0) : 0;
    catalog_finalize(st);
    return step < 0 ? step : 0;
}

int token_revoke(struct catalog *cat, const char *id, struct loch_err *err)
{
    size_t len = id ? strlen(id) : 0;
    if (len < 6 || len > 64 || strspn(id, "0123456789abcdef") != len) {
        loch_errf(err, LOCH_EINVAL, "\"%s\" is not a token id", id ? id : "");
        return loch_err_hint(err, "token ids are the hex digits loch token list shows (at least 6 of them)");
    }
    char *pattern = xasprintf("%s%%", id);
    int64_t n = 0;
    int rc = run_by_id(cat, "SELECT count(*) FROM loch_tokens WHERE id LIKE ?", pattern, "cannot read tokens", &n,
                       err);
    if (!rc && n == 0)
        rc = loch_errf(err, LOCH_ENOENT, "no token with id %s", id);
    else if (!rc && n > 1)
        rc = loch_errf(err, LOCH_EINVAL, "token id prefix %s matches %lld tokens; give more digits", id, (long long)n);
    else if (!rc)
        rc = run_by_id(cat, "DELETE FROM loch_tokens WHERE id LIKE ?", pattern, "cannot revoke a token", NULL, err);
    free(pattern);
    return rc;
}
