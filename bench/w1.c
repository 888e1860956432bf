/*
 * w1.c - workload W1 (../shared/bench/W1.md): three offline devices, one big
 * merge into a fresh fourth replica. Prints one JSON line.
 *
 *   bench_w1 [--updates U] [--dir DIR] [--keep] [--remote]
 *
 * --remote adds a second JSON line: the same changes through a git remote
 * (a bare repository on disk, reached by its path): devices 0-2 push, a
 * fresh store clones it (time, pack bytes received), then one new change
 * goes device 0 -> remote -> fresh store (bytes and time of push and pull).
 *
 * At the end, peer_bench() measures the peer protocol on loopback: a fresh
 * replica receiving everything from `samen serve`, then one new change
 * after that full sync (bytes counted on the client's socket).
 *
 * Everything is real: signed changes, each device's own history and replica,
 * bundles as the transport. The merge runs in a child process (this same
 * binary, --merge) so its peak RSS is the merge's alone, measured by wait4.
 * The raw-SQLite baseline runs in the same process run on the same disk.
 */
#include "samen/samen.h"
#include "sync/internal.h"
#include "core/schema.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define GOALS 1000
#define PER_CHANGE 100

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz     ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
static const char *const statuses[] = {"open", "bezig", "bereikt", "gestopt"};
static const char *const field_names[] = {"title", "status", "priority", "description"};

static uint64_t rng_state;
static uint64_t rnd(void) /* splitmix64: seeded, the same work every run */
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}
static uint64_t rnd_below(uint64_t n) { return rnd() % n; }

static void rnd_text(char *buf, int lo, int hi)
{
	int n = lo + (int)rnd_below((uint64_t)(hi - lo + 1));
	for (int i = 0; i < n; i++)
		buf[i] = alphabet[rnd_below(sizeof(alphabet) - 1)];
	buf[n] = '\0';
}

/* value for field f (0 title, 1 status, 2 priority, 3 description) */
static void rnd_value(int f, char *buf)
{
	switch (f) {
	case 0: rnd_text(buf, 20, 40); break;
	case 1: strcpy(buf, statuses[rnd_below(4)]); break;
	case 2: sprintf(buf, "%d", 1 + (int)rnd_below(5)); break;
	default: rnd_text(buf, 60, 120); break;
	}
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_w1: %s: %s\n", what, samen_error_last());
	exit(1);
}

static int progress_tty;
static void progress(const char *phase, long done, long total)
{
	if (progress_tty) {
		int w = 30, fill = total ? (int)(w * done / total) : w;
		fprintf(stderr, "\r%-28s [%.*s%*s] %ld/%ld", phase, fill, "##############################", w - fill, "",
		        done, total);
		if (done == total)
			fputc('\n', stderr);
	} else if (done == total || done % (total / 4 + 1) == 0) {
		fprintf(stderr, "w1: %s %ld/%ld\n", phase, done, total);
	}
}

static samen_store *store_at(const char *dir, const char *name)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	samen_store *s = NULL;
	o.path = dir;
	o.device_name = name;
	o.create = 1;
	if (samen_store_open(&s, &o) < 0)
		die("store");
	return s;
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static void import_bundle(samen_store *s, const char *path)
{
	samen_bundle_stats st;
	if (samen_bundle_import(s, path, &st) < 0)
		die(path);
}

static void make_bundle(samen_plan *p, const char *path, const char *since)
{
	samen_bundle_stats st;
	if (samen_bundle_create(p, path, since, &st) < 0)
		die(path);
}

/* --merge STORE BUNDLE...: the measured merge, in its own process: the
 * bundles imported together, as one stream (`samen bundle import A B C`).
 * --merge-each: the same bundles imported one after the other. */
static int merge_main(int argc, char **argv)
{
	samen_store *s = store_at(argv[2], "fresh");
	samen_bundle_stats st;
	double t0 = now();
	if (strcmp(argv[1], "--merge-each") == 0) {
		for (int i = 3; i < argc; i++)
			import_bundle(s, argv[i]);
	} else if (samen_bundle_import_files(s, (const char *const *)argv + 3, (size_t)(argc - 3), &st) < 0) {
		die("merge");
	}
	printf("%.6f\n", now() - t0);
	samen_store_free(s);
	return 0;
}

/* Run a merge child on a fresh store; its time and peak RSS. */
static int run_merge(const char *self, const char *mode, const char *store, char bpath[][4096],
                     double *secs, long *peak_kb)
{
	int pipefd[2];
	if (pipe(pipefd) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 1);
		close(pipefd[0]);
		execl("/proc/self/exe", self, mode, store, bpath[0], bpath[1], bpath[2], (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	char out[64] = "";
	ssize_t n = read(pipefd[0], out, sizeof(out) - 1);
	close(pipefd[0]);
	out[n > 0 ? n : 0] = '\0';
	int status;
	struct rusage ru;
	if (wait4(pid, &status, 0, &ru) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	*secs = atof(out);
	*peak_kb = ru.ru_maxrss;
	return 0;
}

static int count_goal(const samen_entity_view *e, void *payload)
{
	(void)e;
	(*(long *)payload)++;
	return 0;
}

/* Raw SQLite: the same number of (entity, field, value) rows, one
 * transaction, same disk, same journal settings as the replica. */
static double baseline(const char *dir, long rows)
{
	char path[8192], val[200];
	sqlite3 *db = NULL;
	sqlite3_stmt *s = NULL;
	double t0, t;
	snprintf(path, sizeof(path), "%s/baseline.db", dir);
	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK)
		die("baseline");
	sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
	                 "CREATE TABLE t(entity INTEGER NOT NULL, field INTEGER NOT NULL, value BLOB NOT NULL)",
	             NULL, NULL, NULL);
	sqlite3_prepare_v2(db, "INSERT INTO t(entity, field, value) VALUES (?,?,?)", -1, &s, NULL);
	t0 = now();
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	for (long i = 0; i < rows; i++) {
		int f = (int)rnd_below(4);
		rnd_value(f, val);
		sqlite3_bind_int64(s, 1, (sqlite3_int64)rnd_below(GOALS));
		sqlite3_bind_int(s, 2, f);
		sqlite3_bind_blob(s, 3, val, (int)strlen(val), SQLITE_STATIC);
		sqlite3_step(s);
		sqlite3_reset(s);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	t = now() - t0;
	sqlite3_finalize(s);
	sqlite3_close(db);
	return rows / t;
}


/* --- the peer protocol on loopback ------------------------------------------------ */

typedef struct {
	uint64_t full_bytes, full_changes, incr_bytes, incr_changes;
	double full_s, incr_ms;
	int equal;               /* the fresh replica ends with the server's state */
} peer_result;

static void *serve_thread(void *arg)
{
	samen_server_run(arg, 0);
	return NULL;
}

/* A fresh replica of a new member device clones the plan from a server on
 * `server`'s store, then one change is made there and synced. */
static void peer_bench(const char *dir, samen_store *server, peer_result *r)
{
	samen_serve_options so = SAMEN_SERVE_OPTIONS_INIT;
	samen_sync_options co = SAMEN_SYNC_OPTIONS_INIT;
	samen_sync_stats ss;
	samen_server *srv = NULL;
	samen_store *fresh;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	pthread_t thread;
	char path[4200], url[64], plan[33], val[200];
	double t0;

	snprintf(path, sizeof(path), "%s/peer-fresh", dir);
	fresh = store_at(path, "PeerFresh");
	if (samen_plan_open(&p, server, NULL) < 0 || samen_edit_begin(&e, p) < 0 ||
	    samen_edit_member_add(e, samen_store_device_key(fresh), "PeerFresh") < 0 || samen_edit_commit(e, NULL) < 0)
		die("peer member");
	samen_edit_free(e);
	snprintf(plan, sizeof(plan), "%s", samen_plan_id(p));
	samen_plan_free(p);
	so.listen = "127.0.0.1:0";
	if (samen_server_new(&srv, server, &so) < 0)
		die("serve");
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", samen_server_port(srv));
	if (pthread_create(&thread, NULL, serve_thread, srv) != 0)
		die("thread");
	co.plan = plan;
	t0 = now();
	if (samen_peer_sync(fresh, url, &co, &ss) < 0)
		die("peer full sync");
	r->full_s = now() - t0;
	r->full_bytes = ss.bytes_in + ss.bytes_out;
	r->full_changes = ss.applied;
	/* one new change on the server's side; the server is idle meanwhile */
	rnd_value(1, val);
	if (samen_plan_open(&p, server, NULL) < 0 || samen_edit_begin(&e, p) < 0)
		die("peer incremental edit");
	{
		char uid[17];
		if (samen_edit_create(e, "goal", uid) < 0 || samen_edit_set(e, uid, "title", val) < 0 ||
		    samen_edit_commit(e, NULL) < 0)
			die("peer incremental edit");
	}
	samen_edit_free(e);
	samen_plan_free(p);
	t0 = now();
	if (samen_peer_sync(fresh, url, &co, &ss) < 0)
		die("peer incremental sync");
	r->incr_ms = (now() - t0) * 1000;
	r->incr_bytes = ss.bytes_in + ss.bytes_out;
	r->incr_changes = ss.applied;
	samen_server_stop(srv);
	pthread_join(thread, NULL);
	samen_server_free(srv);
	{
		char h1[65], h2[65];
		if (samen_plan_open(&p, server, NULL) < 0 || samen_plan_state_hash(p, h1) < 0)
			die("peer hash");
		samen_plan_free(p);
		if (samen_plan_open(&p, fresh, NULL) < 0 || samen_plan_state_hash(p, h2) < 0)
			die("peer hash");
		samen_plan_free(p);
		r->equal = strcmp(h1, h2) == 0;
	}
	samen_store_free(fresh);
}

/* Bytes of the regular files under path (the relay's objects). */
static uint64_t tree_bytes(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	uint64_t total = 0;
	if (!d)
		return file_size(path);
	while ((de = readdir(d))) {
		char child[4096];
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(child, sizeof(child), "%s/%s", path, de->d_name);
		total += tree_bytes(child);
	}
	closedir(d);
	return total;
}

typedef struct {
	double push_s, clone_s, incr_push_ms, incr_pull_ms;
	uint64_t push_bytes, clone_bytes, incr_push_bytes, incr_pull_bytes;
	char hash[65];
	samen_store *fresh;
} remote_numbers;

/* --remote: W1 through a git remote (see the file comment). The fresh
 * store stays open in r->fresh, so the final check can compare it. */
static void remote_measure(const char *dir, long total, samen_plan *const dev[3], const char *uid0, remote_numbers *r)
{
	samen_remote_stats *rs = calloc(1, sizeof(*rs));
	samen_plan *p = NULL;
	git_repository *bare = NULL;
	char url[4096 + 32], objects[4096 + 64], path[4096 + 32], val[200];
	double t0;
	uint64_t before;

	if (!rs)
		die("out of memory");
	snprintf(url, sizeof(url), "%s/relay.git", dir);
	if (git_repository_init(&bare, url, 1) < 0)
		die("git init --bare");
	git_repository_free(bare);
	snprintf(objects, sizeof(objects), "%s/objects", url);
	/* a path remote reports no bytes sent: the relay's growth is the pack */
	before = tree_bytes(objects);
	t0 = now();
	for (int d = 0; d < 3; d++) {
		if (samen_remote_add(dev[d], "relay", url) < 0 || samen_remote_pull(dev[d], "relay", rs) < 0 ||
		    samen_remote_push(dev[d], "relay", rs) < 0 || rs->refused)
			die("push to the relay");
	}
	r->push_s = now() - t0;
	r->push_bytes = tree_bytes(objects) - before;

	snprintf(path, sizeof(path), "%s/store-remote", dir);
	r->fresh = store_at(path, "FreshRemote");
	fprintf(stderr, "w1: cloning %ld updates from a git remote into a fresh replica\n", total);
	t0 = now();
	if (samen_plan_clone(&p, r->fresh, url, NULL, "relay", rs) < 0 || rs->refused)
		die("clone from the relay");
	r->clone_s = now() - t0;
	r->clone_bytes = rs->received_bytes;

	/* one more change on device 0, through the relay */
	{
		samen_edit *e = NULL;
		rnd_value(1, val);
		if (samen_edit_begin(&e, dev[0]) < 0 || samen_edit_set(e, uid0, "status", val) < 0 ||
		    samen_edit_commit(e, NULL) < 0)
			die("incremental edit");
		samen_edit_free(e);
	}
	before = tree_bytes(objects);
	t0 = now();
	if (samen_remote_push(dev[0], "relay", rs) < 0 || rs->pushed != 1)
		die("incremental push");
	r->incr_push_ms = (now() - t0) * 1000;
	r->incr_push_bytes = tree_bytes(objects) - before;
	t0 = now();
	if (samen_remote_pull(p, "relay", rs) < 0 || rs->applied != 1)
		die("incremental pull");
	r->incr_pull_ms = (now() - t0) * 1000;
	r->incr_pull_bytes = rs->received_bytes;
	samen_plan_free(p);
	free(rs);
}

static void remote_print(long total, const remote_numbers *r, const char *expected_hash)
{
	printf("{\"workload\":\"W1-remote\",\"transport\":\"git, bare repository by path\",\"total_updates\":%ld,"
	       "\"push_s\":%.3f,\"push_pack_bytes\":%" PRIu64 ",\"clone_s\":%.3f,\"clone_updates_per_s\":%.0f,"
	       "\"clone_pack_bytes\":%" PRIu64 ",\"clone_bytes_per_update\":%.2f,\"incr_push_ms\":%.1f,"
	       "\"incr_push_bytes\":%" PRIu64 ",\"incr_pull_ms\":%.1f,\"incr_pull_bytes\":%" PRIu64
	       ",\"state_hashes_equal\":%s}\n",
	       total, r->push_s, r->push_bytes, r->clone_s, total / r->clone_s, r->clone_bytes,
	       (double)r->clone_bytes / total, r->incr_push_ms, r->incr_push_bytes, r->incr_pull_ms, r->incr_pull_bytes,
	       strcmp(r->hash, expected_hash) == 0 ? "true" : "false");
}

int main(int argc, char **argv)
{
	long U = 33334;
	const char *base = NULL;
	int keep = 0, remote = 0;
	char dir[2048], path[8192], bpath[4][4096], val[200];
	samen_store *st[4];
	samen_plan *pl[4];
	char uids[GOALS][17];
	static const char *names[] = {"Device0", "Device1", "Device2", "Fresh"};

	if (argc >= 3 && (strcmp(argv[1], "--merge") == 0 || strcmp(argv[1], "--merge-each") == 0))
		return merge_main(argc, argv);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--updates") == 0 && i + 1 < argc)
			U = atol(argv[++i]);
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--keep") == 0)
			keep = 1;
		else if (strcmp(argv[i], "--remote") == 0)
			remote = 1;
		else {
			fprintf(stderr, "usage: bench_w1 [--updates U] [--dir DIR] [--keep] [--remote]\n");
			return 2;
		}
	}
	if (U < 1) {
		fprintf(stderr, "bench_w1: --updates must be >= 1\n");
		return 2;
	}
	progress_tty = isatty(2);
	rng_state = 42;
	snprintf(dir, sizeof(dir), "%s/samen-w1-XXXXXX", base ? base : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp"));
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	for (int d = 0; d < 4; d++) {
		snprintf(path, sizeof(path), "%s/store%d", dir, d);
		st[d] = store_at(path, names[d]);
		snprintf(bpath[d], sizeof(bpath[d]), "%s/device%d.bundle", dir, d);
	}

	/* the base: device 0 creates 1000 goals with their four fields */
	if (samen_plan_create(&pl[0], st[0], "W1", "nl") < 0)
		die("plan create");
	{
		samen_edit *e = NULL;
		if (samen_edit_begin(&e, pl[0]) < 0 || samen_edit_member_add(e, samen_store_device_key(st[1]), "Device1") < 0 ||
		    samen_edit_member_add(e, samen_store_device_key(st[2]), "Device2") < 0 || samen_edit_commit(e, NULL) < 0)
			die("members");
		samen_edit_free(e);
	}
	for (int g = 0; g < GOALS; g += PER_CHANGE) {
		samen_edit *e = NULL;
		if (samen_edit_begin(&e, pl[0]) < 0)
			die("edit");
		for (int k = g; k < g + PER_CHANGE && k < GOALS; k++) {
			if (samen_edit_create(e, "goal", uids[k]) < 0)
				die("create");
			for (int f = 0; f < 4; f++) {
				rnd_value(f, val);
				if (samen_edit_set(e, uids[k], field_names[f], val) < 0)
					die("set");
			}
		}
		if (samen_edit_commit(e, NULL) < 0)
			die("commit");
		progress("base", g + PER_CHANGE, GOALS);
	}
	make_bundle(pl[0], bpath[0], NULL);
	for (int d = 1; d <= 2; d++) {
		import_bundle(st[d], bpath[0]);
		if (samen_plan_open(&pl[d], st[d], NULL) < 0)
			die("open");
	}

	/* each device, offline, makes U updates in changes of 100 */
	for (int d = 0; d < 3; d++) {
		for (long u = 0; u < U; u += PER_CHANGE) {
			samen_edit *e = NULL;
			if (samen_edit_begin(&e, pl[d]) < 0)
				die("edit");
			for (long k = u; k < u + PER_CHANGE && k < U; k++) {
				int g = (int)rnd_below(GOALS), f = (int)rnd_below(4);
				rnd_value(f, val);
				if (samen_edit_set(e, uids[g], field_names[f], val) < 0)
					die("set");
			}
			if (samen_edit_commit(e, NULL) < 0)
				die("commit");
			samen_edit_free(e);
			progress(names[d], u + PER_CHANGE < U ? u + PER_CHANGE : U, U);
		}
	}

	/* what the fresh replica receives: device 0 everything it has, devices
	 * 1 and 2 only what device 0 lacks */
	char *vv0 = NULL;
	if (samen_plan_version_vector(pl[0], &vv0) < 0)
		die("vv");
	make_bundle(pl[0], bpath[0], NULL);
	make_bundle(pl[1], bpath[1], vv0);
	make_bundle(pl[2], bpath[2], vv0);
	uint64_t wire = file_size(bpath[0]) + file_size(bpath[1]) + file_size(bpath[2]);
	long total = 3 * U;
	double base_rows_s = baseline(dir, total);

	/* the merge, measured in a child process */
	fprintf(stderr, "w1: merging %ld updates into a fresh replica\n", total);
	double merge_s = 0, each_s = 0;
	long peak_kb = 0, each_kb = 0;
	{
		char store3[4096 + 16];
		snprintf(store3, sizeof(store3), "%s/store3-each", dir);
		if (run_merge(argv[0], "--merge-each", store3, bpath, &each_s, &each_kb) < 0) {
			fprintf(stderr, "bench_w1: merge (one bundle at a time) failed\n");
			return 1;
		}
		snprintf(store3, sizeof(store3), "%s/store3", dir);
		if (run_merge(argv[0], "--merge", store3, bpath, &merge_s, &peak_kb) < 0) {
			fprintf(stderr, "bench_w1: merge failed\n");
			return 1;
		}
	}
	samen_store_free(st[3]);
	st[3] = NULL;
	snprintf(path, sizeof(path), "%s/store3", dir);
	st[3] = store_at(path, "Fresh");

	/* open the merged plan and list all goals */
	double t0 = now();
	long listed = 0;
	if (samen_plan_open(&pl[3], st[3], NULL) < 0 || samen_entity_list(pl[3], "goal", count_goal, &listed) < 0)
		die("open merged");
	double open_ms = (now() - t0) * 1000;

	samen_check_result cr;
	char h[4][65], each_h[65];
	int each_equal;
	if (samen_plan_check(pl[3], &cr, h[3]) < 0)
		die("check");
	{
		/* one import or one per file: the same plan */
		samen_store *se;
		samen_plan *pe = NULL;
		snprintf(path, sizeof(path), "%s/store3-each", dir);
		se = store_at(path, "Fresh (one by one)");
		if (samen_plan_open(&pe, se, NULL) < 0 || samen_plan_state_hash(pe, each_h) < 0)
			die("open merged one by one");
		each_equal = strcmp(each_h, h[3]) == 0;
		samen_plan_free(pe);
		samen_store_free(se);
	}
	uint64_t hist_bytes = 0;
	if (history_gc(pl[3]->hist, &hist_bytes) < 0)
		die("gc");
	if (replica_checkpoint(pl[3]->rep) < 0)
		die("checkpoint");
	snprintf(path, sizeof(path), "%s/replica.db", samen_plan_dir(pl[3]));
	uint64_t replica_bytes = file_size(path);

	/* incremental: one more change with one update on device 0 */
	char *vv3 = NULL;
	{
		samen_edit *e = NULL;
		rnd_value(1, val);
		if (samen_edit_begin(&e, pl[0]) < 0 || samen_edit_set(e, uids[0], "status", val) < 0 ||
		    samen_edit_commit(e, NULL) < 0)
			die("incremental edit");
		samen_edit_free(e);
	}
	double ti1 = now();
	if (samen_plan_version_vector(pl[3], &vv3) < 0)
		die("vv");
	snprintf(path, sizeof(path), "%s/incr.bundle", dir);
	make_bundle(pl[0], path, vv3);
	uint64_t incr_bytes = file_size(path);
	samen_plan_free(pl[3]);
	pl[3] = NULL;
	import_bundle(st[3], path);
	double incr_ms = (now() - ti1) * 1000;

	remote_numbers rn;
	memset(&rn, 0, sizeof(rn));
	if (remote)
		remote_measure(dir, total, pl, uids[0], &rn);

	/* everyone syncs with everyone */
	for (int d = 0; d < 3; d++)
		make_bundle(pl[d], bpath[d], NULL);
	for (int d = 0; d < 3; d++)
		samen_plan_free(pl[d]);
	for (int d = 0; d < 4; d++)
		for (int from = 0; from < 3; from++)
			if (from != d)
				import_bundle(st[d], bpath[from]);
	int equal = 1;
	for (int d = 0; d < 4; d++) {
		samen_plan *p = NULL;
		if (samen_plan_open(&p, st[d], NULL) < 0 || samen_plan_state_hash(p, h[d]) < 0)
			die("hash");
		samen_plan_free(p);
		if (strcmp(h[d], h[0]) != 0)
			equal = 0;
	}

	if (remote) {
		/* the relay got the same changes: the clone must equal everyone */
		samen_plan *p = NULL;
		if (samen_plan_open(&p, rn.fresh, NULL) < 0 || samen_remote_pull(p, "relay", &(samen_remote_stats){0}) < 0 ||
		    samen_plan_state_hash(p, rn.hash) < 0)
			die("remote hash");
		samen_plan_free(p);
		samen_store_free(rn.fresh);
		remote_print(total, &rn, h[0]);
	}

	peer_result peer;
	fprintf(stderr, "w1: peer protocol: a fresh replica, then one change\n");
	peer_bench(dir, st[0], &peer);

	double merge_ups = total / merge_s;
	printf("{\"workload\":\"W1\",\"U\":%ld,\"total_updates\":%ld,\"merge_s\":%.3f,\"merge_updates_per_s\":%.0f,"
	       "\"baseline_rows_per_s\":%.0f,\"merge_vs_baseline\":%.3f,\"merge_each_s\":%.3f,"
	       "\"merge_each_vs_baseline\":%.3f,\"merge_each_peak_rss_mb\":%.1f,\"merge_each_state_equal\":%s,"
	       "\"wire_bytes\":%" PRIu64
	       ",\"wire_bytes_per_update\":%.2f,\"history_bytes_per_update\":%.2f,\"replica_bytes\":%" PRIu64
	       ",\"open_ms\":%.1f,\"goals_listed\":%ld,\"peak_rss_mb\":%.1f,\"conflicts\":%lld,\"incr_bytes\":%" PRIu64
	       ",\"incr_ms\":%.1f,\"incr_transport\":\"bundle\",\"state_hashes_equal\":%s,\"peer_full_changes\":%" PRIu64
	       ",\"peer_full_bytes\":%" PRIu64 ",\"peer_full_s\":%.3f,\"peer_incr_changes\":%" PRIu64
	       ",\"peer_incr_bytes\":%" PRIu64 ",\"peer_incr_ms\":%.1f,\"peer_state_equal\":%s}\n",
	       U, total, merge_s, merge_ups, base_rows_s, merge_ups / base_rows_s, each_s,
	       total / each_s / base_rows_s, each_kb / 1024.0, each_equal ? "true" : "false", wire, (double)wire / total,
	       (double)hist_bytes / total, replica_bytes, open_ms, listed, peak_kb / 1024.0, (long long)cr.conflicts,
	       incr_bytes, incr_ms, equal ? "true" : "false", peer.full_changes, peer.full_bytes, peer.full_s,
	       peer.incr_changes, peer.incr_bytes, peer.incr_ms, peer.equal ? "true" : "false");
	free(vv0);
	free(vv3);
	for (int d = 0; d < 4; d++)
		samen_store_free(st[d]);
	if (!keep) {
		snprintf(path, sizeof(path), "rm -rf '%s'", dir);
		if (system(path) != 0)
			fprintf(stderr, "bench_w1: could not remove %s\n", dir);
	} else {
		fprintf(stderr, "w1: kept %s\n", dir);
	}
	return equal && each_equal && peer.equal ? 0 : 1;
}
