/* fuzz_pgwire.c: libFuzzer target for the pgwire message decoders (src/server/
 * pgwire_msg.c) and the SCRAM message parsers (src/server/scram.c). The first byte picks
 * the message type; the rest is the body, as the connection hands it over. Accepted
 * messages are checked for the invariants the server relies on (every pointer inside the
 * body, counts consistent). `make fuzz` builds it into build/fuzz/fuzz_pgwire. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/pgwire_msg.h"
#include "server/scram.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(const void *p, size_t n, const uint8_t *body, size_t len)
{
    const uint8_t *q = p;
    if (q < body || q + n > body + len)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct arena *a = arena_new();
    struct loch_err err;
    char type = (char)data[0];
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    /* body copies without slack, so ASan sees any read past the end */
    uint8_t *copy = malloc(len ? len : 1);
    memcpy(copy, body, len);
    struct pgwire_msg m;
    if (pgwire_parse(type, copy, len, a, &m, &err) == 0) {
        if (type == 'B') {
            for (uint16_t i = 0; i < m.u.bind.n_params; i++)
                if (m.u.bind.params[i].data)
                    inside(m.u.bind.params[i].data, (size_t)m.u.bind.params[i].len, copy, len);
            if (m.u.bind.n_fmts > 1 && m.u.bind.n_fmts != m.u.bind.n_params)
                abort();
        } else if (type == 'Q') {
            inside(m.u.query.sql, strlen(m.u.query.sql) + 1, copy, len);
        } else if (type == 'P') {
            inside(m.u.parse.sql, strlen(m.u.parse.sql) + 1, copy, len);
        }
    }
    struct pgwire_startup s;
    if (pgwire_parse_startup(copy, len, a, &s, &err) == 0)
        for (size_t i = 0; i < s.n_params; i++) {
            inside(s.keys[i], strlen(s.keys[i]) + 1, copy, len);
            inside(s.vals[i], strlen(s.vals[i]) + 1, copy, len);
        }
    const char *mech;
    const uint8_t *sd;
    size_t sdl;
    if (pgwire_parse_sasl_initial(copy, len, &mech, &sd, &sdl, &err) == 0)
        inside(sd, sdl, copy, len);
    /* SCRAM: the body as client-first, then as client-final of a fixed exchange */
    struct scram_state st;
    struct buf out = {0};
    struct scram_verifier v = {4096, {1, 2, 3}, 16, {0}, {0}};
    if (scram_server_first(&st, &v, "u", (const char *)copy, len, &out, &err) == 0) {
        buf_reset(&out);
        scram_server_final(&st, (const char *)copy, len, &out, &err);
    }
    scram_state_free(&st);
    const char *cf = "n,,n=u,r=abc";
    if (scram_server_first(&st, &v, "u", cf, strlen(cf), &out, &err) == 0)
        scram_server_final(&st, (const char *)copy, len, &out, &err);
    scram_state_free(&st);
    buf_free(&out);
    free(copy);
    arena_free(a);
    return 0;
}
