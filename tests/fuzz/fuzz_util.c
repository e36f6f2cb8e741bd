#include "fuzz_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256];
/* Files written, removed at exit with the folder. */
static char written[8][64];
static int nwritten;

static void remove_dir(void) {
    char path[sizeof dir + sizeof written[0] + 1];
    for (int i = 0; i < nwritten; i++)
        if (snprintf(path, sizeof path, "%s/%s", dir, written[i]) < (int)sizeof path) unlink(path);
    rmdir(dir);
}

const char *rd_fuzz_dir(void) {
    if (!dir[0]) {
        const char *tmp = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/rdino-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(dir)) {
            perror("rdino fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}

void rd_fuzz_file(const char *name, const void *data, size_t size, char *path, size_t n) {
    snprintf(path, n, "%s/%s", rd_fuzz_dir(), name);
    int known = 0;
    for (int i = 0; i < nwritten; i++) known |= strcmp(written[i], name) == 0;
    if (!known && nwritten < 8) snprintf(written[nwritten++], sizeof written[0], "%s", name);
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void rd_fuzz_check_failed(const char *file, int line, const char *what) {
    fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
    abort();
}
