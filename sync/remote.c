/*
 * remote.c - sync through ordinary git remotes (libgit2).
 *
 * Layout on the remote: refs/samen/plans/<plan>/devices/<key>, one ref per
 * device, each pointing at that device's newest change commit (the same
 * commits as in every local history: a change builds one commit id
 * everywhere). Locally, a remote is a [remote "NAME"] section of
 * history.git/config; a pull fetches its refs into the quarantine
 * namespace refs/samen/quarantine/NAME/<key>.
 *
 * Nothing that comes from the remote is trusted (docs/remotes.md):
 *  - the pack is capped (REMOTE_MAX_FETCH_BYTES) while it arrives;
 *  - walking the quarantine refs is iterative (a worklist), stops at
 *    commits whose change this replica already holds under that very
 *    commit, and is capped (REMOTE_MAX_NEW_CHANGES, REMOTE_MAX_NEW_BYTES);
 *  - every commit is read through history_read_change(): the tree must be
 *    exactly {change, sig} and blob sizes are checked from the object
 *    headers before any blob is read;
 *  - the change is decoded by the bounded reader; its plan, signature and
 *    author (the ref's name must be the author of the ref's commit) are
 *    checked, and the commit must equal, byte for byte, the commit Samen
 *    builds from the change bytes with the commits of its prev and deps
 *    as parents (history_hash_change()). Candidates are checked in Lamport
 *    order, so a change's parents are checked before it; a change whose
 *    prev or dep was refused is refused too.
 * Only then do the changes take the ordinary path (plan_ingest): ordering
 * with chain and equivocation checks, history, device refs, replica.
 * Each refusal is recorded with the remote ref, the commit and the reason;
 * good changes are adopted whatever else the remote holds.
 *
 * Push only ever fast-forwards: device refs the remote holds at a commit
 * that is not an ancestor of ours are left out and reported (the remote's
 * refs are read first, so one diverged ref does not fail the whole push),
 * and the refspecs carry no '+', so the server refuses a non-fast-forward
 * that races with us.
 */
#include "sync/internal.h"
#include "samen/remote.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUARANTINE_PREFIX "refs/samen/quarantine/"
#define DEVICES_PREFIX "refs/samen/devices/"
#define REMOTE_PLANS_PREFIX "refs/samen/plans/"

/* Caps on what one pull may bring. The pack is the wire size, the others
 * bound the memory the verification of new changes takes. */
#define REMOTE_MAX_FETCH_BYTES ((uint64_t)2 << 30)  /* 2 GiB */
#define REMOTE_MAX_FETCH_OBJECTS 20000000u
#define REMOTE_MAX_NEW_CHANGES 2000000u
#define REMOTE_MAX_NEW_BYTES ((size_t)1 << 30)      /* change bytes held at once */
/* Changes handed to plan_ingest at a time, as bundles do. */
#define REMOTE_CHUNK_CHANGES 20000u

/* ---- errors and small helpers ----------------------------------------------------- */

static const char *git_detail(void)
{
	const git_error *e = git_error_last();
	return e && e->message && *e->message ? e->message : "no detail from libgit2";
}

static void problem(samen_remote_stats *st, const char *ref, const git_oid *commit, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 4, 5)))
#endif
	;

static void problem(samen_remote_stats *st, const char *ref, const git_oid *commit, const char *fmt, ...)
{
	samen_remote_problem *p;
	va_list ap;

	st->refused++;
	if (st->nproblems >= SAMEN_REMOTE_MAX_PROBLEMS)
		return;
	p = &st->problems[st->nproblems++];
	snprintf(p->ref, sizeof(p->ref), "%s", ref ? ref : "");
	if (commit)
		git_oid_tostr(p->commit, sizeof(p->commit), commit);
	else
		p->commit[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
	va_end(ap);
}

static int parse_key_hex(const char *s, uint8_t key[32])
{
	if (strlen(s) != 64)
		return -1;
	for (const char *c = s; *c; c++)
		if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
			return -1;
	return sodium_hex2bin(key, 32, s, 64, NULL, NULL, NULL) == 0 ? 0 : -1;
}

/* Names become part of ref names and config keys: keep them plain. */
static int check_remote_name(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > SAMEN_REMOTE_NAME_MAX)
		return samen_error_set(SAMEN_EINVAL, "remote name must be 1 to %d characters", SAMEN_REMOTE_NAME_MAX);
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return samen_error_set(SAMEN_EINVAL, "remote name '%s': only letters, digits, '.', '_' and '-'"
			                                     " may be used", name);
	}
	if (name[0] == '.' || name[0] == '-' || strstr(name, "..") || (n >= 5 && !strcmp(name + n - 5, ".lock")))
		return samen_error_set(SAMEN_EINVAL, "remote name '%s' is not valid (it may not start with '.' or"
		                                     " '-', contain '..' or end in '.lock')", name);
	return 0;
}

/* A URL as the user typed it, with a relative path made absolute (the
 * command may run from anywhere later). Forms with "://" and scp-like
 * "user@host:path" are left as they are. Returns malloc'ed text. */
static int normalize_url(const char *url, char **out)
{
	const char *colon, *slash;
	char cwd[PATH_MAX];

	*out = NULL;
	if (!url || !*url)
		return samen_error_set(SAMEN_EINVAL, "no URL given");
	for (const char *c = url; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return samen_error_set(SAMEN_EINVAL, "the URL holds a control character");
	colon = strchr(url, ':');
	slash = strchr(url, '/');
	if (url[0] == '/' || strstr(url, "://") || (colon && (!slash || colon < slash))) {
		if (!(*out = strdup(url)))
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		return 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return samen_error_set(SAMEN_EIO, "cannot resolve the relative path %s: %s", url, strerror(errno));
	if (!(*out = path_join(cwd, url)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	return 0;
}

/* "{plan}" in a URL stands for the plan id, so one template serves every
 * plan of an organisation (a repository per plan on one server). *out is
 * malloc'ed; url is taken as it is when it has no "{plan}". */
#define PLAN_PLACEHOLDER "{plan}"

static int expand_plan_url(const char *url, const char *planhex, char **out)
{
	const char *at = strstr(url, PLAN_PLACEHOLDER);
	size_t pre, plen = strlen(PLAN_PLACEHOLDER);

	*out = NULL;
	if (at && strstr(at + plen, PLAN_PLACEHOLDER))
		return samen_error_set(SAMEN_EINVAL, "the URL holds %s more than once", PLAN_PLACEHOLDER);
	if (!at) {
		if (!(*out = strdup(url)))
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		return 0;
	}
	pre = (size_t)(at - url);
	if (!(*out = malloc(strlen(url) - plen + 32 + 1)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	memcpy(*out, url, pre);
	memcpy(*out + pre, planhex, 32);
	strcpy(*out + pre + 32, at + plen);
	return 0;
}

static void remote_refspec(char *buf, size_t cap, const samen_plan *p, const char *name)
{
	snprintf(buf, cap, "+" REMOTE_PLANS_PREFIX "%s/devices/*:" QUARANTINE_PREFIX "%s/*", p->idhex, name);
}

/* ---- callbacks: credentials, caps, push results ----------------------------------- */

typedef struct {
	samen_remote_stats *stats;
	int cred_tries;
	int over_cap;
	/* push: local refs (by remote ref name) accepted by the server */
	char (*accepted)[192];
	size_t naccepted, cap_accepted;
} remote_ctx;

/* ssh: the ssh agent; https: SAMEN_GIT_USERNAME and SAMEN_GIT_PASSWORD
 * (a token) from the environment, when set. Offered once: a second call
 * means the offer failed, and asking again would loop. */
static int on_credentials(git_credential **out, const char *url, const char *user, unsigned int allowed,
                          void *payload)
{
	remote_ctx *ctx = payload;
	const char *env_user = getenv("SAMEN_GIT_USERNAME"), *env_pass = getenv("SAMEN_GIT_PASSWORD");
	(void)url;
	if (ctx->cred_tries++ > 0)
		return GIT_EAUTH;
	if (allowed & GIT_CREDENTIAL_SSH_KEY)
		return git_credential_ssh_key_from_agent(out, user ? user : "git");
	if ((allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) && env_pass)
		return git_credential_userpass_plaintext_new(out, env_user ? env_user : (user ? user : "git"), env_pass);
	if (allowed & GIT_CREDENTIAL_DEFAULT)
		return git_credential_default_new(out);
	return GIT_PASSTHROUGH;
}

static int on_transfer(const git_indexer_progress *s, void *payload)
{
	remote_ctx *ctx = payload;
	ctx->stats->received_bytes = s->received_bytes;
	ctx->stats->received_objects = s->received_objects;
	if ((uint64_t)s->received_bytes > REMOTE_MAX_FETCH_BYTES || s->total_objects > REMOTE_MAX_FETCH_OBJECTS) {
		ctx->over_cap = 1;
		return -1; /* aborts the fetch */
	}
	return 0;
}

static int on_push_transfer(unsigned int current, unsigned int total, size_t bytes, void *payload)
{
	remote_ctx *ctx = payload;
	(void)current;
	(void)total;
	ctx->stats->sent_bytes = bytes;
	return 0;
}

static int on_push_update(const char *refname, const char *status, void *payload)
{
	remote_ctx *ctx = payload;
	if (status) {
		problem(ctx->stats, refname, NULL, "the remote refused to move this ref: %s", status);
		return 0;
	}
	if (ctx->naccepted == ctx->cap_accepted) {
		size_t nc = ctx->cap_accepted ? ctx->cap_accepted * 2 : 16;
		void *np = realloc(ctx->accepted, nc * sizeof(*ctx->accepted));
		if (!np)
			return -1;
		ctx->accepted = np;
		ctx->cap_accepted = nc;
	}
	snprintf(ctx->accepted[ctx->naccepted++], sizeof(ctx->accepted[0]), "%s", refname);
	ctx->stats->pushed++;
	return 0;
}

static void init_callbacks(git_remote_callbacks *cb, remote_ctx *ctx)
{
	git_remote_init_callbacks(cb, GIT_REMOTE_CALLBACKS_VERSION);
	cb->credentials = on_credentials;
	cb->transfer_progress = on_transfer;
	cb->push_transfer_progress = on_push_transfer;
	cb->push_update_reference = on_push_update;
	cb->payload = ctx;
}

/* ---- the remote's configuration ---------------------------------------------------- */

/*
 * The remote is made in memory from its URL, nameless and without
 * url.*.insteadOf rewriting: every libgit2 1.5 call that reads remotes
 * from the config (git_remote_lookup, git_remote_create, git_remote_list,
 * git_remote_delete) matches config names with a regular expression and
 * leaks pcre2 match data on every name that does not match (its
 * git_regexp_match returns early without freeing). The refspecs are passed
 * to every fetch and push, so nothing else in the config is needed.
 */
static int lookup_remote(git_remote **out, samen_plan *p, const char *name)
{
	git_remote_create_options o;
	git_config *cfg = NULL;
	git_buf url = GIT_BUF_INIT;
	char key[SAMEN_REMOTE_NAME_MAX + 16];
	int rc;

	*out = NULL;
	if ((rc = check_remote_name(name)) < 0)
		return rc;
	snprintf(key, sizeof(key), "remote.%s.url", name);
	if (git_repository_config_snapshot(&cfg, history_repo(p->hist)) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot read the configuration of plan %s: %s", p->idhex, git_detail());
		goto cleanup;
	}
	rc = git_config_get_string_buf(&url, cfg, key);
	if (rc == GIT_ENOTFOUND) {
		rc = samen_error_set(SAMEN_ENOTFOUND, "no remote '%s' in plan %s (samen remote add %s URL)", name,
		                     p->idhex, name);
		goto cleanup;
	}
	if (rc < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot read remote '%s': %s", name, git_detail());
		goto cleanup;
	}
	git_remote_create_options_init(&o, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	o.repository = history_repo(p->hist);
	o.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	if (git_remote_create_with_opts(out, url.ptr, &o) < 0)
		rc = samen_error_set(SAMEN_EINVAL, "remote '%s' has a URL libgit2 cannot use (%s): %s", name, url.ptr,
		                     git_detail());
cleanup:
	git_buf_dispose(&url);
	git_config_free(cfg);
	return rc;
}

/* Written with plain config sets: git_remote_create() matches existing
 * entries with a regular expression and leaks in libgit2 1.5 (see
 * foreach_config_entry()). The result is the section git writes:
 *   [remote "NAME"] url = URL, fetch = +refs/samen/plans/PLAN/devices/(all):(quarantine) */
int samen_remote_add(samen_plan *p, const char *name, const char *url)
{
	git_config *cfg = NULL;
	git_config_entry *existing = NULL;
	char *abs = NULL, *expanded = NULL, spec[256], key[SAMEN_REMOTE_NAME_MAX + 16];
	int rc;

	if ((rc = check_remote_name(name)) < 0 || (rc = expand_plan_url(url, p->idhex, &expanded)) < 0)
		return rc;
	rc = normalize_url(expanded, &abs);
	free(expanded);
	if (rc < 0)
		return rc;
	remote_refspec(spec, sizeof(spec), p, name);
	if (git_repository_config(&cfg, history_repo(p->hist)) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot open the configuration of plan %s: %s", p->idhex, git_detail());
		goto cleanup;
	}
	snprintf(key, sizeof(key), "remote.%s.url", name);
	if (git_config_get_entry(&existing, cfg, key) == 0) {
		rc = samen_error_set(SAMEN_EEXISTS, "plan %s already has a remote '%s' (samen remote list)", p->idhex, name);
		goto cleanup;
	}
	if (git_config_set_string(cfg, key, abs) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot add remote '%s': %s", name, git_detail());
		goto cleanup;
	}
	snprintf(key, sizeof(key), "remote.%s.fetch", name);
	if (git_config_set_string(cfg, key, spec) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot add remote '%s': %s", name, git_detail());
		goto cleanup;
	}
cleanup:
	git_config_entry_free(existing);
	git_config_free(cfg);
	free(abs);
	return rc;
}

/* Delete every ref under prefix (quarantine refs of a removed remote). */
static int delete_refs_under(git_repository *repo, const char *prefix)
{
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	char glob[256];
	int rc = 0;

	snprintf(glob, sizeof(glob), "%s*", prefix);
	if (git_reference_iterator_glob_new(&it, repo, glob) < 0)
		return samen_error_set(SAMEN_EIO, "cannot list %s: %s", prefix, git_detail());
	while (git_reference_next(&ref, it) == 0) {
		if (git_reference_delete(ref) < 0 && rc == 0)
			rc = samen_error_set(SAMEN_EIO, "cannot delete %s: %s", git_reference_name(ref), git_detail());
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	return rc;
}

/*
 * Config entries are walked with a plain iterator and matched here: the
 * libgit2 calls that match config names by regular expression
 * (git_remote_list, git_remote_delete) leak pcre2 match data on every
 * entry that does not match (libgit2 1.5 git_regexp_match), which the
 * sanitizer builds report.
 */
typedef int (*config_entry_cb)(git_config *cfg, const char *entry_name, const char *value, void *payload);

static int foreach_config_entry(samen_plan *p, config_entry_cb cb, void *payload)
{
	git_config *cfg = NULL, *snap = NULL;
	git_config_iterator *it = NULL;
	git_config_entry *e;
	int rc = 0;

	if (git_repository_config(&cfg, history_repo(p->hist)) < 0 || git_config_snapshot(&snap, cfg) < 0 ||
	    git_config_iterator_new(&it, snap) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot read the configuration of plan %s: %s", p->idhex, git_detail());
		goto cleanup;
	}
	while (rc == 0 && git_config_next(&e, it) == 0)
		rc = cb(cfg, e->name, e->value, payload);
cleanup:
	git_config_iterator_free(it);
	git_config_free(snap);
	git_config_free(cfg);
	return rc;
}

typedef struct {
	char prefix[SAMEN_REMOTE_NAME_MAX + 16];
	char **names;
	size_t n, cap;
} entry_list;

static int collect_entry(git_config *cfg, const char *entry_name, const char *value, void *payload)
{
	entry_list *l = payload;
	size_t plen = strlen(l->prefix);
	(void)cfg;
	(void)value;
	if (strncmp(entry_name, l->prefix, plen) != 0)
		return 0;
	/* "remote.NAME.url" -> NAME: the prefix is "remote." when listing */
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 8;
		void *np = realloc(l->names, nc * sizeof(*l->names));
		if (!np)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		l->names = np;
		l->cap = nc;
	}
	if (!(l->names[l->n] = strdup(entry_name)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	l->n++;
	return 0;
}

static void entry_list_free(entry_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
}

int samen_remote_remove(samen_plan *p, const char *name)
{
	git_remote *r = NULL;
	git_config *cfg = NULL;
	entry_list l;
	char prefix[128];
	int rc;

	if ((rc = lookup_remote(&r, p, name)) < 0)
		return rc;
	git_remote_free(r);
	memset(&l, 0, sizeof(l));
	snprintf(l.prefix, sizeof(l.prefix), "remote.%s.", name);
	if ((rc = foreach_config_entry(p, collect_entry, &l)) < 0)
		goto cleanup;
	if (git_repository_config(&cfg, history_repo(p->hist)) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot open the configuration of plan %s: %s", p->idhex, git_detail());
		goto cleanup;
	}
	for (size_t i = 0; i < l.n; i++)
		if (git_config_delete_entry(cfg, l.names[i]) < 0 && git_config_delete_multivar(cfg, l.names[i], ".*") < 0) {
			rc = samen_error_set(SAMEN_EIO, "cannot remove %s from the configuration: %s", l.names[i], git_detail());
			goto cleanup;
		}
	snprintf(prefix, sizeof(prefix), QUARANTINE_PREFIX "%s/", name);
	rc = delete_refs_under(history_repo(p->hist), prefix);
cleanup:
	git_config_free(cfg);
	entry_list_free(&l);
	return rc;
}

/* When the last pull or push happened, in the remote's config section. */
static void record_time(samen_plan *p, const char *name, const char *what)
{
	git_config *cfg = NULL;
	char key[128];
	snprintf(key, sizeof(key), "remote.%s.%s", name, what);
	if (git_repository_config(&cfg, history_repo(p->hist)) == 0)
		(void)git_config_set_int64(cfg, key, (int64_t)time(NULL)); /* only informational */
	git_config_free(cfg);
}

static int64_t recorded_time(git_config *cfg, const char *name, const char *what)
{
	char key[128];
	int64_t v = 0;
	snprintf(key, sizeof(key), "remote.%s.%s", name, what);
	if (git_config_get_int64(&v, cfg, key) < 0)
		v = 0;
	return v;
}

/* ---- reading changes from commits -------------------------------------------------- */

/* seq of the change a commit holds; SAMEN_ECORRUPT (message set) when the
 * commit does not hold a decodable change. */
static int commit_seq(samen_plan *p, const git_oid *commit, uint64_t *seq)
{
	git_oid parents[SAMEN_MAX_DEPS + 1];
	uint8_t *bytes = NULL, sig[64];
	size_t len, np;
	samen_change c;
	int rc;

	if ((rc = history_read_change(p->hist, commit, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
	                              SAMEN_MAX_DEPS + 1, &np)) < 0)
		return rc;
	rc = change_decode(&c, bytes, len);
	if (rc == 0) {
		*seq = c.seq;
		change_clear(&c);
	}
	free(bytes);
	return rc;
}

/* The author of the change a ref's commit holds must be the device the
 * ref is named after. 1 when it is, 0 when not (reported). */
static int tip_names_its_author(samen_plan *p, samen_remote_stats *st, const char *rname, const git_oid *tip,
                                const uint8_t key[32])
{
	git_oid parents[SAMEN_MAX_DEPS + 1];
	uint8_t *bytes = NULL, sig[64];
	size_t len, np;
	samen_change c;
	int rc, same;

	if ((rc = history_read_change(p->hist, tip, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
	                              SAMEN_MAX_DEPS + 1, &np)) < 0) {
		if (rc == SAMEN_ENOMEM)
			return rc;
		problem(st, rname, tip, "not a Samen change commit: %s", samen_error_last());
		return 0;
	}
	if (change_decode(&c, bytes, len) < 0) {
		problem(st, rname, tip, "the change it holds does not decode: %s", samen_error_last());
		free(bytes);
		return 0;
	}
	same = memcmp(c.author, key, 32) == 0;
	if (!same) {
		char a[17], b[17];
		sodium_bin2hex(a, sizeof(a), key, 8);
		sodium_bin2hex(b, sizeof(b), c.author, 8);
		problem(st, rname, tip, "forged device ref: the ref names device %s but its commit is a change by"
		        " device %s", a, b);
	}
	change_clear(&c);
	free(bytes);
	return same;
}

/* ---- pull: fetch ---------------------------------------------------------------------- */

static int fetch_into_quarantine(samen_plan *p, git_remote *remote, const char *name, remote_ctx *ctx)
{
	git_fetch_options fo;
	git_strarray specs;
	git_odb *odb = NULL;
	char spec[256], *specp = spec;

	remote_refspec(spec, sizeof(spec), p, name);
	specs.strings = &specp;
	specs.count = 1;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	init_callbacks(&fo.callbacks, ctx);
	fo.prune = GIT_FETCH_PRUNE;            /* the quarantine mirrors the remote */
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.update_fetchhead = 0;
	if (git_remote_fetch(remote, &specs, &fo, NULL) < 0) {
		if (ctx->over_cap)
			return samen_error_set(SAMEN_ELIMIT, "remote '%s' sent more than the limit of %llu MiB or %u objects;"
			                       " nothing from it was adopted", name,
			                       (unsigned long long)(REMOTE_MAX_FETCH_BYTES >> 20), REMOTE_MAX_FETCH_OBJECTS);
		return samen_error_set(SAMEN_EIO, "cannot fetch from remote '%s' (%s): %s", name, git_remote_url(remote),
		                       git_detail());
	}
	/* the fetch wrote a new pack: make sure every handle's odb sees it */
	if (git_repository_odb(&odb, history_repo(p->hist)) == 0)
		(void)git_odb_refresh(odb);
	git_odb_free(odb);
	return 0;
}

/* ---- pull: walk the new commits ------------------------------------------------------- */

typedef enum { CAND_NEW = 0, CAND_OK, CAND_BAD } cand_state;

typedef struct {
	git_oid commit;
	uint8_t id[32];
	uint8_t author[32];
	uint64_t seq, lamport;
	uint8_t *bytes;       /* owned until handed to the ingest batch */
	size_t len;
	uint8_t sig[64];
	size_t ref;           /* index into the walk's ref names */
	cand_state state;
} candidate;

typedef struct {
	samen_plan *plan;
	samen_remote_stats *stats;
	char (*refs)[192];    /* remote ref names, for reports */
	size_t nrefs, cap_refs;
	candidate *c;
	size_t n, cap;
	size_t held_bytes;
	hmap by_commit;       /* commit -> index */
	hmap verified;        /* change id -> index of the verified candidate */
} walk_state;

typedef struct {
	git_oid commit;
	size_t ref;
} walk_item;

static void walk_free(walk_state *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->c[i].bytes);
	free(w->c);
	free(w->refs);
	hmap_free(&w->by_commit);
	hmap_free(&w->verified);
}

static int add_ref_name(walk_state *w, const char *name, size_t *idx)
{
	if (w->nrefs == w->cap_refs) {
		size_t nc = w->cap_refs ? w->cap_refs * 2 : 16;
		void *np = realloc(w->refs, nc * sizeof(*w->refs));
		if (!np)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		w->refs = np;
		w->cap_refs = nc;
	}
	snprintf(w->refs[w->nrefs], sizeof(w->refs[0]), "%s", name);
	*idx = w->nrefs++;
	return 0;
}

static int push_item(walk_item **stack, size_t *n, size_t *cap, const git_oid *commit, size_t ref)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 256;
		void *np = realloc(*stack, nc * sizeof(**stack));
		if (!np)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		*stack = np;
		*cap = nc;
	}
	(*stack)[*n].commit = *commit;
	(*stack)[*n].ref = ref;
	(*n)++;
	return 0;
}

/*
 * Examine one commit of the walk. Returns 1 when it is a new candidate
 * (its parents are to be walked), 0 when the walk stops here (known, or
 * refused and reported), < 0 on a local error.
 */
static int examine_commit(walk_state *w, const git_oid *commit, size_t ref, git_oid *parents, size_t *np)
{
	samen_plan *p = w->plan;
	const char *rname = w->refs[ref];
	uint8_t *bytes = NULL, sig[64], id[32], raw[20];
	size_t len;
	samen_change ch;
	candidate *c;
	int rc;

	rc = history_read_change(p->hist, commit, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents,
	                         SAMEN_MAX_DEPS + 1, np);
	if (rc == SAMEN_ENOMEM)
		return rc;
	if (rc < 0) {
		problem(w->stats, rname, commit, "not a Samen change commit: %s", samen_error_last());
		return 0;
	}
	change_id(id, bytes, len);
	if (replica_change_commit(p->rep, id, raw) == 0) {
		git_oid known;
		free(bytes);
		git_oid_fromraw(&known, raw);
		if (git_oid_equal(&known, commit))
			return 0; /* known here: the walk stops */
		problem(w->stats, rname, commit, "holds change %.16s, which this plan has as commit %s: not the commit"
		        " Samen builds from that change", sodium_bin2hex((char[65]){0}, 65, id, 32), git_oid_tostr_s(&known));
		return 0;
	}
	if ((rc = change_decode(&ch, bytes, len)) < 0) {
		free(bytes);
		problem(w->stats, rname, commit, "the change it holds does not decode: %s", samen_error_last());
		return 0;
	}
	if (w->n >= REMOTE_MAX_NEW_CHANGES || len > REMOTE_MAX_NEW_BYTES - w->held_bytes) {
		change_clear(&ch);
		free(bytes);
		return samen_error_set(SAMEN_ELIMIT, "the remote has more than %u new changes (or %zu MiB) for one pull;"
		                       " nothing was adopted", REMOTE_MAX_NEW_CHANGES, REMOTE_MAX_NEW_BYTES >> 20);
	}
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 1024;
		void *nptr = realloc(w->c, nc * sizeof(*w->c));
		if (!nptr) {
			change_clear(&ch);
			free(bytes);
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		}
		w->c = nptr;
		w->cap = nc;
	}
	c = &w->c[w->n];
	memset(c, 0, sizeof(*c));
	c->commit = *commit;
	memcpy(c->id, id, 32);
	memcpy(c->author, ch.author, 32);
	c->seq = ch.seq;
	c->lamport = ch.lamport;
	c->bytes = bytes;
	c->len = len;
	memcpy(c->sig, sig, 64);
	c->ref = ref;
	change_clear(&ch);
	if ((rc = hmap_put(&w->by_commit, commit->id, w->n)) < 0)
		return rc; /* the candidate's bytes are freed with the walk */
	w->n++;
	w->held_bytes += len;
	w->stats->examined++;
	return 1;
}

/* Walk from one quarantine ref: the ref's own commit must be a change by
 * the device the ref names; below it, every parent is walked (a dep may be
 * reachable only through another device's commits) until known commits. */
static int walk_ref(walk_state *w, const char *qname, const git_oid *tip)
{
	samen_plan *p = w->plan;
	git_repository *repo = history_repo(p->hist);
	git_odb *odb = NULL;
	walk_item *stack = NULL;
	size_t n = 0, cap = 0, ref = 0, np;
	git_oid parents[SAMEN_MAX_DEPS + 1];
	const char *suffix = strrchr(qname, '/') + 1;
	char rname[192];
	uint8_t key[32];
	git_object_t type;
	size_t size;
	int rc = 0;

	snprintf(rname, sizeof(rname), REMOTE_PLANS_PREFIX "%s/devices/%s", p->idhex,
	         qname + strlen(QUARANTINE_PREFIX) + strcspn(qname + strlen(QUARANTINE_PREFIX), "/") + 1);
	if ((rc = add_ref_name(w, rname, &ref)) < 0)
		return rc;
	w->stats->refs++;
	if (parse_key_hex(suffix, key) < 0 || suffix != qname + strlen(QUARANTINE_PREFIX) +
	    strcspn(qname + strlen(QUARANTINE_PREFIX), "/") + 1) {
		problem(w->stats, rname, tip, "the ref's name is not refs/samen/plans/PLAN/devices/<64 hex digits of a"
		        " device key>");
		return 0;
	}
	if (git_repository_odb(&odb, repo) < 0)
		return samen_error_set(SAMEN_EIO, "cannot open the object database: %s", git_detail());
	rc = git_odb_read_header(&size, &type, odb, tip);
	git_odb_free(odb);
	if (rc < 0) {
		problem(w->stats, rname, tip, "the ref points at an object the remote did not send");
		return 0;
	}
	if (type != GIT_OBJECT_COMMIT) {
		problem(w->stats, rname, tip, "the ref points at a %s, not a commit", git_object_type2string(type));
		return 0;
	}
	if ((rc = tip_names_its_author(p, w->stats, rname, tip, key)) <= 0)
		return rc;
	if ((rc = push_item(&stack, &n, &cap, tip, ref)) < 0)
		return rc;
	while (n > 0) {
		walk_item it = stack[--n];
		if (hmap_get(&w->by_commit, it.commit.id))
			continue;
		rc = examine_commit(w, &it.commit, it.ref, parents, &np);
		if (rc < 0)
			break;
		if (rc == 0)
			continue;
		rc = 0;
		for (size_t k = np; k-- > 0;)
			if ((rc = push_item(&stack, &n, &cap, &parents[k], it.ref)) < 0)
				break;
		if (rc < 0)
			break;
	}
	free(stack);
	return rc;
}

static int walk_quarantine(walk_state *w, const char *name)
{
	git_repository *repo = history_repo(w->plan->hist);
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	char glob[128];
	int rc = 0;

	snprintf(glob, sizeof(glob), QUARANTINE_PREFIX "%s/*", name);
	if (git_reference_iterator_glob_new(&it, repo, glob) < 0)
		return samen_error_set(SAMEN_EIO, "cannot list the quarantine refs: %s", git_detail());
	while (rc >= 0 && git_reference_next(&ref, it) == 0) {
		const char *qname = git_reference_name(ref);
		if (git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
			problem(w->stats, qname, NULL, "symbolic ref: refused");
		} else {
			git_oid tip = *git_reference_target(ref);
			rc = walk_ref(w, qname, &tip);
		}
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	return rc;
}

/* ---- pull: verify --------------------------------------------------------------------- */

static int by_lamport(const void *a, const void *b, void *arg)
{
	const candidate *ca = &((const candidate *)arg)[*(const size_t *)a];
	const candidate *cb = &((const candidate *)arg)[*(const size_t *)b];
	if (ca->lamport != cb->lamport)
		return ca->lamport < cb->lamport ? -1 : 1;
	int k = memcmp(ca->author, cb->author, 32);
	if (k)
		return k;
	return ca->seq < cb->seq ? -1 : ca->seq > cb->seq;
}

/* qsort_r is a GNU extension: a small merge sort instead keeps C11. */
static void sort_order(size_t *idx, size_t *tmp, size_t n, const candidate *c)
{
	for (size_t width = 1; width < n; width *= 2) {
		for (size_t lo = 0; lo < n; lo += 2 * width) {
			size_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
			size_t i = lo, j = mid, k = lo;
			while (i < mid && j < hi)
				tmp[k++] = by_lamport(&idx[j], &idx[i], (void *)c) < 0 ? idx[j++] : idx[i++];
			while (i < mid)
				tmp[k++] = idx[i++];
			while (j < hi)
				tmp[k++] = idx[j++];
		}
		memcpy(idx, tmp, n * sizeof(*idx));
	}
}

/* The commit a change has here or among the verified candidates. */
static int parent_commit_of(walk_state *w, const uint8_t id[32], git_oid *out)
{
	uint64_t *vi = hmap_get(&w->verified, id);
	uint8_t raw[20];
	if (vi) {
		*out = w->c[*vi].commit;
		return 0;
	}
	if (replica_change_commit(w->plan->rep, id, raw) == 0) {
		git_oid_fromraw(out, raw);
		return 0;
	}
	return SAMEN_ENOTFOUND;
}

/* The plan's language decides commit messages. A plan new to this store
 * takes it from its genuine genesis: a PLAN op whose nonce and author hash
 * to the plan id, signed by that author. */
static void learn_language(walk_state *w)
{
	samen_plan *p = w->plan;
	for (size_t i = 0; i < w->n && !p->lang[0]; i++) {
		candidate *c = &w->c[i];
		samen_change ch;
		uint8_t pid[16];
		if (c->seq != 1 || change_decode(&ch, c->bytes, c->len) < 0)
			continue;
		if (ch.nops && ch.ops[0].kind == SAMEN_OP_PLAN) {
			change_plan_id(pid, ch.author, ch.ops[0].key);
			if (memcmp(pid, p->id, 16) == 0 && change_verify(c->sig, c->bytes, c->len, ch.author) == 0)
				snprintf(p->lang, sizeof(p->lang), "%s",
				         ch.ops[0].str2_len == 2 && memcmp(ch.ops[0].str2, "en", 2) == 0 ? "en" : "nl");
		}
		change_clear(&ch);
	}
	samen_error_clear();
}

/* Check one candidate (see the file comment). Returns 0 with c->state set,
 * < 0 on a local error. */
static int verify_candidate(walk_state *w, candidate *c)
{
	samen_plan *p = w->plan;
	const char *rname = w->refs[c->ref];
	git_oid parents[SAMEN_MAX_DEPS + 1], built;
	samen_change ch;
	history_entry e;
	char fp[17], name[SAMEN_MAX_NAME + 1], *msg = NULL;
	size_t np = 0;
	int rc;

	c->state = CAND_BAD;
	if ((rc = change_decode(&ch, c->bytes, c->len)) < 0) { /* decoded once already */
		problem(w->stats, rname, &c->commit, "the change it holds does not decode: %s", samen_error_last());
		return 0;
	}
	if (memcmp(ch.plan, p->id, 16) != 0) {
		char other[33];
		sodium_bin2hex(other, sizeof(other), ch.plan, 16);
		problem(w->stats, rname, &c->commit, "the change belongs to another plan (%s), not to %s", other, p->idhex);
		goto done;
	}
	if (change_verify(c->sig, c->bytes, c->len, ch.author) != 0) {
		problem(w->stats, rname, &c->commit, "the signature does not match the change's author");
		goto done;
	}
	for (uint32_t k = 0; k <= ch.ndeps; k++) {
		const uint8_t *pid = k == 0 ? (ch.has_prev ? ch.prev : NULL) : change_dep(&ch, k - 1);
		if (!pid)
			continue;
		if (parent_commit_of(w, pid, &parents[np++]) < 0) {
			char hex[17];
			sodium_bin2hex(hex, sizeof(hex), pid, 8);
			problem(w->stats, rname, &c->commit, "builds on change %s, which is neither here nor a verified"
			        " change of the remote", hex);
			goto done;
		}
	}
	if (!p->lang[0]) {
		problem(w->stats, rname, &c->commit, "the plan's genesis is neither here nor on the remote");
		goto done;
	}
	if (!(msg = change_commit_message(&ch, c->id, p->lang))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto done;
	}
	sodium_bin2hex(fp, sizeof(fp), ch.author, 8);
	memcpy(name, ch.name, ch.name_len);
	name[ch.name_len] = '\0';
	e.change = c->bytes;
	e.change_len = c->len;
	e.sig = c->sig;
	e.parents = parents;
	e.nparents = np;
	e.author_name = name;
	e.author_email = fp;
	e.time = ch.time;
	e.message = msg;
	if ((rc = history_hash_change(&built, &e)) < 0)
		goto done;
	if (!git_oid_equal(&built, &c->commit)) {
		problem(w->stats, rname, &c->commit, "not the commit Samen builds from the change it holds (that is %s)",
		        git_oid_tostr_s(&built));
		goto done;
	}
	if (hmap_get(&w->verified, c->id)) {
		problem(w->stats, rname, &c->commit, "a second commit for a change already verified");
		goto done;
	}
	if ((rc = hmap_put(&w->verified, c->id, (uint64_t)(c - w->c))) < 0)
		goto done;
	c->state = CAND_OK;
done:
	free(msg);
	change_clear(&ch);
	return rc < 0 ? rc : 0;
}

/* ---- pull: adopt ------------------------------------------------------------------------ */

static int adopt_chunk(walk_state *w, ingest_batch *b)
{
	samen_plan *p = w->plan;
	sqlite3_stmt *s = NULL;
	int rc;

	if (b->n == 0)
		return 0;
	if ((rc = plan_ingest(p, b)) < 0)
		return rc;
	w->stats->applied += b->nready;
	w->stats->pending += b->npending;
	for (size_t i = 0; i < b->n; i++) {
		ingest_item *it = &b->items[i];
		if (it->state == ITEM_BAD && it->origin) {
			candidate *c = &w->c[it->origin - 1];
			problem(w->stats, w->refs[c->ref], &c->commit, "%s", it->error ? it->error : "refused");
		}
	}
	if (sqlite3_prepare_v2(replica_db(p->rep), "SELECT verdict FROM changes WHERE id = ?", -1, &s, NULL) == SQLITE_OK) {
		for (size_t i = 0; i < b->nready; i++) {
			sqlite3_reset(s);
			sqlite3_bind_blob(s, 1, b->items[b->order[i]].id, 32, SQLITE_STATIC);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_int(s, 0) == 0)
				w->stats->rejected++;
		}
	}
	sqlite3_finalize(s);
	return 0;
}

/* Verify every candidate in Lamport order and adopt the good ones in
 * chunks. */
static int verify_and_adopt(walk_state *w)
{
	size_t *order = NULL, *tmp = NULL, inchunk = 0;
	ingest_batch b;
	bool binit = false;
	int rc = 0;

	if (w->n == 0)
		return 0;
	if (!(order = malloc(w->n * sizeof(*order))) || !(tmp = malloc(w->n * sizeof(*tmp)))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	for (size_t i = 0; i < w->n; i++)
		order[i] = i;
	sort_order(order, tmp, w->n, w->c);
	learn_language(w);
	if ((rc = ingest_init(&b, w->plan->id)) < 0)
		goto cleanup;
	binit = true;
	for (size_t k = 0; k < w->n; k++) {
		candidate *c = &w->c[order[k]];
		size_t before = b.n;
		if ((rc = verify_candidate(w, c)) < 0)
			goto cleanup;
		if (c->state != CAND_OK)
			continue;
		/* the bytes go to the batch, which frees them in every case */
		rc = ingest_add_unverified(&b, c->bytes, c->len, c->sig);
		c->bytes = NULL;
		if (rc < 0) {
			problem(w->stats, w->refs[c->ref], &c->commit, "%s", samen_error_last());
			rc = 0;
			continue;
		}
		if (b.n > before) {
			/* verify_candidate() checked the signature */
			b.items[b.n - 1].verified = true;
			b.items[b.n - 1].origin = (uint64_t)order[k] + 1;
			inchunk++;
		}
		if (inchunk >= REMOTE_CHUNK_CHANGES) {
			if ((rc = adopt_chunk(w, &b)) < 0)
				goto cleanup;
			ingest_free(&b);
			binit = false;
			if ((rc = ingest_init(&b, w->plan->id)) < 0)
				goto cleanup;
			binit = true;
			inchunk = 0;
		}
	}
	rc = adopt_chunk(w, &b);
cleanup:
	if (binit)
		ingest_free(&b);
	free(order);
	free(tmp);
	return rc;
}

/* After verification a quarantine ref stays only where its commit is a
 * verified change commit: one the replica holds under that very commit, or
 * a candidate that passed every check (it may still have been refused by
 * the ordering, as a fork is: status then shows the divergence). Anything
 * else is deleted, so that a ref at a blob or at a commit with missing
 * parents cannot break the negotiation of every later fetch. What was
 * refused was reported; the next pull reports it again. */
static bool quarantine_ref_verified(walk_state *w, const git_oid *tip)
{
	samen_plan *p = w->plan;
	uint64_t *ci = hmap_get(&w->by_commit, tip->id);
	git_oid parents[SAMEN_MAX_DEPS + 1];
	uint8_t *bytes = NULL, sig[64], id[32], raw[20];
	size_t len, np;
	bool ok;

	if (ci)
		return w->c[*ci].state == CAND_OK;
	if (history_read_change(p->hist, tip, &bytes, &len, SAMEN_MAX_CHANGE_BYTES, sig, parents, SAMEN_MAX_DEPS + 1,
	                        &np) < 0) {
		samen_error_clear();
		return false;
	}
	change_id(id, bytes, len);
	free(bytes);
	ok = replica_change_commit(p->rep, id, raw) == 0 && memcmp(raw, tip->id, 20) == 0;
	return ok;
}

static int prune_quarantine(walk_state *w, const char *name)
{
	git_repository *repo = history_repo(w->plan->hist);
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	git_odb *odb = NULL;
	char glob[128];
	int rc = 0;

	snprintf(glob, sizeof(glob), QUARANTINE_PREFIX "%s/*", name);
	if (git_repository_odb(&odb, repo) < 0 || git_reference_iterator_glob_new(&it, repo, glob) < 0) {
		git_odb_free(odb);
		return samen_error_set(SAMEN_EIO, "cannot list the quarantine refs: %s", git_detail());
	}
	while (git_reference_next(&ref, it) == 0) {
		const git_oid *tip = git_reference_target(ref);
		git_object_t type = GIT_OBJECT_INVALID;
		size_t size;
		bool keep = tip && git_odb_read_header(&size, &type, odb, tip) == 0 && type == GIT_OBJECT_COMMIT &&
		            quarantine_ref_verified(w, tip);
		if (!keep && git_reference_delete(ref) < 0 && rc == 0)
			rc = samen_error_set(SAMEN_EIO, "cannot delete the refused ref %s: %s", git_reference_name(ref),
			                     git_detail());
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
	git_odb_free(odb);
	return rc;
}

int samen_remote_pull(samen_plan *p, const char *name, samen_remote_stats *st)
{
	git_remote *remote = NULL;
	remote_ctx ctx;
	walk_state w;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(&ctx, 0, sizeof(ctx));
	memset(&w, 0, sizeof(w));
	snprintf(st->plan, sizeof(st->plan), "%s", p->idhex);
	ctx.stats = st;
	w.plan = p;
	w.stats = st;
	hmap_init(&w.by_commit, 20);
	hmap_init(&w.verified, 32);
	if ((rc = lookup_remote(&remote, p, name)) < 0)
		goto cleanup;
	/* what an interrupted pull may have left unverified goes first (the
	 * fetch brings it again) */
	if ((rc = prune_quarantine(&w, name)) < 0 || (rc = fetch_into_quarantine(p, remote, name, &ctx)) < 0)
		goto cleanup;
	if ((rc = walk_quarantine(&w, name)) < 0)
		goto cleanup;
	if ((rc = verify_and_adopt(&w)) < 0 || (rc = prune_quarantine(&w, name)) < 0)
		goto cleanup;
	record_time(p, name, "samenlastpull");
cleanup:
	walk_free(&w);
	git_remote_free(remote);
	return rc;
}

/* ---- push ------------------------------------------------------------------------------- */

typedef struct {
	samen_plan *plan;
	const char *name;
	const git_remote_head **heads; /* the remote's refs */
	size_t nheads;
	samen_remote_stats *stats;
	char **specs;
	size_t nspecs, cap;
} push_plan;

static const git_oid *remote_head(const push_plan *pp, const char *refname)
{
	for (size_t i = 0; i < pp->nheads; i++)
		if (strcmp(pp->heads[i]->name, refname) == 0)
			return &pp->heads[i]->oid;
	return NULL;
}

/* Decide for one local device ref whether it goes out. */
static int plan_push_ref(const uint8_t key[32], const git_oid *local, void *payload)
{
	push_plan *pp = payload;
	git_repository *repo = history_repo(pp->plan->hist);
	char keyhex[65], rname[192], *spec;
	const git_oid *there;

	sodium_bin2hex(keyhex, sizeof(keyhex), key, 32);
	snprintf(rname, sizeof(rname), REMOTE_PLANS_PREFIX "%s/devices/%s", pp->plan->idhex, keyhex);
	there = remote_head(pp, rname);
	if (there && git_oid_equal(there, local)) {
		pp->stats->up_to_date++;
		return 0;
	}
	if (there) {
		git_odb *odb = NULL;
		int known = 0;
		if (git_repository_odb(&odb, repo) == 0)
			known = git_odb_exists(odb, there);
		git_odb_free(odb);
		if (!known) {
			problem(pp->stats, rname, there, "the remote has changes of this device that were not pulled yet;"
			        " pull first (samen sync %s)", pp->name);
			return 0;
		}
		if (git_graph_descendant_of(repo, there, local) == 1) {
			pp->stats->up_to_date++; /* the remote is further: a pull brings it */
			return 0;
		}
		if (git_graph_descendant_of(repo, local, there) != 1) {
			problem(pp->stats, rname, there, "the remote's chain of this device forks from ours; it is not"
			        " overwritten (a device signed two different histories)");
			return 0;
		}
	}
	if (pp->nspecs == pp->cap) {
		size_t nc = pp->cap ? pp->cap * 2 : 16;
		void *np = realloc(pp->specs, nc * sizeof(*pp->specs));
		if (!np)
			return samen_error_set(SAMEN_ENOMEM, "out of memory");
		pp->specs = np;
		pp->cap = nc;
	}
	/* no '+': the remote refuses anything but a fast-forward */
	if (!(spec = malloc(strlen(rname) + 96)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	sprintf(spec, DEVICES_PREFIX "%s:%s", keyhex, rname);
	pp->specs[pp->nspecs++] = spec;
	return 0;
}

/* After the remote accepted a ref, the quarantine shows what it now holds. */
static void note_pushed(samen_plan *p, const char *name, const char *rname)
{
	const char *key = strrchr(rname, '/');
	uint8_t k[32];
	git_oid local;
	git_reference *ref = NULL;
	char qname[192];

	if (!key || parse_key_hex(key + 1, k) < 0 || history_get_device_ref(p->hist, k, &local) < 0)
		return;
	snprintf(qname, sizeof(qname), QUARANTINE_PREFIX "%s/%s", name, key + 1);
	if (git_reference_create(&ref, history_repo(p->hist), qname, &local, 1, "samen push") == 0)
		git_reference_free(ref);
}

int samen_remote_push(samen_plan *p, const char *name, samen_remote_stats *st)
{
	git_remote *remote = NULL;
	git_remote_callbacks cb;
	git_push_options po;
	git_strarray specs;
	remote_ctx ctx;
	push_plan pp;
	bool connected = false;
	int rc;

	memset(st, 0, sizeof(*st));
	memset(&ctx, 0, sizeof(ctx));
	memset(&pp, 0, sizeof(pp));
	snprintf(st->plan, sizeof(st->plan), "%s", p->idhex);
	ctx.stats = st;
	pp.plan = p;
	pp.name = name;
	pp.stats = st;
	if ((rc = lookup_remote(&remote, p, name)) < 0)
		goto cleanup;
	init_callbacks(&cb, &ctx);
	if (git_remote_connect(remote, GIT_DIRECTION_PUSH, &cb, NULL, NULL) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot connect to remote '%s' (%s) to push: %s", name,
		                     git_remote_url(remote), git_detail());
		goto cleanup;
	}
	connected = true;
	if (git_remote_ls(&pp.heads, &pp.nheads, remote) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot list the refs of remote '%s': %s", name, git_detail());
		goto cleanup;
	}
	if ((rc = history_foreach_device_ref(p->hist, plan_push_ref, &pp)) < 0)
		goto cleanup;
	if (pp.nspecs > 0) {
		git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
		po.callbacks = cb;
		specs.strings = pp.specs;
		specs.count = pp.nspecs;
		if (git_remote_upload(remote, &specs, &po) < 0) {
			rc = samen_error_set(SAMEN_EIO, "cannot push to remote '%s' (%s): %s", name, git_remote_url(remote),
			                     git_detail());
			goto cleanup;
		}
		for (size_t i = 0; i < ctx.naccepted; i++)
			note_pushed(p, name, ctx.accepted[i]);
	}
	record_time(p, name, "samenlastpush");
cleanup:
	if (connected)
		git_remote_disconnect(remote);
	for (size_t i = 0; i < pp.nspecs; i++)
		free(pp.specs[i]);
	free(pp.specs);
	free(ctx.accepted);
	git_remote_free(remote);
	return rc;
}

/* ---- list, with ahead and behind ------------------------------------------------------ */

typedef struct {
	samen_plan *plan;
	const char *name;
	samen_remote_info *info;
} compare_ctx;

/* One local device ref against the quarantine's view of the remote. */
static int compare_local(const uint8_t key[32], const git_oid *local, void *payload)
{
	compare_ctx *cc = payload;
	git_repository *repo = history_repo(cc->plan->hist);
	git_reference *ref = NULL;
	char keyhex[65], qname[192];
	uint64_t lseq = 0, rseq = 0;
	git_oid there;

	sodium_bin2hex(keyhex, sizeof(keyhex), key, 32);
	snprintf(qname, sizeof(qname), QUARANTINE_PREFIX "%s/%s", cc->name, keyhex);
	if (commit_seq(cc->plan, local, &lseq) < 0)
		return 0;
	if (git_reference_lookup(&ref, repo, qname) < 0 || git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
		git_reference_free(ref);
		cc->info->ahead += (int64_t)lseq;
		return 0;
	}
	there = *git_reference_target(ref);
	git_reference_free(ref);
	if (git_oid_equal(&there, local))
		return 0;
	if (commit_seq(cc->plan, &there, &rseq) < 0) {
		cc->info->diverged++;
		return 0;
	}
	if (git_graph_descendant_of(repo, local, &there) == 1)
		cc->info->ahead += (int64_t)(lseq - rseq);
	else if (git_graph_descendant_of(repo, &there, local) == 1)
		cc->info->behind += (int64_t)(rseq - lseq);
	else
		cc->info->diverged++;
	return 0;
}

/* Quarantine refs of devices we have no ref for: all behind. */
static void compare_remote_only(compare_ctx *cc)
{
	git_repository *repo = history_repo(cc->plan->hist);
	git_reference_iterator *it = NULL;
	git_reference *ref = NULL;
	char glob[128];

	snprintf(glob, sizeof(glob), QUARANTINE_PREFIX "%s/*", cc->name);
	if (git_reference_iterator_glob_new(&it, repo, glob) < 0)
		return;
	while (git_reference_next(&ref, it) == 0) {
		const char *key = strrchr(git_reference_name(ref), '/') + 1;
		uint8_t k[32];
		git_oid local;
		uint64_t seq;
		if (git_reference_type(ref) == GIT_REFERENCE_DIRECT && parse_key_hex(key, k) == 0 &&
		    history_get_device_ref(cc->plan->hist, k, &local) == SAMEN_ENOTFOUND) {
			if (commit_seq(cc->plan, git_reference_target(ref), &seq) == 0)
				cc->info->behind += (int64_t)seq;
			else
				cc->info->diverged++;
		}
		git_reference_free(ref);
	}
	git_reference_iterator_free(it);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int samen_remote_list(samen_plan *p, samen_remote_cb cb, void *payload)
{
	git_repository *repo = history_repo(p->hist);
	git_config *cfg = NULL;
	entry_list l;
	int rc;

	memset(&l, 0, sizeof(l));
	snprintf(l.prefix, sizeof(l.prefix), "remote.");
	if ((rc = foreach_config_entry(p, collect_entry, &l)) < 0)
		goto cleanup;
	if (git_repository_config_snapshot(&cfg, repo) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot read the remotes of plan %s: %s", p->idhex, git_detail());
		goto cleanup;
	}
	/* keep "remote.NAME.url" entries, as NAME */
	for (size_t i = 0; i < l.n; i++) {
		char *nm = l.names[i] + strlen("remote.");
		size_t len = strlen(nm);
		if (len > 4 && strcmp(nm + len - 4, ".url") == 0) {
			memmove(l.names[i], nm, len - 4);
			l.names[i][len - 4] = '\0';
		} else {
			l.names[i][0] = '\0';
		}
	}
	if (l.n > 1)
		qsort(l.names, l.n, sizeof(*l.names), by_name);
	for (size_t i = 0; i < l.n && rc == 0; i++) {
		git_buf url = GIT_BUF_INIT;
		samen_remote_info info;
		compare_ctx cc;
		char key[SAMEN_REMOTE_NAME_MAX + 16];
		if (!l.names[i][0] || check_remote_name(l.names[i]) < 0) {
			samen_error_clear();
			continue; /* not one of ours */
		}
		snprintf(key, sizeof(key), "remote.%s.url", l.names[i]);
		if (git_config_get_string_buf(&url, cfg, key) < 0)
			continue;
		memset(&info, 0, sizeof(info));
		info.name = l.names[i];
		info.url = url.ptr;
		info.last_pull = recorded_time(cfg, info.name, "samenlastpull");
		info.last_push = recorded_time(cfg, info.name, "samenlastpush");
		cc.plan = p;
		cc.name = info.name;
		cc.info = &info;
		rc = history_foreach_device_ref(p->hist, compare_local, &cc);
		if (rc == 0) {
			compare_remote_only(&cc);
			rc = cb(&info, payload);
		}
		git_buf_dispose(&url);
	}
cleanup:
	git_config_free(cfg);
	entry_list_free(&l);
	return rc;
}

/* ---- clone --------------------------------------------------------------------------- */

/* The plans a remote holds, from its advertised refs: ids (32 hex) into
 * ids[max][33]. */
static int remote_plans(const char *url, char (*ids)[33], size_t max, size_t *n)
{
	git_remote *r = NULL;
	git_remote_callbacks cb;
	const git_remote_head **heads;
	size_t nheads;
	remote_ctx ctx;
	samen_remote_stats scratch;
	int rc = 0;

	*n = 0;
	memset(&ctx, 0, sizeof(ctx));
	memset(&scratch, 0, sizeof(scratch));
	ctx.stats = &scratch;
	if (git_remote_create_detached(&r, url) < 0)
		return samen_error_set(SAMEN_EINVAL, "cannot use %s as a remote: %s", url, git_detail());
	init_callbacks(&cb, &ctx);
	if (git_remote_connect(r, GIT_DIRECTION_FETCH, &cb, NULL, NULL) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot connect to %s: %s", url, git_detail());
		goto cleanup;
	}
	if (git_remote_ls(&heads, &nheads, r) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot list the refs of %s: %s", url, git_detail());
		goto cleanup;
	}
	for (size_t i = 0; i < nheads; i++) {
		const char *nm = heads[i]->name, *id;
		size_t k;
		if (strncmp(nm, REMOTE_PLANS_PREFIX, strlen(REMOTE_PLANS_PREFIX)) != 0)
			continue;
		id = nm + strlen(REMOTE_PLANS_PREFIX);
		if (strlen(id) < 33 || id[32] != '/' || strncmp(id + 33, "devices/", 8) != 0 ||
		    strspn(id, "0123456789abcdef") < 32)
			continue;
		for (k = 0; k < *n && strncmp(ids[k], id, 32) != 0; k++)
			;
		if (k < *n || *n == max)
			continue;
		memcpy(ids[*n], id, 32);
		ids[*n][32] = '\0';
		(*n)++;
	}
	git_remote_disconnect(r);
cleanup:
	git_remote_free(r);
	return rc;
}

#define CLONE_MAX_LISTED 64

int samen_plan_clone(samen_plan **out, samen_store *store, const char *url, const char *which,
                     const char *remote_name, samen_remote_stats *st)
{
	char (*ids)[33] = NULL, *abs = NULL, *dir = NULL;
	size_t n = 0, match = 0, idx = 0;
	samen_plan *p = NULL;
	uint8_t id[16];
	int rc;

	if (out)
		*out = NULL;
	memset(st, 0, sizeof(*st));
	if (!remote_name)
		remote_name = "origin";
	if (strstr(url, PLAN_PLACEHOLDER)) {
		/* a URL template names one repository per plan: the plan id is
		 * needed in full to know which */
		char *expanded = NULL;
		if (!which || strlen(which) != 32 || strspn(which, "0123456789abcdef") != 32)
			return samen_error_set(SAMEN_EINVAL, "the URL %s needs the whole plan id (32 hex digits) to clone"
			                       " from", url);
		if ((rc = expand_plan_url(url, which, &expanded)) < 0)
			return rc;
		rc = check_remote_name(remote_name) < 0 ? SAMEN_EINVAL : normalize_url(expanded, &abs);
		free(expanded);
	} else if ((rc = check_remote_name(remote_name)) == 0) {
		rc = normalize_url(url, &abs);
	}
	if (rc < 0)
		return rc;
	/* no history is open yet to have started libgit2 */
	if (git_libgit2_init() < 0) {
		free(abs);
		return samen_error_set(SAMEN_ERROR, "cannot initialise libgit2: %s", git_detail());
	}
	if (!(ids = calloc(CLONE_MAX_LISTED, sizeof(*ids)))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if ((rc = remote_plans(abs, ids, CLONE_MAX_LISTED, &n)) < 0)
		goto cleanup;
	for (size_t i = 0; i < n; i++)
		if (!which || strncmp(ids[i], which, strlen(which)) == 0) {
			match++;
			idx = i;
		}
	if (match != 1) {
		rc = n == 0 ? samen_error_set(SAMEN_ENOTFOUND, "%s holds no Samen plan (no refs/samen/plans/...)", abs)
		     : match == 0 ? samen_error_set(SAMEN_ENOTFOUND, "%s holds no plan '%s'", abs, which)
		     : samen_error_set(SAMEN_EAMBIGUOUS, "%s holds %zu plans%s%s; name one (samen plan clone URL PLAN),"
		                       " e.g. %s", abs, match, which ? " matching " : "", which ? which : "", ids[0]);
		goto cleanup;
	}
	sodium_hex2bin(id, 16, ids[idx], 32, NULL, NULL, NULL);
	snprintf(st->plan, sizeof(st->plan), "%s", ids[idx]);
	if (!(dir = path_join(store->plans_dir, ids[idx]))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto cleanup;
	}
	if (access(dir, F_OK) == 0) {
		rc = samen_error_set(SAMEN_EEXISTS, "plan %s is already in this store; add the remote to it instead"
		                     " (samen --plan %s remote add NAME URL, then samen pull NAME)", ids[idx], ids[idx]);
		goto cleanup;
	}
	if ((rc = plan_open_staged(&p, store, id)) < 0 || (rc = samen_remote_add(p, remote_name, abs)) < 0)
		goto cleanup;
	rc = samen_remote_pull(p, remote_name, st);
	if (rc == 0 && st->applied == 0)
		rc = samen_error_set(SAMEN_ENOTFOUND, "%s holds no valid change of plan %s%s%s", abs, st->plan,
		                     st->nproblems ? ": " : "", st->nproblems ? st->problems[0].reason : "");
	if (rc < 0)
		goto cleanup;
	st->cloned = 1;
	if ((rc = plan_publish(&p)) < 0)
		goto cleanup;
	if (out) {
		*out = p;
		p = NULL;
	}
cleanup:
	if (p && !st->cloned) {
		/* nothing came: leave nothing behind */
		char *staged = strdup(p->dir);
		samen_plan_free(p);
		p = NULL;
		if (staged)
			remove_tree(staged);
		free(staged);
	}
	samen_plan_free(p);
	free(dir);
	free(ids);
	free(abs);
	git_libgit2_shutdown();
	return rc;
}
