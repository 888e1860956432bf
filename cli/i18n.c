/*
 * i18n.c - the command line's language (Dutch or English) and the words
 * that are not plain messages: the method's Dutch choices and warnings.
 */
#include "cli/i18n.h"
#include "samen/schema.h"

#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set once by i18n_init() before any output, only read afterwards. */
static int dutch;

int i18n_dutch(void) { return dutch; }
const char *i18n_lang(void) { return dutch ? "nl" : "en"; }

/* "nl", "nl_NL.UTF-8", "nl_BE@euro" name Dutch; "nld" or "nlx" do not. */
static int names_lang(const char *v, size_t n, const char *lang)
{
	return n >= 2 && strncmp(v, lang, 2) == 0 && (n == 2 || v[2] == '_' || v[2] == '.' || v[2] == '@');
}

static const char *env_set(const char *name)
{
	const char *v = getenv(name);
	return v && v[0] ? v : NULL;
}

/* The first entry of LANGUAGE ("de:nl:en") that Samen speaks decides; when
 * it names neither, the first of LC_ALL, LC_MESSAGES and LANG that is set.
 * Unlike gettext's own rule, LANGUAGE counts in the C locale too: the
 * person asked for Dutch. */
static int wants_dutch(void)
{
	const char *v = env_set("LANGUAGE");
	while (v && *v) {
		size_t n = strcspn(v, ":");
		if (names_lang(v, n, "nl"))
			return 1;
		if (names_lang(v, n, "en"))
			return 0;
		v += n;
		v += *v == ':';
	}
	if (!(v = env_set("LC_ALL")) && !(v = env_set("LC_MESSAGES")))
		v = env_set("LANG");
	return v && names_lang(v, strcspn(v, ":"), "nl");
}

#ifdef SAMEN_NLS
static int has_catalogue(const char *dir)
{
	char path[4096];
	int n = snprintf(path, sizeof(path), "%s/nl/LC_MESSAGES/samen.mo", dir);
	return n > 0 && (size_t)n < sizeof(path) && access(path, R_OK) == 0;
}

/* Where the catalogues are: $SAMEN_LOCALEDIR; else beside an installed
 * samen (BINDIR/../share/locale, wherever `cmake --install --prefix` put
 * it); else the build tree (an uninstalled samen, the tests); else the
 * install prefix chosen at configure time. */
static const char *locale_dir(char *buf, size_t cap)
{
	const char *env = env_set("SAMEN_LOCALEDIR");
	char exe[4096];
	ssize_t n;
	char *slash;

	if (env)
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/'))) {
			*slash = '\0';
			int w = snprintf(buf, cap, "%s/%s", exe, SAMEN_RELATIVE_LOCALEDIR);
			if (w > 0 && (size_t)w < cap && has_catalogue(buf))
				return buf;
		}
	}
	if (has_catalogue(SAMEN_BUILD_LOCALEDIR))
		return SAMEN_BUILD_LOCALEDIR;
	return SAMEN_INSTALL_LOCALEDIR;
}
#endif

void i18n_init(void)
{
	const char *ok;

	dutch = wants_dutch();
	ok = setlocale(LC_ALL, "");
#ifdef SAMEN_NLS
	{
		char dir[4096];
		const char *msgs = ok ? setlocale(LC_MESSAGES, NULL) : NULL;
		/* gettext ignores LANGUAGE in the C locale, and many machines have
		 * no nl_* locale generated (setlocale then fails). C.UTF-8 is built
		 * into glibc, so LANGUAGE=nl works there. LANGUAGE is set either way
		 * so that the choice above is the one gettext makes. */
		if (dutch && (!msgs || strcmp(msgs, "C") == 0 || strcmp(msgs, "POSIX") == 0))
			setlocale(LC_ALL, "C.UTF-8");
		setenv("LANGUAGE", dutch ? "nl" : "en", 1);
		bindtextdomain("samen", locale_dir(dir, sizeof(dir)));
		bind_textdomain_codeset("samen", "UTF-8"); /* plan values are UTF-8 too */
		textdomain("samen");
	}
#else
	(void)ok;
	dutch = 0; /* built without translations */
#endif
}

/* --- the method's words ------------------------------------------------------ */

const char *type_text(const char *type)
{
	const samen_type_info *t = type ? samen_schema_type_named(type) : NULL;
	if (!t)
		return type ? type : "";
	return dutch ? t->name_nl : t->name;
}

/* Every choice of core/schema.c with its English. A Dutch word that two
 * fields share ("bereikt", "klant") means the same in both. */
static const struct {
	const char *nl, *en;
} words[] = {
	{"lang", "long"},           {"middellang", "medium"},       {"kort", "short"},
	{"open", "open"},           {"bezig", "in progress"},      {"bereikt", "achieved"},
	{"bijgesteld", "adjusted"}, {"gestopt", "stopped"},        {"klant", "client"},
	{"netwerk", "network"},     {"werker", "worker"},          {"professional", "professional"},
	{"familie", "family"},      {"vrienden", "friends"},       {"buren", "neighbours"},
	{"werk/school", "work/school"}, {"professionals", "professionals"},
	{"vereniging/kerk", "club/church"},
	{"zwak", "weak"},           {"gemiddeld", "medium"},       {"sterk", "strong"},
	{"positief", "positive"},   {"negatief", "negative"},      {"praktisch", "practical"},
	{"gezelschap", "company"},  {"advies", "advice"},          {"emotioneel", "emotional"},
	{"wederkerig", "mutual"},   {"geeft vooral", "mostly gives"},
	{"ontvangt vooral", "mostly receives"},                    {"geen", "none"},
	{"nog te doen", "to do"},   {"mee bezig", "in progress"},  {"afgerond", "done"},
	{"achteruit", "worse"},     {"enige", "some"},             {"goed", "good"},
	{"actief", "active"},       {"afgesloten", "closed"},
};

const char *enum_text(const char *nl)
{
	if (dutch || !nl)
		return nl;
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(words[i].nl, nl) == 0)
			return words[i].en;
	return nl;
}

const char *enum_set_text(const char *nl, char *buf, size_t cap)
{
	size_t o = 0;
	char one[64];

	if (cap == 0)
		return "";
	buf[0] = '\0';
	while (*nl && o < cap) {
		size_t n = strcspn(nl, ",");
		size_t skip = strspn(nl, " ");
		if (skip > n)
			skip = n;
		snprintf(one, sizeof(one), "%.*s", (int)(n - skip), nl + skip);
		int w = snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", enum_text(one));
		if (w < 0)
			break;
		o += (size_t)w;
		nl += n;
		nl += *nl == ',';
	}
	return buf;
}

/* --- warnings ----------------------------------------------------------------- */

/* Templates per warning code (sync/rules.c): {label} and {detail} stand
 * for the warning's values. They are filled in here, never given to
 * printf, so a catalogue cannot break the output. The English is the
 * library's message; English output prints that message itself, so the
 * two cannot drift apart there. */
static const struct {
	const char *code, *text;
} warning_texts[] = {
	{"action-professional-no-reason",
	 N_("action '{label}' is for a professional but does not say why the client or the network cannot do it")},
	{"goal-reached-open-actions", N_("goal '{label}' is marked bereikt but {detail} of its actions are still open")},
	{"group-meeting-overdue", N_("support group '{label}' has not met since {detail}, longer than its rhythm")},
	{"group-no-next-meeting", N_("support group '{label}' has no next meeting planned")},
	{"goal-no-term", N_("goal '{label}' has no term (lang, middellang or kort)")},
	{"goal-no-action", N_("goal '{label}' has no action yet")},
	{"goal-not-evaluated", N_("goal '{label}' was left out of the latest evaluation ({detail})")},
	{"goal-too-deep",
	 N_("goal '{label}' is at level {detail}; the method's goal tree has three (hoofddoel, subdoel, trajectdoel)")},
	{"action-no-goal", N_("action '{label}' belongs to no goal")},
	{"pdsa-no-subject", N_("PDSA cycle '{label}' is about no goal or action")},
	{"action-overdue", N_("action '{label}' was due on {detail} and is not done")},
};

static void fill_template(const char *tpl, const samen_warning *w, char *buf, size_t cap)
{
	size_t o = 0;
	while (*tpl && o + 1 < cap) {
		const char *val = NULL;
		size_t skip = 0;
		if (strncmp(tpl, "{label}", 7) == 0)
			val = w->label, skip = 7;
		else if (strncmp(tpl, "{detail}", 8) == 0)
			val = w->detail, skip = 8;
		if (skip) {
			for (val = val ? val : ""; *val && o + 1 < cap; val++)
				buf[o++] = *val;
			tpl += skip;
		} else {
			buf[o++] = *tpl++;
		}
	}
	buf[o] = '\0';
}

const char *warning_text(const samen_warning *w, char *buf, size_t cap)
{
	if (cap == 0)
		return "";
	if (!dutch && w->message) {
		snprintf(buf, cap, "%s", w->message);
		return buf;
	}
	for (size_t i = 0; i < sizeof(warning_texts) / sizeof(warning_texts[0]); i++)
		if (w->code && strcmp(w->code, warning_texts[i].code) == 0) {
			fill_template(_(warning_texts[i].text), w, buf, cap);
			return buf;
		}
	snprintf(buf, cap, "%s", w->message ? w->message : (w->code ? w->code : ""));
	return buf;
}
