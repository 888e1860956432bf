/*
 * samen/peer.h - the direct, encrypted peer protocol (docs/protocol.md).
 *
 * `samen serve` runs samen_serve(): one libuv loop serving every plan of the
 * store to many peers at once. `samen sync tcp://HOST:PORT` runs
 * samen_peer_sync(): one plan, both directions, only the missing changes.
 * Both ends authenticate with their device keys (Noise XX); a server sends
 * plan data only to members of that plan.
 */
#ifndef SAMEN_PEER_H
#define SAMEN_PEER_H

#include "samen/plan.h"

#define SAMEN_PEER_DEFAULT_PORT 7337

typedef struct samen_server samen_server;

typedef struct {
	unsigned int version;
	const char *listen;           /* "HOST:PORT" with a numeric address; NULL: 127.0.0.1:7337 */
	unsigned int max_connections; /* 0: 256 */
	unsigned int handshake_timeout_ms; /* 0: 10 s for the whole handshake */
	unsigned int frame_timeout_ms;     /* 0: 10 s to finish a frame once it started */
	unsigned int idle_timeout_ms;      /* 0: 60 s without progress either way */
	/* called once the socket listens, with the bound port (PORT 0 picks one) */
	void (*on_listen)(int port, void *payload);
	/* one line per finished or refused connection (NULL: quiet) */
	void (*on_log)(const char *line, void *payload);
	void *payload;
} samen_serve_options;

#define SAMEN_SERVE_OPTIONS_VERSION 1
#define SAMEN_SERVE_OPTIONS_INIT {SAMEN_SERVE_OPTIONS_VERSION, NULL, 0, 0, 0, 0, NULL, NULL, NULL}

/* Bind and listen; *out is freed with samen_server_free(). */
SAMEN_EXTERN int samen_server_new(samen_server **out, samen_store *store, const samen_serve_options *opts);
/* Run the loop until samen_server_stop() (from any thread or a signal
 * handler) or SIGINT/SIGTERM when handle_signals. */
SAMEN_EXTERN int samen_server_run(samen_server *server, int handle_signals);
SAMEN_EXTERN void samen_server_stop(samen_server *server);
SAMEN_EXTERN int samen_server_port(const samen_server *server);
SAMEN_EXTERN void samen_server_free(samen_server *server);

typedef struct {
	char plan[33];
	char peer[65];           /* the server's device key */
	uint64_t received;       /* changes received from the peer */
	uint64_t applied;        /* of those, new here */
	uint64_t sent;           /* changes sent to the peer */
	uint64_t peer_applied;   /* of those, new there (the server's ack) */
	uint64_t ahead, behind;  /* what remains after this sync, as far as known */
	uint64_t forks;          /* devices whose chains differ between the two */
	uint64_t bytes_in, bytes_out; /* on the socket */
	uint64_t pending;        /* received changes still waiting for their deps */
	int cloned;              /* the plan was new in this store */
	char fork_msg[256];      /* the first fork, readable */
} samen_sync_stats;

typedef void (*samen_sync_progress_cb)(const samen_sync_stats *st, uint64_t expect_in, uint64_t expect_out,
                                       void *payload);

typedef struct {
	unsigned int version;
	const char *plan;        /* id, id prefix or client name; a full id for a plan new here */
	unsigned int timeout_ms; /* 0: 30 s per read or write */
	samen_sync_progress_cb progress;
	void *payload;
} samen_sync_options;

#define SAMEN_SYNC_OPTIONS_VERSION 1
#define SAMEN_SYNC_OPTIONS_INIT {SAMEN_SYNC_OPTIONS_VERSION, NULL, 0, NULL, NULL}

/* Sync one plan with the server at url ("tcp://HOST:PORT"). Everything fully
 * received is kept even when the connection drops; the next sync goes on
 * from there. */
SAMEN_EXTERN int samen_peer_sync(samen_store *store, const char *url, const samen_sync_options *opts,
                                 samen_sync_stats *stats);

typedef struct {
	const char *device;      /* peer's device key, 64 hex */
	const char *address;     /* as last seen ("tcp://host:port" or the client's address) */
	int64_t last_sync;       /* unix time of the last sync that finished */
	int64_t last_attempt;    /* unix time of the last attempt */
	int64_t ahead, behind;   /* -1 when unknown */
} samen_peer_info;
typedef int (*samen_peer_cb)(const samen_peer_info *p, void *payload);
/* The peers this plan synced with, from the plan's peers file. */
SAMEN_EXTERN int samen_peer_list(samen_plan *plan, samen_peer_cb cb, void *payload);

#endif
