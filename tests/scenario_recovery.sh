#!/usr/bin/env bash
# scenario_recovery.sh - cases a review found: a clone of an English plan
# writes the same commits as the original; a change whose dependency is
# reachable only through another device's change is recovered after a crash
# between two ref moves; terminal control characters are refused.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

A="$SCEN_TMP/alice"
C="$SCEN_TMP/carol"
B="$SCEN_TMP/bundles"
mkdir -p "$B"

step "a clone of an English plan builds the very same commits"
new_device "$A" "Alice"
new_device "$C" "Carol"
KC="$KEY"
ok samen --store "$A" --json plan create --client "Jan" --lang en
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$A" goal add "Find work" --priority 2
ok samen --store "$A" member add Carol --device "$KC"
ok samen --store "$A" bundle create "$B/all.samen"
ok samen --store "$C" bundle import "$B/all.samen"
GA="$A/plans/$PLAN/history.git"
GC="$C/plans/$PLAN/history.git"
expect_eq "$(git --git-dir "$GC" log --all --format=%H | sort)" "$(git --git-dir "$GA" log --all --format=%H | sort)" \
	"the clone has the creator's commit ids"
ok git --git-dir "$GC" log --all --format=%s
expect_match "$OUT" "created goal 'Find work'" "English summaries in the clone"
expect_no_match "$OUT" "aangemaakt" "no Dutch summary in an English plan"

step "recovery follows dependencies, not only each device's own chain"
ok samen --store "$C" --json goal add "Carol's goal"
G="$(json_get id <<<"$OUT")"
DB="$A/plans/$PLAN/replica.db"
ok samen --store "$A" check              # checkpoint, then keep the replica as it is now
cp "$DB" "$SCEN_TMP/replica-before.db"
ok samen --store "$C" bundle create "$B/carol.samen" --since "$(samen --store "$A" vv)"
ok samen --store "$A" bundle import "$B/carol.samen"
ok samen --store "$A" goal set "$G" status bezig   # Alice's change depends on Carol's
H="$(state_hash "$A")"
# a crash that lost the replica's last transactions and Carol's ref move:
ok git --git-dir "$GA" update-ref -d "refs/samen/devices/$KC"
rm -f "$DB-wal" "$DB-shm"
cp "$SCEN_TMP/replica-before.db" "$DB"
expect_eq "$(state_hash "$A")" "$H" "recovered state equals the state before the crash"
ok samen --store "$A" --json status
expect_eq "$(json_get pending <<<"$OUT")" 0 "nothing left waiting"
ok git --git-dir "$GA" rev-parse "refs/samen/devices/$KC"
ok samen --store "$A" rebuild
expect_match "$OUT" "state $H" "rebuild agrees"

step "terminal control characters are refused"
ESC=$'\e'
H="$(state_hash "$A")"
fails_with 1 "control characters" -- samen --store "$A" goal add "Red${ESC}[31m title"
fails_with 1 "control characters" -- samen --store "$A" goal set "$G" title "x${ESC}]0;pwned"
fails_with 1 "control characters" -- samen --store "$A" member add "Eve${ESC}[2J" --device "$KC"
expect_eq "$(state_hash "$A")" "$H" "refused inputs changed nothing"
ok samen --store "$A" goal set "$G" description "two lines
and a	tab are fine"
ok samen --store "$A" --json goal show "$G"
expect_eq "$(json_get description <<<"$OUT")" "two lines
and a	tab are fine" "new lines and tabs are kept in a description"

