/*
 * test_text.c - wrapping for the terminal (cli/text.c): by display width,
 * never through a character, never a control character, whatever bytes
 * come in.
 */
#include "testutil.h"

#include "cli/text.c"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* put_wrapped() into a string (malloc'ed). */
static char *wrapped(int width, int indent, const char *prefix, const char *text, int hang)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	put_wrapped(f, width, indent, prefix, text, hang);
	fclose(f);
	return buf;
}

/* Every line of s is at most width columns wide. */
static void assert_lines_fit(const char *s, int width)
{
	const char *p = s;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *one = strndup(p, n);
		assert_non_null(one);
		if (text_width(one) > (size_t)width)
			fail_msg("line wider than %d: '%s'", width, one);
		free(one);
		p += n + (nl != NULL);
	}
}

static void assert_no_controls(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 && *p != '\n')
			fail_msg("control byte 0x%02x in output", *p);
		if (*p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			fail_msg("DEL or C1 control in output");
	}
}

static void test_words_wrap_at_the_width_with_a_hanging_indent(void **state)
{
	char *s = wrapped(20, 2, "Wens: ", "een twee drie vier vijf zes zeven", 4);
	(void)state;
	assert_string_equal(s, "  Wens: een twee\n    drie vier vijf\n    zes zeven\n");
	free(s);
}

static void test_accented_letters_count_as_one_column(void **state)
{
	/* 10 letters of 2 bytes each fit 10 columns */
	char *s = wrapped(10, 0, NULL, "ëëëëëëëëëë ë", 0);
	(void)state;
	assert_string_equal(s, "ëëëëëëëëëë\në\n");
	assert_int_equal(text_width("Chloë"), 5);
	free(s);
}

static void test_wide_characters_count_as_two_columns(void **state)
{
	char *s = wrapped(10, 0, NULL, "日本語日本語", 0);
	(void)state;
	assert_string_equal(s, "日本語日本\n語\n");
	free(s);
}

static void test_a_long_word_breaks_between_characters_not_bytes(void **state)
{
	char *s = wrapped(8, 0, NULL, "ééééééééééé", 2);
	(void)state;
	assert_string_equal(s, "éééééééé\n  ééé\n");
	free(s);
}

static void test_new_lines_start_lines_and_controls_become_spaces(void **state)
{
	char *s = wrapped(40, 2, "- ", "een\ntwee\tdrie\x1b[31mrood\x7f\xc2\x85x", 4);
	(void)state;
	assert_string_equal(s, "  - een\n    twee drie [31mrood x\n");
	free(s);
}

static void test_bidi_overrides_are_dropped_and_bad_utf8_is_replaced(void **state)
{
	char *s = wrapped(40, 0, NULL, "a\xe2\x80\xae" "b \xff\xc3 c\xed\xa0\x80", 0);
	(void)state;
	assert_string_equal(s, "ab \xef\xbf\xbd\xef\xbf\xbd c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\n");
	free(s);
}

static void test_no_break_space_keeps_a_fact_together(void **state)
{
	char *s = wrapped(20, 0, NULL, "aaaa bbbb status\xc2\xa0in\xc2\xa0progress", 0);
	(void)state;
	assert_string_equal(s, "aaaa bbbb\nstatus in progress\n");
	free(s);
}

/* Random bytes: output always fits, has no control characters, and is
 * valid UTF-8 as far as put_wrapped writes it. */
static void test_random_bytes_never_overflow_or_leak_controls(void **state)
{
	rng r = {0x5eed1234abcdull};
	(void)state;
	for (int round = 0; round < 2000; round++) {
		char text[200];
		size_t n = below(&r, sizeof(text) - 1);
		int width = 20 + (int)below(&r, 60);
		for (size_t i = 0; i < n; i++) {
			unsigned v = below(&r, 10);
			text[i] = (char)(v < 6 ? 'a' + below(&r, 26) : v < 7 ? (uint32_t)' ' : below(&r, 255) + 1);
		}
		text[n] = '\0';
		char *s = wrapped(width, 2, "- ", text, 4);
		assert_lines_fit(s, width);
		assert_no_controls(s);
		free(s);
	}
}

static void test_strbuf_grows_and_stops_at_its_cap(void **state)
{
	strbuf b = STRBUF_INIT;
	(void)state;
	assert_string_equal(sb_str(&b), "");
	sb_addf(&b, "%s %d", "twee", 2);
	sb_add(&b, "!");
	assert_string_equal(sb_str(&b), "twee 2!");
	sb_clear(&b);
	for (int i = 0; i < 2000 && !b.failed; i++)
		sb_addf(&b, "%01000d", 0);
	assert_true(b.failed);
	assert_true(b.len < STRBUF_MAX);
	sb_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_words_wrap_at_the_width_with_a_hanging_indent),
		cmocka_unit_test(test_accented_letters_count_as_one_column),
		cmocka_unit_test(test_wide_characters_count_as_two_columns),
		cmocka_unit_test(test_a_long_word_breaks_between_characters_not_bytes),
		cmocka_unit_test(test_new_lines_start_lines_and_controls_become_spaces),
		cmocka_unit_test(test_bidi_overrides_are_dropped_and_bad_utf8_is_replaced),
		cmocka_unit_test(test_no_break_space_keeps_a_fact_together),
		cmocka_unit_test(test_random_bytes_never_overflow_or_leak_controls),
		cmocka_unit_test(test_strbuf_grows_and_stops_at_its_cap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
