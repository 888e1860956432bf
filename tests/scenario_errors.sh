#!/usr/bin/env bash
# scenario_errors.sh - every wrong input gets a clear message and the right
# exit code (1 error, 2 usage), and leaves the plan exactly as it was;
# damaged local files are refused (keys) or recovered from history (replica).
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

M="$SCEN_TMP/marieke"

step "no store yet"
fails_with 1 "no Samen store at .*run .samen init. first" -- samen --store "$SCEN_TMP/nothing" goal list
fails_with 1 "samen init" -- samen --store "$SCEN_TMP/nothing" id
fails_with 1 "samen init" -- samen --store "$SCEN_TMP/nothing" plan create --client Joke
[[ ! -e "$SCEN_TMP/nothing" ]] || die "a failed command created a store"
passed

new_device "$M" "Marieke (coördinator)"
fails_with 1 "no plans|plan create" -- samen --store "$M" goal list

step "usage errors exit 2"
fails_with 2 "unknown command 'frob'" -- samen --store "$M" frob
fails_with 2 "usage: samen" -- samen
fails_with 2 "unknown or incomplete option '--bogus'" -- samen --store "$M" goal add "Iets" --bogus 1
fails_with 2 "unknown or incomplete option '--area'" -- samen --store "$M" goal add "Iets" --area
fails_with 2 "goal: add, list, show, set or rm" -- samen --store "$M" goal
fails_with 2 "goal: add, list, show, set or rm" -- samen --store "$M" goal frob
fails_with 2 "goal add TITLE" -- samen --store "$M" goal add
fails_with 2 "goal show GOAL" -- samen --store "$M" goal show
fails_with 2 "goal set GOAL FIELD VALUE" -- samen --store "$M" goal set abcd status
fails_with 2 "goal rm GOAL" -- samen --store "$M" goal rm
fails_with 2 "plan: create, list or clone" -- samen --store "$M" plan
fails_with 2 "needs --client" -- samen --store "$M" plan create
fails_with 2 "needs --client" -- samen --store "$M" plan create Joke
fails_with 2 "member add NAME --device KEY" -- samen --store "$M" member add Kees
fails_with 2 "bundle create FILE" -- samen --store "$M" bundle create
fails_with 2 "bundle import FILE" -- samen --store "$M" bundle import
fails_with 2 "resolve GOAL FIELD" -- samen --store "$M" resolve abcd
fails_with 2 "blame GOAL" -- samen --store "$M" blame
fails_with 2 "need a value" -- samen goal list --store
fails_with 2 "-n needs a number" -- samen --store "$M" log -n abc
fails_with 2 "-n needs a number" -- samen --store "$M" log -n -3
fails_with 2 "check takes no arguments" -- samen --store "$M" check now

step "plan create checks its input"
fails_with 1 "nl or en" -- samen --store "$M" plan create --client Joke --lang de
ok samen --store "$M" --json plan create --client Joke
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$M" --json goal add "Meer betrokken zijn bij de kinderen" --area familie --priority 1
KIDS="$(json_get id <<<"$OUT")"
ok samen --store "$M" goal add "Weer vriendinnen zien" --area vriendschap --priority 2
H0="$(state_hash "$M")"
ok samen --store "$M" goal list
LIST0="$OUT"

unchanged() {
	expect_eq "$(state_hash "$M")" "$H0" "$1: the plan is unchanged"
}

step "bad field values are refused with the allowed choices"
fails_with 1 "a goal has no field 'colour' \(fields: title, area, parent, term, priority, rank, status, target, description\)" \
	-- samen --store "$M" goal set "$KIDS" colour rood
fails_with 1 "status must be one of: open, bezig, bereikt, bijgesteld, gestopt \(got 'klaar'\)" \
	-- samen --store "$M" goal set "$KIDS" status klaar
fails_with 1 "term must be one of: lang, middellang, kort" -- samen --store "$M" goal set "$KIDS" term kortlopend
fails_with 1 "priority must be a whole number from 1 to 5 \(got '9'\)" -- samen --store "$M" goal set "$KIDS" priority 9
fails_with 1 "priority must be a whole number from 1 to 5" -- samen --store "$M" goal set "$KIDS" priority 0
fails_with 1 "priority must be a whole number from 1 to 5" -- samen --store "$M" goal set "$KIDS" priority hoog
fails_with 1 "target must be a date YYYY-MM-DD \(got '2025-02-30'\)" -- samen --store "$M" goal set "$KIDS" target 2025-02-30
fails_with 1 "target must be a date YYYY-MM-DD" -- samen --store "$M" goal set "$KIDS" target 30-06-2027
fails_with 1 "rank must be" -- samen --store "$M" goal set "$KIDS" rank "A!"
fails_with 1 "single line" -- samen --store "$M" goal set "$KIDS" title $'twee\nregels'
fails_with 1 "cannot be its own parent" -- samen --store "$M" goal set "$KIDS" parent "$KIDS"
fails_with 1 "parent: no goal 'ffff'" -- samen --store "$M" goal set "$KIDS" parent ffff
# one bad field spoils the whole change: nothing of it is written
fails_with 1 "status must be one of" -- samen --store "$M" goal set "$KIDS" priority 3 status klaar
fails_with 2 "unknown or incomplete option '--kleur'" -- samen --store "$M" goal add "Nieuw doel" --area werk \
	--term kort --status open --priority 2 --target 2027-01-01 --description "x" --parent "$KIDS" --rank 1 --kleur rood
fails_with 1 "target must be a date" -- samen --store "$M" goal add "Nieuw doel" --area werk --term kort \
	--status open --priority 2 --target 2027-13-01 --description "x" --parent "$KIDS" --rank 1
fails_with 1 "priority must be" -- samen --store "$M" goal add "Nieuw doel" --priority 7
fails_with 2 "a goal needs a title" -- samen --store "$M" goal add ""
unchanged "refused edits"
# a leap day is a real date
ok samen --store "$M" goal set "$KIDS" target 2028-02-29
ok samen --store "$M" goal set "$KIDS" target -
H0="$(state_hash "$M")"

step "goals that are not there, or not only one"
fails_with 1 "no goal 'deadbeef' in this plan \(give its id or its exact title\)" -- samen --store "$M" goal show deadbeef
fails_with 1 "no (goal|entity) 'Bestaat niet' in this plan" -- samen --store "$M" goal set "Bestaat niet" status bezig
fails_with 1 "no (goal|entity) .deadbeef." -- samen --store "$M" blame deadbeef
fails_with 1 "no (goal|entity) .deadbeef." -- samen --store "$M" goal rm deadbeef
fails_with 1 "has no conflict" -- samen --store "$M" resolve "$KIDS" status
ok samen --store "$M" goal add "Sporten"
ok samen --store "$M" goal add "Sporten"
H0="$(state_hash "$M")"
fails_with 1 "'Sporten' matches more than one (goal|entity)" -- samen --store "$M" goal show Sporten
fails_with 1 "'Sporten' matches more than one (goal|entity)" -- samen --store "$M" goal set Sporten status bezig
unchanged "ambiguous name"

step "--plan that matches nothing, or more than one plan"
fails_with 1 "no plan 'nope' in this store \(see samen plan list\)" -- samen --store "$M" --plan nope goal list
ok samen --store "$M" --plan "$PLAN" goal list
ok samen --store "$M" --plan Joke goal list
ok samen --store "$M" plan create --client Karin
fails_with 1 "2 plans in this store; choose one with --plan" -- samen --store "$M" goal list
ok samen --store "$M" --plan Karin goal list
expect_match "$OUT" "No goals yet" "--plan by client name"
ok samen --store "$M" --plan "${PLAN:0:8}" goal list
expect_match "$OUT" "Meer betrokken zijn bij de kinderen" "--plan by id prefix"
SAMEN_PLAN_ARGS=(--plan "$PLAN")

step "member add checks the key"
fails_with 1 "a device key is 64 hex digits" -- samen --store "$M" "${SAMEN_PLAN_ARGS[@]}" member add Kees --device 1234
fails_with 1 "a device key is 64 hex digits" -- samen --store "$M" "${SAMEN_PLAN_ARGS[@]}" member add Kees \
	--device "zz$(printf '0%.0s' {1..62})"

state_hash() { # from here on the store holds two plans
	ok samen --store "$1" --plan "$PLAN" check
	grep -qE '^state [0-9a-f]{64}$' <<<"$OUT" || die "no state hash from samen --store $1 check"
	sed -n 's/^state \([0-9a-f]\{64\}\)$/\1/p' <<<"$OUT"
}

step "damaged device keys are refused"
K="$SCEN_TMP/keytest"
cp -a "$M" "$K"
chmod 644 "$K/device.key"
fails_with 1 "device key .*device.key has mode 644; .*chmod 600" -- samen --store "$K" --plan "$PLAN" goal list
fails_with 1 "chmod 600" -- samen --store "$K" id
chmod 600 "$K/device.key"
ok samen --store "$K" --plan "$PLAN" goal list
head -c 40 "$M/device.key" >"$K/device.key"
fails_with 1 "device key .*device.key is truncated or damaged" -- samen --store "$K" --plan "$PLAN" goal list
: >"$K/device.key"
fails_with 1 "device.key is not a Samen device key" -- samen --store "$K" id
head -c 185 /dev/urandom >"$K/device.key"
fails_with 1 "device.key is not a Samen device key|damaged" -- samen --store "$K" id
rm "$K/device.key"
fails_with 1 "cannot read device key .*device.key" -- samen --store "$K" --plan "$PLAN" goal set "$KIDS" status bezig

step "bad bundles: nothing imported, plan unchanged"
ok samen --store "$M" --plan "$PLAN" goal set "$KIDS" status bezig
H0="$(state_hash "$M")"
ok samen --store "$M" --plan "$PLAN" bundle create "$SCEN_TMP/good.bundle"
head -c 4000 /dev/urandom >"$SCEN_TMP/garbage.bundle"
fails_with 1 "garbage.bundle is not a Samen bundle" -- samen --store "$M" bundle import "$SCEN_TMP/garbage.bundle"
: >"$SCEN_TMP/empty.bundle"
fails_with 1 "not a Samen bundle" -- samen --store "$M" bundle import "$SCEN_TMP/empty.bundle"
printf 'SAMENBDL' >"$SCEN_TMP/magic-only.bundle"
fails_with 1 "not a Samen bundle|truncated" -- samen --store "$M" bundle import "$SCEN_TMP/magic-only.bundle"
size="$(stat -c %s "$SCEN_TMP/good.bundle")"
for cut in 40 $((size / 2)) $((size - 1)); do
	head -c "$cut" "$SCEN_TMP/good.bundle" >"$SCEN_TMP/cut.bundle"
	fails_with 1 "truncated" -- samen --store "$M" bundle import "$SCEN_TMP/cut.bundle"
	# a fresh device must not end up with half a plan either
	rm -rf "$SCEN_TMP/fresh"
	ok samen --store "$SCEN_TMP/fresh" init --name Kees
	fails_with 1 "truncated" -- samen --store "$SCEN_TMP/fresh" bundle import "$SCEN_TMP/cut.bundle"
done
fails_with 1 "cannot open bundle .*No such file" -- samen --store "$M" bundle import "$SCEN_TMP/missing.bundle"
run samen --store "$M" --json bundle import "$SCEN_TMP/garbage.bundle"
expect_eq "$RC" 1 "--json import error exit code"
expect_eq "$(json_get ok <<<"$OUT")" false "--json import error object"
unchanged "bad bundles"
ok samen --store "$M" bundle import "$SCEN_TMP/good.bundle"
expect_match "$OUT" "Imported 0 new change\\(s\\)" "re-importing the good bundle changes nothing"
unchanged "re-import"

step "replica.db deleted: rebuilt from the history"
DB="$M/plans/$PLAN/replica.db"
[[ -f "$DB" ]] || die "no replica at $DB"
ok samen --store "$M" --plan "$PLAN" goal list
LIST0="$OUT"
rm -f "$DB" "$DB-wal" "$DB-shm"
ok samen --store "$M" --plan "$PLAN" goal list
expect_eq "$OUT" "$LIST0" "goal list after deleting the replica"
unchanged "deleted replica"

step "replica.db overwritten with garbage: set aside and rebuilt"
head -c 16384 /dev/urandom >"$DB"
rm -f "$DB-wal" "$DB-shm"
ok samen --store "$M" --plan "$PLAN" goal list
expect_eq "$OUT" "$LIST0" "goal list after garbage replica"
compgen -G "$DB.damaged-*" >/dev/null || die "the damaged replica was not set aside"
passed
unchanged "garbage replica"

step "replica.db with damaged pages inside a valid header: set aside and rebuilt"
rm -f "$DB".damaged-*
ok samen --store "$M" --plan "$PLAN" check # checkpoints the WAL into the file
pages="$(($(stat -c %s "$DB") / 4096))"
[[ $pages -ge 4 ]] || die "replica unexpectedly small ($pages pages)"
dd if=/dev/urandom of="$DB" bs=4096 seek=2 count=2 conv=notrunc status=none
rm -f "$DB-wal" "$DB-shm"
ok samen --store "$M" --plan "$PLAN" goal list
expect_eq "$OUT" "$LIST0" "goal list after damaged pages"
compgen -G "$DB.damaged-*" >/dev/null || die "the damaged replica was not set aside"
passed
unchanged "damaged pages"
ok samen --store "$M" --plan "$PLAN" check
expect_match "$OUT" "0 pending" "check is clean after recovery"
