/*
 * replica.c - the SQLite replica and the merge.
 *
 * Tables (see docs/format.md for the full description):
 *   meta      plan id, creator, client, language
 *   devs      local numbering of device keys (devno); local only
 *   changes   every applied change: id, author, seq, lamport, verdict, vv,
 *             the bytes and signature (so queries need not touch git)
 *   heads     changes that no other change builds on
 *   members   device keys added by accepted MEMBER_ADD ops
 *   entities  (creator devno, n) -> type, uid, deleted
 *   fields    the live values of every register; win = 1 marks the value
 *             every replica shows
 *   pending   verified changes waiting for a dependency
 *   evidence  second changes for a (device, seq) already taken
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
 */
#include "core/replica.h"
#include "core/mpread.h"
#include "core/schema.h"
#include "samen/common.h"

#include <msgpack.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* --- statements ----------------------------------------------------------- */

enum {
	ST_CHANGE_BY_ID,
	ST_CHANGE_INSERT,
	ST_DEV_INSERT,
	ST_HEAD_DELETE,
	ST_HEAD_INSERT,
	ST_MEMBER_CHECK,
	ST_MEMBER_INSERT,
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
	ST_EVIDENCE_INSERT,
	ST_CHANGE_BY_DEVSEQ,
	ST__COUNT
};

static const char *const stmt_sql[ST__COUNT] = {
	[ST_CHANGE_BY_ID] = "SELECT rowid, devno, seq, lamport, vv, commit_oid, ctr_end FROM changes WHERE id = ?",
	[ST_CHANGE_INSERT] = "INSERT INTO changes(id, devno, seq, lamport, time, name, nops, commit_oid, verdict, reason, vv, ctr_end, body, sig)"
	                     " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
	[ST_DEV_INSERT] = "INSERT INTO devs(key) VALUES (?)",
	[ST_HEAD_DELETE] = "DELETE FROM heads WHERE change = ?",
	[ST_HEAD_INSERT] = "INSERT OR IGNORE INTO heads(change) VALUES (?)",
	[ST_MEMBER_CHECK] = "SELECT c.devno, c.seq FROM members m JOIN changes c ON c.rowid = m.change WHERE m.key = ?",
	[ST_MEMBER_INSERT] = "INSERT OR IGNORE INTO members(key, change, name, role) VALUES (?,?,?,?)",
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
	[ST_EVIDENCE_INSERT] = "INSERT OR IGNORE INTO evidence(id, body, sig, reason) VALUES (?,?,?,?)",
	[ST_CHANGE_BY_DEVSEQ] = "SELECT id FROM changes WHERE devno = ? AND seq = ?",
};

struct replica {
	sqlite3 *db;
	sqlite3_stmt *st[ST__COUNT];
	char *path;
	bool opened;      /* fully opened: close may vouch for the file */
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS devs(devno INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE);"
	"CREATE TABLE IF NOT EXISTS changes(rowid INTEGER PRIMARY KEY, id BLOB NOT NULL UNIQUE,"
	" devno INTEGER NOT NULL, seq INTEGER NOT NULL, lamport INTEGER NOT NULL, time INTEGER NOT NULL,"
	" name TEXT NOT NULL, nops INTEGER NOT NULL, commit_oid BLOB, verdict INTEGER NOT NULL, reason TEXT,"
	" vv BLOB NOT NULL, ctr_end INTEGER NOT NULL, body BLOB NOT NULL, sig BLOB NOT NULL,"
	" UNIQUE(devno, seq));"
	"CREATE TABLE IF NOT EXISTS heads(change INTEGER PRIMARY KEY);"
	/* In WITHOUT ROWID tables the key columns come first: SQLite 3.40's
	 * integrity_check misreports NOT NULL columns placed before them. */
	"CREATE TABLE IF NOT EXISTS members(key BLOB NOT NULL, change INTEGER NOT NULL, name TEXT NOT NULL,"
	" role INTEGER NOT NULL, PRIMARY KEY(key, change)) WITHOUT ROWID;"
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
	"CREATE INDEX IF NOT EXISTS pending_waits ON pending(waits_for);"
	"CREATE TABLE IF NOT EXISTS evidence(id BLOB PRIMARY KEY, body BLOB NOT NULL, sig BLOB NOT NULL,"
	" reason TEXT NOT NULL) WITHOUT ROWID;";

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
		                      "CREATE VIEW IF NOT EXISTS %s AS SELECT e.uid AS id", td->plural);
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
	int rc, quick_ok = 1;
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
	    sqlite3_exec(r->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica %s is not a usable database: %s", path,
		                     quick_ok ? sqlite3_errmsg(r->db) : "quick_check found damage");
		goto fail;
	}
	if ((rc = create_views(r)) < 0)
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

int replica_commit(replica *r)
{
	return sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : db_error(r, "commit");
}

void replica_rollback(replica *r)
{
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
	if (sqlite3_step(s) != SQLITE_ROW)
		return NULL;
	if (!(ci = info_push(w, id))) {
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
		*rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		return NULL;
	}
	if (ci->vvlen)
		memcpy(ci->vv, sqlite3_column_blob(s, 4), (size_t)ci->vvlen * 8);
	return ci;
}

static inline uint64_t vv_at(const uint64_t *vv, uint32_t vvlen, uint32_t devno)
{
	return devno >= 1 && devno <= vvlen ? vv[devno - 1] : 0;
}

bool replica_has_change(replica *r, const uint8_t id[32])
{
	sqlite3_stmt *s = stmt(r, ST_CHANGE_BY_ID);
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	return sqlite3_step(s) == SQLITE_ROW;
}

int replica_change_commit(replica *r, const uint8_t id[32], uint8_t commit[20])
{
	sqlite3_stmt *s = stmt(r, ST_CHANGE_BY_ID);
	sqlite3_bind_blob(s, 1, id, 32, SQLITE_STATIC);
	if (sqlite3_step(s) != SQLITE_ROW || sqlite3_column_bytes(s, 5) != 20)
		return SAMEN_ENOTFOUND;
	memcpy(commit, sqlite3_column_blob(s, 5), 20);
	return 0;
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
	char idhex[17], other[17];
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
	/* Equivocation: one device, one seq, two different changes. The first
	 * one applied keeps its place; the second is kept as evidence. */
	memcpy(devseq, it->ch.author, 32);
	for (int k = 0; k < 8; k++)
		devseq[32 + k] = (uint8_t)(it->ch.seq >> (8 * k));
	if (hmap_get(seen_devseq, devseq)) {
		hex_prefix(other, it->ch.author);
		item_bad(it, "change %s: device %s signed two different changes with the same seq (equivocation)",
		         idhex, other);
		return 0;
	}
	if ((rc = devno_of(w, it->ch.author, false, &devno)) < 0)
		return rc;
	if (devno) {
		s = stmt(w->r, ST_CHANGE_BY_DEVSEQ);
		sqlite3_bind_int64(s, 1, devno);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)it->ch.seq);
		if (sqlite3_step(s) == SQLITE_ROW) {
			hex_prefix(other, it->ch.author);
			item_bad(it, "change %s: device %s signed two different changes with the same seq (equivocation)",
			         idhex, other);
			return 0;
		}
	}
	it->state = ITEM_READY;
	return hmap_put(seen_devseq, devseq, 1);
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
} applyctx;

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
	work_free(&a->w);
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
			snprintf(why, whylen, "refers to entity %s before this change creates it", uid);
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
		snprintf(why, whylen, "refers to entity %s, which is not in this change's causal past", uid);
		return 1;
	}
	*type = e->type;
	*out = e;
	return 0;
}

static bool is_member(applyctx *a, applying *c, int *rc)
{
	sqlite3_stmt *s;
	*rc = 0;
	if (a->has_creator && memcmp(a->creator, c->it->ch.author, 32) == 0)
		return true;
	s = stmt(a->w.r, ST_MEMBER_CHECK);
	sqlite3_bind_blob(s, 1, c->it->ch.author, 32, SQLITE_STATIC);
	while (sqlite3_step(s) == SQLITE_ROW)
		if (vv_at(c->vv, c->vvlen, (uint32_t)sqlite3_column_int64(s, 0)) >= (uint64_t)sqlite3_column_int64(s, 1))
			return true;
	return false;
}

/* The validation stage: decides the verdict of one change against its causal
 * past. Returns 0 = accepted, 1 = rejected (reason in why), < 0 = error.
 * Rules for roles plug in here (see docs/architecture.md). */
static int validate_change(applyctx *a, applying *c, uint8_t plan[16], char *why, size_t whylen)
{
	const samen_change *ch = &c->it->ch;
	char keyhex[17], opwhy[256];
	uint32_t creates = 0, type;
	ent *e;
	int rc;

	hex_prefix(keyhex, ch->author);
	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		if (op->kind == SAMEN_OP_PLAN) {
			uint8_t pid[16];
			change_plan_id(pid, ch->author, op->key);
			if (i != 0 || ch->seq != 1 || memcmp(pid, plan, 16) != 0 || a->has_creator) {
				snprintf(why, whylen, "op %u: only the plan's creator can start the plan, once", i);
				return 1;
			}
			if (op->str_len == 0 || !schema_text_printable(op->str, op->str_len, 0)) {
				snprintf(why, whylen, "op %u: the client's name must be one line without control characters", i);
				return 1;
			}
		}
	}
	if (!(ch->nops && ch->ops[0].kind == SAMEN_OP_PLAN)) {
		bool member = is_member(a, c, &rc);
		if (rc < 0)
			return rc;
		if (!member) {
			snprintf(why, whylen, "device %s is not a member of this plan", keyhex);
			return 1;
		}
	}
	for (uint32_t i = 0; i < ch->nops; i++) {
		const samen_op *op = &ch->ops[i];
		const type_def *td;
		const field_def *f;
		switch (op->kind) {
		case SAMEN_OP_CREATE:
			if (!schema_type(op->type)) {
				snprintf(why, whylen, "op %u: unknown entity type %u", i, op->type);
				return 1;
			}
			c->create_types[creates++] = op->type;
			break;
		case SAMEN_OP_SET:
		case SAMEN_OP_DELETE:
			if ((rc = resolve_entity(a, c, op->dev, op->n, creates, &type, &e, opwhy, sizeof(opwhy))) != 0) {
				if (rc > 0)
					snprintf(why, whylen, "op %u %s", i, opwhy);
				return rc;
			}
			if (op->type != type) {
				snprintf(why, whylen, "op %u: the entity is of type %s, not %s", i, schema_type(type)->name,
				         schema_type(op->type) ? schema_type(op->type)->name : "known type");
				return 1;
			}
			/* remembered for apply_ops(), which need not look again */
			c->op_ent[i] = e ? (int64_t)(e - a->ents) : -1;
			c->op_type[i] = type;
			if (op->kind == SAMEN_OP_DELETE)
				break;
			td = schema_type(type);
			if (!(f = schema_field(td, op->field))) {
				snprintf(why, whylen, "op %u: a %s has no field %u", i, td->name, op->field);
				return 1;
			}
			if (schema_check_value(f, op->value, op->value_len, ch->ndevs, opwhy, sizeof(opwhy)) != 0) {
				snprintf(why, whylen, "op %u: %s", i, opwhy);
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
							snprintf(why, whylen, "op %u: %s %s", i, f->name, opwhy);
						return rc;
					}
					if (ttype != f->ref_type) {
						snprintf(why, whylen, "op %u: %s must refer to a %s", i, f->name,
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
				snprintf(why, whylen, "op %u: unknown role %u", i, (unsigned)op->role);
				return 1;
			}
			if (op->str_len == 0 || !schema_text_printable(op->str, op->str_len, 0)) {
				snprintf(why, whylen, "op %u: a member needs a name without control characters", i);
				return 1;
			}
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
			break;
		}
		case SAMEN_OP_PLAN:
			memcpy(a->creator, ch->author, 32);
			a->has_creator = true;
			if ((rc = meta_set(a->w.r, "creator", ch->author, 32, 0)) < 0 ||
			    (rc = meta_set(a->w.r, "client", op->str, (int)op->str_len, 1)) < 0 ||
			    (rc = meta_set(a->w.r, "lang", op->str2, (int)op->str2_len, 1)) < 0)
				return rc;
			break;
		case SAMEN_OP_MEMBER_ADD:
			s = stmt(a->w.r, ST_MEMBER_INSERT);
			sqlite3_bind_blob(s, 1, op->key, 32, SQLITE_STATIC);
			sqlite3_bind_int64(s, 2, c->rowid);
			sqlite3_bind_text(s, 3, op->str, (int)op->str_len, SQLITE_STATIC);
			sqlite3_bind_int64(s, 4, (sqlite3_int64)op->role);
			if (sqlite3_step(s) != SQLITE_DONE)
				return db_error(a->w.r, "adding member");
			break;
		}
	}
	return 0;
}

static int apply_one(applyctx *a, ingest_batch *b, ingest_item *it, uint8_t plan[16])
{
	applying c;
	cinfo *pi, *ci;
	char why[512] = "";
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
	sqlite3_bind_blob(s, 13, it->bytes, (int)it->len, SQLITE_STATIC);
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

	if ((rc = validate_change(a, &c, plan, why, sizeof(why))) < 0)
		goto cleanup;
	if (rc == 0) {
		ci->accepted = true;
		rc = apply_ops(a, &c);
	} else {
		sqlite3_stmt *u = NULL;
		rc = 0;
		if (sqlite3_prepare_v2(a->w.r->db, "UPDATE changes SET verdict = 0, reason = ? WHERE rowid = ?", -1, &u,
		                       NULL) != SQLITE_OK) {
			rc = db_error(a->w.r, "storing a verdict");
			goto cleanup;
		}
		sqlite3_bind_text(u, 1, why, -1, SQLITE_STATIC);
		sqlite3_bind_int64(u, 2, c.rowid);
		if (sqlite3_step(u) != SQLITE_DONE)
			rc = db_error(a->w.r, "storing a verdict");
		sqlite3_finalize(u);
	}
	(void)b;
cleanup:
	free(c.vv);
	free(c.create_types);
	free(c.devnos);
	free(c.op_ent);
	free(c.op_type);
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
		if (it->state == ITEM_BAD && it->error && strstr(it->error, "equivocation")) {
			s = stmt(r, ST_EVIDENCE_INSERT);
			sqlite3_bind_blob(s, 1, it->id, 32, SQLITE_STATIC);
			sqlite3_bind_blob(s, 2, it->bytes, (int)it->len, SQLITE_STATIC);
			sqlite3_bind_blob(s, 3, it->sig, 64, SQLITE_STATIC);
			sqlite3_bind_text(s, 4, it->error, -1, SQLITE_STATIC);
			if (sqlite3_step(s) != SQLITE_DONE) {
				rc = db_error(r, "evidence");
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

/* --- queries for local edits ------------------------------------------------ */

int replica_get_edit_base(replica *r, const uint8_t author[32], replica_edit_base *out)
{
	sqlite3_stmt *s = NULL;
	uint64_t maxl = 0;
	size_t cap = 0;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	out->seq = 1;
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
		"SELECT 'member', m.key, m.name, m.role, c.id FROM members m JOIN changes c ON c.rowid = m.change"
		" ORDER BY m.key, c.id",
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
