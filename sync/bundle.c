/*
 * bundle.c - changes in a file, for USB sticks and e-mail.
 *
 * Format (docs/format.md):
 *   "SAMENBDL"  8 bytes magic
 *   version     1 byte (1)
 *   plan id     16 bytes
 *   body        one raw DEFLATE stream (zlib, RFC 1951) of records:
 *                 len  LEB128 varint, 1..SAMEN_MAX_CHANGE_BYTES
 *                 change bytes (len), signature (64)
 *               ended by a record with len 0; nothing may follow the stream.
 * Records are in causal order, so a receiver can apply them as they come.
 * Compression happens here, outside the signed bytes: a change's id and
 * signature never depend on a zlib version.
 *
 * Reading treats the file as hostile: every length is capped before use,
 * the decompressed size is bounded, and a bad record stops the import with
 * its number and reason; the good records before it are kept.
 */
#include "sync/internal.h"

#include <errno.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#define BUNDLE_MAGIC "SAMENBDL"
#define BUNDLE_VERSION 1
#define BUNDLE_HEADER 25
/* Apply in chunks so memory stays bounded on huge bundles. */
#define CHUNK_CHANGES 20000
#define CHUNK_BYTES (16u << 20) /* wire bytes plus decoded ops */

int samen_plan_version_vector(samen_plan *p, char **out)
{
	sqlite3_stmt *s = NULL;
	size_t cap = 256, len = 0;
	char *buf = malloc(cap);
	int rc = 0;

	*out = NULL;
	if (!buf)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	buf[0] = '\0';
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT d.key, max(c.seq) FROM changes c JOIN devs d"
	                       " ON d.devno = c.devno GROUP BY d.key ORDER BY d.key", -1, &s, NULL) != SQLITE_OK) {
		free(buf);
		return samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(replica_db(p->rep)));
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		char hex[65];
		if (len + 100 > cap) {
			void *np = realloc(buf, cap *= 2);
			if (!np) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			buf = np;
		}
		sodium_bin2hex(hex, sizeof(hex), sqlite3_column_blob(s, 0), 32);
		len += (size_t)snprintf(buf + len, cap - len, "%s%s:%lld", len ? "," : "", hex,
		                        (long long)sqlite3_column_int64(s, 1));
	}
	sqlite3_finalize(s);
	if (rc < 0) {
		free(buf);
		return rc;
	}
	*out = buf;
	return 0;
}

/* Parse "KEYHEX:SEQ,..." into a map key -> seq. */
static int parse_vv(const char *text, hmap *vv)
{
	const char *p = text;
	while (*p) {
		uint8_t key[32];
		char *end;
		unsigned long long seq;
		const char *colon = strchr(p, ':');
		if (!colon || colon - p != 64 || sodium_hex2bin(key, 32, p, 64, NULL, NULL, NULL) != 0)
			return samen_error_set(SAMEN_EINVAL, "--since: expected KEYHEX:SEQ,... (from `samen vv` on the"
			                                     " receiving device), at '%.20s'", p);
		errno = 0;
		seq = strtoull(colon + 1, &end, 10);
		if (errno || end == colon + 1 || (*end && *end != ','))
			return samen_error_set(SAMEN_EINVAL, "--since: bad sequence number at '%.20s'", colon + 1);
		if (hmap_put(vv, key, seq) < 0)
			return SAMEN_ENOMEM;
		p = *end ? end + 1 : end;
	}
	return 0;
}

typedef struct {
	FILE *f;
	z_stream z;
	uint8_t out[65536];
	uint64_t written;
} bundle_writer;

/* Where a --since bundle starts reading: the lowest rowid of any change the
 * receiver lacks, found per device through the (devno, seq) index, so that
 * an incremental bundle does not scan the whole history. A device's changes
 * are applied in seq order, so nothing it lacks lies before that row. */
static int first_wanted_rowid(samen_plan *p, hmap *vv, int64_t *from)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *devs = NULL, *first = NULL;
	int64_t best = INT64_MAX;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "SELECT d.devno, d.key, (SELECT f.seq FROM forks f WHERE f.devno = d.devno) FROM devs d",
	                       -1, &devs, NULL) != SQLITE_OK ||
	    /* in (devno, seq) index order, so one step, not a scan of the range:
	     * the first change above `above` comes first in rowid order too,
	     * as every later one builds on it (a fork at that seq: the older) */
	    sqlite3_prepare_v2(db, "SELECT rowid FROM changes WHERE devno = ? AND seq > ? ORDER BY seq, rowid LIMIT 1",
	                       -1, &first, NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(db));
		goto cleanup;
	}
	while (sqlite3_step(devs) == SQLITE_ROW) {
		uint64_t *have = sqlite3_column_bytes(devs, 1) == 32 ? hmap_get(vv, sqlite3_column_blob(devs, 1)) : NULL;
		uint64_t above = have ? *have : 0, forked = (uint64_t)sqlite3_column_int64(devs, 2);
		if (forked && above >= forked)
			above = forked - 1;
		sqlite3_reset(first);
		sqlite3_bind_int64(first, 1, sqlite3_column_int64(devs, 0));
		sqlite3_bind_int64(first, 2, (int64_t)(above > INT64_MAX ? INT64_MAX : above));
		if (sqlite3_step(first) == SQLITE_ROW && sqlite3_column_int64(first, 0) < best)
			best = sqlite3_column_int64(first, 0);
	}
	*from = best;
cleanup:
	sqlite3_finalize(devs);
	sqlite3_finalize(first);
	return rc;
}

static int bw_flush(bundle_writer *w, int flush)
{
	int zrc;
	do {
		w->z.next_out = w->out;
		w->z.avail_out = sizeof(w->out);
		zrc = deflate(&w->z, flush);
		if (zrc == Z_STREAM_ERROR)
			return samen_error_set(SAMEN_ERROR, "compression failed");
		size_t have = sizeof(w->out) - w->z.avail_out;
		if (have && fwrite(w->out, 1, have, w->f) != have)
			return samen_error_set(SAMEN_EIO, "cannot write the bundle: %s", strerror(errno));
		w->written += have;
	} while (w->z.avail_out == 0 || (flush == Z_FINISH && zrc != Z_STREAM_END));
	return 0;
}

static int bw_write(bundle_writer *w, const void *buf, size_t len)
{
	w->z.next_in = (Bytef *)buf;
	w->z.avail_in = (uInt)len;
	while (w->z.avail_in) {
		int rc = bw_flush(w, Z_NO_FLUSH);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int bw_varint(bundle_writer *w, uint64_t v)
{
	uint8_t b[10];
	size_t n = 0;
	do {
		b[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			b[n] |= 0x80;
		n++;
	} while (v);
	return bw_write(w, b, n);
}

int samen_bundle_create(samen_plan *p, const char *path, const char *since, samen_bundle_stats *stats)
{
	bundle_writer w;
	hmap vv;
	sqlite3_stmt *s = NULL;
	int64_t from = 0;
	uint8_t header[BUNDLE_HEADER];
	char *tmp = NULL;
	int rc = 0, zinit = 0;

	memset(stats, 0, sizeof(*stats));
	memset(&w, 0, sizeof(w));
	hmap_init(&vv, 32);
	snprintf(stats->plan, sizeof(stats->plan), "%s", p->idhex);
	if (since && (rc = parse_vv(since, &vv)) < 0)
		goto cleanup;
	if (!(tmp = malloc(strlen(path) + 16))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	sprintf(tmp, "%s.partial", path);
	if (!(w.f = fopen(tmp, "wb"))) {
		rc = samen_error_set(SAMEN_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	memcpy(header, BUNDLE_MAGIC, 8);
	header[8] = BUNDLE_VERSION;
	memcpy(header + 9, p->id, 16);
	if (fwrite(header, 1, sizeof(header), w.f) != sizeof(header)) {
		rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	w.written = sizeof(header);
	/* level 9 with the largest window and memory: bundles are written once
	 * and carried by hand, so spend CPU for bytes */
	if (deflateInit2(&w.z, 9, Z_DEFLATED, -15, 9, Z_DEFAULT_STRATEGY) != Z_OK) {
		rc = samen_error_set(SAMEN_ENOMEM, "cannot start compression");
		goto cleanup;
	}
	zinit = 1;
	if (since && (rc = first_wanted_rowid(p, &vv, &from)) < 0)
		goto cleanup;
	/* rowid order is the order of application, which is causal */
	/* A device that equivocated has two changes with one seq, which a
	 * version vector cannot tell apart: from its fork on, all its changes
	 * go, so the receiver learns of the fork too. */
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT d.key, c.seq, c.body, c.sig, c.blob, c.id,"
	                       " (SELECT f.seq FROM forks f WHERE f.devno = c.devno) FROM changes c"
	                       " JOIN devs d ON d.devno = c.devno WHERE c.rowid >= ? ORDER BY c.rowid", -1, &s,
	                       NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(replica_db(p->rep)));
		goto cleanup;
	}
	sqlite3_bind_int64(s, 1, from);
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t *have = hmap_get(&vv, sqlite3_column_blob(s, 0));
		uint8_t *bytes;
		size_t len;
		uint64_t seq = (uint64_t)sqlite3_column_int64(s, 1), forked = (uint64_t)sqlite3_column_int64(s, 6);
		if (have && *have >= seq && !(forked && seq >= forked))
			continue;
		if (sqlite3_column_bytes(s, 3) != 64) {
			rc = samen_error_set(SAMEN_ECORRUPT, "replica: a stored signature is damaged (run samen rebuild)");
			goto cleanup;
		}
		if ((rc = replica_row_change(p->rep, s, 2, 4, 5, &bytes, &len)) < 0)
			goto cleanup;
		if ((rc = bw_varint(&w, len)) < 0 || (rc = bw_write(&w, bytes, len)) < 0 ||
		    (rc = bw_write(&w, sqlite3_column_blob(s, 3), 64)) < 0) {
			free(bytes);
			goto cleanup;
		}
		free(bytes);
		stats->changes++;
	}
	if ((rc = bw_varint(&w, 0)) < 0 || (rc = bw_flush(&w, Z_FINISH)) < 0)
		goto cleanup;
	if (fflush(w.f) != 0 || fsync(fileno(w.f)) != 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	fclose(w.f);
	w.f = NULL;
	if (rename(tmp, path) != 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		goto cleanup;
	}
	stats->bytes = w.written;
cleanup:
	sqlite3_finalize(s);
	if (zinit)
		deflateEnd(&w.z);
	if (w.f) {
		fclose(w.f);
		unlink(tmp);
	}
	free(tmp);
	hmap_free(&vv);
	return rc;
}

/* --- reading -------------------------------------------------------------------- */

typedef struct {
	FILE *f;
	z_stream z;
	uint8_t in[65536];
	uint8_t *buf;           /* decompressed bytes not yet consumed */
	size_t len, cap, pos;
	bool eof;               /* the deflate stream ended */
	const char *path;
} bundle_reader;

/* Make at least want bytes available (fewer only at the end of the stream). */
static int br_fill(bundle_reader *r, size_t want)
{
	while (r->len - r->pos < want && !r->eof) {
		if (r->pos > 0) {
			memmove(r->buf, r->buf + r->pos, r->len - r->pos);
			r->len -= r->pos;
			r->pos = 0;
		}
		if (r->cap - r->len < 65536) {
			size_t nc = r->cap * 2;
			void *np = realloc(r->buf, nc);
			if (!np)
				return samen_error_set(SAMEN_ENOMEM, "out of memory reading the bundle");
			r->buf = np;
			r->cap = nc;
		}
		if (r->z.avail_in == 0) {
			size_t got = fread(r->in, 1, sizeof(r->in), r->f);
			if (got == 0)
				return samen_error_set(SAMEN_EDECODE, "bundle %s is truncated (the compressed data ends early)",
				                       r->path);
			r->z.next_in = r->in;
			r->z.avail_in = (uInt)got;
		}
		r->z.next_out = r->buf + r->len;
		r->z.avail_out = (uInt)(r->cap - r->len);
		int zrc = inflate(&r->z, Z_NO_FLUSH);
		r->len = r->cap - r->z.avail_out;
		if (zrc == Z_STREAM_END)
			r->eof = true;
		else if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return samen_error_set(SAMEN_EDECODE, "bundle %s is damaged (compressed data: %s)", r->path,
			                       r->z.msg ? r->z.msg : "invalid");
	}
	return 0;
}

static int br_varint(bundle_reader *r, uint64_t *v)
{
	int rc;
	*v = 0;
	for (int shift = 0; shift < 35; shift += 7) {
		if ((rc = br_fill(r, 1)) < 0)
			return rc;
		if (r->pos >= r->len)
			return samen_error_set(SAMEN_EDECODE, "bundle %s is truncated inside a record header", r->path);
		uint8_t b = r->buf[r->pos++];
		*v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			return 0;
	}
	return samen_error_set(SAMEN_EDECODE, "bundle %s: record length is not a valid varint", r->path);
}


/* Importing one or more bundle files of one plan, as one stream: the
 * records of all files go into one batch (applied in chunks that keep
 * memory bounded), so a merge of many files costs one replica transaction
 * and one history pack, and a file whose changes depend on another's
 * applies in any order of the files. A bad file does not stop the others:
 * its good records before the bad one are kept, nothing after it. */
typedef struct {
	samen_store *store;
	samen_plan *p;
	uint8_t plan[16];
	ingest_batch b;
	bool binit;
	ingest_verifier *v;
	size_t chunk_bytes;
	samen_bundle_stats *stats;
	int bad;                 /* the first bad file's error ... */
	char badmsg[1280];       /* ... and its message */
	unsigned nbad;           /* files with errors */
} importer;

/* Record a file's error (the first one is reported; the others counted).
 * kept: records of that file before the bad one, which were kept. */
static void note_bad(importer *im, int rc, const char *msg, uint64_t kept)
{
	if (im->nbad++ == 0) {
		im->bad = rc;
		snprintf(im->badmsg, sizeof(im->badmsg), "%s; %llu changes before it were verified and imported, nothing"
		         " after it", msg, (unsigned long long)kept);
	}
}

/* Apply what was read so far (its signatures are verified first) and start
 * a new chunk. Fails only when the plan cannot take it (storage, memory). */
static int flush_chunk(importer *im, const char *path)
{
	samen_bundle_stats *st = im->stats;
	ingest_batch *b = &im->b;
	sqlite3_stmt *s = NULL;
	uint64_t record = 0;
	int rc = ingest_verifier_finish(im->v, &record);
	im->v = NULL;
	if (rc < 0) {
		char msg[1024];
		if (rc != SAMEN_ESIG)
			return rc;
		snprintf(msg, sizeof(msg), "bundle %s: record %llu: %s", path ? path : "?", (unsigned long long)record,
		         samen_error_last());
		note_bad(im, rc, msg, record - 1);
	}
	im->chunk_bytes = 0;
	if (b->n > 0) {
		if ((rc = plan_ingest(im->p, b)) < 0)
			return rc;
		st->applied += b->nready;
		st->duplicates += b->ndup;
		st->invalid += b->nbad;
		st->rejudged += b->nrejudged;
		/* count verdicts of what was just applied */
		if (sqlite3_prepare_v2(replica_db(im->p->rep), "SELECT verdict FROM changes WHERE id = ?", -1, &s, NULL) ==
		    SQLITE_OK) {
			for (size_t i = 0; i < b->nready; i++) {
				sqlite3_reset(s);
				sqlite3_bind_blob(s, 1, b->items[b->order[i]].id, 32, SQLITE_STATIC);
				if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
					st->rejected++;
			}
		}
		sqlite3_finalize(s);
		st->pending = b->npending - b->ndropped;
		if (b->ndropped) {
			char msg[512];
			snprintf(msg, sizeof(msg), "%s%s: %zu changes wait for changes that have not arrived and were"
			         " not kept: the waiting room is full (%u changes or %u MiB)", path ? "bundle " : "",
			         path ? path : "the bundles", b->ndropped,
			         SAMEN_MAX_PENDING, SAMEN_MAX_PENDING_BYTES >> 20);
			if (im->nbad++ == 0) {
				im->bad = SAMEN_ELIMIT;
				snprintf(im->badmsg, sizeof(im->badmsg), "%s", msg);
			}
		}
		ingest_free(b);
		if ((rc = ingest_init(b, im->plan)) < 0) {
			im->binit = false;
			return rc;
		}
	}
	/* signatures are checked on the second core while the next records are read */
	return ingest_verifier_start(&im->v, b, CHUNK_CHANGES + 1);
}

/* The plan of the first readable file; later files must be of the same plan.
 * A plan new to this store is built aside and moved into place at the end,
 * so an interrupted clone never looks like a plan. */
static int importer_plan(importer *im, const uint8_t plan[16], const char *path, bool *skip)
{
	samen_bundle_stats *st = im->stats;
	int rc;
	*skip = false;
	if (im->p) {
		if (memcmp(plan, im->plan, 16) != 0) {
			char msg[256], got[33];
			sodium_bin2hex(got, sizeof(got), plan, 16);
			snprintf(msg, sizeof(msg), "bundle %s belongs to plan %s, not to plan %s of the bundles before it"
			         " (import one plan's bundles at a time)", path, got, st->plan);
			note_bad(im, SAMEN_EINVAL, msg, 0);
			*skip = true;
		}
		return 0;
	}
	memcpy(im->plan, plan, 16);
	sodium_bin2hex(st->plan, sizeof(st->plan), plan, 16);
	{
		char *dir = path_join(im->store->plans_dir, st->plan);
		if (!dir)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		st->cloned = access(dir, F_OK) != 0;
		free(dir);
	}
	if ((rc = st->cloned ? plan_open_staged(&im->p, im->store, plan) : plan_open_dir(&im->p, im->store, plan, false)) < 0)
		return rc;
	if ((rc = ingest_init(&im->b, plan)) < 0)
		return rc;
	im->binit = true;
	return ingest_verifier_start(&im->v, &im->b, CHUNK_CHANGES + 1);
}

/* Finish verifying what was read of this file (a bad signature drops the
 * rest of this file only, never another file's records) and start a
 * verifier for what comes next. Returns < 0 when the import cannot go on,
 * 1 when a bad signature was found (and noted), else 0. */
static int close_file(importer *im, const char *path)
{
	uint64_t bad = 0;
	int rc, found = 0;
	if (!im->v)
		return 0;
	rc = ingest_verifier_finish(im->v, &bad);
	im->v = NULL;
	if (rc == SAMEN_ESIG) {
		char msg[1024];
		snprintf(msg, sizeof(msg), "bundle %s: record %llu: %s", path, (unsigned long long)bad, samen_error_last());
		note_bad(im, SAMEN_ESIG, msg, bad - 1);
		found = 1;
	} else if (rc < 0) {
		return rc;
	}
	if ((rc = ingest_verifier_start(&im->v, &im->b, CHUNK_CHANGES + 1)) < 0)
		return rc;
	return found;
}

/* Read one file into the batch. Returns < 0 only when the import as a whole
 * cannot go on; a bad file is recorded with note_bad() and 0 returned. */
static int import_file(importer *im, const char *path)
{
	bundle_reader r;
	uint8_t header[BUNDLE_HEADER];
	uint64_t record = 0;
	bool zinit = false, skip;
	int rc = 0, fatal = 0;
	char msg[1024];

	memset(&r, 0, sizeof(r));
	r.path = path;
	if (!(r.f = fopen(path, "rb"))) {
		snprintf(msg, sizeof(msg), "cannot open bundle %s: %s", path, strerror(errno));
		note_bad(im, SAMEN_EIO, msg, 0);
		return 0;
	}
	if (fread(header, 1, sizeof(header), r.f) != sizeof(header) || memcmp(header, BUNDLE_MAGIC, 8) != 0) {
		rc = samen_error_set(SAMEN_EDECODE, "%s is not a Samen bundle (wrong magic or too short)", path);
		goto done;
	}
	if (header[8] != BUNDLE_VERSION) {
		rc = samen_error_set(SAMEN_EDECODE, "bundle %s has format version %u; this Samen reads version %u", path,
		                     header[8], BUNDLE_VERSION);
		goto done;
	}
	if ((fatal = importer_plan(im, header + 9, path, &skip)) < 0 || skip)
		goto done;
	if (inflateInit2(&r.z, -15) != Z_OK) {
		fatal = samen_error_set(SAMEN_ENOMEM, "cannot start decompression");
		goto done;
	}
	zinit = true;
	r.cap = 1 << 17;
	if (!(r.buf = malloc(r.cap))) {
		fatal = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto done;
	}
	for (;;) {
		uint64_t len;
		uint8_t *bytes;
		ingest_batch *b = &im->b;
		record++;
		if ((rc = br_varint(&r, &len)) < 0)
			break;
		if (len == 0)
			break;
		if (len > SAMEN_MAX_CHANGE_BYTES) {
			rc = samen_error_set(SAMEN_EDECODE, "bundle %s: record %llu claims %llu bytes, more than the cap of %u",
			                     path, (unsigned long long)record, (unsigned long long)len, SAMEN_MAX_CHANGE_BYTES);
			break;
		}
		if ((rc = br_fill(&r, len + 64)) < 0)
			break;
		if (r.len - r.pos < len + 64) {
			rc = samen_error_set(SAMEN_EDECODE, "bundle %s is truncated inside record %llu", path,
			                     (unsigned long long)record);
			break;
		}
		if (!(bytes = malloc(len))) {
			rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
			break;
		}
		memcpy(bytes, r.buf + r.pos, len);
		size_t before = b->n;
		if ((rc = ingest_add_unverified(b, bytes, len, r.buf + r.pos + len)) < 0) {
			samen_error_wrap(rc, "bundle %s: record %llu", path, (unsigned long long)record);
			break;
		}
		if (b->n > before)
			b->items[b->n - 1].origin = record;
		ingest_verifier_publish(im->v);
		r.pos += len + 64;
		im->stats->changes++;
		/* decoded ops take more room than their bytes: count both */
		im->chunk_bytes += len + (b->n > before ? (size_t)b->items[b->n - 1].ch.nops * sizeof(samen_op) : 0);
		if (b->n >= CHUNK_CHANGES || im->chunk_bytes >= CHUNK_BYTES) {
			unsigned nbad = im->nbad;
			if ((fatal = flush_chunk(im, path)) < 0)
				goto done;
			if (im->nbad > nbad) /* a bad signature: nothing after it */
				goto done;
		}
	}
	if (rc == 0) {
		/* the stream must end right after the end record, and the file with it */
		if ((rc = br_fill(&r, 1)) == 0 && (r.len > r.pos || !r.eof || r.z.avail_in > 0 || fgetc(r.f) != EOF))
			rc = samen_error_set(SAMEN_EDECODE, "bundle %s has data after its end", path);
	}
	im->stats->bytes += (uint64_t)ftell(r.f);
done:
	if (fatal == 0) {
		int closed;
		if (rc < 0)
			snprintf(msg, sizeof(msg), "%s", samen_error_last());
		/* a bad signature earlier in this file comes first: the records
		 * after it are dropped with it */
		if ((closed = close_file(im, path)) < 0)
			fatal = closed;
		else if (rc < 0 && closed == 0)
			note_bad(im, rc, msg, record ? record - 1 : 0);
	}
	if (zinit)
		inflateEnd(&r.z);
	free(r.buf);
	fclose(r.f);
	return fatal;
}

int samen_bundle_import_files(samen_store *store, const char *const *paths, size_t npaths,
                              samen_bundle_stats *stats)
{
	importer im;
	int rc = 0;

	memset(stats, 0, sizeof(*stats));
	memset(&im, 0, sizeof(im));
	im.store = store;
	im.stats = stats;
	if (npaths == 0)
		return samen_error_set(SAMEN_EINVAL, "no bundle to import");
	for (size_t i = 0; i < npaths && rc == 0; i++)
		rc = import_file(&im, paths[i]);
	if (rc == 0 && im.p)
		rc = flush_chunk(&im, npaths == 1 ? paths[0] : NULL);
	if (rc == 0 && im.nbad) {
		if (im.nbad > 1)
			rc = samen_error_set(im.bad, "%s (and %u more errors in these bundles)", im.badmsg, im.nbad - 1);
		else
			rc = samen_error_set(im.bad, "%s", im.badmsg);
	}
	ingest_verifier_finish(im.v, NULL); /* on early exits: stop the thread */
	if (im.binit)
		ingest_free(&im.b);
	if (im.p && stats->cloned && stats->applied == 0 && stats->pending == 0) {
		/* a clone that brought nothing leaves nothing behind */
		char *dir = strdup(im.p->dir);
		samen_plan_free(im.p);
		im.p = NULL;
		if (dir)
			remove_tree(dir);
		free(dir);
		stats->cloned = 0;
	} else if (im.p && stats->cloned) {
		int prc = plan_publish(&im.p);
		if (prc < 0 && rc == 0)
			rc = prc;
	}
	samen_plan_free(im.p);
	return rc;
}

int samen_bundle_import(samen_store *store, const char *path, samen_bundle_stats *stats)
{
	return samen_bundle_import_files(store, &path, 1, stats);
}
