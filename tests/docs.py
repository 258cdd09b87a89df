#!/usr/bin/env python3
"""make check-docs: every command a lesson shows, and every output it quotes, checked against
the real programs, so that a lesson cannot drift from its code.

The lessons are Markdown. A ```sh block is a command a student types at the repository root.
An HTML comment on the line just before a fenced block (invisible when the lesson is rendered)
says more about the block:

  (nothing) before ```sh           a command: run it; with no quoted output after it, each of its
                                   commands must succeed
  <!-- doc: timeout 120 -->         the same, allowed 120 s instead of 60
  <!-- doc: server -->              the command starts the lesson's server, which runs on while
                                    the next blocks run, until a ctrl-c, the next server or the end
  <!-- doc: skip: REASON -->        not run
  <!-- doc: output[; RULES] -->     before a plain block: the output of the ```sh block before it
  <!-- doc: server prints[; RULES] -->  what the server printed since the last such check
  <!-- doc: ctrl-c -->              on a line of its own: Ctrl-C in the server's terminal

RULES, separated by commas or semicolons: `times vary`, `vary /REGEX/` (any number of them),
`ids vary`, `any order`, `shutdown order`, `excerpt` (see match() below).

Usage: python3 tests/docs.py [-v] [--list] [FILE.md ...]
"""
import argparse
import difflib
import fnmatch
import fcntl
import glob
import json
import locale
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

import tools

ROOT = tools.ROOT
PORT = 7878
TIMEOUT = 60              # seconds a command may take, unless `doc: timeout N` says otherwise
START_SECONDS = 20        # for a server to print "Listening on"
LAG_SECONDS = 2           # for a server's log to catch up with a client's command
CTRL_C_SECONDS = 30       # for a server to exit after Ctrl-C
KILL_AFTER_SECONDS = 10   # when stopping a server at the end: then SIGKILL
LOCK_SECONDS = 60         # for the lock on the repository folder
# What the checker runs, and the Debian package of each.
NEEDED = [('bash', 'bash'), ('make', 'make'), ('cc', 'gcc'), ('curl', 'curl'),
          ('nc', 'netcat-openbsd'), ('ss', 'iproute2'), ('valgrind', 'valgrind'), ('od', 'coreutils')]

# ---- Reading a lesson -----------------------------------------------------------------------

SHELLS = {'bash', 'shell', 'console', 'shell-session', 'zsh'}
# A block that only runs the test suite of one stage, which may run beside everything else.
TEST_RUN = re.compile(r'(?:[A-Z_][A-Z0-9_]*=\S*\s+)*make\s+check-(step\d\d)(?:\s+[A-Z_][A-Z0-9_]*=\S*)*')


class Block:
    """A fenced block of a lesson, a ctrl-c annotation, or a mistake in either (kind 'error')."""

    def __init__(self, path, line, kind, text='', lang=''):
        self.path, self.line, self.kind, self.text, self.lang = path, line, kind, text, lang
        self.where = f'{os.path.relpath(path, ROOT)}:{line}'
        self.fenced = kind not in ('ctrl-c', 'note')  # an annotation alone is not a block
        self.rules = None       # output, prints: the Rules it is matched under
        self.timeout = TIMEOUT  # command
        self.output = None      # command: the block that quotes its output
        self.command = None     # output: the command it quotes
        self.reason = ''        # skip: why; error: what is wrong
        self.parallel = None    # command that only runs a stage's tests: that stage
        self.result = None      # command run in parallel: its Result


def doc(comment):
    """What an HTML comment says after `doc:`, or None if it is no doc: annotation."""
    m = re.fullmatch(r'doc:\s*(.*)', comment or '', re.S)
    return m.group(1) if m else None


def parse(path):
    """The blocks and ctrl-c annotations of a lesson, in order."""
    fences = tools.fences(path)
    items = [classify(path, f.line, f.lang, f.text, None if doc(f.note) == 'ctrl-c' else doc(f.note))
             for f in fences]
    starts = {f.line for f in fences}
    for number, line in outside(path, fences):
        note = doc(tools.comment(line))
        if note == 'ctrl-c':
            items.append(Block(path, number, 'ctrl-c'))
        elif note is not None and number + 1 not in starts:
            items.append(error(Block(path, number, 'note'),
                               'a doc: annotation goes on the line just before a fenced block'))
    items.sort(key=lambda b: b.line)
    link(items)
    return items


def outside(path, fences):
    """(number, line) of each line of a Markdown file outside its fenced blocks."""
    inside = {n for f in fences for n in range(f.line, f.end + 1)}
    with open(path, encoding='utf-8') as f:
        return [(n, line) for n, line in enumerate(f.read().split('\n'), 1) if n not in inside]


def error(block, reason):
    block.kind, block.reason = 'error', reason
    return block


def classify(path, line, lang, text, note):
    """What a fenced block is, from its language and the annotation before it."""
    b = Block(path, line, 'ignored', text, lang)
    if lang == 'sh':
        b.kind = 'command'
        if note is None:
            pass
        elif note == 'server':
            b.kind = 'server'
        elif re.fullmatch(r'timeout\s+\d+(\.\d+)?', note):
            b.timeout = float(note.split()[1])
        elif re.fullmatch(r'skip:\s*\S.*', note):
            b.kind, b.reason = 'skip', note.split(':', 1)[1].strip()
        else:
            error(b, f'unknown annotation for a ```sh block: "{note}"')
    elif lang in ('', 'text'):
        b.kind = 'text'  # a plain block: an output if annotated, else not checked
        m = re.fullmatch(r'(output|server prints)\s*(?:[;,](.*))?', note or '', re.S)
        if note is not None and not m:
            error(b, f'unknown annotation for a plain block: "{note}"')
        elif m:
            b.kind = 'output' if m.group(1) == 'output' else 'prints'
            try:
                b.rules = Rules(m.group(2) or '')
            except ValueError as e:
                error(b, str(e))
    elif lang in SHELLS:
        error(b, f'write commands as ```sh blocks (not ```{lang}), so that they are run and checked')
    elif note is not None:
        error(b, f'doc: annotations go before ```sh blocks and plain blocks, not ```{lang}')
    return b


def link(items):
    """Pair each quoted output with the command before it, and find the lone test runs."""
    before = None  # the fenced block before this one; prose and ctrl-c may stand between
    for b in items:
        if not b.fenced:
            continue
        after_sh = before is not None and before.lang == 'sh'
        if b.kind == 'text' and after_sh:
            error(b, 'a quoted output must be checked: annotate it '
                     '(<!-- doc: output --> or <!-- doc: server prints -->)')
        elif b.kind == 'output' and not after_sh:
            error(b, 'doc: output must follow a ```sh block, with only prose between')
        elif b.kind == 'output' and before.kind == 'server':
            error(b, "a server's output is checked with <!-- doc: server prints -->")
        elif b.kind == 'output' and before.kind == 'skip':
            b.kind, b.reason = 'skip', 'the output of a skipped command'
        elif b.kind == 'output' and before.kind == 'command':
            before.output, b.command = b, before
        elif b.kind == 'output':
            error(b, 'its command has an error')
        before = b
    for b in items:
        lines = [re.sub(r'\s+#.*', '', line).strip() for line in b.text.split('\n')]
        runs = [TEST_RUN.fullmatch(line) for line in lines if line and not line.startswith('#')]
        # Not for a SERVER= or POOL= (a lesson's "build it alone" block may be rewriting that
        # binary meanwhile), nor under a sanitizer (whose build is a folder apart).
        if (b.kind == 'command' and runs and all(runs) and len({m.group(1) for m in runs}) == 1
                and not re.search(r'\b(SERVER|POOL|SANITIZE)=', b.text)):
            b.parallel = runs[0].group(1)


# ---- Matching a capture with the lesson's text ---------------------------------------------

DURATION = r'\d+m\d+(?:\.\d+)?s|\d+(?:\.\d+)?\s?(?:ms|us|µs|s|seconds?|milliseconds?)'
DURATION_IN_TEXT = re.compile(r'(?<![\w.])(?:%s)(?!\w)' % DURATION)
WORKER_ID = re.compile(r'\b(?:Worker|worker:?) (\d+)')


class Rules:
    """The rules after `doc: output` or `doc: server prints`."""
    NAMES = {'times vary': 'times', 'ids vary': 'ids', 'any order': 'any_order',
             'shutdown order': 'shutdown', 'excerpt': 'excerpt'}

    def __init__(self, text):
        self.text, self.vary = text.strip(), []
        self.times = self.ids = self.any_order = self.shutdown = self.excerpt = False
        i = 0
        while i < len(text):
            if text[i] in ' \t,;':
                i += 1
                continue
            m = re.match(r'vary\s*/', text[i:])
            if m:  # vary /REGEX/: the regex runs to the first slash without a backslash
                start = end = i + m.end()
                while end < len(text) and text[end] != '/':
                    end += 2 if text[end] == '\\' else 1
                if end >= len(text):
                    raise ValueError(f'vary /REGEX/ has no closing slash: "{text[i:]}"')
                try:
                    self.vary.append(re.compile(text[start:end]))
                except re.error as e:
                    raise ValueError(f'vary /{text[start:end]}/: {e}')
                i = end + 1
                continue
            word = re.match(r'[^,;]*', text[i:]).group(0)
            name = ' '.join(word.split())
            if name not in self.NAMES:
                raise ValueError(f'unknown rule "{name}" (rules: {", ".join(self.NAMES)}, vary /REGEX/)')
            setattr(self, self.NAMES[name], True)
            i += len(word)


def seconds(duration):
    m = re.fullmatch(r'(\d+)m(\d+(?:\.\d+)?)s', duration)
    if m:
        return 60 * int(m.group(1)) + float(m.group(2))
    value, unit = re.fullmatch(r'(\d+(?:\.\d+)?)\s?(\S+)', duration).groups()
    return float(value) / {'ms': 1e3, 'us': 1e6, 'µs': 1e6}.get(unit, 1e3 if unit.startswith('milli') else 1)


def close_enough(want, got):
    """`times vary`: both under 0.1 s, or within 25% (or 0.25 s, whichever is larger)."""
    return (want < 0.1 and got < 0.1) or abs(want - got) <= max(0.25 * max(want, got), 0.25)


def pieces(line, rules, ids):
    """The parts of a line that the rules let vary: (start, end, regex, is_duration), in order."""
    found = [(m.start(), m.end(), rx.pattern, False) for rx in rules.vary
             for m in rx.finditer(line) if m.end() > m.start()]
    if rules.times:
        found += [(m.start(), m.end(), DURATION, True) for m in DURATION_IN_TEXT.finditer(line)]
    if rules.ids or ids:
        found += [(m.start(1), m.end(1), r'\d+', False) for m in WORKER_ID.finditer(line)]
    kept, end = [], 0
    for piece in sorted(found, key=lambda p: (p[0], -p[1])):
        if piece[0] >= end:  # the first of overlapping pieces wins
            kept.append(piece)
            end = piece[1]
    return kept


def shape(line, rules, ids):
    """A line with its varying parts blanked: lines of one shape are counterparts in a diff."""
    for start, end, _, _ in reversed(pieces(line, rules, ids)):
        line = line[:start] + '\0' + line[end:]
    return line


class Pattern:
    """An expected line, turned into a regex that a captured line must match."""

    def __init__(self, line, rules, ids=False):
        self.line, self.shape, self.durations = line, shape(line, rules, ids), []
        regex, pos = '', 0
        for n, (start, end, rx, is_duration) in enumerate(pieces(line, rules, ids)):
            regex += re.escape(line[pos:start]) + f'(?P<v{n}>{rx})'
            if is_duration:
                self.durations.append((f'v{n}', seconds(line[start:end])))
            pos = end
        self.regex = re.compile(regex + re.escape(line[pos:]))

    def matches(self, actual):
        m = self.regex.fullmatch(actual)
        return bool(m) and all(close_enough(want, seconds(m.group(g))) for g, want in self.durations)


def normalise(text):
    """Lines without trailing spaces (nor the \\r of CRLF), blank lines at both ends dropped."""
    lines = [line.rstrip(' \r') for line in text.split('\n')]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return lines


def ordered(expected, actual, rules, ids=False):
    """Line by line. Returns (ok, the capture with each line that matches its counterpart
    written as the lesson writes it, so that a diff shows only the real differences)."""
    pats = [Pattern(e, rules, ids) for e in expected]
    if len(pats) == len(actual) and all(p.matches(a) for p, a in zip(pats, actual)):
        return True, list(expected)
    shown = list(actual)
    sm = difflib.SequenceMatcher(None, [p.shape for p in pats],
                                 [shape(a, rules, ids) for a in actual], autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        for i, j in zip(range(i1, i2), range(j1, j2)):
            if tag != 'delete' and pats[i].matches(actual[j]):
                shown[j] = pats[i].line
    return False, shown


def unordered(expected, actual, rules, ids=False):
    """As a multiset: each expected line paired with a captured line it matches (a bipartite
    matching, since one captured line may match several patterns)."""
    pats = [Pattern(e, rules, ids) for e in expected]
    owner = {}  # captured line -> the expected line it is paired with

    def place(i, seen):
        for j, a in enumerate(actual):
            if j not in seen and pats[i].matches(a):
                seen.add(j)
                if j not in owner or place(owner[j], seen):
                    owner[j] = i
                    return True
        return False
    for i in range(len(pats)):
        place(i, set())
    shown = [pats[owner[j]].line if j in owner else a for j, a in enumerate(actual)]
    return len(owner) == len(pats) == len(actual), shown


SHUTDOWN_LINE = re.compile(r'Worker \d+ |Shutting down')


def split_shutdown(lines):
    """(before, the run from the first Worker/Shutting down line to the last, after)."""
    at = [k for k, line in enumerate(lines) if SHUTDOWN_LINE.match(line)]
    return (lines[:at[0]], lines[at[0]:at[-1] + 1], lines[at[-1] + 1:]) if at else (lines, [], [])


def shutdown_problems(lines):
    """The rules of a stage-08 shutdown log that these lines break."""
    def find(regex):
        return [(int(m.group(1)), k) for k, line in enumerate(lines) if (m := re.fullmatch(regex, line))]
    joins = find(r'Shutting down worker (\d+)')
    leaves = dict(find(r'Shutting down thread for worker: (\d+)'))
    announce = [k for k, line in enumerate(lines) if line == 'Shutting down server, gracefully!']
    problems = []
    if announce and any(k < announce[0] for k in [k for _, k in joins] + list(leaves.values())):
        problems.append('a worker shut down before "Shutting down server, gracefully!"')
    if [n for n, _ in joins] != list(range(len(joins))):
        problems.append(f'"Shutting down worker N" came in the order {[n for n, _ in joins]}, not 0, 1, 2, ...')
    for n, k in joins:
        if n > 0 and leaves.get(n - 1, len(lines)) > k:
            problems.append(f'"Shutting down worker {n}" came before "Shutting down thread for worker: {n - 1}"')
    for n, k in find(r'Worker (\d+) got a job; executing\.\.\.'):
        if n in leaves and k > leaves[n]:
            problems.append(f'"Worker {n} got a job" came after "Shutting down thread for worker: {n}"')
    return problems


def match_whole(expected, actual, rules):
    """(ok, expected and actual as the diff shows them, problems)."""
    if rules.shutdown:
        (eh, eb, et), (ah, ab, at) = split_shutdown(expected), split_shutdown(actual)
        parts = [ordered(eh, ah, rules), unordered(eb, ab, rules, ids=True), ordered(et, at, rules)]
        problems = shutdown_problems(ab)
        return (all(ok for ok, _ in parts) and not problems, expected,
                sum((shown for _, shown in parts), []), problems)
    if rules.any_order:
        ok, shown = unordered(expected, actual, rules)
        return ok, sorted(expected), sorted(shown), []
    ok, shown = ordered(expected, actual, rules)
    return ok, expected, shown, []


def match(expected, actual, rules):
    """Does the capture match the lesson's text? With `excerpt`, any run of as many lines may."""
    if not rules.excerpt:
        return match_whole(expected, actual, rules)
    best = None
    for start in range(max(1, len(actual) - len(expected) + 1)):
        found = match_whole(expected, actual[start:start + len(expected)], rules)
        if found[0]:
            return found
        score = sum(a == e for a, e in zip(found[1], found[2]))
        if best is None or score > best[0]:
            best = (score, found, start)
    ok, exp, act, problems = best[1]
    return ok, exp, act, problems + [
        f'excerpt: no run of {len(expected)} lines of the capture ({len(actual)} lines) matches; '
        f'the closest, from its line {best[2] + 1}, is shown']


def visible(line):
    return re.sub(r'[\x00-\x08\x0b-\x1f\x7f]', lambda m: '\\x%02x' % ord(m.group()), line)


def mismatch(block, captured):
    """None if the capture matches the block, else the lines that say how it does not."""
    ok, exp, act, problems = match(normalise(block.text), normalise(captured), block.rules)
    if ok:
        return None
    return (['rules: ' + (block.rules.text or 'none (exact, but for trailing spaces and blank lines at the ends)')]
            + problems + [visible(line) for line in difflib.unified_diff(
                exp, act, f'expected ({block.where})', 'actual', lineterm='')])


# ---- Running commands and servers -----------------------------------------------------------

def environment():
    """A student's fresh terminal (tools.clean_env: no make variables from a `make check-docs`
    around us, which would make a make inside say "Entering directory", or take our PORT), a
    UTF-8 locale, and curl without its progress meter, which it shows on a pipe but not on a
    terminal."""
    try:
        locale.setlocale(locale.LC_CTYPE, 'C.UTF-8')
        lc_all = 'C.UTF-8'
    except locale.Error:
        lc_all = 'C'
    curl_home = ROOT / 'build' / 'docs' / 'curl'
    curl_home.mkdir(parents=True, exist_ok=True)
    (curl_home / '.curlrc').write_text('no-progress-meter\n')
    return tools.clean_env(LC_ALL=lc_all, CURL_HOME=str(curl_home))


ENV = dict(os.environ)


def run(text, timeout):
    """Runs a block's commands to their end with bash, its stdout and stderr in one, as a
    terminal shows them. A block waits for its background jobs (`wait`): what is left of it
    at its end is killed."""
    r = tools.run(['bash', '-c', text], timeout, merge=True, env=ENV)
    return r._replace(output=r.output.decode('utf-8', 'replace'))


class Server(tools.Server):
    """A lesson's server, run as a terminal runs a foreground job."""

    def __init__(self, block):
        super().__init__(['bash', '-c', block.text], merge=True, env=ENV)
        self.block, self.checked = block, 0

    def how_it_ended(self):
        status = self.proc.poll()
        return f'exit status {status}' if status >= 0 else f'killed by {signal.Signals(-status).name}'

    def news(self):
        """(the complete lines printed since the last `server prints` check, whether that is all)."""
        done = not self.running()
        data = self.output()[self.checked:]
        return (data if done else data[:data.rfind(b'\n') + 1]), done


def port_holder():
    """What listens on the lessons' port, as ss says it; '' when nothing does."""
    return subprocess.run(['ss', '-Hltnp', f'sport = :{PORT}'], capture_output=True, text=True).stdout.strip()


def others_waiting(fd):
    """Is another process waiting for the flock on this file (/proc/locks marks waiters '->')?"""
    st = os.fstat(fd)
    key = f'{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}'
    try:
        with open('/proc/locks') as f:
            return any('->' in line and key in line.split() for line in f)
    except OSError:
        return False


def listing(text, output=''):
    lines = ['$ ' + line for line in text.split('\n')]
    out = output.rstrip('\n').split('\n')
    if output.strip():
        lines += ['output:'] + [visible(line) for line in out[-40:]]
    return lines


# ---- The checker ----------------------------------------------------------------------------

SUITE = re.compile(r'\bmake\b[^\n;&|]*\b(check|grade)')


class Checker:
    def __init__(self, verbose):
        self.verbose, self.counts, self.failures = verbose, {'ok': 0, 'FAILED': 0, 'skipped': 0}, []
        self.server, self.lock_fd, self.threads = None, None, []
        self.no_server = 'no server was started before it'  # why self.server is None

    def report(self, where, kind, outcome, note='', detail=()):
        print(f'{where:<34} {kind:<14} {outcome}{" (" + note + ")" if note else ""}', flush=True)
        for line in detail:
            print('    ' + line)
        self.counts[outcome] += 1
        if outcome == 'FAILED':
            self.failures.append(where)

    def show(self, b, what):
        if self.verbose:
            print(f'-- {b.where}: {what}\n' + '\n'.join('   | ' + line for line in b.text.split('\n')))

    # The lock that the test suite's default-port test takes: while one of our servers holds
    # 7878, no test server binds it, and the other way round.
    def lock(self):
        if self.lock_fd is not None:
            return True
        fd, deadline = os.open(ROOT, os.O_RDONLY | os.O_DIRECTORY), time.monotonic() + LOCK_SECONDS
        while time.monotonic() < deadline:
            if not others_waiting(fd):  # a test run waiting for its turn goes first
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    self.lock_fd = fd
                    return True
                except BlockingIOError:
                    pass
            time.sleep(0.05)
        os.close(fd)
        return False

    def unlock(self):
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None

    def check_file(self, items):
        for b in items:
            if b.kind == 'error':
                self.report(b.where, 'error', 'FAILED', b.reason)
            elif b.kind == 'skip':
                self.report(b.where, 'skip', 'skipped', b.reason)
            elif b.kind == 'command' and not b.parallel:
                self.command(b, self.run_here(b))
            elif b.kind == 'server':
                self.start_server(b)
            elif b.kind == 'prints':
                self.prints(b)
            elif b.kind == 'ctrl-c':
                self.ctrl_c(b)
        self.stop_server()
        self.server, self.no_server = None, 'no server was started before it'

    def run_here(self, b):
        self.show(b, 'command')
        # A command that runs the test suite would wait on our lock in its default-port test,
        # and we on it: let it have the lock (our server, listening, leaves it no race to lose).
        lend = self.lock_fd is not None and SUITE.search(b.text)
        if lend:
            self.unlock()
        # With no quoted output after it, every command of the block must succeed, not only
        # its last: bash -e stops at the first that fails.
        result = run(b.text if b.output else 'set -e\n' + b.text, b.timeout)
        if lend and self.server and self.server.running():
            self.lock()
        return result

    def command(self, b, r):
        if r.timed_out:
            self.report(b.where, 'command', 'FAILED', f'timed out after {b.timeout:g} s',
                        listing(b.text, r.output))
        elif r.status != 0 and b.output is None:
            self.report(b.where, 'command', 'FAILED',
                        f'exit status {r.status}, and no quoted output after it, so it must succeed',
                        listing(b.text, r.output))
        else:
            self.report(b.where, 'command', 'ok', f'exit status {r.status}, {r.seconds:.1f} s')
        if b.output:
            problems = mismatch(b.output, r.output)
            self.report(b.output.where, 'output', 'FAILED' if problems else 'ok', '',
                        ['command:'] + listing(b.text) + problems if problems else [])

    def start_server(self, b):
        self.show(b, 'server')
        self.stop_server()
        self.server, self.no_server = None, f'the server of line {b.line} did not start'
        if not self.lock():
            return self.report(b.where, 'server', 'FAILED', f'the lock on {ROOT} stayed taken '
                               f'for {LOCK_SECONDS} s (by a test run?)')
        deadline = time.monotonic() + 5  # a server that has just been stopped may take a moment
        while (holder := port_holder()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if holder:
            self.unlock()
            return self.report(b.where, 'server', 'FAILED', f'port {PORT} is in use, so the '
                               "lesson's server cannot start: stop what listens there", [holder])
        s = self.server = Server(b)
        s.wait(START_SECONDS, lambda: b'Listening on' in s.output())
        printed = s.output().decode('utf-8', 'replace')
        if 'Listening on' in printed:
            self.report(b.where, 'server', 'ok', 'listening')
        elif not s.running():
            self.report(b.where, 'server', 'FAILED', f'it ended ({s.how_it_ended()}) before it '
                        'printed "Listening on"', listing(b.text, printed))
        else:
            self.report(b.where, 'server', 'FAILED', f'no "Listening on" within {START_SECONDS} s',
                        listing(b.text, printed))

    def stop_server(self):
        """At the end of a file and before a new server: stop one still running, no failure."""
        if self.server:
            self.server.stop(signal.SIGINT, KILL_AFTER_SECONDS)
        self.unlock()

    def ctrl_c(self, b):
        s = self.server
        if s is None:
            self.report(b.where, 'ctrl-c', 'FAILED', self.no_server)
        elif not s.running():
            self.report(b.where, 'ctrl-c', 'ok', f'the server had already ended: {s.how_it_ended()}')
        elif s.stop(signal.SIGINT, CTRL_C_SECONDS):
            self.report(b.where, 'ctrl-c', 'ok', f'the server ended: {s.how_it_ended()}')
        else:
            self.report(b.where, 'ctrl-c', 'FAILED', f'the server still ran {CTRL_C_SECONDS} s after '
                        'SIGINT, and was killed')
        self.unlock()

    def prints(self, b):
        s = self.server
        if s is None:
            return self.report(b.where, 'server prints', 'FAILED', self.no_server)
        deadline = time.monotonic() + LAG_SECONDS
        while True:  # the server's log may lag the client's command a little
            data, done = s.news()
            problems = mismatch(b, data.decode('utf-8', 'replace'))
            if not problems or done or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        s.checked += len(data)
        self.report(b.where, 'server prints', 'FAILED' if problems else 'ok', '',
                    [f'server ({s.block.where}):'] + listing(s.block.text) + problems if problems else [])

    def start_test_runs(self, lessons):
        """The blocks that only run one stage's tests start now, side by side, one stage's after
        another (they build that stage's test binary), and are judged at the end."""
        stages = {}
        for _, items in lessons:
            for b in items:
                if b.kind == 'command' and b.parallel:
                    stages.setdefault(b.parallel, []).append(b)
        if not stages:
            return
        built = run('make -s tests', 600)  # the objects the runners share, built once
        if built.status != 0:
            print('make -s tests failed, so the test runs run in turn:\n' + built.output)
            for b in sum(stages.values(), []):
                b.parallel = None
            return
        for blocks in stages.values():
            for b in blocks:
                self.show(b, 'test run, started now, judged at the end')

            def work(blocks=blocks):
                for b in blocks:
                    b.result = run(b.text, b.timeout)
            self.threads.append((threading.Thread(target=work, daemon=True), blocks))
            self.threads[-1][0].start()

    def collect_test_runs(self):
        for thread, blocks in self.threads:
            thread.join()
            for b in blocks:
                self.command(b, b.result)

    def make_targets(self, lessons):
        """Every `make TARGET` in a ```sh block names a target of the Makefile."""
        have, named = makefile_targets(), set()
        for _, items in lessons:
            for b in items:
                for target in make_targets(b.text) if b.lang == 'sh' else []:
                    named.add(target)
                    if target not in have:
                        self.report(b.where, 'make target', 'FAILED', f'the Makefile has no target "{target}"')
        if named & have:
            self.report('(lessons)', 'make targets', 'ok', ', '.join(sorted(named & have)))

    def hints(self, paths):
        """Every hint of the test suite that names a lesson's section names a real heading."""
        count = bad = 0
        for path in paths:
            for line, text in c_strings(path):
                for m in re.finditer(r"stage (\d\d)'s lesson, \"([^\"]+)\"((?:,? and \"[^\"]+\")*)", text):
                    names = [m.group(2)] + re.findall(r'"([^"]+)"', m.group(3))
                    have = headings(m.group(1))
                    for name in names:
                        count += 1
                        if plain(name) not in have:
                            bad += 1
                            self.report(f'{os.path.relpath(path, ROOT)}:{line}', 'lesson hint', 'FAILED',
                                        f'stage {m.group(1)}\'s lesson has no heading "{name}"'
                                        if have else f'there is no stage {m.group(1)} lesson')
        if count > bad:
            self.report('(test hints)', 'lesson hints', 'ok', f'{count - bad} named sections exist')

    def drift(self):
        """What the docs say of the suite's table (tests.h, as the runner lists it) still holds:
        each lesson's "What the tests check" names, in a bullet's "(tests: ...)", every test
        its stage brings, and only tests that run on its stage (a pattern such as `survives_*`
        names the stage's own new tests it matches); each points total the docs quote for a
        STAGE=NN is what the table makes that stage's tests worth."""
        listed = run(f'{os.path.join(ROOT, "build", "tests", "check-step01")} --list', 60)
        tests = json.loads(listed.output)['tests']
        for lesson in sorted(glob.glob(os.path.join(ROOT, 'step[0-9][0-9]-*', 'README.md'))):
            where, stage = os.path.relpath(lesson, ROOT), int(os.path.basename(os.path.dirname(lesson))[4:6])
            lines = open(lesson, encoding='utf-8').read().split('\n')
            start = next((i for i, line in enumerate(lines) if line == '## What the tests check'), None)
            if start is None:
                self.report(where, 'tests named', 'FAILED', 'no "## What the tests check" section')
                continue
            end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith('## ')), len(lines))
            section = '\n'.join(lines[start:end])
            runs = [t['name'] for t in tests if t['first'] <= stage <= t['last']]
            new = [t['name'] for t in tests if t['first'] == stage]
            named, problems = set(), []
            for group in re.finditer(r'\(tests?:\s+([^)]*)\)', section):
                line = start + 1 + section[:group.start()].count('\n')
                for pattern in re.findall(r'`([^`]+)`', group.group(1)):
                    found = [n for n in fnmatch.filter(runs, pattern) if '*' not in pattern or n in new]
                    if not found:
                        problems.append(f'line {line}: `{pattern}` is no test that runs on stage {stage:02d}')
                    named.update(found)
            problems += [f'no bullet names {name}, which stage {stage:02d} brings (tests.h): add '
                         f'"(tests: `{name}`)" to the bullet of its rule' for name in new if name not in named]
            self.report(f'{where}:{start + 1}', 'tests named', 'FAILED' if problems else 'ok',
                        '; '.join(problems) or f'{len(new)} new tests, each named in a bullet')
        for doc in ('README.md', 'tests/README.md', 'tests/gradescope/README.md'):
            for paragraph in re.split(r'\n\s*\n', open(os.path.join(ROOT, doc), encoding='utf-8').read()):
                for m in re.finditer(r'total: ([\d.]+) / ([\d.]+) points', paragraph):
                    stages = set(re.findall(r'STAGE=(\d\d)', paragraph))
                    most = (sum(t['points'] for t in tests if t['first'] <= int(min(stages)) <= t['last'])
                            if len(stages) == 1 else None)
                    right = most is not None and float(m.group(1)) == float(m.group(2)) == most
                    self.report(doc, 'points quoted', 'ok' if right else 'FAILED',
                                f'"{m.group()}" for STAGE={min(stages)}' if right else
                                f'"{m.group()}": its paragraph names no one STAGE=NN' if most is None else
                                f'"{m.group()}": stage {min(stages)}\'s tests are worth {most:g} points (tests.h)')


def makefile_targets():
    """The Makefile's targets, from make's database (make -p). Asked for `.DEFAULT`, which it
    lacks, make prints the database and builds nothing. (`make -n TARGET` would not do: it
    runs every recipe line that calls $(MAKE), so `make -n grade` really grades.)"""
    out = subprocess.run(['make', '-pnq', '.DEFAULT'], cwd=ROOT, env=ENV, capture_output=True,
                         text=True).stdout
    targets, files, not_target = set(), False, False
    for line in out.split('\n'):
        files = files or line.startswith('# Files')
        m = re.match(r'([^\s#:=%][^:=]*?):(?!=)', line)
        if files and m and not not_target:
            targets.update(m.group(1).split())
        not_target = line.startswith('# Not a target')
    return targets


def make_targets(text):
    """The targets that the `make` commands of a block of shell name."""
    targets = []
    for line in text.replace('\\\n', ' ').split('\n'):
        try:
            words = list(shlex.shlex(line, posix=True, punctuation_chars=True))
        except ValueError:
            continue
        start, in_make, skip = True, False, False
        for w in words:
            if re.fullmatch(r'[;&|()]+', w):
                start, in_make = True, False
            elif start and (re.fullmatch(r'[A-Za-z_]\w*=.*', w) or w in ('time', 'env', 'sudo', 'exec')):
                continue
            elif start:
                start, in_make = False, w == 'make'
            elif in_make and w in ('-C', '-f', '--directory', '--file'):
                in_make = False  # another folder's Makefile: not ours to check
            elif in_make and skip:
                skip = False
            elif in_make and re.fullmatch(r'[<>]+&?', w):
                skip = True  # a redirection: the next word is a file
            elif in_make and not w.startswith('-') and '=' not in w and not w.isdigit():
                targets.append(w)
    return targets


def plain(heading):
    return re.sub(r'[`*]', '', heading).strip()


def headings(stage):
    """The headings (#, ##, ###) of stage NN's lesson, outside its fenced blocks."""
    found = set()
    for path in glob.glob(os.path.join(ROOT, f'step{stage}-*', 'README.md')):
        for _, line in outside(path, tools.fences(path)):
            m = re.match(r'#{1,3}\s+(.*?)\s*#*\s*$', line)
            if m:
                found.add(plain(m.group(1)))
    return found


def c_strings(path):
    """The string literals of a C file, adjacent ones joined as the compiler joins them, with
    the line each begins on."""
    token = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\'|/\*.*?\*/|//[^\n]*|\s+|[^"\'/\s]+|.', re.S)
    joined, current, line = [], None, 1
    for m in token.finditer(open(path, encoding='utf-8').read()):
        tok = m.group()
        if tok.startswith('"'):
            current = current or [line, '']
            current[1] += tok[1:-1]
        elif current and not (tok.isspace() or tok.startswith(('/*', '//'))):
            joined.append(current)
            current = None
        line += tok.count('\n')
    return [(line, re.sub(r'\\(.)', r'\1', text)) for line, text in joined + ([current] if current else [])]


def describe(b):
    """A block as --list shows it."""
    first = b.text.split('\n')[0] if b.text else ''
    rules = f'; {b.rules.text}' if b.rules and b.rules.text else ''
    return {'command': lambda: f'command{" (test run, in parallel)" if b.parallel else ""}'
                               f'{f" timeout {b.timeout:g}" if b.timeout != TIMEOUT else ""}: {first}',
            'server': lambda: f'server: {first}',
            'output': lambda: f'output of line {b.command.line}{rules}',
            'prints': lambda: f'server prints{rules}',
            'skip': lambda: f'skip: {b.reason}',
            'ctrl-c': lambda: 'ctrl-c',
            'text': lambda: 'plain block, not checked',
            'ignored': lambda: f'{b.lang} block, not a command',
            'error': lambda: f'ERROR: {b.reason}'}[b.kind]()


def main():
    ap = argparse.ArgumentParser(description='Check the lessons\' commands and quoted outputs.')
    ap.add_argument('files', nargs='*', help='lessons (default: every stage\'s, README.md, tests/README.md)')
    ap.add_argument('-v', '--verbose', action='store_true', help='print each block as it runs')
    ap.add_argument('--list', action='store_true', help='print the blocks found, run nothing')
    args = ap.parse_args()
    files = ([os.path.abspath(f) for f in args.files] or sorted(glob.glob(os.path.join(ROOT, 'step[0-9][0-9]-*', 'README.md')))
             + [os.path.join(ROOT, 'README.md'), os.path.join(ROOT, 'tests', 'README.md')])
    lessons = [(path, parse(path)) for path in files]
    if args.list:
        for _, items in lessons:
            for b in items:
                print(f'{b.where:<34} {describe(b)}')
        return 1 if any(b.kind == 'error' for _, items in lessons for b in items) else 0

    missing = [pkg for tool, pkg in NEEDED if shutil.which(tool) is None]
    if shutil.which('nc') and 'OpenBSD' not in subprocess.run(['nc', '-h'], capture_output=True, text=True).stderr:
        missing.append('netcat-openbsd')  # the lessons use its options (-N, -z)
    if missing:
        print(f'tests/docs.py needs the Debian packages: {" ".join(sorted(set(missing)))}\n'
              f'    apt-get install {" ".join(sorted(set(missing)))}', file=sys.stderr)
        return 2
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # or our servers would ignore Ctrl-C
    global ENV
    ENV = environment()
    built = run('make -s all', 600)
    if built.status != 0:
        print('make -s all failed:\n' + built.output, file=sys.stderr)
        return 1
    checker = Checker(args.verbose)
    try:
        checker.make_targets(lessons)
        checker.start_test_runs(lessons)
        for _, items in lessons:
            checker.check_file(items)
        checker.collect_test_runs()
        if not args.files:
            checker.hints(sorted(glob.glob(os.path.join(ROOT, 'tests', '*.c'))))
            checker.drift()
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr)
        return 130
    finally:
        tools.kill_all()
        checker.unlock()
    c = checker.counts
    print(f'docs: {c["ok"]} passed, {c["FAILED"]} failed, {c["skipped"]} skipped')
    if checker.failures:
        print('failed: ' + ' '.join(checker.failures))
    return 1 if c['FAILED'] else 0


if __name__ == '__main__':
    sys.exit(main())
