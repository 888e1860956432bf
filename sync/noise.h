/*
 * noise.h - Noise_XX_25519_ChaChaPoly_BLAKE2b, exactly as the Noise Protocol
 * Framework (revision 34) defines it, on libsodium's primitives only.
 *
 *   XX:  -> e
 *        <- e, ee, s, es
 *        -> s, se
 *
 * Every state lives in caller-provided structs; nothing is allocated and no
 * size is taken from the peer without a check. A handshake that failed once
 * stays failed (every later call returns SAMEN_EINVAL).
 *
 * Samen derives the X25519 static key from the device's Ed25519 key
 * (noise_static_from_ed25519), and each side sends its Ed25519 public key in
 * its handshake payload; noise_static_matches_ed25519() checks that the
 * remote static the handshake authenticated is that key's conversion, so
 * the Noise identity is the device identity.
 */
#ifndef SAMEN_SYNC_NOISE_H
#define SAMEN_SYNC_NOISE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NOISE_PROTOCOL_NAME "Noise_XX_25519_ChaChaPoly_BLAKE2b"
#define NOISE_HASHLEN 64
#define NOISE_BLOCKLEN 128
#define NOISE_DHLEN 32
#define NOISE_KEYLEN 32
#define NOISE_TAGLEN 16
#define NOISE_MAX_MESSAGE 65535u

typedef struct {
	uint8_t k[NOISE_KEYLEN];
	uint64_t n;
	bool has_key;
} noise_cipher;

typedef struct {
	noise_cipher cs;
	uint8_t ck[NOISE_HASHLEN];
	uint8_t h[NOISE_HASHLEN];
} noise_symmetric;

typedef struct {
	noise_symmetric ss;
	bool initiator;
	bool failed;
	int step;                       /* handshake messages done, 0..3 */
	uint8_t s_priv[NOISE_DHLEN], s_pub[NOISE_DHLEN];
	uint8_t e_priv[NOISE_DHLEN], e_pub[NOISE_DHLEN];
	bool e_fixed;                   /* ephemeral injected (tests) */
	uint8_t rs[NOISE_DHLEN], re[NOISE_DHLEN];
} noise_handshake;

/* Start a handshake. s_priv is this side's X25519 static private key;
 * e_priv, when not NULL, is the ephemeral to use (test vectors only). */
void noise_handshake_init(noise_handshake *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                          const uint8_t s_priv[NOISE_DHLEN], const uint8_t *e_priv);
/* Write this side's next handshake message with payload into out (cap
 * bytes); *out_len receives its size. */
int noise_write_message(noise_handshake *hs, const uint8_t *payload, size_t payload_len, uint8_t *out,
                        size_t cap, size_t *out_len);
/* Read the peer's next handshake message; its payload goes to payload (cap
 * bytes), its size to *payload_len. */
int noise_read_message(noise_handshake *hs, const uint8_t *msg, size_t len, uint8_t *payload, size_t cap,
                       size_t *payload_len);
bool noise_handshake_done(const noise_handshake *hs);
/* After the third message: the two transport ciphers (send, recv for this
 * side) and the handshake hash; wipes the handshake state. */
int noise_split(noise_handshake *hs, noise_cipher *send, noise_cipher *recv, uint8_t hash[NOISE_HASHLEN]);
/* The remote static key, valid once the handshake has read it. */
const uint8_t *noise_remote_static(const noise_handshake *hs);

/* Transport messages: out receives len + NOISE_TAGLEN bytes (encrypt) or
 * len - NOISE_TAGLEN bytes (decrypt). A failed decrypt leaves the nonce. */
int noise_encrypt(noise_cipher *c, const uint8_t *plain, size_t len, uint8_t *out);
int noise_decrypt(noise_cipher *c, const uint8_t *cipher, size_t len, uint8_t *out);

void noise_wipe(void *p, size_t len);

/* HMAC-BLAKE2b (RFC 2104, block 128, output 64) and the Noise HKDF; public
 * for the tests. */
void noise_hmac(uint8_t out[NOISE_HASHLEN], const uint8_t *key, size_t key_len, const uint8_t *data,
                size_t data_len);

/* X25519 static private key of a device from its Ed25519 secret key. */
int noise_static_from_ed25519(uint8_t x_priv[NOISE_DHLEN], const uint8_t ed_sk[64]);
/* Whether x_pub is the X25519 form of the Ed25519 public key ed_pk
 * (constant time). */
bool noise_static_matches_ed25519(const uint8_t x_pub[NOISE_DHLEN], const uint8_t ed_pk[32]);

#endif
