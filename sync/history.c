/*
 * history.c - the plan's history as a bare git repository (libgit2 1.5).
 *
 * See history.h for the model. Implementation notes:
 *
 * - Two repository handles. h->repo only ever sees what is on disk (loose
 *   objects and packs). While a batch is open, h->batch_repo is a second
 *   handle on the same directory whose odb has a git_mempack backend on top
 *   (highest priority), so every object written through it goes to memory.
 *   libgit2 1.5 cannot remove a backend from an odb; instead of wrapping the
 *   mempack in a switchable backend we simply free the whole second handle
 *   when the batch ends, which takes the mempack with it. Later single
 *   writes go through h->repo and so become loose objects again.
 *
 * - Invariant: a device ref only ever points at a commit that is durable on
 *   disk. history_set_device_ref() looks the commit up through h->repo,
 *   which cannot see objects of an uncommitted batch, so moving a ref to
 *   such a commit fails with SAMEN_ENOTFOUND instead of leaving a dangling
 *   ref behind after a crash.
 *
 * - Commits are serialised by libgit2 (git_commit_create_from_ids) from a
 *   git_signature we fill in ourselves, never through git_signature_new():
 *   that one trims "crud" characters and rejects some names, which would
 *   make the stored name depend on libgit2's rules rather than on ours.
 *   Our sanitiser is the only transformation, so the commit bytes (and id)
 *   depend on the arguments alone.
 */
#include "sync/history.h"
#include "samen/common.h"

#include <git2/sys/commit.h>
#include <git2/sys/mempack.h>
#include <git2/sys/odb_backend.h>
#include <git2/sys/repository.h>

#include <dirent.h>
#include <errno.h>
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
 * makes the mempack the first backend asked to write. */
#define MEMPACK_PRIORITY 1000

/* Largest commit time we store; see clamp_time(). */
#define MAX_COMMIT_TIME INT64_C(4294967295)

struct samen_history {
	git_repository *repo;       /* disk only: loose objects and packs */
	git_repository *batch_repo; /* non-NULL exactly while a batch is open */
	git_odb_backend *mempack;   /* owned by batch_repo's odb; NULL w/o batch */
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
 * Copy s for use as the name or email of a git ident line
 * "NAME <EMAIL> TIME +0000": '<' and '>' delimit the email and control
 * characters (above all '\n' and '\r') would end or disguise the header
 * line, so each of those bytes becomes '?'. Bytes >= 0x80 are kept so that
 * UTF-8 names survive. An empty result becomes "?" so that the ident always
 * has a visible name.
 */
static char *sanitize_ident(const char *s)
{
	size_t len = strlen(s), i;
	char *out = malloc(len ? len + 1 : 2);

	if (!out)
		return NULL;
	if (len == 0) {
		memcpy(out, "?", 2);
		return out;
	}
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		out[i] = (c < 0x20 || c == 0x7f || c == '<' || c == '>') ? '?' : (char)c;
	}
	out[len] = '\0';
	return out;
}

/*
 * The time written into the commit, clamped to [0, 2^32 - 1]:
 * - libgit2 1.5 prints the time with "%u" after a cast to unsigned, so a
 *   negative time or one past 2^32 - 1 would silently wrap to some other
 *   date (and a later libgit2 that prints it as a signed 64-bit number
 *   would produce a different commit id for the same change);
 * - stock `git fsck` rejects a negative time ("badDate").
 * Clamping keeps the commit valid and its id identical everywhere. The
 * commit time is only informational: the exact time is inside the signed
 * change bytes.
 */
static git_time_t clamp_time(int64_t t)
{
	if (t < 0)
		return 0;
	if (t > MAX_COMMIT_TIME)
		return (git_time_t)MAX_COMMIT_TIME;
	return (git_time_t)t;
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

static void batch_end(samen_history *h)
{
	/* The mempack is owned by batch_repo's odb; reset it first so its
	 * memory is dropped even if something still holds a ref on the odb. */
	if (h->mempack)
		git_mempack_reset(h->mempack);
	h->mempack = NULL;
	git_repository_free(h->batch_repo);
	h->batch_repo = NULL;
}

void history_free(samen_history *h)
{
	if (!h)
		return;
	batch_end(h);
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

/* ---- writing changes ------------------------------------------------- */

int history_write_change(samen_history *h, git_oid *commit_out, const history_entry *e)
{
	static const uint8_t empty[1] = {0};
	git_repository *repo;
	git_treebuilder *tb = NULL;
	const git_oid **parents = NULL;
	char *name = NULL, *email = NULL;
	git_signature who;
	git_oid change_id, sig_id, tree_id;
	size_t i;
	int error = 0;

	if (!h || !commit_out || !e)
		return samen_error_set(SAMEN_EINVAL, "history_write_change: missing argument");
	if ((!e->change && e->change_len) || !e->sig || (!e->parents && e->nparents) ||
	    !e->author_name || !e->author_email || !e->message)
		return samen_error_set(SAMEN_EINVAL,
			"history_write_change: entry lacks change, sig, parents, author or message");

	repo = current_repo(h);

	/* Parents must already be commits here (on disk, or earlier in the
	 * open batch), so the history stays connected and `git fsck` never
	 * finds a missing parent. libgit2 checks this too, but only while
	 * GIT_OPT_ENABLE_STRICT_OBJECT_CREATION is on (a global anyone can
	 * turn off), and with a less helpful error. Checked before anything is
	 * written. */
	for (i = 0; i < e->nparents; i++) {
		int rc = is_commit(repo, &e->parents[i]);
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

	if (git_blob_create_from_buffer(&change_id, repo, e->change ? e->change : empty,
	                                e->change_len) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write change blob (%zu bytes)", e->change_len);
		goto cleanup;
	}
	if (git_blob_create_from_buffer(&sig_id, repo, e->sig, SIG_LEN) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write signature blob");
		goto cleanup;
	}

	/* The treebuilder sorts entries the git way ("change" < "sig"), so the
	 * tree bytes are canonical. */
	if (git_treebuilder_new(&tb, repo, NULL) < 0 ||
	    git_treebuilder_insert(NULL, tb, "change", &change_id, GIT_FILEMODE_BLOB) < 0 ||
	    git_treebuilder_insert(NULL, tb, "sig", &sig_id, GIT_FILEMODE_BLOB) < 0 ||
	    git_treebuilder_write(&tree_id, tb) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write the tree of a change");
		goto cleanup;
	}

	if ((parents = calloc(e->nparents ? e->nparents : 1, sizeof(*parents))) == NULL ||
	    (name = sanitize_ident(e->author_name)) == NULL ||
	    (email = sanitize_ident(e->author_email)) == NULL) {
		error = samen_error_set(SAMEN_ENOMEM, "out of memory writing a change");
		goto cleanup;
	}
	for (i = 0; i < e->nparents; i++)
		parents[i] = &e->parents[i];

	who.name = name;
	who.email = email;
	who.when.time = clamp_time(e->time);
	who.when.offset = 0;
	who.when.sign = '+';

	/* No update_ref: refs move only through history_set_device_ref(). */
	if (git_commit_create_from_ids(commit_out, repo, NULL, &who, &who, NULL, e->message,
	                               &tree_id, e->nparents, parents) < 0) {
		error = fail_git(SAMEN_EIO, "cannot write the commit of a change");
		goto cleanup;
	}

cleanup:
	git_treebuilder_free(tb);
	free(parents);
	free(name);
	free(email);
	return error;
}

/* ---- batches --------------------------------------------------------- */

int history_batch_begin(samen_history *h)
{
	git_repository *brepo = NULL;
	git_odb *odb = NULL;
	git_odb_backend *mempack = NULL; /* owned here until the odb takes it */
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
	if (git_repository_odb(&odb, brepo) < 0 || git_mempack_new(&mempack) < 0) {
		error = fail_git(SAMEN_EIO, "cannot set up the in-memory batch");
		goto cleanup;
	}
	if (git_odb_add_backend(odb, mempack, MEMPACK_PRIORITY) < 0) {
		error = fail_git(SAMEN_EIO, "cannot add the in-memory backend");
		goto cleanup;
	}
	h->mempack = mempack;
	mempack = NULL; /* the odb owns it now */
	h->batch_repo = brepo;
	brepo = NULL;

cleanup:
	if (mempack)
		mempack->free(mempack);
	git_odb_free(odb);
	git_repository_free(brepo);
	return error;
}

static uint32_t read_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

int history_batch_commit(samen_history *h)
{
	git_buf pack = GIT_BUF_INIT;
	git_odb *odb = NULL;
	git_odb_writepack *wp = NULL;
	git_indexer_progress stats;
	int error = 0;

	if (!h)
		return samen_error_set(SAMEN_EINVAL, "history_batch_commit: no history");
	if (!h->batch_repo)
		return samen_error_set(SAMEN_EINVAL, "history_batch_commit: no batch is open");

	/* The dump holds every commit written in the batch with its tree and
	 * blobs (not their parents: those are either in the batch too or
	 * already on disk). */
	if (git_mempack_dump(&pack, h->batch_repo, h->mempack) < 0) {
		error = fail_git(SAMEN_EIO, "cannot build the pack of a batch");
		goto cleanup;
	}
	if (pack.size < 12 + GIT_OID_RAWSZ || memcmp(pack.ptr, "PACK", 4) != 0) {
		error = samen_error_set(SAMEN_ERROR, "libgit2 built a malformed batch pack (%zu bytes)",
		                        pack.size);
		goto cleanup;
	}

	/* An empty batch (header says 0 objects) writes no file at all. */
	if (read_be32((const unsigned char *)pack.ptr + 8) > 0) {
		memset(&stats, 0, sizeof(stats));
		/* Through the disk-only odb: its pack backend runs the indexer,
		 * which writes objects/pack/pack-*.pack and .idx, fsyncs them
		 * (GIT_OPT_ENABLE_FSYNC_GITDIR) and renames them into place. */
		if (git_repository_odb(&odb, h->repo) < 0 ||
		    git_odb_write_pack(&wp, odb, NULL, NULL) < 0) {
			error = fail_git(SAMEN_EIO, "cannot start writing the batch pack");
			goto cleanup;
		}
		if (wp->append(wp, pack.ptr, pack.size, &stats) < 0 ||
		    wp->commit(wp, &stats) < 0) {
			error = fail_git(SAMEN_EIO, "cannot write the batch pack (%zu bytes)", pack.size);
			goto cleanup;
		}
		/* Make the new pack visible to h->repo now rather than on the
		 * first failed lookup. */
		if (git_odb_refresh(odb) < 0) {
			error = fail_git(SAMEN_EIO, "cannot rescan packs after a batch");
			goto cleanup;
		}
	}

	batch_end(h);

cleanup:
	/* On failure the batch stays open (objects still in memory) so the
	 * caller may retry history_batch_commit() or abort. */
	if (wp)
		wp->free(wp);
	git_odb_free(odb);
	git_buf_dispose(&pack);
	return error;
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

int history_foreach_device_ref(samen_history *h, history_ref_cb cb, void *payload)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	int error = 0, rc;

	if (!h || !cb)
		return samen_error_set(SAMEN_EINVAL, "history_foreach_device_ref: missing argument");

	if (git_reference_iterator_glob_new(&it, h->repo, DEVICE_REF_PREFIX "*") < 0) {
		error = fail_git(SAMEN_EIO, "cannot list device refs");
		goto cleanup;
	}
	while ((rc = git_reference_next(&ref, it)) == 0) {
		const char *refname = git_reference_name(ref);
		uint8_t key[32];
		git_oid target;
		int ok = 0;

		/* Skip anything we would not have written ourselves: other names
		 * (including nested ones), symbolic refs, and refs whose target
		 * is missing or not a commit. */
		if (strncmp(refname, DEVICE_REF_PREFIX, DEVICE_REF_PREFIX_LEN) == 0 &&
		    parse_device_key(refname + DEVICE_REF_PREFIX_LEN, key) &&
		    git_reference_type(ref) == GIT_REFERENCE_DIRECT) {
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
		error = fail_git(SAMEN_EIO, "cannot list device refs");

cleanup:
	git_reference_free(ref);
	git_reference_iterator_free(it);
	return error;
}

/* ---- reading changes ------------------------------------------------- */

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

	if (git_repository_odb(&odb, repo) < 0) {
		error = fail_git(SAMEN_EIO, "cannot open the object database");
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
