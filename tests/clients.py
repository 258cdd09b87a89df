#!/usr/bin/env python3
"""Real clients against stages 05 to 08: curl, Python's http.client, ApacheBench, Chromium.

The Check suite (make check) talks raw TCP and asserts exact bytes. This script asks another
question: do the clients people really use get the pages? For each of stages 05, 06, 07 and 08
it starts build/stepNN on port 0, from the repository root, and checks that

  - curl and http.client get GET / as 200 OK, with exactly Content-Length and
    Connection: close, and www/hello.html as the body; and GET /nope as 404 NOT FOUND with
    www/404.html;
  - ab (ApacheBench) gets 500 pages out of 500 requests, 8 at a time, none failed (ab only
    speaks HTTP/1.0, so its URL carries the request line the servers want: see AB_PATH);
  - headless Chromium shows the hello page (stages 05 and 08);
  - the server is still running after all of that.

Stage 08 is also checked for its shutdown: started with REQUESTS equal to ab's request count,
it must exit 0 by itself once ab is done; and with its default REQUESTS (4), Chromium's extra
connections must not crash it.

Run it from the repository root, after building the stages:

    make check-clients                     # builds the stages, then runs this script
    python3 tests/clients.py [BUILD_DIR]   # BUILD_DIR defaults to build

It needs curl, ab and chromium (Debian packages curl, apache2-utils, chromium); a missing one
fails its checks. One line per check, a summary, and exit status 0 only if every check passed.
"""

import http.client
import os
import re
import shutil
import signal
import sys
import tempfile

import tools

BUILD = "build"  # the folder of the stages' binaries, from the command line
ROOT = tools.ROOT
HELLO = open(os.path.join(ROOT, "www", "hello.html"), "rb").read()
NOT_FOUND = open(os.path.join(ROOT, "www", "404.html"), "rb").read()
# What a browser must show: the hello page's heading.
HEADING = re.search(rb"<h1>.*?</h1>", HELLO).group().decode()

# Enough connections that stage 08 never stops during the checks that are not about stopping.
MANY_REQUESTS = "100000"
AB_REQUESTS = 500
AB_CONCURRENCY = 8
# ab can only send "GET <path> HTTP/1.0", which every stage answers 404. The path is copied
# into the request line as it is, so a path holding a line end finishes the request line
# itself: ab sends "GET / HTTP/1.1\r\nX-Rest: HTTP/1.0\r\n" followed by its own headers, and the
# server sees exactly "GET / HTTP/1.1" and one more header.
AB_PATH = "/ HTTP/1.1\r\nX-Rest:"

PACKAGES = {"curl": "curl", "ab": "apache2-utils", "chromium": "chromium"}


class Failure(Exception):
    """A check failed; the message says why."""


def expect(condition, message):
    if not condition:
        raise Failure(message)


def exit_text(status):
    """A server's exit status in words: a negative status is the signal that killed it."""
    return f"killed by signal {-status}" if status < 0 else f"exited with status {status}"


def tail(data, lines=3):
    """The last few lines of a tool's output, for a failure message."""
    text = data.decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


# --- servers and tools ----------------------------------------------------------------------

class Server(tools.Server):
    """build/stepNN on port 0, run from the repository root."""

    def __init__(self, stage, *args):
        binary = os.path.join(BUILD, "step" + stage)
        if not os.access(binary, os.X_OK):
            raise Failure(f"{binary} not found: build it with make {binary}")
        try:
            super().__init__([os.path.abspath(binary), "0", *args])  # it runs from the root
        except OSError as error:
            raise Failure(f"cannot start {binary}: {error}")
        self.port = self.listen(10)
        if self.port is None:
            running, lines = self.running(), self.lines()
            self.stop()
            if lines:
                raise Failure(f"first line is {lines[0]!r}, not the Listening line")
            if running:
                raise Failure(f"no Listening line within 10 s: {tail(self.errors())}")
            raise Failure(f"{exit_text(self.proc.returncode)} before listening: "
                          f"{tail(self.errors())}")

    def lines(self):
        return self.output().decode(errors="replace").splitlines()

    def url(self, path="/"):
        return f"http://127.0.0.1:{self.port}{path}"


def run(argv, timeout):
    """Runs a client to its end, at most timeout seconds, with every process it started
    (Chromium starts many): tools.run. Returns (status, stdout, stderr)."""
    tool = argv[0]
    if shutil.which(tool) is None:
        raise Failure(f"{tool} not found: install the Debian package {PACKAGES[tool]}")
    done = tools.run(argv, timeout)
    expect(not done.timed_out, f"{tool} still running after {timeout} s: {tail(done.errors)}")
    return done.status, done.output, done.errors


# --- the checks ------------------------------------------------------------------------------

def check_curl(server, path, status_line, body):
    # --noproxy: a proxy set in the environment must not stand between curl and the server.
    status, out, err = run(["curl", "-sS", "-i", "--max-time", "10", "--noproxy", "*",
                            server.url(path)], 20)
    expect(status == 0, f"curl exited {status}: {tail(err)}")
    head, sep, got = out.partition(b"\r\n\r\n")
    expect(sep, f"no end of head in {out[:200]!r}")
    lines = head.decode(errors="replace").split("\r\n")
    expect(lines[0] == status_line, f"status line {lines[0]!r}, expected {status_line!r}")
    headers = sorted(lines[1:])
    wanted = sorted([f"Content-Length: {len(body)}", "Connection: close"])
    expect(headers == wanted, f"headers {headers}, expected {wanted}")
    expect(got == body, f"body of {len(got)} bytes differs from the page ({len(body)} bytes)")


def check_http_client(server, path, status, reason, body):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        got = response.read()
    finally:
        conn.close()
    expect((response.status, response.reason) == (status, reason),
           f"got {response.status} {response.reason}, expected {status} {reason}")
    length = response.getheader("Content-Length")
    expect(length == str(len(got)), f"Content-Length {length}, body {len(got)} bytes")
    expect(response.getheader("Connection") == "close",
           f"Connection: {response.getheader('Connection')}, expected close")
    expect(got == body, f"body of {len(got)} bytes differs from the page ({len(body)} bytes)")


def check_ab(server, concurrency=AB_CONCURRENCY):
    # -s: ab's own limit on waiting for one response, below our limit on the whole run.
    status, out, err = run(["ab", "-n", str(AB_REQUESTS), "-c", str(concurrency), "-s", "20",
                            server.url(AB_PATH)], 120)
    expect(status == 0, f"ab exited {status}: {tail(err)}")
    report = out.decode(errors="replace")

    def field(name):
        match = re.search(rf"^{name}:\s+(\d+)", report, re.MULTILINE)
        expect(match, f"no {name!r} in ab's report: {tail(out)}")
        return int(match.group(1))

    expect("Non-2xx responses" not in report,
           "ab got non-2xx responses: its request line was not exactly GET / HTTP/1.1")
    expect(field("Complete requests") == AB_REQUESTS,
           f"{field('Complete requests')} complete requests, expected {AB_REQUESTS}")
    expect(field("Failed requests") == 0, f"{field('Failed requests')} failed requests")
    expect(field("Document Length") == len(HELLO),
           f"document length {field('Document Length')}, expected {len(HELLO)}")


def chromium_dom(url):
    """The DOM headless Chromium builds for url, with a fresh profile."""
    profile = tempfile.mkdtemp(prefix="clients-chromium-")
    try:
        status, out, err = run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                                "--disable-quic", "--no-first-run",
                                "--disable-background-networking", "--disable-component-update",
                                "--disable-sync", f"--user-data-dir={profile}", "--dump-dom",
                                url], 60)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    expect(status == 0, f"chromium exited {status}: {tail(err)}")
    return out.decode(errors="replace")


def check_chromium(server):
    dom = chromium_dom(server.url())
    expect(HEADING in dom, f"no {HEADING} in the page Chromium shows: {dom[:200]!r}")


def check_alive(server):
    status = server.proc.poll()
    if status is not None:
        raise Failure(f"server {exit_text(status)}: {tail(server.errors())}")


def check_ab_shutdown():
    """Stage 08 with REQUESTS = ab's -n serves every request, then exits 0 by itself.

    ab counts a connection as started only once it is connected, so with several at a time it
    opens a few more than -n near the end (502 to 504 for -n 500 -c 8) and drops the extra
    ones unused. Against a server that stops after exactly -n, those meet a closed listener
    and ab aborts on "Connection refused". One connection at a time, ab opens exactly -n."""
    server = Server("08", str(AB_REQUESTS))
    try:
        check_ab(server, concurrency=1)
        expect(server.wait(30), f"still running 30 s after its {AB_REQUESTS} requests")
        status = server.proc.returncode
        expect(status == 0, f"{exit_text(status)}: {tail(server.errors())}")
        expect("Shutting down server, gracefully!" in server.lines(),
               "no 'Shutting down server, gracefully!' line")
    finally:
        server.stop()


def check_chromium_default_requests():
    """Stage 08 with its default REQUESTS (4): a browser opens more connections than it loads
    pages (a spare one it may never use, the favicon), and each counts; the page must still
    show, and the server must not crash. Returns what happened, for the report."""
    server = Server("08")
    try:
        check_chromium(server)
        if server.running():
            # Still waiting for more connections: a stop signal must end it cleanly.
            seen = "was still running, exited 0 on SIGTERM"
            server.proc.send_signal(signal.SIGTERM)
            expect(server.wait(30), "still running 30 s after SIGTERM")
        else:
            seen = "exited 0 by itself"
        status = server.proc.returncode
        expect(status == 0, f"{exit_text(status)}: {tail(server.errors())}")
        # Each accepted connection becomes one job, and every job runs before the exit.
        jobs = sum("got a job" in line for line in server.lines())
        return f"Chromium made {jobs} connection(s); the server {seen}"
    finally:
        server.stop()


# --- running the checks ----------------------------------------------------------------------

failures = []
passes = 0


def check(name, function, *args):
    global passes
    try:
        note = function(*args)
    except Failure as error:
        print(f"FAIL {name}: {error}")
        failures.append(name)
    except Exception as error:  # a client error (refused, reset, timeout) is a failure too
        print(f"FAIL {name}: {type(error).__name__}: {error}")
        failures.append(name)
    else:
        passes += 1
        print(f"ok   {name}" + (f": {note}" if note else ""))


def stage_checks(stage):
    name = f"stage {stage}"
    try:
        server = Server(stage, MANY_REQUESTS) if stage == "08" else Server(stage)
    except Failure as error:
        print(f"FAIL {name} start: {error}")
        failures.append(f"{name} start")
        return
    try:
        check(f"{name} curl GET /", check_curl, server, "/", "HTTP/1.1 200 OK", HELLO)
        check(f"{name} curl GET /nope", check_curl, server, "/nope", "HTTP/1.1 404 NOT FOUND",
              NOT_FOUND)
        check(f"{name} http.client GET /", check_http_client, server, "/", 200, "OK", HELLO)
        check(f"{name} http.client GET /nope", check_http_client, server, "/nope", 404,
              "NOT FOUND", NOT_FOUND)
        check(f"{name} ab -n {AB_REQUESTS} -c {AB_CONCURRENCY} GET /", check_ab, server)
        if stage == "05":
            check(f"{name} chromium GET /", check_chromium, server)
        check(f"{name} server still running after the clients", check_alive, server)
    finally:
        server.stop()
    if stage == "08":
        check(f"{name} ab -n {AB_REQUESTS} -c 1 with REQUESTS {AB_REQUESTS}: exits 0 by itself",
              check_ab_shutdown)
        check(f"{name} chromium GET / with default REQUESTS (4)",
              check_chromium_default_requests)


def main():
    global BUILD
    if len(sys.argv) > 2:
        sys.exit("usage: python3 tests/clients.py [BUILD_DIR]")
    BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
    # A SIGTERM (say, from a CI timeout) unwinds through the finally blocks, so that no
    # server is left running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        for stage in ("05", "06", "07", "08"):
            stage_checks(stage)
    except KeyboardInterrupt:
        sys.exit("interrupted")
    print(f"{passes} passed, {len(failures)} failed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
