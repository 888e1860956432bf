/*
 * summary.c - the one-line description of a change, for commit messages and
 * `samen log`. It is derived from the change alone (and the plan's
 * language), never from replica state, so every replica writes the same
 * commit for the same change. The text is part of the commit, so it is part
 * of the history format: once released, a change of wording needs a new
 * change format version, or replicas of two versions would write different
 * commits for one change.
 */
#include "sync/internal.h"
#include "core/rights.h"
#include "core/schema.h"

#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *buf;
	size_t len, cap;
} sbuf;

static void sb_printf(sbuf *s, const char *fmt, ...)
{
	va_list ap;
	int n;
	if (!s->buf)
		return;
	va_start(ap, fmt);
	n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		s->len += (size_t)n < s->cap - s->len ? (size_t)n : s->cap - s->len - 1;
}

/* Label (field 1, when it is text) given to entity (dev, n) inside this
 * change, if any. */
static int title_in_change(const samen_change *c, uint32_t dev, uint64_t n, char *out, size_t cap)
{
	for (uint32_t i = 0; i < c->nops; i++) {
		const samen_op *op = &c->ops[i];
		const type_def *td = schema_type(op->type);
		const field_def *f = td ? schema_field(td, 1) : NULL;
		if (op->kind == SAMEN_OP_SET && op->dev == dev && op->n == n && op->field == 1 && f &&
		    f->kind != FIELD_REF) {
			schema_format_value(f, op->value, op->value_len, out, cap);
			return out[0] != '\0';
		}
	}
	return 0;
}

static const char *type_name(uint32_t type, bool nl)
{
	const type_def *td = schema_type(type);
	return td ? (nl ? td->name_nl : td->name) : "?";
}

/* Do all ops name the same entity? */
static bool one_entity(const samen_change *c)
{
	for (uint32_t i = 1; i < c->nops; i++)
		if (c->ops[i].n != c->ops[0].n ||
		    memcmp(change_ref_key(c, c->ops[i].dev), change_ref_key(c, c->ops[0].dev), 32) != 0)
			return false;
	return c->nops > 0;
}

/* A change of only rights ops: each named ("lid Piet (professional)
 * toegevoegd; toestemming van de klant vastgelegd voor wijziging 1a2b…").
 * A coordinator's consent op says so in words: it is not the client's own. */
static void rights_summary(sbuf *s, const samen_change *c, bool nl)
{
	char hex[17];
	for (uint32_t i = 0; i < c->nops; i++) {
		const samen_op *op = &c->ops[i];
		const char *sep = i ? "; " : "";
		if (op->kind == SAMEN_OP_MEMBER_ADD) {
			sb_printf(s, nl ? "%slid %.*s (%s) toegevoegd" : "%sadded member %.*s (%s)", sep, (int)op->str_len,
			          op->str, nl ? rights_role_name_nl((int)op->role) : rights_role_name((int)op->role));
			continue;
		}
		sodium_bin2hex(hex, sizeof(hex), op->key, 8);
		switch (op->kind) {
		case SAMEN_OP_REVOKE:
			sb_printf(s, nl ? "%slid %s ingetrokken" : "%srevoked member %s", sep, hex);
			break;
		case SAMEN_OP_SCOPE:
			sb_printf(s, nl ? "%swaardegebieden van lid %s gewijzigd" : "%slife areas of member %s changed", sep, hex);
			break;
		case SAMEN_OP_LINK:
			sodium_bin2hex(hex, sizeof(hex), op->key2, 8);
			sb_printf(s, nl ? "%sapparaat %s gekoppeld" : "%slinked device %s", sep, hex);
			break;
		case SAMEN_OP_UNLINK:
			sb_printf(s, nl ? "%sapparaat %s ontkoppeld" : "%sunlinked device %s", sep, hex);
			break;
		case SAMEN_OP_APPROVE:
			if (op->role)
				sb_printf(s, nl ? "%sTOESTEMMING VAN DE KLANT vastgelegd door de coördinator voor wijziging %s"
				                : "%sCLIENT'S CONSENT recorded by the coordinator for change %s", sep, hex);
			else
				sb_printf(s, nl ? "%sdoor de klant goedgekeurd: wijziging %s" : "%sapproved by the client: change %s",
				          sep, hex);
			break;
		}
	}
}

char *change_summary(const samen_change *c, const char *lang)
{
	bool nl = strcmp(lang, "en") != 0;
	sbuf s = {malloc(512), 0, 512};
	uint32_t creates = 0, sets = 0, deletes = 0, members = 0, rights = 0;
	char title[128], val[96], uid[17];


	if (!s.buf)
		return NULL;
	s.buf[0] = '\0';
	sb_printf(&s, "%.*s: ", (int)(c->name_len > 60 ? 60 : c->name_len), c->name);
	for (uint32_t i = 0; i < c->nops; i++) {
		switch (c->ops[i].kind) {
		case SAMEN_OP_CREATE: creates++; break;
		case SAMEN_OP_SET: sets++; break;
		case SAMEN_OP_DELETE: deletes++; break;
		case SAMEN_OP_MEMBER_ADD: members++; rights++; break;
		case SAMEN_OP_REVOKE: case SAMEN_OP_SCOPE: case SAMEN_OP_LINK: case SAMEN_OP_UNLINK: case SAMEN_OP_APPROVE:
			rights++;
			break;
		}
	}
	if (c->nops && c->ops[0].kind == SAMEN_OP_PLAN) {
		sb_printf(&s, nl ? "plan voor %.*s gestart" : "started the plan for %.*s", (int)c->ops[0].str_len,
		          c->ops[0].str);
	} else if (rights && rights == c->nops) {
		rights_summary(&s, c, nl);
	} else if (creates == 1 && deletes == 0 && members == 0) {
		/* "doel 'Werk vinden' aangemaakt" (the new entity is dev 0, n unknown
		 * here: its title is the one set on a dev-0 entity in this change) */
		const samen_op *cr = NULL;
		for (uint32_t i = 0; i < c->nops && !cr; i++)
			if (c->ops[i].kind == SAMEN_OP_CREATE)
				cr = &c->ops[i];
		title[0] = '\0';
		for (uint32_t i = 0; i < c->nops && !title[0]; i++)
			if (c->ops[i].kind == SAMEN_OP_SET && c->ops[i].dev == 0)
				title_in_change(c, 0, c->ops[i].n, title, sizeof(title));
		if (title[0])
			sb_printf(&s, nl ? "%s '%s' aangemaakt" : "created %s '%s'", type_name(cr->type, nl), title);
		else
			sb_printf(&s, nl ? "%s aangemaakt" : "created %s", type_name(cr->type, nl));
	} else if (sets == c->nops && one_entity(c)) {
		/* "doel 83371a9a status → bezig, streefdatum → 2027-03-01" (at
		 * most three fields named, then "…") */
		const type_def *td = schema_type(c->ops[0].type);
		schema_entity_uid(uid, change_ref_key(c, c->ops[0].dev), c->ops[0].n);
		sb_printf(&s, "%s %.8s ", type_name(c->ops[0].type, nl), uid);
		for (uint32_t i = 0; i < c->nops && i < 3; i++) {
			const samen_op *op = &c->ops[i];
			const field_def *f = td ? schema_field(td, op->field) : NULL;
			if (f && f->kind != FIELD_REF && f->kind != FIELD_REFS && f->kind != FIELD_TIES)
				schema_format_value(f, op->value, op->value_len, val, sizeof(val));
			else
				snprintf(val, sizeof(val), "%s", op->value_len && op->value[0] == 0xc0 ? "-" : "…");
			sb_printf(&s, "%s%s → %s", i ? ", " : "", f ? (nl ? f->name_nl : f->name) : "?", val[0] ? val : "-");
		}
		if (c->nops > 3)
			sb_printf(&s, ", …");
	} else if (c->nops == 1 && deletes == 1) {
		schema_entity_uid(uid, change_ref_key(c, c->ops[0].dev), c->ops[0].n);
		sb_printf(&s, nl ? "%s %.8s verwijderd" : "deleted %s %.8s", type_name(c->ops[0].type, nl), uid);
	} else {
		const char *sep = "";
		if (creates) {
			sb_printf(&s, nl ? "%u aangemaakt" : "%u created", creates);
			sep = ", ";
		}
		if (sets) {
			sb_printf(&s, nl ? "%s%u velden gewijzigd" : "%s%u fields changed", sep, sets);
			sep = ", ";
		}
		if (deletes) {
			sb_printf(&s, nl ? "%s%u verwijderd" : "%s%u deleted", sep, deletes);
			sep = ", ";
		}
		if (members)
			sb_printf(&s, nl ? "%s%u leden toegevoegd" : "%s%u members added", sep, members);
		if (rights > members)
			sb_printf(&s, nl ? "%s%u rechten gewijzigd" : "%s%u rights changed", sep, rights - members);
	}
	return s.buf;
}
