/* util.c: ids, clocks, whole-file I/O (see util.h). */
#include "base/util.h"
#include "base/mem.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void random_bytes(uint8_t *p, size_t n)
{
    if (RAND_bytes(p, (int)n) != 1) {
        /* OpenSSL's CSPRNG failing is not recoverable: ids would repeat. */
        fprintf(stderr, "loch: RAND_bytes failed\n");
        abort();
    }
}

void util_uuid4(char out[37])
{
    uint8_t b[16];
    random_bytes(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

int64_t util_random_id(void)
{
    uint64_t v;
    do {
        random_bytes((uint8_t *)&v, sizeof v);
        v &= (uint64_t)INT64_MAX;
    } while (v == 0);
    return (int64_t)v;
}

int64_t util_now_ms(void) { return util_now_us() / 1000; }

int64_t util_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

double util_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int util_mkdirs(const char *path, struct loch_err *err)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp)
        return loch_errf(err, LOCH_EINVAL, "path is empty or too long: \"%s\"", path);
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return loch_errf(err, LOCH_EIO, "cannot create directory \"%s\": %s", tmp, strerror(errno));
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return loch_errf(err, LOCH_EIO, "cannot create directory \"%s\": %s", tmp, strerror(errno));
    return 0;
}

int util_read_file(const char *path, char **data, size_t *len, struct loch_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return loch_errf(err, errno == ENOENT ? LOCH_ENOENT : LOCH_EIO, "cannot open \"%s\": %s", path,
                         strerror(errno));
    size_t cap = 4096, n = 0;
    char *p = xmalloc(cap + 1);
    size_t got;
    while ((got = fread(p + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            p = xrealloc(p, cap + 1);
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(p);
        return loch_errf(err, LOCH_EIO, "cannot read \"%s\"", path);
    }
    p[n] = '\0';
    *data = p;
    if (len)
        *len = n;
    return 0;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, int mode,
                           struct loch_err *err)
{
    char *tmp = xasprintf("%s.tmp-%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) {
        loch_errf(err, LOCH_EIO, "cannot create \"%s\": %s", tmp, strerror(errno));
        free(tmp);
        return LOCH_EIO;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            loch_errf(err, LOCH_EIO, "cannot write \"%s\": %s", tmp, strerror(errno));
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        loch_errf(err, LOCH_EIO, "cannot fsync \"%s\": %s", tmp, strerror(errno));
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        loch_errf(err, LOCH_EIO, "cannot rename \"%s\" to \"%s\": %s", tmp, path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return LOCH_EIO;
    }
    free(tmp);
    return 0;
fail:
    close(fd);
    unlink(tmp);
    free(tmp);
    return LOCH_EIO;
}

char *util_abspath(const char *path)
{
    if (path[0] == '/')
        return xstrdup(path);
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd))
        return xstrdup(path);
    if (!strcmp(path, "."))
        return xstrdup(cwd);
    if (!strncmp(path, "./", 2))
        path += 2;
    return xasprintf("%s/%s", cwd, path);
}

bool util_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

size_t util_u64_dec(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    out[n] = 0;
    return n;
}
