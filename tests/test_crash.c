/*
 * test_crash.c - crash safety: a process killed at any moment leaves a plan
 * that opens, holds every change it reported as committed, and agrees with
 * its own history.
 *
 * A child process commits changes in a loop and, after each successful
 * samen_edit_commit(), appends the change id to a "done" file (write +
 * fsync). The parent kills it with SIGKILL after a random delay, reopens
 * the plan (recovery runs on open) and checks:
 *   - every id in the done file is in the plan (samen_log);
 *   - samen_plan_check() passes: history and replica agree;
 *   - the state hash equals that of a rebuild, from the history, of a copy
 *     of the store.
 * Some iterations kill the child while it creates a new store and plan, or
 * while it imports a bigger bundle whose second half arrived first (so the
 * import also applies changes that were pending).
 *
 * SAMEN_SEED=N picks the seed (default 1), SAMEN_CRASH_ITERATIONS=K the
 * number of kills (default 30); the loop also stops after 60 s.
 */
#include "testutil.h"

#include "samen/samen.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TIME_LIMIT_S 60
#define CHILD_LIMIT_MS 3000


static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_us(long us)
{
	struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void shell(const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 1, 2)))
#endif
	;

static void shell(const char *fmt, ...)
{
	char cmd[9000];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static int store_open(samen_store **out, const char *path, int create)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	o.path = path;
	o.create = create;
	o.device_name = "crash";
	return samen_store_open(out, &o);
}

/* ---- the child -------------------------------------------------------------- */

/* Everything the child does is reported on stderr and by its exit code;
 * it never returns into cmocka. */
#define CHILD_CHECK(x)                                                                           \
	do {                                                                                     \
		int rc_ = (x);                                                                   \
		if (rc_ != 0) {                                                                  \
			fprintf(stderr, "child: %s = %d: %s\n", #x, rc_, samen_error_last());    \
			_exit(3);                                                                \
		}                                                                                \
	} while (0)

static void done_line(int fd, const char *line)
{
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len || fsync(fd) != 0) {
		fprintf(stderr, "child: cannot write the done file: %s\n", strerror(errno));
		_exit(4);
	}
}

typedef struct {
	char uids[64][17];
	int n;
} uid_list;

static int collect_uid(const samen_entity_view *e, void *payload)
{
	uid_list *l = payload;
	if (l->n < 64)
		snprintf(l->uids[l->n++], 17, "%s", e->uid);
	return 0;
}

typedef enum { JOB_COMMITS, JOB_CREATE, JOB_IMPORT } job_kind;

typedef struct {
	job_kind kind;
	const char *store;     /* store directory */
	const char *done;      /* done file */
	const char *bundle_h;  /* JOB_IMPORT: second half first, */
	const char *bundle_f;  /* then everything */
	unsigned max_commits;  /* then stop (calibration runs) */
	uint64_t seed;
} job;

/* The done file: one line per milestone, with the child's clock in ms:
 *   P <plan id> <ms>   the plan was created (JOB_CREATE)
 *   H <ms>, F <ms>     the half and the full bundle were imported
 *   R <ms>             the plan is open, commits start
 *   C <change id>      samen_edit_commit() returned this id */
static void child_main(const job *j)
{
	samen_store *st = NULL;
	samen_plan *p = NULL;
	samen_bundle_stats bs;
	uid_list goals;
	char line[160], id[65];
	double t0 = now_ms();
	rng r = {j->seed * 0x9E3779B97F4A7C15ull + 7};
	int fd = open(j->done, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	if (fd < 0)
		_exit(5);
	CHILD_CHECK(store_open(&st, j->store, j->kind == JOB_CREATE));
	if (j->kind == JOB_CREATE) {
		CHILD_CHECK(samen_plan_create(&p, st, "Meneer de Vries", "nl"));
		snprintf(line, sizeof(line), "P %s %.0f\n", samen_plan_id(p), now_ms() - t0);
		done_line(fd, line);
	} else if (j->kind == JOB_IMPORT) {
		CHILD_CHECK(samen_bundle_import(st, j->bundle_h, &bs));
		snprintf(line, sizeof(line), "H %.0f\n", now_ms() - t0);
		done_line(fd, line);
		CHILD_CHECK(samen_bundle_import(st, j->bundle_f, &bs));
		if (bs.pending != 0) {
			fprintf(stderr, "child: %llu changes still pending after the full bundle\n",
			        (unsigned long long)bs.pending);
			_exit(6);
		}
		snprintf(line, sizeof(line), "F %.0f\n", now_ms() - t0);
		done_line(fd, line);
	}
	if (!p)
		CHILD_CHECK(samen_plan_open(&p, st, NULL));
	memset(&goals, 0, sizeof(goals));
	CHILD_CHECK(samen_entity_list(p, "goal", collect_uid, &goals));
	snprintf(line, sizeof(line), "R %.0f\n", now_ms() - t0);
	done_line(fd, line);
	for (unsigned k = 0; k < j->max_commits && now_ms() - t0 < CHILD_LIMIT_MS; k++) {
		static const char *const statuses[] = {"open", "bezig", "bereikt", "bijgesteld", "gestopt"};
		samen_edit *e = NULL;
		char value[64];
		CHILD_CHECK(samen_edit_begin(&e, p));
		if (goals.n == 0 || below(&r, 5) == 0) {
			char uid[17];
			CHILD_CHECK(samen_edit_create(e, "goal", uid));
			snprintf(value, sizeof(value), "Doel %u", k);
			CHILD_CHECK(samen_edit_set(e, uid, "title", value));
			if (goals.n < 64)
				snprintf(goals.uids[goals.n++], 17, "%s", uid);
		} else if (k % 2) {
			CHILD_CHECK(samen_edit_set(e, goals.uids[below(&r, (uint32_t)goals.n)], "status", statuses[k % 5]));
		} else {
			snprintf(value, sizeof(value), "Titel %u", k);
			CHILD_CHECK(samen_edit_set(e, goals.uids[below(&r, (uint32_t)goals.n)], "title", value));
		}
		CHILD_CHECK(samen_edit_commit(e, id));
		samen_edit_free(e);
		snprintf(line, sizeof(line), "C %s\n", id);
		done_line(fd, line);
	}
	samen_plan_free(p);
	samen_store_free(st);
	close(fd);
	_exit(0);
}

/* Run job in a child and SIGKILL it after delay_us; returns 1 when the kill
 * landed, 0 when the child had finished on its own. delay_us < 0: let it
 * finish (calibration), killing it only after CHILD_LIMIT_MS * 10. */
static int run_and_kill(const job *j, long delay_us)
{
	int status = 0;
	pid_t pid, got = 0;
	double t0;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		child_main(j);
	if (delay_us >= 0) {
		sleep_us(delay_us);
	} else {
		for (t0 = now_ms(); now_ms() - t0 < CHILD_LIMIT_MS * 10.0; sleep_us(2000))
			if ((got = waitpid(pid, &status, WNOHANG)) != 0)
				break;
	}
	if (got == 0) {
		kill(pid, SIGKILL);
		while ((got = waitpid(pid, &status, 0)) < 0)
			assert_int_equal(errno, EINTR);
	}
	assert_int_equal(got, pid);
	if (WIFSIGNALED(status)) {
		assert_int_equal(WTERMSIG(status), SIGKILL);
		if (delay_us < 0)
			fail_msg("a calibration child did not finish within %d ms", CHILD_LIMIT_MS * 10);
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the child failed before it was killed (status %d)", status);
	return 0;
}

/* ---- the parent's checks -------------------------------------------------------- */

typedef struct {
	char (*ids)[65];
	size_t n, cap;
	int has_p, has_h, has_f, has_r;
	double ms_p, ms_h, ms_f, ms_r;
	char plan[33];
} done_file;

static void read_done(const char *path, done_file *d)
{
	size_t len = 0;
	uint8_t *buf = tu_read_file(path, &len);
	const char *p, *end;

	memset(d, 0, sizeof(*d));
	if (!buf)
		return;
	buf[len] = '\0';
	p = (const char *)buf;
	end = p + len;
	/* only complete lines: the kill may cut one short */
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t l;
		if (!nl)
			break;
		l = (size_t)(nl - p);
		if (l == 66 && p[0] == 'C') {
			if (d->n == d->cap) {
				d->cap = d->cap ? d->cap * 2 : 256;
				d->ids = realloc(d->ids, d->cap * sizeof(*d->ids));
				assert_non_null(d->ids);
			}
			memcpy(d->ids[d->n], p + 2, 64);
			d->ids[d->n++][64] = '\0';
		} else if (l > 35 && p[0] == 'P' && p[34] == ' ') {
			memcpy(d->plan, p + 2, 32);
			d->plan[32] = '\0';
			d->has_p = 1;
			d->ms_p = atof(p + 35);
		} else if (l > 2 && p[0] == 'H' && p[1] == ' ') {
			d->has_h = 1;
			d->ms_h = atof(p + 2);
		} else if (l > 2 && p[0] == 'F' && p[1] == ' ') {
			d->has_f = 1;
			d->ms_f = atof(p + 2);
		} else if (l > 2 && p[0] == 'R' && p[1] == ' ') {
			/* the main done file holds one R per child; keep the last */
			d->has_r++;
			d->ms_r = atof(p + 2);
		} else {
			fail_msg("done file %s: unexpected line '%.*s'", path, (int)l, p);
		}
		p = nl + 1;
	}
	free(buf);
}

typedef struct {
	char (*ids)[65];
	size_t n, cap;
} id_set;

static int log_collect(const samen_log_entry *e, void *payload)
{
	id_set *s = payload;
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->ids = realloc(s->ids, s->cap * sizeof(*s->ids));
		assert_non_null(s->ids);
	}
	snprintf(s->ids[s->n++], 65, "%s", e->id);
	return 0;
}

static int cmp_id(const void *a, const void *b)
{
	return memcmp(a, b, 64);
}

static void log_ids(samen_plan *p, id_set *s)
{
	memset(s, 0, sizeof(*s));
	OK(samen_log(p, NULL, log_collect, s));
	if (s->n)
		qsort(s->ids, s->n, sizeof(*s->ids), cmp_id);
}

static int has_id(const id_set *s, const char *id)
{
	return s->n && bsearch(id, s->ids, s->n, sizeof(*s->ids), cmp_id) != NULL;
}

/* Changes in a replica before anything opened it (what recovery will add is
 * the difference). -1 when there is no replica. */
static int64_t raw_change_count(const char *store, const char *plan)
{
	char path[4200];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	int64_t n = -1;
	snprintf(path, sizeof(path), "%s/plans/%s/replica.db", store, plan);
	if (access(path, F_OK) != 0)
		return -1;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT count(*) FROM changes", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return n;
}

typedef struct {
	int kills, finished, recoveries, recovered_changes, checked;
	int kills_opening, kills_committing;
	int create_kills_before_plan, half_plans_unopenable, half_plans_empty, imports_done, imports_cut;
	size_t max_changes;
} stats;

/* Open the store's plan, check it against the done file and against a
 * rebuild of a copy. Returns the number of changes. */
static size_t verify_store(const char *store_dir, const char *plan_id, const done_file *d, const id_set *must,
                           const char *scratch, stats *st)
{
	samen_store *store = NULL;
	samen_plan *p = NULL;
	samen_check_result res;
	char hash[65], hash2[65], copy[4200];
	id_set have;
	int64_t before = raw_change_count(store_dir, plan_id);
	size_t n;

	OK(store_open(&store, store_dir, 0));
	OK(samen_plan_open(&p, store, plan_id));
	OK(samen_plan_check(p, &res, hash));
	assert_int_equal(res.history_only, 0);
	assert_int_equal(res.rejected, 0);
	if (before >= 0 && res.changes > before) {
		st->recoveries++;
		st->recovered_changes += (int)(res.changes - before);
	}
	log_ids(p, &have);
	assert_int_equal(have.n, (size_t)res.changes);
	for (size_t k = 0; k < d->n; k++)
		if (!has_id(&have, d->ids[k]))
			fail_msg("change %s was reported committed but is not in the plan", d->ids[k]);
	for (size_t k = 0; must && k < must->n; k++)
		if (!has_id(&have, must->ids[k]))
			fail_msg("change %s of the imported bundle is not in the plan", must->ids[k]);
	OK(samen_plan_state_hash(p, hash2));
	assert_string_equal(hash, hash2);
	n = have.n;
	free(have.ids);
	samen_plan_free(p);
	samen_store_free(store);

	/* the same store, copied and rebuilt from its history alone */
	snprintf(copy, sizeof(copy), "%s/copy", scratch);
	shell("rm -rf '%s' && cp -r '%s' '%s'", copy, store_dir, copy);
	OK(store_open(&store, copy, 0));
	OK(samen_plan_open(&p, store, plan_id));
	OK(samen_plan_rebuild(p));
	OK(samen_plan_check(p, &res, hash2));
	assert_string_equal(hash, hash2);
	assert_int_equal(res.changes, (int64_t)n);
	samen_plan_free(p);
	samen_store_free(store);
	shell("rm -rf '%s'", copy);
	st->checked++;
	if (n > st->max_changes)
		st->max_changes = n;
	return n;
}

/* ---- the test ---------------------------------------------------------------------- */

/* What a kind of job costs here (sanitizers and disks differ a lot), from
 * one run that is not killed; kills are then spread over that time. */
typedef struct {
	double create_ms;      /* until the plan exists */
	double ready_ms;       /* until commits start (the plan is open) */
	double commit_ms;      /* per commit */
	double import_ms;      /* until both bundles are in */
} costs;

static void calibrate_create(const char *tmp, costs *c, stats *st)
{
	char dir[4200], done_path[4200];
	done_file d;
	job j;
	memset(&j, 0, sizeof(j));
	snprintf(dir, sizeof(dir), "%s/fresh-calibrate", tmp);
	snprintf(done_path, sizeof(done_path), "%s/done-fresh", tmp);
	assert_int_equal(mkdir(dir, 0700), 0);
	unlink(done_path);
	j.kind = JOB_CREATE;
	j.store = dir;
	j.done = done_path;
	j.max_commits = 3;
	assert_int_equal(run_and_kill(&j, -1), 0);
	read_done(done_path, &d);
	assert_true(d.has_p && d.has_r && d.n == 3);
	c->create_ms = d.ms_p;
	verify_store(dir, d.plan, &d, NULL, tmp, st);
	free(d.ids);
	shell("rm -rf '%s'", dir);
}

static void calibrate_commits(const char *main_dir, const char *plan_id, const char *tmp, costs *c, stats *st)
{
	char done_path[4200];
	done_file d;
	double t0 = now_ms();
	job j;
	memset(&j, 0, sizeof(j));
	snprintf(done_path, sizeof(done_path), "%s/done", tmp);
	j.kind = JOB_COMMITS;
	j.store = main_dir;
	j.done = done_path;
	j.max_commits = 20;
	assert_int_equal(run_and_kill(&j, -1), 0);
	read_done(done_path, &d);
	assert_int_equal(d.n, 20);
	c->ready_ms = d.ms_r;
	c->commit_ms = (now_ms() - t0 - d.ms_r) / 20;
	if (c->commit_ms < 0.2)
		c->commit_ms = 0.2;
	verify_store(main_dir, plan_id, &d, NULL, tmp, st);
	free(d.ids);
}

static void calibrate_import(const char *main_dir, const char *plan_id, const char *tmp, const char *bundle_h,
                             const char *bundle_f, const id_set *src_ids, costs *c, stats *st)
{
	char dir[4200], done_path[4200];
	done_file d;
	job j;
	memset(&j, 0, sizeof(j));
	snprintf(dir, sizeof(dir), "%s/import", tmp);
	snprintf(done_path, sizeof(done_path), "%s/done-import", tmp);
	shell("rm -rf '%s' && cp -r '%s' '%s'", dir, main_dir, dir);
	unlink(done_path);
	j.kind = JOB_IMPORT;
	j.store = dir;
	j.done = done_path;
	j.bundle_h = bundle_h;
	j.bundle_f = bundle_f;
	j.max_commits = 0;
	assert_int_equal(run_and_kill(&j, -1), 0);
	read_done(done_path, &d);
	assert_true(d.has_h && d.has_f);
	c->import_ms = d.ms_f;
	verify_store(dir, plan_id, &d, src_ids, tmp, st);
	free(d.ids);
	shell("rm -rf '%s'", dir);
}

static long pick_delay_us(rng *r, double max_ms)
{
	return (long)below(r, (uint32_t)(max_ms * 1000) + 1);
}

static void test_crash_recovery(void **state)
{
	const char *env_seed = getenv("SAMEN_SEED"), *env_iter = getenv("SAMEN_CRASH_ITERATIONS");
	uint64_t seed = env_seed && *env_seed ? strtoull(env_seed, NULL, 10) : 1;
	int iterations = env_iter && *env_iter ? atoi(env_iter) : 30;
	rng r = {seed * 0x9E3779B97F4A7C15ull + 1};
	char *tmp = tu_mkdtemp("crash");
	char main_dir[4200], src_dir[4200], done_path[4200], bundle_h[4200], bundle_f[4200], plan_id[33];
	samen_store *ms = NULL, *ss = NULL;
	samen_plan *mp = NULL, *sp = NULL;
	samen_edit *e = NULL;
	samen_bundle_stats bs;
	char *vv_mid = NULL;
	id_set src_ids;
	stats st;
	costs cost;
	double t0 = now_ms();
	int it;
	(void)state;

	assert_non_null(tmp);
	memset(&st, 0, sizeof(st));
	printf("crash: seed %llu (replay with SAMEN_SEED=%llu), %d iterations, in %s\n", (unsigned long long)seed,
	       (unsigned long long)seed, iterations, tmp);
	snprintf(main_dir, sizeof(main_dir), "%s/main", tmp);
	snprintf(src_dir, sizeof(src_dir), "%s/src", tmp);
	snprintf(bundle_h, sizeof(bundle_h), "%s/second-half.bundle", tmp);
	snprintf(bundle_f, sizeof(bundle_f), "%s/full.bundle", tmp);

	/* The plan, and a second member whose many changes make the bundles:
	 * the second half alone (all pending on arrival) and everything. */
	OK(store_open(&ms, main_dir, 1));
	OK(store_open(&ss, src_dir, 1));
	OK(samen_plan_create(&mp, ms, "Meneer de Vries", "nl"));
	snprintf(plan_id, sizeof(plan_id), "%s", samen_plan_id(mp));
	OK(samen_edit_begin(&e, mp));
	OK(samen_edit_member_add(e, samen_store_device_key(ss), "bron"));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	OK(samen_bundle_create(mp, bundle_f, NULL, &bs));
	OK(samen_bundle_import(ss, bundle_f, &bs));
	OK(samen_plan_open(&sp, ss, NULL));
	for (int k = 0; k < 160; k++) {
		char uid[17], title[64];
		if (k == 80)
			OK(samen_plan_version_vector(sp, &vv_mid));
		OK(samen_edit_begin(&e, sp));
		OK(samen_edit_create(e, "goal", uid));
		snprintf(title, sizeof(title), "Bron %d", k);
		OK(samen_edit_set(e, uid, "title", title));
		OK(samen_edit_set(e, uid, "description", "een wat langere omschrijving, zodat de bundel groeit"));
		OK(samen_edit_set(e, uid, "status", "open"));
		OK(samen_edit_commit(e, NULL));
		samen_edit_free(e);
	}
	OK(samen_bundle_create(sp, bundle_h, vv_mid, &bs));
	assert_int_equal(bs.changes, 80);
	OK(samen_bundle_create(sp, bundle_f, NULL, &bs));
	log_ids(sp, &src_ids);
	free(vv_mid);
	samen_plan_free(sp);
	samen_plan_free(mp);
	samen_store_free(ss);
	samen_store_free(ms);

	memset(&cost, 0, sizeof(cost));
	calibrate_create(tmp, &cost, &st);
	calibrate_commits(main_dir, plan_id, tmp, &cost, &st);
	calibrate_import(main_dir, plan_id, tmp, bundle_h, bundle_f, &src_ids, &cost, &st);
	printf("crash: a new plan takes %.0f ms, opening one %.0f ms, a commit %.1f ms, both imports %.0f ms\n",
	       cost.create_ms, cost.ready_ms, cost.commit_ms, cost.import_ms);

	for (it = 0; it < iterations && now_ms() - t0 < TIME_LIMIT_S * 1000.0; it++) {
		uint32_t kind = below(&r, 10);
		char dir[4200];
		done_file d;
		job j;

		memset(&j, 0, sizeof(j));
		j.seed = seed * 1000 + (uint64_t)it;
		j.max_commits = 100000;
		if (kind < 2) {
			/* a new store and plan, killed while it is being made or
			 * soon after */
			snprintf(dir, sizeof(dir), "%s/fresh-%d", tmp, it);
			assert_int_equal(mkdir(dir, 0700), 0);
			snprintf(done_path, sizeof(done_path), "%s/done-fresh", tmp);
			unlink(done_path);
			j.kind = JOB_CREATE;
			j.store = dir;
			j.done = done_path;
			if (run_and_kill(&j, pick_delay_us(&r, cost.create_ms * 1.3)))
				st.kills++;
			else
				st.finished++;
			read_done(done_path, &d);
			if (d.has_p) {
				verify_store(dir, d.plan, &d, NULL, tmp, &st);
			} else {
				/* The plan was never reported created: whatever is left
				 * must not be a plan that opens but fails its check. */
				samen_store *s2 = NULL;
				samen_plan *p2 = NULL;
				samen_check_result res;
				char h[65];
				st.create_kills_before_plan++;
				/* A plan is built aside and moved into place only when
				 * complete: either there is no plan, or a whole one. */
				if (store_open(&s2, dir, 0) == 0) {
					if (samen_plan_open(&p2, s2, NULL) == 0) {
						OK(samen_plan_check(p2, &res, h));
						if (res.changes == 0)
							st.half_plans_empty++;
						assert_true(res.changes >= 1);
						samen_plan_free(p2);
					} else {
						if (!strstr(samen_error_last(), "holds no plan"))
							st.half_plans_unopenable++;
						assert_non_null(strstr(samen_error_last(), "holds no plan"));
					}
					samen_store_free(s2);
				}
			}
			free(d.ids);
			shell("rm -rf '%s'", dir);
		} else if (kind < 5) {
			/* a copy of the plan imports the second half of a big bundle
			 * (pending), then all of it, then commits */
			snprintf(dir, sizeof(dir), "%s/import", tmp);
			shell("rm -rf '%s' && cp -r '%s' '%s'", dir, main_dir, dir);
			snprintf(done_path, sizeof(done_path), "%s/done-import", tmp);
			unlink(done_path);
			j.kind = JOB_IMPORT;
			j.store = dir;
			j.done = done_path;
			j.bundle_h = bundle_h;
			j.bundle_f = bundle_f;
			if (run_and_kill(&j, pick_delay_us(&r, cost.import_ms * 1.5)))
				st.kills++;
			else
				st.finished++;
			read_done(done_path, &d);
			if (d.has_f)
				st.imports_done++;
			else
				st.imports_cut++;
			verify_store(dir, plan_id, &d, d.has_f ? &src_ids : NULL, tmp, &st);
			free(d.ids);
			shell("rm -rf '%s'", dir);
		} else {
			/* the main store: commits, killed at a random moment; the
			 * done file keeps growing, so every earlier change must
			 * survive every later crash too */
			done_file before;
			snprintf(done_path, sizeof(done_path), "%s/done", tmp);
			read_done(done_path, &before);
			j.kind = JOB_COMMITS;
			j.store = main_dir;
			j.done = done_path;
			if (run_and_kill(&j, pick_delay_us(&r, cost.ready_ms + 25 * cost.commit_ms)))
				st.kills++;
			else
				st.finished++;
			read_done(done_path, &d);
			if (d.has_r > before.has_r)
				st.kills_committing++;
			else
				st.kills_opening++;
			verify_store(main_dir, plan_id, &d, NULL, tmp, &st);
			free(d.ids);
			free(before.ids);
		}
	}
	printf("crash: %d iterations in %.1f s: %d kills (main store: %d while opening, %d while committing),"
	       " %d children finished first; %d plans checked (largest %zu changes); recovery on open applied"
	       " %d changes in %d of them; %d kills before a new plan was reported (%d left an empty plan, %d a plan"
	       " that does not open); imports: %d complete, %d cut\n",
	       it, (now_ms() - t0) / 1000, st.kills, st.kills_opening, st.kills_committing, st.finished, st.checked,
	       st.max_changes, st.recovered_changes, st.recoveries, st.create_kills_before_plan, st.half_plans_empty,
	       st.half_plans_unopenable, st.imports_done, st.imports_cut);
	assert_true(st.kills > 0);
	free(src_ids.ids);
	tu_rmtree(tmp);
	free(tmp);
}

/* The state a kill leaves when it lands while a device ref moves: libgit2
 * has written "<ref>.lock" but not renamed it yet. The next process must
 * still be able to commit. */
static void test_stale_ref_lock(void **state)
{
	char *tmp = tu_mkdtemp("crash-lock");
	char lock[4400], id[65];
	samen_store *st = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	samen_check_result res;
	char hash[65], uid[17];
	(void)state;

	assert_non_null(tmp);
	OK(store_open(&st, tmp, 1));
	OK(samen_plan_create(&p, st, "Mevrouw Bakker", "nl"));
	OK(samen_edit_begin(&e, p));
	OK(samen_edit_create(e, "goal", uid));
	OK(samen_edit_set(e, uid, "title", "Boodschappen doen"));
	OK(samen_edit_commit(e, NULL));
	samen_edit_free(e);
	snprintf(lock, sizeof(lock), "%s/history.git/refs/samen/devices/%s.lock", samen_plan_dir(p),
	         samen_store_device_key(st));
	samen_plan_free(p);
	assert_int_equal(tu_write_file(lock, "0123456789012345678901234567890123456789\n", 41), 0);

	OK(samen_plan_open(&p, st, NULL));
	OK(samen_edit_begin(&e, p));
	OK(samen_edit_set(e, uid, "status", "bezig"));
	OK(samen_edit_commit(e, id));
	samen_edit_free(e);
	OK(samen_plan_check(p, &res, hash));
	assert_int_equal(res.changes, 3);
	samen_plan_free(p);
	samen_store_free(st);
	tu_rmtree(tmp);
	free(tmp);
}

int main(void)
{
	/* A killed process leaves its writes in the page cache, so for these
	 * crashes (not power cuts) a store in memory is as good as one on disk,
	 * and much faster: without a TMPDIR of its own, use /dev/shm. (On a
	 * disk, with TMPDIR=/tmp, kills land more often inside an fsync.) */
	const char *tmp = getenv("TMPDIR");
	if ((!tmp || !*tmp) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stale_ref_lock),
		cmocka_unit_test(test_crash_recovery),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
