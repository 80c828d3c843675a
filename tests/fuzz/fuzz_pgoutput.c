/* fuzz_pgoutput.c: libFuzzer target for the pgoutput message and replication-frame
 * decoders (src/cdc/pg/pgoutput.c): any bytes must decode or fail with LOCH_EPROTO, never
 * read past the input. Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/pg/pgoutput.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = arena_new();
    struct pgo_msg m;
    struct pgo_frame f;
    struct loch_err err;
    int rc = pgoutput_decode(data, size, a, &m, &err);
    if (rc != 0 && rc != LOCH_EPROTO)
        abort();
    if (rc == 0 && (m.kind == PGO_INSERT || m.kind == PGO_UPDATE))
        for (size_t i = 0; i < m.u.dml.new.n; i++) /* touch every value: ASan checks bounds */
            if (m.u.dml.new.cols[i].len && ((const uint8_t *)m.u.dml.new.cols[i].data)[m.u.dml.new.cols[i].len - 1] == 0xFF)
                err.code = 1;
    rc = pgoutput_decode_frame(data, size, &f, &err);
    if (rc != 0 && rc != LOCH_EPROTO)
        abort();
    arena_free(a);
    return 0;
}
