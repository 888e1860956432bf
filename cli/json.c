#include "cli/json.h"

void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		switch (*p) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void key(FILE *f, int *first, const char *k)
{
	if (!*first)
		fputc(',', f);
	*first = 0;
	json_str(f, k);
	fputc(':', f);
}

void json_kv_str(FILE *f, int *first, const char *k, const char *v)
{
	key(f, first, k);
	if (v)
		json_str(f, v);
	else
		fputs("null", f);
}

void json_kv_int(FILE *f, int *first, const char *k, long long v)
{
	key(f, first, k);
	fprintf(f, "%lld", v);
}

void json_kv_bool(FILE *f, int *first, const char *k, int v)
{
	key(f, first, k);
	fputs(v ? "true" : "false", f);
}
