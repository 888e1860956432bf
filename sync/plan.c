/*
 * plan.c - opening plans and the path of a change into history and replica.
 *
 * Order of writes for every change, local or received (design.md):
 *   1. objects into the history, fsynced (one pack for a batch);
 *   2. the device refs move forward;
 *   3. one SQLite transaction applies the changes.
 * A crash between 1 and 2 leaves unreachable objects (harmless); between 2
 * and 3 leaves changes that are in the history but not in the replica, and
 * plan_open_dir() applies them again (plan_recover).
 *
 * A plan directory is locked (flock) for as long as it is open, so two
 * samen processes on one plan are serialized.
 */
#include "sync/internal.h"
#include "core/schema.h"

#include <dirent.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int load_meta(samen_plan *p)
{
	sqlite3_stmt *s = NULL;
	p->client[0] = p->lang[0] = '\0';
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT key, value FROM meta WHERE key IN ('client','lang')", -1,
	                       &s, NULL) != SQLITE_OK)
		return samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(replica_db(p->rep)));
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		const char *v = (const char *)sqlite3_column_text(s, 1);
		if (!k || !v)
			continue;
		if (strcmp(k, "client") == 0)
			snprintf(p->client, sizeof(p->client), "%s", v);
		else
			snprintf(p->lang, sizeof(p->lang), "%s", v);
	}
	sqlite3_finalize(s);
	/* p->lang stays empty until the genesis is known: commit messages of a
	 * clone's first batch take the language from the genesis in the batch,
	 * never from a default, so every replica writes the same commits */
	return 0;
}

typedef struct {
	samen_plan *plan;
	ingest_batch *batch;
	int rc;
} recover_ctx;

int plan_walk_chain(samen_plan *p, const git_oid *head, plan_chain_cb cb, void *payload)
{
	git_oid cur = *head, parents[SAMEN_MAX_DEPS + 1];
	size_t np;
	int rc;

	for (;;) {
		uint8_t *bytes = NULL, sig[64], id[32];
		size_t len;
		samen_change c;
		bool first;
		if ((rc = history_read_change(p->hist, &cur, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
		                              SAMEN_MAX_DEPS + 1, &np)) < 0)
			return rc;
		if ((rc = change_decode(&c, bytes, len)) < 0) {
			free(bytes);
			return samen_error_wrap(rc, "history commit %s", git_oid_tostr_s(&cur));
		}
		/* the chain of prevs ends at the device's seq 1; its other parents
		 * belong to other devices, walked from their own refs */
		first = c.seq == 1;
		change_clear(&c);
		change_id(id, bytes, len);
		if ((rc = cb(&cur, bytes, len, sig, id, payload)) != 0)
			return rc < 0 ? rc : 0;
		if (np == 0 || first)
			return 0;
		cur = parents[0]; /* first parent = prev */
	}
}

/* Add every change reachable from a device ref that the replica lacks to
 * the batch: a worklist over all parents, not just prev, because a crash
 * between two ref moves can leave a change reachable only as another
 * device's dependency. The walk stops at changes the replica has. */
static int recover_device(const uint8_t key[32], const git_oid *head, void *payload)
{
	recover_ctx *rc = payload;
	git_oid *stack = NULL, parents[SAMEN_MAX_DEPS + 1];
	size_t n = 0, cap = 0, np;
	hmap seen;
	int err = 0;
	(void)key;

	hmap_init(&seen, 20);
	for (const git_oid *push = head; push || n > 0; push = NULL) {
		git_oid cur;
		uint8_t *bytes = NULL, sig[64], id[32];
		size_t len, before;
		if (push) {
			cur = *push;
		} else {
			cur = stack[--n];
		}
		if (hmap_get(&seen, cur.id))
			continue;
		if ((err = hmap_put(&seen, cur.id, 1)) < 0)
			break;
		if ((err = history_read_change(rc->plan->hist, &cur, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
		                               SAMEN_MAX_DEPS + 1, &np)) < 0)
			break;
		change_id(id, bytes, len);
		if (replica_has_change(rc->plan->rep, id) || ingest_find(rc->batch, id)) {
			free(bytes);
			continue;
		}
		before = rc->batch->n;
		if ((err = ingest_add(rc->batch, bytes, len, sig)) < 0) {
			err = samen_error_wrap(err, "history commit %s", git_oid_tostr_s(&cur));
			break;
		}
		if (rc->batch->n > before) {
			memcpy(rc->batch->items[rc->batch->n - 1].commit, cur.id, 20);
			rc->batch->items[rc->batch->n - 1].has_commit = true;
		}
		if (n + np > cap) {
			size_t nc = (n + np) * 2 + 16;
			void *p2 = realloc(stack, nc * sizeof(*stack));
			if (!p2) {
				err = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			stack = p2;
			cap = nc;
		}
		for (size_t k = 0; k < np; k++)
			stack[n++] = parents[k];
	}
	free(stack);
	hmap_free(&seen);
	rc->rc = err;
	return err;
}

/* Apply what the history has and the replica lacks. Cheap when nothing is
 * missing: one blob read per device. */
static int write_and_apply(samen_plan *p, ingest_batch *b);

int plan_recover(samen_plan *p, uint64_t *recovered)
{
	ingest_batch b;
	recover_ctx rc = {p, &b, 0};
	int err;

	if (recovered)
		*recovered = 0;
	if ((err = ingest_init(&b, p->id)) < 0)
		return err;
	err = history_foreach_device_ref(p->hist, recover_device, &rc);
	if (err == 0) /* the second branches of devices that equivocated */
		err = history_foreach_fork_ref(p->hist, recover_device, &rc);
	if (err == 0 && b.n > 0) {
		if ((err = replica_order(p->rep, &b)) == 0) {
			if (b.npending || b.nbad) {
				/* Everything in our own history was verified when it was
				 * written; anything else means it was tampered with. */
				for (size_t i = 0; i < b.n; i++)
					if (b.items[i].state == ITEM_BAD && b.items[i].has_commit) {
						err = samen_error_set(SAMEN_ECORRUPT, "history holds an invalid change: %s",
						                      b.items[i].error);
						break;
					}
			}
			/* a pending change that this makes ready has no commit yet:
			 * it takes the whole path */
			if (err == 0)
				err = write_and_apply(p, &b);
			if (err == 0 && recovered)
				*recovered = b.nready;
		}
	}
	ingest_free(&b);
	return err;
}

/* A process killed while moving a device ref leaves "<ref>.lock" behind,
 * and libgit2 then refuses every later move of that ref. Called with the
 * plan's lock held, so no other samen process is writing: any such file is
 * stale. */
static void remove_stale_ref_locks(const char *hpath)
{
	char dir[4096], path[4400];
	struct dirent *de;
	DIR *d;
	snprintf(dir, sizeof(dir), "%s/refs/samen/devices", hpath);
	if ((d = opendir(dir))) {
		while ((de = readdir(d))) {
			size_t n = strlen(de->d_name);
			if (n > 5 && strcmp(de->d_name + n - 5, ".lock") == 0) {
				snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
				unlink(path);
			}
		}
		closedir(d);
	}
	snprintf(path, sizeof(path), "%s/packed-refs.lock", hpath);
	unlink(path);
}

/* The replica keeps where a change's bytes are; the history has them. */
static int read_change_blob(void *payload, const uint8_t blob[20], uint8_t **bytes, size_t *len)
{
	return history_read_blob(payload, blob, SAMEN_MAX_CHANGE_BYTES, bytes, len);
}

int plan_open_replica(samen_plan *p, const char *path)
{
	int rc = replica_open(&p->rep, path);
	if (rc == 0)
		replica_set_blob_reader(p->rep, read_change_blob, p->hist);
	return rc;
}

static int plan_open_at(samen_plan **out, samen_store *store, const uint8_t id[16], const char *dir, bool create)
{
	samen_plan *p = NULL;
	char *hpath = NULL, *rpath = NULL, *lpath = NULL;
	struct stat st;
	uint8_t stored[16];
	bool known;
	int rc;

	*out = NULL;
	if (!(p = calloc(1, sizeof(*p))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	p->lockfd = -1;
	p->store = store;
	memcpy(p->id, id, 16);
	sodium_bin2hex(p->idhex, sizeof(p->idhex), id, 16);
	if (!(p->dir = strdup(dir)) || !(hpath = path_join(p->dir, "history.git")) ||
	    !(rpath = path_join(p->dir, "replica.db")) || !(lpath = path_join(p->dir, "lock"))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto fail;
	}
	if (stat(p->dir, &st) != 0) {
		if (!create) {
			rc = samen_error_set(SAMEN_ENOTFOUND, "no plan %s in store %s", p->idhex, store->path);
			goto fail;
		}
		if ((rc = mkdir_p(p->dir)) < 0)
			goto fail;
	}
	p->lockfd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (p->lockfd < 0 || flock(p->lockfd, LOCK_EX) != 0) {
		rc = samen_error_set(errno == EROFS || errno == EACCES ? SAMEN_EPERM : SAMEN_EIO,
		                     "cannot lock plan %s: %s", p->idhex, strerror(errno));
		goto fail;
	}
	remove_stale_ref_locks(hpath);
	if ((rc = history_open(&p->hist, hpath, create)) < 0)
		goto fail;
	rc = plan_open_replica(p, rpath);
	if (rc == SAMEN_ECORRUPT) {
		/* The replica is only a cache of the history: set the damaged file
		 * aside and build a new one. */
		char *aside = malloc(strlen(rpath) + 32);
		if (!aside) {
			rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			goto fail;
		}
		sprintf(aside, "%s.damaged-%ld", rpath, (long)time(NULL));
		rename(rpath, aside);
		free(aside);
		for (const char *sfx = "-wal"; sfx; sfx = strcmp(sfx, "-wal") == 0 ? "-shm" : NULL) {
			char w[4096];
			snprintf(w, sizeof(w), "%s%s", rpath, sfx);
			unlink(w);
		}
		rc = plan_open_replica(p, rpath);
	}
	if (rc < 0)
		goto fail;
	if ((rc = replica_plan_id(p->rep, stored, &known)) < 0)
		goto fail;
	if (known && memcmp(stored, id, 16) != 0) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica in %s belongs to another plan", p->dir);
		goto fail;
	}
	if (!known && (rc = replica_set_plan_id(p->rep, id)) < 0)
		goto fail;
	if ((rc = plan_recover(p, NULL)) < 0)
		goto fail;
	if ((rc = load_meta(p)) < 0)
		goto fail;
	free(hpath);
	free(rpath);
	free(lpath);
	*out = p;
	return 0;
fail:
	free(hpath);
	free(rpath);
	free(lpath);
	samen_plan_free(p);
	return rc;
}

int plan_open_dir(samen_plan **out, samen_store *store, const uint8_t id[16], bool create)
{
	char hex[33], *dir;
	int rc;
	sodium_bin2hex(hex, sizeof(hex), id, 16);
	if (!(dir = path_join(store->plans_dir, hex)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	rc = plan_open_at(out, store, id, dir, create);
	free(dir);
	return rc;
}

/* A new plan is built in plans/.new-<id>, which `plan list` does not see,
 * and renamed into place once it holds something: a crash halfway never
 * leaves a half-made plan where a plan is expected. */
int plan_open_staged(samen_plan **out, samen_store *store, const uint8_t id[16])
{
	char prefix[48], name[80], *dir;
	DIR *d;
	struct dirent *de;
	int rc;

	snprintf(prefix, sizeof(prefix), ".new-");
	sodium_bin2hex(prefix + 5, sizeof(prefix) - 5, id, 16);
	/* Remove what interrupted attempts left: staging directories of this
	 * plan whose lock nobody holds. */
	if ((d = opendir(store->plans_dir))) {
		while ((de = readdir(d))) {
			char *old, *lock;
			int fd;
			if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
				continue;
			old = path_join(store->plans_dir, de->d_name);
			lock = old ? path_join(old, "lock") : NULL;
			fd = lock ? open(lock, O_RDWR | O_CLOEXEC) : -1;
			if (old && (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) == 0))
				remove_tree(old);
			if (fd >= 0)
				close(fd);
			free(old);
			free(lock);
		}
		closedir(d);
	}
	snprintf(name, sizeof(name), "%s-%ld", prefix, (long)getpid());
	if (!(dir = path_join(store->plans_dir, name)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	rc = plan_open_at(out, store, id, dir, true);
	free(dir);
	return rc;
}

int plan_publish(samen_plan **pp)
{
	samen_plan *p = *pp;
	samen_store *store = p->store;
	uint8_t id[16];
	char *staged = strdup(p->dir), *final = path_join(store->plans_dir, p->idhex);
	int rc = 0, dfd;

	memcpy(id, p->id, 16);
	if (!staged || !final) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	samen_plan_free(p);
	*pp = NULL;
	if (rename(staged, final) != 0) {
		rc = samen_error_set(errno == EEXIST || errno == ENOTEMPTY ? SAMEN_EEXISTS : SAMEN_EIO,
		                     "cannot move the new plan into place (%s): %s", final, strerror(errno));
		goto cleanup;
	}
	if ((dfd = open(store->plans_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
		fsync(dfd);
		close(dfd);
	}
	rc = plan_open_dir(pp, store, id, false);
cleanup:
	free(staged);
	free(final);
	return rc;
}

void samen_plan_free(samen_plan *p)
{
	if (!p)
		return;
	replica_close(p->rep);
	history_free(p->hist);
	if (p->lockfd >= 0)
		close(p->lockfd); /* releases the flock */
	free(p->dir);
	free(p);
}

const char *samen_plan_id(const samen_plan *p) { return p->idhex; }
const char *samen_plan_client(const samen_plan *p) { return p->client; }
const char *samen_plan_lang(const samen_plan *p) { return p->lang[0] ? p->lang : "nl"; }
const char *samen_plan_dir(const samen_plan *p) { return p->dir; }

int samen_plan_open(samen_plan **out, samen_store *store, const char *which)
{
	samen_plan_info *plans = NULL;
	size_t n = 0, match = 0, idx = 0;
	uint8_t id[16];
	int rc;

	*out = NULL;
	if ((rc = samen_store_plans(store, &plans, &n)) < 0)
		return rc;
	if (n == 0) {
		free(plans);
		return samen_error_set(SAMEN_ENOTFOUND, "this store holds no plan yet (samen plan create --client NAME, "
		                                        "or samen bundle import FILE)");
	}
	for (size_t i = 0; i < n; i++) {
		if (!which || strncmp(plans[i].id, which, strlen(which)) == 0 || strcmp(plans[i].client, which) == 0) {
			match++;
			idx = i;
		}
	}
	if (match != 1) {
		rc = match == 0 ? samen_error_set(SAMEN_ENOTFOUND, "no plan '%s' in this store (see samen plan list)", which)
		                : samen_error_set(SAMEN_EAMBIGUOUS, which ? "'%s' matches %zu plans; give more of the id"
		                                                          : "%s%zu plans in this store; choose one with --plan",
		                                  which ? which : "", match);
		free(plans);
		return rc;
	}
	sodium_hex2bin(id, 16, plans[idx].id, 32, NULL, NULL, NULL);
	free(plans);
	return plan_open_dir(out, store, id, false);
}

/* --- the path of a change --------------------------------------------------- */

static char *commit_message(samen_plan *p, ingest_batch *b, const ingest_item *it)
{
	const char *lang = p->lang[0] ? p->lang : "nl";
	/* The plan's language comes from the genesis, which is in every change's
	 * causal past: the replica has it, or this change or batch carries it. */
	for (size_t i = 0; i < b->n && !p->lang[0]; i++)
		if (b->items[i].ch.nops && b->items[i].ch.ops[0].kind == SAMEN_OP_PLAN)
			lang = b->items[i].ch.ops[0].str2_len == 2 && memcmp(b->items[i].ch.ops[0].str2, "en", 2) == 0 ? "en" : "nl";
	return change_commit_message(&it->ch, it->id, lang);
}

char *change_commit_message(const samen_change *c, const uint8_t id[32], const char *lang)
{
	char *summary, *msg, idhex[65];
	size_t len;
	summary = change_summary(c, lang);
	if (!summary)
		return NULL;
	sodium_bin2hex(idhex, sizeof(idhex), id, 32);
	len = strlen(summary) + 128;
	msg = malloc(len);
	if (msg)
		snprintf(msg, len, "%s\n\nSamen-Change: %s\n", summary, idhex);
	free(summary);
	return msg;
}

static int parent_commit(samen_plan *p, ingest_batch *b, const uint8_t id[32], git_oid *out)
{
	ingest_item *pi = ingest_find(b, id);
	uint8_t raw[20];
	if (pi && pi->has_commit && pi->state == ITEM_READY) {
		git_oid_fromraw(out, pi->commit);
		return 0;
	}
	if (replica_change_commit(p->rep, id, raw) == 0) {
		git_oid_fromraw(out, raw);
		return 0;
	}
	return samen_error_set(SAMEN_ECORRUPT, "internal: a dependency has no history commit");
}

/* Move each author's device ref to its newest change in the batch (the
 * last one in causal order), only after every object is on disk. A device
 * that equivocated has two branches: the ref keeps to one (it only
 * fast-forwards), and the tip of the other gets a fork ref, so that every
 * change stays reachable in git. */
static int move_device_refs(samen_plan *p, ingest_batch *b)
{
	hmap covered; /* changes of the batch below a tip already handled */
	int rc = 0;
	hmap_init(&covered, 32);
	for (size_t k = b->nready; k-- > 0 && rc == 0;) {
		ingest_item *it = &b->items[b->order[k]], *below;
		git_oid cur, commit;
		if (hmap_get(&covered, it->id))
			continue;
		/* a tip: its author's earlier changes in the batch are below it */
		for (below = it; below && rc == 0;) {
			if ((rc = hmap_put(&covered, below->id, 1)) < 0)
				break;
			below = below->ch.has_prev ? ingest_find(b, below->ch.prev) : NULL;
			if (below && (below->state != ITEM_READY || hmap_get(&covered, below->id)))
				below = NULL;
		}
		if (rc < 0)
			break;
		git_oid_fromraw(&commit, it->commit);
		if (history_get_device_ref(p->hist, it->ch.author, &cur) == 0) {
			/* already there, or already further (recovery re-applies
			 * changes whose refs had moved on) */
			if (git_oid_equal(&cur, &commit) ||
			    git_graph_descendant_of(history_repo(p->hist), &cur, &commit) == 1)
				continue;
			if (git_graph_descendant_of(history_repo(p->hist), &commit, &cur) != 1) {
				rc = history_set_fork_ref(p->hist, it->ch.author, &commit);
				continue;
			}
		}
		rc = history_set_device_ref(p->hist, it->ch.author, &commit);
	}
	hmap_free(&covered);
	return rc;
}

/* Writing a pack (compression, index) and materializing into SQLite take
 * about as long as each other, and this machine class has two cores: the
 * history is made durable on a second thread while the replica transaction
 * is prepared, and the transaction commits only after the history thread
 * succeeded. The order of durable writes is unchanged: objects, refs, SQLite. */
typedef struct {
	samen_plan *plan;
	ingest_batch *batch;
	pthread_t thread;
	bool started, joined;
	int rc;
	char err[1024];
} history_job;

static void *history_thread(void *arg)
{
	history_job *j = arg;
	j->rc = history_batch_commit(j->plan->hist);
	if (j->rc < 0)
		history_batch_abort(j->plan->hist); /* so the next batch can start */
	else
		j->rc = move_device_refs(j->plan, j->batch);
	if (j->rc < 0)
		snprintf(j->err, sizeof(j->err), "%s", samen_error_last());
	return NULL;
}

static int history_join(void *payload)
{
	history_job *j = payload;
	if (!j->started || j->joined)
		return j->rc;
	pthread_join(j->thread, NULL);
	j->joined = true;
	if (j->rc < 0)
		samen_error_set(j->rc, "%s", j->err);
	return j->rc;
}

int plan_ingest(samen_plan *p, ingest_batch *b)
{
	int rc;
	if ((rc = replica_order(p->rep, b)) < 0)
		return rc;
	return write_and_apply(p, b);
}

/* Steps 3 and 4 of the path of a change for an ordered batch: history
 * objects (skipped for changes that already have their commit), device
 * refs, then the replica. */
static int write_and_apply(samen_plan *p, ingest_batch *b)
{
	git_oid parents[SAMEN_MAX_DEPS + 1], commit, blob;
	history_job job;
	bool batch = false;
	int rc;

	memset(&job, 0, sizeof(job));
	if (b->nready > 1) {
		if ((rc = history_batch_begin(p->hist)) < 0)
			return rc;
		batch = true;
	}
	for (size_t k = 0; k < b->nready; k++) {
		ingest_item *it = &b->items[b->order[k]];
		history_entry e;
		char fp[17], *msg;
		char name[SAMEN_MAX_NAME + 1];
		size_t np = 0;
		if (it->has_commit) { /* recovered from our own history */
			history_blob_id(&blob, it->bytes, it->len);
			memcpy(it->blob, blob.id, 20);
			it->has_blob = true;
			continue;
		}
		if (it->ch.has_prev && (rc = parent_commit(p, b, it->ch.prev, &parents[np++])) < 0)
			goto fail;
		for (uint32_t d = 0; d < it->ch.ndeps; d++)
			if ((rc = parent_commit(p, b, change_dep(&it->ch, d), &parents[np++])) < 0)
				goto fail;
		sodium_bin2hex(fp, sizeof(fp), it->ch.author, 8);
		memcpy(name, it->ch.name, it->ch.name_len);
		name[it->ch.name_len] = '\0';
		if (!(msg = commit_message(p, b, it))) {
			rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			goto fail;
		}
		e.change = it->bytes;
		e.change_len = it->len;
		e.sig = it->sig;
		e.parents = parents;
		e.nparents = np;
		e.author_name = name;
		e.author_email = fp;
		e.time = it->ch.time;
		e.message = msg;
		rc = history_write_change_ex(p->hist, &commit, &blob, &e);
		free(msg);
		if (rc < 0)
			goto fail;
		memcpy(it->commit, commit.id, 20);
		it->has_commit = true;
		memcpy(it->blob, blob.id, 20);
		it->has_blob = true;
	}
	if (batch) {
		job.plan = p;
		job.batch = b;
		batch = false; /* the job owns the batch now */
		if (pthread_create(&job.thread, NULL, history_thread, &job) == 0)
			job.started = true;
		else if (history_thread(&job), job.rc < 0) /* no thread: do it here, first */
			return samen_error_set(job.rc, "%s", job.err);
		rc = replica_apply_ex(p->rep, b, history_join, &job);
		if (history_join(&job) < 0 && rc == 0)
			rc = job.rc;
		if (rc < 0)
			return rc;
	} else {
		if ((rc = move_device_refs(p, b)) < 0)
			return rc;
		if ((rc = replica_apply(p->rep, b)) < 0)
			return rc;
	}
	return load_meta(p);
fail:
	if (batch)
		history_batch_abort(p->hist);
	return rc;
}
