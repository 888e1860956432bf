/*
 * samen - the command line, a thin layer over the public API.
 *
 * Exit codes: 0 success, 1 error (the message says what was wrong), 2 usage.
 * Every command takes --json for scripts, --store DIR and --plan ID|NAME.
 */
#include "cli/cli.h"
#include "cli/i18n.h"
#include "cli/show.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char usage_text[] =
	"usage: samen [--store DIR] [--plan ID|NAME] [--json] COMMAND [ARGS]\n"
	"\n"
	"  init [--name NAME]              create the store and this device's key\n"
	"  id                              show this device's key and name\n"
	"  plan create --client NAME [--lang nl|en] [--as coordinator|client]\n"
	"  plan list | plan show | plan set FIELD VALUE   (title, status actief|afgesloten)\n"
	"  plan clone URL [PLAN] [--remote NAME]   start from a git remote (default name origin)\n"
	"  TYPE add LABEL [--FIELD VALUE ...]   add an entity (see the types below)\n"
	"  TYPE list | show X | set X FIELD VALUE [FIELD VALUE ...] | rm X\n"
	"      richting:   area, strength, vip, lifestyle\n"
	"      netwerk:    person, tie, snapshot\n"
	"      plan:       goal, action, pdsa\n"
	"      steungroep: group, meeting, decision\n"
	"      evaluatie:  evaluation, progress, score\n"
	"  fields TYPE                     the fields of a type and the values they take\n"
	"  meeting decide MEETING TEXT [--action TEXT --goal G --tier T --person P --due D]\n"
	"  network snapshot [--date D] [--note T] | network diff FROM [TO]\n"
	"  timeline [ENTITY] [--type TYPE] who changed what and when, oldest first\n"
	"  scores [AREA]                   the client's scores per life area over time\n"
	"  log [GOAL] [-n N]               who changed what, when, and the verdict\n"
	"  blame GOAL                      per field: value, who, when, which change\n"
	"  conflicts                       fields holding concurrent values\n"
	"  resolve GOAL FIELD [VALUE]      settle a conflict (no VALUE: keep the shown one)\n"
	"  member add NAME --device KEY [--role ROLE] [--areas A,B]   ROLE: coordinator, professional,\n"
	"                                  network (default), observer; a professional waits for the client\n"
	"  member list | show M | revoke M | scope M A,B | approve M [--consent]\n"
	"  device link MEMBER KEY | unlink DEVICE | list [MEMBER]\n"
	"  access                          who holds the plan: members, rights, devices, last syncs\n"
	"  bundle create FILE [--since VV|@FILE] | bundle import FILE...\n"
	"  serve [--listen ADDRESS:PORT]   serve every plan of this store to its members\n"
	"                                  (default 127.0.0.1:7337; --max-connections N)\n"
	"  sync tcp://HOST:PORT            exchange changes of one plan with a server\n"
	"  vv                              this plan's version vector (for --since)\n"
	"  show                            the whole plan as one document (--json: structured)\n"
	"  remote add NAME URL | remote list | remote remove NAME   git remotes (path, git://, ssh, https)\n"
	"  pull NAME | push NAME | sync NAME   with a git remote (sync: pull, then push)\n"
	"  status                          overview: membership, counts, waiting changes\n"
	"  check                           verify replica against history; print state hash\n"
	"  rebuild                         recreate the replica from the history\n"
	"  gc                              repack the history into one compressed pack\n";

/* --- init, id, plan ------------------------------------------------------------ */

static int cmd_init(cli *c)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	samen_store *s = NULL;
	char *path = NULL, *key = NULL;
	int existed = 0;
	o.path = c->store;
	o.device_name = take_opt(c, "--name");
	o.create = 1;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (samen_store_default_path(&path, c->store) == 0 && (key = malloc(strlen(path) + 16))) {
		sprintf(key, "%s/device.key", path);
		existed = access(key, F_OK) == 0;
	}
	free(path);
	free(key);
	if (samen_store_open(&s, &o) < 0)
		return fail(c, "init");
	if (existed && !c->json)
		printf("Already initialised; this device keeps its key and its name%s.\n",
		       o.device_name && strcmp(o.device_name, samen_store_device_name(s)) != 0 ? " (--name is ignored)" : "");
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 1);
		json_kv_str(stdout, &first, "store", samen_store_path(s));
		json_kv_str(stdout, &first, "device", samen_store_device_key(s));
		json_kv_str(stdout, &first, "name", samen_store_device_name(s));
		printf("}\n");
	} else {
		printf("Store: %s\nDevice: %s (%s)\n", samen_store_path(s), samen_store_device_key(s),
		       samen_store_device_name(s));
	}
	samen_store_free(s);
	return 0;
}

static int cmd_id(cli *c)
{
	samen_store *s = NULL;
	char fp[17];
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (open_store(c, &s) < 0)
		return fail(c, "id");
	/* the fingerprint is the first 16 hex digits of the key, as in commits */
	snprintf(fp, sizeof(fp), "%.16s", samen_store_device_key(s));
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_str(stdout, &first, "device", samen_store_device_key(s));
		json_kv_str(stdout, &first, "fingerprint", fp);
		json_kv_str(stdout, &first, "name", samen_store_device_name(s));
		json_kv_str(stdout, &first, "store", samen_store_path(s));
		printf("}\n");
	} else {
		printf("%s %s\nfingerprint %s\n", samen_store_device_key(s), samen_store_device_name(s), fp);
	}
	samen_store_free(s);
	return 0;
}

static int first_uid(const samen_entity_view *e, void *payload)
{
	snprintf(payload, 17, "%s", e->uid);
	return 1;
}

/* samen plan show | plan set FIELD VALUE ...: the plan's own entity (title,
 * status actief / afgesloten, start date), through the entity commands. */
static int plan_entity(cli *c, const char *sub)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	char uid[17] = "";
	char **argv;
	int rc;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (strcmp(sub, "show") == 0 ? c->argc != 0 : (c->argc < 2 || c->argc % 2 != 0))
		return usage(strcmp(sub, "show") == 0 ? "plan show" : "plan set FIELD VALUE [FIELD VALUE ...]");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "plan");
	rc = samen_entity_list(p, "plan", first_uid, uid);
	samen_plan_free(p);
	samen_store_free(s);
	if (rc < 0)
		return fail(c, "plan");
	if (!uid[0]) {
		samen_error_set(SAMEN_ENOTFOUND, "this plan has no title and status (it was started by an older samen)");
		return fail(c, "plan");
	}
	if (!(argv = calloc((size_t)c->argc + 3, sizeof(char *))))
		return fail(c, "plan");
	argv[0] = (char *)sub;
	argv[1] = uid;
	for (int i = 0; i < c->argc; i++)
		argv[2 + i] = c->argv[i];
	c->argv = argv;
	c->argc += 2;
	rc = cmd_entity(c, samen_schema_type_named("plan"));
	free(argv);
	return rc;
}

static int cmd_plan(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	const char *sub = c->argc ? c->argv[0] : NULL;
	if (!sub)
		return usage("plan: create, list or clone?");
	c->argc--;
	c->argv++;
	if (strcmp(sub, "clone") == 0)
		return cmd_plan_clone(c);
	if (strcmp(sub, "show") == 0 || strcmp(sub, "set") == 0)
		return plan_entity(c, sub);
	if (strcmp(sub, "create") == 0) {
		const char *client = take_opt(c, "--client");
		const char *lang = take_opt(c, "--lang");
		const char *as = take_opt(c, "--as");
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (!client || c->argc)
			return usage("plan create needs --client NAME (and nothing else)");
		if (open_store(c, &s) < 0)
			return fail(c, "plan create");
		if (samen_plan_create_as(&p, s, client, lang ? lang : "nl", as ? as : "coordinator") < 0) {
			samen_store_free(s);
			return fail(c, "plan create");
		}
		if (c->json) {
			int first = 1;
			printf("{");
			json_kv_bool(stdout, &first, "ok", 1);
			json_kv_str(stdout, &first, "plan", samen_plan_id(p));
			json_kv_str(stdout, &first, "client", samen_plan_client(p));
			json_kv_str(stdout, &first, "lang", samen_plan_lang(p));
			printf("}\n");
		} else {
			printf("Created plan %s for %s\n", samen_plan_id(p), samen_plan_client(p));
		}
		samen_plan_free(p);
		samen_store_free(s);
		return 0;
	}
	if (strcmp(sub, "list") == 0) {
		samen_plan_info *plans = NULL;
		size_t n = 0;
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (open_store(c, &s) < 0 || samen_store_plans(s, &plans, &n) < 0) {
			samen_store_free(s);
			return fail(c, "plan list");
		}
		if (c->json)
			printf("[");
		for (size_t i = 0; i < n; i++) {
			if (c->json) {
				int first = 1;
				printf("%s{", i ? "," : "");
				json_kv_str(stdout, &first, "plan", plans[i].id);
				json_kv_str(stdout, &first, "client", plans[i].client);
				json_kv_str(stdout, &first, "lang", plans[i].lang);
				json_kv_int(stdout, &first, "changes", plans[i].changes);
				json_kv_int(stdout, &first, "goals", plans[i].goals);
				printf("}");
			} else {
				printf("%s  %-24s %lld goals, %lld changes\n", plans[i].id, plans[i].client,
				       (long long)plans[i].goals, (long long)plans[i].changes);
			}
		}
		if (c->json)
			printf("]\n");
		else if (n == 0)
			printf("No plans yet. Create one with: samen plan create --client NAME\n");
		free(plans);
		samen_store_free(s);
		return 0;
	}
	return usage("plan: create, list or clone?");
}

/* --- history: log, blame, conflicts, resolve ------------------------------------ */

typedef struct {
	const cli *c;
	long limit;
	long count;
} log_ctx;

static int print_log(const samen_log_entry *e, void *payload)
{
	log_ctx *l = payload;
	char when[32];
	if (l->limit >= 0 && l->count >= l->limit)
		return 1;
	if (l->c->json) {
		int first = 1;
		printf("%s{", l->count ? "," : "");
		json_kv_str(stdout, &first, "change", e->id);
		json_kv_str(stdout, &first, "author", e->author);
		json_kv_str(stdout, &first, "device", e->device);
		json_kv_int(stdout, &first, "time", e->time);
		json_kv_int(stdout, &first, "seq", (long long)e->seq);
		json_kv_int(stdout, &first, "lamport", (long long)e->lamport);
		json_kv_str(stdout, &first, "verdict", e->accepted ? "accepted" : "rejected");
		json_kv_str(stdout, &first, "reason", e->reason);
		json_kv_str(stdout, &first, "summary", e->summary);
		json_kv_str(stdout, &first, "commit", e->commit);
		json_kv_int(stdout, &first, "ops", (long long)e->nops);
		printf("}");
	} else {
		fmt_time(when, sizeof(when), e->time);
		printf("change %.16s  %s  %s (device %.16s)\n    %s\n", e->id, when, e->author, e->device, e->summary);
		if (!e->accepted)
			printf("    REJECTED: %s\n", e->reason ? e->reason : "");
	}
	l->count++;
	return 0;
}

static int cmd_log(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	const char *n = take_opt(c, "-n");
	char *end = NULL;
	log_ctx l = {c, n ? strtol(n, &end, 10) : -1, 0};
	int rc;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (n && (!n[0] || *end || l.limit < 0))
		return usage("log: -n needs a number of changes (0 or more)");
	if (c->argc > 1)
		return usage("log [GOAL] [-n N]");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "log");
	if (c->json)
		printf("[");
	rc = samen_log(p, c->argc ? c->argv[0] : NULL, print_log, &l);
	if (rc < 0) {
		rc = fail(c, "log");
	} else {
		rc = 0;
		if (c->json)
			printf("]\n");
	}
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

typedef struct {
	const cli *c;
	long count;
	const char *last_entity;
	char last_key[64];
} value_ctx;

static int print_value(const samen_value_info *v, void *payload)
{
	value_ctx *x = payload;
	char when[32], key[64];
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "id", v->entity);
		json_kv_str(stdout, &first, "title", v->title);
		json_kv_str(stdout, &first, "field", v->field);
		json_kv_str(stdout, &first, "value", v->value);
		if (v->label)
			json_kv_str(stdout, &first, "value_label", v->label);
		json_kv_bool(stdout, &first, "shown", v->winner);
		json_kv_int(stdout, &first, "values", v->nvalues);
		json_kv_str(stdout, &first, "author", v->author);
		json_kv_str(stdout, &first, "device", v->device);
		json_kv_int(stdout, &first, "time", v->time);
		json_kv_str(stdout, &first, "change", v->change);
		printf("}");
	} else {
		fmt_time(when, sizeof(when), v->time);
		snprintf(key, sizeof(key), "%s/%s", v->entity, v->field);
		if (strcmp(key, x->last_key) != 0 && v->nvalues > 1)
			printf("%.8s %s  %s: %d concurrent values\n", v->entity, v->title, v->field, v->nvalues);
		snprintf(x->last_key, sizeof(x->last_key), "%s", key);
		const char *shown = v->label && v->label[0] ? v->label : v->value;
		if (v->nvalues > 1)
			printf("  %s %-40s  %s, %s, change %.12s\n", v->winner ? "*" : " ", shown, v->author, when,
			       v->change);
		else
			printf("%-12s %-40s  %s, %s, change %.12s\n", v->field, shown, v->author, when, v->change);
	}
	x->count++;
	return 0;
}

static int cmd_values(cli *c, int blame)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	value_ctx x = {c, 0, NULL, ""};
	int rc;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (blame ? c->argc != 1 : c->argc != 0)
		return usage(blame ? "blame GOAL" : "conflicts");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, blame ? "blame" : "conflicts");
	if (c->json)
		printf("[");
	rc = blame ? samen_blame(p, c->argv[0], print_value, &x) : samen_conflicts(p, print_value, &x);
	if (rc < 0) {
		rc = fail(c, blame ? "blame" : "conflicts");
	} else {
		rc = 0;
		if (c->json)
			printf("]\n");
		else if (!blame && x.count == 0)
			printf("No conflicts.\n");
		else if (!blame)
			printf("(* = the value shown everywhere; settle with: samen resolve GOAL FIELD [VALUE])\n");
	}
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

typedef struct {
	const char *field;
	char *winner;
	int nvalues;
} resolve_ctx;

static int find_winner(const samen_value_info *v, void *payload)
{
	resolve_ctx *r = payload;
	if (strcmp(v->field, r->field) == 0 || strcmp(v->field_nl, r->field) == 0) {
		r->nvalues = v->nvalues;
		if (v->winner && !r->winner)
			r->winner = strdup(v->value);
	}
	return 0;
}

static int cmd_resolve(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	resolve_ctx r = {NULL, NULL, 0};
	int rc = 1;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 2 && c->argc != 3)
		return usage("resolve GOAL FIELD [VALUE]");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "resolve");
	r.field = c->argv[1];
	if (samen_blame(p, c->argv[0], find_winner, &r) < 0) {
		rc = fail(c, "resolve");
		goto cleanup;
	}
	if (r.nvalues < 2 && c->argc == 2) {
		samen_error_set(SAMEN_EINVAL, "field '%s' of %s has no conflict", c->argv[1], c->argv[0]);
		rc = fail(c, "resolve");
		goto cleanup;
	}
	/* The new change has every concurrent value in its causal past, so its
	 * value supersedes them all. */
	if (samen_edit_begin(&e, p) < 0 ||
	    samen_edit_set(e, c->argv[0], c->argv[1], c->argc == 3 ? c->argv[2] : (r.winner ? r.winner : "")) < 0) {
		rc = fail(c, "resolve");
		goto cleanup;
	}
	rc = commit_edit(c, e, "resolve", "Resolved", NULL);
cleanup:
	free(r.winner);
	samen_edit_free(e);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

/* --- members, bundles, check ------------------------------------------------------- */

static void print_bundle_stats(const cli *c, const samen_bundle_stats *st, int import, int ok)
{
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", ok);
		if (!ok)
			json_kv_str(stdout, &first, "error", samen_error_last());
		json_kv_str(stdout, &first, "plan", st->plan);
		json_kv_int(stdout, &first, "changes", (long long)st->changes);
		json_kv_int(stdout, &first, "bytes", (long long)st->bytes);
		if (import) {
			json_kv_int(stdout, &first, "applied", (long long)st->applied);
			json_kv_int(stdout, &first, "duplicates", (long long)st->duplicates);
			json_kv_int(stdout, &first, "pending", (long long)st->pending);
			json_kv_int(stdout, &first, "invalid", (long long)st->invalid);
			json_kv_int(stdout, &first, "rejected", (long long)st->rejected);
			json_kv_int(stdout, &first, "rejudged", (long long)st->rejudged);
			json_kv_bool(stdout, &first, "cloned", st->cloned);
		}
		printf("}\n");
	} else if (import) {
		printf("Imported %llu new change(s) into plan %s%s (%llu already here, %llu waiting for others,"
		       " %llu rejected by the rules, %llu invalid)\n",
		       (unsigned long long)st->applied, st->plan, st->cloned ? " (new in this store)" : "",
		       (unsigned long long)st->duplicates, (unsigned long long)st->pending,
		       (unsigned long long)st->rejected, (unsigned long long)st->invalid);
		if (st->rejudged)
			printf("A revocation, an unlink or a device's fork that arrived late changed the verdict of %llu"
			       " earlier change(s) (see samen log)\n", (unsigned long long)st->rejudged);
	} else {
		printf("Wrote %llu change(s) of plan %s (%llu bytes)\n", (unsigned long long)st->changes, st->plan,
		       (unsigned long long)st->bytes);
	}
}

static char *read_small_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n;
	if (!f) {
		samen_error_set(SAMEN_EIO, "cannot read %s", path);
		return NULL;
	}
	buf = malloc(1 << 20);
	if (buf) {
		n = fread(buf, 1, (1 << 20) - 1, f);
		buf[n] = '\0';
		while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
			buf[--n] = '\0';
	}
	fclose(f);
	return buf;
}

static int cmd_bundle(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_bundle_stats st;
	const char *sub = c->argc ? c->argv[0] : NULL;
	int rc;
	if (!sub)
		return usage("bundle: create or import?");
	c->argc--;
	c->argv++;
	if (strcmp(sub, "create") == 0) {
		const char *since = take_opt(c, "--since");
		char *since_buf = NULL;
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (c->argc != 1)
			return usage("bundle create FILE [--since VV|@FILE]");
		if (since && since[0] == '@' && !(since = since_buf = read_small_file(since + 1)))
			return fail(c, "bundle create");
		if (open_plan(c, &s, &p) < 0) {
			free(since_buf);
			return fail(c, "bundle create");
		}
		rc = samen_bundle_create(p, c->argv[0], since, &st);
		free(since_buf);
		samen_plan_free(p);
		samen_store_free(s);
		if (rc < 0)
			return fail(c, "bundle create");
		print_bundle_stats(c, &st, 0, 1);
		return 0;
	}
	if (strcmp(sub, "import") == 0) {
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (c->argc < 1)
			return usage("bundle import FILE...");
		if (open_store(c, &s) < 0)
			return fail(c, "bundle import");
		rc = samen_bundle_import_files(s, (const char *const *)c->argv, (size_t)c->argc, &st);
		samen_store_free(s);
		if (rc < 0) {
			if (c->json)
				print_bundle_stats(c, &st, 1, 0);
			fprintf(stderr, "samen: bundle import: %s\n", samen_error_last());
			return 1;
		}
		print_bundle_stats(c, &st, 1, 1);
		return 0;
	}
	return usage("bundle: create or import?");
}

static int cmd_vv(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	char *vv = NULL;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "vv");
	if (samen_plan_version_vector(p, &vv) < 0) {
		samen_plan_free(p);
		samen_store_free(s);
		return fail(c, "vv");
	}
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_str(stdout, &first, "plan", samen_plan_id(p));
		json_kv_str(stdout, &first, "vv", vv);
		printf("}\n");
	} else {
		printf("%s\n", vv);
	}
	free(vv);
	samen_plan_free(p);
	samen_store_free(s);
	return 0;
}

typedef struct {
	const cli *c;
	int count;
} warn_ctx;

static int print_warning(const samen_warning *w, void *payload)
{
	warn_ctx *x = payload;
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "code", w->code);
		json_kv_str(stdout, &first, "type", w->type);
		json_kv_str(stdout, &first, "id", w->entity);
		json_kv_str(stdout, &first, "label", w->label);
		json_kv_str(stdout, &first, "detail", w->detail);
		json_kv_str(stdout, &first, "message", w->message);
		printf("}");
	} else {
		char text[1024];
		if (x->count == 0)
			printf("%s\n", _("warnings:"));
		printf("  ! %s (%s %.8s)\n", warning_text(w, text, sizeof(text)), w->type ? type_text(w->type) : _("plan"),
		       w->entity ? w->entity : "");
	}
	x->count++;
	return 0;
}

/* SAMEN_TODAY=YYYY-MM-DD replaces today's date in the rules (for tests and
 * for looking at a plan as it stood on a day). */
static const char *today_override(void)
{
	const char *t = getenv("SAMEN_TODAY");
	return t && *t ? t : NULL;
}

/* Whose this device is, as the plan says. */
typedef struct {
	const char *key;
	char name[201], role[32];
} whose_ctx;

static int whose_device(const samen_device_view *d, void *payload)
{
	whose_ctx *w = payload;
	if (!d->unlinked && strcmp(d->device, w->key) == 0) {
		snprintf(w->name, sizeof(w->name), "%s", d->member_name ? d->member_name : "");
		snprintf(w->role, sizeof(w->role), "%s", d->role ? d->role : "");
	}
	return 0;
}

static const char *role_label(const char *role)
{
	if (strcmp(role, "client") == 0)
		return _("the client");
	if (strcmp(role, "coordinator") == 0)
		return _("coordinator");
	if (strcmp(role, "professional") == 0)
		return _("professional");
	if (strcmp(role, "network") == 0)
		return _("network member");
	if (strcmp(role, "observer") == 0)
		return _("observer: reads, does not edit");
	return role;
}

static int cmd_status(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_status st;
	warn_ctx wc = {c, 0};
	int rc = 0;
	char when[32] = "";
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("status takes no arguments");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "status");
	if (samen_plan_status(p, &st) < 0) {
		samen_plan_free(p);
		samen_store_free(s);
		return fail(c, "status");
	}
	if (st.last_change[0])
		fmt_time(when, sizeof(when), st.last_time);
	whose_ctx who = {samen_store_device_key(s), "", ""};
	if (st.member && samen_device_views(p, NULL, whose_device, &who) < 0)
		who.name[0] = who.role[0] = '\0';
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_str(stdout, &first, "plan", samen_plan_id(p));
		json_kv_str(stdout, &first, "client", samen_plan_client(p));
		json_kv_str(stdout, &first, "device", samen_store_device_key(s));
		json_kv_bool(stdout, &first, "member", st.member);
		json_kv_str(stdout, &first, "member_name", who.name[0] ? who.name : NULL);
		json_kv_str(stdout, &first, "role", who.role[0] ? who.role : NULL);
		json_kv_int(stdout, &first, "goals", st.goals);
		json_kv_int(stdout, &first, "changes", st.changes);
		json_kv_int(stdout, &first, "rejected", st.rejected);
		json_kv_int(stdout, &first, "conflicts", st.conflicts);
		json_kv_int(stdout, &first, "pending", st.pending);
		json_kv_int(stdout, &first, "missing", st.missing);
		json_kv_int(stdout, &first, "equivocations", st.evidence);
		json_kv_str(stdout, &first, "last_change", st.last_change[0] ? st.last_change : NULL);
		json_kv_str(stdout, &first, "last_author", st.last_change[0] ? st.last_author : NULL);
		json_kv_int(stdout, &first, "last_time", st.last_time);
		remote_status(p, 1, &first);
		printf(",\"warnings\":[");
		rc = samen_plan_warnings(p, today_override(), print_warning, &wc);
		printf("],\"peers\":[");
		print_peers(c, p);
		printf("]}\n");
	} else {
		printf(_("plan %s for %s\n"), samen_plan_id(p), samen_plan_client(p));
		if (st.member && who.role[0])
			printf(_("this device (%.16s) belongs to %s, %s\n"), samen_store_device_key(s), who.name,
			       role_label(who.role));
		else
			printf(st.member ? _("this device (%.16s) is a member\n")
			                 : _("this device (%.16s) is NOT a member: it can read, its edits are rejected"
			                     " (ask a member: samen member add NAME --device KEY)\n"),
			       samen_store_device_key(s));
		printf(_("%lld goals, %lld changes (%lld rejected), %lld conflicts\n"), (long long)st.goals,
		       (long long)st.changes, (long long)st.rejected, (long long)st.conflicts);
		if (st.last_change[0])
			printf(_("last change %.16s by %s, %s\n"), st.last_change, st.last_author, when);
		if (st.pending)
			printf(_("%lld received changes wait for %lld changes not received yet\n"), (long long)st.pending,
			       (long long)st.missing);
		if (st.evidence)
			printf(_("%lld device(s) signed two different changes with one number: what it wrote from there on is"
			         " void\n"),
			       (long long)st.evidence);
		print_peers(c, p);
		remote_status(p, 0, NULL);
		rc = samen_plan_warnings(p, today_override(), print_warning, &wc);
		if (rc == 0 && wc.count == 0)
			printf("%s\n", _("no warnings: the plan meets the method's checklists"));
	}
	samen_plan_free(p);
	samen_store_free(s);
	return rc < 0 ? fail(c, "status") : 0;
}

static int cmd_gc(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	uint64_t after = 0;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("gc takes no arguments");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "gc");
	if (samen_plan_gc(p, &after) < 0) {
		samen_plan_free(p);
		samen_store_free(s);
		return fail(c, "gc");
	}
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 1);
		json_kv_int(stdout, &first, "history_bytes", (long long)after);
		printf("}\n");
	} else {
		printf("History repacked: %llu bytes\n", (unsigned long long)after);
	}
	samen_plan_free(p);
	samen_store_free(s);
	return 0;
}

static int cmd_check(cli *c, int rebuild)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_check_result r;
	char hash[65] = "";
	int rc;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage(rebuild ? "rebuild takes no arguments" : "check takes no arguments");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, rebuild ? "rebuild" : "check");
	if (rebuild && samen_plan_rebuild(p) < 0) {
		samen_plan_free(p);
		samen_store_free(s);
		return fail(c, "rebuild");
	}
	rc = samen_plan_check(p, &r, hash);
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", rc == 0);
		if (rc < 0)
			json_kv_str(stdout, &first, "error", samen_error_last());
		json_kv_str(stdout, &first, "plan", samen_plan_id(p));
		json_kv_str(stdout, &first, "state_hash", hash);
		json_kv_int(stdout, &first, "changes", r.changes);
		json_kv_int(stdout, &first, "accepted", r.accepted);
		json_kv_int(stdout, &first, "rejected", r.rejected);
		json_kv_int(stdout, &first, "pending", r.pending);
		json_kv_int(stdout, &first, "entities", r.entities);
		json_kv_int(stdout, &first, "conflicts", r.conflicts);
		json_kv_int(stdout, &first, "members", r.members);
		json_kv_int(stdout, &first, "parent_cycles", r.cycles);
		printf("}\n");
	} else {
		if (rebuild)
			printf("Rebuilt the replica from the history.\n");
		printf("plan %s\nstate %s\n%lld changes (%lld accepted, %lld rejected), %lld pending, %lld entities,"
		       " %lld conflicts, %lld members%s\n",
		       samen_plan_id(p), hash, (long long)r.changes, (long long)r.accepted, (long long)r.rejected,
		       (long long)r.pending, (long long)r.entities, (long long)r.conflicts, (long long)r.members,
		       r.cycles ? ", parent cycles ignored" : "");
	}
	samen_plan_free(p);
	samen_store_free(s);
	if (rc < 0) {
		fprintf(stderr, "samen: check: %s\n", samen_error_last());
		return 1;
	}
	return 0;
}

static int cmd_blame(cli *c) { return cmd_values(c, 1); }
static int cmd_conflicts(cli *c) { return cmd_values(c, 0); }
static int cmd_verify(cli *c) { return cmd_check(c, 0); }
static int cmd_rebuild(cli *c) { return cmd_check(c, 1); }

static const struct {
	const char *name;
	int (*run)(cli *c);
} commands[] = {
	{"init", cmd_init},   {"id", cmd_id},           {"plan", cmd_plan}, {"fields", cmd_fields}, {"network", cmd_network}, {"timeline", cmd_timeline},
	{"scores", cmd_scores},
	{"log", cmd_log},     {"blame", cmd_blame},     {"conflicts", cmd_conflicts}, {"resolve", cmd_resolve},
	{"member", cmd_member}, {"device", cmd_device}, {"access", cmd_access}, {"bundle", cmd_bundle}, {"vv", cmd_vv},             {"status", cmd_status},
	{"check", cmd_verify}, {"rebuild", cmd_rebuild}, {"gc", cmd_gc},
	{"remote", cmd_remote}, {"pull", cmd_pull},   {"push", cmd_push},         {"sync", cmd_sync_any},
	{"show", cmd_show},
	{"serve", cmd_serve},
};

int main(int argc, char **argv)
{
	cli c;
	char **args = calloc((size_t)argc + 1, sizeof(char *));
	int n = 0, rc;
	const char *cmd;

	i18n_init();
	memset(&c, 0, sizeof(c));
	if (!args)
		return 1;
	/* global options may stand anywhere */
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			c.json = 1;
		else if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
			c.store = argv[++i];
		else if (strcmp(argv[i], "--plan") == 0 && i + 1 < argc)
			c.plan = argv[++i];
		else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(usage_text, stdout);
			free(args);
			return 0;
		} else if (strcmp(argv[i], "--version") == 0) {
			printf("samen %s\n", SAMEN_VERSION);
			free(args);
			return 0;
		} else if (strcmp(argv[i], "--store") == 0 || strcmp(argv[i], "--plan") == 0) {
			free(args);
			return usage("--store and --plan need a value");
		} else
			args[n++] = argv[i];
	}
	if (n == 0) {
		free(args);
		return usage(NULL);
	}
	cmd = args[0];
	c.argc = n - 1;
	c.argv = args + 1;
	rc = -1;
	for (size_t k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		if (strcmp(cmd, commands[k].name) == 0) {
			rc = commands[k].run(&c);
			break;
		}
	if (rc < 0 && samen_schema_type_named(cmd))
		rc = cmd_entity(&c, samen_schema_type_named(cmd));
	if (rc < 0) {
		char msg[128];
		snprintf(msg, sizeof(msg), "unknown command '%.60s'", cmd);
		rc = usage(msg);
	}
	if (rc == EXIT_USAGE && c.json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 0);
		json_kv_str(stdout, &first, "usage", usage_msg);
		printf("}\n");
	}
	free(args);
	return rc;
}
