#include "testutil.h"

#include "samen/samen.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *tu_mkdtemp(const char *tag)
{
	const char *base = getenv("TMPDIR");
	char *path = malloc(4096);
	if (!path)
		return NULL;
	snprintf(path, 4096, "%s/samen-%s-XXXXXX", base && *base ? base : "/tmp", tag);
	if (!mkdtemp(path)) {
		free(path);
		return NULL;
	}
	return path;
}

size_t tu_glob_count(const char *pattern)
{
	glob_t g;
	size_t n = 0;
	if (glob(pattern, 0, NULL, &g) == 0)
		n = g.gl_pathc;
	globfree(&g);
	return n;
}

void tu_rmtree(const char *path)
{
	char cmd[4200];
	if (!path || !*path || strcmp(path, "/") == 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "warning: could not remove %s\n", path);
}

uint8_t *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long n;
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf)
			*len = (size_t)n;
	}
	fclose(f);
	return buf;
}

int tu_write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;
	if (!f)
		return -1;
	if (fwrite(buf, 1, len, f) != len)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

void node_init(node *n, const char *name)
{
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	memset(n, 0, sizeof(*n));
	n->dir = tu_mkdtemp("node");
	assert_non_null(n->dir);
	o.path = n->dir;
	o.device_name = name;
	o.create = 1;
	OK(samen_store_open(&n->store, &o));
	snprintf(n->key, sizeof(n->key), "%s", samen_store_device_key(n->store));
}

void node_free(node *n)
{
	samen_plan_free(n->plan);
	samen_store_free(n->store);
	if (n->dir)
		tu_rmtree(n->dir);
	free(n->dir);
	memset(n, 0, sizeof(*n));
}

samen_store *tu_open_store(const char *root, const char *sub, const char *name)
{
	char path[4200];
	samen_store_options o = SAMEN_STORE_OPTIONS_INIT;
	samen_store *s = NULL;
	snprintf(path, sizeof(path), "%s/%s", root, sub);
	o.path = path;
	o.device_name = name;
	o.create = 1;
	if (samen_store_open(&s, &o) != 0)
		fail_msg("cannot open store %s: %s", path, samen_error_last());
	return s;
}

samen_plan *tu_open_plan(samen_store *s, const char *id)
{
	samen_plan *p = NULL;
	if (samen_plan_open(&p, s, id) != 0)
		fail_msg("cannot open plan %s in %s: %s", id ? id : "(only)", samen_store_path(s), samen_error_last());
	return p;
}

int tu_has_plan(samen_store *s, const char *id)
{
	char path[4300];
	struct stat sb;
	snprintf(path, sizeof(path), "%s/plans/%s", samen_store_path(s), id);
	return stat(path, &sb) == 0;
}

void tu_state_hash(samen_store *s, const char *id, char out[65])
{
	samen_plan *p;
	out[0] = '\0';
	if (!tu_has_plan(s, id))
		return;
	p = tu_open_plan(s, id);
	assert_int_equal(samen_plan_state_hash(p, out), 0);
	samen_plan_free(p);
}
