"""Bad input is normal input: a port already taken, more connections than
descriptor slots, malformed HTTP on the admin port, and bad config files.
Each case must fail cleanly (clear message, status, counter) and leave a
running node healthy."""

import re
import socket
import subprocess
import time

import pytest

from conftest import (assert_sanitizer_clean, free_ports, http_raw, msum, parse_metrics,
                      parse_response, recv_all, sanitizer_env, stanzad_path, wait_until)


# ---- (a) port already in use ----------------------------------------------


def test_port_in_use(node):
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen(8)
        port = blocker.getsockname()[1]
        n = node(start=False, reactors=2, listeners=["admin", ("echo", port)])
        t0 = time.monotonic()
        n.start(wait=False)
        try:
            rc = n.proc.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail("stanzad kept running although its echo port is taken")
        took = time.monotonic() - t0
        rc, err = n.stop()
    finally:
        blocker.close()
    assert_sanitizer_clean(err)
    assert rc not in (0, None), f"exit status {rc}"
    # Start-up may log at info level before the listeners are bound (e.g.
    # storage); the failure itself must be one self-contained line.
    lines = [ln for ln in err.splitlines()
             if ln.strip() and not re.match(r"ts=\S+ level=(debug|info) ", ln)]
    assert len(lines) == 1, f"expected one error line on stderr, got:\n{err}"
    assert f"127.0.0.1:{port}" in lines[0] and "Address already in use" in lines[0], lines[0]
    assert took < 5, f"took {took:.1f}s to give up"


# ---- (b) more connections than slots --------------------------------------


def echo_ok(sock, payload, timeout=5.0):
    """True when <payload> comes back; False on EOF or reset."""
    sock.settimeout(timeout)
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            b = sock.recv(65536)
            if not b:
                return False
            got += b
    except (ConnectionResetError, BrokenPipeError):
        return False
    assert got == payload, f"echo returned {got!r} for {payload!r}"
    return True


def test_more_connections_than_slots(node):
    slots, total = 50, 150
    n = node(reactors=1, max_conns=slots, listeners=["admin", "echo"])
    n.wait_idle()  # the start-up /healthz connection must have left its slot
    socks = []
    failed_metrics = [0]

    def metrics_when_possible():
        # The admin request needs a slot too; while all are taken the node
        # refuses it like any other connection (counted in refused).
        try:
            return n.metrics(timeout=3)
        except (OSError, AssertionError):
            failed_metrics[0] += 1
            return None

    try:
        for _ in range(total):
            socks.append(socket.create_connection(("127.0.0.1", n.ports["echo"]), timeout=5))
        # One reactor, one backlog: the node accepts in arrival order, so
        # the first <slots> connections hold the slots.
        results = [echo_ok(s, b"ping %d\n" % i) for i, s in enumerate(socks)]
        assert all(results[:slots]), f"first {slots} did not all echo: {results[:slots]}"
        assert not any(results[slots:]), (
            f"{sum(results[slots:])} connections beyond the {slots} slots echoed")

        for s in socks[:10]:
            s.close()
        m = wait_until(metrics_when_possible, 10, 0.1, "a free slot for /metrics")
        refused = msum(m, "stanzad_connections_refused_total")
        excess = total - slots
        assert excess <= refused <= excess + failed_metrics[0], (
            f"refused {refused}, expected {excess} (+{failed_metrics[0]} refused /metrics tries)")

        # Slots freed by closing are usable again.
        fresh = [socket.create_connection(("127.0.0.1", n.ports["echo"]), timeout=5)
                 for _ in range(5)]
        socks += fresh
        for i, s in enumerate(fresh):
            assert echo_ok(s, b"again %d\n" % i), "a new connection was refused after slots freed"
        for i, s in enumerate(socks[10:slots]):
            assert echo_ok(s, b"still %d\n" % i), "an accepted connection stopped echoing"
    finally:
        for s in socks:
            s.close()
    n.wait_idle()
    n.stop_clean()


# ---- (c) malformed HTTP on the admin port ---------------------------------


def status_of(raw):
    if not raw:
        return None
    return parse_response(raw)[0]


BAD_REQUESTS = [
    # (name, bytes, expected status)
    ("binary junk", bytes(range(256)) * 4, 400),
    ("high bytes", b"\xff\xfe\xfd GET / HTTP/1.1\r\n\r\n", 400),
    ("no version", b"GET /metrics\r\n\r\n", 400),
    ("HTTP/0.9 style", b"GET /healthz\r\n\r\n", 400),
    ("bad version", b"GET /healthz HTTP/3.0\r\n\r\n", 400),
    ("lower-case method", b"get /healthz HTTP/1.1\r\n\r\n", 400),
    ("absolute target", b"GET http://x/healthz HTTP/1.1\r\n\r\n", 400),
    ("header without colon", b"GET /healthz HTTP/1.1\r\nHost 127.0.0.1\r\n\r\n", 400),
    ("obs-fold", b"GET /healthz HTTP/1.1\r\nX-A: 1\r\n  2\r\n\r\n", 400),
    ("bare LF lines", b"GET /healthz HTTP/1.1\nHost: x\n\n\r\n\r\n", 400),
    ("oversized header", b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 9000, 431),
    ("POST", b"POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("DELETE", b"DELETE /healthz HTTP/1.1\r\n\r\n", 405),
    ("unknown path", b"GET /nope HTTP/1.1\r\n\r\n", 404),
    ("path prefix", b"GET /metricsx HTTP/1.1\r\n\r\n", 404),
    ("body", b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400),
    ("chunked", b"GET /healthz HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400),
]


@pytest.fixture
def admin_node(node):
    return node(reactors=2, listeners=["admin"])


def assert_healthy(n):
    st, body = n.healthz()
    assert st == 200 and body == b"ok\n", (st, body)
    parse_metrics(n.metrics_text())


@pytest.mark.parametrize("name,req,want", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_admin_malformed(admin_node, name, req, want):
    n = admin_node
    bad_before = msum(n.metrics(), "stanzad_admin_bad_requests_total")
    raw = http_raw(n.ports["admin"], req, timeout=5)
    st = status_of(raw)
    assert st == want, f"{name}: got {raw[:300]!r}"
    _, hdr, body = parse_response(raw)
    assert hdr.get("connection") == "close"
    assert int(hdr["content-length"]) == len(body)
    if want == 405:
        assert hdr.get("allow") == "GET, HEAD", hdr
    assert_healthy(n)
    # Every rejected request is counted.
    bad_after = msum(n.metrics(), "stanzad_admin_bad_requests_total")
    assert bad_after == bad_before + 1
    n.stop_clean()


def test_admin_stalled_request(node):
    """Half a request, then silence: closed after limits.admin_timeout_ms.
    One reactor: with two, the next request could land on a reactor that
    slept through the stall, which trips the stale-clock bug that
    test_admin.py::test_admin_request_after_idle shows."""
    n = node(reactors=1, listeners=["admin"], limits={"admin_timeout_ms": 500})
    assert_healthy(n)  # the reactor has just run: its clock is fresh
    with socket.create_connection(("127.0.0.1", n.ports["admin"]), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        t0 = time.monotonic()
        raw = recv_all(s, timeout=5)
        took = time.monotonic() - t0
    assert raw == b"", f"expected a silent close, got {raw[:200]!r}"
    assert 0.3 <= took <= 3.0, f"closed after {took:.2f}s with admin_timeout_ms 500"
    assert_healthy(n)
    # A connection that sends nothing at all is closed as well.
    with socket.create_connection(("127.0.0.1", n.ports["admin"]), timeout=5) as s:
        t0 = time.monotonic()
        assert recv_all(s, timeout=5) == b""
        assert time.monotonic() - t0 <= 3.0
    assert_healthy(n)
    n.stop_clean()


def test_admin_many_bad_clients_at_once(node):
    """All the malformed requests at once, plus stalled ones, then health."""
    n = node(reactors=1, listeners=["admin"], limits={"admin_timeout_ms": 500})
    socks = []
    try:
        for _, req, _ in BAD_REQUESTS * 5:
            s = socket.create_connection(("127.0.0.1", n.ports["admin"]), timeout=5)
            s.sendall(req)
            socks.append(s)
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", n.ports["admin"]), timeout=5)
            s.sendall(b"GET /healthz HTT")
            socks.append(s)
        for s, (name, _, want) in zip(socks, BAD_REQUESTS * 5):
            assert status_of(recv_all(s, 5)) == want, name
        for s in socks[len(BAD_REQUESTS) * 5:]:
            assert recv_all(s, 5) == b""
    finally:
        for s in socks:
            s.close()
    assert_healthy(n)
    n.wait_idle()
    n.stop_clean()


# ---- (d) config errors and the command line --------------------------------


def run_stanzad(*args, timeout=15):
    p = subprocess.run([stanzad_path(), *args], capture_output=True, text=True,
                       env=sanitizer_env(), timeout=timeout, stdin=subprocess.DEVNULL)
    assert_sanitizer_clean(p.stderr)
    return p


GOOD_CONFIG = """\
node:
  reactors: 1
hosts:
  - domain: localhost
listen:
  - {{ kind: admin, address: 127.0.0.1, port: {p0} }}
  - {{ kind: c2s, address: 127.0.0.1, port: {p1}, tls: none }}
storage:
  path: {dir}/data.db
"""

BAD_CONFIGS = [
    # (name, text appended to / replacing parts of GOOD_CONFIG, key, line)
    ("reactors zero", ("reactors: 1", "reactors: 0"), "node.reactors", 2),
    ("unknown key", ("reactors: 1", "reactors: 1\n  turbo: yes"), "node.turbo", 3),
    ("port range", ("tls: none }", "tls: none }\n  - { kind: echo, address: 127.0.0.1, "
                    "port: 70000 }"), "listen[2].port", 8),
    ("bad kind", ("kind: admin", "kind: gopher"), "listen[0].kind", 6),
    ("bad log level", ("reactors: 1", "reactors: 1\n  log_level: loud"), "node.log_level", 3),
    ("limit too small", ("storage:", "limits:\n  max_output_bytes: 10\nstorage:"),
     "limits.max_output_bytes", 9),
    ("yaml syntax", ("reactors: 1", 'reactors: "1'), "yaml", None),
    ("tab indent", ("  reactors: 1", "\treactors: 1"), "yaml", None),
]


@pytest.mark.parametrize("name,edit,key,line", BAD_CONFIGS, ids=[b[0] for b in BAD_CONFIGS])
def test_bad_config(tmp_path, name, edit, key, line):
    p0, p1 = free_ports(2)
    text = GOOD_CONFIG.format(p0=p0, p1=p1, dir=tmp_path)
    assert edit[0] in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    for mode in ("--config", "--check-config"):
        t0 = time.monotonic()
        p = run_stanzad(mode, str(path))
        assert p.returncode != 0, f"{mode}: accepted a bad config ({name})"
        assert time.monotonic() - t0 < 10
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, f"{mode}: expected one line, got:\n{p.stderr}"
        m = re.match(r"^(.+):(\d+): ([A-Za-z0-9_.\[\]]+): (.+)$", lines[0])
        assert m, f"{mode}: not 'file:line: key: what': {lines[0]!r}"
        assert m.group(1) == str(path)
        assert m.group(3) == key, lines[0]
        if line is not None:
            assert int(m.group(2)) == line, lines[0]


def test_missing_config_file(tmp_path):
    path = tmp_path / "nope.yaml"
    p = run_stanzad("--config", str(path))
    assert p.returncode != 0
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{path}: ") and "No such file" in lines[0], \
        p.stderr


def test_check_config_good(tmp_path):
    p0, p1 = free_ports(2)
    path = tmp_path / "good.yaml"
    path.write_text(GOOD_CONFIG.format(p0=p0, p1=p1, dir=tmp_path))
    p = run_stanzad("--check-config", str(path))
    assert p.returncode == 0, p.stderr
    assert p.stderr == ""
    # The check does not start anything: the ports stay free.
    for port in (p0, p1):
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_version_and_usage():
    p = run_stanzad("--version")
    assert p.returncode == 0
    assert re.match(r"^stanzad \d+\.\d+\.\d+\S*\n$", p.stdout), p.stdout
    p = run_stanzad("--bogus")
    assert p.returncode not in (0, None)
    assert "usage" in p.stderr
