#!/usr/bin/env bash
# An instructor's course: the stages' numbers changed in the stages alone. For each variant, a
# copy of the repository has one constant of stages 07 and 08 changed, and `make check` must
# pass there with no other edit: the suite learns the numbers from the stages. Then a server
# of 8 workers, graded as a student's, must fail without SERVER_THREADS=8, naming the pool
# size it was taken to have, and pass with it.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# variant NAME CONSTANT VALUE: a copy of the repository with CONSTANT set to VALUE wherever a
# stage defines it, in $work/NAME.
variant() {
    local copy="$work/$1"
    mkdir "$copy"
    git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$copy"
    for main in "$copy"/step0*/main.c; do
        sed -i "s/^#define $2 [0-9][0-9]*\$/#define $2 $3/" "$main"
    done
    grep -q "^#define $2 $3\$" "$copy"/step08-shutdown/main.c
    echo "-- $1: $2 $3 in the stages that define it, then make check"
}

for change in "pool-8 THREAD_COUNT 8" "pool-2 THREAD_COUNT 2" "requests-6 DEFAULT_REQUESTS 6"; do
    set -- $change
    variant "$@"
    make -s -C "$work/$1" check > "$work/$1.log" 2>&1 || {
        cat "$work/$1.log"
        echo "make check fails with $2 $3 in the stages" >&2
        exit 1
    }
done

echo "-- pool-8: its stage 07 graded as a student's, first taken to have the lessons' 4 workers"
fast=(SERVER=build/tests/step07 SERVER_SLEEP_SECONDS=1 SERVER_HEAD_TIMEOUT_SECONDS=2)
if make -s -C "$work/pool-8" check-step07 "${fast[@]}" > "$work/as-4.log" 2>&1; then
    echo "a pool of 8 passed as a pool of 4" >&2
    exit 1
fi
grep -q "a pool of 4" "$work/as-4.log" || {
    cat "$work/as-4.log"
    echo "the failures do not say which pool size the tests took (\"a pool of 4\")" >&2
    exit 1
}
make -s -C "$work/pool-8" check-step07 "${fast[@]}" SERVER_THREADS=8 > "$work/as-8.log" 2>&1 || {
    cat "$work/as-8.log"
    echo "a pool of 8 fails with SERVER_THREADS=8" >&2
    exit 1
}
echo "variants: make check passes with each; SERVER_THREADS states a student's pool size"
