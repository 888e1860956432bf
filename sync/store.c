/*
 * store.c - the store directory and this device's identity.
 *
 * The key file is text, so a person can see what it is:
 *   samen-device-key 1
 *   name: <device name>
 *   secret: <128 hex digits: libsodium's Ed25519 secret key (seed || public)>
 * It must be mode 0600 (or stricter); anything else is refused, as is a file
 * that is truncated or whose public half does not match its seed.
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "sync/internal.h"
#include "core/mpread.h"
#include "core/schema.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE "device.key"
#define KEY_MAGIC "samen-device-key 1\n"

char *path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p = malloc(la + lb + 2);
	if (!p)
		return NULL;
	memcpy(p, a, la);
	p[la] = '/';
	memcpy(p + la + 1, b, lb + 1);
	return p;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void remove_tree(const char *path)
{
	nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int mkdir_p(const char *path)
{
	char *p = strdup(path);
	int rc = 0;
	if (!p)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	for (char *s = p + 1; ; s++) {
		if (*s == '/' || *s == '\0') {
			char c = *s;
			*s = '\0';
			if (mkdir(p, 0700) != 0 && errno != EEXIST) {
				rc = samen_error_set(SAMEN_EIO, "cannot create directory %s: %s", p, strerror(errno));
				break;
			}
			*s = c;
			if (!c)
				break;
		}
	}
	free(p);
	return rc;
}

int write_file_atomic(const char *path, const void *buf, size_t len, int mode)
{
	char *tmp = malloc(strlen(path) + 8);
	int fd = -1, rc = 0;
	if (!tmp)
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	sprintf(tmp, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0) {
		rc = samen_error_set(errno == EACCES || errno == EROFS ? SAMEN_EPERM : SAMEN_EIO,
		                     "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	if (write(fd, buf, len) != (ssize_t)len || fsync(fd) != 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot write %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) != 0) {
		rc = samen_error_set(SAMEN_EIO, "cannot rename %s: %s", tmp, strerror(errno));
		goto cleanup;
	}
	{
		/* make the rename durable */
		char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
		if (slash) {
			*slash = '\0';
			int dfd = open(*dir ? dir : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd >= 0) {
				fsync(dfd);
				close(dfd);
			}
		}
		free(dir);
	}
cleanup:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	return rc;
}

int samen_store_default_path(char **out, const char *override)
{
	const char *env;
	*out = NULL;
	if (override && *override)
		*out = strdup(override);
	else if ((env = getenv("SAMEN_HOME")) && *env)
		*out = strdup(env);
	else if ((env = getenv("XDG_DATA_HOME")) && *env)
		*out = path_join(env, "samen");
	else if ((env = getenv("HOME")) && *env) {
		char *share = path_join(env, ".local/share");
		*out = share ? path_join(share, "samen") : NULL;
		free(share);
	} else
		return samen_error_set(SAMEN_EINVAL, "no store directory: set --store, SAMEN_HOME or HOME");
	return *out ? 0 : samen_error_set(SAMEN_ENOMEM, "out of memory");
}

static int load_key(samen_store *s, const char *path)
{
	struct stat st;
	char buf[512], *line, *name = NULL, *secret = NULL, *save = NULL;
	ssize_t n;
	int fd, rc = 0;
	uint8_t pk[32];

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return samen_error_set(errno == ENOENT ? SAMEN_ENOTFOUND : SAMEN_EIO,
		                       "cannot read device key %s: %s%s", path, strerror(errno),
		                       errno == ENOENT ? " (run `samen init` first)" : "");
	if (fstat(fd, &st) != 0 || (st.st_mode & 077) != 0) {
		close(fd);
		return samen_error_set(SAMEN_EPERM,
		                       "device key %s has mode %03o; it must be readable by you only (chmod 600 %s)",
		                       path, (unsigned)(st.st_mode & 0777), path);
	}
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return samen_error_set(SAMEN_EIO, "cannot read device key %s: %s", path, strerror(errno));
	buf[n] = '\0';
	if ((size_t)n < strlen(KEY_MAGIC) || memcmp(buf, KEY_MAGIC, strlen(KEY_MAGIC)) != 0)
		return samen_error_set(SAMEN_ECORRUPT, "%s is not a Samen device key (wrong first line)", path);
	for (line = strtok_r(buf + strlen(KEY_MAGIC), "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "name: ", 6) == 0)
			name = line + 6;
		else if (strncmp(line, "secret: ", 8) == 0)
			secret = line + 8;
	}
	if (!name || !secret || strlen(secret) != 128 ||
	    sodium_hex2bin(s->sk, 64, secret, 128, NULL, NULL, NULL) != 0)
		return samen_error_set(SAMEN_ECORRUPT, "device key %s is truncated or damaged", path);
	if (!mpr_utf8_valid(name, strlen(name)) || strlen(name) == 0 || strlen(name) > 200 ||
	    !schema_text_printable(name, strlen(name), 0))
		return samen_error_set(SAMEN_ECORRUPT, "device key %s: the name is not valid text", path);
	crypto_sign_ed25519_sk_to_pk(pk, s->sk);
	{
		/* the public half stored in sk must be the one its seed gives */
		uint8_t seed[32], pk2[32], sk2[64];
		crypto_sign_ed25519_sk_to_seed(seed, s->sk);
		crypto_sign_seed_keypair(pk2, sk2, seed);
		if (memcmp(pk2, pk, 32) != 0)
			rc = samen_error_set(SAMEN_ECORRUPT, "device key %s is damaged (public key does not match)", path);
		sodium_memzero(seed, sizeof(seed));
		sodium_memzero(sk2, sizeof(sk2));
	}
	memcpy(s->pk, pk, 32);
	sodium_bin2hex(s->keyhex, sizeof(s->keyhex), pk, 32);
	s->name = strdup(name);
	sodium_memzero(buf, sizeof(buf));
	if (!rc && !s->name)
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
	return rc;
}

static int create_key(samen_store *s, const char *path, const char *name)
{
	char hex[129], buf[512];
	int n, rc;
	if (!name || !*name)
		name = getenv("USER") && *getenv("USER") ? getenv("USER") : "samen";
	if (strlen(name) > 200 || !mpr_utf8_valid(name, strlen(name)) || !schema_text_printable(name, strlen(name), 0))
		return samen_error_set(SAMEN_EINVAL, "device name must be one line of at most 200 bytes of UTF-8,"
		                                     " without control characters");
	crypto_sign_keypair(s->pk, s->sk);
	sodium_bin2hex(hex, sizeof(hex), s->sk, 64);
	n = snprintf(buf, sizeof(buf), "%sname: %s\nsecret: %s\n", KEY_MAGIC, name, hex);
	rc = write_file_atomic(path, buf, (size_t)n, 0600);
	sodium_memzero(hex, sizeof(hex));
	sodium_memzero(buf, sizeof(buf));
	if (rc)
		return rc;
	return load_key(s, path);
}

int samen_store_open(samen_store **out, const samen_store_options *opts)
{
	samen_store *s = NULL;
	char *keypath = NULL;
	struct stat st;
	int rc;

	*out = NULL;
	if (sodium_init() < 0)
		return samen_error_set(SAMEN_ERROR, "libsodium failed to initialise");
	if (!(s = calloc(1, sizeof(*s))))
		return samen_error_set(SAMEN_ENOMEM, "out of memory");
	if ((rc = samen_store_default_path(&s->path, opts ? opts->path : NULL)) < 0)
		goto fail;
	if (!(s->plans_dir = path_join(s->path, "plans")) || !(keypath = path_join(s->path, KEY_FILE))) {
		rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
		goto fail;
	}
	if (opts && opts->create) {
		if ((rc = mkdir_p(s->plans_dir)) < 0)
			goto fail;
		if (stat(keypath, &st) != 0)
			rc = create_key(s, keypath, opts->device_name);
		else
			rc = load_key(s, keypath);
	} else {
		if (stat(s->path, &st) != 0) {
			rc = samen_error_set(SAMEN_ENOTFOUND, "no Samen store at %s (run `samen init` first)", s->path);
			goto fail;
		}
		rc = load_key(s, keypath);
	}
	if (rc < 0)
		goto fail;
	free(keypath);
	*out = s;
	return 0;
fail:
	free(keypath);
	samen_store_free(s);
	return rc;
}

void samen_store_free(samen_store *s)
{
	if (!s)
		return;
	sodium_memzero(s->sk, sizeof(s->sk));
	free(s->path);
	free(s->plans_dir);
	free(s->name);
	free(s);
}

const char *samen_store_path(const samen_store *s) { return s->path; }
const char *samen_store_device_name(const samen_store *s) { return s->name; }
const char *samen_store_device_key(const samen_store *s) { return s->keyhex; }

int samen_store_plans(samen_store *s, samen_plan_info **out, size_t *count)
{
	DIR *d = opendir(s->plans_dir);
	struct dirent *de;
	samen_plan_info *list = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	*out = NULL;
	*count = 0;
	if (!d)
		return errno == ENOENT ? 0 : samen_error_set(SAMEN_EIO, "cannot list %s: %s", s->plans_dir, strerror(errno));
	while ((de = readdir(d))) {
		uint8_t id[16];
		samen_plan *p = NULL;
		if (strlen(de->d_name) != 32 || sodium_hex2bin(id, 16, de->d_name, 32, NULL, NULL, NULL) != 0)
			continue;
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 8;
			void *np = realloc(list, nc * sizeof(*list));
			if (!np) {
				rc = samen_error_set(SAMEN_ENOMEM, "out of memory");
				break;
			}
			list = np;
			cap = nc;
		}
		memset(&list[n], 0, sizeof(list[n]));
		memcpy(list[n].id, de->d_name, 33);
		if (plan_open_dir(&p, s, id, false) == 0) {
			sqlite3_stmt *st = NULL;
			snprintf(list[n].client, sizeof(list[n].client), "%s", p->client);
			snprintf(list[n].lang, sizeof(list[n].lang), "%s", samen_plan_lang(p));
			if (sqlite3_prepare_v2(replica_db(p->rep),
			                       "SELECT (SELECT count(*) FROM changes), (SELECT count(*) FROM entities"
			                       " WHERE type = 1 AND deleted IS NULL)", -1, &st, NULL) == SQLITE_OK &&
			    sqlite3_step(st) == SQLITE_ROW) {
				list[n].changes = sqlite3_column_int64(st, 0);
				list[n].goals = sqlite3_column_int64(st, 1);
			}
			sqlite3_finalize(st);
			samen_plan_free(p);
		} else {
			snprintf(list[n].client, sizeof(list[n].client), "(cannot open: %s)", samen_error_last());
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		free(list);
		return rc;
	}
	*out = list;
	*count = n;
	return 0;
}
