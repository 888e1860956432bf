/* util.c - what every command of the command line shares. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

char usage_msg[256];

int usage(const char *msg)
{
	snprintf(usage_msg, sizeof(usage_msg), "%s", msg ? msg : "no command given");
	if (msg)
		fprintf(stderr, "samen: %s\n(samen --help lists every command)\n", msg);
	else
		fputs(usage_text, stderr);
	return EXIT_USAGE;
}

int fail(const cli *c, const char *what)
{
	const char *msg = samen_error_last();
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 0);
		json_kv_str(stdout, &first, "error", msg[0] ? msg : what);
		printf("}\n");
	}
	fprintf(stderr, "samen: %s%s%s\n", what ? what : "", what && msg[0] ? ": " : "", msg);
	return 1;
}

const char *take_opt(cli *c, const char *name)
{
	for (int i = 0; i < c->argc; i++) {
		if (strcmp(c->argv[i], name) == 0 && i + 1 < c->argc) {
			const char *v = c->argv[i + 1];
			memmove(&c->argv[i], &c->argv[i + 2], (size_t)(c->argc - i - 2) * sizeof(char *));
			c->argc -= 2;
			return v;
		}
	}
	return NULL;
}

int no_more_opts(const cli *c)
{
	for (int i = 0; i < c->argc; i++)
		if (strncmp(c->argv[i], "--", 2) == 0 && c->argv[i][2]) {
			char msg[256];
			snprintf(msg, sizeof(msg), "unknown or incomplete option '%s'", c->argv[i]);
			return usage(msg);
		}
	return 0;
}

int open_store(const cli *c, samen_store **s)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	o.path = c->store;
	return samen_store_open(s, &o);
}

int open_plan(const cli *c, samen_store **s, samen_plan **p)
{
	int rc;
	*p = NULL;
	if ((rc = open_store(c, s)) < 0)
		return rc;
	if ((rc = samen_plan_open(p, *s, c->plan)) < 0) {
		samen_store_free(*s);
		*s = NULL;
	}
	return rc;
}

void fmt_time(char *buf, size_t cap, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm))
		strftime(buf, cap, "%Y-%m-%d %H:%M", &tm);
	else
		snprintf(buf, cap, "%lld", (long long)t);
}

int commit_edit(const cli *c, samen_edit *e, const char *cmd, const char *what, const char *uid)
{
	char id[65];
	if (samen_edit_commit(e, id) < 0)
		return fail(c, cmd);
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 1);
		json_kv_str(stdout, &first, "change", id);
		if (uid)
			json_kv_str(stdout, &first, "id", uid);
		printf("}\n");
	} else if (uid) {
		printf("%s %s (change %.12s)\n", what, uid, id);
	} else {
		printf("%s (change %.12s)\n", what, id);
	}
	return 0;
}

int with_plan(cli *c, const char *cmd, int json_list, plan_fn fn, void *ctx)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	int rc;
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (json_list && c->json)
		printf("[");
	rc = fn(c, p, ctx);
	if (json_list && c->json)
		printf("]\n");
	samen_plan_free(p);
	samen_store_free(s);
	return rc < 0 ? fail(c, cmd) : rc;
}

int one_edit(cli *c, const char *cmd, const char *what, edit_fn fn, void *arg)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	int rc;
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (samen_edit_begin(&e, p) < 0 || fn(e, c, arg) < 0)
		rc = fail(c, cmd);
	else
		rc = commit_edit(c, e, cmd, what, NULL);
	samen_edit_free(e);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}
