/* SHA-256 against the FIPS 180-4 example digests and sha256sum. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "rdino/sha256.h"

static void digest_of(const char *text, size_t repeat, char hex[65]) {
    rd_sha256 h;
    rd_sha256_init(&h);
    for (size_t i = 0; i < repeat; i++) rd_sha256_update(&h, text, strlen(text));
    rd_sha256_final_hex(&h, hex);
}

static void known_answers(rd_test *t) {
    char hex[65];
    digest_of("", 1, hex);
    CHECK(strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0);
    digest_of("abc", 1, hex);
    CHECK(strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad") == 0);
    /* 56 bytes: the padding spills into a second block. */
    digest_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1, hex);
    CHECK(strcmp(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1") == 0);
    digest_of("a", 1000000, hex);
    CHECK(strcmp(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0") == 0);
}

static void file_matches_sha256sum(rd_test *t) {
    char path[700], cmd[800], want[65] = {0}, got[65];
    snprintf(path, sizeof path, "%s/data.bin", rd_test_tmpdir(t));
    FILE *fp = fopen(path, "wb");
    for (int i = 0; i < 200000; i++) fputc((i * 131) ^ (i >> 7), fp);
    fclose(fp);
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    if (!p || fscanf(p, "%64s", want) != 1) SKIP("sha256sum not available");
    pclose(p);
    rd_error err = {0};
    CHECK_OK(rd_sha256_file(path, got, &err), &err);
    CHECK_MSG(strcmp(got, want) == 0, "got %s, sha256sum says %s", got, want);
    CHECK(rd_sha256_file("/nonexistent/x", got, &err) == RD_ENOTFOUND);
    CHECK(strstr(err.msg, "/nonexistent/x") != NULL);
}

static const rd_test_case cases[] = {
    {"known_answers", known_answers},
    {"file_matches_sha256sum", file_matches_sha256sum},
};

RD_TEST_MAIN("core/sha256", cases)
