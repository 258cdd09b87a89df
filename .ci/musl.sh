#!/usr/bin/env bash
# musl (Alpine's C library): every stage built with musl-gcc, at the test timings, and graded
# through SERVER= as a student's server is, with its own pool where it has one: all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

make -s tests
make -s BUILD=build/musl CC=musl-gcc CFLAGS="-O2 -Werror" \
    $(for dir in step[0-9][0-9]-*; do echo "build/musl/tests/${dir%%-*}"; done)
failed=0
for dir in step[0-9][0-9]-*; do
    stage=${dir%%-*}
    pool=
    [ ! -f "$dir/pool.c" ] || pool=POOL=$dir
    # The stages' test builds sleep 1 s and time heads out after 2 (TEST_SLEEP_SECONDS...).
    make -s "check-$stage" SERVER="build/musl/tests/$stage" $pool \
        SERVER_SLEEP_SECONDS="$(make -s print-TEST_SLEEP_SECONDS)" \
        SERVER_HEAD_TIMEOUT_SECONDS="$(make -s print-TEST_HEAD_TIMEOUT_SECONDS)" \
        >"build/musl/$stage.log" 2>&1 &
done
for dir in step[0-9][0-9]-*; do
    wait -n || failed=1
done
for dir in step[0-9][0-9]-*; do
    cat "build/musl/${dir%%-*}.log"
done
[ "$failed" -eq 0 ] && echo "musl: every stage's musl build passes its tests"
exit "$failed"
