/*
 * history.h - the plan's history as a bare git repository (libgit2).
 *
 * One change = one commit. The commit's tree holds exactly two blobs,
 * "change" (the canonical change bytes) and "sig" (the 64-byte Ed25519
 * signature). Its parents are the commits of the change's prev and deps, in
 * the order given. Author and committer are both "NAME <FINGERPRINT>" with the
 * change's own time and offset +0000. Everything in the commit is derived
 * from the arguments, so the same change gives the same commit id on every
 * machine.
 *
 * Each device has a ref refs/samen/devices/<64 hex of its public key>
 * pointing at the commit of its newest change; it only ever moves forward.
 * A device that signed two changes with one seq (equivocation) has a second
 * branch, kept reachable by refs/samen/forks/<key hex>/<commit hex>.
 *
 * Durability: the repository is opened with libgit2's fsync enabled
 * (GIT_OPT_ENABLE_FSYNC_GITDIR). A single change is written as loose
 * objects. Many changes are written inside a batch: objects are kept in
 * memory (each distinct object once) and history_batch_commit() writes them
 * as one pack file (with its index) with one fsync, before any ref moves.
 * Either way a change gets the same commit id.
 *
 * Nothing here decodes or trusts the change bytes; that is the caller's job.
 * Readers of blobs take a size cap so a hostile repository cannot make us
 * read a huge blob into memory.
 */
#ifndef SAMEN_SYNC_HISTORY_H
#define SAMEN_SYNC_HISTORY_H

#include <stddef.h>
#include <stdint.h>
#include <git2.h>

typedef struct samen_history samen_history;

/* Open the bare repository at path; create it when create != 0 and it does
 * not exist. Returns 0 or a negative SAMEN_E* code with samen_error_set(). */
int history_open(samen_history **out, const char *path, int create);
void history_free(samen_history *h);
git_repository *history_repo(samen_history *h);

typedef struct {
	const uint8_t *change;     /* canonical change bytes */
	size_t change_len;
	const uint8_t *sig;        /* 64 bytes */
	const git_oid *parents;    /* commits of prev then deps, in this order */
	size_t nparents;
	const char *author_name;   /* will be sanitized: no '<', '>', '\n' */
	const char *author_email;  /* device fingerprint */
	int64_t time;              /* seconds since the epoch, may be negative */
	const char *message;       /* full commit message, ends with '\n' */
} history_entry;

/* Write one change as blob+blob+tree+commit; *commit_out receives the commit
 * id. Inside a batch the objects go to memory, otherwise to loose objects. */
int history_write_change(samen_history *h, git_oid *commit_out, const history_entry *e);
/* The same, also giving the id of the "change" blob (blob_out may be NULL). */
int history_write_change_ex(samen_history *h, git_oid *commit_out, git_oid *blob_out, const history_entry *e);
/* The id git gives a blob holding data. */
void history_blob_id(git_oid *out, const void *data, size_t len);
/* A blob's bytes by id (malloc'ed), from the objects on disk (not the open
 * batch): SAMEN_ENOTFOUND when missing, SAMEN_ECORRUPT when it is not a
 * blob or is bigger than max. Safe while another thread writes a batch. */
int history_read_blob(samen_history *h, const uint8_t id[20], size_t max, uint8_t **out, size_t *len);

/* The commit id history_write_change() gives e, without writing anything:
 * how a commit fetched from elsewhere is checked to be the genuine commit of
 * the change it holds. */
int history_hash_change(git_oid *commit_out, const history_entry *e);

/* Start collecting objects in memory. While the batch is open,
 * history_read_change() and the parent check of history_write_change() see
 * its objects; device refs cannot point at them until it is committed. */
int history_batch_begin(samen_history *h);
/* Write everything collected as one pack (with its index), fsynced. */
int history_batch_commit(samen_history *h);
/* Drop everything collected since history_batch_begin(). */
void history_batch_abort(samen_history *h);

/* Move refs/samen/devices/<hex key> to commit. Fast-forward only: when the
 * ref exists, its current target must be an ancestor of commit (checked
 * with git_graph_descendant_of), else SAMEN_ECONFLICT. */
int history_set_device_ref(samen_history *h, const uint8_t key[32], const git_oid *commit);
/* Keep commit (a branch the device ref cannot fast-forward to: the device
 * signed two changes with one seq) reachable under refs/samen/forks/. */
int history_set_fork_ref(samen_history *h, const uint8_t key[32], const git_oid *commit);
/* Read a device ref; returns SAMEN_ENOTFOUND when absent. */
int history_get_device_ref(samen_history *h, const uint8_t key[32], git_oid *out);

/* Call cb for every refs/samen/devices/ ref whose name parses as 64 hex
 * digits (others are skipped). Stops and returns cb's value when non-zero. */
typedef int (*history_ref_cb)(const uint8_t key[32], const git_oid *commit, void *payload);
int history_foreach_device_ref(samen_history *h, history_ref_cb cb, void *payload);
/* The same for every fork ref (history_set_fork_ref). */
int history_foreach_fork_ref(samen_history *h, history_ref_cb cb, void *payload);

/* Read the change stored in a commit. *change is malloc'ed (caller frees),
 * at most max_len bytes, else SAMEN_ECORRUPT; sig receives 64 bytes;
 * parents (up to max_parents) and their count are returned. A commit whose
 * tree is not exactly {change, sig} is SAMEN_ECORRUPT with a message. */
int history_read_change(samen_history *h, const git_oid *commit,
                        uint8_t **change, size_t *change_len, size_t max_len,
                        uint8_t sig[64], git_oid *parents, size_t max_parents,
                        size_t *nparents);

/* Repack everything into one pack (like `git gc`) and return the total size
 * in bytes of objects/ afterwards. Used by the benchmark and `samen gc`. */
int history_gc(samen_history *h, uint64_t *bytes_out);

#endif
