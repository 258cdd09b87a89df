#!/usr/bin/env python3
"""The checker behind `make check-students`: the suite is tried as a grader uses it.

Each folder of tests/students/ is a server written the way students write them: correct ones
in styles of their own, and ones with one typical mistake each. Its file `expect` says what
grading it must give, one statement a line:

    stage NN          the stage it is graded as
    base NAME         it is the server of folder NAME (itself perhaps made from a base) with
                      the one change its change.diff makes: a one-mistake server is written as
                      its mistake alone, and a stage as what it adds to the one before
    timings S H       it is built with -DSLEEP_SECONDS=S -DHEAD_TIMEOUT_SECONDS=H and graded
                      with the same (default 1 2: quick; 5 5 are the stages' own)
    pool              its pool.c is graded too (POOL=)
    passes            it gets every point
    fails TEST...     each of these tests fails...
    says TEXT         ...and the output of some failed test holds TEXT (the mistake, named)
    never TEXT        no failed test's output holds TEXT (a hint the evidence does not back)
    within SECONDS    make grade ends within this long (default 180)

Each is built with the lesson's cc line (-Werror added), graded with `make grade` into
build/students/NAME/, and checked against its results.json. Any statement that does not hold
fails the check.

    python3 tests/students.py [NAME ...]       (default: every folder)
"""

import json
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = ROOT / "tests" / "students"
OUT = ROOT / "build" / "students"
COMPILE = ["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-Wall", "-Wextra", "-Wpedantic",
           "-Werror", "-pthread"]
AT_ONCE = 3  # students graded side by side: most of the time goes to waiting on timeouts


def read_expect(folder):
    expect = {"timings": ("1", "2"), "pool": False, "passes": False, "fails": [], "says": [],
              "never": [], "within": 180.0, "base": None}
    for line in (folder / "expect").read_text().splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        key, rest = words[0], words[1:]
        if key in ("stage", "base"):
            expect[key] = rest[0]
        elif key == "timings":
            expect["timings"] = tuple(rest)
        elif key in ("pool", "passes"):
            expect[key] = True
        elif key == "fails":
            expect["fails"] += rest
        elif key in ("says", "never"):
            expect[key].append(" ".join(rest))
        elif key == "within":
            expect["within"] = float(rest[0])
        else:
            raise ValueError(f"{folder.name}/expect: unknown statement {key!r}")
    return expect


def apply_change(folder, src):
    """Writes into src the sources of the student of folder: its own files, or its base's
    (made the same way) with its change.diff applied. Returns why not, or None."""
    base = read_expect(folder)["base"]
    if base is None:
        shutil.copytree(folder, src, ignore=shutil.ignore_patterns("expect"))
        return None
    why = apply_change(STUDENTS / base, src)
    if why is not None:
        return why
    patch = subprocess.run(["patch", "-p1", "-s", "--no-backup-if-mismatch", "-i",
                            str(folder / "change.diff")], cwd=src, capture_output=True, text=True)
    if patch.returncode != 0:
        return f"{folder.name}/change.diff does not apply to {base}:\n{patch.stdout}"
    return None


def sources_of(folder, expect, out):
    """The folder of the student's sources, and None; or None and why they cannot be had."""
    if expect["base"] is None:
        return folder, None
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    why = apply_change(folder, src)
    return (None, why) if why is not None else (src, None)


def grade(folder):
    """Builds and grades one student; returns the list of what did not hold."""
    name, expect = folder.name, read_expect(folder)
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    sleep, head = expect["timings"]
    src, why = sources_of(folder, expect, out)
    if src is None:
        return [why]
    sources = [str(p) for p in sorted(src.glob("*.c"))]
    build = subprocess.run(COMPILE + [f"-DSLEEP_SECONDS={sleep}", f"-DHEAD_TIMEOUT_SECONDS={head}",
                                      "-o", str(out / "server")] + sources,
                           capture_output=True, text=True)
    if build.returncode != 0:
        return [f"it does not build:\n{build.stderr}"]
    command = ["make", "-s", "--no-print-directory", "grade", f"SERVER={out / 'server'}",
               f"STAGE={expect['stage']}", f"SERVER_SLEEP_SECONDS={sleep}",
               f"SERVER_HEAD_TIMEOUT_SECONDS={head}", f"GRADE_DIR={out / 'grade'}"]
    if expect["pool"]:
        command.append(f"POOL={src}")
    began = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    took = time.monotonic() - began
    (out / "grade.log").write_text(run.stdout + run.stderr)
    problems = []
    if run.returncode != 0:
        return [f"make grade failed (status {run.returncode}); see {out / 'grade.log'}"]
    results = json.loads((out / "grade" / "results.json").read_text())
    tests = results["tests"]
    failed = [t for t in tests if t["status"] == "failed"]
    most = sum(t["max_score"] for t in tests)
    if took > expect["within"]:
        problems.append(f"grading took {took:.0f} s, more than {expect['within']:.0f} s")
    if expect["passes"] and (failed or results["score"] < most - 1e-6):
        problems.append(f"a correct server scored {results['score']} of {most}; it failed "
                        + "; ".join(f"{t['name']}: {t['output'].splitlines()[0]}"
                                    for t in failed[:5]))
    for test in expect["fails"]:
        if not any(t["name"].split(": ")[-1].split(":")[0] == test for t in failed):
            problems.append(f"{test} did not fail")
    for text in expect["says"]:
        if not any(text in t["output"] for t in failed):
            problems.append(f"no failure says {text!r}")
    for text in expect["never"]:
        wrong = [t["name"] for t in failed if text in t["output"]]
        if wrong:
            problems.append(f"{len(wrong)} failures say {text!r}, which they must not: "
                            + ", ".join(wrong[:3]))
    verdict = "passes" if not failed else f"fails {len(failed)} of {len(tests)} tests"
    print(f"{'ok  ' if not problems else 'FAIL'}  {name}: stage {expect['stage']}, {verdict}, "
          f"{results['score']:.4g} of {most:.4g} points, in {took:.0f} s", flush=True)
    return problems


def main():
    names = sys.argv[1:] or sorted(p.name for p in STUDENTS.iterdir() if (p / "expect").exists())
    folders = [STUDENTS / name for name in names]
    with ThreadPoolExecutor(AT_ONCE) as pool:
        outcomes = list(pool.map(grade, folders))
    bad = [(folder.name, problem) for folder, problems in zip(folders, outcomes)
           for problem in problems]
    for name, problem in bad:
        print(f"  {name}: {problem}", file=sys.stderr)
    if bad:
        print(f"check-students: {len(bad)} expectations do not hold", file=sys.stderr)
        sys.exit(1)
    print(f"check-students: every one of the {len(folders)} servers is graded as it must be")


if __name__ == "__main__":
    main()
