#!/usr/bin/env python3
"""The benchmark behind `make bench`: the lessons in numbers, and speed against nginx.

What it measures, all on 127.0.0.1, every connection carrying one request:

1. Throughput and latency (p50, p99, as wrk reports them) of `GET /` for stages 05, 07 and 08
   at 1, 16 and 64 concurrent clients, with wrk sending `Connection: close`. Where nginx is
   installed it serves the same www/ as a reference, and each concurrency level runs every
   server back to back, round after round, so that each stage's ratio to nginx is taken
   run by run (the median of the rounds' ratios) on a machine that may be busy.
2. Server CPU time per request: utime + stime from /proc/PID/stat (for nginx, the master and
   every worker) before and after each run, divided by the requests wrk completed.
3. One client on one core: wrk and the server both pinned to CPU 0 (taskset), stage 08 against
   an nginx with a single worker.
4. 1000 connections opened at once, each timed from the start of its connect to the last byte
   of its response, for stage 08 and nginx.
5. The lesson of stages 06 and 07: how long a `GET /` takes while k = 0 to 5 slow requests
   (`GET /sleep`) are in flight, on copies of stages 06, 07 and 08 built here with a short sleep.
6. A picture of it: build/bench/timeline.svg, the same eight requests against stage 06 and 07.
7. What a thread per connection costs: stage 07 and the naive server of its lesson (listing
   7.0, built from the lesson as `make check-listings` builds it), each with 1000 idle clients
   connected: the server's threads and memory.

Everything is printed as Markdown and written to build/bench/results.md, with a section that
states, for stage 08, which of its two targets held in this run: at least 0.95× nginx's
requests per second, and at most nginx's CPU per request, at every client count (ratios paired
run by run, the median of the rounds). A target that misses is a result, not a
failure: the exit status is 0. It is 1 when a run is invalid (a response other than 200, a
socket error, a server that died), and 2 when something the benchmark needs is missing.

Run it with `make bench`, which builds the stages first and installs wrk where it can, or by
hand from the repository root, after `make`:

    python3 tests/bench.py [BUILD_DIR]        (BUILD_DIR defaults to build)

It needs Python 3 (standard library only), wrk (Debian package wrk) and taskset (util-linux);
nginx (Debian package nginx or nginx-light) is optional. It takes about three minutes.
"""

import errno
import html
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import listings  # the lessons' own listing machinery, for listing 7.0
import tools

# ---------------------------------------------------------------------------------------------
# Settings. Together they keep the whole run to about three minutes.

ROOT = tools.ROOT  # the repository root: servers read www/ there
OUT = ROOT / "build" / "bench"  # everything the benchmark writes goes here

CLIENTS = (1, 16, 64)  # concurrent wrk connections
RUN_SECONDS = 3  # length of one wrk run
ROUNDS = 3  # runs of each server at each level, interleaved
PINNED_ROUNDS = 3  # rounds of the one-core comparison
BURST_SIZE = 1000  # connections opened at once
BURST_ROUNDS = 5
BURST_TIMEOUT = 30.0  # seconds a whole burst may take before its stragglers count as failures
SLEEP_SECONDS = 2  # GET /sleep in the copies built for the lesson and the timeline
MAX_SLOW = 5  # the lesson table goes from 0 to this many slow requests in flight
SLOW_HEAD_START = 0.2  # seconds between sending the slow requests and timing GET /
TIMELINE_ORDER = ("sleep", "root") * 4  # the timeline's requests, in the order they are sent
TIMELINE_GAP = 0.010  # seconds between two of them
MANY_REQUESTS = 1_000_000_000  # stage 08's REQUESTS: far more than any run makes
START_TIMEOUT = 5.0  # seconds a server may take to start listening

REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
SLEEP_REQUEST = b"GET /sleep HTTP/1.1\r\nHost: x\r\n\r\n"
PAGE = (ROOT / "www" / "hello.html").read_bytes()

# Every run that cannot be trusted (non-200 answers, socket errors, a server that died) is
# reported here and makes the exit status 1 at the end.
PROBLEMS = []


def problem(text):
    """Records an invalid run and says so at once on stderr."""
    PROBLEMS.append(text)
    print(f"  INVALID: {text}", file=sys.stderr, flush=True)


def progress(text):
    """Progress goes to stderr, so that stdout carries only the Markdown results."""
    print(text, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Small helpers: formatting, medians, processes.


def fmt_time(seconds):
    """A duration in the unit that reads best: 87 µs, 1.59 ms, 4.20 s."""
    if seconds is None:
        return "–"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:  # three significant digits: 1.59 ms, 12.3 ms, 991 ms
        digits = 2 if seconds < 0.01 else 1 if seconds < 0.1 else 0
        return f"{seconds * 1e3:.{digits}f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(ratio):
    return "–" if ratio is None else f"{ratio:.2f}×"


def percentile(ordered, fraction):
    """The nearest-rank percentile of a sorted list: the smallest value with at least that
    fraction of the values at or below it."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_of(runs, key):
    """The median of one number over a server's runs, leaving out the invalid ones (None)."""
    return median_or_none([run[key] if run else None for run in runs])


def paired_ratio(numerators, denominators):
    """The median of round-by-round ratios: each round's two runs ran seconds apart, so the
    machine's load at that moment weighs on both alike."""
    ratios = [a / b for a, b in zip(numerators, denominators) if a is not None and b]
    return statistics.median(ratios) if ratios else None


def first_line(command):
    """The first line a tool prints about itself (on stdout or stderr), or 'not found'."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def read_stat(pid):
    """The fields of /proc/PID/stat after the command name, or None once the process is gone.
    The name is in parentheses and may itself hold spaces or parentheses: split after the
    last one. rest[0] is field 3 (state), so field N is rest[N - 3]."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks: for the thread-group leader's stat file the
    kernel sums all its threads, the live and the finished ones."""
    rest = read_stat(pid)
    return int(rest[11]) + int(rest[12]) if rest else 0


def children_of(parent):
    """The pids whose parent is parent (nginx's workers are its master's children)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            rest = read_stat(int(entry))
            if rest and int(rest[1]) == parent:
                found.append(int(entry))
    return sorted(found)


def raise_file_limit(wanted):
    """Lets this process (and the servers it starts, which inherit the limit) hold wanted
    descriptors, or as many as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    """A port nobody listens on right now, for nginx, which cannot be told port 0."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# HTTP by hand: one request per connection, read to the end.


def split_response(data):
    """(status line, body) of a whole response; the body is what follows the empty line."""
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0].decode("latin-1"), body


def is_hello(data):
    """True for a 200 response carrying exactly www/hello.html."""
    status, body = split_response(data)
    return status.startswith("HTTP/1.1 200") and body == PAGE


def send_request(port, request, timeout=30.0):
    """Connects and sends a request; the caller reads the answer with finish_request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    return sock


def finish_request(sock):
    """Reads the answer to its end (the server closes), and returns it with the time of its
    last byte."""
    chunks = []
    with sock:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks), time.perf_counter()


def timed_get(port, request=REQUEST):
    """One whole request: (response, seconds from connect to the last byte)."""
    start = time.perf_counter()
    data, end = finish_request(send_request(port, request))
    return data, end - start


# ---------------------------------------------------------------------------------------------
# Servers. Each is started, checked with one real request, and stopped in a finally block.


class Server(tools.Server):
    """A server being measured: its name, its port, and the pids whose CPU time counts. Its
    output goes to files under build/bench/: a stage's log, a line per request, would fill
    /tmp where that is memory."""

    def __init__(self, name, command, port=None, logs=()):
        super().__init__(command, folder=OUT)
        self.name = name
        self.port = port
        self.logs = logs  # nginx's error log, beside its stderr, for a post-mortem
        self.workers = []  # nginx's worker processes; a stage is one process
        self.response_bytes = None
        self.clean_exit = False  # stage 08 must exit with status 0 on SIGTERM

    def pids(self):
        return [self.proc.pid] + self.workers

    def cpu_seconds(self):
        return sum(cpu_ticks(pid) for pid in self.pids()) / os.sysconf("SC_CLK_TCK")

    def alive(self):
        """False when the server, or one of nginx's workers, has died."""
        if not self.running():
            return False
        return not self.workers or children_of(self.proc.pid) == self.workers

    def last_words(self):
        """The tail of what the server wrote on stderr, to explain a death."""
        text = self.errors().decode(errors="replace")[-400:]
        for path in self.logs:
            if path.exists():
                text += path.read_text(errors="replace")[-400:]
        return text.strip().replace("\n", " | ") or "nothing on stderr"

    def check(self):
        """One GET / that must come back as the hello page; remembers its size."""
        data, _ = timed_get(self.port)
        if not is_hello(data):
            raise RuntimeError(f"{self.name}: GET / answered {split_response(data)[0]!r}")
        self.response_bytes = len(data)

    def stop(self):
        """SIGTERM (stage 08 shuts down gracefully; nginx's master stops its workers, waits
        for them and exits), then SIGKILL for whatever of it lingers after 10 s."""
        if not self.running():
            return super().stop()
        super().stop(signal.SIGTERM, 10)
        if self.clean_exit and self.proc.returncode != 0:
            problem(f"{self.name}: exit status {self.proc.returncode} on SIGTERM, not 0")


def start_stage(name, binary, pinned=False, extra_args=()):
    """Starts a stage on port 0, and checks it with one GET /."""
    command = ["taskset", "-c", "0"] if pinned else []
    server = Server(name, command + [str(binary), "0", *extra_args])
    try:
        server.port = server.listen(START_TIMEOUT)
        if server.port is None and not server.running():
            raise RuntimeError(f"{name} exited with status {server.proc.returncode} before listening")
        if server.port is None:
            raise RuntimeError(f"{name} printed no Listening line within {START_TIMEOUT:.0f} s")
        server.check()
        return server
    except BaseException:
        server.stop()
        raise


def start_server(name, binary, **options):
    """start_stage, with the REQUESTS argument for stage 08, which would otherwise shut down
    after 4 connections; it is expected to exit with status 0 when stopped."""
    if not name.startswith("stage 08"):
        return start_stage(name, binary, **options)
    server = start_stage(name, binary, extra_args=(str(MANY_REQUESTS),), **options)
    server.clean_exit = True
    return server


# ---------------------------------------------------------------------------------------------
# nginx, the reference: a configuration of its own under build/bench/, nothing from /etc.

# The settings, stated in the results. They are common production ones; keepalive is off so
# that nginx, like the stages, serves one request per connection.
NGINX_SETTINGS = (
    "worker_processes auto (one per CPU), worker_connections 4096, "
    "sendfile on, tcp_nopush on, tcp_nodelay on, open_file_cache off, "
    "listen 127.0.0.1 with nginx's default backlog (511, as the stages) and no reuseport, "
    "keepalive_timeout 0, an access log line per request (as the stages log a line per "
    "request), error_log at level error"
)


def nginx_version():
    match = re.search(r"nginx/(\d+)\.(\d+)\.(\d+)", first_line(["nginx", "-v"]))
    return tuple(int(part) for part in match.groups()) if match else (0, 0, 0)


def nginx_missing_modules():
    """The modules this nginx was built without: their temp-path directives would be errors."""
    built = subprocess.run(["nginx", "-V"], capture_output=True, text=True).stderr
    return set(re.findall(r"--without-http_(\w+)_module", built))


def nginx_config(prefix, port, workers):
    """An nginx.conf that serves www/ on 127.0.0.1:port with every path under prefix."""
    temp_paths = {
        "client_body": "client_body_temp_path",
        "proxy": "proxy_temp_path",
        "fastcgi": "fastcgi_temp_path",
        "uwsgi": "uwsgi_temp_path",
        "scgi": "scgi_temp_path",
    }
    missing = nginx_missing_modules()
    temps = "".join(
        f'    {directive} "{prefix}/temp/{module}";\n'
        for module, directive in temp_paths.items()
        if module not in missing
    )
    # Started as root, nginx would switch its workers to an unprivileged user, who may not be
    # allowed to read the repository; as anybody else it switches nothing, and the directive
    # would only draw a warning.
    user = "user root;\n" if os.geteuid() == 0 else ""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 8192 if os.geteuid() == 0 or hard == resource.RLIM_INFINITY else min(8192, hard)
    return f"""# Generated by tests/bench.py for make bench; rewritten on every run.
{user}daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {nofile};
pid "{prefix}/nginx.pid";
error_log "{prefix}/error.log" error;
events {{
    worker_connections 4096;
}}
http {{
    types {{
        text/html html;
    }}
    default_type application/octet-stream;
    access_log "{prefix}/access.log";
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 0;
{temps}    server {{
        listen 127.0.0.1:{port};
        root "{ROOT / 'www'}";
        index hello.html;
    }}
}}
"""


def start_nginx(name, workers="auto", pinned=False):
    """Starts nginx in the foreground (daemon off) with its master and workers; retries on
    another port if the free one was taken between the look and the bind."""
    prefix = OUT / "nginx"
    (prefix / "temp").mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        port = free_port()
        conf = prefix / ("nginx.conf" if workers == "auto" else f"nginx-{workers}-worker.conf")
        conf.write_text(nginx_config(prefix, port, workers))
        command = ["taskset", "-c", "0"] if pinned else []
        command += ["nginx", "-p", str(prefix), "-c", str(conf)]
        if nginx_version() >= (1, 19, 5):  # -e: no look at the default error log at all
            command += ["-e", str(prefix / "error.log")]
        server = Server(name, command, port, [prefix / "error.log"])
        try:
            if wait_for_nginx(server):
                # As with the stages' log: nginx goes on writing into the file, unlinked, so
                # that it never fills the disk.
                (prefix / "access.log").unlink(missing_ok=True)
                return server
        except BaseException:
            server.stop()
            raise
        server.stop()
    raise RuntimeError(f"nginx did not start: {server.last_words()}")


def wait_for_nginx(server):
    """True once nginx answers GET / and its workers are known; False if it exited (say the
    port was taken). The workers start within moments of each other: wait a little after
    the first answer, then take the list of the master's children."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not server.running():
            return False
        try:
            server.check()
        except OSError:
            time.sleep(0.02)
            continue
        time.sleep(0.3)
        server.workers = children_of(server.proc.pid)
        return True
    raise RuntimeError(f"nginx did not answer within {START_TIMEOUT:.0f} s")


# ---------------------------------------------------------------------------------------------
# wrk runs: one server, one concurrency level, RUN_SECONDS long.


def parse_wrk_time(text):
    """wrk prints durations as 87.00us, 1.59ms, 2.01s, 1.00m."""
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(number) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def parse_wrk(output):
    """The numbers of one wrk --latency report: requests, requests/s, p50, p99, and what
    makes a run invalid (responses of 400 and up, socket errors)."""

    def find(pattern, default=None):
        match = re.search(pattern, output)
        return match.groups() if match else default

    requests = find(r"(\d+) requests in")
    rps = find(r"Requests/sec:\s+([\d.]+)")
    latency = {p: find(rf"\s{p}%\s+(\S+)") for p in ("50", "99")}
    errors = find(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", ("0",) * 4)
    non_2xx = find(r"Non-2xx or 3xx responses: (\d+)", ("0",))
    return {
        "requests": int(requests[0]) if requests else 0,
        "rps": float(rps[0]) if rps else None,
        "p50": parse_wrk_time(latency["50"][0]) if latency["50"] else None,
        "p99": parse_wrk_time(latency["99"][0]) if latency["99"] else None,
        "errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors))),
        "non_2xx": int(non_2xx[0]),
    }


def wrk_command(port, clients, pinned):
    """wrk with one thread per client, up to one per CPU; pinned: wrk itself on CPU 0 too."""
    threads = 1 if pinned else min(clients, os.cpu_count() or 1)
    command = ["taskset", "-c", "0"] if pinned else []
    return command + [
        "wrk", "-H", "Connection: close", "--latency",
        "-t", str(threads), "-c", str(clients), "-d", f"{RUN_SECONDS}s",
        f"http://127.0.0.1:{port}/",
    ]


def run_wrk(server, clients, pinned=False):
    """One wrk run against server, with the server's CPU time read before and after. Returns
    the parsed numbers, with cpu_per_request; an invalid run is reported and gives None."""
    label = f"{server.name}, {clients} client{'s' if clients > 1 else ''}"
    if not server.alive():
        problem(f"{label}: the server is no longer running ({server.last_words()})")
        return None
    cpu_before = server.cpu_seconds()
    done = subprocess.run(wrk_command(server.port, clients, pinned), capture_output=True,
                          text=True, timeout=RUN_SECONDS + 30)
    time.sleep(0.05)  # the last requests wrk gave up on may still be in the server's hands
    cpu_used = server.cpu_seconds() - cpu_before
    result = parse_wrk(done.stdout)
    errors = {kind: n for kind, n in result["errors"].items() if n}
    if not server.alive():
        problem(f"{label}: the server died during the run ({server.last_words()})")
    elif done.returncode != 0 or result["rps"] is None or result["requests"] == 0:
        problem(f"{label}: wrk failed: {(done.stderr or done.stdout).strip()[:200]}")
    elif result["non_2xx"] or errors:
        problem(f"{label}: {result['non_2xx']} responses not 2xx/3xx, socket errors {errors or 'none'}")
    else:
        result["cpu_per_request"] = cpu_used / result["requests"]
        return result
    return None


# ---------------------------------------------------------------------------------------------
# Parts 1 and 2: the throughput matrix and CPU time, every server back to back at each level.


def throughput_matrix(servers):
    """results[name][clients] = a list of ROUNDS run results (None where invalid). Each round
    starts with a different server, so that no server always runs right after the same one."""
    results = {server.name: {c: [] for c in CLIENTS} for server in servers}
    for clients in CLIENTS:
        for round_index in range(ROUNDS):
            progress(f"  {clients} client(s), round {round_index + 1} of {ROUNDS}")
            shift = round_index % len(servers)
            for server in servers[shift:] + servers[:shift]:
                results[server.name][clients].append(run_wrk(server, clients))
    return results


def field(runs, key):
    """One number from every run, None for invalid runs, so that rounds stay aligned."""
    return [run[key] if run else None for run in runs]


def matrix_rows(results, reference):
    """A Markdown table: for each level and server, the median of its rounds, and its ratio
    to the reference (nginx) taken round by round."""
    rows = [
        "| clients | server | requests/s | × nginx | p50 | p99 | CPU per request | CPU × nginx | valid runs |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for clients in CLIENTS:
        for name, per_level in results.items():
            runs = per_level[clients]
            ref = results[reference][clients] if reference else None
            rps, cpu = median_of(runs, "rps"), median_of(runs, "cpu_per_request")
            rps_ratio = paired_ratio(field(runs, "rps"), field(ref, "rps")) if ref else None
            cpu_ratio = (paired_ratio(field(runs, "cpu_per_request"), field(ref, "cpu_per_request"))
                         if ref else None)
            valid = sum(run is not None for run in runs)
            rows.append(
                f"| {clients} | {name} | {rps:,.0f} | {fmt_ratio(rps_ratio)} | "
                f"{fmt_time(median_of(runs, 'p50'))} | {fmt_time(median_of(runs, 'p99'))} | "
                f"{fmt_time(cpu)} | {fmt_ratio(cpu_ratio)} | {valid} of {len(runs)} |"
                if rps is not None
                else f"| {clients} | {name} | invalid | – | – | – | – | – | 0 of {len(runs)} |"
            )
    return rows


# ---------------------------------------------------------------------------------------------
# Part 3: one client on one core.


def pinned_comparison(stage08_binary, with_nginx):
    """Stage 08 and a one-worker nginx, both on CPU 0 with wrk, one client, interleaved.
    Returns {name: [runs]}."""
    servers = []
    try:
        servers.append(start_server("stage 08", stage08_binary, pinned=True))
        if with_nginx:
            servers.append(start_nginx("nginx", workers=1, pinned=True))
        results = {server.name: [] for server in servers}
        for round_index in range(PINNED_ROUNDS):
            progress(f"  round {round_index + 1} of {PINNED_ROUNDS}")
            for server in servers[round_index % 2 :] + servers[: round_index % 2]:
                results[server.name].append(run_wrk(server, 1, pinned=True))
        return results
    finally:
        for server in servers:
            server.stop()


# ---------------------------------------------------------------------------------------------
# Part 4: a burst of simultaneous connections.


class BurstClient:
    """One connection of the burst: its socket (made before the clock starts), when its
    connect began, what it received, and when the last byte came."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setblocking(False)
        self.start = self.end = self.error = None
        self.sent = False
        self.data = bytearray()

    def launch(self, port):
        """Starts the connect and, where it completed at once (loopback usually does), sends
        the request too. Returns False when the connection already failed."""
        self.start = time.perf_counter()
        code = self.sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            self.error = os.strerror(code)
            return False
        self.try_send()
        return self.error is None

    def try_send(self):
        try:
            self.sock.send(REQUEST)  # a few bytes into an empty socket buffer: sent whole
            self.sent = True
        except (BlockingIOError, InterruptedError):
            pass  # not connected yet: epoll says when it is writable
        except OSError as error:
            self.error = error.strerror

    def read(self):
        """Reads what has come, up to the end of the stream. True once finished."""
        while True:
            try:
                chunk = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as error:
                self.error = error.strerror
                return True
            if not chunk:
                self.end = time.perf_counter()
                return True
            self.data += chunk

    def step(self):
        """Moves the connection on after an epoll event; True once it is finished."""
        if self.sent:
            return self.read()
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.error = os.strerror(code)
            return True
        self.try_send()
        return self.error is not None


def burst_service(poller, pending, timeout):
    """Handles the connections epoll reports ready, and forgets the finished ones."""
    for fd, _ in poller.poll(timeout):
        client = pending[fd]
        was_sent = client.sent
        if client.step():
            poller.unregister(fd)
            client.sock.close()
            del pending[fd]
        elif client.sent and not was_sent:
            poller.modify(fd, select.EPOLLIN)


def burst(port):
    """Opens BURST_SIZE connections at once, each sending one GET /, and returns them all
    once answered. The sockets are made beforehand, so that the loop does little more than
    connect and send; every 64 connects it reads whatever answers have come, so that an
    early answer is not timed late just because the client was still busy connecting."""
    clients = [BurstClient() for _ in range(BURST_SIZE)]
    poller = select.epoll()
    pending = {}
    for index, client in enumerate(clients):
        if client.launch(port):
            pending[client.sock.fileno()] = client
            poller.register(client.sock, select.EPOLLIN if client.sent else select.EPOLLOUT)
        else:
            client.sock.close()
        if index % 64 == 63:
            burst_service(poller, pending, 0)
    deadline = time.perf_counter() + BURST_TIMEOUT
    while pending and time.perf_counter() < deadline:
        burst_service(poller, pending, 1.0)
    for client in pending.values():  # stragglers past the time limit
        client.error = "no answer within the time limit"
        client.sock.close()
    poller.close()
    return clients


def burst_result(server, clients):
    """p50, p99 and max of one burst; failures and wrong answers make it invalid."""
    failed = [c for c in clients if c.error or c.end is None or not is_hello(bytes(c.data))]
    if failed:
        reasons = sorted({c.error or split_response(bytes(c.data))[0] or "empty answer" for c in failed})
        problem(f"{server.name}, {BURST_SIZE} connections: {len(failed)} failed "
                f"({'; '.join(reasons)[:200]})")
        return None
    times = sorted(c.end - c.start for c in clients)
    spread = clients[-1].start - clients[0].start  # how long the client took to start them all
    return {"p50": percentile(times, 0.50), "p99": percentile(times, 0.99), "max": times[-1],
            "spread": spread}


def burst_comparison(servers):
    """BURST_ROUNDS bursts against each server, interleaved, after one burst each that is
    not counted (the first burst a client or a server process sees pays for page faults
    and allocations). Returns {name: [results]}."""
    for server in servers:
        burst(server.port)
        time.sleep(0.5)  # let the connections close before the next burst
    results = {server.name: [] for server in servers}
    for round_index in range(BURST_ROUNDS):
        progress(f"  round {round_index + 1} of {BURST_ROUNDS}")
        shift = round_index % len(servers)
        for server in servers[shift:] + servers[:shift]:
            if not server.alive():
                problem(f"{server.name}: no longer running before the burst ({server.last_words()})")
                results[server.name].append(None)
                continue
            results[server.name].append(burst_result(server, burst(server.port)))
            time.sleep(0.5)
    return results


# ---------------------------------------------------------------------------------------------
# Parts 5 and 6: the lesson and its picture, with short-sleep copies of stages 06, 07 and 08.


def build_short_sleep_copies():
    """Builds stages 06, 07 and 08 with GET /sleep taking SLEEP_SECONDS, into build/bench/."""
    binaries = {}
    for stage, folder in (("06", "step06-sleep"), ("07", "step07-pool"), ("08", "step08-shutdown")):
        sources = sorted(str(path) for path in (ROOT / folder).glob("*.c"))
        target = OUT / f"step{stage}-sleep{SLEEP_SECONDS}"
        command = [os.environ.get("CC", "cc"), *tools.stage_flags(), "-O2",
                   f"-DSLEEP_SECONDS={SLEEP_SECONDS}", "-o", str(target), *sources]
        subprocess.run(command, check=True)
        binaries[f"stage {stage}"] = target
    return binaries


def slow_requests_in_flight(server, count):
    """Sends count GET /sleep, then SLOW_HEAD_START later times one GET /. Returns that time,
    after every slow request has been answered (the next count starts from a quiet server)."""
    patience = SLEEP_SECONDS * (count + 2)  # the last slow request on one thread waits for all
    slow = [send_request(server.port, SLEEP_REQUEST, timeout=patience) for _ in range(count)]
    time.sleep(SLOW_HEAD_START)
    data, elapsed = timed_get(server.port)
    answers = [finish_request(sock)[0] for sock in slow]
    if not is_hello(data) or not all(is_hello(answer) for answer in answers):
        problem(f"{server.name}, {count} slow requests: an answer was not the hello page")
        return None
    return elapsed


def lesson_series(name, binary, out):
    """The GET / times of one stage for 0 to MAX_SLOW slow requests, into out[name]."""
    server = None
    try:
        server = start_server(f"{name} sleep{SLEEP_SECONDS}", binary)
        out[name] = [slow_requests_in_flight(server, count) for count in range(MAX_SLOW + 1)]
    except Exception as error:  # reported, and the other threads go on
        problem(f"{name}, slow requests: {error}")
    finally:
        if server:
            server.stop()


def timeline_request(port, kind, send_at, out, index):
    """Sends one request of the timeline at its time; out[index] = (kind, sent, finished)."""
    time.sleep(max(0.0, send_at - time.perf_counter()))
    sent = time.perf_counter()
    try:
        request = SLEEP_REQUEST if kind == "sleep" else REQUEST
        data, finished = finish_request(send_request(port, request))
    except OSError:
        return  # out[index] stays None: reported by timeline_series
    out[index] = (kind, sent, finished, is_hello(data))


def timeline_series(name, binary, out):
    """The eight timeline requests against one stage, each in a thread of its own, so that a
    request waiting in the server does not hold up the sending of the next one."""
    server = None
    try:
        server = start_server(f"{name} timeline", binary)
        bars = [None] * len(TIMELINE_ORDER)
        start = time.perf_counter() + 0.05
        threads = [
            threading.Thread(target=timeline_request,
                             args=(server.port, kind, start + i * TIMELINE_GAP, bars, i))
            for i, kind in enumerate(TIMELINE_ORDER)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if not all(bar and bar[3] for bar in bars):
            problem(f"{name}, timeline: a request failed or was not answered with the hello page")
            return
        first = min(bar[1] for bar in bars)
        out[name] = [(kind, sent - first, finished - first) for kind, sent, finished, _ in bars]
    except Exception as error:
        problem(f"{name}, timeline: {error}")
    finally:
        if server:
            server.stop()


def lesson_and_timeline(binaries):
    """Runs the three lesson series and the two timelines side by side: they spend nearly all
    their time waiting on sleeping servers, so running them together costs no accuracy at
    the scale they show (seconds against milliseconds), and saves half a minute."""
    lesson, timeline = {}, {}
    jobs = [threading.Thread(target=lesson_series, args=(name, binary, lesson))
            for name, binary in binaries.items()]
    jobs += [
        threading.Thread(target=timeline_series, args=(name, binaries[name], timeline))
        for name in ("stage 06", "stage 07")
    ]
    for job in jobs:
        job.start()
    for job in jobs:
        job.join()
    return lesson, timeline


IDLE_CLIENTS = 1000  # idle connections for the cost of a thread per connection


def build_naive():
    """The thread-per-connection server of stage 07's lesson (listing 7.0), built from the
    lesson itself with tests/listings.py, as make check-listings builds it."""
    readme = ROOT / "step07-pool" / "README.md"
    for _, _, note, text in listings.blocks(readme):
        if note and note[0] == "7.0":
            base, mode = listings.base_of("listing 7.0", "7.0", note[1].partition(";")[0].strip(),
                                          ROOT / "step07-pool", {})
            work = OUT / "naive" / "step07-pool"
            shutil.rmtree(work.parent, ignore_errors=True)
            if base is None:
                raise RuntimeError("stage 07's listing 7.0 names no folder to change")
            shutil.copytree(base, work, ignore=shutil.ignore_patterns("*.md"))
            if not listings.apply_listing("listing 7.0", mode, text, work):
                raise RuntimeError("stage 07's listing 7.0 does not apply")
            status, output = listings.build(work, work.parent / "server")
            if status != 0:
                raise RuntimeError(f"stage 07's listing 7.0 does not build: {output}")
            return work.parent / "server"
    raise RuntimeError("stage 07's lesson has no listing 7.0")


def idle_cost(name, binary):
    """A server's threads and memory with IDLE_CLIENTS connected clients that send nothing,
    read well within the head timeout that would drop them."""
    server = start_stage(name, binary)
    clients = []
    try:
        for _ in range(IDLE_CLIENTS):
            clients.append(socket.create_connection(("127.0.0.1", server.port)))
        deadline = time.monotonic() + 2
        fds = Path(f"/proc/{server.proc.pid}/fd")
        while len(os.listdir(fds)) < IDLE_CLIENTS and time.monotonic() < deadline:
            time.sleep(0.02)
        status = Path(f"/proc/{server.proc.pid}/status").read_text()
        field_of = lambda key: int(re.search(rf"^{key}:\s+(\d+)", status, re.M).group(1))
        return {"threads": field_of("Threads"), "rss": field_of("VmRSS") * 1024,
                "virtual": field_of("VmSize") * 1024}
    finally:
        for client in clients:
            client.close()
        server.stop()


def naive_rows(idle):
    rows = ["## What a thread per connection costs", "",
            f"Stage 07 and the naive server its lesson shows and rejects (listing 7.0: a thread for "
            f"every connection), each with {IDLE_CLIENTS} clients connected that send nothing, read "
            "from /proc/PID/status within the head timeout.", "",
            "| server | threads | resident memory | address space |", "| --- | ---: | ---: | ---: |"]
    for name, cost in idle.items():
        rows.append(f"| {name} | {cost['threads']:,} | {cost['rss'] / 2**20:,.1f} MiB | "
                    f"{cost['virtual'] / 2**30:,.2f} GiB |")
    return rows + [""]


def lesson_rows(lesson):
    names = [name for name in ("stage 06", "stage 07", "stage 08") if name in lesson]
    rows = [
        "| slow requests in flight | " + " | ".join(names) + " |",
        "| ---: |" + " ---: |" * len(names),
    ]
    for count in range(MAX_SLOW + 1):
        rows.append(f"| {count} | " + " | ".join(fmt_time(lesson[name][count]) for name in names) + " |")
    return rows


# ---------------------------------------------------------------------------------------------
# The timeline picture, as SVG written by hand.

SVG_FONT = "Arial, Helvetica, sans-serif"
COLOURS = {"sleep": "#d95f02", "root": "#1b7fa8"}  # orange and blue: apart in every colour vision
LABELS = {"sleep": "GET /sleep", "root": "GET /"}


def svg_text(x, y, text, size=13, anchor="start", weight="normal", fill="#222"):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-family="{SVG_FONT}" font-size="{size}" '
            f'font-weight="{weight}" fill="{fill}" text-anchor="{anchor}">{html.escape(text)}</text>')


def svg_panel(top, title, bars, x_of, ticks, row_height):
    """One panel: its title, the vertical grid with second labels, one bar per request with
    its name on the left and its duration on the right. Returns (elements, its height)."""
    parts = [svg_text(x_of(0), top + 16, title, size=15, weight="bold")]
    rows_top = top + 28
    bottom = rows_top + row_height * len(bars)
    for tick in ticks:
        x = x_of(tick)
        parts.append(f'<line x1="{x:.1f}" y1="{rows_top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>')
        parts.append(svg_text(x, bottom + 16, f"{tick:g}", size=12, anchor="middle", fill="#555"))
    parts.append(f'<line x1="{x_of(0):.1f}" y1="{bottom}" x2="{x_of(ticks[-1]):.1f}" '
                 f'y2="{bottom}" stroke="#888"/>')
    for row, (kind, sent, finished) in enumerate(bars):
        y = rows_top + row * row_height
        width = max(x_of(finished) - x_of(sent), 2.0)  # an instant answer still shows
        parts.append(svg_text(x_of(0) - 10, y + row_height * 0.68, f"{row + 1}. {LABELS[kind]}", anchor="end"))
        parts.append(f'<rect x="{x_of(sent):.1f}" y="{y + 4}" width="{width:.1f}" '
                     f'height="{row_height - 8}" rx="2" fill="{COLOURS[kind]}"/>')
        parts.append(svg_text(x_of(sent) + width + 6, y + row_height * 0.68,
                              fmt_time(finished - sent), size=12, fill="#444"))
    return parts, bottom + 24 - top


def timeline_svg(timeline):
    """Two panels, stage 06 above stage 07, on one time axis in seconds."""
    width, left, right, row_height = 900, 130, 90, 24
    longest = max(finished for bars in timeline.values() for _, _, finished in bars)
    end = max(1, int(longest) + 1)
    step = 1 if end <= 12 else 2
    ticks = list(range(0, end + 1, step))
    x_of = lambda t: left + (width - left - right) * t / ticks[-1]  # noqa: E731 (a tiny scale)
    parts = [
        svg_text(20, 28, f"The same {len(TIMELINE_ORDER)} requests, sent {TIMELINE_GAP * 1000:g} ms apart "
                         f"(GET /sleep takes {SLEEP_SECONDS} s)", size=17, weight="bold"),
    ]
    legend_x = width - right - 220
    for i, kind in enumerate(("sleep", "root")):
        x = legend_x + i * 120
        parts.append(f'<rect x="{x}" y="44" width="14" height="14" rx="2" fill="{COLOURS[kind]}"/>')
        parts.append(svg_text(x + 20, 56, LABELS[kind]))
    titles = {"stage 06": "Stage 06: one thread, every request waits its turn",
              "stage 07": "Stage 07: a pool of 4 workers"}
    top = 70
    for name in ("stage 06", "stage 07"):
        if name in timeline:
            panel, height = svg_panel(top, titles[name], timeline[name], x_of, ticks, row_height)
            parts += panel
            top += height + 16
    parts.append(svg_text(x_of(ticks[-1] / 2), top + 4, "seconds since the first request was sent",
                          anchor="middle", fill="#555"))
    height = top + 20
    return "\n".join(
        [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'viewBox="0 0 {width} {height}">',
         f'<rect width="{width}" height="{height}" fill="#fff"/>', *parts, "</svg>", ""])


# ---------------------------------------------------------------------------------------------
# The report: header, tables, targets.


def machine_lines():
    """Date, machine and tool versions, for the top of the report."""
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    wrk = first_line(["wrk", "-v"]).split(" Copyright")[0]
    nginx = first_line(["nginx", "-v"]) if shutil.which("nginx") else "not installed"
    return [
        f"- date: {datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs (nproc), {cpu}, Linux {platform.release()}",
        f"- tools: {wrk}; {nginx}; {first_line([os.environ.get('CC', 'cc'), '--version'])}; "
        f"Python {platform.python_version()}",
    ]


def targets_rows(matrix, with_nginx):
    """The targets for stage 08, each with what this run measured and whether it held: at
    every client count, requests/s at least 0.95× nginx's and CPU per request at most
    nginx's, each the median of the round-by-round ratios."""
    rows = ["| target (stage 08, at every client count) | measured | held |", "| --- | --- | --- |"]
    if not with_nginx:
        return rows + ["| every target compares with nginx | nginx is not installed | not measured |"]

    def verdict(ok):
        return "not measured" if ok is None else ("yes" if ok else "no")

    def ratios(key):
        return {c: paired_ratio(field(matrix["stage 08"][c], key), field(matrix["nginx"][c], key))
                for c in CLIENTS}

    for what, key, holds in (("requests/s ≥ 0.95× nginx's", "rps", lambda r: r >= 0.95),
                             ("CPU per request ≤ nginx's", "cpu_per_request", lambda r: r <= 1.0)):
        measured = ratios(key)
        held = None if None in measured.values() else all(holds(r) for r in measured.values())
        rows.append(f"| {what} | " + ", ".join(f"{fmt_ratio(measured[c])} at {c}" for c in CLIENTS)
                    + f" | {verdict(held)} |")
    return rows


def pinned_rows(pinned):
    rows = ["| server | requests/s | × nginx | p50 | p99 | CPU per request | valid runs |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, runs in pinned.items():
        ratio = paired_ratio(field(runs, "rps"), field(pinned["nginx"], "rps")) if "nginx" in pinned else None
        rps = median_of(runs, "rps")
        rows.append(f"| {name} | {'invalid' if rps is None else f'{rps:,.0f}'} | {fmt_ratio(ratio)} | "
                    f"{fmt_time(median_of(runs, 'p50'))} | {fmt_time(median_of(runs, 'p99'))} | "
                    f"{fmt_time(median_of(runs, 'cpu_per_request'))} | "
                    f"{sum(r is not None for r in runs)} of {len(runs)} |")
    return rows


def burst_rows(bursts):
    rows = ["| server | p50 | p99 | slowest | connects issued within | valid rounds |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, runs in bursts.items():
        rows.append(f"| {name} | {fmt_time(median_of(runs, 'p50'))} | {fmt_time(median_of(runs, 'p99'))} | "
                    f"{fmt_time(median_of(runs, 'max'))} | {fmt_time(median_of(runs, 'spread'))} | "
                    f"{sum(r is not None for r in runs)} of {len(runs)} |")
    return rows


def report(measured):
    """The whole Markdown report from what was measured (see main)."""
    matrix, pinned, bursts = measured["matrix"], measured["pinned"], measured["bursts"]
    with_nginx = measured["nginx_workers"] is not None
    reference = "nginx" if with_nginx else None
    lines = ["# make bench: results", ""] + machine_lines() + [""]
    lines += [
        "## GET /, one connection per request (wrk)", "",
        f"wrk `-H 'Connection: close' --latency`, {RUN_SECONDS} s per run, {ROUNDS} rounds per level, "
        "the servers run back to back within a round. Each figure is the median of the rounds; "
        "`× nginx` is the median of the round-by-round ratios. Latency is wrk's: from writing the "
        "request to the end of the response (the connect is not included). CPU per request is the "
        "server's user + system time (for nginx: master and workers, from /proc/PID/stat, in "
        f"{1000 // os.sysconf('SC_CLK_TCK')} ms ticks) over the requests completed.", "",
    ]
    lines += matrix_rows(matrix, reference) + [""]
    sizes = measured["sizes"]
    lines += ["Bytes per response: " + ", ".join(f"{name} {size}" for name, size in sizes.items()) + ".", ""]
    if with_nginx:
        lines += [f"nginx settings ({measured['nginx_workers']} workers here): {NGINX_SETTINGS}; "
                  "the configuration is build/bench/nginx/nginx.conf (nginx-1-worker.conf for the "
                  "one-core run).", ""]
    else:
        lines += ["nginx is not installed (Debian: `apt-get install nginx-light` or `nginx`): no reference.", ""]
    lines += ["## One client on one core", "",
              "wrk (`-t 1 -c 1`) and the server both run under `taskset -c 0`; nginx has one worker.", ""]
    lines += pinned_rows(pinned) + [""]
    lines += [f"## {BURST_SIZE} connections at once", "",
              f"{BURST_SIZE} non-blocking connects started together, each sending `GET /`, each timed "
              f"from the start of its connect to the last byte of its answer; median of {BURST_ROUNDS} rounds. "
              "The client is a single Python thread: the last column says how long it took to start all "
              "the connects.", ""]
    lines += burst_rows(bursts) + [""]
    lines += ["## A slow request holds up the rest: the lesson of stages 06 and 07", "",
              f"The time a `GET /` takes when it is sent {SLOW_HEAD_START:g} s after k `GET /sleep` requests, "
              f"on copies of the stages built with `-DSLEEP_SECONDS={SLEEP_SECONDS}` (one slow request takes "
              f"{SLEEP_SECONDS} s). With one thread, `/` waits for every slow request before it; with a pool of "
              "4 workers it waits only once all four are asleep.", ""]
    lines += lesson_rows(measured["lesson"]) + [""]
    if measured["timeline"]:
        lines += ["![The same requests against stage 06 and stage 07](timeline.svg)", "",
                  "build/bench/timeline.svg: one bar per request, from its sending to its last byte.", ""]
    lines += naive_rows(measured["idle"])
    lines += ["## Targets", ""] + targets_rows(matrix, with_nginx) + [""]
    lines += ["## Validity", ""]
    lines += [f"- INVALID: {text}" for text in PROBLEMS] or [
        "Every run was valid: only 200 answers, no socket errors, no server died."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# The run.


def give_up(text):
    """Something the benchmark needs is missing: say what, and exit with status 2."""
    print(f"bench: {text}", file=sys.stderr)
    sys.exit(2)


def check_prerequisites(build_dir):
    """The stage binaries to measure, once every tool and binary is known to be there."""
    packages = {"wrk": "wrk", "taskset": "util-linux"}
    missing = [tool for tool in packages if not shutil.which(tool)]
    if missing:
        needed = " ".join(packages[tool] for tool in missing)
        give_up(f"{' and '.join(missing)} not found. On Debian or Ubuntu it comes with the "
                f"package {needed}: sudo apt-get install {needed}")
    binaries = {f"stage {n}": build_dir / f"step{n}" for n in ("05", "07", "08")}
    absent = [str(path) for path in binaries.values() if not path.is_file()]
    if absent:
        give_up(f"missing {', '.join(absent)}: build the stages first (make)")
    return binaries


def measure_matrix_and_burst(binaries, with_nginx, measured):
    """Parts 1, 2 and 4, on one set of servers started once, into measured."""
    servers = []
    try:
        for name, binary in binaries.items():
            servers.append(start_server(name, binary))
        if with_nginx:
            servers.append(start_nginx("nginx"))
            measured["nginx_workers"] = len(servers[-1].workers)
        measured["sizes"] = {server.name: server.response_bytes for server in servers}
        progress(f"GET / with wrk, {len(CLIENTS) * ROUNDS * len(servers)} runs of {RUN_SECONDS} s")
        measured["matrix"] = throughput_matrix(servers)
        progress(f"{BURST_SIZE} connections at once")
        measured["bursts"] = burst_comparison([s for s in servers if s.name in ("stage 08", "nginx")])
    finally:
        for server in servers:
            server.stop()


def main():
    if len(sys.argv) > 2:
        give_up("usage: python3 tests/bench.py [BUILD_DIR]")
    build_dir = Path(sys.argv[1] if len(sys.argv) == 2 else "build").resolve()
    binaries = check_prerequisites(build_dir)
    with_nginx = shutil.which("nginx") is not None
    OUT.mkdir(parents=True, exist_ok=True)
    raise_file_limit(BURST_SIZE * 2 + 256)
    began = time.monotonic()

    measured = {"nginx_workers": None}
    try:
        progress(f"Building stages 06 to 08 with a {SLEEP_SECONDS} s sleep into {OUT}")
        short_sleep = build_short_sleep_copies()
        measure_matrix_and_burst(binaries, with_nginx, measured)
        progress("One client on one core")
        measured["pinned"] = pinned_comparison(binaries["stage 08"], with_nginx)
        progress(f"Slow requests in flight, and the timeline (about {SLEEP_SECONDS * MAX_SLOW * 3} s)")
        measured["lesson"], measured["timeline"] = lesson_and_timeline(short_sleep)
        progress(f"{IDLE_CLIENTS} idle clients: stage 07, and a thread per connection")
        measured["idle"] = {"stage 07": idle_cost("stage 07", build_dir / "step07"),
                            "a thread per connection": idle_cost("naive", build_naive())}
    except (RuntimeError, OSError, subprocess.SubprocessError) as error:
        # A server that does not start or answer, or a build that fails: nothing to report.
        print(f"bench: {error}", file=sys.stderr)
        return 1
    if measured["timeline"]:
        (OUT / "timeline.svg").write_text(timeline_svg(measured["timeline"]))

    text = report(measured)
    (OUT / "results.md").write_text(text)
    print(text, end="")
    progress(f"Written to {OUT / 'results.md'} and {OUT / 'timeline.svg'} "
             f"in {time.monotonic() - began:.0f} s")
    return 1 if PROBLEMS else 0


if __name__ == "__main__":
    sys.exit(main())
