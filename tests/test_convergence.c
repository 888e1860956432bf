/*
 * test_convergence.c - replicas that hold the same changes agree, whatever
 * the order in which the changes arrived.
 *
 * The random test runs several devices, each with its own store, through
 * rounds of concurrent edits and partial bundle exchanges, and feeds every
 * change to extra observer replicas in shuffled batches with duplicates
 * (changes whose dependencies are missing wait as pending). At the end every
 * replica must show the same state hash, goal tree and conflicts, pass
 * samen_plan_check, and agree with a model kept by the test: which changes
 * each device had seen when it wrote (version vectors), so which values of
 * each register must still be live (the concurrent ones), which one wins
 * (highest Lamport clock, then greatest device key), and which goal of each
 * parent cycle loses its parent.
 *
 * Device 0, the coordinator who started the plan, also adds, approves and
 * revokes guests (as network member, observer, professional or
 * coordinator) and links and unlinks spare devices of the others at random:
 * grants and revocations travel with the edits and every replica agrees on
 * them (tests/test_rights.c has the revocations that reject changes).
 *
 * Seeds: SAMEN_SEED=N runs only seed N; SAMEN_SEED_COUNT=K runs seeds 1..K
 * (default 5). Every seed is printed, so a failure can be replayed.
 */
#include "testutil.h"

#include "samen/samen.h"
#include "sync/internal.h"
#include "core/change.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------ */


static int chance(rng *r, int percent)
{
	return (int)below(r, 100) < percent;
}

typedef struct {
	char *p;
	size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 2, 3)))
#endif
	;

static void sb_printf(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	for (;;) {
		if (b->cap - b->len < 64 || !b->p) {
			b->cap = b->cap ? b->cap * 2 : 1024;
			b->p = realloc(b->p, b->cap);
			assert_non_null(b->p);
		}
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		assert_true(n >= 0);
		if ((size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		b->cap = b->cap * 2 + (size_t)n;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
}

static const char *sb_str(sbuf *b)
{
	return b->p ? b->p : "";
}

static void sb_free(sbuf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static void *grow(void *p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return p;
	*cap = *cap ? *cap * 2 : 64;
	p = realloc(p, *cap * size);
	assert_non_null(p);
	return p;
}

/* Bring every change of from to to by a bundle file (only what to lacks
 * when since is set). The receiver's plan is closed for the import, which
 * opens (and locks) the plan itself, and opened again afterwards. */
static void exchange(node *from, node *to, int since, const char *scratch)
{
	char path[4200], *vv = NULL;
	samen_bundle_stats st, im;
	snprintf(path, sizeof(path), "%s/x.bundle", scratch);
	if (since && to->plan)
		OK(samen_plan_version_vector(to->plan, &vv));
	OK(samen_bundle_create(from->plan, path, vv, &st));
	samen_plan_free(to->plan);
	to->plan = NULL;
	OK(samen_bundle_import(to->store, path, &im));
	assert_int_equal(im.invalid, 0);
	assert_int_equal(im.rejected, 0);
	assert_int_equal(im.pending, 0);
	assert_int_equal(im.changes, st.changes);
	assert_int_equal(im.applied + im.duplicates, st.changes);
	if (vv)
		assert_int_equal(im.duplicates, 0);
	free(vv);
	OK(samen_plan_open(&to->plan, to->store, NULL));
	unlink(path);
}

/* ---- snapshots of what a replica shows ------------------------------------- */

static int tree_cb(const samen_entity_view *e, void *payload)
{
	sbuf *b = payload;
	sb_printf(b, "%s parent=%s depth=%d cycle=%d deleted=%d", e->uid, e->parent ? e->parent : "-", e->depth,
	          e->cycle, e->deleted);
	for (size_t i = 0; i < e->nfields; i++)
		sb_printf(b, " %s=[%s]/%d", e->fields[i].name, e->fields[i].value, e->fields[i].nvalues);
	sb_printf(b, "\n");
	return 0;
}

static int conflict_cb(const samen_value_info *v, void *payload)
{
	sbuf *b = payload;
	sb_printf(b, "%s %s [%s] winner=%d n=%d device=%s change=%s\n", v->entity, v->field, v->value, v->winner,
	          v->nvalues, v->device, v->change);
	return 0;
}

typedef struct {
	char hash[65];
	sbuf tree;
	sbuf conflicts;
	samen_check_result check;
} snapshot;

static void take_snapshot(samen_plan *p, snapshot *s)
{
	char h2[65];
	memset(s, 0, sizeof(*s));
	OK(samen_plan_state_hash(p, s->hash));
	OK(samen_plan_check(p, &s->check, h2));
	assert_string_equal(s->hash, h2);
	assert_int_equal(s->check.history_only, 0);
	assert_int_equal(s->check.pending, 0);
	OK(samen_entity_list(p, "goal", tree_cb, &s->tree));
	OK(samen_conflicts(p, conflict_cb, &s->conflicts));
}

static void snapshot_free(snapshot *s)
{
	sb_free(&s->tree);
	sb_free(&s->conflicts);
}

static void assert_same(const snapshot *a, const snapshot *b, const char *what)
{
	if (strcmp(a->hash, b->hash) != 0 || strcmp(sb_str((sbuf *)&a->tree), sb_str((sbuf *)&b->tree)) != 0 ||
	    strcmp(sb_str((sbuf *)&a->conflicts), sb_str((sbuf *)&b->conflicts)) != 0) {
		fprintf(stderr, "--- reference: %s\n%s--\n%s", a->hash, sb_str((sbuf *)&a->tree),
		        sb_str((sbuf *)&a->conflicts));
		fprintf(stderr, "--- %s: %s\n%s--\n%s", what, b->hash, sb_str((sbuf *)&b->tree),
		        sb_str((sbuf *)&b->conflicts));
		fail_msg("%s differs from the reference replica", what);
	}
	assert_int_equal(a->check.changes, b->check.changes);
	assert_int_equal(a->check.accepted, b->check.accepted);
	assert_int_equal(a->check.entities, b->check.entities);
	assert_int_equal(a->check.conflicts, b->check.conflicts);
	assert_int_equal(a->check.cycles, b->check.cycles);
}

/* One goal as listed, for the dedicated tests. */
typedef struct {
	const char *uid;
	char value[128];
	int nvalues;
	char parent[17];
	int depth, cycle, found;
	const char *field;
} goal_probe;

static int probe_cb(const samen_entity_view *e, void *payload)
{
	goal_probe *g = payload;
	if (strcmp(e->uid, g->uid) != 0)
		return 0;
	g->found++;
	snprintf(g->parent, sizeof(g->parent), "%s", e->parent ? e->parent : "");
	g->depth = e->depth;
	g->cycle = e->cycle;
	for (size_t i = 0; i < e->nfields; i++)
		if (g->field && strcmp(e->fields[i].name, g->field) == 0) {
			snprintf(g->value, sizeof(g->value), "%s", e->fields[i].value);
			g->nvalues = e->fields[i].nvalues;
		}
	return 0;
}

static goal_probe probe(samen_plan *p, const char *uid, const char *field)
{
	goal_probe g;
	memset(&g, 0, sizeof(g));
	g.uid = uid;
	g.field = field;
	OK(samen_entity_list(p, "goal", probe_cb, &g));
	assert_int_equal(g.found, 1);
	return g;
}

static int count_cb(const samen_value_info *v, void *payload)
{
	(void)v;
	(*(int *)payload)++;
	return 0;
}

static int conflict_rows(samen_plan *p)
{
	int n = 0;
	OK(samen_conflicts(p, count_cb, &n));
	return n;
}

/* Start a plan on a and let b join: a adds b as member, b imports. */
static void two_devices(node *a, node *b, const char *scratch)
{
	samen_edit *e;
	node_init(a, "anna");
	node_init(b, "bram");
	OK(samen_plan_create(&a->plan, a->store, "Client", "nl"));
	OK(samen_edit_begin(&e, a->plan));
	OK(samen_edit_member_add(e, samen_store_device_key(b->store), "bram"));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	exchange(a, b, 0, scratch);
}

static void set1(node *n, const char *uid, const char *field, const char *value, char id[65])
{
	samen_edit *e;
	OK(samen_edit_begin(&e, n->plan));
	OK(samen_edit_set(e, uid, field, value));
	OK(samen_edit_commit(e, id));
	samen_edit_free(e);
}

static void add_goal(node *n, const char *title, char uid[17])
{
	samen_edit *e;
	OK(samen_edit_begin(&e, n->plan));
	OK(samen_edit_create(e, "goal", uid));
	OK(samen_edit_set(e, uid, "title", title));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
}

/* ---- dedicated tests ---------------------------------------------------------- */

/* Two devices set one goal's status concurrently: both replicas keep both
 * values and show the same winner; a later set by a device that has seen
 * both settles the conflict everywhere. */
static void test_status_conflict(void **state)
{
	node a, b;
	char *scratch = tu_mkdtemp("conv-scratch"), g[17], ida[65], idb[65];
	const char *ka, *kb;
	snapshot sa, sb;
	goal_probe pa, pb;
	(void)state;

	assert_non_null(scratch);
	two_devices(&a, &b, scratch);
	add_goal(&a, "Zelfstandig wonen", g);
	set1(&a, g, "status", "open", NULL);
	exchange(&a, &b, 1, scratch);

	set1(&a, g, "status", "bezig", ida);
	set1(&b, g, "status", "bereikt", idb);
	exchange(&a, &b, 1, scratch);
	exchange(&b, &a, 1, scratch);

	/* Same Lamport clock (both built on the same heads): the greater
	 * device key wins, on both sides. */
	ka = samen_store_device_key(a.store);
	kb = samen_store_device_key(b.store);
	pa = probe(a.plan, g, "status");
	pb = probe(b.plan, g, "status");
	assert_string_equal(pa.value, strcmp(ka, kb) > 0 ? "bezig" : "bereikt");
	assert_string_equal(pa.value, pb.value);
	assert_int_equal(pa.nvalues, 2);
	assert_int_equal(pb.nvalues, 2);
	assert_int_equal(conflict_rows(a.plan), 2);
	take_snapshot(a.plan, &sa);
	take_snapshot(b.plan, &sb);
	assert_same(&sa, &sb, "device b");
	assert_int_equal(sa.check.conflicts, 1);
	assert_non_null(strstr(sb_str(&sa.conflicts), ida));
	assert_non_null(strstr(sb_str(&sa.conflicts), idb));
	snapshot_free(&sa);
	snapshot_free(&sb);

	/* b has seen both values; its new one replaces both. */
	set1(&b, g, "status", "bijgesteld", NULL);
	exchange(&b, &a, 1, scratch);
	pa = probe(a.plan, g, "status");
	pb = probe(b.plan, g, "status");
	assert_string_equal(pa.value, "bijgesteld");
	assert_string_equal(pb.value, "bijgesteld");
	assert_int_equal(pa.nvalues, 1);
	assert_int_equal(pb.nvalues, 1);
	assert_int_equal(conflict_rows(a.plan), 0);
	assert_int_equal(conflict_rows(b.plan), 0);
	take_snapshot(a.plan, &sa);
	take_snapshot(b.plan, &sb);
	assert_same(&sa, &sb, "device b after resolve");
	assert_int_equal(sa.check.conflicts, 0);
	snapshot_free(&sa);
	snapshot_free(&sb);

	node_free(&a);
	node_free(&b);
	tu_rmtree(scratch);
	free(scratch);
}

/* a sets parent(x) = y while b sets parent(y) = x: both replicas show the
 * same tree, with exactly one goal marked as cycle: the one whose parent
 * value has the higher (Lamport clock, device key). */
static void test_parent_cycle(void **state)
{
	node a, b;
	char *scratch = tu_mkdtemp("conv-scratch"), x[17], y[17];
	const char *ka, *kb;
	const char *loser, *other;
	snapshot sa, sb;
	goal_probe pl, po;
	(void)state;

	assert_non_null(scratch);
	two_devices(&a, &b, scratch);
	add_goal(&a, "Werk", x);
	add_goal(&a, "Vrijwilligerswerk", y);
	exchange(&a, &b, 1, scratch);
	set1(&a, x, "parent", y, NULL);
	set1(&b, y, "parent", x, NULL);
	exchange(&a, &b, 1, scratch);
	exchange(&b, &a, 1, scratch);

	ka = samen_store_device_key(a.store);
	kb = samen_store_device_key(b.store);
	loser = strcmp(ka, kb) > 0 ? x : y;
	other = loser == x ? y : x;
	for (int side = 0; side < 2; side++) {
		samen_plan *p = side ? b.plan : a.plan;
		pl = probe(p, loser, "parent");
		po = probe(p, other, "parent");
		assert_int_equal(pl.cycle, 1);
		assert_string_equal(pl.parent, "");
		assert_int_equal(pl.depth, 0);
		assert_string_equal(pl.value, other); /* the value stays; only the tree ignores it */
		assert_int_equal(po.cycle, 0);
		assert_string_equal(po.parent, loser);
		assert_int_equal(po.depth, 1);
	}
	take_snapshot(a.plan, &sa);
	take_snapshot(b.plan, &sb);
	assert_same(&sa, &sb, "device b");
	assert_int_equal(sa.check.cycles, 1);
	snapshot_free(&sa);
	snapshot_free(&sb);

	node_free(&a);
	node_free(&b);
	tu_rmtree(scratch);
	free(scratch);
}

/* One change closes a cycle by itself (parent(x) = y and parent(y) = x),
 * so both parent values have the same clock and author; x and y were
 * created concurrently, so the two replicas number them in opposite
 * orders. The tree must still be the same on both. */
static void test_cycle_one_change(void **state)
{
	node a, b;
	char *scratch = tu_mkdtemp("conv-scratch"), x[17], y[17];
	samen_edit *e;
	snapshot sa, sb;
	(void)state;

	assert_non_null(scratch);
	two_devices(&a, &b, scratch);
	add_goal(&a, "Gezond leven", x);
	add_goal(&b, "Sporten", y);
	exchange(&a, &b, 1, scratch);
	exchange(&b, &a, 1, scratch);
	OK(samen_edit_begin(&e, a.plan));
	OK(samen_edit_set(e, x, "parent", y));
	OK(samen_edit_set(e, y, "parent", x));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	exchange(&a, &b, 1, scratch);

	take_snapshot(a.plan, &sa);
	take_snapshot(b.plan, &sb);
	assert_same(&sa, &sb, "device b");
	assert_int_equal(sa.check.cycles, 1);
	snapshot_free(&sa);
	snapshot_free(&sb);
	node_free(&a);
	node_free(&b);
	tu_rmtree(scratch);
	free(scratch);
}

/* ---- the model of the random test ------------------------------------------- */

#define MAXDEV 4
#define NOBS 2
#define NGUEST 3

enum { F_TITLE, F_AREA, F_PARENT, F_TERM, F_PRIO, F_RANK, F_STATUS, F_TARGET, F_DESC, NF };
static const char *const field_names[NF] = {"title",  "area",   "parent", "term",       "priority",
                                            "rank",   "status", "target", "description"};
static const char *const statuses[] = {"open", "bezig", "bereikt", "bijgesteld", "gestopt"};
static const char *const terms[] = {"lang", "middellang", "kort"};

typedef struct {
	int dev;
	uint64_t seq, lamport;
	uint64_t vv[MAXDEV];   /* what the author had seen, itself included */
	char id[65];           /* "" for the base changes */
	int logged;
} mchange;

typedef struct {
	char uid[17];
	int cch;               /* creating change */
} mgoal;

typedef struct {
	int goal, field, ch;
	char val[96];
} mwrite;

typedef struct {
	int goal, ch;
} mdel;

typedef struct {
	uint8_t id[32];
	uint8_t *body;
	size_t len;
	uint8_t sig[64];
} pooled;

typedef struct {
	rng r;
	int ndev;
	node dev[MAXDEV];
	node obs[NOBS];
	char key[MAXDEV][65];
	uint64_t know[MAXDEV][MAXDEV];
	uint64_t maxlam[MAXDEV];
	mchange *ch;
	size_t nch, capch;
	mgoal *goal;
	size_t ngoal, capgoal;
	mwrite *w;
	size_t nw, capw;
	mdel *del;
	size_t ndel, capdel;
	pooled *pool;
	size_t npool, cappool;
	char *scratch;
	char area[10][17];      /* uids of the plan's default life areas */
	int narea;
	/* grants and revocations: guests (keys only, they never write) that
	 * device 0, the coordinator who started the plan, adds, approves and
	 * revokes, and spare devices it links to members and unlinks */
	char guest[NGUEST][65];
	int guest_state[NGUEST]; /* 0 not added, 1 added, 2 approved (professional), 3 revoked */
	int guest_role[NGUEST];
	char spare[MAXDEV][65];
	int spare_state[MAXDEV]; /* 0 not linked, 1 linked, 2 unlinked */
	/* statistics */
	int conflicts, cycles, tied_cycles, cycle_moves, exchanges, deliveries, pending_seen, rights_ops;
} world;

static int remember_area(const samen_entity_view *e, void *payload)
{
	world *w = payload;
	if (w->narea < 10)
		snprintf(w->area[w->narea++], sizeof(w->area[0]), "%s", e->uid);
	return 0;
}

static int known(const world *w, int d, int ci)
{
	return w->know[d][w->ch[ci].dev] >= w->ch[ci].seq;
}

/* change a is in the causal past of change b */
static int saw(const world *w, int b, int a)
{
	return w->ch[b].vv[w->ch[a].dev] >= w->ch[a].seq;
}

static int goal_deleted_for(const world *w, int d, int g)
{
	for (size_t k = 0; k < w->ndel; k++)
		if (w->del[k].goal == g && (d < 0 || known(w, d, w->del[k].ch)))
			return 1;
	return 0;
}

/* A change being written on device d: ops go to the model as they are made. */
typedef struct {
	int d, ci;
	samen_edit *e;
	int deleted[32];
	int ndeleted;
} session;

static void session_begin(world *w, session *s, int d)
{
	mchange *c;
	memset(s, 0, sizeof(*s));
	s->d = d;
	w->ch = grow(w->ch, &w->capch, w->nch, sizeof(*w->ch));
	s->ci = (int)w->nch++;
	c = &w->ch[s->ci];
	memset(c, 0, sizeof(*c));
	c->dev = d;
	c->seq = w->know[d][d] + 1;
	c->lamport = w->maxlam[d] + 1;
	memcpy(c->vv, w->know[d], sizeof(c->vv));
	c->vv[d] = c->seq;
	OK(samen_edit_begin(&s->e, w->dev[d].plan));
}

static void session_commit(world *w, session *s)
{
	mchange *c = &w->ch[s->ci];
	assert_true(samen_edit_op_count(s->e) > 0);
	OK(samen_edit_commit(s->e, c->id));
	samen_edit_free(s->e);
	s->e = NULL;
	w->know[s->d][s->d] = c->seq;
	w->maxlam[s->d] = c->lamport;
}

/* Goals device d can name in this session. */
static size_t visible_goals(const world *w, const session *s, int *out)
{
	size_t n = 0;
	for (size_t g = 0; g < w->ngoal; g++) {
		int ok = w->goal[g].cch == s->ci || (known(w, s->d, w->goal[g].cch) && !goal_deleted_for(w, s->d, (int)g));
		for (int k = 0; k < s->ndeleted && ok; k++)
			if (s->deleted[k] == (int)g)
				ok = 0;
		if (ok)
			out[n++] = (int)g;
	}
	return n;
}

static void model_write(world *w, int ci, int g, int f, const char *val)
{
	mwrite *m;
	for (size_t k = 0; k < w->nw; k++)
		if (w->w[k].ch == ci && w->w[k].goal == g && w->w[k].field == f) {
			snprintf(w->w[k].val, sizeof(w->w[k].val), "%s", val);
			return;
		}
	w->w = grow(w->w, &w->capw, w->nw, sizeof(*w->w));
	m = &w->w[w->nw++];
	m->goal = g;
	m->field = f;
	m->ch = ci;
	snprintf(m->val, sizeof(m->val), "%s", val);
}

static void op_set(world *w, session *s, int g, int f, const char *val)
{
	OK(samen_edit_set(s->e, w->goal[g].uid, field_names[f], val));
	model_write(w, s->ci, g, f, val);
}

static int op_create(world *w, session *s)
{
	mgoal *m;
	char title[64];
	w->goal = grow(w->goal, &w->capgoal, w->ngoal, sizeof(*w->goal));
	m = &w->goal[w->ngoal];
	OK(samen_edit_create(s->e, "goal", m->uid));
	m->cch = s->ci;
	w->ngoal++;
	snprintf(title, sizeof(title), "Doel %u van %d", (unsigned)w->ngoal, s->d);
	op_set(w, s, (int)w->ngoal - 1, F_TITLE, title);
	return (int)w->ngoal - 1;
}

static void op_delete(world *w, session *s, int g)
{
	OK(samen_edit_delete(s->e, w->goal[g].uid));
	w->del = grow(w->del, &w->capdel, w->ndel, sizeof(*w->del));
	w->del[w->ndel].goal = g;
	w->del[w->ndel].ch = s->ci;
	w->ndel++;
	if (s->ndeleted < 32)
		s->deleted[s->ndeleted++] = g;
}

static void random_value(world *w, int f, char *buf, size_t cap)
{
	rng *r = &w->r;
	buf[0] = '\0';
	switch (f) {
	case F_TITLE:
		snprintf(buf, cap, "Titel %u", below(r, 1000));
		break;
	case F_AREA: /* a reference: the value shown is the area's uid */
		snprintf(buf, cap, "%s", w->area[below(r, (uint32_t)w->narea)]);
		break;
	case F_TERM:
		snprintf(buf, cap, "%s", terms[below(r, 3)]);
		break;
	case F_PRIO:
		snprintf(buf, cap, "%u", 1 + below(r, 5));
		break;
	case F_RANK: {
		static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
		size_t n = 1 + below(r, 3);
		for (size_t i = 0; i < n; i++)
			buf[i] = digits[i + 1 == n ? 1 + below(r, 35) : below(r, 36)];
		buf[n] = '\0';
		break;
	}
	case F_STATUS:
		snprintf(buf, cap, "%s", statuses[below(r, 5)]);
		break;
	case F_TARGET:
		snprintf(buf, cap, "20%02u-%02u-%02u", 25 + below(r, 10), 1 + below(r, 12), 1 + below(r, 28));
		break;
	case F_DESC:
		if (chance(r, 50))
			snprintf(buf, cap, "Stap %u:\nsamen met de buurt", below(r, 100));
		else
			snprintf(buf, cap, "Omschrijving %u", below(r, 100));
		break;
	}
	/* now and then clear the field instead (nil is a value too) */
	if (f != F_TITLE && chance(r, 5))
		buf[0] = '\0';
}

/* One change of 1 to 4 random ops by device d. */
static void random_change(world *w, int d)
{
	session s;
	int vis[1024];
	int nops = 1 + (int)below(&w->r, 4);
	char val[96];

	session_begin(w, &s, d);
	for (int k = 0; k < nops; k++) {
		size_t nv = visible_goals(w, &s, vis);
		int roll = (int)below(&w->r, 100);
		if (nv == 0 || roll < 8 || (nv < 4 && roll < 40)) {
			int g = op_create(w, &s);
			if (chance(&w->r, 50))
				op_set(w, &s, g, F_STATUS, statuses[below(&w->r, 5)]);
		} else if (roll < 12 && nv > 3) {
			op_delete(w, &s, vis[below(&w->r, (uint32_t)nv)]);
		} else if (roll < 30) {
			int x = vis[below(&w->r, (uint32_t)nv)], y = vis[below(&w->r, (uint32_t)nv)];
			if (x == y || chance(&w->r, 8))
				op_set(w, &s, x, F_PARENT, "");
			else
				op_set(w, &s, x, F_PARENT, w->goal[y].uid);
		} else {
			/* favour a few goals and fields, so devices collide */
			int g = vis[below(&w->r, chance(&w->r, 50) && nv > 4 ? 4 : (uint32_t)nv)];
			int f;
			if (chance(&w->r, 40))
				f = chance(&w->r, 50) ? F_STATUS : F_TITLE;
			else
				do
					f = (int)below(&w->r, NF);
				while (f == F_PARENT);
			random_value(w, f, val, sizeof(val));
			op_set(w, &s, g, f, val);
		}
	}
	session_commit(w, &s);
}

/* Devices a and b (and c) move goals under each other at the same time:
 * parent(x) = y on a, parent(y) = x on b (a 3-cycle with three devices). */
static void concurrent_cycle(world *w)
{
	int devs[3], goals[3], n = w->ndev >= 3 && chance(&w->r, 30) ? 3 : 2;
	int cand[1024];
	size_t nc = 0;
	devs[0] = (int)below(&w->r, (uint32_t)w->ndev);
	for (int i = 1; i < n; i++) {
		int again;
		do {
			devs[i] = (int)below(&w->r, (uint32_t)w->ndev);
			again = 0;
			for (int j = 0; j < i; j++)
				again |= devs[i] == devs[j];
		} while (again);
	}
	/* goals every chosen device knows and none has seen deleted */
	for (size_t g = 0; g < w->ngoal; g++) {
		int ok = 1;
		for (int i = 0; i < n; i++)
			ok &= known(w, devs[i], w->goal[g].cch) && !goal_deleted_for(w, devs[i], (int)g);
		if (ok)
			cand[nc++] = (int)g;
	}
	if (nc < (size_t)n)
		return;
	for (int i = 0; i < n; i++) {
		int again;
		do {
			goals[i] = cand[below(&w->r, (uint32_t)nc)];
			again = 0;
			for (int j = 0; j < i; j++)
				again |= goals[i] == goals[j];
		} while (again);
	}
	for (int i = 0; i < n; i++) {
		session s;
		session_begin(w, &s, devs[i]);
		op_set(w, &s, goals[i], F_PARENT, w->goal[goals[(i + 1) % n]].uid);
		session_commit(w, &s);
	}
	w->cycle_moves++;
}

/* One device closes a 2-cycle in a single change: both parent values carry
 * the same clock and author. */
static void one_change_cycle(world *w)
{
	session s;
	int vis[1024];
	size_t nv;
	int x, y;
	session_begin(w, &s, (int)below(&w->r, (uint32_t)w->ndev));
	nv = visible_goals(w, &s, vis);
	if (nv < 2) {
		/* nothing to move: create two goals and use those */
		op_create(w, &s);
		op_create(w, &s);
		nv = visible_goals(w, &s, vis);
	}
	x = vis[below(&w->r, (uint32_t)nv)];
	do
		y = vis[below(&w->r, (uint32_t)nv)];
	while (y == x);
	op_set(w, &s, x, F_PARENT, w->goal[y].uid);
	op_set(w, &s, y, F_PARENT, w->goal[x].uid);
	session_commit(w, &s);
	w->cycle_moves++;
}

static void model_exchange(world *w, int from, int to, int since)
{
	exchange(&w->dev[from], &w->dev[to], since, w->scratch);
	for (int e = 0; e < w->ndev; e++)
		if (w->know[from][e] > w->know[to][e])
			w->know[to][e] = w->know[from][e];
	if (w->maxlam[from] > w->maxlam[to])
		w->maxlam[to] = w->maxlam[from];
	w->exchanges++;
}

/* ---- observers: raw delivery in random order ----------------------------- */

static void pool_collect(world *w, samen_plan *p)
{
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(replica_db(p->rep), "SELECT body, sig, blob, id FROM changes", -1, &s, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint8_t id[32], *bytes;
		size_t len, k;
		assert_int_equal(replica_row_change(p->rep, s, 0, 2, 3, &bytes, &len), 0);
		change_id(id, bytes, len);
		for (k = 0; k < w->npool; k++)
			if (memcmp(w->pool[k].id, id, 32) == 0)
				break;
		if (k < w->npool) {
			free(bytes);
			continue;
		}
		assert_int_equal(sqlite3_column_bytes(s, 1), 64);
		w->pool = grow(w->pool, &w->cappool, w->npool, sizeof(*w->pool));
		memcpy(w->pool[w->npool].id, id, 32);
		w->pool[w->npool].body = bytes;
		w->pool[w->npool].len = len;
		memcpy(w->pool[w->npool].sig, sqlite3_column_blob(s, 1), 64);
		w->npool++;
	}
	sqlite3_finalize(s);
}

static void deliver(world *w, samen_plan *obs, const size_t *idx, size_t n)
{
	ingest_batch b;
	OK(ingest_init(&b, obs->id));
	for (size_t k = 0; k < n; k++) {
		const pooled *c = &w->pool[idx[k]];
		uint8_t *bytes = malloc(c->len);
		assert_non_null(bytes);
		memcpy(bytes, c->body, c->len);
		OK(ingest_add(&b, bytes, c->len, c->sig));
	}
	OK(plan_ingest(obs, &b));
	assert_int_equal(b.nbad, 0);
	w->pending_seen += (int)b.npending;
	ingest_free(&b);
	w->deliveries++;
}

/* Send an observer a random selection of the pool (everything when all),
 * shuffled, with duplicates, in one to four batches. */
static void observe(world *w, samen_plan *obs, int all)
{
	size_t n = all ? w->npool + w->npool / 3 : below(&w->r, (uint32_t)w->npool + 1);
	size_t *idx = malloc((n + 1) * sizeof(*idx));
	size_t nb = 1 + below(&w->r, 4), start = 0;
	assert_non_null(idx);
	for (size_t k = 0; k < n; k++)
		idx[k] = all && k < w->npool ? k : below(&w->r, (uint32_t)w->npool);
	for (size_t k = n; k > 1; k--) {
		size_t j = below(&w->r, (uint32_t)k), t = idx[k - 1];
		idx[k - 1] = idx[j];
		idx[j] = t;
	}
	for (size_t i = 0; i < nb && start < n; i++) {
		size_t len = i + 1 == nb ? n - start : below(&w->r, (uint32_t)(n - start + 1));
		if (len)
			deliver(w, obs, idx + start, len);
		start += len;
	}
	free(idx);
}

/* ---- checking the final state against the model --------------------------- */

typedef struct {
	char uid[17];
	char parent[17];
	int depth, cycle, pos;
	char *val[NF];
	int nval[NF];
} listed;

typedef struct {
	listed *rows;
	size_t n, cap;
} listing;

static int listing_cb(const samen_entity_view *e, void *payload)
{
	listing *l = payload;
	listed *r;
	l->rows = grow(l->rows, &l->cap, l->n, sizeof(*l->rows));
	r = &l->rows[l->n];
	memset(r, 0, sizeof(*r));
	snprintf(r->uid, sizeof(r->uid), "%s", e->uid);
	snprintf(r->parent, sizeof(r->parent), "%s", e->parent ? e->parent : "");
	r->depth = e->depth;
	r->cycle = e->cycle;
	r->pos = (int)l->n;
	for (size_t i = 0; i < e->nfields; i++)
		for (int f = 0; f < NF; f++)
			if (strcmp(e->fields[i].name, field_names[f]) == 0) {
				r->val[f] = strdup(e->fields[i].value);
				r->nval[f] = e->fields[i].nvalues;
			}
	l->n++;
	return 0;
}

static listed *find_listed(listing *l, const char *uid)
{
	for (size_t k = 0; k < l->n; k++)
		if (strcmp(l->rows[k].uid, uid) == 0)
			return &l->rows[k];
	return NULL;
}

typedef struct {
	char entity[17];
	char field[32];
	char value[96];
	char change[65];
	int winner, nvalues;
} crow;

typedef struct {
	crow *rows;
	size_t n, cap;
} crows;

static int crows_cb(const samen_value_info *v, void *payload)
{
	crows *c = payload;
	crow *r;
	c->rows = grow(c->rows, &c->cap, c->n, sizeof(*c->rows));
	r = &c->rows[c->n++];
	snprintf(r->entity, sizeof(r->entity), "%s", v->entity);
	snprintf(r->field, sizeof(r->field), "%s", v->field);
	snprintf(r->value, sizeof(r->value), "%s", v->value);
	snprintf(r->change, sizeof(r->change), "%s", v->change);
	r->winner = v->winner;
	r->nvalues = v->nvalues;
	return 0;
}

/* The live writes of register (g, f): those no other write has seen. */
static size_t live_writes(const world *w, int g, int f, int *out)
{
	size_t n = 0;
	for (size_t a = 0; a < w->nw; a++) {
		int dominated = 0;
		if (w->w[a].goal != g || w->w[a].field != f)
			continue;
		for (size_t b = 0; b < w->nw && !dominated; b++)
			if (b != a && w->w[b].goal == g && w->w[b].field == f && saw(w, w->w[b].ch, w->w[a].ch))
				dominated = 1;
		if (!dominated)
			out[n++] = (int)a;
	}
	return n;
}

static int beats(const world *w, int wa, int wb)
{
	const mchange *a = &w->ch[w->w[wa].ch], *b = &w->ch[w->w[wb].ch];
	if (a->lamport != b->lamport)
		return a->lamport > b->lamport;
	return strcmp(w->key[a->dev], w->key[b->dev]) > 0;
}

static int winner_of(const world *w, const int *live, size_t n)
{
	int best = live[0];
	for (size_t k = 1; k < n; k++)
		if (beats(w, live[k], best))
			best = live[k];
	return best;
}

static int log_cb(const samen_log_entry *e, void *payload)
{
	world *w = payload;
	assert_int_equal(e->accepted, 1);
	for (size_t k = 0; k < w->nch; k++)
		if (strcmp(w->ch[k].id, e->id) == 0) {
			const mchange *c = &w->ch[k];
			assert_int_equal(e->seq, c->seq);
			assert_int_equal(e->lamport, c->lamport);
			assert_string_equal(e->device, w->key[c->dev]);
			w->ch[k].logged++;
		}
	return 0;
}

static int goal_index(const world *w, const char *uid)
{
	for (size_t g = 0; g < w->ngoal; g++)
		if (strcmp(w->goal[g].uid, uid) == 0)
			return (int)g;
	return -1;
}

static void check_model(world *w, samen_plan *p, int count)
{
	listing l;
	crows c;
	int *live = malloc((w->nw + 1) * sizeof(int));
	size_t expect_rows = 0, nlive_goals = 0;
	int *parent_of = calloc(w->ngoal + 1, sizeof(int)), *pwin = calloc(w->ngoal + 1, sizeof(int));
	int ncycles = 0, flagged = 0;

	assert_non_null(live);
	assert_non_null(parent_of);
	assert_non_null(pwin);
	memset(&l, 0, sizeof(l));
	memset(&c, 0, sizeof(c));
	OK(samen_entity_list(p, "goal", listing_cb, &l));
	OK(samen_conflicts(p, crows_cb, &c));
	for (size_t k = 0; k < w->nch; k++)
		w->ch[k].logged = 0;
	OK(samen_log(p, NULL, log_cb, w));
	for (size_t k = 0; k < w->nch; k++)
		assert_int_equal(w->ch[k].logged, w->ch[k].id[0] ? 1 : 0);

	/* every live goal listed once with the model's winners; no other */
	for (size_t g = 0; g < w->ngoal; g++) {
		listed *r = find_listed(&l, w->goal[g].uid);
		parent_of[g] = -1;
		if (goal_deleted_for(w, -1, (int)g)) {
			assert_null(r);
			continue;
		}
		nlive_goals++;
		if (!r)
			fail_msg("goal %s is missing from the list", w->goal[g].uid);
		for (int f = 0; f < NF; f++) {
			size_t n = live_writes(w, (int)g, f, live);
			int win = n ? winner_of(w, live, n) : -1;
			assert_int_equal(r->nval[f], (int)n);
			assert_string_equal(r->val[f], n ? w->w[win].val : "");
			if (f == F_PARENT && n && w->w[win].val[0]) {
				int t = goal_index(w, w->w[win].val);
				assert_true(t >= 0);
				if (!goal_deleted_for(w, -1, t)) {
					parent_of[g] = t;
					pwin[g] = win;
				}
			}
			if (n < 2)
				continue;
			w->conflicts += count;
			/* the reported values: exactly the live writes, pairwise
			 * concurrent, the winner marked */
			for (size_t k = 0; k < n; k++) {
				const mwrite *m = &w->w[live[k]];
				size_t hits = 0;
				for (size_t j = 0; j < n; j++)
					if (j != k)
						assert_false(saw(w, w->w[live[j]].ch, m->ch) || saw(w, m->ch, w->w[live[j]].ch));
				for (size_t q = 0; q < c.n; q++) {
					crow *cr = &c.rows[q];
					if (strcmp(cr->entity, w->goal[g].uid) != 0 || strcmp(cr->field, field_names[f]) != 0 ||
					    strcmp(cr->change, w->ch[m->ch].id) != 0)
						continue;
					hits++;
					assert_string_equal(cr->value, m->val);
					assert_int_equal(cr->winner, live[k] == win);
					assert_int_equal(cr->nvalues, (int)n);
				}
				assert_int_equal(hits, 1);
			}
			expect_rows += n;
		}
	}
	assert_int_equal(l.n, nlive_goals);
	assert_int_equal(c.n, expect_rows);

	/* the tree: effective parent = winning parent unless that closes a
	 * cycle; in each cycle exactly the goal whose parent value has the
	 * highest (Lamport clock, device key) is cut loose */
	for (size_t g = 0; g < w->ngoal; g++) {
		listed *r = find_listed(&l, w->goal[g].uid);
		if (!r)
			continue;
		if (r->cycle)
			flagged++;
		if (parent_of[g] < 0) {
			assert_string_equal(r->parent, "");
			assert_int_equal(r->cycle, 0);
		} else if (r->cycle) {
			assert_string_equal(r->parent, "");
		} else {
			assert_string_equal(r->parent, w->goal[parent_of[g]].uid);
		}
		if (r->parent[0]) {
			listed *pr = find_listed(&l, r->parent);
			assert_non_null(pr);
			assert_true(pr->pos < r->pos);
			assert_int_equal(r->depth, pr->depth + 1);
		} else {
			assert_int_equal(r->depth, 0);
		}
	}
	/* find the cycles of the winning-parent graph */
	{
		int *mark = calloc(w->ngoal + 1, sizeof(int));
		assert_non_null(mark);
		for (size_t g = 0; g < w->ngoal; g++) {
			int x = (int)g, steps = 0;
			if (parent_of[g] < 0 || mark[g])
				continue;
			/* walk up; if we return to g, g is on a cycle (counted once,
			 * from its first member) */
			while (x >= 0 && steps <= (int)w->ngoal) {
				x = parent_of[x];
				steps++;
				if (x == (int)g)
					break;
			}
			if (x != (int)g)
				continue;
			ncycles++;
			{
				int y = (int)g, best = (int)g, nflag = 0;
				do {
					mark[y] = 1;
					/* the loser: highest (Lamport clock, device key) of
					 * its parent value; within one change, greatest uid */
					if (beats(w, pwin[y], pwin[best]) ||
					    (w->w[pwin[y]].ch == w->w[pwin[best]].ch &&
					     strcmp(w->goal[y].uid, w->goal[best].uid) > 0))
						best = y;
					nflag += find_listed(&l, w->goal[y].uid)->cycle;
					y = parent_of[y];
				} while (y != (int)g);
				assert_int_equal(nflag, 1);
				assert_int_equal(find_listed(&l, w->goal[best].uid)->cycle, 1);
				if (count && w->w[pwin[best]].ch == w->w[pwin[parent_of[best]]].ch)
					w->tied_cycles++;
			}
		}
		free(mark);
	}
	assert_int_equal(flagged, ncycles);
	w->cycles += count * ncycles;

	for (size_t k = 0; k < l.n; k++)
		for (int f = 0; f < NF; f++)
			free(l.rows[k].val[f]);
	free(l.rows);
	free(c.rows);
	free(live);
	free(parent_of);
	free(pwin);
}

/* One change by device 0 holding a grant, an approval, a revocation, a link
 * or an unlink. Every one is allowed (device 0 is a coordinator), so every
 * replica accepts it and the model needs no more than the change itself. */
static void rights_change(world *w)
{
	static const char *const roles[] = {"network", "observer", "professional", "coordinator"};
	const char *werk = "werk";
	session s;
	int g = (int)below(&w->r, NGUEST), d = 1 + (int)below(&w->r, (uint32_t)(w->ndev - 1)), rc = 1;
	session_begin(w, &s, 0);
	if (chance(&w->r, 60)) {
		if (w->guest_state[g] == 0) {
			w->guest_role[g] = (int)below(&w->r, 4);
			OK(samen_edit_member_add_role(s.e, w->guest[g], "gast", roles[w->guest_role[g]]));
			if (w->guest_role[g] == 2)
				OK(samen_edit_member_scope(s.e, w->guest[g], &werk, 1));
			w->guest_state[g] = 1;
		} else if (w->guest_state[g] == 1 && w->guest_role[g] == 2) {
			OK(samen_edit_member_approve(s.e, w->guest[g], 1)); /* the client's consent, recorded */
			w->guest_state[g] = 2;
		} else if (w->guest_state[g] < 3 && w->guest_role[g] != 3) {
			/* (a coordinator revokes only roles below its own) */
			OK(samen_edit_member_revoke(s.e, w->guest[g]));
			w->guest_state[g] = 3;
		} else {
			rc = 0;
		}
	} else if (w->spare_state[d] == 0) {
		OK(samen_edit_device_link(s.e, w->key[d], w->spare[d]));
		w->spare_state[d] = 1;
	} else if (w->spare_state[d] == 1) {
		OK(samen_edit_device_unlink(s.e, w->spare[d]));
		w->spare_state[d] = 2;
	} else {
		rc = 0;
	}
	if (rc) {
		session_commit(w, &s);
		w->rights_ops++;
	} else {
		samen_edit_free(s.e);
		w->nch--; /* nothing written: the model forgets the session */
	}
}

/* ---- the random test -------------------------------------------------------------- */

static void run_seed(uint64_t seed)
{
	world *w = calloc(1, sizeof(*w));
	samen_edit *e;
	snapshot ref, other;
	char what[64];
	int rounds;
	node rebuilt;
	char cmd[8600];

	assert_non_null(w);
	w->r.s = seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
	w->ndev = 3 + (int)below(&w->r, 2);
	rounds = 8 + (int)below(&w->r, 5);
	w->scratch = tu_mkdtemp("conv-scratch");
	assert_non_null(w->scratch);
	for (int k = 0; k < NGUEST; k++)
		for (int i = 0; i < 32; i++)
			snprintf(w->guest[k] + 2 * i, 3, "%02x", (unsigned)(rnd(&w->r) & 0xff));
	for (int d = 0; d < MAXDEV; d++)
		for (int i = 0; i < 32; i++)
			snprintf(w->spare[d] + 2 * i, 3, "%02x", (unsigned)(rnd(&w->r) & 0xff));
	for (int d = 0; d < w->ndev; d++) {
		char name[32];
		snprintf(name, sizeof(name), "device%d", d);
		node_init(&w->dev[d], name);
		snprintf(w->key[d], sizeof(w->key[d]), "%s", samen_store_device_key(w->dev[d].store));
	}

	/* the base: device 0 starts the plan and adds the others */
	OK(samen_plan_create(&w->dev[0].plan, w->dev[0].store, "Mevrouw Jansen", "nl"));
	OK(samen_entity_list(w->dev[0].plan, "area", remember_area, w));
	assert_int_equal(w->narea, 10);
	OK(samen_edit_begin(&e, w->dev[0].plan));
	for (int d = 1; d < w->ndev; d++)
		OK(samen_edit_member_add(e, w->key[d], "lid"));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	w->ch = grow(w->ch, &w->capch, 2, sizeof(*w->ch));
	memset(w->ch, 0, 2 * sizeof(*w->ch));
	for (int k = 0; k < 2; k++) {
		w->ch[k].seq = w->ch[k].lamport = (uint64_t)k + 1;
		w->ch[k].vv[0] = (uint64_t)k + 1;
	}
	w->nch = 2;
	w->know[0][0] = 2;
	w->maxlam[0] = 2;
	for (int d = 1; d < w->ndev; d++)
		model_exchange(w, 0, d, 0);
	for (int o = 0; o < NOBS; o++) {
		node_init(&w->obs[o], "observer");
		OK(plan_open_dir(&w->obs[o].plan, w->obs[o].store, w->dev[0].plan->id, true));
	}

	for (int round = 0; round < rounds; round++) {
		if (round > 0 && chance(&w->r, 60))
			concurrent_cycle(w);
		for (int d = 0; d < w->ndev; d++) {
			int n = 1 + (int)below(&w->r, 3);
			for (int k = 0; k < n; k++)
				random_change(w, d);
		}
		if (chance(&w->r, 50))
			rights_change(w);
		if (round == rounds - 1) {
			/* end with cycles still standing: everyone in sync, then
			 * moves that no later write overrides */
			for (int d = 1; d < w->ndev; d++)
				model_exchange(w, d, 0, 1);
			for (int d = 1; d < w->ndev; d++)
				model_exchange(w, 0, d, 1);
			concurrent_cycle(w);
			if (chance(&w->r, 60))
				one_change_cycle(w);
		}
		/* a few exchanges between random pairs, one way each */
		for (int x = (int)below(&w->r, (uint32_t)w->ndev); x > 0; x--) {
			int a = (int)below(&w->r, (uint32_t)w->ndev), b;
			do
				b = (int)below(&w->r, (uint32_t)w->ndev);
			while (b == a);
			model_exchange(w, a, b, chance(&w->r, 50));
		}
		for (int d = 0; d < w->ndev; d++)
			pool_collect(w, w->dev[d].plan);
		for (int o = 0; o < NOBS; o++)
			if (chance(&w->r, 70))
				observe(w, w->obs[o].plan, 0);
	}

	/* full exchange: everything to device 0, then back to everyone */
	for (int d = 1; d < w->ndev; d++)
		model_exchange(w, d, 0, chance(&w->r, 50));
	for (int d = 1; d < w->ndev; d++)
		model_exchange(w, 0, d, chance(&w->r, 50));
	for (int d = 0; d < w->ndev; d++)
		pool_collect(w, w->dev[d].plan);
	assert_int_equal(w->npool, w->nch);
	for (int o = 0; o < NOBS; o++)
		observe(w, w->obs[o].plan, 1);

	/* every replica shows the same; device 0 agrees with the model */
	take_snapshot(w->dev[0].plan, &ref);
	assert_int_equal(ref.check.changes, (int64_t)w->nch);
	assert_int_equal(ref.check.rejected, 0);
	check_model(w, w->dev[0].plan, 1);
	for (int d = 1; d < w->ndev; d++) {
		snprintf(what, sizeof(what), "device %d", d);
		take_snapshot(w->dev[d].plan, &other);
		assert_same(&ref, &other, what);
		snapshot_free(&other);
	}
	for (int o = 0; o < NOBS; o++) {
		snprintf(what, sizeof(what), "observer %d", o);
		take_snapshot(w->obs[o].plan, &other);
		assert_same(&ref, &other, what);
		snapshot_free(&other);
		check_model(w, w->obs[o].plan, 0);
	}
	/* a rebuild from the history, of a copy of the last device, and of an
	 * observer in place */
	{
		int d = w->ndev - 1;
		samen_plan_free(w->dev[d].plan);
		w->dev[d].plan = NULL;
		node_init(&rebuilt, "copy");
		snprintf(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s'", rebuilt.dir, w->dev[d].dir, rebuilt.dir);
		assert_int_equal(system(cmd), 0);
		OK(samen_plan_open(&rebuilt.plan, rebuilt.store, NULL));
		OK(samen_plan_rebuild(rebuilt.plan));
		take_snapshot(rebuilt.plan, &other);
		assert_same(&ref, &other, "rebuilt copy");
		snapshot_free(&other);
		node_free(&rebuilt);
		OK(samen_plan_open(&w->dev[d].plan, w->dev[d].store, NULL));
		OK(samen_plan_rebuild(w->obs[0].plan));
		take_snapshot(w->obs[0].plan, &other);
		assert_same(&ref, &other, "rebuilt observer");
		snapshot_free(&other);
	}
	snapshot_free(&ref);

	printf("seed %llu: %d devices, %d rounds, %zu changes, %zu goals, %zu deletes, %d exchanges, %d deliveries"
	       " (%d pending on arrival), %d conflicts, %d cycle moves, %d cycles (%d closed by one change),"
	       " %d grants/revocations/links/unlinks\n",
	       (unsigned long long)seed, w->ndev, rounds, w->nch, w->ngoal, w->ndel, w->exchanges, w->deliveries,
	       w->pending_seen, w->conflicts, w->cycle_moves, w->cycles, w->tied_cycles, w->rights_ops);
	fflush(stdout);

	for (int d = 0; d < w->ndev; d++)
		node_free(&w->dev[d]);
	for (int o = 0; o < NOBS; o++)
		node_free(&w->obs[o]);
	for (size_t k = 0; k < w->npool; k++)
		free(w->pool[k].body);
	free(w->pool);
	free(w->ch);
	free(w->goal);
	free(w->w);
	free(w->del);
	tu_rmtree(w->scratch);
	free(w->scratch);
	free(w);
}

static void test_random_convergence(void **state)
{
	const char *one = getenv("SAMEN_SEED"), *count = getenv("SAMEN_SEED_COUNT");
	uint64_t first = 1, n = 5;
	time_t t0 = time(NULL);
	(void)state;
	if (one && *one) {
		first = strtoull(one, NULL, 10);
		n = 1;
	} else if (count && *count) {
		n = strtoull(count, NULL, 10);
	}
	for (uint64_t s = first; s < first + n; s++) {
		printf("convergence: seed %llu (replay with SAMEN_SEED=%llu)\n", (unsigned long long)s,
		       (unsigned long long)s);
		fflush(stdout);
		run_seed(s);
	}
	printf("convergence: %llu seeds in %lld s\n", (unsigned long long)n, (long long)(time(NULL) - t0));
}

int main(void)
{
	/* Nothing here is about durability: without a TMPDIR of its own, the
	 * test keeps its stores in memory when it can (fsync is most of the
	 * time on a disk). */
	const char *tmp = getenv("TMPDIR");
	if ((!tmp || !*tmp) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_status_conflict),
		cmocka_unit_test(test_parent_cycle),
		cmocka_unit_test(test_cycle_one_change),
		cmocka_unit_test(test_random_convergence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
