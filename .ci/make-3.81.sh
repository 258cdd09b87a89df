#!/usr/bin/env bash
# macOS's make: GNU make 3.81, built from the source kept beside the repository
# (../shared/tools/make-3.81/), runs every target a student or a grader uses.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
make381=$(sh ../shared/tools/make-3.81/build.sh "$work")
# Its first line, read whole: with pipefail, a `head` in a pipe may end make with SIGPIPE.
version=$("$make381" --version)
[ "${version%%$'\n'*}" = "GNU Make 3.81" ]

"$make381" -s clean
"$make381" -s all
"$make381" -s diff-05 > "$work/diff-05"
grep -q '^+++ step05-route/main.c' "$work/diff-05"
"$make381" check
"$make381" -s check-step05 SERVER=build/step05
"$make381" -s check-step07 SERVER=build/tests/step07 POOL=step07-pool \
    SERVER_SLEEP_SECONDS="$("$make381" -s print-TEST_SLEEP_SECONDS)" \
    SERVER_HEAD_TIMEOUT_SECONDS="$("$make381" -s print-TEST_HEAD_TIMEOUT_SECONDS)"
"$make381" -s grade SERVER=build/tests/step08 STAGE=08 POOL=step08-shutdown \
    SERVER_SLEEP_SECONDS="$("$make381" -s print-TEST_SLEEP_SECONDS)" \
    SERVER_HEAD_TIMEOUT_SECONDS="$("$make381" -s print-TEST_HEAD_TIMEOUT_SECONDS)"
grep -q "^total: \([0-9.]*\) / \1 points (100%)$" build/grade/summary.txt
"$make381" -s clean
[ ! -e build ]
echo "GNU make 3.81: all, diff-05, check, check-step05 and check-step07 with SERVER= and POOL=, grade and clean work"
