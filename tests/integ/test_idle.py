"""Idle client streams (RFC 6120 §4.6 and §4.9.3.4, XEP-0199 §4.2): a
bound stream that sends nothing for limits.idle_timeout_ms gets a ping
from the server; any input (the answer, another stanza, a whitespace
keepalive) keeps the stream, and silence for limits.ping_timeout_ms more
ends it with <connection-timeout/>.

Raw-socket clients and slixmpp against a real stanzad with 2 reactors."""

import asyncio
import time
import xml.etree.ElementTree as ET

from conftest import msum
from xmpp_util import (DOMAIN, NS_CLIENT, c2s_node, import_users, login, q, run_loop,
                       slix_client, slix_start, slix_stop)

PW = "idle-Secret-1"
NS_PING = "urn:xmpp:ping"
IDLE_MS, PING_MS = 1000, 1000


def idle_node(node, **limits):
    lim = {"idle_timeout_ms": IDLE_MS, "ping_timeout_ms": PING_MS}
    lim.update(limits)
    n = c2s_node(node, limits=lim)
    import_users(n, [(u, PW) for u in ("ann", "bob", "cat")], iterations=1)
    return n


def is_server_ping(el, jid):
    return (el.tag == q(NS_CLIENT, "iq") and el.get("type") == "get" and
            el.get("from") == DOMAIN and el.get("to") == jid and
            el.find(q(NS_PING, "ping")) is not None and bool(el.get("id")))


def test_silent_client_is_pinged_then_closed(node):
    n = idle_node(node)
    for how in ("plain", "direct"):
        c = login(n, "ann", PW, "r", how=how)
        try:
            t0 = time.monotonic()
            el = c.next(timeout=10)
            waited = time.monotonic() - t0
            assert is_server_ping(el, c.jid), ET.tostring(el)
            assert 0.5 < waited < 6, waited  # from bind, which came a little before t0
            # No answer: the stream ends one ping timeout later.
            assert c.stream_error(timeout=10) == "connection-timeout"
            assert 1.3 < time.monotonic() - t0 < 12
        finally:
            c.close()
    m = n.metrics()
    assert msum(m, "stanzad_idle_pings_total") == 2
    assert msum(m, "stanzad_idle_timeouts_total") == 2


def test_answered_pings_keep_the_stream(node):
    n = idle_node(node)
    c = login(n, "bob", PW, "r")
    try:
        for _ in range(3):
            el = c.next(timeout=10)
            assert is_server_ping(el, c.jid), ET.tostring(el)
            c.send(f"<iq type='result' id='{el.get('id')}' to='{DOMAIN}'/>")
        # Still served, and the results drew no answer of their own.
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"
    finally:
        c.close()
    m = n.metrics()
    assert msum(m, "stanzad_idle_pings_total") >= 3
    assert msum(m, "stanzad_idle_timeouts_total") == 0


def test_any_input_counts(node):
    # A longer period here: a pause of the test itself longer than the
    # margin (period minus the 0.3 s between sends) would be silence.
    idle_ms = 2000
    n = idle_node(node, idle_timeout_ms=idle_ms)
    ann = login(n, "ann", PW, "a")
    bob = login(n, "bob", PW, "b")
    try:
        # One keeps the stream alive with whitespace (RFC 6120 §4.6.1), the
        # other with stanzas to the first: neither is ever pinged.
        end = time.monotonic() + 3.5 * idle_ms / 1000
        i = 0
        while time.monotonic() < end:
            ann.send(" ")
            bob.send(f"<message to='{ann.jid}' type='chat' id='m{i}'><body>hi</body></message>")
            i += 1
            time.sleep(0.3)
        assert msum(n.metrics(), "stanzad_idle_pings_total") == 0
        got = ann.drain(quiet=0.5)
        assert all(el.tag == q(NS_CLIENT, "message") for el in got), \
            [ET.tostring(e)[:200] for e in got]
        assert len(got) == i
    finally:
        ann.close()
        bob.close()


def test_zero_turns_the_check_off(node):
    n = idle_node(node, idle_timeout_ms=0)
    c = login(n, "cat", PW, "r")
    try:
        assert c.drain(quiet=2.5 * IDLE_MS / 1000) == []
        assert c.iq(f"<ping xmlns='{NS_PING}'/>", to=DOMAIN).get("type") == "result"
    finally:
        c.close()
    assert msum(n.metrics(), "stanzad_idle_pings_total") == 0


def test_slixmpp_answers_and_stays(node):
    # A real client library answers the server's pings (its XEP-0199
    # plugin) and is never disconnected for being idle.
    n = idle_node(node)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        x = slix_client(loop, f"ann@{DOMAIN}/slix", PW, n.cert, mech="PLAIN",
                        plugins=["xep_0199"])
        run_loop(loop, slix_start(x, n.xmpp["starttls"]), 30)
        dropped = []
        x.add_event_handler("disconnected", lambda ev: dropped.append(ev))
        run_loop(loop, asyncio.sleep(3.5 * (IDLE_MS + PING_MS) / 1000), 30)
        assert dropped == []
        m = n.metrics()
        assert msum(m, "stanzad_idle_pings_total") >= 2
        assert msum(m, "stanzad_idle_timeouts_total") == 0
        run_loop(loop, slix_stop(x), 15)
    finally:
        loop.close()
        asyncio.set_event_loop(None)
