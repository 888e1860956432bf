/*
 * hmap.h - an open-addressing hash map from fixed-size byte keys to uint64.
 *
 * Keys come from untrusted input (change ids, device keys), so the hash is
 * keyed with a random secret per map (see hmap.c): nobody can precompute
 * colliding keys. The table stays at most 3/4 full.
 */
#ifndef SAMEN_CORE_HMAP_H
#define SAMEN_CORE_HMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	uint8_t *keys;     /* cap * keylen */
	uint64_t *vals;
	uint8_t *used;
	size_t cap, count, keylen;
	uint8_t secret[16];
} hmap;

int hmap_init(hmap *m, size_t keylen);
void hmap_free(hmap *m);
/* Returns a pointer to the value slot of key, or NULL. */
uint64_t *hmap_get(const hmap *m, const void *key);
/* Insert or overwrite. Returns 0 or SAMEN_ENOMEM. */
int hmap_put(hmap *m, const void *key, uint64_t val);
void hmap_clear(hmap *m);

#endif
