/*
 * schema.h - entity types and their fields.
 *
 * The engine is generic: an entity is (creator device, counter) with a type;
 * its fields are multi-value registers. A type is a table of fields, each
 * with a kind that says which values are valid. Adding a module means adding
 * a type table here; the change format, the merge and the replica stay as
 * they are. Type and field ids are part of the change format and never
 * change meaning; names are for people and the command line.
 */
#ifndef SAMEN_CORE_SCHEMA_H
#define SAMEN_CORE_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	FIELD_STR,   /* one line of text, 1..max bytes of UTF-8 */
	FIELD_TEXT,  /* multi-line text, 0..max bytes */
	FIELD_ENUM,  /* uint index into labels */
	FIELD_INT,   /* integer in [min, max] */
	FIELD_DATE,  /* "YYYY-MM-DD", a real calendar date */
	FIELD_REF,   /* reference to an entity of ref_type; [dev, n] in a change */
	FIELD_RANK,  /* fractional index: 1..32 chars of [0-9a-z], not ending in '0' */
	FIELD_SET,   /* a set of labels: uint bitmask below 2^nlabels */
	FIELD_REFS,  /* a list of distinct references, at most max: [[dev, n], ...] */
	FIELD_TIES   /* a network map frozen in time (see docs/format.md) */
} field_kind;

typedef struct {
	uint32_t id;
	const char *name;         /* English, used on the command line and in JSON */
	const char *name_nl;      /* Dutch label */
	field_kind kind;
	int64_t min, max;         /* INT range; STR/TEXT max bytes */
	const char *const *labels;/* ENUM labels (Dutch words the method uses) */
	uint32_t nlabels;
	uint32_t ref_type;        /* REF: type id of the target */
	int required;             /* may not be cleared (nil) */
} field_def;

typedef struct {
	uint32_t id;
	const char *name;         /* "goal" */
	const char *name_nl;      /* "doel" */
	const char *plural;       /* "goals": the name of its SQLite view */
	const char *module;       /* which of the method's five modules */
	const field_def *fields;
	uint32_t nfields;
	uint32_t area_field;      /* field naming the life area it belongs to (0: none) */
} type_def;

/* Type ids are wire format. */
#define SAMEN_TYPE_GOAL 1u
#define SAMEN_TYPE_AREA 2u
#define SAMEN_TYPE_STRENGTH 3u
#define SAMEN_TYPE_VIP 4u
#define SAMEN_TYPE_LIFESTYLE 5u
#define SAMEN_TYPE_PERSON 6u
#define SAMEN_TYPE_TIE 7u
#define SAMEN_TYPE_SNAPSHOT 8u
#define SAMEN_TYPE_ACTION 9u
#define SAMEN_TYPE_PDSA 10u
#define SAMEN_TYPE_GROUP 11u
#define SAMEN_TYPE_MEETING 12u
#define SAMEN_TYPE_DECISION 13u
#define SAMEN_TYPE_EVALUATION 14u
#define SAMEN_TYPE_PROGRESS 15u
#define SAMEN_TYPE_SCORE 16u
#define SAMEN_TYPE_PLAN 17u

#define SAMEN_MAX_REFS 64u             /* entries in a list field */
#define SAMEN_MAX_SNAPSHOT_TIES 1000u  /* ties in a network snapshot */
/* The ten life areas every new plan starts with (the method's list). */
extern const char *const schema_default_areas[10];

/* The i-th type in schema order (NULL past the end). */
const type_def *schema_type_at(size_t i);

const type_def *schema_type(uint32_t id);
const type_def *schema_type_by_name(const char *name);
const field_def *schema_field(const type_def *t, uint32_t id);
const field_def *schema_field_by_name(const type_def *t, const char *name);

/* Check a canonical msgpack value against a field. nil is always valid (it
 * clears the field). For REF, the value is [dev, n] with dev <= ndevs; the
 * caller checks that the target exists. On failure returns SAMEN_EINVAL and
 * writes the reason into why. */
int schema_check_value(const field_def *f, const uint8_t *v, size_t len, uint32_t ndevs,
                       char *why, size_t whylen);

/* Parse what a person typed into a canonical value (not for REF fields).
 * "" or "-" clears the field (nil). Errors say what was expected. */
int schema_parse_value(const field_def *f, const char *text, uint8_t **out, size_t *len);

/* Render a stored value as text ("" for nil). REF values in the replica are
 * [key:bin32, n] and render as the target's uid. Returns bytes written
 * (truncated to cap-1, always NUL-terminated). */
size_t schema_format_value(const field_def *f, const uint8_t *v, size_t len, char *buf, size_t cap);

/* Text fit to print on a terminal: no C0 or C1 control characters (escape
 * sequences could rewrite what a person sees), except '\n' and '\t' when
 * multiline. s must already be valid UTF-8. */
int schema_text_printable(const char *s, size_t n, int multiline);

/* The uid people use for an entity: 16 hex digits of
 * BLAKE2b-64("samen entity" || creator key || n as 8 bytes big-endian). */
void schema_entity_uid(char out[17], const uint8_t key[32], uint64_t n);

#endif
