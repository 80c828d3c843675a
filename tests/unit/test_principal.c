/* test_principal.c: SCRAM-SHA-256 verifiers (RFC 7677's example exchange), their text
 * format, and users/roles/memberships in a real catalog.db. Not for the wire exchange. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/principal.h"

static size_t unb64(const char *s, unsigned char *out)
{
    int n = EVP_DecodeBlock(out, (const unsigned char *)s, (int)strlen(s));
    size_t l = strlen(s);
    if (l && s[l - 1] == '=')
        n--;
    if (l > 1 && s[l - 2] == '=')
        n--;
    return (size_t)n;
}

/* RFC 7677 section 3: user "user", password "pencil". From our verifier the server must
 * accept the client's proof and produce the same server signature as the RFC. */
static void test_rfc7677_vector(void **state)
{
    (void)state;
    unsigned char salt[32];
    size_t salt_len = unb64("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    assert_int_equal(salt_len, 16);
    struct scram_verifier v;
    principal_scram_make("pencil", salt, salt_len, 4096, &v);

    const char *auth = "n=user,r=rOprNGfwEbeRWgbNEkqO,"
                       "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
                       "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    unsigned char proof[40], client_sig[32], client_key[32], stored[32], server_sig[32], want_sig[40];
    assert_int_equal(unb64("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", proof), 32);
    assert_int_equal(unb64("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", want_sig), 32);
    unsigned int len = 32;
    HMAC(EVP_sha256(), v.stored_key, 32, (const unsigned char *)auth, strlen(auth), client_sig, &len);
    for (int i = 0; i < 32; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    SHA256(client_key, 32, stored);
    assert_memory_equal(stored, v.stored_key, 32);
    HMAC(EVP_sha256(), v.server_key, 32, (const unsigned char *)auth, strlen(auth), server_sig, &len);
    assert_memory_equal(server_sig, want_sig, 32);
}

static void test_format_roundtrip(void **state)
{
    (void)state;
    unsigned char salt[16];
    unb64("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    struct scram_verifier v, w;
    principal_scram_make("pencil", salt, 16, 4096, &v);
    char *text = principal_scram_format(&v);
    assert_true(!strncmp(text, "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$", 44));
    struct loch_err err;
    assert_int_equal(principal_scram_parse(text, &w, &err), 0);
    assert_int_equal(w.iterations, 4096);
    assert_int_equal(w.salt_len, 16);
    assert_memory_equal(w.salt, v.salt, 16);
    assert_memory_equal(w.stored_key, v.stored_key, 32);
    assert_memory_equal(w.server_key, v.server_key, 32);
    free(text);
    const char *bad[] = {"", "md5abc", "SCRAM-SHA-256$x:AAAA$AAAA:AAAA", "SCRAM-SHA-256$4096:W22Z$short:short",
                         "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==", "SCRAM-SHA-256$0:AAAA$AAAA:AAAA", NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(principal_scram_parse(bad[i], &w, &err), LOCH_EINVAL);
}

struct fixture {
    char dir[64];
    char *path;
    struct catalog *c;
};

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/loch-principal-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->path = xasprintf("%s/catalog.db", fx->dir);
    struct loch_err err;
    assert_int_equal(catalog_open(fx->path, true, &fx->c, &err), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    catalog_close(fx->c);
    char *wal = xasprintf("%s-wal", fx->path), *shm = xasprintf("%s-shm", fx->path);
    unlink(fx->path);
    unlink(wal);
    unlink(shm);
    rmdir(fx->dir);
    free(wal);
    free(shm);
    free(fx->path);
    free(fx);
    return 0;
}

static void test_users_and_roles(void **state)
{
    struct fixture *fx = *state;
    struct catalog *c = fx->c;
    struct loch_err err;
    assert_int_equal(principal_create(c, "admin", PRINCIPAL_USER, true, "root-pw", &err), 0);
    assert_int_equal(principal_create(c, "alice", PRINCIPAL_USER, true, "s3cret", &err), 0);
    assert_int_equal(principal_create(c, "alice", PRINCIPAL_ROLE, false, NULL, &err), LOCH_EDUPROLE);
    assert_int_equal(principal_create(c, "analysts", PRINCIPAL_ROLE, false, NULL, &err), 0);

    assert_true(principal_is_admin(c, "admin"));
    assert_false(principal_is_admin(c, "alice"));
    assert_false(principal_is_admin(c, "nobody"));

    /* alice -> analysts -> admin */
    assert_int_equal(principal_grant_role(c, "analysts", "alice", &err), 0);
    assert_false(principal_is_admin(c, "alice"));
    assert_int_equal(principal_grant_role(c, "admin", "analysts", &err), 0);
    assert_true(principal_is_admin(c, "alice"));
    assert_true(principal_member_of(c, "alice", "analysts"));
    assert_true(principal_member_of(c, "alice", "admin")); /* through analysts */
    assert_false(principal_member_of(c, "analysts", "alice"));
    assert_false(principal_member_of(c, "nobody", "analysts"));
    assert_int_equal(principal_grant_role(c, "alice", "admin", &err), LOCH_EINVAL); /* cycle */
    assert_int_equal(principal_grant_role(c, "ghosts", "alice", &err), LOCH_ENOROLE);
    assert_int_equal(principal_revoke_role(c, "admin", "analysts", &err), 0);
    assert_false(principal_is_admin(c, "alice"));

    assert_int_equal(principal_check_password(c, "alice", "s3cret", &err), 0);
    assert_int_equal(principal_check_password(c, "alice", "wrong", &err), LOCH_EAUTH);
    assert_int_equal(principal_check_password(c, "nobody", "s3cret", &err), LOCH_EAUTH);
    assert_int_equal(principal_check_password(c, "analysts", "", &err), LOCH_EAUTH); /* cannot log in */
    assert_int_equal(principal_set_password(c, "alice", "n3w-Passphrase-Zq7-long", &err), 0);
    assert_int_equal(principal_check_password(c, "alice", "s3cret", &err), LOCH_EAUTH);
    assert_int_equal(principal_check_password(c, "alice", "n3w-Passphrase-Zq7-long", &err), 0);
    assert_int_equal(principal_set_password(c, "nobody", "x", &err), LOCH_ENOROLE);

    struct scram_verifier v;
    assert_int_equal(principal_scram_lookup(c, "alice", &v, &err), 0);
    assert_int_equal(v.iterations, SCRAM_ITERATIONS);
    assert_int_equal(v.salt_len, SCRAM_SALT_LEN);
    assert_int_equal(principal_scram_lookup(c, "nobody", &v, &err), LOCH_EAUTH);

    /* The password is nowhere in the database file. */
    struct catalog_stmt *st;
    assert_int_equal(catalog_prepare(c,
                                     "SELECT count(*) FROM loch_principals WHERE scram LIKE '%n3w-Passphrase-Zq7-long%'"
                                     " OR scram NOT LIKE 'SCRAM-SHA-256$4096:%'",
                                     "test", &st, &err),
                     0);
    assert_int_equal(catalog_step(st, &err), 1);
    assert_int_equal(catalog_column_int64(st, 0), 0);
    catalog_finalize(st);

    assert_int_equal(principal_drop(c, "alice", PRINCIPAL_ROLE, &err), LOCH_ENOROLE); /* alice is a user */
    assert_int_equal(principal_drop(c, "alice", PRINCIPAL_USER, &err), 0);
    assert_false(principal_exists(c, "alice"));
    assert_int_equal(principal_drop(c, "admin", PRINCIPAL_USER, &err), LOCH_EINVAL);
    assert_true(principal_is_admin(c, "admin"));
}

static void test_random_password(void **state)
{
    (void)state;
    char *a = principal_random_password(), *b = principal_random_password();
    assert_int_equal(strlen(a), 24);
    assert_string_not_equal(a, b);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7677_vector),
        cmocka_unit_test(test_format_roundtrip),
        cmocka_unit_test_setup_teardown(test_users_and_roles, setup, teardown),
        cmocka_unit_test(test_random_password),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
