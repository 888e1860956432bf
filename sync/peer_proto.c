/*
 * peer_proto.c - the parts of the peer protocol both ends share: frames,
 * version vectors, choosing the changes a peer lacks, taking changes in,
 * and the per-plan record of peers (docs/protocol.md).
 *
 * Everything read from a peer is hostile: counts are checked against the
 * bytes that came and against hard caps before anything is allocated, and a
 * record's length is capped at SAMEN_MAX_CHANGE_BYTES.
 */
#include "sync/peer.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void peer_prologue(uint8_t out[PEER_PROLOGUE_LEN], const uint8_t plan[16])
{
	memcpy(out, "samen", 5);
	out[5] = PEER_VERSION;
	memcpy(out + 6, plan, 16);
}

void peer_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t peer_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

void peer_put64(uint8_t *p, uint64_t v)
{
	peer_put32(p, (uint32_t)(v >> 32));
	peer_put32(p + 4, (uint32_t)v);
}

uint64_t peer_get64(const uint8_t *p)
{
	return (uint64_t)peer_get32(p) << 32 | peer_get32(p + 4);
}

int peer_seal(noise_cipher *send, uint8_t type, const uint8_t *body, size_t body_len, uint8_t *frame,
              size_t *frame_len)
{
	size_t clen = 1 + body_len + NOISE_TAGLEN;
	uint8_t *plain = frame + PEER_FRAME_HEADER;
	int rc;
	if (clen > PEER_MAX_FRAME)
		return samen_error_set(SAMEN_ELIMIT, "peer: message of %zu bytes exceeds the frame cap", body_len);
	/* encrypt in place: libsodium allows the output to overlap the input
	 * when they start at the same address */
	plain[0] = type;
	if (body_len)
		memmove(plain + 1, body, body_len);
	if ((rc = noise_encrypt(send, plain, 1 + body_len, plain)) < 0)
		return rc;
	peer_put32(frame, (uint32_t)clen);
	*frame_len = PEER_FRAME_HEADER + clen;
	return 0;
}

int peer_open(noise_cipher *recv, uint8_t *payload, size_t len, uint8_t *type, uint8_t **body, size_t *body_len)
{
	int rc;
	if (len < 1 + NOISE_TAGLEN || len > PEER_MAX_FRAME)
		return samen_error_set(SAMEN_EDECODE, "peer: frame of %zu bytes is too short or too long", len);
	if ((rc = noise_decrypt(recv, payload, len, payload)) < 0)
		return rc;
	*type = payload[0];
	*body = payload + 1;
	*body_len = len - NOISE_TAGLEN - 1;
	return 0;
}

int peer_is_member(samen_plan *p, const uint8_t key[32], bool *member)
{
	/* the rights fold decides (docs/rights.md): a linked device of a member
	 * who is not revoked; the creator's device from the start */
	*member = plan_device_may_sync(p, key);
	return 0;
}

/* --- the peers file ------------------------------------------------------------ */

/* plans/<id>/peers: one line per peer, written whole and atomically:
 *   DEVICE_HEX LAST_SYNC LAST_ATTEMPT AHEAD BEHIND ADDRESS
 * Read back as hostile input: lines that do not parse are dropped. */
#define PEERS_FILE_MAX (256u << 10)
#define PEERS_MAX 1000

static int read_peers_file(samen_plan *p, char **text)
{
	char *path = path_join(p->dir, "peers");
	FILE *f;
	size_t n;
	*text = NULL;
	if (!path)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	f = fopen(path, "rb");
	free(path);
	if (!(*text = calloc(1, PEERS_FILE_MAX + 1)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if (!f)
		return 0;
	n = fread(*text, 1, PEERS_FILE_MAX, f);
	(*text)[n] = '\0';
	fclose(f);
	return 0;
}

/* Written whole and renamed into place, but not fsynced: the file only
 * informs `status`, and a crash may lose the newest line, never the plan. */
static int write_peers_file(const char *path, const char *buf, size_t len)
{
	char *tmp = malloc(strlen(path) + 8);
	FILE *f;
	int rc = 0;
	if (!tmp)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	sprintf(tmp, "%s.tmp", path);
	if (!(f = fopen(tmp, "wb"))) {
		rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
	} else {
		if (fwrite(buf, 1, len, f) != len)
			rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
		if (fclose(f) != 0 && rc == 0)
			rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
		if (rc == 0 && rename(tmp, path) != 0)
			rc = samen_error_set(SAMEN_EIO, "cannot rename %s: %s", tmp, strerror(errno));
		if (rc < 0)
			remove(tmp);
	}
	free(tmp);
	return rc;
}

static bool parse_peer_line(const char *line, samen_peer_info *info, char dev[65], char addr[128])
{
	long long last, attempt, ahead, behind;
	if (sscanf(line, "%64s %lld %lld %lld %lld %127s", dev, &last, &attempt, &ahead, &behind, addr) != 6)
		return false;
	uint8_t key[32];
	if (strlen(dev) != 64 || sodium_hex2bin(key, 32, dev, 64, NULL, NULL, NULL) != 0)
		return false;
	info->device = dev;
	info->address = addr;
	info->last_sync = last;
	info->last_attempt = attempt;
	info->ahead = ahead;
	info->behind = behind;
	return true;
}

int peer_record(samen_plan *p, const uint8_t peer[32], const char *address, bool finished, int64_t ahead,
                int64_t behind)
{
	char *old = NULL, *out = NULL, *path = NULL, hex[65], safe[128];
	size_t len = 0, lines = 0;
	int64_t last_sync = 0;
	int rc;

	sodium_bin2hex(hex, sizeof(hex), peer, 32);
	/* the address is for people; keep it printable and without spaces */
	snprintf(safe, sizeof(safe), "%s", address && *address ? address : "-");
	for (char *c = safe; *c; c++)
		if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
			*c = '_';
	if ((rc = read_peers_file(p, &old)) < 0)
		goto cleanup;
	if (!(out = malloc(PEERS_FILE_MAX + 512)) || !(path = path_join(p->dir, "peers"))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (char *line = old, *nl; *line; line = nl ? nl + 1 : line + strlen(line)) {
		samen_peer_info info;
		char dev[65], addr[128];
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (!parse_peer_line(line, &info, dev, addr))
			continue;
		if (strcmp(dev, hex) == 0) {
			last_sync = info.last_sync;
			continue;
		}
		if (++lines >= PEERS_MAX || len + strlen(line) + 2 > PEERS_FILE_MAX)
			continue;
		len += (size_t)sprintf(out + len, "%s\n", line);
	}
	if (finished)
		last_sync = (int64_t)time(NULL);
	len += (size_t)snprintf(out + len, 512, "%s %lld %lld %lld %lld %s\n", hex, (long long)last_sync,
	                        (long long)time(NULL), (long long)ahead, (long long)behind, safe);
	rc = write_peers_file(path, out, len);
cleanup:
	free(old);
	free(out);
	free(path);
	return rc;
}

int samen_peer_list(samen_plan *p, samen_peer_cb cb, void *payload)
{
	char *text = NULL;
	int rc;
	if ((rc = read_peers_file(p, &text)) < 0)
		return rc;
	for (char *line = text, *nl; *line && rc == 0; line = nl ? nl + 1 : line + strlen(line)) {
		samen_peer_info info;
		char dev[65], addr[128];
		nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (parse_peer_line(line, &info, dev, addr))
			rc = cb(&info, payload);
	}
	free(text);
	return rc;
}

/* --- the session ------------------------------------------------------------------ */

int peer_session_init(peer_session *s, samen_plan *plan)
{
	int rc;
	memset(s, 0, sizeof(*s));
	s->plan = plan;
	if ((rc = ingest_init(&s->batch, plan->id)) < 0)
		return rc;
	s->batch_init = true;
	return 0;
}

void peer_session_free(peer_session *s)
{
	if (s->batch_init)
		ingest_free(&s->batch);
	free(s->peer_vv);
	free(s->local_vv);
	if (s->send_init)
		hmap_free(&s->send_above);
	sqlite3_finalize(s->scan);
	sqlite3_finalize(s->read_rec);
	free(s->rec);
	free(s->body);
	if (s->zout_init)
		deflateEnd(&s->zout);
	if (s->zin_init)
		inflateEnd(&s->zin);
	memset(s, 0, sizeof(*s));
}

static int db_fail(samen_plan *p, const char *what)
{
	return samen_error_set(SAMEN_EIO, "replica: %s: %s", what, sqlite3_errmsg(replica_db(p->rep)));
}

/* This side's version vector: per device its highest seq and that change's
 * id. One indexed lookup per device, so the cost does not grow with the
 * history. local_vv[i].seq's devno is kept in devnos. */
static int load_local_vv(peer_session *s, int64_t **devnos)
{
	sqlite3 *db = replica_db(s->plan->rep);
	sqlite3_stmt *devs = NULL, *top = NULL;
	size_t cap = 0;
	int rc = 0;

	*devnos = NULL;
	if (sqlite3_prepare_v2(db, "SELECT devno, key FROM devs ORDER BY devno", -1, &devs, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq, id FROM changes WHERE devno = ? ORDER BY seq DESC LIMIT 1", -1, &top,
	                       NULL) != SQLITE_OK) {
		rc = db_fail(s->plan, "version vector");
		goto cleanup;
	}
	while (sqlite3_step(devs) == SQLITE_ROW) {
		int64_t devno = sqlite3_column_int64(devs, 0);
		if (sqlite3_column_bytes(devs, 1) != 32)
			continue;
		sqlite3_reset(top);
		sqlite3_bind_int64(top, 1, devno);
		if (sqlite3_step(top) != SQLITE_ROW || sqlite3_column_bytes(top, 1) != 32)
			continue;
		if (s->nlocal_vv == cap) {
			size_t nc = cap ? cap * 2 : 16;
			void *a = realloc(s->local_vv, nc * sizeof(*s->local_vv)), *b;
			if (a)
				s->local_vv = a;
			b = a ? realloc(*devnos, nc * sizeof(**devnos)) : NULL;
			if (!b) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				goto cleanup;
			}
			*devnos = b;
			cap = nc;
		}
		peer_vv_entry *e = &s->local_vv[s->nlocal_vv];
		memcpy(e->key, sqlite3_column_blob(devs, 1), 32);
		e->seq = (uint64_t)sqlite3_column_int64(top, 0);
		memcpy(e->id, sqlite3_column_blob(top, 1), 32);
		(*devnos)[s->nlocal_vv++] = devno;
	}
cleanup:
	sqlite3_finalize(devs);
	sqlite3_finalize(top);
	if (rc < 0) {
		free(*devnos);
		*devnos = NULL;
	}
	return rc;
}

int peer_session_vv_message(peer_session *s, uint8_t *buf, size_t *len, bool *last)
{
	size_t n;
	if (!s->local_vv_done) {
		int64_t *devnos = NULL;
		int rc = load_local_vv(s, &devnos);
		free(devnos);
		if (rc < 0)
			return rc;
		s->local_vv_done = true; /* loaded */
	}
	n = s->nlocal_vv - s->local_vv_sent;
	if (n > PEER_VV_PER_MSG)
		n = PEER_VV_PER_MSG;
	*last = s->local_vv_sent + n == s->nlocal_vv;
	buf[0] = *last ? 1 : 0;
	buf[1] = (uint8_t)(n >> 8);
	buf[2] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		const peer_vv_entry *e = &s->local_vv[s->local_vv_sent + i];
		uint8_t *o = buf + 3 + i * PEER_VV_ENTRY;
		memcpy(o, e->key, 32);
		peer_put64(o + 32, e->seq);
		memcpy(o + 40, e->id, 32);
	}
	s->local_vv_sent += n;
	*len = 3 + n * PEER_VV_ENTRY;
	return 0;
}

int peer_session_take_vv(peer_session *s, const uint8_t *body, size_t len, bool *last)
{
	size_t n;
	if (s->peer_vv_done)
		return samen_error_set(SAMEN_EDECODE, "peer sent its version vector twice");
	if (len < 3 || body[0] > 1)
		return samen_error_set(SAMEN_EDECODE, "peer sent a malformed version vector");
	n = (size_t)body[1] << 8 | body[2];
	if (len != 3 + n * PEER_VV_ENTRY)
		return samen_error_set(SAMEN_EDECODE, "peer's version vector claims %zu entries in %zu bytes", n, len);
	if (s->npeer_vv + n > PEER_MAX_DEVICES)
		return samen_error_set(SAMEN_ELIMIT, "peer's version vector has more than %u devices", PEER_MAX_DEVICES);
	if (s->npeer_vv + n > s->cap_peer_vv) {
		size_t nc = (s->npeer_vv + n) * 2;
		if (nc > PEER_MAX_DEVICES)
			nc = PEER_MAX_DEVICES;
		void *a = realloc(s->peer_vv, nc * sizeof(*s->peer_vv));
		if (!a)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		s->peer_vv = a;
		s->cap_peer_vv = nc;
	}
	for (size_t i = 0; i < n; i++) {
		const uint8_t *in = body + 3 + i * PEER_VV_ENTRY;
		peer_vv_entry *e = &s->peer_vv[s->npeer_vv + i];
		memcpy(e->key, in, 32);
		e->seq = peer_get64(in + 32);
		memcpy(e->id, in + 40, 32);
		if (e->seq == 0 || e->seq > (uint64_t)INT64_MAX)
			return samen_error_set(SAMEN_EDECODE, "peer's version vector holds sequence number %llu",
			                       (unsigned long long)e->seq);
	}
	s->npeer_vv += n;
	*last = body[0] == 1;
	s->peer_vv_done = *last;
	return 0;
}

static void note_fork(peer_session *s, const peer_vv_entry *theirs, const uint8_t *ours)
{
	char key[17], a[17], b[17];
	if (s->forks++ > 0)
		return;
	sodium_bin2hex(key, sizeof(key), theirs->key, 8);
	sodium_bin2hex(a, sizeof(a), ours, 8);
	sodium_bin2hex(b, sizeof(b), theirs->id, 8);
	snprintf(s->fork_msg, sizeof(s->fork_msg), "device %s signed two different changes with number %llu"
	         " (here %s, the peer has %s); that device's changes were not exchanged", key,
	         (unsigned long long)theirs->seq, a, b);
}

/* The peer lacks device devno's changes above seq `above`: remember it, and
 * move the start of the scan back to the first of them. */
static int want_from(peer_session *s, sqlite3_stmt *first, int64_t devno, uint64_t above, uint64_t have)
{
	int rc;
	uint8_t key[8];
	memcpy(key, &devno, 8);
	if ((rc = hmap_put(&s->send_above, key, above)) < 0)
		return rc;
	s->to_send += have - above;
	sqlite3_reset(first);
	sqlite3_bind_int64(first, 1, devno);
	sqlite3_bind_int64(first, 2, (int64_t)above + 1);
	if (sqlite3_step(first) == SQLITE_ROW && sqlite3_column_type(first, 0) != SQLITE_NULL) {
		int64_t rowid = sqlite3_column_int64(first, 0);
		if (s->cursor < 0 || rowid - 1 < s->cursor)
			s->cursor = rowid - 1;
	}
	return 0;
}

int peer_session_plan(peer_session *s)
{
	sqlite3 *db = replica_db(s->plan->rep);
	sqlite3_stmt *at = NULL, *first = NULL, *forked = NULL;
	int64_t *devnos = NULL;
	hmap theirs, mine;
	int rc;

	hmap_init(&theirs, 32);
	hmap_init(&mine, 32);
	if (!s->send_init) {
		hmap_init(&s->send_above, 8);
		s->send_init = true;
	}
	s->cursor = -1;
	s->to_send = 0;
	/* (re)load: the device numbers are needed, and a vector sent earlier
	 * may be older than the replica now */
	free(s->local_vv);
	s->local_vv = NULL;
	s->nlocal_vv = 0;
	s->local_vv_done = true;
	if ((rc = load_local_vv(s, &devnos)) < 0)
		goto cleanup;
	if (s->local_vv_sent > s->nlocal_vv)
		s->local_vv_sent = s->nlocal_vv;
	for (size_t i = 0; i < s->npeer_vv; i++) {
		if (hmap_get(&theirs, s->peer_vv[i].key)) {
			rc = samen_error_set(SAMEN_EDECODE, "peer's version vector names a device twice");
			goto cleanup;
		}
		if ((rc = hmap_put(&theirs, s->peer_vv[i].key, i)) < 0)
			goto cleanup;
	}
	/* at: our change at the peer's seq of the device (the peer's one if we
	 * have it too, or another: a fork); forked: the device's fork, if we
	 * know of one */
	if (sqlite3_prepare_v2(db, "SELECT id FROM changes WHERE devno = ?1 AND seq = ?2 ORDER BY id <> ?3 LIMIT 1", -1,
	                       &at, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT min(rowid) FROM changes WHERE devno = ? AND seq = ?", -1, &first, NULL) !=
	        SQLITE_OK ||
	    sqlite3_prepare_v2(db, "SELECT seq FROM forks WHERE devno = ?", -1, &forked, NULL) != SQLITE_OK) {
		rc = db_fail(s->plan, "choosing changes");
		goto cleanup;
	}
	s->expect_in = 0;
	for (size_t i = 0; i < s->nlocal_vv; i++) {
		const peer_vv_entry *ours = &s->local_vv[i];
		uint64_t *idx = hmap_get(&theirs, ours->key);
		const peer_vv_entry *their = idx ? &s->peer_vv[*idx] : NULL;
		uint64_t have = their ? their->seq : 0;
		uint64_t fork_seq = 0;
		if ((rc = hmap_put(&mine, ours->key, 1)) < 0)
			goto cleanup;
		sqlite3_reset(forked);
		sqlite3_bind_int64(forked, 1, devnos[i]);
		if (sqlite3_step(forked) == SQLITE_ROW)
			fork_seq = (uint64_t)sqlite3_column_int64(forked, 0);
		if (their && have <= ours->seq && !fork_seq) {
			/* the peer's newest change of this device must be ours too */
			sqlite3_reset(at);
			sqlite3_bind_int64(at, 1, devnos[i]);
			sqlite3_bind_int64(at, 2, (int64_t)have);
			sqlite3_bind_blob(at, 3, their->id, 32, SQLITE_STATIC);
			bool parted = sqlite3_step(at) == SQLITE_ROW && sqlite3_column_bytes(at, 0) == 32 &&
			              memcmp(sqlite3_column_blob(at, 0), their->id, 32) != 0;
			if (parted)
				note_fork(s, their, sqlite3_column_blob(at, 0));
			sqlite3_reset(at);
			if (parted) {
				/* where the two chains part is not known: the whole chain
				 * goes, and the peer learns of the fork from it */
				if ((rc = want_from(s, first, devnos[i], 0, ours->seq)) < 0)
					goto cleanup;
				continue;
			}
		}
		if (fork_seq) {
			/* a fork we know of: a version vector cannot tell the two
			 * branches apart, so everything from the fork on goes */
			uint64_t above = have < fork_seq - 1 ? have : fork_seq - 1;
			if ((rc = want_from(s, first, devnos[i], above, ours->seq)) < 0)
				goto cleanup;
			continue;
		}
		if (have > ours->seq)
			s->expect_in += have - ours->seq; /* the peer checks the fork on its side */
		else if (have < ours->seq && (rc = want_from(s, first, devnos[i], have, ours->seq)) < 0)
			goto cleanup;
	}
	/* devices only the peer knows */
	for (size_t i = 0; i < s->npeer_vv; i++)
		if (!hmap_get(&mine, s->peer_vv[i].key))
			s->expect_in += s->peer_vv[i].seq;
	s->cursor_done = s->cursor < 0;
	rc = 0;
cleanup:
	sqlite3_finalize(at);
	sqlite3_finalize(first);
	sqlite3_finalize(forked);
	free(devnos);
	hmap_free(&theirs);
	hmap_free(&mine);
	return rc;
}

/* The next PEER_SEND_BATCH changes after the cursor that the peer lacks. */
static int fill_batch(peer_session *s)
{
	sqlite3 *db = replica_db(s->plan->rep);
	int rc = 0, rows = 0;
	s->nsend_rows = s->next_send_row = 0;
	if (!s->scan && sqlite3_prepare_v2(db, "SELECT rowid, devno, seq FROM changes WHERE rowid > ? ORDER BY rowid"
	                                       " LIMIT 1024", -1, &s->scan, NULL) != SQLITE_OK)
		return db_fail(s->plan, "choosing changes");
	while (s->nsend_rows == 0 && !s->cursor_done) {
		sqlite3_reset(s->scan);
		sqlite3_bind_int64(s->scan, 1, s->cursor);
		rows = 0;
		while (s->nsend_rows < PEER_SEND_BATCH && (rc = sqlite3_step(s->scan)) == SQLITE_ROW) {
			int64_t rowid = sqlite3_column_int64(s->scan, 0), devno = sqlite3_column_int64(s->scan, 1);
			uint8_t key[8];
			uint64_t *above;
			rows++;
			s->cursor = rowid;
			memcpy(key, &devno, 8);
			above = hmap_get(&s->send_above, key);
			if (above && (uint64_t)sqlite3_column_int64(s->scan, 2) > *above)
				s->send_rows[s->nsend_rows++] = rowid;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return db_fail(s->plan, "choosing changes");
		if (rc == SQLITE_DONE && rows < 1024 && s->nsend_rows < PEER_SEND_BATCH)
			s->cursor_done = true;
	}
	sqlite3_reset(s->scan);
	return 0;
}

static int load_record(peer_session *s, int64_t rowid)
{
	sqlite3 *db = replica_db(s->plan->rep);
	sqlite3_stmt *q;
	int rc = 0;
	uint8_t *bytes = NULL;
	size_t len = 0;
	if (!s->read_rec && sqlite3_prepare_v2(db, "SELECT body, sig, blob, id FROM changes WHERE rowid = ?", -1,
	                                       &s->read_rec, NULL) != SQLITE_OK)
		return db_fail(s->plan, "reading a change");
	q = s->read_rec;
	sqlite3_reset(q);
	sqlite3_bind_int64(q, 1, rowid);
	if (sqlite3_step(q) != SQLITE_ROW || sqlite3_column_bytes(q, 1) != 64) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica: change %lld vanished or is damaged", (long long)rowid);
		goto cleanup;
	}
	if ((rc = replica_row_change(s->plan->rep, q, 0, 2, 3, &bytes, &len)) < 0)
		goto cleanup;
	if (len == 0 || len > SAMEN_MAX_CHANGE_BYTES) {
		rc = samen_error_set(SAMEN_ECORRUPT, "replica: change %lld is damaged", (long long)rowid);
		goto cleanup;
	}
	void *nb = realloc(s->rec, 4 + len + 64);
	if (!nb) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	s->rec = nb;
	peer_put32(s->rec, (uint32_t)len);
	memcpy(s->rec + 4, bytes, len);
	memcpy(s->rec + 4 + len, sqlite3_column_blob(q, 1), 64);
	s->rec_len = 4 + len + 64;
	s->rec_pos = 0;
cleanup:
	free(bytes);
	sqlite3_reset(q);
	return rc;
}

/* The next piece of the record stream, uncompressed: at most cap bytes. */
static int next_plain(peer_session *s, uint8_t *buf, size_t cap, size_t *len)
{
	size_t n = 0;
	int rc;
	while (n < cap) {
		if (s->rec_pos == s->rec_len) {
			if (s->next_send_row == s->nsend_rows && (rc = fill_batch(s)) < 0)
				return rc;
			if (s->next_send_row == s->nsend_rows)
				break;
			if ((rc = load_record(s, s->send_rows[s->next_send_row++])) < 0)
				return rc;
			s->sent++;
		}
		size_t k = s->rec_len - s->rec_pos;
		if (k > cap - n)
			k = cap - n;
		memcpy(buf + n, s->rec + s->rec_pos, k);
		s->rec_pos += k;
		n += k;
	}
	*len = n;
	return 0;
}

/* Raw DEFLATE's worst case for a piece: stored blocks cost 5 bytes per
 * 64 KiB, the sync flush at most 10 more. */
#define PIECE_SLACK 64

int peer_session_next_changes(peer_session *s, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t plain[PEER_CHANGES_PIECE];
	size_t n = 0, want = cap > PIECE_SLACK ? cap - PIECE_SLACK : 0;
	int rc;

	*len = 0;
	if (want > sizeof(plain))
		want = sizeof(plain);
	if ((rc = next_plain(s, plain, want, &n)) < 0 || n == 0)
		return rc;
	/* one stream per connection, so later pieces use what earlier ones
	 * held (change bytes repeat keys, names and field numbers); the
	 * fastest level: on a link slower than ~100 Mbit/s the bytes saved
	 * outweigh the CPU, and level 6 would save only 3% more */
	if (!s->zout_init) {
		if (deflateInit2(&s->zout, Z_BEST_SPEED, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
			return samen_error_set(SAMEN_ENOMEM, "cannot start compression");
		s->zout_init = true;
	}
	s->zout.next_in = plain;
	s->zout.avail_in = (uInt)n;
	s->zout.next_out = buf;
	s->zout.avail_out = (uInt)cap;
	rc = deflate(&s->zout, Z_SYNC_FLUSH);
	if ((rc != Z_OK && rc != Z_BUF_ERROR) || s->zout.avail_in != 0 || s->zout.avail_out == 0)
		return samen_error_set(SAMEN_ERROR, "internal: a piece of %zu bytes did not compress into %zu", n, cap);
	*len = cap - s->zout.avail_out;
	return 0;
}

int peer_session_flush(peer_session *s)
{
	int rc;
	if (s->batch.n == 0)
		return 0;
	if ((rc = plan_ingest(s->plan, &s->batch)) < 0)
		return rc;
	s->applied += s->batch.nready;
	s->duplicates += s->batch.ndup;
	s->invalid += s->batch.nbad;
	s->pending = s->batch.npending - s->batch.ndropped;
	ingest_free(&s->batch);
	s->batch_init = false;
	s->batch_bytes = 0;
	if ((rc = ingest_init(&s->batch, s->plan->id)) < 0)
		return rc;
	s->batch_init = true;
	return 0;
}

bool peer_session_between_records(const peer_session *s)
{
	return s->hdr_got == 0 && s->body == NULL;
}

static int take_record(peer_session *s)
{
	uint8_t sig[64];
	uint8_t *bytes = s->body;
	size_t len = s->body_len, before = s->batch.n;
	int rc;
	memcpy(sig, bytes + len, 64);
	s->body = NULL;
	s->body_len = s->body_got = 0;
	s->hdr_got = 0;
	s->received++;
	/* ingest_add owns bytes from here, in every case */
	if ((rc = ingest_add(&s->batch, bytes, len, sig)) < 0)
		return samen_error_wrap(rc, "change %llu from the peer", (unsigned long long)s->received);
	if (s->batch.n > before)
		s->batch_bytes += len + (size_t)s->batch.items[s->batch.n - 1].ch.nops * sizeof(samen_op);
	if (s->batch.n >= PEER_CHUNK_CHANGES || s->batch_bytes >= PEER_CHUNK_BYTES)
		return peer_session_flush(s);
	return 0;
}

/* Take uncompressed record bytes. */
static int receive_plain(peer_session *s, const uint8_t *data, size_t len)
{
	int rc;
	while (len > 0) {
		if (!s->body) {
			size_t k = 4 - s->hdr_got;
			if (k > len)
				k = len;
			memcpy(s->hdr + s->hdr_got, data, k);
			s->hdr_got += k;
			data += k;
			len -= k;
			if (s->hdr_got < 4)
				break;
			uint32_t clen = peer_get32(s->hdr);
			if (clen == 0 || clen > SAMEN_MAX_CHANGE_BYTES)
				return samen_error_set(SAMEN_EDECODE, "peer sent a change of %u bytes (the cap is %u)", clen,
				                       SAMEN_MAX_CHANGE_BYTES);
			if (!(s->body = malloc((size_t)clen + 64)))
				return samen_error_set(SAMEN_ENOMEM, "out of memory");
			s->body_len = clen;
			s->body_got = 0;
			continue;
		}
		size_t want = s->body_len + 64 - s->body_got, k = want < len ? want : len;
		memcpy(s->body + s->body_got, data, k);
		s->body_got += k;
		data += k;
		len -= k;
		if (s->body_got == s->body_len + 64 && (rc = take_record(s)) < 0)
			return rc;
	}
	return 0;
}

/* A piece inflates to at most PEER_CHANGES_PIECE bytes, as the sender
 * never puts more in: anything beyond (a "zip bomb") is refused before it
 * is used. */
int peer_session_receive(peer_session *s, const uint8_t *data, size_t len)
{
	uint8_t plain[PEER_CHANGES_PIECE + 1];
	size_t n;
	int zrc, rc;

	if (!s->zin_init) {
		memset(&s->zin, 0, sizeof(s->zin));
		if (inflateInit2(&s->zin, -15) != Z_OK)
			return samen_error_set(SAMEN_ENOMEM, "cannot start decompression");
		s->zin_init = true;
	}
	s->zin.next_in = (Bytef *)data;
	s->zin.avail_in = (uInt)len;
	s->zin.next_out = plain;
	s->zin.avail_out = sizeof(plain);
	zrc = inflate(&s->zin, Z_SYNC_FLUSH);
	if (zrc == Z_STREAM_END || (zrc != Z_OK && zrc != Z_BUF_ERROR))
		return samen_error_set(SAMEN_EDECODE, "peer sent damaged compressed data (%s)",
		                       zrc == Z_STREAM_END ? "the stream ended" : s->zin.msg ? s->zin.msg : "invalid");
	n = sizeof(plain) - s->zin.avail_out;
	if (s->zin.avail_in != 0 || n > PEER_CHANGES_PIECE)
		return samen_error_set(SAMEN_EDECODE, "peer sent a piece that inflates to more than %u bytes",
		                       PEER_CHANGES_PIECE);
	if ((rc = receive_plain(s, plain, n)) < 0)
		return rc;
	return 0;
}
