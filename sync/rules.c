/*
 * rules.c - the method's rules that warn (domain.md) and its checklists
 * (checklist methodisch werken, checklist plannen en evaluaties), computed
 * from the replica's views. Warnings are never stored: every replica holding
 * the same changes warns alike, and a warning goes away by itself once the
 * plan is put right.
 *
 * Each rule is one query returning (uid, label, detail). The views are the
 * ones replica.c generates per entity type (goals, actions, ...); a
 * reference column holds the target's uid.
 */
#include "sync/internal.h"
#include "core/schema.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct {
	const char *code;
	const char *type;
	const char *message;  /* printf format taking label, detail */
	const char *sql;      /* ?1 = today; rows: uid, label, detail */
} rule;

static const rule rules[] = {
	{"action-professional-no-reason", "action",
	 "action '%s' is for a professional but does not say why the client or the network cannot do it%s",
	 "SELECT id, text, '' FROM actions WHERE tier = 'professional' AND coalesce(reason, '') = ''"},
	{"goal-reached-open-actions", "goal", "goal '%s' is marked bereikt but %s of its actions are still open",
	 "SELECT g.id, g.title, count(*) FROM goals g JOIN actions a ON a.goal = g.id"
	 " WHERE g.status = 'bereikt' AND coalesce(a.status, '') <> 'afgerond' GROUP BY g.id"},
	{"group-meeting-overdue", "group", "support group '%s' has not met since %s, longer than its rhythm",
	 "SELECT g.id, g.name, max(m.date) FROM support_groups g JOIN meetings m ON m.\"group\" = g.id"
	 " GROUP BY g.id HAVING date(max(m.date), '+' || coalesce(g.rhythm, 14) || ' days') < ?1"},
	{"group-no-next-meeting", "group", "support group '%s' has no next meeting planned%s",
	 "SELECT g.id, g.name, '' FROM support_groups g WHERE coalesce(g.next, '') < ?1 AND NOT EXISTS"
	 " (SELECT 1 FROM meetings m WHERE m.\"group\" = g.id AND (m.next >= ?1 OR m.date >= ?1))"},
	{"goal-no-term", "goal", "goal '%s' has no term (lang, middellang or kort)%s",
	 "SELECT id, title, '' FROM goals WHERE term IS NULL AND coalesce(status, '') NOT IN ('bereikt', 'gestopt')"},
	{"goal-no-action", "goal", "goal '%s' has no action yet%s",
	 "SELECT g.id, g.title, '' FROM goals g WHERE coalesce(g.status, '') NOT IN ('bereikt', 'gestopt')"
	 " AND NOT EXISTS (SELECT 1 FROM actions a WHERE a.goal = g.id)"
	 " AND NOT EXISTS (SELECT 1 FROM goals c WHERE c.parent = g.id)"},
	{"goal-not-evaluated", "goal", "goal '%s' was left out of the latest evaluation (%s)",
	 "SELECT g.id, g.title, e.date FROM goals g, (SELECT id, date FROM evaluations ORDER BY date DESC, id"
	 " LIMIT 1) e WHERE coalesce(g.status, '') NOT IN ('gestopt') AND NOT EXISTS"
	 " (SELECT 1 FROM progress p WHERE p.goal = g.id AND p.evaluation = e.id)"},
	{"goal-too-deep", "goal",
	 "goal '%s' is at level %s; the method's goal tree has three (hoofddoel, subdoel, trajectdoel)",
	 "WITH RECURSIVE d(id, depth) AS (SELECT id, 1 FROM goals WHERE parent IS NULL OR parent NOT IN"
	 " (SELECT id FROM goals) UNION ALL SELECT g.id, d.depth + 1 FROM goals g JOIN d ON g.parent = d.id"
	 " WHERE d.depth < 16) SELECT g.id, g.title, d.depth FROM d JOIN goals g ON g.id = d.id WHERE d.depth > 3"},
	{"action-no-goal", "action", "action '%s' belongs to no goal%s",
	 "SELECT id, text, '' FROM actions WHERE goal IS NULL"},
	{"pdsa-no-subject", "pdsa", "PDSA cycle '%s' is about no goal or action%s",
	 "SELECT id, title, '' FROM pdsa_cycles WHERE goal IS NULL AND action IS NULL"},
	{"action-overdue", "action", "action '%s' was due on %s and is not done",
	 "SELECT id, text, due FROM actions WHERE due < ?1 AND coalesce(status, '') <> 'afgerond'"},
};

static void today_utc(char out[11])
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, 11, "%Y-%m-%d", &tm);
}

static int run_rule(samen_plan *p, const rule *r, const char *today, samen_warning_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	char msg[640];
	int rc = 0, step;

	if (sqlite3_prepare_v2(db, r->sql, -1, &s, NULL) != SQLITE_OK)
		return samen_error_set(SAMEN_EIO, "replica: rule %s: %s", r->code, sqlite3_errmsg(db));
	sqlite3_bind_text(s, 1, today, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		samen_warning w;
		const char *label = (const char *)sqlite3_column_text(s, 1);
		const char *detail = (const char *)sqlite3_column_text(s, 2);
		memset(&w, 0, sizeof(w));
		w.code = r->code;
		w.type = r->type;
		w.entity = (const char *)sqlite3_column_text(s, 0);
		w.label = label ? label : "";
		w.detail = detail ? detail : "";
		snprintf(msg, sizeof(msg), r->message, w.label, w.detail);
		w.message = msg;
		if ((rc = cb(&w, payload)) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_DONE && step != SQLITE_ROW)
		rc = samen_error_set(SAMEN_EIO, "replica: rule %s: %s", r->code, sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return rc;
}

int samen_plan_warnings(samen_plan *p, const char *today, samen_warning_cb cb, void *payload)
{
	char now[11];
	int rc = 0;
	if (!today) {
		today_utc(now);
		today = now;
	}
	if (strlen(today) != 10 || today[4] != '-' || today[7] != '-' ||
	    strspn(today, "0123456789-") != 10)
		return samen_error_set(SAMEN_EINVAL, "today must be a date YYYY-MM-DD (got '%.20s')", today);
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]) && rc == 0; i++)
		rc = run_rule(p, &rules[i], today, cb, payload);
	return rc;
}

int samen_score_history(samen_plan *p, const char *area, samen_score_cb cb, void *payload)
{
	sqlite3 *db = replica_db(p->rep);
	sqlite3_stmt *s = NULL;
	replica_entity only;
	int rc = 0, step;

	if (area && (rc = replica_find_entity(p->rep, SAMEN_TYPE_AREA, area, &only)) < 0)
		return rc;
	if (sqlite3_prepare_v2(db, "SELECT a.id, a.name, coalesce(ev.id, ''), coalesce(ev.date, ''),"
	                       " coalesce(sc.score, 0), coalesce(sc.note, '') FROM scores sc"
	                       " JOIN areas a ON a.id = sc.area LEFT JOIN evaluations ev ON ev.id = sc.evaluation"
	                       " WHERE ?1 IS NULL OR a.id = ?1"
	                       " ORDER BY a.rank IS NULL, a.rank, a.name, a.id, ev.date IS NULL, ev.date, sc.id",
	                       -1, &s, NULL) != SQLITE_OK)
		return samen_error_set(SAMEN_EIO, "replica: scores: %s", sqlite3_errmsg(db));
	if (area)
		sqlite3_bind_text(s, 1, only.uid, -1, SQLITE_TRANSIENT);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		samen_score_entry e;
		e.area = (const char *)sqlite3_column_text(s, 0);
		e.area_name = (const char *)sqlite3_column_text(s, 1);
		e.evaluation = (const char *)sqlite3_column_text(s, 2);
		e.date = (const char *)sqlite3_column_text(s, 3);
		e.score = sqlite3_column_int(s, 4);
		e.note = (const char *)sqlite3_column_text(s, 5);
		if (!e.area_name)
			e.area_name = "";
		if ((rc = cb(&e, payload)) != 0)
			break;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = samen_error_set(SAMEN_EIO, "replica: scores: %s", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return rc;
}
