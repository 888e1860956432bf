/* internal.h - what the sync layer's files share. Not installed. */
#ifndef SAMEN_SYNC_INTERNAL_H
#define SAMEN_SYNC_INTERNAL_H

#include "samen/samen.h"
#include "core/replica.h"
#include "sync/history.h"

#include <stdbool.h>

struct samen_store {
	char *path;
	char *plans_dir;
	char *name;
	uint8_t pk[32];
	uint8_t sk[64];
	char keyhex[65];
};

struct samen_plan {
	samen_store *store;
	char *dir;
	uint8_t id[16];
	char idhex[33];
	char client[201];
	char lang[17];
	replica *rep;
	samen_history *hist;
	int lockfd;
};

/* Create the directory and its parents (mode 0700). */
int mkdir_p(const char *path);
/* Path join into a malloc'ed string. */
char *path_join(const char *a, const char *b);
/* Write a file atomically (temp file, fsync, rename, fsync dir). */
int write_file_atomic(const char *path, const void *buf, size_t len, int mode);

/* Open a plan directory whose id is known (creates it when create). */
int plan_open_dir(samen_plan **out, samen_store *store, const uint8_t id[16], bool create);
/* Open a new plan in a staging directory; plan_publish() closes it, moves
 * it into place and reopens it there (*plan is replaced). */
int plan_open_staged(samen_plan **out, samen_store *store, const uint8_t id[16]);
int plan_publish(samen_plan **plan);
/* Open the plan's replica at path, reading change bytes from its history. */
int plan_open_replica(samen_plan *p, const char *path);
/* rm -rf (best effort; never follows symlinks). */
void remove_tree(const char *path);

/* Put verified changes into history and replica (the path of a change):
 * order, write history objects (one pack when batch), move device refs,
 * then apply in one SQLite transaction. b holds items added with
 * ingest_add(). */
int plan_ingest(samen_plan *plan, ingest_batch *b);

/* Walk one device's chain in the history, newest first: from head back
 * through first parents (prev) to its seq-1 change. cb receives each
 * change's commit, bytes (which it owns from then on), signature and id; it
 * returns 0 to go on, 1 to stop, < 0 for an error (returned). */
typedef int (*plan_chain_cb)(const git_oid *commit, uint8_t *bytes, size_t len, const uint8_t sig[64],
                             const uint8_t id[32], void *payload);
int plan_walk_chain(samen_plan *plan, const git_oid *head, plan_chain_cb cb, void *payload);

/* The builder and plan of an open edit session (members.c adds its ops). */
change_builder *edit_builder(samen_edit *e);
samen_plan *edit_plan(samen_edit *e);

/* May this device key sync this plan now (linked, member not revoked,
 * approved)? What `samen serve` checks before any data moves. */
bool plan_device_may_sync(samen_plan *plan, const uint8_t key[32]);
/* Record in the local sync log that device key synced with us at when
 * (seconds); samen access shows it. Not part of the plan's state. */
int plan_note_sync(samen_plan *plan, const uint8_t key[32], int64_t when);
/* Set a field of entity (of type) to an encoded value, checked against the
 * schema (not for references). */
int edit_set_value(samen_edit *e, const char *type, const char *entity, const char *field, const uint8_t *v,
                   size_t len);

/* The label of the entity with uid: its field 1, or when that is itself a
 * reference (a VIP names a person), that entity's label; "" when unknown.
 * st is a statement prepared from ENTITY_LABEL_SQL. */
#define ENTITY_LABEL_SQL                                                                        \
	"SELECT e.type, f.value FROM entities e JOIN fields f ON f.entity = e.rowid AND f.field = 1 AND f.win" \
	" WHERE e.uid = ? LIMIT 1"
void entity_label(sqlite3_stmt *st, const char *uid, char *out, size_t cap);

/* The one-line summary of a change in lang ("nl" or "en"). */
char *change_summary(const samen_change *c, const char *lang);
/* The full message of a change's commit (summary, blank line, trailer),
 * malloc'ed; NULL when out of memory. Part of the history format. */
char *change_commit_message(const samen_change *c, const uint8_t id[32], const char *lang);

/* Apply what the history holds and the replica lacks; *recovered (may be
 * NULL) receives how many changes that was. */
int plan_recover(samen_plan *plan, uint64_t *recovered);

#endif
