/*
 * noise.c - Noise_XX_25519_ChaChaPoly_BLAKE2b (Noise rev 34) on libsodium.
 *
 * Names follow the specification (section 5): CipherState, SymmetricState
 * and HandshakeState become noise_cipher, noise_symmetric and
 * noise_handshake. Invariants:
 *   - a nonce never repeats: n only grows, and 2^64-1 is never used;
 *   - a failed decryption changes nothing but the failed flag;
 *   - secrets are wiped with sodium_memzero when they are dropped.
 */
#include "sync/noise.h"
#include "samen/common.h"

#include <sodium.h>
#include <string.h>

void noise_wipe(void *p, size_t len)
{
	sodium_memzero(p, len);
}

/* --- HASH, HMAC-HASH, HKDF (section 4.3) ------------------------------------ */

void noise_hmac(uint8_t out[NOISE_HASHLEN], const uint8_t *key, size_t key_len, const uint8_t *data,
                size_t data_len)
{
	uint8_t k[NOISE_BLOCKLEN], pad[NOISE_BLOCKLEN], inner[NOISE_HASHLEN];
	crypto_generichash_state st;

	memset(k, 0, sizeof(k));
	if (key_len > NOISE_BLOCKLEN)
		crypto_generichash(k, NOISE_HASHLEN, key, key_len, NULL, 0);
	else
		memcpy(k, key, key_len);
	for (size_t i = 0; i < NOISE_BLOCKLEN; i++)
		pad[i] = k[i] ^ 0x36;
	crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
	crypto_generichash_update(&st, pad, sizeof(pad));
	crypto_generichash_update(&st, data, data_len);
	crypto_generichash_final(&st, inner, sizeof(inner));
	for (size_t i = 0; i < NOISE_BLOCKLEN; i++)
		pad[i] = k[i] ^ 0x5c;
	crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
	crypto_generichash_update(&st, pad, sizeof(pad));
	crypto_generichash_update(&st, inner, sizeof(inner));
	crypto_generichash_final(&st, out, NOISE_HASHLEN);
	sodium_memzero(k, sizeof(k));
	sodium_memzero(pad, sizeof(pad));
	sodium_memzero(inner, sizeof(inner));
	sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, input_key_material, 2): out1, out2 are HASHLEN each. */
static void hkdf2(const uint8_t ck[NOISE_HASHLEN], const uint8_t *ikm, size_t ikm_len, uint8_t out1[NOISE_HASHLEN],
                  uint8_t out2[NOISE_HASHLEN])
{
	uint8_t temp[NOISE_HASHLEN], buf[NOISE_HASHLEN + 1];
	noise_hmac(temp, ck, NOISE_HASHLEN, ikm, ikm_len);
	buf[0] = 0x01;
	noise_hmac(out1, temp, sizeof(temp), buf, 1);
	memcpy(buf, out1, NOISE_HASHLEN);
	buf[NOISE_HASHLEN] = 0x02;
	noise_hmac(out2, temp, sizeof(temp), buf, sizeof(buf));
	sodium_memzero(temp, sizeof(temp));
	sodium_memzero(buf, sizeof(buf));
}

/* --- CipherState (section 5.1) -------------------------------------------------- */

static void cipher_init_key(noise_cipher *c, const uint8_t k[NOISE_KEYLEN])
{
	memcpy(c->k, k, NOISE_KEYLEN);
	c->n = 0;
	c->has_key = true;
}

/* ChaChaPoly: 32 bits of zeros, then the 64-bit nonce little-endian. */
static void nonce_bytes(uint8_t out[12], uint64_t n)
{
	memset(out, 0, 4);
	for (int i = 0; i < 8; i++)
		out[4 + i] = (uint8_t)(n >> (8 * i));
}

static int cipher_encrypt_ad(noise_cipher *c, const uint8_t *ad, size_t ad_len, const uint8_t *plain, size_t len,
                             uint8_t *out, size_t *out_len)
{
	uint8_t nonce[12];
	unsigned long long clen = 0;
	if (!c->has_key) {
		if (len)
			memmove(out, plain, len);
		*out_len = len;
		return 0;
	}
	if (c->n == UINT64_MAX)
		return samen_error_set(SAMEN_ELIMIT, "noise: nonce space exhausted; reconnect");
	nonce_bytes(nonce, c->n);
	crypto_aead_chacha20poly1305_ietf_encrypt(out, &clen, plain, len, ad, ad_len, NULL, nonce, c->k);
	c->n++;
	*out_len = (size_t)clen;
	return 0;
}

static int cipher_decrypt_ad(noise_cipher *c, const uint8_t *ad, size_t ad_len, const uint8_t *cipher, size_t len,
                             uint8_t *out, size_t *out_len)
{
	uint8_t nonce[12];
	unsigned long long plen = 0;
	if (!c->has_key) {
		if (len)
			memmove(out, cipher, len);
		*out_len = len;
		return 0;
	}
	if (c->n == UINT64_MAX)
		return samen_error_set(SAMEN_ELIMIT, "noise: nonce space exhausted; reconnect");
	if (len < NOISE_TAGLEN)
		return samen_error_set(SAMEN_EDECODE, "noise: message shorter than its authentication tag");
	nonce_bytes(nonce, c->n);
	if (crypto_aead_chacha20poly1305_ietf_decrypt(out, &plen, NULL, cipher, len, ad, ad_len, nonce, c->k) != 0)
		return samen_error_set(SAMEN_ESIG, "noise: message failed authentication (tampered, or wrong key)");
	c->n++;
	*out_len = (size_t)plen;
	return 0;
}

int noise_encrypt(noise_cipher *c, const uint8_t *plain, size_t len, uint8_t *out)
{
	size_t n;
	if (!c->has_key)
		return samen_error_set(SAMEN_EINVAL, "noise: transport cipher has no key");
	return cipher_encrypt_ad(c, NULL, 0, plain, len, out, &n);
}

int noise_decrypt(noise_cipher *c, const uint8_t *cipher, size_t len, uint8_t *out)
{
	size_t n;
	if (!c->has_key)
		return samen_error_set(SAMEN_EINVAL, "noise: transport cipher has no key");
	return cipher_decrypt_ad(c, NULL, 0, cipher, len, out, &n);
}

/* --- SymmetricState (section 5.2) ------------------------------------------------ */

static void sym_init(noise_symmetric *ss)
{
	/* the protocol name (33 bytes) is shorter than HASHLEN: pad with zeros */
	memset(ss, 0, sizeof(*ss));
	memcpy(ss->h, NOISE_PROTOCOL_NAME, sizeof(NOISE_PROTOCOL_NAME) - 1);
	memcpy(ss->ck, ss->h, NOISE_HASHLEN);
}

static void sym_mix_hash(noise_symmetric *ss, const uint8_t *data, size_t len)
{
	crypto_generichash_state st;
	crypto_generichash_init(&st, NULL, 0, NOISE_HASHLEN);
	crypto_generichash_update(&st, ss->h, NOISE_HASHLEN);
	crypto_generichash_update(&st, data, len);
	crypto_generichash_final(&st, ss->h, NOISE_HASHLEN);
}

static void sym_mix_key(noise_symmetric *ss, const uint8_t *ikm, size_t len)
{
	uint8_t ck[NOISE_HASHLEN], temp_k[NOISE_HASHLEN];
	hkdf2(ss->ck, ikm, len, ck, temp_k);
	memcpy(ss->ck, ck, NOISE_HASHLEN);
	cipher_init_key(&ss->cs, temp_k); /* truncated to 32 bytes */
	sodium_memzero(ck, sizeof(ck));
	sodium_memzero(temp_k, sizeof(temp_k));
}

static int sym_encrypt_and_hash(noise_symmetric *ss, const uint8_t *plain, size_t len, uint8_t *out,
                                size_t *out_len)
{
	int rc = cipher_encrypt_ad(&ss->cs, ss->h, NOISE_HASHLEN, plain, len, out, out_len);
	if (rc == 0)
		sym_mix_hash(ss, out, *out_len);
	return rc;
}

static int sym_decrypt_and_hash(noise_symmetric *ss, const uint8_t *cipher, size_t len, uint8_t *out,
                                size_t *out_len)
{
	uint8_t h[NOISE_HASHLEN];
	int rc;
	/* the hash mixes the ciphertext, which out may overwrite */
	memcpy(h, ss->h, sizeof(h));
	sym_mix_hash(ss, cipher, len);
	rc = cipher_decrypt_ad(&ss->cs, h, NOISE_HASHLEN, cipher, len, out, out_len);
	if (rc < 0)
		memcpy(ss->h, h, sizeof(h));
	return rc;
}

/* --- HandshakeState (section 5.3), pattern XX ----------------------------------------- */

void noise_handshake_init(noise_handshake *hs, bool initiator, const uint8_t *prologue, size_t prologue_len,
                          const uint8_t s_priv[NOISE_DHLEN], const uint8_t *e_priv)
{
	memset(hs, 0, sizeof(*hs));
	sym_init(&hs->ss);
	sym_mix_hash(&hs->ss, prologue, prologue_len);
	hs->initiator = initiator;
	memcpy(hs->s_priv, s_priv, NOISE_DHLEN);
	crypto_scalarmult_base(hs->s_pub, hs->s_priv);
	if (e_priv) {
		memcpy(hs->e_priv, e_priv, NOISE_DHLEN);
		hs->e_fixed = true;
	}
}

static void make_ephemeral(noise_handshake *hs)
{
	if (!hs->e_fixed)
		randombytes_buf(hs->e_priv, NOISE_DHLEN);
	crypto_scalarmult_base(hs->e_pub, hs->e_priv);
}

/* MixKey(DH(priv, pub)); an all-zero result (a low-order point from the
 * peer) is refused. */
static int mix_dh(noise_handshake *hs, const uint8_t priv[NOISE_DHLEN], const uint8_t pub[NOISE_DHLEN])
{
	uint8_t shared[NOISE_DHLEN];
	if (crypto_scalarmult(shared, priv, pub) != 0) {
		sodium_memzero(shared, sizeof(shared));
		return samen_error_set(SAMEN_ESIG, "noise: peer sent a degenerate key");
	}
	sym_mix_key(&hs->ss, shared, sizeof(shared));
	sodium_memzero(shared, sizeof(shared));
	return 0;
}

/* Message i of XX is written by the initiator when i is even. */
static bool my_turn(const noise_handshake *hs)
{
	return hs->initiator == (hs->step % 2 == 0);
}

int noise_write_message(noise_handshake *hs, const uint8_t *payload, size_t payload_len, uint8_t *out,
                        size_t cap, size_t *out_len)
{
	size_t pos = 0, n = 0, need;
	int rc = 0;

	*out_len = 0;
	if (hs->failed || hs->step >= 3 || !my_turn(hs))
		return samen_error_set(SAMEN_EINVAL, "noise: not this side's turn to write");
	/* message 1 is e and a clear payload; 2 adds an encrypted s and tags;
	 * 3 is an encrypted s and an encrypted payload */
	need = hs->step == 0 ? NOISE_DHLEN + payload_len
	     : hs->step == 1 ? 2 * NOISE_DHLEN + 2 * NOISE_TAGLEN + payload_len
	                     : NOISE_DHLEN + 2 * NOISE_TAGLEN + payload_len;
	if (need > cap || need > NOISE_MAX_MESSAGE)
		return samen_error_set(SAMEN_ELIMIT, "noise: handshake message too large");
	switch (hs->step) {
	case 0: /* -> e */
		make_ephemeral(hs);
		memcpy(out, hs->e_pub, NOISE_DHLEN);
		sym_mix_hash(&hs->ss, hs->e_pub, NOISE_DHLEN);
		pos = NOISE_DHLEN;
		break;
	case 1: /* <- e, ee, s, es */
		make_ephemeral(hs);
		memcpy(out, hs->e_pub, NOISE_DHLEN);
		sym_mix_hash(&hs->ss, hs->e_pub, NOISE_DHLEN);
		pos = NOISE_DHLEN;
		if ((rc = mix_dh(hs, hs->e_priv, hs->re)) < 0)
			break;
		if ((rc = sym_encrypt_and_hash(&hs->ss, hs->s_pub, NOISE_DHLEN, out + pos, &n)) < 0)
			break;
		pos += n;
		rc = mix_dh(hs, hs->s_priv, hs->re);
		break;
	case 2: /* -> s, se */
		if ((rc = sym_encrypt_and_hash(&hs->ss, hs->s_pub, NOISE_DHLEN, out, &n)) < 0)
			break;
		pos = n;
		rc = mix_dh(hs, hs->s_priv, hs->re);
		break;
	}
	if (rc == 0 && (rc = sym_encrypt_and_hash(&hs->ss, payload, payload_len, out + pos, &n)) == 0) {
		*out_len = pos + n;
		hs->step++;
	}
	if (rc < 0)
		hs->failed = true;
	return rc;
}

int noise_read_message(noise_handshake *hs, const uint8_t *msg, size_t len, uint8_t *payload, size_t cap,
                       size_t *payload_len)
{
	size_t pos = 0, n = 0, head;
	uint8_t tmp[NOISE_DHLEN];
	int rc = 0;

	*payload_len = 0;
	if (hs->failed || hs->step >= 3 || my_turn(hs))
		return samen_error_set(SAMEN_EINVAL, "noise: not this side's turn to read");
	/* fixed part of each message, then at least the payload's tag once keyed */
	head = hs->step == 0 ? NOISE_DHLEN : hs->step == 1 ? 2 * NOISE_DHLEN + NOISE_TAGLEN : NOISE_DHLEN + NOISE_TAGLEN;
	if (len < head + (hs->step == 0 ? 0 : NOISE_TAGLEN) || len > NOISE_MAX_MESSAGE) {
		hs->failed = true;
		return samen_error_set(SAMEN_EDECODE, "noise: handshake message %d has a wrong size (%zu bytes)",
		                       hs->step + 1, len);
	}
	if (len - head > cap + (hs->step == 0 ? 0 : NOISE_TAGLEN)) {
		hs->failed = true;
		return samen_error_set(SAMEN_ELIMIT, "noise: handshake payload too large");
	}
	switch (hs->step) {
	case 0: /* -> e */
		memcpy(hs->re, msg, NOISE_DHLEN);
		sym_mix_hash(&hs->ss, hs->re, NOISE_DHLEN);
		pos = NOISE_DHLEN;
		break;
	case 1: /* <- e, ee, s, es */
		memcpy(hs->re, msg, NOISE_DHLEN);
		sym_mix_hash(&hs->ss, hs->re, NOISE_DHLEN);
		pos = NOISE_DHLEN;
		if ((rc = mix_dh(hs, hs->e_priv, hs->re)) < 0)
			break;
		if ((rc = sym_decrypt_and_hash(&hs->ss, msg + pos, NOISE_DHLEN + NOISE_TAGLEN, tmp, &n)) < 0)
			break;
		memcpy(hs->rs, tmp, NOISE_DHLEN);
		pos += NOISE_DHLEN + NOISE_TAGLEN;
		rc = mix_dh(hs, hs->e_priv, hs->rs);
		break;
	case 2: /* -> s, se */
		if ((rc = sym_decrypt_and_hash(&hs->ss, msg, NOISE_DHLEN + NOISE_TAGLEN, tmp, &n)) < 0)
			break;
		memcpy(hs->rs, tmp, NOISE_DHLEN);
		pos = NOISE_DHLEN + NOISE_TAGLEN;
		rc = mix_dh(hs, hs->e_priv, hs->rs);
		break;
	}
	if (rc == 0 && (rc = sym_decrypt_and_hash(&hs->ss, msg + pos, len - pos, payload, &n)) == 0) {
		*payload_len = n;
		hs->step++;
	}
	if (rc < 0)
		hs->failed = true;
	return rc;
}

bool noise_handshake_done(const noise_handshake *hs)
{
	return hs->step == 3 && !hs->failed;
}

const uint8_t *noise_remote_static(const noise_handshake *hs)
{
	return hs->rs;
}

int noise_split(noise_handshake *hs, noise_cipher *send, noise_cipher *recv, uint8_t hash[NOISE_HASHLEN])
{
	uint8_t k1[NOISE_HASHLEN], k2[NOISE_HASHLEN];
	if (!noise_handshake_done(hs))
		return samen_error_set(SAMEN_EINVAL, "noise: handshake not finished");
	hkdf2(hs->ss.ck, NULL, 0, k1, k2);
	/* c1 carries initiator to responder, c2 the other way */
	cipher_init_key(hs->initiator ? send : recv, k1);
	cipher_init_key(hs->initiator ? recv : send, k2);
	if (hash)
		memcpy(hash, hs->ss.h, NOISE_HASHLEN);
	sodium_memzero(k1, sizeof(k1));
	sodium_memzero(k2, sizeof(k2));
	/* keep rs for the caller's identity check, wipe every secret */
	sodium_memzero(&hs->ss, sizeof(hs->ss));
	sodium_memzero(hs->s_priv, sizeof(hs->s_priv));
	sodium_memzero(hs->e_priv, sizeof(hs->e_priv));
	return 0;
}

int noise_static_from_ed25519(uint8_t x_priv[NOISE_DHLEN], const uint8_t ed_sk[64])
{
	if (crypto_sign_ed25519_sk_to_curve25519(x_priv, ed_sk) != 0)
		return samen_error_set(SAMEN_ERROR, "cannot convert the device key for the handshake");
	return 0;
}

bool noise_static_matches_ed25519(const uint8_t x_pub[NOISE_DHLEN], const uint8_t ed_pk[32])
{
	uint8_t conv[NOISE_DHLEN];
	bool ok;
	if (crypto_sign_ed25519_pk_to_curve25519(conv, ed_pk) != 0)
		return false;
	ok = sodium_memcmp(conv, x_pub, NOISE_DHLEN) == 0;
	sodium_memzero(conv, sizeof(conv));
	return ok;
}
