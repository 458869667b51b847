"""Fixtures for the Yard integration tests: real yard-broker, yard-worker
and yard processes on loopback TCP ports, driven over real ZeroMQ sockets.

Rules kept here so every test file gets them for free:
  * binaries come from $YARD_BIN (CTest sets it; default <repo>/build/bin);
    a missing binary FAILS the test, it never skips;
  * every broker gets its own free loopback ports;
  * readiness is a handshake (a yard.admin "stats" SUBMIT answered), never
    a sleep; workers are ready when the stats show them;
  * every process started is stopped by its PID at teardown (SIGTERM, wait,
    SIGKILL); every wait is bounded;
  * when a test fails, the tail of every process's stderr is attached to
    the report;
  * a sanitizer report (ASan, LSan, UBSan) on any process's stderr fails
    the test at teardown, so the sanitizer build (make test-san) turns
    leaks and undefined behaviour into red tests.
"""

import atexit
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yardwire  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def bin_dir():
    return Path(os.environ.get("YARD_BIN") or (REPO / "build" / "bin"))


def binary(name):
    path = bin_dir() / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail("required binary %s is missing (YARD_BIN=%s); build it "
                    "first" % (path, os.environ.get("YARD_BIN")),
                    pytrace=False)
    return str(path)


_port_rng = random.Random()


def free_port():
    """A free loopback TCP port, chosen below the kernel's ephemeral range
    (32768-60999 by default): a port from bind(0) comes from that range,
    where any outgoing connection on the machine may take it before the
    broker binds it. Checked free by binding it."""
    for _ in range(200):
        port = _port_rng.randrange(20000, 32000)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def rss_kib(pid):
    """Resident set size of a process, in KiB (Linux /proc)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


_ALL_PROCS = []


@atexit.register
def _kill_leftovers():
    """Last resort if pytest dies mid-test: no child outlives the run."""
    for p in _ALL_PROCS:
        if p.popen.poll() is None:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


class Proc:
    """One child process with its logs on disk."""

    def __init__(self, name, argv, env, logdir, stdin=None):
        self.name = name
        self.argv = argv
        self.out_path = logdir / (name + ".out")
        self.err_path = logdir / (name + ".err")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self.popen = subprocess.Popen(
            argv, env=env, stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=self._out, stderr=self._err, cwd=str(REPO),
            start_new_session=True)
        self.pid = self.popen.pid
        _ALL_PROCS.append(self)

    def alive(self):
        return self.popen.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit code, or None if still running after timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout=2.0):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(5.0)
        self._out.close()
        self._err.close()

    def stderr_tail(self, n=40):
        try:
            lines = self.err_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def stdout_text(self):
        return self.out_path.read_text(errors="replace")


class Broker:
    """A yard-broker child on its own loopback ports."""

    def __init__(self, env, args=(), port=None, env_extra=None):
        self.env = env
        self.args = list(args)
        self.env_extra = dict(env_extra or {})
        self.fixed_port = port is not None
        self.port = port or free_port()
        self.events_port = free_port()
        self.endpoint = "tcp://127.0.0.1:%d" % self.port
        self.events = "tcp://127.0.0.1:%d" % self.events_port
        self.proc = None
        self._admin = None
        self.generation = 0

    def start(self, wait=True):
        for attempt in range(3):
            self.generation += 1
            argv = [binary("yard-broker"), "--broker", self.endpoint,
                    "--events", self.events] + self.args
            penv = self.env.base_env()
            penv.update(self.env_extra)
            self.proc = self.env.spawn("broker%d-%d" % (self.port, self.generation),
                                       argv, penv)
            if not wait:
                return self
            if self.wait_ready(retry_bind=attempt < 2):
                return self
            # Another process took a port between our check and the bind:
            # new ports (the tasks port only if we chose it) and again.
            self.events_port = free_port()
            self.events = "tcp://127.0.0.1:%d" % self.events_port
            if not self.fixed_port:
                self.port = free_port()
                self.endpoint = "tcp://127.0.0.1:%d" % self.port
                if self._admin is not None:
                    self._admin.close()
                    self._admin = None
        return self

    def admin(self):
        if self._admin is None:
            self._admin = self.env.client(self)
        return self._admin

    def wait_ready(self, timeout=10.0, retry_bind=False):
        """Handshake: a yard.admin "stats" SUBMIT is answered. With
        retry_bind, returns False instead of failing when the broker exited
        because a port was taken."""
        c = self.admin()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                self.proc.wait(5.0)
                if retry_bind and "Address already in use" in self.proc.stderr_tail():
                    return False
                pytest.fail("yard-broker exited with %s before it was ready:\n%s"
                            % (self.proc.popen.returncode, self.proc.stderr_tail()))
            id = c.submit1(yardwire.ADMIN_SERVICE, b"stats")
            r = c.wait_result(id, 0.25)
            if r is not None:
                assert r.get("status") == "ok", r
                return True
        pytest.fail("yard-broker on %s not ready within %.0fs:\n%s"
                    % (self.endpoint, timeout, self.proc.stderr_tail()))

    def stats(self, timeout=5.0):
        r = self.admin().call(yardwire.ADMIN_SERVICE, b"stats", timeout=timeout)
        assert r is not None, "no answer to yard.admin stats within %.1fs" % timeout
        assert r.get("status") == "ok", r
        return json.loads(yardwire.as_bytes(r.get("payload")).decode())

    def service_stats(self, service):
        return self.stats().get("services", {}).get(service, {})

    def wait_workers(self, service, n, timeout=15.0):
        self.wait_stats(lambda st: st["services"][service]["workers"] == n, timeout,
                        "%d worker(s) of %r registered" % (n, service))

    def wait_stats(self, pred, timeout, desc):
        """Polls the admin stats until pred(stats) holds; a KeyError and the
        like count as not yet (the service may not be listed yet)."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            try:
                if pred(st):
                    return st
            except (KeyError, IndexError, TypeError):
                pass
            if time.monotonic() >= deadline:
                pytest.fail("timed out after %.1fs waiting for %s; last stats: %s"
                            % (timeout, desc, json.dumps({k: st.get(k) for k in
                                                          ("services", "workers")})))
            time.sleep(0.05)

    def kill9(self):
        self.proc.signal(signal.SIGKILL)
        self.proc.wait(5.0)

    def restart(self):
        """Starts a fresh broker on the same ports (after a kill)."""
        assert not self.proc.alive()
        return self.start()


class YardEnv:
    """Everything one test (or one module) starts, torn down together."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.ctx = zmq.Context()
        self.procs = []
        self.peers = []
        self.cli_reports = []  # sanitizer reports from `yard` runs
        self.extra_env = {}  # merged into every child's environment
        self._n = 0

    bin = staticmethod(binary)

    # -- processes --
    def base_env(self, broker=None):
        env = dict(os.environ)
        env.setdefault("YARD_LOG_LEVEL", "info")
        env.update(self.extra_env)
        if broker is not None:
            env["YARD_BROKER"] = broker.endpoint
            env["YARD_EVENTS"] = broker.events
        return env

    def spawn(self, name, argv, env=None, stdin=None):
        self._n += 1
        p = Proc("%02d-%s" % (self._n, name), argv, env or self.base_env(),
                 self.logdir, stdin)
        self.procs.append(p)
        return p

    def broker(self, *args, start=True, env_extra=None):
        b = Broker(self, args, env_extra=env_extra)
        if start:
            b.start()
        return b

    def worker(self, broker, service, handler, capacity=None, threads=None,
               extra=(), wait=True, expect_total=None, env_extra=None):
        """Starts a yard-worker; when wait, returns once the broker's stats
        show it (expect_total workers of the service, default one more than
        before)."""
        before = 0
        if wait and expect_total is None:
            before = broker.service_stats(service).get("workers", 0)
        argv = [binary("yard-worker"), "--service", service, "--handler",
                handler, "--broker", broker.endpoint]
        if capacity is not None:
            argv += ["--capacity", str(capacity)]
        if threads is not None:
            argv += ["--threads", str(threads)]
        argv += list(extra)
        wenv = self.base_env(broker)
        wenv.update(env_extra or {})
        p = self.spawn("worker-%s-%s" % (service, handler), argv, wenv)
        if wait:
            n = expect_total if expect_total is not None else before + 1
            broker.wait_workers(service, n)
        return p

    def cli(self, broker, args, input=None, timeout=30.0, env_extra=None):
        """Runs the yard CLI to completion (bounded); returns CompletedProcess."""
        env = self.base_env(broker)
        if env_extra:
            env.update(env_extra)
        argv = [binary("yard")] + list(args)
        try:
            p = subprocess.run(argv, input=input, capture_output=True,
                               env=env, timeout=timeout, cwd=str(REPO))
            err = p.stderr.decode(errors="replace")
            for marker in SANITIZER_MARKERS:
                if marker in err:
                    self.cli_reports.append("`%s`:\n%s" % (" ".join(argv), err[-3000:]))
                    break
            return p
        except subprocess.TimeoutExpired as exc:
            pytest.fail("`%s` did not finish within %.0fs (stdout=%r stderr=%r)"
                        % (" ".join(argv), timeout, exc.stdout, exc.stderr))

    def cli_bg(self, broker, args, env_extra=None):
        """Starts the yard CLI in the background (stopped at teardown)."""
        env = self.base_env(broker)
        if env_extra:
            env.update(env_extra)
        return self.spawn("yard-" + (args[0] if args else "cli"),
                          [binary("yard")] + list(args), env)

    def health(self, broker, *args, interval_ms=200, env_extra=None,
               wait=True, timeout=15.0):
        """Starts yard-health with its HTTP server on a free loopback port,
        against broker (a Broker; or None, then args must give --broker and
        --events). When wait, returns once GET /v1/health answers with any
        HTTP status (polled with curl, bounded). The Proc returned has
        .port and .url (http://127.0.0.1:PORT). The API key, Redis and HTTP
        address variables of the test runner's environment are not passed
        on: only env_extra sets them."""
        for attempt in range(3):
            port = free_port()
            argv = [binary("yard-health"), "--http", "127.0.0.1:%d" % port]
            if interval_ms is not None:
                argv += ["--interval-ms", str(interval_ms)]
            if broker is not None:
                argv += ["--broker", broker.endpoint, "--events", broker.events]
            argv += list(args)
            env = self.base_env(broker)
            for k in ("YARD_API_KEY", "YARD_API_KEY_FILE", "YARD_HEALTH_HTTP",
                      "YARD_REDIS", "YARD_HEALTH_INTERVAL_MS",
                      "YARD_HEALTH_LOST_WINDOW_MS", "YARD_HEALTH_TIMEOUT_MS",
                      "YARD_HEALTH_NAME"):
                env.pop(k, None)
            env.update(env_extra or {})
            p = self.spawn("yard-health", argv, env)
            p.port = port
            p.url = "http://127.0.0.1:%d" % port
            if not wait:
                return p
            deadline = time.monotonic() + timeout
            while True:
                if not p.alive():
                    p.wait(5.0)
                    tail = p.stderr_tail()
                    if attempt < 2 and "in use" in tail:
                        break  # the port was taken meanwhile: another one
                    pytest.fail("yard-health exited with %s before it was ready:\n%s"
                                % (p.popen.returncode, tail))
                try:
                    r = subprocess.run(
                        ["/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
                         "--max-time", "2", p.url + "/v1/health"],
                        capture_output=True, timeout=10)
                    code = r.stdout.strip()
                except subprocess.TimeoutExpired:
                    code = b""
                if code not in (b"", b"000"):
                    return p
                if time.monotonic() >= deadline:
                    pytest.fail("yard-health on %s not answering GET /v1/health "
                                "within %.0fs:\n%s" % (p.url, timeout, p.stderr_tail()))
                time.sleep(0.05)
        pytest.fail("yard-health could not bind a free port")

    # -- sockets --
    def client(self, broker, routing_id=None):
        endpoint = broker if isinstance(broker, str) else broker.endpoint
        c = yardwire.Client(self.ctx, endpoint, routing_id)
        self.peers.append(c)
        return c

    def raw_worker(self, broker, service, capacity=1, **kw):
        endpoint = broker if isinstance(broker, str) else broker.endpoint
        w = yardwire.RawWorker(self.ctx, endpoint, service, capacity, **kw)
        self.peers.append(w)
        return w

    def logs(self):
        out = []
        for p in self.procs:
            rc = p.popen.poll()
            out.append("---- %s pid %d (%s) %s\n%s" % (
                p.name, p.pid, "running" if rc is None else "exit %s" % rc,
                " ".join(p.argv), p.stderr_tail()))
        return "\n".join(out)

    def close(self):
        """Stops everything; returns the sanitizer reports found in the
        processes' stderr (ASan, LSan, UBSan), if any."""
        for peer in self.peers:
            peer.close()
        # Workers and clients first, brokers last: nothing hangs waiting.
        for p in reversed(self.procs):
            p.stop()
        self.ctx.destroy(linger=0)
        return self.sanitizer_reports()

    def sanitizer_reports(self):
        found = list(self.cli_reports)
        for p in self.procs:
            try:
                text = p.err_path.read_text(errors="replace")
            except OSError:
                continue
            for marker in SANITIZER_MARKERS:
                i = text.find(marker)
                if i >= 0:
                    found.append("%s (pid %d, %s):\n%s" % (
                        p.name, p.pid, " ".join(p.argv), text[max(0, i - 200):i + 1500]))
                    break
        return found


# A sanitizer build (make test-san) turns memory errors, leaks and undefined
# behaviour into these lines on stderr; any of them fails the test.
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer")


_ACTIVE = []


def _run_env(env):
    _ACTIVE.append(env)
    try:
        yield env
    finally:
        _ACTIVE.remove(env)
        reports = env.close()
    if reports:
        pytest.fail("sanitizer report(s) from processes of this test:\n"
                    + "\n".join(reports), pytrace=False)


@pytest.fixture
def yard(tmp_path):
    yield from _run_env(YardEnv(tmp_path / "logs"))


@pytest.fixture(scope="module")
def yard_module(tmp_path_factory):
    yield from _run_env(YardEnv(tmp_path_factory.mktemp("yard-module")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _ACTIVE:
        rep.sections.append(("yard process logs (stderr tails)",
                             "\n".join(env.logs() for env in _ACTIVE)))
