/* util.h: small helpers without a better room: ids, clocks, files and paths.
 * Not for object storage (store/ owns lake files). */
#ifndef LOCH_BASE_UTIL_H
#define LOCH_BASE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Writes a random (v4) UUID as 36 chars + NUL into out[37]. */
void util_uuid4(char out[37]);
/* A random positive 63-bit id (Iceberg snapshot ids). */
int64_t util_random_id(void);
int64_t util_now_ms(void);
int64_t util_now_us(void);
/* Monotonic clock in seconds, for durations. */
double util_mono_s(void);

/* Writes v in decimal to out (at least 21 bytes), NUL-terminated; returns its length.
 * For hot paths, where snprintf's format parsing shows in profiles. */
size_t util_u64_dec(char *out, uint64_t v);

/* mkdir -p path; folders it creates are 0700 (the owner's alone); existing ones keep
 * their mode. */
int util_mkdirs(const char *path, struct loch_err *err);
/* Reads a whole file into *data (malloc'd, NUL-terminated), *len bytes. */
int util_read_file(const char *path, char **data, size_t *len, struct loch_err *err);
/* Writes a file atomically: temp file in the same folder, fsync, rename over path. */
int util_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct loch_err *err);
/* Makes path absolute against the current directory; malloc'd result. */
char *util_abspath(const char *path);
bool util_exists(const char *path);

#endif
