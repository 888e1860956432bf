/* cmd_peer.c - `samen serve` and `samen sync tcp://HOST:PORT`, and the
 * per-peer lines of `samen status`. */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int parse_ms(const char *v, unsigned *out)
{
	char *end;
	long n;
	if (!v)
		return 0;
	n = strtol(v, &end, 10);
	if (*end || end == v || n <= 0 || n > 86400000)
		return -1;
	*out = (unsigned)n;
	return 0;
}

typedef struct {
	const cli *c;
	const char *listen;
} serve_ctx;

static void serve_listening(int port, void *payload)
{
	serve_ctx *x = payload;
	char host[80];
	const char *colon = strrchr(x->listen, ':');
	snprintf(host, sizeof(host), "%.*s", colon ? (int)(colon - x->listen) : 0, x->listen);
	if (x->c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", 1);
		json_kv_str(stdout, &first, "listening", host);
		json_kv_int(stdout, &first, "port", port);
		printf("}\n");
	} else {
		printf("listening on %s:%d\n", host, port);
	}
	fflush(stdout);
}

static void serve_log(const char *line, void *payload)
{
	(void)payload;
	fprintf(stderr, "samen serve: %s\n", line);
}

int cmd_serve(cli *c)
{
	samen_serve_options o = SAMEN_SERVE_OPTIONS_INIT;
	samen_server *srv = NULL;
	samen_store *s = NULL;
	serve_ctx x = {c, "127.0.0.1:7337"};
	const char *maxc = take_opt(c, "--max-connections");
	const char *hs = take_opt(c, "--handshake-timeout-ms"), *fr = take_opt(c, "--frame-timeout-ms");
	const char *idle = take_opt(c, "--idle-timeout-ms");
	int quiet = 0;

	if ((o.listen = take_opt(c, "--listen")))
		x.listen = o.listen;
	for (int i = 0; i < c->argc; i++)
		if (strcmp(c->argv[i], "--quiet") == 0) {
			quiet = 1;
			memmove(&c->argv[i], &c->argv[i + 1], (size_t)(c->argc - i - 1) * sizeof(char *));
			c->argc--;
			break;
		}
	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc)
		return usage("serve [--listen ADDRESS:PORT] [--max-connections N]");
	if (maxc) {
		unsigned n = 0;
		if (parse_ms(maxc, &n) < 0 || n > 100000)
			return usage("serve: --max-connections needs a number from 1 to 100000");
		o.max_connections = n;
	}
	if (parse_ms(hs, &o.handshake_timeout_ms) < 0 || parse_ms(fr, &o.frame_timeout_ms) < 0 ||
	    parse_ms(idle, &o.idle_timeout_ms) < 0)
		return usage("serve: timeouts are milliseconds, more than 0");
	o.on_listen = serve_listening;
	o.on_log = quiet ? NULL : serve_log;
	o.payload = &x;
	if (open_store(c, &s) < 0)
		return fail(c, "serve");
	if (samen_server_new(&srv, s, &o) < 0) {
		samen_store_free(s);
		return fail(c, "serve");
	}
	samen_server_run(srv, 1);
	samen_server_free(srv);
	samen_store_free(s);
	return 0;
}

typedef struct {
	double last;
} sync_progress;

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_progress(const samen_sync_stats *st, uint64_t expect_in, uint64_t expect_out, void *payload)
{
	sync_progress *p = payload;
	double t = now_s();
	if (t - p->last < 0.1)
		return;
	p->last = t;
	fprintf(stderr, "\rsync: received %llu/%llu changes, sent %llu/%llu (%llu KiB in, %llu KiB out)   ",
	        (unsigned long long)st->received, (unsigned long long)expect_in, (unsigned long long)st->sent,
	        (unsigned long long)expect_out, (unsigned long long)(st->bytes_in >> 10),
	        (unsigned long long)(st->bytes_out >> 10));
}

int cmd_peer_sync(cli *c)
{
	samen_sync_options o = SAMEN_SYNC_OPTIONS_INIT;
	samen_sync_stats st;
	samen_store *s = NULL;
	sync_progress prog = {0};
	const char *timeout = take_opt(c, "--timeout-ms");
	int rc, tty;

	if (no_more_opts(c))
		return EXIT_USAGE;
	if (c->argc != 1)
		return usage("sync tcp://HOST:PORT [--plan ID]");
	if (parse_ms(timeout, &o.timeout_ms) < 0)
		return usage("sync: --timeout-ms needs a number of milliseconds");
	o.plan = c->plan;
	tty = !c->json && isatty(2);
	if (tty) {
		o.progress = on_progress;
		o.payload = &prog;
	}
	if (open_store(c, &s) < 0)
		return fail(c, "sync");
	rc = samen_peer_sync(s, c->argv[0], &o, &st);
	samen_store_free(s);
	if (tty && prog.last > 0)
		fputs("\r\033[K", stderr);
	if (c->json) {
		int first = 1;
		printf("{");
		json_kv_bool(stdout, &first, "ok", rc == 0);
		if (rc < 0)
			json_kv_str(stdout, &first, "error", samen_error_last());
		json_kv_str(stdout, &first, "plan", st.plan);
		json_kv_str(stdout, &first, "peer", st.peer);
		json_kv_int(stdout, &first, "received", (long long)st.received);
		json_kv_int(stdout, &first, "applied", (long long)st.applied);
		json_kv_int(stdout, &first, "sent", (long long)st.sent);
		json_kv_int(stdout, &first, "peer_applied", (long long)st.peer_applied);
		json_kv_int(stdout, &first, "pending", (long long)st.pending);
		json_kv_int(stdout, &first, "forks", (long long)st.forks);
		json_kv_int(stdout, &first, "ahead", (long long)st.ahead);
		json_kv_int(stdout, &first, "behind", (long long)st.behind);
		json_kv_int(stdout, &first, "bytes_in", (long long)st.bytes_in);
		json_kv_int(stdout, &first, "bytes_out", (long long)st.bytes_out);
		json_kv_bool(stdout, &first, "cloned", st.cloned);
		printf("}\n");
	} else if (rc == 0) {
		printf("Synced plan %s with %.16s: received %llu changes (%llu new), sent %llu (%llu new there)%s\n", st.plan,
		       st.peer, (unsigned long long)st.received, (unsigned long long)st.applied, (unsigned long long)st.sent,
		       (unsigned long long)st.peer_applied, st.cloned ? "; the plan is new in this store" : "");
	}
	if (st.forks)
		fprintf(stderr, "samen: sync: %llu device chains fork between the two sides%s%s\n",
		        (unsigned long long)st.forks, st.fork_msg[0] ? ": " : "", st.fork_msg);
	if (rc < 0) {
		fprintf(stderr, "samen: sync: %s\n", samen_error_last());
		if (st.applied)
			fprintf(stderr, "samen: sync: the %llu changes received before that were kept; sync again to go on\n",
			        (unsigned long long)st.applied);
		return 1;
	}
	return 0;
}

/* `sync tcp://HOST:PORT` talks to a peer; `sync NAME` to a git remote
 * (cmd_remote.c). */
int cmd_sync_any(cli *c)
{
	if (c->argc == 0)
		return usage("sync NAME (a git remote: samen remote list) or sync tcp://HOST:PORT (a samen serve)");
	for (int i = 0; i < c->argc; i++)
		if (strncmp(c->argv[i], "tcp://", 6) == 0)
			return cmd_peer_sync(c);
	return cmd_sync(c);
}

typedef struct {
	const cli *c;
	int n;
} peers_ctx;

static int print_peer(const samen_peer_info *p, void *payload)
{
	peers_ctx *x = payload;
	char when[32] = "never";
	if (x->c->json) {
		int first = 1;
		printf("%s{", x->n ? "," : "");
		json_kv_str(stdout, &first, "device", p->device);
		json_kv_str(stdout, &first, "address", p->address);
		json_kv_int(stdout, &first, "last_sync", p->last_sync);
		json_kv_int(stdout, &first, "last_attempt", p->last_attempt);
		json_kv_int(stdout, &first, "ahead", p->ahead);
		json_kv_int(stdout, &first, "behind", p->behind);
		printf("}");
	} else {
		if (p->last_sync > 0)
			fmt_time(when, sizeof(when), p->last_sync);
		printf("peer %.16s (%s): last synced %s", p->device, p->address, when);
		if (p->last_attempt > p->last_sync)
			printf(", last attempt did not finish");
		if (p->ahead >= 0 && p->behind >= 0)
			printf(", %lld ahead, %lld behind\n", (long long)p->ahead, (long long)p->behind);
		else
			printf("\n");
	}
	x->n++;
	return 0;
}

void print_peers(const cli *c, samen_plan *p)
{
	peers_ctx x = {c, 0};
	samen_peer_list(p, print_peer, &x);
}
