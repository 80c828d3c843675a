/* replay.c: runs a libFuzzer target's entry point over saved inputs without libFuzzer, so
 * `make test` replays every checked-in crash input and seed (tests/fuzz/corpus/<target>/,
 * tests/fuzz/seeds/<target>/) under the normal and the sanitizer builds. Not a fuzzer:
 * `make fuzz` builds those. Arguments: files or folders (their regular files). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (size_t k; buf && (k = fread(buf + n, 1, cap - n, f)) > 0;) {
        n += k;
        if (n == cap) {
            cap *= 2;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) {
        fprintf(stderr, "replay: out of memory reading %s\n", path);
        return 1;
    }
    LLVMFuzzerTestOneInput(buf, n);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int bad = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat sb;
        if (stat(argv[i], &sb) != 0)
            continue; /* a target without saved inputs */
        if (!S_ISDIR(sb.st_mode)) {
            bad |= replay_file(argv[i]);
            count++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        for (struct dirent *de; d && (de = readdir(d));) {
            if (de->d_name[0] == '.')
                continue;
            size_t l = strlen(argv[i]) + strlen(de->d_name) + 2;
            char *p = malloc(l);
            if (!p)
                return 1;
            snprintf(p, l, "%s/%s", argv[i], de->d_name);
            if (stat(p, &sb) == 0 && S_ISREG(sb.st_mode)) {
                bad |= replay_file(p);
                count++;
            }
            free(p);
        }
        if (d)
            closedir(d);
    }
    printf("replay: %d inputs\n", count);
    return bad;
}
