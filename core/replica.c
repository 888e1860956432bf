/*
 * replica.c - the SQLite replica and the merge.
 *
 * Tables (see docs/format.md for the full description):
 *   meta      plan id, creator, client, language
 *   devs      local numbering of device keys (devno); local only
 *   changes   every applied change: id, author, seq, lamport, verdict, vv,
 *             signature, and where its bytes are in the history (or the
 *             bytes, when there is no history)
 *   heads     changes that no other change builds on
 *   rights    the accepted rights ops (grants, revocations, scopes, links,
 *             unlinks, approvals); who may do what is docs/rights.md
 *   arealog   every accepted assignment placing an entity in a life area
 *   entities  (creator devno, n) -> type, uid, deleted
 *   fields    the live values of every register; win = 1 marks the value
 *             every replica shows
 *   pending   verified changes waiting for a dependency
 *   forks     devices that signed two different changes with one seq
 *             (equivocation), with the lowest such seq
 *
 * Merge rule (multi-value register): a SET op of change C removes every
 * live value of that register whose change lies in C's causal past, then
 * adds its own. Changes are applied in causal order, so a value that stays
 * live alongside another was written concurrently. The winner is the value
 * with the highest Lamport clock, then the greatest author key: the same on
 * every replica, and never decided by wall time.
 *
 * Causality is answered in O(1) by version vectors: vv(C)[d] is the highest
 * seq of device d in C's causal past (C included), so X is in C's past iff
 * vv(C)[dev(X)] >= seq(X).
 *
 * Verdicts: a change is judged from its causal past (validate_change), except
 * that an accepted revocation or unlink rejects its target's changes that it
 * had not seen. When such a revocation arrives after changes it rejects were
 * accepted, every verdict is decided again by replay_all(), in (Lamport, id)
 * order; without one, applying stays incremental (docs/rights.md).
 */
#include "core/replica.h"
#include "core/mpread.h"
#include "core/rights.h"
#include "core/schema.h"
#include "samen/common.h"

#include <msgpack.h>
#include <pthread.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The replica's format (PRAGMA user_version): raise it when a table, an
 * index or a view changes. */
#define REPLICA_FORMAT 3

/* --- statements ----------------------------------------------------------- */

enum {
	ST_CHANGE_BY_ID,
	ST_CHANGE_INSERT,
	ST_DEV_INSERT,
	ST_HEAD_DELETE,
	ST_HEAD_INSERT,
	ST_RIGHT_INSERT,
	ST_AREALOG_INSERT,
	ST_AREALOG_GET,
	ST_LABEL_GET,
	ST_LATER_ACCEPTED,
	ST_VERDICT_SET,
	ST_ENTITY_GET,
	ST_ENTITY_INSERT,
	ST_ENTITY_DELETE,
	ST_FIELDS_GET,
	ST_FIELDS_DELETE,
	ST_FIELDS_SET_WIN,
	ST_FIELDS_INSERT,
	ST_PENDING_INSERT,
	ST_PENDING_DELETE,
	ST_PENDING_WAITING,
	ST_FORK_INSERT,
	ST_CHANGE_BY_DEVSEQ,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_CHANGE_BY_ID] = "SELECT rowid, devno, seq, lamport, vv, commit_oid, ctr_end FROM changes WHERE id = ?",
	[ST_CHANGE_INSERT] = "INSERT INTO changes(id, devno, seq, lamport, time, name, nops, commit_oid, verdict, reason, vv, ctr_end, body, sig, blob)"
	                     " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[ST_DEV_INSERT] = "INSERT INTO devs(key) VALUES (?)",
	[ST_HEAD_DELETE] = "DELETE FROM heads WHERE change = ?",
	[ST_HEAD_INSERT] = "INSERT OR IGNORE INTO heads(change) VALUES (?)",
	[ST_RIGHT_INSERT] = "INSERT OR REPLACE INTO rights(change, op, effective, author_member, author_role) VALUES (?,?,?,?,?)",
	[ST_AREALOG_INSERT] = "INSERT OR REPLACE INTO arealog(entity, change, op, value) VALUES (?,?,?,?)",
	[ST_AREALOG_GET] = "SELECT a.value, c.devno, c.seq, c.lamport FROM arealog a JOIN changes c ON c.rowid = a.change"
	                   " WHERE a.entity = ?",
	[ST_LABEL_GET] = "SELECT sqlval FROM fields WHERE entity = ? AND field = 1 AND win",
	[ST_VERDICT_SET] = "UPDATE changes SET verdict = ?, reason = ? WHERE rowid = ?",
	[ST_LATER_ACCEPTED] = "SELECT 1 FROM changes WHERE devno = ? AND seq > ? AND verdict = 1 AND rowid <> ? LIMIT 1",
	[ST_ENTITY_GET] = "SELECT e.rowid, e.type, c.devno, c.seq, e.deleted IS NOT NULL FROM entities e"
	                  " JOIN changes c ON c.rowid = e.created WHERE e.devno = ? AND e.n = ?",
	[ST_ENTITY_INSERT] = "INSERT INTO entities(devno, n, type, uid, created) VALUES (?,?,?,?,?)",
	[ST_ENTITY_DELETE] = "UPDATE entities SET deleted = ? WHERE rowid = ? AND deleted IS NULL",
	[ST_FIELDS_GET] = "SELECT f.change, f.op, c.devno, c.seq, c.lamport, f.value, f.win FROM fields f"
	                  " JOIN changes c ON c.rowid = f.change WHERE f.entity = ? AND f.field = ?",
	[ST_FIELDS_DELETE] = "DELETE FROM fields WHERE entity = ? AND field = ? AND change = ? AND op = ?",
	[ST_FIELDS_SET_WIN] = "UPDATE fields SET win = ? WHERE entity = ? AND field = ? AND change = ? AND op = ?",
	[ST_FIELDS_INSERT] = "INSERT INTO fields(entity, field, change, op, win, value, sqlval) VALUES (?,?,?,?,?,?,?)",
	[ST_PENDING_INSERT] = "INSERT OR REPLACE INTO pending(id, body, sig, waits_for) VALUES (?,?,?,?)",
	[ST_PENDING_WAITING] = "SELECT body, sig FROM pending WHERE waits_for = ?",
	[ST_PENDING_DELETE] = "DELETE FROM pending WHERE id = ?",
	[ST_FORK_INSERT] = "INSERT INTO forks(devno, seq) VALUES (?,?)"
	                   " ON CONFLICT(devno) DO UPDATE SET seq = min(seq, excluded.seq)",
	[ST_CHANGE_BY_DEVSEQ] = "SELECT id FROM changes WHERE devno = ? AND seq = ?",
};

struct replica {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	replica_blob_reader reader; /* change bytes kept in the history */
	void *reader_payload;
	char *path;
	bool opened;      /* fully opened: close may vouch for the file */
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS devs(devno INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS changes(rowid INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE,"
	" devno INTEGER NOT NULL, seq INTEGER NOT NULL, lamport INTEGER NOT NULL, time INTEGER NOT NULL,"
	" name TEXT NOT NULL, nops INTEGER NOT NULL, commit_oid BLOB, verdict INTEGER NOT NULL, reason TEXT,"
	" vv BLOB NOT NULL, ctr_end INTEGER NOT NULL, body BLOB, blob BLOB, sig BLOB NOT NULL);"
	/* not unique: a device that equivocates has two changes with one seq */
	"CREATE INDEX IF NOT EXISTS changes_devseq ON changes(devno, seq);"
	"CREATE TABLE IF NOT EXISTS forks(devno INTEGER PRIMARY KEY, seq INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS heads(change INTEGER PRIMARY KEY);"
	/* In WITHOUT ROWID tables the key columns come first: SQLite 3.40's
	 * integrity_check misreports NOT NULL columns placed before them. */
	/* the accepted rights ops (MEMBER_ADD ... APPROVE): the op itself is in
	 * the change's body; effective = 0 marks a revocation or unlink that
	 * lost a cycle (docs/rights.md); author_member/role as of its past */
	"CREATE TABLE IF NOT EXISTS rights(change INTEGER NOT NULL, op INTEGER NOT NULL, effective INTEGER NOT NULL,"
	" author_member BLOB NOT NULL, author_role INTEGER NOT NULL, PRIMARY KEY(change, op)) WITHOUT ROWID;"
	/* every accepted assignment that places an entity in a life area (its
	 * area field, or the goal of an action or PDSA cycle): a professional's
	 * scope is judged against the value in each change's own past */
	"CREATE TABLE IF NOT EXISTS arealog(entity INTEGER NOT NULL, change INTEGER NOT NULL, op INTEGER NOT NULL,"
	" value BLOB NOT NULL, PRIMARY KEY(entity, change, op)) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS entities(rowid INTEGER PRIMARY KEY, devno INTEGER NOT NULL,"
	" n INTEGER NOT NULL, type INTEGER NOT NULL, uid TEXT NOT NULL, created INTEGER NOT NULL,"
	" deleted INTEGER, UNIQUE(devno, n));"
	"CREATE INDEX IF NOT EXISTS entities_uid ON entities(uid);"
	"CREATE TABLE IF NOT EXISTS fields(entity INTEGER NOT NULL, field INTEGER NOT NULL,"
	" change INTEGER NOT NULL, op INTEGER NOT NULL, win INTEGER NOT NULL, value BLOB NOT NULL, sqlval,"
	" PRIMARY KEY(entity, field, change, op)) WITHOUT ROWID;"
	/* waits_for: one dependency that has not arrived; when it does, the
	 * rows waiting for it are loaded (and nothing else) */
	"CREATE TABLE IF NOT EXISTS pending(id BLOB PRIMARY KEY, body BLOB NOT NULL, sig BLOB NOT NULL,"
	" waits_for BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS pending_waits ON pending(waits_for);";

static int db_error(replica *r, const char *what)
{
	return samen_error_set(SAMEN_EIO, "replica database: %s: %s", what, sqlite3_errmsg(r->db));
}

static sqlite3_stmt *stmt(replica *r, int which)
{
	sqlite3_stmt *s = r->st[which];
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

/* One view per entity type, a column per field showing the winning value:
 * generated from the schema so a new type gets its view for free. */
static int create_views(replica *r)
{
	char sql[8192];
	for (uint32_t t = 1; t < 64; t++) {
		const type_def *td = schema_type(t);
		size_t o = 0;
		if (!td)
			continue;
		o += (size_t)snprintf(sql + o, sizeof(sql) - o,
		                      "DROP VIEW IF EXISTS %s; CREATE VIEW %s AS SELECT e.uid AS id", td->plural,
		                      td->plural);
		for (uint32_t i = 0; i < td->nfields && o < sizeof(sql); i++)
			o += (size_t)snprintf(sql + o, sizeof(sql) - o,
			                      ", (SELECT sqlval FROM fields f WHERE f.entity = e.rowid AND f.field = %u"
			                      " AND f.win) AS \"%s\"", td->fields[i].id, td->fields[i].name);
		if (o < sizeof(sql))
			o += (size_t)snprintf(sql + o, sizeof(sql) - o,
			                      ", e.rowid AS entity FROM entities e WHERE e.type = %u AND e.deleted IS NULL",
			                      td->id);
		if (o >= sizeof(sql))
			return samen_error_set(SAMEN_ERROR, "internal: view for %s too long", td->name);
		if (sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
			return db_error(r, "creating views");
	}
	return 0;
}

/* PRAGMA user_version holds the replica's format: tables, indexes and views
 * are created once, in one transaction, instead of at every open. Format 0
 * is a new file; an older format (or format 0 with tables, made before
 * formats were numbered) is set aside and rebuilt from the history. */
static int user_version(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s, NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return v;
}

static bool has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *s = NULL;
	bool found = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", -1, &s, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
		found = sqlite3_step(s) == SQLITE_ROW;
	}
	sqlite3_finalize(s);
	return found;
}

static int create_schema(replica *r)
{
	char sql[64];
	int rc;
	if (sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return db_error(r, "creating tables");
	/* another process may have made them while we waited for the lock */
	if (user_version(r->db) == REPLICA_FORMAT)
		return sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : db_error(r, "creating tables");
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", REPLICA_FORMAT);
	if (sqlite3_exec(r->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_error(r, "creating tables");
		goto fail;
	}
	if ((rc = create_views(r)) < 0)
		goto fail;
	if (sqlite3_exec(r->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		rc = db_error(r, "creating tables");
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

/* quick_check reports damage as result rows, not as an error code. */
static int quick_check_row(void *ok, int ncol, char **vals, char **names)
{
	(void)names;
	if (ncol < 1 || !vals[0] || strcmp(vals[0], "ok") != 0)
		*(int *)ok = 0;
	return 0;
}

/* The "clean" mark: replica.db.clean holds the size and modification time
 * the file had when the last process closed it properly. When they still
 * match at the next open, nothing has touched the file since, and the
 * quick_check (which reads every page: ~100 ms for 50 MB) is skipped. Any
 * other write, damage on disk, or a crash (no mark is written while open)
 * makes the check run. */
static char *clean_mark_path(const char *path)
{
	char *m = malloc(strlen(path) + 8);
	if (m)
		sprintf(m, "%s.clean", path);
	return m;
}

static bool clean_mark_matches(const char *path)
{
	char *mark = clean_mark_path(path), want[96], got[96] = "";
	struct stat st;
	FILE *f;
	bool match = false;
	if (!mark)
		return false;
	if (stat(path, &st) == 0 && (f = fopen(mark, "r"))) {
		snprintf(want, sizeof(want), "%lld %lld %ld\n", (long long)st.st_size, (long long)st.st_mtim.tv_sec,
		         (long)st.st_mtim.tv_nsec);
		match = fgets(got, sizeof(got), f) && strcmp(got, want) == 0;
		fclose(f);
	}
	unlink(mark); /* while open, the file is not vouched for */
	free(mark);
	return match;
}

static void clean_mark_write(const char *path)
{
	char *mark = clean_mark_path(path);
	struct stat st;
	FILE *f;
	if (mark && stat(path, &st) == 0 && (f = fopen(mark, "w"))) {
		fprintf(f, "%lld %lld %ld\n", (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
		fclose(f);
	}
	free(mark);
}

int replica_open(replica **out, const char *path)
{
	replica *r = NULL;
	int rc, quick_ok = 1, version = 0;
	bool vouched = clean_mark_matches(path);

	*out = NULL;
	if (!(r = calloc(1, sizeof(*r))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if (sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_EIO, "cannot open replica %s: %s", path,
		                     r->db ? sqlite3_errmsg(r->db) : "out of memory");
		goto fail;
	}
	sqlite3_busy_timeout(r->db, 10000);
	/* Closing does not checkpoint the WAL: a command on a big plan would
	 * otherwise copy and fsync megabytes at every exit. SQLite checkpoints
	 * as the WAL grows, and a lost or damaged WAL tail only loses
	 * transactions that the history replays on the next open. */
	sqlite3_db_config(r->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	/* WAL with synchronous=NORMAL survives a process crash; after a power
	 * loss the last transactions may be missing, and are re-applied from the
	 * history (which is fsynced first) when the plan is opened. */
	if (sqlite3_exec(r->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=OFF;"
	                 "PRAGMA cache_size=-16000;", NULL, NULL, NULL) != SQLITE_OK ||
	    (!vouched && (sqlite3_exec(r->db, "PRAGMA quick_check(1)", quick_check_row, &quick_ok, NULL) != SQLITE_OK ||
	                  !quick_ok)) ||
	    (version = user_version(r->db)) < 0) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica %s is not a usable database: %s", path,
		                     quick_ok ? sqlite3_errmsg(r->db) : "quick_check found damage");
		goto fail;
	}
	if (version > REPLICA_FORMAT) {
		/* made by a newer Samen: the replica is a cache, so it is set aside
		 * and rebuilt from the history rather than misread */
		rc = samen_error_set(SAMEN_ECORRUPT, "replica %s has format %d; this Samen knows format %d", path,
		                     version, REPLICA_FORMAT);
		goto fail;
	}
	if (version < REPLICA_FORMAT && (version > 0 || has_table(r->db, "changes"))) {
		/* an older format (format 0 with tables: before formats were
		 * numbered); formats up to 1 kept every change's bytes, which now
		 * live in the history only */
		rc = samen_error_set(SAMEN_ECORRUPT, "replica %s has an older format; it is rebuilt from the history", path);
		goto fail;
	}
	if (version < REPLICA_FORMAT && (rc = create_schema(r)) < 0)
		goto fail;
	for (int i = 0; i < ST__COUNT; i++)
		if (sqlite3_prepare_v3(r->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL) != SQLITE_OK) {
			rc = db_error(r, stmt_sql[i]);
			goto fail;
		}
	if (!(r->path = strdup(path))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto fail;
	}
	r->opened = true;
	*out = r;
	return 0;
fail:
	replica_close(r);
	return rc;
}

void replica_close(replica *r)
{
	if (!r)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(r->st[i]);
	/* the mark vouches for replica.db as closed; committed pages still in
	 * the WAL are protected by SQLite's frame checksums */
	if (sqlite3_close(r->db) == SQLITE_OK && r->opened && r->path)
		clean_mark_write(r->path);
	free(r->path);
	free(r);
}

sqlite3 *replica_db(replica *r) { return r->db; }

void replica_set_blob_reader(replica *r, replica_blob_reader fn, void *payload)
{
	r->reader = fn;
	r->reader_payload = payload;
}

int replica_row_change(replica *r, sqlite3_stmt *s, int body_col, int blob_col, int id_col, uint8_t **bytes,
                       size_t *len)
{
	uint8_t got[32], *b = NULL;
	size_t n = 0;
	char idhex[17] = "?";
	int rc;

	*bytes = NULL;
	*len = 0;
	if (sqlite3_column_bytes(s, id_col) == 32)
		sodium_bin2hex(idhex, sizeof(idhex), sqlite3_column_blob(s, id_col), 8);
	if (sqlite3_column_type(s, body_col) == SQLITE_BLOB) {
		n = (size_t)sqlite3_column_bytes(s, body_col);
		if (!(b = malloc(n ? n : 1)))
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		memcpy(b, sqlite3_column_blob(s, body_col), n);
		*bytes = b;
		*len = n;
		return 0;
	}
	if (sqlite3_column_bytes(s, blob_col) != 20 || sqlite3_column_bytes(s, id_col) != 32)
		return samen_error_set(SAMEN_ECORRUPT, "replica: change %s has neither its bytes nor their place in the"
		                       " history (run samen rebuild)", idhex);
	if (!r->reader)
		return samen_error_set(SAMEN_ERROR, "internal: change %s is in the history, which is not open", idhex);
	if ((rc = r->reader(r->reader_payload, sqlite3_column_blob(s, blob_col), &b, &n)) < 0)
		return samen_error_wrap(rc, "change %s", idhex);
	/* the history is checked too: its copy must be the change itself */
	change_id(got, b, n);
	if (memcmp(got, sqlite3_column_blob(s, id_col), 32) != 0) {
		free(b);
		return samen_error_set(SAMEN_ECORRUPT, "change %s: the history's copy of it is not the change (run git"
		                       " fsck on the plan's history.git)", idhex);
	}
	*bytes = b;
	*len = n;
	return 0;
}

int replica_checkpoint(replica *r)
{
	/* a cached statement left on a row holds a read snapshot, which a
	 * TRUNCATE checkpoint would wait for forever: reset them all first */
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_reset(r->st[i]);
	if (sqlite3_exec(r->db, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL) != SQLITE_OK)
		return db_error(r, "checkpoint");
	return 0;
}

int replica_begin(replica *r)
{
	return sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : db_error(r, "begin");
}

/* A cached statement left on a row keeps a read transaction open after
 * COMMIT; while one is open SQLite can never checkpoint the WAL, which then
 * grows with every write and is re-read at every open. So every cached
 * statement is reset when a transaction ends. */
static void reset_cached(replica *r)
{
	for (int i = 0; i < ST__COUNT; i++)
		if (r->st[i])
			sqlite3_reset(r->st[i]);
}

int replica_commit(replica *r)
{
	reset_cached(r);
	return sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : db_error(r, "commit");
}

void replica_rollback(replica *r)
{
	reset_cached(r);
	sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
}

static int meta_get_blob(replica *r, const char *key, void *out, size_t len)
{
	sqlite3_stmt *s = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(r->db, "SELECT value FROM meta WHERE key = ?", -1, &s, NULL) != SQLITE_OK)
		return db_error(r, "meta");
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && (size_t)sqlite3_column_bytes(s, 0) == len) {
		memcpy(out, sqlite3_column_blob(s, 0), len);
		found = 1;
	}
	sqlite3_finalize(s);
	return found;
}

static int meta_set(replica *r, const char *key, const void *val, int len, int is_text)
{
	sqlite3_stmt *s = NULL;
	int rc;
	if (sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", -1, &s, NULL) != SQLITE_OK)
		return db_error(r, "meta");
	sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (is_text)
		sqlite3_bind_text(s, 2, val, len, SQLITE_TRANSIENT);
	else
		sqlite3_bind_blob(s, 2, val, len, SQLITE_TRANSIENT);
	rc = sqlite3_step(s) == SQLITE_DONE ? 0 : db_error(r, "meta");
	sqlite3_finalize(s);
	return rc;
}

int replica_plan_id(replica *r, uint8_t plan[16], bool *known)
{
	int rc = meta_get_blob(r, "plan", plan, 16);
	if (rc < 0)
		return rc;
	*known = rc == 1;
	if (!*known)
		memset(plan, 0, 16);
	return 0;
}

int replica_set_plan_id(replica *r, const uint8_t plan[16])
{
	return meta_set(r, "plan", plan, 16, 0);
}

/* --- the ingest batch --------------------------------------------------------- */

int ingest_init(ingest_batch *b, const uint8_t plan[16])
{
	memset(b, 0, sizeof(*b));
	memcpy(b->plan, plan, 16);
	return hmap_init(&b->byid, 32);
}

void ingest_free(ingest_batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		change_clear(&b->items[i].ch);
		free(b->items[i].bytes);
		free(b->items[i].error);
	}
	free(b->items);
	free(b->order);
	hmap_free(&b->byid);
	memset(b, 0, sizeof(*b));
}

ingest_item *ingest_find(ingest_batch *b, const uint8_t id[32])
{
	uint64_t *v = hmap_get(&b->byid, id);
	return v ? &b->items[*v] : NULL;
}

static void hex_prefix(char out[17], const uint8_t *bytes)
{
	sodium_bin2hex(out, 17, bytes, 8);
}

static int add_item(ingest_batch *b, uint8_t *bytes, size_t len, const uint8_t sig[64], bool verify)
{
	ingest_item it;
	char idhex[17], keyhex[17];
	int rc;

	memset(&it, 0, sizeof(it));
	change_id(it.id, bytes, len);
	hex_prefix(idhex, it.id);
	if (hmap_get(&b->byid, it.id)) {
		free(bytes);
		return 0;
	}
	if ((rc = change_decode(&it.ch, bytes, len)) < 0) {
		free(bytes);
		return samen_error_wrap(rc, "change %s", idhex);
	}
	hex_prefix(keyhex, it.ch.author);
	if (memcmp(it.ch.plan, b->plan, 16) != 0) {
		char want[33], got[33];
		sodium_bin2hex(want, sizeof(want), b->plan, 16);
		sodium_bin2hex(got, sizeof(got), it.ch.plan, 16);
		rc = samen_error_set(SAMEN_EINVAL, "change %s belongs to plan %s, not to plan %s", idhex, got, want);
		goto fail;
	}
	if (verify && change_verify(sig, bytes, len, it.ch.author) < 0) {
		rc = samen_error_set(SAMEN_ESIG, "change %s: signature does not match device %s", idhex, keyhex);
		goto fail;
	}
	if (b->n == b->cap && b->pinned) {
		rc = samen_error_set(SAMEN_ELIMIT, "internal: a pinned batch is full");
		goto fail;
	}
	if (b->n == b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 64;
		void *p = realloc(b->items, nc * sizeof(*b->items));
		if (!p) {
			rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			goto fail;
		}
		b->items = p;
		b->cap = nc;
	}
	it.bytes = bytes;
	it.len = len;
	it.verified = verify;
	memcpy(it.sig, sig, 64);
	if ((rc = hmap_put(&b->byid, it.id, b->n)) < 0)
		goto fail;
	b->items[b->n++] = it;
	return 0;
fail:
	change_clear(&it.ch);
	free(bytes);
	return rc;
}

int ingest_add(ingest_batch *b, uint8_t *bytes, size_t len, const uint8_t sig[64])
{
	return add_item(b, bytes, len, sig, true);
}

int ingest_add_unverified(ingest_batch *b, uint8_t *bytes, size_t len, const uint8_t sig[64])
{
	return add_item(b, bytes, len, sig, false);
}

/* Drop the bad change at index bad and everything added after it (what came
 * before stays), and say which change it was. */
static int drop_from_bad(ingest_batch *b, size_t bad, uint64_t *bad_origin)
{
	char idhex[17], keyhex[17];
	hex_prefix(idhex, b->items[bad].id);
	hex_prefix(keyhex, b->items[bad].ch.author);
	samen_error_set(SAMEN_ESIG, "change %s: signature does not match device %s", idhex, keyhex);
	if (bad_origin)
		*bad_origin = b->items[bad].origin;
	for (size_t i = bad; i < b->n; i++) {
		change_clear(&b->items[i].ch);
		free(b->items[i].bytes);
		free(b->items[i].error);
	}
	b->n = bad;
	hmap_clear(&b->byid);
	for (size_t i = 0; i < b->n; i++)
		if (hmap_put(&b->byid, b->items[i].id, i) < 0)
			return SAMEN_ENOMEM;
	return SAMEN_ESIG;
}

/* Verifying while reading: a second thread checks each change as soon as
 * the reader has added it, so decompression and decoding on one core
 * overlap with signature checks on the other. The batch's items must not
 * move meanwhile: their room is reserved first, and the batch is pinned
 * (adding past the reserve fails instead of reallocating). The mutex orders
 * every item's writes by the reader before its reads by the verifier. */
struct ingest_verifier {
	ingest_batch *b;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t published, next, first_bad;
	bool done, threaded;
	pthread_t thread;
};

static void verify_claimed(ingest_verifier *v, bool wait)
{
	for (;;) {
		size_t i;
		pthread_mutex_lock(&v->mu);
		while (wait && v->next >= v->published && !v->done)
			pthread_cond_wait(&v->cv, &v->mu);
		if (v->next >= v->published) {
			pthread_mutex_unlock(&v->mu);
			return;
		}
		i = v->next++;
		pthread_mutex_unlock(&v->mu);
		ingest_item *it = &v->b->items[i];
		bool ok = it->verified || change_verify(it->sig, it->bytes, it->len, it->ch.author) == 0;
		pthread_mutex_lock(&v->mu);
		if (ok)
			it->verified = true;
		else if (i < v->first_bad)
			v->first_bad = i;
		pthread_mutex_unlock(&v->mu);
	}
}

static void *verifier_thread(void *arg)
{
	verify_claimed(arg, true);
	return NULL;
}

int ingest_verifier_start(ingest_verifier **out, ingest_batch *b, size_t reserve)
{
	ingest_verifier *v;
	*out = NULL;
	if (b->cap < reserve) {
		void *p = realloc(b->items, reserve * sizeof(*b->items));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		b->items = p;
		b->cap = reserve;
	}
	if (!(v = calloc(1, sizeof(*v))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	v->b = b;
	v->published = v->next = b->n;
	v->first_bad = SIZE_MAX;
	pthread_mutex_init(&v->mu, NULL);
	pthread_cond_init(&v->cv, NULL);
	b->pinned = true;
	v->threaded = pthread_create(&v->thread, NULL, verifier_thread, v) == 0;
	*out = v;
	return 0;
}

void ingest_verifier_publish(ingest_verifier *v)
{
	if (!v)
		return;
	pthread_mutex_lock(&v->mu);
	v->published = v->b->n;
	pthread_cond_signal(&v->cv);
	pthread_mutex_unlock(&v->mu);
}

int ingest_verifier_finish(ingest_verifier *v, uint64_t *bad_origin)
{
	ingest_batch *b;
	size_t bad;
	if (!v)
		return 0;
	b = v->b;
	pthread_mutex_lock(&v->mu);
	v->published = b->n;
	v->done = true;
	pthread_cond_broadcast(&v->cv);
	pthread_mutex_unlock(&v->mu);
	verify_claimed(v, false); /* help with what is left */
	if (v->threaded)
		pthread_join(v->thread, NULL);
	bad = v->first_bad;
	pthread_mutex_destroy(&v->mu);
	pthread_cond_destroy(&v->cv);
	free(v);
	b->pinned = false;
	return bad >= b->n ? 0 : drop_from_bad(b, bad, bad_origin);
}

/* --- cached facts about applied changes ------------------------------------- */

typedef struct {
	int64_t rowid;
	uint32_t devno;
	uint64_t seq;
	uint64_t lamport;
	uint64_t ctr_end;
	uint64_t *vv;     /* vvlen entries, index devno - 1 */
	uint32_t vvlen;
	bool accepted;
} cinfo;

/* Working state of one replica_apply() / replica_order() call. */
typedef struct {
	replica *r;
	hmap cidx;        /* change id -> index into infos */
	cinfo *infos;
	size_t ninfos, capinfos;
	uint8_t (*devkeys)[32]; /* devno - 1 -> key */
	uint32_t ndevs, capdevs;
	hmap devidx;      /* key -> devno */
} workctx;

static void work_init(workctx *w, replica *r)
{
	memset(w, 0, sizeof(*w));
	w->r = r;
	hmap_init(&w->cidx, 32);
	hmap_init(&w->devidx, 32);
}

static void work_free(workctx *w)
{
	for (size_t i = 0; i < w->ninfos; i++)
		free(w->infos[i].vv);
	free(w->infos);
	free(w->devkeys);
	hmap_free(&w->cidx);
	hmap_free(&w->devidx);
}

static int load_devs(workctx *w)
{
	sqlite3_stmt *s = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(w->r->db, "SELECT devno, key FROM devs ORDER BY devno", -1, &s, NULL) != SQLITE_OK)
		return db_error(w->r, "devs");
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint32_t devno = (uint32_t)sqlite3_column_int64(s, 0);
		if (sqlite3_column_bytes(s, 1) != 32 || devno != w->ndevs + 1) {
			rc = samen_error_set(SAMEN_ECORRUPT, "replica: device table is damaged (run samen rebuild)");
			break;
		}
		if (w->ndevs == w->capdevs) {
			uint32_t nc = w->capdevs ? w->capdevs * 2 : 16;
			void *p = realloc(w->devkeys, nc * 32);
			if (!p) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			w->devkeys = p;
			w->capdevs = nc;
		}
		memcpy(w->devkeys[w->ndevs], sqlite3_column_blob(s, 1), 32);
		w->ndevs++;
		hmap_put(&w->devidx, w->devkeys[w->ndevs - 1], devno);
	}
	sqlite3_finalize(s);
	return rc;
}

/* devno of key, adding it when add is set (0 when unknown and !add). */
static int devno_of(workctx *w, const uint8_t key[32], bool add, uint32_t *out)
{
	uint64_t *v = hmap_get(&w->devidx, key);
	sqlite3_stmt *s;
	*out = 0;
	if (v) {
		*out = (uint32_t)*v;
		return 0;
	}
	if (!add)
		return 0;
	s = stmt(w->r, ST_DEV_INSERT);
	sqlite3_bind_blob(s, 1, key, 32, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE)
		return db_error(w->r, "adding device");
	if (w->ndevs == w->capdevs) {
		uint32_t nc = w->capdevs ? w->capdevs * 2 : 16;
		void *p = realloc(w->devkeys, nc * 32);
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		w->devkeys = p;
		w->capdevs = nc;
	}
	memcpy(w->devkeys[w->ndevs], key, 32);
	w->ndevs++;
	if ((uint32_t)sqlite3_last_insert_rowid(w->r->db) != w->ndevs)
		return samen_error_set(SAMEN_ECORRUPT, "replica: device numbering is damaged (run samen rebuild)");
	*out = w->ndevs;
	return hmap_put(&w->devidx, w->devkeys[w->ndevs - 1], w->ndevs);
}

static cinfo *info_push(workctx *w, const uint8_t id[32])
{
	if (w->ninfos == w->capinfos) {
		size_t nc = w->capinfos ? w->capinfos * 2 : 256;
		void *p = realloc(w->infos, nc * sizeof(*w->infos));
		if (!p)
			return NULL;
		w->infos = p;
		w->capinfos = nc;
	}
	cinfo *ci = &w->infos[w->ninfos];
	memset(ci, 0, sizeof(*ci));
	if (hmap_put(&w->cidx, id, w->ninfos) < 0)
		return NULL;
	w->ninfos++;
	return ci;
}

/* Facts about an applied change, from the cache or the database; NULL with
 * *rc == 0 when the change is not in the replica. */
static cinfo *info_get(workctx *w, const uint8_t id[32], int *rc)
{
	uint64_t *v = hmap_get(&w->cidx, id);
	sqlite3_stmt *s;
	cinfo *ci;
	*rc = 0;
	if (v)
		return &w->infos[*v];
	s = stmt(w->r, ST_CHANGE_BY_ID);
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW) {
		sqlite3_reset(s);
		return NULL;
	}
	if (!(ci = info_push(w, id))) {
		sqlite3_reset(s);
		*rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		return NULL;
	}
	ci->rowid = sqlite3_column_int64(s, 0);
	ci->devno = (uint32_t)sqlite3_column_int64(s, 1);
	ci->seq = (uint64_t)sqlite3_column_int64(s, 2);
	ci->lamport = (uint64_t)sqlite3_column_int64(s, 3);
	ci->ctr_end = (uint64_t)sqlite3_column_int64(s, 6);
	ci->vvlen = (uint32_t)(sqlite3_column_bytes(s, 4) / 8);
	ci->vv = calloc(ci->vvlen ? ci->vvlen : 1, 8);
	if (!ci->vv) {
		sqlite3_reset(s);
		*rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		return NULL;
	}
	if (ci->vvlen)
		memcpy(ci->vv, sqlite3_column_blob(s, 4), (size_t)ci->vvlen * 8);
	sqlite3_reset(s); /* no read transaction left open (see replica_has_change) */
	return ci;
}

static inline uint64_t vv_at(const uint64_t *vv, uint32_t vvlen, uint32_t devno)
{
	return devno >= 1 && devno <= vvlen ? vv[devno - 1] : 0;
}

/* These two reset their statement before returning: a statement left on a
 * row keeps a read transaction open, and while one is open SQLite cannot
 * checkpoint the WAL, which then grows without end and is re-read at every
 * open. */
bool replica_has_change(replica *r, const uint8_t id[32])
{
	sqlite3_stmt *s = stmt(r, ST_CHANGE_BY_ID);
	bool found;
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	found = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return found;
}

int replica_change_commit(replica *r, const uint8_t id[32], uint8_t commit[20])
{
	sqlite3_stmt *s = stmt(r, ST_CHANGE_BY_ID);
	int rc = SAMEN_ENOTFOUND;
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_bytes(s, 5) == 20) {
		memcpy(commit, sqlite3_column_blob(s, 5), 20);
		rc = 0;
	}
	sqlite3_reset(s);
	return rc;
}

/* --- ordering ----------------------------------------------------------------- */

/* Bring in the waiting changes this batch may release: those waiting for a
 * change in the batch, then those waiting for what was just brought in,
 * and so on. Each step is one indexed lookup per change, so the cost
 * follows what arrives, not how much is waiting. */
static int load_pending(replica *r, ingest_batch *b)
{
	int rc = 0;
	for (size_t next = 0; next < b->n && rc == 0; next++) {
		sqlite3_stmt *s = stmt(r, ST_PENDING_WAITING);
		uint8_t id[32];
		memcpy(id, b->items[next].id, 32); /* items may move as the batch grows */
		sqlite3_bind_blob(s, 1, id, 32, SQLITE_TRANSIENT);
		while (sqlite3_step(s) == SQLITE_ROW) {
			size_t len = (size_t)sqlite3_column_bytes(s, 0);
			uint8_t *bytes;
			size_t before = b->n;
			if (sqlite3_column_bytes(s, 1) != 64)
				continue;
			if (!(bytes = malloc(len ? len : 1))) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			memcpy(bytes, sqlite3_column_blob(s, 0), len);
			/* A pending row that no longer verifies was tampered with; it
			 * is simply dropped (it never entered the history). */
			if (ingest_add(b, bytes, len, sqlite3_column_blob(s, 1)) == 0 && b->n > before)
				b->items[b->n - 1].from_pending = true;
		}
	}
	samen_error_clear();
	return rc;
}

static void item_bad(ingest_item *it, const char *fmt, const char *a, const char *b2)
{
	char buf[512];
	snprintf(buf, sizeof(buf), fmt, a, b2);
	free(it->error);
	it->error = strdup(buf);
	it->state = ITEM_BAD;
}

typedef struct {
	const uint8_t *author; /* NULL when unknown */
	uint64_t seq, lamport;
} parent_facts;

static int facts_of(workctx *w, ingest_batch *b, const uint8_t id[32], parent_facts *pf)
{
	ingest_item *it = ingest_find(b, id);
	int rc;
	if (it && it->state == ITEM_READY) {
		pf->author = it->ch.author;
		pf->seq = it->ch.seq;
		pf->lamport = it->ch.lamport;
		return 0;
	}
	cinfo *ci = info_get(w, id, &rc);
	if (!ci)
		return rc ? rc : SAMEN_ENOTFOUND;
	pf->author = ci->devno >= 1 && ci->devno <= w->ndevs ? w->devkeys[ci->devno - 1] : NULL;
	pf->seq = ci->seq;
	pf->lamport = ci->lamport;
	return 0;
}

/* Structural checks that make a change unfit for the history at all: its
 * chain must continue its author's chain and its clock must move forward. */
static int check_chain(workctx *w, ingest_batch *b, ingest_item *it, hmap *seen_devseq)
{
	parent_facts pf;
	char idhex[17];
	uint8_t devseq[40];
	uint64_t maxl = 0;
	int rc;
	sqlite3_stmt *s;
	uint32_t devno;

	hex_prefix(idhex, it->id);
	if (it->ch.has_prev) {
		if ((rc = facts_of(w, b, it->ch.prev, &pf)) < 0)
			return rc;
		if (!pf.author || memcmp(pf.author, it->ch.author, 32) != 0 || pf.seq + 1 != it->ch.seq) {
			item_bad(it, "change %s: prev is not its author's change with seq - 1", idhex, "");
			return 0;
		}
		maxl = pf.lamport;
	}
	for (uint32_t i = 0; i < it->ch.ndeps; i++) {
		if ((rc = facts_of(w, b, change_dep(&it->ch, i), &pf)) < 0)
			return rc;
		if (pf.lamport > maxl)
			maxl = pf.lamport;
	}
	if (it->ch.lamport <= maxl) {
		item_bad(it, "change %s: Lamport clock does not exceed its dependencies'", idhex, "");
		return 0;
	}
	/* Equivocation: one device, one seq, two different changes. Both stay
	 * in the DAG (so that what others built on either can apply, whatever
	 * the order they come in); applying marks the device, and validation
	 * voids its changes from that seq on. */
	memcpy(devseq, it->ch.author, 32);
	for (int k = 0; k < 8; k++)
		devseq[32 + k] = (uint8_t)(it->ch.seq >> (8 * k));
	it->fork = hmap_get(seen_devseq, devseq) != NULL;
	if ((rc = devno_of(w, it->ch.author, false, &devno)) < 0)
		return rc;
	if (devno && !it->fork) {
		s = stmt(w->r, ST_CHANGE_BY_DEVSEQ);
		sqlite3_bind_int64(s, 1, devno);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)it->ch.seq);
		it->fork = sqlite3_step(s) == SQLITE_ROW;
		sqlite3_reset(s);
	}
	it->state = ITEM_READY;
	return it->fork ? 0 : hmap_put(seen_devseq, devseq, 1);
}

int replica_order(replica *r, ingest_batch *b)
{
	workctx w;
	hmap seen_devseq;
	size_t *indeg = NULL, *estart = NULL, *edges = NULL, *queue = NULL, nedges = 0, qh = 0, qt = 0;
	bool *missing = NULL;
	int rc = 0;

	work_init(&w, r);
	hmap_init(&seen_devseq, 40);
	for (size_t i = 0; i < b->n; i++)
		if (!b->items[i].verified) {
			rc = samen_error_set(SAMEN_ERROR, "internal: a change reached ordering unverified");
			goto cleanup;
		}
	if ((rc = load_devs(&w)) < 0 || (rc = load_pending(r, b)) < 0)
		goto cleanup;
	free(b->order);
	b->order = NULL;
	b->nready = b->npending = b->ndup = b->nbad = 0;
	indeg = calloc(b->n + 1, sizeof(*indeg));
	estart = calloc(b->n + 2, sizeof(*estart));
	missing = calloc(b->n + 1, sizeof(*missing));
	queue = malloc((b->n + 1) * sizeof(*queue));
	b->order = malloc((b->n + 1) * sizeof(*b->order));
	if (!indeg || !estart || !missing || !queue || !b->order) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory ordering %zu changes", b->n);
		goto cleanup;
	}
	for (size_t i = 0; i < b->n; i++) {
		b->items[i].state = replica_has_change(r, b->items[i].id) ? ITEM_DUP : ITEM_NEW;
		if (b->items[i].state == ITEM_DUP)
			b->ndup++;
	}
	/* Edges parent -> child inside the batch, as a CSR array. Pass 1 counts
	 * the children of each parent, pass 2 fills them in. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			for (size_t i = 0; i < b->n; i++)
				estart[i + 1] += estart[i];
			nedges = estart[b->n];
			edges = malloc((nedges + 1) * sizeof(*edges));
			if (!edges) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				goto cleanup;
			}
			memset(indeg, 0, (b->n + 1) * sizeof(*indeg));
		}
		for (size_t i = 0; i < b->n; i++) {
			ingest_item *it = &b->items[i];
			if (it->state != ITEM_NEW)
				continue;
			for (uint32_t k = 0; k <= it->ch.ndeps; k++) {
				const uint8_t *pid;
				if (k == 0) {
					if (!it->ch.has_prev)
						continue;
					pid = it->ch.prev;
				} else {
					pid = change_dep(&it->ch, k - 1);
				}
				uint64_t *pi = hmap_get(&b->byid, pid);
				if (pi && b->items[*pi].state == ITEM_NEW) {
					if (*pi == i) { /* impossible for a real hash, but never loop */
						item_bad(it, "change %s depends on itself%s", "", "");
						continue;
					}
					if (pass == 0)
						estart[*pi + 1]++;
					else
						edges[--estart[*pi + 1]] = i;
					indeg[i]++;
				} else if (!(pi && b->items[*pi].state == ITEM_DUP) && pass == 0 &&
				           !replica_has_change(r, pid)) {
					missing[i] = true;
				}
			}
		}
	}
	/* The fill decremented each estart[p + 1] from the end of p's range to
	 * its start, so the children of p are edges[estart[p+1] .. estart[p+2]);
	 * the last range ends at nedges. */
	estart[b->n + 1] = nedges;
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].state == ITEM_NEW && indeg[i] == 0 && !missing[i])
			queue[qt++] = i;
	while (qh < qt) {
		size_t i = queue[qh++];
		ingest_item *it = &b->items[i];
		if ((rc = check_chain(&w, b, it, &seen_devseq)) < 0)
			goto cleanup;
		if (it->state != ITEM_READY)
			continue;
		b->order[b->nready++] = i;
		for (size_t e = estart[i + 1]; e < estart[i + 2]; e++) {
			size_t c = edges[e];
			if (--indeg[c] == 0 && !missing[c] && b->items[c].state == ITEM_NEW)
				queue[qt++] = c;
		}
	}
	/* Whatever descends from a bad change is bad too; the rest waits. */
	qh = qt = 0;
	for (size_t i = 0; i < b->n; i++)
		if (b->items[i].state == ITEM_BAD)
			queue[qt++] = i;
	while (qh < qt) {
		size_t i = queue[qh++];
		char idhex[17];
		hex_prefix(idhex, b->items[i].id);
		for (size_t e = estart[i + 1]; e < estart[i + 2]; e++) {
			size_t c = edges[e];
			if (b->items[c].state == ITEM_NEW) {
				item_bad(&b->items[c], "depends on invalid change %s%s", idhex, "");
				queue[qt++] = c;
			}
		}
	}
	for (size_t i = 0; i < b->n; i++) {
		if (b->items[i].state == ITEM_NEW) {
			b->items[i].state = ITEM_PENDING;
			b->npending++;
		} else if (b->items[i].state == ITEM_BAD) {
			b->nbad++;
		}
	}
cleanup:
	free(indeg);
	free(estart);
	free(edges);
	free(missing);
	free(queue);
	hmap_free(&seen_devseq);
	work_free(&w);
	return rc;
}

/* --- applying: the materializer --------------------------------------------- */

typedef struct {
	int64_t change;
	uint32_t op;
	uint32_t devno;
	uint64_t seq;
	uint64_t lamport;
	const uint8_t *val; /* canonical msgpack (REF values normalized) */
	uint32_t len;
	bool owned;       /* val is ours to free; else it lies in a change of the batch */
	bool stored;      /* this row is in the fields table */
	bool stored_win;  /* ... with win = 1 */
} live_value;

/* A stored row that a change superseded: deleted at flush. */
typedef struct {
	int64_t entity, change;
	uint32_t field, op;
} removed_row;

typedef struct {
	int64_t entity;
	uint32_t field;
	uint32_t type;
	live_value *vals;
	uint32_t n, cap;
	bool dirty;
} reg;

typedef struct {
	int64_t rowid;
	uint32_t type;
	uint32_t cdevno;
	uint64_t cseq;
	bool deleted;
} ent;

typedef struct {
	workctx w;
	ingest_batch *batch; /* being applied (NULL when only reading) */
	hmap entidx;      /* (devno, n) -> index into ents */
	ent *ents;
	size_t nents, capents;
	hmap regidx;      /* (entity, field) -> index into regs */
	reg *regs;
	size_t nregs, capregs;
	bool preloaded;   /* every stored register is in regs already */
	removed_row *removed;
	size_t nremoved, capremoved;
	bool has_creator;
	uint8_t creator[32];
	rights_log rl;    /* accepted rights ops, loaded at the start */
	bool need_replay; /* an accepted revocation or unlink hit a change it had not seen */
	bool replaying;   /* inside replay_all(): hits pin the op and start over */
	bool restart;
	right_op *pinned; /* replay: kills that apply from the start of the pass */
	size_t npinned, cappinned;
	int64_t (*banned)[2]; /* replay: (change, op) of kills that never take effect */
	size_t nbanned, capbanned;
	struct fork { uint32_t devno; uint64_t seq; } *forks; /* the forks table */
	size_t nforks, capforks;
} applyctx;

/* The lowest seq at which device devno equivocated, or 0. */
static uint64_t fork_of(const applyctx *a, uint32_t devno)
{
	for (size_t i = 0; i < a->nforks; i++)
		if (a->forks[i].devno == devno)
			return a->forks[i].seq;
	return 0;
}

static int fork_note(applyctx *a, uint32_t devno, uint64_t seq)
{
	size_t i;
	for (i = 0; i < a->nforks && a->forks[i].devno != devno; i++)
		;
	if (i == a->nforks) {
		if (a->nforks == a->capforks) {
			size_t nc = a->capforks ? a->capforks * 2 : 4;
			void *p = realloc(a->forks, nc * sizeof(*a->forks));
			if (!p)
				return samen_error_set(SAMEN_ENOMEM, "out of memory");
			a->forks = p;
			a->capforks = nc;
		}
		a->forks[a->nforks].devno = devno;
		a->forks[a->nforks++].seq = seq;
	} else if (seq < a->forks[i].seq) {
		a->forks[i].seq = seq;
	}
	return 0;
}

static int load_forks(applyctx *a)
{
	sqlite3_stmt *s = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(a->w.r->db, "SELECT devno, seq FROM forks", -1, &s, NULL) != SQLITE_OK)
		return db_error(a->w.r, "loading forks");
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW)
		rc = fork_note(a, (uint32_t)sqlite3_column_int64(s, 0), (uint64_t)sqlite3_column_int64(s, 1));
	sqlite3_finalize(s);
	return rc;
}

static void ent_key(uint8_t k[16], uint32_t devno, uint64_t n)
{
	memset(k, 0, 16);
	memcpy(k, &devno, 4);
	memcpy(k + 8, &n, 8);
}

static ent *ent_get(applyctx *a, uint32_t devno, uint64_t n, int *rc)
{
	uint8_t k[16];
	uint64_t *v;
	sqlite3_stmt *s;
	*rc = 0;
	if (!devno)
		return NULL;
	ent_key(k, devno, n);
	if ((v = hmap_get(&a->entidx, k)))
		return &a->ents[*v];
	s = stmt(a->w.r, ST_ENTITY_GET);
	sqlite3_bind_int64(s, 1, devno);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
	if (sqlite3_step(s) != SQLITE_ROW)
		return NULL;
	if (a->nents == a->capents) {
		size_t nc = a->capents ? a->capents * 2 : 256;
		void *p = realloc(a->ents, nc * sizeof(*a->ents));
		if (!p) {
			*rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			return NULL;
		}
		a->ents = p;
		a->capents = nc;
	}
	ent *e = &a->ents[a->nents];
	e->rowid = sqlite3_column_int64(s, 0);
	e->type = (uint32_t)sqlite3_column_int64(s, 1);
	e->cdevno = (uint32_t)sqlite3_column_int64(s, 2);
	e->cseq = (uint64_t)sqlite3_column_int64(s, 3);
	e->deleted = sqlite3_column_int64(s, 4) != 0;
	if ((*rc = hmap_put(&a->entidx, k, a->nents)) < 0)
		return NULL;
	a->nents++;
	return e;
}

static int ent_create(applyctx *a, uint32_t devno, const uint8_t key[32], uint64_t n, uint32_t type,
                      int64_t change, uint64_t seq)
{
	char uid[17];
	uint8_t k[16];
	sqlite3_stmt *s = stmt(a->w.r, ST_ENTITY_INSERT);
	schema_entity_uid(uid, key, n);
	sqlite3_bind_int64(s, 1, devno);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)n);
	sqlite3_bind_int64(s, 3, type);
	sqlite3_bind_text(s, 4, uid, 16, SQLITE_STATIC);
	sqlite3_bind_int64(s, 5, change);
	if (sqlite3_step(s) != SQLITE_DONE)
		return db_error(a->w.r, "creating entity");
	if (a->nents == a->capents) {
		size_t nc = a->capents ? a->capents * 2 : 256;
		void *p = realloc(a->ents, nc * sizeof(*a->ents));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		a->ents = p;
		a->capents = nc;
	}
	ent *e = &a->ents[a->nents];
	e->rowid = sqlite3_last_insert_rowid(a->w.r->db);
	e->type = type;
	e->cdevno = devno;
	e->cseq = seq;
	e->deleted = false;
	ent_key(k, devno, n);
	if (hmap_put(&a->entidx, k, a->nents) < 0)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	a->nents++;
	return 0;
}

/* Append the stored value in the current row of s (columns from col:
 * change, op, devno, seq, lamport, value, win) to g. */
static int reg_load_row(reg *g, sqlite3_stmt *s, int col)
{
	live_value lv;
	uint8_t *copy;
	if (g->n == g->cap) {
		uint32_t nc = g->cap ? g->cap * 2 : 2;
		void *p = realloc(g->vals, nc * sizeof(*g->vals));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		g->vals = p;
		g->cap = nc;
	}
	memset(&lv, 0, sizeof(lv));
	lv.change = sqlite3_column_int64(s, col);
	lv.op = (uint32_t)sqlite3_column_int64(s, col + 1);
	lv.devno = (uint32_t)sqlite3_column_int64(s, col + 2);
	lv.seq = (uint64_t)sqlite3_column_int64(s, col + 3);
	lv.lamport = (uint64_t)sqlite3_column_int64(s, col + 4);
	lv.len = (uint32_t)sqlite3_column_bytes(s, col + 5);
	if (!(copy = malloc(lv.len ? lv.len : 1)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	memcpy(copy, sqlite3_column_blob(s, col + 5), lv.len);
	lv.val = copy;
	lv.owned = true;
	lv.stored = true;
	lv.stored_win = sqlite3_column_int(s, col + 6) != 0;
	g->vals[g->n++] = lv;
	return 0;
}

static reg *reg_get(applyctx *a, int64_t entity, uint32_t field, uint32_t type, int *rc)
{
	uint8_t k[16];
	uint64_t *v;
	sqlite3_stmt *s;
	reg *g;

	*rc = 0;
	memset(k, 0, sizeof(k));
	memcpy(k, &entity, 8);
	memcpy(k + 8, &field, 4);
	if ((v = hmap_get(&a->regidx, k)))
		return &a->regs[*v];
	if (a->nregs == a->capregs) {
		size_t nc = a->capregs ? a->capregs * 2 : 1024;
		void *p = realloc(a->regs, nc * sizeof(*a->regs));
		if (!p) {
			*rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			return NULL;
		}
		a->regs = p;
		a->capregs = nc;
	}
	g = &a->regs[a->nregs];
	memset(g, 0, sizeof(*g));
	g->entity = entity;
	g->field = field;
	g->type = type;
	if ((*rc = hmap_put(&a->regidx, k, a->nregs)) < 0)
		return NULL;
	a->nregs++;
	if (a->preloaded)
		return g;
	s = stmt(a->w.r, ST_FIELDS_GET);
	sqlite3_bind_int64(s, 1, entity);
	sqlite3_bind_int64(s, 2, field);
	while (sqlite3_step(s) == SQLITE_ROW)
		if ((*rc = reg_load_row(g, s, 0)) < 0)
			return NULL;
	return g;
}

/* Every stored register at once: one scan instead of a query per register,
 * for batches that touch a large part of the plan. */
static int preload_regs(applyctx *a)
{
	sqlite3_stmt *s = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(a->w.r->db,
	                       "SELECT f.change, f.op, c.devno, c.seq, c.lamport, f.value, f.win, f.entity, f.field, e.type"
	                       " FROM fields f JOIN changes c ON c.rowid = f.change JOIN entities e ON e.rowid = f.entity",
	                       -1, &s, NULL) != SQLITE_OK)
		return db_error(a->w.r, "loading fields");
	a->preloaded = true;
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		reg *g = reg_get(a, sqlite3_column_int64(s, 7), (uint32_t)sqlite3_column_int64(s, 8),
		                 (uint32_t)sqlite3_column_int64(s, 9), &rc);
		if (g)
			rc = reg_load_row(g, s, 0);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The register's winner: highest Lamport clock, then greatest author key. */
static uint32_t reg_winner(const applyctx *a, const reg *g)
{
	uint32_t best = 0;
	for (uint32_t i = 1; i < g->n; i++) {
		const live_value *x = &g->vals[i], *y = &g->vals[best];
		if (x->lamport > y->lamport ||
		    (x->lamport == y->lamport &&
		     memcmp(a->w.devkeys[x->devno - 1], a->w.devkeys[y->devno - 1], 32) > 0))
			best = i;
	}
	return best;
}

static void bind_sqlval(sqlite3_stmt *s, int col, const field_def *f, const live_value *lv)
{
	char buf[SAMEN_MAX_VALUE_BYTES + 1];
	mpr r;
	int64_t i;
	mpr_init(&r, lv->val, lv->len);
	if (mpr_peek(&r) == MPR_NIL || !f) {
		sqlite3_bind_null(s, col);
	} else if (f->kind == FIELD_INT && mpr_int(&r, &i) == 0) {
		sqlite3_bind_int64(s, col, i);
	} else {
		size_t n = schema_format_value(f, lv->val, lv->len, buf, sizeof(buf));
		sqlite3_bind_text(s, col, buf, (int)n, SQLITE_TRANSIENT);
	}
}

/* Write what changed: superseded rows are deleted, new values inserted,
 * and the win flag updated where the winner moved. */
static int flush_regs(applyctx *a)
{
	sqlite3_stmt *s;
	for (size_t i = 0; i < a->nremoved; i++) {
		s = stmt(a->w.r, ST_FIELDS_DELETE);
		sqlite3_bind_int64(s, 1, a->removed[i].entity);
		sqlite3_bind_int64(s, 2, a->removed[i].field);
		sqlite3_bind_int64(s, 3, a->removed[i].change);
		sqlite3_bind_int64(s, 4, a->removed[i].op);
		if (sqlite3_step(s) != SQLITE_DONE)
			return db_error(a->w.r, "updating a field");
	}
	for (size_t i = 0; i < a->nregs; i++) {
		reg *g = &a->regs[i];
		const type_def *td;
		const field_def *f;
		uint32_t win;
		if (!g->dirty)
			continue;
		td = schema_type(g->type);
		f = td ? schema_field(td, g->field) : NULL;
		win = reg_winner(a, g);
		for (uint32_t k = 0; k < g->n; k++) {
			live_value *lv = &g->vals[k];
			if (lv->stored) {
				if (lv->stored_win == (k == win))
					continue;
				s = stmt(a->w.r, ST_FIELDS_SET_WIN);
				sqlite3_bind_int(s, 1, k == win);
				sqlite3_bind_int64(s, 2, g->entity);
				sqlite3_bind_int64(s, 3, g->field);
				sqlite3_bind_int64(s, 4, lv->change);
				sqlite3_bind_int64(s, 5, lv->op);
			} else {
				s = stmt(a->w.r, ST_FIELDS_INSERT);
				sqlite3_bind_int64(s, 1, g->entity);
				sqlite3_bind_int64(s, 2, g->field);
				sqlite3_bind_int64(s, 3, lv->change);
				sqlite3_bind_int64(s, 4, lv->op);
				sqlite3_bind_int(s, 5, k == win);
				sqlite3_bind_blob(s, 6, lv->val, (int)lv->len, SQLITE_STATIC);
				bind_sqlval(s, 7, f, lv);
			}
			if (sqlite3_step(s) != SQLITE_DONE)
				return db_error(a->w.r, "writing a field");
			lv->stored = true;
			lv->stored_win = k == win;
		}
		g->dirty = false;
	}
	a->nremoved = 0;
	return 0;
}

static void apply_free(applyctx *a)
{
	for (size_t i = 0; i < a->nregs; i++) {
		for (uint32_t k = 0; k < a->regs[i].n; k++)
			if (a->regs[i].vals[k].owned)
				free((void *)a->regs[i].vals[k].val);
		free(a->regs[i].vals);
	}
	free(a->regs);
	free(a->removed);
	free(a->ents);
	hmap_free(&a->entidx);
	hmap_free(&a->regidx);
	rights_free(&a->rl);
	for (size_t i = 0; i < a->npinned; i++) {
		free(a->pinned[i].vv);
		free(a->pinned[i].name);
		free(a->pinned[i].areas);
	}
	free(a->pinned);
	free(a->banned);
	work_free(&a->w);
	free(a->forks);
}

/* A verdict's reason; long names are cut, never overflow. */
static void whyf(char *why, size_t whylen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void whyf(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

/* One change being applied. */
typedef struct {
	ingest_item *it;
	int64_t rowid;
	uint32_t devno;
	uint64_t *vv;
	uint32_t vvlen;
	uint64_t ctr_base;
	uint32_t *create_types;   /* type of each CREATE, in order */
	uint32_t *devnos;         /* devno of each device index (0 = the author); 0 when unknown */
	int64_t *op_ent;          /* per op: index into ents found by validation, -1 if none */
	uint32_t *op_type;        /* per op: type of the entity it names */
	uint8_t author_member[32];/* set by validation: the author's member and role */
	int author_role;
} applying;

/* Resolve the entity an op names. Entities created by this same change
 * (dev 0, n >= ctr_base) exist only after their CREATE op (upto). */
static int resolve_entity(applyctx *a, applying *c, uint32_t dev, uint64_t n, uint32_t upto,
                          uint32_t *type, ent **out, char *why, size_t whylen)
{
	const uint8_t *key = change_ref_key(&c->it->ch, dev);
	uint32_t devno;
	int rc;
	char uid[17];

	*out = NULL;
	if (dev == 0 && n >= c->ctr_base) {
		if (n - c->ctr_base >= upto) {
			schema_entity_uid(uid, key, n);
			whyf(why, whylen, "refers to entity %s before this change creates it", uid);
			return 1;
		}
		*type = c->create_types[n - c->ctr_base];
		return 0;
	}
	devno = c->devnos[dev];
	ent *e = ent_get(a, devno, n, &rc);
	if (rc < 0)
		return rc;
	if (!e || vv_at(c->vv, c->vvlen, e->cdevno) < e->cseq) {
		schema_entity_uid(uid, key, n);
		whyf(why, whylen, "refers to entity %s, which is not in this change's causal past", uid);
		return 1;
	}
	*type = e->type;
	*out = e;
	return 0;
}

/* --- rights: who is the author, and may they do this -------------------- */


/* The life-area link of a type: its area field, or for actions and PDSA
 * cycles their goal (whose area places them). 0 when it has none. */
static uint32_t area_link_field(uint32_t type, bool *via_goal)
{
	const type_def *td = schema_type(type);
	*via_goal = type == SAMEN_TYPE_ACTION || type == SAMEN_TYPE_PDSA;
	if (*via_goal)
		return 2;
	return td ? td->area_field : 0;
}

static void area_key(uint8_t out[40], const uint8_t key[32], uint64_t n)
{
	memcpy(out, key, 32);
	for (int k = 0; k < 8; k++)
		out[32 + k] = (uint8_t)(n >> (8 * k));
}

/* A scope op's areas, [[dev, n], ...] in the change, as key || n. */
static int scope_areas(const samen_change *ch, const samen_op *op, uint8_t (**out)[40], uint32_t *count)
{
	mpr r;
	uint64_t d, n;
	mpr_init(&r, op->value, op->value_len);
	*out = NULL;
	if (mpr_array(&r, count, SAMEN_MAX_REFS) < 0)
		return samen_error_set(SAMEN_ERROR, "internal: scope areas");
	if (!(*out = malloc((*count ? *count : 1) * sizeof(**out))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	for (uint32_t k = 0; k < *count; k++) {
		mpr_array_exact(&r, 2);
		mpr_uint(&r, &d);
		mpr_uint(&r, &n);
		area_key((*out)[k], change_ref_key(ch, (uint32_t)d), n);
	}
	return 0;
}

/* Build the in-memory entry for op i of an accepted change. */
static int right_from_op(right_op *o, const samen_change *ch, uint32_t i, const uint8_t id[32], int64_t rowid,
                         uint32_t devno, const uint64_t *vv, uint32_t vvlen)
{
	const samen_op *op = &ch->ops[i];
	memset(o, 0, sizeof(*o));
	o->kind = op->kind;
	o->op = i;
	o->change = rowid;
	memcpy(o->change_id, id, 32);
	o->devno = devno;
	o->seq = ch->seq;
	o->lamport = ch->lamport;
	memcpy(o->author, ch->author, 32);
	o->vv = (uint64_t *)vv;
	o->vvlen = vvlen;
	memcpy(o->key, op->key, 32);
	if (op->kind == SAMEN_OP_LINK)
		memcpy(o->key2, op->key2, 32);
	o->role = (int)op->role;
	o->effective = true;
	if (op->kind == SAMEN_OP_MEMBER_ADD && !(o->name = strndup(op->str, op->str_len)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if (op->kind == SAMEN_OP_SCOPE)
		return scope_areas(ch, op, &o->areas, &o->nareas);
	return 0;
}

static bool is_right_op(uint8_t kind)
{
	return kind >= SAMEN_OP_MEMBER_ADD && kind <= SAMEN_OP_APPROVE;
}

/* The genesis facts: creator, their role and name, the client's name. */
static int load_genesis(applyctx *a)
{
	sqlite3_stmt *s = NULL;
	char *cname = NULL, *client = NULL;
	int role = SAMEN_ROLE_COORDINATOR, rc = 0;
	if (!a->has_creator)
		return 0;
	if (sqlite3_prepare_v2(a->w.r->db, "SELECT key, value FROM meta WHERE key IN ('client','creator_name','creator_role')",
	                       -1, &s, NULL) != SQLITE_OK)
		return db_error(a->w.r, "meta");
	while (sqlite3_step(s) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(s, 0);
		const char *v = (const char *)sqlite3_column_text(s, 1);
		if (!k || !v)
			continue;
		if (strcmp(k, "client") == 0)
			client = strdup(v);
		else if (strcmp(k, "creator_name") == 0)
			cname = strdup(v);
		else
			role = atoi(v);
	}
	sqlite3_finalize(s);
	rc = rights_set_genesis(&a->rl, a->creator, role, cname ? cname : "", cname ? strlen(cname) : 0,
	                        client ? client : "", client ? strlen(client) : 0);
	free(cname);
	free(client);
	return rc;
}

/* The rights log from the rights table and the changes' bodies. */
static int load_rights(applyctx *a)
{
	sqlite3_stmt *s = NULL;
	int rc;
	if ((rc = load_genesis(a)) < 0)
		return rc;
	if (sqlite3_prepare_v2(a->w.r->db,
	                       "SELECT r.change, r.op, r.effective, r.author_member, r.author_role, c.id, c.devno, c.vv,"
	                       " c.body, c.blob FROM rights r JOIN changes c ON c.rowid = r.change", -1, &s, NULL) != SQLITE_OK)
		return db_error(a->w.r, "loading rights");
	while (rc == 0 && sqlite3_step(s) == SQLITE_ROW) {
		samen_change ch;
		right_op o;
		uint8_t *bytes;
		size_t len;
		uint32_t i = (uint32_t)sqlite3_column_int64(s, 1);
		if ((rc = replica_row_change(a->w.r, s, 8, 9, 5, &bytes, &len)) < 0)
			break;
		if (change_decode(&ch, bytes, len) < 0 || i >= ch.nops || !is_right_op(ch.ops[i].kind) ||
		    sqlite3_column_bytes(s, 3) != 32 || sqlite3_column_bytes(s, 5) != 32) {
			change_clear(&ch);
			free(bytes);
			rc = samen_error_set(SAMEN_ECORRUPT, "replica: the rights table is damaged (run samen rebuild)");
			break;
		}
		rc = right_from_op(&o, &ch, i, sqlite3_column_blob(s, 5), sqlite3_column_int64(s, 0),
		                   (uint32_t)sqlite3_column_int64(s, 6), sqlite3_column_blob(s, 7),
		                   (uint32_t)(sqlite3_column_bytes(s, 7) / 8));
		o.effective = sqlite3_column_int(s, 2) != 0;
		memcpy(o.author_member, sqlite3_column_blob(s, 3), 32);
		o.author_role = sqlite3_column_int(s, 4);
		if (rc == 0)
			rc = rights_add(&a->rl, &o);
		o.vv = NULL; /* borrowed from the row; rights_add copied it */
		free(o.name);
		free(o.areas);
		change_clear(&ch);
		free(bytes);
	}
	sqlite3_finalize(s);
	return rc;
}

/* The author of a change as seen from its past. */
typedef struct {
	rights_device dev;
	rights_member mem;
	char label[260];  /* "1a2b3c4d5e6f7a8b (Piet, professional)" */
} author_view;

static void member_label(char *out, size_t outlen, const uint8_t device[32], const rights_member *m)
{
	char keyhex[17];
	hex_prefix(keyhex, device);
	if (m && m->exists)
		snprintf(out, outlen, "device %s (%s, %s)", keyhex, m->name ? m->name : "?",
		         rights_role_name(m->role >= 0 ? m->role : m->pending_role));
	else
		snprintf(out, outlen, "device %s", keyhex);
}

static int judge_author(applyctx *a, applying *c, author_view *av, char *why, size_t whylen)
{
	const samen_change *ch = &c->it->ch;
	rights_past p = {c->vv, c->vvlen, c->devno, c->it->ch.seq};
	const right_op *k;
	char idhex[17];

	rights_device_at(&a->rl, &p, ch->author, &av->dev);
	if (!av->dev.known) {
		member_label(av->label, sizeof(av->label), ch->author, NULL);
		whyf(why, whylen, "%s is not a member of this plan", av->label);
		return 1;
	}
	rights_member_at(&a->rl, &p, av->dev.member, &av->mem);
	member_label(av->label, sizeof(av->label), ch->author, &av->mem);
	if (av->dev.unlinked) {
		whyf(why, whylen, "%s was unlinked from the plan before this change", av->label);
		return 1;
	}
	if (av->mem.revoked) {
		whyf(why, whylen, "%s: the member was revoked before this change", av->label);
		return 1;
	}
	if (av->mem.role < 0) {
		whyf(why, whylen, "%s: adding this professional waits for the client's approval", av->label);
		return 1;
	}
	if ((k = rights_killer(&a->rl, av->dev.member, ch->author, c->devno, ch->seq))) {
		hex_prefix(idhex, k->change_id);
		whyf(why, whylen, "%s: %s by change %s, which had not seen this change", av->label,
		         k->kind == SAMEN_OP_REVOKE ? "the member was revoked" : "the device was unlinked", idhex);
		return 1;
	}
	return 0;
}

/* The display title of an entity (field 1), for messages. */
static void entity_label(applyctx *a, int64_t rowid, char *out, size_t outlen)
{
	sqlite3_stmt *s = stmt(a->w.r, ST_LABEL_GET);
	sqlite3_bind_int64(s, 1, rowid);
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) == SQLITE_TEXT)
		snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(s, 0));
	else
		snprintf(out, outlen, "?");
	sqlite3_reset(s);
}

/* A reference value [dev, n] in change ch (not nil): its key and n. */
static bool ref_value(const samen_change *ch, const uint8_t *v, uint32_t len, const uint8_t **key, uint64_t *n,
                      uint32_t *dev)
{
	mpr r;
	uint64_t d;
	mpr_init(&r, v, len);
	if (mpr_array_exact(&r, 2) < 0 || mpr_uint(&r, &d) < 0 || mpr_uint(&r, n) < 0 || d > ch->ndevs)
		return false;
	*dev = (uint32_t)d;
	*key = change_ref_key(ch, *dev);
	return true;
}

/* The same for a normalized value [key, n] in the replica. */
static bool ref_value_norm(const uint8_t *v, uint32_t len, uint8_t key[32], uint64_t *n)
{
	mpr r;
	const uint8_t *k;
	mpr_init(&r, v, len);
	if (mpr_array_exact(&r, 2) < 0 || mpr_bin_exact(&r, &k, 32) < 0 || mpr_uint(&r, n) < 0)
		return false;
	memcpy(key, k, 32);
	return true;
}

/* The area link of a stored entity as seen from c's past: the assignment
 * with the highest (Lamport, author key) among those in the past. */
static int linked_in_past(applyctx *a, applying *c, int64_t entity, uint8_t key[32], uint64_t *n, bool *found)
{
	sqlite3_stmt *s = stmt(a->w.r, ST_AREALOG_GET);
	uint64_t best_l = 0;
	uint32_t best_dev = 0;
	*found = false;
	sqlite3_bind_int64(s, 1, entity);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint32_t devno = (uint32_t)sqlite3_column_int64(s, 1);
		uint64_t seq = (uint64_t)sqlite3_column_int64(s, 2), l = (uint64_t)sqlite3_column_int64(s, 3);
		uint8_t k[32];
		uint64_t nn;
		if (vv_at(c->vv, c->vvlen, devno) < seq)
			continue;
		if (*found || best_dev) {
			if (l < best_l || (l == best_l && devno != best_dev &&
			                   memcmp(a->w.devkeys[devno - 1], a->w.devkeys[best_dev - 1], 32) < 0))
				continue;
		}
		best_l = l;
		best_dev = devno;
		if (ref_value_norm(sqlite3_column_blob(s, 0), (uint32_t)sqlite3_column_bytes(s, 0), k, &nn)) {
			memcpy(key, k, 32);
			*n = nn;
			*found = true;
		} else {
			*found = false; /* cleared */
		}
	}
	sqlite3_reset(s);
	return 0;
}

/* The last value this change itself gives field of its own new entity n. */
static const samen_op *own_set(const samen_change *ch, uint64_t n, uint32_t field)
{
	const samen_op *last = NULL;
	for (uint32_t i = 0; i < ch->nops; i++)
		if (ch->ops[i].kind == SAMEN_OP_SET && ch->ops[i].dev == 0 && ch->ops[i].n == n &&
		    ch->ops[i].field == field)
			last = &ch->ops[i];
	return last;
}

/* The life area of entity (key, n) of the given type, as seen by change c
 * (its past, then its own ops). found = false: it has none. */
static int area_of(applyctx *a, applying *c, const uint8_t key[32], uint64_t n, uint32_t type, uint8_t akey[32],
                   uint64_t *an, bool *found, int depth)
{
	const samen_change *ch = &c->it->ch;
	bool via_goal;
	uint32_t field = area_link_field(type, &via_goal), devno;
	uint8_t k[32];
	uint64_t nn;
	int rc;

	*found = false;
	if (!field || depth > 2)
		return 0;
	if (memcmp(key, ch->author, 32) == 0 && n >= c->ctr_base) {
		const samen_op *op = own_set(ch, n, field);
		const uint8_t *rk;
		uint32_t dev;
		if (!op || op->value[0] == 0xc0 || !ref_value(ch, op->value, op->value_len, &rk, &nn, &dev))
			return 0;
		memcpy(k, rk, 32);
		*found = true;
	} else {
		ent *e;
		if ((rc = devno_of(&a->w, key, false, &devno)) < 0)
			return rc;
		if (!(e = ent_get(a, devno, n, &rc)))
			return rc;
		if ((rc = linked_in_past(a, c, e->rowid, k, &nn, found)) < 0)
			return rc;
	}
	if (!*found || !via_goal) {
		if (*found) {
			memcpy(akey, k, 32);
			*an = nn;
		}
		return 0;
	}
	return area_of(a, c, k, nn, SAMEN_TYPE_GOAL, akey, an, found, depth + 1);
}

static void area_label(applyctx *a, const uint8_t key[32], uint64_t n, char *out, size_t outlen)
{
	uint32_t devno = 0;
	int rc;
	ent *e = NULL;
	if (devno_of(&a->w, key, false, &devno) == 0 && devno)
		e = ent_get(a, devno, n, &rc);
	if (e)
		entity_label(a, e->rowid, out, outlen);
	else
		snprintf(out, outlen, "(new)");
}

/* A professional may touch an entity only when its life area, before and
 * after the op, is in their scope. */
static int judge_professional_op(applyctx *a, applying *c, const author_view *av, uint32_t i, char *why,
                                 size_t whylen)
{
	const samen_change *ch = &c->it->ch;
	const samen_op *op = &ch->ops[i];
	const type_def *td = schema_type(op->type);
	const uint8_t *key = op->kind == SAMEN_OP_CREATE ? ch->author : change_ref_key(ch, op->dev);
	uint64_t n = op->kind == SAMEN_OP_CREATE ? 0 : op->n, an = 0;
	uint8_t akey[32];
	char title[256], aname[256];
	bool found, via_goal;
	uint32_t field = area_link_field(op->type, &via_goal);
	int rc;

	if (!field) {
		whyf(why, whylen, "op %u: %s may not edit a %s: it has no life area, and a professional's rights reach"
		         " only their life areas", i, av->label, td ? td->name : "entity");
		return 1;
	}
	if (op->kind == SAMEN_OP_CREATE) {
		/* the new entity (n: its counter) must be placed in scope by this change */
		uint32_t k = 0;
		for (uint32_t j = 0; j < i; j++)
			k += ch->ops[j].kind == SAMEN_OP_CREATE;
		n = c->ctr_base + k;
	}
	if ((rc = area_of(a, c, key, n, op->type, akey, &an, &found, 0)) < 0)
		return rc;
	if (op->kind != SAMEN_OP_CREATE && !(memcmp(key, ch->author, 32) == 0 && n >= c->ctr_base)) {
		/* an existing entity: its area in the past counts too */
		bool pfound;
		uint8_t pkey[32];
		uint64_t pn = 0;
		uint32_t devno;
		ent *e = NULL;
		if ((rc = devno_of(&a->w, key, false, &devno)) < 0)
			return rc;
		if (devno && !(e = ent_get(a, devno, n, &rc)) && rc < 0)
			return rc;
		snprintf(title, sizeof(title), "?");
		if (e)
			entity_label(a, e->rowid, title, sizeof(title));
		/* area_of looked at the past only: this change's own sets follow */
		pfound = found;
		memcpy(pkey, akey, 32);
		pn = an;
		if (!pfound || !rights_area_in_scope(&av->mem, pkey, pn)) {
			if (pfound)
				area_label(a, pkey, pn, aname, sizeof(aname));
			if (pfound)
				whyf(why, whylen, "op %u: %s may not edit %s '%s': life area %s is outside their scope", i,
				         av->label, td->name, title, aname);
			else
				whyf(why, whylen, "op %u: %s may not edit %s '%s': it has no life area in their scope", i,
				         av->label, td->name, title);
			return 1;
		}
	} else if (!found || !rights_area_in_scope(&av->mem, akey, an)) {
		if (found)
			area_label(a, akey, an, aname, sizeof(aname));
		if (found)
			whyf(why, whylen, "op %u: %s may not create a %s in life area %s: it is outside their scope", i,
			         av->label, td->name, aname);
		else
			whyf(why, whylen, "op %u: %s may create a %s only with its %s set to one in their scope", i,
			         av->label, td->name, via_goal ? "goal" : "life area");
		return 1;
	}
	/* a value that moves the entity must move it into the scope */
	if (op->kind == SAMEN_OP_SET && op->field == field) {
		const uint8_t *rk;
		uint32_t dev;
		uint64_t rn;
		if (op->value[0] == 0xc0 || !ref_value(ch, op->value, op->value_len, &rk, &rn, &dev)) {
			whyf(why, whylen, "op %u: %s may not take a %s out of their life areas", i, av->label, td->name);
			return 1;
		}
		if (via_goal) {
			if ((rc = area_of(a, c, rk, rn, SAMEN_TYPE_GOAL, akey, &an, &found, 1)) < 0)
				return rc;
		} else {
			memcpy(akey, rk, 32);
			an = rn;
			found = true;
		}
		if (!found || !rights_area_in_scope(&av->mem, akey, an)) {
			whyf(why, whylen, "op %u: %s may not place a %s outside their life areas", i, av->label, td->name);
			return 1;
		}
	}
	return 0;
}

static void member_name(applyctx *a, const rights_past *p, const uint8_t id[32], char *out, size_t outlen)
{
	rights_member m;
	char hex[17];
	rights_member_at(&a->rl, p, id, &m);
	hex_prefix(hex, id);
	if (m.exists)
		snprintf(out, outlen, "%s (%s)", m.name ? m.name : hex, rights_role_name(m.role >= 0 ? m.role : m.pending_role));
	else
		snprintf(out, outlen, "%s", hex);
}

/* Grants, revocations, scopes, links, unlinks and approvals: docs/rights.md
 * is the table this follows. */
static int judge_rights_op(applyctx *a, applying *c, const author_view *av, uint32_t i, bool genesis, char *why,
                           size_t whylen)
{
	const samen_change *ch = &c->it->ch;
	const samen_op *op = &ch->ops[i];
	rights_past p = {c->vv, c->vvlen, c->devno, c->it->ch.seq};
	rights_member t;
	rights_device d;
	int role = av->mem.role, trole;
	bool self;
	char tname[300], hex[17];
	int rc;

	switch (op->kind) {
	case SAMEN_OP_MEMBER_ADD:
		if (genesis) {
			if (i != 1 || memcmp(op->key, ch->author, 32) != 0 || op->role > SAMEN_ROLE_COORDINATOR) {
				whyf(why, whylen, "op %u: the genesis may only say whether its creator is the client or a"
				         " coordinator", i);
				return 1;
			}
			return 0;
		}
		if (role > SAMEN_ROLE_COORDINATOR) {
			whyf(why, whylen, "op %u: %s may not add members", i, av->label);
			return 1;
		}
		if (op->role == SAMEN_ROLE_CLIENT) {
			whyf(why, whylen, "op %u: nobody can be added as client: the plan names its client", i);
			return 1;
		}
		if ((int)op->role < role) {
			whyf(why, whylen, "op %u: %s may not grant the role %s: a grant never exceeds the granter's own rights",
			         i, av->label, rights_role_name((int)op->role));
			return 1;
		}
		if (memcmp(op->key, av->dev.member, 32) == 0 || memcmp(op->key, ch->author, 32) == 0) {
			whyf(why, whylen, "op %u: %s may not change their own role", i, av->label);
			return 1;
		}
		rights_device_at(&a->rl, &p, op->key, &d);
		if (d.known && memcmp(d.member, op->key, 32) != 0) {
			hex_prefix(hex, op->key);
			whyf(why, whylen, "op %u: device %s already belongs to another member", i, hex);
			return 1;
		}
		rights_member_at(&a->rl, &p, op->key, &t);
		member_name(a, &p, op->key, tname, sizeof(tname));
		if (t.exists && t.revoked) {
			whyf(why, whylen, "op %u: member %s was revoked; add them again with another device", i, tname);
			return 1;
		}
		trole = t.role >= 0 ? t.role : t.pending_role;
		if (t.exists && role != SAMEN_ROLE_CLIENT && trole <= role) {
			whyf(why, whylen, "op %u: %s may not change the role of %s", i, av->label, tname);
			return 1;
		}
		return 0;
	case SAMEN_OP_REVOKE:
		if (memcmp(op->key, RIGHTS_CLIENT_ID, 32) == 0) {
			whyf(why, whylen, "op %u: the client cannot be removed from their own plan", i);
			return 1;
		}
		rights_member_at(&a->rl, &p, op->key, &t);
		member_name(a, &p, op->key, tname, sizeof(tname));
		if (!t.exists || t.revoked) {
			whyf(why, whylen, "op %u: %s is not a member of this plan", i, tname);
			return 1;
		}
		self = memcmp(op->key, av->dev.member, 32) == 0;
		trole = t.role >= 0 ? t.role : t.pending_role;
		if (!self && !(role <= SAMEN_ROLE_COORDINATOR && role < trole)) {
			whyf(why, whylen, "op %u: %s may not revoke %s", i, av->label, tname);
			return 1;
		}
		return 0;
	case SAMEN_OP_SCOPE:
		if (role > SAMEN_ROLE_COORDINATOR) {
			whyf(why, whylen, "op %u: %s may not change a professional's life areas", i, av->label);
			return 1;
		}
		rights_member_at(&a->rl, &p, op->key, &t);
		member_name(a, &p, op->key, tname, sizeof(tname));
		/* a professional added by this very change may get a scope in it */
		for (uint32_t k = 0; k < i && !t.exists; k++)
			if (ch->ops[k].kind == SAMEN_OP_MEMBER_ADD && memcmp(ch->ops[k].key, op->key, 32) == 0 &&
			    ch->ops[k].role == SAMEN_ROLE_PROFESSIONAL) {
				t.exists = true;
				t.role = SAMEN_ROLE_PROFESSIONAL;
			}
		if (!t.exists || t.revoked ||
		    (t.role != SAMEN_ROLE_PROFESSIONAL && t.pending_role != SAMEN_ROLE_PROFESSIONAL)) {
			whyf(why, whylen, "op %u: %s is not a professional of this plan", i, tname);
			return 1;
		}
		{
			mpr r;
			uint64_t dv, n;
			uint32_t count, ttype;
			ent *e;
			char opwhy[256];
			mpr_init(&r, op->value, op->value_len);
			mpr_array(&r, &count, SAMEN_MAX_REFS);
			for (uint32_t k = 0; k < count; k++) {
				mpr_array_exact(&r, 2);
				mpr_uint(&r, &dv);
				mpr_uint(&r, &n);
				if ((rc = resolve_entity(a, c, (uint32_t)dv, n, 0, &ttype, &e, opwhy, sizeof(opwhy))) != 0) {
					if (rc > 0)
						whyf(why, whylen, "op %u: scope %s", i, opwhy);
					return rc;
				}
				if (ttype != SAMEN_TYPE_AREA) {
					whyf(why, whylen, "op %u: a scope lists life areas only", i);
					return 1;
				}
			}
		}
		return 0;
	case SAMEN_OP_LINK:
		rights_member_at(&a->rl, &p, op->key, &t);
		member_name(a, &p, op->key, tname, sizeof(tname));
		if (!t.exists || t.revoked) {
			whyf(why, whylen, "op %u: %s is not a member of this plan", i, tname);
			return 1;
		}
		self = memcmp(op->key, av->dev.member, 32) == 0;
		if (!(self || role == SAMEN_ROLE_CLIENT ||
		      (role == SAMEN_ROLE_COORDINATOR && (memcmp(op->key, RIGHTS_CLIENT_ID, 32) != 0 ||
		                                          !rights_client_has_device(&a->rl, &p))))) {
			whyf(why, whylen, "op %u: %s may not link a device to %s", i, av->label, tname);
			return 1;
		}
		rights_device_at(&a->rl, &p, op->key2, &d);
		if (d.known) {
			hex_prefix(hex, op->key2);
			whyf(why, whylen, "op %u: device %s is already linked to this plan", i, hex);
			return 1;
		}
		return 0;
	case SAMEN_OP_UNLINK:
		rights_device_at(&a->rl, &p, op->key, &d);
		hex_prefix(hex, op->key);
		if (!d.known || d.unlinked) {
			whyf(why, whylen, "op %u: device %s is not linked to this plan", i, hex);
			return 1;
		}
		if (!(memcmp(d.member, av->dev.member, 32) == 0 || role <= SAMEN_ROLE_COORDINATOR)) {
			whyf(why, whylen, "op %u: %s may not unlink device %s of another member", i, av->label, hex);
			return 1;
		}
		return 0;
	case SAMEN_OP_APPROVE: {
		cinfo *x = info_get(&a->w, op->key, &rc);
		hex_prefix(hex, op->key);
		if (rc < 0)
			return rc;
		if (!x || vv_at(c->vv, c->vvlen, x->devno) < x->seq || !rights_needs_approval(&a->rl, op->key)) {
			whyf(why, whylen, "op %u: change %s is not an accepted addition of a professional or change of"
			         " scope in this change's past", i, hex);
			return 1;
		}
		if (op->role == 0 && role != SAMEN_ROLE_CLIENT) {
			whyf(why, whylen, "op %u: %s may not approve for the client (a coordinator records the client's"
			         " consent instead)", i, av->label);
			return 1;
		}
		if (op->role == 1 && role != SAMEN_ROLE_COORDINATOR) {
			whyf(why, whylen, "op %u: only a coordinator records the client's consent; %s", i,
			         role == SAMEN_ROLE_CLIENT ? "the client approves directly" : "this author is none");
			return 1;
		}
		return 0;
	}
	}
	return 0;
}

/* The validation stage: decides the verdict of one change against its causal
 * past. Returns 0 = accepted, 1 = rejected (reason in why), < 0 = error.
 * Rules for roles plug in here (see docs/architecture.md). */
static int validate_change(applyctx *a, applying *c, uint8_t plan[16], char *why, size_t whylen)
{
	const samen_change *ch = &c->it->ch;
	char opwhy[256];
	uint32_t creates = 0, type;
	author_view av;
	bool genesis;
	ent *e;
	int rc;

	uint64_t forked = fork_of(a, c->devno);
	if (forked && ch->seq >= forked) {
		char dev[17];
		hex_prefix(dev, ch->author);
		whyf(why, whylen, "device %s signed two different changes numbered %llu (equivocation): its changes from"
		     " there on are void", dev, (unsigned long long)forked);
		return 1;
	}
	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		if (op->kind == SAMEN_OP_PLAN) {
			uint8_t pid[16];
			change_plan_id(pid, ch->author, op->key);
			if (i != 0 || ch->seq != 1 || memcmp(pid, plan, 16) != 0 || a->has_creator) {
				whyf(why, whylen, "op %u: only the plan's creator can start the plan, once", i);
				return 1;
			}
			if (op->str_len == 0 || !schema_text_printable(op->str, op->str_len, 0)) {
				whyf(why, whylen, "op %u: the client's name must be one line without control characters", i);
				return 1;
			}
		}
	}
	genesis = ch->nops && ch->ops[0].kind == SAMEN_OP_PLAN;
	{
		/* every accepted rights op is scanned for every later change: a
		 * change may hold only a few */
		uint32_t nrights = 0;
		for (uint32_t i = 0; i < ch->nops; i++)
			nrights += is_right_op(ch->ops[i].kind);
		if (nrights > RIGHTS_MAX_OPS_PER_CHANGE) {
			whyf(why, whylen, "a change holds at most %u grants, revocations, scopes, links, unlinks and"
			     " approvals (this one holds %u)", RIGHTS_MAX_OPS_PER_CHANGE, nrights);
			return 1;
		}
	}
	memset(&av, 0, sizeof(av));
	if (!genesis) {
		if ((rc = judge_author(a, c, &av, why, whylen)) != 0)
			return rc;
		if (av.mem.role == SAMEN_ROLE_OBSERVER) {
			whyf(why, whylen, "%s: an observer reads the plan but may not change it", av.label);
			return 1;
		}
		memcpy(c->author_member, av.dev.member, 32);
	} else {
		/* the genesis may say, as op 1, that the creator is the client */
		bool as_client = ch->nops > 1 && ch->ops[1].kind == SAMEN_OP_MEMBER_ADD &&
		                 ch->ops[1].role == SAMEN_ROLE_CLIENT;
		av.mem.exists = true;
		av.mem.role = as_client ? SAMEN_ROLE_CLIENT : SAMEN_ROLE_COORDINATOR;
		memcpy(c->author_member, as_client ? RIGHTS_CLIENT_ID : ch->author, 32);
		member_label(av.label, sizeof(av.label), ch->author, NULL);
	}
	c->author_role = av.mem.role;
	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		const type_def *td;
		const field_def *f;
		switch (op->kind) {
		case SAMEN_OP_CREATE:
			if (!schema_type(op->type)) {
				whyf(why, whylen, "op %u: unknown entity type %u", i, op->type);
				return 1;
			}
			c->create_types[creates++] = op->type;
			if (av.mem.role == SAMEN_ROLE_PROFESSIONAL &&
			    (rc = judge_professional_op(a, c, &av, i, why, whylen)) != 0)
				return rc;
			break;
		case SAMEN_OP_SET:
		case SAMEN_OP_DELETE:
			if ((rc = resolve_entity(a, c, op->dev, op->n, creates, &type, &e, opwhy, sizeof(opwhy))) != 0) {
				if (rc > 0)
					whyf(why, whylen, "op %u %s", i, opwhy);
				return rc;
			}
			if (op->type != type) {
				whyf(why, whylen, "op %u: the entity is of type %s, not %s", i, schema_type(type)->name,
				         schema_type(op->type) ? schema_type(op->type)->name : "known type");
				return 1;
			}
			/* remembered for apply_ops(), which need not look again */
			c->op_ent[i] = e ? (int64_t)(e - a->ents) : -1;
			c->op_type[i] = type;
			if (av.mem.role == SAMEN_ROLE_PROFESSIONAL &&
			    (rc = judge_professional_op(a, c, &av, i, why, whylen)) != 0)
				return rc;
			if (op->kind == SAMEN_OP_DELETE)
				break;
			td = schema_type(type);
			if (!(f = schema_field(td, op->field))) {
				whyf(why, whylen, "op %u: a %s has no field %u", i, td->name, op->field);
				return 1;
			}
			if (schema_check_value(f, op->value, op->value_len, ch->ndevs, opwhy, sizeof(opwhy)) != 0) {
				whyf(why, whylen, "op %u: %s", i, opwhy);
				return 1;
			}
			if ((f->kind == FIELD_REF || f->kind == FIELD_REFS) && op->value[0] != 0xc0) {
				mpr r;
				uint64_t d, n;
				uint32_t ttype, count = 1;
				mpr_init(&r, op->value, op->value_len);
				if (f->kind == FIELD_REFS)
					mpr_array(&r, &count, SAMEN_MAX_REFS);
				for (uint32_t k = 0; k < count; k++) {
					mpr_array_exact(&r, 2);
					mpr_uint(&r, &d);
					mpr_uint(&r, &n);
					if ((rc = resolve_entity(a, c, (uint32_t)d, n, creates, &ttype, &e, opwhy,
					                         sizeof(opwhy))) != 0) {
						if (rc > 0)
							whyf(why, whylen, "op %u: %s %s", i, f->name, opwhy);
						return rc;
					}
					if (ttype != f->ref_type) {
						whyf(why, whylen, "op %u: %s must refer to a %s", i, f->name,
						         schema_type(f->ref_type)->name);
						return 1;
					}
				}
			}
			break;
		case SAMEN_OP_PLAN:
			break;
		case SAMEN_OP_MEMBER_ADD:
			if (op->role > 4) {
				whyf(why, whylen, "op %u: unknown role %u", i, (unsigned)op->role);
				return 1;
			}
			if (op->str_len == 0 || !schema_text_printable(op->str, op->str_len, 0)) {
				whyf(why, whylen, "op %u: a member needs a name without control characters", i);
				return 1;
			}
			if ((rc = judge_rights_op(a, c, &av, i, genesis, why, whylen)) != 0)
				return rc;
			break;
		case SAMEN_OP_REVOKE:
		case SAMEN_OP_SCOPE:
		case SAMEN_OP_LINK:
		case SAMEN_OP_UNLINK:
		case SAMEN_OP_APPROVE:
			if (genesis) {
				whyf(why, whylen, "op %u: the genesis holds no grants but the creator's own role", i);
				return 1;
			}
			if ((rc = judge_rights_op(a, c, &av, i, genesis, why, whylen)) != 0)
				return rc;
			break;
		}
	}
	return 0;
}

/* A REF value [dev, n] (or a list of them) in a change becomes [key, n] in the replica, which
 * means the same thing without the change's device table. Other values are
 * used in place: the batch's change bytes outlive the apply. */
static int normalize_value(const samen_change *ch, const field_def *f, const samen_op *op,
                           const uint8_t **out, uint32_t *len, bool *owned)
{
	if ((f->kind == FIELD_REF || f->kind == FIELD_REFS) && op->value[0] != 0xc0) {
		mpr r;
		uint64_t d, n;
		uint32_t count = 1;
		msgpack_sbuffer sb;
		msgpack_packer pk;
		mpr_init(&r, op->value, op->value_len);
		msgpack_sbuffer_init(&sb);
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		if (f->kind == FIELD_REFS) {
			mpr_array(&r, &count, SAMEN_MAX_REFS);
			msgpack_pack_array(&pk, count);
		}
		for (uint32_t k = 0; k < count; k++) {
			mpr_array_exact(&r, 2);
			mpr_uint(&r, &d);
			mpr_uint(&r, &n);
			msgpack_pack_array(&pk, 2);
			msgpack_pack_bin(&pk, 32);
			msgpack_pack_bin_body(&pk, change_ref_key(ch, (uint32_t)d), 32);
			msgpack_pack_uint64(&pk, n);
		}
		if (!sb.data)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		*out = (uint8_t *)sb.data;
		*len = (uint32_t)sb.size;
		*owned = true;
		return 0;
	}
	*out = op->value;
	*len = op->value_len;
	*owned = false;
	return 0;
}

static int note_removed(applyctx *a, const reg *g, const live_value *lv)
{
	if (a->nremoved == a->capremoved) {
		size_t nc = a->capremoved ? a->capremoved * 2 : 256;
		void *p = realloc(a->removed, nc * sizeof(*a->removed));
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		a->removed = p;
		a->capremoved = nc;
	}
	a->removed[a->nremoved].entity = g->entity;
	a->removed[a->nremoved].field = g->field;
	a->removed[a->nremoved].change = lv->change;
	a->removed[a->nremoved].op = lv->op;
	a->nremoved++;
	return 0;
}

static int apply_genesis(applyctx *a, applying *c)
{
	const samen_change *ch = &c->it->ch;
	const samen_op *op = &ch->ops[0];
	char role[4];
	int rc;
	snprintf(role, sizeof(role), "%d", c->author_role);
	memcpy(a->creator, ch->author, 32);
	a->has_creator = true;
	if ((rc = meta_set(a->w.r, "creator", ch->author, 32, 0)) < 0 ||
	    (rc = meta_set(a->w.r, "client", op->str, (int)op->str_len, 1)) < 0 ||
	    (rc = meta_set(a->w.r, "lang", op->str2, (int)op->str2_len, 1)) < 0 ||
	    (rc = meta_set(a->w.r, "creator_role", role, -1, 1)) < 0 ||
	    (rc = meta_set(a->w.r, "creator_name", ch->name, (int)ch->name_len, 1)) < 0)
		return rc;
	return rights_set_genesis(&a->rl, ch->author, c->author_role, ch->name, ch->name_len, op->str, op->str_len);
}

static bool is_pinned(const applyctx *a, int64_t change, uint32_t op)
{
	for (size_t i = 0; i < a->npinned; i++)
		if (a->pinned[i].change == change && a->pinned[i].op == op)
			return true;
	return false;
}

static bool is_banned(const applyctx *a, int64_t change, uint32_t op)
{
	for (size_t i = 0; i < a->nbanned; i++)
		if (a->banned[i][0] == change && a->banned[i][1] == (int64_t)op)
			return true;
	return false;
}

/* An accepted rights op: into the rights table and the in-memory log. */
static int apply_right(applyctx *a, applying *c, uint32_t i)
{
	const samen_change *ch = &c->it->ch;
	right_op o;
	sqlite3_stmt *s;
	int rc;

	if ((rc = right_from_op(&o, ch, i, c->it->id, c->rowid, c->devno, c->vv, c->vvlen)) < 0)
		goto cleanup;
	memcpy(o.author_member, c->author_member, 32);
	o.author_role = c->author_role;
	o.effective = !is_banned(a, c->rowid, i);
	s = stmt(a->w.r, ST_RIGHT_INSERT);
	sqlite3_bind_int64(s, 1, c->rowid);
	sqlite3_bind_int64(s, 2, i);
	sqlite3_bind_int(s, 3, o.effective);
	sqlite3_bind_blob(s, 4, o.author_member, 32, SQLITE_STATIC);
	sqlite3_bind_int(s, 5, o.author_role);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = db_error(a->w.r, "storing a grant");
		goto cleanup;
	}
	/* a pinned kill is in the log from the start of the replay pass */
	if (!(a->replaying && is_pinned(a, c->rowid, i)))
		rc = rights_add(&a->rl, &o);
cleanup:
	free(o.name);
	free(o.areas);
	return rc;
}

static int arealog_add(applyctx *a, int64_t entity, int64_t change, uint32_t op, const uint8_t *val, uint32_t len)
{
	sqlite3_stmt *s = stmt(a->w.r, ST_AREALOG_INSERT);
	sqlite3_bind_int64(s, 1, entity);
	sqlite3_bind_int64(s, 2, change);
	sqlite3_bind_int64(s, 3, op);
	sqlite3_bind_blob(s, 4, val, (int)len, SQLITE_STATIC);
	return sqlite3_step(s) == SQLITE_DONE ? 0 : db_error(a->w.r, "storing a life area");
}

static int apply_ops(applyctx *a, applying *c)
{
	const samen_change *ch = &c->it->ch;
	uint32_t creates = 0, type;
	ent *e;
	int rc;

	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		sqlite3_stmt *s;
		switch (op->kind) {
		case SAMEN_OP_CREATE:
			if ((rc = ent_create(a, c->devno, ch->author, c->ctr_base + creates, op->type, c->rowid, ch->seq)) < 0)
				return rc;
			creates++;
			break;
		case SAMEN_OP_SET:
		case SAMEN_OP_DELETE: {
			/* validation resolved every entity; those created by this
			 * change exist only now */
			type = c->op_type[i];
			e = c->op_ent[i] >= 0 ? &a->ents[c->op_ent[i]] : ent_get(a, c->devnos[op->dev], op->n, &rc);
			if (!e)
				return rc < 0 ? rc : samen_error_set(SAMEN_ERROR, "internal: entity vanished");
			if (op->kind == SAMEN_OP_DELETE) {
				if (!e->deleted) {
					s = stmt(a->w.r, ST_ENTITY_DELETE);
					sqlite3_bind_int64(s, 1, c->rowid);
					sqlite3_bind_int64(s, 2, e->rowid);
					if (sqlite3_step(s) != SQLITE_DONE)
						return db_error(a->w.r, "deleting entity");
					e->deleted = true;
				}
				break;
			}
			reg *g = reg_get(a, e->rowid, op->field, type, &rc);
			if (!g)
				return rc;
			/* Drop every value this change has seen (its own earlier ops
			 * included: vv[own devno] == own seq). */
			for (uint32_t k = 0; k < g->n;) {
				if (vv_at(c->vv, c->vvlen, g->vals[k].devno) >= g->vals[k].seq) {
					if (g->vals[k].stored && (rc = note_removed(a, g, &g->vals[k])) < 0)
						return rc;
					if (g->vals[k].owned)
						free((void *)g->vals[k].val);
					g->vals[k] = g->vals[--g->n];
				} else {
					k++;
				}
			}
			if (g->n == g->cap) {
				uint32_t nc = g->cap ? g->cap * 2 : 2;
				void *p = realloc(g->vals, nc * sizeof(*g->vals));
				if (!p)
					return samen_error_set(SAMEN_ENOMEM, "out of memory");
				g->vals = p;
				g->cap = nc;
			}
			live_value *lv = &g->vals[g->n];
			memset(lv, 0, sizeof(*lv)); /* new: not stored yet */
			lv->change = c->rowid;
			lv->op = i;
			lv->devno = c->devno;
			lv->seq = ch->seq;
			lv->lamport = ch->lamport;
			if ((rc = normalize_value(ch, schema_field(schema_type(type), op->field), op, &lv->val, &lv->len, &lv->owned)) < 0)
				return rc;
			g->n++;
			g->dirty = true;
			{
				bool via_goal;
				if (op->field == area_link_field(type, &via_goal) &&
				    (rc = arealog_add(a, e->rowid, c->rowid, i, lv->val, lv->len)) < 0)
					return rc;
			}
			break;
		}
		case SAMEN_OP_PLAN:
			if ((rc = apply_genesis(a, c)) < 0)
				return rc;
			break;
		case SAMEN_OP_MEMBER_ADD:
		case SAMEN_OP_REVOKE:
		case SAMEN_OP_SCOPE:
		case SAMEN_OP_LINK:
		case SAMEN_OP_UNLINK:
		case SAMEN_OP_APPROVE:
			if (ch->ops[0].kind == SAMEN_OP_PLAN) /* the creator's role: part of the genesis */
				break;
			if ((rc = apply_right(a, c, i)) < 0)
				return rc;
			break;
		}
	}
	return 0;
}

/* Devices that may act for member m: its first device, linked ones, and
 * the creator when the genesis made them m. */
static bool device_of_member(const rights_log *L, const uint8_t m[32], size_t *cursor, const uint8_t **key)
{
	if (*cursor == 0) {
		(*cursor)++;
		if (L->has_genesis && memcmp(m, L->creator_role == SAMEN_ROLE_CLIENT ? RIGHTS_CLIENT_ID : L->creator, 32) == 0) {
			*key = L->creator;
			return true;
		}
	}
	while (*cursor - 1 < L->n) {
		const right_op *o = &L->ops[*cursor - 1];
		(*cursor)++;
		if (o->kind == SAMEN_OP_MEMBER_ADD && memcmp(o->key, m, 32) == 0) {
			*key = o->key;
			return true;
		}
		if (o->kind == SAMEN_OP_LINK && memcmp(o->key, m, 32) == 0) {
			*key = o->key2;
			return true;
		}
	}
	return false;
}

static int pin_kill(applyctx *a, const right_op *o)
{
	right_op *p;
	if (a->npinned == a->cappinned) {
		size_t nc = a->cappinned ? a->cappinned * 2 : 8;
		void *q = realloc(a->pinned, nc * sizeof(*a->pinned));
		if (!q)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		a->pinned = q;
		a->cappinned = nc;
	}
	p = &a->pinned[a->npinned];
	*p = *o;
	p->name = NULL;
	p->areas = NULL;
	if (!(p->vv = malloc((o->vvlen ? o->vvlen : 1) * sizeof(uint64_t))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if (o->vvlen)
		memcpy(p->vv, o->vv, o->vvlen * sizeof(uint64_t));
	a->npinned++;
	return 0;
}

/* Did an accepted device of the target make a change this revocation or
 * unlink had not seen, and which was judged before it? Then the verdicts
 * so far are wrong: the replica is replayed (or, inside a replay, the
 * kill is pinned and the pass starts over). */
static int check_kills(applyctx *a, applying *c)
{
	const samen_change *ch = &c->it->ch;
	int rc;
	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		const uint8_t *dkey;
		size_t cursor = 0;
		bool hit = false;
		const right_op *o = NULL;
		if (op->kind != SAMEN_OP_REVOKE && op->kind != SAMEN_OP_UNLINK)
			continue;
		if (is_banned(a, c->rowid, i) || (a->replaying && is_pinned(a, c->rowid, i)))
			continue;
		for (;;) {
			uint32_t devno;
			sqlite3_stmt *s;
			if (op->kind == SAMEN_OP_UNLINK) {
				if (cursor++)
					break;
				dkey = op->key;
			} else if (!device_of_member(&a->rl, op->key, &cursor, &dkey)) {
				break;
			}
			if ((rc = devno_of(&a->w, dkey, false, &devno)) < 0)
				return rc;
			if (!devno)
				continue;
			s = stmt(a->w.r, ST_LATER_ACCEPTED);
			sqlite3_bind_int64(s, 1, devno);
			sqlite3_bind_int64(s, 2, (sqlite3_int64)vv_at(c->vv, c->vvlen, devno));
			sqlite3_bind_int64(s, 3, c->rowid);
			hit = sqlite3_step(s) == SQLITE_ROW;
			sqlite3_reset(s);
			if (hit)
				break;
		}
		if (!hit)
			continue;
		if (!a->replaying) {
			a->need_replay = true;
			continue;
		}
		for (size_t k = 0; k < a->rl.n && !o; k++)
			if (a->rl.ops[k].change == c->rowid && a->rl.ops[k].op == i)
				o = &a->rl.ops[k];
		if (o && (rc = pin_kill(a, o)) < 0)
			return rc;
		a->restart = true;
		return 0;
	}
	return 0;
}

static int store_verdict(applyctx *a, int64_t rowid, int verdict, const char *why)
{
	sqlite3_stmt *s = stmt(a->w.r, ST_VERDICT_SET);
	sqlite3_bind_int(s, 1, verdict);
	if (verdict)
		sqlite3_bind_null(s, 2);
	else
		sqlite3_bind_text(s, 2, why, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, rowid);
	return sqlite3_step(s) == SQLITE_DONE ? 0 : db_error(a->w.r, "storing a verdict");
}

/* Judge one change against its past and, when accepted, apply its ops. */
static int judge_and_apply(applyctx *a, applying *c, cinfo *ci, uint8_t plan[16])
{
	char why[512] = "";
	int rc = validate_change(a, c, plan, why, sizeof(why));
	if (rc < 0)
		return rc;
	if (rc > 0)
		return store_verdict(a, c->rowid, 0, why);
	if (ci)
		ci->accepted = true;
	if ((rc = apply_ops(a, c)) < 0)
		return rc;
	if (a->replaying && (rc = store_verdict(a, c->rowid, 1, NULL)) < 0)
		return rc;
	return check_kills(a, c);
}

static int apply_one(applyctx *a, ingest_batch *b, ingest_item *it, uint8_t plan[16])
{
	applying c;
	cinfo *pi, *ci;
	int rc = 0, verdict;
	sqlite3_stmt *s;

	memset(&c, 0, sizeof(c));
	c.it = it;
	if ((rc = devno_of(&a->w, it->ch.author, true, &c.devno)) < 0)
		return rc;
	c.vvlen = a->w.ndevs;
	c.vv = calloc(c.vvlen, 8);
	c.create_types = calloc(it->ch.ncreates + 1, sizeof(uint32_t));
	c.devnos = calloc(it->ch.ndevs + 1, sizeof(uint32_t));
	c.op_ent = calloc(it->ch.nops + 1, sizeof(int64_t));
	c.op_type = calloc(it->ch.nops + 1, sizeof(uint32_t));
	if (!c.vv || !c.create_types || !c.devnos || !c.op_ent || !c.op_type) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	c.devnos[0] = c.devno;
	for (uint32_t d = 0; d < it->ch.ndevs; d++)
		if ((rc = devno_of(&a->w, change_dev(&it->ch, d), false, &c.devnos[d + 1])) < 0)
			goto cleanup;
	/* vv = max over the parents' vectors, then our own entry. */
	for (uint32_t k = 0; k <= it->ch.ndeps; k++) {
		const uint8_t *pid = k == 0 ? (it->ch.has_prev ? it->ch.prev : NULL) : change_dep(&it->ch, k - 1);
		if (!pid)
			continue;
		if (!(pi = info_get(&a->w, pid, &rc))) {
			rc = rc ? rc : samen_error_set(SAMEN_ERROR, "internal: a dependency was not applied first");
			goto cleanup;
		}
		for (uint32_t d = 0; d < pi->vvlen && d < c.vvlen; d++)
			if (pi->vv[d] > c.vv[d])
				c.vv[d] = pi->vv[d];
		if (k == 0)
			c.ctr_base = pi->ctr_end;
	}
	c.vv[c.devno - 1] = it->ch.seq;

	/* Insert the change first: ops refer to it by rowid. Its verdict is
	 * decided before any op is applied and patched in below. */
	verdict = 1;
	s = stmt(a->w.r, ST_CHANGE_INSERT);
	sqlite3_bind_blob(s, 1, it->id, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, c.devno);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)it->ch.seq);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)it->ch.lamport);
	sqlite3_bind_int64(s, 5, it->ch.time);
	sqlite3_bind_text(s, 6, it->ch.name, (int)it->ch.name_len, SQLITE_STATIC);
	sqlite3_bind_int64(s, 7, it->ch.nops);
	if (it->has_commit)
		sqlite3_bind_blob(s, 8, it->commit, 20, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, 8);
	sqlite3_bind_int(s, 9, verdict);
	sqlite3_bind_null(s, 10);
	sqlite3_bind_blob(s, 11, c.vv, (int)(c.vvlen * 8), SQLITE_STATIC);
	sqlite3_bind_int64(s, 12, (sqlite3_int64)(c.ctr_base + it->ch.ncreates));
	/* the history holds the bytes: the replica keeps where they are */
	if (it->has_blob) {
		sqlite3_bind_null(s, 13);
		sqlite3_bind_blob(s, 15, it->blob, 20, SQLITE_STATIC);
	} else {
		sqlite3_bind_blob(s, 13, it->bytes, (int)it->len, SQLITE_STATIC);
		sqlite3_bind_null(s, 15);
	}
	sqlite3_bind_blob(s, 14, it->sig, 64, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = db_error(a->w.r, "storing a change");
		goto cleanup;
	}
	c.rowid = sqlite3_last_insert_rowid(a->w.r->db);

	if (!(ci = info_push(&a->w, it->id))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	ci->rowid = c.rowid;
	ci->devno = c.devno;
	ci->seq = it->ch.seq;
	ci->lamport = it->ch.lamport;
	ci->ctr_end = c.ctr_base + it->ch.ncreates;
	ci->vv = malloc(c.vvlen * 8);
	if (!ci->vv) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	memcpy(ci->vv, c.vv, c.vvlen * 8);
	ci->vvlen = c.vvlen;

	for (uint32_t k = 0; k <= it->ch.ndeps; k++) {
		const uint8_t *pid = k == 0 ? (it->ch.has_prev ? it->ch.prev : NULL) : change_dep(&it->ch, k - 1);
		if (!pid)
			continue;
		pi = info_get(&a->w, pid, &rc);
		s = stmt(a->w.r, ST_HEAD_DELETE);
		sqlite3_bind_int64(s, 1, pi->rowid);
		if (sqlite3_step(s) != SQLITE_DONE) {
			rc = db_error(a->w.r, "updating heads");
			goto cleanup;
		}
	}
	s = stmt(a->w.r, ST_HEAD_INSERT);
	sqlite3_bind_int64(s, 1, c.rowid);
	if (sqlite3_step(s) != SQLITE_DONE) {
		rc = db_error(a->w.r, "updating heads");
		goto cleanup;
	}

	if (it->fork) {
		/* a second change with this seq: the device is marked from here
		 * on, and every verdict is decided again with that known, so the
		 * result does not depend on which of the two came first */
		uint64_t before = fork_of(a, c.devno);
		s = stmt(a->w.r, ST_FORK_INSERT);
		sqlite3_bind_int64(s, 1, c.devno);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)it->ch.seq);
		if (sqlite3_step(s) != SQLITE_DONE) {
			rc = db_error(a->w.r, "noting a fork");
			goto cleanup;
		}
		if ((rc = fork_note(a, c.devno, it->ch.seq)) < 0)
			goto cleanup;
		if (!before || it->ch.seq < before)
			a->need_replay = true;
	}
	rc = judge_and_apply(a, &c, ci, plan);
	(void)b;
cleanup:
	free(c.vv);
	free(c.create_types);
	free(c.devnos);
	free(c.op_ent);
	free(c.op_type);
	return rc;
}

/* --- replay: a late revocation re-decides every verdict ------------------ */

/* Forget everything derived from verdicts; structure (changes, vv, heads,
 * pending, forks) stays. */
static int replay_reset(applyctx *a)
{
	static const char sql[] =
		"DELETE FROM entities; DELETE FROM fields; DELETE FROM rights; DELETE FROM arealog;"
		"UPDATE changes SET verdict = -1, reason = NULL;"
		"DELETE FROM meta WHERE key IN ('creator','client','lang','creator_role','creator_name');";
	for (size_t i = 0; i < a->nregs; i++) {
		for (uint32_t k = 0; k < a->regs[i].n; k++)
			if (a->regs[i].vals[k].owned)
				free((void *)a->regs[i].vals[k].val);
		free(a->regs[i].vals);
	}
	a->nregs = a->nents = a->nremoved = 0;
	a->preloaded = false;
	hmap_clear(&a->regidx);
	hmap_clear(&a->entidx);
	rights_reset(&a->rl);
	a->has_creator = false;
	for (size_t i = 0; i < a->npinned; i++) {
		int rc = rights_add(&a->rl, &a->pinned[i]);
		if (rc < 0)
			return rc;
	}
	if (sqlite3_exec(a->w.r->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_error(a->w.r, "replaying");
	return 0;
}

/* One change from the changes table, judged again. Its bytes must outlive
 * the pass (values point into them), so the caller keeps them. */
static int replay_one(applyctx *a, sqlite3_stmt *q, ingest_item *it, uint8_t plan[16])
{
	applying c;
	int rc;
	uint64_t ctr_end = (uint64_t)sqlite3_column_int64(q, 4);

	memset(&c, 0, sizeof(c));
	c.it = it;
	c.rowid = sqlite3_column_int64(q, 0);
	c.devno = (uint32_t)sqlite3_column_int64(q, 3);
	c.vvlen = (uint32_t)(sqlite3_column_bytes(q, 5) / 8);
	c.vv = calloc(c.vvlen ? c.vvlen : 1, 8);
	c.create_types = calloc(it->ch.ncreates + 1, sizeof(uint32_t));
	c.devnos = calloc(it->ch.ndevs + 1, sizeof(uint32_t));
	c.op_ent = calloc(it->ch.nops + 1, sizeof(int64_t));
	c.op_type = calloc(it->ch.nops + 1, sizeof(uint32_t));
	if (!c.vv || !c.create_types || !c.devnos || !c.op_ent || !c.op_type) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if (c.vvlen)
		memcpy(c.vv, sqlite3_column_blob(q, 5), (size_t)c.vvlen * 8);
	c.ctr_base = ctr_end - it->ch.ncreates;
	c.devnos[0] = c.devno;
	for (uint32_t d = 0; d < it->ch.ndevs; d++)
		if ((rc = devno_of(&a->w, change_dev(&it->ch, d), false, &c.devnos[d + 1])) < 0)
			goto cleanup;
	rc = judge_and_apply(a, &c, NULL, plan);
cleanup:
	free(c.vv);
	free(c.create_types);
	free(c.devnos);
	free(c.op_ent);
	free(c.op_type);
	return rc;
}

/* Every change again, in (Lamport, id) order: a topological order, the
 * same on every replica. */
static int replay_pass(applyctx *a, uint8_t plan[16])
{
	sqlite3_stmt *q = NULL;
	ingest_item *items = NULL;
	size_t n = 0, cap = 0;
	int rc;

	if ((rc = replay_reset(a)) < 0)
		return rc;
	if (sqlite3_prepare_v2(a->w.r->db, "SELECT rowid, id, body, devno, ctr_end, vv, blob FROM changes"
	                       " ORDER BY lamport, id", -1, &q, NULL) != SQLITE_OK)
		return db_error(a->w.r, "replaying");
	while (rc == 0 && !a->restart && sqlite3_step(q) == SQLITE_ROW) {
		ingest_item *it, *fresh;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 256;
			void *p = realloc(items, nc * sizeof(*items));
			if (!p) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			items = p;
			cap = nc;
		}
		it = &items[n];
		memset(it, 0, sizeof(*it));
		/* this batch's changes may not have reached the history yet (it is
		 * written meanwhile): their bytes are at hand */
		if (sqlite3_column_bytes(q, 1) == 32 && a->batch && (fresh = ingest_find(a->batch, sqlite3_column_blob(q, 1)))) {
			if (!(it->bytes = malloc(fresh->len ? fresh->len : 1))) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			memcpy(it->bytes, fresh->bytes, fresh->len);
			it->len = fresh->len;
		} else if ((rc = replica_row_change(a->w.r, q, 2, 6, 1, &it->bytes, &it->len)) < 0) {
			break;
		}
		memcpy(it->id, sqlite3_column_blob(q, 1), 32);
		if (change_decode(&it->ch, it->bytes, it->len) < 0) {
			free(it->bytes);
			rc = samen_error_set(SAMEN_ECORRUPT, "replica: a stored change does not decode (run samen rebuild)");
			break;
		}
		n++;
		rc = replay_one(a, q, it, plan);
	}
	sqlite3_finalize(q);
	if (rc == 0 && !a->restart)
		rc = flush_regs(a);
	/* the next pass (or the caller) starts from clean caches: values must
	 * not point into the bytes freed here */
	for (size_t i = 0; i < a->nregs; i++)
		for (uint32_t k = 0; k < a->regs[i].n; k++)
			if (!a->regs[i].vals[k].owned)
				a->regs[i].vals[k].val = NULL;
	for (size_t i = 0; i < n; i++) {
		change_clear(&items[i].ch);
		free(items[i].bytes);
	}
	free(items);
	return rc;
}

/* A pinned kill whose own change ended up rejected never takes effect
 * (banned), and the pass starts over; each kill is pinned and banned at
 * most once, so this ends. */
static int ban_rejected_pins(applyctx *a)
{
	for (size_t i = 0; i < a->npinned; i++) {
		sqlite3_stmt *s = NULL;
		int verdict = 1;
		if (sqlite3_prepare_v2(a->w.r->db, "SELECT verdict FROM changes WHERE rowid = ?", -1, &s, NULL) != SQLITE_OK)
			return db_error(a->w.r, "replaying");
		sqlite3_bind_int64(s, 1, a->pinned[i].change);
		if (sqlite3_step(s) == SQLITE_ROW)
			verdict = sqlite3_column_int(s, 0);
		sqlite3_finalize(s);
		if (verdict == 1)
			continue;
		if (a->nbanned == a->capbanned) {
			size_t nc = a->capbanned ? a->capbanned * 2 : 8;
			void *p = realloc(a->banned, nc * sizeof(*a->banned));
			if (!p)
				return samen_error_set(SAMEN_ENOMEM, "out of memory");
			a->banned = p;
			a->capbanned = nc;
		}
		a->banned[a->nbanned][0] = a->pinned[i].change;
		a->banned[a->nbanned][1] = a->pinned[i].op;
		a->nbanned++;
		free(a->pinned[i].vv);
		a->pinned[i--] = a->pinned[--a->npinned];
		a->restart = true;
	}
	return 0;
}

/* How many verdicts a replay changed: the old ones wait in a temporary
 * table (local to this connection, gone at the end). */
static int count_rejudged(applyctx *a, bool before, size_t *out)
{
	sqlite3_stmt *s = NULL;
	if (before)
		return sqlite3_exec(a->w.r->db, "DROP TABLE IF EXISTS temp.replay_old;"
		                    "CREATE TEMP TABLE replay_old(rowid INTEGER PRIMARY KEY, verdict INTEGER);"
		                    "INSERT INTO replay_old SELECT rowid, verdict FROM changes;", NULL, NULL, NULL) == SQLITE_OK
		       ? 0 : db_error(a->w.r, "replaying");
	if (sqlite3_prepare_v2(a->w.r->db, "SELECT count(*) FROM changes c JOIN temp.replay_old o ON o.rowid = c.rowid"
	                       " WHERE o.verdict <> c.verdict", -1, &s, NULL) != SQLITE_OK)
		return db_error(a->w.r, "replaying");
	if (sqlite3_step(s) == SQLITE_ROW)
		*out += (size_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_exec(a->w.r->db, "DROP TABLE IF EXISTS temp.replay_old", NULL, NULL, NULL);
	return 0;
}

static int replay_all(applyctx *a, uint8_t plan[16])
{
	int rc = 0;
	a->replaying = true;
	a->npinned = a->nbanned = 0;
	for (unsigned pass = 0;; pass++) {
		if (pass > 2 * a->rl.n + 1000) {
			rc = samen_error_set(SAMEN_ERROR, "internal: replaying the verdicts does not settle");
			break;
		}
		a->restart = false;
		if ((rc = replay_pass(a, plan)) < 0)
			break;
		if (!a->restart && (rc = ban_rejected_pins(a)) < 0)
			break;
		if (!a->restart)
			break;
	}
	for (size_t i = 0; i < a->npinned; i++)
		free(a->pinned[i].vv);
	a->npinned = a->nbanned = 0;
	a->replaying = false;
	a->need_replay = false;
	return rc;
}

int replica_apply(replica *r, ingest_batch *b)
{
	return replica_apply_ex(r, b, NULL, NULL);
}

int replica_apply_ex(replica *r, ingest_batch *b, replica_precommit_cb precommit, void *payload)
{
	uint64_t npending_stored = 0, pending_bytes = 0;
	bool pending_counted = false, any_pending = true;
	applyctx a;
	uint8_t plan[16];
	bool known;
	int rc;
	sqlite3_stmt *s;

	memset(&a, 0, sizeof(a));
	work_init(&a.w, r);
	a.batch = b;
	hmap_init(&a.entidx, 16);
	hmap_init(&a.regidx, 16);
	if ((rc = replica_begin(r)) < 0) {
		apply_free(&a);
		return rc;
	}
	if ((rc = load_devs(&a.w)) < 0)
		goto fail;
	if ((rc = replica_plan_id(r, plan, &known)) < 0)
		goto fail;
	if (!known) {
		memcpy(plan, b->plan, 16);
		if ((rc = replica_set_plan_id(r, plan)) < 0)
			goto fail;
	}
	rc = meta_get_blob(r, "creator", a.creator, 32);
	if (rc < 0)
		goto fail;
	a.has_creator = rc == 1;
	if ((rc = load_rights(&a)) < 0 || (rc = load_forks(&a)) < 0)
		goto fail;
	{
		/* a batch that sets many fields gets every register in one scan */
		uint64_t sets = 0;
		for (size_t i = 0; i < b->nready; i++)
			sets += b->items[b->order[i]].ch.nops;
		if (sets >= 2000 && (rc = preload_regs(&a)) < 0)
			goto fail;
	}
	for (size_t i = 0; i < b->nready; i++)
		if ((rc = apply_one(&a, b, &b->items[b->order[i]], plan)) < 0)
			goto fail;
	if ((rc = flush_regs(&a)) < 0)
		goto fail;
	if (a.need_replay && ((rc = count_rejudged(&a, true, NULL)) < 0 || (rc = replay_all(&a, plan)) < 0 ||
	                      (rc = count_rejudged(&a, false, &b->nrejudged)) < 0))
		goto fail;
	{
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(r->db, "SELECT EXISTS (SELECT 1 FROM pending)", -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			any_pending = sqlite3_column_int(q, 0) != 0;
		sqlite3_finalize(q);
	}
	for (size_t i = 0; i < b->n; i++) {
		ingest_item *it = &b->items[i];
		if (it->state != ITEM_PENDING && !any_pending) {
			/* nothing waits, so there is no row to drop */
		} else if (it->state != ITEM_PENDING) {
			/* applied, known, or refused: not waiting any more (the row may
			 * exist even when this copy came from elsewhere) */
			s = stmt(r, ST_PENDING_DELETE);
			sqlite3_bind_blob(s, 1, it->id, 32, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE) {
				rc = db_error(r, "pending");
				goto fail;
			}
		} else {
			const uint8_t *waits = NULL;
			for (uint32_t k = 0; k <= it->ch.ndeps && !waits; k++) {
				const uint8_t *pid = k == 0 ? (it->ch.has_prev ? it->ch.prev : NULL) : change_dep(&it->ch, k - 1);
				if (pid && !replica_has_change(r, pid))
					waits = pid;
			}
			if (!waits) /* cannot happen: it would have been ready */
				continue;
			/* Changes whose dependencies never arrive must not fill the
			 * disk: the waiting room has hard caps, counted once. */
			if (!it->from_pending && !pending_counted) {
				sqlite3_stmt *q = NULL;
				if (sqlite3_prepare_v2(r->db, "SELECT count(*), total(length(body)) FROM pending", -1, &q,
				                       NULL) == SQLITE_OK &&
				    sqlite3_step(q) == SQLITE_ROW) {
					npending_stored = (uint64_t)sqlite3_column_int64(q, 0);
					pending_bytes = (uint64_t)sqlite3_column_double(q, 1);
				}
				sqlite3_finalize(q);
				pending_counted = true;
			}
			if (!it->from_pending) {
				if (npending_stored >= SAMEN_MAX_PENDING || pending_bytes + it->len > SAMEN_MAX_PENDING_BYTES) {
					b->ndropped++;
					continue;
				}
				npending_stored++;
				pending_bytes += it->len;
			}
			s = stmt(r, ST_PENDING_INSERT);
			sqlite3_bind_blob(s, 1, it->id, 32, SQLITE_STATIC);
			sqlite3_bind_blob(s, 2, it->bytes, (int)it->len, SQLITE_STATIC);
			sqlite3_bind_blob(s, 3, it->sig, 64, SQLITE_STATIC);
			sqlite3_bind_blob(s, 4, waits, 32, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE) {
				rc = db_error(r, "pending");
				goto fail;
			}
		}
	}
	if (precommit && (rc = precommit(payload)) < 0)
		goto fail;
	if ((rc = replica_commit(r)) < 0)
		goto fail;
	apply_free(&a);
	return 0;
fail:
	replica_rollback(r);
	apply_free(&a);
	return rc;
}

/* --- rights for queries -------------------------------------------------------- */

int replica_rights_load(replica *r, rights_log *out)
{
	applyctx a;
	int rc;
	memset(&a, 0, sizeof(a));
	work_init(&a.w, r);
	hmap_init(&a.entidx, 16);
	hmap_init(&a.regidx, 16);
	rights_init(out);
	rc = meta_get_blob(r, "creator", a.creator, 32);
	if (rc >= 0) {
		a.has_creator = rc == 1;
		if ((rc = load_rights(&a)) == 0) {
			*out = a.rl;
			rights_init(&a.rl);
		}
	}
	apply_free(&a);
	return rc < 0 ? rc : 0;
}

static const char sync_log_sql[] =
	"CREATE TABLE IF NOT EXISTS sync_log(device BLOB PRIMARY KEY, last_sync INTEGER NOT NULL) WITHOUT ROWID";

int replica_note_sync(replica *r, const uint8_t device[32], int64_t when)
{
	sqlite3_stmt *s = NULL;
	int rc = 0;
	if (sqlite3_exec(r->db, sync_log_sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO sync_log(device, last_sync) VALUES (?, ?)", -1, &s, NULL) !=
	        SQLITE_OK)
		return db_error(r, "sync log");
	sqlite3_bind_blob(s, 1, device, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, when);
	if (sqlite3_step(s) != SQLITE_DONE)
		rc = db_error(r, "sync log");
	sqlite3_finalize(s);
	return rc;
}

int64_t replica_last_sync(replica *r, const uint8_t device[32])
{
	sqlite3_stmt *s = NULL;
	int64_t when = -1;
	if (sqlite3_prepare_v2(r->db, "SELECT last_sync FROM sync_log WHERE device = ?", -1, &s, NULL) != SQLITE_OK)
		return -1; /* no sync log (yet) */
	sqlite3_bind_blob(s, 1, device, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		when = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return when;
}

bool replica_device_may_sync(replica *r, const uint8_t device[32])
{
	rights_log L;
	rights_device d;
	rights_member m;
	bool may = false;
	if (replica_rights_load(r, &L) < 0)
		return false;
	rights_device_at(&L, NULL, device, &d);
	if (d.known && !d.unlinked) {
		rights_member_at(&L, NULL, d.member, &m);
		may = m.exists && !m.revoked && m.role >= 0;
	}
	rights_free(&L);
	return may;
}

/* --- queries for local edits ------------------------------------------------ */

static int add_head(replica_edit_base *out, size_t *cap, const uint8_t id[32])
{
	for (uint32_t i = 0; i < out->nheads; i++)
		if (memcmp(out->heads + 32 * i, id, 32) == 0)
			return 0;
	if (out->nheads >= SAMEN_MAX_DEPS)
		return 0;
	if (out->nheads == *cap) {
		size_t nc = *cap ? *cap * 2 : 8;
		void *p = realloc(out->heads, nc * 32);
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		out->heads = p;
		*cap = nc;
	}
	memcpy(out->heads + 32 * out->nheads++, id, 32);
	return 0;
}

/* Append a change id to a growing work list. */
static int push_id(uint8_t (**todo)[32], size_t *n, size_t *cap, const uint8_t id[32])
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		void *p = realloc(*todo, nc * 32);
		if (!p)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		*todo = p;
		*cap = nc;
	}
	memcpy((*todo)[(*n)++], id, 32);
	return 0;
}

/* A head that was rejected hides the accepted changes it builds on (a
 * revoked member who edits on, a professional outside their scope): the
 * new change builds on the nearest accepted ancestors instead, so that what
 * it has seen of the plan (grants above all) is in its causal past. The
 * walk visits each rejected change once. */
static int accepted_below_rejected_heads(replica *r, replica_edit_base *out, size_t *cap)
{
	sqlite3_stmt *h = NULL, *q = NULL;
	uint8_t (*todo)[32] = NULL;
	size_t ntodo = 0, captodo = 0, visited = 0;
	hmap seen;
	int rc = 0;

	hmap_init(&seen, 32);
	if (sqlite3_prepare_v2(r->db, "SELECT c.id FROM heads h JOIN changes c ON c.rowid = h.change WHERE c.verdict = 0",
	                       -1, &h, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(r->db, "SELECT verdict, body, blob, id FROM changes WHERE id = ?", -1, &q, NULL) != SQLITE_OK) {
		rc = db_error(r, "edit base");
		goto cleanup;
	}
	while (rc == 0 && sqlite3_step(h) == SQLITE_ROW)
		rc = push_id(&todo, &ntodo, &captodo, sqlite3_column_blob(h, 0));
	while (rc == 0 && ntodo && visited++ < SAMEN_MAX_PENDING) {
		uint8_t id[32], *bytes;
		size_t len;
		samen_change ch;
		memcpy(id, todo[--ntodo], 32);
		if (hmap_get(&seen, id))
			continue;
		if ((rc = hmap_put(&seen, id, 1)) < 0)
			break;
		sqlite3_reset(q);
		sqlite3_bind_blob(q, 1, id, 32, SQLITE_TRANSIENT);
		if (sqlite3_step(q) != SQLITE_ROW)
			continue;
		if (sqlite3_column_int(q, 0) == 1) {
			rc = add_head(out, cap, id);
			continue;
		}
		if ((rc = replica_row_change(r, q, 1, 2, 3, &bytes, &len)) < 0)
			break;
		if (change_decode(&ch, bytes, len) < 0) {
			free(bytes);
			continue;
		}
		for (uint32_t k = 0; k <= ch.ndeps && rc == 0; k++) {
			const uint8_t *pid = k == 0 ? (ch.has_prev ? ch.prev : NULL) : change_dep(&ch, k - 1);
			if (!pid)
				continue;
			rc = push_id(&todo, &ntodo, &captodo, pid);
		}
		change_clear(&ch);
		free(bytes);
	}
	if (rc == 0)
		samen_error_clear(); /* undecodable rejected changes were skipped, not errors */
cleanup:
	sqlite3_finalize(h);
	sqlite3_finalize(q);
	free(todo);
	hmap_free(&seen);
	return rc;
}

int replica_get_edit_base(replica *r, const uint8_t author[32], replica_edit_base *out)
{
	sqlite3_stmt *s = NULL;
	uint64_t maxl = 0;
	size_t cap = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->seq = 1;
	/* A device that equivocated writes nothing more: all it wrote from the
	 * fork on is void on every replica. */
	if (sqlite3_prepare_v2(r->db, "SELECT f.seq FROM forks f JOIN devs d ON d.devno = f.devno WHERE d.key = ?", -1,
	                       &s, NULL) != SQLITE_OK)
		return db_error(r, "edit base");
	sqlite3_bind_blob(s, 1, author, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		long long seq = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
		return samen_error_set(SAMEN_EPERM, "this device signed two different changes numbered %lld (a store restored"
		                       " from a backup, or a copied device key, does that): what it wrote from there on is"
		                       " void on every device. Start a new store for this device (samen init --store DIR)"
		                       " and have a member link its new key (samen device link)", seq);
	}
	sqlite3_finalize(s);
	s = NULL;
	if (sqlite3_prepare_v2(r->db, "SELECT c.id, c.seq, c.ctr_end FROM changes c JOIN devs d ON d.devno = c.devno"
	                       " WHERE d.key = ? ORDER BY c.seq DESC LIMIT 1", -1, &s, NULL) != SQLITE_OK)
		return db_error(r, "edit base");
	sqlite3_bind_blob(s, 1, author, 32, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW) {
		out->has_prev = true;
		memcpy(out->prev, sqlite3_column_blob(s, 0), 32);
		out->seq = (uint64_t)sqlite3_column_int64(s, 1) + 1;
		out->ctr_base = (uint64_t)sqlite3_column_int64(s, 2);
	}
	sqlite3_finalize(s);
	/* The new change builds on the accepted heads (rejected changes are kept
	 * but nobody builds on them, so a flood of them cannot crowd out the
	 * real ones), newest first, at most SAMEN_MAX_DEPS; the Lamport clock
	 * still exceeds every change this replica holds. */
	if (sqlite3_prepare_v2(r->db, "SELECT c.id, c.lamport FROM heads h JOIN changes c ON c.rowid = h.change"
	                       " WHERE c.verdict = 1 ORDER BY c.lamport DESC, c.id LIMIT ?", -1, &s, NULL) != SQLITE_OK)
		return db_error(r, "edit base");
	sqlite3_bind_int(s, 1, SAMEN_MAX_DEPS);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t l = (uint64_t)sqlite3_column_int64(s, 1);
		if (out->nheads == cap) {
			size_t nc = cap ? cap * 2 : 8;
			void *p = realloc(out->heads, nc * 32);
			if (!p) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			out->heads = p;
			cap = nc;
		}
		memcpy(out->heads + 32 * out->nheads++, sqlite3_column_blob(s, 0), 32);
		if (l > maxl)
			maxl = l;
	}
	sqlite3_finalize(s);
	s = NULL;
	if (rc == 0)
		rc = accepted_below_rejected_heads(r, out, &cap);
	if (rc == 0 && sqlite3_prepare_v2(r->db, "SELECT max(lamport) FROM changes", -1, &s, NULL) == SQLITE_OK &&
	    sqlite3_step(s) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(s, 0) > maxl)
		maxl = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	if (rc == 0 && maxl == UINT64_MAX)
		rc = samen_error_set(SAMEN_ELIMIT, "the plan's Lamport clock is exhausted (2^64-1); no change can follow it");
	out->lamport = maxl + 1;
	if (rc < 0) {
		free(out->heads);
		out->heads = NULL;
	}
	return rc;
}

int replica_find_entity(replica *r, uint32_t type, const char *what, replica_entity *out)
{
	sqlite3_stmt *s = NULL;
	size_t len = strlen(what);
	int found = 0, rc = 0;
	char pattern[40];
	bool hex = len >= 4 && len <= 16;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < len && hex; i++)
		hex = (what[i] >= '0' && what[i] <= '9') || (what[i] >= 'a' && what[i] <= 'f');
	/* first by uid prefix, then by exact label, then by the label of what
	 * the label field refers to (a tie or a VIP is named by its person) */
	static const char *const sqls[3] = {
		/* GLOB is case-sensitive, so a prefix uses the uid index */
		"SELECT e.rowid, e.type, d.key, e.n, e.uid, e.deleted IS NOT NULL FROM entities e"
		" JOIN devs d ON d.devno = e.devno WHERE e.uid GLOB ? AND (?2 = 0 OR e.type = ?2)"
		" ORDER BY e.deleted IS NOT NULL LIMIT 3",
		"SELECT e.rowid, e.type, d.key, e.n, e.uid, e.deleted IS NOT NULL FROM entities e"
		" JOIN devs d ON d.devno = e.devno JOIN fields f ON f.entity = e.rowid AND f.field = 1 AND f.win"
		" WHERE f.sqlval = ? AND (?2 = 0 OR e.type = ?2) AND e.deleted IS NULL LIMIT 3",
		"SELECT e.rowid, e.type, d.key, e.n, e.uid, e.deleted IS NOT NULL FROM entities e"
		" JOIN devs d ON d.devno = e.devno JOIN fields f ON f.entity = e.rowid AND f.field = 1 AND f.win"
		" JOIN entities t ON t.uid = f.sqlval JOIN fields tf ON tf.entity = t.rowid AND tf.field = 1 AND tf.win"
		" WHERE tf.sqlval = ? AND (?2 = 0 OR e.type = ?2) AND e.deleted IS NULL AND t.deleted IS NULL LIMIT 3"};
	for (int pass = 0; pass < 3 && !found; pass++) {
		const char *sql = sqls[pass];
		if (pass == 0 && !hex)
			continue;
		if (sqlite3_prepare_v2(r->db, sql, -1, &s, NULL) != SQLITE_OK)
			return db_error(r, "finding an entity");
		if (pass == 0) {
			snprintf(pattern, sizeof(pattern), "%s*", what); /* hex only: no GLOB metacharacters */
			sqlite3_bind_text(s, 1, pattern, -1, SQLITE_TRANSIENT);
		} else {
			sqlite3_bind_text(s, 1, what, -1, SQLITE_TRANSIENT);
		}
		sqlite3_bind_int64(s, 2, type);
		while (sqlite3_step(s) == SQLITE_ROW) {
			if (found++ == 0) {
				out->rowid = sqlite3_column_int64(s, 0);
				out->type = (uint32_t)sqlite3_column_int64(s, 1);
				if (sqlite3_column_bytes(s, 2) == 32)
					memcpy(out->key, sqlite3_column_blob(s, 2), 32);
				out->n = (uint64_t)sqlite3_column_int64(s, 3);
				snprintf(out->uid, sizeof(out->uid), "%s", (const char *)sqlite3_column_text(s, 4));
				out->deleted = sqlite3_column_int(s, 5) != 0;
			}
		}
		sqlite3_finalize(s);
		s = NULL;
	}
	if (found == 0)
		rc = samen_error_set(SAMEN_ENOTFOUND, "no %s '%s' in this plan (give its id or its exact title)",
		                     type ? schema_type(type)->name : "entity", what);
	else if (found > 1)
		rc = samen_error_set(SAMEN_EAMBIGUOUS, "'%s' matches more than one %s; give more of its id",
		                     what, type ? schema_type(type)->name : "entity");
	return rc;
}

/* --- the state hash ------------------------------------------------------------ */

static void hash_blob(crypto_generichash_state *st, const void *p, size_t n)
{
	uint8_t len[8];
	for (int k = 0; k < 8; k++)
		len[k] = (uint8_t)((uint64_t)n >> (8 * k));
	crypto_generichash_update(st, len, 8);
	if (n)
		crypto_generichash_update(st, p, n);
}

static void hash_int(crypto_generichash_state *st, int64_t v)
{
	uint8_t b[8];
	for (int k = 0; k < 8; k++)
		b[k] = (uint8_t)((uint64_t)v >> (8 * k));
	crypto_generichash_update(st, b, 8);
}

/* The digest covers only what every replica must agree on, in an order that
 * does not depend on local numbering (rowids, devnos): change ids with their
 * verdicts, entities by (creator key, n), every live value with its change,
 * members, and the plan's metadata. */
int replica_state_hash(replica *r, uint8_t out[32])
{
	static const char *const queries[] = {
		"SELECT 'meta', key, value FROM meta WHERE key IN ('plan','creator','client','lang') ORDER BY key",
		"SELECT 'change', id, verdict FROM changes ORDER BY id",
		"SELECT 'entity', d.key, e.n, e.type, e.deleted IS NOT NULL FROM entities e JOIN devs d ON d.devno = e.devno"
		" ORDER BY d.key, e.n",
		"SELECT 'field', d.key, e.n, f.field, c.id, f.op, f.win, f.value FROM fields f"
		" JOIN entities e ON e.rowid = f.entity JOIN devs d ON d.devno = e.devno JOIN changes c ON c.rowid = f.change"
		" ORDER BY d.key, e.n, f.field, c.id, f.op",
		"SELECT 'right', c.id, r.op, r.effective, r.author_member, r.author_role FROM rights r"
		" JOIN changes c ON c.rowid = r.change ORDER BY c.id, r.op",
	};
	crypto_generichash_state st;
	int rc = 0;

	crypto_generichash_init(&st, NULL, 0, 32);
	for (size_t q = 0; q < sizeof(queries) / sizeof(queries[0]) && rc == 0; q++) {
		sqlite3_stmt *s = NULL;
		if (sqlite3_prepare_v2(r->db, queries[q], -1, &s, NULL) != SQLITE_OK)
			return db_error(r, "state hash");
		while (sqlite3_step(s) == SQLITE_ROW) {
			int ncol = sqlite3_column_count(s);
			for (int c = 0; c < ncol; c++) {
				switch (sqlite3_column_type(s, c)) {
				case SQLITE_INTEGER:
					hash_int(&st, sqlite3_column_int64(s, c));
					break;
				case SQLITE_NULL:
					hash_blob(&st, "", 0);
					break;
				default:
					hash_blob(&st, sqlite3_column_blob(s, c), (size_t)sqlite3_column_bytes(s, c));
				}
			}
		}
		sqlite3_finalize(s);
	}
	crypto_generichash_final(&st, out, 32);
	return rc;
}
