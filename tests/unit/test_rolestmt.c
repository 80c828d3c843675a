/* test_rolestmt.c: the user/role statement recogniser (rolestmt.h) on lex.h tokens,
 * password redaction, and bearer-token hashing and life cycle (token.h). Not for running
 * statements through a session (tests/integration). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <openssl/sha.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "access/principal.h"
#include "access/token.h"
#include "query/rolestmt.h"

struct parsed {
    struct arena *a;
    struct role_stmt r;
    bool matched;
    int rc;
    struct loch_err err;
};

static struct parsed parse(const char *sql)
{
    struct parsed p = {.a = arena_new()};
    struct stmt *st;
    size_t n, bad;
    assert_int_equal(lex_split(p.a, sql, &st, &n, &bad), 0);
    assert_int_equal(n, 1);
    p.rc = rolestmt_parse(p.a, &st[0], &p.r, &p.matched, &p.err);
    return p;
}

static void test_create_user(void **state)
{
    (void)state;
    struct parsed p = parse("CREATE USER Alice WITH PASSWORD 'it''s secret'");
    assert_true(p.matched);
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.op, ROLE_CREATE);
    assert_true(p.r.is_user);
    assert_int_equal(p.r.n_names, 1);
    assert_string_equal(p.r.names[0], "alice"); /* bare names fold */
    assert_true(p.r.set_password);
    assert_string_equal(p.r.password, "it's secret");
    assert_int_equal(p.r.login, -1);
    arena_free(p.a);

    p = parse("create role \"Ops Team\" nologin in role admin, auditors");
    assert_int_equal(p.rc, 0);
    assert_false(p.r.is_user);
    assert_string_equal(p.r.names[0], "Ops Team");
    assert_int_equal(p.r.login, 0);
    assert_int_equal(p.r.n_members, 2);
    assert_string_equal(p.r.members[1], "auditors");
    assert_false(p.r.set_password);
    arena_free(p.a);

    p = parse("CREATE USER bob LOGIN ENCRYPTED PASSWORD $$dollar'pw$$ NOSUPERUSER");
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.r.password, "dollar'pw");
    assert_int_equal(p.r.login, 1);
    arena_free(p.a);

    p = parse("ALTER ROLE bob WITH PASSWORD NULL");
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.op, ROLE_ALTER);
    assert_true(p.r.set_password);
    assert_null(p.r.password);
    arena_free(p.a);
}

static void test_drop_grant_revoke(void **state)
{
    (void)state;
    struct parsed p = parse("DROP USER IF EXISTS a, \"B\"");
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.op, ROLE_DROP);
    assert_true(p.r.if_exists);
    assert_int_equal(p.r.n_names, 2);
    assert_string_equal(p.r.names[1], "B");
    arena_free(p.a);

    p = parse("GRANT admin, ops TO alice, bob");
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.op, ROLE_GRANT);
    assert_int_equal(p.r.n_names, 2);
    assert_int_equal(p.r.n_members, 2);
    assert_string_equal(p.r.members[0], "alice");
    arena_free(p.a);

    p = parse("revoke ops from bob");
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.r.op, ROLE_REVOKE);
    arena_free(p.a);
}

static void test_errors_and_non_matches(void **state)
{
    (void)state;
    static const struct {
        const char *sql;
        int rc;
    } bad[] = {
        {"CREATE USER", LOCH_ESYNTAX},
        {"CREATE USER x WITH PASSWORD 42", LOCH_ESYNTAX},
        {"CREATE USER x SUPERUSER", LOCH_EUNSUPPORTED},
        {"ALTER USER x RENAME TO y", LOCH_EUNSUPPORTED},
        {"ALTER USER x", LOCH_ESYNTAX},
        {"GRANT SELECT ON core.t TO x", LOCH_EUNSUPPORTED},
        {"GRANT a TO b WITH ADMIN OPTION", LOCH_EUNSUPPORTED},
        {"GRANT a b", LOCH_ESYNTAX},
        {"REVOKE a FROM", LOCH_ESYNTAX},
        {"DROP ROLE a b", LOCH_ESYNTAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct parsed p = parse(bad[i].sql);
        assert_true(p.matched);
        if (p.rc != bad[i].rc)
            fail_msg("%s: got %d (%s), want %d", bad[i].sql, p.rc, p.err.msg, bad[i].rc);
        arena_free(p.a);
    }
    const char *other[] = {"SELECT 1", "CREATE TABLE a.b (x int)", "DROP TABLE a.b", "CREATE USER MAPPING FOR x",
                           "ALTER TABLE a.b ADD COLUMN c int", NULL};
    for (int i = 0; other[i]; i++) {
        struct parsed p = parse(other[i]);
        assert_false(p.matched);
        assert_int_equal(p.rc, 0);
        arena_free(p.a);
    }
}

static void test_redact(void **state)
{
    (void)state;
    char *r = rolestmt_redact("CREATE USER a WITH PASSWORD 'p1'; SELECT 'PASSWORD' AS x; ALTER USER b PASSWORD $$p2$$");
    assert_null(strstr(r, "p1"));
    assert_null(strstr(r, "p2"));
    assert_non_null(strstr(r, "CREATE USER a WITH PASSWORD '********'"));
    assert_non_null(strstr(r, "SELECT 'PASSWORD' AS x"));
    assert_non_null(strstr(r, "ALTER USER b PASSWORD '********'"));
    free(r);
    r = rolestmt_redact("SELECT 1");
    assert_string_equal(r, "SELECT 1");
    free(r);
    r = rolestmt_redact("CREATE USER a PASSWORD 'unterminated");
    assert_null(strstr(r, "unterminated"));
    free(r);
}

static void test_token_hash(void **state)
{
    (void)state;
    char hex[65];
    token_hash_hex("abc", hex); /* FIPS 180-2 SHA-256 example */
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_token_lifecycle(void **state)
{
    (void)state;
    char dir[] = "/tmp/loch-token-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/catalog.db", dir);
    struct catalog *c;
    struct loch_err err;
    assert_int_equal(catalog_open(path, true, &c, &err), 0);
    assert_int_equal(principal_create(c, "alice", PRINCIPAL_USER, true, "pw", &err), 0);
    assert_int_equal(principal_create(c, "ops", PRINCIPAL_ROLE, false, NULL, &err), 0);
    char *tok, *id, *user;
    assert_int_equal(token_create(c, "nobody", 30, 365, &tok, &id, &err), LOCH_ENOROLE);
    assert_int_equal(token_create(c, "ops", 30, 365, &tok, &id, &err), LOCH_EINVAL); /* cannot log in */
    /* tokens always expire: no 0 (never), nothing past the maximum, which the error names */
    assert_int_equal(token_create(c, "alice", 0, 365, &tok, &id, &err), LOCH_EINVAL);
    assert_non_null(strstr(err.msg, "1 to 365 days"));
    assert_int_equal(token_create(c, "alice", 366, 365, &tok, &id, &err), LOCH_EINVAL);
    assert_int_equal(token_create(c, "alice", -1, 365, &tok, &id, &err), LOCH_EINVAL);
    assert_int_equal(token_create(c, "alice", 30, 365, &tok, &id, &err), 0);
    assert_int_equal(strlen(tok), strlen(TOKEN_PREFIX) + 43);
    char hex[65];
    token_hash_hex(tok, hex);
    assert_int_equal(strncmp(hex, id, 12), 0);
    assert_int_equal(token_verify(c, tok, &user, &err), 0);
    assert_string_equal(user, "alice");
    free(user);
    tok[strlen(tok) - 1] ^= 1;
    assert_int_equal(token_verify(c, tok, &user, &err), LOCH_EAUTH);
    assert_null(user);
    assert_int_equal(token_verify(c, "garbage", &user, &err), LOCH_EAUTH);
    tok[strlen(tok) - 1] ^= 1;
    struct arena *a = arena_new();
    struct token_info *list;
    size_t n;
    assert_int_equal(token_list(c, "alice", a, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(list[0].id, id);
    assert_true(list[0].last_used_at > 0);
    assert_int_equal(list[0].expires_at - list[0].created_at, 30 * 86400);
    /* a token stored before tokens always expired (expires_at 0) lives
     * TOKEN_LEGACY_EXPIRY_DAYS from its creation: one that old no longer logs in */
    sqlite3 *db = catalog_db(c);
    char *sql = sqlite3_mprintf("UPDATE loch_tokens SET expires_at = 0, created_at = created_at - %d WHERE id = '%q'",
                                (TOKEN_LEGACY_EXPIRY_DAYS + 1) * 86400, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    assert_int_equal(token_verify(c, tok, &user, &err), LOCH_EAUTH);
    assert_non_null(strstr(err.msg, "expired"));
    sql = sqlite3_mprintf("UPDATE loch_tokens SET created_at = created_at + %d WHERE id = '%q'", 2 * 86400, id);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_free(sql);
    assert_int_equal(token_verify(c, tok, &user, &err), 0);
    free(user);
    assert_int_equal(token_revoke(c, "12", &err), LOCH_EINVAL);
    assert_int_equal(token_revoke(c, id, &err), 0);
    assert_int_equal(token_verify(c, tok, &user, &err), LOCH_EAUTH);
    assert_int_equal(token_revoke(c, id, &err), LOCH_ENOENT);
    /* dropping a user drops its tokens */
    char *tok2, *id2;
    assert_int_equal(token_create(c, "alice", 1, 365, &tok2, &id2, &err), 0);
    assert_int_equal(principal_drop(c, "alice", PRINCIPAL_USER, &err), 0);
    assert_int_equal(token_verify(c, tok2, &user, &err), LOCH_EAUTH);
    assert_int_equal(token_list(c, NULL, a, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    arena_free(a);
    free(tok);
    free(id);
    free(tok2);
    free(id2);
    catalog_close(c);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_user),       cmocka_unit_test(test_drop_grant_revoke),
        cmocka_unit_test(test_errors_and_non_matches), cmocka_unit_test(test_redact),
        cmocka_unit_test(test_token_hash),        cmocka_unit_test(test_token_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
