/* fuzz_iceberg_metadata.c: libFuzzer target for the table-metadata and schema JSON readers
 * (src/iceberg/metadata.c). Accepted input must survive a write/read round trip.
 * Not for manifests (Avro has its own target). Build (until `make fuzz` has a rule):
 *   clang -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
 *     tests/fuzz/fuzz_iceberg_metadata.c src/iceberg/{metadata,types}.c src/base/{buf,err,log,mem,util}.c \
 *     -ljansson -lcrypto -o build/fuzz_iceberg_metadata */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iceberg/iceberg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = arena_new();
    struct iceberg_metadata *m;
    struct iceberg_schema *s;
    struct loch_err err;
    if (iceberg_metadata_from_json((const char *)data, size, a, &m, &err) == 0) {
        struct buf j1 = {0}, j2 = {0};
        struct iceberg_metadata *back;
        /* What was accepted is valid, so it must write and read back identically. */
        if (iceberg_metadata_to_json(m, &j1, &err) != 0 ||
            iceberg_metadata_from_json(j1.data, j1.len, a, &back, &err) != 0 ||
            iceberg_metadata_to_json(back, &j2, &err) != 0 || strcmp(j1.data, j2.data) != 0)
            abort();
        buf_free(&j1);
        buf_free(&j2);
    }
    if (iceberg_schema_from_json((const char *)data, size, a, &s, &err) == 0) {
        struct buf j = {0};
        iceberg_schema_to_json(s, &j);
        buf_free(&j);
    }
    arena_free(a);
    return 0;
}
