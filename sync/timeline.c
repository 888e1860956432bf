/*
 * timeline.c - wie heeft wat aangepast: every op of the history, oldest
 * first, with who, when and the verdict. Read from the change bodies the
 * replica keeps (the same bytes as the git history), so it covers rejected
 * changes too.
 */
#include "sync/internal.h"
#include "core/mpread.h"
#include "core/schema.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_MAX 256

typedef struct {
	sqlite3_stmt *label;     /* uid -> label */
} tl_ctx;

static void label_of(tl_ctx *x, const char *uid, char *out, size_t cap) { entity_label(x->label, uid, out, cap); }

/* An op's value as a person reads it: references become labels. */
static void value_text(tl_ctx *x, const samen_change *ch, const field_def *f, const samen_op *op, char *out,
                       size_t cap)
{
	mpr r;
	uint32_t count = 1;
	size_t o = 0;
	out[0] = '\0';
	if (f->kind != FIELD_REF && f->kind != FIELD_REFS) {
		schema_format_value(f, op->value, op->value_len, out, cap);
		return;
	}
	mpr_init(&r, op->value, op->value_len);
	if (mpr_peek(&r) == MPR_NIL)
		return;
	if (f->kind == FIELD_REFS && mpr_array(&r, &count, SAMEN_MAX_REFS) < 0)
		return;
	for (uint32_t k = 0; k < count && o < cap; k++) {
		uint64_t d, n;
		char uid[17], label[LABEL_MAX];
		if (mpr_array_exact(&r, 2) < 0 || mpr_uint_max(&r, &d, ch->ndevs) < 0 || mpr_uint(&r, &n) < 0)
			return;
		schema_entity_uid(uid, change_ref_key(ch, (uint32_t)d), n);
		label_of(x, uid, label, sizeof(label));
		o += (size_t)snprintf(out + o, cap - o, "%s%s", k ? ", " : "", label[0] ? label : uid);
	}
}

int samen_timeline(samen_plan *p, const char *type, const char *entity, samen_timeline_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	tl_ctx x = {NULL};
	replica_entity only;
	uint32_t want = 0;
	char value[SAMEN_MAX_VALUE_BYTES / 16], label[LABEL_MAX];
	int rc = 0;

	if (type) {
		const type_def *td = schema_type_by_name(type);
		if (!td)
			return samen_error_set(SAMEN_EINVAL, "unknown entity type '%s'", type);
		want = td->id;
	}
	if (entity && (rc = replica_find_entity(p->rep, want, entity, &only)) < 0)
		return rc;
	if (sqlite3_prepare_v2(db, ENTITY_LABEL_SQL, -1, &x.label, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT c.id, c.name, d.key, c.time, c.verdict, c.reason, c.body, c.ctr_end, c.blob"
	                       " FROM changes c JOIN devs d ON d.devno = c.devno ORDER BY c.lamport, c.id",
	                       -1, &s, NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_EIO, "replica: timeline: %s", sqlite3_errmsg(db));
		goto cleanup;
	}
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		samen_change ch;
		char id[65], dev[65];
		uint64_t ctr;
		uint32_t k = 0;
		uint8_t *body;
		size_t blen;
		if ((rc = replica_row_change(p->rep, s, 6, 8, 0, &body, &blen)) < 0)
			break;
		if (change_decode(&ch, body, blen) < 0) {
			free(body);
			rc = samen_error_wrap(SAMEN_ECORRUPT, "replica holds an undecodable change (run samen rebuild)");
			break;
		}
		sodium_bin2hex(id, sizeof(id), sqlite3_column_blob(s, 0), 32);
		sodium_bin2hex(dev, sizeof(dev), sqlite3_column_blob(s, 2), 32);
		ctr = (uint64_t)sqlite3_column_int64(s, 7) - ch.ncreates; /* n of this change's first CREATE */
		for (uint32_t i = 0; i < ch.nops && rc == 0; i++) {
			const samen_op *op = &ch.ops[i];
			const type_def *td;
			samen_timeline_entry t;
			char uid[17];
			if (op->kind == SAMEN_OP_CREATE) {
				schema_entity_uid(uid, ch.author, ctr + k++);
				td = schema_type(op->type);
			} else if (op->kind == SAMEN_OP_SET || op->kind == SAMEN_OP_DELETE) {
				schema_entity_uid(uid, change_ref_key(&ch, op->dev), op->n);
				td = schema_type(op->type);
			} else {
				continue; /* plan and member ops: see samen log */
			}
			if (!td || (entity && strcmp(uid, only.uid) != 0) || (want && td->id != want))
				continue;
			memset(&t, 0, sizeof(t));
			t.change = id;
			t.author = (const char *)sqlite3_column_text(s, 1);
			t.device = dev;
			t.time = sqlite3_column_int64(s, 3);
			t.accepted = sqlite3_column_int(s, 4);
			t.reason = (const char *)sqlite3_column_text(s, 5);
			t.type = td->name;
			t.entity = uid;
			label_of(&x, uid, label, sizeof(label));
			t.label = label;
			if (op->kind == SAMEN_OP_CREATE) {
				t.what = "created";
			} else if (op->kind == SAMEN_OP_DELETE) {
				t.what = "deleted";
			} else {
				const field_def *f = schema_field(td, op->field);
				t.what = "set";
				t.field = f ? f->name : "?";
				if (f)
					value_text(&x, &ch, f, op, value, sizeof(value));
				else
					snprintf(value, sizeof(value), "?");
				t.value = value;
			}
			rc = cb(&t, payload);
		}
		change_clear(&ch);
		free(body);
	}
cleanup:
	sqlite3_finalize(s);
	sqlite3_finalize(x.label);
	return rc;
}
