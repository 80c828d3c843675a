/* util.c: the MySQL source's small pure helpers (mysql.h): URL, positions, globs, the
 * information_schema -> binlog column mapping, DDL recognition, MySQL GTID sets and the
 * choice of a resume file from them. No network here. */
#include <ctype.h>
#include <curl/curl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "cdc/mysql/mysql.h"

/* ---- the source URL (RFC 3986 through libcurl's URL API) ---- */

/* url for messages: a password in it replaced by "***". */
static const char *url_shown(const char *url, struct arena *a)
{
    const char *auth = strstr(url, "://");
    if (!auth)
        return url;
    auth += 3;
    size_t n = strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *q = auth; q < auth + n; q++)
        if (*q == '@')
            at = q;
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (!colon)
        return url;
    return arena_printf(a, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

static int url_fail(const char *url, const char *what, struct arena *a, struct loch_err *err)
{
    loch_errf(err, LOCH_ECONFIG, "source url \"%s\": %s", url_shown(url, a), what);
    return loch_err_hint(err, "write it as mysql://USER[:PASSWORD]@HOST[:PORT][/?tls=off|require|verify]; "
                              "in USER and PASSWORD write @ as %%40, : as %%3A, / as %%2F, %% as %%25");
}

/* Part `what` of h into *out (in a; percent-decoded with CURLU_URLDECODE in flags), NULL
 * when the URL has no such part. Other failures are the libcurl code. */
static CURLUcode url_part(CURLU *h, CURLUPart what, unsigned flags, struct arena *a, char **out)
{
    char *v = NULL;
    *out = NULL;
    CURLUcode uc = curl_url_get(h, what, &v, flags);
    if (uc == CURLUE_NO_USER || uc == CURLUE_NO_PASSWORD || uc == CURLUE_NO_HOST || uc == CURLUE_NO_PORT ||
        uc == CURLUE_NO_QUERY || uc == CURLUE_NO_ZONEID)
        return CURLUE_OK;
    if (uc)
        return uc;
    *out = arena_strdup(a, v);
    curl_free(v);
    return CURLUE_OK;
}

/* The parts of the URL in h into out; the server's defaults stay for parts it lacks. */
static int url_params(CURLU *h, const char *url, struct arena *a, struct mysrc_params *out, struct loch_err *err)
{
    char *user, *password, *host, *zone, *port, *query;
    CURLUcode uc;
    if ((uc = url_part(h, CURLUPART_USER, CURLU_URLDECODE, a, &user)) ||
        (uc = url_part(h, CURLUPART_PASSWORD, CURLU_URLDECODE, a, &password)) ||
        (uc = url_part(h, CURLUPART_HOST, 0, a, &host)) || (uc = url_part(h, CURLUPART_ZONEID, 0, a, &zone)) ||
        (uc = url_part(h, CURLUPART_PORT, 0, a, &port)) || (uc = url_part(h, CURLUPART_QUERY, 0, a, &query)))
        return url_fail(url, curl_url_strerror(uc), a, err);
    if (!user || !*user)
        return url_fail(url, "names no user", a, err);
    out->user = user;
    out->password = password;
    if (host && host[0] == '[') { /* IPv6: the brackets go, a zone id joins as "%zone" */
        host[strlen(host) - 1] = 0;
        host++;
        if (zone)
            host = arena_printf(a, "%s%%%s", host, zone);
    }
    if (host && *host)
        out->host = host;
    if (port) {
        char *e;
        long n = strtol(port, &e, 10);
        if (*e || n <= 0 || n > 65535)
            return url_fail(url, "the port is not a number in 1..65535", a, err);
        out->port = (unsigned)n;
    }
    for (char *save = NULL, *kv = query ? strtok_r(query, "&", &save) : NULL; kv; kv = strtok_r(NULL, "&", &save)) {
        if (strncmp(kv, "tls=", 4) != 0)
            continue; /* other parameters are not loch's */
        out->tls = kv + 4;
        if (strcmp(out->tls, "off") && strcmp(out->tls, "require") && strcmp(out->tls, "verify"))
            return url_fail(url, arena_printf(a, "tls=%s is not off, require or verify", out->tls), a, err);
    }
    return 0;
}

int mysrc_params_parse(const char *url, const char *password_env, struct arena *a,
                       struct mysrc_params *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    out->host = "127.0.0.1";
    out->port = 3306;
    if (!url || strncmp(url, "mysql://", 8) != 0) {
        loch_errf(err, LOCH_ECONFIG, "source url \"%s\" is not a mysql:// URL", url ? url_shown(url, a) : "");
        return loch_err_hint(err, "write it as mysql://USER@HOST:PORT (e.g. mysql://repl@10.0.0.6:3306)");
    }
    CURLU *h = curl_url();
    if (!h)
        return loch_errf(err, LOCH_ENOMEM, "curl_url: out of memory");
    CURLUcode uc = curl_url_set(h, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    int rc;
    if (uc == CURLUE_BAD_PORT_NUMBER)
        rc = url_fail(url, "the port is not a number in 1..65535", a, err);
    else if (uc == CURLUE_NO_HOST)
        rc = url_fail(url, "names no host", a, err);
    else if (uc)
        rc = url_fail(url, curl_url_strerror(uc), a, err);
    else
        rc = url_params(h, url, a, out, err);
    curl_url_cleanup(h);
    if (rc)
        return rc;
    if (password_env) {
        const char *pw = getenv(password_env);
        if (!pw) {
            loch_errf(err, LOCH_ECONFIG, "password_env names %s, which is not set", password_env);
            return loch_err_hint(err, "export %s=... before starting loch", password_env);
        }
        out->password = arena_strdup(a, pw);
    }
    return 0;
}

int mysrc_pos_parse(const char *text, struct mysrc_pos *out, struct loch_err *err)
{
    memset(out, 0, sizeof *out);
    const char *colon = text ? strchr(text, ':') : NULL;
    if (!colon || colon == text || (size_t)(colon - text) >= sizeof out->file) {
        loch_errf(err, LOCH_ECORRUPT, "MySQL checkpoint \"%s\" is not FILE:POS", text ? text : "");
        return LOCH_ECORRUPT;
    }
    memcpy(out->file, text, (size_t)(colon - text));
    char *e;
    out->pos = strtoull(colon + 1, &e, 10);
    if (e == colon + 1 || (*e && *e != ' ')) {
        loch_errf(err, LOCH_ECORRUPT, "MySQL checkpoint \"%s\": position is not a number", text);
        return LOCH_ECORRUPT;
    }
    const char *g = strstr(e, " gtid=");
    const char *gs = strstr(e, " gtid_set=");
    if (gs) {
        g = gs + 10;
        out->gtid_is_set = true;
    } else if (g) {
        g += 6;
    }
    if (g) {
        size_t n = strlen(g);
        if (n >= sizeof out->gtid) {
            loch_errf(err, LOCH_ECORRUPT, "MySQL checkpoint %s:%" PRIu64 ": its GTID text of %zu bytes is "
                      "longer than loch keeps (%zu)", out->file, out->pos, n, sizeof out->gtid - 1);
            out->gtid_is_set = false;
            return LOCH_ECORRUPT;
        }
        memcpy(out->gtid, g, n + 1);
    }
    return 0;
}

char *mysrc_pos_format(const struct mysrc_pos *p, struct arena *a)
{
    if (p->gtid[0])
        return arena_printf(a, "%s:%" PRIu64 " %s=%s", p->file, p->pos, p->gtid_is_set ? "gtid_set" : "gtid",
                            p->gtid);
    return arena_printf(a, "%s:%" PRIu64, p->file, p->pos);
}

static uint64_t file_seq(const char *f)
{
    const char *dot = strrchr(f, '.');
    return dot ? strtoull(dot + 1, NULL, 10) : 0;
}

int mysrc_pos_cmp(const struct mysrc_pos *a, const struct mysrc_pos *b)
{
    uint64_t fa = file_seq(a->file), fb = file_seq(b->file);
    if (fa != fb)
        return fa < fb ? -1 : 1;
    return a->pos < b->pos ? -1 : a->pos > b->pos ? 1 : 0;
}

static bool glob_match(const char *glob, const char *db, const char *table)
{
    const char *dot = strchr(glob, '.');
    if (!dot)
        return fnmatch(glob, db, 0) == 0;
    char g[512];
    snprintf(g, sizeof g, "%.*s", (int)(dot - glob), glob);
    return fnmatch(g, db, 0) == 0 && fnmatch(dot + 1, table, 0) == 0;
}

bool mysrc_table_selected(const char *db, const char *table, const char **include, size_t n_include,
                          const char **exclude, size_t n_exclude)
{
    static const char *const system_dbs[] = {"mysql", "sys", "information_schema",
                                             "performance_schema"};
    for (size_t i = 0; i < sizeof system_dbs / sizeof system_dbs[0]; i++)
        if (!strcmp(db, system_dbs[i]))
            return false;
    bool in = n_include == 0;
    for (size_t i = 0; i < n_include && !in; i++)
        in = glob_match(include[i], db, table);
    for (size_t i = 0; i < n_exclude && in; i++)
        if (glob_match(exclude[i], db, table))
            in = false;
    return in;
}

void mysrc_buf_ident(struct buf *b, const char *s)
{
    buf_putc(b, '`');
    for (; *s; s++) {
        if (*s == '`')
            buf_putc(b, '`');
        buf_putc(b, *s);
    }
    buf_putc(b, '`');
}

char *mysrc_ident(struct arena *a, const char *s)
{
    struct buf b = {0};
    mysrc_buf_ident(&b, s);
    char *o = arena_strdup(a, b.data);
    buf_free(&b);
    return o;
}

int mysrc_column_from_schema(const char *data_type, const char *column_type, int64_t precision,
                             int64_t scale, int64_t dt_precision, const char *charset,
                             int64_t octet_len, bool is_mariadb, struct arena *a,
                             struct binlog_column *c, struct loch_err *err)
{
    bool uns = column_type && strstr(column_type, "unsigned") != NULL;
    bool binary = !charset || !strcmp(charset, "binary");
    memset(c, 0, sizeof *c);
    c->collation = -1;
    c->is_unsigned = uns;
#define IS(s) (!strcmp(data_type, s))
    if (IS("tinyint")) c->type = BL_TINY;
    else if (IS("smallint")) c->type = BL_SHORT;
    else if (IS("mediumint")) c->type = BL_INT24;
    else if (IS("int") || IS("integer")) c->type = BL_LONG;
    else if (IS("bigint")) c->type = BL_LONGLONG;
    else if (IS("decimal") || IS("numeric")) {
        c->type = BL_NEWDECIMAL;
        c->meta = (uint16_t)(precision << 8 | scale);
    } else if (IS("float")) c->type = BL_FLOAT;
    else if (IS("double") || IS("real")) c->type = BL_DOUBLE;
    else if (IS("bit")) {
        c->type = BL_BIT;
        c->meta = (uint16_t)precision;
    } else if (IS("year")) c->type = BL_YEAR;
    else if (IS("date")) c->type = BL_DATE;
    else if (IS("time")) {
        c->type = BL_TIME2;
        c->meta = (uint16_t)dt_precision;
    } else if (IS("datetime")) {
        c->type = BL_DATETIME2;
        c->meta = (uint16_t)dt_precision;
    } else if (IS("timestamp")) {
        c->type = BL_TIMESTAMP2;
        c->meta = (uint16_t)dt_precision;
    } else if (IS("char") || IS("binary")) {
        c->type = BL_STRING;
        c->meta = (uint16_t)octet_len;
        c->collation = IS("binary") || binary ? 63 : 33;
    } else if (IS("varchar") || IS("varbinary")) {
        c->type = BL_VARCHAR;
        c->meta = (uint16_t)octet_len;
        c->collation = IS("varbinary") || binary ? 63 : 33;
    } else if (IS("tinytext") || IS("text") || IS("mediumtext") || IS("longtext")) {
        c->type = BL_BLOB;
        c->meta = 4;
        c->collation = binary ? 63 : 33;
    } else if (IS("tinyblob") || IS("blob") || IS("mediumblob") || IS("longblob")) {
        c->type = BL_BLOB;
        c->meta = 4;
        c->collation = 63;
    } else if (IS("json")) {
        c->type = is_mariadb ? BL_BLOB : BL_JSON;
        c->meta = 4;
        c->collation = is_mariadb ? 33 : -1;
    } else if (IS("enum")) {
        c->type = BL_ENUM;
        c->meta = 2;
    } else if (IS("set")) {
        c->type = BL_SET;
        c->meta = 8;
    } else if (IS("geometry") || IS("point") || IS("linestring") || IS("polygon") ||
               IS("multipoint") || IS("multilinestring") || IS("multipolygon") ||
               IS("geometrycollection")) {
        c->type = BL_GEOMETRY;
        c->meta = 4;
    } else {
        loch_errf(err, LOCH_EUNSUPPORTED, "MySQL type %s is not supported", column_type ? column_type : data_type);
        return LOCH_EUNSUPPORTED;
    }
#undef IS
    (void)a;
    return 0;
}

/* ---- DDL recognition ---- */

struct lex {
    const char *p;
    char tok[256];
    bool quoted;
};

/* Next token: a word, a `quoted` name, or one punctuation character; "" at the end. */
static bool next(struct lex *l)
{
    for (;;) {
        while (isspace((unsigned char)*l->p))
            l->p++;
        if (l->p[0] == '/' && l->p[1] == '*') {
            const char *e = strstr(l->p + 2, "*/");
            l->p = e ? e + 2 : l->p + strlen(l->p);
            continue;
        }
        if ((l->p[0] == '-' && l->p[1] == '-') || l->p[0] == '#') {
            l->p += strcspn(l->p, "\n");
            continue;
        }
        break;
    }
    size_t n = 0;
    l->quoted = false;
    if (!*l->p) {
        l->tok[0] = 0;
        return false;
    }
    if (*l->p == '`') {
        l->quoted = true;
        l->p++;
        while (*l->p) {
            if (*l->p == '`') {
                if (l->p[1] == '`') {
                    l->p++;
                } else {
                    l->p++;
                    break;
                }
            }
            if (n < sizeof l->tok - 1)
                l->tok[n++] = *l->p;
            l->p++;
        }
    } else if (isalnum((unsigned char)*l->p) || *l->p == '_' || *l->p == '$' ||
               (unsigned char)*l->p >= 0x80) {
        while (isalnum((unsigned char)*l->p) || *l->p == '_' || *l->p == '$' ||
               (unsigned char)*l->p >= 0x80) {
            if (n < sizeof l->tok - 1)
                l->tok[n++] = *l->p;
            l->p++;
        }
    } else {
        l->tok[n++] = *l->p++;
    }
    l->tok[n] = 0;
    return true;
}

static bool kw(const struct lex *l, const char *w)
{
    return !l->quoted && !strcasecmp(l->tok, w);
}

/* [db.]name at the current token; advances past it. */
static bool qualified(struct lex *l, struct arena *a, const char **db, const char **name)
{
    if (!l->tok[0])
        return false;
    char first[256];
    snprintf(first, sizeof first, "%s", l->tok);
    const char *save = l->p;
    next(l);
    if (!strcmp(l->tok, ".")) {
        next(l);
        *db = arena_strdup(a, first);
        *name = arena_strdup(a, l->tok);
        next(l);
    } else {
        (void)save;
        *db = NULL;
        *name = arena_strdup(a, first);
    }
    return true;
}

static void push_table(struct mysrc_ddl *d, struct arena *a, const char *db, const char *name)
{
    d->dbs = arena_grow(a, d->dbs, d->n_tables, d->n_tables + 1, sizeof *d->dbs);
    d->tables = arena_grow(a, d->tables, d->n_tables, d->n_tables + 1, sizeof *d->tables);
    d->dbs[d->n_tables] = db;
    d->tables[d->n_tables++] = name;
}

static void push_rename(struct mysrc_ddl *d, struct arena *a, const char *from, const char *to)
{
    d->rename_from = arena_grow(a, d->rename_from, d->n_renames, d->n_renames + 1, sizeof(char *));
    d->rename_to = arena_grow(a, d->rename_to, d->n_renames, d->n_renames + 1, sizeof(char *));
    d->rename_from[d->n_renames] = from;
    d->rename_to[d->n_renames++] = to;
}

/* TRUNCATE [TABLE] t */
static void ddl_truncate(struct lex *l, struct arena *a, struct mysrc_ddl *d)
{
    const char *db, *name;
    next(l);
    if (kw(l, "TABLE"))
        next(l);
    if (qualified(l, a, &db, &name)) {
        d->kind = MYSRC_DDL_TRUNCATE;
        push_table(d, a, db, name);
    }
}

/* DROP TABLE [IF EXISTS] t[, t2 ...] (not TEMPORARY) */
static void ddl_drop(struct lex *l, struct arena *a, struct mysrc_ddl *d)
{
    const char *db, *name;
    next(l);
    if (kw(l, "TEMPORARY"))
        return; /* temporary tables are never replicated as rows */
    if (!kw(l, "TABLE"))
        return;
    next(l);
    if (kw(l, "IF")) {
        next(l); /* EXISTS */
        next(l);
    }
    d->kind = MYSRC_DDL_DROP;
    while (qualified(l, a, &db, &name)) {
        push_table(d, a, db, name);
        if (strcmp(l->tok, ","))
            break;
        next(l);
    }
}

/* RENAME TABLE[S] a TO b[, c TO d ...] */
static void ddl_rename(struct lex *l, struct arena *a, struct mysrc_ddl *d)
{
    const char *db, *name;
    next(l);
    if (!kw(l, "TABLE") && !kw(l, "TABLES"))
        return;
    next(l);
    d->kind = MYSRC_DDL_RENAME;
    for (;;) {
        const char *db2, *name2;
        if (!qualified(l, a, &db, &name) || !kw(l, "TO"))
            break;
        next(l);
        if (!qualified(l, a, &db2, &name2))
            break;
        push_table(d, a, db, name);
        push_table(d, a, db2, name2);
        if (strcmp(l->tok, ","))
            break;
        next(l);
    }
}

/* CREATE [OR REPLACE] TABLE [IF NOT EXISTS] t (not TEMPORARY) */
static void ddl_create(struct lex *l, struct arena *a, struct mysrc_ddl *d)
{
    const char *db, *name;
    next(l);
    if (kw(l, "OR")) { /* OR REPLACE */
        next(l);
        next(l);
    }
    if (kw(l, "TEMPORARY") || !kw(l, "TABLE"))
        return;
    next(l);
    if (kw(l, "IF")) { /* IF NOT EXISTS */
        next(l);
        next(l);
        next(l);
    }
    if (qualified(l, a, &db, &name)) {
        d->kind = MYSRC_DDL_CREATE;
        push_table(d, a, db, name);
    }
}

/* ALTER [ONLINE|IGNORE] TABLE [IF EXISTS] t ...: its column renames, or a table rename (RENAME TO) */
static void ddl_alter(struct lex *l, struct arena *a, struct mysrc_ddl *d)
{
    const char *db, *name;
    next(l);
    while (kw(l, "ONLINE") || kw(l, "IGNORE"))
        next(l);
    if (!kw(l, "TABLE"))
        return;
    next(l);
    if (kw(l, "IF")) { /* IF EXISTS */
        next(l);
        next(l);
    }
    if (!qualified(l, a, &db, &name))
        return;
    d->kind = MYSRC_DDL_ALTER;
    push_table(d, a, db, name);
    /* Column renames: RENAME COLUMN a TO b, CHANGE [COLUMN] [IF EXISTS] a b type.
     * Other specs change the shape, which the next TABLE_MAP carries. */
    int depth = 0;
    while (l->tok[0]) {
        if (!strcmp(l->tok, "("))
            depth++;
        else if (!strcmp(l->tok, ")"))
            depth--;
        else if (depth == 0 && kw(l, "RENAME")) {
            next(l);
            if (kw(l, "COLUMN")) {
                next(l);
                char from[256];
                snprintf(from, sizeof from, "%s", l->tok);
                next(l);
                if (kw(l, "TO")) {
                    next(l);
                    push_rename(d, a, arena_strdup(a, from), arena_strdup(a, l->tok));
                }
            } else if (kw(l, "TO") || kw(l, "AS")) {
                /* ALTER TABLE t RENAME TO u: a table rename */
                const char *db2, *name2;
                next(l);
                if (qualified(l, a, &db2, &name2)) {
                    d->kind = MYSRC_DDL_RENAME;
                    push_table(d, a, db2, name2);
                    d->n_renames = 0;
                    return;
                }
            }
            continue;
        } else if (depth == 0 && kw(l, "CHANGE")) {
            next(l);
            if (kw(l, "COLUMN"))
                next(l);
            if (kw(l, "IF")) {
                next(l);
                next(l);
            }
            char from[256];
            snprintf(from, sizeof from, "%s", l->tok);
            next(l);
            if (strcmp(from, l->tok) != 0)
                push_rename(d, a, arena_strdup(a, from), arena_strdup(a, l->tok));
        }
        next(l);
    }
}

/* Statements by their first keyword; BEGIN and COMMIT have no tables. */
void mysrc_ddl_parse(const char *sql, struct arena *a, struct mysrc_ddl *d)
{
    static const struct {
        const char *keyword;
        void (*parse)(struct lex *l, struct arena *a, struct mysrc_ddl *d);
    } statements[] = {
        {"TRUNCATE", ddl_truncate},
        {"DROP", ddl_drop},
        {"RENAME", ddl_rename},
        {"CREATE", ddl_create},
        {"ALTER", ddl_alter},
    };
    struct lex l = {.p = sql};
    memset(d, 0, sizeof *d);
    next(&l);
    if (kw(&l, "BEGIN") || kw(&l, "XA")) {
        d->kind = MYSRC_DDL_BEGIN;
        return;
    }
    if (kw(&l, "COMMIT")) {
        d->kind = MYSRC_DDL_COMMIT;
        return;
    }
    for (size_t i = 0; i < sizeof statements / sizeof statements[0]; i++)
        if (kw(&l, statements[i].keyword)) {
            statements[i].parse(&l, a, d);
            return;
        }
}

/* ---- MySQL GTID sets ----
 * The text form is MySQL's Gtid_set::to_string (sql/rpl_gtid_set.cc) and its parser
 * Gtid_set::add_gtid_text: uuid(:interval)* joined by ',', whitespace anywhere between
 * tokens, empty elements skipped; an interval is n or n-m, 1 <= n <= m < 2^63-1 (GNO_END). */

#define GNO_MAX ((uint64_t)INT64_MAX - 1)

static int uuid_cmp(const uint8_t *a, const uint8_t *b)
{
    return memcmp(a, b, 16);
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* 8-4-4-4-12 hex digits; *used = 36 on success. */
static bool parse_uuid(const char *p, uint8_t out[16], size_t *used)
{
    size_t k = 0, i = 0;
    for (; k < 16; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i] != '-')
                return false;
            continue;
        }
        int hi = hexval((unsigned char)p[i]);
        int lo = hi < 0 ? -1 : hexval((unsigned char)p[i + 1]);
        if (lo < 0)
            return false;
        out[k++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    *used = i;
    return true;
}

/* Decimal 1..GNO_MAX; *used digits. */
static bool parse_gno(const char *p, uint64_t *out, size_t *used)
{
    uint64_t v = 0;
    size_t i = 0;
    while (p[i] >= '0' && p[i] <= '9') {
        if (v > (GNO_MAX - (uint64_t)(p[i] - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
        i++;
    }
    if (i == 0 || v == 0)
        return false;
    *out = v;
    *used = i;
    return true;
}

int mysrc_gtid_parse(const char *text, struct mysrc_gtid *out, struct loch_err *err)
{
    size_t u, d;
    memset(out, 0, sizeof *out);
    if (!text || !parse_uuid(text, out->uuid, &u) || text[u] != ':' || !parse_gno(text + u + 1, &out->seq, &d) ||
        text[u + 1 + d]) {
        loch_errf(err, LOCH_ECORRUPT, "\"%.80s\" is not a MySQL GTID (uuid:n)", text ? text : "");
        return LOCH_ECORRUPT;
    }
    return 0;
}

void mysrc_gtid_set_free(struct mysrc_gtid_set *s)
{
    for (size_t i = 0; i < s->n_sids; i++)
        free(s->sids[i].ranges);
    free(s->sids);
    memset(s, 0, sizeof *s);
}

/* Binary search: index of uuid, or where it would be inserted (*found false). */
static size_t sid_find(const struct mysrc_gtid_set *s, const uint8_t *uuid, bool *found)
{
    size_t lo = 0, hi = s->n_sids;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = uuid_cmp(s->sids[mid].uuid, uuid);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct mysrc_gtid_sid *sid_get(struct mysrc_gtid_set *s, const uint8_t *uuid)
{
    bool found;
    size_t i = sid_find(s, uuid, &found);
    if (found)
        return &s->sids[i];
    if (s->n_sids == s->cap_sids) {
        s->cap_sids = s->cap_sids ? s->cap_sids * 2 : 4;
        s->sids = xrealloc(s->sids, s->cap_sids * sizeof *s->sids);
    }
    memmove(&s->sids[i + 1], &s->sids[i], (s->n_sids - i) * sizeof *s->sids);
    s->n_sids++;
    memset(&s->sids[i], 0, sizeof s->sids[i]);
    memcpy(s->sids[i].uuid, uuid, 16);
    return &s->sids[i];
}

/* First range whose last >= v (n_ranges when none). */
static size_t range_at(const struct mysrc_gtid_sid *sd, uint64_t v)
{
    size_t lo = 0, hi = sd->n_ranges;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sd->ranges[mid].last < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Adds [first, last] (1 <= first <= last <= GNO_MAX), merging overlapping and adjacent ranges. */
static void sid_add(struct mysrc_gtid_sid *sd, uint64_t first, uint64_t last)
{
    size_t n = sd->n_ranges;
    if (n && sd->ranges[n - 1].last + 1 >= first && sd->ranges[n - 1].first <= first) { /* the stream's case */
        if (last > sd->ranges[n - 1].last)
            sd->ranges[n - 1].last = last;
        return;
    }
    size_t i = range_at(sd, first - 1); /* first range that overlaps or touches from below */
    size_t j = i;
    while (j < n && sd->ranges[j].first <= last + 1)
        j++;
    if (j > i) { /* ranges i..j-1 merge with [first, last] into one at i */
        struct mysrc_gtid_range r = {first < sd->ranges[i].first ? first : sd->ranges[i].first,
                                     last > sd->ranges[j - 1].last ? last : sd->ranges[j - 1].last};
        sd->ranges[i] = r;
        memmove(&sd->ranges[i + 1], &sd->ranges[j], (n - j) * sizeof *sd->ranges);
        sd->n_ranges = n - (j - i - 1);
        return;
    }
    if (n == sd->cap_ranges) {
        sd->cap_ranges = sd->cap_ranges ? sd->cap_ranges * 2 : 4;
        sd->ranges = xrealloc(sd->ranges, sd->cap_ranges * sizeof *sd->ranges);
    }
    memmove(&sd->ranges[i + 1], &sd->ranges[i], (n - i) * sizeof *sd->ranges);
    sd->ranges[i] = (struct mysrc_gtid_range){first, last};
    sd->n_ranges = n + 1;
}

void mysrc_gtid_set_add(struct mysrc_gtid_set *s, const struct mysrc_gtid *g)
{
    sid_add(sid_get(s, g->uuid), g->seq, g->seq);
}

void mysrc_gtid_set_union(struct mysrc_gtid_set *s, const struct mysrc_gtid_set *b)
{
    for (size_t i = 0; i < b->n_sids; i++) {
        if (b->sids[i].n_ranges == 0)
            continue;
        struct mysrc_gtid_sid *sd = sid_get(s, b->sids[i].uuid);
        for (size_t r = 0; r < b->sids[i].n_ranges; r++)
            sid_add(sd, b->sids[i].ranges[r].first, b->sids[i].ranges[r].last);
    }
}

bool mysrc_gtid_set_contains(const struct mysrc_gtid_set *s, const struct mysrc_gtid *g)
{
    bool found;
    size_t i = sid_find(s, g->uuid, &found);
    if (!found)
        return false;
    const struct mysrc_gtid_sid *sd = &s->sids[i];
    size_t r = range_at(sd, g->seq);
    return r < sd->n_ranges && sd->ranges[r].first <= g->seq;
}

bool mysrc_gtid_set_subset(const struct mysrc_gtid_set *a, const struct mysrc_gtid_set *b)
{
    for (size_t i = 0; i < a->n_sids; i++) {
        const struct mysrc_gtid_sid *sa = &a->sids[i];
        if (sa->n_ranges == 0)
            continue;
        bool found;
        size_t k = sid_find(b, sa->uuid, &found);
        if (!found)
            return false;
        const struct mysrc_gtid_sid *sb = &b->sids[k];
        /* b's ranges are maximal, so a range of a is within b only inside one of them */
        for (size_t r = 0; r < sa->n_ranges; r++) {
            size_t at = range_at(sb, sa->ranges[r].first);
            if (at == sb->n_ranges || sb->ranges[at].first > sa->ranges[r].first ||
                sb->ranges[at].last < sa->ranges[r].last)
                return false;
        }
    }
    return true;
}

char *mysrc_gtid_set_format(const struct mysrc_gtid_set *s, struct arena *a)
{
    struct buf b = {0};
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < s->n_sids; i++) {
        const struct mysrc_gtid_sid *sd = &s->sids[i];
        if (sd->n_ranges == 0)
            continue;
        if (b.len)
            buf_putc(&b, ',');
        for (int k = 0; k < 16; k++) {
            if (k == 4 || k == 6 || k == 8 || k == 10)
                buf_putc(&b, '-');
            buf_putc(&b, hex[sd->uuid[k] >> 4]);
            buf_putc(&b, hex[sd->uuid[k] & 15]);
        }
        for (size_t r = 0; r < sd->n_ranges; r++) {
            if (sd->ranges[r].first == sd->ranges[r].last)
                buf_printf(&b, ":%" PRIu64, sd->ranges[r].first);
            else
                buf_printf(&b, ":%" PRIu64 "-%" PRIu64, sd->ranges[r].first, sd->ranges[r].last);
        }
    }
    char *out = arena_strndup(a, b.data ? b.data : "", b.len);
    buf_free(&b);
    return out;
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static int set_syntax(const char *text, const char *at, const char *what, struct loch_err *err)
{
    loch_errf(err, LOCH_ECORRUPT, "MySQL GTID set: %s at offset %zu (\"%.40s\")", what, (size_t)(at - text), at);
    return loch_err_detail(err, "a GTID set reads uuid:1-5:7,uuid2:1-100");
}

int mysrc_gtid_set_parse(const char *text, struct mysrc_gtid_set *out, struct loch_err *err)
{
    mysrc_gtid_set_free(out);
    if (!text)
        return 0;
    const char *p = skip_ws(text);
    int rc = 0;
    while (*p && !rc) {
        if (*p == ',') { /* empty elements, as MySQL allows */
            p = skip_ws(p + 1);
            continue;
        }
        uint8_t uuid[16];
        size_t used;
        if (!parse_uuid(p, uuid, &used)) {
            rc = set_syntax(text, p, "expected a server uuid", err);
            break;
        }
        p = skip_ws(p + used);
        struct mysrc_gtid_sid *sd = sid_get(out, uuid);
        while (*p == ':' && !rc) {
            p = skip_ws(p + 1);
            uint64_t first, last;
            if (isalpha((unsigned char)*p) || *p == '_') {
                loch_errf(err, LOCH_EUNSUPPORTED, "MySQL GTID set has a tagged GTID (\"%.40s\" at offset %zu)",
                          p, (size_t)(p - text));
                rc = loch_err_hint(err, "tagged GTIDs (MySQL 8.3+, SET gtid_next='AUTOMATIC:tag') are not "
                                        "supported by loch");
                break;
            }
            if (!parse_gno(p, &first, &used)) {
                rc = set_syntax(text, p, "expected a transaction number 1..9223372036854775806", err);
                break;
            }
            p = skip_ws(p + used);
            last = first;
            if (*p == '-') {
                p = skip_ws(p + 1);
                if (!parse_gno(p, &last, &used) || last < first) {
                    rc = set_syntax(text, p, "expected the interval's end, not below its start", err);
                    break;
                }
                p = skip_ws(p + used);
            }
            sid_add(sd, first, last);
        }
        if (!rc && *p && *p != ',')
            rc = set_syntax(text, p, "expected ',' or ':'", err);
    }
    if (rc)
        mysrc_gtid_set_free(out);
    return rc;
}

int mysrc_gtid_resume_file(const struct mysrc_binlog_file *files, size_t n_files,
                           const struct mysrc_gtid_set *executed, size_t *chosen, struct loch_err *err)
{
    struct mysrc_gtid_set prev = {0};
    size_t ok = 0; /* files[0..ok) qualify */
    int rc = 0;
    for (; ok < n_files; ok++) {
        if (!files[ok].previous_gtids) {
            loch_errf(err, LOCH_ECORRUPT, "binlog file %s has no PREVIOUS_GTIDS event", files[ok].name);
            rc = loch_err_detail(err, "MySQL 5.6+ writes one at the start of every binlog file");
            break;
        }
        if ((rc = mysrc_gtid_set_parse(files[ok].previous_gtids, &prev, err))) {
            char msg[sizeof err->msg];
            snprintf(msg, sizeof msg, "%s", err->msg);
            loch_errf(err, rc, "the Previous_gtids of binlog file %s: %s", files[ok].name, msg);
            break;
        }
        if (!mysrc_gtid_set_subset(&prev, executed))
            break;
    }
    mysrc_gtid_set_free(&prev);
    if (rc)
        return rc;
    if (ok == 0) {
        if (n_files == 0)
            return loch_errf(err, LOCH_ECONFIG, "the source server lists no binlog files");
        loch_errf(err, LOCH_ECONFIG, "transactions the lake never received were purged from the source "
                  "server: the oldest binlog file %s starts after GTIDs missing from the lake's set",
                  files[0].name);
        return LOCH_ECONFIG;
    }
    *chosen = ok - 1;
    return 0;
}

uint32_t mysrc_derive_server_id(const char *source_name)
{
    /* FNV-1a of "loch/<name>" */
    uint32_t h = 2166136261u;
    const char *pre = "loch/";
    for (const char *p = pre; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    for (const char *p = source_name; p && *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return 0x40000000u | (h & 0x3fffffffu);
}
