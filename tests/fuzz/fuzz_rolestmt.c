/* fuzz_rolestmt.c: libFuzzer target for the user/role statement parser and the password
 * redaction (src/query/rolestmt.c) over lex.h tokens: any bytes must be parsed or refused
 * without reading out of bounds, and the literal after PASSWORD must not survive
 * redaction (checked when that literal's text occurs once in the input).
 * Not for statements DuckDB parses. Built by `make fuzz` (build/fuzz/fuzz_rolestmt). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/rolestmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *sql = xstrndup((const char *)data, size);
    struct arena *a = arena_new();
    struct stmt *st = NULL;
    size_t n = 0, bad;
    if (lex_split(a, sql, &st, &n, &bad) != 0)
        n = 0;
    else {
        for (size_t i = 0; i < n; i++) {
            struct role_stmt r;
            bool matched;
            struct loch_err err;
            if (rolestmt_parse(a, &st[i], &r, &matched, &err) == 0 && matched && r.n_names == 0)
                abort(); /* an accepted statement always names someone */
        }
    }
    char *red = rolestmt_redact(sql);
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i + 1 < st[k].n_tok; i++) {
            const struct token *t = &st[k].tok[i + 1];
            if (!lex_is(&st[k], i, "PASSWORD") || t->kind != TOK_STRING || t->len < 8)
                continue;
            char *lit = xstrndup(st[k].text + t->off, t->len);
            const char *first = strstr(sql, lit);
            if (first && !strstr(first + 1, lit) && strstr(red, lit))
                abort();
            free(lit);
        }
    free(red);
    arena_free(a);
    free(sql);
    return 0;
}
