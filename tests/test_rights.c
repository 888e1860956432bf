/*
 * test_rights.c - members, roles and rights (docs/rights.md).
 *
 * Every row of the role table: the allowed op is accepted and the forbidden
 * one rejected with its reason, on the author's replica and on the others
 * after an exchange. A revocation concurrent with the revoked member's
 * edits, delivered in every order to fresh replicas, gives the same verdicts
 * and state hash everywhere. And a seeded property test runs random edits,
 * grants, revocations, links and unlinks on several devices and checks that
 * every replica that holds the same changes agrees.
 */
#include "testutil.h"

#include "samen/samen.h"
#include "sync/internal.h"
#include "core/change.h"
#include "core/rights.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *scratch;

/* Everything from holds, to to (rejected changes travel too). */
static void xfer(node *from, node *to)
{
	char path[4200];
	samen_bundle_stats st, im;
	snprintf(path, sizeof(path), "%s/x.bundle", scratch);
	OK(samen_bundle_create(from->plan, path, NULL, &st));
	samen_plan_free(to->plan);
	to->plan = NULL;
	OK(samen_bundle_import(to->store, path, &im));
	assert_int_equal(im.invalid, 0);
	OK(samen_plan_open(&to->plan, to->store, NULL));
	unlink(path);
}

static void sync_all(node **ns, int n)
{
	for (int i = 1; i < n; i++)
		xfer(ns[i], ns[0]);
	for (int i = 1; i < n; i++)
		xfer(ns[0], ns[i]);
}

/* Verdict of change idhex on n's replica: 1 accepted, 0 rejected, -1 absent. */
static int verdict(node *n, const char *idhex, char *reason, size_t cap)
{
	sqlite3_stmt *s = NULL;
	uint8_t id[32];
	int v = -1;
	assert_int_equal(sodium_hex2bin(id, 32, idhex, 64, NULL, NULL, NULL), 0);
	assert_int_equal(sqlite3_prepare_v2(replica_db(n->plan->rep), "SELECT verdict, reason FROM changes WHERE id = ?",
	                                    -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	if (reason)
		reason[0] = 0;
	if (sqlite3_step(s) == SQLITE_ROW) {
		v = sqlite3_column_int(s, 0);
		if (reason && sqlite3_column_text(s, 1))
			snprintf(reason, cap, "%s", (const char *)sqlite3_column_text(s, 1));
	}
	sqlite3_finalize(s);
	return v;
}

static void expect(node *n, const char *id, int accepted, const char *needle)
{
	char reason[600];
	int v = verdict(n, id, reason, sizeof(reason));
	if (v != accepted || (!accepted && needle && !strstr(reason, needle))) {
		sqlite3_stmt *q = NULL;
		sqlite3_prepare_v2(replica_db(n->plan->rep), "SELECT hex(id), verdict, reason FROM changes ORDER BY rowid", -1, &q, NULL);
		while (sqlite3_step(q) == SQLITE_ROW)
			printf("  %.16s %d %s\n", sqlite3_column_text(q, 0), sqlite3_column_int(q, 1), sqlite3_column_text(q, 2));
		sqlite3_finalize(q);
	}
	if (v != accepted)
		fail_msg("change %.16s on %s: verdict %d, want %d (%s)", id, samen_store_device_name(n->store), v, accepted,
		         reason);
	if (!accepted && needle && !strstr(reason, needle))
		fail_msg("change %.16s: reason \"%s\" lacks \"%s\"", id, reason, needle);
}

/* ---- one edit per call; returns the change id in id ------------------------ */

typedef int (*edit_fn)(samen_edit *e, const void *a, const void *b);

static int edit(node *n, edit_fn fn, const void *a, const void *b, char id[65])
{
	samen_edit *e = NULL;
	int rc;
	id[0] = 0;
	OK(samen_edit_begin(&e, n->plan));
	OK(fn(e, a, b));
	rc = samen_edit_commit(e, id);
	assert_int_equal(strlen(id), 64); /* stored, accepted or not */
	samen_edit_free(e);
	return rc;
}

static int e_status(samen_edit *e, const void *goal, const void *val)
{
	return samen_edit_set_in(e, "goal", goal, "status", val);
}

static int e_goal(samen_edit *e, const void *title, const void *area)
{
	char uid[17];
	int rc = samen_edit_create(e, "goal", uid);
	if (rc == 0)
		rc = samen_edit_set_in(e, "goal", uid, "title", title);
	if (rc == 0 && area)
		rc = samen_edit_set_in(e, "goal", uid, "area", area);
	return rc;
}

typedef struct {
	const char *key, *name, *role, *areas;
} grant;

static int e_add(samen_edit *e, const void *g_, const void *unused)
{
	const grant *g = g_;
	int rc;
	(void)unused;
	rc = samen_edit_member_add_role(e, g->key, g->name, g->role);
	if (rc == 0 && g->areas)
		rc = samen_edit_member_scope(e, g->key, &g->areas, 1);
	return rc;
}

/* A raw grant the API would refuse: role as a number. */
static int e_raw_add(samen_edit *e, const void *key, const void *role)
{
	uint8_t k[32];
	sodium_hex2bin(k, 32, key, 64, NULL, NULL, NULL);
	return change_builder_member_add(edit_builder(e), k, "Raw", (uint64_t)*(const int *)role);
}

static int e_revoke(samen_edit *e, const void *m, const void *unused)
{
	(void)unused;
	return samen_edit_member_revoke(e, m);
}

static int e_raw_revoke(samen_edit *e, const void *id, const void *unused)
{
	(void)unused;
	return change_builder_revoke(edit_builder(e), id);
}

static int e_scope(samen_edit *e, const void *m, const void *areas)
{
	const char *const *a = areas;
	size_t n = 0;
	while (a[n])
		n++;
	return samen_edit_member_scope(e, m, a, n);
}

static int e_approve(samen_edit *e, const void *m, const void *consent)
{
	return samen_edit_member_approve(e, m, *(const int *)consent);
}

static int e_link(samen_edit *e, const void *m, const void *key)
{
	return samen_edit_device_link(e, m, key);
}

static int e_unlink(samen_edit *e, const void *key, const void *unused)
{
	(void)unused;
	return samen_edit_device_unlink(e, key);
}

static int may_sync(node *n, const char *key)
{
	int may = -1;
	OK(samen_plan_device_may_sync(n->plan, key, &may));
	return may;
}

static void hash_of(node *n, char out[65])
{
	OK(samen_plan_state_hash(n->plan, out));
}

/* On a mismatch: which verdicts differ (to find the bug, not to judge). */
static void diff_verdicts(node *a, node *b)
{
	sqlite3_stmt *q = NULL;
	sqlite3_prepare_v2(replica_db(a->plan->rep), "SELECT lower(hex(id)), verdict, reason, lamport FROM changes ORDER BY lamport", -1, &q, NULL);
	while (sqlite3_step(q) == SQLITE_ROW) {
		char r2[600];
		const char *id = (const char *)sqlite3_column_text(q, 0);
		int v2 = verdict(b, id, r2, sizeof(r2));
		if (v2 != sqlite3_column_int(q, 1))
			printf("DIFF %.16s L%d: %d (%s) vs %d (%s)\n", id, sqlite3_column_int(q, 3), sqlite3_column_int(q, 1),
			       sqlite3_column_text(q, 2), v2, r2);
	}
	sqlite3_finalize(q);
}

/* ---- the role table, row by row ------------------------------------------ */

enum { C, K, P, P2, N, O, X, NN };

typedef struct {
	node n[NN];
	node *all[NN];
} cast;

static void cast_setup(cast *t)
{
	static const char *const names[NN] = {"Joke", "Marieke", "Piet", "Piet-laptop", "Kees", "Oma", "Mallory"};
	char id[65];
	for (int i = 0; i < NN; i++) {
		node_init(&t->n[i], names[i]);
		t->all[i] = &t->n[i];
	}
	/* Joke, the client, starts her own plan and adds everyone but Mallory */
	OK(samen_plan_create_as(&t->n[C].plan, t->n[C].store, "Joke", "nl", "client"));
	grant gk = {t->n[K].key, "Marieke", "coordinator", NULL}, gp = {t->n[P].key, "Piet", "professional", "werk"},
	      gn = {t->n[N].key, "Kees", "network", NULL}, go = {t->n[O].key, "Oma", "observer", NULL};
	OK(edit(&t->n[C], e_add, &gk, NULL, id));
	OK(edit(&t->n[C], e_add, &gp, NULL, id)); /* the client's own grant: no approval needed */
	OK(edit(&t->n[C], e_add, &gn, NULL, id));
	OK(edit(&t->n[C], e_add, &go, NULL, id));
	OK(edit(&t->n[C], e_goal, "Werk vinden", "werk", id));
	OK(edit(&t->n[C], e_goal, "Vrienden zien", "vriendschap", id));
	for (int i = 1; i < NN; i++)
		xfer(&t->n[C], &t->n[i]);
}

static void cast_free(cast *t)
{
	for (int i = 0; i < NN; i++)
		node_free(&t->n[i]);
}

/* The author's verdict, then the same verdict on the client's and the
 * coordinator's replicas after an exchange. */
static void row(cast *t, int who, edit_fn fn, const void *a, const void *b, int accepted, const char *needle)
{
	char id[65];
	int rc;
	if (who != C)
		xfer(&t->n[C], &t->n[who]);
	rc = edit(&t->n[who], fn, a, b, id);
	if ((rc == 0) != accepted)
		fail_msg("row at %s: %s", samen_store_device_name(t->n[who].store), samen_error_last());
	expect(&t->n[who], id, accepted, needle);
	if (who != C) {
		xfer(&t->n[who], &t->n[C]);
		expect(&t->n[C], id, accepted, needle);
	}
	if (who != K) {
		xfer(&t->n[C], &t->n[K]);
		expect(&t->n[K], id, accepted, needle);
	}
	xfer(&t->n[C], &t->n[who]);
}

static void test_every_role_may_do_what_the_table_says_on_every_replica(void **state)
{
	cast t;
	int client = SAMEN_ROLE_CLIENT, coordinator = SAMEN_ROLE_COORDINATOR;
	grant n2 = {NULL, "Buurvrouw", "network", NULL};
	node extra;
	(void)state;
	cast_setup(&t);
	node_init(&extra, "buurvrouw");
	n2.key = extra.key;

	/* plan content */
	row(&t, C, e_status, "Werk vinden", "bezig", 1, NULL);
	row(&t, K, e_status, "Werk vinden", "open", 1, NULL);
	row(&t, N, e_status, "Vrienden zien", "bezig", 1, NULL);
	row(&t, P, e_status, "Werk vinden", "bezig", 1, NULL);
	row(&t, P, e_status, "Vrienden zien", "open", 0,
	    "(Piet, professional) may not edit goal 'Vrienden zien': life area vriendschap is outside their scope");
	row(&t, P, e_goal, "Sollicitatiebrief", "werk", 1, NULL);
	row(&t, P, e_goal, "Naar de kerk", "geloof", 0, "outside their scope");
	row(&t, O, e_status, "Werk vinden", "open", 0, "(Oma, observer): an observer reads the plan but may not change it");
	row(&t, X, e_status, "Werk vinden", "open", 0, "is not a member of this plan");

	/* grants: never beyond the granter's rights, never to oneself */
	row(&t, N, e_add, &n2, NULL, 0, "(Kees, network) may not add members");
	row(&t, P, e_add, &n2, NULL, 0, "may not add members");
	row(&t, O, e_add, &n2, NULL, 0, "observer");
	row(&t, N, e_raw_add, t.n[N].key, &coordinator, 0, "may not add members"); /* self-promotion */
	row(&t, K, e_raw_add, t.n[K].key, &client, 0, "nobody can be added as client");
	row(&t, K, e_raw_add, t.n[K].key, &coordinator, 0, "may not change their own role");
	row(&t, K, e_raw_add, t.n[N].key, &client, 0, "nobody can be added as client");
	row(&t, K, e_add, &n2, NULL, 1, NULL);

	/* revocations: the client is never removed; a coordinator only below itself */
	row(&t, K, e_raw_revoke, RIGHTS_CLIENT_ID, NULL, 0, "the client cannot be removed");
	row(&t, N, e_revoke, "Buurvrouw", NULL, 0, "(Kees, network) may not revoke");
	row(&t, P, e_revoke, "Marieke", NULL, 0, "may not revoke");
	row(&t, K, e_revoke, "Buurvrouw", NULL, 1, NULL);

	/* scopes: a coordinator's wider scope waits for the client */
	{
		const char *wide[] = {"werk", "vriendschap", NULL}, *narrow[] = {"werk", NULL};
		int consent = 1, direct = 0;
		row(&t, N, e_scope, "Piet", wide, 0, "may not change a professional's life areas");
		row(&t, K, e_scope, "Piet", wide, 1, NULL);
		row(&t, P, e_status, "Vrienden zien", "open", 0, "outside their scope");
		row(&t, N, e_approve, "Piet", &direct, 0, "may not approve for the client");
		row(&t, K, e_approve, "Piet", &direct, 0, "may not approve for the client");
		row(&t, C, e_approve, "Piet", &consent, 0, "the client approves directly");
		row(&t, C, e_approve, "Piet", &direct, 1, NULL);
		row(&t, P, e_status, "Vrienden zien", "open", 1, NULL);
		row(&t, K, e_scope, "Piet", narrow, 1, NULL); /* narrower: at once */
		row(&t, P, e_status, "Vrienden zien", "bezig", 0, "outside their scope");
	}

	/* a professional added by the coordinator waits for approval; a coordinator may record the client's consent */
	{
		node vk;
		grant gv = {NULL, "Vera (reclassering)", "professional", "werk"};
		int consent = 1;
		node_init(&vk, "vera");
		gv.key = vk.key;
		row(&t, K, e_add, &gv, NULL, 1, NULL);
		xfer(&t.n[C], &vk);
		assert_int_equal(may_sync(&t.n[C], vk.key), 0);
		{
			char id[65];
			assert_int_not_equal(edit(&vk, e_status, "Werk vinden", "open", id), 0);
			expect(&vk, id, 0, "waits for the client's approval");
		}
		row(&t, K, e_approve, "Vera (reclassering)", &consent, 1, NULL);
		assert_int_equal(may_sync(&t.n[C], vk.key), 1);
		xfer(&t.n[C], &vk);
		{
			char id[65];
			OK(edit(&vk, e_status, "Werk vinden", "open", id));
			xfer(&vk, &t.n[C]);
			expect(&t.n[C], id, 1, NULL);
		}
		node_free(&vk);
	}

	/* devices: a member links a new one; an unlinked device's later changes are rejected */
	{
		char before[65], after[65];
		OK(edit(&t.n[P], e_status, "Werk vinden", "open", before));
		row(&t, N, e_link, "Piet", t.n[P2].key, 0, "may not link a device to Piet");
		row(&t, P, e_link, "Piet", t.n[P2].key, 1, NULL);
		xfer(&t.n[C], &t.n[P2]);
		row(&t, P2, e_status, "Werk vinden", "bezig", 1, NULL);
		row(&t, N, e_unlink, t.n[P].key, NULL, 0, "may not unlink device");
		row(&t, P2, e_unlink, t.n[P].key, NULL, 1, NULL); /* the lost phone */
		assert_int_equal(may_sync(&t.n[C], t.n[P].key), 0);
		assert_int_equal(may_sync(&t.n[C], t.n[P2].key), 1);
		/* the phone did not hear of it and edits on */
		assert_int_equal(edit(&t.n[P], e_status, "Werk vinden", "open", after), 0);
		xfer(&t.n[P], &t.n[C]);
		expect(&t.n[C], after, 0, "was unlinked");
		expect(&t.n[C], before, 1, NULL); /* Piet keeps his history */
		row(&t, P2, e_status, "Werk vinden", "open", 1, NULL);
	}

	/* a revoked member's device may not sync, and what it writes is rejected */
	row(&t, K, e_revoke, "Kees", NULL, 1, NULL);
	assert_int_equal(may_sync(&t.n[C], t.n[N].key), 0);
	assert_int_equal(may_sync(&t.n[C], t.n[K].key), 1);
	assert_int_equal(may_sync(&t.n[C], t.n[X].key), 0);
	row(&t, N, e_status, "Werk vinden", "open", 0, "the member was revoked");
	row(&t, K, e_revoke, "Marieke", NULL, 1, NULL); /* a coordinator may leave */

	{
		char h[NN][65];
		sync_all(t.all, NN);
		for (int i = 0; i < NN; i++)
			hash_of(&t.n[i], h[i]);
		for (int i = 1; i < NN; i++) {
			if (strcmp(h[0], h[i]) != 0)
				diff_verdicts(&t.n[0], &t.n[i]);
			assert_string_equal(h[0], h[i]);
		}
	}
	node_free(&extra);
	cast_free(&t);
}

/* ---- revocation concurrent with the revoked member's edits ---------------- */

typedef struct {
	uint8_t *body;
	size_t len;
	uint8_t sig[64];
	char id[65];
} raw;

static void take_raw(node *n, const char *idhex, raw *out)
{
	sqlite3_stmt *s = NULL;
	uint8_t id[32];
	sodium_hex2bin(id, 32, idhex, 64, NULL, NULL, NULL);
	assert_int_equal(sqlite3_prepare_v2(replica_db(n->plan->rep), "SELECT body, sig, blob, id FROM changes WHERE id = ?",
	                                    -1, &s, NULL), SQLITE_OK);
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(s), SQLITE_ROW);
	OK(replica_row_change(n->plan->rep, s, 0, 2, 3, &out->body, &out->len));
	memcpy(out->sig, sqlite3_column_blob(s, 1), 64);
	snprintf(out->id, sizeof(out->id), "%s", idhex);
	sqlite3_finalize(s);
}

static void deliver(samen_plan *p, const raw *r)
{
	ingest_batch b;
	uint8_t *bytes = malloc(r->len);
	assert_non_null(bytes);
	memcpy(bytes, r->body, r->len);
	OK(ingest_init(&b, p->id));
	OK(ingest_add(&b, bytes, r->len, r->sig));
	OK(plan_ingest(p, &b));
	ingest_free(&b);
}

/* Joke (the client) with Marieke (coordinator) and Kees (network member),
 * a goal, and one status edit by Kees (*n0) that everyone has; base holds
 * the same, for fresh replicas to start from. */
static void three_members(node *c, node *k, node *n, node *base, char n0[65])
{
	char id[65];
	grant gk = {NULL, "Marieke", "coordinator", NULL}, gn = {NULL, "Kees", "network", NULL};
	node_init(c, "Joke");
	node_init(k, "Marieke");
	node_init(n, "Kees");
	node_init(base, "base");
	gk.key = k->key;
	gn.key = n->key;
	OK(samen_plan_create_as(&c->plan, c->store, "Joke", "nl", "client"));
	OK(edit(c, e_add, &gk, NULL, id));
	OK(edit(c, e_add, &gn, NULL, id));
	OK(edit(c, e_goal, "Werk vinden", "werk", id));
	xfer(c, k);
	xfer(c, n);
	OK(edit(n, e_status, "Werk vinden", "bezig", n0));
	xfer(n, c);
	xfer(c, k);
	xfer(c, base);
}

/* The next permutation of perm[0..n) in lexicographic order; false after
 * the last. */
static bool next_perm(int *perm, int n)
{
	int i = n - 2, j = n - 1, tmp;
	while (i >= 0 && perm[i] > perm[i + 1])
		i--;
	if (i < 0)
		return false;
	while (perm[j] < perm[i])
		j--;
	tmp = perm[i];
	perm[i] = perm[j];
	perm[j] = tmp;
	for (int a = i + 1, b = n - 1; a < b; a++, b--) {
		tmp = perm[a];
		perm[a] = perm[b];
		perm[b] = tmp;
	}
	return true;
}

static void test_revocation_concurrent_with_edits_gives_the_same_verdicts_in_every_order(void **state)
{
	node c, k, n, base;
	char n0[65], ids[4][65], h0[65] = "";
	raw late[4];
	int perm[4] = {0, 1, 2, 3}, orders = 0;
	(void)state;
	three_members(&c, &k, &n, &base, n0); /* n0: before the revocation, stays */
	/* concurrently: Joke revokes Kees; Kees adds a goal and edits it; Marieke,
	 * having seen Kees's goal but not the revocation, edits it too */
	OK(edit(&c, e_revoke, "Kees", NULL, ids[0]));
	OK(edit(&n, e_goal, "Vissen", "vriendschap", ids[1]));
	OK(edit(&n, e_status, "Vissen", "bezig", ids[2]));
	xfer(&n, &k);
	OK(edit(&k, e_status, "Vissen", "bereikt", ids[3]));
	take_raw(&c, ids[0], &late[0]);
	take_raw(&n, ids[1], &late[1]);
	take_raw(&n, ids[2], &late[2]);
	take_raw(&k, ids[3], &late[3]);

	/* every order of the four, each to a fresh replica holding the base */
	for (;;) {
		node r;
		char h[65];
		node_init(&r, "fresh");
		xfer(&base, &r);
		for (int i = 0; i < 4; i++)
			deliver(r.plan, &late[perm[i]]);
		expect(&r, n0, 1, NULL);
		expect(&r, ids[0], 1, NULL);
		expect(&r, ids[1], 0, "the member was revoked by change");
		expect(&r, ids[2], 0, "the member was revoked");
		expect(&r, ids[3], 0, "not in this change's causal past");
		hash_of(&r, h);
		if (!h0[0])
			snprintf(h0, sizeof(h0), "%s", h);
		assert_string_equal(h, h0);
		{
			samen_check_result cr;
			OK(samen_plan_check(r.plan, &cr, h));
			assert_string_equal(h, h0);
		}
		node_free(&r);
		orders++;
		if (!next_perm(perm, 4))
			break;
	}
	assert_int_equal(orders, 24);
	/* and the devices that took part, once they hold everything */
	{
		node *all[3] = {&c, &k, &n};
		char h[65];
		sync_all(all, 3);
		for (int i = 0; i < 3; i++) {
			hash_of(all[i], h);
			assert_string_equal(h, h0);
		}
	}
	for (int i = 0; i < 4; i++)
		free(late[i].body);
	node_free(&c);
	node_free(&k);
	node_free(&n);
	node_free(&base);
}

/* ---- equivocation: one device, two changes with one number ---------------- */

/* A copy of a device's store (a restored backup): the same key. */
static void clone_node(node *from, node *to, const char *name)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	char cmd[9000];
	memset(to, 0, sizeof(*to));
	samen_plan_free(from->plan);
	from->plan = NULL;
	to->dir = tu_mkdtemp("clone");
	assert_non_null(to->dir);
	snprintf(cmd, sizeof(cmd), "cp -a '%s/.' '%s/'", from->dir, to->dir);
	assert_int_equal(system(cmd), 0);
	o.path = to->dir;
	o.device_name = name;
	OK(samen_store_open(&to->store, &o));
	snprintf(to->key, sizeof(to->key), "%s", samen_store_device_key(to->store));
	assert_string_equal(to->key, from->key);
	OK(samen_plan_open(&from->plan, from->store, NULL));
	OK(samen_plan_open(&to->plan, to->store, NULL));
}

static void test_equivocation_voids_the_device_from_the_fork_in_every_order(void **state)
{
	node c, k, n, nb, base;
	char n0[65], ids[5][65], h0[65] = "", h[65];
	raw late[5];
	int perm[5] = {0, 1, 2, 3, 4}, orders = 0;
	(void)state;
	three_members(&c, &k, &n, &base, n0); /* n0: before the fork, stays */
	/* Kees's store is restored from a backup on another computer: both
	 * sign their next change with the same number */
	clone_node(&n, &nb, "Kees (backup)");
	OK(edit(&n, e_status, "Werk vinden", "bereikt", ids[0]));
	OK(edit(&nb, e_status, "Werk vinden", "gestopt", ids[1]));
	OK(edit(&nb, e_goal, "Fietsen", "vriendschap", ids[2]));
	/* Marieke builds on the first, Joke on the second */
	xfer(&n, &k);
	OK(edit(&k, e_goal, "Sporten", "familie", ids[3]));
	xfer(&nb, &c);
	OK(edit(&c, e_goal, "Koken", "woonplek", ids[4]));
	for (int i = 0; i < 5; i++)
		take_raw(i == 0 ? &n : i < 3 ? &nb : i == 3 ? &k : &c, ids[i], &late[i]);

	/* every third of the 120 orders of the five (each kind of order: either
	 * branch first, what was built on a branch before it), each to a fresh
	 * replica holding the base */
	for (int index = 0;; index++) {
		node r;
		if (index % 3 != 0) {
			if (!next_perm(perm, 5))
				break;
			continue;
		}
		node_init(&r, "fresh");
		xfer(&base, &r);
		for (int i = 0; i < 5; i++)
			deliver(r.plan, &late[perm[i]]);
		expect(&r, n0, 1, NULL);
		expect(&r, ids[0], 0, "signed two different changes numbered 2 (equivocation)");
		expect(&r, ids[1], 0, "signed two different changes numbered 2 (equivocation)");
		expect(&r, ids[2], 0, "equivocation");
		expect(&r, ids[3], 1, NULL); /* what others built on either branch stands */
		expect(&r, ids[4], 1, NULL);
		hash_of(&r, h);
		if (!h0[0])
			snprintf(h0, sizeof(h0), "%s", h);
		if (strcmp(h, h0) != 0)
			fail_msg("order %d %d %d %d %d: state %.16s, first order %.16s", perm[0], perm[1], perm[2], perm[3],
			         perm[4], h, h0);
		{
			samen_check_result cr;
			samen_status st;
			OK(samen_plan_check(r.plan, &cr, h)); /* both branches are in git, under refs */
			assert_string_equal(h, h0);
			OK(samen_plan_status(r.plan, &st));
			assert_int_equal(st.evidence, 1);
		}
		node_free(&r);
		orders++;
		if (!next_perm(perm, 5))
			break;
	}
	assert_int_equal(orders, 40);

	/* a bundle made --since the vector of a replica holding one branch
	 * carries the other one too (a version vector cannot tell them apart) */
	{
		node full, one;
		char path[4200], *vv = NULL;
		samen_bundle_stats bs, im;
		node_init(&full, "full");
		node_init(&one, "one branch");
		xfer(&base, &full);
		xfer(&base, &one);
		for (int i = 0; i < 5; i++)
			deliver(full.plan, &late[i]);
		deliver(one.plan, &late[0]);
		OK(samen_plan_version_vector(one.plan, &vv));
		snprintf(path, sizeof(path), "%s/since.bundle", scratch);
		OK(samen_bundle_create(full.plan, path, vv, &bs));
		/* B, B2, what Marieke and Joke built, and A again: from the fork on
		 * all of the device's changes go */
		assert_int_equal(bs.changes, 5);
		samen_plan_free(one.plan);
		one.plan = NULL;
		OK(samen_bundle_import(one.store, path, &im));
		assert_int_equal(im.pending, 0);
		OK(samen_plan_open(&one.plan, one.store, NULL));
		hash_of(&one, h);
		assert_string_equal(h, h0);
		unlink(path);
		free(vv);
		node_free(&full);
		node_free(&one);
	}

	/* the devices that took part agree once they hold everything; the
	 * goal keeps the status from before the fork */
	{
		node *all[4] = {&c, &k, &n, &nb};
		char status[64] = "";
		sync_all(all, 4);
		for (int i = 0; i < 4; i++) {
			hash_of(all[i], h);
			assert_string_equal(h, h0);
		}
		sqlite3_stmt *q = NULL;
		assert_int_equal(sqlite3_prepare_v2(replica_db(c.plan->rep),
		                                    "SELECT status FROM goals WHERE title = 'Werk vinden'", -1, &q, NULL),
		                 SQLITE_OK);
		if (sqlite3_step(q) == SQLITE_ROW)
			snprintf(status, sizeof(status), "%s", (const char *)sqlite3_column_text(q, 0));
		sqlite3_finalize(q);
		assert_string_equal(status, "bezig");
	}
	/* Kees's key is spent: both his devices refuse to write, saying why */
	for (node *d = &n; d; d = d == &n ? &nb : NULL) {
		samen_edit *e = NULL;
		samen_error_clear();
		assert_int_equal(samen_edit_begin(&e, d->plan), SAMEN_EPERM);
		assert_non_null(strstr(samen_error_last(), "signed two different changes numbered 2"));
		assert_non_null(strstr(samen_error_last(), "samen device link"));
		samen_edit_free(e);
	}
	for (int i = 0; i < 5; i++)
		free(late[i].body);
	node_free(&c);
	node_free(&k);
	node_free(&n);
	node_free(&nb);
	node_free(&base);
}

/* ---- random grants, revocations, links, unlinks and edits ------------------ */

#define RD 4 /* devices that act */

static void random_step(node *d, node *spare, int who, rng *r, int *ngoals)
{
	char id[65], title[32], val[2] = {0, 0};
	const char *statuses[] = {"open", "bezig", "bereikt"};
	const char *areas[] = {"werk", "vriendschap", "familie"};
	int pick = (int)below(r, 10);
	node *target = &d[1 + below(r, RD - 1)];
	(void)val;
	if (pick < 3 || *ngoals == 0) {
		snprintf(title, sizeof(title), "doel %d.%d", who, (*ngoals)++);
		edit(&d[who], e_goal, title, areas[below(r, 3)], id);
	} else if (pick < 6) {
		snprintf(title, sizeof(title), "doel %d.%d", who, (int)below(r, (uint32_t)*ngoals));
		samen_edit *e = NULL;
		OK(samen_edit_begin(&e, d[who].plan));
		/* the goal may not exist here yet: then nothing happens */
		if (samen_edit_set_in(e, "goal", title, "status", statuses[below(r, 3)]) == 0)
			samen_edit_commit(e, id);
		samen_edit_free(e);
	} else if (pick == 6) {
		static const char *const roles[] = {"coordinator", "professional", "network", "observer"};
		grant g = {target->key, "lid", roles[below(r, 4)], NULL};
		if (strcmp(g.role, "professional") == 0)
			g.areas = areas[below(r, 3)];
		samen_edit *e = NULL;
		OK(samen_edit_begin(&e, d[who].plan));
		if (e_add(e, &g, NULL) == 0)
			samen_edit_commit(e, id);
		samen_edit_free(e);
	} else if (pick == 7) {
		samen_edit *e = NULL;
		OK(samen_edit_begin(&e, d[who].plan));
		if (samen_edit_member_revoke(e, target->key) == 0)
			samen_edit_commit(e, id);
		samen_edit_free(e);
	} else if (pick == 8) {
		int consent = (int)below(r, 2);
		samen_edit *e = NULL;
		OK(samen_edit_begin(&e, d[who].plan));
		if (samen_edit_member_approve(e, target->key, consent) == 0)
			samen_edit_commit(e, id);
		samen_edit_free(e);
	} else {
		samen_edit *e = NULL;
		OK(samen_edit_begin(&e, d[who].plan));
		if (below(r, 2) ? samen_edit_device_link(e, d[who].key, spare[who].key) == 0
		                : samen_edit_device_unlink(e, target->key) == 0)
			samen_edit_commit(e, id);
		samen_edit_free(e);
	}
}

static void collect(node *n, raw **pool, size_t *npool, size_t *cap)
{
	sqlite3_stmt *s = NULL;
	assert_int_equal(sqlite3_prepare_v2(replica_db(n->plan->rep), "SELECT hex(id) FROM changes", -1, &s, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(s) == SQLITE_ROW) {
		char idhex[65];
		size_t k;
		snprintf(idhex, sizeof(idhex), "%s", (const char *)sqlite3_column_text(s, 0));
		for (char *q = idhex; *q; q++)
			*q = (char)(*q >= 'A' && *q <= 'F' ? *q - 'A' + 'a' : *q);
		for (k = 0; k < *npool; k++)
			if (strcmp((*pool)[k].id, idhex) == 0)
				break;
		if (k < *npool)
			continue;
		if (*npool == *cap) {
			*cap = *cap ? *cap * 2 : 64;
			*pool = realloc(*pool, *cap * sizeof(**pool));
			assert_non_null(*pool);
		}
		take_raw(n, idhex, &(*pool)[(*npool)++]);
	}
	sqlite3_finalize(s);
}

/* The rule itself, checked against the final replica without the code that
 * enforces it: for every revocation or unlink that took effect, every change
 * by the target's devices that it had not seen is rejected; and no accepted
 * change comes from a device that no grant or link ever named. */
static int check_revocations(node *n)
{
	rights_log L;
	sqlite3_stmt *q = NULL;
	int checked = 0;
	OK(replica_rights_load(n->plan->rep, &L));
	assert_int_equal(sqlite3_prepare_v2(replica_db(n->plan->rep),
	                                    "SELECT c.devno, c.seq, c.verdict, d.key FROM changes c"
	                                    " JOIN devs d ON d.devno = c.devno", -1, &q, NULL), SQLITE_OK);
	while (sqlite3_step(q) == SQLITE_ROW) {
		uint32_t devno = (uint32_t)sqlite3_column_int64(q, 0);
		uint64_t seq = (uint64_t)sqlite3_column_int64(q, 1);
		int v = sqlite3_column_int(q, 2);
		const uint8_t *key = sqlite3_column_blob(q, 3);
		bool named = L.has_genesis && memcmp(key, L.creator, 32) == 0;
		for (size_t i = 0; i < L.n; i++) {
			const right_op *o = &L.ops[i];
			bool targets = false;
			if (o->kind == SAMEN_OP_MEMBER_ADD && memcmp(o->key, key, 32) == 0)
				named = true;
			if (o->kind == SAMEN_OP_LINK && memcmp(o->key2, key, 32) == 0)
				named = true;
			if (!o->effective)
				continue;
			if (o->kind == SAMEN_OP_UNLINK)
				targets = memcmp(o->key, key, 32) == 0;
			if (o->kind == SAMEN_OP_REVOKE)
				for (size_t k = 0; k < L.n && !targets; k++)
					targets = (L.ops[k].kind == SAMEN_OP_MEMBER_ADD && memcmp(L.ops[k].key, o->key, 32) == 0 &&
					           memcmp(L.ops[k].key, key, 32) == 0) ||
					          (L.ops[k].kind == SAMEN_OP_LINK && memcmp(L.ops[k].key, o->key, 32) == 0 &&
					           memcmp(L.ops[k].key2, key, 32) == 0);
			if (targets && !(devno <= o->vvlen && o->vv[devno - 1] >= seq)) {
				assert_int_equal(v, 0);
				checked++;
			}
		}
		if (v == 1)
			assert_true(named);
	}
	sqlite3_finalize(q);
	rights_free(&L);
	return checked;
}

static void run_rights_seed(uint64_t seed)
{
	node d[RD], spare[RD], obs;
	rng r = {seed * 0x9E3779B97F4A7C15ull + 77};
	raw *pool = NULL;
	size_t npool = 0, cap = 0;
	char id[65], h0[65] = "", h[65];
	int ngoals = 0;

	for (int i = 0; i < RD; i++) {
		char name[16];
		snprintf(name, sizeof(name), "dev%d", i);
		node_init(&d[i], name);
		node_init(&spare[i], "spare");
	}
	OK(samen_plan_create_as(&d[0].plan, d[0].store, "Joke", "nl", below(&r, 2) ? "client" : "coordinator"));
	for (int i = 1; i < RD; i++) {
		grant g = {d[i].key, "lid", i == 1 ? "coordinator" : "network", NULL};
		OK(edit(&d[0], e_add, &g, NULL, id));
	}
	for (int i = 1; i < RD; i++)
		xfer(&d[0], &d[i]);
	for (int round = 0; round < 10; round++) {
		for (int i = 0; i < RD; i++)
			if (below(&r, 3))
				random_step(d, spare, i, &r, &ngoals);
		for (int x = 0; x < 2; x++) {
			int a = (int)below(&r, RD), b = (int)below(&r, RD);
			if (a != b)
				xfer(&d[a], &d[b]);
		}
	}
	for (int i = 0; i < RD; i++)
		collect(&d[i], &pool, &npool, &cap);
	/* the devices, once they hold everything */
	{
		node *all[RD];
		for (int i = 0; i < RD; i++)
			all[i] = &d[i];
		sync_all(all, RD);
		hash_of(&d[0], h0);
		{
			sqlite3_stmt *q = NULL;
			sqlite3_prepare_v2(replica_db(d[0].plan->rep),
			                   "SELECT count(*), sum(verdict = 0), sum(reason LIKE '%had not seen%'),"
			                   " (SELECT count(*) FROM rights) FROM changes", -1, &q, NULL);
			if (sqlite3_step(q) == SQLITE_ROW)
				printf("  seed %llu: %d changes, %d rejected, %d by a revocation or unlink they had not seen,"
				       " %d rights ops\n", (unsigned long long)seed, sqlite3_column_int(q, 0),
				       sqlite3_column_int(q, 1), sqlite3_column_int(q, 2), sqlite3_column_int(q, 3));
			sqlite3_finalize(q);
		}
		for (int i = 1; i < RD; i++) {
			hash_of(&d[i], h);
			assert_string_equal(h, h0);
		}
		printf("  %d changes rejected by the revocation rule, checked\n", check_revocations(&d[0]));
	}
	/* fresh replicas fed in random orders, one change at a time */
	for (int o = 0; o < 3; o++) {
		size_t *idx = malloc(npool * sizeof(*idx));
		assert_non_null(idx);
		for (size_t k = 0; k < npool; k++)
			idx[k] = k;
		for (size_t k = npool; k > 1; k--) {
			size_t j = below(&r, (uint32_t)k), t = idx[k - 1];
			idx[k - 1] = idx[j];
			idx[j] = t;
		}
		node_init(&obs, "observer");
		OK(plan_open_dir(&obs.plan, obs.store, d[0].plan->id, true));
		for (size_t k = 0; k < npool; k++)
			deliver(obs.plan, &pool[idx[k]]);
		check_revocations(&obs);
		hash_of(&obs, h);
		if (strcmp(h, h0) != 0)
			fail_msg("seed %llu: observer %d disagrees", (unsigned long long)seed, o);
		for (size_t k = 0; k < npool; k++) {
			char r1[600], r2[600];
			int v1 = verdict(&obs, pool[k].id, r1, sizeof(r1)), v2 = verdict(&d[0], pool[k].id, r2, sizeof(r2));
			assert_int_equal(v1, v2);
		}
		{
			samen_check_result cr;
			OK(samen_plan_check(obs.plan, &cr, h));
			assert_string_equal(h, h0);
		}
		node_free(&obs);
		free(idx);
	}
	for (size_t k = 0; k < npool; k++)
		free(pool[k].body);
	free(pool);
	for (int i = 0; i < RD; i++) {
		node_free(&d[i]);
		node_free(&spare[i]);
	}
}

static void test_random_grants_and_revocations_converge(void **state)
{
	const char *one = getenv("SAMEN_SEED"), *count = getenv("SAMEN_SEED_COUNT");
	uint64_t n = count ? strtoull(count, NULL, 10) : 3;
	(void)state;
	if (one) {
		run_rights_seed(strtoull(one, NULL, 10));
		return;
	}
	for (uint64_t s = 1; s <= n; s++) {
		printf("rights seed %llu\n", (unsigned long long)s);
		run_rights_seed(s);
	}
}

static int setup(void **state)
{
	(void)state;
	scratch = tu_mkdtemp("rights-scratch");
	return scratch ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmtree(scratch);
	free(scratch);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_role_may_do_what_the_table_says_on_every_replica),
		cmocka_unit_test(test_revocation_concurrent_with_edits_gives_the_same_verdicts_in_every_order),
		cmocka_unit_test(test_random_grants_and_revocations_converge),
		cmocka_unit_test(test_equivocation_voids_the_device_from_the_fork_in_every_order),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
