#!/usr/bin/env bash
# scenario_remote_hostile.sh - a git remote that lies. Refs under the plan's
# namespace that point at a commit that is not a change, at a huge blob, at a
# huge commit, at a blob instead of a commit, a ref name that is no key, a
# device ref naming one device with another's commit, a genuine change of
# another plan, a genuine change in a commit that is not the one Samen
# builds, and a fork of a device's chain. Each is reported (ref, commit, why), nothing of
# it is adopted, and the good changes the remote also holds are adopted.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

command -v git >/dev/null || die "git is needed for this scenario (apt-get install git)"

A="$SCEN_TMP/anna" V="$SCEN_TMP/victim"
GOOD="$SCEN_TMP/good.git" EVIL="$SCEN_TMP/evil.git"
git init -q --bare "$GOOD"

step "Anna's plan on a good remote; the victim clones it"
new_device "$A" "Anna"
KEY_A="$KEY"
new_device "$V" "Vera"
KEY_V="$KEY"
ok samen --store "$A" --json plan create --client Anna
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$A" --json goal add "Werk vinden"
GOAL="$(json_get id <<<"$OUT")"
ok samen --store "$A" member add Vera --device "$KEY_V"
ok samen --store "$A" remote add good "$GOOD"
ok samen --store "$A" push good
ok samen --store "$V" plan clone "$GOOD"
ok samen --store "$V" remote add evil "$EVIL"
H_BEFORE="$(state_hash "$V")"
NS="refs/samen/plans/$PLAN/devices"
AHIST="$A/plans/$PLAN/history.git"
VHIST="$V/plans/$PLAN/history.git"

# The evil remote starts as a copy of the good one; everything below is
# written with git's own plumbing, as an attacker would.
cp -a "$GOOD" "$EVIL"
eg() { git --git-dir "$EVIL" "$@"; }
fake_key() { printf '%064d' "$1"; }
export GIT_AUTHOR_NAME=x GIT_AUTHOR_EMAIL=x GIT_COMMITTER_NAME=x GIT_COMMITTER_EMAIL=x

step "a commit that is not a change"
EMPTY_TREE="$(eg mktree </dev/null)"
JUNK="$(eg commit-tree "$EMPTY_TREE" -m "not a change")"
eg update-ref "$NS/$(fake_key 1)" "$JUNK"

step "a change blob far over the cap (5 MiB; the cap is 4 MiB)"
BIG="$(head -c 5242880 /dev/zero | eg hash-object -w --stdin)"
SIG="$(head -c 64 /dev/zero | eg hash-object -w --stdin)"
BIGTREE="$(printf '100644 blob %s\tchange\n100644 blob %s\tsig\n' "$BIG" "$SIG" | eg mktree)"
BIGC="$(eg commit-tree "$BIGTREE" -m huge)"
eg update-ref "$NS/$(fake_key 2)" "$BIGC"

step "a commit object of 2 MiB (its message)"
head -c 2097152 /dev/zero | tr '\0' x >"$SCEN_TMP/long-message"
HUGEC="$(eg commit-tree "$EMPTY_TREE" -F "$SCEN_TMP/long-message")"
eg update-ref "$NS/$(fake_key 4)" "$HUGEC"

step "a ref that points at a blob"
eg update-ref "$NS/$(fake_key 3)" "$SIG"

step "a ref name that is no device key"
eg update-ref "$NS/not-a-key" "$JUNK"

step "a forged device ref: named after Vera, holding Anna's commit"
eg update-ref "$NS/$KEY_V" "$(git --git-dir "$AHIST" rev-parse "refs/samen/devices/$KEY_A")"

step "two new changes by Anna; the newer one in a commit that is not the one Samen builds"
ok samen --store "$A" goal set "$GOAL" status bezig
ok samen --store "$A" goal set "$GOAL" priority 2
eg fetch -q "$AHIST" "refs/samen/devices/$KEY_A:refs/tmp/anna"
REAL="$(eg rev-parse refs/tmp/anna)"
TAMPERED="$(eg cat-file commit "$REAL" | sed '/^committer /{n;n;s/^/Eerlijk: /}' | eg hash-object -t commit -w --stdin)"
[[ "$TAMPERED" != "$REAL" ]] || die "the tampered commit should differ"
eg update-ref "$NS/$KEY_A" "$TAMPERED"
eg update-ref -d refs/tmp/anna

step "a genuine change of another plan, under this plan's namespace"
new_device "$SCEN_TMP/carla" "Carla"
KEY_C="$KEY"
ok samen --store "$SCEN_TMP/carla" --json plan create --client Someone-else
OTHER="$(json_get plan <<<"$OUT")"
eg fetch -q "$SCEN_TMP/carla/plans/$OTHER/history.git" "refs/samen/devices/$KEY_C:$NS/$KEY_C"

step "the victim pulls from the evil remote"
fails_with 1 "refused" -- samen --store "$V" pull evil
expect_match "$ERR" "$NS/$(fake_key 1) at ${JUNK:0:12}: not a Samen change commit: commit $JUNK: tree has 0 entries" \
	"the non-change commit is named with its ref and commit"
expect_match "$ERR" "$NS/$(fake_key 2) at ${BIGC:0:12}: not a Samen change commit: .*is 5242880 bytes, more than the limit" \
	"the huge blob is refused from its header"
expect_match "$ERR" "$NS/$(fake_key 4) at ${HUGEC:0:12}: not a Samen change commit: commit $HUGEC: commit is 20[0-9]+ bytes, more than the limit" \
	"a huge commit is refused from its header"
expect_match "$ERR" "$NS/$(fake_key 3) at ${SIG:0:12}: the ref points at a blob, not a commit" "the ref to a blob"
expect_match "$ERR" "$NS/not-a-key.*not refs/samen/plans/PLAN/devices/<64 hex" "the ref name that is no key"
expect_match "$ERR" "$NS/$KEY_V at .*forged device ref: the ref names device ${KEY_V:0:16} but its commit is a change by device ${KEY_A:0:16}" \
	"the forged device ref"
expect_match "$ERR" "$NS/$KEY_A at ${TAMPERED:0:12}: not the commit Samen builds from the change it holds \\(that is $REAL\\)" \
	"the tampered commit"
expect_match "$ERR" "$NS/$KEY_C at [0-9a-f]{12}: the change belongs to another plan \\($OTHER\\), not to $PLAN" "another plan's change"
expect_match "$OUT" "Pulled from evil: 1 new changes" "the good change under the tampered one is adopted"
ok samen --store "$V" --json goal show "$GOAL"
expect_eq "$(json_py '[j["status"], j["priority"]]' <<<"$OUT")" '["bezig", null]' \
	"status from the genuine change, nothing from the tampered one"
run samen --store "$V" --json pull evil
expect_eq "$RC" 1 "--json pull with refusals exits 1"
expect_eq "$(json_py '[j["ok"], len(j["refused"]), " ".join(sorted(set(r["ref"].rsplit("/", 1)[1][:8] for r in j["refused"])))]' <<<"$OUT")" \
	"[false, 8, \"$(printf '%s\n' 00000000 "${KEY_A:0:8}" "${KEY_V:0:8}" "${KEY_C:0:8}" not-a-ke | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')\"]" \
	"--json lists every refusal"
expect_eq "$(git --git-dir "$VHIST" rev-parse "refs/samen/devices/$KEY_A")" "$(git --git-dir "$AHIST" rev-parse "refs/samen/devices/$KEY_A~1")" \
	"Anna's device ref moved to the genuine change only"
expect_eq "$(git --git-dir "$VHIST" for-each-ref --format="%(refname)" refs/samen/devices | wc -l)" 1 \
	"only Anna has a device ref: none was made for the fake keys or the forged ref"
ok samen --store "$V" check
ok git --git-dir "$VHIST" fsck --strict --no-dangling

step "the genuine commit from the good remote is adopted"
ok samen --store "$A" push good
ok samen --store "$V" --json remote add good2 "$GOOD"
ok samen --store "$V" --json pull good2
expect_eq "$(json_py '[j["applied"], j["refused"]]' <<<"$OUT")" "[1, []]" "the real newest change arrives"
expect_eq "$(state_hash "$V")" "$(state_hash "$A")" "the victim now equals Anna"

step "a fork of Anna's chain: another change with the same number"
cp -a "$A" "$SCEN_TMP/anna-clone"
ok samen --store "$A" goal set "$GOAL" term kort
ok samen --store "$A" push good
ok samen --store "$V" pull good2
H_GOOD="$(state_hash "$V")"
ok samen --store "$SCEN_TMP/anna-clone" goal set "$GOAL" term lang
eg fetch -q "$SCEN_TMP/anna-clone/plans/$PLAN/history.git" "+refs/samen/devices/$KEY_A:$NS/$KEY_A"
run samen --store "$V" pull evil
expect_eq "$RC" 1 "the hostile refs still fail the pull"
if grep -q "$NS/$KEY_A" <<<"$ERR"; then die "the fork's ref was refused: $ERR"; fi
passed
ok samen --store "$V" --json status
expect_eq "$(json_get equivocations <<<"$OUT")" 1 "the fork is kept as proof: Anna's device equivocated"
expect_ne "$(state_hash "$V")" "$H_GOOD" "the fork voids what Anna's device wrote from there on"
ok samen --store "$V" --json goal show "$GOAL"
expect_eq "$(json_py 'j.get("term")' <<<"$OUT")" "null" "neither branch stands: no term"
ok samen --store "$V" --json log "$GOAL"
expect_eq "$(json_py '[e["verdict"] for e in j if "equivocation" in (e.get("reason") or "")]' <<<"$OUT")" \
	'["rejected", "rejected"]' "both changes numbered alike are rejected, with the reason"
ok samen --store "$V" check

step "an unreachable git daemon is an error, not a hang"
ok samen --store "$V" remote add closed "git://127.0.0.1:1/none.git"
fails_with 1 "cannot fetch from remote 'closed'" -- samen --store "$V" pull closed
# (push to it is not run here: libgit2 1.5 leaks its git:// stream when the
# connection for a push fails, which the sanitizer build reports)
