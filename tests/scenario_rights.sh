#!/usr/bin/env bash
# scenario_rights.sh - Marieke (coordinator) starts Sebastiaan's plan; the
# probation officer is added as a professional for the life area werk and can
# act only after Sebastiaan's consent is recorded, and only inside werk; his
# father, a network member, is revoked while he edits offline; a lost phone
# is unlinked; samen access and samen log show all of it.
source "$(dirname "${BASH_SOURCE[0]}")/scenario_lib.sh"

M="$SCEN_TMP/marieke" R="$SCEN_TMP/reclassering" V="$SCEN_TMP/vader" T="$SCEN_TMP/telefoon"
N="$SCEN_TMP/nieuw"
B="$SCEN_TMP/bundles"
mkdir -p "$B"

new_device "$M" "Marieke"
new_device "$R" "Ruud (reclassering)"
KEY_R="$KEY"
new_device "$V" "Vader"
KEY_V="$KEY"
new_device "$T" "Ruud telefoon"
KEY_T="$KEY"
new_device "$N" "Ruud nieuw"
KEY_N="$KEY"

step "the coordinator starts the plan and adds a professional (scope werk) and a network member"
ok samen --store "$M" plan create --client Sebastiaan
ok samen --store "$M" --json goal add "Werk vinden" --area werk
ok samen --store "$M" --json goal add "Vaker bij papa" --area familie
ok samen --store "$M" member add "Ruud (reclassering)" --device "$KEY_R" --role professional --areas werk
ok samen --store "$M" member add "Vader" --device "$KEY_V" --role vip
ok samen --store "$M" --json member list
expect_eq "$(json_py '[[m["name"], m["role"], m.get("pending_role")] for m in j]' <<<"$OUT")" \
	'[["Marieke", "coordinator", null], ["Ruud (reclassering)", "none", "professional"], ["Vader", "network", null]]' \
	"the professional waits for the client's approval"

sync_to() { # sync_to FROM TO...
	local from="$1"
	shift
	ok samen --store "$from" bundle create "$B/x.bundle"
	for to in "$@"; do ok samen --store "$to" bundle import "$B/x.bundle"; done
}
sync_to "$M" "$R" "$V"

step "before the client's consent the professional can change nothing"
fails_with 1 "waits for the client's approval" -- samen --store "$R" goal set "Werk vinden" status bezig

step "the coordinator records Sebastiaan's consent; the log says so"
ok samen --store "$M" member approve "Ruud (reclassering)" --consent
ok samen --store "$M" log -n 1
expect_match "$OUT" "TOESTEMMING VAN DE KLANT vastgelegd door de coördinator" "the consent is marked in the log"
sync_to "$M" "$R" "$V"
ok samen --store "$R" goal set "Werk vinden" status bezig
fails_with 1 "\(Ruud \(reclassering\), professional\) may not edit goal 'Vaker bij papa': life area familie is outside their scope" \
	-- samen --store "$R" goal set "Vaker bij papa" status bezig
fails_with 1 "may not add members" -- samen --store "$R" member add X --device "$KEY_T"

step "the father is revoked while he edits offline: his edit is rejected everywhere"
ok samen --store "$V" goal set "Vaker bij papa" status bezig
ok samen --store "$M" member revoke Vader
ok samen --store "$V" bundle create "$B/v.bundle"
ok samen --store "$M" bundle import "$B/v.bundle"
expect_match "$OUT" "1 rejected by the rules" "the late edit arrives after the revocation: rejected at once"
ok samen --store "$M" bundle create "$B/m.bundle"
ok samen --store "$V" bundle import "$B/m.bundle"
expect_match "$OUT" "changed the verdict of 1 earlier change" "the revocation arrives after the edit: the father's device re-judges it"
ok samen --store "$M" log -n 3
expect_match "$OUT" "REJECTED: device ${KEY_V:0:16} \(Vader, network\): the member was revoked by change" "late edit rejected"
ok samen --store "$M" goal show "Vaker bij papa"
expect_no_match "$OUT" "status +bezig" "the revoked member's late edit changed nothing"

step "the professional's phone is lost: a new device is linked, the phone unlinked"
ok samen --store "$R" device link "Ruud (reclassering)" "$KEY_N"
sync_to "$R" "$M" "$N"
ok samen --store "$N" device unlink "${KEY_R:0:12}"
sync_to "$N" "$M"
ok samen --store "$R" goal set "Werk vinden" status bereikt   # the thief, offline
sync_to "$R" "$M"
ok samen --store "$M" log -n 5
expect_match "$OUT" "REJECTED: .*was unlinked|REJECTED: .*the device was unlinked" "the lost phone's edit is rejected"
ok samen --store "$N" goal set "Werk vinden" status bereikt
sync_to "$N" "$M"

step "samen access shows members, roles, scopes and devices"
ok samen --store "$M" --json access
expect_eq "$(json_py '[[m["name"], m["role"], m["revoked"], m["areas"]] for m in j["members"]]' <<<"$OUT")" \
	'[["Sebastiaan", "client", false, ""], ["Marieke", "coordinator", false, ""], ["Ruud (reclassering)", "professional", false, "werk"], ["Vader", "network", true, ""]]' \
	"members, roles, scopes"
expect_eq "$(json_py '[[d["device"][:8], d["unlinked"], d["may_sync"]] for d in j["devices"]]' <<<"$OUT")" \
	"[[\"$(samen --store "$M" id | awk 'NR==1{print substr($1,1,8)}')\", false, true], [\"${KEY_R:0:8}\", true, false], [\"${KEY_V:0:8}\", false, false], [\"${KEY_N:0:8}\", false, true]]" \
	"devices: linked, unlinked, who may sync"
ok samen --store "$M" access
expect_match "$OUT" "last synced with this device unknown \(no sync log\)" "the sync-log hook says what it knows"

step "every replica that holds everything agrees"
sync_to "$M" "$R" "$V" "$N"
H="$(state_hash "$M")"
for d in "$R" "$V" "$N"; do expect_eq "$(state_hash "$d")" "$H" "same state on $d"; done
ok samen --store "$M" rebuild
expect_eq "$(state_hash "$M")" "$H" "a rebuild gives the same state"


step "an observer reads along; status says whose device it is and what the role allows"
O="$SCEN_TMP/oma"
new_device "$O" "Oma"
ok samen --store "$M" member add Oma --device "$KEY" --role observer
sync_to "$M" "$O"
ok samen --store "$O" status
expect_match "$OUT" "^this device \([0-9a-f]{16}\) belongs to Oma, observer: reads, does not edit$" \
	"status names the observer's role"
ok samen --store "$M" status
expect_match "$OUT" "^this device \([0-9a-f]{16}\) belongs to Marieke, coordinator$" "and the coordinator's"
fails_with 1 "observer" -- samen --store "$O" goal set "Werk vinden" status bezig
