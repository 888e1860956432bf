/*
 * i18n.h - the command line's language: Dutch or English, through gettext.
 *
 * Messages are written in English in the source and marked with _() (or
 * N_() where they stand in a table); po/nl.po holds their Dutch. The
 * method's own words (goal statuses, tiers, sectors ...) are Dutch in the
 * plan itself; enum_text() gives their English for English output.
 */
#ifndef SAMEN_CLI_I18N_H
#define SAMEN_CLI_I18N_H

#include "samen/plan.h"

#include <stddef.h>

#ifdef SAMEN_NLS
#include <libintl.h>
#define _(s) gettext(s)
#define P_(one, many, n) ngettext(one, many, n)
#else
#define _(s) (s)
#define P_(one, many, n) ((n) == 1 ? (one) : (many))
#endif
#define N_(s) (s)

/* Choose the language from the environment and set up the locale and
 * gettext. Call once, first thing in main(). docs/show.md says how the
 * language is chosen. */
void i18n_init(void);
/* 1 when messages are Dutch. */
int i18n_dutch(void);
/* The name of an entity type ("goal") in the output language ("doel"). */
const char *type_text(const char *type);
/* "nl" or "en". */
const char *i18n_lang(void);

/* One of the method's Dutch words (a choice of a field: "bezig", "klant")
 * in the output language; anything else is returned as it is. */
const char *enum_text(const char *dutch);
/* The same for a comma separated set ("praktisch, advies"); writes to buf. */
const char *enum_set_text(const char *dutch, char *buf, size_t cap);

/* One warning of samen_plan_warnings() as one line in the output language,
 * written to buf (truncated to cap): in English the library's message, in
 * Dutch a translation by its code (a code not known here: the message). */
const char *warning_text(const samen_warning *w, char *buf, size_t cap);

#endif
