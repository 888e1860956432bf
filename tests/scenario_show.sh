#!/usr/bin/env bash
# scenario_show.sh - Joke's whole samenwerkingsplan (domain.md's first
# sample case), all five modules filled in through the samen binary, then
# `samen show` in Dutch and English and `samen show --json`.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

S="$SCEN_TMP/marieke"
# the day the method's rules look at (overdue actions and meetings)
export SAMEN_TODAY=2026-12-20
sm() { samen --store "$S" "$@"; }
# the id of what an add printed ("Added goal ID (change ...)"); text, not
# --json, to keep python3 starts (and the runtime) down
add() {
	ok sm "$@"
	[[ "$OUT" =~ ^Added\ [a-z]+\ ([0-9a-f]{16})\  ]] || die "no id in: $OUT"
	echo "${BASH_REMATCH[1]}"
}

step "a plan for Joke with all five modules"
ok sm init --name "Marieke (coördinator)"
ok sm plan create --client Joke

# 1. richting
ok sm area set familie wish "Meer betrokken zijn bij de kinderen en weer meetellen in het gezin." \
	situation "Joke voelt zich overbodig; haar man en kinderen regelen alles zonder haar."
ok sm area set partner wish "Een hechtere relatie met Kees."
ok sm area set zingeving wish "Iets betekenen in de maatschappij, bijvoorbeeld als vrijwilliger."
add strength add "Kan goed koken" --area familie --source klant >/dev/null
add strength add "Zorgzaam voor anderen" --source netwerk >/dev/null
add person add Kees --relation partner --contact "06-12345678" >/dev/null
add person add Ans --relation "zus" >/dev/null
add person add "Dr. Visser" --relation psychiater >/dev/null
add person add Marieke --relation "supportmedewerker" >/dev/null
add person add Buurvrouw --relation buurvrouw >/dev/null
add vip add Ans --why "Ans kent Joke het langst en zegt eerlijk wat ze ervan vindt." --area familie >/dev/null
add lifestyle add "Snoept veel 's avonds; beweegt weinig." >/dev/null

# 2. netwerk
add tie add Kees --ring 1 --sector familie --strength sterk --valence positief --support "praktisch, emotioneel" \
	--reciprocity wederkerig >/dev/null
add tie add Ans --ring 1 --sector familie --strength gemiddeld --support advies >/dev/null
ok sm network snapshot --date 2026-09-01 --note begin
add tie add "Dr. Visser" --ring 3 --sector professionals >/dev/null
add tie add Buurvrouw --ring 2 --sector buren --valence negatief --note "Roddelt over het gezin." >/dev/null
ok sm network snapshot --date 2026-11-01 --note "na de eerste steungroep"

# 3. doelen en acties: a hoofddoel, a subdoel, a trajectdoel, and a second hoofddoel
KIDS="$(add goal add "Meer betrokken zijn bij de kinderen" --area familie --term lang --priority 1 --status bezig \
	--target 2027-06-30 --description "Samen eten, huiswerk, uitjes.")"
MEALS="$(add goal add "Drie keer per week samen eten" --parent "$KIDS" --term middellang --priority 2)"
COOK="$(add goal add "Een weekmenu maken" --parent "$MEALS" --term kort --target 2026-12-15)"
FRIENDS="$(add goal add "Vriendinnen weer zien" --area vriendschap --term kort --priority 3)"
# actions added in the "wrong" order: show lists client, then network, then professional
add action add "Medicatie bespreken" --goal "$KIDS" --tier professional --person "Dr. Visser" \
	--reason "Alleen de psychiater kan de medicatie aanpassen." >/dev/null
add action add "Kees kookt op woensdag met Joke" --goal "$MEALS" --tier netwerk --person Kees >/dev/null
add action add "Joke vraagt de kinderen wat ze lekker vinden" --goal "$MEALS" --tier klant --due 2026-12-01 >/dev/null
add action add "Ans helpt met boodschappen" --goal "$KIDS" --tier netwerk --person Ans --status "mee bezig" >/dev/null
add action add "Joke haalt de kinderen van school" --goal "$KIDS" --tier klant --status afgerond >/dev/null
add action add "Oude vriendin bellen" --goal "$FRIENDS" --tier klant >/dev/null
add pdsa add "Weekmenu proberen" --goal "$COOK" --planned "Maandag een menu maken." --done "Een week volgen." \
	--studied "Wat lukte?" --acted "Aanpassen." --start 2026-11-20 --end 2026-11-27 >/dev/null

# 4. steungroep
GROUP="$(add group add "Steungroep Joke" --members "Kees, Ans, Marieke" --coordinator Marieke --rhythm 14 \
	--next 2026-12-10)"
M1="$(add meeting add 2026-11-26 --group "$GROUP" --present "Kees, Ans" --agenda "Kennismaken; doelen." \
	--minutes "Joke vertelde wat ze wil. Kees wil helpen met koken.")"
M0="$(add meeting add 2026-11-12 --group "$GROUP" --present "Kees" --minutes "Eerste bijeenkomst.")"
DEC="$(add decision add "Kees kookt elke woensdag met Joke" --meeting "$M1")"
ok sm action set "Kees kookt op woensdag met Joke" meeting "$M1" decision "$DEC"

# 5. evaluaties: two dated evaluations with progress and scores per life area
E1="$(add evaluation add 2026-10-01 --summary "Start van het traject.")"
E2="$(add evaluation add 2026-12-15 --summary "Joke eet nu twee keer per week mee." --next 2027-02-01)"
add progress add "$KIDS" --evaluation "$E2" --progress goed --note "Kinderen reageren blij." >/dev/null
add progress add "$FRIENDS" --evaluation "$E2" --progress geen >/dev/null
add score add familie --evaluation "$E1" --score 4 >/dev/null
add score add familie --evaluation "$E2" --score 6 >/dev/null
add score add partner --evaluation "$E2" --score 5 >/dev/null
# a long description with accents, to see wrapping by characters, not bytes
ok sm goal set "$FRIENDS" description "Joke wil haar vriendinnen Eefje, Chloë en Noëlle weer zien: één keer per maand \
koffie drinken, en samen naar de markt op zaterdag als het lukt."

# line number of the first line matching ERE $1 in $OUT (0: none)
line_of() { grep -nE -m1 -- "$1" <<<"$OUT" | cut -d: -f1 || true; }
# the lines matching the given EREs come in this order
in_order() {
	local what="$1" prev=0 n
	shift
	for re in "$@"; do
		n="$(line_of "$re")"
		[[ -n "$n" ]] || { expect_match "$OUT" "$re" "$what: present"; }
		n="$(line_of "$re")"
		if ((n <= prev)); then
			printf 'FAIL: %s: /%s/ (line %s) does not come after line %s\n%s\n' "$what" "$re" "$n" "$prev" \
				"$(sed 's/^/    | /' <<<"$OUT")" >&2
			exit 1
		fi
		prev=$n
	done
	passed
}

HAS_NL=1
if [[ ! -f "$(dirname "$SAMEN_BIN")/locale/nl/LC_MESSAGES/samen.mo" ]]; then
	HAS_NL=0
	echo "(built without translations, -DSAMEN_NLS=OFF: Dutch output is not checked)"
fi

if ((HAS_NL)); then
	step "show in Dutch (LANG=nl_NL.UTF-8, though no nl locale may be installed)"
	LC_ALL= LANG=nl_NL.UTF-8 ok sm show
	NL="$OUT"
	in_order "Dutch sections in the method's order" "^Samenwerkingsplan van Joke$" "^1\. Richting$" \
		"^Waardegebieden$" "^Sterke kanten$" "^VIP's" "^Leefstijl$" "^2\. Netwerk$" "^Netwerkkaart$" \
		"^Momentopnamen" "^3\. Doelen en acties$" "^4\. Steungroep$" "^5\. Evaluaties$" "^Aandachtspunten$"
	expect_match "$OUT" "^    Wens: Meer betrokken zijn bij de kinderen" "a life area's wish"
	expect_match "$OUT" "^    Huidige situatie: Joke voelt zich overbodig" "a life area's situation"
	expect_match "$OUT" "^  - Kan goed koken \(familie, bron: klant\)$" "a strength with area and source"
	expect_match "$OUT" "^  - Ans \(zus, waardegebied familie\)$" "a VIP"
	expect_match "$OUT" "^    Waarom: Ans kent Joke het langst" "why the VIP matters"
	expect_match "$OUT" "^  - Snoept veel 's avonds" "lifestyle"
	in_order "ties grouped by ring, then sector" "^  Ring 1$" "^    familie$" "^      - Kees \(partner, sterk, positief" \
		"^  Ring 2$" "^    buren$" "^      - Buurvrouw \(buurvrouw, negatief\)$" "^  Ring 3$" "^    professionals$" \
		"^      - Dr\. Visser \(psychiater\)$"
	expect_match "$OUT" "^        Contact: 06-12345678$" "a person's contact notes with their tie"
	expect_match "$OUT" "^  - Marieke \(supportmedewerker\)$" "a person without a tie"
	in_order "snapshots, newest first" "^  - 2026-11-01: 4 relaties \(na de eerste steungroep\)$" \
		"^  - 2026-09-01: 2 relaties \(begin\)$"
	in_order "the goal tree, nested, with its actions in tier order" \
		"^Hoofddoel 1: Meer betrokken zijn bij de kinderen$" \
		"^  waardegebied familie, termijn lang, prioriteit 1, status bezig,$" "^    streefdatum 2027-06-30$" \
		"^  Samen eten, huiswerk, uitjes\.$" "^  Acties:$" \
		"^    1\. \[klant\] Joke haalt de kinderen van school \(afgerond\)$" \
		"^    2\. \[netwerk\] Ans helpt met boodschappen \(Ans, mee bezig\)$" \
		"^    3\. \[professional\] Medicatie bespreken \(Dr\. Visser, nog te doen\)$" \
		"^       Reden: Alleen de psychiater" \
		"^  Subdoel 1\.1: Drie keer per week samen eten$" \
		"^      1\. \[klant\] Joke vraagt de kinderen" "^      2\. \[netwerk\] Kees kookt op woensdag met Joke" \
		"^    Trajectdoel 1\.1\.1: Een weekmenu maken$" "^      termijn kort, status open, streefdatum 2026-12-15$" \
		"^      Nog geen acties\.$" "^      PDSA-cyclus: Weekmenu proberen \(2026-11-20 - 2026-11-27\)$" \
		"^        Plan: Maandag een menu maken\.$" "^        Bijsturen: Aanpassen\.$" \
		"^Hoofddoel 2: Vriendinnen weer zien$" "^    1\. \[klant\] Oude vriendin bellen \(nog te doen\)$"
	in_order "the support group, its meetings by date, decisions with their actions" "^Steungroep Joke$" \
		"^  Coördinator: Marieke$" "^  Leden: Kees, Ans, Marieke$" "^  Ritme: elke 14 dagen$" \
		"^  Volgende bijeenkomst: 2026-12-10$" "^  Bijeenkomst van 2026-11-12$" "^  Bijeenkomst van 2026-11-26$" \
		"^    Aanwezig: Kees, Ans$" "^    Agenda: Kennismaken; doelen\.$" "^    Verslag: Joke vertelde" \
		"^    Besluiten:$" "^      - Kees kookt elke woensdag met Joke$" \
		"^        -> actie \[netwerk\] Kees kookt op woensdag met Joke"
	in_order "evaluations by date, progress and scores, scores over time" "^Evaluatie van 2026-10-01$" \
		"^  Cijfers per waardegebied:$" "^    - familie: 4$" \
		"^Evaluatie van 2026-12-15$" "^  Samenvatting: Joke eet nu" "^  Voortgang per doel:$" \
		"^    - Meer betrokken zijn bij de kinderen: goed$" "^      Notitie: Kinderen reageren blij\.$" \
		"^    - partner: 5$" "^  Volgende evaluatie: 2027-02-01$" \
		"^Cijfers per waardegebied in de tijd$" "^ +2026-10-01 +2026-12-15$" "^  familie +4 +6$"
	expect_match "$OUT" "^  partner +- +5$" "a missing score shows as -"
	in_order "the rules' warnings at the end, in Dutch" "^Aandachtspunten$" \
		"^  ! steungroep 'Steungroep Joke' is sinds 2026-11-26 niet bijeengekomen" \
		"^  ! actie 'Joke vraagt de kinderen wat ze lekker vinden' moest uiterlijk$" \
		"^    2026-12-01 klaar zijn en is niet afgerond$"
	expect_no_match "$OUT" "Main goal|Direction|Goals and actions|\[client\]|in progress" "nothing English in Dutch"

	LC_ALL=C LANGUAGE=nl ok sm show
	expect_eq "$OUT" "$NL" "LANGUAGE=nl gives Dutch, even in the C locale"
	LC_ALL=nl_NL.UTF-8 LANG=en_US.UTF-8 ok sm show
	expect_eq "$OUT" "$NL" "LC_ALL=nl_NL.UTF-8 gives Dutch"
	LC_ALL= LANG=nl_NL.UTF-8 LANGUAGE=en ok sm show
	expect_match "$OUT" "^1\. Direction$" "LANGUAGE=en wins over LANG=nl_NL.UTF-8"
	LC_ALL= LANG=nl_NL.UTF-8 ok sm status
	expect_match "$OUT" "^plan [0-9a-f]{32} voor Joke$" "status in Dutch: the plan"
	expect_match "$OUT" "^dit apparaat \([0-9a-f]{16}\) is van Marieke \(coördinator\), coördinator$" \
		"status in Dutch: whose device, and the role"
	expect_match "$OUT" "^4 doelen, [0-9]+ wijzigingen \(0 geweigerd\), 0 conflicten$" "status in Dutch: counts"
	expect_match "$OUT" "^  ! doel 'Een weekmenu maken' heeft nog geen actie \(doel [0-9a-f]{8}\)$" \
		"status warnings in Dutch"
fi

step "show in English (LANG=en_US.UTF-8, and C)"
LC_ALL= LANG=en_US.UTF-8 ok sm show
EN="$OUT"
in_order "English sections in the method's order" "^Collaboration plan of Joke$" "^1\. Direction$" "^Life areas$" \
	"^Strengths$" "^VIPs: people who really matter$" "^Lifestyle$" "^2\. Network$" "^Network map$" \
	"^3\. Goals and actions$" "^4\. Support group$" "^5\. Evaluations$" "^Points of attention$"
in_order "the goal tree and tiers in English" "^Main goal 1: Meer betrokken zijn bij de kinderen$" \
	"^  life area familie, term long, priority 1, status in progress,$" "^    target date 2027-06-30$" \
	"^    1\. \[client\] Joke haalt de kinderen van school \(done\)$" \
	"^    2\. \[network\] Ans helpt met boodschappen \(Ans, in progress\)$" \
	"^    3\. \[professional\] Medicatie bespreken \(Dr\. Visser, to do\)$" \
	"^  Subgoal 1\.1: Drie keer per week samen eten$" "^    Step goal 1\.1\.1: Een weekmenu maken$" \
	"^Main goal 2: Vriendinnen weer zien$"
expect_match "$OUT" "^      - Kees \(partner, strong, positive, support: practical, emotional, mutual\)$" \
	"a tie's choices in English"
expect_match "$OUT" "^  Meeting of 2026-11-26$" "a meeting in English"
expect_match "$OUT" "^  ! goal 'Een weekmenu maken' has no action yet$" "warnings in English"
expect_no_match "$OUT" "Richting|Hoofddoel|Doelen en acties|\[klant\]|nog te doen" "nothing Dutch but the plan's own words"
LC_ALL=C ok sm show
expect_eq "$OUT" "$EN" "LC_ALL=C gives the same English"
ok sm status
expect_match "$OUT" "^this device \([0-9a-f]{16}\) belongs to Marieke \(coördinator\), coordinator$" \
	"status in English: whose device, and the role"
ok sm --json status
expect_eq "$(json_py '[j["member"], j["member_name"], j["role"]]' <<<"$OUT")" '[true, "Marieke (coördinator)", "coordinator"]' \
	"status --json: member, name and role"

step "wrapping: by display width, never a control character"
COLUMNS=50 ok sm show
python3 - "$SCEN_TMP/.out" <<'PY' || die "show does not fit 50 columns, or prints control characters"
import sys
raw = open(sys.argv[1], 'rb').read()
text = raw.decode('utf-8')  # strict: the output is valid UTF-8
bad = [c for c in text if (ord(c) < 0x20 and c != '\n') or 0x7f <= ord(c) < 0xa0]
long = [l for l in text.split('\n') if len(l) > 50]
if bad or long:
    print('control characters:', bad, 'long lines:', long, file=sys.stderr)
    sys.exit(1)
PY
passed
expect_match "$OUT" "Chloë en Noëlle" "accented words stay whole"
COLUMNS=100 ok sm show
expect_match "$OUT" "^  life area familie, term long, priority 1, status in progress, target date 2027-06-30$" \
	"COLUMNS=100 gives longer lines"

step "show --json"
json_valid sm --json show
J="$OUT"
expect_eq "$(json_py 'list(j["sections"])' <<<"$J")" '["richting", "netwerk", "doelen", "steungroep", "evaluatie"]' \
	"sections in the method's order"
expect_eq "$(json_py 'j["client"] + " " + j["lang"] + " " + j["sections"]["richting"]["title"]' <<<"$J")" \
	"Joke en Direction" "plan, language and titles"
expect_eq "$(json_py '[a["name"] for a in j["sections"]["richting"]["areas"] if a["wish"]]' <<<"$J")" \
	'["partner", "familie", "zingeving"]' "areas with their wishes"
expect_eq "$(json_py '[(v["person_label"], v["area_label"]) for v in j["sections"]["richting"]["vips"]]' <<<"$J")" \
	'[["Ans", "familie"]]' "VIPs with labels"
expect_eq "$(json_py '[(r["ring"], [(s["sector"], [t["person_label"] for t in s["ties"]]) for s in r["sectors"]]) for r in j["sections"]["netwerk"]["map"]]' <<<"$J")" \
	'[[1, [["familie", ["Ans", "Kees"]]]], [2, [["buren", ["Buurvrouw"]]]], [3, [["professionals", ["Dr. Visser"]]]]]' \
	"the network map by ring and sector"
expect_eq "$(json_py '[s["date"] for s in j["sections"]["netwerk"]["snapshots"]]' <<<"$J")" \
	'["2026-11-01", "2026-09-01"]' "snapshots newest first"
expect_eq "$(json_py '[(g["number"], g["level"], g["title"], [a["tier"] for a in g["actions"]], [(s["number"], s["level"], [a["tier"] for a in s["actions"]], [(t["number"], t["level"], [p["title"] for p in t["pdsa"]]) for t in s["subgoals"]]) for s in g["subgoals"]]) for g in j["sections"]["doelen"]["goals"]]' <<<"$J")" \
	'[["1", "hoofddoel", "Meer betrokken zijn bij de kinderen", ["klant", "netwerk", "professional"], [["1.1", "subdoel", ["klant", "netwerk"], [["1.1.1", "trajectdoel", ["Weekmenu proberen"]]]]]], ["2", "hoofddoel", "Vriendinnen weer zien", ["klant"], []]]' \
	"goals nested with their actions in tier order and PDSA cycles"
expect_eq "$(json_py 'j["sections"]["doelen"]["goals"][0]["id"]' <<<"$J")" "$KIDS" "goals carry their ids"
expect_eq "$(json_py '[(m["date"], [(d["text"], [a["text"] for a in d["actions"]]) for d in m["decisions"]]) for m in j["sections"]["steungroep"]["groups"][0]["meetings"]]' <<<"$J")" \
	'[["2026-11-12", []], ["2026-11-26", [["Kees kookt elke woensdag met Joke", ["Kees kookt op woensdag met Joke"]]]]]' \
	"meetings by date with their decisions and the decisions' actions"
expect_eq "$(json_py 'j["sections"]["steungroep"]["groups"][0]["members_label"]' <<<"$J")" "Kees, Ans, Marieke" \
	"group members by name"
expect_eq "$(json_py '[(e["date"], sorted(p["progress"] for p in e["progress"]), sorted(s["score"] for s in e["scores"])) for e in j["sections"]["evaluatie"]["evaluations"]]' <<<"$J")" \
	'[["2026-10-01", [], [4]], ["2026-12-15", ["geen", "goed"], [5, 6]]]' "evaluations with progress and scores"
expect_eq "$(json_py '[(a["name"], [(s["date"], s["score"]) for s in a["scores"]]) for a in j["sections"]["evaluatie"]["scores_by_area"]]' <<<"$J")" \
	'[["partner", [["2026-12-15", 5]]], ["familie", [["2026-10-01", 4], ["2026-12-15", 6]]]]' "scores per area over time"
expect_eq "$(json_py 'sorted(set(w["code"] for w in j["warnings"]))' <<<"$J")" \
	'["action-overdue", "goal-no-action", "goal-not-evaluated", "group-meeting-overdue", "group-no-next-meeting"]' \
	"the rules' warnings in JSON"
expect_eq "$(json_py '[w["text"] for w in j["warnings"] if w["code"] == "goal-no-action"]' <<<"$J")" \
	"[\"goal 'Een weekmenu maken' has no action yet\"]" "a warning's text"
if ((HAS_NL)); then
	LC_ALL= LANG=nl_NL.UTF-8 json_valid sm --json show
	expect_eq "$(json_py 'j["lang"] + " " + j["sections"]["doelen"]["title"]' <<<"$OUT")" "nl Doelen en acties" \
		"JSON titles in Dutch"
	expect_eq "$(json_py '[w["text"] for w in j["warnings"] if w["code"] == "goal-no-action"]' <<<"$OUT")" \
		"[\"doel 'Een weekmenu maken' heeft nog geen actie\"]" "a warning's text in Dutch"
fi

step "an empty plan says so, section by section"
ok sm plan create --client Karin
LC_ALL= LANG=en_US.UTF-8 ok sm --plan Karin show
for msg in "No strengths yet\." "No VIPs yet\." "No ties on the network map yet\." "No goals yet\." \
	"No support group yet\." "No evaluations yet\."; do
	expect_match "$OUT" "^ *$msg$" "empty: $msg"
done
json_valid sm --plan Karin --json show
expect_eq "$(json_py 'len(j["sections"]["doelen"]["goals"])' <<<"$OUT")" 0 "no goals in JSON"
fails_with 2 "show takes no arguments" -- sm --plan Karin show extra

step "a deep goal tree nests in JSON and numbers in text"
P=""
for t in Opleiding Stage Stageplek Sollicitatie Gesprek; do
	P="$(add --plan Karin goal add "$t" ${P:+--parent "$P"})"
done
add --plan Karin goal add "Eigen woning" >/dev/null
json_valid sm --plan Karin --json show
expect_eq "$(json_py '[(g["number"], g["level"], g["subgoals"][0]["subgoals"][0]["subgoals"][0]["subgoals"][0]["number"] if g["subgoals"] else None) for g in j["sections"]["doelen"]["goals"]]' <<<"$OUT")" \
	'[["1", "hoofddoel", null], ["2", "hoofddoel", "2.1.1.1.1"]]' "five levels nest (goals in order of title here)"
ok sm --plan Karin show
in_order "deeper goals indent and number" "^Main goal 1: Eigen woning$" "^Main goal 2: Opleiding$" \
	"^  Subgoal 2\.1: Stage$" "^    Step goal 2\.1\.1: Stageplek$" "^      Step goal 2\.1\.1\.1: Sollicitatie$" \
	"^        Step goal 2\.1\.1\.1\.1: Gesprek$"

step "a conflict is marked where it stands"
A="$SCEN_TMP/a"
B="$SCEN_TMP/b"
new_device "$A" Anna
new_device "$B" Bram
ok samen --store "$A" plan create --client Sebastiaan
ok samen --store "$A" goal add "Thuis wonen" --term lang
ok samen --store "$A" member add Bram --device "$KEY"
ok samen --store "$A" bundle create "$SCEN_TMP/a.samen"
ok samen --store "$B" bundle import "$SCEN_TMP/a.samen"
ok samen --store "$A" goal set "Thuis wonen" status bezig
ok samen --store "$B" goal set "Thuis wonen" status gestopt
ok samen --store "$B" bundle create "$SCEN_TMP/b.samen"
ok samen --store "$A" bundle import "$SCEN_TMP/b.samen"
ok samen --store "$A" show
expect_match "$OUT" "^Main goal 1: Thuis wonen \[concurrent values: see samen conflicts\]$" "a conflicted goal is marked"
json_valid samen --store "$A" --json show
expect_eq "$(json_py 'j["sections"]["doelen"]["goals"][0]["conflicts"]' <<<"$OUT")" '["status"]' "and named in JSON"

step "po/nl.po translates every message marked in cli/"
if [[ -n "${SAMEN_SRC:-}" ]] && command -v xgettext >/dev/null && command -v msgcmp >/dev/null; then
	ok xgettext --from-code=UTF-8 --keyword=_ --keyword=N_ --keyword=P_:1,2 -o "$SCEN_TMP/samen.pot" \
		"$SAMEN_SRC"/cli/*.c
	ok msgcmp "$SAMEN_SRC/po/nl.po" "$SCEN_TMP/samen.pot"
	ok msgfmt --check --statistics -o /dev/null "$SAMEN_SRC/po/nl.po"
	expect_no_match "$ERR" "untranslated|fuzzy" "no untranslated or fuzzy messages"
else
	echo "(xgettext or msgcmp not found, or SAMEN_SRC not set: skipped)"
fi
