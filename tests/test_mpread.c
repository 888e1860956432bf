/*
 * test_mpread.c - the bounded canonical msgpack reader (core/mpread.c).
 *
 * Inputs that the reader must reject are copied into heap buffers of exactly
 * their length, so that under -fsanitize=address any read past end is
 * caught. Canonical inputs are produced with msgpack-c's packer, which
 * writes the smallest encoding of every value.
 */
#include "testutil.h"

#include "core/mpread.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---------------------------------------------------------- */

/* Exact-size heap copy (never NULL, even for len 0: one spare byte is
 * allocated then, but the reader is given len 0). */
static uint8_t *dup_exact(const void *buf, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	if (len)
		memcpy(p, buf, len);
	return p;
}

#define assert_err_has(r, needle) assert_err_has_((r), (needle), __FILE__, __LINE__)
static void assert_err_has_(const mpr *r, const char *needle, const char *file, int line)
{
	if (!r->failed)
		fail_msg("%s:%d: reader did not fail (expected error containing \"%s\")", file, line, needle);
	if (!strstr(r->err, needle))
		fail_msg("%s:%d: error \"%s\" does not contain \"%s\"", file, line, r->err, needle);
}

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} packbuf;

static void pb_init(packbuf *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void pb_reset(packbuf *p)
{
	msgpack_sbuffer_clear(&p->sb);
}

static void pb_free(packbuf *p)
{
	msgpack_sbuffer_destroy(&p->sb);
}

static void pack_str(packbuf *p, const char *s, size_t len)
{
	assert_int_equal(msgpack_pack_str(&p->pk, len), 0);
	assert_int_equal(msgpack_pack_str_body(&p->pk, s, len), 0);
}

static void pack_bin(packbuf *p, const void *b, size_t len)
{
	assert_int_equal(msgpack_pack_bin(&p->pk, len), 0);
	assert_int_equal(msgpack_pack_bin_body(&p->pk, b, len), 0);
}

/*
 * One item built by hand: tag, then nb big-endian bytes of v, then payload
 * bytes of 'a' (0x61, which is also a valid positive fixint, so the payload
 * of an array header is that many valid elements).
 */
static uint8_t *make_item(uint8_t tag, int nb, uint64_t v, size_t payload, size_t *len)
{
	uint8_t *p;
	int k;

	*len = 1 + (size_t)nb + payload;
	p = malloc(*len);
	assert_non_null(p);
	p[0] = tag;
	for (k = 0; k < nb; k++)
		p[1 + k] = (uint8_t)(v >> (8 * (nb - 1 - k)));
	memset(p + 1 + nb, 'a', payload);
	return p;
}

/* The reading functions, selectable from tables. */
typedef enum { OP_UINT, OP_INT, OP_STR, OP_BIN, OP_ARRAY, OP_NIL, OP_BOOL, OP_SKIP } op_kind;

static int run_op(mpr *r, op_kind op)
{
	uint64_t u;
	int64_t i;
	const char *s;
	const uint8_t *b;
	uint32_t n;
	bool f;

	switch (op) {
	case OP_UINT: return mpr_uint(r, &u);
	case OP_INT: return mpr_int(r, &i);
	case OP_STR: return mpr_str(r, &s, &n, UINT32_MAX);
	case OP_BIN: return mpr_bin(r, &b, &n, UINT32_MAX);
	case OP_ARRAY: return mpr_array(r, &n, UINT32_MAX);
	case OP_NIL: return mpr_nil(r);
	case OP_BOOL: return mpr_bool(r, &f);
	case OP_SKIP: return mpr_skip_value(r, MPR_MAX_DEPTH);
	}
	return -2;
}

/* ---- integers ----------------------------------------------------------- */

static void test_uint_round_trips_at_every_format_boundary(void **state)
{
	static const struct { uint64_t v; size_t size; } cases[] = {
		{ 0, 1 }, { 1, 1 }, { 127, 1 },
		{ 128, 2 }, { 255, 2 },
		{ 256, 3 }, { 65535, 3 },
		{ 65536, 5 }, { UINT32_MAX, 5 },
		{ (uint64_t)UINT32_MAX + 1, 9 }, { INT64_MAX, 9 },
		{ (uint64_t)INT64_MAX + 1, 9 }, { UINT64_MAX, 9 },
	};
	packbuf pb;
	size_t k;
	mpr r;

	(void)state;
	pb_init(&pb);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint64_t u = 12345;
		int64_t i = 12345;
		uint8_t *buf;

		pb_reset(&pb);
		assert_int_equal(msgpack_pack_uint64(&pb.pk, cases[k].v), 0);
		assert_int_equal(pb.sb.size, cases[k].size);
		buf = dup_exact(pb.sb.data, pb.sb.size);

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_peek(&r), MPR_UINT);
		assert_int_equal(mpr_uint(&r, &u), 0);
		assert_true(u == cases[k].v);
		assert_true(mpr_done(&r));
		assert_string_equal(r.err, "");

		mpr_init(&r, buf, pb.sb.size);
		if (cases[k].v <= INT64_MAX) {
			assert_int_equal(mpr_int(&r, &i), 0);
			assert_true(i == (int64_t)cases[k].v);
			assert_true(mpr_done(&r));
		} else {
			assert_int_equal(mpr_int(&r, &i), -1);
			assert_err_has(&r, "does not fit");
		}

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_skip_value(&r, 0), 0);
		assert_true(mpr_done(&r));
		free(buf);
	}

	/* All of them back to back in one buffer. */
	pb_reset(&pb);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
		msgpack_pack_uint64(&pb.pk, cases[k].v);
	mpr_init(&r, pb.sb.data, pb.sb.size);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		uint64_t u;
		assert_int_equal(mpr_uint(&r, &u), 0);
		assert_true(u == cases[k].v);
	}
	assert_true(mpr_done(&r));
	pb_free(&pb);
}

static void test_negative_int_round_trips_at_every_format_boundary(void **state)
{
	static const struct { int64_t v; size_t size; } cases[] = {
		{ -1, 1 }, { -32, 1 },
		{ -33, 2 }, { -128, 2 },
		{ -129, 3 }, { -32768, 3 },
		{ -32769, 5 }, { INT32_MIN, 5 },
		{ (int64_t)INT32_MIN - 1, 9 }, { INT64_MIN + 1, 9 }, { INT64_MIN, 9 },
		/* non-negative values packed as signed use the uint forms */
		{ 0, 1 }, { 127, 1 }, { 128, 2 }, { 65536, 5 }, { INT64_MAX, 9 },
	};
	packbuf pb;
	size_t k;
	mpr r;

	(void)state;
	pb_init(&pb);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		int64_t i = 12345;
		uint8_t *buf;

		pb_reset(&pb);
		assert_int_equal(msgpack_pack_int64(&pb.pk, cases[k].v), 0);
		assert_int_equal(pb.sb.size, cases[k].size);
		buf = dup_exact(pb.sb.data, pb.sb.size);

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_peek(&r), cases[k].v < 0 ? MPR_NEGINT : MPR_UINT);
		assert_int_equal(mpr_int(&r, &i), 0);
		assert_true(i == cases[k].v);
		assert_true(mpr_done(&r));

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_skip_value(&r, 0), 0);
		assert_true(mpr_done(&r));
		free(buf);
	}
	pb_free(&pb);
}

static void test_uint_rejects_negative_values(void **state)
{
	static const uint8_t neg_fix[] = { 0xff };
	static const uint8_t neg_int64[] = { 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0 };
	uint64_t u = 99;
	mpr r;

	(void)state;
	mpr_init(&r, neg_fix, sizeof(neg_fix));
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_true(u == 0);
	assert_err_has(&r, "expected uint at offset 0, found negative int -1");
	assert_int_equal(mpr_offset(&r), 0);

	mpr_init(&r, neg_int64, sizeof(neg_int64));
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "-9223372036854775808");
}

static void test_int_rejects_uint64_above_int64_max(void **state)
{
	static const uint8_t big[] = { 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t max[] = { 0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	int64_t i;
	mpr r;

	(void)state;
	mpr_init(&r, big, sizeof(big));
	assert_int_equal(mpr_int(&r, &i), -1);
	assert_err_has(&r, "uint 9223372036854775808 at offset 0 does not fit");
	assert_int_equal(mpr_offset(&r), 0);

	mpr_init(&r, max, sizeof(max));
	assert_int_equal(mpr_int(&r, &i), 0);
	assert_true(i == INT64_MAX);
	assert_true(mpr_done(&r));
}

static void test_uint_max_enforces_the_limit_and_names_value_and_max(void **state)
{
	static const uint8_t buf[] = { 0xcc, 0xff, 0xcd, 0x01, 0x2c, 0xa1, 'x' }; /* 255, 300, "x" */
	uint64_t u;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_uint_max(&r, &u, 255), 0);
	assert_true(u == 255);
	assert_int_equal(mpr_uint_max(&r, &u, 255), -1);
	assert_err_has(&r, "300");
	assert_err_has(&r, "255");
	assert_err_has(&r, "offset 2");
	assert_int_equal(mpr_offset(&r), 2);

	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_uint_max(&r, &u, 300), 0);
	assert_int_equal(mpr_uint_max(&r, &u, 300), 0);
	assert_true(u == 300);
	assert_int_equal(mpr_uint_max(&r, &u, 300), -1);
	assert_err_has(&r, "expected uint at offset 5, found string");
}

/* ---- strings and bins -------------------------------------------------- */

static void test_strings_round_trip_at_every_length_boundary(void **state)
{
	static const struct { uint32_t len; uint8_t tag; size_t hdr; } cases[] = {
		{ 0, 0xa0, 1 }, { 1, 0xa1, 1 }, { 31, 0xbf, 1 },
		{ 32, 0xd9, 2 }, { 255, 0xd9, 2 },
		{ 256, 0xda, 3 }, { 65535, 0xda, 3 },
		{ 65536, 0xdb, 5 }, { 70000, 0xdb, 5 },
	};
	packbuf pb;
	size_t k;
	char *text = malloc(70000);

	(void)state;
	assert_non_null(text);
	for (k = 0; k < 70000; k++)
		text[k] = (char)('a' + k % 26);
	pb_init(&pb);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const char *s = NULL;
		uint32_t n = 99, len = cases[k].len;
		uint8_t *buf;
		mpr r;

		pb_reset(&pb);
		pack_str(&pb, text, len);
		assert_int_equal(pb.sb.size, cases[k].hdr + len);
		assert_int_equal((uint8_t)pb.sb.data[0], cases[k].tag);
		buf = dup_exact(pb.sb.data, pb.sb.size);

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_peek(&r), MPR_STR);
		assert_int_equal(mpr_str(&r, &s, &n, len), 0);
		assert_int_equal(n, len);
		assert_ptr_equal(s, (const char *)buf + cases[k].hdr);
		if (len)
			assert_memory_equal(s, text, len);
		assert_true(mpr_done(&r));

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_skip_value(&r, 0), 0);
		assert_true(mpr_done(&r));

		if (len > 0) {
			mpr_init(&r, buf, pb.sb.size);
			assert_int_equal(mpr_str(&r, &s, &n, len - 1), -1);
			assert_null(s);
			assert_int_equal(n, 0);
			assert_err_has(&r, "more than the limit");
			assert_int_equal(mpr_offset(&r), 0);
		}
		free(buf);
	}
	pb_free(&pb);
	free(text);
}

static void test_multibyte_utf8_string_round_trips(void **state)
{
	static const char text[] = "h\xc3\xa9llo, \xe4\xb8\x96\xe7\x95\x8c \xf0\x9f\x98\x80";
	packbuf pb;
	const char *s;
	uint32_t n;
	mpr r;

	(void)state;
	pb_init(&pb);
	pack_str(&pb, text, strlen(text));
	mpr_init(&r, pb.sb.data, pb.sb.size);
	assert_int_equal(mpr_str(&r, &s, &n, 100), 0);
	assert_int_equal(n, strlen(text));
	assert_memory_equal(s, text, n);
	assert_true(mpr_done(&r));
	pb_free(&pb);
}

static void test_bins_round_trip_at_every_length_boundary(void **state)
{
	static const struct { uint32_t len; uint8_t tag; size_t hdr; } cases[] = {
		{ 0, 0xc4, 2 }, { 1, 0xc4, 2 }, { 255, 0xc4, 2 },
		{ 256, 0xc5, 3 }, { 65535, 0xc5, 3 },
		{ 65536, 0xc6, 5 }, { 70000, 0xc6, 5 },
	};
	packbuf pb;
	size_t k;
	uint8_t *data = malloc(70000);

	(void)state;
	assert_non_null(data);
	for (k = 0; k < 70000; k++)
		data[k] = (uint8_t)(k * 7); /* includes 0x00 and every byte value */
	pb_init(&pb);
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const uint8_t *b = NULL;
		uint32_t n = 99, len = cases[k].len;
		uint8_t *buf;
		mpr r;

		pb_reset(&pb);
		pack_bin(&pb, data, len);
		assert_int_equal(pb.sb.size, cases[k].hdr + len);
		assert_int_equal((uint8_t)pb.sb.data[0], cases[k].tag);
		buf = dup_exact(pb.sb.data, pb.sb.size);

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_peek(&r), MPR_BIN);
		assert_int_equal(mpr_bin(&r, &b, &n, len), 0);
		assert_int_equal(n, len);
		assert_ptr_equal(b, buf + cases[k].hdr);
		if (len)
			assert_memory_equal(b, data, len);
		assert_true(mpr_done(&r));

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_bin_exact(&r, &b, len), 0);
		assert_true(mpr_done(&r));

		mpr_init(&r, buf, pb.sb.size);
		assert_int_equal(mpr_skip_value(&r, 0), 0);
		assert_true(mpr_done(&r));

		if (len > 0) {
			mpr_init(&r, buf, pb.sb.size);
			assert_int_equal(mpr_bin(&r, &b, &n, len - 1), -1);
			assert_null(b);
			assert_err_has(&r, "more than the limit");
		}
		free(buf);
	}
	pb_free(&pb);
	free(data);
}

static void test_empty_bin_is_bin8_with_length_zero(void **state)
{
	static const uint8_t empty[] = { 0xc4, 0x00 };
	static const uint8_t empty16[] = { 0xc5, 0x00, 0x00 };
	const uint8_t *b;
	uint32_t n = 5;
	mpr r;

	(void)state;
	mpr_init(&r, empty, sizeof(empty));
	assert_int_equal(mpr_bin(&r, &b, &n, 0), 0);
	assert_int_equal(n, 0);
	assert_true(mpr_done(&r));

	mpr_init(&r, empty16, sizeof(empty16));
	assert_int_equal(mpr_bin(&r, &b, &n, 0), -1);
	assert_err_has(&r, "non-canonical bin header: length 0 encoded as bin16 at offset 0");
}

/* ---- arrays --------------------------------------------------------------- */

/* [1, ["x", [nil, -5]], bin(3), true, false, [], [0..19]] */
static void pack_nested(packbuf *pb)
{
	int k;

	msgpack_pack_array(&pb->pk, 7);
	msgpack_pack_uint64(&pb->pk, 1);
	msgpack_pack_array(&pb->pk, 2);
	pack_str(pb, "x", 1);
	msgpack_pack_array(&pb->pk, 2);
	msgpack_pack_nil(&pb->pk);
	msgpack_pack_int64(&pb->pk, -5);
	pack_bin(pb, "\x00\x01\x02", 3);
	msgpack_pack_true(&pb->pk);
	msgpack_pack_false(&pb->pk);
	msgpack_pack_array(&pb->pk, 0);
	msgpack_pack_array(&pb->pk, 20);
	for (k = 0; k < 20; k++)
		msgpack_pack_uint64(&pb->pk, (uint64_t)k * 1000);
}

static int read_nested(mpr *r)
{
	uint32_t n, k;
	uint64_t u;
	int64_t i;
	const char *s;
	const uint8_t *b;
	bool f;

	if (mpr_array(r, &n, 7) < 0 || n != 7)
		return -1;
	if (mpr_uint(r, &u) < 0 || u != 1)
		return -1;
	if (mpr_array_exact(r, 2) < 0)
		return -1;
	if (mpr_str(r, &s, &n, 10) < 0 || n != 1 || s[0] != 'x')
		return -1;
	if (mpr_array_exact(r, 2) < 0 || mpr_nil(r) < 0)
		return -1;
	if (mpr_int(r, &i) < 0 || i != -5)
		return -1;
	if (mpr_bin_exact(r, &b, 3) < 0 || memcmp(b, "\x00\x01\x02", 3) != 0)
		return -1;
	if (mpr_bool(r, &f) < 0 || !f || mpr_bool(r, &f) < 0 || f)
		return -1;
	if (mpr_array_exact(r, 0) < 0)
		return -1;
	if (mpr_array(r, &n, 20) < 0 || n != 20)
		return -1;
	for (k = 0; k < n; k++)
		if (mpr_uint_max(r, &u, 19000) < 0 || u != (uint64_t)k * 1000)
			return -1;
	return 0;
}

static void test_nested_arrays_round_trip(void **state)
{
	packbuf pb;
	uint8_t *buf;
	mpr r;

	(void)state;
	pb_init(&pb);
	pack_nested(&pb);
	buf = dup_exact(pb.sb.data, pb.sb.size);

	mpr_init(&r, buf, pb.sb.size);
	assert_int_equal(read_nested(&r), 0);
	assert_true(mpr_done(&r));

	mpr_init(&r, buf, pb.sb.size);
	assert_int_equal(mpr_skip_value(&r, 3), 0);
	assert_true(mpr_done(&r));

	/* depth 3 is needed: [ [ "x", [nil, -5] ] ] */
	mpr_init(&r, buf, pb.sb.size);
	assert_int_equal(mpr_skip_value(&r, 2), -1);
	assert_err_has(&r, "nesting deeper than 2");
	assert_int_equal(mpr_offset(&r), 5);

	free(buf);
	pb_free(&pb);
}

static void test_array_count_above_cap_is_rejected(void **state)
{
	static const uint8_t five[] = { 0x95, 1, 2, 3, 4, 5 };
	uint32_t n = 77;
	mpr r;

	(void)state;
	mpr_init(&r, five, sizeof(five));
	assert_int_equal(mpr_array(&r, &n, 4), -1);
	assert_int_equal(n, 0);
	assert_err_has(&r, "array header at offset 0 claims 5 elements, more than the limit of 4");
	assert_int_equal(mpr_offset(&r), 0);

	mpr_init(&r, five, sizeof(five));
	assert_int_equal(mpr_array(&r, &n, 5), 0);
	assert_int_equal(n, 5);
	assert_int_equal(mpr_offset(&r), 1);

	mpr_init(&r, five, sizeof(five));
	assert_int_equal(mpr_array(&r, &n, 0), -1);
}

static void test_array_count_above_remaining_bytes_is_rejected(void **state)
{
	static const uint8_t arr[] = { 0xc0, 0x95, 1, 2, 3, 4 };
	uint32_t n;
	mpr r;

	(void)state;
	mpr_init(&r, arr, sizeof(arr));
	assert_int_equal(mpr_nil(&r), 0);
	assert_int_equal(mpr_array(&r, &n, 100), -1);
	assert_err_has(&r, "array header at offset 1 claims 5 elements but only 4 bytes remain");
	assert_int_equal(mpr_offset(&r), 1);
}

static void test_array32_claiming_4294967295_elements_in_5_bytes_is_rejected(void **state)
{
	static const uint8_t hostile[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t hostile_str[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t hostile_bin[] = { 0xc6, 0xff, 0xff, 0xff, 0xff };
	uint8_t *buf = dup_exact(hostile, sizeof(hostile));
	const char *s;
	const uint8_t *b;
	uint32_t n = 1;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(hostile));
	assert_int_equal(mpr_peek(&r), MPR_ARRAY);
	assert_int_equal(mpr_array(&r, &n, UINT32_MAX), -1);
	assert_int_equal(n, 0);
	assert_err_has(&r, "array header at offset 0 claims 4294967295 elements but only 0 bytes remain");
	assert_int_equal(mpr_offset(&r), 0);

	mpr_init(&r, buf, sizeof(hostile));
	assert_int_equal(mpr_array_exact(&r, UINT32_MAX), -1);
	assert_err_has(&r, "4294967295");

	mpr_init(&r, buf, sizeof(hostile));
	assert_int_equal(mpr_skip_value(&r, MPR_MAX_DEPTH), -1);
	assert_err_has(&r, "4294967295");
	free(buf);

	buf = dup_exact(hostile_str, sizeof(hostile_str));
	mpr_init(&r, buf, sizeof(hostile_str));
	assert_int_equal(mpr_str(&r, &s, &n, UINT32_MAX), -1);
	assert_err_has(&r, "string at offset 0 claims 4294967295 bytes but only 0 remain");
	free(buf);

	buf = dup_exact(hostile_bin, sizeof(hostile_bin));
	mpr_init(&r, buf, sizeof(hostile_bin));
	assert_int_equal(mpr_bin(&r, &b, &n, UINT32_MAX), -1);
	assert_err_has(&r, "bin at offset 0 claims 4294967295 bytes but only 0 remain");
	free(buf);
}

static void test_array_exact_and_bin_exact_require_exact_sizes(void **state)
{
	static const uint8_t arr[] = { 0x92, 1, 2 };
	static const uint8_t bin[] = { 0xc4, 3, 'a', 'b', 'c' };
	const uint8_t *b = (const uint8_t *)"";
	mpr r;

	(void)state;
	mpr_init(&r, arr, sizeof(arr));
	assert_int_equal(mpr_array_exact(&r, 3), -1);
	assert_err_has(&r, "array at offset 0 has 2 elements, expected exactly 3");
	mpr_init(&r, arr, sizeof(arr));
	assert_int_equal(mpr_array_exact(&r, 1), -1);
	mpr_init(&r, arr, sizeof(arr));
	assert_int_equal(mpr_array_exact(&r, 2), 0);
	assert_int_equal(mpr_offset(&r), 1);

	mpr_init(&r, bin, sizeof(bin));
	assert_int_equal(mpr_bin_exact(&r, &b, 4), -1);
	assert_null(b);
	assert_err_has(&r, "bin at offset 0 is 3 bytes long, expected exactly 4");
	mpr_init(&r, bin, sizeof(bin));
	assert_int_equal(mpr_bin_exact(&r, &b, 2), -1);
	mpr_init(&r, bin, sizeof(bin));
	assert_int_equal(mpr_bin_exact(&r, &b, 3), 0);
	assert_memory_equal(b, "abc", 3);
	assert_true(mpr_done(&r));
}

/* ---- canonical encodings ---------------------------------------------------- */

typedef struct {
	op_kind op;
	uint8_t tag;
	int nb;          /* bytes of length/value after the tag */
	uint64_t v;      /* value or length, as raw big-endian bits */
	size_t payload;  /* bytes of 'a' after the header */
	const char *msg; /* expected in err; NULL for accepted encodings */
} enc_case;

#define NEG(x) ((uint64_t)(int64_t)(x))

static const enc_case non_canonical[] = {
	/* unsigned values wider than needed */
	{ OP_UINT, 0xcc, 1, 0, 0, "non-canonical uint: 0 encoded as uint8" },
	{ OP_UINT, 0xcc, 1, 5, 0, "non-canonical uint: 5 encoded as uint8" },
	{ OP_UINT, 0xcc, 1, 127, 0, "non-canonical uint: 127 encoded as uint8" },
	{ OP_UINT, 0xcd, 2, 5, 0, "non-canonical uint: 5 encoded as uint16" },
	{ OP_UINT, 0xcd, 2, 255, 0, "non-canonical uint: 255 encoded as uint16" },
	{ OP_INT, 0xcd, 2, 255, 0, "non-canonical uint: 255 encoded as uint16" },
	{ OP_UINT, 0xce, 4, 0, 0, "non-canonical uint: 0 encoded as uint32" },
	{ OP_UINT, 0xce, 4, 65535, 0, "non-canonical uint: 65535 encoded as uint32" },
	{ OP_UINT, 0xcf, 8, 0, 0, "non-canonical uint: 0 encoded as uint64" },
	{ OP_UINT, 0xcf, 8, UINT32_MAX, 0, "non-canonical uint: 4294967295 encoded as uint64" },
	{ OP_INT, 0xcf, 8, 127, 0, "non-canonical uint: 127 encoded as uint64" },
	/* non-negative values in the signed formats */
	{ OP_INT, 0xd0, 1, 0, 0, "non-canonical int: non-negative 0 encoded as int8" },
	{ OP_INT, 0xd0, 1, 5, 0, "non-canonical int: non-negative 5 encoded as int8" },
	{ OP_UINT, 0xd0, 1, 5, 0, "non-canonical int: non-negative 5 encoded as int8" },
	{ OP_INT, 0xd0, 1, 127, 0, "non-negative 127 encoded as int8" },
	{ OP_INT, 0xd1, 2, 128, 0, "non-negative 128 encoded as int16" },
	{ OP_INT, 0xd1, 2, 32767, 0, "non-negative 32767 encoded as int16" },
	{ OP_INT, 0xd2, 4, 5, 0, "non-negative 5 encoded as int32" },
	{ OP_INT, 0xd2, 4, INT32_MAX, 0, "non-negative 2147483647 encoded as int32" },
	{ OP_INT, 0xd3, 8, 0, 0, "non-negative 0 encoded as int64" },
	{ OP_UINT, 0xd3, 8, INT64_MAX, 0, "non-negative 9223372036854775807 encoded as int64" },
	/* negative values wider than needed */
	{ OP_INT, 0xd0, 1, NEG(-1) & 0xff, 0, "non-canonical int: -1 encoded as int8" },
	{ OP_INT, 0xd0, 1, NEG(-32) & 0xff, 0, "non-canonical int: -32 encoded as int8" },
	{ OP_INT, 0xd1, 2, NEG(-1) & 0xffff, 0, "non-canonical int: -1 encoded as int16" },
	{ OP_INT, 0xd1, 2, NEG(-128) & 0xffff, 0, "non-canonical int: -128 encoded as int16" },
	{ OP_INT, 0xd2, 4, NEG(-33) & 0xffffffff, 0, "non-canonical int: -33 encoded as int32" },
	{ OP_INT, 0xd2, 4, NEG(-32768) & 0xffffffff, 0, "non-canonical int: -32768 encoded as int32" },
	{ OP_INT, 0xd3, 8, NEG(-1), 0, "non-canonical int: -1 encoded as int64" },
	{ OP_INT, 0xd3, 8, NEG(-32769), 0, "non-canonical int: -32769 encoded as int64" },
	{ OP_INT, 0xd3, 8, NEG(INT32_MIN), 0, "non-canonical int: -2147483648 encoded as int64" },
	/* string headers wider than needed */
	{ OP_STR, 0xd9, 1, 0, 0, "non-canonical string header: length 0 encoded as str8" },
	{ OP_STR, 0xd9, 1, 31, 31, "non-canonical string header: length 31 encoded as str8" },
	{ OP_STR, 0xda, 2, 5, 5, "non-canonical string header: length 5 encoded as str16" },
	{ OP_STR, 0xda, 2, 255, 255, "non-canonical string header: length 255 encoded as str16" },
	{ OP_STR, 0xdb, 4, 0, 0, "non-canonical string header: length 0 encoded as str32" },
	{ OP_STR, 0xdb, 4, 65535, 65535, "non-canonical string header: length 65535 encoded as str32" },
	/* bin headers wider than needed */
	{ OP_BIN, 0xc5, 2, 0, 0, "non-canonical bin header: length 0 encoded as bin16" },
	{ OP_BIN, 0xc5, 2, 255, 255, "non-canonical bin header: length 255 encoded as bin16" },
	{ OP_BIN, 0xc6, 4, 3, 3, "non-canonical bin header: length 3 encoded as bin32" },
	{ OP_BIN, 0xc6, 4, 65535, 65535, "non-canonical bin header: length 65535 encoded as bin32" },
	/* array headers wider than needed */
	{ OP_ARRAY, 0xdc, 2, 0, 0, "non-canonical array header: 0 elements encoded as array16" },
	{ OP_ARRAY, 0xdc, 2, 15, 15, "non-canonical array header: 15 elements encoded as array16" },
	{ OP_ARRAY, 0xdd, 4, 1, 1, "non-canonical array header: 1 elements encoded as array32" },
	{ OP_ARRAY, 0xdd, 4, 65535, 65535, "non-canonical array header: 65535 elements encoded as array32" },
};

static void test_non_canonical_encodings_are_rejected(void **state)
{
	/* A valid prefix (nil, true, 7) puts the bad item at offset 3. */
	static const uint8_t prefix[] = { 0xc0, 0xc3, 0x07 };
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(non_canonical) / sizeof(non_canonical[0]); k++) {
		const enc_case *c = &non_canonical[k];
		size_t len;
		uint8_t *item = make_item(c->tag, c->nb, c->v, c->payload, &len);
		uint8_t *both = malloc(sizeof(prefix) + len);
		uint64_t u;
		bool f;
		mpr r;

		assert_non_null(both);
		memcpy(both, prefix, sizeof(prefix));
		memcpy(both + sizeof(prefix), item, len);

		mpr_init(&r, item, len);
		assert_int_equal(run_op(&r, c->op), -1);
		assert_err_has(&r, c->msg);
		assert_err_has(&r, "at offset 0");
		assert_int_equal(mpr_offset(&r), 0);

		mpr_init(&r, item, len);
		assert_int_equal(mpr_skip_value(&r, MPR_MAX_DEPTH), -1);
		assert_err_has(&r, c->msg);

		mpr_init(&r, both, sizeof(prefix) + len);
		assert_int_equal(mpr_nil(&r), 0);
		assert_int_equal(mpr_bool(&r, &f), 0);
		assert_int_equal(mpr_uint(&r, &u), 0);
		assert_int_equal(run_op(&r, c->op), -1);
		assert_err_has(&r, c->msg);
		assert_err_has(&r, "at offset 3");
		assert_int_equal(mpr_offset(&r), 3);

		/* the same bad item inside an array is found by skip */
		both[2] = 0x91;
		mpr_init(&r, both, sizeof(prefix) + len);
		assert_int_equal(mpr_nil(&r), 0);
		assert_int_equal(mpr_bool(&r, &f), 0);
		assert_int_equal(mpr_skip_value(&r, MPR_MAX_DEPTH), -1);
		assert_err_has(&r, c->msg);
		assert_err_has(&r, "at offset 3");

		free(both);
		free(item);
	}
}

static const enc_case smallest[] = {
	{ OP_UINT, 0xcc, 1, 128, 0, NULL },
	{ OP_UINT, 0xcc, 1, 255, 0, NULL },
	{ OP_UINT, 0xcd, 2, 256, 0, NULL },
	{ OP_UINT, 0xcd, 2, 65535, 0, NULL },
	{ OP_UINT, 0xce, 4, 65536, 0, NULL },
	{ OP_UINT, 0xce, 4, UINT32_MAX, 0, NULL },
	{ OP_UINT, 0xcf, 8, (uint64_t)UINT32_MAX + 1, 0, NULL },
	{ OP_UINT, 0xcf, 8, UINT64_MAX, 0, NULL },
	{ OP_INT, 0xd0, 1, NEG(-33) & 0xff, 0, NULL },
	{ OP_INT, 0xd0, 1, NEG(-128) & 0xff, 0, NULL },
	{ OP_INT, 0xd1, 2, NEG(-129) & 0xffff, 0, NULL },
	{ OP_INT, 0xd1, 2, NEG(-32768) & 0xffff, 0, NULL },
	{ OP_INT, 0xd2, 4, NEG(-32769) & 0xffffffff, 0, NULL },
	{ OP_INT, 0xd2, 4, NEG(INT32_MIN) & 0xffffffff, 0, NULL },
	{ OP_INT, 0xd3, 8, NEG((int64_t)INT32_MIN - 1), 0, NULL },
	{ OP_INT, 0xd3, 8, NEG(INT64_MIN), 0, NULL },
	{ OP_STR, 0xd9, 1, 32, 32, NULL },
	{ OP_STR, 0xd9, 1, 255, 255, NULL },
	{ OP_STR, 0xda, 2, 256, 256, NULL },
	{ OP_STR, 0xda, 2, 65535, 65535, NULL },
	{ OP_STR, 0xdb, 4, 65536, 65536, NULL },
	{ OP_BIN, 0xc4, 1, 0, 0, NULL },
	{ OP_BIN, 0xc4, 1, 255, 255, NULL },
	{ OP_BIN, 0xc5, 2, 256, 256, NULL },
	{ OP_BIN, 0xc5, 2, 65535, 65535, NULL },
	{ OP_BIN, 0xc6, 4, 65536, 65536, NULL },
	{ OP_ARRAY, 0xdc, 2, 16, 16, NULL },
	{ OP_ARRAY, 0xdc, 2, 65535, 65535, NULL },
	{ OP_ARRAY, 0xdd, 4, 65536, 65536, NULL },
};

static void test_smallest_encodings_at_each_boundary_are_accepted(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(smallest) / sizeof(smallest[0]); k++) {
		const enc_case *c = &smallest[k];
		size_t len;
		uint8_t *item = make_item(c->tag, c->nb, c->v, c->payload, &len);
		mpr r;

		mpr_init(&r, item, len);
		if (run_op(&r, c->op) != 0)
			fail_msg("case %zu (tag 0x%02x): %s", k, c->tag, r.err);
		/* an array header leaves its elements; everything else is whole */
		assert_int_equal(mpr_offset(&r), c->op == OP_ARRAY ? 1 + (size_t)c->nb : len);

		mpr_init(&r, item, len);
		if (mpr_skip_value(&r, MPR_MAX_DEPTH) != 0)
			fail_msg("case %zu (tag 0x%02x): %s", k, c->tag, r.err);
		assert_true(mpr_done(&r));
		free(item);
	}
}

/* ---- truncation -------------------------------------------------------------- */

static void pack_many(packbuf *pb)
{
	static const uint8_t b300[300];
	char s40[40];

	memset(s40, 'q', sizeof(s40));
	msgpack_pack_uint64(&pb->pk, 0);
	msgpack_pack_uint64(&pb->pk, 200);
	msgpack_pack_uint64(&pb->pk, 70000);
	msgpack_pack_uint64(&pb->pk, UINT64_MAX);
	msgpack_pack_int64(&pb->pk, -1);
	msgpack_pack_int64(&pb->pk, -200);
	msgpack_pack_int64(&pb->pk, INT64_MIN);
	pack_str(pb, "", 0);
	pack_str(pb, s40, sizeof(s40));
	pack_str(pb, "h\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10);
	pack_bin(pb, "abc", 3);
	pack_bin(pb, b300, sizeof(b300));
	msgpack_pack_nil(&pb->pk);
	msgpack_pack_true(&pb->pk);
	msgpack_pack_false(&pb->pk);
	pack_nested(pb);
}

static int read_many(mpr *r)
{
	uint64_t u;
	int64_t i;
	const char *s;
	const uint8_t *b;
	uint32_t n;
	bool f;

	if (mpr_uint(r, &u) < 0 || u != 0)
		return -1;
	if (mpr_uint(r, &u) < 0 || u != 200)
		return -1;
	if (mpr_uint(r, &u) < 0 || u != 70000)
		return -1;
	if (mpr_uint(r, &u) < 0 || u != UINT64_MAX)
		return -1;
	if (mpr_int(r, &i) < 0 || i != -1)
		return -1;
	if (mpr_int(r, &i) < 0 || i != -200)
		return -1;
	if (mpr_int(r, &i) < 0 || i != INT64_MIN)
		return -1;
	if (mpr_str(r, &s, &n, 0) < 0 || n != 0)
		return -1;
	if (mpr_str(r, &s, &n, 40) < 0 || n != 40)
		return -1;
	if (mpr_str(r, &s, &n, 10) < 0 || n != 10)
		return -1;
	if (mpr_bin(r, &b, &n, 3) < 0 || n != 3)
		return -1;
	if (mpr_bin_exact(r, &b, 300) < 0)
		return -1;
	if (mpr_nil(r) < 0 || mpr_bool(r, &f) < 0 || !f || mpr_bool(r, &f) < 0 || f)
		return -1;
	return read_nested(r);
}

static void test_every_truncation_fails_cleanly_within_bounds(void **state)
{
	packbuf pb;
	size_t full, cut, nb = 0, k;
	size_t boundaries[64];
	mpr r;

	(void)state;
	pb_init(&pb);
	pack_many(&pb);
	full = pb.sb.size;

	/* the complete buffer decodes; remember where top-level items end */
	mpr_init(&r, pb.sb.data, full);
	assert_int_equal(read_many(&r), 0);
	assert_true(mpr_done(&r));
	mpr_init(&r, pb.sb.data, full);
	boundaries[nb++] = 0;
	while (!mpr_done(&r)) {
		assert_int_equal(mpr_skip_value(&r, MPR_MAX_DEPTH), 0);
		assert_true(nb < 64);
		boundaries[nb++] = mpr_offset(&r);
	}
	assert_int_equal(boundaries[nb - 1], full);

	for (cut = 0; cut < full; cut++) {
		uint8_t *buf = dup_exact(pb.sb.data, cut);
		bool at_boundary = false;
		int rc = 0;

		mpr_init(&r, buf, cut);
		assert_int_equal(read_many(&r), -1);
		assert_true(r.failed);
		assert_true(r.err[0] != '\0');
		assert_true(r.pos >= r.start && r.pos <= r.end);
		assert_false(mpr_done(&r));

		mpr_init(&r, buf, cut);
		while (rc == 0 && !mpr_done(&r))
			rc = mpr_skip_value(&r, MPR_MAX_DEPTH);
		for (k = 0; k < nb; k++)
			at_boundary |= boundaries[k] == cut;
		if (at_boundary) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, -1);
			assert_true(r.err[0] != '\0');
			assert_true(r.pos >= r.start && r.pos <= r.end);
		}
		free(buf);
	}
	pb_free(&pb);
}

static void test_truncated_headers_name_the_bytes_needed(void **state)
{
	static const uint8_t u32[] = { 0xce, 0x01, 0x00 };
	static const uint8_t str[] = { 0xa5, 'a', 'b' };
	uint64_t u;
	const char *s;
	uint32_t n;
	mpr r;

	(void)state;
	mpr_init(&r, u32, sizeof(u32));
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "truncated uint header at offset 0: needs 5 bytes but only 3 remain");

	mpr_init(&r, str, sizeof(str));
	assert_int_equal(mpr_str(&r, &s, &n, 10), -1);
	assert_err_has(&r, "string at offset 0 claims 5 bytes but only 2 remain");
}

/* ---- nesting ------------------------------------------------------------------ */

static void test_skip_rejects_ten_thousand_levels_of_nesting(void **state)
{
	uint8_t *buf = malloc(10000);
	mpr r;

	(void)state;
	assert_non_null(buf);
	memset(buf, 0x91, 10000);

	mpr_init(&r, buf, 10000);
	assert_int_equal(mpr_skip_value(&r, MPR_MAX_DEPTH), -1);
	assert_err_has(&r, "nesting deeper than 8");
	assert_err_has(&r, "offset 8");
	assert_int_equal(mpr_offset(&r), 8);

	/* asking for more than MPR_MAX_DEPTH is clamped to it */
	mpr_init(&r, buf, 10000);
	assert_int_equal(mpr_skip_value(&r, 100000), -1);
	assert_err_has(&r, "nesting deeper than 8");

	mpr_init(&r, buf, 10000);
	assert_int_equal(mpr_skip_value(&r, 3), -1);
	assert_err_has(&r, "array at offset 3: nesting deeper than 3");
	free(buf);
}

static void test_skip_accepts_nesting_up_to_max_depth(void **state)
{
	uint8_t buf[MPR_MAX_DEPTH + 2];
	int depth;
	mpr r;

	(void)state;
	for (depth = 0; depth <= MPR_MAX_DEPTH + 1; depth++) {
		int max;

		memset(buf, 0x91, (size_t)depth);
		buf[depth] = 0xc0;
		for (max = -1; max <= MPR_MAX_DEPTH + 1; max++) {
			int eff = max < 0 ? 0 : max > MPR_MAX_DEPTH ? MPR_MAX_DEPTH : max;

			mpr_init(&r, buf, (size_t)depth + 1);
			if (depth <= eff) {
				assert_int_equal(mpr_skip_value(&r, max), 0);
				assert_true(mpr_done(&r));
			} else {
				assert_int_equal(mpr_skip_value(&r, max), -1);
				assert_err_has(&r, "nesting deeper than");
				assert_int_equal(mpr_offset(&r), (size_t)eff);
			}
		}
	}

	/* an empty array counts as one level too */
	mpr_init(&r, "\x90", 1);
	assert_int_equal(mpr_skip_value(&r, 0), -1);
	assert_err_has(&r, "nesting deeper than 0");
	mpr_init(&r, "\x90", 1);
	assert_int_equal(mpr_skip_value(&r, 1), 0);
	assert_true(mpr_done(&r));
}

static void test_skip_counts_pending_elements_of_enclosing_arrays(void **state)
{
	/* [ [14 x 1], <missing> ]: the inner header fits the bytes left, but
	 * not together with the outer array's second element. */
	uint8_t buf[2 + 14];
	mpr r;

	(void)state;
	buf[0] = 0x92;
	buf[1] = 0x9e;
	memset(buf + 2, 0x01, 14);
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_skip_value(&r, 2), -1);
	assert_err_has(&r, "array header at offset 1 claims 14 elements but only 14 bytes remain");
	assert_err_has(&r, "1 more elements of enclosing arrays");
	assert_int_equal(mpr_offset(&r), 1);

	/* with the sibling present it is fine */
	{
		uint8_t ok[2 + 14 + 1];
		memcpy(ok, buf, sizeof(buf));
		ok[sizeof(buf)] = 0xc0;
		mpr_init(&r, ok, sizeof(ok));
		assert_int_equal(mpr_skip_value(&r, 2), 0);
		assert_true(mpr_done(&r));
	}
}

static void test_skip_validates_nested_contents(void **state)
{
	static const uint8_t bad_utf8[] = { 0x92, 0x01, 0xa2, 0xc0, 0xaf };
	static const uint8_t nested_map[] = { 0x92, 0x01, 0x91, 0x80 };
	static const uint8_t nested_float[] = { 0x91, 0xca, 0, 0, 0, 0 };
	static const uint8_t nested_ext[] = { 0x91, 0xd4, 0x01, 0x02 };
	static const uint8_t nested_noncanon[] = { 0x91, 0xcc, 0x01 };
	mpr r;

	(void)state;
	mpr_init(&r, bad_utf8, sizeof(bad_utf8));
	assert_int_equal(mpr_skip_value(&r, 2), -1);
	assert_err_has(&r, "string at offset 2 is not valid UTF-8");
	assert_int_equal(mpr_offset(&r), 2);

	mpr_init(&r, nested_map, sizeof(nested_map));
	assert_int_equal(mpr_skip_value(&r, 3), -1);
	assert_err_has(&r, "map at offset 3");

	mpr_init(&r, nested_float, sizeof(nested_float));
	assert_int_equal(mpr_skip_value(&r, 3), -1);
	assert_err_has(&r, "float at offset 1");

	mpr_init(&r, nested_ext, sizeof(nested_ext));
	assert_int_equal(mpr_skip_value(&r, 3), -1);
	assert_err_has(&r, "ext at offset 1");

	mpr_init(&r, nested_noncanon, sizeof(nested_noncanon));
	assert_int_equal(mpr_skip_value(&r, 3), -1);
	assert_err_has(&r, "non-canonical uint: 1 encoded as uint8 at offset 1");
}

static void test_skip_consumes_exactly_one_value(void **state)
{
	static const uint8_t two[] = { 0x92, 0x01, 0xa1, 'x', 0x07 };
	uint64_t u;
	mpr r;

	(void)state;
	mpr_init(&r, two, sizeof(two));
	assert_int_equal(mpr_skip_value(&r, 1), 0);
	assert_int_equal(mpr_offset(&r), 4);
	assert_false(mpr_done(&r));
	assert_int_equal(mpr_uint(&r, &u), 0);
	assert_true(u == 7);
	assert_true(mpr_done(&r));
	assert_int_equal(mpr_skip_value(&r, 1), -1);
	assert_err_has(&r, "expected a value at offset 5, found end of input");
}

/* ---- UTF-8 ------------------------------------------------------------------ */

#define S(lit) { lit, sizeof(lit) - 1 }
static const struct { const char *s; size_t len; } bad_utf8[] = {
	S("\xc0\xaf"),             /* overlong '/' */
	S("\xc1\xbf"),             /* overlong */
	S("\xe0\x80\xaf"),         /* overlong, 3 bytes */
	S("\xe0\x9f\xbf"),         /* overlong U+07FF */
	S("\xf0\x80\x80\xaf"),     /* overlong, 4 bytes */
	S("\xf0\x8f\xbf\xbf"),     /* overlong U+FFFF */
	S("\xed\xa0\x80"),         /* U+D800, surrogate */
	S("\xed\xbf\xbf"),         /* U+DFFF, surrogate */
	S("\xf4\x90\x80\x80"),     /* U+110000 */
	S("\xf5\x80\x80\x80"),     /* lead byte beyond U+10FFFF */
	S("\xff"),
	S("\xfe"),
	S("\x80"),                 /* lone continuation */
	S("ab\xbf"),               /* lone continuation after ASCII */
	S("\xc3"),                 /* truncated 2-byte sequence */
	S("\xe2\x82"),             /* truncated 3-byte sequence */
	S("\xf0\x9f\x98"),         /* truncated 4-byte sequence */
	S("\xe2\x82" "a"),         /* sequence interrupted by ASCII */
	S("\xc3\xa9\xc3"),         /* truncated after a valid one */
};
static const struct { const char *s; size_t len; } good_utf8[] = {
	S(""),
	S("plain ascii"),
	S("\x01\x7f"),
	S("\xc2\x80"),             /* U+0080 */
	S("\xdf\xbf"),             /* U+07FF */
	S("\xe0\xa0\x80"),         /* U+0800 */
	S("\xed\x9f\xbf"),         /* U+D7FF */
	S("\xee\x80\x80"),         /* U+E000 */
	S("\xef\xbf\xbf"),         /* U+FFFF */
	S("\xf0\x90\x80\x80"),     /* U+10000 */
	S("\xf4\x8f\xbf\xbf"),     /* U+10FFFF */
	S("\xe2\x82\xac\xf0\x9f\x98\x80 ok"),
};

static uint8_t *fixstr(const char *s, size_t len, size_t *out_len)
{
	uint8_t *buf;

	assert_true(len < 32);
	*out_len = len + 1;
	buf = malloc(*out_len);
	assert_non_null(buf);
	buf[0] = (uint8_t)(0xa0 | len);
	memcpy(buf + 1, s, len);
	return buf;
}

static void test_invalid_utf8_is_rejected(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(bad_utf8) / sizeof(bad_utf8[0]); k++) {
		size_t len;
		uint8_t *buf = fixstr(bad_utf8[k].s, bad_utf8[k].len, &len);
		char *exact = (char *)dup_exact(bad_utf8[k].s, bad_utf8[k].len);
		const char *s;
		uint32_t n;
		mpr r;

		if (mpr_utf8_valid(exact, bad_utf8[k].len))
			fail_msg("case %zu accepted by mpr_utf8_valid", k);

		mpr_init(&r, buf, len);
		assert_int_equal(mpr_str(&r, &s, &n, 100), -1);
		assert_null(s);
		assert_err_has(&r, "string at offset 0 is not valid UTF-8");
		assert_int_equal(mpr_offset(&r), 0);

		mpr_init(&r, buf, len);
		assert_int_equal(mpr_skip_value(&r, 0), -1);
		assert_err_has(&r, "not valid UTF-8");
		free(exact);
		free(buf);
	}
}

static void test_valid_utf8_at_range_boundaries_is_accepted(void **state)
{
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(good_utf8) / sizeof(good_utf8[0]); k++) {
		size_t len;
		uint8_t *buf = fixstr(good_utf8[k].s, good_utf8[k].len, &len);
		char *exact = (char *)dup_exact(good_utf8[k].s, good_utf8[k].len);
		const char *s;
		uint32_t n;
		mpr r;

		if (!mpr_utf8_valid(exact, good_utf8[k].len))
			fail_msg("case %zu rejected by mpr_utf8_valid", k);
		mpr_init(&r, buf, len);
		if (mpr_str(&r, &s, &n, 100) != 0)
			fail_msg("case %zu: %s", k, r.err);
		assert_int_equal(n, good_utf8[k].len);
		assert_true(mpr_done(&r));
		free(exact);
		free(buf);
	}
	assert_true(mpr_utf8_valid(NULL, 0));
	assert_false(mpr_utf8_valid(NULL, 1));
}

static void test_string_with_nul_byte_is_rejected(void **state)
{
	static const uint8_t buf[] = { 0xc0, 0xa3, 'a', 0x00, 'b' };
	const char *s;
	uint32_t n;
	mpr r;

	(void)state;
	assert_false(mpr_utf8_valid("a\0b", 3));
	assert_false(mpr_utf8_valid("\0", 1));
	assert_true(mpr_utf8_valid("a\0b", 1));

	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_nil(&r), 0);
	assert_int_equal(mpr_str(&r, &s, &n, 10), -1);
	assert_err_has(&r, "string at offset 1 contains a NUL byte");
	assert_int_equal(mpr_offset(&r), 1);

	mpr_init(&r, buf + 1, sizeof(buf) - 1);
	assert_int_equal(mpr_skip_value(&r, 0), -1);
	assert_err_has(&r, "NUL");
}

/* ---- forbidden types ---------------------------------------------------------- */

static void test_maps_floats_and_ext_are_rejected_naming_the_type(void **state)
{
	static const op_kind ops[] = { OP_UINT, OP_INT, OP_STR, OP_BIN, OP_ARRAY, OP_NIL, OP_BOOL, OP_SKIP };
	unsigned tag;

	(void)state;
	for (tag = 0; tag <= 0xff; tag++) {
		uint8_t buf[1 + 20];
		const char *want;
		mpr_type type;
		size_t k;

		if (tag >= 0x80 && tag <= 0x8f)
			want = "map at offset 0: maps are not allowed", type = MPR_MAP;
		else if (tag == 0xde || tag == 0xdf)
			want = "map at offset 0: maps are not allowed", type = MPR_MAP;
		else if (tag == 0xca || tag == 0xcb)
			want = "float at offset 0: floats are not allowed", type = MPR_FLOAT;
		else if ((tag >= 0xc7 && tag <= 0xc9) || (tag >= 0xd4 && tag <= 0xd8))
			want = "ext at offset 0: ext types are not allowed", type = MPR_EXT;
		else if (tag == 0xc1)
			want = "invalid byte 0xc1 at offset 0", type = MPR_INVALID;
		else
			continue;

		memset(buf, 0, sizeof(buf));
		buf[0] = (uint8_t)tag;
		for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
			mpr r;

			mpr_init(&r, buf, sizeof(buf));
			assert_int_equal(mpr_peek(&r), type);
			assert_int_equal(run_op(&r, ops[k]), -1);
			assert_err_has(&r, want);
			assert_int_equal(mpr_offset(&r), 0);
		}
		/* even a lone tag byte is named, not reported as truncation */
		{
			mpr r;
			mpr_init(&r, buf, 1);
			assert_int_equal(mpr_skip_value(&r, 1), -1);
			assert_err_has(&r, want);
		}
	}
}

/* ---- error state and messages ------------------------------------------------- */

static void test_error_state_is_sticky(void **state)
{
	static const uint8_t buf[] = { 0x01, 0xcc, 0x05, 0x02, 0xc0, 0x90, 0xa0, 0xc4, 0x00, 0xc2 };
	static const op_kind ops[] = { OP_UINT, OP_INT, OP_STR, OP_BIN, OP_ARRAY, OP_NIL, OP_BOOL, OP_SKIP };
	char saved[sizeof(((mpr *)0)->err)];
	uint64_t u = 42;
	int64_t i = 42;
	const char *s = "x";
	const uint8_t *b = (const uint8_t *)"x";
	uint32_t n = 42;
	bool f = true;
	size_t k;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_uint(&r, &u), 0);
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "non-canonical uint: 5 encoded as uint8 at offset 1");
	memcpy(saved, r.err, sizeof(saved));

	for (k = 0; k < sizeof(ops) / sizeof(ops[0]); k++) {
		assert_int_equal(run_op(&r, ops[k]), -1);
		assert_string_equal(r.err, saved);
		assert_int_equal(mpr_offset(&r), 1);
	}
	/* outputs are cleared, not left stale */
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_true(u == 0);
	assert_int_equal(mpr_uint_max(&r, &u, 10), -1);
	assert_int_equal(mpr_int(&r, &i), -1);
	assert_true(i == 0);
	assert_int_equal(mpr_str(&r, &s, &n, 10), -1);
	assert_null(s);
	assert_int_equal(n, 0);
	assert_int_equal(mpr_bin(&r, &b, &n, 10), -1);
	assert_null(b);
	assert_int_equal(mpr_bin_exact(&r, &b, 0), -1);
	assert_int_equal(mpr_bool(&r, &f), -1);
	assert_false(f);
	assert_int_equal(mpr_array(&r, &n, 10), -1);
	assert_int_equal(mpr_array_exact(&r, 0), -1);
	assert_int_equal(mpr_fail(&r, "a later schema error"), -1);
	assert_string_equal(r.err, saved);
	assert_int_equal(mpr_peek(&r), MPR_INVALID);
	assert_false(mpr_done(&r));
	assert_true(r.failed);
	assert_int_equal(mpr_offset(&r), 1);
}

static void test_fail_sets_the_callers_message_truncated_to_fit(void **state)
{
	static const uint8_t buf[] = { 0x01, 0x02 };
	char longmsg[300];
	uint64_t u;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_uint(&r, &u), 0);
	assert_int_equal(mpr_fail(&r, "field 'size' out of range"), -1);
	assert_true(r.failed);
	assert_string_equal(r.err, "field 'size' out of range");
	assert_int_equal(mpr_offset(&r), 1);
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_string_equal(r.err, "field 'size' out of range");

	memset(longmsg, 'z', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_fail(&r, longmsg), -1);
	assert_int_equal(strlen(r.err), sizeof(r.err) - 1);
	assert_memory_equal(r.err, longmsg, sizeof(r.err) - 1);

	/* a message with % signs is copied, not formatted */
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_fail(&r, "100% %s %n"), -1);
	assert_string_equal(r.err, "100% %s %n");

	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_fail(&r, NULL), -1);
	assert_true(r.err[0] != '\0');
}

static void test_type_mismatch_names_expected_and_found(void **state)
{
	static const uint8_t buf[] = { 0xc0, 0xa1, 'x', 0x91, 0x01, 0xc3 };
	uint64_t u;
	int64_t i;
	const char *s;
	const uint8_t *b;
	uint32_t n;
	bool f;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "expected uint at offset 0, found nil");

	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_nil(&r), 0);
	assert_int_equal(mpr_bin(&r, &b, &n, 10), -1);
	assert_err_has(&r, "expected bin at offset 1, found string");

	mpr_init(&r, buf + 3, sizeof(buf) - 3);
	assert_int_equal(mpr_str(&r, &s, &n, 10), -1);
	assert_err_has(&r, "expected string at offset 0, found array");

	mpr_init(&r, buf + 5, 1);
	assert_int_equal(mpr_int(&r, &i), -1);
	assert_err_has(&r, "expected int at offset 0, found bool");

	mpr_init(&r, buf + 4, 1);
	assert_int_equal(mpr_bool(&r, &f), -1);
	assert_err_has(&r, "expected bool at offset 0, found uint");

	mpr_init(&r, buf + 4, 1);
	assert_int_equal(mpr_array(&r, &n, 1), -1);
	assert_err_has(&r, "expected array at offset 0, found uint");

	mpr_init(&r, buf, 1);
	assert_int_equal(mpr_nil(&r), 0);
	assert_int_equal(mpr_nil(&r), -1);
	assert_err_has(&r, "expected nil at offset 1, found end of input");
}

static void test_bool_reads_true_and_false(void **state)
{
	static const uint8_t buf[] = { 0xc3, 0xc2 };
	bool f = false;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_int_equal(mpr_peek(&r), MPR_BOOL);
	assert_int_equal(mpr_bool(&r, &f), 0);
	assert_true(f);
	assert_int_equal(mpr_bool(&r, &f), 0);
	assert_false(f);
	assert_true(mpr_done(&r));
}

static void test_peek_reports_the_next_type_without_consuming(void **state)
{
	static const struct { uint8_t b; mpr_type t; } cases[] = {
		{ 0x00, MPR_UINT }, { 0x7f, MPR_UINT }, { 0xcc, MPR_UINT }, { 0xcf, MPR_UINT },
		{ 0xe0, MPR_NEGINT }, { 0xff, MPR_NEGINT }, { 0xd0, MPR_NEGINT }, { 0xd3, MPR_NEGINT },
		{ 0xc0, MPR_NIL }, { 0xc2, MPR_BOOL }, { 0xc3, MPR_BOOL },
		{ 0xa0, MPR_STR }, { 0xbf, MPR_STR }, { 0xd9, MPR_STR }, { 0xdb, MPR_STR },
		{ 0xc4, MPR_BIN }, { 0xc6, MPR_BIN },
		{ 0x90, MPR_ARRAY }, { 0x9f, MPR_ARRAY }, { 0xdc, MPR_ARRAY }, { 0xdd, MPR_ARRAY },
		{ 0x80, MPR_MAP }, { 0x8f, MPR_MAP }, { 0xde, MPR_MAP }, { 0xdf, MPR_MAP },
		{ 0xca, MPR_FLOAT }, { 0xcb, MPR_FLOAT },
		{ 0xc7, MPR_EXT }, { 0xc9, MPR_EXT }, { 0xd4, MPR_EXT }, { 0xd8, MPR_EXT },
		{ 0xc1, MPR_INVALID },
	};
	size_t k;
	mpr r;

	(void)state;
	for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		mpr_init(&r, &cases[k].b, 1);
		assert_int_equal(mpr_peek(&r), cases[k].t);
		assert_int_equal(mpr_offset(&r), 0);
		assert_false(r.failed);
	}
	mpr_init(&r, NULL, 0);
	assert_int_equal(mpr_peek(&r), MPR_END);
	mpr_init(&r, "\x01", 1);
	assert_int_equal(mpr_skip_value(&r, 0), 0);
	assert_int_equal(mpr_peek(&r), MPR_END);
}

static void test_done_requires_every_byte_consumed_without_error(void **state)
{
	static const uint8_t buf[] = { 0x01, 0x02 };
	uint64_t u;
	mpr r;

	(void)state;
	mpr_init(&r, buf, sizeof(buf));
	assert_false(mpr_done(&r));
	assert_int_equal(mpr_uint(&r, &u), 0);
	assert_false(mpr_done(&r));
	assert_int_equal(mpr_uint(&r, &u), 0);
	assert_true(mpr_done(&r));
	assert_int_equal(mpr_fail(&r, "schema says no"), -1);
	assert_false(mpr_done(&r));
}

static void test_empty_and_null_input(void **state)
{
	uint64_t u;
	mpr r;

	(void)state;
	mpr_init(&r, NULL, 0);
	assert_true(mpr_done(&r));
	assert_int_equal(mpr_offset(&r), 0);
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "expected uint at offset 0, found end of input");

	mpr_init(&r, NULL, 0);
	assert_int_equal(mpr_skip_value(&r, 1), -1);
	assert_err_has(&r, "found end of input");

	mpr_init(&r, NULL, 10);
	assert_true(r.failed);
	assert_false(mpr_done(&r));
	assert_int_equal(mpr_peek(&r), MPR_INVALID);
	assert_int_equal(mpr_uint(&r, &u), -1);
	assert_err_has(&r, "NULL buffer");
}

/* ---- exhaustive and randomised checks against msgpack-c --------------------- */

/* Whether msgpack-c's object would be accepted by the reader's rules. */
static bool samen_allowed(const msgpack_object *o, int depth)
{
	uint32_t k;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
	case MSGPACK_OBJECT_BOOLEAN:
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
	case MSGPACK_OBJECT_BIN:
		return true;
	case MSGPACK_OBJECT_STR:
		return mpr_utf8_valid(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_ARRAY:
		if (depth >= MPR_MAX_DEPTH)
			return false;
		for (k = 0; k < o->via.array.size; k++)
			if (!samen_allowed(&o->via.array.ptr[k], depth + 1))
				return false;
		return true;
	default:
		return false;
	}
}

/*
 * Compare the reader with msgpack-c on one buffer holding (at most) one
 * value. Accepted by the reader => msgpack-c parses the same bytes and
 * re-packing its object reproduces them exactly (so the accepted encoding
 * is the canonical one). When check_complete is set, also the converse:
 * msgpack-c parses all bytes, re-packs them identically and the value is
 * of an allowed type => the reader accepts it.
 */
static void compare_with_msgpack_c(const uint8_t *buf, size_t len, bool check_complete,
                                   msgpack_unpacked *up, packbuf *pb)
{
	size_t off = 0;
	bool ours, theirs, canonical = false;
	mpr r;

	mpr_init(&r, buf, len);
	ours = mpr_skip_value(&r, MPR_MAX_DEPTH) == 0 && mpr_done(&r);
	if (!ours && !check_complete)
		return;

	theirs = msgpack_unpack_next(up, (const char *)buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
	         off == len;
	if (theirs) {
		pb_reset(pb);
		assert_int_equal(msgpack_pack_object(&pb->pk, up->data), 0);
		canonical = pb->sb.size == len && memcmp(pb->sb.data, buf, len) == 0;
	}
	if (ours && !(theirs && canonical)) {
		char hex[3 * 16 + 1] = "";
		size_t k;
		for (k = 0; k < len && k < 16; k++)
			snprintf(hex + 3 * k, 4, "%02x ", buf[k]);
		fail_msg("reader accepted non-canonical or invalid input %s(len %zu)", hex, len);
	}
	if (check_complete && theirs && canonical && samen_allowed(&up->data, 0) && !ours) {
		char hex[3 * 16 + 1] = "";
		size_t k;
		for (k = 0; k < len && k < 16; k++)
			snprintf(hex + 3 * k, 4, "%02x ", buf[k]);
		fail_msg("reader rejected canonical input %s(len %zu): %s", hex, len, r.err);
	}
}

static void test_every_input_up_to_3_bytes_agrees_with_msgpack_c(void **state)
{
	msgpack_unpacked up;
	packbuf pb;
	uint8_t *one = malloc(1), *two = malloc(2), *three = malloc(3);
	unsigned a, b, c;

	(void)state;
	assert_true(one && two && three);
	msgpack_unpacked_init(&up);
	pb_init(&pb);
	for (a = 0; a < 256; a++) {
		one[0] = (uint8_t)a;
		compare_with_msgpack_c(one, 1, true, &up, &pb);
		for (b = 0; b < 256; b++) {
			two[0] = (uint8_t)a;
			two[1] = (uint8_t)b;
			compare_with_msgpack_c(two, 2, true, &up, &pb);
			three[0] = (uint8_t)a;
			three[1] = (uint8_t)b;
			for (c = 0; c < 256; c++) {
				three[2] = (uint8_t)c;
				/* msgpack-c is only consulted for inputs we accept */
				compare_with_msgpack_c(three, 3, false, &up, &pb);
			}
		}
	}
	pb_free(&pb);
	msgpack_unpacked_destroy(&up);
	free(one);
	free(two);
	free(three);
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic, so failures reproduce */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void test_random_mutations_never_overread_and_accepted_values_are_canonical(void **state)
{
	static const uint8_t interesting[] = {
		0x00, 0x7f, 0x80, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc4, 0xc5, 0xc6, 0xcc, 0xcd,
		0xce, 0xcf, 0xd0, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xe0, 0xff, 0xed, 0xf4,
	};
	msgpack_unpacked up;
	packbuf base, pb;
	uint64_t seed = 0x5a4d454e2d6d7072ULL;
	int iter;

	(void)state;
	msgpack_unpacked_init(&up);
	pb_init(&base);
	pb_init(&pb);
	msgpack_pack_array(&base.pk, 3);
	pack_nested(&base);
	pack_str(&base, "h\xc3\xa9llo", 6);
	pack_bin(&base, "\x00\x01", 2);

	for (iter = 0; iter < 20000; iter++) {
		size_t len = base.sb.size, k, edits = 1 + rng_next(&seed) % 4;
		uint8_t *buf = dup_exact(base.sb.data, len);

		for (k = 0; k < edits; k++) {
			size_t at = rng_next(&seed) % len;
			switch (rng_next(&seed) % 4) {
			case 0: buf[at] = (uint8_t)rng_next(&seed); break;
			case 1: buf[at] = interesting[rng_next(&seed) % sizeof(interesting)]; break;
			case 2: buf[at] ^= (uint8_t)(1u << (rng_next(&seed) % 8)); break;
			default: len = at + 1; break; /* truncate */
			}
		}
		/* shrink to an exact allocation so ASan sees the new end */
		{
			uint8_t *exact = dup_exact(buf, len);
			free(buf);
			buf = exact;
		}
		compare_with_msgpack_c(buf, len, false, &up, &pb);
		{
			/* every reading function on garbage stays in bounds */
			op_kind op = (op_kind)(rng_next(&seed) % 8);
			mpr r;
			mpr_init(&r, buf, len);
			while (run_op(&r, op) == 0 && !mpr_done(&r))
				op = (op_kind)(rng_next(&seed) % 8);
			assert_true(r.pos >= r.start && r.pos <= r.end);
			assert_true(r.failed == (r.err[0] != '\0'));
		}
		free(buf);
	}
	pb_free(&pb);
	pb_free(&base);
	msgpack_unpacked_destroy(&up);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uint_round_trips_at_every_format_boundary),
		cmocka_unit_test(test_negative_int_round_trips_at_every_format_boundary),
		cmocka_unit_test(test_uint_rejects_negative_values),
		cmocka_unit_test(test_int_rejects_uint64_above_int64_max),
		cmocka_unit_test(test_uint_max_enforces_the_limit_and_names_value_and_max),
		cmocka_unit_test(test_strings_round_trip_at_every_length_boundary),
		cmocka_unit_test(test_multibyte_utf8_string_round_trips),
		cmocka_unit_test(test_bins_round_trip_at_every_length_boundary),
		cmocka_unit_test(test_empty_bin_is_bin8_with_length_zero),
		cmocka_unit_test(test_nested_arrays_round_trip),
		cmocka_unit_test(test_array_count_above_cap_is_rejected),
		cmocka_unit_test(test_array_count_above_remaining_bytes_is_rejected),
		cmocka_unit_test(test_array32_claiming_4294967295_elements_in_5_bytes_is_rejected),
		cmocka_unit_test(test_array_exact_and_bin_exact_require_exact_sizes),
		cmocka_unit_test(test_non_canonical_encodings_are_rejected),
		cmocka_unit_test(test_smallest_encodings_at_each_boundary_are_accepted),
		cmocka_unit_test(test_every_truncation_fails_cleanly_within_bounds),
		cmocka_unit_test(test_truncated_headers_name_the_bytes_needed),
		cmocka_unit_test(test_skip_rejects_ten_thousand_levels_of_nesting),
		cmocka_unit_test(test_skip_accepts_nesting_up_to_max_depth),
		cmocka_unit_test(test_skip_counts_pending_elements_of_enclosing_arrays),
		cmocka_unit_test(test_skip_validates_nested_contents),
		cmocka_unit_test(test_skip_consumes_exactly_one_value),
		cmocka_unit_test(test_invalid_utf8_is_rejected),
		cmocka_unit_test(test_valid_utf8_at_range_boundaries_is_accepted),
		cmocka_unit_test(test_string_with_nul_byte_is_rejected),
		cmocka_unit_test(test_maps_floats_and_ext_are_rejected_naming_the_type),
		cmocka_unit_test(test_error_state_is_sticky),
		cmocka_unit_test(test_fail_sets_the_callers_message_truncated_to_fit),
		cmocka_unit_test(test_type_mismatch_names_expected_and_found),
		cmocka_unit_test(test_bool_reads_true_and_false),
		cmocka_unit_test(test_peek_reports_the_next_type_without_consuming),
		cmocka_unit_test(test_done_requires_every_byte_consumed_without_error),
		cmocka_unit_test(test_empty_and_null_input),
		cmocka_unit_test(test_every_input_up_to_3_bytes_agrees_with_msgpack_c),
		cmocka_unit_test(test_random_mutations_never_overread_and_accepted_values_are_canonical),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
