/* The configuration (core/config.c): YAML up to the first NUL byte, then one key=value override
 * per line. Checks: a failure has a message; the resolved configuration's dump (the run.yaml
 * every stage writes) loads again into a fresh configuration and dumps the same. */
#include "fuzz_util.h"

#include <stdlib.h>
#include <string.h>

#include "rdino/config.h"

/* The dump without its "# from ..." origin comments, which name where each value came from. */
static void strip_comments(char *s) {
    char *out = s;
    for (const char *in = s; *in;) {
        const char *hash = strstr(in, "  # ");
        const char *eol = strchr(in, '\n');
        if (!eol) eol = in + strlen(in);
        size_t keep = (size_t)((hash && hash < eol ? hash : eol) - in);
        memmove(out, in, keep);
        out += keep;
        if (*eol) *out++ = '\n';
        in = *eol ? eol + 1 : eol;
    }
    *out = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t yaml_len = nul ? (size_t)(nul - data) : size;
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    text[yaml_len] = 0;
    rd_config cfg;
    rd_error err = {0};
    RD_FUZZ_CHECK(rd_config_init(&cfg, &err) == RD_OK);
    rd_status st = rd_config_load_string(&cfg, text, "fuzz.yaml", &err);
    if (st) RD_FUZZ_CHECK(err.msg[0]);
    for (char *line = nul ? text + yaml_len + 1 : NULL; !st && line && line < text + size;) {
        char *eol = memchr(line, '\n', (size_t)(text + size - line));
        if (eol) *eol = 0;
        st = rd_config_override(&cfg, line, &err);
        if (st) RD_FUZZ_CHECK(err.msg[0]);
        line = eol ? eol + 1 : NULL;
    }
    if (!st) {
        char *dump = rd_config_dump(&cfg);
        RD_FUZZ_CHECK(dump != NULL);
        rd_config again;
        RD_FUZZ_CHECK(rd_config_init(&again, &err) == RD_OK);
        if (rd_config_load_string(&again, dump, "dump.yaml", &err)) {
            rd_fuzz_check_failed(__FILE__, __LINE__, err.msg);
        }
        char *dump2 = rd_config_dump(&again);
        RD_FUZZ_CHECK(dump2 != NULL);
        strip_comments(dump);
        strip_comments(dump2);
        RD_FUZZ_CHECK(strcmp(dump, dump2) == 0);
        free(dump);
        free(dump2);
        rd_config_free(&again);
    }
    rd_config_free(&cfg);
    free(text);
    return 0;
}
