#!/usr/bin/env bash
# scenario_remote.sh - Joke, Marieke and Kees keep Joke's plan in sync through
# two ordinary git servers: a bare repository on disk (a path) and `git
# daemon` on 127.0.0.1 (git://). Each edits offline, then they sync in a
# random order of (device, server) pairs; all end with the same state hash
# and the conflict they made. Also: plan clone from a URL, remote add / list /
# remove, status per remote, fast-forward-only push, usage and errors.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

command -v git >/dev/null || die "git is needed for this scenario (apt-get install git)"

J="$SCEN_TMP/joke" M="$SCEN_TMP/marieke" K="$SCEN_TMP/kees"
SRV="$SCEN_TMP/servers"
mkdir -p "$SRV"
git init -q --bare "$SRV/disk.git"
git init -q --bare "$SRV/served.git"

# --- git daemon on a free port, killed at the end whatever happens ---------
DAEMON_PID=""
stop_daemon() {
	if [[ -n "$DAEMON_PID" ]]; then
		kill "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=""
	fi
}
trap 'rc=$?; stop_daemon; (exit $rc); scen_cleanup' EXIT

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_daemon() {
	local tries port
	for tries in 1 2 3 4 5; do
		port="$(free_port)"
		git daemon --listen=127.0.0.1 --port="$port" --base-path="$SRV" --export-all \
			--enable=receive-pack --reuseaddr "$SRV" >"$SCEN_TMP/daemon.log" 2>&1 &
		DAEMON_PID=$!
		for _ in $(seq 1 100); do # at most ~5 s
			if python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()' \
				"$port" 2>/dev/null; then
				DAEMON_URL="git://127.0.0.1:$port/served.git"
				return 0
			fi
			kill -0 "$DAEMON_PID" 2>/dev/null || break # lost the port race: try another
			sleep 0.05
		done
		stop_daemon
	done
	die "git daemon did not start: $(cat "$SCEN_TMP/daemon.log")"
}
start_daemon
DISK_URL="$SRV/disk.git"

step "Joke starts her plan, adds Marieke and Kees, and pushes to both servers"
new_device "$J" "Joke"
new_device "$M" "Marieke"
KEY_M="$KEY"
new_device "$K" "Kees"
KEY_K="$KEY"
ok samen --store "$J" --json plan create --client Joke
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$J" --json goal add "Meer betrokken zijn bij de kinderen" --priority 1
KIDS="$(json_get id <<<"$OUT")"
ok samen --store "$J" --json goal add "Weer vriendinnen zien" --priority 3
FRIENDS="$(json_get id <<<"$OUT")"
ok samen --store "$J" member add Marieke --device "$KEY_M"
ok samen --store "$J" member add Kees --device "$KEY_K"

json_valid samen --store "$J" --json remote list
expect_eq "$OUT" "[]" "no remotes yet"
ok samen --store "$J" remote add disk "$DISK_URL"
ok samen --store "$J" remote add served "$DAEMON_URL"
fails_with 1 "already has a remote 'disk'" -- samen --store "$J" remote add disk "$DISK_URL"
fails_with 1 "remote name" -- samen --store "$J" remote add "../x" "$DISK_URL"
fails_with 1 "remote name" -- samen --store "$J" remote add "a b" "$DISK_URL"
json_valid samen --store "$J" --json remote list
expect_eq "$(json_py '[(r["name"], r["url"], r["ahead"], r["behind"]) for r in j]' <<<"$OUT")" \
	"[[\"disk\", \"$DISK_URL\", 5, 0], [\"served\", \"$DAEMON_URL\", 5, 0]]" "both remotes, 5 changes to push to each"

json_valid samen --store "$J" --json push disk
expect_eq "$(json_py '[j["ok"], j["pushed"], j["refused"]]' <<<"$OUT")" "[true, 1, []]" "push to the bare repository"
json_valid samen --store "$J" --json sync served
expect_eq "$(json_py '[j["ok"], j["applied"], j["pushed"]]' <<<"$OUT")" "[true, 0, 1]" "sync with git daemon pushes"
REF="refs/samen/plans/$PLAN/devices/$(samen --store "$J" --json id | json_get device)"
expect_eq "$(git --git-dir "$SRV/disk.git" for-each-ref --format='%(refname)')" "$REF" \
	"the server holds one device ref under the plan's namespace"
json_valid samen --store "$J" --json status
expect_eq "$(json_py '[(r["name"], r["ahead"], r["behind"], r["last_push"] > 0) for r in j["remotes"]]' <<<"$OUT")" \
	'[["disk", 0, 0, true], ["served", 0, 0, true]]' "status: nothing to push after pushing"

step "Marieke starts from a file path, Kees from the git:// URL"
json_valid samen --store "$M" --json plan clone "$DISK_URL" --remote disk
expect_eq "$(json_py '[j["ok"], j["plan"], j["applied"]]' <<<"$OUT")" "[true, \"$PLAN\", 5]" "clone from the bare repo"
ok samen --store "$M" remote add served "$DAEMON_URL"
ok samen --store "$M" pull served
json_valid samen --store "$K" --json plan clone "$DAEMON_URL" "${PLAN:0:8}" --remote served
expect_eq "$(json_py '[j["ok"], j["plan"], j["applied"], j["received_bytes"] > 0]' <<<"$OUT")" \
	"[true, \"$PLAN\", 5, true]" "clone over git daemon, by plan id prefix"
ok samen --store "$K" remote add disk "$DISK_URL"
ok samen --store "$K" --json status
expect_eq "$(json_py '[(r["name"], r["ahead"]) for r in j["remotes"]]' <<<"$OUT")" '[["disk", 5], ["served", 0]]' \
	"a remote never fetched from: everything counts as ahead"
ok samen --store "$K" pull disk
fails_with 1 "already in this store" -- samen --store "$K" plan clone "$DISK_URL"
fails_with 1 "holds no plan 'ffff'" -- samen --store "$M" plan clone "$DISK_URL" ffff
H0="$(state_hash "$J")"
expect_eq "$(state_hash "$M")" "$H0" "Marieke has Joke's plan"
expect_eq "$(state_hash "$K")" "$H0" "Kees has Joke's plan"

step "everyone edits offline; the same field three ways makes a conflict"
ok samen --store "$J" goal set "$KIDS" status bezig
ok samen --store "$J" goal add "Elke dag samen ontbijten" --parent "$KIDS"
ok samen --store "$M" goal set "$KIDS" status bijgesteld target 2027-06-30
ok samen --store "$M" goal set "$FRIENDS" priority 2
ok samen --store "$K" goal set "$KIDS" status bereikt
ok samen --store "$K" goal add "Samen wandelen op zondag"
json_valid samen --store "$K" --json status
expect_eq "$(json_py '[(r["name"], r["ahead"]) for r in j["remotes"]]' <<<"$OUT")" '[["disk", 2], ["served", 2]]' \
	"status: Kees has two changes to push to each server"

step "random pairings of device and server (seed ${SAMEN_SEED:=4242})"
RANDOM=$SAMEN_SEED
DEVS=("$J" "$M" "$K")
REMS=(disk served)
for round in 1 2 3 4 5 6; do
	d="${DEVS[RANDOM % 3]}"
	r="${REMS[RANDOM % 2]}"
	echo "  sync $(basename "$d") with $r"
	ok samen --store "$d" --json sync "$r"
	expect_eq "$(json_py 'j["refused"]' <<<"$OUT")" "[]" "nothing refused when syncing $(basename "$d") with $r"
done
# then everyone with both servers, twice, so every change reaches everyone
for pass in 1 2; do
	for d in "$J" "$M" "$K"; do
		for r in disk served; do
			ok samen --store "$d" sync "$r"
		done
	done
done
H="$(state_hash "$J")"
expect_eq "$(state_hash "$M")" "$H" "Marieke ends with Joke's state"
expect_eq "$(state_hash "$K")" "$H" "Kees ends with Joke's state"
for d in "$J" "$M" "$K"; do
	ok samen --store "$d" --json conflicts
	expect_eq "$(json_py 'sorted(v["value"] for v in j if v["field"] == "status")' <<<"$OUT")" \
		'["bereikt", "bezig", "bijgesteld"]' "the status conflict shows all three values on $(basename "$d")"
	ok samen --store "$d" --json status
	expect_eq "$(json_py '[(r["ahead"], r["behind"], r["diverged"]) for r in j["remotes"]]' <<<"$OUT")" \
		'[[0, 0, 0], [0, 0, 0]]' "status of $(basename "$d"): in step with both servers"
done
ok samen --store "$J" status
expect_match "$OUT" "remotes:" "status lists the remotes"
expect_match "$OUT" "served  git://127.0.0.1" "status shows the git daemon URL"
ok git --git-dir "$SRV/disk.git" fsck --strict
ok git --git-dir "$SRV/served.git" fsck --strict

step "settling the conflict travels too"
ok samen --store "$M" resolve "$KIDS" status bezig
ok samen --store "$M" sync served
ok samen --store "$K" sync served
ok samen --store "$K" sync disk
ok samen --store "$J" pull disk
H="$(state_hash "$J")"
expect_eq "$(state_hash "$K")" "$H" "Kees and Joke agree after the resolution"
expect_eq "$(samen --store "$J" --json conflicts)" "[]" "no conflict left at Joke's"

step "push only fast-forwards: a device whose chain forked is refused, the others still go"
cp -a "$K" "$SCEN_TMP/kees-backup"
ok samen --store "$K" goal set "$FRIENDS" priority 4
ok samen --store "$K" push disk
# the restored backup signs another change with the same number
ok samen --store "$SCEN_TMP/kees-backup" goal set "$FRIENDS" priority 5
ok samen --store "$SCEN_TMP/kees-backup" goal add "Fietsen"
fails_with 1 "not pulled yet" -- samen --store "$SCEN_TMP/kees-backup" push disk
expect_match "$(git --git-dir "$SRV/disk.git" log -1 --format=%s "refs/samen/plans/$PLAN/devices/$KEY_K")" \
	"prioriteit|priority" "the remote keeps the first chain"
ok samen --store "$SCEN_TMP/kees-backup" --json status
expect_eq "$(json_py '[r["diverged"] for r in j["remotes"] if r["name"] == "disk"]' <<<"$OUT")" "[0]" \
	"before a pull the backup cannot know"
ok samen --store "$SCEN_TMP/kees-backup" pull disk
ok samen --store "$SCEN_TMP/kees-backup" --json status
expect_eq "$(json_py '[r["diverged"] for r in j["remotes"] if r["name"] == "disk"]' <<<"$OUT")" "[1]" \
	"after the pull, status shows the fork"
expect_eq "$(json_get equivocations <<<"$OUT")" 1 "and that Kees's device signed two changes with one number"
fails_with 1 "forks from ours" -- samen --store "$SCEN_TMP/kees-backup" push disk
fails_with 1 "signed two different changes numbered .*samen device link" -- \
	samen --store "$SCEN_TMP/kees-backup" goal set "$FRIENDS" priority 3

step "a ref update the server refuses is reported; the other refs still move"
printf '#!/bin/sh\ncase "$1" in\n*%s) echo "no pushes for Kees here" >&2; exit 1 ;;\nesac\nexit 0\n' "$KEY_K" \
	>"$SRV/served.git/hooks/update"
chmod +x "$SRV/served.git/hooks/update"
ok samen --store "$K" goal set "$FRIENDS" priority 1
ok samen --store "$K" push disk
ok samen --store "$J" pull disk
ok samen --store "$J" goal set "$KIDS" priority 2
run samen --store "$J" --json push served
expect_eq "$RC" 1 "a refused ref makes push exit 1"
expect_eq "$(json_py '[j["ok"], j["pushed"], [(r["ref"].endswith("'"$KEY_K"'"), "refused" in r["reason"]) for r in j["refused"]]]' <<<"$OUT")" \
	"[false, 1, [[true, true]]]" "Kees's ref is refused by the server, Joke's moved"
KEY_J="$(samen --store "$J" --json id | json_get device)"
expect_eq "$(git --git-dir "$SRV/served.git" rev-parse "refs/samen/plans/$PLAN/devices/$KEY_J")" \
	"$(git --git-dir "$J/plans/$PLAN/history.git" rev-parse "refs/samen/devices/$KEY_J")" "Joke's ref reached the server"
rm "$SRV/served.git/hooks/update"
ok samen --store "$J" --json push served
expect_eq "$(json_py '[j["pushed"], j["refused"]]' <<<"$OUT")" "[1, []]" "without the hook, Kees's ref goes too"

step "a URL template: one repository per plan on one server"
mkdir -p "$SRV/plans"
git init -q --bare "$SRV/plans/$PLAN.git"
TEMPLATE="${DAEMON_URL%/served.git}/plans/{plan}.git"
ok samen --store "$J" remote add perplan "$TEMPLATE"
ok samen --store "$J" --json remote list
expect_eq "$(json_py '[r["url"] for r in j if r["name"] == "perplan"]' <<<"$OUT")" \
	"[\"${DAEMON_URL%/served.git}/plans/$PLAN.git\"]" "{plan} is replaced by the plan id"
ok samen --store "$J" push perplan
new_device "$SCEN_TMP/els" "Els"
fails_with 1 "needs the whole plan id" -- samen --store "$SCEN_TMP/els" plan clone "$TEMPLATE" "${PLAN:0:8}"
json_valid samen --store "$SCEN_TMP/els" --json plan clone "$TEMPLATE" "$PLAN"
expect_eq "$(state_hash "$SCEN_TMP/els")" "$(state_hash "$J")" "a clone through the template has Joke's plan"

step "errors say what was wrong"
fails_with 2 "pull NAME" -- samen --store "$J" pull
fails_with 2 "push NAME" -- samen --store "$J" push a b
fails_with 2 "remote add NAME URL" -- samen --store "$J" remote add onlyname
fails_with 2 "remote: add, list or remove" -- samen --store "$J" remote frob
fails_with 1 "no remote 'nowhere'" -- samen --store "$J" pull nowhere
ok samen --store "$J" remote add gone "$SRV/does-not-exist.git"
fails_with 1 "cannot fetch from remote 'gone'" -- samen --store "$J" pull gone
run samen --store "$J" --json pull gone
expect_eq "$RC" 1 "--json pull of a missing repository exits 1"
expect_eq "$(json_py '[j["ok"], "gone" in j["error"]]' <<<"$OUT")" "[false, true]" "--json error names the remote"
ok samen --store "$J" remote remove gone
fails_with 1 "no remote 'gone'" -- samen --store "$J" remote remove gone
expect_eq "$(git --git-dir "$J/plans/$PLAN/history.git" for-each-ref --format=x 'refs/samen/quarantine/gone/' | wc -l)" 0 \
	"removing a remote drops its quarantine refs"

step "after the fork, Kees goes on with a new device that Joke links"
# the fork reaches Joke through a bundle from the backup (a git remote holds
# one ref per device and cannot carry it)
ok samen --store "$SCEN_TMP/kees-backup" bundle create "$SCEN_TMP/backup.bundle"
ok samen --store "$J" pull disk
ok samen --store "$J" bundle import "$SCEN_TMP/backup.bundle"
ok samen --store "$J" --json status
expect_eq "$(json_get equivocations <<<"$OUT")" 1 "Joke's plan knows Kees's device equivocated"
new_device "$SCEN_TMP/kees-new" "Nieuwe laptop van Kees"
KEY_K2="$KEY"
ok samen --store "$J" device link Kees "$KEY_K2"
ok samen --store "$J" push disk
json_valid samen --store "$SCEN_TMP/kees-new" --json plan clone "$DISK_URL" --remote disk
ok samen --store "$SCEN_TMP/kees-new" bundle import "$SCEN_TMP/backup.bundle"
ok samen --store "$SCEN_TMP/kees-new" goal set "$FRIENDS" priority 2
ok samen --store "$SCEN_TMP/kees-new" push disk
ok samen --store "$J" pull disk
ok samen --store "$J" --json goal show "$FRIENDS"
expect_eq "$(json_py 'j["priority"]' <<<"$OUT")" 2 "Kees's new device writes, and Joke accepts it"
expect_eq "$(state_hash "$J")" "$(state_hash "$SCEN_TMP/kees-new")" "both hold the same plan"
ok samen --store "$J" check
