/* json.h - just enough JSON output for --json. */
#ifndef SAMEN_CLI_JSON_H
#define SAMEN_CLI_JSON_H
#include <stdint.h>
#include <stdio.h>

/* Write s as a JSON string (with quotes), escaping control characters. */
void json_str(FILE *f, const char *s);
/* "key": "value" with a leading comma unless first. */
void json_kv_str(FILE *f, int *first, const char *key, const char *value);
void json_kv_int(FILE *f, int *first, const char *key, long long value);
void json_kv_bool(FILE *f, int *first, const char *key, int value);
#endif
