/*
 * samen/plan.h - one client's plan: open, edit, inspect, check.
 *
 * Every edit goes through an edit session. samen_edit_commit() turns the
 * session into one signed change, writes it to the history (objects fsynced,
 * then the device ref), and only then applies it to the replica.
 */
#ifndef SAMEN_PLAN_H
#define SAMEN_PLAN_H

#include "samen/common.h"
#include "samen/store.h"

typedef struct samen_plan samen_plan;
typedef struct samen_edit samen_edit;

/* Create a new plan for client; lang is "nl" or "en". */
SAMEN_EXTERN int samen_plan_create(samen_plan **out, samen_store *store, const char *client, const char *lang);
/* Open by id (or unique id prefix) or client name; NULL opens the only plan. */
SAMEN_EXTERN int samen_plan_open(samen_plan **out, samen_store *store, const char *which);
SAMEN_EXTERN void samen_plan_free(samen_plan *plan);

SAMEN_EXTERN const char *samen_plan_id(const samen_plan *plan);
SAMEN_EXTERN const char *samen_plan_client(const samen_plan *plan);
SAMEN_EXTERN const char *samen_plan_lang(const samen_plan *plan);
SAMEN_EXTERN const char *samen_plan_dir(const samen_plan *plan);

/* 64 hex digits digesting the plan's logical state; equal on every replica
 * holding the same set of changes. */
SAMEN_EXTERN int samen_plan_state_hash(samen_plan *plan, char out[65]);

typedef struct {
	int64_t changes, accepted, rejected, pending, entities, conflicts, members;
	int64_t history_only;    /* changes in history missing from the replica */
	int cycles;              /* goals whose parent assignment makes a cycle */
} samen_check_result;
/* Verify the replica against the history (every change in the history is
 * applied, every applied change is in the history) and integrity. */
SAMEN_EXTERN int samen_plan_check(samen_plan *plan, samen_check_result *res, char hash[65]);
typedef struct {
	int member;              /* this device may edit the plan */
	int64_t changes, rejected, pending, conflicts, goals;
	int64_t evidence;        /* devices caught signing two changes with one seq */
	int64_t missing;         /* distinct changes the pending ones wait for */
	char last_change[65];    /* newest change (highest Lamport clock), "" if none */
	char last_author[201];
	int64_t last_time;
} samen_status;
/* A quick overview from the replica alone (no history walk). */
SAMEN_EXTERN int samen_plan_status(samen_plan *plan, samen_status *out);

/* Throw the replica away and apply the whole history again. */
SAMEN_EXTERN int samen_plan_rebuild(samen_plan *plan);
/* Repack the history into one compressed pack (like `git gc`): bundle
 * imports write their packs uncompressed for speed. *after receives the size
 * of the history's objects in bytes. */
SAMEN_EXTERN int samen_plan_gc(samen_plan *plan, uint64_t *after);

/* --- editing --------------------------------------------------------------- */

SAMEN_EXTERN int samen_edit_begin(samen_edit **out, samen_plan *plan);
/* Create an entity of type ("goal"); its uid (16 hex + NUL) goes to uid_out. */
SAMEN_EXTERN int samen_edit_create(samen_edit *edit, const char *type, char uid_out[17]);
/* Set a field from text as a person types it ("" or "-" clears it). For a
 * reference field, value names the target (uid prefix or exact title). */
SAMEN_EXTERN int samen_edit_set(samen_edit *edit, const char *entity, const char *field, const char *value);
SAMEN_EXTERN int samen_edit_delete(samen_edit *edit, const char *entity);
/* The same, for an entity that must be of type (NULL: any type). A list
 * field takes names separated by commas. */
SAMEN_EXTERN int samen_edit_set_in(samen_edit *edit, const char *type, const char *entity, const char *field,
                                   const char *value);
SAMEN_EXTERN int samen_edit_delete_in(samen_edit *edit, const char *type, const char *entity);
/* Add a member device (64 hex digits of its key) with a name, as a network
 * member (samen/members.h has the other roles). */
SAMEN_EXTERN int samen_edit_member_add(samen_edit *edit, const char *device_key_hex, const char *name);
SAMEN_EXTERN size_t samen_edit_op_count(const samen_edit *edit);
/* Sign, store and apply; id_out (65 bytes) receives the change id in hex. */
SAMEN_EXTERN int samen_edit_commit(samen_edit *edit, char id_out[65]);
SAMEN_EXTERN void samen_edit_free(samen_edit *edit);

/* --- reading ----------------------------------------------------------------- */

typedef struct {
	const char *name;        /* field name ("status") */
	const char *value;       /* the winning value as text ("" if unset) */
	int nvalues;             /* > 1: concurrent values (a conflict) */
	int number;              /* the value is a whole number (JSON prints it bare) */
	const char *label;       /* a reference: the label of what it names ("werk"), else NULL */
} samen_field_value;

typedef struct {
	const char *uid;
	const char *type;        /* "goal", "action", ... (schema.c has every type) */
	int deleted;
	const samen_field_value *fields;
	size_t nfields;
	const char *parent;      /* goal tree: effective parent uid or NULL */
	int depth;               /* goal tree depth, 0 = top */
	int cycle;               /* its parent assignment was ignored (cycle) */
} samen_entity_view;

typedef int (*samen_entity_cb)(const samen_entity_view *e, void *payload);
/* Entities of type in display order (goals: depth-first tree by rank,
 * priority, title). Stops when cb returns non-zero and returns that value. */
SAMEN_EXTERN int samen_entity_list(samen_plan *plan, const char *type, samen_entity_cb cb, void *payload);
SAMEN_EXTERN int samen_entity_get(samen_plan *plan, const char *type, const char *which, samen_entity_cb cb,
                                  void *payload);

typedef struct {
	const char *id;          /* change id, 64 hex */
	const char *author;      /* name in the change */
	const char *device;      /* 64 hex */
	int64_t time;            /* wall time, display only */
	uint64_t seq, lamport;
	int accepted;
	const char *reason;      /* why rejected, or NULL */
	const char *summary;     /* one line in the plan's language */
	const char *commit;      /* git commit id, 40 hex, or "" */
	size_t nops;
} samen_log_entry;
typedef int (*samen_log_cb)(const samen_log_entry *e, void *payload);
/* Newest first. entity: only changes touching it (NULL for all). */
SAMEN_EXTERN int samen_log(samen_plan *plan, const char *entity, samen_log_cb cb, void *payload);

typedef struct {
	const char *entity;      /* uid */
	const char *title;       /* entity title (may be "") */
	const char *field;
	const char *field_nl;    /* the field's Dutch name */
	const char *value;
	int winner;              /* this value is the one shown */
	int nvalues;
	const char *author;
	const char *device;
	int64_t time;
	const char *change;      /* 64 hex */
	const char *label;       /* a reference: the label of what it names, else NULL */
} samen_value_info;
typedef int (*samen_value_cb)(const samen_value_info *v, void *payload);
/* Per field of one entity: every live value with who, when, which change. */
SAMEN_EXTERN int samen_blame(samen_plan *plan, const char *entity, samen_value_cb cb, void *payload);
/* Every live value of every field holding more than one. */
SAMEN_EXTERN int samen_conflicts(samen_plan *plan, samen_value_cb cb, void *payload);

typedef struct {
	const char *name;
	const char *device;      /* 64 hex: the member's first device */
	int creator;
	const char *added_by;    /* change id ("" for the genesis) */
	const char *id;          /* member id, 64 hex (see samen/members.h) */
	const char *role;        /* "client" ... "observer"; "none" while a professional waits for approval */
	const char *pending_role;/* NULL, or the role waiting for the client's approval */
	int revoked;
	const char *areas;       /* a professional's life areas, comma separated */
} samen_member_info;
typedef int (*samen_member_cb)(const samen_member_info *m, void *payload);
SAMEN_EXTERN int samen_member_list(samen_plan *plan, samen_member_cb cb, void *payload);

/* --- timeline: who changed what, and when ---------------------------------- */

typedef struct {
	const char *change;      /* change id, 64 hex */
	const char *author;      /* name in the change */
	const char *device;      /* 64 hex */
	int64_t time;            /* wall time of the change (display only) */
	int accepted;
	const char *reason;      /* why the change was rejected, or NULL */
	const char *what;        /* "created", "set" or "deleted" */
	const char *type;        /* entity type ("goal") */
	const char *entity;      /* uid */
	const char *label;       /* the entity's label now ("" if none) */
	const char *field;       /* "set": the field ("status"), else NULL */
	const char *value;       /* "set": the value as text ("" = cleared); references show labels */
} samen_timeline_entry;
typedef int (*samen_timeline_cb)(const samen_timeline_entry *e, void *payload);
/* Every op of every change, oldest first (causal order: Lamport clock,
 * then change id), as one entry each; entity (uid prefix or label) limits
 * it to one entity; type (NULL: any) says what entity names. */
SAMEN_EXTERN int samen_timeline(samen_plan *plan, const char *type, const char *entity, samen_timeline_cb cb,
                                void *payload);

/* --- the network map over time ---------------------------------------------- */

/* Freeze the network map (every tie with its person) as a snapshot entity
 * dated date ("YYYY-MM-DD"; NULL: today), with an optional note. */
SAMEN_EXTERN int samen_network_snapshot(samen_plan *plan, const char *date, const char *note, char uid_out[17],
                                        char change_out[65]);

typedef struct {
	const char *what;        /* "came", "left" or "changed" */
	const char *person;      /* person uid */
	const char *name;        /* person's name */
	const char *field;       /* "changed": which tie field ("ring") */
	const char *before, *after; /* "changed": the values ("" when unset) */
} samen_network_change;
typedef int (*samen_network_cb)(const samen_network_change *c, void *payload);
/* Compare two maps: from and to name snapshots (by date or id); to NULL is
 * the map as it is now. People are matched by their person entity. */
SAMEN_EXTERN int samen_network_diff(samen_plan *plan, const char *from, const char *to, samen_network_cb cb,
                                    void *payload);

/* --- evaluations: the client's own scores over time ------------------------- */

typedef struct {
	const char *area;        /* area uid */
	const char *area_name;
	const char *evaluation;  /* evaluation uid, or "" when the score names none */
	const char *date;        /* the evaluation's date, or "" */
	int score;               /* 1..10, 0 when unset */
	const char *note;
} samen_score_entry;
typedef int (*samen_score_cb)(const samen_score_entry *e, void *payload);
/* Scores per life area (in the areas' order), oldest evaluation first.
 * area (uid prefix or name) limits it to one area; NULL gives all. */
SAMEN_EXTERN int samen_score_history(samen_plan *plan, const char *area, samen_score_cb cb, void *payload);

/* --- the method's rules and checklists ------------------------------------- */

typedef struct {
	const char *code;        /* stable id, e.g. "action-professional-no-reason" (docs/cli.md lists them) */
	const char *type;        /* entity type it is about ("action"), or NULL for the plan */
	const char *entity;      /* uid, or NULL */
	const char *label;       /* the entity's label, for people ("Werk zoeken") */
	const char *detail;      /* a value the message needs (a date, a count), or "" */
	const char *message;     /* one line in English */
} samen_warning;
typedef int (*samen_warning_cb)(const samen_warning *w, void *payload);
/* The warnings of domain.md's rules and the method's checklists, computed
 * from the replica. today: "YYYY-MM-DD" (NULL: the current UTC date), for
 * overdue meetings. */
SAMEN_EXTERN int samen_plan_warnings(samen_plan *plan, const char *today, samen_warning_cb cb, void *payload);

#endif
