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
/* How many paths match a glob(3) pattern. */
size_t tu_glob_count(const char *pattern);
int tu_write_file(const char *path, const void *buf, size_t len);

/* A small seeded generator (xorshift64*), so random tests repeat exactly
 * for a seed. The seed must not be 0. */
typedef struct {
	uint64_t s;
} rng;

static inline uint64_t rnd(rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 2685821657736338717ull;
}

static inline uint32_t below(rng *r, uint32_t n)
{
	return n ? (uint32_t)(rnd(r) % n) : 0;
}

/* Fail the test with the library's message when x is not 0. */
#define OK(x)                                                                                    \
	do {                                                                                     \
		int rc_ = (x);                                                                   \
		if (rc_ != 0)                                                                    \
			fail_msg("%s = %d: %s", #x, rc_, samen_error_last());                    \
	} while (0)

struct samen_store;
struct samen_plan;

/* One device: a store of its own in a temporary directory, and the plan it
 * has open (NULL until the test opens one). */
typedef struct {
	char *dir;
	struct samen_store *store;
	struct samen_plan *plan;
	char key[65];            /* the device key, 64 hex digits */
} node;

/* Open (creating) the store root/sub for a device called name; fails the
 * test when it cannot. */
struct samen_store *tu_open_store(const char *root, const char *sub, const char *name);
/* Open plan id (NULL: the only one) of store s; fails the test when it cannot. */
struct samen_plan *tu_open_plan(struct samen_store *s, const char *id);
/* Does store s hold plan id? (plans/<id>/) */
int tu_has_plan(struct samen_store *s, const char *id);
/* The state hash of plan id in store s ("" when the store does not hold it). */
void tu_state_hash(struct samen_store *s, const char *id, char out[65]);

/* A new store named name (device name) under a fresh temporary directory. */
void node_init(node *n, const char *name);
/* Close the plan and the store and remove the directory. */
void node_free(node *n);

#endif
