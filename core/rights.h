/*
 * rights.h - members, roles and rights: the log of accepted rights ops and
 * the fold that answers "who is this device, and what may it do" as seen
 * from one change's causal past.
 *
 * The table of what each role may do is docs/rights.md; replica.c enforces
 * it with the answers given here. Every answer is a function of a version
 * vector (the causal past of the change being judged) over the accepted
 * rights ops, so every replica gives the same answer for the same change.
 *
 * Members are named by a 32-byte member id: the key of the device they were
 * added with (MEMBER_ADD's key). The client is the member whose id is 32 zero
 * bytes (RIGHTS_CLIENT_ID): the plan names them in its genesis, with or
 * without a device of their own.
 */
#ifndef SAMEN_CORE_RIGHTS_H
#define SAMEN_CORE_RIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Roles, from most to least rights; the numbers are wire format. */
#define SAMEN_ROLE_CLIENT 0
#define SAMEN_ROLE_COORDINATOR 1
#define SAMEN_ROLE_PROFESSIONAL 2
#define SAMEN_ROLE_NETWORK 3
#define SAMEN_ROLE_OBSERVER 4
#define SAMEN_ROLE__COUNT 5

/* Rights ops (kinds 4-9) one change may hold: the log is scanned for every
 * change, so it must stay small. */
#define RIGHTS_MAX_OPS_PER_CHANGE 64u

extern const uint8_t RIGHTS_CLIENT_ID[32];

const char *rights_role_name(int role);
const char *rights_role_name_nl(int role);
/* Role by English or Dutch name; -1 when unknown. */
int rights_role_parse(const char *name);

/* One accepted rights op (MEMBER_ADD, REVOKE, SCOPE, LINK, UNLINK, APPROVE),
 * with the facts about its change that the fold needs. */
typedef struct {
	uint8_t kind;
	uint32_t op;              /* index in its change */
	int64_t change;           /* rowid of its change */
	uint8_t change_id[32];
	uint32_t devno;
	uint64_t seq, lamport;
	uint8_t author[32];
	uint8_t author_member[32];/* the author's member in the change's past */
	int author_role;
	uint64_t *vv;             /* the change's version vector (owned) */
	uint32_t vvlen;
	uint8_t key[32];          /* member, device (UNLINK) or change (APPROVE) */
	uint8_t key2[32];         /* LINK: device */
	int role;                 /* MEMBER_ADD: role; APPROVE: consent */
	char *name;               /* MEMBER_ADD: name (owned) */
	uint8_t (*areas)[40];     /* SCOPE: area entities as key || n (LE), sorted (owned) */
	uint32_t nareas;
	bool effective;           /* REVOKE, UNLINK: takes effect (see docs/rights.md on cycles) */
} right_op;

typedef struct {
	right_op *ops;            /* sorted by (lamport, author, op) */
	size_t n, cap;
	bool has_genesis;
	uint8_t creator[32];
	int creator_role;         /* CLIENT or COORDINATOR */
	char *creator_name;
	char *client_name;
} rights_log;

void rights_init(rights_log *L);
void rights_free(rights_log *L);
/* Forget every op (the genesis too). */
void rights_reset(rights_log *L);
/* Insert a copy of op (vv, name and areas are copied); keeps the order. */
int rights_add(rights_log *L, const right_op *op);
int rights_set_genesis(rights_log *L, const uint8_t creator[32], int role, const char *creator_name, size_t cnlen,
                       const char *client, size_t clen);

/* A past: the version vector of a change, or NULL for "everything". */
typedef struct {
	const uint64_t *vv;
	uint32_t vvlen;
	uint32_t self_devno;      /* the change being judged: its own ops are */
	uint64_t self_seq;        /* not its past (they may be in the log early, in a replay) */
} rights_past;

static inline bool rights_in_past(const rights_past *p, uint32_t devno, uint64_t seq)
{
	if (!p || !p->vv)
		return true;
	if (devno == p->self_devno && seq == p->self_seq)
		return false;
	return devno >= 1 && devno <= p->vvlen && p->vv[devno - 1] >= seq;
}

typedef struct {
	bool exists;              /* added (possibly waiting for approval) */
	uint8_t id[32];
	int role;                 /* -1: added as professional, not yet approved */
	int pending_role;         /* role waiting for the client's approval, or -1 */
	bool revoked;
	const char *name;         /* borrowed from the log */
	const uint8_t (*areas)[40];
	uint32_t nareas;
	bool scope_pending;       /* a wider scope waits for approval */
	int64_t added_change;     /* rowid of the change that added them (0: genesis) */
} rights_member;

typedef struct {
	bool known;               /* linked to a member in this past */
	uint8_t member[32];
	bool unlinked;
	int64_t linked_change;    /* rowid (0: genesis) */
	int64_t unlinked_change;
} rights_device;

void rights_member_at(const rights_log *L, const rights_past *p, const uint8_t member[32], rights_member *out);
void rights_device_at(const rights_log *L, const rights_past *p, const uint8_t device[32], rights_device *out);
/* Does the change with this id hold ops that need approval, and has it been
 * approved in past p? */
bool rights_approved(const rights_log *L, const rights_past *p, const uint8_t change_id[32]);
bool rights_needs_approval(const rights_log *L, const uint8_t change_id[32]);
/* An effective REVOKE of member or UNLINK of device that had not seen the
 * change (devno, seq); NULL when none. */
const right_op *rights_killer(const rights_log *L, const uint8_t member[32], const uint8_t device[32],
                              uint32_t devno, uint64_t seq);
/* Has the client an active (linked, not unlinked) device in past p? */
bool rights_client_has_device(const rights_log *L, const rights_past *p);
bool rights_area_in_scope(const rights_member *m, const uint8_t key[32], uint64_t n);

#endif
