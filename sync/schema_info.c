/* schema_info.c - the schema as the public API shows it (samen/schema.h). */
#include "samen/schema.h"
#include "core/schema.h"

#include <pthread.h>
#include <string.h>

#define MAX_TYPES 64
#define MAX_FIELDS_ALL 512

static samen_type_info types[MAX_TYPES];
static samen_field_info fields[MAX_FIELDS_ALL];
static size_t ntypes;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static samen_field_kind kind_of(field_kind k)
{
	switch (k) {
	case FIELD_STR: return SAMEN_FIELD_LINE;
	case FIELD_TEXT: return SAMEN_FIELD_TEXT;
	case FIELD_ENUM: return SAMEN_FIELD_CHOICE;
	case FIELD_INT: return SAMEN_FIELD_NUMBER;
	case FIELD_DATE: return SAMEN_FIELD_DATE;
	case FIELD_REF: return SAMEN_FIELD_REF;
	case FIELD_RANK: return SAMEN_FIELD_RANK;
	case FIELD_SET: return SAMEN_FIELD_CHOICES;
	case FIELD_REFS: return SAMEN_FIELD_REFS;
	case FIELD_TIES: return SAMEN_FIELD_TIES;
	}
	return SAMEN_FIELD_LINE;
}

static void build(void)
{
	size_t nf = 0;
	const type_def *td;
	for (size_t i = 0; (td = schema_type_at(i)) && ntypes < MAX_TYPES; i++) {
		samen_type_info *t = &types[ntypes++];
		t->name = td->name;
		t->name_nl = td->name_nl;
		t->plural = td->plural;
		t->module = td->module;
		t->fields = &fields[nf];
		for (uint32_t k = 0; k < td->nfields && nf < MAX_FIELDS_ALL; k++, nf++) {
			const field_def *f = &td->fields[k];
			samen_field_info *o = &fields[nf];
			o->name = f->name;
			o->name_nl = f->name_nl;
			o->kind = kind_of(f->kind);
			o->min = f->min;
			o->max = f->max;
			o->labels = f->labels;
			o->nlabels = f->nlabels;
			o->ref_type = f->ref_type ? schema_type(f->ref_type)->name : NULL;
			o->required = f->required;
			t->nfields++;
		}
	}
}

const samen_type_info *samen_schema_type(size_t i)
{
	pthread_once(&once, build);
	return i < ntypes ? &types[i] : NULL;
}

const samen_type_info *samen_schema_type_named(const char *name)
{
	const samen_type_info *t;
	for (size_t i = 0; (t = samen_schema_type(i)); i++)
		if (strcmp(t->name, name) == 0 || strcmp(t->name_nl, name) == 0)
			return t;
	return NULL;
}
