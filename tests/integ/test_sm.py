"""XEP-0198 stream management on client streams (urn:xmpp:sm:3), on streams
that did not ask for resumption (test_resume.py has that): the feature after SASL, <enable/> only once bound, 'h' both
ways, the server's own <r/>, the bound on unacknowledged stanzas, and what
happens to stanzas a client never acknowledged (XEP-0198 §4, RFC 6121
§8.5.3.2.1: a message goes on as if sent to the bare JID, here offline
storage, XEP-0160; an iq request gets an error back).

Raw-socket clients against a real stanzad with 2 reactors."""

import time
import xml.etree.ElementTree as ET

import pytest

from conftest import msum
from xmpp_util import (NS_CLIENT, NS_SASL, NS_STANZAS, RawClient, DOMAIN, c2s_node,
                       import_users, local, login, q)

PW = "sm-Secret-1"
NS_SM = "urn:xmpp:sm:3"
NS_STREAM = "http://etherx.jabber.org/streams"
REQUEST_AFTER = 8  # net/sm.h SZ_SM_REQUEST_AFTER


def enable(c):
    c.send(f"<enable xmlns='{NS_SM}'/>")
    el = c.next()
    assert el.tag == q(NS_SM, "enabled"), ET.tostring(el)
    # Resumption not asked for, so not offered (XEP-0198 §5): neither
    # 'resume' nor 'id'.
    assert el.get("resume") is None and el.get("id") is None
    return el


def failed_condition(el):
    assert el.tag == q(NS_SM, "failed"), ET.tostring(el)
    return [local(c.tag) for c in el if c.tag.startswith("{" + NS_STANZAS + "}")]


def msg(to, body, mid):
    return f"<message to='{to}' type='chat' id='{mid}'><body>{body}</body></message>"


def is_msg(el):
    return el.tag == q(NS_CLIENT, "message")


@pytest.fixture
def sm_node(node):
    def make(**limits):
        n = c2s_node(node, limits=limits or None)
        import_users(n, [(u, PW) for u in ("ann", "bob", "cat")], iterations=1)
        return n
    return make


def test_feature_and_enable_rules(sm_node):
    n = sm_node()
    with RawClient(n.xmpp["plain"]) as c:
        feats = c.open()
        # Not offered before authentication.
        assert feats.find(q(NS_SM, "sm")) is None
        assert c.auth_plain("ann", PW).tag == q(NS_SASL, "success")
        feats = c.open()
        assert feats.find(q(NS_SM, "sm")) is not None, ET.tostring(feats)
        # Before binding: <enable/> fails, the stream goes on (§3).
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert failed_condition(c.next()) == ["unexpected-request"]
        # No such session: <resume/> fails, binding still works (§5).
        c.send(f"<resume xmlns='{NS_SM}' previd='nope' h='0'/>")
        assert failed_condition(c.next()) == ["item-not-found"]
        c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        el = c.next()
        assert el.get("type") == "result"
        c.jid = el.find("{urn:ietf:params:xml:ns:xmpp-bind}bind/"
                        "{urn:ietf:params:xml:ns:xmpp-bind}jid").text
        enable(c)
        # Once only.
        c.send(f"<enable xmlns='{NS_SM}'/>")
        assert failed_condition(c.next()) == ["unexpected-request"]
        # Stanzas handled since <enable/>: presence, an iq the server
        # answers (ping), a message to oneself (delivered back).
        c.send("<presence/>")
        c.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        c.send(msg(c.jid, "self", "m1"))
        c.send(f"<r xmlns='{NS_SM}'/>")
        a, _ = c.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        assert a.get("h") == "3"
        c.send(f"<r xmlns='{NS_SM}'/>")
        a, _ = c.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        assert a.get("h") == "3"  # nonzas are not counted
    with login(n, "bob", PW, "r") as c:
        # <r/> before <enable/> is not a stanza this stream knows.
        c.send(f"<r xmlns='{NS_SM}'/>")
        assert c.stream_error() == "unsupported-stanza-type"


def test_server_requests_and_acks(sm_node):
    n = sm_node()
    with login(n, "ann", PW, "r") as ann, login(n, "bob", PW, "r") as bob:
        enable(ann)
        for i in range(REQUEST_AFTER):
            bob.send(msg(ann.jid, f"b{i}", f"id{i}"))
        got = []
        el, skipped = ann.wait_for(lambda e: e.tag == q(NS_SM, "r"), what="server <r/>")
        got = [e for e in skipped if is_msg(e)]
        assert len(got) == REQUEST_AFTER
        ann.send(f"<a xmlns='{NS_SM}' h='{REQUEST_AFTER}'/>")
        # Acknowledged: nothing bounces when ann leaves now.
        ann.send(f"<r xmlns='{NS_SM}'/>")
        a, _ = ann.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        assert a.get("h") == "0"
        ann.close()
        assert [e for e in bob.drain(0.5) if is_msg(e)] == []


def offline_ids(n, user, count, timeout=10):
    """Logs <user> in, sends initial presence and returns the ids of the
    stored messages it gets (bounded by <count> and time), each checked
    for the server's <delay/>."""
    with login(n, user, PW, "again") as c:
        c.send("<presence/>")
        ids = []
        deadline = time.monotonic() + timeout
        while len(ids) < count and time.monotonic() < deadline:
            el, _ = c.wait_for(is_msg, timeout=deadline - time.monotonic(), what="stored message")
            d = el.find("{urn:xmpp:delay}delay")
            assert d is not None and d.get("from") == DOMAIN, ET.tostring(el)
            ids.append(el.get("id"))
        ids += [e.get("id") for e in c.drain(0.5) if is_msg(e)]
        return ids


def test_unacked_go_to_offline_storage(sm_node):
    n = sm_node()
    bob = login(n, "bob", PW, "r")
    ann = login(n, "ann", PW, "r")
    try:
        enable(ann)
        for i in range(3):
            bob.send(msg(ann.jid, f"b{i}", f"u{i}"))
        for i in range(3):
            el, _ = ann.wait_for(is_msg, what=f"message {i}")
            assert el.get("id") == f"u{i}"
        # Only the first is acknowledged; the connection then breaks.
        ann.send(f"<a xmlns='{NS_SM}' h='1'/>")
        ann.send(f"<r xmlns='{NS_SM}'/>")
        ann.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        ann.sock.close()
        # Not bounced: ann has no other resource, so they are stored.
        assert [e for e in bob.drain(1.0) if is_msg(e)] == []
        m = n.metrics()
        assert msum(m, "stanzad_sm_enabled_total") == 1
        assert msum(m, "stanzad_sm_unacked_total") == 2
        assert offline_ids(n, "ann", 2) == ["u1", "u2"]
    finally:
        bob.close()
        ann.close()
    n.wait_idle()


def test_ack_errors_end_the_stream(sm_node):
    n = sm_node()
    with login(n, "ann", PW, "r") as c:
        enable(c)
        c.send(f"<a xmlns='{NS_SM}' h='1'/>")  # nothing was sent yet
        el, _ = c.wait_for(lambda e: e.tag == q(NS_STREAM, "error"), what="stream error")
        app = el.find(q(NS_SM, "handled-count-too-high"))
        assert app is not None, ET.tostring(el)
        assert (app.get("h"), app.get("send-count")) == ("1", "0")
        assert el.find(q("urn:ietf:params:xml:ns:xmpp-streams", "undefined-condition")) is not None
    for bad in ("x", "-1", "4294967296", ""):
        with login(n, "bob", PW, "r") as c:
            enable(c)
            c.send(f"<a xmlns='{NS_SM}' h='{bad}'/>")
            assert c.stream_error() == "invalid-xml"
    with login(n, "cat", PW, "r") as c:
        enable(c)
        c.send(f"<x xmlns='{NS_SM}'/>")
        assert c.stream_error() == "unsupported-stanza-type"
    assert n.alive()


def test_client_that_never_acks(sm_node):
    # The queue is bounded: past it, policy-violation, and what was queued
    # goes on as if sent to the bare JID (offline storage).
    n = sm_node(max_unacked_stanzas=10)
    with login(n, "ann", PW, "r") as ann, login(n, "bob", PW, "r") as bob:
        enable(ann)
        for i in range(11):
            bob.send(msg(ann.jid, f"b{i}", f"n{i}"))
        assert ann.stream_error() == "policy-violation"
        # Stored for ann, not bounced to bob.
        assert [e for e in bob.drain(1.0) if is_msg(e)] == []
    assert sorted(offline_ids(n, "ann", 11)) == sorted(f"n{i}" for i in range(11))
    n.wait_idle()
