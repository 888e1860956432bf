/*
 * samen/common.h - error codes, the thread-local last error, export macro.
 *
 * Every public function returns 0 on success or a negative SAMEN_E* code.
 * The human-readable detail of the most recent failure on this thread is in
 * samen_error_last(); it names what was wrong ("change 3f2a...: signature
 * does not match device 9c1e...").
 */
#ifndef SAMEN_COMMON_H
#define SAMEN_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(SAMEN_BUILDING) && defined(__GNUC__)
#define SAMEN_EXTERN __attribute__((visibility("default")))
#else
#define SAMEN_EXTERN
#endif

#define SAMEN_VERSION "0.1.0"

enum {
	SAMEN_OK = 0,
	SAMEN_ERROR = -1,     /* generic failure, see samen_error_last() */
	SAMEN_EINVAL = -2,    /* bad argument or bad user input */
	SAMEN_ENOMEM = -3,
	SAMEN_EIO = -4,       /* file system or database failure */
	SAMEN_ENOTFOUND = -5, /* no such plan, goal, device, change ... */
	SAMEN_EAMBIGUOUS = -6,/* a name or prefix matches more than one thing */
	SAMEN_EEXISTS = -7,
	SAMEN_EDECODE = -8,   /* malformed or non-canonical encoding */
	SAMEN_ESIG = -9,      /* bad signature */
	SAMEN_ECORRUPT = -10, /* stored data fails its own checks */
	SAMEN_ECONFLICT = -11,/* a ref would not fast-forward, a chain forks */
	SAMEN_EPERM = -12,    /* key file permissions, read-only store */
	SAMEN_ELIMIT = -13    /* a hard cap was reached */
};

/* Message for the last error on this thread; never NULL ("" if none).
 * Borrowed: valid until the next failing samen_* call on this thread. */
SAMEN_EXTERN const char *samen_error_last(void);

/* Set the thread's last error (printf-style) and return code. */
SAMEN_EXTERN int samen_error_set(int code, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* Prefix the current message: "context: old message". Returns code. */
SAMEN_EXTERN int samen_error_wrap(int code, const char *fmt, ...)
#ifdef __GNUC__
	__attribute__((format(printf, 2, 3)))
#endif
	;

SAMEN_EXTERN void samen_error_clear(void);

#endif
