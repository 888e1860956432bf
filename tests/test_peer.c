/*
 * test_peer.c - the peer protocol end to end (samen/peer.h), with real
 * servers on 127.0.0.1 running in threads of this process.
 *
 * Stores: A (Anna, creates the plan), B (Bram) and C (Carla) are members;
 * X (Xander) is never added. Every server listens on 127.0.0.1 port 0,
 * starts and stops inside its test, and every loop is bounded.
 *
 * Hostile peers are written here on raw sockets with the Noise code; after
 * each, an honest member must still sync with the same server.
 */
#include "testutil.h"

#include "samen/samen.h"
#include "sync/internal.h"
#include "sync/noise.h"
#include "sync/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

typedef struct {
	samen_server *srv;
	samen_store *store;
	pthread_t thread;
	int port;
	char url[64];
} server;

typedef struct {
	char *dir;
	samen_store *a, *b, *c, *x;
	char plan[33];
	server sa;                       /* A's server, started by setup */
} fixture;

/* ---- stores, plans, edits ------------------------------------------------------------ */

static int64_t change_count(samen_store *s, const char *id)
{
	samen_plan *p;
	samen_status st;
	if (!tu_has_plan(s, id))
		return 0;
	p = tu_open_plan(s, id);
	assert_int_equal(samen_plan_status(p, &st), 0);
	samen_plan_free(p);
	return st.changes;
}

/* n changes on store s, each a new goal with a title of tlen bytes */
/* Text for test changes: seeded random letters, which compress about as
 * little as real prose does under DEFLATE (the record stream is
 * compressed, and the cut and backpressure tests need its bytes). */
static rng text_rng = {0x5eed7e47ull};

static char text_letter(void)
{
	return (char)('a' + below(&text_rng, 26));
}

static void add_goals(samen_store *s, const char *plan, int n, size_t tlen, const char *tag)
{
	samen_plan *p = tu_open_plan(s, plan);
	char title[1024], uid[17];
	if (tlen >= sizeof(title))
		tlen = sizeof(title) - 1;
	for (int i = 0; i < n; i++) {
		samen_edit *e;
		int k = snprintf(title, sizeof(title), "%s %d ", tag, i);
		while ((size_t)k < tlen)
			title[k++] = text_letter();
		title[k] = '\0';
		assert_int_equal(samen_edit_begin(&e, p), 0);
		assert_int_equal(samen_edit_create(e, "goal", uid), 0);
		/* titles hold at most 200 bytes; longer text goes to the description */
		assert_int_equal(samen_edit_set(e, uid, "description", title), 0);
		title[k < 60 ? k : 60] = '\0';
		assert_int_equal(samen_edit_set(e, uid, "title", title), 0);
		assert_int_equal(samen_edit_commit(e, NULL), 0);
		samen_edit_free(e);
	}
	samen_plan_free(p);
}

/* One piece of a fresh record stream, compressed as a sender does. */
static size_t deflate_piece(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	assert_int_equal(deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
	assert_int_equal(z.avail_in, 0);
	size_t n = cap - z.avail_out;
	deflateEnd(&z);
	return n;
}

/* ---- servers ---------------------------------------------------------------------------- */

static void *server_main(void *arg)
{
	server *s = arg;
	samen_server_run(s->srv, 0);
	return NULL;
}

static void start_server_with(server *s, samen_store *store, const samen_serve_options *opts)
{
	samen_serve_options o = *opts;
	memset(s, 0, sizeof(*s));
	o.listen = "127.0.0.1:0";
	s->store = store;
	if (samen_server_new(&s->srv, store, &o) != 0)
		fail_msg("cannot start a server: %s", samen_error_last());
	s->port = samen_server_port(s->srv);
	assert_true(s->port > 0);
	snprintf(s->url, sizeof(s->url), "tcp://127.0.0.1:%d", s->port);
	assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void start_server(server *s, samen_store *store)
{
	samen_serve_options o = SAMEN_SERVE_OPTIONS_INIT;
	/* short limits, so hostile peers are dropped within the test's time */
	o.handshake_timeout_ms = 1500;
	o.frame_timeout_ms = 700;
	o.idle_timeout_ms = 3000;
	o.max_connections = 64;
	start_server_with(s, store, &o);
}

static void stop_server(server *s)
{
	if (!s->srv)
		return;
	samen_server_stop(s->srv);
	pthread_join(s->thread, NULL);
	samen_server_free(s->srv);
	s->srv = NULL;
}

static int sync_with(samen_store *s, const char *url, const char *plan, samen_sync_stats *st)
{
	samen_sync_options o = SAMEN_SYNC_OPTIONS_INIT;
	samen_sync_stats local;
	o.plan = plan;
	o.timeout_ms = 5000;
	return samen_peer_sync(s, url, &o, st ? st : &local);
}

static void must_sync(samen_store *s, const char *url, const char *plan, samen_sync_stats *st)
{
	if (sync_with(s, url, plan, st) != 0)
		fail_msg("sync of %s with %s failed: %s", samen_store_path(s), url, samen_error_last());
}

/* ---- fixture --------------------------------------------------------------------------------- */

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));
	samen_plan *p;
	samen_edit *e;
	assert_non_null(f);
	f->dir = tu_mkdtemp("peer");
	assert_non_null(f->dir);
	f->a = tu_open_store(f->dir, "a", "Anna");
	f->b = tu_open_store(f->dir, "b", "Bram");
	f->c = tu_open_store(f->dir, "c", "Carla");
	f->x = tu_open_store(f->dir, "x", "Xander");
	assert_int_equal(samen_plan_create(&p, f->a, "Jan de Vries", "nl"), 0);
	snprintf(f->plan, sizeof(f->plan), "%s", samen_plan_id(p));
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_member_add(e, samen_store_device_key(f->b), "Bram"), 0);
	assert_int_equal(samen_edit_member_add(e, samen_store_device_key(f->c), "Carla"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
	add_goals(f->a, f->plan, 3, 20, "start");
	start_server(&f->sa, f->a);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	stop_server(&f->sa);
	samen_store_free(f->a);
	samen_store_free(f->b);
	samen_store_free(f->c);
	samen_store_free(f->x);
	tu_rmtree(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* ---- raw peers (for the hostile tests) ------------------------------------------------- */

/* receive buffer for the next raw connections (0: the system's) */
static int raw_rcvbuf;

static int raw_connect(int port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	/* before connect, so the window is negotiated for it */
	if (raw_rcvbuf > 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &raw_rcvbuf, sizeof(raw_rcvbuf));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void raw_send(int fd, const void *buf, size_t len)
{
	assert_int_equal(send(fd, buf, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Read whole frames until EOF; returns 1 when the server closed within
 * ms, 0 when it did not. Frames are collected into buf when given. */
static int closed_within(int fd, int ms, uint8_t *buf, size_t cap, size_t *got)
{
	struct timespec t0, t1;
	size_t n = 0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		uint8_t tmp[4096];
		int left;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left = ms - (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
		if (left <= 0)
			return 0;
		if (poll(&p, 1, left) <= 0)
			return 0;
		ssize_t r = recv(fd, tmp, sizeof(tmp), 0);
		if (r <= 0) {
			if (got)
				*got = n;
			return 1;
		}
		if (buf && n + (size_t)r <= cap) {
			memcpy(buf + n, tmp, (size_t)r);
			n += (size_t)r;
		}
	}
}

typedef struct {
	int fd;
	noise_cipher send, recv;
} raw_peer;

static void read_exact(int fd, uint8_t *buf, size_t len)
{
	while (len) {
		struct pollfd p = {fd, POLLIN, 0};
		assert_true(poll(&p, 1, 5000) == 1);
		ssize_t r = recv(fd, buf, len, 0);
		assert_true(r > 0);
		buf += r;
		len -= (size_t)r;
	}
}

/* A correct handshake as device `as` for plan (hex); returns the ciphers. */
static void raw_handshake(raw_peer *rp, int port, samen_store *as, const char *planhex)
{
	noise_handshake hs;
	uint8_t plan[16], prologue[PEER_PROLOGUE_LEN], x[32], out[256], pk[32];
	size_t n, plen;
	assert_int_equal(sodium_hex2bin(plan, 16, planhex, 32, NULL, NULL, NULL), 0);
	rp->fd = raw_connect(port);
	assert_int_equal(noise_static_from_ed25519(x, as->sk), 0);
	peer_prologue(prologue, plan);
	noise_handshake_init(&hs, true, prologue, sizeof(prologue), x, NULL);
	memcpy(out + 4, PEER_MAGIC, PEER_MAGIC_LEN);
	out[4 + PEER_MAGIC_LEN] = PEER_VERSION;
	memcpy(out + 4 + PEER_MAGIC_LEN + 1, plan, 16);
	assert_int_equal(noise_write_message(&hs, NULL, 0, out + 4 + PEER_HELLO_LEN, 64, &n), 0);
	peer_put32(out, (uint32_t)(PEER_HELLO_LEN + n));
	raw_send(rp->fd, out, 4 + PEER_HELLO_LEN + n);
	read_exact(rp->fd, out, 4);
	assert_int_equal(peer_get32(out), PEER_MSG2_LEN);
	read_exact(rp->fd, out, PEER_MSG2_LEN);
	assert_int_equal(noise_read_message(&hs, out, PEER_MSG2_LEN, pk, sizeof(pk), &plen), 0);
	assert_int_equal(noise_write_message(&hs, as->pk, 32, out + 4, sizeof(out) - 4, &n), 0);
	peer_put32(out, (uint32_t)n);
	raw_send(rp->fd, out, 4 + n);
	assert_int_equal(noise_split(&hs, &rp->send, &rp->recv, NULL), 0);
}

/* ---- behaviours -------------------------------------------------------------------------------- */

static void test_member_clones_then_syncs_both_ways(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	char ha[65], hb[65];

	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_true(st.cloned);
	assert_int_equal(st.received, change_count(f->a, f->plan));
	assert_int_equal(st.applied, st.received);
	assert_string_equal(st.peer, samen_store_device_key(f->a));
	add_goals(f->b, f->plan, 2, 30, "bram");
	add_goals(f->a, f->plan, 1, 30, "anna");
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.sent, 2);
	assert_int_equal(st.peer_applied, 2);
	assert_int_equal(st.received, 1);
	assert_int_equal(st.ahead, 0);
	assert_int_equal(st.behind, 0);
	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->b, f->plan, hb);
	assert_string_equal(ha, hb);
	/* nothing new: nothing moves but the two version vectors */
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.sent + st.received, 0);
}

typedef struct {
	int n;
	int64_t last_sync;
	char device[65];
} peer_seen;

static int note_peer(const samen_peer_info *p, void *payload)
{
	peer_seen *s = payload;
	s->n++;
	s->last_sync = p->last_sync;
	snprintf(s->device, sizeof(s->device), "%s", p->device);
	return 0;
}

static void test_both_sides_remember_when_they_last_synced(void **state)
{
	fixture *f = *state;
	peer_seen seen = {0};
	samen_plan *p;
	must_sync(f->b, f->sa.url, f->plan, NULL);
	p = tu_open_plan(f->b, f->plan);
	assert_int_equal(samen_peer_list(p, note_peer, &seen), 0);
	samen_plan_free(p);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.device, samen_store_device_key(f->a));
	assert_true(seen.last_sync > 0);
	memset(&seen, 0, sizeof(seen));
	p = tu_open_plan(f->a, f->plan);
	assert_int_equal(samen_peer_list(p, note_peer, &seen), 0);
	samen_plan_free(p);
	assert_int_equal(seen.n, 1);
	assert_string_equal(seen.device, samen_store_device_key(f->b));
}

static void test_incremental_sync_is_small_whatever_the_history(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	uint64_t small_history, long_history;
	must_sync(f->b, f->sa.url, f->plan, NULL);
	add_goals(f->a, f->plan, 1, 40, "one");
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.received, 1);
	small_history = st.bytes_in + st.bytes_out;
	add_goals(f->a, f->plan, 260, 40, "many"); /* more than one batch of the send cursor */
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.received, 260);
	add_goals(f->a, f->plan, 1, 40, "one");
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.received, 1);
	assert_int_equal(st.sent, 0);
	long_history = st.bytes_in + st.bytes_out;
	assert_true(long_history <= 2048);
	assert_true(long_history <= small_history + 16);
}

static void test_three_devices_in_random_pairings_reach_the_same_state(void **state)
{
	fixture *f = *state;
	samen_store *dev[3] = {f->a, f->b, f->c};
	server srv[3];
	char h[3][65];
	rng r = {0x5eed1234abcdull};

	must_sync(f->b, f->sa.url, f->plan, NULL);
	must_sync(f->c, f->sa.url, f->plan, NULL);
	stop_server(&f->sa); /* A is served by srv[0] below */
	for (int i = 0; i < 3; i++)
		start_server(&srv[i], dev[i]);
	for (int round = 0; round < 24; round++) {
		int i = (int)below(&r, 3), j = (int)((uint32_t)i + 1 + below(&r, 2)) % 3;
		char tag[32];
		snprintf(tag, sizeof(tag), "r%d-d%d", round, i);
		add_goals(dev[i], f->plan, 1 + (int)below(&r, 3), 10 + below(&r, 60), tag);
		if (below(&r, 2))
			add_goals(dev[j], f->plan, 1, 25, tag);
		must_sync(dev[i], srv[j].url, f->plan, NULL);
	}
	/* two rounds through B bring everything everywhere */
	must_sync(f->a, srv[1].url, f->plan, NULL);
	must_sync(f->c, srv[1].url, f->plan, NULL);
	must_sync(f->a, srv[1].url, f->plan, NULL);
	for (int i = 0; i < 3; i++)
		stop_server(&srv[i]);
	for (int i = 0; i < 3; i++)
		tu_state_hash(dev[i], f->plan, h[i]);
	assert_true(h[0][0] != '\0');
	assert_string_equal(h[0], h[1]);
	assert_string_equal(h[1], h[2]);
	start_server(&f->sa, f->a);
}

/* ---- a relay that cuts the line after a number of bytes ------------------------------------------- */

typedef struct {
	int listen_fd, port, server_port;
	size_t cut;                       /* bytes forwarded (both ways) before the cut */
	pthread_t thread;
} relay;

static void *relay_main(void *arg)
{
	relay *r = arg;
	int a = accept(r->listen_fd, NULL, NULL), b;
	size_t moved = 0;
	uint8_t buf[16384];
	if (a < 0)
		return NULL;
	b = raw_connect(r->server_port);
	for (int spins = 0; spins < 20000; spins++) {
		struct pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
		if (poll(p, 2, 5000) <= 0)
			break;
		int from = (p[0].revents & (POLLIN | POLLHUP)) ? a : b, to = from == a ? b : a;
		size_t want = sizeof(buf);
		if (r->cut - moved < want)
			want = r->cut - moved;
		if (want == 0)
			break;
		ssize_t n = recv(from, buf, want, 0);
		if (n <= 0)
			break;
		if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
			break;
		moved += (size_t)n;
	}
	close(a);
	close(b);
	return NULL;
}

static void relay_start(relay *r, int server_port, size_t cut)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	memset(r, 0, sizeof(*r));
	r->server_port = server_port;
	r->cut = cut;
	r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(r->listen_fd, 1), 0);
	assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&sa, &len), 0);
	r->port = ntohs(sa.sin_port);
	assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r), 0);
}

static void relay_stop(relay *r)
{
	pthread_join(r->thread, NULL);
	close(r->listen_fd);
}

static void test_cut_connections_lose_nothing_and_the_next_sync_completes(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	char ha[65], hb[65], url[64];
	int64_t prev_a, prev_b;
	rng r = {0xc0ffee11ull};
	int failures = 0, progress_b = 0;

	must_sync(f->b, f->sa.url, f->plan, NULL);
	/* big enough that records span frames and chunks are applied mid-way */
	add_goals(f->a, f->plan, 80, 300, "anna");
	add_goals(f->a, f->plan, 2, 900, "long");
	add_goals(f->b, f->plan, 30, 200, "bram");
	prev_a = change_count(f->a, f->plan);
	prev_b = change_count(f->b, f->plan);
	for (int i = 0; i < 32; i++) {
		relay rl;
		/* new work on both sides every time, and a cut somewhere in it */
		size_t cut = 1 + below(&r, i < 8 ? 400 : 12000);
		if (i > 0 && i % 2 == 0)
			add_goals(f->a, f->plan, 16, 600, "more");
		if (i > 0)
			add_goals(f->b, f->plan, 8, 600, "more");
		relay_start(&rl, f->sa.port, cut);
		snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rl.port);
		samen_error_clear();
		if (sync_with(f->b, url, f->plan, &st) != 0)
			failures++;
		if (getenv("PEER_DEBUG"))
			fprintf(stderr, "cut %zu: %s; received %llu applied %llu sent %llu\n", cut, samen_error_last(),
			        (unsigned long long)st.received, (unsigned long long)st.applied, (unsigned long long)st.sent);
		relay_stop(&rl);
		/* both replicas stay consistent and never go back */
		int64_t na = change_count(f->a, f->plan), nb = change_count(f->b, f->plan);
		assert_true(na >= prev_a);
		assert_true(nb >= prev_b);
		progress_b += nb > prev_b;
		prev_a = na;
		prev_b = nb;
		if (i % 10 == 9) {
			samen_plan *p = tu_open_plan(f->b, f->plan);
			samen_check_result cr;
			char h[65];
			assert_int_equal(samen_plan_check(p, &cr, h), 0);
			samen_plan_free(p);
		}
	}
	/* most attempts were cut, and cut attempts still moved changes */
	assert_true(progress_b > 4);
	assert_true(failures > 20);
	must_sync(f->b, f->sa.url, f->plan, &st);
	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->b, f->plan, hb);
	assert_string_equal(ha, hb);
	assert_int_equal(change_count(f->a, f->plan), change_count(f->b, f->plan));
}

static void test_a_cut_clone_keeps_what_came_and_resumes(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	char ha[65], hc[65], url[64];
	relay rl;
	add_goals(f->a, f->plan, 120, 400, "big");
	relay_start(&rl, f->sa.port, 45000);
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rl.port);
	assert_true(sync_with(f->c, url, f->plan, &st) != 0);
	relay_stop(&rl);
	if (getenv("PEER_DEBUG"))
		fprintf(stderr, "cut clone: %s; received %llu applied %llu in %llu\n", samen_error_last(),
		        (unsigned long long)st.received, (unsigned long long)st.applied, (unsigned long long)st.bytes_in);
	assert_true(st.applied > 0);
	assert_true(tu_has_plan(f->c, f->plan));
	assert_int_equal(change_count(f->c, f->plan), (int64_t)st.applied);
	must_sync(f->c, f->sa.url, f->plan, &st);
	assert_false(st.cloned);
	tu_state_hash(f->a, f->plan, ha);
	tu_state_hash(f->c, f->plan, hc);
	assert_string_equal(ha, hc);
}

/* ---- refusals ------------------------------------------------------------------------------------- */

static void test_non_member_gets_no_plan_data(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	assert_int_equal(sync_with(f->x, f->sa.url, f->plan, &st), SAMEN_EPERM);
	assert_non_null(strstr(samen_error_last(), "not a member"));
	assert_false(tu_has_plan(f->x, f->plan));
	/* the handshake and one error frame, nothing more */
	assert_true(st.bytes_in < 400);
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

static void test_unknown_plan_is_refused_and_leaves_nothing(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	const char *other = "00112233445566778899aabbccddeeff";
	assert_int_equal(sync_with(f->b, f->sa.url, other, &st), SAMEN_ENOTFOUND);
	assert_non_null(strstr(samen_error_last(), "no plan"));
	assert_false(tu_has_plan(f->b, other));
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

static void test_client_refuses_a_server_that_is_not_a_member(void **state)
{
	fixture *f = *state;
	server sx;
	samen_sync_stats st;
	must_sync(f->b, f->sa.url, f->plan, NULL);
	/* X gets the plan by bundle (everything in it is signed), then serves it */
	{
		char path[4300];
		samen_bundle_stats bs;
		samen_plan *p = tu_open_plan(f->a, f->plan);
		snprintf(path, sizeof(path), "%s/all.bundle", f->dir);
		stop_server(&f->sa);
		assert_int_equal(samen_bundle_create(p, path, NULL, &bs), 0);
		samen_plan_free(p);
		assert_int_equal(samen_bundle_import(f->x, path, &bs), 0);
		start_server(&f->sa, f->a);
	}
	add_goals(f->b, f->plan, 1, 20, "secret");
	start_server(&sx, f->x);
	/* X's server would let B in (B is a member in X's copy), but B sees
	 * that X is not a member and sends nothing, not even its vector */
	assert_int_equal(sync_with(f->b, sx.url, f->plan, &st), SAMEN_EPERM);
	assert_non_null(strstr(samen_error_last(), "is not a member of plan"));
	stop_server(&sx);
	assert_int_equal(st.sent, 0);
	assert_int_equal(st.received, 0);
	assert_true(st.bytes_out < 300); /* hello, message 3 and the error frame */
}

static void test_a_revoked_member_is_refused(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	samen_plan *p;
	samen_edit *e;
	must_sync(f->b, f->sa.url, f->plan, NULL);
	stop_server(&f->sa);
	p = tu_open_plan(f->a, f->plan);
	assert_int_equal(samen_edit_begin(&e, p), 0);
	assert_int_equal(samen_edit_member_revoke(e, "Bram"), 0);
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
	start_server(&f->sa, f->a);
	add_goals(f->a, f->plan, 1, 20, "after");
	assert_int_equal(sync_with(f->b, f->sa.url, f->plan, &st), SAMEN_EPERM);
	assert_non_null(strstr(samen_error_last(), "not a member"));
	assert_int_equal(st.received, 0);
	must_sync(f->c, f->sa.url, f->plan, NULL);
}

static void test_bad_handshakes_are_dropped(void **state)
{
	fixture *f = *state;
	uint8_t junk[64];
	int fd;
	/* wrong magic */
	fd = raw_connect(f->sa.port);
	memset(junk, 'A', sizeof(junk));
	peer_put32(junk, PEER_HELLO_LEN + PEER_MSG1_LEN);
	raw_send(fd, junk, 4 + PEER_HELLO_LEN + PEER_MSG1_LEN);
	assert_true(closed_within(fd, 2000, NULL, 0, NULL));
	close(fd);
	/* right hello, then a message 3 of random bytes */
	{
		raw_peer rp;
		noise_handshake hs;
		uint8_t plan[16], prologue[PEER_PROLOGUE_LEN], x[32], out[256];
		size_t n;
		sodium_hex2bin(plan, 16, f->plan, 32, NULL, NULL, NULL);
		rp.fd = raw_connect(f->sa.port);
		randombytes_buf(x, 32);
		peer_prologue(prologue, plan);
		noise_handshake_init(&hs, true, prologue, sizeof(prologue), x, NULL);
		memcpy(out + 4, PEER_MAGIC, PEER_MAGIC_LEN);
		out[4 + PEER_MAGIC_LEN] = PEER_VERSION;
		memcpy(out + 4 + PEER_MAGIC_LEN + 1, plan, 16);
		assert_int_equal(noise_write_message(&hs, NULL, 0, out + 4 + PEER_HELLO_LEN, 64, &n), 0);
		peer_put32(out, (uint32_t)(PEER_HELLO_LEN + n));
		raw_send(rp.fd, out, 4 + PEER_HELLO_LEN + n);
		read_exact(rp.fd, out, 4 + PEER_MSG2_LEN);
		randombytes_buf(out + 4, PEER_MSG3_LEN);
		peer_put32(out, PEER_MSG3_LEN);
		raw_send(rp.fd, out, 4 + PEER_MSG3_LEN);
		assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
		close(rp.fd);
	}
	/* a correct Noise handshake whose claimed device key is not the static */
	{
		samen_store tmp = *f->b;
		raw_peer rp;
		memcpy(tmp.pk, f->a->pk, 32); /* claim to be A with B's key */
		raw_handshake(&rp, f->sa.port, &tmp, f->plan);
		assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
		close(rp.fd);
	}
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

static void test_oversize_and_garbage_frames_close_the_connection(void **state)
{
	fixture *f = *state;
	raw_peer rp;
	uint8_t buf[600];
	int fd;
	/* before the handshake: a length far beyond the cap */
	fd = raw_connect(f->sa.port);
	peer_put32(buf, 0xffffffffu);
	raw_send(fd, buf, 4);
	assert_true(closed_within(fd, 2000, NULL, 0, NULL));
	close(fd);
	/* after the handshake: one byte over the cap */
	raw_handshake(&rp, f->sa.port, f->b, f->plan);
	peer_put32(buf, PEER_MAX_FRAME + 1);
	raw_send(rp.fd, buf, 4);
	assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
	close(rp.fd);
	/* after the handshake: garbage that fails authentication */
	raw_handshake(&rp, f->sa.port, f->b, f->plan);
	randombytes_buf(buf + 4, 500);
	peer_put32(buf, 500);
	raw_send(rp.fd, buf, 504);
	assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
	close(rp.fd);
	/* after the handshake: an authentic frame with a message out of place */
	raw_handshake(&rp, f->sa.port, f->b, f->plan);
	{
		size_t n;
		uint8_t body[16] = {0};
		assert_int_equal(peer_seal(&rp.send, PEER_MSG_DONE, body, sizeof(body), buf, &n), 0);
		raw_send(rp.fd, buf, n);
		assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
		close(rp.fd);
	}
	/* after the handshake: an authentic change record longer than the cap */
	raw_handshake(&rp, f->sa.port, f->b, f->plan);
	{
		size_t n;
		uint8_t body[3] = {1, 0, 0}; /* an empty, final version vector */
		uint8_t rec[8];
		uint8_t *frame = malloc(PEER_FRAME_HEADER + PEER_MAX_FRAME), got[65536];
		size_t gotn = 0;
		assert_non_null(frame);
		assert_int_equal(peer_seal(&rp.send, PEER_MSG_VV, body, sizeof(body), frame, &n), 0);
		raw_send(rp.fd, frame, n);
		/* the server sends everything; then our changes: a huge record */
		assert_true(closed_within(rp.fd, 300, got, sizeof(got), &gotn) == 0);
		assert_int_equal(peer_seal(&rp.send, PEER_MSG_DONE, NULL, 0, frame, &n), 0); /* wrong size DONE */
		uint8_t zrec[64];
		peer_put32(rec, SAMEN_MAX_CHANGE_BYTES + 1);
		size_t zn = deflate_piece(rec, 4, zrec, sizeof(zrec));
		assert_int_equal(peer_seal(&rp.send, PEER_MSG_CHANGES, zrec, zn, frame, &n), 0);
		raw_send(rp.fd, frame, n);
		assert_true(closed_within(rp.fd, 2000, NULL, 0, NULL));
		close(rp.fd);
		free(frame);
	}
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

static void test_slowloris_is_timed_out_while_others_are_served(void **state)
{
	fixture *f = *state;
	uint8_t hello[4 + PEER_HELLO_LEN + PEER_MSG1_LEN];
	int fd[3];
	memset(hello, 0, sizeof(hello));
	peer_put32(hello, PEER_HELLO_LEN + PEER_MSG1_LEN);
	memcpy(hello + 4, PEER_MAGIC, PEER_MAGIC_LEN);
	for (int i = 0; i < 3; i++) {
		fd[i] = raw_connect(f->sa.port);
		raw_send(fd[i], hello, 5 + i); /* a frame begun, never finished */
	}
	/* an honest member is served meanwhile */
	must_sync(f->b, f->sa.url, f->plan, NULL);
	for (int i = 0; i < 3; i++) {
		/* one more byte now and then does not keep the frame alive */
		usleep(200 * 1000);
		raw_send(fd[i], hello + 5 + i, 1);
	}
	for (int i = 0; i < 3; i++) {
		assert_true(closed_within(fd[i], 3000, NULL, 0, NULL));
		close(fd[i]);
	}
	/* a connection that never says anything is dropped too */
	fd[0] = raw_connect(f->sa.port);
	assert_true(closed_within(fd[0], 3000, NULL, 0, NULL));
	close(fd[0]);
}

/* A thousand connections at once (hostile-inputs.md): the server holds at
 * most its cap, drops or refuses the rest cleanly, and still serves
 * members. The process needs a file descriptor per connection. */
static void test_a_thousand_connections_do_not_lock_out_a_member(void **state)
{
	fixture *f = *state;
	server small;
	samen_serve_options o = SAMEN_SERVE_OPTIONS_INIT;
	enum { WANT = 1000 };
	int fds[WANT], n = WANT;
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < WANT + 200) {
		rl.rlim_cur = rl.rlim_max < WANT + 200 ? rl.rlim_max : WANT + 200;
		setrlimit(RLIMIT_NOFILE, &rl);
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < WANT + 200)
			n = (int)rl.rlim_cur - 200; /* as many as this machine allows */
	}
	assert_true(n >= 200);
	o.max_connections = 50;
	o.handshake_timeout_ms = 20000; /* the flood would hold on, if it could */
	o.frame_timeout_ms = 20000;
	o.idle_timeout_ms = 20000;
	start_server_with(&small, f->a, &o);
	stop_server(&f->sa);
	for (int i = 0; i < n; i++) {
		fds[i] = raw_connect(small.port);
		if (i % 2) /* some begin a frame (the server may have dropped it already) */
			(void)send(fds[i], PEER_MAGIC, 3, MSG_NOSIGNAL);
	}
	usleep(100 * 1000);
	must_sync(f->b, small.url, f->plan, NULL);
	must_sync(f->c, small.url, f->plan, NULL);
	for (int i = 0; i < n; i++)
		close(fds[i]);
	stop_server(&small);
	start_server(&f->sa, f->a);
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

/* One change holding n goals with a 4000-byte description each. */
static void add_big_change(samen_store *s, const char *plan, int n)
{
	samen_plan *p = tu_open_plan(s, plan);
	samen_edit *e;
	char *text = malloc(4001), uid[17];
	assert_non_null(text);
	text[4000] = '\0';
	assert_int_equal(samen_edit_begin(&e, p), 0);
	for (int i = 0; i < n; i++) {
		char title[32];
		for (int k = 0; k < 4000; k++) /* each its own, or it compresses away */
			text[k] = text_letter();
		snprintf(title, sizeof(title), "big %d", i);
		assert_int_equal(samen_edit_create(e, "goal", uid), 0);
		assert_int_equal(samen_edit_set(e, uid, "title", title), 0);
		assert_int_equal(samen_edit_set(e, uid, "description", text), 0);
	}
	assert_int_equal(samen_edit_commit(e, NULL), 0);
	samen_edit_free(e);
	samen_plan_free(p);
	free(text);
}

static void test_a_reader_that_stalls_is_paused_and_resumed(void **state)
{
	fixture *f = *state;
	raw_peer rp;
	uint8_t *frame = malloc(PEER_FRAME_HEADER + PEER_MAX_FRAME), vv[3] = {1, 0, 0}, hdr[4];
	size_t n, body_len, stream = 0, frames = 0;
	uint8_t type, *body;

	assert_non_null(frame);
	/* about 1.6 MB to send: more than a non-reading peer's socket buffers
	 * take, so the server's write queue reaches its high-water mark */
	add_big_change(f->a, f->plan, 200);
	add_big_change(f->a, f->plan, 200);
	must_sync(f->c, f->sa.url, f->plan, NULL);

	raw_rcvbuf = 65536;
	raw_handshake(&rp, f->sa.port, f->b, f->plan);
	raw_rcvbuf = 0;
	assert_int_equal(peer_seal(&rp.send, PEER_MSG_VV, vv, sizeof(vv), frame, &n), 0);
	raw_send(rp.fd, frame, n);
	/* the server stops producing while we do not read, and serves others
	 * meanwhile (within its 3 s idle limit for us) */
	usleep(300 * 1000);
	must_sync(f->c, f->sa.url, f->plan, NULL);
	usleep(300 * 1000);
	/* then everything arrives, whole and in order */
	for (;;) {
		read_exact(rp.fd, hdr, 4);
		n = peer_get32(hdr);
		assert_true(n > 0 && n <= PEER_MAX_FRAME);
		read_exact(rp.fd, frame, n);
		assert_int_equal(peer_open(&rp.recv, frame, n, &type, &body, &body_len), 0);
		frames++;
		if (type == PEER_MSG_DONE)
			break;
		if (type == PEER_MSG_CHANGES)
			stream += body_len;
		else
			assert_int_equal(type, PEER_MSG_VV);
	}
	assert_true(stream > 900000); /* 1.6 MB of letters, compressed */
	assert_true(frames > 60);
	close(rp.fd);
	free(frame);
	must_sync(f->b, f->sa.url, f->plan, NULL);
}

/* What a peer sends is inflated with a cap per piece, and damaged
 * compressed data, a piece that inflates past the cap (a "zip bomb") and a
 * record over the change cap are refused, each with its reason. */
static void test_compressed_pieces_are_bounded_and_checked(void **state)
{
	fixture *f = *state;
	samen_plan *p = tu_open_plan(f->a, f->plan);
	peer_session s;
	uint8_t *zeros = calloc(1, 200000), piece[PEER_CHANGES_PIECE + 1024], rec[4];
	size_t n;
	assert_non_null(zeros);

	OK(peer_session_init(&s, p));
	n = deflate_piece(zeros, 200000, piece, sizeof(piece));
	assert_true(n < 1024); /* 200 kB of zeros in a few hundred bytes */
	samen_error_clear();
	assert_int_equal(peer_session_receive(&s, piece, n), SAMEN_EDECODE);
	assert_non_null(strstr(samen_error_last(), "inflates to more than 16384 bytes"));
	peer_session_free(&s);

	OK(peer_session_init(&s, p));
	memset(piece, 0xff, 64);
	samen_error_clear();
	assert_int_equal(peer_session_receive(&s, piece, 64), SAMEN_EDECODE);
	assert_non_null(strstr(samen_error_last(), "damaged compressed data"));
	peer_session_free(&s);

	OK(peer_session_init(&s, p));
	peer_put32(rec, SAMEN_MAX_CHANGE_BYTES + 1);
	n = deflate_piece(rec, 4, piece, sizeof(piece));
	samen_error_clear();
	assert_int_equal(peer_session_receive(&s, piece, n), SAMEN_EDECODE);
	assert_non_null(strstr(samen_error_last(), "the cap is"));
	peer_session_free(&s);

	/* exactly the cap inflates fine: 16384 zero bytes are four-byte
	 * record headers of length 0, refused as records, not as a bomb */
	OK(peer_session_init(&s, p));
	n = deflate_piece(zeros, PEER_CHANGES_PIECE, piece, sizeof(piece));
	samen_error_clear();
	assert_int_equal(peer_session_receive(&s, piece, n), SAMEN_EDECODE);
	assert_non_null(strstr(samen_error_last(), "change of 0 bytes"));
	peer_session_free(&s);

	free(zeros);
	samen_plan_free(p);
}

static void test_a_forked_device_chain_is_reported(void **state)
{
	fixture *f = *state;
	samen_sync_stats st;
	char cmd[9000];
	samen_store *b2;
	must_sync(f->b, f->sa.url, f->plan, NULL);
	/* the same device key in two stores: each signs a different seq */
	snprintf(cmd, sizeof(cmd), "cp -a '%s/b' '%s/b2'", f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	b2 = tu_open_store(f->dir, "b2", "Bram");
	add_goals(f->b, f->plan, 1, 20, "here");
	add_goals(b2, f->plan, 1, 20, "there");
	must_sync(f->b, f->sa.url, f->plan, &st);
	assert_int_equal(st.forks, 0);
	must_sync(b2, f->sa.url, f->plan, &st);
	assert_int_equal(st.forks, 1);
	assert_non_null(strstr(st.fork_msg, "two different changes"));
	/* both branches travelled: the server sent its own and took b2's, so
	 * every side ends up knowing the fork and holding the same state */
	must_sync(f->b, f->sa.url, f->plan, &st);
	must_sync(b2, f->sa.url, f->plan, &st);
	{
		char h1[65], h2[65];
		samen_plan *p;
		samen_status ss;
		tu_state_hash(f->b, f->plan, h1);
		tu_state_hash(b2, f->plan, h2);
		assert_string_equal(h1, h2);
		p = tu_open_plan(f->b, f->plan);
		OK(samen_plan_status(p, &ss));
		assert_int_equal(ss.evidence, 1);
		samen_plan_free(p);
		must_sync(f->c, f->sa.url, f->plan, &st);
		tu_state_hash(f->c, f->plan, h2);
		assert_string_equal(h1, h2);
	}
	samen_store_free(b2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_member_clones_then_syncs_both_ways, setup, teardown),
		cmocka_unit_test_setup_teardown(test_both_sides_remember_when_they_last_synced, setup, teardown),
		cmocka_unit_test_setup_teardown(test_incremental_sync_is_small_whatever_the_history, setup, teardown),
		cmocka_unit_test_setup_teardown(test_three_devices_in_random_pairings_reach_the_same_state, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cut_connections_lose_nothing_and_the_next_sync_completes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_cut_clone_keeps_what_came_and_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_non_member_gets_no_plan_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_plan_is_refused_and_leaves_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_refuses_a_server_that_is_not_a_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_revoked_member_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_handshakes_are_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_and_garbage_frames_close_the_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slowloris_is_timed_out_while_others_are_served, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_thousand_connections_do_not_lock_out_a_member, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_reader_that_stalls_is_paused_and_resumed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_forked_device_chain_is_reported, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compressed_pieces_are_bounded_and_checked, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
