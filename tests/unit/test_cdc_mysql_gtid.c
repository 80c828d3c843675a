/* test_cdc_mysql_gtid.c: MySQL executed-GTID sets (src/cdc/mysql/util.c): parsing sets as
 * MySQL prints them (SHOW MASTER STATUS, the Info of SHOW BINLOG EVENTS' Previous_gtids
 * rows: ",\n" between uuids), canonical text, adding, contains (the stream's skip
 * decision), subset, the choice of a resume file when the checkpoint's file was purged,
 * and the checkpoint text that carries the set. There is no MySQL server in the
 * integration tests (they run MariaDB), so these are the MySQL GTID paths' tests. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/mysql/mysql.h"

#define U1 "3e11fa47-71ca-11e1-9e33-c80aa9429562"
#define U2 "8a94f357-aab4-11df-86ab-c80aa9429562"
#define U3 "f0000000-0000-0000-0000-000000000001"

static struct arena *A;

/* Parses text (must succeed) and returns its canonical form. */
static const char *canon(const char *text)
{
    struct mysrc_gtid_set s = {0};
    struct loch_err err;
    int rc = mysrc_gtid_set_parse(text, &s, &err);
    if (rc)
        fail_msg("parse of \"%s\" failed: %s", text, err.msg);
    const char *out = mysrc_gtid_set_format(&s, A);
    mysrc_gtid_set_free(&s);
    return out;
}

static struct mysrc_gtid gtid(const char *text)
{
    struct mysrc_gtid g;
    struct loch_err err;
    assert_int_equal(mysrc_gtid_parse(text, &g, &err), 0);
    return g;
}

static void test_parse_as_mysql_prints(void **state)
{
    (void)state;
    /* SHOW MASTER STATUS\G's Executed_Gtid_Set, uppercase uuid, uuids out of order */
    assert_string_equal(canon(U2 ":1-100,\n3E11FA47-71CA-11E1-9E33-C80AA9429562:1-5:7"),
                        U1 ":1-5:7," U2 ":1-100");
    assert_string_equal(canon("  " U1 " : 1 - 5 : 7 ,\n\t" U2 ":42\n"), U1 ":1-5:7," U2 ":42");
    /* empty sets and empty elements, as MySQL accepts them */
    assert_string_equal(canon(""), "");
    assert_string_equal(canon(" \n"), "");
    assert_string_equal(canon(",," U1 ":3,,"), U1 ":3");
    assert_string_equal(canon(U1), ""); /* a uuid with no intervals adds nothing */
    /* merging: adjacent, overlapping, out of order, repeated uuids */
    assert_string_equal(canon(U1 ":1-3:5:4"), U1 ":1-5");
    assert_string_equal(canon(U1 ":7," U1 ":1-2"), U1 ":1-2:7");
    assert_string_equal(canon(U1 ":1-10:5-20:30-40:21-29"), U1 ":1-40");
    assert_string_equal(canon(U1 ":10-20:1-3:15:2-9"), U1 ":1-20");
    assert_string_equal(canon(U1 ":9223372036854775806"), U1 ":9223372036854775806");
}

static void test_parse_errors(void **state)
{
    (void)state;
    static const char *bad[] = {
        "3e11fa47-71ca-11e1-9e33", /* short uuid */
        "3e11fa4771ca11e19e33c80aa9429562:1", /* no dashes */
        "3g11fa47-71ca-11e1-9e33-c80aa9429562:1",
        U1 ":0",
        U1 ":5-3",
        U1 ":1-",
        U1 ":",
        U1 ":-4",
        U1 ":1x",
        U1 ":1 2",
        U1 ":9223372036854775807", /* GNO_END itself */
        U1 ":99999999999999999999999",
        U1 ":1;" U2 ":1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mysrc_gtid_set s = {0};
        struct loch_err err;
        int rc = mysrc_gtid_set_parse(bad[i], &s, &err);
        if (rc != LOCH_ECORRUPT)
            fail_msg("\"%s\" gave %d, not LOCH_ECORRUPT", bad[i], rc);
        assert_int_equal(s.n_sids, 0); /* left empty */
        assert_non_null(strstr(err.msg, "offset"));
    }
    struct mysrc_gtid_set s = {0};
    struct loch_err err;
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-5," U2 ":mytag:1-3", &s, &err), LOCH_EUNSUPPORTED);
    assert_non_null(strstr(err.msg, "tagged"));
    assert_int_equal(s.n_sids, 0);
    /* a failed parse frees what an earlier one left */
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-5", &s, &err), 0);
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-", &s, &err), LOCH_ECORRUPT);
    assert_int_equal(s.n_sids, 0);

    struct mysrc_gtid g;
    assert_int_equal(mysrc_gtid_parse(U1 ":12", &g, &err), 0);
    assert_int_equal(g.seq, 12);
    assert_int_equal(g.uuid[0], 0x3e);
    assert_int_equal(g.uuid[15], 0x62);
    assert_int_equal(mysrc_gtid_parse(U1 ":12x", &g, &err), LOCH_ECORRUPT);
    assert_int_equal(mysrc_gtid_parse(U1, &g, &err), LOCH_ECORRUPT);
    assert_int_equal(mysrc_gtid_parse(U1 ":1-2", &g, &err), LOCH_ECORRUPT);
    assert_int_equal(mysrc_gtid_parse(NULL, &g, &err), LOCH_ECORRUPT);
}

static void test_add_contains(void **state)
{
    (void)state;
    struct mysrc_gtid_set s = {0};
    struct loch_err err;
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-5:7", &s, &err), 0);
    struct mysrc_gtid g = gtid(U1 ":6");
    assert_false(mysrc_gtid_set_contains(&s, &g));
    mysrc_gtid_set_add(&s, &g); /* closes the gap */
    assert_true(mysrc_gtid_set_contains(&s, &g));
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-7");
    g = gtid(U1 ":9");
    mysrc_gtid_set_add(&s, &g);
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-7:9");
    g = gtid(U1 ":8");
    mysrc_gtid_set_add(&s, &g);
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-9");
    g = gtid(U1 ":3");
    mysrc_gtid_set_add(&s, &g); /* already in: no change */
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-9");
    g = gtid(U3 ":1");
    mysrc_gtid_set_add(&s, &g); /* a new uuid after the others */
    g = gtid(U2 ":100");
    mysrc_gtid_set_add(&s, &g); /* a new uuid between them */
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-9," U2 ":100," U3 ":1");
    g = gtid(U2 ":99");
    assert_false(mysrc_gtid_set_contains(&s, &g));
    g = gtid(U2 ":101");
    assert_false(mysrc_gtid_set_contains(&s, &g));
    g = gtid(U1 ":10");
    assert_false(mysrc_gtid_set_contains(&s, &g));
    g = gtid(U1 ":1");
    assert_true(mysrc_gtid_set_contains(&s, &g));
    mysrc_gtid_set_free(&s);
    assert_false(mysrc_gtid_set_contains(&s, &g));
    assert_string_equal(mysrc_gtid_set_format(&s, A), "");
}

/* Random ranges and single adds against a bitmap, two uuids: contains, canonical text
 * and its round trip agree with the model. */
static void test_against_model(void **state)
{
    (void)state;
    enum { N = 300 };
    const char *uu[2] = {U1, U2};
    srand(7);
    for (int round = 0; round < 200; round++) {
        bool model[2][N + 2] = {{0}};
        struct mysrc_gtid_set s = {0};
        struct loch_err err;
        char text[8192] = "";
        size_t tl = 0;
        int n_ops = rand() % 12;
        for (int k = 0; k < n_ops; k++) { /* a parsed set of random ranges... */
            int u = rand() % 2, a = 1 + rand() % N, b = a + rand() % 20;
            if (b > N)
                b = N;
            tl += (size_t)snprintf(text + tl, sizeof text - tl, "%s%s:%d-%d", tl ? ",\n" : "", uu[u], a, b);
            for (int x = a; x <= b; x++)
                model[u][x] = true;
        }
        assert_int_equal(mysrc_gtid_set_parse(text, &s, &err), 0);
        for (int k = 0; k < 40; k++) { /* ...then single adds */
            int u = rand() % 2, x = 1 + rand() % N;
            char t[64];
            snprintf(t, sizeof t, "%s:%d", uu[u], x);
            struct mysrc_gtid g = gtid(t);
            mysrc_gtid_set_add(&s, &g);
            model[u][x] = true;
        }
        for (int u = 0; u < 2; u++)
            for (int x = 1; x <= N; x++) {
                char t[64];
                snprintf(t, sizeof t, "%s:%d", uu[u], x);
                struct mysrc_gtid g = gtid(t);
                if (mysrc_gtid_set_contains(&s, &g) != model[u][x])
                    fail_msg("round %d: %s contains=%d, model=%d", round, t, !model[u][x], model[u][x]);
            }
        /* the canonical text from the model */
        struct {
            char d[8192];
            size_t n;
        } want = {.n = 0};
        for (int u = 0; u < 2; u++) {
            bool any = false;
            for (int x = 1; x <= N; x++) {
                if (!model[u][x] || model[u][x - 1])
                    continue;
                int y = x;
                while (model[u][y + 1])
                    y++;
                if (!any)
                    want.n += (size_t)snprintf(want.d + want.n, sizeof want.d - want.n, "%s%s", want.n ? "," : "", uu[u]);
                any = true;
                if (y == x)
                    want.n += (size_t)snprintf(want.d + want.n, sizeof want.d - want.n, ":%d", x);
                else
                    want.n += (size_t)snprintf(want.d + want.n, sizeof want.d - want.n, ":%d-%d", x, y);
            }
        }
        const char *got = mysrc_gtid_set_format(&s, A);
        assert_string_equal(got, want.d);
        assert_string_equal(canon(got), got);
        mysrc_gtid_set_free(&s);
    }
}

static bool subset(const char *a, const char *b)
{
    struct mysrc_gtid_set x = {0}, y = {0};
    struct loch_err err;
    assert_int_equal(mysrc_gtid_set_parse(a, &x, &err), 0);
    assert_int_equal(mysrc_gtid_set_parse(b, &y, &err), 0);
    bool r = mysrc_gtid_set_subset(&x, &y);
    mysrc_gtid_set_free(&x);
    mysrc_gtid_set_free(&y);
    return r;
}

static void test_subset(void **state)
{
    (void)state;
    assert_true(subset("", ""));
    assert_true(subset("", U1 ":1-5"));
    assert_false(subset(U1 ":1", ""));
    assert_true(subset(U1 ":1-5", U1 ":1-5"));
    assert_true(subset(U1 ":2-4", U1 ":1-5"));
    assert_false(subset(U1 ":1-6", U1 ":1-5"));
    assert_false(subset(U1 ":1-5", U1 ":1-4:6-9")); /* the gap at 5 */
    assert_true(subset(U1 ":1-4:7", U1 ":1-4:6-9"));
    assert_false(subset(U1 ":1-4:10", U1 ":1-4:6-9"));
    assert_true(subset(U1 ":1-5", U1 ":1-5," U2 ":1-100"));
    assert_false(subset(U1 ":1-5," U2 ":1", U1 ":1-5"));
    assert_false(subset(U1 ":1-5," U2 ":101", U1 ":1-5," U2 ":1-100"));
    assert_true(subset(U1 ":1-5," U2 ":1-100", U2 ":1-200," U1 ":1-9," U3 ":1"));
    assert_true(subset(U1, "")); /* a uuid without numbers is nothing */
}

static void test_resume_file(void **state)
{
    (void)state;
    struct mysrc_gtid_set s = {0};
    struct loch_err err;
    /* the lake has U1:1-120 and U2:1-30; the checkpoint's binlog.000003 was purged */
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-120," U2 ":1-30", &s, &err), 0);
    struct mysrc_binlog_file files[] = {
        {"binlog.000004", U1 ":1-100,\n" U2 ":1-30"},
        {"binlog.000005", U1 ":1-118,\n" U2 ":1-30"},
        {"binlog.000006", U1 ":1-125,\n" U2 ":1-30"}, /* has transactions the lake lacks */
        {"binlog.000007", U1 ":1-190,\n" U2 ":1-31"},
    };
    size_t k = 99;
    assert_int_equal(mysrc_gtid_resume_file(files, 4, &s, &k, &err), 0);
    assert_int_equal(k, 1); /* binlog.000005: U1:119-120 there are skipped, 121.. applied */
    /* the newest file qualifies: start there */
    assert_int_equal(mysrc_gtid_resume_file(files, 2, &s, &k, &err), 0);
    assert_int_equal(k, 1);
    /* a fresh server's first file has an empty Previous_gtids */
    struct mysrc_binlog_file fresh[] = {{"binlog.000001", ""}, {"binlog.000002", U1 ":1-500"}};
    assert_int_equal(mysrc_gtid_resume_file(fresh, 2, &s, &k, &err), 0);
    assert_int_equal(k, 0);
    /* even the oldest file starts after GTIDs the lake lacks: refused */
    k = 99;
    assert_int_equal(mysrc_gtid_resume_file(files + 2, 2, &s, &k, &err), LOCH_ECONFIG);
    assert_int_equal(k, 99);
    assert_non_null(strstr(err.msg, "binlog.000006"));
    assert_non_null(strstr(err.msg, "purged"));
    /* a gap in the lake's set that a file's Previous_gtids covers: refused too */
    struct mysrc_gtid_set gap = {0};
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-50:52-120," U2 ":1-30", &gap, &err), 0);
    assert_int_equal(mysrc_gtid_resume_file(files, 4, &gap, &k, &err), LOCH_ECONFIG);
    mysrc_gtid_set_free(&gap);
    /* a uuid the lake never saw */
    struct mysrc_binlog_file other[] = {{"binlog.000010", U1 ":1-100,\n" U3 ":1"}};
    assert_int_equal(mysrc_gtid_resume_file(other, 1, &s, &k, &err), LOCH_ECONFIG);
    /* no files, a file without PREVIOUS_GTIDS, an unreadable set */
    assert_int_equal(mysrc_gtid_resume_file(files, 0, &s, &k, &err), LOCH_ECONFIG);
    struct mysrc_binlog_file nogtids[] = {{"binlog.000004", NULL}};
    assert_int_equal(mysrc_gtid_resume_file(nogtids, 1, &s, &k, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "binlog.000004"));
    struct mysrc_binlog_file broken[] = {{"binlog.000004", U1 ":1-"}};
    assert_int_equal(mysrc_gtid_resume_file(broken, 1, &s, &k, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "binlog.000004"));
    mysrc_gtid_set_free(&s);
}

/* The stream from the chosen file skips the groups whose GTID the lake's set has and
 * applies the rest, adding them to the set. */
static void test_skip_decision(void **state)
{
    (void)state;
    struct mysrc_gtid_set s = {0};
    struct loch_err err;
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-120," U2 ":1-30", &s, &err), 0);
    /* binlog.000005's groups, in order (Previous_gtids U1:1-118, U2:1-30) */
    const char *stream[] = {U1 ":119", U1 ":120", U2 ":31", U1 ":121", U1 ":122"};
    const bool want_skip[] = {true, true, false, false, false};
    int skipped = 0;
    for (size_t i = 0; i < 5; i++) {
        struct mysrc_gtid g = gtid(stream[i]);
        bool skip = mysrc_gtid_set_contains(&s, &g);
        if (skip != want_skip[i])
            fail_msg("%s: skip=%d", stream[i], skip);
        if (skip)
            skipped++;
        else
            mysrc_gtid_set_add(&s, &g);
    }
    assert_int_equal(skipped, 2);
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-122," U2 ":1-31");
    mysrc_gtid_set_free(&s);
}

static void test_checkpoint_text(void **state)
{
    (void)state;
    struct mysrc_pos *p = malloc(sizeof *p);
    struct loch_err err;
    assert_int_equal(mysrc_pos_parse("binlog.000009:1234 gtid_set=" U1 ":1-5:7," U2 ":1-100", p, &err), 0);
    assert_string_equal(p->file, "binlog.000009");
    assert_int_equal(p->pos, 1234);
    assert_true(p->gtid_is_set);
    assert_string_equal(p->gtid, U1 ":1-5:7," U2 ":1-100");
    assert_string_equal(mysrc_pos_format(p, A), "binlog.000009:1234 gtid_set=" U1 ":1-5:7," U2 ":1-100");
    /* the last-GTID form of earlier checkpoints is not taken for a set */
    assert_int_equal(mysrc_pos_parse("binlog.000009:1234 gtid=" U1 ":7", p, &err), 0);
    assert_false(p->gtid_is_set);
    assert_string_equal(p->gtid, U1 ":7");
    assert_string_equal(mysrc_pos_format(p, A), "binlog.000009:1234 gtid=" U1 ":7");
    /* MariaDB's form is unchanged */
    assert_int_equal(mysrc_pos_parse("mariadb-bin.000002:385 gtid=0-1-5,1-1-9", p, &err), 0);
    assert_false(p->gtid_is_set);
    assert_string_equal(mysrc_pos_format(p, A), "mariadb-bin.000002:385 gtid=0-1-5,1-1-9");
    /* a set as long as a checkpoint holds is kept whole; one byte more is refused */
    size_t room = MYSRC_GTID_TEXT_MAX - 1, pre = strlen("b.000001:4 gtid_set=");
    char *t = malloc(pre + room + 2);
    memcpy(t, "b.000001:4 gtid_set=", pre);
    memset(t + pre, '7', room);
    t[pre + room] = 0;
    assert_int_equal(mysrc_pos_parse(t, p, &err), 0);
    assert_int_equal(strlen(p->gtid), room);
    t[pre + room] = '7';
    t[pre + room + 1] = 0;
    assert_int_equal(mysrc_pos_parse(t, p, &err), LOCH_ECORRUPT);
    assert_non_null(strstr(err.msg, "longer"));
    assert_false(p->gtid_is_set);
    free(t);
    free(p);
}

static void le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The binary PREVIOUS_GTIDS body the stream delivers at a file's start, and the union
 * that completes the executed set with it. */
static void test_previous_gtids_event(void **state)
{
    (void)state;
    uint8_t b[8 + 2 * 24 + 3 * 16];
    size_t n = 0;
    static const uint8_t sid1[16] = {0x3e, 0x11, 0xfa, 0x47, 0x71, 0xca, 0x11, 0xe1,
                                     0x9e, 0x33, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62};
    static const uint8_t sid2[16] = {0x8a, 0x94, 0xf3, 0x57, 0xaa, 0xb4, 0x11, 0xdf,
                                     0x86, 0xab, 0xc8, 0x0a, 0xa9, 0x42, 0x95, 0x62};
    le64(b + n, 2), n += 8;
    memcpy(b + n, sid1, 16), n += 16;
    le64(b + n, 2), n += 8;
    le64(b + n, 1), n += 8; /* [1, 6) = 1-5 */
    le64(b + n, 6), n += 8;
    le64(b + n, 7), n += 8; /* [7, 8) = 7 */
    le64(b + n, 8), n += 8;
    memcpy(b + n, sid2, 16), n += 16;
    le64(b + n, 1), n += 8;
    le64(b + n, 1), n += 8; /* [1, 101) */
    le64(b + n, 101), n += 8;
    assert_int_equal(n, sizeof b);
    const char *text;
    struct loch_err err;
    assert_int_equal(binlog_mysql_previous_gtids_decode(b, n, A, &text, &err), 0);
    assert_string_equal(text, U1 ":1-5:7," U2 ":1-100");
    /* every prefix is refused without a read past it (ASan) */
    for (size_t k = 0; k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, b, k);
        if (binlog_mysql_previous_gtids_decode(cut, k, A, &text, &err) != LOCH_ECORRUPT)
            fail_msg("prefix of %zu bytes accepted", k);
        free(cut);
    }
    /* an empty set; a huge count; an empty interval; the tagged format */
    uint8_t z[8] = {0};
    assert_int_equal(binlog_mysql_previous_gtids_decode(z, 8, A, &text, &err), 0);
    assert_string_equal(text, "");
    uint8_t c[sizeof b];
    memcpy(c, b, n);
    le64(c, 1u << 30);
    assert_int_equal(binlog_mysql_previous_gtids_decode(c, n, A, &text, &err), LOCH_ECORRUPT);
    memcpy(c, b, n);
    le64(c + 8 + 16 + 8 + 8, 1); /* [1, 1) */
    assert_int_equal(binlog_mysql_previous_gtids_decode(c, n, A, &text, &err), LOCH_ECORRUPT);
    memcpy(c, b, n);
    c[7] = 1;
    assert_int_equal(binlog_mysql_previous_gtids_decode(c, n, A, &text, &err), LOCH_EUNSUPPORTED);

    /* a set read a commit early (U1:6 missing) is completed by the union */
    struct mysrc_gtid_set s = {0}, prev = {0};
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-5:8-9," U3 ":4", &s, &err), 0);
    assert_int_equal(mysrc_gtid_set_parse(U1 ":1-7," U2 ":1-100", &prev, &err), 0);
    mysrc_gtid_set_union(&s, &prev);
    assert_string_equal(mysrc_gtid_set_format(&s, A), U1 ":1-9," U2 ":1-100," U3 ":4");
    assert_true(mysrc_gtid_set_subset(&prev, &s));
    mysrc_gtid_set_free(&s);
    mysrc_gtid_set_free(&prev);
}

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_as_mysql_prints),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_add_contains),
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_resume_file),
        cmocka_unit_test(test_skip_decision),
        cmocka_unit_test(test_checkpoint_text),
        cmocka_unit_test(test_previous_gtids_event),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
