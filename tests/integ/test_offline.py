"""XEP-0160 offline messages (RFC 6121 §8.5.2.2): chat and normal messages
to an account with no available resource are stored, then delivered in
order with a XEP-0203 <delay/> at its next available presence and removed;
headline is not stored; the per-account quota answers service-unavailable;
a XEP-0198 <a/> counts a stored message only once it is committed, so a
kill -9 loses none that was acknowledged.

Raw-socket clients against a real stanzad with 2 reactors."""

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import (NS_CLIENT, DOMAIN, c2s_node, import_users, login, q, run_loop, slix_client,
                       slix_start, slix_stop, stanza_error)

PW = "off-Secret-1"
NS_SM = "urn:xmpp:sm:3"
NS_DELAY = "urn:xmpp:delay"
NS_DISCO = "http://jabber.org/protocol/disco#info"


def is_msg(el):
    return el.tag == q(NS_CLIENT, "message")


def msg(to, body, mid, typ="chat"):
    t = f" type='{typ}'" if typ else ""
    return f"<message to='{to}'{t} id='{mid}'><body>{body}</body></message>"


def enable_sm(c):
    c.send(f"<enable xmlns='{NS_SM}'/>")
    el = c.next()
    assert el.tag == q(NS_SM, "enabled"), ET.tostring(el)


def ack(c, timeout=10.0, before=None):
    """Sends <r/> and returns the h of the <a/> that answers it; what came
    before that <a/> is appended to <before>."""
    c.send(f"<r xmlns='{NS_SM}'/>")
    a, skipped = c.wait_for(lambda e: e.tag == q(NS_SM, "a"), timeout=timeout, what="<a/>")
    if before is not None:
        before += skipped
    return int(a.get("h"))


def collect(c, n, timeout=10.0, quiet=None):
    """Up to <n> messages (bounded by count and time; with <quiet>, also
    ended by that many seconds without one), then whatever else comes
    within a short quiet period."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        left = max(0.05, deadline - time.monotonic())
        try:
            el, _ = c.wait_for(is_msg, timeout=min(left, quiet) if quiet else left,
                               what="message")
        except Exception:
            break
        got.append(el)
    got += [e for e in c.drain(0.5) if is_msg(e)]
    return got


@pytest.fixture
def off_node(node):
    def make(users=("ann", "bob", "cat"), **limits):
        n = c2s_node(node, limits=limits or None)
        import_users(n, [(u, PW) for u in users], iterations=1)
        return n
    return make


def test_stored_then_delivered_in_order_with_delay(off_node):
    n = off_node()
    ann = f"ann@{DOMAIN}"
    with login(n, "bob", PW, "r") as bob:
        enable_sm(bob)
        bob.send(msg(ann, "one", "m1"))
        bob.send(msg(ann, "two", "m2", typ=None))        # normal
        bob.send(msg(ann, "news", "h1", typ="headline"))  # not stored
        bob.send(msg(ann + "/gone", "three", "m3"))        # §8.5.3.2.1: as to the bare JID
        bob.send(msg(ann, "four &amp; &lt;five&gt;", "m4"))
        assert ack(bob) == 5  # all handled, so the stored ones are committed
        assert [e for e in bob.drain(0.3) if is_msg(e)] == []  # nothing refused
        before = time.time()
    with login(n, "ann", PW, "r1") as c:
        # Nothing before available presence (XEP-0160 §4).
        assert [e for e in c.drain(0.3) if is_msg(e)] == []
        c.send("<presence/>")
        got = collect(c, 4)
        assert [e.get("id") for e in got] == ["m1", "m2", "m3", "m4"]
        assert got[3].find(q(NS_CLIENT, "body")).text == "four & <five>"
        for e in got:
            assert e.get("from") == f"bob@{DOMAIN}/r"
            d = e.findall(q(NS_DELAY, "delay"))
            assert len(d) == 1, ET.tostring(e)
            assert d[0].get("from") == DOMAIN
            stamp = d[0].get("stamp")
            assert stamp.endswith("Z") and stamp[:4].isdigit(), stamp
            t = time.mktime(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            assert before - 60 < t < before + 60
    # Removed once delivered: a second login gets nothing.
    with login(n, "ann", PW, "r2") as c:
        c.send("<presence/>")
        assert [e for e in c.drain(1.0) if is_msg(e)] == []


def test_not_stored_while_online_and_negative_priority(off_node):
    n = off_node()
    ann = f"ann@{DOMAIN}"
    with login(n, "bob", PW, "r") as bob, login(n, "ann", PW, "neg") as a:
        enable_sm(bob)
        # Negative priority only: not reachable by bare JID (§8.5.2.2).
        a.send("<presence><priority>-1</priority></presence>")
        a.drain(0.3)
        bob.send(msg(ann, "x", "n1"))
        assert ack(bob) == 1
        assert [e for e in a.drain(0.5) if is_msg(e)] == []
        # Non-negative now: the stored message comes (XEP-0160 §4) ...
        a.send("<presence><priority>1</priority></presence>")
        got = collect(a, 1)
        assert [e.get("id") for e in got] == ["n1"]
        assert got[0].find(q(NS_DELAY, "delay")) is not None
        # ... and one sent while available is delivered at once, no delay.
        bob.send(msg(ann, "y", "n2"))
        got = collect(a, 1)
        assert [e.get("id") for e in got] == ["n2"]
        assert got[0].find(q(NS_DELAY, "delay")) is None


def test_two_resources_at_once_get_each_message_once(off_node):
    n = off_node()
    ann = f"ann@{DOMAIN}"
    with login(n, "bob", PW, "r") as bob:
        enable_sm(bob)
        for i in range(30):
            bob.send(msg(ann, f"b{i}", f"t{i}"))
        assert ack(bob) == 30
    with login(n, "ann", PW, "x") as x, login(n, "ann", PW, "y") as y:
        x.send("<presence/>")
        y.send("<presence/>")
        gx = collect(x, 30, timeout=3)
        gy = collect(y, 30 - len(gx), timeout=1)
        ids = [e.get("id") for e in gx + gy]
        assert sorted(ids) == sorted(f"t{i}" for i in range(30)), ids
        # In order on whichever resource got them.
        for got in (gx, gy):
            nums = [int(e.get("id")[1:]) for e in got]
            assert nums == sorted(nums), nums


def test_quota_service_unavailable(off_node):
    n = off_node(max_offline_messages=3)
    ann = f"ann@{DOMAIN}"
    with login(n, "bob", PW, "r") as bob:
        enable_sm(bob)
        for i in range(5):
            bob.send(msg(ann, f"q{i}", f"q{i}"))
        before = []
        assert ack(bob, before=before) == 5
        # The refusals reach the sender (around the <a/> that counts them:
        # they cross from the recipient's reactor on their own).
        errs = [e for e in before if is_msg(e)]
        errs += [e for e in bob.drain(1.0) if is_msg(e)]
        assert sorted(e.get("id") for e in errs) == ["q3", "q4"]
        for e in errs:
            assert e.get("type") == "error"
            assert stanza_error(e) == ("cancel", "service-unavailable")
            assert e.get("from") == ann
        # Unknown account: service-unavailable too (RFC 6121 §8.5.1).
        bob.send(msg(f"nobody@{DOMAIN}", "?", "u1"))
        el, _ = bob.wait_for(is_msg, what="error")
        assert el.get("id") == "u1" and stanza_error(el) == ("cancel", "service-unavailable")
    with login(n, "ann", PW, "r") as c:
        c.send("<presence/>")
        assert [e.get("id") for e in collect(c, 3)] == ["q0", "q1", "q2"]


def test_slixmpp_receives_offline_messages(off_node):
    """slixmpp at its defaults (STARTTLS, SCRAM) with its XEP-0203 plugin:
    the stored messages arrive after its initial presence, in order, each
    with a <delay/> from the domain."""
    n = off_node()
    with login(n, "bob", PW, "r") as bob:
        for i in range(5):
            bob.send(msg(f"cat@{DOMAIN}", f"s{i}", f"s{i}"))
        assert [e for e in bob.drain(0.7) if is_msg(e)] == []
    got = []
    loop = asyncio.new_event_loop()
    x = slix_client(loop, f"cat@{DOMAIN}/slix", PW, n.cert, plugins=("xep_0203",))
    x.add_event_handler("message", lambda m: got.append(
        (m["id"], m["body"], m["delay"]["stamp"], str(m["delay"]["from"]))))

    async def flow():
        await slix_start(x, n.xmpp["starttls"])
        await x.get_roster()
        x.send_presence()
        for _ in range(100):
            if len(got) >= 5:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        await slix_stop(x)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert [g[0] for g in got] == [f"s{i}" for i in range(5)]
    assert [g[1] for g in got] == [f"s{i}" for i in range(5)]
    for _, _, stamp, frm in got:
        assert stamp is not None and frm == DOMAIN


def test_disco_advertises_msgoffline(off_node):
    n = off_node()
    with login(n, "bob", PW, "r") as c:
        el = c.iq(f"<query xmlns='{NS_DISCO}'/>", to=DOMAIN)
        feats = [f.get("var") for f in el.iter(q(NS_DISCO, "feature"))]
        assert "msgoffline" in feats, feats


def test_kill9_loses_no_acknowledged_message(off_node):
    """A sender with XEP-0198 streams 1,000 messages to 5 offline users,
    asking <r/> as it goes; stanzad is killed (SIGKILL) mid-stream and
    restarted on the same database. Every message covered by the last <a/>
    is delivered exactly once; none is delivered twice."""
    users = [f"u{i}" for i in range(5)]
    n = off_node(users=("bob", *users))
    total, every = 1000, 25
    bob = login(n, "bob", PW, "r")
    acked = 0
    try:
        enable_sm(bob)
        for i in range(total):
            to = f"{users[i % len(users)]}@{DOMAIN}"
            bob.send(msg(to, f"k{i}", f"k{i}"))
            if (i + 1) % every == 0:
                bob.send(f"<r xmlns='{NS_SM}'/>")
            if i == total // 2:
                break
        # Read the acks that are already there, then kill while the rest
        # of what was sent is still being stored.
        for el in bob.drain(0.02):
            if el.tag == q(NS_SM, "a"):
                acked = max(acked, int(el.get("h")))
        n.kill()
        try:
            for el in bob.drain(0.5):
                if el.tag == q(NS_SM, "a"):
                    acked = max(acked, int(el.get("h")))
        except Exception:
            pass
    finally:
        bob.close()
    sent = total // 2 + 1
    assert acked <= sent
    n.start()
    seen = {}
    for k, u in enumerate(users):
        mine = len(range(k, sent, len(users)))
        with login(n, u, PW, "r") as c:
            c.send("<presence/>")
            got = collect(c, mine, timeout=10, quiet=1.5)
            ids = [int(e.get("id")[1:]) for e in got]
            assert ids == sorted(ids), ids  # in the order sent
            for e in got:
                seen.setdefault(e.get("id"), 0)
                seen[e.get("id")] += 1
    dup = {k: v for k, v in seen.items() if v != 1}
    assert dup == {}, dup
    missing = [f"k{i}" for i in range(acked) if f"k{i}" not in seen]
    assert missing == [], (acked, missing[:10])
    assert all(int(k[1:]) < sent for k in seen)
