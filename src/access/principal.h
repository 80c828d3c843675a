/* principal.h: users and roles (one namespace, as in PostgreSQL: a user is a role that
 * may log in), role membership, and passwords kept only as SCRAM-SHA-256 verifiers in
 * catalog.db (tables loch_principals, loch_role_members). Not for the SCRAM exchange on
 * the wire (server/scram.c), nor for table grants (a later access/ module).
 *
 * The administrator is whoever is, or is a member of (directly or through roles), the
 * principal named "admin" (PRINCIPAL_ADMIN). `loch init` creates it as a login user.
 *
 * Every function takes the catalog handle of the calling thread and creates the access
 * tables on first use. */
#ifndef LOCH_ACCESS_PRINCIPAL_H
#define LOCH_ACCESS_PRINCIPAL_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "base/mem.h"
#include "catalog/catalog.h"

#define PRINCIPAL_ADMIN "admin"
#define SCRAM_ITERATIONS 4096
#define SCRAM_SALT_LEN 16

/* A SCRAM-SHA-256 verifier (RFC 5802 / RFC 7677): what a server keeps instead of the
 * password. StoredKey = SHA-256(HMAC(SaltedPassword, "Client Key")), ServerKey =
 * HMAC(SaltedPassword, "Server Key"), SaltedPassword = PBKDF2-HMAC-SHA-256(password,
 * salt, iterations). */
struct scram_verifier {
    int iterations;
    unsigned char salt[64];
    size_t salt_len;
    unsigned char stored_key[32];
    unsigned char server_key[32];
};

/* Computes the verifier of password with the given salt (salt_len <= 64) and iterations.
 * The password is used as its UTF-8 bytes (no SASLprep: PostgreSQL does the same for
 * passwords SASLprep would reject, and clients send the bytes they were given). */
void principal_scram_make(const char *password, const unsigned char *salt, size_t salt_len, int iterations,
                          struct scram_verifier *out);

/* Formats v as PostgreSQL stores it in pg_authid.rolpassword:
 * "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". malloc'd; caller frees. */
char *principal_scram_format(const struct scram_verifier *v);

/* Parses that format. LOCH_EINVAL when text is not a well-formed verifier. */
int principal_scram_parse(const char *text, struct scram_verifier *out, struct loch_err *err);

/* The verifier of login user `user`. LOCH_EAUTH with a message naming the user when there
 * is no such user, it cannot log in, or it has no password: the caller must NOT show that
 * message to a client (no user enumeration), only "authentication failed". */
int principal_scram_lookup(struct catalog *cat, const char *user, struct scram_verifier *out, struct loch_err *err);

/* Checks a cleartext password (HTTP basic, pgwire `password` over TLS) against the stored
 * verifier in constant time. 0 when it matches; LOCH_EAUTH otherwise (same rule: do not
 * show the message to clients). */
int principal_check_password(struct catalog *cat, const char *user, const char *password, struct loch_err *err);

/* True when user is "admin" or a member of it, directly or through roles. False on any
 * error (deny by default). */
bool principal_is_admin(struct catalog *cat, const char *user);

/* True when member is role, or a member of it directly or through other roles. False on
 * any error (including a missing principal). */
bool principal_member_of(struct catalog *cat, const char *member, const char *role);

/* True when a principal (user or role) named name exists. False on error. */
bool principal_exists(struct catalog *cat, const char *name);

enum principal_kind { PRINCIPAL_USER, PRINCIPAL_ROLE };

/* Passwords given to principal_create / principal_set_password that already are a
 * verifier in the format above are stored as given (PostgreSQL does the same; psql's
 * \password sends one), so the cleartext need never reach loch.
 *
 * Creates a principal. A user can log in (unless can_login is false); a role cannot
 * (unless can_login is true). password may be NULL (no password: cannot log in with one).
 * LOCH_EDUPROLE when the name is taken (users and roles share names), LOCH_EINVAL for an
 * empty name or an empty password. */
int principal_create(struct catalog *cat, const char *name, enum principal_kind kind, bool can_login,
                     const char *password, struct loch_err *err);

/* Replaces name's password (NULL: removes it). LOCH_ENOROLE when name does not exist. */
int principal_set_password(struct catalog *cat, const char *name, const char *password, struct loch_err *err);

/* Sets whether name may log in. LOCH_ENOROLE when name does not exist. */
int principal_set_login(struct catalog *cat, const char *name, bool can_login, struct loch_err *err);

/* Drops a principal of the given kind and its memberships (both ways). LOCH_ENOROLE when
 * there is none of that kind; LOCH_EINVAL for "admin" (the lake would lose its
 * administrator). Its tokens go too (loch_tokens, when that table exists). */
int principal_drop(struct catalog *cat, const char *name, enum principal_kind kind, struct loch_err *err);

/* Makes member a member of role. Both must exist; a cycle (role already a member of
 * member) is LOCH_EINVAL. Granting twice is fine. */
int principal_grant_role(struct catalog *cat, const char *role, const char *member, struct loch_err *err);

/* Ends member's membership of role. LOCH_ENOROLE when either does not exist; not being a
 * member is fine (PostgreSQL warns, does not fail). */
int principal_revoke_role(struct catalog *cat, const char *role, const char *member, struct loch_err *err);

/* A random password of 24 URL-safe characters, malloc'd. */
char *principal_random_password(void);

#endif
