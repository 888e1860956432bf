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
} walk_ctx;

static int count_chain(const uint8_t key[32], const git_oid *commit, void *payload)
{
	walk_ctx *w = payload;
	git_oid cur = *commit, parents[SAMEN_MAX_DEPS + 1];
	size_t np;
	(void)key;
	for (;;) {
		uint8_t *bytes = NULL, sig[64], id[32];
		size_t len;
		int seq1 = 0;
		int rc = history_read_change(w->plan->hist, &cur, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
		                             SAMEN_MAX_DEPS + 1, &np);
		if (rc < 0) {
			w->rc = rc;
			return rc;
		}
		change_id(id, bytes, len);
		{
			samen_change c;
			/* the chain of prevs ends at the device's seq 1; its other
			 * parents belong to other devices, walked from their own refs */
			if (change_decode(&c, bytes, len) == 0) {
				seq1 = c.seq == 1;
				change_clear(&c);
			}
		}
		free(bytes);
		w->commits++;
		if (!replica_has_change(w->plan->rep, id))
			w->missing++;
		if (np == 0 || seq1)
			break;
		cur = parents[0];
	}
	return 0;
}

static int64_t count(samen_plan *p, const char *sql)
{
	sqlite3_stmt *s = NULL;
	int64_t n = -1;
	if (sqlite3_prepare_v2(replica_db(p->rep), sql, -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		n = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
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
	walk_ctx w = {p, 0, 0, 0};
	sqlite3_stmt *s = NULL;
	git_odb *odb = NULL;
	int rc;
	int64_t without_commit = 0;

	memset(res, 0, sizeof(*res));
	if (sqlite3_prepare_v2(replica_db(p->rep), "PRAGMA integrity_check(1)", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica database is damaged: %s (run samen rebuild)",
		                     (const char *)sqlite3_column_text(s, 0));
		sqlite3_finalize(s);
		return rc;
	}
	sqlite3_finalize(s);
	s = NULL;
	if ((rc = history_foreach_device_ref(p->hist, count_chain, &w)) < 0)
		return samen_error_wrap(rc, "reading the history");
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
	res->conflicts = count(p, "SELECT count(*) FROM (SELECT 1 FROM fields f JOIN entities e ON e.rowid = f.entity"
	                          " WHERE e.deleted IS NULL GROUP BY f.entity, f.field HAVING count(*) > 1)");
	res->members = count(p, "SELECT count(DISTINCT key) FROM members") + 1;
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
	const char *sfx[] = {"", "-wal", "-shm"};
	int rc;

	replica_close(p->rep);
	p->rep = NULL;
	for (size_t i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/replica.db%s", p->dir, sfx[i]);
		if (unlink(path) != 0 && i == 0 && access(path, F_OK) == 0)
			return samen_error_set(SAMEN_EIO, "cannot remove %s", path);
	}
	snprintf(path, sizeof(path), "%s/replica.db", p->dir);
	if ((rc = replica_open(&p->rep, path)) < 0)
		return rc;
	if ((rc = replica_set_plan_id(p->rep, p->id)) < 0)
		return rc;
	return plan_recover(p, NULL);
}
