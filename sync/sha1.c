/*
 * sha1.c - plain SHA-1 after FIPS 180-4; see sha1.h for why we carry one.
 *
 * Written for this project in the compact, fully unrolled style of Steve
 * Reid's public-domain SHA-1: the 80 rounds are macros that rename the
 * five working variables instead of moving them, and the message schedule
 * lives in a 16-word ring.
 */
#include "sync/sha1.h"

#include <string.h>

static inline uint32_t rol32(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static inline uint32_t load_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

#define F1(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))          /* choose */
#define F2(b, c, d) ((b) ^ (c) ^ (d))                    /* parity */
#define F3(b, c, d) (((b) & (c)) | ((d) & ((b) | (c)))) /* majority */
#define K1 UINT32_C(0x5a827999)
#define K2 UINT32_C(0x6ed9eba1)
#define K3 UINT32_C(0x8f1bbcdc)
#define K4 UINT32_C(0xca62c1d6)

/* Word i of the schedule; i is a constant, so the branch folds away. */
#define W(i) ((i) < 16 ? (w[(i) & 15] = load_be32(p + 4 * ((i) & 15))) \
	: (w[(i) & 15] = rol32(w[((i) + 13) & 15] ^ w[((i) + 8) & 15] ^ \
	                       w[((i) + 2) & 15] ^ w[(i) & 15], 1)))

/* One round: e receives the new a, b is rotated in place; the next round
 * is called with the variables renamed (e, a, b, c, d). */
#define ROUND(F, K, a, b, c, d, e, i) do { \
	e += rol32(a, 5) + F(b, c, d) + K + W(i); \
	b = rol32(b, 30); \
} while (0)

#define FIVE(F, K, i) do { \
	ROUND(F, K, a, b, c, d, e, (i)); \
	ROUND(F, K, e, a, b, c, d, (i) + 1); \
	ROUND(F, K, d, e, a, b, c, (i) + 2); \
	ROUND(F, K, c, d, e, a, b, (i) + 3); \
	ROUND(F, K, b, c, d, e, a, (i) + 4); \
} while (0)

static void sha1_block(uint32_t state[5], const unsigned char *p)
{
	uint32_t w[16];
	uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];

	FIVE(F1, K1, 0);
	FIVE(F1, K1, 5);
	FIVE(F1, K1, 10);
	FIVE(F1, K1, 15);
	FIVE(F2, K2, 20);
	FIVE(F2, K2, 25);
	FIVE(F2, K2, 30);
	FIVE(F2, K2, 35);
	FIVE(F3, K3, 40);
	FIVE(F3, K3, 45);
	FIVE(F3, K3, 50);
	FIVE(F3, K3, 55);
	FIVE(F2, K4, 60);
	FIVE(F2, K4, 65);
	FIVE(F2, K4, 70);
	FIVE(F2, K4, 75);

	state[0] += a;
	state[1] += b;
	state[2] += c;
	state[3] += d;
	state[4] += e;
}

void samen_sha1_init(samen_sha1_ctx *ctx)
{
	ctx->state[0] = UINT32_C(0x67452301);
	ctx->state[1] = UINT32_C(0xefcdab89);
	ctx->state[2] = UINT32_C(0x98badcfe);
	ctx->state[3] = UINT32_C(0x10325476);
	ctx->state[4] = UINT32_C(0xc3d2e1f0);
	ctx->total = 0;
	ctx->used = 0;
}

void samen_sha1_update(samen_sha1_ctx *ctx, const void *data, size_t len)
{
	const unsigned char *p = data;

	ctx->total += len;
	if (ctx->used) {
		size_t take = 64 - ctx->used < len ? 64 - ctx->used : len;
		memcpy(ctx->buf + ctx->used, p, take);
		ctx->used += take;
		p += take;
		len -= take;
		if (ctx->used < 64)
			return;
		sha1_block(ctx->state, ctx->buf);
		ctx->used = 0;
	}
	for (; len >= 64; p += 64, len -= 64)
		sha1_block(ctx->state, p);
	if (len) {
		memcpy(ctx->buf, p, len);
		ctx->used = len;
	}
}

void samen_sha1_final(samen_sha1_ctx *ctx, unsigned char out[SAMEN_SHA1_SIZE])
{
	uint64_t bits = ctx->total * 8;
	size_t i;

	ctx->buf[ctx->used++] = 0x80;
	if (ctx->used > 56) {
		memset(ctx->buf + ctx->used, 0, 64 - ctx->used);
		sha1_block(ctx->state, ctx->buf);
		ctx->used = 0;
	}
	memset(ctx->buf + ctx->used, 0, 56 - ctx->used);
	for (i = 0; i < 8; i++)
		ctx->buf[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_block(ctx->state, ctx->buf);

	for (i = 0; i < 5; i++) {
		out[4 * i] = (unsigned char)(ctx->state[i] >> 24);
		out[4 * i + 1] = (unsigned char)(ctx->state[i] >> 16);
		out[4 * i + 2] = (unsigned char)(ctx->state[i] >> 8);
		out[4 * i + 3] = (unsigned char)ctx->state[i];
	}
	memset(ctx, 0, sizeof(*ctx));
}
