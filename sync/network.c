/*
 * network.c - the network map over time: snapshots and their differences.
 *
 * A snapshot is an entity whose "ties" field holds the map as it was: one
 * entry per tie, [person uid, name, sector, ring, strength, valence, support,
 * reciprocity] (docs/format.md). Freezing the values, instead of pointing at
 * a moment in history, keeps a snapshot meaningful after persons are renamed
 * or removed, and makes it one value that merges like any other.
 */
#include "sync/internal.h"
#include "core/mpread.h"
#include "core/schema.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIE_FIELDS 6 /* sector .. reciprocity: tie fields 2..7 */

typedef struct {
	char uid[17];
	char name[201];
	const uint8_t *v[TIE_FIELDS]; /* raw msgpack or NULL (unset); borrowed */
	size_t vlen[TIE_FIELDS];
} tie_row;

typedef struct {
	tie_row *rows;
	size_t n, cap;
	uint8_t *owned; /* the buffer the rows borrow from */
} tie_map;

static void map_free(tie_map *m)
{
	free(m->rows);
	free(m->owned);
	memset(m, 0, sizeof(*m));
}

static tie_row *map_push(tie_map *m)
{
	if (m->n == m->cap) {
		size_t nc = m->cap ? m->cap * 2 : 32;
		void *p = realloc(m->rows, nc * sizeof(*m->rows));
		if (!p)
			return NULL;
		m->rows = p;
		m->cap = nc;
	}
	memset(&m->rows[m->n], 0, sizeof(m->rows[0]));
	return &m->rows[m->n++];
}

/* Encode the current map from the replica, sorted by name then uid. */
static int encode_current(samen_plan *p, msgpack_sbuffer *sb)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	msgpack_packer pk;
	int64_t count = 0;
	int rc = 0;
	static const char sql[] =
		"SELECT t.person, coalesce(ps.name, t.person),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 2 AND f.win),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 3 AND f.win),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 4 AND f.win),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 5 AND f.win),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 6 AND f.win),"
		" (SELECT value FROM fields f WHERE f.entity = t.entity AND f.field = 7 AND f.win)"
		" FROM ties t LEFT JOIN persons ps ON ps.id = t.person ORDER BY 2, 1, t.id";

	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM ties", -1, &s, NULL) != SQLITE_OK ||
	    sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_finalize(s);
		return samen_error_set(SAMEN_EIO, "replica: reading ties: %s", sqlite3_errmsg(db));
	}
	count = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (count > (int64_t)SAMEN_MAX_SNAPSHOT_TIES)
		return samen_error_set(SAMEN_ELIMIT, "the network map has %lld ties; a snapshot holds at most %u",
		                       (long long)count, SAMEN_MAX_SNAPSHOT_TIES);
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return samen_error_set(SAMEN_EIO, "replica: reading ties: %s", sqlite3_errmsg(db));
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, (size_t)count);
	for (int64_t k = 0; k < count; k++) {
		const char *uid, *name;
		if (sqlite3_step(s) != SQLITE_ROW) {
			rc = samen_error_set(SAMEN_EIO, "replica: the ties changed while reading them");
			break;
		}
		uid = (const char *)sqlite3_column_text(s, 0);
		name = (const char *)sqlite3_column_text(s, 1);
		msgpack_pack_array(&pk, 8);
		msgpack_pack_str(&pk, 16);
		msgpack_pack_str_body(&pk, uid && strlen(uid) == 16 ? uid : "0000000000000000", 16);
		name = name && *name ? name : "?";
		msgpack_pack_str(&pk, strlen(name) > 200 ? 200 : strlen(name));
		msgpack_pack_str_body(&pk, name, strlen(name) > 200 ? 200 : strlen(name));
		for (int i = 0; i < TIE_FIELDS; i++) {
			if (sqlite3_column_type(s, 2 + i) == SQLITE_NULL)
				msgpack_pack_nil(&pk);
			else
				msgpack_sbuffer_write(sb, sqlite3_column_blob(s, 2 + i), (size_t)sqlite3_column_bytes(s, 2 + i));
		}
	}
	sqlite3_finalize(s);
	return rc;
}

int samen_network_snapshot(samen_plan *p, const char *date, const char *note, char uid_out[17],
                           char change_out[65])
{
	msgpack_sbuffer sb;
	samen_edit *e = NULL;
	char today[11];
	int rc;

	if (!date) {
		time_t now = time(NULL);
		struct tm tm;
		gmtime_r(&now, &tm);
		strftime(today, sizeof(today), "%Y-%m-%d", &tm);
		date = today;
	}
	msgpack_sbuffer_init(&sb);
	if ((rc = encode_current(p, &sb)) < 0)
		goto cleanup;
	if (!sb.data) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if (sb.size > SAMEN_MAX_VALUE_BYTES) {
		rc = samen_error_set(SAMEN_ELIMIT, "the network map is %zu bytes; a snapshot holds at most %u",
		                     sb.size, SAMEN_MAX_VALUE_BYTES);
		goto cleanup;
	}
	if ((rc = samen_edit_begin(&e, p)) < 0 || (rc = samen_edit_create(e, "snapshot", uid_out)) < 0 ||
	    (rc = samen_edit_set_in(e, "snapshot", uid_out, "date", date)) < 0 ||
	    (note && *note && (rc = samen_edit_set_in(e, "snapshot", uid_out, "note", note)) < 0) ||
	    (rc = edit_set_value(e, "snapshot", uid_out, "ties", (const uint8_t *)sb.data, sb.size)) < 0)
		goto cleanup;
	rc = samen_edit_commit(e, change_out);
cleanup:
	samen_edit_free(e);
	msgpack_sbuffer_destroy(&sb);
	return rc;
}

/* Decode an encoded map (already checked by the schema) into rows that
 * borrow from buf; m takes buf over. */
static int decode_map(tie_map *m, uint8_t *buf, size_t len)
{
	mpr r;
	uint32_t n, k8, slen;
	const char *s;
	m->owned = buf;
	mpr_init(&r, buf, len);
	if (mpr_array(&r, &n, SAMEN_MAX_SNAPSHOT_TIES) < 0)
		return samen_error_set(SAMEN_ECORRUPT, "a snapshot's ties are damaged: %s", r.err);
	for (uint32_t k = 0; k < n; k++) {
		tie_row *t = map_push(m);
		if (!t)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		if (mpr_array(&r, &k8, 8) < 0 || k8 != 8 || mpr_str(&r, &s, &slen, 16) < 0 || slen != 16)
			return samen_error_set(SAMEN_ECORRUPT, "a snapshot's tie %u is damaged", k);
		memcpy(t->uid, s, 16);
		if (mpr_str(&r, &s, &slen, 200) < 0)
			return samen_error_set(SAMEN_ECORRUPT, "a snapshot's tie %u is damaged", k);
		memcpy(t->name, s, slen);
		t->name[slen] = '\0';
		for (int i = 0; i < TIE_FIELDS; i++) {
			const uint8_t *b = r.pos;
			if (mpr_skip_value(&r, 2) < 0)
				return samen_error_set(SAMEN_ECORRUPT, "a snapshot's tie %u is damaged", k);
			if (!(r.pos - b == 1 && b[0] == 0xc0)) {
				t->v[i] = b;
				t->vlen[i] = (size_t)(r.pos - b);
			}
		}
	}
	return 0;
}

static int load_snapshot(samen_plan *p, const char *which, tie_map *m)
{
	replica_entity ent;
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	uint8_t *buf;
	size_t len;
	int rc;

	if (!which) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		if ((rc = encode_current(p, &sb)) < 0 || !sb.data) {
			msgpack_sbuffer_destroy(&sb);
			return rc < 0 ? rc : samen_error_set(SAMEN_ENOMEM, "out of memory");
		}
		return decode_map(m, (uint8_t *)msgpack_sbuffer_release(&sb), sb.size);
	}
	if ((rc = replica_find_entity(p->rep, SAMEN_TYPE_SNAPSHOT, which, &ent)) < 0)
		return samen_error_wrap(rc, "snapshot");
	if (ent.deleted)
		return samen_error_set(SAMEN_ENOTFOUND, "snapshot %s was deleted", ent.uid);
	if (sqlite3_prepare_v2(db, "SELECT value FROM fields WHERE entity = ? AND field = 3 AND win", -1, &s,
	                       NULL) != SQLITE_OK)
		return samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(db));
	sqlite3_bind_int64(s, 1, ent.rowid);
	if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_bytes(s, 0) <= 1) {
		sqlite3_finalize(s);
		return 0; /* no ties recorded: an empty map */
	}
	len = (size_t)sqlite3_column_bytes(s, 0);
	if (!(buf = malloc(len))) {
		sqlite3_finalize(s);
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	memcpy(buf, sqlite3_column_blob(s, 0), len);
	sqlite3_finalize(s);
	return decode_map(m, buf, len);
}

static const tie_row *find_person(const tie_map *m, const char *uid)
{
	for (size_t k = 0; k < m->n; k++)
		if (strcmp(m->rows[k].uid, uid) == 0)
			return &m->rows[k];
	return NULL;
}

static int report(samen_network_cb cb, void *payload, const char *what, const tie_row *t, const char *field,
                  const char *before, const char *after)
{
	samen_network_change c;
	c.what = what;
	c.person = t->uid;
	c.name = t->name;
	c.field = field;
	c.before = before;
	c.after = after;
	return cb(&c, payload);
}

int samen_network_diff(samen_plan *p, const char *from, const char *to, samen_network_cb cb, void *payload)
{
	const type_def *tie = schema_type(SAMEN_TYPE_TIE);
	tie_map a = {0}, b = {0};
	char before[128], after[128];
	int rc;

	if ((rc = load_snapshot(p, from, &a)) < 0 || (rc = load_snapshot(p, to, &b)) < 0)
		goto cleanup;
	for (size_t k = 0; k < b.n && rc == 0; k++) {
		const tie_row *old = find_person(&a, b.rows[k].uid);
		if (!old) {
			rc = report(cb, payload, "came", &b.rows[k], NULL, NULL, NULL);
			continue;
		}
		for (int i = 0; i < TIE_FIELDS && rc == 0; i++) {
			const field_def *f = schema_field(tie, (uint32_t)(2 + i));
			if (old->vlen[i] == b.rows[k].vlen[i] &&
			    (old->vlen[i] == 0 || memcmp(old->v[i], b.rows[k].v[i], old->vlen[i]) == 0))
				continue;
			before[0] = after[0] = '\0';
			if (old->v[i])
				schema_format_value(f, old->v[i], old->vlen[i], before, sizeof(before));
			if (b.rows[k].v[i])
				schema_format_value(f, b.rows[k].v[i], b.rows[k].vlen[i], after, sizeof(after));
			rc = report(cb, payload, "changed", &b.rows[k], f->name, before, after);
		}
	}
	for (size_t k = 0; k < a.n && rc == 0; k++)
		if (!find_person(&b, a.rows[k].uid))
			rc = report(cb, payload, "left", &a.rows[k], NULL, NULL, NULL);
cleanup:
	map_free(&a);
	map_free(&b);
	return rc;
}
