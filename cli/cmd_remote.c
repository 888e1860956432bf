/* cmd_remote.c - remote add|list|remove, push, pull, sync, plan clone. */
#include "cli/cli.h"
#include "cli/i18n.h"

#include <stdlib.h>
#include <string.h>

static const char *when_text(char *buf, size_t cap, int64_t t)
{
	if (t <= 0)
		return _("never");
	fmt_time(buf, cap, t);
	return buf;
}

/* --- remote add | list | remove ---------------------------------------------------- */

typedef struct {
	const cli *c;
	int count;
} remote_list_ctx;

static void json_remote(const samen_remote_info *r)
{
	int first = 1;
	printf("{");
	json_kv_str(stdout, &first, "name", r->name);
	json_kv_str(stdout, &first, "url", r->url);
	json_kv_int(stdout, &first, "last_pull", r->last_pull);
	json_kv_int(stdout, &first, "last_push", r->last_push);
	json_kv_int(stdout, &first, "ahead", r->ahead);
	json_kv_int(stdout, &first, "behind", r->behind);
	json_kv_int(stdout, &first, "diverged", r->diverged);
	printf("}");
}

/* For `remote list` and `status`, so in the output language. */
static void text_remote(const samen_remote_info *r, const char *indent)
{
	char pull[32], push[32];
	printf("%s%s  %s\n", indent, r->name, r->url);
	printf(_("%s  %lld changes to push, %lld fetched and not adopted; last pull %s, last push %s\n"), indent,
	       (long long)r->ahead, (long long)r->behind, when_text(pull, sizeof(pull), r->last_pull),
	       when_text(push, sizeof(push), r->last_push));
	if (r->diverged)
		printf(P_("%s  %lld device's chain differs here and there (a fork: see samen pull)\n",
		          "%s  %lld devices' chains differ here and there (a fork: see samen pull)\n", r->diverged),
		       indent, (long long)r->diverged);
}

static int list_one(const samen_remote_info *r, void *payload)
{
	remote_list_ctx *x = payload;
	if (x->c->json) {
		printf("%s", x->count ? "," : "");
		json_remote(r);
	} else {
		text_remote(r, "");
	}
	x->count++;
	return 0;
}

int cmd_remote(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	const char *sub = c->argc ? c->argv[0] : NULL;
	int rc = 0;

	if (!sub)
		return usage("remote: add, list or remove?");
	c->argc--;
	c->argv++;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (strcmp(sub, "add") == 0 && c->argc != 2)
		return usage("remote add NAME URL");
	if ((strcmp(sub, "remove") == 0 || strcmp(sub, "rm") == 0) && c->argc != 1)
		return usage("remote remove NAME");
	if (strcmp(sub, "list") == 0 && c->argc != 0)
		return usage("remote list takes no arguments");
	if (strcmp(sub, "add") && strcmp(sub, "remove") && strcmp(sub, "rm") && strcmp(sub, "list"))
		return usage("remote: add, list or remove?");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "remote");
	if (strcmp(sub, "add") == 0) {
		if (samen_remote_add(p, c->argv[0], c->argv[1]) < 0) {
			rc = fail(c, "remote add");
		} else if (c->json) {
			int first = 1;
			printf("{");
			json_kv_bool(stdout, &first, "ok", 1);
			json_kv_str(stdout, &first, "remote", c->argv[0]);
			printf("}\n");
		} else {
			printf("Added remote %s for plan %s\n", c->argv[0], samen_plan_id(p));
		}
	} else if (strcmp(sub, "list") == 0) {
		remote_list_ctx x = {c, 0};
		if (c->json)
			printf("[");
		if (samen_remote_list(p, list_one, &x) < 0) {
			if (c->json)
				printf("]\n");
			rc = fail(c, "remote list");
		} else if (c->json) {
			printf("]\n");
		} else if (x.count == 0) {
			printf("No remotes. Add one with: samen remote add NAME URL\n");
		}
	} else {
		if (samen_remote_remove(p, c->argv[0]) < 0) {
			rc = fail(c, "remote remove");
		} else if (c->json) {
			int first = 1;
			printf("{");
			json_kv_bool(stdout, &first, "ok", 1);
			json_kv_str(stdout, &first, "removed", c->argv[0]);
			printf("}\n");
		} else {
			printf("Removed remote %s\n", c->argv[0]);
		}
	}
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

/* --- push, pull, sync ---------------------------------------------------------------- */

static void json_problems(const samen_remote_stats *st, int *first)
{
	printf("%s\"refused\":[", *first ? "" : ",");
	*first = 0;
	for (size_t i = 0; i < st->nproblems; i++) {
		int f = 1;
		printf("%s{", i ? "," : "");
		json_kv_str(stdout, &f, "ref", st->problems[i].ref);
		json_kv_str(stdout, &f, "commit", st->problems[i].commit[0] ? st->problems[i].commit : NULL);
		json_kv_str(stdout, &f, "reason", st->problems[i].reason);
		printf("}");
	}
	printf("]");
}

static void text_problems(const samen_remote_stats *st, const char *what)
{
	for (size_t i = 0; i < st->nproblems; i++)
		fprintf(stderr, "samen: %s: refused %s%s%.12s: %s\n", what, st->problems[i].ref,
		        st->problems[i].commit[0] ? " at " : "", st->problems[i].commit, st->problems[i].reason);
	if (st->refused > st->nproblems)
		fprintf(stderr, "samen: %s: and %llu more refusals\n", what,
		        (unsigned long long)(st->refused - st->nproblems));
}

static void json_pull(const samen_remote_stats *st, int *first)
{
	json_kv_int(stdout, first, "refs", (long long)st->refs);
	json_kv_int(stdout, first, "received_bytes", (long long)st->received_bytes);
	json_kv_int(stdout, first, "received_objects", (long long)st->received_objects);
	json_kv_int(stdout, first, "examined", (long long)st->examined);
	json_kv_int(stdout, first, "applied", (long long)st->applied);
	json_kv_int(stdout, first, "rejected", (long long)st->rejected);
	json_kv_int(stdout, first, "pending", (long long)st->pending);
}

static void json_push(const samen_remote_stats *st, int *first)
{
	json_kv_int(stdout, first, "pushed", (long long)st->pushed);
	json_kv_int(stdout, first, "up_to_date", (long long)st->up_to_date);
	json_kv_int(stdout, first, "sent_bytes", (long long)st->sent_bytes);
}

static void text_pull(const char *name, const samen_remote_stats *st)
{
	printf("Pulled from %s: %llu new changes (%llu rejected by the plan's rules, %llu waiting), %llu bytes"
	       " received\n", name, (unsigned long long)st->applied, (unsigned long long)st->rejected,
	       (unsigned long long)st->pending, (unsigned long long)st->received_bytes);
}

static void text_push(const char *name, const samen_remote_stats *st)
{
	/* (no byte count: libgit2's transport for paths does not report one) */
	printf("Pushed to %s: %llu device refs moved forward, %llu already there\n", name,
	       (unsigned long long)st->pushed, (unsigned long long)st->up_to_date);
}

/* what: 1 pull, 2 push, 3 both (sync: pull, then push). Exit 1 when the
 * remote could not be used or refused anything. */
static int transfer(cli *c, int what, const char *cmd)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_remote_stats *in = NULL, *out = NULL;
	const char *name;
	char msg[128];
	int rc = 0, first = 1;

	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 1) {
		snprintf(msg, sizeof(msg), "%s NAME (a remote of the plan: samen remote list)", cmd);
		return usage(msg);
	}
	name = c->argv[0];
	if (!(in = calloc(1, sizeof(*in))) || !(out = calloc(1, sizeof(*out)))) {
		free(in);
		fprintf(stderr, "samen: out of memory\n");
		return 1;
	}
	if (open_plan(c, &s, &p) < 0) {
		rc = fail(c, cmd);
		goto done;
	}
	if ((what & 1) && samen_remote_pull(p, name, in) < 0) {
		rc = fail(c, cmd);
		goto done;
	}
	if ((what & 2) && samen_remote_push(p, name, out) < 0) {
		rc = fail(c, cmd);
		goto done;
	}
	if (in->refused || out->refused)
		rc = 1;
	if (c->json) {
		printf("{");
		json_kv_bool(stdout, &first, "ok", rc == 0);
		json_kv_str(stdout, &first, "remote", name);
		json_kv_str(stdout, &first, "plan", samen_plan_id(p));
		if (what & 1)
			json_pull(in, &first);
		if (what & 2)
			json_push(out, &first);
		/* one list: a sync reports the refusals of both directions */
		for (size_t i = 0; i < out->nproblems && in->nproblems < SAMEN_REMOTE_MAX_PROBLEMS; i++)
			in->problems[in->nproblems++] = out->problems[i];
		json_problems(in, &first);
		printf("}\n");
	} else {
		if (what & 1)
			text_pull(name, in);
		if (what & 2)
			text_push(name, out);
		text_problems(in, cmd);
		text_problems(out, cmd);
	}
done:
	samen_plan_free(p);
	samen_store_free(s);
	free(in);
	free(out);
	return rc;
}

int cmd_pull(cli *c) { return transfer(c, 1, "pull"); }
int cmd_push(cli *c) { return transfer(c, 2, "push"); }
int cmd_sync(cli *c) { return transfer(c, 3, "sync"); }

/* --- plan clone URL [PLAN] [--remote NAME] ------------------------------------------ */

int cmd_plan_clone(cli *c)
{
	samen_store *s = NULL;
	samen_remote_stats *st = NULL;
	const char *remote = take_opt(c, "--remote"), *which;
	int rc = 0, first = 1;

	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc < 1 || c->argc > 2)
		return usage("plan clone URL [PLAN] [--remote NAME]");
	which = c->argc == 2 ? c->argv[1] : c->plan;
	if (!(st = calloc(1, sizeof(*st)))) {
		fprintf(stderr, "samen: out of memory\n");
		return 1;
	}
	if (open_store(c, &s) < 0 || samen_plan_clone(NULL, s, c->argv[0], which, remote, st) < 0) {
		rc = fail(c, "plan clone");
		goto done;
	}
	if (st->refused)
		rc = 1;
	if (c->json) {
		printf("{");
		json_kv_bool(stdout, &first, "ok", rc == 0);
		json_kv_str(stdout, &first, "plan", st->plan);
		json_kv_str(stdout, &first, "remote", remote ? remote : "origin");
		json_pull(st, &first);
		json_problems(st, &first);
		printf("}\n");
	} else {
		printf("Cloned plan %s from %s (remote %s): %llu changes, %llu bytes received\n", st->plan, c->argv[0],
		       remote ? remote : "origin", (unsigned long long)st->applied,
		       (unsigned long long)st->received_bytes);
		text_problems(st, "plan clone");
	}
done:
	samen_store_free(s);
	free(st);
	return rc;
}

/* --- status -------------------------------------------------------------------------- */

typedef struct {
	int count;
	int json;
} status_ctx;

static int status_one(const samen_remote_info *r, void *payload)
{
	status_ctx *x = payload;
	if (x->json) {
		printf("%s", x->count ? "," : "");
		json_remote(r);
	} else {
		if (x->count == 0)
			printf("%s\n", _("remotes:"));
		text_remote(r, "  ");
	}
	x->count++;
	return 0;
}

void remote_status(samen_plan *p, int json, int *first)
{
	status_ctx x = {0, json};
	if (json) {
		printf("%s\"remotes\":[", *first ? "" : ",");
		*first = 0;
	}
	(void)samen_remote_list(p, status_one, &x); /* status shows what it can */
	if (json)
		printf("]");
}
