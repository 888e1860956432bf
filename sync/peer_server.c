/*
 * peer_server.c - `samen serve`: one libuv loop serving every plan of the
 * store to many peers at once (docs/protocol.md).
 *
 * A connection moves through these states and never back:
 *   HELLO      waiting for the clear hello (magic, version, plan id) with
 *              Noise message 1; answered with message 2
 *   MSG3       waiting for Noise message 3; then the device binding, the
 *              plan and the membership are checked before anything else
 *   PEER_VV    taking the client's version vector
 *   SENDING    our vector, the changes the client lacks, DONE; produced
 *              only while less than WRITE_HIGH_WATER bytes wait in the
 *              socket's queue, resumed as writes complete
 *   RECEIVING  the client's changes, applied in chunks; DONE is answered
 *              with ACK and the connection ends
 *   CLOSING    an error frame or the ACK is being flushed
 * A frame that does not belong to the state closes the connection.
 *
 * Memory per connection is bounded: before the handshake completes, a 128
 * byte read buffer; after, one frame (64 KiB), the record being sent, at
 * most WRITE_HIGH_WATER plus one frame queued for writing, and the chunk of
 * received changes (PEER_CHUNK_*). Disk work runs in the loop thread in
 * bounded chunks. Nothing here resolves a host name.
 */
#include "sync/peer.h"

#include <signal.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define WRITE_HIGH_WATER (256u << 10)
#define HANDSHAKE_BUF 128
#define DEFAULT_MAX_CONNECTIONS 256
#define DEFAULT_HANDSHAKE_MS 10000
#define DEFAULT_FRAME_MS 10000
#define DEFAULT_IDLE_MS 60000

typedef enum { ST_HELLO, ST_MSG3, ST_PEER_VV, ST_SENDING, ST_RECEIVING, ST_CLOSING } conn_state;

typedef struct server_plan {
	uint8_t id[16];
	samen_plan *plan;
	unsigned refs;
	struct server_plan *next;
} server_plan;

typedef struct conn {
	uv_tcp_t tcp;
	samen_server *srv;
	struct conn *prev, *next;
	conn_state st;
	bool closing;                 /* uv_close called */
	bool authed;                  /* handshake finished and checked */
	noise_handshake *hs;          /* during the handshake only */
	noise_cipher send, recv;
	uint8_t plan_id[16];
	uint8_t peer_key[32];
	server_plan *sp;
	peer_session sess;
	bool sess_init;
	bool vv_sent, done_sent;
	uint8_t *rbuf;
	size_t rlen, rcap;
	size_t queued;                /* bytes handed to uv_write, not yet written */
	uint64_t started, frame_started, last_progress;
	char addr[64];
} conn;

struct samen_server {
	samen_store *store;
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_timer_t timer;
	uv_async_t stop_async;
	uv_signal_t sigint, sigterm;
	bool signals;
	bool stopping;
	int port;
	samen_serve_options opts;
	conn *conns;                  /* newest first */
	unsigned nconns;
	server_plan *plans;
	uint8_t x_priv[NOISE_DHLEN];
	uint8_t *frame;               /* scratch for one outgoing frame */
};

typedef struct {
	uv_write_t req;
	conn *c;
	size_t len;
	uint8_t data[];
} write_req;

static void conn_log(conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void conn_log(conn *c, const char *fmt, ...)
{
	char line[600], key[17] = "-";
	va_list ap;
	int n;
	if (!c->srv->opts.on_log)
		return;
	if (c->authed)
		sodium_bin2hex(key, sizeof(key), c->peer_key, 8);
	n = snprintf(line, sizeof(line), "%s device %s: ", c->addr, key);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	c->srv->opts.on_log(line, c->srv->opts.payload);
}

/* --- plans shared by connections ------------------------------------------------ */

static int plan_acquire(samen_server *srv, const uint8_t id[16], server_plan **out)
{
	server_plan *sp;
	int rc;
	for (sp = srv->plans; sp; sp = sp->next)
		if (memcmp(sp->id, id, 16) == 0) {
			sp->refs++;
			*out = sp;
			return 0;
		}
	if (!(sp = calloc(1, sizeof(*sp))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	memcpy(sp->id, id, 16);
	/* the plan stays open (and locked) while a connection uses it */
	if ((rc = plan_open_dir(&sp->plan, srv->store, id, false)) < 0) {
		free(sp);
		return rc;
	}
	sp->refs = 1;
	sp->next = srv->plans;
	srv->plans = sp;
	*out = sp;
	return 0;
}

static void plan_release(samen_server *srv, server_plan *sp)
{
	if (!sp || --sp->refs > 0)
		return;
	for (server_plan **pp = &srv->plans; *pp; pp = &(*pp)->next)
		if (*pp == sp) {
			*pp = sp->next;
			break;
		}
	samen_plan_free(sp->plan);
	free(sp);
}

/* --- closing ------------------------------------------------------------------------ */

static void on_closed(uv_handle_t *h)
{
	conn *c = h->data;
	free(c->rbuf);
	free(c);
}

static void conn_close(conn *c, const char *why)
{
	samen_server *srv = c->srv;
	if (c->closing)
		return;
	c->closing = true;
	if (c->sess_init) {
		/* keep every change that was fully received */
		if (c->st == ST_RECEIVING && !c->done_sent) {
			int64_t behind = -1;
			if (peer_session_flush(&c->sess) < 0)
				conn_log(c, "keeping what was received failed: %s", samen_error_last());
			peer_record(c->sp->plan, c->peer_key, c->addr, false,
			            (int64_t)(c->sess.to_send - c->sess.sent), behind);
		}
		peer_session_free(&c->sess);
		c->sess_init = false;
	}
	plan_release(srv, c->sp);
	c->sp = NULL;
	if (c->hs) {
		sodium_memzero(c->hs, sizeof(*c->hs));
		free(c->hs);
		c->hs = NULL;
	}
	sodium_memzero(&c->send, sizeof(c->send));
	sodium_memzero(&c->recv, sizeof(c->recv));
	if (why)
		conn_log(c, "closed: %s", why);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	uv_read_stop((uv_stream_t *)&c->tcp);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* --- writing ---------------------------------------------------------------------------- */

static void produce(conn *c);

static void on_written(uv_write_t *req, int status)
{
	write_req *w = (write_req *)req;
	conn *c = w->c;
	c->queued -= w->len;
	free(w);
	if (c->closing)
		return;
	if (status < 0) {
		conn_close(c, uv_strerror(status));
		return;
	}
	c->last_progress = uv_now(&c->srv->loop);
	if (c->st == ST_CLOSING && c->queued == 0)
		conn_close(c, NULL);
	else if (c->st == ST_SENDING)
		produce(c);
}

static int write_raw(conn *c, const uint8_t *data, size_t len)
{
	write_req *w = malloc(sizeof(*w) + len);
	uv_buf_t buf;
	int rc;
	if (!w)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	w->c = c;
	w->len = len;
	memcpy(w->data, data, len);
	buf = uv_buf_init((char *)w->data, (unsigned)len);
	if ((rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written)) < 0) {
		free(w);
		return samen_error_set(SAMEN_EIO, "write: %s", uv_strerror(rc));
	}
	c->queued += len;
	return 0;
}

static int write_msg(conn *c, uint8_t type, const uint8_t *body, size_t len)
{
	size_t flen;
	int rc;
	if ((rc = peer_seal(&c->send, type, body, len, c->srv->frame, &flen)) < 0)
		return rc;
	return write_raw(c, c->srv->frame, flen);
}

/* Send an error frame (encrypted once the handshake is done) and close
 * once it is written. */
static void fail_conn(conn *c, uint8_t code, const char *msg)
{
	uint8_t body[1 + PEER_MAX_ERROR_TEXT];
	size_t n = strlen(msg);
	if (n > PEER_MAX_ERROR_TEXT)
		n = PEER_MAX_ERROR_TEXT;
	conn_log(c, "refused: %s", msg);
	if (!c->send.has_key) {
		conn_close(c, NULL);
		return;
	}
	body[0] = code;
	memcpy(body + 1, msg, n);
	c->st = ST_CLOSING;
	if (write_msg(c, PEER_MSG_ERROR, body, 1 + n) < 0 || c->queued == 0)
		conn_close(c, NULL);
}

/* --- producing (SENDING) -------------------------------------------------------------- */

static void produce(conn *c)
{
	uint8_t *body = c->srv->frame + PEER_FRAME_HEADER + 1; /* room left by peer_seal's layout */
	uint8_t done[16];
	size_t len;
	bool last;
	int rc = 0;

	while (c->st == ST_SENDING && c->queued < WRITE_HIGH_WATER && rc == 0) {
		if (!c->vv_sent) {
			if ((rc = peer_session_vv_message(&c->sess, body, &len, &last)) == 0)
				rc = write_msg(c, PEER_MSG_VV, body, len);
			c->vv_sent = last;
			continue;
		}
		if ((rc = peer_session_next_changes(&c->sess, body, PEER_CHANGES_PIECE, &len)) < 0)
			break;
		if (len > 0) {
			rc = write_msg(c, PEER_MSG_CHANGES, body, len);
			continue;
		}
		peer_put64(done, c->sess.sent);
		peer_put64(done + 8, c->sess.forks);
		if ((rc = write_msg(c, PEER_MSG_DONE, done, sizeof(done))) == 0)
			c->st = ST_RECEIVING;
	}
	if (rc < 0)
		fail_conn(c, PEER_ERR_INTERNAL, samen_error_last());
}

/* --- handshake ----------------------------------------------------------------------------- */

static int grow_rbuf(conn *c, size_t cap)
{
	void *p = realloc(c->rbuf, cap);
	if (!p)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	c->rbuf = p;
	c->rcap = cap;
	return 0;
}

static void on_hello(conn *c, const uint8_t *f, size_t len)
{
	uint8_t prologue[PEER_PROLOGUE_LEN], msg[PEER_MSG2_LEN + PEER_FRAME_HEADER], pk[32];
	size_t n, plen;
	if (len != PEER_HELLO_LEN + PEER_MSG1_LEN || memcmp(f, PEER_MAGIC, PEER_MAGIC_LEN) != 0) {
		conn_close(c, "not a Samen peer hello");
		return;
	}
	if (f[PEER_MAGIC_LEN] != PEER_VERSION) {
		conn_close(c, "unsupported protocol version");
		return;
	}
	memcpy(c->plan_id, f + PEER_MAGIC_LEN + 1, 16);
	if (!(c->hs = malloc(sizeof(*c->hs)))) {
		conn_close(c, "out of memory");
		return;
	}
	peer_prologue(prologue, c->plan_id);
	noise_handshake_init(c->hs, false, prologue, sizeof(prologue), c->srv->x_priv, NULL);
	if (noise_read_message(c->hs, f + PEER_HELLO_LEN, PEER_MSG1_LEN, pk, sizeof(pk), &plen) < 0 || plen != 0) {
		conn_close(c, "bad handshake message 1");
		return;
	}
	memcpy(pk, c->srv->store->pk, 32);
	if (noise_write_message(c->hs, pk, 32, msg + PEER_FRAME_HEADER, PEER_MSG2_LEN, &n) < 0 || n != PEER_MSG2_LEN) {
		conn_close(c, "handshake failed");
		return;
	}
	peer_put32(msg, (uint32_t)n);
	if (write_raw(c, msg, n + PEER_FRAME_HEADER) < 0) {
		conn_close(c, "write failed");
		return;
	}
	c->st = ST_MSG3;
}

static void on_msg3(conn *c, const uint8_t *f, size_t len)
{
	uint8_t pk[32];
	size_t plen;
	bool member = false;
	char idhex[33], keyhex[17], msg[256];
	int rc;

	if (len != PEER_MSG3_LEN || noise_read_message(c->hs, f, len, pk, sizeof(pk), &plen) < 0 || plen != 32) {
		conn_close(c, "bad handshake message 3");
		return;
	}
	/* the static key the handshake proved must be this device key's */
	if (!noise_static_matches_ed25519(noise_remote_static(c->hs), pk)) {
		conn_close(c, "handshake static key is not the device key it claims");
		return;
	}
	memcpy(c->peer_key, pk, 32);
	noise_split(c->hs, &c->send, &c->recv, NULL);
	sodium_memzero(c->hs, sizeof(*c->hs));
	free(c->hs);
	c->hs = NULL;
	c->authed = true;
	if (grow_rbuf(c, PEER_FRAME_HEADER + PEER_MAX_FRAME) < 0) {
		conn_close(c, "out of memory");
		return;
	}
	sodium_bin2hex(idhex, sizeof(idhex), c->plan_id, 16);
	sodium_bin2hex(keyhex, sizeof(keyhex), c->peer_key, 8);
	rc = plan_acquire(c->srv, c->plan_id, &c->sp);
	if (rc == SAMEN_ENOTFOUND) {
		snprintf(msg, sizeof(msg), "this server has no plan %s", idhex);
		fail_conn(c, PEER_ERR_NO_PLAN, msg);
		return;
	}
	if (rc < 0) {
		fail_conn(c, PEER_ERR_INTERNAL, samen_error_last());
		return;
	}
	/* membership before any plan data moves */
	if (peer_is_member(c->sp->plan, c->peer_key, &member) < 0 || !member) {
		snprintf(msg, sizeof(msg), "device %s is not a member of plan %s", keyhex, idhex);
		fail_conn(c, PEER_ERR_NOT_MEMBER, msg);
		return;
	}
	if (peer_session_init(&c->sess, c->sp->plan) < 0) {
		fail_conn(c, PEER_ERR_INTERNAL, samen_error_last());
		return;
	}
	c->sess_init = true;
	c->st = ST_PEER_VV;
}

/* --- frames after the handshake ------------------------------------------------------------- */

static void on_message(conn *c, uint8_t *f, size_t len)
{
	uint8_t type, *body, ack[24];
	size_t blen;
	bool last;

	if (peer_open(&c->recv, f, len, &type, &body, &blen) < 0) {
		conn_close(c, "frame failed authentication");
		return;
	}
	if (type == PEER_MSG_ERROR) {
		char text[PEER_MAX_ERROR_TEXT + 1];
		size_t n = blen > 1 ? blen - 1 : 0;
		if (n > PEER_MAX_ERROR_TEXT)
			n = PEER_MAX_ERROR_TEXT;
		for (size_t i = 0; i < n; i++)
			text[i] = body[1 + i] >= ' ' && body[1 + i] < 0x7f ? (char)body[1 + i] : '?';
		text[n] = '\0';
		conn_log(c, "peer reported: %s", text);
		conn_close(c, NULL);
		return;
	}
	switch (c->st) {
	case ST_PEER_VV:
		if (type != PEER_MSG_VV || peer_session_take_vv(&c->sess, body, blen, &last) < 0)
			break;
		if (last) {
			if (peer_session_plan(&c->sess) < 0) {
				fail_conn(c, PEER_ERR_INTERNAL, samen_error_last());
				return;
			}
			c->st = ST_SENDING;
			produce(c);
		}
		return;
	case ST_RECEIVING:
		if (type == PEER_MSG_CHANGES) {
			if (peer_session_receive(&c->sess, body, blen) < 0) {
				char msg[300];
				snprintf(msg, sizeof(msg), "%s", samen_error_last());
				peer_session_flush(&c->sess);
				fail_conn(c, PEER_ERR_BAD_CHANGE, msg);
			}
			return;
		}
		if (type != PEER_MSG_DONE || blen != 16 || !peer_session_between_records(&c->sess))
			break;
		if (peer_session_flush(&c->sess) < 0) {
			fail_conn(c, PEER_ERR_INTERNAL, samen_error_last());
			return;
		}
		peer_put64(ack, c->sess.received);
		peer_put64(ack + 8, c->sess.applied);
		peer_put64(ack + 16, c->sess.pending);
		c->done_sent = true;
		c->st = ST_CLOSING;
		if (write_msg(c, PEER_MSG_ACK, ack, sizeof(ack)) < 0) {
			conn_close(c, "write failed");
			return;
		}
		/* after the ACK is on its way: the client need not wait for this */
		peer_record(c->sp->plan, c->peer_key, c->addr, true, 0, 0);
		(void)plan_note_sync(c->sp->plan, c->peer_key, (int64_t)time(NULL)); /* for `samen access` */
		if (c->sess.applied >= PEER_CHECKPOINT_AFTER)
			(void)replica_checkpoint(c->sp->plan->rep);
		conn_log(c, "synced plan %.8s…: sent %llu, received %llu (%llu new)", c->sp->plan->idhex,
		         (unsigned long long)c->sess.sent, (unsigned long long)c->sess.received,
		         (unsigned long long)c->sess.applied);
		return;
	default:
		break;
	}
	fail_conn(c, PEER_ERR_PROTOCOL, "unexpected or malformed message");
}

static void handle_frame(conn *c, uint8_t *f, size_t len)
{
	switch (c->st) {
	case ST_HELLO: on_hello(c, f, len); break;
	case ST_MSG3: on_msg3(c, f, len); break;
	case ST_CLOSING: break; /* ignore what comes while the last frame leaves */
	default: on_message(c, f, len); break;
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	conn *c = h->data;
	(void)suggested;
	*buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	conn *c = s->data;
	uint64_t now = uv_now(&c->srv->loop);
	(void)buf;
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		conn_close(c, nread == UV_EOF ? "peer closed the connection" : uv_strerror((int)nread));
		return;
	}
	if (c->rlen == 0)
		c->frame_started = now;
	c->rlen += (size_t)nread;
	c->last_progress = now;
	while (!c->closing && c->rlen >= PEER_FRAME_HEADER) {
		uint32_t flen = peer_get32(c->rbuf);
		if (flen == 0 || flen > c->rcap - PEER_FRAME_HEADER) {
			conn_close(c, "frame length out of bounds");
			return;
		}
		if (c->rlen < PEER_FRAME_HEADER + flen)
			return;
		handle_frame(c, c->rbuf + PEER_FRAME_HEADER, flen);
		if (c->closing)
			return;
		c->rlen -= PEER_FRAME_HEADER + flen;
		memmove(c->rbuf, c->rbuf + PEER_FRAME_HEADER + flen, c->rlen);
		c->frame_started = now;
	}
}

/* --- accepting, timers, stopping ---------------------------------------------------------- */

/* At the cap, the oldest connection still in its handshake makes room (a
 * flood of idle connections cannot lock out honest peers); if every
 * connection is past its handshake, the newcomer is refused. */
static bool make_room(samen_server *srv)
{
	conn *oldest = NULL;
	if (srv->nconns < srv->opts.max_connections)
		return true;
	for (conn *c = srv->conns; c; c = c->next)
		if (!c->authed)
			oldest = c;
	if (!oldest)
		return false;
	conn_close(oldest, "evicted: too many connections in their handshake");
	return true;
}

static void on_refused_closed(uv_handle_t *h)
{
	free(h);
}

static void on_connection(uv_stream_t *listener, int status)
{
	samen_server *srv = listener->data;
	struct sockaddr_storage sa;
	int salen = sizeof(sa);
	conn *c;

	if (status < 0)
		return;
	if (srv->stopping || !make_room(srv)) {
		uv_tcp_t *t = malloc(sizeof(*t));
		if (!t)
			return;
		uv_tcp_init(&srv->loop, t);
		if (uv_accept(listener, (uv_stream_t *)t) == 0 && srv->opts.on_log)
			srv->opts.on_log("refused a connection: at the connection cap", srv->opts.payload);
		uv_close((uv_handle_t *)t, on_refused_closed);
		return;
	}
	if (!(c = calloc(1, sizeof(*c))))
		return;
	c->srv = srv;
	uv_tcp_init(&srv->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) < 0 || grow_rbuf(c, HANDSHAKE_BUF) < 0) {
		uv_close((uv_handle_t *)&c->tcp, on_closed);
		return;
	}
	snprintf(c->addr, sizeof(c->addr), "?");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &salen) == 0) {
		char ip[48] = "?";
		int port = 0;
		if (sa.ss_family == AF_INET) {
			uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
		} else if (sa.ss_family == AF_INET6) {
			uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof(ip));
			port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
		}
		snprintf(c->addr, sizeof(c->addr), "%s:%d", ip, port);
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->started = c->last_progress = uv_now(&srv->loop);
	c->next = srv->conns;
	if (c->next)
		c->next->prev = c;
	srv->conns = c;
	srv->nconns++;
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void on_tick(uv_timer_t *t)
{
	samen_server *srv = t->data;
	uint64_t now = uv_now(&srv->loop);
	for (conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		if (!c->authed && now - c->started > srv->opts.handshake_timeout_ms)
			conn_close(c, "handshake timed out");
		else if (c->rlen > 0 && now - c->frame_started > srv->opts.frame_timeout_ms)
			conn_close(c, "frame not finished in time");
		else if (now - c->last_progress > srv->opts.idle_timeout_ms)
			conn_close(c, "idle timeout");
	}
}

static void on_handle_closed(uv_handle_t *h)
{
	(void)h;
}

static void begin_stop(samen_server *srv)
{
	if (srv->stopping)
		return;
	srv->stopping = true;
	while (srv->conns)
		conn_close(srv->conns, "server stopping");
	uv_close((uv_handle_t *)&srv->listener, on_handle_closed);
	uv_close((uv_handle_t *)&srv->timer, on_handle_closed);
	uv_close((uv_handle_t *)&srv->stop_async, on_handle_closed);
	if (srv->signals) {
		uv_close((uv_handle_t *)&srv->sigint, on_handle_closed);
		uv_close((uv_handle_t *)&srv->sigterm, on_handle_closed);
	}
}

static void on_stop(uv_async_t *a)
{
	begin_stop(a->data);
}

static void on_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	begin_stop(s->data);
}

/* "HOST:PORT" or "[V6]:PORT", numeric only: serve never resolves names. */
static int parse_listen(const char *spec, struct sockaddr_storage *sa)
{
	char host[64];
	const char *colon;
	char *end;
	long port;
	size_t hl;
	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');
		if (!rb || rb[1] != ':')
			return samen_error_set(SAMEN_EINVAL, "--listen: expected [IPV6]:PORT, got '%.60s'", spec);
		hl = (size_t)(rb - spec - 1);
		colon = rb + 1;
		spec++;
	} else {
		if (!(colon = strrchr(spec, ':')))
			return samen_error_set(SAMEN_EINVAL, "--listen: expected ADDRESS:PORT, got '%.60s'", spec);
		hl = (size_t)(colon - spec);
	}
	if (hl == 0 || hl >= sizeof(host))
		return samen_error_set(SAMEN_EINVAL, "--listen: bad address in '%.60s'", spec);
	memcpy(host, spec, hl);
	host[hl] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || end == colon + 1 || port < 0 || port > 65535)
		return samen_error_set(SAMEN_EINVAL, "--listen: bad port in '%.60s'", spec);
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) != 0 &&
	    uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) != 0)
		return samen_error_set(SAMEN_EINVAL, "--listen: '%s' is not a numeric IP address (serve resolves no"
		                                     " names)", host);
	return 0;
}

int samen_server_new(samen_server **out, samen_store *store, const samen_serve_options *opts)
{
	samen_server *srv = NULL;
	struct sockaddr_storage sa;
	struct sockaddr_storage bound;
	int rc, len = sizeof(bound);

	*out = NULL;
	if (!(srv = calloc(1, sizeof(*srv))) || !(srv->frame = malloc(PEER_FRAME_HEADER + PEER_MAX_FRAME))) {
		free(srv);
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	}
	if (opts)
		srv->opts = *opts;
	else
		srv->opts = (samen_serve_options)SAMEN_SERVE_OPTIONS_INIT;
	if (!srv->opts.max_connections)
		srv->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
	if (!srv->opts.handshake_timeout_ms)
		srv->opts.handshake_timeout_ms = DEFAULT_HANDSHAKE_MS;
	if (!srv->opts.frame_timeout_ms)
		srv->opts.frame_timeout_ms = DEFAULT_FRAME_MS;
	if (!srv->opts.idle_timeout_ms)
		srv->opts.idle_timeout_ms = DEFAULT_IDLE_MS;
	srv->store = store;
	memset(&sa, 0, sizeof(sa));
	if ((rc = parse_listen(srv->opts.listen ? srv->opts.listen : "127.0.0.1:7337", &sa)) < 0)
		goto fail_nolooop;
	if ((rc = noise_static_from_ed25519(srv->x_priv, store->sk)) < 0)
		goto fail_nolooop;
	/* a peer that closes while we write must not kill the process */
	signal(SIGPIPE, SIG_IGN);
	if (uv_loop_init(&srv->loop) != 0) {
		rc = samen_error_set(SAMEN_ERROR, "cannot start the event loop");
		goto fail_nolooop;
	}
	uv_tcp_init(&srv->loop, &srv->listener);
	srv->listener.data = srv;
	if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0)) < 0 ||
	    (rc = uv_listen((uv_stream_t *)&srv->listener, 511, on_connection)) < 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot listen on %s: %s", srv->opts.listen ? srv->opts.listen : "127.0.0.1:7337",
		                     uv_strerror(rc));
		uv_close((uv_handle_t *)&srv->listener, NULL);
		uv_run(&srv->loop, UV_RUN_DEFAULT);
		uv_loop_close(&srv->loop);
		goto fail_nolooop;
	}
	if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len) == 0)
		srv->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
		                                              : ((struct sockaddr_in *)&bound)->sin_port);
	uv_timer_init(&srv->loop, &srv->timer);
	srv->timer.data = srv;
	uv_async_init(&srv->loop, &srv->stop_async, on_stop);
	srv->stop_async.data = srv;
	*out = srv;
	return 0;
fail_nolooop:
	sodium_memzero(srv->x_priv, sizeof(srv->x_priv));
	free(srv->frame);
	free(srv);
	return rc;
}

int samen_server_port(const samen_server *srv)
{
	return srv->port;
}

int samen_server_run(samen_server *srv, int handle_signals)
{
	unsigned tick = srv->opts.frame_timeout_ms / 4;
	if (tick < 20)
		tick = 20;
	if (tick > 500)
		tick = 500;
	uv_timer_start(&srv->timer, on_tick, tick, tick);
	if (handle_signals) {
		srv->signals = true;
		uv_signal_init(&srv->loop, &srv->sigint);
		uv_signal_init(&srv->loop, &srv->sigterm);
		srv->sigint.data = srv->sigterm.data = srv;
		uv_signal_start(&srv->sigint, on_signal, SIGINT);
		uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
	}
	if (srv->opts.on_listen)
		srv->opts.on_listen(srv->port, srv->opts.payload);
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	return 0;
}

void samen_server_stop(samen_server *srv)
{
	uv_async_send(&srv->stop_async);
}

void samen_server_free(samen_server *srv)
{
	if (!srv)
		return;
	begin_stop(srv);
	uv_run(&srv->loop, UV_RUN_DEFAULT);
	uv_loop_close(&srv->loop);
	while (srv->plans) {
		server_plan *sp = srv->plans;
		srv->plans = sp->next;
		samen_plan_free(sp->plan);
		free(sp);
	}
	sodium_memzero(srv->x_priv, sizeof(srv->x_priv));
	free(srv->frame);
	free(srv);
}
