#!/usr/bin/env bash
# scenario_peer.sh - Joke serves her plan with `samen serve` on 127.0.0.1;
# Marieke clones it over the peer protocol, both edit, they sync, and end
# with the same state; Els, who is not a member, gets nothing; `status`
# shows when each last synced with the other.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

J="$SCEN_TMP/joke" M="$SCEN_TMP/marieke" E="$SCEN_TMP/els"
SERVE_PID=""
stop_serve() {
	if [[ -n "$SERVE_PID" ]]; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
		SERVE_PID=""
	fi
}
trap 'rc=$?; stop_serve; (exit $rc); scen_cleanup' EXIT

step "Joke's plan, Marieke a member, Els not"
new_device "$J" "Joke"
new_device "$M" "Marieke"
KEY_M="$KEY"
new_device "$E" "Els"
ok samen --store "$J" --json plan create --client Joke
PLAN="$(json_get plan <<<"$OUT")"
ok samen --store "$J" goal add "Werk vinden" --area werk
ok samen --store "$J" member add "Marieke" --device "$KEY_M"

step "samen serve on a free loopback port"
fails_with 2 "timeouts are milliseconds" -- samen --store "$J" serve --idle-timeout-ms nope
fails_with 1 "not a numeric IP address" -- samen --store "$J" serve --listen localhost:0
"$SAMEN_BIN" --store "$J" serve --listen 127.0.0.1:0 >"$SCEN_TMP/serve.out" 2>"$SCEN_TMP/serve.err" &
SERVE_PID=$!
for _ in $(seq 1 100); do
	grep -q '^listening on' "$SCEN_TMP/serve.out" 2>/dev/null && break
	sleep 0.05
done
PORT="$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$SCEN_TMP/serve.out")"
[[ "$PORT" =~ ^[0-9]+$ ]] || die "serve did not say where it listens: $(cat "$SCEN_TMP/serve.out" "$SCEN_TMP/serve.err")"
URL="tcp://127.0.0.1:$PORT"

step "Marieke clones the plan by its id"
json_valid samen --store "$M" --plan "$PLAN" --json sync "$URL"
expect_eq "$(json_py '[j["ok"], j["cloned"], j["applied"], j["sent"]]' <<<"$OUT")" "[true, true, 3, 0]" "clone over the peer protocol"
expect_eq "$(state_hash "$M")" "$(state_hash "$J")" "same state after the clone"

step "both edit, one sync brings both sides level"
ok samen --store "$M" goal add "Sollicitatiebrief schrijven" --term kort
ok samen --store "$J" goal add "Fietsen" --term kort
json_valid samen --store "$M" --json sync "$URL"
expect_eq "$(json_py '[j["received"], j["sent"], j["peer_applied"], j["ahead"], j["behind"]]' <<<"$OUT")" \
	"[1, 1, 1, 0, 0]" "one change each way"
expect_eq "$(state_hash "$M")" "$(state_hash "$J")" "same state after the sync"
ok samen --store "$M" sync "$URL"
expect_match "$OUT" "received 0 changes \(0 new\), sent 0" "a second sync moves nothing"

step "status shows the peer on both sides"
ok samen --store "$M" status
expect_match "$OUT" "^peer [0-9a-f]{16} \(tcp://127\.0\.0\.1:$PORT\): last synced [0-9-]+ [0-9:]+, 0 ahead, 0 behind" "Marieke sees Joke's server"
json_valid samen --store "$J" --json status
expect_eq "$(json_py '[p["device"] for p in j["peers"]]' <<<"$OUT")" "[\"$KEY_M\"]" "Joke sees Marieke"

step "Els is refused before any plan data moves"
fails_with 1 "not a member of plan $PLAN" -- samen --store "$E" --plan "$PLAN" sync "$URL"
[[ ! -e "$E/plans/$PLAN" ]] || die "Els got a plan directory"
passed
fails_with 1 "no plan 00112233445566778899aabbccddeeff" -- samen --store "$M" --plan 00112233445566778899aabbccddeeff sync "$URL"
fails_with 2 "sync tcp://HOST:PORT" -- samen --store "$M" sync
fails_with 1 "bad port" -- samen --store "$M" sync tcp://127.0.0.1:99999

step "the server stops cleanly on SIGTERM"
stop_serve
expect_match "$(cat "$SCEN_TMP/serve.err")" "refused: device [0-9a-f]{16} is not a member" "the server logged the refusal"
fails_with 1 "cannot connect" -- samen --store "$M" sync "$URL"
