/* paths.c: the files an administrator's statement names, resolved before it runs in a
 * confined engine. DuckDB's allowed_directories compares path strings, so a symlink
 * dropped into the warehouse (<warehouse>/passwd_link -> /etc/passwd) would take a
 * read or a COPY ... TO out of the lake; here every path is resolved the way the kernel
 * will (globs expanded, symlinks followed) and the statement refused when any of them
 * lands outside the engine's folders. Not for non-administrators (they name no file at
 * all: guard.c) or for the lake's own files (view.c builds those paths). */
#include "query/internal.h"

#include <errno.h>
#include <ftw.h>
#include <glob.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/buf.h"

#define MAX_DEPTH 4    /* query('...') inside query('...') ... */
#define MAX_SUBQUERY 64 /* parse attempts for the queries inside one other statement */

struct pcheck {
    struct query_session *s;
    const char *const *roots; /* real paths */
    struct loch_err *err;
    int depth;
    size_t n_parsed;
};

static int check_sql(struct pcheck *pc, const char *sql);

static bool inside(const struct pcheck *pc, const char *real)
{
    for (size_t i = 0; pc->roots[i]; i++) {
        size_t n = strlen(pc->roots[i]);
        if (!strncmp(real, pc->roots[i], n) && (real[n] == '\0' || real[n] == '/' || pc->roots[i][n - 1] == '/'))
            return true;
    }
    return false;
}

static int refuse(struct pcheck *pc, const char *what, const char *path, const char *real)
{
    struct buf roots = {0};
    for (size_t i = 0; pc->roots[i]; i++)
        buf_printf(&roots, "%s%s", i ? ", " : "", pc->roots[i]);
    if (real)
        loch_errf(pc->err, LOCH_EPERM, "permission denied: %s \"%s\", which resolves to \"%s\", outside the lake's folders",
                  what, path, real);
    else
        loch_errf(pc->err, LOCH_EPERM, "permission denied: %s \"%s\", which cannot be resolved inside the lake's folders",
                  what, path);
    loch_err_detail(pc->err, "this server reads and writes files only below %s", roots.data ? roots.data : "");
    loch_err_hint(pc->err, "a symlink inside the lake does not lead out of it; copy the file into the lake instead");
    buf_free(&roots);
    return LOCH_EPERM;
}

/* The local path DuckDB would open for s: file:// stripped, a leading ~ as the home
 * folder (DuckDB expands it). In a. */
static char *local_path(struct arena *a, const char *s)
{
    if (!strncasecmp(s, "file://", 7))
        s += 7;
    if (s[0] == '~' && (s[1] == '/' || s[1] == '\0')) {
        const char *home = getenv("HOME");
        return arena_printf(a, "%s%s", home ? home : "", s + 1);
    }
    return arena_strdup(a, s);
}

static bool has_glob(const char *p) { return strpbrk(p, "*?[") != NULL; }

/* The checks of a tree walk (nftw has no context pointer: one walk at a time). */
static struct pcheck *walk_pc;
static const char *walk_what;
static int walk_rc;

static int walk_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)f;
    if (flag != FTW_SL && flag != FTW_SLN)
        return 0;
    char *real = realpath(path, NULL);
    if (!real || !inside(walk_pc, real))
        walk_rc = refuse(walk_pc, walk_what, path, real);
    free(real);
    return walk_rc ? 1 : 0;
}

static pthread_mutex_t walk_mu = PTHREAD_MUTEX_INITIALIZER;

/* Every symlink below dir (not followed) must resolve inside the lake: what a recursive
 * glob ("**") or a write into a folder may reach. */
static int check_tree(struct pcheck *pc, const char *what, const char *dir)
{
    pthread_mutex_lock(&walk_mu);
    walk_pc = pc;
    walk_what = what;
    walk_rc = 0;
    nftw(dir, walk_one, 16, FTW_PHYS);
    int rc = walk_rc;
    pthread_mutex_unlock(&walk_mu);
    return rc;
}

/* A path a statement reads (or a pattern of them): every existing match must resolve
 * inside the lake. A path that matches nothing is left to DuckDB (nothing to read). */
static int check_read(struct pcheck *pc, const char *what, const char *raw)
{
    if (!raw || !*raw)
        return 0;
    struct arena *a = pc->s->stmt_arena;
    char *p = local_path(a, raw);
    if (!has_glob(p)) {
        char *real = realpath(p, NULL);
        int rc = real && !inside(pc, real) ? refuse(pc, what, raw, real) : 0;
        free(real);
        return rc;
    }
    if (strstr(p, "**")) {
        /* DuckDB walks every folder below the part before the first wildcard */
        char *base = arena_strndup(a, p, strcspn(p, "*?["));
        char *slash = strrchr(base, '/');
        if (slash)
            *(slash == base ? slash + 1 : slash) = '\0';
        else
            base = ".";
        char *real = realpath(base, NULL);
        int rc = real && !inside(pc, real) ? refuse(pc, what, raw, real) : 0;
        free(real);
        if (!rc)
            rc = check_tree(pc, what, base);
        if (rc)
            return rc;
    }
    glob_t g;
    int grc = glob(p, GLOB_NOSORT, NULL, &g);
    int rc = 0;
    if (grc == 0)
        for (size_t i = 0; i < g.gl_pathc && !rc; i++) {
            char *real = realpath(g.gl_pathv[i], NULL);
            if (real && !inside(pc, real))
                rc = refuse(pc, what, g.gl_pathv[i], real);
            free(real);
        }
    if (grc != GLOB_NOMATCH)
        globfree(&g);
    return rc;
}

/* A path a statement writes (COPY ... TO, EXPORT DATABASE, ATTACH): the nearest folder
 * on its way that exists must resolve inside the lake, the path itself too when it
 * exists (a symlink is written through), and every symlink below it when it is a folder
 * (partitioned COPY and EXPORT write files into it). */
static int check_write(struct pcheck *pc, const char *what, const char *raw)
{
    struct arena *a = pc->s->stmt_arena;
    char *p = local_path(a, raw);
    if (!*p)
        return 0;
    struct stat st;
    if (lstat(p, &st) == 0) {
        char *real = realpath(p, NULL);
        int rc = !real || !inside(pc, real) ? refuse(pc, what, raw, real) : 0;
        free(real);
        if (!rc && S_ISDIR(st.st_mode))
            rc = check_tree(pc, what, p);
        return rc;
    }
    /* the nearest existing ancestor */
    char *up = arena_strdup(a, p);
    for (;;) {
        char *slash = strrchr(up, '/');
        if (!slash) {
            up = ".";
            break;
        }
        if (slash == up) {
            up = "/";
            break;
        }
        *slash = '\0';
        if (lstat(up, &st) == 0)
            break;
    }
    char *real = realpath(up, NULL);
    int rc = !real || !inside(pc, real) ? refuse(pc, what, raw, real) : 0;
    free(real);
    return rc;
}

/* ---- statements DuckDB serialises (SELECT, FROM-first, VALUES, ...) ---- */

static const char *str_of(json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }

/* The VARCHAR value of a CONSTANT expression, or NULL. *is_const tells whether it is a
 * constant at all (of any type). */
static const char *const_text(json_t *e, bool *is_const)
{
    *is_const = false;
    const char *cls = str_of(e, "class");
    if (!cls || strcmp(cls, "CONSTANT"))
        return NULL;
    *is_const = true;
    json_t *v = json_object_get(e, "value");
    if (json_is_true(json_object_get(v, "is_null")))
        return NULL;
    const char *id = str_of(json_object_get(v, "type"), "id");
    if (!id || strcmp(id, "VARCHAR"))
        return NULL;
    return str_of(v, "value");
}

/* Table functions that take no path and may be given computed arguments. */
static bool computed_args_ok(const char *fn)
{
    static const char *const ok[] = {"range", "generate_series", "unnest", "repeat", "repeat_row", NULL};
    for (size_t i = 0; ok[i]; i++)
        if (!strcasecmp(fn, ok[i]))
            return true;
    return !strncasecmp(fn, "duckdb_", 7);
}

/* One positional argument of table function fn: a string is a path it may read; a list
 * of them, each; anything computed is refused for functions that may read files, as
 * the path it makes cannot be known before it runs. */
static int check_arg(struct pcheck *pc, const char *fn, json_t *e)
{
    bool is_const;
    const char *text = const_text(e, &is_const);
    if (is_const) {
        if (!text)
            return 0;
        if (!strcasecmp(fn, "query"))
            return check_sql(pc, text);
        return check_read(pc, arena_printf(pc->s->stmt_arena, "%s reads", fn), text);
    }
    const char *cls = str_of(e, "class"), *name = str_of(e, "function_name");
    if (cls && !strcmp(cls, "FUNCTION") && name &&
        (!strcmp(name, "list_value") || !strcmp(name, "list_pack") || !strcmp(name, "array_value"))) {
        json_t *ch = json_object_get(e, "children");
        size_t i;
        json_t *c;
        json_array_foreach(ch, i, c)
        {
            int rc = check_arg(pc, fn, c);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (computed_args_ok(fn))
        return 0;
    loch_errf(pc->err, LOCH_EPERM, "permission denied: %s is given a computed argument, so the files it reads "
                                   "cannot be checked before it runs",
              fn);
    return loch_err_hint(pc->err, "write the path as a literal string (or a list of them), e.g. %s('data/x.csv')",
                         fn);
}

static int walk(struct pcheck *pc, json_t *j)
{
    if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            int rc = walk(pc, v);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(j))
        return 0;
    const char *type = str_of(j, "type");
    if (type && !strcmp(type, "TABLE_FUNCTION")) {
        json_t *fn = json_object_get(j, "function");
        const char *name = str_of(fn, "function_name");
        json_t *ch = json_object_get(fn, "children");
        size_t i;
        json_t *c;
        json_array_foreach(ch, i, c)
        {
            const char *cls = str_of(c, "class");
            json_t *left = json_object_get(c, "left");
            if (cls && !strcmp(cls, "COMPARISON") && !strcmp(str_of(left, "class") ? str_of(left, "class") : "",
                                                             "COLUMN_REF"))
                continue; /* a named parameter (delim = ','), not a path */
            int rc = check_arg(pc, name ? name : "a table function", c);
            if (rc)
                return rc;
        }
    } else if (type && !strcmp(type, "BASE_TABLE")) {
        /* an unqualified name DuckDB finds no table for is read as a file (replacement scan) */
        const char *schema = str_of(j, "schema_name"), *cat = str_of(j, "catalog_name");
        if ((!schema || !*schema) && (!cat || !*cat)) {
            int rc = check_read(pc, "the statement reads", str_of(j, "table_name"));
            if (rc)
                return rc;
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        int rc = walk(pc, v);
        if (rc)
            return rc;
    }
    return 0;
}

/* Parses sql with DuckDB (json_serialize_sql). *parsed false when DuckDB does not
 * serialise it (not a SELECT) or it does not parse; otherwise its tree is checked. */
static int check_serialised(struct pcheck *pc, const char *sql, bool *parsed)
{
    *parsed = false;
    pc->n_parsed++;
    struct buf q = {0};
    buf_puts(&q, "SELECT json_serialize_sql(");
    buf_sql_str(&q, sql);
    buf_puts(&q, ")");
    struct engine_rows *r;
    struct loch_err e;
    int rc = engine_query(pc->s->conn, q.data, &r, &e);
    buf_free(&q);
    if (rc)
        return 0;
    json_t *root = duck_json_parse(engine_rows_text(r, 0, 0, pc->s->stmt_arena));
    engine_rows_free(r);
    if (!root || json_is_true(json_object_get(root, "error"))) {
        json_decref(root);
        return 0;
    }
    *parsed = true;
    rc = walk(pc, json_object_get(root, "statements"));
    json_decref(root);
    return rc;
}

/* ---- other statements: COPY, EXPORT/IMPORT DATABASE, ATTACH, CALL, INSERT ... ---- */

/* The text of string token i, unquoted ('it''s' -> it's; $$x$$ -> x), in a. */
static char *string_value(struct arena *a, const struct stmt *st, size_t i)
{
    const char *t = st->text + st->tok[i].off;
    size_t n = st->tok[i].len;
    if (n >= 2 && t[0] == '\'') {
        struct buf b = {0};
        for (size_t k = 1; k + 1 < n; k++) {
            buf_putc(&b, t[k]);
            if (t[k] == '\'' && t[k + 1] == '\'')
                k++;
        }
        char *s = arena_strdup(a, b.data ? b.data : "");
        buf_free(&b);
        return s;
    }
    if (n >= 2 && t[0] == '$') {
        const char *end = memchr(t + 1, '$', n - 1);
        size_t tag = end ? (size_t)(end - t) + 1 : 1;
        return n >= 2 * tag ? arena_strndup(a, t + tag, n - 2 * tag) : arena_strdup(a, "");
    }
    return lex_ident(a, st, i);
}

/* The first string token at or after i (skipping words such as DATABASE, IF NOT EXISTS),
 * or n_tok. */
static size_t next_string(const struct stmt *st, size_t i)
{
    for (; i < st->n_tok; i++) {
        if (st->tok[i].kind == TOK_STRING)
            return i;
        if (st->tok[i].kind != TOK_WORD)
            break;
    }
    return st->n_tok;
}

/* ATTACH 'sqlite:/x.db' and 'duckdb:/x.db' name the file after the type prefix. */
static const char *attach_path(const char *s)
{
    const char *c = strchr(s, ':');
    if (!c || c == s || strncmp(c, "://", 3) == 0)
        return s;
    for (const char *p = s; p < c; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_'))
            return s;
    return c + 1;
}

static int check_other(struct pcheck *pc, const struct stmt *st)
{
    struct arena *a = pc->s->stmt_arena;
    int rc = 0;
    /* what it writes */
    for (size_t i = 0; i < st->n_tok && !rc; i++) {
        size_t w = st->n_tok;
        const char *what = NULL;
        if (lex_is(st, i, "COPY")) {
            /* COPY x TO 'path' / COPY (query) TO 'path': the TO at COPY's own depth */
            int depth = 0;
            for (size_t k = i + 1; k < st->n_tok; k++) {
                if (lex_punct(st, k, '('))
                    depth++;
                else if (lex_punct(st, k, ')'))
                    depth--;
                else if (depth == 0 && lex_is(st, k, "TO") && k + 1 < st->n_tok &&
                         st->tok[k + 1].kind == TOK_STRING) {
                    w = k + 1;
                    break;
                }
            }
            what = "COPY writes";
        } else if (lex_is(st, i, "EXPORT") && lex_is(st, i + 1, "DATABASE")) {
            w = next_string(st, i + 2);
            what = "EXPORT DATABASE writes";
        } else if (lex_is(st, i, "ATTACH")) {
            w = next_string(st, i + 1);
            what = "ATTACH opens";
        }
        if (w < st->n_tok) {
            const char *p = string_value(a, st, w);
            rc = check_write(pc, what, lex_is(st, i, "ATTACH") ? attach_path(p) : p);
        }
    }
    /* what it reads: every literal that names an existing file or pattern */
    for (size_t i = 0; i < st->n_tok && !rc; i++) {
        if (st->tok[i].kind != TOK_STRING && st->tok[i].kind != TOK_QIDENT)
            continue;
        const char *p = string_value(a, st, i);
        if (i > 0 && lex_is(st, i - 1, "ATTACH"))
            p = attach_path(p);
        struct stat sb;
        char *lp = local_path(a, p);
        if (!has_glob(lp) && stat(lp, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            /* a folder is read only by IMPORT DATABASE (and ATTACH of a folder fails) */
            bool import = false;
            for (size_t k = 0; k + 1 < st->n_tok && !import; k++)
                import = lex_is(st, k, "IMPORT") && lex_is(st, k + 1, "DATABASE");
            if (!import)
                continue;
            char *real = realpath(lp, NULL);
            rc = real && !inside(pc, real) ? refuse(pc, "IMPORT DATABASE reads", p, real) : 0;
            free(real);
            if (!rc)
                rc = check_tree(pc, "IMPORT DATABASE reads", lp);
            continue;
        }
        rc = check_read(pc, "the statement reads", p);
    }
    /* the queries inside it (INSERT ... SELECT, CREATE ... AS, COPY (query) TO, a
     * subquery in UPDATE, CALL f(...)): DuckDB's own parse of each, where it parses */
    if (!rc && lex_is(st, 0, "CALL") && st->n_tok > 1) {
        bool parsed;
        rc = check_serialised(pc, arena_printf(a, "SELECT * FROM %s", lex_rest(st, 1)), &parsed);
        if (!rc && !parsed) {
            loch_errf(pc->err, LOCH_EPERM, "permission denied: the files this CALL reads cannot be checked");
            rc = loch_err_hint(pc->err, "write it as SELECT * FROM function(...)");
        }
    }
    for (size_t i = 0; i < st->n_tok && !rc && pc->n_parsed < MAX_SUBQUERY; i++) {
        if (!lex_is(st, i, "SELECT") && !lex_is(st, i, "WITH") && !lex_is(st, i, "FROM") && !lex_is(st, i, "VALUES"))
            continue;
        int depth = 0;
        size_t end = st->n_tok;
        for (size_t k = i; k < st->n_tok; k++) {
            if (lex_punct(st, k, '('))
                depth++;
            else if (lex_punct(st, k, ')') && --depth < 0) {
                end = k;
                break;
            }
        }
        size_t from = st->tok[i].off;
        size_t to = end < st->n_tok ? st->tok[end].off : st->text_len;
        bool parsed;
        rc = check_serialised(pc, arena_strndup(a, st->text + from, to - from), &parsed);
    }
    return rc;
}

static int check_sql(struct pcheck *pc, const char *sql)
{
    if (++pc->depth > MAX_DEPTH) {
        loch_errf(pc->err, LOCH_EPERM, "permission denied: queries nested too deep to check the files they read");
        return loch_err_hint(pc->err, "nest query() at most %d deep", MAX_DEPTH);
    }
    struct arena *a = pc->s->stmt_arena;
    struct stmt *stmts;
    size_t n, bad;
    if (lex_split(a, sql, &stmts, &n, &bad) != 0) {
        pc->depth--;
        return 0; /* DuckDB refuses it too: nothing runs */
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        bool parsed;
        rc = check_serialised(pc, stmts[i].text, &parsed);
        if (!rc && !parsed)
            rc = check_other(pc, &stmts[i]);
    }
    pc->depth--;
    return rc;
}

int query_paths_check(struct query_session *s, const char *sql, struct loch_err *err)
{
    const char *const *roots = engine_confined_folders(s->env.eng);
    if (!roots)
        return 0;
    struct pcheck pc = {s, roots, err, 0, 0};
    return check_sql(&pc, sql);
}
