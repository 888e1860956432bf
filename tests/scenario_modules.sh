#!/usr/bin/env bash
# scenario_modules.sh - the five modules through the real samen binary:
# Karin's plan kept in English by two devices, every module filled in,
# concurrent edits merged, the audit trail, the method's warnings, wrong
# input refused with a clear message; then the README demo (the three
# sample cases in Dutch, on several devices) must run and agree.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

M="$SCEN_TMP/marieke"
K="$SCEN_TMP/karin"
new_device "$M" "Marieke"
new_device "$K" "Karin"
KK="$KEY"
export SAMEN_TODAY=2026-11-25

step "an English plan starts with the ten life areas in English"
ok samen --store "$M" plan create --client Karin --lang en
ok samen --store "$M" area list
for a in partner family work study faith friendship income home finances meaning; do
	expect_match "$OUT" "^[0-9a-f]{8}  $a$" "default area $a"
done
ok samen --store "$M" member add Karin --device "$KK"
ok samen --store "$M" --json plan show
expect_eq "$(json_get title <<<"$OUT")" "Collaboration plan of Karin" "the plan has a title"
expect_eq "$(json_get status <<<"$OUT")" actief "and is active"

step "1. richting: wishes, strengths, VIPs, lifestyle"
ok samen --store "$M" area set study wish "Finish my training and work in care" situation "Second year, behind on one course"
ok samen --store "$M" area add "driving licence"
ok samen --store "$M" strength add "Patient and caring" --area study --source werker
ok samen --store "$M" lifestyle add "Sleeps late, skips breakfast" --area home
ok samen --store "$M" person add Lotte --relation "fellow student"
ok samen --store "$M" person add Mother --relation mother
ok samen --store "$M" vip add Lotte --why "The only one who knew before the diagnosis came out" --area friendship
ok samen --store "$M" --json vip show Lotte
expect_eq "$(json_get person_label <<<"$OUT")" Lotte "a VIP is named by its person"
expect_eq "$(json_get area_label <<<"$OUT")" friendship "VIP area"

step "2. netwerk: ties, a snapshot, and what changed since"
ok samen --store "$M" tie add Lotte --sector werk/school --ring 2 --support "gezelschap, advies" --strength gemiddeld
ok samen --store "$M" tie add Mother --sector familie --ring 1 --valence negatief --reciprocity "ontvangt vooral"
ok samen --store "$M" network snapshot --date 2026-09-01 --note "first map"
ok samen --store "$M" tie set Lotte ring 1
ok samen --store "$M" network diff 2026-09-01
expect_match "$OUT" "~ Lotte +ring: 2 -> 1" "diff shows the changed ring"

step "3. plan: goals, actions in tier order, PDSA"
ok samen --store "$M" goal add "Finish the training" --area study --term middellang --priority 1
ok samen --store "$M" goal add "Internship in home care" --parent "Finish the training" --term kort
ok samen --store "$M" action add "Ask the school for a list of internships" --goal "Internship in home care" --tier klant
ok samen --store "$M" action add "Job coach for the first weeks" --goal "Internship in home care" --tier professional
ok samen --store "$M" action add "Karin's father drives her the first day" --goal "Internship in home care" --tier netwerk
ok samen --store "$M" action list
expect_match "$(tr '\n' '|' <<<"$OUT")" "Ask the school.*\|.*father drives.*\|.*Job coach" "actions in tier order: client, network, professional"
ok samen --store "$M" pdsa add "Breakfast before school" --goal "Finish the training" --planned "Alarm at 7" --start 2026-10-01
ok samen --store "$M" status
expect_match "$OUT" "action 'Job coach for the first weeks' is for a professional but does not say why" "professional action without a reason warns"
ok samen --store "$M" action set "Job coach for the first weeks" reason "Karin and her network do not know the employer"
ok samen --store "$M" status
expect_no_match "$OUT" "Job coach.*does not say why" "the warning goes once the reason is there"

step "4. steungroep: a group, a meeting, a decision that creates an action"
ok samen --store "$M" group add "Karin's support group" --members "Lotte" --rhythm 21
ok samen --store "$M" meeting add 2026-10-01 --group "Karin's support group" --present Lotte --minutes "Talked about the internship"
ok samen --store "$M" --json meeting decide 2026-10-01 "Lotte joins the first visit" --action "Visit the care home together" \
	--goal "Internship in home care" --tier netwerk --person Lotte
DEC="$(json_get id <<<"$OUT")"
ok samen --store "$M" --json action show "Visit the care home together"
expect_eq "$(json_get decision <<<"$OUT")" "$DEC" "the action links back to the decision"
expect_eq "$(json_get meeting_label <<<"$OUT")" 2026-10-01 "and to the meeting"
ok samen --store "$M" status
expect_match "$OUT" "support group 'Karin's support group' has not met since 2026-10-01" "an overdue meeting is shown"

step "5. evaluatie: progress per goal and the client's own scores over time"
ok samen --store "$M" evaluation add 2026-06-01
ok samen --store "$M" evaluation add 2026-11-01 --summary "Internship found"
ok samen --store "$M" score add study --evaluation 2026-06-01 --score 4
ok samen --store "$M" score add study --evaluation 2026-11-01 --score 7
ok samen --store "$M" progress add "Finish the training" --evaluation 2026-11-01 --progress goed
ok samen --store "$M" scores study
expect_match "$OUT" "2026-06-01 +4" "first score"
expect_match "$OUT" "2026-11-01 +7" "second score, after the first"

step "two devices edit at once; the merge is the same on both"
ok samen --store "$M" bundle create "$SCEN_TMP/all.samen"
ok samen --store "$K" bundle import "$SCEN_TMP/all.samen"
ok samen --store "$K" action set "Ask the school for a list of internships" status afgerond
ok samen --store "$K" tie set Mother ring 2 note "Better since we talked"
ok samen --store "$M" tie set Mother ring 3
ok samen --store "$M" --json vv
ok samen --store "$K" bundle create "$SCEN_TMP/k.samen" --since "$(samen --store "$M" vv)"
ok samen --store "$M" bundle import "$SCEN_TMP/k.samen"
ok samen --store "$M" bundle create "$SCEN_TMP/m.samen" --since "$(samen --store "$K" vv)"
ok samen --store "$K" bundle import "$SCEN_TMP/m.samen"
expect_eq "$(state_hash "$M")" "$(state_hash "$K")" "both devices hold the same plan"
ok samen --store "$K" conflicts
expect_match "$OUT" "ring: 2 concurrent values" "the concurrent ring is a visible conflict"
ok samen --store "$K" --json tie show Mother
expect_eq "$(json_get note <<<"$OUT")" "Better since we talked" "the note merged"

step "the audit trail: who changed what, when, in English summaries"
ok samen --store "$M" timeline Mother --type tie
expect_match "$OUT" "Karin +tie [0-9a-f]{8} 'Mother': ring -> 2" "timeline shows Karin's edit"
expect_match "$OUT" "Marieke +tie [0-9a-f]{8} 'Mother': ring -> 3" "and Marieke's"
ok samen --store "$M" log -n 30
expect_match "$OUT" "Karin: tie [0-9a-f]{8} ring → 2, note → Better since we talked" "English commit summary"
expect_match "$OUT" "created action 'Visit the care home together'|2 created" "creation summary"

step "the plan is closed at the end; its status merges like any field"
ok samen --store "$M" plan set status afgesloten
ok samen --store "$M" --json plan show
expect_eq "$(json_get status <<<"$OUT")" afgesloten "plan closed"
fails_with 1 "status must be one of: actief, afgesloten" -- samen --store "$M" plan set status weg
fails_with 2 "plan set FIELD VALUE" -- samen --store "$M" plan set status

step "wrong input is refused with a clear message and changes nothing"
H="$(state_hash "$M")"
fails_with 1 "ring must be a whole number from 1 to 3 \(got '4'\)" -- samen --store "$M" tie set Lotte ring 4
fails_with 1 "sector must be one of: familie, vrienden" -- samen --store "$M" tie set Lotte sector school
fails_with 1 "support takes some of: praktisch, gezelschap, advies, emotioneel" -- samen --store "$M" tie set Lotte support "gezelschap, geld"
fails_with 1 "date must be a date YYYY-MM-DD \(got '2026-02-30'\)" -- samen --store "$M" meeting add 2026-02-30
fails_with 1 "score must be a whole number from 1 to 10" -- samen --store "$M" score add study --score 11
fails_with 1 "members: no person 'Nobody'" -- samen --store "$M" group set "Karin's support group" members "Lotte, Nobody"
fails_with 1 "members names 'Lotte' twice" -- samen --store "$M" group set "Karin's support group" members "Lotte, Lotte"
fails_with 1 "ties cannot be typed in: samen network snapshot records them" -- samen --store "$M" snapshot set 2026-09-01 ties x
fails_with 1 "goal: no goal 'Nothing'" -- samen --store "$M" action add "Orphan" --goal Nothing
fails_with 1 "no person 'Stranger'" -- samen --store "$M" tie add Stranger
fails_with 1 "not valid UTF-8" -- samen --store "$M" person add $'\xff\xfe'
fails_with 1 "a pdsa has no field 'plan'" -- samen --store "$M" pdsa set "Breakfast before school" plan x
fails_with 2 "strength add TEXT" -- samen --store "$M" strength add
fails_with 2 "network: snapshot or diff" -- samen --store "$M" network
fails_with 1 "no snapshot '1999-01-01'" -- samen --store "$M" network diff 1999-01-01
fails_with 2 "fields TYPE" -- samen --store "$M" fields nothing
expect_eq "$(state_hash "$M")" "$H" "refused input changed nothing"

step "the README demo: the three sample cases on several devices"
run env SAMEN_BIN="$SAMEN_BIN" bash "$SAMEN_SRC/scripts/demo.sh"
[[ $RC -eq 0 ]] || { show_run demo; die "the demo failed"; }
for c in Joke Sebastiaan Karin; do
	expect_match "$OUT" "$c +all [0-9] devices agree: state [0-9a-f]{64}" "demo: $c agrees on every device"
done
expect_match "$OUT" "~ Sanne +ring: 3 -> 2" "demo: Joke's network diff"

echo "scenario_modules: $SCEN_CHECKS checks passed"
