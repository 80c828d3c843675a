/* intercept.c: the statements a PostgreSQL client sends that loch answers itself, with
 * no DuckDB: SET/RESET/SHOW of client parameters, transaction control, DISCARD; and the
 * column names of catalog queries loch cannot answer. Not for wire formats (server/). */
#include "query/query.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/mem.h"

/* Session parameters clients set at connect; they are remembered and shown, and change
 * nothing in DuckDB (whose own settings are not the client's to change). */
static const char *const known_params[] = {
    "application_name", "extra_float_digits", "client_encoding", "datestyle", "timezone", "search_path",
    "statement_timeout", "intervalstyle", "client_min_messages", "standard_conforming_strings",
    "bytea_output", "lc_messages", "lc_monetary", "lc_numeric", "lc_time", "default_transaction_isolation",
    "default_transaction_read_only", "idle_in_transaction_session_timeout", "lock_timeout", "jit",
    "session_characteristics", "transaction_isolation", "geqo", "join_collapse_limit", "role",
    "default_transaction_deferrable", "transaction_read_only", "server_version", "server_encoding",
    "integer_datetimes", "max_identifier_length", "is_superuser", "session_authorization", NULL};

static const char *param_value(const struct query_client *c, const char *name)
{
    if (!strcasecmp(name, "application_name"))
        return c->app_name ? c->app_name : "";
    if (!strcasecmp(name, "server_version"))
        return QUERY_SERVER_VERSION;
    if (!strcasecmp(name, "server_encoding") || !strcasecmp(name, "client_encoding"))
        return "UTF8";
    if (!strcasecmp(name, "datestyle"))
        return "ISO, MDY";
    if (!strcasecmp(name, "timezone"))
        return "UTC";
    if (!strcasecmp(name, "integer_datetimes") || !strcasecmp(name, "standard_conforming_strings"))
        return "on";
    if (!strcasecmp(name, "transaction_isolation") || !strcasecmp(name, "default_transaction_isolation"))
        return "read committed";
    if (!strcasecmp(name, "transaction_read_only") || !strcasecmp(name, "default_transaction_read_only"))
        return "off";
    if (!strcasecmp(name, "max_identifier_length"))
        return "63";
    if (!strcasecmp(name, "is_superuser"))
        return c->admin ? "on" : "off";
    if (!strcasecmp(name, "session_authorization"))
        return c->user;
    if (!strcasecmp(name, "search_path"))
        return "\"$user\", public";
    if (!strcasecmp(name, "statement_timeout") || !strcasecmp(name, "lock_timeout") ||
        !strcasecmp(name, "idle_in_transaction_session_timeout"))
        return "0";
    if (!strcasecmp(name, "intervalstyle"))
        return "postgres";
    if (!strcasecmp(name, "bytea_output"))
        return "hex";
    if (!strcasecmp(name, "client_min_messages"))
        return "notice";
    return "";
}

static bool is_known_param(const char *name)
{
    for (int i = 0; known_params[i]; i++)
        if (!strcasecmp(name, known_params[i]))
            return true;
    return false;
}

/* Words of a statement, lower-cased, at most n, for recognising SET/SHOW/BEGIN. */
static size_t words(const char *sql, char w[][64], size_t n)
{
    size_t k = 0;
    const char *p = sql;
    while (k < n) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
            p++;
        if (!*p)
            break;
        size_t l = 0;
        if (*p == '=' || *p == ',') {
            w[k][l++] = *p++;
        } else if (*p == '\'' || *p == '"') {
            char q = *p++;
            while (*p && *p != q && l < 63)
                w[k][l++] = *p++;
            if (*p == q)
                p++;
        } else {
            while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '=' && *p != ',' &&
                   *p != ';' && l < 63) {
                w[k][l++] = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
                p++;
            }
            if (*p == ';')
                p++;
            if (!l)
                break;
        }
        w[k][l] = '\0';
        k++;
    }
    return k;
}

enum query_intercept query_intercept(struct query_client *c, struct arena *a, const char *sql,
                                     struct query_answer *out)
{
    char w[6][64];
    size_t n = words(sql, w, 6);
    if (!n)
        return QUERY_IC_NONE;
    if (!strcmp(w[0], "begin") || (!strcmp(w[0], "start") && n > 1 && !strcmp(w[1], "transaction"))) {
        c->txn = 'T';
        out->tag = "BEGIN";
        return QUERY_IC_DONE;
    }
    if (!strcmp(w[0], "commit") || !strcmp(w[0], "end")) {
        c->txn = 'I';
        out->tag = "COMMIT";
        return QUERY_IC_DONE;
    }
    if (!strcmp(w[0], "rollback") || !strcmp(w[0], "abort")) {
        c->txn = 'I';
        out->tag = "ROLLBACK";
        return QUERY_IC_DONE;
    }
    if (!strcmp(w[0], "discard") || !strcmp(w[0], "unlisten")) {
        out->tag = !strcmp(w[0], "discard") ? "DISCARD ALL" : "UNLISTEN";
        return QUERY_IC_DONE;
    }
    if (!strcmp(w[0], "set") || !strcmp(w[0], "reset")) {
        size_t i = 1;
        if (n > 1 && (!strcmp(w[1], "session") || !strcmp(w[1], "local")))
            i = 2;
        if (n > i && (!strcmp(w[i], "transaction") || !strcmp(w[i], "session") || is_known_param(w[i]) ||
                      !strcmp(w[i], "time") || !strcmp(w[i], "names") || !strcmp(w[i], "all") ||
                      !strcmp(w[i], "characteristics"))) {
            if (!strcmp(w[i], "application_name") && !strcmp(w[0], "set")) {
                size_t v = (n > i + 1 && (!strcmp(w[i + 1], "=") || !strcmp(w[i + 1], "to"))) ? i + 2 : i + 1;
                free(c->app_name);
                c->app_name = xstrdup(n > v ? w[v] : "");
            }
            out->tag = !strcmp(w[0], "set") ? "SET" : "RESET";
            return QUERY_IC_DONE;
        }
        return QUERY_IC_NONE;
    }
    if (!strcmp(w[0], "show") && n > 1) {
        if (!strcmp(w[1], "transaction") && n > 3) { /* SHOW TRANSACTION ISOLATION LEVEL */
            out->name = "transaction_isolation";
            out->value = "read committed";
            return QUERY_IC_ROWS;
        }
        if (is_known_param(w[1])) {
            out->name = w[1][0] ? (const char *)arena_strdup(a, w[1]) : "";
            out->value = param_value(c, w[1]);
            return QUERY_IC_ROWS;
        }
    }
    return QUERY_IC_NONE;
}

/* ---------------------------------------------------------------- unanswerable catalog queries */

/* The output column names of a SELECT, read from its text: each top-level item of the
 * first select list, named by its alias (AS x) or its last identifier. For catalog
 * queries loch cannot run: the client still gets a result set of the shape it asked for,
 * with no rows (JDBC refuses "no results" from an executeQuery). */
size_t query_guess_columns(struct arena *a, const char *sql, char ***out)
{
    const char *p = strcasestr(sql, "select");
    size_t n = 0, cap = 0;
    char **names = NULL;
    if (!p) {
        *out = NULL;
        return 0;
    }
    p += 6;
    int depth = 0;
    const char *item = p;
    for (;; p++) {
        bool end = !*p;
        if (!end && (*p == '\'' || *p == '"')) {
            char q = *p++;
            while (*p && *p != q)
                p++;
            if (!*p)
                end = true;
            else
                continue;
        }
        if (!end && (*p == '(' || *p == '['))
            depth++;
        else if (!end && (*p == ')' || *p == ']'))
            depth--;
        bool from = !end && depth == 0 && !strncasecmp(p, "from", 4) && (p[4] == ' ' || p[4] == '\n' ||
                    p[4] == '\t' || p[4] == '\r') && (p[-1] == ' ' || p[-1] == '\n' || p[-1] == '\t' || p[-1] == '\r');
        if (end || from || (depth == 0 && *p == ',')) {
            const char *e = p;
            while (e > item && (e[-1] == ' ' || e[-1] == '\n' || e[-1] == '\t' || e[-1] == '\r'))
                e--;
            const char *b = e;
            if (b > item && b[-1] == '"') { /* "Quoted Name" */
                b--;
                while (b > item && b[-1] != '"')
                    b--;
                e--;
            } else {
                while (b > item && (isalnum((unsigned char)b[-1]) || b[-1] == '_'))
                    b--;
            }
            if (e > item) {
                if (n == cap) {
                    size_t nc = cap ? cap * 2 : 16;
                    names = arena_grow(a, names, cap, nc, sizeof *names);
                    cap = nc;
                }
                names[n++] = b < e ? arena_strndup(a, b, (size_t)(e - b)) : arena_strdup(a, "?column?");
            }
            item = p + 1;
            if (end || from)
                break;
        }
    }
    *out = names;
    return n;
}

