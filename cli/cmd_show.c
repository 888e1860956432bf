/*
 * cmd_show.c - `samen show [--json]`: read the whole plan into a plan_doc,
 * then hand it to the text or the JSON renderer.
 */
#include "cli/show.h"
#include "cli/i18n.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[T_COUNT] = {
	"goal", "area", "strength", "vip", "lifestyle", "person", "tie", "snapshot",
	"action", "pdsa", "group", "meeting", "decision", "evaluation", "progress", "score", "plan",
};

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

static void entity_free(doc_entity *e)
{
	for (size_t i = 0; i < e->nfields; i++) {
		free(e->fields[i].value);
		free(e->fields[i].label);
	}
	free(e->fields);
	free(e->uid);
	free(e->parent);
}

static void doc_free(plan_doc *d)
{
	for (int t = 0; t < T_COUNT; t++) {
		for (size_t i = 0; i < d->lists[t].n; i++)
			entity_free(&d->lists[t].v[i]);
		free(d->lists[t].v);
		free(d->lists[t].by_uid);
	}
	for (size_t i = 0; i < d->nwarnings; i++) {
		doc_warning *w = &d->warnings[i];
		free(w->code), free(w->type), free(w->entity), free(w->label), free(w->detail), free(w->message);
	}
	free(d->warnings);
}

typedef struct {
	doc_list *list;
	const samen_type_info *type;
} load_ctx;

static int keep_entity(const samen_entity_view *v, void *payload)
{
	load_ctx *l = payload;
	doc_list *list = l->list;
	doc_entity e;

	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 16;
		doc_entity *grown = realloc(list->v, cap * sizeof(*grown));
		if (!grown)
			return samen_error_set(SAMEN_ENOMEM, "out of memory reading %s", v->type);
		list->v = grown;
		list->cap = cap;
	}
	memset(&e, 0, sizeof(e));
	e.type = l->type;
	e.depth = v->depth;
	e.cycle = v->cycle;
	e.uid = strdup(v->uid);
	e.parent = dup_or_null(v->parent);
	e.fields = calloc(v->nfields ? v->nfields : 1, sizeof(*e.fields));
	if (!e.uid || (v->parent && !e.parent) || !e.fields)
		goto nomem;
	e.nfields = v->nfields;
	for (size_t i = 0; i < v->nfields; i++) {
		doc_field *f = &e.fields[i];
		f->name = i < l->type->nfields ? l->type->fields[i].name : "";
		f->number = v->fields[i].number;
		f->conflict = v->fields[i].nvalues > 1;
		f->value = strdup(v->fields[i].value ? v->fields[i].value : "");
		f->label = dup_or_null(v->fields[i].label);
		if (!f->value || (v->fields[i].label && !f->label))
			goto nomem;
	}
	list->v[list->n++] = e;
	return 0;
nomem:
	entity_free(&e);
	return samen_error_set(SAMEN_ENOMEM, "out of memory reading %s", v->type);
}

static int keep_warning(const samen_warning *w, void *payload)
{
	plan_doc *d = payload;
	doc_warning *k;
	if (d->nwarnings == d->warnings_cap) {
		size_t cap = d->warnings_cap ? d->warnings_cap * 2 : 8;
		doc_warning *grown = realloc(d->warnings, cap * sizeof(*grown));
		if (!grown)
			return samen_error_set(SAMEN_ENOMEM, "out of memory reading warnings");
		d->warnings = grown;
		d->warnings_cap = cap;
	}
	k = &d->warnings[d->nwarnings++];
	k->code = dup_or_null(w->code);
	k->type = dup_or_null(w->type);
	k->entity = dup_or_null(w->entity);
	k->label = dup_or_null(w->label);
	k->detail = dup_or_null(w->detail);
	k->message = dup_or_null(w->message);
	if ((w->code && !k->code) || (w->type && !k->type) || (w->entity && !k->entity) || (w->label && !k->label) ||
	    (w->detail && !k->detail) || (w->message && !k->message))
		return samen_error_set(SAMEN_ENOMEM, "out of memory reading warnings");
	return 0;
}

/* --- looking things up ------------------------------------------------------------ */

const doc_entity *doc_find(const plan_doc *d, int t, const char *uid)
{
	const doc_list *l = &d->lists[t];
	size_t lo = 0, hi = l->n;
	if (!uid || !uid[0] || !l->by_uid)
		return NULL;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[l->by_uid[mid]].uid, uid);
		if (c == 0)
			return &l->v[l->by_uid[mid]];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static const doc_list *uid_list;
static int cmp_uid(const void *x, const void *y)
{
	return strcmp(uid_list->v[*(const size_t *)x].uid, uid_list->v[*(const size_t *)y].uid);
}

/* The uid indexes of every list (after the lists have their final order),
 * then what each action and PDSA cycle belongs to, so the renderers look
 * things up in O(log n) and never walk lists inside lists of lists. */
static int build_index(doc_list *l)
{
	if (!l->by_uid && !(l->by_uid = malloc((l->n ? l->n : 1) * sizeof(*l->by_uid))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory indexing the plan");
	for (size_t i = 0; i < l->n; i++)
		l->by_uid[i] = i;
	uid_list = l; /* qsort has no payload; the command line is single-threaded */
	qsort(l->by_uid, l->n, sizeof(*l->by_uid), cmp_uid);
	return 0;
}

static int index_doc(plan_doc *d)
{
	for (int t = 0; t < T_COUNT; t++)
		if (build_index(&d->lists[t]) < 0)
			return SAMEN_ENOMEM;
	for (size_t i = 0; i < d->lists[T_ACTION].n; i++) {
		doc_entity *a = &d->lists[T_ACTION].v[i];
		const doc_entity *g = doc_find(d, T_GOAL, doc_value(a, "goal"));
		a->goal = g ? g->uid : NULL;
	}
	for (size_t i = 0; i < d->lists[T_PDSA].n; i++) {
		doc_entity *c = &d->lists[T_PDSA].v[i];
		const doc_entity *g = doc_find(d, T_GOAL, doc_value(c, "goal"));
		const doc_entity *a = g ? NULL : doc_find(d, T_ACTION, doc_value(c, "action"));
		c->goal = g ? g->uid : a ? a->goal : NULL;
	}
	return 0;
}

/* --- an order people read --------------------------------------------------------- */

typedef struct {
	size_t pos;             /* of what the field names in its own list; SIZE_MAX: none */
	const char *label;
	const doc_entity *e;
} sort_key;

static int cmp_keys(const void *x, const void *y)
{
	const sort_key *a = x, *b = y;
	int c;
	if (a->pos != b->pos)
		return a->pos < b->pos ? -1 : 1;
	if ((c = strcmp(a->label, b->label)))
		return c;
	return strcmp(a->e->uid, b->e->uid);
}

static size_t position_in(const plan_doc *d, int t, const char *uid)
{
	const doc_entity *e = doc_find(d, t, uid);
	return e ? (size_t)(e - d->lists[t].v) : SIZE_MAX;
}

/* List t follows what its field names: by that entity's place in list
 * `by` (an area's rank, the goal tree) or, with by < 0, by its label (a
 * person's name). Lists sort by the referenced uid otherwise, which means
 * nothing to a reader. */
static int sort_list(plan_doc *d, int t, const char *field, int by)
{
	doc_list *l = &d->lists[t];
	sort_key *keys;
	doc_entity *sorted;

	if (l->n < 2)
		return 0;
	keys = malloc(l->n * sizeof(*keys));
	sorted = malloc(l->n * sizeof(*sorted));
	if (!keys || !sorted) {
		free(keys);
		free(sorted);
		return samen_error_set(SAMEN_ENOMEM, "out of memory sorting the plan");
	}
	for (size_t i = 0; i < l->n; i++) {
		keys[i].e = &l->v[i];
		keys[i].pos = by >= 0 ? position_in(d, by, doc_value(&l->v[i], field)) : 0;
		keys[i].label = by >= 0 ? "" : doc_shown(&l->v[i], field);
	}
	qsort(keys, l->n, sizeof(*keys), cmp_keys);
	for (size_t i = 0; i < l->n; i++)
		sorted[i] = *keys[i].e;
	memcpy(l->v, sorted, l->n * sizeof(*sorted));
	free(keys);
	free(sorted);
	return build_index(l);
}

static int doc_load(plan_doc *d, samen_plan *p)
{
	const char *today;
	int rc;
	d->plan_id = samen_plan_id(p);
	d->client = samen_plan_client(p);
	for (int t = 0; t < T_COUNT; t++) {
		load_ctx l = {&d->lists[t], samen_schema_type_named(type_names[t])};
		if (!l.type)
			return samen_error_set(SAMEN_EINVAL, "this samen knows no entity type '%s'", type_names[t]);
		if ((rc = samen_entity_list(p, type_names[t], keep_entity, &l)) < 0)
			return rc;
	}
	/* the index first: sorting looks up goals and areas (whose order stays) */
	if ((rc = index_doc(d)) < 0 || (rc = sort_list(d, T_VIP, "person", -1)) < 0 ||
	    (rc = sort_list(d, T_TIE, "person", -1)) < 0 || (rc = sort_list(d, T_PROGRESS, "goal", T_GOAL)) < 0 ||
	    (rc = sort_list(d, T_SCORE, "area", T_AREA)) < 0)
		return rc;
	/* SAMEN_TODAY=YYYY-MM-DD: the day the rules use, as in samen status */
	today = getenv("SAMEN_TODAY");
	rc = samen_plan_warnings(p, today && today[0] ? today : NULL, keep_warning, d);
	return rc < 0 ? rc : 0;
}

/* --- what the renderers share ------------------------------------------------ */

static const doc_field *field_named(const doc_entity *e, const char *field)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].name, field) == 0)
			return &e->fields[i];
	return NULL;
}

const char *doc_value(const doc_entity *e, const char *field)
{
	const doc_field *f = field_named(e, field);
	return f ? f->value : "";
}

const char *doc_shown(const doc_entity *e, const char *field)
{
	const doc_field *f = field_named(e, field);
	if (!f)
		return "";
	return f->label && f->label[0] ? f->label : f->value;
}

const char *doc_goal_of(const plan_doc *d, const doc_entity *e)
{
	(void)d;
	return e->goal;
}

static int tier_order(const doc_entity *a)
{
	const char *t = doc_value(a, "tier");
	return strcmp(t, "klant") == 0 ? 0 : strcmp(t, "netwerk") == 0 ? 1 : strcmp(t, "professional") == 0 ? 2 : 3;
}

size_t doc_goal_actions(const plan_doc *d, const char *goal, const doc_entity **out)
{
	const doc_list *l = &d->lists[T_ACTION];
	size_t n = 0;
	/* four passes keep list order within a tier (a stable sort) */
	for (int tier = 0; tier < 4; tier++)
		for (size_t i = 0; i < l->n; i++) {
			const char *g = l->v[i].goal;
			if (tier_order(&l->v[i]) != tier)
				continue;
			if (goal ? g && (g == goal || strcmp(g, goal) == 0) : g == NULL)
				out[n++] = &l->v[i];
		}
	return n;
}

static const plan_doc *date_doc;
static int date_list;
static const char *date_field;

static int cmp_by_date(const void *x, const void *y)
{
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	const char *da = doc_value(&date_doc->lists[date_list].v[a], date_field);
	const char *db = doc_value(&date_doc->lists[date_list].v[b], date_field);
	int c;
	if (!da[0] != !db[0])
		return da[0] ? -1 : 1;
	c = strcmp(da, db);
	return c ? c : (a < b ? -1 : a > b);
}

size_t *doc_by_date(const plan_doc *d, int t, const char *field)
{
	size_t n = d->lists[t].n;
	size_t *idx = malloc((n ? n : 1) * sizeof(*idx));
	if (!idx)
		return NULL;
	for (size_t i = 0; i < n; i++)
		idx[i] = i;
	/* qsort has no payload; the command line is single-threaded */
	date_doc = d;
	date_list = t;
	date_field = field;
	qsort(idx, n, sizeof(*idx), cmp_by_date);
	return idx;
}

const char *doc_goal_level(int depth)
{
	return depth <= 0 ? _("Main goal") : depth == 1 ? _("Subgoal") : _("Step goal");
}

/* --- the command -------------------------------------------------------------- */

int cmd_show(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	plan_doc d;
	int rc = 0;

	memset(&d, 0, sizeof(d));
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("show takes no arguments (show --json for JSON)");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "show");
	if (doc_load(&d, p) < 0) {
		rc = fail(c, "show");
		goto cleanup;
	}
	if (c->json)
		show_json(&d, stdout);
	else
		show_text(&d, stdout);
	if (fflush(stdout) != 0) {
		samen_error_set(SAMEN_EIO, "cannot write the document");
		rc = fail(c, "show");
	}
cleanup:
	doc_free(&d);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}
