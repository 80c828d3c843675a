/* token.c: bearer tokens (token.h), stored as SHA-256 hashes in catalog.db. A token has
 * 256 random bits, so an unsalted fast hash is enough: guessing is hopeless, and the
 * look-up is by hash. Not for passwords (slow, salted verifiers: principal.c). */
#include "access/token.h"

#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/principal.h"
#include "base/util.h"

static const char TOKEN_SCHEMA_SQL[] =
    "CREATE TABLE IF NOT EXISTS loch_tokens ("
    " id TEXT NOT NULL PRIMARY KEY,"
    " hash TEXT NOT NULL UNIQUE,"
    " user_name TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL DEFAULT 0,"
    " last_used_at INTEGER NOT NULL DEFAULT 0);";

static int db_fail(sqlite3 *db, struct loch_err *err, const char *what)
{
    return loch_errf(err, LOCH_EIO, "catalog: %s: %s", what, sqlite3_errmsg(db));
}

static int ensure_schema(struct catalog *cat, struct loch_err *err)
{
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'loch_tokens'", -1, &st,
                           NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot read the schema");
    bool have = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!have && sqlite3_exec(db, TOKEN_SCHEMA_SQL, NULL, NULL, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot create loch_tokens");
    return principal_ensure_schema(cat, err);
}

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
    int rc = ensure_schema(cat, err);
    if (rc)
        return rc;
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
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO loch_tokens (id, hash, user_name, created_at, expires_at)"
                           " VALUES (?, ?, ?, ?, ?)",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot prepare a token insert");
    sqlite3_bind_text(st, 1, hash, 12, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, hash, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, user, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 4, now);
    sqlite3_bind_int64(st, 5, now + (int64_t)expires_days * 86400);
    int step = sqlite3_step(st);
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return db_fail(db, err, "cannot store a token");
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
    int rc = ensure_schema(cat, err);
    if (rc)
        return rc;
    char hash[65];
    token_hash_hex(token, hash);
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT id, user_name, expires_at, last_used_at, created_at FROM loch_tokens WHERE hash = ?", -1, &st, NULL) !=
        SQLITE_OK)
        return db_fail(db, err, "cannot prepare a token look-up");
    sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    char *u = NULL, *id = NULL;
    int64_t expires = 0, last_used = 0;
    if (step == SQLITE_ROW) {
        last_used = sqlite3_column_int64(st, 3);
        id = xstrdup((const char *)sqlite3_column_text(st, 0));
        u = xstrdup((const char *)sqlite3_column_text(st, 1));
        expires = sqlite3_column_int64(st, 2);
        if (!expires) /* made before tokens always expired */
            expires = sqlite3_column_int64(st, 4) + (int64_t)TOKEN_LEGACY_EXPIRY_DAYS * 86400;
    }
    sqlite3_finalize(st);
    int64_t now = util_now_ms() / 1000;
    if (step != SQLITE_ROW && step != SQLITE_DONE)
        rc = db_fail(db, err, "cannot read a token");
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
        if (now - last_used >= 60 &&
            sqlite3_prepare_v2(db, "UPDATE loch_tokens SET last_used_at = ? WHERE id = ?", -1, &st, NULL) ==
            SQLITE_OK) {
            sqlite3_bind_int64(st, 1, now);
            sqlite3_bind_text(st, 2, id, -1, SQLITE_STATIC);
            sqlite3_step(st); /* best effort: a busy catalog must not fail the request */
            sqlite3_finalize(st);
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
    int rc = ensure_schema(cat, err);
    if (rc)
        return rc;
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db,
                           "SELECT id, user_name, created_at, expires_at, last_used_at FROM loch_tokens"
                           " WHERE ?1 IS NULL OR user_name = ?1 ORDER BY created_at, id",
                           -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "cannot prepare a token listing");
    if (user)
        sqlite3_bind_text(st, 1, user, -1, SQLITE_STATIC);
    size_t cap = 8, n = 0;
    struct token_info *v = arena_alloc(a, cap * sizeof *v);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            v = arena_grow(a, v, cap, cap * 2, sizeof *v);
            cap *= 2;
        }
        v[n].id = arena_strdup(a, (const char *)sqlite3_column_text(st, 0));
        v[n].user = arena_strdup(a, (const char *)sqlite3_column_text(st, 1));
        v[n].created_at = sqlite3_column_int64(st, 2);
        v[n].expires_at = sqlite3_column_int64(st, 3);
        if (!v[n].expires_at) /* made before tokens always expired: as token_verify sees it */
            v[n].expires_at = v[n].created_at + (int64_t)TOKEN_LEGACY_EXPIRY_DAYS * 86400;
        v[n].last_used_at = sqlite3_column_int64(st, 4);
        n++;
    }
    sqlite3_finalize(st);
    if (step != SQLITE_DONE)
        return db_fail(db, err, "cannot list tokens");
    *out = v;
    *n_out = n;
    return 0;
}

int token_revoke(struct catalog *cat, const char *id, struct loch_err *err)
{
    size_t len = id ? strlen(id) : 0;
    if (len < 6 || len > 64 || strspn(id, "0123456789abcdef") != len) {
        loch_errf(err, LOCH_EINVAL, "\"%s\" is not a token id", id ? id : "");
        return loch_err_hint(err, "token ids are the hex digits loch token list shows (at least 6 of them)");
    }
    int rc = ensure_schema(cat, err);
    if (rc)
        return rc;
    sqlite3 *db = catalog_db(cat);
    sqlite3_stmt *st;
    char *pattern = xasprintf("%s%%", id);
    if (sqlite3_prepare_v2(db, "SELECT count(*) FROM loch_tokens WHERE id LIKE ?", -1, &st, NULL) != SQLITE_OK) {
        free(pattern);
        return db_fail(db, err, "cannot prepare a token look-up");
    }
    sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (n < 0)
        rc = db_fail(db, err, "cannot read tokens");
    else if (n == 0)
        rc = loch_errf(err, LOCH_ENOENT, "no token with id %s", id);
    else if (n > 1)
        rc = loch_errf(err, LOCH_EINVAL, "token id prefix %s matches %d tokens; give more digits", id, n);
    else if (sqlite3_prepare_v2(db, "DELETE FROM loch_tokens WHERE id LIKE ?", -1, &st, NULL) != SQLITE_OK)
        rc = db_fail(db, err, "cannot prepare a token delete");
    else {
        sqlite3_bind_text(st, 1, pattern, -1, SQLITE_STATIC);
        if (sqlite3_step(st) != SQLITE_DONE)
            rc = db_fail(db, err, "cannot revoke a token");
        sqlite3_finalize(st);
    }
    free(pattern);
    return rc;
}
