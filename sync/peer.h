/*
 * peer.h - what the peer protocol's client (peer_client.c) and server
 * (peer_server.c) share: frames, messages, version vectors, and the sync
 * session that decides what to send and takes changes in. Not installed.
 * See docs/protocol.md for the bytes on the wire.
 */
#ifndef SAMEN_SYNC_PEER_H
#define SAMEN_SYNC_PEER_H

#include "sync/internal.h"
#include "sync/noise.h"

#include <zlib.h>

#define PEER_VERSION 2 /* 2: the record stream is compressed */
#define PEER_MAGIC "samenP"
#define PEER_MAGIC_LEN 6
#define PEER_HELLO_LEN (PEER_MAGIC_LEN + 1 + 16)           /* magic, version, plan id */
#define PEER_PROLOGUE_LEN (5 + 1 + 16)                     /* "samen", version, plan id */
#define PEER_MSG1_LEN NOISE_DHLEN                          /* e, empty payload */
#define PEER_MSG2_LEN (2 * NOISE_DHLEN + NOISE_TAGLEN + 32 + NOISE_TAGLEN)
#define PEER_MSG3_LEN (NOISE_DHLEN + NOISE_TAGLEN + 32 + NOISE_TAGLEN)
#define PEER_FRAME_HEADER 4
#define PEER_MAX_FRAME NOISE_MAX_MESSAGE                   /* ciphertext with its tag */
#define PEER_MAX_PLAIN (PEER_MAX_FRAME - NOISE_TAGLEN)
#define PEER_MAX_DEVICES 4096u
#define PEER_VV_ENTRY 72                                   /* key, seq, change id */
#define PEER_VV_PER_MSG ((PEER_MAX_PLAIN - 3 - 1) / PEER_VV_ENTRY)
#define PEER_MAX_ERROR_TEXT 400
/* changes travel in pieces of this size: a frame is only usable once it is
 * whole and authenticated, so smaller pieces mean less lost on a cut */
#define PEER_CHANGES_PIECE 16384
#define PEER_SEND_BATCH 256
/* a sync that applied this many changes checkpoints the replica's WAL */
#define PEER_CHECKPOINT_AFTER 500
/* received changes are applied in chunks, so a dropped line loses little
 * and memory stays bounded */
#define PEER_CHUNK_CHANGES 2000
#define PEER_CHUNK_BYTES (8u << 20)

enum {
	PEER_MSG_VV = 1,       /* flags u8 (1 = last), count u16, count * entry */
	PEER_MSG_CHANGES = 2,  /* a piece of the record stream, compressed (raw DEFLATE, one stream per
	                        * direction, a sync flush ending every piece); each piece inflates to at
	                        * most PEER_CHANGES_PIECE bytes */
	PEER_MSG_DONE = 3,     /* u64 changes sent, u64 forks seen by the sender */
	PEER_MSG_ACK = 4,      /* u64 received, u64 applied, u64 pending */
	PEER_MSG_ERROR = 5     /* code u8, UTF-8 text */
};

enum {
	PEER_ERR_PROTOCOL = 1,
	PEER_ERR_NO_PLAN = 2,
	PEER_ERR_NOT_MEMBER = 3,
	PEER_ERR_BAD_CHANGE = 4,
	PEER_ERR_BUSY = 5,
	PEER_ERR_INTERNAL = 6
};

typedef struct {
	uint8_t key[32];
	uint64_t seq;
	uint8_t id[32];
} peer_vv_entry;

/* "samen" || version || plan id: both ends mix it into the handshake. */
void peer_prologue(uint8_t out[PEER_PROLOGUE_LEN], const uint8_t plan[16]);

void peer_put32(uint8_t *p, uint32_t v);
uint32_t peer_get32(const uint8_t *p);
void peer_put64(uint8_t *p, uint64_t v);
uint64_t peer_get64(const uint8_t *p);

/* Encrypt a message (type, body) into frame: 4-byte length then the
 * ciphertext; frame needs PEER_FRAME_HEADER + 1 + body_len + NOISE_TAGLEN. */
int peer_seal(noise_cipher *send, uint8_t type, const uint8_t *body, size_t body_len, uint8_t *frame,
              size_t *frame_len);
/* Decrypt a frame's payload in place; *type and *body point into it. */
int peer_open(noise_cipher *recv, uint8_t *payload, size_t len, uint8_t *type, uint8_t **body, size_t *body_len);

/* Whether the device key may sync the plan now (plan_device_may_sync:
 * linked to a member who is not revoked). */
int peer_is_member(samen_plan *p, const uint8_t key[32], bool *member);

/* Record the outcome of a sync with a peer in the plan's peers file.
 * ahead/behind < 0: unknown. finished: the sync completed. */
int peer_record(samen_plan *p, const uint8_t peer[32], const char *address, bool finished, int64_t ahead,
                int64_t behind);

typedef struct {
	samen_plan *plan;                /* borrowed */
	/* the peer's version vector, as received */
	peer_vv_entry *peer_vv;
	size_t npeer_vv, cap_peer_vv;
	bool peer_vv_done;
	/* this side's version vector, sent in pieces */
	peer_vv_entry *local_vv;
	size_t nlocal_vv, local_vv_sent;
	bool local_vv_done;
	/* sending: a cursor over the changes table in rowid (causal) order,
	 * from the first change the peer lacks; per device (devno) the seq
	 * above which the peer lacks changes. Memory does not grow with the
	 * history: candidates are read PEER_SEND_BATCH rows at a time. */
	hmap send_above;                 /* devno (8 bytes) -> seq; absent: nothing to send */
	bool send_init;
	int64_t cursor;                  /* last rowid looked at */
	bool cursor_done;
	int64_t send_rows[PEER_SEND_BATCH];
	size_t nsend_rows, next_send_row;
	uint64_t to_send;                /* changes the peer lacks */
	sqlite3_stmt *scan, *read_rec;
	uint8_t *rec;                    /* the record being sent */
	size_t rec_len, rec_pos;
	z_stream zout;                   /* compresses the records sent */
	bool zout_init;
	uint64_t sent;
	uint64_t expect_in;              /* changes the peer has and we lack */
	uint64_t forks;
	char fork_msg[256];
	/* receiving */
	ingest_batch batch;
	bool batch_init;
	size_t batch_bytes;
	uint8_t hdr[4];
	size_t hdr_got;
	uint8_t *body;
	size_t body_len, body_got;
	z_stream zin;                    /* inflates the records received */
	bool zin_init;
	uint64_t received, applied, duplicates, pending, invalid;
} peer_session;

int peer_session_init(peer_session *s, samen_plan *plan);
/* Frees everything; does not apply what was received (peer_session_flush). */
void peer_session_free(peer_session *s);
/* Write the next VV message body into buf (PEER_MAX_PLAIN bytes); *last
 * is set on the final piece. */
int peer_session_vv_message(peer_session *s, uint8_t *buf, size_t *len, bool *last);
/* Take one VV message from the peer; *last when it was the final piece. */
int peer_session_take_vv(peer_session *s, const uint8_t *body, size_t len, bool *last);
/* After the peer's whole VV: what to send, what to expect, forks. */
int peer_session_plan(peer_session *s);
/* Next piece of the record stream (at most cap bytes); *len 0 at the end. */
int peer_session_next_changes(peer_session *s, uint8_t *buf, size_t cap, size_t *len);
/* Take a piece of the peer's record stream; complete records are verified
 * and applied in chunks. A bad record is an error (what came before is
 * kept by peer_session_flush). */
int peer_session_receive(peer_session *s, const uint8_t *data, size_t len);
/* Apply every complete record received so far. */
int peer_session_flush(peer_session *s);
/* No record is half received. */
bool peer_session_between_records(const peer_session *s);

#endif
