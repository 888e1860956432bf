/*
 * cmd_entity.c - `samen TYPE add|list|show|set|rm` for every entity type of
 * the schema (goal, action, person, tie, meeting, ...). One implementation
 * driven by samen/schema.h, so a new type gets its commands for free.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const cli *c;
	const samen_type_info *t;
	int count;
} list_ctx;

static const char *field_of(const samen_entity_view *e, const char *name, int *nvalues)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (strcmp(e->fields[i].name, name) == 0) {
			if (nvalues)
				*nvalues = e->fields[i].nvalues;
			return e->fields[i].value;
		}
	return "";
}

/* What a person reads for a field: a reference shows the label of what it
 * names ("werk"), other values as they are. */
static const char *shown(const samen_field_value *f)
{
	return f->label && f->label[0] ? f->label : f->value;
}

void json_entity(const samen_entity_view *e)
{
	int first = 1;
	char key[80];
	printf("{");
	json_kv_str(stdout, &first, "id", e->uid);
	json_kv_str(stdout, &first, "type", e->type);
	for (size_t i = 0; i < e->nfields; i++) {
		const samen_field_value *f = &e->fields[i];
		if (f->number && f->value[0])
			json_kv_int(stdout, &first, f->name, atoll(f->value));
		else
			json_kv_str(stdout, &first, f->name, f->value[0] ? f->value : NULL);
		if (f->label) {
			snprintf(key, sizeof(key), "%s_label", f->name);
			json_kv_str(stdout, &first, key, f->label);
		}
	}
	json_kv_int(stdout, &first, "depth", e->depth);
	printf(",\"conflicts\":[");
	for (size_t i = 0, k = 0; i < e->nfields; i++)
		if (e->fields[i].nvalues > 1) {
			printf("%s", k++ ? "," : "");
			json_str(stdout, e->fields[i].name);
		}
	printf("]");
	json_kv_bool(stdout, &first, "parent_cycle", e->cycle);
	printf("}");
}

static int has_conflict(const samen_entity_view *e)
{
	for (size_t i = 0; i < e->nfields; i++)
		if (e->fields[i].nvalues > 1)
			return 1;
	return 0;
}

static int print_line(const samen_entity_view *e, void *payload)
{
	list_ctx *l = payload;
	const char *note = has_conflict(e) ? "  (conflict: see samen conflicts)"
	                   : e->cycle      ? "  (parent ignored: cycle)"
	                                   : "";
	if (l->c->json) {
		printf("%s", l->count ? "," : "");
		json_entity(e);
	} else if (strcmp(e->type, "goal") == 0) {
		const char *status = field_of(e, "status", NULL), *prio = field_of(e, "priority", NULL);
		printf("%.8s  %*s%s%s%s%s%s%s%s\n", e->uid, e->depth * 2, "", field_of(e, "title", NULL),
		       status[0] ? "  [" : "", status, status[0] ? "]" : "", prio[0] ? "  prio " : "", prio, note);
	} else {
		/* label, then the short fields that have a value: "(area werk, ring 1)" */
		int n = 0;
		printf("%.8s  %*s%s", e->uid, e->depth * 2, "", e->nfields ? shown(&e->fields[0]) : "");
		for (size_t i = 1; i < e->nfields; i++) {
			const samen_field_info *fi = &l->t->fields[i];
			if (!e->fields[i].value[0] || fi->kind == SAMEN_FIELD_TEXT || fi->kind == SAMEN_FIELD_RANK ||
			    fi->kind == SAMEN_FIELD_TIES)
				continue;
			printf("%s%s %s", n++ ? ", " : "  (", e->fields[i].name, shown(&e->fields[i]));
		}
		printf("%s%s\n", n ? ")" : "", note);
	}
	l->count++;
	return 0;
}

static int print_full(const samen_entity_view *e, void *payload)
{
	list_ctx *l = payload;
	if (l->c->json) {
		json_entity(e);
		printf("\n");
	} else {
		printf("%s %s\n", e->type, e->uid);
		for (size_t i = 0; i < e->nfields; i++) {
			const samen_field_value *f = &e->fields[i];
			printf("  %-12s %s", f->name, shown(f));
			if (f->label && f->label[0] && !strchr(f->value, ','))
				printf(" (%.8s)", f->value);
			printf("%s\n", f->nvalues > 1 ? "   (conflict: concurrent values, see samen conflicts)" : "");
		}
		if (e->cycle)
			printf("  (its parent assignment would make a cycle and is ignored)\n");
	}
	l->count++;
	return 0;
}

static void upper(char *out, size_t cap, const char *s)
{
	size_t i = 0;
	for (; s[i] && i + 1 < cap; i++)
		out[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 'a' + 'A' : s[i]);
	out[i] = '\0';
}

typedef struct {
	char *uid;
	int children;
} child_ctx;

static int remember_uid(const samen_entity_view *e, void *payload)
{
	child_ctx *x = payload;
	free(x->uid);
	x->uid = strdup(e->uid);
	return 0;
}

static int count_children(const samen_entity_view *e, void *payload)
{
	child_ctx *x = payload;
	if (x->uid && e->parent && strcmp(e->parent, x->uid) == 0)
		x->children++;
	return 0;
}

/* The value a new entity gets unless one is given. */
static const char *default_of(const samen_type_info *t, const char *field)
{
	if (strcmp(t->name, "goal") == 0 && strcmp(field, "status") == 0)
		return "open";
	if (strcmp(t->name, "action") == 0 && strcmp(field, "status") == 0)
		return "nog te doen";
	return NULL;
}

static int entity_add(cli *c, const samen_type_info *t)
{
	const char *vals[64];
	char uid[17], opt[64], cmd[64], usage_line[128], what[64], label[32];
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	int rc = 1;

	snprintf(cmd, sizeof(cmd), "%s add", t->name);
	for (size_t i = 1; i < t->nfields && i < 64; i++) {
		snprintf(opt, sizeof(opt), "--%s", t->fields[i].name);
		vals[i] = take_opt(c, opt);
	}
	if (no_more_opts(c))
		return EXIT_USAGE;
	upper(label, sizeof(label), t->fields[0].name);
	snprintf(usage_line, sizeof(usage_line), "%s add %s [--FIELD VALUE ...]", t->name, label);
	if (c->argc != 1)
		return usage(usage_line);
	if (!c->argv[0][0] || strcmp(c->argv[0], "-") == 0) {
		snprintf(usage_line, sizeof(usage_line), "%s add: a %s needs a %s", t->name, t->name, t->fields[0].name);
		return usage(usage_line);
	}
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (samen_edit_begin(&e, p) < 0 || samen_edit_create(e, t->name, uid) < 0 ||
	    samen_edit_set_in(e, t->name, uid, t->fields[0].name, c->argv[0]) < 0) {
		rc = fail(c, cmd);
		goto cleanup;
	}
	for (size_t i = 1; i < t->nfields && i < 64; i++) {
		const char *v = vals[i] ? vals[i] : default_of(t, t->fields[i].name);
		if (v && samen_edit_set_in(e, t->name, uid, t->fields[i].name, v) < 0) {
			rc = fail(c, cmd);
			goto cleanup;
		}
	}
	snprintf(what, sizeof(what), "Added %s", t->name);
	rc = commit_edit(c, e, cmd, what, uid);
cleanup:
	samen_edit_free(e);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

static int entity_list(cli *c, const samen_type_info *t)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	list_ctx l = {c, t, 0};
	char cmd[64];
	int rc = 0;

	snprintf(cmd, sizeof(cmd), "%s list", t->name);
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage(cmd);
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (c->json)
		printf("[");
	if (samen_entity_list(p, t->name, print_line, &l) < 0)
		rc = fail(c, cmd);
	else if (c->json)
		printf("]\n");
	else if (l.count == 0)
		printf("No %s yet. Add one with: samen %s add %s\n", t->plural, t->name, t->fields[0].name);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

static int entity_show(cli *c, const samen_type_info *t)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	list_ctx l = {c, t, 0};
	char cmd[64];
	int rc;

	snprintf(cmd, sizeof(cmd), "%s show", t->name);
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 1) {
		char up[32], u[96];
		upper(up, sizeof(up), t->name);
		snprintf(u, sizeof(u), "%s show %s", t->name, up);
		return usage(u);
	}
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	rc = samen_entity_get(p, t->name, c->argv[0], print_full, &l) < 0 ? fail(c, cmd) : 0;
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

static int set_fields(samen_edit *e, cli *c, void *arg)
{
	const samen_type_info *t = arg;
	for (int i = 1; i + 1 < c->argc; i += 2)
		if (samen_edit_set_in(e, t->name, c->argv[0], c->argv[i], c->argv[i + 1]) < 0)
			return -1;
	return 0;
}

static int entity_set(cli *c, const samen_type_info *t)
{
	char cmd[64], what[64];
	snprintf(cmd, sizeof(cmd), "%s set", t->name);
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc < 3 || (c->argc - 1) % 2 != 0) {
		char up[32], u[128];
		upper(up, sizeof(up), t->name);
		snprintf(u, sizeof(u), "%s set %s FIELD VALUE [FIELD VALUE ...]", t->name, up);
		return usage(u);
	}
	snprintf(what, sizeof(what), "Changed %s", t->name);
	return one_edit(c, cmd, what, set_fields, (void *)t);
}

static int entity_rm(cli *c, const samen_type_info *t)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	samen_edit *e = NULL;
	child_ctx ch = {NULL, 0};
	char cmd[64], what[64];
	int rc = 1;

	snprintf(cmd, sizeof(cmd), "%s rm", t->name);
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 1) {
		char up[32], u[96];
		upper(up, sizeof(up), t->name);
		snprintf(u, sizeof(u), "%s rm %s", t->name, up);
		return usage(u);
	}
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (samen_entity_get(p, t->name, c->argv[0], remember_uid, &ch) < 0 ||
	    samen_entity_list(p, t->name, count_children, &ch) < 0 || samen_edit_begin(&e, p) < 0 ||
	    samen_edit_delete_in(e, t->name, c->argv[0]) < 0) {
		rc = fail(c, cmd);
		goto cleanup;
	}
	snprintf(what, sizeof(what), "Deleted %s", t->name);
	rc = commit_edit(c, e, cmd, what, NULL);
	if (rc == 0 && ch.children && !c->json)
		printf("Its %d sub-%s(s) now stand at the top level (move them with: samen %s set %s parent OTHER)\n",
		       ch.children, t->name, t->name, t->name);
cleanup:
	free(ch.uid);
	samen_edit_free(e);
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

int cmd_entity(cli *c, const samen_type_info *t)
{
	const char *sub = c->argc ? c->argv[0] : NULL;
	char msg[96];

	snprintf(msg, sizeof(msg), "%s: add, list, show, set or rm?", t->name);
	if (!sub)
		return usage(msg);
	c->argc--;
	c->argv++;
	if (strcmp(sub, "add") == 0)
		return entity_add(c, t);
	if (strcmp(sub, "list") == 0)
		return entity_list(c, t);
	if (strcmp(sub, "show") == 0)
		return entity_show(c, t);
	if (strcmp(sub, "set") == 0)
		return entity_set(c, t);
	if (strcmp(sub, "rm") == 0)
		return entity_rm(c, t);
	if (strcmp(sub, "decide") == 0 && strcmp(t->name, "meeting") == 0)
		return meeting_decide(c);
	return usage(msg);
}

static const char *kind_text(const samen_field_info *f, char *buf, size_t cap)
{
	size_t o = 0;
	switch (f->kind) {
	case SAMEN_FIELD_LINE: snprintf(buf, cap, "one line, up to %lld bytes", f->max); break;
	case SAMEN_FIELD_TEXT: snprintf(buf, cap, "text, up to %lld bytes", f->max); break;
	case SAMEN_FIELD_NUMBER: snprintf(buf, cap, "whole number %lld-%lld", f->min, f->max); break;
	case SAMEN_FIELD_DATE: snprintf(buf, cap, "date YYYY-MM-DD"); break;
	case SAMEN_FIELD_REF:
		snprintf(buf, cap, "%s %s (id or name)", strchr("aeiou", f->ref_type[0]) ? "an" : "a", f->ref_type);
		break;
	case SAMEN_FIELD_REFS: snprintf(buf, cap, "%ss (ids or names, comma separated)", f->ref_type); break;
	case SAMEN_FIELD_RANK: snprintf(buf, cap, "order key (0-9a-z)"); break;
	case SAMEN_FIELD_TIES: snprintf(buf, cap, "the network map at a date (made by samen network snapshot)"); break;
	case SAMEN_FIELD_CHOICE:
	case SAMEN_FIELD_CHOICES:
		o = (size_t)snprintf(buf, cap, "%s", f->kind == SAMEN_FIELD_CHOICE ? "one of: " : "some of: ");
		for (unsigned k = 0; k < f->nlabels && o < cap; k++)
			o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? ", " : "", f->labels[k]);
		break;
	}
	return buf;
}

int cmd_fields(cli *c)
{
	const samen_type_info *t;
	char buf[256];
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 1 || !(t = samen_schema_type_named(c->argv[0])))
		return usage("fields TYPE (types: area strength vip lifestyle person tie snapshot goal action pdsa group"
		             " meeting decision evaluation progress score)");
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_str(stdout, &first, "type", t->name);
		json_kv_str(stdout, &first, "type_nl", t->name_nl);
		json_kv_str(stdout, &first, "module", t->module);
		printf(",\"fields\":[");
		for (size_t i = 0; i < t->nfields; i++) {
			int f1 = 1;
			printf("%s{", i ? "," : "");
			json_kv_str(stdout, &f1, "name", t->fields[i].name);
			json_kv_str(stdout, &f1, "name_nl", t->fields[i].name_nl);
			json_kv_str(stdout, &f1, "takes", kind_text(&t->fields[i], buf, sizeof(buf)));
			json_kv_bool(stdout, &f1, "required", t->fields[i].required);
			printf("}");
		}
		printf("]}\n");
		return 0;
	}
	printf("%s (%s), module %s\n", t->name, t->name_nl, t->module);
	for (size_t i = 0; i < t->nfields; i++)
		printf("  %-12s %-18s %s%s\n", t->fields[i].name, t->fields[i].name_nl,
		       kind_text(&t->fields[i], buf, sizeof(buf)), i == 0 ? " (label, required)" : "");
	return 0;
}
