#include "core/hmap.h"
#include "samen/common.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

/* A keyed folded-multiply hash (the construction of wyhash and aHash's
 * fallback): each 8-byte word is mixed with secret random words and folded
 * through a 64x64->128-bit multiply. The secret comes from libsodium's
 * CSPRNG per map, so colliding keys cannot be computed in advance; it is
 * several times faster than SipHash-2-4, which showed up in merge profiles. */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static uint64_t hash_key(const hmap *m, const void *key)
{
	const uint8_t *p = key;
	uint64_t k0, k1, h, w;
	size_t n = m->keylen;
	memcpy(&k0, m->secret, 8);
	memcpy(&k1, m->secret + 8, 8);
	h = k0 ^ (uint64_t)n;
	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&w, p, 8);
		h = fold_mul(h ^ w, k1 | 1);
	}
	if (n) {
		w = 0;
		memcpy(&w, p, n);
		h = fold_mul(h ^ w, k1 | 1);
	}
	return fold_mul(h ^ k0, 0x9e3779b97f4a7c15ull);
}

int hmap_init(hmap *m, size_t keylen)
{
	memset(m, 0, sizeof(*m));
	m->keylen = keylen;
	randombytes_buf(m->secret, sizeof(m->secret));
	return 0;
}

void hmap_free(hmap *m)
{
	free(m->keys);
	free(m->vals);
	free(m->used);
	memset(m, 0, sizeof(*m));
}

void hmap_clear(hmap *m)
{
	if (m->used)
		memset(m->used, 0, m->cap);
	m->count = 0;
}

uint64_t *hmap_get(const hmap *m, const void *key)
{
	if (!m->cap)
		return NULL;
	size_t mask = m->cap - 1, i = (size_t)hash_key(m, key) & mask;
	while (m->used[i]) {
		if (memcmp(m->keys + i * m->keylen, key, m->keylen) == 0)
			return &m->vals[i];
		i = (i + 1) & mask;
	}
	return NULL;
}

static int grow(hmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 64;
	hmap n = *m;
	n.keys = malloc(ncap * m->keylen);
	n.vals = malloc(ncap * sizeof(uint64_t));
	n.used = calloc(ncap, 1);
	n.cap = ncap;
	n.count = 0;
	if (!n.keys || !n.vals || !n.used) {
		free(n.keys);
		free(n.vals);
		free(n.used);
		return samen_error_set(SAMEN_ENOMEM, "out of memory growing a hash map");
	}
	for (size_t i = 0; i < m->cap; i++)
		if (m->used[i])
			hmap_put(&n, m->keys + i * m->keylen, m->vals[i]);
	free(m->keys);
	free(m->vals);
	free(m->used);
	*m = n;
	return 0;
}

int hmap_put(hmap *m, const void *key, uint64_t val)
{
	uint64_t *slot = hmap_get(m, key);
	if (slot) {
		*slot = val;
		return 0;
	}
	if ((m->count + 1) * 4 > m->cap * 3) {
		int rc = grow(m);
		if (rc)
			return rc;
	}
	size_t mask = m->cap - 1, i = (size_t)hash_key(m, key) & mask;
	while (m->used[i])
		i = (i + 1) & mask;
	m->used[i] = 1;
	memcpy(m->keys + i * m->keylen, key, m->keylen);
	m->vals[i] = val;
	m->count++;
	return 0;
}
