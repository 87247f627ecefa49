"""XEP-0198 §5 stream resumption on client streams: <enable resume='true'/>,
a session that detaches when its TCP connection breaks and keeps its
presence and queue, <resume/> on a new connection (also one accepted by
another reactor than the account's home), the retransmission of what the
client did not acknowledge and of what arrived while detached, the same
full JID afterwards, single-use and account-bound ids, and the end of a
detached session at limits.sm_resume_timeout_s (unavailable presence; the
unacknowledged messages go on as if sent to the bare JID: the user's other
resources, else offline storage).

Raw-socket clients against a real stanzad with 2 reactors, and slixmpp at
its defaults (its xep_0198 plugin asks for resumption and resumes)."""

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from conftest import msum, per_reactor, wait_until
from xmpp_util import (NS_CLIENT, NS_SASL, NS_STANZAS, DOMAIN, RawClient, c2s_node, home_reactor,
                       import_users, local, login, q, run_loop, slix_client, slix_start,
                       slix_stop, stanza_error)

PW = "resume-Secret-1"
NS_SM = "urn:xmpp:sm:3"
NS_STREAM = "http://etherx.jabber.org/streams"


def enable_resume(c):
    c.send(f"<enable xmlns='{NS_SM}' resume='true'/>")
    el, _ = c.wait_for(lambda e: e.tag.startswith("{" + NS_SM + "}"), what="<enabled/>")
    assert el.tag == q(NS_SM, "enabled"), ET.tostring(el)
    assert el.get("resume") == "true", ET.tostring(el)
    sid = el.get("id")
    assert sid and len(sid) == 32 and int(sid, 16) >= 0, ET.tostring(el)
    return sid, el.get("max")


def failed_condition(el):
    assert el.tag == q(NS_SM, "failed"), ET.tostring(el)
    return [local(c.tag) for c in el if c.tag.startswith("{" + NS_STANZAS + "}")]


def msg(to, body, mid):
    return f"<message to='{to}' type='chat' id='{mid}'><body>{body}</body></message>"


def is_msg(el):
    return el.tag == q(NS_CLIENT, "message")


def is_presence(el):
    return el.tag == q(NS_CLIENT, "presence")


def authed(n, user, port=None):
    """A RawClient authenticated as <user>, stream restarted, not bound."""
    c = RawClient(port or n.xmpp["plain"])
    c.open()
    el = c.auth_plain(user, PW)
    assert el.tag == q(NS_SASL, "success"), ET.tostring(el)
    c.open()
    return c


def resume(c, sid, h):
    c.send(f"<resume xmlns='{NS_SM}' previd='{sid}' h='{h}'/>")
    return c.next()


def detached(n):
    return msum(n.metrics(), "stanzad_sm_detached_sessions")


@pytest.fixture
def rs_node(node):
    def make(**limits):
        n = c2s_node(node, limits=limits or None)
        import_users(n, [(u, PW) for u in ("ann", "bob")], iterations=1)
        return n
    return make


def drop_and_wait_detached(n, c, count=1):
    c.sock.close()  # a TCP drop: no </stream:stream>
    wait_until(lambda: detached(n) == count, 10, what="the session to detach")


def test_resume_after_drop(rs_node):
    n = rs_node()
    desk = login(n, "ann", PW, "desk")
    phone = login(n, "ann", PW, "phone")
    bob = login(n, "bob", PW, "r")
    try:
        desk.send("<presence/>")
        phone.send("<presence/>")
        desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                      what="phone's presence on desk")
        sid, mx = enable_resume(phone)
        assert mx == "300"  # limits.sm_resume_timeout_s default
        phone.send(f"<r xmlns='{NS_SM}'/>")
        a, _ = phone.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        handled = int(a.get("h"))
        for i in range(3):
            bob.send(msg(phone.jid, f"b{i}", f"u{i}"))
        got = []
        for i in range(3):
            el, _ = phone.wait_for(is_msg, what=f"message {i}")
            got.append(el.get("id"))
        assert got == ["u0", "u1", "u2"]
        # The client acknowledges one; then its connection breaks.
        phone.send(f"<a xmlns='{NS_SM}' h='1'/>")
        phone.send(f"<r xmlns='{NS_SM}'/>")
        phone.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/>")
        drop_and_wait_detached(n, phone)
        # Detached: still bound and available, so bob's messages to the
        # full JID wait for it, and nothing bounces.
        for i in range(2):
            bob.send(msg(phone.jid, f"d{i}", f"d{i}"))
        assert [e for e in bob.drain(0.5) if is_msg(e)] == []
        assert [e for e in desk.drain(0.3) if is_presence(e)] == []
        # A new connection resumes.
        c = authed(n, "ann")
        el = resume(c, sid, 1)
        assert el.tag == q(NS_SM, "resumed"), ET.tostring(el)
        assert el.get("previd") == sid
        assert el.get("h") == str(handled)
        # Everything after h=1 again, then what came while detached.
        ids = []
        deadline = time.monotonic() + 10
        while len(ids) < 4 and time.monotonic() < deadline:
            el, _ = c.wait_for(is_msg, timeout=deadline - time.monotonic(), what="retransmitted")
            ids.append(el.get("id"))
            assert el.get("to") == phone.jid
        assert ids == ["u1", "u2", "d0", "d1"]
        c.jid = phone.jid
        # The same full JID: what the client sends carries it, and what is
        # sent to it arrives here.
        c.send(msg(bob.jid, "back", "back1"))
        el, _ = bob.wait_for(lambda e: is_msg(e) and e.get("id") == "back1", what="from resumed")
        assert el.get("from") == phone.jid
        bob.send(msg(phone.jid, "again", "again1"))
        el, _ = c.wait_for(is_msg, what="message after resume")
        assert el.get("id") == "again1"
        # The stream goes on counting from the resumption (§5): 5 stanzas
        # were sent since, and acknowledging them is accepted.
        c.send(f"<a xmlns='{NS_SM}' h='{1 + 5}'/>")
        c.send(f"<r xmlns='{NS_SM}'/>")
        a, _ = c.wait_for(lambda e: e.tag == q(NS_SM, "a"), what="<a/> after resume")
        assert int(a.get("h")) == handled + 1
        m = n.metrics()
        assert msum(m, "stanzad_sm_resumed_total") == 1
        assert msum(m, "stanzad_sm_detached_sessions") == 0
        # Desk never saw the phone go away.
        assert [e for e in desk.drain(0.3) if is_presence(e)] == []
        # A clean stream end ends the resumed session for good.
        c.close()
        el, _ = desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                              what="unavailable after the end")
        assert el.get("type") == "unavailable"
    finally:
        for x in (desk, phone, bob):
            x.close()
    n.wait_idle()


def test_resume_on_another_reactor(rs_node):
    n = rs_node()
    home = home_reactor(f"ann@{DOMAIN}", 2)
    phone = login(n, "ann", PW, "phone")
    bob = login(n, "bob", PW, "r")
    try:
        sid, _ = enable_resume(phone)
        bob.send(msg(phone.jid, "x", "x0"))
        phone.wait_for(is_msg, what="x0")
        # An answer the stream itself made (here to the legacy session
        # request) is retransmitted like the rest.
        el = phone.iq("<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>", typ="set",
                      iq_id="p1")
        assert el.get("type") == "result"
        drop_and_wait_detached(n, phone)
        bob.send(msg(phone.jid, "y", "y0"))
        # Connections until one is accepted by the reactor that is not
        # ann's home: its authentication hands it over (handoffs_in_total
        # grows on the home reactor).
        c = None
        for _ in range(40):
            before = per_reactor(n.metrics(), "stanzad_handoffs_in_total").get(str(home), 0)
            c = authed(n, "ann")
            after = per_reactor(n.metrics(), "stanzad_handoffs_in_total").get(str(home), 0)
            if after > before:
                break
            c.close()
            c = None
        assert c is not None, "no connection landed on the other reactor in 40 tries"
        el = resume(c, sid, 0)
        assert el.tag == q(NS_SM, "resumed"), ET.tostring(el)
        got = [(local(e.tag), e.get("id"), e.get("type")) for e in
               (c.next() for _ in range(3))]
        assert got == [("message", "x0", "chat"), ("iq", "p1", "result"),
                       ("message", "y0", "chat")], got
        c.send(msg(bob.jid, "z", "z0"))
        el, _ = bob.wait_for(lambda e: is_msg(e) and e.get("id") == "z0", what="from resumed")
        assert el.get("from") == phone.jid
        c.close()
    finally:
        phone.close()
        bob.close()
    n.wait_idle()


def test_double_resume_and_live_old_stream(rs_node):
    n = rs_node()
    phone = login(n, "ann", PW, "phone")
    try:
        sid, _ = enable_resume(phone)
        # Resumed while the server still has the old stream open: the old
        # one gets <conflict/> and is closed (§5), the new one wins.
        b = authed(n, "ann")
        el = resume(b, sid, 0)
        assert el.tag == q(NS_SM, "resumed"), ET.tostring(el)
        assert phone.stream_error() == "conflict"
        # The same id a second time: item-not-found, and that stream can
        # still bind (§5), while the resumed one lives on.
        c = authed(n, "ann")
        assert failed_condition(resume(c, sid, 0)) == ["item-not-found"]
        c.send("<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
               "<resource>other</resource></bind></iq>")
        el, _ = c.wait_for(lambda e: e.get("id") == "b1", what="bind")
        assert el.get("type") == "result", ET.tostring(el)
        b.send(f"<iq type='get' id='p1' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        el, _ = b.wait_for(lambda e: e.get("id") == "p1", what="ping answer")
        assert el.get("type") == "result"
        # Not resumable again after it broke (the id was used).
        drop_and_wait_detached(n, b, 0)
        d = authed(n, "ann")
        assert failed_condition(resume(d, sid, 0)) == ["item-not-found"]
        m = n.metrics()
        assert msum(m, "stanzad_sm_resumed_total") == 1
        assert msum(m, "stanzad_sm_resume_failed_total") == 2
        for x in (c, d):
            x.close()
    finally:
        phone.close()
    n.wait_idle()


def test_ids_are_bound_to_the_account(rs_node):
    n = rs_node()
    phone = login(n, "ann", PW, "phone")
    try:
        sid, _ = enable_resume(phone)
        drop_and_wait_detached(n, phone)
        # bob cannot take ann's session with her id, nor can anybody with a
        # wrong, malformed or truncated one: one answer for all.
        for who, pid in (("bob", sid), ("ann", "0" * 32), ("ann", sid[:31]),
                         ("ann", sid + "0"), ("ann", "x" * 32)):
            c = authed(n, who)
            assert failed_condition(resume(c, pid, 0)) == ["item-not-found"], (who, pid)
            c.close()
        # A resume with an 'h' above what was sent ends that stream; the
        # session is still there for the real client.
        c = authed(n, "ann")
        c.send(f"<resume xmlns='{NS_SM}' previd='{sid}' h='5'/>")
        el, _ = c.wait_for(lambda e: e.tag == q(NS_STREAM, "error"), what="stream error")
        assert el.find(q(NS_SM, "handled-count-too-high")) is not None, ET.tostring(el)
        c.close()
        c = authed(n, "ann")
        assert resume(c, sid, 0).tag == q(NS_SM, "resumed")
        c.close()
    finally:
        phone.close()
    n.wait_idle()


def test_resume_after_timeout(rs_node):
    n = rs_node(sm_resume_timeout_s=1)
    desk = login(n, "ann", PW, "desk")
    phone = login(n, "ann", PW, "phone")
    bob = login(n, "bob", PW, "r")
    try:
        desk.send("<presence/>")
        phone.send("<presence/>")
        desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                      what="phone's presence")
        sid, mx = enable_resume(phone)
        assert mx == "1"
        bob.send(msg(phone.jid, "m", "t0"))
        phone.wait_for(is_msg, what="t0")
        drop_and_wait_detached(n, phone)
        bob.send(msg(phone.jid, "m", "t1"))
        t0 = time.monotonic()
        # The deadline ends the session: the unavailable presence now.
        el, _ = desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                              timeout=10, what="unavailable at the deadline")
        assert el.get("type") == "unavailable"
        assert time.monotonic() - t0 < 5
        # Both unacknowledged messages went through the router's undelivered
        # path (XEP-0198 §4): as if sent to the bare JID (RFC 6121
        # §8.5.3.2.1), so the user's other resource gets them; no bounce.
        ids = set()
        deadline = time.monotonic() + 10
        while len(ids) < 2 and time.monotonic() < deadline:
            el, _ = desk.wait_for(is_msg, timeout=deadline - time.monotonic(), what="redelivery")
            assert el.get("type") != "error", ET.tostring(el)
            ids.add(el.get("id"))
        assert ids == {"t0", "t1"}
        assert [e for e in bob.drain(0.3) if is_msg(e)] == []
        c = authed(n, "ann")
        assert failed_condition(resume(c, sid, 1)) == ["item-not-found"]
        c.close()
        m = n.metrics()
        assert msum(m, "stanzad_sm_resume_expired_total") == 1
        assert msum(m, "stanzad_sm_detached_sessions") == 0
    finally:
        for x in (desk, phone, bob):
            x.close()
    n.wait_idle()


def test_clean_end_and_full_queue_end_the_session(rs_node):
    n = rs_node(max_unacked_stanzas=8)
    desk = login(n, "ann", PW, "desk")
    bob = login(n, "bob", PW, "r")
    try:
        desk.send("<presence/>")
        # A clean </stream:stream> ends the session: no resumption.
        phone = login(n, "ann", PW, "phone")
        phone.send("<presence/>")
        desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid, what="available")
        sid, _ = enable_resume(phone)
        phone.close()
        el, _ = desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                              what="unavailable")
        assert el.get("type") == "unavailable"
        c = authed(n, "ann")
        assert failed_condition(resume(c, sid, 0)) == ["item-not-found"]
        c.close()
        # Detached with a full queue: past limits.max_unacked_stanzas the
        # session ends as at the deadline.
        phone = login(n, "ann", PW, "phone2")
        phone.send("<presence/>")
        desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid, what="available")
        sid, _ = enable_resume(phone)
        drop_and_wait_detached(n, phone)
        for i in range(9):
            bob.send(msg(phone.jid, "q", f"q{i}"))
        el, _ = desk.wait_for(lambda e: is_presence(e) and e.get("from") == phone.jid,
                              what="unavailable on overflow")
        assert el.get("type") == "unavailable"
        ids = set()
        deadline = time.monotonic() + 10
        while len(ids) < 9 and time.monotonic() < deadline:
            el, _ = desk.wait_for(is_msg, timeout=deadline - time.monotonic(),
                                  what="redelivery to the other resource")
            ids.add(el.get("id"))
        assert ids == {f"q{i}" for i in range(9)}
        assert detached(n) == 0
    finally:
        for x in (desk, bob):
            x.close()
    n.wait_idle()


def test_slixmpp_resumes_after_a_drop(rs_node):
    n = rs_node()
    loop = asyncio.new_event_loop()
    try:
        x = slix_client(loop, f"ann@{DOMAIN}/slix", PW, n.cert, plugins=("xep_0198",))
        got = []
        x.add_event_handler("message", lambda m: got.append(m["id"]))
        run_loop(loop, slix_start(x, n.xmpp["starttls"]), 30)
        sm = x["xep_0198"]
        run_loop(loop, wait_enabled(sm), 10)
        assert sm.sm_id
        full = str(x.boundjid)
        bob = login(n, "bob", PW, "r")
        try:
            x.transport.abort()  # a TCP drop, as a lost network would be

            async def wait_detached():
                for _ in range(200):
                    if detached(n) == 1:
                        return
                    await asyncio.sleep(0.05)
                raise AssertionError("the session did not detach")
            run_loop(loop, wait_detached(), 15)
            bob.send(msg(full, "while away", "w0"))

            async def reconnect():
                fut = loop.create_future()
                x.add_event_handler("session_resumed",
                                    lambda _: fut.done() or fut.set_result(True))
                x.connect(("127.0.0.1", n.xmpp["starttls"]), force_starttls=True)
                await asyncio.wait_for(fut, 20)
                for _ in range(100):
                    if "w0" in got:
                        return
                    await asyncio.sleep(0.05)
            run_loop(loop, reconnect(), 30)
            assert "w0" in got
            assert str(x.boundjid) == full
            assert msum(n.metrics(), "stanzad_sm_resumed_total") == 1
        finally:
            bob.close()
        run_loop(loop, slix_stop(x), 15)
    finally:
        loop.close()
    n.wait_idle()


async def wait_enabled(sm):
    for _ in range(200):
        if sm.enabled_in and sm.sm_id:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("slixmpp did not enable stream management")


def test_rebind_replaces_detached_and_stop(rs_node):
    n = rs_node()
    phone = login(n, "ann", PW, "phone")
    bob = login(n, "bob", PW, "r")
    try:
        sid, _ = enable_resume(phone)
        drop_and_wait_detached(n, phone)
        bob.send(msg(phone.jid, "held", "h0"))
        # A plain bind of the same full JID replaces the detached session
        # (RFC 6120 §7.7.2.2): what it held goes on as if to the bare JID,
        # here offline storage (no resource is available), and its id is
        # gone with it.
        again = login(n, "ann", PW, "phone")
        assert again.jid == phone.jid
        again.send("<presence/>")
        el, _ = again.wait_for(lambda e: is_msg(e) and e.get("id") == "h0", what="stored h0")
        assert el.get("type") != "error", ET.tostring(el)
        assert [e for e in bob.drain(0.3) if is_msg(e)] == []
        wait_until(lambda: detached(n) == 0, 10, what="the detached session to go")
        c = authed(n, "ann")
        assert failed_condition(resume(c, sid, 0)) == ["item-not-found"]
        c.close()
        again.close()
        # The node stops while a session waits detached: it ends with the
        # node, and the node exits cleanly (no leak, status 0).
        p2 = login(n, "ann", PW, "tablet")
        enable_resume(p2)
        drop_and_wait_detached(n, p2)
        bob.close()
        n.stop_clean()
    finally:
        bob.close()
        phone.close()


def test_idle_timeout_detaches(rs_node):
    # A peer that stops answering (no reset: a lost network) is found by the
    # idle ping; a resumable session then detaches instead of ending.
    n = rs_node(idle_timeout_ms=500, ping_timeout_ms=1000)
    phone = login(n, "ann", PW, "phone")
    try:
        sid, _ = enable_resume(phone)
        el, _ = phone.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get",
                               timeout=10, what="the idle ping")
        ping_id = el.get("id")
        assert phone.stream_error(timeout=10) == "connection-timeout"
        wait_until(lambda: detached(n) == 1, 10, what="the session to detach")
        c = authed(n, "ann")
        el = resume(c, sid, 0)
        assert el.tag == q(NS_SM, "resumed"), ET.tostring(el)
        # The unanswered ping is retransmitted; answering it keeps the
        # resumed stream alive past another idle period.
        el = c.next()
        assert el.tag == q(NS_CLIENT, "iq") and el.get("id") == ping_id, ET.tostring(el)
        c.send(f"<iq type='result' id='{ping_id}' to='{DOMAIN}'/>")
        deadline = time.monotonic() + 1.2
        while time.monotonic() < deadline:
            for e in c.drain(0.2):
                if e.tag == q(NS_CLIENT, "iq") and e.get("type") == "get":
                    c.send(f"<iq type='result' id='{e.get('id')}' to='{DOMAIN}'/>")
        c.send(f"<iq type='get' id='p2' to='{DOMAIN}'><ping xmlns='urn:xmpp:ping'/></iq>")
        el, _ = c.wait_for(lambda e: e.get("id") == "p2", what="ping answer")
        assert el.get("type") == "result"
        c.close()
    finally:
        phone.close()
    n.wait_idle()
