"""XEP-0280 Message Carbons (urn:xmpp:carbons:2) end to end: enabling and
disabling (§4, §5), <sent/> copies to the sender's other enabled resources
(§8) and <received/> copies to the recipient's enabled resources that did
not get the original (§7), for messages to a bare JID and to a full JID,
never to the sending resource; the eligibility rules (§6: chat, normal with
a body, no groupchat/headline/MUC private messages), <private/> (§9) and
the XEP-0334 <no-copy/> hint; disco (§3). Raw-socket clients, and slixmpp
at its defaults with its xep_0280 plugin. Users sit on both reactors."""

import asyncio
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import (NS_CLIENT, DOMAIN, c2s_node, import_users, login, q, slix_client,
                       slix_start, slix_stop, run_loop, stanza_error, home_reactor)

PW = "cc-Secret-1"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_INFO = "http://jabber.org/protocol/disco#info"
QUIET = 0.4  # seconds without a stanza that count as "nothing came"


def users_on_both_reactors():
    a = "ann"
    for i in range(100):
        b = f"ben{i}"
        if home_reactor(f"{b}@{DOMAIN}", 2) != home_reactor(f"{a}@{DOMAIN}", 2):
            return a, b
    raise AssertionError("no pair across reactors")


A, B = users_on_both_reactors()


@pytest.fixture
def cc(node):
    n = c2s_node(node)
    import_users(n, [(A, PW), (B, PW)], iterations=1)
    return n


def enable(c, on=True):
    el = c.iq(f"<{'enable' if on else 'disable'} xmlns='{NS_CARBONS}'/>", typ="set")
    assert el.get("type") == "result", ET.tostring(el)


def online(n, user, res, prio=0, carbons=True):
    c = login(n, user, PW, res)
    if carbons:
        enable(c)
    c.send(f"<presence><priority>{prio}</priority></presence>")
    return c


def messages(c, quiet=QUIET):
    return [e for e in c.drain(quiet) if e.tag == q(NS_CLIENT, "message")]


def carbon(el, which):
    """The forwarded original inside a <which/> carbon, after checking the
    wrapper (§7, §8)."""
    w = el.find(q(NS_CARBONS, which))
    assert w is not None, ET.tostring(el)
    fwd = w.find(q(NS_FORWARD, "forwarded"))
    assert fwd is not None, ET.tostring(el)
    inner = fwd.find(q(NS_CLIENT, "message"))
    assert inner is not None, ET.tostring(el)
    return inner


def check_wrapper(el, user, to_jid, typ="chat"):
    assert el.get("from") == f"{user}@{DOMAIN}", ET.tostring(el)
    assert el.get("to") == to_jid, ET.tostring(el)
    assert el.get("type") == typ, ET.tostring(el)


def four(n):
    """a1, a2 (ann) and b1 (priority 1), b2 (priority 0), all with carbons."""
    a1, a2 = online(n, A, "a1"), online(n, A, "a2")
    b1, b2 = online(n, B, "b1", prio=1), online(n, B, "b2", prio=0)
    for c in (a1, a2, b1, b2):
        c.drain(0.3)
    return a1, a2, b1, b2


def test_disco_and_enable_rules(cc):
    with login(cc, A, PW, "x") as a, login(cc, B, PW, "y") as b:
        el = a.iq(f"<query xmlns='{NS_INFO}'/>", to=DOMAIN)
        feats = [f.get("var") for f in el.find(q(NS_INFO, "query")).findall(q(NS_INFO, "feature"))]
        assert NS_CARBONS in feats, feats
        # An iq get has no meaning (§4: a set).
        el = a.iq(f"<enable xmlns='{NS_CARBONS}'/>", typ="get")
        assert stanza_error(el) == ("modify", "bad-request"), ET.tostring(el)
        # Another user cannot enable carbons for ann (§4.1: not-allowed).
        el = b.iq(f"<enable xmlns='{NS_CARBONS}'/>", to=f"{A}@{DOMAIN}", typ="set")
        assert stanza_error(el) == ("cancel", "not-allowed"), ET.tostring(el)
        # Enabling to the own bare JID explicitly, twice, and disabling twice
        # are all fine (§10.1).
        for body in ("enable", "enable", "disable", "disable"):
            el = a.iq(f"<{body} xmlns='{NS_CARBONS}'/>", to=f"{A}@{DOMAIN}", typ="set")
            assert el.get("type") == "result", ET.tostring(el)


def test_sent_and_received_bare_and_full(cc):
    a1, a2, b1, b2 = four(cc)
    try:
        # To the bare JID: b1 (highest priority) gets the original, b2 a
        # <received/> copy, a2 a <sent/> copy, a1 (the sender) nothing.
        a1.send(f"<message to='{B}@{DOMAIN}' type='chat' id='m1'><body>one</body></message>")
        got1, got2 = messages(b1), messages(b2)
        assert len(got1) == 1 and got1[0].findtext(q(NS_CLIENT, "body")) == "one", got1
        assert got1[0].find(q(NS_CARBONS, "received")) is None
        assert len(got2) == 1, [ET.tostring(e) for e in got2]
        check_wrapper(got2[0], B, b2.jid)
        inner = carbon(got2[0], "received")
        assert inner.get("from") == a1.jid and inner.get("to") == f"{B}@{DOMAIN}"
        assert inner.get("id") == "m1" and inner.findtext(q(NS_CLIENT, "body")) == "one"
        sent = messages(a2)
        assert len(sent) == 1, [ET.tostring(e) for e in sent]
        check_wrapper(sent[0], A, a2.jid)
        inner = carbon(sent[0], "sent")
        assert inner.get("from") == a1.jid and inner.findtext(q(NS_CLIENT, "body")) == "one"
        assert messages(a1, 0.2) == []
        # To a full JID: b2 gets the original, b1 the <received/> copy.
        a1.send(f"<message to='{b2.jid}' type='chat' id='m2'><body>two</body></message>")
        got1, got2 = messages(b1), messages(b2)
        assert len(got2) == 1 and got2[0].find(q(NS_CARBONS, "received")) is None
        assert got2[0].findtext(q(NS_CLIENT, "body")) == "two"
        assert len(got1) == 1
        check_wrapper(got1[0], B, b1.jid)
        assert carbon(got1[0], "received").get("to") == b2.jid
        assert len(messages(a2)) == 1 and messages(a1, 0.2) == []
        # The answer goes the other way: b2 to a1's full JID.
        b2.send(f"<message to='{a1.jid}' type='chat'><body>three</body></message>")
        assert carbon(messages(b1)[0], "sent").findtext(q(NS_CLIENT, "body")) == "three"
        assert carbon(messages(a2)[0], "received").findtext(q(NS_CLIENT, "body")) == "three"
        assert len(messages(a1)) == 1 and messages(b2, 0.2) == []
    finally:
        for c in (a1, a2, b1, b2):
            c.close()


def test_private_no_copy_and_ineligible(cc):
    a1, a2, b1, b2 = four(cc)
    try:
        cases = [
            # §9: <private/>; XEP-0334: <no-copy/>.
            f"<message to='{B}@{DOMAIN}' type='chat'><body>p</body>"
            f"<private xmlns='{NS_CARBONS}'/></message>",
            f"<message to='{B}@{DOMAIN}' type='chat'><body>n</body>"
            "<no-copy xmlns='urn:xmpp:hints'/></message>",
            # The same namespace written with a character reference.
            f"<message to='{B}@{DOMAIN}' type='chat'><body>p</body>"
            "<private xmlns='urn:xmpp:carbons&#x3a;2'/></message>",
            # §6: a MUC private message, a normal message without a body.
            f"<message to='{b1.jid}' type='chat'><body>m</body>"
            "<x xmlns='http://jabber.org/protocol/muc#user'/></message>",
            f"<message to='{b1.jid}'><subject>s</subject></message>",
        ]
        for raw in cases:
            a1.send(raw)
            assert len(messages(b1)) == 1, raw
            assert messages(b2, 0.2) == [], raw
            assert messages(a2, 0.2) == [], raw
        # A headline to the bare JID goes to every non-negative resource
        # (RFC 6121 §8.5.2.1.1) and is never copied.
        a1.send(f"<message to='{B}@{DOMAIN}' type='headline'><body>h</body></message>")
        for c in (b1, b2):
            got = messages(c)
            assert len(got) == 1 and got[0].find(q(NS_CARBONS, "received")) is None
        assert messages(a2, 0.2) == []
        # A normal message with a body is copied; the start tag of the
        # original carries its own xmlns and a quoted '>' (the copy must
        # still be one well-formed element).
        a1.send(f"<message xmlns='jabber:client' id=\"x&gt;y/'&lt;\" to='{b1.jid}'>"
                "<body>normal</body></message>")
        assert len(messages(b1)) == 1
        inner = carbon(messages(b2)[0], "received")
        assert inner.get("id") == "x>y/'<" and inner.findtext(q(NS_CLIENT, "body")) == "normal"
        el = messages(a2)[0]
        check_wrapper(el, A, a2.jid, typ=None)
        # A prefixed original keeps its own binding inside the copy.
        a1.send(f"<cl:message xmlns:cl='jabber:client' to='{b1.jid}' type='chat'>"
                "<cl:body>pfx</cl:body></cl:message>")
        assert len(messages(b1)) == 1
        assert carbon(messages(b2)[0], "received").findtext(q(NS_CLIENT, "body")) == "pfx"
        assert carbon(messages(a2)[0], "sent").findtext(q(NS_CLIENT, "body")) == "pfx"
        # An original that uses the streams prefix of its stream header is
        # delivered with it, and so is its copy (every client stream binds
        # that prefix in the server's header).
        a1.send(f"<message to='{b1.jid}' type='chat'><body>s</body><stream:x/></message>")
        assert len(messages(b1)) == 1
        inner = carbon(messages(b2)[0], "received")
        assert inner.find(q("http://etherx.jabber.org/streams", "x")) is not None
        assert len(messages(a2)) == 1
        # The streams of all four are still fine.
        for c in (a1, a2, b1, b2):
            assert c.iq("<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN).get("type") == "result"
    finally:
        for c in (a1, a2, b1, b2):
            c.close()


def test_disable_and_own_jid(cc):
    a1, a2, b1, b2 = four(cc)
    a3 = online(cc, A, "a3", carbons=False)
    try:
        for c in (a1, a2, b1, b2):
            c.drain(0.3)
        # a2 disables: no more copies for it, b2 still gets its own.
        enable(a2, False)
        a1.send(f"<message to='{B}@{DOMAIN}' type='chat'><body>d</body></message>")
        assert len(messages(b1)) == 1 and len(messages(b2)) == 1
        assert messages(a2, 0.2) == [] and messages(a3, 0.2) == []
        # The sender gets no copy even with carbons enabled, and a resource
        # that never enabled them gets none either (a3).
        enable(a2, True)
        a1.send(f"<message to='{a3.jid}' type='chat'><body>self</body></message>")
        assert len(messages(a3)) == 1
        got = messages(a2)
        assert len(got) == 1 and carbon(got[0], "received").get("from") == a1.jid
        assert messages(a1, 0.2) == []
        # The same from a resource whose JID is escaped on the wire.
        a4 = online(cc, A, "a&'<4")
        try:
            for c in (a1, a2, a3, a4):
                c.drain(0.3)
            a4.send(f"<message to='{a3.jid.replace('&', '&amp;').replace('<', '&lt;')}' "
                    "type='chat'><body>esc</body></message>")
            assert len(messages(a3)) == 1
            for c in (a1, a2):
                got = messages(c)
                assert len(got) == 1 and carbon(got[0], "received").get("from") == a4.jid
            assert messages(a4, 0.2) == []
        finally:
            a4.close()
    finally:
        for c in (a1, a2, a3, b1, b2):
            c.close()


def test_slixmpp_defaults(cc):
    """slixmpp at its defaults (STARTTLS, SCRAM) with xep_0280: two of
    ann's resources enable carbons; ben answers one of them."""
    loop = asyncio.new_event_loop()
    laptop = slix_client(loop, f"{A}@{DOMAIN}/laptop", PW, cc.cert, plugins=["xep_0280"])
    phone = slix_client(loop, f"{A}@{DOMAIN}/phone", PW, cc.cert, plugins=["xep_0280"])
    ben = slix_client(loop, f"{B}@{DOMAIN}/desk", PW, cc.cert)
    seen = {"sent": [], "received": [], "laptop": [], "ben": []}
    phone.add_event_handler("carbon_sent", lambda m: seen["sent"].append(
        (str(m["carbon_sent"]["to"]), m["carbon_sent"]["body"])))
    phone.add_event_handler("carbon_received", lambda m: seen["received"].append(
        (str(m["carbon_received"]["from"]), m["carbon_received"]["body"])))
    laptop.add_event_handler("message", lambda m: seen["laptop"].append(m["body"]))
    ben.add_event_handler("message", lambda m: seen["ben"].append(m["body"]))

    async def flow():
        for x in (laptop, phone, ben):
            await slix_start(x, cc.xmpp["starttls"])
        await laptop["xep_0280"].enable()
        await phone["xep_0280"].enable()
        for x in (laptop, phone, ben):
            x.send_presence()
        await asyncio.sleep(0.3)
        laptop.send_message(mto=f"{B}@{DOMAIN}", mbody="hi ben", mtype="chat")
        for _ in range(50):
            if seen["ben"] and seen["sent"]:
                break
            await asyncio.sleep(0.1)
        ben.send_message(mto=f"{A}@{DOMAIN}/laptop", mbody="hi laptop", mtype="chat")
        for _ in range(50):
            if seen["laptop"] and seen["received"]:
                break
            await asyncio.sleep(0.1)
        for x in (laptop, phone, ben):
            await slix_stop(x)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert seen["ben"] == ["hi ben"], seen
    assert seen["sent"] == [(f"{B}@{DOMAIN}", "hi ben")], seen
    assert seen["laptop"] == ["hi laptop"], seen
    assert seen["received"] == [(f"{B}@{DOMAIN}/desk", "hi laptop")], seen
