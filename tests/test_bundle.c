/*
 * test_bundle.c - bundles end to end through the public API (samen/bundle.h):
 * devices that never meet exchange a plan by file, and a bundle that is
 * damaged or forged is refused with a clear message, keeping what was good
 * and storing nothing from the bad part.
 *
 * Every test has three stores in one temporary directory, each with its own
 * device key: A (Anna, who creates the plan), B (Bram, a member) and C
 * (Carla, who is never added). Hand-made bundles are written with zlib
 * (raw deflate, as the format says), never through the code under test.
 */
#include "testutil.h"

#include "samen/samen.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <git2.h>
#include <unistd.h>
#include <zlib.h>

#define HEADER 25
#define MAX_STATES 16

typedef struct {
	char *dir;
	samen_store *a, *b, *c;
	char plan[33];                   /* the plan A creates */
	char goal[17];                   /* its first goal */
	char hash[MAX_STATES][65];       /* A's state after k changes */
	int nchanges;                    /* on A */
	char path[4200];                 /* scratch file for bundles */
} fixture;

/* ---- stores and plans --------------------------------------------------- */

static size_t plan_count(samen_store *s)
{
	samen_plan_info *plans = NULL;
	size_t n = 0;
	assert_int_equal(samen_store_plans(s, &plans, &n), 0);
	free(plans);
	return n;
}

static void remove_plan(samen_store *s, const char *id)
{
	char path[4300];
	snprintf(path, sizeof(path), "%s/plans/%s", samen_store_path(s), id);
	tu_rmtree(path);
}

static void record_state(fixture *f)
{
	assert_true(f->nchanges + 1 < MAX_STATES);
	f->nchanges++;
	tu_state_hash(f->a, f->plan, f->hash[f->nchanges]);
}

/* One edit session on store s setting field of entity to value. */
static int set_field(samen_store *s, const char *plan, const char *entity, const char *field, const char *value)
{
	samen_plan *p = tu_open_plan(s, plan);
	samen_edit *e;
	int rc;
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_set(e, entity, field, value), 0);
	rc = samen_edit_commit(e, NULL);
	samen_edit_free(e);
	samen_plan_free(p);
	return rc;
}

static void add_goal(samen_store *s, const char *plan, const char *title, char uid[17])
{
	samen_plan *p = tu_open_plan(s, plan);
	samen_edit *e;
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_create(e, "goal", uid), 0);
	assert_int_equal(samen_edit_set(e, uid, "title", title), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
}

typedef struct {
	const char *field;
	char value[512];
	int nvalues;
} field_probe;

static int probe_field(const samen_entity_view *e, void *payload)
{
	field_probe *fp = payload;
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].name, fp->field) == 0) {
			snprintf(fp->value, sizeof(fp->value), "%s", e->fields[i].value);
			fp->nvalues = e->fields[i].nvalues;
		}
	return 0;
}

static void goal_field(samen_store *s, const char *plan, const char *uid, const char *field, char *out, size_t len)
{
	samen_plan *p = tu_open_plan(s, plan);
	field_probe fp;
	memset(&fp, 0, sizeof(fp));
	fp.field = field;
	assert_int_equal(samen_entity_get(p, "goal", uid, probe_field, &fp), 0);
	samen_plan_free(p);
	snprintf(out, len, "%s", fp.value);
}

static int bundle_create(samen_store *s, const char *plan, const char *path, const char *since,
                         samen_bundle_stats *st)
{
	samen_plan *p = tu_open_plan(s, plan);
	int rc = samen_bundle_create(p, path, since, st);
	samen_plan_free(p);
	return rc;
}

static char *version_vector(samen_store *s, const char *plan)
{
	samen_plan *p = tu_open_plan(s, plan);
	char *vv = NULL;
	assert_int_equal(samen_plan_version_vector(p, &vv), 0);
	samen_plan_free(p);
	return vv;
}

#define assert_error_has(needle) assert_error_has_((needle), __FILE__, __LINE__)
static void assert_error_has_(const char *needle, const char *file, int line)
{
	if (!strstr(samen_error_last(), needle))
		fail_msg("%s:%d: error \"%s\" does not mention \"%s\"", file, line, samen_error_last(), needle);
}

/* The shared story: A creates the plan, adds B as a member, adds a goal. */
static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	samen_plan *p;
	samen_edit *e;

	assert_non_null(f);
	f->dir = tu_mkdtemp("bundle");
	assert_non_null(f->dir);
	f->a = tu_open_store(f->dir, "a", "Anna");
	f->b = tu_open_store(f->dir, "b", "Bram");
	f->c = tu_open_store(f->dir, "c", "Carla");
	snprintf(f->path, sizeof(f->path), "%s/x.samenbundle", f->dir);
	tu_state_hash(f->a, "0", f->hash[0]); /* "" : no plan yet */

	assert_int_equal(samen_plan_create(&p, f->a, "Jan de Vries", "nl"), 0);
	snprintf(f->plan, sizeof(f->plan), "%s", samen_plan_id(p));
	samen_plan_free(p);
	record_state(f);

	p = tu_open_plan(f->a, f->plan);
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_member_add(e, samen_store_device_key(f->b), "Bram"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
	record_state(f);

	add_goal(f->a, f->plan, "Zelfstandig wonen", f->goal);
	record_state(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	samen_store_free(f->a);
	samen_store_free(f->b);
	samen_store_free(f->c);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* Two more changes on A (status, then priority of the goal). */
static void more_changes_on_a(fixture *f)
{
	assert_int_equal(set_field(f->a, f->plan, f->goal, "status", "bezig"), 0);
	record_state(f);
	assert_int_equal(set_field(f->a, f->plan, f->goal, "priority", "2"), 0);
	record_state(f);
}

/* ---- hand-made bundles ------------------------------------------------------ */

typedef struct {
	uint8_t *bytes;
	size_t len;
	uint8_t sig[64];
} record;

typedef struct {
	uint8_t header[HEADER];
	record *r;
	size_t n;
} bundle;

static size_t put_varint(uint8_t *out, uint64_t v)
{
	size_t n = 0;
	do {
		out[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			out[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

/* Inflate a bundle file written by samen_bundle_create into its records. */
static void bundle_read(const char *path, bundle *bd)
{
	size_t flen, cap = 1 << 16, len = 0, pos = 0;
	uint8_t *file = tu_read_file(path, &flen), *raw = malloc(cap);
	z_stream z;
	int zrc;

	assert_non_null(file);
	assert_non_null(raw);
	assert_true(flen > HEADER);
	memcpy(bd->header, file, HEADER);
	memset(&z, 0, sizeof(z));
	assert_int_equal(inflateInit2(&z, -15), Z_OK);
	z.next_in = file + HEADER;
	z.avail_in = (uInt)(flen - HEADER);
	do {
		if (cap - len < 4096) {
			cap *= 2;
			raw = realloc(raw, cap);
			assert_non_null(raw);
		}
		z.next_out = raw + len;
		z.avail_out = (uInt)(cap - len);
		zrc = inflate(&z, Z_NO_FLUSH);
		len = cap - z.avail_out;
		assert_true(zrc == Z_OK || zrc == Z_STREAM_END);
	} while (zrc != Z_STREAM_END);
	assert_int_equal(z.avail_in, 0);
	inflateEnd(&z);
	bd->n = 0;
	bd->r = NULL;
	for (;;) {
		uint64_t v = 0;
		int shift = 0;
		uint8_t b;
		do {
			assert_true(pos < len);
			b = raw[pos++];
			v |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
		} while (b & 0x80);
		if (v == 0)
			break;
		assert_true(pos + v + 64 <= len);
		bd->r = realloc(bd->r, (bd->n + 1) * sizeof(*bd->r));
		assert_non_null(bd->r);
		bd->r[bd->n].bytes = malloc(v);
		assert_non_null(bd->r[bd->n].bytes);
		memcpy(bd->r[bd->n].bytes, raw + pos, v);
		bd->r[bd->n].len = v;
		memcpy(bd->r[bd->n].sig, raw + pos + v, 64);
		pos += v + 64;
		bd->n++;
	}
	assert_int_equal(pos, len);
	free(raw);
	free(file);
}

static void bundle_free(bundle *bd)
{
	for (size_t i = 0; i < bd->n; i++)
		free(bd->r[i].bytes);
	free(bd->r);
	bd->r = NULL;
	bd->n = 0;
}

/* Compress body (raw deflate) after header into path, then append tail. */
static void write_raw_bundle(const char *path, const uint8_t header[HEADER], const uint8_t *body, size_t blen,
                             const uint8_t *tail, size_t tlen)
{
	z_stream z;
	size_t cap = compressBound((uLong)blen) + 1024, olen;
	uint8_t *out = malloc(HEADER + cap + tlen);
	FILE *fp;

	assert_non_null(out);
	memcpy(out, header, HEADER);
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)body;
	z.avail_in = (uInt)blen;
	z.next_out = out + HEADER;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	olen = HEADER + (cap - z.avail_out);
	deflateEnd(&z);
	if (tlen)
		memcpy(out + olen, tail, tlen);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(out, 1, olen + tlen, fp), olen + tlen);
	assert_int_equal(fclose(fp), 0);
	free(out);
}

/* Write records (in the given order) and the end record, then inner bytes
 * inside the compressed stream, then outer bytes after it. */
static void bundle_write(const char *path, const uint8_t header[HEADER], record *const *recs, size_t n,
                         const uint8_t *inner, size_t ilen, const uint8_t *outer, size_t olen)
{
	size_t cap = 16 + ilen, len = 0;
	uint8_t *body;
	for (size_t i = 0; i < n; i++)
		cap += 10 + recs[i]->len + 64;
	body = malloc(cap);
	assert_non_null(body);
	for (size_t i = 0; i < n; i++) {
		len += put_varint(body + len, recs[i]->len);
		memcpy(body + len, recs[i]->bytes, recs[i]->len);
		len += recs[i]->len;
		memcpy(body + len, recs[i]->sig, 64);
		len += 64;
	}
	body[len++] = 0;
	if (ilen)
		memcpy(body + len, inner, ilen);
	len += ilen;
	write_raw_bundle(path, header, body, len, outer, olen);
	free(body);
}

static int import(samen_store *s, const char *path, samen_bundle_stats *st)
{
	samen_error_clear();
	return samen_bundle_import(s, path, st);
}

/* ---- exchanging a plan ---------------------------------------------------------- */

static void test_bundle_clones_the_plan_on_another_device(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	char h[65], title[512];
	samen_plan_info *plans;
	size_t n;

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(st.changes, 3);
	assert_string_equal(st.plan, f->plan);
	assert_true(st.bytes > HEADER);

	assert_int_equal(plan_count(f->b), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.cloned, 1);
	assert_int_equal(st.changes, 3);
	assert_int_equal(st.applied, 3);
	assert_int_equal(st.rejected, 0);
	assert_int_equal(st.invalid, 0);
	assert_int_equal(st.pending, 0);
	assert_string_equal(st.plan, f->plan);

	tu_state_hash(f->b, f->plan, h);
	assert_string_equal(h, f->hash[3]);
	assert_int_equal(samen_store_plans(f->b, &plans, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(plans[0].id, f->plan);
	assert_string_equal(plans[0].client, "Jan de Vries");
	assert_int_equal(plans[0].changes, 3);
	assert_int_equal(plans[0].goals, 1);
	free(plans);
	goal_field(f->b, f->plan, f->goal, "title", title, sizeof(title));
	assert_string_equal(title, "Zelfstandig wonen");
	/* the file is a finished bundle: no partial file left next to it */
	{
		char partial[4300];
		struct stat sb;
		snprintf(partial, sizeof(partial), "%s.partial", f->path);
		assert_int_not_equal(stat(partial, &sb), 0);
	}
	/* and B, a member, can edit the cloned plan */
	assert_int_equal(set_field(f->b, f->plan, f->goal, "term", "kort"), 0);
}

typedef struct {
	char entity[17];
	char field[32];
	char value[64];
	char author[64];
	char device[65];
	int winner, nvalues;
} value_row;

typedef struct {
	value_row rows[32];
	int n;
} value_rows;

static int collect_value(const samen_value_info *v, void *payload)
{
	value_rows *vr = payload;
	value_row *r;
	assert_true(vr->n < 32);
	r = &vr->rows[vr->n++];
	snprintf(r->entity, sizeof(r->entity), "%s", v->entity);
	snprintf(r->field, sizeof(r->field), "%s", v->field);
	snprintf(r->value, sizeof(r->value), "%s", v->value);
	snprintf(r->author, sizeof(r->author), "%s", v->author);
	snprintf(r->device, sizeof(r->device), "%s", v->device);
	r->winner = v->winner;
	r->nvalues = v->nvalues;
	return 0;
}

static const value_row *find_row(const value_rows *vr, const char *field, const char *value)
{
	for (int i = 0; i < vr->n; i++)
		if (strcmp(vr->rows[i].field, field) == 0 && strcmp(vr->rows[i].value, value) == 0)
			return &vr->rows[i];
	return NULL;
}

static void check_status_conflict(fixture *f, samen_store *s, const char *winner)
{
	samen_plan *p = tu_open_plan(s, f->plan);
	value_rows conf, blame;
	const value_row *anna, *bram;
	char shown[512];

	memset(&conf, 0, sizeof(conf));
	assert_int_equal(samen_conflicts(p, collect_value, &conf), 0);
	assert_int_equal(conf.n, 2); /* one field, two values */
	for (int i = 0; i < conf.n; i++) {
		assert_string_equal(conf.rows[i].entity, f->goal);
		assert_string_equal(conf.rows[i].field, "status");
		assert_int_equal(conf.rows[i].nvalues, 2);
	}
	assert_int_equal(conf.rows[0].winner + conf.rows[1].winner, 1);

	memset(&blame, 0, sizeof(blame));
	assert_int_equal(samen_blame(p, f->goal, collect_value, &blame), 0);
	anna = find_row(&blame, "status", "bezig");
	bram = find_row(&blame, "status", "bereikt");
	assert_non_null(anna);
	assert_non_null(bram);
	assert_string_equal(anna->author, "Anna");
	assert_string_equal(anna->device, samen_store_device_key(f->a));
	assert_string_equal(bram->author, "Bram");
	assert_string_equal(bram->device, samen_store_device_key(f->b));
	assert_non_null(find_row(&blame, "title", "Zelfstandig wonen"));
	assert_string_equal(find_row(&blame, "title", "Zelfstandig wonen")->author, "Anna");
	samen_plan_free(p);

	goal_field(s, f->plan, f->goal, "status", shown, sizeof(shown));
	assert_string_equal(shown, winner);
}

static void test_concurrent_edits_exchanged_both_ways_converge_with_one_conflict(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	char ha[65], hb[65], wa[512], wb[512], ab[4300], ba[4300];

	snprintf(ab, sizeof(ab), "%s/a-to-b.samenbundle", f->dir);
	snprintf(ba, sizeof(ba), "%s/b-to-a.samenbundle", f->dir);
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);

	/* the same field, edited on both devices without contact */
	assert_int_equal(set_field(f->a, f->plan, f->goal, "status", "bezig"), 0);
	assert_int_equal(set_field(f->b, f->plan, f->goal, "status", "bereikt"), 0);
	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->b, f->plan, hb);
	assert_string_not_equal(ha, hb);

	assert_int_equal(bundle_create(f->a, f->plan, ab, NULL, &st), 0);
	assert_int_equal(st.changes, 4);
	assert_int_equal(bundle_create(f->b, f->plan, ba, NULL, &st), 0);
	assert_int_equal(st.changes, 4);
	assert_int_equal(import(f->b, ab, &st), 0);
	assert_int_equal(st.applied, 1);
	assert_int_equal(st.duplicates, 3);
	assert_int_equal(st.cloned, 0);
	assert_int_equal(import(f->a, ba, &st), 0);
	assert_int_equal(st.applied, 1);
	assert_int_equal(st.duplicates, 3);
	assert_int_equal(st.rejected, 0);

	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->b, f->plan, hb);
	assert_string_equal(ha, hb);
	/* both show the same winner, and keep the other value as a conflict */
	goal_field(f->a, f->plan, f->goal, "status", wa, sizeof(wa));
	goal_field(f->b, f->plan, f->goal, "status", wb, sizeof(wb));
	assert_string_equal(wa, wb);
	assert_true(strcmp(wa, "bezig") == 0 || strcmp(wa, "bereikt") == 0);
	check_status_conflict(f, f->a, wa);
	check_status_conflict(f, f->b, wa);

	/* resolving it on one side and exchanging again clears it on both */
	assert_int_equal(set_field(f->a, f->plan, f->goal, "status", "bereikt"), 0);
	{
		char *vv = version_vector(f->b, f->plan);
		assert_int_equal(bundle_create(f->a, f->plan, ab, vv, &st), 0);
		free(vv);
	}
	assert_int_equal(st.changes, 1);
	assert_int_equal(import(f->b, ab, &st), 0);
	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->b, f->plan, hb);
	assert_string_equal(ha, hb);
	{
		samen_plan *p = tu_open_plan(f->b, f->plan);
		value_rows conf;
		memset(&conf, 0, sizeof(conf));
		assert_int_equal(samen_conflicts(p, collect_value, &conf), 0);
		assert_int_equal(conf.n, 0);
		samen_plan_free(p);
	}
	goal_field(f->b, f->plan, f->goal, "status", wb, sizeof(wb));
	assert_string_equal(wb, "bereikt");
}

static void test_since_writes_only_what_the_receiver_lacks_and_reimport_is_idempotent(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	char h[65], h2[65], *vv;

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	more_changes_on_a(f);
	assert_int_equal(f->nchanges, 5);

	vv = version_vector(f->b, f->plan);
	assert_non_null(strstr(vv, samen_store_device_key(f->a)));
	assert_int_equal(bundle_create(f->a, f->plan, f->path, vv, &st), 0);
	free(vv);
	assert_int_equal(st.changes, 2);

	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.changes, 2);
	assert_int_equal(st.applied, 2);
	assert_int_equal(st.duplicates, 0);
	assert_int_equal(st.cloned, 0);
	tu_state_hash(f->b, f->plan, h);
	assert_string_equal(h, f->hash[5]);

	/* the same bundle again: nothing new, nothing changed */
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.changes, 2);
	assert_int_equal(st.applied, 0);
	assert_int_equal(st.duplicates, 2);
	tu_state_hash(f->b, f->plan, h2);
	assert_string_equal(h, h2);

	/* a full bundle on top: all duplicates */
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(st.changes, 5);
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.applied, 0);
	assert_int_equal(st.duplicates, 5);
	tu_state_hash(f->b, f->plan, h2);
	assert_string_equal(h, h2);

	/* B is now up to date: a bundle since its vector is empty, and fine */
	vv = version_vector(f->b, f->plan);
	assert_int_equal(bundle_create(f->a, f->plan, f->path, vv, &st), 0);
	free(vv);
	assert_int_equal(st.changes, 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.applied, 0);
	tu_state_hash(f->b, f->plan, h2);
	assert_string_equal(h, h2);

	/* a version vector that is not one is refused */
	assert_true(bundle_create(f->a, f->plan, f->path, "nonsense", &st) < 0);
	assert_error_has("--since");
}

/* ---- hostile bundles ------------------------------------------------------------------ */

/* Does the last error contain one of the '|'-separated alternatives? */
static int error_has_one_of(const char *alternatives)
{
	char buf[256], *save = NULL;
	snprintf(buf, sizeof(buf), "%s", alternatives);
	for (char *t = strtok_r(buf, "|", &save); t; t = strtok_r(NULL, "|", &save))
		if (strstr(samen_error_last(), t))
			return 1;
	return 0;
}

/* An import that must fail with needle (or one of needle's '|'-separated
 * alternatives) in the message and leave store s
 * as it was: the plan's hash unchanged, or no plan at all. */
static void expect_refused(fixture *f, samen_store *s, const char *path, const char *needle)
{
	samen_bundle_stats st;
	char before[65], after[65];
	size_t nplans = plan_count(s);
	int rc;

	tu_state_hash(s, f->plan, before);
	rc = import(s, path, &st);
	if (rc >= 0)
		fail_msg("import of a bad bundle succeeded (expected an error about \"%s\")", needle);
	if (!error_has_one_of(needle))
		fail_msg("error \"%s\" mentions none of \"%s\"", samen_error_last(), needle);
	assert_int_equal(st.applied, 0);
	assert_int_equal(plan_count(s), nplans);
	tu_state_hash(s, f->plan, after);
	assert_string_equal(before, after);
}

static void test_empty_file_wrong_magic_and_wrong_version_are_refused(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	size_t len;
	uint8_t *good;

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	good = tu_read_file(f->path, &len);
	assert_non_null(good);
	assert_memory_equal(good, "SAMENBDL", 8);
	assert_int_equal(good[8], 1);

	assert_int_equal(tu_write_file(f->path, "", 0), 0);
	expect_refused(f, f->c, f->path, "not a Samen bundle");
	good[0] = 'X';
	assert_int_equal(tu_write_file(f->path, good, len), 0);
	expect_refused(f, f->c, f->path, "not a Samen bundle");
	good[0] = 'S';
	/* a git bundle, say */
	assert_int_equal(tu_write_file(f->path, "# v2 git bundle\n", 16), 0);
	expect_refused(f, f->c, f->path, "not a Samen bundle");
	good[8] = 2;
	assert_int_equal(tu_write_file(f->path, good, len), 0);
	expect_refused(f, f->c, f->path, "version 2");
	good[8] = 0;
	assert_int_equal(tu_write_file(f->path, good, len), 0);
	expect_refused(f, f->c, f->path, "version 0");
	/* the same into a store that has the plan: untouched */
	assert_int_equal(import(f->b, f->path, &st), SAMEN_EDECODE);
	good[8] = 1;
	assert_int_equal(tu_write_file(f->path, good, len), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	good[8] = 0xff;
	assert_int_equal(tu_write_file(f->path, good, len), 0);
	expect_refused(f, f->b, f->path, "version 255");
	/* a file that does not exist */
	assert_true(import(f->c, "/nonexistent/x.samenbundle", &st) < 0);
	assert_error_has("cannot open");
	free(good);
}

static void test_truncated_bundle_keeps_complete_changes_and_nothing_else(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	char h[65], trunc[4300];
	uint8_t *good;
	size_t len;
	uint64_t last_new = 0, last_existing = 1;
	unsigned seen = 0;

	more_changes_on_a(f);
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(st.changes, 5);
	good = tu_read_file(f->path, &len);
	assert_non_null(good);
	snprintf(trunc, sizeof(trunc), "%s/trunc.samenbundle", f->dir);

	/* B holds the first change only (the plan's genesis) */
	{
		bundle bd;
		record *first;
		bundle_read(f->path, &bd);
		assert_int_equal(bd.n, 5);
		first = &bd.r[0];
		bundle_write(trunc, bd.header, &first, 1, NULL, 0, NULL, 0);
		bundle_free(&bd);
		assert_int_equal(import(f->b, trunc, &st), 0);
		assert_int_equal(st.applied, 1);
		tu_state_hash(f->b, f->plan, h);
		assert_string_equal(h, f->hash[1]);
	}

	for (size_t off = 0; off < len; off++) {
		int rc;
		assert_int_equal(tu_write_file(trunc, good, off), 0);

		/* a store that does not have the plan (C) */
		rc = import(f->c, trunc, &st);
		if (rc >= 0)
			fail_msg("bundle truncated at %zu of %zu bytes was accepted", off, len);
		if (!strstr(samen_error_last(), "truncated") && !(off < HEADER && strstr(samen_error_last(), "not a Samen bundle")))
			fail_msg("truncated at %zu: unclear error \"%s\"", off, samen_error_last());
		assert_true(st.applied <= 5);
		assert_true(st.applied >= last_new); /* more bytes never give fewer changes */
		last_new = st.applied;
		seen |= 1u << st.applied;
		if (st.applied == 0) {
			/* nothing complete arrived: no plan left behind */
			assert_int_equal(plan_count(f->c), 0);
			assert_int_equal(st.cloned, 0);
		} else {
			assert_int_equal(st.cloned, 1);
			assert_int_equal(plan_count(f->c), 1);
			tu_state_hash(f->c, f->plan, h);
			if (strcmp(h, f->hash[st.applied]) != 0)
				fail_msg("truncated at %zu: %llu changes applied but the state is not A's after as many",
				         off, (unsigned long long)st.applied);
			remove_plan(f->c, f->plan);
		}

		/* a store that has the beginning of the plan (B): every state it
		 * passes through is one A passed through, in order */
		rc = import(f->b, trunc, &st);
		assert_true(rc < 0);
		tu_state_hash(f->b, f->plan, h);
		{
			int k = 0;
			for (int i = 1; i <= 5; i++)
				if (strcmp(h, f->hash[i]) == 0)
					k = i;
			if (k == 0)
				fail_msg("truncated at %zu: B's state is none of A's states", off);
			assert_true((uint64_t)k >= last_existing);
			last_existing = (uint64_t)k;
		}
	}
	/* the cuts went through every prefix of the changes, not just none or all */
	for (int k = 0; k < 5; k++)
		if (!(seen & (1u << k)))
			fail_msg("no truncation left exactly %d complete changes", k);
	/* the whole file completes both */
	assert_int_equal(import(f->b, f->path, &st), 0);
	tu_state_hash(f->b, f->plan, h);
	assert_string_equal(h, f->hash[5]);
	free(good);
}

static void test_garbage_after_the_header_is_refused(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	uint8_t *good, *bad;
	size_t len;
	uint32_t x = 12345;
	char hb[65];

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	tu_state_hash(f->b, f->plan, hb);
	good = tu_read_file(f->path, &len);
	assert_non_null(good);
	bad = malloc(HEADER + 4096);
	assert_non_null(bad);
	memcpy(bad, good, HEADER);
	for (int round = 0; round < 40; round++) {
		size_t n = 1 + (size_t)(round * 97) % 4096;
		for (size_t i = 0; i < n; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			bad[HEADER + i] = (uint8_t)x;
		}
		assert_int_equal(tu_write_file(f->path, bad, HEADER + n), 0);
		/* new to C: no plan left; known to B: unchanged */
		expect_refused(f, f->c, f->path, "damaged|truncated|record|after its end");
		expect_refused(f, f->b, f->path, "damaged|truncated|record|after its end");
		tu_state_hash(f->b, f->plan, hb);
		assert_string_equal(hb, f->hash[3]);
	}
	/* the compressed stream valid, what it holds garbage */
	{
		uint8_t junk[300];
		for (size_t i = 0; i < sizeof(junk); i++)
			junk[i] = (uint8_t)(i * 37 + 11);
		junk[0] = 0x90; /* a record of 16 bytes of nonsense */
		junk[1] = 0x00;
		write_raw_bundle(f->path, good, junk, sizeof(junk), NULL, 0);
		expect_refused(f, f->c, f->path, "record 1");
		expect_refused(f, f->b, f->path, "record 1");
	}
	free(bad);
	free(good);
}

static void test_record_length_beyond_the_cap_is_refused_before_reading_it(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	uint8_t header[HEADER], body[64];
	size_t n;

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	{
		uint8_t *good;
		size_t len;
		good = tu_read_file(f->path, &len);
		assert_non_null(good);
		memcpy(header, good, HEADER);
		free(good);
	}
	/* 4 MiB + 1, with a few bytes behind it */
	n = put_varint(body, (4u << 20) + 1);
	memset(body + n, 0xab, 16);
	write_raw_bundle(f->path, header, body, n + 16, NULL, 0);
	expect_refused(f, f->c, f->path, "cap");
	expect_refused(f, f->c, f->path, "record 1");
	/* 2^34: the largest a reader might accept as a varint */
	n = put_varint(body, (uint64_t)1 << 34);
	write_raw_bundle(f->path, header, body, n, NULL, 0);
	expect_refused(f, f->c, f->path, "cap");
	/* a varint that never ends */
	memset(body, 0xff, 12);
	write_raw_bundle(f->path, header, body, 12, NULL, 0);
	expect_refused(f, f->c, f->path, "varint");
	/* a length exactly at the cap, then the data ends */
	n = put_varint(body, 4u << 20);
	write_raw_bundle(f->path, header, body, n, NULL, 0);
	expect_refused(f, f->c, f->path, "truncated");
	/* after good records, into a store that has the plan */
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	{
		bundle bd;
		uint8_t *raw;
		size_t rl = 0;
		bundle_read(f->path, &bd);
		raw = malloc(8192);
		assert_non_null(raw);
		for (size_t i = 0; i < bd.n; i++) {
			rl += put_varint(raw + rl, bd.r[i].len);
			memcpy(raw + rl, bd.r[i].bytes, bd.r[i].len);
			rl += bd.r[i].len;
			memcpy(raw + rl, bd.r[i].sig, 64);
			rl += 64;
		}
		rl += put_varint(raw + rl, (uint64_t)5 << 20);
		write_raw_bundle(f->path, bd.header, raw, rl, NULL, 0);
		expect_refused(f, f->b, f->path, "record 4 claims 5242880 bytes");
		free(raw);
		bundle_free(&bd);
	}
}

/* A's plan with five changes, its bundle read back record by record. */
static void five_records(fixture *f, bundle *bd, record *recs[5])
{
	samen_bundle_stats st;
	more_changes_on_a(f);
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	bundle_read(f->path, bd);
	assert_int_equal(bd->n, 5);
	for (size_t i = 0; i < 5; i++)
		recs[i] = &bd->r[i];
}

static void test_record_with_bad_signature_stops_the_import_there(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	bundle bd;
	record *recs[5];
	char h[65];
	int rc;

	five_records(f, &bd, recs);
	bd.r[2].sig[40] ^= 0x04;
	bundle_write(f->path, bd.header, recs, 5, NULL, 0, NULL, 0);

	rc = import(f->c, f->path, &st);
	assert_int_equal(rc, SAMEN_ESIG);
	assert_error_has("record 3");
	assert_error_has("signature");
	assert_error_has("2 changes before it were verified and imported, nothing after it");
	assert_int_equal(st.applied, 2);
	assert_int_equal(st.cloned, 1);
	tu_state_hash(f->c, f->plan, h);
	assert_string_equal(h, f->hash[2]); /* records 1 and 2, not 4 and 5 */

	/* the same change bytes with one bit flipped instead */
	bd.r[2].sig[40] ^= 0x04;
	bd.r[2].bytes[bd.r[2].len - 1] ^= 0x01;
	bundle_write(f->path, bd.header, recs, 5, NULL, 0, NULL, 0);
	rc = import(f->c, f->path, &st);
	assert_true(rc == SAMEN_ESIG || rc == SAMEN_EDECODE);
	assert_error_has("record 3");
	assert_int_equal(st.applied, 0);
	assert_int_equal(st.duplicates, 2);
	tu_state_hash(f->c, f->plan, h);
	assert_string_equal(h, f->hash[2]);
	bd.r[2].bytes[bd.r[2].len - 1] ^= 0x01;

	/* the good bundle brings the rest */
	bundle_write(f->path, bd.header, recs, 5, NULL, 0, NULL, 0);
	assert_int_equal(import(f->c, f->path, &st), 0);
	assert_int_equal(st.applied, 3);
	tu_state_hash(f->c, f->plan, h);
	assert_string_equal(h, f->hash[5]);

	/* a bad first record of a new plan: nothing stored, no plan left */
	bd.r[0].sig[0] ^= 0x80;
	bundle_write(f->path, bd.header, recs, 5, NULL, 0, NULL, 0);
	expect_refused(f, f->b, f->path, "record 1");
	assert_int_equal(plan_count(f->b), 0);
	bundle_free(&bd);
}

static void test_data_after_the_end_record_is_refused(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	bundle bd;
	record *recs[3];
	char h[65];
	static const uint8_t zero[1] = {0}, more[] = "and then some";
	uint8_t *good;
	size_t len;

	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	good = tu_read_file(f->path, &len);
	assert_non_null(good);
	bundle_read(f->path, &bd);
	for (size_t i = 0; i < 3; i++)
		recs[i] = &bd.r[i];
	/* control: the same records written by hand import fine */
	bundle_write(f->path, bd.header, recs, 3, NULL, 0, NULL, 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.applied, 3);
	remove_plan(f->b, f->plan);

	/* inside the compressed stream: one more byte, or a whole record */
	bundle_write(f->path, bd.header, recs, 3, zero, 1, NULL, 0);
	assert_true(import(f->b, f->path, &st) < 0);
	assert_error_has("data after its end");
	/* the complete, verified records before it are kept; nothing after */
	assert_int_equal(st.applied, 3);
	tu_state_hash(f->b, f->plan, h);
	assert_string_equal(h, f->hash[3]);
	{
		uint8_t extra[2048];
		size_t n = put_varint(extra, bd.r[2].len);
		memcpy(extra + n, bd.r[2].bytes, bd.r[2].len);
		memcpy(extra + n + bd.r[2].len, bd.r[2].sig, 64);
		n += bd.r[2].len + 64;
		bundle_write(f->path, bd.header, recs, 2, extra, n, NULL, 0);
		assert_true(import(f->c, f->path, &st) < 0);
		assert_error_has("data after its end");
		assert_int_equal(st.applied, 2);
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[2]);
	}
	/* after the compressed stream, in the file */
	{
		uint8_t *longer = malloc(len + sizeof(more));
		assert_non_null(longer);
		memcpy(longer, good, len);
		memcpy(longer + len, more, sizeof(more));
		assert_int_equal(tu_write_file(f->path, longer, len + sizeof(more)), 0);
		assert_true(import(f->c, f->path, &st) < 0);
		assert_error_has("data after its end");
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[3]);
		longer[len] = 0;
		assert_int_equal(tu_write_file(f->path, longer, len + 1), 0);
		expect_refused(f, f->b, f->path, "data after its end");
		free(longer);
	}
	bundle_free(&bd);
	free(good);
}

static void test_records_of_another_plan_are_refused_but_its_own_bundle_clones_it(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	samen_plan *p;
	char other[33], h[65], ho[65], op[4300];
	bundle mine, theirs;
	record *recs[4];

	/* Carla keeps a plan of her own */
	assert_int_equal(samen_plan_create(&p, f->c, "Piet Bakker", "en"), 0);
	snprintf(other, sizeof(other), "%s", samen_plan_id(p));
	samen_plan_free(p);
	tu_state_hash(f->c, other, ho);
	snprintf(op, sizeof(op), "%s/other.samenbundle", f->dir);
	assert_int_equal(bundle_create(f->c, other, op, NULL, &st), 0);
	assert_string_equal(st.plan, other);

	/* imported into B, which has no such plan: a clone, fine */
	assert_int_equal(import(f->b, op, &st), 0);
	assert_int_equal(st.cloned, 1);
	assert_string_equal(st.plan, other);
	tu_state_hash(f->b, other, h);
	assert_string_equal(h, ho);

	/* a record of Carla's plan inside a bundle of A's plan */
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	bundle_read(f->path, &mine);
	bundle_read(op, &theirs);
	assert_int_equal(theirs.n, 1);
	recs[0] = &mine.r[0];
	recs[1] = &mine.r[1];
	recs[2] = &theirs.r[0];
	recs[3] = &mine.r[2];
	bundle_write(f->path, mine.header, recs, 4, NULL, 0, NULL, 0);
	assert_true(import(f->b, f->path, &st) < 0);
	assert_error_has("belongs to plan");
	assert_error_has("record 3");
	assert_error_has(other);
	assert_error_has(f->plan);
	assert_int_equal(st.applied, 2);
	tu_state_hash(f->b, f->plan, h);
	assert_string_equal(h, f->hash[2]);
	/* Carla's plan on B is untouched by it */
	tu_state_hash(f->b, other, h);
	assert_string_equal(h, ho);

	/* a bundle whose header names Carla's plan but holds A's changes */
	recs[0] = &mine.r[0];
	bundle_write(f->path, theirs.header, recs, 1, NULL, 0, NULL, 0);
	expect_refused(f, f->b, f->path, "belongs to plan");
	tu_state_hash(f->b, other, h);
	assert_string_equal(h, ho);
	bundle_free(&mine);
	bundle_free(&theirs);
}

/* ---- a device that is not a member ---------------------------------------------------- */

typedef struct {
	const char *device;
	int found, accepted;
	char reason[512];
	int total;
} log_probe;

static int probe_log(const samen_log_entry *e, void *payload)
{
	log_probe *lp = payload;
	lp->total++;
	if (strcmp(e->device, lp->device) == 0) {
		lp->found++;
		lp->accepted = e->accepted;
		snprintf(lp->reason, sizeof(lp->reason), "%s", e->reason ? e->reason : "");
	}
	return 0;
}

/* ---- several files as one stream ----------------------------------------------- */

static int import_files(samen_store *s, const char *const *paths, size_t n, samen_bundle_stats *st)
{
	samen_error_clear();
	return samen_bundle_import_files(s, paths, n, st);
}

static void test_several_bundles_import_as_one_stream_in_any_order(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	bundle bd;
	record *recs[5];
	char first[4300], second[4300], junk[4300], other[4300], missing[4300], h[65];
	int rc;

	five_records(f, &bd, recs);
	snprintf(first, sizeof(first), "%s.1", f->path);
	snprintf(second, sizeof(second), "%s.2", f->path);
	snprintf(junk, sizeof(junk), "%s.junk", f->path);
	snprintf(other, sizeof(other), "%s.other", f->path);
	snprintf(missing, sizeof(missing), "%s.missing", f->path);
	bundle_write(first, bd.header, recs, 3, NULL, 0, NULL, 0);
	bundle_write(second, bd.header, recs + 3, 2, NULL, 0, NULL, 0);

	/* the later changes first: inside one import they wait for the
	 * earlier file, and nothing is left pending */
	{
		const char *paths[] = {second, first};
		assert_int_equal(import_files(f->c, paths, 2, &st), 0);
		assert_int_equal(st.cloned, 1);
		assert_int_equal(st.changes, 5);
		assert_int_equal(st.applied, 5);
		assert_int_equal(st.pending, 0);
		assert_string_equal(st.plan, f->plan);
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[5]);
	}
	/* again: all duplicates, nothing changes */
	{
		const char *paths[] = {first, second};
		assert_int_equal(import_files(f->c, paths, 2, &st), 0);
		assert_int_equal(st.applied, 0);
		assert_int_equal(st.duplicates, 5);
	}
	remove_plan(f->c, f->plan);

	/* a file that is not a bundle, one that does not exist, and one of
	 * another plan do not stop the good files around them */
	{
		FILE *fp = fopen(junk, "wb");
		uint8_t hdr[HEADER];
		assert_non_null(fp);
		fputs("not a bundle at all, just some text", fp);
		fclose(fp);
		memcpy(hdr, bd.header, HEADER);
		hdr[9] ^= 0xff; /* the plan id */
		bundle_write(other, hdr, recs, 3, NULL, 0, NULL, 0);
		const char *paths[] = {first, junk, missing, other, second};
		rc = import_files(f->c, paths, 5, &st);
		assert_int_equal(rc, SAMEN_EDECODE);
		assert_error_has(".junk is not a Samen bundle");
		assert_error_has("and 2 more errors");
		assert_int_equal(st.applied, 5);
		assert_int_equal(st.cloned, 1);
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[5]);
		/* the other plan's file alone names the plan it belongs to */
		const char *mixed[] = {first, other};
		remove_plan(f->c, f->plan);
		rc = import_files(f->c, mixed, 2, &st);
		assert_int_equal(rc, SAMEN_EINVAL);
		assert_error_has("belongs to plan");
		assert_error_has("import one plan's bundles at a time");
		assert_int_equal(st.applied, 3);
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[3]);
	}
	remove_plan(f->c, f->plan);

	/* a bad signature drops the rest of its own file only: the file after
	 * it still applies (its changes wait for the dropped ones) */
	{
		char third[4300];
		snprintf(third, sizeof(third), "%s.3", f->path);
		bd.r[3].sig[7] ^= 0x10;
		bundle_write(second, bd.header, recs + 3, 1, NULL, 0, NULL, 0);
		bd.r[3].sig[7] ^= 0x10;
		bundle_write(third, bd.header, recs + 4, 1, NULL, 0, NULL, 0);
		const char *paths[] = {first, second, third};
		rc = import_files(f->c, paths, 3, &st);
		assert_int_equal(rc, SAMEN_ESIG);
		assert_error_has(".2: record 1");
		assert_error_has("0 changes before it were verified and imported");
		assert_int_equal(st.applied, 3);
		assert_int_equal(st.pending, 1); /* record 5 waits for record 4 */
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[3]);
		/* the good copy of record 4 brings the waiting one in */
		bundle_write(second, bd.header, recs + 3, 1, NULL, 0, NULL, 0);
		assert_int_equal(import(f->c, second, &st), 0);
		assert_int_equal(st.applied, 2);
		assert_int_equal(st.pending, 0);
		tu_state_hash(f->c, f->plan, h);
		assert_string_equal(h, f->hash[5]);
		unlink(third);
	}
	/* no file at all is a usage error */
	assert_int_equal(import_files(f->c, NULL, 0, &st), SAMEN_EINVAL);
	unlink(first);
	unlink(second);
	unlink(junk);
	unlink(other);
	bundle_free(&bd);
}

static void test_change_by_a_non_member_is_kept_but_rejected(void **state)
{
	fixture *f = *state;
	samen_bundle_stats st;
	char title[512], ha[65], *vv;
	log_probe lp;
	samen_plan *p;
	int rc;

	/* Carla gets the plan but is never added */
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->c, f->path, &st), 0);
	samen_error_clear();
	rc = set_field(f->c, f->plan, f->goal, "title", "Verhuizen naar Spanje");
	assert_true(rc < 0);
	assert_error_has("stored but rejected");
	assert_error_has("not a member");
	goal_field(f->c, f->plan, f->goal, "title", title, sizeof(title));
	assert_string_equal(title, "Zelfstandig wonen");

	/* her change travels to A anyway */
	vv = version_vector(f->a, f->plan);
	assert_int_equal(bundle_create(f->c, f->plan, f->path, vv, &st), 0);
	free(vv);
	assert_int_equal(st.changes, 1);
	tu_state_hash(f->a, f->plan, ha);
	assert_int_equal(import(f->a, f->path, &st), 0);
	assert_int_equal(st.applied, 1);
	assert_int_equal(st.rejected, 1);

	/* A keeps it, as evidence, marked rejected with the reason */
	p = tu_open_plan(f->a, f->plan);
	memset(&lp, 0, sizeof(lp));
	lp.device = samen_store_device_key(f->c);
	assert_int_equal(samen_log(p, NULL, probe_log, &lp), 0);
	assert_int_equal(lp.total, 4);
	assert_int_equal(lp.found, 1);
	assert_int_equal(lp.accepted, 0);
	assert_non_null(strstr(lp.reason, "not a member"));
	samen_plan_free(p);
	goal_field(f->a, f->plan, f->goal, "title", title, sizeof(title));
	assert_string_equal(title, "Zelfstandig wonen");
	{
		value_rows blame;
		p = tu_open_plan(f->a, f->plan);
		memset(&blame, 0, sizeof(blame));
		assert_int_equal(samen_blame(p, f->goal, collect_value, &blame), 0);
		samen_plan_free(p);
		assert_null(find_row(&blame, "title", "Verhuizen naar Spanje"));
	}
	/* and B, receiving everything from A, comes to the same verdict */
	assert_int_equal(bundle_create(f->a, f->plan, f->path, NULL, &st), 0);
	assert_int_equal(import(f->b, f->path, &st), 0);
	assert_int_equal(st.applied, 4);
	assert_int_equal(st.rejected, 1);
	{
		char hb[65];
		tu_state_hash(f->a, f->plan, ha);
		tu_state_hash(f->b, f->plan, hb);
		assert_string_equal(ha, hb);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_bundle_clones_the_plan_on_another_device, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_edits_exchanged_both_ways_converge_with_one_conflict, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_since_writes_only_what_the_receiver_lacks_and_reimport_is_idempotent,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_empty_file_wrong_magic_and_wrong_version_are_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncated_bundle_keeps_complete_changes_and_nothing_else, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_garbage_after_the_header_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_record_length_beyond_the_cap_is_refused_before_reading_it, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_record_with_bad_signature_stops_the_import_there, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_after_the_end_record_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_records_of_another_plan_are_refused_but_its_own_bundle_clones_it,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_change_by_a_non_member_is_kept_but_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(test_several_bundles_import_as_one_stream_in_any_order, setup, teardown),
	};
	int failed;
	/* Keep libgit2 initialised for the whole run: the engine initialises it
	 * per history and shuts it down again when the last one closes, and
	 * every re-initialisation loads the system's CA certificates (~tens of
	 * ms), which the hundreds of imports below would otherwise pay each. */
	git_libgit2_init();
	/* Hundreds of imports each fsync a new repository and database; on a
	 * disk that alone takes minutes. Durability is not under test here, so
	 * use memory-backed storage when there is some and no TMPDIR was set. */
	if ((!getenv("TMPDIR") || !*getenv("TMPDIR")) && access("/dev/shm", W_OK | X_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	failed = cmocka_run_group_tests(tests, NULL, NULL);
	git_libgit2_shutdown();
	return failed;
}
