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
on marieke init --name "Marieke"
on joke init --name "Joke"
on kees init --name "Kees"

heading "2. Richting: Marieke starts Joke's samenwerkingsplan; Joke's wishes per life area"
say "   Every plan starts with the method's ten life areas (waardegebieden)."
on marieke plan create --client Joke
on marieke area list
on marieke area set familie wish "Meer betrokken zijn bij de kinderen" situation "Voelt zich overbodig thuis"
on marieke area set partner wish "Een betere band met Kees"
on marieke area set vriendschap wish "Weer vriendinnen zien" situation "Ziet al twee jaar niemand"
on marieke area set werk wish "Iets betekenen in de maatschappij"
on marieke strength add "Kan goed met kinderen omgaan" --area familie --source netwerk
on marieke strength add "Zorgzaam en trouw" --source klant
on marieke lifestyle add "Snoept veel 's avonds; wil afvallen" --area zingeving

heading "3. Netwerkanalyse: the people around Joke and how close they are"
on marieke person add Kees --relation echtgenoot
on marieke person add Sanne --relation "vriendin van vroeger"
on marieke person add "Buurvrouw Ria" --relation buurvrouw
on marieke person add "Dr. Visser" --relation psychiater
on marieke tie add Kees --sector familie --ring 1 --strength sterk --support "praktisch, emotioneel" --reciprocity wederkerig
on marieke tie add Sanne --sector vrienden --ring 3 --strength zwak --support gezelschap
on marieke tie add "Dr. Visser" --sector professionals --ring 3 --support advies
on marieke vip add Kees --why "Haar steun en toeverlaat" --area partner
on marieke network snapshot --date 2026-09-01 --note "eerste netwerkkaart"

heading "4. Samenwerkingsplan: goals (doelen) and actions, own strength first"
on marieke goal add "Meer betrokken zijn bij de kinderen" --area familie --term lang --priority 1 \
	--target 2027-06-30 --description "Joke wil weer meetellen thuis: samen eten, huiswerk, uitjes."
on marieke goal add "Een betere band met Kees" --area partner --term lang --priority 2
on marieke goal add "Weer vriendinnen zien" --area vriendschap --term middellang --priority 3
on marieke goal add "Iets betekenen voor anderen" --area werk --term lang --priority 4 \
	--description "Vrijwilligerswerk, bijvoorbeeld bij de voedselbank."
on marieke goal add "Twee keer per week helpen met huiswerk" --parent "Meer betrokken zijn bij de kinderen" \
	--term kort --target 2026-12-31
on marieke action add "Dinsdag en donderdag na school aan tafel met de kinderen" \
	--goal "Twee keer per week helpen met huiswerk" --tier klant --due 2026-12-01
on marieke action add "Sanne bellen om af te spreken" --goal "Weer vriendinnen zien" --tier klant
on marieke action add "Samen naar de voedselbank om te kijken" --goal "Iets betekenen voor anderen" \
	--tier netwerk --person "Buurvrouw Ria"
on marieke action add "Gesprek over ADHD-medicatie en eetbuien" --goal "Meer betrokken zijn bij de kinderen" \
	--tier professional --person "Dr. Visser" \
	--reason "Medicatie kan alleen de psychiater aanpassen"
on marieke pdsa add "Een week lang om 20 uur niet meer snoepen" --goal "Meer betrokken zijn bij de kinderen" \
	--planned "Fruit klaarzetten" --start 2026-10-01 --end 2026-10-08

heading "5. Steungroep: the people Joke chose, meeting every two weeks"
on marieke group add "Steungroep Joke" --members "Kees, Sanne, Buurvrouw Ria" --coordinator Kees --rhythm 14
on marieke meeting add 2026-10-15 --group "Steungroep Joke" --present "Kees, Buurvrouw Ria" \
	--agenda "Huiswerk, voedselbank" --minutes "Joke helpt nu twee keer per week. Ria gaat mee naar de voedselbank." \
	--next 2026-10-29
on marieke meeting decide 2026-10-15 "Kees kookt op woensdag zodat Joke tijd heeft voor Sanne" \
	--action "Woensdag koken" --goal "Weer vriendinnen zien" --tier netwerk --person Kees

heading "6. Joke and Kees join the plan; the client directs who else may"
say "   Each device shows its public key with samen id. Marieke links Joke's device to Joke,"
say "   the client (klant), and adds Kees as a network member (netwerklid)."
on marieke device link Joke "$(quiet joke id | awk 'NR==1{print $1}')"
on marieke member add "Kees" --device "$(quiet kees id | awk 'NR==1{print $1}')" --role network
on marieke member list

heading "7. The whole plan goes to Joke and Kees on a USB stick (bundle)"
on marieke bundle create usb-stick/plan-joke.samen
on joke bundle import usb-stick/plan-joke.samen
on kees bundle import usb-stick/plan-joke.samen

heading "7b. A professional only with the client's approval, and only in the agreed life areas"
say "   Joke herself adds her psychiatrist's practice, for the life areas familie and partner:"
on visser init --name "Dr. Visser"
on joke member add "Dr. Visser" --device "$(quiet visser id | awk 'NR==1{print $1}')" --role professional --areas "familie, partner"
on joke access

heading "8. Everyone edits offline, at the same time"
say "   Joke adds a sub-goal (subdoel), says she is working on the goal about the children, and evaluates:"
on joke goal add "Elke woensdag koffie drinken met Sanne" --parent "Weer vriendinnen zien" --term kort
on joke goal set "Meer betrokken zijn bij de kinderen" status bezig
on joke tie set Sanne ring 2 strength gemiddeld
say "   Kees thinks the same goal needs adjusting (bijgesteld), and adds one of his own:"
on kees goal set "Meer betrokken zijn bij de kinderen" status bijgesteld
on kees goal add "Op zondag samen wandelen" --parent "Een betere band met Kees" --term kort --priority 1
say "   Kees also adds a neighbour as a member; a network member may not grant access to the plan:"
quiet piet init --name "Buurman Piet" >/dev/null
on kees member add "Buurman Piet" --device "$(quiet piet id | awk 'NR==1{print $1}')" --role network || true
say "   Marieke holds the evaluation (evaluatie) with Joke; Joke scores her life areas herself:"
on marieke goal set "Iets betekenen voor anderen" target 2027-03-01 status open
on marieke evaluation add 2026-11-01 --summary "Joke is thuis meer betrokken; vriendschap komt langzaam op gang."
on marieke progress add "Meer betrokken zijn bij de kinderen" --evaluation 2026-11-01 --progress goed
on marieke progress add "Weer vriendinnen zien" --evaluation 2026-11-01 --progress enige
on marieke score add familie --evaluation 2026-11-01 --score 6
on marieke score add vriendschap --evaluation 2026-11-01 --score 4

heading "9. Exchanging bundles: only what the other side is missing (--since its vv)"
say "   The receiver's version vector (samen vv) says which changes it has; the sender"
say "   writes only the rest. Joke and Kees each send theirs to Marieke, she sends all back."
send joke marieke joke-to-marieke
send kees marieke kees-to-marieke
say "   Kees's attempt reached Marieke as a rejected change, kept in the history with the reason:"
on marieke log -n 12 | grep -B1 -A1 REJECTED || true

send marieke joke marieke-to-joke
send marieke kees marieke-to-kees

heading "10. The merged goal tree and actions, the same on every device"
on joke goal list
on joke action list

heading "11. How Joke's network changed since the first map (samen network diff)"
on kees network diff 2026-09-01

heading "12. The history (samen log) and a timeline of one goal (samen timeline)"
on kees log -n 6
on kees timeline "Meer betrokken zijn bij de kinderen"

heading "13. A visible conflict (samen conflicts)"
say "   Joke and Kees set the same status without seeing each other's change. Samen keeps both"
say "   values; every device shows the same one (*) until someone settles it."
on marieke conflicts

heading "14. Joke settles it (samen resolve): de regie ligt bij de klant"
on joke resolve "Meer betrokken zijn bij de kinderen" status bezig
send joke marieke resolve-to-marieke
send joke kees resolve-to-kees
on kees conflicts

heading "15. Who set each field of the goal (samen blame), and what the method's checklists say"
on marieke blame "Meer betrokken zijn bij de kinderen"
on marieke status

heading "16. Sebastiaan and Karin: two more plans, each kept on two devices"
say "   Marieke keeps all her clients' plans in one store (--plan NAME picks one)."
on vader init --name "Vader van Sebastiaan"
on karin init --name "Karin"
on marieke plan create --client Sebastiaan
S=(--plan Sebastiaan)
on marieke "${S[@]}" area set woonplek wish "Weer thuis wonen bij vader en zijn tweelingbroer" \
	situation "Woont in een instelling; voelt zich een dossier van 4 cm dik"
on marieke "${S[@]}" area set werk wish "Werk vinden, gewoon zijn"
on marieke "${S[@]}" strength add "Handig met brommers" --area werk --source klant
on marieke "${S[@]}" person add Vader --relation vader
on marieke "${S[@]}" person add Tim --relation tweelingbroer
on marieke "${S[@]}" tie add Vader --sector familie --ring 1 --support "praktisch, emotioneel"
on marieke "${S[@]}" tie add Tim --sector familie --ring 1 --support gezelschap
on marieke "${S[@]}" vip add Vader --why "Wil hem thuis, durft het nog niet" --area woonplek
on marieke "${S[@]}" goal add "Weer thuis wonen" --area woonplek --term lang --priority 1
on marieke "${S[@]}" goal add "Elk weekend thuis slapen" --parent "Weer thuis wonen" --term kort
on marieke "${S[@]}" action add "Weekendverlof aanvragen" --goal "Elk weekend thuis slapen" --tier klant
on marieke "${S[@]}" group add "Steungroep Sebastiaan" --members "Vader, Tim" --coordinator Vader
on marieke "${S[@]}" meeting add 2026-11-05 --group "Steungroep Sebastiaan" --present "Vader, Tim" --next 2026-11-19
on marieke "${S[@]}" evaluation add 2026-11-20
on marieke "${S[@]}" score add woonplek --evaluation 2026-11-20 --score 3
on marieke "${S[@]}" member add "Vader" --device "$(quiet vader id | awk 'NR==1{print $1}')"
on marieke "${S[@]}" bundle create usb-stick/sebastiaan.samen
on vader bundle import usb-stick/sebastiaan.samen
on vader action add "Brommer samen opknappen" --goal "Weer thuis wonen" --tier netwerk --person Tim
on vader goal set "Elk weekend thuis slapen" status bezig
"$SAMEN_BIN" --store vader bundle create usb-stick/vader.samen --since "$(quiet marieke "${S[@]}" vv)"
on marieke bundle import usb-stick/vader.samen
on marieke "${S[@]}" goal list

on marieke plan create --client Karin
K=(--plan Karin)
on marieke "${K[@]}" area set studie wish "Opleiding afmaken en in de zorg werken"
on marieke "${K[@]}" area set partner wish "Een vaste vriend" situation "Relatie ging uit nadat ouders over haar diagnose vertelden"
on marieke "${K[@]}" strength add "Geduldig en zorgzaam" --area studie --source werker
on marieke "${K[@]}" person add Moeder --relation moeder
on marieke "${K[@]}" person add Lotte --relation "medestudent"
on marieke "${K[@]}" tie add Moeder --sector familie --ring 1 --valence negatief --reciprocity "ontvangt vooral"
on marieke "${K[@]}" tie add Lotte --sector werk/school --ring 2 --support gezelschap
on marieke "${K[@]}" goal add "Zelfstandig wonen" --area woonplek --term lang --priority 2
on marieke "${K[@]}" goal add "Opleiding afmaken" --area studie --term middellang --priority 1
on marieke "${K[@]}" action add "Stageplek in de thuiszorg zoeken" --goal "Opleiding afmaken" --tier klant
on marieke "${K[@]}" group add "Steungroep Karin" --members "Lotte" --rhythm 21
on marieke "${K[@]}" member add "Karin" --device "$(quiet karin id | awk 'NR==1{print $1}')"
on marieke "${K[@]}" bundle create usb-stick/karin.samen
on karin bundle import usb-stick/karin.samen
on karin goal set "Zelfstandig wonen" priority 1
on karin pdsa add "Een keer per week zelf koken" --goal "Zelfstandig wonen" --done "Pasta gemaakt" --studied "Lukte goed"
"$SAMEN_BIN" --store karin bundle create usb-stick/karin-terug.samen --since "$(quiet marieke "${K[@]}" vv)"
on marieke bundle import usb-stick/karin-terug.samen
on marieke plan list

heading "17. Every device holds the same plan (samen check prints the state hash)"
check_same() {
	local plan="$1"
	shift
	local hashes=() dev
	for dev in "$@"; do
		hashes+=("$("$SAMEN_BIN" --store "$dev" --plan "$plan" check | awk '$1 == "state" {print $2}')")
	done
	for h in "${hashes[@]}"; do
		if [[ "$h" != "${hashes[0]}" ]]; then
			printf '\nThe devices disagree on %s: %s\n' "$plan" "${hashes[*]}" >&2
			exit 1
		fi
	done
	printf '%s%-10s all %d devices agree: state %s%s\n' "$B" "$plan" "$#" "${hashes[0]}" "$N"
}
on joke check
check_same Joke marieke joke kees
check_same Sebastiaan marieke vader
check_same Karin marieke karin
say "The history of every change is an ordinary git repository under each store's plans/<id>/history.git."
