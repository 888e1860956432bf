/*
 * cmd_modules.c - commands of the method beyond add/list/show/set/rm:
 * network snapshots and their differences, the timeline, the client's
 * scores over time, and decisions of a support-group meeting.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

/* --- network ------------------------------------------------------------------ */

typedef struct {
	const cli *c;
	int count;
} out_ctx;

static int print_network_change(const samen_network_change *n, void *payload)
{
	out_ctx *x = payload;
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "what", n->what);
		json_kv_str(stdout, &first, "person", n->person);
		json_kv_str(stdout, &first, "name", n->name);
		if (n->field) {
			json_kv_str(stdout, &first, "field", n->field);
			json_kv_str(stdout, &first, "before", n->before[0] ? n->before : NULL);
			json_kv_str(stdout, &first, "after", n->after[0] ? n->after : NULL);
		}
		printf("}");
	} else if (strcmp(n->what, "changed") == 0) {
		printf("  ~ %-24s %s: %s -> %s\n", n->name, n->field, n->before[0] ? n->before : "-",
		       n->after[0] ? n->after : "-");
	} else {
		printf("  %c %s\n", strcmp(n->what, "came") == 0 ? '+' : '-', n->name);
	}
	x->count++;
	return 0;
}

static int run_diff(cli *c, samen_plan *p, void *ctx)
{
	out_ctx *x = ctx;
	int rc;
	if (!c->json)
		printf("network %s -> %s\n", c->argv[0], c->argc > 1 ? c->argv[1] : "now");
	if ((rc = samen_network_diff(p, c->argv[0], c->argc > 1 ? c->argv[1] : NULL, print_network_change, x)) < 0)
		return rc;
	if (!c->json && x->count == 0)
		printf("  no differences\n");
	return 0;
}

static int network_diff(cli *c)
{
	out_ctx x = {c, 0};
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc < 1 || c->argc > 2)
		return usage("network diff FROM [TO]   (snapshots by date or id; no TO: the map as it is now)");
	return with_plan(c, "network diff", 1, run_diff, &x);
}

static int network_snapshot(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	const char *date = take_opt(c, "--date"), *note = take_opt(c, "--note");
	char uid[17], change[65];
	int rc = 0;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("network snapshot [--date YYYY-MM-DD] [--note TEXT]");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "network snapshot");
	if (samen_network_snapshot(p, date, note, uid, change) < 0) {
		rc = fail(c, "network snapshot");
	} else if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 1);
		json_kv_str(stdout, &first, "change", change);
		json_kv_str(stdout, &first, "id", uid);
		printf("}\n");
	} else {
		printf("Recorded the network map as snapshot %s (change %.12s)\n", uid, change);
	}
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

int cmd_network(cli *c)
{
	const char *sub = c->argc ? c->argv[0] : NULL;
	if (!sub)
		return usage("network: snapshot or diff?");
	c->argc--;
	c->argv++;
	if (strcmp(sub, "snapshot") == 0)
		return network_snapshot(c);
	if (strcmp(sub, "diff") == 0)
		return network_diff(c);
	return usage("network: snapshot or diff?");
}

/* --- timeline ----------------------------------------------------------------- */

static int print_timeline(const samen_timeline_entry *t, void *payload)
{
	out_ctx *x = payload;
	char when[32];
	fmt_time(when, sizeof(when), t->time);
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "change", t->change);
		json_kv_str(stdout, &first, "author", t->author);
		json_kv_str(stdout, &first, "device", t->device);
		json_kv_int(stdout, &first, "time", t->time);
		json_kv_bool(stdout, &first, "accepted", t->accepted);
		json_kv_str(stdout, &first, "reason", t->reason);
		json_kv_str(stdout, &first, "what", t->what);
		json_kv_str(stdout, &first, "type", t->type);
		json_kv_str(stdout, &first, "id", t->entity);
		json_kv_str(stdout, &first, "label", t->label);
		if (t->field) {
			json_kv_str(stdout, &first, "field", t->field);
			json_kv_str(stdout, &first, "value", t->value[0] ? t->value : NULL);
		}
		printf("}");
	} else {
		printf("%s  %-16.16s %s %.8s", when, t->author, t->type, t->entity);
		if (t->label[0])
			printf(" '%.40s'", t->label);
		if (t->field)
			printf(": %s -> %.60s%s", t->field, t->value[0] ? t->value : "-", strlen(t->value) > 60 ? "..." : "");
		else
			printf(": %s", t->what);
		if (!t->accepted)
			printf("   [REJECTED: %s]", t->reason ? t->reason : "");
		printf("\n");
	}
	x->count++;
	return 0;
}

typedef struct {
	out_ctx out;
	const char *type;
} timeline_ctx;

static int run_timeline(cli *c, samen_plan *p, void *ctx)
{
	timeline_ctx *x = ctx;
	return samen_timeline(p, x->type, c->argc ? c->argv[0] : NULL, print_timeline, &x->out);
}

int cmd_timeline(cli *c)
{
	timeline_ctx x = {{c, 0}, take_opt(c, "--type")};
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc > 1)
		return usage("timeline [ENTITY] [--type TYPE]");
	return with_plan(c, "timeline", 1, run_timeline, &x);
}

/* --- scores ------------------------------------------------------------------- */

typedef struct {
	const cli *c;
	int count;
	char area[17];
} score_ctx;

static int print_score(const samen_score_entry *e, void *payload)
{
	score_ctx *x = payload;
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "area", e->area);
		json_kv_str(stdout, &first, "area_name", e->area_name);
		json_kv_str(stdout, &first, "evaluation", e->evaluation[0] ? e->evaluation : NULL);
		json_kv_str(stdout, &first, "date", e->date[0] ? e->date : NULL);
		if (e->score)
			json_kv_int(stdout, &first, "score", e->score);
		else
			json_kv_str(stdout, &first, "score", NULL);
		json_kv_str(stdout, &first, "note", e->note[0] ? e->note : NULL);
		printf("}");
	} else {
		if (strcmp(x->area, e->area) != 0) {
			printf("%s%s\n", x->count ? "\n" : "", e->area_name);
			snprintf(x->area, sizeof(x->area), "%s", e->area);
		}
		/* a bar of # makes the trend visible at a glance */
		printf("  %-10s %2d  %-10.*s  %s\n", e->date[0] ? e->date : "(no date)", e->score, e->score,
		       "##########", e->note);
	}
	x->count++;
	return 0;
}

static int run_scores(cli *c, samen_plan *p, void *ctx)
{
	score_ctx *x = ctx;
	int rc = samen_score_history(p, c->argc ? c->argv[0] : NULL, print_score, x);
	if (rc == 0 && !c->json && x->count == 0)
		printf("No scores yet. At an evaluation: samen score add AREA --evaluation DATE --score 1-10\n");
	return rc;
}

int cmd_scores(cli *c)
{
	score_ctx x = {c, 0, ""};
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc > 1)
		return usage("scores [AREA]");
	return with_plan(c, "scores", 1, run_scores, &x);
}

/* --- meeting decide ------------------------------------------------------------- */

/* samen meeting decide MEETING TEXT [--action TEXT [--goal G] [--tier T]
 * [--person P] [--due D]]: a decision of the meeting, and the action it
 * creates, linked back to the meeting, in one change. */
int meeting_decide(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	const char *action = take_opt(c, "--action");
	const char *opts[] = {"goal", "tier", "person", "due"};
	const char *vals[4];
	char duid[17], auid[17];
	int rc = 1;

	for (int i = 0; i < 4; i++) {
		char o[16];
		snprintf(o, sizeof(o), "--%s", opts[i]);
		vals[i] = take_opt(c, o);
	}
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 2 || !c->argv[1][0])
		return usage("meeting decide MEETING TEXT [--action TEXT [--goal G] [--tier T] [--person P] [--due D]]");
	if (!action && (vals[0] || vals[1] || vals[2] || vals[3]))
		return usage("meeting decide: --goal, --tier, --person and --due describe the --action");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "meeting decide");
	if (samen_edit_begin(&e, p) < 0 || samen_edit_create(e, "decision", duid) < 0 ||
	    samen_edit_set_in(e, "decision", duid, "text", c->argv[1]) < 0 ||
	    samen_edit_set_in(e, "decision", duid, "meeting", c->argv[0]) < 0)
		goto failed;
	if (action) {
		if (samen_edit_create(e, "action", auid) < 0 || samen_edit_set_in(e, "action", auid, "text", action) < 0 ||
		    samen_edit_set_in(e, "action", auid, "status", "nog te doen") < 0 ||
		    samen_edit_set_in(e, "action", auid, "meeting", c->argv[0]) < 0 ||
		    samen_edit_set_in(e, "action", auid, "decision", duid) < 0)
			goto failed;
		for (int i = 0; i < 4; i++)
			if (vals[i] && samen_edit_set_in(e, "action", auid, opts[i], vals[i]) < 0)
				goto failed;
	}
	rc = commit_edit(c, e, "meeting decide", action ? "Recorded the decision and its action; decision" :
	                                                  "Recorded decision", duid);
	if (rc == 0 && action && !c->json)
		printf("New action %s\n", auid);
	goto cleanup;
failed:
	rc = fail(c, "meeting decide");
cleanup:
	samen_edit_free(e);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}
