/*
 * samen/store.h - the local store: this device's key and its plans.
 *
 * A store is a directory (--store DIR, else $SAMEN_HOME, else
 * $XDG_DATA_HOME/samen, else ~/.local/share/samen) holding
 *   device.key            this device's Ed25519 key (mode 0600)
 *   plans/<plan id>/      history.git (bare git repository), replica.db
 */
#ifndef SAMEN_STORE_H
#define SAMEN_STORE_H

#include "samen/common.h"

typedef struct samen_store samen_store;

typedef struct {
	unsigned int version;
	const char *path;        /* NULL: the default location */
	const char *device_name; /* name for a new device key (init only) */
	int create;              /* create the store and its key when missing */
} samen_store_options;

#define SAMEN_STORE_OPTIONS_VERSION 1
#define SAMEN_STORE_OPTIONS_INIT {SAMEN_STORE_OPTIONS_VERSION, NULL, NULL, 0}

/* Resolve the store directory the way the command line does, into a
 * malloc'ed string (caller frees). */
SAMEN_EXTERN int samen_store_default_path(char **out, const char *override);

SAMEN_EXTERN int samen_store_open(samen_store **out, const samen_store_options *opts);
SAMEN_EXTERN void samen_store_free(samen_store *store);

/* Borrowed strings, valid while the store is open. */
SAMEN_EXTERN const char *samen_store_path(const samen_store *store);
SAMEN_EXTERN const char *samen_store_device_name(const samen_store *store);
/* 64 lowercase hex digits of the public key. */
SAMEN_EXTERN const char *samen_store_device_key(const samen_store *store);

typedef struct {
	char id[33];             /* plan id, 32 hex digits */
	char client[201];
	char lang[17];
	int64_t changes;
	int64_t goals;
} samen_plan_info;

/* The plans in this store; *out is malloc'ed (free with free()). */
SAMEN_EXTERN int samen_store_plans(samen_store *store, samen_plan_info **out, size_t *count);

#endif
