/* Replays a fuzz target's inputs under the normal build, without libFuzzer: every file of
 * tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/ (or the files given as
 * arguments) goes through the harness's LLVMFuzzerTestOneInput, the name of each printed to
 * stderr first. A crash or a failed harness check ends the program (tests/run.sh reports the
 * exit status); otherwise it prints "PASS fuzz/replay_<target>". <target> comes from the
 * program's name, test_replay_<target>. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"

static int replay(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    rewind(f);
    uint8_t *data = malloc(size > 0 ? (size_t)size : 1);
    if (!data || (size > 0 && fread(data, 1, (size_t)size, f) != (size_t)size)) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    fclose(f);
    fprintf(stderr, "replay %s\n", path);
    LLVMFuzzerTestOneInput(data, (size_t)size);
    free(data);
    return 1;
}

/* Replays the regular files of dir in name order; returns how many. */
static int replay_dir(const char *dir) {
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort), count = 0;
    if (n < 0) return 0; /* no such folder (a target without regressions) */
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (names[i]->d_name[0] != '.') count += replay(path);
        free(names[i]);
    }
    free(names);
    return count;
}

int main(int argc, char **argv) {
    const char *base = strrchr(argv[0], '/');
    base = base ? base + 1 : argv[0];
    const char *target = strncmp(base, "test_replay_", 12) == 0 ? base + 12 : base;
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    int count = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++) count += replay(argv[i]);
    } else {
        char dir[512];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", target);
        count += replay_dir(dir);
        snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", target);
        count += replay_dir(dir);
    }
    if (count == 0) {
        printf("FAIL fuzz/replay_%s: no input found (run from the repository root)\n", target);
        return 1;
    }
    printf("PASS fuzz/replay_%s (%d inputs)\n", target, count);
    return 0;
}
