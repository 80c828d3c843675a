/* lex.c: statement splitting and tokens for the write-statement recogniser (lex.h). */
#include "query/lex.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

static bool word_start(char c) { return isalpha((unsigned char)c) || c == '_' || (unsigned char)c >= 0x80; }
static bool word_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '$' || (unsigned char)c >= 0x80; }

/* Skips a quoted or commented region starting at p[i]; returns the index after it, or
 * (size_t)-1 when unterminated, or i when p[i] does not start one. */
static size_t skip_region(const char *p, size_t n, size_t i)
{
    if (p[i] == '\'' || p[i] == '"') {
        char q = p[i];
        for (size_t j = i + 1; j < n; j++)
            if (p[j] == q) {
                if (j + 1 < n && p[j + 1] == q) {
                    j++;
                    continue;
                }
                return j + 1;
            }
        return (size_t)-1;
    }
    if (p[i] == '-' && i + 1 < n && p[i + 1] == '-') {
        const char *nl = memchr(p + i, '\n', n - i);
        return nl ? (size_t)(nl - p) + 1 : n;
    }
    if (p[i] == '/' && i + 1 < n && p[i + 1] == '*') {
        /* Block comments nest, in PostgreSQL and in DuckDB alike: the comment ends at the
         * "*" "/" that closes its outermost level. */
        size_t depth = 1;
        for (size_t j = i + 2; j + 1 < n; j++) {
            if (p[j] == '/' && p[j + 1] == '*') {
                depth++;
                j++;
            } else if (p[j] == '*' && p[j + 1] == '/') {
                j++;
                if (--depth == 0)
                    return j + 1;
            }
        }
        return (size_t)-1;
    }
    if (p[i] == '$') { /* $tag$ ... $tag$ */
        size_t j = i + 1;
        while (j < n && word_char(p[j]) && p[j] != '$')
            j++;
        if (j < n && p[j] == '$') {
            size_t tag = j - i + 1;
            for (size_t k = j + 1; k + tag <= n; k++)
                if (!memcmp(p + k, p + i, tag))
                    return k + tag;
            return (size_t)-1;
        }
    }
    return i;
}

static void tokenize(struct arena *a, struct stmt *s)
{
    const char *p = s->text;
    size_t n = s->text_len, cap = 16;
    s->tok = arena_alloc(a, cap * sizeof *s->tok);
    s->n_tok = 0;
    size_t i = 0;
    while (i < n) {
        if (isspace((unsigned char)p[i])) {
            i++;
            continue;
        }
        struct token t = {TOK_PUNCT, i, 1};
        size_t j = skip_region(p, n, i);
        if (j == (size_t)-1)
            j = n;
        if (j != i && (p[i] == '-' || p[i] == '/')) { /* comment */
            i = j;
            continue;
        }
        if (j != i) {
            t.kind = p[i] == '"' ? TOK_QIDENT : TOK_STRING;
            t.len = j - i;
        } else if (word_start(p[i])) {
            j = i;
            while (j < n && word_char(p[j]))
                j++;
            t.kind = TOK_WORD;
            t.len = j - i;
        } else if (isdigit((unsigned char)p[i])) {
            j = i;
            while (j < n && (isalnum((unsigned char)p[j]) || p[j] == '.'))
                j++;
            t.kind = TOK_NUMBER;
            t.len = j - i;
        } else if (p[i] == '$' || p[i] == '?') {
            j = i + 1;
            while (j < n && isdigit((unsigned char)p[j]))
                j++;
            t.kind = TOK_PARAM;
            t.len = j - i;
        }
        if (s->n_tok == cap) {
            s->tok = arena_grow(a, s->tok, cap, cap * 2, sizeof *s->tok);
            cap *= 2;
        }
        s->tok[s->n_tok++] = t;
        i = t.off + t.len;
    }
}

int lex_split(struct arena *a, const char *sql, struct stmt **out, size_t *n_out, size_t *bad_off)
{
    size_t n = strlen(sql), cap = 4, count = 0, start = 0;
    struct stmt *v = arena_alloc(a, cap * sizeof *v);
    for (size_t i = 0; i <= n;) {
        if (i < n) {
            size_t j = skip_region(sql, n, i);
            if (j == (size_t)-1) {
                *bad_off = i;
                return -1;
            }
            if (j != i) {
                i = j;
                continue;
            }
        }
        if (i == n || sql[i] == ';') {
            struct stmt s = {0};
            s.text = arena_strndup(a, sql + start, i - start);
            s.text_len = i - start;
            s.off = start;
            tokenize(a, &s);
            if (s.n_tok > 0) {
                if (count == cap) {
                    v = arena_grow(a, v, cap, cap * 2, sizeof *v);
                    cap *= 2;
                }
                v[count++] = s;
            }
            start = i + 1;
        }
        i++;
    }
    *out = v;
    *n_out = count;
    return 0;
}

bool lex_is(const struct stmt *s, size_t i, const char *kw)
{
    if (i >= s->n_tok || s->tok[i].kind != TOK_WORD)
        return false;
    return strlen(kw) == s->tok[i].len && !strncasecmp(s->text + s->tok[i].off, kw, s->tok[i].len);
}

bool lex_punct(const struct stmt *s, size_t i, char c)
{
    return i < s->n_tok && s->tok[i].kind == TOK_PUNCT && s->text[s->tok[i].off] == c;
}

char *lex_ident(struct arena *a, const struct stmt *s, size_t i)
{
    const struct token *t = &s->tok[i];
    const char *p = s->text + t->off;
    if (t->kind == TOK_WORD)
        return arena_strndup(a, p, t->len);
    char *out = arena_alloc(a, t->len);
    size_t k = 0;
    for (size_t j = 1; j + 1 < t->len; j++) {
        out[k++] = p[j];
        if (p[j] == '"')
            j++;
    }
    out[k] = '\0';
    return out;
}

char *lex_name(struct arena *a, const struct stmt *s, size_t *i)
{
    if (*i >= s->n_tok || (s->tok[*i].kind != TOK_WORD && s->tok[*i].kind != TOK_QIDENT))
        return NULL;
    char *name = lex_ident(a, s, *i);
    (*i)++;
    while (lex_punct(s, *i, '.') && *i + 1 < s->n_tok &&
           (s->tok[*i + 1].kind == TOK_WORD || s->tok[*i + 1].kind == TOK_QIDENT)) {
        name = arena_printf(a, "%s.%s", name, lex_ident(a, s, *i + 1));
        *i += 2;
    }
    return name;
}

const char *lex_rest(const struct stmt *s, size_t i)
{
    return i < s->n_tok ? s->text + s->tok[i].off : "";
}
