/* test_config.c: loch.yaml loading: every key, defaults, relative paths, and the error
 * for each kind of mistake (file:line + what was expected). Not for CLI flag handling. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/mem.h"
#include "config.h"

struct fixture {
    char dir[64];
    char *path;
    struct arena *a;
};

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(p);
}

static int setup(void **state)
{
    struct fixture *fx = xcalloc(1, sizeof *fx);
    strcpy(fx->dir, "/tmp/loch-cfg-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    fx->path = xasprintf("%s/loch.yaml", fx->dir);
    fx->a = arena_new();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    arena_free(fx->a);
    free(fx->path);
    free(fx);
    return 0;
}

static void write_text(struct fixture *fx, const char *text)
{
    FILE *f = fopen(fx->path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_all_keys(void **state)
{
    struct fixture *fx = *state;
    write_text(fx, "# a full config\n"
                   "warehouse: ./lake\n"
                   "state: state/../st\n"
                   "server:\n"
                   "  sql_listen: 0.0.0.0:6543\n"
                   "  http_listen: \"[::1]:9000\"\n"
                   "  tls:\n"
                   "    mode: required\n"
                   "    cert: certs/s.crt\n"
                   "    key: /etc/loch/s.key\n"
                   "query:\n"
                   "  timeout_ms: 30000\n"
                   "  memory_mb: 2048\n"
                   "  threads: 4\n"
                   "flush_interval_ms: 250\n"
                   "sources:\n"
                   "  - name: core\n"
                   "    type: postgres\n"
                   "    url: postgresql://loch@db1/core\n"
                   "    password_env: CORE_PW\n"
                   "    tables: [\"public.*\", \"ledger.entries\"]\n"
                   "    exclude:\n"
                   "      - public.tmp_*\n"
                   "    slot: s1\n"
                   "    publication: p1\n"
                   "  - name: cards\n"
                   "    type: mysql\n"
                   "    url: mysql://loch@db2/cards\n"
                   "    server_id: 4242\n");
    struct loch_config *c;
    struct loch_err err;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    char *want;
    assert_string_equal(c->path, fx->path);
    want = xasprintf("%s/lake", fx->dir);
    assert_string_equal(c->warehouse, want);
    free(want);
    want = xasprintf("%s/st", fx->dir);
    assert_string_equal(c->state_dir, want);
    free(want);
    assert_string_equal(c->sql_listen, "0.0.0.0:6543");
    assert_string_equal(c->http_listen, "[::1]:9000");
    assert_string_equal(c->tls_mode, "required");
    want = xasprintf("%s/certs/s.crt", fx->dir);
    assert_string_equal(c->tls_cert, want);
    free(want);
    assert_string_equal(c->tls_key, "/etc/loch/s.key");
    assert_int_equal(c->query_timeout_ms, 30000);
    assert_int_equal(c->query_memory_mb, 2048);
    assert_int_equal(c->threads, 4);
    assert_int_equal(c->flush_interval_ms, 250);
    assert_int_equal(c->n_sources, 2);
    struct loch_source *s = &c->sources[0];
    assert_string_equal(s->name, "core");
    assert_string_equal(s->type, "postgres");
    assert_string_equal(s->url, "postgresql://loch@db1/core");
    assert_string_equal(s->password_env, "CORE_PW");
    assert_int_equal(s->n_tables, 2);
    assert_string_equal(s->tables[1], "ledger.entries");
    assert_int_equal(s->n_exclude, 1);
    assert_string_equal(s->exclude[0], "public.tmp_*");
    assert_string_equal(s->slot, "s1");
    assert_string_equal(s->publication, "p1");
    assert_int_equal(s->server_id, 0);
    s = &c->sources[1];
    assert_string_equal(s->type, "mysql");
    assert_int_equal(s->server_id, 4242);
    assert_null(s->password_env);
    assert_null(s->slot);
    assert_int_equal(s->n_tables, 0);
}

static void test_defaults_and_uri(void **state)
{
    struct fixture *fx = *state;
    write_text(fx, "warehouse: file:///srv/lake\nstate: /var/lib/loch\n");
    struct loch_config *c;
    struct loch_err err;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    assert_string_equal(c->warehouse, "file:///srv/lake");
    assert_string_equal(c->state_dir, "/var/lib/loch");
    assert_string_equal(c->sql_listen, "127.0.0.1:5433");
    assert_string_equal(c->http_listen, "127.0.0.1:8181");
    assert_string_equal(c->tls_mode, "off");
    assert_null(c->tls_cert);
    assert_int_equal(c->flush_interval_ms, 1000);
    assert_int_equal(c->query_timeout_ms, 0);
    assert_int_equal(c->query_memory_mb, 0);
    assert_int_equal(c->threads, 0);
    assert_int_equal(c->n_sources, 0);
}

/* Loads text and expects LOCH_ECONFIG with msg starting "FILE:LINE:" and containing each
 * of the given fragments (in msg or hint). */
static void expect_error(struct fixture *fx, const char *text, int line, const char *frag1, const char *frag2)
{
    write_text(fx, text);
    struct loch_config *c = NULL;
    struct loch_err err;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), LOCH_ECONFIG);
    assert_null(c);
    char *pre = xasprintf("%s:%d:", fx->path, line);
    if (strncmp(err.msg, pre, strlen(pre)) != 0)
        fail_msg("expected \"%s\" at the start of \"%s\"", pre, err.msg);
    free(pre);
    char both[2048];
    snprintf(both, sizeof both, "%s | %s", err.msg, err.hint);
    if (frag1 && !strstr(both, frag1))
        fail_msg("expected \"%s\" in \"%s\"", frag1, both);
    if (frag2 && !strstr(both, frag2))
        fail_msg("expected \"%s\" in \"%s\"", frag2, both);
}

static void test_errors(void **state)
{
    struct fixture *fx = *state;
    expect_error(fx, "warehouse: /l\nstate: /s\n\n\n\n\nwarehose: x\n", 7,
                 "unknown key \"warehose\" in the top level", "did you mean \"warehouse\"");
    expect_error(fx, "warehouse: /l\nstate: /s\nzzz: 1\n", 3, "unknown key \"zzz\"",
                 "valid keys in the top level: warehouse, state, server");
    expect_error(fx, "warehouse: /l\nstate: /s\nflush_interval_ms: fast\n", 3,
                 "expected a number for flush_interval_ms, got \"fast\"", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nflush_interval_ms: 0\n", 3, "flush_interval_ms must be between 1",
                 NULL);
    expect_error(fx, "state: /s\n", 1, "missing required key \"warehouse\"", NULL);
    expect_error(fx, "warehouse: /l\nstate:\n", 2, "missing required key \"state\"", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nquery:\n  threads: [1]\n", 4,
                 "expected a number for query.threads, got a list", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  tls:\n    mode: maybe\n", 5,
                 "unknown server.tls.mode \"maybe\"", "off, optional, required");
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  tls:\n    mode: required\n", 5, "cert and key are not set",
                 NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  sql_listen: 5433\n", 4,
                 "expected host:port for server.sql_listen", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nserver: yes\n", 3, "expected a mapping", "server");
    expect_error(fx, "warehouse: /l\nstate: /s\nwarehouse: /m\n", 3, "appears twice", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nsources:\n  - name: core\n    type: postgres\n", 4,
                 "missing required key \"url\" in sources item 1", NULL);
    expect_error(fx,
                 "warehouse: /l\nstate: /s\nsources:\n  - name: a\n    type: mysql\n    url: u\n"
                 "  - name: b\n    type: oracle\n    url: u\n",
                 8, "unknown source type \"oracle\"", "postgres");
    expect_error(fx, "warehouse: /l\nstate: /s\nsources:\n  - name: a\n    type: mysql\n    url: u\n    slot: x\n", 7,
                 "postgres sources only", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nsources:\n  - name: a\n    type: postgres\n    url: u\n    tabels: []\n",
                 7, "unknown key \"tabels\" in sources item 1", "did you mean \"tables\"");
    expect_error(fx,
                 "warehouse: /l\nstate: /s\nsources:\n  - {name: a, type: postgres, url: u}\n"
                 "  - {name: a, type: mysql, url: v}\n",
                 5, "used twice", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nsources:\n  - name: core.x\n    type: postgres\n    url: u\n", 4,
                 "not a plain identifier", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nsources:\n  - name: a\n    type: postgres\n    url: u\n    tables: x\n",
                 7, "expected a list for tables", NULL);
    expect_error(fx, "warehouse: /l\nstate: /s\nsources: {a: 1}\n", 3, "expected a list for sources", NULL);
    expect_error(fx, "", 1, "the file is empty", "loch init");
    expect_error(fx, "- a\n- b\n", 1, "expected a mapping", NULL);
}

static void test_syntax_error(void **state)
{
    struct fixture *fx = *state;
    /* an unclosed quote: libyaml finds the problem at the end (line 5), the detail names
     * where the scalar began (line 4) */
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  sql_listen: \"127.0.0.1:1\n", 5, "YAML syntax error",
                 "spaces");
    struct loch_config *c;
    struct loch_err err;
    write_text(fx, "warehouse: /l\nstate: /s\nserver:\n  sql_listen: \"127.0.0.1:1\n");
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), LOCH_ECONFIG);
    assert_non_null(strstr(err.detail, "line 4, column 15"));
    /* a tab used for indentation gets its own hint */
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n\tsql_listen: x\n", 4, "YAML syntax error", "has a tab");
    write_text(fx, "warehouse: /l\nstate: a: b\n");
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), LOCH_ECONFIG);
    char *pre = xasprintf("%s:2:", fx->path);
    assert_non_null(strstr(err.msg, pre));
    assert_non_null(strstr(err.msg, "mapping values are not allowed"));
    free(pre);
}

static void test_missing_file(void **state)
{
    struct fixture *fx = *state;
    struct loch_config *c;
    struct loch_err err;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), LOCH_ENOENT);
    assert_non_null(strstr(err.msg, fx->path));
    assert_non_null(strstr(err.hint, "loch init"));
}

static void test_write_default(void **state)
{
    struct fixture *fx = *state;
    struct loch_err err;
    assert_int_equal(config_write_default(fx->path, "./lake", "./state \"x\"", &err), 0);
    assert_int_equal(config_write_default(fx->path, "./other", "./state", &err), LOCH_EEXIST);
    struct loch_config *c;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    char *want = xasprintf("%s/lake", fx->dir);
    assert_string_equal(c->warehouse, want);
    free(want);
    want = xasprintf("%s/state \"x\"", fx->dir);
    assert_string_equal(c->state_dir, want);
    free(want);
    assert_string_equal(c->sql_listen, "127.0.0.1:5433");
    assert_string_equal(c->tls_mode, "off");
    assert_int_equal(c->flush_interval_ms, 1000);
    assert_int_equal(c->n_sources, 0);
    /* the commented example sources block parses once uncommented */
    char *text;
    FILE *f = fopen(fx->path, "r");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    text = xcalloc(1, (size_t)n + 1);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    char *src = strstr(text, "# sources:");
    assert_non_null(src);
    struct { char *p; size_t n; } out = {xcalloc(1, (size_t)n + 1), 0};
    memcpy(out.p, text, (size_t)(src - text));
    out.n = (size_t)(src - text);
    for (char *line = src; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line + 1) : strlen(line);
        if (line[0] == '#' && line[1] == ' ') {
            memcpy(out.p + out.n, line + 2, len - 2);
            out.n += len - 2;
        }
        line += len;
    }
    write_text(fx, out.p);
    free(out.p);
    free(text);
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    assert_int_equal(c->n_sources, 2);
    assert_string_equal(c->sources[0].name, "core");
    assert_string_equal(c->sources[1].type, "mysql");
}

/* Membership for config_query_limits: ctx is a NULL-terminated list of role names. */
static bool in_list(void *ctx, const char *role)
{
    for (const char **r = ctx; *r; r++)
        if (!strcmp(*r, role))
            return true;
    return false;
}

static void test_query_roles(void **state)
{
    struct fixture *fx = *state;
    write_text(fx, "warehouse: /l\nstate: /s\n"
                   "query:\n"
                   "  timeout_ms: 250\n"
                   "  memory_mb: 4096\n"
                   "  roles:\n"
                   "    slow: {timeout_ms: 300}\n"
                   "    tight: {timeout_ms: 400, memory_mb: 64}\n"
                   "    loose:\n"
                   "      timeout_ms: 5000\n"
                   "      memory_mb: 0\n"
                   "    etl: {timeout_ms: 0}\n"
                   "    vip: {timeout_ms: 700}\n");
    struct loch_config *c;
    struct loch_err err;
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    assert_int_equal(c->n_query_roles, 5);
    assert_string_equal(c->query_roles[2].name, "loose");
    assert_true(c->query_roles[2].has_memory);
    assert_int_equal(c->query_roles[2].memory_mb, 0);
    assert_false(c->query_roles[0].has_memory);

    struct config_limits l;
    const char *none[] = {NULL};
    config_query_limits(c, "nobody", true, in_list, none, &l);
    assert_int_equal(l.timeout_ms, 250);
    assert_string_equal(l.timeout_from, "query.timeout_ms");
    assert_int_equal(l.memory_mb, 4096);
    assert_string_equal(l.memory_from, "query.memory_mb");

    /* the strictest non-zero value among the roles, per key */
    const char *two[] = {"loose", "tight", NULL};
    config_query_limits(c, "u", true, in_list, two, &l);
    assert_int_equal(l.timeout_ms, 400);
    assert_string_equal(l.timeout_from, "query.roles.tight.timeout_ms");
    assert_int_equal(l.memory_mb, 64);
    assert_string_equal(l.memory_from, "query.roles.tight.memory_mb");

    /* 0 (no limit) only when no applicable entry is stricter; it beats the global value */
    const char *etl[] = {"etl", NULL};
    config_query_limits(c, "u", true, in_list, etl, &l);
    assert_int_equal(l.timeout_ms, 0);
    assert_string_equal(l.timeout_from, "query.roles.etl.timeout_ms");
    assert_int_equal(l.memory_mb, 4096); /* etl sets no memory_mb */
    const char *etl_slow[] = {"etl", "slow", NULL};
    config_query_limits(c, "u", true, in_list, etl_slow, &l);
    assert_int_equal(l.timeout_ms, 300);
    const char *slow_etl[] = {"slow", "etl", NULL};
    config_query_limits(c, "u", true, in_list, slow_etl, &l);
    assert_int_equal(l.timeout_ms, 300);
    assert_string_equal(l.timeout_from, "query.roles.slow.timeout_ms");

    /* the user's own entry beats the roles', key by key */
    const char *vip_roles[] = {"slow", "tight", NULL};
    config_query_limits(c, "vip", true, in_list, vip_roles, &l);
    assert_int_equal(l.timeout_ms, 700);
    assert_string_equal(l.timeout_from, "query.roles.vip.timeout_ms");
    assert_int_equal(l.memory_mb, 64);

    /* no membership callback: only the user's own entry and the globals */
    config_query_limits(c, "tight", true, NULL, NULL, &l);
    assert_int_equal(l.timeout_ms, 400);
    config_query_limits(c, "x", true, NULL, NULL, &l);
    assert_int_equal(l.timeout_ms, 250);
}

/* Non-administrators get the safe defaults unless something stricter or their roles say
 * otherwise; administrators keep the global values. */
static void test_non_admin_defaults(void **state)
{
    struct fixture *fx = *state;
    struct loch_config *c;
    struct loch_err err;
    struct config_limits l;
    write_text(fx, "warehouse: /l\nstate: /s\n");
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    assert_int_equal(c->non_admin_timeout_ms, 300000);
    assert_true(c->non_admin_memory_mb > 0);
    config_query_limits(c, "u", false, NULL, NULL, &l);
    assert_int_equal(l.timeout_ms, 300000);
    assert_string_equal(l.timeout_from, "query.non_admin_timeout_ms");
    assert_int_equal(l.memory_mb, c->non_admin_memory_mb);
    assert_string_equal(l.memory_from, "query.non_admin_memory_mb");
    config_query_limits(c, "admin", true, NULL, NULL, &l);
    assert_int_equal(l.timeout_ms, 0);
    assert_int_equal(l.memory_mb, 0);

    write_text(fx, "warehouse: /l\nstate: /s\nquery:\n  timeout_ms: 1000\n  non_admin_memory_mb: 0\n"
                   "  non_admin_timeout_ms: 9000\n  roles:\n    etl: {timeout_ms: 0}\n");
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    config_query_limits(c, "u", false, NULL, NULL, &l);
    assert_int_equal(l.timeout_ms, 1000); /* the global value is stricter */
    assert_string_equal(l.timeout_from, "query.timeout_ms");
    assert_int_equal(l.memory_mb, 0);     /* the default turned off */
    const char *etl[] = {"etl", NULL};
    config_query_limits(c, "u", false, in_list, etl, &l);
    assert_int_equal(l.timeout_ms, 0);    /* a role entry is configuration: it wins */
}

static void test_server_limits(void **state)
{
    struct fixture *fx = *state;
    struct loch_config *c;
    struct loch_err err;
    write_text(fx, "warehouse: /l\nstate: /s\nserver:\n  max_connections: 10\n  reserved_admin_connections: 2\n"
                   "  metrics_open: true\n  login_timeout_ms: 500\n");
    assert_int_equal(config_load(fx->path, fx->a, &c, &err), 0);
    assert_int_equal(c->max_connections, 10);
    assert_int_equal(c->reserved_admin_connections, 2);
    assert_int_equal(c->startup_per_address, 16);
    assert_int_equal(c->login_timeout_ms, 500);
    assert_true(c->metrics_open);
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  max_connections: 3\n  reserved_admin_connections: 3\n",
                 5, "must be less than server.max_connections", "reserved slots");
    expect_error(fx, "warehouse: /l\nstate: /s\nserver:\n  metrics_open: maybe\n", 4,
                 "expected true or false for server.metrics_open", "metrics_open: true");
}

static void test_query_roles_errors(void **state)
{
    struct fixture *fx = *state;
    const char *pre = "warehouse: /l\nstate: /s\nquery:\n  roles:\n";
    char *t = xasprintf("%s    x: {timeot_ms: 1}\n", pre);
    expect_error(fx, t, 5, "unknown key \"timeot_ms\" in query.roles.x", "did you mean \"timeout_ms\"");
    free(t);
    t = xasprintf("%s    x: {timeout_ms: -1}\n", pre);
    expect_error(fx, t, 5, "query.roles.x.timeout_ms must be between 0 and", NULL);
    free(t);
    t = xasprintf("%s    x:\n      memory_mb: -64\n", pre);
    expect_error(fx, t, 6, "query.roles.x.memory_mb must be between 0 and", NULL);
    free(t);
    t = xasprintf("%s    x: {memory_mb: 1GB}\n", pre);
    expect_error(fx, t, 5, "expected a number for query.roles.x.memory_mb, got \"1GB\"", "without units");
    free(t);
    t = xasprintf("%s    x: 5\n", pre);
    expect_error(fx, t, 5, "expected a mapping (key: value lines) for query.roles.x, got a value", NULL);
    free(t);
    t = xasprintf("%s    x: {timeout_ms: 1}\n    x: {memory_mb: 1}\n", pre);
    expect_error(fx, t, 6, "key \"x\" appears twice in query.roles", NULL);
    free(t);
    expect_error(fx, "warehouse: /l\nstate: /s\nquery:\n  roles: [a]\n", 4, "expected a mapping for query.roles",
                 NULL);
}

static void test_default_path(void **state)
{
    (void)state;
    assert_string_equal(config_default_path("x.yaml"), "x.yaml");
    setenv("LOCH_CONFIG", "/etc/loch.yaml", 1);
    assert_string_equal(config_default_path(NULL), "/etc/loch.yaml");
    unsetenv("LOCH_CONFIG");
    assert_string_equal(config_default_path(NULL), "loch.yaml");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_all_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_uri, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_admin_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_query_roles_errors, setup, teardown),
        cmocka_unit_test(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
