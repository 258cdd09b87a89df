#!/usr/bin/env python3
"""make grade's last step: the suite's verdict in the formats grading platforms read.

    python3 tests/grade.py GRADE_DIR step05 [step07 ...]

make grade leaves in GRADE_DIR, for each graded stage, what its Check runner wrote: Check's XML
log (stepNN.xml), its report (stepNN.report.json: what it tested, the tests it left out and why,
and the causes that several failures share), the runner's output
(stepNN.log) and exit status (stepNN.status), the suite's
table (table.json: each test's lesson, stages and points), and where they apply the build logs of
a grader's pool (pool-build.*) and of a student's server (server-build.*). This script writes
there:

    junit.xml           JUnit XML, for CI systems
    results.json        Gradescope's autograder results
    prairielearn.json   PrairieLearn's external grader results
    autolab.json        Autolab's one-line {"scores": ...}
    summary.txt         points per lesson and the failed tests, also printed on stdout

Points come from table.json only. A test the run should have had but which is missing from the
XML (the runner could not start, or died) is failed, never left out: a run proves only what it
ran. The exceptions are the tests the runner left out and said so: the pool's API tests when no
pool was given (SERVER= without POOL=), since the runner had no pool of the student's to call,
and the tests that measure the server where the system cannot (no /proc). Those are skipped,
listed, and left out of the score. Exit status 0 whenever the files were written, whatever the
grade.
"""
import json
import os
import re
import signal
import sys
import xml.etree.ElementTree as ET
from collections import namedtuple
from fractions import Fraction

import tools

POOL_LEFT_OUT = ("not run: the pool's API is tested only with POOL=dir (your pool.c), and this "
                 "run had none")
NOT_MEASURED = ("not run on this system: this test measures the server from outside (memory, "
                "threads, open files, CPU time) through /proc, which this system does not have; "
                "it runs on Linux, and in the repository's dev container")
TAIL_LINES = 15
SHOWN_FAILURES = 12  # failed tests listed in summary.txt, which must fit on a screen


class Case:
    """One graded case: a test, or one case of a loop test."""

    def __init__(self, stage, lesson, test, points, index=None, case_name=None, pool=False):
        self.stage, self.lesson, self.test = stage, lesson, test
        self.points = points  # a Fraction: a loop test's points are shared among its cases
        self.pool = pool
        # Stable and unique: a loop case is known by its index, with its name to read.
        self.name = test if index is None else "%s:%d (%s)" % (test, index, case_name)
        self.status = "failed"  # passed, failed or skipped
        self.kind = "failure"  # of a failed case: failure, crash or timeout
        self.message = ""
        self.time = 0.0
        self.ran = False  # whether the runner ran it (else a note of the summary says why)

    def title(self):
        if self.lesson == self.name:  # the build, known by its lesson alone
            return "%s %s" % (self.stage, self.name)
        return "%s %s: %s" % (self.stage, self.lesson, self.name)

    def first_line(self):
        return (self.message.strip().splitlines() or ["(no message)"])[0]

    def score(self):
        return self.points if self.status == "passed" else Fraction(0)


def read(path):
    """A file's text, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_status(path):
    text = read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def tail(text, lines=TAIL_LINES):
    kept = (text or "").rstrip("\n").splitlines()[-lines:]
    return "\n".join("  " + line for line in kept) if kept else "  (empty)"


def runner_end(status, has_xml, whole):
    """What became of the runner, in words, for the tests it did not run."""
    if status is None:
        return "the test runner left no exit status (make grade was stopped?)"
    if status == 2 and not has_xml:
        return "the test runner could not start (exit status 2)"
    if status > 128:
        try:
            name = signal.Signals(status - 128).name
        except ValueError:
            name = "signal %d" % (status - 128)
        return "the test runner died (%s, exit status %d) before this test" % (name, status)
    if has_xml and not whole:
        return "the test runner stopped before this test (exit status %d)" % status
    return ("the test runner ended (exit status %d) without running it (a CK_RUN_CASE or "
            "CK_RUN_SUITE filter?)" % status)


def crash_or_timeout(case, message):
    """Check reports a test process that died, or ran out of time, as an error: name which."""
    if "timeout expired" in message.lower():
        case.kind = "timeout"
        hint = ("it waited for something that never happened: a pool call that never returns?"
                if case.pool else "the test was stopped at its time limit")
        return "the test ran out of time (%s): %s" % (message, hint)
    case.kind = "crash"
    hint = ("the test process died inside your pool's functions" if case.pool else
            "the test process itself died: a fault of the test suite, please report it")
    return "the test crashed (%s): %s" % (message, hint)


def did_not_build(what, log):
    """The message of a build that failed: the compiler's first error first, as it says most."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    lead = [line for line in lines if "error" in line.lower()] or lines or ["(no output)"]
    return "%s did not build: %s\n%s" % (what, lead[0], log.rstrip())


def shares(points, n):
    """A test's points shared among its n cases, so that they add up to the test's points
    exactly, in the numbers of every platform: halves, quarters, eighths... (the fewest that
    give each case some), which binary floating point holds without rounding, so that a
    platform that adds the cases up shows 31, never 31.000000000000014. The first cases get
    the units left over."""
    unit = 1
    while points * unit < n and unit < 1024:
        unit *= 2
    units = int(Fraction(points) * unit)
    return [Fraction(units // n + (1 if i < units % n else 0), unit) for i in range(n)]


# A graded stage: its cases, the causes that several of its failures share, notes for the
# summary, and what its run tested, in the runner's words ("" when it did not say).
Stage = namedtuple("Stage", "cases shared notes testing")


def grade_stage(folder, stage, table):
    """The stage, each case with its verdict."""
    number = int(stage[4:])
    status = read_status(os.path.join(folder, stage + ".status"))
    log = read(os.path.join(folder, stage + ".log"))
    results, whole = tools.check_results(os.path.join(folder, stage + ".xml"))
    has_xml = os.path.exists(os.path.join(folder, stage + ".xml"))
    server_status = read_status(os.path.join(folder, "server-build.status"))
    server_log = read(os.path.join(folder, "server-build.log")) or ""
    pool_failed = os.path.exists(os.path.join(folder, "pool-build.status"))
    pool_log = read(os.path.join(folder, "pool-build.log")) or ""
    try:
        report = json.loads(read(os.path.join(folder, stage + ".report.json")) or "{}")
        left_out = {row["name"]: row["why"] for row in report.get("left_out", [])}
        causes = [(int(c["count"]), str(c["cause"])) for c in report.get("shared_causes", [])]
        testing = str(report.get("testing") or "")
    except (ValueError, KeyError, TypeError, AttributeError):
        left_out, causes, testing = {}, [], ""
    # What several failures share comes first: one mistake, named once.
    shared = ["%d failures share one cause: %s" % cause for cause in causes]
    notes, cases = [], []
    # make grade writes the options it gave the runner (stepNN.flags): --no-pool says that the
    # pool's tests were left out, even when the runner could not start to say so itself.
    flags = (read(os.path.join(folder, stage + ".flags")) or "").split()
    pool_left_out = "pool" in left_out.values() or "--no-pool" in flags
    if server_status is not None:
        build = Case(stage, "build", "build", Fraction(0))
        build.status = "passed" if server_status == 0 else "failed"
        build.ran = True
        build.message = (did_not_build("your server", server_log) if server_status != 0
                         else server_log.rstrip() or "your server built")
        cases.append(build)
        if server_status != 0:
            notes.append("your server did not build: every test of %s fails. The build "
                         "said:\n%s" % (stage, tail(server_log, 10)))
    if table is None:
        lost = Case(stage, "table", "table", Fraction(0))
        lost.message = "table.json is missing or unreadable: this stage's tests are unknown"
        cases.append(lost)
        notes.append(lost.message)
    if pool_failed:
        notes.append("your pool (POOL=) did not build: the tests of its API fail. The "
                     "compiler said:\n%s" % tail(pool_log, 10))
    elif pool_left_out and not server_status:
        notes.append("the tests of the pool's API are not run: they call a pool.c, and this run "
                     "had none of the server's (POOL=dir gives one); left out of the score")
    unmeasured = [name for name, why in left_out.items() if why == "system"]
    if unmeasured and not server_status:
        notes.append("%d %s not run on this system, and left out of the score: %s. Such tests "
                     "measure the server from outside (its memory, threads, open files, CPU "
                     "time) through /proc, which this system does not have; they run on Linux, "
                     "and in the repository's dev container." % (
                         len(unmeasured), "test is" if len(unmeasured) == 1 else "tests are",
                         ", ".join(unmeasured)))

    planned = []
    for row in (table or {}).get("tests", []):
        if not row["first"] <= number <= row["last"]:
            continue
        names = row.get("cases") or [None]
        for index, (case_name, share) in enumerate(zip(names, shares(row["points"], len(names)))):
            case = Case(stage, row["lesson"], row["name"], share,
                        None if row.get("cases") is None else index, case_name, row["pool"])
            planned.append(((row["name"], index), case))
    # Results of tests the table does not plan here are kept, at no points: never dropped.
    known = {key for key, _ in planned}
    for key, result in results.items():
        if key not in known:
            planned.append((key, Case(stage, result["lesson"] or "?", "%s:%d" % key, Fraction(0))))

    missing = 0
    for key, case in planned:
        result = results.get(key)
        if server_status:
            case.message = "not run: your server did not build (see the test \"build\")"
        elif case.pool and pool_failed:
            case.message = did_not_build("your pool", pool_log)
        elif result is not None:
            case.ran, case.time = True, result["duration"]
            if result["result"] == "success":
                case.status, case.message = "passed", ""
            elif result["result"] == "failure":
                case.message = result["message"]
            else:
                case.message = crash_or_timeout(case, result["message"])
        elif case.pool and pool_left_out:
            case.status, case.message = "skipped", POOL_LEFT_OUT
        elif left_out.get(case.test) == "system":
            case.status, case.message = "skipped", NOT_MEASURED
        else:
            missing += 1
            case.message = "did not run: %s\nthe end of %s.log:\n%s" % (
                runner_end(status, has_xml, whole), stage, tail(log))
        cases.append(case)
    if missing and not server_status:
        notes.append("%d tests did not run: %s. The end of %s.log:\n%s" % (
            missing, runner_end(status, has_xml, whole).replace(" before this test", ""),
            stage, tail(log, 8)))
    return Stage(cases, shared, notes, testing)


def points(value):
    """2, 1.5, 0.19: points as people write them."""
    return ("%.2f" % float(value)).rstrip("0").rstrip(".")


def totals(cases):
    graded = [c for c in cases if c.status != "skipped"]
    return (sum((c.score() for c in graded), Fraction(0)), sum((c.points for c in graded),
            Fraction(0)), sum(c.status == "passed" for c in graded), len(graded))


def summary(stages):
    lines = []
    got_all = max_all = Fraction(0)
    for stage, (cases, shared, notes, testing) in stages.items():
        got, most, passed, run = totals(cases)
        got_all, max_all = got_all + got, max_all + most
        lines.append("%s: %s / %s points, %d of %d tests passed" % (
            stage, points(got), points(most), passed, run))
        lines.extend("  " + note for note in shared)
        if testing:
            lines.append("  " + testing)  # what was tested, and at which timings
        lines.append("  %-10s %13s %11s" % ("lesson", "points", "tests"))
        lessons = {}
        for case in cases:
            if case.status != "skipped":
                lessons.setdefault(case.lesson, []).append(case)
        for lesson, group in lessons.items():
            got, most, passed, run = totals(group)
            lines.append("  %-10s %6s / %-4s %5d / %-3d" % (
                lesson, points(got), points(most), passed, run))
        lines.extend("  " + note.replace("\n", "\n  ") for note in notes)
        # The tests that ran and failed; those that did not run are told of in the notes.
        # A screen holds a dozen of them; the rest are in results.json and junit.xml.
        failed = [c for c in cases if c.status == "failed" and c.ran]
        if failed:
            lines.append("  failed:")
        for case in failed[:SHOWN_FAILURES]:
            line = "    %s: %s" % (case.title(), case.first_line())
            lines.append(line if len(line) <= 160 else line[:157] + "...")
        if len(failed) > SHOWN_FAILURES:
            lines.append("    ... and %d more: results.json and junit.xml have each one's "
                         "whole message" % (len(failed) - SHOWN_FAILURES))
        lines.append("")
    lines.append("total: %s / %s points (%s%%)" % (
        points(got_all), points(max_all),
        points(100 * got_all / max_all) if max_all else "0"))
    return "\n".join(line.rstrip() for line in lines) + "\n"


# XML 1.0 cannot hold most control characters, even escaped: show them as \xNN, as the suite
# shows bytes.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_text(text):
    return XML_ILLEGAL.sub(lambda m: "\\x%02x" % ord(m.group(0)), text)


def indent(element, depth=0):
    """One element a line, as people read XML (ElementTree's own indent needs Python 3.9)."""
    if len(element):
        element.text = "\n" + "  " * (depth + 1)
        for child in element:
            indent(child, depth + 1)
            child.tail = "\n" + "  " * (depth + 1)
        child.tail = "\n" + "  " * depth


def junit(stages):
    root = ET.Element("testsuites", name="make grade")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for stage, (cases, shared, _, _) in stages.items():
        got, most, _, _ = totals(cases)
        suite_time = sum(c.time for c in cases)
        suite = ET.SubElement(root, "testsuite", {
            "name": stage, "tests": str(len(cases)),
            "failures": str(sum(c.status == "failed" for c in cases)), "errors": "0",
            "skipped": str(sum(c.status == "skipped" for c in cases)),
            "time": "%.3f" % suite_time})
        properties = ET.SubElement(suite, "properties")
        ET.SubElement(properties, "property", name="points", value=points(got))
        ET.SubElement(properties, "property", name="max_points", value=points(most))
        for note in shared:
            ET.SubElement(properties, "property", name="shared_cause", value=xml_text(note))
        for case in cases:
            element = ET.SubElement(suite, "testcase", classname="%s.%s" % (stage, case.lesson),
                                    name=xml_text(case.name), time="%.3f" % case.time)
            if case.status == "failed":
                failure = ET.SubElement(element, "failure", type=case.kind,
                                        message=xml_text(case.first_line()))
                failure.text = xml_text(case.message)
            elif case.status == "skipped":
                ET.SubElement(element, "skipped", message=xml_text(case.first_line()))
        for key in counts:
            counts[key] += int(suite.get(key))
        total_time += suite_time
    root.attrib.update({key: str(value) for key, value in counts.items()})
    root.set("time", "%.3f" % total_time)
    indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def gradescope(stages, text):
    cases = [c for stage in stages.values() for c in stage.cases if c.status != "skipped"]
    return {
        "score": float(sum((c.score() for c in cases), Fraction(0))),
        "output": text,
        # Messages quote pages and bytes: shown as plain text, never as HTML or Markdown.
        "output_format": "text",
        "test_output_format": "text",
        "test_name_format": "text",
        "tests": [{
            "name": c.title(),
            "score": float(c.score()),
            "max_score": float(c.points),
            "status": "passed" if c.status == "passed" else "failed",
            "output": c.message,
        } for c in cases],
    }


def prairielearn(stages, text, known):
    cases = [c for stage in stages.values() for c in stage.cases if c.status != "skipped"]
    got, most, _, _ = totals(cases)
    return {
        "gradable": known,  # false only when the table of points could not be read
        "score": float(got / most) if most else 0.0,
        "message": text.splitlines()[-1],
        "output": text,
        "tests": [{
            "name": c.title(),
            "description": "lesson %s of %s" % (c.lesson, c.stage),
            "points": float(c.score()),
            "max_points": float(c.points),
            "message": "" if c.status == "passed" else c.first_line(),
            "output": c.message,
        } for c in cases],
    }


def main(argv):
    if len(argv) < 3 or not all(re.fullmatch(r"step\d\d", s) for s in argv[2:]):
        print("usage: %s GRADE_DIR stepNN [stepNN ...]" % argv[0], file=sys.stderr)
        return 2
    folder = argv[1]
    try:
        table = json.loads(read(os.path.join(folder, "table.json")) or "null")
    except ValueError:
        table = None
    stages = {stage: grade_stage(folder, stage, table) for stage in argv[2:]}
    text = summary(stages)
    outputs = {
        "summary.txt": text,
        "junit.xml": '<?xml version="1.0" encoding="UTF-8"?>\n' + junit(stages),
        "results.json": json.dumps(gradescope(stages, text), indent=1) + "\n",
        "prairielearn.json": json.dumps(prairielearn(stages, text, table is not None),
                                        indent=1) + "\n",
        "autolab.json": json.dumps({"scores": {name: float(totals(stage.cases)[0])
                                               for name, stage in stages.items()}}) + "\n",
    }
    try:
        for name, content in outputs.items():
            with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
                f.write(content)
    except OSError as error:
        print("grade.py: cannot write the results: %s" % error, file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
