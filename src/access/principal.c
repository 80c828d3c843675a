/* principal.c: users, roles, memberships and SCRAM-SHA-256 verifiers in catalog.db.
 * Passwords never reach the database: only the verifier (RFC 5802 section 3, with
 * SHA-256 per RFC 7677) is stored, in PostgreSQL's text format. Not for the SASL
 * exchange itself (server/scram.c). */
#include "access/principal.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/util.h"

/* ---- SCRAM-SHA-256 verifiers ---- */

static void hmac256(const unsigned char *key, size_t key_len, const void *msg, size_t msg_len, unsigned char out[32])
{
    unsigned int len = 32;
    HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &len);
}

void principal_scram_make(const char *password, const unsigned char *salt, size_t salt_len, int iterations,
                          struct scram_verifier *out)
{
    memset(out, 0, sizeof *out);
    if (salt_len > sizeof out->salt)
        salt_len = sizeof out->salt;
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    unsigned char salted[32], client_key[32];
    PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations, EVP_sha256(), 32, salted);
    hmac256(salted, 32, "Client Key", 10, client_key);
    SHA256(client_key, 32, out->stored_key);
    hmac256(salted, 32, "Server Key", 10, out->server_key);
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
}

static void b64(const unsigned char *p, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

char *principal_scram_format(const struct scram_verifier *v)
{
    char salt[4 * sizeof v->salt / 3 + 8], sk[48], svk[48];
    b64(v->salt, v->salt_len, salt);
    b64(v->stored_key, 32, sk);
    b64(v->server_key, 32, svk);
    return xasprintf("SCRAM-SHA-256$%d:%s$%s:%s", v->iterations, salt, sk, svk);
}

/* Decodes standard padded base64 text of n characters into out (room for cap bytes).
 * Returns the byte count, or -1 when malformed or too long. */
static long unb64(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > cap + 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
                  c == '/' || (c == '=' && i >= n - 2);
        if (!ok || (c != '=' && i > 0 && s[i - 1] == '='))
            return -1;
    }
    unsigned char tmp[256];
    if (n / 4 * 3 > sizeof tmp)
        return -1;
    int len = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
    if (len < 0)
        return -1;
    if (s[n - 1] == '=')
        len--;
    if (s[n - 2] == '=')
        len--;
    if ((size_t)len > cap)
        return -1;
    memcpy(out, tmp, (size_t)len);
    return len;
}

int principal_scram_parse(const char *text, struct scram_verifier *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    static const char prefix[] = "SCRAM-SHA-256$";
    const char *p = text ? text : "";
    if (strncmp(p, prefix, sizeof prefix - 1) != 0)
        return loch_errf(err, LOCH_EINVAL, "not a SCRAM-SHA-256 verifier");
    p += sizeof prefix - 1;
    char *end;
    long iter = strtol(p, &end, 10);
    if (end == p || *end != ':' || iter < 1 || iter > 10000000)
        return loch_errf(err, LOCH_EINVAL, "SCRAM verifier: bad iteration count");
    out->iterations = (int)iter;
    const char *salt = end + 1, *dollar = strchr(salt, '$');
    const char *colon = dollar ? strchr(dollar + 1, ':') : NULL;
    if (!dollar || !colon)
        return loch_errf(err, LOCH_EINVAL, "SCRAM verifier: expected <iter>:<salt>$<StoredKey>:<ServerKey>");
    long sl = unb64(salt, (size_t)(dollar - salt), out->salt, sizeof out->salt);
    long k1 = unb64(dollar + 1, (size_t)(colon - dollar - 1), out->stored_key, 32);
    long k2 = unb64(colon + 1, strlen(colon + 1), out->server_key, 32);
    if (sl <= 0 || k1 != 32 || k2 != 32)
        return loch_errf(err, LOCH_EINVAL, "SCRAM verifier: bad base64 salt or keys");
    out->salt_len = (size_t)sl;
    return 0;
}

/* The stored text for a password. A password that already is a SCRAM-SHA-256 verifier
 * (psql's \password sends one) is stored as given, as PostgreSQL does. */
static char *make_verifier_text(const char *password)
{
    struct scram_verifier given;
    if (!strncmp(password, "SCRAM-SHA-256$", 14) && principal_scram_parse(password, &given, NULL) == 0)
        return principal_scram_format(&given);
    unsigned char salt[SCRAM_SALT_LEN];
    if (RAND_bytes(salt, sizeof salt) != 1) {
        fprintf(stderr, "loch: RAND_bytes failed\n");
        abort();
    }
    struct scram_verifier v;
    principal_scram_make(password, salt, sizeof salt, SCRAM_ITERATIONS, &v);
    char *text = principal_scram_format(&v);
    OPENSSL_cleanse(&v, sizeof v);
    return text;
}

char *principal_random_password(void)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char r[24];
    if (RAND_bytes(r, sizeof r) != 1) {
        fprintf(stderr, "loch: RAND_bytes failed\n");
        abort();
    }
    char *out = xmalloc(sizeof r + 1);
    for (size_t i = 0; i < sizeof r; i++)
        out[i] = alphabet[r[i] & 63];
    out[sizeof r] = '\0';
    return out;
}

/* ---- look-ups ---- */

/* Reads name's row: *found, kind ("user"/"role"), can_login, scram (malloc'd or NULL). */
static int read_principal(struct catalog *cat, const char *name, bool *found, char kind[8], bool *can_login,
                          char **scram, struct loch_err *err)
{
    *found = false;
    if (scram)
        *scram = NULL;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat, "SELECT kind, can_login, scram FROM loch_principals WHERE name = ?",
                             "cannot read a principal", &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, name);
    int step = catalog_step(st, err);
    if (step == 1) {
        *found = true;
        const char *k = catalog_column_text(st, 0);
        snprintf(kind, 8, "%s", k ? k : "");
        *can_login = catalog_column_int64(st, 1) != 0;
        const char *s = catalog_column_text(st, 2);
        if (scram && s)
            *scram = xstrdup(s);
    } else if (step < 0) {
        rc = step;
    }
    catalog_finalize(st);
    return rc;
}

int principal_scram_lookup(struct catalog *cat, const char *user, struct scram_verifier *out, struct loch_err *err)
{
    bool found = false, can_login = false;
    char kind[8];
    char *scram = NULL;
    int rc = read_principal(cat, user ? user : "", &found, kind, &can_login, &scram, err);
    if (rc) {
        free(scram);
        return rc;
    }
    if (!found)
        rc = loch_errf(err, LOCH_EAUTH, "user \"%s\" does not exist", user);
    else if (!can_login)
        rc = loch_errf(err, LOCH_EAUTH, "role \"%s\" is not permitted to log in", user);
    else if (!scram)
        rc = loch_errf(err, LOCH_EAUTH, "user \"%s\" has no password", user);
    else if (principal_scram_parse(scram, out, err) != 0)
        rc = loch_errf(err, LOCH_EAUTH, "user \"%s\" has a malformed password verifier", user);
    free(scram);
    return rc;
}

int principal_check_password(struct catalog *cat, const char *user, const char *password, struct loch_err *err)
{
    struct scram_verifier v, got;
    int rc = principal_scram_lookup(cat, user, &v, err);
    if (rc) {
        /* Spend the same time as a real check, so timing does not tell users apart. */
        static const unsigned char salt[SCRAM_SALT_LEN] = {0};
        principal_scram_make(password ? password : "", salt, sizeof salt, SCRAM_ITERATIONS, &got);
        return rc;
    }
    principal_scram_make(password ? password : "", v.salt, v.salt_len, v.iterations, &got);
    bool ok = CRYPTO_memcmp(got.stored_key, v.stored_key, 32) == 0 &&
              CRYPTO_memcmp(got.server_key, v.server_key, 32) == 0;
    OPENSSL_cleanse(&got, sizeof got);
    if (!ok)
        return loch_errf(err, LOCH_EAUTH, "password authentication failed for user \"%s\"", user);
    return 0;
}

/* True when `who` is `target` or reaches it through memberships. */
static int reaches(struct catalog *cat, const char *who, const char *target, bool *out, struct loch_err *err)
{
    *out = false;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "WITH RECURSIVE r(name) AS (SELECT ?1 UNION"
                             " SELECT m.role FROM loch_role_members m JOIN r ON m.member = r.name)"
                             " SELECT 1 FROM r WHERE name = ?2",
                             "cannot read memberships", &st, err);
    if (rc)
        return rc;
    catalog_bind_text(st, 1, who);
    catalog_bind_text(st, 2, target);
    int step = catalog_step(st, err);
    if (step == 1)
        *out = true;
    else if (step < 0)
        rc = step;
    catalog_finalize(st);
    return rc;
}

bool principal_is_admin(struct catalog *cat, const char *user)
{
    if (!cat || !user || !*user || !principal_exists(cat, user))
        return false;
    struct loch_err err;
    bool yes = false;
    if (reaches(cat, user, PRINCIPAL_ADMIN, &yes, &err) != 0)
        return false;
    return yes;
}

bool principal_member_of(struct catalog *cat, const char *member, const char *role)
{
    if (!cat || !member || !role)
        return false;
    struct loch_err err;
    bool yes = false;
    if (reaches(cat, member, role, &yes, &err) != 0)
        return false;
    return yes;
}

bool principal_exists(struct catalog *cat, const char *name)
{
    bool found = false, can_login;
    char kind[8];
    struct loch_err err;
    if (read_principal(cat, name ? name : "", &found, kind, &can_login, NULL, &err) != 0)
        return false;
    return found;
}

/* ---- changes ---- */

/* Runs one write with up to two text parameters ?1, ?2 (a NULL one stays unbound: SQL
 * NULL); *changes (unless NULL) gets the rows it changed. */
static int exec_bound(struct catalog *cat, const char *sql, const char *a1, const char *a2, struct loch_err *err,
                      const char *what, int64_t *changes)
{
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat, sql, what, &st, err);
    if (rc)
        return rc;
    if (a1)
        catalog_bind_text(st, 1, a1);
    if (a2) /* unbound parameters are NULL */
        catalog_bind_text(st, 2, a2);
    int step = catalog_step(st, err);
    catalog_finalize(st);
    if (step < 0)
        return step;
    if (changes)
        *changes = catalog_changes(cat);
    return 0;
}

static const char *kind_word(enum principal_kind k) { return k == PRINCIPAL_USER ? "user" : "role"; }

int principal_create(struct catalog *cat, const char *name, enum principal_kind kind, bool can_login,
                     const char *password, struct loch_err *err)
{
    if (!name || !*name)
        return loch_errf(err, LOCH_EINVAL, "a %s needs a name", kind_word(kind));
    if (password && !*password) {
        loch_errf(err, LOCH_EINVAL, "empty password for %s \"%s\"", kind_word(kind), name);
        return loch_err_hint(err, "give a non-empty password, or none");
    }
    if (principal_exists(cat, name))
        return loch_errf(err, LOCH_EDUPROLE, "role \"%s\" already exists", name);
    char *scram = password ? make_verifier_text(password) : NULL;
    struct catalog_stmt *st;
    int rc = catalog_prepare(cat,
                             "INSERT INTO loch_principals (name, kind, can_login, scram, created_at)"
                             " VALUES (?, ?, ?, ?, ?)",
                             "cannot create a principal", &st, err);
    if (rc) {
        free(scram);
        return rc;
    }
    catalog_bind_text(st, 1, name);
    catalog_bind_text(st, 2, kind_word(kind));
    catalog_bind_int64(st, 3, can_login ? 1 : 0);
    catalog_bind_text(st, 4, scram);
    catalog_bind_int64(st, 5, util_now_ms() / 1000);
    int step = catalog_step(st, err);
    catalog_finalize(st);
    free(scram);
    if (step == LOCH_EEXIST)
        return loch_errf(err, LOCH_EDUPROLE, "role \"%s\" already exists", name);
    return step < 0 ? step : 0;
}

int principal_set_password(struct catalog *cat, const char *name, const char *password, struct loch_err *err)
{
    if (password && !*password) {
        loch_errf(err, LOCH_EINVAL, "empty password for \"%s\"", name);
        return loch_err_hint(err, "give a non-empty password, or PASSWORD NULL to remove it");
    }
    char *scram = password ? make_verifier_text(password) : NULL;
    int64_t changes = 0; /* an unbound ?2 (no password) is NULL */
    int rc = exec_bound(cat, "UPDATE loch_principals SET scram = ?2 WHERE name = ?1", name, scram, err,
                    "cannot set a password", &changes);
    free(scram);
    if (!rc && changes == 0)
        rc = loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", name);
    return rc;
}

int principal_set_login(struct catalog *cat, const char *name, bool can_login, struct loch_err *err)
{
    int64_t changes = 0;
    int rc = exec_bound(cat,
                    can_login ? "UPDATE loch_principals SET can_login = 1 WHERE name = ?1"
                              : "UPDATE loch_principals SET can_login = 0 WHERE name = ?1",
                    name, NULL, err, "cannot change login", &changes);
    if (!rc && changes == 0)
        rc = loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", name);
    return rc;
}

int principal_drop(struct catalog *cat, const char *name, enum principal_kind kind, struct loch_err *err)
{
    if (name && !strcmp(name, PRINCIPAL_ADMIN)) {
        loch_errf(err, LOCH_EINVAL, "cannot drop \"%s\": the lake would have no administrator", name);
        return loch_err_hint(err, "change its password with ALTER USER admin WITH PASSWORD '...'");
    }
    int rc = catalog_write_begin(cat, err);
    if (rc)
        return rc;
    int64_t changes = 0;
    rc = exec_bound(cat, "DELETE FROM loch_principals WHERE name = ?1 AND kind = ?2", name, kind_word(kind), err,
                    "cannot drop a principal", &changes);
    if (!rc && changes == 0)
        rc = loch_errf(err, LOCH_ENOROLE, "%s \"%s\" does not exist", kind_word(kind), name);
    if (!rc)
        rc = exec_bound(cat, "DELETE FROM loch_role_members WHERE role = ?1 OR member = ?1", name, NULL, err,
                        "cannot drop memberships", NULL);
    if (!rc)
        rc = exec_bound(cat, "DELETE FROM loch_tokens WHERE user_name = ?1", name, NULL, err,
                        "cannot drop tokens", NULL);
    return catalog_write_end(cat, rc, err);
}

/* Both role and member exist (else LOCH_ENOROLE naming one). */
static int both_exist(struct catalog *cat, const char *role, const char *member, struct loch_err *err)
{
    if (!principal_exists(cat, role))
        return loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", role);
    if (!principal_exists(cat, member))
        return loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", member);
    return 0;
}

int principal_grant_role(struct catalog *cat, const char *role, const char *member, struct loch_err *err)
{
    int rc = both_exist(cat, role, member, err);
    if (rc)
        return rc;
    bool cycle = false;
    rc = reaches(cat, role, member, &cycle, err);
    if (rc)
        return rc;
    if (cycle)
        return loch_errf(err, LOCH_EINVAL, "role \"%s\" is a member of role \"%s\"", role, member);
    return exec_bound(cat, "INSERT OR IGNORE INTO loch_role_members (role, member) VALUES (?1, ?2)", role, member,
                      err, "cannot grant a role", NULL);
}

int principal_revoke_role(struct catalog *cat, const char *role, const char *member, struct loch_err *err)
{
    int rc = both_exist(cat, role, member, err);
    if (rc)
        return rc;
    return exec_bound(cat, "DELETE FROM loch_role_members WHERE role = ?1 AND member = ?2", role, member, err,
                      "cannot revoke a role", NULL);
}
