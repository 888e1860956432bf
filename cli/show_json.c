/*
 * show_json.c - the plan as one JSON document (docs/show.md): the same
 * sections, grouping and nesting as the text, every entity with its id
 * and fields as `samen TYPE list --json` gives them.
 */
#include "cli/show.h"
#include "cli/i18n.h"

#include <stdlib.h>
#include <string.h>

/* An entity's object without its closing brace, so that nested lists can
 * follow: {"id":..., "type":..., fields, FIELD_label, "depth", "conflicts",
 * "parent_cycle" */
static void entity_open(FILE *f, const doc_entity *e)
{
	int first = 1;
	char key[80];
	fputc('{', f);
	json_kv_str(f, &first, "id", e->uid);
	json_kv_str(f, &first, "type", e->type->name);
	for (size_t i = 0; i < e->nfields; i++) {
		const doc_field *fl = &e->fields[i];
		if (fl->number && fl->value[0])
			json_kv_int(f, &first, fl->name, atoll(fl->value));
		else
			json_kv_str(f, &first, fl->name, fl->value[0] ? fl->value : NULL);
		if (fl->label) {
			snprintf(key, sizeof(key), "%s_label", fl->name);
			json_kv_str(f, &first, key, fl->label);
		}
	}
	json_kv_int(f, &first, "depth", e->depth);
	fputs(",\"conflicts\":[", f);
	for (size_t i = 0, k = 0; i < e->nfields; i++)
		if (e->fields[i].conflict) {
			fputs(k++ ? "," : "", f);
			json_str(f, e->fields[i].name);
		}
	fputc(']', f);
	json_kv_bool(f, &first, "parent_cycle", e->cycle);
}

static void entity(FILE *f, const doc_entity *e)
{
	entity_open(f, e);
	fputc('}', f);
}

static void key(FILE *f, int *first, const char *k)
{
	if (!*first)
		fputc(',', f);
	*first = 0;
	json_str(f, k);
	fputc(':', f);
}

/* "name":[every entity of list t] */
static void whole_list(FILE *f, int *first, const char *name, const doc_list *l)
{
	key(f, first, name);
	fputc('[', f);
	for (size_t i = 0; i < l->n; i++) {
		fputs(i ? "," : "", f);
		entity(f, &l->v[i]);
	}
	fputc(']', f);
}

static void section_open(FILE *f, int *first, const char *name, const char *title)
{
	int inner = 1;
	key(f, first, name);
	fputc('{', f);
	json_kv_str(f, &inner, "title", title);
}

/* --- richting, netwerk ---------------------------------------------------------- */

static void richting(FILE *f, const plan_doc *d, int *first)
{
	int k = 0;
	section_open(f, first, "richting", _("Direction"));
	whole_list(f, &k, "areas", &d->lists[T_AREA]);
	whole_list(f, &k, "strengths", &d->lists[T_STRENGTH]);
	whole_list(f, &k, "vips", &d->lists[T_VIP]);
	whole_list(f, &k, "lifestyle", &d->lists[T_LIFESTYLE]);
	fputc('}', f);
}

static const char *const sectors[] = {"familie", "vrienden", "buren", "werk/school", "professionals",
                                      "vereniging/kerk"};
#define NSECTORS (sizeof(sectors) / sizeof(sectors[0]))

static int sector_index(const char *s)
{
	for (size_t k = 0; k < NSECTORS; k++)
		if (strcmp(s, sectors[k]) == 0)
			return (int)k;
	return (int)NSECTORS; /* none, or one this samen does not know */
}

/* {"ring":1,"sectors":[{"sector":"familie","ties":[...]}, ...]} per ring
 * that has ties; ring and sector null for ties without one. */
static void network_map(FILE *f, const plan_doc *d, int *first)
{
	static const char *const rings[] = {"1", "2", "3", ""};
	const doc_list *l = &d->lists[T_TIE];
	int nring = 0;

	key(f, first, "map");
	fputc('[', f);
	for (size_t r = 0; r < 4; r++) {
		int nsector = 0;
		for (size_t s = 0; s <= NSECTORS; s++) {
			int nties = 0;
			for (size_t i = 0; i < l->n; i++) {
				const doc_entity *t = &l->v[i];
				if (strcmp(doc_value(t, "ring"), rings[r]) != 0 || sector_index(doc_value(t, "sector")) != (int)s)
					continue;
				if (!nsector++) {
					fputs(nring++ ? ",{\"ring\":" : "{\"ring\":", f);
					fputs(rings[r][0] ? rings[r] : "null", f);
					fputs(",\"sectors\":[", f);
				}
				if (!nties++) {
					fputs(nsector > 1 ? ",{\"sector\":" : "{\"sector\":", f);
					if (s < NSECTORS)
						json_str(f, sectors[s]);
					else
						fputs("null", f);
					fputs(",\"ties\":[", f);
				} else {
					fputc(',', f);
				}
				entity(f, t);
			}
			if (nties)
				fputs("]}", f);
		}
		if (nsector)
			fputs("]}", f);
	}
	fputc(']', f);
}

static void netwerk(FILE *f, const plan_doc *d, int *first)
{
	int k = 0;
	size_t *idx = doc_by_date(d, T_SNAPSHOT, "date");
	const doc_list *sl = &d->lists[T_SNAPSHOT];

	section_open(f, first, "netwerk", _("Network"));
	whole_list(f, &k, "persons", &d->lists[T_PERSON]);
	network_map(f, d, &k);
	key(f, &k, "snapshots"); /* newest first */
	fputc('[', f);
	for (size_t i = sl->n; i-- > 0;) {
		fputs(i + 1 < sl->n ? "," : "", f);
		entity(f, &sl->v[idx ? idx[i] : i]);
	}
	fputs("]}", f);
	free(idx);
}

/* --- doelen en acties ------------------------------------------------------------- */

static void actions_of(FILE *f, const plan_doc *d, const char *goal)
{
	const doc_entity **acts = malloc((d->lists[T_ACTION].n + 1) * sizeof(*acts));
	size_t n = acts ? doc_goal_actions(d, goal, acts) : 0;
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? "," : "", f);
		entity(f, acts[i]);
	}
	fputc(']', f);
	free(acts);
}

static void pdsa_of(FILE *f, const plan_doc *d, const char *goal)
{
	const doc_list *l = &d->lists[T_PDSA];
	int n = 0;
	fputc('[', f);
	for (size_t i = 0; i < l->n; i++) {
		const char *g = doc_goal_of(d, &l->v[i]);
		if (goal ? g && strcmp(g, goal) == 0 : g == NULL) {
			fputs(n++ ? "," : "", f);
			entity(f, &l->v[i]);
		}
	}
	fputc(']', f);
}

static const char *level_key(int depth) { return depth == 0 ? "hoofddoel" : depth == 1 ? "subdoel" : "trajectdoel"; }

/* The goal tree, nested: each goal's object stays open for its
 * "subgoals" until a goal at its depth or above comes (the list is depth
 * first), so no recursion however deep the tree. */
static void goal_tree(FILE *f, const plan_doc *d, int *first)
{
	const doc_list *l = &d->lists[T_GOAL];
	size_t *count = calloc(l->n + 1, sizeof(*count));
	int prev = -1;

	key(f, first, "goals");
	fputc('[', f);
	for (size_t i = 0; count && i < l->n; i++) {
		const doc_entity *g = &l->v[i];
		int dep = g->depth < 0 ? 0 : g->depth > prev + 1 ? prev + 1 : g->depth;
		int k;
		if (i > 0 && dep <= prev) {
			for (int j = dep; j <= prev; j++)
				fputs("]}", f);
			fputc(',', f);
		}
		count[dep]++;
		count[dep + 1] = 0;
		entity_open(f, g);
		k = 0; /* the entity's object has keys already */
		json_kv_str(f, &k, "level", level_key(dep));
		fputs(",\"number\":\"", f);
		for (int j = 0; j <= dep; j++)
			fprintf(f, "%s%zu", j ? "." : "", count[j]);
		fputs("\",\"actions\":", f);
		actions_of(f, d, g->uid);
		fputs(",\"pdsa\":", f);
		pdsa_of(f, d, g->uid);
		fputs(",\"subgoals\":[", f);
		prev = dep;
	}
	for (int j = 0; j <= prev; j++)
		fputs("]}", f);
	fputc(']', f);
	free(count);
}

static void doelen(FILE *f, const plan_doc *d, int *first)
{
	int k = 0;
	section_open(f, first, "doelen", _("Goals and actions"));
	goal_tree(f, d, &k);
	key(f, &k, "actions_without_goal");
	actions_of(f, d, NULL);
	key(f, &k, "pdsa_without_goal");
	pdsa_of(f, d, NULL);
	fputc('}', f);
}

/* --- steungroep ------------------------------------------------------------------------ */

/* [actions whose field names uid]; skip_decided: not those with a decision
 * that exists (they are listed under it). */
static void linked_actions(FILE *f, const plan_doc *d, const char *field, const char *uid, int skip_decided)
{
	const doc_list *l = &d->lists[T_ACTION];
	int n = 0;
	fputc('[', f);
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *a = &l->v[i];
		if (strcmp(doc_value(a, field), uid) != 0)
			continue;
		if (skip_decided && doc_find(d, T_DECISION, doc_value(a, "decision")))
			continue;
		fputs(n++ ? "," : "", f);
		entity(f, a);
	}
	fputc(']', f);
}

static void meeting(FILE *f, const plan_doc *d, const doc_entity *m)
{
	const doc_list *dl = &d->lists[T_DECISION];
	int n = 0;
	entity_open(f, m);
	fputs(",\"decisions\":[", f);
	for (size_t i = 0; i < dl->n; i++) {
		if (strcmp(doc_value(&dl->v[i], "meeting"), m->uid) != 0)
			continue;
		fputs(n++ ? "," : "", f);
		entity_open(f, &dl->v[i]);
		fputs(",\"actions\":", f);
		linked_actions(f, d, "decision", dl->v[i].uid, 0);
		fputc('}', f);
	}
	fputs("],\"actions\":", f);
	linked_actions(f, d, "meeting", m->uid, 1);
	fputc('}', f);
}

static void steungroep(FILE *f, const plan_doc *d, int *first)
{
	const doc_list *gl = &d->lists[T_GROUP], *ml = &d->lists[T_MEETING], *dl = &d->lists[T_DECISION];
	size_t *by_date = doc_by_date(d, T_MEETING, "date");
	int k = 0, n;

	section_open(f, first, "steungroep", _("Support group"));
	key(f, &k, "groups");
	fputc('[', f);
	for (size_t i = 0; i < gl->n; i++) {
		fputs(i ? "," : "", f);
		entity_open(f, &gl->v[i]);
		fputs(",\"meetings\":[", f);
		n = 0;
		for (size_t j = 0; j < ml->n; j++) {
			const doc_entity *m = &ml->v[by_date ? by_date[j] : j];
			if (strcmp(doc_value(m, "group"), gl->v[i].uid) == 0) {
				fputs(n++ ? "," : "", f);
				meeting(f, d, m);
			}
		}
		fputs("]}", f);
	}
	fputc(']', f);
	key(f, &k, "meetings_without_group");
	fputc('[', f);
	n = 0;
	for (size_t j = 0; j < ml->n; j++) {
		const doc_entity *m = &ml->v[by_date ? by_date[j] : j];
		if (!doc_find(d, T_GROUP, doc_value(m, "group"))) {
			fputs(n++ ? "," : "", f);
			meeting(f, d, m);
		}
	}
	fputc(']', f);
	key(f, &k, "decisions_without_meeting");
	fputc('[', f);
	n = 0;
	for (size_t i = 0; i < dl->n; i++)
		if (!doc_find(d, T_MEETING, doc_value(&dl->v[i], "meeting"))) {
			fputs(n++ ? "," : "", f);
			entity(f, &dl->v[i]);
		}
	fputs("]}", f);
	free(by_date);
}

/* --- evaluatie ------------------------------------------------------------------------------ */

/* [entries of list t whose evaluation is uid]; uid NULL: whose evaluation
 * is not one there is. */
static void entries_of(FILE *f, const plan_doc *d, int t, const char *uid)
{
	const doc_list *l = &d->lists[t];
	int n = 0;
	fputc('[', f);
	for (size_t i = 0; i < l->n; i++) {
		const char *ev = doc_value(&l->v[i], "evaluation");
		if (uid ? strcmp(ev, uid) != 0 : doc_find(d, T_EVALUATION, ev) != NULL)
			continue;
		fputs(n++ ? "," : "", f);
		entity(f, &l->v[i]);
	}
	fputc(']', f);
}

/* [{"area":uid,"name":...,"scores":[{"evaluation":uid,"date":...,"score":N}]}]
 * for every area with a score in a dated evaluation, oldest first. */
static void scores_by_area(FILE *f, const plan_doc *d, const size_t *by_date, int *first)
{
	const doc_list *al = &d->lists[T_AREA], *el = &d->lists[T_EVALUATION], *sl = &d->lists[T_SCORE];
	int na = 0;
	key(f, first, "scores_by_area");
	fputc('[', f);
	for (size_t a = 0; a < al->n; a++) {
		int ns = 0;
		for (size_t k = 0; k < el->n; k++) {
			const doc_entity *e = &el->v[by_date ? by_date[k] : k];
			for (size_t i = 0; i < sl->n; i++) {
				const doc_entity *s = &sl->v[i];
				int inner = 1;
				if (strcmp(doc_value(s, "area"), al->v[a].uid) != 0 || strcmp(doc_value(s, "evaluation"), e->uid) != 0)
					continue;
				if (!ns++) {
					int head = 1;
					fputs(na++ ? ",{" : "{", f);
					json_kv_str(f, &head, "area", al->v[a].uid);
					json_kv_str(f, &head, "name", doc_value(&al->v[a], "name"));
					fputs(",\"scores\":[", f);
				} else {
					fputc(',', f);
				}
				fputc('{', f);
				json_kv_str(f, &inner, "evaluation", e->uid);
				json_kv_str(f, &inner, "date", doc_value(e, "date"));
				json_kv_str(f, &inner, "score_id", s->uid);
				if (doc_value(s, "score")[0])
					json_kv_int(f, &inner, "score", atoll(doc_value(s, "score")));
				else
					json_kv_str(f, &inner, "score", NULL);
				fputc('}', f);
			}
		}
		if (ns)
			fputs("]}", f);
	}
	fputc(']', f);
}

static void evaluatie(FILE *f, const plan_doc *d, int *first)
{
	const doc_list *el = &d->lists[T_EVALUATION];
	size_t *by_date = doc_by_date(d, T_EVALUATION, "date");
	int k = 0;

	section_open(f, first, "evaluatie", _("Evaluations"));
	key(f, &k, "evaluations"); /* oldest first */
	fputc('[', f);
	for (size_t i = 0; i < el->n; i++) {
		const doc_entity *e = &el->v[by_date ? by_date[i] : i];
		fputs(i ? "," : "", f);
		entity_open(f, e);
		fputs(",\"progress\":", f);
		entries_of(f, d, T_PROGRESS, e->uid);
		fputs(",\"scores\":", f);
		entries_of(f, d, T_SCORE, e->uid);
		fputc('}', f);
	}
	fputc(']', f);
	key(f, &k, "progress_without_evaluation");
	entries_of(f, d, T_PROGRESS, NULL);
	key(f, &k, "scores_without_evaluation");
	entries_of(f, d, T_SCORE, NULL);
	scores_by_area(f, d, by_date, &k);
	fputc('}', f);
	free(by_date);
}

/* --- the document ------------------------------------------------------------------------------ */

static void warnings(FILE *f, const plan_doc *d, int *first)
{
	char buf[1024];
	key(f, first, "warnings");
	fputc('[', f);
	for (size_t i = 0; i < d->nwarnings; i++) {
		const doc_warning *w = &d->warnings[i];
		samen_warning sw = {w->code, w->type, w->entity, w->label, w->detail, w->message};
		int k = 1;
		fputs(i ? ",{" : "{", f);
		json_kv_str(f, &k, "code", w->code);
		json_kv_str(f, &k, "type", w->type);
		json_kv_str(f, &k, "id", w->entity);
		json_kv_str(f, &k, "label", w->label);
		json_kv_str(f, &k, "detail", w->detail);
		json_kv_str(f, &k, "message", w->message);
		json_kv_str(f, &k, "text", warning_text(&sw, buf, sizeof(buf)));
		fputc('}', f);
	}
	fputc(']', f);
}

void show_json(const plan_doc *d, FILE *f)
{
	int first = 1, s = 1;
	fputc('{', f);
	json_kv_str(f, &first, "plan", d->plan_id);
	json_kv_str(f, &first, "client", d->client);
	json_kv_str(f, &first, "lang", i18n_lang());
	if (d->lists[T_PLAN].n) { /* the plan's own entity: title, status, start */
		key(f, &first, "plan_info");
		entity(f, &d->lists[T_PLAN].v[0]);
	}
	key(f, &first, "sections");
	fputc('{', f);
	richting(f, d, &s);
	netwerk(f, d, &s);
	doelen(f, d, &s);
	steungroep(f, d, &s);
	evaluatie(f, d, &s);
	fputc('}', f);
	warnings(f, d, &first);
	fputs("}\n", f);
}
