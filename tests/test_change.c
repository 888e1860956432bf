/*
 * test_change.c - the change codec and signatures (core/change.c), and the
 * guarantee built on them: a change that is malformed, non-canonical, badly
 * signed or meant for another plan never reaches a plan's history.
 *
 * Hostile inputs are handed to the decoder in heap buffers of exactly their
 * length, so that under -fsanitize=address any read past the end is caught.
 */
#include "testutil.h"

#include "core/change.h"
#include "core/replica.h"
#include "core/schema.h"
#include "samen/samen.h"
#include "sync/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- helpers ---------------------------------------------------------- */

static uint8_t *dup_exact(const void *buf, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);
	assert_non_null(p);
	if (len)
		memcpy(p, buf, len);
	return p;
}

/* A copy of buf with cut bytes at off replaced by ins (inslen bytes). */
static uint8_t *splice(const uint8_t *buf, size_t len, size_t off, size_t cut, const void *ins, size_t inslen,
                       size_t *outlen)
{
	uint8_t *p;
	assert_true(off + cut <= len);
	*outlen = len - cut + inslen;
	p = malloc(*outlen ? *outlen : 1);
	assert_non_null(p);
	memcpy(p, buf, off);
	if (inslen)
		memcpy(p + off, ins, inslen);
	memcpy(p + off + inslen, buf + off + cut, len - off - cut);
	return p;
}

#define expect_decode_fail(buf, len, needle) expect_decode_fail_((buf), (len), (needle), __FILE__, __LINE__)
/* change_decode must reject buf with SAMEN_EDECODE, a message containing
 * needle (any message when needle is NULL), and nothing allocated. */
static void expect_decode_fail_(const uint8_t *buf, size_t len, const char *needle, const char *file, int line)
{
	uint8_t *copy = dup_exact(buf, len);
	samen_change c;
	int rc;

	samen_error_clear();
	rc = change_decode(&c, copy, len);
	if (rc != SAMEN_EDECODE)
		fail_msg("%s:%d: change_decode returned %d, expected SAMEN_EDECODE (%s)", file, line, rc,
		         rc == 0 ? "accepted" : samen_error_last());
	if (!samen_error_last()[0])
		fail_msg("%s:%d: rejected without a message", file, line);
	if (needle && !strstr(samen_error_last(), needle))
		fail_msg("%s:%d: message \"%s\" does not contain \"%s\"", file, line, samen_error_last(), needle);
	if (c.ops != NULL || c.nops != 0)
		fail_msg("%s:%d: a rejected change left ops allocated", file, line);
	free(copy);
}

static void fill(uint8_t *k, size_t n, uint8_t first, uint8_t rest)
{
	k[0] = first;
	memset(k + 1, rest, n - 1);
}

/* The world of the sample changes: one real author, three foreign devices
 * whose keys sort lo < mid < hi (only their bytes matter to the codec). */
typedef struct {
	uint8_t pk[32], sk[64];
	uint8_t plan[16];
	uint8_t lo[32], mid[32], hi[32];
	uint8_t prev[32], dep_a[32], dep_b[32]; /* dep_a < dep_b */
} world;

static void world_init(world *w)
{
	uint8_t seed[32];
	fill(seed, 32, 0x42, 0x17);
	crypto_sign_seed_keypair(w->pk, w->sk, seed);
	fill(w->plan, 16, 0x9a, 0x01);
	fill(w->lo, 32, 0x10, 0x11);
	fill(w->mid, 32, 0x80, 0x22);
	fill(w->hi, 32, 0xc0, 0x33);
	fill(w->prev, 32, 0x50, 0x44);
	fill(w->dep_a, 32, 0x20, 0x55);
	fill(w->dep_b, 32, 0xe0, 0x66);
	/* the author must not collide with a foreign key */
	assert_memory_not_equal(w->pk, w->lo, 32);
	assert_memory_not_equal(w->pk, w->mid, 32);
	assert_memory_not_equal(w->pk, w->hi, 32);
}

static const char TITLE[] = "Zelfstandig wonen in Zwolle \xe2\x80\x94 met begeleiding";

/* Add the sample ops; order says in which order the foreign devices are
 * first seen (0: hi, lo, mid; 1: lo, mid, hi), which must not matter. */
static void add_sample_ops(change_builder *b, const world *w, int order)
{
	uint32_t dhi, dlo, dmid;
	uint8_t *v;
	size_t vlen;

	if (order == 0) {
		dhi = change_builder_dev(b, w->hi);
		dlo = change_builder_dev(b, w->lo);
		dmid = change_builder_dev(b, w->mid);
	} else {
		dlo = change_builder_dev(b, w->lo);
		dmid = change_builder_dev(b, w->mid);
		dhi = change_builder_dev(b, w->hi);
	}
	assert_int_equal(change_builder_dev(b, w->lo), dlo); /* asking twice gives the same index */
	assert_int_equal(change_builder_create(b, SAMEN_TYPE_GOAL), 0);
	assert_int_equal(value_encode_str(&v, &vlen, TITLE, strlen(TITLE)), 0);
	assert_int_equal(change_builder_set(b, 1, 0, 12, 1, v, vlen), 0);
	free(v);
	assert_int_equal(value_encode_uint(&v, &vlen, 3), 0);
	assert_int_equal(change_builder_set(b, 1, dhi, 7, 5, v, vlen), 0);
	free(v);
	assert_int_equal(value_encode_uint(&v, &vlen, UINT64_MAX), 0);
	assert_int_equal(change_builder_set(b, 1, dlo, (uint64_t)1 << 40, 6, v, vlen), 0);
	free(v);
	assert_int_equal(value_encode_nil(&v, &vlen), 0);
	assert_int_equal(change_builder_set(b, 1, dlo, 2, 8, v, vlen), 0);
	free(v);
	assert_int_equal(change_builder_set_ref(b, 1, dmid, 4, 3, dlo, 9), 0);
	assert_int_equal(change_builder_delete(b, 1, dmid, 11), 0);
	assert_int_equal(change_builder_member_add(b, w->hi, "Bram de Vries", 3), 0);
	assert_int_equal(change_builder_nops(b), 8);
}

/* seq 3 of the author, deps given unsorted, with duplicates and prev. */
static void build_sample(const world *w, int order, uint8_t **out, size_t *len)
{
	change_builder *b;
	uint8_t deps[5 * 32];
	change_header h;

	if (order == 0) {
		memcpy(deps + 0, w->dep_b, 32);
		memcpy(deps + 32, w->prev, 32);
		memcpy(deps + 64, w->dep_a, 32);
		memcpy(deps + 96, w->dep_b, 32);
		memcpy(deps + 128, w->dep_a, 32);
	} else {
		memcpy(deps + 0, w->dep_a, 32);
		memcpy(deps + 32, w->dep_b, 32);
		memcpy(deps + 64, w->dep_a, 32);
		memcpy(deps + 96, w->prev, 32);
		memcpy(deps + 128, w->prev, 32);
	}
	memset(&h, 0, sizeof(h));
	h.plan = w->plan;
	h.author = w->pk;
	h.name = "Anna Jansen";
	h.seq = 3;
	h.prev = w->prev;
	h.deps = deps;
	h.ndeps = 5;
	h.lamport = 17;
	h.time = 1700000000;
	assert_int_equal(change_builder_new(&b), 0);
	add_sample_ops(b, w, order);
	assert_int_equal(change_builder_finish(b, &h, out, len), 0);
	change_builder_free(b);
}

/* A genesis-like change (seq 1, no prev, no deps, a plan op). */
static void build_genesis(const world *w, int64_t when, uint8_t **out, size_t *len)
{
	change_builder *b;
	change_header h;
	uint8_t nonce[16];

	fill(nonce, 16, 0x01, 0x02);
	memset(&h, 0, sizeof(h));
	h.plan = w->plan;
	h.author = w->pk;
	h.name = "Anna";
	h.seq = 1;
	h.lamport = 1;
	h.time = when;
	assert_int_equal(change_builder_new(&b), 0);
	assert_int_equal(change_builder_plan(b, nonce, "Cli\xc3\xabnt \xc3\x84", "nl"), 0);
	assert_int_equal(change_builder_create(b, SAMEN_TYPE_GOAL), 0);
	assert_int_equal(change_builder_finish(b, &h, out, len), 0);
	change_builder_free(b);
}

/* Encode a decoded change again through the builder. */
static void reencode(const samen_change *c, uint8_t **out, size_t *len)
{
	change_builder *b;
	change_header h;
	char name[SAMEN_MAX_NAME + 1];
	uint8_t *deps = malloc(32 * (size_t)c->ndeps + 1);

	assert_non_null(deps);
	assert_int_equal(change_builder_new(&b), 0);
	for (uint32_t i = 0; i < c->ndevs; i++) /* in sorted order: provisional == final */
		assert_int_equal(change_builder_dev(b, change_dev(c, i)), i + 1);
	for (uint32_t i = 0; i < c->nops; i++) {
		const samen_op *op = &c->ops[i];
		char s1[SAMEN_MAX_NAME + 1], s2[SAMEN_MAX_NAME + 1];
		switch (op->kind) {
		case SAMEN_OP_CREATE:
			assert_int_equal(change_builder_create(b, op->type), 0);
			break;
		case SAMEN_OP_SET:
			assert_int_equal(change_builder_set(b, op->type, op->dev, op->n, op->field, op->value, op->value_len), 0);
			break;
		case SAMEN_OP_DELETE:
			assert_int_equal(change_builder_delete(b, op->type, op->dev, op->n), 0);
			break;
		case SAMEN_OP_PLAN:
			memcpy(s1, op->str, op->str_len);
			s1[op->str_len] = '\0';
			memcpy(s2, op->str2, op->str2_len);
			s2[op->str2_len] = '\0';
			assert_int_equal(change_builder_plan(b, op->key, s1, s2), 0);
			break;
		case SAMEN_OP_MEMBER_ADD:
			memcpy(s1, op->str, op->str_len);
			s1[op->str_len] = '\0';
			assert_int_equal(change_builder_member_add(b, op->key, s1, op->role), 0);
			break;
		default:
			fail_msg("unexpected op kind %u", op->kind);
		}
	}
	memcpy(name, c->name, c->name_len);
	name[c->name_len] = '\0';
	for (uint32_t i = 0; i < c->ndeps; i++)
		memcpy(deps + 32 * i, change_dep(c, i), 32);
	memset(&h, 0, sizeof(h));
	h.plan = c->plan;
	h.author = c->author;
	h.name = name;
	h.seq = c->seq;
	h.prev = c->has_prev ? c->prev : NULL;
	h.deps = deps;
	h.ndeps = c->ndeps;
	h.lamport = c->lamport;
	h.time = c->time;
	assert_int_equal(change_builder_finish(b, &h, out, len), 0);
	change_builder_free(b);
	free(deps);
}

static size_t off_of(const uint8_t *buf, const void *p)
{
	return (size_t)((const uint8_t *)p - buf);
}

/* ---- round trip and determinism ----------------------------------------- */

static void test_round_trip_gives_back_every_field(void **state)
{
	world w;
	uint8_t *buf, *v;
	size_t len, vlen;
	samen_change c;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_decode(&c, buf, len), 0);

	assert_memory_equal(c.plan, w.plan, 16);
	assert_memory_equal(c.author, w.pk, 32);
	assert_int_equal(c.name_len, strlen("Anna Jansen"));
	assert_memory_equal(c.name, "Anna Jansen", c.name_len);
	assert_int_equal(c.seq, 3);
	assert_true(c.has_prev);
	assert_memory_equal(c.prev, w.prev, 32);
	/* deps: sorted, deduplicated, prev left out */
	assert_int_equal(c.ndeps, 2);
	assert_memory_equal(change_dep(&c, 0), w.dep_a, 32);
	assert_memory_equal(change_dep(&c, 1), w.dep_b, 32);
	assert_int_equal(c.lamport, 17);
	assert_int_equal(c.time, 1700000000);
	/* devs: sorted whatever order they were first seen in */
	assert_int_equal(c.ndevs, 3);
	assert_memory_equal(change_dev(&c, 0), w.lo, 32);
	assert_memory_equal(change_dev(&c, 1), w.mid, 32);
	assert_memory_equal(change_dev(&c, 2), w.hi, 32);

	assert_int_equal(c.nops, 8);
	assert_int_equal(c.ncreates, 1);
	assert_int_equal(c.ops[0].kind, SAMEN_OP_CREATE);
	assert_int_equal(c.ops[0].type, SAMEN_TYPE_GOAL);

	/* op references resolve to the right device after devs were sorted */
	assert_int_equal(c.ops[1].kind, SAMEN_OP_SET);
	assert_memory_equal(change_ref_key(&c, c.ops[1].dev), w.pk, 32);
	assert_int_equal(c.ops[1].n, 12);
	assert_int_equal(c.ops[1].field, 1);
	assert_int_equal(value_encode_str(&v, &vlen, TITLE, strlen(TITLE)), 0);
	assert_int_equal(c.ops[1].value_len, vlen);
	assert_memory_equal(c.ops[1].value, v, vlen);
	free(v);

	assert_int_equal(c.ops[2].kind, SAMEN_OP_SET);
	assert_memory_equal(change_ref_key(&c, c.ops[2].dev), w.hi, 32);
	assert_int_equal(c.ops[2].n, 7);
	assert_int_equal(c.ops[2].field, 5);
	assert_int_equal(c.ops[2].value_len, 1);
	assert_int_equal(c.ops[2].value[0], 3);

	assert_memory_equal(change_ref_key(&c, c.ops[3].dev), w.lo, 32);
	assert_int_equal(c.ops[3].n, (uint64_t)1 << 40);
	assert_int_equal(c.ops[3].field, 6);
	assert_int_equal(c.ops[3].value_len, 9); /* uint64 */
	assert_int_equal(c.ops[3].value[0], 0xcf);

	assert_memory_equal(change_ref_key(&c, c.ops[4].dev), w.lo, 32);
	assert_int_equal(c.ops[4].field, 8);
	assert_int_equal(c.ops[4].value_len, 1);
	assert_int_equal(c.ops[4].value[0], 0xc0); /* nil */

	/* a reference value is [dev, n] with dev mapped like the op's own */
	assert_int_equal(c.ops[5].kind, SAMEN_OP_SET);
	assert_memory_equal(change_ref_key(&c, c.ops[5].dev), w.mid, 32);
	assert_int_equal(c.ops[5].n, 4);
	assert_int_equal(c.ops[5].field, 3);
	assert_int_equal(c.ops[5].value_len, 3);
	assert_int_equal(c.ops[5].value[0], 0x92);
	assert_memory_equal(change_ref_key(&c, c.ops[5].value[1]), w.lo, 32);
	assert_int_equal(c.ops[5].value[2], 9);

	assert_int_equal(c.ops[6].kind, SAMEN_OP_DELETE);
	assert_memory_equal(change_ref_key(&c, c.ops[6].dev), w.mid, 32);
	assert_int_equal(c.ops[6].n, 11);

	assert_int_equal(c.ops[7].kind, SAMEN_OP_MEMBER_ADD);
	assert_memory_equal(c.ops[7].key, w.hi, 32);
	assert_int_equal(c.ops[7].str_len, strlen("Bram de Vries"));
	assert_memory_equal(c.ops[7].str, "Bram de Vries", c.ops[7].str_len);
	assert_int_equal(c.ops[7].role, 3);

	change_clear(&c);
	assert_null(c.ops);
	change_clear(&c); /* twice is harmless */
	free(buf);
}

static void test_genesis_round_trip_with_plan_op_and_no_prev(void **state)
{
	world w;
	uint8_t *buf, *again;
	size_t len, alen;
	samen_change c;
	(void)state;

	world_init(&w);
	build_genesis(&w, -86400, &buf, &len); /* wall time before 1970 is just a number */
	assert_int_equal(change_decode(&c, buf, len), 0);
	assert_int_equal(c.seq, 1);
	assert_false(c.has_prev);
	assert_int_equal(c.ndeps, 0);
	assert_int_equal(c.ndevs, 0);
	assert_int_equal(c.time, -86400);
	assert_int_equal(c.nops, 2);
	assert_int_equal(c.ops[0].kind, SAMEN_OP_PLAN);
	assert_int_equal(c.ops[0].key[0], 0x01);
	assert_int_equal(c.ops[0].str_len, strlen("Cli\xc3\xabnt \xc3\x84"));
	assert_memory_equal(c.ops[0].str, "Cli\xc3\xabnt \xc3\x84", c.ops[0].str_len);
	assert_int_equal(c.ops[0].str2_len, 2);
	assert_memory_equal(c.ops[0].str2, "nl", 2);
	assert_int_equal(c.ops[1].kind, SAMEN_OP_CREATE);
	reencode(&c, &again, &alen);
	assert_int_equal(alen, len);
	assert_memory_equal(again, buf, len);
	change_clear(&c);
	free(again);
	free(buf);
}

static void test_encoding_is_deterministic_and_reencoding_is_byte_identical(void **state)
{
	world w;
	uint8_t *a, *b, *c2, *again;
	size_t alen, blen, c2len, againlen;
	samen_change c;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &a, &alen);
	build_sample(&w, 0, &b, &blen);
	assert_int_equal(alen, blen);
	assert_memory_equal(a, b, alen);
	/* devices seen in another order, deps listed in another order */
	build_sample(&w, 1, &c2, &c2len);
	assert_int_equal(alen, c2len);
	assert_memory_equal(a, c2, alen);

	assert_int_equal(change_decode(&c, a, alen), 0);
	reencode(&c, &again, &againlen);
	assert_int_equal(againlen, alen);
	assert_memory_equal(again, a, alen);
	change_clear(&c);
	free(a);
	free(b);
	free(c2);
	free(again);
}

static void test_builder_refuses_empty_change_and_author_as_foreign_device(void **state)
{
	world w;
	change_builder *b;
	change_header h;
	uint8_t *out = (uint8_t *)&h;
	size_t len;
	(void)state;

	world_init(&w);
	memset(&h, 0, sizeof(h));
	h.plan = w.plan;
	h.author = w.pk;
	h.name = "Anna";
	h.seq = 1;
	h.lamport = 1;
	assert_int_equal(change_builder_new(&b), 0);
	assert_int_equal(change_builder_finish(b, &h, &out, &len), SAMEN_EINVAL);
	assert_null(out);
	assert_non_null(strstr(samen_error_last(), "at least one op"));
	/* referring to an entity of the author through devs would give it two
	 * encodings; the builder refuses */
	assert_int_equal(change_builder_delete(b, 1, change_builder_dev(b, w.pk), 0), 0);
	assert_true(change_builder_finish(b, &h, &out, &len) < 0);
	assert_null(out);
	change_builder_free(b);
}

/* ---- truncation and huge headers ---------------------------------------- */

static void test_every_truncation_is_rejected_with_a_message(void **state)
{
	world w;
	uint8_t *buf;
	size_t len;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	for (size_t n = 0; n < len; n++)
		expect_decode_fail(buf, n, "malformed change");
	free(buf);
	build_genesis(&w, 5, &buf, &len);
	for (size_t n = 0; n < len; n++)
		expect_decode_fail(buf, n, "malformed change");
	free(buf);
}

static void test_array_header_claiming_4g_elements_is_rejected_without_allocation(void **state)
{
	static const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	world w;
	uint8_t *buf, *bad;
	size_t len, blen, opsoff;
	samen_change c;
	clock_t t0 = clock();
	(void)state;

	/* the whole input */
	expect_decode_fail(huge, sizeof(huge), "4294967295");

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_decode(&c, buf, len), 0);
	opsoff = off_of(buf, c.devs) + 34 * (size_t)c.ndevs;
	assert_int_equal(buf[opsoff], 0x98); /* fixarray of 8 ops */

	/* the ops array */
	bad = splice(buf, len, opsoff, 1, huge, sizeof(huge), &blen);
	expect_decode_fail(bad, blen, "ops");
	free(bad);
	/* the deps array and the devs array */
	bad = splice(buf, len, off_of(buf, c.deps) - 1, 1, huge, sizeof(huge), &blen);
	expect_decode_fail(bad, blen, "deps");
	free(bad);
	bad = splice(buf, len, off_of(buf, c.devs) - 1, 1, huge, sizeof(huge), &blen);
	expect_decode_fail(bad, blen, "devs");
	free(bad);
	/* one op's own array */
	bad = splice(buf, len, opsoff + 1, 1, huge, sizeof(huge), &blen);
	expect_decode_fail(bad, blen, "op 0");
	free(bad);
	/* a value inside a set op */
	bad = splice(buf, len, off_of(buf, c.ops[2].value), c.ops[2].value_len, huge, sizeof(huge), &blen);
	expect_decode_fail(bad, blen, "op 2");
	free(bad);
	/* the same with the claimed elements "present" as far as 1 MiB goes */
	{
		size_t biglen = (1u << 20);
		uint8_t *big = calloc(1, biglen);
		assert_non_null(big);
		memcpy(big, huge, sizeof(huge));
		expect_decode_fail(big, biglen, "4294967295");
		free(big);
	}
	change_clear(&c);
	free(buf);
	/* quick, too: nothing was walked element by element */
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 5.0);
}

/* ---- non-canonical and invalid encodings -------------------------------- */

typedef struct {
	world w;
	uint8_t *buf;   /* the sample (seq 3) */
	size_t len;
	samen_change c;
	size_t seqoff;  /* offset of the seq byte */
	size_t timeoff; /* offset of time */
	uint8_t *gen;   /* the genesis (seq 1) */
	size_t genlen;
	samen_change g;
	size_t gseqoff;
} samples;

static int samples_setup(void **state)
{
	samples *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	world_init(&s->w);
	build_sample(&s->w, 0, &s->buf, &s->len);
	assert_int_equal(change_decode(&s->c, s->buf, s->len), 0);
	s->seqoff = off_of(s->buf, s->c.name) + s->c.name_len;
	assert_int_equal(s->buf[s->seqoff], 3);
	assert_int_equal(s->buf[s->seqoff + 1], 0xc4); /* prev: bin8 */
	s->timeoff = off_of(s->buf, s->c.deps) + 34 * (size_t)s->c.ndeps + 1; /* after the 1-byte lamport */
	assert_int_equal(s->buf[s->timeoff - 1], 17);
	assert_int_equal(s->buf[s->timeoff], 0xce);
	build_genesis(&s->w, 5, &s->gen, &s->genlen);
	assert_int_equal(change_decode(&s->g, s->gen, s->genlen), 0);
	s->gseqoff = off_of(s->gen, s->g.name) + s->g.name_len;
	assert_int_equal(s->gen[s->gseqoff], 1);
	assert_int_equal(s->gen[s->gseqoff + 1], 0xc0); /* prev: nil */
	*state = s;
	return 0;
}

static int samples_teardown(void **state)
{
	samples *s = *state;
	change_clear(&s->c);
	change_clear(&s->g);
	free(s->buf);
	free(s->gen);
	free(s);
	return 0;
}

/* Replace bytes in the sample and expect rejection. */
static void reject_patch(const uint8_t *buf, size_t len, size_t off, size_t cut, const void *ins, size_t inslen,
                         const char *needle)
{
	size_t blen;
	uint8_t *bad = splice(buf, len, off, cut, ins, inslen, &blen);
	expect_decode_fail(bad, blen, needle);
	free(bad);
}

static void test_integer_in_a_wider_form_than_needed_is_rejected(void **state)
{
	samples *s = *state;
	static const uint8_t seq16[] = {0xcd, 0x00, 0x03}, seq8[] = {0xcc, 0x03}, seq64[] = {0xcf, 0, 0, 0, 0, 0, 0, 0, 3};
	static const uint8_t seq5[] = {0x05};
	size_t blen;
	uint8_t *ok;
	samen_change c;

	/* control: the same patch in its smallest form decodes */
	ok = splice(s->buf, s->len, s->seqoff, 1, seq5, 1, &blen);
	assert_int_equal(change_decode(&c, ok, blen), 0);
	assert_int_equal(c.seq, 5);
	change_clear(&c);
	free(ok);

	reject_patch(s->buf, s->len, s->seqoff, 1, seq16, sizeof(seq16), "non-canonical uint");
	reject_patch(s->buf, s->len, s->seqoff, 1, seq8, sizeof(seq8), "non-canonical uint");
	reject_patch(s->buf, s->len, s->seqoff, 1, seq64, sizeof(seq64), "non-canonical uint");
	/* the version, too, and a string header in str8 form for a short name */
	{
		static const uint8_t v8[] = {0xcc, 0x01};
		uint8_t name8[2 + 32];
		size_t noff = off_of(s->buf, s->c.name) - 1;
		reject_patch(s->buf, s->len, 1, 1, v8, sizeof(v8), "non-canonical");
		name8[0] = 0xd9;
		name8[1] = (uint8_t)s->c.name_len;
		memcpy(name8 + 2, s->c.name, s->c.name_len);
		reject_patch(s->buf, s->len, noff, 1 + s->c.name_len, name8, 2 + s->c.name_len, "non-canonical string");
	}
	/* the wall time as int64 when uint32 suffices */
	{
		uint8_t t64[9] = {0xd3, 0, 0, 0, 0};
		memcpy(t64 + 5, s->buf + s->timeoff + 1, 4);
		reject_patch(s->buf, s->len, s->timeoff, 5, t64, sizeof(t64), "non-canonical int");
	}
}

static void test_unsorted_or_duplicate_deps_and_prev_in_deps_are_rejected(void **state)
{
	samples *s = *state;
	size_t d0 = off_of(s->buf, s->c.deps), d1 = d0 + 34;
	uint8_t *bad = dup_exact(s->buf, s->len);

	/* swapped */
	memcpy(bad + d0 + 2, s->w.dep_b, 32);
	memcpy(bad + d1 + 2, s->w.dep_a, 32);
	expect_decode_fail(bad, s->len, "deps are not sorted");
	/* duplicate */
	memcpy(bad + d0 + 2, s->w.dep_a, 32);
	memcpy(bad + d1 + 2, s->w.dep_a, 32);
	expect_decode_fail(bad, s->len, "deps are not sorted and unique");
	/* prev among the deps (dep_a < prev < dep_b keeps them sorted) */
	memcpy(bad + d0 + 2, s->w.prev, 32);
	memcpy(bad + d1 + 2, s->w.dep_b, 32);
	expect_decode_fail(bad, s->len, "prev is repeated in deps");
	free(bad);
}

static void test_author_in_devs_and_unsorted_devs_are_rejected(void **state)
{
	samples *s = *state;
	size_t v0 = off_of(s->buf, s->c.devs);
	uint8_t *bad = dup_exact(s->buf, s->len);

	memcpy(bad + v0 + 2, s->w.mid, 32);
	memcpy(bad + v0 + 34 + 2, s->w.lo, 32);
	expect_decode_fail(bad, s->len, "devs are not sorted");
	memcpy(bad + v0 + 2, s->w.lo, 32);
	memcpy(bad + v0 + 34 + 2, s->w.lo, 32);
	expect_decode_fail(bad, s->len, "devs are not sorted and unique");
	/* the author in place of the last device: out of order, or (when its
	 * key sorts last) the author in devs; never accepted */
	memcpy(bad, s->buf, s->len);
	memcpy(bad + v0 + 68 + 2, s->w.pk, 32);
	if (memcmp(s->w.pk, s->w.mid, 32) > 0)
		expect_decode_fail(bad, s->len, "author is listed in devs");
	else
		expect_decode_fail(bad, s->len, "devs are not sorted");
	free(bad);
	/* a single foreign device that is the author: only the author rule applies */
	{
		world *w = &s->w;
		change_builder *b;
		change_header h;
		uint8_t *buf, *one;
		size_t len;
		samen_change c;
		memset(&h, 0, sizeof(h));
		h.plan = w->plan;
		h.author = w->pk;
		h.name = "Anna";
		h.seq = 1;
		h.lamport = 1;
		assert_int_equal(change_builder_new(&b), 0);
		assert_int_equal(change_builder_delete(b, 1, change_builder_dev(b, w->lo), 0), 0);
		assert_int_equal(change_builder_finish(b, &h, &buf, &len), 0);
		change_builder_free(b);
		assert_int_equal(change_decode(&c, buf, len), 0);
		assert_int_equal(c.ndevs, 1);
		one = dup_exact(buf, len);
		memcpy(one + off_of(buf, c.devs) + 2, w->pk, 32);
		expect_decode_fail(one, len, "author is listed in devs");
		change_clear(&c);
		free(one);
		free(buf);
	}
}

static void test_maps_floats_and_trailing_bytes_are_rejected(void **state)
{
	samples *s = *state;
	static const uint8_t map0[] = {0x80}, map1[] = {0x81, 0x01, 0x02}, map16[] = {0xde, 0x00, 0x01, 0x01, 0x02};
	static const uint8_t f32[] = {0xca, 0x40, 0x40, 0x00, 0x00}; /* 3.0f */
	static const uint8_t f64[] = {0xcb, 0x40, 0x08, 0, 0, 0, 0, 0, 0};
	static const uint8_t zero = 0, nilb = 0xc0;
	size_t voff = off_of(s->buf, s->c.ops[2].value);
	size_t noff = off_of(s->buf, s->c.name) - 1;
	uint8_t *bad;
	size_t blen;

	/* a map at the top level, in place of the author name, as a value,
	 * and as an op */
	bad = dup_exact(s->buf, s->len);
	bad[0] = 0x8b; /* fixmap of 11 instead of fixarray of 11 */
	expect_decode_fail(bad, s->len, "maps are not allowed");
	free(bad);
	reject_patch(s->buf, s->len, noff, 1 + s->c.name_len, map0, sizeof(map0), "maps are not allowed");
	reject_patch(s->buf, s->len, voff, 1, map1, sizeof(map1), "maps are not allowed");
	reject_patch(s->buf, s->len, voff, 1, map16, sizeof(map16), "maps are not allowed");
	reject_patch(s->buf, s->len, voff - 5, 6, map0, sizeof(map0), "maps are not allowed");
	/* floats: as a value, as the wall time, as seq */
	reject_patch(s->buf, s->len, voff, 1, f32, sizeof(f32), "floats are not allowed");
	reject_patch(s->buf, s->len, voff, 1, f64, sizeof(f64), "floats are not allowed");
	reject_patch(s->buf, s->len, s->timeoff, 5, f64, sizeof(f64), "floats are not allowed");
	reject_patch(s->buf, s->len, s->seqoff, 1, f32, sizeof(f32), "floats are not allowed");
	/* trailing bytes: one, a nil, a whole second change */
	reject_patch(s->buf, s->len, s->len, 0, &zero, 1, "trailing bytes");
	reject_patch(s->buf, s->len, s->len, 0, &nilb, 1, "trailing bytes");
	bad = splice(s->buf, s->len, s->len, 0, s->gen, s->genlen, &blen);
	expect_decode_fail(bad, blen, "trailing bytes");
	free(bad);
}

static void test_seq_and_prev_must_agree(void **state)
{
	samples *s = *state;
	static const uint8_t zero = 0, one = 1, two = 2;

	/* seq 0 */
	reject_patch(s->gen, s->genlen, s->gseqoff, 1, &zero, 1, "seq must be an integer >= 1");
	reject_patch(s->buf, s->len, s->seqoff, 1, &zero, 1, "seq must be an integer >= 1");
	/* seq 1 with a prev */
	reject_patch(s->buf, s->len, s->seqoff, 1, &one, 1, "seq 1 must not have a prev");
	/* seq 2 without one */
	reject_patch(s->gen, s->genlen, s->gseqoff, 1, &two, 1, "seq 2 has no prev");
	/* lamport 0 */
	reject_patch(s->buf, s->len, s->timeoff - 1, 1, &zero, 1, "lamport");
}

static void test_unknown_version_is_rejected_naming_the_version(void **state)
{
	samples *s = *state;
	static const uint8_t v2 = 2, v0 = 0, v127 = 0x7f, v300[] = {0xcd, 0x01, 0x2c};

	assert_int_equal(s->buf[1], SAMEN_CHANGE_VERSION);
	reject_patch(s->buf, s->len, 1, 1, &v2, 1, "version 2 is not supported");
	reject_patch(s->buf, s->len, 1, 1, &v0, 1, "version 0 is not supported");
	reject_patch(s->buf, s->len, 1, 1, &v127, 1, "version 127 is not supported");
	reject_patch(s->buf, s->len, 1, 1, v300, sizeof(v300), "version 300 is not supported");
}

static void test_unknown_op_kind_and_malformed_ops_are_rejected(void **state)
{
	samples *s = *state;
	size_t opsoff = off_of(s->buf, s->c.devs) + 34 * (size_t)s->c.ndevs;
	static const uint8_t k10 = 10, k127 = 0x7f, empty = 0x90, create3[] = {0x93, 0x00, 0x01, 0x01};
	static const uint8_t neg = 0xff; /* -1 */

	assert_int_equal(s->buf[opsoff + 1], 0x92); /* op 0: [0, type] */
	assert_int_equal(s->buf[opsoff + 2], SAMEN_OP_CREATE);
	reject_patch(s->buf, s->len, opsoff + 2, 1, &k10, 1, "unknown op kind");
	reject_patch(s->buf, s->len, opsoff + 2, 1, &k127, 1, "unknown op kind");
	reject_patch(s->buf, s->len, opsoff + 2, 1, &neg, 1, "op 0");
	reject_patch(s->buf, s->len, opsoff + 1, 3, &empty, 1, "empty op");
	reject_patch(s->buf, s->len, opsoff + 1, 3, create3, sizeof(create3), "create op must have 2 elements");
	/* a set op referring to a device index past devs */
	{
		size_t devoff = off_of(s->buf, s->c.ops[2].value) - 3; /* [1, dev, n=7, field=5, value] */
		uint8_t four = 4;
		assert_int_equal(s->buf[devoff - 1], SAMEN_OP_SET);
		reject_patch(s->buf, s->len, devoff, 1, &four, 1, "op 2");
	}
}

static void test_strings_that_are_not_utf8_or_contain_nul_are_rejected(void **state)
{
	samples *s = *state;
	size_t name = off_of(s->buf, s->c.name);
	size_t member = off_of(s->buf, s->c.ops[7].str);
	size_t title = off_of(s->buf, s->c.ops[1].value) + 2; /* str8 header: d9 len */
	uint8_t *bad = dup_exact(s->buf, s->len);

	assert_int_equal(s->buf[title - 2], 0xd9);
	bad[name + 1] = 0xff;
	expect_decode_fail(bad, s->len, "not valid UTF-8");
	bad[name + 1] = 0x00;
	expect_decode_fail(bad, s->len, "NUL");
	/* overlong encoding of '/' */
	bad[name + 1] = 0xc0;
	bad[name + 2] = 0xaf;
	expect_decode_fail(bad, s->len, "not valid UTF-8");
	/* a lone continuation byte */
	bad[name + 1] = 0x80;
	bad[name + 2] = s->buf[name + 2];
	expect_decode_fail(bad, s->len, "not valid UTF-8");
	memcpy(bad, s->buf, s->len);
	/* the member's name */
	bad[member + 3] = 0x00;
	expect_decode_fail(bad, s->len, "NUL");
	bad[member + 3] = 0xfe;
	expect_decode_fail(bad, s->len, "not valid UTF-8");
	memcpy(bad, s->buf, s->len);
	/* a value (the title): the em dash cut in half */
	{
		const char *dash = memchr(s->buf + title, 0xe2, s->c.ops[1].value_len - 2);
		assert_non_null(dash);
		bad[off_of(s->buf, dash) + 1] = 'x';
		expect_decode_fail(bad, s->len, "not valid UTF-8");
		memcpy(bad, s->buf, s->len);
		bad[title + 3] = 0x00;
		expect_decode_fail(bad, s->len, "NUL");
	}
	/* a surrogate (U+D800) in the genesis client name */
	{
		uint8_t *g = dup_exact(s->gen, s->genlen);
		size_t cl = off_of(s->gen, s->g.ops[0].str);
		g[cl] = 0xed;
		g[cl + 1] = 0xa0;
		g[cl + 2] = 0x80;
		expect_decode_fail(g, s->genlen, "not valid UTF-8");
		free(g);
	}
	free(bad);
}

static void test_value_nested_10000_arrays_deep_is_rejected_quickly(void **state)
{
	world w;
	change_builder *b;
	change_header h;
	uint8_t *deep, *buf;
	size_t len, depth = 10000;
	clock_t t0;
	(void)state;

	world_init(&w);
	deep = malloc(depth + 1);
	assert_non_null(deep);
	memset(deep, 0x91, depth);
	deep[depth] = 0x01;
	memset(&h, 0, sizeof(h));
	h.plan = w.plan;
	h.author = w.pk;
	h.name = "Anna";
	h.seq = 1;
	h.lamport = 1;
	assert_int_equal(change_builder_new(&b), 0);
	assert_int_equal(change_builder_create(b, SAMEN_TYPE_GOAL), 0);
	/* the builder copies values as given; the decoder must stop it */
	assert_int_equal(change_builder_set(b, 1, 0, 0, 9, deep, depth + 1), 0);
	assert_int_equal(change_builder_finish(b, &h, &buf, &len), 0);
	change_builder_free(b);

	t0 = clock();
	expect_decode_fail(buf, len, "nesting deeper than");
	/* the whole input nested, too */
	expect_decode_fail(deep, depth + 1, "malformed change");
	assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
	/* a value nested just 4 deep is fine (the limit is fixed, not 1) */
	{
		static const uint8_t four[] = {0x91, 0x91, 0x91, 0x91, 0x01};
		samen_change c;
		uint8_t *ok;
		assert_int_equal(change_builder_new(&b), 0);
		assert_int_equal(change_builder_create(b, SAMEN_TYPE_GOAL), 0);
		assert_int_equal(change_builder_set(b, 1, 0, 0, 9, four, sizeof(four)), 0);
		assert_int_equal(change_builder_finish(b, &h, &ok, &len), 0);
		change_builder_free(b);
		assert_int_equal(change_decode(&c, ok, len), 0);
		assert_int_equal(c.ops[1].value_len, sizeof(four));
		change_clear(&c);
		free(ok);
	}
	free(buf);
	free(deep);
}

static void test_oversized_change_is_rejected_before_decoding(void **state)
{
	size_t len = SAMEN_MAX_CHANGE_BYTES + 1;
	uint8_t *big = calloc(1, len);
	samen_change c;
	(void)state;

	assert_non_null(big);
	big[0] = 0x9b;
	assert_int_equal(change_decode(&c, big, len), SAMEN_EDECODE);
	assert_non_null(strstr(samen_error_last(), "exceeds the cap"));
	free(big);
}

/* ---- ids ------------------------------------------------------------------ */

static void hex(char *out, const uint8_t *b, size_t n)
{
	sodium_bin2hex(out, 2 * n + 1, b, n);
}

static void test_change_id_is_blake2b_256_of_the_bytes(void **state)
{
	world w;
	uint8_t id[32], id2[32], ref[32], *buf;
	size_t len;
	char h[65];
	(void)state;

	/* known answers */
	change_id(id, (const uint8_t *)"", 0);
	hex(h, id, 32);
	assert_string_equal(h, "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
	change_id(id, (const uint8_t *)"abc", 3);
	hex(h, id, 32);
	assert_string_equal(h, "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	change_id(id, buf, len);
	crypto_generichash_blake2b(ref, 32, buf, len, NULL, 0);
	assert_memory_equal(id, ref, 32);
	change_id(id2, buf, len);
	assert_memory_equal(id, id2, 32);
	/* any other bytes, another id: every single-bit flip of the change */
	for (size_t i = 0; i < len; i++) {
		buf[i] ^= (uint8_t)(1u << (i % 8));
		change_id(id2, buf, len);
		assert_memory_not_equal(id, id2, 32);
		buf[i] ^= (uint8_t)(1u << (i % 8));
	}
	change_id(id2, buf, len - 1);
	assert_memory_not_equal(id, id2, 32);
	free(buf);
}

static void test_plan_id_depends_on_creator_and_nonce(void **state)
{
	world w;
	uint8_t nonce[16], a[16], b[16], c[16];
	(void)state;

	world_init(&w);
	fill(nonce, 16, 1, 2);
	change_plan_id(a, w.pk, nonce);
	change_plan_id(b, w.pk, nonce);
	assert_memory_equal(a, b, 16);
	nonce[15] ^= 1;
	change_plan_id(c, w.pk, nonce);
	assert_memory_not_equal(a, c, 16);
	nonce[15] ^= 1;
	change_plan_id(c, w.lo, nonce);
	assert_memory_not_equal(a, c, 16);
}

/* ---- signatures ----------------------------------------------------------- */

static void test_signature_round_trip(void **state)
{
	world w;
	uint8_t *buf, sig[64], sig2[64], other_pk[32], other_sk[64];
	size_t len;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_sign(sig, buf, len, w.sk), 0);
	assert_int_equal(change_verify(sig, buf, len, w.pk), 0);
	/* Ed25519 is deterministic */
	assert_int_equal(change_sign(sig2, buf, len, w.sk), 0);
	assert_memory_equal(sig, sig2, 64);
	/* another device's key does not verify it */
	crypto_sign_keypair(other_pk, other_sk);
	assert_int_equal(change_verify(sig, buf, len, other_pk), SAMEN_ESIG);
	/* a plain signature over the bytes, without the domain prefix, is a
	 * signature over other bytes */
	crypto_sign_detached(sig2, NULL, buf, len, w.sk);
	assert_int_equal(change_verify(sig2, buf, len, w.pk), SAMEN_ESIG);
	/* a signature of a prefix of the change */
	assert_int_equal(change_sign(sig2, buf, len - 1, w.sk), 0);
	assert_int_equal(change_verify(sig2, buf, len, w.pk), SAMEN_ESIG);
	assert_int_equal(change_verify(sig, buf, len - 1, w.pk), SAMEN_ESIG);
	free(buf);
}

static void test_every_flipped_signature_bit_fails_verification(void **state)
{
	world w;
	uint8_t *buf, sig[64];
	size_t len;
	ingest_batch b;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_sign(sig, buf, len, w.sk), 0);
	assert_int_equal(ingest_init(&b, w.plan), 0);
	for (int bit = 0; bit < 512; bit++) {
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(change_verify(sig, buf, len, w.pk), SAMEN_ESIG);
		if (bit % 8 == 0) { /* and through ingest, sampled */
			samen_error_clear();
			assert_int_equal(ingest_add(&b, dup_exact(buf, len), len, sig), SAMEN_ESIG);
			assert_non_null(strstr(samen_error_last(), "signature does not match"));
		}
		sig[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
	assert_int_equal(b.n, 0);
	/* control: the intact signature is accepted */
	assert_int_equal(ingest_add(&b, dup_exact(buf, len), len, sig), 0);
	assert_int_equal(b.n, 1);
	ingest_free(&b);
	free(buf);
}

static void test_a_flipped_bit_in_the_change_is_rejected_by_ingest(void **state)
{
	world w;
	uint8_t *buf, sig[64];
	size_t len, nsig = 0, ndec = 0, nplan = 0;
	ingest_batch b;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_sign(sig, buf, len, w.sk), 0);
	assert_int_equal(ingest_init(&b, w.plan), 0);
	for (size_t i = 0; i < len; i++) {
		uint8_t *m = dup_exact(buf, len);
		int rc;
		m[i] ^= (uint8_t)(1u << (i % 8));
		assert_int_equal(change_verify(sig, m, len, w.pk), SAMEN_ESIG);
		samen_error_clear();
		rc = ingest_add(&b, m, len, sig); /* takes m */
		assert_true(samen_error_last()[0]);
		if (rc == SAMEN_ESIG)
			nsig++;
		else if (rc == SAMEN_EDECODE)
			ndec++;
		else if (rc == SAMEN_EINVAL && i >= 4 && i < 4 + 16) {
			/* a flip in the plan id makes it another plan's change */
			assert_non_null(strstr(samen_error_last(), "belongs to plan"));
			nplan++;
		} else
			fail_msg("byte %zu flipped: ingest_add returned %d (%s)", i, rc, samen_error_last());
	}
	assert_int_equal(b.n, 0);
	assert_int_equal(nsig + ndec + nplan, len);
	assert_true(nsig > len / 2); /* most flips decode fine and fail the signature */
	assert_true(ndec > 0);
	ingest_free(&b);
	free(buf);
}

static void test_change_for_another_plan_is_rejected_naming_both_plans(void **state)
{
	world w;
	uint8_t *buf, sig[64], other[16];
	char want[33], got[33];
	size_t len;
	ingest_batch b;
	(void)state;

	world_init(&w);
	build_sample(&w, 0, &buf, &len);
	assert_int_equal(change_sign(sig, buf, len, w.sk), 0);
	fill(other, 16, 0x33, 0x77);
	hex(got, w.plan, 16);
	hex(want, other, 16);
	assert_int_equal(ingest_init(&b, other), 0);
	samen_error_clear();
	assert_int_equal(ingest_add(&b, buf, len, sig), SAMEN_EINVAL);
	assert_non_null(strstr(samen_error_last(), got));
	assert_non_null(strstr(samen_error_last(), want));
	assert_non_null(strstr(samen_error_last(), "belongs to plan"));
	assert_int_equal(b.n, 0);
	ingest_free(&b);
}

/* ---- nothing bad enters a real plan's history ------------------------------ */

static int64_t db_count(samen_plan *p, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t n = -1;
	assert_int_equal(sqlite3_prepare_v2(replica_db(p->rep), sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

/* Commits reachable from any ref of the plan's history, counted by git. */
static long git_commit_count(samen_plan *p)
{
	char cmd[4400];
	long n = -1;
	FILE *f;
	snprintf(cmd, sizeof(cmd), "git --git-dir='%s/history.git' rev-list --all 2>/dev/null | wc -l",
	         samen_plan_dir(p));
	f = popen(cmd, "r");
	assert_non_null(f);
	if (fscanf(f, "%ld", &n) != 1)
		n = -1;
	pclose(f);
	return n;
}

typedef struct {
	char field[32];
	char value[256];
} field_probe;

static int probe_field(const samen_entity_view *e, void *payload)
{
	field_probe *fp = payload;
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].name, fp->field) == 0)
			snprintf(fp->value, sizeof(fp->value), "%s", e->fields[i].value);
	return 0;
}

static void goal_field(samen_plan *p, const char *uid, const char *field, char *out, size_t outlen)
{
	field_probe fp;
	memset(&fp, 0, sizeof(fp));
	snprintf(fp.field, sizeof(fp.field), "%s", field);
	assert_int_equal(samen_entity_get(p, "goal", uid, probe_field, &fp), 0);
	snprintf(out, outlen, "%s", fp.value);
}

/* A new store (device "Anna") in dir with a plan holding one goal. */
static void plan_with_one_goal(const char *dir, samen_store **st, samen_plan **p, char uid[17])
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	samen_edit *e;
	assert_non_null(dir);
	o.path = dir;
	o.device_name = "Anna";
	o.create = 1;
	assert_int_equal(samen_store_open(st, &o), 0);
	assert_int_equal(samen_plan_create(p, *st, "Jan de Vries", "nl"), 0);
	assert_int_equal(samen_edit_begin(&e, *p), 0);
	assert_int_equal(samen_edit_create(e, "goal", uid), 0);
	assert_int_equal(samen_edit_set(e, uid, "title", "Zelfstandig wonen"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
}

static int count_log(const samen_log_entry *e, void *payload)
{
	(void)e;
	(*(int *)payload)++;
	return 0;
}

static void set_user_version(samen_plan *p, int v)
{
	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v);
	assert_int_equal(sqlite3_exec(replica_db(p->rep), sql, NULL, NULL, NULL), SQLITE_OK);
}

/* The replica keeps only where each change's bytes are in the history;
 * a replica of another format is set aside and rebuilt from the history;
 * a history whose blob is not the change is named, not trusted. */
static void test_the_replica_reads_change_bytes_from_the_history(void **state)
{
	char *dir = tu_mkdtemp("change"), hash[65], hash2[65], uid[17], aside[4300];
	samen_store *st;
	samen_plan *p;
	int n = 0;
	(void)state;

	plan_with_one_goal(dir, &st, &p, uid);
	assert_int_equal(samen_plan_state_hash(p, hash), 0);
	assert_int_equal(db_count(p, "SELECT count(*) FROM changes WHERE body IS NULL AND length(blob) = 20"), 2);
	assert_int_equal(samen_log(p, NULL, count_log, &n), 0);
	assert_int_equal(n, 2);

	/* an older and a newer format: both rebuilt from the history, the
	 * old file kept aside */
	for (int v = 0; v < 2; v++) {
		set_user_version(p, v == 0 ? 1 : 99);
		samen_plan_free(p);
		assert_int_equal(samen_plan_open(&p, st, NULL), 0);
		assert_int_equal(samen_plan_state_hash(p, hash2), 0);
		assert_string_equal(hash, hash2);
		assert_int_equal(db_count(p, "PRAGMA user_version"), 3);
		assert_int_equal(db_count(p, "SELECT count(*) FROM changes WHERE body IS NULL"), 2);
		snprintf(aside, sizeof(aside), "%s/replica.db.damaged-*", p->dir);
		assert_true(tu_glob_count(aside) >= 1);
	}

	/* a row that points at another change's blob: the log says which
	 * change and where to look, and nothing is decoded from it */
	assert_int_equal(sqlite3_exec(replica_db(p->rep),
	                              "UPDATE changes SET blob = (SELECT blob FROM changes WHERE seq = 1) WHERE seq = 2",
	                              NULL, NULL, NULL), SQLITE_OK);
	samen_error_clear();
	n = 0;
	assert_int_equal(samen_log(p, NULL, count_log, &n), SAMEN_ECORRUPT);
	assert_non_null(strstr(samen_error_last(), "is not the change"));
	/* and a blob that is not in the history at all */
	assert_int_equal(sqlite3_exec(replica_db(p->rep), "UPDATE changes SET blob = zeroblob(20) WHERE seq = 2", NULL,
	                              NULL, NULL), SQLITE_OK);
	samen_error_clear();
	assert_true(samen_log(p, NULL, count_log, &n) < 0);
	assert_non_null(strstr(samen_error_last(), "missing from the history"));
	/* samen rebuild puts it right */
	assert_int_equal(samen_plan_rebuild(p), 0);
	n = 0;
	assert_int_equal(samen_log(p, NULL, count_log, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(samen_plan_state_hash(p, hash2), 0);
	assert_string_equal(hash, hash2);

	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(dir);
	free(dir);
}

static void test_a_flipped_bit_never_enters_the_history(void **state)
{
	char *dir = tu_mkdtemp("change"), hash[65], hash2[65], uid[17], title[256];
	samen_store *st;
	samen_plan *p;
	sqlite3_stmt *s;
	uint8_t *body = NULL, sig[64], mpk[32], msk[64];
	size_t blen = 0;
	int64_t nchanges;
	long ncommits;
	ingest_batch b;
	(void)state;

	plan_with_one_goal(dir, &st, &p, uid);

	nchanges = db_count(p, "SELECT count(*) FROM changes");
	assert_int_equal(nchanges, 2);
	ncommits = git_commit_count(p);
	assert_int_equal(ncommits, 2);
	assert_int_equal(samen_plan_state_hash(p, hash), 0);

	/* the goal's change, as stored */
	assert_int_equal(sqlite3_prepare_v2(replica_db(p->rep), "SELECT body, sig, blob, id FROM changes WHERE seq = 2", -1,
	                                    &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	/* the replica keeps where the bytes are in the history, not the bytes */
	assert_int_equal(sqlite3_column_type(s, 0), SQLITE_NULL);
	assert_int_equal(sqlite3_column_bytes(s, 2), 20);
	{
		uint8_t *copy;
		assert_int_equal(replica_row_change(p->rep, s, 0, 2, 3, &copy, &blen), 0);
		body = dup_exact(copy, blen);
		free(copy);
	}
	assert_int_equal(sqlite3_column_bytes(s, 1), 64);
	memcpy(sig, sqlite3_column_blob(s, 1), 64);
	sqlite3_finalize(s);
	assert_int_equal(change_verify(sig, body, blen, st->pk), 0);

	/* every byte with one bit flipped, and every signature bit: rejected */
	assert_int_equal(ingest_init(&b, p->id), 0);
	for (size_t i = 0; i < blen; i++) {
		uint8_t *m = dup_exact(body, blen);
		int rc;
		m[i] ^= (uint8_t)(1u << (i % 8));
		rc = ingest_add(&b, m, blen, sig);
		assert_true(rc == SAMEN_ESIG || rc == SAMEN_EDECODE || rc == SAMEN_EINVAL);
	}
	for (int bit = 0; bit < 512; bit++) {
		uint8_t bad[64];
		memcpy(bad, sig, 64);
		bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_int_equal(ingest_add(&b, dup_exact(body, blen), blen, bad), SAMEN_ESIG);
	}
	assert_int_equal(b.n, 0);

	/* a well-formed change by another device, over the real plan, with its
	 * signature corrupted */
	{
		replica_edit_base base;
		change_builder *cb;
		change_header h;
		uint8_t *v, *mine;
		size_t vlen, mlen;
		crypto_sign_keypair(mpk, msk);
		assert_int_equal(replica_get_edit_base(p->rep, mpk, &base), 0);
		assert_int_equal(base.seq, 1);
		assert_int_equal(change_builder_new(&cb), 0);
		assert_int_equal(value_encode_str(&v, &vlen, "Vervalst doel", strlen("Vervalst doel")), 0);
		assert_int_equal(change_builder_set(cb, 1, change_builder_dev(cb, st->pk), 0, 1, v, vlen), 0);
		free(v);
		memset(&h, 0, sizeof(h));
		h.plan = p->id;
		h.author = mpk;
		h.name = "Mallory";
		h.seq = base.seq;
		h.deps = base.heads;
		h.ndeps = base.nheads;
		h.lamport = base.lamport;
		h.time = 1700000000;
		assert_int_equal(change_builder_finish(cb, &h, &mine, &mlen), 0);
		change_builder_free(cb);
		free(base.heads);
		assert_int_equal(change_sign(sig, mine, mlen, msk), 0);
		sig[17] ^= 0x20;
		samen_error_clear();
		assert_int_equal(ingest_add(&b, dup_exact(mine, mlen), mlen, sig), SAMEN_ESIG);
		assert_non_null(strstr(samen_error_last(), "signature"));
		/* signed by the plan's own device instead of its author */
		assert_int_equal(change_sign(sig, mine, mlen, st->sk), 0);
		assert_int_equal(ingest_add(&b, dup_exact(mine, mlen), mlen, sig), SAMEN_ESIG);
		assert_int_equal(b.n, 0);
		/* the path of a change with what was left: nothing */
		assert_int_equal(plan_ingest(p, &b), 0);
		assert_int_equal(b.nready, 0);
		ingest_free(&b);

		assert_int_equal(db_count(p, "SELECT count(*) FROM changes"), nchanges);
		assert_int_equal(db_count(p, "SELECT count(*) FROM pending"), 0);
		assert_int_equal(git_commit_count(p), ncommits);
		assert_int_equal(samen_plan_state_hash(p, hash2), 0);
		assert_string_equal(hash, hash2);

		/* after reopening (which applies whatever the history holds beyond
		 * the replica) and a full check: still nothing */
		samen_plan_free(p);
		assert_int_equal(samen_plan_open(&p, st, NULL), 0);
		{
			samen_check_result res;
			assert_int_equal(samen_plan_check(p, &res, hash2), 0);
			assert_int_equal(res.changes, nchanges);
			assert_int_equal(res.history_only, 0);
		}
		assert_string_equal(hash, hash2);
		assert_int_equal(git_commit_count(p), ncommits);
		goal_field(p, uid, "title", title, sizeof(title));
		assert_string_equal(title, "Zelfstandig wonen");

		/* control: the same change correctly signed does reach the history
		 * (and is rejected there by the rules: Mallory is no member), so the
		 * counts above could have moved */
		assert_int_equal(change_sign(sig, mine, mlen, msk), 0);
		assert_int_equal(ingest_init(&b, p->id), 0);
		assert_int_equal(ingest_add(&b, mine, mlen, sig), 0);
		assert_int_equal(plan_ingest(p, &b), 0);
		assert_int_equal(b.nready, 1);
		ingest_free(&b);
		assert_int_equal(db_count(p, "SELECT count(*) FROM changes"), nchanges + 1);
		assert_int_equal(db_count(p, "SELECT count(*) FROM changes WHERE verdict = 0"), 1);
		assert_int_equal(git_commit_count(p), ncommits + 1);
		goal_field(p, uid, "title", title, sizeof(title));
		assert_string_equal(title, "Zelfstandig wonen");
	}
	free(body);
	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(dir);
	free(dir);
}

/* A member's own change whose values do not fit the schema is kept in the
 * history, marked rejected with the reason, and changes nothing. */
static void sign_and_ingest_set(samen_plan *p, samen_store *st, uint32_t type, uint32_t field, const uint8_t *v,
                                size_t vlen, uint64_t n)
{
	replica_edit_base base;
	change_builder *cb;
	change_header h;
	ingest_batch b;
	uint8_t *bytes, sig[64];
	size_t len;

	assert_int_equal(replica_get_edit_base(p->rep, st->pk, &base), 0);
	assert_int_equal(change_builder_new(&cb), 0);
	assert_int_equal(change_builder_set(cb, type, 0, n, field, v, vlen), 0);
	memset(&h, 0, sizeof(h));
	h.plan = p->id;
	h.author = st->pk;
	h.name = "Anna";
	h.seq = base.seq;
	h.prev = base.has_prev ? base.prev : NULL;
	h.deps = base.heads;
	h.ndeps = base.nheads;
	h.lamport = base.lamport;
	h.time = 1700000000;
	assert_int_equal(change_builder_finish(cb, &h, &bytes, &len), 0);
	change_builder_free(cb);
	free(base.heads);
	assert_int_equal(change_sign(sig, bytes, len, st->sk), 0);
	assert_int_equal(ingest_init(&b, p->id), 0);
	assert_int_equal(ingest_add(&b, bytes, len, sig), 0);
	assert_int_equal(plan_ingest(p, &b), 0);
	assert_int_equal(b.nready, 1);
	ingest_free(&b);
}

static void sign_and_ingest_member_set(samen_plan *p, samen_store *st, uint32_t field, const uint8_t *v,
                                       size_t vlen, uint64_t n)
{
	sign_and_ingest_set(p, st, SAMEN_TYPE_GOAL, field, v, vlen, n);
}

static void last_verdict(samen_plan *p, int *verdict, char *reason, size_t cap)
{
	sqlite3_stmt *s;
	assert_int_equal(sqlite3_prepare_v2(replica_db(p->rep),
	                                    "SELECT verdict, coalesce(reason, '') FROM changes ORDER BY rowid DESC LIMIT 1",
	                                    -1, &s, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	*verdict = sqlite3_column_int(s, 0);
	snprintf(reason, cap, "%s", (const char *)sqlite3_column_text(s, 1));
	sqlite3_finalize(s);
}

static void test_value_of_the_wrong_type_marks_the_change_rejected(void **state)
{
	char *dir = tu_mkdtemp("change"), uid[17], hash[65], hash2[65], reason[512], title[256];
	samen_store *st;
	samen_plan *p;
	int verdict;
	static const struct {
		uint32_t field;
		uint8_t value[8];
		size_t len;
		uint64_t n;
		const char *reason;
	} cases[] = {
		{7, {0xa5, 'b', 'e', 'z', 'i', 'g'}, 6, 11, "status"},     /* status as a string */
		{7, {0x09}, 1, 11, "status"},                                /* status index out of range */
		{5, {0x09}, 1, 11, "priority"},                              /* priority 9 */
		{1, {0xc0}, 1, 11, "title cannot be cleared"},               /* required title cleared */
		{1, {0x01}, 1, 11, "title"},                                 /* title as a number */
		{8, {0xa4, '2', '0', '2', '5'}, 5, 11, "target"},            /* not a date */
		{3, {0x92, 0x00, 0x05}, 3, 11, "parent"},                    /* parent that does not exist */
		{99, {0x01}, 1, 11, "no field 99"},                          /* unknown field */
		{1, {0xa1, 'x'}, 2, 99, "refers to entity"},                 /* an entity nobody created */
		{1, {0xa1, 'x'}, 2, 0, "is of type area, not goal"},     /* op type differs from the entity's */
	};
	(void)state;

	plan_with_one_goal(dir, &st, &p, uid);
	assert_int_equal(samen_plan_state_hash(p, hash), 0);

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		sign_and_ingest_member_set(p, st, cases[k].field, cases[k].value, cases[k].len, cases[k].n);
		last_verdict(p, &verdict, reason, sizeof(reason));
		if (verdict != 0 || !strstr(reason, cases[k].reason))
			fail_msg("case %zu: verdict %d, reason '%s' (expected it to mention '%s')", k, verdict, reason,
			         cases[k].reason);
	}
	/* nothing changed but the list of (rejected) changes */
	goal_field(p, uid, "title", title, sizeof(title));
	assert_string_equal(title, "Zelfstandig wonen");
	{
		samen_check_result res;
		assert_int_equal(samen_plan_check(p, &res, hash2), 0);
		assert_int_equal(res.rejected, (int64_t)(sizeof(cases) / sizeof(cases[0])));
	}
	assert_string_not_equal(hash, hash2); /* the verdicts are part of the state */
	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(dir);
	free(dir);
}

/* The other modules' field kinds are checked the same way: a set beyond
 * its labels, a number out of range, a list naming one entity twice or an
 * entity of the wrong type, a label cleared. */
static void test_values_of_every_kind_are_checked(void **state)
{
	char *dir = tu_mkdtemp("change"), uid[17], reason[512], person[17], tie[17], group[17];
	samen_store *st;
	samen_plan *p;
	samen_edit *e;
	int verdict;
	/* entity counters of the creator: areas 0-9, the plan 10, the goal 11, then these */
	enum { GOAL = 11, PERSON = 12, TIE = 13, GROUP = 14 };
	static const struct {
		uint32_t type, field;
		uint8_t value[12];
		size_t len;
		uint64_t n;
		const char *reason;
	} cases[] = {
		{SAMEN_TYPE_TIE, 3, {0x04}, 1, TIE, "ring must be a whole number from 1 to 3"},
		{SAMEN_TYPE_TIE, 6, {0x10}, 1, TIE, "support must be a set of the 4 choices"},
		{SAMEN_TYPE_TIE, 2, {0xa1, 'x'}, 2, TIE, "sector must be one of 6 choices"},
		{SAMEN_TYPE_TIE, 1, {0x92, 0x00, GOAL}, 3, TIE, "person must refer to a person"},
		{SAMEN_TYPE_GROUP, 2, {0x92, 0x92, 0x00, PERSON, 0x92, 0x00, PERSON}, 7, GROUP, "names one entity twice"},
		{SAMEN_TYPE_GROUP, 2, {0x91, 0x92, 0x00, GOAL}, 4, GROUP, "members must refer to a person"},
		{SAMEN_TYPE_GROUP, 2, {0x91, 0x00}, 2, GROUP, "entry 0 must be a reference"},
		{SAMEN_TYPE_GROUP, 4, {0xcd, 0x01, 0x6e}, 3, GROUP, "rhythm must be a whole number from 1 to 365"},
		{SAMEN_TYPE_AREA, 1, {0xc0}, 1, 0, "name cannot be cleared"},
		{SAMEN_TYPE_PERSON, 2, {0xa2, 0x1b, '['}, 3, PERSON, "single line without control characters"},
	};
	(void)state;

	plan_with_one_goal(dir, &st, &p, uid);
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_create(e, "person", person), 0);
	assert_int_equal(samen_edit_set_in(e, "person", person, "name", "Kees"), 0);
	assert_int_equal(samen_edit_create(e, "tie", tie), 0);
	assert_int_equal(samen_edit_set_in(e, "tie", tie, "person", person), 0);
	assert_int_equal(samen_edit_create(e, "group", group), 0);
	assert_int_equal(samen_edit_set_in(e, "group", group, "name", "Steungroep"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		sign_and_ingest_set(p, st, cases[k].type, cases[k].field, cases[k].value, cases[k].len, cases[k].n);
		last_verdict(p, &verdict, reason, sizeof(reason));
		if (verdict != 0 || !strstr(reason, cases[k].reason))
			fail_msg("case %zu: verdict %d, reason '%s' (expected it to mention '%s')", k, verdict, reason,
			         cases[k].reason);
	}
	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(dir);
	free(dir);
}

/* Changes by strangers are kept (rejected) but nobody builds on them: a
 * flood of them must not stop members from editing (a change may name at
 * most 256 dependencies). */
static void test_a_flood_of_rejected_changes_does_not_block_members(void **state)
{
	char *dir = tu_mkdtemp("change"), uid[17], title[256];
	samen_store *st;
	samen_plan *p;
	samen_edit *e;
	replica_edit_base base;
	ingest_batch b;
	const int strangers = 300;
	(void)state;

	plan_with_one_goal(dir, &st, &p, uid);

	/* 300 concurrent changes, each by a device nobody added */
	assert_int_equal(replica_get_edit_base(p->rep, st->pk, &base), 0);
	assert_int_equal(ingest_init(&b, p->id), 0);
	for (int k = 0; k < strangers; k++) {
		uint8_t pk[32], sk[64], *bytes, *v, sig[64];
		size_t len, vlen;
		change_builder *cb;
		change_header h;
		crypto_sign_keypair(pk, sk);
		assert_int_equal(change_builder_new(&cb), 0);
		assert_int_equal(value_encode_str(&v, &vlen, "Overgenomen", 11), 0);
		assert_int_equal(change_builder_set(cb, 1, change_builder_dev(cb, st->pk), 0, 1, v, vlen), 0);
		free(v);
		memset(&h, 0, sizeof(h));
		h.plan = p->id;
		h.author = pk;
		h.name = "Vreemde";
		h.seq = 1;
		h.deps = base.heads;
		h.ndeps = base.nheads;
		h.lamport = base.lamport;
		h.time = 1700000000;
		assert_int_equal(change_builder_finish(cb, &h, &bytes, &len), 0);
		change_builder_free(cb);
		assert_int_equal(change_sign(sig, bytes, len, sk), 0);
		assert_int_equal(ingest_add(&b, bytes, len, sig), 0);
	}
	free(base.heads);
	assert_int_equal(plan_ingest(p, &b), 0);
	assert_int_equal(b.nready, (size_t)strangers);
	ingest_free(&b);
	assert_int_equal(db_count(p, "SELECT count(*) FROM changes WHERE verdict = 0"), strangers);

	/* the member still edits, and the strangers changed nothing */
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_set(e, uid, "status", "bezig"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	goal_field(p, uid, "title", title, sizeof(title));
	assert_string_equal(title, "Zelfstandig wonen");
	goal_field(p, uid, "status", title, sizeof(title));
	assert_string_equal(title, "bezig");
	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(dir);
	free(dir);
}

/* The rights ops (kinds 5-9) round-trip, and their canonical rules hold: a
 * scope's areas sorted and unique, consent 0 or 1, exact element counts. */
static void test_rights_ops_round_trip_and_are_strict(void **state)
{
	change_builder *b = NULL;
	uint8_t plan[16] = {1}, author[32] = {2}, member[32] = {3}, device[32] = {4}, other[32] = {5}, cid[32] = {6};
	uint32_t devs[3];
	uint64_t ns[3] = {7, 3, 7};
	change_header h;
	uint8_t *buf = NULL;
	size_t len;
	samen_change c;
	(void)state;
	assert_int_equal(change_builder_new(&b), 0);
	devs[0] = change_builder_dev(b, other);
	devs[1] = 0;
	devs[2] = devs[0]; /* a duplicate: the builder drops it */
	assert_int_equal(change_builder_member_add(b, member, "Piet", 2), 0);
	assert_int_equal(change_builder_scope(b, member, devs, ns, 3), 0);
	assert_int_equal(change_builder_link(b, member, device), 0);
	assert_int_equal(change_builder_unlink(b, device), 0);
	assert_int_equal(change_builder_revoke(b, member), 0);
	assert_int_equal(change_builder_approve(b, cid, true), 0);
	memset(&h, 0, sizeof(h));
	h.plan = plan;
	h.author = author;
	h.name = "Marieke";
	h.seq = 1;
	h.lamport = 1;
	assert_int_equal(change_builder_finish(b, &h, &buf, &len), 0);
	change_builder_free(b);
	assert_int_equal(change_decode(&c, buf, len), 0);
	assert_int_equal(c.nops, 6);
	assert_int_equal(c.ops[1].kind, SAMEN_OP_SCOPE);
	assert_memory_equal(c.ops[1].key, member, 32);
	/* [[0, 3], [1, 7]]: sorted by (dev, n), the duplicate gone */
	{
		static const uint8_t want[] = {0x92, 0x92, 0x00, 0x03, 0x92, 0x01, 0x07};
		assert_int_equal(c.ops[1].value_len, sizeof(want));
		assert_memory_equal(c.ops[1].value, want, sizeof(want));
	}
	assert_int_equal(c.ops[2].kind, SAMEN_OP_LINK);
	assert_memory_equal(c.ops[2].key2, device, 32);
	assert_int_equal(c.ops[3].kind, SAMEN_OP_UNLINK);
	assert_memory_equal(c.ops[3].key, device, 32);
	assert_int_equal(c.ops[4].kind, SAMEN_OP_REVOKE);
	assert_int_equal(c.ops[5].kind, SAMEN_OP_APPROVE);
	assert_int_equal(c.ops[5].role, 1);
	{
		/* patch the encodings: unsorted areas, consent 2, a short unlink */
		size_t scope = (size_t)(c.ops[1].value - buf), approve;
		const uint8_t unsorted[] = {0x92, 0x92, 0x01, 0x07, 0x92, 0x00, 0x03};
		uint8_t two = 2, three_elems = 0x93;
		uint8_t *bad = dup_exact(buf, len);
		memcpy(bad + scope, unsorted, sizeof(unsorted));
		expect_decode_fail(bad, len, "scope areas must be sorted and unique");
		free(bad);
		approve = (size_t)(c.ops[5].key - buf) + 32; /* the consent byte */
		bad = dup_exact(buf, len);
		bad[approve] = two;
		expect_decode_fail(bad, len, "malformed change");
		free(bad);
		bad = dup_exact(buf, len);
		bad[(size_t)(c.ops[3].key - buf) - 4] = three_elems; /* [8, device] claims 3 elements */
		expect_decode_fail(bad, len, "unlink op must have 2 elements");
		free(bad);
	}
	change_clear(&c);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_gives_back_every_field),
		cmocka_unit_test(test_genesis_round_trip_with_plan_op_and_no_prev),
		cmocka_unit_test(test_encoding_is_deterministic_and_reencoding_is_byte_identical),
		cmocka_unit_test(test_builder_refuses_empty_change_and_author_as_foreign_device),
		cmocka_unit_test(test_every_truncation_is_rejected_with_a_message),
		cmocka_unit_test(test_array_header_claiming_4g_elements_is_rejected_without_allocation),
		cmocka_unit_test_setup_teardown(test_integer_in_a_wider_form_than_needed_is_rejected, samples_setup,
		                                samples_teardown),
		cmocka_unit_test_setup_teardown(test_unsorted_or_duplicate_deps_and_prev_in_deps_are_rejected,
		                                samples_setup, samples_teardown),
		cmocka_unit_test_setup_teardown(test_author_in_devs_and_unsorted_devs_are_rejected, samples_setup,
		                                samples_teardown),
		cmocka_unit_test_setup_teardown(test_maps_floats_and_trailing_bytes_are_rejected, samples_setup,
		                                samples_teardown),
		cmocka_unit_test_setup_teardown(test_seq_and_prev_must_agree, samples_setup, samples_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_version_is_rejected_naming_the_version, samples_setup,
		                                samples_teardown),
		cmocka_unit_test_setup_teardown(test_unknown_op_kind_and_malformed_ops_are_rejected, samples_setup,
		                                samples_teardown),
		cmocka_unit_test_setup_teardown(test_strings_that_are_not_utf8_or_contain_nul_are_rejected, samples_setup,
		                                samples_teardown),
		cmocka_unit_test(test_value_nested_10000_arrays_deep_is_rejected_quickly),
		cmocka_unit_test(test_oversized_change_is_rejected_before_decoding),
		cmocka_unit_test(test_change_id_is_blake2b_256_of_the_bytes),
		cmocka_unit_test(test_plan_id_depends_on_creator_and_nonce),
		cmocka_unit_test(test_signature_round_trip),
		cmocka_unit_test(test_every_flipped_signature_bit_fails_verification),
		cmocka_unit_test(test_a_flipped_bit_in_the_change_is_rejected_by_ingest),
		cmocka_unit_test(test_change_for_another_plan_is_rejected_naming_both_plans),
		cmocka_unit_test(test_a_flipped_bit_never_enters_the_history),
		cmocka_unit_test(test_the_replica_reads_change_bytes_from_the_history),
		cmocka_unit_test(test_value_of_the_wrong_type_marks_the_change_rejected),
		cmocka_unit_test(test_values_of_every_kind_are_checked),
		cmocka_unit_test(test_a_flood_of_rejected_changes_does_not_block_members),
		cmocka_unit_test(test_rights_ops_round_trip_and_are_strict),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
