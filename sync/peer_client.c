/*
 * peer_client.c - `samen sync tcp://HOST:PORT`: one plan with one server,
 * both directions (docs/protocol.md).
 *
 * The client talks in turns, so it uses plain blocking sockets with a poll
 * deadline on every read and write:
 *   hello + Noise 1  ->                    <- Noise 2 (server's device key)
 *   Noise 3 + our version vector ->        <- its vector, changes, DONE
 *   our changes, DONE ->                   <- ACK
 * The host name is the one the user typed; it is the only name resolved.
 * Received changes are applied in chunks as they come, and whatever was
 * fully received is applied when the line drops.
 */
#include "sync/peer.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 30000

typedef struct {
	int fd;
	int timeout_ms;
	noise_cipher send, recv;
	uint8_t *frame;               /* one frame in or out */
	samen_sync_stats *st;
	char where[300];
} client;

static int wait_fd(client *c, short events)
{
	struct pollfd p = {c->fd, events, 0};
	int n;
	do
		n = poll(&p, 1, c->timeout_ms);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		return samen_error_set(SAMEN_EIO, "%s: no answer within %d ms", c->where, c->timeout_ms);
	if (n < 0)
		return samen_error_set(SAMEN_EIO, "%s: %s", c->where, strerror(errno));
	return 0;
}

static int send_all(client *c, const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n;
		int rc;
		if ((rc = wait_fd(c, POLLOUT)) < 0)
			return rc;
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0)
			return samen_error_set(SAMEN_EIO, "%s: connection lost while sending: %s", c->where,
			                       n < 0 ? strerror(errno) : "closed");
		buf += n;
		len -= (size_t)n;
		c->st->bytes_out += (uint64_t)n;
	}
	return 0;
}

static int recv_all(client *c, uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n;
		int rc;
		if ((rc = wait_fd(c, POLLIN)) < 0)
			return rc;
		n = recv(c->fd, buf, len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
			continue;
		if (n <= 0)
			return samen_error_set(SAMEN_EIO, "%s: connection lost%s%s", c->where, n < 0 ? ": " : "",
			                       n < 0 ? strerror(errno) : " (the server closed it)");
		buf += n;
		len -= (size_t)n;
		c->st->bytes_in += (uint64_t)n;
	}
	return 0;
}

/* Read one frame into c->frame; its length (capped) to *len. */
static int read_frame(client *c, size_t max, size_t *len)
{
	uint8_t hdr[4];
	uint32_t n;
	int rc;
	if ((rc = recv_all(c, hdr, 4)) < 0)
		return rc;
	n = peer_get32(hdr);
	if (n == 0 || n > max)
		return samen_error_set(SAMEN_EDECODE, "%s: server sent a frame of %u bytes (at most %zu allowed here)",
		                       c->where, n, max);
	if ((rc = recv_all(c, c->frame, n)) < 0)
		return rc;
	*len = n;
	return 0;
}

static int write_msg(client *c, uint8_t type, const uint8_t *body, size_t len)
{
	size_t flen;
	int rc;
	if ((rc = peer_seal(&c->send, type, body, len, c->frame, &flen)) < 0)
		return rc;
	return send_all(c, c->frame, flen);
}

static int read_msg(client *c, uint8_t *type, uint8_t **body, size_t *len)
{
	size_t flen;
	int rc;
	if ((rc = read_frame(c, PEER_MAX_FRAME, &flen)) < 0)
		return rc;
	if ((rc = peer_open(&c->recv, c->frame, flen, type, body, len)) < 0)
		return samen_error_wrap(rc, "%s", c->where);
	if (*type == PEER_MSG_ERROR) {
		char text[PEER_MAX_ERROR_TEXT + 1];
		size_t n = *len > 1 ? *len - 1 : 0;
		if (n > PEER_MAX_ERROR_TEXT)
			n = PEER_MAX_ERROR_TEXT;
		for (size_t i = 0; i < n; i++)
			text[i] = (*body)[1 + i] >= ' ' && (*body)[1 + i] < 0x7f ? (char)(*body)[1 + i] : '?';
		text[n] = '\0';
		return samen_error_set(*len > 0 && (*body)[0] == PEER_ERR_NOT_MEMBER ? SAMEN_EPERM
		                       : *len > 0 && (*body)[0] == PEER_ERR_NO_PLAN ? SAMEN_ENOTFOUND : SAMEN_ERROR,
		                       "%s refused: %s", c->where, text);
	}
	return 0;
}

static void send_error(client *c, uint8_t code, const char *msg)
{
	uint8_t body[1 + PEER_MAX_ERROR_TEXT];
	size_t n = strlen(msg);
	if (n > PEER_MAX_ERROR_TEXT)
		n = PEER_MAX_ERROR_TEXT;
	body[0] = code;
	memcpy(body + 1, msg, n);
	(void)write_msg(c, PEER_MSG_ERROR, body, 1 + n);
}

/* tcp://HOST:PORT or tcp://[V6]:PORT; host and port into their buffers. */
static int parse_url(const char *url, char *host, size_t hcap, char *port, size_t pcap)
{
	const char *h, *colon;
	size_t hl;
	if (strncmp(url, "tcp://", 6) != 0)
		return samen_error_set(SAMEN_EINVAL, "'%.80s' is not a peer address (expected tcp://HOST:PORT)", url);
	h = url + 6;
	if (*h == '[') {
		const char *rb = strchr(h, ']');
		if (!rb)
			return samen_error_set(SAMEN_EINVAL, "'%.80s': missing ']'", url);
		hl = (size_t)(rb - h - 1);
		h++;
		colon = rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = strrchr(h, ':');
		hl = colon ? (size_t)(colon - h) : strlen(h);
	}
	if (hl == 0 || hl >= hcap)
		return samen_error_set(SAMEN_EINVAL, "'%.80s': bad host", url);
	memcpy(host, h, hl);
	host[hl] = '\0';
	snprintf(port, pcap, "%s", colon ? colon + 1 : "7337");
	if (!*port || strspn(port, "0123456789") != strlen(port) || strlen(port) > 5 || atoi(port) > 65535)
		return samen_error_set(SAMEN_EINVAL, "'%.80s': bad port", url);
	return 0;
}

static int connect_with_timeout(client *c, const char *url)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	int rc, gai;

	if ((rc = parse_url(url, host, sizeof(host), port, sizeof(port))) < 0)
		return rc;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	/* the one name resolved: the one the user typed */
	if ((gai = getaddrinfo(host, port, &hints, &res)) != 0)
		return samen_error_set(SAMEN_EIO, "cannot resolve %s: %s", host, gai_strerror(gai));
	rc = samen_error_set(SAMEN_EIO, "cannot connect to %s", url);
	for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), err = 0;
		socklen_t elen = sizeof(err);
		if (fd < 0)
			continue;
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
		c->fd = fd;
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ||
		    (errno == EINPROGRESS && wait_fd(c, POLLOUT) == 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == 0 &&
		     err == 0)) {
			/* small frames back to back (message 3, then the vector):
			 * Nagle plus delayed ACKs would hold the second for 40 ms */
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			rc = 0;
			break;
		}
		rc = samen_error_set(SAMEN_EIO, "cannot connect to %s: %s", url, strerror(err ? err : errno));
		close(fd);
		c->fd = -1;
	}
	freeaddrinfo(res);
	return rc;
}

static int handshake(client *c, samen_store *store, const uint8_t plan[16], uint8_t server_key[32])
{
	noise_handshake hs;
	uint8_t prologue[PEER_PROLOGUE_LEN], x_priv[32], out[PEER_FRAME_HEADER + PEER_HELLO_LEN + PEER_MSG1_LEN + 128];
	uint8_t pk[32];
	size_t n, plen, flen;
	int rc;

	if ((rc = noise_static_from_ed25519(x_priv, store->sk)) < 0)
		return rc;
	peer_prologue(prologue, plan);
	noise_handshake_init(&hs, true, prologue, sizeof(prologue), x_priv, NULL);
	sodium_memzero(x_priv, sizeof(x_priv));
	memcpy(out + PEER_FRAME_HEADER, PEER_MAGIC, PEER_MAGIC_LEN);
	out[PEER_FRAME_HEADER + PEER_MAGIC_LEN] = PEER_VERSION;
	memcpy(out + PEER_FRAME_HEADER + PEER_MAGIC_LEN + 1, plan, 16);
	if ((rc = noise_write_message(&hs, NULL, 0, out + PEER_FRAME_HEADER + PEER_HELLO_LEN, PEER_MSG1_LEN, &n)) < 0)
		goto cleanup;
	peer_put32(out, (uint32_t)(PEER_HELLO_LEN + n));
	if ((rc = send_all(c, out, PEER_FRAME_HEADER + PEER_HELLO_LEN + n)) < 0)
		goto cleanup;
	if ((rc = read_frame(c, PEER_MSG2_LEN, &flen)) < 0)
		goto cleanup;
	if (flen != PEER_MSG2_LEN || (rc = noise_read_message(&hs, c->frame, flen, pk, sizeof(pk), &plen)) < 0 ||
	    plen != 32) {
		rc = samen_error_set(SAMEN_ESIG, "%s: the server's handshake failed (not a Samen peer, or tampered)",
		                     c->where);
		goto cleanup;
	}
	if (!noise_static_matches_ed25519(noise_remote_static(&hs), pk)) {
		rc = samen_error_set(SAMEN_ESIG, "%s: the server's handshake key is not the device key it claims", c->where);
		goto cleanup;
	}
	memcpy(server_key, pk, 32);
	if ((rc = noise_write_message(&hs, store->pk, 32, out + PEER_FRAME_HEADER, PEER_MSG3_LEN, &n)) < 0)
		goto cleanup;
	peer_put32(out, (uint32_t)n);
	if ((rc = send_all(c, out, PEER_FRAME_HEADER + n)) < 0)
		goto cleanup;
	rc = noise_split(&hs, &c->send, &c->recv, NULL);
cleanup:
	sodium_memzero(&hs, sizeof(hs));
	return rc;
}

static void progress(const samen_sync_options *o, peer_session *s, samen_sync_stats *st)
{
	if (!o->progress)
		return;
	st->received = s->received;
	st->sent = s->sent;
	o->progress(st, s->expect_in, s->to_send, o->payload);
}

/* Open the plan opts names; a full id not in this store starts a clone in
 * a staging directory. */
static int open_or_clone(samen_store *store, const char *which, samen_plan **p, bool *cloned)
{
	uint8_t id[16];
	int rc;
	bool full_id = which && strlen(which) == 32 && sodium_hex2bin(id, 16, which, 32, NULL, NULL, NULL) == 0;
	*cloned = false;
	/* a full id opens its directory directly, without opening every plan
	 * of the store to match names */
	rc = full_id ? plan_open_dir(p, store, id, false) : samen_plan_open(p, store, which);
	if (rc != SAMEN_ENOTFOUND || !full_id)
		return rc;
	samen_error_clear();
	*cloned = true;
	return plan_open_staged(p, store, id);
}

static int exchange(client *c, const samen_sync_options *o, peer_session *s, samen_sync_stats *st, bool cloned,
                    const uint8_t server_key[32])
{
	uint8_t type, *body, *buf = NULL;
	size_t len;
	bool last = false, member;
	int rc;

	if (!(buf = malloc(PEER_MAX_PLAIN))) /* bodies are built here, frames in c->frame */
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	/* a plan we hold goes only to its members: not even our vector before */
	if (!cloned) {
		if ((rc = peer_is_member(s->plan, server_key, &member)) < 0)
			goto cleanup;
		if (!member) {
			char key[17];
			sodium_bin2hex(key, sizeof(key), server_key, 8);
			send_error(c, PEER_ERR_NOT_MEMBER, "the server's device is not a member of this plan");
			rc = samen_error_set(SAMEN_EPERM, "%s: the server's device %s is not a member of plan %s; nothing"
			                     " was exchanged", c->where, key, s->plan->idhex);
			goto cleanup;
		}
	}
	do {
		if ((rc = peer_session_vv_message(s, buf, &len, &last)) < 0 ||
		    (rc = write_msg(c, PEER_MSG_VV, buf, len)) < 0)
			goto cleanup;
	} while (!last);
	/* the server's vector */
	do {
		if ((rc = read_msg(c, &type, &body, &len)) < 0)
			goto cleanup;
		if (type != PEER_MSG_VV || (rc = peer_session_take_vv(s, body, len, &last)) < 0) {
			rc = samen_error_set(SAMEN_EDECODE, "%s: expected the server's version vector", c->where);
			goto cleanup;
		}
	} while (!last);
	if ((rc = peer_session_plan(s)) < 0)
		goto cleanup;
	progress(o, s, st);
	/* the server's changes, until DONE */
	for (;;) {
		if ((rc = read_msg(c, &type, &body, &len)) < 0)
			goto cleanup;
		if (type == PEER_MSG_CHANGES) {
			if ((rc = peer_session_receive(s, body, len)) < 0) {
				send_error(c, PEER_ERR_BAD_CHANGE, samen_error_last());
				goto cleanup;
			}
			progress(o, s, st);
			continue;
		}
		if (type == PEER_MSG_DONE && len == 16 && peer_session_between_records(s)) {
			/* the server's count of the same comparison, from its side */
			st->forks = peer_get64(body + 8);
			break;
		}
		rc = samen_error_set(SAMEN_EDECODE, "%s: unexpected message %u from the server", c->where, type);
		goto cleanup;
	}
	if ((rc = peer_session_flush(s)) < 0)
		goto cleanup;
	/* ours, then DONE */
	for (;;) {
		if ((rc = peer_session_next_changes(s, buf, PEER_CHANGES_PIECE, &len)) < 0)
			goto cleanup;
		if (len == 0)
			break;
		if ((rc = write_msg(c, PEER_MSG_CHANGES, buf, len)) < 0)
			goto cleanup;
		progress(o, s, st);
	}
	peer_put64(buf, s->sent);
	peer_put64(buf + 8, s->forks);
	if ((rc = write_msg(c, PEER_MSG_DONE, buf, 16)) < 0)
		goto cleanup;
	if ((rc = read_msg(c, &type, &body, &len)) < 0)
		goto cleanup;
	if (type != PEER_MSG_ACK || len != 24) {
		rc = samen_error_set(SAMEN_EDECODE, "%s: expected the server's acknowledgement", c->where);
		goto cleanup;
	}
	st->peer_applied = peer_get64(body + 8);
	rc = 0;
cleanup:
	free(buf);
	return rc;
}

int samen_peer_sync(samen_store *store, const char *url, const samen_sync_options *opts, samen_sync_stats *st)
{
	samen_sync_options o = SAMEN_SYNC_OPTIONS_INIT;
	client c;
	samen_plan *p = NULL;
	peer_session s;
	bool sess = false, cloned = false, handshaken = false;
	uint8_t server_key[32];
	int rc, frc;

	if (opts)
		o = *opts;
	memset(st, 0, sizeof(*st));
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.st = st;
	c.timeout_ms = o.timeout_ms ? (int)o.timeout_ms : DEFAULT_TIMEOUT_MS;
	snprintf(c.where, sizeof(c.where), "peer %.200s", url);
	if (!(c.frame = malloc(PEER_FRAME_HEADER + PEER_MAX_FRAME)))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if ((rc = open_or_clone(store, o.plan, &p, &cloned)) < 0)
		goto cleanup;
	st->cloned = cloned;
	snprintf(st->plan, sizeof(st->plan), "%s", p->idhex);
	if ((rc = connect_with_timeout(&c, url)) < 0)
		goto cleanup;
	if ((rc = handshake(&c, store, p->id, server_key)) < 0)
		goto cleanup;
	handshaken = true;
	sodium_bin2hex(st->peer, sizeof(st->peer), server_key, 32);
	if ((rc = peer_session_init(&s, p)) < 0)
		goto cleanup;
	sess = true;
	rc = exchange(&c, &o, &s, st, cloned, server_key);
cleanup:
	if (sess) {
		/* keep every change fully received, also when the line dropped */
		char saved[1024];
		snprintf(saved, sizeof(saved), "%s", samen_error_last());
		frc = peer_session_flush(&s);
		if (frc < 0 && rc == 0)
			rc = frc;
		else if (rc < 0)
			samen_error_set(rc, "%s", saved);
		st->received = s.received;
		st->applied = s.applied;
		st->sent = s.sent;
		st->pending = s.pending;
		if (s.forks > st->forks)
			st->forks = s.forks;
		snprintf(st->fork_msg, sizeof(st->fork_msg), "%s", s.fork_msg);
		st->behind = s.expect_in > s.received ? s.expect_in - s.received : 0;
		/* the last record counted as sent may not have arrived */
		st->ahead = rc == 0 ? 0 : s.to_send - (s.sent ? s.sent - 1 : 0);
		if (handshaken) {
			snprintf(saved, sizeof(saved), "%s", samen_error_last());
			peer_record(p, server_key, url, rc == 0, (int64_t)st->ahead, (int64_t)st->behind);
			if (rc == 0)
				(void)plan_note_sync(p, server_key, (int64_t)time(NULL)); /* for `samen access` */
			if (rc < 0)
				samen_error_set(rc, "%s", saved);
		}
		peer_session_free(&s);
	}
	/* after a clone or a big catch-up, fold the WAL into the database now:
	 * otherwise every later open re-reads the whole WAL */
	if (p && st->applied >= PEER_CHECKPOINT_AFTER)
		(void)replica_checkpoint(p->rep);
	if (c.fd >= 0)
		close(c.fd);
	sodium_memzero(&c.send, sizeof(c.send));
	sodium_memzero(&c.recv, sizeof(c.recv));
	free(c.frame);
	if (p && cloned) {
		if (st->applied == 0 && st->pending == 0) {
			/* a clone that brought nothing leaves nothing behind */
			char *dir = strdup(p->dir);
			samen_plan_free(p);
			p = NULL;
			if (dir)
				remove_tree(dir);
			free(dir);
			st->cloned = 0;
		} else {
			char saved[1024];
			snprintf(saved, sizeof(saved), "%s", samen_error_last());
			frc = plan_publish(&p);
			if (frc < 0 && rc == 0)
				rc = frc;
			else if (rc < 0)
				samen_error_set(rc, "%s", saved);
		}
	}
	samen_plan_free(p);
	return rc;
}
