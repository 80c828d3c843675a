/* rolestmt.h: the user and role statements, recognised on lex.h tokens before DuckDB
 * sees a statement (DuckDB has no users), and carried out through access/principal.h:
 *   CREATE USER|ROLE name [[WITH] option ...]     options: LOGIN | NOLOGIN |
 *   ALTER USER|ROLE name [WITH] option ...          [ENCRYPTED] PASSWORD 'pw' | PASSWORD NULL |
 *                                                   IN ROLE r, ... | no-op defaults (NOSUPERUSER, ...)
 *   DROP USER|ROLE [IF EXISTS] name, ...
 *   GRANT role, ... TO member, ...     REVOKE role, ... FROM member, ...
 * Not for table privileges (GRANT ... ON ...: reported as not supported yet). */
#ifndef LOCH_QUERY_ROLESTMT_H
#define LOCH_QUERY_ROLESTMT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"
#include "catalog/catalog.h"
#include "query/lex.h"

enum role_op { ROLE_CREATE, ROLE_ALTER, ROLE_DROP, ROLE_GRANT, ROLE_REVOKE };

struct role_stmt {
    enum role_op op;
    bool is_user;          /* CREATE/ALTER/DROP USER (vs ROLE) */
    bool if_exists;        /* DROP ... IF EXISTS */
    char **names;          /* CREATE/ALTER: one; DROP: each; GRANT/REVOKE: the roles */
    size_t n_names;
    char **members;        /* GRANT/REVOKE: the members; CREATE: IN ROLE roles */
    size_t n_members;
    int login;             /* -1 unchanged/default, 0 NOLOGIN, 1 LOGIN */
    bool set_password;     /* a PASSWORD option was given */
    char *password;        /* its value; NULL for PASSWORD NULL */
};

/* Recognises st as one of the statements above. *matched false (and 0) when it is not
 * one; when it is but is malformed: LOCH_ESYNTAX, or LOCH_EUNSUPPORTED for options and
 * forms loch does not have (table GRANTs, SUPERUSER, RENAME TO, ...). Strings in a.
 * Unquoted names fold to lower case, as in PostgreSQL. */
int rolestmt_parse(struct arena *a, const struct stmt *st, struct role_stmt *out, bool *matched,
                   struct loch_err *err);

/* Carries out r on the catalog (the caller has checked the session is an administrator).
 * *tag is PostgreSQL's command tag ("CREATE ROLE", "ALTER ROLE", "DROP ROLE",
 * "GRANT ROLE", "REVOKE ROLE"), static. */
int rolestmt_exec(struct catalog *cat, const struct role_stmt *r, const char **tag, struct loch_err *err);

/* A copy of sql (malloc'd) with the literal after every PASSWORD keyword ('x', $$x$$,
 * E'x') replaced by '********', for logs and query history: the one redaction rule of
 * both. After a PASSWORD keyword followed by anything else, the rest of that statement
 * is dropped; a script that cannot be tokenised and mentions PASSWORD is replaced whole. */
char *rolestmt_redact(const char *sql);

#endif
