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

static const char *const goal_term[] = {"lang", "middellang", "kort"};
static const char *const goal_status[] = {"open", "bezig", "bereikt", "bijgesteld", "gestopt"};

/* Field ids are wire format: never renumber, only append. */
static const field_def goal_fields[] = {
	{1, "title", "titel", FIELD_STR, 1, 200, NULL, 0, 0, 1},
	{2, "area", "waardegebied", FIELD_STR, 1, 80, NULL, 0, 0, 0},
	{3, "parent", "bovenliggend doel", FIELD_REF, 0, 0, NULL, 0, SAMEN_TYPE_GOAL, 0},
	{4, "term", "termijn", FIELD_ENUM, 0, 0, goal_term, 3, 0, 0},
	{5, "priority", "prioriteit", FIELD_INT, 1, 5, NULL, 0, 0, 0},
	{6, "rank", "volgorde", FIELD_RANK, 0, 0, NULL, 0, 0, 0},
	{7, "status", "status", FIELD_ENUM, 0, 0, goal_status, 5, 0, 0},
	{8, "target", "streefdatum", FIELD_DATE, 0, 0, NULL, 0, 0, 0},
	{9, "description", "omschrijving", FIELD_TEXT, 0, 4000, NULL, 0, 0, 0},
};

static const type_def types[] = {
	{SAMEN_TYPE_GOAL, "goal", "doel", goal_fields, sizeof(goal_fields) / sizeof(goal_fields[0])},
};

const type_def *schema_type(uint32_t id)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (types[i].id == id)
			return &types[i];
	return NULL;
}

const type_def *schema_type_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
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
	}
	return WHY("%s: unknown field kind", f->name);
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
			char choices[256] = "";
			for (uint32_t k = 0; k < f->nlabels; k++) {
				strncat(choices, f->labels[k], sizeof(choices) - strlen(choices) - 1);
				if (k + 1 < f->nlabels)
					strncat(choices, ", ", sizeof(choices) - strlen(choices) - 1);
			}
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
	case FIELD_REF:
		break;
	}
	return samen_error_set(SAMEN_EINVAL, "%s: a reference is resolved by the caller", f->name);
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
