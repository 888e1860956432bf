#!/usr/bin/env bash
# scenario_basics.sh - one device, one plan: what a support worker does on the
# first day with Joke's samenwerkingsplan, and that every answer is right.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

M="$SCEN_TMP/marieke"

step "init: a store with a private key"
ok samen --store "$M" init --name "Marieke (coördinator)"
expect_match "$OUT" "Device: [0-9a-f]{64} \(Marieke \(coördinator\)\)" "init names the device"
expect_eq "$(stat -c %a "$M/device.key")" 600 "device key is readable by its owner only"
ok samen --store "$M" id
expect_match "$(head -n1 <<<"$OUT")" "^[0-9a-f]{64} Marieke \(coördinator\)$" "id prints the 64-hex key and the name"
KEY_M="$(awk 'NR==1{print $1}' <<<"$OUT")"
json_valid samen --store "$M" --json id
expect_eq "$(json_get device <<<"$OUT")" "$KEY_M" "id --json gives the same key"
expect_eq "$(json_get fingerprint <<<"$OUT")" "${KEY_M:0:16}" "fingerprint is the first 16 hex digits"
# init again is harmless: the key (and its name) stay as they were
ok samen --store "$M" init --name "Nog een keer"
expect_eq "$(samen --store "$M" --json id | json_get device)" "$KEY_M" "a second init keeps the key"
expect_eq "$(samen --store "$M" --json id | json_get name)" "Marieke (coördinator)" "a second init keeps the name"

step "plan create / plan list"
ok samen --store "$M" plan list
expect_match "$OUT" "No plans yet" "empty store says how to start"
json_valid samen --store "$M" --json plan list
expect_eq "$OUT" "[]" "empty plan list in JSON"
json_valid samen --store "$M" --json plan create --client Joke
PLAN="$(json_get plan <<<"$OUT")"
[[ "$PLAN" =~ ^[0-9a-f]{32}$ ]] || die "plan id is not 32 hex digits: $PLAN"
expect_eq "$(json_get client <<<"$OUT")" Joke "plan is for Joke"
expect_eq "$(json_get lang <<<"$OUT")" nl "Dutch by default"
ok samen --store "$M" plan list
expect_match "$OUT" "^$PLAN  Joke .* 0 goals, 1 changes" "plan list line"
json_valid samen --store "$M" --json plan list
expect_eq "$(json_py 'len(j)' <<<"$OUT")" 1 "one plan"
expect_eq "$(json_get 0.plan <<<"$OUT")" "$PLAN" "plan list --json id"
ok samen --store "$M" goal list
expect_match "$OUT" "No goals yet" "empty goal list says how to add one"

step "goal add with every field"
json_valid samen --store "$M" --json goal add "Meer betrokken zijn bij de kinderen" \
	--area familie --term lang --priority 2 --status bezig --target 2027-06-30 \
	--description "Joke wil weer meetellen in het gezin: samen eten, huiswerk, uitjes."
KIDS="$(json_get id <<<"$OUT")"
[[ "$KIDS" =~ ^[0-9a-f]{16}$ ]] || die "goal id is not 16 hex: $KIDS"
json_valid samen --store "$M" --json goal show "$KIDS"
expect_eq "$(json_get title <<<"$OUT")" "Meer betrokken zijn bij de kinderen" "title"
expect_eq "$(json_get area_label <<<"$OUT")" familie "area"
expect_eq "$(json_get term <<<"$OUT")" lang "term"
expect_eq "$(json_get priority <<<"$OUT")" 2 "priority"
expect_eq "$(json_get status <<<"$OUT")" bezig "status"
expect_eq "$(json_get target <<<"$OUT")" 2027-06-30 "target date"
expect_match "$(json_get description <<<"$OUT")" "meetellen in het gezin" "description"
expect_eq "$(json_get parent <<<"$OUT")" null "no parent"
expect_eq "$(json_get depth <<<"$OUT")" 0 "top level"
ok samen --store "$M" goal show "$KIDS"
expect_match "$OUT" "^goal $KIDS$" "goal show heading"
expect_match "$OUT" "^  status +bezig$" "goal show: status line"
expect_match "$OUT" "^  target +2027-06-30$" "goal show: target line"

step "sub-goals (hoofddoel -> subdoel -> trajectdoel) and ordering"
ok samen --store "$M" goal add "Weer vriendinnen zien" --area vriendschap --term middellang --priority 1
FRIENDS="${OUT#Added goal }"; FRIENDS="${FRIENDS%% *}"
ok samen --store "$M" goal add "Elke week een vriendin bellen" --parent "$FRIENDS" --term kort
ok samen --store "$M" goal add "Iedere dinsdag samen ontbijten" --parent "$KIDS" --term kort --rank 2
ok samen --store "$M" goal add "Huiswerk maken met Tim" --parent "$KIDS" --term kort --rank 1
# a parent named by its exact title works too
ok samen --store "$M" goal add "Tim ophalen van voetbal" --parent "Huiswerk maken met Tim" --term kort
ok samen --store "$M" goal add "Een betere band met Kees" --area partner --priority 3
ok samen --store "$M" goal list
want="Weer vriendinnen zien
  Elke week een vriendin bellen
Meer betrokken zijn bij de kinderen
  Huiswerk maken met Tim
    Tim ophalen van voetbal
  Iedere dinsdag samen ontbijten
Een betere band met Kees"
# strip the id column and the [status]/prio decorations
got="$(sed -E 's/^[0-9a-f]{8}  //; s/  \[.*$//' <<<"$OUT")"
expect_eq "$got" "$want" "goal tree: priority orders top goals, rank orders sub-goals, children follow parents"
expect_match "$OUT" "^${FRIENDS:0:8}  Weer vriendinnen zien  \[open\]  prio 1$" "list line has id, status and priority"
json_valid samen --store "$M" --json goal list
expect_eq "$(json_py '[g["depth"] for g in j]' <<<"$OUT")" "[0, 1, 0, 1, 2, 1, 0]" "depths in JSON"
expect_eq "$(json_py 'j[4]["parent"] == j[3]["id"]' <<<"$OUT")" true "trajectdoel points at its subdoel"
ok samen --store "$M" plan list
expect_match "$OUT" " 7 goals, 8 changes" "plan list counts goals and changes"

step "goal set: several fields in one change"
ok samen --store "$M" --json log
NLOG="$(json_py 'len(j)' <<<"$OUT")"
json_valid samen --store "$M" --json goal set "$KIDS" status bereikt priority 4 target 2027-12-31 \
	description "Gelukt: Joke eet elke dag mee."
SETCHANGE="$(json_get change <<<"$OUT")"
[[ "$SETCHANGE" =~ ^[0-9a-f]{64}$ ]] || die "change id is not 64 hex: $SETCHANGE"
ok samen --store "$M" --json log
expect_eq "$(json_py 'len(j)' <<<"$OUT")" "$((NLOG + 1))" "four fields, one change"
expect_eq "$(json_get 0.change <<<"$OUT")" "$SETCHANGE" "newest change first"
expect_eq "$(json_get 0.ops <<<"$OUT")" 4 "the change holds four ops"
ok samen --store "$M" --json goal show "Meer betrokken zijn bij de kinderen"
expect_eq "$(json_py '[j[k] for k in ("status","priority","target")]' <<<"$OUT")" \
	'["bereikt", 4, "2027-12-31"]' "the fields changed together (priority as a JSON number)"
ok samen --store "$M" goal set "$KIDS" area "-"
ok samen --store "$M" --json goal show "$KIDS"
expect_eq "$(json_get area <<<"$OUT")" null "'-' clears a field"
ok samen --store "$M" goal set "$KIDS" area familie

step "goal rm: gone from the list, still in the history"
ok samen --store "$M" goal add "Afvallen door minder te snoepen" --area zingeving --term lang
SNACK="${OUT#Added goal }"; SNACK="${SNACK%% *}"
ok samen --store "$M" goal rm "$SNACK"
expect_match "$OUT" "^Deleted goal" "rm confirms"
ok samen --store "$M" goal list
expect_no_match "$OUT" "Afvallen" "deleted goal is not listed"
fails_with 1 "was deleted" -- samen --store "$M" goal show "$SNACK"
fails_with 1 "was deleted" -- samen --store "$M" goal set "$SNACK" status bezig
ok samen --store "$M" log "$SNACK"
expect_match "$OUT" "verwijderd" "log of the goal shows the delete"
expect_match "$OUT" "'Afvallen door minder te snoepen' aangemaakt" "and its creation"

step "log: -n and one goal"
ok samen --store "$M" --json log -n 2
expect_eq "$(json_py 'len(j)' <<<"$OUT")" 2 "log -n 2 gives two changes"
ok samen --store "$M" log -n 1
expect_eq "$(grep -c '^change ' <<<"$OUT")" 1 "log -n 1 text"
expect_match "$OUT" "^change [0-9a-f]{16}  [0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}  Marieke \(coördinator\) \(device ${KEY_M:0:16}\)$" \
	"log line: change, time, author, device"
ok samen --store "$M" --json log "$KIDS"
expect_eq "$(json_py 'len(j)' <<<"$OUT")" 4 "log of one goal: add, set, clear area, set area"
expect_eq "$(json_py 'all(e["verdict"] == "accepted" and e["author"] == "Marieke (coördinator)" for e in j)' <<<"$OUT")" \
	true "all accepted, all by Marieke"
expect_eq "$(json_py '"'"$SETCHANGE"'" in [e["change"] for e in j]' <<<"$OUT")" true "the multi-field change is listed"

step "blame: who set each field, when, in which change"
NOW="$(date +%s)"
ok samen --store "$M" blame "$KIDS"
expect_match "$OUT" "^status +bereikt +Marieke \(coördinator\), [0-9-]+ [0-9:]+, change ${SETCHANGE:0:12}$" "blame line for status"
expect_match "$OUT" "^title +Meer betrokken zijn bij de kinderen +Marieke" "blame line for title"
json_valid samen --store "$M" --json blame "$KIDS"
expect_eq "$(json_py '[v["change"] for v in j if v["field"] == "status"]' <<<"$OUT")" "[\"$SETCHANGE\"]" "blame --json change"
expect_eq "$(json_py '[v["device"] for v in j if v["field"] == "status"]' <<<"$OUT")" "[\"$KEY_M\"]" "blame --json device"
expect_eq "$(json_py 'all(abs(v["time"] - '"$NOW"') < 600 for v in j)' <<<"$OUT")" true "blame times are now"

step "check and rebuild agree on the state hash"
ok samen --store "$M" check
expect_match "$OUT" "^state [0-9a-f]{64}$" "check prints a state hash"
expect_match "$OUT" "0 pending" "nothing pending"
H1="$(state_hash "$M")"
ok samen --store "$M" rebuild
expect_match "$OUT" "Rebuilt the replica" "rebuild says what it did"
expect_match "$OUT" "^state $H1$" "rebuild gives the same hash"
expect_eq "$(state_hash "$M")" "$H1" "check after rebuild"
json_valid samen --store "$M" --json rebuild
expect_eq "$(json_get state_hash <<<"$OUT")" "$H1" "rebuild --json hash"
expect_eq "$(json_get ok <<<"$OUT")" true "rebuild --json ok"

step "--json parses for every command"
ok samen --store "$M" --json goal add "Iets betekenen in de buurt" --area werk
json_valid samen --store "$M" --json goal list
json_valid samen --store "$M" --json goal show "$KIDS"
json_valid samen --store "$M" --json goal set "Iets betekenen in de buurt" status bezig
json_valid samen --store "$M" --json goal rm "Iets betekenen in de buurt"
json_valid samen --store "$M" --json log
json_valid samen --store "$M" --json log -n 3 "$KIDS"
json_valid samen --store "$M" --json blame "$KIDS"
json_valid samen --store "$M" --json conflicts
expect_eq "$OUT" "[]" "no conflicts on one device"
json_valid samen --store "$M" --json member list
expect_eq "$(json_get 0.device <<<"$OUT")" "$KEY_M" "the creator is a member"
json_valid samen --store "$M" --json vv
expect_eq "$(json_get plan <<<"$OUT")" "$PLAN" "vv --json plan"
json_valid samen --store "$M" --json bundle create "$SCEN_TMP/all.bundle"
json_valid samen --store "$SCEN_TMP/other" --json init --name Kees
json_valid samen --store "$SCEN_TMP/other" --json bundle import "$SCEN_TMP/all.bundle"
expect_eq "$(json_get cloned <<<"$OUT")" true "import creates the plan in a new store"
json_valid samen --store "$M" --json check
json_valid samen --store "$M" --json plan list
json_valid samen --store "$M" --json id
# an error in --json mode still prints JSON on stdout
run samen --store "$M" --json goal show deadbeef
expect_eq "$RC" 1 "error exit code in --json mode"
expect_eq "$(json_get ok <<<"$OUT")" false "--json error object"
expect_match "$(json_get error <<<"$OUT")" "no goal 'deadbeef'" "--json error message"
