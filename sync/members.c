/*
 * members.c - members, roles, devices and approvals (include/samen/members.h).
 *
 * Reads fold the accepted rights ops (core/rights.c) as this replica knows
 * them now; writes add ops to an edit session, and every replica judges
 * them from the change's causal past (core/replica.c, docs/rights.md).
 */
#include "sync/internal.h"
#include "core/mpread.h"
#include "core/rights.h"
#include "core/schema.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_key(uint8_t key[32], const char *hex)
{
	if (!hex || strlen(hex) != 64 || sodium_hex2bin(key, 32, hex, 64, NULL, NULL, NULL) != 0)
		return samen_error_set(SAMEN_EINVAL, "a device key is 64 hex digits (see `samen id` on that device); got '%s'",
		                       hex ? hex : "");
	return 0;
}

static bool hex_prefix_of(const char *what, const uint8_t key[32])
{
	char hex[65];
	size_t n = strlen(what);
	if (n < 4 || n > 64)
		return false;
	sodium_bin2hex(hex, sizeof(hex), key, 32);
	return strncasecmp(hex, what, n) == 0;
}

/* Every member id the log knows, the client first, each once. */
static size_t member_ids(const rights_log *L, uint8_t (**out)[32])
{
	uint8_t (*ids)[32] = malloc((L->n + 2) * sizeof(*ids));
	size_t n = 0;
	*out = ids;
	if (!ids)
		return 0;
	memcpy(ids[n++], RIGHTS_CLIENT_ID, 32);
	if (L->has_genesis && L->creator_role != SAMEN_ROLE_CLIENT)
		memcpy(ids[n++], L->creator, 32);
	for (size_t i = 0; i < L->n; i++) {
		bool seen = false;
		if (L->ops[i].kind != SAMEN_OP_MEMBER_ADD)
			continue;
		for (size_t k = 0; k < n && !seen; k++)
			seen = memcmp(ids[k], L->ops[i].key, 32) == 0;
		if (!seen)
			memcpy(ids[n++], L->ops[i].key, 32);
	}
	return n;
}

/* Every device key the log knows, each once. */
static size_t device_keys(const rights_log *L, uint8_t (**out)[32])
{
	uint8_t (*keys)[32] = malloc((L->n + 1) * sizeof(*keys));
	size_t n = 0;
	*out = keys;
	if (!keys)
		return 0;
	if (L->has_genesis)
		memcpy(keys[n++], L->creator, 32);
	for (size_t i = 0; i < L->n; i++) {
		const uint8_t *k = L->ops[i].kind == SAMEN_OP_MEMBER_ADD ? L->ops[i].key
		                   : L->ops[i].kind == SAMEN_OP_LINK     ? L->ops[i].key2
		                                                         : NULL;
		bool seen = false;
		if (!k)
			continue;
		for (size_t j = 0; j < n && !seen; j++)
			seen = memcmp(keys[j], k, 32) == 0;
		if (!seen)
			memcpy(keys[n++], k, 32);
	}
	return n;
}

/* The member that what names (see members.h). */
static int resolve_member(const rights_log *L, const char *what, uint8_t id[32])
{
	uint8_t (*ids)[32] = NULL, (*devs)[32] = NULL;
	size_t nids, ndevs, found = 0;
	if (!what || !*what)
		return samen_error_set(SAMEN_EINVAL, "name a member (name, id prefix or device prefix)");
	if (strcasecmp(what, "client") == 0 || strcasecmp(what, "klant") == 0) {
		memcpy(id, RIGHTS_CLIENT_ID, 32);
		return 0;
	}
	nids = member_ids(L, &ids);
	ndevs = device_keys(L, &devs);
	if (!ids || !devs) {
		free(ids);
		free(devs);
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < nids; i++) {
		rights_member m;
		bool match;
		rights_member_at(L, NULL, ids[i], &m);
		match = (m.name && strcasecmp(m.name, what) == 0) || hex_prefix_of(what, ids[i]);
		for (size_t k = 0; k < ndevs && !match; k++) {
			rights_device d;
			rights_device_at(L, NULL, devs[k], &d);
			match = d.known && memcmp(d.member, ids[i], 32) == 0 && hex_prefix_of(what, devs[k]);
		}
		if (match && found++ == 0)
			memcpy(id, ids[i], 32);
	}
	free(ids);
	free(devs);
	/* a full id names a member this session may be adding right now */
	if (found == 0 && strlen(what) == 64 && sodium_hex2bin(id, 32, what, 64, NULL, NULL, NULL) == 0)
		return 0;
	if (found == 0)
		return samen_error_set(SAMEN_ENOTFOUND, "no member '%s' in this plan (see samen member list)", what);
	if (found > 1)
		return samen_error_set(SAMEN_EAMBIGUOUS, "'%s' names more than one member; give more of their id", what);
	return 0;
}

static int with_rights(samen_plan *p, rights_log *L)
{
	return replica_rights_load(p->rep, L);
}

int samen_edit_member_add_role(samen_edit *e, const char *keyhex, const char *name, const char *role)
{
	uint8_t key[32];
	int r = role ? rights_role_parse(role) : SAMEN_ROLE_NETWORK;
	int rc;
	if ((rc = parse_key(key, keyhex)) < 0)
		return rc;
	if (!name || !*name || strlen(name) > SAMEN_MAX_NAME || !mpr_utf8_valid(name, strlen(name)) ||
	    !schema_text_printable(name, strlen(name), 0))
		return samen_error_set(SAMEN_EINVAL, "a member needs a one-line name of at most %u bytes, without control characters",
		                       SAMEN_MAX_NAME);
	if (r < 0)
		return samen_error_set(SAMEN_EINVAL, "unknown role '%s' (coordinator, professional, network, observer)", role);
	if (r == SAMEN_ROLE_CLIENT)
		return samen_error_set(SAMEN_EINVAL, "the plan already names its client; link the client's device with"
		                       " samen device link client KEY");
	return change_builder_member_add(edit_builder(e), key, name, (uint64_t)r);
}

int samen_edit_member_revoke(samen_edit *e, const char *member)
{
	rights_log L;
	uint8_t id[32];
	int rc;
	if ((rc = with_rights(edit_plan(e), &L)) < 0)
		return rc;
	rc = resolve_member(&L, member, id);
	rights_free(&L);
	if (rc == 0 && memcmp(id, RIGHTS_CLIENT_ID, 32) == 0)
		rc = samen_error_set(SAMEN_EINVAL, "the client cannot be removed from their own plan");
	return rc < 0 ? rc : change_builder_revoke(edit_builder(e), id);
}

int samen_edit_member_scope(samen_edit *e, const char *member, const char *const *areas, size_t nareas)
{
	samen_plan *p = edit_plan(e);
	rights_log L;
	uint8_t id[32];
	uint32_t *devs = NULL;
	uint64_t *ns = NULL;
	int rc;
	if (nareas > SAMEN_MAX_REFS)
		return samen_error_set(SAMEN_ELIMIT, "a scope holds at most %u life areas", SAMEN_MAX_REFS);
	if ((rc = with_rights(p, &L)) < 0)
		return rc;
	rc = resolve_member(&L, member, id);
	rights_free(&L);
	if (rc < 0)
		return rc;
	devs = calloc(nareas + 1, sizeof(*devs));
	ns = calloc(nareas + 1, sizeof(*ns));
	if (!devs || !ns) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < nareas; i++) {
		replica_entity ent;
		if ((rc = replica_find_entity(p->rep, SAMEN_TYPE_AREA, areas[i], &ent)) < 0)
			goto cleanup;
		if (ent.deleted) {
			rc = samen_error_set(SAMEN_EINVAL, "life area '%s' was deleted", areas[i]);
			goto cleanup;
		}
		devs[i] = memcmp(ent.key, p->store->pk, 32) == 0 ? 0 : change_builder_dev(edit_builder(e), ent.key);
		ns[i] = ent.n;
	}
	rc = change_builder_scope(edit_builder(e), id, devs, ns, (uint32_t)nareas);
cleanup:
	free(devs);
	free(ns);
	return rc;
}

int samen_edit_member_approve(samen_edit *e, const char *member, int consent)
{
	rights_log L;
	uint8_t id[32], change[32];
	bool found = false;
	int rc;
	if ((rc = with_rights(edit_plan(e), &L)) < 0)
		return rc;
	if ((rc = resolve_member(&L, member, id)) < 0)
		goto cleanup;
	for (size_t i = 0; i < L.n; i++) {
		const right_op *o = &L.ops[i];
		if (memcmp(o->key, id, 32) != 0 || o->author_role == SAMEN_ROLE_CLIENT ||
		    !((o->kind == SAMEN_OP_MEMBER_ADD && o->role == SAMEN_ROLE_PROFESSIONAL) || o->kind == SAMEN_OP_SCOPE) ||
		    rights_approved(&L, NULL, o->change_id))
			continue;
		memcpy(change, o->change_id, 32); /* the newest one that waits */
		found = true;
	}
	if (!found)
		rc = samen_error_set(SAMEN_ENOTFOUND, "nothing about member '%s' waits for the client's approval", member);
	else
		rc = change_builder_approve(edit_builder(e), change, consent != 0);
cleanup:
	rights_free(&L);
	return rc;
}

int samen_edit_device_link(samen_edit *e, const char *member, const char *keyhex)
{
	rights_log L;
	uint8_t id[32], key[32];
	int rc;
	if ((rc = parse_key(key, keyhex)) < 0 || (rc = with_rights(edit_plan(e), &L)) < 0)
		return rc;
	rc = resolve_member(&L, member, id);
	rights_free(&L);
	return rc < 0 ? rc : change_builder_link(edit_builder(e), id, key);
}

int samen_edit_device_unlink(samen_edit *e, const char *device)
{
	rights_log L;
	uint8_t (*keys)[32] = NULL, key[32];
	size_t n, found = 0;
	int rc;
	if ((rc = with_rights(edit_plan(e), &L)) < 0)
		return rc;
	n = device_keys(&L, &keys);
	for (size_t i = 0; keys && i < n; i++)
		if (hex_prefix_of(device ? device : "", keys[i]) && found++ == 0)
			memcpy(key, keys[i], 32);
	free(keys);
	rights_free(&L);
	if (found == 0)
		return samen_error_set(SAMEN_ENOTFOUND, "no device '%s' is linked to this plan (see samen device list)",
		                       device ? device : "");
	if (found > 1)
		return samen_error_set(SAMEN_EAMBIGUOUS, "'%s' names more than one device; give more digits", device);
	return change_builder_unlink(edit_builder(e), key);
}

/* --- reading ----------------------------------------------------------------- */

static void change_facts(samen_plan *p, int64_t rowid, char id[65], int64_t *time)
{
	sqlite3_stmt *s = NULL;
	id[0] = 0;
	*time = 0;
	if (sqlite3_prepare_v2(replica_db(p->rep), rowid ? "SELECT id, time FROM changes WHERE rowid = ?"
	                                                 : "SELECT id, time FROM changes WHERE seq = 1 AND devno ="
	                                                   " (SELECT devno FROM devs WHERE key ="
	                                                   " (SELECT value FROM meta WHERE key = 'creator'))",
	                       -1, &s, NULL) != SQLITE_OK)
		return;
	if (rowid)
		sqlite3_bind_int64(s, 1, rowid);
	if (sqlite3_step(s) == SQLITE_ROW) {
		if (rowid && sqlite3_column_bytes(s, 0) == 32)
			sodium_bin2hex(id, 65, sqlite3_column_blob(s, 0), 32);
		*time = sqlite3_column_int64(s, 1);
	}
	sqlite3_finalize(s);
}

static void area_names(samen_plan *p, const rights_member *m, char *out, size_t outlen)
{
	sqlite3_stmt *s = NULL;
	size_t o = 0;
	out[0] = 0;
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT f.sqlval FROM entities e JOIN devs d ON d.devno = e.devno"
	                       " JOIN fields f ON f.entity = e.rowid AND f.field = 1 AND f.win WHERE d.key = ? AND e.n = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return;
	for (uint32_t i = 0; i < m->nareas && o < outlen; i++) {
		uint64_t n = 0;
		for (int k = 0; k < 8; k++)
			n |= (uint64_t)m->areas[i][32 + k] << (8 * k);
		sqlite3_reset(s);
		sqlite3_bind_blob(s, 1, m->areas[i], 32, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", o ? "," : "",
		                      sqlite3_step(s) == SQLITE_ROW ? (const char *)sqlite3_column_text(s, 0) : "?");
	}
	sqlite3_finalize(s);
}

static size_t active_devices(const rights_log *L, const uint8_t member[32])
{
	uint8_t (*keys)[32] = NULL;
	size_t n = device_keys(L, &keys), count = 0;
	for (size_t i = 0; keys && i < n; i++) {
		rights_device d;
		rights_device_at(L, NULL, keys[i], &d);
		count += d.known && !d.unlinked && memcmp(d.member, member, 32) == 0;
	}
	free(keys);
	return count;
}

static int emit_member(samen_plan *p, const rights_log *L, const uint8_t id[32], samen_member_view_cb cb, void *payload)
{
	rights_member m;
	samen_member_view v;
	char idhex[65], added[65], areas[2048];
	rights_member_at(L, NULL, id, &m);
	if (!m.exists)
		return 0;
	sodium_bin2hex(idhex, sizeof(idhex), id, 32);
	area_names(p, &m, areas, sizeof(areas));
	memset(&v, 0, sizeof(v));
	v.id = idhex;
	v.name = m.name ? m.name : "";
	v.role = rights_role_name(m.role);
	v.pending_role = m.pending_role >= 0 ? rights_role_name(m.pending_role) : NULL;
	v.revoked = m.revoked;
	v.areas = areas;
	v.scope_pending = m.scope_pending;
	change_facts(p, m.added_change, added, &v.added_time);
	v.added_by = added;
	v.ndevices = active_devices(L, id);
	return cb(&v, payload);
}

int samen_member_views(samen_plan *p, samen_member_view_cb cb, void *payload)
{
	rights_log L;
	uint8_t (*ids)[32] = NULL;
	size_t n;
	int rc;
	if ((rc = with_rights(p, &L)) < 0)
		return rc;
	n = member_ids(&L, &ids);
	if (!ids)
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++)
		rc = emit_member(p, &L, ids[i], cb, payload);
	free(ids);
	rights_free(&L);
	return rc;
}

int samen_member_show(samen_plan *p, const char *member, samen_member_view_cb cb, void *payload)
{
	rights_log L;
	uint8_t id[32];
	int rc;
	if ((rc = with_rights(p, &L)) < 0)
		return rc;
	if ((rc = resolve_member(&L, member, id)) == 0)
		rc = emit_member(p, &L, id, cb, payload);
	rights_free(&L);
	return rc;
}

static bool may_sync(const rights_log *L, const uint8_t key[32])
{
	rights_device d;
	rights_member m;
	rights_device_at(L, NULL, key, &d);
	if (!d.known || d.unlinked)
		return false;
	rights_member_at(L, NULL, d.member, &m);
	return m.exists && !m.revoked && m.role >= 0;
}

int samen_device_views(samen_plan *p, const char *member, samen_device_view_cb cb, void *payload)
{
	rights_log L;
	uint8_t (*keys)[32] = NULL, only[32];
	size_t n;
	int rc;
	if ((rc = with_rights(p, &L)) < 0)
		return rc;
	if (member && (rc = resolve_member(&L, member, only)) < 0)
		goto cleanup;
	n = device_keys(&L, &keys);
	if (!keys)
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rights_device d;
		rights_member m;
		samen_device_view v;
		char dev[65], mid[65], linked[65], unlinked[65];
		sqlite3_stmt *s = NULL;
		rights_device_at(&L, NULL, keys[i], &d);
		if (!d.known || (member && memcmp(d.member, only, 32) != 0))
			continue;
		rights_member_at(&L, NULL, d.member, &m);
		sodium_bin2hex(dev, sizeof(dev), keys[i], 32);
		sodium_bin2hex(mid, sizeof(mid), d.member, 32);
		memset(&v, 0, sizeof(v));
		v.device = dev;
		v.member = mid;
		v.member_name = m.name ? m.name : "";
		v.role = rights_role_name(m.role >= 0 ? m.role : m.pending_role);
		change_facts(p, d.linked_change, linked, &v.linked_time);
		v.linked_by = linked;
		v.unlinked = d.unlinked;
		if (d.unlinked)
			change_facts(p, d.unlinked_change, unlinked, &v.unlinked_time);
		if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT max(c.time) FROM changes c JOIN devs d ON d.devno = c.devno"
		                       " WHERE d.key = ?", -1, &s, NULL) == SQLITE_OK) {
			sqlite3_bind_blob(s, 1, keys[i], 32, SQLITE_STATIC);
			if (sqlite3_step(s) == SQLITE_ROW)
				v.last_change_time = sqlite3_column_int64(s, 0);
		}
		sqlite3_finalize(s);
		v.last_sync = replica_last_sync(p->rep, keys[i]);
		v.may_sync = may_sync(&L, keys[i]);
		rc = cb(&v, payload);
	}
cleanup:
	free(keys);
	rights_free(&L);
	return rc;
}

bool plan_device_may_sync(samen_plan *p, const uint8_t key[32])
{
	return replica_device_may_sync(p->rep, key);
}

int plan_note_sync(samen_plan *p, const uint8_t key[32], int64_t when)
{
	return replica_note_sync(p->rep, key, when);
}

int samen_plan_device_may_sync(samen_plan *p, const char *keyhex, int *may)
{
	uint8_t key[32];
	int rc;
	*may = 0;
	if ((rc = parse_key(key, keyhex)) < 0)
		return rc;
	*may = plan_device_may_sync(p, key);
	return 0;
}

/* The member list of plan.h, from the same fold: every member who holds a
 * device, with their first device, the creator first. */
int samen_member_list(samen_plan *p, samen_member_cb cb, void *payload)
{
	rights_log L;
	uint8_t (*ids)[32] = NULL, (*keys)[32] = NULL;
	size_t n, nk;
	int rc;
	if ((rc = with_rights(p, &L)) < 0)
		return rc;
	n = member_ids(&L, &ids);
	nk = device_keys(&L, &keys);
	if (!ids || !keys)
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
	/* the creator first, as before: they started the plan */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; rc == 0 && i < n; i++) {
			rights_member m;
			samen_member_info info;
			char dev[65] = "", added[65], mid[65], areas[2048];
			int64_t t;
			bool creator = false;
			rights_member_at(&L, NULL, ids[i], &m);
			if (!m.exists)
				continue;
			for (size_t k = 0; k < nk; k++) {
				rights_device d;
				rights_device_at(&L, NULL, keys[k], &d);
				if (d.known && memcmp(d.member, ids[i], 32) == 0) {
					if (!dev[0])
						sodium_bin2hex(dev, sizeof(dev), keys[k], 32);
					creator = creator || (L.has_genesis && memcmp(keys[k], L.creator, 32) == 0);
				}
			}
			if (creator != (pass == 0) || !dev[0]) /* a client without a device is no device member */
				continue;
			change_facts(p, m.added_change, added, &t);
			sodium_bin2hex(mid, sizeof(mid), ids[i], 32);
			area_names(p, &m, areas, sizeof(areas));
			memset(&info, 0, sizeof(info));
			info.name = m.name ? m.name : "";
			info.device = dev;
			info.creator = creator;
			info.added_by = added;
			info.id = mid;
			info.role = rights_role_name(m.role);
			info.pending_role = m.pending_role >= 0 ? rights_role_name(m.pending_role) : NULL;
			info.revoked = m.revoked;
			info.areas = areas;
			rc = cb(&info, payload);
		}
	free(ids);
	free(keys);
	rights_free(&L);
	return rc;
}
