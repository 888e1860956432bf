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
	/* rowid order is the order of application, which is causal */
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT d.key, c.seq, c.body, c.sig FROM changes c JOIN devs d"
	                       " ON d.devno = c.devno ORDER BY c.rowid", -1, &s, NULL) != SQLITE_OK) {
		rc = samen_error_set(SAMEN_EIO, "replica: %s", sqlite3_errmsg(replica_db(p->rep)));
		goto cleanup;
	}
	while (sqlite3_step(s) == SQLITE_ROW) {
		uint64_t *have = hmap_get(&vv, sqlite3_column_blob(s, 0));
		if (have && *have >= (uint64_t)sqlite3_column_int64(s, 1))
			continue;
		size_t len = (size_t)sqlite3_column_bytes(s, 2);
		if ((rc = bw_varint(&w, len)) < 0 || (rc = bw_write(&w, sqlite3_column_blob(s, 2), len)) < 0 ||
		    (rc = bw_write(&w, sqlite3_column_blob(s, 3), 64)) < 0)
			goto cleanup;
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


/* Verify and apply what was read so far. A bad signature drops that change
 * and everything read after it; what came before is applied, and *bad
 * receives the error. */
static int ingest_chunk(samen_plan *p, ingest_batch *b, ingest_verifier **v, const char *path,
                        samen_bundle_stats *stats, int *bad, char *badmsg, size_t badcap)
{
	int rc;
	sqlite3_stmt *s = NULL;
	uint64_t record = 0;
	rc = ingest_verifier_finish(*v, &record);
	*v = NULL;
	if (rc < 0) {
		if (rc != SAMEN_ESIG)
			return rc;
		*bad = rc;
		snprintf(badmsg, badcap, "bundle %s: record %llu: %s", path, (unsigned long long)record,
		         samen_error_last());
	}
	if (b->n == 0) /* nothing (left) to apply; keep reading with a verifier */
		return ingest_verifier_start(v, b, CHUNK_CHANGES + 1);
	if ((rc = plan_ingest(p, b)) < 0)
		return rc;
	stats->applied += b->nready;
	stats->duplicates += b->ndup;
	stats->invalid += b->nbad;
	stats->rejudged += b->nrejudged;
	/* count verdicts of what was just applied */
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT verdict FROM changes WHERE id = ?", -1, &s, NULL) == SQLITE_OK) {
		for (size_t i = 0; i < b->nready; i++) {
			sqlite3_reset(s);
			sqlite3_bind_blob(s, 1, b->items[b->order[i]].id, 32, SQLITE_STATIC);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
				stats->rejected++;
		}
	}
	sqlite3_finalize(s);
	stats->pending = b->npending - b->ndropped;
	if (b->ndropped && !*bad) {
		*bad = SAMEN_ELIMIT;
		snprintf(badmsg, badcap, "bundle %s: %zu changes wait for changes that have not arrived and were not"
		         " kept: the waiting room is full (%u changes or %u MiB)", path, b->ndropped, SAMEN_MAX_PENDING,
		         SAMEN_MAX_PENDING_BYTES >> 20);
	}
	ingest_free(b);
	if ((rc = ingest_init(b, p->id)) < 0)
		return rc;
	return ingest_verifier_start(v, b, CHUNK_CHANGES + 1);
}

int samen_bundle_import(samen_store *store, const char *path, samen_bundle_stats *stats)
{
	bundle_reader r;
	uint8_t header[BUNDLE_HEADER], plan[16];
	samen_plan *p = NULL;
	ingest_batch b;
	bool binit = false, zinit = false;
	ingest_verifier *verifier = NULL;
	size_t chunk_bytes = 0;
	uint64_t record = 0;
	int rc = 0, bad = 0;
	char badmsg[1024] = "";

	memset(stats, 0, sizeof(*stats));
	memset(&r, 0, sizeof(r));
	r.path = path;
	if (!(r.f = fopen(path, "rb")))
		return samen_error_set(SAMEN_EIO, "cannot open bundle %s: %s", path, strerror(errno));
	if (fread(header, 1, sizeof(header), r.f) != sizeof(header) || memcmp(header, BUNDLE_MAGIC, 8) != 0) {
		rc = samen_error_set(SAMEN_EDECODE, "%s is not a Samen bundle (wrong magic or too short)", path);
		goto cleanup;
	}
	if (header[8] != BUNDLE_VERSION) {
		rc = samen_error_set(SAMEN_EDECODE, "bundle %s has format version %u; this Samen reads version %u", path,
		                     header[8], BUNDLE_VERSION);
		goto cleanup;
	}
	memcpy(plan, header + 9, 16);
	sodium_bin2hex(stats->plan, sizeof(stats->plan), plan, 16);
	{
		char *dir = path_join(store->plans_dir, stats->plan);
		stats->cloned = dir && access(dir, F_OK) != 0;
		free(dir);
	}
	/* a plan new to this store is built aside and moved into place at the
	 * end, so an interrupted clone never looks like a plan */
	if ((rc = stats->cloned ? plan_open_staged(&p, store, plan) : plan_open_dir(&p, store, plan, false)) < 0)
		goto cleanup;
	if (inflateInit2(&r.z, -15) != Z_OK) {
		rc = samen_error_set(SAMEN_ENOMEM, "cannot start decompression");
		goto cleanup;
	}
	zinit = true;
	r.cap = 1 << 17;
	if (!(r.buf = malloc(r.cap))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = ingest_init(&b, plan)) < 0)
		goto cleanup;
	binit = true;
	/* signatures are checked on the second core while the bundle is read */
	if ((rc = ingest_verifier_start(&verifier, &b, CHUNK_CHANGES + 1)) < 0)
		goto cleanup;
	for (;;) {
		uint64_t len;
		uint8_t *bytes;
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
		size_t before = b.n;
		if ((rc = ingest_add_unverified(&b, bytes, len, r.buf + r.pos + len)) < 0) {
			samen_error_wrap(rc, "bundle %s: record %llu", path, (unsigned long long)record);
			break;
		}
		if (b.n > before)
			b.items[b.n - 1].origin = record;
		ingest_verifier_publish(verifier);
		r.pos += len + 64;
		stats->changes++;
		/* decoded ops take more room than their bytes: count both */
		chunk_bytes += len + (b.n > before ? (size_t)b.items[b.n - 1].ch.nops * sizeof(samen_op) : 0);
		if (b.n >= CHUNK_CHANGES || chunk_bytes >= CHUNK_BYTES) {
			if ((rc = ingest_chunk(p, &b, &verifier, path, stats, &bad, badmsg, sizeof(badmsg))) < 0)
				goto cleanup;
			chunk_bytes = 0;
			if (bad)
				break;
		}
	}
	if (rc == 0 && !bad) {
		/* the stream must end right after the end record, and the file with it */
		if ((rc = br_fill(&r, 1)) == 0 && (r.len > r.pos || !r.eof || r.z.avail_in > 0 || fgetc(r.f) != EOF))
			rc = samen_error_set(SAMEN_EDECODE, "bundle %s has data after its end", path);
	}
	if (rc < 0 && !bad) {
		bad = rc;
		snprintf(badmsg, sizeof(badmsg), "%s", samen_error_last());
	}
	/* Keep the good records before a bad one: each is signed and verified. */
	if ((rc = ingest_chunk(p, &b, &verifier, path, stats, &bad, badmsg, sizeof(badmsg))) < 0)
		goto cleanup;
	if (bad) {
		rc = samen_error_set(bad, "%s; %llu changes before it were verified and imported, nothing after it",
		                     badmsg, (unsigned long long)stats->applied);
	}
	stats->bytes = (uint64_t)ftell(r.f);
cleanup:
	ingest_verifier_finish(verifier, NULL); /* on early exits: stop the thread */
	if (binit)
		ingest_free(&b);
	if (zinit)
		inflateEnd(&r.z);
	free(r.buf);
	if (r.f)
		fclose(r.f);
	if (p && stats->cloned && stats->applied == 0 && stats->pending == 0) {
		/* a clone that brought nothing leaves nothing behind */
		char *dir = strdup(p->dir);
		samen_plan_free(p);
		p = NULL;
		if (dir)
			remove_tree(dir);
		free(dir);
		stats->cloned = 0;
	} else if (p && stats->cloned) {
		int prc = plan_publish(&p);
		if (prc < 0 && rc == 0)
			rc = prc;
	}
	samen_plan_free(p);
	return rc;
}
