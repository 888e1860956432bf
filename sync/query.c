/*
 * query.c - reading a plan: entity lists (the goal tree), log, blame,
 * conflicts, members. Read-only; nothing here writes the replica.
 */
#include "sync/internal.h"
#include "core/schema.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 32
#define VALUE_TEXT 4097

typedef struct {
	int64_t rowid;
	char uid[17];
	char *vals[MAX_FIELDS];       /* winner as text, owned */
	char *labels[MAX_FIELDS];     /* REF, REFS: the targets' labels, owned */
	int nvals[MAX_FIELDS];
	int64_t parent_row;           /* effective parent, 0 = none */
	uint64_t parent_lamport;
	uint8_t parent_author[32];
	char rank[40];
	int64_t priority;
	int cycle;
	int depth;
} row;

static int db_fail(samen_plan *p, const char *what)
{
	return samen_error_set(SAMEN_EIO, "replica: %s: %s", what, sqlite3_errmsg(replica_db(p->rep)));
}

static int cmp_rows(const row *a, const row *b)
{
	/* rank first (unset last), then priority (1 first), then title, then uid */
	if (a->rank[0] != b->rank[0] && (!a->rank[0] || !b->rank[0]))
		return a->rank[0] ? -1 : 1;
	int c = strcmp(a->rank, b->rank);
	if (c)
		return c;
	if (a->priority != b->priority)
		return a->priority < b->priority ? -1 : 1;
	c = strcmp(a->vals[0] ? a->vals[0] : "", b->vals[0] ? b->vals[0] : "");
	return c ? c : strcmp(a->uid, b->uid);
}

static const row *sort_base;
static int cmp_idx(const void *x, const void *y)
{
	return cmp_rows(&sort_base[*(const size_t *)x], &sort_base[*(const size_t *)y]);
}

typedef struct {
	row *rows;
	size_t n;
	const type_def *td;
	samen_entity_cb cb;
	void *payload;
	size_t *order;
	size_t norder;
} listing;

static row *find_row(row *rows, size_t n, int64_t rowid)
{
	/* rows are sorted by rowid */
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (rows[mid].rowid == rowid)
			return &rows[mid];
		if (rows[mid].rowid < rowid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int emit(listing *l, const row *r)
{
	samen_field_value fv[MAX_FIELDS];
	samen_entity_view v;
	for (uint32_t i = 0; i < l->td->nfields && i < MAX_FIELDS; i++) {
		fv[i].name = l->td->fields[i].name;
		fv[i].value = r->vals[i] ? r->vals[i] : "";
		fv[i].nvalues = r->nvals[i];
		fv[i].number = l->td->fields[i].kind == FIELD_INT;
		fv[i].label = r->labels[i];
	}
	memset(&v, 0, sizeof(v));
	v.uid = r->uid;
	v.type = l->td->name;
	v.fields = fv;
	v.nfields = l->td->nfields < MAX_FIELDS ? l->td->nfields : MAX_FIELDS;
	v.depth = r->depth;
	v.cycle = r->cycle;
	if (r->parent_row) {
		const row *pr = find_row(l->rows, l->n, r->parent_row);
		v.parent = pr ? pr->uid : NULL;
	}
	return l->cb(&v, l->payload);
}

/* A parent assignment that closes a cycle is ignored, the same way on every
 * replica: in each cycle, the goal whose winning parent value has the
 * highest (Lamport clock, author key) loses its parent; when one change set
 * several of those values (same clock and author), the greatest uid. Never
 * the row order: rowids are local. */
static void break_cycles(row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		/* walk up from i at most n steps; if we come back to a visited row
		 * on this walk, we found a cycle */
		size_t steps = 0;
		row *r = &rows[i];
		while (r && r->parent_row && steps <= n) {
			r = find_row(rows, n, r->parent_row);
			steps++;
			if (r == &rows[i])
				break;
		}
		if (r != &rows[i] || !rows[i].parent_row)
			continue;
		/* rows[i] is on a cycle: choose the loser among its members */
		row *loser = &rows[i], *c = find_row(rows, n, rows[i].parent_row);
		while (c && c != &rows[i]) {
			if (c->parent_lamport > loser->parent_lamport ||
			    (c->parent_lamport == loser->parent_lamport && memcmp(c->parent_author, loser->parent_author, 32) > 0) ||
			    (c->parent_lamport == loser->parent_lamport &&
			     memcmp(c->parent_author, loser->parent_author, 32) == 0 && strcmp(c->uid, loser->uid) > 0))
				loser = c;
			c = find_row(rows, n, c->parent_row);
		}
		loser->parent_row = 0;
		loser->cycle = 1;
	}
}

/* Depth-first over the tree in sibling order, without recursion: a plan
 * may hold a chain of goals as deep as it is long. Children lists are built
 * once (order is already in sibling order), so this is linear. Every row
 * reaches the top because cycles were broken before. */
static int walk(listing *l)
{
	const size_t none = SIZE_MAX, root = l->n;
	size_t *head = malloc((l->n + 1) * sizeof(size_t)), *next = malloc((l->n + 1) * sizeof(size_t));
	size_t *stack = malloc((l->n + 1) * sizeof(size_t));
	size_t depth = 0;
	int rc = 0;

	if (!head || !next || !stack) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t k = 0; k <= l->n; k++)
		head[k] = none;
	for (size_t k = l->norder; k-- > 0;) {
		size_t idx = l->order[k], p = root;
		const row *pr = l->rows[idx].parent_row ? find_row(l->rows, l->n, l->rows[idx].parent_row) : NULL;
		if (pr)
			p = (size_t)(pr - l->rows);
		next[idx] = head[p];
		head[p] = idx;
	}
	stack[0] = head[root];
	for (;;) {
		size_t idx = stack[depth];
		if (idx == none) {
			if (depth == 0)
				break;
			depth--;
			continue;
		}
		stack[depth] = next[idx];
		l->rows[idx].depth = (int)depth;
		if ((rc = emit(l, &l->rows[idx])) != 0)
			break;
		if (head[idx] != none)
			stack[++depth] = head[idx];
	}
cleanup:
	free(head);
	free(next);
	free(stack);
	return rc;
}

void entity_label(sqlite3_stmt *st, const char *uid, char *out, size_t cap)
{
	char next[17];
	out[0] = '\0';
	snprintf(next, sizeof(next), "%s", uid);
	for (int hop = 0; hop < 2; hop++) {
		const type_def *td;
		const field_def *f;
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, next, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_ROW)
			break;
		td = schema_type((uint32_t)sqlite3_column_int64(st, 0));
		f = td ? schema_field(td, 1) : NULL;
		if (!f)
			break;
		schema_format_value(f, sqlite3_column_blob(st, 1), (size_t)sqlite3_column_bytes(st, 1), out, cap);
		if (f->kind != FIELD_REF)
			break;
		snprintf(next, sizeof(next), "%s", out);
		out[0] = '\0';
	}
	sqlite3_reset(st); /* no read left open */
}

/* "uid, uid" -> "label, label" */
static char *ref_labels(sqlite3_stmt *st, const char *uids)
{
	char label[256], *out = malloc(VALUE_TEXT);
	size_t o = 0;
	if (!out)
		return NULL;
	out[0] = '\0';
	for (const char *p = uids; *p;) {
		char uid[17];
		size_t n = strcspn(p, ", ");
		snprintf(uid, sizeof(uid), "%.*s", (int)(n < 16 ? n : 16), p);
		entity_label(st, uid, label, sizeof(label));
		if (o < VALUE_TEXT)
			o += (size_t)snprintf(out + o, VALUE_TEXT - o, "%s%s", o ? ", " : "", label[0] ? label : uid);
		p += n;
		p += strspn(p, ", ");
	}
	return out;
}

static int label_refs(samen_plan *p, const type_def *td, row *rows, size_t n)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(replica_db(p->rep), ENTITY_LABEL_SQL, -1, &st, NULL) != SQLITE_OK)
		return db_fail(p, "labels");
	for (size_t k = 0; k < n; k++)
		for (uint32_t i = 0; i < td->nfields && i < MAX_FIELDS; i++)
			if ((td->fields[i].kind == FIELD_REF || td->fields[i].kind == FIELD_REFS) && rows[k].vals[i] &&
			    rows[k].vals[i][0] && !(rows[k].labels[i] = ref_labels(st, rows[k].vals[i]))) {
				sqlite3_finalize(st);
				return samen_error_set(SAMEN_ENOMEM, "out of memory");
			}
	sqlite3_finalize(st);
	return 0;
}

static int list_entities(samen_plan *p, const type_def *td, int64_t only, samen_entity_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	listing l;
	int rc = 0;
	size_t cap = 0;
	const field_def *fparent = schema_field_by_name(td, "parent");
	const field_def *frank = schema_field_by_name(td, "rank");
	/* what orders siblings after rank: a goal's priority; an action's tier
	 * (the method's order: client, then network, then professional) */
	const field_def *fprio = schema_field_by_name(td, "priority");
	const field_def *ftier = schema_field_by_name(td, "tier");
	char text[VALUE_TEXT];
	hmap byuid;       /* uid (16 hex digits) -> rowid */

	memset(&l, 0, sizeof(l));
	hmap_init(&byuid, 16);
	l.td = td;
	l.cb = cb;
	l.payload = payload;
	if (sqlite3_prepare_v2(db, "SELECT rowid, uid FROM entities WHERE type = ? AND deleted IS NULL ORDER BY rowid",
	                       -1, &s, NULL) != SQLITE_OK)
		return db_fail(p, "listing");
	sqlite3_bind_int64(s, 1, td->id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		if (l.n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			void *np = realloc(l.rows, nc * sizeof(*l.rows));
			if (!np) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				goto cleanup;
			}
			l.rows = np;
			cap = nc;
		}
		row *r = &l.rows[l.n++];
		memset(r, 0, sizeof(*r));
		r->rowid = sqlite3_column_int64(s, 0);
		snprintf(r->uid, sizeof(r->uid), "%s", (const char *)sqlite3_column_text(s, 1));
		r->priority = 99;
	}
	sqlite3_finalize(s);
	s = NULL;
	for (size_t k = 0; k < l.n && rc == 0; k++)
		rc = hmap_put(&byuid, l.rows[k].uid, (uint64_t)l.rows[k].rowid);
	if (rc < 0)
		goto cleanup;
	if (sqlite3_prepare_v2(db, "SELECT f.entity, f.field, f.value, f.win, c.lamport, d.key,"
	                           " (SELECT count(*) FROM fields g WHERE g.entity = f.entity AND g.field = f.field)"
	                           " FROM fields f JOIN entities e ON e.rowid = f.entity JOIN changes c ON c.rowid = f.change"
	                           " JOIN devs d ON d.devno = c.devno WHERE e.type = ? AND e.deleted IS NULL AND f.win",
	                       -1, &s, NULL) != SQLITE_OK) {
		rc = db_fail(p, "listing");
		goto cleanup;
	}
	sqlite3_bind_int64(s, 1, td->id);
	while (sqlite3_step(s) == SQLITE_ROW) {
		row *r = find_row(l.rows, l.n, sqlite3_column_int64(s, 0));
		uint32_t fid = (uint32_t)sqlite3_column_int64(s, 1);
		const field_def *f = schema_field(td, fid);
		const uint8_t *v = sqlite3_column_blob(s, 2);
		size_t vlen = (size_t)sqlite3_column_bytes(s, 2);
		if (!r || !f)
			continue;
		size_t fi = (size_t)(f - td->fields);
		if (fi >= MAX_FIELDS)
			continue;
		schema_format_value(f, v, vlen, text, sizeof(text));
		free(r->vals[fi]);
		r->vals[fi] = strdup(text);
		r->nvals[fi] = sqlite3_column_int(s, 6);
		if (f == fparent && text[0]) {
			/* reference [key, n] -> rowid through the uid */
			uint64_t *pr = hmap_get(&byuid, text);
			if (pr)
				r->parent_row = (int64_t)*pr;
			r->parent_lamport = (uint64_t)sqlite3_column_int64(s, 4);
			if (sqlite3_column_bytes(s, 5) == 32)
				memcpy(r->parent_author, sqlite3_column_blob(s, 5), 32);
		} else if (f == frank) {
			snprintf(r->rank, sizeof(r->rank), "%.39s", text);
		} else if (f == fprio && text[0]) {
			r->priority = atoll(text);
		} else if (f == ftier && text[0]) {
			for (uint32_t k = 0; k < f->nlabels; k++)
				if (strcmp(text, f->labels[k]) == 0)
					r->priority = k + 1;
		}
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = label_refs(p, td, l.rows, l.n)) < 0)
		goto cleanup;
	break_cycles(l.rows, l.n);
	l.order = malloc((l.n + 1) * sizeof(size_t));
	if (!l.order) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t k = 0; k < l.n; k++)
		if (!only || l.rows[k].rowid == only)
			l.order[l.norder++] = k;
	sort_base = l.rows;
	qsort(l.order, l.norder, sizeof(size_t), cmp_idx);
	if (only) {
		for (size_t k = 0; k < l.norder; k++)
			if ((rc = emit(&l, &l.rows[l.order[k]])) != 0)
				break;
	} else {
		rc = walk(&l);
	}
cleanup:
	sqlite3_finalize(s);
	for (size_t k = 0; k < l.n; k++)
		for (int f = 0; f < MAX_FIELDS; f++) {
			free(l.rows[k].vals[f]);
			free(l.rows[k].labels[f]);
		}
	free(l.rows);
	free(l.order);
	hmap_free(&byuid);
	return rc;
}

int samen_entity_list(samen_plan *p, const char *type, samen_entity_cb cb, void *payload)
{
	const type_def *td = schema_type_by_name(type);
	if (!td)
		return samen_error_set(SAMEN_EINVAL, "unknown entity type '%s'", type);
	return list_entities(p, td, 0, cb, payload);
}

int samen_entity_get(samen_plan *p, const char *type, const char *which, samen_entity_cb cb, void *payload)
{
	const type_def *td = schema_type_by_name(type);
	replica_entity e;
	int rc;
	if (!td)
		return samen_error_set(SAMEN_EINVAL, "unknown entity type '%s'", type);
	if ((rc = replica_find_entity(p->rep, td->id, which, &e)) < 0)
		return rc;
	if (e.deleted)
		return samen_error_set(SAMEN_ENOTFOUND, "%s %s was deleted (see samen log %s)", td->name, e.uid, e.uid);
	return list_entities(p, td, e.rowid, cb, payload);
}

/* --- log ------------------------------------------------------------------------ */

static bool change_touches(const samen_change *c, const uint8_t key[32], uint64_t n, bool created_here)
{
	if (created_here)
		return true;
	for (uint32_t i = 0; i < c->nops; i++) {
		const samen_op *op = &c->ops[i];
		if ((op->kind == SAMEN_OP_SET || op->kind == SAMEN_OP_DELETE) && op->n == n &&
		    memcmp(change_ref_key(c, op->dev), key, 32) == 0)
			return true;
	}
	return false;
}

int samen_log(samen_plan *p, const char *entity, samen_log_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	replica_entity ent;
	int64_t created = 0;
	int rc = 0;

	if (entity) {
		if ((rc = replica_find_entity(p->rep, 0, entity, &ent)) < 0)
			return rc;
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(db, "SELECT created FROM entities WHERE rowid = ?", -1, &q, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, ent.rowid);
			if (sqlite3_step(q) == SQLITE_ROW)
				created = sqlite3_column_int64(q, 0);
		}
		sqlite3_finalize(q);
	}
	if (sqlite3_prepare_v2(db, "SELECT c.id, c.name, d.key, c.time, c.seq, c.lamport, c.verdict, c.reason,"
	                           " c.commit_oid, c.nops, c.body, c.rowid, c.blob FROM changes c"
	                           " JOIN devs d ON d.devno = c.devno ORDER BY c.lamport DESC, c.id DESC", -1, &s,
	                           NULL) != SQLITE_OK)
		return db_fail(p, "log");
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		samen_change ch;
		samen_log_entry e;
		char id[65], dev[65], commit[41] = "";
		char *summary = NULL;
		uint8_t *body;
		size_t blen;
		if ((rc = replica_row_change(p->rep, s, 10, 12, 0, &body, &blen)) < 0)
			break;
		if (change_decode(&ch, body, blen) < 0) {
			free(body);
			rc = samen_error_wrap(SAMEN_ECORRUPT, "replica holds an undecodable change (run samen rebuild)");
			break;
		}
		if (entity && !change_touches(&ch, ent.key, ent.n, sqlite3_column_int64(s, 11) == created)) {
			change_clear(&ch);
			free(body);
			continue;
		}
		summary = change_summary(&ch, samen_plan_lang(p));
		change_clear(&ch);
		free(body);
		sodium_bin2hex(id, sizeof(id), sqlite3_column_blob(s, 0), 32);
		sodium_bin2hex(dev, sizeof(dev), sqlite3_column_blob(s, 2), 32);
		if (sqlite3_column_bytes(s, 8) == 20)
			sodium_bin2hex(commit, sizeof(commit), sqlite3_column_blob(s, 8), 20);
		memset(&e, 0, sizeof(e));
		e.id = id;
		e.author = (const char *)sqlite3_column_text(s, 1);
		e.device = dev;
		e.time = sqlite3_column_int64(s, 3);
		e.seq = (uint64_t)sqlite3_column_int64(s, 4);
		e.lamport = (uint64_t)sqlite3_column_int64(s, 5);
		e.accepted = sqlite3_column_int(s, 6);
		e.reason = (const char *)sqlite3_column_text(s, 7);
		e.summary = summary ? summary : "";
		e.commit = commit;
		e.nops = (size_t)sqlite3_column_int64(s, 9);
		rc = cb(&e, payload);
		free(summary);
	}
	sqlite3_finalize(s);
	return rc;
}

/* --- blame and conflicts ------------------------------------------------------------- */

static int values(samen_plan *p, int64_t only, samen_value_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	int rc = 0;
	char text[VALUE_TEXT], dev[65], chid[65], *label = NULL;
	const char *sql =
		"SELECT e.uid, e.type, f.field, f.value, f.win, n.cnt, c.name, d.key, c.time, c.id,"
		" (SELECT t.sqlval FROM fields t WHERE t.entity = e.rowid AND t.field = 1 AND t.win)"
		" FROM fields f JOIN entities e ON e.rowid = f.entity JOIN changes c ON c.rowid = f.change"
		" JOIN devs d ON d.devno = c.devno"
		" JOIN (SELECT entity, field, count(*) AS cnt FROM fields GROUP BY entity, field) n"
		"   ON n.entity = f.entity AND n.field = f.field"
		" WHERE e.deleted IS NULL AND (?1 = 0 AND n.cnt > 1 OR e.rowid = ?1)"
		" ORDER BY e.uid, f.field, f.win DESC, c.lamport DESC, d.key DESC";
	sqlite3_stmt *lab = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, ENTITY_LABEL_SQL, -1, &lab, NULL) != SQLITE_OK) {
		sqlite3_finalize(s);
		return db_fail(p, "values");
	}
	sqlite3_bind_int64(s, 1, only);
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		const type_def *td = schema_type((uint32_t)sqlite3_column_int64(s, 1));
		const field_def *f = td ? schema_field(td, (uint32_t)sqlite3_column_int64(s, 2)) : NULL;
		samen_value_info v;
		if (!f)
			continue;
		schema_format_value(f, sqlite3_column_blob(s, 3), (size_t)sqlite3_column_bytes(s, 3), text, sizeof(text));
		sodium_bin2hex(dev, sizeof(dev), sqlite3_column_blob(s, 7), 32);
		sodium_bin2hex(chid, sizeof(chid), sqlite3_column_blob(s, 9), 32);
		memset(&v, 0, sizeof(v));
		v.entity = (const char *)sqlite3_column_text(s, 0);
		v.title = sqlite3_column_text(s, 10) ? (const char *)sqlite3_column_text(s, 10) : "";
		v.field = f->name;
		v.field_nl = f->name_nl;
		v.value = text;
		v.winner = sqlite3_column_int(s, 4);
		v.nvalues = sqlite3_column_int(s, 5);
		v.author = (const char *)sqlite3_column_text(s, 6);
		v.device = dev;
		v.time = sqlite3_column_int64(s, 8);
		v.change = chid;
		if ((f->kind == FIELD_REF || f->kind == FIELD_REFS) && text[0] &&
		    !(label = ref_labels(lab, text))) {
			rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			break;
		}
		v.label = label;
		rc = cb(&v, payload);
		free(label);
		label = NULL;
	}
	sqlite3_finalize(s);
	sqlite3_finalize(lab);
	return rc;
}

int samen_blame(samen_plan *p, const char *entity, samen_value_cb cb, void *payload)
{
	replica_entity e;
	int rc;
	if ((rc = replica_find_entity(p->rep, 0, entity, &e)) < 0)
		return rc;
	if (e.deleted)
		return samen_error_set(SAMEN_ENOTFOUND, "%s %s was deleted (its history: samen log %s)",
		                       schema_type(e.type)->name, e.uid, e.uid);
	return values(p, e.rowid, cb, payload);
}

int samen_conflicts(samen_plan *p, samen_value_cb cb, void *payload)
{
	return values(p, 0, cb, payload);
}
