/*
 * rights.c - the fold over accepted rights ops (see rights.h and
 * docs/rights.md).
 *
 * The log is small (one entry per grant, revocation, scope, link, unlink
 * and approval), so every question is answered by one scan of it; nothing
 * is cached between questions, so no answer can depend on the order in
 * which the ops arrived.
 */
#include "core/rights.h"
#include "core/change.h"
#include "samen/common.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

const uint8_t RIGHTS_CLIENT_ID[32];

static const char *const role_en[SAMEN_ROLE__COUNT] = {"client", "coordinator", "professional", "network",
                                                        "observer"};
static const char *const role_nl[SAMEN_ROLE__COUNT] = {"klant", "coördinator", "professional", "netwerklid",
                                                        "waarnemer"};

const char *rights_role_name(int role)
{
	return role >= 0 && role < SAMEN_ROLE__COUNT ? role_en[role] : "none";
}

const char *rights_role_name_nl(int role)
{
	return role >= 0 && role < SAMEN_ROLE__COUNT ? role_nl[role] : "geen";
}

int rights_role_parse(const char *name)
{
	for (int i = 0; i < SAMEN_ROLE__COUNT; i++)
		if (strcasecmp(name, role_en[i]) == 0 || strcasecmp(name, role_nl[i]) == 0)
			return i;
	if (strcasecmp(name, "vip") == 0 || strcasecmp(name, "coordinator") == 0 || strcasecmp(name, "coördinator") == 0)
		return strcasecmp(name, "vip") == 0 ? SAMEN_ROLE_NETWORK : SAMEN_ROLE_COORDINATOR;
	return -1;
}

void rights_init(rights_log *L)
{
	memset(L, 0, sizeof(*L));
}

static void op_free(right_op *o)
{
	free(o->vv);
	free(o->name);
	free(o->areas);
}

void rights_reset(rights_log *L)
{
	for (size_t i = 0; i < L->n; i++)
		op_free(&L->ops[i]);
	L->n = 0;
	L->has_genesis = false;
	free(L->creator_name);
	free(L->client_name);
	L->creator_name = L->client_name = NULL;
}

void rights_free(rights_log *L)
{
	rights_reset(L);
	free(L->ops);
	memset(L, 0, sizeof(*L));
}

static char *dupn(const char *s, size_t n)
{
	char *d = malloc(n + 1);
	if (d) {
		memcpy(d, s, n);
		d[n] = 0;
	}
	return d;
}

int rights_set_genesis(rights_log *L, const uint8_t creator[32], int role, const char *creator_name, size_t cnlen,
                       const char *client, size_t clen)
{
	free(L->creator_name);
	free(L->client_name);
	L->creator_name = dupn(creator_name, cnlen);
	L->client_name = dupn(client, clen);
	if (!L->creator_name || !L->client_name)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	memcpy(L->creator, creator, 32);
	L->creator_role = role;
	L->has_genesis = true;
	return 0;
}

/* (lamport, author, op): extends the causal order, the same everywhere. */
static int op_cmp(const right_op *a, const right_op *b)
{
	int c;
	if (a->lamport != b->lamport)
		return a->lamport < b->lamport ? -1 : 1;
	if ((c = memcmp(a->author, b->author, 32)) != 0)
		return c;
	return a->op < b->op ? -1 : a->op > b->op;
}

int rights_add(rights_log *L, const right_op *op)
{
	right_op o = *op;
	size_t pos;
	o.vv = NULL;
	o.name = NULL;
	o.areas = NULL;
	if (L->n == L->cap) {
		size_t nc = L->cap ? L->cap * 2 : 16;
		void *p = realloc(L->ops, nc * sizeof(*L->ops));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		L->ops = p;
		L->cap = nc;
	}
	o.vv = malloc((op->vvlen ? op->vvlen : 1) * sizeof(uint64_t));
	if (o.vv && op->vvlen)
		memcpy(o.vv, op->vv, op->vvlen * sizeof(uint64_t));
	if (op->name)
		o.name = dupn(op->name, strlen(op->name));
	if (op->nareas) {
		o.areas = malloc(op->nareas * sizeof(*o.areas));
		if (o.areas)
			memcpy(o.areas, op->areas, op->nareas * sizeof(*o.areas));
	}
	if (!o.vv || (op->name && !o.name) || (op->nareas && !o.areas)) {
		op_free(&o);
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	for (pos = L->n; pos > 0 && op_cmp(&L->ops[pos - 1], &o) > 0; pos--)
		;
	memmove(&L->ops[pos + 1], &L->ops[pos], (L->n - pos) * sizeof(*L->ops));
	L->ops[pos] = o;
	L->n++;
	return 0;
}

static bool in_past(const rights_past *p, const right_op *o)
{
	return rights_in_past(p, o->devno, o->seq);
}

bool rights_approved(const rights_log *L, const rights_past *p, const uint8_t change_id[32])
{
	for (size_t i = 0; i < L->n; i++)
		if (L->ops[i].kind == SAMEN_OP_APPROVE && memcmp(L->ops[i].key, change_id, 32) == 0 &&
		    in_past(p, &L->ops[i]))
			return true;
	return false;
}

bool rights_needs_approval(const rights_log *L, const uint8_t change_id[32])
{
	for (size_t i = 0; i < L->n; i++) {
		const right_op *o = &L->ops[i];
		if (memcmp(o->change_id, change_id, 32) != 0 || o->author_role == SAMEN_ROLE_CLIENT)
			continue;
		if ((o->kind == SAMEN_OP_MEMBER_ADD && o->role == SAMEN_ROLE_PROFESSIONAL) || o->kind == SAMEN_OP_SCOPE)
			return true;
	}
	return false;
}

static bool areas_subset(const uint8_t (*a)[40], uint32_t na, const uint8_t (*b)[40], uint32_t nb)
{
	for (uint32_t i = 0; i < na; i++) {
		bool found = false;
		for (uint32_t k = 0; k < nb && !found; k++)
			found = memcmp(a[i], b[k], 40) == 0;
		if (!found)
			return false;
	}
	return true;
}

bool rights_area_in_scope(const rights_member *m, const uint8_t key[32], uint64_t n)
{
	uint8_t want[40];
	memcpy(want, key, 32);
	for (int k = 0; k < 8; k++)
		want[32 + k] = (uint8_t)(n >> (8 * k));
	return areas_subset((const uint8_t (*)[40])want, 1, m->areas, m->nareas);
}

void rights_member_at(const rights_log *L, const rights_past *p, const uint8_t member[32], rights_member *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->id, member, 32);
	out->role = out->pending_role = -1;
	if (L->has_genesis) {
		if (memcmp(member, RIGHTS_CLIENT_ID, 32) == 0) {
			out->exists = true;
			out->role = SAMEN_ROLE_CLIENT;
			out->name = L->client_name;
		} else if (L->creator_role != SAMEN_ROLE_CLIENT && memcmp(member, L->creator, 32) == 0) {
			out->exists = true;
			out->role = L->creator_role;
			out->name = L->creator_name;
		}
	}
	for (size_t i = 0; i < L->n; i++) {
		const right_op *o = &L->ops[i];
		if (memcmp(o->key, member, 32) != 0 || !in_past(p, o))
			continue;
		switch (o->kind) {
		case SAMEN_OP_MEMBER_ADD:
			if (!out->exists)
				out->added_change = o->change;
			out->exists = true;
			out->name = o->name;
			if (o->role == SAMEN_ROLE_PROFESSIONAL && o->author_role != SAMEN_ROLE_CLIENT &&
			    !rights_approved(L, p, o->change_id)) {
				out->pending_role = o->role;
			} else {
				out->role = o->role;
				out->pending_role = -1;
			}
			break;
		case SAMEN_OP_REVOKE:
			out->revoked = true;
			break;
		case SAMEN_OP_SCOPE:
			/* the client's own word, an approved one, or a narrower one */
			if (o->author_role == SAMEN_ROLE_CLIENT || rights_approved(L, p, o->change_id) ||
			    areas_subset((const uint8_t (*)[40])o->areas, o->nareas, out->areas, out->nareas)) {
				out->areas = (const uint8_t (*)[40])o->areas;
				out->nareas = o->nareas;
				out->scope_pending = false;
			} else {
				out->scope_pending = true;
			}
			break;
		}
	}
}

void rights_device_at(const rights_log *L, const rights_past *p, const uint8_t device[32], rights_device *out)
{
	memset(out, 0, sizeof(*out));
	if (L->has_genesis && memcmp(device, L->creator, 32) == 0) {
		out->known = true;
		memcpy(out->member, L->creator_role == SAMEN_ROLE_CLIENT ? RIGHTS_CLIENT_ID : L->creator, 32);
	}
	for (size_t i = 0; i < L->n; i++) {
		const right_op *o = &L->ops[i];
		if (!in_past(p, o))
			continue;
		if (!out->known && ((o->kind == SAMEN_OP_MEMBER_ADD && memcmp(o->key, device, 32) == 0) ||
		                    (o->kind == SAMEN_OP_LINK && memcmp(o->key2, device, 32) == 0))) {
			out->known = true;
			memcpy(out->member, o->key, 32);
			out->linked_change = o->change;
		} else if (o->kind == SAMEN_OP_UNLINK && memcmp(o->key, device, 32) == 0 && !out->unlinked) {
			out->unlinked = true;
			out->unlinked_change = o->change;
		}
	}
}

const right_op *rights_killer(const rights_log *L, const uint8_t member[32], const uint8_t device[32],
                              uint32_t devno, uint64_t seq)
{
	for (size_t i = 0; i < L->n; i++) {
		const right_op *o = &L->ops[i];
		if (!o->effective)
			continue;
		if (!((o->kind == SAMEN_OP_REVOKE && member && memcmp(o->key, member, 32) == 0) ||
		      (o->kind == SAMEN_OP_UNLINK && memcmp(o->key, device, 32) == 0)))
			continue;
		if (!(devno >= 1 && devno <= o->vvlen && o->vv[devno - 1] >= seq))
			return o;
	}
	return NULL;
}

bool rights_client_has_device(const rights_log *L, const rights_past *p)
{
	rights_device d;
	if (L->has_genesis && L->creator_role == SAMEN_ROLE_CLIENT) {
		rights_device_at(L, p, L->creator, &d);
		if (!d.unlinked)
			return true;
	}
	for (size_t i = 0; i < L->n; i++) {
		const right_op *o = &L->ops[i];
		if (o->kind != SAMEN_OP_LINK || memcmp(o->key, RIGHTS_CLIENT_ID, 32) != 0 || !in_past(p, o))
			continue;
		rights_device_at(L, p, o->key2, &d);
		if (d.known && !d.unlinked && memcmp(d.member, RIGHTS_CLIENT_ID, 32) == 0)
			return true;
	}
	return false;
}
