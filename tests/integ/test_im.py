"""Instant messaging between users of one node, end to end: rosters
(RFC 6121 §2), the subscription handshake (§3), presence to contacts, probes
at login, unavailable presence at the end of a session (on a close and on a
TCP reset, at once) and directed presence (§4), with raw-socket clients and
with slixmpp at its default settings. Users are placed on both reactors.

The module-level rules (every §2.3.3 error, versioning, pre-approval...)
are unit-tested in tests/unit/core/mod/; this file checks that a real
stanzad wires them together."""

import asyncio
import socket
import struct
import time
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import (NS_CLIENT, DOMAIN, c2s_node, import_users, login, q, slix_client,
                       slix_start, slix_stop, run_loop, stanza_error, home_reactor)

PW = "im-Secret-1"
NS_ROSTER = "jabber:iq:roster"
PROMPT = 1.0  # seconds: "at once", well below the 5 s lingering close


def users_on_both_reactors():
    """Two user names homed on different reactors (of 2)."""
    a = "alice"
    for i in range(100):
        b = f"bob{i}"
        if home_reactor(f"{b}@{DOMAIN}", 2) != home_reactor(f"{a}@{DOMAIN}", 2):
            return a, b
    raise AssertionError("no pair across reactors")


A, B = users_on_both_reactors()


@pytest.fixture
def im(node):
    n = c2s_node(node)
    import_users(n, [(A, PW), (B, PW), ("carl", PW)], iterations=1)
    return n


def roster(c):
    el = c.iq(f"<query xmlns='{NS_ROSTER}'/>")
    assert el.get("type") == "result", ET.tostring(el)
    items = {}
    for it in el.find(q(NS_ROSTER, "query")):
        items[it.get("jid")] = (it.get("subscription"), it.get("ask"))
    return items


def is_pres(frm=None, typ=None):
    def p(el):
        return (el.tag == q(NS_CLIENT, "presence") and (frm is None or el.get("from") == frm)
                and el.get("type") == typ)
    return p


def subscribe_both(a, b):
    """a subscribes to b, b approves and subscribes back, a approves."""
    a.send(f"<presence to='{B}@{DOMAIN}' type='subscribe'/>")
    b.wait_for(is_pres(f"{A}@{DOMAIN}", "subscribe"), what="subscribe at b")
    b.send(f"<presence to='{A}@{DOMAIN}' type='subscribed'/>")
    a.wait_for(is_pres(f"{B}@{DOMAIN}", "subscribed"), what="subscribed at a")
    b.send(f"<presence to='{A}@{DOMAIN}' type='subscribe'/>")
    a.wait_for(is_pres(f"{B}@{DOMAIN}", "subscribe"), what="subscribe at a")
    a.send(f"<presence to='{B}@{DOMAIN}' type='subscribed'/>")
    b.wait_for(is_pres(f"{A}@{DOMAIN}", "subscribed"), what="subscribed at b")


def test_subscription_handshake_both_ways(im):
    with login(im, A, PW, "a") as a, login(im, B, PW, "b") as b:
        assert roster(a) == {} and roster(b) == {}
        a.send("<presence/>")
        b.send("<presence/>")
        subscribe_both(a, b)
        time.sleep(0.3)
        assert roster(a) == {f"{B}@{DOMAIN}": ("both", None)}
        assert roster(b) == {f"{A}@{DOMAIN}": ("both", None)}
        # Now each sees the other's presence updates.
        a.drain()
        b.drain()
        a.send("<presence><show>away</show></presence>")
        el, _ = b.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and
                           e.get("from") == a.jid and e.get("type") is None, what="update")
        assert el.findtext(q(NS_CLIENT, "show")) == "away"


def test_probe_at_login_and_unavailable_at_once(im):
    with login(im, A, PW, "a") as a, login(im, B, PW, "b") as b:
        a.send("<presence/>")
        b.send("<presence/>")
        subscribe_both(a, b)
    # A new login: its initial presence probes the contacts it sees, and
    # the answer is the contact's current presence.
    with login(im, B, PW, "b2") as b:
        b.send("<presence><status>here</status></presence>")
        time.sleep(0.2)
        with login(im, A, PW, "a2") as a:
            a.send("<presence/>")
            el, _ = a.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and
                               e.get("from") == b.jid and e.get("type") is None,
                               what="probe answer")
            assert el.findtext(q(NS_CLIENT, "status")) == "here"
            b.wait_for(is_pres(a.jid, None), what="a's initial presence at b")
            # An explicit stream close: b hears a's unavailable at once.
            a.send("</stream:stream>")
            t0 = time.monotonic()
            b.wait_for(is_pres(a.jid, "unavailable"), timeout=4, what="unavailable")
            assert time.monotonic() - t0 < PROMPT
        with login(im, A, PW, "a3") as a:
            a.send("<presence/>")
            b.wait_for(is_pres(a.jid, None), what="a3's presence")
            # A TCP reset: the same, at once.
            a.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            a.sock.close()
            t0 = time.monotonic()
            b.wait_for(is_pres(a.jid, "unavailable"), timeout=4, what="unavailable on reset")
            assert time.monotonic() - t0 < PROMPT


def test_no_presence_without_authorisation(im):
    with login(im, A, PW, "a") as a, login(im, "carl", PW, "c") as c:
        a.send("<presence/>")
        c.send("<presence/>")
        c.drain()
        # carl asks, alice never answers: carl sees nothing of alice.
        c.send(f"<presence to='{A}@{DOMAIN}' type='subscribe'/>")
        a.wait_for(is_pres(f"carl@{DOMAIN}", "subscribe"), what="request")
        a.send("<presence><status>secret</status></presence>")
        got = c.drain(0.5)
        assert not [e for e in got if e.tag == q(NS_CLIENT, "presence") and
                    e.get("from", "").startswith(f"{A}@")], [ET.tostring(e) for e in got]
        # The unanswered request is delivered again at alice's next login.
    with login(im, A, PW, "a2") as a:
        a.send("<presence/>")
        a.wait_for(is_pres(f"carl@{DOMAIN}", "subscribe"), what="request again at login")


def test_directed_presence_and_its_unavailable(im):
    with login(im, A, PW, "a") as a, login(im, "carl", PW, "c") as c:
        a.send("<presence/>")
        c.send("<presence/>")
        c.drain()
        a.send(f"<presence to='{c.jid}'><status>hi carl</status></presence>")
        c.wait_for(is_pres(a.jid, None), what="directed presence")
        a.send("</stream:stream>")
        c.wait_for(is_pres(a.jid, "unavailable"), timeout=4, what="unavailable owed (§4.6.3)")


def test_roster_set_push_and_errors(im):
    with login(im, A, PW, "a") as a, login(im, A, PW, "a2") as a2:
        roster(a2)  # a2 is an interested resource
        el = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='carl@{DOMAIN}' name='Carl ☃'>"
                  "<group>Friends</group><group>Ünï</group></item></query>", typ="set")
        assert el.get("type") == "result", ET.tostring(el)
        push, _ = a2.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "set",
                              what="roster push")
        item = push.find(q(NS_ROSTER, "query")).find(q(NS_ROSTER, "item"))
        assert item.get("jid") == f"carl@{DOMAIN}" and item.get("name") == "Carl ☃"
        assert [g.text for g in item.findall(q(NS_ROSTER, "group"))] == ["Friends", "Ünï"]
        # §2.3.3: two items in a set are a bad request.
        el = a.iq(f"<query xmlns='{NS_ROSTER}'><item jid='x@{DOMAIN}'/><item jid='y@{DOMAIN}'/>"
                  "</query>", typ="set")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        # Someone else's roster is not yours to read.
        el = a.iq(f"<query xmlns='{NS_ROSTER}'/>", to=f"carl@{DOMAIN}")
        assert el.get("type") == "error", ET.tostring(el)


def test_iq_to_domain_resource_is_answered(im):
    with login(im, A, PW, "a") as a:
        el = a.iq("<ping xmlns='urn:xmpp:ping'/>", to=f"{DOMAIN}/nothing")
        assert stanza_error(el) == ("cancel", "service-unavailable"), ET.tostring(el)


def test_slixmpp_defaults_roster_and_presence(im):
    """Two slixmpp clients at their defaults (STARTTLS, SCRAM-SHA-512-PLUS):
    roster at login, a subscription (slixmpp approves and subscribes back
    on its own), presence both ways, a message, and the unavailable."""
    loop = asyncio.new_event_loop()
    a = slix_client(loop, f"{A}@{DOMAIN}/laptop", PW, im.cert)
    b = slix_client(loop, f"{B}@{DOMAIN}/phone", PW, im.cert)
    seen = {"a": [], "b": []}
    a.add_event_handler("presence_available", lambda p: seen["a"].append(("on", str(p["from"]))))
    a.add_event_handler("presence_unavailable",
                        lambda p: seen["a"].append(("off", str(p["from"]))))
    b.add_event_handler("message", lambda m: seen["b"].append(("msg", m["body"])))

    async def flow():
        await slix_start(a, im.xmpp["starttls"])
        await slix_start(b, im.xmpp["starttls"])
        for x in (a, b):
            await x.get_roster()
            x.send_presence()
        a.send_presence_subscription(pto=f"{B}@{DOMAIN}")
        for _ in range(50):
            if ("on", b.boundjid.full) in seen["a"] and \
                    a.client_roster[f"{B}@{DOMAIN}"]["subscription"] == "both":
                break
            await asyncio.sleep(0.1)
        a.send_message(mto=f"{B}@{DOMAIN}", mbody="hello", mtype="chat")
        for _ in range(30):
            if seen["b"]:
                break
            await asyncio.sleep(0.1)
        await slix_stop(b)
        for _ in range(30):
            if ("off", b.boundjid.full) in seen["a"]:
                break
            await asyncio.sleep(0.1)
        await slix_stop(a)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert a.client_roster[f"{B}@{DOMAIN}"]["subscription"] == "both"
    assert ("on", f"{B}@{DOMAIN}/phone") in seen["a"], seen
    assert seen["b"] == [("msg", "hello")], seen
    assert ("off", f"{B}@{DOMAIN}/phone") in seen["a"], seen
