/*
 * samen/schema.h - what a plan can hold: its entity types and their fields.
 *
 * The five modules of the method (richting, netwerk, doelen en acties,
 * steungroep, evaluatie) are entity types of one engine; docs/format.md
 * lists them with every field. Field 1 of each type is its label, the thing
 * a person names it by.
 */
#ifndef SAMEN_SCHEMA_H
#define SAMEN_SCHEMA_H

#include "samen/common.h"

#include <stddef.h>

typedef enum {
	SAMEN_FIELD_LINE,     /* one line of text */
	SAMEN_FIELD_TEXT,     /* text with new lines */
	SAMEN_FIELD_CHOICE,   /* one of labels */
	SAMEN_FIELD_NUMBER,   /* whole number in [min, max] */
	SAMEN_FIELD_DATE,     /* YYYY-MM-DD */
	SAMEN_FIELD_REF,      /* another entity, of ref_type */
	SAMEN_FIELD_RANK,     /* order key */
	SAMEN_FIELD_CHOICES,  /* some of labels, comma separated */
	SAMEN_FIELD_REFS,     /* other entities of ref_type, comma separated */
	SAMEN_FIELD_TIES      /* a frozen network map (snapshots) */
} samen_field_kind;

typedef struct {
	const char *name;           /* English, for the command line and JSON */
	const char *name_nl;        /* Dutch */
	samen_field_kind kind;
	long long min, max;         /* NUMBER: range; LINE/TEXT: max bytes */
	const char *const *labels;  /* CHOICE, CHOICES */
	unsigned nlabels;
	const char *ref_type;       /* REF, REFS: type name */
	int required;               /* cannot be cleared */
} samen_field_info;

typedef struct {
	const char *name;           /* "goal" */
	const char *name_nl;        /* "doel" */
	const char *plural;         /* "goals": its SQLite view in replica.db */
	const char *module;         /* "richting", "netwerk", "plan", "steungroep", "evaluatie" */
	const samen_field_info *fields;
	size_t nfields;
} samen_type_info;

/* The i-th entity type (NULL past the last). */
SAMEN_EXTERN const samen_type_info *samen_schema_type(size_t i);
/* By English or Dutch name; NULL if there is none. */
SAMEN_EXTERN const samen_type_info *samen_schema_type_named(const char *name);

#endif
