#!/usr/bin/env bash
# scenario_sync.sh - Joke (client), Marieke (coordinator) and Kees (her
# husband) each hold Joke's plan, edit offline and swap bundles in different
# orders; everyone ends with the same state, conflicts are visible and
# settled everywhere, and a device that is not a member cannot change the plan.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

J="$SCEN_TMP/joke" M="$SCEN_TMP/marieke" K="$SCEN_TMP/kees" E="$SCEN_TMP/els"
B="$SCEN_TMP/bundles"
mkdir -p "$B"

step "three devices; Joke starts her own plan and adds Marieke and Kees"
new_device "$J" "Joke"
KEY_J="$KEY"
new_device "$M" "Marieke (coördinator)"
KEY_M="$KEY"
new_device "$K" "Kees"
KEY_K="$KEY"
new_device "$E" "Els (buurvrouw)"
KEY_E="$KEY"
ok samen --store "$J" --json plan create --client Joke
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$J" --json goal add "Meer betrokken zijn bij de kinderen" --area familie --term lang --priority 1
KIDS="$(json_get id <<<"$OUT")"
ok samen --store "$J" --json goal add "Een betere band met Kees" --area partner --term lang --priority 2
PARTNER="$(json_get id <<<"$OUT")"
ok samen --store "$J" --json goal add "Weer vriendinnen zien" --area vriendschap --term middellang --priority 3
FRIENDS="$(json_get id <<<"$OUT")"
ok samen --store "$J" member add "Marieke (coördinator)" --device "$KEY_M"
ok samen --store "$J" member add "Kees" --device "$KEY_K"
ok samen --store "$J" --json member list
expect_eq "$(json_py 'sorted(m["name"] for m in j)' <<<"$OUT")" '["Joke", "Kees", "Marieke (coördinator)"]' "three members"
expect_eq "$(json_py '[m["device"] for m in j if m["creator"]]' <<<"$OUT")" "[\"$KEY_J\"]" "Joke started the plan"

ok samen --store "$J" --json bundle create "$B/start.bundle"
expect_eq "$(json_get changes <<<"$OUT")" 6 "first bundle holds the whole plan"
for d in "$M" "$K"; do
	ok samen --store "$d" --json bundle import "$B/start.bundle"
	expect_eq "$(json_py '[j["applied"], j["cloned"], j["plan"]]' <<<"$OUT")" "[6, true, \"$PLAN\"]" "import into a new store"
done
H_START="$(state_hash "$J")"
expect_eq "$(state_hash "$M")" "$H_START" "Marieke has Joke's plan"
expect_eq "$(state_hash "$K")" "$H_START" "Kees has Joke's plan"
# a spare device that will receive everyone's changes in reverse order
new_device "$SCEN_TMP/spare" "Reserve-laptop"
ok samen --store "$SCEN_TMP/spare" bundle import "$B/start.bundle"
BASE_VV="$(samen --store "$J" vv)"

step "concurrent offline edits"
ok samen --store "$J" goal set "$KIDS" status bezig
ok samen --store "$J" goal add "Elke dag samen ontbijten" --parent "$KIDS" --term kort
ok samen --store "$K" goal set "$KIDS" status bijgesteld target 2027-09-01
ok samen --store "$K" goal add "Samen wandelen op zondag" --parent "$PARTNER" --term kort
ok samen --store "$M" goal set "$KIDS" target 2027-06-30 description "Besproken in de steungroep"
ok samen --store "$M" goal set "$FRIENDS" priority 2
ok samen --store "$M" goal set "$PARTNER" priority 3
for d in "$J" "$M" "$K"; do
	expect_no_match "$(samen --store "$d" conflicts)" "concurrent" "no conflict before any exchange"
done
# each device's own changes, for the spare device
ok samen --store "$J" bundle create "$B/j-own.bundle" --since "$BASE_VV"
ok samen --store "$M" bundle create "$B/m-own.bundle" --since "$BASE_VV"
ok samen --store "$K" bundle create "$B/k-own.bundle" --since "$BASE_VV"

step "exchange: Kees -> Joke -> Marieke -> Kees, then Marieke -> Joke"
# the receiver tells the sender what it has (samen vv), the sender sends the rest
samen --store "$J" vv >"$B/joke.vv"
ok samen --store "$K" --json bundle create "$B/k2j.bundle" --since @"$B/joke.vv"
expect_eq "$(json_get changes <<<"$OUT")" 2 "Kees sends only his two changes"
ok samen --store "$J" --json bundle import "$B/k2j.bundle"
expect_eq "$(json_py '[j["applied"], j["duplicates"], j["pending"], j["rejected"], j["invalid"]]' <<<"$OUT")" \
	"[2, 0, 0, 0, 0]" "Joke takes Kees's changes"
ok samen --store "$J" --json bundle create "$B/j2m.bundle" --since "$(samen --store "$M" vv)"
expect_eq "$(json_get changes <<<"$OUT")" 4 "Joke forwards her own and Kees's changes"
ok samen --store "$M" bundle import "$B/j2m.bundle"
expect_match "$OUT" "Imported 4 new change\\(s\\)" "Marieke takes four"
ok samen --store "$M" bundle create "$B/m2k.bundle" --since "$(samen --store "$K" vv)"
ok samen --store "$K" --json bundle import "$B/m2k.bundle"
expect_eq "$(json_get applied <<<"$OUT")" 5 "Kees takes Joke's two and Marieke's three"
H_M="$(state_hash "$M")"
expect_eq "$(state_hash "$K")" "$H_M" "Kees and Marieke agree"
[[ "$(state_hash "$J")" != "$H_M" ]] || die "Joke has not seen Marieke's changes yet, but her hash is equal"
passed
ok samen --store "$M" bundle create "$B/m2j.bundle" --since "$(samen --store "$J" vv)"
ok samen --store "$J" bundle import "$B/m2j.bundle"
# importing the same bundles again changes nothing
ok samen --store "$J" --json bundle import "$B/k2j.bundle"
expect_eq "$(json_py '[j["applied"], j["duplicates"]]' <<<"$OUT")" "[0, 2]" "duplicates are recognised"
H="$(state_hash "$M")"
for d in "$J" "$K"; do
	expect_eq "$(state_hash "$d")" "$H" "$(basename "$d") has the same state as Marieke"
done

step "the same changes in another order give the same state"
for f in k-own m-own j-own k-own; do
	ok samen --store "$SCEN_TMP/spare" bundle import "$B/$f.bundle"
done
expect_eq "$(state_hash "$SCEN_TMP/spare")" "$H" "reverse order, with a duplicate"
new_device "$SCEN_TMP/many" "Laptop van Marieke"
ok samen --store "$SCEN_TMP/many" bundle import "$B/start.bundle"
ok samen --store "$SCEN_TMP/many" --json bundle import "$B/k-own.bundle" "$B/m-own.bundle" "$B/j-own.bundle"
expect_eq "$(json_py '[j["applied"] > 0, j["pending"], j["invalid"]]' <<<"$OUT")" "[true, 0, 0]" \
	"three bundles in one import: all applied, nothing left waiting"
expect_eq "$(state_hash "$SCEN_TMP/many")" "$H" "three bundles in one import, in any order"
fails_with 1 "cannot open bundle .*nope.bundle" samen --store "$SCEN_TMP/many" bundle import "$B/k-own.bundle" \
	"$B/nope.bundle"
expect_eq "$(state_hash "$SCEN_TMP/many")" "$H" "a missing file among several changes nothing"
new_device "$SCEN_TMP/new" "Nieuwe telefoon van Kees"
ok samen --store "$K" bundle create "$B/all.bundle"
ok samen --store "$SCEN_TMP/new" bundle import "$B/all.bundle"
expect_eq "$(state_hash "$SCEN_TMP/new")" "$H" "one full bundle"
ok samen --store "$SCEN_TMP/new" --json goal list
NEW_LIST="$OUT"
ok samen --store "$J" --json goal list
expect_eq "$OUT" "$NEW_LIST" "same goal list everywhere"
expect_eq "$(json_py '[g["title"] for g in j]' <<<"$OUT")" \
	'["Meer betrokken zijn bij de kinderen", "Elke dag samen ontbijten", "Weer vriendinnen zien", "Een betere band met Kees", "Samen wandelen op zondag"]' \
	"merged tree: Marieke's priorities and both new sub-goals"

step "conflicts: status (Joke vs Kees) and target (Kees vs Marieke)"
for d in "$J" "$M" "$K"; do
	ok samen --store "$d" --json conflicts
	expect_eq "$(json_py 'sorted((v["field"], v["value"], v["author"]) for v in j)' <<<"$OUT")" \
		'[["status", "bezig", "Joke"], ["status", "bijgesteld", "Kees"], ["target", "2027-06-30", "Marieke (coördinator)"], ["target", "2027-09-01", "Kees"]]' \
		"$(basename "$d"): both values of both fields, with their authors"
	expect_eq "$(json_py 'sorted(v["field"] for v in j if v["shown"])' <<<"$OUT")" '["status", "target"]' \
		"one shown value per field"
	expect_eq "$(json_py 'sorted(set(v["id"] for v in j))' <<<"$OUT")" "[\"$KIDS\"]" "on the goal about the children"
	if [[ $d == "$J" ]]; then
		WINNERS="$(json_py 'sorted((v["field"], v["value"]) for v in j if v["shown"])' <<<"$OUT")"
	else
		expect_eq "$(json_py 'sorted((v["field"], v["value"]) for v in j if v["shown"])' <<<"$OUT")" "$WINNERS" \
			"the same value is shown on every device"
	fi
done
ok samen --store "$K" conflicts
expect_match "$OUT" "status: 2 concurrent values" "text: status conflict heading"
expect_match "$OUT" "^  [* ] bezig +Joke, " "text: Joke's value"
expect_match "$OUT" "^  [* ] bijgesteld +Kees, " "text: Kees's value"
ok samen --store "$K" goal list
expect_match "$OUT" "Meer betrokken zijn bij de kinderen .*conflict" "goal list flags the conflict"
ok samen --store "$K" --json check
expect_eq "$(json_get conflicts <<<"$OUT")" 2 "check counts two conflicts"

step "resolve on Marieke's device, then exchange"
ok samen --store "$M" resolve "$KIDS" status bezig
SHOWN_TARGET="$(json_py '[v["value"] for v in j if v["shown"] and v["field"] == "target"][0]' \
	<<<"$(samen --store "$M" --json conflicts)")"
ok samen --store "$M" resolve "$KIDS" target
ok samen --store "$M" conflicts
expect_match "$OUT" "No conflicts" "resolved on Marieke's device"
fails_with 1 "has no conflict" -- samen --store "$M" resolve "$KIDS" status
for d in "$J" "$K"; do
	ok samen --store "$d" conflicts
	expect_match "$OUT" "concurrent values" "$(basename "$d") still has the conflict before the exchange"
	ok samen --store "$M" bundle create "$B/resolve.bundle" --since "$(samen --store "$d" vv)"
	ok samen --store "$d" bundle import "$B/resolve.bundle"
	ok samen --store "$d" --json conflicts
	expect_eq "$OUT" "[]" "$(basename "$d"): no conflicts after the exchange"
	ok samen --store "$d" --json goal show "$KIDS"
	expect_eq "$(json_py '[j["status"], j["target"], j["conflicts"]]' <<<"$OUT")" "[\"bezig\", \"$SHOWN_TARGET\", []]" \
		"$(basename "$d"): the settled values"
done
ok samen --store "$K" blame "$KIDS"
expect_match "$OUT" "^status +bezig +Marieke \(coördinator\)" "blame: Marieke settled the status"
H="$(state_hash "$M")"
for d in "$J" "$K"; do
	expect_eq "$(state_hash "$d")" "$H" "$(basename "$d") agrees after the resolution"
done

step "changes that arrive before what they depend on wait, then apply"
V1="$(samen --store "$K" vv)"
ok samen --store "$K" goal set "$FRIENDS" status bezig
V2="$(samen --store "$K" vv)"
ok samen --store "$K" goal set "$FRIENDS" description "Eerst Sandra bellen"
ok samen --store "$K" bundle create "$B/second.bundle" --since "$V2"
ok samen --store "$K" bundle create "$B/both.bundle" --since "$V1"
ok samen --store "$J" --json bundle import "$B/second.bundle"
expect_eq "$(json_py '[j["applied"], j["pending"]]' <<<"$OUT")" "[0, 1]" "the second change waits for the first"
ok samen --store "$J" --json check
expect_eq "$(json_get pending <<<"$OUT")" 1 "check lists it as pending"
ok samen --store "$J" --json status
expect_eq "$(json_py '[j["pending"], j["missing"], j["member"]]' <<<"$OUT")" "[1, 1, true]" \
	"status: one change waits for one that has not arrived"
ok samen --store "$J" status
expect_match "$OUT" "1 received changes wait for 1 changes not received yet" "status says what waits"
ok samen --store "$J" --json goal show "$FRIENDS"
expect_eq "$(json_get description <<<"$OUT")" null "a pending change is not applied"
ok samen --store "$J" --json bundle import "$B/both.bundle"
expect_eq "$(json_get applied <<<"$OUT")" 2 "both apply once the first arrives"
ok samen --store "$J" --json check
expect_eq "$(json_get pending <<<"$OUT")" 0 "nothing pending any more"
expect_eq "$(json_get state_hash <<<"$OUT")" "$(state_hash "$K")" "Joke and Kees agree"
ok samen --store "$K" bundle create "$B/k2m.bundle" --since "$(samen --store "$M" vv)"
ok samen --store "$M" bundle import "$B/k2m.bundle"

step "a device that is not a member cannot change the plan"
ok samen --store "$M" bundle create "$B/for-els.bundle"
ok samen --store "$E" bundle import "$B/for-els.bundle"
fails_with 1 "stored but rejected: device ${KEY_E:0:16} is not a member of this plan" \
	-- samen --store "$E" goal set "$KIDS" title "Kinderen naar opa en oma"
ok samen --store "$E" --json bundle create "$B/els.bundle" --since "$(samen --store "$M" vv)"
expect_eq "$(json_get changes <<<"$OUT")" 1 "Els's bundle carries her change"
ok samen --store "$M" --json bundle import "$B/els.bundle"
expect_eq "$(json_py '[j["applied"], j["rejected"]]' <<<"$OUT")" "[1, 1]" "kept (new in the history), but rejected by the rules"
ok samen --store "$M" log -n 1
expect_match "$OUT" "Els \(buurvrouw\)" "log names the author"
expect_match "$OUT" "REJECTED: device ${KEY_E:0:16} is not a member of this plan" "log shows the verdict and the reason"
ok samen --store "$M" --json log "$KIDS"
expect_eq "$(json_py '[(e["author"], e["verdict"]) for e in j][0]' <<<"$OUT")" '["Els (buurvrouw)", "rejected"]' \
	"log of the goal shows the rejected change"
ok samen --store "$M" --json goal show "$KIDS"
expect_eq "$(json_get title <<<"$OUT")" "Meer betrokken zijn bij de kinderen" "the goal is unchanged"
ok samen --store "$M" --json check
expect_eq "$(json_get rejected <<<"$OUT")" 1 "check counts one rejected change"
# the verdict travels: Joke reaches the same verdict from Marieke's bundle
ok samen --store "$M" bundle create "$B/m2j-2.bundle" --since "$(samen --store "$J" vv)"
ok samen --store "$J" bundle import "$B/m2j-2.bundle"
ok samen --store "$J" log -n 1
expect_match "$OUT" "REJECTED: .*not a member" "Joke sees the same rejection"
expect_eq "$(state_hash "$J")" "$(state_hash "$M")" "Joke and Marieke agree, rejected change included"

step "the history is an ordinary git repository"
for d in "$J" "$M"; do
	GD="$d/plans/$PLAN/history.git"
	[[ -d "$GD" ]] || die "no history at $GD"
	ok git --git-dir "$GD" log --all --oneline
	ok samen --store "$d" --json check
	expect_eq "$(grep -c . <<<"$(git --git-dir "$GD" log --all --oneline)")" "$(json_get changes <<<"$OUT")" \
		"$(basename "$d"): one commit per change"
	ok git --git-dir "$GD" log --all --oneline
	expect_match "$OUT" "Joke: doel 'Meer betrokken zijn bij de kinderen' aangemaakt" "readable commit messages"
	expect_match "$OUT" "Els \(buurvrouw\)" "the rejected change is in the history too"
	ok git --git-dir "$GD" fsck --strict
	H_BEFORE="$(state_hash "$d")"
	ok samen --store "$d" --json gc
	expect_eq "$(ls "$GD/objects/pack/"*.pack | wc -l)" 1 "$(basename "$d"): gc leaves one pack"
	ok git --git-dir "$GD" fsck --strict
	expect_eq "$(state_hash "$d")" "$H_BEFORE" "$(basename "$d"): gc changes nothing else"
done
# every device builds the very same commits from the same changes
expect_eq "$(git --git-dir "$J/plans/$PLAN/history.git" log --all --format=%H | sort)" \
	"$(git --git-dir "$M/plans/$PLAN/history.git" log --all --format=%H | sort)" "identical commit ids on Joke's and Marieke's devices"
