/*
 * change.c - canonical encoding, decoding, ids and signatures of changes.
 *
 * Encoding uses msgpack-c's packer, which always writes the smallest form of
 * every integer and header, so what we write is canonical. Decoding never
 * uses msgpack-c (its unpacker allocates from untrusted counts): it goes
 * through the bounded reader in mpread.c and re-checks every canonical rule.
 */
#include "core/change.h"
#include "core/mpread.h"
#include "core/schema.h"
#include "samen/common.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static int decode_fail(mpr *r, const char *what)
{
	return samen_error_set(SAMEN_EDECODE, "malformed change: %s: %s", what,
	                       r->err[0] ? r->err : "invalid");
}

/* A scope's areas: [[dev, n], ...], at most SAMEN_MAX_REFS, strictly
 * ascending by (dev, n) so that a set has one encoding. */
static int decode_scope_areas(mpr *r, samen_change *c, samen_op *op)
{
	const uint8_t *b = r->pos;
	uint32_t count;
	uint64_t d, nn, pd = 0, pn = 0;
	if (mpr_array(r, &count, SAMEN_MAX_REFS) < 0)
		return -1;
	for (uint32_t k = 0; k < count; k++) {
		if (mpr_array_exact(r, 2) < 0 || mpr_uint_max(r, &d, c->ndevs) < 0 || mpr_uint(r, &nn) < 0)
			return -1;
		if (k > 0 && (d < pd || (d == pd && nn <= pn)))
			return mpr_fail(r, "scope areas must be sorted and unique");
		pd = d;
		pn = nn;
	}
	op->value = b;
	op->value_len = (uint32_t)(r->pos - b);
	return 0;
}

static int decode_op(mpr *r, samen_change *c, samen_op *op)
{
	uint32_t n = 0;
	uint64_t kind, v;
	const uint8_t *b;

	if (mpr_array(r, &n, 6) < 0)
		return -1;
	if (n < 1)
		return mpr_fail(r, "empty op");
	if (mpr_uint(r, &kind) < 0)
		return -1;
	op->kind = (uint8_t)kind;
	switch (kind) {
	case SAMEN_OP_CREATE:
		if (n != 2)
			return mpr_fail(r, "create op must have 2 elements");
		if (mpr_uint_max(r, &v, UINT32_MAX) < 0)
			return -1;
		op->type = (uint32_t)v;
		c->ncreates++;
		return 0;
	case SAMEN_OP_SET:
	case SAMEN_OP_DELETE:
		if (n != (kind == SAMEN_OP_SET ? 6u : 4u))
			return mpr_fail(r, kind == SAMEN_OP_SET ? "set op must have 6 elements"
			                                        : "delete op must have 4 elements");
		if (mpr_uint_max(r, &v, UINT32_MAX) < 0)
			return -1;
		op->type = (uint32_t)v;
		if (mpr_uint_max(r, &v, c->ndevs) < 0)
			return -1;
		op->dev = (uint32_t)v;
		if (mpr_uint(r, &op->n) < 0)
			return -1;
		if (kind == SAMEN_OP_DELETE)
			return 0;
		if (mpr_uint_max(r, &v, UINT32_MAX) < 0)
			return -1;
		op->field = (uint32_t)v;
		b = r->pos;
		if (mpr_skip_value(r, 4) < 0)
			return -1;
		if ((size_t)(r->pos - b) > SAMEN_MAX_VALUE_BYTES)
			return mpr_fail(r, "value longer than 65536 bytes");
		op->value = b;
		op->value_len = (uint32_t)(r->pos - b);
		return 0;
	case SAMEN_OP_PLAN:
		if (n != 4)
			return mpr_fail(r, "plan op must have 4 elements");
		if (mpr_bin_exact(r, &op->key, 16) < 0 ||
		    mpr_str(r, &op->str, &op->str_len, SAMEN_MAX_NAME) < 0 ||
		    mpr_str(r, &op->str2, &op->str2_len, 16) < 0)
			return -1;
		return 0;
	case SAMEN_OP_MEMBER_ADD:
		if (n != 4)
			return mpr_fail(r, "member-add op must have 4 elements");
		if (mpr_bin_exact(r, &op->key, 32) < 0 ||
		    mpr_str(r, &op->str, &op->str_len, SAMEN_MAX_NAME) < 0 ||
		    mpr_uint_max(r, &op->role, 255) < 0)
			return -1;
		return 0;
	case SAMEN_OP_REVOKE:
	case SAMEN_OP_UNLINK:
		if (n != 2)
			return mpr_fail(r, kind == SAMEN_OP_REVOKE ? "revoke op must have 2 elements"
			                                           : "unlink op must have 2 elements");
		return mpr_bin_exact(r, &op->key, 32);
	case SAMEN_OP_LINK:
		if (n != 3)
			return mpr_fail(r, "link op must have 3 elements");
		if (mpr_bin_exact(r, &op->key, 32) < 0 || mpr_bin_exact(r, &op->key2, 32) < 0)
			return -1;
		return 0;
	case SAMEN_OP_APPROVE:
		if (n != 3)
			return mpr_fail(r, "approve op must have 3 elements");
		if (mpr_bin_exact(r, &op->key, 32) < 0 || mpr_uint_max(r, &op->role, 1) < 0)
			return -1;
		return 0;
	case SAMEN_OP_SCOPE:
		if (n != 3)
			return mpr_fail(r, "scope op must have 3 elements");
		if (mpr_bin_exact(r, &op->key, 32) < 0)
			return -1;
		return decode_scope_areas(r, c, op);
	default:
		return mpr_fail(r, "unknown op kind (this version knows kinds 0-9)");
	}
}

int change_decode(samen_change *c, const uint8_t *buf, size_t len)
{
	mpr r;
	uint64_t version;
	const uint8_t *b;
	uint32_t n;
	char what[64] = "header";

	memset(c, 0, sizeof(*c));
	if (len > SAMEN_MAX_CHANGE_BYTES)
		return samen_error_set(SAMEN_EDECODE, "change of %zu bytes exceeds the cap of %u bytes",
		                       len, SAMEN_MAX_CHANGE_BYTES);
	mpr_init(&r, buf, len);
	if (mpr_array_exact(&r, 11) < 0)
		return decode_fail(&r, "top level must be an array of 11 elements");
	if (mpr_uint(&r, &version) < 0)
		return decode_fail(&r, "version");
	if (version != SAMEN_CHANGE_VERSION)
		return samen_error_set(SAMEN_EDECODE,
		                       "change format version %llu is not supported (this Samen reads version %d)",
		                       (unsigned long long)version, SAMEN_CHANGE_VERSION);
	if (mpr_bin_exact(&r, &b, 16) < 0)
		return decode_fail(&r, "plan id");
	memcpy(c->plan, b, 16);
	if (mpr_bin_exact(&r, &b, 32) < 0)
		return decode_fail(&r, "author");
	memcpy(c->author, b, 32);
	if (mpr_str(&r, &c->name, &c->name_len, SAMEN_MAX_NAME) < 0)
		return decode_fail(&r, "author name");
	if (!schema_text_printable(c->name, c->name_len, 0))
		return samen_error_set(SAMEN_EDECODE, "malformed change: the author name contains control characters");
	if (mpr_uint(&r, &c->seq) < 0 || c->seq == 0)
		return decode_fail(&r, "seq must be an integer >= 1");
	if (mpr_peek(&r) == MPR_NIL) {
		mpr_nil(&r);
		if (c->seq != 1)
			return samen_error_set(SAMEN_EDECODE, "malformed change: seq %llu has no prev",
			                       (unsigned long long)c->seq);
	} else {
		if (mpr_bin_exact(&r, &b, 32) < 0)
			return decode_fail(&r, "prev");
		if (c->seq == 1)
			return samen_error_set(SAMEN_EDECODE, "malformed change: seq 1 must not have a prev");
		c->has_prev = true;
		memcpy(c->prev, b, 32);
	}
	if (mpr_array(&r, &c->ndeps, SAMEN_MAX_DEPS) < 0)
		return decode_fail(&r, "deps");
	c->deps = r.pos;
	for (uint32_t i = 0; i < c->ndeps; i++) {
		if (mpr_bin_exact(&r, &b, 32) < 0)
			return decode_fail(&r, "dep");
	}
	if (mpr_uint(&r, &c->lamport) < 0 || c->lamport == 0)
		return decode_fail(&r, "lamport must be an integer >= 1");
	if (mpr_int(&r, &c->time) < 0)
		return decode_fail(&r, "time");
	if (mpr_array(&r, &c->ndevs, SAMEN_MAX_DEVS) < 0)
		return decode_fail(&r, "devs");
	c->devs = r.pos;
	for (uint32_t i = 0; i < c->ndevs; i++)
		if (mpr_bin_exact(&r, &b, 32) < 0)
			return decode_fail(&r, "devs entry");
	if (mpr_array(&r, &n, SAMEN_MAX_OPS_PER_CHANGE) < 0)
		return decode_fail(&r, "ops");
	if (n == 0)
		return samen_error_set(SAMEN_EDECODE, "malformed change: no ops");
	c->ops = calloc(n, sizeof(*c->ops)); /* n <= remaining bytes and <= cap */
	if (!c->ops)
		return samen_error_set(SAMEN_ENOMEM, "out of memory decoding %u ops", n);
	c->nops = n;
	for (uint32_t i = 0; i < n; i++) {
		if (decode_op(&r, c, &c->ops[i]) < 0) {
			snprintf(what, sizeof(what), "op %u", i);
			decode_fail(&r, what);
			goto fail;
		}
	}
	if (!mpr_done(&r)) {
		samen_error_set(SAMEN_EDECODE, "malformed change: %zu trailing bytes after the ops",
		                len - mpr_offset(&r));
		goto fail;
	}
	/* Sorted and unique, so the order carries no freedom: canonical. */
	for (uint32_t i = 1; i < c->ndeps; i++)
		if (memcmp(change_dep(c, i - 1), change_dep(c, i), 32) >= 0) {
			samen_error_set(SAMEN_EDECODE, "malformed change: deps are not sorted and unique");
			goto fail;
		}
	for (uint32_t i = 1; i < c->ndevs; i++)
		if (memcmp(change_dev(c, i - 1), change_dev(c, i), 32) >= 0) {
			samen_error_set(SAMEN_EDECODE, "malformed change: devs are not sorted and unique");
			goto fail;
		}
	for (uint32_t i = 0; i < c->ndeps; i++)
		if (c->has_prev && memcmp(change_dep(c, i), c->prev, 32) == 0) {
			samen_error_set(SAMEN_EDECODE, "malformed change: prev is repeated in deps");
			goto fail;
		}
	for (uint32_t i = 0; i < c->ndevs; i++)
		if (memcmp(change_dev(c, i), c->author, 32) == 0) {
			samen_error_set(SAMEN_EDECODE, "malformed change: the author is listed in devs");
			goto fail;
		}
	return 0;
fail:
	change_clear(c);
	return SAMEN_EDECODE;
}

void change_clear(samen_change *c)
{
	if (!c)
		return;
	free(c->ops);
	memset(c, 0, sizeof(*c));
}

const uint8_t *change_ref_key(const samen_change *c, uint32_t dev)
{
	return dev == 0 ? c->author : change_dev(c, dev - 1);
}

void change_id(uint8_t id[32], const uint8_t *buf, size_t len)
{
	crypto_generichash(id, 32, buf, len, NULL, 0);
}

void change_plan_id(uint8_t out[16], const uint8_t author[32], const uint8_t nonce[16])
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, 16);
	crypto_generichash_update(&st, (const uint8_t *)"samen plan", 10);
	crypto_generichash_update(&st, author, 32);
	crypto_generichash_update(&st, nonce, 16);
	crypto_generichash_final(&st, out, 16);
}

/* The signed message is the domain prefix followed by the change bytes, so a
 * signature made for anything else can never verify as a change. */
int change_sign(uint8_t sig[64], const uint8_t *buf, size_t len, const uint8_t secret[64])
{
	/* Plain Ed25519 needs the message in one piece, so build it (changes
	 * are capped at 4 MiB). */
	uint8_t *msg = malloc(SAMEN_SIG_DOMAIN_LEN + len);
	if (!msg)
		return samen_error_set(SAMEN_ENOMEM, "out of memory signing a change");
	memcpy(msg, SAMEN_SIG_DOMAIN, SAMEN_SIG_DOMAIN_LEN);
	memcpy(msg + SAMEN_SIG_DOMAIN_LEN, buf, len);
	crypto_sign_detached(sig, NULL, msg, SAMEN_SIG_DOMAIN_LEN + len, secret);
	free(msg);
	return 0;
}

int change_verify(const uint8_t sig[64], const uint8_t *buf, size_t len, const uint8_t author[32])
{
	uint8_t *msg;
	int ok;
	if (len > SAMEN_MAX_CHANGE_BYTES)
		return samen_error_set(SAMEN_EDECODE, "change too large to verify");
	msg = malloc(SAMEN_SIG_DOMAIN_LEN + len);
	if (!msg)
		return samen_error_set(SAMEN_ENOMEM, "out of memory verifying a change");
	memcpy(msg, SAMEN_SIG_DOMAIN, SAMEN_SIG_DOMAIN_LEN);
	memcpy(msg + SAMEN_SIG_DOMAIN_LEN, buf, len);
	ok = crypto_sign_verify_detached(sig, msg, SAMEN_SIG_DOMAIN_LEN + len, author) == 0;
	free(msg);
	return ok ? 0 : SAMEN_ESIG;
}

/* --- builder ---------------------------------------------------------------- */

/* Ops are kept with device references as indices into b->keys (0 = author,
 * i > 0 = keys[i-1] in the order first seen); finish() sorts the keys, as the
 * format requires, and maps each index to its final position. */
typedef struct {
	samen_op op;
	uint8_t *value;      /* owned copy, SET only */
	bool value_is_ref;   /* [dev, n] */
	bool value_is_refs;  /* [[dev, n], ...]: nrefs in refdevs/refns */
	uint32_t refdev;
	uint64_t refn;
	uint32_t *refdevs;
	uint64_t *refns;
	uint32_t nrefs;
	char *str, *str2;
	uint8_t key[32];
	uint8_t key2[32];    /* LINK: the device */
} builder_op;

struct change_builder {
	builder_op *ops;
	uint32_t nops, cap;
	uint8_t (*keys)[32];
	uint32_t nkeys, keycap;
};

int change_builder_new(change_builder **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : samen_error_set(SAMEN_ENOMEM, "out of memory");
}

void change_builder_free(change_builder *b)
{
	if (!b)
		return;
	for (uint32_t i = 0; i < b->nops; i++) {
		free(b->ops[i].value);
		free(b->ops[i].refdevs);
		free(b->ops[i].refns);
		free(b->ops[i].str);
		free(b->ops[i].str2);
	}
	free(b->ops);
	free(b->keys);
	free(b);
}

uint32_t change_builder_nops(const change_builder *b) { return b->nops; }

uint32_t change_builder_dev(change_builder *b, const uint8_t key[32])
{
	for (uint32_t i = 0; i < b->nkeys; i++)
		if (memcmp(b->keys[i], key, 32) == 0)
			return i + 1;
	if (b->nkeys == b->keycap) {
		uint32_t nc = b->keycap ? b->keycap * 2 : 4;
		void *p = realloc(b->keys, nc * sizeof(*b->keys));
		if (!p)
			return UINT32_MAX;
		b->keys = p;
		b->keycap = nc;
	}
	memcpy(b->keys[b->nkeys++], key, 32);
	return b->nkeys;
}

static builder_op *push_op(change_builder *b, uint8_t kind)
{
	if (b->nops >= SAMEN_MAX_OPS_PER_CHANGE) {
		samen_error_set(SAMEN_ELIMIT, "a change holds at most %u ops", SAMEN_MAX_OPS_PER_CHANGE);
		return NULL;
	}
	if (b->nops == b->cap) {
		uint32_t nc = b->cap ? b->cap * 2 : 16;
		void *p = realloc(b->ops, nc * sizeof(*b->ops));
		if (!p) {
			samen_error_set(SAMEN_ENOMEM, "out of memory");
			return NULL;
		}
		b->ops = p;
		b->cap = nc;
	}
	builder_op *o = &b->ops[b->nops++];
	memset(o, 0, sizeof(*o));
	o->op.kind = kind;
	return o;
}

int change_builder_create(change_builder *b, uint32_t type)
{
	builder_op *o = push_op(b, SAMEN_OP_CREATE);
	if (!o)
		return SAMEN_ENOMEM;
	o->op.type = type;
	return 0;
}

int change_builder_set(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                       const uint8_t *value, size_t value_len)
{
	builder_op *o;
	if (value_len > SAMEN_MAX_VALUE_BYTES)
		return samen_error_set(SAMEN_EINVAL, "value longer than %u bytes", SAMEN_MAX_VALUE_BYTES);
	if (!(o = push_op(b, SAMEN_OP_SET)))
		return SAMEN_ENOMEM;
	o->op.type = type;
	o->op.dev = dev;
	o->op.n = n;
	o->op.field = field;
	o->value = malloc(value_len ? value_len : 1);
	if (!o->value) {
		b->nops--;
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	memcpy(o->value, value, value_len);
	o->op.value_len = (uint32_t)value_len;
	return 0;
}

int change_builder_set_ref(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                           uint32_t refdev, uint64_t refn)
{
	builder_op *o = push_op(b, SAMEN_OP_SET);
	if (!o)
		return SAMEN_ENOMEM;
	o->op.type = type;
	o->op.dev = dev;
	o->op.n = n;
	o->op.field = field;
	o->value_is_ref = true;
	o->refdev = refdev;
	o->refn = refn;
	return 0;
}

int change_builder_set_refs(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                            const uint32_t *refdevs, const uint64_t *refns, uint32_t count)
{
	builder_op *o = push_op(b, SAMEN_OP_SET);
	if (!o)
		return SAMEN_ENOMEM;
	o->op.type = type;
	o->op.dev = dev;
	o->op.n = n;
	o->op.field = field;
	o->value_is_refs = true;
	o->refdevs = malloc((count ? count : 1) * sizeof(*o->refdevs));
	o->refns = malloc((count ? count : 1) * sizeof(*o->refns));
	if (!o->refdevs || !o->refns) {
		free(o->refdevs);
		free(o->refns);
		b->nops--;
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	if (count) {
		memcpy(o->refdevs, refdevs, count * sizeof(*refdevs));
		memcpy(o->refns, refns, count * sizeof(*refns));
	}
	o->nrefs = count;
	return 0;
}

int change_builder_delete(change_builder *b, uint32_t type, uint32_t dev, uint64_t n)
{
	builder_op *o = push_op(b, SAMEN_OP_DELETE);
	if (!o)
		return SAMEN_ENOMEM;
	o->op.type = type;
	o->op.dev = dev;
	o->op.n = n;
	return 0;
}

int change_builder_plan(change_builder *b, const uint8_t nonce[16], const char *client, const char *lang)
{
	builder_op *o = push_op(b, SAMEN_OP_PLAN);
	if (!o)
		return SAMEN_ENOMEM;
	memcpy(o->key, nonce, 16);
	o->str = strdup(client);
	o->str2 = strdup(lang);
	if (!o->str || !o->str2)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	return 0;
}

int change_builder_member_add(change_builder *b, const uint8_t key[32], const char *name, uint64_t role)
{
	builder_op *o = push_op(b, SAMEN_OP_MEMBER_ADD);
	if (!o)
		return SAMEN_ENOMEM;
	memcpy(o->key, key, 32);
	o->str = strdup(name);
	o->op.role = role;
	if (!o->str)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	return 0;
}

static builder_op *push_keyed(change_builder *b, uint8_t kind, const uint8_t key[32])
{
	builder_op *o = push_op(b, kind);
	if (o)
		memcpy(o->key, key, 32);
	return o;
}

int change_builder_revoke(change_builder *b, const uint8_t member[32])
{
	return push_keyed(b, SAMEN_OP_REVOKE, member) ? 0 : SAMEN_ENOMEM;
}

int change_builder_unlink(change_builder *b, const uint8_t device[32])
{
	return push_keyed(b, SAMEN_OP_UNLINK, device) ? 0 : SAMEN_ENOMEM;
}

int change_builder_link(change_builder *b, const uint8_t member[32], const uint8_t device[32])
{
	builder_op *o = push_keyed(b, SAMEN_OP_LINK, member);
	if (!o)
		return SAMEN_ENOMEM;
	memcpy(o->key2, device, 32);
	return 0;
}

int change_builder_approve(change_builder *b, const uint8_t change[32], bool consent)
{
	builder_op *o = push_keyed(b, SAMEN_OP_APPROVE, change);
	if (!o)
		return SAMEN_ENOMEM;
	o->op.role = consent ? 1 : 0;
	return 0;
}

int change_builder_scope(change_builder *b, const uint8_t member[32], const uint32_t *refdevs, const uint64_t *refns,
                         uint32_t count)
{
	builder_op *o;
	if (count > SAMEN_MAX_REFS)
		return samen_error_set(SAMEN_ELIMIT, "a scope holds at most %u life areas", SAMEN_MAX_REFS);
	if (!(o = push_keyed(b, SAMEN_OP_SCOPE, member)))
		return SAMEN_ENOMEM;
	o->value_is_refs = true;
	o->refdevs = malloc((count ? count : 1) * sizeof(*o->refdevs));
	o->refns = malloc((count ? count : 1) * sizeof(*o->refns));
	if (!o->refdevs || !o->refns)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if (count) {
		memcpy(o->refdevs, refdevs, count * sizeof(*refdevs));
		memcpy(o->refns, refns, count * sizeof(*refns));
	}
	o->nrefs = count;
	return 0;
}

/* Scope areas are a set: sorted by final (dev, n), duplicates dropped. */
static int cmp_ref(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return x[1] < y[1] ? -1 : x[1] > y[1];
}

static int pack_scope_areas(msgpack_packer *pk, const builder_op *o, const uint32_t *map)
{
	uint64_t (*refs)[2] = malloc((o->nrefs ? o->nrefs : 1) * sizeof(*refs));
	uint32_t n = 0;
	if (!refs)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	for (uint32_t k = 0; k < o->nrefs; k++) {
		refs[k][0] = o->refdevs[k] ? map[o->refdevs[k] - 1] : 0;
		refs[k][1] = o->refns[k];
	}
	qsort(refs, o->nrefs, sizeof(*refs), cmp_ref);
	for (uint32_t k = 0; k < o->nrefs; k++)
		if (n == 0 || cmp_ref(refs[n - 1], refs[k]) != 0)
			memcpy(refs[n++], refs[k], sizeof(*refs));
	msgpack_pack_array(pk, n);
	for (uint32_t k = 0; k < n; k++) {
		msgpack_pack_array(pk, 2);
		msgpack_pack_uint64(pk, refs[k][0]);
		msgpack_pack_uint64(pk, refs[k][1]);
	}
	free(refs);
	return 0;
}

static int cmp_key32(const void *a, const void *b) { return memcmp(a, b, 32); }

static void pack_bin(msgpack_packer *pk, const uint8_t *b, size_t n)
{
	msgpack_pack_bin(pk, n);
	msgpack_pack_bin_body(pk, b, n);
}

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

int change_builder_finish(change_builder *b, const change_header *h, uint8_t **out, size_t *out_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	uint8_t (*sorted)[32] = NULL, (*deps)[32] = NULL;
	uint32_t *map = NULL, ndeps = 0;
	int rc = SAMEN_ENOMEM;

	*out = NULL;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	if (b->nops == 0) {
		rc = samen_error_set(SAMEN_EINVAL, "a change needs at least one op");
		goto cleanup;
	}
	/* devs: sorted; map[i] = final dev index of builder key i+1 */
	sorted = malloc((b->nkeys + 1) * sizeof(*sorted));
	map = malloc((b->nkeys + 1) * sizeof(*map));
	deps = malloc((h->ndeps + 1) * sizeof(*deps));
	if (!sorted || !map || !deps)
		goto cleanup;
	if (b->nkeys)
		memcpy(sorted, b->keys, b->nkeys * sizeof(*sorted));
	qsort(sorted, b->nkeys, 32, cmp_key32);
	for (uint32_t i = 0; i < b->nkeys; i++)
		for (uint32_t j = 0; j < b->nkeys; j++)
			if (memcmp(b->keys[i], sorted[j], 32) == 0)
				map[i] = j + 1;
	for (uint32_t i = 0; i < b->nkeys; i++)
		if (memcmp(b->keys[i], h->author, 32) == 0) {
			rc = samen_error_set(SAMEN_EINVAL, "internal: author used as a foreign device");
			goto cleanup;
		}
	/* deps: sorted, unique, without prev */
	for (uint32_t i = 0; i < h->ndeps; i++) {
		if (h->prev && memcmp(h->deps + 32 * i, h->prev, 32) == 0)
			continue;
		memcpy(deps[ndeps++], h->deps + 32 * i, 32);
	}
	qsort(deps, ndeps, 32, cmp_key32);
	{
		uint32_t w = 0;
		for (uint32_t i = 0; i < ndeps; i++)
			if (w == 0 || memcmp(deps[w - 1], deps[i], 32) != 0)
				memcpy(deps[w++], deps[i], 32);
		ndeps = w;
	}
	if (ndeps > SAMEN_MAX_DEPS) {
		rc = samen_error_set(SAMEN_ELIMIT, "too many concurrent heads (%u) for one change", ndeps);
		goto cleanup;
	}

	msgpack_pack_array(&pk, 11);
	msgpack_pack_uint64(&pk, SAMEN_CHANGE_VERSION);
	pack_bin(&pk, h->plan, 16);
	pack_bin(&pk, h->author, 32);
	pack_str(&pk, h->name, strlen(h->name));
	msgpack_pack_uint64(&pk, h->seq);
	if (h->prev)
		pack_bin(&pk, h->prev, 32);
	else
		msgpack_pack_nil(&pk);
	msgpack_pack_array(&pk, ndeps);
	for (uint32_t i = 0; i < ndeps; i++)
		pack_bin(&pk, deps[i], 32);
	msgpack_pack_uint64(&pk, h->lamport);
	msgpack_pack_int64(&pk, h->time);
	msgpack_pack_array(&pk, b->nkeys);
	for (uint32_t i = 0; i < b->nkeys; i++)
		pack_bin(&pk, sorted[i], 32);
	msgpack_pack_array(&pk, b->nops);
	for (uint32_t i = 0; i < b->nops; i++) {
		builder_op *o = &b->ops[i];
		uint32_t dev = o->op.dev ? map[o->op.dev - 1] : 0;
		switch (o->op.kind) {
		case SAMEN_OP_CREATE:
			msgpack_pack_array(&pk, 2);
			msgpack_pack_uint64(&pk, SAMEN_OP_CREATE);
			msgpack_pack_uint64(&pk, o->op.type);
			break;
		case SAMEN_OP_SET:
			msgpack_pack_array(&pk, 6);
			msgpack_pack_uint64(&pk, SAMEN_OP_SET);
			msgpack_pack_uint64(&pk, o->op.type);
			msgpack_pack_uint64(&pk, dev);
			msgpack_pack_uint64(&pk, o->op.n);
			msgpack_pack_uint64(&pk, o->op.field);
			if (o->value_is_ref) {
				msgpack_pack_array(&pk, 2);
				msgpack_pack_uint64(&pk, o->refdev ? map[o->refdev - 1] : 0);
				msgpack_pack_uint64(&pk, o->refn);
			} else if (o->value_is_refs) {
				msgpack_pack_array(&pk, o->nrefs);
				for (uint32_t k = 0; k < o->nrefs; k++) {
					msgpack_pack_array(&pk, 2);
					msgpack_pack_uint64(&pk, o->refdevs[k] ? map[o->refdevs[k] - 1] : 0);
					msgpack_pack_uint64(&pk, o->refns[k]);
				}
			} else {
				msgpack_sbuffer_write(&sb, (const char *)o->value, o->op.value_len);
			}
			break;
		case SAMEN_OP_DELETE:
			msgpack_pack_array(&pk, 4);
			msgpack_pack_uint64(&pk, SAMEN_OP_DELETE);
			msgpack_pack_uint64(&pk, o->op.type);
			msgpack_pack_uint64(&pk, dev);
			msgpack_pack_uint64(&pk, o->op.n);
			break;
		case SAMEN_OP_PLAN:
			msgpack_pack_array(&pk, 4);
			msgpack_pack_uint64(&pk, SAMEN_OP_PLAN);
			pack_bin(&pk, o->key, 16);
			pack_str(&pk, o->str, strlen(o->str));
			pack_str(&pk, o->str2, strlen(o->str2));
			break;
		case SAMEN_OP_MEMBER_ADD:
			msgpack_pack_array(&pk, 4);
			msgpack_pack_uint64(&pk, SAMEN_OP_MEMBER_ADD);
			pack_bin(&pk, o->key, 32);
			pack_str(&pk, o->str, strlen(o->str));
			msgpack_pack_uint64(&pk, o->op.role);
			break;
		case SAMEN_OP_REVOKE:
		case SAMEN_OP_UNLINK:
			msgpack_pack_array(&pk, 2);
			msgpack_pack_uint64(&pk, o->op.kind);
			pack_bin(&pk, o->key, 32);
			break;
		case SAMEN_OP_LINK:
			msgpack_pack_array(&pk, 3);
			msgpack_pack_uint64(&pk, SAMEN_OP_LINK);
			pack_bin(&pk, o->key, 32);
			pack_bin(&pk, o->key2, 32);
			break;
		case SAMEN_OP_APPROVE:
			msgpack_pack_array(&pk, 3);
			msgpack_pack_uint64(&pk, SAMEN_OP_APPROVE);
			pack_bin(&pk, o->key, 32);
			msgpack_pack_uint64(&pk, o->op.role);
			break;
		case SAMEN_OP_SCOPE:
			msgpack_pack_array(&pk, 3);
			msgpack_pack_uint64(&pk, SAMEN_OP_SCOPE);
			pack_bin(&pk, o->key, 32);
			if ((rc = pack_scope_areas(&pk, o, map)) < 0)
				goto cleanup;
			break;
		}
	}
	if (!sb.data) /* msgpack_sbuffer_write only fails on out of memory */
		goto cleanup;
	if (sb.size > SAMEN_MAX_CHANGE_BYTES) {
		rc = samen_error_set(SAMEN_ELIMIT, "change of %zu bytes exceeds the cap of %u bytes",
		                     sb.size, SAMEN_MAX_CHANGE_BYTES);
		goto cleanup;
	}
	*out = (uint8_t *)sb.data;
	*out_len = sb.size;
	sb.data = NULL;
	rc = 0;
cleanup:
	msgpack_sbuffer_destroy(&sb);
	free(sorted);
	free(map);
	free(deps);
	return rc;
}

/* --- values ------------------------------------------------------------------ */

static int finish_value(msgpack_sbuffer *sb, uint8_t **out, size_t *len)
{
	if (!sb->data)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	*out = (uint8_t *)sb->data;
	*len = sb->size;
	return 0;
}

int value_encode_str(uint8_t **out, size_t *len, const char *s, size_t slen)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_str(&pk, s, slen);
	return finish_value(&sb, out, len);
}

int value_encode_uint(uint8_t **out, size_t *len, uint64_t v)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_uint64(&pk, v);
	return finish_value(&sb, out, len);
}

int value_encode_nil(uint8_t **out, size_t *len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_nil(&pk);
	return finish_value(&sb, out, len);
}
