"""Runtime under load: 10,000 connections over two reactors, and echo
integrity through one connection and through 200 concurrent ones."""

import hashlib
import os
import random
import selectors
import socket
import time

import pytest

from conftest import connect_many, raise_nofile, wait_until

SOURCES = [f"127.0.0.{i}" for i in range(2, 10)]
N_CONNS = 10_000


def test_ten_thousand_connections(node):
    nofile = raise_nofile()
    if nofile < N_CONNS + 200:
        pytest.skip(f"RLIMIT_NOFILE hard limit {nofile} is too low for {N_CONNS} client sockets")
    # Held, never authenticated, silent: lift the per-source budgets (the
    # backstop and the connection rate) and the first-bytes deadline.
    n = node(reactors=2, listeners=["admin", "c2s"],
             limits={"max_unauth_per_source": 100000, "source_rate_per_sec": 0,
                     "handshake_timeout_ms": 60000})
    base = n.wait_idle()  # the /healthz probe's connection may still be closing
    assert base["accepted"] == 0

    t0 = time.monotonic()
    socks = connect_many(n.ports["c2s"], N_CONNS, SOURCES, batch=1000, timeout=60)
    try:
        # The kernel completes the handshakes; the reactors accept from
        # their SO_REUSEPORT backlogs a moment later.
        c = wait_until(lambda: (lambda c: c if c["accepted"] >= N_CONNS else None)(n.clients()),
                       30, 0.2, f"{N_CONNS} accepts")
        c = wait_until(lambda: (lambda c: c if c["open"] == N_CONNS else None)(n.clients()),
                       10, 0.2, f"{N_CONNS} open connections")
        assert c["accepted"] == N_CONNS
        assert c["refused"] == 0
        assert c["slots_used"] == N_CONNS
        by = c["open_by_reactor"]
        assert set(by) == {"0", "1"}
        for r, v in by.items():
            # The admin request itself sits on one of them: at most 1 extra.
            assert v >= N_CONNS * 0.10, f"reactor {r} holds only {v} of {N_CONNS}: {by}"
        connect_s = time.monotonic() - t0
    finally:
        for s in socks:
            s.close()

    c = n.wait_idle(timeout=30)
    assert c["accepted"] == N_CONNS
    assert c["closed"] == c["accepted"]
    m = c["m"]
    assert sum(v for (k, _), v in m.items() if k == "stanzad_connections_refused_total") == 0
    n.stop_clean()
    print(f"{N_CONNS} connections accepted in {connect_s:.1f}s")


def _echo_roundtrip(sock, data, chunk=65536, timeout=60.0):
    """Sends <data> in chunks while reading the echo; returns what came back."""
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    sent, got = 0, bytearray()
    deadline = time.monotonic() + timeout
    try:
        while len(got) < len(data):
            assert time.monotonic() < deadline, f"echo stalled: sent {sent} got {len(got)}"
            # Bound what is in flight, so the node's output queue stays
            # well below limits.max_output_bytes.
            want = selectors.EVENT_READ
            if sent < len(data) and sent - len(got) < (512 << 10):
                want |= selectors.EVENT_WRITE
            sel.modify(sock, want)
            for _, ev in sel.select(1.0):
                if ev & selectors.EVENT_READ:
                    b = sock.recv(262144)
                    assert b, f"EOF after {len(got)} of {len(data)} bytes"
                    got += b
                if ev & selectors.EVENT_WRITE and sent < len(data):
                    try:
                        sent += sock.send(data[sent:sent + chunk])
                    except BlockingIOError:
                        pass
    finally:
        sel.close()
    return bytes(got)


def test_echo_large_single_connection(node):
    n = node(reactors=2, listeners=["admin", "echo"])
    size = 4 << 20
    data = random.Random(1).randbytes(size)
    with socket.create_connection(("127.0.0.1", n.ports["echo"]), timeout=10) as s:
        got = _echo_roundtrip(s, data)
    assert len(got) == len(data)
    if got != data:
        first = next(i for i in range(len(data)) if got[i] != data[i])
        pytest.fail(f"echo differs from byte {first} on")
    m = n.metrics()
    assert sum(v for (k, _), v in m.items() if k == "stanzad_bytes_out_total") >= size
    n.wait_idle()
    n.stop_clean()


def test_echo_200_concurrent(node):
    n = node(reactors=2, listeners=["admin", "echo"])
    nconn, size = 200, 64 << 10
    rnd = random.Random(2)
    payloads = [rnd.randbytes(size) for _ in range(nconn)]
    socks = connect_many(n.ports["echo"], nconn, ["127.0.0.1"], batch=200, timeout=20)
    sel = selectors.DefaultSelector()
    state = {}
    try:
        for i, s in enumerate(socks):
            state[s.fileno()] = [i, s, 0, bytearray()]  # idx, sock, sent, got
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        done = 0
        deadline = time.monotonic() + 60
        while done < nconn:
            assert time.monotonic() < deadline, f"only {done} of {nconn} echoes complete"
            for key, ev in sel.select(1.0):
                st = state[key.fileobj.fileno()]
                i, s = st[0], st[1]
                if ev & selectors.EVENT_WRITE:
                    k = rnd.randint(1, 16384)
                    try:
                        st[2] += s.send(payloads[i][st[2]:st[2] + k])
                    except BlockingIOError:
                        pass
                    if st[2] == size:
                        sel.modify(s, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    b = s.recv(65536)
                    assert b, f"conn {i}: EOF after {len(st[3])} bytes"
                    st[3] += b
                    assert len(st[3]) <= size, f"conn {i}: more bytes back than sent"
                    if len(st[3]) == size:
                        sel.unregister(s)
                        done += 1
        bad = [st[0] for st in state.values() if bytes(st[3]) != payloads[st[0]]]
        assert not bad, f"{len(bad)} connections got wrong bytes back, e.g. {bad[:5]}"
    finally:
        sel.close()
        for s in socks:
            s.close()
    c = n.wait_idle()
    assert c["accepted"] == nconn
    n.stop_clean()
