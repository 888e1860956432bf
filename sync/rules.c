/*
 * rules.c - the method's rules that warn (domain.md): computed from the
 * replica's views, never stored, so every replica warns alike.
 */
#include "sync/internal.h"

int samen_plan_warnings(samen_plan *p, const char *today, samen_warning_cb cb, void *payload)
{
	(void)p;
	(void)today;
	(void)cb;
	(void)payload;
	return 0; /* filled in by the next commit */
}
