#!/usr/bin/env bash
# demo.sh - Samen in a few seconds: three devices keep Joke's samenwerkingsplan
# (collaboration plan), edit it offline and swap bundles as if by USB stick.
#
#   scripts/demo.sh                 uses ./build/samen
#   SAMEN_BIN=/path/to/samen scripts/demo.sh
#
# Everything happens in a temporary directory that is removed at the end.
set -euo pipefail

SAMEN_BIN="${SAMEN_BIN:-./build/samen}"
if [[ ! -x "$SAMEN_BIN" ]]; then
	# also work when started from another directory
	alt="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/samen"
	if [[ -x "$alt" ]]; then
		SAMEN_BIN="$alt"
	else
		echo "demo: no samen binary at $SAMEN_BIN; build first (cmake -S . -B build && cmake --build build)" >&2
		echo "      or set SAMEN_BIN" >&2
		exit 1
	fi
fi
# the demo works inside its temporary directory, so make the path absolute
SAMEN_BIN="$(cd "$(dirname "$SAMEN_BIN")" && pwd)/$(basename "$SAMEN_BIN")"

DEMO="$(mktemp -d "${TMPDIR:-/tmp}/samen-demo.XXXXXX")"
trap 'cd / && rm -rf -- "$DEMO"' EXIT
unset SAMEN_HOME
export XDG_DATA_HOME="$DEMO/xdg"
cd "$DEMO"
mkdir usb-stick

if [[ -t 1 ]]; then
	B=$'\e[1m' D=$'\e[2m' N=$'\e[0m'
else
	B="" D="" N=""
fi

heading() { printf '\n%s== %s%s\n' "$B" "$*" "$N"; }
say() { printf '%s%s%s\n' "$D" "$*" "$N"; }

# Quote an argument the way a person would type it.
shq() {
	if [[ "$1" =~ ^[A-Za-z0-9_./:=@,+-]+$ ]]; then
		printf '%s' "$1"
	else
		local a="${1//\\/\\\\}"
		a="${a//\"/\\\"}"
		a="${a//\$/\\\$}"
		a="${a//\`/\\\`}"
		printf '"%s"' "$a"
	fi
}

# on DEVICE ARGS...: run samen on that device's store (a directory named after
# the device), showing the command first
on() {
	local dev="$1" a
	shift
	printf '%s[%s]$ samen' "$D" "$dev"
	for a in "$@"; do
		printf ' %s' "$(shq "$a")"
	done
	printf '%s\n' "$N"
	"$SAMEN_BIN" --store "$dev" "$@"
}
# quiet: the same without showing the command (for values the script needs)
quiet() {
	local dev="$1"
	shift
	"$SAMEN_BIN" --store "$dev" "$@"
}

# send FROM TO NAME: an incremental bundle with what TO does not have yet
send() {
	local from="$1" to="$2" file="usb-stick/$3.samen"
	printf '%s[%s]$ samen bundle create %s --since "$(samen --store %s vv)"%s\n' "$D" "$from" "$file" "$to" "$N"
	"$SAMEN_BIN" --store "$from" bundle create "$file" --since "$(quiet "$to" vv)"
	on "$to" bundle import "$file"
}

heading "1. Three devices, each with its own key (samen init)"
say "   Marieke is the support worker (coördinator), Joke the client (klant), Kees her husband."
on marieke init --name "Marieke (coördinator)"
on joke init --name "Joke"
on kees init --name "Kees"

heading "2. Marieke starts Joke's samenwerkingsplan and writes down Joke's goals (doelen)"
on marieke plan create --client Joke
on marieke goal add "Meer betrokken zijn bij de kinderen" --area familie --term lang --priority 1 \
	--target 2027-06-30 --description "Joke wil weer meetellen thuis: samen eten, huiswerk, uitjes."
on marieke goal add "Een betere band met Kees" --area partner --term lang --priority 2
on marieke goal add "Weer vriendinnen zien" --area vriendschap --term middellang --priority 3
on marieke goal add "Iets betekenen voor anderen" --area werk --term lang --priority 4 \
	--description "Vrijwilligerswerk, bijvoorbeeld bij de voedselbank."
on marieke goal add "Twee keer per week helpen met huiswerk" --parent "Meer betrokken zijn bij de kinderen" \
	--term kort --target 2026-12-31

heading "3. Joke and Kees become members (leden) of the plan"
say "   Each device shows its public key with samen id; Marieke adds them."
on marieke member add "Joke" --device "$(quiet joke id | awk 'NR==1{print $1}')"
on marieke member add "Kees" --device "$(quiet kees id | awk 'NR==1{print $1}')"
on marieke member list

heading "4. The whole plan goes to Joke and Kees on a USB stick (bundle)"
on marieke bundle create usb-stick/plan-joke.samen
on joke bundle import usb-stick/plan-joke.samen
on kees bundle import usb-stick/plan-joke.samen

heading "5. Everyone edits offline, at the same time"
say "   Joke adds a sub-goal (subdoel) and says she is working on the goal about the children:"
on joke goal add "Elke woensdag koffie drinken met Sanne" --parent "Weer vriendinnen zien" --term kort
on joke goal set "Meer betrokken zijn bij de kinderen" status bezig
say "   Kees thinks the same goal needs adjusting (bijgesteld), and adds one of his own:"
on kees goal set "Meer betrokken zijn bij de kinderen" status bijgesteld
on kees goal add "Op zondag samen wandelen" --parent "Een betere band met Kees" --term kort --priority 1
say "   Marieke, after the support-group meeting (steungroep), moves a target date (streefdatum):"
on marieke goal set "Iets betekenen voor anderen" target 2027-03-01 status open

heading "6. Exchanging bundles: only what the other side is missing (--since its vv)"
say "   The receiver's version vector (samen vv) says which changes it has; the sender"
say "   writes only the rest. Joke and Kees each send theirs to Marieke, she sends all back."
send joke marieke joke-to-marieke
send kees marieke kees-to-marieke
send marieke joke marieke-to-joke
send marieke kees marieke-to-kees

heading "7. The merged goal tree (samen goal list), the same on every device"
on joke goal list

heading "8. The history (samen log): who changed what, when"
on kees log -n 8

heading "9. A visible conflict (samen conflicts)"
say "   Joke and Kees set the same status without seeing each other's change. Samen keeps both"
say "   values; every device shows the same one (*) until someone settles it."
on marieke conflicts

heading "10. Joke settles it (samen resolve): de regie ligt bij de klant"
on joke resolve "Meer betrokken zijn bij de kinderen" status bezig
send joke marieke resolve-to-marieke
send joke kees resolve-to-kees
on kees conflicts

heading "11. Who set each field of the goal (samen blame)"
on marieke blame "Meer betrokken zijn bij de kinderen"

heading "12. Every device holds the same plan (samen check prints the state hash)"
hashes=()
for dev in marieke joke kees; do
	on "$dev" check
	hashes+=("$(quiet "$dev" check | awk '$1 == "state" {print $2}')")
done
if [[ "${hashes[0]}" == "${hashes[1]}" && "${hashes[1]}" == "${hashes[2]}" ]]; then
	printf '\n%sAll three devices agree: state %s%s\n' "$B" "${hashes[0]}" "$N"
else
	printf '\nThe devices disagree: %s\n' "${hashes[*]}" >&2
	exit 1
fi
say "The history of every change is an ordinary git repository under each store's plans/<id>/history.git."
