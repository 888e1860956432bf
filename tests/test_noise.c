/* test_noise.c - Noise_XX_25519_ChaChaPoly_BLAKE2b against published test
 * vectors (tests/data/README.md), byte for byte, as initiator and as
 * responder; and the failures a hostile peer can cause. */
#include "testutil.h"
#include "sync/noise.h"
#include "samen/common.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MSGS 16

typedef struct {
	uint8_t init_prologue[256], resp_prologue[256];
	size_t init_prologue_len, resp_prologue_len;
	uint8_t init_static[32], init_ephemeral[32], resp_static[32], resp_ephemeral[32];
	uint8_t hash[64];
	bool has_hash;
	struct {
		uint8_t payload[1024], ciphertext[1100];
		size_t payload_len, ciphertext_len;
	} msg[MAX_MSGS];
	size_t nmsg;
	char name[64];
} vector;

/* Next "quoted" string at or after *p, copied into out; NULL at the end. */
static const char *next_string(const char *p, char *out, size_t cap)
{
	const char *q, *e;
	if (!(q = strchr(p, '"')) || !(e = strchr(q + 1, '"')) || (size_t)(e - q - 1) >= cap)
		return NULL;
	memcpy(out, q + 1, (size_t)(e - q - 1));
	out[e - q - 1] = '\0';
	return e + 1;
}

static void hex(uint8_t *out, size_t cap, size_t *len, const char *h)
{
	size_t n = 0;
	assert_int_equal(sodium_hex2bin(out, cap, h, strlen(h), NULL, &n, NULL), 0);
	if (len)
		*len = n;
}

/* The vector files are the published JSON objects; each holds the keys
 * below once per vector, and messages as payload/ciphertext pairs. */
static void load_vector(vector *v, const char *file)
{
	char path[1024], key[64], *val = malloc(4096);
	size_t len;
	uint8_t *text;
	const char *p;
	snprintf(path, sizeof(path), "%s/%s", SAMEN_TEST_DATA, file);
	text = tu_read_file(path, &len);
	assert_non_null(text);
	assert_non_null(val);
	text[len] = '\0';
	memset(v, 0, sizeof(*v));
	p = (const char *)text;
	while ((p = next_string(p, key, sizeof(key)))) {
		const char *after = p;
		while (*after == ' ' || *after == ':')
			after++;
		if (*after != '"')
			continue; /* a key whose value is not a string */
		assert_non_null(p = next_string(p, val, 4096));
		if (strcmp(key, "name") == 0)
			snprintf(v->name, sizeof(v->name), "%s", val);
		else if (strcmp(key, "init_prologue") == 0)
			hex(v->init_prologue, sizeof(v->init_prologue), &v->init_prologue_len, val);
		else if (strcmp(key, "resp_prologue") == 0)
			hex(v->resp_prologue, sizeof(v->resp_prologue), &v->resp_prologue_len, val);
		else if (strcmp(key, "init_static") == 0)
			hex(v->init_static, 32, NULL, val);
		else if (strcmp(key, "init_ephemeral") == 0)
			hex(v->init_ephemeral, 32, NULL, val);
		else if (strcmp(key, "resp_static") == 0)
			hex(v->resp_static, 32, NULL, val);
		else if (strcmp(key, "resp_ephemeral") == 0)
			hex(v->resp_ephemeral, 32, NULL, val);
		else if (strcmp(key, "handshake_hash") == 0) {
			hex(v->hash, 64, NULL, val);
			v->has_hash = true;
		} else if (strcmp(key, "payload") == 0) {
			assert_true(v->nmsg < MAX_MSGS);
			hex(v->msg[v->nmsg].payload, sizeof(v->msg[0].payload), &v->msg[v->nmsg].payload_len, val);
		} else if (strcmp(key, "ciphertext") == 0) {
			hex(v->msg[v->nmsg].ciphertext, sizeof(v->msg[0].ciphertext), &v->msg[v->nmsg].ciphertext_len, val);
			v->nmsg++;
		}
	}
	assert_string_equal(v->name, NOISE_PROTOCOL_NAME);
	assert_true(v->nmsg > 3);
	free(val);
	free(text);
}

/* Run the vector between our initiator and our responder: every message
 * each side writes must equal the published bytes, and each side must read
 * the published bytes back to the published payload. */
static void replay(const char *file)
{
	vector v;
	noise_handshake ini, resp;
	noise_cipher isend, irecv, rsend, rrecv;
	uint8_t ihash[64], rhash[64], out[2048], plain[2048];
	size_t n;

	load_vector(&v, file);
	noise_handshake_init(&ini, true, v.init_prologue, v.init_prologue_len, v.init_static, v.init_ephemeral);
	noise_handshake_init(&resp, false, v.resp_prologue, v.resp_prologue_len, v.resp_static, v.resp_ephemeral);
	for (size_t i = 0; i < v.nmsg; i++) {
		bool from_initiator = i % 2 == 0;
		const uint8_t *want = v.msg[i].ciphertext;
		size_t want_len = v.msg[i].ciphertext_len;
		if (i < 3) {
			noise_handshake *w = from_initiator ? &ini : &resp, *r = from_initiator ? &resp : &ini;
			assert_int_equal(noise_write_message(w, v.msg[i].payload, v.msg[i].payload_len, out, sizeof(out), &n), 0);
			assert_int_equal(n, want_len);
			assert_memory_equal(out, want, n);
			/* read the published bytes, not ours */
			assert_int_equal(noise_read_message(r, want, want_len, plain, sizeof(plain), &n), 0);
			assert_int_equal(n, v.msg[i].payload_len);
			assert_memory_equal(plain, v.msg[i].payload, n);
			if (i == 2) {
				assert_true(noise_handshake_done(&ini));
				assert_true(noise_handshake_done(&resp));
				assert_memory_equal(noise_remote_static(&ini), resp.s_pub, 32);
				assert_memory_equal(noise_remote_static(&resp), ini.s_pub, 32);
				assert_int_equal(noise_split(&ini, &isend, &irecv, ihash), 0);
				assert_int_equal(noise_split(&resp, &rsend, &rrecv, rhash), 0);
				assert_memory_equal(ihash, rhash, 64);
				if (v.has_hash)
					assert_memory_equal(ihash, v.hash, 64);
			}
			continue;
		}
		assert_int_equal(noise_encrypt(from_initiator ? &isend : &rsend, v.msg[i].payload, v.msg[i].payload_len, out), 0);
		assert_int_equal(v.msg[i].payload_len + NOISE_TAGLEN, want_len);
		assert_memory_equal(out, want, want_len);
		assert_int_equal(noise_decrypt(from_initiator ? &rrecv : &irecv, want, want_len, plain), 0);
		assert_memory_equal(plain, v.msg[i].payload, v.msg[i].payload_len);
	}
}

static void test_noise_c_vector_replays_byte_for_byte(void **state)
{
	(void)state;
	replay("noise-xx-25519-chachapoly-blake2b.noise-c-basic.json");
}

static void test_cacophony_vector_replays_byte_for_byte(void **state)
{
	(void)state;
	replay("noise-xx-25519-chachapoly-blake2b.cacophony.json");
}

static void handshake_pair(noise_handshake *a, noise_handshake *b, const char *pa, const char *pb)
{
	uint8_t ka[32], kb[32];
	randombytes_buf(ka, 32);
	randombytes_buf(kb, 32);
	noise_handshake_init(a, true, (const uint8_t *)pa, strlen(pa), ka, NULL);
	noise_handshake_init(b, false, (const uint8_t *)pb, strlen(pb), kb, NULL);
}

static void test_different_prologues_fail_the_handshake(void **state)
{
	noise_handshake a, b;
	uint8_t m[256], p[256];
	size_t n, pn;
	(void)state;
	handshake_pair(&a, &b, "samen plan A", "samen plan B");
	assert_int_equal(noise_write_message(&a, NULL, 0, m, sizeof(m), &n), 0);
	assert_int_equal(noise_read_message(&b, m, n, p, sizeof(p), &pn), 0);
	assert_int_equal(noise_write_message(&b, NULL, 0, m, sizeof(m), &n), 0);
	/* the responder's static is encrypted under a hash that includes the prologue */
	assert_int_equal(noise_read_message(&a, m, n, p, sizeof(p), &pn), SAMEN_ESIG);
	/* and a failed handshake stays failed */
	assert_int_equal(noise_write_message(&a, NULL, 0, m, sizeof(m), &n), SAMEN_EINVAL);
}

static void test_tampered_transport_message_is_refused_and_keeps_the_nonce(void **state)
{
	noise_handshake a, b;
	noise_cipher as, ar, bs, br;
	uint8_t m[256], p[256];
	size_t n, pn;
	(void)state;
	handshake_pair(&a, &b, "x", "x");
	for (int i = 0; i < 3; i++) {
		noise_handshake *w = i % 2 ? &b : &a, *r = i % 2 ? &a : &b;
		assert_int_equal(noise_write_message(w, NULL, 0, m, sizeof(m), &n), 0);
		assert_int_equal(noise_read_message(r, m, n, p, sizeof(p), &pn), 0);
	}
	assert_int_equal(noise_split(&a, &as, &ar, NULL), 0);
	assert_int_equal(noise_split(&b, &bs, &br, NULL), 0);
	assert_int_equal(noise_encrypt(&as, (const uint8_t *)"hello", 5, m), 0);
	m[2] ^= 1;
	assert_int_equal(noise_decrypt(&br, m, 5 + NOISE_TAGLEN, p), SAMEN_ESIG);
	m[2] ^= 1;
	assert_int_equal(noise_decrypt(&br, m, 5 + NOISE_TAGLEN, p), 0);
	assert_memory_equal(p, "hello", 5);
	/* a replay of the same message is refused: the nonce moved on */
	assert_int_equal(noise_decrypt(&br, m, 5 + NOISE_TAGLEN, p), SAMEN_ESIG);
	assert_int_equal(noise_decrypt(&br, m, 3, p), SAMEN_EDECODE);
}

static void test_short_or_huge_handshake_messages_are_refused(void **state)
{
	noise_handshake a, b;
	uint8_t m[256], p[256];
	size_t n, pn;
	(void)state;
	handshake_pair(&a, &b, "x", "x");
	assert_int_equal(noise_read_message(&b, m, 31, p, sizeof(p), &pn), SAMEN_EDECODE);
	handshake_pair(&a, &b, "x", "x");
	assert_int_equal(noise_write_message(&a, NULL, 0, m, sizeof(m), &n), 0);
	assert_int_equal(noise_read_message(&b, m, n, p, sizeof(p), &pn), 0);
	assert_int_equal(noise_write_message(&b, NULL, 0, m, sizeof(m), &n), 0);
	assert_int_equal(noise_read_message(&a, m, 40, p, sizeof(p), &pn), SAMEN_EDECODE);
}

static void test_device_key_binds_the_noise_static(void **state)
{
	uint8_t pk[32], sk[64], x[32], xpub[32], other_pk[32], other_sk[64];
	(void)state;
	crypto_sign_keypair(pk, sk);
	crypto_sign_keypair(other_pk, other_sk);
	assert_int_equal(noise_static_from_ed25519(x, sk), 0);
	crypto_scalarmult_base(xpub, x);
	assert_true(noise_static_matches_ed25519(xpub, pk));
	assert_false(noise_static_matches_ed25519(xpub, other_pk));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_noise_c_vector_replays_byte_for_byte),
		cmocka_unit_test(test_cacophony_vector_replays_byte_for_byte),
		cmocka_unit_test(test_different_prologues_fail_the_handshake),
		cmocka_unit_test(test_tampered_transport_message_is_refused_and_keeps_the_nonce),
		cmocka_unit_test(test_short_or_huge_handshake_messages_are_refused),
		cmocka_unit_test(test_device_key_binds_the_noise_static),
	};
	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
