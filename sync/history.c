/*
 * history.c - the plan's history as a bare git repository (libgit2 1.5).
 *
 * See history.h for the model. Implementation notes:
 *
 * - Objects are serialised here, byte for byte as libgit2 and git write
 *   them (see build_tree() and build_commit()); their ids are the SHA-1
 *   that git_odb_hash() computes of those bytes. Single writes and batches
 *   use the same builder, so a change has the same commit id whichever way
 *   it was written. The commit is built from arguments we sanitise
 *   ourselves (never through git_signature_new(), which trims "crud"
 *   characters and rejects some names), so its bytes (and id) depend on
 *   the arguments alone.
 *
 * - A single change is written through h->repo's odb (git_odb_write), so
 *   its objects become loose objects, the commit last.
 *
 * - A batch keeps its objects in a small table of our own (id -> type and
 *   raw bytes, each object once). history_batch_commit() streams them as
 *   a version-2 pack straight into the pack backend's writepack: no
 *   deltas, zlib streams at PACK_ZLIB_LEVEL, the SHA-1 trailer from
 *   sync/sha1.c. libgit2's indexer then writes the .pack and its .idx,
 *   fsyncs them and renames them into place. (libgit2's own route,
 *   git_mempack_dump(), runs a delta search and zlib at the default level:
 *   ~0.35 s for 1000 changes of 3.5 KB that barely compress anyway.)
 *
 * - Two repository handles. h->repo only ever sees what is on disk (loose
 *   objects and packs). While a batch is open, h->batch_repo is a second
 *   handle on the same directory whose odb has, on top (highest priority),
 *   a read-only backend over the batch's table, so that what was written
 *   in the batch can be read back before it is committed. libgit2 1.5
 *   cannot remove a backend from an odb; instead we free the whole second
 *   handle when the batch ends, which takes the backend with it.
 *
 * - Invariant: a device ref only ever points at a commit that is durable on
 *   disk. history_set_device_ref() looks the commit up through h->repo,
 *   which cannot see objects of an uncommitted batch, so moving a ref to
 *   such a commit fails with SAMEN_ENOTFOUND instead of leaving a dangling
 *   ref behind after a crash.
 */
#include "sync/history.h"
#include "sync/sha1.h"
#include "samen/common.h"

#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>

#define ZLIB_CONST
#include <zlib.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEVICE_REF_PREFIX "refs/samen/devices/"
#define DEVICE_REF_PREFIX_LEN (sizeof(DEVICE_REF_PREFIX) - 1)
#define DEVICE_REF_NAME_SIZE (DEVICE_REF_PREFIX_LEN + 64 + 1)
#define SIG_LEN 64

/* Default libgit2 priorities are 1 (loose) and 2 (packs); anything above
 * makes the batch's table the first backend asked to read. */
#define BATCH_PRIORITY 1000

/* Bytes handed to the indexer per writepack->append() call. */
#define PACK_CHUNK_SIZE (256 * 1024)

/*
 * zlib level of the objects in a batch pack: stored, not compressed.
 * Measured on a batch of 1000 changes of 3.5 KB of random text (2 cores,
 * -O2): Z_BEST_SPEED shrinks such a pack by ~21% but costs ~0.09 s of CPU
 * more (deflate, then inflate again in the indexer), because deflate's
 * Huffman coding, not its match search, dominates on data without
 * repeats; stored, the whole batch costs ~0.06 s of CPU. history_gc()
 * repacks everything with deltas and full compression later anyway.
 */
#define PACK_ZLIB_LEVEL Z_NO_COMPRESSION

/* Largest commit time we store; see clamp_time(). */
#define MAX_COMMIT_TIME INT64_C(4294967295)

/* One object of an open batch: its raw bytes, without the git header. */
typedef struct {
	git_oid id;
	git_object_t type;
	size_t len;
	unsigned char data[]; /* len bytes */
} batch_object;

/* The objects of an open batch, each once. */
typedef struct {
	batch_object **objs; /* in write order, which is also the pack's order */
	size_t n, cap;
	size_t *slots;       /* open addressing on the id: 0 free, else index + 1 */
	size_t nslots;       /* 0 or a power of two, always more than 2 * n */
} batch_table;

/* Read-only odb backend over a batch_table (see the file comment). */
typedef struct {
	git_odb_backend parent;
	const batch_table *table; /* NULL once the batch has ended */
} batch_backend;

struct samen_history {
	git_repository *repo;       /* disk only: loose objects and packs */
	git_odb *reader;            /* history_read_blob()'s own object database */
	git_repository *batch_repo; /* non-NULL exactly while a batch is open */
	batch_backend *batch_odb;   /* owned by batch_repo's odb; NULL w/o batch */
	batch_table batch;          /* the open batch's objects */
	int libgit2_inited;         /* git_libgit2_init() succeeded: shut down */
};

/* ---- errors ---------------------------------------------------------- */

static const char *libgit2_detail(void)
{
	const git_error *err = git_error_last();
	return (err && err->message && *err->message) ? err->message
	                                              : "no detail from libgit2";
}

/* samen_error_set() with libgit2's last message appended; call it right
 * after the failing libgit2 call, before anything else can reset it. */
#ifdef __GNUC__
__attribute__((format(printf, 2, 3)))
#endif
static int fail_git(int code, const char *fmt, ...)
{
	char what[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return samen_error_set(code, "%s: %s", what, libgit2_detail());
}

/* ---- small helpers --------------------------------------------------- */

static void oid_hex(char out[GIT_OID_HEXSZ + 1], const git_oid *id)
{
	git_oid_tostr(out, GIT_OID_HEXSZ + 1, id);
}

static void device_ref_name(char out[DEVICE_REF_NAME_SIZE], const uint8_t key[32])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	memcpy(out, DEVICE_REF_PREFIX, DEVICE_REF_PREFIX_LEN);
	for (i = 0; i < 32; i++) {
		out[DEVICE_REF_PREFIX_LEN + 2 * i] = digits[key[i] >> 4];
		out[DEVICE_REF_PREFIX_LEN + 2 * i + 1] = digits[key[i] & 0xf];
	}
	out[DEVICE_REF_NAME_SIZE - 1] = '\0';
}

static int lower_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* 1 when s is exactly 64 lowercase hex digits (then key is filled). Only
 * the lowercase spelling is accepted so that every key has one ref name. */
static int parse_device_key(const char *s, uint8_t key[32])
{
	size_t i;

	if (strlen(s) != 64)
		return 0;
	for (i = 0; i < 32; i++) {
		int hi = lower_hex_value(s[2 * i]), lo = lower_hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return 0;
		key[i] = (uint8_t)(hi << 4 | lo);
	}
	return 1;
}

/* The repository a read or write should go through: while a batch is open
 * that is the batch handle, so what was written in the batch can be read
 * back before it is committed. */
static git_repository *current_repo(samen_history *h)
{
	return h->batch_repo ? h->batch_repo : h->repo;
}

/*
 * The name or email of a git ident line "NAME <EMAIL> TIME +0000" is s
 * with each byte that '<' and '>' (they delimit the email) or a control
 * character (above all '\n' and '\r', which would end or disguise the
 * header line) replaced by '?'. Bytes >= 0x80 are kept so that UTF-8 names
 * survive. An empty s becomes "?" so that the ident always has a visible
 * name. ident_len() is the length of the result, put_ident() writes it
 * (no NUL) and returns the end.
 */
static size_t ident_len(const char *s)
{
	size_t len = strlen(s);
	return len ? len : 1;
}

static char *put_ident(char *out, const char *s)
{
	if (!*s) {
		*out++ = '?';
		return out;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		*out++ = (c < 0x20 || c == 0x7f || c == '<' || c == '>') ? '?' : (char)c;
	}
	return out;
}

/*
 * The time written into the commit, clamped to [0, 2^32 - 1]:
 * - libgit2 1.5 prints the time with "%u" after a cast to unsigned, so a
 *   negative time or one past 2^32 - 1 would silently wrap to some other
 *   date (and a later libgit2 that prints it as a signed 64-bit number
 *   would produce a different commit id for the same change);
 * - stock `git fsck` rejects a negative time ("badDate").
 * Clamping keeps the commit valid and its id the one git and any libgit2
 * would compute for the same bytes. The commit time is only informational:
 * the exact time is inside the signed change bytes.
 */
static uint32_t clamp_time(int64_t t)
{
	if (t < 0)
		return 0;
	if (t > MAX_COMMIT_TIME)
		return (uint32_t)MAX_COMMIT_TIME;
	return (uint32_t)t;
}

static char *path_join(const char *dir, const char *name)
{
	size_t dlen = strlen(dir), nlen = strlen(name);
	int slash = dlen > 0 && dir[dlen - 1] == '/';
	char *out = malloc(dlen + nlen + 2);

	if (!out)
		return NULL;
	memcpy(out, dir, dlen);
	if (!slash)
		out[dlen++] = '/';
	memcpy(out + dlen, name, nlen + 1);
	return out;
}

/* 1 when path is a directory without entries, 0 when it has some, <0 on
 * error (with the samen error set). */
static int dir_is_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *ent;
	int empty = 1;

	if (!d)
		return samen_error_set(SAMEN_EIO, "cannot list %s: %s", path, strerror(errno));
	while ((ent = readdir(d)) != NULL) {
		if (strcmp(ent->d_name, ".") && strcmp(ent->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

/* ---- open / free ----------------------------------------------------- */

static pthread_once_t libgit2_once = PTHREAD_ONCE_INIT;
static void libgit2_keep_alive(void) { git_libgit2_init(); }

int history_open(samen_history **out, const char *path, int create)
{
	samen_history *h = NULL;
	git_repository_init_options opts;
	struct stat st;
	int error = 0, rc;

	if (!out || !path || !*path)
		return samen_error_set(SAMEN_EINVAL, "history_open: no repository path given");
	*out = NULL;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return samen_error_set(SAMEN_ENOMEM, "out of memory opening history %s", path);

	/* libgit2's global start-up loads the system's TLS certificates, which
	 * costs 10-30 ms; one reference taken once per process and never
	 * released keeps that from happening at every open. */
	pthread_once(&libgit2_once, libgit2_keep_alive);
	if (git_libgit2_init() < 0) {
		error = fail_git(SAMEN_ERROR, "cannot initialise libgit2");
		goto cleanup;
	}
	h->libgit2_inited = 1;

	/* Global in libgit2: loose objects, packs, their indexes and refs are
	 * fsynced (and their directories) before they are renamed into place. */
	if (git_libgit2_opts(GIT_OPT_ENABLE_FSYNC_GITDIR, 1) < 0) {
		error = fail_git(SAMEN_ERROR, "cannot enable fsync in libgit2");
		goto cleanup;
	}

	if (stat(path, &st) == 0) {
		rc = git_repository_open_bare(&h->repo, path);
		if (rc == 0)
			goto cleanup;
		if (rc != GIT_ENOTFOUND) {
			error = fail_git(SAMEN_EIO, "cannot open history repository %s", path);
			goto cleanup;
		}
		if (!create) {
			error = samen_error_set(SAMEN_ENOTFOUND,
				"%s is not a git repository (no history there)", path);
			goto cleanup;
		}
		/* Never turn an arbitrary non-empty directory into a repository. */
		if (!S_ISDIR(st.st_mode) || (rc = dir_is_empty(path)) == 0) {
			error = samen_error_set(SAMEN_EEXISTS,
				"%s exists and is neither a git repository nor an empty directory; "
				"not creating a history repository there", path);
			goto cleanup;
		}
		if (rc < 0) {
			error = rc;
			goto cleanup;
		}
	} else if (errno != ENOENT) {
		error = samen_error_set(SAMEN_EIO, "cannot stat history repository %s: %s",
		                        path, strerror(errno));
		goto cleanup;
	} else if (!create) {
		error = samen_error_set(SAMEN_ENOTFOUND,
			"history repository %s does not exist", path);
		goto cleanup;
	}

	/* Init writes core.repositoryformatversion=0 and core.bare=true (and
	 * HEAD -> refs/heads/master, unborn), which is all stock git needs. */
	git_repository_init_options_init(&opts, GIT_REPOSITORY_INIT_OPTIONS_VERSION);
	opts.flags = GIT_REPOSITORY_INIT_BARE | GIT_REPOSITORY_INIT_MKPATH |
	             GIT_REPOSITORY_INIT_MKDIR;
	if (git_repository_init_ext(&h->repo, path, &opts) < 0) {
		error = fail_git(SAMEN_EIO, "cannot create history repository %s", path);
		goto cleanup;
	}

cleanup:
	if (error < 0)
		history_free(h);
	else
		*out = h;
	return error;
}

/* ---- the batch's objects --------------------------------------------- */

/* Ids are SHA-1 values, so any 8 of their bytes make a fine hash. */
static size_t table_slot(const batch_table *t, const git_oid *id)
{
	uint64_t x;

	memcpy(&x, id->id, sizeof(x));
	return (size_t)x & (t->nslots - 1);
}

static batch_object *table_find(const batch_table *t, const git_oid *id)
{
	size_t i;

	if (!t->nslots)
		return NULL;
	for (i = table_slot(t, id); t->slots[i]; i = (i + 1) & (t->nslots - 1)) {
		batch_object *o = t->objs[t->slots[i] - 1];
		if (git_oid_equal(&o->id, id))
			return o;
	}
	return NULL;
}

/* Make room for `more` further objects, so that inserting them cannot
 * fail. Returns 0 or -1 (out of memory). */
static int table_reserve(batch_table *t, size_t more)
{
	size_t need, nslots, i;
	size_t *slots;

	/* Keeps every size computed below far from overflowing. */
	if (more > SIZE_MAX / 64 - t->n)
		return -1;
	need = t->n + more;
	if (need > t->cap) {
		size_t cap = t->cap ? t->cap : 1024;
		batch_object **objs;

		while (cap < need)
			cap *= 2;
		if ((objs = realloc(t->objs, cap * sizeof(*objs))) == NULL)
			return -1;
		t->objs = objs;
		t->cap = cap;
	}
	if (2 * need < t->nslots)
		return 0;

	nslots = t->nslots ? t->nslots : 2048;
	while (nslots <= 2 * need)
		nslots *= 2;
	if ((slots = calloc(nslots, sizeof(*slots))) == NULL)
		return -1;
	free(t->slots);
	t->slots = slots;
	t->nslots = nslots;
	for (i = 0; i < t->n; i++) {
		size_t s = table_slot(t, &t->objs[i]->id);
		while (t->slots[s])
			s = (s + 1) & (nslots - 1);
		t->slots[s] = i + 1;
	}
	return 0;
}

/* Insert o, which is not in t yet and for which room was reserved. */
static void table_insert(batch_table *t, batch_object *o)
{
	size_t s = table_slot(t, &o->id);

	while (t->slots[s])
		s = (s + 1) & (t->nslots - 1);
	t->objs[t->n++] = o;
	t->slots[s] = t->n;
}

static void table_free(batch_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->objs[i]);
	free(t->objs);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/* A new object holding its own copy of data. */
static batch_object *object_new(const git_oid *id, git_object_t type, const void *data, size_t len)
{
	batch_object *o;

	if (len > SIZE_MAX - sizeof(*o) - 1 || (o = malloc(sizeof(*o) + len)) == NULL)
		return NULL;
	git_oid_cpy(&o->id, id);
	o->type = type;
	o->len = len;
	if (len)
		memcpy(o->data, data, len);
	return o;
}

/* ---- the batch's objects seen through libgit2 ------------------------- */

static const batch_object *backend_find(git_odb_backend *backend, const git_oid *id)
{
	const batch_table *t = ((batch_backend *)backend)->table;
	return t ? table_find(t, id) : NULL;
}

static int batch_backend_read(void **out, size_t *len, git_object_t *type,
                              git_odb_backend *backend, const git_oid *id)
{
	const batch_object *o = backend_find(backend, id);
	unsigned char *copy;

	if (!o)
		return GIT_ENOTFOUND;
	/* libgit2 owns (and frees) what read() returns. NUL-terminated, as
	 * the loose backend does it. */
	if ((copy = git_odb_backend_data_alloc(backend, o->len + 1)) == NULL) {
		git_error_set_oom();
		return -1;
	}
	memcpy(copy, o->data, o->len);
	copy[o->len] = '\0';
	*out = copy;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int batch_backend_read_header(size_t *len, git_object_t *type,
                                     git_odb_backend *backend, const git_oid *id)
{
	const batch_object *o = backend_find(backend, id);

	if (!o)
		return GIT_ENOTFOUND;
	*len = o->len;
	*type = o->type;
	return 0;
}

static int batch_backend_exists(git_odb_backend *backend, const git_oid *id)
{
	return backend_find(backend, id) != NULL;
}

static void batch_backend_free(git_odb_backend *backend)
{
	free(backend);
}

static void batch_end(samen_history *h)
{
	/* The backend is owned by batch_repo's odb, which something might
	 * still hold a reference on: unhook the table first so that it can
	 * never be read once it is freed. */
	if (h->batch_odb)
		h->batch_odb->table = NULL;
	h->batch_odb = NULL;
	git_repository_free(h->batch_repo);
	h->batch_repo = NULL;
	table_free(&h->batch);
}

void history_free(samen_history *h)
{
	if (!h)
		return;
	batch_end(h);
	git_odb_free(h->reader);
	git_repository_free(h->repo);
	if (h->libgit2_inited)
		git_libgit2_shutdown();
	free(h);
}

git_repository *history_repo(samen_history *h)
{
	return h ? h->repo : NULL;
}

/* 1 when id names a commit in repo, 0 when it is missing or of another
 * type, <0 on error (samen error set). Reads the header only. */
static int is_commit(git_repository *repo, const git_oid *id)
{
	git_odb *odb = NULL;
	git_object_t type;
	size_t len;
	int rc, result;

	if (git_repository_odb(&odb, repo) < 0)
		return fail_git(SAMEN_EIO, "cannot open the object database");
	rc = git_odb_read_header(&len, &type, odb, id);
	if (rc == 0)
		result = type == GIT_OBJECT_COMMIT;
	else if (rc == GIT_ENOTFOUND)
		result = 0;
	else {
		char hex[GIT_OID_HEXSZ + 1];
		oid_hex(hex, id);
		result = fail_git(SAMEN_EIO, "cannot read object %s", hex);
	}
	git_odb_free(odb);
	return result;
}

/* ---- building objects ------------------------------------------------ */

/* The tree of a change, byte for byte as git_treebuilder (and git) write
 * it: "100644 change\0<20 bytes>100644 sig\0<20 bytes>", the entries in
 * git's order ("change" < "sig"). */
#define TREE_CHANGE_ENTRY "100644 change"
#define TREE_SIG_ENTRY "100644 sig"
#define TREE_SIZE (sizeof(TREE_CHANGE_ENTRY) + GIT_OID_RAWSZ + sizeof(TREE_SIG_ENTRY) + GIT_OID_RAWSZ)

static void build_tree(unsigned char out[TREE_SIZE], const git_oid *change, const git_oid *sig)
{
	unsigned char *p = out;

	memcpy(p, TREE_CHANGE_ENTRY, sizeof(TREE_CHANGE_ENTRY)); /* with its NUL */
	p += sizeof(TREE_CHANGE_ENTRY);
	memcpy(p, change->id, GIT_OID_RAWSZ);
	p += GIT_OID_RAWSZ;
	memcpy(p, TREE_SIG_ENTRY, sizeof(TREE_SIG_ENTRY));
	p += sizeof(TREE_SIG_ENTRY);
	memcpy(p, sig->id, GIT_OID_RAWSZ);
}

#define OID_LINE(header) (sizeof(header) - 1 + GIT_OID_HEXSZ + 1) /* "<header><hex>\n" */

static char *put_bytes(char *p, const void *s, size_t len)
{
	memcpy(p, s, len);
	return p + len;
}

static char *put_oid_line(char *p, const char *header, size_t header_len, const git_oid *id)
{
	p = put_bytes(p, header, header_len);
	git_oid_fmt(p, id); /* 40 hex digits, no NUL */
	p += GIT_OID_HEXSZ;
	*p++ = '\n';
	return p;
}

/* "<header>NAME <EMAIL> TIME +0000\n" as git_signature__writebuf() writes
 * it for a zero offset. */
static char *put_ident_line(char *p, const char *header, size_t header_len, const history_entry *e,
                            const char *time, size_t time_len)
{
	p = put_bytes(p, header, header_len);
	p = put_ident(p, e->author_name);
	p = put_bytes(p, " <", 2);
	p = put_ident(p, e->author_email);
	p = put_bytes(p, "> ", 2);
	p = put_bytes(p, time, time_len);
	return put_bytes(p, " +0000\n", 7);
}

/*
 * The commit of a change, byte for byte as git_commit_create_from_ids() of
 * libgit2 1.5 (and git) write it for our arguments:
 *
 *   tree <hex>\n
 *   parent <hex>\n                          one per parent, in order
 *   author NAME <EMAIL> TIME +0000\n
 *   committer NAME <EMAIL> TIME +0000\n
 *   \n
 *   <message, verbatim>
 *
 * with NAME and EMAIL sanitised and TIME clamped (see put_ident() and
 * clamp_time()). *out is malloc'ed, *out_len its length.
 */
static int build_commit(char **out, size_t *out_len, const git_oid *tree, const history_entry *e)
{
	static const char tree_hdr[] = "tree ", parent_hdr[] = "parent ",
	                  author_hdr[] = "author ", committer_hdr[] = "committer ";
	char time[16], *buf, *p;
	size_t time_len, ident, msg_len, len, i;

	time_len = (size_t)snprintf(time, sizeof(time), "%" PRIu32, clamp_time(e->time));
	/* "NAME <EMAIL> TIME +0000\n" without its header */
	ident = ident_len(e->author_name) + 2 + ident_len(e->author_email) + 2 + time_len + 7;
	msg_len = strlen(e->message);
	if (e->nparents > SIZE_MAX / 8 / OID_LINE(parent_hdr) || ident > SIZE_MAX / 8 ||
	    msg_len > SIZE_MAX / 8)
		return samen_error_set(SAMEN_EINVAL, "history_write_change: commit would be too large");
	len = OID_LINE(tree_hdr) + e->nparents * OID_LINE(parent_hdr) +
	      sizeof(author_hdr) - 1 + ident + sizeof(committer_hdr) - 1 + ident + 1 + msg_len;

	if ((buf = malloc(len)) == NULL)
		return samen_error_set(SAMEN_ENOMEM, "out of memory building a commit (%zu bytes)", len);
	p = put_oid_line(buf, tree_hdr, sizeof(tree_hdr) - 1, tree);
	for (i = 0; i < e->nparents; i++)
		p = put_oid_line(p, parent_hdr, sizeof(parent_hdr) - 1, &e->parents[i]);
	p = put_ident_line(p, author_hdr, sizeof(author_hdr) - 1, e, time, time_len);
	p = put_ident_line(p, committer_hdr, sizeof(committer_hdr) - 1, e, time, time_len);
	*p++ = '\n';
	p = put_bytes(p, e->message, msg_len);
	if ((size_t)(p - buf) != len) { /* cannot happen: the sizes above are exact */
		free(buf);
		return samen_error_set(SAMEN_ERROR, "internal: commit is %zu bytes, expected %zu",
		                       (size_t)(p - buf), len);
	}
	*out = buf;
	*out_len = len;
	return 0;
}

/* ---- writing changes ------------------------------------------------- */

/* 1 when id names a commit of the open batch or on disk, 0 when neither,
 * <0 on error (samen error set). The batch's table is looked at first. */
static int parent_is_commit(samen_history *h, const git_oid *id)
{
	const batch_object *o;

	if (h->batch_repo && (o = table_find(&h->batch, id)) != NULL)
		return o->type == GIT_OBJECT_COMMIT;
	return is_commit(h->repo, id);
}

/*
 * What git_odb_hash() computes, the SHA-1 of "<type> <len>\0" and data,
 * through sync/sha1.c, which is about twice as fast as libgit2's
 * collision-detecting SHA-1 (a quarter of the CPU of a batch otherwise).
 * Used for batches only: libgit2 hashes every object again with its own
 * SHA-1 when it indexes the batch pack, and the .idx holds its ids.
 */
static void hash_object(git_oid *id, git_object_t type, const void *data, size_t len)
{
	samen_sha1_ctx ctx;
	char header[64];
	int n = snprintf(header, sizeof(header), "%s %zu", git_object_type2string(type), len);

	samen_sha1_init(&ctx);
	samen_sha1_update(&ctx, header, (size_t)n + 1); /* with the NUL */
	samen_sha1_update(&ctx, data, len);
	samen_sha1_final(&ctx, id->id);
}

/* Outside a batch (odb != NULL) write the object, as a loose object;
 * inside one only compute its id. Either way *id is what git calls it. */
static int put_object(git_odb *odb, git_oid *id, git_object_t type, const void *data, size_t len)
{
	if (odb)
		return git_odb_write(id, odb, data, len, type);
	hash_object(id, type, data, len);
	return 0;
}

/*
 * Add a change's objects (change blob, sig blob, tree, commit, in this
 * order) to the open batch, each at most once: objects already in the
 * table (an equal blob of another change, the same change written twice)
 * are not added again. Nothing is added when the commit is on disk
 * already: a commit is only ever written after its tree and blobs, so they
 * are on disk too. Either everything new is added or, out of memory,
 * nothing.
 */
static int batch_add_change(samen_history *h, const git_oid ids[4], const void *const data[4],
                            const size_t lens[4])
{
	static const git_object_t types[4] = {
		GIT_OBJECT_BLOB, GIT_OBJECT_BLOB, GIT_OBJECT_TREE, GIT_OBJECT_COMMIT
	};
	batch_table *t = &h->batch;
	batch_object *fresh[4];
	git_odb *odb = NULL;
	size_t i, k, nfresh = 0;
	int rc;

	if (table_find(t, &ids[3]))
		return 0;
	/* No refresh of the pack list on a miss (the usual case): a pack
	 * that another process wrote meanwhile only costs a duplicate. */
	if (git_repository_odb(&odb, h->repo) < 0)
		return fail_git(SAMEN_EIO, "cannot open the object database");
	rc = git_odb_exists_ext(odb, &ids[3], GIT_ODB_LOOKUP_NO_REFRESH);
	git_odb_free(odb);
	if (rc == 1)
		return 0;

	for (i = 0; i < 4; i++) {
		if (table_find(t, &ids[i]))
			continue;
		for (k = 0; k < nfresh && !git_oid_equal(&fresh[k]->id, &ids[i]); k++)
			;
		if (k < nfresh)
			continue; /* e.g. change bytes equal to the signature */
		if ((fresh[nfresh] = object_new(&ids[i], types[i], data[i], lens[i])) == NULL)
			goto oom;
		nfresh++;
	}
	if (table_reserve(t, nfresh) < 0)
		goto oom;
	for (k = 0; k < nfresh; k++)
		table_insert(t, fresh[k]);
	return 0;

oom:
	for (k = 0; k < nfresh; k++)
		free(fresh[k]);
	return samen_error_set(SAMEN_ENOMEM, "out of memory adding a change to the batch "
	                       "(%zu objects in it)", t->n);
}

int history_write_change(samen_history *h, git_oid *commit_out, const history_entry *e)
{
	return history_write_change_ex(h, commit_out, NULL, e);
}

int history_write_change_ex(samen_history *h, git_oid *commit_out, git_oid *blob_out, const history_entry *e)
{
	static const uint8_t empty[1] = {0};
	const uint8_t *change;
	unsigned char tree[TREE_SIZE];
	char *commit = NULL;
	size_t commit_len = 0, i;
	git_oid ids[4]; /* change blob, sig blob, tree, commit */
	git_odb *odb = NULL;
	int error = 0;

	if (!h || !commit_out || !e)
		return samen_error_set(SAMEN_EINVAL, "history_write_change: missing argument");
	if ((!e->change && e->change_len) || !e->sig || (!e->parents && e->nparents) ||
	    !e->author_name || !e->author_email || !e->message)
		return samen_error_set(SAMEN_EINVAL,
			"history_write_change: entry lacks change, sig, parents, author or message");

	/* Parents must already be commits here (on disk, or earlier in the
	 * open batch), so the history stays connected and `git fsck` never
	 * finds a missing parent. Checked before anything is written. */
	for (i = 0; i < e->nparents; i++) {
		int rc = parent_is_commit(h, &e->parents[i]);
		if (rc < 0)
			return rc;
		if (rc == 0) {
			char hex[GIT_OID_HEXSZ + 1];
			oid_hex(hex, &e->parents[i]);
			return samen_error_set(SAMEN_ENOTFOUND,
				"cannot write change: its parent %zu, %s, is not a commit in the repository",
				i, hex);
		}
	}
	change = e->change ? e->change : empty;

	/* Outside a batch each object is written as soon as it is built, the
	 * commit last, so a commit on disk always has its tree and blobs. In
	 * a batch only the ids are computed here; the objects go to the table
	 * at the end. */
	if (!h->batch_repo && git_repository_odb(&odb, h->repo) < 0) {
		error = fail_git(SAMEN_EIO, "cannot open the object database");
		goto cleanup;
	}

	/* Only writing can fail: hashing alone cannot. */
	if (put_object(odb, &ids[0], GIT_OBJECT_BLOB, change, e->change_len) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write change blob (%zu bytes)", e->change_len);
		goto cleanup;
	}
	if (put_object(odb, &ids[1], GIT_OBJECT_BLOB, e->sig, SIG_LEN) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write signature blob");
		goto cleanup;
	}
	build_tree(tree, &ids[0], &ids[1]);
	if (put_object(odb, &ids[2], GIT_OBJECT_TREE, tree, sizeof(tree)) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write the tree of a change");
		goto cleanup;
	}
	if ((error = build_commit(&commit, &commit_len, &ids[2], e)) < 0)
		goto cleanup;
	if (put_object(odb, &ids[3], GIT_OBJECT_COMMIT, commit, commit_len) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write the commit of a change");
		goto cleanup;
	}

	if (h->batch_repo) {
		const void *const data[4] = {change, e->sig, tree, commit};
		const size_t lens[4] = {e->change_len, SIG_LEN, sizeof(tree), commit_len};

		if ((error = batch_add_change(h, ids, data, lens)) < 0)
			goto cleanup;
	}
	git_oid_cpy(commit_out, &ids[3]);
	if (blob_out)
		git_oid_cpy(blob_out, &ids[0]);

cleanup:
	free(commit);
	git_odb_free(odb);
	return error;
}

/* The commit id history_write_change() would give e, computed without
 * writing anything: the same builders, hashed with git's object hash. */
int history_hash_change(git_oid *commit_out, const history_entry *e)
{
	static const uint8_t empty[1] = {0};
	unsigned char tree[TREE_SIZE];
	char *commit = NULL;
	size_t commit_len = 0;
	git_oid change_id, sig_id, tree_id;
	int error;

	if (!commit_out || !e || (!e->change && e->change_len) || !e->sig || (!e->parents && e->nparents) ||
	    !e->author_name || !e->author_email || !e->message)
		return samen_error_set(SAMEN_EINVAL, "history_hash_change: entry lacks change, sig, parents, author or message");
	hash_object(&change_id, GIT_OBJECT_BLOB, e->change ? e->change : empty, e->change_len);
	hash_object(&sig_id, GIT_OBJECT_BLOB, e->sig, SIG_LEN);
	build_tree(tree, &change_id, &sig_id);
	hash_object(&tree_id, GIT_OBJECT_TREE, tree, sizeof(tree));
	if ((error = build_commit(&commit, &commit_len, &tree_id, e)) < 0)
		return error;
	hash_object(commit_out, GIT_OBJECT_COMMIT, commit, commit_len);
	free(commit);
	return 0;
}

/* ---- batches --------------------------------------------------------- */

int history_batch_begin(samen_history *h)
{
	git_repository *brepo = NULL;
	git_odb *odb = NULL;
	batch_backend *backend = NULL; /* owned here until the odb takes it */
	int error = 0;

	if (!h)
		return samen_error_set(SAMEN_EINVAL, "history_batch_begin: no history");
	if (h->batch_repo)
		return samen_error_set(SAMEN_EINVAL, "history_batch_begin: a batch is already open");

	if (git_repository_open_bare(&brepo, git_repository_path(h->repo)) < 0) {
		error = fail_git(SAMEN_EIO, "cannot open a batch handle on %s",
		                 git_repository_path(h->repo));
		goto cleanup;
	}
	if ((backend = calloc(1, sizeof(*backend))) == NULL) {
		error = samen_error_set(SAMEN_ENOMEM, "out of memory starting a batch");
		goto cleanup;
	}
	if (git_odb_init_backend(&backend->parent, GIT_ODB_BACKEND_VERSION) < 0) {
		error = fail_git(SAMEN_ERROR, "cannot set up the batch backend");
		goto cleanup;
	}
	backend->parent.read = batch_backend_read;
	backend->parent.read_header = batch_backend_read_header;
	backend->parent.exists = batch_backend_exists;
	backend->parent.free = batch_backend_free;
	backend->table = &h->batch;

	if (git_repository_odb(&odb, brepo) < 0 ||
	    git_odb_add_backend(odb, &backend->parent, BATCH_PRIORITY) < 0) {
		error = fail_git(SAMEN_EIO, "cannot add the batch backend");
		goto cleanup;
	}
	h->batch_odb = backend;
	backend = NULL; /* the odb owns it now */
	h->batch_repo = brepo;
	brepo = NULL;

cleanup:
	free(backend);
	git_odb_free(odb);
	git_repository_free(brepo);
	return error;
}

/* A pack on its way into the indexer, PACK_CHUNK_SIZE bytes at a time. */
typedef struct {
	git_odb_writepack *wp;
	git_indexer_progress *stats;
	samen_sha1_ctx sha; /* of every byte handed over so far */
	unsigned char *buf; /* PACK_CHUNK_SIZE bytes */
	size_t used;
} pack_writer;

static int pack_flush(pack_writer *w)
{
	if (!w->used)
		return 0;
	samen_sha1_update(&w->sha, w->buf, w->used);
	if (w->wp->append(w->wp, w->buf, w->used, w->stats) < 0)
		return fail_git(SAMEN_EIO, "cannot write the batch pack");
	w->used = 0;
	return 0;
}

/* A few bytes (headers), copied into the buffer. */
static int pack_put(pack_writer *w, const void *data, size_t len)
{
	int error;

	if (PACK_CHUNK_SIZE - w->used < len && (error = pack_flush(w)) < 0)
		return error;
	memcpy(w->buf + w->used, data, len);
	w->used += len;
	return 0;
}

/* One undeltified object: the type and inflated size as git's varint
 * header, then the zlib stream of its bytes, written straight into the
 * buffer. */
static int pack_object(pack_writer *w, z_stream *zs, const batch_object *o)
{
	unsigned char hdr[16];
	uint64_t size = o->len;
	size_t n = 0, left = o->len;
	int error, rc;

	/* git's type codes in packs are those of git_object_t: commit 1,
	 * tree 2, blob 3. */
	hdr[0] = (unsigned char)((unsigned)o->type << 4 | (unsigned)(size & 0x0f));
	for (size >>= 4; size; size >>= 7) {
		hdr[n++] |= 0x80;
		hdr[n] = (unsigned char)(size & 0x7f);
	}
	if ((error = pack_put(w, hdr, n + 1)) < 0)
		return error;

	if (deflateReset(zs) != Z_OK)
		return samen_error_set(SAMEN_ERROR, "zlib: cannot reset the deflate stream");
	zs->next_in = o->data;
	zs->avail_in = 0;
	do {
		if (zs->avail_in == 0 && left) {
			zs->avail_in = left > UINT_MAX ? UINT_MAX : (uInt)left;
			left -= zs->avail_in;
		}
		if (w->used == PACK_CHUNK_SIZE && (error = pack_flush(w)) < 0)
			return error;
		zs->next_out = w->buf + w->used;
		zs->avail_out = (uInt)(PACK_CHUNK_SIZE - w->used);
		rc = deflate(zs, left ? Z_NO_FLUSH : Z_FINISH);
		w->used = PACK_CHUNK_SIZE - zs->avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
			return samen_error_set(SAMEN_ERROR, "zlib: cannot deflate a %zu-byte object (%d)",
			                       o->len, rc);
	} while (rc != Z_STREAM_END);
	return 0;
}

static void put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/*
 * Stream every object of the batch as one version-2 pack into the pack
 * backend's writepack: "PACK", version 2, the object count, the objects
 * (no deltas, zlib streams at PACK_ZLIB_LEVEL), then the SHA-1 of all of
 * that. The indexer (run by the disk-only odb's pack backend) checks the
 * pack as it arrives, writes objects/pack/pack-*.pack and .idx, fsyncs
 * them (GIT_OPT_ENABLE_FSYNC_GITDIR) and renames them into place on
 * commit.
 */
static int write_batch_pack(samen_history *h)
{
	const batch_table *t = &h->batch;
	unsigned char head[12], trailer[SAMEN_SHA1_SIZE];
	git_indexer_progress stats;
	git_odb *odb = NULL;
	pack_writer w;
	z_stream zs;
	int zs_ready = 0, error = 0;
	size_t i;

	memset(&w, 0, sizeof(w));
	memset(&zs, 0, sizeof(zs));
	memset(&stats, 0, sizeof(stats));
	if (t->n > UINT32_MAX)
		return samen_error_set(SAMEN_EINVAL, "a batch of %zu objects does not fit in one pack", t->n);

	if ((w.buf = malloc(PACK_CHUNK_SIZE)) == NULL) {
		error = samen_error_set(SAMEN_ENOMEM, "out of memory writing the batch pack");
		goto cleanup;
	}
	if (deflateInit(&zs, PACK_ZLIB_LEVEL) != Z_OK) {
		error = samen_error_set(SAMEN_ENOMEM, "zlib: cannot start a deflate stream");
		goto cleanup;
	}
	zs_ready = 1;
	if (git_repository_odb(&odb, h->repo) < 0 ||
	    git_odb_write_pack(&w.wp, odb, NULL, NULL) < 0) {
		error = fail_git(SAMEN_EIO, "cannot start writing the batch pack");
		goto cleanup;
	}
	w.stats = &stats;
	samen_sha1_init(&w.sha);

	memcpy(head, "PACK", 4);
	put_be32(head + 4, 2);
	put_be32(head + 8, (uint32_t)t->n);
	if ((error = pack_put(&w, head, sizeof(head))) < 0)
		goto cleanup;
	for (i = 0; i < t->n; i++)
		if ((error = pack_object(&w, &zs, t->objs[i])) < 0)
			goto cleanup;
	if ((error = pack_flush(&w)) < 0)
		goto cleanup;

	samen_sha1_final(&w.sha, trailer);
	if (w.wp->append(w.wp, trailer, sizeof(trailer), &stats) < 0 ||
	    w.wp->commit(w.wp, &stats) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write the batch pack (%zu objects)", t->n);
		goto cleanup;
	}
	/* Make the new pack visible to h->repo now rather than on the first
	 * failed lookup. */
	if (git_odb_refresh(odb) < 0) {
		error = fail_git(SAMEN_EIO, "cannot rescan packs after a batch");
		goto cleanup;
	}

cleanup:
	if (w.wp)
		w.wp->free(w.wp); /* before commit: drops the partial pack */
	if (zs_ready)
		deflateEnd(&zs);
	free(w.buf);
	git_odb_free(odb);
	return error;
}

int history_batch_commit(samen_history *h)
{
	int error;

	if (!h)
		return samen_error_set(SAMEN_EINVAL, "history_batch_commit: no history");
	if (!h->batch_repo)
		return samen_error_set(SAMEN_EINVAL, "history_batch_commit: no batch is open");

	/* An empty batch writes no file at all. On failure the batch stays
	 * open (objects still in memory) so the caller may retry
	 * history_batch_commit() or abort. */
	if (h->batch.n > 0 && (error = write_batch_pack(h)) < 0)
		return error;
	batch_end(h);
	return 0;
}

void history_batch_abort(samen_history *h)
{
	if (h)
		batch_end(h);
}

/* ---- device refs ----------------------------------------------------- */

int history_set_device_ref(samen_history *h, const uint8_t key[32], const git_oid *commit)
{
	char name[DEVICE_REF_NAME_SIZE], new_hex[GIT_OID_HEXSZ + 1], old_hex[GIT_OID_HEXSZ + 1];
	char msg[160];
	git_reference *ref = NULL, *updated = NULL;
	const git_oid *old;
	int error = 0, rc;

	if (!h || !key || !commit)
		return samen_error_set(SAMEN_EINVAL, "history_set_device_ref: missing argument");
	device_ref_name(name, key);
	oid_hex(new_hex, commit);

	/* Through h->repo, which sees only what is on disk: see the file
	 * comment. */
	if ((rc = is_commit(h->repo, commit)) < 0) {
		error = rc;
		goto cleanup;
	}
	if (rc == 0) {
		error = samen_error_set(SAMEN_ENOTFOUND,
			"cannot move %s to %s: no such commit on disk (missing, not a commit, "
			"or still in an uncommitted batch)", name, new_hex);
		goto cleanup;
	}

	rc = git_reference_lookup(&ref, h->repo, name);
	if (rc == GIT_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "samen: device ref created at %s", new_hex);
		/* force=0: if another writer created it meanwhile we must not
		 * overwrite its value without the fast-forward check. */
		rc = git_reference_create(&updated, h->repo, name, commit, 0, msg);
		if (rc == GIT_EEXISTS)
			error = fail_git(SAMEN_ECONFLICT, "device ref %s was created concurrently; "
			                 "not setting it to %s", name, new_hex);
		else if (rc < 0)
			error = fail_git(SAMEN_EIO, "cannot create device ref %s at %s", name, new_hex);
		goto cleanup;
	}
	if (rc < 0) {
		error = fail_git(SAMEN_EIO, "cannot read device ref %s", name);
		goto cleanup;
	}
	if (git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
		error = samen_error_set(SAMEN_ECORRUPT, "device ref %s is symbolic, not a commit id", name);
		goto cleanup;
	}

	old = git_reference_target(ref);
	oid_hex(old_hex, old);
	if (git_oid_equal(old, commit))
		goto cleanup; /* already there */

	rc = git_graph_descendant_of(h->repo, commit, old);
	if (rc < 0) {
		error = fail_git(SAMEN_ECORRUPT, "cannot tell whether %s descends from %s (target of %s)",
		                 new_hex, old_hex, name);
		goto cleanup;
	}
	if (rc == 0) {
		error = samen_error_set(SAMEN_ECONFLICT,
			"device ref %s would not fast-forward from %s to %s", name, old_hex, new_hex);
		goto cleanup;
	}

	/* Compare-and-swap: refdb checks under the ref's lock that it still
	 * points at old, so a concurrent move cannot be lost. */
	snprintf(msg, sizeof(msg), "samen: device ref fast-forward from %s", old_hex);
	rc = git_reference_create_matching(&updated, h->repo, name, commit, 1, old, msg);
	if (rc == GIT_EMODIFIED)
		error = fail_git(SAMEN_ECONFLICT, "device ref %s moved concurrently (was %s); "
		                 "not moving it to %s", name, old_hex, new_hex);
	else if (rc < 0)
		error = fail_git(SAMEN_EIO, "cannot move device ref %s from %s to %s",
		                 name, old_hex, new_hex);

cleanup:
	git_reference_free(updated);
	git_reference_free(ref);
	return error;
}

/* refs/samen/forks/<64 hex of key>/<40 hex of commit>: keeps a second
 * branch of a device that equivocated reachable (and visible to git). */
int history_set_fork_ref(samen_history *h, const uint8_t key[32], const git_oid *commit)
{
	char name[DEVICE_REF_NAME_SIZE + 64], dev[DEVICE_REF_NAME_SIZE], hex[GIT_OID_HEXSZ + 1];
	git_reference *ref = NULL;
	int rc;

	device_ref_name(dev, key);
	oid_hex(hex, commit);
	snprintf(name, sizeof(name), "refs/samen/forks/%s/%s", dev + DEVICE_REF_PREFIX_LEN, hex);
	if ((rc = is_commit(h->repo, commit)) <= 0)
		return rc < 0 ? rc : samen_error_set(SAMEN_ENOTFOUND, "cannot set %s: no such commit on disk", name);
	rc = git_reference_create(&ref, h->repo, name, commit, 0, "samen: a second branch of an equivocating device");
	git_reference_free(ref);
	if (rc < 0 && rc != GIT_EEXISTS)
		return fail_git(SAMEN_EIO, "cannot create %s", name);
	return 0;
}

int history_get_device_ref(samen_history *h, const uint8_t key[32], git_oid *out)
{
	char name[DEVICE_REF_NAME_SIZE];
	git_reference *ref = NULL;
	int error = 0, rc;

	if (!h || !key || !out)
		return samen_error_set(SAMEN_EINVAL, "history_get_device_ref: missing argument");
	device_ref_name(name, key);

	rc = git_reference_lookup(&ref, h->repo, name);
	if (rc == GIT_ENOTFOUND) {
		error = samen_error_set(SAMEN_ENOTFOUND, "no device ref %s", name);
		goto cleanup;
	}
	if (rc < 0) {
		error = fail_git(SAMEN_EIO, "cannot read device ref %s", name);
		goto cleanup;
	}
	if (git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
		error = samen_error_set(SAMEN_ECORRUPT, "device ref %s is symbolic, not a commit id", name);
		goto cleanup;
	}
	if ((rc = is_commit(h->repo, git_reference_target(ref))) <= 0) {
		char hex[GIT_OID_HEXSZ + 1];
		oid_hex(hex, git_reference_target(ref));
		error = rc < 0 ? rc : samen_error_set(SAMEN_ECORRUPT,
			"device ref %s points at %s, which is not a commit in the repository", name, hex);
		goto cleanup;
	}
	git_oid_cpy(out, git_reference_target(ref));

cleanup:
	git_reference_free(ref);
	return error;
}

/* The key a ref name holds, if it is one of ours: refs/samen/devices/<key>,
 * or refs/samen/forks/<key>/<commit> (history_set_fork_ref). */
static bool device_ref_key(const char *refname, uint8_t key[32])
{
	return strncmp(refname, DEVICE_REF_PREFIX, DEVICE_REF_PREFIX_LEN) == 0 &&
	       parse_device_key(refname + DEVICE_REF_PREFIX_LEN, key);
}

static bool fork_ref_key(const char *refname, uint8_t key[32])
{
	static const char prefix[] = "refs/samen/forks/";
	const char *rest = refname + sizeof(prefix) - 1;
	char hex[65];
	if (strncmp(refname, prefix, sizeof(prefix) - 1) != 0 || strlen(rest) != 64 + 1 + GIT_OID_HEXSZ ||
	    rest[64] != '/')
		return false;
	memcpy(hex, rest, 64);
	hex[64] = '\0';
	return parse_device_key(hex, key);
}

/* cb for every direct ref matching glob whose name parses (key_of) and
 * whose target is a commit; anything we would not have written ourselves
 * (other names, nested ones, symbolic refs, missing targets) is skipped. */
static int foreach_ref(samen_history *h, const char *glob, bool (*key_of)(const char *, uint8_t[32]),
                       history_ref_cb cb, void *payload)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	int error = 0, rc;

	if (!h || !cb)
		return samen_error_set(SAMEN_EINVAL, "history: listing refs: missing argument");
	if (git_reference_iterator_glob_new(&it, h->repo, glob) < 0)
		return fail_git(SAMEN_EIO, "cannot list %s", glob);
	while ((rc = git_reference_next(&ref, it)) == 0) {
		uint8_t key[32];
		git_oid target;
		int ok = 0;
		if (key_of(git_reference_name(ref), key) && git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
			git_oid_cpy(&target, git_reference_target(ref));
			if ((ok = is_commit(h->repo, &target)) < 0) {
				error = ok;
				goto cleanup;
			}
		}
		git_reference_free(ref);
		ref = NULL;
		if (ok && (rc = cb(key, &target, payload)) != 0) {
			error = rc; /* the callback's own value, as documented */
			goto cleanup;
		}
	}
	if (rc != GIT_ITEROVER)
		error = fail_git(SAMEN_EIO, "cannot list %s", glob);
cleanup:
	git_reference_free(ref);
	git_reference_iterator_free(it);
	return error;
}

int history_foreach_device_ref(samen_history *h, history_ref_cb cb, void *payload)
{
	return foreach_ref(h, DEVICE_REF_PREFIX "*", device_ref_key, cb, payload);
}

int history_foreach_fork_ref(samen_history *h, history_ref_cb cb, void *payload)
{
	return foreach_ref(h, "refs/samen/forks/*", fork_ref_key, cb, payload);
}

/* ---- reading changes ------------------------------------------------- */

/* The largest commit and tree of a change that are read at all. A change's
 * commit is its headers (at most 257 parents), a name of at most 200
 * bytes twice and a one-line summary: far below 1 MiB. Its tree is 65
 * bytes. */
#define MAX_COMMIT_BYTES (1u << 20)
#define MAX_TREE_BYTES 1024u

/* id must name an object of type want, at most max bytes; checked from its
 * header, so nothing big is read. what names it in the message. */
static int check_object_header(git_odb *odb, const git_oid *id, git_object_t want, size_t max,
                               const char *commit_hex, const char *what)
{
	git_object_t type;
	size_t len;
	int rc = git_odb_read_header(&len, &type, odb, id);

	if (rc == GIT_ENOTFOUND)
		return fail_git(SAMEN_ENOTFOUND, "commit %s: %s not found", commit_hex, what);
	if (rc < 0)
		return fail_git(SAMEN_ECORRUPT, "commit %s: %s cannot be read", commit_hex, what);
	if (type != want)
		return samen_error_set(SAMEN_ECORRUPT, "commit %s: %s is a %s, not a %s", commit_hex, what,
		                       git_object_type2string(type), git_object_type2string(want));
	if (len > max)
		return samen_error_set(SAMEN_ECORRUPT, "commit %s: %s is %zu bytes, more than the limit of %zu",
		                       commit_hex, what, len, max);
	return 0;
}

/*
 * Check that entry is a plain blob (mode 100644, as we write it) of at
 * most max bytes (exactly max when exact != 0), using only the object
 * header so that a hostile huge blob is never inflated. Sets *len.
 */
static int check_blob_entry(git_odb *odb, const char *commit_hex, const git_tree_entry *entry,
                            size_t max, int exact, size_t *len)
{
	const char *ename = git_tree_entry_name(entry);
	char hex[GIT_OID_HEXSZ + 1];
	git_object_t type;
	int rc;

	oid_hex(hex, git_tree_entry_id(entry));
	if (git_tree_entry_filemode(entry) != GIT_FILEMODE_BLOB)
		return samen_error_set(SAMEN_ECORRUPT,
			"commit %s: tree entry \"%s\" has mode %06o, expected a plain blob (100644)",
			commit_hex, ename, (unsigned)git_tree_entry_filemode(entry));

	rc = git_odb_read_header(len, &type, odb, git_tree_entry_id(entry));
	if (rc < 0)
		return fail_git(SAMEN_ECORRUPT, "commit %s: cannot read the header of \"%s\" blob %s",
		                commit_hex, ename, hex);
	if (type != GIT_OBJECT_BLOB)
		return samen_error_set(SAMEN_ECORRUPT, "commit %s: \"%s\" entry %s is a %s, not a blob",
		                       commit_hex, ename, hex, git_object_type2string(type));
	if (exact && *len != max)
		return samen_error_set(SAMEN_ECORRUPT,
			"commit %s: \"%s\" blob %s is %zu bytes, expected exactly %zu",
			commit_hex, ename, hex, *len, max);
	if (!exact && *len > max)
		return samen_error_set(SAMEN_ECORRUPT,
			"commit %s: \"%s\" blob %s is %zu bytes, more than the limit of %zu",
			commit_hex, ename, hex, *len, max);
	return 0;
}

int history_read_change(samen_history *h, const git_oid *commit,
                        uint8_t **change, size_t *change_len, size_t max_len,
                        uint8_t sig[64], git_oid *parents, size_t max_parents,
                        size_t *nparents)
{
	git_repository *repo;
	git_commit *c = NULL;
	git_tree *tree = NULL;
	git_blob *change_blob = NULL, *sig_blob = NULL;
	git_odb *odb = NULL;
	const git_tree_entry *change_entry, *sig_entry;
	uint8_t *copy = NULL;
	char hex[GIT_OID_HEXSZ + 1];
	size_t n, i, len, siglen;
	int error = 0, rc;

	if (!h || !commit || !change || !change_len || !sig || !nparents ||
	    (!parents && max_parents))
		return samen_error_set(SAMEN_EINVAL, "history_read_change: missing argument");
	*change = NULL;
	*change_len = 0;
	*nparents = 0;

	repo = current_repo(h);
	oid_hex(hex, commit);

	/* Objects may come from a remote: look at the headers before libgit2
	 * parses a commit or tree of any size. */
	if (git_repository_odb(&odb, repo) < 0) {
		error = fail_git(SAMEN_EIO, "cannot open the object database");
		goto cleanup;
	}
	if ((error = check_object_header(odb, commit, GIT_OBJECT_COMMIT, MAX_COMMIT_BYTES, hex, "commit")) < 0)
		goto cleanup;

	rc = git_commit_lookup(&c, repo, commit);
	if (rc == GIT_ENOTFOUND) {
		error = fail_git(SAMEN_ENOTFOUND, "commit %s not found", hex);
		goto cleanup;
	}
	if (rc < 0) {
		error = fail_git(SAMEN_ECORRUPT, "commit %s cannot be read", hex);
		goto cleanup;
	}

	n = git_commit_parentcount(c);
	if (n > max_parents) {
		error = samen_error_set(SAMEN_ECORRUPT, "commit %s has %zu parents, more than the %zu allowed",
		                        hex, n, max_parents);
		goto cleanup;
	}

	if ((error = check_object_header(odb, git_commit_tree_id(c), GIT_OBJECT_TREE, MAX_TREE_BYTES, hex,
	                                 "its tree")) < 0)
		goto cleanup;
	if (git_commit_tree(&tree, c) < 0) {
		error = fail_git(SAMEN_ECORRUPT, "commit %s: its tree cannot be read", hex);
		goto cleanup;
	}
	/* Exactly {change, sig}: by count and by name, so duplicates or extra
	 * entries are rejected too. */
	if (git_tree_entrycount(tree) != 2) {
		error = samen_error_set(SAMEN_ECORRUPT,
			"commit %s: tree has %zu entries, expected exactly \"change\" and \"sig\"",
			hex, git_tree_entrycount(tree));
		goto cleanup;
	}
	if ((change_entry = git_tree_entry_byname(tree, "change")) == NULL ||
	    (sig_entry = git_tree_entry_byname(tree, "sig")) == NULL) {
		error = samen_error_set(SAMEN_ECORRUPT, "commit %s: tree lacks the \"%s\" entry", hex,
		                        git_tree_entry_byname(tree, "change") ? "sig" : "change");
		goto cleanup;
	}

	if ((error = check_blob_entry(odb, hex, sig_entry, SIG_LEN, 1, &siglen)) < 0 ||
	    (error = check_blob_entry(odb, hex, change_entry, max_len, 0, &len)) < 0)
		goto cleanup;

	/* Sizes are known to be sane; now read the contents. */
	if (git_blob_lookup(&sig_blob, repo, git_tree_entry_id(sig_entry)) < 0 ||
	    git_blob_lookup(&change_blob, repo, git_tree_entry_id(change_entry)) < 0) {
		error = fail_git(SAMEN_ECORRUPT, "commit %s: cannot read its blobs", hex);
		goto cleanup;
	}
	if (git_blob_rawsize(sig_blob) != SIG_LEN || git_blob_rawsize(change_blob) != len) {
		error = samen_error_set(SAMEN_ECORRUPT, "commit %s: blob sizes differ from their headers", hex);
		goto cleanup;
	}
	if ((copy = malloc(len ? len : 1)) == NULL) {
		error = samen_error_set(SAMEN_ENOMEM, "out of memory reading change of commit %s (%zu bytes)",
		                        hex, len);
		goto cleanup;
	}
	memcpy(copy, git_blob_rawcontent(change_blob), len);
	memcpy(sig, git_blob_rawcontent(sig_blob), SIG_LEN);
	for (i = 0; i < n; i++)
		git_oid_cpy(&parents[i], git_commit_parent_id(c, (unsigned int)i));

	*change = copy;
	copy = NULL;
	*change_len = len;
	*nparents = n;

cleanup:
	free(copy);
	git_blob_free(change_blob);
	git_blob_free(sig_blob);
	git_odb_free(odb);
	git_tree_free(tree);
	git_commit_free(c);
	return error;
}

/* The id git gives a blob of these bytes. */
void history_blob_id(git_oid *out, const void *data, size_t len)
{
	hash_object(out, GIT_OBJECT_BLOB, data, len);
}

/* A git_odb of its own, opened on first use: libgit2 objects are not
 * shared between threads, and a batch may be written meanwhile through
 * h->repo on another thread. A pack written since it was opened is found
 * too (libgit2 rescans the packs when an object is missing). */
int history_read_blob(samen_history *h, const uint8_t id[20], size_t max, uint8_t **out, size_t *len)
{
	git_odb_object *obj = NULL;
	git_object_t type;
	git_oid oid;
	char hex[GIT_OID_HEXSZ + 1];
	uint8_t *copy;
	size_t n;
	int rc;

	*out = NULL;
	*len = 0;
	if (!h->reader) {
		char *objects = path_join(git_repository_path(h->repo), "objects");
		if (!objects)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		rc = git_odb_open(&h->reader, objects);
		free(objects);
		if (rc < 0) {
			h->reader = NULL;
			return fail_git(SAMEN_EIO, "cannot open the history's object database");
		}
	}
	git_oid_fromraw(&oid, id);
	oid_hex(hex, &oid);
	/* the header first: a damaged or hostile history cannot make us
	 * inflate a huge object */
	rc = git_odb_read_header(&n, &type, h->reader, &oid);
	if (rc == GIT_ENOTFOUND)
		return fail_git(SAMEN_ENOTFOUND, "blob %s is missing from the history", hex);
	if (rc < 0)
		return fail_git(SAMEN_ECORRUPT, "blob %s in the history cannot be read", hex);
	if (type != GIT_OBJECT_BLOB || n > max)
		return samen_error_set(SAMEN_ECORRUPT, "history object %s is a %s of %zu bytes, not a change (at most %zu"
		                       " bytes)", hex, git_object_type2string(type), n, max);
	if (git_odb_read(&obj, h->reader, &oid) < 0)
		return fail_git(SAMEN_ECORRUPT, "blob %s in the history cannot be read", hex);
	n = git_odb_object_size(obj);
	if (n > max || !(copy = malloc(n ? n : 1))) {
		git_odb_object_free(obj);
		return n > max ? samen_error_set(SAMEN_ECORRUPT, "blob %s in the history grew beyond its header", hex)
		               : samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	memcpy(copy, git_odb_object_data(obj), n);
	git_odb_object_free(obj);
	*out = copy;
	*len = n;
	return 0;
}

/* ---- gc -------------------------------------------------------------- */

typedef struct {
	git_oid *ids;
	size_t n, cap;
} oid_list;

static int collect_oid(const git_oid *id, void *payload)
{
	oid_list *l = payload;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		git_oid *ids = realloc(l->ids, cap * sizeof(*ids));
		if (!ids)
			return -1;
		l->ids = ids;
		l->cap = cap;
	}
	git_oid_cpy(&l->ids[l->n++], id);
	return 0;
}

/* Callback state: is every object of an old pack in the new one? */
typedef struct {
	git_odb_backend *newpack;
	int missing;
} contained_state;

static int check_contained(const git_oid *id, void *payload)
{
	contained_state *s = payload;

	if (!s->newpack->exists(s->newpack, id)) {
		s->missing = 1;
		return 1; /* stop */
	}
	return 0;
}

static int has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* malloc'ed "packdir/<first stem_len bytes of name><ext>". */
static char *pack_path(const char *packdir, const char *name, size_t stem_len, const char *ext)
{
	size_t dlen = strlen(packdir), elen = strlen(ext);
	char *out = malloc(dlen + 1 + stem_len + elen + 1);

	if (!out)
		return NULL;
	memcpy(out, packdir, dlen);
	out[dlen] = '/';
	memcpy(out + dlen + 1, name, stem_len);
	memcpy(out + dlen + 1 + stem_len, ext, elen + 1);
	return out;
}

/* Delete every pack in packdir other than pack-<keep_name> whose objects
 * are all in newpack. Packs with a .keep file are left alone, like git
 * does. The .idx goes first: readers find packs through their index. */
static int remove_redundant_packs(const char *packdir, const char *keep_name,
                                  git_odb_backend *newpack, int *removed)
{
	static const char *const exts[] = {".idx", ".pack", ".rev", ".bitmap"};
	DIR *d = NULL;
	struct dirent *ent;
	git_odb_backend *old = NULL;
	char *path = NULL;
	int error = 0;
	size_t i;

	if ((d = opendir(packdir)) == NULL)
		return samen_error_set(SAMEN_EIO, "cannot list %s: %s", packdir, strerror(errno));

	while ((ent = readdir(d)) != NULL) {
		const char *name = ent->d_name;
		size_t stem = strlen(name) - 4; /* without ".idx" */
		contained_state state;
		struct stat st;

		if (strncmp(name, "pack-", 5) != 0 || !has_suffix(name, ".idx") ||
		    (stem == 5 + strlen(keep_name) && strncmp(name + 5, keep_name, stem - 5) == 0))
			continue;

		free(path);
		if ((path = pack_path(packdir, name, stem, ".keep")) == NULL)
			goto oom;
		if (stat(path, &st) == 0)
			continue; /* pack-*.keep: not ours to delete */

		free(path);
		if ((path = pack_path(packdir, name, stem, ".idx")) == NULL)
			goto oom;
		if (git_odb_backend_one_pack(&old, path) < 0) {
			error = fail_git(SAMEN_EIO, "cannot open old pack index %s", path);
			goto cleanup;
		}
		state.newpack = newpack;
		state.missing = 0;
		if (old->foreach(old, check_contained, &state) < 0 && !state.missing) {
			error = fail_git(SAMEN_EIO, "cannot list the objects of %s", path);
			goto cleanup;
		}
		old->free(old);
		old = NULL;
		if (state.missing)
			continue; /* keep it: something in it is not in the new pack */

		for (i = 0; i < sizeof(exts) / sizeof(exts[0]); i++) {
			free(path);
			if ((path = pack_path(packdir, name, stem, exts[i])) == NULL)
				goto oom;
			if (unlink(path) < 0 && errno != ENOENT) {
				error = samen_error_set(SAMEN_EIO, "cannot remove %s: %s", path, strerror(errno));
				goto cleanup;
			}
		}
		(*removed)++;
	}
	goto cleanup;

oom:
	error = samen_error_set(SAMEN_ENOMEM, "out of memory in gc");
cleanup:
	if (old)
		old->free(old);
	free(path);
	closedir(d);
	return error;
}

/* Delete loose objects (objects/xx/yyyy...) that newpack contains, and the
 * fan-out directories left empty. */
static int remove_redundant_loose(const char *objects, git_odb_backend *newpack)
{
	char *dir = NULL, *path = NULL, hex[GIT_OID_HEXSZ + 1];
	DIR *top = NULL, *sub = NULL;
	struct dirent *ent, *obj;
	int error = 0;

	if ((top = opendir(objects)) == NULL)
		return samen_error_set(SAMEN_EIO, "cannot list %s: %s", objects, strerror(errno));

	while ((ent = readdir(top)) != NULL) {
		if (strlen(ent->d_name) != 2 || lower_hex_value(ent->d_name[0]) < 0 ||
		    lower_hex_value(ent->d_name[1]) < 0)
			continue;
		free(dir);
		if ((dir = path_join(objects, ent->d_name)) == NULL) {
			error = samen_error_set(SAMEN_ENOMEM, "out of memory in gc");
			goto cleanup;
		}
		if ((sub = opendir(dir)) == NULL)
			continue; /* not a directory */
		while ((obj = readdir(sub)) != NULL) {
			git_oid id;

			if (strlen(obj->d_name) != GIT_OID_HEXSZ - 2)
				continue;
			memcpy(hex, ent->d_name, 2);
			memcpy(hex + 2, obj->d_name, GIT_OID_HEXSZ - 2);
			hex[GIT_OID_HEXSZ] = '\0';
			if (git_oid_fromstr(&id, hex) < 0 || !newpack->exists(newpack, &id))
				continue;
			free(path);
			if ((path = path_join(dir, obj->d_name)) == NULL) {
				error = samen_error_set(SAMEN_ENOMEM, "out of memory in gc");
				goto cleanup;
			}
			if (unlink(path) < 0 && errno != ENOENT) {
				error = samen_error_set(SAMEN_EIO, "cannot remove %s: %s", path, strerror(errno));
				goto cleanup;
			}
		}
		closedir(sub);
		sub = NULL;
		(void)rmdir(dir); /* fails harmlessly while it still has entries */
	}

cleanup:
	if (sub)
		closedir(sub);
	closedir(top);
	free(dir);
	free(path);
	return error;
}

/* Sum of the sizes of the regular files under path. */
static int dir_size(const char *path, uint64_t *total)
{
	DIR *d = opendir(path);
	struct dirent *ent;
	int error = 0;

	if (!d)
		return samen_error_set(SAMEN_EIO, "cannot list %s: %s", path, strerror(errno));
	while ((ent = readdir(d)) != NULL) {
		struct stat st;
		char *child;

		if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
			continue;
		if ((child = path_join(path, ent->d_name)) == NULL) {
			error = samen_error_set(SAMEN_ENOMEM, "out of memory measuring %s", path);
			break;
		}
		if (lstat(child, &st) < 0) {
			if (errno != ENOENT) /* vanished meanwhile: not counted */
				error = samen_error_set(SAMEN_EIO, "cannot stat %s: %s", child, strerror(errno));
		} else if (S_ISDIR(st.st_mode)) {
			error = dir_size(child, total);
		} else if (S_ISREG(st.st_mode)) {
			*total += (uint64_t)st.st_size;
		}
		free(child);
		if (error < 0)
			break;
	}
	closedir(d);
	return error;
}

/*
 * Like `git repack -a -d` (what `git gc` does without pruning):
 * 1. every object in the repository goes into one new pack. Commits are
 *    inserted by walking all refs first, so blobs carry their path names as
 *    delta hints; then every other object (unreachable ones too) is added.
 *    Nothing is pruned: a concurrent writer may have written objects whose
 *    ref it has not moved yet.
 * 2. the pack is written and fsynced by the indexer before anything is
 *    deleted;
 * 3. only then are old packs that the new pack fully contains, and loose
 *    objects that it contains, deleted. An object is never deleted unless
 *    it is in the new pack.
 * 4. h->repo gets a fresh odb so it no longer holds the deleted packs open.
 */
int history_gc(samen_history *h, uint64_t *bytes_out)
{
	git_odb *odb = NULL, *fresh = NULL;
	git_packbuilder *pb = NULL;
	git_revwalk *walk = NULL;
	git_odb_backend *newpack = NULL;
	oid_list all = {NULL, 0, 0};
	char *objects = NULL, *packdir = NULL, *newidx = NULL;
	uint64_t total = 0;
	size_t i;
	int error = 0, removed = 0;

	if (!h || !bytes_out)
		return samen_error_set(SAMEN_EINVAL, "history_gc: missing argument");
	if (h->batch_repo)
		return samen_error_set(SAMEN_EINVAL, "history_gc: a batch is open; commit or abort it first");

	if ((objects = path_join(git_repository_path(h->repo), "objects")) == NULL ||
	    (packdir = path_join(objects, "pack")) == NULL) {
		error = samen_error_set(SAMEN_ENOMEM, "out of memory in gc");
		goto cleanup;
	}

	if (git_repository_odb(&odb, h->repo) < 0 || git_odb_refresh(odb) < 0) {
		error = fail_git(SAMEN_EIO, "cannot open the object database of %s",
		                 git_repository_path(h->repo));
		goto cleanup;
	}
	if (git_packbuilder_new(&pb, h->repo) < 0) {
		error = fail_git(SAMEN_EIO, "cannot start a pack");
		goto cleanup;
	}
	git_packbuilder_set_threads(pb, 0); /* 0: one thread per CPU */

	/* The glob matches every ref, nested names included; refs whose
	 * target is not a commit are ignored by a glob push (their objects are
	 * still packed by the loop below). */
	if (git_revwalk_new(&walk, h->repo) < 0 ||
	    git_revwalk_push_glob(walk, "refs/*") < 0 ||
	    git_packbuilder_insert_walk(pb, walk) < 0) {
		error = fail_git(SAMEN_ECORRUPT, "cannot walk the history from its refs");
		goto cleanup;
	}

	/* Collect first, insert after: inserting reads the odb, which must not
	 * happen from inside its own foreach. */
	if (git_odb_foreach(odb, collect_oid, &all) < 0) {
		error = fail_git(SAMEN_EIO, "cannot list the objects of the repository");
		goto cleanup;
	}
	for (i = 0; i < all.n; i++) {
		if (git_packbuilder_insert(pb, &all.ids[i], NULL) < 0) {
			char hex[GIT_OID_HEXSZ + 1];
			oid_hex(hex, &all.ids[i]);
			error = fail_git(SAMEN_ECORRUPT, "cannot pack object %s", hex);
			goto cleanup;
		}
	}

	if (git_packbuilder_object_count(pb) > 0) {
		if (git_packbuilder_write(pb, packdir, 0, NULL, NULL) < 0) {
			error = fail_git(SAMEN_EIO, "cannot write the new pack into %s", packdir);
			goto cleanup;
		}
		if ((newidx = malloc(strlen(packdir) + GIT_OID_HEXSZ + 16)) == NULL) {
			error = samen_error_set(SAMEN_ENOMEM, "out of memory in gc");
			goto cleanup;
		}
		sprintf(newidx, "%s/pack-%s.idx", packdir, git_packbuilder_name(pb));
		if (git_odb_backend_one_pack(&newpack, newidx) < 0) {
			error = fail_git(SAMEN_EIO, "cannot open the new pack index %s", newidx);
			goto cleanup;
		}

		if ((error = remove_redundant_packs(packdir, git_packbuilder_name(pb), newpack,
		                                    &removed)) < 0 ||
		    (error = remove_redundant_loose(objects, newpack)) < 0)
			goto cleanup;

		/* A multi-pack-index written by stock git would name deleted
		 * packs; it is only an accelerator, so drop it. */
		if (removed) {
			char *midx = path_join(packdir, "multi-pack-index");
			if (midx)
				(void)unlink(midx);
			free(midx);
		}

		/* h->repo's pack backend still has the deleted packs open (and
		 * would keep their disk space until history_free); give it a new
		 * odb that sees only what is there now. */
		if (git_odb_open(&fresh, objects) < 0 || git_repository_set_odb(h->repo, fresh) < 0) {
			error = fail_git(SAMEN_EIO, "cannot reopen the object database %s", objects);
			goto cleanup;
		}
	}

	if ((error = dir_size(objects, &total)) < 0)
		goto cleanup;
	*bytes_out = total;

cleanup:
	if (newpack)
		newpack->free(newpack);
	free(all.ids);
	free(newidx);
	free(objects);
	free(packdir);
	git_revwalk_free(walk);
	git_packbuilder_free(pb);
	git_odb_free(fresh);
	git_odb_free(odb);
	return error;
}
