/* cli.h - what the command line's files share. */
#ifndef SAMEN_CLI_CLI_H
#define SAMEN_CLI_CLI_H

#include "cli/json.h"
#include "samen/samen.h"

#include <stdio.h>

#define EXIT_USAGE 2

typedef struct {
	const char *store;
	const char *plan;
	int json;
	int argc;
	char **argv;            /* positional arguments and command options */
} cli;

/* The last usage message, so that --json can report it too (the command
 * line is single-threaded; the library keeps no such state). */
extern char usage_msg[256];
extern const char usage_text[];

/* Report a usage error (msg NULL: print the usage text); returns EXIT_USAGE. */
int usage(const char *msg);
/* Report the library's last error after what; returns 1. */
int fail(const cli *c, const char *what);
/* Take "--name VALUE" out of the arguments; returns VALUE or NULL. */
const char *take_opt(cli *c, const char *name);
/* A usage error when an unknown "--option" is left; else 0. */
int no_more_opts(const cli *c);
int open_store(const cli *c, samen_store **s);
/* Open the store and the plan --plan names (or the only one). */
int open_plan(const cli *c, samen_store **s, samen_plan **p);
/* "YYYY-MM-DD HH:MM" in UTC. */
void fmt_time(char *buf, size_t cap, int64_t t);

/* Open the plan, run fn on it, close it; fn's error (< 0) is reported as
 * cmd's. json_list: with --json, fn's output is wrapped in [ ]. */
typedef int (*plan_fn)(cli *c, samen_plan *p, void *ctx);
int with_plan(cli *c, const char *cmd, int json_list, plan_fn fn, void *ctx);

/* Open the plan, let fn add ops to one edit session, commit it and report
 * it as what ("Changed goal"); errors are reported as cmd's. */
typedef int (*edit_fn)(samen_edit *e, cli *c, void *arg);
int one_edit(cli *c, const char *cmd, const char *what, edit_fn fn, void *arg);

/* Commit an edit session and report it ("Added goal UID (change ...)"). */
int commit_edit(const cli *c, samen_edit *e, const char *cmd, const char *what, const char *uid);

/* Command groups in their own files (cli/cmd_*.c). */
/* samen TYPE add|list|show|set|rm for every entity type of the schema. */
int cmd_entity(cli *c, const samen_type_info *t);
int cmd_fields(cli *c);
/* samen member, samen device, samen access (cli/cmd_member.c). */
int cmd_member(cli *c);
int cmd_device(cli *c);
int cmd_access(cli *c);
int cmd_network(cli *c);
int cmd_timeline(cli *c);
int cmd_scores(cli *c);
/* samen meeting decide (a sub-command of the meeting entity) */
int meeting_decide(cli *c);
/* One entity as a JSON object (no newline). */
void json_entity(const samen_entity_view *e);
int cmd_serve(cli *c);     /* cmd_peer.c */
int cmd_peer_sync(cli *c);
/* sync: tcp://HOST:PORT goes to cmd_peer_sync, a remote's NAME to cmd_sync */
int cmd_sync_any(cli *c);
/* The per-peer part of `status`: JSON array items or lines. */
void print_peers(const cli *c, samen_plan *p);

/* cmd_remote.c: git remotes */
int cmd_remote(cli *c);
int cmd_push(cli *c);
int cmd_pull(cli *c);
int cmd_sync(cli *c);
int cmd_plan_clone(cli *c);
/* The plan's remotes for `samen status`: text lines, or under json a
 * "remotes" array member of the object being printed. */
void remote_status(samen_plan *p, int json, int *first);

#endif
