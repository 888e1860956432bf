/*
 * samen/bundle.h - moving changes by file (USB stick, e-mail).
 *
 * A bundle holds signed changes of one plan in causal order, compressed
 * (see docs/format.md). Importing verifies every change before anything is
 * stored; a bad part is reported and nothing from it is imported.
 */
#ifndef SAMEN_BUNDLE_H
#define SAMEN_BUNDLE_H

#include "samen/plan.h"

typedef struct {
	uint64_t changes;        /* changes written / read */
	uint64_t bytes;          /* size of the bundle file */
	uint64_t applied;        /* import: newly applied */
	uint64_t duplicates;     /* import: already here */
	uint64_t pending;        /* import: waiting for dependencies */
	uint64_t invalid;        /* import: broken chains, never stored */
	uint64_t rejected;       /* import: stored but rejected by the rules */
	uint64_t rejudged;       /* import: earlier changes whose verdict a late revocation or fork changed */
	char plan[33];
	int cloned;              /* import created the plan in this store */
} samen_bundle_stats;

/* The version vector of a plan as text ("KEYHEX:SEQ,..."), for
 * `bundle create --since`. *out is malloc'ed. */
SAMEN_EXTERN int samen_plan_version_vector(samen_plan *plan, char **out);

/* Write every change, or only those not covered by since (a version vector
 * from samen_plan_version_vector() on the receiving device; NULL = all). */
SAMEN_EXTERN int samen_bundle_create(samen_plan *plan, const char *path, const char *since,
                                     samen_bundle_stats *stats);
/* Import into the plan the bundle belongs to, creating it in this store
 * when it is new here. */
SAMEN_EXTERN int samen_bundle_import(samen_store *store, const char *path, samen_bundle_stats *stats);
/* Import several bundles of one plan as one stream: one batch, one replica
 * transaction per chunk, and the files may come in any order (a change that
 * depends on another file's changes waits for them inside the import). A
 * bad file does not stop the others; the first error is returned, and
 * stats sum over all files. */
SAMEN_EXTERN int samen_bundle_import_files(samen_store *store, const char *const *paths, size_t npaths,
                                           samen_bundle_stats *stats);

#endif
