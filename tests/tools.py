"""What the Python tools of tests/ share: where the repository is, the facts of its Makefile,
the lessons' fenced blocks, Check's results, and how to run a program without leaving any of
it behind.

The Makefile is the one place for the stages' compile flags and the test builds' timings: the
tools ask it (`make -s print-VAR`) instead of writing them again. Every process started here
runs in a session of its own, so that it is killed with all it started (a shell's jobs, a
Check runner's servers, Chromium's helpers), and whatever is still running when the tool
exits is killed then. Output goes to files, never to pipes: a file never fills up and blocks
a server that logs a line per request, and a child left holding it keeps nobody waiting.
"""
import atexit
import functools
import os
import re
import shlex
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import namedtuple
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clean_env(**extra):
    """The environment of a fresh terminal, plus extra: no make around us (an inner make would
    take our command line's variables and jobserver, or say "Entering directory"), no Check
    filter or log (CK_*), and none of the variables a grader gives the Makefile's targets."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "CK_")) and k not in (
        "MFLAGS", "PORT", "REQUESTS", "SERVER", "POOL", "STAGE", "SANITIZE", "LOGS", "GRADE_DIR")}
    env.update(extra)
    return env


@functools.lru_cache(maxsize=None)
def make_var(name):
    """The Makefile's variable NAME, as make expands it (its target print-NAME)."""
    return subprocess.run(["make", "-s", "--no-print-directory", "print-" + name], cwd=ROOT,
                          env=clean_env(), capture_output=True, text=True,
                          check=True).stdout.strip()


def stage_flags():
    """The flags a stage is built with (STAGE_FLAGS), the ones its lesson's cc line shows."""
    return shlex.split(make_var("STAGE_FLAGS"))


def test_timings():
    """The test builds' GET /sleep and head timeout in seconds, as strings: (sleep, head)."""
    return make_var("TEST_SLEEP_SECONDS"), make_var("TEST_HEAD_TIMEOUT_SECONDS")


# ---- Markdown -------------------------------------------------------------------------------

Fence = namedtuple("Fence", "line end lang note text")
FENCE = re.compile(r"( {0,3})(`{3,}|~{3,})\s*([^\s`]*)")


def comment(line):
    """What an HTML comment that is a whole line says, or None."""
    m = re.fullmatch(r"\s*<!--\s*(.*?)\s*-->\s*", line)
    return m.group(1) if m else None


def fences(path):
    """The fenced blocks of a Markdown file, as CommonMark reads them: each block's line (that
    of its opening fence, from 1) and end (that of its closing fence, so that lines[end:]
    follow it), its language in lower case, what the HTML comment on the line just before it
    says (None without one: the lessons annotate blocks so), and its text, the fence's
    indentation taken off. A fence is closed by as many of its marks or more; one never
    closed runs to the end of the file."""
    lines = Path(path).read_text(encoding="utf-8").split("\n")
    found, i = [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, marks = len(fence.group(1)), fence.group(2)
        closing = re.compile(r" {0,3}%s{%d,}\s*" % (re.escape(marks[0]), len(marks)))
        end = i + 1
        while end < len(lines) and not closing.fullmatch(lines[end]):
            end += 1
        text = "\n".join(line[indent:] if not line[:indent].strip() else line.lstrip()
                         for line in lines[i + 1:end])
        note = comment(lines[i - 1]) if i > 0 else None
        found.append(Fence(i + 1, end + 1, fence.group(3).lower(), note, text))
        i = end + 1
    return found


# ---- Check's results ------------------------------------------------------------------------

CHECK_NS = "{http://check.sourceforge.net/ns}"


def check_results(path):
    """The results in a runner's Check XML log (CK_XML_LOG_FILE_NAME) by (test, iteration),
    each with its result (success, failure or error), lesson, message and duration; and
    whether the log is whole. Check writes a test's element as the test ends, so a runner
    that died leaves a log cut short: a pull parser keeps every test written before the cut."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}, False
    parser, results = ET.XMLPullParser(events=("end",)), {}
    try:
        parser.feed(text)
        parser.close()
        whole = True
    except ET.ParseError:
        whole = False
    for _, element in parser.read_events():
        if element.tag != CHECK_NS + "test":
            continue

        def field(name, element=element):
            return (element.findtext(CHECK_NS + name) or "").strip("\n")

        try:
            iteration, duration = int(field("iteration") or 0), float(field("duration") or 0)
        except ValueError:
            iteration, duration = 0, 0.0
        results[(field("id"), iteration)] = {
            "result": element.get("result", "error"),
            "lesson": field("description"),
            "message": field("message"),
            "duration": max(duration, 0.0),  # Check gives -1 for a test that did not pass
        }
    return results, whole


# ---- Processes ------------------------------------------------------------------------------

LIVE = set()  # the processes started here and not yet reaped


def kill_group(proc, sig=signal.SIGKILL):
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass  # the group is gone already


@atexit.register
def kill_all():
    """On the way out (an error, Ctrl-C, a SIGTERM turned into sys.exit), nothing is left."""
    for proc in list(LIVE):
        kill_group(proc)


def _written(f):
    """What a process has written to a file of ours so far. (pread: a read must not move the
    offset that the process writes at.)"""
    return os.pread(f.fileno(), os.fstat(f.fileno()).st_size, 0)


class Server:
    """A server, or a shell that runs one, started at the repository root as a terminal starts
    a foreground job, its output kept in files (under folder: say, not /tmp, for a log that
    grows large) and read as it comes. A stage runs as [binary, "0", ...]: port 0, and
    listen() reads the port it took from its first line."""

    def __init__(self, argv, merge=False, env=None, folder=None):
        self.out = tempfile.TemporaryFile(dir=folder)
        self.err = self.out if merge else tempfile.TemporaryFile(dir=folder)
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=self.err, start_new_session=True)
        LIVE.add(self.proc)

    def output(self):
        return _written(self.out)

    def errors(self):
        return _written(self.err)

    def running(self):
        return self.proc.poll() is None

    def wait(self, seconds, until=lambda: False):
        """Waits, at most so long, until the server has ended or until() holds: did either?"""
        deadline = time.monotonic() + seconds
        while self.running() and not until():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def listen(self, seconds):
        """The port of the stages' first line, `Listening on http://127.0.0.1:PORT`, once the
        server has printed it; None if it printed another line, ended, or stayed silent for
        so many seconds."""
        self.wait(seconds, lambda: b"\n" in self.output())
        m = re.match(rb"Listening on http://127\.0\.0\.1:(\d+)\n", self.output())
        return int(m.group(1)) if m else None

    def stop(self, sig=signal.SIGKILL, grace=5.0):
        """Sends sig to the server's process group (SIGINT: a terminal's Ctrl-C), SIGKILL to
        what is left of it after grace seconds, and reaps it. Did it end within grace?"""
        if self.running():
            kill_group(self.proc, sig)
        ended = self.wait(grace)
        kill_group(self.proc)
        self.proc.wait()
        LIVE.discard(self.proc)
        return ended


Result = namedtuple("Result", "status output errors seconds timed_out")


def run(argv, timeout, merge=False, env=None):
    """Runs argv at the repository root, as a Server, to its end or for timeout seconds at
    most, then kills what is left of its process group. Returns its exit status (negative:
    the signal that ended it), stdout and stderr as bytes (with merge, both in stdout, as a
    terminal shows them), the seconds it took, and whether it timed out."""
    started, job = time.monotonic(), Server(argv, merge, env)
    try:
        timed_out = not job.wait(timeout)
    finally:
        job.stop()
    return Result(job.proc.returncode, job.output(), job.errors(), time.monotonic() - started,
                  timed_out)
