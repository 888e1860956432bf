/*
 * samen/remote.h - sync through ordinary git remotes (docs/remotes.md).
 *
 * A remote is a git repository anywhere libgit2 reaches: a path or file://
 * URL, git://, ssh:// (or user@host:path) and https://. Remotes are kept in
 * the git config of the plan's history (history.git/config), per plan.
 *
 * On the remote, a plan's changes live under
 *   refs/samen/plans/<plan id>/devices/<device key>
 * so one repository can relay one plan (a URL per plan) or many.
 *
 * Pull fetches those refs into refs/samen/quarantine/<remote>/<device key>
 * of the local history and verifies every new commit before anything is
 * adopted: it must hold a change (size-capped blobs, bounded decode) of this
 * plan, signed by its author, whose ref names that author, and it must be
 * byte for byte the commit Samen builds from that change. Verified changes
 * take the path of every change (history, device refs, replica); anything
 * else is listed in the stats' problems and never adopted.
 *
 * Push moves the remote's device refs forward only (never forced); a ref
 * the remote refuses, or one that has diverged, is reported in problems and
 * does not stop the others.
 */
#ifndef SAMEN_REMOTE_H
#define SAMEN_REMOTE_H

#include "samen/plan.h"

#define SAMEN_REMOTE_NAME_MAX 64
/* How many problems a stats struct keeps in detail (all are counted). */
#define SAMEN_REMOTE_MAX_PROBLEMS 64

typedef struct {
	char ref[192];           /* the ref on the remote (or the local ref pushed) */
	char commit[41];         /* 40 hex, or "" when no commit is concerned */
	char reason[512];
} samen_remote_problem;

typedef struct {
	char plan[33];           /* plan id */
	int cloned;              /* samen_plan_clone(): the plan is new here */
	uint64_t refs;           /* device refs the remote holds for this plan */
	uint64_t received_bytes; /* pull: pack bytes received */
	uint64_t received_objects;
	uint64_t examined;       /* pull: new commits examined */
	uint64_t applied;        /* pull: changes newly adopted */
	uint64_t rejected;       /* pull: adopted, but rejected by the plan's rules */
	uint64_t pending;        /* pull: waiting for changes not received yet */
	uint64_t pushed;         /* push: device refs moved forward on the remote */
	uint64_t up_to_date;     /* push: device refs the remote already had */
	uint64_t sent_bytes;     /* push: pack bytes sent, as libgit2 reports them
	                            (not measured for path remotes) */
	uint64_t refused;        /* problems, counted */
	samen_remote_problem problems[SAMEN_REMOTE_MAX_PROBLEMS];
	size_t nproblems;        /* kept in problems[] (at most the maximum) */
} samen_remote_stats;

typedef struct {
	const char *name;
	const char *url;
	int64_t last_pull;       /* unix time of the last pull, 0 = never */
	int64_t last_push;
	/* Compared with what the last pull or push saw on the remote: */
	int64_t ahead;           /* changes here that the remote lacks */
	int64_t behind;          /* changes there, fetched, not adopted here */
	int64_t diverged;        /* devices whose chains differ (a fork) */
} samen_remote_info;
typedef int (*samen_remote_cb)(const samen_remote_info *r, void *payload);

/* Add a remote to plan. name: 1..64 of [A-Za-z0-9._-], not starting with
 * '.' or '-'. A relative path is made absolute; "{plan}" in url is
 * replaced by the plan id. */
SAMEN_EXTERN int samen_remote_add(samen_plan *plan, const char *name, const char *url);
/* Forget a remote and its quarantine refs. */
SAMEN_EXTERN int samen_remote_remove(samen_plan *plan, const char *name);
/* Every remote, in name order, with ahead/behind counts. */
SAMEN_EXTERN int samen_remote_list(samen_plan *plan, samen_remote_cb cb, void *payload);

/* Fetch, verify and adopt. Returns 0 when the remote could be read, even
 * when some of its data was refused (then stats->refused > 0). */
SAMEN_EXTERN int samen_remote_pull(samen_plan *plan, const char *name, samen_remote_stats *stats);
/* Fast-forward the remote's device refs to ours. Returns 0 when the remote
 * could be reached, even when it refused some refs (stats->refused > 0). */
SAMEN_EXTERN int samen_remote_push(samen_plan *plan, const char *name, samen_remote_stats *stats);

/* Start from a URL: find the plan on the remote (which: a plan id or
 * prefix, NULL when the remote holds exactly one), create it in this store
 * with the remote as remote_name (NULL: "origin"), and pull. A url with
 * "{plan}" needs which to be the whole plan id. *out receives the open plan
 * (may be NULL to just clone). */
SAMEN_EXTERN int samen_plan_clone(samen_plan **out, samen_store *store, const char *url, const char *which,
                                  const char *remote_name, samen_remote_stats *stats);

#endif
