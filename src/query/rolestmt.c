/* rolestmt.c: parsing and running the user/role statements (rolestmt.h), in the
 * grammar of PostgreSQL's CREATE ROLE / ALTER ROLE / DROP ROLE / GRANT role pages,
 * narrowed to what loch keeps. Not for table privileges. */
#include "query/rolestmt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "access/principal.h"
#include "base/buf.h"

static bool is_name_tok(const struct stmt *s, size_t i)
{
    return i < s->n_tok && (s->tok[i].kind == TOK_WORD || s->tok[i].kind == TOK_QIDENT);
}

/* A role name: quoted keeps its case, bare folds to lower case. */
static char *role_name(struct arena *a, const struct stmt *s, size_t i)
{
    char *n = lex_ident(a, s, i);
    if (s->tok[i].kind == TOK_WORD)
        for (char *p = n; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    return n;
}

/* The value of a string literal token: '...' ('' doubled) or $tag$...$tag$. */
static char *string_value(struct arena *a, const struct stmt *s, size_t i)
{
    const struct token *t = &s->tok[i];
    const char *p = s->text + t->off;
    if (p[0] == '$') {
        const char *end = memchr(p + 1, '$', t->len - 1);
        size_t tag = end ? (size_t)(end - p) + 1 : 1;
        if (t->len < 2 * tag)
            return arena_strdup(a, "");
        return arena_strndup(a, p + tag, t->len - 2 * tag);
    }
    char *out = arena_alloc(a, t->len);
    size_t k = 0;
    for (size_t j = 1; j + 1 < t->len; j++) {
        out[k++] = p[j];
        if (p[j] == '\'')
            j++; /* '' stands for one quote */
    }
    out[k] = '\0';
    return out;
}

static bool is_string(const struct stmt *s, size_t i)
{
    return i < s->n_tok && s->tok[i].kind == TOK_STRING;
}

/* name [, name ...] starting at *i, into a fresh array. */
static int name_list(struct arena *a, const struct stmt *s, size_t *i, char ***out, size_t *n, const char *what,
                     struct loch_err *err)
{
    size_t cap = 4;
    *out = arena_alloc(a, cap * sizeof **out);
    *n = 0;
    for (;;) {
        if (!is_name_tok(s, *i)) {
            loch_errf(err, LOCH_ESYNTAX, "syntax error: expected %s at \"%s\"", what, lex_rest(s, *i));
            return LOCH_ESYNTAX;
        }
        if (*n == cap) {
            *out = arena_grow(a, *out, cap, cap * 2, sizeof **out);
            cap *= 2;
        }
        (*out)[(*n)++] = role_name(a, s, *i);
        (*i)++;
        if (!lex_punct(s, *i, ','))
            return 0;
        (*i)++;
    }
}

static int unsupported_option(const struct stmt *s, size_t i, struct loch_err *err)
{
    loch_errf(err, LOCH_EUNSUPPORTED, "role option \"%.*s\" is not supported", (int)s->tok[i].len,
              s->text + s->tok[i].off);
    return loch_err_hint(err, "loch roles take LOGIN, NOLOGIN, PASSWORD and IN ROLE; "
                              "make an administrator with GRANT admin TO name");
}

/* The options of CREATE/ALTER from token *i to the end. */
static int options(struct arena *a, const struct stmt *s, size_t i, struct role_stmt *r, struct loch_err *err)
{
    static const char *noops[] = {"NOSUPERUSER", "NOCREATEDB", "NOCREATEROLE", "INHERIT", "NOREPLICATION",
                                  "NOBYPASSRLS", NULL};
    if (lex_is(s, i, "WITH"))
        i++;
    while (i < s->n_tok) {
        if (lex_is(s, i, "LOGIN")) {
            r->login = 1;
            i++;
        } else if (lex_is(s, i, "NOLOGIN")) {
            r->login = 0;
            i++;
        } else if (lex_is(s, i, "PASSWORD") || (lex_is(s, i, "ENCRYPTED") && lex_is(s, i + 1, "PASSWORD"))) {
            i += lex_is(s, i, "ENCRYPTED") ? 2 : 1;
            if (lex_is(s, i, "NULL")) {
                r->password = NULL;
            } else if (is_string(s, i)) {
                r->password = string_value(a, s, i);
            } else {
                return loch_errf(err, LOCH_ESYNTAX, "syntax error: PASSWORD needs a quoted string or NULL");
            }
            r->set_password = true;
            i++;
        } else if (lex_is(s, i, "IN") && lex_is(s, i + 1, "ROLE") && r->op == ROLE_CREATE) {
            i += 2;
            int rc = name_list(a, s, &i, &r->members, &r->n_members, "a role name", err);
            if (rc)
                return rc;
        } else {
            bool noop = false;
            for (int k = 0; noops[k] && !noop; k++)
                noop = lex_is(s, i, noops[k]);
            if (!noop)
                return unsupported_option(s, i, err);
            i++;
        }
    }
    return 0;
}

int rolestmt_parse(struct arena *a, const struct stmt *st, struct role_stmt *out, bool *matched,
                   struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    out->login = -1;
    *matched = false;
    size_t i = 0;
    bool create = lex_is(st, 0, "CREATE"), alter = lex_is(st, 0, "ALTER"), drop = lex_is(st, 0, "DROP");
    if ((create || alter || drop) && (lex_is(st, 1, "USER") || lex_is(st, 1, "ROLE"))) {
        /* ALTER USER MAPPING / CREATE USER MAPPING are other statements (not ours either). */
        if (lex_is(st, 2, "MAPPING"))
            return 0;
        *matched = true;
        out->op = create ? ROLE_CREATE : alter ? ROLE_ALTER : ROLE_DROP;
        out->is_user = lex_is(st, 1, "USER");
        i = 2;
        if (drop) {
            if (lex_is(st, i, "IF") && lex_is(st, i + 1, "EXISTS")) {
                out->if_exists = true;
                i += 2;
            }
            int rc = name_list(a, st, &i, &out->names, &out->n_names, "a role name", err);
            if (!rc && i < st->n_tok)
                rc = loch_errf(err, LOCH_ESYNTAX, "syntax error at \"%s\"", lex_rest(st, i));
            return rc;
        }
        if (!is_name_tok(st, i))
            return loch_errf(err, LOCH_ESYNTAX, "syntax error: expected a role name after %s %s",
                             create ? "CREATE" : "ALTER", out->is_user ? "USER" : "ROLE");
        out->names = arena_alloc(a, sizeof *out->names);
        out->names[0] = role_name(a, st, i++);
        out->n_names = 1;
        if (alter && (lex_is(st, i, "RENAME") || lex_is(st, i, "SET") || lex_is(st, i, "RESET"))) {
            loch_errf(err, LOCH_EUNSUPPORTED, "ALTER %s ... %.*s is not supported", out->is_user ? "USER" : "ROLE",
                      (int)st->tok[i].len, st->text + st->tok[i].off);
            return loch_err_hint(err, "drop and create the role instead");
        }
        if (alter && i >= st->n_tok)
            return loch_errf(err, LOCH_ESYNTAX, "syntax error: ALTER %s %s needs an option such as PASSWORD",
                             out->is_user ? "USER" : "ROLE", out->names[0]);
        return options(a, st, i, out, err);
    }
    bool grant = lex_is(st, 0, "GRANT"), revoke = lex_is(st, 0, "REVOKE");
    if (!grant && !revoke)
        return 0;
    *matched = true;
    out->op = grant ? ROLE_GRANT : ROLE_REVOKE;
    for (size_t k = 1; k < st->n_tok; k++)
        if (lex_is(st, k, "ON")) {
            loch_errf(err, LOCH_EUNSUPPORTED, "%s on tables, namespaces and columns is not supported yet",
                      grant ? "GRANT" : "REVOKE");
            return loch_err_hint(err, "until grants exist, only members of role admin read lake tables: "
                                      "GRANT admin TO name");
        }
    i = 1;
    if (revoke && (lex_is(st, i, "ADMIN") || lex_is(st, i, "INHERIT") || lex_is(st, i, "SET")) &&
        lex_is(st, i + 1, "OPTION"))
        return loch_errf(err, LOCH_EUNSUPPORTED, "REVOKE ... OPTION FOR is not supported");
    int rc = name_list(a, st, &i, &out->names, &out->n_names, "a role name", err);
    if (rc)
        return rc;
    if (!lex_is(st, i, grant ? "TO" : "FROM"))
        return loch_errf(err, LOCH_ESYNTAX, "syntax error: expected %s at \"%s\"", grant ? "TO" : "FROM",
                         lex_rest(st, i));
    i++;
    rc = name_list(a, st, &i, &out->members, &out->n_members, "a role name", err);
    if (rc)
        return rc;
    if (lex_is(st, i, "WITH") || lex_is(st, i, "GRANTED")) {
        loch_errf(err, LOCH_EUNSUPPORTED, "%s ... %s is not supported", grant ? "GRANT" : "REVOKE", lex_rest(st, i));
        return loch_err_hint(err, "membership in loch has no options");
    }
    if (i < st->n_tok)
        return loch_errf(err, LOCH_ESYNTAX, "syntax error at \"%s\"", lex_rest(st, i));
    return 0;
}

int rolestmt_exec(struct catalog *cat, const struct role_stmt *r, const char **tag, struct loch_err *err)
{
    int rc = 0;
    enum principal_kind kind = r->is_user ? PRINCIPAL_USER : PRINCIPAL_ROLE;
    switch (r->op) {
    case ROLE_CREATE: {
        *tag = "CREATE ROLE";
        bool login = r->login < 0 ? r->is_user : r->login == 1;
        for (size_t k = 0; k < r->n_members; k++)
            if (!principal_exists(cat, r->members[k]))
                return loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", r->members[k]);
        rc = principal_create(cat, r->names[0], kind, login, r->set_password ? r->password : NULL, err);
        for (size_t k = 0; !rc && k < r->n_members; k++)
            rc = principal_grant_role(cat, r->members[k], r->names[0], err);
        return rc;
    }
    case ROLE_ALTER:
        *tag = "ALTER ROLE";
        if (!principal_exists(cat, r->names[0]))
            return loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", r->names[0]);
        if (r->set_password)
            rc = principal_set_password(cat, r->names[0], r->password, err);
        if (!rc && r->login >= 0)
            rc = principal_set_login(cat, r->names[0], r->login == 1, err);
        return rc;
    case ROLE_DROP:
        *tag = "DROP ROLE";
        for (size_t k = 0; k < r->n_names; k++)
            if (!r->if_exists && !principal_exists(cat, r->names[k]))
                return loch_errf(err, LOCH_ENOROLE, "role \"%s\" does not exist", r->names[k]);
        for (size_t k = 0; !rc && k < r->n_names; k++) {
            if (!principal_exists(cat, r->names[k]))
                continue;
            /* DROP USER and DROP ROLE both drop either kind, as in PostgreSQL. */
            rc = principal_drop(cat, r->names[k], kind, err);
            if (rc == LOCH_ENOROLE)
                rc = principal_drop(cat, r->names[k], r->is_user ? PRINCIPAL_ROLE : PRINCIPAL_USER, err);
        }
        return rc;
    case ROLE_GRANT:
    case ROLE_REVOKE:
        *tag = r->op == ROLE_GRANT ? "GRANT ROLE" : "REVOKE ROLE";
        for (size_t k = 0; k < r->n_names; k++)
            for (size_t m = 0; m < r->n_members; m++) {
                rc = r->op == ROLE_GRANT ? principal_grant_role(cat, r->names[k], r->members[m], err)
                                         : principal_revoke_role(cat, r->names[k], r->members[m], err);
                if (rc)
                    return rc;
            }
        return 0;
    }
    return loch_errf(err, LOCH_EINTERNAL, "unknown role statement");
}

char *rolestmt_redact(const char *sql)
{
    if (!sql)
        return xstrdup("");
    if (!strcasestr(sql, "PASSWORD"))
        return xstrdup(sql);
    struct arena *a = arena_new(); /* lifetime: this call */
    struct stmt *stmts;
    size_t n, bad;
    char *out;
    if (lex_split(a, sql, &stmts, &n, &bad) != 0) {
        out = xstrdup("/* statement mentioning PASSWORD redacted */");
    } else {
        struct buf b = {0};
        for (size_t k = 0; k < n; k++) {
            const struct stmt *s = &stmts[k];
            size_t at = 0;
            if (k)
                buf_puts(&b, "; ");
            bool cut = false; /* the rest of the statement is hidden */
            for (size_t i = 0; i < s->n_tok && !cut; i++) {
                if (!lex_is(s, i, "PASSWORD"))
                    continue;
                size_t v = i + 1; /* the value: 'x', $$x$$, or E'x' (a word E, then the string) */
                if (v + 1 < s->n_tok && lex_is(s, v, "E") && s->tok[v + 1].kind == TOK_STRING &&
                    s->tok[v + 1].off == s->tok[v].off + 1)
                    v++;
                size_t from = s->tok[i + 1 < s->n_tok ? i + 1 : i].off;
                if (i + 1 >= s->n_tok)
                    from = s->tok[i].off + s->tok[i].len;
                buf_append(&b, s->text + at, from - at);
                buf_puts(&b, i + 1 < s->n_tok ? "'********'" : "");
                if (v < s->n_tok && s->tok[v].kind == TOK_STRING) {
                    at = s->tok[v].off + s->tok[v].len;
                } else { /* a form we do not know: hide everything after the keyword */
                    at = s->text_len;
                    cut = true;
                }
            }
            /* Leading whitespace of later statements is dropped; the rest is verbatim. */
            const char *rest = s->text + at;
            if (at == 0)
                while (*rest == ' ' || *rest == '\n' || *rest == '\t' || *rest == '\r')
                    rest++;
            buf_puts(&b, rest);
        }
        out = buf_take(&b);
        if (!out)
            out = xstrdup("");
    }
    arena_free(a);
    return out;
}
