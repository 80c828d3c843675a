/* lex.h: a SQL tokenizer just deep enough to split a script into statements and to
 * recognise the lake's write statements (DELETE, UPDATE, INSERT, ALTER TABLE, ...).
 * Not a parser: DuckDB parses every query; this only finds statement boundaries, the
 * leading keywords and the target table name. */
#ifndef LOCH_QUERY_LEX_H
#define LOCH_QUERY_LEX_H

#include <stdbool.h>
#include <stddef.h>

#include "base/mem.h"

enum tok_kind { TOK_WORD, TOK_QIDENT, TOK_STRING, TOK_NUMBER, TOK_PUNCT, TOK_PARAM };

struct token {
    enum tok_kind kind;
    size_t off, len; /* in the statement text */
};

struct stmt {
    const char *text; /* the statement alone (NUL-terminated copy, no trailing ';') */
    size_t text_len;
    size_t off;       /* where the statement starts in the script */
    size_t n_tok;
    struct token *tok;
};

/* Splits sql at top-level semicolons (outside quotes, dollar quotes and comments);
 * empty statements are dropped. Returns 0, or -1 with *bad_off at an unterminated quote
 * or comment. Everything lives in a. */
int lex_split(struct arena *a, const char *sql, struct stmt **out, size_t *n_out, size_t *bad_off);

/* True when token i is the word kw (case-insensitive). */
bool lex_is(const struct stmt *s, size_t i, const char *kw);
/* True when token i is the punctuation character c. */
bool lex_punct(const struct stmt *s, size_t i, char c);
/* The identifier at token i, unquoted ("a""b" -> a"b; bare words keep their case), in a. */
char *lex_ident(struct arena *a, const struct stmt *s, size_t i);
/* Reads a dotted name starting at *i (a.b."c d"); advances *i past it. Parts joined with
 * '.' into *out; NULL when token *i is not an identifier. */
char *lex_name(struct arena *a, const struct stmt *s, size_t *i);
/* Text from the start of token i to the end of the statement (or "" past the end). */
const char *lex_rest(const struct stmt *s, size_t i);

#endif
