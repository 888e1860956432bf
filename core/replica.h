/*
 * replica.h - the SQLite replica: an incrementally maintained view of the
 * history, and the merge.
 *
 * The replica is a pure function of the set of changes it has applied: the
 * order of arrival, duplicates, or a rebuild from history give the same
 * logical contents, which replica_state_hash() digests.
 *
 * Ingest happens in three steps, so that the caller (sync/) can put each
 * change into the git history between ordering and applying:
 *   1. ingest_add() decodes a change and checks its plan id and signature;
 *   2. replica_order() drops duplicates, parks changes whose dependencies
 *      have not arrived (pending), rejects broken chains, and puts the rest
 *      in causal order;
 *   3. replica_apply() writes them, in that order, in one transaction:
 *      verdicts, version vectors and the materialized registers.
 */
#ifndef SAMEN_CORE_REPLICA_H
#define SAMEN_CORE_REPLICA_H

#include "core/change.h"
#include "core/hmap.h"
#include "core/rights.h"

#include <sqlite3.h>
#include <stdbool.h>

#define SAMEN_MAX_PENDING 100000u
#define SAMEN_MAX_PENDING_BYTES (256u << 20)

typedef struct replica replica;

typedef enum {
	ITEM_NEW = 0,
	ITEM_DUP,       /* already applied */
	ITEM_READY,     /* in b->order, will be applied */
	ITEM_PENDING,   /* waits for a dependency */
	ITEM_BAD        /* broken chain etc.; never stored */
} item_state;

typedef struct {
	uint8_t *bytes;           /* owned */
	size_t len;
	uint8_t sig[64];
	uint8_t id[32];
	samen_change ch;          /* borrows bytes */
	uint8_t commit[20];       /* git commit id, set by the caller before apply */
	bool has_commit;
	uint8_t blob[20];         /* git blob id of bytes: set by a caller whose history holds them */
	bool has_blob;            /* then the replica keeps the blob id, not the bytes */
	bool from_pending;        /* loaded from the pending table */
	bool verified;            /* signature checked */
	bool fork;                /* its author signed another change with this seq (equivocation) */
	uint64_t origin;          /* where the caller got it (a bundle's record number) */
	item_state state;
	char *error;              /* ITEM_BAD: why (owned) */
} ingest_item;

typedef struct {
	uint8_t plan[16];
	ingest_item *items;
	size_t n, cap;
	size_t *order;            /* READY items in causal order */
	size_t nready;
	size_t npending, ndup, nbad;
	size_t ndropped;          /* pending, but not kept: the waiting room was full */
	size_t nrejudged;         /* changes applied before whose verdict a late revocation changed */
	hmap byid;                /* change id -> index into items */
	bool pinned;              /* a verifier reads items: they must not move */
} ingest_batch;

int ingest_init(ingest_batch *b, const uint8_t plan[16]);
void ingest_free(ingest_batch *b);
/* Decode and verify one change; takes ownership of bytes in every case.
 * Returns 0 (also for a duplicate inside the batch) or SAMEN_EDECODE /
 * SAMEN_ESIG / SAMEN_EINVAL (wrong plan) with the reason; a failed change is
 * not added. */
int ingest_add(ingest_batch *b, uint8_t *bytes, size_t len, const uint8_t sig[64]);
/* Like ingest_add(), but leaves the signature to an ingest_verifier. */
int ingest_add_unverified(ingest_batch *b, uint8_t *bytes, size_t len, const uint8_t sig[64]);
/* Verification in the background while a reader adds items: start it
 * (reserving room for `reserve` items, which must not be exceeded), publish
 * after each ingest_add_unverified(), and finish before using the batch.
 * Finish verifies what is left, frees v, and on a bad signature drops that
 * change and everything added after it (what came before stays), sets
 * *bad_origin to its origin and returns SAMEN_ESIG naming the change. */
typedef struct ingest_verifier ingest_verifier;
int ingest_verifier_start(ingest_verifier **out, ingest_batch *b, size_t reserve);
void ingest_verifier_publish(ingest_verifier *v);
int ingest_verifier_finish(ingest_verifier *v, uint64_t *bad_origin);
/* Item by change id, or NULL. */
ingest_item *ingest_find(ingest_batch *b, const uint8_t id[32]);

int replica_open(replica **out, const char *path);
void replica_close(replica *r);
sqlite3 *replica_db(replica *r);
/* Fold the WAL into the database file. */
int replica_checkpoint(replica *r);

/* Plan id stored in the replica (zero when it has none yet). */
int replica_plan_id(replica *r, uint8_t plan[16], bool *known);
int replica_set_plan_id(replica *r, const uint8_t plan[16]);

int replica_order(replica *r, ingest_batch *b);
int replica_apply(replica *r, ingest_batch *b);
/* replica_apply() that calls precommit (when not NULL) after everything is
 * written and just before COMMIT; a negative return rolls the transaction
 * back and is returned. precommit is called exactly once unless an earlier
 * step fails. */
typedef int (*replica_precommit_cb)(void *payload);
int replica_apply_ex(replica *r, ingest_batch *b, replica_precommit_cb precommit, void *payload);

/* Where stored changes' bytes come from. A change whose item had a blob id
 * is stored without its bytes (the history holds them once); reading it
 * back asks the reader for the blob's bytes (malloc'ed in *bytes). Without
 * a reader, items without a blob id keep their bytes in the replica. */
typedef int (*replica_blob_reader)(void *payload, const uint8_t blob[20], uint8_t **bytes, size_t *len);
void replica_set_blob_reader(replica *r, replica_blob_reader fn, void *payload);
/* The bytes of the stored change in the current row of s, whose columns
 * body_col, blob_col and id_col are changes.body, .blob and .id: a
 * malloc'ed copy in *bytes, read from the history when the replica does not
 * hold them, and checked against the change id. */
int replica_row_change(replica *r, sqlite3_stmt *s, int body_col, int blob_col, int id_col, uint8_t **bytes,
                       size_t *len);

/* Commit of an applied change (SAMEN_ENOTFOUND if none). */
int replica_change_commit(replica *r, const uint8_t id[32], uint8_t commit[20]);
bool replica_has_change(replica *r, const uint8_t id[32]);

/* What a new local change by author builds on. heads is malloc'ed (32 bytes
 * each). */
typedef struct {
	bool has_prev;
	uint8_t prev[32];
	uint64_t seq;             /* of the new change */
	uint64_t ctr_base;        /* first entity counter of the new change */
	uint64_t lamport;         /* of the new change */
	uint8_t *heads;
	uint32_t nheads;
} replica_edit_base;
int replica_get_edit_base(replica *r, const uint8_t author[32], replica_edit_base *out);

/* Entity lookup by uid prefix or exact title (type 0 = any type). */
typedef struct {
	int64_t rowid;
	uint32_t type;
	uint8_t key[32];          /* creator device */
	uint64_t n;
	char uid[17];
	bool deleted;
} replica_entity;
int replica_find_entity(replica *r, uint32_t type, const char *what, replica_entity *out);

/* The accepted rights ops, for queries (free with rights_free()). Ask with
 * a NULL past for the plan as this replica knows it now. */
int replica_rights_load(replica *r, rights_log *out);
/* May this device key sync this plan now: linked to a member who is not
 * revoked, not unlinked, and (a professional) approved. For the peer
 * protocol's membership check before any data moves. */
bool replica_device_may_sync(replica *r, const uint8_t device[32]);
/* The local sync log (not part of the plan's state): when a peer device
 * last synced with this one. replica_last_sync() is -1 when unknown. */
int replica_note_sync(replica *r, const uint8_t device[32], int64_t when);
int64_t replica_last_sync(replica *r, const uint8_t device[32]);

/* BLAKE2b-256 of the canonical dump of the logical state. */
int replica_state_hash(replica *r, uint8_t out[32]);

int replica_begin(replica *r);
int replica_commit(replica *r);
void replica_rollback(replica *r);

#endif
