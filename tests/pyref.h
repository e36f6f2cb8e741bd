/* Reference data computed at test time by Python oracles (/usr/bin/python3 with Pillow and numpy,
 * installed by scripts/install-deps.sh). Python is only ever a test oracle here. */
#ifndef RDINO_TEST_PYREF_H
#define RDINO_TEST_PYREF_H

#include "harness.h"

/* 1 when /usr/bin/python3 can import PIL and numpy; otherwise marks the test skipped, with the
 * reason, and returns 0. */
int rd_test_have_pillow(rd_test *t);

/* Runs "/usr/bin/python3 SCRIPT DIR" (SCRIPT relative to the repository root, where tests run)
 * with DIR this test's fresh temporary directory, and returns DIR. Returns NULL after marking the
 * test skipped (no Pillow) or failed (the script failed). */
const char *rd_test_python_reference(rd_test *t, const char *script);

#endif
