"""What the server keeps and answers on an account's behalf: vCards
(XEP-0054), private XML storage (XEP-0049) and last activity (XEP-0012),
with slixmpp at its default settings (plugins xep_0054, xep_0048 over
xep_0049, xep_0012) and with raw sockets for the error cases and hostile
input. Users are placed on both reactors."""

import asyncio
import re
import time
import xml.etree.ElementTree as ET

import pytest

from xmpp_util import (NS_CLIENT, DOMAIN, c2s_node, import_users, login, q, slix_client,
                       slix_start, slix_stop, run_loop, stanza_error, home_reactor)

PW = "acct-Secret-1"
NS_VCARD = "vcard-temp"
NS_PRIVATE = "jabber:iq:private"
NS_LAST = "jabber:iq:last"
NS_INFO = "http://jabber.org/protocol/disco#info"


def users_on_both_reactors():
    a = "amy"
    for i in range(100):
        b = f"ben{i}"
        if home_reactor(f"{b}@{DOMAIN}", 2) != home_reactor(f"{a}@{DOMAIN}", 2):
            return a, b
    raise AssertionError("no pair across reactors")


A, B = users_on_both_reactors()
C = "cid"


def make(node, limits=None):
    n = c2s_node(node, limits=limits)
    import_users(n, [(A, PW), (B, PW), (C, PW)], iterations=1)
    return n


@pytest.fixture
def acct(node):
    return make(node)


def result(el):
    assert el.get("type") == "result", ET.tostring(el)
    return el


def err(el):
    return stanza_error(el)


def vcard_of(el):
    return result(el).find(q(NS_VCARD, "vCard"))


# ---- vCard (XEP-0054) ---------------------------------------------------------------


def test_vcard_slixmpp_defaults(acct):
    """A publishes with slixmpp, reads its own back from the server; B
    reads A's while A is online and after A logged out."""
    loop = asyncio.new_event_loop()
    a = slix_client(loop, f"{A}@{DOMAIN}/desk", PW, acct.cert, plugins=["xep_0054"])
    b = slix_client(loop, f"{B}@{DOMAIN}/pad", PW, acct.cert, plugins=["xep_0054"])
    got = {}

    async def flow():
        await slix_start(a, acct.xmpp["starttls"])
        await slix_start(b, acct.xmpp["starttls"])
        v = a["xep_0054"].make_vcard()
        v["FN"] = "Amy Ämbrose"
        v["NICKNAME"] = "amy"
        v["DESC"] = "likes <xml> & stuff"
        await a["xep_0054"].publish_vcard(v)
        own = await a["xep_0054"].get_vcard(a.boundjid.bare, local=False)
        got["own"] = (own["vcard_temp"]["FN"], own["vcard_temp"]["DESC"])
        online = await b["xep_0054"].get_vcard(f"{A}@{DOMAIN}", local=False)
        got["online"] = (online["from"].full, online["vcard_temp"]["NICKNAME"])
        await slix_stop(a)
        offline = await b["xep_0054"].get_vcard(f"{A}@{DOMAIN}", local=False)
        got["offline"] = offline["vcard_temp"]["FN"]
        # B has none: its own comes back empty.
        mine = await b["xep_0054"].get_vcard(b.boundjid.bare, local=False)
        got["empty"] = len(mine.xml.find(q(NS_VCARD, "vCard")))
        await slix_stop(b)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert got["own"] == ("Amy Ämbrose", "likes <xml> & stuff"), got
    assert got["online"] == (f"{A}@{DOMAIN}", ["amy"]), got
    assert got["offline"] == "Amy Ämbrose", got
    assert got["empty"] == 0, got


def test_vcard_errors_and_edges(acct):
    with login(acct, A, PW, "a") as a, login(acct, B, PW, "b") as b:
        # Own, none stored: an empty <vCard/> (§3.1).
        v = vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>"))
        assert v is not None and len(v) == 0 and not (v.text or "").strip()
        # Someone else's, none stored, and an account that does not exist:
        # the same service-unavailable (§3.3; RFC 6121 §8.5.1).
        assert err(b.iq(f"<vCard xmlns='{NS_VCARD}'/>", to=f"{A}@{DOMAIN}")) == \
            ("cancel", "service-unavailable")
        assert err(b.iq(f"<vCard xmlns='{NS_VCARD}'/>", to=f"nobody@{DOMAIN}")) == \
            ("cancel", "service-unavailable")
        # A prefixed vCard with an explicit 'to' of one's own bare JID.
        result(a.iq("<v:vCard xmlns:v='vcard-temp'><v:FN>Amy</v:FN>"
                    "<v:NOTE xml:lang='en'>a&amp;b</v:NOTE></v:vCard>",
                    to=f"{A}@{DOMAIN}", typ="set"))
        v = vcard_of(b.iq(f"<vCard xmlns='{NS_VCARD}'/>", to=f"{A}@{DOMAIN}"))
        assert v.findtext(q(NS_VCARD, "FN")) == "Amy"
        note = v.find(q(NS_VCARD, "NOTE"))
        assert note.text == "a&b"
        assert note.get("{http://www.w3.org/XML/1998/namespace}lang") == "en"
        # A set on another account's vCard (§3.2): forbidden, nothing changes.
        assert err(b.iq(f"<vCard xmlns='{NS_VCARD}'><FN>Mallory</FN></vCard>",
                        to=f"{A}@{DOMAIN}", typ="set")) == ("auth", "forbidden")
        assert vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>")).findtext(q(NS_VCARD, "FN")) == "Amy"
        # Two payloads: bad-request (RFC 6120 §8.2.3).
        assert err(a.iq(f"<vCard xmlns='{NS_VCARD}'/><vCard xmlns='{NS_VCARD}'/>",
                        typ="set")) == ("modify", "bad-request")
        # The server has no vCard of its own.
        assert err(a.iq(f"<vCard xmlns='{NS_VCARD}'/>", to=DOMAIN)) == \
            ("cancel", "item-not-found")
        # An empty <vCard/> removes it.
        result(a.iq(f"<vCard xmlns='{NS_VCARD}'/>", typ="set"))
        assert len(vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>"))) == 0
        assert err(b.iq(f"<vCard xmlns='{NS_VCARD}'/>", to=f"{A}@{DOMAIN}")) == \
            ("cancel", "service-unavailable")


def test_vcard_size_limit(node):
    n = make(node, limits={"max_vcard_bytes": 2048})
    with login(n, A, PW, "a") as a:
        result(a.iq(f"<vCard xmlns='{NS_VCARD}'><FN>small</FN></vCard>", typ="set"))
        big = "x" * 3000
        assert err(a.iq(f"<vCard xmlns='{NS_VCARD}'><FN>big</FN><DESC>{big}</DESC></vCard>",
                        typ="set")) == ("modify", "not-acceptable")
        # The stored one is kept.
        assert vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>")).findtext(q(NS_VCARD, "FN")) == \
            "small"
        # Just under the limit is fine.
        fill = "y" * (2048 - 200)
        result(a.iq(f"<vCard xmlns='{NS_VCARD}'><DESC>{fill}</DESC></vCard>", typ="set"))


# ---- private XML storage (XEP-0049) -------------------------------------------------------


def test_private_slixmpp_bookmarks(acct):
    """slixmpp's bookmarks plugin stores through XEP-0049 by default."""
    loop = asyncio.new_event_loop()
    a = slix_client(loop, f"{A}@{DOMAIN}/desk", PW, acct.cert, plugins=["xep_0048"])
    got = {}

    async def flow():
        await slix_start(a, acct.xmpp["starttls"])
        from slixmpp.plugins.xep_0048 import Bookmarks
        bm = Bookmarks()
        bm.add_conference("room@conference.example", "amy", name="The Room", autojoin=True)
        bm.add_url("https://example.org/", name="Ex")
        await a["xep_0048"].set_bookmarks(bm)
        res = await a["xep_0048"].get_bookmarks()
        confs = res["private"]["bookmarks"]["conferences"]
        got["confs"] = [(str(c["jid"]), c["nick"], c["name"], c["autojoin"]) for c in confs]
        await slix_stop(a)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert got["confs"] == [("room@conference.example", "amy", "The Room", True)], got


def private_children(el):
    return list(result(el).find(q(NS_PRIVATE, "query")))


def test_private_errors_and_namespaces(acct):
    with login(acct, A, PW, "a") as a, login(acct, B, PW, "b") as b:
        # Nothing stored: the query comes back as asked.
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'/></query>"))
        assert [k.tag for k in kids] == [q("x:prefs", "p")] and len(kids[0]) == 0
        # A set of two namespaces, one with two elements (§2.3).
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'><k>1</k></p>"
                    "<p xmlns='x:prefs'><k>2</k></p><n xmlns='x:notes'>hi</n></query>",
                    typ="set"))
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'/></query>"))
        assert [k.findtext(q("x:prefs", "k")) for k in kids] == ["1", "2"]
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><n xmlns='x:notes'/></query>"))
        assert [(k.tag, k.text) for k in kids] == [(q("x:notes", "n"), "hi")]
        # Another account's private XML, get or set: forbidden.
        for typ in ("get", "set"):
            assert err(b.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'/></query>",
                            to=f"{A}@{DOMAIN}", typ=typ)) == ("auth", "forbidden")
        # No child element: not-acceptable (§2.3).
        for typ in ("get", "set"):
            assert err(a.iq(f"<query xmlns='{NS_PRIVATE}'/>", typ=typ)) == \
                ("modify", "not-acceptable")
        # Reserved namespaces, and a child without a namespace of its own.
        for child in ("<x xmlns='jabber:x:data'/>", f"<vCard xmlns='{NS_VCARD}'/>",
                      "<s xmlns='http://jabber.org/protocol/muc'/>", "<plain/>"):
            for typ in ("get", "set"):
                assert err(a.iq(f"<query xmlns='{NS_PRIVATE}'>{child}</query>", typ=typ)) == \
                    ("modify", "not-acceptable"), child
        # A get of two namespaces at once.
        assert err(a.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'/>"
                        "<n xmlns='x:notes'/></query>")) == ("modify", "bad-request")
        # Nothing of the refused requests was stored.
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><p xmlns='x:prefs'/></query>"))
        assert [k.findtext(q("x:prefs", "k")) for k in kids] == ["1", "2"]


def test_private_size_limit_all_namespaces(node):
    n = make(node, limits={"max_private_bytes": 2048})
    with login(n, A, PW, "a") as a:
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><d xmlns='x:one'>{'a' * 1200}</d></query>",
                    typ="set"))
        # 1200 + 1200 bytes across two namespaces: past the account's limit.
        assert err(a.iq(f"<query xmlns='{NS_PRIVATE}'><d xmlns='x:two'>{'b' * 1200}</d></query>",
                        typ="set")) == ("modify", "not-acceptable")
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><d xmlns='x:two'/></query>"))
        assert len(kids) == 1 and not kids[0].text
        # Replacing the first with a smaller one makes room.
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><d xmlns='x:one'>small</d></query>", typ="set"))
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><d xmlns='x:two'>{'b' * 1200}</d></query>",
                    typ="set"))


def test_private_persists_across_restart(acct):
    with login(acct, A, PW, "a") as a:
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><e:prefs xmlns:e='x:keep' v='1'>"
                    "<e:k>☃ &lt;kept&gt;</e:k></e:prefs></query>", typ="set"))
        result(a.iq(f"<vCard xmlns='{NS_VCARD}'><FN>Kept</FN></vCard>", typ="set"))
    acct.stop_clean()
    acct.result = None
    acct.checked = False
    acct.start()
    with login(acct, A, PW, "a") as a:
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><prefs xmlns='x:keep'/>"
                                     "</query>"))
        assert len(kids) == 1 and kids[0].get("v") == "1"
        assert kids[0].findtext(q("x:keep", "k")) == "☃ <kept>"
        assert vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>")).findtext(q(NS_VCARD, "FN")) == \
            "Kept"


# ---- last activity (XEP-0012) -------------------------------------------------------------


def is_pres(frm=None, typ=None):
    def p(el):
        return (el.tag == q(NS_CLIENT, "presence") and (frm is None or el.get("from") == frm)
                and el.get("type") == typ)
    return p


def subscribe(a, b, b_user):
    """a subscribes to b (bare JID of user b_user), b approves: b's roster
    has a with subscription 'from'."""
    a.send(f"<presence to='{b_user}@{DOMAIN}' type='subscribe'/>")
    b.wait_for(is_pres(a.jid.split("/")[0], "subscribe"), what="subscribe")
    b.send(f"<presence to='{a.jid.split('/')[0]}' type='subscribed'/>")
    a.wait_for(is_pres(f"{b_user}@{DOMAIN}", "subscribed"), what="subscribed")


def last_of(el):
    qq = result(el).find(q(NS_LAST, "query"))
    return int(qq.get("seconds")), (qq.text or "")


def test_last_activity_offline_contact(acct):
    with login(acct, A, PW, "a") as a:
        a.send("<presence/>")
        with login(acct, B, PW, "b") as b:
            b.send("<presence/>")
            subscribe(a, b, B)
            # B online: 0 seconds (§3).
            assert last_of(a.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}")) == (0, "")
            b.send("<presence type='unavailable'><status xml:lang='fr'>En route</status>"
                   "<status>Heading Home</status></presence>")
            a.wait_for(is_pres(b.jid, "unavailable"), what="b's unavailable")
        time.sleep(2.2)
        secs, text = last_of(a.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}"))
        assert 2 <= secs <= 30 and text == "Heading Home", (secs, text)
        # No subscription: forbidden (§3, §8), whether the user is
        # online or not; an account that does not exist: as for any iq.
        with login(acct, C, PW, "c") as c:
            assert err(c.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}")) == \
                ("auth", "forbidden")
            assert err(c.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{A}@{DOMAIN}")) == \
                ("auth", "forbidden")
            assert err(c.iq(f"<query xmlns='{NS_LAST}'/>", to=f"nobody@{DOMAIN}")) == \
                ("cancel", "service-unavailable")
            # A pending request is no authorization either.
            c.send(f"<presence to='{B}@{DOMAIN}' type='subscribe'/>")
            time.sleep(0.3)
            assert err(c.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}")) == \
                ("auth", "forbidden")
    # A session that ends without unavailable presence records no status.
    with login(acct, B, PW, "b2") as b:
        b.send("<presence><status>back</status></presence>")
        time.sleep(0.2)
    time.sleep(1.1)
    with login(acct, A, PW, "a2") as a:
        secs, text = last_of(a.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}"))
        assert 1 <= secs <= 30 and text == "", (secs, text)
    # An account itself may ask; one never logged out has no record.
    with login(acct, C, PW, "c") as c:
        assert err(c.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{C}@{DOMAIN}")) is None
    with login(acct, C, PW, "c2") as c:
        c.send("<presence/>")
        assert last_of(c.iq(f"<query xmlns='{NS_LAST}'/>")) == (0, "")


def test_last_activity_never_logged_out(acct):
    with login(acct, A, PW, "a") as a:
        # A asks about itself while bound but not available, before any
        # logout of its own: nothing recorded yet.
        assert err(a.iq(f"<query xmlns='{NS_LAST}'/>")) == ("cancel", "item-not-found")
        # A set is not part of the protocol.
        assert err(a.iq(f"<query xmlns='{NS_LAST}'/>", typ="set")) == ("modify", "bad-request")


def test_last_activity_slixmpp_defaults(acct):
    with login(acct, A, PW, "a") as a, login(acct, B, PW, "b") as b:
        a.send("<presence/>")
        b.send("<presence/>")
        subscribe(a, b, B)
        b.send("<presence type='unavailable'><status>gone fishing</status></presence>")
    time.sleep(1.1)
    loop = asyncio.new_event_loop()
    x = slix_client(loop, f"{A}@{DOMAIN}/desk", PW, acct.cert, plugins=["xep_0012"])
    got = {}

    async def flow():
        await slix_start(x, acct.xmpp["starttls"])
        r = await x["xep_0012"].get_last_activity(f"{B}@{DOMAIN}")
        got["b"] = (r["last_activity"]["seconds"], r["last_activity"]["status"])
        r = await x["xep_0012"].get_last_activity(DOMAIN)
        got["server"] = r["last_activity"]["seconds"]
        await slix_stop(x)

    try:
        run_loop(loop, flow(), 60)
    finally:
        loop.close()
    assert got["b"][0] >= 1 and got["b"][1] == "gone fishing", got
    assert got["server"] >= 0, got


def test_last_activity_server_uptime(acct):
    with login(acct, A, PW, "a") as a:
        s1, t1 = last_of(a.iq(f"<query xmlns='{NS_LAST}'/>", to=DOMAIN))
        assert t1 == "" and 0 <= s1 < 600
        time.sleep(2.1)
        s2, _ = last_of(a.iq(f"<query xmlns='{NS_LAST}'/>", to=DOMAIN))
        assert s2 >= s1 + 2, (s1, s2)


def test_last_activity_to_full_jid_goes_to_the_client(acct):
    """§4: a query to a full JID is the client's to answer."""
    with login(acct, A, PW, "a") as a, login(acct, B, PW, "b") as b:
        a.send(f"<iq type='get' id='full1' to='{b.jid}'><query xmlns='{NS_LAST}'/></iq>")
        el, _ = b.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "full1",
                           what="the query at the client")
        assert el.get("from") == a.jid and el.find(q(NS_LAST, "query")) is not None
        b.send(f"<iq type='result' id='full1' to='{a.jid}'>"
               f"<query xmlns='{NS_LAST}' seconds='123'/></iq>")
        el, _ = a.wait_for(lambda e: e.tag == q(NS_CLIENT, "iq") and e.get("id") == "full1",
                           what="the client's answer")
        assert el.get("from") == b.jid and last_of(el) == (123, "")
        # A resource that is not bound: the router's answer (RFC 6121 §8.5.3.2.1).
        assert err(a.iq(f"<query xmlns='{NS_LAST}'/>", to=f"{B}@{DOMAIN}/gone")) == \
            ("cancel", "service-unavailable")


# ---- disco (XEP-0030) --------------------------------------------------------------------


def features(el):
    return {f.get("var") for f in result(el).find(q(NS_INFO, "query")).findall(q(NS_INFO, "feature"))}


def test_disco_features(acct):
    with login(acct, A, PW, "a") as a:
        server = features(a.iq(f"<query xmlns='{NS_INFO}'/>", to=DOMAIN))
        assert {NS_VCARD, NS_LAST} <= server, server
        account = features(a.iq(f"<query xmlns='{NS_INFO}'/>", to=f"{B}@{DOMAIN}"))
        assert {NS_VCARD, NS_PRIVATE, NS_LAST} <= account, account


# ---- hostile input -------------------------------------------------------------------


def test_hostile_payloads(acct):
    with login(acct, A, PW, "a") as a:
        # Deep nesting, many namespaces and prefixed attributes survive a
        # round trip (25 levels of two declarations each: within the
        # parser's bound on declarations in scope, limits.max_attrs).
        deep = "".join(f"<l{i} xmlns='x:n{i}' xmlns:p{i}='x:a{i}' p{i}:at='{i}'>"
                       for i in range(25))
        deep += "".join(f"</l{i}>" for i in reversed(range(25)))
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><r xmlns='x:deep'>{deep}</r></query>",
                    typ="set"))
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><r xmlns='x:deep'/></query>"))
        inner = ET.tostring(kids[0]).decode()
        assert len(re.findall(r"<(?:\w+:)?l\d+", inner)) == 25
        assert kids[0].find(f"{{x:n0}}l0").get("{x:a0}at") == "0"
        # A namespace of 3,000 bytes is a key like any other.
        ns = "x:" + "n" * 2998
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'><k xmlns='{ns}'>v</k></query>", typ="set"))
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><k xmlns='{ns}'/></query>"))
        assert kids[0].text == "v"
        # More namespaces in one set than one transaction takes: refused
        # whole; at the bound, accepted.
        many = "".join(f"<m xmlns='x:many{i}'/>" for i in range(65))
        assert err(a.iq(f"<query xmlns='{NS_PRIVATE}'>{many}</query>", typ="set")) == \
            ("modify", "not-acceptable")
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><m xmlns='x:many0'/></query>"))
        assert len(kids) == 1 and kids[0].get("stored") is None
        many = "".join(f"<m xmlns='x:many{i}' stored='1'/>" for i in range(64))
        result(a.iq(f"<query xmlns='{NS_PRIVATE}'>{many}</query>", typ="set"))
        kids = private_children(a.iq(f"<query xmlns='{NS_PRIVATE}'><m xmlns='x:many63'/></query>"))
        assert kids[0].get("stored") == "1"
        # vCard payload with a child out of its namespace.
        result(a.iq(f"<vCard xmlns='{NS_VCARD}'><FN>x</FN><x xmlns='urn:other'>y</x></vCard>",
                    typ="set"))
        v = vcard_of(a.iq(f"<vCard xmlns='{NS_VCARD}'/>"))
        assert v.findtext("{urn:other}x") == "y"
    assert acct.alive()
