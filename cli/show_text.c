/*
 * show_text.c - the plan as a document for the terminal, in the method's
 * order. Every value goes through put_wrapped() or put_text(), which wrap
 * by display width and never print a control character.
 */
#include "cli/show.h"
#include "cli/i18n.h"
#include "cli/text.h"

#include <stdlib.h>
#include <string.h>

/* Deeper goals stop moving right here, so text keeps some room. */
#define MAX_GOAL_INDENT 6
/* The network snapshots shown, newest first. */
#define SNAPSHOTS_SHOWN 3

typedef struct {
	FILE *f;
	int width;
	const plan_doc *d;
	strbuf sb;          /* scratch for composing one line */
} out;

static const doc_list *list_of(const out *o, int t) { return &o->d->lists[t]; }

static void line(out *o, int indent, const char *text) { put_wrapped(o->f, o->width, indent, NULL, text, indent + 2); }

static void underline(out *o, const char *title, char c)
{
	size_t n = text_width(title);
	if (n > (size_t)o->width)
		n = (size_t)o->width;
	for (size_t i = 0; i < n; i++)
		fputc(c, o->f);
	fputc('\n', o->f);
}

static void heading(out *o, int number, const char *title)
{
	sb_clear(&o->sb);
	if (number)
		sb_addf(&o->sb, "%d. ", number);
	sb_add(&o->sb, title);
	fputc('\n', o->f);
	line(o, 0, sb_str(&o->sb));
	underline(o, sb_str(&o->sb), '=');
}

static void subheading(out *o, const char *title)
{
	fputc('\n', o->f);
	line(o, 0, title);
}

/* "Label: text" with the text wrapped under it; nothing when text is "". */
static void labelled(out *o, int indent, const char *label, const char *text)
{
	strbuf prefix = STRBUF_INIT;
	if (!text || !text[0])
		return;
	sb_addf(&prefix, "%s: ", label);
	put_wrapped(o->f, o->width, indent, sb_str(&prefix), text, indent + 2);
	sb_free(&prefix);
}

static void bullet(out *o, int indent, const char *text) { put_wrapped(o->f, o->width, indent, "- ", text, indent + 2); }

/* Facts this wide or less are not broken across lines. */
#define GLUED_WIDTH 30
#define NBSP "\xc2\xa0"

/* s with its spaces as no-break spaces, so that it stays on one line. */
static void add_glued(strbuf *b, const char *s)
{
	for (const char *sp; (sp = strchr(s, ' ')); s = sp + 1) {
		sb_addf(b, "%.*s", (int)(sp - s), s);
		sb_add(b, NBSP);
	}
	sb_add(b, s);
}

/* ", label value" for the short facts of a line; nothing when value is "".
 * A short fact ("status in progress") stays together when wrapped. */
static void fact(strbuf *b, int *n, const char *label, const char *value)
{
	int glue;
	if (!value || !value[0])
		return;
	glue = (label ? text_width(label) + 1 : 0) + text_width(value) <= GLUED_WIDTH;
	sb_add(b, (*n)++ ? ", " : "");
	if (label) {
		(glue ? add_glued : sb_add)(b, label);
		sb_add(b, glue ? NBSP : " ");
	}
	(glue ? add_glued : sb_add)(b, value);
}

/* Facts in parentheses after a line's text: " (a, b)", or nothing when
 * none has a value. facts_open() returns where they start. */
static size_t facts_open(strbuf *b, int *n)
{
	size_t mark = b->len;
	sb_add(b, " (");
	*n = 0;
	return mark;
}

static void facts_close(strbuf *b, size_t mark, int n)
{
	if (n)
		sb_add(b, ")");
	else if (b->s && b->len >= mark) {
		b->len = mark;
		b->s[mark] = '\0';
	}
}

static const char *conflict_note(const doc_entity *e)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (e->fields[i].conflict)
			return _(" [concurrent values: see samen conflicts]");
	return "";
}

/* --- 1. richting ------------------------------------------------------------- */

static void show_areas(out *o)
{
	const doc_list *l = list_of(o, T_AREA);
	strbuf bare = STRBUF_INIT;
	int filled = 0;

	subheading(o, _("Life areas"));
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *a = &l->v[i];
		const char *wish = doc_value(a, "wish"), *situation = doc_value(a, "situation");
		if (!wish[0] && !situation[0]) {
			sb_add(&bare, bare.len ? ", " : "");
			sb_add(&bare, doc_value(a, "name"));
			continue;
		}
		filled++;
		sb_clear(&o->sb);
		sb_add(&o->sb, doc_value(a, "name"));
		sb_add(&o->sb, conflict_note(a));
		line(o, 2, sb_str(&o->sb));
		labelled(o, 4, _("Wish"), wish);
		labelled(o, 4, _("Situation now"), situation);
	}
	if (l->n == 0)
		line(o, 2, _("No life areas yet."));
	else if (bare.len)
		labelled(o, 2, filled ? _("No wish or situation yet") : _("No wish or situation yet for any area"),
		         sb_str(&bare));
	sb_free(&bare);
}

static void show_strengths(out *o)
{
	const doc_list *l = list_of(o, T_STRENGTH);
	subheading(o, _("Strengths"));
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *s = &l->v[i];
		size_t mark;
		int n = 0;
		sb_clear(&o->sb);
		sb_add(&o->sb, doc_value(s, "text"));
		mark = facts_open(&o->sb, &n);
		fact(&o->sb, &n, NULL, doc_shown(s, "area"));
		fact(&o->sb, &n, _("source:"), enum_text(doc_value(s, "source")));
		facts_close(&o->sb, mark, n);
		sb_add(&o->sb, conflict_note(s));
		bullet(o, 2, sb_str(&o->sb));
	}
	if (l->n == 0)
		line(o, 2, _("No strengths yet."));
}

static void show_vips(out *o)
{
	const doc_list *l = list_of(o, T_VIP);
	subheading(o, _("VIPs: people who really matter"));
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *v = &l->v[i];
		const doc_entity *person = doc_find(o->d, T_PERSON, doc_value(v, "person"));
		size_t mark;
		int n = 0;
		sb_clear(&o->sb);
		sb_add(&o->sb, doc_shown(v, "person"));
		mark = facts_open(&o->sb, &n);
		fact(&o->sb, &n, NULL, person ? doc_value(person, "relation") : "");
		fact(&o->sb, &n, _("life area"), doc_shown(v, "area"));
		facts_close(&o->sb, mark, n);
		sb_add(&o->sb, conflict_note(v));
		bullet(o, 2, sb_str(&o->sb));
		labelled(o, 4, _("Why"), doc_value(v, "why"));
	}
	if (l->n == 0)
		line(o, 2, _("No VIPs yet."));
}

static void show_lifestyle(out *o)
{
	const doc_list *l = list_of(o, T_LIFESTYLE);
	subheading(o, _("Lifestyle"));
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *s = &l->v[i];
		const char *area = doc_shown(s, "area");
		sb_clear(&o->sb);
		sb_add(&o->sb, "- ");
		if (area[0])
			sb_addf(&o->sb, "%s: ", area);
		put_wrapped(o->f, o->width, 2, sb_str(&o->sb), doc_value(s, "text"), 4);
	}
	if (l->n == 0)
		line(o, 2, _("No lifestyle notes yet."));
}

/* --- 2. netwerk ----------------------------------------------------------------- */

static const char *const sectors[] = {"familie", "vrienden", "buren", "werk/school", "professionals",
                                      "vereniging/kerk", ""};

static int sector_known(const char *s)
{
	for (size_t k = 0; k + 1 < sizeof(sectors) / sizeof(sectors[0]); k++)
		if (strcmp(s, sectors[k]) == 0)
			return 1;
	return 0;
}

static void show_tie(out *o, const doc_entity *t)
{
	const doc_entity *person = doc_find(o->d, T_PERSON, doc_value(t, "person"));
	char set[256];
	size_t mark;
	int n = 0;

	sb_clear(&o->sb);
	sb_add(&o->sb, doc_shown(t, "person"));
	mark = facts_open(&o->sb, &n);
	fact(&o->sb, &n, NULL, person ? doc_value(person, "relation") : "");
	fact(&o->sb, &n, NULL, enum_text(doc_value(t, "strength")));
	fact(&o->sb, &n, NULL, enum_text(doc_value(t, "valence")));
	fact(&o->sb, &n, _("support:"), enum_set_text(doc_value(t, "support"), set, sizeof(set)));
	fact(&o->sb, &n, NULL, enum_text(doc_value(t, "reciprocity")));
	facts_close(&o->sb, mark, n);
	sb_add(&o->sb, conflict_note(t));
	bullet(o, 6, sb_str(&o->sb));
	labelled(o, 8, _("Note"), doc_value(t, "note"));
	if (person)
		labelled(o, 8, _("Contact"), doc_value(person, "contact"));
}

static void show_ring(out *o, const char *ring)
{
	const doc_list *l = list_of(o, T_TIE);
	int any = 0;
	for (size_t k = 0; k < l->n && !any; k++)
		any = strcmp(doc_value(&l->v[k], "ring"), ring) == 0;
	if (!any)
		return;
	sb_clear(&o->sb);
	if (ring[0])
		sb_addf(&o->sb, _("Ring %s"), ring);
	else
		sb_add(&o->sb, _("No ring"));
	line(o, 2, sb_str(&o->sb));
	for (size_t s = 0; s < sizeof(sectors) / sizeof(sectors[0]); s++) {
		int shown = 0;
		for (size_t k = 0; k < l->n; k++) {
			const doc_entity *t = &l->v[k];
			const char *sector = doc_value(t, "sector");
			if (strcmp(doc_value(t, "ring"), ring) != 0)
				continue;
			/* the last group takes the ties without a sector (or one this
			 * samen does not know) */
			if (sectors[s][0] ? strcmp(sector, sectors[s]) != 0 : sector_known(sector))
				continue;
			if (!shown++)
				line(o, 4, sectors[s][0] ? enum_text(sectors[s]) : _("no sector"));
			show_tie(o, t);
		}
	}
}

static int person_on_map(const out *o, const char *uid)
{
	const doc_list *l = list_of(o, T_TIE);
	for (size_t k = 0; k < l->n; k++)
		if (strcmp(doc_value(&l->v[k], "person"), uid) == 0)
			return 1;
	return 0;
}

static void show_persons(out *o)
{
	const doc_list *l = list_of(o, T_PERSON);
	int any = 0;
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *p = &l->v[i];
		size_t mark;
		int n = 0;
		if (person_on_map(o, p->uid))
			continue;
		if (!any++)
			subheading(o, list_of(o, T_TIE)->n ? _("Persons not on the network map") : _("Persons"));
		sb_clear(&o->sb);
		sb_add(&o->sb, doc_value(p, "name"));
		mark = facts_open(&o->sb, &n);
		fact(&o->sb, &n, NULL, doc_value(p, "relation"));
		facts_close(&o->sb, mark, n);
		bullet(o, 2, sb_str(&o->sb));
		labelled(o, 4, _("Contact"), doc_value(p, "contact"));
	}
}

static void show_snapshots(out *o)
{
	const doc_list *l = list_of(o, T_SNAPSHOT);
	size_t *idx = doc_by_date(o->d, T_SNAPSHOT, "date");
	size_t shown = 0;

	subheading(o, _("Network snapshots"));
	/* newest first: walk the dated ones from the end */
	for (size_t k = l->n; idx && k-- > 0 && shown < SNAPSHOTS_SHOWN;) {
		const doc_entity *s = &l->v[idx[k]];
		long ties = atol(doc_value(s, "ties"));
		const char *note = doc_value(s, "note");
		sb_clear(&o->sb);
		sb_add(&o->sb, doc_value(s, "date"));
		if (doc_value(s, "ties")[0]) {
			sb_add(&o->sb, ": ");
			sb_addf(&o->sb, P_("%ld tie", "%ld ties", (unsigned long)ties), ties);
		}
		if (note[0])
			sb_addf(&o->sb, " (%s)", note);
		bullet(o, 2, sb_str(&o->sb));
		shown++;
	}
	if (l->n > shown) {
		sb_clear(&o->sb);
		sb_addf(&o->sb, P_("(%zu older snapshot not shown)", "(%zu older snapshots not shown)",
		                   (unsigned long)(l->n - shown)), l->n - shown);
		line(o, 2, sb_str(&o->sb));
	}
	if (l->n == 0)
		line(o, 2, _("No snapshots yet."));
	free(idx);
}

static void show_network(out *o)
{
	subheading(o, _("Network map"));
	if (list_of(o, T_TIE)->n == 0)
		line(o, 2, _("No ties on the network map yet."));
	show_ring(o, "1");
	show_ring(o, "2");
	show_ring(o, "3");
	show_ring(o, "");
	show_persons(o);
	show_snapshots(o);
}

/* --- 3. doelen en acties ------------------------------------------------------------ */

static void show_action(out *o, int indent, size_t number, const doc_entity *a)
{
	const char *tier = doc_value(a, "tier");
	strbuf prefix = STRBUF_INIT;
	size_t mark;
	int n = 0;

	sb_addf(&prefix, "%zu. ", number);
	sb_clear(&o->sb);
	sb_addf(&o->sb, "[%s] %s", tier[0] ? enum_text(tier) : _("no tier"), doc_value(a, "text"));
	mark = facts_open(&o->sb, &n);
	fact(&o->sb, &n, NULL, doc_shown(a, "person"));
	fact(&o->sb, &n, _("due"), doc_value(a, "due"));
	fact(&o->sb, &n, NULL, enum_text(doc_value(a, "status")));
	facts_close(&o->sb, mark, n);
	sb_add(&o->sb, conflict_note(a));
	put_wrapped(o->f, o->width, indent, sb_str(&prefix), sb_str(&o->sb), indent + (int)prefix.len);
	labelled(o, indent + (int)prefix.len, _("Reason"), doc_value(a, "reason"));
	sb_free(&prefix);
}

static void show_actions(out *o, int indent, const char *goal)
{
	const doc_entity **acts = malloc((list_of(o, T_ACTION)->n + 1) * sizeof(*acts));
	size_t n;
	if (!acts) {
		line(o, indent, _("(out of memory listing the actions)"));
		return;
	}
	n = doc_goal_actions(o->d, goal, acts);
	if (n && goal)
		line(o, indent, _("Actions:"));
	else if (goal)
		line(o, indent, _("No actions yet."));
	for (size_t i = 0; i < n; i++)
		show_action(o, goal ? indent + 2 : indent, i + 1, acts[i]);
	free(acts);
}

static void show_pdsa(out *o, int indent, const doc_entity *c)
{
	const char *start = doc_value(c, "start"), *end = doc_value(c, "end");
	const doc_entity *a = doc_find(o->d, T_ACTION, doc_value(c, "action"));
	sb_clear(&o->sb);
	sb_addf(&o->sb, "%s: %s", _("PDSA cycle"), doc_value(c, "title"));
	if (start[0] || end[0])
		sb_addf(&o->sb, " (%s" NBSP "-" NBSP "%s)", start[0] ? start : "?", end[0] ? end : "?");
	sb_add(&o->sb, conflict_note(c));
	line(o, indent, sb_str(&o->sb));
	if (a)
		labelled(o, indent + 2, _("For action"), doc_value(a, "text"));
	labelled(o, indent + 2, _("Plan"), doc_value(c, "planned"));
	labelled(o, indent + 2, _("Do"), doc_value(c, "done"));
	labelled(o, indent + 2, _("Study"), doc_value(c, "studied"));
	labelled(o, indent + 2, _("Act"), doc_value(c, "acted"));
}

static void show_goal_pdsa(out *o, int indent, const char *goal)
{
	const doc_list *l = list_of(o, T_PDSA);
	for (size_t i = 0; i < l->n; i++) {
		const char *g = doc_goal_of(o->d, &l->v[i]);
		if (goal ? g && strcmp(g, goal) == 0 : g == NULL)
			show_pdsa(o, indent, &l->v[i]);
	}
}

static void show_goal(out *o, const doc_entity *g, int depth, const char *number)
{
	int ind = 2 * (depth < MAX_GOAL_INDENT ? depth : MAX_GOAL_INDENT);
	const char *prio = doc_value(g, "priority");
	int n = 0;

	fputc('\n', o->f);
	sb_clear(&o->sb);
	sb_addf(&o->sb, "%s %s: %s%s", doc_goal_level(depth), number, doc_value(g, "title"), conflict_note(g));
	line(o, ind, sb_str(&o->sb));
	sb_clear(&o->sb);
	fact(&o->sb, &n, _("life area"), doc_shown(g, "area"));
	fact(&o->sb, &n, _("term"), enum_text(doc_value(g, "term")));
	fact(&o->sb, &n, _("priority"), prio);
	fact(&o->sb, &n, _("status"), enum_text(doc_value(g, "status")));
	fact(&o->sb, &n, _("target date"), doc_value(g, "target"));
	if (n)
		line(o, ind + 2, sb_str(&o->sb));
	if (g->cycle)
		line(o, ind + 2, _("(its parent goal is ignored: it would make a cycle)"));
	if (doc_value(g, "description")[0])
		put_wrapped(o->f, o->width, ind + 2, NULL, doc_value(g, "description"), ind + 2);
	show_actions(o, ind + 2, g->uid);
	show_goal_pdsa(o, ind + 2, g->uid);
}

/* The list is the goal tree depth first, so numbering is a stack of
 * counters; a depth is never more than one below the goal before it. */
static void show_goals(out *o)
{
	const doc_list *l = list_of(o, T_GOAL);
	size_t *count = calloc(l->n + 1, sizeof(*count));
	int depth = -1;

	if (!count) {
		line(o, 0, _("(out of memory listing the goals)"));
		return;
	}
	if (l->n == 0) {
		fputc('\n', o->f);
		line(o, 0, _("No goals yet."));
	}
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *g = &l->v[i];
		strbuf number = STRBUF_INIT;
		int d = g->depth < 0 ? 0 : g->depth > depth + 1 ? depth + 1 : g->depth;
		count[d]++;
		count[d + 1] = 0;
		for (int k = 0; k <= d; k++)
			sb_addf(&number, "%s%zu", k ? "." : "", count[k]);
		show_goal(o, g, d, sb_str(&number));
		sb_free(&number);
		depth = d;
	}
	free(count);
	{
		const doc_entity **acts = malloc((list_of(o, T_ACTION)->n + 1) * sizeof(*acts));
		if (acts && doc_goal_actions(o->d, NULL, acts)) {
			subheading(o, _("Actions without a goal"));
			show_actions(o, 2, NULL);
		}
		free(acts);
	}
	for (size_t i = 0; i < list_of(o, T_PDSA)->n; i++)
		if (!doc_goal_of(o->d, &list_of(o, T_PDSA)->v[i])) {
			subheading(o, _("PDSA cycles without a goal"));
			show_goal_pdsa(o, 2, NULL);
			break;
		}
}

/* --- 4. steungroep ------------------------------------------------------------------- */

static void show_linked_actions(out *o, int indent, const char *field, const char *uid, const char *title,
                                int skip_decided)
{
	const doc_list *l = list_of(o, T_ACTION);
	int any = 0;
	for (size_t i = 0; i < l->n; i++) {
		const doc_entity *a = &l->v[i];
		const char *tier = doc_value(a, "tier");
		if (strcmp(doc_value(a, field), uid) != 0)
			continue;
		if (skip_decided && doc_find(o->d, T_DECISION, doc_value(a, "decision")))
			continue;
		if (!any++ && title)
			line(o, indent, title);
		sb_clear(&o->sb);
		sb_addf(&o->sb, "%s [%s] %s", _("action"), tier[0] ? enum_text(tier) : _("no tier"), doc_value(a, "text"));
		if (doc_shown(a, "goal")[0])
			sb_addf(&o->sb, " (%s %s)", _("goal"), doc_shown(a, "goal"));
		put_wrapped(o->f, o->width, indent + (title ? 2 : 0), "-> ", sb_str(&o->sb), indent + (title ? 5 : 3));
	}
}

static void show_meeting(out *o, int indent, const doc_entity *m)
{
	const doc_list *dl = list_of(o, T_DECISION);
	int any = 0;

	fputc('\n', o->f);
	sb_clear(&o->sb);
	sb_addf(&o->sb, "%s %s%s", _("Meeting of"), doc_value(m, "date"), conflict_note(m));
	line(o, indent, sb_str(&o->sb));
	labelled(o, indent + 2, _("Present"), doc_shown(m, "present"));
	labelled(o, indent + 2, _("Agenda"), doc_value(m, "agenda"));
	labelled(o, indent + 2, _("Minutes"), doc_value(m, "minutes"));
	for (size_t i = 0; i < dl->n; i++) {
		const doc_entity *dec = &dl->v[i];
		if (strcmp(doc_value(dec, "meeting"), m->uid) != 0)
			continue;
		if (!any++)
			line(o, indent + 2, _("Decisions:"));
		bullet(o, indent + 4, doc_value(dec, "text"));
		show_linked_actions(o, indent + 6, "decision", dec->uid, NULL, 0);
	}
	show_linked_actions(o, indent + 2, "meeting", m->uid, _("New actions:"), 1);
	labelled(o, indent + 2, _("Next meeting"), doc_value(m, "next"));
}

static void show_group(out *o, const doc_entity *g, const size_t *by_date)
{
	const doc_list *ml = list_of(o, T_MEETING);
	const char *rhythm = doc_value(g, "rhythm");
	int meetings = 0;

	subheading(o, doc_value(g, "name"));
	labelled(o, 2, _("Coordinator"), doc_shown(g, "coordinator"));
	labelled(o, 2, _("Members"), doc_shown(g, "members"));
	sb_clear(&o->sb);
	if (rhythm[0])
		sb_addf(&o->sb, P_("every %ld day", "every %ld days", (unsigned long)atol(rhythm)), atol(rhythm));
	labelled(o, 2, _("Rhythm"), sb_str(&o->sb));
	labelled(o, 2, _("Next meeting"), doc_value(g, "next"));
	for (size_t k = 0; k < ml->n; k++) {
		const doc_entity *m = &ml->v[by_date ? by_date[k] : k];
		if (strcmp(doc_value(m, "group"), g->uid) == 0) {
			show_meeting(o, 2, m);
			meetings++;
		}
	}
	if (!meetings)
		line(o, 2, _("No meetings yet."));
}

static void show_support(out *o)
{
	const doc_list *gl = list_of(o, T_GROUP), *ml = list_of(o, T_MEETING), *dl = list_of(o, T_DECISION);
	size_t *by_date = doc_by_date(o->d, T_MEETING, "date");
	int loose = 0;

	for (size_t i = 0; i < gl->n; i++)
		show_group(o, &gl->v[i], by_date);
	for (size_t k = 0; k < ml->n; k++) {
		const doc_entity *m = &ml->v[by_date ? by_date[k] : k];
		if (doc_find(o->d, T_GROUP, doc_value(m, "group")))
			continue;
		if (!loose++)
			subheading(o, _("Meetings without a support group"));
		show_meeting(o, 2, m);
	}
	loose = 0;
	for (size_t i = 0; i < dl->n; i++) {
		if (doc_find(o->d, T_MEETING, doc_value(&dl->v[i], "meeting")))
			continue;
		if (!loose++)
			subheading(o, _("Decisions without a meeting"));
		bullet(o, 2, doc_value(&dl->v[i], "text"));
	}
	if (gl->n == 0 && ml->n == 0 && dl->n == 0) {
		fputc('\n', o->f);
		line(o, 0, _("No support group yet."));
	}
	free(by_date);
}

/* --- 5. evaluatie ---------------------------------------------------------------------- */

static void show_progress(out *o, int indent, const doc_entity *p)
{
	sb_clear(&o->sb);
	sb_add(&o->sb, doc_shown(p, "goal"));
	if (doc_value(p, "progress")[0])
		sb_addf(&o->sb, ": %s", enum_text(doc_value(p, "progress")));
	bullet(o, indent, sb_str(&o->sb));
	labelled(o, indent + 2, _("Note"), doc_value(p, "note"));
}

static void show_score(out *o, int indent, const doc_entity *s)
{
	sb_clear(&o->sb);
	sb_addf(&o->sb, "%s: %s", doc_shown(s, "area"), doc_value(s, "score")[0] ? doc_value(s, "score") : "-");
	bullet(o, indent, sb_str(&o->sb));
	labelled(o, indent + 2, _("Note"), doc_value(s, "note"));
}

/* Entries of list t whose field names uid (NULL: whose evaluation is not
 * one there is), each shown under title. */
static int show_entries(out *o, int t, const char *uid, int indent, const char *title)
{
	const doc_list *l = list_of(o, t);
	int n = 0;
	for (size_t i = 0; i < l->n; i++) {
		const char *ev = doc_value(&l->v[i], "evaluation");
		if (uid ? strcmp(ev, uid) != 0 : doc_find(o->d, T_EVALUATION, ev) != NULL)
			continue;
		if (!n++) {
			if (uid)
				line(o, indent - 2, title);
			else
				subheading(o, title);
		}
		if (t == T_PROGRESS)
			show_progress(o, indent, &l->v[i]);
		else
			show_score(o, indent, &l->v[i]);
	}
	return n;
}

static void pad(out *o, size_t n)
{
	while (n-- > 0)
		fputc(' ', o->f);
}

static const doc_entity *score_at(const out *o, const char *area, const char *evaluation)
{
	const doc_list *l = list_of(o, T_SCORE);
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(doc_value(&l->v[i], "area"), area) == 0 &&
		    strcmp(doc_value(&l->v[i], "evaluation"), evaluation) == 0)
			return &l->v[i];
	return NULL;
}

/* Scores per life area over time: a row per area, a column per evaluation
 * (the newest that fit the width). */
static void show_score_table(out *o, const size_t *by_date)
{
	const doc_list *el = list_of(o, T_EVALUATION), *al = list_of(o, T_AREA);
	const size_t colw = 12; /* " YYYY-MM-DD " */
	size_t namew = 8, first = 0, ncols = 0, fit;
	size_t *cols = malloc((el->n + 1) * sizeof(*cols));

	if (!cols)
		return;
	for (size_t k = 0; k < el->n; k++) {
		size_t e = by_date ? by_date[k] : k;
		int scored = 0;
		for (size_t a = 0; a < al->n && !scored; a++)
			scored = score_at(o, al->v[a].uid, el->v[e].uid) != NULL;
		if (scored)
			cols[ncols++] = e;
	}
	for (size_t a = 0; a < al->n; a++) {
		size_t w = text_width(doc_value(&al->v[a], "name"));
		if (w > namew && w <= 24)
			namew = w;
	}
	fit = ((size_t)o->width > namew + 2 + colw ? ((size_t)o->width - namew - 2) / colw : 1);
	if (ncols > fit)
		first = ncols - fit;
	if (ncols) {
		subheading(o, _("Scores per life area over time"));
		pad(o, 2 + namew);
		for (size_t k = first; k < ncols; k++) {
			pad(o, colw - 10);
			put_text(o->f, doc_value(&el->v[cols[k]], "date"));
		}
		fputc('\n', o->f);
	}
	for (size_t a = 0; ncols && a < al->n; a++) {
		const char *name = doc_value(&al->v[a], "name");
		int any = 0;
		for (size_t k = first; k < ncols && !any; k++)
			any = score_at(o, al->v[a].uid, el->v[cols[k]].uid) != NULL;
		if (!any)
			continue;
		pad(o, 2);
		put_text(o->f, name);
		if (text_width(name) > namew) { /* a long name gets a line of its own */
			fputc('\n', o->f);
			pad(o, 2 + namew);
		} else {
			pad(o, namew - text_width(name));
		}
		for (size_t k = first; k < ncols; k++) {
			const doc_entity *s = score_at(o, al->v[a].uid, el->v[cols[k]].uid);
			const char *v = s && doc_value(s, "score")[0] ? doc_value(s, "score") : "-";
			pad(o, colw - text_width(v));
			put_text(o->f, v);
		}
		fputc('\n', o->f);
	}
	if (first) {
		sb_clear(&o->sb);
		sb_addf(&o->sb, P_("(%zu older evaluation does not fit the width)",
		                   "(%zu older evaluations do not fit the width)", (unsigned long)first), first);
		line(o, 2, sb_str(&o->sb));
	}
	free(cols);
}

static void show_evaluations(out *o)
{
	const doc_list *el = list_of(o, T_EVALUATION);
	size_t *by_date = doc_by_date(o->d, T_EVALUATION, "date");
	int loose;

	for (size_t k = 0; k < el->n; k++) {
		const doc_entity *e = &el->v[by_date ? by_date[k] : k];
		sb_clear(&o->sb);
		sb_addf(&o->sb, "%s %s%s", _("Evaluation of"), doc_value(e, "date"), conflict_note(e));
		subheading(o, sb_str(&o->sb));
		labelled(o, 2, _("Summary"), doc_value(e, "summary"));
		show_entries(o, T_PROGRESS, e->uid, 4, _("Progress per goal:"));
		show_entries(o, T_SCORE, e->uid, 4, _("Scores per life area:"));
		labelled(o, 2, _("Next evaluation"), doc_value(e, "next"));
	}
	loose = show_entries(o, T_PROGRESS, NULL, 2, _("Progress without an evaluation"));
	loose += show_entries(o, T_SCORE, NULL, 2, _("Scores without an evaluation"));
	show_score_table(o, by_date);
	if (el->n == 0 && !loose) {
		fputc('\n', o->f);
		line(o, 0, _("No evaluations yet."));
	}
	free(by_date);
}

/* --- the document ---------------------------------------------------------------------- */

static void show_warnings(out *o)
{
	char buf[1024];
	heading(o, 0, _("Points of attention"));
	for (size_t i = 0; i < o->d->nwarnings; i++) {
		const doc_warning *w = &o->d->warnings[i];
		samen_warning sw = {w->code, w->type, w->entity, w->label, w->detail, w->message};
		put_wrapped(o->f, o->width, 2, "! ", warning_text(&sw, buf, sizeof(buf)), 4);
	}
	if (o->d->nwarnings == 0)
		line(o, 2, _("No points of attention."));
}

void show_text(const plan_doc *d, FILE *f)
{
	out o = {f, term_width(), d, STRBUF_INIT};

	sb_addf(&o.sb, _("Collaboration plan of %s"), d->client);
	line(&o, 0, sb_str(&o.sb));
	underline(&o, sb_str(&o.sb), '=');
	sb_clear(&o.sb);
	sb_addf(&o.sb, "%s %s", _("plan"), d->plan_id);
	line(&o, 0, sb_str(&o.sb));
	if (d->lists[T_PLAN].n) { /* the plan's own entity: title, status, start */
		const doc_entity *pe = &d->lists[T_PLAN].v[0];
		sb_clear(&o.sb);
		sb_addf(&o.sb, _("%s; status %s, started %s"), doc_value(pe, "title"), enum_text(doc_value(pe, "status")),
		        doc_value(pe, "started")[0] ? doc_value(pe, "started") : "-");
		line(&o, 0, sb_str(&o.sb));
	}

	heading(&o, 1, _("Direction"));
	show_areas(&o);
	show_strengths(&o);
	show_vips(&o);
	show_lifestyle(&o);

	heading(&o, 2, _("Network"));
	show_network(&o);

	heading(&o, 3, _("Goals and actions"));
	show_goals(&o);

	heading(&o, 4, _("Support group"));
	show_support(&o);

	heading(&o, 5, _("Evaluations"));
	show_evaluations(&o);

	show_warnings(&o);
	sb_free(&o.sb);
}
