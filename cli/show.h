/*
 * show.h - `samen show`: the whole plan as one document, in the method's
 * order (richting, netwerk, doelen en acties, steungroep, evaluatie), as
 * text for the terminal (show_text.c) or JSON (show_json.c).
 *
 * cmd_show.c reads every entity of the plan into a plan_doc first, so the
 * renderers can group and nest without going back to the plan.
 */
#ifndef SAMEN_CLI_SHOW_H
#define SAMEN_CLI_SHOW_H

#include "cli/cli.h"

/* The entity types, in the order of samen_schema_type(). */
enum {
	T_GOAL, T_AREA, T_STRENGTH, T_VIP, T_LIFESTYLE, T_PERSON, T_TIE, T_SNAPSHOT,
	T_ACTION, T_PDSA, T_GROUP, T_MEETING, T_DECISION, T_EVALUATION, T_PROGRESS, T_SCORE, T_PLAN,
	T_COUNT
};

typedef struct {
	const char *name;        /* borrowed from the schema */
	char *value;             /* owned; "" when unset */
	char *label;             /* owned; a reference's label, else NULL */
	int number;              /* the value is a whole number */
	int conflict;            /* concurrent values: the shown one wins */
} doc_field;

typedef struct {
	char *uid;               /* owned */
	char *parent;            /* goals: effective parent uid, owned, or NULL */
	int depth;               /* goals: depth in the tree (0 = hoofddoel) */
	int cycle;
	const samen_type_info *type;
	doc_field *fields;       /* owned, type->nfields of them */
	size_t nfields;
	const char *goal;        /* actions, PDSA cycles: the uid of the goal they
	                            belong to (borrowed from that goal), or NULL */
} doc_entity;

typedef struct {
	doc_entity *v;
	size_t n, cap;
	size_t *by_uid;          /* indexes of v sorted by uid, for doc_find() */
} doc_list;

typedef struct {
	char *code, *type, *entity, *label, *detail, *message;
} doc_warning;

typedef struct {
	const char *plan_id, *client;  /* borrowed from the plan */
	doc_list lists[T_COUNT];
	doc_warning *warnings;
	size_t nwarnings, warnings_cap;
} plan_doc;

/* The value of a field as text ("" when unset or unknown). */
const char *doc_value(const doc_entity *e, const char *field);
/* What a person reads: a reference's label, else the value. */
const char *doc_shown(const doc_entity *e, const char *field);
/* The entity of type t with uid, or NULL. */
const doc_entity *doc_find(const plan_doc *d, int t, const char *uid);
/* The goal an action or PDSA cycle belongs to (uid or NULL): its own goal
 * field, or for a PDSA cycle with only an action, the action's goal. */
const char *doc_goal_of(const plan_doc *d, const doc_entity *e);
/* Actions of goal (uid; NULL: those without a goal that exists), in the
 * method's order: client, then network, then professional, then no tier;
 * list order within a tier. Fills out (caller's array of n actions) and
 * returns how many. */
size_t doc_goal_actions(const plan_doc *d, const char *goal, const doc_entity **out);
/* Indexes of list t sorted by the date field (oldest first, undated last). */
size_t *doc_by_date(const plan_doc *d, int t, const char *field);
/* "Hoofddoel", "Subdoel", "Trajectdoel" by depth, in the output language. */
const char *doc_goal_level(int depth);

void show_text(const plan_doc *d, FILE *f);
void show_json(const plan_doc *d, FILE *f);

int cmd_show(cli *c);

#endif
