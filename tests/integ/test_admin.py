"""Admin endpoint and signals: /metrics format and content, HEAD, /healthz,
traffic counters, and SIGHUP reloads (good and broken config)."""

import re
import signal
import socket
import time

import pytest

from conftest import http_raw, msum, parse_metrics, parse_response, per_reactor, wait_until

EXPECTED = {
    # name: (type, label names)
    "stanzad_connections_open": ("gauge", ("reactor",)),
    "stanzad_connections_accepted_total": ("counter", ("reactor",)),
    "stanzad_connections_refused_total": ("counter", ("reactor",)),
    "stanzad_connections_closed_total": ("counter", ("reactor",)),
    "stanzad_bytes_in_total": ("counter", ("reactor",)),
    "stanzad_bytes_out_total": ("counter", ("reactor",)),
    "stanzad_direct_slots_used": ("gauge", ("reactor",)),
    "stanzad_direct_slots_free": ("gauge", ("reactor",)),
    "stanzad_handoffs_in_total": ("counter", ("reactor",)),
    "stanzad_handoffs_out_total": ("counter", ("reactor",)),
    "stanzad_handoffs_failed_total": ("counter", ("reactor",)),
    "stanzad_queue_depth": ("gauge", ("from", "to")),
    "stanzad_queue_full_total": ("counter", ("from", "to")),
}


def test_metrics_format(node):
    n = node(reactors=2, listeners=["admin", "echo"])
    st, hdr, body = n.get("/metrics")
    assert st == 200
    assert hdr["content-type"].startswith("text/plain; version=0.0.4")
    assert int(hdr["content-length"]) == len(body)
    text = body.decode("utf-8")
    assert text.endswith("\n")

    helps, types, families_seen = {}, {}, []
    for ln in text.splitlines():
        assert ln, "empty line in exposition"
        if ln.startswith("# HELP "):
            name, _, help_text = ln[7:].partition(" ")
            assert name not in helps, f"second HELP for {name}"
            assert help_text, f"empty HELP for {name}"
            helps[name] = help_text
        elif ln.startswith("# TYPE "):
            name, _, typ = ln[7:].partition(" ")
            assert typ in ("counter", "gauge"), ln
            assert name in helps, f"TYPE before HELP for {name}"
            assert name not in types, f"second TYPE for {name}"
            types[name] = typ
            families_seen.append(name)
        else:
            assert not ln.startswith("#"), f"unknown comment line {ln!r}"
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", ln).group(0)
            # Samples follow their own family's HELP/TYPE.
            assert families_seen and families_seen[-1] == name, f"sample out of family: {ln!r}"
    m = parse_metrics(text)  # asserts every sample line parses
    for name, typ in types.items():
        assert name.startswith("stanzad_")
        if typ == "counter":
            assert name.endswith("_total"), f"counter {name} without _total"

    for name, (typ, labels) in EXPECTED.items():
        assert types.get(name) == typ, f"{name}: TYPE {types.get(name)}, expected {typ}"
        keys = [lb for (nm, lb) in m if nm == name]
        assert keys, f"no samples for {name}"
        for lb in keys:
            assert tuple(k for k, _ in lb) == labels, f"{name} labels {lb}"
        if labels == ("reactor",):
            assert sorted(dict(lb)["reactor"] for lb in keys) == ["0", "1"]
        else:
            assert sorted((dict(lb)["from"], dict(lb)["to"]) for lb in keys) == [
                ("0", "0"), ("0", "1"), ("1", "0"), ("1", "1")]
    assert m[("stanzad_reactors", ())] == 2
    assert m[("stanzad_uptime_seconds", ())] >= 0
    for r in ("0", "1"):
        total = m[("stanzad_direct_slots_total", (("reactor", r),))]
        free = m[("stanzad_direct_slots_free", (("reactor", r),))]
        used = m[("stanzad_direct_slots_used", (("reactor", r),))]
        assert free + used == total and total > 0
    # Query strings are ignored.
    st, _, body2 = n.get("/metrics?x=1")
    assert st == 200 and b"stanzad_connections_open" in body2
    n.stop_clean()


def test_head_and_healthz(node):
    n = node(reactors=2, listeners=["admin"])
    st, hdr, body = n.get("/healthz")
    assert st == 200 and body == b"ok\n"
    assert hdr["content-length"] == "3"
    for path in ("/metrics", "/healthz"):
        raw = http_raw(n.ports["admin"], f"HEAD {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        st, hdr, body = parse_response(raw)
        assert st == 200, path
        assert int(hdr["content-length"]) > 0, path
        assert body == b"", f"HEAD {path} sent a body: {body[:80]!r}"
    # HTTP/1.0 works too.
    st, _, body = parse_response(http_raw(n.ports["admin"], b"GET /healthz HTTP/1.0\r\n\r\n"))
    assert st == 200 and body == b"ok\n"
    n.stop_clean()


def echo(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            b = s.recv(65536)
            assert b, "EOF during echo"
            got += b
    assert got == data


def test_byte_counters_grow(node):
    n = node(reactors=2, listeners=["admin", "echo"])
    m0 = n.metrics()
    size = 300_000
    echo(n.ports["echo"], bytes(range(256)) * (size // 256))
    size = size // 256 * 256

    def grown():
        m = n.metrics()
        din = msum(m, "stanzad_bytes_in_total") - msum(m0, "stanzad_bytes_in_total")
        dout = msum(m, "stanzad_bytes_out_total") - msum(m0, "stanzad_bytes_out_total")
        return (din, dout) if din >= size and dout >= size else None
    din, dout = wait_until(grown, 10, 0.05, "byte counters to count the echo")
    # Nothing but the echo and a few small admin requests moved meanwhile.
    assert din < size + 10_000 and dout < size + 100_000, (din, dout)
    n.stop_clean()


def fill_without_reading(port, total, rcvbuf=4096, timeout=10.0):
    """Connects with a tiny receive buffer and sends up to <total> bytes
    without reading. Returns (socket, bytes sent, closed by peer?)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    data = b"x" * 65536
    sent, closed = 0, False
    deadline = time.monotonic() + timeout
    while sent < total and time.monotonic() < deadline:
        try:
            sent += s.send(data[: min(len(data), total - sent)])
        except BlockingIOError:
            time.sleep(0.01)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
    return s, sent, closed


def test_sighup_reload(node):
    n = node(reactors=2, listeners=["admin", "echo"], log_level="info")
    port = n.ports["echo"]

    # Before: 256 KiB waiting to be read fits the default 1 MiB output cap.
    s, sent, closed = fill_without_reading(port, 256 << 10)
    assert not closed and sent == 256 << 10
    time.sleep(0.3)
    assert msum(n.metrics(), "stanzad_output_overflow_total") == 0
    s.setblocking(True)
    s.settimeout(10)
    got = 0
    while got < sent:
        b = s.recv(65536)
        assert b, "echo connection closed under the default output cap"
        got += len(b)
    s.close()

    # Reload: log level and the output cap change, the node keeps running.
    n.log_level = "debug"
    # 64 KiB, not the 4 KiB minimum: /metrics of two reactors is larger
    # than 4 KiB (see test_metrics_larger_than_output_cap).
    n.limits["max_output_bytes"] = 65536
    n.write_config()
    n.signal(signal.SIGHUP)
    wait_until(lambda: 'msg="reloaded"' in n.stderr_text(), 10, 0.05, "the reload log line")
    assert n.alive()
    assert n.healthz() == (200, b"ok\n")
    assert "level=error" not in n.stderr_text()

    # After: 768 KiB unread (below the old 1 MiB cap) now exceeds the cap,
    # so the node drops the connection and counts it.
    s, sent, closed = fill_without_reading(port, 768 << 10)
    try:
        wait_until(lambda: msum(n.metrics(), "stanzad_output_overflow_total") >= 1, 10, 0.05,
                   "output_overflow_total after lowering limits.max_output_bytes")
    finally:
        s.close()
    echo(port, b"still echoing\n")

    # A key that needs a restart is reported and keeps its value.
    n.reactors = 1
    n.write_config()
    n.signal(signal.SIGHUP)
    wait_until(lambda: n.stderr_text().count('msg="reloaded"') >= 2, 10, 0.05, "second reload")
    err = n.stderr_text()
    assert "changed keys need a restart" in err and "node.reactors" in err
    m = n.metrics()
    assert m[("stanzad_reactors", ())] == 2
    n.stop_clean()


def test_sighup_broken_config(node):
    n = node(reactors=2, listeners=["admin", "echo"])
    good = n.config.read_text()
    n.write_config(good.replace("reactors: 2", "reactors: lots"))
    n.signal(signal.SIGHUP)
    line = wait_until(
        lambda: next((ln for ln in n.stderr_text().splitlines() if "reload failed" in ln), None),
        10, 0.05, "the reload error")
    assert "level=error" in line
    assert "node.reactors" in line and str(n.config) in line, line
    assert 'msg="reloaded"' not in n.stderr_text()
    assert n.alive()
    assert n.healthz() == (200, b"ok\n")
    echo(n.ports["echo"], b"old config still serves\n")
    assert n.metrics()[("stanzad_reactors", ())] == 2

    # A config that is not even YAML, then a missing file: same.
    n.write_config("node: [\n")
    n.signal(signal.SIGHUP)
    wait_until(lambda: n.stderr_text().count("reload failed") >= 2, 10, 0.05, "second error")
    n.config.unlink()
    n.signal(signal.SIGHUP)
    wait_until(lambda: n.stderr_text().count("reload failed") >= 3, 10, 0.05, "third error")
    assert n.healthz() == (200, b"ok\n")

    # Fixing the file makes the next SIGHUP succeed.
    n.write_config(good)
    n.signal(signal.SIGHUP)
    wait_until(lambda: 'msg="reloaded"' in n.stderr_text(), 10, 0.05, "reload after the fix")
    n.stop_clean()


def test_admin_request_after_idle(node):
    n = node(reactors=1, listeners=["admin"], limits={"admin_timeout_ms": 200})
    for _ in range(3):
        time.sleep(0.6)  # the only reactor sleeps: nothing is due
        raw = http_raw(n.ports["admin"], b"GET /healthz HTTP/1.1\r\n\r\n", timeout=5)
        assert raw.startswith(b"HTTP/1.1 200 OK"), f"after 0.6 s idle: {raw[:60]!r}"
    n.stop_clean()


def test_metrics_larger_than_output_cap(node):
    n = node(reactors=2, listeners=["admin"], limits={"max_output_bytes": 4096})
    raw = http_raw(n.ports["admin"], b"GET /metrics HTTP/1.1\r\n\r\n")
    st, hdr, body = parse_response(raw)
    assert st == 200
    assert int(hdr["content-length"]) == len(body), (
        f"Content-Length {hdr['content-length']}, body {len(body)} bytes")
    n.stop_clean()
