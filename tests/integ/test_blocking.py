"""Blocking Command (XEP-0191) end to end: the blocklist get, block and
unblock (one, all) with their pushes to the resources that read the list,
stanzas from a blocked entity ("Blocked Entity Attempts to Communicate
with User") and to one ("User Attempts to Communicate with Blocked Entity"),
presence cut both ways on block and restored on unblock, the error cases,
the size limit, the list surviving a restart, and a blocked user homed on
the other reactor. Raw-socket clients, and slixmpp at its default settings with its
xep_0191 plugin."""

import asyncio
import time
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import (NS_CLIENT, DOMAIN, c2s_node, import_users, login, q, slix_client,
                       slix_start, slix_stop, run_loop, stanza_error, home_reactor)

PW = "blk-Secret-1"
NS_BLOCK = "urn:xmpp:blocking"
NS_BLOCK_ERR = "urn:xmpp:blocking:errors"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
QUIET = 0.6  # seconds to wait for something that must not come


def users_on_both_reactors():
    a = "alice"
    for i in range(100):
        b = f"bob{i}"
        if home_reactor(f"{b}@{DOMAIN}", 2) != home_reactor(f"{a}@{DOMAIN}", 2):
            return a, b
    raise AssertionError("no pair across reactors")


A, B = users_on_both_reactors()
AJ, BJ, CJ = f"{A}@{DOMAIN}", f"{B}@{DOMAIN}", f"carl@{DOMAIN}"


@pytest.fixture
def blk(node):
    n = c2s_node(node, limits={"max_blocklist_items": 5})
    import_users(n, [(A, PW), (B, PW), ("carl", PW)], iterations=1)
    return n


def blocklist(c):
    el = c.iq(f"<blocklist xmlns='{NS_BLOCK}'/>")
    assert el.get("type") == "result", ET.tostring(el)
    bl = el.find(q(NS_BLOCK, "blocklist"))
    assert bl is not None, ET.tostring(el)
    return sorted(it.get("jid") for it in bl.findall(q(NS_BLOCK, "item")))


def block(c, *jids, verb="block"):
    items = "".join(f"<item jid='{j}'/>" for j in jids)
    return c.iq(f"<{verb} xmlns='{NS_BLOCK}'>{items}</{verb}>", typ="set")


def ok(el):
    assert el.get("type") == "result", ET.tostring(el)


def is_pres(frm=None, typ=None):
    def p(el):
        return (el.tag == q(NS_CLIENT, "presence") and (frm is None or el.get("from") == frm)
                and el.get("type") == typ)
    return p


def is_push(verb):
    def p(el):
        return (el.tag == q(NS_CLIENT, "iq") and el.get("type") == "set" and
                el.find(q(NS_BLOCK, verb)) is not None)
    return p


def push_items(el, verb):
    return sorted(i.get("jid") for i in el.find(q(NS_BLOCK, verb)).findall(q(NS_BLOCK, "item")))


def nothing_from(c, frm, what):
    got = c.drain(QUIET)
    bad = [e for e in got if (e.get("from") or "").split("/")[0] == frm]
    assert not bad, f"{what}: {[ET.tostring(e) for e in bad]}"


def subscribe_both(a, b):
    a.send(f"<presence to='{BJ}' type='subscribe'/>")
    b.wait_for(is_pres(AJ, "subscribe"), what="subscribe at b")
    b.send(f"<presence to='{AJ}' type='subscribed'/>")
    a.wait_for(is_pres(BJ, "subscribed"), what="subscribed at a")
    b.send(f"<presence to='{AJ}' type='subscribe'/>")
    a.wait_for(is_pres(BJ, "subscribe"), what="subscribe at a")
    a.send(f"<presence to='{BJ}' type='subscribed'/>")
    b.wait_for(is_pres(AJ, "subscribed"), what="subscribed at b")


def test_disco_advertises_blocking(blk):
    with login(blk, A, PW, "a") as a:
        el = a.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", to=DOMAIN)
        feats = [f.get("var") for f in el.iter(q("http://jabber.org/protocol/disco#info",
                                                 "feature"))]
        assert NS_BLOCK in feats, feats


def test_block_pushes_messages_and_unblock(blk):
    """alice (two resources; one read the list, one did not) blocks bob,
    who is homed on the other reactor."""
    with login(blk, A, PW, "a1") as a1, login(blk, A, PW, "a2") as a2, \
            login(blk, B, PW, "b") as b:
        assert blocklist(a1) == []
        # §3.3: the push goes to the resources that read the list.
        ok(block(a1, BJ))
        push, _ = a1.wait_for(is_push("block"), what="push to a1")
        assert push_items(push, "block") == [BJ]
        assert push.get("to") == a1.jid
        got = a2.drain(QUIET)
        assert not [e for e in got if is_push("block")(e)], "a2 never asked for the list"
        assert blocklist(a2) == [BJ]
        # Inbound rule: bob's message bounces with service-unavailable, nothing reaches alice.
        b.send(f"<message to='{AJ}' id='m1' type='chat'><body>hi</body></message>")
        err, _ = b.wait_for(lambda e: e.get("id") == "m1", what="bounce")
        assert err.get("type") == "error" and stanza_error(err)[1] == "service-unavailable"
        b.send(f"<message to='{a1.jid}' id='m2'><body>hi</body></message>")
        err, _ = b.wait_for(lambda e: e.get("id") == "m2", what="bounce to full JID")
        assert stanza_error(err)[1] == "service-unavailable"
        # An iq get too; the server answers for the user (inbound rule).
        el = b.iq("<query xmlns='http://jabber.org/protocol/disco#info'/>", to=AJ)
        assert stanza_error(el) == ("cancel", "service-unavailable"), ET.tostring(el)
        nothing_from(a1, BJ, "a1 got something from bob")
        # Outbound rule: alice's own message to bob is refused.
        a1.send(f"<message to='{BJ}/b' id='o1' type='chat'><body>x</body></message>")
        err, _ = a1.wait_for(lambda e: e.get("id") == "o1", what="outbound refusal")
        e = err.find(q(NS_CLIENT, "error"))
        assert err.get("type") == "error" and e.get("type") == "cancel", ET.tostring(err)
        assert e.find(q(NS_STANZAS, "not-acceptable")) is not None, ET.tostring(err)
        assert e.find(q(NS_BLOCK_ERR, "blocked")) is not None, ET.tostring(err)
        nothing_from(b, AJ, "bob got alice's blocked message")
        # Unblock: pushed, and messages flow again both ways.
        ok(block(a2, BJ, verb="unblock"))
        for c in (a1, a2):
            push, _ = c.wait_for(is_push("unblock"), what="unblock push")
            assert push_items(push, "unblock") == [BJ]
        assert blocklist(a1) == []
        b.send(f"<message to='{a1.jid}' id='m3'><body>again</body></message>")
        el, _ = a1.wait_for(lambda e: e.get("id") == "m3", what="message after unblock")
        assert el.findtext(q(NS_CLIENT, "body")) == "again"
        a1.send(f"<message to='{b.jid}' id='o2'><body>back</body></message>")
        b.wait_for(lambda e: e.get("id") == "o2" and e.get("type") != "error", what="reply")


def test_presence_cut_both_ways_and_restored(blk):
    with login(blk, A, PW, "a") as a, login(blk, B, PW, "b") as b:
        a.send("<presence/>")
        b.send("<presence/>")
        subscribe_both(a, b)
        a.send("<presence><status>one</status></presence>")
        b.wait_for(lambda e: is_pres(a.jid, None)(e) and
                   e.findtext(q(NS_CLIENT, "status")) == "one", what="presence before")
        a.drain()
        # Blocking: bob gets alice's unavailable at once (§3.3).
        ok(block(a, BJ))
        b.wait_for(is_pres(a.jid, "unavailable"), what="unavailable on block")
        # From now on no presence either way.
        a.send("<presence><status>two</status></presence>")
        nothing_from(b, AJ, "alice's presence reached bob")
        b.send("<presence><status>bob2</status></presence>")
        b.send(f"<presence to='{AJ}' type='probe'/>")
        nothing_from(a, BJ, "bob's presence reached alice")
        nothing_from(b, AJ, "a probe of a blocker was answered")
        # A new resource of alice: no probe to bob, no broadcast to him.
        with login(blk, A, PW, "a2") as a2:
            a2.send("<presence/>")
            nothing_from(a2, BJ, "bob's presence reached a new resource")
            nothing_from(b, AJ, "a2's presence reached bob")
        b.drain()
        a.drain()
        # Unblock (§3.4): bob gets alice's current presence, alice bob's.
        ok(block(a, BJ, verb="unblock"))
        el, _ = b.wait_for(is_pres(a.jid, None), what="presence after unblock")
        assert el.findtext(q(NS_CLIENT, "status")) == "two"
        el, _ = a.wait_for(is_pres(b.jid, None), what="probe answer after unblock")
        assert el.findtext(q(NS_CLIENT, "status")) == "bob2"


def test_unblock_all_and_errors(blk):
    with login(blk, A, PW, "a") as a:
        assert blocklist(a) == []
        ok(block(a, BJ, CJ, "spam.example", "x@spam2.example/res"))
        push, _ = a.wait_for(is_push("block"), what="push")
        assert blocklist(a) == sorted([BJ, CJ, "spam.example", "x@spam2.example/res"])
        # §3.5: an empty unblock empties the list; the push is empty too.
        ok(a.iq(f"<unblock xmlns='{NS_BLOCK}'/>", typ="set"))
        push, _ = a.wait_for(is_push("unblock"), what="unblock-all push")
        assert push_items(push, "unblock") == []
        assert blocklist(a) == []
        # Errors: no item (§3.3), a JID that is none, an item without one,
        # the wrong iq types.
        el = a.iq(f"<block xmlns='{NS_BLOCK}'/>", typ="set")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        el = block(a, "@@bad@@")
        assert stanza_error(el) == ("modify", "jid-malformed"), ET.tostring(el)
        el = block(a, "ok@" + DOMAIN, "a@b@c/")
        assert stanza_error(el) == ("modify", "jid-malformed"), ET.tostring(el)
        el = a.iq(f"<block xmlns='{NS_BLOCK}'><item/></block>", typ="set")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        el = a.iq(f"<blocklist xmlns='{NS_BLOCK}'/>", typ="set")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        el = a.iq(f"<block xmlns='{NS_BLOCK}'><item jid='{BJ}'/></block>")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        assert blocklist(a) == [], "a refused block changed nothing"
        # Someone else's list is not yours.
        el = a.iq(f"<blocklist xmlns='{NS_BLOCK}'/>", to=BJ)
        assert stanza_error(el)[1] == "forbidden", ET.tostring(el)
        # limits.max_blocklist_items (5 here): past it, not-allowed, nothing written.
        ok(block(a, *[f"u{i}@x.example" for i in range(4)]))
        el = block(a, "u8@x.example", "u9@x.example")
        assert stanza_error(el) == ("cancel", "not-allowed"), ET.tostring(el)
        assert len(blocklist(a)) == 4
        ok(block(a, "u3@x.example", "u8@x.example"))  # one already there: fits
        assert len(blocklist(a)) == 5


def test_domain_and_full_jid_items(blk):
    with login(blk, A, PW, "a") as a, login(blk, B, PW, "b1") as b1, \
            login(blk, B, PW, "b2") as b2, login(blk, "carl", PW, "c") as c:
        ok(block(a, f"{BJ}/b1"))
        b1.send(f"<message to='{AJ}' id='f1'><body>x</body></message>")
        err, _ = b1.wait_for(lambda e: e.get("id") == "f1", what="full-JID block")
        assert stanza_error(err)[1] == "service-unavailable"
        b2.send(f"<message to='{a.jid}' id='f2'><body>from b2</body></message>")
        a.wait_for(lambda e: e.get("id") == "f2", what="other resource not blocked")
        # A domain item blocks every JID at it (our own domain here).
        ok(block(a, DOMAIN))
        c.send(f"<message to='{a.jid}' id='d1'><body>x</body></message>")
        err, _ = c.wait_for(lambda e: e.get("id") == "d1", what="domain block")
        assert stanza_error(err)[1] == "service-unavailable"
        # The user's own resources are never blocked.
        with login(blk, A, PW, "a2") as a2:
            a2.send(f"<message to='{a.jid}' id='s1'><body>me</body></message>")
            a.wait_for(lambda e: e.get("id") == "s1", what="own resource")


def test_offline_user_and_restart(blk):
    with login(blk, B, PW, "b") as b:
        # bob may see alice's presence (so a probe gets an answer) ...
        with login(blk, A, PW, "a") as a:
            a.send("<presence/>")
            b.send("<presence/>")
            subscribe_both(a, b)
            ok(block(a, BJ))
        b.drain()
        # ... but alice is offline and blocks him: the probe goes unanswered
        # and a message bounces, from storage.
        b.send(f"<presence to='{AJ}' type='probe'/>")
        nothing_from(b, AJ, "probe to an offline blocker answered")
        b.send(f"<message to='{AJ}' id='x1'><body>x</body></message>")
        err, _ = b.wait_for(lambda e: e.get("id") == "x1", what="bounce")
        assert stanza_error(err)[1] == "service-unavailable"
    blk.stop_clean()
    blk.result = None
    blk.checked = False
    blk.start()
    with login(blk, A, PW, "a") as a, login(blk, B, PW, "b") as b:
        # Right after login, before alice reads her list: still blocked.
        b.send(f"<message to='{a.jid}' id='r1'><body>x</body></message>")
        err, _ = b.wait_for(lambda e: e.get("id") == "r1", what="bounce after restart")
        assert stanza_error(err)[1] == "service-unavailable"
        assert blocklist(a) == [BJ]
        ok(block(a, BJ, verb="unblock"))
        b.send(f"<presence to='{AJ}' type='probe'/>")
        b.wait_for(lambda e: e.tag == q(NS_CLIENT, "presence") and
                   (e.get("from") or "").startswith(AJ), what="probe answered once unblocked")


def test_slixmpp_defaults_block_and_unblock(blk):
    """slixmpp at its defaults with xep_0191: get, block (the other
    client's push arrives as its 'blocked' event), unblock."""
    loop = asyncio.new_event_loop()
    x1 = slix_client(loop, f"{AJ}/laptop", PW, blk.cert, plugins=["xep_0191"])
    x2 = slix_client(loop, f"{AJ}/phone", PW, blk.cert, plugins=["xep_0191"])
    ev = []
    x2.add_event_handler("blocked", lambda iq: ev.append(("blocked", [
        str(j) for j in iq["block"]["items"]])))
    x2.add_event_handler("unblocked", lambda iq: ev.append(("unblocked", [
        str(j) for j in iq["unblock"]["items"]])))
    got = {}

    async def flow():
        await slix_start(x1, blk.xmpp["starttls"])
        await slix_start(x2, blk.xmpp["starttls"])
        got["before"] = (await x2["xep_0191"].get_blocked())["blocklist"]["items"]
        await x1["xep_0191"].block(BJ)
        got["after"] = (await x1["xep_0191"].get_blocked())["blocklist"]["items"]
        for _ in range(50):
            if ev:
                break
            await asyncio.sleep(0.1)
        await x1["xep_0191"].unblock(BJ)
        for _ in range(50):
            if len(ev) >= 2:
                break
            await asyncio.sleep(0.1)
        got["end"] = (await x2["xep_0191"].get_blocked())["blocklist"]["items"]
        await slix_stop(x1)
        await slix_stop(x2)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert set(got["before"]) == set()
    assert {str(j) for j in got["after"]} == {BJ}
    assert ev == [("blocked", [BJ]), ("unblocked", [BJ])], ev
    assert set(got["end"]) == set()


def test_burst_to_offline_user_while_its_list_loads(blk):
    """Stanzas to an offline user wait for its list to load, then go on
    along the router's path (to a resource that is not bound, then to the
    bare JID, then offline storage): each is handled once, none loops."""
    N = 200
    with login(blk, B, PW, "b") as b:
        b.send("".join(f"<message to='{AJ}/gone' id='q{i}' type='chat'><body>x</body></message>"
                       for i in range(N)))
        assert b.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN).get("type") == "result"
        nothing_from(b, AJ, "a bounce of a message that offline storage takes")
    with login(blk, A, PW, "a") as a:
        a.send("<presence/>")
        ids = []
        deadline = time.monotonic() + 20
        while len(ids) < N and time.monotonic() < deadline:
            el, _ = a.wait_for(lambda e: (e.get("id") or "").startswith("q"),
                               timeout=max(0.1, deadline - time.monotonic()), what="stored")
            assert el.get("type") == "chat", ET.tostring(el)
            ids.append(el.get("id"))
        assert ids == [f"q{i}" for i in range(N)], ids


def test_directed_presence_cut_on_block(blk):
    """An entity that only got directed presence (RFC 6121 §4.6) gets the
    unavailable on block too, and nothing more after."""
    with login(blk, A, PW, "a") as a, login(blk, "carl", PW, "c") as c:
        a.send("<presence/>")
        c.send("<presence/>")
        a.send(f"<presence to='{c.jid}'><status>psst</status></presence>")
        c.wait_for(is_pres(a.jid, None), what="directed presence")
        ok(block(a, CJ))
        c.wait_for(is_pres(a.jid, "unavailable"), what="unavailable on block")
        a.send("</stream:stream>")
        nothing_from(c, AJ, "a second unavailable after the block")
