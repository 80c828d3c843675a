/* fuzz_keyidx.c: libFuzzer target for the saved key index decoder (src/cdc/keyidx.c):
 * any bytes must load or fail with LOCH_ENOENT / LOCH_ECORRUPT, never read outside the
 * input. The input is tried as is and with a valid checksum appended, so the fuzzer
 * reaches the records behind it. Built by `make fuzz`. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc/keyidx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(struct keyidx *x, const uint8_t *data, size_t size)
{
    char **names;
    size_t n_names;
    struct loch_err err;
    int rc = keyidx_parse(x, data, size, "t", &names, &n_names, &err);
    if (rc != 0 && rc != LOCH_ENOENT && rc != LOCH_ECORRUPT)
        abort();
    if (rc == 0) {
        for (size_t i = 0; i < n_names; i++)
            free(names[i]);
        free(names);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyidx *x = keyidx_new();
    one(x, data, size);
    uint8_t *d = malloc(size + 8);
    if (size)
        memcpy(d, data, size);
    uint64_t h = keyidx_checksum(data, size);
    for (int i = 0; i < 8; i++)
        d[size + i] = (uint8_t)(h >> (8 * i));
    one(x, d, size + 8);
    free(d);
    keyidx_free(x);
    return 0;
}
