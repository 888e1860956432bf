/*
 * change.h - the change: Samen's unit of history, transport and signing.
 *
 * A change is one canonical msgpack array (see docs/format.md):
 *
 *   [ version=1, plan:bin16, author:bin32, name:str, seq:uint, prev:bin32|nil,
 *     deps:[bin32...], lamport:uint, time:int, devs:[bin32...], ops:[op...] ]
 *
 * Invariants checked by change_decode(), so that one change has exactly one
 * encoding and therefore one id:
 *  - every integer, string, binary and array header is in its smallest form;
 *  - prev is nil exactly when seq == 1;
 *  - deps are sorted, unique and never contain prev; devs are sorted,
 *    unique and never the author;
 *  - 1 <= lamport; seq >= 1;
 *  - ops are well formed for their kind (values are checked against the
 *    schema later, by the replica, because a wrongly typed value is a
 *    rejected change, not an undecodable one).
 *
 * Entity references inside ops are (dev, n): dev 0 is the author, dev i > 0
 * is devs[i-1]; n counts the entities that device created, over its whole
 * chain, from 0. So an op needs no 16-byte id, and the creating device is
 * known from the reference alone.
 */
#ifndef SAMEN_CORE_CHANGE_H
#define SAMEN_CORE_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SAMEN_CHANGE_VERSION 1
#define SAMEN_MAX_CHANGE_BYTES (4u << 20)   /* 4 MiB */
#define SAMEN_MAX_OPS_PER_CHANGE 100000u
#define SAMEN_MAX_DEPS 256u
#define SAMEN_MAX_DEVS 256u
#define SAMEN_MAX_NAME 200u
#define SAMEN_MAX_VALUE_BYTES 65536u
#define SAMEN_SIG_DOMAIN "samen change v1\0"
#define SAMEN_SIG_DOMAIN_LEN 16

typedef enum {
	SAMEN_OP_CREATE = 0,      /* [0, type] */
	SAMEN_OP_SET = 1,         /* [1, type, dev, n, field, value] */
	SAMEN_OP_DELETE = 2,      /* [2, type, dev, n] */
	SAMEN_OP_PLAN = 3,        /* [3, nonce:bin16, client:str, lang:str] genesis */
	SAMEN_OP_MEMBER_ADD = 4,  /* [4, key:bin32, name:str, role:uint] (key: the member's id and first device) */
	SAMEN_OP_REVOKE = 5,      /* [5, member:bin32] */
	SAMEN_OP_SCOPE = 6,       /* [6, member:bin32, areas:[[dev, n], ...]] (a professional's life areas) */
	SAMEN_OP_LINK = 7,        /* [7, member:bin32, device:bin32] */
	SAMEN_OP_UNLINK = 8,      /* [8, device:bin32] */
	SAMEN_OP_APPROVE = 9,     /* [9, change:bin32, consent:uint 0|1] */
	SAMEN_OP__COUNT
} samen_op_kind;

typedef struct {
	uint8_t kind;
	uint32_t dev;             /* SET, DELETE: entity reference */
	uint64_t n;
	uint32_t type;            /* CREATE; SET, DELETE: the entity's type (must match) */
	uint32_t field;           /* SET */
	const uint8_t *value;     /* SET: canonical msgpack of the value (borrowed);
	                           * SCOPE: the areas, [[dev, n], ...] */
	uint32_t value_len;
	const uint8_t *key;       /* PLAN: nonce (16); MEMBER_ADD, REVOKE, SCOPE, LINK: member (32);
	                           * UNLINK: device (32); APPROVE: change id (32) */
	const uint8_t *key2;      /* LINK: device (32) */
	const char *str;          /* PLAN: client; MEMBER_ADD: name (borrowed, not NUL-terminated) */
	uint32_t str_len;
	const char *str2;         /* PLAN: language */
	uint32_t str2_len;
	uint64_t role;            /* MEMBER_ADD: role; APPROVE: consent (1: recorded for the client) */
} samen_op;

typedef struct {
	uint8_t plan[16];
	uint8_t author[32];
	const char *name;         /* borrowed from the bytes, not NUL-terminated */
	uint32_t name_len;
	uint64_t seq;
	bool has_prev;
	uint8_t prev[32];
	uint32_t ndeps;
	const uint8_t *deps;      /* raw msgpack bin8 items, use change_dep() */
	uint64_t lamport;
	int64_t time;
	uint32_t ndevs;
	const uint8_t *devs;      /* raw msgpack bin8 items, use change_dev() */
	uint32_t nops;
	samen_op *ops;            /* owned (malloc), free with change_clear() */
	uint32_t ncreates;        /* number of CREATE ops */
} samen_change;

/* Decode and fully validate (see invariants above). Pointers in *c borrow
 * from buf, which must outlive *c. On failure returns SAMEN_EDECODE with the
 * reason in samen_error_last(); nothing is allocated. */
int change_decode(samen_change *c, const uint8_t *buf, size_t len);
void change_clear(samen_change *c);

/* The i-th dep / dev key (32 bytes, borrowed from the change bytes): each is
 * stored as bin8 (0xc4 0x20 + 32 bytes), so they lie 34 bytes apart. */
static inline const uint8_t *change_dep(const samen_change *c, uint32_t i) { return c->deps + 34 * (size_t)i + 2; }
static inline const uint8_t *change_dev(const samen_change *c, uint32_t i) { return c->devs + 34 * (size_t)i + 2; }

/* Author key of entity reference (dev, n) in change c. */
const uint8_t *change_ref_key(const samen_change *c, uint32_t dev);

/* BLAKE2b-256 of the bytes. */
void change_id(uint8_t id[32], const uint8_t *buf, size_t len);

/* Plan id = BLAKE2b-128("samen plan" || creator key || nonce). */
void change_plan_id(uint8_t out[16], const uint8_t author[32], const uint8_t nonce[16]);

/* Ed25519 signature over SAMEN_SIG_DOMAIN || bytes. */
int change_sign(uint8_t sig[64], const uint8_t *buf, size_t len, const uint8_t secret[64]);
int change_verify(const uint8_t sig[64], const uint8_t *buf, size_t len, const uint8_t author[32]);

/* --- building a change (the local author) -------------------------------- */

typedef struct change_builder change_builder;

int change_builder_new(change_builder **out);
void change_builder_free(change_builder *b);
/* Reference to an entity created by device key, entity counter n; returns the
 * dev index to use in ops (0 = author), adding key to devs as needed.
 * Indices are provisional until change_builder_finish() sorts devs. */
uint32_t change_builder_dev(change_builder *b, const uint8_t key[32]);
int change_builder_create(change_builder *b, uint32_t type);
/* Ops name the entity's type too, so that a change can be read (and
 * summarised) without the replica. value: canonical msgpack (copied). */
int change_builder_set(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                       const uint8_t *value, size_t value_len);
/* A value that references entity (refdev, refn); encoded as [dev, n]. */
int change_builder_set_ref(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                           uint32_t refdev, uint64_t refn);
/* A value that lists count entities; encoded as [[dev, n], ...]. */
int change_builder_set_refs(change_builder *b, uint32_t type, uint32_t dev, uint64_t n, uint32_t field,
                            const uint32_t *refdevs, const uint64_t *refns, uint32_t count);
int change_builder_delete(change_builder *b, uint32_t type, uint32_t dev, uint64_t n);
int change_builder_plan(change_builder *b, const uint8_t nonce[16], const char *client, const char *lang);
int change_builder_member_add(change_builder *b, const uint8_t key[32], const char *name, uint64_t role);
int change_builder_revoke(change_builder *b, const uint8_t member[32]);
/* areas: count area entities (refdevs from change_builder_dev(), as for
 * change_builder_set_refs); sorted and deduplicated here. */
int change_builder_scope(change_builder *b, const uint8_t member[32], const uint32_t *refdevs, const uint64_t *refns,
                         uint32_t count);
int change_builder_link(change_builder *b, const uint8_t member[32], const uint8_t device[32]);
int change_builder_unlink(change_builder *b, const uint8_t device[32]);
int change_builder_approve(change_builder *b, const uint8_t change[32], bool consent);
uint32_t change_builder_nops(const change_builder *b);

typedef struct {
	const uint8_t *plan;      /* 16 */
	const uint8_t *author;    /* 32 */
	const char *name;
	uint64_t seq;
	const uint8_t *prev;      /* 32 or NULL when seq == 1 */
	const uint8_t *deps;      /* ndeps * 32, any order; sorted and deduplicated here */
	uint32_t ndeps;
	uint64_t lamport;
	int64_t time;
} change_header;

/* Encode to canonical bytes (malloc'ed into *out). */
int change_builder_finish(change_builder *b, const change_header *h, uint8_t **out, size_t *out_len);

/* Encoding of values (canonical msgpack), used by the schema and the CLI. */
int value_encode_str(uint8_t **out, size_t *len, const char *s, size_t slen);
int value_encode_uint(uint8_t **out, size_t *len, uint64_t v);
int value_encode_nil(uint8_t **out, size_t *len);

#endif
