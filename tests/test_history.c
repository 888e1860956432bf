/*
 * test_history.c - sync/history.c against real bare repositories on disk,
 * checked with libgit2 and with the stock git command.
 */
#include "testutil.h"

#include "samen/common.h"
#include "sync/history.h"
#include "sync/sha1.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <git2/sys/commit.h>

/* ---- fixtures and helpers -------------------------------------------- */

typedef struct {
	char *dir;          /* temporary directory, removed in teardown */
	char repo[4096];    /* dir/repo.git */
	samen_history *h;   /* open on repo */
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	f->dir = tu_mkdtemp("history");
	assert_non_null(f->dir);
	snprintf(f->repo, sizeof(f->repo), "%s/repo.git", f->dir);
	assert_int_equal(history_open(&f->h, f->repo, 1), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;

	history_free(f->h);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* One change's arguments, with storage for everything history_entry
 * points at. */
typedef struct {
	uint8_t change[4096];
	uint8_t sig[64];
	git_oid parents[4];
	history_entry e;
} sample;

static uint32_t xorshift(uint32_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 17;
	*s ^= *s << 5;
	return *s;
}

/* A change of len bytes derived from seed: a readable prefix followed by
 * pseudo-random bytes (like the keys and signatures inside real changes,
 * and the worst case for compression). */
static void make_sample(sample *s, uint32_t seed, size_t len, const git_oid *parents,
                        size_t nparents, int64_t time)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;
	int n;

	assert_true(len <= sizeof(s->change));
	assert_true(nparents <= 4);
	memset(s, 0, sizeof(*s));
	n = snprintf((char *)s->change, sizeof(s->change), "samen change #%u; ", seed);
	for (i = (size_t)n < len ? (size_t)n : len; i < len; i++)
		s->change[i] = (uint8_t)xorshift(&x);
	for (i = 0; i < 64; i++)
		s->sig[i] = (uint8_t)xorshift(&x);
	for (i = 0; i < nparents; i++)
		s->parents[i] = parents[i];
	s->e.change = s->change;
	s->e.change_len = len;
	s->e.sig = s->sig;
	s->e.parents = s->parents;
	s->e.nparents = nparents;
	s->e.author_name = "Ann Example";
	s->e.author_email = "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0";
	s->e.time = time;
	s->e.message = "samen change\n";
}

static void make_key(uint8_t key[32], uint8_t seed)
{
	size_t i;
	for (i = 0; i < 32; i++)
		key[i] = (uint8_t)(seed * 31 + i * 7);
}

static void fake_oid(git_oid *id, uint8_t seed)
{
	unsigned char raw[GIT_OID_RAWSZ];
	size_t i;
	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (uint8_t)(seed + i);
	git_oid_fromraw(id, raw);
}

static void write_sample(samen_history *h, git_oid *out, uint32_t seed, size_t len,
                         const git_oid *parents, size_t nparents)
{
	sample s;
	make_sample(&s, seed, len, parents, nparents, 1700000000 + (int64_t)seed);
	assert_int_equal(history_write_change(h, out, &s.e), 0);
}

/* Number of loose objects (files in objects/xx/). */
static int count_loose(const char *repo)
{
	char objects[4200], sub[4200 + 260];
	DIR *d, *sd;
	struct dirent *ent, *obj;
	int n = 0;

	snprintf(objects, sizeof(objects), "%s/objects", repo);
	d = opendir(objects);
	assert_non_null(d);
	while ((ent = readdir(d)) != NULL) {
		if (strlen(ent->d_name) != 2 || !strchr("0123456789abcdef", ent->d_name[0]) ||
		    !strchr("0123456789abcdef", ent->d_name[1]))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", objects, ent->d_name);
		if ((sd = opendir(sub)) == NULL)
			continue;
		while ((obj = readdir(sd)) != NULL)
			if (strlen(obj->d_name) == 38)
				n++;
		closedir(sd);
	}
	closedir(d);
	return n;
}

/* Number of files in objects/pack ending in suffix. */
static int count_pack_files(const char *repo, const char *suffix)
{
	char packdir[4200];
	DIR *d;
	struct dirent *ent;
	int n = 0;

	snprintf(packdir, sizeof(packdir), "%s/objects/pack", repo);
	if ((d = opendir(packdir)) == NULL)
		return 0;
	while ((ent = readdir(d)) != NULL) {
		size_t l = strlen(ent->d_name), m = strlen(suffix);
		if (l > m && strcmp(ent->d_name + l - m, suffix) == 0)
			n++;
	}
	closedir(d);
	return n;
}

/* Run a shell command; returns its exit status and its output in out. */
static int run(char *out, size_t outsz, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	FILE *p;
	size_t n = 0;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (out && outsz) {
		n = fread(out, 1, outsz - 1, p);
		out[n] = '\0';
	} else {
		char sink[4096];
		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void assert_fsck_ok(const char *repo)
{
	char out[16384];
	int rc = run(out, sizeof(out), "git --git-dir='%s' fsck --strict 2>&1", repo);
	if (rc != 0)
		print_error("git fsck --strict failed (%d):\n%s\n", rc, out);
	assert_int_equal(rc, 0);
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void assert_error_mentions(const char *what)
{
	if (!strstr(samen_error_last(), what))
		print_error("error \"%s\" does not mention \"%s\"\n", samen_error_last(), what);
	assert_non_null(strstr(samen_error_last(), what));
}

/* ---- determinism ----------------------------------------------------- */

/* The tree and commit bytes of a change built by hand from git's object
 * format, independent of any repository; returns the commit's length. */
static size_t expected_objects(unsigned char tree[128], size_t *tree_len, char commit[2048],
                               const sample *s, const char *name, const char *email,
                               long long time)
{
	git_oid change_id, sig_id, tree_id;
	char hex[GIT_OID_HEXSZ + 1];
	size_t tl = 0, cl = 0, i;

	assert_int_equal(git_odb_hash(&change_id, s->change, s->e.change_len, GIT_OBJECT_BLOB), 0);
	assert_int_equal(git_odb_hash(&sig_id, s->sig, 64, GIT_OBJECT_BLOB), 0);
	memcpy(tree + tl, "100644 change", 14);
	tl += 14;
	memcpy(tree + tl, change_id.id, GIT_OID_RAWSZ);
	tl += GIT_OID_RAWSZ;
	memcpy(tree + tl, "100644 sig", 11);
	tl += 11;
	memcpy(tree + tl, sig_id.id, GIT_OID_RAWSZ);
	tl += GIT_OID_RAWSZ;
	assert_int_equal(git_odb_hash(&tree_id, tree, tl, GIT_OBJECT_TREE), 0);
	*tree_len = tl;

	git_oid_tostr(hex, sizeof(hex), &tree_id);
	cl += (size_t)snprintf(commit + cl, 2048 - cl, "tree %s\n", hex);
	for (i = 0; i < s->e.nparents; i++) {
		git_oid_tostr(hex, sizeof(hex), &s->parents[i]);
		cl += (size_t)snprintf(commit + cl, 2048 - cl, "parent %s\n", hex);
	}
	cl += (size_t)snprintf(commit + cl, 2048 - cl,
	                       "author %s <%s> %lld +0000\ncommitter %s <%s> %lld +0000\n\n%s",
	                       name, email, time, name, email, time, s->e.message);
	assert_true(cl < 2048);
	return cl;
}

/* The commit id computed by hand from git's object format, independent of
 * any repository. */
static void expected_commit_id(git_oid *out, const sample *s, const char *name,
                               const char *email, long long time)
{
	unsigned char tree[128];
	char commit[2048];
	size_t tl, cl = expected_objects(tree, &tl, commit, s, name, email, time);

	assert_int_equal(git_odb_hash(out, commit, cl, GIT_OBJECT_COMMIT), 0);
}

/* The object id in repo has exactly these bytes and this type. */
static void assert_object_bytes(git_repository *repo, const git_oid *id, git_object_t type,
                                const void *want, size_t len)
{
	git_odb *odb = NULL;
	git_odb_object *obj = NULL;

	assert_int_equal(git_repository_odb(&odb, repo), 0);
	assert_int_equal(git_odb_read(&obj, odb, id), 0);
	assert_int_equal(git_odb_object_type(obj), type);
	assert_int_equal(git_odb_object_size(obj), len);
	assert_memory_equal(git_odb_object_data(obj), want, len);
	git_odb_object_free(obj);
	git_odb_free(odb);
}

/* The commit and tree of commit in repo are byte for byte those built by
 * hand for s. */
static void assert_commit_bytes(git_repository *repo, const git_oid *commit, const sample *s,
                                const char *name, const char *email, long long time)
{
	unsigned char tree[128];
	char text[2048];
	size_t tl, cl = expected_objects(tree, &tl, text, s, name, email, time);
	git_oid tree_id;

	assert_object_bytes(repo, commit, GIT_OBJECT_COMMIT, text, cl);
	assert_int_equal(git_odb_hash(&tree_id, tree, tl, GIT_OBJECT_TREE), 0);
	assert_object_bytes(repo, &tree_id, GIT_OBJECT_TREE, tree, tl);
}

static void same_change_gives_same_commit_id_in_separate_repositories(void **state)
{
	fixture *f = *state;
	char other[4200], batched[4200];
	samen_history *b = NULL, *c = NULL;
	git_oid parents[2], ida, idb, idc, want;
	sample s;

	snprintf(other, sizeof(other), "%s/other.git", f->dir);
	snprintf(batched, sizeof(batched), "%s/batched.git", f->dir);
	assert_int_equal(history_open(&b, other, 1), 0);
	assert_int_equal(history_open(&c, batched, 1), 0);

	/* Two parents (prev and a dep), written the same way everywhere. */
	write_sample(f->h, &parents[0], 1, 10, NULL, 0);
	write_sample(f->h, &parents[1], 2, 10, NULL, 0);
	write_sample(b, &ida, 1, 10, NULL, 0);
	assert_true(git_oid_equal(&ida, &parents[0]));
	write_sample(b, &ida, 2, 10, NULL, 0);
	assert_true(git_oid_equal(&ida, &parents[1]));
	make_sample(&s, 42, 3500, parents, 2, 1700000000);

	assert_int_equal(history_write_change(f->h, &ida, &s.e), 0);
	assert_int_equal(history_write_change(b, &idb, &s.e), 0);
	assert_int_equal(history_batch_begin(c), 0);
	write_sample(c, &idc, 1, 10, NULL, 0);
	write_sample(c, &idc, 2, 10, NULL, 0);
	assert_int_equal(history_write_change(c, &idc, &s.e), 0);
	assert_int_equal(history_batch_commit(c), 0);

	assert_true(git_oid_equal(&ida, &idb));
	assert_true(git_oid_equal(&ida, &idc));
	/* Writing it again into the same repository changes nothing, in a
	 * batch too: its commit is on disk, so the batch writes no pack. */
	assert_int_equal(history_write_change(f->h, &idb, &s.e), 0);
	assert_true(git_oid_equal(&ida, &idb));
	assert_int_equal(history_batch_begin(f->h), 0);
	assert_int_equal(history_write_change(f->h, &idb, &s.e), 0);
	assert_true(git_oid_equal(&ida, &idb));
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);

	/* And it is exactly the canonical git commit of those arguments, byte
	 * for byte, whether written loose or through a batch pack. */
	expected_commit_id(&want, &s, "Ann Example", "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0", 1700000000);
	assert_true(git_oid_equal(&ida, &want));
	assert_commit_bytes(history_repo(f->h), &ida, &s, "Ann Example",
	                    "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0", 1700000000);
	assert_commit_bytes(history_repo(c), &idc, &s, "Ann Example",
	                    "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0", 1700000000);
	assert_int_equal(count_pack_files(batched, ".pack"), 1);
	assert_int_equal(count_loose(batched), 0);

	/* A change whose parent is unknown here is refused, writing nothing. */
	fake_oid(&parents[1], 2);
	make_sample(&s, 43, 3500, parents, 2, 1700000000);
	assert_int_equal(history_write_change(b, &idb, &s.e), SAMEN_ENOTFOUND);
	assert_error_mentions("parent 1");

	history_free(b);
	history_free(c);
}

/* sync/sha1.c, which signs off every batch pack, against the FIPS 180
 * examples and against libgit2's object ids. */
static void sha1_matches_known_vectors_and_git_odb_hash(void **state)
{
	static const struct {
		const char *in;
		const char *hex;
	} vectors[] = {
		{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		 "84983e441c3bd26ebaae4aa1f95129e5e54670f1"},
	};
	samen_sha1_ctx ctx;
	unsigned char out[SAMEN_SHA1_SIZE], buf[300], as[1000];
	char hex[2 * SAMEN_SHA1_SIZE + 1], header[32];
	uint32_t x = 12345;
	git_oid want;
	size_t i, len;
	(void)state;

	for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		samen_sha1_init(&ctx);
		samen_sha1_update(&ctx, vectors[i].in, strlen(vectors[i].in));
		samen_sha1_final(&ctx, out);
		assert_int_equal(git_oid_fromraw(&want, out), 0);
		git_oid_tostr(hex, sizeof(hex), &want);
		assert_string_equal(hex, vectors[i].hex);
	}
	memset(as, 'a', sizeof(as));
	samen_sha1_init(&ctx);
	for (i = 0; i < 1000; i++)
		samen_sha1_update(&ctx, as, sizeof(as));
	samen_sha1_final(&ctx, out);
	assert_int_equal(git_oid_fromraw(&want, out), 0);
	git_oid_tostr(hex, sizeof(hex), &want);
	assert_string_equal(hex, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

	/* "blob <len>\0" and the bytes, fed in uneven pieces, across every
	 * block boundary of the first few blocks. */
	for (len = 0; len < sizeof(buf); len++) {
		int n = snprintf(header, sizeof(header), "blob %zu", len);

		buf[len ? len - 1 : 0] = (uint8_t)xorshift(&x);
		samen_sha1_init(&ctx);
		samen_sha1_update(&ctx, header, (size_t)n + 1);
		samen_sha1_update(&ctx, buf, len / 3);
		samen_sha1_update(&ctx, buf + len / 3, len - len / 3);
		samen_sha1_final(&ctx, out);
		assert_int_equal(git_odb_hash(&want, buf, len, GIT_OBJECT_BLOB), 0);
		assert_memory_equal(out, want.id, SAMEN_SHA1_SIZE);
	}
}

/* ---- layout and round trip ------------------------------------------- */

static void tree_holds_exactly_change_and_sig_and_read_change_round_trips(void **state)
{
	fixture *f = *state;
	git_repository *repo = history_repo(f->h);
	git_oid root, id, parents[4];
	git_commit *c = NULL;
	git_tree *tree = NULL;
	git_blob *blob = NULL;
	const git_tree_entry *te;
	const git_signature *author, *committer;
	uint8_t *bytes = NULL, sig[64];
	size_t len, np;
	sample s;

	write_sample(f->h, &root, 1, 100, NULL, 0);
	make_sample(&s, 2, 3500, &root, 1, 1712345678);
	assert_int_equal(history_write_change(f->h, &id, &s.e), 0);

	assert_int_equal(git_commit_lookup(&c, repo, &id), 0);
	assert_int_equal(git_commit_tree(&tree, c), 0);
	assert_int_equal(git_tree_entrycount(tree), 2);
	te = git_tree_entry_byindex(tree, 0);
	assert_string_equal(git_tree_entry_name(te), "change");
	assert_int_equal(git_tree_entry_filemode(te), GIT_FILEMODE_BLOB);
	assert_int_equal(git_blob_lookup(&blob, repo, git_tree_entry_id(te)), 0);
	assert_int_equal(git_blob_rawsize(blob), 3500);
	assert_memory_equal(git_blob_rawcontent(blob), s.change, 3500);
	git_blob_free(blob);
	te = git_tree_entry_byindex(tree, 1);
	assert_string_equal(git_tree_entry_name(te), "sig");
	assert_int_equal(git_tree_entry_filemode(te), GIT_FILEMODE_BLOB);
	assert_int_equal(git_blob_lookup(&blob, repo, git_tree_entry_id(te)), 0);
	assert_int_equal(git_blob_rawsize(blob), 64);
	assert_memory_equal(git_blob_rawcontent(blob), s.sig, 64);
	git_blob_free(blob);

	author = git_commit_author(c);
	committer = git_commit_committer(c);
	assert_string_equal(author->name, "Ann Example");
	assert_string_equal(author->email, "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0");
	assert_int_equal(author->when.time, 1712345678);
	assert_int_equal(author->when.offset, 0);
	assert_string_equal(committer->name, author->name);
	assert_string_equal(committer->email, author->email);
	assert_int_equal(committer->when.time, author->when.time);
	assert_string_equal(git_commit_message_raw(c), "samen change\n");
	assert_int_equal(git_commit_parentcount(c), 1);
	assert_true(git_oid_equal(git_commit_parent_id(c, 0), &root));
	git_tree_free(tree);
	git_commit_free(c);

	assert_int_equal(history_read_change(f->h, &id, &bytes, &len, 1 << 20, sig, parents, 4, &np), 0);
	assert_int_equal(len, 3500);
	assert_memory_equal(bytes, s.change, 3500);
	assert_memory_equal(sig, s.sig, 64);
	assert_int_equal(np, 1);
	assert_true(git_oid_equal(&parents[0], &root));
	free(bytes);
	bytes = NULL;

	/* The caps are enforced: exactly max_len is fine, one less is not. */
	assert_int_equal(history_read_change(f->h, &id, &bytes, &len, 3500, sig, parents, 1, &np), 0);
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &id, &bytes, &len, 3499, sig, parents, 1, &np),
	                 SAMEN_ECORRUPT);
	assert_null(bytes);
	assert_int_equal(history_read_change(f->h, &id, &bytes, &len, 3500, sig, parents, 0, &np),
	                 SAMEN_ECORRUPT);
	assert_error_mentions("parents");

	/* A root change has no parents; unknown commits are not found. */
	assert_int_equal(history_read_change(f->h, &root, &bytes, &len, 100, sig, NULL, 0, &np), 0);
	assert_int_equal(np, 0);
	assert_int_equal(len, 100);
	free(bytes);
	bytes = NULL;
	fake_oid(&id, 9);
	assert_int_equal(history_read_change(f->h, &id, &bytes, &len, 100, sig, NULL, 0, &np),
	                 SAMEN_ENOTFOUND);
}

static void author_name_and_email_are_sanitized(void **state)
{
	fixture *f = *state;
	samen_history *b = NULL;
	char other[4200];
	git_commit *c = NULL;
	git_oid id, want, bid;
	sample s;

	make_sample(&s, 3, 50, NULL, 0, 1700000000);
	s.e.author_name = "Eve <evil>\n\rX\x01\x7f Zo\xc3\xab";
	s.e.author_email = "a>b<c\n";
	assert_int_equal(history_write_change(f->h, &id, &s.e), 0);
	assert_int_equal(git_commit_lookup(&c, history_repo(f->h), &id), 0);
	assert_string_equal(git_commit_author(c)->name, "Eve ?evil???X?? Zo\xc3\xab");
	assert_string_equal(git_commit_author(c)->email, "a?b?c?");
	git_commit_free(c);
	expected_commit_id(&want, &s, "Eve ?evil???X?? Zo\xc3\xab", "a?b?c?", 1700000000);
	assert_true(git_oid_equal(&id, &want));
	assert_commit_bytes(history_repo(f->h), &id, &s, "Eve ?evil???X?? Zo\xc3\xab", "a?b?c?",
	                    1700000000);

	/* A batch in another repository sanitizes the same way. */
	snprintf(other, sizeof(other), "%s/other.git", f->dir);
	assert_int_equal(history_open(&b, other, 1), 0);
	assert_int_equal(history_batch_begin(b), 0);
	assert_int_equal(history_write_change(b, &bid, &s.e), 0);
	assert_true(git_oid_equal(&bid, &want));

	s.e.author_name = "";
	assert_int_equal(history_write_change(f->h, &id, &s.e), 0);
	assert_int_equal(git_commit_lookup(&c, history_repo(f->h), &id), 0);
	assert_string_equal(git_commit_author(c)->name, "?");
	git_commit_free(c);
	assert_int_equal(history_write_change(b, &bid, &s.e), 0);
	assert_true(git_oid_equal(&bid, &id));
	assert_int_equal(history_batch_commit(b), 0);
	assert_commit_bytes(history_repo(b), &bid, &s, "?", "a?b?c?", 1700000000);
	history_free(b);

	/* Stock git accepts what the sanitizer produced. */
	assert_int_equal(history_set_device_ref(f->h, (const uint8_t[32]){1}, &id), 0);
	assert_fsck_ok(f->repo);
}

/* ---- device refs ----------------------------------------------------- */

typedef struct {
	int calls;
	int stop_with;
	uint8_t keys[8][32];
	git_oid commits[8];
} visit_log;

static int record_ref(const uint8_t key[32], const git_oid *commit, void *payload)
{
	visit_log *v = payload;
	if (v->calls < 8) {
		memcpy(v->keys[v->calls], key, 32);
		v->commits[v->calls] = *commit;
	}
	v->calls++;
	return v->stop_with;
}

static void assert_ref(samen_history *h, const uint8_t key[32], const git_oid *want)
{
	git_oid got;
	assert_int_equal(history_get_device_ref(h, key, &got), 0);
	assert_true(git_oid_equal(&got, want));
}

static void device_ref_fast_forwards_only_along_the_chain(void **state)
{
	fixture *f = *state;
	uint8_t key[32], key2[32];
	git_oid c1, c2, c3, s1, m, both[2], parents[2], got, blob;
	git_reference *ref = NULL;
	char name[128], hex[65];
	uint8_t *bytes = NULL, sig[64];
	size_t len, np, i;
	visit_log v;

	make_key(key, 1);
	make_key(key2, 2);
	write_sample(f->h, &c1, 10, 200, NULL, 0);
	write_sample(f->h, &c2, 11, 200, &c1, 1);
	write_sample(f->h, &c3, 12, 200, &c2, 1);
	write_sample(f->h, &s1, 13, 200, &c1, 1);
	both[0] = c3;
	both[1] = s1;
	write_sample(f->h, &m, 14, 200, both, 2);

	assert_int_equal(history_get_device_ref(f->h, key, &got), SAMEN_ENOTFOUND);
	assert_int_equal(history_set_device_ref(f->h, key, &c1), 0);
	assert_ref(f->h, key, &c1);
	assert_int_equal(history_set_device_ref(f->h, key, &c2), 0);
	assert_int_equal(history_set_device_ref(f->h, key, &c3), 0);
	assert_ref(f->h, key, &c3);
	assert_int_equal(history_set_device_ref(f->h, key, &c3), 0); /* no-op */
	assert_ref(f->h, key, &c3);

	/* Backwards and sideways are refused and leave the ref alone. */
	assert_int_equal(history_set_device_ref(f->h, key, &c2), SAMEN_ECONFLICT);
	assert_error_mentions("would not fast-forward");
	assert_ref(f->h, key, &c3);
	assert_int_equal(history_set_device_ref(f->h, key, &s1), SAMEN_ECONFLICT);
	assert_ref(f->h, key, &c3);

	/* The merge descends from c3 (first parent) and s1. */
	assert_int_equal(history_set_device_ref(f->h, key, &m), 0);
	assert_ref(f->h, key, &m);
	assert_int_equal(history_read_change(f->h, &m, &bytes, &len, 4096, sig, parents, 2, &np), 0);
	assert_int_equal(np, 2);
	assert_true(git_oid_equal(&parents[0], &c3));
	assert_true(git_oid_equal(&parents[1], &s1));
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &m, &bytes, &len, 4096, sig, parents, 1, &np),
	                 SAMEN_ECORRUPT);

	/* The ref has the documented name. */
	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	snprintf(name, sizeof(name), "refs/samen/devices/%s", hex);
	assert_int_equal(git_reference_lookup(&ref, history_repo(f->h), name), 0);
	assert_true(git_oid_equal(git_reference_target(ref), &m));
	git_reference_free(ref);

	/* Only commits that exist can be targets. */
	fake_oid(&got, 77);
	assert_int_equal(history_set_device_ref(f->h, key2, &got), SAMEN_ENOTFOUND);
	assert_int_equal(git_blob_create_from_buffer(&blob, history_repo(f->h), "x", 1), 0);
	assert_int_equal(history_set_device_ref(f->h, key2, &blob), SAMEN_ENOTFOUND);
	assert_int_equal(history_get_device_ref(f->h, key2, &got), SAMEN_ENOTFOUND);

	/* foreach sees both devices, and stops with the callback's value. */
	assert_int_equal(history_set_device_ref(f->h, key2, &s1), 0);
	memset(&v, 0, sizeof(v));
	assert_int_equal(history_foreach_device_ref(f->h, record_ref, &v), 0);
	assert_int_equal(v.calls, 2);
	for (i = 0; i < 2; i++) {
		if (memcmp(v.keys[i], key, 32) == 0)
			assert_true(git_oid_equal(&v.commits[i], &m));
		else {
			assert_memory_equal(v.keys[i], key2, 32);
			assert_true(git_oid_equal(&v.commits[i], &s1));
		}
	}
	memset(&v, 0, sizeof(v));
	v.stop_with = 7;
	assert_int_equal(history_foreach_device_ref(f->h, record_ref, &v), 7);
	assert_int_equal(v.calls, 1);

	assert_fsck_ok(f->repo);
}

/* ---- batches --------------------------------------------------------- */

static void batch_of_1000_changes_commits_into_one_pack(void **state)
{
	fixture *f = *state;
	enum { N = 1000, LEN = 3500 };
	git_oid *ids = calloc(N, sizeof(*ids));
	git_oid parents[1], extra;
	uint8_t key[32], *bytes = NULL, sig[64];
	double t0, t1, t2;
	size_t len, np;
	sample s;
	int i;

	assert_non_null(ids);
	t0 = now_seconds();
	assert_int_equal(history_batch_begin(f->h), 0);
	for (i = 0; i < N; i++)
		write_sample(f->h, &ids[i], (uint32_t)(1000 + i), LEN, i ? &ids[i - 1] : NULL, i ? 1 : 0);
	t1 = now_seconds();
	assert_int_equal(history_batch_commit(f->h), 0);
	t2 = now_seconds();
	print_message("[ INFO     ] batch of %d changes of %d bytes: writes %.3f s, commit %.3f s, "
	              "total %.3f s\n", N, LEN, t1 - t0, t2 - t1, t2 - t0);
	/* "Well under a second" without sanitizers; generous here so that
	 * ASan/UBSan builds pass too, yet a pathological slowdown fails. */
	assert_true(t2 - t0 < 5.0);

	assert_int_equal(count_loose(f->repo), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(count_pack_files(f->repo, ".idx"), 1);

	/* Everything reads back from the pack through the disk handle. */
	for (i = 0; i < N; i++) {
		assert_int_equal(history_read_change(f->h, &ids[i], &bytes, &len, LEN, sig, parents, 1, &np), 0);
		assert_int_equal(len, LEN);
		assert_int_equal(np, i ? 1 : 0);
		if (i)
			assert_true(git_oid_equal(&parents[0], &ids[i - 1]));
		if (i == N - 1) {
			make_sample(&s, (uint32_t)(1000 + i), LEN, &ids[i - 1], 1, 0);
			assert_memory_equal(bytes, s.change, LEN);
			assert_memory_equal(sig, s.sig, 64);
		}
		free(bytes);
		bytes = NULL;
	}
	make_key(key, 5);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[N - 1]), 0);

	/* After the batch, single writes are loose objects again:
	 * two blobs, a tree and a commit. */
	write_sample(f->h, &extra, 5000, 300, &ids[N - 1], 1);
	assert_int_equal(count_loose(f->repo), 4);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(history_set_device_ref(f->h, key, &extra), 0);

	assert_fsck_ok(f->repo);
	free(ids);
}

static void batch_abort_leaves_nothing_and_empty_batch_writes_no_pack(void **state)
{
	fixture *f = *state;
	git_oid ids[10], single;
	uint8_t key[32], *bytes = NULL, sig[64];
	size_t len, np;
	int i;

	make_key(key, 9);
	assert_int_equal(history_batch_begin(f->h), 0);
	assert_int_equal(history_batch_begin(f->h), SAMEN_EINVAL);
	for (i = 0; i < 10; i++)
		write_sample(f->h, &ids[i], (uint32_t)(200 + i), 1000, i ? &ids[i - 1] : NULL, i ? 1 : 0);
	/* Readable inside the batch, but a ref cannot point at it yet. */
	assert_int_equal(history_read_change(f->h, &ids[9], &bytes, &len, 1000, sig, &single, 1, &np), 0);
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_set_device_ref(f->h, key, &ids[9]), SAMEN_ENOTFOUND);
	assert_int_equal(history_gc(f->h, &(uint64_t){0}), SAMEN_EINVAL);
	history_batch_abort(f->h);

	assert_int_equal(count_loose(f->repo), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);
	assert_int_equal(history_read_change(f->h, &ids[0], &bytes, &len, 1000, sig, NULL, 0, &np),
	                 SAMEN_ENOTFOUND);
	assert_int_equal(history_batch_commit(f->h), SAMEN_EINVAL);

	/* An empty batch commits fine and writes nothing. */
	assert_int_equal(history_batch_begin(f->h), 0);
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);
	assert_int_equal(count_pack_files(f->repo, ".idx"), 0);
	assert_int_equal(count_loose(f->repo), 0);

	/* A single write after all that is loose, and a new batch still works. */
	write_sample(f->h, &single, 300, 100, NULL, 0);
	assert_int_equal(count_loose(f->repo), 4);
	assert_int_equal(history_batch_begin(f->h), 0);
	write_sample(f->h, &ids[0], 301, 100, &single, 1);
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(count_loose(f->repo), 4);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[0]), 0);
	assert_fsck_ok(f->repo);
}

/* Objects in packs, as stock git counts them. */
static int count_packed_objects(const char *repo)
{
	char out[4096], *p;

	assert_int_equal(run(out, sizeof(out), "git --git-dir='%s' count-objects -v", repo), 0);
	p = strstr(out, "in-pack: ");
	assert_non_null(p);
	return atoi(p + 9);
}

static void batch_keeps_each_object_once_and_reads_back_before_commit(void **state)
{
	fixture *f = *state;
	enum { BIG = 3 << 20 }; /* several of the chunks handed to the indexer */
	uint8_t *big = malloc(BIG), *bytes = NULL, sig[64], key[32];
	git_oid root, a, again, b, empty, large, parents[2], got[2];
	uint32_t x = 99;
	size_t len, np, i;
	sample s, t;

	assert_non_null(big);
	for (i = 0; i < BIG; i++)
		big[i] = (uint8_t)xorshift(&x);
	write_sample(f->h, &root, 1, 100, NULL, 0); /* on disk */

	assert_int_equal(history_batch_begin(f->h), 0);
	make_sample(&s, 2, 3500, &root, 1, 1700000000);
	assert_int_equal(history_write_change(f->h, &a, &s.e), 0);
	/* The same change again: same id, nothing new. */
	assert_int_equal(history_write_change(f->h, &again, &s.e), 0);
	assert_true(git_oid_equal(&a, &again));
	/* Same bytes and signature at another time, on top of a: only the
	 * commit is new (blobs and tree are equal). */
	make_sample(&t, 2, 3500, &a, 1, 1700000001);
	assert_int_equal(history_write_change(f->h, &b, &t.e), 0);
	/* No change bytes at all, with both parents in the batch. */
	parents[0] = a;
	parents[1] = b;
	make_sample(&t, 3, 0, parents, 2, 1700000002);
	t.e.change = NULL;
	assert_int_equal(history_write_change(f->h, &empty, &t.e), 0);
	/* A change bigger than a chunk of the pack stream. */
	make_sample(&t, 4, 10, &empty, 1, 1700000003);
	t.e.change = big;
	t.e.change_len = BIG;
	assert_int_equal(history_write_change(f->h, &large, &t.e), 0);

	/* Everything reads back before the commit, parents included... */
	assert_int_equal(history_read_change(f->h, &b, &bytes, &len, 3500, sig, got, 2, &np), 0);
	assert_int_equal(len, 3500);
	assert_memory_equal(bytes, s.change, 3500);
	assert_memory_equal(sig, s.sig, 64);
	assert_int_equal(np, 1);
	assert_true(git_oid_equal(&got[0], &a));
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &empty, &bytes, &len, 10, sig, got, 2, &np), 0);
	assert_int_equal(len, 0);
	assert_int_equal(np, 2);
	assert_true(git_oid_equal(&got[0], &a));
	assert_true(git_oid_equal(&got[1], &b));
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &large, &bytes, &len, BIG, sig, got, 1, &np), 0);
	assert_int_equal(len, BIG);
	assert_memory_equal(bytes, big, BIG);
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &root, &bytes, &len, 100, sig, NULL, 0, &np), 0);
	free(bytes);
	bytes = NULL;
	/* ...but nothing is on disk yet, and no ref can point there. */
	make_key(key, 6);
	assert_int_equal(history_set_device_ref(f->h, key, &large), SAMEN_ENOTFOUND);
	assert_int_equal(count_loose(f->repo), 4);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);

	/* a: 2 blobs, tree, commit; b: its commit; empty and large: 4 each. */
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(count_packed_objects(f->repo), 13);
	assert_int_equal(count_loose(f->repo), 4);

	assert_int_equal(history_read_change(f->h, &large, &bytes, &len, BIG, sig, got, 1, &np), 0);
	assert_int_equal(len, BIG);
	assert_memory_equal(bytes, big, BIG);
	assert_true(git_oid_equal(&got[0], &empty));
	free(bytes);
	bytes = NULL;
	assert_int_equal(history_read_change(f->h, &empty, &bytes, &len, 10, sig, got, 2, &np), 0);
	assert_int_equal(len, 0);
	free(bytes);
	assert_int_equal(history_set_device_ref(f->h, key, &large), 0);
	assert_fsck_ok(f->repo);
	free(big);
}

/* Name of the only pack-*.pack in repo, without ".pack". */
static void only_pack_name(const char *repo, char *out, size_t outsz)
{
	char packdir[4400];
	struct dirent *ent;
	DIR *d;
	int n = 0;

	snprintf(packdir, sizeof(packdir), "%s/objects/pack", repo);
	d = opendir(packdir);
	assert_non_null(d);
	while ((ent = readdir(d)) != NULL) {
		size_t l = strlen(ent->d_name);
		if (l > 5 && strcmp(ent->d_name + l - 5, ".pack") == 0) {
			snprintf(out, outsz, "%.*s", (int)(l - 5), ent->d_name);
			n++;
		}
	}
	closedir(d);
	assert_int_equal(n, 1);
}

static void write_retry_batch(samen_history *h, git_oid ids[5])
{
	git_oid root;
	int i;

	write_sample(h, &root, 1, 100, NULL, 0);
	assert_int_equal(history_batch_begin(h), 0);
	for (i = 0; i < 5; i++)
		write_sample(h, &ids[i], (uint32_t)(50 + i), 2000, i ? &ids[i - 1] : &root, 1);
}

static void failed_batch_commit_keeps_the_batch_for_a_retry(void **state)
{
	fixture *f = *state;
	char other[4200], name[256], blocker[4600], inside[4700];
	samen_history *b = NULL;
	git_oid ids[5], again[5], parent;
	uint8_t *bytes = NULL, sig[64], key[32];
	size_t len, np;

	/* The same objects in the same order make the same pack, so a dry
	 * run elsewhere tells the name the indexer will give it here. */
	snprintf(other, sizeof(other), "%s/other.git", f->dir);
	assert_int_equal(history_open(&b, other, 1), 0);
	write_retry_batch(b, again);
	assert_int_equal(history_batch_commit(b), 0);
	history_free(b);
	only_pack_name(other, name, sizeof(name));

	/* A non-empty directory where the indexer must put the .idx makes
	 * its commit fail after the whole pack was streamed. */
	write_retry_batch(f->h, ids);
	assert_memory_equal(ids, again, sizeof(ids));
	snprintf(blocker, sizeof(blocker), "%s/objects/pack/%s.idx", f->repo, name);
	snprintf(inside, sizeof(inside), "%s/x", blocker);
	assert_int_equal(mkdir(blocker, 0755), 0);
	assert_int_equal(tu_write_file(inside, "x", 1), 0);
	assert_int_equal(history_batch_commit(f->h), SAMEN_EIO);
	assert_error_mentions("batch pack");
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);

	/* The batch is still open, with everything in it. */
	assert_int_equal(history_batch_begin(f->h), SAMEN_EINVAL);
	assert_int_equal(history_read_change(f->h, &ids[4], &bytes, &len, 2000, sig, &parent, 1, &np), 0);
	assert_true(git_oid_equal(&parent, &ids[3]));
	free(bytes);

	assert_int_equal(unlink(inside), 0);
	assert_int_equal(rmdir(blocker), 0);
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(count_packed_objects(f->repo), 20);
	make_key(key, 7);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[4]), 0);
	assert_fsck_ok(f->repo);
}

/* ---- stock git ------------------------------------------------------- */

static void stock_git_fsck_and_log_accept_the_repository(void **state)
{
	fixture *f = *state;
	git_oid a, b, c, m, both[2], batch[20];
	uint8_t key1[32], key2[32];
	char out[65536];
	sample s;
	int i;

	make_key(key1, 1);
	make_key(key2, 2);
	write_sample(f->h, &a, 1, 500, NULL, 0);
	write_sample(f->h, &b, 2, 500, &a, 1);
	make_sample(&s, 3, 500, &a, 1, 1700000003);
	s.e.author_name = "Bob Other";
	assert_int_equal(history_write_change(f->h, &c, &s.e), 0);
	both[0] = b;
	both[1] = c;
	write_sample(f->h, &m, 4, 500, both, 2);
	assert_int_equal(history_batch_begin(f->h), 0);
	for (i = 0; i < 20; i++)
		write_sample(f->h, &batch[i], (uint32_t)(10 + i), 700, i ? &batch[i - 1] : &m, 1);
	assert_int_equal(history_batch_commit(f->h), 0);
	assert_int_equal(history_set_device_ref(f->h, key1, &batch[19]), 0);
	assert_int_equal(history_set_device_ref(f->h, key2, &c), 0);

	assert_fsck_ok(f->repo);
	assert_int_equal(run(out, sizeof(out), "git --git-dir='%s' log --all --format=%%an", f->repo), 0);
	assert_non_null(strstr(out, "Ann Example\n"));
	assert_non_null(strstr(out, "Bob Other\n"));
	assert_int_equal(run(out, sizeof(out), "git --git-dir='%s' rev-list --all --count", f->repo), 0);
	assert_int_equal(atoi(out), 24);
	assert_int_equal(run(out, sizeof(out), "git --git-dir='%s' config --bool core.bare", f->repo), 0);
	assert_string_equal(out, "true\n");
}

/* ---- hostile content ------------------------------------------------- */

typedef struct {
	const char *mode; /* "100644", "40000", ... */
	const char *name;
	const git_oid *id;
} raw_entry;

/* Write a tree object byte by byte, in the given order, so that it can be
 * anything a hostile peer could send. */
static void write_raw_tree(samen_history *h, git_oid *out, const raw_entry *entries, size_t n)
{
	unsigned char buf[1024];
	git_odb *odb = NULL;
	size_t len = 0, i;

	for (i = 0; i < n; i++) {
		int k = snprintf((char *)buf + len, sizeof(buf) - len, "%s %s", entries[i].mode,
		                 entries[i].name);
		len += (size_t)k + 1; /* keep the NUL */
		memcpy(buf + len, entries[i].id->id, GIT_OID_RAWSZ);
		len += GIT_OID_RAWSZ;
	}
	assert_int_equal(git_repository_odb(&odb, history_repo(h)), 0);
	assert_int_equal(git_odb_write(out, odb, buf, len, GIT_OBJECT_TREE), 0);
	git_odb_free(odb);
}

static void write_raw_commit(samen_history *h, git_oid *out, const git_oid *tree)
{
	git_signature who = {"Mallory", "m", {1700000000, 0, '+'}};
	assert_int_equal(git_commit_create_from_ids(out, history_repo(h), NULL, &who, &who, NULL,
	                                            "hostile\n", tree, 0, NULL), 0);
}

/* A loose object file holding only the start of the zlib stream of a blob
 * of `claimed` bytes of 'A': its header is intact, but reading the whole
 * object fails. Only a reader that looks at the header alone can report
 * its size. */
static void write_truncated_loose_blob(const char *repo, size_t claimed, git_oid *id)
{
	unsigned char file[512], *content = malloc(claimed);
	char hex[GIT_OID_HEXSZ + 1], path[4300];
	size_t payload, hl;

	assert_non_null(content);
	memset(content, 'A', claimed);
	assert_int_equal(git_odb_hash(id, content, claimed, GIT_OBJECT_BLOB), 0);
	free(content);

	file[0] = 0x78; /* zlib header, no preset dictionary */
	file[1] = 0x01;
	file[2] = 0x00; /* deflate stored block, not the final one */
	hl = (size_t)snprintf((char *)file + 7, 64, "blob %zu", claimed) + 1;
	payload = hl + 200;
	memset(file + 7 + hl, 'A', 200);
	file[3] = (unsigned char)(payload & 0xff);
	file[4] = (unsigned char)(payload >> 8);
	file[5] = (unsigned char)(~payload & 0xff);
	file[6] = (unsigned char)((~payload >> 8) & 0xff);

	git_oid_tostr(hex, sizeof(hex), id);
	snprintf(path, sizeof(path), "%s/objects/%.2s", repo, hex);
	assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
	snprintf(path, sizeof(path), "%s/objects/%.2s/%s", repo, hex, hex + 2);
	assert_int_equal(tu_write_file(path, file, 7 + payload), 0);
}

static void expect_corrupt(samen_history *h, const git_oid *commit, size_t max_len,
                           const char *mention)
{
	char hex[GIT_OID_HEXSZ + 1];
	uint8_t *bytes = NULL, sig[64];
	size_t len = 99, np = 99;

	assert_int_equal(history_read_change(h, commit, &bytes, &len, max_len, sig, NULL, 0, &np),
	                 SAMEN_ECORRUPT);
	assert_null(bytes);
	assert_int_equal(len, 0);
	git_oid_tostr(hex, sizeof(hex), commit);
	assert_error_mentions(hex);
	assert_error_mentions(mention);
}

static void hostile_repository_content_is_rejected(void **state)
{
	fixture *f = *state;
	git_repository *repo = history_repo(f->h);
	static uint8_t sigbytes[64], big[2 << 20];
	git_oid change, sig, sig63, huge, truncated, extra, tree, commit, subtree, good;
	uint8_t key[32];
	git_reference *ref = NULL;
	char name[160], hex[65];
	visit_log v;
	size_t i;

	assert_int_equal(git_blob_create_from_buffer(&change, repo, "change bytes", 12), 0);
	assert_int_equal(git_blob_create_from_buffer(&sig, repo, sigbytes, 64), 0);
	assert_int_equal(git_blob_create_from_buffer(&sig63, repo, sigbytes, 63), 0);
	assert_int_equal(git_blob_create_from_buffer(&extra, repo, "x", 1), 0);
	assert_int_equal(git_blob_create_from_buffer(&huge, repo, big, sizeof(big)), 0);

	/* Sanity: the well-formed layout written by hand reads fine. */
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change}, {"100644", "sig", &sig}}, 2);
	write_raw_commit(f->h, &good, &tree);
	{
		uint8_t *bytes = NULL, s[64];
		size_t len, np;
		assert_int_equal(history_read_change(f->h, &good, &bytes, &len, 100, s, NULL, 0, &np), 0);
		assert_int_equal(len, 12);
		free(bytes);
	}

	/* An extra entry. */
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change},
	               {"100644", "extra", &extra}, {"100644", "sig", &sig}}, 3);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "3 entries");

	/* No sig at all, and two entries of which none is sig. */
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change}}, 1);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "1 entries");
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change}, {"100644", "sigs", &sig}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "\"sig\"");

	/* A 63-byte signature. */
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change}, {"100644", "sig", &sig63}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "63 bytes");

	/* A 2 MB change blob against a 1 MB cap. */
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &huge}, {"100644", "sig", &sig}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 1 << 20, "2097152 bytes, more than the limit");

	/* Same, but only the object's header is readable: the size must come
	 * from the header, without inflating the blob. */
	write_truncated_loose_blob(f->repo, 2 << 20, &truncated);
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &truncated}, {"100644", "sig", &sig}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 1 << 20, "2097152 bytes, more than the limit");

	/* "change" is a directory, or sig is executable. */
	write_raw_tree(f->h, &subtree, (raw_entry[]){{"100644", "x", &change}}, 1);
	write_raw_tree(f->h, &tree, (raw_entry[]){{"40000", "change", &subtree}, {"100644", "sig", &sig}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "change");
	write_raw_tree(f->h, &tree, (raw_entry[]){{"100644", "change", &change}, {"100755", "sig", &sig}}, 2);
	write_raw_commit(f->h, &commit, &tree);
	expect_corrupt(f->h, &commit, 100, "100755");

	/* Device refs: one good one among names and targets we never write. */
	make_key(key, 3);
	assert_int_equal(history_set_device_ref(f->h, key, &good), 0);
	assert_int_equal(git_reference_create(&ref, repo, "refs/samen/devices/not-a-key", &good, 0, NULL), 0);
	git_reference_free(ref);
	for (i = 0; i < 64; i++)
		hex[i] = "0123456789ABCDEF"[i % 16];
	hex[64] = '\0';
	snprintf(name, sizeof(name), "refs/samen/devices/%s", hex); /* uppercase */
	assert_int_equal(git_reference_create(&ref, repo, name, &good, 0, NULL), 0);
	git_reference_free(ref);
	snprintf(name, sizeof(name), "refs/samen/devices/%.63s", "0123456789abcdef0123456789abcdef"
	         "0123456789abcdef0123456789abcdef"); /* 63 digits */
	assert_int_equal(git_reference_create(&ref, repo, name, &good, 0, NULL), 0);
	git_reference_free(ref);
	snprintf(name, sizeof(name), "refs/samen/devices/%s/%s", "nested",
	         "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_equal(git_reference_create(&ref, repo, name, &good, 0, NULL), 0);
	git_reference_free(ref);
	make_key(key, 4); /* a valid name pointing at a blob */
	for (i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", key[i]);
	snprintf(name, sizeof(name), "refs/samen/devices/%s", hex);
	assert_int_equal(git_reference_create(&ref, repo, name, &extra, 0, NULL), 0);
	git_reference_free(ref);

	memset(&v, 0, sizeof(v));
	assert_int_equal(history_foreach_device_ref(f->h, record_ref, &v), 0);
	assert_int_equal(v.calls, 1);
	make_key(key, 3);
	assert_memory_equal(v.keys[0], key, 32);
	assert_true(git_oid_equal(&v.commits[0], &good));
	make_key(key, 4);
	assert_int_equal(history_get_device_ref(f->h, key, &commit), SAMEN_ECORRUPT);
}

/* ---- gc -------------------------------------------------------------- */

static void gc_leaves_exactly_one_pack_and_fsck_passes(void **state)
{
	fixture *f = *state;
	git_oid ids[120], orphan, got;
	uint8_t key[32], *bytes = NULL, sig[64];
	char pack[4300];
	uint64_t size = 0, size2 = 0;
	struct stat st;
	size_t len, np;
	int i, n = 0;
	DIR *d;
	struct dirent *ent;

	make_key(key, 7);
	for (i = 0; i < 5; i++, n++)
		write_sample(f->h, &ids[n], (uint32_t)(700 + n), 3500, n ? &ids[n - 1] : NULL, n ? 1 : 0);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[n - 1]), 0);
	for (int b = 0; b < 2; b++) {
		assert_int_equal(history_batch_begin(f->h), 0);
		for (i = 0; i < 50; i++, n++)
			write_sample(f->h, &ids[n], (uint32_t)(700 + n), 3500, &ids[n - 1], 1);
		assert_int_equal(history_batch_commit(f->h), 0);
		assert_int_equal(history_set_device_ref(f->h, key, &ids[n - 1]), 0);
	}
	write_sample(f->h, &ids[n], (uint32_t)(700 + n), 3500, &ids[n - 1], 1);
	n++;
	assert_int_equal(history_set_device_ref(f->h, key, &ids[n - 1]), 0);
	write_sample(f->h, &orphan, 999, 3500, NULL, 0); /* no ref points at it */
	assert_int_equal(count_pack_files(f->repo, ".pack"), 2);
	assert_int_equal(count_loose(f->repo), 7 * 4);

	assert_int_equal(history_gc(f->h, &size), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(count_pack_files(f->repo, ".idx"), 1);
	assert_int_equal(count_loose(f->repo), 0);
	assert_true(size > 0);

	/* The size covers at least the pack itself. */
	snprintf(pack, sizeof(pack), "%s/objects/pack", f->repo);
	d = opendir(pack);
	assert_non_null(d);
	while ((ent = readdir(d)) != NULL) {
		if (strstr(ent->d_name, ".pack")) {
			char p[4600];
			snprintf(p, sizeof(p), "%s/%s", pack, ent->d_name);
			assert_int_equal(stat(p, &st), 0);
			assert_true(size >= (uint64_t)st.st_size);
		}
	}
	closedir(d);

	/* Same handle, everything still readable, the orphan too. */
	for (i = 0; i < n; i++) {
		assert_int_equal(history_read_change(f->h, &ids[i], &bytes, &len, 3500, sig, &got, 1, &np), 0);
		free(bytes);
		bytes = NULL;
	}
	assert_int_equal(history_read_change(f->h, &orphan, &bytes, &len, 3500, sig, NULL, 0, &np), 0);
	free(bytes);
	bytes = NULL;
	assert_ref(f->h, key, &ids[n - 1]);
	assert_fsck_ok(f->repo);

	/* Again: idempotent; and writing goes on normally afterwards. */
	assert_int_equal(history_gc(f->h, &size2), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_true(size2 > 0);
	write_sample(f->h, &ids[n], 5555, 100, &ids[n - 1], 1);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[n]), 0);
	assert_int_equal(history_gc(f->h, &size2), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 1);
	assert_int_equal(count_loose(f->repo), 0);
	assert_fsck_ok(f->repo);
}

static void gc_of_an_empty_repository_writes_no_pack(void **state)
{
	fixture *f = *state;
	uint64_t size = 1;

	assert_int_equal(history_gc(f->h, &size), 0);
	assert_int_equal(count_pack_files(f->repo, ".pack"), 0);
	assert_fsck_ok(f->repo);
}

/* ---- times ----------------------------------------------------------- */

static void negative_and_far_future_times_are_stored_validly(void **state)
{
	fixture *f = *state;
	static const struct {
		int64_t given;
		int64_t stored;
	} cases[] = {
		{-86400, 0},                      /* git fsck rejects negative dates */
		{-1, 0},
		{0, 0},
		{4102444800, 4102444800},         /* 2100-01-01 */
		{4294967295, 4294967295},         /* the largest libgit2 1.5 writes */
		{4294967296, 4294967295},
		{INT64_MAX, 4294967295},
	};
	git_oid ids[sizeof(cases) / sizeof(cases[0])], again;
	samen_history *other = NULL, *batched = NULL;
	char path[4200], out[4096], want[64];
	git_commit *c = NULL;
	uint8_t key[32];
	size_t i;
	sample s;

	snprintf(path, sizeof(path), "%s/other.git", f->dir);
	assert_int_equal(history_open(&other, path, 1), 0);
	snprintf(path, sizeof(path), "%s/batched.git", f->dir);
	assert_int_equal(history_open(&batched, path, 1), 0);
	assert_int_equal(history_batch_begin(batched), 0);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		make_sample(&s, (uint32_t)(40 + i), 64, i ? &ids[i - 1] : NULL, i ? 1 : 0, cases[i].given);
		assert_int_equal(history_write_change(f->h, &ids[i], &s.e), 0);
		assert_int_equal(git_commit_lookup(&c, history_repo(f->h), &ids[i]), 0);
		assert_int_equal(git_commit_author(c)->when.time, cases[i].stored);
		assert_int_equal(git_commit_committer(c)->when.time, cases[i].stored);
		git_commit_free(c);
		/* Deterministic across repositories for these times too, and
		 * the same when written through a batch. */
		assert_int_equal(history_write_change(other, &again, &s.e), 0);
		assert_true(git_oid_equal(&ids[i], &again));
		assert_int_equal(history_write_change(batched, &again, &s.e), 0);
		assert_true(git_oid_equal(&ids[i], &again));
		assert_commit_bytes(history_repo(f->h), &ids[i], &s, "Ann Example",
		                    "3f2a9c1e7b5d4a60c8e2f1b3a5d7c9e0", (long long)cases[i].stored);
	}
	history_free(other);
	assert_int_equal(history_batch_commit(batched), 0);
	assert_int_equal(history_set_device_ref(batched, (const uint8_t[32]){8}, &ids[i - 1]), 0);
	snprintf(path, sizeof(path), "%s/batched.git", f->dir);
	assert_fsck_ok(path);
	history_free(batched);

	make_key(key, 8);
	assert_int_equal(history_set_device_ref(f->h, key, &ids[i - 1]), 0);
	assert_fsck_ok(f->repo);
	assert_int_equal(run(out, sizeof(out), "git --git-dir='%s' log --all --format=%%at", f->repo), 0);
	snprintf(want, sizeof(want), "%lld\n", (long long)4102444800);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "4294967295\n"));
}

/* ---- open ------------------------------------------------------------ */

static void open_reports_missing_paths_and_reopens_existing_repositories(void **state)
{
	fixture *f = *state;
	char path[4200], file[4300];
	samen_history *h = NULL;
	git_oid id;
	git_config *cfg = NULL;
	uint8_t key[32];
	struct stat st;
	int bare = 0;

	snprintf(path, sizeof(path), "%s/missing.git", f->dir);
	assert_int_equal(history_open(&h, path, 0), SAMEN_ENOTFOUND);
	assert_null(h);
	assert_error_mentions(path);
	assert_true(stat(path, &st) < 0);

	/* A non-empty directory that is not a repository is left alone. */
	snprintf(path, sizeof(path), "%s/notrepo", f->dir);
	assert_int_equal(mkdir(path, 0755), 0);
	snprintf(file, sizeof(file), "%s/precious.txt", path);
	assert_int_equal(tu_write_file(file, "keep", 4), 0);
	assert_int_equal(history_open(&h, path, 1), SAMEN_EEXISTS);
	assert_int_equal(history_open(&h, path, 0), SAMEN_ENOTFOUND);
	snprintf(file, sizeof(file), "%s/objects", path);
	assert_true(stat(file, &st) < 0);

	/* Nested new path; then reopen without create. */
	snprintf(path, sizeof(path), "%s/a/b/c.git", f->dir);
	assert_int_equal(history_open(&h, path, 1), 0);
	assert_true(git_repository_is_bare(history_repo(h)));
	assert_int_equal(git_repository_config_snapshot(&cfg, history_repo(h)), 0);
	assert_int_equal(git_config_get_bool(&bare, cfg, "core.bare"), 0);
	assert_true(bare);
	git_config_free(cfg);
	write_sample(h, &id, 1, 10, NULL, 0);
	make_key(key, 1);
	assert_int_equal(history_set_device_ref(h, key, &id), 0);
	history_free(h);
	h = NULL;

	assert_int_equal(history_open(&h, path, 0), 0);
	assert_ref(h, key, &id);
	history_free(h);
	h = NULL;
	assert_int_equal(history_open(&h, path, 1), 0); /* create on an existing repo opens it */
	assert_ref(h, key, &id);
	history_free(h);
}

/* ---- main ------------------------------------------------------------ */

static int group_setup(void **state)
{
	(void)state;
	/* The tests call libgit2 directly too (git_odb_hash, lookups). */
	return git_libgit2_init() < 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	git_libgit2_shutdown();
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sha1_matches_known_vectors_and_git_odb_hash),
		cmocka_unit_test_setup_teardown(same_change_gives_same_commit_id_in_separate_repositories, setup, teardown),
		cmocka_unit_test_setup_teardown(tree_holds_exactly_change_and_sig_and_read_change_round_trips, setup, teardown),
		cmocka_unit_test_setup_teardown(author_name_and_email_are_sanitized, setup, teardown),
		cmocka_unit_test_setup_teardown(device_ref_fast_forwards_only_along_the_chain, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_of_1000_changes_commits_into_one_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_abort_leaves_nothing_and_empty_batch_writes_no_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(batch_keeps_each_object_once_and_reads_back_before_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(failed_batch_commit_keeps_the_batch_for_a_retry, setup, teardown),
		cmocka_unit_test_setup_teardown(stock_git_fsck_and_log_accept_the_repository, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_repository_content_is_rejected, setup, teardown),
		cmocka_unit_test_setup_teardown(gc_leaves_exactly_one_pack_and_fsck_passes, setup, teardown),
		cmocka_unit_test_setup_teardown(gc_of_an_empty_repository_writes_no_pack, setup, teardown),
		cmocka_unit_test_setup_teardown(negative_and_far_future_times_are_stored_validly, setup, teardown),
		cmocka_unit_test_setup_teardown(open_reports_missing_paths_and_reopens_existing_repositories, setup, teardown),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
