/*
 * text.h - text for the terminal: UTF-8 aware widths and word wrapping that
 * never lets a control character through, and a small growable string.
 */
#ifndef SAMEN_CLI_TEXT_H
#define SAMEN_CLI_TEXT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

/* The width to wrap at: $COLUMNS, else the terminal's width when output
 * goes to one, else 80; clamped to [40, 160]. */
int term_width(void);
/* Columns that UTF-8 text takes (wide characters two, combining marks none;
 * an invalid byte counts as one replacement character). */
size_t text_width(const char *s);

/* Write s on the current line as put_wrapped() would (control characters
 * as spaces), without wrapping and without a new line. */
void put_text(FILE *f, const char *s);

/* Write prefix at column indent, then text wrapped at width; lines after
 * the first start at column hang. A new line in text starts a new line;
 * tabs and any other control character are spaces; a no-break space
 * (U+00A0) joins words and prints as a space; bidirectional
 * overrides are dropped; invalid UTF-8 prints as U+FFFD. Ends the line.
 * A word longer than a line is broken between characters. */
void put_wrapped(FILE *f, int width, int indent, const char *prefix, const char *text, int hang);

/* A growable string that stops growing at a cap (and then stays as it
 * was): for composing one line of the document. */
typedef struct {
	char *s;          /* NUL terminated; "" until something is added */
	size_t len, cap;
	int failed;       /* out of memory or over the cap */
} strbuf;
#define STRBUF_INIT {NULL, 0, 0, 0}
#define STRBUF_MAX (1u << 20)

void sb_add(strbuf *b, const char *s);
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void sb_addf(strbuf *b, const char *fmt, ...);
/* The text so far ("" when empty). */
const char *sb_str(const strbuf *b);
void sb_clear(strbuf *b);
void sb_free(strbuf *b);

#endif
