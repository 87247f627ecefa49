"""Shared helpers for the runtime integration tests.

Each test starts its own stanzad (the binary named by $STANZAD, built with
ASan+UBSan by meson) on free loopback ports, with a config written into the
test's tmp dir. The `node` fixture returns a factory; every node it started
is stopped at teardown (SIGTERM, then SIGKILL of that PID if it hangs), and
the teardown asserts a clean exit: status 0 and no sanitizer report on
stderr. Tests that want the exit status themselves call node.stop_clean().

Counting note: /metrics is served by the node itself, so the admin
connection carrying a request is counted in connections_open and
connections_accepted_total while the counters are rendered, and earlier
admin connections are counted in admin_requests_total /
admin_bad_requests_total. Node.clients() removes that self-count so tests
can compare against the number of client connections they opened.
"""

import errno
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "LeakSanitizer", "runtime error:")

SOURCE_ROOT = Path(os.environ.get("SZ_SOURCE_ROOT", Path(__file__).resolve().parents[2]))


def stanzad_path():
    p = os.environ.get("STANZAD")
    if p:
        return p
    for cand in ("build/h-integ/stanzad", "build/debug/stanzad"):
        if (SOURCE_ROOT / cand).exists():
            return str(SOURCE_ROOT / cand)
    pytest.skip("STANZAD is not set and no built stanzad was found")


def sanitizer_env():
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    opts = [o for o in asan.split(":") if o and not o.startswith("detect_leaks=")]
    env["ASAN_OPTIONS"] = ":".join(["detect_leaks=1"] + opts)
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


def raise_nofile():
    """Raise this process's soft RLIMIT_NOFILE to the hard limit; returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_ports(n, host="127.0.0.1"):
    """n distinct free TCP ports on <host> (bound to port 0, then released)."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def assert_sanitizer_clean(text, what="stanzad"):
    for mark in SANITIZER_MARKS:
        assert mark not in text, f"{what}: sanitizer report on stderr:\n{text[-6000:]}"


# ---- HTTP ------------------------------------------------------------------


def recv_all(sock, timeout=10.0, limit=16 << 20):
    """Reads until EOF (or reset, after the bytes already received)."""
    sock.settimeout(timeout)
    chunks, total = [], 0
    deadline = time.monotonic() + timeout
    while total < limit:
        if time.monotonic() > deadline:
            raise TimeoutError("no EOF from the server within %.1fs" % timeout)
        try:
            b = sock.recv(65536)
        except ConnectionResetError:
            break
        if not b:
            break
        chunks.append(b)
        total += len(b)
    return b"".join(chunks)


def http_raw(port, data, timeout=10.0, host="127.0.0.1"):
    """Sends <data> on a fresh connection and returns everything read until EOF."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        return recv_all(s, timeout)


def parse_response(raw):
    """(status, headers {lower name: value}, body) of one HTTP/1 response."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, f"no end of response head in {raw[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0] + " ")
    assert m, f"bad status line {lines[0]!r}"
    headers = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(m.group(1)), headers, body


def http_request(port, method="GET", path="/", extra=b"", timeout=10.0):
    req = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode() + extra + b"\r\n"
    st, hdr, body = parse_response(http_raw(port, req, timeout))
    if method != "HEAD" and "content-length" in hdr:
        assert int(hdr["content-length"]) == len(body), (
            f"{method} {path}: Content-Length {hdr['content-length']} but {len(body)} body bytes")
    return st, hdr, body


METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*)?)\})? '
    r"(-?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|NaN|[-+]Inf))$"
)
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="([^"\\]*)"')


def parse_metrics(text):
    """{(name, ((label, value), ...)): float}; asserts every line parses."""
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = METRIC_LINE.match(ln)
        assert m, f"unparsable metrics line {ln!r}"
        labels = tuple(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        assert key not in out, f"duplicate sample {ln!r}"
        out[key] = float(m.group(3))
    return out


def msum(metrics, name):
    return sum(v for (n, _), v in metrics.items() if n == name)


def per_reactor(metrics, name):
    return {dict(lb).get("reactor"): v for (n, lb), v in metrics.items() if n == name}


def wait_until(pred, timeout, interval=0.05, what="condition"):
    """Polls <pred>() until it returns a true value; returns it, or fails."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ---- the node --------------------------------------------------------------


class Node:
    """One stanzad process with its config, ports and log."""

    def __init__(self, workdir, reactors=2, max_conns=None, limits=None, listeners=None,
                 log_level="info", node_extra=None):
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        if listeners is None:
            listeners = ["admin", "echo", "c2s"]
        # Items are a kind (a free port is picked) or (kind, port).
        ports = iter(free_ports(len(listeners)))
        # [(kind, port)]; kind "c2s" is written with tls: none.
        self.listeners = [tuple(x) if isinstance(x, (tuple, list)) else (x, next(ports))
                          for x in listeners]
        self.ports = {}
        for kind, port in self.listeners:
            self.ports.setdefault(kind, port)
        self.reactors = reactors
        self.max_conns = max_conns
        self.limits = dict(limits or {})
        self.log_level = log_level
        self.node_extra = dict(node_extra or {})
        self.config = self.dir / "stanzad.yaml"
        self.stderr_path = self.dir / "stderr.log"
        self.proc = None
        self.result = None  # (rc, stderr) once stopped
        self.checked = False
        self.write_config()

    # -- config
    def config_text(self):
        lines = ["node:", f"  reactors: {self.reactors}", f"  log_level: {self.log_level}"]
        if self.max_conns is not None:
            lines.append(f"  max_conns_per_reactor: {self.max_conns}")
        for k, v in self.node_extra.items():
            lines.append(f"  {k}: {v}")
        if any(k == "c2s" for k, _ in self.listeners):
            lines += ["hosts:", "  - domain: localhost"]
        lines.append("listen:")
        for kind, port in self.listeners:
            extra = ", tls: none" if kind == "c2s" else ""
            lines.append(f"  - {{ kind: {kind}, address: 127.0.0.1, port: {port}{extra} }}")
        lines += ["storage:", f"  path: {self.dir / 'data.db'}"]
        if self.limits:
            lines.append("limits:")
            for k, v in self.limits.items():
                lines.append(f"  {k}: {v}")
        return "\n".join(lines) + "\n"

    def write_config(self, text=None):
        self.config.write_text(text if text is not None else self.config_text())

    # -- process
    def start(self, wait=True, timeout=10.0):
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(
            [stanzad_path(), "--config", str(self.config)],
            stdin=subprocess.DEVNULL, stdout=self._err, stderr=self._err,
            env=sanitizer_env(), cwd=str(self.dir),
        )
        if wait:
            self.wait_healthy(timeout)
        return self

    def wait_healthy(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"stanzad exited with {self.proc.returncode} during start:\n"
                            f"{self.stderr_text()[-4000:]}")
            try:
                st, _, body = http_request(self.ports["admin"], "GET", "/healthz", timeout=2)
                if st == 200:
                    return
            except (OSError, AssertionError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"stanzad not healthy within {timeout}s:\n"
                            f"{self.stderr_text()[-4000:]}")
            time.sleep(0.05)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def signal(self, sig):
        assert self.alive(), "stanzad is not running"
        os.kill(self.proc.pid, sig)

    def stop(self, timeout=30.0):
        """SIGTERM, wait up to <timeout> s; returns (exit code, stderr text).
        A node that does not exit in time is killed (SIGKILL, by PID) and
        reported with code None."""
        if self.result is not None:
            return self.result
        rc = None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._err.close()
        self.result = (rc, self.stderr_text())
        return self.result

    def stop_clean(self, timeout=30.0):
        """stop() and assert exit 0 and a sanitizer-clean stderr."""
        rc, err = self.stop(timeout)
        self.checked = True  # reported here; teardown need not repeat it
        assert rc is not None, f"stanzad did not exit within {timeout}s of SIGTERM:\n{err[-4000:]}"
        assert_sanitizer_clean(err)
        assert rc == 0, f"stanzad exited with {rc}:\n{err[-4000:]}"
        return err

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    # -- admin
    def get(self, path, method="GET", timeout=10.0):
        return http_request(self.ports["admin"], method, path, timeout=timeout)

    def metrics_text(self, timeout=10.0):
        st, hdr, body = self.get("/metrics", timeout=timeout)
        assert st == 200, f"/metrics answered {st}"
        return body.decode()

    def metrics(self, timeout=10.0):
        return parse_metrics(self.metrics_text(timeout))

    def healthz(self):
        st, _, body = self.get("/healthz")
        return st, body

    def clients(self, m=None):
        """Connection counters with the admin connections taken out (see the
        module comment). Open/closed are exact once earlier admin
        connections finished closing, so poll them."""
        if m is None:
            m = self.metrics()
        admin_done = msum(m, "stanzad_admin_requests_total") + msum(
            m, "stanzad_admin_bad_requests_total")
        return {
            "accepted": msum(m, "stanzad_connections_accepted_total") - admin_done - 1,
            "open": msum(m, "stanzad_connections_open") - 1,
            "closed": msum(m, "stanzad_connections_closed_total") - admin_done,
            "slots_used": msum(m, "stanzad_direct_slots_used") - 1,
            "refused": msum(m, "stanzad_connections_refused_total"),
            "open_by_reactor": per_reactor(m, "stanzad_connections_open"),
            "m": m,
        }

    def wait_idle(self, timeout=20.0):
        """Polls until no client connection is open and no slot is used
        (besides the admin request itself); returns the last clients()."""
        def idle():
            c = self.clients()
            return c if c["open"] == 0 and c["slots_used"] == 0 and \
                c["closed"] == c["accepted"] else None
        c = wait_until(idle, timeout, 0.1, "open connections and used slots to reach 0")
        # The admin request that saw it idle still holds a slot for a few
        # milliseconds: the node closes it once it reads our EOF (lingering
        # close). Give it that time before a test counts on every slot.
        time.sleep(0.2)
        return c


@pytest.fixture
def node(tmp_path):
    """Factory: node(**kw) writes a config, starts stanzad and waits for
    /healthz. Teardown stops every node still running (asserting exit 0 and
    a sanitizer-clean stderr) and always kills, by PID, one that hangs."""
    nodes = []
    count = [0]

    def make(start=True, **kw):
        count[0] += 1
        n = Node(tmp_path / f"node{count[0]}", **kw)
        nodes.append(n)
        if start:
            n.start()
        return n

    yield make

    problems = []
    for n in nodes:
        if n.proc is None:
            continue
        try:
            if n.result is None:
                rc, err = n.stop()
                if rc != 0:
                    problems.append(f"stanzad exited with {rc} at teardown:\n{err[-3000:]}")
            rc, err = n.result
            if n.checked:
                continue
            for mark in SANITIZER_MARKS:
                if mark in err:
                    problems.append(f"sanitizer report ({mark}):\n{err[-6000:]}")
                    break
        finally:
            n.kill()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


# ---- client sockets --------------------------------------------------------


def connect_many(port, count, sources, batch=1000, timeout=30.0):
    """Opens <count> TCP connections to 127.0.0.1:<port>, binding them
    round-robin to the source addresses <sources>, with non-blocking
    connects in batches. Returns the connected sockets (blocking mode off)."""
    sel = selectors.DefaultSelector()
    socks = []
    deadline = time.monotonic() + timeout
    try:
        i = 0
        while i < count:
            pending = {}
            for _ in range(min(batch, count - i)):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
                s.bind((sources[i % len(sources)], 0))
                s.setblocking(False)
                rc = s.connect_ex(("127.0.0.1", port))
                if rc == 0:
                    pass
                elif rc in (errno.EINPROGRESS, errno.EAGAIN):
                    pending[s.fileno()] = s
                    sel.register(s, selectors.EVENT_WRITE)
                else:
                    raise OSError(rc, f"connect #{i}: {os.strerror(rc)}")
                i += 1
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(pending)} connects still pending")
                for key, _ in sel.select(min(left, 1.0)):
                    s = key.fileobj
                    sel.unregister(s)
                    del pending[s.fileno()]
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, f"connect: {os.strerror(err)}")
        return socks
    except BaseException:
        for s in socks:
            s.close()
        raise
    finally:
        sel.close()
