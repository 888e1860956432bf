/* testutil.h - helpers shared by the cmocka tests. */
#ifndef SAMEN_TESTUTIL_H
#define SAMEN_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Make a fresh temporary directory under $TMPDIR (or /tmp); returns a
 * malloc'ed path. Removed by tu_rmtree(). */
char *tu_mkdtemp(const char *tag);
/* rm -rf path (best effort). */
void tu_rmtree(const char *path);
/* Read a whole file; returns malloc'ed bytes or NULL. */
uint8_t *tu_read_file(const char *path, size_t *len);
int tu_write_file(const char *path, const void *buf, size_t len);

#endif
