/*
 * mpread.c - a bounded, canonical msgpack reader for untrusted bytes.
 *
 * See mpread.h for the contract. The implementation rests on a few rules:
 *
 *  - start <= pos <= end holds at every return. Nothing is read at or past
 *    end: before any byte is looked at, the number of bytes that remain
 *    (end - pos, a size_t) is compared with the number needed, and lengths
 *    from headers are only ever compared with what remains, never added to a
 *    pointer before that comparison succeeded.
 *  - The header of an item is decoded by item_head() without consuming it.
 *    item_head() checks everything that can be checked from the header
 *    alone (known and permitted type, header present, smallest format, value
 *    or payload fits in what remains). The public functions then check the
 *    type and caller limits, and only when everything passed is pos moved.
 *    So on failure pos is still at the start of the bad item.
 *  - Nothing is allocated. mpr_skip_value() walks nested arrays with a
 *    fixed stack of MPR_MAX_DEPTH counters, no recursion.
 *  - The error state is sticky: every entry point returns -1 at once when
 *    r->failed is set, and nothing overwrites r->err after the first error.
 */
#include "core/mpread.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Decoded header of the item at r->pos. */
typedef struct {
	mpr_type type;   /* MPR_END when no bytes remain */
	size_t hdr;      /* bytes of the header (tag plus length/value bytes) */
	uint64_t u;      /* value of an MPR_UINT */
	int64_t i;       /* value of an MPR_NEGINT */
	uint32_t len;    /* payload bytes of str/bin, element count of array */
} mpr_item;

#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static int failf(mpr *r, const char *fmt, ...)
{
	va_list ap;

	if (r->failed)
		return -1;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
	r->failed = true;
	return -1;
}

static size_t remaining(const mpr *r)
{
	return (size_t)(r->end - r->pos);
}

/* Big-endian unsigned integer of n (1, 2, 4 or 8) bytes at p. */
static uint64_t load_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	size_t k;

	for (k = 0; k < n; k++)
		v = (v << 8) | p[k];
	return v;
}

/* Two's complement reinterpretation of an n-byte big-endian integer,
 * without relying on implementation-defined conversions. */
static int64_t sign_extend(uint64_t v, size_t n)
{
	uint64_t sign = (uint64_t)1 << (n * 8 - 1);

	if (!(v & sign))
		return (int64_t)v;
	/* Negative: v - 2^(8n). Computed as -(2^(8n) - v - 1) - 1 so that no
	 * intermediate leaves the int64_t range (INT64_MIN included). */
	if (n < 8)
		v |= ~((sign << 1) - 1); /* fill the upper bits with ones */
	return -(int64_t)(~v) - 1;
}

static mpr_type classify(uint8_t b)
{
	if (b <= 0x7f)
		return MPR_UINT;
	if (b <= 0x8f)
		return MPR_MAP;
	if (b <= 0x9f)
		return MPR_ARRAY;
	if (b <= 0xbf)
		return MPR_STR;
	if (b >= 0xe0)
		return MPR_NEGINT;
	switch (b) {
	case 0xc0: return MPR_NIL;
	case 0xc1: return MPR_INVALID;
	case 0xc2: case 0xc3: return MPR_BOOL;
	case 0xc4: case 0xc5: case 0xc6: return MPR_BIN;
	case 0xc7: case 0xc8: case 0xc9: return MPR_EXT;
	case 0xca: case 0xcb: return MPR_FLOAT;
	case 0xcc: case 0xcd: case 0xce: case 0xcf: return MPR_UINT;
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: return MPR_NEGINT;
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return MPR_EXT;
	case 0xd9: case 0xda: case 0xdb: return MPR_STR;
	case 0xdc: case 0xdd: return MPR_ARRAY;
	default: return MPR_MAP; /* 0xde, 0xdf */
	}
}

/* Name of a type for "expected X, found Y" messages. */
static const char *type_name(mpr_type t)
{
	switch (t) {
	case MPR_END: return "end of input";
	case MPR_NIL: return "nil";
	case MPR_BOOL: return "bool";
	case MPR_UINT: return "uint";
	case MPR_NEGINT: return "negative int";
	case MPR_STR: return "string";
	case MPR_BIN: return "bin";
	case MPR_ARRAY: return "array";
	case MPR_MAP: return "map";
	case MPR_FLOAT: return "float";
	case MPR_EXT: return "ext";
	case MPR_INVALID: return "invalid byte 0xc1";
	}
	return "unknown";
}

/* Name of the wire format of tag b, for non-canonical messages. */
static const char *format_name(uint8_t b)
{
	static const char *const names[] = {
		"uint8", "uint16", "uint32", "uint64",  /* 0xcc.. */
		"int8", "int16", "int32", "int64",      /* 0xd0.. */
	};

	if (b >= 0xcc && b <= 0xd3)
		return names[b - 0xcc];
	switch (b) {
	case 0xc4: return "bin8";
	case 0xc5: return "bin16";
	case 0xc6: return "bin32";
	case 0xd9: return "str8";
	case 0xda: return "str16";
	case 0xdb: return "str32";
	case 0xdc: return "array16";
	case 0xdd: return "array32";
	}
	return "?";
}

/*
 * Decode the header at r->pos into *it without consuming anything.
 * Fails (pos unchanged) on: forbidden or invalid type, truncated header,
 * non-canonical format, str/bin payload or array count larger than what
 * remains after the header. Returns 0 with it->type == MPR_END when no bytes
 * remain; the caller decides whether that is an error.
 */
static int item_head(mpr *r, mpr_item *it)
{
	size_t off = mpr_offset(r), rem = remaining(r), after, nb = 0;
	uint8_t b;
	uint64_t v;

	memset(it, 0, sizeof(*it));
	if (r->failed)
		return -1;
	if (rem == 0) {
		it->type = MPR_END;
		return 0;
	}
	b = r->pos[0];
	it->type = classify(b);
	it->hdr = 1;

	switch (it->type) {
	case MPR_MAP:
		return failf(r, "map at offset %zu: maps are not allowed in Samen formats", off);
	case MPR_FLOAT:
		return failf(r, "float at offset %zu: floats are not allowed in Samen formats", off);
	case MPR_EXT:
		return failf(r, "ext at offset %zu: ext types are not allowed in Samen formats", off);
	case MPR_INVALID:
		return failf(r, "invalid byte 0xc1 at offset %zu (never used in msgpack)", off);
	case MPR_NIL:
	case MPR_BOOL:
		return 0;
	default:
		break;
	}

	/* Fixed forms carry their value in the tag byte. */
	if (b <= 0x7f) {
		it->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		it->i = (int64_t)b - 256;
		return 0;
	}
	if (b >= 0x90 && b <= 0x9f) {
		v = b & 0x0f;
		goto check_room;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		v = b & 0x1f;
		goto check_room;
	}

	/* Tag plus nb bytes of big-endian length or value. */
	switch (b) {
	case 0xc4: case 0xcc: case 0xd0: case 0xd9: nb = 1; break;
	case 0xc5: case 0xcd: case 0xd1: case 0xda: case 0xdc: nb = 2; break;
	case 0xc6: case 0xce: case 0xd2: case 0xdb: case 0xdd: nb = 4; break;
	case 0xcf: case 0xd3: nb = 8; break;
	default: /* every other tag was handled above */
		return failf(r, "internal error: unhandled msgpack tag 0x%02x at offset %zu", b, off);
	}
	if (rem - 1 < nb)
		return failf(r, "truncated %s header at offset %zu: needs %zu bytes but only %zu remain",
		             type_name(it->type), off, nb + 1, rem);
	it->hdr = 1 + nb;
	v = load_be(r->pos + 1, nb);

	/* Smallest format only. uint8..uint64 must not fit the next smaller
	 * unsigned form; int8..int64 must hold a negative value that does not
	 * fit the next smaller negative form. */
	switch (b) {
	case 0xcc: case 0xcd: case 0xce: case 0xcf: {
		static const uint64_t below[] = { 0x80, 0x100, 0x10000, UINT64_C(0x100000000) };
		uint64_t min = below[b == 0xcc ? 0 : b == 0xcd ? 1 : b == 0xce ? 2 : 3];
		if (v < min)
			return failf(r, "non-canonical uint: %" PRIu64 " encoded as %s at offset %zu",
			             v, format_name(b), off);
		it->u = v;
		return 0;
	}
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
		static const int64_t above[] = { -32, -128, -32768, -2147483647 - 1 };
		int64_t s = sign_extend(v, nb);
		int64_t max = above[b == 0xd0 ? 0 : b == 0xd1 ? 1 : b == 0xd2 ? 2 : 3];
		if (s >= 0)
			return failf(r, "non-canonical int: non-negative %" PRId64 " encoded as %s at offset %zu "
			             "(must use a uint format)", s, format_name(b), off);
		if (s >= max)
			return failf(r, "non-canonical int: %" PRId64 " encoded as %s at offset %zu",
			             s, format_name(b), off);
		it->i = s;
		return 0;
	}
	case 0xd9: case 0xdb: case 0xda:
		if ((b == 0xd9 && v < 32) || (b == 0xda && v < 0x100) || (b == 0xdb && v < 0x10000))
			return failf(r, "non-canonical string header: length %" PRIu64 " encoded as %s at offset %zu",
			             v, format_name(b), off);
		break;
	case 0xc5: case 0xc6:
		if ((b == 0xc5 && v < 0x100) || (b == 0xc6 && v < 0x10000))
			return failf(r, "non-canonical bin header: length %" PRIu64 " encoded as %s at offset %zu",
			             v, format_name(b), off);
		break;
	case 0xdc: case 0xdd:
		if ((b == 0xdc && v < 16) || (b == 0xdd && v < 0x10000))
			return failf(r, "non-canonical array header: %" PRIu64 " elements encoded as %s at offset %zu",
			             v, format_name(b), off);
		break;
	default: /* bin8: every length is canonical */
		break;
	}

check_room:
	/* str/bin/array: v <= UINT32_MAX since length fields are at most 4
	 * bytes. The payload (or one byte per element) must fit in what
	 * remains after the header. */
	after = rem - it->hdr;
	it->len = (uint32_t)v;
	if (v > after) {
		if (it->type == MPR_ARRAY)
			return failf(r, "array header at offset %zu claims %" PRIu64 " elements but only %zu bytes remain",
			             off, v, after);
		return failf(r, "%s at offset %zu claims %" PRIu64 " bytes but only %zu remain",
		             type_name(it->type), off, v, after);
	}
	return 0;
}

/* Read the header and require type want. */
static int expect(mpr *r, mpr_item *it, mpr_type want)
{
	if (item_head(r, it) < 0)
		return -1;
	if (it->type != want)
		return failf(r, "expected %s at offset %zu, found %s",
		             type_name(want), mpr_offset(r), type_name(it->type));
	return 0;
}

/* Why a UTF-8 check failed: 0 valid, 1 invalid UTF-8, 2 NUL byte. *bad is
 * the index of the first offending byte. Ranges follow Unicode's table of
 * well-formed byte sequences (Table 3-7): second-byte limits exclude
 * overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4);
 * C0, C1 and F5..FF never occur. */
static int utf8_check(const uint8_t *s, size_t len, size_t *bad)
{
	size_t k = 0;

	while (k < len) {
		uint8_t c;
		size_t need, j;
		uint64_t w;

		/* plain ASCII without NUL, eight bytes at a time */
		if (len - k >= 8) {
			memcpy(&w, s + k, 8);
			if (!((w | ((w - 0x0101010101010101ull) & ~w)) & 0x8080808080808080ull)) {
				k += 8;
				continue;
			}
		}
		c = s[k];
		uint8_t lo = 0x80, hi = 0xbf;

		*bad = k;
		if (c == 0)
			return 2;
		if (c < 0x80) {
			k++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			if (c == 0xe0)
				lo = 0xa0;
			else if (c == 0xed)
				hi = 0x9f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			if (c == 0xf0)
				lo = 0x90;
			else if (c == 0xf4)
				hi = 0x8f;
		} else {
			return 1; /* continuation byte, C0, C1 or F5..FF */
		}
		if (len - k - 1 < need)
			return 1; /* truncated sequence */
		if (s[k + 1] < lo || s[k + 1] > hi)
			return 1;
		for (j = 2; j <= need; j++)
			if (s[k + j] < 0x80 || s[k + j] > 0xbf)
				return 1;
		k += need + 1;
	}
	return 0;
}

bool mpr_utf8_valid(const char *s, size_t len)
{
	size_t bad;

	if (len == 0)
		return true;
	if (!s)
		return false;
	return utf8_check((const uint8_t *)s, len, &bad) == 0;
}

/* UTF-8 and NUL check of the string whose header it is at r->pos. */
static int check_str(mpr *r, const mpr_item *it)
{
	size_t bad;
	int why = utf8_check(r->pos + it->hdr, it->len, &bad);

	if (why == 1)
		return failf(r, "string at offset %zu is not valid UTF-8 (byte %zu of its content)",
		             mpr_offset(r), bad);
	if (why == 2)
		return failf(r, "string at offset %zu contains a NUL byte (byte %zu of its content)",
		             mpr_offset(r), bad);
	return 0;
}

void mpr_init(mpr *r, const void *buf, size_t len)
{
	/* A non-NULL base for empty input, so that no arithmetic is ever done
	 * on a null pointer. */
	static const uint8_t empty[1];

	memset(r, 0, sizeof(*r));
	if (!buf) {
		r->start = r->pos = r->end = empty;
		if (len)
			failf(r, "msgpack reader given a NULL buffer of %zu bytes", len);
		return;
	}
	r->start = r->pos = buf;
	r->end = r->start + len;
}

mpr_type mpr_peek(const mpr *r)
{
	/* A failed reader has no meaningful next item; MPR_INVALID makes any
	 * caller that dispatches on the type take its error path. */
	if (r->failed)
		return MPR_INVALID;
	if (r->pos == r->end)
		return MPR_END;
	return classify(r->pos[0]);
}

size_t mpr_offset(const mpr *r)
{
	return (size_t)(r->pos - r->start);
}

int mpr_array(mpr *r, uint32_t *n, uint32_t cap)
{
	mpr_item it;

	if (n)
		*n = 0;
	if (expect(r, &it, MPR_ARRAY) < 0)
		return -1;
	if (it.len > cap)
		return failf(r, "array header at offset %zu claims %" PRIu32 " elements, more than the limit of %" PRIu32,
		             mpr_offset(r), it.len, cap);
	r->pos += it.hdr;
	if (n)
		*n = it.len;
	return 0;
}

int mpr_array_exact(mpr *r, uint32_t n)
{
	mpr_item it;

	if (expect(r, &it, MPR_ARRAY) < 0)
		return -1;
	if (it.len != n)
		return failf(r, "array at offset %zu has %" PRIu32 " elements, expected exactly %" PRIu32,
		             mpr_offset(r), it.len, n);
	r->pos += it.hdr;
	return 0;
}

int mpr_nil(mpr *r)
{
	mpr_item it;

	if (expect(r, &it, MPR_NIL) < 0)
		return -1;
	r->pos += it.hdr;
	return 0;
}

int mpr_bool(mpr *r, bool *v)
{
	mpr_item it;

	if (v)
		*v = false;
	if (expect(r, &it, MPR_BOOL) < 0)
		return -1;
	if (v)
		*v = r->pos[0] == 0xc3;
	r->pos += it.hdr;
	return 0;
}

int mpr_uint(mpr *r, uint64_t *v)
{
	mpr_item it;

	if (v)
		*v = 0;
	if (item_head(r, &it) < 0)
		return -1;
	if (it.type == MPR_NEGINT)
		return failf(r, "expected uint at offset %zu, found negative int %" PRId64,
		             mpr_offset(r), it.i);
	if (it.type != MPR_UINT)
		return failf(r, "expected uint at offset %zu, found %s", mpr_offset(r), type_name(it.type));
	r->pos += it.hdr;
	if (v)
		*v = it.u;
	return 0;
}

int mpr_uint_max(mpr *r, uint64_t *v, uint64_t max)
{
	mpr_item it;

	if (v)
		*v = 0;
	if (item_head(r, &it) < 0)
		return -1;
	if (it.type == MPR_UINT && it.u > max)
		return failf(r, "uint %" PRIu64 " at offset %zu is larger than the maximum %" PRIu64,
		             it.u, mpr_offset(r), max);
	/* Type errors are reported by mpr_uint with its wording. */
	return mpr_uint(r, v);
}

int mpr_int(mpr *r, int64_t *v)
{
	mpr_item it;

	if (v)
		*v = 0;
	if (item_head(r, &it) < 0)
		return -1;
	if (it.type == MPR_UINT) {
		if (it.u > (uint64_t)INT64_MAX)
			return failf(r, "uint %" PRIu64 " at offset %zu does not fit a signed 64-bit integer",
			             it.u, mpr_offset(r));
		if (v)
			*v = (int64_t)it.u;
	} else if (it.type == MPR_NEGINT) {
		if (v)
			*v = it.i;
	} else {
		return failf(r, "expected int at offset %zu, found %s", mpr_offset(r), type_name(it.type));
	}
	r->pos += it.hdr;
	return 0;
}

int mpr_str(mpr *r, const char **s, uint32_t *len, uint32_t cap)
{
	mpr_item it;

	if (s)
		*s = NULL;
	if (len)
		*len = 0;
	if (expect(r, &it, MPR_STR) < 0)
		return -1;
	if (it.len > cap)
		return failf(r, "string at offset %zu is %" PRIu32 " bytes long, more than the limit of %" PRIu32,
		             mpr_offset(r), it.len, cap);
	if (check_str(r, &it) < 0)
		return -1;
	if (s)
		*s = (const char *)(r->pos + it.hdr);
	if (len)
		*len = it.len;
	r->pos += it.hdr + it.len;
	return 0;
}

int mpr_bin(mpr *r, const uint8_t **b, uint32_t *len, uint32_t cap)
{
	mpr_item it;

	if (b)
		*b = NULL;
	if (len)
		*len = 0;
	if (expect(r, &it, MPR_BIN) < 0)
		return -1;
	if (it.len > cap)
		return failf(r, "bin at offset %zu is %" PRIu32 " bytes long, more than the limit of %" PRIu32,
		             mpr_offset(r), it.len, cap);
	if (b)
		*b = r->pos + it.hdr;
	if (len)
		*len = it.len;
	r->pos += it.hdr + it.len;
	return 0;
}

int mpr_bin_exact(mpr *r, const uint8_t **b, uint32_t len)
{
	mpr_item it;

	if (b)
		*b = NULL;
	if (expect(r, &it, MPR_BIN) < 0)
		return -1;
	if (it.len != len)
		return failf(r, "bin at offset %zu is %" PRIu32 " bytes long, expected exactly %" PRIu32,
		             mpr_offset(r), it.len, len);
	if (b)
		*b = r->pos + it.hdr;
	r->pos += it.hdr + it.len;
	return 0;
}

/*
 * Iterative walk. pending[k] is the number of elements of the array open at
 * level k that have not been started yet; announced is their sum over all
 * open levels. Each of those elements needs at least one byte, so an array
 * header is rejected unless its count plus announced fits in the bytes after
 * the header. Every iteration consumes at least one byte, so the loop runs
 * at most len times; depth never exceeds max_depth <= MPR_MAX_DEPTH.
 *
 * On failure pos is left at the innermost bad item (the one the message
 * names), not at the start of the outer value.
 */
int mpr_skip_value(mpr *r, int max_depth)
{
	uint32_t pending[MPR_MAX_DEPTH];
	uint64_t announced = 0;
	int depth = 0;

	if (r->failed)
		return -1;
	if (max_depth < 0)
		max_depth = 0;
	if (max_depth > MPR_MAX_DEPTH)
		max_depth = MPR_MAX_DEPTH;

	for (;;) {
		mpr_item it;

		if (depth > 0) {
			/* starting one announced element of the innermost array */
			pending[depth - 1]--;
			announced--;
		}
		if (item_head(r, &it) < 0)
			return -1;

		switch (it.type) {
		case MPR_END:
			return failf(r, "expected a value at offset %zu, found end of input", mpr_offset(r));
		case MPR_STR:
			if (check_str(r, &it) < 0)
				return -1;
			r->pos += it.hdr + it.len;
			break;
		case MPR_BIN:
			r->pos += it.hdr + it.len;
			break;
		case MPR_ARRAY: {
			size_t after = remaining(r) - it.hdr;

			if (depth >= max_depth)
				return failf(r, "array at offset %zu: nesting deeper than %d", mpr_offset(r), max_depth);
			/* item_head checked it.len <= after. */
			if (announced > after || it.len > after - announced)
				return failf(r, "array header at offset %zu claims %" PRIu32 " elements but only %zu "
				             "bytes remain for them and %" PRIu64 " more elements of enclosing arrays",
				             mpr_offset(r), it.len, after, announced);
			r->pos += it.hdr;
			if (it.len > 0) {
				pending[depth++] = it.len;
				announced += it.len;
				continue;
			}
			break;
		}
		default: /* nil, bool, uint, negint: the header is the whole item */
			r->pos += it.hdr;
			break;
		}

		/* One item is complete: close every array it completed. */
		while (depth > 0 && pending[depth - 1] == 0)
			depth--;
		if (depth == 0)
			return 0;
	}
}

int mpr_fail(mpr *r, const char *msg)
{
	return failf(r, "%s", msg ? msg : "unspecified decoding error");
}

bool mpr_done(const mpr *r)
{
	return !r->failed && r->pos == r->end;
}
