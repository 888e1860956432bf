/*
 * cmd_member.c - samen member, samen device, samen access: who holds the
 * plan, with which rights and on which devices (docs/rights.md).
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
	const cli *c;
	int count;
} list_ctx;

static int print_member(const samen_member_info *m, void *payload)
{
	list_ctx *x = payload;
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "name", m->name);
		json_kv_str(stdout, &first, "device", m->device);
		json_kv_bool(stdout, &first, "creator", m->creator);
		json_kv_str(stdout, &first, "added_by", m->added_by);
		json_kv_str(stdout, &first, "id", m->id);
		json_kv_str(stdout, &first, "role", m->role);
		if (m->pending_role)
			json_kv_str(stdout, &first, "pending_role", m->pending_role);
		json_kv_bool(stdout, &first, "revoked", m->revoked);
		json_kv_str(stdout, &first, "areas", m->areas);
		printf("}");
	} else {
		printf("%-24s %-13s %.16s%s%s%s%s%s%s\n", m->name, m->role, m->device, m->creator ? "  (started the plan)" : "",
		       m->revoked ? "  REVOKED" : "", m->pending_role ? "  waits for the client's approval as " : "",
		       m->pending_role ? m->pending_role : "", m->areas[0] ? "  areas: " : "", m->areas);
	}
	x->count++;
	return 0;
}

static int print_view(const samen_member_view *m, void *payload)
{
	list_ctx *x = payload;
	char when[32];
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "id", m->id);
		json_kv_str(stdout, &first, "name", m->name);
		json_kv_str(stdout, &first, "role", m->role);
		if (m->pending_role)
			json_kv_str(stdout, &first, "pending_role", m->pending_role);
		json_kv_bool(stdout, &first, "revoked", m->revoked);
		json_kv_str(stdout, &first, "areas", m->areas);
		json_kv_bool(stdout, &first, "scope_pending", m->scope_pending);
		json_kv_str(stdout, &first, "added_by", m->added_by);
		json_kv_int(stdout, &first, "added_time", m->added_time);
		json_kv_int(stdout, &first, "devices", (long long)m->ndevices);
		printf("}");
	} else {
		fmt_time(when, sizeof(when), m->added_time);
		printf("%s (%s)%s\n  member id %.16s, added %s%s%.12s, %zu active device%s\n", m->name, m->role,
		       m->revoked ? " REVOKED" : "", m->id, when, m->added_by[0] ? " by change " : " with the plan",
		       m->added_by, m->ndevices, m->ndevices == 1 ? "" : "s");
		if (m->pending_role)
			printf("  waits for the client's approval as %s (samen member approve)\n", m->pending_role);
		if (m->areas[0] || !strcmp(m->role, "professional"))
			printf("  life areas: %s%s\n", m->areas[0] ? m->areas : "(none)",
			       m->scope_pending ? " (a wider scope waits for approval)" : "");
	}
	x->count++;
	return 0;
}

static void print_sync(char *buf, size_t cap, int64_t t)
{
	if (t < 0)
		snprintf(buf, cap, "unknown (no sync log)");
	else
		fmt_time(buf, cap, t);
}

static int print_device(const samen_device_view *d, void *payload)
{
	list_ctx *x = payload;
	char linked[32], last[32], sync[48], unl[32];
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->count ? "," : "");
		json_kv_str(stdout, &first, "device", d->device);
		json_kv_str(stdout, &first, "member", d->member);
		json_kv_str(stdout, &first, "member_name", d->member_name);
		json_kv_str(stdout, &first, "role", d->role);
		json_kv_int(stdout, &first, "linked_time", d->linked_time);
		json_kv_str(stdout, &first, "linked_by", d->linked_by);
		json_kv_bool(stdout, &first, "unlinked", d->unlinked);
		if (d->unlinked)
			json_kv_int(stdout, &first, "unlinked_time", d->unlinked_time);
		json_kv_int(stdout, &first, "last_change_time", d->last_change_time);
		json_kv_int(stdout, &first, "last_sync", d->last_sync);
		json_kv_bool(stdout, &first, "may_sync", d->may_sync);
		printf("}");
	} else {
		fmt_time(linked, sizeof(linked), d->linked_time);
		if (d->last_change_time)
			fmt_time(last, sizeof(last), d->last_change_time);
		else
			snprintf(last, sizeof(last), "never");
		print_sync(sync, sizeof(sync), d->last_sync);
		printf("  device %.16s  %s (%s)\n    linked %s; last change %s; last synced with this device %s\n",
		       d->device, d->member_name, d->role, linked, last, sync);
		if (d->unlinked) {
			fmt_time(unl, sizeof(unl), d->unlinked_time);
			printf("    UNLINKED %s: its later changes are rejected\n", unl);
		} else if (!d->may_sync) {
			printf("    may not sync (its member was revoked or waits for approval)\n");
		}
	}
	x->count++;
	return 0;
}

typedef struct {
	const char *key, *role, *areas;
	int consent;
} member_args;

/* "werk, inkomen" -> the scope op (spaces around names are not part of them,
 * as in every other list on the command line) */
static int add_scope(samen_edit *e, const char *member, const char *areas)
{
	char *copy = strdup(areas), *save = NULL;
	const char *list[64];
	size_t n = 0;
	int rc;
	if (!copy)
		return SAMEN_ENOMEM;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t len;
		while (*t == ' ' || *t == '\t')
			t++;
		len = strlen(t);
		while (len && (t[len - 1] == ' ' || t[len - 1] == '\t'))
			t[--len] = '\0';
		if (!*t)
			continue;
		if (n == 64) {
			free(copy);
			return samen_error_set(SAMEN_EINVAL, "a scope names at most 64 life areas");
		}
		list[n++] = t;
	}
	rc = samen_edit_member_scope(e, member, list, n);
	free(copy);
	return rc;
}

static int do_add(samen_edit *e, cli *c, void *arg)
{
	member_args *a = arg;
	int rc = samen_edit_member_add_role(e, a->key, c->argv[0], a->role ? a->role : "network");
	if (rc == 0 && a->areas)
		rc = add_scope(e, a->key, a->areas);
	return rc;
}

static int do_revoke(samen_edit *e, cli *c, void *arg)
{
	(void)arg;
	return samen_edit_member_revoke(e, c->argv[0]);
}

static int do_scope(samen_edit *e, cli *c, void *arg)
{
	return add_scope(e, c->argv[0], ((member_args *)arg)->areas);
}

static int do_approve(samen_edit *e, cli *c, void *arg)
{
	return samen_edit_member_approve(e, c->argv[0], ((member_args *)arg)->consent);
}

static int do_link(samen_edit *e, cli *c, void *arg)
{
	(void)arg;
	return samen_edit_device_link(e, c->argv[0], c->argv[1]);
}

static int do_unlink(samen_edit *e, cli *c, void *arg)
{
	(void)arg;
	return samen_edit_device_unlink(e, c->argv[0]);
}

static int take_flag(cli *c, const char *name)
{
	for (int i = 0; i < c->argc; i++)
		if (strcmp(c->argv[i], name) == 0) {
			memmove(&c->argv[i], &c->argv[i + 1], (size_t)(c->argc - i - 1) * sizeof(*c->argv));
			c->argc--;
			return 1;
		}
	return 0;
}

typedef int (*list_fn)(samen_plan *p, cli *c, list_ctx *x);

static int list_cmd(cli *c, const char *cmd, list_fn fn)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	list_ctx x = {c, 0};
	int rc = 0;
	if (open_plan(c, &s, &p) < 0)
		return fail(c, cmd);
	if (c->json)
		printf("[");
	if (fn(p, c, &x) < 0)
		rc = fail(c, cmd);
	else if (c->json)
		printf("]\n");
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}

static int list_members(samen_plan *p, cli *c, list_ctx *x)
{
	(void)c;
	return samen_member_list(p, print_member, x);
}

static int show_member(samen_plan *p, cli *c, list_ctx *x)
{
	int rc = samen_member_show(p, c->argv[0], print_view, x);
	if (rc == 0 && !c->json)
		rc = samen_device_views(p, c->argv[0], print_device, x);
	return rc;
}

static int list_devices(samen_plan *p, cli *c, list_ctx *x)
{
	return samen_device_views(p, c->argc ? c->argv[0] : NULL, print_device, x);
}

#define MEMBER_USAGE                                                                                                   \
	"member add NAME --device KEY [--role coordinator|professional|network|observer] [--areas A,B]\n"              \
	"       member list | show MEMBER | revoke MEMBER | scope MEMBER A,B | approve MEMBER [--consent]"

int cmd_member(cli *c)
{
	const char *sub = c->argc ? c->argv[0] : NULL;
	member_args a;
	memset(&a, 0, sizeof(a));
	if (!sub)
		return usage(MEMBER_USAGE);
	c->argc--;
	c->argv++;
	if (strcmp(sub, "add") == 0) {
		a.key = take_opt(c, "--device");
		a.role = take_opt(c, "--role");
		a.areas = take_opt(c, "--areas");
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (!a.key || c->argc != 1)
			return usage("member add NAME --device KEY [--role ROLE] [--areas A,B]");
		return one_edit(c, "member add", "Added member", do_add, &a);
	}
	if (strcmp(sub, "approve") == 0) {
		a.consent = take_flag(c, "--consent");
		if (no_more_opts(c))
			return EXIT_USAGE;
		if (c->argc != 1)
			return usage("member approve MEMBER [--consent]");
		return one_edit(c, "member approve", a.consent ? "Recorded the client's consent" : "Approved", do_approve,
		                &a);
	}
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (strcmp(sub, "list") == 0 && c->argc == 0)
		return list_cmd(c, "member list", list_members);
	if (strcmp(sub, "show") == 0 && c->argc == 1)
		return list_cmd(c, "member show", show_member);
	if (strcmp(sub, "revoke") == 0 && c->argc == 1)
		return one_edit(c, "member revoke", "Revoked member", do_revoke, &a);
	if (strcmp(sub, "scope") == 0 && c->argc == 2) {
		a.areas = c->argv[1];
		return one_edit(c, "member scope", "Changed life areas", do_scope, &a);
	}
	return usage(MEMBER_USAGE);
}

int cmd_device(cli *c)
{
	const char *sub = c->argc ? c->argv[0] : NULL;
	if (!sub)
		return usage("device link MEMBER KEY | unlink DEVICE | list [MEMBER]");
	c->argc--;
	c->argv++;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (strcmp(sub, "link") == 0 && c->argc == 2)
		return one_edit(c, "device link", "Linked device", do_link, NULL);
	if (strcmp(sub, "unlink") == 0 && c->argc == 1)
		return one_edit(c, "device unlink", "Unlinked device", do_unlink, NULL);
	if (strcmp(sub, "list") == 0 && c->argc <= 1)
		return list_cmd(c, "device list", list_devices);
	return usage("device link MEMBER KEY | unlink DEVICE | list [MEMBER]");
}

/* samen access: everything the client may want to know about who holds
 * their plan. */
static int access_json(samen_plan *p, list_ctx *x)
{
	int rc;
	printf("{\"members\":[");
	if ((rc = samen_member_views(p, print_view, x)) < 0)
		return rc;
	printf("],\"devices\":[");
	x->count = 0;
	if ((rc = samen_device_views(p, NULL, print_device, x)) < 0)
		return rc;
	printf("]}\n");
	return 0;
}

int cmd_access(cli *c)
{
	samen_store *s = NULL;
	samen_plan *p = NULL;
	list_ctx x = {c, 0};
	int rc = 0;
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("access (no arguments)");
	if (open_plan(c, &s, &p) < 0)
		return fail(c, "access");
	if (c->json) {
		rc = access_json(p, &x);
	} else {
		printf("Who holds this plan (members, their rights and devices):\n\n");
		rc = samen_member_views(p, print_view, &x);
		if (rc == 0) {
			printf("\nDevices:\n");
			rc = samen_device_views(p, NULL, print_device, &x);
		}
	}
	if (rc < 0)
		rc = fail(c, "access");
	samen_plan_free(p);
	samen_store_free(s);
	return rc;
}
