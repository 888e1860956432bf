/*
 * mpread.h - a bounded, canonical msgpack reader for untrusted bytes.
 *
 * msgpack-c's unpacker allocates from counts found in headers before it has
 * seen the bytes they describe, so hostile input can make it allocate
 * gigabytes from five bytes. Everything that reaches Samen from outside is
 * decoded with this reader instead. It never allocates.
 *
 * Invariants enforced on every call:
 *  - a header's count or length is checked against the bytes that remain
 *    (every array element takes at least one byte) and against the caller's
 *    cap before the caller can act on it;
 *  - encodings are canonical: integers use the smallest format (non-negative
 *    integers always use the positive fixint/uint formats, negative ones the
 *    smallest negative fixint/int format), str/bin/array headers use the
 *    smallest format for their length; so one value has exactly one encoding;
 *  - strings are valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF) and
 *    contain no NUL byte;
 *  - maps, floats and ext types are not part of Samen's formats and are
 *    rejected (so duplicate map keys cannot arise).
 *
 * On error a function returns -1, leaves r->pos where the bad item starts,
 * and fills r->err with a static English message ("array header claims
 * 4294967295 elements but only 0 bytes remain"). The reader stays in the
 * error state: every later call fails too.
 */
#ifndef SAMEN_CORE_MPREAD_H
#define SAMEN_CORE_MPREAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Deepest nesting of arrays mpr_skip_value() accepts. */
#define MPR_MAX_DEPTH 8

typedef enum {
	MPR_END = 0, /* no bytes left */
	MPR_NIL,
	MPR_BOOL,
	MPR_UINT,    /* positive fixint, uint8..uint64 */
	MPR_NEGINT,  /* negative fixint, int8..int64 */
	MPR_STR,
	MPR_BIN,
	MPR_ARRAY,
	MPR_MAP,     /* recognised only to be rejected with a clear message */
	MPR_FLOAT,
	MPR_EXT,
	MPR_INVALID  /* 0xc1 */
} mpr_type;

typedef struct {
	const uint8_t *start;
	const uint8_t *pos;
	const uint8_t *end;
	char err[128];  /* "" while no error */
	bool failed;
} mpr;

void mpr_init(mpr *r, const void *buf, size_t len);

/* Type of the next item without consuming it (MPR_END when no bytes left). */
mpr_type mpr_peek(const mpr *r);

/* Offset of r->pos from the start, for error messages. */
size_t mpr_offset(const mpr *r);

/* Array header; *n <= cap and *n <= remaining bytes, else error. */
int mpr_array(mpr *r, uint32_t *n, uint32_t cap);
/* Array header that must have exactly n elements. */
int mpr_array_exact(mpr *r, uint32_t n);

int mpr_nil(mpr *r);
int mpr_bool(mpr *r, bool *v);
/* Unsigned integer; negative encodings are an error. */
int mpr_uint(mpr *r, uint64_t *v);
/* Unsigned integer that must be <= max. */
int mpr_uint_max(mpr *r, uint64_t *v, uint64_t max);
/* Any integer that fits int64_t (uint64 above INT64_MAX is an error). */
int mpr_int(mpr *r, int64_t *v);

/* String: *s points into the buffer (NOT NUL-terminated), *len <= cap. */
int mpr_str(mpr *r, const char **s, uint32_t *len, uint32_t cap);
/* Binary: *b points into the buffer, *len <= cap. */
int mpr_bin(mpr *r, const uint8_t **b, uint32_t *len, uint32_t cap);
/* Binary of exactly len bytes. */
int mpr_bin_exact(mpr *r, const uint8_t **b, uint32_t len);

/* Validate and skip one value of any accepted type (nil, bool, ints, str,
 * bin, arrays of those nested at most max_depth deep, max_depth <=
 * MPR_MAX_DEPTH, total element count bounded by remaining bytes). */
int mpr_skip_value(mpr *r, int max_depth);

/* Set an error explicitly (for schema errors found by the caller). */
int mpr_fail(mpr *r, const char *msg);

/* True when every byte was consumed and no error occurred. */
bool mpr_done(const mpr *r);

/* UTF-8 check used by mpr_str, exported for text arriving from elsewhere
 * (command line, files): valid UTF-8 and no NUL. */
bool mpr_utf8_valid(const char *s, size_t len);

#endif
