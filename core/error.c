/* error.c - the one piece of mutable state: a thread-local last error. */
#include "samen/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[1024];

const char *samen_error_last(void) { return last_error; }

void samen_error_clear(void) { last_error[0] = '\0'; }

int samen_error_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return code;
}

int samen_error_wrap(int code, const char *fmt, ...)
{
	char prefix[512], old[sizeof(last_error)];
	va_list ap;
	memcpy(old, last_error, sizeof(old));
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	/* prefix is at most 511 and old at most 1023 bytes; cut old so the
	 * sum fits, keeping the start of both */
	if (old[0])
		snprintf(last_error, sizeof(last_error), "%.511s: %.509s", prefix, old);
	else
		snprintf(last_error, sizeof(last_error), "%.511s", prefix);
	return code;
}
