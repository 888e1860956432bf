/*
 * test_modules.c - the five modules of the plan on the entity engine.
 *
 * 1. Every entity type, one by one: create, edit, concurrent edits on two
 *    devices, the merged result (same winner, the conflict visible on both),
 *    the audit trail (timeline), delete.
 * 2. A random property test over all types: several devices create, set
 *    (every field kind: text, choices, sets, numbers, dates, references and
 *    lists of them), clear and delete entities of every type offline, take
 *    network snapshots, and exchange bundles in random pairings; at the end
 *    every replica shows the same state hash and the same listing of every
 *    type, and passes samen_plan_check.
 * 3. The method's rules: each warning appears when the plan breaks the rule
 *    and goes away when it is put right; network diffs; score history.
 *
 * Seeds: SAMEN_SEED=N runs only seed N; SAMEN_SEED_COUNT=K runs 1..K (3).
 */
#include "testutil.h"

#include "samen/samen.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Everything from has and to lacks, by a bundle file. */
static void exchange(node *from, node *to, const char *scratch)
{
	char path[4200], *vv = NULL;
	samen_bundle_stats st, im;
	snprintf(path, sizeof(path), "%s/x.bundle", scratch);
	if (to->plan)
		OK(samen_plan_version_vector(to->plan, &vv));
	OK(samen_bundle_create(from->plan, path, vv, &st));
	samen_plan_free(to->plan);
	to->plan = NULL;
	OK(samen_bundle_import(to->store, path, &im));
	assert_int_equal(im.invalid, 0);
	assert_int_equal(im.rejected, 0);
	free(vv);
	OK(samen_plan_open(&to->plan, to->store, NULL));
	unlink(path);
}

/* Devices d[0..n-1]: d[0] starts the plan and adds the others. */
static void start(node *d, int n, const char *scratch)
{
	static const char *const names[] = {"anna", "bram", "cor", "dina"};
	samen_edit *e;
	for (int i = 0; i < n; i++)
		node_init(&d[i], names[i]);
	OK(samen_plan_create(&d[0].plan, d[0].store, "Joke", "nl"));
	if (n == 1)
		return;
	OK(samen_edit_begin(&e, d[0].plan));
	for (int i = 1; i < n; i++)
		OK(samen_edit_member_add(e, samen_store_device_key(d[i].store), names[i]));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	for (int i = 1; i < n; i++)
		exchange(&d[0], &d[i], scratch);
}

/* ---- what a replica shows ---------------------------------------------------- */

typedef struct {
	char *p;
	size_t len, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s)
{
	size_t n = strlen(s);
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
}

static int dump_cb(const samen_entity_view *e, void *payload)
{
	char line[256];
	sbuf *b = payload;
	snprintf(line, sizeof(line), "%s %s d=%d c=%d p=%s:", e->type, e->uid, e->depth, e->cycle,
	         e->parent ? e->parent : "-");
	sb_add(b, line);
	for (size_t i = 0; i < e->nfields; i++) {
		sb_add(b, " ");
		sb_add(b, e->fields[i].name);
		sb_add(b, "=");
		sb_add(b, e->fields[i].value);
		if (e->fields[i].label) {
			sb_add(b, "/");
			sb_add(b, e->fields[i].label);
		}
		snprintf(line, sizeof(line), "#%d", e->fields[i].nvalues);
		sb_add(b, line);
	}
	sb_add(b, "\n");
	return 0;
}

/* Every entity of every type, in display order. */
static char *dump(samen_plan *p)
{
	sbuf b = {NULL, 0, 0};
	const samen_type_info *t;
	sb_add(&b, "");
	for (size_t i = 0; (t = samen_schema_type(i)); i++)
		OK(samen_entity_list(p, t->name, dump_cb, &b));
	return b.p;
}

typedef struct {
	const char *field;
	const char *value;
	int nvalues;
	int found;
} probe;

static int probe_cb(const samen_entity_view *e, void *payload)
{
	probe *pr = payload;
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].name, pr->field) == 0) {
			pr->value = strdup(e->fields[i].value);
			pr->nvalues = e->fields[i].nvalues;
		}
	pr->found++;
	return 0;
}

static probe get_field(samen_plan *p, const char *type, const char *uid, const char *field)
{
	probe pr = {field, NULL, 0, 0};
	OK(samen_entity_get(p, type, uid, probe_cb, &pr));
	assert_int_equal(pr.found, 1);
	return pr;
}

/* ---- 1. every type, one by one ------------------------------------------------ */

/* For each type: a label, a field, and two different values for it ("@x"
 * names an entity made by make_targets()). */
typedef struct {
	const char *type, *label, *field, *a, *b;
} type_case;

static const type_case cases[] = {
	{"area", "eigen gebied", "wish", "Weer werken", "Vrijwilligerswerk doen"},
	{"strength", "Goed met kinderen", "source", "klant", "netwerk"},
	{"vip", "@person", "why", "Staat altijd klaar", "Kent haar het langst"},
	{"lifestyle", "Snoept 's avonds", "area", "familie", "partner"},
	{"person", "Kees", "relation", "partner", "echtgenoot"},
	{"tie", "@person", "support", "praktisch, advies", "emotioneel"},
	{"snapshot", "2026-01-10", "note", "eerste kaart", "kaart na gesprek"},
	{"goal", "Weer vriendinnen zien", "status", "bezig", "bereikt"},
	{"action", "Vriendin bellen", "tier", "klant", "netwerk"},
	{"pdsa", "Elke week een uur wandelen", "studied", "lukte 3 van 4 keer", "lukte elke week"},
	{"group", "Steungroep Joke", "members", "@person", "@person2"},
	{"meeting", "2026-02-01", "minutes", "Besproken: werk", "Besproken: gezin"},
	{"decision", "Kees helpt met het cv", "meeting", "@meeting", "@meeting2"},
	{"evaluation", "2026-03-01", "summary", "Goede start", "Veel bereikt"},
	{"progress", "@goal", "progress", "enige", "goed"},
	{"score", "werk", "score", "4", "6"},
};

/* Entities the cases refer to, made on device 0. */
typedef struct {
	char person[17], person2[17], meeting[17], meeting2[17], goal[17];
} targets;

static void make_targets(node *a, targets *t)
{
	samen_edit *e;
	OK(samen_edit_begin(&e, a->plan));
	OK(samen_edit_create(e, "person", t->person));
	OK(samen_edit_set_in(e, "person", t->person, "name", "Marie"));
	OK(samen_edit_create(e, "person", t->person2));
	OK(samen_edit_set_in(e, "person", t->person2, "name", "Ria"));
	OK(samen_edit_create(e, "meeting", t->meeting));
	OK(samen_edit_set_in(e, "meeting", t->meeting, "date", "2026-01-05"));
	OK(samen_edit_create(e, "meeting", t->meeting2));
	OK(samen_edit_set_in(e, "meeting", t->meeting2, "date", "2026-01-19"));
	OK(samen_edit_create(e, "goal", t->goal));
	OK(samen_edit_set_in(e, "goal", t->goal, "title", "Werk vinden"));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
}

static const char *resolve_case(const targets *t, const char *v)
{
	if (strcmp(v, "@person") == 0)
		return t->person;
	if (strcmp(v, "@person2") == 0)
		return t->person2;
	if (strcmp(v, "@meeting") == 0)
		return t->meeting;
	if (strcmp(v, "@meeting2") == 0)
		return t->meeting2;
	if (strcmp(v, "@goal") == 0)
		return t->goal;
	return v;
}

static void set_one(node *n, const char *type, const char *uid, const char *field, const char *value)
{
	samen_edit *e;
	OK(samen_edit_begin(&e, n->plan));
	OK(samen_edit_set_in(e, type, uid, field, value));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
}

typedef struct {
	int created, deleted, sets[2];
} trail;

static int trail_cb(const samen_timeline_entry *t, void *payload)
{
	trail *tr = payload;
	assert_true(t->accepted);
	if (strcmp(t->what, "created") == 0)
		tr->created++;
	else if (strcmp(t->what, "deleted") == 0)
		tr->deleted++;
	else
		tr->sets[strcmp(t->author, "anna") == 0 ? 0 : 1]++;
	return 0;
}

static int count_entities(const samen_entity_view *e, void *payload)
{
	(void)e;
	(*(int *)payload)++;
	return 0;
}

static void test_every_type_merges_and_is_audited(void **state)
{
	node d[2];
	targets t;
	char *scratch = tu_mkdtemp("modules-scratch");
	(void)state;

	start(d, 2, scratch);
	make_targets(&d[0], &t);
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		const type_case *c = &cases[k];
		const samen_type_info *ti = samen_schema_type_named(c->type);
		const char *va = resolve_case(&t, c->a), *vb = resolve_case(&t, c->b);
		samen_edit *e;
		char uid[17], ha[65], hb[65];
		probe pa, pb, pw;
		trail tr = {0, 0, {0, 0}};
		int before = 0, after = 0;

		assert_non_null(ti);
		/* create on a, with its label; b receives it */
		OK(samen_entity_list(d[0].plan, c->type, count_entities, &before));
		OK(samen_edit_begin(&e, d[0].plan));
		OK(samen_edit_create(e, c->type, uid));
		OK(samen_edit_set_in(e, c->type, uid, ti->fields[0].name, resolve_case(&t, c->label)));
		OK(samen_edit_commit(e, NULL));
		samen_edit_free(e);
		exchange(&d[0], &d[1], scratch);
		OK(samen_entity_list(d[1].plan, c->type, count_entities, &after));
		assert_int_equal(after, before + 1);

		/* concurrent edits of one field: both kept, one winner, everywhere */
		set_one(&d[0], c->type, uid, c->field, va);
		set_one(&d[1], c->type, uid, c->field, vb);
		exchange(&d[0], &d[1], scratch);
		exchange(&d[1], &d[0], scratch);
		pa = get_field(d[0].plan, c->type, uid, c->field);
		pb = get_field(d[1].plan, c->type, uid, c->field);
		if (pa.nvalues != 2 || pb.nvalues != 2 || strcmp(pa.value, pb.value) != 0)
			fail_msg("%s.%s: a shows '%s' (%d values), b '%s' (%d)", c->type, c->field, pa.value, pa.nvalues,
			         pb.value, pb.nvalues);
		OK(samen_plan_state_hash(d[0].plan, ha));
		OK(samen_plan_state_hash(d[1].plan, hb));
		assert_string_equal(ha, hb);

		/* resolving it (b writes the winner after seeing both) settles it */
		set_one(&d[1], c->type, uid, c->field, vb);
		exchange(&d[1], &d[0], scratch);
		pw = get_field(d[0].plan, c->type, uid, c->field);
		assert_int_equal(pw.nvalues, 1);

		/* the audit trail names both authors */
		OK(samen_timeline(d[0].plan, c->type, uid, trail_cb, &tr));
		assert_int_equal(tr.created, 1);
		assert_true(tr.sets[0] >= 2); /* label and the edit */
		assert_true(tr.sets[1] >= 2); /* the edit and the resolution */

		/* delete on b: gone on both, and the trail says so */
		OK(samen_edit_begin(&e, d[1].plan));
		OK(samen_edit_delete_in(e, c->type, uid));
		OK(samen_edit_commit(e, NULL));
		samen_edit_free(e);
		exchange(&d[1], &d[0], scratch);
		after = 0;
		OK(samen_entity_list(d[0].plan, c->type, count_entities, &after));
		assert_int_equal(after, before);
		memset(&tr, 0, sizeof(tr));
		OK(samen_timeline(d[0].plan, c->type, uid, trail_cb, &tr));
		assert_int_equal(tr.deleted, 1);
		free((char *)pa.value);
		free((char *)pb.value);
		free((char *)pw.value);
	}
	node_free(&d[0]);
	node_free(&d[1]);
	tu_rmtree(scratch);
	free(scratch);
}

/* ---- 2. random work on every type converges ----------------------------------- */

typedef struct {
	char (*uids)[17];
	size_t n, cap;
} uid_list;

static int collect_cb(const samen_entity_view *e, void *payload)
{
	uid_list *l = payload;
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 16;
		l->uids = realloc(l->uids, l->cap * sizeof(*l->uids));
		assert_non_null(l->uids);
	}
	snprintf(l->uids[l->n++], 17, "%s", e->uid);
	return 0;
}

static uid_list live(samen_plan *p, const char *type)
{
	uid_list l = {NULL, 0, 0};
	OK(samen_entity_list(p, type, collect_cb, &l));
	return l;
}

/* A valid random value for field f as a person would type it; 0 when none
 * can be made (a reference with no target). */
static int random_value(rng *r, samen_plan *p, const samen_field_info *f, const char *self, char *buf, size_t cap)
{
	uid_list l;
	size_t o = 0;
	switch (f->kind) {
	case SAMEN_FIELD_LINE: snprintf(buf, cap, "w%u", below(r, 100000)); return 1;
	case SAMEN_FIELD_TEXT: snprintf(buf, cap, "regel %u\n\tnog een regel", below(r, 100000)); return 1;
	case SAMEN_FIELD_CHOICE: snprintf(buf, cap, "%s", f->labels[below(r, f->nlabels)]); return 1;
	case SAMEN_FIELD_CHOICES:
		buf[0] = '\0';
		for (unsigned k = 0; k < f->nlabels; k++)
			if (below(r, 2))
				o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", f->labels[k]);
		return 1;
	case SAMEN_FIELD_NUMBER: snprintf(buf, cap, "%lld", f->min + (long long)below(r, (uint32_t)(f->max - f->min + 1))); return 1;
	case SAMEN_FIELD_DATE: snprintf(buf, cap, "2026-%02u-%02u", 1 + below(r, 12), 1 + below(r, 28)); return 1;
	case SAMEN_FIELD_RANK: snprintf(buf, cap, "%c%c", "0123456789"[below(r, 10)], "123456789abc"[below(r, 12)]); return 1;
	case SAMEN_FIELD_REF:
	case SAMEN_FIELD_REFS:
		l = live(p, f->ref_type);
		buf[0] = '\0';
		for (int k = 0; k < (f->kind == SAMEN_FIELD_REF ? 1 : 1 + (int)below(r, 3)) && l.n; k++) {
			const char *u = l.uids[below(r, (uint32_t)l.n)];
			if ((self && strcmp(u, self) == 0) || strstr(buf, u))
				continue;
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", u);
		}
		free(l.uids);
		return buf[0] != '\0';
	case SAMEN_FIELD_TIES: return 0;
	}
	return 0;
}

/* One random change on device n: a few creates, sets, clears and deletes
 * over every type. */
static void random_change(rng *r, node *n)
{
	samen_edit *e;
	char buf[512];
	int did = 0;
	OK(samen_edit_begin(&e, n->plan));
	for (int k = 0, ops = 1 + (int)below(r, 4); k < ops; k++) {
		size_t ntypes = 0;
		const samen_type_info *t;
		while (samen_schema_type(ntypes))
			ntypes++;
		t = samen_schema_type(below(r, (uint32_t)ntypes));
		uid_list l = live(n->plan, t->name);
		unsigned what = below(r, 10);
		if (what < 3 || l.n == 0) { /* create with a label */
			char uid[17];
			if (random_value(r, n->plan, &t->fields[0], NULL, buf, sizeof(buf))) {
				OK(samen_edit_create(e, t->name, uid));
				OK(samen_edit_set_in(e, t->name, uid, t->fields[0].name, buf));
				did++;
			}
		} else if (what < 9) { /* set or clear a field */
			const char *uid = l.uids[below(r, (uint32_t)l.n)];
			const samen_field_info *f = &t->fields[below(r, (uint32_t)t->nfields)];
			if (!f->required && below(r, 6) == 0) {
				OK(samen_edit_set_in(e, t->name, uid, f->name, "-"));
				did++;
			} else if (random_value(r, n->plan, f, uid, buf, sizeof(buf))) {
				OK(samen_edit_set_in(e, t->name, uid, f->name, buf));
				did++;
			}
		} else { /* delete */
			OK(samen_edit_delete_in(e, t->name, l.uids[below(r, (uint32_t)l.n)]));
			did++;
		}
		free(l.uids);
	}
	if (did)
		OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
}

static void run_seed(uint64_t seed)
{
	enum { NDEV = 3 };
	node d[NDEV];
	rng r = {seed * 0x9e3779b97f4a7c15ull + 1};
	char *scratch = tu_mkdtemp("modules-rand"), h0[65], h[65], uid[17];
	char *ref;

	print_message("seed %llu\n", (unsigned long long)seed);
	start(d, NDEV, scratch);
	for (int round = 0; round < 12; round++) {
		for (int k = 0; k < NDEV; k++)
			for (int c = 0, nc = (int)below(&r, 3); c < nc; c++)
				random_change(&r, &d[k]);
		if (below(&r, 4) == 0)
			OK(samen_network_snapshot(d[below(&r, NDEV)].plan, "2026-05-01", NULL, uid, NULL));
		for (int x = 0, nx = (int)below(&r, 3); x < nx; x++) {
			int a = (int)below(&r, NDEV), b = (int)below(&r, NDEV);
			if (a != b)
				exchange(&d[a], &d[b], scratch);
		}
	}
	/* everyone with everyone */
	for (int k = 1; k < NDEV; k++)
		exchange(&d[k], &d[0], scratch);
	for (int k = 1; k < NDEV; k++)
		exchange(&d[0], &d[k], scratch);
	OK(samen_plan_state_hash(d[0].plan, h0));
	ref = dump(d[0].plan);
	{
		size_t lines = 0;
		for (const char *q = ref; *q; q++)
			lines += *q == '\n';
		assert_true(lines > 30); /* the work was not trivial (10 of them are the default areas) */
	}
	for (int k = 0; k < NDEV; k++) {
		samen_check_result res;
		char *other = dump(d[k].plan);
		OK(samen_plan_state_hash(d[k].plan, h));
		if (strcmp(h, h0) != 0 || strcmp(other, ref) != 0)
			fail_msg("seed %llu: device %d differs\n%s\n---\n%s", (unsigned long long)seed, k, ref, other);
		OK(samen_plan_check(d[k].plan, &res, h));
		assert_string_equal(h, h0);
		assert_int_equal(res.history_only, 0);
		assert_int_equal(res.rejected, 0);
		free(other);
	}
	free(ref);
	for (int k = 0; k < NDEV; k++)
		node_free(&d[k]);
	tu_rmtree(scratch);
	free(scratch);
}

static void test_random_work_on_every_type_converges(void **state)
{
	const char *one = getenv("SAMEN_SEED"), *count = getenv("SAMEN_SEED_COUNT");
	(void)state;
	if (one && *one) {
		run_seed(strtoull(one, NULL, 10));
		return;
	}
	for (uint64_t s = 1, n = count && *count ? strtoull(count, NULL, 10) : 3; s <= n; s++)
		run_seed(s);
}

/* ---- 3. the method's rules ------------------------------------------------------- */

typedef struct {
	const char *code, *uid;
	int hits;
} warn_probe;

static int warn_cb(const samen_warning *w, void *payload)
{
	warn_probe *x = payload;
	assert_non_null(w->message);
	if (strcmp(w->code, x->code) == 0 && (!x->uid || (w->entity && strcmp(w->entity, x->uid) == 0)))
		x->hits++;
	return 0;
}

static int warned(node *n, const char *code, const char *uid)
{
	warn_probe x = {code, uid, 0};
	OK(samen_plan_warnings(n->plan, "2026-02-01", warn_cb, &x));
	return x.hits;
}

static void add(node *n, const char *type, const char *label, char uid[17], ...)
{
	samen_edit *e;
	va_list ap;
	const char *f;
	OK(samen_edit_begin(&e, n->plan));
	OK(samen_edit_create(e, type, uid));
	OK(samen_edit_set_in(e, type, uid, samen_schema_type_named(type)->fields[0].name, label));
	va_start(ap, uid);
	while ((f = va_arg(ap, const char *)))
		OK(samen_edit_set_in(e, type, uid, f, va_arg(ap, const char *)));
	va_end(ap);
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
}

static void test_rules_warn_until_put_right(void **state)
{
	node d[1];
	char *scratch = tu_mkdtemp("modules-rules");
	char goal[17], done[17], act[17], act2[17], grp[17], meet[17], pdsa[17], ev[17], prog[17], loose[17];
	(void)state;

	start(d, 1, scratch);
	add(&d[0], "goal", "Werk vinden", goal, "status", "bezig", (char *)NULL);
	assert_int_equal(warned(&d[0], "goal-no-term", goal), 1);
	assert_int_equal(warned(&d[0], "goal-no-action", goal), 1);
	set_one(&d[0], "goal", goal, "term", "kort");
	assert_int_equal(warned(&d[0], "goal-no-term", goal), 0);

	/* a professional action needs its reason; an action is due */
	add(&d[0], "action", "Traject bij re-integratiebureau", act, "goal", goal, "tier", "professional", "due",
	    "2026-01-15", "status", "mee bezig", (char *)NULL);
	assert_int_equal(warned(&d[0], "goal-no-action", goal), 0);
	assert_int_equal(warned(&d[0], "action-professional-no-reason", act), 1);
	set_one(&d[0], "action", act, "reason", "Joke en haar netwerk kennen de regels van het UWV niet");
	assert_int_equal(warned(&d[0], "action-professional-no-reason", act), 0);
	assert_int_equal(warned(&d[0], "action-overdue", act), 1);

	/* bereikt with an open action */
	add(&d[0], "goal", "Cv maken", done, "term", "kort", "parent", goal, (char *)NULL);
	add(&d[0], "action", "Cv schrijven met Kees", act2, "goal", done, "tier", "netwerk", (char *)NULL);
	set_one(&d[0], "goal", done, "status", "bereikt");
	assert_int_equal(warned(&d[0], "goal-reached-open-actions", done), 1);
	set_one(&d[0], "action", act2, "status", "afgerond");
	assert_int_equal(warned(&d[0], "goal-reached-open-actions", done), 0);
	set_one(&d[0], "action", act, "status", "afgerond");
	assert_int_equal(warned(&d[0], "action-overdue", act), 0);

	/* a support group that stopped meeting; then meets and plans the next */
	add(&d[0], "group", "Steungroep Joke", grp, "rhythm", "14", (char *)NULL);
	add(&d[0], "meeting", "2026-01-01", meet, "group", grp, (char *)NULL);
	assert_int_equal(warned(&d[0], "group-meeting-overdue", grp), 1);
	assert_int_equal(warned(&d[0], "group-no-next-meeting", grp), 1);
	add(&d[0], "meeting", "2026-01-25", meet, "group", grp, "next", "2026-02-08", (char *)NULL);
	assert_int_equal(warned(&d[0], "group-meeting-overdue", grp), 0);
	assert_int_equal(warned(&d[0], "group-no-next-meeting", grp), 0);

	/* three levels: hoofddoel, subdoel, trajectdoel */
	{
		char l3[17], l4[17];
		add(&d[0], "goal", "Trajectdoel", l3, "parent", done, "term", "kort", (char *)NULL);
		assert_int_equal(warned(&d[0], "goal-too-deep", l3), 0);
		add(&d[0], "goal", "Te diep", l4, "parent", l3, "term", "kort", (char *)NULL);
		assert_int_equal(warned(&d[0], "goal-too-deep", l4), 1);
		set_one(&d[0], "goal", l4, "parent", goal);
		assert_int_equal(warned(&d[0], "goal-too-deep", l4), 0);
	}

	/* PDSA and actions need something to be about */
	add(&d[0], "pdsa", "Elke dag een vacature lezen", pdsa, (char *)NULL);
	add(&d[0], "action", "Iets doen", loose, (char *)NULL);
	assert_int_equal(warned(&d[0], "pdsa-no-subject", pdsa), 1);
	assert_int_equal(warned(&d[0], "action-no-goal", loose), 1);
	set_one(&d[0], "pdsa", pdsa, "goal", goal);
	set_one(&d[0], "action", loose, "goal", goal);
	assert_int_equal(warned(&d[0], "pdsa-no-subject", pdsa), 0);
	assert_int_equal(warned(&d[0], "action-no-goal", loose), 0);

	/* an evaluation that leaves a goal out */
	add(&d[0], "evaluation", "2026-01-30", ev, (char *)NULL);
	assert_int_equal(warned(&d[0], "goal-not-evaluated", goal), 1);
	add(&d[0], "progress", goal, prog, "evaluation", ev, "progress", "enige", (char *)NULL);
	assert_int_equal(warned(&d[0], "goal-not-evaluated", goal), 0);

	/* a bad date for today is an error, not a guess */
	assert_int_equal(samen_plan_warnings(d[0].plan, "1 februari", warn_cb, &(warn_probe){"x", NULL, 0}),
	                 SAMEN_EINVAL);
	node_free(&d[0]);
	tu_rmtree(scratch);
	free(scratch);
}

/* A network map compared over time: who came, who left, what changed. */
typedef struct {
	char text[2048];
} diff_out;

static int diff_cb(const samen_network_change *c, void *payload)
{
	diff_out *o = payload;
	size_t n = strlen(o->text);
	snprintf(o->text + n, sizeof(o->text) - n, "%s %s%s%s%s%s%s;", c->what, c->name, c->field ? " " : "",
	         c->field ? c->field : "", c->field ? ":" : "", c->field ? c->before : "", c->field ? ">" : "");
	if (c->field) {
		n = strlen(o->text);
		snprintf(o->text + n - 1, sizeof(o->text) - n + 1, "%s;", c->after);
	}
	return 0;
}

static void test_network_diff(void **state)
{
	node d[1];
	char *scratch = tu_mkdtemp("modules-net"), kees[17], marie[17], ria[17], t1[17], t2[17], t3[17], s1[17];
	diff_out o;
	samen_edit *e;
	(void)state;

	start(d, 1, scratch);
	add(&d[0], "person", "Kees", kees, (char *)NULL);
	add(&d[0], "person", "Marie", marie, (char *)NULL);
	add(&d[0], "person", "Ria", ria, (char *)NULL);
	add(&d[0], "tie", kees, t1, "ring", "1", "sector", "familie", (char *)NULL);
	add(&d[0], "tie", marie, t2, "ring", "2", "valence", "negatief", (char *)NULL);
	OK(samen_network_snapshot(d[0].plan, "2026-01-10", "eerste kaart", s1, NULL));
	set_one(&d[0], "tie", t1, "ring", "2");
	set_one(&d[0], "tie", t1, "support", "praktisch, advies");
	OK(samen_edit_begin(&e, d[0].plan));
	OK(samen_edit_delete_in(e, "tie", t2));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	add(&d[0], "tie", ria, t3, "ring", "3", (char *)NULL);
	set_one(&d[0], "person", "Kees", "name", "Kees de Vries"); /* renamed later: the snapshot keeps the name */

	memset(&o, 0, sizeof(o));
	OK(samen_network_diff(d[0].plan, "2026-01-10", NULL, diff_cb, &o));
	assert_string_equal(o.text, "changed Kees de Vries ring:1>2;changed Kees de Vries support:>praktisch, advies;"
	                            "came Ria;left Marie;");
	OK(samen_network_snapshot(d[0].plan, "2026-06-01", NULL, s1, NULL));
	memset(&o, 0, sizeof(o));
	OK(samen_network_diff(d[0].plan, "2026-06-01", NULL, diff_cb, &o));
	assert_string_equal(o.text, "");
	memset(&o, 0, sizeof(o));
	OK(samen_network_diff(d[0].plan, "2026-06-01", "2026-01-10", diff_cb, &o));
	assert_string_equal(o.text, "changed Kees ring:2>1;changed Kees support:praktisch, advies>;came Marie;left Ria;");
	assert_int_equal(samen_network_diff(d[0].plan, "1999-01-01", NULL, diff_cb, &o), SAMEN_ENOTFOUND);
	node_free(&d[0]);
	tu_rmtree(scratch);
	free(scratch);
}

static int score_cb(const samen_score_entry *e, void *payload)
{
	char *out = payload;
	size_t n = strlen(out);
	snprintf(out + n, 512 - n, "%s %s %d;", e->area_name, e->date, e->score);
	return 0;
}

static void test_scores_over_time(void **state)
{
	node d[1];
	char *scratch = tu_mkdtemp("modules-score"), e1[17], e2[17], x[17], out[512] = "";
	(void)state;
	start(d, 1, scratch);
	add(&d[0], "evaluation", "2026-06-15", e2, (char *)NULL);
	add(&d[0], "evaluation", "2026-01-15", e1, (char *)NULL);
	add(&d[0], "score", "werk", x, "evaluation", e2, "score", "7", (char *)NULL);
	add(&d[0], "score", "werk", x, "evaluation", e1, "score", "4", (char *)NULL);
	add(&d[0], "score", "familie", x, "evaluation", e2, "score", "6", (char *)NULL);
	OK(samen_score_history(d[0].plan, NULL, score_cb, out));
	/* areas in the method's order (familie before werk), oldest first */
	assert_string_equal(out, "familie 2026-06-15 6;werk 2026-01-15 4;werk 2026-06-15 7;");
	out[0] = '\0';
	OK(samen_score_history(d[0].plan, "werk", score_cb, out));
	assert_string_equal(out, "werk 2026-01-15 4;werk 2026-06-15 7;");
	node_free(&d[0]);
	tu_rmtree(scratch);
	free(scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_merges_and_is_audited),
		cmocka_unit_test(test_random_work_on_every_type_converges),
		cmocka_unit_test(test_rules_warn_until_put_right),
		cmocka_unit_test(test_network_diff),
		cmocka_unit_test(test_scores_over_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
