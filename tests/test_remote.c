/*
 * test_remote.c - git remotes through the public API (samen/remote.h), with
 * remotes forged by libgit2 directly, never through the code under test.
 *
 * Anna creates a plan and adds Bram; both have a store. The remotes are
 * bare repositories in the same temporary directory, reached by path (the
 * scenario scripts cover git daemon).
 */
#include "testutil.h"

#include "samen/samen.h"
#include "sync/history.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	char *dir;
	samen_store *a, *b;
	char plan[33];
	char goal[17];
	char good[4200], evil[4200]; /* bare repositories */
	samen_remote_stats st;
} fixture;

static samen_plan *open_plan(samen_store *s)
{
	samen_plan *p = NULL;
	if (samen_plan_open(&p, s, NULL) != 0)
		fail_msg("cannot open the plan in %s: %s", samen_store_path(s), samen_error_last());
	return p;
}

static void set_field(samen_store *s, const char *goal, const char *field, const char *value)
{
	samen_plan *p = open_plan(s);
	samen_edit *e;
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_set(e, goal, field, value), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
}

static void state_hash(samen_store *s, char out[65])
{
	samen_plan *p = open_plan(s);
	assert_int_equal(samen_plan_state_hash(p, out), 0);
	samen_plan_free(p);
}

static int pull(samen_store *s, const char *remote, samen_remote_stats *st)
{
	samen_plan *p = open_plan(s);
	int rc = samen_remote_pull(p, remote, st);
	samen_plan_free(p);
	return rc;
}

static int push(samen_store *s, const char *remote, samen_remote_stats *st)
{
	samen_plan *p = open_plan(s);
	int rc = samen_remote_push(p, remote, st);
	samen_plan_free(p);
	return rc;
}

static void add_remote(samen_store *s, const char *name, const char *url)
{
	samen_plan *p = open_plan(s);
	if (samen_remote_add(p, name, url) != 0)
		fail_msg("remote add %s: %s", name, samen_error_last());
	samen_plan_free(p);
}

static void bare_repo(const char *path)
{
	git_repository *r = NULL;
	assert_int_equal(git_repository_init(&r, path, 1), 0);
	git_repository_free(r);
}

static void history_path(samen_store *s, const char *plan, char *out, size_t cap)
{
	snprintf(out, cap, "%s/plans/%s/history.git", samen_store_path(s), plan);
}

/* Anna's plan with Bram as a member and one goal, on the good remote;
 * Bram has cloned it. */
static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	samen_plan *p;
	samen_edit *e;

	assert_non_null(f);
	f->dir = tu_mkdtemp("remote");
	assert_non_null(f->dir);
	f->a = tu_open_store(f->dir, "a", "Anna");
	f->b = tu_open_store(f->dir, "b", "Bram");
	snprintf(f->good, sizeof(f->good), "%s/good.git", f->dir);
	snprintf(f->evil, sizeof(f->evil), "%s/evil.git", f->dir);
	bare_repo(f->good);
	bare_repo(f->evil);

	assert_int_equal(samen_plan_create(&p, f->a, "Jan", "nl"), 0);
	snprintf(f->plan, sizeof(f->plan), "%s", samen_plan_id(p));
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_member_add(e, samen_store_device_key(f->b), "Bram"), 0);
	assert_int_equal(samen_edit_create(e, "goal", f->goal), 0);
	assert_int_equal(samen_edit_set(e, f->goal, "title", "Werk vinden"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	assert_int_equal(samen_remote_add(p, "good", f->good), 0);
	assert_int_equal(samen_remote_add(p, "evil", f->evil), 0);
	assert_int_equal(samen_remote_push(p, "good", &f->st), 0);
	assert_int_equal(f->st.pushed, 1);
	samen_plan_free(p);

	if (samen_plan_clone(NULL, f->b, f->good, NULL, "good", &f->st) != 0)
		fail_msg("clone: %s", samen_error_last());
	assert_int_equal(f->st.applied, 2);
	add_remote(f->b, "evil", f->evil);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	samen_store_free(f->a);
	samen_store_free(f->b);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_hashed_commit_id_equals_the_written_one(void **state)
{
	fixture *f = *state;
	char hpath[4300], dir[4300];
	samen_history *h = NULL;
	uint8_t change[300], sig[64];
	git_oid parent, written, hashed, in_batch;
	history_entry e;

	(void)f;
	snprintf(dir, sizeof(dir), "%s/h.git", f->dir);
	snprintf(hpath, sizeof(hpath), "%s", dir);
	assert_int_equal(history_open(&h, hpath, 1), 0);
	for (size_t i = 0; i < sizeof(change); i++)
		change[i] = (uint8_t)(i * 7);
	memset(sig, 0x5a, sizeof(sig));
	memset(&e, 0, sizeof(e));
	e.change = change;
	e.change_len = sizeof(change);
	e.sig = sig;
	e.author_name = "Anna <with> odd\nname";
	e.author_email = "0123456789abcdef";
	e.time = -5; /* clamped the same way */
	e.message = "Anna: summary\n\nSamen-Change: 00\n";
	assert_int_equal(history_write_change(h, &parent, &e), 0);
	assert_int_equal(history_hash_change(&hashed, &e), 0);
	assert_true(git_oid_equal(&parent, &hashed));

	e.parents = &parent;
	e.nparents = 1;
	e.time = INT64_C(1) << 40;
	assert_int_equal(history_hash_change(&hashed, &e), 0);
	assert_int_equal(history_batch_begin(h), 0);
	assert_int_equal(history_write_change(h, &in_batch, &e), 0);
	assert_int_equal(history_batch_commit(h), 0);
	assert_int_equal(history_write_change(h, &written, &e), 0);
	assert_true(git_oid_equal(&in_batch, &hashed));
	assert_true(git_oid_equal(&written, &hashed));
	history_free(h);
}

static void test_clone_sync_and_push_converge(void **state)
{
	fixture *f = *state;
	char ha[65], hb[65];

	set_field(f->a, f->goal, "status", "bezig");
	set_field(f->b, f->goal, "status", "bereikt");
	assert_int_equal(push(f->a, "good", &f->st), 0);
	assert_int_equal(f->st.pushed, 1);
	assert_int_equal(pull(f->b, "good", &f->st), 0);
	assert_int_equal(f->st.applied, 1);
	assert_int_equal(f->st.refused, 0);
	assert_int_equal(push(f->b, "good", &f->st), 0);
	assert_int_equal(f->st.pushed, 1);     /* Bram's own ref */
	assert_int_equal(f->st.up_to_date, 1); /* Anna's: the remote has it */
	assert_int_equal(pull(f->a, "good", &f->st), 0);
	assert_int_equal(f->st.applied, 1);
	state_hash(f->a, ha);
	state_hash(f->b, hb);
	assert_string_equal(ha, hb);
	/* a second pull brings nothing and walks nothing */
	assert_int_equal(pull(f->a, "good", &f->st), 0);
	assert_int_equal(f->st.applied, 0);
	assert_int_equal(f->st.examined, 0);
}

/* The genuine commit of Anna's newest change, with one more parent: every
 * byte of the change and signature is genuine, the commit is not. */
static void test_commit_with_an_extra_parent_is_refused_and_the_genuine_one_adopted(void **state)
{
	fixture *f = *state;
	char apath[4300], ref[256], before[65], after[65];
	git_repository *ahist = NULL, *evil = NULL;
	git_remote *r = NULL;
	git_commit *genuine = NULL, *prev = NULL;
	git_tree *tree = NULL;
	git_oid head, forged;
	const git_commit *parents[2];
	char refspec[512];
	char *specs[1] = {refspec};
	git_strarray arr = {specs, 1};

	set_field(f->a, f->goal, "status", "bezig");
	set_field(f->a, f->goal, "priority", "2");
	history_path(f->a, f->plan, apath, sizeof(apath));
	assert_int_equal(git_repository_open_bare(&ahist, apath), 0);
	snprintf(ref, sizeof(ref), "refs/samen/devices/%s", samen_store_device_key(f->a));
	assert_int_equal(git_reference_name_to_id(&head, ahist, ref), 0);
	git_repository_free(ahist);

	/* the attacker copies Anna's history into the evil remote */
	assert_int_equal(git_repository_open_bare(&evil, f->evil), 0);
	{
		/* not git_remote_create_anonymous(): its url.*.insteadOf lookup
		 * leaks in libgit2 1.5 (see sync/remote.c) */
		git_remote_create_options o;
		git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
		o.repository = evil;
		o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
		assert_int_equal(git_remote_create_with_opts(&r, apath, &o), 0);
	}
	snprintf(refspec, sizeof(refspec), "+%s:refs/tmp/anna", ref);
	assert_int_equal(git_remote_fetch(r, &arr, NULL, NULL), 0);
	git_remote_free(r);
	assert_int_equal(git_commit_lookup(&genuine, evil, &head), 0);
	assert_int_equal(git_commit_parent(&prev, genuine, 0), 0);
	assert_int_equal(git_commit_tree(&tree, genuine), 0);
	parents[0] = prev;
	parents[1] = prev; /* a duplicate parent: git accepts it */
	assert_int_equal(git_commit_create(&forged, evil, NULL, git_commit_author(genuine), git_commit_committer(genuine),
	                                   NULL, git_commit_message(genuine), tree, 2, parents),
	                 0);
	snprintf(ref, sizeof(ref), "refs/samen/plans/%s/devices/%s", f->plan, samen_store_device_key(f->a));
	{
		git_reference *nr = NULL;
		assert_int_equal(git_reference_create(&nr, evil, ref, &forged, 1, NULL), 0);
		git_reference_free(nr);
	}
	git_tree_free(tree);
	git_commit_free(prev);
	git_commit_free(genuine);
	git_repository_free(evil);

	state_hash(f->b, before);
	assert_int_equal(pull(f->b, "evil", &f->st), 0);
	assert_int_equal(f->st.refused, 1);
	assert_int_equal(f->st.applied, 1); /* the genuine change below it */
	assert_string_equal(f->st.problems[0].ref, ref);
	assert_non_null(strstr(f->st.problems[0].reason, "not the commit Samen builds"));
	assert_int_equal(strncmp(f->st.problems[0].commit, git_oid_tostr_s(&forged), 40), 0);
	state_hash(f->b, after);
	assert_string_not_equal(before, after);

	/* the quarantine does not keep the refused ref */
	{
		char bpath[4300], qref[256];
		git_repository *bh = NULL;
		git_oid q;
		history_path(f->b, f->plan, bpath, sizeof(bpath));
		assert_int_equal(git_repository_open_bare(&bh, bpath), 0);
		snprintf(qref, sizeof(qref), "refs/samen/quarantine/evil/%s", samen_store_device_key(f->a));
		assert_int_equal(git_reference_name_to_id(&q, bh, qref), GIT_ENOTFOUND);
		git_repository_free(bh);
	}

	/* the genuine commit from the good remote is adopted */
	assert_int_equal(push(f->a, "good", &f->st), 0);
	assert_int_equal(pull(f->b, "good", &f->st), 0);
	assert_int_equal(f->st.applied, 1);
	assert_int_equal(f->st.refused, 0);
	state_hash(f->a, before);
	state_hash(f->b, after);
	assert_string_equal(before, after);
}

/* A crash between the fetch and the verification leaves quarantine refs
 * behind; a ref at a blob there would make libgit2's negotiation fail on
 * every later fetch. */
static void test_leftover_quarantine_ref_at_a_blob_does_not_block_the_next_pull(void **state)
{
	fixture *f = *state;
	char bpath[4300], qref[256];
	git_repository *bh = NULL;
	git_reference *nr = NULL;
	git_oid blob, q;

	history_path(f->b, f->plan, bpath, sizeof(bpath));
	assert_int_equal(git_repository_open_bare(&bh, bpath), 0);
	assert_int_equal(git_blob_create_from_buffer(&blob, bh, "junk", 4), 0);
	snprintf(qref, sizeof(qref), "refs/samen/quarantine/good/%064d", 7);
	assert_int_equal(git_reference_create(&nr, bh, qref, &blob, 1, NULL), 0);
	git_reference_free(nr);

	set_field(f->a, f->goal, "status", "bezig");
	assert_int_equal(push(f->a, "good", &f->st), 0);
	if (pull(f->b, "good", &f->st) != 0)
		fail_msg("pull: %s", samen_error_last());
	assert_int_equal(f->st.applied, 1);
	assert_int_equal(f->st.refused, 0);
	assert_int_equal(git_reference_name_to_id(&q, bh, qref), GIT_ENOTFOUND);
	git_repository_free(bh);
}

static void test_remote_names_and_missing_remotes_are_errors(void **state)
{
	fixture *f = *state;
	samen_plan *p = open_plan(f->a);
	static const char *const bad[] = {"", ".hidden", "-x", "a..b", "x.lock", "a/b", "a b", "ä",
	                                  "0123456789012345678901234567890123456789012345678901234567890123456789"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(samen_remote_add(p, bad[i], f->good), SAMEN_EINVAL);
	assert_int_equal(samen_remote_add(p, "good", f->good), SAMEN_EEXISTS);
	assert_int_equal(samen_remote_pull(p, "nowhere", &f->st), SAMEN_ENOTFOUND);
	assert_int_equal(samen_remote_push(p, "nowhere", &f->st), SAMEN_ENOTFOUND);
	assert_int_equal(samen_remote_remove(p, "evil"), 0);
	assert_int_equal(samen_remote_remove(p, "evil"), SAMEN_ENOTFOUND);
	samen_plan_free(p);
}

static int count_remote(const samen_remote_info *r, void *payload)
{
	int *n = payload;
	(void)r;
	(*n)++;
	return 0;
}

static void test_clone_of_an_empty_remote_leaves_nothing_behind(void **state)
{
	fixture *f = *state;
	samen_store *c = tu_open_store(f->dir, "c", "Carla");
	samen_plan_info *plans = NULL;
	size_t n = 99;
	int remotes = 0;
	samen_plan *p;

	assert_int_equal(samen_plan_clone(NULL, c, f->evil, NULL, NULL, &f->st), SAMEN_ENOTFOUND);
	assert_int_equal(samen_store_plans(c, &plans, &n), 0);
	assert_int_equal(n, 0);
	free(plans);
	/* a plan prefix that does not match */
	assert_int_equal(samen_plan_clone(NULL, c, f->good, "ffff", NULL, &f->st), SAMEN_ENOTFOUND);
	/* the real one, with the open plan handed back */
	assert_int_equal(samen_plan_clone(&p, c, f->good, f->plan, "relay", &f->st), 0);
	assert_int_equal(f->st.cloned, 1);
	assert_string_equal(samen_plan_id(p), f->plan);
	assert_int_equal(samen_remote_list(p, count_remote, &remotes), 0);
	assert_int_equal(remotes, 1);
	samen_plan_free(p);
	samen_store_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hashed_commit_id_equals_the_written_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_sync_and_push_converge, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_with_an_extra_parent_is_refused_and_the_genuine_one_adopted,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftover_quarantine_ref_at_a_blob_does_not_block_the_next_pull, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_remote_names_and_missing_remotes_are_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_clone_of_an_empty_remote_leaves_nothing_behind, setup, teardown),
	};
	int failed;
	git_libgit2_init();
	if ((!getenv("TMPDIR") || !*getenv("TMPDIR")) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return failed;
}
