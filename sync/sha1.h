/*
 * sha1.h - plain SHA-1 (FIPS 180-4), for the trailer of the pack files that
 * history.c streams into libgit2's indexer.
 *
 * Why our own: the trailer is the SHA-1 of every pack byte before it and
 * libgit2's indexer rejects a pack whose trailer does not match. None of
 * our dependencies offers a raw SHA-1: libgit2 1.5 keeps its git_hash_*
 * functions internal (git_odb_hash() always hashes a "<type> <len>\0"
 * header first), libsodium has no SHA-1, zlib none either, and OpenSSL is
 * not a dependency of this project.
 *
 * Not for anything security-related: it only has to agree with git.
 */
#ifndef SAMEN_SYNC_SHA1_H
#define SAMEN_SYNC_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define SAMEN_SHA1_SIZE 20

typedef struct {
	uint32_t state[5];
	uint64_t total;          /* bytes hashed so far */
	unsigned char buf[64];   /* partial block */
	size_t used;             /* bytes in buf */
} samen_sha1_ctx;

void samen_sha1_init(samen_sha1_ctx *ctx);
void samen_sha1_update(samen_sha1_ctx *ctx, const void *data, size_t len);
void samen_sha1_final(samen_sha1_ctx *ctx, unsigned char out[SAMEN_SHA1_SIZE]);

#endif
