/* fuzz_iceberg_avro.c: libFuzzer target for the Avro readers: the object-container
 * framing (src/iceberg/avro.c) and the manifest / manifest-list decoders on top of it.
 * Any input must give a clean error or a decoded result, never a read out of bounds.
 * `make fuzz` builds it; run with the seeds (real manifests and manifest lists):
 *   build/fuzz/fuzz_iceberg_avro -max_total_time=60 CORPUS_DIR tests/fuzz/seeds/fuzz_iceberg_avro */
#include <stdint.h>
#include <stdlib.h>

#include "iceberg/avro.h"
#include "iceberg/iceberg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct arena *a = arena_new();
    struct loch_err err;
    struct iceberg_avro_reader r;
    if (iceberg_avro_reader_open(&r, data, size, "fuzz input", a, &err) == 0) {
        int rc;
        while ((rc = iceberg_avro_reader_next(&r, &err)) == 1)
            ;
        iceberg_avro_reader_close(&r);
    }
    struct iceberg_manifest *ms;
    size_t n;
    (void)iceberg_manifest_list_decode(data, size, a, &ms, &n, &err);
    struct iceberg_data_file *files;
    (void)iceberg_manifest_decode(data, size, NULL, a, &files, &n, &err);
    arena_free(a);
    return 0;
}
