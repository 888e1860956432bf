/*
 * edit.c - edit sessions: what a person does becomes one signed change.
 */
#include "sync/internal.h"
#include "core/mpread.h"
#include "core/schema.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct samen_edit {
	samen_plan *plan;
	change_builder *b;
	replica_edit_base base;
	uint32_t ncreated;
	uint32_t *created_types;
	uint32_t capcreated;
};

change_builder *edit_builder(samen_edit *e) { return e->b; }
samen_plan *edit_plan(samen_edit *e) { return e->plan; }

int samen_edit_begin(samen_edit **out, samen_plan *plan)
{
	samen_edit *e;
	int rc;
	*out = NULL;
	if (!(e = calloc(1, sizeof(*e))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	e->plan = plan;
	if ((rc = change_builder_new(&e->b)) < 0 ||
	    (rc = replica_get_edit_base(plan->rep, plan->store->pk, &e->base)) < 0) {
		samen_edit_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

void samen_edit_free(samen_edit *e)
{
	if (!e)
		return;
	change_builder_free(e->b);
	free(e->base.heads);
	free(e->created_types);
	free(e);
}

size_t samen_edit_op_count(const samen_edit *e) { return change_builder_nops(e->b); }

int samen_edit_create(samen_edit *e, const char *type, char uid_out[17])
{
	const type_def *td = schema_type_by_name(type);
	int rc;
	if (!td)
		return samen_error_set(SAMEN_EINVAL, "unknown entity type '%s'", type);
	if (e->ncreated == e->capcreated) {
		uint32_t nc = e->capcreated ? e->capcreated * 2 : 16;
		void *p = realloc(e->created_types, nc * sizeof(uint32_t));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		e->created_types = p;
		e->capcreated = nc;
	}
	if ((rc = change_builder_create(e->b, td->id)) < 0)
		return rc;
	e->created_types[e->ncreated] = td->id;
	schema_entity_uid(uid_out, e->plan->store->pk, e->base.ctr_base + e->ncreated);
	e->ncreated++;
	return 0;
}

/* Find an entity named by a person: one created in this session (by uid),
 * or one in the replica (uid prefix or exact title). */
static int resolve(samen_edit *e, uint32_t type, const char *what, uint32_t *dev, uint64_t *n, uint32_t *etype)
{
	replica_entity ent;
	char uid[17];
	int rc;
	for (uint32_t i = 0; i < e->ncreated; i++) {
		schema_entity_uid(uid, e->plan->store->pk, e->base.ctr_base + i);
		if (strlen(what) >= 4 && strncmp(uid, what, strlen(what)) == 0 &&
		    (!type || e->created_types[i] == type)) {
			*dev = 0;
			*n = e->base.ctr_base + i;
			*etype = e->created_types[i];
			return 0;
		}
	}
	if ((rc = replica_find_entity(e->plan->rep, type, what, &ent)) < 0)
		return rc;
	if (ent.deleted)
		return samen_error_set(SAMEN_ENOTFOUND, "%s %s was deleted", schema_type(ent.type)->name, ent.uid);
	*dev = memcmp(ent.key, e->plan->store->pk, 32) == 0 ? 0 : change_builder_dev(e->b, ent.key);
	if (*dev == UINT32_MAX)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	*n = ent.n;
	*etype = ent.type;
	return 0;
}

/* "a, b, c" -> each named entity of type; at most SAMEN_MAX_REFS. */
static int set_refs(samen_edit *e, uint32_t etype, uint32_t dev, uint64_t n, const field_def *f, const char *value)
{
	uint32_t devs[SAMEN_MAX_REFS], rtype;
	uint64_t ns[SAMEN_MAX_REFS];
	uint32_t count = 0;
	char item[256];
	const char *p = value;
	int rc;

	while (*p) {
		const char *q = strchr(p, ',');
		size_t len = q ? (size_t)(q - p) : strlen(p);
		while (len && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (len >= sizeof(item))
			return samen_error_set(SAMEN_EINVAL, "%s: the name '%.40s...' is too long", f->name, p);
		if (len) {
			if (count == SAMEN_MAX_REFS)
				return samen_error_set(SAMEN_EINVAL, "%s holds at most %u entries", f->name, SAMEN_MAX_REFS);
			memcpy(item, p, len);
			item[len] = '\0';
			if ((rc = resolve(e, f->ref_type, item, &devs[count], &ns[count], &rtype)) < 0)
				return samen_error_wrap(rc, "%s", f->name);
			for (uint32_t k = 0; k < count; k++)
				if (devs[k] == devs[count] && ns[k] == ns[count])
					return samen_error_set(SAMEN_EINVAL, "%s names '%s' twice", f->name, item);
			count++;
		}
		p += len;
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == ',')
			p++;
	}
	return change_builder_set_refs(e->b, etype, dev, n, f->id, devs, ns, count);
}

/* resolve() for an entity named by a person, of type (a name) or any type
 * when type is NULL. */
static int resolve_named(samen_edit *e, const char *type, const char *entity, uint32_t *dev, uint64_t *n,
                         uint32_t *etype)
{
	uint32_t want = 0;
	if (type) {
		const type_def *t = schema_type_by_name(type);
		if (!t)
			return samen_error_set(SAMEN_EINVAL, "unknown entity type '%s'", type);
		want = t->id;
	}
	return resolve(e, want, entity, dev, n, etype);
}

int samen_edit_set_in(samen_edit *e, const char *type, const char *entity, const char *field, const char *value)
{
	uint32_t dev, etype;
	uint64_t n;
	const field_def *f;
	uint8_t *v = NULL;
	size_t vlen;
	int rc;

	if ((rc = resolve_named(e, type, entity, &dev, &n, &etype)) < 0)
		return rc;
	if (!(f = schema_field_by_name(schema_type(etype), field))) {
		const type_def *td = schema_type(etype);
		char names[512] = "";
		for (uint32_t i = 0; i < td->nfields; i++) {
			strncat(names, td->fields[i].name, sizeof(names) - strlen(names) - 1);
			if (i + 1 < td->nfields)
				strncat(names, ", ", sizeof(names) - strlen(names) - 1);
		}
		return samen_error_set(SAMEN_EINVAL, "a %s has no field '%s' (fields: %s)", td->name, field, names);
	}
	if (f->kind == FIELD_REFS && strcmp(value, "-") != 0)
		return set_refs(e, etype, dev, n, f, value);
	if (f->kind == FIELD_REF && *value && strcmp(value, "-") != 0) {
		uint32_t rdev, rtype;
		uint64_t rn;
		if ((rc = resolve(e, f->ref_type, value, &rdev, &rn, &rtype)) < 0)
			return samen_error_wrap(rc, "%s", f->name);
		if (rdev == dev && rn == n)
			return samen_error_set(SAMEN_EINVAL, "a %s cannot be its own %s", schema_type(etype)->name, f->name);
		return change_builder_set_ref(e->b, etype, dev, n, f->id, rdev, rn);
	}
	if ((rc = schema_parse_value(f, value, &v, &vlen)) < 0)
		return rc;
	rc = change_builder_set(e->b, etype, dev, n, f->id, v, vlen);
	free(v);
	return rc;
}

int samen_edit_set(samen_edit *e, const char *entity, const char *field, const char *value)
{
	return samen_edit_set_in(e, NULL, entity, field, value);
}

int samen_edit_delete_in(samen_edit *e, const char *type, const char *entity)
{
	uint32_t dev, etype;
	uint64_t n;
	int rc;
	if ((rc = resolve_named(e, type, entity, &dev, &n, &etype)) < 0)
		return rc;
	return change_builder_delete(e->b, etype, dev, n);
}

int edit_set_value(samen_edit *e, const char *type, const char *entity, const char *field, const uint8_t *v,
                   size_t len)
{
	const type_def *t = schema_type_by_name(type);
	const field_def *f = t ? schema_field_by_name(t, field) : NULL;
	uint32_t dev, etype;
	uint64_t n;
	char why[256];
	int rc;
	if (!f || f->kind == FIELD_REF || f->kind == FIELD_REFS)
		return samen_error_set(SAMEN_EINVAL, "internal: no value field %s.%s", type, field);
	if (schema_check_value(f, v, len, 0, why, sizeof(why)) != 0)
		return samen_error_set(SAMEN_EINVAL, "%s", why);
	if ((rc = resolve(e, t->id, entity, &dev, &n, &etype)) < 0)
		return rc;
	return change_builder_set(e->b, etype, dev, n, f->id, v, len);
}

int samen_edit_delete(samen_edit *e, const char *entity)
{
	return samen_edit_delete_in(e, NULL, entity);
}

int samen_edit_member_add(samen_edit *e, const char *keyhex, const char *name)
{
	uint8_t key[32];
	if (strlen(keyhex) != 64 || sodium_hex2bin(key, 32, keyhex, 64, NULL, NULL, NULL) != 0)
		return samen_error_set(SAMEN_EINVAL, "a device key is 64 hex digits (see `samen id` on that device); got '%s'",
		                       keyhex);
	if (!name || !*name || strlen(name) > SAMEN_MAX_NAME || !mpr_utf8_valid(name, strlen(name)) ||
	    !schema_text_printable(name, strlen(name), 0))
		return samen_error_set(SAMEN_EINVAL, "a member needs a one-line name of at most %u bytes, without control characters",
		                       SAMEN_MAX_NAME);
	return change_builder_member_add(e->b, key, name, 3 /* network member; roles come with the rights model */);
}

/* Sign the session as one change and send it down the path of a change. */
static int commit_session(samen_edit *e, char id_out[65])
{
	samen_plan *p = e->plan;
	change_header h;
	uint8_t *bytes = NULL, sig[64];
	size_t len;
	ingest_batch b;
	int rc;

	memset(&h, 0, sizeof(h));
	h.plan = p->id;
	h.author = p->store->pk;
	h.name = p->store->name;
	h.seq = e->base.seq;
	h.prev = e->base.has_prev ? e->base.prev : NULL;
	h.deps = e->base.heads;
	h.ndeps = e->base.nheads;
	h.lamport = e->base.lamport;
	h.time = (int64_t)time(NULL);
	if ((rc = change_builder_finish(e->b, &h, &bytes, &len)) < 0)
		return rc;
	if ((rc = change_sign(sig, bytes, len, p->store->sk)) < 0) {
		free(bytes);
		return rc;
	}
	if ((rc = ingest_init(&b, p->id)) < 0) {
		free(bytes);
		return rc;
	}
	if ((rc = ingest_add(&b, bytes, len, sig)) < 0)
		goto cleanup;
	if ((rc = plan_ingest(p, &b)) < 0)
		goto cleanup;
	if (b.nready != 1) {
		rc = samen_error_set(SAMEN_ERROR, "internal: the new change was not applied (%s)",
		                     b.n && b.items[0].error ? b.items[0].error : "pending");
		goto cleanup;
	}
	if (id_out)
		sodium_bin2hex(id_out, 65, b.items[0].id, 32);
	{
		/* A local change can still be rejected by the rules (say, the device
		 * is not a member): tell the person instead of pretending. */
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT verdict, reason FROM changes WHERE id = ?", -1, &s,
		                       NULL) == SQLITE_OK) {
			sqlite3_bind_blob(s, 1, b.items[0].id, 32, SQLITE_STATIC);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
				rc = samen_error_set(SAMEN_EPERM, "the change was stored but rejected: %s",
				                     (const char *)sqlite3_column_text(s, 1));
		}
		sqlite3_finalize(s);
	}
cleanup:
	ingest_free(&b);
	return rc;
}

int samen_edit_commit(samen_edit *e, char id_out[65])
{
	if (change_builder_nops(e->b) == 0)
		return samen_error_set(SAMEN_EINVAL, "nothing to commit: the edit is empty");
	return commit_session(e, id_out);
}

/* The method's ten life areas, in the plan's language, start every plan
 * (in its first change, so every replica has them from the start). */
static int add_default_areas(samen_edit *e, bool nl)
{
	static const char *const en[10] = {"partner", "family", "work",  "study",    "faith",
	                                   "friendship", "income", "home", "finances", "meaning"};
	static const char ranks[] = "123456789a";
	char uid[17], rank[2] = {0, 0};
	int rc;
	for (int i = 0; i < 10; i++) {
		rank[0] = ranks[i];
		if ((rc = samen_edit_create(e, "area", uid)) < 0 ||
		    (rc = samen_edit_set_in(e, "area", uid, "name", nl ? schema_default_areas[i] : en[i])) < 0 ||
		    (rc = samen_edit_set_in(e, "area", uid, "rank", rank)) < 0)
			return rc;
	}
	return 0;
}

/* The plan's own entity: title, status (actief / afgesloten), start date. */
static int add_plan_entity(samen_edit *e, const char *client, bool nl)
{
	char uid[17], title[256], today[11];
	time_t now = time(NULL);
	struct tm tm;
	int rc;
	gmtime_r(&now, &tm);
	strftime(today, sizeof(today), "%Y-%m-%d", &tm);
	if (strlen(client) <= 170) /* the title holds 200 bytes; never cut a name inside a character */
		snprintf(title, sizeof(title), nl ? "Samenwerkingsplan van %s" : "Collaboration plan of %s", client);
	else
		snprintf(title, sizeof(title), nl ? "Samenwerkingsplan" : "Collaboration plan");
	if ((rc = samen_edit_create(e, "plan", uid)) < 0 || (rc = samen_edit_set_in(e, "plan", uid, "title", title)) < 0 ||
	    (rc = samen_edit_set_in(e, "plan", uid, "status", "actief")) < 0)
		return rc;
	return samen_edit_set_in(e, "plan", uid, "started", today);
}

int samen_plan_create(samen_plan **out, samen_store *store, const char *client, const char *lang)
{
	return samen_plan_create_as(out, store, client, lang, "coordinator");
}

int samen_plan_create_as(samen_plan **out, samen_store *store, const char *client, const char *lang,
                         const char *creator_role)
{
	uint8_t nonce[16], id[16];
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	int rc, role;

	*out = NULL;
	if (!client || !*client || strlen(client) > SAMEN_MAX_NAME || !mpr_utf8_valid(client, strlen(client)) ||
	    !schema_text_printable(client, strlen(client), 0))
		return samen_error_set(SAMEN_EINVAL, "the client's name must be one line of 1 to %u bytes, without control characters",
		                       SAMEN_MAX_NAME);
	if (!lang || (strcmp(lang, "nl") != 0 && strcmp(lang, "en") != 0))
		return samen_error_set(SAMEN_EINVAL, "the plan's language must be nl or en");
	role = creator_role ? rights_role_parse(creator_role) : SAMEN_ROLE_COORDINATOR;
	if (role != SAMEN_ROLE_CLIENT && role != SAMEN_ROLE_COORDINATOR)
		return samen_error_set(SAMEN_EINVAL, "the plan's creator is its client or a coordinator, not '%s'",
		                       creator_role);
	randombytes_buf(nonce, sizeof(nonce));
	change_plan_id(id, store->pk, nonce);
	if ((rc = plan_open_staged(&p, store, id)) < 0)
		return rc;
	if ((rc = samen_edit_begin(&e, p)) < 0 ||
	    (rc = change_builder_plan(e->b, nonce, client, lang)) < 0 ||
	    (role == SAMEN_ROLE_CLIENT && (rc = change_builder_member_add(e->b, store->pk, store->name, role)) < 0) ||
	    (rc = add_default_areas(e, strcmp(lang, "nl") == 0)) < 0 ||
	    (rc = add_plan_entity(e, client, strcmp(lang, "nl") == 0)) < 0 ||
	    (rc = samen_edit_commit(e, NULL)) < 0) {
		char *dir = strdup(p->dir);
		samen_edit_free(e);
		samen_plan_free(p);
		if (dir)
			remove_tree(dir);
		free(dir);
		return rc;
	}
	samen_edit_free(e);
	if ((rc = plan_publish(&p)) < 0)
		return rc;
	*out = p;
	return 0;
}

int samen_plan_state_hash(samen_plan *p, char out[65])
{
	uint8_t h[32];
	int rc = replica_state_hash(p->rep, h);
	if (rc == 0)
		sodium_bin2hex(out, 65, h, 32);
	return rc;
}
