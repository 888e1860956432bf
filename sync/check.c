/*
 * check.c - `samen check` and `samen rebuild`: the replica against the
 * history it caches.
 */
#include "sync/internal.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
	samen_plan *plan;
	int64_t commits, missing;
	int rc;
	hmap seen;    /* commits counted: a fork's branches share their start */
} walk_ctx;

static int count_change(const git_oid *commit, uint8_t *bytes, size_t len, const uint8_t sig[64],
                        const uint8_t id[32], void *payload)
{
	walk_ctx *w = payload;
	(void)len;
	(void)sig;
	free(bytes);
	if (hmap_get(&w->seen, commit->id))
		return 1; /* the rest of this chain was counted too */
	if (hmap_put(&w->seen, commit->id, 1) < 0)
		return SAMEN_ENOMEM;
	w->commits++;
	if (!replica_has_change(w->plan->rep, id))
		w->missing++;
	return 0;
}

static int count_chain(const uint8_t key[32], const git_oid *commit, void *payload)
{
	walk_ctx *w = payload;
	(void)key;
	return w->rc = plan_walk_chain(w->plan, commit, count_change, w);
}

/* Fields of live entities holding more than one value. */
static const char conflicts_sql[] =
	"SELECT count(*) FROM (SELECT 1 FROM fields f JOIN entities e ON e.rowid = f.entity"
	" WHERE e.deleted IS NULL GROUP BY f.entity, f.field HAVING count(*) > 1)";

static int64_t count(samen_plan *p, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(replica_db(p->rep), sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return n;
}

static int count_one(const samen_member_view *m, void *payload)
{
	if (!m->revoked)
		(*(int64_t *)payload)++;
	return 0;
}

/* Members not revoked, the client included. */
static int64_t count_members(samen_plan *p)
{
	int64_t n = 0;
	samen_member_views(p, count_one, &n);
	return n;
}

static int count_cycle(const samen_entity_view *e, void *payload)
{
	if (e->cycle)
		(*(int *)payload)++;
	return 0;
}

int samen_plan_check(samen_plan *p, samen_check_result *res, char hash[65])
{
	walk_ctx w = {p, 0, 0, 0, {0}};
	sqlite3_stmt *s = NULL;
	git_odb *odb = NULL;
	int rc;
	int64_t without_commit = 0;

	memset(res, 0, sizeof(*res));
	/* a check also folds the WAL into the database file, so the file on
	 * its own is complete afterwards */
	if ((rc = replica_checkpoint(p->rep)) < 0)
		return rc;
	if (sqlite3_prepare_v2(replica_db(p->rep), "PRAGMA integrity_check(1)", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica database is damaged: %s (run samen rebuild)",
		                     (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		return rc;
	}
	sqlite3_finalize(s);
	s = NULL;
	hmap_init(&w.seen, 20);
	if ((rc = history_foreach_device_ref(p->hist, count_chain, &w)) < 0 ||
	    (rc = history_foreach_fork_ref(p->hist, count_chain, &w)) < 0) {
		hmap_free(&w.seen);
		return samen_error_wrap(rc, "reading the history");
	}
	hmap_free(&w.seen);
	/* every applied change must have its commit in the history */
	if (git_repository_odb(&odb, history_repo(p->hist)) < 0)
		return samen_error_set(SAMEN_EIO, "history: %s", git_error_last() ? git_error_last()->message : "?");
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT commit_oid FROM changes", -1, &s, NULL) == SQLITE_OK) {
		while (sqlite3_step(s) == SQLITE_ROW) {
			git_oid oid;
			if (sqlite3_column_bytes(s, 0) != 20) {
				without_commit++;
				continue;
			}
			git_oid_fromraw(&oid, sqlite3_column_blob(s, 0));
			if (!git_odb_exists(odb, &oid))
				without_commit++;
		}
	}
	sqlite3_finalize(s);
	git_odb_free(odb);
	res->changes = count(p, "SELECT count(*) FROM changes");
	res->accepted = count(p, "SELECT count(*) FROM changes WHERE verdict = 1");
	res->rejected = count(p, "SELECT count(*) FROM changes WHERE verdict = 0");
	res->pending = count(p, "SELECT count(*) FROM pending");
	res->entities = count(p, "SELECT count(*) FROM entities WHERE deleted IS NULL");
	res->conflicts = count(p, conflicts_sql);
	res->members = count_members(p);
	res->history_only = w.missing;
	if ((rc = samen_entity_list(p, "goal", count_cycle, &res->cycles)) < 0)
		return rc;
	if ((rc = samen_plan_state_hash(p, hash)) < 0)
		return rc;
	if (w.missing)
		return samen_error_set(SAMEN_ECORRUPT, "%lld changes are in the history but not in the replica"
		                                       " (reopen the plan or run samen rebuild)", (long long)w.missing);
	if (without_commit)
		return samen_error_set(SAMEN_ECORRUPT, "%lld changes in the replica have no commit in the history",
		                       (long long)without_commit);
	if (w.commits != res->changes)
		return samen_error_set(SAMEN_ECORRUPT, "history holds %lld changes, replica %lld",
		                       (long long)w.commits, (long long)res->changes);
	return 0;
}

int samen_plan_rebuild(samen_plan *p)
{
	char path[4096];
	const char *sfx[] = {"", "-wal", "-shm", ".clean"};
	int rc;

	replica_close(p->rep);
	p->rep = NULL;
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(path, sizeof(path), "%s/replica.db%s", p->dir, sfx[i]);
		if (unlink(path) != 0 && i == 0 && access(path, F_OK) == 0)
			return samen_error_set(SAMEN_EIO, "cannot remove %s", path);
	}
	snprintf(path, sizeof(path), "%s/replica.db", p->dir);
	if ((rc = plan_open_replica(p, path)) < 0)
		return rc;
	if ((rc = replica_set_plan_id(p->rep, p->id)) < 0)
		return rc;
	return plan_recover(p, NULL);
}

int samen_plan_status(samen_plan *p, samen_status *st)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL, *waiting = NULL;
	hmap missing;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	st->changes = count(p, "SELECT count(*) FROM changes");
	st->rejected = count(p, "SELECT count(*) FROM changes WHERE verdict = 0");
	st->pending = count(p, "SELECT count(*) FROM pending");
	st->evidence = count(p, "SELECT count(*) FROM forks");
	st->goals = count(p, "SELECT count(*) FROM entities WHERE type = 1 AND deleted IS NULL");
	st->conflicts = count(p, conflicts_sql);
	st->member = plan_device_may_sync(p, p->store->pk);
	if (sqlite3_prepare_v2(db, "SELECT id, name, time FROM changes ORDER BY lamport DESC, id DESC LIMIT 1", -1, &s,
	                       NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW) {
		sodium_bin2hex(st->last_change, sizeof(st->last_change), sqlite3_column_blob(s, 0), 32);
		snprintf(st->last_author, sizeof(st->last_author), "%s", (const char *)sqlite3_column_text(s, 1));
		st->last_time = sqlite3_column_int64(s, 2);
	}
	sqlite3_finalize(s);
	s = NULL;
	/* what the waiting changes wait for: their prev and deps not yet here */
	hmap_init(&missing, 32);
	if (st->pending && sqlite3_prepare_v2(db, "SELECT body FROM pending", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "SELECT 1 FROM pending WHERE id = ?", -1, &waiting, NULL) == SQLITE_OK) {
		while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
			samen_change c;
			if (change_decode(&c, sqlite3_column_blob(s, 0), (size_t)sqlite3_column_bytes(s, 0)) < 0)
				continue;
			for (uint32_t k = 0; k <= c.ndeps && rc == 0; k++) {
				const uint8_t *id = k == 0 ? (c.has_prev ? c.prev : NULL) : change_dep(&c, k - 1);
				if (!id || replica_has_change(p->rep, id) || hmap_get(&missing, id))
					continue;
				/* a change that is itself waiting is not missing */
				sqlite3_reset(waiting);
				sqlite3_bind_blob(waiting, 1, id, 32, SQLITE_STATIC);
				if (sqlite3_step(waiting) != SQLITE_ROW)
					rc = hmap_put(&missing, id, 1);
			}
			change_clear(&c);
		}
		samen_error_clear();
	}
	sqlite3_finalize(s);
	sqlite3_finalize(waiting);
	st->missing = (int64_t)missing.count;
	hmap_free(&missing);
	return rc;
}

int samen_plan_gc(samen_plan *p, uint64_t *after)
{
	return history_gc(p->hist, after);
}
