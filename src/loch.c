/* loch.c: main: subcommand dispatch only. Each command lives in src/cmd/. */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("usage: loch COMMAND [ARGS]\n");
        return argc < 2 ? 2 : 0;
    }
    fprintf(stderr, "loch: unknown command \"%s\"\n", argv[1]);
    return 2;
}
