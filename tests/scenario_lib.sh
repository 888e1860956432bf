# scenario_lib.sh - sourced by tests/scenario_*.sh.
#
# Scenario tests run the real samen binary the way a person would, each in
# its own temporary directory. Every assertion stops the scenario at the
# first failure and prints the command, its exit code, stdout and stderr.
#
#   ok CMD...                        CMD must exit 0; its output is in $OUT/$ERR
#   fails_with CODE PATTERN -- CMD...  CMD must exit CODE and its stderr must
#                                      match the extended regex PATTERN
#   json_get PATH  <<<"$JSON"        print one field: PATH like 0.title or vv
#   json_py EXPR   <<<"$JSON"        print a python expression over j
#   json_valid CMD...                CMD must exit 0 and print valid JSON
#   expect_eq GOT WANT WHAT / expect_match TEXT REGEX WHAT / expect_no_match
#   new_device DIR NAME              `samen init` a store under $SCEN_TMP
#   state_hash STORE                 the plan's state hash from `samen check`
#
# SAMEN_BIN names the binary (ctest sets it); SAMEN_KEEP=1 keeps the temp dir.

set -euo pipefail

if [[ -z "${SAMEN_BIN:-}" ]]; then
	SAMEN_BIN="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/samen"
fi
if [[ ! -x "$SAMEN_BIN" ]]; then
	echo "scenario: samen binary not found at $SAMEN_BIN (set SAMEN_BIN)" >&2
	exit 1
fi

# Predictable messages and no stray stores from the person running the tests.
export LC_ALL=C.UTF-8 LANGUAGE=
unset SAMEN_HOME
SCEN_TMP="$(mktemp -d "${TMPDIR:-/tmp}/samen-scenario.XXXXXX")"
export XDG_DATA_HOME="$SCEN_TMP/xdg"
SCEN_NAME="$(basename "${BASH_SOURCE[1]:-scenario}" .sh)"
SCEN_CHECKS=0
OUT=""
ERR=""
RC=0

scen_cleanup() {
	local rc=$?
	if [[ "${SAMEN_KEEP:-0}" == 1 || $rc -ne 0 && "${SAMEN_KEEP:-0}" == fail ]]; then
		echo "scenario: kept $SCEN_TMP" >&2
	else
		rm -rf -- "$SCEN_TMP"
	fi
	if [[ $rc -eq 0 ]]; then
		echo "$SCEN_NAME: all $SCEN_CHECKS checks passed"
	else
		echo "$SCEN_NAME: FAILED (after $SCEN_CHECKS passing checks)" >&2
	fi
}
trap scen_cleanup EXIT

samen() { "$SAMEN_BIN" "$@"; }

step() { printf '\n== %s\n' "$*"; }

die() {
	echo "FAIL: $*" >&2
	exit 1
}

passed() { SCEN_CHECKS=$((SCEN_CHECKS + 1)); }

# Run a command, keeping exit code, stdout and stderr in RC, OUT and ERR.
run() {
	local o="$SCEN_TMP/.out" e="$SCEN_TMP/.err"
	RC=0
	"$@" >"$o" 2>"$e" || RC=$?
	OUT="$(cat "$o")"
	ERR="$(cat "$e")"
}

show_run() {
	printf '  command: %s\n  exit:    %s\n  stdout:\n%s\n  stderr:\n%s\n' "$*" "$RC" \
		"$(sed 's/^/    | /' <<<"$OUT")" "$(sed 's/^/    | /' <<<"$ERR")" >&2
}

ok() {
	run "$@"
	if [[ $RC -ne 0 ]]; then
		echo "FAIL: expected success" >&2
		show_run "$@"
		exit 1
	fi
	passed
}

fails_with() {
	local code="$1" pattern="$2"
	shift 2
	[[ "${1:-}" == "--" ]] && shift
	run "$@"
	if [[ $RC -ne $code ]]; then
		echo "FAIL: expected exit code $code" >&2
		show_run "$@"
		exit 1
	fi
	if ! grep -qE -- "$pattern" <<<"$ERR"; then
		echo "FAIL: stderr does not match /$pattern/" >&2
		show_run "$@"
		exit 1
	fi
	passed
}

json_get() {
	python3 -c '
import json, sys
v = json.loads(sys.stdin.buffer.read())
for k in [k for k in sys.argv[1].split(".") if k]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if isinstance(v, str) or isinstance(v, int) and not isinstance(v, bool) else json.dumps(v, ensure_ascii=False))
' "$1"
}

json_py() {
	python3 -c '
import json, sys
j = json.loads(sys.stdin.buffer.read())
v = eval(sys.argv[1])
print(v if isinstance(v, str) else json.dumps(v, ensure_ascii=False))
' "$1"
}

json_valid() {
	ok "$@"
	if ! python3 -m json.tool >/dev/null 2>&1 <<<"$OUT"; then
		echo "FAIL: output is not valid JSON" >&2
		show_run "$@"
		exit 1
	fi
	passed
}

expect_eq() {
	if [[ "$1" != "$2" ]]; then
		printf 'FAIL: %s\n  got:  %s\n  want: %s\n' "$3" "$1" "$2" >&2
		exit 1
	fi
	passed
}

expect_ne() {
	if [[ "$1" == "$2" ]]; then
		printf 'FAIL: %s\n  got:  %s\n  which it must not be\n' "$3" "$1" >&2
		exit 1
	fi
	passed
}

expect_match() {
	if ! grep -qE -- "$2" <<<"$1"; then
		printf 'FAIL: %s\n  /%s/ not found in:\n%s\n' "$3" "$2" "$(sed 's/^/    | /' <<<"$1")" >&2
		exit 1
	fi
	passed
}

expect_no_match() {
	if grep -qE -- "$2" <<<"$1"; then
		printf 'FAIL: %s\n  /%s/ unexpectedly found in:\n%s\n' "$3" "$2" "$(sed 's/^/    | /' <<<"$1")" >&2
		exit 1
	fi
	passed
}

# new_device DIR NAME: a store with its own key; prints nothing, sets KEY.
new_device() {
	ok samen --store "$1" init --name "$2"
	ok samen --store "$1" --json id
	KEY="$(json_get device <<<"$OUT")"
	[[ "$KEY" =~ ^[0-9a-f]{64}$ ]] || die "device key of $2 is not 64 hex digits: $KEY"
}

# (text output, not --json: a python3 start per hash would slow the tests down)
state_hash() {
	local store="$1"
	shift
	ok samen --store "$store" "$@" check
	grep -qE '^state [0-9a-f]{64}$' <<<"$OUT" || die "no state hash from samen --store $store check"
	sed -n 's/^state \([0-9a-f]\{64\}\)$/\1/p' <<<"$OUT"
}
