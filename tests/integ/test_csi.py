"""XEP-0352 Client State Indication (urn:xmpp:csi:0) end to end: the stream
feature after authentication, <inactive/> and <active/> on a bound stream;
while inactive, presence updates are held and coalesced to the latest per
sender full JID, within limits.csi_max_held; messages and subscription
requests are delivered at once, after what was held; everything is flushed
on <active/>; the nonzas before binding and unknown ones in the namespace
end the stream. Raw sockets, and slixmpp at its defaults with xep_0352."""

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import msum
from xmpp_util import (NS_BIND, NS_CLIENT, NS_SASL, DOMAIN, RawClient, c2s_node, import_users,
                       login, q, slix_client, slix_start, slix_stop, run_loop)

PW = "csi-Secret-1"
NS_CSI = "urn:xmpp:csi:0"
QUIET = 0.5


@pytest.fixture
def csi(node):
    def make(**limits):
        n = c2s_node(node, limits=limits or None)
        import_users(n, [("amy", PW), ("bo", PW)], iterations=1)
        return n
    return make


def online(n, user, res):
    c = login(n, user, PW, res)
    c.send("<presence/>")
    return c


def status(el):
    return el.findtext(q(NS_CLIENT, "status"))


def summary(els):
    """[(kind, from, status or body)] of stanzas."""
    out = []
    for e in els:
        kind = e.tag.rpartition("}")[2]
        text = status(e) if kind == "presence" else e.findtext(q(NS_CLIENT, "body"))
        out.append((kind, e.get("from"), e.get("type"), text))
    return out


def test_feature_and_nonza_rules(csi):
    n = csi()
    with RawClient(n.xmpp["plain"]) as c:
        feats = c.open()
        assert feats.find(q(NS_CSI, "csi")) is None  # not before authentication
        c.auth_plain("amy", PW)
        feats = c.open()
        assert feats.find(q(NS_CSI, "csi")) is not None, ET.tostring(feats)
        # Before binding the nonza is no stanza the stream takes.
        c.send(f"<inactive xmlns='{NS_CSI}'/>")
        assert c.stream_error() == "unsupported-stanza-type"
    with login(n, "amy", PW, "x") as c:
        c.send(f"<inactive xmlns='{NS_CSI}'/><inactive xmlns='{NS_CSI}'/>"
               f"<active xmlns='{NS_CSI}'/><active xmlns='{NS_CSI}'/>")
        el = c.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
        assert el.get("type") == "result"
        c.send(f"<sleepy xmlns='{NS_CSI}'/>")
        assert c.stream_error() == "unsupported-stanza-type"


def test_held_coalesced_urgent_and_flushed(csi):
    n = csi()
    a1, a2, a3 = online(n, "amy", "a1"), online(n, "amy", "a2"), online(n, "amy", "a3")
    b = online(n, "bo", "b")
    try:
        for c in (a1, a2, a3, b):
            c.drain(0.3)
        a1.send(f"<inactive xmlns='{NS_CSI}'/>")
        time.sleep(0.1)
        # Three updates from a2, one from a3, two directed from b: held.
        for s in ("a2-1", "a2-2", "a2-3"):
            a2.send(f"<presence><status>{s}</status></presence>")
        a3.send("<presence><status>a3-1</status></presence>")
        b.send(f"<presence to='{a1.jid}'><status>b-1</status></presence>")
        b.send(f"<presence to='{a1.jid}'><status>b-2</status></presence>")
        assert a1.drain(QUIET) == []
        # A message is urgent: the latest presence of each sender first,
        # in the order the senders were first held, then the message.
        b.send(f"<message to='{a1.jid}' type='chat'><body>now</body></message>")
        got = summary(a1.drain(QUIET))
        assert got == [("presence", a2.jid, None, "a2-3"), ("presence", a3.jid, None, "a3-1"),
                       ("presence", b.jid, None, "b-2"), ("message", b.jid, "chat", "now")], got
        # Still inactive: held again, an unavailable replaces an available.
        a2.send("<presence><status>a2-4</status></presence>")
        a3.send("<presence type='unavailable'/>")
        b.send(f"<presence to='{a1.jid}'><status>b-3</status></presence>")
        assert a1.drain(QUIET) == []
        # A subscription request is no update: delivered at once, after.
        b.send("<presence to='amy@localhost' type='subscribe'/>")
        got = summary(a1.drain(QUIET))
        assert got == [("presence", a2.jid, None, "a2-4"), ("presence", a3.jid, "unavailable", None),
                       ("presence", b.jid, None, "b-3"),
                       ("presence", "bo@localhost", "subscribe", None)], got
        # <active/> flushes, and from then on presence flows at once.
        a2.send("<presence><status>a2-5</status></presence>")
        assert a1.drain(QUIET) == []
        a1.send(f"<active xmlns='{NS_CSI}'/>")
        assert summary(a1.drain(QUIET)) == [("presence", a2.jid, None, "a2-5")]
        a2.send("<presence><status>a2-6</status></presence>")
        assert summary(a1.drain(QUIET)) == [("presence", a2.jid, None, "a2-6")]
    finally:
        for c in (a1, a2, a3, b):
            c.close()


def test_bounded_and_dropped_at_end(csi):
    n = csi(csi_max_held=2)
    a1, a2, a3 = online(n, "amy", "a1"), online(n, "amy", "a2"), online(n, "amy", "a3")
    b = online(n, "bo", "b")
    try:
        for c in (a1, a2, a3, b):
            c.drain(0.3)
        a1.send(f"<inactive xmlns='{NS_CSI}'/>")
        time.sleep(0.1)
        a2.send("<presence><status>1</status></presence>")
        a3.send("<presence><status>2</status></presence>")
        a2.send("<presence><status>3</status></presence>")  # coalesced: still 2 senders
        assert a1.drain(QUIET) == []
        # A third sender passes the bound: everything goes, in order.
        b.send(f"<presence to='{a1.jid}'><status>4</status></presence>")
        got = summary(a1.drain(QUIET))
        assert got == [("presence", a2.jid, None, "3"), ("presence", a3.jid, None, "2"),
                       ("presence", b.jid, None, "4")], got
        assert msum(n.metrics(), "stanzad_csi_held_overflow_total") == 1
        # Held presences of a session that ends are dropped (the node's
        # sanitizer-checked exit shows nothing leaks).
        a2.send("<presence><status>5</status></presence>")
        time.sleep(0.2)
    finally:
        for c in (a1, a2, a3, b):
            c.close()
    assert n.stop_clean() is not None


def test_slixmpp_defaults(csi):
    n = csi()
    loop = asyncio.new_event_loop()
    amy = slix_client(loop, "amy@localhost/phone", PW, n.cert, plugins=["xep_0352"])
    amy2 = slix_client(loop, "amy@localhost/desk", PW, n.cert)
    seen = []
    enabled = []
    amy.add_event_handler("csi_enabled", lambda f: enabled.append(True))
    amy.add_event_handler("presence_available", lambda p: seen.append(
        (str(p["from"]), p["status"])))
    amy.add_event_handler("message", lambda m: seen.append(("msg", m["body"])))

    async def until(pred, steps=50):
        for _ in range(steps):
            if pred():
                return
            await asyncio.sleep(0.1)

    async def flow():
        await slix_start(amy, n.xmpp["starttls"])
        await slix_start(amy2, n.xmpp["starttls"])
        amy.send_presence()
        amy2.send_presence(pstatus="s0")
        await until(lambda: ("amy@localhost/desk", "s0") in seen)
        amy["xep_0352"].send_inactive()
        await asyncio.sleep(0.3)
        seen.clear()
        amy2.send_presence(pstatus="s1")
        amy2.send_presence(pstatus="s2")
        await asyncio.sleep(QUIET)
        held = list(seen)
        amy["xep_0352"].send_active()
        await until(lambda: seen)
        await asyncio.sleep(0.3)
        flushed = list(seen)
        amy["xep_0352"].send_inactive()
        await asyncio.sleep(0.3)
        seen.clear()
        amy2.send_presence(pstatus="s3")
        amy2.send_message(mto="amy@localhost/phone", mbody="urgent", mtype="chat")
        await until(lambda: len(seen) >= 2)
        await asyncio.sleep(0.2)
        for x in (amy, amy2):
            await slix_stop(x)
        return held, flushed

    try:
        held, flushed = run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert enabled == [True]
    assert held == [], held
    assert flushed == [("amy@localhost/desk", "s2")], flushed
    assert seen == [("amy@localhost/desk", "s3"), ("msg", "urgent")], seen
