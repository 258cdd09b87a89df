#!/usr/bin/env bash
# A system without /proc (as macOS and the BSDs are, to the suite): an empty tmpfs hides
# /proc in a mount namespace of the run's own. The suite must finish in bounded time, never
# fail the repository's correct servers for it, and name the tests it could not run, in its
# output and in make grade's files, with no points.
set -euo pipefail
cd "$(dirname "$0")/.."

make -s all tests
sleep_seconds=$(make -s print-TEST_SLEEP_SECONDS)
head_timeout=$(make -s print-TEST_HEAD_TIMEOUT_SECONDS)
log=build/no-proc.log
unshare --mount sh -c "mount -t tmpfs none /proc && test ! -e /proc/self &&
    make -s check-step05 && make -s check-step07 &&
    make -s grade SERVER=build/tests/step08 STAGE=08 POOL=step08-shutdown \
        SERVER_SLEEP_SECONDS=$sleep_seconds SERVER_HEAD_TIMEOUT_SECONDS=$head_timeout" \
    >"$log" 2>&1 || { cat "$log"; exit 1; }
cat "$log"
# Each runner named the tests it did not run, as the table marks them, and make grade listed
# them, unscored; every other test passed.
build/tests/check-step01 --list > build/no-proc-table.json
python3 - "$log" build/grade/step08.log <<'PYTHON'
import json, re, sys
log = open(sys.argv[1]).read() + open(sys.argv[2]).read()
table = json.load(open("build/no-proc-table.json"))["tests"]
def measuring(stage):
    return [t["lesson"] + ":" + t["name"] for t in table
            if t["measures"] and t["first"] <= stage <= t["last"]]
for stage in (5, 7, 8):
    said = re.search(r"^step%02d: (\d+) tests? (?:is|are) not run on this system, neither "
                     r"passed nor failed: (.*?)\. Such tests" % stage, log, re.M)
    assert said, "step%02d did not name the tests it left out" % stage
    assert said.group(2).split(", ") == measuring(stage), (said.group(2), measuring(stage))
    assert int(said.group(1)) == len(measuring(stage))
summary = open("build/grade/summary.txt").read()
names = [m.split(":")[1] for m in measuring(8)]
assert "left out of the score: %s." % ", ".join(names) in summary, summary
results = json.load(open("build/grade/results.json"))
graded = [test["name"] for test in results["tests"]]
assert not any(name in test for name in names for test in graded), graded
assert results["score"] == sum(test["max_score"] for test in results["tests"]), results["score"]
PYTHON
echo "no /proc: every test that could run passed, and the others were named as not run"
