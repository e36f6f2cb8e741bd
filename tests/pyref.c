#include "pyref.h"

#include <stdio.h>
#include <stdlib.h>

int rd_test_have_pillow(rd_test *t) {
    if (system("/usr/bin/python3 -c 'import PIL, numpy' 2>/dev/null") == 0) return 1;
    rd_test_skip(t, "/usr/bin/python3 with PIL and numpy not available "
                    "(scripts/install-deps.sh installs python3-pil)");
    return 0;
}

const char *rd_test_python_reference(rd_test *t, const char *script) {
    if (!rd_test_have_pillow(t)) return NULL;
    const char *dir = rd_test_tmpdir(t);
    if (!dir) {
        rd_test_fail(t, __FILE__, __LINE__, "no temporary directory");
        return NULL;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, dir);
    if (system(cmd) != 0) {
        rd_test_fail(t, __FILE__, __LINE__, "%s failed", cmd);
        return NULL;
    }
    return dir;
}
