"""Live handoff between reactors under traffic: 1,000 echo connections each
send a stream that interleaves data lines with "@move 0" / "@move 1" lines,
in random-sized chunks (so commands are split across segments), while
reading their echo. Every connection must get back exactly what it sent,
in order, no matter how many times it moved."""

import random
import selectors
import socket
import threading
import time

import pytest

from conftest import connect_many, msum, raise_nofile, wait_until

N_CONNS = 1000
MOVES_PER_CONN = 20
DATA_LINES_BETWEEN = 2  # data lines before each move line


def make_script(i, rnd):
    """The byte stream connection <i> sends."""
    out = []
    seq = 0
    for k in range(MOVES_PER_CONN):
        for _ in range(DATA_LINES_BETWEEN):
            pad = "".join(rnd.choice("abcdefghijklmnopqrstuvwxyz@ 0123456789")
                          for _ in range(rnd.randint(0, 60)))
            out.append(f"c{i:04d} s{seq:03d} {pad}\n")
            seq += 1
        # Alternate targets so that most commands really move the
        # connection; a few are written in odd but valid forms.
        dst = k % 2
        out.append(rnd.choice([f"@move {dst}\n", f"@move {dst + 2}\n", f"@move {dst}\n"]))
    out.append(f"c{i:04d} end\n")
    return "".join(out).encode()


@pytest.mark.parametrize("handoff", ["install", "send_fd"])
def test_handoff_under_traffic(node, handoff):
    """Both ways a connection can move: the default (descriptor install and
    a data message, Linux 6.8) and MSG_RING SEND_FD, which older kernels
    use and node.handoff: send_fd forces."""
    raise_nofile()
    n = node(reactors=2, listeners=["admin", "echo"], node_extra={"handoff": handoff})
    rnd = random.Random(7)
    scripts = [make_script(i, rnd) for i in range(N_CONNS)]
    t0 = time.monotonic()
    socks = connect_many(n.ports["echo"], N_CONNS, ["127.0.0.1"], batch=500, timeout=30)
    sel = selectors.DefaultSelector()
    st = {}  # fd -> [idx, sock, sent, got]
    try:
        for i, s in enumerate(socks):
            st[s.fileno()] = [i, s, 0, bytearray()]
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        done = 0
        deadline = time.monotonic() + 90
        while done < N_CONNS:
            if time.monotonic() > deadline:
                lag = [(e[0], e[2], len(e[3])) for e in st.values() if len(e[3]) < len(scripts[e[0]])]
                raise AssertionError(f"{N_CONNS - done} connections incomplete after 90s, "
                                     f"e.g. (idx, sent, received): {lag[:5]}")
            for key, ev in sel.select(1.0):
                e = st[key.fileobj.fileno()]
                i, s = e[0], e[1]
                script = scripts[i]
                if ev & selectors.EVENT_WRITE and e[2] < len(script):
                    k = rnd.randint(1, 96)
                    try:
                        e[2] += s.send(script[e[2]:e[2] + k])
                    except BlockingIOError:
                        pass
                    if e[2] == len(script):
                        sel.modify(s, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    try:
                        b = s.recv(65536)
                    except BlockingIOError:
                        continue
                    assert b, f"conn {i}: EOF after {len(e[3])} of {len(script)} bytes"
                    e[3] += b
                    got = e[3]
                    assert script[:len(got)] == got, (
                        f"conn {i}: echo diverges at byte "
                        f"{next(j for j in range(len(got)) if got[j] != script[j])}: "
                        f"sent ...{script[max(0, len(got) - 80):len(got)]!r}, "
                        f"got ...{bytes(got[-80:])!r}")
                    if len(got) == len(script):
                        sel.unregister(s)
                        done += 1
        elapsed = time.monotonic() - t0

        m = n.metrics()
        h_in = msum(m, "stanzad_handoffs_in_total")
        h_out = msum(m, "stanzad_handoffs_out_total")
        h_fail = msum(m, "stanzad_handoffs_failed_total")
        assert h_in >= N_CONNS, f"only {h_in} handoffs for {N_CONNS} connections"
        assert h_in == h_out, f"handoffs in {h_in} != out {h_out}"
        assert h_fail == 0, f"{h_fail} handoffs failed (no destination slot should be short)"
        c = n.clients(m)
        assert c["accepted"] == N_CONNS
        assert c["open"] >= N_CONNS  # the previous admin connection may still be closing
    finally:
        sel.close()
        for s in socks:
            s.close()
    c = n.wait_idle(timeout=30)
    assert c["accepted"] == N_CONNS and c["closed"] == N_CONNS
    m = c["m"]
    for (name, labels), v in m.items():
        if name == "stanzad_queue_depth":
            assert v == 0, f"queue {labels} not drained: {v}"
    n.stop_clean()
    if handoff == "send_fd":
        assert "hand-off by MSG_RING SEND_FD (node.handoff)" in n.stderr_path.read_text()
    print(f"{N_CONNS} connections, {h_in:.0f} handoffs, echo verified in {elapsed:.1f}s")


@pytest.mark.parametrize("round_", range(5))
def test_stop_with_moving_connections(node, round_):
    """SIGTERM while connections are live and moving: clean exit 0.
    Repeated, because the window it probes is narrow."""
    n = node(reactors=2, listeners=["admin", "echo"])
    socks = connect_many(n.ports["echo"], 200, ["127.0.0.1"], batch=200, timeout=20)
    stop = threading.Event()

    def churn():
        # Keeps every connection moving (and reads its echo) until the
        # node is gone or 20 s passed.
        line = b"data\n@move 0\ndata\n@move 1\n"
        deadline = time.monotonic() + 20
        while not stop.is_set() and time.monotonic() < deadline:
            for s in socks:
                try:
                    s.send(line)
                except (BlockingIOError, OSError):
                    pass
                try:
                    s.recv(65536)
                except (BlockingIOError, OSError):
                    pass

    t = threading.Thread(target=churn, daemon=True)
    t.start()
    try:
        wait_until(lambda: msum(n.metrics(), "stanzad_handoffs_in_total") >= 200, 20, 0.02,
                   "handoffs to start")
        # A healthy stop takes well under a second; 10 s keeps a hang short.
        err = n.stop_clean(timeout=10)
        assert "node stopped" in err
    finally:
        stop.set()
        t.join(30)
    try:
        # Every client is disconnected by the stop.
        for s in socks:
            s.setblocking(True)
            s.settimeout(5)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for s in socks:
            s.close()
