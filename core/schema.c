/* schema.c - the entity types of a plan and the rules for their values. */
#include "core/schema.h"
#include "core/mpread.h"
#include "core/change.h"
#include "samen/common.h"

#include <ctype.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Type and field ids are wire format: never renumber, only append. Field 1
 * of every type is its label: what a person names it by. Enum labels are
 * the Dutch words the method uses (docs/format.md lists them). */
#define N(a) (uint32_t)(sizeof(a) / sizeof((a)[0]))
#define STR(id, nm, nl, max, req) {id, nm, nl, FIELD_STR, 1, max, NULL, 0, 0, req}
#define TEXT(id, nm, nl, max, req) {id, nm, nl, FIELD_TEXT, 0, max, NULL, 0, 0, req}
#define ENUM(id, nm, nl, labels) {id, nm, nl, FIELD_ENUM, 0, 0, labels, N(labels), 0, 0}
#define SET(id, nm, nl, labels) {id, nm, nl, FIELD_SET, 0, 0, labels, N(labels), 0, 0}
#define INT(id, nm, nl, lo, hi) {id, nm, nl, FIELD_INT, lo, hi, NULL, 0, 0, 0}
#define DATE(id, nm, nl, req) {id, nm, nl, FIELD_DATE, 0, 0, NULL, 0, 0, req}
#define RANK(id, nm, nl) {id, nm, nl, FIELD_RANK, 0, 0, NULL, 0, 0, 0}
#define REF(id, nm, nl, type, req) {id, nm, nl, FIELD_REF, 0, 0, NULL, 0, type, req}
#define REFS(id, nm, nl, type) {id, nm, nl, FIELD_REFS, 0, SAMEN_MAX_REFS, NULL, 0, type, 0}

static const char *const goal_term[] = {"lang", "middellang", "kort"};
static const char *const goal_status[] = {"open", "bezig", "bereikt", "bijgesteld", "gestopt"};
static const char *const strength_source[] = {"klant", "netwerk", "werker"};
static const char *const tie_sector[] = {"familie", "vrienden", "buren", "werk/school", "professionals",
                                         "vereniging/kerk"};
static const char *const tie_strength[] = {"zwak", "gemiddeld", "sterk"};
static const char *const tie_valence[] = {"positief", "negatief"};
static const char *const tie_support[] = {"praktisch", "gezelschap", "advies", "emotioneel"};
static const char *const tie_reciprocity[] = {"wederkerig", "geeft vooral", "ontvangt vooral", "geen"};
static const char *const action_tier[] = {"klant", "netwerk", "professional"};
static const char *const action_status[] = {"nog te doen", "mee bezig", "afgerond"};
static const char *const plan_status[] = {"actief", "afgesloten"};
static const char *const progress_level[] = {"achteruit", "geen", "enige", "goed", "bereikt"};

/* The plan itself: one entity, made by the genesis */
static const field_def plan_fields[] = {
	STR(1, "title", "titel", 200, 1),
	ENUM(2, "status", "status", plan_status),
	DATE(3, "started", "gestart", 0),
};

/* 1. Richting / Sterkte-analyse */
static const field_def area_fields[] = {
	STR(1, "name", "naam", 80, 1),
	TEXT(2, "wish", "wens", 4000, 0),
	TEXT(3, "situation", "huidige situatie", 4000, 0),
	RANK(4, "rank", "volgorde"),
};
static const field_def strength_fields[] = {
	STR(1, "text", "tekst", 400, 1),
	REF(2, "area", "waardegebied", SAMEN_TYPE_AREA, 0),
	ENUM(3, "source", "bron", strength_source),
};
static const field_def vip_fields[] = {
	REF(1, "person", "persoon", SAMEN_TYPE_PERSON, 1),
	TEXT(2, "why", "waarom", 4000, 0),
	REF(3, "area", "waardegebied", SAMEN_TYPE_AREA, 0),
};
static const field_def lifestyle_fields[] = {
	TEXT(1, "text", "tekst", 4000, 1),
	REF(2, "area", "waardegebied", SAMEN_TYPE_AREA, 0),
};

/* 2. Netwerkanalyse */
static const field_def person_fields[] = {
	STR(1, "name", "naam", 200, 1),
	STR(2, "relation", "relatie", 200, 0),
	TEXT(3, "contact", "contact", 1000, 0),
};
static const field_def tie_fields[] = {
	REF(1, "person", "persoon", SAMEN_TYPE_PERSON, 1),
	ENUM(2, "sector", "sector", tie_sector),
	INT(3, "ring", "ring", 1, 3),
	ENUM(4, "strength", "sterkte", tie_strength),
	ENUM(5, "valence", "lading", tie_valence),
	SET(6, "support", "steun", tie_support),
	ENUM(7, "reciprocity", "wederkerigheid", tie_reciprocity),
	TEXT(8, "note", "notitie", 1000, 0),
};
static const field_def snapshot_fields[] = {
	DATE(1, "date", "datum", 1),
	STR(2, "note", "notitie", 200, 0),
	{3, "ties", "relaties", FIELD_TIES, 0, SAMEN_MAX_SNAPSHOT_TIES, NULL, 0, 0, 0},
};

/* 3. Samenwerkingsplan */
static const field_def goal_fields[] = {
	STR(1, "title", "titel", 200, 1),
	REF(2, "area", "waardegebied", SAMEN_TYPE_AREA, 0),
	REF(3, "parent", "bovenliggend doel", SAMEN_TYPE_GOAL, 0),
	ENUM(4, "term", "termijn", goal_term),
	INT(5, "priority", "prioriteit", 1, 5),
	RANK(6, "rank", "volgorde"),
	ENUM(7, "status", "status", goal_status),
	DATE(8, "target", "streefdatum", 0),
	TEXT(9, "description", "omschrijving", 4000, 0),
};
static const field_def action_fields[] = {
	STR(1, "text", "tekst", 400, 1),
	REF(2, "goal", "doel", SAMEN_TYPE_GOAL, 0),
	ENUM(3, "tier", "wie", action_tier),
	REF(4, "person", "persoon", SAMEN_TYPE_PERSON, 0),
	DATE(5, "due", "uiterlijk", 0),
	ENUM(6, "status", "status", action_status),
	TEXT(7, "reason", "reden", 2000, 0),
	REF(8, "meeting", "bijeenkomst", SAMEN_TYPE_MEETING, 0),
	REF(9, "decision", "besluit", SAMEN_TYPE_DECISION, 0),
	RANK(10, "rank", "volgorde"),
};
static const field_def pdsa_fields[] = {
	STR(1, "title", "titel", 200, 1),
	REF(2, "goal", "doel", SAMEN_TYPE_GOAL, 0),
	REF(3, "action", "actie", SAMEN_TYPE_ACTION, 0),
	/* Plan, Do, Study, Act; not "plan", which is the command line's --plan */
	TEXT(4, "planned", "plannen", 4000, 0),
	TEXT(5, "done", "uitvoeren", 4000, 0),
	TEXT(6, "studied", "bestuderen", 4000, 0),
	TEXT(7, "acted", "bijsturen", 4000, 0),
	DATE(8, "start", "start", 0),
	DATE(9, "end", "einde", 0),
};

/* 4. Steungroep / Steungroepverslagen */
static const field_def group_fields[] = {
	STR(1, "name", "naam", 200, 1),
	REFS(2, "members", "leden", SAMEN_TYPE_PERSON),
	REF(3, "coordinator", "coordinator", SAMEN_TYPE_PERSON, 0),
	INT(4, "rhythm", "ritme", 1, 365),
	DATE(5, "next", "volgende", 0),
};
static const field_def meeting_fields[] = {
	DATE(1, "date", "datum", 1),
	REF(2, "group", "steungroep", SAMEN_TYPE_GROUP, 0),
	REFS(3, "present", "aanwezig", SAMEN_TYPE_PERSON),
	TEXT(4, "agenda", "agenda", 4000, 0),
	TEXT(5, "minutes", "verslag", 16000, 0),
	DATE(6, "next", "volgende", 0),
};
static const field_def decision_fields[] = {
	STR(1, "text", "tekst", 400, 1),
	REF(2, "meeting", "bijeenkomst", SAMEN_TYPE_MEETING, 0),
};

/* 5. Evaluatie */
static const field_def evaluation_fields[] = {
	DATE(1, "date", "datum", 1),
	TEXT(2, "summary", "samenvatting", 4000, 0),
	DATE(3, "next", "volgende", 0),
};
static const field_def progress_fields[] = {
	REF(1, "goal", "doel", SAMEN_TYPE_GOAL, 1),
	REF(2, "evaluation", "evaluatie", SAMEN_TYPE_EVALUATION, 0),
	ENUM(3, "progress", "voortgang", progress_level),
	TEXT(4, "note", "notitie", 4000, 0),
};
static const field_def score_fields[] = {
	REF(1, "area", "waardegebied", SAMEN_TYPE_AREA, 1),
	REF(2, "evaluation", "evaluatie", SAMEN_TYPE_EVALUATION, 0),
	INT(3, "score", "cijfer", 1, 10),
	TEXT(4, "note", "notitie", 1000, 0),
};

#define TYPE(id, nm, nl, pl, mod, fields, area) {id, nm, nl, pl, mod, fields, N(fields), area}
static const type_def types[] = {
	TYPE(SAMEN_TYPE_GOAL, "goal", "doel", "goals", "plan", goal_fields, 2),
	TYPE(SAMEN_TYPE_AREA, "area", "waardegebied", "areas", "richting", area_fields, 0),
	TYPE(SAMEN_TYPE_STRENGTH, "strength", "sterkte", "strengths", "richting", strength_fields, 2),
	TYPE(SAMEN_TYPE_VIP, "vip", "vip", "vips", "richting", vip_fields, 3),
	TYPE(SAMEN_TYPE_LIFESTYLE, "lifestyle", "leefstijl", "lifestyle_notes", "richting", lifestyle_fields, 2),
	TYPE(SAMEN_TYPE_PERSON, "person", "persoon", "persons", "netwerk", person_fields, 0),
	TYPE(SAMEN_TYPE_TIE, "tie", "relatie", "ties", "netwerk", tie_fields, 0),
	TYPE(SAMEN_TYPE_SNAPSHOT, "snapshot", "momentopname", "snapshots", "netwerk", snapshot_fields, 0),
	TYPE(SAMEN_TYPE_ACTION, "action", "actie", "actions", "plan", action_fields, 0),
	TYPE(SAMEN_TYPE_PDSA, "pdsa", "pdsa", "pdsa_cycles", "plan", pdsa_fields, 0),
	TYPE(SAMEN_TYPE_GROUP, "group", "steungroep", "support_groups", "steungroep", group_fields, 0),
	TYPE(SAMEN_TYPE_MEETING, "meeting", "bijeenkomst", "meetings", "steungroep", meeting_fields, 0),
	TYPE(SAMEN_TYPE_DECISION, "decision", "besluit", "decisions", "steungroep", decision_fields, 0),
	TYPE(SAMEN_TYPE_EVALUATION, "evaluation", "evaluatie", "evaluations", "evaluatie", evaluation_fields, 0),
	TYPE(SAMEN_TYPE_PROGRESS, "progress", "voortgang", "progress", "evaluatie", progress_fields, 0),
	TYPE(SAMEN_TYPE_SCORE, "score", "cijfer", "scores", "evaluatie", score_fields, 1),
	TYPE(SAMEN_TYPE_PLAN, "plan", "plan", "plan_info", "plan", plan_fields, 0),
};

const char *const schema_default_areas[10] = {"partner",  "familie", "werk",     "studie",   "geloof",
                                             "vriendschap", "inkomen", "woonplek", "geldzaken", "zingeving"};

const type_def *schema_type_at(size_t i) { return i < N(types) ? &types[i] : NULL; }

const type_def *schema_type(uint32_t id)
{
	for (size_t i = 0; i < N(types); i++)
		if (types[i].id == id)
			return &types[i];
	return NULL;
}

const type_def *schema_type_by_name(const char *name)
{
	for (size_t i = 0; i < N(types); i++)
		if (strcmp(types[i].name, name) == 0 || strcmp(types[i].name_nl, name) == 0)
			return &types[i];
	return NULL;
}

const field_def *schema_field(const type_def *t, uint32_t id)
{
	for (uint32_t i = 0; i < t->nfields; i++)
		if (t->fields[i].id == id)
			return &t->fields[i];
	return NULL;
}

const field_def *schema_field_by_name(const type_def *t, const char *name)
{
	for (uint32_t i = 0; i < t->nfields; i++)
		if (strcmp(t->fields[i].name, name) == 0 || strcmp(t->fields[i].name_nl, name) == 0)
			return &t->fields[i];
	return NULL;
}

static int days_in_month(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return d[m - 1];
}

static int date_valid(const char *s, size_t n)
{
	int y, m, d;
	if (n != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (size_t i = 0; i < 10; i++)
		if (i != 4 && i != 7 && !isdigit((unsigned char)s[i]))
			return 0;
	y = atoi(s);
	m = (s[5] - '0') * 10 + (s[6] - '0');
	d = (s[8] - '0') * 10 + (s[9] - '0');
	return y >= 1900 && y <= 2999 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

static int rank_valid(const char *s, size_t n)
{
	if (n < 1 || n > 32 || s[n - 1] == '0')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z')))
			return 0;
	return 1;
}

int schema_text_printable(const char *s, size_t n, int multiline)
{
	const unsigned char *u = (const unsigned char *)s;
	for (size_t i = 0; i < n; i++) {
		uint64_t w;
		/* eight bytes of printable ASCII (0x20..0x7e) at a time: no byte
		 * below 0x20, none at or above 0x7f */
		while (n - i >= 8) {
			memcpy(&w, u + i, 8);
			if (((w - 0x2020202020202020ull) | (w + 0x0101010101010101ull)) & 0x8080808080808080ull)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (u[i] < 0x20 || u[i] == 0x7f) {
			if (multiline && (u[i] == '\n' || u[i] == '\t'))
				continue;
			return 0;
		}
		if (u[i] == 0xc2 && i + 1 < n && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
			return 0; /* C1 controls, U+0080..U+009F */
	}
	return 1;
}

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), SAMEN_EINVAL)

/* The [a, b] pairs of a list (already checked well formed) are distinct.
 * Lists are short (SAMEN_MAX_REFS), so pairs are compared directly. */
static int refs_distinct(const uint8_t *v, size_t len)
{
	uint64_t a[SAMEN_MAX_REFS], b[SAMEN_MAX_REFS];
	uint32_t n;
	mpr r;
	mpr_init(&r, v, len);
	if (mpr_array(&r, &n, SAMEN_MAX_REFS) < 0)
		return 0;
	for (uint32_t k = 0; k < n; k++) {
		mpr_array_exact(&r, 2);
		mpr_uint(&r, &a[k]);
		mpr_uint(&r, &b[k]);
		for (uint32_t j = 0; j < k; j++)
			if (a[j] == a[k] && b[j] == b[k])
				return 0;
	}
	return 1;
}

/* An optional enum-like uint below lim (nil allowed). */
static int opt_uint(mpr *r, uint64_t lo, uint64_t lim)
{
	uint64_t u;
	if (mpr_peek(r) == MPR_NIL)
		return mpr_nil(r);
	if (mpr_uint(r, &u) < 0 || u < lo || u >= lim)
		return -1;
	return 0;
}

/* A snapshot of the network map: [[uid:str16, name:str, sector, ring,
 * strength, valence, support, reciprocity], ...], each of the last six an
 * index as in the tie's fields, or nil. */
static int check_ties(const field_def *f, mpr *r, char *why, size_t whylen)
{
	uint32_t n, m, slen;
	const char *s;
	if (mpr_array(r, &n, (uint32_t)f->max) < 0)
		return WHY("%s must be a list of at most %" PRId64 " ties (%s)", f->name, f->max, r->err);
	for (uint32_t k = 0; k < n; k++) {
		if (mpr_array(r, &m, 8) < 0 || m != 8)
			return WHY("%s: tie %u must have 8 elements", f->name, k);
		if (mpr_str(r, &s, &slen, 16) < 0 || slen != 16)
			return WHY("%s: tie %u: the person's id must be 16 hex digits", f->name, k);
		for (uint32_t i = 0; i < 16; i++)
			if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
				return WHY("%s: tie %u: the person's id must be 16 hex digits", f->name, k);
		if (mpr_str(r, &s, &slen, 200) < 0 || slen == 0 || !schema_text_printable(s, slen, 0))
			return WHY("%s: tie %u: the person's name must be one line of 1-200 bytes", f->name, k);
		if (opt_uint(r, 0, 6) < 0 || opt_uint(r, 1, 4) < 0 || opt_uint(r, 0, 3) < 0 || opt_uint(r, 0, 2) < 0 ||
		    opt_uint(r, 0, 16) < 0 || opt_uint(r, 0, 4) < 0)
			return WHY("%s: tie %u: sector, ring, strength, valence, support or reciprocity out of range",
			           f->name, k);
	}
	return mpr_done(r) ? 0 : WHY("%s: bytes after the list", f->name);
}

int schema_check_value(const field_def *f, const uint8_t *v, size_t len, uint32_t ndevs,
                       char *why, size_t whylen)
{
	mpr r;
	const char *s;
	uint32_t n;
	uint64_t u;
	int64_t i;

	mpr_init(&r, v, len);
	if (mpr_peek(&r) == MPR_NIL) {
		if (f->required)
			return WHY("%s cannot be cleared", f->name);
		return mpr_nil(&r) == 0 && mpr_done(&r) ? 0 : WHY("%s: malformed nil", f->name);
	}
	switch (f->kind) {
	case FIELD_STR:
	case FIELD_TEXT:
		if (mpr_str(&r, &s, &n, (uint32_t)f->max) < 0 || !mpr_done(&r))
			return WHY("%s must be text of at most %" PRId64 " bytes (%s)", f->name, f->max, r.err);
		if ((int64_t)n < f->min)
			return WHY("%s must not be empty", f->name);
		if (!schema_text_printable(s, n, f->kind == FIELD_TEXT))
			return WHY(f->kind == FIELD_STR ? "%s must be a single line without control characters"
			                                : "%s must not contain control characters", f->name);
		return 0;
	case FIELD_ENUM:
		if (mpr_uint(&r, &u) < 0 || !mpr_done(&r) || u >= f->nlabels)
			return WHY("%s must be one of %u choices", f->name, f->nlabels);
		return 0;
	case FIELD_INT:
		if (mpr_int(&r, &i) < 0 || !mpr_done(&r) || i < f->min || i > f->max)
			return WHY("%s must be a whole number from %" PRId64 " to %" PRId64, f->name, f->min, f->max);
		return 0;
	case FIELD_DATE:
		if (mpr_str(&r, &s, &n, 10) < 0 || !mpr_done(&r) || !date_valid(s, n))
			return WHY("%s must be a date YYYY-MM-DD", f->name);
		return 0;
	case FIELD_RANK:
		if (mpr_str(&r, &s, &n, 32) < 0 || !mpr_done(&r) || !rank_valid(s, n))
			return WHY("%s must be a rank of 1-32 characters 0-9a-z not ending in 0", f->name);
		return 0;
	case FIELD_REF:
		if (mpr_array_exact(&r, 2) < 0 || mpr_uint_max(&r, &u, ndevs) < 0 ||
		    mpr_uint(&r, &u) < 0 || !mpr_done(&r))
			return WHY("%s must be a reference [dev, n] (%s)", f->name, r.err);
		return 0;
	case FIELD_SET:
		if (mpr_uint(&r, &u) < 0 || !mpr_done(&r) || u >= (1ull << f->nlabels))
			return WHY("%s must be a set of the %u choices", f->name, f->nlabels);
		return 0;
	case FIELD_REFS:
		if (mpr_array(&r, &n, (uint32_t)f->max) < 0)
			return WHY("%s must be a list of at most %" PRId64 " references (%s)", f->name, f->max, r.err);
		for (uint32_t k = 0; k < n; k++)
			if (mpr_array_exact(&r, 2) < 0 || mpr_uint_max(&r, &u, ndevs) < 0 || mpr_uint(&r, &u) < 0)
				return WHY("%s: entry %u must be a reference [dev, n] (%s)", f->name, k, r.err);
		if (!mpr_done(&r))
			return WHY("%s: bytes after the list", f->name);
		return refs_distinct(v, len) ? 0 : WHY("%s names one entity twice", f->name);
	case FIELD_TIES:
		return check_ties(f, &r, why, whylen);
	}
	return WHY("%s: unknown field kind", f->name);
}

static void choices_of(const field_def *f, char *buf, size_t cap)
{
	buf[0] = '\0';
	for (uint32_t k = 0; k < f->nlabels; k++) {
		strncat(buf, f->labels[k], cap - strlen(buf) - 1);
		if (k + 1 < f->nlabels)
			strncat(buf, ", ", cap - strlen(buf) - 1);
	}
}

/* "praktisch, advies" -> bitmask */
static int parse_set(const field_def *f, const char *text, uint8_t **out, size_t *len)
{
	uint64_t mask = 0;
	const char *p = text;
	char choices[256];
	while (*p) {
		const char *q = strchr(p, ',');
		size_t n = q ? (size_t)(q - p) : strlen(p);
		uint32_t k;
		while (n && *p == ' ') {
			p++;
			n--;
		}
		while (n && p[n - 1] == ' ')
			n--;
		for (k = 0; k < f->nlabels; k++)
			if (strlen(f->labels[k]) == n && strncmp(p, f->labels[k], n) == 0)
				break;
		if (n && k == f->nlabels) {
			choices_of(f, choices, sizeof(choices));
			return samen_error_set(SAMEN_EINVAL, "%s takes some of: %s, separated by commas (got '%.*s')",
			                       f->name, choices, (int)(n > 60 ? 60 : n), p);
		}
		if (n)
			mask |= 1ull << k;
		p += n;
		while (*p == ' ')
			p++;
		if (*p == ',')
			p++;
	}
	return value_encode_uint(out, len, mask);
}

int schema_parse_value(const field_def *f, const char *text, uint8_t **out, size_t *len)
{
	size_t n = strlen(text);
	char *end;
	long long ll;

	if (n == 0 || strcmp(text, "-") == 0) {
		if (f->required)
			return samen_error_set(SAMEN_EINVAL, "%s cannot be cleared; give a new %s instead", f->name, f->name);
		return value_encode_nil(out, len);
	}
	if (!mpr_utf8_valid(text, n))
		return samen_error_set(SAMEN_EINVAL, "%s: the text is not valid UTF-8", f->name);
	switch (f->kind) {
	case FIELD_STR:
	case FIELD_TEXT:
		if ((int64_t)n > f->max)
			return samen_error_set(SAMEN_EINVAL, "%s is %zu bytes long; at most %" PRId64 " allowed",
			                       f->name, n, f->max);
		if (!schema_text_printable(text, n, f->kind == FIELD_TEXT))
			return samen_error_set(SAMEN_EINVAL, f->kind == FIELD_STR
			                                         ? "%s must be a single line without control characters"
			                                         : "%s must not contain control characters (tabs and"
			                                           " new lines are fine)", f->name);
		return value_encode_str(out, len, text, n);
	case FIELD_ENUM:
		for (uint32_t k = 0; k < f->nlabels; k++)
			if (strcmp(text, f->labels[k]) == 0)
				return value_encode_uint(out, len, k);
		{
			char choices[256];
			choices_of(f, choices, sizeof(choices));
			return samen_error_set(SAMEN_EINVAL, "%s must be one of: %s (got '%s')", f->name,
			                       choices, text);
		}
	case FIELD_INT:
		ll = strtoll(text, &end, 10);
		if (*end || ll < f->min || ll > f->max)
			return samen_error_set(SAMEN_EINVAL, "%s must be a whole number from %" PRId64 " to %" PRId64
			                       " (got '%s')", f->name, f->min, f->max, text);
		return value_encode_uint(out, len, (uint64_t)ll); /* min >= 0 for every INT field so far */
	case FIELD_DATE:
		if (!date_valid(text, n))
			return samen_error_set(SAMEN_EINVAL, "%s must be a date YYYY-MM-DD (got '%s')", f->name, text);
		return value_encode_str(out, len, text, n);
	case FIELD_RANK:
		if (!rank_valid(text, n))
			return samen_error_set(SAMEN_EINVAL, "%s must be 1-32 characters 0-9a-z not ending in 0 (got '%s')",
			                       f->name, text);
		return value_encode_str(out, len, text, n);
	case FIELD_SET:
		return parse_set(f, text, out, len);
	case FIELD_TIES:
		return samen_error_set(SAMEN_EINVAL, "%s cannot be typed in: samen network snapshot records them", f->name);
	case FIELD_REF:
	case FIELD_REFS:
		break;
	}
	return samen_error_set(SAMEN_EINVAL, "%s: a reference is resolved by the caller", f->name);
}

/* Sets as "a, b"; lists of references as "uid, uid"; snapshots as "N ties". */
static size_t format_list(const field_def *f, mpr *r, char *buf, size_t cap)
{
	size_t o = 0;
	uint64_t u;
	uint32_t n;
	const uint8_t *key;
	char uid[17];

	if (f->kind == FIELD_SET) {
		if (mpr_uint(r, &u) < 0)
			return 0;
		for (uint32_t k = 0; k < f->nlabels; k++)
			if (u & (1ull << k))
				o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", f->labels[k]);
	} else if (f->kind == FIELD_TIES) {
		if (mpr_array(r, &n, UINT32_MAX) < 0)
			return 0;
		o = (size_t)snprintf(buf, cap, "%u", n);
	} else {
		if (mpr_array(r, &n, SAMEN_MAX_REFS) < 0)
			return 0;
		for (uint32_t k = 0; k < n && o < cap; k++) {
			if (mpr_array_exact(r, 2) < 0 || mpr_bin_exact(r, &key, 32) < 0 || mpr_uint(r, &u) < 0)
				break;
			schema_entity_uid(uid, key, u);
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? ", " : "", uid);
		}
	}
	return o < cap ? o : cap - 1;
}

size_t schema_format_value(const field_def *f, const uint8_t *v, size_t len, char *buf, size_t cap)
{
	mpr r;
	const char *s;
	const uint8_t *key;
	uint32_t n;
	uint64_t u;
	int64_t i;
	char uid[17];
	int w = 0;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	mpr_init(&r, v, len);
	if (mpr_peek(&r) != MPR_NIL && f && (f->kind == FIELD_SET || f->kind == FIELD_REFS || f->kind == FIELD_TIES))
		return format_list(f, &r, buf, cap);
	switch (mpr_peek(&r)) {
	case MPR_NIL:
		return 0;
	case MPR_STR:
		if (mpr_str(&r, &s, &n, UINT32_MAX) == 0)
			w = snprintf(buf, cap, "%.*s", (int)n, s);
		break;
	case MPR_UINT:
		if (f->kind == FIELD_ENUM && mpr_uint(&r, &u) == 0 && u < f->nlabels)
			w = snprintf(buf, cap, "%s", f->labels[u]);
		else if (mpr_int(&r, &i) == 0)
			w = snprintf(buf, cap, "%" PRId64, i);
		break;
	case MPR_NEGINT:
		if (mpr_int(&r, &i) == 0)
			w = snprintf(buf, cap, "%" PRId64, i);
		break;
	case MPR_ARRAY:
		if (mpr_array_exact(&r, 2) == 0 && mpr_bin_exact(&r, &key, 32) == 0 && mpr_uint(&r, &u) == 0) {
			schema_entity_uid(uid, key, u);
			w = snprintf(buf, cap, "%s", uid);
		}
		break;
	default:
		break;
	}
	if (w < 0)
		return 0;
	return (size_t)w < cap ? (size_t)w : cap - 1;
}

void schema_entity_uid(char out[17], const uint8_t key[32], uint64_t n)
{
	/* BLAKE2b's smallest output is 16 bytes; the uid is its first 8. */
	uint8_t h[16], nb[8];
	crypto_generichash_state st;
	for (int k = 0; k < 8; k++)
		nb[k] = (uint8_t)(n >> (56 - 8 * k));
	crypto_generichash_init(&st, NULL, 0, 16);
	crypto_generichash_update(&st, (const uint8_t *)"samen entity", 12);
	crypto_generichash_update(&st, key, 32);
	crypto_generichash_update(&st, nb, 8);
	crypto_generichash_final(&st, h, 16);
	sodium_bin2hex(out, 17, h, 8);
}
