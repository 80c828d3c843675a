/* test_pgwire.c: the pgwire message decoders and encoders (well-formed and hostile
 * bytes), the server side of SCRAM-SHA-256 against RFC 7677's example exchange, and the
 * value encoders for the binary and text forms clients read. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/principal.h"
#include "server/pgwire_msg.h"
#include "server/pgwire_types.h"
#include "server/scram.h"

static struct arena *A;

static int setup(void **state)
{
    (void)state;
    A = arena_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    arena_free(A);
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void test_startup_v3(void **state)
{
    (void)state;
    uint8_t b[64];
    put32(b, PGWIRE_PROTO_V3);
    static const char params[] = "user\0alice\0database\0lake\0\0";
    memcpy(b + 4, params, sizeof params - 1);
    struct pgwire_startup s;
    struct loch_err err;
    assert_int_equal(pgwire_parse_startup(b, 4 + sizeof params - 1, A, &s, &err), 0);
    assert_int_equal(s.code, PGWIRE_PROTO_V3);
    assert_string_equal(pgwire_startup_get(&s, "user"), "alice");
    assert_string_equal(pgwire_startup_get(&s, "database"), "lake");
    assert_null(pgwire_startup_get(&s, "options"));
    /* no terminating empty name */
    assert_int_equal(pgwire_parse_startup(b, 4 + sizeof params - 2, A, &s, &err), LOCH_EPROTO);
    /* a name without a value */
    static const char half[] = "user\0";
    memcpy(b + 4, half, sizeof half - 1);
    assert_int_equal(pgwire_parse_startup(b, 4 + sizeof half - 1, A, &s, &err), LOCH_EPROTO);
    /* protocol 2.0 */
    put32(b, 2u << 16);
    assert_int_equal(pgwire_parse_startup(b, 4, A, &s, &err), LOCH_EPROTO);
    assert_non_null(strstr(err.msg, "unsupported frontend protocol 2.0"));
}

static void test_startup_requests(void **state)
{
    (void)state;
    uint8_t b[16];
    struct pgwire_startup s;
    struct loch_err err;
    put32(b, PGWIRE_SSL_REQUEST);
    assert_int_equal(pgwire_parse_startup(b, 4, A, &s, &err), 0);
    assert_int_equal(s.code, PGWIRE_SSL_REQUEST);
    assert_int_equal(pgwire_parse_startup(b, 8, A, &s, &err), LOCH_EPROTO); /* trailing bytes */
    put32(b, PGWIRE_CANCEL_REQUEST);
    put32(b + 4, 1234);
    put32(b + 8, 0xdeadbeef);
    assert_int_equal(pgwire_parse_startup(b, 12, A, &s, &err), 0);
    assert_int_equal(s.cancel_pid, 1234);
    assert_int_equal((uint32_t)s.cancel_key, 0xdeadbeef);
    assert_int_equal(pgwire_parse_startup(b, 10, A, &s, &err), LOCH_EPROTO);
    assert_int_equal(pgwire_parse_startup(b, 3, A, &s, &err), LOCH_EPROTO);
}

static void test_parse_bind_execute(void **state)
{
    (void)state;
    struct pgwire_msg m;
    struct loch_err err;
    static const uint8_t parse[] = "s1\0SELECT $1\0\0\x01\0\0\0\x17";
    assert_int_equal(pgwire_parse('P', parse, sizeof parse - 1, A, &m, &err), 0);
    assert_string_equal(m.u.parse.name, "s1");
    assert_string_equal(m.u.parse.sql, "SELECT $1");
    assert_int_equal(m.u.parse.n_types, 1);
    assert_int_equal(m.u.parse.types[0], 23);
    /* a type count larger than the message */
    static const uint8_t parse_bad[] = "s1\0SELECT $1\0\xff\xff\0\0\0\x17";
    assert_int_equal(pgwire_parse('P', parse_bad, sizeof parse_bad - 1, A, &m, &err), LOCH_EPROTO);

    /* portal "", statement "s1", 1 format (binary), 2 params (NULL, "42"), 1 result format */
    static const uint8_t bind[] = "\0s1\0\0\x01\0\x01\0\x02\xff\xff\xff\xff\0\0\0\x02"
                                  "42\0\x01\0\x01";
    assert_int_equal(pgwire_parse('B', bind, sizeof bind - 1, A, &m, &err), 0);
    assert_int_equal(m.u.bind.n_params, 2);
    assert_null(m.u.bind.params[0].data);
    assert_int_equal(m.u.bind.params[1].len, 2);
    assert_memory_equal(m.u.bind.params[1].data, "42", 2);
    assert_int_equal(m.u.bind.n_rfmts, 1);
    assert_int_equal(m.u.bind.rfmts[0], 1);
    /* a parameter length that points past the end: the length lies */
    static const uint8_t bind_lie[] = "\0s1\0\0\0\0\x01\0\0\x01\xf4" "42\0\0";
    assert_int_equal(pgwire_parse('B', bind_lie, sizeof bind_lie - 1, A, &m, &err), LOCH_EPROTO);
    /* a negative length other than -1 */
    static const uint8_t bind_neg[] = "\0s1\0\0\0\0\x01\xff\xff\xff\xfe\0\0";
    assert_int_equal(pgwire_parse('B', bind_neg, sizeof bind_neg - 1, A, &m, &err), LOCH_EPROTO);
    /* a format code that is neither text nor binary */
    static const uint8_t bind_fmt[] = "\0s1\0\0\x01\0\x07\0\0\0\0";
    assert_int_equal(pgwire_parse('B', bind_fmt, sizeof bind_fmt - 1, A, &m, &err), LOCH_EPROTO);

    static const uint8_t exec[] = "p\0\0\0\0\x0a";
    assert_int_equal(pgwire_parse('E', exec, sizeof exec - 1, A, &m, &err), 0);
    assert_string_equal(m.u.execute.portal, "p");
    assert_int_equal(m.u.execute.max_rows, 10);
    assert_int_equal(pgwire_parse('E', exec, 4, A, &m, &err), LOCH_EPROTO); /* truncated */
}

static void test_simple_and_unknown(void **state)
{
    (void)state;
    struct pgwire_msg m;
    struct loch_err err;
    assert_int_equal(pgwire_parse('Q', (const uint8_t *)"SELECT 1", 9, A, &m, &err), 0);
    assert_string_equal(m.u.query.sql, "SELECT 1");
    assert_int_equal(pgwire_parse('Q', (const uint8_t *)"SELECT 1", 8, A, &m, &err), LOCH_EPROTO);
    /* bytes after the query string */
    assert_int_equal(pgwire_parse('Q', (const uint8_t *)"A\0B", 4, A, &m, &err), LOCH_EPROTO);
    assert_int_equal(pgwire_parse('z', NULL, 0, A, &m, &err), LOCH_EPROTO);
    assert_non_null(strstr(err.msg, "unknown message type 'z'"));
    assert_int_equal(pgwire_parse('S', NULL, 0, A, &m, &err), 0);
    assert_int_equal(pgwire_parse('S', (const uint8_t *)"x", 1, A, &m, &err), LOCH_EPROTO);
    assert_int_equal(pgwire_parse('D', (const uint8_t *)"Xs\0", 3, A, &m, &err), LOCH_EPROTO);
    assert_int_equal(pgwire_parse('D', (const uint8_t *)"Ss\0", 3, A, &m, &err), 0);
    assert_int_equal(m.u.describe.kind, 'S');
}

static void test_encoders(void **state)
{
    (void)state;
    struct buf b = {0};
    pgwire_error(&b, false, "ERROR", "42601", "syntax error", NULL, "fix it", 12);
    assert_int_equal(b.data[0], 'E');
    uint32_t len = ((uint8_t)b.data[1] << 24) | ((uint8_t)b.data[2] << 16) | ((uint8_t)b.data[3] << 8) |
                   (uint8_t)b.data[4];
    assert_int_equal(len, b.len - 1);
    assert_non_null(memmem(b.data, b.len, "C42601", 7));
    assert_non_null(memmem(b.data, b.len, "P12", 4));
    assert_int_equal(b.data[b.len - 1], '\0');
    buf_free(&b);
}

/* numeric_send of 12345.678 (DECIMAL(18,3)): digits 1, 2345, 6780; weight 1; dscale 3. */
static void test_numeric_binary(void **state)
{
    (void)state;
    struct engine_col c = {"n", ENGINE_T_DECIMAL, 18, 3};
    struct engine_val v = {0};
    v.i = 12345678;
    struct buf b = {0};
    pgwire_encode_binary(&b, &c, &v);
    static const uint8_t want[] = {0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c};
    assert_int_equal(b.len, sizeof want);
    assert_memory_equal(b.data, want, sizeof want);
    buf_reset(&b);
    pgwire_encode_text(&b, &c, &v);
    assert_string_equal(b.data, "12345.678");
    /* -0.05 as DECIMAL(10,2): one digit 500 at weight -1, negative */
    struct engine_col c2 = {"n", ENGINE_T_DECIMAL, 10, 2};
    v.i = -5;
    buf_reset(&b);
    pgwire_encode_binary(&b, &c2, &v);
    static const uint8_t want2[] = {0, 1, 0xff, 0xff, 0x40, 0, 0, 2, 0x01, 0xf4};
    assert_memory_equal(b.data, want2, sizeof want2);
    buf_reset(&b);
    pgwire_encode_text(&b, &c2, &v);
    assert_string_equal(b.data, "-0.05");
    /* zero */
    v.i = 0;
    buf_reset(&b);
    pgwire_encode_binary(&b, &c2, &v);
    static const uint8_t want3[] = {0, 0, 0, 0, 0, 0, 0, 2};
    assert_memory_equal(b.data, want3, sizeof want3);
    buf_free(&b);
}

static void test_dates_text(void **state)
{
    (void)state;
    struct buf b = {0};
    struct engine_col d = {"d", ENGINE_T_DATE, 0, 0};
    struct engine_val v = {0};
    v.i = 19782; /* 2024-02-29 */
    pgwire_encode_text(&b, &d, &v);
    assert_string_equal(b.data, "2024-02-29");
    struct engine_col ts = {"t", ENGINE_T_TIMESTAMPTZ, 0, 0};
    v.i = -1; /* one microsecond before the epoch */
    buf_reset(&b);
    pgwire_encode_text(&b, &ts, &v);
    assert_string_equal(b.data, "1969-12-31 23:59:59.999999+00");
    v.i = INT64_MAX;
    buf_reset(&b);
    pgwire_encode_text(&b, &ts, &v);
    assert_string_equal(b.data, "infinity");
    buf_free(&b);
}

static size_t unb64(const char *s, unsigned char *out) { return (size_t)scram_b64_decode(s, strlen(s), out); }

/* RFC 7677 section 3: user "user", password "pencil", the RFC's nonces: the server must
 * send the RFC's server-first, accept the RFC's proof and answer the RFC's signature. */
static void test_scram_rfc7677(void **state)
{
    (void)state;
    unsigned char salt[32];
    size_t sl = unb64("W22ZaJ0SNY7soEsUEjb6gQ==", salt);
    struct scram_verifier v;
    principal_scram_make("pencil", salt, sl, 4096, &v);
    struct scram_state st;
    struct buf out = {0};
    struct loch_err err;
    const char *cf = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    assert_int_equal(scram_server_first_nonce(&st, &v, "user", cf, strlen(cf), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", &out,
                                              &err), 0);
    assert_string_equal(out.data, "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,"
                                  "i=4096");
    buf_reset(&out);
    const char *fin = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
                      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    assert_int_equal(scram_server_final(&st, fin, strlen(fin), &out, &err), 0);
    assert_string_equal(out.data, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    scram_state_free(&st);

    /* the same exchange against another password's verifier fails at the proof */
    struct scram_verifier other;
    principal_scram_make("pencil2", salt, sl, 4096, &other);
    buf_reset(&out);
    assert_int_equal(scram_server_first_nonce(&st, &other, "user", cf, strlen(cf), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                                              &out, &err), 0);
    buf_reset(&out);
    assert_int_equal(scram_server_final(&st, fin, strlen(fin), &out, &err), LOCH_EAUTH);
    scram_state_free(&st);

    /* an unknown user: the exchange runs with a stand-in and fails the same way */
    buf_reset(&out);
    assert_int_equal(scram_server_first_nonce(&st, NULL, "ghost", cf, strlen(cf), "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
                                              &out, &err), 0);
    assert_non_null(strstr(out.data, ",i=4096"));
    buf_reset(&out);
    assert_int_equal(scram_server_final(&st, fin, strlen(fin), &out, &err), LOCH_EAUTH);
    scram_state_free(&st);

    /* a nonce that is not the server's, and channel binding, are protocol errors */
    buf_reset(&out);
    scram_server_first_nonce(&st, &v, "user", cf, strlen(cf), "XYZ", &out, &err);
    assert_int_equal(scram_server_final(&st, fin, strlen(fin), &out, &err), LOCH_EPROTO);
    scram_state_free(&st);
    const char *cb = "p=tls-server-end-point,,n=user,r=abc";
    assert_int_equal(scram_server_first(&st, &v, "user", cb, strlen(cb), &out, &err), LOCH_EPROTO);
    scram_state_free(&st);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_startup_v3),      cmocka_unit_test(test_startup_requests),
        cmocka_unit_test(test_parse_bind_execute), cmocka_unit_test(test_simple_and_unknown),
        cmocka_unit_test(test_encoders),        cmocka_unit_test(test_numeric_binary),
        cmocka_unit_test(test_dates_text),      cmocka_unit_test(test_scram_rfc7677),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
