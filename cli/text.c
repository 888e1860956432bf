/* text.c - UTF-8 aware wrapping for the terminal, and strbuf. */
#include "cli/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int term_width(void)
{
	const char *v = getenv("COLUMNS");
	struct winsize ws;
	char *end;
	long n = 0;

	if (v && v[0]) {
		n = strtol(v, &end, 10);
		if (*end)
			n = 0;
	}
	/* shells seldom export COLUMNS: ask the terminal, if output goes to one */
	if (n <= 0 && isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0)
		n = ws.ws_col;
	if (n <= 0)
		return 80;
	return n < 40 ? 40 : n > 160 ? 160 : (int)n;
}

#define REPLACEMENT 0xfffdu

/* Decode one code point of s (not at its end); returns its length in
 * bytes. Overlong forms, surrogates and values past U+10FFFF are invalid:
 * *cp is then U+FFFD and the length 1, so decoding resumes at the next
 * byte. */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v, min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, v = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, v = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, v = c & 0x07, min = 0x10000;
	else
		goto invalid;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80) /* also stops at the NUL */
			goto invalid;
		v = (v << 6) | (s[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		goto invalid;
	*cp = v;
	return n;
invalid:
	*cp = REPLACEMENT;
	return 1;
}

/* C0 and C1 controls and DEL: never printed. */
static int is_control(uint32_t cp) { return cp < 0x20 || (cp >= 0x7f && cp < 0xa0); }

/* Invisible characters that can reorder or hide what a terminal shows
 * (bidirectional embeddings, overrides and isolates, the byte order mark):
 * dropped. */
static int is_dropped(uint32_t cp)
{
	return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfeff;
}

static int cp_width(uint32_t cp)
{
	static const uint32_t zero[][2] = {
		{0x0300, 0x036f}, {0x0483, 0x0489}, {0x0591, 0x05bd}, {0x0610, 0x061a}, {0x064b, 0x065f},
		{0x1ab0, 0x1aff}, {0x1dc0, 0x1dff}, {0x200b, 0x200f}, {0x20d0, 0x20ff}, {0xfe00, 0xfe0f},
		{0xfe20, 0xfe2f},
	};
	static const uint32_t wide[][2] = {
		{0x1100, 0x115f}, {0x2e80, 0x303e}, {0x3041, 0x33ff}, {0x3400, 0x4dbf}, {0x4e00, 0x9fff},
		{0xa000, 0xa4cf}, {0xac00, 0xd7a3}, {0xf900, 0xfaff}, {0xfe30, 0xfe4f}, {0xff00, 0xff60},
		{0xffe0, 0xffe6}, {0x1f300, 0x1f64f}, {0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
	};
	for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
		if (cp >= zero[i][0] && cp <= zero[i][1])
			return 0;
	for (size_t i = 0; i < sizeof(wide) / sizeof(wide[0]); i++)
		if (cp >= wide[i][0] && cp <= wide[i][1])
			return 2;
	return 1;
}

size_t text_width(const char *s)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t w = 0;
	uint32_t cp;
	while (*p) {
		p += utf8_next(p, &cp);
		if (is_control(cp))
			w++; /* printed as a space */
		else if (!is_dropped(cp))
			w += (size_t)cp_width(cp);
	}
	return w;
}

/* A no-break space keeps words together on a line; it prints as a space. */
static void put_cp(FILE *f, const unsigned char *raw, size_t n, uint32_t cp)
{
	if (cp == 0xa0)
		fputc(' ', f);
	else if (cp == REPLACEMENT && n == 1)
		fputs("\xef\xbf\xbd", f);
	else
		fwrite(raw, 1, n, f);
}

/* Returns the columns written. */
static int put_sanitized(FILE *f, const char *s)
{
	const unsigned char *q = (const unsigned char *)(s ? s : "");
	uint32_t cp;
	int col = 0;
	while (*q) {
		size_t n = utf8_next(q, &cp);
		if (is_control(cp))
			fputc(' ', f), col++;
		else if (!is_dropped(cp))
			put_cp(f, q, n, cp), col += cp_width(cp);
		q += n;
	}
	return col;
}

void put_text(FILE *f, const char *s) { put_sanitized(f, s); }

typedef struct {
	FILE *f;
	int width, hang;
	int col;
	int placed;        /* a word (or the prefix) is on this line */
	int pending;       /* columns of indentation not written yet */
} wrapper;

static void new_line(wrapper *w)
{
	fputc('\n', w->f);
	w->col = w->hang;
	w->pending = w->hang;
	w->placed = 0;
}

static void flush_indent(wrapper *w)
{
	for (; w->pending > 0; w->pending--)
		fputc(' ', w->f);
}

/* A word is a run of printable characters [p, end). */
static void put_word(wrapper *w, const unsigned char *p, const unsigned char *end)
{
	size_t ww = 0;
	uint32_t cp;
	for (const unsigned char *q = p; q < end;) {
		q += utf8_next(q, &cp);
		if (!is_dropped(cp))
			ww += (size_t)cp_width(cp);
	}
	if (w->placed && w->col + 1 + (int)ww > w->width)
		new_line(w);
	flush_indent(w);
	if (w->placed) {
		fputc(' ', w->f);
		w->col++;
	}
	while (p < end) {
		size_t n = utf8_next(p, &cp);
		int cw = is_dropped(cp) ? 0 : cp_width(cp);
		if (w->col + cw > w->width && w->col > w->hang) {
			new_line(w);
			flush_indent(w);
		}
		if (!is_dropped(cp))
			put_cp(w->f, p, n, cp);
		w->col += cw;
		p += n;
	}
	w->placed = 1;
}

static int is_space(uint32_t cp) { return cp == ' ' || (cp != '\n' && is_control(cp)); }

void put_wrapped(FILE *f, int width, int indent, const char *prefix, const char *text, int hang)
{
	wrapper w = {f, width, hang, indent, 0, indent};
	const unsigned char *p = (const unsigned char *)(text ? text : "");
	uint32_t cp;

	if (prefix && prefix[0]) {
		flush_indent(&w);
		w.col += put_sanitized(f, prefix);
		/* a prefix that ends in a space separates itself */
		w.placed = prefix[strlen(prefix) - 1] != ' ';
	}
	while (*p) {
		size_t n = utf8_next(p, &cp);
		if (cp == '\n') {
			new_line(&w);
			p += n;
		} else if (is_space(cp)) {
			p += n;
		} else {
			const unsigned char *start = p;
			while (*p) {
				n = utf8_next(p, &cp);
				if (cp == '\n' || is_space(cp))
					break;
				p += n;
			}
			put_word(&w, start, p);
		}
	}
	fputc('\n', f);
}

/* --- strbuf -------------------------------------------------------------------- */

static int sb_reserve(strbuf *b, size_t more)
{
	size_t want, cap;
	char *s;
	if (b->failed)
		return -1;
	if (more > STRBUF_MAX || b->len + more + 1 > STRBUF_MAX) {
		b->failed = 1;
		return -1;
	}
	want = b->len + more + 1;
	if (want <= b->cap)
		return 0;
	for (cap = b->cap ? b->cap : 64; cap < want; cap *= 2)
		;
	if (!(s = realloc(b->s, cap))) {
		b->failed = 1;
		return -1;
	}
	b->s = s;
	b->cap = cap;
	return 0;
}

void sb_add(strbuf *b, const char *s)
{
	size_t n = strlen(s ? s : "");
	if (sb_reserve(b, n) < 0)
		return;
	memcpy(b->s + b->len, s ? s : "", n + 1);
	b->len += n;
}

void sb_addf(strbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || sb_reserve(b, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

const char *sb_str(const strbuf *b) { return b->s ? b->s : ""; }

void sb_clear(strbuf *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->s)
		b->s[0] = '\0';
}

void sb_free(strbuf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}
