/* name.c: which namespace and table names the lake accepts. Every name becomes folders
 * (<warehouse>/<ns parts>/<table>/), a lock file (<state>/locks/<ns>.<table>.lock) and
 * DuckDB catalog/schema names, so a name is checked here before any of them is built.
 * Not for SQL identifier quoting (buf_sql_ident) or for access rules (access/). */
#include "catalog/catalog.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* DuckDB's own catalogs and schemas: a lake namespace spelled like one would make
 * `main.t` or `system.x` mean a lake view in one session and DuckDB's object in another.
 * The first level of a namespace is a DuckDB catalog (or, alone, a schema of the default
 * one); the deeper levels live inside an attached catalog, where only the two schemas
 * every DuckDB catalog has can clash. */
static const char *const reserved_first[] = {"main", "temp", "system", "memory", "pg_catalog", "information_schema",
                                             NULL};
static const char *const reserved_any[] = {"pg_catalog", "information_schema", NULL};

static bool reserved(const char *part, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (strlen(list[i]) == n && !strncasecmp(part, list[i], n))
            return true;
    return false;
}

/* Length of the UTF-8 sequence at p (at most n bytes left), 0 when malformed. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len;
    uint32_t min, cp;
    if (p[0] < 0x80)
        return 1;
    if ((p[0] & 0xe0) == 0xc0)
        len = 2, min = 0x80, cp = p[0] & 0x1f;
    else if ((p[0] & 0xf0) == 0xe0)
        len = 3, min = 0x800, cp = p[0] & 0x0f;
    else if ((p[0] & 0xf8) == 0xf0)
        len = 4, min = 0x10000, cp = p[0] & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Checks one part (a namespace level or a table name) of n bytes; what names what it is
 * ("namespace \"a.b\"", "table name \"x\""). */
static int check_part(const char *part, size_t n, bool first_ns_level, bool is_ns, const char *what,
                      struct loch_err *err)
{
    const char *hint = is_ns ? "namespace levels are joined by dots and each is a plain name, e.g. core.public"
                             : "use a plain name, e.g. accounts or order_items";
    if (n == 0) {
        loch_errf(err, LOCH_ENAME, "invalid %s: a %s is empty", what, is_ns ? "namespace level" : "table name");
        return loch_err_hint(err, "%s", hint);
    }
    if (n > CATALOG_NAME_MAX) {
        loch_errf(err, LOCH_ENAME, "invalid %s: a name is %zu bytes long, the most is %d", what, n, CATALOG_NAME_MAX);
        return loch_err_hint(err, "choose a shorter name");
    }
    if ((n == 1 && part[0] == '.') || (n == 2 && part[0] == '.' && part[1] == '.')) {
        loch_errf(err, LOCH_ENAME, "invalid %s: \".\" and \"..\" are not names", what);
        return loch_err_hint(err, "%s", hint);
    }
    /* what leaves a folder first: "a/.." says "/", not "." */
    for (size_t i = 0; i < n; i++)
        if (part[i] == '/' || part[i] == '\\') {
            loch_errf(err, LOCH_ENAME, "invalid %s: names may not contain \"%c\"", what, part[i]);
            return loch_err_hint(err, "names become folder names in the lake; %s", hint);
        }
    for (size_t i = 0; i < n;) {
        unsigned char ch = (unsigned char)part[i];
        if (ch == '*' || ch == '?' || ch == '[' || ch == ']') {
            loch_errf(err, LOCH_ENAME, "invalid %s: names may not contain the file pattern character \"%c\"", what,
                      ch);
            return loch_err_hint(err, "names become folder names the query engine reads by pattern; %s", hint);
        }
        if (ch < 0x20 || ch == 0x7f) {
            loch_errf(err, LOCH_ENAME, "invalid %s: names may not contain control characters (byte 0x%02x)", what,
                      ch);
            return loch_err_hint(err, "%s", hint);
        }
        if (!is_ns && ch == '.') {
            loch_errf(err, LOCH_ENAME, "invalid %s: a table name may not contain \".\"", what);
            return loch_err_hint(err, "a dot separates namespace levels from the table name; %s", hint);
        }
        size_t l = utf8_len((const unsigned char *)part + i, n - i);
        if (!l) {
            loch_errf(err, LOCH_ENAME, "invalid %s: names must be UTF-8 text", what);
            return loch_err_hint(err, "%s", hint);
        }
        i += l;
    }
    if (is_ns && reserved(part, n, first_ns_level ? reserved_first : reserved_any)) {
        loch_errf(err, LOCH_ENAME, "invalid %s: \"%.*s\" is a name the query engine reserves", what, (int)n, part);
        return loch_err_hint(err, "choose another namespace name; %s are reserved%s",
                             first_ns_level ? "main, temp, system, memory, pg_catalog and information_schema"
                                            : "pg_catalog and information_schema",
                             first_ns_level ? " as a namespace's first level" : "");
    }
    return 0;
}

/* Copies at most max bytes of s into out (size max + 4) for a message: control characters
 * as '?', "..." when cut. */
static void shown(char *out, const char *s, size_t max)
{
    size_t i = 0;
    for (; s[i] && i < max; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    strcpy(out + i, s[i] ? "..." : "");
}

int catalog_check_name(const char *ns, const char *name, struct loch_err *err)
{
    if (!ns) {
        loch_errf(err, LOCH_ENAME, "invalid namespace: none given");
        return loch_err_hint(err, "lake tables are named namespace.table, e.g. core.public.loans");
    }
    size_t ns_len = strlen(ns);
    char ns_shown[CATALOG_NAME_MAX + 4], name_shown[CATALOG_NAME_MAX + 4], what[2 * CATALOG_NAME_MAX + 64];
    shown(ns_shown, ns, CATALOG_NAME_MAX);
    snprintf(what, sizeof what, "namespace \"%s\"", ns_shown);
    /* the characters that leave a folder first, whichever level holds them */
    for (const char *p = ns; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 0x20 || *p == 0x7f)
            return check_part(p, 1, false, true, what, err);
    size_t depth = 0;
    for (const char *p = ns;; depth++) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        int rc = check_part(p, n, depth == 0, true, what, err);
        if (rc)
            return rc;
        if (!dot)
            break;
        p = dot + 1;
    }
    if (depth + 1 > CATALOG_NS_DEPTH_MAX) {
        loch_errf(err, LOCH_ENAME, "invalid %s: %zu levels, the most is %d", what, depth + 1, CATALOG_NS_DEPTH_MAX);
        return loch_err_hint(err, "use fewer namespace levels");
    }
    if (!name)
        return 0;
    size_t n = strlen(name);
    shown(name_shown, name, CATALOG_NAME_MAX);
    snprintf(what, sizeof what, "table name \"%s\" in namespace %s", name_shown, ns_shown);
    int rc = check_part(name, n, false, false, what, err);
    if (rc)
        return rc;
    /* the lock file <ns>.<name>.lock must fit one file name */
    if (ns_len + 1 + n > CATALOG_QUALIFIED_MAX) {
        loch_errf(err, LOCH_ENAME, "invalid name %s.%s: %zu bytes with its namespace, the most is %d", ns_shown,
                  name_shown, ns_len + 1 + n, CATALOG_QUALIFIED_MAX);
        return loch_err_hint(err, "choose a shorter table or namespace name");
    }
    return 0;
}
