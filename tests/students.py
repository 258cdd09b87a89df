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
                      with the same (default: the test builds' TEST_SLEEP_SECONDS and
                      TEST_HEAD_TIMEOUT_SECONDS of the Makefile, quick; 5 5 are the stages' own)
    pool              its pool.c is graded too (POOL=)
    passes            it gets every point
    fails TEST...     each of these tests fails...
    says TEXT         ...and the output of some failed test holds TEXT (the mistake, named)
    never TEXT        no failed test's output holds TEXT (a hint the evidence does not back)
    within SECONDS    make grade ends within this long (default 180)

Each is built with the lesson's cc line (-Werror added), graded with `make grade` into
build/students/NAME/, and checked against its results.json. Any statement that does not hold
fails the check. First, every change.diff must apply to its base: a run stops at once if one
does not.

    python3 tests/students.py [NAME ...]       (default: every folder)
    python3 tests/students.py applies [NAME ...]
                          only that first step: for a change.diff that does not apply, it says
                          the rebase command to run
    python3 tests/students.py rebase NAME [--resolved]
                          rewrites NAME's change.diff for its base as the base is now. It
                          merges the change into the base (git merge-file, from the base as it
                          was when change.diff was last committed), or else applies it with
                          patch's fuzz; what neither can place is left in
                          build/students/NAME/rebase/mistake/ (conflict markers, .rej files)
                          to finish by hand, and --resolved then takes that folder as it is
"""

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import tools

ROOT = tools.ROOT
STUDENTS = ROOT / "tests" / "students"
OUT = ROOT / "build" / "students"
AT_ONCE = 3  # students graded side by side: most of the time goes to waiting on timeouts


class DoesNotApply(Exception):
    """A change.diff that patch cannot apply to its base: args are the folder's name, and
    patch's words."""


def read_expect(folder):
    expect = {"timings": tools.test_timings(), "pool": False, "passes": False, "fails": [],
              "says": [], "never": [], "within": 180.0, "base": None}
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


def patch(src, diff, *options):
    """patch -p1 of diff into the folder src: its exit status, and what it said. (--forward:
    a hunk that looks reversed fails, where patch would ask what to do.)"""
    run = subprocess.run(["patch", "-p1", "--forward", "--no-backup-if-mismatch", *options, "-i",
                          str(diff)], cwd=src, stdin=subprocess.DEVNULL, capture_output=True,
                         text=True)
    return run.returncode, run.stdout + run.stderr


def make_sources(folder, src):
    """Writes into src the sources of the student of folder: its own files, or its base's
    (made the same way, from the folder beside it) with its change.diff applied."""
    base = read_expect(folder)["base"]
    if base is None:
        shutil.copytree(folder, src, ignore=shutil.ignore_patterns("expect"))
        return
    make_sources(folder.parent / base, src)
    status, said = patch(src, folder / "change.diff", "-s")
    if status != 0:
        raise DoesNotApply(folder.name, f"{folder.name}/change.diff does not apply to {base}:\n"
                                        f"{said}")


def sources_of(folder, expect, out):
    """The folder of the student's sources."""
    if expect["base"] is None:
        return folder
    src = out / "src"
    shutil.rmtree(src, ignore_errors=True)
    make_sources(folder, src)
    return src


def grade(folder):
    """Builds and grades one student; returns the list of what did not hold."""
    name, expect = folder.name, read_expect(folder)
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    sleep, head = expect["timings"]
    src = sources_of(folder, expect, out)  # applies() has seen that it can be made
    sources = [str(p) for p in sorted(src.glob("*.c"))]
    build = subprocess.run(["cc", *tools.stage_flags(), "-Werror", f"-DSLEEP_SECONDS={sleep}",
                            f"-DHEAD_TIMEOUT_SECONDS={head}", "-o", str(out / "server")] + sources,
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


def applies(folders):
    """Whether every change.diff of these students (and of their bases) applies to its base
    as it is now; says which do not, and the command that rebases each."""
    broken = {}
    for folder in folders:
        if read_expect(folder)["base"] is None:
            continue
        src = OUT / folder.name / "applies"
        shutil.rmtree(src, ignore_errors=True)
        try:
            make_sources(folder, src)
        except DoesNotApply as error:
            broken.setdefault(error.args[0], error.args[1])
    for name, why in broken.items():
        print(f"{why.rstrip()}\n  rebase it: python3 tests/students.py rebase {name}",
              file=sys.stderr)
    return not broken


def rebase(name, resolved=False):
    """Rewrites the change.diff of student NAME for its base as the base is now (see the
    docstring above); returns whether it did."""
    folder = STUDENTS / name
    base_name = read_expect(folder)["base"]
    base, mine = OUT / name / "rebase" / "base", OUT / name / "rebase" / "mistake"
    if base_name is None or (resolved and not mine.is_dir()):
        sys.exit(f"{name} has no base" if base_name is None else
                 f"there is no {mine}: run python3 tests/students.py rebase {name} first")
    how = f"taking {mine} as it is"
    if not resolved:
        shutil.rmtree(base.parent, ignore_errors=True)
        try:
            make_sources(STUDENTS / base_name, base)
        except DoesNotApply as error:
            sys.exit(f"{error.args[1]}\nrebase it first: "
                     f"python3 tests/students.py rebase {error.args[0]}")
        shutil.copytree(base, mine)
        how, left = merge(folder, base_name, mine, base.parent / "then") or fuzz(folder, mine)
        if left:
            print(f"{name}/change.diff does not apply to {base_name} as it is now, and {left}\n"
                  f"Make the change by hand in {mine} (the conflict markers, or the hunks of the "
                  f".rej files, which you then delete), and run\n"
                  f"  python3 tests/students.py rebase {name} --resolved", file=sys.stderr)
            return False
    if list(mine.glob("*.rej")) or any(re.search(r"^(<<<<<<<|>>>>>>>)", p.read_text(), re.M)
                                       for p in mine.iterdir()):
        sys.exit(f"{mine} still has .rej files or conflict markers")
    text = (folder / "change.diff").read_text()
    first = re.search(r"^--- ", text, re.M)
    words = text[:first.start()] if first else ""  # what the mistake is, before the diff
    files = sorted({p.name for p in base.iterdir()} | {p.name for p in mine.iterdir()})
    (folder / "change.diff").write_text(words + "".join(subprocess.run(
        ["diff", "-uN", "--label", f"a/{f}", "--label", f"b/{f}", str(base / f), str(mine / f)],
        capture_output=True, text=True).stdout for f in files))
    print(f"{name}/change.diff rewritten for {base_name} as it is now, by {how}: see "
          f"git diff {folder.relative_to(ROOT)}")
    return True


def merge(folder, base_name, mine, then):
    """Merges the student's change into mine, a copy of its base as it is now: a three-way
    merge (git merge-file) from the base as it was when change.diff was last committed.
    Returns how, and what is left to do; None without that commit, or when the change does
    not apply to the base as it was then either."""
    commit = subprocess.run(["git", "log", "-1", "--format=%h", "--", str(folder / "change.diff")],
                            cwd=ROOT, capture_output=True, text=True).stdout.strip()
    if not commit:
        return None
    then.mkdir(parents=True)
    subprocess.run(f"git archive {commit} tests/students | tar -x -C {shlex.quote(str(then))}",
                   shell=True, cwd=ROOT, capture_output=True)
    try:
        make_sources(then / "tests" / "students" / base_name, then / "base")
    except (DoesNotApply, OSError):
        return None
    shutil.copytree(then / "base", then / "mistake")
    if patch(then / "mistake", folder / "change.diff", "-s", "--fuzz=0")[0] != 0:
        return None
    conflicts = []
    for f in sorted({p.name for p in (then / "base").iterdir()}
                    | {p.name for p in (then / "mistake").iterdir()}):
        was, changed, now = then / "base" / f, then / "mistake" / f, mine / f
        if not changed.exists():
            now.unlink(missing_ok=True)  # a file the change removes
        elif not was.exists() or not now.exists():
            shutil.copy(changed, now)  # a file the change adds, or one the base lost since
        elif was.read_bytes() != changed.read_bytes() and subprocess.run(
                ["git", "merge-file", "--diff3", "-L", f"{base_name} now", "-L",
                 f"{base_name} at {commit}", "-L", folder.name, str(now), str(was), str(changed)],
                capture_output=True).returncode != 0:
            conflicts.append(str(now))
    return (f"a three-way merge with {base_name} as of commit {commit}",
            conflicts and "the merge left conflicts in " + ", ".join(conflicts))


def fuzz(folder, mine):
    """Applies the student's change to mine with patch's largest useful fuzz: how, and what
    is left to do (the hunks it could not place, from its .rej files)."""
    status, said = patch(mine, folder / "change.diff", "--fuzz=3")
    return "patch, with a fuzz of up to 3 lines", status and (
        f"patch could not apply these hunks:\n{said}" + "".join(
            f"\n{rej.name}:\n{rej.read_text()}" for rej in sorted(mine.glob("*.rej"))))


def main():
    args = sys.argv[1:]
    if args[:1] == ["rebase"]:
        if len(args) not in (2, 3) or args[2:] not in ([], ["--resolved"]):
            sys.exit("usage: python3 tests/students.py rebase NAME [--resolved]")
        sys.exit(0 if rebase(args[1], args[2:] == ["--resolved"]) else 1)
    only_apply = args[:1] == ["applies"]
    names = args[only_apply:] or sorted(p.name for p in STUDENTS.iterdir()
                                        if (p / "expect").exists())
    folders = [STUDENTS / name for name in names]
    if not applies(folders):
        sys.exit(1)
    if only_apply:
        count = sum((folder / "change.diff").exists() for folder in folders)
        print(f"every change.diff applies to its base ({count} of them)")
        return
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
