#!/usr/bin/python3
"""make check-grade: make grade and the Gradescope autograder, tested with real runs.

Each case runs make grade (or run_autograder) for real under build/check-grade/CASE and reads
what it wrote as the platforms would: junit.xml with junitparser (Debian's python3-junitparser,
for /usr/bin/python3), results.json and the rest with json. The expected tests and points are
worked out here from the runner's own table (--list), never from grade.py's output. One line per
check; exit status 1 if any fails. No check is ever skipped: what cannot be tested fails.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from fractions import Fraction

import tools

try:
    import junitparser
except ImportError:
    sys.exit("check_grade.py: FAIL: the junitparser module is missing for %s. Install Debian's "
             "python3-junitparser (apt-get install python3-junitparser) and run this with "
             "/usr/bin/python3, as make check-grade does." % sys.executable)

ROOT = tools.ROOT
OUT = os.path.join(ROOT, "build", "check-grade")
# The test builds of the stages are built with these timings (the Makefile's TEST_*).
FAST = ["SERVER_SLEEP_SECONDS=%s" % tools.test_timings()[0],
        "SERVER_HEAD_TIMEOUT_SECONDS=%s" % tools.test_timings()[1]]
FILES = ["junit.xml", "results.json", "summary.txt", "prairielearn.json", "autolab.json"]
failed = []


def check(name, ok, detail=""):
    print("%s  %s%s" % ("ok  " if ok else "FAIL", name, "" if ok or not detail else ": " + detail))
    if not ok:
        failed.append(name)
    return ok


def start_grade(case, *args, **env):
    """make grade ... GRADE_DIR=build/check-grade/CASE in the background; it and its folder."""
    folder = os.path.join(OUT, case)
    command = ["make", "--no-print-directory", "grade", "GRADE_DIR=" + folder] + list(args)
    with open(folder + ".out", "w") as out:
        return subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                                env=tools.clean_env(**env)), folder


def grade(case, *args, **env):
    """start_grade(), waited for: its exit status and folder."""
    process, folder = start_grade(case, *args, **env)
    return process.wait(), folder


def load(folder):
    """What make grade wrote, parsed; {} for a file that is missing or does not parse."""
    found = {}
    for name in FILES:
        path = os.path.join(folder, name)
        try:
            if name == "junit.xml":
                found[name] = junitparser.JUnitXml.fromfile(path)
            elif name.endswith(".json"):
                with open(path) as f:
                    found[name] = json.load(f)
            else:
                with open(path) as f:
                    found[name] = f.read()
        except Exception as error:  # any failure to read is reported by the checks
            found[name + " error"] = str(error)
    return found


TABLE = {}


def planned(stage, pool=True):
    """The cases the table plans for stage NN: {(lesson, name): points}."""
    if not TABLE:
        TABLE.update(json.loads(subprocess.check_output(
            [os.path.join(ROOT, "build", "tests", "check-step01"), "--list"])))
    cases = {}
    for row in TABLE["tests"]:
        if row["first"] <= stage <= row["last"] and (pool or not row["pool"]):
            names = row["cases"] or [None]
            for i, case in enumerate(names):
                name = row["name"] if case is None else "%s:%d (%s)" % (row["name"], i, case)
                cases[(row["lesson"], name)] = Fraction(row["points"], len(names))
    return cases


def testcases(junit):
    """Every testcase of the JUnit file: (suite name, lesson, name, case)."""
    return [(suite.name, case.classname.split(".", 1)[1], case.name, case)
            for suite in junit for case in suite]


def verdict(case):
    """passed, failure, skipped or error, as junitparser reads the testcase."""
    results = list(case.result)
    if not results:
        return "passed"
    return type(results[0]).__name__.lower()


def failure(case):
    """The testcase's <failure> (or <skipped>) as (type, message, text); empty when it passed."""
    results = list(case.result)
    if not results:
        return "", "", ""
    return results[0].type or "", results[0].message or "", results[0].text or ""


def close(a, b):
    return abs(a - b) < 1e-6  # the JSON's floats against the table's exact fractions


def check_files(case, status, found):
    check(case + ": make grade exits 0", status == 0, "exit status %d" % status)
    missing = [name for name in FILES if name not in found]
    check(case + ": junit.xml, results.json, summary.txt, prairielearn.json, autolab.json "
          "written and parsed", not missing, "; ".join(
              "%s: %s" % (n, found.get(n + " error")) for n in missing))
    return not missing


def tap_view(path):
    """A TAP reader's view of a runner's TAP log (CK_TAP_LOG_FILE_NAME): its plan, and each
    test line as (ok, name); None for a file that is missing or is no TAP."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    plan = re.fullmatch(r"1\.\.(\d+)", lines[0]) if lines else None
    tests = [(m.group(1) is None, m.group(3)) for m in
             (re.fullmatch(r"(not )?ok (\d+) - (\S+)", line) for line in lines[1:]) if m]
    return (int(plan.group(1)), tests) if plan else None


def tap_name(stage, lesson, name):
    """The TAP log's name of a JUnit testcase: stepNN:lesson:test, or :INDEX for a case."""
    return "%s:%s:%s" % (stage, lesson, re.sub(r":(\d+) \(.*\)$", r":\1", name))


def check_tap(what, folder, junit):
    """Each stage's TAP log says what junit.xml says: the same tests, passed or failed."""
    wrong = []
    for suite in junit:
        view = tap_view(os.path.join(folder, suite.name + ".tap"))
        want = {(verdict(c) == "passed", tap_name(suite.name, c.classname.split(".", 1)[1], c.name))
                for c in suite}
        if view is None or view[0] != len(view[1]) or set(view[1]) != want:
            wrong.append("%s: %s" % (suite.name, "no TAP plan" if view is None else
                                     sorted(set(view[1]) ^ want)[:2]))
    check(what + ": each TAP log has the tests of junit.xml, each passed or failed alike",
          not wrong, "; ".join(wrong))


def check_own():
    status, folder = grade("own")
    found = load(folder)
    if not check_files("own stages", status, found):
        return
    junit, results = found["junit.xml"], found["results.json"]
    suites = [suite.name for suite in junit]
    check("own stages: junit.xml has the 8 suites step01..step08",
          suites == ["step%02d" % n for n in range(1, 9)], str(suites))
    cases = testcases(junit)
    bad = [(s, n) for s, _, n, c in cases if verdict(c) != "passed"]
    check("own stages: every testcase passes", not bad, "%d do not: %s" % (len(bad), bad[:3]))
    names = [(s, lesson, n) for s, lesson, n, _ in cases]
    check("own stages: testcase names are unique", len(names) == len(set(names)))
    wrong = []
    for suite in junit:
        number = int(suite.name[4:])
        want = set(planned(number))
        have = {(c.classname.split(".", 1)[1], c.name) for c in suite}
        if want != have or suite.tests != len(want):
            wrong.append("%s: %d planned, %d in junit.xml (%s)" % (
                suite.name, len(want), suite.tests, sorted(want ^ have)[:2]))
    check("own stages: each suite has exactly the table's cases", not wrong, "; ".join(wrong))
    check_tap("own stages", folder, junit)
    top = sum(sum(planned(n).values()) for n in range(1, 9))
    maxima = sum(t["max_score"] for t in results["tests"])
    check("own stages: results.json's max_scores add up, in floating point, to exactly %s" % top,
          maxima == top and results["score"] == top, repr(maxima))
    check("own stages: results.json score %s equals the max %s" % (results["score"], top),
          close(results["score"], top) and close(maxima, top), "sum of max_score %s" % maxima)
    check("own stages: every results.json test passed",
          all(t["status"] == "passed" for t in results["tests"]))
    keys = {"name", "score", "max_score", "status", "output"}
    check("own stages: results.json tests are Gradescope's: name, score, max_score, status, "
          "output", all(keys <= set(t) and isinstance(t["output"], str) for t in
                        results["tests"]) and isinstance(results.get("output"), str))
    check("own stages: prairielearn.json score is 1", found["prairielearn.json"]["score"] == 1
          and found["prairielearn.json"]["gradable"] is True)
    scores = found["autolab.json"]["scores"]
    check("own stages: autolab.json has each stage's full score", all(
        close(scores.get("step%02d" % n, -1), sum(planned(n).values())) for n in range(1, 9)),
        str(scores))


def check_failing():
    status, folder = grade("failing", "SERVER=build/tests/step04", "STAGE=05", *FAST)
    found = load(folder)
    if not check_files("stage 04 graded as 05", status, found):
        return
    junit, results, summary = found["junit.xml"], found["results.json"], found["summary.txt"]
    check_tap("stage 04 as 05", folder, junit)
    with open(os.path.join(folder, "step05.xml")) as f:
        check_failures = f.read().count('result="failure"')
    failures = [(lesson, n, c) for _, lesson, n, c in testcases(junit) if verdict(c) != "passed"]
    check("stage 04 as 05: as many <failure> elements as Check failures (%d)" % check_failures,
          len(failures) == check_failures > 0 and all(
              verdict(c) == "failure" for _, _, c in failures), "%d" % len(failures))
    empty = [n for _, n, c in failures if not (failure(c)[1] and failure(c)[2]) or
             failure(c)[0] not in ("failure", "crash", "timeout")]
    check("stage 04 as 05: every failure has a type, a message and a text", not empty,
          str(empty[:3]))
    top = sum(planned(5).values())
    check("stage 04 as 05: results.json score %s < max %s" % (results["score"], top),
          results["score"] < top and close(sum(t["max_score"] for t in results["tests"]), top))
    red = [t for t in results["tests"] if t["status"] == "failed"]
    check("stage 04 as 05: results.json has the failed tests, each with its output",
          len(red) == len(failures) and all(t["output"].strip() and t["score"] == 0
                                            for t in red))
    # summary.txt fits on a screen: it names the first dozen, and says how many more there are.
    shown = red[:12]
    unnamed = [t["name"] for t in shown if t["name"] not in summary]
    more = "and %d more" % (len(red) - len(shown))
    check("stage 04 as 05: summary.txt names the first failed tests, and counts the rest",
          not unnamed and (len(red) <= 12 or more in summary), str(unnamed[:3]))


def check_no_server():
    status, folder = grade("no-server", "SERVER=/nonexistent", "STAGE=03")
    found = load(folder)
    if not check_files("no server", status, found):
        return
    results = found["results.json"]
    check("no server: score 0 of %s" % sum(planned(3).values()), results["score"] == 0 and
          close(sum(t["max_score"] for t in results["tests"]), sum(planned(3).values())))
    cases = testcases(found["junit.xml"])
    silent = [n for _, _, n, c in cases if verdict(c) != "failure" or "could not start" not in
              failure(c)[1] or "cannot test /nonexistent" not in failure(c)[2]]
    check("no server: every test failed, saying the runner could not start and why",
          cases and not silent, "%d do not: %s" % (len(silent), silent[:2]))
    check("no server: summary.txt says why", "could not start" in found["summary.txt"])


def pool_cases(found):
    return [(n, c) for _, lesson, n, c in testcases(found["junit.xml"]) if lesson == "pool_api"]


def pool_tests_of_stage_07():
    """How many tests of the pool's API stage 07 has, from the suite's own table."""
    listing = subprocess.run([os.path.join(ROOT, "build", "tests", "check-step07"), "--list"],
                             capture_output=True, text=True, check=True).stdout
    return sum(1 for row in json.loads(listing)["tests"]
               if row["lesson"] == "pool_api" and row["first"] <= 7 <= row["last"])


def check_pools():
    status, folder = grade("pool", "SERVER=build/tests/step07", "STAGE=07",
                           "POOL=step07-pool", *FAST)
    found = load(folder)
    if check_files("POOL=step07-pool", status, found):
        pool = pool_cases(found)
        check("POOL=step07-pool: the pool_api tests are there and pass",
              len(pool) == pool_tests_of_stage_07() and all(verdict(c) == "passed" for _, c in pool), str(pool))
        check("POOL=step07-pool: full score", close(found["results.json"]["score"],
                                                    sum(planned(7).values())))

    status, folder = grade("no-pool", "SERVER=build/tests/step07", "STAGE=07", *FAST)
    found = load(folder)
    if check_files("no POOL=", status, found):
        pool = pool_cases(found)
        check("no POOL=: the pool_api tests are <skipped>",
              len(pool) == pool_tests_of_stage_07() and all(verdict(c) == "skipped" for _, c in pool), str(pool))
        results = found["results.json"]
        top = sum(planned(7, pool=False).values())
        check("no POOL=: they are out of results.json, its score is the max without them (%s)"
              % top, close(results["score"], top) and close(sum(
                  t["max_score"] for t in results["tests"]), top) and not any(
                  "pool_api" in t["name"] for t in results["tests"]))
        check("no POOL=: summary.txt says the pool's tests were not run",
              "are not run" in found["summary.txt"])

    bad = os.path.join(OUT, "bad-pool-src")
    os.makedirs(bad, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "step07-pool", "pool.h"), bad)
    with open(os.path.join(bad, "pool.c"), "w") as f:
        f.write('#include "pool.h"\n#error this pool does not build\n')
    status, folder = grade("bad-pool", "SERVER=build/tests/step07", "STAGE=07",
                           "POOL=" + bad, *FAST)
    found = load(folder)
    if check_files("a pool that does not build", status, found):
        pool = pool_cases(found)
        check("a pool that does not build: its tests fail with the compiler's words",
              len(pool) == pool_tests_of_stage_07() and
              all(verdict(c) == "failure" and "this pool does not build" in failure(c)[2]
                  for _, c in pool), str(pool))
        others = [n for _, lesson, n, c in testcases(found["junit.xml"])
                  if lesson != "pool_api" and verdict(c) != "passed"]
        check("a pool that does not build: the server's tests still pass", not others,
              str(others[:3]))


def write_pool(name, body):
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(ROOT, "step07-pool", "pool.h"), folder)
    with open(os.path.join(folder, "pool.c"), "w") as f:
        f.write('#include "pool.h"\n#include <stddef.h>\n#include <unistd.h>\n' + body)
    return folder


def check_crashes(hang):
    """A pool that crashes, and a pool that kills the runner (CK_FORK=no); only the pool's
    tests run (CK_RUN_CASE), so the others are reported as not run."""
    crash = write_pool("crash-pool-src", "ThreadPool *thread_pool_new(size_t n) { (void)n; "
                       "return *(ThreadPool *volatile *)0; }\n"
                       "int thread_pool_execute(ThreadPool *p, void (*f)(void *), void *a) "
                       "{ (void)p; (void)f; (void)a; return 0; }\n")
    args = ("SERVER=build/tests/step07", "STAGE=07", "POOL=" + crash) + tuple(FAST)
    status, folder = grade("crash", *args, CK_RUN_CASE="pool_api")
    found = load(folder)
    if check_files("a pool that crashes", status, found):
        pool = pool_cases(found)
        check("a pool that crashes: its tests fail, naming the signal and the usual cause",
              len(pool) == pool_tests_of_stage_07() and
              all(verdict(c) == "failure" and "died of SIGSEGV" in failure(c)[1]
                  and "a while loop, not an if" in failure(c)[2] for _, c in pool),
              str([(verdict(c),) + failure(c)[:2] for _, c in pool][:1]))
        unrun = [c for _, lesson, _, c in testcases(found["junit.xml"]) if lesson != "pool_api"]
        check("a pool that crashes: the tests CK_RUN_CASE left out failed as not run",
              unrun and all(verdict(c) == "failure" and "did not run" in failure(c)[1]
                            for c in unrun))
    killer = write_pool("kill-pool-src", "#include <signal.h>\n"
                        "ThreadPool *thread_pool_new(size_t n) { (void)n; raise(SIGKILL); "
                        "return NULL; }\n"
                        "int thread_pool_execute(ThreadPool *p, void (*f)(void *), void *a) "
                        "{ (void)p; (void)f; (void)a; return 0; }\n")
    args = ("SERVER=build/tests/step07", "STAGE=07", "POOL=" + killer) + tuple(FAST)
    status, folder = grade("died", *args, CK_RUN_CASE="pool_api", CK_FORK="no")
    found = load(folder)
    if check_files("a runner that dies", status, found):
        cases = testcases(found["junit.xml"])
        check("a runner that dies: every test failed, saying it died and quoting its log",
              cases and all(verdict(c) == "failure" and "died" in failure(c)[1] and
                            "step07.log" in failure(c)[2] for _, _, _, c in cases))
        check("a runner that dies: score 0", found["results.json"]["score"] == 0)

    process, folder = hang
    status = process.wait()
    found = load(folder)
    if check_files("a pool that never returns", status, found):
        timed = [c for _, lesson, n, c in testcases(found["junit.xml"])
                 if n == "pool_runs_every_job_once"]
        check("a pool that never returns: a failure that says so, before Check's time limit",
              len(timed) == 1 and verdict(timed[0]) == "failure" and
              failure(timed[0])[0] == "failure" and "never returned" in failure(timed[0])[1],
              str([(verdict(c),) + failure(c)[:2] for c in timed]))


def extract(zip_path, folder):
    """Unzips as Gradescope does, keeping each file's mode (zipfile alone drops it)."""
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            path = archive.extract(info, folder)
            mode = info.external_attr >> 16 & 0o777
            if mode:
                os.chmod(path, mode)


def autograde(root, files, **env):
    """One Gradescope run: a fresh submission/ and results/, then run_autograder."""
    for name in ("submission", "results"):
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        os.makedirs(os.path.join(root, name))
    for name, text in files.items():
        path = os.path.join(root, "submission", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
    with open(os.path.join(root, "stdout"), "w") as out:
        status = subprocess.call([os.path.join(root, "run_autograder")], cwd=root, stdout=out,
                                 stderr=subprocess.STDOUT,
                                 env=tools.clean_env(AUTOGRADER_ROOT=root, **env))
    try:
        with open(os.path.join(root, "results", "results.json")) as f:
            return status, json.load(f)
    except (OSError, ValueError) as error:
        return status, {"error": str(error)}


def check_gradescope():
    here = os.path.join(ROOT, "tests", "gradescope")
    for script in ("setup.sh", "run_autograder", "make-zip.sh"):
        for shell in ("sh", "bash"):
            status = subprocess.call([shell, "-n", os.path.join(here, script)])
            check("gradescope: %s -n %s" % (shell, script), status == 0)
    root = os.path.join(OUT, "gradescope")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    zip_path = os.path.join(root, "autograder.zip")
    status = subprocess.call(["sh", os.path.join(here, "make-zip.sh"), "05", zip_path],
                             stdout=subprocess.DEVNULL)
    if not check("gradescope: make-zip.sh 05 builds the zip", status == 0 and
                 os.path.exists(zip_path)):
        return
    with zipfile.ZipFile(zip_path) as archive:
        names = archive.namelist()
        modes = {i.filename: i.external_attr >> 16 & 0o777 for i in archive.infolist()}
        stage = archive.read("tests/gradescope/STAGE").decode() if (
            "tests/gradescope/STAGE" in names) else None
    check("gradescope: the zip has setup.sh and run_autograder at its root, executable",
          all(modes.get(s, 0) & 0o111 for s in ("setup.sh", "run_autograder")), str(modes.get(
              "run_autograder")))
    check("gradescope: the zip holds the repository without build/, and STAGE 05",
          "Makefile" in names and "tests/grade.py" in names and stage == "05\n" and
          not any(n.startswith(("build/", ".git/")) for n in names), repr(stage))
    extract(zip_path, os.path.join(root, "source"))
    # Gradescope copies run_autograder out of the zip to /autograder/run_autograder.
    shutil.copy(os.path.join(root, "source", "run_autograder"), root)

    with open(os.path.join(ROOT, "step05-route", "main.c")) as f:
        main = f.read()
    top = sum(planned(5).values())
    status, results = autograde(root, {"my-server/main.c": main})
    tests = results.get("tests", [])
    check("gradescope: stage 05's own main.c, in a folder, gets the full score %s" % top,
          status == 0 and close(results.get("score", -1), top) and tests and
          all(t["status"] == "passed" for t in tests), "exit %d, score %s: %s" % (
              status, results.get("score"), results.get("error", "")))

    status, results = autograde(root, {"main.c": main.replace(
        "int main(", "int main_is_gone = nonsense_here;\nint main(", 1)})
    outputs = results.get("output", "") + "".join(t["output"] for t in results.get("tests", []))
    check("gradescope: a main.c that does not compile: score 0, the compiler's error shown",
          status == 0 and results.get("score") == 0 and "nonsense_here" in outputs and
          "did not build" in results.get("output", ""), str(results)[:300])

    status, results = autograde(root, {})
    check("gradescope: an empty submission: score 0, saying there is no main.c",
          status == 0 and results.get("score") == 0 and "no main.c" in results.get("output",
                                                                                  ""),
          str(results)[:300])

    # make grade itself failing (here, a stage it does not know) still leaves a results.json.
    status, results = autograde(root, {"main.c": main}, STAGE="09")
    check("gradescope: make grade failing still gives results.json, score 0, saying why",
          status == 0 and results.get("score") == 0 and "make grade failed" in results.get(
              "output", ""), str(results)[:300])


def main():
    start = time.time()
    os.makedirs(OUT, exist_ok=True)
    # The cases grade the test builds of the stages (build/tests/stepNN) as a grader's servers:
    # built first, since the case that runs in the background needs one at once.
    builds = ["build/tests/step%02d" % n for n in range(1, 9)]
    if not check("the stages' test builds and runners are built", subprocess.call(
            ["make", "-s", "--no-print-directory", "tests"] + builds, cwd=ROOT,
            env=tools.clean_env()) == 0):
        return 1
    # The pool that never returns waits out the watchdog of the pool's tests (15 s), idle: it
    # runs beside the other cases.
    hang = start_grade("hang", "SERVER=build/tests/step07", "STAGE=07", "POOL=" + write_pool(
        "hang-pool-src", "struct ThreadPool { int unused; };\nstatic ThreadPool the_pool;\n"
        "ThreadPool *thread_pool_new(size_t n) { return n == 0 ? NULL : &the_pool; }\n"
        "int thread_pool_execute(ThreadPool *p, void (*f)(void *), void *a) "
        "{ (void)p; (void)f; (void)a; for (;;) pause(); }\n"), *FAST,
        CK_RUN_CASE="pool_runs_every_job_once")
    check_own()
    check_failing()
    check_no_server()
    check_pools()
    check_crashes(hang)
    check_gradescope()
    print("check-grade: %d failed, in %.0f s" % (len(failed), time.time() - start))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
